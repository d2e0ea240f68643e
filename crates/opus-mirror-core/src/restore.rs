//! Restoring a snapshot: into a fresh directory (`--to`), or back into the live source
//! (`--in-place`), whole or by path. Bytes, the executable bit, symlinks and empty
//! directories come back exactly.
//!
//! In place, nothing the user has is lost: files already identical are left alone, a file
//! changed after the snapshot was taken is kept unless `--overwrite`, nothing is deleted,
//! and the command takes a safety snapshot of the live directory before it writes.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use git2::{Odb, Oid};
use serde::Serialize;

use crate::browse::PathFilter;
use crate::exit::UserError;
use crate::git::objects::{self, Kind, MODE_EXEC, MODE_LINK};
use crate::git::BackupRepo;
use crate::human::display_path;
use crate::safe_fs::{Root, SafeError};
use crate::snapshot::modes::Modes;
use crate::snapshot::tree::{self, Item};
use rustix::fs::FileType;

/// What a restore did (or, with `dry_run`, would do).
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub snapshot: String,
    pub destination: String,
    pub dry_run: bool,
    /// Items written (files, links, directories).
    pub restored: u64,
    pub bytes: u64,
    /// Items already identical on disk.
    pub unchanged: u64,
    /// Paths left alone because the live file is newer than the snapshot.
    pub kept_newer: Vec<String>,
    /// Paths that could not be restored, with why.
    pub conflicts: Vec<String>,
    /// The restored paths (with `dry_run`: those that would be).
    pub paths: Vec<String>,
    /// Whether each file's recorded permission bits were restored (snapshots taken before
    /// opus-mirror recorded them have only git's 644/755, masked by the umask).
    pub exact_modes: bool,
}

impl Report {
    fn new(snapshot: &str, destination: &Path, dry_run: bool, modes: Option<&Modes>) -> Report {
        Report {
            snapshot: snapshot.into(),
            destination: destination.display().to_string(),
            dry_run,
            exact_modes: modes.is_some(),
            ..Default::default()
        }
    }
}

/// Normalises `--path` arguments: no leading `./` or `/`, no trailing `/`.
pub fn normalise_paths(paths: &[PathBuf]) -> Vec<Vec<u8>> {
    paths
        .iter()
        .map(|p| {
            let b = p.as_os_str().as_bytes();
            let b = b.strip_prefix(b"./").unwrap_or(b);
            let mut v = b.to_vec();
            while v.first() == Some(&b'/') {
                v.remove(0);
            }
            while v.last() == Some(&b'/') {
                v.pop();
            }
            v
        })
        .collect()
}

/// The items of `tree` selected by `paths` (all when empty). A path that selects nothing is
/// an error: the user would otherwise believe it was restored.
pub fn select(odb: &Odb, tree: Oid, paths: &[Vec<u8>], snapshot: &str) -> Result<Vec<Item>> {
    // `list` validates every tree: one entry git would reject (`..`, `/`, `.git`, a duplicate
    // through a symlink) refuses the whole restore before anything is written.
    let items = tree::list(odb, tree).map_err(|e| match e.downcast_ref::<crate::git::fsck::TreeError>() {
        Some(bad) => anyhow::anyhow!(
            "snapshot {snapshot} is unsafe to restore: {bad}\n  fix: restore an older snapshot with --snapshot ID, and run `opus-mirror check`"
        ),
        None => e,
    })?;
    if paths.is_empty() {
        return Ok(items);
    }
    let under = |item: &Item, p: &[u8]| {
        p.is_empty() || item.path == p || (item.path.starts_with(p) && item.path.get(p.len()) == Some(&b'/'))
    };
    for p in paths {
        if !items.iter().any(|i| under(i, p)) {
            return Err(UserError::usage(format!(
                "`{}` is not in snapshot {snapshot}\n  fix: `opus-mirror diff` or `git --git-dir <backup repo> ls-tree -r {snapshot}` shows what it holds",
                display_path(p)
            ))
            .into());
        }
    }
    Ok(items.into_iter().filter(|i| paths.iter().any(|p| under(i, p))).collect())
}

