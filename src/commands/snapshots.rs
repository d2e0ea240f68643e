//! `opus-mirror snapshots`: the history of each source, newest first.

use anyhow::Result;
use serde::Serialize;

use crate::cli::SourceArg;
use crate::context::Context;
use crate::output::human_bytes;
use opus_mirror_core::exit::Exit;
use opus_mirror_core::git::BackupRepo;
use opus_mirror_core::snapshot::history::{self, Info};

#[derive(Serialize)]
struct SourceHistory {
    source: String,
    snapshots: Vec<Info>,
}

pub fn run(ctx: &mut Context, args: &SourceArg) -> Result<Exit> {
    let cfg = ctx.config()?;
    let mut all = Vec::new();
    for s in cfg.select_sources(args.source.as_deref())? {
        let repo = BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &s.name))?;
        all.push(SourceHistory {
            source: s.name.clone(),
            snapshots: history::list(&repo, &s.snapshot_branch)?,
        });
    }
    if ctx.mode.json {
        ctx.json(&all)?;
        return Ok(Exit::Ok);
    }
    for h in &all {
        ctx.say(format!("{} ({} snapshots)", h.source, h.snapshots.len()))?;
        if !h.snapshots.is_empty() {
            ctx.say(format!("  {:<12}  {:<20}  {:>8}  {:>10}  changes", "id", "time", "files", "size"))?;
        }
        for i in &h.snapshots {
            ctx.say(format!(
                "  {:<12}  {:<20}  {:>8}  {:>10}  +{} ~{} -{}",
                i.short,
                i.time,
                i.files,
                human_bytes(i.bytes),
                i.added,
                i.modified,
                i.deleted
            ))?;
        }
    }
    Ok(Exit::Ok)
}
