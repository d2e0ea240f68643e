//! opus-mirror's integration tests: one binary, driving the real `opus-mirror` against real
//! directories and repositories, cross-checked with the real `git` CLI.

mod browse;
mod bundle;
mod clock;
mod config_errors;
mod crash;
mod diff;
mod heal;
mod helpers;
mod hostile;
mod hostile_rclone;
mod init;
mod json_contract;
mod mirror;
mod modes;
mod no_panic;
mod packindex;
mod private;
mod prop;
mod prove;
mod rclone;
mod recovery;
mod repack;
mod restore;
mod run;
mod snapshot;
mod stall;
mod verified;
mod verify;
