//! The crash sweep (issue 14): every command is killed just before chosen system calls
//! (`strace -e inject=SYSCALL:signal=KILL:when=N`, the same as a `kill -9` landing there) or
//! gets ENOSPC from a `write` (that one only, or every one from it on: a disk that stays
//! full), on a small prepared world: a code repo whose git-ignored `vault/` holds ~20 notes,
//! a local bare mirror and a dir target (for `bundle (rclone)` also an rclone target, on
//! rclone's local backend so that copying the world copies it too). After each point:
//! - the backup repo passes `git fsck` and every earlier snapshot is still on its branch;
//! - every bundle that was verified before (and that the command does not remove on its own)
//!   is still there, byte for byte (sha256 of its manifest; `git bundle verify` reads each
//!   one once before the sweep, so the same bytes are a bundle stock git reads);
//! - the next plain `run` succeeds with no manual step, then `check` passes;
//! - nothing of ours is left behind: lock files, temp packs, idx-less packs, temp files in
//!   the vault, the target or the state dir, anything in `$TMPDIR`.
//!
//! Each operation's world is prepared once and copied (`cp -a`) back into place before every
//! point, at the same paths, so the absolute paths in its config stay true. All failures are
//! collected and reported together, with the operation, the syscall and N, and grouped by
//! class. Worlds live on a tmpfs when there is one: the full sweep (~480 points) takes about
//! 2.5 minutes on 2 cores. `OPUS_MIRROR_CRASH_OPS=snapshot,mirror` sweeps only those commands;
//! `OPUS_MIRROR_CRASH_POINTS=N` sets the points per syscall (default 12).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use crate::helpers::coderepo::CodeRepo;
use crate::helpers::servers::missing;
use crate::helpers::{git, vaultgen, Env, Run};

/// The syscalls a kill is injected at. strace counts each name on its own (and per thread),
/// so each is swept on its own; those a command never makes are skipped.
const KILL_AT: &[&str] =
    &["rename", "renameat", "renameat2", "unlink", "unlinkat", "fsync", "fdatasync", "write", "openat"];

/// Crash points per syscall at most: every call when a command makes few, else evenly
/// spaced ones (first and last included), to keep the sweep within its time budget.
/// `OPUS_MIRROR_CRASH_POINTS` overrides it (a deeper sweep by hand).
fn max_points() -> usize {
    std::env::var("OPUS_MIRROR_CRASH_POINTS").ok().and_then(|v| v.parse().ok()).unwrap_or(12)
}

/// The points swept out of `count` calls.
fn sample(count: usize, max: usize) -> Vec<usize> {
    if count <= max {
        return (1..=count).collect();
    }
    if max <= 1 {
        // One point: the middle one (and no division by max - 1 = 0).
        return vec![count.div_ceil(2).max(1)];
    }
    let mut v: Vec<usize> = (0..max).map(|i| 1 + i * (count - 1) / (max - 1)).collect();
    v.dedup();
    v
}

/// `2026-11-DDTHH:00:00Z`: every command of a world runs at a fixed time, so bundle names
/// never collide and runs are reproducible.
fn at(day: u32, hour: u32) -> String {
    format!("2026-11-{day:02}T{hour:02}:00:00Z")
}

