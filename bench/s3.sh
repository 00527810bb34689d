#!/usr/bin/env bash
# bench/s3.sh: citadelfs and restic side by side against one RGW, in one run:
# the initial snapshot of a corpusgen tree, a second host's snapshot of the
# same tree (a fresh cache), a snapshot of each after `corpusgen -mutate day`,
# a new host's cache rebuilt from nothing, a restore, cp -a out of each one's mount, and the raw PUT rate of the bytes
# citadelfs stored (its packs PUT again, 4 in flight, as the reference). Both
# tools encrypt: restic always does, citadelfs by default (aes-256-gcm), with
# the same passphrase from a file. It ends with the issue-10 targets, each
# ratio worked out.
#
# The three timed targets (the initial snapshot, the raw PUT, the restore)
# are medians of BENCH_S3_RUNS runs, each into fresh buckets, the two tools
# taking turns to go first: one run of each moved by 15-30% here (2 cores
# shared with RGW and the OSD, a VM's neighbours), enough to pass or miss a
# target by itself.
#
# Environment:
#   BENCH_MODELS_MB   model weights in MiB (default 2048: about 4 min here)
#   BENCH_DIR         work dir (default .bench-s3/ in the repo root)
#   BENCH_SKIP_MOUNT=1  skip the two mounts' cp -a (quick runs)
#   BENCH_S3_RUNS     runs of each timed target (default 3)
#   CITADELFS_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: an RGW
#                     to use; without them scripts/ceph.sh starts one (root).
#   CITADELFS_CEPH_CONF  with radosgw-admin, the buckets are purged past RGW's
#                     garbage collection (which frees deleted objects only
#                     after 2 h: a few 2 GiB runs fill a 16 GiB OSD)
#   KEEP=1            keep the buckets (by default they are deleted)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MB=${BENCH_MODELS_MB:-2048}
W=${BENCH_DIR:-$ROOT/.bench-s3}
CFS=$ROOT/bin/citadelfs
say() { printf '== %s\n' "$*" >&2; }

make build >/dev/null
command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq restic >/dev/null; }
if [ -z "${CITADELFS_S3_ENDPOINT:-}" ]; then
  export CEPH_DIR=$W/ceph OSD_SIZE=${OSD_SIZE:-16G}  # sparse; the buckets are purged run by run
  mkdir -p "$W"
  bash scripts/ceph.sh install >/dev/null
  bash scripts/ceph.sh start
  STARTED_CEPH=1
  trap 'bash scripts/ceph.sh stop || true' EXIT
  eval "$(bash scripts/ceph.sh env)"
fi
EP=$CITADELFS_S3_ENDPOINT
export RESTIC_PASSWORD=citadelfs-bench RESTIC_CACHE_DIR=$W/restic-cache
# Both encrypt (citadelfs by default): the same passphrase, from a file,
# as init would otherwise prompt for one.
mkdir -p "$W"
printf '%s\n' "$RESTIC_PASSWORD" > "$W/password"
export CITADELFS_PASSWORD_FILE=$W/password

rm -rf "$W/src" "$W/cache-"* "$W/out-"* "$W/restic-cache"
mkdir -p "$W"
gen=(-out "$W/src" -models-mb "$MB" -logs-mb 16 -configs 400)
go build -o "$W/corpusgen" ./cmd/corpusgen
go build -o "$W/s3put" ./bench/s3put
"$W/corpusgen" "${gen[@]}" >/dev/null
# The generator's 2+ GB of dirty pages would otherwise be written back
# during the first snapshot, on the disk the OSD writes to.
sync
SRCBYTES=$(du -sb "$W/src" | cut -f1)
MODELBYTES=$(du -sb "$W/src/models" | cut -f1)
RUN=$(date +%s)
RUNS=${BENCH_S3_RUNS:-3}
export EP
srcs=(--source "models=$W/src/models" --source "configs=$W/src/configs" --source "logs=$W/src/logs")
BUCKETS=()

