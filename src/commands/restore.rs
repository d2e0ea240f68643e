//! `opus-mirror restore`: bring a snapshot (or some paths of it) back, into a new directory
//! or into the live source.

use anyhow::Result;

use crate::cli::RestoreArgs;
use crate::context::Context;
use crate::output::human_bytes;
use opus_mirror_core::exit::{Exit, UserError};
use opus_mirror_core::git::BackupRepo;
use opus_mirror_core::restore;
use opus_mirror_core::snapshot::history::{self, Pick};

/// Whether two paths name the same directory (after resolving links).
fn same_dir(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

pub fn run(ctx: &mut Context, args: &RestoreArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let sources = cfg.select_sources(args.source.source.as_deref())?;
    let [source] = sources.as_slice() else {
        return Err(UserError::usage(
            "more than one source is configured\n  fix: name one with --source NAME",
        )
        .into());
    };
    // Validate the patterns before any work: a bad glob names its flag (exit 2).
    let filter = opus_mirror_core::browse::PathFilter::new(&args.include, &args.exclude)
        .map_err(|e| UserError::usage(e.to_string()))?;
    let pick = match (&args.snapshot, &args.at) {
        (Some(id), _) => Pick::Id(id.clone()),
        (None, Some(at)) => Pick::At(
            opus_mirror_core::timeparse::parse_time(at)
                .map_err(|e| UserError::usage(format!("--at: {e}")))?,
        ),
        (None, None) => Pick::Latest,
    };
    let _lock = ctx.lock(&cfg)?;
    let repo = BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &source.name))?;
    let info = history::resolve(&repo, &source.snapshot_branch, &source.name, &pick)?;
    let odb = repo.repo.odb()?;
    let paths = restore::normalise_paths(&args.paths);
    let items = restore::select(&odb, git2::Oid::from_str(&info.tree)?, &paths, &info.short)?;
    let items = restore::filter_items(items, &filter, &info.short)?;
    let modes = history::modes(&repo, &info)?;

    // `--to` the source itself is a restore in place, with all its care (a safety snapshot
    // first, newer files kept): `--force` there would have overwritten newer edits unsaved.
    let to_source = !args.in_place && args.to.as_ref().is_some_and(|d| same_dir(d, &source.path));
    if to_source {
        eprintln!(
            "note: --to is the source itself: restoring in place (safety snapshot first, newer files kept)"
        );
    }
    let report = if args.in_place || to_source {
        if !args.dry_run {
            // Whatever is live now goes into history first, so the restore cannot lose it.
            let safety = opus_mirror_core::snapshot::take_safety(&cfg, source, ctx.now)?;
            if let Some(id) = &safety.created {
                ctx.say(format!("safety snapshot of the live directory: {}", crate::output::short_id(id)))?;
            }
        }
        // A killed restore leaves a temp file; the record tells the next run where to look.
        let _record = opus_mirror_core::heal::record_restore(&cfg.state_dir, &source.path);
        restore::in_place(
            &repo,
            &items,
            &source.path,
            &info.short,
            info.at,
            restore::InPlace { overwrite: args.overwrite, dry_run: args.dry_run },
            modes.as_ref(),
        )
        .map_err(|e| opus_mirror_core::diskfull::explain(e, &source.path, "restoring in place"))?
    } else {
        let dest = args.to.as_ref().expect("clap requires --to without --in-place");
        if args.dry_run {
            restore::plan_to_dir(&repo, &items, dest, args.force, &info.short, modes.as_ref())?
        } else {
            let _record = opus_mirror_core::heal::record_restore(&cfg.state_dir, dest);
            restore::to_dir(&repo, &items, dest, args.force, &info.short, modes.as_ref())
                .map_err(|e| opus_mirror_core::diskfull::explain(e, dest, "restoring"))?
        }
    };

    let mut exit = Exit::Ok;
    if ctx.mode.json {
        ctx.json(&report)?;
    } else {
        let verb = if report.dry_run { "would restore" } else { "restored" };
        if report.dry_run {
            for p in &report.paths {
                ctx.say(format!("  {p}"))?;
            }
        }
        ctx.say(format!(
            "{verb} {} item(s), {} from snapshot {} ({}) into {}; {} already identical",
            report.restored,
            human_bytes(report.bytes),
            info.short,
            info.time,
            report.destination,
            report.unchanged
        ))?;
    }
    if !report.kept_newer.is_empty() {
        exit = Exit::Warnings;
        eprintln!(
            "warning: kept {} file(s) changed after snapshot {} was taken; to replace them too, run again with --snapshot {} --overwrite:",
            report.kept_newer.len(),
            info.short,
            info.short
        );
        for p in &report.kept_newer {
            eprintln!("  {p}");
        }
        let text = format!(
            "kept {} file(s) changed after snapshot {} was taken: {}",
            report.kept_newer.len(),
            info.short,
            report.kept_newer.join(", ")
        );
        ctx.note_warning(&text, Some(&source.name), None);
    }
    if !report.conflicts.is_empty() {
        exit = Exit::Warnings;
        eprintln!("warning: {} item(s) not restored:", report.conflicts.len());
        for c in &report.conflicts {
            eprintln!("  {c}");
            ctx.note_warning(&format!("not restored: {c}"), Some(&source.name), None);
        }
    }
    Ok(exit)
}
