//! The `.env` file beside the config: `KEY=value` lines, each kept with its line for errors.
//! `OPUS_MIRROR_*` keys override settings (only those of [`ENV_KEYS`]); the others are passed
//! to child processes (rclone's tokens and the like).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::ENV_KEYS;

/// One `KEY=value` from a `.env` file, with its line for error messages.
#[derive(Debug, Clone)]
pub(super) struct DotenvEntry {
    pub(super) value: String,
    pub(super) line: usize,
}

#[derive(Debug, Default)]
pub(super) struct Dotenv {
    pub(super) file: PathBuf,
    pub(super) entries: BTreeMap<String, DotenvEntry>,
}

/// Reads `.env` beside the config if there is one. Unknown `OPUS_MIRROR_*` keys are errors
/// (a typo there would silently do nothing); other keys are kept for child processes.
pub(super) fn load_dotenv(path: &Path) -> Result<Dotenv, ConfigError> {
    let mut out = Dotenv { file: path.to_path_buf(), entries: BTreeMap::new() };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(ConfigError {
                file: Some(path.to_path_buf()),
                line: None,
                key: None,
                problem: format!("cannot read .env: {e}"),
                fix: "check the file's permissions".into(),
            })
        }
    };
    // Parse line by line ourselves first, so errors can name the line; dotenvy then handles
    // quoting and escapes of each value exactly as other .env tools do.
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let Some((key, _)) = body.split_once('=') else {
            return Err(ConfigError {
                file: Some(path.to_path_buf()),
                line: Some(line),
                key: None,
                problem: "expected KEY=value".into(),
                fix: "write one KEY=value per line; see .env.example".into(),
            });
        };
        let key = key.trim().to_string();
        let value = match dotenvy::from_read_iter(body.as_bytes()).next() {
            Some(Ok((_, v))) => v,
            _ => {
                return Err(ConfigError {
                    file: Some(path.to_path_buf()),
                    line: Some(line),
                    key: Some(key),
                    problem: "the value cannot be parsed".into(),
                    fix: "quote the value: KEY=\"value\"".into(),
                })
            }
        };
        if key.starts_with("OPUS_MIRROR_")
            && (key == "OPUS_MIRROR_CONFIG" || !ENV_KEYS.iter().any(|(k, _)| *k == key))
        {
            {
                return Err(ConfigError {
                    file: Some(path.to_path_buf()),
                    line: Some(line),
                    key: Some(key.clone()),
                    problem: format!("`{key}` is not a setting .env can hold"),
                    fix: format!(
                        "use one of: {} (see .env.example)",
                        ENV_KEYS
                            .iter()
                            .filter(|(k, _)| *k != "OPUS_MIRROR_CONFIG")
                            .map(|(k, _)| *k)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        out.entries.insert(key, DotenvEntry { value, line });
    }
    Ok(out)
}
