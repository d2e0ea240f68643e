#!/usr/bin/env bash
# Benchmark: a year of use (issue 11, item 5). A generated vault, then SESSIONS work sessions
# (`make-vault DIR --session N`: a few appended notes, a new note, an occasional deletion and
# attachment); after each one `opus-mirror run --trigger hook` (the post-session hook) with a
# dir target (incremental bundles, a full one every 7 days, restic-style retention), once per
# faked day `opus-mirror run --trigger timer` (the daily timer, an hour after that day's last
# session), and beside them `restic backup` and `borg create` of the same vault. The two kinds
# of run are recorded apart (the `trigger` column; p50/p95/max of each). At the end: `check`, `drill`, a full `restore --to` and
# `recover --from DRIVE --to`, beside `restic check --read-data`/`restore` and
# `borg check --verify-data`/`extract`. Prints Markdown tables (paste into docs/benchmarks.md).
#
#   bench/year.sh BINARY [SESSIONS=365] [NOTES=20000] [ATTACH=1000]
#
# The clock: opus-mirror runs under faketime, session N at (real now + N days) — one session a
# day, a year in all — so every run finds the target due (`every = "1d"`), a full bundle
# comes every 7th day, and `run`'s weekly full check and drill (the defaults) fall due as they
# would in a year of daily use. PER_DAY=k in the environment runs k sessions a faked day
# (then `every` is 24/k hours). ONLY_OM=1 leaves restic and borg out (more sessions in the
# same time; their figures from an earlier run stand). restic and borg run on the real clock (they schedule nothing).
# Compression: opus-mirror zlib (git objects), restic 0.14 its default (repo v2, zstd
# "auto"), borg 1.2 its default (lz4); restic and borg encrypt (borg `repokey`), we do not.
#
# Environment: UNTIL (a time `date -d` reads, e.g. 20:40) ends the sessions early when it is
# passed, then measures the end of the year as it stands (the summary says so); WORKROOT (default /tmp) holds the work dir, removed at the end unless KEEP=1;
# OUT (default WORKDIR.results) receives the CSVs (one per tool: session, wall_ms,
# repo_bytes, ...) and summary.md, and is kept.
# Needs: faketime, restic, borg (apt-get install faketime restic borgbackup), python3, GNU time.
# Not a test: figures depend on the machine and its load; docs/benchmarks.md records both.
set -euo pipefail
usage="usage: bench/year.sh BINARY [SESSIONS=365] [NOTES=20000] [ATTACH=1000]"
bin=$(realpath "${1:?$usage}")
sessions=${2:-365} notes=${3:-20000} attach=${4:-1000}
per_day=${PER_DAY:-1}
until_s=$(if [[ -n ${UNTIL:-} ]]; then date -d "$UNTIL" +%s; else echo 0; fi)
requested=$sessions
[[ -x $bin ]] || { echo "not an executable: $bin" >&2; exit 2; }
only_om=${ONLY_OM:-0}
tools=(faketime python3 /usr/bin/time)
(( only_om )) || tools+=(restic borg)
for t in "${tools[@]}"; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install faketime restic borgbackup time)" >&2; exit 2; }
done
root=$(cd "$(dirname "$0")/.." && pwd)
make_vault=$root/../shared/bench/make-vault
[[ -f $make_vault ]] || { echo "missing $make_vault" >&2; exit 2; }

