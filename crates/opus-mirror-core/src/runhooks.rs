//! Commands around a run (`[hooks]`, as borgmatic and rustic have them): `before_run` gates
//! the run (mount the drive, stop a sync tool; if it fails nothing is backed up and the run
//! fails), `after_run` follows a run that did not fail, `on_error` follows one that did. Each
//! is an argv array (no shell unless the user asks for one), gets the run's context in
//! `OPUS_MIRROR_RUN_*` variables, never reads our stdin, and is stopped at its timeout.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::config::Hooks;

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    BeforeRun,
    AfterRun,
    OnError,
}

impl Phase {
    pub fn key(self) -> &'static str {
        match self {
            Phase::BeforeRun => "before_run",
            Phase::AfterRun => "after_run",
            Phase::OnError => "on_error",
        }
    }
}

impl Hooks {
    fn argv(&self, p: Phase) -> Option<&[String]> {
        match p {
            Phase::BeforeRun => self.before_run.as_deref(),
            Phase::AfterRun => self.after_run.as_deref(),
            Phase::OnError => self.on_error.as_deref(),
        }
        .filter(|a| !a.is_empty())
    }

    /// Runs the hook of `phase` if one is configured, with `vars` in its environment.
    /// None when there is none; Some(Err(why)) when it failed, timed out or could not start.
    pub fn call(&self, phase: Phase, vars: &[(&str, String)]) -> Option<Result<(), String>> {
        let argv = self.argv(phase)?;
        Some(run(argv, phase, vars, self.timeout))
    }
}

fn run(argv: &[String], phase: Phase, vars: &[(&str, String)], timeout: Duration) -> Result<(), String> {
    let (prog, args) = argv.split_first().ok_or("empty hook command")?;
    let name = format!("[hooks] {} `{prog}`", phase.key());
    let mut child = Command::new(prog)
        .args(args)
        .env("OPUS_MIRROR_HOOK", phase.key())
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    // Read stderr on a thread so a chatty hook never blocks on a full pipe.
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.take(64 * 1024).read_to_string(&mut s);
        }
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{name} took more than {} and was stopped",
                    crate::human::human_age(timeout.as_secs() as i64)
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{name}: {e}")),
        }
    };
    let stderr = reader.join().unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let said =
        if last.is_empty() { String::new() } else { format!(": {}", crate::config::mask_urls_in(last)) };
    Err(format!("{name} exited with {status}{said}"))
}
