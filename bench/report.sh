# Sourced by bench/bench.sh once every step ran: prints the tables and the
# target checks, and writes .bench/results.{txt,json} (results.tsv is written
# as the run goes). Reads WALL RSS REPO RC EXTRA, STEPS, CP_COLD, MB,
# SRC_BYTES, BIG, BIG_BYTES, COLD_OK, GOBENCH and W from bench.sh.

ok() { [ "${RC[$1]:-x}" = 0 ]; }
num() { awk -v v="$1" -v f="$2" 'BEGIN{printf f, v}'; }
mib() { awk -v v="$1" -v d="$2" 'BEGIN{printf "%.0f", v/d}'; }

# A tool left out (BENCH_TOOLS) has no result: "-", not FAIL.
cell_time() { if ok "$1"; then num "${WALL[$1]}" '%.2f'; elif [ -n "${RC[$1]:-}" ]; then echo FAIL; else echo -; fi; }
cell_rss() { if ok "$1"; then mib "${RSS[$1]}" 1024; else echo -; fi; }
cell_repo() { if ok "$1" && [ "${REPO[$1]:-0}" != 0 ]; then mib "${REPO[$1]}" 1048576; else echo -; fi; }
# ratio A B: A/B with one decimal, "-" where either is missing or zero.
ratio() { awk -v a="${1:--}" -v b="${2:--}" 'BEGIN{ if (a+0 > 0 && b+0 > 0) printf "%.2f", a/b; else printf "-" }'; }
rwall() { ok "$1" && echo "${WALL[$1]}" || echo -; }
rrepo() { ok "$1" && echo "${REPO[$1]}" || echo -; }

