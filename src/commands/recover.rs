//! `opus-mirror recover`: the worst day in one command. From a directory of bundles (the
//! backup drive), it writes a config for the recovered source, rebuilds the backup repo with
//! every snapshot (so `snapshots`, `restore --at` and the next `run` go on with the same
//! history and bundles), and brings the working tree back exactly as at the newest snapshot,
//! by the runbook's own git-only procedure (see `drill`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::cli::RecoverArgs;
use crate::context::Context;
use opus_mirror_core::bundle::manifest::Manifest;
use opus_mirror_core::config;
use opus_mirror_core::exit::{Exit, UserError};
use opus_mirror_core::git::BackupRepo;

pub fn run(ctx: &mut Context, args: &RecoverArgs) -> Result<Exit> {
    let started = Instant::now();
    let to = std::path::absolute(&args.to)?;
    if to.exists() && std::fs::read_dir(&to)?.next().is_some() {
        return Err(UserError::usage(format!(
            "{} is not empty\n  fix: recover into a new or empty directory",
            to.display()
        ))
        .into());
    }
    let path = config::locate(ctx.global.config.as_deref(), &crate::context::env_var)?;
    if path.exists() {
        return Err(UserError::usage(format!(
            "a config already exists at {}\n  fix: recover on a fresh machine, or pass --config NEW_PATH for the recovered setup",
            path.display()
        ))
        .into());
    }
    let at = match &args.at {
        Some(t) => Some(
            opus_mirror_core::timeparse::parse_time(t).map_err(|e| UserError::usage(format!("--at: {e}")))?,
        ),
        None => None,
    };
    if is_mirror(&args.from) {
        return from_mirror(
            ctx,
            &args.from.display().to_string(),
            &to,
            args.source.as_deref(),
            &path,
            started,
            at,
        );
    }
    let (from, source, text) = match args.from.to_str().and_then(|s| s.strip_prefix("rclone:")) {
        Some(remote) => {
            let Some(source) = args.source.clone() else {
                return Err(UserError::usage(format!(
                    "recovering from rclone needs the source's name\n  fix: `rclone lsf {remote}` lists the bundles, named SOURCE-DATE.bundle; pass --source SOURCE"
                ))
                .into());
            };
            let text = format!(
                "# Written by `opus-mirror recover` from rclone {shown}.\n\n[[source]]\nname = {source:?}\npath = {to:?}\n\n[[target]]\nname = \"offsite\"\nkind = \"rclone\"\nremote = {remote:?}\n",
                shown = config::mask_url(remote),
                to = to.display().to_string(),
            );
            (From::Rclone(remote.to_string()), source, text)
        }
        None => {
            let from = std::path::absolute(&args.from)?;
            let source = pick_source(&from, args.source.as_deref())?;
            let one = any_manifest(&from, &source)?;
            let text = format!(
                "# Written by `opus-mirror recover` from {from}.\n\n[[source]]\nname = {name:?}\npath = {to:?}\nsnapshot_branch = {branch:?}\n\n[[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {from:?}\n",
                from = from.display().to_string(),
                name = source,
                to = to.display().to_string(),
                branch = snapshot_branch_of(&one),
            );
            (From::Drive(from), source, text)
        }
    };
    std::fs::create_dir_all(&to).with_context(|| format!("cannot create {}", to.display()))?;
    opus_mirror_core::atomic::write_file(&path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    ctx.say(format!("wrote {}", path.display()))?;
    let mut made = None;
    let done = rebuild(ctx, &from, &to, &source, args.identity.as_deref(), at, &mut made);
    if done.is_err() {
        undo(&path, &to, made.as_deref());
    }
    let with_setup = done?;
    ctx.say(format!(
        "recovered `{source}` into {} in {:.1}s\n{}",
        to.display(),
        started.elapsed().as_secs_f64(),
        left_to_do(with_setup)
    ))?;
    Ok(Exit::Ok)
}

/// After a failed recover, nothing half-done stays in the way of the next try: the config it
/// wrote, the directory it filled (empty before: checked), and the backup repo it made (new:
/// [`fresh_repo`] checked).
fn undo(config_path: &Path, to: &Path, made: Option<&Path>) {
    if let Some(repo) = made {
        let _ = std::fs::remove_dir_all(repo);
    }
    let _ = std::fs::remove_file(config_path);
    let _ = std::fs::remove_dir_all(to);
}

/// Recover never writes into an existing backup repo (its snapshots would be replaced by
/// the drive's or the mirror's): that one is the user's to keep.
fn fresh_repo(cfg: &opus_mirror_core::config::Config, source: &str) -> Result<PathBuf> {
    let loc = BackupRepo::location(&cfg.state_dir, source);
    if loc.exists() {
        return Err(UserError::usage(format!(
            "a backup repo of `{source}` already exists at {}\n  fix: keep it — it may hold newer snapshots; restore from it with `opus-mirror restore`, or recover with another state dir (OPUS_MIRROR_STATE_DIR)",
            loc.display()
        ))
        .into());
    }
    Ok(loc)
}

/// Where the bundles of a recover come from.
enum From {
    /// A dir target's directory (the backup drive).
    Drive(PathBuf),
    /// An rclone remote (`REMOTE:PATH` or a connection string).
    Rclone(String),
}

impl std::fmt::Display for From {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            From::Drive(p) => write!(f, "{}", p.display()),
            From::Rclone(r) => write!(f, "rclone {}", config::mask_url(r)),
        }
    }
}

