//! `drill`: the periodic test restore. The newest bundle chain is fetched from a target into
//! a temp dir and restored twice: by `recover`'s own layout (`layout::lay_out`, the code a user
//! runs on the worst day) and, where `git` is installed, by the runbook's git-only procedure
//! (its text, run as it is). Each result is compared (content, mode, link, empty dirs,
//! permission bits, and for a git source what is staged) with the snapshot the bundle claims
//! to hold, as it is in the backup repo. The time to the first result is the time-to-recover.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use git2::Oid;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bundle::create;
use crate::config::{Config, Source, Target};
use crate::git::objects::{self, Kind, MODE_EXEC, MODE_LINK, MODE_TREE};
use crate::git::BackupRepo;
use crate::snapshot::tree;

/// What a drill found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub source: String,
    pub target: String,
    pub time: String,
    pub chain: Vec<String>,
    pub snapshot: String,
    pub files: u64,
    pub bytes: u64,
    /// Fetch + `recover`'s layout, in milliseconds: the time-to-recover.
    pub ttr_ms: u64,
    /// None: git is not installed.
    pub stock_git_ok: Option<bool>,
    pub problems: Vec<String>,
    /// What went wrong around a drill that ran (its state or history line not written):
    /// said, never a failure of the drill.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What is at each path of a restored directory: (mode, blob id); empty dirs as MODE_TREE.
/// Files are streamed through SHA-1 in bounded buffers (never read whole: a 286 MB file once
/// cost 309 MB resident here), on every core.
fn scan(root: &Path, skip_git: bool) -> Result<BTreeMap<Vec<u8>, (u32, Oid)>> {
    let mut out = BTreeMap::new();
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| !(skip_git && e.depth() == 1 && e.file_name() == ".git"));
    for e in walker {
        let e = e?;
        let rel = e.path().strip_prefix(root).expect("below the root").as_os_str().as_bytes().to_vec();
        let ft = e.file_type();
        if ft.is_symlink() {
            let t = std::fs::read_link(e.path())?;
            out.insert(rel, (MODE_LINK, objects::hash(Kind::Blob, t.as_os_str().as_bytes())));
        } else if ft.is_dir() {
            if std::fs::read_dir(e.path())?.next().is_none() {
                out.insert(rel, (MODE_TREE, objects::empty_tree()));
            }
        } else {
            let exec = e.metadata()?.permissions().mode() & 0o111 != 0;
            files.push((rel, if exec { MODE_EXEC } else { objects::MODE_FILE }, e.into_path()));
        }
    }
    let hashed = files
        .into_par_iter()
        .map(|(rel, mode, path)| {
            let id = std::fs::File::open(&path)
                .and_then(|mut f| crate::hashio::file_blob_id(&mut f))
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok((rel, (mode, id)))
        })
        .collect::<Result<Vec<_>>>()?;
    out.extend(hashed);
    Ok(out)
}

/// Compares a restored directory with the snapshot's items; names every difference.
fn compare(
    items: &[tree::Item],
    got: &BTreeMap<Vec<u8>, (u32, Oid)>,
    how: &str,
    with_empty_dirs: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut want: BTreeMap<&[u8], (u32, Oid)> = BTreeMap::new();
    for i in items {
        if i.mode == MODE_TREE && !with_empty_dirs {
            continue;
        }
        want.insert(&i.path, (i.mode, i.oid));
    }
    for (p, w) in &want {
        let shown = crate::human::display_path(p);
        match got.get(*p) {
            None => problems.push(format!("{how}: {shown} is missing")),
            Some(g) if g.1 != w.1 => problems.push(format!("{how}: {shown} differs from the snapshot")),
            Some(g) if g.0 != w.0 => {
                problems.push(format!("{how}: {shown} has mode {:o}, the snapshot says {:o}", g.0, w.0))
            }
            _ => {}
        }
    }
    for p in got.keys() {
        if !want.contains_key(p.as_slice()) && (with_empty_dirs || got[p].0 != MODE_TREE) {
            problems.push(format!("{how}: {} is not in the snapshot", crate::human::display_path(p)));
        }
    }
    problems
}