report() {
  local s t k
  echo
  echo "citadelfs bench: corpusgen -models-mb $MB ($(mib "$SRC_BYTES" 1048576) MiB source), $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB RAM, $(date -u +%FT%TZ)"
  echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); restic $(restic version 2>/dev/null | awk '{print $2}'), borg $(borg --version 2>/dev/null | awk '{print $2}')"
  echo "load average at start: ${LOAD_START:-?}, at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the times)"
  # "first re-touch" pairs from bench/memtouch, in MB/s.
  local mt=() m
  for m in "start:${MEM_START:-}" "mount section:${MEM_MOUNT:-}" "end:${MEM_END:-}"; do
    [ -n "${m#*:}" ] && mt+=("${m%%:*} $(echo "${m#*:}" | awk '{print $1 " (" $2 ")"}')")
  done
  [ ${#mt[@]} -gt 0 ] && echo "writing new memory, MB/s (memory in use): $(IFS=';'; echo "${mt[*]}" | sed 's/;/; /g'); FUSE reads and cp pay the first rate"
  [ "$COLD_OK" = 1 ] || echo "WARNING: page caches could not be dropped; cold numbers are warm"
  echo
  echo "Snapshots and restore: wall s / peak RSS MiB / repository MiB after the step"
  echo "speedup = other tool's time / citadelfs time (>1: citadelfs faster); size = citadelfs repo / other repo (<1: smaller)"
  printf '%-13s|%8s %5s %6s |%8s %5s %6s |%8s %5s %6s |%8s %8s |%6s %6s\n' \
    step "cfs s" RSS repo "restic s" RSS repo "borg s" RSS repo "x restic" "x borg" "/restic" "/borg"
  printf '%s\n' "-------------+----------------------+----------------------+----------------------+------------------+--------------"
  for s in "${STEPS[@]}"; do
    local c="citadelfs|$s" r="restic|$s" b="borg|$s"
    printf '%-13s|%8s %5s %6s |%8s %5s %6s |%8s %5s %6s |%8s %8s |%6s %6s\n' "$s" \
      "$(cell_time "$c")" "$(cell_rss "$c")" "$(cell_repo "$c")" \
      "$(cell_time "$r")" "$(cell_rss "$r")" "$(cell_repo "$r")" \
      "$(cell_time "$b")" "$(cell_rss "$b")" "$(cell_repo "$b")" \
      "$(ratio "$(rwall "$r")" "$(rwall "$c")")" "$(ratio "$(rwall "$b")" "$(rwall "$c")")" \
      "$(ratio "$(rrepo "$c")" "$(rrepo "$r")")" "$(ratio "$(rrepo "$c")" "$(rrepo "$b")")"
  done
  echo "local cold cp -a of the source: $(num "$CP_COLD" '%.2f') s"
  printf 'restore check (diff -r):'
  for t in "${TOOLS[@]}"; do printf ' %s %s;' "$t" "${EXTRA[$t|restore]:-?}"; done
  echo
  for t in "${TOOLS[@]}"; do
    for s in "${STEPS[@]}"; do
      k="$t|$s"
      [ -n "${RC[$k]:-}" ] && [ "${RC[$k]}" != 0 ] && echo "note: $t $s exited ${RC[$k]} (see $W/logs/$t-$s.err)"
    done
  done
  if [ -n "${EXTRA[citadelfs|initial]:-}" ]; then
    echo "citadelfs --json per step:"
    for s in "${STEPS[@]}"; do
      [ "$s" = restore ] && continue
      printf '  %-13s %s\n' "$s" "${EXTRA[citadelfs|$s]:-}"
    done
  fi

  if [ -n "${RC[local|cp-cold]:-}" ] && { [ -n "${RC[citadelfs|mount-cp-cold]:-}" ] || [ -n "${RC[borg|mount-cp-cold]:-}" ]; }; then
    echo
    echo "Mounts (latest snapshot): cp -a s, sequential read of $BIG ($(mib "$BIG_BYTES" 1048576) MiB) MB/s, daemon peak RSS MiB"
    printf '%-16s|' ""
    for t in "${TOOLS[@]}"; do printf '%14s |' "$t"; done
    echo
    printf '%s' "----------------"
    for t in "${TOOLS[@]}"; do printf '%s' "+---------------"; done
    echo
    for s in mount-cp-cold mount-cp-warm seq-cold seq-packs-warm seq-warm mount-daemon-rss; do
      printf '%-16s|' "$s"
      for t in "${TOOLS[@]}"; do
        k="$t|$s"
        if [ -z "${RC[$k]:-}" ]; then
          v=-
        elif ! ok "$k"; then
          v="FAIL"
          [[ ${EXTRA[$k]:-} == skipped* ]] && v=skipped
        else
          case $s in
          mount-cp-*) v="$(num "${WALL[$k]}" '%.2f') s" ;;
          seq-*) v="${EXTRA[$k]} MB/s" ;;
          mount-daemon-rss) v="$(mib "${RSS[$k]}" 1024) MiB" ;;
          esac
        fi
        printf '%14s |' "$v"
      done
      echo
    done
    printf 'mount cp -a check (diff -r):'
    for t in "${TOOLS[@]}"; do printf ' %s %s;' "$t" "${EXTRA[$t|mount-cp-cold]:-?}"; done
    echo
  fi

  if [ -n "${RC[citadelfs-enc|initial]:-}" ]; then
    echo
    echo "Encrypted (citadelfs-enc: aes-256-gcm, keyed ids and gear table) against citadelfs in the clear: wall s, peak RSS MiB, repository MiB"
    echo "enc/cfs = encrypted time / clear time (<= 1.15 is the target); cpu = user + system s, the steadier measure on a loaded machine;"
    echo "x restic = restic's time / encrypted time (restic always encrypts). Each encrypted command first unlocks a key slot (argon2id, 64 MiB)."
    printf '%-13s|%8s %6s %5s %6s |%8s %6s %5s %6s |%8s %8s %8s\n' step "cfs s" cpu RSS repo "enc s" cpu RSS repo "enc/cfs" "cpu e/c" "x restic"
    printf '%s\n' "-------------+-----------------------------+-----------------------------+---------------------------"
    for s in "${STEPS[@]}"; do
      local c="citadelfs|$s" e="citadelfs-enc|$s"
      printf '%-13s|%8s %6s %5s %6s |%8s %6s %5s %6s |%8s %8s %8s\n' "$s" \
        "$(cell_time "$c")" "${CPU[$c]:--}" "$(cell_rss "$c")" "$(cell_repo "$c")" \
        "$(cell_time "$e")" "${CPU[$e]:--}" "$(cell_rss "$e")" "$(cell_repo "$e")" \
        "$(ratio "$(rwall "$e")" "$(rwall "$c")")" "$(ratio "${CPU[$e]:--}" "${CPU[$c]:--}")" \
        "$(ratio "$(rwall "restic|$s")" "$(rwall "$e")")"
    done
    echo "(the encrypted repository's index is a cache outside it, in $W/cache/citadelfs-enc, not counted; the clear one's is inside)"
  fi

  echo
  echo "Targets (issues 2, 3 and 11):"
  CHECKS=()
  check "initial snapshot >= 4x faster than restic" \
    "$(ratio "$(rwall restic\|initial)" "$(rwall citadelfs\|initial)")" '>=' 4 x
  check "unchanged re-snapshot < 0.3 s" "$(rwall citadelfs\|unchanged)" '<' 0.3 s
  local peak=0
  for s in "${STEPS[@]}"; do
    ok "citadelfs|$s" && [ "${RSS[citadelfs|$s]}" -gt "$peak" ] && peak=${RSS[citadelfs|$s]}
  done
  check "peak RSS (every snapshot and the restore) < 200 MiB" "$(mib "$peak" 1024)" '<' 200 MiB
  local last=${STEPS[-2]}
  check "repository <= borg's (after $last)" "$(ratio "$(rrepo citadelfs\|$last)" "$(rrepo borg\|$last)")" '<=' 1 "x borg"
  check "restore <= 2x cold cp -a" "$(ratio "$(rwall citadelfs\|restore)" "$CP_COLD")" '<=' 2 "x cp"
  check "restore identical (diff -r)" "${EXTRA[citadelfs|restore]:--}" '==' identical ""
  check "mount cp -a (cold) <= 2x local cold cp -a" "$(ratio "$(rwall citadelfs\|mount-cp-cold)" "$CP_COLD")" '<=' 2 "x cp"
  check "mount cp -a (cold) >= 4x faster than borg mount" \
    "$(ratio "$(rwall borg\|mount-cp-cold)" "$(rwall citadelfs\|mount-cp-cold)")" '>=' 4 x
  local seq=-
  ok "citadelfs|seq-packs-warm" && seq=${EXTRA[citadelfs|seq-packs-warm]}
  check "seq read, packs in page cache >= 1000 MB/s" "$seq" '>=' 1000 MB/s
  local hwm=-
  ok "citadelfs|mount-daemon-rss" && hwm=$(mib "${RSS[citadelfs|mount-daemon-rss]}" 1024)
  check "mount daemon peak RSS < 300 MiB" "$hwm" '<' 300 MiB
  check "encrypted initial snapshot within 15% of the clear one" \
    "$(ratio "$(rwall citadelfs-enc\|initial)" "$(rwall citadelfs\|initial)")" '<=' 1.15 "x clear"
  check "encrypted initial snapshot's CPU within 15% of the clear one's" \
    "$(ratio "${CPU[citadelfs-enc|initial]:--}" "${CPU[citadelfs|initial]:--}")" '<=' 1.15 "x clear"
  check "encrypted restore within 15% of the clear one" \
    "$(ratio "$(rwall citadelfs-enc\|restore)" "$(rwall citadelfs\|restore)")" '<=' 1.15 "x clear"
  check "encrypted restore identical (diff -r)" "${EXTRA[citadelfs-enc|restore]:--}" '==' identical ""
  local encseq=-
  if ok "citadelfs|seq-packs-warm" && ok "citadelfs-enc|seq-packs-warm"; then
    encseq=$(ratio "${EXTRA[citadelfs-enc|seq-packs-warm]}" "${EXTRA[citadelfs|seq-packs-warm]}")
  fi
  check "encrypted mount seq read (packs warm) within 15% of the clear one" "$encseq" '>=' 0.85 "x clear"

  if [ -s "${GOBENCH:-/nonexistent}" ]; then
    echo
    echo "go test -run=^\$ -bench=. -benchtime=3x ./snapshot/... (full output: $GOBENCH)"
    # name, then every metric but ns/op, B/op and allocs/op: MB/s, ratio, B/chunk.
    awk '/^pkg:/ {print "  " $2; next}
      /^(FAIL|---)/ {print "  " $0; next}
      /^Benchmark/ {
        n = $1; sub(/^Benchmark/, "", n); sub(/-[0-9]+$/, "", n); line = sprintf("    %-34s", n)
        for (i = 3; i < NF; i += 2) if ($(i+1) != "ns/op" && $(i+1) != "B/op" && $(i+1) != "allocs/op")
          line = line sprintf(" %10s %s", $i, $(i+1))
        print line }' "$GOBENCH"
  fi
}

