#!/usr/bin/env bash
# Benchmark: the worst day. A git vault is backed up to a drive (one full bundle), then
# everything but the drive is gone: `opus-mirror recover` against the git-only path of the
# runbook (procedure 2, run from docs/disaster-recovery.md itself) and a plain `git clone`
# of the bundle (which gives back the committed tree only, not the vault as it was).
#
#   bench/recover.sh BINARY [NOTES ATTACHMENTS]
set -euo pipefail
bin=${1:?usage: bench/recover.sh BINARY [NOTES ATTACHMENTS]}
notes=${2:-20000} attachments=${3:-1000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/om-bench-recover.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$root/../shared/bench/make-vault" "$work/vault" --notes "$notes" --attachments "$attachments" --git >/dev/null
"$root/../shared/bench/make-vault" "$work/vault" --mutate 1 >/dev/null   # uncommitted edits, adds, deletes
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
vault_config "$work/c.toml" "$work/state" "$work/vault" "$work/drive"
export OPUS_MIRROR_CONFIG=$work/c.toml
"$bin" init --quiet
"$bin" snapshot --quiet
"$bin" bundle --quiet
branch=$(git -C "$work/vault" symbolic-ref --short HEAD)
echo "vault: $(find "$work/vault" -path '*/.git' -prune -o -type f -print | wc -l) files, $(du -sh --exclude=.git "$work/vault" | cut -f1); drive: $(du -sh "$work/drive" | cut -f1); $(nproc) cores; $(date -u +%F)"
# The runbook's own procedure 2, with section 0's helper.
awk '/^## 0\./{s=1} /^## 1\./{s=0} /^## 2\./{s=2} /^## 3\./{s=0} s && /^```sh$/{b=1; next} /^```$/{b=0} b' \
  "$root/docs/disaster-recovery.md" > "$work/runbook.sh"
hyperfine --warmup 1 --runs 5 -N \
  --prepare "rm -rf $work/fresh $work/to" \
  -n "opus-mirror recover" \
  "env HOME=$work/fresh XDG_CONFIG_HOME=$work/fresh/.config XDG_DATA_HOME=$work/fresh/.local/share OPUS_MIRROR_CONFIG= $bin recover --from $work/drive --to $work/to --quiet" \
  -n "runbook procedure 2 (git only)" \
  "env SOURCE=vault BRANCH=$branch SNAPSHOT_BRANCH=snapshot BUNDLE_DIR=$work/drive RESTORE=$work/to UPSTREAM=none TMPDIR=$work bash $work/runbook.sh" \
  -n "git clone FULL.bundle" \
  "bash -c 'git clone -q $work/drive/vault-*.bundle $work/to'"
