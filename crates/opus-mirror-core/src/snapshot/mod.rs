//! Vault snapshots: the whole source directory as it is on disk, committed into an orphan
//! branch of the source's backup repo. The user's own repository is only ever read.
//!
//! One snapshot: stat walk → hash what the stat cache cannot vouch for (new blobs streamed
//! into one pack) → build trees → if the root tree equals the previous snapshot's, stop
//! ("unchanged") → else write the commit into the same pack, install the pack, move the
//! branch (compare-and-swap), save the stat cache.

pub mod diff;
pub mod filter;
pub mod hash;
pub mod history;
pub mod maintain;
pub mod modes;
pub mod statcache;
pub mod tree;
pub mod walk;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use git2::Oid;
use serde::Serialize;

use crate::config::{Config, Source};
pub use crate::git::objects::host;
use crate::git::objects::{self, Kind, Signature, TreeEntry};
use crate::git::pack::PackWriter;
use crate::git::BackupRepo;
use diff::{Change, Summary};
use statcache::StatCache;
use tree::{Counts, TreeBuilder};
use walk::Skipped;

/// Where a source's stat cache lives.
pub(crate) fn cache_path(state_dir: &std::path::Path, name: &str) -> PathBuf {
    state_dir.join("cache").join(format!("{name}.statcache"))
}

/// What one snapshot did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub source: String,
    /// The new snapshot, or None when nothing changed.
    pub created: Option<String>,
    /// The newest snapshot after this run.
    pub snapshot: Option<String>,
    pub previous: Option<String>,
    pub time: String,
    #[serde(flatten)]
    pub counts: Counts,
    pub changes: Summary,
    /// Files whose content was read this time (the stat cache vouched for the rest).
    pub read_files: u64,
    pub read_bytes: u64,
    pub new_objects: u64,
    pub excluded: u64,
    /// Our own directories inside the source, left out ("the state dir (.opus-state)").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub own_excluded: Vec<String>,
    /// Secret-looking files left out (`include_secrets = true` keeps them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets_left_out: Vec<String>,
    pub skipped: Vec<Skipped>,
    pub elapsed_ms: u64,
    /// Set when this snapshot crossed a guard threshold.
    pub guard: Option<crate::guard::Alarm>,
}

/// The live directory turned into trees, without committing anything.
pub struct Built {
    pub tree: Oid,
    pub trees: HashMap<Oid, Vec<TreeEntry>>,
    pub counts: Counts,
    pub skipped: Vec<Skipped>,
    pub excluded: u64,
    pub secrets: Vec<Vec<u8>>,
    pub read_files: u64,
    pub read_bytes: u64,
    pub new_objects: u64,
    /// The permission bits of what went into the tree (recorded in the commit message).
    pub modes: modes::Modes,
    files: Vec<walk::FileRec>,
}

/// Loads the stat cache if it may be trusted for this backup repo.
fn trusted_cache(repo: &BackupRepo, path: &std::path::Path) -> StatCache {
    let cache = StatCache::load(path);
    match cache.commit {
        Some(c) if repo.repo.odb().map(|o| o.exists(c)).unwrap_or(false) => cache,
        _ => StatCache::default(),
    }
}

/// Walks and hashes the source. With `pack`, new objects are written into it.
fn build(
    source: &Source,
    own: &[filter::OwnDir],
    repo: &BackupRepo,
    cache: &StatCache,
    pack: Option<&mut PackWriter>,
    progress: &dyn crate::progress::Report,
) -> Result<Built> {
    let filter = filter::Filter::new(source)?.with_own(own);
    let mut scan = walk::scan(&source.path, &filter)
        .with_context(|| format!("cannot read the source directory {}", source.path.display()))?;
    let odb = repo.repo.odb()?;
    let mut todo = Vec::new();
    {
        let mut all = Vec::new();
        walk::files_mut(&mut scan.root, &mut all);
        for f in all {
            match cache.lookup(&f.rel, &f.stat, f.exec) {
                Some(oid) => f.oid = Some(oid),
                None => todo.push(f),
            }
        }
    }
    let mut skipped = std::mem::take(&mut scan.skipped);
    after_walk_test_hook();
    let mut pack = pack;
    let hs = hash::hash_files(&source.path, todo, &odb, pack.as_deref_mut(), &mut skipped, progress)?;
    let mut tb = TreeBuilder::new(&odb, pack);
    let tree = tb.build(&scan.root)?;
    let (trees, counts, tree_objects) = (tb.trees, tb.counts, tb.new_objects);
    let mut files = Vec::new();
    collect_files(scan.root, &mut files);
    let in_tree = files.iter().filter(|f| f.oid.is_some()).map(|f| (f.rel.as_slice(), f.perm, f.exec));
    let modes = modes::Modes::collect(in_tree, &scan.dirs);
    Ok(Built {
        modes,
        tree,
        trees,
        counts,
        skipped,
        excluded: scan.excluded,
        secrets: std::mem::take(&mut scan.secrets),
        read_files: hs.files,
        read_bytes: hs.bytes,
        new_objects: hs.new_objects + tree_objects,
        files,
    })
}