/// Where worlds live: a tmpfs when there is one (every point copies a world; on a disk the
/// copies and the fsyncs cost ten times more, and a kill does not care where the files are).
fn fast_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let writable = tempfile::tempdir_in(shm).is_ok();
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// `strace` is installed and can trace here; if not, says so (loudly: `SKIPPED`, or a
/// failure under CI).
fn strace_works(test: &str) -> bool {
    let st = Command::new("strace")
        .args(["-f", "-o", "/dev/null", "-e", "trace=openat", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match st {
        Ok(s) if s.success() => true,
        Ok(_) => {
            missing("strace that can trace (ptrace is not permitted here)", test);
            false
        }
        Err(_) => {
            missing("strace", test);
            false
        }
    }
}

/// A wrapper command line: strace following children and threads, then `args`. (Not
/// `--seccomp-bpf`: it would be faster, but strace 6.1 then fires almost no injections.)
fn strace_with(args: &[&str]) -> Vec<String> {
    ["strace", "-f"].iter().chain(args).map(|s| s.to_string()).collect()
}

/// What is injected at a crash point.
#[derive(Clone, Debug)]
enum Fault {
    Kill(&'static str, usize),
    /// The N-th `write` fails with ENOSPC, later ones succeed (space freed meanwhile).
    Enospc(usize),
    /// Every `write` from the N-th on fails: the disk stays full to the end of the command.
    DiskFull(usize),
}

impl Fault {
    fn strace_args(&self) -> Vec<String> {
        let (sc, inject) = match self {
            Fault::Kill(sc, n) => (*sc, format!("inject={sc}:signal=KILL:when={n}")),
            Fault::Enospc(n) => ("write", format!("inject=write:error=ENOSPC:when={n}")),
            Fault::DiskFull(n) => ("write", format!("inject=write:error=ENOSPC:when={n}+")),
        };
        strace_with(&["-o", "/dev/null", "-e", &format!("trace={sc}"), "-e", &inject])
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Kill(sc, n) => write!(f, "kill at {sc} #{n}"),
            Fault::Enospc(n) => write!(f, "ENOSPC at write #{n}"),
            Fault::DiskFull(n) => write!(f, "ENOSPC from write #{n} on"),
        }
    }
}

/// The commands swept.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    Snapshot,
    /// With 16 packs and a new commit upstream: the import makes the 17th and the packs merge.
    Mirror,
    Bundle,
    /// To an rclone target (rclone's local backend, so the copy of the world holds it too).
    BundleRclone,
    Prune,
    /// On a vault with deleted and edited files.
    Restore,
    Check,
    /// A week and more after the last full check and drill, so both are due.
    Run,
}

const OPS: [Op; 8] =
    [Op::Snapshot, Op::Mirror, Op::Bundle, Op::BundleRclone, Op::Prune, Op::Restore, Op::Check, Op::Run];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Snapshot => "snapshot",
            Op::Mirror => "mirror",
            Op::Bundle => "bundle",
            Op::BundleRclone => "bundle (rclone)",
            Op::Prune => "prune",
            Op::Restore => "restore --in-place",
            Op::Check => "check",
            Op::Run => "run",
        }
    }

    /// The name `OPUS_MIRROR_CRASH_OPS` selects it by.
    fn key(self) -> &'static str {
        match self {
            Op::Snapshot => "snapshot",
            Op::Mirror => "mirror",
            Op::Bundle => "bundle",
            Op::BundleRclone => "bundle-rclone",
            Op::Prune => "prune",
            Op::Restore => "restore",
            Op::Check => "check",
            Op::Run => "run",
        }
    }

    fn args(self) -> Vec<&'static str> {
        match self {
            Op::Restore => vec!["restore", "--source", "opus", "--in-place", "--overwrite"],
            Op::Snapshot => vec!["snapshot"],
            Op::Mirror => vec!["mirror"],
            Op::Bundle => vec!["bundle", "--target", "drive"],
            Op::BundleRclone => vec!["bundle", "--target", "cloud"],
            Op::Prune => vec!["prune"],
            Op::Check => vec!["check"],
            Op::Run => vec!["run"],
        }
    }

    /// The day the swept command runs (hour 3); the healing `run` follows at hour 5 and
    /// `check` at hour 6.
    fn day(self) -> u32 {
        match self {
            Op::Run => 12,
            _ => 4,
        }
    }

    /// Brings the shared base world into the state this command starts from.
    fn prepare(self, w: &World) {
        match self {
            Op::Snapshot | Op::Bundle | Op::BundleRclone => {
                vaultgen::mutate(&w.vault, 4);
                if !matches!(self, Op::Snapshot) {
                    w.om(&at(4, 1), &["snapshot"]).ok();
                }
            }
            Op::Mirror => {
                let mut i = 0;
                while count_packs(&w.backup()) < 16 {
                    i += 1;
                    vaultgen::mutate(&w.vault, 100 + i);
                    w.om(&format!("2026-11-03T04:{i:02}:00Z"), &["snapshot"]).ok();
                }
                w.code.commit("src/lib.rs", "pub fn four() {}\n", "day 4");
                w.code.git(&["push", "-q"]).ok();
            }
            Op::Restore => {
                fs::remove_dir_all(w.vault.join("journal")).expect("delete the journal");
                fs::remove_file(w.vault.join("attachments/file 1.pdf")).expect("delete an attachment");
                vaultgen::mutate(&w.vault, 4);
            }
            Op::Run => {
                vaultgen::mutate(&w.vault, 12);
                w.code.commit("src/lib.rs", "pub fn twelve() {}\n", "day 12");
                w.code.git(&["push", "-q"]).ok();
            }
            Op::Prune | Op::Check => {}
        }
    }
}

