//! The repository and working tree exactly as at a snapshot, from a rebuilt backup repo: what
//! `recover` writes on a new machine, and what the drill's opus-mirror half writes into its
//! scratch dir, so the drill proves the very code a user runs on the worst day.

use std::path::Path;

use anyhow::{Context as _, Result};

use crate::git::BackupRepo;

/// What [`lay_out`] wrote: which snapshot, and what the user should know about it.
pub struct Laid {
    /// The id of the snapshot laid out.
    pub snapshot: String,
    pub notes: Vec<String>,
}

/// Writes `to` from the rebuilt backup repo: a git source as a repository whose working tree
/// is exactly the snapshot (the newest, or the one as of `at`), a plain vault as its files.
pub fn lay_out(
    repo: &Path,
    to: &Path,
    code_branch: Option<&str>,
    snapshot_branch: &str,
    source: &str,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Laid> {
    use crate::snapshot::history::{self, Pick};
    let mut notes = Vec::new();
    let backup = BackupRepo::open(repo)?;
    // The git path checks out the branch tip (what stock git sees); a plain vault, or `--at`,
    // the newest of the user's own snapshots (as of then).
    let pick = match (at, code_branch) {
        (Some(t), _) => Pick::At(t),
        (None, Some(_)) => match backup.tip(snapshot_branch)? {
            Some(tip) => Pick::Id(tip.to_string()),
            None => Pick::Latest,
        },
        (None, None) => Pick::Latest,
    };
    let info = history::resolve(&backup, snapshot_branch, source, &pick)?;
    let tree = git2::Oid::from_str(&info.tree)?;
    let items = crate::restore::select(&backup.repo.odb()?, tree, &[], &info.short)?;
    let modes = history::modes(&backup, &info)?;
    if at.is_some() {
        notes.push(format!("the snapshot as of then: {} ({})", info.short, info.time));
    }
    let Some(branch) = code_branch else {
        crate::restore::to_dir(&backup, &items, to, false, &info.short, modes.as_ref())?;
        return Ok(Laid { snapshot: info.id, notes });
    };
    // As of a time: the branch where HEAD was then (when the snapshot recorded it and the
    // commit came back), else the branch tip with that snapshot's files.
    let head = at
        .and_then(|_| history::head_of(&backup, &info))
        .filter(|(c, _)| backup.repo.find_commit(*c).is_ok());
    if at.is_some() && head.is_none() {
        notes.push(format!("note: snapshot {} did not record the commit it was on: the files are as then, on the tip of {branch}", info.short));
    }
    worktree_from_git(repo, to, branch, snapshot_branch, at.map(|_| info.id.as_str()), head.as_ref())?;
    if let Err(e) = restage(to, &history::staged_of(&backup, &info)) {
        // The files are back either way: staging is the last touch, worth a note, not a failure.
        notes.push(format!("note: {e:#}"));
    }
    // Stock git knows 644 and 755: the bits the snapshot recorded (a 0600 note) go on top.
    if let Some(m) = &modes {
        let mut root = crate::safe_fs::Root::open(to)?;
        crate::restore::apply_modes(&mut root, &items, m)?;
    }
    Ok(Laid { snapshot: info.id, notes })
}

/// The repository and working tree exactly as at a snapshot: the runbook's steps (clone
/// without checkout, `read-tree -u --reset` the snapshot, index to the branch, empty folders),
/// from the rebuilt backup repo. `snapshot` (an id) picks one other than the newest, and
/// `head` puts the branch back at the commit it was on then.
fn worktree_from_git(
    repo: &Path,
    to: &Path,
    branch: &str,
    snapshot_branch: &str,
    snapshot: Option<&str>,
    head: Option<&(git2::Oid, String)>,
) -> Result<()> {
    // Procedure 1's steps, from the rebuilt backup repo; its remote is kept as `backup`.
    let mut steps = String::from(
        "git clone --quiet --no-checkout --origin mirror --branch \"$BRANCH\" \"$MIRROR\" \"$RESTORE\"\n",
    );
    if head.is_some() {
        steps.push_str(
            "git -C \"$RESTORE\" update-ref \"refs/heads/$AT_BRANCH\" \"$AT_HEAD\" && git -C \"$RESTORE\" symbolic-ref HEAD \"refs/heads/$AT_BRANCH\"\n",
        );
    }
    steps.push_str(
        "git -C \"$RESTORE\" read-tree -u --reset \"$SNAP\" && git -C \"$RESTORE\" reset --quiet\n\
         restore_empty_dirs \"$RESTORE\" \"$SNAP\"\n\
         git -C \"$RESTORE\" remote rename mirror backup\n",
    );
    let snap = snapshot.map_or_else(|| format!("mirror/{snapshot_branch}"), str::to_string);
    let (at_head, at_branch) =
        head.map_or((String::new(), String::new()), |(c, b)| (c.to_string(), b.clone()));
    let vars: [(&str, &std::ffi::OsStr); 6] = [
        ("BRANCH", branch.as_ref()),
        ("SNAP", snap.as_ref()),
        ("MIRROR", repo.as_os_str()),
        ("RESTORE", to.as_os_str()),
        ("AT_HEAD", at_head.as_ref()),
        ("AT_BRANCH", at_branch.as_ref()),
    ];
    crate::recovery::run_runbook(&[], &steps, &vars)
        .map_err(|e| anyhow::anyhow!("laying out the working tree failed: {e}"))?;
    restore_tracked_secrets(to)
}

/// Stages again what the snapshot recorded as staged, so `git status` shows it as before. A
/// path staged with other content than the file's (`MM`) comes back staged as the file is.
fn restage(to: &Path, staged: &(Vec<Vec<u8>>, Vec<Vec<u8>>)) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let (add, remove) = staged;
    // A staged file the snapshot left out (a secret) is not there to stage.
    let add: Vec<Vec<u8>> = add
        .iter()
        .filter(|p| to.join(std::ffi::OsStr::from_bytes(p)).symlink_metadata().is_ok())
        .cloned()
        .collect();
    let add_args: &[&str] = &["add", "--force", "--"];
    let rm_args: &[&str] = &["rm", "--cached", "--quiet", "--ignore-unmatch", "--"];
    for (args, paths) in [(add_args, &add), (rm_args, remove)] {
        if paths.is_empty() {
            continue;
        }
        // Literal pathspecs: a name from the backup is a path, never `:(magic)`; git itself
        // refuses anything outside the work tree or beyond a symlink.
        let o = std::process::Command::new("git")
            .arg("-C")
            .arg(to)
            .args(args)
            .args(paths.iter().map(|p| std::ffi::OsStr::from_bytes(p)))
            .env("GIT_LITERAL_PATHSPECS", "1")
            .output()
            .context("cannot run git")?;
        if !o.status.success() {
            anyhow::bail!("cannot stage what was staged: {}", String::from_utf8_lossy(&o.stderr).trim());
        }
    }
    Ok(())
}

/// Snapshots never hold secret-looking files, so a committed one (a tracked `.env`) would
/// show as deleted: it comes back from the branch, as it was committed.
fn restore_tracked_secrets(to: &Path) -> Result<()> {
    let git = |args: &[&str]| std::process::Command::new("git").arg("-C").arg(to).args(args).output();
    let o = git(&["ls-files", "-z", "--deleted"]).context("cannot run git")?;
    let secret: Vec<String> = o
        .stdout
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .filter(|p| crate::snapshot::filter::looks_secret(p))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    if secret.is_empty() {
        return Ok(());
    }
    let mut args = vec!["checkout", "--"];
    args.extend(secret.iter().map(String::as_str));
    let o = git(&args).context("cannot run git")?;
    if !o.status.success() {
        anyhow::bail!(
            "cannot bring back the committed secret files: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(())
}
