//! The mirror: every ref of the user's repository is brought into the source's backup repo,
//! and the backup repo's refs (code, tags, notes, the snapshot branch, preserved tips) are
//! pushed to a secondary private remote. Nothing that was ever mirrored becomes unreachable:
//! before a ref is moved in a non-fast-forward way or deleted, in the backup repo or on the
//! mirror, its old tip is kept under `refs/opus-mirror/preserved/<UTC time>/...`.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use git2::{Oid, Repository};
use serde::Serialize;

use crate::config::{mask_url, Network, Source};
use crate::exit::UserError;
use crate::git::local_push::{self, NotHere, RefUpdate};
use crate::git::remote::{self, RemoteError};
use crate::git::BackupRepo;

pub use crate::config::PRESERVED;
/// Scratch space for refs being imported from the user's repository.
const INCOMING: &str = "refs/opus-mirror/incoming/";
/// The namespaces mirrored from the user's repository.
const MANAGED: [&str; 3] = ["refs/heads/", "refs/tags/", "refs/notes/"];

/// One ref changed in the backup repo or on the mirror.
#[derive(Debug, Clone, Serialize)]
pub struct RefChange {
    pub refname: String,
    /// created, updated (fast-forward), forced (old tip preserved) or deleted (preserved).
    pub action: &'static str,
    pub old: Option<String>,
    pub new: Option<String>,
    pub preserved_as: Option<String>,
}

/// What `mirror` did for one source.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    pub imported: Vec<RefChange>,
    pub mirror: Option<String>,
    pub pushed: Vec<String>,
    pub mirror_preserved: Vec<String>,
    pub confirmed: bool,
}

/// The time part of preserved ref names (no ':' allowed in ref names).
pub(crate) fn stamp(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%dT%H%M%SZ").to_string()
}

fn refs_under(repo: &Repository, prefixes: &[&str]) -> Result<BTreeMap<String, Oid>> {
    let mut out = BTreeMap::new();
    for p in prefixes {
        for r in repo.references_glob(&format!("{p}*"))? {
            let r = r?;
            if let (Ok(name), Some(oid)) = (r.name(), r.target()) {
                out.insert(name.to_string(), oid);
            }
        }
    }
    Ok(out)
}

/// Keeps `oid` reachable under a preserved name for `refname`; returns that name.
fn preserve(repo: &Repository, refname: &str, oid: Oid, stamp: &str, origin: &str) -> Result<String> {
    let rest = refname.trim_start_matches("refs/");
    let mut n = 1;
    loop {
        let suffix = if n == 1 { String::new() } else { format!("-{n}") };
        let name = format!("{PRESERVED}{stamp}{suffix}/{origin}{rest}");
        match repo.find_reference(&name) {
            Ok(r) if r.target() == Some(oid) => return Ok(name),
            Ok(_) => n += 1,
            Err(_) => {
                repo.reference(&name, oid, false, &format!("opus-mirror: preserve old tip of {refname}"))
                    .with_context(|| format!("cannot create {name}"))?;
                return Ok(name);
            }
        }
    }
}

fn is_ancestor(repo: &Repository, old: Oid, new: Oid) -> bool {
    old == new || repo.graph_descendant_of(new, old).unwrap_or(false)
}

