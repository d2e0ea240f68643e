//! Reading the snapshot history back: the first-parent chain of the snapshot branch, with
//! the counts each commit message records, and resolving what a user names (`--snapshot`
//! id prefix, `latest`, `--at` a time).

use anyhow::{Context, Result};
use chrono::{DateTime, TimeZone, Utc};
use git2::Oid;
use serde::Serialize;

use crate::exit::UserError;
use crate::git::BackupRepo;

/// One snapshot as listed by `opus-mirror snapshots`.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub id: String,
    pub short: String,
    pub time: String,
    #[serde(skip)]
    pub at: DateTime<Utc>,
    pub tree: String,
    pub files: u64,
    pub bytes: u64,
    pub added: u64,
    pub modified: u64,
    pub deleted: u64,
    pub skipped: u64,
    /// Taken by a restore in place before it wrote (not one of the user's own).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub safety: bool,
}

/// The trailers naming what a git source had staged: paths added or changed in the index,
/// and paths removed from it.
pub const STAGED: &str = "Staged";
pub const STAGED_DELETE: &str = "Staged-Delete";
/// The trailer naming a tracked secret-looking file the snapshot left out.
pub const LEFT_OUT: &str = "Left-Out";

/// What a snapshot recorded as staged: (added or changed, removed). Paths come from a backup:
/// the caller hands them to git as literal pathspecs, which git confines to the work tree.
pub(crate) fn staged_of(repo: &BackupRepo, info: &Info) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let Ok(c) = repo.repo.find_commit(oid(info)) else { return Default::default() };
    staged_in(c.message_raw_bytes())
}

/// What a snapshot message records as staged: (added or changed, removed).
pub(crate) fn staged_in(msg: &[u8]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    (trailer_paths(msg, STAGED), trailer_paths(msg, STAGED_DELETE))
}

/// The paths of every `KEY: PATH` line of a snapshot message (git-quoted where needed);
/// lines that do not unquote are ignored: the message comes from a backup.
pub(crate) fn trailer_paths(msg: &[u8], key: &str) -> Vec<Vec<u8>> {
    let prefix = format!("{key}: ");
    String::from_utf8_lossy(msg)
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(super::modes::unquote)
        .collect()
}

/// The tracked secret-looking files a snapshot left out (its `Left-Out:` lines): a restore by
/// stock git checks them out from the branch, so they are there beside the snapshot's files.
pub(crate) fn left_out(msg: &[u8]) -> Vec<Vec<u8>> {
    trailer_paths(msg, LEFT_OUT)
}

/// The trailer with the commit and branch a git source's HEAD was on.
pub const HEAD: &str = "Head";

/// The commit and branch a snapshot recorded as the source's HEAD (None for a plain folder,
/// an older snapshot, or a record that does not parse).
pub(crate) fn head_of(repo: &BackupRepo, info: &Info) -> Option<(Oid, String)> {
    let c = repo.repo.find_commit(oid(info)).ok()?;
    let msg = String::from_utf8_lossy(c.message_raw_bytes()).into_owned();
    let rest = msg.lines().find_map(|l| l.strip_prefix(HEAD).and_then(|r| r.strip_prefix(": ")))?;
    let (id, name) = rest.split_once(' ')?;
    let branch = name.strip_prefix("refs/heads/")?;
    // The name comes from a backup: only what git accepts as a branch.
    git2::Branch::name_is_valid(branch).ok().filter(|v| *v)?;
    Some((Oid::from_str(id).ok()?, branch.to_string()))
}

/// The trailer that marks why a snapshot was taken, and its value for safety snapshots.
pub const PURPOSE: &str = "Purpose";
pub const SAFETY: &str = "safety (taken before a restore in place)";

