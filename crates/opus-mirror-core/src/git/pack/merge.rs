//! Merging packs into one, and making deltas while doing so. Whole-object entries and our own
//! `REF_DELTA` entries are copied byte for byte (they need no re-compressing), each checked
//! against its index CRC; an older version of a file whose newer version is in the same set is
//! stored as a delta of it (newest whole, as git does: what is restored most is read fastest).
//! The old packs are deleted only after the merged pack is complete, synced, visible and known
//! to hold every one of their objects. Which packs to merge, and which objects are versions of
//! each other, is the caller's policy (`snapshot::maintain`).
//!
//! Every delta names its base by id, and its base is always in the same pack, so the entry
//! stays valid when copied into another pack that holds the base too (a later merge always
//! does; a bundle or a mirror push copies it only then, and stores the object whole otherwise).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use git2::Oid;

use crate::git::pack::delta;
use crate::git::pack::index::apply;
use crate::git::pack::{read_head, read_index, seek_to, OldEntry, PackWriter, OFS_DELTA};
use crate::git::BackupRepo;

/// New deltas make no chain deeper than this (git's `pack.depth` default): reading an old
/// version costs at most this many delta applications.
pub const MAX_CHAIN: usize = 50;
/// Deltas already stored (git's own, from an imported history packed with `--depth=250`) are
/// kept up to the depth our pack indexer reads back.
const MAX_KEPT_CHAIN: usize = crate::git::pack::index::MAX_DEPTH;
/// Only blobs up to this size are made deltas: both versions are held in memory meanwhile,
/// and large attachments are rarely edited in place.
pub const DELTA_MAX: u64 = 8 << 20;

/// Free space kept beyond the merged pack's worst-case size (the sum of its inputs).
const ROOM_MARGIN: u64 = 16 << 20;

/// Too little free space for a merge: nothing was written. The caller decides whether that is
/// worth a warning (the run's repack) or only a note (the merge after a snapshot).
#[derive(Debug, thiserror::Error)]
#[error(
    "not enough free space to merge the backup repo's packs: up to {} beside them, {} free on the filesystem of {}; nothing was changed\n  fix: free some space there; the backups are untouched, and the packs are merged once there is room",
    crate::human::human_bytes(*need),
    crate::human::human_bytes(*free),
    dir.display()
)]
pub struct NoRoom {
    pub need: u64,
    pub free: u64,
    pub dir: PathBuf,
}

/// What a merge did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Merged {
    /// Packs merged into one (0: nothing was done).
    pub packs: usize,
    pub objects: usize,
    /// Objects stored as a delta for the first time.
    pub deltas_made: usize,
    /// Deltas copied as they were.
    pub deltas_kept: usize,
    /// The packs' size before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// When nothing was done because it saved too little: the deltas that could be made, and
    /// about how many bytes they would save.
    pub waiting: usize,
    pub would_save: u64,
}

/// One object's entry in the packs being merged.
#[derive(Clone, Copy)]
struct Stored {
    pack: usize,
    offset: u64,
    end: u64,
    crc: u32,
    kind: u8,
    size: u64,
    /// A delta's base: by id (`REF_DELTA`), or the object at its offset (`OFS_DELTA`).
    base: Option<Oid>,
    /// The bytes of the entry's head (type, size, base).
    head_len: u64,
}

