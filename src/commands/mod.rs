//! One module per subcommand: arguments → library call → output. No backup logic here.

pub mod browse;
pub mod bundle;
pub mod check;
pub mod config_check;
pub mod diff;
pub mod drill;
pub mod guard;
pub mod hook;
pub mod init;
pub mod mirror;
pub mod preserved;
pub mod prune;
pub mod recover;
pub mod restore;
pub mod run;
pub mod schedule;
pub mod snapshot;
pub mod snapshots;
pub mod status;
pub mod verify;
