#!/usr/bin/env bash
# scripts/ceph.sh -- a throw-away single-node Ceph for citadelfs's S3 tests and
# bench: one mon, one mgr, one bluestore OSD on a sparse file, radosgw (beast)
# with an S3 user. No systemd; everything listens on 127.0.0.1 only.
#
#   scripts/ceph.sh install   apt-get install ceph-mon ceph-mgr ceph-osd radosgw ceph-common (Debian 12: 16.2)
#   scripts/ceph.sh start     wipe $CEPH_DIR, bring the cluster up, make the S3 user, wait for S3
#                             (on failure: log tails, stops what it started, exit 1)
#   scripts/ceph.sh stop      stop the daemons 'start' started (by pid, never by name)
#   scripts/ceph.sh status    ceph -s and the listening sockets
#   scripts/ceph.sh env       the variables the tests read: eval "$(scripts/ceph.sh env)"
#
# The tests (internal/cephtest) use a cluster named by CITADELFS_S3_ENDPOINT
# when it is set (.ci/run starts one for the whole run), and otherwise start
# their own with this script in a temp dir, one package at a time.
#
# Pitfalls this script encodes (found bringing it up on Debian 12, ceph 16.2.15):
#   - auth none needs 'ms mon client mode = crc', or clients hang on the mon;
#   - the mon binds its default v2 port 3300 whatever 'mon host' says, so
#     there is one cluster per machine;
#   - the bucket pools are made before radosgw starts, else the first PUT
#     waits seconds for pool creation;
#   - curl 7.88's --aws-sigv4 does not send x-amz-content-sha256 and RGW
#     wants it: s3curl adds it;
#   - RGW 16.2 honours If-None-Match: * on single-part PUTs only, not on
#     multipart uploads (citadelfs puts every pack single-part).
#
# Knobs (env): CEPH_DIR (${TMPDIR:-/tmp}/citadelfs-ceph), RGW_PORT (7480),
#   OSD_SIZE (8G, sparse), S3_ACCESS_KEY, S3_SECRET_KEY, START_TIMEOUT (120 s),
#   PURGE=1 (stop also removes CEPH_DIR).
set -euo pipefail

DIR=${CEPH_DIR:-${TMPDIR:-/tmp}/citadelfs-ceph}
RGW_PORT=${RGW_PORT:-7480}
MON_PORT=3300  # fixed: the mon binds its default v2 port whatever mon host says
OSD_SIZE=${OSD_SIZE:-8G}
S3_ACCESS_KEY=${S3_ACCESS_KEY:-CITADELFSTESTKEY0001}
S3_SECRET_KEY=${S3_SECRET_KEY:-citadelfstestsecret00000000000000000001}
START_TIMEOUT=${START_TIMEOUT:-120}
CONF=$DIR/ceph.conf
DAEMONS="client.rgw.0 mgr.x osd.0 mon.a"