/// Merges `packs` into one. `versions` are (older, newer) pairs of the same file: the older is
/// stored as a delta of the newer when both are in these packs and the delta is worth it.
/// With one pack, it is rewritten only when there is a delta to make. With `min_saving`, the
/// packs are rewritten only when the new deltas save at least that many bytes, or git's offset
/// deltas are to be re-headed (the caller's bound on how much is rewritten for how little).
pub fn merge(
    repo: &BackupRepo,
    packs: &[PathBuf],
    versions: &[(Oid, Oid)],
    min_saving: u64,
) -> Result<Merged> {
    let (order, stored) = scan(packs)?;
    let odb = repo.repo.odb()?;
    let mut base_of = plan(&stored, versions);
    // Each new delta is made (and checked) now: one not worth it is no reason to rewrite.
    let mut made: HashMap<Oid, Vec<u8>> = HashMap::new();
    let fresh: Vec<(Oid, Oid)> =
        base_of.iter().filter(|(o, b)| stored[*o].base != Some(**b)).map(|(o, b)| (*o, *b)).collect();
    // A delta entry's size is the delta's: the objects' own sizes come from their headers.
    let small = |o: Oid| odb.read_header(o).is_ok_and(|(n, _)| n as u64 <= DELTA_MAX);
    for (o, b) in fresh {
        if !small(o) || !small(b) {
            base_of.remove(&o);
            continue;
        }
        match make_delta(&odb, o, b)? {
            Some(d) => {
                made.insert(o, d);
            }
            None => {
                base_of.remove(&o);
            }
        }
    }
    let offsets = base_of.keys().filter(|o| stored[*o].kind == OFS_DELTA).count();
    // What the new deltas save: each object's stored entry, less its delta (before zlib).
    let saving: u64 = made
        .iter()
        .map(|(o, d)| (stored[o].end - stored[o].offset).saturating_sub(d.len() as u64 + 22))
        .sum();
    let pointless = packs.len() < 2 && made.is_empty();
    if offsets == 0 && (pointless || saving < min_saving) {
        return Ok(Merged { waiting: made.len(), would_save: saving, ..Default::default() });
    }
    let mut report = Merged { packs: packs.len(), ..Default::default() };
    let mut readers: Vec<BufReader<File>> = Vec::with_capacity(packs.len());
    for p in packs {
        readers.push(BufReader::with_capacity(1 << 20, crate::safe_fs::open_regular(p)?));
        report.bytes_before += fs::metadata(p)?.len();
    }
    // The merged pack is written beside the old ones: never start what the disk cannot hold.
    let dir = repo.pack_dir();
    if let Some(free) = crate::diskfull::free_bytes(&dir) {
        if free < report.bytes_before.saturating_add(ROOM_MARGIN) {
            return Err(NoRoom { need: report.bytes_before, free, dir }.into());
        }
    }
    let mut out = PackWriter::create(&repo.pack_dir())?;
    for oid in &order {
        let s = stored[oid];
        let r = &mut readers[s.pack];
        let damaged = || {
            anyhow::anyhow!(
                "pack {} is damaged at object {oid} (CRC mismatch); nothing was merged or deleted",
                packs[s.pack].display()
            )
        };
        match base_of.get(oid) {
            Some(b) if s.base == Some(*b) => {
                seek_to(r, s.offset)?;
                let copied = if s.kind == OFS_DELTA {
                    let head = read_head(r)?;
                    let old = OldEntry { head: &head.bytes, crc: s.crc, rest: s.end - s.offset - s.head_len };
                    out.add_ofs_as_ref(*oid, *b, s.size, old, r)?
                } else {
                    out.add_raw(*oid, s.crc, s.end - s.offset, r)?
                };
                if !copied {
                    out.abandon();
                    return Err(damaged());
                }
                report.deltas_kept += 1;
            }
            Some(b) => {
                out.add_ref_delta(*oid, *b, &made[oid])?;
                report.deltas_made += 1;
            }
            None if (1..=4).contains(&s.kind) => {
                seek_to(r, s.offset)?;
                if !out.add_raw(*oid, s.crc, s.end - s.offset, r)? {
                    out.abandon();
                    return Err(damaged());
                }
            }
            None => {
                // A delta not kept (its chain was cut, its base is not here): read whole
                // through the object database and stored afresh.
                let obj = odb
                    .read(*oid)
                    .with_context(|| format!("object {oid} of {} cannot be read", packs[s.pack].display()))?;
                let k = crate::git::objects::Kind::of(obj.kind());
                out.add_compressed(
                    *oid,
                    k,
                    obj.data().len() as u64,
                    &crate::git::pack::compress(obj.data()),
                )?;
            }
        }
    }
    report.objects = out.len();
    let name = out.finish()?.context("merged pack unexpectedly empty")?;
    let new_pack = repo.pack_dir().join(format!("pack-{name}.pack"));
    report.bytes_after = fs::metadata(&new_pack)?.len();
    // Every object of every input must be in the new index before any input goes.
    let have: HashSet<_> = read_index(&new_pack.with_extension("idx"))?.into_iter().map(|e| e.oid).collect();
    if let Some(missing) = order.iter().find(|o| !have.contains(*o)) {
        bail!("merged pack {} lacks object {missing}; nothing was deleted", new_pack.display());
    }
    for p in packs {
        // A re-merge can produce a byte-identical pack under the same name: never delete it.
        if *p == new_pack {
            continue;
        }
        fs::remove_file(p.with_extension("idx"))?;
        fs::remove_file(p)?;
        // git writes a reverse index and a bitmap beside its packs: they go with the pack.
        let _ = fs::remove_file(p.with_extension("rev"));
        let _ = fs::remove_file(p.with_extension("bitmap"));
    }
    crate::atomic::sync_dir(&repo.pack_dir())?;
    repo.repo.odb()?.refresh()?;
    Ok(report)
}

