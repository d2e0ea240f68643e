#!/usr/bin/env bash
# Benchmark: `check` on a long snapshot history (issue 11). Makes a small vault (200 notes + 5
# attachments by default), takes one real snapshot, then adds SNAPSHOTS-1 more to the snapshot
# branch with `git fast-import` (each appends a line to one note, as a day's edit would; the
# commit message is the real snapshot's), and times `check` with each build given.
#
#   bench/history.sh [SNAPSHOTS] [WORKDIR] -- BIN...   (BIN: opus-mirror builds to compare)
#
# Needs: ../shared/bench/make-vault (python3), GNU time (/usr/bin/time), git.
set -euo pipefail
count=${1:-10000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=${2:-$(mktemp -d /tmp/om-history-XXXX)}
shift $(( $# >= 2 ? 2 : $# )); [[ ${1:-} == -- ]] && shift
bins=("$@"); [[ ${#bins[@]} -gt 0 ]] || bins=("$root/target/release/opus-mirror")
mkdir -p "$work"
vault=$work/vault repo=$work/state/repos/vault.git
source "$root/bench/lib.sh"
export OPUS_MIRROR_CONFIG=$work/config.toml
vault_config "$OPUS_MIRROR_CONFIG" "$work/state" "$vault"
if [[ ! -d $repo ]]; then
  python3 "$root/../shared/bench/make-vault" "$vault" --notes "${NOTES:-200}" --attachments "${ATTACHMENTS:-5}" >/dev/null
  "${bins[0]}" snapshot >/dev/null
  python3 - "$vault" "$repo" "$count" <<'PY' | git --git-dir "$repo" fast-import --quiet
import os, subprocess, sys
vault, repo, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = sys.stdout.buffer
tip = subprocess.check_output(["git", "--git-dir", repo, "rev-parse", "refs/heads/snapshot"]).strip().decode()
msg = subprocess.check_output(["git", "--git-dir", repo, "log", "-1", "--format=%B", tip])
notes = sorted(os.path.relpath(os.path.join(d, f), vault) for d, _, fs in os.walk(vault) for f in fs if f.endswith(".md"))
text = {n: open(os.path.join(vault, n), "rb").read() for n in notes}
t = 1_780_000_000
for i in range(1, count):
    n = notes[(i * 7919) % len(notes)]
    text[n] += b"- edit %d\n" % i
    out.write(b"commit refs/heads/snapshot\ncommitter opus-mirror <opus-mirror@localhost> %d +0000\n" % (t + i * 3600))
    out.write(b"data %d\n%s\n" % (len(msg), msg))
    if i == 1:
        out.write(b"from %s\n" % tip.encode())
    out.write(b"M 100644 inline %s\ndata %d\n%s\n" % (n.encode(), len(text[n]), text[n]))
PY
fi
echo "snapshots: $(git --git-dir "$repo" rev-list --count refs/heads/snapshot), objects: $(git --git-dir "$repo" count-objects -v | awk '/^in-pack/ {print $2}')"
for b in "${bins[@]}"; do
  /usr/bin/time -f "%e s %M KB" -o "$work/t" "$b" check >/dev/null 2>"$work/err" || { cat "$work/err"; }
  echo "$b check: $(cat "$work/t")   load: $(cut -d' ' -f1-3 /proc/loadavg)"
done