/// Compares the permission bits of a restored directory with what the snapshot recorded.
fn compare_modes(
    items: &[tree::Item],
    root: &Path,
    modes: &crate::snapshot::modes::Modes,
    how: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |rel: &[u8], want: u32| {
        let p = root.join(std::ffi::OsStr::from_bytes(rel));
        if let Ok(m) = std::fs::symlink_metadata(&p) {
            let got = m.permissions().mode() & 0o1777;
            if got != want {
                problems.push(format!(
                    "{how}: {} has permissions {got:04o}, the snapshot says {want:04o}",
                    crate::human::display_path(rel)
                ));
            }
        }
    };
    for i in items.iter().filter(|i| i.mode != MODE_TREE && i.mode != MODE_LINK) {
        check(&i.path, modes.of_file(&i.path, i.mode == MODE_EXEC));
    }
    for d in tree::dirs_of(items) {
        check(d, modes.of_dir(d));
    }
    problems
}

/// What differs between what `recover` wrote into `dir` and the snapshot `commit` (its
/// `items`): files, empty folders, permission bits, and for a git source what is staged.
fn recovered_problems(
    commit: &git2::Commit<'_>,
    items: &[tree::Item],
    dir: &Path,
    git_source: bool,
) -> Result<Vec<String>> {
    let msg = commit.message_raw_bytes();
    let mut got = scan(dir, git_source)?;
    for p in crate::snapshot::history::left_out(msg) {
        got.remove(&p);
    }
    let mut problems = compare(items, &got, "recover", true);
    if let Some(m) = crate::snapshot::modes::Modes::parse(msg) {
        problems.extend(compare_modes(items, dir, &m, "recover"));
    }
    if git_source {
        problems.extend(staged_problems(msg, dir));
    }
    Ok(problems)
}

/// Whether the index of a recovered repository stages what the snapshot recorded as staged.
fn staged_problems(msg: &[u8], dir: &Path) -> Vec<String> {
    let (add, remove) = crate::snapshot::history::staged_in(msg);
    // A staged secret-looking file the snapshot never held cannot be staged again.
    let want: std::collections::BTreeSet<Vec<u8>> =
        add.into_iter().chain(remove).filter(|p| !crate::snapshot::filter::looks_secret(p)).collect();
    let o = match Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["diff", "--cached", "--name-only", "--no-renames", "-z"])
        .output()
    {
        Ok(o) if o.status.success() => o,
        _ => return vec!["recover: cannot read the recovered index (git diff --cached)".into()],
    };
    let got: std::collections::BTreeSet<Vec<u8>> =
        o.stdout.split(|&b| b == 0).filter(|p| !p.is_empty()).map(<[u8]>::to_vec).collect();
    let mut problems = Vec::new();
    for p in want.difference(&got) {
        problems.push(format!("recover: {} was staged and is not", crate::human::display_path(p)));
    }
    for p in got.difference(&want) {
        problems.push(format!("recover: {} is staged and was not", crate::human::display_path(p)));
    }
    problems
}

/// Gives the owner full access to every directory below `root`, so it can be removed.
fn make_removable(root: &Path) {
    for e in walkdir::WalkDir::new(root).min_depth(1).into_iter().flatten() {
        if e.file_type().is_dir() {
            if let Ok(m) = e.metadata() {
                let mode = m.permissions().mode() | 0o700;
                let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode));
            }
        }
    }
}

