//! Keeping the backup repo tidy without `git gc` (libgit2 has none): every snapshot adds one
//! pack, so once there are more than [`MAX_PACKS`], the smallest packs are merged into one
//! the way `git repack --geometric=2` picks them: what remains is a geometric progression
//! (each pack at least twice the next smaller), so every object is rewritten O(log n) times
//! over its life and no snapshot pays for the whole repo. The merge itself (entries copied
//! byte for byte, the old packs deleted only once the new one holds all their objects) is
//! git format code: [`crate::git::pack::merge`].
//!
//! Every merge also makes deltas: an older version of a file is stored as a delta of its newer
//! version when both are in the packs merged. Versions are found in history: each commit's
//! tree against its first parent's, path by path (a merge of recent packs looks only at the
//! commits in them). [`repack`] merges every pack, for the edits whose older version sits in
//! the big old pack that geometric merging rarely touches: the run's periodic `repack` step.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

use anyhow::Result;
use git2::{Odb, Oid};

use crate::git::objects::{parse_tree, MODE_EXEC, MODE_FILE, MODE_TREE};
use crate::git::pack::list_packs;
use crate::git::pack::merge::{merge, Merged};
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
        let mut inside = HashSet::new();
        for p in &chosen {
            inside.extend(crate::git::pack::read_index(&p.with_extension("idx"))?.into_iter().map(|e| e.oid));
        }
        match merge(repo, &chosen, &versions(repo, Some(&inside)), 0) {
            // The snapshot is taken; its packs are merged by a later one, once there is room.
            Err(e) if e.downcast_ref::<crate::git::pack::merge::NoRoom>().is_some() => {
                tracing::warn!("{e:#}");
            }
            r => {
                r?;
            }
        }
    }
    Ok(())
}

/// Merges every pack of the backup repo into one, making a delta of every older version of a
/// file whose newer version is kept (deltas made before are copied as they are), once that
/// saves a [`REPACK_SAVING_PARTS`]th of the repo: a rewrite costs a read and a write of the whole repo
/// (and the check's re-read of it), so the edits of a few weeks on a large vault wait until
/// they add up. Geometric merges make the deltas they can on the way, for free. Nothing is
/// deleted before the new pack holds everything.
pub fn repack(repo: &BackupRepo) -> Result<Merged> {
    let packs = list_packs(&repo.pack_dir())?;
    if packs.is_empty() {
        return Ok(Merged::default());
    }
    let total: u64 = packs.iter().filter_map(|p| fs::metadata(p).ok()).map(|m| m.len()).sum();
    merge(repo, &packs, &versions(repo, None), total / REPACK_SAVING_PARTS)
}

/// A repack rewrites the repo when its deltas save at least one part in this many (2 %).
pub const REPACK_SAVING_PARTS: u64 = 50;

/// (older, newer) pairs of blobs that were the same file in a commit and its first parent,
/// newest commits first, from every ref's history (`only`: the commits among these objects).
/// A best effort: what cannot be read (a damaged repo) gives fewer pairs, never an error, as
/// check is the one to report damage.
pub(crate) fn versions(repo: &BackupRepo, only: Option<&HashSet<Oid>>) -> Vec<(Oid, Oid)> {
    let mut out = Vec::new();
    let Ok(odb) = repo.repo.odb() else { return out };
    let Ok(mut walk) = repo.repo.revwalk() else { return out };
    let Ok(refs) = crate::bundle::create::bundle_refs(&repo.repo) else { return out };
    for oid in refs.values() {
        if let Ok(c) = repo.repo.find_commit(*oid) {
            let _ = walk.push(c.id());
        }
    }
    for c in walk.flatten() {
        if only.is_some_and(|set| !set.contains(&c)) {
            continue;
        }
        let Ok(commit) = repo.repo.find_commit(c) else { continue };
        let Ok(parent) = commit.parent(0) else { continue };
        pairs(&odb, parent.tree_id(), commit.tree_id(), &mut out, 0);
    }
    out
}

/// The files of tree `new` that `old` held under the same path with other content.
fn pairs(odb: &Odb, old: Oid, new: Oid, out: &mut Vec<(Oid, Oid)>, depth: usize) {
    if old == new || depth > 256 {
        return;
    }
    let read = |t: Oid| odb.read(t).ok().and_then(|o| parse_tree(o.data()));
    let (Some(a), Some(b)) = (read(old), read(new)) else { return };
    let before: std::collections::HashMap<&[u8], _> = a.iter().map(|e| (e.name.as_slice(), e)).collect();
    for e in &b {
        let Some(o) = before.get(e.name.as_slice()) else { continue };
        if o.oid == e.oid {
            continue;
        }
        let file = |m: u32| m == MODE_FILE || m == MODE_EXEC;
        match (o.mode, e.mode) {
            (MODE_TREE, MODE_TREE) => pairs(odb, o.oid, e.oid, out, depth + 1),
            (m, n) if file(m) && file(n) => out.push((o.oid, e.oid)),
            _ => {}
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::pack::PackWriter;

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
        merge(&repo, &packs, &[], 0).expect("merge");
        let fresh = git2::Repository::open_bare(dir.path().join("r.git")).expect("reopen");
        let blob = fresh.find_blob(oid).expect("the object survives the merge");
        assert_eq!(blob.content(), data);
        assert!(pack.exists(), "the merged pack itself must never be deleted");
    }
}
