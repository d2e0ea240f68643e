//! Tree-entry validation, the way git's own `fsck` and `verify_path` judge a tree: a tree read
//! back from a backup repo is untrusted input (anyone who can write to a target or a mirror can
//! craft one), so nothing is restored from, or called healthy in, a tree that fails here.
//!
//! Pure functions over raw tree bytes (read with the one tree parser,
//! [`objects::raw_tree_entries`]): no I/O, and no panic on any input (a property test feeds
//! arbitrary bytes). `snapshot::tree::list`, which restore and drill read snapshots through,
//! and `check` apply them to every tree they read.

use std::collections::HashSet;
use std::fmt;

use git2::Oid;

use crate::git::objects::{self, TreeEntry, MODE_EXEC, MODE_FILE, MODE_GITLINK, MODE_LINK, MODE_TREE};

/// What is wrong with one tree entry (or with the tree's bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The bytes are not a sequence of `MODE SP NAME NUL OID20`.
    Malformed,
    EmptyName,
    Dot,
    DotDot,
    /// A name with `/` would address a path below another entry.
    Slash,
    /// `.git` in any case, or a spelling NTFS or HFS+ would read as `.git`.
    DotGit,
    BadMode(String),
    Duplicate,
    Unsorted,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Malformed => f.write_str("the tree object is malformed"),
            Problem::EmptyName => f.write_str("empty name"),
            Problem::Dot => f.write_str("the name `.`"),
            Problem::DotDot => f.write_str("the name `..` (would leave the destination)"),
            Problem::Slash => f.write_str("a name containing `/` (would write below another entry)"),
            Problem::DotGit => f.write_str("a name git reads as `.git` (would write into a repository)"),
            Problem::BadMode(m) => write!(f, "invalid mode {m}"),
            Problem::Duplicate => f.write_str("a duplicate name"),
            Problem::Unsorted => f.write_str("entries not in git's order"),
        }
    }
}

/// One bad entry: its (lossy) name and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub entry: String,
    pub problem: Problem,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entry.is_empty() && self.problem == Problem::Malformed {
            return write!(f, "{}", self.problem);
        }
        write!(f, "entry `{}`: {}", self.entry, self.problem)
    }
}

/// Whether a single name may be a path component on disk (git's `verify_path` rules for
/// one component, with the `.git` checks git applies for every filesystem).
pub(crate) fn verify_name(name: &[u8]) -> Result<(), Problem> {
    match name {
        [] => return Err(Problem::EmptyName),
        b"." => return Err(Problem::Dot),
        b".." => return Err(Problem::DotDot),
        _ => {}
    }
    if name.contains(&b'/') {
        return Err(Problem::Slash);
    }
    if name.contains(&0) {
        return Err(Problem::Malformed);
    }
    // Every spelling of `.git` has a `g`: most names are done without the allocating checks.
    let may_be_dotgit = name.iter().any(|b| b | 0x20 == b'g');
    if may_be_dotgit && (is_ntfs_dotgit(name) || is_hfs_dotgit(name)) {
        return Err(Problem::DotGit);
    }
    Ok(())
}

/// `.git` in any case, followed by nothing but spaces and dots (NTFS strips them) or an NTFS
/// stream suffix (`.git::$INDEX_ALLOCATION`); and the 8.3 short name `git~1`.
fn is_ntfs_dotgit(name: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix(b".git") {
        r
    } else if let Some(r) = lower.strip_prefix(b"git~1") {
        r
    } else {
        return false;
    };
    let trimmed: Vec<u8> = rest.iter().copied().skip_while(|b| *b == b' ' || *b == b'.').collect();
    trimmed.is_empty() || trimmed[0] == b':' || trimmed.iter().all(|b| *b == b' ' || *b == b'.')
}

/// HFS+ ignores these code points when comparing names (git's `is_hfs_dotgit` list).
fn hfs_ignored(c: char) -> bool {
    matches!(c as u32, 0x200c..=0x200f | 0x202a..=0x202e | 0x206a..=0x206f | 0xfeff)
}

/// `.git` once HFS+ has dropped its ignorable code points and folded case.
fn is_hfs_dotgit(name: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(name) else { return false };
    let folded: String = s.chars().filter(|c| !hfs_ignored(*c)).collect();
    folded.eq_ignore_ascii_case(".git")
}

fn valid_mode(mode: u32) -> bool {
    matches!(mode, MODE_FILE | MODE_EXEC | MODE_LINK | MODE_TREE | MODE_GITLINK)
}

/// Git writes modes in octal without leading zeros; anything else is not a mode.
fn strict_mode(text: &[u8]) -> Option<u32> {
    let t = std::str::from_utf8(text).ok()?;
    if t.is_empty() || t.starts_with('0') || !t.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(t, 8).ok().filter(|m| valid_mode(*m))
}

