//! Talking to remotes: listing their refs, fetching, pushing; over libgit2 (file, git://,
//! ssh://, scp-like) or the system `git` (`[network] transport = "git-cli"`, which also
//! carries https and honours ~/.ssh/config). Whatever the transport, fetches from and pushes
//! to this machine, and pushes over ssh, go through the system git: it builds and indexes
//! packs on every core where libgit2 uses one.
//!
//! Safety rules: SSH host keys are checked against ~/.ssh/known_hosts and an unknown host
//! fails closed; credentials are tried a bounded number of times (libgit2 would otherwise
//! retry a failing one forever); secrets in URLs are masked in every message; no step waits
//! on a silent server longer than `[network] timeout` or runs past `[network] deadline`
//! (libgit2's server timeouts, ssh's ConnectTimeout/ServerAlive, and a watchdog on git).

use std::cell::Cell;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use git2::{Cred, CredentialType, Oid, RemoteCallbacks, Repository};

use crate::config::{mask_url, Network, Timeouts, Transport};
use crate::exit::{Exit, HasExit};
use crate::netchild::{self, Stopped};

/// How many credentials we offer before giving up.
const MAX_AUTH_ATTEMPTS: u32 = 3;

/// A remote could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "cannot reach {url}: {detail}\n  fix: check the URL, the network, and that the server is running"
    )]
    Unreachable { url: String, detail: String },
    #[error("the SSH host key of {url} is unknown or has changed: {detail}\n  fix: check the host's fingerprint out of band, then add it: {}", keyscan_hint(url))]
    HostKey { url: String, detail: String },
    #[error("{url} refused our credentials: {detail}\n  fix: load the key into ssh-agent or set [network] ssh_key; libgit2 does not read ~/.ssh/config (Host aliases, IdentityFile, ProxyJump): set [network] transport = \"git-cli\" to use the system git")]
    Auth { url: String, detail: String },
    #[error("{url} rejected {detail}")]
    Rejected { url: String, detail: String },
    /// A ref or file on the remote is locked: a push is running, or one was killed.
    #[error("{detail}")]
    Locked { url: String, detail: String },
}

impl HasExit for RemoteError {
    fn exit(&self) -> Exit {
        match self {
            RemoteError::Rejected { .. } => Exit::Failed,
            RemoteError::Locked { .. } => Exit::Busy,
            _ => Exit::Unreachable,
        }
    }
}

/// The command that records a host's key in known_hosts, for the URL's host and port.
fn keyscan_hint(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let hostport = rest.split(['/']).next().unwrap_or(rest);
    let hostport = hostport.rsplit_once('@').map(|(_, h)| h).unwrap_or(hostport);
    let (host, port) = match (url.contains("://"), hostport.rsplit_once(':')) {
        (true, Some((h, p))) => (h, Some(p)),
        (_, Some((h, _))) => (h, None),
        _ => (hostport, None),
    };
    match port {
        Some(p) if p != "22" => format!("ssh-keyscan -p {p} {host} >> ~/.ssh/known_hosts"),
        _ => format!("ssh-keyscan {host} >> ~/.ssh/known_hosts"),
    }
}

/// A ref the remote advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    pub name: String,
    pub oid: Oid,
}

/// The outcome of pushing one ref.
#[derive(Debug, Clone)]
pub struct PushStatus {
    pub refname: String,
    /// The server's reason when it refused the update.
    pub error: Option<String>,
}

/// What the callbacks of one network step saw, for telling its failure apart.
#[derive(Default)]
struct Step {
    /// Credentials offered so far.
    attempts: Cell<u32>,
    /// A progress callback stopped the transfer at the deadline.
    late: Cell<bool>,
}

