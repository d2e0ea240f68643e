//! `opus-mirror status` and `opus-mirror log`.

use anyhow::Result;

use crate::cli::{LogArgs, StatusArgs};
use crate::context::Context;
use crate::output::human_bytes;
use opus_mirror_core::exit::{Exit, UserError};
use opus_mirror_core::state;

pub fn run(ctx: &mut Context, args: &StatusArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let max_age = match &args.max_age {
        Some(m) => opus_mirror_core::timeparse::parse_duration(m)
            .map_err(|e| UserError::usage(format!("--max-age: {e}")))?,
        None => cfg.max_age,
    };
    if let Some(t) = &args.target {
        return from_target(ctx, &cfg, args, t, max_age);
    }
    let history = state::history(&cfg.state_dir)?;
    let all: Vec<_> = cfg
        .select_sources(args.source.source.as_deref())?
        .into_iter()
        .map(|s| opus_mirror_core::status::of(&cfg, s, &history, ctx.now, max_age))
        .collect();
    let stale = all.iter().any(|s| s.stale);
    if ctx.mode.json {
        ctx.json(&serde_json::json!({"max_age_hours": max_age.num_minutes() as f64 / 60.0, "stale": stale, "sources": all}),
        )?;
    } else {
        for s in &all {
            let behind = if s.clock_behind { ", clock behind?" } else { "" };
            let age = s.age_hours.map(|h| format!("{h} h ago{behind}")).unwrap_or("never".into());
            let local = match (s.judged_by, s.snapshot_age_hours) {
                ("off-machine copy", Some(h)) => format!("; local snapshot {h} h ago"),
                _ => String::new(),
            };
            ctx.say(format!("{}: {} (newest {} {age}{local})", s.source, s.verdict(), s.judged_by))?;
            ctx.say(format!(
                "  last snapshot   {}",
                s.last_snapshot
                    .as_deref()
                    .map(|t| format!("{t} ({})", s.last_snapshot_id.as_deref().unwrap_or("")))
                    .unwrap_or("none".into())
            ))?;
            ctx.say(format!("  last success    {}", s.last_success.as_deref().unwrap_or("none")))?;
            for b in &s.bundles {
                match (&b.file, &b.time) {
                    (Some(f), Some(t)) => ctx.say(format!(
                        "  bundle {:<8} {f} ({}, {t}, verified)",
                        b.target,
                        human_bytes(b.size.unwrap_or(0))
                    ))?,
                    _ => ctx.say(format!("  bundle {:<8} none yet", b.target))?,
                }
            }
            if let Some(c) = &s.last_check {
                ctx.say(format!("  last check      {} {}", c.time, c.outcome))?;
            }
            if let Some(d) = &s.last_drill {
                ctx.say(format!(
                    "  last drill      {} {} from {}: {} files, time-to-recover {:.1}s",
                    d.time,
                    if d.ok() { "ok" } else { "FAILED" },
                    d.target,
                    d.files,
                    d.ttr_ms as f64 / 1000.0
                ))?;
            }
            ctx.say(format!("  preserved tips  {}", s.preserved))?;
            for w in &s.warnings {
                ctx.say(format!("  ! {w}"))?;
            }
        }
    }
    // Each source's warnings were shown as its `!` lines (or are in its JSON): the envelope
    // lists them too, as every exit 3 must.
    for s in &all {
        for w in &s.warnings {
            ctx.note_warning(w, Some(&s.source), None);
        }
    }
    for s in all.iter().filter(|s| s.in_doubt()) {
        let text = format!(
            "the last check or drill of `{}` failed (see the lines above): run `opus-mirror check` and read what it names",
            s.source
        );
        ctx.warn(&text, Some(&s.source), None);
    }
    if stale {
        let text = format!(
            "the newest good backup is older than {} (or there is none): run `opus-mirror run` and check the timer",
            crate::output::human_duration(max_age)
        );
        ctx.warn(&text, None, None);
    }
    Ok(all.iter().fold(Exit::Ok, |x, s| x.combine(s.exit())))
}

