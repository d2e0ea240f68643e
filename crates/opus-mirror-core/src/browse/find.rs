//! `find`: which paths matching a pattern were in which snapshots: for each path, the first
//! and last snapshot that had it, and the snapshot it disappeared in (the first one after the
//! last that lacks it), so a user who lost a note and does not know when can get it back.
//!
//! The snapshots are read oldest first as differences between neighbours: identical subtrees
//! (same id) are skipped, and the matching paths under a subtree that appears or disappears
//! whole are listed once per (place, tree id) and remembered. A year of daily snapshots of a
//! large vault costs little more than reading the trees that changed.

use std::cmp::Ordering;
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
    let mut walk = Walk {
        trees,
        pattern,
        memo: HashMap::new(),
        seen: BTreeMap::new(),
        gone: Vec::new(),
        new: Vec::new(),
    };
    let mut before = empty_tree();
    for (i, root) in roots.iter().enumerate() {
        walk.diff(&mut Vec::new(), before, *root)?;
        walk.apply(i);
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
    /// What went and what appeared in the snapshot being read: applied in that order once it
    /// is read, so a path that went and came back in one snapshot (an empty folder that
    /// became a file of the same name) stays present.
    gone: Vec<Leaves>,
    new: Vec<Leaves>,
}

impl Walk<'_, '_> {
    /// Notes what changed between the trees `old` and `new`, both at `prefix`.
    fn diff(&mut self, prefix: &mut Vec<u8>, old: Oid, new: Oid) -> Result<()> {
        if old == new {
            return Ok(());
        }
        let a = self.trees.read(old, prefix)?;
        let b = self.trees.read(new, prefix)?;
        // Both are in git's order (validated): a merge walk, with the runs of identical
        // entries (most of a large folder between two snapshots) passed over cheaply.
        let (mut ai, mut bj) = (0, 0);
        while ai < a.len() || bj < b.len() {
            let (x, y) = (a.get(ai), b.get(bj));
            if let (Some(x), Some(y)) = (x, y) {
                if x == y {
                    (ai, bj) = (ai + 1, bj + 1);
                    continue;
                }
            }
            let order = match (x, y) {
                (Some(x), Some(y)) => x.git_order(y),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            let (old_e, new_e) = match order {
                Ordering::Less => (x, None),
                Ordering::Greater => (None, y),
                Ordering::Equal => (x, y),
            };
            ai += usize::from(old_e.is_some());
            bj += usize::from(new_e.is_some());
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            let name = old_e.or(new_e).map(|e| e.name.as_slice()).unwrap_or_default();
            prefix.extend_from_slice(name);
            self.changed(prefix, old_e, new_e)?;
            prefix.truncate(len);
        }
        Ok(())
    }

    /// One entry that differs at `path` between the older snapshot and the newer. Entries
    /// of the same name but of a different kind (a file that became a folder) come one side
    /// at a time: the file goes, the folder's paths appear.
    fn changed(&mut self, path: &mut Vec<u8>, x: Option<&TreeEntry>, y: Option<&TreeEntry>) -> Result<()> {
        let full = |e: &TreeEntry| e.is_tree() && e.oid != empty_tree();
        match (x, y) {
            (Some(x), Some(y)) if full(x) && full(y) => return self.diff(path, x.oid, y.oid),
            // A file edited in place (or a link retargeted): still there.
            (Some(x), Some(y)) if !x.is_tree() && !y.is_tree() => return Ok(()),
            _ => {}
        }
        if let Some(x) = x {
            let hit = self.leaves(path, x)?;
            self.gone.push(hit);
        }
        if let Some(y) = y {
            let hit = self.leaves(path, y)?;
            self.new.push(hit);
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

    /// Records snapshot `i`: what went, then what appeared.
    fn apply(&mut self, i: usize) {
        for p in std::mem::take(&mut self.gone).iter().flat_map(|l| l.iter()) {
            if let Some(t) = self.seen.get_mut(p) {
                t.present = false;
                t.last = i - 1;
            }
        }
        for p in std::mem::take(&mut self.new).iter().flat_map(|l| l.iter()) {
            let t = self.seen.entry(p.clone()).or_insert(Track { first: i, last: i, present: true });
            t.present = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::objects::{self, MODE_FILE};

    fn tree(odb: &git2::Odb, entries: &[(&str, u32, Oid)]) -> Oid {
        let mut v: Vec<TreeEntry> = entries
            .iter()
            .map(|(n, m, o)| TreeEntry { name: n.as_bytes().to_vec(), mode: *m, oid: *o })
            .collect();
        objects::sort_entries(&mut v);
        odb.write(git2::ObjectType::Tree, &objects::tree_bytes(&v)).expect("write a test tree")
    }

    #[test]
    fn first_last_and_gone_across_edits_kind_changes_and_re_adds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = git2::Repository::init_bare(dir.path()).expect("a test repo");
        let odb = repo.odb().expect("odb");
        let one = odb.write(git2::ObjectType::Blob, b"1").expect("blob");
        let two = odb.write(git2::ObjectType::Blob, b"2").expect("blob");
        let sub = tree(&odb, &[("x.md", MODE_FILE, one)]);
        let d = tree(&odb, &[("y.md", MODE_FILE, two)]);
        let roots = [
            tree(&odb, &[("a.md", MODE_FILE, one), ("d", MODE_TREE, empty_tree())]),
            // a.md edited; the empty folder d became a file d.
            tree(&odb, &[("a.md", MODE_FILE, two), ("d", MODE_FILE, one)]),
            // a.md deleted.
            tree(&odb, &[("d", MODE_FILE, one)]),
            // a.md back; sub/x.md added.
            tree(&odb, &[("a.md", MODE_FILE, one), ("d", MODE_FILE, one), ("sub", MODE_TREE, sub)]),
            // the file d became a folder; sub went.
            tree(&odb, &[("a.md", MODE_FILE, one), ("d", MODE_TREE, d)]),
        ];
        let mut trees = Trees::new(repo.odb().expect("odb"));
        let all = find(&mut trees, &roots, &Pattern::parse("").expect("substring")).expect("find");
        let seen = |p: &str| all.get(p.as_bytes()).copied();
        let s = |first, last, disappeared| Some(Seen { first, last, disappeared });
        assert_eq!(seen("a.md"), s(0, 4, None), "deleted and re-added: still there");
        assert_eq!(seen("d"), s(0, 3, Some(4)), "an empty folder, then a file, then gone");
        assert_eq!(seen("d/y.md"), s(4, 4, None));
        assert_eq!(seen("sub/x.md"), s(3, 3, Some(4)));
        assert_eq!(all.len(), 4);
        let md = find(&mut trees, &roots, &Pattern::parse("*.md").expect("glob")).expect("find");
        assert_eq!(
            md.keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect::<Vec<_>>(),
            ["a.md", "d/y.md", "sub/x.md"]
        );
        assert!(
            find(&mut trees, &roots[2..], &Pattern::parse("A.MD").expect("substring")).expect("find")
                == BTreeMap::from([(b"a.md".to_vec(), Seen { first: 1, last: 2, disappeared: None })])
        );
    }

    #[test]
    fn substring_ignores_case_and_globs_follow_the_filter_rules() {
        let p = Pattern::parse("Plan").expect("substring");
        assert!(p.matches(b"notes/my plan.md") && !p.matches(b"notes/pla.md"));
        let g = Pattern::parse("notes/**/plan*").expect("glob");
        assert!(g.matches(b"notes/2026/q1/plan-b.md") && g.matches(b"notes/plan.md"));
        assert!(!g.matches(b"other/notes/plan.md"));
        let err = Pattern::parse("a[").expect_err("unclosed class").to_string();
        assert!(err.starts_with("find pattern \"a[\" is not a valid glob"), "{err}");
    }
}
