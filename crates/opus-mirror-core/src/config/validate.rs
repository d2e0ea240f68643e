//! Validation: the raw shape of the file, layered with `.env` and the environment, becomes a
//! [`Config`] that every other module can trust — or the first problem, as a [`ConfigError`]
//! naming the file, the line and the key path (`source[2].path`, `target[1].keep.within`).
//!
//! Nothing past this point reads TOML or checks a setting again. `[[source]]` tables are
//! validated in [`source`], `[[target]]` tables in [`target`].

mod source;
mod target;

pub use source::keep_matcher;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use toml::Spanned;

use super::dotenv::Dotenv;
use super::error::ConfigError;
use super::origins;
use super::paths::{expand_path, xdg_dir};
use super::raw::{self, HealthcheckWarnings, OneOf, RawChannel, RawConfig, RawNetwork};
use super::spans::line_of;
use super::types::{url_host, Channel, Config, Hooks, Network, NotifyConfig, Timeouts};

/// Parses and validates config text. Separate from [`super::load()`] so tests can feed text
/// directly.
pub(super) fn parse(
    path: &Path,
    text: &str,
    dotenv: &Dotenv,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let raw: RawConfig = raw::from_toml(path, text)?;
    let at = Lines { path, text };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut origins = BTreeMap::new();
    let file_disp = path.display().to_string();

    // state_dir: file < .env < env.
    let mut state_dir = match &raw.state_dir {
        Some(s) => {
            origins.insert("state_dir".into(), format!("{file_disp} line {}", at.line(s)));
            expand_path(s.get_ref(), &base, env)
        }
        None => {
            origins.insert("state_dir".into(), "default ($XDG_DATA_HOME/opus-mirror)".into());
            xdg_dir(env, "XDG_DATA_HOME", ".local/share")?.join("opus-mirror")
        }
    };
    if let Some(e) = dotenv.entries.get("OPUS_MIRROR_STATE_DIR") {
        state_dir = expand_path(&e.value, &base, env);
        origins.insert("state_dir".into(), format!("{} line {}", dotenv.file.display(), e.line));
    }
    if let Some(v) = env("OPUS_MIRROR_STATE_DIR").filter(|s| !s.is_empty()) {
        state_dir = expand_path(&v, &base, env);
        origins.insert("state_dir".into(), "environment OPUS_MIRROR_STATE_DIR".into());
    }

    let mut sources = Vec::new();
    let mut seen = HashSet::new();
    for (i, rs) in raw.sources.iter().enumerate() {
        sources.push(source::validate(&at, i, rs, &mut seen, &base, env)?);
        origins.insert(format!("source[{}].path", i + 1), format!("{file_disp} line {}", at.line(&rs.path)));
    }

    // The global [mirror] url serves sources without their own; two sources must never push
    // into one repository (their refs would overwrite each other).
    let global_mirror = raw.mirror.as_ref().and_then(|m| m.url.as_ref());
    for s in sources.iter_mut().filter(|s| s.mirror.is_none()) {
        s.mirror = global_mirror.map(|u| u.get_ref().clone());
    }
    source::one_mirror_per_source(&at, &sources, &raw.sources, global_mirror)?;

    let mut network = match &raw.network {
        Some(n) => network(&at, n, &base, env)?,
        None => Network::default(),
    };
    network.token_hosts = sources.iter().filter_map(|s| s.mirror.as_deref()).filter_map(url_host).collect();
    let targets = target::targets(&at, &raw.targets, &sources, &base, env, network.timeouts)?;

    let extra_env = dotenv
        .entries
        .iter()
        .filter(|(k, _)| !k.starts_with("OPUS_MIRROR_"))
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    let channel = |c: &Option<RawChannel>| Channel {
        command: c.as_ref().and_then(|c| c.command.clone()).filter(|v| !v.is_empty()),
        webhook: c.as_ref().and_then(|c| c.webhook.clone()),
    };
    let notify = match &raw.notify {
        Some(n) => NotifyConfig {
            on_failure: channel(&n.on_failure),
            on_warning: channel(&n.on_warning),
            on_success: channel(&n.on_success),
            healthcheck: n.healthcheck.clone(),
            healthcheck_warnings_fail: match &n.healthcheck_warnings {
                None => false,
                Some(v) => match v.get_ref() {
                    OneOf::Known(HealthcheckWarnings::Success) => false,
                    OneOf::Known(HealthcheckWarnings::Fail) => true,
                    OneOf::Unknown(other) => {
                        return Err(at.error(
                            v,
                            "notify.healthcheck_warnings",
                            format!("`{other}` is neither \"success\" nor \"fail\""),
                            "write healthcheck_warnings = \"success\" (the default) or \"fail\"",
                        ))
                    }
                },
            },
        },
        None => NotifyConfig::default(),
    };
    let dur = |v: Option<&Spanned<String>>, key: &str| at.duration(v, key);
    let max_age = dur(raw.status.as_ref().and_then(|s| s.max_age.as_ref()), "status.max_age")?
        .unwrap_or(chrono::Duration::hours(26));
    let verify_grace = dur(raw.verify.as_ref().and_then(|v| v.grace.as_ref()), "verify.grace")?
        .unwrap_or(chrono::Duration::hours(24));
    let hooks = match &raw.hooks {
        Some(h) => Hooks {
            before_run: h.before_run.clone(),
            after_run: h.after_run.clone(),
            on_error: h.on_error.clone(),
            timeout: dur(h.timeout.as_ref(), "hooks.timeout")?
                .and_then(|d| d.to_std().ok())
                .unwrap_or(std::time::Duration::from_secs(300)),
        },
        None => Hooks::default(),
    };
    let guard = raw.guard.unwrap_or_default();
    let run = raw.run.as_ref();
    let check_every = dur(run.and_then(|r| r.check_every.as_ref()), "run.check_every")?
        .unwrap_or(chrono::Duration::days(7));
    let drill_every = dur(run.and_then(|r| r.drill_every.as_ref()), "run.drill_every")?
        .unwrap_or(chrono::Duration::days(7));
    let repack_every = dur(run.and_then(|r| r.repack_every.as_ref()), "run.repack_every")?
        .unwrap_or(chrono::Duration::days(7));
    let read_data_within = dur(run.and_then(|r| r.read_data_within.as_ref()), "run.read_data_within")?
        .unwrap_or(chrono::Duration::days(30));

    origins::complete(&mut origins, &file_disp, text, &raw.sources, global_mirror, &targets);
    Ok(Config {
        file: path.to_path_buf(),
        state_dir,
        origins,
        sources,
        mirror_url: global_mirror.map(|u| u.get_ref().clone()),
        targets,
        network,
        notify,
        guard,
        max_age,
        verify_grace,
        hooks,
        check_every,
        drill_every,
        repack_every,
        read_data_within,
        extra_env,
    })
}

