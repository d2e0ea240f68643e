//! An rclone target: bundles are uploaded with the `rclone` binary (the user's rclone config,
//! or `rclone_config = PATH`), then confirmed with `rclone lsjson --hash`: size and every hash
//! the backend reports must match the local file. Errors name the command that was run;
//! credentials never appear in it (they live in rclone's config or the environment).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use md5::Digest as _;
use serde::Deserialize;

use super::{Listed, Unavailable};
use crate::bundle::manifest::Manifest;
use crate::config::{Target, TargetKind};
use crate::git::remote::RemoteError;
use crate::netchild::{self, Stopped};

/// What this process has seen of each remote directory: its files (name, size) and the
/// manifests it read or wrote. One `run` asks a target for its bundles in settle, bundle,
/// prune, check and drill; without this each asked the bucket again (an `lsjson` plus a `cat`
/// per manifest). Our own uploads and deletes update the copy instead of listing again; a
/// process is one command under the run lock, so nobody else writes there meanwhile.
#[derive(Default)]
struct Seen {
    files: Option<Vec<(String, u64)>>,
    manifests: std::collections::HashMap<String, Vec<u8>>,
}

static SEEN: std::sync::Mutex<std::collections::BTreeMap<String, Seen>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// The key of a target's remote directory (the remote and the rclone config that reaches it).
fn seen_key(t: &Target) -> String {
    let (remote, config) = parts(t);
    format!("{remote}\0{}", config.map(|c| c.display().to_string()).unwrap_or_default())
}

fn with_seen<R>(t: &Target, f: impl FnOnce(&mut Seen) -> R) -> R {
    let mut all = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    f(all.entry(seen_key(t)).or_default())
}

/// The files of the remote directory: one `lsjson` per process.
fn files(t: &Target) -> Result<Vec<(String, u64)>> {
    if let Some(f) = with_seen(t, |s| s.files.clone()) {
        return Ok(f);
    }
    let (remote, _) = parts(t);
    let entries = lsjson(t, &["--files-only", remote])?;
    let f: Vec<(String, u64)> = entries.into_iter().map(|e| (e.name, e.size.max(0) as u64)).collect();
    with_seen(t, |s| s.files = Some(f.clone()));
    Ok(f)
}

/// The bytes of a small remote file (a manifest): one `cat` per process.
fn cat(t: &Target, file: &str) -> Option<Vec<u8>> {
    if let Some(b) = with_seen(t, |s| s.manifests.get(file).cloned()) {
        return Some(b);
    }
    let b = rclone(t, &["cat", &remote_path(t, file)]).ok()?;
    with_seen(t, |s| s.manifests.insert(file.to_string(), b.clone()));
    Some(b)
}

/// Records a file this process wrote (`content` for a manifest) or deleted (None size).
fn wrote(t: &Target, file: &str, size: Option<u64>, content: Option<Vec<u8>>) {
    with_seen(t, |s| {
        if let Some(files) = &mut s.files {
            files.retain(|(n, _)| n != file);
            if let Some(size) = size {
                files.push((file.to_string(), size));
            }
        }
        match content {
            Some(c) => s.manifests.insert(file.to_string(), c),
            None => s.manifests.remove(file),
        };
    });
}

/// Deletes one remote file, and forgets it.
fn delete_file(t: &Target, file: &str) -> Result<()> {
    rclone(t, &["deletefile", &remote_path(t, file)])?;
    wrote(t, file, None, None);
    Ok(())
}

fn parts(t: &Target) -> (&str, Option<&Path>) {
    match &t.kind {
        TargetKind::Rclone { remote, config } => (remote.as_str(), config.as_deref()),
        TargetKind::Dir { .. } => unreachable!("rclone functions are only called for rclone targets"),
    }
}

