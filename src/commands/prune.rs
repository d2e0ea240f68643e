//! `opus-mirror prune`: apply each target's keep policy, with reasons.

use anyhow::Result;
use serde_json::json;

use crate::cli::PruneArgs;
use crate::context::Context;
use opus_mirror_core::classify::exit_for;
use opus_mirror_core::exit::Exit;
use opus_mirror_core::target;

pub fn run(ctx: &mut Context, args: &PruneArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let sources = cfg.select_sources(args.which.source.source.as_deref())?;
    let targets = cfg.select_targets(args.which.target.as_deref())?;
    let _lock = ctx.lock(&cfg)?;
    let mut exit = Exit::Ok;
    let mut report = Vec::new();
    for t in targets {
        if let Err(e) = target::check(t, &cfg.state_dir) {
            ctx.item_error("", None, Some(&t.name), &e);
            exit = exit.combine(exit_for(&e));
            continue;
        }
        for s in sources.iter().filter(|s| t.takes(&s.name)) {
            let pruning = match opus_mirror_core::prune::plan(&cfg, s, t, ctx.now, &[])? {
                opus_mirror_core::prune::Plan::Suspended(a) => {
                    let text = format!(
                        "{} on {}: prune suspended: the guard tripped {} ({}); after checking, run `opus-mirror guard ack --source {}`",
                        s.name,
                        t.name,
                        a.time,
                        a.reasons.join("; "),
                        s.name
                    );
                    ctx.warn(&text, Some(&s.name), Some(&t.name));
                    exit = exit.combine(Exit::Warnings);
                    report.push(json!({"source": s.name, "target": t.name, "suspended": true}));
                    continue;
                }
                opus_mirror_core::prune::Plan::Decisions(p) => p,
            };
            for w in &pruning.warnings {
                ctx.warn(&format!("{} on {}: {w}", s.name, t.name), Some(&s.name), Some(&t.name));
                exit = exit.combine(Exit::Warnings);
            }
            let (plan, warnings) = (pruning.decisions, pruning.warnings);
            ctx.say(format!("{} on {}:", s.name, t.name))?;
            for d in &plan {
                let verb = if d.keep {
                    "keep  "
                } else if args.dry_run {
                    "would remove"
                } else {
                    "remove"
                };
                ctx.say(format!("  {verb} {}  ({})", d.name, d.reasons.join(", ")))?;
            }
            if !args.dry_run {
                opus_mirror_core::prune::apply(t, &plan)?;
            }
            report.push(
                json!({"source": s.name, "target": t.name, "dry_run": args.dry_run, "decisions": plan, "warnings": warnings}),
            );
        }
    }
    if ctx.mode.json {
        ctx.json(&report)?;
    }
    Ok(exit)
}
