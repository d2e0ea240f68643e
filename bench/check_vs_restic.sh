#!/usr/bin/env bash
# Benchmark: `opus-mirror check` against `restic check --read-data` on the same vault (issue 11:
# check on the large vault ≤ restic's). Uses WORKDIR/vault and the backup repo in WORKDIR/state
# as another bench script left them (bench/browse.sh, bench/run.sh), adds a dir target `drive`
# with one full bundle (written once), a restic repo of the vault (written once; the vault's
# `.git` included, as the backup repo holds its history too), then times, back to back, ROUNDS
# times (2 by default):
#   opus-mirror check, backup repo only        (config without targets)
#   opus-mirror check, backup repo + bundle    (config with the dir target)
#   restic check --read-data
# Each line: GNU time (wall, user, system, peak RSS) and the load average at the start.
#
#   bench/check_vs_restic.sh WORKDIR [ROUNDS]     (OM=path/to/opus-mirror to pick a build)
#
# Needs: restic, GNU time (/usr/bin/time).
set -euo pipefail
work=${1:?usage: bench/check_vs_restic.sh WORKDIR [ROUNDS]}
rounds=${2:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
om=${OM:-$root/target/release/opus-mirror}
[[ -x $om ]] || cargo build --release --quiet --manifest-path "$root/Cargo.toml"
vault=$work/vault repo=$work/state/repos/vault.git
[[ -d $repo ]] || { echo "no backup repo at $repo: run bench/browse.sh or bench/run.sh first" >&2; exit 2; }
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
vault_config "$work/check-repo.toml" "$work/state" "$vault"
vault_config "$work/check-drive.toml" "$work/state" "$vault" "$work/drive"
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-bench} RESTIC_REPOSITORY=$work/restic
export RESTIC_CACHE_DIR=$work/restic-cache
if ! ls "$work"/drive/vault-*.bundle >/dev/null 2>&1; then
  OPUS_MIRROR_CONFIG=$work/check-drive.toml "$om" init --quiet
  /usr/bin/time -f "opus-mirror bundle: %e s %M KB" "$om" --config "$work/check-drive.toml" bundle --quiet --force
fi
if [[ ! -f $work/restic/config ]]; then
  restic init --quiet
  /usr/bin/time -f "restic backup: %e s %M KB" restic backup --quiet "$vault"
fi
git_snaps=$(git --git-dir "$repo" rev-list --count refs/heads/snapshot)
echo "vault: $(find "$vault" -path "$vault/.git" -prune -o -type f -print | wc -l) files outside .git, $(du -sh "$vault" | cut -f1) with .git"
echo "backup repo: $(du -sh "$repo" | cut -f1), $git_snaps snapshots; bundles: $(du -ch "$work"/drive/vault-*.bundle | tail -1 | cut -f1) ($(ls "$work"/drive/vault-*.bundle | wc -l) files); restic repo: $(du -sh "$work/restic" | cut -f1)"
echo "opus-mirror: $("$om" --version) ($om); $(restic version | cut -d' ' -f1-2); $(nproc) cores; $(date -u '+%F %H:%M') UTC"
cat "$repo"/objects/pack/* "$work"/drive/vault-*.bundle "$work"/restic/data/*/* >/dev/null # warm the page cache for both
echo
echo "| round | command | wall | user | system | peak RSS | load avg (1/5/15 min) |"
echo "|---|---|---|---|---|---|---|"
run() {
  local round=$1 label=$2 load; shift 2
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  if ! /usr/bin/time -f "%e s | %U s | %S s | %M KB" -o "$work/t" "$@" >"$work/out" 2>&1; then
    echo "FAILED: $label" >&2; cat "$work/out" >&2
  fi
  echo "| $round | $label | $(tail -1 "$work/t") | $load |"
}
for ((r = 1; r <= rounds; r++)); do
  run "$r" "\`opus-mirror check\` (backup repo)" "$om" --config "$work/check-repo.toml" check
  run "$r" "\`opus-mirror check\` (backup repo + bundle on the dir target)" "$om" --config "$work/check-drive.toml" check
  run "$r" "\`restic check --read-data\`" restic check --read-data
done