/// Runs rclone; a failure names the command and rclone's last error line. rclone gives up
/// on a silent connection by itself (`--contimeout`, `--timeout` = `[network] timeout`), but
/// its retries (and the storage SDK's) multiply that: a stalled S3 endpoint holds one
/// listing for 16 timeouts. So a call that moves no file content is stopped after
/// [`QUIET_CALL_TIMEOUTS`] timeouts in all, a copy at `[network] deadline`. Each is reported
/// as unreachable (exit 5).
fn rclone(t: &Target, args: &[&str]) -> Result<Vec<u8>> {
    rclone_watching(t, args, None)
}

/// [`rclone`], and with `stats`, rclone's own transfer stats as they come: (bytes sent,
/// bytes in all). rclone then logs JSON (`--use-json-log`) with a stats line every
/// [`STATS_EVERY`] on stderr; what it says besides is read back as plain text.
fn rclone_watching(
    t: &Target,
    args: &[&str],
    mut stats: Option<&mut dyn FnMut(u64, u64)>,
) -> Result<Vec<u8>> {
    let (remote, config) = parts(t);
    let limits = &t.timeouts;
    let mut c = Command::new("rclone");
    if let Some(cfg) = config {
        c.arg("--config").arg(cfg);
    }
    // Bounded retries: a dead remote must fail in seconds, not minutes, so the rest of the
    // run (the drive bundle, the alerts) goes on.
    let idle = format!("{}s", limits.idle.as_secs().max(1));
    c.args(["--retries", "2", "--low-level-retries", "3", "--contimeout", &idle, "--timeout", &idle]);
    if stats.is_some() {
        c.args(["--use-json-log", "--stats", STATS_EVERY, "--stats-log-level", "NOTICE"]);
    }
    c.args(args);
    // A custom CA bundle meant for other tools breaks rclone's plain-http S3 endpoints.
    c.env_remove("AWS_CA_BUNDLE");
    // An rclone connection string carries its keys: never shown.
    let shown =
        format!("rclone {}", args.iter().map(|a| crate::config::mask_url(a)).collect::<Vec<_>>().join(" "));
    let masked_remote = crate::config::mask_url(remote);
    let unreachable = |detail: String| RemoteError::Unreachable {
        url: format!("target `{}` ({masked_remote})", t.name),
        detail,
    };
    let copy = args.first() == Some(&"copyto");
    let cap = if copy { limits.deadline } else { (limits.idle * QUIET_CALL_TIMEOUTS).min(limits.deadline) };
    let mut watch = |line: &[u8]| {
        if let (Some(report), Some((done, total))) = (stats.as_mut(), stats_line(line)) {
            report(done, total);
        }
    };
    let o = match netchild::run_watching(c, None, cap, &mut watch) {
        Ok(o) => o,
        Err(Stopped::Spawn(e)) => {
            return Err(Unavailable {
                target: t.name.clone(),
                problem: format!("cannot run `{shown}`: {e}"),
                fix: "install rclone (https://rclone.org/install/ or `apt-get install rclone`)".into(),
            }
            .into())
        }
        Err(Stopped::Silent { .. } | Stopped::Deadline { .. }) if !copy => {
            return Err(unreachable(format!(
                "`{shown}` got no answer in {}s; {} (times {QUIET_CALL_TIMEOUTS} for a call with its retries) is the longest we wait, raise it for a slow link",
                cap.as_secs(),
                limits.idle_setting()
            ))
            .into())
        }
        Err(Stopped::Silent { .. } | Stopped::Deadline { .. }) => {
            return Err(unreachable(format!(
                "`{shown}` ran past the [network] deadline ({}s) and was stopped; raise it for a large upload ({} applies to silence)",
                limits.deadline.as_secs(),
                limits.idle_setting()
            ))
            .into())
        }
    };
    if !o.status.success() {
        let err = plain_log(&o.stderr);
        let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no output").trim();
        let last = &last.replace(remote, &masked_remote);
        if timed_out(&err) {
            return Err(unreachable(format!(
                "`{shown}` got no answer for {}s ({last}); {} is the longest we wait, raise it for a slow link",
                limits.idle.as_secs(),
                limits.idle_setting()
            ))
            .into());
        }
        bail!("target `{}`: `{shown}` failed: {last}", t.name);
    }
    Ok(o.stdout)
}

