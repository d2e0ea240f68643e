//! `[[target]]` tables: where bundles go, how often, how long they are kept, encrypted to whom.

use std::path::Path;

use super::{valid_name, Lines};
use crate::config::error::ConfigError;
use crate::config::paths::expand_path;
use crate::config::raw::{BundleMode, OneOf, RawTarget, TargetKindName};
use crate::config::types::{Source, Target, TargetKind, Timeouts};

/// Validates the `[[target]]` tables against the sources already validated.
pub(super) fn targets(
    at: &Lines<'_>,
    raw: &[RawTarget],
    sources: &[Source],
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    timeouts: Timeouts,
) -> Result<Vec<Target>, ConfigError> {
    let mut out: Vec<Target> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let key = |k: &str| format!("target[{}].{k}", i + 1);
        let name = t.name.get_ref().clone();
        if !valid_name(&name) {
            return Err(at.error(
                &t.name,
                key("name"),
                format!("`{name}` is not a valid target name"),
                "use letters, digits, '.', '_' and '-' only",
            ));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(at.error(
                &t.name,
                key("name"),
                format!("the target name `{name}` is used twice"),
                "give every [[target]] its own name",
            ));
        }
        let kind = match t.kind.get_ref() {
            OneOf::Known(TargetKindName::Dir) => {
                let Some(p) = &t.path else {
                    return Err(at.error(
                        &t.kind,
                        key("path"),
                        "a dir target needs `path`".into(),
                        "add path = \"/media/you/drive/opus-mirror\"",
                    ));
                };
                let dir = expand_path(p.get_ref(), base, env);
                let default_guard = ["/media", "/mnt", "/run/media"].iter().any(|m| dir.starts_with(m));
                TargetKind::Dir { path: dir, require_mount: t.require_mount.unwrap_or(default_guard) }
            }
            OneOf::Known(TargetKindName::Rclone) => {
                let Some(r) = &t.remote else {
                    return Err(at.error(
                        &t.kind,
                        key("remote"),
                        "an rclone target needs `remote`".into(),
                        "add remote = \"b2:bucket/opus\" (a remote from `rclone config`)",
                    ));
                };
                if !r.get_ref().contains(':') {
                    return Err(at.error(
                        r,
                        key("remote"),
                        format!("`{}` is not an rclone remote path", r.get_ref()),
                        "write REMOTE:path, e.g. b2:bucket/opus",
                    ));
                }
                let config = t.rclone_config.as_ref().map(|c| expand_path(c.get_ref(), base, env));
                TargetKind::Rclone { remote: r.get_ref().trim_end_matches('/').to_string(), config }
            }
            OneOf::Unknown(other) => {
                return Err(at.error(
                    &t.kind,
                    key("kind"),
                    format!("`{other}` is not a target kind"),
                    "use \"dir\" (a drive) or \"rclone\" (off-site)",
                ));
            }
        };
        let every = at.duration(t.every.as_ref(), &key("every"))?;
        let full_every =
            at.duration(t.full_every.as_ref(), &key("full_every"))?.unwrap_or(chrono::Duration::days(7));
        let incremental = match &t.mode {
            None => false,
            Some(m) => match m.get_ref() {
                OneOf::Known(BundleMode::Full) => false,
                OneOf::Known(BundleMode::Incremental) => true,
                OneOf::Unknown(other) => {
                    return Err(at.error(
                        m,
                        key("mode"),
                        format!("`{other}` is not a bundle mode"),
                        "use \"full\" or \"incremental\"",
                    ));
                }
            },
        };
        if let Some(w) = &t.keep.within {
            // `keep` is read without spans: the error points at the target's name.
            crate::timeparse::parse_duration(w)
                .map_err(|e| at.error(&t.name, key("keep.within"), e, "write e.g. 14d or 2w"))?;
        }
        let mut only = None;
        if let Some(list) = &t.sources {
            for s in list {
                if !sources.iter().any(|x| &x.name == s.get_ref()) {
                    return Err(at.error(
                        s,
                        key("sources"),
                        format!("no source named `{}`", s.get_ref()),
                        "list names of [[source]] tables",
                    ));
                }
            }
            only = Some(list.iter().map(|s| s.get_ref().clone()).collect());
        }
        let mut age_recipients = Vec::new();
        if let Some(e) = &t.encrypt {
            for r in e.age_recipients.get_ref() {
                if r.parse::<age::x25519::Recipient>().is_err() {
                    return Err(at.error(
                        &e.age_recipients,
                        key("encrypt.age_recipients"),
                        format!("`{r}` is not an age recipient"),
                        "use public keys from `age-keygen` (they start with age1)",
                    ));
                }
                age_recipients.push(r.clone());
            }
            if age_recipients.is_empty() {
                return Err(at.error(
                    &e.age_recipients,
                    key("encrypt.age_recipients"),
                    "no recipient given".into(),
                    "list at least one age1... public key, or remove encrypt",
                ));
            }
        }
        let identity_file =
            t.encrypt.as_ref().and_then(|e| e.identity_file.as_deref()).map(|p| expand_path(p, base, env));
        out.push(Target {
            name,
            kind,
            every,
            timeouts,
            incremental,
            full_every,
            keep: t.keep.clone(),
            sources: only,
            age_recipients,
            identity_file,
        });
    }
    Ok(out)
}
