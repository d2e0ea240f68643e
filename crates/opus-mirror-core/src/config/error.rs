//! The one error of configuration: the file, the line and the key at fault, the problem and
//! the fix. Every configuration problem exits with [`Exit::Usage`].

use std::fmt;
use std::path::PathBuf;

use crate::exit::{Exit, HasExit};

/// A configuration problem, precise enough to fix without reading the source code.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file at fault (config or .env), if any.
    pub file: Option<PathBuf>,
    /// 1-based line in that file, when known.
    pub line: Option<usize>,
    /// The key at fault, e.g. `source[2].path`.
    pub key: Option<String>,
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut place = Vec::new();
        if let Some(file) = &self.file {
            place.push(file.display().to_string());
        }
        if let Some(line) = self.line {
            place.push(format!("line {line}"));
        }
        if let Some(key) = &self.key {
            place.push(format!("key `{key}`"));
        }
        if place.is_empty() {
            write!(f, "config: {}", self.problem)?;
        } else {
            write!(f, "config {}: {}", place.join(", "), self.problem)?;
        }
        write!(f, "\n  fix: {}", self.fix)
    }
}

impl HasExit for ConfigError {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}
