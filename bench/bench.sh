#!/usr/bin/env bash
# make bench: citadelfs, restic and borg side by side on one corpusgen tree, in
# one run, interleaved step by step on the same source state (each step mutates
# the source once, then runs citadelfs, citadelfs-enc (the same, encrypted:
# aes-256-gcm), restic, borg). See bench/README.md.
#
# Environment:
#   BENCH_MODELS_MB   model weights in MiB (default 2048)
#   BENCH_DIR         work dir, not tmpfs (default .bench/ in the repo root)
#   BENCH_SKIP_MOUNT  1: skip the mount section
#   BENCH_SKIP_GOBENCH 1: skip the codec go benchmarks
#   BENCH_TOOLS       the tools to run (default "citadelfs citadelfs-enc restic borg")
#   BENCH_REPS        runs of the local cold cp -a and of each mount measure;
#                     the median is reported (default 3: the machine is noisy)
#
# A tool's failure is reported in the table, never fatal; only a broken
# set-up (no corpus, no disk, no citadelfs binary) stops the run.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MB=${BENCH_MODELS_MB:-2048}
W=${BENCH_DIR:-$ROOT/.bench}
CFS=$ROOT/bin/citadelfs
SRC=$W/src
# shellcheck disable=SC2206
TOOLS=(${BENCH_TOOLS:-citadelfs citadelfs-enc restic borg})
# citadelfs-enc: an encrypted repository (the default init), unlocked from a
# password file; its index is a cache outside the repository, in $ENC_CACHE.
ENC_PASS=$W/enc-password
ENC_CACHE=$W/cache/citadelfs-enc
REPS=${BENCH_REPS:-3}
MUTATIONS=("day 2" "finetune 3" "new-model 4" "insert-shift 5")

export RESTIC_PASSWORD=citadelfs-bench
export RESTIC_CACHE_DIR=$W/cache/restic
export BORG_BASE_DIR=$W/cache/borg
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_DISPLAY_PASSPHRASE=no

say() { printf '== %s\n' "$*" >&2; }
warn() { printf '!! %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- set-up

install_tools() {
  local need=()
  command -v restic >/dev/null || need+=(restic)
  command -v borg >/dev/null || need+=(borgbackup)
  command -v fusermount3 >/dev/null || need+=(fuse3)
  [ -x /usr/bin/time ] || need+=(time)
  /usr/bin/python3 -c 'import pyfuse3' 2>/dev/null || /usr/bin/python3 -c 'import llfuse' 2>/dev/null ||
    need+=(python3-pyfuse3)
  if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    if [ "$(id -u)" != 0 ]; then die "need root to apt-get install ${need[*]}"; fi
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
      warn "apt-get install ${need[*]} failed; the tools missing will be reported as failed"
  fi
}

COLD_OK=1
drop_caches() {
  sync
  if ! { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
    [ $COLD_OK = 1 ] && warn "cannot drop page caches (not root?): 'cold' numbers are warm"
    COLD_OK=0
  fi
}

check_disk() {
  local fstype avail_mb need_mb
  fstype=$(findmnt -no FSTYPE -T "$W" 2>/dev/null || echo '?')
  case $fstype in tmpfs | ramfs) die "$W is on $fstype; set BENCH_DIR to a disk-backed directory" ;; esac
  avail_mb=$(df -Pm "$W" | awk 'NR==2{print $4}')
  # source, cold cp baseline, one restore or mount copy at a time, four repositories
  need_mb=$(((MB + 200) * 8 + 2048))
  [ "$avail_mb" -ge "$need_mb" ] || die "$W has ${avail_mb} MiB free, need about ${need_mb} MiB for -models-mb $MB"
  say "work dir $W ($fstype, ${avail_mb} MiB free, about ${need_mb} MiB needed)"
}

# ---------------------------------------------------------------- results

declare -A WALL RSS REPO RC EXTRA CPU
TSV=$W/results.tsv

# record TOOL STEP WALL_S RSS_KIB REPO_BYTES RC EXTRA
record() {
  local k="$1|$2"
  WALL[$k]=$3 RSS[$k]=$4 REPO[$k]=$5 RC[$k]=$6 EXTRA[$k]=$7
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$TSV"
}

now_ns() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", (b-a)/1e9}'; }

# measure TOOL STEP CMD...: run CMD under /usr/bin/time; sets M_WALL, M_RSS (KiB), M_RC,
# and CPU[TOOL|STEP] (user + system seconds: on a loaded machine the steadier
# measure of what a tool costs; the report shows it where wall times are compared).
measure() {
  local tool=$1 step=$2
  shift 2
  local log=$W/logs/$tool-$step tf t0 t1
  tf=$log.time
  sync
  t0=$(now_ns)
  M_RC=0
  /usr/bin/time -f '%U %S
%M' -o "$tf" "$@" >"$log.out" 2>"$log.err" || M_RC=$?
  t1=$(now_ns)
  M_WALL=$(secs "$t0" "$t1")
  M_RSS=$(tail -n1 "$tf" 2>/dev/null || echo 0)
  [[ $M_RSS =~ ^[0-9]+$ ]] || M_RSS=0
  CPU[$tool|$step]=$(tail -n2 "$tf" 2>/dev/null | head -n1 | awk 'NF == 2 {printf "%.2f", $1 + $2}')
  if [ $M_RC != 0 ]; then
    warn "$tool $step failed (exit $M_RC), see $log.err:"
    tail -n3 "$log.err" | sed 's/^/   /' >&2
  fi
}

repo_bytes() { du -sb "$W/repo-$1" 2>/dev/null | awk '{print $1}'; }

# ---------------------------------------------------------------- the tools

BORG_LAST=
# cfs_enc CMD ARGS...: citadelfs on the encrypted repository.
cfs_enc() {
  local cmd=$1
  shift
  env CITADELFS_PASSWORD_FILE="$ENC_PASS" "$CFS" "$cmd" --cache-dir "$ENC_CACHE" "$@"
}

tool_init() {
  local r=$W/repo-$1
  case $1 in
  citadelfs) "$CFS" init --encryption none --repo "$r" ;;
  citadelfs-enc) cfs_enc init --encryption aes-256-gcm --repo "$r" ;;
  restic) restic -r "$r" init --repository-version 2 ;;
  borg) borg init --encryption none "$r" ;;
  esac
}

