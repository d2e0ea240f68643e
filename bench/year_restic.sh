#!/usr/bin/env bash
# restic over the year benchmark's session sequence (medium vault, sessions 1..365), repo size after each.
set -euo pipefail
w=${WORK:-/tmp/om-year-restic}; mkdir -p $w; rm -rf $w/vault $w/repo; export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$w/cache
mv=$(cd "$(dirname "$0")/.." && pwd)/../shared/bench/make-vault
$mv $w/vault --notes 20000 --attachments 1000 >/dev/null
restic init -q -r $w/repo
restic backup -q -r $w/repo $w/vault
echo "session,repo_bytes" > $w/sizes.csv
for n in $(seq 1 365); do
  $mv $w/vault --session $n >/dev/null
  restic backup -q -r $w/repo $w/vault
  echo "$n,$(du -sb $w/repo | cut -f1)" >> $w/sizes.csv
done
echo DONE
