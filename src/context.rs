//! What every command gets: the config location, the environment, output, the current time,
//! and the run lock with the healing that follows it. Apart from `app` (which builds it and
//! dispatches), so the commands depend on it and `app` on the commands, never both ways.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::cli::Global;
use crate::envelope::{Collected, Problem};
use crate::output::OutputMode;
use opus_mirror_core::config::{self, Config};
use opus_mirror_core::lock::RunLock;

/// What every command gets.
pub struct Context<'a> {
    pub global: &'a Global,
    pub out: &'a mut dyn Write,
    pub mode: OutputMode,
    pub now: DateTime<Utc>,
    /// What `--json` will print once the command has ended (see [`crate::envelope`]).
    pub collected: Collected,
}

/// Reads the process environment (one place, so the config layer can be given another).
pub(crate) fn env_var(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

impl Context<'_> {
    /// Loads and validates the configuration.
    pub fn config(&self) -> Result<Config> {
        let path = config::locate(self.global.config.as_deref(), &env_var)?;
        Ok(config::load(&path, &env_var)?)
    }

    /// Takes the run lock of the state directory and heals what a killed run left behind.
    pub fn lock(&self, cfg: &Config) -> Result<Held> {
        lock_and_heal(cfg, Duration::from_secs(self.global.lock_wait))
    }

    /// Writes a line of human output unless `--quiet` or `--json` (under `--json` the line
    /// is kept: a command without a payload reports its lines as `messages`).
    pub fn say(&mut self, line: impl AsRef<str>) -> Result<()> {
        if self.mode.json {
            self.collected.said.push(line.as_ref().to_string());
        } else if !self.mode.quiet {
            writeln!(self.out, "{}", line.as_ref())?;
        }
        Ok(())
    }

    /// The command's `--json` payload: the envelope's `data`, printed once the command ends.
    pub fn json<T: serde::Serialize>(&mut self, data: &T) -> Result<()> {
        self.collected.data = Some(serde_json::to_value(data)?);
        Ok(())
    }

    /// One item (a source, a target) failed and the others go on: `error: LABEL: ERROR` on
    /// stderr as always, and the same error, naming its source and target, in the envelope.
    pub(crate) fn item_error(
        &mut self,
        label: &str,
        source: Option<&str>,
        target: Option<&str>,
        err: &anyhow::Error,
    ) {
        if label.is_empty() {
            eprintln!("error: {err:#}");
        } else {
            eprintln!("error: {label}: {err:#}");
        }
        self.collected.errors.push(Problem::of(err).on(source, target));
    }

    /// An error found without an `Err` (a damaged bundle, a failed alert): the envelope only,
    /// the command prints its own human line.
    pub(crate) fn note_error(&mut self, text: &str, source: Option<&str>, target: Option<&str>) {
        self.collected.errors.push(Problem::from_text(text).on(source, target));
    }

    /// `warning: TEXT` on stderr, and the same in the envelope.
    pub fn warn(&mut self, text: &str, source: Option<&str>, target: Option<&str>) {
        eprintln!("warning: {text}");
        self.note_warning(text, source, target);
    }

    /// A warning for the envelope only (the human line was printed elsewhere).
    pub(crate) fn note_warning(&mut self, text: &str, source: Option<&str>, target: Option<&str>) {
        self.collected.warnings.push(Problem::from_text(text).on(source, target));
    }
}

/// The run lock, held until dropped, and what was healed right after taking it.
pub struct Held {
    pub healed: Vec<opus_mirror_core::heal::Healed>,
    /// `TMPDIR` of every child (git, rclone, age): dropped before the lock.
    _children_tmp: Option<tempfile::TempDir>,
    _lock: RunLock,
}

/// Takes the run lock (waiting up to `wait`), then removes the leftovers of killed runs: with
/// the lock held they are certainly orphans (see [`opus_mirror_core::heal`]).
pub(crate) fn lock_and_heal(cfg: &Config, wait: Duration) -> Result<Held> {
    let lock = RunLock::acquire(&cfg.state_dir, wait)?;
    let healed = opus_mirror_core::heal::heal(cfg, &lock);
    // Children write their temp files (rclone's partial downloads, git's) into a scratch dir
    // of ours, private and swept after a kill, never into a shared /tmp.
    let children_tmp = opus_mirror_core::heal::scratch_dir(&cfg.state_dir, "children").ok();
    if let Some(d) = &children_tmp {
        std::env::set_var("TMPDIR", d.path());
    }
    Ok(Held { healed, _children_tmp: children_tmp, _lock: lock })
}

/// Text a command prints as it is (completions, the man page, the runbook): under `--json`,
/// the envelope's `data` is `{"text": ...}` instead.
pub(crate) fn print_text(ctx: &mut Context, text: &[u8]) -> Result<()> {
    if ctx.mode.json {
        ctx.json(&serde_json::json!({ "text": String::from_utf8_lossy(text) }))
    } else {
        Ok(ctx.out.write_all(text)?)
    }
}