tool_snapshot() { # TOOL STEP
  local r=$W/repo-$1
  case $1 in
  citadelfs)
    measure "$1" "$2" "$CFS" snapshot --repo "$r" --json \
      --source "models=$SRC/models" --source "configs=$SRC/configs" --source "logs=$SRC/logs"
    ;;
  citadelfs-enc)
    measure "$1" "$2" env CITADELFS_PASSWORD_FILE="$ENC_PASS" "$CFS" snapshot --repo "$r" --cache-dir "$ENC_CACHE" --json \
      --source "models=$SRC/models" --source "configs=$SRC/configs" --source "logs=$SRC/logs"
    ;;
  restic)
    measure "$1" "$2" env -C "$SRC" restic -r "$r" backup --compression auto --host bench models configs logs
    ;;
  borg)
    measure "$1" "$2" env -C "$SRC" borg create --compression zstd,3 "$r::$2" models configs logs
    [ $M_RC = 0 ] && BORG_LAST=$2
    ;;
  esac
  local extra=
  if [[ $1 == citadelfs* ]] && [ $M_RC = 0 ] && command -v jq >/dev/null; then
    extra=$(jq -c '{files,bytes,read_bytes,new_bytes,stored_bytes,duration_seconds}' "$W/logs/$1-$2.out" 2>/dev/null || true)
  fi
  record "$1" "$2" "$M_WALL" "$M_RSS" "$(repo_bytes "$1")" "$M_RC" "$extra"
}

tool_restore() { # TOOL TARGET
  local r=$W/repo-$1 t=$2
  case $1 in
  citadelfs) measure "$1" restore "$CFS" restore --repo "$r" latest "$t" ;;
  citadelfs-enc) measure "$1" restore env CITADELFS_PASSWORD_FILE="$ENC_PASS" "$CFS" restore --repo "$r" --cache-dir "$ENC_CACHE" latest "$t" ;;
  restic) measure "$1" restore restic -r "$r" restore latest --target "$t" ;;
  borg)
    if [ -z "$BORG_LAST" ]; then M_RC=1 M_WALL=0 M_RSS=0; else
      measure "$1" restore env -C "$t" borg extract "$r::$BORG_LAST"
    fi
    ;;
  esac
}

# ---------------------------------------------------------------- mounts

MOUNT_PIDS=()
cleanup() {
  local m p
  for m in "$W"/mnt-*; do
    [ -d "$m" ] || continue
    if findmnt -M "$m" >/dev/null 2>&1; then
      fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    fi
  done
  for p in "${MOUNT_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# mount_root TOOL MNT: the directory that holds models/ configs/ logs/ of the latest snapshot.
mount_root() {
  case $1 in
  citadelfs | citadelfs-enc) echo "$2/latest" ;;
  restic) echo "$2/snapshots/latest" ;;
  borg) echo "$2" ;;
  esac
}

