//! `verify`: is everything in the user's repository safe on its remote? For every local
//! branch and tag, compare with what the remote *really* has (listed live, or from the
//! remote-tracking refs with `--offline`), and look at the working tree. The classification
//! is a pure function; gathering is the only I/O.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result};
use git2::{BranchType, Oid, Repository, StatusOptions};
use serde::Serialize;

use crate::config::{mask_url, Network};
use crate::git::remote::{self, RemoteError, RemoteRef};

/// Where one local branch stands against its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BranchState {
    InSync,
    /// Local commits the remote does not have.
    Ahead,
    /// Remote commits not merged locally (nothing local at risk).
    Behind,
    Diverged,
    /// Never pushed: no upstream configured.
    NoUpstream,
    /// The upstream branch no longer exists on the remote.
    UpstreamGone,
    /// The remote's tip is a commit we do not have: it has commits you do not have, and
    /// whether yours are on it cannot be known without fetching.
    RemoteUnknown,
}

impl BranchState {
    /// Whether work could be lost if this disk died now.
    pub fn at_risk(self) -> bool {
        matches!(
            self,
            BranchState::Ahead
                | BranchState::Diverged
                | BranchState::NoUpstream
                | BranchState::UpstreamGone
                | BranchState::RemoteUnknown
        )
    }
}