/// The backup repo from the target's chain, then the working tree from the backup repo.
fn rebuild(
    ctx: &mut Context,
    from: &From,
    to: &Path,
    source: &str,
    identity: Option<&Path>,
    at: Option<chrono::DateTime<chrono::Utc>>,
    made: &mut Option<PathBuf>,
) -> Result<bool> {
    let source = source.to_string();
    let cfg = ctx.config()?;
    let _lock = ctx.lock(&cfg)?;
    let t = cfg.targets.first().expect("the config written above has its target");
    let one = opus_mirror_core::target::list(t, &source)?
        .into_iter()
        .filter_map(|l| l.manifest)
        .find(|m| m.verified)
        .ok_or_else(|| {
            UserError::usage(format!(
                "{from} holds no verified bundle of `{source}`\n  fix: check the name with --source, and the remote or directory"
            ))
        })?;
    let snapshot_branch = snapshot_branch_of(&one);
    let repo = fresh_repo(&cfg, &source)?;
    *made = Some(repo.clone());
    let applied = opus_mirror_core::bundle::create::restore_chain(&cfg, &source, t, &repo, identity)
        .with_context(|| format!("cannot rebuild the backup repo of `{source}` from {from}"))?;
    ctx.say(format!("backup repo {}: {} bundle(s) applied", repo.display(), applied.len()))?;
    let snaps = opus_mirror_core::snapshot::history::list(&BackupRepo::open(&repo)?, &snapshot_branch)?;
    ctx.say(format!("{} snapshot(s) of `{source}` are back", snaps.len()))?;
    let drive = match from {
        From::Drive(p) => opus_mirror_core::setup::Recovered::Drive(p),
        From::Rclone(r) => opus_mirror_core::setup::Recovered::Rclone(r),
    };
    let setup = restore_setup(ctx, &repo, &source, to, drive)?;

    // The newest bundle by content (the chain `restore_chain` applied), never by a date that
    // a wrong clock may have written.
    let chain = opus_mirror_core::bundle::create::newest_chain(&cfg, &source, t)?;
    let tip = chain.last().expect("a chain has at least one bundle");
    let code_branch = tip.code_branch(&snapshot_branch);
    for note in
        opus_mirror_core::layout::lay_out(&repo, to, code_branch.as_deref(), &snapshot_branch, &source, at)?
            .notes
    {
        ctx.say(note)?;
    }
    if code_branch.is_some() {
        restore_remotes(ctx, to, setup.as_ref())?;
    }
    Ok(setup.is_some())
}

/// What is left for the user after a recover.
fn left_to_do(with_setup: bool) -> &'static str {
    if with_setup {
        "left to do: `opus-mirror config check` (the variables it names go in `.env`, from `.env.example`), `opus-mirror hook install`, `opus-mirror schedule install`"
    } else {
        "left to do: `opus-mirror config check` (add your mirror, other targets and notify settings), `.env` from `.env.example`, `opus-mirror hook install`, `opus-mirror schedule install`"
    }
}

