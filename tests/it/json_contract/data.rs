//! The shapes of `data` that docs/json.md documents, as a script reads them: the fields it
//! may rely on, with their types. A payload may grow (unknown fields are allowed here, never in
//! the envelope), but never loses or retypes one of these.

#![allow(dead_code)]

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// Checks that `data` parses into `T`.
pub type Shape = fn(&Value) -> Result<(), String>;

pub fn shape<T: DeserializeOwned>(v: &Value) -> Result<(), String> {
    serde_json::from_value::<T>(v.clone()).map(|_| ()).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
pub struct Messages {
    pub messages: Vec<String>,
}

#[derive(Deserialize)]
pub struct Text {
    pub text: String,
}

#[derive(Deserialize)]
pub struct ConfigCheck {
    pub file: Option<String>,
    pub state_dir: String,
    pub sources: Vec<Value>,
    pub targets: Vec<Value>,
}

#[derive(Deserialize)]
pub struct Changes {
    pub added: u64,
    pub modified: u64,
    pub deleted: u64,
}

#[derive(Deserialize)]
pub struct SnapshotOutcome {
    pub source: String,
    pub created: Option<String>,
    pub snapshot: Option<String>,
    pub previous: Option<String>,
    pub files: u64,
    pub bytes: u64,
    pub changes: Changes,
    pub skipped: Vec<Value>,
}

#[derive(Deserialize)]
pub struct SnapshotInfo {
    pub id: String,
    pub short: String,
    pub time: String,
    pub files: u64,
    pub bytes: u64,
}

#[derive(Deserialize)]
pub struct SourceHistory {
    pub source: String,
    pub snapshots: Vec<SnapshotInfo>,
}

#[derive(Deserialize)]
pub struct Diff {
    pub source: String,
    pub from: String,
    pub to: String,
    pub summary: Changes,
    pub changes: Vec<Value>,
}

#[derive(Deserialize)]
pub struct Restore {
    pub snapshot: String,
    pub destination: String,
    pub dry_run: bool,
    pub restored: u64,
    pub bytes: u64,
    pub unchanged: u64,
}

#[derive(Deserialize)]
pub struct LsEntry {
    pub path: String,
    pub kind: String,
}

#[derive(Deserialize)]
pub struct Ls {
    pub source: String,
    pub snapshot: String,
    pub path: String,
    pub entries: Vec<LsEntry>,
}

#[derive(Deserialize)]
pub struct Cat {
    pub source: String,
    pub snapshot: String,
    pub path: String,
    pub kind: String,
    pub size: u64,
    pub id: String,
}

#[derive(Deserialize)]
pub struct Event {
    pub time: String,
    pub step: String,
    pub source: Option<String>,
    pub target: Option<String>,
    pub outcome: String,
    pub detail: String,
}

#[derive(Deserialize)]
pub struct PathLog {
    pub source: String,
    pub path: String,
    pub versions: Vec<Value>,
}

#[derive(Deserialize)]
pub struct Found {
    pub source: String,
    pub pattern: String,
    pub snapshots: u64,
    pub paths: Vec<Value>,
}

#[derive(Deserialize)]
pub struct Verify {
    pub source: String,
    pub safe: bool,
    pub reasons: Vec<String>,
    pub remotes: Vec<Value>,
    pub branches: Vec<Value>,
}

#[derive(Deserialize)]
pub struct Mirror {
    pub source: String,
    pub pushed: Vec<String>,
}

#[derive(Deserialize)]
pub struct Preserved {
    pub source: String,
    pub preserved: Vec<Value>,
}

#[derive(Deserialize)]
pub struct Bundle {
    pub source: String,
    pub target: String,
    pub status: String,
    pub file: Option<String>,
    pub reason: Option<String>,
    pub size: u64,
}

#[derive(Deserialize)]
pub struct Listed {
    pub target: String,
    pub source: String,
    pub name: String,
    pub size: u64,
}

#[derive(Deserialize)]
pub struct Unbundle {
    pub source: String,
    pub target: String,
    pub applied: Vec<String>,
    pub repo: String,
}

#[derive(Deserialize)]
pub struct Prune {
    pub source: String,
    pub target: String,
}

#[derive(Deserialize)]
pub struct Area {
    pub area: String,
    pub checked: u64,
    pub problems: Vec<String>,
    pub read: Vec<ReadItem>,
    pub skipped: Vec<String>,
}

#[derive(Deserialize)]
pub struct ReadItem {
    pub name: String,
    pub why: String,
}

#[derive(Deserialize)]
pub struct Check {
    pub ok: bool,
    pub areas: Vec<Area>,
    pub healed: Vec<String>,
}

#[derive(Deserialize)]
pub struct Drill {
    pub source: String,
    pub target: String,
    pub files: u64,
    pub ttr_ms: u64,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
pub struct Status {
    pub stale: bool,
    pub sources: Vec<Value>,
}

#[derive(Deserialize)]
pub struct GuardStatus {
    pub tripped: Vec<Value>,
}

#[derive(Deserialize)]
pub struct GuardAck {
    pub acknowledged: Vec<String>,
    pub not_tripped: Vec<String>,
}

#[derive(Deserialize)]
pub struct NotifyTest {
    pub sent: bool,
    pub problems: u64,
}

#[derive(Deserialize)]
pub struct Step {
    pub source: String,
    pub step: String,
    pub target: Option<String>,
    pub outcome: String,
    pub detail: String,
    pub ms: u64,
}

#[derive(Deserialize)]
pub struct Run {
    pub trigger: String,
    pub dry_run: bool,
    pub exit: String,
    pub steps: Vec<Step>,
    pub elapsed_ms: u64,
}