/// Test builds only: runs `OPUS_MIRROR_TEST_AFTER_WALK` (a shell command) between the walk
/// and the reads, so race tests can swap files deterministically. Release builds have no hook.
fn after_walk_test_hook() {
    #[cfg(debug_assertions)]
    if let Ok(cmd) = std::env::var("OPUS_MIRROR_TEST_AFTER_WALK") {
        let _ = std::process::Command::new("sh").arg("-c").arg(cmd).status();
    }
}

fn collect_files(nodes: Vec<(Vec<u8>, walk::Node)>, out: &mut Vec<walk::FileRec>) {
    for (_, n) in nodes {
        match n {
            walk::Node::File(f) => out.push(f),
            walk::Node::Dir(c) => collect_files(c, out),
            walk::Node::Symlink { .. } => {}
        }
    }
}

/// Builds the live tree without writing anything (for `diff` against the live directory).
pub fn build_live(cfg: &Config, source: &Source) -> Result<(BackupRepo, Built)> {
    let repo = BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &source.name))?;
    let cache = trusted_cache(&repo, &cache_path(&cfg.state_dir, &source.name));
    let own = filter::own_dirs(cfg, source);
    let built = build(source, &own, &repo, &cache, None, &crate::progress::NoProgress)?;
    Ok((repo, built))
}

/// Takes one snapshot of `source`. The caller holds the run lock.
pub fn take(cfg: &Config, source: &Source, now: DateTime<Utc>) -> Result<Outcome> {
    take_with(cfg, source, now, &crate::progress::NoProgress)
}

/// The safety snapshot a restore in place takes of the live directory first: marked
/// (`Purpose: safety`) so that `latest` and `--at` keep meaning the user's own snapshots.
pub fn take_safety(cfg: &Config, source: &Source, now: DateTime<Utc>) -> Result<Outcome> {
    take_unexplained(cfg, source, now, &crate::progress::NoProgress, true).map_err(|e| {
        let repo = BackupRepo::location(&cfg.state_dir, &source.name);
        crate::diskfull::explain(e, &repo, &format!("writing the safety snapshot of `{}`", source.name))
    })
}

/// [`take`], reporting how many bytes it has read so far.
pub fn take_with(
    cfg: &Config,
    source: &Source,
    now: DateTime<Utc>,
    progress: &dyn crate::progress::Report,
) -> Result<Outcome> {
    take_unexplained(cfg, source, now, progress, false).map_err(|e| {
        let repo = BackupRepo::location(&cfg.state_dir, &source.name);
        crate::diskfull::explain(e, &repo, &format!("writing the snapshot of `{}`", source.name))
    })
}

