#!/usr/bin/env bash
# bench/s3.sh: citadelfs and restic side by side against one RGW, in one run:
# the initial snapshot of a corpusgen tree, a second host's snapshot of the
# same tree (a fresh cache), a restore, cp -a out of each one's mount, and
# the raw PUT rate of the bytes citadelfs stored (its packs PUT again, 4 in
# flight, as the reference).
#
# Environment:
#   BENCH_MODELS_MB   model weights in MiB (default 512)
#   BENCH_DIR         work dir (default .bench-s3/ in the repo root)
#   CITADELFS_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: an RGW
#                     to use; without them scripts/ceph.sh starts one (root).
#   KEEP=1            keep the buckets (by default s3put deletes them)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MB=${BENCH_MODELS_MB:-512}
W=${BENCH_DIR:-$ROOT/.bench-s3}
CFS=$ROOT/bin/citadelfs
say() { printf '== %s\n' "$*" >&2; }

make build >/dev/null
command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq restic >/dev/null; }
if [ -z "${CITADELFS_S3_ENDPOINT:-}" ]; then
  export CEPH_DIR=$W/ceph
  mkdir -p "$W"
  bash scripts/ceph.sh start
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
go run ./cmd/corpusgen -out "$W/src" -models-mb "$MB" -logs-mb 16 -configs 400 >/dev/null
SRCBYTES=$(du -sb "$W/src" | cut -f1)
RUN=$(date +%s)
CB=cfs-$RUN RB=restic-$RUN
srcs=(--source "models=$W/src/models" --source "configs=$W/src/configs" --source "logs=$W/src/logs")

# t <name> <command...>: wall seconds and peak RSS of one command
declare -A T R
t() {
  local name=$1; shift
  if /usr/bin/time -o "$W/$name.time" -f '%e %M' "$@" >"$W/$name.out" 2>"$W/$name.err"; then
    read -r T[$name] R[$name] < "$W/$name.time"; R[$name]=$(( R[$name] / 1024 ))
  else
    T[$name]=failed; R[$name]=-; tail -3 "$W/$name.err" >&2
  fi
  say "$name: ${T[$name]} s, ${R[$name]} MiB RSS"
}

"$CFS" init --encryption none --insecure-no-encryption --repo "s3://$CB/r" --s3-endpoint "$EP" --cache-dir "$W/cache-a" >/dev/null
R_A=(--repo "s3://$CB/r" --s3-endpoint "$EP" --cache-dir "$W/cache-a")
R_B=(--repo "s3://$CB/r" --s3-endpoint "$EP" --cache-dir "$W/cache-b")
t cfs-snapshot "$CFS" snapshot "${R_A[@]}" "${srcs[@]}"
t cfs-second-host "$CFS" snapshot "${R_B[@]}" --host other "${srcs[@]}"
t cfs-restore "$CFS" restore "${R_A[@]}" latest "$W/out-cfs"

restic -r "s3:$EP/$RB" init >/dev/null
t restic-snapshot restic -r "s3:$EP/$RB" backup "$W/src/models" "$W/src/configs" "$W/src/logs"
t restic-restore restic -r "s3:$EP/$RB" restore latest --target "$W/out-restic"

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
# The raw PUT reference and the bucket sizes, through the project's own client.
REF=$(CB=$CB RB=$RB EP=$EP go run ./bench/s3put)
echo
echo "corpus: $SRCBYTES bytes; $REF"
printf '%-22s %10s %10s\n' step seconds rss_MiB
for k in cfs-snapshot restic-snapshot cfs-second-host cfs-restore restic-restore cfs-mount-cp restic-mount-cp; do
  printf '%-22s %10s %10s\n' "$k" "${T[$k]}" "${R[$k]}"
done
