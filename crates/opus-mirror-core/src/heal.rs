//! Healing what a killed run leaves behind, done by every command right after it takes the
//! run lock. While we hold that lock no other opus-mirror writes the state dir, and nothing but
//! opus-mirror writes a backup repo, so every git `*.lock` file in a backup repo is stale and
//! every temp file we recognise is an orphan, unless its name carries the pid of a process that
//! is still alive (a read-only command such as `status` does not take the lock).
//!
//! A mirror is not ours alone (the user or a server may be pushing to it): its lock files are
//! only reported, with the command that removes them, once they are older than any push. What
//! our own killed push left there (made since it began, recorded in the backup repo) is
//! removed only once no other process is working in the mirror.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::git::local_push::LOCAL_PUSH_KEEP;
use crate::git::BackupRepo;
use crate::lock::RunLock;

/// A lock older than this on a mirror belongs to no push still running.
pub const MIRROR_LOCK_STALE: Duration = Duration::from_secs(10 * 60);

/// How long a sweep of a mirror waits for another process working in it to finish.
const QUIET_WAIT: Duration = Duration::from_secs(3);

/// Where a command keeps scratch files: in the state dir (private, on a disk rather than a
/// tmpfs, and swept by the next command when a kill leaves them behind).
pub(crate) fn scratch_root(state_dir: &Path) -> PathBuf {
    state_dir.join("tmp")
}

/// A private scratch dir `STATE/tmp/PURPOSE-PID-RANDOM`, removed when dropped; if the
/// process is killed first, the next command that takes the lock removes it.
pub fn scratch_dir(state_dir: &Path, purpose: &str) -> std::io::Result<tempfile::TempDir> {
    let root = scratch_root(state_dir);
    fs::create_dir_all(&root)?;
    // tempfile creates the dir 0700: nobody else reads a decrypted bundle.
    tempfile::Builder::new().prefix(&format!("{purpose}-{}-", std::process::id())).tempdir_in(root)
}

/// One thing removed.
#[derive(Debug, Clone)]
pub struct Healed {
    pub path: PathBuf,
    pub what: &'static str,
}

impl std::fmt::Display for Healed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "removed {} {} (left by an interrupted run)", self.what, self.path.display())
    }
}

/// Removes every leftover of a killed run that the lock makes ours to remove, and says so
/// on stderr. The lock is taken as a parameter so that nobody calls this without it.
pub fn heal(cfg: &Config, _held: &RunLock) -> Vec<Healed> {
    let mut out = Vec::new();
    for s in &cfg.sources {
        own_push(&BackupRepo::location(&cfg.state_dir, &s.name), &mut out);
    }
    for t in &cfg.targets {
        if let crate::config::TargetKind::Dir { path, .. } = &t.kind {
            temps_in(path, &mut out);
        }
    }
    state_dir(&cfg.state_dir, &mut out);
    scratch(&scratch_root(&cfg.state_dir), &mut out);
    restores(&cfg.state_dir, &mut out);
    for h in &out {
        tracing::warn!("{h}");
    }
    out
}

/// A walk of a git dir or the state dir that skips loose-object fan-out dirs (`objects/ab`):
/// they hold only objects, and there can be thousands.
fn walk_skipping_objects(root: &Path) -> impl Iterator<Item = walkdir::DirEntry> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().as_encoded_bytes();
            !(name.len() == 2
                && name.iter().all(u8::is_ascii_hexdigit)
                && e.path().parent().is_some_and(|p| p.ends_with("objects")))
        })
        .flatten()
}

/// Temp packs of libgit2 (`pack_git2_*`), git (`tmp_pack_*`, `tmp_idx_*`) and ours.
const TEMP_PACKS: [&str; 5] = ["pack_git2_", "tmp_pack_", "tmp_idx_", "tmp_rev_", "tmp_opus_pack_"];

/// Git lock files anywhere in a git dir (refs, packed-refs, HEAD, config, shallow...).
fn locks_in(git_dir: &Path) -> impl Iterator<Item = walkdir::DirEntry> {
    walk_skipping_objects(git_dir)
        .filter(|e| e.file_type().is_file() && e.file_name().to_string_lossy().ends_with(".lock"))
}