/// How often rclone reports how far an upload got.
const STATS_EVERY: &str = "500ms";

/// The figures of one of rclone's JSON stats lines: (bytes done, bytes in all).
fn stats_line(line: &[u8]) -> Option<(u64, u64)> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let s = v.get("stats")?;
    Some((s.get("bytes")?.as_u64()?, s.get("totalBytes")?.as_u64()?))
}

/// rclone's stderr as the text it prints without `--use-json-log`: each JSON line becomes
/// its message, stats lines are left out, any other line is kept as it is (rclone prints its
/// fatal error before its logger is set up as plain text).
fn plain_log(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut out = String::new();
    for line in text.lines() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if v.get("stats").is_some() => continue,
            Ok(v) if v.get("msg").is_some_and(|m| m.is_string()) => {
                out.push_str(v["msg"].as_str().expect("checked to be a string"))
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// How many `[network] timeout`s a listing, read or delete may take in all, retries included.
const QUIET_CALL_TIMEOUTS: u32 = 3;

/// Whether rclone gave up because the server stayed silent (its `--timeout`, `--contimeout`).
fn timed_out(stderr: &str) -> bool {
    let lower = stderr.to_lowercase();
    ["timeout", "timed out", "deadline exceeded"].iter().any(|w| lower.contains(w))
}

/// rclone must be installed.
pub fn check(t: &Target) -> Result<()> {
    // Whether rclone runs does not change within one command: asked once.
    static RUNS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if RUNS.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(());
    }
    rclone(t, &["version"])?;
    RUNS.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Size")]
    size: i64,
    #[serde(rename = "Hashes", default)]
    hashes: std::collections::BTreeMap<String, String>,
}

/// Runs `rclone lsjson ARGS` and reads its entries.
fn lsjson(t: &Target, args: &[&str]) -> Result<Vec<Entry>> {
    let out = rclone(t, &[&["lsjson"], args].concat())?;
    serde_json::from_slice(&out).context("rclone lsjson printed something that is not JSON")
}

fn remote_path(t: &Target, name: &str) -> String {
    format!("{}/{name}", parts(t).0)
}

pub fn list(t: &Target, source: &str) -> Result<Vec<Listed>> {
    let entries = files(t)?;
    let names: std::collections::HashSet<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let mut v = Vec::new();
    for (name, size) in entries.iter().filter(|e| super::is_bundle_of(&e.0, source)) {
        let json = format!("{name}.json");
        let manifest = if names.contains(json.as_str()) {
            cat(t, &json).and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
        } else {
            None
        };
        v.push(Listed { name: name.clone(), size: *size, manifest });
    }
    Ok(v)
}

/// Uploads `local` as `name` in the one order a kill cannot confuse: the manifest marked
/// pending, the bundle, a listing that confirms its size and hashes, the manifest marked
/// verified. A kill at any point leaves a pending manifest that [`settle`] finishes.
/// `sent` hears how many of the bundle's bytes rclone has sent so far, and of how many.
pub fn store(
    t: &Target,
    local: &Path,
    name: &str,
    manifest: &Manifest,
    sent: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let staging = local.parent().unwrap_or(Path::new("."));
    let pending = format!("{name}{}", super::PENDING);
    upload_file(t, &pending, &Manifest { verified: false, ..manifest.clone() }, staging)?;
    let dest = remote_path(t, name);
    let size = std::fs::metadata(local)?.len();
    // rclone's count: a retried upload counts its bytes again, so never past the file.
    // From zero now, so the first figures (in [`STATS_EVERY`]) give a true rate.
    sent(0, size);
    let mut report = |done: u64, _: u64| sent(done.min(size), size);
    rclone_watching(t, &["copyto", &local.display().to_string(), &dest], Some(&mut report))?;
    wrote(t, name, Some(size), None);
    let (md5, sha1) = local_hashes(local)?;
    let entries = lsjson(t, &["--hash", &dest])?;
    let Some(e) = entries.iter().find(|e| e.name == name) else {
        bail!("target `{}`: {dest} is not there after the upload", t.name);
    };
    if e.size as u64 != manifest.size {
        bail!(
            "target `{}`: {dest} has {} bytes after the upload, expected {}",
            t.name,
            e.size,
            manifest.size
        );
    }
    for (kind, want) in [("md5", &md5), ("sha1", &sha1)] {
        if let Some(got) = e.hashes.get(kind) {
            if !got.eq_ignore_ascii_case(want) {
                bail!("target `{}`: {dest} has {kind} {got} after the upload, expected {want}", t.name);
            }
        }
    }
    upload_manifest(t, name, manifest, staging)?;
    delete_file(t, &pending)
}

/// md5 and sha1 of a local file, as hex.
pub(crate) fn local_hashes(p: &Path) -> Result<(String, String)> {
    let mut f = std::fs::File::open(p)?;
    let mut md5 = md5::Md5::new();
    let mut sha1 = sha1::Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        sha1::Digest::update(&mut sha1, &buf[..n]);
    }
    Ok((hex::encode(md5.finalize()), hex::encode(sha1::Digest::finalize(sha1))))
}

