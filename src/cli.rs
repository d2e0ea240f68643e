//! The command line: clap types only. Every doc comment here is `--help` text.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// opus-mirror makes a git-based personal system recoverable.
///
/// It snapshots whole directories (tracked, untracked and ignored files alike) into backup
/// repos of its own, mirrors every ref to a remote that never forgets, writes dated git
/// bundles to a drive and off-site, and proves they restore. Start with
/// `opus-mirror init --source ~/opus`, add a [[target]] to the config, then `opus-mirror run`;
/// `hook install` and `schedule install` make it automatic.
#[derive(Debug, Parser)]
#[command(name = "opus-mirror", version, propagate_version = true, max_term_width = 100)]
#[command(after_help = "Exit codes: 0 ok, 1 failed, 2 usage or config error, 3 done with warnings, \
4 at risk, 5 remote unreachable, 6 target unavailable, 7 busy, 8 backup too old.\n\
Config: --config, else $OPUS_MIRROR_CONFIG, else $XDG_CONFIG_HOME/opus-mirror/config.toml.")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Config file to use instead of $OPUS_MIRROR_CONFIG or the XDG default.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print one JSON envelope on stdout (for scripts): the result, warnings and errors, also
    /// when the command fails (docs/json.md). No progress, no colours.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing but errors and warnings (for hooks).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Seconds to wait for another opus-mirror run to finish before giving up (exit 7).
    #[arg(long, global = true, default_value_t = 30, value_name = "SECONDS")]
    pub lock_wait: u64,
    /// Pretend the current time is this (RFC 3339); for tests.
    #[arg(long, global = true, hide = true, env = "OPUS_MIRROR_NOW")]
    pub now: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter config and create the backup repos.
    ///
    /// Without a config file yet, writes one listing each --source. With a config already
    /// there, leaves it alone and creates any missing backup repos.
    ///
    /// Example: opus-mirror init --source ~/opus --source "~/My Life Lab"
    Init(InitArgs),
    /// Validate the configuration or show it.
    ///
    /// Example: opus-mirror config check --json
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Commit each source directory, as it is on disk, into its backup repo.
    ///
    /// Everything under the source is captured (tracked, untracked and git-ignored files)
    /// except nested .git directories, secret-looking files (unless include_secrets) and the
    /// source's exclude patterns. Unchanged source: no new snapshot, and it says so.
    ///
    /// Example: opus-mirror snapshot --source opus
    Snapshot(SnapshotArgs),
    /// List the snapshots of each source, newest first.
    ///
    /// Example: opus-mirror snapshots --source opus --json
    Snapshots(SourceArg),
    /// Show files added, modified and deleted between two snapshots, or since the newest.
    ///
    /// No id: newest snapshot → live directory. One id: that snapshot → live directory.
    /// Two ids: first → second. Ids are commit ids or unique prefixes, or `latest`.
    ///
    /// Example: opus-mirror diff --source opus 3fa2c1 latest
    Diff(DiffArgs),
    /// Bring files back from a snapshot, into a new directory or into the live source.
    ///
    /// Examples:
    ///   opus-mirror restore --to /tmp/vault-copy
    ///   opus-mirror restore --at "2026-11-20 18:00" --path vault/notes --in-place
    ///   opus-mirror restore --snapshot 3fa2c1 --in-place --overwrite --dry-run
    ///   opus-mirror restore --include '*.md' --exclude '.trash' --to /tmp/notes --dry-run
    #[command(verbatim_doc_comment)]
    Restore(RestoreArgs),
    /// List the files and folders of a snapshot (default: the newest) under a path.
    ///
    /// Each entry: kind, permission bits (when the snapshot recorded them), size, path.
    /// One argument is a snapshot when it is `latest` or the id (or unique prefix, 4+ hex
    /// digits) of one, else a path; `SNAPSHOT:PATH` works too.
    ///
    /// Examples:
    ///   opus-mirror ls --source opus notes
    ///   opus-mirror ls 3fa2c1 notes/2026 --json
    #[command(verbatim_doc_comment)]
    Ls(LsArgs),
    /// Print a file as it was in a snapshot (bytes to stdout, streamed).
    ///
    /// `SNAPSHOT:PATH` (a snapshot id, unique prefix or `latest`), or `PATH` for the newest.
    /// With --json: what the file is (snapshot, size, id), not its bytes.
    ///
    /// Examples:
    ///   opus-mirror cat 3fa2c1:notes/plan.md
    ///   opus-mirror cat attachments/scan.pdf > scan.pdf
    #[command(verbatim_doc_comment)]
    Cat(CatArgs),
    /// Find paths in every snapshot: when each was first and last seen, and when it went.
    ///
    /// PATTERN is a glob when it has * ? [ or { (`*.md` matches a name at any depth,
    /// `notes/**/plan*` the whole path), else a substring of the path (any case). A path
    /// that is gone is shown with the restore command that brings it back.
    ///
    /// Examples:
    ///   opus-mirror find 'meeting notes'
    ///   opus-mirror find 'projects/**/*.md' --since 2026-06-01 --json
    #[command(verbatim_doc_comment)]
    Find(FindArgs),
    /// Check that every branch, tag and change of each git source is safely on its remote.
    ///
    /// Lists what the remote really has (no fetch) and reports per branch: in sync, ahead
    /// (unpushed commits listed), behind, diverged, never pushed, upstream gone; unpushed
    /// tags; modified, staged and untracked files, stashes, detached HEAD, a merge or rebase
    /// in progress. Exit 0 when safe, 4 when anything is at risk, 5 when a remote cannot be
    /// reached.
    ///
    /// Examples:
    ///   opus-mirror verify
    ///   opus-mirror verify --offline --json
    ///   opus-mirror verify --push      # fast-forward-push branches that are only ahead
    #[command(verbatim_doc_comment)]
    Verify(VerifyArgs),
    /// Bring every ref into the backup repo and push it all to the mirror remote.
    ///
    /// Old tips are never lost: before a ref is rewritten or deleted (upstream force-push,
    /// deleted branch), its old tip is kept under refs/opus-mirror/preserved/TIME/..., in the
    /// backup repo and on the mirror. Configure the mirror with `mirror = "URL"` in the
    /// source (or [mirror] url = "URL").
    ///
    /// Example: opus-mirror mirror --source opus
    Mirror(SourceArg),
    /// List the tips kept when refs were rewritten or deleted, and how to get one back.
    ///
    /// Example: opus-mirror preserved --source opus
    Preserved(SourceArg),
    /// Write a dated git bundle of each source's backup repo to each target that is due.
    ///
    /// A bundle holds everything: code branches and tags, the snapshot branch, preserved tips,
    /// and HEAD. Stock git restores it: `git clone X.bundle code` (the code) or
    /// `git clone -b snapshot X.bundle vault` (the newest vault snapshot). Targets are
    /// [[target]] tables: kind = "dir" (a drive, guarded by a marker file) or "rclone".
    ///
    /// Examples:
    ///   opus-mirror bundle
    ///   opus-mirror bundle --target drive --force   # ignore `every`
    #[command(verbatim_doc_comment)]
    Bundle(BundleArgs),
    /// List the bundles on each target, with kind, size and whether they were verified.
    ///
    /// Example: opus-mirror bundles --target drive --json
    Bundles(TargetArgs),
    /// Rebuild a bare repository from the newest bundle chain on a target.
    ///
    /// The full bundle, then each incremental, each checked against its manifest (sha256)
    /// and read by opus-mirror's own reader; fetched from rclone remotes as needed.
    ///
    /// Example: opus-mirror unbundle --target drive --source opus --to /tmp/opus.git
    Unbundle(UnbundleArgs),
    /// On a new machine: bring back a source from the backup drive in one command.
    ///
    /// Rebuilds the backup repo with every snapshot, writes a config for the source (the drive
    /// as its target), and lays out the working tree exactly as at the newest snapshot: files
    /// deleted before stay deleted, untracked and ignored files and empty folders come back,
    /// and `git status` shows what it showed then.
    ///
    /// Example: opus-mirror recover --from /media/me/backup/opus-mirror --to ~/opus
    ///          opus-mirror recover --from ssh://backup-host/srv/opus.git --to ~/opus
    Recover(RecoverArgs),
    /// Apply each target's keep policy, with the reason for every decision.
    ///
    /// Prints every bundle with keep/remove and why, then removes (never with --dry-run).
    ///
    /// Never removes the newest verified bundle, a bundle a kept incremental builds on, or
    /// anything while the newest bundle of the target is unverified.
    ///
    /// Example: opus-mirror prune --dry-run
    Prune(PruneArgs),
    /// Prove the backups are whole (backup repos, bundles, mirrors).
    ///
    /// Every object of each backup repo is re-hashed, every bundle's pack read (off-site ones
    /// from the listing unless --read-data), the mirror compared with what was last pushed.
    /// Exit 1 naming each broken file, ref or object.
    ///
    /// Examples:
    ///   opus-mirror check
    ///   opus-mirror check --target cloud --read-data-subset 10%
    #[command(verbatim_doc_comment)]
    Check(CheckArgs),
    /// Test restore from a target, and report the time-to-recover.
    ///
    /// Fetches the newest bundle chain, restores it with opus-mirror and with stock git into a
    /// temp dir, and compares every file with the snapshot it claims to hold.
    ///
    /// Example: opus-mirror drill --target drive
    Drill(DrillArgs),
    /// Where each source stands; exit 8 when the newest good backup is older than --max-age.
    ///
    /// Reads only local state (fast, no network): suitable for cron or a status bar.
    ///
    /// Example: opus-mirror status --max-age 26h --json
    Status(StatusArgs),
    /// The run history (newest last); with PATH, every version of one file (newest first).
    ///
    /// Without PATH: the runs (snapshot, bundle, check, drill... with outcomes).
    /// With PATH: each snapshot where the file was added, modified, deleted or changed its
    /// permission bits, with time and size (see `cat SNAPSHOT:PATH` to read one).
    ///
    /// Examples:
    ///   opus-mirror log --limit 20
    ///   opus-mirror log notes/plan.md --source opus
    #[command(verbatim_doc_comment)]
    Log(LogArgs),
    /// The misfiring-script guard: show or acknowledge a tripped guard.
    ///
    /// Examples:
    ///   opus-mirror guard status
    ///   opus-mirror guard ack --source opus
    #[command(verbatim_doc_comment)]
    #[command(subcommand)]
    Guard(GuardCommand),
    /// Alerts: send a test message through every configured channel.
    ///
    /// Example: opus-mirror notify test
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Everything, in order, for every source: the job for hooks and timers.
    ///
    /// verify → snapshot → mirror → bundle (each target when due) → prune → check →
    /// drill (when due) → notify. A failing step does not stop independent ones (a dead
    /// cloud target does not stop the drive bundle), but nothing is pruned after a failure.
    /// Exit: the most serious step outcome (0 ok, 3 warnings, 6 a target unavailable,
    /// 1 failed, 7 busy).
    ///
    /// Examples:
    ///   opus-mirror run
    ///   opus-mirror run --quiet --trigger hook
    ///   opus-mirror run --dry-run
    #[command(verbatim_doc_comment)]
    Run(RunArgs),
    /// Install or remove the git and Claude Code hooks that run opus-mirror after work.
    ///
    /// Examples:
    ///   opus-mirror hook install                 # git post-commit in every git source
    ///   opus-mirror hook install --claude        # Claude Code session-end hook only
    ///   opus-mirror hook uninstall --git post-commit --claude
    #[command(verbatim_doc_comment)]
    #[command(subcommand)]
    Hook(HookCommand),
    /// Install, inspect or remove the daily timer (systemd user timer or crontab).
    ///
    /// Examples:
    ///   opus-mirror schedule install --at 03:30
    ///   opus-mirror schedule status
    ///   opus-mirror schedule install --cron
    #[command(verbatim_doc_comment)]
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Print (or write) the disaster-recovery runbook filled in with this machine's config.
    ///
    /// Example: opus-mirror recovery-doc --write ~/opus/vault/00_system/docs/disaster-recovery.md
    RecoveryDoc(RecoveryDocArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    ///
    /// Example: opus-mirror completions bash > ~/.local/share/bash-completion/completions/opus-mirror
    Completions(CompletionsArgs),
    /// Print the man page (roff).
    ///
    /// Example: opus-mirror man > ~/.local/share/man/man1/opus-mirror.1
    Man,
    /// Run a self-contained demo on the bundled demo vault (nothing outside a temp dir).
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// A directory to protect (repeatable): a git work tree or a plain folder.
    #[arg(long = "source", value_name = "PATH")]
    pub sources: Vec<PathBuf>,
    /// Where backup repos and state go (default $XDG_DATA_HOME/opus-mirror).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config and print the effective settings (secrets masked).
    Check,
}

