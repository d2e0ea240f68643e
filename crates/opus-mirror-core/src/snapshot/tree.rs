//! Trees in both directions: building a snapshot's trees from a walk (writing the new ones
//! into the pack), and reading a stored snapshot back as a flat list of items.

use std::collections::HashMap;

use anyhow::{anyhow, Context, Result};
use git2::{Odb, Oid};

use super::walk::Node;
use crate::git::fsck;
use crate::git::objects::{self, Kind, TreeEntry, MODE_EXEC, MODE_FILE, MODE_LINK, MODE_TREE};
use crate::git::pack::PackWriter;

/// Counts of what a tree holds.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Counts {
    pub files: u64,
    pub bytes: u64,
    pub symlinks: u64,
    pub empty_dirs: u64,
}

/// Builds trees bottom-up, remembering each one so diffs need not read them back.
pub struct TreeBuilder<'a> {
    pub odb: &'a Odb<'a>,
    pub pack: Option<&'a mut PackWriter>,
    /// Every tree built in this run, by id.
    pub trees: HashMap<Oid, Vec<TreeEntry>>,
    pub counts: Counts,
    pub new_objects: u64,
}

impl<'a> TreeBuilder<'a> {
    pub fn new(odb: &'a Odb<'a>, pack: Option<&'a mut PackWriter>) -> Self {
        TreeBuilder { odb, pack, trees: HashMap::new(), counts: Counts::default(), new_objects: 0 }
    }

    /// Makes sure an object exists (in the repo or the pack) and returns its id.
    fn ensure(&mut self, kind: Kind, data: &[u8]) -> Result<Oid> {
        let oid = objects::hash(kind, data);
        if let Some(p) = self.pack.as_deref_mut() {
            if !p.contains(&oid) && !self.odb.exists(oid) {
                p.add(kind, data)?;
                self.new_objects += 1;
            }
        }
        Ok(oid)
    }

    /// Builds the tree of one directory and returns its id. Files whose content could not
    /// be read (no oid) are left out; they were reported when hashing.
    pub fn build(&mut self, nodes: &[(Vec<u8>, Node)]) -> Result<Oid> {
        let mut entries = Vec::with_capacity(nodes.len());
        for (name, node) in nodes {
            let (mode, oid) = match node {
                Node::File(f) => match f.oid {
                    Some(oid) => {
                        self.counts.files += 1;
                        self.counts.bytes += f.stat.size;
                        (if f.exec { MODE_EXEC } else { MODE_FILE }, oid)
                    }
                    None => continue,
                },
                Node::Symlink { target } => {
                    self.counts.symlinks += 1;
                    (MODE_LINK, self.ensure(Kind::Blob, target)?)
                }
                Node::Dir(children) => {
                    if children.is_empty() {
                        self.counts.empty_dirs += 1;
                    }
                    (MODE_TREE, self.build(children)?)
                }
            };
            entries.push(TreeEntry { name: name.clone(), mode, oid });
        }
        objects::sort_entries(&mut entries);
        let bytes = objects::tree_bytes(&entries);
        // The empty tree too is stored for real (git fsck checks that it exists).
        let oid = self.ensure(Kind::Tree, &bytes)?;
        self.trees.insert(oid, entries);
        Ok(oid)
    }
}

/// Reads a tree's entries, from `known` (built this run) or the repo.
pub(crate) fn read_tree(odb: &Odb, known: &HashMap<Oid, Vec<TreeEntry>>, oid: Oid) -> Result<Vec<TreeEntry>> {
    if let Some(e) = known.get(&oid) {
        return Ok(e.clone());
    }
    read_stored(odb, oid, |data| {
        objects::parse_tree(data).ok_or_else(|| anyhow!("tree {oid} in the backup repo is malformed"))
    })
}

/// Reads a tree as restore and drill must: a tree read back is untrusted, so every entry is
/// validated like git's fsck (`..`, `/`, `.git`, duplicates, order, modes) and a bad one is
/// an error naming the tree, where it sits (`at`, relative to the snapshot) and the entry.
pub(crate) fn read_checked(odb: &Odb, oid: Oid, at: &[u8]) -> Result<Vec<TreeEntry>> {
    read_stored(odb, oid, |data| {
        fsck::check_tree(data).map_err(|finding| {
            let path = format!("/{}", fsck::lossy(at));
            anyhow::Error::new(fsck::TreeError { tree: oid, path, finding })
        })
    })
}

/// Reads tree `oid` from the repo (the empty tree without a read) and parses it with `parse`.
fn read_stored(
    odb: &Odb,
    oid: Oid,
    parse: impl FnOnce(&[u8]) -> Result<Vec<TreeEntry>>,
) -> Result<Vec<TreeEntry>> {
    if oid == objects::empty_tree() {
        return Ok(Vec::new());
    }
    let obj = odb.read(oid).with_context(|| format!("cannot read tree {oid} from the backup repo"))?;
    if obj.kind() != git2::ObjectType::Tree {
        return Err(anyhow!("object {oid} is a {:?}, expected a tree", obj.kind()));
    }
    parse(obj.data())
}

/// One restorable thing in a snapshot: a file, an executable, a symlink or an empty dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub path: Vec<u8>,
    pub mode: u32,
    pub oid: Oid,
}

impl Item {
    pub(crate) fn is_empty_dir(&self) -> bool {
        self.mode == MODE_TREE
    }
}

/// Every directory `items` live in or are (empty ones), below the root, deepest first: the
/// order in which their permission bits can be set without locking out the ones below.
pub(crate) fn dirs_of(items: &[Item]) -> Vec<&[u8]> {
    let mut dirs = std::collections::BTreeSet::new();
    for item in items {
        if item.is_empty_dir() {
            dirs.insert(item.path.as_slice());
        }
        for (i, b) in item.path.iter().enumerate() {
            if *b == b'/' {
                dirs.insert(&item.path[..i]);
            }
        }
    }
    let mut dirs: Vec<&[u8]> = dirs.into_iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.iter().filter(|b| **b == b'/').count()));
    dirs
}

/// Lists every item of a snapshot tree, depth first in tree order. Every tree is validated on
/// the way ([`read_checked`]): this is how restore and drill read what a backup holds.
pub fn list(odb: &Odb, tree: Oid) -> Result<Vec<Item>> {
    let mut out = Vec::new();
    list_into(odb, tree, &mut Vec::new(), &mut out)?;
    Ok(out)
}

fn list_into(odb: &Odb, tree: Oid, prefix: &mut Vec<u8>, out: &mut Vec<Item>) -> Result<()> {
    for e in read_checked(odb, tree, prefix)? {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(&e.name);
        if e.mode == MODE_TREE && e.oid != objects::empty_tree() {
            list_into(odb, e.oid, prefix, out)?;
        } else {
            out.push(Item { path: prefix.clone(), mode: e.mode, oid: e.oid });
        }
        prefix.truncate(len);
    }
    Ok(())
}
