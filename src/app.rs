//! The application context (config location, environment, output, the current time) and
//! dispatch to one module per subcommand. Exit codes are decided by the commands and
//! combined here; `main` only prints the error chain.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::cli::{Cli, Command, ConfigCommand, Global};
use crate::commands;
use crate::config::{self, Config};
use crate::exit::{Exit, UserError};
use crate::lock::RunLock;
use crate::output::OutputMode;

/// What every command gets.
pub struct Context<'a> {
    pub global: &'a Global,
    pub out: &'a mut dyn Write,
    pub mode: OutputMode,
    pub now: DateTime<Utc>,
}

/// Reads the process environment (one place, so the config layer can be given another).
pub fn env_var(key: &str) -> Option<String> {
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

    /// Writes a line of human output unless `--quiet` or `--json`.
    pub fn say(&mut self, line: impl AsRef<str>) -> Result<()> {
        if !self.mode.quiet && !self.mode.json {
            writeln!(self.out, "{}", line.as_ref())?;
        }
        Ok(())
    }
}

/// The run lock, held until dropped, and what was healed right after taking it.
pub struct Held {
    pub healed: Vec<crate::heal::Healed>,
    /// `TMPDIR` of every child (git, rclone, age): dropped before the lock.
    _children_tmp: Option<tempfile::TempDir>,
    _lock: RunLock,
}

/// Takes the run lock (waiting up to `wait`), then removes the leftovers of killed runs: with
/// the lock held they are certainly orphans (see [`crate::heal`]).
pub fn lock_and_heal(cfg: &Config, wait: Duration) -> Result<Held> {
    let lock = RunLock::acquire(&cfg.state_dir, wait)?;
    let healed = crate::heal::heal(cfg, &lock);
    // Children write their temp files (rclone's partial downloads, git's) into a scratch dir
    // of ours, private and swept after a kill, never into a shared /tmp.
    let children_tmp = crate::heal::scratch_dir(&cfg.state_dir, "children").ok();
    if let Some(d) = &children_tmp {
        std::env::set_var("TMPDIR", d.path());
    }
    Ok(Held { healed, _children_tmp: children_tmp, _lock: lock })
}

/// Sets up logging on stderr: warnings by default, more with -v or `OPUS_MIRROR_LOG`.
pub fn init_logging(g: &Global) {
    let level = match g.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = std::env::var("OPUS_MIRROR_LOG").unwrap_or_else(|_| format!("opus_mirror={level}"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "warn".into()))
        .try_init();
}

/// Everything opus-mirror creates is private: the state dir, packs it writes or fetches,
/// history, scratch, unbundled repos, bundles on a drive, restored files (0600, dirs 0700).
/// Backups hold everything a user has; nobody else on the machine reads them by default.
pub fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Runs the parsed command line.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<Exit> {
    private_umask();
    let now = match &cli.global.now {
        Some(s) => crate::timeparse::parse_time(s)
            .map_err(|e| UserError::usage(format!("--now / OPUS_MIRROR_NOW: {e}")))?,
        None => Utc::now(),
    };
    let mode = OutputMode { json: cli.global.json, quiet: cli.global.quiet };
    let mut ctx = Context { global: &cli.global, out, mode, now };
    match &cli.command {
        Command::Init(a) => commands::init::run(&mut ctx, a),
        Command::Config(ConfigCommand::Check) => commands::config_check::run(&mut ctx),
        Command::Snapshot(a) => commands::snapshot::run(&mut ctx, a),
        Command::Snapshots(a) => commands::snapshots::run(&mut ctx, a),
        Command::Diff(a) => commands::diff::run(&mut ctx, a),
        Command::Restore(a) => commands::restore::run(&mut ctx, a),
        Command::Verify(a) => commands::verify::run(&mut ctx, a),
        Command::Mirror(a) => commands::mirror::run(&mut ctx, a),
        Command::Preserved(a) => commands::preserved::run(&mut ctx, a),
        Command::Bundle(a) => commands::bundle::run(&mut ctx, a),
        Command::Bundles(a) => commands::bundle::list(&mut ctx, a),
        Command::Unbundle(a) => commands::bundle::unbundle(&mut ctx, a),
        Command::Recover(a) => commands::recover::run(&mut ctx, a),
        Command::Prune(a) => commands::prune::run(&mut ctx, a),
        Command::Check(a) => commands::check::run(&mut ctx, a),
        Command::Drill(a) => commands::drill::run(&mut ctx, a),
        Command::Status(a) => commands::status::run(&mut ctx, a),
        Command::Log(a) => commands::browse::log(&mut ctx, a),
        Command::Ls(a) => commands::browse::ls(&mut ctx, a),
        Command::Cat(a) => commands::browse::cat(&mut ctx, a),
        Command::Find(a) => commands::browse::find(&mut ctx, a),
        Command::Guard(g) => commands::guard::run(&mut ctx, g),
        Command::Notify(crate::cli::NotifyCommand::Test) => commands::guard::notify_test(&mut ctx),
        Command::Run(a) => commands::run::run(&mut ctx, a),
        Command::Hook(h) => commands::hook::run(&mut ctx, h),
        Command::Schedule(s) => commands::schedule::run(&mut ctx, s),
        Command::RecoveryDoc(a) => commands::run::recovery_doc(&mut ctx, a),
        Command::Completions(a) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(a.shell, &mut cmd, "opus-mirror", ctx.out);
            Ok(Exit::Ok)
        }
        Command::Man => {
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(ctx.out)?;
            Ok(Exit::Ok)
        }
        Command::Demo(a) => crate::demo::run(&mut ctx, a),
    }
}
