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
                crate::output::display_path(path)
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
            short: crate::output::short_id(&id).to_string(),
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
    let mut here = root;
    for (depth, name) in names.iter().enumerate() {
        if let Some(p) = prev {
            if chain.get(depth) == Some(&here) {
                return Ok(p);
            }
        }
        chain.truncate(depth);
        chain.push(here);
        let tree = repo.repo.find_tree(here).with_context(|| {
            format!("cannot read tree {here} from the backup repo; run `opus-mirror check`")
        })?;
        let Some(e) = tree.get_name_bytes(name) else { return Ok(None) };
        let mode = u32::try_from(e.filemode()).unwrap_or(0);
        if !matches!(mode, MODE_FILE | MODE_EXEC | MODE_LINK | MODE_TREE | MODE_GITLINK) {
            anyhow::bail!(
                "tree {here} in the backup repo has an invalid mode {mode:o} for `{}`; run `opus-mirror check`",
                crate::output::display_path(name)
            );
        }
        if depth + 1 == names.len() {
            return Ok(Some(Found { mode, oid: e.id() }));
        }
        if mode != MODE_TREE {
            return Ok(None);
        }
        here = e.id();
    }
    unreachable!("the path has at least one name")
}
