//! Trees of a backup repo, read for browsing: every tree validated like git's fsck (the same
//! [`tree::read_checked`] restore reads through: a tree read back is untrusted) and kept by
//! id, so a subtree shared by many snapshots is read and checked once.

use std::collections::HashMap;
use std::rc::Rc;

use anyhow::Result;
use git2::{Odb, Oid};

use crate::git::objects::{TreeEntry, MODE_TREE};
use crate::snapshot::tree;

/// Validated trees by id.
pub struct Trees<'r> {
    pub odb: Odb<'r>,
    cache: HashMap<Oid, Rc<Vec<TreeEntry>>>,
    /// Entries held in `cache`: past [`CACHE_ENTRIES`] it starts over, so memory stays bounded
    /// on a long history of large folders.
    held: usize,
}

/// About 50 MiB of parsed entries.
const CACHE_ENTRIES: usize = 500_000;

/// What a path names in a snapshot: its tree-entry mode and object id (a directory is
/// `MODE_TREE` and its tree).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    pub mode: u32,
    pub oid: Oid,
}

impl<'r> Trees<'r> {
    pub fn new(odb: Odb<'r>) -> Self {
        Trees { odb, cache: HashMap::new(), held: 0 }
    }

    /// The entries of tree `oid`, which sits at `at` in the snapshot (for error messages).
    pub fn read(&mut self, oid: Oid, at: &[u8]) -> Result<Rc<Vec<TreeEntry>>> {
        if let Some(t) = self.cache.get(&oid) {
            return Ok(Rc::clone(t));
        }
        let t = Rc::new(tree::read_checked(&self.odb, oid, at)?);
        if self.held + t.len() > CACHE_ENTRIES {
            self.cache.clear();
            self.held = 0;
        }
        self.held += t.len();
        self.cache.insert(oid, Rc::clone(&t));
        Ok(t)
    }

    /// What `path` (no leading or trailing `/`; empty for the root) is in the tree `root`.
    pub fn lookup(&mut self, root: Oid, path: &[u8]) -> Result<Option<Found>> {
        let mut here = Found { mode: MODE_TREE, oid: root };
        if path.is_empty() {
            return Ok(Some(here));
        }
        let mut at = Vec::new();
        for name in path.split(|b| *b == b'/') {
            if here.mode != MODE_TREE {
                return Ok(None);
            }
            let entries = self.read(here.oid, &at)?;
            let Some(e) = entries.iter().find(|e| e.name == name) else { return Ok(None) };
            here = Found { mode: e.mode, oid: e.oid };
            if !at.is_empty() {
                at.push(b'/');
            }
            at.extend_from_slice(name);
        }
        Ok(Some(here))
    }
}

/// Normalises a path the user typed: no leading `./` or `/`, no trailing `/`, no empty parts.
pub fn normalise(path: &[u8]) -> Vec<u8> {
    let parts: Vec<&[u8]> = path.split(|b| *b == b'/').filter(|p| !p.is_empty() && *p != b".").collect();
    parts.join(&b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_paths_are_normalised() {
        assert_eq!(normalise(b"./notes//a.md/"), b"notes/a.md");
        assert_eq!(normalise(b"/"), b"");
        assert_eq!(normalise(b"caf\xe9"), b"caf\xe9");
    }
}
