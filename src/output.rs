//! How results reach the user: data on stdout (a human table or `--json`), logs and progress
//! on stderr, progress only on a terminal and never with `--json` or `--quiet`.

use std::io::{IsTerminal, Write};

pub use opus_mirror_core::human::{display_path, human_age, human_bytes, human_duration, short_id};
pub use opus_mirror_core::progress::{NoProgress, Report};

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
    pub(crate) fn is_live(&self) -> bool {
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
pub(crate) fn print_json<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
