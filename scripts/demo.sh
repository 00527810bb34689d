#!/usr/bin/env bash
# make demo: the main job on an embedded default — a local repository under
# .demo/, a small corpusgen source tree — snapshot, change, snapshot again,
# list, restore, verify, check, and (as root with /dev/fuse) mount and show
# the tree and status files.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin/citadelfs
D=$PWD/.demo
rm -rf "$D"; mkdir -p "$D"
go build -o "$D/corpusgen" ./cmd/corpusgen
echo "== generating a small AI-server tree (64 MiB of bf16 models, configs, logs)"
"$D/corpusgen" -out "$D/src" -models-mb 64 -logs-mb 8 -configs 300 >/dev/null
export CITADELFS_REPO=$D/repo
# The repository is encrypted (the default): its passphrase is a generated
# file in the demo's own state dir, where its index cache lives too
# (docs/encryption.md); on a server it is /etc/citadelfs/password or the
# systemd credential the units load.
export CITADELFS_STATE_DIR=$D/state
mkdir -p -m 700 "$D/state"
head -c 24 /dev/urandom | base64 > "$D/state/password"
chmod 600 "$D/state/password"
export CITADELFS_PASSWORD_FILE=$D/state/password
SRC=(--source "models=$D/src/models" --source "configs=$D/src/configs" --source "logs=$D/src/logs")
"$BIN" init
echo "== first snapshot"
"$BIN" snapshot "${SRC[@]}" --tag daily
echo "== a day on the server, then the next snapshot"
"$D/corpusgen" -out "$D/src" -mutate day -seed 2 >/dev/null
"$BIN" snapshot "${SRC[@]}" --tag daily
"$BIN" snapshots
echo "== restore the latest snapshot and compare with the source"
"$BIN" restore latest "$D/restore"
for s in models configs logs; do diff -r --no-dereference "$D/src/$s" "$D/restore/$s"; done
echo "restore identical to the source"
"$BIN" check --read-data
if [ "$(id -u)" = 0 ] && [ -e /dev/fuse ]; then
  echo "== mount"
  mkdir -p "$D/mnt"
  "$BIN" mount "$D/mnt" & pid=$!
  for _ in $(seq 50); do [ -e "$D/mnt/status" ] && break; sleep 0.1; done
  # The monitor takes its first sample as the mount starts (CPU load is
  # measured over a second); until it lands status/health says UNKNOWN.
  for _ in $(seq 50); do grep -q "no sample collected yet" "$D/mnt/status/health" 2>/dev/null || break; sleep 0.2; done
  ls "$D/mnt" "$D/mnt/latest"
  for f in snapshots repo backup health alerts; do
    [ -e "$D/mnt/status/$f" ] && { echo "-- status/$f"; cat "$D/mnt/status/$f"; }
    [ "$f" = alerts ] && [ ! -s "$D/mnt/status/alerts" ] && echo "(empty: no alert is firing)"
  done
  kill -TERM $pid; wait $pid || true
fi
echo "== demo done: encrypted repository at $D/repo (passphrase in $D/state/password)"
