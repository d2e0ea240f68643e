//! `opus-mirror diff`: what changed between two snapshots, or since the newest one.

use std::collections::HashMap;

use anyhow::Result;
use serde_json::json;

use crate::cli::DiffArgs;
use crate::context::Context;
use opus_mirror_core::exit::Exit;
use opus_mirror_core::git::BackupRepo;
use opus_mirror_core::snapshot::diff::{self, ChangeKind, Summary};
use opus_mirror_core::snapshot::history::{self, Pick};

pub fn run(ctx: &mut Context, args: &DiffArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let mut exit = Exit::Ok;
    let mut all = Vec::new();
    for s in cfg.select_sources(args.source.source.as_deref())? {
        let repo = BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &s.name))?;
        let pick = |id: &Option<String>| id.clone().map(Pick::Id).unwrap_or(Pick::Latest);
        let from = history::resolve(&repo, &s.snapshot_branch, &s.name, &pick(&args.from))?;
        let from_tree = git2::Oid::from_str(&from.tree)?;
        let (to_label, changes) = match &args.to {
            Some(_) => {
                let to = history::resolve(&repo, &s.snapshot_branch, &s.name, &pick(&args.to))?;
                let odb = repo.repo.odb()?;
                let c =
                    diff::diff(&odb, &HashMap::new(), Some(from_tree), Some(git2::Oid::from_str(&to.tree)?))?;
                (to.short.clone(), c)
            }
            None => {
                let (repo, built) = opus_mirror_core::snapshot::build_live(&cfg, s)?;
                let odb = repo.repo.odb()?;
                if !built.skipped.is_empty() {
                    exit = exit.combine(Exit::Warnings);
                    let text = format!(
                        "{}: {} item(s) of the live directory could not be read",
                        s.name,
                        built.skipped.len()
                    );
                    ctx.note_warning(&text, Some(&s.name), None);
                }
                ("live".to_string(), diff::diff(&odb, &built.trees, Some(from_tree), Some(built.tree))?)
            }
        };
        let summary = Summary::of(&changes);
        if ctx.mode.json {
            all.push(json!({"source": s.name, "from": from.id, "to": to_label, "summary": summary, "changes": changes}));
            continue;
        }
        ctx.say(format!("{}: {} → {}", s.name, from.short, to_label))?;
        for c in &changes {
            let sign = match c.kind {
                ChangeKind::Added => '+',
                ChangeKind::Modified => '~',
                ChangeKind::Deleted => '-',
            };
            let suffix = if c.what == "dir" { "/" } else { "" };
            ctx.say(format!("{sign} {}{suffix}", c.path))?;
        }
        ctx.say(format!(
            "{} added, {} modified, {} deleted",
            summary.added, summary.modified, summary.deleted
        ))?;
    }
    if ctx.mode.json {
        ctx.json(&all)?;
    }
    Ok(exit)
}