/// One operation's world: everything lives under `env.dir`, which `reset` restores from
/// `pristine` before every point.
pub struct World {
    pub env: Env,
    pub code: CodeRepo,
    pub vault: PathBuf,
    pub mirror: PathBuf,
    pub drive: PathBuf,
    /// The directory behind the rclone target `cloud`, when the world has one.
    pub cloud: Option<PathBuf>,
    pub tmp: PathBuf,
    pristine: tempfile::TempDir,
}

impl World {
    /// A code repo with a git-ignored `vault/`, a bare mirror, a marked drive keeping the
    /// last 2 bundles; a first `run` (day 1), then two days of edits, snapshots and bundles
    /// (3 verified bundles: `prune` has one to remove). With `cloud`, an rclone target too
    /// (rclone's local backend).
    pub fn build(vault_spec: &vaultgen::Spec, cloud: bool) -> World {
        let mut env = Env::new_in(&fast_dir());
        let tmp = env.path("tmp");
        fs::create_dir_all(&tmp).expect("tmp dir");
        env.vars.push(("TMPDIR".into(), tmp.display().to_string()));
        let code = CodeRepo::new(&env.path("code"));
        code.commit(".gitignore", "vault/\n", "the vault is backed up by snapshots, not commits");
        code.git(&["push", "-q"]).ok();
        let vault = code.work.join("vault");
        vaultgen::create(&vault, vault_spec);
        let mirror = env.path("mirror.git");
        git(env.dir.path(), &["init", "-q", "--bare", mirror.to_str().expect("utf-8")]).ok();
        let drive = env.path("drive");
        let mut config = format!(
            "state_dir = {:?}\n\n[[source]]\nname = \"opus\"\npath = {:?}\nmirror = {:?}\n\n\
             [[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {:?}\nkeep = {{ last = 2 }}\n",
            env.state.display().to_string(),
            code.work.display().to_string(),
            mirror.display().to_string(),
            drive.display().to_string()
        );
        let cloud = cloud.then(|| env.path("cloud"));
        if let Some(dir) = &cloud {
            fs::create_dir_all(dir).expect("the rclone target's directory");
            env.vars.push(("RCLONE_CONFIG".into(), "/dev/null".into()));
            env.vars.push(("RCLONE_CONFIG_CLOUD_TYPE".into(), "local".into()));
            config.push_str(&format!(
                "\n[[target]]\nname = \"cloud\"\nkind = \"rclone\"\nremote = \"cloud:{}\"\nkeep = {{ last = 2 }}\n",
                dir.display()
            ));
        }
        env.write_config_text(&config);
        let pristine =
            tempfile::Builder::new().prefix("om-crash-pristine-").tempdir_in(fast_dir()).expect("temp dir");
        let w = World { env, code, vault, mirror, drive, cloud, tmp, pristine };
        w.om(&at(1, 3), &["init"]).ok();
        w.om(&at(1, 3), &["run"]).ok();
        for day in 2..=3 {
            vaultgen::mutate(&w.vault, day);
            w.code.commit("src/lib.rs", &format!("pub fn day{day}() {{}}\n"), &format!("day {day}"));
            w.code.git(&["push", "-q"]).ok();
            w.om(&at(day as u32, 3), &["snapshot"]).ok();
            w.om(&at(day as u32, 3), &["mirror"]).ok();
            w.om(&at(day as u32, 3), &["bundle"]).ok();
        }
        w
    }

