//! Keeping the backup repo tidy without `git gc` (libgit2 has none): every snapshot adds one
//! pack, so once there are more than [`MAX_PACKS`], the packs we wrote are merged into one by
//! copying their entries byte for byte (they hold whole objects, no deltas, so nothing needs
//! re-compressing). Each copied entry is checked against its index CRC; the old packs are
//! deleted only after the merged pack is complete, synced and visible.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::pack::PackWriter;
use super::packread::read_index;
use crate::git::BackupRepo;

/// More packs than this and they are merged.
pub const MAX_PACKS: usize = 16;

/// Called after every snapshot.
pub fn after_snapshot(repo: &BackupRepo) -> Result<()> {
    let packs = list_packs(&repo.pack_dir())?;
    if packs.len() <= MAX_PACKS {
        return Ok(());
    }
    merge(repo, &packs)?;
    Ok(())
}

/// The `.pack` files that have an index, oldest name order.
pub fn list_packs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(out);
    };
    for e in rd {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "pack")
            && p.with_extension("idx").exists()
            && !p.with_extension("keep").exists()
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

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
            crate::snapshot::packread::seek_to(&mut r, e.offset)?;
            let kind = (r.fill_buf()?.first().copied().unwrap_or(0) >> 4) & 7;
            if !(1..=4).contains(&kind) {
                let obj = odb
                    .read(e.oid)
                    .with_context(|| format!("object {} of {} cannot be read", e.oid, p.display()))?;
                let k = crate::git::objects::Kind::of(obj.kind());
                out.add_compressed(e.oid, k, obj.data().len() as u64, &super::pack::compress(obj.data()))?;
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
    out.finish()?.context("merged pack unexpectedly empty")?;
    for (p, _) in &plan {
        fs::remove_file(p.with_extension("idx"))?;
        fs::remove_file(p)?;
    }
    crate::atomic::sync_dir(&repo.pack_dir())?;
    repo.repo.odb()?.refresh()?;
    Ok(merged)
}