fn take_unexplained(
    cfg: &Config,
    source: &Source,
    now: DateTime<Utc>,
    progress: &dyn crate::progress::Report,
    safety: bool,
) -> Result<Outcome> {
    let started = Instant::now();
    let repo = BackupRepo::create(
        &BackupRepo::location(&cfg.state_dir, &source.name),
        &source.snapshot_branch,
        &source.path,
    )?;
    let cache_file = cache_path(&cfg.state_dir, &source.name);
    let cache = trusted_cache(&repo, &cache_file);
    let previous = repo.tip(&source.snapshot_branch)?;
    let (prev_tree, prev_modes) = match previous {
        Some(c) => {
            let commit = repo
                .repo
                .find_commit(c)
                .with_context(|| format!("snapshot {c} is missing from the backup repo"))?;
            (Some(commit.tree_id()), modes::Modes::parse(commit.message_raw_bytes()))
        }
        None => (None, None),
    };

    // Wall-clock time (not the `now` input, which tests may move): files modified within a
    // second before the walk may change again unnoticed within the same timestamp tick.
    let racy_after = wall_clock_ns() - 1_000_000_000;
    let mut pack = PackWriter::create(&repo.pack_dir()).context("cannot start a pack in the backup repo")?;
    let own = filter::own_dirs(cfg, source);
    let built = match build(source, &own, &repo, &cache, Some(&mut pack), progress) {
        Ok(b) => b,
        Err(e) => {
            pack.abandon();
            return Err(e);
        }
    };
    let odb = repo.repo.odb()?;
    let time = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut outcome = Outcome {
        source: source.name.clone(),
        created: None,
        snapshot: previous.map(|o| o.to_string()),
        previous: previous.map(|o| o.to_string()),
        time: time.clone(),
        counts: built.counts,
        changes: Summary::default(),
        read_files: built.read_files,
        read_bytes: built.read_bytes,
        new_objects: built.new_objects,
        excluded: built.excluded,
        secrets_left_out: built.secrets.iter().map(|p| crate::human::display_path(p)).collect(),
        own_excluded: own
            .iter()
            .map(|o| format!("{} ({})", o.what, crate::human::display_path(&o.rel)))
            .collect(),
        skipped: built.skipped.clone(),
        elapsed_ms: 0,
        guard: None,
    };
    let file_refs: Vec<&walk::FileRec> = built.files.iter().collect();
    // The setup rides along (see `setup`); a config we cannot read costs the record, not the snapshot.
    let staged = match crate::setup::current(cfg, source) {
        Ok(s) => crate::setup::stage(&repo, &s, &mut pack, now.timestamp())?,
        Err(e) => {
            tracing::warn!("the setup record of `{}` was not updated: {e:#}", source.name);
            None
        }
    };

    // A chmod alone (a note made private) is a change worth a snapshot.
    if prev_tree == Some(built.tree) && prev_modes.as_ref() == Some(&built.modes) {
        pack.finish().context("cannot write the pack")?;
        if let Some(st) = staged {
            crate::setup::commit(&repo, st)?;
        }
        // Save refreshed stat data so touched-but-unchanged files are not re-read next time.
        if built.read_files > 0 || cache.commit != previous {
            if let Some(c) = previous {
                StatCache::save(&cache_file, c, &file_refs, racy_after)
                    .context("cannot save the stat cache")?;
            }
        }
        outcome.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(outcome);
    }

    let changes: Vec<Change> = diff::diff(&odb, &built.trees, prev_tree, Some(built.tree))?;
    let summary = Summary::of(&changes);
    let mut message = commit_message(source, &time, &built, &summary);
    if let Ok(user) = git2::Repository::open(&source.path) {
        message.push_str(&head_trailer(&user));
        message.push_str(&staged_trailers(&user));
        message.push_str(&left_out_trailers(&user, &built.secrets));
    }
    if safety {
        message.push_str(&format!("{}: {}\n", history::PURPOSE, history::SAFETY));
    }
    let sig = Signature {
        name: "opus-mirror".into(),
        email: format!("opus-mirror@{}", host()),
        time: now.timestamp(),
    };
    let commit_data = objects::commit_bytes(built.tree, previous, &sig, &message);
    let commit = pack.add(Kind::Commit, &commit_data)?;
    pack.finish().context("cannot write the pack into the backup repo")?;
    repo.advance(&source.snapshot_branch, commit, previous, &format!("opus-mirror: snapshot {time}"))?;
    if let Some(st) = staged {
        crate::setup::commit(&repo, st)?;
    }
    StatCache::save(&cache_file, commit, &file_refs, racy_after).context("cannot save the stat cache")?;
    maintain::after_snapshot(&repo).context("cannot tidy the backup repo's packs")?;

    if let Some(prev) = previous {
        let prev_files = history::file_count(&repo, prev)?;
        let files =
            |k: diff::ChangeKind| changes.iter().filter(|c| c.kind == k && c.what != "dir").count() as u64;
        let (deleted, modified) = (files(diff::ChangeKind::Deleted), files(diff::ChangeKind::Modified));
        let truncated = changes.iter().filter(|c| c.emptied).count() as u64;
        let reasons = crate::guard::evaluate(&cfg.guard, prev_files, deleted, modified, truncated);
        if !reasons.is_empty() {
            let prev_id = prev.to_string();
            let short = crate::human::short_id(&prev_id);
            outcome.guard = Some(crate::guard::Alarm {
                source: source.name.clone(),
                time: time.clone(),
                snapshot: commit.to_string(),
                previous: prev.to_string(),
                previous_files: prev_files,
                deleted,
                modified,
                truncated,
                reasons,
                restore_command: format!(
                    "opus-mirror restore --source {} --snapshot {short} --in-place --overwrite",
                    source.name
                ),
            });
        }
    }
    outcome.created = Some(commit.to_string());
    outcome.snapshot = Some(commit.to_string());
    outcome.changes = summary;
    outcome.new_objects += 1;
    outcome.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(outcome)
}