    /// Saves the current state as the one every point starts from.
    pub fn freeze(&self) {
        cp_a(self.env.dir.path(), self.pristine.path());
    }

    /// Puts the frozen state back in place (same paths).
    pub fn reset(&self) {
        for e in fs::read_dir(self.env.dir.path()).expect("world dir") {
            let p = e.expect("entry").path();
            if p.is_dir() && !p.is_symlink() {
                fs::remove_dir_all(&p).unwrap_or_else(|e| panic!("cannot remove {}: {e}", p.display()));
            } else {
                fs::remove_file(&p).expect("remove");
            }
        }
        cp_a(self.pristine.path(), self.env.dir.path());
    }

    pub fn backup(&self) -> PathBuf {
        self.env.backup_repo("opus")
    }

    /// Runs the binary at a fixed time.
    pub fn om(&self, now: &str, args: &[&str]) -> Run {
        self.om_wrapped(&[], now, args)
    }

    pub fn om_wrapped(&self, wrapper: &[String], now: &str, args: &[&str]) -> Run {
        let mut c = self.env.wrapped(wrapper, args);
        c.env("OPUS_MIRROR_NOW", now);
        to_run(c.output().expect("run opus-mirror"))
    }
}

fn to_run(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `cp -a FROM/. TO`: the cheapest faithful copy (modes, times, symlinks).
fn cp_a(from: &Path, to: &Path) {
    let st = Command::new("cp").arg("-a").arg(from.join(".")).arg(to).status().expect("cp");
    assert!(st.success(), "cp -a {} {} failed", from.display(), to.display());
}

/// Packs with an index in a repo.
pub fn count_packs(repo: &Path) -> usize {
    fs::read_dir(repo.join("objects/pack"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    let p = e.path();
                    p.extension().is_some_and(|x| x == "pack") && p.with_extension("idx").exists()
                })
                .count()
        })
        .unwrap_or(0)
}

/// The commits of the snapshot branch, newest first (empty when it cannot be read).
pub fn snapshot_commits(repo: &Path) -> Vec<String> {
    let r =
        git(Path::new("/"), &["--git-dir", repo.to_str().expect("utf-8"), "rev-list", "refs/heads/snapshot"]);
    r.stdout.lines().map(str::to_string).collect()
}

/// `git fsck --full --strict` of a repo: None when clean, else what it said.
pub fn fsck(repo: &Path) -> Option<String> {
    let r = git(Path::new("/"), &["--git-dir", repo.to_str().expect("utf-8"), "fsck", "--full", "--strict"]);
    if r.code == 0 && !r.stderr.contains("error") {
        return None;
    }
    Some(format!("exit {}: {}", r.code, tail(&format!("{}{}", r.stdout, r.stderr), 4)))
}

/// Every earlier snapshot is still on the branch, and the repo is sound.
pub fn snapshots_intact(repo: &Path, before: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(e) = fsck(repo) {
        problems.push(format!("git fsck of the backup repo fails: {e}"));
    }
    let now = snapshot_commits(repo);
    let lost: Vec<&String> = before.iter().filter(|c| !now.contains(c)).collect();
    if !lost.is_empty() {
        problems.push(format!(
            "{} of {} earlier snapshots are gone from the branch",
            lost.len(),
            before.len()
        ));
    }
    problems
}

fn sha256(p: &Path) -> Option<String> {
    use sha2::Digest;
    fs::read(p).ok().map(|b| hex::encode(sha2::Sha256::digest(b)))
}

/// The verified bundles of a dir target: bundle path → sha256 from its manifest.
fn verified_bundles(drive: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(drive).expect("drive").filter_map(|e| e.ok()) {
        let p = e.path();
        if !p.to_string_lossy().ends_with(".bundle.json") {
            continue;
        }
        let Ok(m) = serde_json::from_str::<serde_json::Value>(&fs::read_to_string(&p).unwrap_or_default())
        else {
            continue;
        };
        if m["verified"] == true {
            let sum = m["sha256"].as_str().unwrap_or_default().to_string();
            out.insert(p.with_extension(""), sum);
        }
    }
    out
}

