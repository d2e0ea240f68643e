//! Writing one dated bundle of a source's backup repo to one target: decide whether one is
//! due and whether it is full or incremental, write it under a temp name, fsync, rename,
//! read it back and compare its sha256, then write its manifest. A killed run never leaves a
//! partial file under a final name; the previous bundles are never touched.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use git2::{Oid, Repository};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::format::Header;
use super::manifest::{bundle_name, BundleKind, Manifest};
use super::write;
use crate::config::{Config, Source, Target, TargetKind};
use crate::exit::UserError;
use crate::git::BackupRepo;
use crate::hashio::{sha256_file, DigestWriter};
use crate::progress::Report;
use crate::target::{self, rclone, Listed};

/// What happened for one (source, target).
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub source: String,
    pub target: String,
    /// "written" or "skipped".
    pub status: &'static str,
    pub reason: Option<String>,
    pub file: Option<String>,
    pub kind: Option<BundleKind>,
    pub size: u64,
    pub objects: u64,
    pub elapsed_ms: u64,
    /// Skipped because this verified bundle on the target (the tip of its chain) already
    /// holds every current ref: the target's copy was confirmed current at this run.
    pub current_in: Option<String>,
    /// Pending bundles of an interrupted run that this call settled (marked verified or
    /// removed): the target is no longer what a listing taken before showed.
    pub settled: Vec<String>,
}

/// The refs a bundle carries: code refs, notes, tags, the snapshot branch, preserved tips.
pub fn bundle_refs(repo: &Repository) -> Result<BTreeMap<String, Oid>> {
    let mut out = BTreeMap::new();
    for glob in
        ["refs/heads/*", "refs/tags/*", "refs/notes/*", "refs/opus-mirror/preserved/*", crate::setup::REF]
    {
        for r in repo.references_glob(glob)? {
            let r = r?;
            if let (Ok(n), Some(o)) = (r.name(), r.target()) {
                out.insert(n.to_string(), o);
            }
        }
    }
    Ok(out)
}

/// The branch `HEAD` should name in the bundle: the user's current branch for a git source
/// (so `git clone X.bundle` checks out the code), else the snapshot branch.
fn head_ref(source: &Source, refs: &BTreeMap<String, Oid>) -> Option<String> {
    let user = Repository::open(&source.path)
        .ok()
        .and_then(|r| r.head().ok().and_then(|h| h.name().ok().map(str::to_string)));
    let snap = BackupRepo::branch_ref(&source.snapshot_branch);
    user.filter(|u| refs.contains_key(u)).or_else(|| refs.contains_key(&snap).then_some(snap))
}

/// The verified bundles, oldest content first (`ranks` from `ranking`, parallel to `l`): the
/// clock that dated them may have been wrong.
fn verified<'a>(l: &'a [Listed], ranks: &[u64]) -> Vec<&'a Manifest> {
    let mut v: Vec<(u64, &Manifest)> = l
        .iter()
        .zip(ranks)
        .filter_map(|(x, r)| x.manifest.as_ref().map(|m| (*r, m)))
        .filter(|(_, m)| m.verified)
        .collect();
    v.sort_by_key(|(r, _)| *r);
    v.into_iter().map(|(_, m)| m).collect()
}

/// A bundle's date, unless it is ahead of the clock: such a date says nothing about how long
/// ago the bundle was written.
fn dated_before(m: &Manifest, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    m.created_at().filter(|c| !crate::ranking::ahead_of(*c, now))
}

/// Why no bundle is due on `t` yet (its newest verified bundle is younger than `every`). A
/// newest bundle dated in the future does not hold the next one back.
pub fn not_due(t: &Target, listed: &[Listed], ranks: &[u64], now: DateTime<Utc>) -> Option<String> {
    let (every, newest) = (t.every?, *verified(listed, ranks).last()?);
    dated_before(newest, now)
        .filter(|c| *c > now - every)
        .map(|_| format!("{} is younger than every = {}", newest.file, crate::human::human_duration(every)))
}