/// The config file and its text: what an error needs to name the line of a value.
struct Lines<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Lines<'_> {
    /// The 1-based line of a value.
    fn line<T>(&self, v: &Spanned<T>) -> usize {
        line_of(self.text, v.span().start)
    }

    /// An error about the value `v` of `key`.
    fn error<T>(&self, v: &Spanned<T>, key: impl Into<String>, problem: String, fix: &str) -> ConfigError {
        ConfigError {
            file: Some(self.path.to_path_buf()),
            line: Some(self.line(v)),
            key: Some(key.into()),
            problem,
            fix: fix.into(),
        }
    }

    /// Parses an optional duration setting; an error names the file, line and key.
    fn duration(
        &self,
        v: Option<&Spanned<String>>,
        key: &str,
    ) -> Result<Option<chrono::Duration>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        crate::timeparse::parse_duration(v.get_ref())
            .map(Some)
            .map_err(|problem| self.error(v, key, problem, "write e.g. 12h, 1d, 7d or 2w"))
    }
}

/// `[network]`, but for `token_hosts` (the mirrors' hosts, known once sources are).
fn network(
    at: &Lines<'_>,
    n: &RawNetwork,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Network, ConfigError> {
    let mut network = Network { timeouts: timeouts(at, n)?, ..Network::default() };
    if let Some(t) = &n.transport {
        network.transport =
            match t.get_ref() {
                OneOf::Known(transport) => *transport,
                OneOf::Unknown(other) => return Err(at.error(
                    t,
                    "network.transport",
                    format!("`{other}` is not a transport"),
                    "use \"libgit2\" (built in) or \"git-cli\" (the system git, which reads ~/.ssh/config)",
                )),
            };
    }
    if let Some(k) = &n.ssh_key {
        let key = expand_path(k.get_ref(), base, env);
        if !key.is_file() {
            return Err(at.error(
                k,
                "network.ssh_key",
                format!("the key file {} does not exist", key.display()),
                "point ssh_key at a private key file, or remove it to use ssh-agent only",
            ));
        }
        network.ssh_key = Some(key);
    }
    network.token_env = n.token_env.clone();
    Ok(network)
}

/// `[network] timeout` and `deadline`: whole seconds, at least one, the deadline no shorter
/// than the timeout.
fn timeouts(at: &Lines<'_>, n: &RawNetwork) -> Result<Timeouts, ConfigError> {
    let mut t = Timeouts::default();
    let secs = |v: Option<&Spanned<String>>, key: &str| -> Result<Option<u64>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let Some(d) = at.duration(Some(v), key)? else { return Ok(None) };
        match u64::try_from(d.num_seconds()) {
            Ok(s) if s >= 1 => Ok(Some(s)),
            _ => Err(at.error(
                v,
                key,
                "a network timeout must be at least 1s".into(),
                "write e.g. 30s, 2min or 1h",
            )),
        }
    };
    if let Some(s) = secs(n.timeout.as_ref(), "network.timeout")? {
        t.idle = std::time::Duration::from_secs(s);
    }
    if let Some(s) = secs(n.deadline.as_ref(), "network.deadline")? {
        t.deadline = std::time::Duration::from_secs(s);
    }
    t.deadline = t.deadline.max(t.idle);
    Ok(t)
}

