#!/usr/bin/env bash
# Benchmark: the worst day. A git vault is backed up to a drive (one full bundle), to a
# private mirror (a bare repo on local disk) and, for comparison, to a restic repo (the vault
# dir with its .git); then everything but the backups is gone. Timed, each from nothing:
# `opus-mirror recover` from the drive and from the mirror, the git-only path of the runbook
# (procedure 2, run from docs/disaster-recovery.md itself), a plain `git clone` of the bundle
# (which gives back the committed tree only, not the vault as it was) and `restic restore`.
# Prints hyperfine's table, then a Markdown table with user/system CPU (hyperfine's means)
# and peak RSS (one more run of each under GNU time: the largest single process).
#
#   bench/recover.sh BINARY [NOTES ATTACHMENTS]     # 20000 1000 by default; 100000 5000 = large
#
# At 100 000 notes or more each command runs 3 times with no warm-up, else 5 times after one.
# RUNS and WARMUP in the environment override both. VAULT_FROM=DIR copies a vault that
# `make-vault DIR --notes N --attachments M --git` made (the same sizes) instead of generating
# it again (12 min for the large one here).
set -euo pipefail
bin=${1:?usage: bench/recover.sh BINARY [NOTES ATTACHMENTS]}
notes=${2:-20000} attachments=${3:-1000}
if (( notes >= 100000 )); then runs=${RUNS:-3} warmup=${WARMUP:-0}; else runs=${RUNS:-5} warmup=${WARMUP:-1}; fi
for t in git restic hyperfine python3 /usr/bin/time; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 2; }; done
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/om-bench-recover.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [[ -n ${VAULT_FROM:-} ]]; then
  cp -a "$VAULT_FROM" "$work/vault"
else
  "$root/../shared/bench/make-vault" "$work/vault" --notes "$notes" --attachments "$attachments" --git >/dev/null
fi
"$root/../shared/bench/make-vault" "$work/vault" --mutate 1 >/dev/null   # uncommitted edits, adds, deletes
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
git init -q --bare "$work/mirror.git"
vault_config "$work/c.toml" "$work/state" "$work/vault" "$work/drive" "$work/mirror.git"
export OPUS_MIRROR_CONFIG=$work/c.toml
"$bin" init --quiet
"$bin" snapshot --quiet
"$bin" mirror --quiet   # before the bundle: it imports the vault's own branches, which the bundle then carries
"$bin" bundle --quiet
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$work/restic-cache
restic init -q -r "$work/restic" >/dev/null
restic backup -q -r "$work/restic" "$work/vault"   # the whole dir, .git included
branch=$(git -C "$work/vault" symbolic-ref --short HEAD)
mib() { du -sm "$@" | awk '{s += $1} END {print s " MiB"}'; }
bundle=$(echo "$work"/drive/vault-*.bundle)
echo "vault: $(find "$work/vault" -path '*/.git' -prune -o -type f -print | wc -l) files," \
  "$(mib --exclude=.git "$work/vault") + .git $(mib "$work/vault/.git");" \
  "full bundle $(mib "$bundle"), drive $(mib "$work/drive"), mirror $(mib "$work/mirror.git")," \
  "restic repo $(mib "$work/restic"); $(nproc) cores; $(date -u +%F)"
# The runbook's own procedure 2, with section 0's helper.
awk '/^## 0\./{s=1} /^## 1\./{s=0} /^## 2\./{s=2} /^## 2b\./{s=0} /^## 3\./{s=0} s && /^```sh$/{b=1; next} /^```$/{b=0} b' \
  "$root/docs/disaster-recovery.md" > "$work/runbook.sh"
fresh="env HOME=$work/fresh XDG_CONFIG_HOME=$work/fresh/.config XDG_DATA_HOME=$work/fresh/.local/share OPUS_MIRROR_CONFIG="
names=("opus-mirror recover --from DRIVE" "opus-mirror recover --from MIRROR"
       "runbook procedure 2 (git only)" "git clone FULL.bundle" "restic restore")
cmds=("$fresh $bin recover --from $work/drive --to $work/to --quiet"
      "$fresh $bin recover --from $work/mirror.git --to $work/to --quiet"
      "env SOURCE=vault BRANCH=$branch SNAPSHOT_BRANCH=snapshot BUNDLE_DIR=$work/drive RESTORE=$work/to UPSTREAM=none TMPDIR=$work bash $work/runbook.sh"
      "git clone -q $bundle $work/to"
      "restic -q -r $work/restic restore latest --target $work/to")
args=()
for i in "${!names[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
hyperfine --warmup "$warmup" --runs "$runs" -N --prepare "rm -rf $work/fresh $work/to" \
  --export-json "$work/hf.json" "${args[@]}"
# Peak memory: one more run of each, from nothing, under GNU time.
for i in "${!names[@]}"; do
  rm -rf "$work/fresh" "$work/to"
  # shellcheck disable=SC2086  # the command line is split into words, as hyperfine -N does
  /usr/bin/time -f '%e %M' -o "$work/mem.$i" ${cmds[$i]} >/dev/null
done
rm -rf "$work/fresh" "$work/to"
python3 - "$work" "${#names[@]}" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
res = json.load(open(f"{work}/hf.json"))["results"]
print("\n| command | time | user | system | peak RSS |\n|---|---|---|---|---|")
for i, r in enumerate(res[:n]):
    secs, kb = open(f"{work}/mem.{i}").read().split()[-2:]
    print(f"| {r['command']} | {r['mean']:.1f} s ± {r['stddev'] or 0:.1f} "
          f"({min(r['times']):.1f}–{max(r['times']):.1f}) | {r['user']:.2f} s | {r['system']:.2f} s "
          f"| {int(kb) // 1024} MiB (in {float(secs):.1f} s) |")
PY