/// One walk of the state dir (every command pays it, so only one): `.opus-mirror-tmp-*` files
/// of atomic writes whose writer is gone (state files, the stat cache, restore records,
/// backup repos); and in the backup repos, which nothing but opus-mirror writes, every git
/// lock file, temp pack and pack without an index. Scratch is swept by [`scratch`].
fn state_dir(state_dir: &Path, out: &mut Vec<Healed>) {
    let scratch = scratch_root(state_dir);
    let repos = state_dir.join("repos");
    let walk = walk_skipping_objects(state_dir).filter(|e| !e.path().starts_with(&scratch));
    for e in walk.filter(|e| e.file_type().is_file()) {
        let name = e.file_name().to_string_lossy();
        let in_repo = e.path().starts_with(&repos);
        if let Some(rest) = name.strip_prefix(".opus-mirror-tmp-") {
            if orphaned(rest, e.path()) {
                remove(e.path(), "temp file", out);
            }
        } else if in_repo && name.ends_with(".lock") {
            remove(e.path(), "stale git lock", out);
        } else if in_repo && e.path().parent().is_some_and(|d| d.ends_with("objects/pack")) {
            if TEMP_PACKS.iter().any(|p| name.starts_with(p)) {
                remove(e.path(), "temp pack", out);
            } else if name.starts_with("pack-")
                && name.ends_with(".pack")
                && !e.path().with_extension("idx").exists()
            {
                // A pack is only visible through its index: nothing refers to its objects.
                remove(e.path(), "pack without an index", out);
            } else if name.starts_with("pack-")
                && name.ends_with(".rev")
                && !e.path().with_extension("pack").exists()
            {
                remove(e.path(), "reverse index without its pack", out);
            } else if name.starts_with("pack-")
                && name.ends_with(".keep")
                && fs::read(e.path())
                    .is_ok_and(|b| b.starts_with(b"fetch-pack ") || b.starts_with(b"receive-pack "))
            {
                // git's fetch holds its new pack with a .keep until the refs are written; a
                // killed fetch leaves it, and a kept pack would never be merged again.
                remove(e.path(), "a killed fetch's .keep", out);
            }
        }
    }
}

/// The record of a push to a mirror on this machine that is under way: kept in the backup
/// repo (`opus-mirror-push.json`) from just before the push until it returns.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct PushRecord {
    pub pid: u32,
    pub mirror: PathBuf,
    /// Seconds since the epoch when the push began.
    pub started: i64,
}

fn push_record_path(backup: &Path) -> PathBuf {
    backup.join("opus-mirror-push.json")
}

/// Records a push into the local mirror `mirror` until the guard is dropped.
pub(crate) fn record_push(backup: &Path, mirror: &Path) -> Option<PushGuard> {
    let path = push_record_path(backup);
    let started =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let rec = PushRecord { pid: std::process::id(), mirror: mirror.to_path_buf(), started };
    let bytes = serde_json::to_vec(&rec).ok()?;
    crate::atomic::write_file(&path, &bytes).ok()?;
    Some(PushGuard { path, rec, keep_record: false })
}

/// Removes the push record when the push returns (not when the process is killed).
pub struct PushGuard {
    path: PathBuf,
    rec: PushRecord,
    keep_record: bool,
}

impl PushGuard {
    /// The push has returned, so every process of it is gone (git push waits for its
    /// receive-pack), but one of them may have been killed on its own, before or after the
    /// refs were written (the crash sweep kills receive-pack at an `unlink` of its quarantine
    /// cleanup and the push still succeeds). What it left in the mirror is removed now and said
    /// on stderr, since the record that would tell a later run it is ours goes with the guard.
    /// After a push that succeeded, lock files are left alone: none of ours can remain then,
    /// and one made meanwhile belongs to someone else's ref update.
    pub fn finished(mut self, ok: bool) -> Vec<Healed> {
        let mut out = Vec::new();
        // Left for later: the record stays, so the next run's `own_push` sweeps once the
        // other writer is gone (this process will be gone too by then).
        self.keep_record = !sweep_push(&self.rec, !ok, &mut out);
        for h in &out {
            tracing::warn!("{h}");
        }
        out
    }
}