/// How a bundle step decides what to write.
#[derive(Debug, Clone, Copy)]
pub struct Decide {
    /// Write one even when none is due by `every`.
    pub force: bool,
    /// A full bundle once the newest verified full one is this old (the target's
    /// `full_every`; a hook run passes more, leaving the full bundle to the timer).
    pub full_every: chrono::Duration,
    /// The vault was snapshotted without a failure just before (a run's snapshot step): only
    /// then may "nothing changed" be said on the target as "the vault is current now".
    pub vault_seen: bool,
}

/// Whether, on a target listing `listed`, the next bundle would be a full one under
/// `full_every`: there is no verified full bundle younger than that (one dated in the
/// future says nothing about its age).
pub fn full_due(listed: &[Listed], ranks: &[u64], now: DateTime<Utc>, full_every: chrono::Duration) -> bool {
    let done = verified(listed, ranks);
    let newest_full = done.iter().rev().find(|m| m.kind == BundleKind::Full);
    newest_full.is_none_or(|full| dated_before(full, now).is_none_or(|c| c <= now - full_every))
}

/// The verified bundles an incremental bundle written now would build on: the newest full
/// one and every one after it (in content order).
pub fn chain_since_full<'a>(listed: &'a [Listed], ranks: &[u64]) -> Vec<&'a Manifest> {
    let done = verified(listed, ranks);
    let from = done.iter().rposition(|m| m.kind == BundleKind::Full).unwrap_or(0);
    done[from..].to_vec()
}

/// What the caller already read of a target: the bundles of the source (`target::list`) and
/// their ranks by content (`ranking::by_content`, parallel to `listed`; empty when not ranked).
/// A run's plan reads them once, so its bundle step does not list the drive and walk the
/// snapshot branch a second time.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    pub listed: &'a [Listed],
    pub ranks: &'a [u64],
}

/// Writes a bundle of `source` to `t` if one is due (always with `force`). `progress` hears
/// the bytes as the bundle is written and, for an rclone target, uploaded.
pub fn create(
    cfg: &Config,
    source: &Source,
    t: &Target,
    now: DateTime<Utc>,
    force: bool,
    progress: &dyn Report,
) -> Result<Outcome> {
    create_from(
        cfg,
        source,
        t,
        now,
        Decide { force, full_every: t.full_every, vault_seen: false },
        progress,
        None,
    )
}

/// [`create`], deciding from `known` (what the caller listed earlier in this process, with the
/// target unchanged since) instead of listing the target again. When settling an interrupted
/// run changed the target, it is listed again all the same.
pub fn create_from(
    cfg: &Config,
    source: &Source,
    t: &Target,
    now: DateTime<Utc>,
    how: Decide,
    progress: &dyn Report,
    known: Option<Known>,
) -> Result<Outcome> {
    create_unexplained(cfg, source, t, now, how, progress, known).map_err(|e| {
        let place = match &t.kind {
            TargetKind::Dir { path, .. } => path.clone(),
            TargetKind::Rclone { .. } => crate::heal::scratch_root(&cfg.state_dir),
        };
        crate::diskfull::explain(
            e,
            &place,
            &format!("writing a bundle of `{}` for target `{}`", source.name, t.name),
        )
    })
}

