//! The validated configuration that every other module receives: plain data, already
//! checked, with defaults filled in. `validate` builds it; two types are also read from the
//! file as they are (`[guard]`'s numbers, and the `transport` word), so they derive
//! `Deserialize`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::error::ConfigError;
use super::PRESERVED;

/// The validated, effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// Where backup repos, caches, state and the lock live.
    pub state_dir: PathBuf,
    /// Where each effective setting came from, for `config check`: every key path it shows
    /// (`state_dir`, `source[1].exclude`, `target[2].keep.daily`, `notify.on_failure.webhook`)
    /// → `FILE line N`, `.env`'s `FILE line N`, `environment VAR` or `default`.
    pub origins: BTreeMap<String, String>,
    pub sources: Vec<Source>,
    /// `[mirror] url`: the mirror of every source that names none (already copied into them).
    pub mirror_url: Option<String>,
    pub targets: Vec<Target>,
    pub network: Network,
    pub notify: NotifyConfig,
    pub guard: Guard,
    /// `status` calls the newest good backup stale past this age.
    pub max_age: chrono::Duration,
    /// `run` warns about unpushed commits and tags only once they are older than this (the
    /// snapshot and the mirror hold them meanwhile); `verify` itself is always strict.
    pub verify_grace: chrono::Duration,
    /// `[hooks]`: commands before and after a run, and on its failure.
    pub hooks: Hooks,
    /// `run` performs a full `check` when the last one is older than this.
    pub check_every: chrono::Duration,
    /// Off-site bundles not fully read for this long are read by the next subset check.
    pub read_data_within: chrono::Duration,
    /// `run` performs a `drill` when the last one is older than this.
    pub drill_every: chrono::Duration,
    /// `run` merges the backup repo's packs into one, making deltas, when the last repack is
    /// older than this.
    pub repack_every: chrono::Duration,
    /// Variables from `.env` that are not opus-mirror's own (tokens for rclone and the like):
    /// kept for child processes, shown masked.
    pub extra_env: BTreeMap<String, String>,
}

/// One directory that opus-mirror protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub path: PathBuf,
    /// gitignore-style patterns, relative to `path`.
    pub exclude: Vec<String>,
    /// Back up secret-looking files (`.env`, keys) too.
    pub include_secrets: bool,
    /// gitignore-style patterns, relative to `path`: secret-looking files they match are
    /// backed up anyway (the rest stay out). Validated when the config is loaded.
    pub keep_secrets: Vec<String>,
    /// The branch in the backup repo that holds the snapshots.
    pub snapshot_branch: String,
    /// The secondary private remote that receives every ref, if any.
    pub mirror: Option<String>,
    /// Which refs go to the mirror (`mirror_refs`; default all).
    pub mirror_refs: MirrorRefs,
    /// Where `run` keeps an up-to-date recovery runbook inside the source (relative path).
    pub recovery_doc: Option<PathBuf>,
    /// Where `run` keeps the backup's health note inside the source (relative path; left out
    /// of the snapshots).
    pub health_note: Option<PathBuf>,
}

/// Which of the backup repo's refs a source pushes to its mirror (`mirror_refs = ["code",
/// "snapshot", "preserved"]`, default all). Leaving "snapshot" out keeps the vault — every
/// untracked and ignored file, in plaintext — off a mirror that is someone else's server.
/// Refs left out are neither pushed nor deleted there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorRefs {
    /// Branches, tags and notes of the user's repository (and the setup record).
    pub code: bool,
    /// The snapshot branch (the vault as it was on disk).
    pub snapshot: bool,
    /// Preserved tips (`refs/opus-mirror/preserved/*`).
    pub preserved: bool,
}

impl Default for MirrorRefs {
    fn default() -> Self {
        MirrorRefs { code: true, snapshot: true, preserved: true }
    }
}

impl MirrorRefs {
    /// Whether `name` (a ref of the backup repo) goes to the mirror. A preserved tip of the
    /// snapshot branch needs both "preserved" and "snapshot": it holds the vault too.
    pub fn takes(&self, name: &str, snapshot_branch: &str) -> bool {
        let snap_tail = format!("/heads/{snapshot_branch}");
        if let Some(rest) = name.strip_prefix(PRESERVED) {
            return self.preserved && (self.snapshot || !rest.ends_with(&snap_tail));
        }
        if name == format!("refs/heads/{snapshot_branch}") {
            return self.snapshot;
        }
        self.code
    }
}

/// A place bundles go (`[[target]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    /// Skip the target while its newest bundle is younger than this.
    pub every: Option<chrono::Duration>,
    /// `[network]` timeouts for the target's rclone processes.
    pub timeouts: Timeouts,
    /// Write incremental bundles between full ones.
    pub incremental: bool,
    /// With incremental bundles: a full bundle at least this often.
    pub full_every: chrono::Duration,
    pub keep: crate::retention::KeepPolicy,
    /// The sources bundled here (None: all).
    pub sources: Option<Vec<String>>,
    /// age recipients (`age1...`): bundles are encrypted to them when not empty.
    pub age_recipients: Vec<String>,
    /// The age identity that decrypts them, for `run`'s drill (kept off the drive).
    pub identity_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// A directory, usually on a secondary drive.
    Dir { path: PathBuf, require_mount: bool },
    /// An rclone remote such as `b2:bucket/opus`.
    Rclone { remote: String, config: Option<PathBuf> },
}