impl Drop for PushGuard {
    fn drop(&mut self) {
        if !self.keep_record {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// What a killed push of ours left in a local mirror: lock files, temp packs, receive-pack's
/// quarantine dirs and `.keep` files made since it began. Those are provably ours (the record names the push, its process is gone); older
/// ones are not, and are only reported (see [`stale_mirror_locks`]).
fn own_push(backup: &Path, out: &mut Vec<Healed>) {
    let path = push_record_path(backup);
    let Some(rec) = fs::read(&path).ok().and_then(|b| serde_json::from_slice::<PushRecord>(&b).ok()) else {
        return;
    };
    if alive(rec.pid) {
        return;
    }
    if sweep_push(&rec, true, out) {
        let _ = fs::remove_file(&path);
    }
}

/// Removes from the mirror of `rec` the temp packs and temp files, packs without an index, quarantine dirs,
/// receive-pack `.keep` files and (with `locks`) lock files made since that push began.
/// Returns false when it left them for later (see [`busy`]).
fn sweep_push(rec: &PushRecord, locks: bool, out: &mut Vec<Healed>) -> bool {
    let since = SystemTime::UNIX_EPOCH + Duration::from_secs(rec.started.max(1) as u64 - 1);
    let recent = |p: &Path| fs::symlink_metadata(p).and_then(|m| m.modified()).is_ok_and(|t| t >= since);
    if !rec.mirror.join("HEAD").exists() {
        return true;
    }
    // What was made since our push began is ours only if nobody else was writing meanwhile:
    // while another git process works in the mirror, its locks, quarantine and `.keep` look
    // just like ours. Once the mirror is quiet, what is left was abandoned (a writer that
    // finished cleaned up after itself). A writer (or an orphaned hook of ours) gets a moment
    // to finish; after that, the sweep is left for later (the record stays for `own_push`).
    let waiting = std::time::Instant::now();
    let mut in_the_way = busy(&rec.mirror);
    while in_the_way.is_some() && waiting.elapsed() < QUIET_WAIT {
        std::thread::sleep(Duration::from_millis(50));
        in_the_way = busy(&rec.mirror);
    }
    if let Some(pid) = in_the_way {
        tracing::warn!(
            "left the leftovers of our interrupted push in {} for a later run: process {pid} is using the mirror",
            rec.mirror.display()
        );
        return false;
    }
    // Decided for every file before any is removed: whether a pack is ours is read from its
    // `.keep`, which is itself swept.
    let mut doomed = Vec::new();
    for e in walk_skipping_objects(&rec.mirror) {
        let name = e.file_name().to_string_lossy();
        let temp_pack = TEMP_PACKS.iter().any(|p| name.starts_with(p));
        let quarantine = name.starts_with("tmp_objdir-incoming-") || name.starts_with("incoming-");
        let lock = locks && e.file_type().is_file() && name.ends_with(".lock");
        // receive-pack holds a received pack with a .keep until the refs are written; ours
        // (`git::local_push`) does the same with its own mark.
        let keep = name.starts_with("pack-")
            && name.ends_with(".keep")
            && fs::read(e.path())
                .is_ok_and(|b| b.starts_with(b"receive-pack ") || b.starts_with(LOCAL_PUSH_KEEP));
        // Ours, killed between the pack's rename and its index's: only a pack our `.keep`
        // marks. git installs its packs in the same order (repack, receive-pack), so an
        // index-less pack without our mark may be one it is installing right now.
        let idxless = name.starts_with("pack-")
            && name.ends_with(".pack")
            && !e.path().with_extension("idx").exists()
            && fs::read(e.path().with_extension("keep")).is_ok_and(|b| b.starts_with(LOCAL_PUSH_KEEP));
        // The temp of an atomic write of ours (the index of that pack) whose writer is gone.
        let temp = name.strip_prefix(".opus-mirror-tmp-").is_some_and(|rest| orphaned(rest, e.path()));
        if (lock || temp_pack || quarantine || keep || idxless || temp) && recent(e.path()) {
            doomed.push(e.path().to_path_buf());
        }
    }
    for p in doomed {
        remove(&p, "leftover of our interrupted push to the mirror", out);
    }
    true
}

/// `.opus-mirror-tmp-*` files of atomic writes directly in `dir`, unless a live process
/// is writing them.
fn temps_in(dir: &Path, out: &mut Vec<Healed>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(rest) = name.strip_prefix(".opus-mirror-tmp-") {
            if orphaned(rest, &e.path()) {
                remove(&e.path(), "temp file", out);
            }
        }
    }
}

/// Scratch dirs `PURPOSE-PID-RANDOM` under the state dir's `tmp/`, and staged uploads.
fn scratch(dir: &Path, out: &mut Vec<Healed>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let rest = name.strip_prefix(".opus-mirror-tmp-").or_else(|| name.split_once('-').map(|(_, r)| r));
        if rest.is_some_and(|r| orphaned(r, &e.path())) {
            remove(&e.path(), "scratch", out);
        }
    }
}

/// Restore temps `.opus-mirror-restore-PID` of restores that were killed: each restore
/// records where it writes in `STATE/restores/PID.json` and removes the record when done.
fn restores(state_dir: &Path, out: &mut Vec<Healed>) {
    let dir = state_dir.join("restores");
    let Ok(rd) = fs::read_dir(&dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name.strip_suffix(".json").and_then(|p| p.parse::<u32>().ok()) else { continue };
        if alive(pid) {
            continue;
        }
        let root = fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<RestoreRecord>(&b).ok())
            .map(|r| r.root);
        if let Some(root) = root {
            let temp = format!(".opus-mirror-restore-{pid}");
            // Never follow links out of the restore's root: a temp is a plain file we made.
            for f in walkdir::WalkDir::new(&root).follow_links(false).into_iter().flatten() {
                if f.file_name().to_string_lossy() == temp.as_str() && !f.file_type().is_dir() {
                    remove(f.path(), "restore temp", out);
                }
            }
        }
        let _ = fs::remove_file(e.path());
    }
}

