#!/usr/bin/env bash
# Benchmark: pushing the backup repo to a private mirror (a bare repo on local disk), beside
# `git push --mirror` of the same backup repo. A git vault (`make-vault --git`, then
# `--mutate 1`) gets `snapshot` and the import of its own branches (`mirror` with no mirror
# set); then, ROUNDS times (2 by default), each into a fresh bare repo: the first
# `opus-mirror mirror` push, and `git push --mirror`. Then a day of edits (`--mutate 2`),
# `snapshot`, the day's `opus-mirror mirror` and the same day by `git push --mirror`, with what
# each added to its mirror. Every row is one run under GNU time (wall, user, system, peak RSS
# of the largest process), with the load average when it ended; both mirrors are fsck'd last.
# (The first push goes through `git push`; the day's, to this bare mirror with refs, is written
# by opus-mirror itself: crates/opus-mirror-core/src/git/local_push.rs.)
#
#   bench/mirror.sh BINARY [NOTES ATTACHMENTS]     # 20000 1000 by default; 100000 5000 = large
#
# VAULT_FROM=DIR copies a vault that `make-vault DIR --notes N --attachments M --git` made
# (the same N and M) instead of generating it again (12 min for the large one here).
set -euo pipefail
bin=${1:?usage: bench/mirror.sh BINARY [NOTES ATTACHMENTS]}
notes=${2:-20000} attachments=${3:-1000} rounds=${ROUNDS:-2}
for t in git python3 /usr/bin/time; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 2; }; done
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/om-bench-mirror.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [[ -n ${VAULT_FROM:-} ]]; then
  cp -a "$VAULT_FROM" "$work/vault"
else
  "$root/../shared/bench/make-vault" "$work/vault" --notes "$notes" --attachments "$attachments" --git >/dev/null
fi
"$root/../shared/bench/make-vault" "$work/vault" --mutate 1 >/dev/null
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
export OPUS_MIRROR_CONFIG=$work/c.toml
vault_config "$work/c.toml" "$work/state" "$work/vault"
"$bin" init --quiet
"$bin" snapshot --quiet
"$bin" mirror --quiet   # no mirror yet: imports the vault's branches, so what follows is the push alone
repo=$work/state/repos/vault.git
vault_config "$work/c.toml" "$work/state" "$work/vault" "" "$work/ours.git"
bytes() { du -sb "$1" | cut -f1; }
load() { uptime | sed 's/.*load average: //'; }
# row LABEL CMD...: one run under GNU time, as a Markdown table row.
row() {
  local label=$1; shift
  /usr/bin/time -f '%e s | %U s | %S s | %M' -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  local t; t=$(tail -1 "$work/t")
  printf '| %s | %s MiB | %s |\n' "$label" "${t% | *} | $(( ${t##* | } / 1024 ))" "$(load)"
}
echo "vault: $(find "$work/vault" -path '*/.git' -prune -o -type f -print | wc -l) files;" \
  "backup repo $(( $(bytes "$repo") >> 20 )) MiB, $(git -C "$repo" count-objects -v | awk '/^count|^in-pack/ {s += $2} END {print s}') objects;" \
  "$(nproc) cores; $(date -u +%F); $(git --version)"
echo
echo "| push | wall | user | system | peak RSS | load average (1, 5, 15 min) |"
echo "|---|---|---|---|---|---|"
for r in $(seq "$rounds"); do
  rm -rf "$work/ours.git" "$work/git.git"
  git init -q --bare "$work/ours.git"; git init -q --bare "$work/git.git"
  row "\`opus-mirror mirror\`, first push (round $r)" "$bin" mirror --quiet
  row "\`git push --mirror\`, the same repo (round $r)" git -C "$repo" push -q --mirror "$work/git.git"
done
sizes="first push: mirror $(( $(bytes "$work/ours.git") >> 20 )) MiB (ours), $(( $(bytes "$work/git.git") >> 20 )) MiB (git)"
"$root/../shared/bench/make-vault" "$work/vault" --mutate 2 >/dev/null
before_repo=$(bytes "$repo")
"$bin" snapshot --quiet
day_repo=$(( $(bytes "$repo") - before_repo ))
before_ours=$(bytes "$work/ours.git") before_git=$(bytes "$work/git.git")
row "\`opus-mirror mirror\`, a day's push (after \`--mutate 2\` and \`snapshot\`)" "$bin" mirror --quiet
row "\`git push --mirror\`, the same day" git -C "$repo" push -q --mirror "$work/git.git"
echo
echo "$sizes; the day: the backup repo grew $(( day_repo >> 10 )) KiB, the mirror" \
  "$(( ($(bytes "$work/ours.git") - before_ours) >> 10 )) KiB (ours), $(( ($(bytes "$work/git.git") - before_git) >> 10 )) KiB (git)"
for m in ours git; do
  git --git-dir "$work/$m.git" fsck --full --no-progress >/dev/null 2>"$work/fsck" && echo "git fsck --full $m.git: clean" \
    || { echo "git fsck --full $m.git FAILED:"; cat "$work/fsck"; }
done
refs() { git --git-dir "$1" for-each-ref --format='%(refname) %(objectname)'; }
if [[ "$(refs "$work/ours.git")" == "$(refs "$repo" | grep -v '^refs/opus-mirror/incoming/')" ]]; then
  echo "ours.git holds every ref of the backup repo"
else
  echo "ours.git refs differ from the backup repo's:"; diff <(refs "$repo") <(refs "$work/ours.git") || true
fi