/// Every object of `packs` once (the first pack that has it), in pack order (reads stay
/// sequential), with its entry's head.
fn scan(packs: &[PathBuf]) -> Result<(Vec<Oid>, HashMap<Oid, Stored>)> {
    let mut order = Vec::new();
    let mut stored = HashMap::new();
    for (i, p) in packs.iter().enumerate() {
        let mut entries = read_index(&p.with_extension("idx"))?;
        entries.sort_by_key(|e| e.offset);
        let len = fs::metadata(p)?.len();
        let mut r = BufReader::with_capacity(1 << 16, crate::safe_fs::open_regular(p)?);
        for (j, e) in entries.iter().enumerate() {
            let end = entries.get(j + 1).map(|n| n.offset).unwrap_or(len.saturating_sub(20));
            if stored.contains_key(&e.oid) {
                continue;
            }
            if end <= e.offset {
                bail!("pack {} is damaged: its index places {} out of order", p.display(), e.oid);
            }
            seek_to(&mut r, e.offset)?;
            let h =
                read_head(&mut r).with_context(|| format!("pack {} is damaged at {}", p.display(), e.oid))?;
            // An offset delta's base is the entry at that offset in the same pack.
            let base = match h.back {
                Some(back) => e.offset.checked_sub(back).and_then(|at| {
                    entries.binary_search_by_key(&at, |x| x.offset).ok().map(|k| entries[k].oid)
                }),
                None => h.base,
            };
            let head_len = h.bytes.len() as u64;
            let s = Stored {
                pack: i,
                offset: e.offset,
                end,
                crc: e.crc,
                kind: h.kind,
                size: h.size,
                base,
                head_len,
            };
            stored.insert(e.oid, s);
            order.push(e.oid);
        }
    }
    Ok((order, stored))
}

/// Which object is stored as a delta of which: the deltas already there (kept), then each
/// older version whose newer one is here too, as long as no chain loops or grows deeper than
/// [`MAX_CHAIN`] (an entry past it is stored whole).
fn plan(stored: &HashMap<Oid, Stored>, versions: &[(Oid, Oid)]) -> HashMap<Oid, Oid> {
    let mut base_of: HashMap<Oid, Oid> = stored
        .iter()
        .filter_map(|(o, s)| s.base.filter(|b| stored.contains_key(b)).map(|b| (*o, b)))
        .collect();
    for (older, newer) in versions {
        let (Some(o), Some(n)) = (stored.get(older), stored.get(newer)) else { continue };
        if older == newer || base_of.contains_key(older) || o.kind != 3 || o.size > DELTA_MAX {
            continue;
        }
        if n.kind == 3 && n.size > DELTA_MAX {
            continue;
        }
        // The newer one's chain must not lead back to the older one.
        let mut at = *newer;
        let mut steps = 0;
        let loops = loop {
            match base_of.get(&at) {
                Some(b) if *b == *older => break true,
                Some(b) if steps <= MAX_CHAIN + 1 => {
                    at = *b;
                    steps += 1;
                }
                _ => break false,
            }
        };
        if !loops {
            base_of.insert(*older, *newer);
        }
    }
    let kept: HashSet<Oid> = stored
        .iter()
        .filter(|(o, s)| s.base.is_some() && s.base == base_of.get(*o).copied())
        .map(|(o, _)| *o)
        .collect();
    cut_chains(&mut base_of, &kept);
    base_of
}

