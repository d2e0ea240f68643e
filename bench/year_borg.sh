#!/usr/bin/env bash
# borg over the year benchmark's session sequence (medium vault, sessions 1..365), repo size after each.
set -euo pipefail
w=${WORK:-/tmp/om-year-borg}; mkdir -p $w; rm -rf $w/vault $w/repo; export BORG_PASSPHRASE=bench BORG_BASE_DIR=$w/borg-home
mv=$(cd "$(dirname "$0")/.." && pwd)/../shared/bench/make-vault
$mv $w/vault --notes 20000 --attachments 1000 >/dev/null
borg init --encryption=repokey $w/repo >/dev/null 2>&1
(cd $w/vault && borg create $w/repo::s0 .)
echo "session,repo_bytes" > $w/sizes.csv
for n in $(seq 1 365); do
  $mv $w/vault --session $n >/dev/null
  (cd $w/vault && borg create $w/repo::s$n .)
  echo "$n,$(du -sb $w/repo | cut -f1)" >> $w/sizes.csv
done
echo DONE
