//! Exit codes: the one place they are defined. They are a public contract (README, "Exit
//! codes"): scripts and timers branch on them, so a code never changes meaning once released.

use serde::Serialize;

/// How a run ended, from best to worst within each family. `main` turns it into the process
/// exit status; `--json` reports carry its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exit {
    /// Everything asked for was done.
    Ok = 0,
    /// Something failed: a step could not complete, or an internal error.
    Failed = 1,
    /// The command line or the configuration is wrong; nothing was done.
    Usage = 2,
    /// Done, but with warnings (for example files that could not be read were skipped).
    Warnings = 3,
    /// `verify`: something is not safe yet (unpushed commits, dirty tree).
    AtRisk = 4,
    /// A remote could not be reached.
    Unreachable = 5,
    /// A backup target (drive, cloud remote) is not available.
    TargetUnavailable = 6,
    /// Another opus-mirror run holds the lock.
    Busy = 7,
    /// `status`: the newest good backup is older than the allowed age.
    Stale = 8,
}

impl Exit {
    /// The numeric process status.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Combines two outcomes of independent steps: the run reports the most serious one.
    /// A failure outranks everything; warnings outrank success.
    pub fn combine(self, other: Exit) -> Exit {
        fn rank(e: Exit) -> u8 {
            match e {
                Exit::Ok => 0,
                Exit::Warnings => 1,
                Exit::AtRisk => 2,
                Exit::Stale => 3,
                Exit::TargetUnavailable => 4,
                Exit::Unreachable => 5,
                Exit::Busy => 6,
                Exit::Failed => 7,
                Exit::Usage => 8,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// An error that knows which exit code it deserves. Library errors implement it so that the
/// edge (`app`) can pick the code without string matching.
pub trait HasExit {
    fn exit(&self) -> Exit;
}

/// A mistake in what the user asked for (an unknown snapshot id, a non-empty restore target):
/// the message says what to do, and the exit code is `Usage` unless stated otherwise.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UserError {
    pub message: String,
    pub exit: Exit,
}

impl UserError {
    pub fn usage(message: impl Into<String>) -> Self {
        UserError { message: message.into(), exit: Exit::Usage }
    }
}

impl HasExit for UserError {
    fn exit(&self) -> Exit {
        self.exit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_keeps_the_most_serious_outcome() {
        assert_eq!(Exit::Ok.combine(Exit::Warnings), Exit::Warnings);
        assert_eq!(Exit::Warnings.combine(Exit::Ok), Exit::Warnings);
        assert_eq!(Exit::Warnings.combine(Exit::Failed), Exit::Failed);
        assert_eq!(Exit::Failed.combine(Exit::TargetUnavailable), Exit::Failed);
        assert_eq!(Exit::Ok.combine(Exit::Ok), Exit::Ok);
    }

    #[test]
    fn codes_are_stable() {
        let codes: Vec<u8> = [
            Exit::Ok,
            Exit::Failed,
            Exit::Usage,
            Exit::Warnings,
            Exit::AtRisk,
            Exit::Unreachable,
            Exit::TargetUnavailable,
            Exit::Busy,
            Exit::Stale,
        ]
        .iter()
        .map(|e| e.code())
        .collect();
        assert_eq!(codes, vec![0, 1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