/// Runs a drill of `source` from target `t`; with `runbook`, the runbook's stock-git restore
/// beside ours (a second layout of the whole vault: a run asks for it every few drills).
pub fn drill(
    cfg: &Config,
    source: &Source,
    t: &Target,
    now: chrono::DateTime<chrono::Utc>,
    identity: Option<&Path>,
    runbook: bool,
) -> Result<Report> {
    let started = Instant::now();
    let chain = create::newest_chain(cfg, &source.name, t)?;
    let tip = chain.last().expect("a chain has at least one bundle").clone();
    let claimed = tip.snapshot.clone().with_context(|| format!("{} holds no snapshot branch", tip.file))?;
    let scratch = crate::heal::scratch_dir(&cfg.state_dir, "drill")?;
    let files = create::fetch_chain(t, &chain, scratch.path(), identity)?;
    let repo_dir = scratch.path().join("restored.git");
    create::apply_chain(&chain, &files, &repo_dir)?;
    let restored = BackupRepo::open(&repo_dir)?;
    let mut problems = Vec::new();
    let branch_ref = BackupRepo::branch_ref(&source.snapshot_branch);
    let got_tip = restored.repo.refname_to_id(&branch_ref).ok().map(|o| o.to_string());
    if got_tip.as_deref() != Some(claimed.as_str()) {
        problems.push(format!("{branch_ref} in the bundle is {got_tip:?}, its manifest claims {claimed}"));
    }
    let claimed_oid = Oid::from_str(&claimed)?;
    // Our half is `recover` itself (its layout of the repository and working tree), from the
    // rebuilt chain into the scratch dir: the drill proves the code a user runs that day.
    let code_branch = tip.code_branch(&source.snapshot_branch);
    let out_dir = scratch.path().join("recovered");
    let laid = crate::layout::lay_out(
        &repo_dir,
        &out_dir,
        code_branch.as_deref(),
        &source.snapshot_branch,
        &source.name,
        None,
    )
    .context("recover from the bundles failed")?;
    let ttr_ms = started.elapsed().as_millis() as u64;

    // The runbook's stock-git restore runs beside our comparison (git's index-pack and
    // checkout on one side, hashing what recover wrote on the other): both cores, and a drill
    // costs about one restore more than a restore, not two in a row.
    let git_here = runbook && Command::new("git").arg("--version").output().is_ok();
    let stock = scratch.path().join("stock");
    let stock_branch = code_branch.clone().unwrap_or_else(|| source.snapshot_branch.clone());
    let (files_n, bytes, stock_git_ok) = std::thread::scope(|s| -> Result<_> {
        let stock_run = git_here.then(|| {
            s.spawn(|| {
                runbook_restore(
                    &chain,
                    &files,
                    scratch.path(),
                    &stock,
                    &source.name,
                    &source.snapshot_branch,
                    &stock_branch,
                )
            })
        });
        // The truth: the snapshots as the backup repo has them.
        let backup = BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &source.name))?;
        let odb = backup.repo.odb()?;
        let truth_of = |id: Oid| -> Result<(git2::Commit<'_>, Vec<tree::Item>)> {
            let c = backup
                .repo
                .find_commit(id)
                .with_context(|| format!("the backup repo has no snapshot {id}"))?;
            let items = tree::list(&odb, c.tree_id())?;
            Ok((c, items))
        };
        let (truth, items) = truth_of(claimed_oid)?;
        let truth_modes = crate::snapshot::modes::Modes::parse(truth.message_raw_bytes());
        let (files_n, bytes) =
            items.iter().filter(|i| i.mode != MODE_TREE).fold((0u64, 0u64), |(n, b), i| {
                (n + 1, b + odb.read_header(i.oid).map(|h| h.0 as u64).unwrap_or(0))
            });
        // recover lays out the newest of the user's own snapshots: the tip, unless the tip is
        // a safety snapshot of a restore in place.
        let (laid_commit, laid_items) = match Oid::from_str(&laid.snapshot)? {
            id if id == claimed_oid => (truth.clone(), items.clone()),
            id => truth_of(id)?,
        };
        let ours = recovered_problems(&laid_commit, &laid_items, &out_dir, code_branch.is_some());
        // A directory the snapshot recorded as read-only would keep the scratch dir from going.
        make_removable(&out_dir);
        let stock_result = stock_run.map(|h| h.join().expect("the runbook thread does not panic"));
        problems.extend(ours?);
        let stock_git_ok = match stock_result {
            None => None,
            Some(Ok(())) => {
                // The runbook brings back empty folders, permission bits and the committed
                // secret-looking files no snapshot holds (`Left-Out:`, from the branch).
                let mut got = scan(&stock, true)?;
                for p in crate::snapshot::history::left_out(truth.message_raw_bytes()) {
                    got.remove(&p);
                }
                let mut p = compare(&items, &got, "stock git", true);
                if let Some(m) = &truth_modes {
                    p.extend(compare_modes(&items, &stock, m, "stock git"));
                }
                make_removable(&stock);
                let good = p.is_empty();
                problems.extend(p);
                Some(good)
            }
            Some(Err(e)) => {
                problems.push(format!("stock git: {e}"));
                Some(false)
            }
        };
        Ok((files_n, bytes, stock_git_ok))
    })?;
    Ok(Report {
        source: source.name.clone(),
        target: t.name.clone(),
        time: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        chain: chain.iter().map(|m| m.file.clone()).collect(),
        snapshot: claimed,
        files: files_n,
        bytes,
        ttr_ms,
        stock_git_ok,
        problems,
        warnings: Vec::new(),
    })
}