fn classify(net: &Network, url: &str, e: &git2::Error, step: &Step) -> RemoteError {
    let attempts = step.attempts.get();
    if let Some(l) = locked(url, &crate::config::mask_urls_in(e.message())) {
        return l;
    }
    let url = mask_url(url);
    let detail = crate::config::mask_urls_in(e.message());
    let lower = detail.to_lowercase();
    if e.code() == git2::ErrorCode::Timeout || lower.contains("timed out") || lower.contains("timeout") {
        RemoteError::Unreachable { url, detail: silent(&net.timeouts, &detail) }
    } else if step.late.get() {
        RemoteError::Unreachable { url, detail: past_deadline(&net.timeouts) }
    } else if lower.contains("hostkey")
        || lower.contains("host key")
        || lower.contains("known_hosts")
        || lower.contains("known hosts")
    {
        RemoteError::HostKey { url, detail }
    } else if attempts > MAX_AUTH_ATTEMPTS
        || e.code() == git2::ErrorCode::Auth
        || lower.contains("authentication")
        || lower.contains("publickey")
        || lower.contains("credentials")
    {
        RemoteError::Auth { url, detail }
    } else {
        RemoteError::Unreachable { url, detail }
    }
}

/// The detail of a step that gave up on a silent server.
fn silent(t: &Timeouts, what: &str) -> String {
    format!(
        "the server sent nothing for {}s ({what}); {} is the longest we wait, raise it for a slow link",
        t.idle.as_secs(),
        t.idle_setting()
    )
}

fn past_deadline(t: &Timeouts) -> String {
    format!(
        "the transfer ran past the [network] deadline ({}s) and was stopped; raise [network] deadline for a large first transfer ({} applies to silence)",
        t.deadline.as_secs(),
        t.idle_setting()
    )
}

/// Tells libgit2 how long to wait for a connection and for each read or write (TCP for
/// git:// and the SSH session alike). These are process-wide settings; network steps run
/// one at a time on the calling thread, each setting them first.
fn apply_libgit2_timeouts(t: &Timeouts) {
    let ms = i32::try_from(t.idle.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: plain integer globals read by libgit2 when it opens a connection; no other
    // thread is inside a libgit2 network call while a step sets them.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms);
        let _ = git2::opts::set_server_timeout_in_milliseconds(ms);
    }
}

/// Callbacks offering credentials a bounded number of times: ssh-agent first, then the
/// configured key; a token from the environment for https. Progress callbacks stop a
/// transfer that runs past `[network] deadline`.
fn callbacks<'a>(net: &'a Network, step: &'a Step) -> RemoteCallbacks<'a> {
    apply_libgit2_timeouts(&net.timeouts);
    let mut cb = RemoteCallbacks::new();
    let start = Instant::now();
    let deadline = net.timeouts.deadline;
    let in_time = move || {
        let ok = start.elapsed() <= deadline;
        step.late.set(!ok);
        ok
    };
    cb.transfer_progress(move |_| in_time());
    cb.sideband_progress(move |_| in_time());
    let attempts = &step.attempts;
    cb.credentials(move |url, username, allowed| {
        let n = attempts.get() + 1;
        attempts.set(n);
        if n > MAX_AUTH_ATTEMPTS {
            return Err(git2::Error::from_str("authentication failed: no offered credential was accepted"));
        }
        let user = username.unwrap_or("git");
        if allowed.contains(CredentialType::SSH_KEY) {
            let agent = std::env::var_os("SSH_AUTH_SOCK").is_some();
            if n == 1 && agent {
                return Cred::ssh_key_from_agent(user);
            }
            if let Some(key) = &net.ssh_key {
                if (n == 1 && !agent) || n == 2 {
                    return Cred::ssh_key(user, None, key, None);
                }
            }
            return Err(git2::Error::from_str(
                "authentication failed: no ssh-agent key or [network] ssh_key was accepted",
            ));
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if let Some(token) = net.token_env.as_deref().and_then(|v| std::env::var(v).ok()) {
                if offers_token(net, url) {
                    return Cred::userpass_plaintext(username.unwrap_or("x-access-token"), &token);
                }
            }
        }
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(user);
        }
        Err(git2::Error::from_str("authentication failed: no usable credential"))
    });
    cb
}

/// Makes a relative local remote path (`../origin.git`) absolute, as git resolves it:
/// relative to the work tree (or the git dir of a bare repo). URLs and scp-like
/// `host:path` forms are returned unchanged.
pub fn resolve_url(repo: &Repository, url: &str) -> String {
    let scp_like = url.find(':').is_some_and(|c| url.find('/').is_none_or(|s| c < s));
    if url.contains("://") || scp_like || Path::new(url).is_absolute() {
        return url.to_string();
    }
    let base = repo.workdir().unwrap_or_else(|| repo.path());
    base.join(url).display().to_string()
}

