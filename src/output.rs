//! How results reach the user: data on stdout (a human table or `--json`), logs and progress
//! on stderr, progress only on a terminal and never with `--json` or `--quiet`.

use std::io::{IsTerminal, Write};

/// Output settings shared by every command.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutputMode {
    pub json: bool,
    pub quiet: bool,
}

impl OutputMode {
    /// Whether progress may be drawn on stderr.
    pub fn progress(&self) -> bool {
        !self.json && !self.quiet && std::io::stderr().is_terminal()
    }
}

/// Where the snapshot engine reports how far it got (bytes read of those it must read).
/// The library knows nothing of terminals: the command passes a bar, or [`NoProgress`].
pub trait Report: Sync {
    fn total(&self, bytes: u64);
    fn advance(&self, bytes: u64);
    /// What is being done now (`life: bundle → drive`).
    fn doing(&self, _what: &str) {}
    /// One finished step, as a line for the user (printed above the bar as it happens).
    fn step(&self, _line: &str) {}
    /// How far one transfer (a bundle written to a drive, uploaded) got: `done` bytes of
    /// `total` when it is known beforehand. A new `label` starts a new transfer.
    fn bytes(&self, _label: &str, _done: u64, _total: Option<u64>) {}
}

/// Progress that goes nowhere (hooks, --quiet, --json, tests).
pub struct NoProgress;

impl Report for NoProgress {
    fn total(&self, _: u64) {}
    fn advance(&self, _: u64) {}
}

impl Report for Progress {
    fn total(&self, bytes: u64) {
        if let Some(pb) = &self.0 {
            pb.set_length(bytes);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
        }
    }
    fn advance(&self, bytes: u64) {
        if let Some(pb) = &self.0 {
            pb.inc(bytes);
        }
    }
    fn doing(&self, what: &str) {
        if let Some(pb) = &self.0 {
            // Back to a spinner: a byte bar from the last snapshot means nothing here.
            pb.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .expect("a valid template"),
            );
            pb.set_message(what.to_string());
        }
    }
    fn step(&self, line: &str) {
        if let Some(pb) = &self.0 {
            pb.println(line);
        }
    }
    fn bytes(&self, label: &str, done: u64, total: Option<u64>) {
        let Some(pb) = &self.0 else { return };
        if pb.message() != label {
            // A new transfer: its own figures, rate and eta. The bytes come first so that
            // an 80-column terminal still shows them.
            let template = match total {
                Some(_) => "{msg} {bytes}/{total_bytes} [{bar:20}] {bytes_per_sec} eta {eta}",
                None => "{spinner} {msg} {bytes} {bytes_per_sec}",
            };
            pb.set_style(
                indicatif::ProgressStyle::with_template(template)
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            pb.set_message(label.to_string());
            pb.set_position(0);
            pb.reset_eta();
        }
        if let Some(t) = total {
            pb.set_length(t);
        }
        pb.set_position(done);
    }
}

/// A spinner on stderr while a long step runs; nothing at all when progress is off.
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    pub fn start(mode: &OutputMode, msg: impl Into<String>) -> Progress {
        if !mode.progress() {
            return Progress(None);
        }
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("a valid template"),
        );
        pb.set_message(msg.into());
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress(Some(pb))
    }

    /// Whether it draws anything.
    pub fn is_live(&self) -> bool {
        self.0.is_some()
    }

    pub fn set(&self, msg: impl Into<String>) {
        if let Some(pb) = &self.0 {
            pb.set_message(msg.into());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

/// Stdout that its reader may leave early (`opus-mirror log | head -1`). Once the pipe is
/// closed, every further write is dropped and counted as done: the command finishes its work
/// (a backup is never cut short because a pager quit) and ends with its own exit code, and no
/// "Broken pipe" is printed. Other write errors (a full disk behind `>`) still fail.
pub struct QuietPipe<W> {
    inner: W,
    closed: bool,
}

impl<W: Write> QuietPipe<W> {
    pub fn new(inner: W) -> QuietPipe<W> {
        QuietPipe { inner, closed: false }
    }

    /// Whether the reader has gone.
    pub fn closed(&self) -> bool {
        self.closed
    }

    fn quiet<T>(&mut self, r: std::io::Result<T>, done: T) -> std::io::Result<T> {
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(done)
            }
            r => r,
        }
    }
}

impl<W: Write> Write for QuietPipe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let r = self.inner.write(buf);
        self.quiet(r, buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.inner.flush();
        self.quiet(r, ())
    }
}

/// Prints a value as pretty JSON followed by a newline.
pub fn print_json<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Formats a byte count the way people read it.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// An age in its largest whole unit: 40s, 12min, 5h, 3d.
pub fn human_age(secs: i64) -> String {
    match secs.max(0) {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}min", s / 60),
        s => format!("{s}s"),
    }
}

/// A duration the way people write it: 26h, 7d, 2w.
pub fn human_duration(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    if s % 604_800 == 0 && s > 0 {
        format!("{}w", s / 604_800)
    } else if s % 86_400 == 0 && s > 0 {
        format!("{}d", s / 86_400)
    } else if s % 3600 == 0 && s > 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 && s > 0 {
        format!("{}min", s / 60)
    } else {
        format!("{s}s")
    }
}

/// A path from a git tree (raw bytes) as text for people: lossless for UTF-8, escaped otherwise.
pub fn display_path(p: &[u8]) -> String {
    match std::str::from_utf8(p) {
        Ok(s) => s.to_string(),
        Err(_) => p.escape_ascii().to_string(),
    }
}

/// How an id (commit, snapshot, tree) is shown to people: its first 12 characters. Ids read
/// back from manifests and state files are untrusted text, so a short or non-ASCII one is
/// shown as it is, never sliced inside a character (which would panic).
pub fn short_id(id: &str) -> &str {
    match id.char_indices().nth(12) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_never_split_a_character() {
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_id(""), "");
        assert_eq!(short_id("ééééééééééééé"), "éééééééééééé");
    }

    /// A writer whose reader is gone.
    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn a_closed_pipe_swallows_output_quietly() {
        let mut out = QuietPipe::new(Closed);
        writeln!(out, "first").expect("a closed pipe is not an error");
        print_json(&mut out, &serde_json::json!({"a": 1})).expect("nor for JSON");
        out.flush().expect("nor a flush");
        assert!(out.closed());
        let mut full = QuietPipe::new(std::io::BufWriter::new(Vec::new()));
        writeln!(full, "kept").expect("an open pipe writes");
        assert!(!full.closed());
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(210 * 1024 * 1024), "210.0 MiB");
    }

    #[test]
    fn non_utf8_paths_are_escaped() {
        assert_eq!(display_path(b"caf\xc3\xa9.md"), "café.md");
        assert_eq!(display_path(b"bad\xff.md"), "bad\\xff.md");
    }
}
