#!/usr/bin/env bash
# bench/median.sh RUN1.tsv RUN2.tsv ...: per tool and step, the median wall
# time, peak RSS and repository size (and MB/s for the seq-* reads) over the
# results.tsv of several make bench runs. Failed steps (rc != 0) are left out;
# n says how many runs a median is over (with an even n, the mean of the middle two).
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: bench/median.sh results.tsv..." >&2; exit 2; }
awk -F'\t' '
function med(key, col,   n, i, j, t, a) {
  n = split(vals[key, col], a, " ")
  for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1]+0 > a[j]+0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
  return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
$6 == 0 {
  k = $1 "|" $2
  if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
  cnt[k]++
  vals[k, 3] = vals[k, 3] " " $3; vals[k, 4] = vals[k, 4] " " $4; vals[k, 5] = vals[k, 5] " " $5
  if ($2 ~ /^seq-/) vals[k, 7] = vals[k, 7] " " $7
}
END {
  printf "%-10s %-17s %3s %9s %8s %9s %8s\n", "tool", "step", "n", "wall_s", "rss_MiB", "repo_MiB", "MB/s"
  for (i = 1; i <= nk; i++) {
    k = order[i]; split(k, p, "|")
    printf "%-10s %-17s %3d %9.3f %8.0f %9.0f %8s\n", p[1], p[2], cnt[k], med(k, 3), med(k, 4) / 1024,
      med(k, 5) / 1048576, (p[2] ~ /^seq-/) ? sprintf("%.0f", med(k, 7)) : "-"
  }
}' "$@"