/// Each bundle in `want` exists and matches its sha256.
fn bundles_intact(want: &BTreeMap<PathBuf, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for (b, sum) in want {
        let name = b.file_name().expect("name").to_string_lossy();
        match sha256(b) {
            None => problems.push(format!("verified bundle {name} is gone")),
            Some(s) if &s != sum => {
                problems.push(format!("verified bundle {name} no longer matches its sha256"))
            }
            Some(_) => {}
        }
        if !b.with_extension("bundle.json").exists() {
            problems.push(format!("verified bundle {name} lost its manifest"));
        }
    }
    problems
}

/// What a crash may leave behind and a healing run must have removed, each named with its
/// kind (`stale lock`, `temp pack`, ...) and its path in the world.
pub fn leftovers(w: &World) -> Vec<String> {
    let mut found = Vec::new();
    let mut look = |root: &Path, bad: &dyn Fn(&str, &Path) -> Option<&'static str>| {
        for e in walkdir::WalkDir::new(root).into_iter().filter_map(|e| e.ok()) {
            if let Some(kind) = bad(&e.file_name().to_string_lossy(), e.path()) {
                let rel = e.path().strip_prefix(w.env.dir.path()).unwrap_or(e.path());
                found.push(format!("{kind}: {}", rel.display()));
            }
        }
    };
    let ours = |name: &str, _: &Path| {
        if name.starts_with(".opus-mirror-tmp-") {
            Some("temp file")
        } else if name.starts_with(".opus-mirror-restore-") {
            Some("restore temp")
        } else {
            None
        }
    };
    let repo_junk = |name: &str, p: &Path| {
        if name.ends_with(".lock") {
            Some("stale lock")
        } else if name.starts_with("pack_git2_") || name.starts_with("tmp_") {
            Some("temp pack")
        } else if name.ends_with(".pack") && !p.with_extension("idx").exists() {
            Some("idx-less pack")
        } else {
            ours(name, p)
        }
    };
    look(&w.env.state, &repo_junk);
    look(&w.mirror, &repo_junk);
    look(&w.code.work, &ours);
    look(&w.drive, &ours);
    if let Some(cloud) = &w.cloud {
        look(cloud, &|name, p| {
            if name.ends_with(".partial") {
                Some("partial upload")
            } else {
                ours(name, p)
            }
        });
    }
    for e in fs::read_dir(&w.tmp).expect("tmp").filter_map(|e| e.ok()) {
        found.push(format!("file in $TMPDIR: {}", e.file_name().to_string_lossy()));
    }
    found
}

/// Why a run failed: its FAIL and error lines, else its last lines.
fn why(r: &Run) -> String {
    let all = format!("{}{}", r.stdout, r.stderr);
    let bad: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with("FAIL") || l.starts_with("error") || l.starts_with("warning"))
        .collect();
    if bad.is_empty() {
        tail(&all, 4)
    } else {
        bad.join(" | ")
    }
}

/// The last `n` non-empty lines of a text, joined with " | ".
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// A failure without what varies between points (ids, temp names, numbers): its class.
fn class_of(problem: &str) -> String {
    // Temp names: whatever follows these prefixes is random.
    let mut problem = problem.to_string();
    for prefix in [".opus-mirror-tmp-", "opus-mirror-drill-", "TMPDIR: .tmp", "TMPDIR: rclone", "pack_git2_"]
    {
        let mut from = 0;
        while let Some(i) = problem[from..].find(prefix) {
            let start = from + i + prefix.len();
            let len =
                problem[start..].find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(problem.len() - start);
            problem.replace_range(start..start + len, "*");
            from = start + 1;
        }
    }
    crate::helpers::map_words(&problem, |word| {
        let digits = word.chars().any(|c| c.is_ascii_digit());
        let mixed =
            word.chars().any(|c| c.is_ascii_uppercase()) && word.chars().any(|c| c.is_ascii_lowercase());
        if word.len() >= 6 && (digits || mixed) {
            "*".into()
        } else if digits {
            "N".into()
        } else {
            word.to_string()
        }
    })
}

