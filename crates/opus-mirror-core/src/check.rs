//! `check`: prove the backups are whole. libgit2 has no fsck, so the backup repo is walked
//! from every ref and every object read, inflated and re-hashed; pack trailers are checked.
//! Bundles are checked beyond `git bundle verify` (which never reads the pack): sha256
//! against the manifest, the header, and the pack read by our own indexer (every object
//! hashed, the trailer checked); chains must be complete. Off-site bundles are
//! checked from the listing (size, md5) unless `--read-data` downloads them. The mirror
//! must still have what was last pushed. Every problem names its file, ref or object.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufReader};
use std::path::Path;

use anyhow::Result;
use git2::Oid;
use serde::{Deserialize, Serialize};

use crate::bundle::manifest::Manifest;
use crate::config::{Config, Source, Target, TargetKind};
use crate::git::objects::{self, Kind};
use crate::git::BackupRepo;
use crate::hashio::DigestWriter;
use crate::target;

pub mod verified;
mod walk;

pub use verified::{Ledger, Scope, Why};

/// What a check found for one area.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub area: String,
    pub checked: u64,
    pub problems: Vec<String>,
    /// The packs or bundles read whole this time, and why.
    pub read: Vec<ReadItem>,
    /// The packs or bundles not read: an earlier check verified them as they are.
    pub skipped: Vec<String>,
}

/// A pack or bundle read whole, and why it was.
#[derive(Debug, Clone, Serialize)]
pub struct ReadItem {
    pub name: String,
    pub why: Why,
}

/// What was last pushed to a source's mirror (saved by `mirror`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pushed {
    pub url: String,
    pub time: String,
    pub refs: BTreeMap<String, String>,
}

pub fn pushed_state(source: &str) -> String {
    format!("mirror-{source}.json")
}

