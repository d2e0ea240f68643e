//! Browsing snapshot history: `ls`, `cat`, `log PATH` and `find` read snapshots back (every
//! tree validated as restore validates it, see [`trees`]), and the pure path filter behind
//! `restore --include GLOB / --exclude GLOB` decides, for one vault-relative path
//! (`/`-separated, as stored in snapshot trees), whether the path is selected.
//!
//! Rules (restic-like): with no `--include`, everything is included; a path is kept
//! when it matches some include and no exclude. A pattern without `/` matches the
//! file name at any depth (`*.md`); a pattern with `/` matches the whole path
//! (`notes/**`). A directory pattern also selects everything below it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

pub mod find;
pub mod ls;
pub mod path_log;
pub mod trees;

/// A bad `--include`/`--exclude` pattern, naming the flag and the pattern.
#[derive(Debug, thiserror::Error)]
#[error("{flag} pattern {pattern:?} is not a valid glob: {source}; use * ? [..] and ** (e.g. 'notes/**' or '*.md')")]
pub struct PatternError {
    pub flag: &'static str,
    pub pattern: String,
    #[source]
    pub source: globset::Error,
}

/// Compiled include/exclude patterns for selecting paths out of a snapshot.
#[derive(Debug, Clone)]
pub struct PathFilter {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

impl PathFilter {
    /// Compile the patterns; an empty `include` selects everything.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, PatternError> {
        let include = if include.is_empty() { None } else { Some(build("--include", include)?) };
        Ok(Self { include, exclude: build("--exclude", exclude)? })
    }

    /// Is `path` (vault-relative, `/`-separated, no leading `/`) selected?
    pub fn matches(&self, path: &str) -> bool {
        self.matches_bytes(path.as_bytes())
    }

    /// [`PathFilter::matches`] for a path as stored in a tree (bytes, maybe not UTF-8).
    pub(crate) fn matches_bytes(&self, path: &[u8]) -> bool {
        let mut path = path;
        while let Some(rest) = path.strip_prefix(b"/") {
            path = rest;
        }
        let included = self.include.as_ref().is_none_or(|set| hits(set, path));
        included && !hits(&self.exclude, path)
    }

    /// Whether any pattern was given (an empty filter selects everything).
    pub fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_empty()
    }
}

/// A tree path as the `Path` globset matches.
pub(crate) fn as_path(p: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(p))
}

/// A path hits a set when it, or one of its parent directories, matches.
fn hits(set: &GlobSet, path: &[u8]) -> bool {
    if set.is_match(as_path(path)) {
        return true;
    }
    path.iter().enumerate().any(|(i, b)| *b == b'/' && set.is_match(as_path(&path[..i])))
}

/// Compiles patterns with the rules above (a pattern without `/` matches a name at any depth).
pub(crate) fn build(flag: &'static str, patterns: &[String]) -> Result<GlobSet, PatternError> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let trimmed = pattern.trim_start_matches('/').trim_end_matches('/');
        let full = if trimmed.contains('/') { trimmed.to_string() } else { format!("**/{trimmed}") };
        let err = |source| PatternError { flag, pattern: pattern.clone(), source };
        let glob: Glob = GlobBuilder::new(&full).literal_separator(true).build().map_err(err)?;
        builder.add(glob);
    }
    builder.build().map_err(|source| PatternError { flag, pattern: patterns.join(" "), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> PathFilter {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PathFilter::new(&own(include), &own(exclude)).expect("valid test patterns")
    }

    #[test]
    fn no_patterns_selects_everything() {
        let f = filter(&[], &[]);
        assert!(f.matches("a.md"));
        assert!(f.matches("deep/dir/b.png"));
    }

    #[test]
    fn bare_name_pattern_matches_at_any_depth() {
        let f = filter(&["*.md"], &[]);
        assert!(f.matches("a.md"));
        assert!(f.matches("notes/2026/a.md"));
        assert!(!f.matches("notes/a.png"));
    }

    #[test]
    fn path_pattern_is_anchored_and_star_stays_in_one_dir() {
        let f = filter(&["notes/*.md"], &[]);
        assert!(f.matches("notes/a.md"));
        assert!(!f.matches("notes/sub/a.md"));
        assert!(!f.matches("other/notes/a.md"));
        assert!(filter(&["notes/**/*.md"], &[]).matches("notes/sub/a.md"));
    }

    #[test]
    fn directory_pattern_selects_everything_below() {
        let f = filter(&["attachments"], &[]);
        assert!(f.matches("attachments/x/y.pdf"));
        assert!(f.matches("/attachments/z.png"));
        assert!(!f.matches("notes/a.md"));
        assert!(filter(&["notes/daily/"], &[]).matches("notes/daily/d.md"));
    }

    #[test]
    fn exclude_wins_over_include() {
        let f = filter(&["notes/**"], &["*.tmp", "notes/private"]);
        assert!(f.matches("notes/a.md"));
        assert!(!f.matches("notes/a.tmp"));
        assert!(!f.matches("notes/private/secret.md"));
        assert!(filter(&[], &[".trash"]).matches("notes/a.md"));
        assert!(!filter(&[], &[".trash"]).matches(".trash/a.md"));
    }

    #[test]
    fn bad_pattern_names_flag_and_pattern() {
        let err = PathFilter::new(&[], &["a[".to_string()]).expect_err("unclosed class");
        let msg = err.to_string();
        assert!(msg.contains("--exclude pattern \"a[\""), "{msg}");
    }

    #[test]
    fn non_utf8_paths_are_matched_as_bytes() {
        let f = filter(&["notes/**"], &["*.tmp"]);
        assert!(f.matches_bytes(b"notes/caf\xe9.md"));
        assert!(!f.matches_bytes(b"notes/caf\xe9.tmp"));
        assert!(!f.matches_bytes(b"other/\xff.md"));
        assert!(!f.is_empty() && filter(&[], &[]).is_empty());
    }
}
