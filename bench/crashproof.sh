#!/usr/bin/env bash
# Benchmark: what the crash-proofing and trust-boundary work costs the hot paths, old binary
# against new, on the same medium vault: a first snapshot (every file opened below the source
# root with openat2, issue 9), an unchanged snapshot (what a post-session hook pays, now with
# the heal pass under the lock), and a restore into a new directory (every path written
# through safe_fs, one component at a time).
#
#   bench/crashproof.sh OLD_BINARY NEW_BINARY [NOTES ATTACHMENTS]
# OLD_BINARY: a release build of the commit before the change (824f9e2).
set -euo pipefail
old=${1:?usage: bench/crashproof.sh OLD_BINARY NEW_BINARY [NOTES ATTACHMENTS]}
new=${2:?usage: bench/crashproof.sh OLD_BINARY NEW_BINARY [NOTES ATTACHMENTS]}
notes=${3:-20000} attachments=${4:-1000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/om-bench-crashproof.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$root/../shared/bench/make-vault" "$work/vault" --notes "$notes" --attachments "$attachments" >/dev/null
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
for who in old new; do vault_config "$work/$who.toml" "$work/state-$who" "$work/vault"; done
echo "vault: $(find "$work/vault" -type f | wc -l) files, $(du -sh "$work/vault" | cut -f1); $(nproc) cores; $(date -u +%F)"
# First snapshot: from an empty state dir each run.
hyperfine --warmup 1 --runs 5 -N \
  --prepare "rm -rf $work/state-old $work/state-new" \
  -n "old first snapshot" "env OPUS_MIRROR_CONFIG=$work/old.toml $old snapshot --quiet" \
  -n "new first snapshot" "env OPUS_MIRROR_CONFIG=$work/new.toml $new snapshot --quiet"
OPUS_MIRROR_CONFIG=$work/old.toml "$old" snapshot --quiet
OPUS_MIRROR_CONFIG=$work/new.toml "$new" snapshot --quiet
hyperfine --warmup 2 --runs 20 -N \
  -n "old unchanged snapshot" "env OPUS_MIRROR_CONFIG=$work/old.toml $old snapshot --quiet" \
  -n "new unchanged snapshot" "env OPUS_MIRROR_CONFIG=$work/new.toml $new snapshot --quiet"
hyperfine --warmup 1 --runs 5 -N --prepare "rm -rf $work/out" \
  -n "old restore --to" "env OPUS_MIRROR_CONFIG=$work/old.toml $old restore --source vault --to $work/out --quiet" \
  -n "new restore --to" "env OPUS_MIRROR_CONFIG=$work/new.toml $new restore --source vault --to $work/out --quiet"
