//! `ls`, `cat`, `log PATH` and `find`: reading the snapshot history back, one source at a time
//! (`find` goes through every source selected). The engine is [`opus_mirror_core::browse`].

use std::os::unix::ffi::OsStrExt;

use anyhow::Result;
use chrono::{DateTime, Local, NaiveDate, TimeZone, Utc};
use git2::Oid;
use serde::Serialize;
use serde_json::json;

use crate::cli::{CatArgs, FindArgs, LogArgs, LsArgs};
use crate::context::Context;
use crate::output::display_path;
use opus_mirror_core::browse::find::{self, Pattern};
use opus_mirror_core::browse::trees::{normalise, Trees};
use opus_mirror_core::browse::{ls, path_log};
use opus_mirror_core::config::{Config, Source};
use opus_mirror_core::exit::{Exit, UserError};
use opus_mirror_core::git::objects::{MODE_EXEC, MODE_FILE, MODE_LINK, MODE_TREE};
use opus_mirror_core::git::BackupRepo;
use opus_mirror_core::snapshot::history::{self, Info, Pick};

/// The one source a command reads: named, or the only one configured.
fn one_source<'c>(cfg: &'c Config, name: Option<&str>, example: &str) -> Result<&'c Source> {
    let sources = cfg.select_sources(name)?;
    match sources.as_slice() {
        [s] => Ok(s),
        _ => Err(UserError::usage(format!(
            "more than one source is configured\n  fix: name one with --source NAME (e.g. `opus-mirror {example} --source {}`)",
            sources[0].name
        ))
        .into()),
    }
}

fn open(cfg: &Config, source: &Source) -> Result<BackupRepo> {
    BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &source.name))
}

/// Whether `s` can name a snapshot: `latest`, or 4+ hex digits (an id or a prefix of one).
fn looks_like_snapshot(s: &[u8]) -> bool {
    s == b"latest" || (s.len() >= 4 && s.len() <= 40 && s.iter().all(u8::is_ascii_hexdigit))
}

/// `SNAPSHOT:PATH` → (snapshot, path); anything else is a path of the newest snapshot.
fn split_spec(spec: &[u8]) -> (Option<String>, Vec<u8>) {
    if let Some(colon) = spec.iter().position(|b| *b == b':') {
        let (snap, path) = (&spec[..colon], &spec[colon + 1..]);
        if looks_like_snapshot(snap) {
            return (Some(String::from_utf8_lossy(snap).into_owned()), normalise(path));
        }
    }
    (None, normalise(spec))
}

fn pick(snapshot: Option<String>) -> Pick {
    snapshot.map(Pick::Id).unwrap_or(Pick::Latest)
}

fn not_in(path: &[u8], info: &Info, source: &str) -> anyhow::Error {
    UserError::usage(format!(
        "`{}` is not in snapshot {} of `{source}`\n  fix: `opus-mirror find '{}' --source {source}` shows which snapshots have it",
        display_path(path),
        info.short,
        display_path(path.rsplit(|b| *b == b'/').next().unwrap_or(path)),
    ))
    .into()
}

pub fn ls(ctx: &mut Context, args: &LsArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let source = one_source(&cfg, args.source.source.as_deref(), "ls")?;
    let repo = open(&cfg, source)?;
    let (snapshot, path) = match (&args.first, &args.second) {
        (Some(s), Some(p)) => (Some(s.to_string_lossy().into_owned()), normalise(p.as_bytes())),
        (Some(one), None) => {
            let one = one.as_bytes();
            match split_spec(one) {
                (Some(s), p) => (Some(s), p),
                (None, p) if looks_like_snapshot(one) && is_snapshot(&repo, source, one, &p)? => {
                    (Some(String::from_utf8_lossy(one).into_owned()), Vec::new())
                }
                (None, p) => (None, p),
            }
        }
        (None, _) => (None, Vec::new()),
    };
    let info = history::resolve(&repo, &source.snapshot_branch, &source.name, &pick(snapshot))?;
    let modes = history::modes(&repo, &info)?;
    let mut trees = Trees::new(repo.repo.odb()?);
    let entries = ls::list(&mut trees, modes.as_ref(), Oid::from_str(&info.tree)?, &path)?
        .ok_or_else(|| not_in(&path, &info, &source.name))?;
    if ctx.mode.json {
        let value = json!({
            "source": source.name, "snapshot": info.id, "short": info.short, "time": info.time,
            "path": display_path(&path), "modes_recorded": modes.is_some(), "entries": entries,
        });
        ctx.json(&value)?;
        return Ok(Exit::Ok);
    }
    ctx.say(format!("{} snapshot {} ({}), {} entries", source.name, info.short, info.time, entries.len()))?;
    for e in &entries {
        let suffix = if e.kind == "dir" { "/" } else { "" };
        ctx.say(format!(
            "{:<10} {:>4} {:>10}  {}{suffix}",
            e.kind,
            e.mode.as_deref().unwrap_or("-"),
            e.size.map_or("-".to_string(), |n| n.to_string()),
            e.path
        ))?;
    }
    Ok(Exit::Ok)
}

