//! The misfiring-script guard: a snapshot that deletes, changes or empties too much of the
//! previous one is still recorded (history keeps the previous state; nothing is lost), but
//! the run ends with a warning, alerts with the exact command that brings the previous
//! snapshot back, and pruning of that source is suspended until `opus-mirror guard ack`.

use serde::{Deserialize, Serialize};

use crate::config::Guard;

/// A tripped guard, kept in the state dir until acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    pub source: String,
    pub time: String,
    pub snapshot: String,
    pub previous: String,
    pub previous_files: u64,
    pub deleted: u64,
    pub modified: u64,
    pub truncated: u64,
    pub reasons: Vec<String>,
    pub restore_command: String,
}

/// The state file of a source's alarm.
pub fn state_name(source: &str) -> String {
    format!("guard-{source}.json")
}

/// Which thresholds a change crosses (empty: none).
pub(crate) fn evaluate(
    g: &Guard,
    previous_files: u64,
    deleted: u64,
    modified: u64,
    truncated: u64,
) -> Vec<String> {
    let mut why = Vec::new();
    if previous_files == 0 || previous_files < g.min_files {
        return why;
    }
    let pct = |n: u64| n as f64 * 100.0 / previous_files as f64;
    if pct(deleted) > g.max_deleted_percent {
        why.push(format!(
            "{deleted} of {previous_files} files deleted ({:.0} % > {} %)",
            pct(deleted),
            g.max_deleted_percent
        ));
    }
    if pct(modified) > g.max_changed_percent {
        why.push(format!(
            "{modified} of {previous_files} files modified ({:.0} % > {} %)",
            pct(modified),
            g.max_changed_percent
        ));
    }
    if truncated >= g.max_truncated_files.max(1) {
        why.push(format!("{truncated} files turned empty (≥ {})", g.max_truncated_files.max(1)));
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let g = Guard::default();
        assert!(evaluate(&g, 100, 20, 50, 9).is_empty(), "at the limits is fine");
        assert_eq!(evaluate(&g, 100, 40, 0, 0), vec!["40 of 100 files deleted (40 % > 20 %)"]);
        assert_eq!(evaluate(&g, 100, 0, 51, 0).len(), 1);
        assert_eq!(evaluate(&g, 100, 0, 10, 10), vec!["10 files turned empty (≥ 10)"]);
        assert!(evaluate(&g, 0, 5, 5, 50).is_empty(), "nothing to compare with on a first snapshot");
        assert!(evaluate(&g, 3, 1, 0, 0).is_empty(), "too small to judge by percentages");
    }
}
