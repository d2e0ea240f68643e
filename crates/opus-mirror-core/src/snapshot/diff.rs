//! What changed between two trees: added, modified and deleted items (files, links, empty
//! directories). Identical subtrees are skipped by id, so a small change in a large vault is
//! a small diff.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use git2::{Odb, Oid};
use serde::Serialize;

use super::tree::read_tree;
use crate::git::objects::{empty_tree, TreeEntry, MODE_EXEC, MODE_LINK, MODE_TREE};
use crate::human::display_path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One changed item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// The path for display (non-UTF-8 bytes escaped).
    pub path: String,
    /// "file", "executable", "symlink" or "dir" (an empty directory).
    pub what: &'static str,
    /// A modified file that is now empty (truncation).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub emptied: bool,
}

/// Counts of a diff.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub added: u64,
    pub modified: u64,
    pub deleted: u64,
}

impl Summary {
    pub fn of(changes: &[Change]) -> Summary {
        let mut s = Summary::default();
        for c in changes {
            match c.kind {
                ChangeKind::Added => s.added += 1,
                ChangeKind::Modified => s.modified += 1,
                ChangeKind::Deleted => s.deleted += 1,
            }
        }
        s
    }
}

fn what(mode: u32) -> &'static str {
    match mode {
        MODE_TREE => "dir",
        MODE_LINK => "symlink",
        MODE_EXEC => "executable",
        _ => "file",
    }
}

/// Diffs tree `a` (None: nothing) against tree `b`. `known` holds trees not yet in the repo.
pub fn diff(
    odb: &Odb,
    known: &HashMap<Oid, Vec<TreeEntry>>,
    a: Option<Oid>,
    b: Option<Oid>,
) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    let a = a.unwrap_or_else(empty_tree);
    let b = b.unwrap_or_else(empty_tree);
    diff_trees(odb, known, a, b, &[], &mut out)?;
    Ok(out)
}

/// The id of the empty blob.
fn empty_blob() -> Oid {
    crate::git::objects::hash(crate::git::objects::Kind::Blob, b"")
}

fn is_subtree(e: &TreeEntry) -> bool {
    e.mode == MODE_TREE && e.oid != empty_tree()
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = prefix.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn diff_trees(
    odb: &Odb,
    known: &HashMap<Oid, Vec<TreeEntry>>,
    a: Oid,
    b: Oid,
    prefix: &[u8],
    out: &mut Vec<Change>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let mut names: BTreeMap<Vec<u8>, (Option<TreeEntry>, Option<TreeEntry>)> = BTreeMap::new();
    for e in read_tree(odb, known, a)? {
        let k = e.name.clone();
        names.entry(k).or_default().0 = Some(e);
    }
    for e in read_tree(odb, known, b)? {
        let k = e.name.clone();
        names.entry(k).or_default().1 = Some(e);
    }
    for (name, pair) in names {
        let path = join(prefix, &name);
        match pair {
            (Some(x), Some(y)) if x.oid == y.oid && x.mode == y.mode => {}
            (Some(x), Some(y)) if is_subtree(&x) && is_subtree(&y) => {
                diff_trees(odb, known, x.oid, y.oid, &path, out)?;
            }
            (Some(x), Some(y))
                if !is_subtree(&x) && !is_subtree(&y) && (x.mode == MODE_TREE) == (y.mode == MODE_TREE) =>
            {
                let emptied = y.oid == empty_blob() && x.oid != empty_blob();
                out.push(Change {
                    kind: ChangeKind::Modified,
                    path: display_path(&path),
                    what: what(y.mode),
                    emptied,
                });
            }
            (x, y) => {
                if let Some(x) = x {
                    one_side(odb, known, &x, path.clone(), ChangeKind::Deleted, out)?;
                }
                if let Some(y) = y {
                    one_side(odb, known, &y, path, ChangeKind::Added, out)?;
                }
            }
        }
    }
    Ok(())
}

/// Every item under an entry that exists on one side only.
fn one_side(
    odb: &Odb,
    known: &HashMap<Oid, Vec<TreeEntry>>,
    e: &TreeEntry,
    path: Vec<u8>,
    kind: ChangeKind,
    out: &mut Vec<Change>,
) -> Result<()> {
    if !is_subtree(e) {
        out.push(Change { kind, path: display_path(&path), what: what(e.mode), emptied: false });
        return Ok(());
    }
    for child in read_tree(odb, known, e.oid)? {
        let p = join(&path, &child.name);
        one_side(odb, known, &child, p, kind, out)?;
    }
    Ok(())
}
