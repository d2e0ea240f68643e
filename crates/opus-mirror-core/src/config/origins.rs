//! Where each effective setting came from, for `config check`: `FILE line N` when the file
//! (or the `.env` beside it) sets it, `environment VAR`, or `default`.
//!
//! Validation records the layered ones as it resolves them (`state_dir`); [`complete`] gives
//! every other key `config check` shows the line of the file that sets it, or `default`.

use std::collections::BTreeMap;

use toml::Spanned;

use super::spans::{key_lines, line_of};
use super::{RawSource, Target, TargetKind};

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
    ("run", &["check_every", "drill_every", "read_data_within"]),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::config::{parse, render_effective, Dotenv, DotenvEntry};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn every_setting_names_the_line_that_set_it_or_the_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        let file = dir.path().join("c.toml");
        let text = "state_dir = \"st\"\n\
                    [mirror]\n\
                    url = \"/srv/shared.git\"\n\
                    [[source]]\n\
                    name = \"a\"\n\
                    path = \"a\"\n\
                    exclude = [\n  \"*.tmp\",\n]\n\
                    [[source]]\n\
                    name = \"b\"\n\
                    path = \"b\"\n\
                    mirror = \"/srv/b.git\"\n\
                    [[target]]\n\
                    name = \"t\"\n\
                    kind = \"dir\"\n\
                    path = \"d\"\n\
                    keep.weekly = 4\n\
                    [notify.on_failure]\n\
                    webhook = \"https://ntfy.sh/x\"\n\
                    [guard]\n\
                    min_files = 5\n";
        let f = file.display();
        let line = |n: usize| format!("{f} line {n}");
        let cfg = parse(&file, text, &Dotenv::default(), &no_env).unwrap();
        let o = |k: &str| cfg.origins.get(k).unwrap_or_else(|| panic!("no origin for {k}")).clone();
        assert_eq!(o("state_dir"), line(1));
        assert_eq!(o("mirror.url"), line(3));
        assert_eq!(o("source[1].name"), line(5));
        assert_eq!(o("source[1].exclude"), line(7), "a multi-line value: the line of its key");
        assert_eq!(o("source[1].mirror"), format!("{} ([mirror] url)", line(3)));
        assert_eq!(o("source[1].snapshot_branch"), "default");
        assert_eq!(o("source[2].mirror"), line(13));
        assert_eq!(o("target[1].path"), line(17));
        assert_eq!(o("target[1].require_mount"), "default");
        assert_eq!(o("target[1].keep.weekly"), line(18), "a dotted key");
        assert_eq!(o("target[1].keep.daily"), "default");
        assert_eq!(o("notify.on_failure.webhook"), line(20), "a key under [notify.on_failure]");
        assert_eq!(o("notify.on_failure.command"), "default");
        assert_eq!(o("guard.min_files"), line(22));
        assert_eq!(o("guard.max_deleted_percent"), "default");
        assert_eq!(o("run.drill_every"), "default");
        assert!(!cfg.origins.contains_key("target[1].remote"), "a dir target has no remote");
        // The text shows each with its origin (the config file by name), aligned per table.
        let shown = render_effective(&cfg);
        let unaligned: String =
            shown.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n").collect();
        for want in [
            "min_files = 5 # c.toml line 22\n",
            "max_deleted_percent = 20.0 # default\n",
            "keep.weekly = 4 # c.toml line 18\n",
            "mirror = \"/srv/shared.git\" # c.toml line 3 ([mirror] url)\n",
            "on_failure.webhook = \"https://ntfy.sh/****\" # c.toml line 20\n",
            "# on_success (not set)\n",
        ] {
            assert!(unaligned.contains(want), "{want}not in:\n{shown}");
        }

        // .env beats the file, the environment beats .env.
        let mut dotenv = Dotenv { file: dir.path().join(".env"), entries: BTreeMap::new() };
        dotenv.entries.insert("OPUS_MIRROR_STATE_DIR".into(), DotenvEntry { value: "/e".into(), line: 3 });
        let cfg = parse(&file, text, &dotenv, &no_env).unwrap();
        assert_eq!(cfg.origins["state_dir"], format!("{} line 3", dir.path().join(".env").display()));
        assert!(render_effective(&cfg).contains("state_dir = \"/e\"  # .env line 3\n"));
        let env = |k: &str| (k == "OPUS_MIRROR_STATE_DIR").then(|| "/x".to_string());
        let cfg = parse(&file, text, &dotenv, &env).unwrap();
        assert_eq!(cfg.origins["state_dir"], "environment OPUS_MIRROR_STATE_DIR");
        let home = |k: &str| (k == "HOME").then(|| "/h".to_string());
        let cfg =
            parse(&file, &text.replace("state_dir = \"st\"\n", "\n"), &Dotenv::default(), &home).unwrap();
        assert_eq!(cfg.origins["state_dir"], "default ($XDG_DATA_HOME/opus-mirror)");
    }
}