/// Keeps the items `filter` selects (`--include` / `--exclude`); selecting nothing is an
/// error naming the patterns, as a `--path` that selects nothing is.
pub fn filter_items(items: Vec<Item>, filter: &PathFilter, snapshot: &str) -> Result<Vec<Item>> {
    if filter.is_empty() {
        return Ok(items);
    }
    let kept: Vec<Item> = items.into_iter().filter(|i| filter.matches_bytes(&i.path)).collect();
    if kept.is_empty() {
        return Err(UserError::usage(format!(
            "--include/--exclude select nothing in snapshot {snapshot}\n  fix: `opus-mirror ls {snapshot}` or `opus-mirror find PATTERN` shows the paths it holds"
        ))
        .into());
    }
    Ok(kept)
}

/// Streams blob `oid` of `repo` into `out`, verifying its id (large blobs are read from our
/// packs in 1 MiB chunks, never whole); returns the size. What `cat` and restore share.
pub fn copy_blob(repo: &BackupRepo, oid: Oid, out: &mut dyn Write) -> Result<u64> {
    Blobs { odb: repo.repo.odb()?, pack_dir: repo.pack_dir() }.copy(oid, out)
}

/// Blobs at least this big are streamed out of the pack instead of read into memory.
const STREAM_BYTES: usize = 32 * 1024 * 1024;

/// Where restored content comes from: the backup repo's object database, or, for large
/// blobs, our packs read directly.
struct Blobs<'a> {
    odb: Odb<'a>,
    pack_dir: PathBuf,
}

impl Blobs<'_> {
    /// Copies blob `oid` into `out`, verifying its id as it goes; returns the size.
    fn copy(&self, oid: Oid, out: &mut dyn Write) -> Result<u64> {
        let missing = || format!("object {oid} is missing from the backup repo (run `opus-mirror check`)");
        let (size, _) = self.odb.read_header(oid).with_context(missing)?;
        if size >= STREAM_BYTES {
            if let Some((n, mut r)) = crate::git::pack::open_blob(&self.pack_dir, oid)? {
                let mut h = objects::hasher(Kind::Blob, n);
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let k = r.read(&mut buf)?;
                    if k == 0 {
                        break;
                    }
                    sha1::Digest::update(&mut h, &buf[..k]);
                    out.write_all(&buf[..k])?;
                }
                if objects::finish(h) != oid {
                    anyhow::bail!(
                        "object {oid} is corrupt in the backup repo (its content does not hash to its id)"
                    );
                }
                return Ok(n);
            }
        }
        let obj = self.odb.read(oid).with_context(missing)?;
        out.write_all(obj.data())?;
        Ok(obj.data().len() as u64)
    }

    fn read_small(&self, oid: Oid) -> Result<Vec<u8>> {
        let obj =
            self.odb.read(oid).with_context(|| format!("object {oid} is missing from the backup repo"))?;
        Ok(obj.data().to_vec())
    }
}

/// Writes one item at `rel` below `root`, replacing what is there by rename (never torn,
/// never through a symlink: see [`safe_fs`]).
fn write_item(
    blobs: &Blobs,
    item: &Item,
    root: &mut Root,
    durable: bool,
    modes: Option<&Modes>,
) -> Result<u64> {
    if item.is_empty_dir() {
        root.mkdir(&item.path, 0o755)?;
        return Ok(0);
    }
    if item.mode == MODE_LINK {
        let target = blobs.read_small(item.oid)?;
        root.symlink(&item.path, &target)?;
        return Ok(target.len() as u64);
    }
    let exec = item.mode == MODE_EXEC;
    let mode = modes.map_or(if exec { 0o755 } else { 0o644 }, |m| m.of_file(&item.path, exec));
    // Small blobs arrive in one write and large ones in 1 MiB chunks: no buffer needed
    // (a 1 MiB buffer per file cost an mmap and munmap for each of 100 000 files).
    root.write_file(&item.path, mode, durable, &mut |f| blobs.copy(item.oid, f))
        .with_context(|| format!("while restoring {}", display_path(&item.path)))
}

