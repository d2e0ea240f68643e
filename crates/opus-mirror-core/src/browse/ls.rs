//! `ls`: the entries of one snapshot under a path, depth first in tree order, with what kind
//! each is, the permission bits the snapshot recorded (when it recorded them) and the size.

use anyhow::Result;
use git2::Oid;
use serde::Serialize;

use super::trees::{Found, Trees};
use crate::git::objects::{empty_tree, MODE_EXEC, MODE_FILE, MODE_LINK, MODE_TREE};
use crate::human::display_path;
use crate::snapshot::modes::Modes;

/// One file, link or folder of a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The path from the source root (invalid UTF-8 shown escaped).
    pub path: String,
    /// `file`, `executable`, `symlink`, `dir` or `submodule`.
    pub kind: &'static str,
    /// Permission bits in octal (`0600`), when the snapshot recorded them.
    pub mode: Option<String>,
    /// Bytes of a file, or of a link's target; none for a folder.
    pub size: Option<u64>,
    /// The git object id (blob, or tree for a folder).
    pub id: String,
}

/// The kind of a tree entry by its mode, as `ls` and `log` name it.
pub fn kind(mode: u32) -> &'static str {
    match mode {
        MODE_FILE => "file",
        MODE_EXEC => "executable",
        MODE_LINK => "symlink",
        MODE_TREE => "dir",
        _ => "submodule",
    }
}

/// The recorded permission bits of what sits at `path` (files and folders; a link has none).
pub fn bits(modes: Option<&Modes>, path: &[u8], mode: u32) -> Option<u32> {
    let m = modes?;
    match mode {
        MODE_FILE | MODE_EXEC => Some(m.of_file(path, mode == MODE_EXEC)),
        MODE_TREE => Some(m.of_dir(path)),
        _ => None,
    }
}

/// The size of a blob from its header (no content read); none for a folder or submodule.
pub fn size(trees: &Trees, found: Found) -> Result<Option<u64>> {
    if !matches!(found.mode, MODE_FILE | MODE_EXEC | MODE_LINK) {
        return Ok(None);
    }
    let (n, _) = trees.odb.read_header(found.oid).map_err(|e| {
        anyhow::anyhow!("object {} is missing from the backup repo ({e}); run `opus-mirror check`", found.oid)
    })?;
    Ok(Some(n as u64))
}

/// Everything at and under `path` in the snapshot tree `root` (the path itself first, unless
/// it is the root); None when the snapshot has no such path.
pub fn list(trees: &mut Trees, modes: Option<&Modes>, root: Oid, path: &[u8]) -> Result<Option<Vec<Entry>>> {
    let Some(found) = trees.lookup(root, path)? else { return Ok(None) };
    let mut out = Vec::new();
    if !path.is_empty() {
        out.push(entry(trees, modes, path, found)?);
    }
    if found.mode == MODE_TREE {
        walk(trees, modes, found.oid, &mut path.to_vec(), &mut out)?;
    }
    Ok(Some(out))
}

fn entry(trees: &Trees, modes: Option<&Modes>, path: &[u8], found: Found) -> Result<Entry> {
    Ok(Entry {
        path: display_path(path),
        kind: kind(found.mode),
        mode: bits(modes, path, found.mode).map(|b| format!("{b:04o}")),
        size: size(trees, found)?,
        id: found.oid.to_string(),
    })
}

fn walk(
    trees: &mut Trees,
    modes: Option<&Modes>,
    tree: Oid,
    prefix: &mut Vec<u8>,
    out: &mut Vec<Entry>,
) -> Result<()> {
    for e in trees.read(tree, prefix)?.iter() {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(&e.name);
        let found = Found { mode: e.mode, oid: e.oid };
        out.push(entry(trees, modes, prefix, found)?);
        if e.mode == MODE_TREE && e.oid != empty_tree() {
            walk(trees, modes, e.oid, prefix, out)?;
        }
        prefix.truncate(len);
    }
    Ok(())
}