/// What a running restore records so that a kill can be cleaned up after.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct RestoreRecord {
    pub root: PathBuf,
}

/// Records a restore into `root` until the returned guard is dropped. A restore goes on
/// without the record (a full state disk must not stop one); it only costs the cleanup.
pub fn record_restore(state_dir: &Path, root: &Path) -> Option<RestoreGuard> {
    let path = state_dir.join("restores").join(format!("{}.json", std::process::id()));
    let write = || -> std::io::Result<()> {
        let rec = RestoreRecord { root: std::path::absolute(root)? };
        crate::atomic::write_file(&path, &serde_json::to_vec(&rec).map_err(std::io::Error::other)?)
    };
    match write() {
        Ok(()) => Some(RestoreGuard { path }),
        Err(e) => {
            tracing::warn!(
                "cannot record the restore in {} ({e}): a kill would leave its temp file",
                path.display()
            );
            None
        }
    }
}

/// Removes the restore record when the restore ends (not when it is killed).
pub struct RestoreGuard {
    path: PathBuf,
}

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether a temp named `PID-RANDOM` (or an old pid-less name) is an orphan: its process is
/// gone, or, without a pid, it is older than any write we make.
fn orphaned(rest: &str, path: &Path) -> bool {
    match rest.split_once('-').and_then(|(p, _)| p.parse::<u32>().ok()) {
        Some(pid) => pid != std::process::id() && !alive(pid),
        None => older_than(path, Duration::from_secs(3600)),
    }
}

/// A live process other than this one whose working directory is inside `git_dir`: git's
/// receive-pack, index-pack, repack and gc all run there. Where `/proc` is missing the mirror
/// counts as busy, so nothing is removed on a guess; processes of other users whose working
/// directory cannot be read are not counted (they cannot write a mirror of ours).
fn busy(git_dir: &Path) -> Option<u32> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return Some(0);
    }
    let root = fs::canonicalize(git_dir).ok()?;
    let me = std::process::id();
    fs::read_dir(proc).ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
        let cwd = fs::read_link(e.path().join("cwd")).ok()?;
        (pid != me && cwd.starts_with(&root)).then_some(pid)
    })
}

/// Whether process `pid` exists. Where `/proc` is missing every process counts as alive,
/// so nothing is removed on a guess.
pub(crate) fn alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

fn older_than(path: &Path, age: Duration) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|d| d > age)
}

fn remove(path: &Path, what: &'static str, out: &mut Vec<Healed>) {
    let gone = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match gone {
        Ok(()) => out.push(Healed { path: path.to_path_buf(), what }),
        Err(e) => tracing::warn!("cannot remove the leftover {} {}: {e}", what, path.display()),
    }
}