/// Reads every object reachable from every ref once and re-hashes it ([`walk`]); checks
/// pack trailers. Under [`Scope::New`], the packs `ledger` says were verified as they are
/// (and not due again) are not read: their blobs are only looked up, while every commit and
/// tree is still read, so the structure is whole every time. The packs read without a
/// problem are recorded in `ledger`.
pub fn backup_repo(
    repo: &BackupRepo,
    source: &str,
    ledger: &mut Ledger,
    scope: Scope,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Report> {
    let mut r =
        Report { area: format!("backup repo of `{source}` ({})", repo.path.display()), ..Default::default() };
    let mut packs = Vec::new();
    for p in crate::git::pack::list_packs(&repo.pack_dir())? {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match verified::stat(&p) {
            Ok((size, mtime_ns)) => {
                packs.push((p, verified::Item { key: format!("pack/{name}"), size, mtime_ns, sha256: None }))
            }
            Err(e) => r.problems.push(format!("pack {}: {e}", p.display())),
        }
    }
    let items: Vec<verified::Item> = packs.iter().map(|(_, i)| i.clone()).collect();
    let picked = ledger.select("pack", &items, scope, now);
    // The objects whose content is verified without the walk reading them: those of the packs
    // not read (verified before), and those of the packs read now by the streaming indexer
    // (every object inflated and hashed in one sequential pass, the index checked against it).
    let mut skip: HashSet<Oid> = HashSet::new();
    let reads: Vec<Result<Vec<Oid>, String>> = {
        use rayon::prelude::*;
        packs
            .par_iter()
            .zip(picked.par_iter())
            .map(|((p, _), why)| match why {
                Some(_) => pack_read_ok(p),
                None => Ok(Vec::new()),
            })
            .collect()
    };
    for (((p, _), why), read) in packs.iter().zip(&picked).zip(reads) {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Some(why) = why else {
            match crate::git::pack::read_index(&p.with_extension("idx")) {
                Ok(es) => skip.extend(es.into_iter().map(|e| e.oid)),
                Err(e) => r.problems.push(format!("pack {}: {e:#}", p.display())),
            }
            r.skipped.push(name);
            continue;
        };
        match read {
            Ok(oids) => skip.extend(oids),
            // Its objects are read by the walk instead, each problem named by its path.
            Err(e) => r.problems.push(format!("pack {}: {e}", p.display())),
        }
        r.read.push(ReadItem { name, why: *why });
    }
    let odb = repo.repo.odb()?;
    let refs: Vec<(String, Oid)> = crate::bundle::create::bundle_refs(&repo.repo)?.into_iter().collect();
    let (checked, problems) = walk::objects(&odb, &repo.pack_dir(), &refs, &skip);
    r.checked += checked;
    r.problems.extend(problems);
    // A problem cannot always be pinned on one pack: then none read now counts as verified.
    if r.problems.is_empty() {
        for (item, why) in items.iter().zip(&picked) {
            if why.is_some() {
                ledger.verified(item, now);
            }
        }
    }
    ledger.forget_gone("pack/", &items);
    Ok(r)
}

/// Reads a pack whole with the streaming indexer (every object inflated and hashed, deltas
/// resolved, the trailer checked) and checks its `.idx` against what was found: every entry at
/// its offset, with its CRC and the id its content hashes to. Returns the ids verified.
fn pack_read_ok(p: &Path) -> Result<Vec<Oid>, String> {
    let found =
        crate::git::pack::index::index_file(p, 0, &Default::default()).map_err(|e| e.to_string())?.found;
    let at: HashMap<u64, (u32, Option<Oid>)> = found.iter().map(|(o, c, id)| (*o, (*c, *id))).collect();
    let idx = crate::git::pack::read_index(&p.with_extension("idx")).map_err(|e| format!("{e:#}"))?;
    if idx.len() != found.len() {
        return Err(format!("its index lists {} objects, the pack holds {}", idx.len(), found.len()));
    }
    let mut oids = Vec::with_capacity(idx.len());
    for e in idx {
        match at.get(&e.offset) {
            Some((crc, Some(id))) if *crc == e.crc && *id == e.oid => oids.push(e.oid),
            Some((_, None)) => {} // a delta on a base outside the pack: the walk reads it
            Some((crc, id)) if *crc != e.crc => {
                return Err(format!("the object at offset {} is not what its index recorded (CRC {crc:08x}, index {:08x}; {id:?})", e.offset, e.crc))
            }
            Some((_, id)) => {
                return Err(format!(
                    "object {} (offset {}) is corrupt: its content hashes to {}",
                    e.oid,
                    e.offset,
                    id.map(|i| i.to_string()).unwrap_or_default()
                ))
            }
            None => return Err(format!("its index places object {} at offset {}, where no object starts", e.oid, e.offset)),
        }
    }
    Ok(oids)
}

/// Streams a large blob out of our pack through SHA-1 (never whole in memory). One stored as a
/// delta (git's own, in an imported history: ours are never made of blobs this big) or loose
/// is rebuilt whole by libgit2 and hashed here: the walk has libgit2's own hash check off.
fn big_blob_ok(odb: &git2::Odb, pack_dir: &Path, oid: Oid) -> Result<(), String> {
    let Some((n, mut r)) = crate::git::pack::open_blob(pack_dir, oid).map_err(|e| e.to_string())? else {
        let obj = odb.read(oid).map_err(|e| format!("cannot be read: {}", e.message()))?;
        if objects::hash(Kind::Blob, obj.data()) != oid {
            return Err("corrupt: its content does not hash to its id".into());
        }
        return Ok(());
    };
    let mut h = DigestWriter { inner: io::sink(), digest: objects::hasher(Kind::Blob, n), len: 0 };
    io::copy(&mut r, &mut h).map_err(|e| format!("cannot be inflated: {e}"))?;
    if objects::finish(h.digest) != oid {
        return Err("corrupt: its content does not hash to its id".into());
    }
    Ok(())
}

/// Reads a bundle file fully: header, and the pack through our indexer (every object hashed,
/// every delta resolved, the trailer checked). A full bundle must also be complete on its own,
/// its refs included (an incremental one is completed by its chain, checked above).
pub fn bundle_file_ok(path: &Path, _state_dir: &Path) -> Result<(), String> {
    let mut r = BufReader::new(crate::safe_fs::open_regular(path).map_err(|e| e.to_string())?);
    let (h, start) = crate::bundle::format::Header::read(&mut r).map_err(|e| format!("header: {e}"))?;
    drop(r);
    let opts = crate::git::pack::index::Options {
        complete: h.prerequisites.is_empty(),
        trees: true,
        tips: &h.refs,
        ..Default::default()
    };
    crate::git::pack::index::index_file(path, start, &opts).map_err(|e| format!("pack: {e}"))?;
    Ok(())
}

/// Which off-site bundles to read fully this time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    /// Listing and hashes only.
    No,
    All,
    /// This percentage of the bundles, least recently read first.
    Subset(f64),
}

