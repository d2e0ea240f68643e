//! `opus-mirror run` and `opus-mirror recovery-doc`.

use std::time::Duration;

use anyhow::Result;

use crate::cli::{RecoveryDocArgs, RunArgs};
use crate::context::Context;
use opus_mirror_core::exit::Exit;
use opus_mirror_core::lock::RunLock;

pub fn run(ctx: &mut Context, args: &RunArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let sources = cfg.select_sources(args.source.source.as_deref())?;
    // A hook must never wait long behind another run: it is a best-effort extra.
    let wait = if args.trigger == crate::cli::TriggerArg::Hook {
        Duration::ZERO
    } else {
        Duration::from_secs(ctx.global.lock_wait)
    };
    // A dry run changes nothing, not even leftovers of killed runs.
    let (_lock, _held) = if args.dry_run {
        (Some(RunLock::acquire(&cfg.state_dir, wait)?), None)
    } else {
        (None, Some(crate::context::lock_and_heal(&cfg, wait)?))
    };
    let progress = crate::output::Progress::start(&ctx.mode, "opus-mirror run");
    let report =
        opus_mirror_core::run::run(&cfg, &sources, args.trigger.into(), args.dry_run, ctx.now, &progress)?;
    // On a terminal the steps were shown as they happened (stderr); the table on stdout is
    // for when stdout goes elsewhere.
    let shown_live = progress.is_live() && std::io::IsTerminal::is_terminal(&std::io::stdout());
    drop(progress);
    if ctx.mode.json {
        // Each step that did not go well is in `data.steps` with its outcome, and here too.
        for s in report.steps.iter().filter(|s| s.exit != Exit::Ok) {
            let text = format!("{} {}: {}", s.step, s.outcome, s.detail);
            match s.exit {
                Exit::Warnings => ctx.note_warning(&text, Some(&s.source), s.target.as_deref()),
                _ => ctx.note_error(&text, Some(&s.source), s.target.as_deref()),
            }
        }
        ctx.json(&report)?;
    } else if ctx.mode.quiet {
        if report.exit != Exit::Ok {
            let bad: Vec<String> = report
                .steps
                .iter()
                .filter(|s| s.exit != Exit::Ok)
                .map(|s| format!("{} {} {}", s.source, s.step, s.outcome))
                .collect();
            eprintln!(
                "opus-mirror run: {} ({})",
                opus_mirror_core::state::outcome_word(report.exit),
                bad.join(", ")
            );
        }
    } else {
        for s in report.steps.iter().filter(|_| !shown_live) {
            ctx.say(s.line())?;
            for l in s.detail.lines().skip(1) {
                ctx.say(format!("{:>44}{l}", ""))?;
            }
        }
        ctx.say(format!(
            "{} in {:.2}s{}",
            opus_mirror_core::state::outcome_word(report.exit),
            report.elapsed_ms as f64 / 1000.0,
            if report.dry_run { " (dry run: nothing was changed)" } else { "" }
        ))?;
    }
    Ok(report.exit)
}

pub fn recovery_doc(ctx: &mut Context, args: &RecoveryDocArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let text = opus_mirror_core::recovery::render(&cfg);
    match &args.write {
        Some(p) => {
            opus_mirror_core::atomic::write_file(p, text.as_bytes())?;
            ctx.say(format!("wrote {}", p.display()))?;
        }
        None => crate::context::print_text(ctx, text.as_bytes())?,
    }
    Ok(Exit::Ok)
}