/// Refuses a destination that is not a directory, or not empty without `force`.
fn check_destination(dest: &Path, force: bool) -> Result<()> {
    if let Ok(mut rd) = fs::read_dir(dest) {
        if rd.next().is_some() && !force {
            return Err(UserError::usage(format!(
                "{} is not empty\n  fix: restore into an empty or new directory, or pass --force to write into it",
                dest.display()
            ))
            .into());
        }
    } else if dest.exists() {
        return Err(UserError::usage(format!(
            "{} exists and is not a directory\n  fix: choose a directory",
            dest.display()
        ))
        .into());
    }
    Ok(())
}

/// What [`to_dir`] would write, writing nothing (not even `dest`): `restore --to --dry-run`.
pub fn plan_to_dir(
    repo: &BackupRepo,
    items: &[Item],
    dest: &Path,
    force: bool,
    snapshot: &str,
    modes: Option<&Modes>,
) -> Result<Report> {
    check_destination(dest, force)?;
    let odb = repo.repo.odb()?;
    let mut report = Report::new(snapshot, dest, true, modes);
    for item in items {
        if !item.is_empty_dir() {
            let (n, _) = odb.read_header(item.oid).with_context(|| {
                format!("object {} is missing from the backup repo (run `opus-mirror check`)", item.oid)
            })?;
            report.bytes += n as u64;
        }
        report.restored += 1;
        report.paths.push(display_path(&item.path));
    }
    Ok(report)
}

/// Restores `items` into `dest`, which must be empty or missing unless `force`.
/// With `modes` (what the snapshot recorded), files and directories get their recorded
/// permission bits exactly; without, git's 644/755 masked by the umask.
pub fn to_dir(
    repo: &BackupRepo,
    items: &[Item],
    dest: &Path,
    force: bool,
    snapshot: &str,
    modes: Option<&Modes>,
) -> Result<Report> {
    check_destination(dest, force)?;
    let mut root = Root::open(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let blobs = Blobs { odb: repo.repo.odb()?, pack_dir: repo.pack_dir() };
    if modes.is_some() {
        root.exact_modes();
    }
    let mut report = Report::new(snapshot, dest, false, modes);
    for item in items {
        let shown = display_path(&item.path);
        if force {
            match root.stat(&item.path) {
                Ok(Some(e)) if e.kind == FileType::Directory && !item.is_empty_dir() => {
                    report.conflicts.push(format!("{shown}: a directory is in the way"));
                    continue;
                }
                Err(e @ SafeError::NotADirectory { .. }) => {
                    report.conflicts.push(format!("{shown}: {e}"));
                    continue;
                }
                _ => {}
            }
        }
        match write_item(&blobs, item, &mut root, false, modes) {
            Ok(n) => report.bytes += n,
            Err(e) if force && is_in_the_way(&e) => {
                report.conflicts.push(format!("{shown}: {}", e.root_cause()));
                continue;
            }
            Err(e) => return Err(e),
        }
        report.restored += 1;
        report.paths.push(shown);
    }
    if let Some(m) = modes {
        apply_dir_modes(&mut root, items, m)?;
    }
    root.sync(b"")?;
    Ok(report)
}

/// Gives every directory of `items` (below the root) its recorded bits, deepest first, after
/// everything is written (a read-only directory would refuse the files going into it).
pub(crate) fn apply_dir_modes(root: &mut Root, items: &[Item], modes: &Modes) -> Result<()> {
    for d in tree::dirs_of(items) {
        root.set_mode(d, modes.of_dir(d)).with_context(|| format!("while restoring {}", display_path(d)))?;
    }
    Ok(())
}

/// Gives every file and directory of `items` its recorded bits (after stock git wrote them).
pub(crate) fn apply_modes(root: &mut Root, items: &[Item], modes: &Modes) -> Result<()> {
    for item in items.iter().filter(|i| !i.is_empty_dir() && i.mode != MODE_LINK) {
        root.set_mode(&item.path, modes.of_file(&item.path, item.mode == MODE_EXEC))
            .with_context(|| format!("while restoring {}", display_path(&item.path)))?;
    }
    apply_dir_modes(root, items, modes)
}

/// The git blob id of what is at `rel` now, if it is a file or link of the same kind. Read
/// through the held-open root: never through a swapped-in link, never blocking on a FIFO, and
/// streamed (a large file is never read whole).
fn live_oid(root: &mut Root, rel: &[u8], kind: FileType, mode: u32) -> Option<Oid> {
    if mode == MODE_LINK {
        (kind == FileType::Symlink)
            .then(|| root.read_link(rel).ok().flatten())
            .flatten()
            .map(|t| objects::hash(Kind::Blob, &t))
    } else if kind == FileType::RegularFile {
        let mut f = root.open_file(rel).ok().flatten()?;
        crate::hashio::file_blob_id(&mut f).ok()
    } else {
        None
    }
}

/// Whether an error only means "something is in the way here" (a conflict to report, not a
/// reason to stop restoring the rest).
fn is_in_the_way(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(c.downcast_ref::<SafeError>(), Some(SafeError::NotADirectory { .. }))
            || c.to_string().contains("a directory is in the way")
    })
}

