//! Child processes that talk to the network (the system git, rclone), run under the
//! `[network]` limits: a child that stays silent on stdout and stderr for the idle timeout
//! (when the caller asks for one), or runs past the deadline, is killed. A stalled server can
//! then never hold a run, and its lock, forever.
//!
//! Silence is measured on the child's output, so callers that want an idle limit make the
//! child talk while it works (`git --progress`); a child that is quiet by nature (rclone
//! copying a large file) gets only the deadline and its own idle timeout flags.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the child is polled; also the precision of both limits.
const POLL: Duration = Duration::from_millis(20);

/// How long the output of a child that has exited may still take to arrive.
const TAIL: Duration = Duration::from_secs(2);

/// What a child that ended by itself printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why a child did not finish.
#[derive(Debug)]
pub enum Stopped {
    /// It could not be started.
    Spawn(std::io::Error),
    /// It printed nothing for this long and was killed.
    Silent { after: Duration, stderr: Vec<u8> },
    /// It ran past the deadline and was killed.
    Deadline { after: Duration, stderr: Vec<u8> },
}

/// Runs `c` to its end, or kills it at the first limit it passes. Stdin is closed: a
/// network child must never wait for a prompt.
pub fn run(c: Command, idle: Option<Duration>, deadline: Duration) -> Result<Finished, Stopped> {
    run_watching(c, idle, deadline, &mut |_| {})
}

/// [`run`], handing each complete line of the child's stderr to `line` as it arrives (a
/// progress report), on the calling thread. The lines are kept in [`Finished::stderr`] too.
pub(crate) fn run_watching(
    mut c: Command,
    idle: Option<Duration>,
    deadline: Duration,
    line: &mut dyn FnMut(&[u8]),
) -> Result<Finished, Stopped> {
    let start = Instant::now();
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Stopped::Spawn)?;
    let heard = Arc::new(AtomicU64::new(0));
    let out = drain(child.stdout.take().expect("stdout is piped"), start, heard.clone());
    let err = drain(child.stderr.take().expect("stderr is piped"), start, heard.clone());
    // How much of stderr was handed to `line`.
    let mut seen = 0;
    loop {
        if let Some(status) = child.try_wait().map_err(Stopped::Spawn)? {
            // A grandchild that outlives the child (an ssh ControlPersist master) may keep
            // the pipes open: wait for the rest of the output only briefly.
            let ended = Instant::now();
            while !(out.1.is_finished() && err.1.is_finished()) && ended.elapsed() < TAIL {
                std::thread::sleep(Duration::from_millis(5));
            }
            new_lines(&err.0, seen, line);
            return Ok(Finished { status, stdout: take(&out.0), stderr: take(&err.0) });
        }
        seen = new_lines(&err.0, seen, line);
        let now = start.elapsed();
        let silent = now.saturating_sub(Duration::from_millis(heard.load(Ordering::Relaxed)));
        let stop = if now > deadline {
            Some(Stopped::Deadline { after: now, stderr: Vec::new() })
        } else {
            idle.filter(|i| silent > *i).map(|_| Stopped::Silent { after: silent, stderr: Vec::new() })
        };
        if let Some(mut stop) = stop {
            // The readers are left behind: a grandchild (ssh) may still hold the pipes, and
            // it ends by its own ConnectTimeout / ServerAlive settings.
            let _ = child.kill();
            let _ = child.wait();
            let (Stopped::Silent { stderr, .. } | Stopped::Deadline { stderr, .. }) = &mut stop else {
                unreachable!("only timeouts stop a child here")
            };
            *stderr = take(&err.0);
            return Err(stop);
        }
        std::thread::sleep(POLL);
    }
}

type Drained = (Arc<Mutex<Vec<u8>>>, std::thread::JoinHandle<()>);

/// Reads a pipe to its end on a thread, noting when the child last said anything.
fn drain(mut pipe: impl Read + Send + 'static, start: Instant, heard: Arc<AtomicU64>) -> Drained {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let into = buf.clone();
    let handle = std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            heard.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            into.lock().expect("only this thread writes the buffer").extend_from_slice(&chunk[..n]);
        }
    });
    (buf, handle)
}

/// Hands each complete line of `buf` past `from` to `line` (without its newline); returns
/// where the next call starts. The lock is not held while `line` runs.
fn new_lines(buf: &Mutex<Vec<u8>>, from: usize, line: &mut dyn FnMut(&[u8])) -> usize {
    let fresh = {
        let b = buf.lock().unwrap_or_else(|e| e.into_inner());
        match b[from..].iter().rposition(|&c| c == b'\n') {
            Some(end) => b[from..from + end + 1].to_vec(),
            None => return from,
        }
    };
    for l in fresh.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        line(l);
    }
    from + fresh.len()
}

fn take(buf: &Mutex<Vec<u8>>) -> Vec<u8> {
    std::mem::take(&mut *buf.lock().unwrap_or_else(|e| e.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn a_child_that_finishes_keeps_its_output() {
        let f =
            run(sh("echo out; echo err >&2; exit 3"), Some(Duration::from_secs(5)), Duration::from_secs(5))
                .unwrap();
        assert_eq!(f.status.code(), Some(3));
        assert_eq!(f.stdout, b"out\n");
        assert_eq!(f.stderr, b"err\n");
    }

    #[test]
    fn stderr_lines_are_handed_over_as_they_arrive() {
        let t = Instant::now();
        let mut got: Vec<(String, Duration)> = Vec::new();
        let f = run_watching(
            sh("echo one >&2; sleep 1; printf 'two\\nthree' >&2"),
            None,
            Duration::from_secs(10),
            &mut |l| got.push((String::from_utf8_lossy(l).into_owned(), t.elapsed())),
        )
        .unwrap();
        let lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        // A last line without a newline stays in stderr but is never handed over half-written.
        assert_eq!(lines, ["one", "two"]);
        assert!(got[0].1 < Duration::from_millis(900), "the first line came only at the end: {got:?}");
        assert_eq!(f.stderr, b"one\ntwo\nthree");
    }

    #[test]
    fn a_silent_child_is_killed_after_the_idle_timeout() {
        let t = Instant::now();
        let r = run(
            sh("echo starting >&2; exec sleep 30"),
            Some(Duration::from_millis(300)),
            Duration::from_secs(20),
        );
        assert!(matches!(&r, Err(Stopped::Silent { stderr, .. }) if stderr == b"starting\n"), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_talking_child_is_killed_at_the_deadline() {
        let t = Instant::now();
        let r = run(
            sh("while true; do echo tick; sleep 0.05; done"),
            Some(Duration::from_millis(500)),
            Duration::from_millis(600),
        );
        assert!(matches!(r, Err(Stopped::Deadline { .. })), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