/// Writes the config the backup carried (see `setup`): the same source, mirror, targets,
/// retention, notify and network settings, with this machine's paths. Kept only if it loads
/// as a valid config; otherwise the minimal one stays and the user is told.
fn restore_setup(
    ctx: &mut Context,
    repo: &Path,
    source: &str,
    to: &Path,
    from: opus_mirror_core::setup::Recovered<'_>,
) -> Result<Option<opus_mirror_core::setup::Setup>> {
    let Some(setup) = opus_mirror_core::setup::load(&BackupRepo::open(repo)?) else {
        ctx.say("the backup carries no setup record (made before opus-mirror kept one): the config has the source and where it came from only")?;
        return Ok(None);
    };
    let path = config::locate(ctx.global.config.as_deref(), &crate::context::env_var)?;
    let minimal = std::fs::read(&path)?;
    let text = opus_mirror_core::setup::recovered_config(&setup, source, to, from)?;
    opus_mirror_core::atomic::write_file(&path, text.as_bytes())?;
    match config::load(&path, &crate::context::env_var) {
        Ok(cfg) if cfg.sources.iter().any(|s| s.name == source) => {
            ctx.say(format!("the setup came back with the backup: {}", path.display()))?;
            for line in text.lines().filter(|l| l.starts_with("# left out:")) {
                ctx.say(format!("  {}", line.trim_start_matches("# ")))?;
            }
            Ok(Some(setup))
        }
        Ok(_) | Err(_) => {
            opus_mirror_core::atomic::write_file(&path, &minimal)?;
            ctx.say("the backup's setup record is not a valid config here: kept the minimal one (check it with `opus-mirror config check`)")?;
            Ok(None)
        }
    }
}

/// The remotes the source had (origin at the real upstream again), beside `backup`.
fn restore_remotes(
    ctx: &mut Context,
    to: &Path,
    setup: Option<&opus_mirror_core::setup::Setup>,
) -> Result<()> {
    let Some(setup) = setup else { return Ok(()) };
    let repo = git2::Repository::open(to)?;
    for (name, url) in &setup.remotes {
        if url.contains("****") {
            ctx.say(format!(
                "  remote `{name}` held a credential in its URL: set it with `git remote set-url {name} URL`"
            ))?;
            continue;
        }
        // Names and URLs come from the backup: git's own rules decide what is a valid name.
        if !git2::Remote::is_valid_name(name) {
            continue;
        }
        let done = match repo.find_remote(name) {
            Ok(_) => repo.remote_set_url(name, url).map(|_| ()),
            Err(_) => repo.remote(name, url).map(|_| ()),
        };
        if let Err(e) = done {
            ctx.say(format!("  could not restore remote `{name}`: {}", e.message()))?;
        }
    }
    Ok(())
}

/// Whether `--from` names a mirror (a URL, or a bare repository) rather than a bundle dir.
fn is_mirror(from: &Path) -> bool {
    let s = from.display().to_string();
    s.contains("://") || (from.join("HEAD").is_file() && from.join("refs").is_dir())
}