#[derive(Debug, Args)]
pub struct SourceArg {
    /// Only this source (default: all configured sources).
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// Capture secret-looking files too (.env, .env.*, *.pem, *.key, id_rsa*, id_ed25519*)
    /// for this run, as `include_secrets = true` in the config does for every run.
    #[arg(long)]
    pub include_secrets: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// Do not contact remotes: compare with the remote-tracking refs (as of the last fetch).
    #[arg(long)]
    pub offline: bool,
    /// Push branches that are only ahead (fast-forward, never forced), then verify again.
    #[arg(long, conflicts_with = "offline")]
    pub push: bool,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// Only this target (default: every configured target).
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    #[command(flatten)]
    pub which: TargetArgs,
    /// Write even when the target's newest bundle is younger than its `every`.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct UnbundleArgs {
    #[command(flatten)]
    pub which: TargetArgs,
    /// The new bare repository to create (must be empty or missing).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// An age identity file, for a target whose bundles are encrypted.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The backup drive (the directory of a dir target, holding the bundles), the mirror
    /// (its URL, or the path of the bare repository), or an off-site target as
    /// `rclone:REMOTE:PATH` (needs --source; an rclone config that knows REMOTE, or a
    /// `:backend,...:` connection string).
    #[arg(long, value_name = "DIR|MIRROR|rclone:REMOTE")]
    pub from: PathBuf,
    /// Bring back the snapshot as of this time (`2026-11-20 18:00`, `3d` ago) instead of the
    /// newest; every snapshot still comes back into the history.
    #[arg(long, value_name = "DATETIME")]
    pub at: Option<String>,
    /// Where the source comes back (must be empty or missing).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Which source, when the drive holds bundles of several.
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// An age identity file, for encrypted bundles.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub which: TargetArgs,
    /// Print the plan; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub which: TargetArgs,
    /// Download and fully check every off-site bundle.
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Download and fully check this percentage of off-site bundles, least recently read
    /// first, so that all are read over a few runs.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub read_data_subset: Option<f64>,
    /// Read only the packs and drive bundles no earlier check verified as they are now, plus
    /// the slice of the least recently verified that `run` reads (all are re-read within
    /// run.check_every). Without it, everything is read.
    #[arg(long)]
    pub incremental: bool,
    /// An age identity file, to read the packs of encrypted bundles.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(flatten)]
    pub which: TargetArgs,
    /// An age identity file, for a target whose bundles are encrypted.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// The age past which the newest good backup is stale (default: [status] max_age, 26h).
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Judge by the bundles on this target instead of local state: the check to run from
    /// another machine (a NAS, a server) that can read the drive or the cloud remote.
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// A file (or folder) of the source: list its versions across the snapshots instead.
    #[arg(value_name = "PATH")]
    pub path: Option<OsString>,
    /// Show only the last N runs (default 50), or the newest N versions of PATH (default all).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// A snapshot id (or unique prefix, or `latest`), or the path when only one is given.
    #[arg(value_name = "SNAPSHOT")]
    pub first: Option<OsString>,
    /// The file or folder to list (default: everything).
    #[arg(value_name = "PATH")]
    pub second: Option<OsString>,
}

