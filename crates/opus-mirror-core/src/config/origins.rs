//! Where each effective setting came from, for `config check`: `FILE line N` when the file
//! (or the `.env` beside it) sets it, `environment VAR`, or `default`.
//!
//! Validation records the layered ones as it resolves them (`state_dir`); [`complete`] gives
//! every other key `config check` shows the line of the file that sets it, or `default`.

use std::collections::BTreeMap;

use toml::Spanned;

use super::raw::RawSource;
use super::spans::{key_lines, line_of};
use super::types::{Target, TargetKind};

/// The keys of each `[[source]]` that `config check` shows.
const SOURCE_KEYS: &[&str] = &[
    "name",
    "path",
    "exclude",
    "include_secrets",
    "keep_secrets",
    "snapshot_branch",
    "mirror",
    "mirror_refs",
    "recovery_doc",
    "health_note",
];

/// The keys of each `[[target]]` that `config check` shows, besides those of its kind (`path`
/// and `require_mount`, or `remote` and `rclone_config`).
const TARGET_KEYS: &[&str] = &[
    "name",
    "kind",
    "every",
    "mode",
    "full_every",
    "keep.last",
    "keep.hourly",
    "keep.daily",
    "keep.weekly",
    "keep.monthly",
    "keep.yearly",
    "keep.within",
    "sources",
    "encrypt.age_recipients",
    "encrypt.identity_file",
];

/// The keys of the single tables, as `config check` shows them.
const SECTION_KEYS: &[(&str, &[&str])] = &[
    ("mirror", &["url"]),
    ("network", &["transport", "ssh_key", "token_env", "timeout", "deadline"]),
    (
        "notify",
        &[
            "healthcheck",
            "healthcheck_warnings",
            "on_failure.command",
            "on_failure.webhook",
            "on_warning.command",
            "on_warning.webhook",
            "on_success.command",
            "on_success.webhook",
        ],
    ),
    ("guard", &["max_deleted_percent", "max_changed_percent", "max_truncated_files", "min_files"]),
    ("status", &["max_age"]),
    ("verify", &["grace"]),
    ("run", &["check_every", "drill_every", "read_data_within", "repack_every"]),
    ("hooks", &["before_run", "after_run", "on_error", "timeout"]),
];

/// Adds the origin of every key that `config check` shows and `origins` lacks yet: the line
/// of the file that sets it, else the default. A source without a mirror of its own inherits
/// `[mirror] url`, and says so.
pub(super) fn complete(
    origins: &mut BTreeMap<String, String>,
    file: &str,
    text: &str,
    sources: &[RawSource],
    global_mirror: Option<&Spanned<String>>,
    targets: &[Target],
) {
    let lines = key_lines(text);
    let inherited =
        global_mirror.map(|u| format!("{file} line {} ([mirror] url)", line_of(text, u.span().start)));
    let mut keys: Vec<(String, Option<String>)> = Vec::new();
    for (i, rs) in sources.iter().enumerate() {
        for k in SOURCE_KEYS {
            let fallback = (*k == "mirror" && rs.mirror.is_none()).then(|| inherited.clone()).flatten();
            keys.push((format!("source[{}].{k}", i + 1), fallback));
        }
    }
    for (i, t) in targets.iter().enumerate() {
        let place: &[&str] = match t.kind {
            TargetKind::Dir { .. } => &["path", "require_mount"],
            TargetKind::Rclone { .. } => &["remote", "rclone_config"],
        };
        for k in TARGET_KEYS.iter().chain(place) {
            keys.push((format!("target[{}].{k}", i + 1), None));
        }
    }
    for (section, names) in SECTION_KEYS {
        keys.extend(names.iter().map(|k| (format!("{section}.{k}"), None)));
    }
    for (k, fallback) in keys {
        let origin = match lines.get(&k) {
            Some(n) => format!("{file} line {n}"),
            None => fallback.unwrap_or_else(|| "default".into()),
        };
        origins.entry(k).or_insert(origin);
    }
}