# mount_start TOOL MNT: sets MPID; returns non-zero when the mount is not serving in 60 s.
mount_start() {
  local tool=$1 m=$2 r=$W/repo-$1 log=$W/logs/$1-mount.log i
  mkdir -p "$m"
  case $tool in
  citadelfs) "$CFS" mount --repo "$r" "$m" >>"$log" 2>&1 & ;;
  # env execs citadelfs, so MPID is the daemon's (a shell function would
  # fork a subshell: SIGTERM and VmHWM would go to it).
  citadelfs-enc) env CITADELFS_PASSWORD_FILE="$ENC_PASS" "$CFS" mount --cache-dir "$ENC_CACHE" --repo "$r" "$m" >>"$log" 2>&1 & ;;
  restic) restic -r "$r" mount "$m" >>"$log" 2>&1 & ;;
  borg) borg mount -f "$r::$BORG_LAST" "$m" >>"$log" 2>&1 & ;;
  esac
  MPID=$!
  MOUNT_PIDS+=("$MPID")
  for i in $(seq 600); do
    if ! kill -0 "$MPID" 2>/dev/null; then
      warn "$tool mount exited before serving, see $log:"
      tail -n3 "$log" | sed 's/^/   /' >&2
      return 1
    fi
    if findmnt -M "$m" >/dev/null 2>&1 && timeout 5 test -d "$(mount_root "$tool" "$m")/models"; then
      return 0
    fi
    sleep 0.1
  done
  warn "$tool mount not serving after 60 s"
  mount_stop "$tool" "$m"
  return 1
}

vm_hwm_kib() { awk '/^VmHWM:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# mount_stop TOOL MNT: unmount the way each tool documents (SIGTERM for citadelfs,
# fusermount -u for the others) and wait for the process.
mount_stop() {
  local tool=$1 m=$2 i
  if [[ $tool == citadelfs* ]]; then
    kill -TERM "$MPID" 2>/dev/null || true
  else
    fusermount3 -u "$m" 2>/dev/null || true
  fi
  for i in $(seq 200); do kill -0 "$MPID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$MPID" 2>/dev/null; then
    warn "$tool mount did not exit in 20 s after unmount; killing it"
    kill -KILL "$MPID" 2>/dev/null || true
  fi
  wait "$MPID" 2>/dev/null || true
  if findmnt -M "$m" >/dev/null 2>&1; then
    warn "$m still mounted after $tool exited; lazy unmount"
    fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  fi
}

# median N...: the middle value (the mean of the middle two for an even count).
median() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {if (NR == 0) print 0; else if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2] + a[NR/2+1]) / 2}'
}

# cp_once TOOL STEP FROM: cp -a FROM/. into a fresh dir; sets T_WALL, T_RC
# and T_DIFF (checked against the source), then deletes the copy.
cp_once() {
  local tool=$1 step=$2 from=$3 dst=$W/copy t0 t1
  rm -rf "$dst"
  mkdir -p "$dst"
  sync
  T_RC=0
  t0=$(now_ns)
  cp -a "$from/." "$dst" 2>"$W/logs/$tool-$step.err" || T_RC=$?
  t1=$(now_ns)
  T_WALL=$(secs "$t0" "$t1")
  T_DIFF=$(diff_status "$dst")
  rm -rf "$dst"
  sync
}

# read_once TOOL STEP FILE: sequential read of FILE; sets T_WALL, T_RC and
# T_MBS (decimal MB/s).
read_once() {
  local tool=$1 step=$2 f=$3 t0 t1 size
  size=$(stat -c %s "$f" 2>/dev/null || echo 0)
  T_RC=0
  t0=$(now_ns)
  dd if="$f" of=/dev/null bs=1M 2>"$W/logs/$tool-$step.err" || T_RC=$?
  t1=$(now_ns)
  T_WALL=$(secs "$t0" "$t1")
  T_MBS=$(awk -v b="$size" -v s="$T_WALL" 'BEGIN{printf "%.0f", (s > 0 ? b / 1e6 / s : 0)}')
}