/// Stores whole every object whose chain is deeper than [`MAX_CHAIN`] through a new delta
/// ([`MAX_KEPT_CHAIN`] for one `kept` as it was), or loops (a damaged pack's doing), so that
/// every chain left is short.
fn cut_chains(base_of: &mut HashMap<Oid, Oid>, kept: &HashSet<Oid>) {
    let mut depth: HashMap<Oid, usize> = HashMap::new();
    let keys: Vec<Oid> = base_of.keys().copied().collect();
    for start in keys {
        // The chain from `start` down to the first object whose depth is known (or whole).
        let mut chain = vec![start];
        let mut seen = HashSet::from([start]);
        let mut below = 0;
        while let Some(b) = base_of.get(chain.last().expect("never empty")).copied() {
            if let Some(d) = depth.get(&b) {
                below = *d;
                break;
            }
            if !seen.insert(b) {
                // A loop: the object whose base closes it is stored whole.
                base_of.remove(chain.last().expect("never empty"));
                break;
            }
            chain.push(b);
        }
        // Assign from the bottom up; whatever would exceed the limit starts a new chain.
        let mut d = below;
        for o in chain.iter().rev() {
            d = if base_of.contains_key(o) { d + 1 } else { 0 };
            let limit = if kept.contains(o) { MAX_KEPT_CHAIN } else { MAX_CHAIN };
            if d > limit {
                base_of.remove(o);
                d = 0;
            }
            depth.insert(*o, d);
        }
    }
}

/// The delta that rebuilds `oid` from `base`, checked by applying it, when it is under half
/// the object's size; `None` when the object is better stored whole.
fn make_delta(odb: &git2::Odb, oid: Oid, base: Oid) -> Result<Option<Vec<u8>>> {
    let target = odb.read(oid).with_context(|| format!("object {oid} cannot be read"))?;
    let from = odb.read(base).with_context(|| format!("object {base} cannot be read"))?;
    if target.kind() != git2::ObjectType::Blob || from.kind() != git2::ObjectType::Blob {
        return Ok(None);
    }
    let d = delta::encode(from.data(), target.data());
    if d.len() * 2 >= target.data().len() {
        return Ok(None);
    }
    match apply(from.data(), &d) {
        Ok(back) if back == target.data() => Ok(Some(d)),
        _ => bail!(
            "the delta made for object {oid} does not rebuild it (a bug); nothing was merged or deleted"
        ),
    }
}