/// What `rclone lsjson --hash` says of one file: size, and hash name → hex.
pub type Listing = std::collections::BTreeMap<String, (u64, std::collections::BTreeMap<String, String>)>;

/// Size and hashes of every file in the remote directory, by name (one listing call).
pub(crate) fn hashes(t: &Target) -> Result<Listing> {
    let (remote, _) = parts(t);
    let entries = lsjson(t, &["--hash", "--files-only", remote])?;
    Ok(entries.into_iter().map(|e| (e.name, (e.size.max(0) as u64, e.hashes))).collect())
}

pub fn fetch(t: &Target, name: &str, dest: &Path) -> Result<()> {
    rclone(t, &["copyto", &remote_path(t, name), &dest.display().to_string()]).map(|_| ())
}

/// Deletes a bundle, then its manifest (the order of [`super::dir::delete`]).
pub fn delete(t: &Target, name: &str) -> Result<()> {
    delete_file(t, name)?;
    // A bundle listed without a manifest has none to delete.
    let _ = delete_file(t, &format!("{name}.json"));
    Ok(())
}

/// See [`super::settle`]. A pending bundle is intact when the remote reports the size and
/// md5 the manifest recorded before the upload. Costs one listing when nothing is pending.
pub fn settle(t: &Target, source: &str, staging: &Path) -> Result<Vec<String>> {
    let entries = files(t)?;
    let names: std::collections::HashSet<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let mut done = Vec::new();
    for file in &names {
        if let Some(name) = file.strip_suffix(super::PENDING).filter(|n| super::is_bundle_of(n, source)) {
            let verified = format!("{name}.json");
            if !names.contains(verified.as_str()) {
                let m = cat(t, file)
                    .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
                    .filter(|m| super::manifest_matches(m, name, source));
                let ok = match (&m, names.contains(name)) {
                    (Some(m), true) => stored_matches(t, name, m)?,
                    _ => false,
                };
                if let (true, Some(m)) = (ok, m) {
                    upload_manifest(t, name, &Manifest { verified: true, ..m }, staging)?;
                    done.push(format!("{name}: pending bundle of an interrupted run is complete on the remote; marked verified"));
                } else {
                    if names.contains(name) {
                        delete_file(t, name)?;
                    }
                    done.push(format!(
                        "{name}: pending bundle of an interrupted run is missing or incomplete; removed"
                    ));
                }
            }
            delete_file(t, file)?;
        } else if let Some(name) = file.strip_suffix(".json").filter(|n| super::is_bundle_of(n, source)) {
            if !names.contains(name) {
                delete_file(t, file)?;
                done.push(format!(
                    "{name}: removed the manifest of a bundle an interrupted prune had removed"
                ));
            }
        }
    }
    Ok(done)
}

