#!/usr/bin/env bash
# Benchmark: `opus-mirror run` with nothing changed and no network target due — the cost of
# the post-session hook. Uses the vault and backup repo `bench/run.sh SIZE WORKDIR` left.
#
#   bench/run_job.sh WORKDIR
set -euo pipefail
work=${1:?usage: bench/run_job.sh WORKDIR (from bench/run.sh)}
root=$(cd "$(dirname "$0")/.." && pwd)
om=$root/target/release/opus-mirror
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
cat > "$work/run.toml" <<TOML
state_dir = "$work/state"
[[source]]
name = "vault"
path = "$work/vault"
[[target]]
name = "drive"
kind = "dir"
path = "$work/run-drive"
every = "1d"
mode = "incremental"
keep = { daily = 7 }
TOML
export OPUS_MIRROR_CONFIG=$work/run.toml
"$om" init --quiet
"$om" run --quiet || true   # first run: snapshot, bundle, full check, drill
"$om" run --quiet || true   # settles racy files
echo "vault: $(find "$work/vault" -type f | wc -l) files; $(nproc) cores; $(date -u +%F)"
hyperfine --warmup 2 --runs 10 -N "$om run --quiet"
"$om" run
