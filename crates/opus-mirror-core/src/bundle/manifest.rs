//! The sidecar manifest written next to every verified bundle (`NAME.bundle.json`): what it
//! holds, its checksum, and what it builds on. A bundle without one is unverified.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BundleKind {
    Full,
    Incremental,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub source: String,
    pub file: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub kind: BundleKind,
    pub size: u64,
    pub sha256: String,
    pub refs: BTreeMap<String, String>,
    /// The ref `HEAD` names in the bundle, so `git clone` checks out the right branch.
    pub head: Option<String>,
    pub prerequisites: Vec<String>,
    /// For an incremental bundle: the bundle it builds on.
    pub base: Option<String>,
    /// The newest vault snapshot it holds.
    pub snapshot: Option<String>,
    pub objects: u64,
    pub tool: String,
    /// Read back after writing and found identical (sha256).
    pub verified: bool,
    /// Encrypted with age (`age -d` before `git clone`); size and sha256 are of the
    /// encrypted file.
    #[serde(default)]
    pub encrypted: bool,
    /// md5 of the stored file, for targets (S3 through rclone) that report only md5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
}

impl Manifest {
    /// The code branch this bundle's `HEAD` names, unless it is the snapshot branch (a plain
    /// vault's bundle): what `recover` and the drill check out.
    pub fn code_branch(&self, snapshot_branch: &str) -> Option<String> {
        self.head
            .as_deref()
            .and_then(|h| h.strip_prefix("refs/heads/"))
            .filter(|b| *b != snapshot_branch)
            .map(str::to_string)
    }

    pub fn created_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::parse_from_rfc3339(&self.created).ok().map(|t| t.with_timezone(&chrono::Utc))
    }
}

/// The file name of a bundle: `SOURCE-2026-11-24T101500Z.bundle` (`-incr` for incremental).
pub(crate) fn bundle_name(
    source: &str,
    created: chrono::DateTime<chrono::Utc>,
    kind: BundleKind,
    encrypted: bool,
) -> String {
    let suffix = if kind == BundleKind::Incremental { "-incr" } else { "" };
    let age = if encrypted { ".age" } else { "" };
    format!("{source}-{}{suffix}.bundle{age}", created.format("%Y-%m-%dT%H%M%SZ"))
}
