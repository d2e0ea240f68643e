//! `opus-mirror preserved`: the tips kept when refs were rewritten or deleted.

use anyhow::Result;
use serde_json::json;

use crate::cli::SourceArg;
use crate::context::Context;
use opus_mirror_core::exit::Exit;
use opus_mirror_core::git::BackupRepo;
use opus_mirror_core::mirror;

pub fn run(ctx: &mut Context, args: &SourceArg) -> Result<Exit> {
    let cfg = ctx.config()?;
    let mut all = Vec::new();
    for s in cfg.select_sources(args.source.as_deref())? {
        let backup = BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &s.name))?;
        let list = mirror::list_preserved(&backup.repo)?;
        if !ctx.mode.json {
            ctx.say(format!("{} ({} preserved tip(s))", s.name, list.len()))?;
            for p in &list {
                ctx.say(format!(
                    "  {}  {:<24} {}  {}",
                    p.date,
                    p.was,
                    crate::output::short_id(&p.commit),
                    p.subject
                ))?;
            }
            if let Some(p) = list.last() {
                ctx.say(format!(
                    "  to get one back: git --git-dir {} branch restored-{} {}   (or fetch it from the mirror: git fetch MIRROR {}:refs/heads/restored)",
                    backup.path.display(),
                    p.was.rsplit('/').next().unwrap_or("tip"),
                    crate::output::short_id(&p.commit),
                    p.refname
                ))?;
            }
        }
        all.push(json!({"source": s.name, "preserved": list}));
    }
    if ctx.mode.json {
        ctx.json(&all)?;
    }
    Ok(Exit::Ok)
}
