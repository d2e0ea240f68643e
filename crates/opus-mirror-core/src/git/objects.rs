//! Git's object format, written by hand where libgit2 would be slow or has no API: object
//! ids, tree and commit serialisation. Pure functions, checked against stock git in tests.

use git2::Oid;
use sha1::{Digest, Sha1};

/// Mode of a regular file in a tree.
pub const MODE_FILE: u32 = 0o100644;
/// Mode of an executable file.
pub const MODE_EXEC: u32 = 0o100755;
/// Mode of a symbolic link (the blob holds the link target).
pub const MODE_LINK: u32 = 0o120000;
/// Mode of a subdirectory.
pub const MODE_TREE: u32 = 0o040000;
/// A submodule (gitlink): valid in a tree, never written by a restore.
pub const MODE_GITLINK: u32 = 0o160000;

/// The id of the empty tree. Snapshots store empty directories as entries pointing at it:
/// git accepts that (`git fsck --strict` is clean) and our restore recreates them.
pub(crate) fn empty_tree() -> Oid {
    Oid::from_str("4b825dc642cb6eb9a060e54bf8d69288fbee4904").expect("the empty tree id is valid hex")
}

/// Object kinds as numbered in pack files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Commit = 1,
    Tree = 2,
    Blob = 3,
    Tag = 4,
}

impl Kind {
    /// The kind of a libgit2 object type (anything unexpected is treated as a blob).
    pub fn of(t: git2::ObjectType) -> Kind {
        match t {
            git2::ObjectType::Commit => Kind::Commit,
            git2::ObjectType::Tree => Kind::Tree,
            git2::ObjectType::Tag => Kind::Tag,
            _ => Kind::Blob,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Commit => "commit",
            Kind::Tree => "tree",
            Kind::Blob => "blob",
            Kind::Tag => "tag",
        }
    }
}

/// Starts the SHA-1 of an object of `kind` and `size` bytes: feed it the content next.
pub(crate) fn hasher(kind: Kind, size: u64) -> Sha1 {
    let mut h = Sha1::new();
    h.update(format!("{} {size}\0", kind.name()).as_bytes());
    h
}

/// Finishes a hasher into an object id.
pub fn finish(h: Sha1) -> Oid {
    Oid::from_bytes(&h.finalize()).expect("a SHA-1 digest is 20 bytes")
}

/// The id git gives `data` stored as `kind`.
/// The blob id of `len` bytes read from `r`, streamed; an error if `r` ends early or has more.
pub(crate) fn hash_reader(r: &mut dyn std::io::Read, len: u64) -> std::io::Result<Oid> {
    let mut h = hasher(Kind::Blob, len);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if n as u64 > left {
            return Err(std::io::Error::other("the file grew while it was read"));
        }
        sha1::Digest::update(&mut h, &buf[..n]);
        left -= n as u64;
    }
    if left != 0 {
        return Err(std::io::Error::other("the file shrank while it was read"));
    }
    Ok(finish(h))
}

pub fn hash(kind: Kind, data: &[u8]) -> Oid {
    let mut h = hasher(kind, data.len() as u64);
    h.update(data);
    finish(h)
}

/// One entry of a tree object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    pub name: Vec<u8>,
    pub mode: u32,
    pub oid: Oid,
}

impl TreeEntry {
    pub(crate) fn is_tree(&self) -> bool {
        self.mode == MODE_TREE
    }

    /// Git's tree order: by name, a directory compared as if it ended in '/'.
    pub(crate) fn git_order(&self, other: &TreeEntry) -> std::cmp::Ordering {
        // Compared as iterators: no allocation (fsck compares every neighbour of every tree).
        fn key(e: &TreeEntry) -> impl Iterator<Item = u8> + '_ {
            e.name.iter().copied().chain(e.is_tree().then_some(b'/'))
        }
        key(self).cmp(key(other))
    }
}

/// Sorts entries in git's tree order: by name, a directory compared as if it ended in '/'.
pub(crate) fn sort_entries(entries: &mut [TreeEntry]) {
    entries.sort_by(TreeEntry::git_order);
}

/// Serialises a tree; `entries` must already be in git order (see [`sort_entries`]).
pub(crate) fn tree_bytes(entries: &[TreeEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 48);
    for e in entries {
        out.extend_from_slice(format!("{:o} ", e.mode).as_bytes());
        out.extend_from_slice(&e.name);
        out.push(0);
        out.extend_from_slice(e.oid.as_bytes());
    }
    out
}