/// Classifies a branch. `counts` is (ahead, behind) when the remote tip is known locally.
pub fn classify(
    has_upstream: bool,
    remote_tip: Option<Oid>,
    local_tip: Oid,
    counts: Option<(usize, usize)>,
) -> BranchState {
    match (has_upstream, remote_tip, counts) {
        (false, _, _) => BranchState::NoUpstream,
        (true, None, _) => BranchState::UpstreamGone,
        (true, Some(r), _) if r == local_tip => BranchState::InSync,
        (true, Some(_), None) => BranchState::RemoteUnknown,
        (true, Some(_), Some((0, 0))) => BranchState::InSync,
        (true, Some(_), Some((_, 0))) => BranchState::Ahead,
        (true, Some(_), Some((0, _))) => BranchState::Behind,
        (true, Some(_), Some(_)) => BranchState::Diverged,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Commit {
    pub id: String,
    pub subject: String,
    /// Commit time (Unix seconds).
    #[serde(skip)]
    pub time: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BranchReport {
    pub name: String,
    pub upstream: Option<String>,
    pub state: BranchState,
    pub ahead: Option<usize>,
    pub behind: Option<usize>,
    /// The commits the remote does not have (newest first, at most 20).
    pub unpushed: Vec<Commit>,
    /// For a branch at risk: when the work at risk began (the commit time of the oldest
    /// unpushed commit, else of the tip); `run` gives it a grace period.
    #[serde(serialize_with = "rfc3339", skip_serializing_if = "Option::is_none")]
    pub at_risk_since: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TagReport {
    pub name: String,
    /// "unpushed" (the remote lacks it) or "differs" (the remote's points elsewhere).
    pub state: &'static str,
    /// The time of the commit it points at.
    #[serde(serialize_with = "rfc3339", skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkTree {
    pub modified: usize,
    pub staged: usize,
    pub untracked: usize,
    pub stashes: usize,
    pub detached_head: bool,
    /// A merge, rebase, cherry-pick... left in progress.
    pub in_progress: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemoteCheck {
    pub name: String,
    pub url: String,
    /// "live" (listed from the server) or "offline" (remote-tracking refs).
    pub source: &'static str,
    pub error: Option<String>,
}

/// The whole answer for one source.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    pub safe: bool,
    pub reasons: Vec<String>,
    pub remotes: Vec<RemoteCheck>,
    pub branches: Vec<BranchReport>,
    pub remote_only: Vec<String>,
    pub tags: Vec<TagReport>,
    pub worktree: WorkTree,
    #[serde(skip)]
    pub unreachable: bool,
}

/// The refs one remote has, by full name.
type RefMap = BTreeMap<String, Oid>;

/// Lists a remote's refs: live, or from `refs/remotes/NAME/*` when offline.
fn remote_refs(repo: &Repository, net: &Network, name: &str, offline: bool) -> Result<RefMap, RemoteError> {
    if offline {
        let mut out = RefMap::new();
        let prefix = format!("refs/remotes/{name}/");
        if let Ok(refs) = repo.references_glob(&format!("{prefix}*")) {
            for r in refs.flatten() {
                if let (Ok(n), Some(o)) = (r.name(), r.target()) {
                    if !n.ends_with("/HEAD") {
                        out.insert(format!("refs/heads/{}", &n[prefix.len()..]), o);
                    }
                }
            }
        }
        return Ok(out);
    }
    let url = repo.find_remote(name).ok().and_then(|r| r.url().ok().map(str::to_string)).unwrap_or_default();
    let url = remote::resolve_url(repo, &url);
    Ok(remote::ls_remote(net, repo, &url)?.into_iter().map(|RemoteRef { name, oid }| (name, oid)).collect())
}

/// Verifies the git work tree at `path`.
pub fn verify(source: &str, path: &Path, net: &Network, offline: bool) -> Result<Report> {
    let mut repo =
        Repository::open(path).with_context(|| format!("{} is not a git repository", path.display()))?;
    let mut remotes = Vec::new();
    let mut listed: HashMap<String, RefMap> = HashMap::new();
    let mut unreachable = false;
    let names: Vec<String> = repo.remotes()?.iter().flatten().flatten().map(str::to_string).collect();
    for name in &names {
        let url = repo.find_remote(name)?.url().map(mask_url).unwrap_or_default();
        match remote_refs(&repo, net, name, offline) {
            Ok(refs) => {
                listed.insert(name.clone(), refs);
                remotes.push(RemoteCheck {
                    name: name.clone(),
                    url,
                    source: if offline { "offline" } else { "live" },
                    error: None,
                });
            }
            Err(e) => {
                unreachable = true;
                remotes.push(RemoteCheck {
                    name: name.clone(),
                    url,
                    source: "live",
                    error: Some(e.to_string()),
                });
            }
        }
    }

    let mut branches = Vec::new();
    let mut tracked: HashMap<String, Vec<String>> = HashMap::new();
    for b in repo.branches(Some(BranchType::Local))? {
        let (b, _) = b?;
        let Some(name) = b.name()?.map(str::to_string) else { continue };
        let Some(local) = b.get().target() else { continue };
        let refname = format!("refs/heads/{name}");
        let remote_name =
            repo.branch_upstream_remote(&refname).ok().and_then(|r| r.as_str().ok().map(str::to_string));
        let merge =
            repo.branch_upstream_merge(&refname).ok().and_then(|r| r.as_str().ok().map(str::to_string));
        let (has_upstream, upstream, remote_tip, skip) = match (&remote_name, &merge) {
            (Some(r), Some(m)) => {
                tracked.entry(r.clone()).or_default().push(m.clone());
                match listed.get(r) {
                    Some(refs) => (
                        true,
                        Some(format!("{r}/{}", m.trim_start_matches("refs/heads/"))),
                        refs.get(m).copied(),
                        false,
                    ),
                    None => (true, Some(format!("{r}/{}", m.trim_start_matches("refs/heads/"))), None, true),
                }
            }
            _ => (false, None, None, false),
        };
        if skip {
            continue; // its remote could not be listed: reported as unreachable
        }
        let counts = remote_tip
            .filter(|r| repo.find_commit(*r).is_ok())
            .and_then(|r| repo.graph_ahead_behind(local, r).ok());
        let state = classify(has_upstream, remote_tip, local, counts);
        let unpushed =
            if matches!(state, BranchState::Ahead | BranchState::Diverged | BranchState::NoUpstream) {
                let hide: Vec<Oid> = if state == BranchState::NoUpstream {
                    // What any remote really has now (not stale tracking refs) is not at risk.
                    listed
                        .values()
                        .flat_map(|m| m.values().copied())
                        .filter(|o| repo.find_commit(*o).is_ok())
                        .collect()
                } else {
                    remote_tip.filter(|_| counts.is_some()).into_iter().collect()
                };
                unpushed_commits(&repo, local, &hide)?
            } else {
                Vec::new()
            };
        let at_risk_since = state.at_risk().then(|| {
            // The oldest listed (at most 20 are: past that, the 20th is old enough to judge by).
            let oldest = unpushed.iter().map(|c| c.time).min();
            oldest.or_else(|| time_of(&repo, local))
        });
        branches.push(BranchReport {
            name,
            upstream,
            state,
            ahead: counts.map(|c| c.0),
            behind: counts.map(|c| c.1),
            unpushed,
            at_risk_since: at_risk_since.flatten(),
        });
    }

    let mut remote_only = Vec::new();
    for (r, refs) in &listed {
        for name in refs.keys().filter(|n| n.starts_with("refs/heads/")) {
            if !tracked.get(r).is_some_and(|t| t.contains(name)) && repo.find_reference(name).is_err() {
                remote_only.push(format!("{r}/{}", name.trim_start_matches("refs/heads/")));
            }
        }
    }
    remote_only.sort();

    // Tags are compared with the remote the branches push to most: origin, else the first.
    let tag_remote = names.iter().find(|n| *n == "origin").or(names.first());
    let mut tags = Vec::new();
    if let Some(refs) = tag_remote.and_then(|r| listed.get(r)) {
        if !offline {
            for name in repo.tag_names(None)?.iter().flatten().flatten() {
                let full = format!("refs/tags/{name}");
                let local = repo.refname_to_id(&full)?;
                match refs.get(&full) {
                    None => tags.push(TagReport {
                        name: name.to_string(),
                        state: "unpushed",
                        since: time_of(&repo, local),
                    }),
                    Some(o) if *o != local => tags.push(TagReport {
                        name: name.to_string(),
                        state: "differs",
                        since: time_of(&repo, local),
                    }),
                    _ => {}
                }
            }
        }
    }

    let worktree = work_tree(&mut repo)?;
    let mut reasons = Vec::new();
    for b in &branches {
        if b.state.at_risk() {
            reasons.push(format!("branch {}: {}", b.name, describe(b)));
        }
    }
    for t in &tags {
        reasons.push(format!("tag {}: {}", t.name, t.state));
    }
    if worktree.modified + worktree.staged + worktree.untracked > 0 {
        reasons.push(format!(
            "working tree: {} modified, {} staged, {} untracked",
            worktree.modified, worktree.staged, worktree.untracked
        ));
    }
    if worktree.stashes > 0 {
        reasons.push(format!("{} stash(es): stashes are never pushed", worktree.stashes));
    }
    if let Some(op) = &worktree.in_progress {
        reasons.push(format!("a {op} is in progress"));
    }
    if worktree.detached_head {
        reasons.push("HEAD is detached: commits made there belong to no branch".into());
    }
    Ok(Report {
        source: source.to_string(),
        safe: reasons.is_empty() && !unreachable,
        reasons,
        remotes,
        branches,
        remote_only,
        tags,
        worktree,
        unreachable,
    })
}

/// How `run` reads a verify report: (warnings, notes). After a session the snapshot already
/// holds every uncommitted and untracked file, so those are notes; unpushed commits and tags
/// become warnings only once older than `grace` (until then the snapshot and the mirror hold
/// them), and are always listed. Stashes and a detached HEAD stay warnings: no backup holds
/// those commits.
pub(crate) fn for_run(
    r: &Report,
    now: chrono::DateTime<chrono::Utc>,
    grace: chrono::Duration,
) -> (Vec<String>, Vec<String>) {
    let (mut warn, mut note) = (Vec::new(), Vec::new());
    let mut judge = |what: String, since: Option<i64>| {
        let age = since.map(|t| now.timestamp().saturating_sub(t));
        match age {
            Some(a) if a <= grace.num_seconds() => note.push(format!(
                "{what}, for {} (within the {} grace)",
                crate::human::human_age(a),
                crate::human::human_duration(grace)
            )),
            Some(a) => warn.push(format!("{what}, for {}", crate::human::human_age(a))),
            None => warn.push(what),
        }
    };
    for b in r.branches.iter().filter(|b| b.state.at_risk()) {
        let commits: Vec<String> =
            b.unpushed.iter().take(3).map(|c| format!("{} {}", c.id, c.subject)).collect();
        let listed = if commits.is_empty() { String::new() } else { format!(" [{}]", commits.join("; ")) };
        judge(format!("branch {}: {}{listed}", b.name, describe(b)), b.at_risk_since);
    }
    for t in &r.tags {
        judge(format!("tag {}: {}", t.name, t.state), t.since);
    }
    let w = &r.worktree;
    if w.modified + w.staged + w.untracked > 0 {
        note.push(format!(
            "working tree: {} modified, {} staged, {} untracked (the snapshot holds them)",
            w.modified, w.staged, w.untracked
        ));
    }
    if w.stashes > 0 {
        warn.push(format!("{} stash(es): stashes are never pushed nor mirrored", w.stashes));
    }
    if let Some(op) = &w.in_progress {
        note.push(format!("a {op} is in progress"));
    }
    if w.detached_head {
        warn.push("HEAD is detached: commits made there belong to no branch".into());
    }
    (warn, note)
}

/// Human words for a branch's state.
pub fn describe(b: &BranchReport) -> String {
    match b.state {
        BranchState::InSync => "in sync".into(),
        BranchState::Ahead => format!("ahead {} (unpushed)", b.ahead.unwrap_or(0)),
        BranchState::Behind => format!("behind {}", b.behind.unwrap_or(0)),
        BranchState::Diverged => {
            format!("diverged: ahead {}, behind {}", b.ahead.unwrap_or(0), b.behind.unwrap_or(0))
        }
        BranchState::NoUpstream => "never pushed (no upstream)".into(),
        BranchState::UpstreamGone => "its upstream branch is gone from the remote".into(),
        BranchState::RemoteUnknown => "the remote has commits you do not have (fetch to compare)".into(),
    }
}

/// Unix seconds as RFC 3339 in JSON.
fn rfc3339<S: serde::Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    let text = t
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    s.serialize_some(&text)
}

/// The commit time of what `oid` points at (a tag peeled to its commit).
fn time_of(repo: &Repository, oid: Oid) -> Option<i64> {
    repo.find_object(oid, None).ok()?.peel_to_commit().ok().map(|c| c.time().seconds())
}

/// The commits of `local` that none of the `hide` tips (what the remote has) contain.
fn unpushed_commits(repo: &Repository, local: Oid, hide: &[Oid]) -> Result<Vec<Commit>> {
    let mut walk = repo.revwalk()?;
    walk.push(local)?;
    for h in hide {
        walk.hide(*h)?;
    }
    let mut out = Vec::new();
    for id in walk.take(20) {
        let id = id?;
        let c = repo.find_commit(id)?;
        out.push(Commit {
            id: crate::human::short_id(&id.to_string()).to_string(),
            subject: c.summary().ok().flatten().unwrap_or("").to_string(),
            time: c.time().seconds(),
        });
    }
    Ok(out)
}

fn work_tree(repo: &mut Repository) -> Result<WorkTree> {
    let mut wt = WorkTree::default();
    if !repo.is_bare() {
        let mut opts = StatusOptions::new();
        opts.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false);
        for s in repo.statuses(Some(&mut opts))?.iter() {
            let st = s.status();
            if st.intersects(
                git2::Status::INDEX_NEW
                    | git2::Status::INDEX_MODIFIED
                    | git2::Status::INDEX_DELETED
                    | git2::Status::INDEX_RENAMED
                    | git2::Status::INDEX_TYPECHANGE,
            ) {
                wt.staged += 1;
            }
            if st.intersects(
                git2::Status::WT_MODIFIED
                    | git2::Status::WT_DELETED
                    | git2::Status::WT_RENAMED
                    | git2::Status::WT_TYPECHANGE,
            ) {
                wt.modified += 1;
            }
            if st.contains(git2::Status::WT_NEW) {
                wt.untracked += 1;
            }
        }
    }
    wt.detached_head = repo.head_detached().unwrap_or(false);
    wt.in_progress = match repo.state() {
        git2::RepositoryState::Clean => None,
        s => Some(format!("{s:?}").to_lowercase()),
    };
    let mut n = 0;
    let _ = repo.stash_foreach(|_, _, _| {
        n += 1;
        true
    });
    wt.stashes = n;
    Ok(wt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_covers_every_state() {
        let a = Oid::from_str("1111111111111111111111111111111111111111").unwrap();
        let b = Oid::from_str("2222222222222222222222222222222222222222").unwrap();
        assert_eq!(classify(false, None, a, None), BranchState::NoUpstream);
        assert_eq!(classify(true, None, a, None), BranchState::UpstreamGone);
        assert_eq!(classify(true, Some(a), a, None), BranchState::InSync);
        assert_eq!(classify(true, Some(b), a, None), BranchState::RemoteUnknown);
        assert_eq!(classify(true, Some(b), a, Some((2, 0))), BranchState::Ahead);
        assert_eq!(classify(true, Some(b), a, Some((0, 3))), BranchState::Behind);
        assert_eq!(classify(true, Some(b), a, Some((1, 1))), BranchState::Diverged);
        assert!(!BranchState::Behind.at_risk() && !BranchState::InSync.at_risk());
        assert!(BranchState::RemoteUnknown.at_risk() && BranchState::NoUpstream.at_risk());
    }
}