/// Runs the runbook's own git-only procedure (section 2, "from a bundle", with the helpers of
/// section 0), word for word from the text the docs show, on the fetched chain, into `dir`.
fn runbook_restore(
    chain: &[crate::bundle::manifest::Manifest],
    files: &[std::path::PathBuf],
    scratch: &Path,
    dir: &Path,
    source: &str,
    snapshot_branch: &str,
    code_branch: &str,
) -> Result<(), String> {
    // The chain, plain, under its names, where the runbook's BUNDLE_DIR looks.
    let bundles = scratch.join("runbook-bundles");
    std::fs::create_dir_all(&bundles).map_err(|e| e.to_string())?;
    for (m, f) in chain.iter().zip(files) {
        let name = m.file.trim_end_matches(".age");
        std::fs::hard_link(f, bundles.join(name))
            .or_else(|_| std::fs::copy(f, bundles.join(name)).map(|_| ()))
            .map_err(|e| format!("cannot stage {name}: {e}"))?;
    }
    let tmp = scratch.join("runbook-tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let vars: [(&str, &std::ffi::OsStr); 9] = [
        ("SOURCE", source.as_ref()),
        ("SNAPSHOT_BRANCH", snapshot_branch.as_ref()),
        ("BRANCH", code_branch.as_ref()),
        ("BUNDLE_DIR", bundles.as_os_str()),
        ("RESTORE", dir.as_os_str()),
        ("UPSTREAM", "drill".as_ref()),
        ("TMPDIR", tmp.as_os_str()),
        ("GIT_CONFIG_NOSYSTEM", "1".as_ref()),
        ("GIT_CONFIG_GLOBAL", "/dev/null".as_ref()),
    ];
    crate::recovery::run_runbook(&["2."], "", &vars).map_err(|e| {
        format!("the runbook's git-only restore (docs/disaster-recovery.md, section 2) failed: {e}")
    })
}

