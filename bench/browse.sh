#!/usr/bin/env bash
# Benchmark: `log PATH` and `find` over a long history. Makes a vault (20 000 notes + 1 000
# attachments by default), takes SNAPSHOTS snapshots with a tiny edit before each (one note
# appended to; every 10th an added note, every 10th+5 a deleted one; `inbox/plan.md` edited
# every 50th), then times the browse commands (log, find, ls, cat, restore --include and
# --dry-run). Prints the figures for docs/benchmarks.md, and per-snapshot p50/p95/max on stderr.
#
#   bench/browse.sh [SNAPSHOTS] [WORKDIR]        (OM=path/to/opus-mirror to pick a build)
#
# Needs: ../shared/bench/make-vault (python3), GNU time (/usr/bin/time).
set -euo pipefail
count=${1:-1000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=${2:-$(mktemp -d /tmp/om-browse-XXXX)}
om=${OM:-$root/target/debug/opus-mirror}
[[ -x $om ]] || cargo build --quiet --manifest-path "$root/Cargo.toml"
vault=$work/vault
if [[ ! -d $vault ]]; then
  python3 "$root/../shared/bench/make-vault" "$vault" --notes "${NOTES:-20000}" --attachments "${ATTACHMENTS:-1000}" >/dev/null
fi
cat > "$work/config.toml" <<TOML
state_dir = "$work/state"
[[source]]
name = "vault"
path = "$vault"
TOML
export OPUS_MIRROR_CONFIG=$work/config.toml
mapfile -t notes < <(cd "$vault" && find journal 30_resources -name '*.md' | sort | head -2000)
count_snapshots() {
  "$om" snapshots --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"][0]["snapshots"]))' 2>/dev/null || echo 0
}
start=$(date +%s)
have=$(count_snapshots)
: > "$work/snapshot-ms.$have"
for ((i = have; i < count; i++)); do
  printf 'edit %d\n' "$i" >> "$vault/${notes[$((i * 7 % ${#notes[@]}))]}"
  (( i % 10 == 0 )) && printf 'new note %d\n' "$i" > "$vault/inbox/new-$i.md"
  (( i % 10 == 5 && i > 5 )) && rm -f "$vault/inbox/new-$((i - 5)).md"
  (( i % 50 == 0 )) && printf 'plan v%d\n' "$i" > "$vault/inbox/plan.md"
  now=$(date -u -d "2026-01-01 + $i hours" +%Y-%m-%dT%H:%M:%SZ)
  t0=$(date +%s%N)
  OPUS_MIRROR_NOW=$now "$om" snapshot --quiet
  echo $(( ($(date +%s%N) - t0) / 1000000 )) >> "$work/snapshot-ms.$have"
done
echo "made $((count - have)) snapshots in $(( $(date +%s) - start )) s" >&2
if [[ -s $work/snapshot-ms.$have ]]; then
  # Per snapshot wall time (ms): the first one (a full snapshot when the history was empty) apart.
  python3 - "$work/snapshot-ms.$have" "$have" <<'PY' >&2
import statistics, sys
ms = [int(x) for x in open(sys.argv[1])]
first, rest = (ms[0], ms[1:]) if sys.argv[2] == "0" else (None, ms)
if first is not None:
    print(f"first snapshot: {first} ms")
if rest:
    rest.sort()
    q = lambda p: rest[min(len(rest) - 1, int(p * len(rest)))]
    print(f"next {len(rest)} snapshots: p50 {q(0.5)} ms, p95 {q(0.95)} ms, max {rest[-1]} ms, total {sum(rest) / 1000:.1f} s")
PY
fi
files=$(find "$vault" -path "$vault/.git" -prune -o -type f -print | wc -l)
have=$(count_snapshots)
echo "vault: $files files (outside .git); $have snapshots; binary: $om ($("$om" --version))"
# An older snapshot for `cat`/`ls`: the one in the middle of the history.
mid=$("$om" snapshots --json | python3 -c 'import json,sys; s=json.load(sys.stdin)["data"][0]["snapshots"]; print(s[len(s)//2]["short"])')
big=$(cd "$vault" && find attachments -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
folder=$(dirname "${notes[0]}")
out=$work/restore-out
rm -rf "$out"
t() { /usr/bin/time -f "%e s | %M KB" "$om" "$@" 2>&1 >/dev/null | tail -1; }
row() { local label=$1; shift; local r; r=$(t "$@"); echo "| $label | $r | $(cut -d' ' -f1-3 /proc/loadavg) |"; }
echo "| command | time | peak RSS | load avg |"
echo "|---|---|---|---|"
row "\`log inbox/plan.md\`" log inbox/plan.md
row "\`log ${notes[0]}\`" log "${notes[0]}"
row "\`find plan.md\` (substring)" find plan.md
row "\`find 'inbox/new-*'\` (glob)" find 'inbox/new-*'
row "\`find '*.md'\` (every note)" find '*.md'
row "\`ls\` (newest, every entry)" ls
row "\`ls $mid $folder\` (older snapshot, one folder)" ls "$mid" "$folder"
row "\`cat $mid:${notes[0]}\` (a note)" cat "$mid:${notes[0]}"
row "\`cat $mid:$big\` (largest attachment, $(stat -c %s "$vault/$big") B)" cat "$mid:$big"
row "\`restore --include '$folder/**' --dry-run --to DIR\`" restore --include "$folder/**" --dry-run --to "$out"
row "\`restore --include '$folder/**' --to DIR\` ($(find "$vault/$folder" -type f | wc -l) files)" restore --include "$folder/**" --to "$out"
echo "(restored: $(find "$out" -type f | wc -l) files, $(du -sh "$out" | cut -f1))" >&2
rm -rf "$out"
row "\`restore --dry-run --to DIR\` (whole snapshot)" restore --dry-run --to "$out"
row "\`restore --snapshot $mid --include '*.pdf' --dry-run --to DIR\`" restore --snapshot "$mid" --include '*.pdf' --dry-run --to "$out"
