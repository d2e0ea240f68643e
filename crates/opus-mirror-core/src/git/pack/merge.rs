//! Merging packs into one: whole-object entries copied byte for byte (they need no
//! re-compressing), each checked against its index CRC; the old packs are deleted only after
//! the merged pack is complete, synced, visible and known to hold every one of their objects.
//! Which packs to merge is the caller's policy (`snapshot::maintain`: geometric, like `git
//! repack --geometric=2`).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::git::pack::read_index;
use crate::git::pack::PackWriter;
use crate::git::BackupRepo;

/// Merges `packs` into one. Whole-object entries are copied byte for byte; delta entries
/// (packs libgit2 fetched from the user's repository) are read whole through the object
/// database and stored afresh, so every pack can be merged.
pub fn merge(repo: &BackupRepo, packs: &[PathBuf]) -> Result<usize> {
    let mut plan = Vec::new();
    for p in packs {
        let mut entries = read_index(&p.with_extension("idx"))?;
        entries.sort_by_key(|e| e.offset);
        plan.push((p.clone(), entries));
    }
    let odb = repo.repo.odb()?;
    if plan.len() < 2 {
        return Ok(0);
    }
    let mut out = PackWriter::create(&repo.pack_dir())?;
    let mut seen = HashSet::new();
    for (p, entries) in &plan {
        let len = fs::metadata(p)?.len();
        let mut r = BufReader::with_capacity(1 << 20, File::open(p)?);
        for (i, e) in entries.iter().enumerate() {
            let end = entries.get(i + 1).map(|n| n.offset).unwrap_or(len - 20);
            if !seen.insert(e.oid) {
                continue;
            }
            crate::git::pack::seek_to(&mut r, e.offset)?;
            let kind = (r.fill_buf()?.first().copied().unwrap_or(0) >> 4) & 7;
            if !(1..=4).contains(&kind) {
                let obj = odb
                    .read(e.oid)
                    .with_context(|| format!("object {} of {} cannot be read", e.oid, p.display()))?;
                let k = crate::git::objects::Kind::of(obj.kind());
                out.add_compressed(
                    e.oid,
                    k,
                    obj.data().len() as u64,
                    &crate::git::pack::compress(obj.data()),
                )?;
                continue;
            }
            if !out.add_raw(e.oid, e.crc, end - e.offset, &mut r)? {
                out.abandon();
                bail!(
                    "pack {} is damaged at object {} (CRC mismatch); nothing was merged or deleted",
                    p.display(),
                    e.oid
                );
            }
        }
    }
    let merged = plan.len();
    let name = out.finish()?.context("merged pack unexpectedly empty")?;
    let new_pack = repo.pack_dir().join(format!("pack-{name}.pack"));
    // Every object of every input must be in the new index before any input goes.
    let have: HashSet<_> = read_index(&new_pack.with_extension("idx"))?.into_iter().map(|e| e.oid).collect();
    if let Some(missing) = seen.iter().find(|o| !have.contains(*o)) {
        bail!("merged pack {} lacks object {missing}; nothing was deleted", new_pack.display());
    }
    for (p, _) in &plan {
        // A re-merge can produce a byte-identical pack under the same name: never delete it.
        if *p == new_pack {
            continue;
        }
        fs::remove_file(p.with_extension("idx"))?;
        fs::remove_file(p)?;
        // git's own fetch (imports from a local repository) writes a reverse index beside
        // its pack: it goes with the pack.
        let _ = fs::remove_file(p.with_extension("rev"));
    }
    crate::atomic::sync_dir(&repo.pack_dir())?;
    repo.repo.odb()?.refresh()?;
    Ok(merged)
}