/// Brings the refs of the user's repository into the backup repo.
pub fn import(backup: &BackupRepo, source: &Source, now: DateTime<Utc>) -> Result<Vec<RefChange>> {
    let user = Repository::open(&source.path)
        .with_context(|| format!("{} is not a git repository", source.path.display()))?;
    let snapshot_ref = BackupRepo::branch_ref(&source.snapshot_branch);
    if user.find_reference(&snapshot_ref).is_ok() {
        return Err(UserError::usage(format!(
            "the repository {} has a branch named `{}`, which is the backup repo's snapshot branch\n  fix: set `snapshot_branch = \"opus-snapshot\"` (or another unused name) for source `{}`",
            source.path.display(),
            source.snapshot_branch,
            source.name
        ))
        .into());
    }
    let repo = &backup.repo;
    for (name, _) in refs_under(repo, &[INCOMING])? {
        repo.find_reference(&name)?.delete()?;
    }
    let url = source.path.canonicalize()?.display().to_string();
    let specs: Vec<String> =
        MANAGED.iter().map(|p| format!("+{p}*:{INCOMING}{}*", p.trim_start_matches("refs/"))).collect();
    remote::fetch(&Network::default(), repo, &url, &specs)
        .with_context(|| format!("cannot read the refs of {}", source.path.display()))?;
    let incoming: BTreeMap<String, Oid> = refs_under(repo, &[INCOMING])?
        .into_iter()
        .map(|(n, o)| (format!("refs/{}", &n[INCOMING.len()..]), o))
        .collect();
    let mut current = refs_under(repo, &MANAGED)?;
    current.remove(&snapshot_ref);

    let stamp = stamp(now);
    let mut changes = Vec::new();
    let mut names: Vec<&String> = incoming.keys().chain(current.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (old, new) = (current.get(name).copied(), incoming.get(name).copied());
        let change = |action, preserved_as| RefChange {
            refname: name.clone(),
            action,
            old: old.map(|o| o.to_string()),
            new: new.map(|o| o.to_string()),
            preserved_as,
        };
        match (old, new) {
            (Some(o), Some(n)) if o == n => {}
            (None, Some(n)) => {
                repo.reference(name, n, false, "opus-mirror: import")?;
                changes.push(change("created", None));
            }
            (Some(o), Some(n)) if is_ancestor(repo, o, n) => {
                repo.reference_matching(name, n, true, o, "opus-mirror: import (fast-forward)")?;
                changes.push(change("updated", None));
            }
            (Some(o), Some(n)) => {
                let kept = preserve(repo, name, o, &stamp, "")?;
                repo.reference_matching(
                    name,
                    n,
                    true,
                    o,
                    "opus-mirror: import (rewritten upstream; old tip preserved)",
                )?;
                changes.push(change("forced", Some(kept)));
            }
            (Some(o), None) => {
                let kept = preserve(repo, name, o, &stamp, "")?;
                repo.find_reference(name)?.delete()?;
                changes.push(change("deleted", Some(kept)));
            }
            (None, None) => unreachable!("the name came from one of the two maps"),
        }
    }
    for (name, _) in refs_under(repo, &[INCOMING])? {
        repo.find_reference(&name)?.delete()?;
    }
    // Each import that brings objects adds a pack: keep their number bounded.
    crate::snapshot::maintain::after_snapshot(backup)?;
    Ok(changes)
}

