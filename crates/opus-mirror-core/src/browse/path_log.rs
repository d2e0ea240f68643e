//! `log PATH`: every version of one path across the snapshot history, newest first, listing
//! only the snapshots where it changed (added, modified, deleted, or its permission bits).
//!
//! Fast on a long history of a large vault: it walks the first-parent chain and looks the path
//! up tree by tree, and a commit whose tree (or whose subtree on the way to the path) is the
//! one the newer commit had is answered without reading anything below it. Only the commit
//! itself is parsed each time (for its time and its recorded permission bits).
//!
//! Unlike `ls`, `cat` and `find`, it does not validate every entry of each tree it passes
//! through (a folder of 1 400 notes that changes in most of 1 000 snapshots made that the
//! whole cost): it looks up only the names of the path the user typed, each checked as a
//! tree name must be (no `..`, no `.git`), with libgit2's tree lookup; what it reports is the
//! mode, id and size of that one entry, and it writes nothing.

use anyhow::{Context, Result};
use chrono::{TimeZone, Utc};
use git2::Oid;
use serde::Serialize;

use super::ls;
use super::trees::{Found, Trees};
use crate::exit::UserError;
use crate::git::fsck;
use crate::git::objects::{MODE_EXEC, MODE_FILE, MODE_GITLINK, MODE_LINK, MODE_TREE};
use crate::git::BackupRepo;
use crate::snapshot::history::{PURPOSE, SAFETY};
use crate::snapshot::modes::Modes;

/// How a path changed in one snapshot, against the snapshot before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Modified,
    Deleted,
    /// Same content, other permission bits (or executable bit).
    Mode,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Modified => "modified",
            Change::Deleted => "deleted",
            Change::Mode => "mode",
        }
    }
}

/// One version of the path: the snapshot where it changed, and what it was there.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub snapshot: String,
    pub short: String,
    pub time: String,
    pub change: Change,
    /// What the path is in this snapshot (none when deleted).
    pub kind: Option<&'static str>,
    pub size: Option<u64>,
    /// Permission bits in octal, when the snapshot recorded them.
    pub mode: Option<String>,
    /// The object id of this version (none when deleted).
    pub id: Option<String>,
    /// A safety snapshot (taken before a restore in place).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub safety: bool,
}

/// The path in one snapshot.
struct State {
    commit: Oid,
    time: i64,
    safety: bool,
    found: Option<Found>,
    bits: Option<u32>,
}

/// Every change of `path` on the first-parent chain from `tip`, newest first. `path` is
/// normalised (see [`super::trees::normalise`]) and not empty.
pub fn versions(repo: &BackupRepo, trees: &mut Trees, tip: Oid, path: &[u8]) -> Result<Vec<Version>> {
    let names: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
    for name in &names {
        fsck::verify_name(name).map_err(|problem| {
            UserError::usage(format!(
                "`{}` cannot be in a snapshot: {problem}\n  fix: give the path from the source root, e.g. `notes/plan.md`",
                crate::human::display_path(path)
            ))
        })?;
    }
    let mut states: Vec<State> = Vec::new();
    // The trees on the way to the path in the newer snapshot: root first.
    let mut chain: Vec<Oid> = Vec::new();
    let safety_line = format!("{PURPOSE}: {SAFETY}");
    let mut next = Some(tip);
    while let Some(id) = next {
        let c = repo
            .repo
            .find_commit(id)
            .with_context(|| format!("snapshot {id} is missing from {}", repo.path.display()))?;
        let prev = states.last().map(|s| s.found);
        let found = locate(repo, c.tree_id(), &names, &mut chain, prev)?;
        let msg = c.message_raw_bytes();
        let bits = match found {
            Some(f) => ls::bits(Modes::parse(msg).as_ref(), path, f.mode),
            None => None,
        };
        let safety = String::from_utf8_lossy(msg).lines().any(|l| l == safety_line);
        states.push(State { commit: id, time: c.time().seconds(), safety, found, bits });
        next = c.parent_ids().next();
    }
    let mut out = Vec::new();
    for (i, s) in states.iter().enumerate() {
        let older = states.get(i + 1);
        let before = older.and_then(|o| o.found);
        let change = match (before, s.found) {
            (None, None) => continue,
            (None, Some(_)) => Change::Added,
            (Some(_), None) => Change::Deleted,
            (Some(a), Some(b)) if a.oid != b.oid || (a.mode == MODE_TREE) != (b.mode == MODE_TREE) => {
                Change::Modified
            }
            (Some(a), Some(b)) if a.mode != b.mode || older.and_then(|o| o.bits) != s.bits => Change::Mode,
            (Some(_), Some(_)) => continue,
        };
        let at = Utc.timestamp_opt(s.time, 0).single().unwrap_or_default();
        let id = s.commit.to_string();
        out.push(Version {
            short: crate::human::short_id(&id).to_string(),
            snapshot: id,
            time: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            change,
            kind: s.found.map(|f| ls::kind(f.mode)),
            size: match s.found {
                Some(f) => ls::size(trees, f)?,
                None => None,
            },
            mode: s.bits.map(|b| format!("{b:04o}")),
            id: s.found.map(|f| f.oid.to_string()),
            safety: s.safety,
        });
    }
    Ok(out)
}