work=$(mktemp -d "${WORKROOT:-/tmp}/om-year.XXXXXX")
out=${OUT:-$work.results}
mkdir -p "$out"
cleanup() {
  if [[ ${KEEP:-0} == 1 ]]; then echo "work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
vault=$work/vault drive=$work/drive state=$work/state
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$work/restic-cache
export BORG_PASSPHRASE=bench BORG_BASE_DIR=$work/borg-home BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export OPUS_MIRROR_CONFIG=$work/config.toml
# libfaketime: shift the wall clock only; monotonic clocks and file times stay real.
export FAKETIME_DONT_FAKE_MONOTONIC=1 NO_FAKE_STAT=1

python3 "$make_vault" "$vault" --notes "$notes" --attachments "$attach" >/dev/null
vault_config "$work/config.toml" "$state" "$vault" "$drive"
cat >> "$work/config.toml" <<TOML
every = "$((24 / per_day))h"
mode = "incremental"
full_every = "7d"
keep = { daily = 7, weekly = 4, monthly = 12 }
TOML
if (( ! only_om )); then
  restic init -q -r "$work/restic" >/dev/null
  borg init --encryption=repokey "$work/borg" >/dev/null 2>&1
fi

# at N: the faketime prefix for session N's faked time, in the array `at`.
set_at() { at=(faketime -f "+$(($1 * 86400 / per_day + ${2:-0}))"); }
bytes() { du -sb "$@" 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'; }
packs() { find "$state/repos" -name '*.pack' | wc -l; }
lines() { if [[ -f $1 ]]; then wc -l < "$1"; else echo 0; fi; }
hist=$state/state/history.jsonl
# What a run did, from the lines it added to the history: its steps but snapshot and run, a
# bundle as full or incr, a check as check-full when it read everything.
steps_of='
import json, sys
seen = []
for line in sys.stdin:
    r = json.loads(line)
    s, d = r["step"], r.get("data") or {}
    if s in ("snapshot", "run"): continue
    if s == "bundle": s = {"incremental": "incr"}.get(d.get("kind"), d.get("kind") or "bundle")
    if s == "check" and d.get("read"): s = "check-read"
    if r.get("outcome") != "ok": s += "(" + str(r.get("outcome")) + ")"
    if s not in seen: seen.append(s)
print(" ".join(seen))'
ms() { echo $(( $(date +%s%N) / 1000000 )); }
# timed TOOL N CMD...: one run of CMD into wall (ms), written (bytes, GNU time's %O) and rc.
# Exit 3 (done with warnings) is a result; any other failure stops the benchmark.
timed() {
  local t0 t1
  rc=0 t0=$(ms)
  /usr/bin/time -f '%O' -o "$work/io" "${@:3}" >"$work/$1.out" 2>&1 || rc=$?
  t1=$(ms)
  if (( rc != 0 && rc != 3 )); then
    echo "session $2: $1 exited $rc:" >&2; tail -20 "$work/$1.out" >&2; exit 1
  fi
  wall=$((t1 - t0)) written=$(( $(tail -1 "$work/io") * 512 ))
}
# measure3 LABEL CMD...: lib.sh's measure (wall s, peak RSS MiB), exit 3 counted as success;
# a failure is shown and recorded in the table (the year's CSVs are worth keeping anyway).
measure3() {
  local label=$1 rc=0 s k; shift
  /usr/bin/time -f "%e %M" -o "$work/t" "$@" >"$work/err" 2>&1 || rc=$?
  read -r s k < <(tail -1 "$work/t")
  secs[$label]=$s; mem[$label]=$((k / 1024))
  if (( rc != 0 && rc != 3 )); then
    echo "$label exited $rc:" >&2; tail -20 "$work/err" >&2; secs[$label]="FAILED (exit $rc) after $s"
  fi
}

# Session 0: the vault as generated, the first backup of every tool.
set_at 0
"${at[@]}" "$bin" init --quiet
echo "session,trigger,wall_ms,repo_bytes,drive_bytes,delta_bytes,written_bytes,rc,packs,events" > "$out/opus-mirror.csv"
echo "session,wall_ms,repo_bytes,written_bytes" > "$out/restic.csv"
echo "session,wall_ms,repo_bytes,written_bytes" > "$out/borg.csv"
prev=$(( $(bytes "$state/repos") + $(bytes "$drive") ))
# om_run N TRIGGER OFFSET: one timed `run --trigger TRIGGER` at session N's faked time +
# OFFSET seconds, a line of opus-mirror.csv.
om_run() {
  local lines0 packs0 packs1 repo drv events
  lines0=$(lines "$hist") packs0=$(packs)
  set_at "$1" "$3"
  timed om "$1" "${at[@]}" "$bin" run --quiet --trigger "$2"
  repo=$(bytes "$state/repos") drv=$(bytes "$drive")
  events=$(tail -n +"$((lines0 + 1))" "$hist" | python3 -c "$steps_of")
  packs1=$(packs)
  if (( packs1 < packs0 )); then events+=" repack"; fi
  echo "$1,$2,$wall,$repo,$drv,$((repo + drv - prev)),$written,$rc,$packs1,${events# }" >> "$out/opus-mirror.csv"
  prev=$((repo + drv))
}
start=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for ((n = 0; n <= sessions; n++)); do
  (( n == 0 )) || python3 "$make_vault" "$vault" --session "$n" >/dev/null
  # opus-mirror: the post-session hook's run (session 0 is the first backup, a manual run).
  if (( n == 0 )); then om_run 0 manual 0; else om_run "$n" hook 0; fi
  # restic and borg: the same vault after the same session.
  if (( ! only_om )); then
    timed restic "$n" restic -q -r "$work/restic" backup --host bench "$vault"
    echo "$n,$wall,$(bytes "$work/restic"),$written" >> "$out/restic.csv"
    timed borg "$n" bash -c 'cd "$1" && borg create "$2::s$3" .' _ "$vault" "$work/borg" "$n"
    echo "$n,$wall,$(bytes "$work/borg"),$written" >> "$out/borg.csv"
  fi
  # The daily timer, an hour after the faked day's last session.
  if (( n > 0 && n % per_day == per_day - 1 )); then om_run "$n" timer 3600; fi
  if (( until_s > 0 && n < sessions && $(date +%s) >= until_s )); then
    echo "UNTIL $UNTIL passed: stopping after session $n of $sessions" >&2
    sessions=$n
  fi
  if (( n % 10 == 0 )); then
    el=$(( $(date +%s) - start ))
    echo "session $n/$sessions, ${el}s elapsed, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  fi
done
load_loop=$(cut -d' ' -f1-3 /proc/loadavg)
loop_secs=$(( $(date +%s) - start ))

# The end of the year: verify and restore, each tool from its own repo.
fresh="env HOME=$work/fresh XDG_CONFIG_HOME=$work/fresh/.config XDG_DATA_HOME=$work/fresh/.local/share OPUS_MIRROR_CONFIG="
set_at "$sessions"
measure3 om-check "${at[@]}" "$bin" check --quiet
measure3 om-check-rd "${at[@]}" "$bin" check --read-data --quiet
measure3 om-drill "${at[@]}" "$bin" drill --quiet
measure3 om-restore "${at[@]}" "$bin" restore --to "$work/restored" --quiet
rm -rf "$work/restored"
# shellcheck disable=SC2086  # $fresh is split into words on purpose
measure3 om-recover "${at[@]}" $fresh "$bin" recover --from "$drive" --to "$work/recovered" --quiet
diff -r -q "$vault" "$work/recovered" >/dev/null 2>&1 || echo "note: recovered tree differs from the vault (see KEEP=1)" >&2
rm -rf "$work/recovered" "$work/fresh"
if (( only_om )); then
  for l in restic-check restic-restore borg-check borg-extract; do secs[$l]="not run (ONLY_OM)"; mem[$l]=–; done
else
  measure3 restic-check restic -q -r "$work/restic" check --read-data
  measure3 restic-restore restic -q -r "$work/restic" restore latest --target "$work/restored"
  rm -rf "$work/restored"
  measure3 borg-check borg check --verify-data "$work/borg"
  mkdir -p "$work/restored"
  measure3 borg-extract bash -c 'cd "$1" && borg extract "$2::s$3"' _ "$work/restored" "$work/borg" "$sessions"
  rm -rf "$work/restored"
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo "vault: $notes notes + $attach attachments, after $sessions sessions $(find "$vault" -type f | wc -l) files," \
    "$(( $(bytes "$vault") / 1048576 )) MiB; $sessions sessions$( ((sessions < requested)) && echo " (of $requested asked: stopped at UNTIL=$UNTIL)") at $per_day a faked day; $(nproc) cores; $(date -u +'%F %H:%M UTC')"
  echo "load average (1/5/15 min): at start $load_start, after the sessions $load_loop, at the end $load_end;" \
    "sessions loop $((loop_secs / 60)) min"
  (( only_om )) || echo "restic repo $(restic -q -r "$work/restic" cat config | python3 -c 'import json,sys; print("v" + str(json.load(sys.stdin)["version"]))')," \
    "$(restic version | cut -d' ' -f1-2), $(borg --version)"
  python3 - "$out" "$sessions" <<'PY'
import csv, sys
out, sessions = sys.argv[1], int(sys.argv[2])
def rows(tool): return list(csv.DictReader(open(f"{out}/{tool}.csv")))
def pct(xs, p):
    xs = sorted(xs); k = (len(xs) - 1) * p / 100; f = int(k)
    return xs[f] + (xs[min(f + 1, len(xs) - 1)] - xs[f]) * (k - f)
def mib(b):
    return f"{b / 1048576:.1f} MiB" if abs(b) >= 1048576 else f"{b / 1024:.0f} KiB"
om_all = rows("opus-mirror")
first = om_all[0]
tools = {
    "opus-mirror run --trigger hook (after each session)": [r for r in om_all[1:] if r["trigger"] == "hook"],
    "opus-mirror run --trigger timer (once a faked day)": [r for r in om_all[1:] if r["trigger"] == "timer"],
}
for t in ("restic", "borg"):
    rs = rows(t)
    if rs:
        tools[{"restic": "restic backup", "borg": "borg create"}[t]] = rs[1:]
        tools[t + "-first"] = rs[0]
print("\n| per run (sessions 1–%d; session 0 = first backup) | runs | p50 | p95 | max | max ÷ p50 | written per run p50 / max | repo after the year |" % sessions)
print("|---|---|---|---|---|---|---|---|")
for name, rs in tools.items():
    if name.endswith("-first") or not rs:
        continue
    w = [int(r["wall_ms"]) for r in rs]
    wr = [int(r["written_bytes"]) for r in rs]
    p50 = pct(w, 50)
    print(f"| {name} | {len(rs)} | {p50 / 1000:.2f} s | {pct(w, 95) / 1000:.2f} s | {max(w) / 1000:.2f} s "
          f"| {max(w) / p50:.1f}× | {mib(pct(wr, 50))} / {mib(max(wr))} | {mib(int(rs[-1]['repo_bytes']))} |")
print(f"\nfirst backup: opus-mirror run {int(first['wall_ms']) / 1000:.2f} s" +
      "".join(f", {t} {int(tools[t + '-first']['wall_ms']) / 1000:.2f} s" for t in ("restic", "borg") if t + "-first" in tools))
last = om_all[-1]
print(f"opus-mirror after the year: backup repo {mib(int(last['repo_bytes']))}, drive {mib(int(last['drive_bytes']))}"
      f" (repo + drive {mib(int(last['repo_bytes']) + int(last['drive_bytes']))})" +
      "".join(f"; {n} repo {mib(int(tools[n][-1]['repo_bytes']))}" for n in ("restic backup", "borg create") if n in tools and tools[n]) + ".")
d = [int(r["delta_bytes"]) for r in om_all[1:]]
print(f"opus-mirror repo + drive growth per run: p50 {mib(pct(d, 50))}, max {mib(max(d))}, min {mib(min(d))} (pruned bundles make it negative).")
# What the slow runs did.
by = {}
for r in om_all[1:]:
    ev = r["trigger"] + ": " + (r["events"] or "none")
    by.setdefault(ev, []).append(int(r["wall_ms"]))
print("\n| opus-mirror runs by trigger and what they did | runs | p50 | max |\n|---|---|---|---|")
for ev, w in sorted(by.items(), key=lambda kv: -len(kv[1])):
    print(f"| {ev} | {len(w)} | {pct(w, 50) / 1000:.2f} s | {max(w) / 1000:.2f} s |")
slow = sorted(om_all[1:], key=lambda r: -int(r["wall_ms"]))[:8]
print("\nslowest opus-mirror runs (session trigger: wall, events): " +
      ", ".join(f"{r['session']} {r['trigger']}: {int(r['wall_ms']) / 1000:.2f} s {r['events'] or '-'}" for r in slow))
PY
  echo
  echo "| at the end of the year | opus-mirror | restic | borg |"
  echo "|---|---|---|---|"
  echo "| check (reading all data) | check ${secs[om-check]} s (${mem[om-check]} MiB); check --read-data ${secs[om-check-rd]} s (${mem[om-check-rd]} MiB) | check --read-data ${secs[restic-check]} s (${mem[restic-check]} MiB) | check --verify-data ${secs[borg-check]} s (${mem[borg-check]} MiB) |"
  echo "| drill (test restore + comparison) | ${secs[om-drill]} s (${mem[om-drill]} MiB) | – | – |"
  echo "| full restore of the newest | restore --to ${secs[om-restore]} s (${mem[om-restore]} MiB) | restore latest ${secs[restic-restore]} s (${mem[restic-restore]} MiB) | extract ${secs[borg-extract]} s (${mem[borg-extract]} MiB) |"
  echo "| recover --from DRIVE --to (nothing but the drive) | ${secs[om-recover]} s (${mem[om-recover]} MiB) | – | – |"
} | tee "$out/summary.md"
echo "CSVs and summary.md in $out" >&2