/// Pushes every ref of the backup repo to the mirror, preserving on the mirror anything it
/// would lose, then lists the mirror again to confirm each ref.
pub fn push(
    backup: &BackupRepo,
    source: &Source,
    url: &str,
    net: &Network,
    now: DateTime<Utc>,
) -> Result<(Vec<String>, Vec<String>)> {
    let repo = &backup.repo;
    // Only the kinds of refs the source sends (`mirror_refs`); the others are neither pushed
    // nor deleted nor rescued on the mirror: left alone.
    let sent = |name: &str| source.mirror_refs.takes(name, &source.snapshot_branch);
    if let Some(dir) = remote::local_git_dir(&remote::resolve_url(repo, url)) {
        let locks = crate::heal::stale_mirror_locks(&dir);
        if !locks.is_empty() {
            let detail = crate::heal::mirror_lock_message(&mask_url(url), &locks);
            return Err(RemoteError::Locked { url: mask_url(url), detail }.into());
        }
    }
    let remote_refs: BTreeMap<String, Oid> = remote::ls_remote(net, repo, url)?
        .into_iter()
        .filter(|r| r.name.starts_with("refs/"))
        .map(|r| (r.name, r.oid))
        .collect();
    let mut local = refs_under(repo, &[MANAGED[0], MANAGED[1], MANAGED[2], PRESERVED, crate::setup::REF])?;
    local.retain(|n, _| sent(n));
    let stamp = stamp(now);

    // Tips the mirror has that this push would overwrite or delete, and that nothing we
    // push keeps reachable: fetch them into preserved refs first.
    let preserved_tips: Vec<Oid> =
        local.iter().filter(|(n, _)| n.starts_with(PRESERVED)).map(|(_, o)| *o).collect();
    let mut rescue = Vec::new();
    for (name, moid) in &remote_refs {
        if name.starts_with(PRESERVED) || !MANAGED.iter().any(|p| name.starts_with(p)) || !sent(name) {
            continue;
        }
        let safe = match local.get(name) {
            Some(l) if l == moid => true,
            Some(l) => repo.find_commit(*moid).is_ok() && is_ancestor(repo, *moid, *l),
            None => false,
        } || preserved_tips.contains(moid);
        if !safe {
            let target = format!("{PRESERVED}{stamp}/mirror/{}", name.trim_start_matches("refs/"));
            rescue.push((name.clone(), target));
        }
    }
    let specs: Vec<String> = rescue.iter().map(|(n, t)| format!("+{n}:{t}")).collect();
    remote::fetch(net, repo, url, &specs).context("cannot fetch the mirror's old tips to preserve them")?;
    let mirror_preserved: Vec<String> = rescue.into_iter().map(|(_, t)| t).collect();
    local = refs_under(repo, &[MANAGED[0], MANAGED[1], MANAGED[2], PRESERVED, crate::setup::REF])?;
    local.retain(|n, _| sent(n));

    let mut updates = Vec::new();
    for (name, oid) in &local {
        if remote_refs.get(name) != Some(oid) {
            updates.push(RefUpdate {
                refname: name.clone(),
                old: remote_refs.get(name).copied(),
                new: Some(*oid),
            });
        }
    }
    for (name, oid) in &remote_refs {
        if MANAGED.iter().any(|p| name.starts_with(p)) && !local.contains_key(name) && sent(name) {
            updates.push(RefUpdate { refname: name.clone(), old: Some(*oid), new: None });
        }
    }
    let specs: Vec<String> = updates
        .iter()
        .map(|u| match u.new {
            Some(_) => format!("+{0}:{0}", u.refname),
            None => format!(":{}", u.refname),
        })
        .collect();
    // A kill during a push to a mirror on this machine leaves its lock files there: the record
    // lets the next run tell them from someone else's (see `heal`).
    let dir = remote::local_git_dir(&remote::resolve_url(repo, url));
    let record = dir.as_ref().and_then(|dir| crate::heal::record_push(&backup.path, dir));
    let pushed = match &dir {
        Some(dir) if !updates.is_empty() => {
            let tips: Vec<Oid> = remote_refs.values().copied().collect();
            match local_push::push(repo, dir, &updates, &tips) {
                Ok(Ok(())) => Ok(updates
                    .iter()
                    .map(|u| remote::PushStatus { refname: u.refname.clone(), error: None })
                    .collect()),
                Ok(Err(NotHere(why))) => {
                    tracing::debug!("pushing with git: {why}");
                    remote::push(net, repo, url, &specs).map_err(anyhow::Error::from)
                }
                Err(e) => Err(match e.downcast::<local_push::RefsRefused>() {
                    Ok(r) => remote::locked(url, &r.stderr)
                        .unwrap_or(RemoteError::Rejected {
                            url: mask_url(url),
                            detail: format!("the ref update: {}", r.stderr),
                        })
                        .into(),
                    Err(e) => e,
                }),
            }
        }
        _ => remote::push(net, repo, url, &specs).map_err(anyhow::Error::from),
    };
    if let Some(r) = record {
        r.finished(pushed.is_ok());
    }
    let statuses = pushed?;
    let refused: Vec<String> =
        statuses.iter().filter_map(|s| s.error.as_ref().map(|e| format!("{} ({e})", s.refname))).collect();
    if !refused.is_empty() {
        return Err(RemoteError::Rejected {
            url: mask_url(url),
            detail: format!("these refs: {}", refused.join(", ")),
        }
        .into());
    }

    // libgit2's push can report success for refs the server dropped: look again.
    let after: BTreeMap<String, Oid> =
        remote::ls_remote(net, repo, url)?.into_iter().map(|r| (r.name, r.oid)).collect();
    let mut wrong = Vec::new();
    for (name, oid) in &local {
        if after.get(name) != Some(oid) {
            wrong.push(format!(
                "{name} (expected {oid}, mirror has {})",
                after.get(name).map(|o| o.to_string()).unwrap_or("nothing".into())
            ));
        }
    }
    if !wrong.is_empty() {
        return Err(RemoteError::Rejected {
            url: mask_url(url),
            detail: format!("the push silently: {}", wrong.join(", ")),
        }
        .into());
    }
    let pushed = specs.iter().map(|s| s.rsplit(':').next().unwrap_or_default().to_string()).collect();
    Ok((pushed, mirror_preserved))
}