fn create_unexplained(
    cfg: &Config,
    source: &Source,
    t: &Target,
    now: DateTime<Utc>,
    how: Decide,
    progress: &dyn Report,
    known: Option<Known>,
) -> Result<Outcome> {
    let started = Instant::now();
    let mut out = Outcome {
        source: source.name.clone(),
        target: t.name.clone(),
        status: "skipped",
        reason: None,
        file: None,
        kind: None,
        size: 0,
        objects: 0,
        elapsed_ms: 0,
        current_in: None,
        settled: Vec::new(),
    };
    target::check(t, &cfg.state_dir)?;
    let settled = target::settle(t, &source.name, &cfg.state_dir)?;
    for done in &settled {
        tracing::warn!("target `{}`: {done}", t.name);
    }
    let backup = BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &source.name))?;
    let known = known.filter(|_| settled.is_empty());
    out.settled = settled;
    let listed = match known {
        Some(k) => k.listed.to_vec(),
        None => target::list(t, &source.name)?,
    };
    let ranks = match known {
        Some(k) if k.ranks.len() == listed.len() => k.ranks.to_vec(),
        _ => crate::ranking::by_content(cfg, source, &listed, now),
    };
    let done = verified(&listed, &ranks);
    // A due full bundle is written within `every` too (a hook run's incremental one may be
    // minutes old: the hook left the full one to this run).
    let full_now = t.incremental && full_due(&listed, &ranks, now, how.full_every);
    if let (false, false, Some(why)) = (how.force, full_now, not_due(t, &listed, &ranks, now)) {
        out.reason = Some(why);
        return Ok(out);
    }
    let refs = bundle_refs(&backup.repo)?;
    if refs.is_empty() {
        return Err(UserError::usage(format!(
            "source `{}` has nothing to bundle yet\n  fix: run `opus-mirror snapshot --source {}` first",
            source.name, source.name
        ))
        .into());
    }
    // Incremental on top of the newest verified bundle while the newest full one is recent (a
    // full bundle written after an incremental one of the same snapshot ranks newer: the chain
    // starts afresh there; see `ranking`).
    let base = match (t.incremental, done.last()) {
        (true, Some(tip)) if !full_due(&listed, &ranks, now, how.full_every) => Some(*tip),
        _ => None,
    };
    let current: BTreeMap<String, String> = refs.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
    if let Some(b) = base {
        if b.refs == current {
            out.reason = Some(format!("nothing changed since {}", b.file));
            out.current_in = Some(b.file.clone());
            // Said on the target too, for `status --target` on another machine; a word that
            // cannot be written is no failure (the bundle holds everything all the same).
            let word = target::Current {
                format: 1,
                source: source.name.clone(),
                bundle: b.file.clone(),
                at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            };
            if !how.vault_seen {
                // The backup repo is current with the bundle, not known to be with the vault.
            } else if let Err(e) = target::write_current(t, &cfg.state_dir, &word) {
                tracing::warn!("target `{}`: cannot record that {} is current: {e:#}", t.name, b.file);
            }
            return Ok(out);
        }
    }
    let kind = if base.is_some() { BundleKind::Incremental } else { BundleKind::Full };
    let odb = backup.repo.odb()?;
    let mut prereqs: Vec<Oid> = Vec::new();
    if let Some(b) = base {
        for oid in b.refs.values() {
            let oid = Oid::from_str(oid)?;
            if let Ok(c) = backup.repo.find_object(oid, None).and_then(|o| o.peel_to_commit()) {
                if !prereqs.contains(&c.id()) {
                    prereqs.push(c.id());
                }
            }
        }
    }
    let haves: HashSet<Oid> =
        write::reachable(&odb, &prereqs, &HashSet::new())?.into_iter().map(|(o, _)| o).collect();
    let tips: Vec<Oid> = refs.values().copied().collect();
    let objs = write::reachable(&odb, &tips, &haves)?;
    let head = head_ref(source, &refs);
    let mut header = Header { version: 2, ..Default::default() };
    header.prerequisites = prereqs.iter().map(|p| (*p, String::new())).collect();
    if let Some(h) = &head {
        header.refs.push(("HEAD".into(), refs[h]));
    }
    header.refs.extend(refs.iter().map(|(k, v)| (k.clone(), *v)));

    let encrypted = !t.age_recipients.is_empty();
    let name = bundle_name(&source.name, now, kind, encrypted);
    if listed.iter().any(|l| l.name == name) {
        bail!("target `{}` already has {name}; wait a second and run again", t.name);
    }
    let (staging_dir, final_dir): (PathBuf, Option<PathBuf>) = match &t.kind {
        TargetKind::Dir { path, .. } => (path.clone(), Some(path.clone())),
        TargetKind::Rclone { .. } => (crate::heal::scratch_root(&cfg.state_dir), None),
    };
    std::fs::create_dir_all(&staging_dir)?;
    let tmp = crate::atomic::temp_in(&staging_dir)?;
    let writing = match &t.kind {
        TargetKind::Dir { .. } => format!("{}: writing bundle → {}", source.name, t.name),
        TargetKind::Rclone { .. } => format!("{}: staging bundle for {}", source.name, t.name),
    };
    progress.bytes(&writing, 0, None);
    let (size, sha) = {
        let file = Counted { inner: tmp.as_file(), done: 0, label: &writing, progress };
        let mut w: DigestWriter<_, Sha256> = DigestWriter::new(io::BufWriter::with_capacity(1 << 20, file));
        if encrypted {
            let recipients: Vec<age::x25519::Recipient> = t
                .age_recipients
                .iter()
                .map(|r| r.parse().expect("recipients were validated with the config"))
                .collect();
            let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| anyhow::anyhow!("cannot encrypt for target `{}`: {e}", t.name))?;
            let mut aw = enc.wrap_output(&mut w)?;
            aw.write_all(&header.to_bytes())?;
            write::write_pack(&mut aw, &odb, &backup.pack_dir(), &objs)?;
            aw.finish()?;
        } else {
            w.write_all(&header.to_bytes())?;
            write::write_pack(&mut w, &odb, &backup.pack_dir(), &objs)?;
        }
        w.flush()?;
        (w.len, hex::encode(w.digest.finalize()))
    };
    tmp.as_file().sync_all()?;
    let snapshot = refs.get(&BackupRepo::branch_ref(&source.snapshot_branch)).map(|o| o.to_string());
    let mut manifest = Manifest {
        format: 1,
        source: source.name.clone(),
        file: name.clone(),
        created: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        kind,
        size,
        sha256: sha.clone(),
        refs: current,
        head,
        prerequisites: prereqs.iter().map(|p| p.to_string()).collect(),
        base: base.map(|b| b.file.clone()),
        snapshot,
        objects: objs.len() as u64,
        tool: format!("opus-mirror {}", env!("CARGO_PKG_VERSION")),
        verified: false,
        encrypted,
        md5: None,
    };
    match final_dir {
        Some(dir) => {
            // The manifest first, marked pending: a bundle never has its final name
            // without one, so a kill anywhere leaves something `settle` can finish.
            let pending = dir.join(format!("{name}{}", target::PENDING));
            crate::atomic::write_file(&pending, &serde_json::to_vec_pretty(&manifest)?)?;
            let dest = dir.join(&name);
            tmp.persist(&dest)
                .map_err(|e| e.error)
                .with_context(|| format!("cannot move the bundle into {}", dest.display()))?;
            crate::atomic::sync_dir(&dir)?;
            progress.doing(&format!("{}: reading back bundle on {}", source.name, t.name));
            let back = sha256_file(&dest)?;
            if back != sha {
                bail!(
                    "{} reads back with sha256 {back}, but {sha} was written: the drive is corrupting data",
                    dest.display()
                );
            }
            manifest.verified = true;
            crate::atomic::write_file(
                &dir.join(format!("{name}.json")),
                &serde_json::to_vec_pretty(&manifest)?,
            )?;
            std::fs::remove_file(&pending)?;
            crate::atomic::sync_dir(&dir)?;
        }
        None => {
            progress.doing(&format!("{}: reading back bundle staged for {}", source.name, t.name));
            let back = sha256_file(tmp.path())?;
            if back != sha {
                bail!("the staged bundle {} reads back with a different sha256", tmp.path().display());
            }
            manifest.verified = true;
            manifest.md5 = Some(rclone::local_hashes(tmp.path())?.0);
            let uploading = format!("{}: uploading bundle → {}", source.name, t.name);
            let mut sent = |done, total| progress.bytes(&uploading, done, Some(total));
            rclone::store(t, tmp.path(), &name, &manifest, &mut sent)?;
        }
    }
    if let TargetKind::Dir { path, .. } = &t.kind {
        place_runbook(cfg, path);
    }
    out.status = "written";
    out.file = Some(name);
    out.kind = Some(kind);
    out.size = size;
    out.objects = objs.len() as u64;
    out.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(out)
}

