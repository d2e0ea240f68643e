//! `opus-mirror check`: backup repos, bundles on every reachable target, mirrors.

use anyhow::Result;
use serde_json::json;

use crate::cli::CheckArgs;
use crate::context::Context;
use opus_mirror_core::check::{self, BundleRead, ReadData, Report, Scope};
use opus_mirror_core::classify::exit_for;
use opus_mirror_core::exit::Exit;
use opus_mirror_core::git::BackupRepo;
use opus_mirror_core::notify;
use opus_mirror_core::state::{self, Event};

pub fn run(ctx: &mut Context, args: &CheckArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let sources = cfg.select_sources(args.which.source.source.as_deref())?;
    let targets = if cfg.targets.is_empty() && args.which.target.is_none() {
        Vec::new()
    } else {
        cfg.select_targets(args.which.target.as_deref())?
    };
    let read = match (args.read_data, args.read_data_subset) {
        (true, _) => ReadData::All,
        (false, Some(p)) => ReadData::Subset(p.clamp(0.0, 100.0)),
        _ => ReadData::No,
    };
    let held = ctx.lock(&cfg)?;
    let healed: Vec<String> = held.healed.iter().map(|h| h.to_string()).collect();
    let job = notify::Job::start(&cfg.notify);
    let mut exit = Exit::Ok;
    let mut reports: Vec<Report> = Vec::new();
    let scope = match args.incremental {
        true => Scope::New { every: cfg.check_every, rotate: true },
        false => Scope::Full,
    };
    for s in &sources {
        let mut mine: Vec<Report> = Vec::new();
        // Whether an off-site target was read: only then does this check count as the off-site
        // check a run's plan waits `check_every` for.
        let mut offsite = false;
        let (mut ledger, warning) = check::verified::load(&cfg.state_dir, &s.name);
        if let Some(w) = warning {
            if !ctx.mode.json {
                eprintln!("warning: {w}");
            }
            ctx.note_warning(&w, Some(&s.name), None);
            exit = exit.combine(Exit::Warnings);
        }
        match BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &s.name))
            .and_then(|r| check::backup_repo(&r, &s.name, &mut ledger, scope, ctx.now))
        {
            Ok(r) => mine.push(r),
            Err(e) => {
                ctx.item_error(&s.name, Some(&s.name), None, &e);
                exit = exit.combine(exit_for(&e));
            }
        }
        for t in targets.iter().filter(|t| t.takes(&s.name)) {
            let how = BundleRead {
                read,
                scope,
                identity: args.identity.as_deref().or(t.identity_file.as_deref()),
                listed: None,
            };
            match check::bundles(&cfg, s, t, how, &mut ledger, ctx.now) {
                Ok(r) => {
                    offsite |= matches!(t.kind, opus_mirror_core::config::TargetKind::Rclone { .. });
                    mine.push(r)
                }
                Err(e) => {
                    ctx.item_error(&format!("{} on {}", s.name, t.name), Some(&s.name), Some(&t.name), &e);
                    exit = exit.combine(exit_for(&e));
                }
            }
        }
        match check::mirror(&cfg, s) {
            Ok(Some(r)) => mine.push(r),
            Ok(None) => {}
            Err(e) => {
                ctx.item_error(&format!("mirror of {}", s.name), Some(&s.name), None, &e);
                exit = exit.combine(exit_for(&e));
            }
        }
        if let Err(e) = check::verified::save(&cfg.state_dir, &s.name, &ledger) {
            let w = format!("cannot record what was verified: {e:#}");
            if !ctx.mode.json {
                eprintln!("warning: {w}");
            }
            ctx.note_warning(&w, Some(&s.name), None);
            exit = exit.combine(Exit::Warnings);
        }
        for r in &mine {
            for p in &r.problems {
                ctx.note_error(&format!("{}: {p}", r.area), Some(&s.name), None);
            }
        }
        let bad: Vec<&String> = mine.iter().flat_map(|r| &r.problems).collect();
        let src_exit = if bad.is_empty() { Exit::Ok } else { Exit::Failed };
        exit = exit.combine(src_exit);
        let detail = if bad.is_empty() {
            "all checks passed".to_string()
        } else {
            bad.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
        };
        let mut ev = Event::new(ctx.now, "check", Some(&s.name), None, src_exit, detail.clone());
        ev.data = json!({ "offsite": offsite });
        state::record_or_warn(&cfg.state_dir, &ev);
        if !bad.is_empty() {
            let a = notify::alert(
                notify::Level::Failure,
                format!("opus-mirror check found damage in {}", s.name),
                detail,
                Some(&s.name),
                Exit::Failed,
                ctx.now,
            );
            notify::deliver(&cfg.notify, &a);
        }
        reports.extend(mine);
    }
    if ctx.mode.json {
        ctx.json(&json!({"ok": exit == Exit::Ok, "areas": reports, "healed": healed}))?;
    } else {
        for h in &healed {
            ctx.say(format!("healed {h}"))?;
        }
        for r in &reports {
            let skipped = match r.skipped.len() {
                0 => String::new(),
                n => format!("; {n} verified before, not read again"),
            };
            if r.problems.is_empty() {
                ctx.say(format!("ok   {} ({} checked{skipped})", r.area, r.checked))?;
            } else {
                ctx.say(format!("FAIL {}:", r.area))?;
                for p in &r.problems {
                    ctx.say(format!("       {p}"))?;
                }
            }
        }
    }
    if exit == Exit::Failed {
        for r in reports.iter().filter(|r| !r.problems.is_empty()) {
            for p in &r.problems {
                eprintln!("error: {}: {p}", r.area);
            }
        }
    }
    job.finish(exit, &format!("opus-mirror check: {}", opus_mirror_core::state::outcome_word(exit)));
    Ok(exit)
}
