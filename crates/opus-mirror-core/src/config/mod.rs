//! Configuration: found, parsed, layered and validated here and nowhere else.
//!
//! Layers, weakest first: the TOML file < a `.env` file next to it < `OPUS_MIRROR_*`
//! environment variables < command-line flags. Every error names the file, the line and the
//! key, and says what to do; they all exit with [`Exit::Usage`].

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::exit::{Exit, HasExit};

mod mask;
mod origins;
mod render;
mod spans;
mod starter;

pub use mask::{mask, mask_endpoint, mask_url, mask_urls_in, secret_key};
pub use render::{effective_rest, render_effective};
use spans::{key_at, line_of};
pub use starter::{name_for, starter_config};

/// The file name of the configuration inside `$XDG_CONFIG_HOME/opus-mirror/`.
pub const CONFIG_FILE_NAME: &str = "config.toml";
/// The default name of the orphan branch that holds a source's snapshots.
pub const DEFAULT_SNAPSHOT_BRANCH: &str = "snapshot";
/// Where old tips are kept, in the backup repo and on the mirror.
pub const PRESERVED: &str = "refs/opus-mirror/preserved/";

/// Environment variables (and `.env` keys) that override the file. Kept in one table so that
/// `.env.example`, `config check` and the parser cannot drift apart.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("OPUS_MIRROR_CONFIG", "path of the config file (not allowed inside .env)"),
    ("OPUS_MIRROR_STATE_DIR", "overrides state_dir"),
    ("OPUS_MIRROR_LOG", "log filter for stderr, e.g. info or opus_mirror=debug"),
];

/// A configuration problem, precise enough to fix without reading the source code.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file at fault (config or .env), if any.
    pub file: Option<PathBuf>,
    /// 1-based line in that file, when known.
    pub line: Option<usize>,
    /// The key at fault, e.g. `source[2].path`.
    pub key: Option<String>,
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut place = Vec::new();
        if let Some(file) = &self.file {
            place.push(file.display().to_string());
        }
        if let Some(line) = self.line {
            place.push(format!("line {line}"));
        }
        if let Some(key) = &self.key {
            place.push(format!("key `{key}`"));
        }
        if place.is_empty() {
            write!(f, "config: {}", self.problem)?;
        } else {
            write!(f, "config {}: {}", place.join(", "), self.problem)?;
        }
        write!(f, "\n  fix: {}", self.fix)
    }
}