/// Passes writes on to the file, telling `progress` how many bytes reached it (under the
/// 1 MiB buffer, so once a MiB, not once an object).
struct Counted<'a, W: Write> {
    inner: W,
    done: u64,
    label: &'a str,
    progress: &'a dyn Report,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        self.progress.bytes(self.label, self.done, None);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Keeps `RESTORE.md` (the recovery runbook with this machine's values) next to the bundles,
/// where someone holding only the drive will look on the worst day. Best effort: a bundle is
/// never failed for it.
fn place_runbook(cfg: &Config, dir: &Path) {
    let text = crate::recovery::render(cfg);
    let dest = dir.join("RESTORE.md");
    // Read like anything on the drive: a FIFO or symlink there is never waited on or followed.
    let old = crate::safe_fs::read_regular(&dest, text.len() as u64 + 1).ok().flatten();
    if old.is_some_and(|old| old == text.as_bytes()) {
        return;
    }
    if let Err(e) = crate::atomic::write_file(&dest, text.as_bytes()) {
        tracing::warn!("cannot write {}: {e}", dest.display());
    }
}

/// Decrypts an age-encrypted bundle with the identities in `identity_file` into `dest`, a new
/// file (0600): whatever is already at `dest`, a file or a symlink to elsewhere, is refused,
/// never followed or overwritten.
pub fn decrypt(src: &Path, identity_file: &Path, dest: &Path) -> Result<()> {
    let ids = age::IdentityFile::from_file(identity_file.display().to_string())
        .with_context(|| format!("cannot read the age identity file {}", identity_file.display()))?
        .into_identities()
        .map_err(|e| anyhow::anyhow!("{}: {e}", identity_file.display()))?;
    let dec = age::Decryptor::new(io::BufReader::new(File::open(src)?))
        .map_err(|e| anyhow::anyhow!("{}: {e}", src.display()))?;
    let mut r = dec.decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity)).map_err(|e| {
        anyhow::anyhow!("cannot decrypt {} with {}: {e}", src.display(), identity_file.display())
    })?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .with_context(|| format!("cannot create {} for the decrypted bundle", dest.display()))?;
    io::copy(&mut r, &mut out)?;
    Ok(())
}

