//! What `config check` shows: every effective setting with where it came from, credentials
//! masked — as text (`render_effective`), and as the JSON that `--json` prints for all but the
//! sources and `state_dir` (`effective_rest`).
//!
//! The text of the targets and of the single tables is built from that JSON, so both show
//! the same values, masked alike.

use std::path::PathBuf;

use super::mask::{mask, mask_endpoint, mask_url, mask_urls_in};
use super::types::{Channel, Config, TargetKind};

/// Every effective setting besides sources and `state_dir`, credentials masked: targets,
/// network, notify, guard and the timing keys — what `config check` shows and `--json` prints.
pub fn effective_rest(cfg: &Config) -> serde_json::Value {
    use serde_json::json;
    let dur = |d: chrono::Duration| crate::human::human_duration(d);
    let secs =
        |d: std::time::Duration| crate::human::human_duration(chrono::Duration::seconds(d.as_secs() as i64));
    let targets: Vec<_> = cfg
        .targets
        .iter()
        .map(|t| {
            let (kind, place) = match &t.kind {
                TargetKind::Dir { path, require_mount } => {
                    ("dir", json!({"path": path, "require_mount": require_mount}))
                }
                TargetKind::Rclone { remote, config } => {
                    ("rclone", json!({"remote": mask_url(remote), "rclone_config": config}))
                }
            };
            json!({"name": t.name, "kind": kind, "where": place,
                   "every": t.every.map(dur), "mode": if t.incremental { "incremental" } else { "full" },
                   "full_every": dur(t.full_every), "keep": t.keep, "sources": t.sources,
                   "encrypted": !t.age_recipients.is_empty(), "identity_file": t.identity_file})
        })
        .collect();
    let channel = |c: &Channel| {
        json!({"command": c.command.as_ref().and_then(|a| a.first()),
               "webhook": c.webhook.as_deref().map(mask_endpoint)})
    };
    let n = &cfg.notify;
    let argv =
        |a: &Option<Vec<String>>| a.as_ref().map(|a| a.iter().map(|x| mask_urls_in(x)).collect::<Vec<_>>());
    json!({
        "targets": targets,
        "network": {"transport": cfg.network.transport, "ssh_key": cfg.network.ssh_key,
                    "token_env": cfg.network.token_env, "timeout": secs(cfg.network.timeouts.idle),
                    "deadline": secs(cfg.network.timeouts.deadline)},
        "notify": {"healthcheck": n.healthcheck.as_deref().map(mask_endpoint),
                   "healthcheck_warnings": if n.healthcheck_warnings_fail { "fail" } else { "success" },
                   "on_failure": channel(&n.on_failure), "on_warning": channel(&n.on_warning),
                   "on_success": channel(&n.on_success)},
        "guard": cfg.guard,
        "status": {"max_age": dur(cfg.max_age)},
        "verify": {"grace": dur(cfg.verify_grace)},
        "hooks": {"before_run": argv(&cfg.hooks.before_run), "after_run": argv(&cfg.hooks.after_run),
                  "on_error": argv(&cfg.hooks.on_error),
                  "timeout": secs(cfg.hooks.timeout)},
        "run": {"check_every": dur(cfg.check_every), "drill_every": dur(cfg.drill_every),
                "read_data_within": dur(cfg.read_data_within), "repack_every": dur(cfg.repack_every)},
    })
}