/// When each off-site bundle was last fully read.
type ReadLog = BTreeMap<String, String>;

/// How to read a target's bundles.
pub struct BundleRead<'a> {
    /// Off-site bundles: how many to download and read.
    pub read: ReadData,
    /// Bundles on a drive: all, or what `ledger` has not verified as they are.
    pub scope: Scope,
    pub identity: Option<&'a Path>,
    /// The target's listing when the caller has it (a run's plan), else it is listed here.
    pub listed: Option<&'a [target::Listed]>,
}

/// Checks the bundles of `source` on `t`: every manifest and chain, and the bundles `how`
/// asks for read whole. The drive bundles read without a problem are recorded in `ledger`.
pub fn bundles(
    cfg: &Config,
    source: &Source,
    t: &Target,
    how: BundleRead,
    ledger: &mut Ledger,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Report> {
    let (read, identity) = (how.read, how.identity);
    let mut r =
        Report { area: format!("bundles of `{}` on target `{}`", source.name, t.name), ..Default::default() };
    let listed = match how.listed {
        Some(l) => l.to_vec(),
        None => {
            target::check(t, &cfg.state_dir)?;
            target::list(t, &source.name)?
        }
    };
    let names: HashSet<&str> = listed.iter().map(|l| l.name.as_str()).collect();
    let manifests: Vec<&Manifest> = listed.iter().filter_map(|l| l.manifest.as_ref()).collect();
    for l in &listed {
        let Some(m) = &l.manifest else {
            r.problems.push(format!(
                "{}: no manifest (never verified: a run was killed after writing it?)",
                l.name
            ));
            continue;
        };
        if l.size != m.size {
            r.problems.push(format!("{}: {} bytes, but its manifest says {}", l.name, l.size, m.size));
        }
        if let Some(base) = &m.base {
            if !names.contains(base.as_str()) {
                r.problems.push(format!(
                    "{}: builds on {base}, which is missing from the target (its prerequisites are gone)",
                    l.name
                ));
            } else if let Some(bm) = manifests.iter().find(|b| &b.file == base) {
                let have: HashSet<&String> = bm.refs.values().collect();
                let missing: Vec<&String> = m
                    .prerequisites
                    .iter()
                    .filter(|p| !have.contains(p) && !prereq_reachable(cfg, source, p, bm))
                    .collect();
                for p in missing {
                    r.problems.push(format!("{}: prerequisite {p} is not in {base}", l.name));
                }
            }
        }
    }
    let local_dir = match &t.kind {
        TargetKind::Dir { path, .. } => Some(path.clone()),
        TargetKind::Rclone { .. } => None,
    };
    let mut read_log: ReadLog =
        crate::state::load(&cfg.state_dir, &format!("readdata-{}.json", t.name)).unwrap_or_default();
    // A drive's bundles as they are now, for the ledger (those with a manifest).
    let area = format!("bundle/{}", t.name);
    let items: Vec<verified::Item> = match &local_dir {
        Some(d) => manifests
            .iter()
            .map(|m| {
                let (size, mtime_ns) = verified::stat(&d.join(&m.file)).unwrap_or((m.size, None));
                verified::Item {
                    key: format!("{area}/{}", m.file),
                    size,
                    mtime_ns,
                    sha256: Some(m.sha256.clone()),
                }
            })
            .collect(),
        None => Vec::new(),
    };
    let to_read: Vec<&Manifest> = match (&local_dir, read) {
        (Some(_), _) => {
            let picked = ledger.select(&area, &items, how.scope, now);
            let mut v = Vec::new();
            for (m, why) in manifests.iter().zip(picked) {
                match why {
                    Some(why) => {
                        r.read.push(ReadItem { name: m.file.clone(), why });
                        v.push(*m);
                    }
                    None => r.skipped.push(m.file.clone()),
                }
            }
            ledger.forget_gone(&format!("{area}/"), &items);
            v
        }
        (None, ReadData::All) => manifests.clone(),
        (None, ReadData::No) => Vec::new(),
        (None, ReadData::Subset(pct)) => {
            // The least recently read, plus every bundle whose last full read (or, never read,
            // its creation) is older than read_data_within: all are read within that time.
            let n = ((manifests.len() as f64 * pct / 100.0).ceil() as usize).min(manifests.len());
            let last_read = |m: &Manifest| {
                read_log
                    .get(&m.file)
                    .and_then(|t| {
                        chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&chrono::Utc))
                    })
                    .or_else(|| m.created_at())
            };
            let mut v = manifests.clone();
            v.sort_by_key(|m| last_read(m));
            let overdue: Vec<&Manifest> = v[n..]
                .iter()
                .copied()
                .filter(|m| last_read(m).is_none_or(|t| t < now - cfg.read_data_within))
                .collect();
            v.truncate(n);
            v.extend(overdue);
            v
        }
    };
    if local_dir.is_none() {
        let remote = crate::target::rclone::hashes(t)?;
        for m in &manifests {
            match (remote.get(&m.file), &m.md5) {
                (Some((_, h)), Some(md5)) => {
                    if let Some(got) = h.get("md5") {
                        if !got.eq_ignore_ascii_case(md5) {
                            r.problems
                                .push(format!("{}: md5 {got} on the target, {md5} in its manifest", m.file));
                        }
                    }
                }
                (None, _) => r.problems.push(format!("{}: listed with a manifest but not found", m.file)),
                _ => {}
            }
        }
    }
    let scratch = crate::heal::scratch_dir(&cfg.state_dir, "check")?;
    for m in to_read {
        r.checked += 1;
        match read_bundle(cfg, t, m, local_dir.as_deref(), scratch.path(), identity) {
            Ok(()) => {
                if let Some(item) = items.iter().find(|i| i.key == format!("{area}/{}", m.file)) {
                    ledger.verified(item, now);
                }
                if local_dir.is_none() {
                    read_log.insert(m.file.clone(), now.to_rfc3339());
                }
            }
            Err(p) => {
                if let Some(item) = items.iter().find(|i| i.key == format!("{area}/{}", m.file)) {
                    ledger.damaged(item, now);
                }
                r.problems.push(format!("{}: {p}", m.file))
            }
        }
        if local_dir.is_none() {
            r.read.push(ReadItem { name: m.file.clone(), why: Why::Full });
        }
    }
    if local_dir.is_none() {
        crate::state::save(&cfg.state_dir, &format!("readdata-{}.json", t.name), &read_log)?;
    }
    Ok(r)
}