# Runs of one measure: add_run KEY VALUE RC [DIFF]; then record_runs
# TOOL STEP records the median (a failed or differing run fails the step).
declare -A RUNS RUNRC RUNDIFF
add_run() {
  RUNS[$1]="${RUNS[$1]:-} $2"
  [ "$3" = 0 ] || RUNRC[$1]=$3
  [ -z "${4:-}" ] || [ "$4" = identical ] || RUNDIFF[$1]=$4
}
record_runs() { # TOOL STEP KIND(cp|read)
  local k="$1|$2" med
  # shellcheck disable=SC2086
  med=$(median ${RUNS[$k]:-})
  say "$1 $2 runs:${RUNS[$k]:-} (median $med)"
  if [ "$3" = cp ]; then
    record "$1" "$2" "$med" 0 0 "${RUNRC[$k]:-0}" "${RUNDIFF[$k]:-identical}"
  else
    # seq reads: runs are MB/s; the wall column holds the median run's time
    med=$(printf '%.0f' "$med")
    record "$1" "$2" "$(awk -v b="$BIG_BYTES" -v m="$med" 'BEGIN{printf "%.3f", (m > 0 ? b / 1e6 / m : 0)}')" 0 0 "${RUNRC[$k]:-0}" "$med"
  fi
}

# diff_status DIR: "identical" or "DIFFERS(n lines)" against the source.
diff_status() {
  local n
  n=$(diff -r --no-dereference "$SRC" "$1" 2>&1 | tee "$W/logs/diff-last.txt" | wc -l) || true
  if [ "$n" = 0 ]; then echo identical; else echo "DIFFERS($n)"; fi
}

bench_mount() { # TOOL
  local tool=$1 m=$W/mnt-$1 root hwm=0 h
  if [[ $tool == citadelfs* ]] && ! "$CFS" help 2>&1 | grep -qE '^[[:space:]]+mount[[:space:]]'; then
    warn "citadelfs has no 'mount' command yet: skipping its mount benchmarks"
    record "$tool" mount-cp-cold 0 0 0 127 "skipped: no mount command"
    return
  fi
  if [ "$tool" = borg ] && [ -z "$BORG_LAST" ]; then
    record borg mount-cp-cold 0 0 0 1 "skipped: no borg archive"
    return
  fi
  say "mount: $tool ($REPS runs of each measure)"
  local r s
  for r in $(seq "$REPS"); do
    # cp -a, cold (caches dropped before mounting) then warm on the same mount.
    drop_caches
    mount_start "$tool" "$m" || {
      record "$tool" mount-cp-cold 0 0 0 1 "mount failed"
      return
    }
    root=$(mount_root "$tool" "$m")
    cp_once "$tool" mount-cp-cold "$root"
    add_run "$tool|mount-cp-cold" "$T_WALL" "$T_RC" "$T_DIFF"
    cp_once "$tool" mount-cp-warm "$root"
    add_run "$tool|mount-cp-warm" "$T_WALL" "$T_RC" "$T_DIFF"
    h=$(vm_hwm_kib "$MPID")
    [ "$h" -gt "$hwm" ] && hwm=$h
    mount_stop "$tool" "$m"
    # Sequential read of the largest model file: cold (caches dropped, fresh
    # mount); packs warm (repository in the page cache, fresh mount, so the
    # daemon decodes every byte); warm (second read, kernel's page cache).
    drop_caches
    if mount_start "$tool" "$m"; then
      read_once "$tool" seq-cold "$root/$BIG"
      add_run "$tool|seq-cold" "$T_MBS" "$T_RC"
      h=$(vm_hwm_kib "$MPID")
      [ "$h" -gt "$hwm" ] && hwm=$h
      mount_stop "$tool" "$m"
    fi
    cat_repo "$tool"
    if mount_start "$tool" "$m"; then
      read_once "$tool" seq-packs-warm "$root/$BIG"
      add_run "$tool|seq-packs-warm" "$T_MBS" "$T_RC"
      read_once "$tool" seq-warm "$root/$BIG"
      add_run "$tool|seq-warm" "$T_MBS" "$T_RC"
      h=$(vm_hwm_kib "$MPID")
      [ "$h" -gt "$hwm" ] && hwm=$h
      mount_stop "$tool" "$m"
    fi
  done
  record_runs "$tool" mount-cp-cold cp
  record_runs "$tool" mount-cp-warm cp
  for s in seq-cold seq-packs-warm seq-warm; do
    [ -n "${RUNS[$tool|$s]:-}" ] && record_runs "$tool" "$s" read
  done
  record "$tool" mount-daemon-rss 0 "$hwm" 0 0 ""
}

# cat_repo TOOL: pull the repository (and the tool's local cache) into the page cache.
cat_repo() {
  local d
  for d in "$W/repo-$1" "$W/cache/$1"; do
    [ -d "$d" ] && find "$d" -type f -exec cat {} + >/dev/null 2>&1
  done
  return 0
}

