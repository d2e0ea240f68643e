#!/usr/bin/env bash
# Benchmark: opus-mirror's full and incremental bundles vs `git bundle create --all`, on the
# backup repo that `bench/run.sh SIZE WORKDIR` left in WORKDIR (run that first).
#
#   bench/bundle.sh WORKDIR
#
# Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
work=${1:?usage: bench/bundle.sh WORKDIR (from bench/run.sh)}
root=$(cd "$(dirname "$0")/.." && pwd)
om=$root/target/release/opus-mirror
make_vault=$root/../shared/bench/make-vault
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
repo=$work/state/repos/vault.git
[[ -d $repo ]] || { echo "no backup repo at $repo: run bench/run.sh first" >&2; exit 2; }
rm -rf "$work/drive" "$work/git.bundle"
cat > "$work/bundle.toml" <<TOML
state_dir = "$work/state"
[[source]]
name = "vault"
path = "$work/vault"
[[target]]
name = "drive"
kind = "dir"
path = "$work/drive"
mode = "incremental"
TOML
export OPUS_MIRROR_CONFIG=$work/bundle.toml
"$om" init --quiet
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
cat "$repo"/objects/pack/* >/dev/null # warm the page cache for both tools
measure om-full "$om" bundle --quiet
full=$(ls "$work"/drive/vault-*.bundle | head -1)
measure git-full git --git-dir "$repo" bundle create -q "$work/git.bundle" --all
python3 "$make_vault" "$work/vault" --mutate $(( $(date +%s) % 10000 + 10 )) >/dev/null  # a day not applied before
"$om" snapshot --quiet
sleep 1
measure om-incr "$om" bundle --quiet
incr=$(ls "$work"/drive/vault-*-incr.bundle | head -1)
size() { du -h "$1" | cut -f1; }
echo "backup repo: $(du -sh "$repo" | cut -f1), $(git --git-dir "$repo" rev-list --count snapshot) snapshots; $(nproc) cores; $(date -u +%F)"
echo
echo "| bundle | time | peak memory | size |"
echo "|---|---|---|---|"
echo "| opus-mirror full | ${secs[om-full]} s | ${mem[om-full]} MiB | $(size "$full") |"
echo "| git bundle create --all | ${secs[git-full]} s | ${mem[git-full]} MiB | $(size "$work/git.bundle") |"
echo "| opus-mirror incremental (a day of edits) | ${secs[om-incr]} s | ${mem[om-incr]} MiB | $(size "$incr") |"
