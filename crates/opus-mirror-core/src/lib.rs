//! The opus-mirror engine: every capability that makes a git-based personal system
//! recoverable, with no command line, no terminal and no printing in it. Each operation takes
//! its options and a [`progress::Report`], and returns a typed outcome; the binary crate
//! (`opus-mirror`) turns those into text, `--json` and exit codes. Data flows one way:
//! config → plan → steps → report (see ARCHITECTURE.md).

pub mod atomic;
pub mod browse;
pub mod bundle;
pub mod check;
pub mod classify;
pub mod config;
pub mod diskfull;
pub mod drill;
pub mod exit;
pub mod git;
pub mod guard;
pub mod hashio;
pub mod heal;
pub mod health;
pub mod human;
pub mod layout;
pub mod lock;
pub mod mirror;
pub mod netchild;
pub mod notify;
pub mod progress;
pub mod prune;
pub mod ranking;
pub mod recovery;
pub mod restore;
pub mod retention;
pub mod run;
pub mod runhooks;
pub mod safe_fs;
pub mod setup;
pub mod shell;
pub mod snapshot;
pub mod state;
pub mod status;
pub mod steps;
pub mod target;
pub mod timeparse;
pub mod verify;

pub use exit::Exit;
