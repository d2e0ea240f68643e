#!/usr/bin/env bash
# Benchmark: opus-mirror snapshot vs `git add -A && git commit` into a shadow repo vs
# `restic backup`, on the same generated vault, for a first, a no-change and an
# after-a-day-of-edits snapshot. Prints a Markdown table (paste it into docs/benchmarks.md).
#
#   bench/run.sh [small|medium|large] [WORKDIR]
#
# Needs: ../shared/bench/make-vault (python3), git, restic, GNU time (/usr/bin/time).
# Not a test: figures depend on the machine; docs/benchmarks.md records where they came from.
set -euo pipefail
size=${1:-medium}
root=$(cd "$(dirname "$0")/.." && pwd)
work=${2:-$(mktemp -d /tmp/om-bench-XXXX)}
case $size in
  small) notes=2000 att=100 ;;
  medium) notes=20000 att=1000 ;;
  large) notes=100000 att=5000 ;;
  *) echo "size must be small, medium or large" >&2; exit 2 ;;
esac
make_vault=$root/../shared/bench/make-vault
[[ -x $make_vault || -f $make_vault ]] || { echo "missing $make_vault" >&2; exit 2; }
for t in git restic python3 /usr/bin/time; do command -v "$t" >/dev/null || { echo "missing $t (apt-get install restic time)" >&2; exit 2; }; done

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
om=$root/target/release/opus-mirror
vault=$work/vault
rm -rf "$work"/{vault,state,shadow.git,restic,config.toml}
python3 "$make_vault" "$vault" --notes $notes --attachments $att >/dev/null
files=$(find "$vault" -type f | wc -l); bytes=$(du -sb "$vault" | cut -f1)

cat > "$work/config.toml" <<TOML
state_dir = "$work/state"
[[source]]
name = "vault"
path = "$vault"
TOML
export OPUS_MIRROR_CONFIG=$work/config.toml RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$work/restic-cache
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@b GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@b
git init -q --bare "$work/shadow.git"
restic init -q -r "$work/restic" >/dev/null

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
export MEASURE_TOLERATE_FAILURE=1   # `git commit` with nothing to commit exits 1
gitsnap() { git --git-dir="$work/shadow.git" --work-tree="$vault" -c core.excludesFile=/dev/null add -A -f . && \
            git --git-dir="$work/shadow.git" --work-tree="$vault" commit -q -m snap; }
export -f gitsnap; export work vault

cat "$vault"/**/* >/dev/null 2>&1 || find "$vault" -type f -exec cat {} + >/dev/null  # warm the page cache
for phase in first nochange again day; do
  [[ $phase == day ]] && python3 "$make_vault" "$vault" --mutate 1 >/dev/null
  measure "om-$phase" "$om" snapshot --quiet
  measure "git-$phase" bash -c gitsnap
  measure "restic-$phase" restic -q -r "$work/restic" backup "$vault"
done

ratio() { python3 -c "a,b=$1,$2; print(f'{b/a:.1f}×' if a>0 else 'n/a')"; }
echo "vault: $notes notes + $att attachments = $files files, $((bytes / 1048576)) MiB; $(nproc) cores; $(date -u +%F)"
echo
echo "| snapshot | opus-mirror | git add -A && commit | restic backup | git ÷ ours | restic ÷ ours |"
echo "|---|---|---|---|---|---|"
for phase in first nochange again day; do
  o=${secs[om-$phase]} g=${secs[git-$phase]} r=${secs[restic-$phase]}
  echo "| $phase | ${o} s (${mem[om-$phase]} MiB) | ${g} s (${mem[git-$phase]} MiB) | ${r} s (${mem[restic-$phase]} MiB) | $(ratio $o $g) | $(ratio $o $r) |"
done
echo
echo
echo "first: empty backup repo; nochange: right after first (files written in the last second are"
echo "re-read once, by every tool); again: the steady no-change state; day: after make-vault --mutate 1."
echo "repo sizes: opus-mirror $(du -sh "$work/state/repos" | cut -f1), git $(du -sh "$work/shadow.git" | cut -f1), restic $(du -sh "$work/restic" | cut -f1)"