impl Target {
    /// Whether this target takes bundles of `source`.
    pub fn takes(&self, source: &str) -> bool {
        self.sources.as_ref().is_none_or(|s| s.iter().any(|n| n == source))
    }
}

/// How opus-mirror talks to remotes (`[network]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    pub transport: Transport,
    /// A private key to offer over SSH after the agent's keys.
    pub ssh_key: Option<PathBuf>,
    /// The name of an environment variable holding an https token (never its value).
    pub token_env: Option<String>,
    /// The hosts of the configured mirrors: the only ones the token is ever offered to (the
    /// source's own remotes and anything else that asks get nothing).
    pub token_hosts: Vec<String>,
    pub timeouts: Timeouts,
}

/// The host of a URL (`https://user@Host:8443/x.git` → `host`), lowercased; None for local
/// paths and scp-like addresses (no token goes over those).
pub fn url_host(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => hostport.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// How long a network step may wait (`[network] timeout` and `deadline`): a stalled server
/// must end the step as "unreachable", never hold the run and its lock forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The longest silence: connecting, or waiting for the next byte from the server.
    pub idle: std::time::Duration,
    /// The longest any one network step (one git or rclone process) may run in all.
    pub deadline: std::time::Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            idle: std::time::Duration::from_secs(60),
            deadline: std::time::Duration::from_secs(6 * 3600),
        }
    }
}

impl Timeouts {
    /// The idle timeout as the user wrote it, for messages (`[network] timeout = "60s"`).
    pub fn idle_setting(&self) -> String {
        format!("[network] timeout = \"{}s\"", self.idle.as_secs())
    }
}

/// Which implementation carries network traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// libgit2 (built in; SSH through libssh2, which ignores ~/.ssh/config).
    #[default]
    Libgit2,
    /// The system `git` binary, which honours ~/.ssh/config, credential helpers and https.
    GitCli,
}

impl Config {
    /// Finds a source by name, or the only source when no name is given.
    pub fn select_sources(&self, name: Option<&str>) -> Result<Vec<&Source>, ConfigError> {
        match name {
            Some(n) => match self.sources.iter().find(|s| s.name == n) {
                Some(s) => Ok(vec![s]),
                None => Err(ConfigError {
                    file: Some(self.file.clone()),
                    line: None,
                    key: Some("source.name".into()),
                    problem: format!("no source named `{n}`"),
                    fix: format!("use one of: {}", self.source_names()),
                }),
            },
            None if self.sources.is_empty() => Err(ConfigError {
                file: Some(self.file.clone()),
                line: None,
                key: None,
                problem: "no [[source]] is configured".into(),
                fix: "add one with `opus-mirror init --source PATH`, or a [[source]] table in the file"
                    .into(),
            }),
            None => Ok(self.sources.iter().collect()),
        }
    }

    /// The targets named, or all of them.
    pub fn select_targets(&self, name: Option<&str>) -> Result<Vec<&Target>, ConfigError> {
        match name {
            Some(n) => match self.targets.iter().find(|t| t.name == n) {
                Some(t) => Ok(vec![t]),
                None => Err(ConfigError {
                    file: Some(self.file.clone()),
                    line: None,
                    key: Some("target.name".into()),
                    problem: format!("no target named `{n}`"),
                    fix: format!("use one of: {}", self.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")),
                }),
            },
            None if self.targets.is_empty() => Err(ConfigError {
                file: Some(self.file.clone()),
                line: None,
                key: None,
                problem: "no [[target]] is configured".into(),
                fix: "add one: [[target]] name = \"drive\" kind = \"dir\" path = \"/media/you/drive/opus-mirror\"".into(),
            }),
            None => Ok(self.targets.iter().collect()),
        }
    }

    fn source_names(&self) -> String {
        let names: Vec<_> = self.sources.iter().map(|s| s.name.as_str()).collect();
        if names.is_empty() {
            "(none configured)".into()
        } else {
            names.join(", ")
        }
    }
}

/// `[guard]`: thresholds past which a snapshot is treated as the work of a misfiring script.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Guard {
    /// Percent of the previous snapshot's files deleted.
    pub max_deleted_percent: f64,
    /// Percent of the previous snapshot's files modified.
    pub max_changed_percent: f64,
    /// Files that turned empty (mass truncation).
    pub max_truncated_files: u64,
    /// Smaller sources are not judged by percentages (one file of three is 33 %).
    pub min_files: u64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard { max_deleted_percent: 20.0, max_changed_percent: 50.0, max_truncated_files: 10, min_files: 20 }
    }
}

/// Where one level of alert goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Channel {
    pub command: Option<Vec<String>>,
    pub webhook: Option<String>,
}

/// `[notify]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyConfig {
    pub on_failure: Channel,
    pub on_warning: Channel,
    pub on_success: Channel,
    pub healthcheck: Option<String>,
    /// Whether a job that ends with warnings pings the healthcheck's `/fail` (default: it
    /// pings success — the backups happened).
    pub healthcheck_warnings_fail: bool,
}

/// `[hooks]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hooks {
    pub before_run: Option<Vec<String>>,
    pub after_run: Option<Vec<String>>,
    pub on_error: Option<Vec<String>>,
    /// The longest a hook may run before it is stopped (a failure).
    pub timeout: std::time::Duration,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            before_run: None,
            after_run: None,
            on_error: None,
            timeout: std::time::Duration::from_secs(300),
        }
    }
}
