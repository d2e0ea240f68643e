//! What opus-mirror remembers between runs, under `state_dir/state/`: a run history (JSON
//! lines, appended and synced) behind `status` and `log`, and small JSON files (last drill,
//! last check, what was last pushed to each mirror, guard alarms), each written atomically.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::exit::Exit;

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("state")
}

/// One line of the run history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// RFC 3339, UTC.
    pub time: String,
    /// snapshot, bundle, check, drill, mirror, run...
    pub step: String,
    pub source: Option<String>,
    pub target: Option<String>,
    /// ok, warning or failed.
    pub outcome: String,
    pub detail: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Event {
    pub fn new(
        now: chrono::DateTime<chrono::Utc>,
        step: &str,
        source: Option<&str>,
        target: Option<&str>,
        exit: Exit,
        detail: impl Into<String>,
    ) -> Event {
        Event {
            time: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            step: step.into(),
            source: source.map(str::to_string),
            target: target.map(str::to_string),
            outcome: outcome_word(exit).into(),
            detail: detail.into(),
            data: serde_json::Value::Null,
        }
    }

    pub fn at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::parse_from_rfc3339(&self.time).ok().map(|t| t.with_timezone(&chrono::Utc))
    }
}

pub fn outcome_word(e: Exit) -> &'static str {
    match e {
        Exit::Ok => "ok",
        Exit::Warnings | Exit::AtRisk | Exit::Stale => "warning",
        _ => "failed",
    }
}

/// Appends an event to the history (one JSON line, synced).
pub fn record(state_dir: &Path, e: &Event) -> Result<()> {
    let p = dir(state_dir).join("history.jsonl");
    let append = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir(state_dir))?;
        let mut f = OpenOptions::new().create(true).append(true).open(&p)?;
        let mut line = serde_json::to_vec(e)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_data()
    };
    append().with_context(|| format!("cannot append to {}", p.display()))
}

/// [`record`] for a step whose own outcome matters more than its history line: a history
/// that cannot be written is said (a warning), never silently dropped, and never turns the
/// step into a failure. Returns whether the line was written.
pub fn record_or_warn(state_dir: &Path, e: &Event) -> bool {
    match record(state_dir, e) {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!("cannot record the run history: {err:#}");
            false
        }
    }
}

/// The whole history, oldest first. A torn last line (a crash mid-append) or a damaged one
/// (even bytes that are not UTF-8) is skipped: one bad line must not hide the rest.
pub fn history(state_dir: &Path) -> Result<Vec<Event>> {
    let p = dir(state_dir).join("history.jsonl");
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", p.display())),
    };
    Ok(bytes.split(|&b| b == b'\n').filter_map(parse_line).collect())
}

/// One history line, or None when it is torn or damaged.
fn parse_line(line: &[u8]) -> Option<Event> {
    serde_json::from_slice(line).ok()
}

/// Reads a JSON state file, if it exists and parses.
pub fn load<T: DeserializeOwned>(state_dir: &Path, name: &str) -> Option<T> {
    std::fs::read(dir(state_dir).join(name)).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// Writes a JSON state file atomically.
pub fn save<T: Serialize>(state_dir: &Path, name: &str, value: &T) -> Result<()> {
    crate::atomic::write_file(&dir(state_dir).join(name), &serde_json::to_vec_pretty(value)?)?;
    Ok(())
}

/// Removes a state file (e.g. an acknowledged guard alarm).
pub fn remove(state_dir: &Path, name: &str) -> Result<bool> {
    match std::fs::remove_file(dir(state_dir).join(name)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_survives_a_torn_last_line() {
        let d = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now();
        record(d.path(), &Event::new(now, "snapshot", Some("v"), None, Exit::Ok, "fine")).unwrap();
        let p = dir(d.path()).join("history.jsonl");
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"time\": \"2026").unwrap();
        let h = history(d.path()).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].outcome, "ok");
    }

    #[test]
    fn history_survives_a_line_that_is_not_utf8() {
        let d = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now();
        record(d.path(), &Event::new(now, "snapshot", Some("v"), None, Exit::Ok, "first")).unwrap();
        let p = dir(d.path()).join("history.jsonl");
        OpenOptions::new().append(true).open(&p).unwrap().write_all(b"\xff\xfe garbage\n").unwrap();
        record(d.path(), &Event::new(now, "snapshot", Some("v"), None, Exit::Ok, "second")).unwrap();
        let h = history(d.path()).unwrap();
        assert_eq!(h.iter().map(|e| e.detail.as_str()).collect::<Vec<_>>(), ["first", "second"]);
    }

    proptest::proptest! {
        #[test]
        fn any_history_bytes_read_without_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let d = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir(d.path())).unwrap();
            std::fs::write(dir(d.path()).join("history.jsonl"), &data).unwrap();
            let h = history(d.path()).unwrap();
            for e in h {
                let _ = e.at();
            }
        }

        #[test]
        fn any_history_line_parses_or_is_skipped(line in "\\PC{0,200}") {
            let _ = parse_line(line.as_bytes());
        }
    }
}