/// Whether the remote's copy of `name` has the size and md5 (or sha1) in its manifest.
fn stored_matches(t: &Target, name: &str, m: &Manifest) -> Result<bool> {
    let entries = lsjson(t, &["--hash", &remote_path(t, name)])?;
    Ok(entries.iter().find(|e| e.name == name).is_some_and(|e| {
        e.size.max(0) as u64 == m.size
            && m.md5
                .as_ref()
                .is_some_and(|md5| e.hashes.get("md5").is_none_or(|g| g.eq_ignore_ascii_case(md5)))
    }))
}

/// Uploads `NAME.json`, staged in `staging` (in the state dir, never $TMPDIR: a kill leaves
/// it where the next run sweeps).
fn upload_manifest(t: &Target, name: &str, m: &Manifest, staging: &Path) -> Result<()> {
    upload_file(t, &format!("{name}.json"), m, staging)
}

/// Uploads `m` as the remote file `file`.
fn upload_file(t: &Target, file: &str, m: &Manifest, staging: &Path) -> Result<()> {
    upload_json(t, file, m, staging)
}

/// Uploads `value` as JSON under `file` (a temp file in `staging`, then `rclone copyto`).
pub(crate) fn upload_json(
    t: &Target,
    file: &str,
    value: &impl serde::Serialize,
    staging: &Path,
) -> Result<()> {
    std::fs::create_dir_all(staging)?;
    let tmp = crate::atomic::temp_in(staging)?;
    let bytes = serde_json::to_vec_pretty(value)?;
    std::fs::write(tmp.path(), &bytes)?;
    rclone(t, &["copyto", &tmp.path().display().to_string(), &remote_path(t, file)])?;
    wrote(t, file, Some(bytes.len() as u64), Some(bytes));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as rclone v1.60 prints them with `--use-json-log --stats-log-level NOTICE`.
    const STATS: &str = r#"{"level":"warning","msg":"\nTransferred:   \t    1.527 MiB / 4.768 MiB, 32%, 0 B/s, ETA -\n","source":"accounting/stats.go:482","stats":{"bytes":1601536,"checks":0,"elapsedTime":0.58,"errors":0,"eta":null,"speed":0,"totalBytes":5000000,"transfers":0},"time":"2026-11-30T22:26:12.127963+00:00"}"#;
    const ERROR: &str = r#"{"level":"error","msg":"Failed to copy: AccessDenied: Access Denied","source":"cmd/cmd.go:508","time":"2026-11-30T22:26:13.1+00:00"}"#;

    #[test]
    fn stats_lines_give_bytes_done_and_in_all() {
        assert_eq!(stats_line(STATS.as_bytes()), Some((1_601_536, 5_000_000)));
        assert_eq!(stats_line(ERROR.as_bytes()), None);
        assert_eq!(stats_line(b"2026/11/30 22:26:50 ERROR : plain text"), None);
        assert_eq!(stats_line(br#"{"stats":{"bytes":-1,"totalBytes":2}}"#), None);
    }

    #[test]
    fn the_json_log_reads_back_as_the_plain_one_without_stats() {
        let log = format!("{STATS}\n2026/11/30 22:26:50 Source doesn't exist\n{ERROR}\n");
        assert_eq!(
            plain_log(log.as_bytes()),
            "2026/11/30 22:26:50 Source doesn't exist\nFailed to copy: AccessDenied: Access Denied\n"
        );
    }
}
