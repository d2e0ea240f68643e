//! The commented starter config that `init` writes, and the source names it picks.
//!
//! The text lives in two TOML files beside this one, so it can be read, edited and checked as
//! TOML: `starter.toml` is the whole file as written without sources (every key shown as a
//! commented example), `starter_source.toml` the `[[source]]` table written for each source.
//! The tests below load both as written and with every example uncommented, so each key the
//! starter shows is real and correctly spelled.

use std::path::{Path, PathBuf};

/// The starter config without a state_dir or a source.
const TEMPLATE: &str = include_str!("starter.toml");
/// The table written for each source; its `name` and `path` lines are replaced.
const SOURCE: &str = include_str!("starter_source.toml");
/// The lines of [`TEMPLATE`] that a given `state_dir` replaces.
const STATE_DIR_EXAMPLE: &str =
    "# Where backup repos, caches and state live. Default: $XDG_DATA_HOME/opus-mirror.\n\
                                 # state_dir = \"~/.local/share/opus-mirror\"\n";
/// The lines of [`TEMPLATE`] that the sources' tables replace.
const SOURCE_EXAMPLE: &str =
    "#\n# [[source]]\n# name = \"opus\"\n# path = \"~/opus\"\n# exclude = [\"node_modules/\", \"*.tmp\"]\n";
/// The lines of [`SOURCE`] that a source's name and path replace.
const SOURCE_NAME: &str = "name = \"opus\"\n";
const SOURCE_PATH: &str = "path = \"~/opus\"\n";

/// The commented starter config written by `init`.
pub fn starter_config(state_dir: Option<&Path>, sources: &[(String, PathBuf)]) -> String {
    let mut text = TEMPLATE.to_string();
    if let Some(d) = state_dir {
        text = text.replacen(STATE_DIR_EXAMPLE, &format!("state_dir = {:?}\n", d.display().to_string()), 1);
    }
    if !sources.is_empty() {
        let tables: String =
            sources.iter().map(|(name, path)| format!("\n{}", source_table(name, path))).collect();
        text = text.replacen(SOURCE_EXAMPLE, &tables, 1);
    }
    text
}

/// One `[[source]]` table of the starter config.
fn source_table(name: &str, path: &Path) -> String {
    SOURCE.replacen(SOURCE_NAME, &format!("name = {name:?}\n"), 1).replacen(
        SOURCE_PATH,
        &format!("path = {:?}\n", path.display().to_string()),
        1,
    )
}

/// Derives a valid, unused source name from a directory's name.
pub fn name_for(path: &Path, taken: &[String]) -> String {
    let base: String = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(48)
        .collect();
    let base = if base.is_empty() { "source".to_string() } else { base };
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// The starter text with every example uncommented: the lines that are TOML (`# [table]`,
/// `# key = value`, a lowercase key), not prose. What the tests load to prove that every key
/// the starter shows is real and correctly spelled (here, and in `init`'s integration test on
/// the file it writes).
pub fn uncomment_examples(text: &str) -> String {
    text.lines()
        .map(|l| {
            let body = l.strip_prefix("# ").unwrap_or(l);
            let key = body.split(" = ").next().unwrap_or("");
            let is_toml = l.starts_with("# ")
                && (body.starts_with('[')
                    || (body.contains(" = ")
                        && !key.is_empty()
                        && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
            if is_toml {
                body.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::dotenv::Dotenv;
    use crate::config::types::Config;
    use crate::config::validate::parse;
    use crate::config::DEFAULT_SNAPSHOT_BRANCH;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// Loads config text as if it were the file `dir/config.toml`, with `$HOME` at `dir`.
    fn load_text(dir: &Path, text: &str) -> Config {
        let home = |k: &str| (k == "HOME").then(|| dir.display().to_string());
        parse(&dir.join("config.toml"), text, &Dotenv::default(), &home)
            .unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
    }

    #[test]
    fn names_are_derived_and_deduplicated() {
        assert_eq!(name_for(Path::new("/x/My Life Lab"), &[]), "my-life-lab");
        assert_eq!(name_for(Path::new("/x/opus"), &["opus".into()]), "opus-2");
        assert_eq!(name_for(Path::new("/"), &[]), "source");
    }

    #[test]
    fn starter_config_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let text = starter_config(Some(dir.path()), &[("v".into(), dir.path().to_path_buf())]);
        let cfg = parse(&dir.path().join("c.toml"), &text, &Dotenv::default(), &no_env).unwrap();
        assert_eq!(cfg.sources.len(), 1);
        assert_eq!(cfg.sources[0].snapshot_branch, DEFAULT_SNAPSHOT_BRANCH);
        let empty = starter_config(None, &[]);
        let home = |k: &str| (k == "HOME").then(|| "/h".to_string());
        assert!(parse(Path::new("/c.toml"), &empty, &Dotenv::default(), &home).unwrap().sources.is_empty());
    }

    /// The lines `starter_config` replaces are in the templates, once each (a template edited
    /// without them would silently lose the state_dir or the sources).
    #[test]
    fn the_templates_hold_the_lines_that_are_replaced() {
        for (template, lines) in
            [(TEMPLATE, [STATE_DIR_EXAMPLE, SOURCE_EXAMPLE]), (SOURCE, [SOURCE_NAME, SOURCE_PATH])]
        {
            for l in lines {
                assert_eq!(template.matches(l).count(), 1, "{l:?} is not in the template once:\n{template}");
            }
        }
        assert!(SOURCE.contains(&format!("# snapshot_branch = \"{DEFAULT_SNAPSHOT_BRANCH}\"\n")));
        let dir = Path::new("/st");
        let text = starter_config(Some(dir), &[("a".into(), "/a".into()), ("b".into(), "/b".into())]);
        assert!(text.contains("\nstate_dir = \"/st\"\n\n# One [[source]]"), "{text}");
        assert!(text.contains("\n\n[[source]]\nname = \"a\"\npath = \"/a\"\n"), "{text}");
        assert!(text.contains("\n\n[[source]]\nname = \"b\"\npath = \"/b\"\n"), "{text}");
        assert!(!text.contains("# name = \"opus\""), "the commented example gives way to the sources");
    }

    /// Both templates are TOML that validates, as written and with every example uncommented.
    #[test]
    fn the_templates_validate_with_every_example_uncommented() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("opus")).unwrap();
        let as_written = load_text(dir.path(), TEMPLATE);
        assert!(as_written.sources.is_empty() && as_written.targets.is_empty());

        let every = load_text(dir.path(), &uncomment_examples(TEMPLATE));
        assert_eq!(every.state_dir, dir.path().join(".local/share/opus-mirror"));
        assert_eq!(every.sources.len(), 1);
        assert_eq!(every.targets.len(), 2);
        assert_eq!(every.mirror_url.as_deref(), Some("git@github.com:me/opus-backup.git"));
        assert!(every.targets[1].age_recipients.len() == 1 && every.hooks.before_run.is_some());
        assert!(every.notify.on_failure.webhook.is_some() && every.notify.healthcheck.is_some());

        let source = load_text(dir.path(), SOURCE);
        assert_eq!(source.sources[0].path, dir.path().join("opus"));
        let source = load_text(dir.path(), &uncomment_examples(SOURCE));
        let s = &source.sources[0];
        assert!(s.mirror.is_some() && s.health_note.is_some() && s.recovery_doc.is_some());

        let written = starter_config(Some(&dir.path().join("st")), &[("v".into(), dir.path().join("opus"))]);
        assert_eq!(load_text(dir.path(), &uncomment_examples(&written)).sources[0].name, "v");
    }
}
