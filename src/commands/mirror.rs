//! `opus-mirror mirror`: import every ref into the backup repo, push all to the mirror.

use anyhow::Result;

use crate::cli::SourceArg;
use crate::context::Context;
use opus_mirror_core::classify::exit_for;
use opus_mirror_core::exit::Exit;
use opus_mirror_core::git::BackupRepo;
use opus_mirror_core::mirror;

pub fn run(ctx: &mut Context, args: &SourceArg) -> Result<Exit> {
    let cfg = ctx.config()?;
    let sources = cfg.select_sources(args.source.as_deref())?;
    let _lock = ctx.lock(&cfg)?;
    let mut exit = Exit::Ok;
    let mut reports = Vec::new();
    for s in sources {
        let backup =
            BackupRepo::create(&BackupRepo::location(&cfg.state_dir, &s.name), &s.snapshot_branch, &s.path)?;
        match mirror::run(&backup, s, &cfg.network, ctx.now) {
            Ok(r) => {
                for c in &r.imported {
                    let kept = c
                        .preserved_as
                        .as_deref()
                        .map(|p| format!(" (old tip kept as {p})"))
                        .unwrap_or_default();
                    ctx.say(format!("{}: {} {}{kept}", s.name, c.action, c.refname))?;
                }
                mirror::save_pushed(&cfg, s, &backup, &r, ctx.now)?;
                match &r.mirror {
                    Some(url) => {
                        for p in &r.mirror_preserved {
                            ctx.say(format!("{}: the mirror's old tip kept as {p}", s.name))?;
                        }
                        ctx.say(format!("{}: mirror {url}: {} ref(s) pushed, every ref confirmed", s.name, r.pushed.len()))?;
                    }
                    None => ctx.say(format!(
                        "{}: refs are in the backup repo; no mirror configured (set mirror = \"URL\" in its [[source]])",
                        s.name
                    ))?,
                }
                reports.push(r);
            }
            Err(e) => {
                ctx.item_error(&s.name, Some(&s.name), None, &e);
                exit = exit.combine(exit_for(&e));
            }
        }
    }
    if ctx.mode.json {
        ctx.json(&reports)?;
    }
    Ok(exit)
}