fn wall_clock_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(i64::MAX)
}

/// The commit message: a title, then `Key: value` trailers that `snapshots` reads back.
fn commit_message(source: &Source, time: &str, b: &Built, s: &Summary) -> String {
    format!(
        "opus-mirror snapshot of {name}\n\n\
         The folder exactly as it was on disk. To get it back as it was (deleted files absent,\n\
         empty folders and permission bits restored): `opus-mirror recover`, or by hand the\n\
         git commands of RESTORE.md beside the bundles (docs/disaster-recovery.md).\n\n\
         Source: {path}\nHost: {host}\nTime: {time}\nTool: opus-mirror {ver}\n\
         Files: {files}\nBytes: {bytes}\nSymlinks: {links}\nEmpty-Dirs: {dirs}\n\
         Added: {a}\nModified: {m}\nDeleted: {d}\nSkipped: {skipped}\n{modes}",
        name = source.name,
        path = source.path.display(),
        host = host(),
        ver = env!("CARGO_PKG_VERSION"),
        files = b.counts.files,
        bytes = b.counts.bytes,
        links = b.counts.symlinks,
        dirs = b.counts.empty_dirs,
        a = s.added,
        m = s.modified,
        d = s.deleted,
        skipped = b.skipped.len(),
        modes = b.modes.render(),
    )
}

/// For a git source, what was staged (the index against HEAD): `Staged: PATH` for a path
/// added or changed in the index, `Staged-Delete: PATH` for one removed from it — so a
/// recover gives `git status` back as it was, not only the files. Taken only with a new
/// snapshot (a change of the index alone is not a change of the files).
fn staged_trailers(repo: &git2::Repository) -> String {
    let Ok(index) = repo.index() else { return String::new() };
    let head = repo.head().ok().and_then(|h| h.peel_to_tree().ok());
    let Ok(diff) = repo.diff_tree_to_index(head.as_ref(), Some(&index), None) else { return String::new() };
    let mut out = String::new();
    for d in diff.deltas() {
        let (key, file) = match d.status() {
            git2::Delta::Deleted => (history::STAGED_DELETE, d.old_file()),
            _ => (history::STAGED, d.new_file()),
        };
        if let Some(p) = file.path_bytes() {
            out.push_str(&format!("{key}: {}\n", modes::quote(p)));
        }
    }
    out
}

/// For a git source, `Left-Out: PATH` for each secret-looking file the snapshot left out that
/// git tracks: without it a restore by stock git could not tell a committed `.env` that was
/// never in the snapshot from one deleted before the disaster (the runbook's `restore_extras`
/// checks it out from the branch). Names only, never contents.
fn left_out_trailers(repo: &git2::Repository, secrets: &[Vec<u8>]) -> String {
    let Ok(index) = repo.index() else { return String::new() };
    secrets
        .iter()
        .filter(|p| {
            use std::os::unix::ffi::OsStrExt;
            index.get_path(std::path::Path::new(std::ffi::OsStr::from_bytes(p)), 0).is_some()
        })
        .map(|p| format!("{}: {}\n", history::LEFT_OUT, modes::quote(p)))
        .collect()
}

/// For a git source, `Head: COMMIT REF` — what the working tree was on, so a recover `--at`
/// this snapshot can put the branch back where it was, not only the files.
fn head_trailer(repo: &git2::Repository) -> String {
    let Ok(head) = repo.head() else { return String::new() };
    match (head.target(), head.name()) {
        (Some(oid), Ok(name)) if name.starts_with("refs/heads/") && !name.contains(char::is_whitespace) => {
            format!("{}: {oid} {name}\n", history::HEAD)
        }
        _ => String::new(),
    }
}