/// The newest verified chain of `source` on `t`: its full bundle first, then each
/// incremental up to the newest.
pub fn newest_chain(cfg: &Config, source: &str, t: &Target) -> Result<Vec<Manifest>> {
    target::check(t, &cfg.state_dir)?;
    let listed = target::list(t, source)?;
    // Undated bundles have no manifest, so are never verified: the date given them is moot.
    let ranks = match cfg.sources.iter().find(|s| s.name == source) {
        Some(s) => crate::ranking::by_content(cfg, s, &listed, DateTime::UNIX_EPOCH),
        None => crate::ranking::ranks(&Default::default(), &listed, DateTime::UNIX_EPOCH),
    };
    let done = verified(&listed, &ranks);
    let Some(tip) = done.last() else {
        return Err(
            UserError::usage(format!("target `{}` has no verified bundle of `{source}`", t.name)).into()
        );
    };
    let mut chain = vec![(*tip).clone()];
    while let Some(b) = chain.last().and_then(|m| m.base.clone()) {
        let Some(m) = done.iter().find(|m| m.file == b) else {
            bail!(
                "{} builds on {b}, which is missing from target `{}`",
                chain.last().map(|m| m.file.as_str()).unwrap_or(""),
                t.name
            );
        };
        chain.push((*m).clone());
    }
    chain.reverse();
    Ok(chain)
}

/// Makes every bundle of `chain` available as a local, plain (decrypted) file under
/// `scratch`, after checking each against its manifest's sha256.
pub fn fetch_chain(
    t: &Target,
    chain: &[Manifest],
    scratch: &Path,
    identity: Option<&Path>,
) -> Result<Vec<PathBuf>> {
    if let (Some(m), None) = (chain.iter().find(|m| m.encrypted), identity) {
        return Err(UserError::usage(format!(
            "{} is encrypted\n  fix: pass --identity FILE (the age identity whose public key is in the target's age_recipients)",
            m.file
        ))
        .into());
    }
    let mut files = Vec::new();
    for m in chain {
        let file = match &t.kind {
            TargetKind::Dir { path, .. } => path.join(&m.file),
            TargetKind::Rclone { .. } => {
                let p = scratch.join(&m.file);
                target::fetch(t, &m.file, &p)?;
                p
            }
        };
        let got = sha256_file(&file)?;
        if got != m.sha256 {
            let detail = format!(
                "{} has sha256 {got}, but its manifest says {}: the copy is damaged",
                m.file, m.sha256
            );
            return Err(Damaged { file: m.file.clone(), detail }.into());
        }
        let file = if m.encrypted {
            let plain = scratch.join(m.file.trim_end_matches(".age"));
            decrypt(&file, identity.expect("checked above"), &plain)?;
            plain
        } else {
            file
        };
        files.push(file);
    }
    Ok(files)
}