/// Failures grouped by class: how many, which operations, and the first point that showed it.
fn classes(failures: &[&String]) -> Vec<String> {
    let mut by: BTreeMap<String, (usize, std::collections::BTreeSet<String>, String)> = BTreeMap::new();
    for f in failures {
        let (point, problem) = f.split_once(": ").unwrap_or(("?", f));
        let op = point.split(" / ").next().unwrap_or(point).trim_end_matches(" (no fault)").to_string();
        let e = by.entry(class_of(problem)).or_insert_with(|| (0, Default::default(), point.to_string()));
        e.0 += 1;
        e.1.insert(op);
    }
    by.into_iter()
        .map(|(class, (n, ops, first))| {
            format!("{n:>3}x [{}] {class}  (e.g. {first})", ops.into_iter().collect::<Vec<_>>().join(", "))
        })
        .collect()
}

/// Per-thread call counts of each syscall in an `strace -f -o` file, the highest over the
/// threads (strace's `when=N` counts per thread).
fn max_calls_per_thread(trace: &str) -> BTreeMap<&'static str, usize> {
    let mut per: HashMap<(String, &'static str), usize> = HashMap::new();
    for line in trace.lines() {
        let (tid, rest) = match line.split_once(' ') {
            Some((a, b)) if a.chars().all(|c| c.is_ascii_digit()) => (a, b.trim_start()),
            _ => ("", line),
        };
        let name = rest.split('(').next().unwrap_or_default();
        if let Some(sc) = KILL_AT.iter().find(|s| **s == name) {
            *per.entry((tid.to_string(), sc)).or_default() += 1;
        }
    }
    let mut out = BTreeMap::new();
    for ((_, sc), n) in per {
        let e = out.entry(sc).or_insert(0);
        *e = (*e).max(n);
    }
    out
}

/// What one operation's sweep covered and found.
pub struct OpReport {
    pub op: &'static str,
    pub points: usize,
    pub killed: usize,
    pub per_syscall: Vec<String>,
    pub failures: Vec<String>,
    pub secs: f64,
}

/// Everything a point is judged against, taken from the frozen world and an uninjected run.
struct Expect {
    snapshots: Vec<String>,
    /// Verified bundles the command does not remove when it runs to completion.
    bundles: BTreeMap<PathBuf, String>,
}