# rmbuckets <bucket...>: past RGW's garbage collection where radosgw-admin
# can reach the cluster (the space is free at once), through S3 otherwise
# (freed in 2 h).
rmbuckets() {
  local b
  if [ -n "${CITADELFS_CEPH_CONF:-}" ] && command -v radosgw-admin >/dev/null; then
    for b in "$@"; do
      radosgw-admin -c "$CITADELFS_CEPH_CONF" bucket rm --bucket="$b" --purge-objects --bypass-gc >/dev/null 2>&1 || true
    done
  fi
  "$W/s3put" -rm "$@" 2>/dev/null || true
}
# purge deletes every bucket of the run at exit, however the run ends.
purge() { [ -n "${KEEP:-}" ] || [ ${#BUCKETS[@]} = 0 ] || rmbuckets "${BUCKETS[@]}"; }
trap 'purge; [ -n "${STARTED_CEPH:-}" ] && bash scripts/ceph.sh stop || true' EXIT

# t <name> <command...>: wall seconds and peak RSS of one command. The
# dirty pages of what ran before (a 2.4 GB restore, a generated tree) are
# written back first, so that no step pays for the writeback of another's
# files: without it a restore right after the other tool's ran up to 1.5 s
# slower.
declare -A T R
t() {
  local name=$1; shift
  sync
  if /usr/bin/time -o "$W/$name.time" -f '%e %M' "$@" >"$W/$name.out" 2>"$W/$name.err"; then
    read -r T[$name] R[$name] < "$W/$name.time"; R[$name]=$(( R[$name] / 1024 ))
  else
    T[$name]=failed; R[$name]=-; tail -3 "$W/$name.err" >&2
  fi
  say "$name: ${T[$name]} s, ${R[$name]} MiB RSS"
}
# median <name>: T[name] and R[name] from the runs name-1..name-RUNS (the
# median time, the highest RSS), and RUNSOF[name] lists the runs' times.
declare -A RUNSOF
median() {
  local name=$1 i v=() rss=0
  for i in $(seq "$RUNS"); do
    v+=("${T[$name-$i]:-failed}")
    [[ "${R[$name-$i]:-}" =~ ^[0-9]+$ ]] && (( R[$name-$i] > rss )) && rss=${R[$name-$i]}
  done
  RUNSOF[$name]="${v[*]}"
  # A failed run counts as the slowest: a median never hides a failure
  # behind the other runs' times unless most runs succeeded.
  T[$name]=$(printf '%s\n' "${v[@]}" | sed 's/^failed$/inf/' | sort -g | awk '{ a[NR] = $1 } END { m = (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2); print (m == "inf" || m+0 != m+0 || NR == 0 ? "failed" : m) }')
  R[$name]=$rss
}

# turns <i> <a> <b>: run i of a pair of steps, a first in odd runs and b
# first in even ones, so that neither tool always goes first.
turns() { if (( $1 % 2 )); then "$2" "$1"; "$3" "$1"; else "$3" "$1"; "$2" "$1"; fi; }
snapshot_cfs() { t cfs-snapshot-$1 "$CFS" snapshot "${R_A[@]}" "${srcs[@]}"; }
snapshot_restic() { t restic-snapshot-$1 restic -r "s3:$EP/$RB" backup "$W/src/models" "$W/src/configs" "$W/src/logs"; }

# The initial snapshot, RUNS times into fresh buckets, the tools taking
# turns to go first; the last run's buckets are kept for the steps after it.
for i in $(seq "$RUNS"); do
  CB=cfs-$RUN-$i RB=restic-$RUN-$i
  BUCKETS+=("$CB" "$RB")
  rm -rf "$W/cache-a"
  "$CFS" init --repo "s3://$CB/r" --s3-endpoint "$EP" --cache-dir "$W/cache-a" >/dev/null
  restic -r "s3:$EP/$RB" init >/dev/null
  R_A=(--repo "s3://$CB/r" --s3-endpoint "$EP" --cache-dir "$W/cache-a")
  turns "$i" snapshot_cfs snapshot_restic
  # The raw PUT of the packs this run stored, into a bucket of its own.
  BUCKETS+=("$CB-put")
  if read -r PUTBYTES T[put-$i] < <("$W/s3put" -put "$CB" "$CB-put"); then
    say "raw PUT of $PUTBYTES pack bytes: ${T[put-$i]} s"
  else
    T[put-$i]=failed; say "raw PUT failed"
  fi
  rmbuckets "$CB-put"
  if (( i < RUNS )) && [ -z "${KEEP:-}" ]; then rmbuckets "$CB" "$RB"; fi
done
median cfs-snapshot; median restic-snapshot; median put; R[put]=-

# What a second host's snapshot of the same tree PUT: the bucket's growth.
R_B=(--repo "s3://$CB/r" --s3-endpoint "$EP" --cache-dir "$W/cache-b")
before=$("$W/s3put" -du "$CB")
t cfs-second-host "$CFS" snapshot "${R_B[@]}" --host other "${srcs[@]}"
SECOND=$(( $("$W/s3put" -du "$CB") - before ))

"$W/corpusgen" "${gen[@]}" -mutate day -seed 2 >"$W/mutate.out"
say "corpusgen -mutate day: $(wc -l <"$W/mutate.out") changes"
t cfs-mutation "$CFS" snapshot "${R_A[@]}" "${srcs[@]}"
t restic-mutation restic -r "s3:$EP/$RB" backup "$W/src/models" "$W/src/configs" "$W/src/logs"

# A new host's cache, built from nothing: from the index objects (one GET
# per writing session that committed packs), not from the packs.
R_C=(--repo "s3://$CB/r" --s3-endpoint "$EP" --cache-dir "$W/cache-c")
t cfs-cache-rebuild "$CFS" repair index --json "${R_C[@]}"
IDXBYTES=$("$W/s3put" -du "$CB" r/index/)
PACKBYTES=$("$W/s3put" -du "$CB" r/packs/)
REBUILT=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r.get("PacksAdded",0), r.get("FromIndexObjects",0))' "$W/cfs-cache-rebuild.out" 2>/dev/null || echo "- -")
read -r RB_PACKS RB_FROMIDX <<<"$REBUILT"
say "cache rebuild: $RB_PACKS packs indexed, $RB_FROMIDX of them from $IDXBYTES bytes of index objects ($PACKBYTES bytes of packs)"

# The restore of the latest snapshot, RUNS times each, taking turns.
restore_cfs() { rm -rf "$W/out-cfs"; t cfs-restore-$1 "$CFS" restore "${R_A[@]}" latest "$W/out-cfs"; }
restore_restic() { rm -rf "$W/out-restic"; t restic-restore-$1 restic -r "s3:$EP/$RB" restore latest --target "$W/out-restic"; }
for i in $(seq "$RUNS"); do turns "$i" restore_cfs restore_restic; done
median cfs-restore; median restic-restore
diff -r --no-dereference "$W/src" "$W/out-cfs" >/dev/null && say "citadelfs restore identical" || say "citadelfs restore DIFFERS"

# cp -a out of each tool's FUSE mount of its bucket (cold: a fresh mount,
# nothing in the blob cache). The RSS column is the mount daemon's peak.
# waitdir <dir>: until the mount shows it (30 s at most).
waitdir() { for _ in $(seq 150); do [ -d "$1" ] && return 0; sleep 0.2; done; say "no $1"; return 1; }
# mountcp <name> <pid> <from> <to>
mountcp() {
  if waitdir "$3"; then
    t "$1" cp -a "$3/." "$4"
    R[$1]=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$2/status" 2>/dev/null || echo -)
  else
    T[$1]=failed; R[$1]=-
  fi
}
if [ -z "${BENCH_SKIP_MOUNT:-}" ]; then
  mkdir -p "$W/mnt-cfs" "$W/mnt-restic"
  "$CFS" mount "${R_A[@]}" "$W/mnt-cfs" >"$W/mount-cfs.log" 2>&1 &
  MP=$!
  mountcp cfs-mount-cp $MP "$W/mnt-cfs/latest" "$W/out-cfs-mount"
  kill -INT $MP; wait $MP || true
  restic -r "s3:$EP/$RB" mount "$W/mnt-restic" >"$W/mount-restic.log" 2>&1 &
  MP=$!
  mountcp restic-mount-cp $MP "$W/mnt-restic/snapshots/latest" "$W/out-restic-mount"
  kill -INT $MP; wait $MP || true
  fusermount -u "$W/mnt-restic" 2>/dev/null || true
  diff -r --no-dereference "$W/src" "$W/out-cfs-mount" >/dev/null && say "citadelfs mount copy identical" || say "citadelfs mount copy DIFFERS"
fi
# The bucket sizes, through the project's own client; purge (at exit)
# deletes the buckets.
PUT=${T[put]}
echo
echo "corpus: $SRCBYTES bytes ($MODELBYTES of models); citadelfs bucket $("$W/s3put" -du "$CB") bytes in $("$W/s3put" -objects "$CB") objects; restic bucket $("$W/s3put" -du "$RB") bytes in $("$W/s3put" -objects "$RB") objects; raw PUT of citadelfs's $PUTBYTES pack bytes: $PUT s (median of $RUNS: ${RUNSOF[put]})"
echo "initial snapshot and restore: median of $RUNS runs each, into fresh buckets, the tools taking turns to go first"
printf '%-22s %10s %10s\n' step seconds rss_MiB
for k in cfs-snapshot restic-snapshot put cfs-second-host cfs-mutation restic-mutation cfs-cache-rebuild cfs-restore restic-restore cfs-mount-cp restic-mount-cp; do
  [ -n "${T[$k]:-}" ] && printf '%-22s %10s %10s   %s\n' "$k" "${T[$k]}" "${R[$k]:--}" "${RUNSOF[$k]:+runs: ${RUNSOF[$k]}}"
done

# The targets, each ratio worked out.
# ratio <a> <b>: a/b to 2 places, or - when either is not a number
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a+0 > 0 && b+0 > 0) printf "%.2f", a/b; else print "-" }'; }
# check <what> <value> <op> <limit>
check() {
  local ok
  ok=$(awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN { if (v == "-") print "n/a"; else if (op == "") print "(no target)"; else if (op == ">=" ? v+0 >= l+0 : v+0 < l+0) print "met"; else print "MISSED" }')
  printf '%-46s %8s %s %-6s %s\n' "$1" "$2" "$3" "$4" "$ok"
}
peak=0
for k in cfs-snapshot cfs-second-host cfs-mutation cfs-restore cfs-mount-cp; do
  [[ "${R[$k]:-}" =~ ^[0-9]+$ ]] && (( R[$k] > peak )) && peak=${R[$k]}
done
echo
check "initial: restic / citadelfs (x)" "$(ratio "${T[restic-snapshot]}" "${T[cfs-snapshot]}")" ">=" 3
check "initial: citadelfs / raw PUT of its packs (x)" "$(ratio "${T[cfs-snapshot]}" "$PUT")" "<" 1.5
check "mutation: restic / citadelfs (x)" "$(ratio "${T[restic-mutation]}" "${T[cfs-mutation]}")" "" ""
check "second host: uploaded / models (%)" "$(awk -v a="$SECOND" -v b="$MODELBYTES" 'BEGIN { printf "%.3f", 100*a/b }')" "<" 2
check "cache rebuild: packs read from trailers" "$(awk -v a="$RB_PACKS" -v b="$RB_FROMIDX" 'BEGIN { if (a == "-") print "-"; else print a-b }')" "<" 1
check "cache rebuild: index objects / packs (%)" "$(awk -v a="$IDXBYTES" -v b="$PACKBYTES" 'BEGIN { if (b+0 > 0) printf "%.3f", 100*a/b; else print "-" }')" "" ""
check "restore: restic / citadelfs (x)" "$(ratio "${T[restic-restore]}" "${T[cfs-restore]}")" ">=" 2
check "citadelfs peak RSS (MiB)" "$peak" "<" 300
echo "(the second host PUT $SECOND bytes; $MODELBYTES bytes of models)"
echo "(a new host's cache rebuild: ${T[cfs-cache-rebuild]} s, $RB_FROMIDX of $RB_PACKS packs from $IDXBYTES bytes of index objects; the packs hold $PACKBYTES)"