/// Finds the path below `root`, reusing the newer snapshot's answer (`prev`) as soon as a tree
/// on the way is the one it had (`chain`, updated to this snapshot's trees).
fn locate(
    repo: &BackupRepo,
    root: Oid,
    names: &[&[u8]],
    chain: &mut Vec<Oid>,
    prev: Option<Option<Found>>,
) -> Result<Option<Found>> {
    // Deeper entries of `chain` are the newer snapshot's until this walk reaches them (they
    // are compared first); a walk that stops early drops those below where it stopped.
    let mut here = root;
    for (depth, name) in names.iter().enumerate() {
        if let Some(p) = prev {
            if chain.get(depth) == Some(&here) {
                return Ok(p);
            }
        }
        if depth < chain.len() {
            chain[depth] = here;
        } else {
            chain.push(here);
        }
        let stop = |chain: &mut Vec<Oid>, found: Option<Found>| {
            chain.truncate(depth + 1);
            Ok(found)
        };
        let tree = repo.repo.find_tree(here).with_context(|| {
            format!("cannot read tree {here} from the backup repo; run `opus-mirror check`")
        })?;
        let Some(e) = tree.get_name_bytes(name) else { return stop(chain, None) };
        let mode = u32::try_from(e.filemode()).unwrap_or(0);
        if !matches!(mode, MODE_FILE | MODE_EXEC | MODE_LINK | MODE_TREE | MODE_GITLINK) {
            anyhow::bail!(
                "tree {here} in the backup repo has an invalid mode {mode:o} for `{}`; run `opus-mirror check`",
                crate::human::display_path(name)
            );
        }
        if depth + 1 == names.len() {
            return stop(chain, Some(Found { mode, oid: e.id() }));
        }
        if mode != MODE_TREE {
            return stop(chain, None);
        }
        here = e.id();
    }
    unreachable!("the path has at least one name")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commits a chain of trees (oldest first), each given as (folder `a` holds `x` = blob?,
    /// `z` = blob); returns the tip and the commit ids.
    fn history(repo: &git2::Repository, steps: &[(Option<&[u8]>, &[u8])]) -> (Oid, Vec<Oid>) {
        let sig = git2::Signature::new("t", "t@t", &git2::Time::new(1_700_000_000, 0)).expect("signature");
        let mut ids = Vec::new();
        for (x, z) in steps {
            let mut root = repo.treebuilder(None).expect("builder");
            if let Some(x) = x {
                let mut a = repo.treebuilder(None).expect("builder");
                a.insert("x", repo.blob(x).expect("blob"), 0o100644).expect("insert");
                root.insert("a", a.write().expect("tree"), 0o040000).expect("insert");
            }
            root.insert("z", repo.blob(z).expect("blob"), 0o100644).expect("insert");
            let tree = repo.find_tree(root.write().expect("tree")).expect("tree");
            let parents: Vec<git2::Commit> =
                ids.last().map(|p| repo.find_commit(*p).expect("parent")).into_iter().collect();
            let refs: Vec<&git2::Commit> = parents.iter().collect();
            ids.push(repo.commit(None, &sig, &sig, "snapshot", &tree, &refs).expect("commit"));
        }
        (*ids.last().expect("steps"), ids)
    }

    #[test]
    fn skipped_subtrees_and_early_stops_give_exactly_the_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = git2::Repository::init_bare(dir.path()).expect("repo");
        let (one, two, three): (&[u8], &[u8], &[u8]) = (b"1", b"2", b"3");
        let (tip, ids) = history(
            &repo,
            &[
                (Some(one), one),   // 0: a/x added
                (Some(one), two),   // 1: only z changes: `a` is the same subtree
                (Some(two), two),   // 2: a/x modified
                (None, two),        // 3: a gone
                (None, three),      // 4: still gone
                (Some(two), three), // 5: back, the very subtree of 2
            ],
        );
        let backup = BackupRepo {
            repo: git2::Repository::open_bare(dir.path()).expect("repo"),
            path: dir.path().into(),
        };
        let mut trees = Trees::new(backup.repo.odb().expect("odb"));
        let got: Vec<(String, Change)> = versions(&backup, &mut trees, tip, b"a/x")
            .expect("versions")
            .into_iter()
            .map(|v| (v.snapshot, v.change))
            .collect();
        let id = |i: usize| ids[i].to_string();
        assert_eq!(
            got,
            vec![
                (id(5), Change::Added),
                (id(3), Change::Deleted),
                (id(2), Change::Modified),
                (id(0), Change::Added)
            ]
        );
    }
}