/// One entry of a tree object as stored: the mode's octal text, the name, the id.
pub struct RawTreeEntry<'a> {
    pub mode: &'a [u8],
    pub name: &'a [u8],
    pub oid: Oid,
}

/// The entries of a tree object's bytes in stored order: the one parser of tree bytes, shared
/// by [`parse_tree`] and the fsck-style validation. Yields `None` once, last, where the bytes
/// stop being `MODE SP NAME NUL OID20`.
pub(crate) fn raw_tree_entries(data: &[u8]) -> impl Iterator<Item = Option<RawTreeEntry<'_>>> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let entry = split_entry(&mut rest);
        if entry.is_none() {
            rest = &[];
        }
        Some(entry)
    })
}

fn split_entry<'a>(rest: &mut &'a [u8]) -> Option<RawTreeEntry<'a>> {
    let sp = rest.iter().position(|&b| b == b' ')?;
    let (mode, tail) = (&rest[..sp], &rest[sp + 1..]);
    let nul = tail.iter().position(|&b| b == 0)?;
    let (name, tail) = (&tail[..nul], &tail[nul + 1..]);
    let oid = Oid::from_bytes(tail.get(..20)?).ok()?;
    *rest = &tail[20..];
    Some(RawTreeEntry { mode, name, oid })
}

/// Parses a tree object's bytes (used where libgit2's API would copy more than we need).
pub(crate) fn parse_tree(data: &[u8]) -> Option<Vec<TreeEntry>> {
    raw_tree_entries(data)
        .map(|e| {
            let e = e?;
            let mode = u32::from_str_radix(std::str::from_utf8(e.mode).ok()?, 8).ok()?;
            Some(TreeEntry { name: e.name.to_vec(), mode, oid: e.oid })
        })
        .collect()
}

/// Who wrote a snapshot commit, and when.
#[derive(Clone, Debug)]
pub struct Signature {
    pub name: String,
    pub email: String,
    /// Seconds since the epoch, UTC.
    pub time: i64,
}

/// Serialises a commit object.
pub(crate) fn commit_bytes(tree: Oid, parent: Option<Oid>, sig: &Signature, message: &str) -> Vec<u8> {
    let mut s = format!("tree {tree}\n");
    if let Some(p) = parent {
        s.push_str(&format!("parent {p}\n"));
    }
    let who = format!("{} <{}> {} +0000", sig.name, sig.email, sig.time);
    s.push_str(&format!("author {who}\ncommitter {who}\n\n{message}"));
    if !message.ends_with('\n') {
        s.push('\n');
    }
    s.into_bytes()
}

/// The machine's name, for commit messages.
pub fn host() -> String {
    gethostname::gethostname().to_string_lossy().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ids_match_git() {
        // `printf 'hi\n' | git hash-object --stdin`
        assert_eq!(hash(Kind::Blob, b"hi\n").to_string(), "45b983be36b73c0788dc9cbcb76cbb80fc7bb057");
        assert_eq!(hash(Kind::Tree, b""), empty_tree());
    }

    #[test]
    fn tree_order_puts_directories_after_same_prefix_files() {
        let oid = empty_tree();
        let mut v = vec![
            TreeEntry { name: b"a".to_vec(), mode: MODE_TREE, oid },
            TreeEntry { name: b"a.md".to_vec(), mode: MODE_FILE, oid },
            TreeEntry { name: b"a-b".to_vec(), mode: MODE_FILE, oid },
        ];
        sort_entries(&mut v);
        let names: Vec<_> = v.iter().map(|e| e.name.clone()).collect();
        // '-' (0x2d) < '.' (0x2e) < '/' (0x2f): "a/" sorts after "a.md".
        assert_eq!(names, vec![b"a-b".to_vec(), b"a.md".to_vec(), b"a".to_vec()]);
    }

    #[test]
    fn tree_round_trips_through_parse() {
        let oid = hash(Kind::Blob, b"x");
        let v = vec![
            TreeEntry { name: b"dir".to_vec(), mode: MODE_TREE, oid: empty_tree() },
            TreeEntry { name: b"run.sh".to_vec(), mode: MODE_EXEC, oid },
        ];
        let bytes = tree_bytes(&v);
        assert!(bytes.starts_with(b"40000 dir\0"));
        assert_eq!(parse_tree(&bytes).unwrap(), v);
    }
}