/// Lock files in a mirror on this machine older than [`MIRROR_LOCK_STALE`]: a push that was
/// killed. Reported, never removed (someone else may be pushing).
pub(crate) fn stale_mirror_locks(git_dir: &Path) -> Vec<PathBuf> {
    locks_in(git_dir)
        .filter(|e| older_than(e.path(), MIRROR_LOCK_STALE))
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// The message for stale mirror locks, with the exact command that clears them.
pub(crate) fn mirror_lock_message(url: &str, locks: &[PathBuf]) -> String {
    let list: Vec<String> = locks.iter().map(|p| p.display().to_string()).collect();
    let quoted: Vec<String> = list.iter().map(|p| crate::shell::quote(p)).collect();
    format!(
        "the mirror {url} has lock files older than {} min, left by an interrupted push: {}\n  fix: make sure no git push to the mirror is running, then: rm {}",
        MIRROR_LOCK_STALE.as_secs() / 60,
        list.join(", "),
        quoted.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temps_of_live_processes_are_not_orphans() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        fs::write(&p, "").unwrap();
        assert!(!orphaned(&format!("{}-abc", std::process::id()), &p));
        assert!(orphaned("4194321-abc", &p));
        // No pid and fresh: maybe a write of an older version still running.
        assert!(!orphaned("abc", &p));
    }
}

#[cfg(test)]
mod push_sweep_tests {
    use super::*;

    fn record(mirror: &Path) -> PushRecord {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
        PushRecord { pid: 4194321, mirror: mirror.to_path_buf(), started: now - 5 }
    }

    /// A failed push of ours is followed by another writer's push to the same mirror: the ref
    /// lock and quarantine that writer holds are new (made since our push began) but not ours,
    /// and removing them would break its ref update. A live git process in the mirror (its
    /// working directory there, as receive-pack's and index-pack's are) keeps the sweep off;
    /// once it is gone, the leftovers are removed.
    #[test]
    fn a_failed_push_never_sweeps_what_another_live_writer_holds() {
        let d = tempfile::tempdir().unwrap();
        let mirror = d.path().join("mirror.git");
        git2::Repository::init_bare(&mirror).unwrap();
        let lock = mirror.join("refs/heads/main.lock");
        fs::write(&lock, "0123\n").unwrap();
        let quarantine = mirror.join("objects/tmp_objdir-incoming-abc123");
        fs::create_dir_all(&quarantine).unwrap();
        let mut other =
            std::process::Command::new("sleep").arg("60").current_dir(&quarantine).spawn().unwrap();

        let mut out = Vec::new();
        sweep_push(&record(&mirror), true, &mut out);
        let kept = (lock.exists(), quarantine.exists());
        other.kill().unwrap();
        other.wait().unwrap();
        assert_eq!(kept, (true, true), "removed while another writer was in the mirror: {out:?}");
        assert!(out.is_empty(), "{out:?}");

        sweep_push(&record(&mirror), true, &mut out);
        assert!(!lock.exists() && !quarantine.exists(), "left after the writer was gone: {out:?}");
    }

    /// When the sweep after a failed push is left for later, the push record stays so that
    /// the next run (`own_push`) sweeps; when nothing was in the way, it goes with the guard.
    #[test]
    fn a_sweep_left_for_later_keeps_the_push_record() {
        let d = tempfile::tempdir().unwrap();
        let (backup, mirror) = (d.path().join("backup.git"), d.path().join("mirror.git"));
        fs::create_dir_all(&backup).unwrap();
        git2::Repository::init_bare(&mirror).unwrap();
        let mut other = std::process::Command::new("sleep").arg("60").current_dir(&mirror).spawn().unwrap();
        let guard = record_push(&backup, &mirror).unwrap();
        fs::write(mirror.join("packed-refs.lock"), "").unwrap();
        guard.finished(false);
        let kept = push_record_path(&backup).exists();
        other.kill().unwrap();
        other.wait().unwrap();
        assert!(kept, "the record went while the sweep was left for later");
        assert!(mirror.join("packed-refs.lock").exists());

        let guard = record_push(&backup, &mirror).unwrap();
        guard.finished(false);
        assert!(!push_record_path(&backup).exists());
    }
}