#[derive(Debug, Args)]
pub struct CatArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// SNAPSHOT:PATH, or PATH for the newest snapshot.
    #[arg(value_name = "SNAPSHOT:PATH")]
    pub spec: OsString,
}

#[derive(Debug, Args)]
pub struct FindArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// A glob (`*.md`, `notes/**/plan*`) or a substring of the path.
    pub pattern: String,
    /// Only snapshots taken at or after this time (2026-11-24, "2026-11-24 18:00", 3d).
    #[arg(long, value_name = "DATETIME")]
    pub since: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    /// Show tripped guards.
    Status,
    /// Acknowledge a tripped guard: pruning of the source resumes.
    Ack(SourceArg),
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test alert through every configured channel and ping the healthcheck.
    Test,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// What started the run (recorded in the history and shown in alerts).
    #[arg(long, value_enum, default_value = "manual")]
    pub trigger: TriggerArg,
    /// Say what each step would do; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What started a run, as the command line spells it (`run::Trigger` is the engine's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TriggerArg {
    Hook,
    Timer,
    Manual,
}

impl From<TriggerArg> for opus_mirror_core::run::Trigger {
    fn from(t: TriggerArg) -> Self {
        match t {
            TriggerArg::Hook => opus_mirror_core::run::Trigger::Hook,
            TriggerArg::Timer => opus_mirror_core::run::Trigger::Timer,
            TriggerArg::Manual => opus_mirror_core::run::Trigger::Manual,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Install hooks: a git hook in each git source, and/or a Claude Code session-end hook.
    /// Existing hooks are kept and chained, never overwritten.
    Install(HookArgs),
    /// Remove exactly what `hook install` added; a chained hook is put back byte for byte.
    Uninstall(HookArgs),
}

#[derive(Debug, Args)]
pub struct HookArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// The git hook to use (post-commit by default when --claude is not given).
    #[arg(long, value_name = "HOOK")]
    pub git: Option<String>,
    /// The Claude Code session-end hook, in the source's .claude/settings.local.json (your
    /// own, not committed: it holds this machine's paths).
    #[arg(long)]
    pub claude: bool,
    /// With --claude: in the shared, committed .claude/settings.json instead.
    #[arg(long, requires = "claude")]
    pub shared: bool,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Install the daily run: a systemd user timer (Persistent=true: a run missed while the
    /// machine was off happens at boot), or a crontab line.
    Install(ScheduleArgs),
    /// Whether the timer is installed and enabled, and when it last ran and runs next.
    Status(ScheduleArgs),
    /// Remove the timer or crontab line.
    Uninstall(ScheduleArgs),
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Time of day, HH:MM (local time).
    #[arg(long, default_value = "03:30", value_name = "HH:MM")]
    pub at: String,
    /// Use a systemd user timer (the default where systemd is present).
    #[arg(long, conflicts_with = "cron")]
    pub systemd: bool,
    /// Use a system timer in /etc/systemd/system (as root, e.g. on a server with no login
    /// session; under sudo it runs as the invoking user). A user timer there only runs while
    /// you are logged in, unless `loginctl enable-linger`.
    #[arg(long, conflicts_with = "cron")]
    pub system: bool,
    /// Use a crontab line.
    #[arg(long)]
    pub cron: bool,
}

#[derive(Debug, Args)]
pub struct RecoveryDocArgs {
    /// Write it to this file (atomically) instead of printing it.
    #[arg(long, value_name = "PATH")]
    pub write: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// The older snapshot (default: the newest).
    pub from: Option<String>,
    /// The newer snapshot (default: the live directory).
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// The snapshot to restore: an id, a unique prefix, or `latest` (the default).
    #[arg(long, value_name = "ID", conflicts_with = "at")]
    pub snapshot: Option<String>,
    /// Restore the newest snapshot taken at or before this time
    /// (2026-11-24, "2026-11-24 18:00", or RFC 3339).
    #[arg(long, value_name = "DATETIME")]
    pub at: Option<String>,
    /// Restore only this file or directory, relative to the source root (repeatable).
    #[arg(long = "path", value_name = "P")]
    pub paths: Vec<PathBuf>,
    /// Restore only paths matching this glob (repeatable): `*.md` matches a name at any
    /// depth, `notes/**` a path from the root; a folder selects everything below it.
    #[arg(long = "include", value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out paths matching this glob (repeatable; wins over --include).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Restore into this directory (must be empty or missing unless --force).
    #[arg(long, value_name = "DIR", required_unless_present = "in_place", conflicts_with = "in_place")]
    pub to: Option<PathBuf>,
    /// Restore into the live source: bring back deleted and changed files. Files newer
    /// than the snapshot are kept unless --overwrite; nothing is deleted; a safety snapshot
    /// is taken first.
    #[arg(long)]
    pub in_place: bool,
    /// With --to: write into a non-empty directory.
    #[arg(long)]
    pub force: bool,
    /// With --in-place: also replace files changed after the snapshot.
    #[arg(long, requires = "in_place")]
    pub overwrite: bool,
    /// Say what would be restored; write nothing (with --to, not even the directory).
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's files in this directory instead of a temp dir that is removed.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// "10%" or "10" → 10.0, within 0–100.
fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{s}` is not a percentage (write e.g. 10%)"))?;
    if (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("`{s}` is not between 0% and 100%"))
    }
}
