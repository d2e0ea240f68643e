//! Keeping the backup repo tidy without `git gc` (libgit2 has none): every snapshot adds one
//! pack, so once there are more than [`MAX_PACKS`], the packs we wrote are merged into one by
//! copying their entries byte for byte (they hold whole objects, no deltas, so nothing needs
//! re-compressing). Each copied entry is checked against its index CRC; the old packs are
//! deleted only after the merged pack is complete, synced and visible.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use git2::Oid;

use super::pack::PackWriter;
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

/// One object's entry in a pack, from its index.
struct Entry {
    oid: Oid,
    crc: u32,
    offset: u64,
}

/// Reads a version-2 index.
fn read_index(idx: &Path) -> Result<Vec<Entry>> {
    let b = fs::read(idx).with_context(|| format!("cannot read {}", idx.display()))?;
    if b.len() < 8 + 1024 + 40 || &b[..8] != b"\xfftOc\0\0\0\x02" {
        bail!("{} is not a version-2 pack index", idx.display());
    }
    let be32 = |at: usize| u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let n = be32(8 + 255 * 4) as usize;
    let names = 8 + 1024;
    let crcs = names + n * 20;
    let offs = crcs + n * 4;
    let large = offs + n * 4;
    if b.len() < large + 40 {
        bail!("{} is truncated", idx.display());
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let raw = be32(offs + i * 4);
        let offset = if raw & 0x8000_0000 != 0 {
            let at = large + (raw & 0x7fff_ffff) as usize * 8;
            u64::from_be_bytes(
                b.get(at..at + 8)
                    .context("large offset out of range")?
                    .try_into()
                    .expect("8 bytes"),
            )
        } else {
            raw as u64
        };
        out.push(Entry {
            oid: Oid::from_bytes(&b[names + i * 20..names + i * 20 + 20])?,
            crc: be32(crcs + i * 4),
            offset,
        });
    }
    Ok(out)
}

/// Whether every entry of a pack is a whole object (no deltas), so it can be copied as is.
fn copyable(pack: &Path, entries: &[Entry]) -> Result<bool> {
    let mut f = File::open(pack)?;
    let mut byte = [0u8; 1];
    for e in entries {
        f.seek(SeekFrom::Start(e.offset))?;
        f.read_exact(&mut byte)?;
        let kind = (byte[0] >> 4) & 7;
        if !(1..=4).contains(&kind) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Merges the copyable packs among `packs` into one.
pub fn merge(repo: &BackupRepo, packs: &[PathBuf]) -> Result<usize> {
    let mut plan = Vec::new();
    for p in packs {
        let mut entries = read_index(&p.with_extension("idx"))?;
        if copyable(p, &entries)? {
            entries.sort_by_key(|e| e.offset);
            plan.push((p.clone(), entries));
        }
    }
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
            r.seek(SeekFrom::Start(e.offset))?;
            let mut raw = vec![0u8; (end - e.offset) as usize];
            r.read_exact(&mut raw)?;
            if crc32fast::hash(&raw) != e.crc {
                out.abandon();
                bail!(
                    "pack {} is damaged at object {} (CRC mismatch); run `opus-mirror check`",
                    p.display(),
                    e.oid
                );
            }
            if seen.insert(e.oid) {
                out.add_raw(e.oid, e.crc, &raw)?;
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