pub fn log(ctx: &mut Context, args: &LogArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let h = state::history(&cfg.state_dir)?;
    let tail: Vec<_> = h.iter().skip(h.len().saturating_sub(args.limit.unwrap_or(50))).collect();
    if ctx.mode.json {
        ctx.json(&tail)?;
    } else {
        for e in tail {
            let what = [e.source.as_deref(), e.target.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" → ");
            ctx.say(format!(
                "{}  {:<8} {:<7} {:<20} {}",
                e.time,
                e.step,
                e.outcome,
                what,
                e.detail.lines().next().unwrap_or("")
            ))?;
        }
    }
    Ok(Exit::Ok)
}

/// Staleness judged from a target's verified bundles alone: works on any machine that can
/// read the target, with a config naming it and the sources.
fn from_target(
    ctx: &mut Context,
    cfg: &opus_mirror_core::config::Config,
    args: &StatusArgs,
    name: &str,
    max_age: chrono::Duration,
) -> Result<Exit> {
    let targets = cfg.select_targets(Some(name))?;
    let t = targets[0];
    opus_mirror_core::target::check(t, &cfg.state_dir)?;
    let mut stale = false;
    let mut rows = Vec::new();
    for s in cfg.select_sources(args.source.source.as_deref())?.into_iter().filter(|s| t.takes(&s.name)) {
        let verified: Vec<_> = opus_mirror_core::target::list(t, &s.name)?
            .into_iter()
            .filter_map(|l| l.manifest)
            .filter(|m| m.verified)
            .filter_map(|m| m.created_at().map(|c| (c, m.file)))
            .collect();
        // A run that found a verified bundle here still holding everything said so, and when.
        let current = opus_mirror_core::target::read_current(t, &s.name, &cfg.state_dir)
            .filter(|c| verified.iter().any(|(_, f)| *f == c.bundle))
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(&c.at).ok())
            .map(|at| at.with_timezone(&chrono::Utc))
            .filter(|at| !opus_mirror_core::ranking::ahead_of(*at, ctx.now));
        // A bundle dated ahead of the clock proves nothing about now: the age counts from the
        // newest one not in the future (else it is 0 h), and is never negative.
        let (future, past): (Vec<_>, Vec<_>) =
            verified.into_iter().partition(|(c, _)| opus_mirror_core::ranking::ahead_of(*c, ctx.now));
        let behind = !future.is_empty();
        let newest = past.into_iter().max().or_else(|| future.into_iter().max());
        let fresh = newest.as_ref().map(|(c, _)| *c).max(current);
        let age = fresh.map(|c| (ctx.now - c).max(chrono::Duration::zero()));
        let is_stale = age.is_none_or(|a| a > max_age);
        stale |= is_stale;
        let age_h = age.map(|a| (a.num_minutes() as f64 / 6.0).round() / 10.0);
        ctx.say(format!(
            "{} on {}: {} (newest verified bundle {})",
            s.name,
            t.name,
            if is_stale { "STALE" } else { "ok" },
            match (&newest, age_h) {
                (Some((_, f)), Some(h)) => {
                    format!(
                        "{f}{}, {h} h ago{}",
                        match current {
                            Some(at) if Some(at) == fresh => format!(
                                ", current as of {}",
                                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                            ),
                            _ => String::new(),
                        },
                        if behind { "; a bundle is dated ahead of the clock: clock behind?" } else { "" }
                    )
                }
                _ => "none".into(),
            }
        ))?;
        rows.push(serde_json::json!({"source": s.name, "target": t.name, "newest": newest.as_ref().map(|(_, f)| f), "current_as_of": current.map(|c| c.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)), "age_hours": age_h, "clock_behind": behind, "stale": is_stale}));
    }
    if ctx.mode.json {
        ctx.json(&serde_json::json!({"stale": stale, "sources": rows}))?;
    }
    if stale {
        let text = format!(
            "the newest verified bundle on `{}` is older than {} (or there is none)",
            t.name,
            crate::output::human_duration(max_age)
        );
        ctx.warn(&text, None, Some(&t.name));
        return Ok(Exit::Stale);
    }
    Ok(Exit::Ok)
}
