//! `opus-mirror snapshot`: one snapshot per selected source. An error on one source does not
//! stop the others; the exit code is decided at the end. A tripped guard is recorded,
//! alerted, and suspends pruning of that source.

use anyhow::Result;

use crate::cli::SnapshotArgs;
use crate::context::Context;
use opus_mirror_core::classify::exit_for;
use opus_mirror_core::exit::Exit;

pub fn run(ctx: &mut Context, args: &SnapshotArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let sources = cfg.select_sources(args.source.source.as_deref())?;
    let _lock = ctx.lock(&cfg)?;
    let mut exit = Exit::Ok;
    let mut outcomes = Vec::new();
    for s in sources {
        let mut s = s.clone();
        s.include_secrets |= args.include_secrets;
        let progress = crate::output::Progress::start(&ctx.mode, format!("snapshot of {}", s.name));
        let result = opus_mirror_core::steps::snapshot_one(&cfg, &s, ctx.now, &progress);
        drop(progress);
        match result {
            Ok((o, e)) => {
                ctx.say(opus_mirror_core::steps::describe(&o))?;
                if !o.skipped.is_empty() {
                    let text = format!("{}: {} item(s) could not be captured", o.source, o.skipped.len());
                    ctx.note_warning(&text, Some(&s.name), None);
                }
                if let Some(alarm) = &o.guard {
                    let text = format!("{}: GUARD: {}", s.name, alarm.reasons.join("; "));
                    ctx.note_warning(&text, Some(&s.name), None);
                }
                exit = exit.combine(e);
                outcomes.push(o);
            }
            Err(e) => {
                ctx.item_error(&s.name, Some(&s.name), None, &e);
                exit = exit.combine(exit_for(&e));
            }
        }
    }
    if ctx.mode.json {
        ctx.json(&outcomes)?;
    }
    Ok(exit)
}
