//! `opus-mirror bundle`, `bundles` and `unbundle`.

use anyhow::Result;
use serde_json::json;

use crate::cli::{BundleArgs, TargetArgs, UnbundleArgs};
use crate::context::Context;
use crate::output::human_bytes;
use opus_mirror_core::bundle::create;
use opus_mirror_core::classify::exit_for;
use opus_mirror_core::exit::{Exit, UserError};
use opus_mirror_core::target;

pub fn run(ctx: &mut Context, args: &BundleArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let sources = cfg.select_sources(args.which.source.source.as_deref())?;
    let targets = cfg.select_targets(args.which.target.as_deref())?;
    let _lock = ctx.lock(&cfg)?;
    let mut exit = Exit::Ok;
    let mut outcomes = Vec::new();
    // A bundle carries the code too: bring the repository's branches and tags into the
    // backup repo first (as `run`'s mirror step does), or a bundle made right after
    // `snapshot` would give back files without their repository.
    for s in &sources {
        if git2::Repository::open(&s.path).is_err() {
            continue;
        }
        let imported = opus_mirror_core::git::BackupRepo::open(&opus_mirror_core::git::BackupRepo::location(
            &cfg.state_dir,
            &s.name,
        ))
        .and_then(|b| opus_mirror_core::mirror::import(&b, s, ctx.now));
        if let Err(e) = imported {
            let text = format!("{}: the code's refs were not brought in before bundling: {e:#}", s.name);
            ctx.warn(&text, Some(&s.name), None);
            exit = exit.combine(Exit::Warnings);
        }
    }
    for t in &targets {
        for s in sources.iter().filter(|s| t.takes(&s.name)) {
            let progress =
                crate::output::Progress::start(&ctx.mode, format!("bundle of {} → {}", s.name, t.name));
            let result = create::create(&cfg, s, t, ctx.now, args.force, &progress);
            drop(progress);
            opus_mirror_core::steps::record_bundle(&cfg, s, t, ctx.now, &result);
            match result {
                Ok(o) => {
                    match (&o.file, &o.reason) {
                        (Some(f), _) => ctx.say(format!(
                            "{} → {}: {f} ({}, {}, {} objects) in {:.2}s, verified",
                            s.name,
                            t.name,
                            format!("{:?}", o.kind.expect("a written bundle has a kind")).to_lowercase(),
                            human_bytes(o.size),
                            o.objects,
                            o.elapsed_ms as f64 / 1000.0
                        ))?,
                        (None, Some(r)) => ctx.say(format!("{} → {}: skipped: {r}", s.name, t.name))?,
                        (None, None) => {}
                    }
                    outcomes.push(o);
                }
                Err(e) => {
                    ctx.item_error(&format!("{} → {}", s.name, t.name), Some(&s.name), Some(&t.name), &e);
                    exit = exit.combine(exit_for(&e));
                }
            }
        }
    }
    if ctx.mode.json {
        ctx.json(&outcomes)?;
    }
    Ok(exit)
}

pub fn list(ctx: &mut Context, args: &TargetArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let sources = cfg.select_sources(args.source.source.as_deref())?;
    let mut exit = Exit::Ok;
    let mut all = Vec::new();
    for t in cfg.select_targets(args.target.as_deref())? {
        if let Err(e) = target::check(t, &cfg.state_dir) {
            ctx.item_error("", None, Some(&t.name), &e);
            exit = exit.combine(exit_for(&e));
            continue;
        }
        for s in sources.iter().filter(|s| t.takes(&s.name)) {
            let listed = target::list(t, &s.name)?;
            ctx.say(format!("{} on {} ({} bundles)", s.name, t.name, listed.len()))?;
            for l in &listed {
                let (kind, verified, created) = match &l.manifest {
                    Some(m) => (format!("{:?}", m.kind).to_lowercase(), m.verified, m.created.clone()),
                    None => ("?".into(), false, "?".into()),
                };
                ctx.say(format!(
                    "  {:<44} {:<11} {:>10}  {}  {}",
                    l.name,
                    kind,
                    human_bytes(l.size),
                    created,
                    if verified { "verified" } else { "UNVERIFIED" }
                ))?;
                all.push(json!({"target": t.name, "source": s.name, "name": l.name, "size": l.size, "manifest": l.manifest}));
            }
        }
    }
    if ctx.mode.json {
        ctx.json(&all)?;
    }
    Ok(exit)
}

pub fn unbundle(ctx: &mut Context, args: &UnbundleArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let sources = cfg.select_sources(args.which.source.source.as_deref())?;
    let [source] = sources.as_slice() else {
        return Err(UserError::usage(
            "more than one source is configured\n  fix: name one with --source NAME",
        )
        .into());
    };
    let targets = cfg.select_targets(args.which.target.as_deref())?;
    let [t] = targets.as_slice() else {
        return Err(UserError::usage(
            "more than one target is configured\n  fix: name one with --target NAME",
        )
        .into());
    };
    let applied = create::restore_chain(
        &cfg,
        &source.name,
        t,
        &args.to,
        args.identity.as_deref().or(t.identity_file.as_deref()),
    )?;
    if ctx.mode.json {
        ctx.json(&json!({"source": source.name, "target": t.name, "applied": applied, "repo": args.to}))?;
    } else {
        for a in &applied {
            ctx.say(format!("applied {a}"))?;
        }
        ctx.say(format!(
            "{} holds every ref of `{}`; next: git clone {} code, or git clone -b {} {} vault",
            args.to.display(),
            source.name,
            args.to.display(),
            source.snapshot_branch,
            args.to.display()
        ))?;
    }
    Ok(Exit::Ok)
}