# check NAME VALUE OP LIMIT UNIT: prints PASS/FAIL/n/a and remembers it for the JSON.
check() {
  local name=$1 v=$2 op=$3 lim=$4 unit=$5 res
  if [ "$op" = '==' ]; then
    [ "$v" = "$lim" ] && res=PASS || res=FAIL
    [ "$v" = - ] && res=n/a
  elif [[ $v =~ ^[0-9.]+$ ]]; then
    res=$(awk -v v="$v" -v l="$lim" -v op="$op" 'BEGIN{
      p = (op==">=") ? v>=l : (op=="<") ? v<l : (op=="<=") ? v<=l : 0; print p ? "PASS" : "FAIL" }')
  else
    res=n/a
  fi
  printf '  %-4s %-52s %s %s (target %s %s)\n' "$res" "$name" "$v" "$unit" "$op" "$lim"
  CHECKS+=("$res"$'\t'"$name"$'\t'"$v"$'\t'"$op $lim $unit")
}

json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }

write_json() {
  local first=1 line tool step wall rss repo rc extra
  {
    printf '{"models_mb":%s,"source_bytes":%s,"cold_caches":%s,"local_cp_cold_s":%s,"largest_model_file":%s,' \
      "$MB" "$SRC_BYTES" "$([ "$COLD_OK" = 1 ] && echo true || echo false)" "${CP_COLD:-null}" "$(json_str "$BIG")"
    # bench/memtouch: "first-touch re-touch" MB/s at three points of the run.
    printf '"memtouch_mbs":{"start":%s,"mount":%s,"end":%s},"results":[' \
      "$(json_str "${MEM_START:-}")" "$(json_str "${MEM_MOUNT:-}")" "$(json_str "${MEM_END:-}")"
    while IFS=$'\t' read -r tool step wall rss repo rc extra; do
      [ $first = 1 ] || printf ','
      first=0
      printf '\n{"tool":%s,"step":%s,"wall_s":%s,"peak_rss_kib":%s,"repo_bytes":%s,"rc":%s,"extra":' \
        "$(json_str "$tool")" "$(json_str "$step")" "$wall" "${rss:-0}" "${repo:-0}" "$rc"
      if [[ $extra == \{* ]]; then printf '%s}' "$extra"; else printf '%s}' "$(json_str "$extra")"; fi
    done <"$TSV"
    printf '],\n"checks":['
    first=1
    for line in "${CHECKS[@]}"; do
      IFS=$'\t' read -r res name v tgt <<<"$line"
      [ $first = 1 ] || printf ','
      first=0
      printf '\n{"result":%s,"target":%s,"value":%s,"limit":%s}' "$(json_str "$res")" "$(json_str "$name")" "$(json_str "$v")" "$(json_str "$tgt")"
    done
    printf ']}\n'
  } >"$W/results.json"
}

report >"$W/results.txt"
cat "$W/results.txt"
write_json
echo
echo "raw results: $W/results.tsv, $W/results.json, $W/results.txt; logs in $W/logs/"