/// The git dir of a remote on this machine (an absolute path or a `file://` URL).
pub(crate) fn local_git_dir(url: &str) -> Option<std::path::PathBuf> {
    let path = url.strip_prefix("file://").unwrap_or(url);
    Path::new(path).is_absolute().then(|| Path::new(path).to_path_buf())
}

/// A remote lock error, told apart from a network failure by its message (libgit2:
/// "failed to lock file"; git: "Unable to create '….lock'").
pub fn locked(url: &str, detail: &str) -> Option<RemoteError> {
    let lower = detail.to_lowercase();
    (lower.contains("failed to lock") || lower.contains(".lock': file exists") || lower.contains("unable to create") && lower.contains(".lock")).then(|| RemoteError::Locked {
        url: mask_url(url),
        detail: format!(
            "{}: a ref is locked ({detail})\n  fix: wait for the other push to finish; if none is running, remove the lock file it names",
            mask_url(url)
        ),
    })
}

/// Whether the token may be offered to `url`: only an https mirror's own host.
pub(crate) fn offers_token(net: &Network, url: &str) -> bool {
    url.starts_with("https://") && crate::config::url_host(url).is_some_and(|h| net.token_hosts.contains(&h))
}

/// git `-c` arguments that give the token to the mirrors' hosts only (`credential.<url>.helper`
/// is consulted for that URL alone). The helper reads the token from the environment when git
/// asks: it is never on a command line or in a log.
pub(crate) fn token_helper_args(net: &Network) -> Vec<String> {
    let Some(var) = &net.token_env else { return Vec::new() };
    let mut out = Vec::new();
    for host in &net.token_hosts {
        out.push("-c".into());
        out.push(format!("credential.https://{host}.helper="));
        out.push("-c".into());
        out.push(format!(
            "credential.https://{host}.helper=!f() {{ echo username=x-access-token; echo \"password=${var}\"; }}; f"
        ));
    }
    out
}

/// Whether the system git carries this URL: when configured, and always for http(s), which
/// this build of libgit2 does not speak (its OpenSSL start-up would cost every run ~20 ms).
fn use_git_cli(net: &Network, url: &str) -> bool {
    net.transport == Transport::GitCli || url.starts_with("https://") || url.starts_with("http://")
}

/// Lists the refs `url` really has (no fetch).
pub fn ls_remote(net: &Network, repo: &Repository, url: &str) -> Result<Vec<RemoteRef>, RemoteError> {
    if use_git_cli(net, url) {
        let out = git_cli(net, repo.path(), &["ls-remote", url], url)?;
        return Ok(out
            .lines()
            .filter_map(|l| {
                let (oid, name) = l.split_once('\t')?;
                Some(RemoteRef { name: name.to_string(), oid: Oid::from_str(oid).ok()? })
            })
            .filter(|r| !r.name.ends_with("^{}"))
            .collect());
    }
    let step = Step::default();
    let mut remote = repo.remote_anonymous(url).map_err(|e| classify(net, url, &e, &Step::default()))?;
    let conn = remote
        .connect_auth(git2::Direction::Fetch, Some(callbacks(net, &step)), None)
        .map_err(|e| classify(net, url, &e, &step))?;
    let heads = conn.list().map_err(|e| classify(net, url, &e, &step))?;
    Ok(heads
        .iter()
        .filter(|h| !h.name().ends_with("^{}"))
        .map(|h| RemoteRef { name: h.name().to_string(), oid: h.oid() })
        .collect())
}

/// Whether a fetch from or a push to `url` goes through the system git although the
/// transport is libgit2: with a repository on this machine (the source itself, a local
/// mirror) git's own transfer (pack-objects and index-pack on every core) is several times
/// faster than libgit2's single-threaded one (fetching a 196 MB `.git`: 7 s against 51 s;
/// the first push of the large vault's backup repo: 83.5 s against 11.6 s). No credentials
/// or host keys are involved, so nothing of `[network]` is lost.
fn local_by_git(url: &str) -> bool {
    let local = url.starts_with("file://") || (!url.contains("://") && Path::new(url).exists());
    local && installed("git", "--version")
}