/// Renders the effective configuration as TOML-like text, every setting followed by where it
/// came from (`# config.toml line 12`, `# .env line 2`, `# environment VAR`, `# default`),
/// like `kopia policy show`. Secrets are masked; an unset optional key is a `# KEY (not set)`.
pub fn render_effective(cfg: &Config) -> String {
    use serde_json::{json, Value};
    let mut out = Effective { cfg, text: String::new(), block: Vec::new() };
    out.text.push_str(&format!("# effective configuration from {}\n", cfg.file.display()));
    out.text.push_str("# after each setting: the line that set it, the environment, or the default\n");
    out.line("state_dir", "state_dir", json!(cfg.state_dir.display().to_string()));
    for (i, src) in cfg.sources.iter().enumerate() {
        out.section("[[source]]");
        let r = src.mirror_refs;
        let kinds: Vec<&str> = [(r.code, "code"), (r.snapshot, "snapshot"), (r.preserved, "preserved")]
            .into_iter()
            .filter_map(|(on, k)| on.then_some(k))
            .collect();
        let path = |p: &Option<PathBuf>| json!(p.as_ref().map(|p| p.display().to_string()));
        let keys = [
            ("name", json!(src.name)),
            ("path", json!(src.path.display().to_string())),
            ("exclude", json!(src.exclude)),
            ("include_secrets", json!(src.include_secrets)),
            ("keep_secrets", json!(src.keep_secrets)),
            ("snapshot_branch", json!(src.snapshot_branch)),
            ("mirror", json!(src.mirror.as_deref().map(mask_url))),
            ("mirror_refs", if src.mirror.is_some() { json!(kinds) } else { Value::Null }),
            ("recovery_doc", path(&src.recovery_doc)),
            ("health_note", path(&src.health_note)),
        ];
        out.table(&format!("source[{}]", i + 1), keys);
    }
    out.section("[mirror]");
    out.table("mirror", [("url", json!(cfg.mirror_url.as_deref().map(mask_url)))]);
    let rest = effective_rest(cfg);
    for (i, t) in cfg.targets.iter().enumerate() {
        out.section("[[target]]");
        let shown = &rest["targets"][i];
        let mut keys = vec![("name", json!(t.name)), ("kind", shown["kind"].clone())];
        keys.extend(shown["where"].as_object().into_iter().flatten().map(|(k, v)| (k.as_str(), v.clone())));
        for k in ["every", "mode", "full_every", "keep", "sources"] {
            keys.push((k, shown[k].clone()));
        }
        let recipients = (!t.age_recipients.is_empty()).then_some(&t.age_recipients);
        keys.push((
            "encrypt",
            json!({"age_recipients": recipients, "identity_file": shown["identity_file"]}),
        ));
        out.table(&format!("target[{}]", i + 1), keys);
    }
    for section in ["network", "notify", "guard", "status", "verify", "run", "hooks"] {
        out.section(&format!("[{section}]"));
        let keys = rest[section].as_object().into_iter().flatten().map(|(k, v)| (k.as_str(), v.clone()));
        out.table(section, keys.collect::<Vec<_>>());
    }
    out.flush();
    if !cfg.extra_env.is_empty() {
        out.text.push_str("\n# other variables from .env (passed to child processes, values masked)\n");
        for (k, v) in &cfg.extra_env {
            out.text.push_str(&format!("# {k} = {}\n", mask(v)));
        }
    }
    out.text
}

/// The text of `config check`, one table at a time so that the origins of a table line up.
struct Effective<'a> {
    cfg: &'a Config,
    text: String,
    /// The current table's lines: the setting, and its origin (None for a `(not set)` line).
    block: Vec<(String, Option<String>)>,
}

impl Effective<'_> {
    fn section(&mut self, header: &str) {
        self.flush();
        self.text.push_str(&format!("\n{header}\n"));
    }

    /// `key = value` lines of one table; a nested table (`keep`, `encrypt`, `on_failure`) becomes
    /// dotted keys, one per setting, so each has its own origin.
    fn table<'k>(&mut self, prefix: &str, keys: impl IntoIterator<Item = (&'k str, serde_json::Value)>) {
        for (k, v) in keys {
            match v {
                serde_json::Value::Object(inner) if inner.values().any(|x| !x.is_null()) => {
                    for (ik, iv) in inner.into_iter().filter(|(_, x)| !x.is_null()) {
                        self.line(&format!("{prefix}.{k}.{ik}"), &format!("{k}.{ik}"), iv);
                    }
                }
                other => self.line(&format!("{prefix}.{k}"), k, other),
            }
        }
    }

    fn line(&mut self, path: &str, key: &str, value: serde_json::Value) {
        if value.is_null() || value.as_object().is_some() {
            self.block.push((format!("# {key} (not set)"), None));
            return;
        }
        let origin = self.cfg.origins.get(path).map_or("default", String::as_str);
        self.block.push((format!("{key} = {}", toml_like(&value)), Some(self.short(origin))));
    }

    /// An origin as the text shows it: the config file and the `.env` beside it by name (the
    /// first line names the file); `--json` keeps the full paths.
    fn short(&self, origin: &str) -> String {
        let file = self.cfg.file.display().to_string();
        let dotenv = self.cfg.file.with_file_name(".env").display().to_string();
        let name = self.cfg.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(rest) = origin.strip_prefix(&file) {
            format!("{name}{rest}")
        } else if let Some(rest) = origin.strip_prefix(&dotenv) {
            format!(".env{rest}")
        } else {
            origin.to_string()
        }
    }

    /// Writes the table, its origins in one column (a line too long for it keeps its own).
    fn flush(&mut self) {
        const WIDEST: usize = 44;
        let width = self
            .block
            .iter()
            .filter(|(_, o)| o.is_some())
            .map(|(l, _)| l.chars().count())
            .filter(|n| *n <= WIDEST)
            .max()
            .unwrap_or(0);
        for (line, origin) in self.block.drain(..) {
            match origin {
                Some(o) => self.text.push_str(&format!("{line:<width$}  # {o}\n")),
                None => self.text.push_str(&format!("{line}\n")),
            }
        }
    }
}

/// A JSON value written as TOML would be: `["a", "b"]`, `"text"`, `20.0`.
fn toml_like(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Array(items) => {
            format!("[{}]", items.iter().map(toml_like).collect::<Vec<_>>().join(", "))
        }
        other => other.to_string(),
    }
}
