//! Alerts: a command (details in environment variables), a webhook (POST JSON that ntfy,
//! Slack- and Discord-style incoming webhooks accept), and healthchecks.io-style pings
//! (`/start`, success, `/fail`) so a backup that silently stops running is noticed too.
//! A failed notification is reported and never replaces the run's own exit code; URLs are
//! shown without their secret parts.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::exit::Exit;

pub use crate::config::{mask_endpoint, Channel, NotifyConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Success,
    Warning,
    Failure,
}

impl Level {
    pub fn of(e: Exit) -> Level {
        match crate::state::outcome_word(e) {
            "ok" => Level::Success,
            "warning" => Level::Warning,
            _ => Level::Failure,
        }
    }
}

/// One alert.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub level: Level,
    pub title: String,
    pub text: String,
    pub source: Option<String>,
    pub host: String,
    pub time: String,
    pub exit: u8,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(true)
        .build()
        .into()
}

fn post_json(url: &str, body: &serde_json::Value) -> Result<(), String> {
    agent()
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .map(|_| ())
        .map_err(|e| format!("POST {} failed: {e}", mask_endpoint(url)))
}

fn ping(url: &str, body: &str) -> Result<(), String> {
    agent()
        .post(url)
        .send(body.as_bytes())
        .map(|_| ())
        .map_err(|e| format!("ping {} failed: {e}", mask_endpoint(url)))
}

fn run_command(argv: &[String], a: &Alert) -> Result<(), String> {
    let Some((prog, args)) = argv.split_first() else { return Err("empty notify command".into()) };
    let mut child = Command::new(prog)
        .args(args)
        .env(
            "OPUS_MIRROR_ALERT_LEVEL",
            serde_json::to_value(a.level)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        )
        .env("OPUS_MIRROR_ALERT_TITLE", &a.title)
        .env("OPUS_MIRROR_ALERT_TEXT", &a.text)
        .env("OPUS_MIRROR_ALERT_SOURCE", a.source.as_deref().unwrap_or(""))
        .env("OPUS_MIRROR_ALERT_EXIT", a.exit.to_string())
        .env("OPUS_MIRROR_ALERT_HOST", &a.host)
        .env("OPUS_MIRROR_ALERT_TIME", &a.time)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run notify command `{prog}`: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(format!("notify command `{prog}` exited with {st}")),
            Ok(None) if start.elapsed() > Duration::from_secs(30) => {
                let _ = child.kill();
                return Err(format!("notify command `{prog}` took more than 30 s and was stopped"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("notify command `{prog}`: {e}")),
        }
    }
}

impl NotifyConfig {
    fn channel(&self, l: Level) -> &Channel {
        match l {
            Level::Success => &self.on_success,
            Level::Warning => &self.on_warning,
            Level::Failure => &self.on_failure,
        }
    }

    /// Tells the healthcheck a job started. Problems are returned, not raised. Jobs use
    /// [`Job`], which never leaves a start open.
    pub fn start(&self) -> Vec<String> {
        match &self.healthcheck {
            Some(hc) => ping(&format!("{}/start", hc.trim_end_matches('/')), "").err().into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// Pings the healthcheck with a job's outcome: success, or `/fail` for a failure (and for
    /// warnings when `healthcheck_warnings = "fail"`).
    pub fn finish(&self, exit: Exit, text: &str) -> Vec<String> {
        let Some(hc) = &self.healthcheck else { return Vec::new() };
        let fail = match Level::of(exit) {
            Level::Success => false,
            Level::Warning => self.healthcheck_warnings_fail,
            Level::Failure => true,
        };
        let base = hc.trim_end_matches('/');
        let url = if fail { format!("{base}/fail") } else { base.to_string() };
        ping(&url, text).err().into_iter().collect()
    }

    /// Sends an alert through its level's channel (command, webhook). The healthcheck is
    /// not an alert channel: it follows jobs ([`Job`]). Returns the problems met (for the
    /// caller to print); never fails.
    pub fn send(&self, a: &Alert) -> Vec<String> {
        let mut problems = Vec::new();
        let ch = self.channel(a.level);
        if let Some(argv) = &ch.command {
            problems.extend(run_command(argv, a).err());
        }
        if let Some(url) = &ch.webhook {
            let body = serde_json::json!({
                "text": format!("{}\n{}", a.title, a.text),
                "content": format!("{}\n{}", a.title, a.text),
                "title": a.title, "message": a.text, "level": a.level, "source": a.source,
                "host": a.host, "time": a.time, "exit": a.exit,
            });
            problems.extend(post_json(url, &body).err());
        }
        problems
    }

    /// Whether any channel is configured at all.
    pub fn is_empty(&self) -> bool {
        self == &NotifyConfig::default()
    }
}

/// Builds an alert stamped with this host and `now`.
pub fn alert(
    level: Level,
    title: impl Into<String>,
    text: impl Into<String>,
    source: Option<&str>,
    exit: Exit,
    now: chrono::DateTime<chrono::Utc>,
) -> Alert {
    Alert {
        level,
        title: title.into(),
        text: text.into(),
        source: source.map(str::to_string),
        host: crate::git::objects::host(),
        time: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        exit: exit.code(),
    }
}

/// One job the healthcheck watches (`run`, `check`, `drill`): `/start` when it begins, then
/// exactly one of success or `/fail` — [`Job::finish`] with the outcome, or, when the job ends
/// by an error before that, `/fail` from `Drop`. A start is never left open (a healthcheck
/// left waiting reports the job down).
pub struct Job<'a> {
    cfg: &'a NotifyConfig,
    open: bool,
}

impl<'a> Job<'a> {
    /// Pings `/start` (problems logged as warnings).
    pub fn start(cfg: &'a NotifyConfig) -> Job<'a> {
        for p in cfg.start() {
            tracing::warn!("notification: {p}");
        }
        Job { cfg, open: cfg.healthcheck.is_some() }
    }

    /// Pings the outcome.
    pub fn finish(mut self, exit: Exit, text: &str) {
        self.open = false;
        for p in self.cfg.finish(exit, text) {
            tracing::warn!("notification: {p}");
        }
    }
}

impl Drop for Job<'_> {
    fn drop(&mut self) {
        if self.open {
            for p in self.cfg.finish(Exit::Failed, "opus-mirror ended with an error before reporting") {
                tracing::warn!("notification: {p}");
            }
        }
    }
}

/// Sends and logs any problem as a warning (the run's exit code is not touched).
pub fn deliver(cfg: &NotifyConfig, a: &Alert) {
    for p in cfg.send(a) {
        tracing::warn!("notification: {p}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_masked() {
        assert_eq!(
            mask_endpoint("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/****"
        );
        assert_eq!(mask_endpoint("https://hc-ping.com/0b1c-uuid"), "https://hc-ping.com/****");
        assert_eq!(mask_endpoint("http://user:pw@127.0.0.1:8080/x?token=1"), "http://127.0.0.1:8080/****");
    }
}