/// Recovers from the mirror: every ref fetched into a new backup repo, a config with the
/// mirror, and the working tree laid out as from a drive.
fn from_mirror(
    ctx: &mut Context,
    url: &str,
    to: &Path,
    named: Option<&str>,
    config_path: &Path,
    started: Instant,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Exit> {
    let url = match Path::new(url).is_absolute() || url.contains("://") {
        true => url.to_string(),
        false => std::path::absolute(url)?.display().to_string(),
    };
    let source = match named {
        Some(n) => n.to_string(),
        None => url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("source")
            .trim_end_matches(".git")
            .to_string(),
    };
    let branch = opus_mirror_core::config::DEFAULT_SNAPSHOT_BRANCH;
    let text = format!(
        "# Written by `opus-mirror recover` from the mirror {shown}.\n\n[[source]]\nname = {source:?}\npath = {to:?}\nmirror = {url:?}\nsnapshot_branch = {branch:?}\n",
        shown = opus_mirror_core::config::mask_url(&url),
        to = to.display().to_string(),
    );
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    opus_mirror_core::atomic::write_file(config_path, text.as_bytes())
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    ctx.say(format!("wrote {}", config_path.display()))?;
    let mut made: Option<PathBuf> = None;
    let done = (|| -> Result<bool> {
        let cfg = ctx.config()?;
        let _lock = ctx.lock(&cfg)?;
        let s = cfg.sources.first().expect("the config written above has its source");
        let loc = fresh_repo(&cfg, &s.name)?;
        made = Some(loc.clone());
        let backup = BackupRepo::create(&loc, branch, to)?;
        opus_mirror_core::git::remote::fetch(
            &cfg.network,
            &backup.repo,
            &url,
            &["+refs/*:refs/*".to_string()],
        )?;
        let refs = opus_mirror_core::git::remote::ls_remote(&cfg.network, &backup.repo, &url)?;
        let head = refs.iter().find(|r| r.name == "HEAD").map(|r| r.oid);
        // The code branch: the one the mirror's HEAD names, else main, master, or the only one
        // (a bare mirror's HEAD often names a branch that was never pushed).
        let heads: Vec<(&str, git2::Oid)> = refs
            .iter()
            .filter_map(|r| r.name.strip_prefix("refs/heads/").map(|b| (b, r.oid)))
            .filter(|(b, _)| *b != branch)
            .collect();
        let code_branch = heads
            .iter()
            .find(|(_, o)| Some(*o) == head)
            .or_else(|| heads.iter().find(|(b, _)| *b == "main"))
            .or_else(|| heads.iter().find(|(b, _)| *b == "master"))
            .or_else(|| if heads.len() == 1 { heads.first() } else { None })
            .map(|(b, _)| b.to_string());
        let snaps = opus_mirror_core::snapshot::history::list(&BackupRepo::open(&loc)?, branch)?;
        ctx.say(format!(
            "backup repo {}: {} snapshot(s) of `{source}` are back",
            loc.display(),
            snaps.len()
        ))?;
        let setup = restore_setup(ctx, &loc, &source, to, opus_mirror_core::setup::Recovered::Mirror(&url))?;
        for note in
            opus_mirror_core::layout::lay_out(&loc, to, code_branch.as_deref(), branch, &source, at)?.notes
        {
            ctx.say(note)?;
        }
        if code_branch.is_some() {
            restore_remotes(ctx, to, setup.as_ref())?;
        }
        Ok(setup.is_some())
    })();
    if done.is_err() {
        undo(config_path, to, made.as_deref());
    }
    let with_setup = done?;
    ctx.say(format!(
        "recovered `{source}` from the mirror into {} in {:.1}s\n{}",
        to.display(),
        started.elapsed().as_secs_f64(),
        left_to_do(with_setup)
    ))?;
    Ok(Exit::Ok)
}

/// The source whose bundles are in `dir`: the one named, or the only one there.
fn pick_source(dir: &Path, named: Option<&str>) -> Result<String> {
    let mut names: Vec<String> =
        manifests(dir)?.into_iter().filter(|m| m.verified).map(|m| m.source).collect();
    names.sort();
    names.dedup();
    match (named, names.as_slice()) {
        (Some(n), _) if names.iter().any(|x| x == n) => Ok(n.to_string()),
        (Some(n), _) => Err(UserError::usage(format!(
            "{} holds no verified bundle of `{n}` (it has: {})\n  fix: name one of those with --source",
            dir.display(),
            names.join(", ")
        ))
        .into()),
        (None, [one]) => Ok(one.clone()),
        (None, []) => Err(UserError::usage(format!(
            "{} holds no verified opus-mirror bundle\n  fix: point --from at the directory of a dir target (it has a .opus-mirror-target file)",
            dir.display()
        ))
        .into()),
        (None, many) => Err(UserError::usage(format!(
            "{} holds bundles of several sources: {}\n  fix: name one with --source",
            dir.display(),
            many.join(", ")
        ))
        .into()),
    }
}

/// Every manifest in `dir` that names the file it sits beside.
fn manifests(dir: &Path) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        let Some(bundle) = name.strip_suffix(".json") else { continue };
        // The drive is not trusted: a FIFO is never waited on, a symlink never followed.
        let bytes = opus_mirror_core::safe_fs::read_regular(&e.path(), 16 << 20).ok().flatten();
        if let Some(m) = bytes.and_then(|b| serde_json::from_slice::<Manifest>(&b).ok()) {
            if m.file == bundle {
                out.push(m);
            }
        }
    }
    Ok(out)
}

/// A verified manifest of `source` (each names the snapshot branch among its refs).
fn any_manifest(dir: &Path, source: &str) -> Result<Manifest> {
    manifests(dir)?
        .into_iter()
        .find(|m| m.verified && m.source == source)
        .with_context(|| format!("no verified bundle of `{source}` in {}", dir.display()))
}

/// The snapshot branch: the `refs/heads/` ref that points at the manifest's snapshot.
fn snapshot_branch_of(m: &Manifest) -> String {
    m.refs
        .iter()
        .find(|(name, oid)| name.starts_with("refs/heads/") && Some(*oid) == m.snapshot.as_ref())
        .and_then(|(name, _)| name.strip_prefix("refs/heads/"))
        .unwrap_or(opus_mirror_core::config::DEFAULT_SNAPSHOT_BRANCH)
        .to_string()
}