/// Whether `s` names a snapshot (`latest`, or the prefix of an id) rather than the path `p`:
/// a folder named like a hex prefix (`2026`) that the newest snapshot has stays a path.
fn is_snapshot(repo: &BackupRepo, source: &Source, s: &[u8], p: &[u8]) -> Result<bool> {
    let s = String::from_utf8_lossy(s).to_ascii_lowercase();
    if s == "latest" {
        return Ok(true);
    }
    let all = history::list(repo, &source.snapshot_branch)?;
    if !all.iter().any(|i| i.id.starts_with(&s)) {
        return Ok(false);
    }
    let Some(newest) = all.iter().find(|i| !i.safety).or(all.first()) else { return Ok(false) };
    let mut trees = Trees::new(repo.repo.odb()?);
    Ok(trees.lookup(Oid::from_str(&newest.tree)?, p)?.is_none())
}

pub fn cat(ctx: &mut Context, args: &CatArgs) -> Result<Exit> {
    let cfg = ctx.config()?;
    let source = one_source(&cfg, args.source.source.as_deref(), "cat")?;
    let (snapshot, path) = split_spec(args.spec.as_bytes());
    if path.is_empty() {
        return Err(UserError::usage(
            "cat needs a file\n  fix: `opus-mirror cat SNAPSHOT:PATH` (e.g. `opus-mirror cat latest:notes/plan.md`)",
        )
        .into());
    }
    let repo = open(&cfg, source)?;
    let info = history::resolve(&repo, &source.snapshot_branch, &source.name, &pick(snapshot))?;
    let mut trees = Trees::new(repo.repo.odb()?);
    let found =
        trees.lookup(Oid::from_str(&info.tree)?, &path)?.ok_or_else(|| not_in(&path, &info, &source.name))?;
    let shown = display_path(&path);
    match found.mode {
        MODE_FILE | MODE_EXEC => {}
        MODE_TREE => {
            return Err(UserError::usage(format!(
                "`{shown}` is a folder in snapshot {}\n  fix: `opus-mirror ls {} '{shown}'` lists it",
                info.short, info.short
            ))
            .into())
        }
        MODE_LINK => {
            let target = trees.odb.read(found.oid)?.data().to_vec();
            return Err(UserError::usage(format!(
                "`{shown}` is a symlink to `{}` in snapshot {}\n  fix: cat what it points to",
                display_path(&target),
                info.short
            ))
            .into());
        }
        _ => {
            return Err(UserError::usage(format!(
                "`{shown}` is a submodule in snapshot {}: it has no bytes here\n  fix: `opus-mirror ls {} '{shown}'`",
                info.short, info.short
            ))
            .into())
        }
    }
    if ctx.mode.json {
        let size = ls::size(&trees, found)?;
        let value = json!({
            "source": source.name, "snapshot": info.id, "short": info.short, "time": info.time,
            "path": shown, "kind": ls::kind(found.mode), "size": size, "id": found.oid.to_string(),
        });
        ctx.json(&value)?;
        return Ok(Exit::Ok);
    }
    opus_mirror_core::restore::copy_blob(&repo, found.oid, ctx.out)?;
    ctx.out.flush()?;
    Ok(Exit::Ok)
}

/// `log`: the run history, or with PATH every version of one path.
pub fn log(ctx: &mut Context, args: &LogArgs) -> Result<Exit> {
    let Some(raw) = &args.path else { return crate::commands::status::log(ctx, args) };
    let path = normalise(raw.as_bytes());
    if path.is_empty() {
        return Err(UserError::usage("log PATH needs a file or folder of the source\n  fix: `opus-mirror log notes/plan.md`, or `opus-mirror log` for the run history").into());
    }
    let cfg = ctx.config()?;
    let source = one_source(&cfg, args.source.source.as_deref(), "log PATH")?;
    let repo = open(&cfg, source)?;
    let Some(tip) = repo.tip(&source.snapshot_branch)? else {
        return Err(UserError::usage(format!(
            "source `{}` has no snapshots yet\n  fix: run `opus-mirror snapshot --source {}` first",
            source.name, source.name
        ))
        .into());
    };
    let mut trees = Trees::new(repo.repo.odb()?);
    let mut versions = path_log::versions(&repo, &mut trees, tip, &path)?;
    let shown = display_path(&path);
    if versions.is_empty() {
        return Err(UserError::usage(format!(
            "`{shown}` is in no snapshot of `{}`\n  fix: `opus-mirror find '{}' --source {}` searches every path",
            source.name,
            display_path(path.rsplit(|b| *b == b'/').next().unwrap_or(&path)),
            source.name
        ))
        .into());
    }
    if let Some(n) = args.limit {
        versions.truncate(n);
    }
    if ctx.mode.json {
        ctx.json(&json!({"source": source.name, "path": shown, "versions": versions}))?;
        return Ok(Exit::Ok);
    }
    ctx.say(format!("{} {shown}: {} change(s), newest first", source.name, versions.len()))?;
    for v in &versions {
        ctx.say(format!(
            "{:<12}  {:<20}  {:<8}  {:>10}  {:>4}{}",
            v.short,
            v.time,
            v.change.name(),
            v.size.map_or("-".to_string(), |n| n.to_string()),
            v.mode.as_deref().unwrap_or("-"),
            if v.safety { "  (safety snapshot)" } else { "" }
        ))?;
    }
    Ok(Exit::Ok)
}