/// Whether a push to `url` goes through the system git although the transport is libgit2: to
/// a repository on this machine (see [`local_by_git`]), and over ssh, where git's push builds
/// the pack on every core too. The first contact (`ls_remote`) stays with libgit2 and its
/// checks; the push then runs ssh with the same limits: `[network] ssh_key`, the host checked
/// against `~/.ssh/known_hosts` (unknown fails closed), never a prompt (see [`git_cli_output`]).
fn push_by_git(url: &str) -> bool {
    local_by_git(url) || (is_ssh(url) && installed("git", "--version") && installed("ssh", "-V"))
}

/// `ssh://…`, `git+ssh://…` or scp-like `[user@]host:path`.
fn is_ssh(url: &str) -> bool {
    let scp_like = !url.contains("://") && url.find(':').is_some_and(|c| url.find('/').is_none_or(|s| c < s));
    url.starts_with("ssh://") || url.starts_with("git+ssh://") || scp_like
}

/// Whether a program runs (asked once per process).
fn installed(program: &'static str, arg: &'static str) -> bool {
    static SEEN: std::sync::Mutex<Vec<(&str, bool)>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, ok)) = seen.iter().find(|(p, _)| *p == program) {
        return *ok;
    }
    let ok = Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    seen.push((program, ok));
    ok
}

/// Fetches `refspecs` from `url` into `repo`. Tags are only fetched when asked for.
pub fn fetch(net: &Network, repo: &Repository, url: &str, refspecs: &[String]) -> Result<(), RemoteError> {
    if refspecs.is_empty() {
        return Ok(());
    }
    if use_git_cli(net, url) || local_by_git(url) {
        // Always one pack, never loose objects: our packs are the backup repo's only store.
        let mut args = vec!["-c", "fetch.unpackLimit=1", "-c", "transfer.unpackLimit=1"];
        args.extend(["fetch", "--progress", "--no-tags", "--no-write-fetch-head", url]);
        args.extend(refspecs.iter().map(String::as_str));
        git_cli(net, repo.path(), &args, url)?;
        return Ok(());
    }
    let step = Step::default();
    let mut remote = repo.remote_anonymous(url).map_err(|e| classify(net, url, &e, &Step::default()))?;
    let mut fo = git2::FetchOptions::new();
    fo.remote_callbacks(callbacks(net, &step))
        .download_tags(git2::AutotagOption::None)
        .update_fetchhead(false);
    remote.fetch(refspecs, Some(&mut fo), None).map_err(|e| classify(net, url, &e, &step))
}

/// Pushes `refspecs` to `url` and returns every ref's own status: libgit2's push succeeds
/// as a whole even when the server refuses single refs.
pub fn push(
    net: &Network,
    repo: &Repository,
    url: &str,
    refspecs: &[String],
) -> Result<Vec<PushStatus>, RemoteError> {
    if refspecs.is_empty() {
        return Ok(Vec::new());
    }
    // git resolves a relative path against its working directory, not the backup repo.
    let resolved = resolve_url(repo, url);
    if use_git_cli(net, url) || push_by_git(&resolved) {
        let mut args = vec!["push", "--progress", "--porcelain", resolved.as_str()];
        args.extend(refspecs.iter().map(String::as_str));
        let out = git_cli_lenient(net, repo.path(), &args, url)?;
        return Ok(parse_porcelain(&out));
    }
    let step = Step::default();
    let statuses = std::cell::RefCell::new(Vec::new());
    {
        let mut remote = repo.remote_anonymous(url).map_err(|e| classify(net, url, &e, &Step::default()))?;
        let mut cb = callbacks(net, &step);
        cb.push_update_reference(|name, status| {
            statuses
                .borrow_mut()
                .push(PushStatus { refname: name.to_string(), error: status.map(str::to_string) });
            Ok(())
        });
        let mut po = git2::PushOptions::new();
        po.remote_callbacks(cb);
        remote.push(refspecs, Some(&mut po)).map_err(|e| classify(net, url, &e, &step))?;
    }
    Ok(statuses.into_inner())
}

/// Parses `git push --porcelain`: `<flag>\t<from>:<to>\t<summary>` per ref.
fn parse_porcelain(out: &str) -> Vec<PushStatus> {
    out.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, '\t');
            let flag = parts.next()?;
            let spec = parts.next()?;
            let summary = parts.next().unwrap_or("");
            let to = spec.rsplit(':').next()?.to_string();
            let error = (flag == "!").then(|| summary.to_string());
            Some(PushStatus { refname: to, error })
        })
        .collect()
}

