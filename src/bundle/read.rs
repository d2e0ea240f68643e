//! Reading bundles ourselves: the header is parsed, prerequisites are checked, and the pack
//! is streamed into libgit2's indexer with the repository's object database (which resolves
//! the thin packs stock git writes for incremental bundles). Every object is hashed by the
//! indexer and the pack trailer checked, which `git bundle verify` does not do.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;

use anyhow::{bail, Context, Result};
use git2::Repository;

use super::format::Header;

/// Parses a bundle file's header.
pub fn header(path: &Path) -> Result<Header> {
    let mut r = BufReader::new(File::open(path).with_context(|| format!("cannot open {}", path.display()))?);
    let (h, _) =
        Header::read(&mut r).with_context(|| format!("{} is not a readable git bundle", path.display()))?;
    Ok(h)
}

/// Loads the bundle at `path` into `repo`: its objects, then its refs (not `HEAD`).
/// Fails, naming the commit, when a prerequisite is missing.
pub fn unbundle(repo: &Repository, path: &Path) -> Result<Header> {
    let mut r = BufReader::with_capacity(
        1 << 20,
        File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    let (h, _) =
        Header::read(&mut r).with_context(|| format!("{} is not a readable git bundle", path.display()))?;
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
    std::fs::create_dir_all(&pack_dir)?;
    let mut idx = git2::Indexer::new(Some(&odb), &pack_dir, 0o444, true)?;
    io::copy(&mut r, &mut idx)
        .with_context(|| format!("the pack inside {} is damaged or truncated", path.display()))?;
    idx.commit().with_context(|| format!("the pack inside {} is damaged or incomplete", path.display()))?;
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