/// Parses and validates a raw tree object; the first bad entry is the error.
pub(crate) fn check_tree(raw: &[u8]) -> Result<Vec<TreeEntry>, Finding> {
    let mut out: Vec<TreeEntry> = Vec::new();
    // Sized for the tree up front (an entry is at least 22 bytes): no rehash on large folders.
    let mut names: HashSet<&[u8]> = HashSet::with_capacity(raw.len() / 32);
    for e in objects::raw_tree_entries(raw) {
        let Some(e) = e else { return Err(Finding { entry: String::new(), problem: Problem::Malformed }) };
        let bad = |problem| Finding { entry: lossy(e.name), problem };
        let mode = strict_mode(e.mode).ok_or_else(|| bad(Problem::BadMode(lossy(e.mode))))?;
        verify_name(e.name).map_err(bad)?;
        if !names.insert(e.name) {
            return Err(bad(Problem::Duplicate));
        }
        let entry = TreeEntry { name: e.name.to_vec(), mode, oid: e.oid };
        if out.last().is_some_and(|prev| prev.git_order(&entry) != std::cmp::Ordering::Less) {
            return Err(bad(Problem::Unsorted));
        }
        out.push(entry);
    }
    Ok(out)
}

/// A name as text for messages (invalid UTF-8 replaced, control characters escaped).
pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).escape_debug().to_string()
}

/// A bad entry found below a snapshot: which tree, where it sits, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("tree {tree} at `{path}`: {finding}")]
pub struct TreeError {
    pub tree: Oid,
    /// Path of the tree inside the snapshot (`/` for the root).
    pub path: String,
    pub finding: Finding,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn raw(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (mode, name) in entries {
            out.extend_from_slice(mode.as_bytes());
            out.push(b' ');
            out.extend_from_slice(name);
            out.push(0);
            out.extend_from_slice(&[7u8; 20]);
        }
        out
    }

    fn problem(entries: &[(&str, &[u8])]) -> Problem {
        check_tree(&raw(entries)).expect_err("hostile tree must be refused").problem
    }

    #[test]
    fn ordinary_trees_pass() {
        let ok = raw(&[("100644", b"a-b"), ("100644", b"a.md"), ("40000", b"a"), ("120000", b"link")]);
        assert_eq!(check_tree(&ok).expect("valid").len(), 4);
        assert!(check_tree(b"").expect("the empty tree is valid").is_empty());
        for name in [".gitignore", ".github", "git", ".gitx", "my.git", "..a", ".a."] {
            verify_name(name.as_bytes()).unwrap_or_else(|p| panic!("{name}: {p}"));
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        assert_eq!(problem(&[("100644", b"")]), Problem::EmptyName);
        assert_eq!(problem(&[("100644", b".")]), Problem::Dot);
        assert_eq!(problem(&[("100644", b"..")]), Problem::DotDot);
        assert_eq!(problem(&[("100644", b"a/b")]), Problem::Slash);
        assert_eq!(problem(&[("100644", b"/etc")]), Problem::Slash);
        for name in [
            ".git",
            ".GIT",
            ".Git",
            ".git ",
            ".git.",
            ".git . .",
            "git~1",
            "GIT~1",
            ".git::$INDEX_ALLOCATION",
            ".g\u{200c}it",
            "\u{feff}.GIT",
        ] {
            assert_eq!(verify_name(name.as_bytes()), Err(Problem::DotGit), "{name:?}");
        }
    }

    #[test]
    fn duplicates_order_and_modes_are_checked() {
        assert_eq!(problem(&[("100644", b"a"), ("100644", b"a")]), Problem::Duplicate);
        // A symlink `evil` and a tree `evil` (to write `evil/x` through the link): git's
        // duplicateEntries, whatever the modes.
        assert_eq!(problem(&[("120000", b"evil"), ("40000", b"evil")]), Problem::Duplicate);
        assert_eq!(problem(&[("100644", b"b"), ("100644", b"a")]), Problem::Unsorted);
        // `a.md` sorts before the tree `a` (compared as `a/`).
        assert_eq!(problem(&[("40000", b"a"), ("100644", b"a.md")]), Problem::Unsorted);
        for m in ["100664", "0100644", "100000", "777777", "", "12x", "99999999999999"] {
            assert!(matches!(problem(&[(m, b"a")]), Problem::BadMode(_)), "{m}");
        }
        assert_eq!(check_tree(b"100644 a\0short").expect_err("truncated").problem, Problem::Malformed);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = check_tree(&data);
        }

        #[test]
        fn accepted_names_are_single_safe_components(name in proptest::collection::vec(any::<u8>(), 0..12)) {
            if verify_name(&name).is_ok() {
                prop_assert!(!name.is_empty() && name != b"." && name != b"..");
                prop_assert!(!name.contains(&b'/') && !name.contains(&0));
                prop_assert!(!name.eq_ignore_ascii_case(b".git"));
            }
        }
    }
}