/// Reads one bundle whole: downloaded first from an off-site target (and removed after),
/// sha256 against its manifest, then (decrypted, when it is and `identity` is given) its
/// header and pack.
fn read_bundle(
    cfg: &Config,
    t: &Target,
    m: &Manifest,
    local_dir: Option<&Path>,
    scratch: &Path,
    identity: Option<&Path>,
) -> Result<(), String> {
    let file = match local_dir {
        Some(d) => d.join(&m.file),
        None => {
            let p = scratch.join(&m.file);
            target::fetch(t, &m.file, &p).map_err(|e| format!("cannot download: {e:#}"))?;
            p
        }
    };
    let result = (|| {
        match crate::hashio::sha256_file(&file) {
            Ok(s) if s == m.sha256 => {}
            Ok(s) => return Err(format!("sha256 {s}, but its manifest says {} (damaged)", m.sha256)),
            Err(e) => return Err(format!("cannot read: {e}")),
        }
        let plain = if m.encrypted {
            // Without the identity only the sha256 can be checked.
            let Some(id) = identity else { return Ok(()) };
            let p = scratch.join(format!("{}.plain", m.file));
            crate::bundle::create::decrypt(&file, id, &p).map_err(|e| format!("{e:#}"))?;
            p
        } else {
            file.clone()
        };
        let r = bundle_file_ok(&plain, &cfg.state_dir);
        if plain != file {
            let _ = std::fs::remove_file(&plain);
        }
        r
    })();
    if local_dir.is_none() {
        let _ = std::fs::remove_file(&file);
    }
    result
}

