//! `[[source]]` tables: the directories backed up, what of them is left out or kept, and the
//! mirror each one pushes to (never one mirror for two sources).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{valid_name, Lines};
use crate::config::error::ConfigError;
use crate::config::mask::mask_url;
use crate::config::paths::expand_path;
use crate::config::raw::{OneOf, RawSource, RefKind};
use crate::config::types::{MirrorRefs, Source};
use crate::config::DEFAULT_SNAPSHOT_BRANCH;

/// Validates the `i`th `[[source]]` (0-based); `seen` holds the names of those before it.
pub(super) fn validate(
    at: &Lines<'_>,
    i: usize,
    rs: &RawSource,
    seen: &mut HashSet<String>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Source, ConfigError> {
    let key = |k: &str| format!("source[{}].{k}", i + 1);
    let name = rs.name.get_ref().clone();
    if !valid_name(&name) {
        return Err(at.error(
            &rs.name,
            key("name"),
            format!("`{name}` is not a valid source name"),
            "use letters, digits, '.', '_' and '-' only, starting with a letter or digit",
        ));
    }
    if !seen.insert(name.clone()) {
        return Err(at.error(
            &rs.name,
            key("name"),
            format!("the source name `{name}` is used twice"),
            "give every [[source]] its own name",
        ));
    }
    let spath = expand_path(rs.path.get_ref(), base, env);
    match std::fs::metadata(&spath) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(at.error(
                &rs.path,
                key("path"),
                format!("{} is a file, not a directory", spath.display()),
                "point path at the directory to back up (a git work tree or a plain folder)",
            ))
        }
        Err(_) => {
            return Err(at.error(
                &rs.path,
                key("path"),
                format!("the directory {} does not exist", spath.display()),
                "correct the path, or create the directory",
            ))
        }
    }
    let branch = match &rs.snapshot_branch {
        Some(b) => {
            if !git2::Reference::is_valid_name(&format!("refs/heads/{}", b.get_ref())) {
                return Err(at.error(
                    b,
                    key("snapshot_branch"),
                    format!("`{}` is not a valid git branch name", b.get_ref()),
                    &format!("use a simple name such as `{DEFAULT_SNAPSHOT_BRANCH}`"),
                ));
            }
            b.get_ref().clone()
        }
        None => DEFAULT_SNAPSHOT_BRANCH.to_string(),
    };
    for (j, pat) in rs.exclude.iter().enumerate() {
        if let Err(e) = globset::Glob::new(pat.trim_start_matches('/').trim_end_matches('/')) {
            // The list's own span is not kept: the error points at the source's name.
            return Err(at.error(
                &rs.name,
                format!("{}[{}]", key("exclude"), j + 1),
                format!("`{pat}` is not a valid pattern: {}", e.kind()),
                "use gitignore-style globs such as `*.tmp`, `node_modules/`, `/build`",
            ));
        }
    }
    let keep_secrets = match &rs.keep_secrets {
        Some(list) => {
            for (j, pat) in list.get_ref().iter().enumerate() {
                if let Err(problem) = keep_matcher(&spath, std::slice::from_ref(pat)) {
                    return Err(at.error(
                        list,
                        format!("{}[{}]", key("keep_secrets"), j + 1),
                        problem,
                        "use gitignore-style globs relative to the source path, such as `*.key` or `deploy/.env.staging`",
                    ));
                }
            }
            list.get_ref().clone()
        }
        None => Vec::new(),
    };
    let mut mirror_refs = MirrorRefs::default();
    if let Some(list) = &rs.mirror_refs {
        let bad = |problem: String| {
            at.error(
                list,
                key("mirror_refs"),
                problem,
                "list some of \"code\", \"snapshot\", \"preserved\" (leave out mirror_refs for all)",
            )
        };
        mirror_refs = MirrorRefs { code: false, snapshot: false, preserved: false };
        for v in list.get_ref() {
            match v {
                OneOf::Known(RefKind::Code) => mirror_refs.code = true,
                OneOf::Known(RefKind::Snapshot) => mirror_refs.snapshot = true,
                OneOf::Known(RefKind::Preserved) => mirror_refs.preserved = true,
                OneOf::Unknown(other) => return Err(bad(format!("`{other}` is not a kind of ref"))),
            }
        }
        if list.get_ref().is_empty() {
            return Err(bad("an empty list would push nothing".into()));
        }
    }
    let health_note = match &rs.health_note {
        Some(h) => {
            let p = PathBuf::from(h.get_ref());
            let inside = !p.as_os_str().is_empty()
                && p.components().all(|c| matches!(c, std::path::Component::Normal(_)));
            if !inside {
                return Err(at.error(
                    h,
                    key("health_note"),
                    format!("`{}` is not a path inside the source", h.get_ref()),
                    "give a relative path such as \"00_system/backup-health.md\"",
                ));
            }
            Some(p)
        }
        None => None,
    };
    Ok(Source {
        name,
        path: spath,
        exclude: rs.exclude.clone(),
        include_secrets: rs.include_secrets,
        keep_secrets,
        snapshot_branch: branch,
        mirror: rs.mirror.as_ref().map(|m| m.get_ref().clone()),
        mirror_refs,
        recovery_doc: rs.recovery_doc.as_ref().map(PathBuf::from),
        health_note,
    })
}

/// Two sources must never push into one repository (their refs would overwrite each other).
pub(super) fn one_mirror_per_source(
    at: &Lines<'_>,
    sources: &[Source],
    raw: &[RawSource],
    global_mirror: Option<&Spanned<String>>,
) -> Result<(), ConfigError> {
    let mut urls: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, s) in sources.iter().enumerate() {
        let Some(url) = s.mirror.as_deref() else { continue };
        if let Some(other) = urls.insert(url, &s.name) {
            let line = raw[i].mirror.as_ref().or(global_mirror).map(|m| at.line(m));
            return Err(ConfigError {
                file: Some(at.path.to_path_buf()),
                line,
                key: Some("mirror".into()),
                problem: format!(
                    "sources `{other}` and `{}` would push into the same mirror {}",
                    s.name,
                    mask_url(url)
                ),
                fix: "give each [[source]] its own `mirror = \"URL\"` (one private repository per source)"
                    .into(),
            });
        }
    }
    Ok(())
}

/// The matcher of `keep_secrets` patterns (gitignore syntax, relative to the source `root`);
/// the error names the first pattern that is not valid. Also how the config validates them,
/// as strictly as `exclude`: the gitignore matcher takes `a[` as a literal, which is never
/// what a user meant.
pub fn keep_matcher(root: &Path, patterns: &[String]) -> Result<ignore::gitignore::Gitignore, String> {
    let mut b = ignore::gitignore::GitignoreBuilder::new(root);
    for pat in patterns {
        let bad = |e: &dyn std::fmt::Display| format!("`{pat}` is not a valid pattern: {e}");
        if pat.trim().is_empty() {
            return Err(bad(&"it is empty"));
        }
        globset::Glob::new(pat.trim_start_matches('!').trim_start_matches('/').trim_end_matches('/'))
            .map_err(|e| bad(&e.kind()))?;
        b.add_line(None, pat).map_err(|e| bad(&e))?;
    }
    b.build().map_err(|e| e.to_string())
}
