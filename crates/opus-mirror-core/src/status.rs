//! `status`: where each source stands, from the state dir and the backup repo only (no
//! network, so it is fast and works from cron): last snapshot, last successful run, newest
//! bundle per target, last check, last drill and its time-to-recover, preserved tips, open
//! warnings; and whether the newest good backup is older than the allowed age.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Config, Source};
use crate::exit::Exit;
use crate::git::BackupRepo;
use crate::state::{self, Event};

#[derive(Debug, Clone, Serialize)]
pub struct BundleState {
    pub target: String,
    pub file: Option<String>,
    pub time: Option<String>,
    pub size: Option<u64>,
    pub verified: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    pub source: String,
    pub last_snapshot: Option<String>,
    pub last_snapshot_id: Option<String>,
    pub last_success: Option<String>,
    pub bundles: Vec<BundleState>,
    pub last_check: Option<Event>,
    pub last_drill: Option<crate::drill::Report>,
    /// A target whose newest drill failed (ended in an error or found problems).
    pub drill_failed: Option<String>,
    pub preserved: usize,
    pub warnings: Vec<String>,
    /// The newest good copy that freshness is judged by: off this machine (a confirmed
    /// mirror push or a verified target bundle) when the source has a mirror or a target,
    /// else the local snapshot.
    pub newest_good_backup: Option<String>,
    /// What `newest_good_backup` is: "off-machine copy" or "local snapshot".
    pub judged_by: &'static str,
    /// The last confirmed push to the mirror.
    pub last_mirror_push: Option<String>,
    /// The local snapshot's age, beside the off-machine one (never negative).
    pub snapshot_age_hours: Option<f64>,
    /// Never negative.
    pub age_hours: Option<f64>,
    /// A backup is dated ahead of the clock.
    pub clock_behind: bool,
    pub stale: bool,
}

impl SourceStatus {
    /// Whether the newest check or drill failed: the backups themselves are in doubt, however
    /// fresh they are (a later ok one clears it).
    pub fn in_doubt(&self) -> bool {
        self.last_check.as_ref().is_some_and(|e| e.outcome == "failed")
            || self.last_drill.as_ref().is_some_and(|d| !d.ok())
            || self.drill_failed.is_some()
    }

    /// What `status` exits with for this source: 1 when the backups are in doubt (a failed
    /// check or drill), 8 when too old, 3 for any other warning (a failed snapshot, bundle or
    /// run, a tripped guard), else 0 — so `opus-mirror status || alert` catches each of them.
    pub fn exit(&self) -> Exit {
        let mut x = if self.warnings.is_empty() { Exit::Ok } else { Exit::Warnings };
        if self.stale {
            x = x.combine(Exit::Stale);
        }
        if self.in_doubt() {
            x = x.combine(Exit::Failed);
        }
        x
    }

    /// The one-word verdict of the text output.
    pub fn verdict(&self) -> &'static str {
        match self.exit() {
            Exit::Ok => "ok",
            Exit::Failed => "IN DOUBT",
            Exit::Stale => "STALE",
            _ => "ok, with warnings",
        }
    }
}

/// Hours with one decimal.
fn hours(d: chrono::Duration) -> f64 {
    (d.num_minutes() as f64 / 60.0 * 10.0).round() / 10.0
}

fn last(h: &[Event], f: impl Fn(&Event) -> bool) -> Option<&Event> {
    h.iter().rev().find(|e| f(e))
}

