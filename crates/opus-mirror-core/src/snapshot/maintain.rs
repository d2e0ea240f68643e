//! Keeping the backup repo tidy without `git gc` (libgit2 has none): every snapshot adds one
//! pack, so once there are more than [`MAX_PACKS`], the smallest packs are merged into one
//! the way `git repack --geometric=2` picks them: what remains is a geometric progression
//! (each pack at least twice the next smaller), so every object is rewritten O(log n) times
//! over its life and no snapshot pays for the whole repo. Entries are copied byte for byte
//! (they hold whole objects, so nothing needs re-compressing), each checked against its index
//! CRC; the old packs are deleted only after the merged pack is complete, synced, visible and
//! known to hold every one of their objects.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::git::pack::PackWriter;
use crate::git::pack::{list_packs, read_index};
use crate::git::BackupRepo;

/// More packs than this and the smallest are merged.
pub const MAX_PACKS: usize = 16;

/// Each pack that stays must be at least this many times the size of the next smaller one.
const FACTOR: u64 = 2;

/// Called after every snapshot.
pub(crate) fn after_snapshot(repo: &BackupRepo) -> Result<()> {
    let packs = list_packs(&repo.pack_dir())?;
    if packs.len() <= MAX_PACKS {
        return Ok(());
    }
    let mut sized: Vec<(u64, PathBuf)> =
        packs.into_iter().map(|p| (fs::metadata(&p).map(|m| m.len()).unwrap_or(0), p)).collect();
    sized.sort();
    let weights: Vec<u64> = sized.iter().map(|(w, _)| *w).collect();
    let n = geometric_split(&weights);
    if n >= 2 {
        let chosen: Vec<PathBuf> = sized.into_iter().take(n).map(|(_, p)| p).collect();
        merge(repo, &chosen)?;
    }
    Ok(())
}

/// How many of the smallest packs (`weights` sorted ascending) to merge so that the packs left,
/// with the merged one, form a geometric progression: git's `repack --geometric` split.
pub(crate) fn geometric_split(weights: &[u64]) -> usize {
    let n = weights.len();
    if n < 2 {
        return 0;
    }
    // From the largest down, the packs that already form a progression stay.
    let mut split = n - 1;
    while split > 0 && weights[split] >= FACTOR.saturating_mul(weights[split - 1]) {
        split -= 1;
    }
    if split > 0 {
        split += 1; // the upper pack of the first pair out of progression is merged too
    }
    // The merged pack may now be too big for the next one up: roll that one in as well.
    let mut total: u64 = weights[..split].iter().sum();
    while split < n && weights[split] < FACTOR.saturating_mul(total) {
        total += weights[split];
        split += 1;
    }
    split
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progression_is_left_alone_and_the_small_tail_is_merged() {
        assert_eq!(geometric_split(&[1, 2, 4, 8, 16]), 0);
        assert_eq!(geometric_split(&[1, 1, 1, 1, 1000]), 4);
        // Merging the three 10s (30) makes the 40 out of progression: it joins.
        assert_eq!(geometric_split(&[10, 10, 10, 40, 1000]), 4);
        assert_eq!(geometric_split(&[5, 5]), 2);
        assert_eq!(geometric_split(&[7]), 0);
    }

    /// The point of geometric merging: a year of small snapshots rewrites each byte O(log n)
    /// times, where merging everything at 16 packs rewrote the whole repo every 16 snapshots.
    #[test]
    #[allow(clippy::same_item_push)] // one small pack per snapshot, merged between pushes
    fn write_amplification_stays_logarithmic() {
        let simulate = |geometric: bool| -> (u64, usize) {
            let mut packs: Vec<u64> = vec![100_000]; // the first full snapshot
            let mut rewritten = 0;
            for _ in 0..2000 {
                packs.push(10); // one session's changes
                if packs.len() > MAX_PACKS {
                    packs.sort();
                    let n = if geometric { geometric_split(&packs) } else { packs.len() };
                    if n >= 2 {
                        let merged: u64 = packs.drain(..n).sum();
                        rewritten += merged;
                        packs.push(merged);
                    }
                }
            }
            (rewritten, packs.len())
        };
        let (geo, left) = simulate(true);
        let (all, _) = simulate(false);
        eprintln!("rewritten: geometric {geo}, merge-all {all}, packs left {left}");
        let added = 2000 * 10;
        assert!(geo < added * 16, "geometric merging rewrote {geo} bytes for {added} added");
        assert!(all > 100 * geo, "merging everything should cost far more: {all} vs {geo}");
        assert!(left <= MAX_PACKS, "{left} packs left");
    }

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
            &crate::git::pack::compress(data),
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
