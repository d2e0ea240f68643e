//! The file's shape: what serde reads from the TOML before anything is checked.
//!
//! Every table denies unknown keys, so a misspelt key is an error, never a setting silently
//! ignored. Values that validation must point at are `Spanned`. A value with a fixed set of
//! spellings is an enum behind [`OneOf`], which keeps a word it does not know so that
//! validation rejects it with its own message (those messages are pinned by tests). Text that
//! does not fit this shape becomes a [`ConfigError`] naming the line and the key ([`from_toml`]).

use std::path::Path;

use serde::de::value::{Error as WordError, StrDeserializer};
use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use super::spans::{key_at, line_of};
use super::types::{Guard, Transport};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) state_dir: Option<Spanned<String>>,
    pub(super) network: Option<RawNetwork>,
    pub(super) mirror: Option<RawMirror>,
    #[serde(default, rename = "source")]
    pub(super) sources: Vec<RawSource>,
    #[serde(default, rename = "target")]
    pub(super) targets: Vec<RawTarget>,
    pub(super) notify: Option<RawNotify>,
    pub(super) guard: Option<Guard>,
    pub(super) status: Option<RawStatus>,
    pub(super) run: Option<RawRun>,
    pub(super) verify: Option<RawVerify>,
    pub(super) hooks: Option<RawHooks>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHooks {
    pub(super) before_run: Option<Vec<String>>,
    pub(super) after_run: Option<Vec<String>>,
    pub(super) on_error: Option<Vec<String>>,
    pub(super) timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVerify {
    pub(super) grace: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRun {
    pub(super) check_every: Option<Spanned<String>>,
    pub(super) drill_every: Option<Spanned<String>>,
    pub(super) read_data_within: Option<Spanned<String>>,
    pub(super) repack_every: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub(super) healthcheck: Option<String>,
    pub(super) healthcheck_warnings: Option<Spanned<OneOf<HealthcheckWarnings>>>,
    pub(super) on_failure: Option<RawChannel>,
    pub(super) on_warning: Option<RawChannel>,
    pub(super) on_success: Option<RawChannel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChannel {
    pub(super) command: Option<Vec<String>>,
    pub(super) webhook: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatus {
    pub(super) max_age: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    pub(super) name: Spanned<String>,
    pub(super) kind: Spanned<OneOf<TargetKindName>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) remote: Option<Spanned<String>>,
    pub(super) rclone_config: Option<Spanned<String>>,
    pub(super) require_mount: Option<bool>,
    pub(super) every: Option<Spanned<String>>,
    pub(super) mode: Option<Spanned<OneOf<BundleMode>>>,
    pub(super) full_every: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) keep: crate::retention::KeepPolicy,
    pub(super) sources: Option<Vec<Spanned<String>>>,
    pub(super) encrypt: Option<RawEncrypt>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEncrypt {
    pub(super) age_recipients: Spanned<Vec<String>>,
    pub(super) identity_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) name: Spanned<String>,
    pub(super) path: Spanned<String>,
    #[serde(default)]
    pub(super) exclude: Vec<String>,
    #[serde(default)]
    pub(super) include_secrets: bool,
    pub(super) keep_secrets: Option<Spanned<Vec<String>>>,
    pub(super) snapshot_branch: Option<Spanned<String>>,
    /// This source's mirror remote URL.
    pub(super) mirror: Option<Spanned<String>>,
    pub(super) mirror_refs: Option<Spanned<Vec<OneOf<RefKind>>>>,
    pub(super) recovery_doc: Option<String>,
    pub(super) health_note: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub(super) transport: Option<Spanned<OneOf<Transport>>>,
    pub(super) ssh_key: Option<Spanned<String>>,
    pub(super) token_env: Option<String>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) deadline: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMirror {
    pub(super) url: Option<Spanned<String>>,
}

/// `[[target]] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum TargetKindName {
    Dir,
    Rclone,
}

/// `[[target]] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum BundleMode {
    Full,
    Incremental,
}

/// An entry of `[[source]] mirror_refs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RefKind {
    Code,
    Snapshot,
    Preserved,
}

/// `[notify] healthcheck_warnings`: what a job that ends with warnings pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum HealthcheckWarnings {
    Success,
    Fail,
}

/// A word from a fixed set: one of the variants of the enum `T`, or the word as written, which
/// validation rejects naming the key, the line and the choices. A value of another type (a
/// number where a word belongs) is the same type error as for any string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OneOf<T> {
    Known(T),
    Unknown(String),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for OneOf<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = String::deserialize(d)?;
        let as_variant: StrDeserializer<'_, WordError> = word.as_str().into_deserializer();
        Ok(match T::deserialize(as_variant) {
            Ok(known) => OneOf::Known(known),
            Err(_) => OneOf::Unknown(word),
        })
    }
}

/// Reads the file's shape from `text`; an error names the line and the key, and the fix.
pub(super) fn from_toml(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| toml_error(path, text, &e))
}

/// Turns a TOML/serde error into one that names line and key and suggests a fix.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e.span().map(|s| line_of(text, s.start));
    // A type error points at the value: name the key that holds it. Other errors (an unknown
    // or missing field) point at the key itself, whose text is its name.
    let key =
        e.span().and_then(|s| key_at(text, s.start)).filter(|_| e.message().starts_with("invalid type"));
    let key = key.or_else(|| {
        e.span().map(|s| text[s].trim().trim_matches('"').to_string()).filter(|k| {
            !k.is_empty()
                && k.len() < 60
                && k.chars().all(|c| c.is_ascii_alphanumeric() || "_-.*".contains(c))
        })
    });
    let msg = e.message().trim().to_string();
    let fix = if msg.starts_with("unknown field") {
        "remove or rename the key; `opus-mirror init` writes a commented example of every key"
    } else if msg.starts_with("missing field") {
        "add the key; every [[source]] needs `name` and `path`"
    } else if msg.starts_with("invalid type") {
        "give the value the type the key expects (strings in quotes, lists in [ ])"
    } else {
        "fix the TOML syntax at that line"
    };
    ConfigError { file: Some(path.to_path_buf()), line, key, problem: msg, fix: fix.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word<T: DeserializeOwned>(text: &str) -> Result<OneOf<T>, String> {
        #[derive(Deserialize)]
        #[serde(bound = "T: DeserializeOwned")]
        struct Doc<T> {
            v: OneOf<T>,
        }
        toml::from_str::<Doc<T>>(text).map(|d| d.v).map_err(|e| e.message().to_string())
    }

    #[test]
    fn a_word_is_a_variant_or_kept_as_written() {
        assert_eq!(word::<TargetKindName>("v = \"rclone\""), Ok(OneOf::Known(TargetKindName::Rclone)));
        assert_eq!(word::<Transport>("v = \"git-cli\""), Ok(OneOf::Known(Transport::GitCli)));
        assert_eq!(word::<BundleMode>("v = \"Full\""), Ok(OneOf::Unknown("Full".into())), "case counts");
        assert_eq!(word::<RefKind>("v = \"\""), Ok(OneOf::Unknown(String::new())));
        assert_eq!(
            word::<HealthcheckWarnings>("v = 42"),
            Err("invalid type: integer `42`, expected a string".into()),
            "another type is the type error of a string"
        );
    }
}
