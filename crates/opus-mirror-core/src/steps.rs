//! The steps that `run` and the single commands share: each does its work and records its
//! outcome in the run history (what `status`, alerts and the health note read), so a snapshot
//! or a bundle is judged the same whichever command took it.

use anyhow::Result;

use crate::classify::exit_for;
use crate::config::Config;
use crate::exit::Exit;
use crate::human::human_bytes;
use crate::notify;
use crate::snapshot::{self, Outcome};
use crate::state::{self, Event};

/// One line for people about a snapshot outcome.
pub fn describe(o: &Outcome) -> String {
    let mut line = describe_change(o);
    if !o.own_excluded.is_empty() {
        line.push_str(&format!("; left out, inside the source: {}", o.own_excluded.join(", ")));
    }
    if !o.secrets_left_out.is_empty() {
        let n = o.secrets_left_out.len();
        let shown: Vec<&str> = o.secrets_left_out.iter().take(3).map(String::as_str).collect();
        let more = if n > 3 { format!(" and {} more", n - 3) } else { String::new() };
        line.push_str(&format!(
            "; left out {n} secret-looking file(s): {}{more} (keep_secrets = [\"PATTERN\"] keeps one, include_secrets = true all)",
            shown.join(", ")
        ));
    }
    line
}

fn describe_change(o: &Outcome) -> String {
    let secs = o.elapsed_ms as f64 / 1000.0;
    let size = format!("{} files, {}", o.counts.files, human_bytes(o.counts.bytes));
    match (&o.created, &o.previous) {
        (Some(id), _) => format!(
            "{}: snapshot {} ({size}; +{} ~{} -{}) in {secs:.2}s",
            o.source,
            crate::human::short_id(id),
            o.changes.added,
            o.changes.modified,
            o.changes.deleted
        ),
        (None, Some(prev)) => {
            format!(
                "{}: unchanged since snapshot {} ({size}) in {secs:.2}s",
                o.source,
                crate::human::short_id(prev)
            )
        }
        (None, None) => format!("{}: nothing to snapshot", o.source),
    }
}

/// Takes one source's snapshot and does everything that follows from its outcome:
/// warnings printed, the guard alarm saved and alerted, the history recorded.
pub fn snapshot_one(
    cfg: &Config,
    source: &crate::config::Source,
    now: chrono::DateTime<chrono::Utc>,
    progress: &dyn crate::progress::Report,
) -> Result<(Outcome, Exit)> {
    let o = match snapshot::take_with(cfg, source, now, progress) {
        Ok(o) => o,
        Err(e) => {
            let exit = exit_for(&e);
            state::record_or_warn(
                &cfg.state_dir,
                &Event::new(now, "snapshot", Some(&source.name), None, exit, format!("{e:#}")),
            );
            return Err(e);
        }
    };
    let mut exit = Exit::Ok;
    if !o.skipped.is_empty() {
        exit = Exit::Warnings;
        tracing::warn!("{}: {} item(s) could not be captured:", o.source, o.skipped.len());
        for sk in &o.skipped {
            tracing::warn!("  {}: {}", sk.path, sk.reason);
        }
    }
    if let Some(alarm) = &o.guard {
        exit = Exit::Warnings;
        state::save(&cfg.state_dir, &crate::guard::state_name(&source.name), alarm)?;
        let text = format!(
            "{}\nThe snapshot was recorded; the previous one ({}) is kept. Pruning of `{}` is suspended until `opus-mirror guard ack --source {}`.\nTo bring the previous state back: {}",
            alarm.reasons.join("; "),
            crate::human::short_id(&alarm.previous),
            source.name,
            source.name,
            alarm.restore_command
        );
        tracing::warn!("{}: GUARD: {text}", source.name);
        let a = notify::alert(
            notify::Level::Warning,
            format!("opus-mirror guard tripped for {}", source.name),
            text,
            Some(&source.name),
            exit,
            now,
        );
        notify::deliver(&cfg.notify, &a);
    }
    let mut ev = Event::new(now, "snapshot", Some(&source.name), None, exit, describe(&o));
    ev.data = serde_json::json!({"snapshot": o.snapshot, "created": o.created, "files": o.counts.files, "bytes": o.counts.bytes});
    // The snapshot is in the backup repo whatever becomes of its history line: a warning
    // (exit 3), not a failure that would hide a snapshot that landed.
    if !state::record_or_warn(&cfg.state_dir, &ev) {
        exit = exit.combine(Exit::Warnings);
    }
    Ok((o, exit))
}

/// Records a bundle attempt in the run history (what `status` reads).
pub fn record_bundle(
    cfg: &crate::config::Config,
    s: &crate::config::Source,
    t: &crate::config::Target,
    now: chrono::DateTime<chrono::Utc>,
    r: &Result<crate::bundle::create::Outcome>,
) {
    let ev = match r {
        Ok(o) => {
            let mut ev = crate::state::Event::new(
                now,
                "bundle",
                Some(&s.name),
                Some(&t.name),
                Exit::Ok,
                o.file.clone().or(o.reason.clone()).unwrap_or_default(),
            );
            ev.data = serde_json::json!({"file": o.file, "size": o.size, "kind": o.kind, "status": o.status, "current_in": o.current_in});
            ev
        }
        Err(e) => crate::state::Event::new(
            now,
            "bundle",
            Some(&s.name),
            Some(&t.name),
            exit_for(e),
            format!("{e:#}"),
        ),
    };
    state::record_or_warn(&cfg.state_dir, &ev);
}