impl HasExit for ConfigError {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
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

// ---- the file's shape -------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<Spanned<String>>,
    network: Option<RawNetwork>,
    mirror: Option<RawMirror>,
    #[serde(default, rename = "source")]
    sources: Vec<RawSource>,
    #[serde(default, rename = "target")]
    targets: Vec<RawTarget>,
    notify: Option<RawNotify>,
    guard: Option<Guard>,
    status: Option<RawStatus>,
    run: Option<RawRun>,
    verify: Option<RawVerify>,
    hooks: Option<RawHooks>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    before_run: Option<Vec<String>>,
    after_run: Option<Vec<String>>,
    on_error: Option<Vec<String>>,
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    grace: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    check_every: Option<Spanned<String>>,
    drill_every: Option<Spanned<String>>,
    read_data_within: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    healthcheck: Option<String>,
    healthcheck_warnings: Option<Spanned<String>>,
    on_failure: Option<RawChannel>,
    on_warning: Option<RawChannel>,
    on_success: Option<RawChannel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    command: Option<Vec<String>>,
    webhook: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatus {
    max_age: Option<Spanned<String>>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: Spanned<String>,
    kind: Spanned<String>,
    path: Option<Spanned<String>>,
    remote: Option<Spanned<String>>,
    rclone_config: Option<Spanned<String>>,
    require_mount: Option<bool>,
    every: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    full_every: Option<Spanned<String>>,
    #[serde(default)]
    keep: crate::retention::KeepPolicy,
    sources: Option<Vec<Spanned<String>>>,
    encrypt: Option<RawEncrypt>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncrypt {
    age_recipients: Spanned<Vec<String>>,
    identity_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Spanned<String>,
    path: Spanned<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    include_secrets: bool,
    keep_secrets: Option<Spanned<Vec<String>>>,
    snapshot_branch: Option<Spanned<String>>,
    /// This source's mirror remote URL.
    mirror: Option<Spanned<String>>,
    mirror_refs: Option<Spanned<Vec<String>>>,
    recovery_doc: Option<String>,
    health_note: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    transport: Option<Spanned<String>>,
    ssh_key: Option<Spanned<String>>,
    token_env: Option<String>,
    timeout: Option<Spanned<String>>,
    deadline: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirror {
    url: Option<Spanned<String>>,
}

// ---- finding the file -------------------------------------------------------------------

/// Where the config file is: `--config`, else `$OPUS_MIRROR_CONFIG`, else
/// `$XDG_CONFIG_HOME/opus-mirror/config.toml` (`~/.config` when XDG is unset).
pub fn locate(flag: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, ConfigError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = env("OPUS_MIRROR_CONFIG").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    Ok(xdg_dir(env, "XDG_CONFIG_HOME", ".config")?.join("opus-mirror").join(CONFIG_FILE_NAME))
}

/// `$VAR`, else `$HOME/fallback`.
pub fn xdg_dir(
    env: &dyn Fn(&str) -> Option<String>,
    var: &str,
    fallback: &str,
) -> Result<PathBuf, ConfigError> {
    if let Some(p) = env(var).filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    match env("HOME").filter(|s| !s.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(fallback)),
        None => Err(ConfigError {
            file: None,
            line: None,
            key: None,
            problem: format!("neither ${var} nor $HOME is set"),
            fix: "set HOME, or pass --config PATH".into(),
        }),
    }
}

// ---- loading ----------------------------------------------------------------------------

/// Loads and validates the configuration at `path`. `env` reads the process environment
/// (passed in so tests control it).
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError {
                file: Some(path.to_path_buf()),
                line: None,
                key: None,
                problem: "the config file does not exist".into(),
                fix: "create it with `opus-mirror init --source PATH`, or point --config / OPUS_MIRROR_CONFIG at yours".into(),
            })
        }
        Err(e) => {
            return Err(ConfigError {
                file: Some(path.to_path_buf()),
                line: None,
                key: None,
                problem: format!("cannot read the config file: {e}"),
                fix: "check the file's permissions".into(),
            })
        }
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    refuse_writable_by_others(path)?;
    refuse_writable_by_others(&base)?;
    refuse_writable_by_others(&base.join(".env"))?;
    let dotenv = load_dotenv(&base.join(".env"))?;
    parse(path, &text, &dotenv, env)
}

/// The config says which commands to run (notify, hooks) and where backups go: like ssh with
/// its keys, we refuse one that another user could have changed. A missing file is fine.
fn refuse_writable_by_others(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else { return Ok(()) };
    let sticky_dir = meta.is_dir() && meta.mode() & 0o1000 != 0;
    if meta.mode() & 0o022 == 0 || sticky_dir {
        return Ok(());
    }
    Err(ConfigError {
        file: Some(path.to_path_buf()),
        line: None,
        key: None,
        problem: format!(
            "is writable by other users (mode {:o}): anyone who can change it chooses the commands opus-mirror runs and where your backups go",
            meta.mode() & 0o7777
        ),
        fix: format!("chmod go-w {}", crate::shell::quote(&path.display().to_string())),
    })
}

/// One `KEY=value` from a `.env` file, with its line for error messages.
#[derive(Debug, Clone)]
struct DotenvEntry {
    value: String,
    line: usize,
}

#[derive(Debug, Default)]
struct Dotenv {
    file: PathBuf,
    entries: BTreeMap<String, DotenvEntry>,
}

