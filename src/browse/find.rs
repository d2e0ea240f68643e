//! `find`: which paths matching a pattern were in which snapshots: for each path, the first
//! and last snapshot that had it, and the snapshot it disappeared in (the first one after the
//! last that lacks it), so a user who lost a note and does not know when can get it back.
//!
//! The snapshots are read oldest first as differences between neighbours: identical subtrees
//! (same id) are skipped, and the matching paths under a subtree that appears or disappears
//! whole are listed once per (place, tree id) and remembered. A year of daily snapshots of a
//! large vault costs little more than reading the trees that changed.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use anyhow::Result;
use git2::Oid;
use globset::GlobSet;

use super::trees::Trees;
use crate::git::objects::{empty_tree, TreeEntry, MODE_TREE};

/// What the user looks for: a glob (`*.md`, `notes/**/plan*`) when the pattern has `* ? [ {`,
/// else a substring of the path, ignoring ASCII case.
#[derive(Debug, Clone)]
pub enum Pattern {
    Glob(GlobSet),
    Substring(Vec<u8>),
}

impl Pattern {
    pub fn parse(pattern: &str) -> Result<Pattern, super::PatternError> {
        if pattern.contains(['*', '?', '[', '{']) {
            Ok(Pattern::Glob(super::build("find", &[pattern.to_string()])?))
        } else {
            Ok(Pattern::Substring(pattern.as_bytes().to_ascii_lowercase()))
        }
    }

    pub fn matches(&self, path: &[u8]) -> bool {
        match self {
            Pattern::Glob(set) => set.is_match(super::as_path(path)),
            Pattern::Substring(s) => {
                s.is_empty() || path.to_ascii_lowercase().windows(s.len()).any(|w| w == s.as_slice())
            }
        }
    }
}

/// Where one path was seen, as indexes into the snapshots given (oldest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub first: usize,
    pub last: usize,
    /// The first snapshot after `last` without the path; None while the newest has it.
    pub disappeared: Option<usize>,
}

/// The matching paths (files, links, empty folders) of the snapshot trees `roots` (oldest
/// first), each with where it was seen. Keys are paths as stored (bytes).
pub fn find(trees: &mut Trees, roots: &[Oid], pattern: &Pattern) -> Result<BTreeMap<Vec<u8>, Seen>> {
    let mut walk = Walk { trees, pattern, memo: HashMap::new(), seen: BTreeMap::new() };
    let mut before = empty_tree();
    for (i, root) in roots.iter().enumerate() {
        walk.diff(&mut Vec::new(), before, *root, i)?;
        before = *root;
    }
    let newest = roots.len().saturating_sub(1);
    Ok(walk
        .seen
        .into_iter()
        .map(|(path, t)| {
            let last = if t.present { newest } else { t.last };
            (path, Seen { first: t.first, last, disappeared: (!t.present).then_some(t.last + 1) })
        })
        .collect())
}

/// Matching paths below one tree, shared between the snapshots that hold that tree.
type Leaves = Rc<Vec<Vec<u8>>>;

/// A path's record while walking: `last` is the last snapshot that had it once it is gone.
struct Track {
    first: usize,
    last: usize,
    present: bool,
}

struct Walk<'a, 'r> {
    trees: &'a mut Trees<'r>,
    pattern: &'a Pattern,
    /// Matching leaves below a tree at a place: (place, tree) → paths.
    memo: HashMap<(Vec<u8>, Oid), Leaves>,
    seen: BTreeMap<Vec<u8>, Track>,
}

impl Walk<'_, '_> {
    /// Records what changed between the trees `old` and `new`, both at `prefix`, in snapshot `i`.
    fn diff(&mut self, prefix: &mut Vec<u8>, old: Oid, new: Oid, i: usize) -> Result<()> {
        if old == new {
            return Ok(());
        }
        let a = self.trees.read(old, prefix)?;
        let b = self.trees.read(new, prefix)?;
        let mut names: BTreeMap<&[u8], (Option<&TreeEntry>, Option<&TreeEntry>)> = BTreeMap::new();
        for e in a.iter() {
            names.entry(&e.name).or_default().0 = Some(e);
        }
        for e in b.iter() {
            names.entry(&e.name).or_default().1 = Some(e);
        }
        for (name, (x, y)) in names {
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(name);
            match (x, y) {
                (Some(x), Some(y)) if x.oid == y.oid && x.mode == y.mode => {}
                (Some(x), Some(y)) if x.is_tree() && y.is_tree() => self.diff(prefix, x.oid, y.oid, i)?,
                // A file edited in place: still there.
                (Some(x), Some(y)) if !x.is_tree() && !y.is_tree() => {}
                (x, y) => {
                    if let Some(x) = x {
                        for p in self.leaves(prefix, x)?.iter() {
                            self.gone(p, i);
                        }
                    }
                    if let Some(y) = y {
                        for p in self.leaves(prefix, y)?.iter() {
                            self.appeared(p, i);
                        }
                    }
                }
            }
            prefix.truncate(len);
        }
        Ok(())
    }

    /// The matching leaves of entry `e`, which sits at `path`.
    fn leaves(&mut self, path: &[u8], e: &TreeEntry) -> Result<Leaves> {
        if e.mode != MODE_TREE || e.oid == empty_tree() {
            let hit = if self.pattern.matches(path) { vec![path.to_vec()] } else { Vec::new() };
            return Ok(Rc::new(hit));
        }
        let key = (path.to_vec(), e.oid);
        if let Some(hit) = self.memo.get(&key) {
            return Ok(Rc::clone(hit));
        }
        let mut out = Vec::new();
        let mut sub = path.to_vec();
        for child in self.trees.read(e.oid, path)?.iter() {
            sub.truncate(path.len());
            sub.push(b'/');
            sub.extend_from_slice(&child.name);
            out.extend(self.leaves(&sub, child)?.iter().cloned());
        }
        let out = Rc::new(out);
        self.memo.insert(key, Rc::clone(&out));
        Ok(out)
    }

    fn appeared(&mut self, path: &[u8], i: usize) {
        let t = self.seen.entry(path.to_vec()).or_insert(Track { first: i, last: i, present: true });
        t.present = true;
    }

    fn gone(&mut self, path: &[u8], i: usize) {
        if let Some(t) = self.seen.get_mut(path) {
            t.present = false;
            t.last = i - 1;
        }
    }
}
