//! Reading bundles ourselves: the header is parsed, prerequisites are checked, and the pack
//! is read by our own indexer ([`crate::git::pack::index`]) with the repository's object
//! database (which completes the thin packs stock git writes for incremental bundles). Every
//! object is hashed and the pack trailer checked, which `git bundle verify` does not do. A
//! bundle is untrusted input (whoever can write to a target can plant one): every tree it
//! brings is judged by git's fsck rules before its refs are believed.

use std::collections::HashSet;
use std::io::BufReader;
use std::path::Path;

use anyhow::{bail, Context, Result};
use git2::{ObjectType, Oid, Repository};

use super::format::Header;

/// Parses a bundle file's header.
pub fn header(path: &Path) -> Result<Header> {
    let mut r = BufReader::new(
        crate::safe_fs::open_regular(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    let (h, _) =
        Header::read(&mut r).with_context(|| format!("{} is not a readable git bundle", path.display()))?;
    Ok(h)
}

/// Loads the bundle at `path` into `repo`: its objects, then its refs (not `HEAD`).
/// Fails, naming the commit, when a prerequisite is missing.
pub fn unbundle(repo: &Repository, path: &Path) -> Result<Header> {
    let mut r = BufReader::with_capacity(
        1 << 20,
        crate::safe_fs::open_regular(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    let (h, start) =
        Header::read(&mut r).with_context(|| format!("{} is not a readable git bundle", path.display()))?;
    drop(r);
    let odb = repo.odb()?;
    for (oid, _) in &h.prerequisites {
        if !odb.exists(*oid) {
            bail!(
                "{} needs commit {oid}, which is not here\n  fix: apply the bundles of the chain in order, starting with the full bundle",
                path.display()
            );
        }
    }
    let pack_dir = repo.path().join("objects").join("pack");
    // No connectivity check here: `check_trees`, which every caller runs next, reads every
    // commit and tree from the refs and finds every blob they name.
    let opts =
        crate::git::pack::index::Options { write_to: Some(&pack_dir), odb: Some(&odb), ..Default::default() };
    crate::git::pack::index::index_file(path, start, &opts)
        .with_context(|| format!("the pack inside {} is damaged or incomplete", path.display()))?;
    odb.refresh()?;
    for (name, oid) in &h.refs {
        if name == "HEAD" {
            continue;
        }
        repo.reference(name, *oid, true, "opus-mirror: from bundle")
            .with_context(|| format!("cannot set {name} from {}", path.display()))?;
    }
    Ok(h)
}

/// Checks every tree reachable from `tips` (a bundle's refs) with git's fsck rules
/// ([`crate::git::fsck::check_tree`]): a repository built from a planted bundle must not hold
/// a snapshot with `..`, `/`, `.git` or duplicate names, for our restore or for a stock
/// `git clone` of it. `seen` carries the objects already checked (earlier bundles of a chain),
/// so a chain costs one walk of its history. Every blob a tree names must be here too (the
/// indexer is not asked to check that: see [`unbundle`]). The error is a [`crate::git::fsck::TreeError`]
/// whose path is git's `COMMIT:dir/` spelling (`git show` takes it as it is).
pub fn check_trees(repo: &Repository, tips: &[(String, Oid)], seen: &mut HashSet<Oid>) -> Result<()> {
    let odb = repo.odb()?;
    let mut stack: Vec<(Oid, Option<ObjectType>, String)> =
        tips.iter().map(|(name, oid)| (*oid, None, format!("{name}:"))).collect();
    while let Some((oid, kind, path)) = stack.pop() {
        if kind == Some(ObjectType::Blob) || !seen.insert(oid) {
            continue;
        }
        let obj = odb.read(oid).with_context(|| format!("object {oid} (at {path}) is missing"))?;
        match obj.kind() {
            ObjectType::Tree => {
                let entries = crate::git::fsck::check_tree(obj.data()).map_err(|finding| {
                    crate::git::fsck::TreeError { tree: oid, path: path.clone(), finding }
                })?;
                // Blobs hold no names, but must be here; a submodule's commit is not in the bundle.
                for e in
                    entries.iter().filter(|e| !e.is_tree() && e.mode != crate::git::objects::MODE_GITLINK)
                {
                    if !odb.exists(e.oid) {
                        let shown = crate::human::display_path(&e.name);
                        anyhow::bail!("blob {} (at {path}{shown}) is missing", e.oid);
                    }
                }
                for e in entries.into_iter().filter(|e| e.mode == crate::git::objects::MODE_TREE) {
                    let child = format!("{path}{}/", crate::human::display_path(&e.name));
                    stack.push((e.oid, Some(ObjectType::Tree), child));
                }
            }
            kind @ (ObjectType::Commit | ObjectType::Tag) => {
                let at = if kind == ObjectType::Commit {
                    format!("{}:", crate::human::short_id(&oid.to_string()))
                } else {
                    path.clone()
                };
                for (o, k) in super::write::links(kind, obj.data()) {
                    stack.push((o, k, at.clone()));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::objects::{self, Signature, TreeEntry, MODE_FILE};

    /// The indexer no longer checks connectivity (it held every object in memory to do so):
    /// a tree naming a blob the bundle did not carry must still be refused here.
    #[test]
    fn a_tree_naming_a_missing_blob_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = Repository::init_bare(dir.path()).expect("repo");
        let odb = repo.odb().expect("odb");
        let absent = objects::hash(objects::Kind::Blob, b"never written\n");
        let tree = objects::tree_bytes(&[TreeEntry { name: b"a.md".to_vec(), mode: MODE_FILE, oid: absent }]);
        let tree = odb.write(ObjectType::Tree, &tree).expect("tree");
        let sig = Signature { name: "t".into(), email: "t@localhost".into(), time: 0 };
        let commit =
            odb.write(ObjectType::Commit, &objects::commit_bytes(tree, None, &sig, "s\n")).expect("commit");
        let e = check_trees(&repo, &[("refs/heads/snapshot".into(), commit)], &mut HashSet::new())
            .expect_err("a missing blob is refused");
        assert!(e.to_string().contains(&format!("blob {absent}")) && e.to_string().contains("a.md"), "{e}");
    }
}
