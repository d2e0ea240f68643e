#!/usr/bin/env bash
# Benchmark: what ranking bundles by content (issue 14: the snapshot generation, not the date
# in the name) costs `prune` on a long snapshot history. The walk goes back from the tip only
# as far as the oldest snapshot a bundle on the target holds.
#
#   bench/ranking.sh [SNAPSHOTS]      (default 100000)
#
# Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
n=${1:-100000}
root=$(cd "$(dirname "$0")/.." && pwd)
om=$root/target/release/opus-mirror
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/vault" "$work/drive"
for i in $(seq 1 200); do echo "note $i" > "$work/vault/n$i.md"; done
cat > "$work/om.toml" <<TOML
state_dir = "$work/state"
[[source]]
name = "v"
path = "$work/vault"
[[target]]
name = "drive"
kind = "dir"
path = "$work/drive"
keep = { last = 1 }
TOML
export OPUS_MIRROR_CONFIG=$work/om.toml
"$om" init --quiet
"$om" run --quiet
# N more snapshots on top of the bundled one (same tree), as years of hourly snapshots would.
repo=$work/state/repos/v.git
tip=$(git --git-dir "$repo" rev-parse refs/heads/snapshot)
tree=$(git --git-dir "$repo" rev-parse "$tip^{tree}")
python3 - "$tip" "$tree" "$n" <<'PY' | git --git-dir "$repo" fast-import --quiet
import sys
tip, tree, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    sys.stdout.write(f"commit refs/heads/snapshot\nmark :{i + 1}\ncommitter T <t@e> {1700000000 + i} +0000\ndata 2\ns\n")
    sys.stdout.write(f"from {tip}\n" if i == 0 else f"from :{i}\n")
    sys.stdout.write(f"M 040000 {tree} d\n\n")
PY
deep=$(hyperfine -N --warmup 1 --runs 5 --export-json "$work/deep.json" "$om prune --dry-run --quiet" >/dev/null && python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results'][0]; print(f\"{r['mean']*1000:.0f} ms ± {r['stddev']*1000:.0f} ms\")" "$work/deep.json")
echo changed >> "$work/vault/n1.md"
"$om" run --quiet
recent=$(hyperfine -N --warmup 1 --runs 10 --export-json "$work/recent.json" "$om prune --dry-run --quiet" >/dev/null && python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results'][0]; print(f\"{r['mean']*1000:.0f} ms ± {r['stddev']*1000:.0f} ms\")" "$work/recent.json")
echo "| snapshots on the branch | oldest snapshot a bundle holds | \`prune --dry-run\` |"
echo "|---|---|---|"
echo "| $((n + 2)) | $n deep | $deep |"
echo "| $((n + 2)) | the tip | $recent |"