/// Runs a drill and records it: the report (for `status`) and an event (for `log`), also
/// when the drill could not run at all.
pub fn drill_and_record(
    cfg: &Config,
    source: &Source,
    t: &Target,
    now: chrono::DateTime<chrono::Utc>,
    identity: Option<&Path>,
    runbook: bool,
) -> Result<Report> {
    use crate::exit::Exit;
    use crate::state::{self, Event};
    let mut r = drill(cfg, source, t, now, identity, runbook);
    let ev = match &mut r {
        Ok(r) => {
            // The verdict stands whatever becomes of its records: a state file or history
            // line that cannot be written is a warning, not a failed drill.
            if let Err(e) = state::save(&cfg.state_dir, &state_name(&source.name, &t.name), &*r) {
                r.warnings.push(format!("the drill's result was not saved for status: {e:#}"));
            }
            let e = if r.ok() { Exit::Ok } else { Exit::Failed };
            let mut ev = Event::new(
                now,
                "drill",
                Some(&source.name),
                Some(&t.name),
                e,
                if r.ok() { "restore verified".into() } else { r.problems.join("\n") },
            );
            ev.data = serde_json::json!({"ttr_ms": r.ttr_ms, "files": r.files, "bytes": r.bytes, "runbook": r.stock_git_ok == Some(true)});
            ev
        }
        Err(e) => {
            if let Some(d) = e.downcast_ref::<create::Damaged>() {
                note_damaged(cfg, source, t, &d.file, now);
            }
            Event::new(
                now,
                "drill",
                Some(&source.name),
                Some(&t.name),
                crate::classify::exit_for(e).combine(Exit::Failed),
                format!("{e:#}"),
            )
        }
    };
    if let Err(e) = state::record(&cfg.state_dir, &ev) {
        let w = format!("cannot record the run history: {e:#}");
        match &mut r {
            Ok(r) => r.warnings.push(w),
            // The drill's own error is the one to report; the lost line is still said.
            Err(_) => tracing::warn!("{w}"),
        }
    }
    r
}

/// Records a bundle the drill found damaged in the verified ledger, as check does: the next
/// run's plan then writes a full bundle (a new chain). A ledger that cannot be written is
/// said; the drill's own error is still the one reported.
fn note_damaged(cfg: &Config, source: &Source, t: &Target, file: &str, now: chrono::DateTime<chrono::Utc>) {
    use crate::check::verified;
    let (mut ledger, _) = verified::load(&cfg.state_dir, &source.name);
    let item =
        verified::Item { key: format!("bundle/{}/{file}", t.name), size: 0, mtime_ns: None, sha256: None };
    ledger.damaged(&item, now);
    if let Err(e) = verified::save(&cfg.state_dir, &source.name, &ledger) {
        tracing::warn!("cannot record {file} as damaged in the verified ledger: {e:#}");
    }
}

/// The state file of the last drill of a (source, target).
pub fn state_name(source: &str, target: &str) -> String {
    format!("drill-{source}-{target}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let o = Command::new("git").arg("-C").arg(dir).args(args).output().expect("git");
        assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// The drill's recover half checks the index too: a path the snapshot recorded as staged
    /// that the recovered repository does not stage (or the reverse) is a problem, named.
    #[test]
    fn a_recovered_index_that_lost_or_gained_staging_is_named() {
        let d = tempfile::tempdir().unwrap();
        git(d.path(), &["init", "-q", "-b", "main"]);
        std::fs::write(d.path().join("a.md"), "a\n").unwrap();
        std::fs::write(d.path().join(".env"), "X=1\n").unwrap();
        git(d.path(), &["add", "a.md", ".env"]);
        git(d.path(), &["-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "-m", "c"]);
        std::fs::write(d.path().join("b.md"), "b\n").unwrap();
        git(d.path(), &["add", "b.md"]);
        git(d.path(), &["rm", "-q", "--cached", "a.md"]);
        let msg = b"s\n\nStaged: b.md\nStaged-Delete: a.md\nStaged: .env\n";
        assert_eq!(
            staged_problems(msg, d.path()),
            Vec::<String>::new(),
            "as recorded (a secret is never restaged)"
        );
        git(d.path(), &["reset", "-q", "--", "b.md"]);
        assert_eq!(staged_problems(msg, d.path()), vec!["recover: b.md was staged and is not".to_string()]);
        let extra = b"s\n\nStaged: b.md\n";
        git(d.path(), &["add", "b.md"]);
        assert_eq!(staged_problems(extra, d.path()), vec!["recover: a.md is staged and was not".to_string()]);
    }
}
