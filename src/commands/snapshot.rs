//! `opus-mirror snapshot`: one snapshot per selected source. An error on one source does not
//! stop the others; the exit code is decided at the end.

use anyhow::Result;

use crate::app::Context;
use crate::cli::SnapshotArgs;
use crate::exit::{exit_for, Exit};
use crate::output::human_bytes;
use crate::snapshot::{self, Outcome};

/// One line for people about a snapshot outcome.
pub fn describe(o: &Outcome) -> String {
    let secs = o.elapsed_ms as f64 / 1000.0;
    let size = format!("{} files, {}", o.counts.files, human_bytes(o.counts.bytes));
    match (&o.created, &o.previous) {
        (Some(id), _) => format!(
            "{}: snapshot {} ({size}; +{} ~{} -{}) in {secs:.2}s",
            o.source,
            &id[..12],
            o.changes.added,
            o.changes.modified,
            o.changes.deleted
        ),
        (None, Some(prev)) => {
            format!("{}: unchanged since snapshot {} ({size}) in {secs:.2}s", o.source, &prev[..12])
        }
        (None, None) => format!("{}: nothing to snapshot", o.source),
    }
}

pub fn run(ctx: &mut Context, args: &SnapshotArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let sources = cfg.select_sources(args.source.source.as_deref())?;
    let _lock = ctx.lock(&cfg)?;
    let mut exit = Exit::Ok;
    let mut outcomes = Vec::new();
    for s in sources {
        let mut s = s.clone();
        s.include_secrets |= args.include_secrets;
        match snapshot::take(&cfg, &s, ctx.now) {
            Ok(o) => {
                ctx.say(describe(&o))?;
                if !o.skipped.is_empty() {
                    exit = exit.combine(Exit::Warnings);
                    eprintln!("warning: {}: {} item(s) could not be captured:", o.source, o.skipped.len());
                    for sk in &o.skipped {
                        eprintln!("  {}: {}", sk.path, sk.reason);
                    }
                }
                outcomes.push(o);
            }
            Err(e) => {
                eprintln!("error: {}: {e:#}", s.name);
                exit = exit.combine(exit_for(&e));
            }
        }
    }
    if ctx.mode.json {
        crate::output::print_json(ctx.out, &outcomes)?;
    }
    Ok(exit)
}