/// Reads `.env` beside the config if there is one. Unknown `OPUS_MIRROR_*` keys are errors
/// (a typo there would silently do nothing); other keys are kept for child processes.
fn load_dotenv(path: &Path) -> Result<Dotenv, ConfigError> {
    let mut out = Dotenv { file: path.to_path_buf(), entries: BTreeMap::new() };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(ConfigError {
                file: Some(path.to_path_buf()),
                line: None,
                key: None,
                problem: format!("cannot read .env: {e}"),
                fix: "check the file's permissions".into(),
            })
        }
    };
    // Parse line by line ourselves first, so errors can name the line; dotenvy then handles
    // quoting and escapes of each value exactly as other .env tools do.
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let Some((key, _)) = body.split_once('=') else {
            return Err(ConfigError {
                file: Some(path.to_path_buf()),
                line: Some(line),
                key: None,
                problem: "expected KEY=value".into(),
                fix: "write one KEY=value per line; see .env.example".into(),
            });
        };
        let key = key.trim().to_string();
        let value = match dotenvy::from_read_iter(body.as_bytes()).next() {
            Some(Ok((_, v))) => v,
            _ => {
                return Err(ConfigError {
                    file: Some(path.to_path_buf()),
                    line: Some(line),
                    key: Some(key),
                    problem: "the value cannot be parsed".into(),
                    fix: "quote the value: KEY=\"value\"".into(),
                })
            }
        };
        if key.starts_with("OPUS_MIRROR_")
            && (key == "OPUS_MIRROR_CONFIG" || !ENV_KEYS.iter().any(|(k, _)| *k == key))
        {
            {
                return Err(ConfigError {
                    file: Some(path.to_path_buf()),
                    line: Some(line),
                    key: Some(key.clone()),
                    problem: format!("`{key}` is not a setting .env can hold"),
                    fix: format!(
                        "use one of: {} (see .env.example)",
                        ENV_KEYS
                            .iter()
                            .filter(|(k, _)| *k != "OPUS_MIRROR_CONFIG")
                            .map(|(k, _)| *k)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        out.entries.insert(key, DotenvEntry { value, line });
    }
    Ok(out)
}

/// Parses and validates config text. Separate from [`load`] so tests can feed text directly.
fn parse(
    path: &Path,
    text: &str,
    dotenv: &Dotenv,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut origins = BTreeMap::new();
    let at = |span: std::ops::Range<usize>| line_of(text, span.start);
    let file_disp = path.display().to_string();

    // state_dir: file < .env < env.
    let mut state_dir = match &raw.state_dir {
        Some(s) => {
            origins.insert("state_dir".into(), format!("{file_disp} line {}", at(s.span())));
            expand_path(s.get_ref(), &base, env)
        }
        None => {
            origins.insert("state_dir".into(), "default ($XDG_DATA_HOME/opus-mirror)".into());
            xdg_dir(env, "XDG_DATA_HOME", ".local/share")?.join("opus-mirror")
        }
    };
    if let Some(e) = dotenv.entries.get("OPUS_MIRROR_STATE_DIR") {
        state_dir = expand_path(&e.value, &base, env);
        origins.insert("state_dir".into(), format!("{} line {}", dotenv.file.display(), e.line));
    }
    if let Some(v) = env("OPUS_MIRROR_STATE_DIR").filter(|s| !s.is_empty()) {
        state_dir = expand_path(&v, &base, env);
        origins.insert("state_dir".into(), "environment OPUS_MIRROR_STATE_DIR".into());
    }

    let mut sources = Vec::new();
    let mut seen = HashSet::new();
    for (i, rs) in raw.sources.iter().enumerate() {
        let key = |k: &str| format!("source[{}].{k}", i + 1);
        let err = |span: std::ops::Range<usize>, k: &str, problem: String, fix: String| ConfigError {
            file: Some(path.to_path_buf()),
            line: Some(at(span)),
            key: Some(key(k)),
            problem,
            fix,
        };
        let name = rs.name.get_ref().clone();
        if !valid_name(&name) {
            return Err(err(
                rs.name.span(),
                "name",
                format!("`{name}` is not a valid source name"),
                "use letters, digits, '.', '_' and '-' only, starting with a letter or digit".into(),
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(err(
                rs.name.span(),
                "name",
                format!("the source name `{name}` is used twice"),
                "give every [[source]] its own name".into(),
            ));
        }
        let spath = expand_path(rs.path.get_ref(), &base, env);
        match std::fs::metadata(&spath) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(err(
                    rs.path.span(),
                    "path",
                    format!("{} is a file, not a directory", spath.display()),
                    "point path at the directory to back up (a git work tree or a plain folder)".into(),
                ))
            }
            Err(_) => {
                return Err(err(
                    rs.path.span(),
                    "path",
                    format!("the directory {} does not exist", spath.display()),
                    "correct the path, or create the directory".into(),
                ))
            }
        }
        let branch = match &rs.snapshot_branch {
            Some(b) => {
                if !git2::Reference::is_valid_name(&format!("refs/heads/{}", b.get_ref())) {
                    return Err(err(
                        b.span(),
                        "snapshot_branch",
                        format!("`{}` is not a valid git branch name", b.get_ref()),
                        format!("use a simple name such as `{DEFAULT_SNAPSHOT_BRANCH}`"),
                    ));
                }
                b.get_ref().clone()
            }
            None => DEFAULT_SNAPSHOT_BRANCH.to_string(),
        };
        for (j, pat) in rs.exclude.iter().enumerate() {
            if let Err(e) = globset::Glob::new(pat.trim_start_matches('/').trim_end_matches('/')) {
                return Err(ConfigError {
                    file: Some(path.to_path_buf()),
                    line: Some(at(rs.name.span())),
                    key: Some(format!("{}[{}]", key("exclude"), j + 1)),
                    problem: format!("`{pat}` is not a valid pattern: {}", e.kind()),
                    fix: "use gitignore-style globs such as `*.tmp`, `node_modules/`, `/build`".into(),
                });
            }
        }
        let keep_secrets = rs.keep_secrets.as_ref().map(|k| k.get_ref().clone()).unwrap_or_default();
        for (j, pat) in keep_secrets.iter().enumerate() {
            if let Err(e) = keep_matcher(&spath, std::slice::from_ref(pat)) {
                return Err(ConfigError {
                    file: Some(path.to_path_buf()),
                    line: rs.keep_secrets.as_ref().map(|k| at(k.span())),
                    key: Some(format!("{}[{}]", key("keep_secrets"), j + 1)),
                    problem: e,
                    fix: "use gitignore-style globs relative to the source path, such as `*.key` or `deploy/.env.staging`".into(),
                });
            }
        }
        let mut mirror_refs = MirrorRefs::default();
        if let Some(list) = &rs.mirror_refs {
            let bad = |problem: String| ConfigError {
                file: Some(path.to_path_buf()),
                line: Some(at(list.span())),
                key: Some(key("mirror_refs")),
                problem,
                fix: "list some of \"code\", \"snapshot\", \"preserved\" (leave out mirror_refs for all)"
                    .into(),
            };
            mirror_refs = MirrorRefs { code: false, snapshot: false, preserved: false };
            for v in list.get_ref() {
                match v.as_str() {
                    "code" => mirror_refs.code = true,
                    "snapshot" => mirror_refs.snapshot = true,
                    "preserved" => mirror_refs.preserved = true,
                    other => return Err(bad(format!("`{other}` is not a kind of ref"))),
                }
            }
            if list.get_ref().is_empty() {
                return Err(bad("an empty list would push nothing".into()));
            }
        }
        let health_note = match &rs.health_note {
            Some(h) => {
                let p = PathBuf::from(h.get_ref());
                let inside = !p.as_os_str().is_empty()
                    && p.components().all(|c| matches!(c, std::path::Component::Normal(_)));
                if !inside {
                    return Err(ConfigError {
                        file: Some(path.to_path_buf()),
                        line: Some(at(h.span())),
                        key: Some(key("health_note")),
                        problem: format!("`{}` is not a path inside the source", h.get_ref()),
                        fix: "give a relative path such as \"00_system/backup-health.md\"".into(),
                    });
                }
                Some(p)
            }
            None => None,
        };
        origins.insert(key("path"), format!("{file_disp} line {}", at(rs.path.span())));
        sources.push(Source {
            name,
            path: spath,
            exclude: rs.exclude.clone(),
            include_secrets: rs.include_secrets,
            keep_secrets,
            snapshot_branch: branch,
            mirror: rs.mirror.as_ref().map(|m| m.get_ref().clone()),
            mirror_refs,
            recovery_doc: rs.recovery_doc.as_ref().map(PathBuf::from),
            health_note,
        });
    }

    // The global [mirror] url serves sources without their own; two sources must never push
    // into one repository (their refs would overwrite each other).
    let global_mirror = raw.mirror.as_ref().and_then(|m| m.url.as_ref());
    for s in sources.iter_mut().filter(|s| s.mirror.is_none()) {
        s.mirror = global_mirror.map(|u| u.get_ref().clone());
    }
    let mut urls: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, s) in sources.iter().enumerate() {
        let Some(url) = s.mirror.as_deref() else { continue };
        if let Some(other) = urls.insert(url, &s.name) {
            let line =
                raw.sources[i].mirror.as_ref().map(|m| at(m.span())).or(global_mirror.map(|m| at(m.span())));
            return Err(ConfigError {
                file: Some(path.to_path_buf()),
                line,
                key: Some("mirror".into()),
                problem: format!(
                    "sources `{other}` and `{}` would push into the same mirror {}",
                    s.name,
                    mask_url(url)
                ),
                fix: "give each [[source]] its own `mirror = \"URL\"` (one private repository per source)"
                    .into(),
            });
        }
    }

    let mut network = Network::default();
    if let Some(n) = &raw.network {
        network.timeouts = timeouts(path, text, n)?;
        if let Some(t) = &n.transport {
            network.transport = match t.get_ref().as_str() {
                "libgit2" => Transport::Libgit2,
                "git-cli" => Transport::GitCli,
                other => {
                    return Err(ConfigError {
                        file: Some(path.to_path_buf()),
                        line: Some(at(t.span())),
                        key: Some("network.transport".into()),
                        problem: format!("`{other}` is not a transport"),
                        fix: "use \"libgit2\" (built in) or \"git-cli\" (the system git, which reads ~/.ssh/config)".into(),
                    })
                }
            };
        }
        if let Some(k) = &n.ssh_key {
            let key = expand_path(k.get_ref(), &base, env);
            if !key.is_file() {
                return Err(ConfigError {
                    file: Some(path.to_path_buf()),
                    line: Some(at(k.span())),
                    key: Some("network.ssh_key".into()),
                    problem: format!("the key file {} does not exist", key.display()),
                    fix: "point ssh_key at a private key file, or remove it to use ssh-agent only".into(),
                });
            }
            network.ssh_key = Some(key);
        }
        network.token_env = n.token_env.clone();
    }
    network.token_hosts = sources.iter().filter_map(|s| s.mirror.as_deref()).filter_map(url_host).collect();
    let targets = parse_targets(path, text, &raw.targets, &sources, &base, env, network.timeouts)?;

    let extra_env = dotenv
        .entries
        .iter()
        .filter(|(k, _)| !k.starts_with("OPUS_MIRROR_"))
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    let channel = |c: &Option<RawChannel>| Channel {
        command: c.as_ref().and_then(|c| c.command.clone()).filter(|v| !v.is_empty()),
        webhook: c.as_ref().and_then(|c| c.webhook.clone()),
    };
    let notify = match &raw.notify {
        Some(n) => NotifyConfig {
            on_failure: channel(&n.on_failure),
            on_warning: channel(&n.on_warning),
            on_success: channel(&n.on_success),
            healthcheck: n.healthcheck.clone(),
            healthcheck_warnings_fail: match &n.healthcheck_warnings {
                None => false,
                Some(v) => match v.get_ref().as_str() {
                    "success" => false,
                    "fail" => true,
                    other => {
                        return Err(ConfigError {
                            file: Some(path.to_path_buf()),
                            line: Some(line_of(text, v.span().start)),
                            key: Some("notify.healthcheck_warnings".into()),
                            problem: format!("`{other}` is neither \"success\" nor \"fail\""),
                            fix: "write healthcheck_warnings = \"success\" (the default) or \"fail\"".into(),
                        })
                    }
                },
            },
        },
        None => NotifyConfig::default(),
    };
    let dur = |v: Option<&Spanned<String>>, key: &str| duration(path, text, v, key);
    let max_age = dur(raw.status.as_ref().and_then(|s| s.max_age.as_ref()), "status.max_age")?
        .unwrap_or(chrono::Duration::hours(26));
    let verify_grace = dur(raw.verify.as_ref().and_then(|v| v.grace.as_ref()), "verify.grace")?
        .unwrap_or(chrono::Duration::hours(24));
    let hooks = match &raw.hooks {
        Some(h) => Hooks {
            before_run: h.before_run.clone(),
            after_run: h.after_run.clone(),
            on_error: h.on_error.clone(),
            timeout: dur(h.timeout.as_ref(), "hooks.timeout")?
                .and_then(|d| d.to_std().ok())
                .unwrap_or(std::time::Duration::from_secs(300)),
        },
        None => Hooks::default(),
    };
    let guard = raw.guard.unwrap_or_default();
    let run = raw.run.as_ref();
    let check_every = dur(run.and_then(|r| r.check_every.as_ref()), "run.check_every")?
        .unwrap_or(chrono::Duration::days(7));
    let drill_every = dur(run.and_then(|r| r.drill_every.as_ref()), "run.drill_every")?
        .unwrap_or(chrono::Duration::days(7));
    let read_data_within = dur(run.and_then(|r| r.read_data_within.as_ref()), "run.read_data_within")?
        .unwrap_or(chrono::Duration::days(30));

    origins::complete(&mut origins, &file_disp, text, &raw.sources, global_mirror, &targets);
    Ok(Config {
        file: path.to_path_buf(),
        state_dir,
        origins,
        sources,
        mirror_url: global_mirror.map(|u| u.get_ref().clone()),
        targets,
        network,
        notify,
        guard,
        max_age,
        verify_grace,
        hooks,
        check_every,
        drill_every,
        read_data_within,
        extra_env,
    })
}

/// Validates the `[[target]]` tables.
fn parse_targets(
    path: &Path,
    text: &str,
    raw: &[RawTarget],
    sources: &[Source],
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    timeouts: Timeouts,
) -> Result<Vec<Target>, ConfigError> {
    let mut out: Vec<Target> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let key = |k: &str| format!("target[{}].{k}", i + 1);
        let err = |span: std::ops::Range<usize>, k: &str, problem: String, fix: &str| ConfigError {
            file: Some(path.to_path_buf()),
            line: Some(line_of(text, span.start)),
            key: Some(key(k)),
            problem,
            fix: fix.into(),
        };
        let name = t.name.get_ref().clone();
        if !valid_name(&name) {
            return Err(err(
                t.name.span(),
                "name",
                format!("`{name}` is not a valid target name"),
                "use letters, digits, '.', '_' and '-' only",
            ));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(err(
                t.name.span(),
                "name",
                format!("the target name `{name}` is used twice"),
                "give every [[target]] its own name",
            ));
        }
        let kind = match t.kind.get_ref().as_str() {
            "dir" => {
                let Some(p) = &t.path else {
                    return Err(err(
                        t.kind.span(),
                        "path",
                        "a dir target needs `path`".into(),
                        "add path = \"/media/you/drive/opus-mirror\"",
                    ));
                };
                let dir = expand_path(p.get_ref(), base, env);
                let default_guard = ["/media", "/mnt", "/run/media"].iter().any(|m| dir.starts_with(m));
                TargetKind::Dir { path: dir, require_mount: t.require_mount.unwrap_or(default_guard) }
            }
            "rclone" => {
                let Some(r) = &t.remote else {
                    return Err(err(
                        t.kind.span(),
                        "remote",
                        "an rclone target needs `remote`".into(),
                        "add remote = \"b2:bucket/opus\" (a remote from `rclone config`)",
                    ));
                };
                if !r.get_ref().contains(':') {
                    return Err(err(
                        r.span(),
                        "remote",
                        format!("`{}` is not an rclone remote path", r.get_ref()),
                        "write REMOTE:path, e.g. b2:bucket/opus",
                    ));
                }
                let config = t.rclone_config.as_ref().map(|c| expand_path(c.get_ref(), base, env));
                TargetKind::Rclone { remote: r.get_ref().trim_end_matches('/').to_string(), config }
            }
            other => {
                return Err(err(
                    t.kind.span(),
                    "kind",
                    format!("`{other}` is not a target kind"),
                    "use \"dir\" (a drive) or \"rclone\" (off-site)",
                ));
            }
        };
        let every = duration(path, text, t.every.as_ref(), &key("every"))?;
        let full_every = duration(path, text, t.full_every.as_ref(), &key("full_every"))?
            .unwrap_or(chrono::Duration::days(7));
        let incremental = match t.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
            None | Some(("full", _)) => false,
            Some(("incremental", _)) => true,
            Some((other, span)) => {
                return Err(err(
                    span,
                    "mode",
                    format!("`{other}` is not a bundle mode"),
                    "use \"full\" or \"incremental\"",
                ));
            }
        };
        if let Some(w) = &t.keep.within {
            crate::timeparse::parse_duration(w)
                .map_err(|e| err(t.name.span(), "keep.within", e, "write e.g. 14d or 2w"))?;
        }
        let mut only = None;
        if let Some(list) = &t.sources {
            for s in list {
                if !sources.iter().any(|x| &x.name == s.get_ref()) {
                    return Err(err(
                        s.span(),
                        "sources",
                        format!("no source named `{}`", s.get_ref()),
                        "list names of [[source]] tables",
                    ));
                }
            }
            only = Some(list.iter().map(|s| s.get_ref().clone()).collect());
        }
        let mut age_recipients = Vec::new();
        if let Some(e) = &t.encrypt {
            for r in e.age_recipients.get_ref() {
                if r.parse::<age::x25519::Recipient>().is_err() {
                    return Err(err(
                        e.age_recipients.span(),
                        "encrypt.age_recipients",
                        format!("`{r}` is not an age recipient"),
                        "use public keys from `age-keygen` (they start with age1)",
                    ));
                }
                age_recipients.push(r.clone());
            }
            if age_recipients.is_empty() {
                return Err(err(
                    e.age_recipients.span(),
                    "encrypt.age_recipients",
                    "no recipient given".into(),
                    "list at least one age1... public key, or remove encrypt",
                ));
            }
        }
        let identity_file =
            t.encrypt.as_ref().and_then(|e| e.identity_file.as_deref()).map(|p| expand_path(p, base, env));
        out.push(Target {
            name,
            kind,
            every,
            timeouts,
            incremental,
            full_every,
            keep: t.keep.clone(),
            sources: only,
            age_recipients,
            identity_file,
        });
    }
    Ok(out)
}

