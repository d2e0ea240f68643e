//! The entry of every command: logging, the umask, the context ([`crate::context`]) and
//! dispatch to one module per subcommand. Exit codes are decided by the commands and
//! combined here; under `--json` the one envelope of the command is printed here, whatever
//! its outcome ([`crate::envelope`]); `main` only prints the error chain.

use std::io::Write;

use anyhow::Result;
use chrono::Utc;

use crate::cli::{Cli, Command, ConfigCommand, Global};
use crate::commands;
use crate::context::{print_text, Context};
use crate::envelope::{Collected, Problem};
use crate::output::OutputMode;
use opus_mirror_core::exit::{Exit, UserError};

/// Sets up logging on stderr: warnings by default, more with -v or `OPUS_MIRROR_LOG`.
pub fn init_logging(g: &Global) {
    let level = match g.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = std::env::var("OPUS_MIRROR_LOG")
        .unwrap_or_else(|_| format!("opus_mirror={level},opus_mirror_core={level}"));
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
pub(crate) fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Runs the parsed command line. Under `--json` the command's envelope is printed here, once,
/// whatever the outcome; an error is still returned for `main` to print and exit with.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<Exit> {
    private_umask();
    let mode = OutputMode { json: cli.global.json, quiet: cli.global.quiet };
    let mut ctx =
        Context { global: &cli.global, out, mode, now: Utc::now(), collected: Collected::default() };
    let result = match &cli.global.now {
        Some(s) => opus_mirror_core::timeparse::parse_time(s)
            .map_err(|e| UserError::usage(format!("--now / OPUS_MIRROR_NOW: {e}")).into())
            .and_then(|now| {
                ctx.now = now;
                dispatch(&mut ctx, &cli)
            }),
        None => dispatch(&mut ctx, &cli),
    };
    if mode.json {
        let envelope = std::mem::take(&mut ctx.collected).into_envelope(command_name(&cli.command), &result);
        crate::output::print_json(ctx.out, &envelope)?;
    }
    result
}

/// A command line clap refuses (exit 2). With `--json` anywhere in it, the envelope says so
/// on stdout as well; `--help` and `--version` print as usual.
pub fn command_line_error(err: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args_os().any(|a| a == "--json");
    let shown = matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !json || shown {
        err.exit();
    }
    let _ = err.print();
    let names: Vec<String> = <Cli as clap::CommandFactory>::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    // args_os: a path argument need not be UTF-8 (`std::env::args` would panic on it).
    let command = std::env::args_os()
        .skip(1)
        .filter_map(|a| a.into_string().ok())
        .find(|a| names.contains(a))
        .unwrap_or_default();
    let text = err.render().to_string();
    let message = text.trim_start_matches("error: ").split("\n\n").next().unwrap_or("").trim().to_string();
    let mut collected = Collected { data: Some(serde_json::Value::Null), ..Collected::default() };
    collected.errors.push(Problem {
        message,
        fix: Some(format!("see `opus-mirror {command} --help`").replace("  ", " ")),
        source: None,
        target: None,
    });
    let envelope = collected.into_envelope(command, &Ok(Exit::Usage));
    let _ =
        crate::output::print_json(&mut crate::output::QuietPipe::new(std::io::stdout().lock()), &envelope);
    std::process::ExitCode::from(Exit::Usage.code())
}

/// The subcommand as the user typed it, for the envelope.
pub(crate) fn command_name(c: &Command) -> String {
    use crate::cli::{GuardCommand, HookCommand, NotifyCommand, ScheduleCommand};
    let name = match c {
        Command::Init(_) => "init",
        Command::Config(ConfigCommand::Check) => "config check",
        Command::Snapshot(_) => "snapshot",
        Command::Snapshots(_) => "snapshots",
        Command::Diff(_) => "diff",
        Command::Restore(_) => "restore",
        Command::Verify(_) => "verify",
        Command::Mirror(_) => "mirror",
        Command::Preserved(_) => "preserved",
        Command::Bundle(_) => "bundle",
        Command::Bundles(_) => "bundles",
        Command::Unbundle(_) => "unbundle",
        Command::Recover(_) => "recover",
        Command::Prune(_) => "prune",
        Command::Check(_) => "check",
        Command::Drill(_) => "drill",
        Command::Status(_) => "status",
        Command::Log(_) => "log",
        Command::Ls(_) => "ls",
        Command::Cat(_) => "cat",
        Command::Find(_) => "find",
        Command::Guard(GuardCommand::Status) => "guard status",
        Command::Guard(GuardCommand::Ack(_)) => "guard ack",
        Command::Notify(NotifyCommand::Test) => "notify test",
        Command::Run(_) => "run",
        Command::Hook(HookCommand::Install(_)) => "hook install",
        Command::Hook(HookCommand::Uninstall(_)) => "hook uninstall",
        Command::Schedule(ScheduleCommand::Install(_)) => "schedule install",
        Command::Schedule(ScheduleCommand::Status(_)) => "schedule status",
        Command::Schedule(ScheduleCommand::Uninstall(_)) => "schedule uninstall",
        Command::RecoveryDoc(_) => "recovery-doc",
        Command::Completions(_) => "completions",
        Command::Man => "man",
        Command::Demo(_) => "demo",
    };
    name.to_string()
}

fn dispatch(ctx: &mut Context, cli: &Cli) -> Result<Exit> {
    match &cli.command {
        Command::Init(a) => commands::init::run(ctx, a),
        Command::Config(ConfigCommand::Check) => commands::config_check::run(ctx),
        Command::Snapshot(a) => commands::snapshot::run(ctx, a),
        Command::Snapshots(a) => commands::snapshots::run(ctx, a),
        Command::Diff(a) => commands::diff::run(ctx, a),
        Command::Restore(a) => commands::restore::run(ctx, a),
        Command::Verify(a) => commands::verify::run(ctx, a),
        Command::Mirror(a) => commands::mirror::run(ctx, a),
        Command::Preserved(a) => commands::preserved::run(ctx, a),
        Command::Bundle(a) => commands::bundle::run(ctx, a),
        Command::Bundles(a) => commands::bundle::list(ctx, a),
        Command::Unbundle(a) => commands::bundle::unbundle(ctx, a),
        Command::Recover(a) => commands::recover::run(ctx, a),
        Command::Prune(a) => commands::prune::run(ctx, a),
        Command::Check(a) => commands::check::run(ctx, a),
        Command::Drill(a) => commands::drill::run(ctx, a),
        Command::Status(a) => commands::status::run(ctx, a),
        Command::Log(a) => commands::browse::log(ctx, a),
        Command::Ls(a) => commands::browse::ls(ctx, a),
        Command::Cat(a) => commands::browse::cat(ctx, a),
        Command::Find(a) => commands::browse::find(ctx, a),
        Command::Guard(g) => commands::guard::run(ctx, g),
        Command::Notify(crate::cli::NotifyCommand::Test) => commands::guard::notify_test(ctx),
        Command::Run(a) => commands::run::run(ctx, a),
        Command::Hook(h) => commands::hook::run(ctx, h),
        Command::Schedule(s) => commands::schedule::run(ctx, s),
        Command::RecoveryDoc(a) => commands::run::recovery_doc(ctx, a),
        Command::Completions(a) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut text = Vec::new();
            clap_complete::generate(a.shell, &mut cmd, "opus-mirror", &mut text);
            print_text(ctx, &text)?;
            Ok(Exit::Ok)
        }
        Command::Man => {
            let mut text = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut text)?;
            print_text(ctx, &text)?;
            Ok(Exit::Ok)
        }
        Command::Demo(a) => crate::demo::run(ctx, a),
    }
}
