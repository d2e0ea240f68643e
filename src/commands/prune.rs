//! `opus-mirror prune`: apply each target's keep policy, with reasons.

use anyhow::Result;
use serde_json::json;

use crate::app::Context;
use crate::cli::PruneArgs;
use crate::exit::{exit_for, Exit};
use crate::retention::{self, Item};
use crate::target;

pub fn run(ctx: &mut Context, args: &PruneArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let sources = cfg.select_sources(args.which.source.source.as_deref())?;
    let targets = cfg.select_targets(args.which.target.as_deref())?;
    let _lock = ctx.lock(&cfg)?;
    let mut exit = Exit::Ok;
    let mut report = Vec::new();
    for t in targets {
        if let Err(e) = target::check(t, &cfg.state_dir) {
            eprintln!("error: {e:#}");
            exit = exit.combine(exit_for(&e));
            continue;
        }
        for s in sources.iter().filter(|s| t.takes(&s.name)) {
            if let Some(a) =
                crate::state::load::<crate::guard::Alarm>(&cfg.state_dir, &crate::guard::state_name(&s.name))
            {
                eprintln!(
                    "warning: {} on {}: prune suspended: the guard tripped {} ({}); after checking, run `opus-mirror guard ack --source {}`",
                    s.name,
                    t.name,
                    a.time,
                    a.reasons.join("; "),
                    s.name
                );
                exit = exit.combine(Exit::Warnings);
                report.push(json!({"source": s.name, "target": t.name, "suspended": true}));
                continue;
            }
            let listed = target::list(t, &s.name)?;
            let items: Vec<Item> = listed
                .iter()
                .map(|l| Item {
                    name: l.name.clone(),
                    // An unverified bundle without a manifest: dated by its name, never trusted.
                    created: l
                        .manifest
                        .as_ref()
                        .and_then(|m| m.created_at())
                        .unwrap_or_else(|| date_from_name(&l.name).unwrap_or(ctx.now)),
                    verified: l.manifest.as_ref().is_some_and(|m| m.verified),
                    base: l.manifest.as_ref().and_then(|m| m.base.clone()),
                })
                .collect();
            let plan = retention::plan(&items, &t.keep, ctx.now).map_err(anyhow::Error::msg)?;
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
                if !d.keep && !args.dry_run {
                    target::delete(t, &d.name)?;
                }
            }
            report.push(
                json!({"source": s.name, "target": t.name, "dry_run": args.dry_run, "decisions": plan}),
            );
        }
    }
    if ctx.mode.json {
        crate::output::print_json(ctx.out, &report)?;
    }
    Ok(exit)
}

/// `SOURCE-2026-11-24T101500Z[-incr].bundle` → its time.
fn date_from_name(name: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let stem = name.trim_end_matches(".age").strip_suffix(".bundle")?.trim_end_matches("-incr");
    let ts = stem.get(stem.len().checked_sub(18)?..)?;
    chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%dT%H%M%SZ").ok().map(|n| n.and_utc())
}