fn sweep(op: Op) -> OpReport {
    let start = Instant::now();
    let spec = vaultgen::Spec { notes: 20, attachments: 2, ..Default::default() };
    let w = World::build(&spec, matches!(op, Op::BundleRclone));
    op.prepare(&w);
    w.freeze();
    let day = op.day();
    let (now, heal, check) = (at(day, 3), at(day, 5), at(day, 6));
    let snapshots = snapshot_commits(&w.backup());
    let mut verified = verified_bundles(&w.drive);
    if let Some(cloud) = &w.cloud {
        verified.extend(verified_bundles(cloud));
    }
    // Stock git reads every verified bundle once, here; after each crash point the same sha256
    // means the same bytes, so what git verified is still there.
    for b in verified.keys() {
        git(
            Path::new("/"),
            &["--git-dir", w.backup().to_str().unwrap(), "bundle", "verify", "-q", b.to_str().unwrap()],
        )
        .ok();
    }
    let mut failures = Vec::new();

    // An uninjected run under strace: how many calls of each kind, and which bundles the
    // command removes by design.
    let scratch =
        tempfile::Builder::new().prefix("om-crash-trace-").tempdir_in(fast_dir()).expect("temp dir");
    let trace_file = scratch.path().join("trace");
    let wrapper = strace_with(&[
        "-o",
        trace_file.to_str().expect("utf-8"),
        "-e",
        &format!("trace={}", KILL_AT.join(",")),
    ]);
    let args = op.args();
    let base = w.om_wrapped(&wrapper, &now, &args);
    let counts = max_calls_per_thread(&fs::read_to_string(&trace_file).expect("strace wrote its trace"));
    let bundles: BTreeMap<PathBuf, String> = verified.into_iter().filter(|(b, _)| b.exists()).collect();
    if ![0, 3].contains(&base.code) {
        failures.push(format!("{} (no fault): exit {}: {}", op.name(), base.code, why(&base)));
    }
    let expect = Expect { snapshots, bundles };
    for p in judge(&w, &expect, &heal, &check) {
        failures.push(format!("{} (no fault): {p}", op.name()));
    }

    let mut faults = Vec::new();
    let mut per_syscall = Vec::new();
    // rclone's calls cost ~0.2 s each and the healing run makes many: fewer points there.
    let max = if matches!(op, Op::BundleRclone) { (max_points() / 3).max(1) } else { max_points() };
    for (sc, n) in &counts {
        let pts = sample(*n, max);
        per_syscall.push(format!("{sc} {}/{n}", pts.len()));
        faults.extend(pts.into_iter().map(|i| Fault::Kill(sc, i)));
    }
    let writes = sample(counts.get("write").copied().unwrap_or(0), max);
    per_syscall.push(format!("ENOSPC {0}, full disk {0}", writes.len()));
    faults.extend(writes.iter().copied().map(Fault::Enospc));
    faults.extend(writes.into_iter().map(Fault::DiskFull));

    let mut killed = 0;
    for f in &faults {
        w.reset();
        let r = w.om_wrapped(&f.strace_args(), &now, &args);
        // strace dies of the signal that killed its tracee.
        if r.code == -1 {
            killed += 1;
        }
        for p in judge(&w, &expect, &heal, &check) {
            failures.push(format!("{} / {f}: {p}", op.name()));
        }
    }
    OpReport {
        op: op.name(),
        points: faults.len(),
        killed,
        per_syscall,
        failures,
        secs: start.elapsed().as_secs_f64(),
    }
}

/// Judges the world after a (possibly faulted) command: intact, heals, checks, clean.
fn judge(w: &World, expect: &Expect, heal: &str, check: &str) -> Vec<String> {
    let mut problems = snapshots_intact(&w.backup(), &expect.snapshots);
    problems.extend(bundles_intact(&expect.bundles));
    let r = w.om(heal, &["run"]);
    if ![0, 3].contains(&r.code) {
        problems.push(format!("next `run` exits {}: {}", r.code, why(&r)));
    }
    let c = w.om(check, &["check"]);
    if c.code != 0 {
        problems.push(format!("then `check` exits {}: {}", c.code, why(&c)));
    }
    if let Some(e) = fsck(&w.mirror) {
        problems.push(format!("git fsck of the mirror fails after healing: {e}"));
    }
    problems.extend(
        snapshots_intact(&w.backup(), &expect.snapshots).into_iter().map(|p| format!("after healing: {p}")),
    );
    problems.extend(leftovers(w).into_iter().map(|l| format!("after healing, a leftover {l}")));
    problems
}

/// Sweeps `ops` on two threads (longest first) and asserts that no point failed, printing the
/// points covered per operation and in total.
fn sweep_and_assert(ops: &[Op]) {
    let start = Instant::now();
    let queue = Mutex::new(ops.to_vec());
    let reports = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(op) = queue.lock().expect("queue").pop() else { break };
                // A world that cannot even be prepared is one failure, not the end of the sweep.
                let r = std::panic::catch_unwind(|| sweep(op)).unwrap_or_else(|e| {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    OpReport {
                        op: op.name(),
                        points: 0,
                        killed: 0,
                        per_syscall: Vec::new(),
                        failures: vec![format!("{} (setup): panicked: {msg}", op.name())],
                        secs: 0.0,
                    }
                });
                eprintln!(
                    "crash sweep: {:<18} {:>3} points ({} killed; {}) in {:.1} s, {} failure(s)",
                    r.op,
                    r.points,
                    r.killed,
                    r.per_syscall.join(", "),
                    r.secs,
                    r.failures.len()
                );
                reports.lock().expect("reports").push(r);
            });
        }
    });
    let reports = reports.into_inner().expect("reports");
    let total: usize = reports.iter().map(|r| r.points).sum();
    let summary: Vec<String> = reports.iter().map(|r| format!("{} {}", r.op, r.points)).collect();
    let failures: Vec<&String> = reports.iter().flat_map(|r| &r.failures).collect();
    eprintln!(
        "crash sweep: {total} crash points in total ({}) in {:.1} s, {} failure(s)",
        summary.join(", "),
        start.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "crash sweep: {} failure(s) over {total} crash points ({}).\nBy class:\n{}\nAll:\n{}",
        failures.len(),
        summary.join(", "),
        classes(&failures).join("\n"),
        failures.iter().map(|f| f.as_str()).collect::<Vec<_>>().join("\n")
    );
}

