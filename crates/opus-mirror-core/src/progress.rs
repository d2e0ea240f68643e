//! How the engine says how far it got, without knowing of terminals: the binary passes a
//! bar (`output::Progress`), hooks and tests pass [`NoProgress`].

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
