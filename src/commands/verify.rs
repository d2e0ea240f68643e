//! `opus-mirror verify`: is each git source safe on its remote?

use anyhow::Result;

use crate::cli::VerifyArgs;
use crate::context::Context;
use opus_mirror_core::classify::exit_for;
use opus_mirror_core::exit::Exit;
use opus_mirror_core::git::remote;
use opus_mirror_core::verify::{self, BranchState, Report};

/// Pushes the branches that are only ahead, fast-forward only. Returns what was pushed.
fn push_ahead(
    report: &Report,
    path: &std::path::Path,
    net: &opus_mirror_core::config::Network,
) -> Result<Vec<String>> {
    let repo = git2::Repository::open(path)?;
    let mut pushed = Vec::new();
    for b in report.branches.iter().filter(|b| b.state == BranchState::Ahead) {
        let refname = format!("refs/heads/{}", b.name);
        let remote_name = repo.branch_upstream_remote(&refname)?.as_str()?.to_string();
        let merge = repo.branch_upstream_merge(&refname)?.as_str()?.to_string();
        let url = remote::resolve_url(&repo, repo.find_remote(&remote_name)?.url()?);
        // No '+': the server refuses anything that is not a fast-forward.
        let statuses = remote::push(net, &repo, &url, &[format!("{refname}:{merge}")])?;
        if let Some(err) = statuses.iter().find_map(|s| s.error.clone()) {
            anyhow::bail!("pushing {} was refused: {err}", b.name);
        }
        pushed.push(b.name.clone());
    }
    Ok(pushed)
}

fn print(ctx: &mut Context, r: &Report) -> Result<()> {
    ctx.say(format!("{}: {}", r.source, if r.safe { "safe" } else { "AT RISK" }))?;
    for rem in &r.remotes {
        match &rem.error {
            None => ctx.say(format!("  remote {} ({}, {})", rem.name, rem.url, rem.source))?,
            Some(e) => ctx.say(format!(
                "  remote {} ({}): UNREACHABLE: {}",
                rem.name,
                rem.url,
                e.lines().next().unwrap_or("")
            ))?,
        }
    }
    for b in &r.branches {
        let up = b.upstream.as_deref().map(|u| format!(" → {u}")).unwrap_or_default();
        ctx.say(format!(
            "  {:<3} {}{up}: {}",
            if b.state.at_risk() { "!" } else { "ok" },
            b.name,
            verify::describe(b)
        ))?;
        for c in &b.unpushed {
            ctx.say(format!("        {} {}", c.id, c.subject))?;
        }
    }
    for n in &r.remote_only {
        ctx.say(format!("  --  {n}: only on the remote"))?;
    }
    for t in &r.tags {
        ctx.say(format!("  !   tag {}: {}", t.name, t.state))?;
    }
    let w = &r.worktree;
    if w.modified + w.staged + w.untracked + w.stashes > 0 || w.detached_head || w.in_progress.is_some() {
        ctx.say(format!(
            "  !   working tree: {} modified, {} staged, {} untracked, {} stash(es){}{}",
            w.modified,
            w.staged,
            w.untracked,
            w.stashes,
            if w.detached_head { ", detached HEAD" } else { "" },
            w.in_progress.as_deref().map(|o| format!(", {o} in progress")).unwrap_or_default()
        ))?;
    }
    Ok(())
}

pub fn run(ctx: &mut Context, args: &VerifyArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let mut exit = Exit::Ok;
    let mut reports = Vec::new();
    for s in cfg.select_sources(args.source.source.as_deref())? {
        if git2::Repository::open(&s.path).is_err() {
            ctx.say(format!("{}: not a git repository; nothing to verify (snapshots protect it)", s.name))?;
            continue;
        }
        let mut r = match verify::verify(&s.name, &s.path, &cfg.network, args.offline) {
            Ok(r) => r,
            Err(e) => {
                ctx.item_error(&s.name, Some(&s.name), None, &e);
                exit = exit.combine(exit_for(&e));
                continue;
            }
        };
        if args.push && r.branches.iter().any(|b| b.state == BranchState::Ahead) {
            let pushed = push_ahead(&r, &s.path, &cfg.network)?;
            ctx.say(format!("{}: pushed {}", s.name, pushed.join(", ")))?;
            r = verify::verify(&s.name, &s.path, &cfg.network, false)?;
        }
        if r.unreachable {
            exit = exit.combine(Exit::Unreachable);
        } else if !r.safe {
            exit = exit.combine(Exit::AtRisk);
            ctx.note_warning(
                &format!("{}: AT RISK: not everything is on its remote", r.source),
                Some(&r.source),
                None,
            );
        }
        for rem in &r.remotes {
            if let Some(e) = &rem.error {
                let text = format!("{}: remote {} ({}) cannot be reached: {e}", r.source, rem.name, rem.url);
                ctx.note_error(&text, Some(&r.source), None);
            }
        }
        if !ctx.mode.json {
            print(ctx, &r)?;
        }
        reports.push(r);
    }
    if ctx.mode.json {
        ctx.json(&reports)?;
    }
    Ok(exit)
}