/// A prerequisite may be any commit the base bundle's refs reach (not only a tip).
fn prereq_reachable(cfg: &Config, source: &Source, prereq: &str, base: &Manifest) -> bool {
    let Ok(repo) = BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &source.name)) else {
        return false;
    };
    let Ok(p) = Oid::from_str(prereq) else { return false };
    base.refs
        .values()
        .filter_map(|o| Oid::from_str(o).ok())
        .any(|tip| tip == p || repo.repo.graph_descendant_of(tip, p).unwrap_or(false))
}

/// The mirror must still have every ref as it was last pushed.
pub fn mirror(cfg: &Config, source: &Source) -> Result<Option<Report>> {
    let (Some(url), Some(p)) =
        (&source.mirror, crate::state::load::<Pushed>(&cfg.state_dir, &pushed_state(&source.name)))
    else {
        return Ok(None);
    };
    let mut r = Report {
        area: format!("mirror of `{}` ({})", source.name, crate::config::mask_url(url)),
        ..Default::default()
    };
    let backup = BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &source.name))?;
    let resolved = crate::git::remote::resolve_url(&backup.repo, url);
    if let Some(dir) = crate::git::remote::local_git_dir(&resolved) {
        let locks = crate::heal::stale_mirror_locks(&dir);
        if !locks.is_empty() {
            r.problems.push(crate::heal::mirror_lock_message(&crate::config::mask_url(url), &locks));
        }
    }
    let live: BTreeMap<String, String> = crate::git::remote::ls_remote(&cfg.network, &backup.repo, url)?
        .into_iter()
        .map(|x| (x.name, x.oid.to_string()))
        .collect();
    for (name, oid) in &p.refs {
        r.checked += 1;
        match live.get(name) {
            Some(o) if o == oid => {}
            Some(o) => r.problems.push(format!("{name}: the mirror has {o}, {oid} was pushed {}", p.time)),
            None => r.problems.push(format!("{name}: gone from the mirror ({oid} was pushed {})", p.time)),
        }
    }
    Ok(Some(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::pack::PackWriter;

    /// A pack whose index names an object its bytes do not hold is refused by the pack read
    /// (which also makes the walk read that pack's objects itself).
    #[test]
    fn a_pack_whose_index_lies_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut w = PackWriter::create(dir.path()).expect("writer");
        let base = w.add(Kind::Blob, &vec![b'a'; 4000]).expect("base");
        let claimed = objects::hash(Kind::Blob, b"what the index claims");
        let mut real = vec![b'a'; 4000];
        real.extend_from_slice(b"what it holds");
        w.add_ref_delta(claimed, base, &crate::git::pack::delta::encode(&vec![b'a'; 4000], &real))
            .expect("delta");
        let name = w.finish().expect("finish").expect("a name");
        let pack = dir.path().join(format!("pack-{name}.pack"));
        let e = pack_read_ok(&pack).expect_err("a lying index");
        assert!(e.contains(&format!("object {claimed}")) && e.contains("is corrupt"), "{e}");

        let mut w = PackWriter::create(dir.path()).expect("writer");
        let good = w.add(Kind::Blob, b"an honest object").expect("add");
        let name = w.finish().expect("finish").expect("a name");
        assert_eq!(pack_read_ok(&dir.path().join(format!("pack-{name}.pack"))).expect("ok"), vec![good]);
    }
}
