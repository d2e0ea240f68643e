//! opus-mirror: makes a git-based personal system recoverable.
//!
//! The library holds every capability; `main.rs` and `cli.rs` are a thin shell over it, so the
//! backup logic can be tested without the binary. Data flows one way:
//! config → plan → steps → report.

pub mod app;
pub mod atomic;
pub mod browse;
pub mod bundle;
pub mod check;
pub mod classify;
pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod demo;
pub mod diskfull;
pub mod drill;
pub mod envelope;
pub mod exit;
pub mod git;
pub mod guard;
pub mod hashio;
pub mod heal;
pub mod health;
pub mod layout;
pub mod lock;
pub mod mirror;
pub mod netchild;
pub mod notify;
pub mod output;
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