/// Runs the system git for a network step; fails with the classified error.
fn git_cli(net: &Network, git_dir: &Path, args: &[&str], url: &str) -> Result<String, RemoteError> {
    let o = git_cli_output(net, git_dir, args, url)?;
    if !o.status.success() {
        return Err(classify_cli(&net.timeouts, url, &String::from_utf8_lossy(&o.stderr)));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Like [`git_cli`], but a push that refused some refs still returns its porcelain report.
fn git_cli_lenient(net: &Network, git_dir: &Path, args: &[&str], url: &str) -> Result<String, RemoteError> {
    let o = git_cli_output(net, git_dir, args, url)?;
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    if !o.status.success()
        && !stdout.lines().any(|l| l.starts_with('!') || l.starts_with('*') || l.starts_with('+'))
    {
        return Err(classify_cli(&net.timeouts, url, &String::from_utf8_lossy(&o.stderr)));
    }
    Ok(stdout)
}

/// Runs the system git under the `[network]` limits: it is killed after `timeout` without a
/// byte of output (fetch and push print progress while data moves) or past `deadline`.
fn git_cli_output(
    net: &Network,
    git_dir: &Path,
    args: &[&str],
    url: &str,
) -> Result<netchild::Finished, RemoteError> {
    let t = &net.timeouts;
    let mut c = Command::new("git");
    c.arg("--git-dir").arg(git_dir);
    // https: give up on a connection that moves less than a byte a second for `timeout`.
    c.arg("-c").arg("http.lowSpeedLimit=1");
    c.arg("-c").arg(format!("http.lowSpeedTime={}", t.idle.as_secs().max(1)));
    c.args(token_helper_args(net));
    // BatchMode: never prompt. known_hosts from $HOME like libgit2 (ssh itself would use the
    // passwd entry's home); strict checking stays on, so an unknown host fails closed.
    let mut ssh = String::from("ssh -o BatchMode=yes -o StrictHostKeyChecking=yes");
    // Connecting (TCP and the SSH greeting) and, once connected, silence: ssh probes a quiet
    // server every third of the timeout and hangs up after three unanswered probes.
    let secs = t.idle.as_secs().max(1);
    ssh.push_str(&format!(
        " -o ConnectTimeout={secs} -o ServerAliveInterval={} -o ServerAliveCountMax=3",
        secs.div_ceil(3)
    ));
    if let Some(home) = std::env::var_os("HOME") {
        ssh.push_str(&format!(
            " -o UserKnownHostsFile='{}'",
            Path::new(&home).join(".ssh/known_hosts").display()
        ));
    }
    if let Some(key) = &net.ssh_key {
        ssh.push_str(&format!(" -i '{}'", key.display()));
    }
    c.args(args).env("GIT_TERMINAL_PROMPT", "0").env("GIT_SSH_COMMAND", ssh);
    netchild::run(c, Some(t.idle), t.deadline).map_err(|stop| {
        let url = mask_url(url);
        match stop {
            Stopped::Spawn(e) => RemoteError::Unreachable {
                url,
                detail: format!("cannot run git (transport = \"git-cli\" needs git installed): {e}"),
            },
            Stopped::Silent { .. } => RemoteError::Unreachable { url, detail: silent(t, "git was stopped") },
            Stopped::Deadline { .. } => RemoteError::Unreachable { url, detail: past_deadline(t) },
        }
    })
}

fn classify_cli(t: &Timeouts, url: &str, stderr: &str) -> RemoteError {
    let detail = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("git failed").trim().to_string();
    let detail = crate::config::mask_urls_in(&detail.replace(url, &mask_url(url)));
    if let Some(l) = locked(url, &detail) {
        return l;
    }
    let url = mask_url(url);
    let lower = stderr.to_lowercase();
    if lower.contains("host key verification failed")
        || lower.contains("remote host identification has changed")
    {
        RemoteError::HostKey { url, detail }
    } else if lower.contains("permission denied") || lower.contains("authentication failed") {
        RemoteError::Auth { url, detail }
    } else if lower.contains("timed out") || lower.contains("timeout") {
        RemoteError::Unreachable { url, detail: silent(t, &detail) }
    } else {
        RemoteError::Unreachable { url, detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_relative_local_paths_are_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let base = repo.workdir().unwrap().to_path_buf();
        assert_eq!(resolve_url(&repo, "../o.git"), base.join("../o.git").display().to_string());
        for u in ["git@github.com:me/x.git", "ssh://h/x", "/srv/x.git", "file:///srv/x"] {
            assert_eq!(resolve_url(&repo, u), u);
        }
    }

    #[test]
    fn https_always_goes_through_git() {
        let net = Network::default();
        assert!(use_git_cli(&net, "https://github.com/me/x.git"));
        assert!(!use_git_cli(&net, "ssh://git@github.com/me/x.git"));
        let cli = Network { transport: Transport::GitCli, ..Network::default() };
        assert!(use_git_cli(&cli, "/srv/x.git"));
    }

    #[test]
    fn pushes_to_this_machine_and_over_ssh_go_through_git() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().display().to_string();
        for u in [local.as_str(), &format!("file://{local}"), "ssh://git@h:2222/srv/x.git", "git@h:me/x.git"]
        {
            assert!(push_by_git(u), "{u}");
        }
        for u in ["git://h/x.git", "/no/such/dir.git", "https://h/x.git"] {
            assert!(!push_by_git(u), "{u} (https goes through git anyway, by use_git_cli)");
        }
    }

    #[test]
    fn keyscan_hint_names_host_and_port() {
        assert_eq!(
            keyscan_hint("ssh://git@backup.lan:2222/srv/x.git"),
            "ssh-keyscan -p 2222 backup.lan >> ~/.ssh/known_hosts"
        );
        assert_eq!(
            keyscan_hint("ssh://backup.lan/srv/x.git"),
            "ssh-keyscan backup.lan >> ~/.ssh/known_hosts"
        );
        assert_eq!(keyscan_hint("git@github.com:me/x.git"), "ssh-keyscan github.com >> ~/.ssh/known_hosts");
    }

    #[test]
    fn porcelain_push_report_is_parsed_per_ref() {
        let out = "To /srv/m.git\n*\trefs/heads/new:refs/heads/new\t[new branch]\n!\trefs/heads/main:refs/heads/main\t[remote rejected] (hook declined)\nDone\n";
        let s = parse_porcelain(out);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].refname, "refs/heads/new");
        assert!(s[0].error.is_none());
        assert_eq!(s[1].error.as_deref(), Some("[remote rejected] (hook declined)"));
    }

    #[test]
    fn cli_errors_are_classified_and_masked() {
        let e = classify_cli(
            &Timeouts::default(),
            "https://u:tok@h/x",
            "fatal: Authentication failed for 'https://u:tok@h/x'\n",
        );
        let msg = e.to_string();
        assert!(matches!(e, RemoteError::Auth { .. }));
        assert!(!msg.contains("tok"), "{msg}");
        assert!(matches!(
            classify_cli(
                &Timeouts::default(),
                "ssh://h/x",
                "Host key verification failed.\nfatal: Could not read"
            ),
            RemoteError::HostKey { .. }
        ));
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;

    fn net() -> Network {
        Network {
            token_env: Some("OM_TOKEN".into()),
            token_hosts: vec!["git.example.com".into()],
            ..Default::default()
        }
    }

    #[test]
    fn the_token_goes_to_the_mirrors_host_only() {
        let n = net();
        assert!(offers_token(&n, "https://git.example.com/me/opus-mirror.git"));
        assert!(offers_token(&n, "https://x@GIT.example.com:443/me/x.git"));
        assert!(!offers_token(&n, "https://github.com/me/opus.git"), "the source's own remote");
        assert!(!offers_token(&n, "https://git.example.com.evil.net/x.git"));
        assert!(!offers_token(&n, "http://git.example.com/x.git"), "never in clear text");
        let args = token_helper_args(&n).join(" ");
        assert!(args.contains("credential.https://git.example.com.helper=!f()"), "{args}");
        assert!(!args.contains("credential.helper="), "no helper for every host: {args}");
        assert!(args.contains("password=$OM_TOKEN\""), "the helper reads the variable when git asks: {args}");
        assert_eq!(crate::config::url_host("/srv/mirror.git"), None);
        assert_eq!(crate::config::url_host("https://[::1]:8443/x"), Some("::1".into()));
    }
}