/// `opus-mirror mirror` for one source.
pub fn run(backup: &BackupRepo, source: &Source, net: &Network, now: DateTime<Utc>) -> Result<Report> {
    run_unexplained(backup, source, net, now).map_err(|e| {
        crate::diskfull::explain(
            e,
            &backup.path,
            &format!("importing and pushing the refs of `{}`", source.name),
        )
    })
}

fn run_unexplained(
    backup: &BackupRepo,
    source: &Source,
    net: &Network,
    now: DateTime<Utc>,
) -> Result<Report> {
    let is_git = Repository::open(&source.path).is_ok();
    let imported = if is_git { import(backup, source, now)? } else { Vec::new() };
    let (pushed, mirror_preserved, confirmed) = match &source.mirror {
        Some(url) => {
            let (p, m) = push(backup, source, url, net, now)?;
            (p, m, true)
        }
        None => (Vec::new(), Vec::new(), false),
    };
    Ok(Report {
        source: source.name.clone(),
        imported,
        mirror: source.mirror.as_deref().map(mask_url),
        pushed,
        mirror_preserved,
        confirmed,
    })
}

/// Remembers what the mirror was confirmed to hold, for `check`.
pub fn save_pushed(
    cfg: &crate::config::Config,
    source: &Source,
    backup: &BackupRepo,
    r: &Report,
    now: DateTime<Utc>,
) -> Result<()> {
    if let (true, Some(url)) = (r.confirmed, &source.mirror) {
        let refs = crate::bundle::create::bundle_refs(&backup.repo)?
            .into_iter()
            .filter(|(k, _)| source.mirror_refs.takes(k, &source.snapshot_branch))
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        let pushed = crate::check::Pushed { url: mask_url(url), time: now.to_rfc3339(), refs };
        crate::state::save(&cfg.state_dir, &crate::check::pushed_state(&source.name), &pushed)?;
    }
    Ok(())
}

/// One preserved tip, for `opus-mirror preserved`.
#[derive(Debug, Clone, Serialize)]
pub struct Preserved {
    pub refname: String,
    /// When it was preserved (UTC, as in the ref name).
    pub date: String,
    /// What it was: `heads/main`, `tags/v1`, or `mirror/heads/main` for a tip rescued from
    /// the mirror.
    pub was: String,
    pub commit: String,
    pub subject: String,
}

/// Every preserved tip of a backup repo, oldest first.
pub fn list_preserved(repo: &Repository) -> Result<Vec<Preserved>> {
    let mut out = Vec::new();
    for (name, oid) in refs_under(repo, &[PRESERVED])? {
        let rest = &name[PRESERVED.len()..];
        let (date, was) = rest.split_once('/').unwrap_or((rest, ""));
        let subject = repo
            .find_object(oid, None)
            .and_then(|o| o.peel_to_commit())
            .map(|c| c.summary().ok().flatten().unwrap_or("").to_string())
            .unwrap_or_default();
        out.push(Preserved {
            refname: name.clone(),
            date: date.to_string(),
            was: was.to_string(),
            commit: oid.to_string(),
            subject,
        });
    }
    Ok(out)
}