fn trailer(msg: &str, key: &str) -> u64 {
    msg.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(": ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The number of files a snapshot commit records.
pub(crate) fn file_count(repo: &BackupRepo, commit: Oid) -> Result<u64> {
    let c = repo.repo.find_commit(commit)?;
    Ok(trailer(c.message_raw().unwrap_or_default(), "Files"))
}

/// Every snapshot on `branch`, newest first.
pub fn list(repo: &BackupRepo, branch: &str) -> Result<Vec<Info>> {
    list_newest(repo, branch, usize::MAX)
}

/// The newest `limit` snapshots on `branch`, newest first: what reads only the recent end
/// of a long history (`status`, the health note) costs that much, not the whole chain.
pub(crate) fn list_newest(repo: &BackupRepo, branch: &str, limit: usize) -> Result<Vec<Info>> {
    let mut out = Vec::new();
    let mut next = repo.tip(branch)?;
    while let Some(id) = next.filter(|_| out.len() < limit) {
        let c = repo
            .repo
            .find_commit(id)
            .with_context(|| format!("snapshot {id} is missing from {}", repo.path.display()))?;
        let msg = c.message_raw().unwrap_or_default();
        let at = Utc.timestamp_opt(c.time().seconds(), 0).single().unwrap_or_default();
        out.push(Info {
            id: id.to_string(),
            short: crate::human::short_id(&id.to_string()).to_string(),
            time: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            at,
            tree: c.tree_id().to_string(),
            files: trailer(msg, "Files"),
            bytes: trailer(msg, "Bytes"),
            added: trailer(msg, "Added"),
            modified: trailer(msg, "Modified"),
            deleted: trailer(msg, "Deleted"),
            skipped: trailer(msg, "Skipped"),
            safety: msg
                .lines()
                .any(|l| l.strip_prefix(PURPOSE).and_then(|r| r.strip_prefix(": ")) == Some(SAFETY)),
        });
        next = c.parent_ids().next();
    }
    Ok(out)
}

/// What the user asked for by `--snapshot` / `--at`.
#[derive(Debug, Clone)]
pub enum Pick {
    Latest,
    Id(String),
    At(DateTime<Utc>),
}

/// Resolves a pick to a snapshot of `branch`; errors say what exists.
pub fn resolve(repo: &BackupRepo, branch: &str, source: &str, pick: &Pick) -> Result<Info> {
    let all = list(repo, branch)?;
    if all.is_empty() {
        return Err(UserError::usage(format!(
            "source `{source}` has no snapshots yet\n  fix: run `opus-mirror snapshot --source {source}` first"
        ))
        .into());
    }
    // `latest` and `--at` mean the user's own snapshots: a safety snapshot is picked only by
    // its id (or when there is nothing else).
    let own: Vec<&Info> = all.iter().filter(|i| !i.safety).collect();
    let own = if own.is_empty() { all.iter().collect() } else { own };
    let found = match pick {
        Pick::Latest => own.first().map(|i| (*i).clone()),
        Pick::Id(s) if s == "latest" => own.first().map(|i| (*i).clone()),
        Pick::Id(s) => {
            let s = s.to_ascii_lowercase();
            let hits: Vec<_> = all.iter().filter(|i| i.id.starts_with(&s)).collect();
            if hits.len() > 1 {
                return Err(UserError::usage(format!(
                    "snapshot id `{s}` is ambiguous\n  fix: give more characters of the id"
                ))
                .into());
            }
            hits.first().map(|i| (*i).clone())
        }
        Pick::At(t) => own.iter().find(|i| i.at <= *t).map(|i| (*i).clone()),
    };
    found.ok_or_else(|| {
        let what = match pick {
            Pick::At(t) => format!("no snapshot of `{source}` is as old as {}", t.to_rfc3339()),
            Pick::Id(s) => format!("source `{source}` has no snapshot `{s}`"),
            Pick::Latest => unreachable!("the list is not empty"),
        };
        UserError::usage(format!("{what}\n  fix: `opus-mirror snapshots --source {source}` lists them"))
            .into()
    })
}

/// The permission bits a snapshot recorded (None for one taken before they were recorded).
pub fn modes(repo: &BackupRepo, info: &Info) -> Result<Option<super::modes::Modes>> {
    let c = repo.repo.find_commit(oid(info))?;
    Ok(super::modes::Modes::parse(c.message_raw_bytes()))
}

/// The id of a snapshot as a git object id.
pub fn oid(info: &Info) -> Oid {
    Oid::from_str(&info.id).expect("ids in the list come from git")
}