/// How a restore in place treats what is there.
#[derive(Debug, Clone, Copy, Default)]
pub struct InPlace {
    /// Replace live files changed after the snapshot was taken (else they are kept).
    pub overwrite: bool,
    /// Say what would be restored; write nothing.
    pub dry_run: bool,
}

/// Restores `items` into the live source `root` without losing anything that is there.
pub fn in_place(
    repo: &BackupRepo,
    items: &[Item],
    root: &Path,
    snapshot: &str,
    taken: DateTime<Utc>,
    opts: InPlace,
    modes: Option<&Modes>,
) -> Result<Report> {
    let InPlace { overwrite, dry_run } = opts;
    let blobs = Blobs { odb: repo.repo.odb()?, pack_dir: repo.pack_dir() };
    let mut report = Report::new(snapshot, root, dry_run, modes);
    let mut live = Root::open(root).with_context(|| format!("cannot open {}", root.display()))?;
    if modes.is_some() {
        live.exact_modes();
    }
    for item in items {
        let shown = display_path(&item.path);
        match live.stat(&item.path) {
            Err(e @ SafeError::NotADirectory { .. }) => {
                report.conflicts.push(format!("{shown}: {e}"));
                continue;
            }
            Err(e) => return Err(e.into()),
            Ok(None) => {}
            Ok(Some(meta)) if item.is_empty_dir() => {
                if meta.kind == FileType::Directory {
                    report.unchanged += 1;
                } else {
                    report.conflicts.push(format!("{shown}: something else is where the directory was"));
                }
                continue;
            }
            Ok(Some(meta)) if meta.kind == FileType::Directory => {
                report.conflicts.push(format!(
                    "{shown}: a directory is in the way (nothing is deleted; move it and run again)"
                ));
                continue;
            }
            Ok(Some(meta)) => {
                let same = live_oid(&mut live, &item.path, meta.kind, item.mode) == Some(item.oid);
                let exec = item.mode == MODE_EXEC;
                let bits_ok = match modes {
                    Some(m) => meta.mode & 0o1777 == m.of_file(&item.path, exec),
                    None => (meta.mode & 0o111 != 0) == exec,
                };
                if same && (item.mode == MODE_LINK || bits_ok) {
                    report.unchanged += 1;
                    continue;
                }
                let newer = meta.mtime > taken.timestamp();
                if newer && !overwrite {
                    report.kept_newer.push(shown);
                    continue;
                }
            }
        }
        if !dry_run {
            match write_item(&blobs, item, &mut live, true, modes) {
                Ok(n) => report.bytes += n,
                // Listed, and the rest is still restored: one conflict never strands the others.
                Err(e) if is_in_the_way(&e) => {
                    report.conflicts.push(format!("{shown}: {}", e.root_cause()));
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        report.restored += 1;
        report.paths.push(shown);
    }
    if !dry_run {
        live.sync(b"")?;
    }
    Ok(report)
}