/// Parses an optional duration setting; an error names the file, line and key.
fn duration(
    path: &Path,
    text: &str,
    v: Option<&Spanned<String>>,
    key: &str,
) -> Result<Option<chrono::Duration>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    crate::timeparse::parse_duration(v.get_ref()).map(Some).map_err(|problem| ConfigError {
        file: Some(path.to_path_buf()),
        line: Some(line_of(text, v.span().start)),
        key: Some(key.into()),
        problem,
        fix: "write e.g. 12h, 1d, 7d or 2w".into(),
    })
}

/// `[network] timeout` and `deadline`: whole seconds, at least one, the deadline no shorter
/// than the timeout.
fn timeouts(path: &Path, text: &str, n: &RawNetwork) -> Result<Timeouts, ConfigError> {
    let mut t = Timeouts::default();
    let secs = |v: &Option<Spanned<String>>, key: &str| -> Result<Option<u64>, ConfigError> {
        let Some(d) = duration(path, text, v.as_ref(), key)? else { return Ok(None) };
        match u64::try_from(d.num_seconds()) {
            Ok(s) if s >= 1 => Ok(Some(s)),
            _ => Err(ConfigError {
                file: Some(path.to_path_buf()),
                line: v.as_ref().map(|v| line_of(text, v.span().start)),
                key: Some(key.into()),
                problem: "a network timeout must be at least 1s".into(),
                fix: "write e.g. 30s, 2min or 1h".into(),
            }),
        }
    };
    if let Some(s) = secs(&n.timeout, "network.timeout")? {
        t.idle = std::time::Duration::from_secs(s);
    }
    if let Some(s) = secs(&n.deadline, "network.deadline")? {
        t.deadline = std::time::Duration::from_secs(s);
    }
    t.deadline = t.deadline.max(t.idle);
    Ok(t)
}