/// Source names become directory names and ref names: keep them boring.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
        && name.len() <= 64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::dotenv::DotenvEntry;
    use crate::config::render::render_effective;

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

    /// A word that a key with a fixed set of words does not know is refused with the key, the
    /// line of the word and what it is not (the raw enums keep the word for this message).
    #[test]
    fn an_unknown_word_is_named_with_its_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("v")).unwrap();
        let file = dir.path().join("c.toml");
        let home = |k: &str| (k == "HOME").then(|| "/h".to_string());
        let source = "[[source]]\nname = \"v\"\npath = \"v\"\n";
        let target = "[[target]]\nname = \"t\"\nkind = \"dir\"\npath = \"d\"\n";
        for (text, word, key, problem) in [
            (
                format!("{source}mirror_refs = [\"code\", \"vault\"]\n"),
                "vault",
                "source[1].mirror_refs",
                "`vault` is not a kind of ref",
            ),
            (
                format!("{source}{target}mode = \"Full\"\n"),
                "Full",
                "target[1].mode",
                "`Full` is not a bundle mode",
            ),
            (
                format!("{source}[[target]]\nname = \"t\"\nkind = \"tape\"\n"),
                "tape",
                "target[1].kind",
                "`tape` is not a target kind",
            ),
            (
                format!("[network]\ntransport = \"ssh\"\n{source}"),
                "ssh",
                "network.transport",
                "`ssh` is not a transport",
            ),
            (
                format!("[notify]\nhealthcheck_warnings = \"warn\"\n{source}"),
                "warn",
                "notify.healthcheck_warnings",
                "`warn` is neither \"success\" nor \"fail\"",
            ),
        ] {
            let e = parse(&file, &text, &Dotenv::default(), &home).expect_err(&text);
            let line = text.lines().position(|l| l.contains(word)).map(|i| i + 1);
            assert_eq!((e.key.as_deref(), e.problem.as_str(), e.line), (Some(key), problem, line), "{text}");
        }
    }
}