log() { printf '[ceph.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
STARTING=0
die() {
  log "ERROR: $*"; dump_logs
  if [ "$STARTING" = 1 ]; then STARTING=0; stop || true; fi
  exit 1
}
cephc() { timeout 30 ceph -c "$CONF" --connect-timeout 10 "$@"; }

dump_logs() {
  [ -d "$DIR/log" ] || return 0
  for f in "$DIR"/log/*.log; do
    [ -f "$f" ] || continue
    echo "----- tail $f" >&2; tail -n 30 "$f" >&2
  done
}

# wait_for <seconds> <description> <command...>
wait_for() {
  local secs=$1 what=$2; shift 2
  local deadline=$(( SECONDS + secs ))
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || die "timed out after ${secs}s waiting for $what"
    sleep 0.2
  done
}

# s3curl <body> <curl args...>: SigV4-signed request. curl 7.88 does not send
# x-amz-content-sha256 itself, and RGW requires it, so we add it (it gets signed too).
s3curl() {
  local body=$1; shift
  local sha; sha=$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)
  local data=(); [ -n "$body" ] && data=(--data-binary "$body")
  curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
    -H "x-amz-content-sha256: $sha" "${data[@]}" "$@"
}

pid_of() {   # prints the pid of a daemon we started, if it is still alive and ours
  local f="$DIR/run/$1.pid" pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  [ -d "/proc/$pid" ] || return 1
  # guard against pid reuse: the process must use *our* config file
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CONF" || return 1
  echo "$pid"
}

write_conf() {
  local fsid; fsid=$(uuidgen)
  cat > "$CONF" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$MON_PORT]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
ms bind msgr1 = false
ms bind msgr2 = true
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
client mount timeout = 30
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = true
crash dir = $DIR/crash
keyring = $DIR/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
mon warn on insecure global id reclaim allowed = false
mon warn on insecure global id reclaim = false
paxos propose interval = 0.1
paxos min wait = 0.01

[mon]
mon data = $DIR/mon/\$id
mon cluster log file = $DIR/log/mon-cluster.log

[mgr]
mgr data = $DIR/mgr/\$id
mgr initial modules =

[osd]
osd data = $DIR/osd/\$id
osd objectstore = bluestore
bluestore block create = true
bluestore block size = $(numfmt --from=iec "$OSD_SIZE")
bluestore fsck on mount = false
osd memory target = 1073741824
osd crush update on start = true
osd class load list = *
osd class default list = *

[client.rgw.0]
rgw data = $DIR/rgw
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw thread pool size = 64
rgw dns name = localhost
rgw enable usage log = false
EOF
  : > "$DIR/keyring"
}

install() {
  command -v ceph-mon >/dev/null && command -v radosgw >/dev/null && return 0
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q ceph-mon ceph-mgr ceph-osd radosgw ceph-common
}

start() {
  local t0=$SECONDS pid d p
  for d in $DAEMONS; do
    if pid=$(pid_of "$d"); then die "$d already running (pid $pid); run '$0 stop' first"; fi
  done
  for p in "$MON_PORT" "$RGW_PORT"; do
    if ss -Hltn "sport = :$p" | grep -q .; then die "port $p already in use"; fi
  done
  STARTING=1
  rm -rf "$DIR"
  mkdir -p "$DIR"/{run,log,crash,mon/a,mgr/x,osd/0,rgw}
  write_conf

  log "mon: mkfs + start"
  ceph-mon -c "$CONF" -i a --mkfs --keyring "$DIR/keyring" >"$DIR/log/mon-mkfs.out" 2>&1 \
    || { cat "$DIR/log/mon-mkfs.out" >&2; die "ceph-mon --mkfs failed"; }
  ceph-mon -c "$CONF" -i a >"$DIR/log/mon.a.out" 2>&1 || die "ceph-mon failed to start"
  wait_for 30 "mon quorum" cephc mon stat

  log "mgr: start"
  ceph-mgr -c "$CONF" -i x >"$DIR/log/mgr.x.out" 2>&1 || die "ceph-mgr failed to start"

  log "osd: create + mkfs (bluestore on sparse $OSD_SIZE file) + start"
  local uuid; uuid=$(uuidgen)
  local id; id=$(cephc osd new "$uuid")
  [ "$id" = 0 ] || die "expected osd id 0, got '$id'"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >"$DIR/log/osd-mkfs.out" 2>&1 \
    || { cat "$DIR/log/osd-mkfs.out" >&2; die "ceph-osd --mkfs failed"; }
  ceph-osd -c "$CONF" -i 0 >"$DIR/log/osd.0.out" 2>&1 || die "ceph-osd failed to start"
  wait_for 60 "osd.0 up" sh -c "ceph -c '$CONF' osd dump 2>/dev/null | grep -q '^osd.0 up'"

  log "rgw: pre-create bucket pools (else the first PUT waits seconds for pool creation)"
  local cmds=""
  for p in default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec; do
    cmds+="osd pool create $p 8 8"$'\n'"osd pool application enable $p rgw"$'\n'
  done
  printf '%s' "$cmds" | cephc >"$DIR/log/pools.out" 2>&1 || { cat "$DIR/log/pools.out" >&2; die "pool creation failed"; }

  log "rgw: start on 127.0.0.1:$RGW_PORT"
  radosgw -c "$CONF" -n client.rgw.0 >"$DIR/log/client.rgw.0.out" 2>&1 || die "radosgw failed to start"
  wait_for "$START_TIMEOUT" "rgw HTTP on :$RGW_PORT" curl -fsS -o /dev/null "http://127.0.0.1:$RGW_PORT/"

  log "rgw: create S3 user"
  timeout 60 radosgw-admin -c "$CONF" user create --uid=ci --display-name="CI user" \
    --access-key="$S3_ACCESS_KEY" --secret-key="$S3_SECRET_KEY" >"$DIR/log/user-create.json" 2>"$DIR/log/user-create.err" \
    || { cat "$DIR/log/user-create.err" >&2; die "radosgw-admin user create failed"; }
  log "s3: warm-up (signed create bucket / put / get / delete with curl --aws-sigv4)"
  local url="http://127.0.0.1:$RGW_PORT/citadelfs-warmup"
  wait_for 30 "S3 auth to work for the new user" s3curl "" -X PUT "$url"
  s3curl hello -X PUT "$url/obj" >/dev/null || die "warm-up PUT failed"
  [ "$(s3curl "" "$url/obj")" = hello ] || die "warm-up GET failed"
  s3curl "" -X DELETE "$url/obj" >/dev/null && s3curl "" -X DELETE "$url" >/dev/null || die "warm-up DELETE failed"
  STARTING=0
  log "ready in $(( SECONDS - t0 ))s: S3 endpoint http://127.0.0.1:$RGW_PORT"
}

stop() {
  # tiers: rgw first (it needs the mon to shut down cleanly), then mgr+osd, then mon
  local t0=$SECONDS any=0 pid d tier
  for tier in "client.rgw.0" "mgr.x osd.0" "mon.a"; do
    local pids=()
    for d in $tier; do
      if pid=$(pid_of "$d"); then log "stopping $d (pid $pid)"; pids+=("$pid"); kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for pid in "${pids[@]}"; do
      any=1
      for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
      if [ -d "/proc/$pid" ]; then log "pid $pid did not exit in 10s, SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
    done
  done
  [ $any = 1 ] || log "no daemons running"
  if ss -Hltn "( sport = :$MON_PORT or sport = :$RGW_PORT )" | grep -q .; then
    log "WARNING: port $MON_PORT or $RGW_PORT still listening"; return 1
  fi
  if [ "${PURGE:-0}" = 1 ]; then rm -rf "$DIR"; fi
  log "stopped in $(( SECONDS - t0 ))s"
}

status() {
  cephc -s || true
  for d in $DAEMONS; do
    if pid=$(pid_of "$d"); then echo "$d pid=$pid rss_kb=$(awk '/VmRSS/{print $2}' /proc/$pid/status)"; else echo "$d not running"; fi
  done
  ss -Hltnp | grep -E 'ceph|radosgw' || true
}

case "${1:-}" in
  install) install ;;
  start)  start ;;
  stop)   stop ;;
  status) status ;;
  env)    printf 'export CITADELFS_S3_ENDPOINT=http://127.0.0.1:%s AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_REGION=us-east-1 CITADELFS_CEPH_CONF=%s\n' \
            "$RGW_PORT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$CONF" ;;
  *) echo "usage: $0 install|start|stop|status|env" >&2; exit 2 ;;
esac
