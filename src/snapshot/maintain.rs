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
    }
    crate::atomic::sync_dir(&repo.pack_dir())?;
    repo.repo.odb()?.refresh()?;
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 14): merging a duplicate of a pack wrote a byte-identical pack under
    /// the input's own name and then deleted every input, that pack included: the repo was wiped.
    #[test]
    fn merging_into_an_identical_pack_never_deletes_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = BackupRepo::create(&dir.path().join("r.git"), "snapshot", dir.path()).expect("repo");
        let data = b"a note that must survive";
        let oid = git2::Oid::hash_object(git2::ObjectType::Blob, data).expect("hash");
        let mut w = PackWriter::create(&repo.pack_dir()).expect("writer");
        w.add_compressed(
            oid,
            crate::git::objects::Kind::Blob,
            data.len() as u64,
            &crate::snapshot::pack::compress(data),
        )
        .expect("add");
        let name = w.finish().expect("finish").expect("name");
        let pack = repo.pack_dir().join(format!("pack-{name}.pack"));
        let dup = repo.pack_dir().join(format!("pack-{}.pack", "0".repeat(40)));
        fs::copy(&pack, &dup).expect("copy pack");
        fs::copy(pack.with_extension("idx"), dup.with_extension("idx")).expect("copy idx");
        let packs = list_packs(&repo.pack_dir()).expect("list");
        assert_eq!(packs.len(), 2);
        merge(&repo, &packs).expect("merge");
        let fresh = git2::Repository::open_bare(dir.path().join("r.git")).expect("reopen");
        let blob = fresh.find_blob(oid).expect("the object survives the merge");
        assert_eq!(blob.content(), data);
        assert!(pack.exists(), "the merged pack itself must never be deleted");
    }
}
