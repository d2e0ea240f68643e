//! Comparing directory trees exactly: every file's bytes and executable bit, every symlink's
//! target, every empty directory. Differences are listed by path.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// What is at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    File { exec: bool, content: Vec<u8> },
    Link(Vec<u8>),
    EmptyDir,
}

/// Everything under `root`, keyed by relative path bytes, skipping names `skip` rejects.
pub fn manifest(root: &Path, skip: &dyn Fn(&[u8]) -> bool) -> BTreeMap<Vec<u8>, Item> {
    let mut out = BTreeMap::new();
    let walker = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| !skip(e.file_name().as_bytes()));
    for e in walker {
        let e = e.expect("walk");
        let rel = e.path().strip_prefix(root).expect("below root").as_os_str().as_bytes().to_vec();
        let ft = e.file_type();
        let item = if ft.is_symlink() {
            Item::Link(std::fs::read_link(e.path()).expect("readlink").as_os_str().as_bytes().to_vec())
        } else if ft.is_dir() {
            if std::fs::read_dir(e.path())
                .expect("list")
                .filter(|c| !skip(c.as_ref().expect("entry").file_name().as_bytes()))
                .count()
                > 0
            {
                continue;
            }
            Item::EmptyDir
        } else {
            let meta = e.metadata().expect("stat");
            Item::File {
                exec: meta.permissions().mode() & 0o111 != 0,
                content: std::fs::read(e.path()).expect("read"),
            }
        };
        out.insert(rel, item);
    }
    out
}

/// Asserts two trees are identical, naming every differing path.
pub fn assert_same(a: &Path, b: &Path, skip: &dyn Fn(&[u8]) -> bool) {
    let (ma, mb) = (manifest(a, skip), manifest(b, skip));
    let mut problems = Vec::new();
    for (k, v) in &ma {
        match mb.get(k) {
            None => problems.push(format!("missing: {}", k.escape_ascii())),
            Some(w) if w != v => problems.push(format!("differs: {}", k.escape_ascii())),
            _ => {}
        }
    }
    for k in mb.keys().filter(|k| !ma.contains_key(*k)) {
        problems.push(format!("extra: {}", k.escape_ascii()));
    }
    assert!(
        problems.is_empty(),
        "trees differ ({} vs {}):\n{}",
        a.display(),
        b.display(),
        problems.join("\n")
    );
    assert!(!ma.is_empty(), "compared an empty tree: the test proves nothing");
}

/// The names a snapshot always leaves out by default.
pub fn default_skip(name: &[u8]) -> bool {
    name == b".git" || opus_mirror_core::snapshot::filter::is_secret(name)
}

/// The permission bits of every file and directory under `root` (symlinks have none).
pub fn modes(root: &Path, skip: &dyn Fn(&[u8]) -> bool) -> BTreeMap<Vec<u8>, u32> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| !skip(e.file_name().as_bytes()))
        .map(|e| e.expect("walk"))
        .filter(|e| !e.file_type().is_symlink())
        .map(|e| {
            let rel = e.path().strip_prefix(root).expect("below root").as_os_str().as_bytes().to_vec();
            (rel, e.metadata().expect("stat").permissions().mode() & 0o7777)
        })
        .collect()
}

/// Asserts every file and directory of `a` has the same permission bits in `b`.
pub fn assert_same_modes(a: &Path, b: &Path, skip: &dyn Fn(&[u8]) -> bool) {
    let (ma, mb) = (modes(a, skip), modes(b, skip));
    let problems: Vec<String> = ma
        .iter()
        .filter(|(k, v)| mb.get(*k) != Some(*v))
        .map(|(k, v)| {
            format!("{}: {v:04o} became {:?}", k.escape_ascii(), mb.get(k).map(|m| format!("{m:04o}")))
        })
        .collect();
    assert!(
        problems.is_empty(),
        "permission bits differ ({} vs {}):\n{}",
        a.display(),
        b.display(),
        problems.join("\n")
    );
    assert!(ma.values().any(|m| *m & 0o077 == 0), "no private file or folder: the test proves little");
}