/// One snapshot as `find` shows it.
#[derive(Serialize)]
struct At {
    snapshot: String,
    short: String,
    time: String,
}

impl From<&Info> for At {
    fn from(i: &Info) -> At {
        At { snapshot: i.id.clone(), short: i.short.clone(), time: i.time.clone() }
    }
}

#[derive(Serialize)]
struct Hit {
    path: String,
    first: At,
    last: At,
    /// The first snapshot after `last` without the path (None: the newest still has it).
    disappeared: Option<At>,
    /// The command that brings the last version back (for a path that is gone).
    restore: Option<String>,
}

#[derive(Serialize)]
struct Found {
    source: String,
    pattern: String,
    snapshots: usize,
    paths: Vec<Hit>,
}

/// `--since`: a date is its start; else a time, or a span back from now (`3d`).
fn since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        let midnight = d.and_hms_opt(0, 0, 0).expect("midnight is a valid time");
        if let Some(t) = Local.from_local_datetime(&midnight).earliest() {
            return Ok(t.with_timezone(&Utc));
        }
    }
    if let Ok(t) = opus_mirror_core::timeparse::parse_time(s) {
        return Ok(t);
    }
    let span = opus_mirror_core::timeparse::parse_duration(s).map_err(|_| {
        UserError::usage(format!("--since: `{s}` is neither a time nor a span\n  fix: write 2026-11-24, \"2026-11-24 18:00\" or 3d"))
    })?;
    Ok(now - span)
}

/// A path as a shell word: as is when plainly safe, else in single quotes.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub fn find(ctx: &mut Context, args: &FindArgs) -> Result<Exit> {
    let pattern = Pattern::parse(&args.pattern).map_err(|e| UserError::usage(e.to_string()))?;
    let since = args.since.as_deref().map(|s| since(s, ctx.now)).transpose()?;
    let cfg = ctx.config()?;
    let mut all = Vec::new();
    for source in cfg.select_sources(args.source.source.as_deref())? {
        let repo = open(&cfg, source)?;
        let mut snaps = history::list(&repo, &source.snapshot_branch)?;
        snaps.reverse();
        snaps.retain(|i| since.is_none_or(|t| i.at >= t));
        let roots = snaps.iter().map(|i| Oid::from_str(&i.tree)).collect::<Result<Vec<_>, _>>()?;
        let mut trees = Trees::new(repo.repo.odb()?);
        let seen = find::find(&mut trees, &roots, &pattern)?;
        let paths = seen
            .into_iter()
            .map(|(path, s)| {
                let shown = display_path(&path);
                let last = &snaps[s.last];
                Hit {
                    restore: s.disappeared.map(|_| {
                        format!(
                            "opus-mirror restore --source {} --snapshot {} --path {} --in-place",
                            shell_word(&source.name),
                            last.short,
                            shell_word(&shown)
                        )
                    }),
                    path: shown,
                    first: At::from(&snaps[s.first]),
                    last: At::from(last),
                    disappeared: s.disappeared.map(|d| At::from(&snaps[d])),
                }
            })
            .collect();
        all.push(Found {
            source: source.name.clone(),
            pattern: args.pattern.clone(),
            snapshots: snaps.len(),
            paths,
        });
    }
    if ctx.mode.json {
        ctx.json(&all)?;
        return Ok(Exit::Ok);
    }
    for f in &all {
        ctx.say(format!(
            "{}: {} path(s) matching {:?} in {} snapshot(s)",
            f.source,
            f.paths.len(),
            f.pattern,
            f.snapshots
        ))?;
        for h in &f.paths {
            let span =
                format!("seen {} ({}) → {} ({})", h.first.short, h.first.time, h.last.short, h.last.time);
            match &h.disappeared {
                None => ctx.say(format!("  {}  {span}, still there", h.path))?,
                Some(d) => {
                    ctx.say(format!("  {}  {span}, gone in {} ({})", h.path, d.short, d.time))?;
                    if let Some(cmd) = &h.restore {
                        ctx.say(format!("    bring it back: {cmd}"))?;
                    }
                }
            }
        }
    }
    Ok(Exit::Ok)
}
