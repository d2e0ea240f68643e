#!/usr/bin/env bash
# Benchmark: what validating every tree entry read back (git-fsck rules, issue 9) costs in
# `restore` and `check`, old binary against new, on the same vault and backup repo.
#
#   bench/validate.sh OLD_BINARY NEW_BINARY [NOTES ATTACHMENTS]
# OLD_BINARY: a release build of the commit before the change (e.g. a worktree at 524ba57).
set -euo pipefail
old=${1:?usage: bench/validate.sh OLD_BINARY NEW_BINARY [NOTES ATTACHMENTS]}
new=${2:?usage: bench/validate.sh OLD_BINARY NEW_BINARY [NOTES ATTACHMENTS]}
notes=${3:-20000} attachments=${4:-1000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/om-bench-validate.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$root/../shared/bench/make-vault" "$work/vault" --notes "$notes" --attachments "$attachments" >/dev/null
cat > "$work/c.toml" <<TOML
state_dir = "$work/state"
[[source]]
name = "vault"
path = "$work/vault"
TOML
export OPUS_MIRROR_CONFIG=$work/c.toml
"$new" init --quiet
"$new" snapshot --quiet
echo "vault: $(find "$work/vault" -type f | wc -l) files; $(nproc) cores; $(date -u +%F)"
for cmd in "restore --source vault --to $work/out" "check"; do
  hyperfine --warmup 1 --runs 5 -N --prepare "rm -rf $work/out" \
    -n "old $cmd" "$old $cmd --quiet" -n "new $cmd" "$new $cmd --quiet"
done
