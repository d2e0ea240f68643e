#!/usr/bin/env bash
# Benchmark: `log PATH` and `find` over a long history. Makes a vault (20 000 notes + 1 000
# attachments by default), takes SNAPSHOTS snapshots with a tiny edit before each (one note
# appended to; every 10th an added note, every 10th+5 a deleted one; `inbox/plan.md` edited
# every 50th), then times the browse commands. Prints the figures for docs/benchmarks.md.
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
start=$(date +%s)
have=$("$om" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["snapshots"]))' 2>/dev/null || echo 0)
for ((i = have; i < count; i++)); do
  printf 'edit %d\n' "$i" >> "$vault/${notes[$((i * 7 % ${#notes[@]}))]}"
  (( i % 10 == 0 )) && printf 'new note %d\n' "$i" > "$vault/inbox/new-$i.md"
  (( i % 10 == 5 && i > 5 )) && rm -f "$vault/inbox/new-$((i - 5)).md"
  (( i % 50 == 0 )) && printf 'plan v%d\n' "$i" > "$vault/inbox/plan.md"
  OPUS_MIRROR_NOW=$(date -u -d "2026-01-01 + $i hours" +%Y-%m-%dT%H:%M:%SZ) "$om" snapshot --quiet
done
echo "made $((count - have)) snapshots in $(( $(date +%s) - start )) s" >&2
files=$(find "$vault" -type f | wc -l)
echo "vault: $files files; $count snapshots; binary: $om"
t() { /usr/bin/time -f "%e s %M KB" "$om" "$@" 2>&1 >/dev/null | tail -1; }
echo "| command | time | peak RSS |"
echo "|---|---|---|"
echo "| \`log inbox/plan.md\` | $(t log inbox/plan.md) |"
echo "| \`log ${notes[0]}\` | $(t log "${notes[0]}") |"
echo "| \`find plan.md\` (substring) | $(t find plan.md) |"
echo "| \`find 'inbox/new-*'\` (glob) | $(t find 'inbox/new-*') |"
echo "| \`find '*.md'\` (every note) | $(t find '*.md') |"
echo "| \`ls\` (newest, every entry) | $(t ls) |"
