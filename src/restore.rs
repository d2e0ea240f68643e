//! Restoring a snapshot: into a fresh directory (`--to`), or back into the live source
//! (`--in-place`), whole or by path. Bytes, the executable bit, symlinks and empty
//! directories come back exactly.
//!
//! In place, nothing the user has is lost: files already identical are left alone, a file
//! changed after the snapshot was taken is kept unless `--overwrite`, nothing is deleted,
//! and the command takes a safety snapshot of the live directory before it writes.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use git2::{Odb, Oid};
use serde::Serialize;

use crate::exit::UserError;
use crate::git::objects::{self, Kind, MODE_EXEC, MODE_LINK};
use crate::git::BackupRepo;
use crate::output::display_path;
use crate::snapshot::tree::{self, Item};

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

fn abs(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
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
            if let Some((n, mut r)) = crate::snapshot::packread::open_blob(&self.pack_dir, oid)? {
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

/// Writes one item at `dest`, replacing what is there by rename (never torn).
fn write_item(blobs: &Blobs, item: &Item, dest: &Path, durable: bool) -> Result<u64> {
    let parent = dest.parent().expect("restored paths are below a root");
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    if item.is_empty_dir() {
        fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
        return Ok(0);
    }
    let tmp = parent.join(format!(".opus-mirror-restore-{}", std::process::id()));
    let size;
    if item.mode == MODE_LINK {
        let target = blobs.read_small(item.oid)?;
        size = target.len() as u64;
        let link = || std::os::unix::fs::symlink(OsStr::from_bytes(&target), &tmp);
        match link() {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                fs::remove_file(&tmp)?;
                link()
            }
            other => other,
        }
        .with_context(|| format!("cannot create the symlink {}", dest.display()))?;
    } else {
        let mode = if item.mode == MODE_EXEC { 0o755 } else { 0o644 };
        // create_new never follows a symlink; a temp left by a killed restore is ours to remove.
        let open = || OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp);
        let mut f = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                fs::remove_file(&tmp)?;
                open()
            }
            other => other,
        }
        .with_context(|| format!("cannot write {}", tmp.display()))?;
        // Small blobs arrive in one write and large ones in 1 MiB chunks: no buffer needed
        // (a 1 MiB buffer per file cost an mmap and munmap for each of 100 000 files).
        size = match blobs.copy(item.oid, &mut f) {
            Ok(n) => n,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e.context(format!("while restoring {}", dest.display())));
            }
        };
        // The umask may have removed bits: set exactly what the snapshot says.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        if durable {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, dest)
        .with_context(|| format!("cannot move the restored file into {}", dest.display()))?;
    Ok(size)
}

/// Restores `items` into `dest`, which must be empty or missing unless `force`.
pub fn to_dir(repo: &BackupRepo, items: &[Item], dest: &Path, force: bool, snapshot: &str) -> Result<Report> {
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
    fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let blobs = Blobs { odb: repo.repo.odb()?, pack_dir: repo.pack_dir() };
    let mut report =
        Report { snapshot: snapshot.into(), destination: dest.display().to_string(), ..Default::default() };
    for item in items {
        let target = abs(dest, &item.path);
        if force && target.is_dir() && !item.is_empty_dir() && !target.is_symlink() {
            report.conflicts.push(format!("{}: a directory is in the way", display_path(&item.path)));
            continue;
        }
        report.bytes += write_item(&blobs, item, &target, false)?;
        report.restored += 1;
        report.paths.push(display_path(&item.path));
    }
    crate::atomic::sync_dir(dest)?;
    Ok(report)
}

/// The git blob id of what is at `path` now, if it is a file or link of the same kind.
fn live_oid(path: &Path, meta: &fs::Metadata, mode: u32) -> Option<Oid> {
    if mode == MODE_LINK {
        meta.file_type()
            .is_symlink()
            .then(|| fs::read_link(path).ok())
            .flatten()
            .map(|t| objects::hash(Kind::Blob, t.as_os_str().as_bytes()))
    } else if meta.is_file() {
        fs::read(path).ok().map(|d| objects::hash(Kind::Blob, &d))
    } else {
        None
    }
}

/// Restores `items` into the live source `root` without losing anything that is there.
pub fn in_place(
    repo: &BackupRepo,
    items: &[Item],
    root: &Path,
    snapshot: &str,
    taken: DateTime<Utc>,
    overwrite: bool,
    dry_run: bool,
) -> Result<Report> {
    let blobs = Blobs { odb: repo.repo.odb()?, pack_dir: repo.pack_dir() };
    let mut report = Report {
        snapshot: snapshot.into(),
        destination: root.display().to_string(),
        dry_run,
        ..Default::default()
    };
    for item in items {
        let target = abs(root, &item.path);
        let shown = display_path(&item.path);
        match fs::symlink_metadata(&target) {
            Err(_) => {}
            Ok(meta) if item.is_empty_dir() => {
                if meta.is_dir() {
                    report.unchanged += 1;
                } else {
                    report.conflicts.push(format!("{shown}: something else is where the directory was"));
                }
                continue;
            }
            Ok(meta) if meta.is_dir() => {
                report.conflicts.push(format!(
                    "{shown}: a directory is in the way (nothing is deleted; move it and run again)"
                ));
                continue;
            }
            Ok(meta) => {
                let same = live_oid(&target, &meta, item.mode) == Some(item.oid);
                let exec_now = meta.mode() & 0o111 != 0;
                if same && (item.mode == MODE_LINK || exec_now == (item.mode == MODE_EXEC)) {
                    report.unchanged += 1;
                    continue;
                }
                let newer = meta.mtime() > taken.timestamp();
                if newer && !overwrite {
                    report.kept_newer.push(shown);
                    continue;
                }
            }
        }
        if !dry_run {
            report.bytes += write_item(&blobs, item, &target, true)?;
        }
        report.restored += 1;
        report.paths.push(shown);
    }
    if !dry_run {
        crate::atomic::sync_dir(root)?;
    }
    Ok(report)
}