# ---------------------------------------------------------------- the run

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
[ -x "$CFS" ] || die "$CFS missing; run 'make build' (make bench does)"
# memtouch prints "first-touch MB/s, re-touch MB/s": how fast new pages are
# written, which a FUSE read and a copy's destination pay for every byte.
go build -o "$ROOT/bin/memtouch" ./bench/memtouch || die "cannot build bench/memtouch"
memtouch() { "$ROOT/bin/memtouch" 2>/dev/null || echo "? ?"; }
MEM_START=$(memtouch)
install_tools
rm -rf "$W"/{src,copy,restore,logs,cache,repo-*,mnt-*,results.*,gobench.txt,enc-password}
mkdir -p "$W/logs" "$W/cache"
printf 'citadelfs-bench\n' >"$ENC_PASS"
chmod 600 "$ENC_PASS"
check_disk
: >"$TSV"

say "building corpusgen, generating -models-mb $MB"
go build -o "$W/corpusgen" ./cmd/corpusgen || die "cannot build ./cmd/corpusgen"
t0=$(now_ns)
"$W/corpusgen" -out "$SRC" -models-mb "$MB" >"$W/logs/corpusgen.log" 2>&1 || die "corpusgen failed, see $W/logs/corpusgen.log"
say "corpus: $(du -sh "$SRC" | cut -f1) in $(secs "$t0" "$(now_ns)") s"
SRC_BYTES=$(du -sb --apparent-size "$SRC" | cut -f1)

for t in "${TOOLS[@]}"; do
  tool_init "$t" >"$W/logs/$t-init.log" 2>&1 || warn "$t init failed, see $W/logs/$t-init.log"
done

STEPS=(initial unchanged)
say "step initial"
for t in "${TOOLS[@]}"; do tool_snapshot "$t" initial; done
say "step unchanged"
for t in "${TOOLS[@]}"; do tool_snapshot "$t" unchanged; done
for mu in "${MUTATIONS[@]}"; do
  set -- $mu
  say "step $1 (corpusgen -mutate $1 -seed $2)"
  "$W/corpusgen" -out "$SRC" -mutate "$1" -seed "$2" >>"$W/logs/corpusgen.log" 2>&1 || die "corpusgen -mutate $1 failed"
  STEPS+=("$1")
  for t in "${TOOLS[@]}"; do tool_snapshot "$t" "$1"; done
done

say "baseline: cold cp -a of the source ($REPS runs)"
for r in $(seq "$REPS"); do
  drop_caches
  cp_once local cp-cold "$SRC"
  add_run "local|cp-cold" "$T_WALL" "$T_RC" "$T_DIFF"
done
record_runs local cp-cold cp
CP_COLD=${WALL[local|cp-cold]}

say "step restore (caches dropped before each)"
for t in "${TOOLS[@]}"; do
  rm -rf "$W/restore"
  mkdir -p "$W/restore"
  drop_caches
  tool_restore "$t" "$W/restore"
  d=failed
  [ $M_RC = 0 ] && d=$(diff_status "$W/restore")
  [[ $d == DIFFERS* ]] && cp "$W/logs/diff-last.txt" "$W/logs/$t-restore.diff" &&
    warn "$t restore differs from the source, see $W/logs/$t-restore.diff"
  record "$t" restore "$M_WALL" "$M_RSS" "$(repo_bytes "$t")" "$M_RC" "$d"
  rm -rf "$W/restore"
done
STEPS+=(restore)

BIG=$(cd "$SRC" && find models -type f -printf '%s %p\n' | sort -n | tail -n1 | cut -d' ' -f2-)
BIG_BYTES=$(stat -c %s "$SRC/$BIG")
if [ "${BENCH_SKIP_MOUNT:-0}" = 1 ]; then
  say "mount section skipped (BENCH_SKIP_MOUNT=1)"
elif [ ! -e /dev/fuse ]; then
  warn "no /dev/fuse: mount section skipped"
else
  say "mount section: cp -a of latest, sequential read of $BIG ($((BIG_BYTES / 1048576)) MiB)"
  MEM_MOUNT=$(memtouch)
  for t in "${TOOLS[@]}"; do bench_mount "$t"; done
fi
MEM_END=$(memtouch)

GOBENCH=$W/gobench.txt
if [ "${BENCH_SKIP_GOBENCH:-0}" != 1 ]; then
  say "go test -bench (snapshot codecs, chunker, hash)"
  go test -run='^$' -bench=. -benchtime=3x ./snapshot/... >"$GOBENCH" 2>&1 || warn "go test -bench failed, see $GOBENCH"
fi

# ---------------------------------------------------------------- report

source "$ROOT/bench/report.sh"
