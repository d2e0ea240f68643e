//! Shared test helpers: an isolated environment per test (HOME, XDG dirs, git config), a
//! runner for the real binary, a realistic vault generator, and tree comparison.

#![allow(dead_code)]

pub mod coderepo;
pub mod servers;
pub mod treecmp;
pub mod vaultgen;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_opus-mirror")
}

/// A throwaway world: its own HOME, config, state dir, and a place for sources.
pub struct Env {
    pub dir: TempDir,
    pub home: PathBuf,
    pub config: PathBuf,
    pub state: PathBuf,
    pub now: Option<String>,
    /// Extra environment for the binary (e.g. rclone's remote settings).
    pub vars: Vec<(String, String)>,
}

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing the output when it is wrong.
    pub fn code(self, want: i32) -> Run {
        assert_eq!(self.code, want, "exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    pub fn ok(self) -> Run {
        self.code(0)
    }

    /// The command's `--json` payload: `data` of the envelope (docs/json.md).
    pub fn json(&self) -> serde_json::Value {
        let envelope = self.envelope();
        assert_eq!(envelope["schema"], 1, "not a --json envelope:\n{}", self.stdout);
        envelope["data"].clone()
    }

    /// The whole `--json` envelope.
    pub fn envelope(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

impl Env {
    pub fn new() -> Env {
        Env::new_in(&std::env::temp_dir())
    }

    /// An environment under `parent` (e.g. a tmpfs, for tests that copy worlds many times).
    pub fn new_in(parent: &Path) -> Env {
        let dir = tempfile::Builder::new().prefix("om-test-").tempdir_in(parent).expect("temp dir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
        let config = home.join(".config/opus-mirror/config.toml");
        let state = dir.path().join("state");
        Env { dir, home, config, state, now: None, vars: Vec::new() }
    }

    /// A path inside the environment.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a config with one source per (name, path).
    pub fn write_config(&self, sources: &[(&str, &Path)]) {
        let mut s = format!("state_dir = {:?}\n", self.state.display().to_string());
        for (name, path) in sources {
            s.push_str(&format!("\n[[source]]\nname = {name:?}\npath = {:?}\n", path.display().to_string()));
        }
        self.write_config_text(&s);
    }

    pub fn write_config_text(&self, text: &str) {
        std::fs::create_dir_all(self.config.parent().expect("config has a parent")).expect("config dir");
        std::fs::write(&self.config, text).expect("write config");
    }

    /// Writes a config with one source and a dir target `drive`; `source_extra` and
    /// `target_extra` are more lines for each (`health_note = ...`, `every = "1d"`).
    pub fn write_config_with_drive(
        &self,
        name: &str,
        source: &Path,
        source_extra: &str,
        drive: &Path,
        target_extra: &str,
    ) {
        self.write_config_text(&format!(
            "state_dir = {:?}\n[[source]]\nname = {name:?}\npath = {:?}\n{source_extra}\n\n[[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {:?}\n{target_extra}\n",
            self.state.display().to_string(),
            source.display().to_string(),
            drive.display().to_string()
        ));
    }

    /// A command for the binary with everything outside the temp dir shut out.
    pub fn command(&self, args: &[&str]) -> Command {
        self.wrapped(&[], args)
    }

    /// Like [`Env::command`], but runs the binary under a wrapper (`strace -f ...`): the
    /// wrapper and the binary get the same isolated environment.
    pub fn wrapped(&self, wrapper: &[String], args: &[&str]) -> Command {
        let mut c = match wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = Command::new(prog);
                c.args(rest).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        c.args(args);
        self.isolate(&mut c);
        if let Some(now) = &self.now {
            c.env("OPUS_MIRROR_NOW", now);
        }
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    /// Shuts a command off from everything outside the temp dir: its own HOME, XDG dirs,
    /// git config and identity, locale and time zone.
    pub fn isolate(&self, c: &mut Command) {
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("LANG", "C.UTF-8")
            .env("TZ", "UTC")
            .current_dir(self.dir.path());
        git_identity(c);
    }

    /// Runs the binary.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run opus-mirror"))
    }

    /// The backup repo of a source.
    pub fn backup_repo(&self, name: &str) -> PathBuf {
        self.state.join("repos").join(format!("{name}.git"))
    }

    /// Replaces the temp dir in output so messages can be pinned.
    pub fn redact(&self, s: &str) -> String {
        let real = self.dir.path().canonicalize().expect("canonical temp dir");
        s.replace(&real.display().to_string(), "[TMP]")
            .replace(&self.dir.path().display().to_string(), "[TMP]")
    }
}

/// No system or global git config, a fixed identity.
pub fn git_identity(c: &mut Command) {
    c.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com");
}

/// Runs stock git with an isolated config and fixed identities and dates.
pub fn git(dir: &Path, args: &[&str]) -> Run {
    let mut c = Command::new("git");
    c.args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z");
    git_identity(&mut c);
    Run::from(c.output().expect("git is installed (CI installs it)"))
}

/// `git --git-dir REPO fsck --full --strict` must be clean.
pub fn assert_fsck(repo: &Path) {
    let r =
        git(Path::new("/"), &["--git-dir", repo.to_str().expect("utf-8 path"), "fsck", "--full", "--strict"]);
    assert_eq!(r.code, 0, "git fsck failed:\n{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("error"), "git fsck complained:\n{}", r.stderr);
}

/// Hashes every file under `dir` (paths and contents): a fingerprint to prove nothing was written.
pub fn fingerprint(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.expect("walk");
        let p = e.path().strip_prefix(dir).expect("below").to_path_buf();
        let content =
            if e.file_type().is_file() { std::fs::read(e.path()).expect("read") } else { Vec::new() };
        out.push((p, content));
    }
    out
}

/// Copies a tree, keeping symlinks and the executable bit.
pub fn copy_tree(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.expect("walk");
        let dest = to.join(e.path().strip_prefix(from).expect("below"));
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
        } else if e.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).expect("readlink"), &dest)
                .expect("symlink");
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

/// `text` with each run of ASCII letters and digits replaced by `f(run)`, everything between
/// kept: for taking what varies (ids, temp names, numbers) out of messages before comparing.
pub fn map_words(text: &str, mut f: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            out.push_str(&f(&word));
            word.clear();
            out.push(c);
        }
    }
    out.push_str(&f(&word));
    out
}