/// The whole sweep: every command of [`OPS`] (or those named in `OPUS_MIRROR_CRASH_OPS`,
/// e.g. `snapshot,mirror`, to reproduce one class quickly).
#[test]
fn crash_sweep_every_command_survives_kills_and_a_full_disk() {
    if !strace_works("crash_sweep_every_command_survives_kills_and_a_full_disk") {
        return;
    }
    let only = std::env::var("OPUS_MIRROR_CRASH_OPS").unwrap_or_default();
    let ops: Vec<Op> = OPS
        .iter()
        .copied()
        .filter(|op| only.is_empty() || only.split(',').any(|k| k.trim() == op.key()))
        .collect();
    assert!(!ops.is_empty(), "OPUS_MIRROR_CRASH_OPS={only:?} names none of {:?}", OPS.map(Op::key));
    sweep_and_assert(&ops);
}

/// Regression (issue 14, item 1): a backup repo with 16 packs, a new commit upstream, and a
/// `mirror` killed at each `unlink` while it deletes the packs it has just merged; the next
/// plain `mirror` (nothing new to import) merged the merged pack into a byte-identical one
/// under the same name and deleted it with its inputs: every snapshot was gone.
#[test]
fn a_mirror_killed_while_deleting_merged_packs_never_loses_a_snapshot() {
    let test = "a_mirror_killed_while_deleting_merged_packs_never_loses_a_snapshot";
    if !strace_works(test) {
        return;
    }
    let w = World::build(&vaultgen::Spec { notes: 20, attachments: 2, ..Default::default() }, false);
    Op::Mirror.prepare(&w);
    w.freeze();
    let snapshots = snapshot_commits(&w.backup());
    assert!(count_packs(&w.backup()) == 16, "the world starts with 16 packs");

    let scratch =
        tempfile::Builder::new().prefix("om-crash-trace-").tempdir_in(fast_dir()).expect("temp dir");
    let trace_file = scratch.path().join("trace");
    let wrapper = strace_with(&["-o", trace_file.to_str().expect("utf-8"), "-e", "trace=unlink"]);
    w.om_wrapped(&wrapper, &at(4, 3), &["mirror"]).ok();
    assert!(count_packs(&w.backup()) < 16, "the uninjected mirror merges the packs");
    let unlinks = max_calls_per_thread(&fs::read_to_string(&trace_file).expect("trace"))["unlink"];

    let mut failures = Vec::new();
    for n in 1..=unlinks {
        w.reset();
        let f = Fault::Kill("unlink", n);
        w.om_wrapped(&f.strace_args(), &at(4, 3), &["mirror"]);
        // Its exit code is the sweep's business (a stale ref lock can fail it); here only
        // the snapshots count.
        let r = w.om(&at(4, 5), &["mirror"]);
        let problems = snapshots_intact(&w.backup(), &snapshots);
        failures.extend(
            problems.into_iter().map(|p| format!("{f}, then `mirror` (exit {}): {p}: {}", r.code, why(&r))),
        );
    }
    eprintln!("{test}: {unlinks} kill points");
    assert!(failures.is_empty(), "over {unlinks} kill points:\n{}", failures.join("\n"));
}