/// Gathers the status of one source.
pub fn of(
    cfg: &Config,
    s: &Source,
    history: &[Event],
    now: DateTime<Utc>,
    max_age: chrono::Duration,
) -> SourceStatus {
    let mine = |e: &Event| e.source.as_deref() == Some(s.name.as_str());
    let repo = BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &s.name)).ok();
    let snap = repo
        .as_ref()
        .and_then(|r| crate::snapshot::history::list_newest(r, &s.snapshot_branch, 1).ok())
        .and_then(|l| l.into_iter().next());
    let preserved =
        repo.as_ref().and_then(|r| crate::mirror::list_preserved(&r.repo).ok()).map(|l| l.len()).unwrap_or(0);
    let mut bundles = Vec::new();
    for t in cfg.targets.iter().filter(|t| t.takes(&s.name)) {
        let ev = last(history, |e| {
            mine(e)
                && e.step == "bundle"
                && e.target.as_deref() == Some(t.name.as_str())
                && e.outcome == "ok"
                && e.data.get("file").is_some_and(|f| !f.is_null())
        });
        bundles.push(BundleState {
            target: t.name.clone(),
            file: ev.and_then(|e| e.data["file"].as_str().map(str::to_string)),
            time: ev.map(|e| e.time.clone()),
            size: ev.and_then(|e| e.data["size"].as_u64()),
            verified: ev.is_some(),
        });
    }
    let last_check = last(history, |e| mine(e) && e.step == "check").cloned();
    // A drill that stopped on an error (a damaged bundle) writes no report, only its history
    // line: the newest drill of each target decides, so a good drill elsewhere clears nothing.
    let drill_failed = cfg
        .targets
        .iter()
        .filter(|t| t.takes(&s.name))
        .find(|t| {
            last(history, |e| mine(e) && e.step == "drill" && e.target.as_deref() == Some(t.name.as_str()))
                .is_some_and(|e| e.outcome == "failed")
        })
        .map(|t| t.name.clone());
    let last_drill = cfg
        .targets
        .iter()
        .filter_map(|t| {
            state::load::<crate::drill::Report>(&cfg.state_dir, &crate::drill::state_name(&s.name, &t.name))
        })
        .max_by(|a, b| a.time.cmp(&b.time));
    let mut warnings = Vec::new();
    if let Some(a) = state::load::<crate::guard::Alarm>(&cfg.state_dir, &crate::guard::state_name(&s.name)) {
        warnings.push(format!(
            "guard tripped {}: {}; pruning suspended (opus-mirror guard ack --source {})",
            a.time,
            a.reasons.join("; "),
            s.name
        ));
    }
    for step in ["snapshot", "mirror", "bundle", "check", "drill", "run"] {
        if let Some(e) = last(history, |e| mine(e) && e.step == step) {
            if e.outcome != "ok" {
                warnings.push(format!(
                    "last {step} {}: {} ({})",
                    e.outcome,
                    e.detail.lines().next().unwrap_or(""),
                    e.time
                ));
            }
        }
    }
    // A snapshot on this disk dies with it: when the source has somewhere else to go, only a
    // copy that got there counts as a good backup.
    let off_machine = s.mirror.is_some() || cfg.targets.iter().any(|t| t.takes(&s.name));
    let pushed = state::load::<crate::check::Pushed>(&cfg.state_dir, &crate::check::pushed_state(&s.name))
        .filter(|_| s.mirror.is_some())
        .and_then(|p| DateTime::parse_from_rfc3339(&p.time).ok())
        .map(|t| t.with_timezone(&Utc));
    // A bundle written, or a run that found the target's verified chain already holding every
    // current ref (nothing changed since): either way the target held a current copy then.
    let bundled = history
        .iter()
        .filter(|e| {
            let named = |k: &str| e.data.get(k).is_some_and(|f| !f.is_null());
            mine(e) && e.step == "bundle" && e.outcome == "ok" && (named("file") || named("current_in"))
        })
        .filter_map(|e| e.at());
    let good: Vec<DateTime<Utc>> = if off_machine {
        bundled.chain(pushed).collect()
    } else {
        warnings.push(format!(
            "no mirror or target is configured for `{}`: only this machine holds its backups; fix: add a [[target]] or a mirror",
            s.name
        ));
        snap.iter().map(|i| i.at).collect()
    };
    // A backup dated ahead of the clock proves nothing about now: the age counts from the
    // newest one not in the future, and is never negative.
    let (future, past): (Vec<_>, Vec<_>) = good.into_iter().partition(|t| crate::ranking::ahead_of(*t, now));
    let clock_behind = future.iter().max().copied();
    if let Some(f) = clock_behind {
        warnings.push(format!(
            "a backup is dated {}, ahead of the clock: clock behind? (or it was ahead then); fix: check `timedatectl`",
            f.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    let newest = past.into_iter().max().or(clock_behind);
    let age = newest.map(|t| (now - t).max(chrono::Duration::zero()));
    SourceStatus {
        source: s.name.clone(),
        last_snapshot: snap.as_ref().map(|i| i.time.clone()),
        last_snapshot_id: snap.as_ref().map(|i| i.short.clone()),
        last_success: last(history, |e| mine(e) && e.outcome == "ok")
            .map(|e| format!("{} {}", e.step, e.time)),
        bundles,
        last_check,
        last_drill,
        drill_failed,
        preserved,
        warnings,
        newest_good_backup: newest.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        judged_by: if off_machine { "off-machine copy" } else { "local snapshot" },
        last_mirror_push: pushed.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        snapshot_age_hours: snap.as_ref().map(|i| hours((now - i.at).max(chrono::Duration::zero()))),
        age_hours: age.map(hours),
        clock_behind: clock_behind.is_some(),
        stale: age.is_none_or(|a| a > max_age),
    }
}
