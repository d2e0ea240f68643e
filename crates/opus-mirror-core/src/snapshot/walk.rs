//! The stat walk: one pass over the source directory that records what is there (names,
//! types, sizes, times, the executable bit, link targets, empty directories) without reading
//! file contents. Subdirectories are walked in parallel.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use git2::Oid;
use rayon::prelude::*;

use super::filter::Filter;

/// What the stat cache compares to decide that a file is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
}

impl Stat {
    pub fn of(m: &fs::Metadata) -> Stat {
        Stat {
            size: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            ino: m.ino(),
        }
    }
}

/// A regular file found by the walk; `oid` is filled from the cache or by hashing.
#[derive(Debug)]
pub struct FileRec {
    /// Path relative to the source root, '/'-separated, raw bytes.
    pub rel: Vec<u8>,
    pub stat: Stat,
    pub exec: bool,
    /// The permission bits (`mode & 0o7777`), recorded beside the tree (see `modes`).
    pub perm: u32,
    pub oid: Option<Oid>,
}

/// One entry of a directory.
#[derive(Debug)]
pub enum Node {
    File(FileRec),
    Symlink { target: Vec<u8> },
    Dir(Vec<(Vec<u8>, Node)>),
}

/// Something that exists but could not be captured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// The result of a walk.
#[derive(Debug, Default)]
pub struct Scan {
    pub root: Vec<(Vec<u8>, Node)>,
    pub skipped: Vec<Skipped>,
    pub excluded: u64,
    /// Secret-looking files left out (relative paths), so the user is told which.
    pub secrets: Vec<Vec<u8>>,
    /// Every directory walked below the root, with its permission bits.
    pub dirs: Vec<(Vec<u8>, u32)>,
}

/// Walks `root`, applying `filter`. Errors on the root itself are fatal; errors below it
/// become [`Skipped`] entries so that one bad file never hides the rest.
pub fn scan(root: &Path, filter: &Filter) -> std::io::Result<Scan> {
    let meta = fs::metadata(root)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other(format!("{} is not a directory", root.display())));
    }
    let mut out = Scan::default();
    let entries = scan_dir(root.to_path_buf(), Vec::new(), filter, &mut out)?;
    out.root = entries;
    Ok(out)
}

fn join_rel(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(rel.len() + name.len() + 1);
    if !rel.is_empty() {
        p.extend_from_slice(rel);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn skip(out: &mut Scan, rel: &[u8], reason: String) {
    out.skipped.push(Skipped { path: crate::human::display_path(rel), reason });
}

fn scan_dir(
    abs: PathBuf,
    rel: Vec<u8>,
    filter: &Filter,
    out: &mut Scan,
) -> std::io::Result<Vec<(Vec<u8>, Node)>> {
    let rd = fs::read_dir(&abs)?;
    let mut nodes = Vec::new();
    let mut subdirs = Vec::new();
    for entry in rd {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                skip(out, &rel, format!("cannot list directory: {e}"));
                continue;
            }
        };
        let name = entry.file_name().as_bytes().to_vec();
        let child_rel = join_rel(&rel, &name);
        let ft = match entry.file_type() {
            Ok(t) => t,
            Err(e) => {
                skip(out, &child_rel, format!("cannot stat: {e}"));
                continue;
            }
        };
        if let Some(why) = filter.excluded(&child_rel, &name, ft.is_dir()) {
            out.excluded += 1;
            if why == crate::snapshot::filter::Excluded::Secret {
                out.secrets.push(child_rel);
            }
            continue;
        }
        if ft.is_dir() {
            // An lstat per directory (not per file): directories are few.
            if let Ok(m) = entry.metadata() {
                out.dirs.push((child_rel.clone(), m.permissions().mode() & 0o7777));
            }
            subdirs.push((name, child_rel));
        } else if ft.is_symlink() {
            match fs::read_link(entry.path()) {
                Ok(t) => nodes.push((name, Node::Symlink { target: t.as_os_str().as_bytes().to_vec() })),
                Err(e) => skip(out, &child_rel, format!("cannot read link: {e}")),
            }
        } else if ft.is_file() {
            match entry.metadata() {
                Ok(m) => nodes.push((
                    name,
                    Node::File(FileRec {
                        rel: child_rel,
                        stat: Stat::of(&m),
                        exec: m.permissions().mode() & 0o111 != 0,
                        perm: m.permissions().mode() & 0o7777,
                        oid: None,
                    }),
                )),
                Err(e) => skip(out, &child_rel, format!("cannot stat: {e}")),
            }
        } else {
            skip(out, &child_rel, "not a regular file, directory or symlink (fifo, socket or device)".into());
        }
    }
    // Walk subdirectories in parallel; each returns its own skipped list and counts.
    let results: Vec<_> = subdirs
        .into_par_iter()
        .map(|(name, child_rel)| {
            let mut sub = Scan::default();
            let r =
                scan_dir(abs.join(std::ffi::OsStr::from_bytes(&name)), child_rel.clone(), filter, &mut sub);
            (name, child_rel, r, sub)
        })
        .collect();
    for (name, child_rel, r, sub) in results {
        out.skipped.extend(sub.skipped);
        out.excluded += sub.excluded;
        out.secrets.extend(sub.secrets);
        out.dirs.extend(sub.dirs);
        match r {
            Ok(children) => nodes.push((name, Node::Dir(children))),
            Err(e) => skip(out, &child_rel, format!("cannot read directory: {e}")),
        }
    }
    Ok(nodes)
}

/// Visits every file record mutably (for hashing) in walk order.
pub(crate) fn files_mut<'a>(nodes: &'a mut [(Vec<u8>, Node)], out: &mut Vec<&'a mut FileRec>) {
    for (_, n) in nodes.iter_mut() {
        match n {
            Node::File(f) => out.push(f),
            Node::Dir(c) => files_mut(c, out),
            Node::Symlink { .. } => {}
        }
    }
}

/// Visits every file record.
pub fn files<'a>(nodes: &'a [(Vec<u8>, Node)], out: &mut Vec<&'a FileRec>) {
    for (_, n) in nodes.iter() {
        match n {
            Node::File(f) => out.push(f),
            Node::Dir(c) => files(c, out),
            Node::Symlink { .. } => {}
        }
    }
}