/// The bytes of entry `s` of a pack, for tests.
#[cfg(test)]
fn raw(p: &std::path::Path, offset: u64, len: u64) -> Vec<u8> {
    use std::io::Read;
    let mut f = BufReader::new(File::open(p).expect("pack"));
    seek_to(&mut f, offset).expect("seek");
    let mut b = vec![0; len as usize];
    f.read_exact(&mut b).expect("read");
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::objects::Kind;

    fn repo(dir: &std::path::Path) -> BackupRepo {
        BackupRepo::create(&dir.join("r.git"), "snapshot", dir).expect("repo")
    }

    fn note(v: usize) -> Vec<u8> {
        let mut s: String = (0..300).map(|i| format!("line {i} of a long note about the vault\n")).collect();
        for k in 0..v {
            s.push_str(&format!("appended in session {k}\n"));
        }
        s.into_bytes()
    }

    /// One pack per version, like one snapshot per session.
    fn versions(r: &BackupRepo, n: usize) -> Vec<Oid> {
        (0..n)
            .map(|v| {
                let mut w = PackWriter::create(&r.pack_dir()).expect("writer");
                let oid = w.add(Kind::Blob, &note(v)).expect("add");
                w.finish().expect("finish");
                oid
            })
            .collect()
    }

    fn pairs(oids: &[Oid]) -> Vec<(Oid, Oid)> {
        oids.windows(2).map(|w| (w[0], w[1])).collect()
    }

    fn fsck(r: &BackupRepo) {
        let out = std::process::Command::new("git")
            .args(["fsck", "--full", "--no-dangling"])
            .current_dir(&r.path)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git fsck: {}", String::from_utf8_lossy(&out.stderr));
    }

    #[test]
    fn older_versions_become_deltas_of_newer_ones_that_git_and_libgit2_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = repo(dir.path());
        let oids = versions(&r, 6);
        let packs = crate::git::pack::list_packs(&r.pack_dir()).expect("packs");
        let m = merge(&r, &packs, &pairs(&oids), 0).expect("merge");
        assert_eq!((m.packs, m.objects, m.deltas_made), (6, 6, 5), "{m:?}");
        assert!(m.bytes_after * 3 < m.bytes_before, "{m:?}");
        fsck(&r);
        let odb = r.repo.odb().expect("odb");
        for (v, oid) in oids.iter().enumerate() {
            assert_eq!(odb.read(*oid).expect("reads").data(), note(v));
        }
        // The newest is whole, so a restore of today reads no delta.
        let newest = crate::git::pack::list_packs(&r.pack_dir()).expect("packs")[0].clone();
        let (_, stored) = scan(std::slice::from_ref(&newest)).expect("scan");
        assert_eq!(stored[&oids[5]].kind, 3);
        assert_eq!(stored[&oids[0]].base, Some(oids[1]));

        // Merged again with a new version: the deltas are copied byte for byte, one is made.
        let mut w = PackWriter::create(&r.pack_dir()).expect("writer");
        let more = w.add(Kind::Blob, &note(6)).expect("add");
        w.finish().expect("finish");
        let packs = crate::git::pack::list_packs(&r.pack_dir()).expect("packs");
        let before: Vec<u8> =
            raw(&newest, stored[&oids[0]].offset, stored[&oids[0]].end - stored[&oids[0]].offset);
        let m = merge(&r, &packs, &[(oids[5], more)], 0).expect("merge again");
        assert_eq!((m.deltas_kept, m.deltas_made), (5, 1), "{m:?}");
        fsck(&r);
        let p = crate::git::pack::list_packs(&r.pack_dir()).expect("packs");
        let (_, s) = scan(&p).expect("scan");
        let e = s[&oids[0]];
        assert_eq!(raw(&p[0], e.offset, e.end - e.offset), before);
    }

    #[test]
    fn a_pair_that_would_loop_or_chain_too_deep_is_stored_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = repo(dir.path());
        let oids = versions(&r, 3);
        let packs = crate::git::pack::list_packs(&r.pack_dir()).expect("packs");
        // A file reverted: a→b then b→a. Only one of the two can be a delta.
        let m = merge(&r, &packs, &[(oids[0], oids[1]), (oids[1], oids[0])], 0).expect("merge");
        assert_eq!(m.deltas_made, 1, "{m:?}");
        fsck(&r);

        let mut base_of: HashMap<Oid, Oid> = HashMap::new();
        let ids: Vec<Oid> = (0..120u32)
            .map(|i| Oid::hash_object(git2::ObjectType::Blob, &i.to_be_bytes()).unwrap())
            .collect();
        for w in ids.windows(2) {
            base_of.insert(w[0], w[1]);
        }
        cut_chains(&mut base_of, &HashSet::new());
        let depth = |mut o: Oid| {
            let mut d = 0;
            while let Some(b) = base_of.get(&o) {
                o = *b;
                d += 1;
            }
            d
        };
        assert!(ids.iter().all(|o| depth(*o) <= MAX_CHAIN));
        assert!(base_of.len() >= 115, "only the links that cut a chain are dropped: {}", base_of.len());
    }

    #[test]
    fn a_delta_not_worth_it_leaves_the_object_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = repo(dir.path());
        let mut w = PackWriter::create(&r.pack_dir()).expect("writer");
        let a = w.add(Kind::Blob, &note(0)).expect("add");
        let b = w.add(Kind::Blob, b"nothing in common with the other one, at all; not a byte").expect("add");
        w.finish().expect("finish");
        let packs = crate::git::pack::list_packs(&r.pack_dir()).expect("packs");
        let m = merge(&r, &packs, &[(a, b)], 0).expect("merge");
        // Nothing to gain: the one pack is left as it is (a weekly repack rewrote it, and the
        // check re-read it, every time).
        assert_eq!(m, Merged::default());
        assert_eq!(crate::git::pack::list_packs(&r.pack_dir()).expect("packs"), packs);
        fsck(&r);
    }

    /// A git source's history arrives packed by git, as offset deltas. A repack stored each of
    /// them whole (a 24 KiB pack became 300 KiB); they are kept as deltas, re-headed to name
    /// their base by id, and the repo never grows.
    #[test]
    fn git_s_offset_deltas_are_kept_as_deltas_named_by_id() {
        let dir = tempfile::tempdir().expect("temp dir");
        let work = dir.path().join("work");
        let git = |args: &[&str]| {
            let o = std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"])
                .args(args)
                .current_dir(&work)
                .output()
                .expect("git runs");
            assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        };
        std::fs::create_dir_all(&work).expect("mkdir");
        git(&["init", "-q"]);
        for v in 0..12 {
            std::fs::write(work.join("f.md"), note(v)).expect("write");
            git(&["add", "f.md"]);
            git(&["commit", "-qm", &format!("v{v}")]);
        }
        git(&["gc", "-q", "--aggressive"]);
        let r = repo(dir.path());
        let from = work.join(".git/objects/pack");
        for e in std::fs::read_dir(&from).expect("git's pack dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "pack" || x == "idx") {
                std::fs::copy(&p, r.pack_dir().join(p.file_name().expect("name"))).expect("copy");
            }
        }
        // And one of ours, as a snapshot writes: two packs, so the merge happens.
        let mut w = PackWriter::create(&r.pack_dir()).expect("writer");
        w.add(Kind::Blob, b"a snapshot's own object").expect("add");
        w.finish().expect("finish");
        r.repo.odb().expect("odb").refresh().expect("refresh");
        let packs = crate::git::pack::list_packs(&r.pack_dir()).expect("packs");
        assert_eq!(packs.len(), 2);
        let (_, before) = scan(&packs).expect("scan");
        let ofs = before.values().filter(|s| s.kind == OFS_DELTA).count();
        assert!(ofs >= 11, "git's pack holds offset deltas: {ofs}");
        let m = merge(&r, &packs, &[], 0).expect("merge");
        assert!(m.bytes_after <= m.bytes_before + 20 * ofs as u64, "{m:?}");
        assert_eq!(m.deltas_kept, ofs, "{m:?}");
        fsck(&r);
        let (_, after) = scan(&crate::git::pack::list_packs(&r.pack_dir()).expect("packs")).expect("scan");
        assert_eq!(after.values().filter(|s| s.kind == OFS_DELTA).count(), 0);
        assert_eq!(after.values().filter(|s| s.kind == crate::git::pack::REF_DELTA).count(), ofs);
        // A repack of that one pack has nothing left to do.
        let packs = crate::git::pack::list_packs(&r.pack_dir()).expect("packs");
        assert_eq!(merge(&r, &packs, &[], 0).expect("again"), Merged::default());
    }
}