/// Source names become directory names and ref names: keep them boring.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
        && name.len() <= 64
}

/// Expands `~/` and makes a relative path relative to the config file's directory.
fn expand_path(s: &str, base: &Path, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let p = if let Some(rest) = s.strip_prefix("~/") {
        PathBuf::from(env("HOME").unwrap_or_default()).join(rest)
    } else if s == "~" {
        PathBuf::from(env("HOME").unwrap_or_default())
    } else {
        PathBuf::from(s)
    };
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

/// Turns a TOML/serde error into one that names line and key and suggests a fix.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e.span().map(|s| line_of(text, s.start));
    // A type error points at the value: name the key that holds it. Other errors (an unknown
    // or missing field) point at the key itself, whose text is its name.
    let key =
        e.span().and_then(|s| key_at(text, s.start)).filter(|_| e.message().starts_with("invalid type"));
    let key = key.or_else(|| {
        e.span().map(|s| text[s].trim().trim_matches('"').to_string()).filter(|k| {
            !k.is_empty()
                && k.len() < 60
                && k.chars().all(|c| c.is_ascii_alphanumeric() || "_-.*".contains(c))
        })
    });
    let msg = e.message().trim().to_string();
    let fix = if msg.starts_with("unknown field") {
        "remove or rename the key; `opus-mirror init` writes a commented example of every key"
    } else if msg.starts_with("missing field") {
        "add the key; every [[source]] needs `name` and `path`"
    } else if msg.starts_with("invalid type") {
        "give the value the type the key expects (strings in quotes, lists in [ ])"
    } else {
        "fix the TOML syntax at that line"
    };
    ConfigError { file: Some(path.to_path_buf()), line, key, problem: msg, fix: fix.into() }
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

/// The matcher of `keep_secrets` patterns (gitignore syntax, relative to the source `root`);
/// the error names the first pattern that is not valid. Also how the config validates them,
/// as strictly as `exclude`: the gitignore matcher takes `a[` as a literal, which is never
/// what a user meant.
pub fn keep_matcher(root: &Path, patterns: &[String]) -> Result<ignore::gitignore::Gitignore, String> {
    let mut b = ignore::gitignore::GitignoreBuilder::new(root);
    for pat in patterns {
        let bad = |e: &dyn std::fmt::Display| format!("`{pat}` is not a valid pattern: {e}");
        if pat.trim().is_empty() {
            return Err(bad(&"it is empty"));
        }
        globset::Glob::new(pat.trim_start_matches('!').trim_start_matches('/').trim_end_matches('/'))
            .map_err(|e| bad(&e.kind()))?;
        b.add_line(None, pat).map_err(|e| bad(&e))?;
    }
    b.build().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn locate_prefers_flag_then_env_then_xdg() {
        let env = |k: &str| match k {
            "OPUS_MIRROR_CONFIG" => Some("/e/c.toml".to_string()),
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        };
        assert_eq!(locate(Some(Path::new("/f.toml")), &env).unwrap(), PathBuf::from("/f.toml"));
        assert_eq!(locate(None, &env).unwrap(), PathBuf::from("/e/c.toml"));
        let home_only = |k: &str| (k == "HOME").then(|| "/home/u".to_string());
        assert_eq!(
            locate(None, &home_only).unwrap(),
            PathBuf::from("/home/u/.config/opus-mirror/config.toml")
        );
        assert!(locate(None, &no_env).is_err());
    }
}
