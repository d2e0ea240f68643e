//! Where a path of the config points: the XDG defaults (the config file itself, `state_dir`)
//! and the paths the file names, `~/` expanded and relative ones taken from the file's folder.

use std::path::{Path, PathBuf};

use super::error::ConfigError;

/// `$VAR`, else `$HOME/fallback`.
pub fn xdg_dir(
    env: &dyn Fn(&str) -> Option<String>,
    var: &str,
    fallback: &str,
) -> Result<PathBuf, ConfigError> {
    if let Some(p) = env(var).filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    match env("HOME").filter(|s| !s.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(fallback)),
        None => Err(ConfigError {
            file: None,
            line: None,
            key: None,
            problem: format!("neither ${var} nor $HOME is set"),
            fix: "set HOME, or pass --config PATH".into(),
        }),
    }
}

/// Expands `~/` and makes a relative path relative to the config file's directory.
pub(super) fn expand_path(s: &str, base: &Path, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let p = if let Some(rest) = s.strip_prefix("~/") {
        PathBuf::from(env("HOME").unwrap_or_default()).join(rest)
    } else if s == "~" {
        PathBuf::from(env("HOME").unwrap_or_default())
    } else {
        PathBuf::from(s)
    };
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}