/// A bundle of a chain found damaged as it was read back (its bytes are not those its
/// manifest recorded, or its pack does not index): whoever read it records it in the verified
/// ledger, so that the next bundle starts a new chain instead of building on this one.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct Damaged {
    /// The bundle's file name on its target.
    pub file: String,
    pub detail: String,
}

/// Rebuilds a bare repository at `dest` from the newest verified bundle chain on `t`:
/// the full bundle, then each incremental, read with our own reader.
pub fn restore_chain(
    cfg: &Config,
    source: &str,
    t: &Target,
    dest: &Path,
    identity: Option<&Path>,
) -> Result<Vec<String>> {
    let chain = newest_chain(cfg, source, t)?;
    if dest.exists() && std::fs::read_dir(dest)?.next().is_some() {
        return Err(UserError::usage(format!(
            "{} is not empty\n  fix: choose an empty or new directory",
            dest.display()
        ))
        .into());
    }
    let scratch = crate::heal::scratch_dir(&cfg.state_dir, "unbundle")?;
    let files = fetch_chain(t, &chain, scratch.path(), identity)?;
    // The directory was empty or missing: on failure, leave nothing half-built behind.
    let result = apply_chain(&chain, &files, dest);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    result
}

/// Names the bundle a tree check failed in, and what to do.
fn unsafe_bundle(file: &str, e: anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<crate::git::fsck::TreeError>() {
        Some(bad) => anyhow::anyhow!(
            "{file} is unsafe to unbundle: {bad}\n  fix: do not restore from it (whoever can write to the target may have planted it), and run `opus-mirror check`"
        ),
        None => e.context(format!("cannot read the trees of {file}")),
    }
}

/// Creates a bare repo at `dest` and applies the bundle files in order; every tree they
/// bring is checked ([`super::read::check_trees`]) before the next bundle is read.
pub fn apply_chain(chain: &[Manifest], files: &[PathBuf], dest: &Path) -> Result<Vec<String>> {
    let repo = Repository::init_bare(dest)?;
    let mut applied = Vec::new();
    let mut checked = HashSet::new();
    for (m, file) in chain.iter().zip(files) {
        let header = super::read::unbundle(&repo, file).map_err(|e| {
            // A pack that does not index is the bundle's damage; a read or write that failed
            // (a full scratch disk) is not.
            match e.root_cause().downcast_ref::<crate::git::pack::index::IndexError>() {
                Some(crate::git::pack::index::IndexError::Io(_)) | None => e,
                Some(_) => Damaged { file: m.file.clone(), detail: format!("{e:#}") }.into(),
            }
        })?;
        super::read::check_trees(&repo, &header.refs, &mut checked).map_err(|e| unsafe_bundle(&m.file, e))?;
        if let Some(h) = &m.head {
            repo.set_head(h)?;
        }
        applied.push(m.file.clone());
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    /// A symlink planted where the plaintext goes is not followed: the file it points at
    /// keeps its content, and nothing is decrypted.
    #[test]
    fn decrypt_never_follows_a_symlink_at_its_output() {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = age::x25519::Identity::generate();
        let key = dir.path().join("key.txt");
        std::fs::write(&key, format!("{}\n", id.to_string().expose_secret())).expect("key");
        let enc = age::Encryptor::with_recipients(std::iter::once(&id.to_public() as &dyn age::Recipient))
            .expect("one recipient");
        let src = dir.path().join("b.bundle.age");
        let mut w = enc.wrap_output(File::create(&src).expect("create")).expect("age writer");
        w.write_all(b"# v2 git bundle\n").expect("write");
        w.finish().expect("finish");

        let victim = dir.path().join("victim");
        std::fs::write(&victim, "mine").expect("victim");
        let dest = dir.path().join("b.bundle");
        std::os::unix::fs::symlink(&victim, &dest).expect("symlink");
        let err = decrypt(&src, &key, &dest).expect_err("a symlink at the output is refused");
        assert!(format!("{err:#}").contains("b.bundle"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "mine");

        std::fs::remove_file(&dest).expect("unlink");
        decrypt(&src, &key, &dest).expect("a fresh output decrypts");
        assert_eq!(std::fs::read(&dest).expect("plain"), b"# v2 git bundle\n");
    }
}
