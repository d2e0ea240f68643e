//! `opus-mirror drill`: the periodic test restore, recorded for `status`.

use anyhow::Result;

use crate::cli::DrillArgs;
use crate::context::Context;
use crate::output::human_bytes;
use opus_mirror_core::classify::exit_for;
use opus_mirror_core::exit::Exit;
use opus_mirror_core::notify;

pub fn run(ctx: &mut Context, args: &DrillArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let sources = cfg.select_sources(args.which.source.source.as_deref())?;
    let targets = cfg.select_targets(args.which.target.as_deref())?;
    let _lock = ctx.lock(&cfg)?;
    let job = notify::Job::start(&cfg.notify);
    let mut exit = Exit::Ok;
    let mut reports = Vec::new();
    for t in &targets {
        for s in sources.iter().filter(|s| t.takes(&s.name)) {
            match opus_mirror_core::drill::drill_and_record(
                &cfg,
                s,
                t,
                ctx.now,
                args.identity.as_deref().or(t.identity_file.as_deref()),
                true,
            ) {
                Ok(r) => {
                    exit = exit.combine(if r.ok() { Exit::Ok } else { Exit::Failed });
                    if r.ok() {
                        ctx.say(format!(
                            "{} from {}: restored {} files, {} from {} in {:.2}s (time-to-recover); stock git: {}",
                            s.name,
                            t.name,
                            r.files,
                            human_bytes(r.bytes),
                            r.chain.last().map(String::as_str).unwrap_or(""),
                            r.ttr_ms as f64 / 1000.0,
                            match r.stock_git_ok {
                                Some(true) => "identical too",
                                Some(false) => "FAILED",
                                None => "not installed",
                            }
                        ))?;
                    } else {
                        eprintln!("error: drill of {} from {} FAILED:", s.name, t.name);
                        for p in &r.problems {
                            eprintln!("  {p}");
                            ctx.note_error(&format!("drill FAILED: {p}"), Some(&s.name), Some(&t.name));
                        }
                        let a = notify::alert(
                            notify::Level::Failure,
                            format!("opus-mirror drill failed for {}", s.name),
                            r.problems.join("\n"),
                            Some(&s.name),
                            Exit::Failed,
                            ctx.now,
                        );
                        notify::deliver(&cfg.notify, &a);
                    }
                    for w in &r.warnings {
                        ctx.warn(w, Some(&s.name), Some(&t.name));
                        exit = exit.combine(Exit::Warnings);
                    }
                    reports.push(r);
                }
                Err(e) => {
                    let label = format!("drill of {} from {}", s.name, t.name);
                    ctx.item_error(&label, Some(&s.name), Some(&t.name), &e);
                    exit = exit.combine(exit_for(&e));
                }
            }
        }
    }
    job.finish(exit, &format!("opus-mirror drill: {}", opus_mirror_core::state::outcome_word(exit)));
    if ctx.mode.json {
        ctx.json(&reports)?;
    }
    Ok(exit)
}
