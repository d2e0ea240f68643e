//! Carries out a source's plan, one step at a time, in the plan's order. Each step gives one
//! result (an exit and a detail) that goes into the run's journal; steps whose outcome others
//! read (snapshot, mirror, bundle, check, drill, the run itself) are recorded in the history
//! with the event shapes `status`, alerts and the health note read.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::plan::{Due, Facts, Planned, SourcePlan, StepKind};
use super::{Journal, Trigger};
use crate::bundle::create;
use crate::classify::exit_for;
use crate::config::{Config, Source, Target, TargetKind};
use crate::exit::Exit;
use crate::git::BackupRepo;
use crate::state::{self, Event};

/// What the steps of one source learned that later steps depend on.
#[derive(Default)]
struct Done {
    /// (target, file) of each bundle written: check reads them back, prune never removes them.
    written: Vec<(String, String)>,
    /// Targets whose bundle step succeeded: only those are pruned.
    bundled_ok: Vec<String>,
    /// Targets that timed out or could not be reached: check and drill do not wait on them
    /// again in this run.
    unreachable: Vec<String>,
    /// Targets this run wrote to or removed from: the check lists them again (the others it
    /// takes from the plan's listing).
    changed: Vec<String>,
    /// The snapshot step failed: the vault's state now is not in the backup repo.
    snapshot_failed: bool,
}

/// What one step did: the result that goes into the journal.
pub struct StepResult {
    pub target: Option<String>,
    pub exit: Exit,
    pub detail: String,
}

/// Runs every step of `plan` for `s`, then records the source's run in the history.
pub fn source(
    cfg: &Config,
    s: &Source,
    plan: &SourcePlan,
    facts: &Facts,
    trigger: Trigger,
    now: DateTime<Utc>,
    journal: &mut Journal,
) {
    let mut done = Done::default();
    for p in &plan.steps {
        let t = Instant::now();
        if let Some(r) = step(cfg, s, p, facts, now, journal, &mut done) {
            journal.push(p.kind.name(), r.target.as_deref(), r.exit, r.detail, t);
        }
    }
    let exit = journal.out.iter().fold(Exit::Ok, |e, s| e.combine(s.exit));
    let detail: Vec<String> = journal
        .out
        .iter()
        .filter(|x| x.exit != Exit::Ok)
        .map(|x| format!("{}: {}", x.step, x.detail))
        .collect();
    let detail = if detail.is_empty() { "all steps ok".into() } else { detail.join("\n") };
    let mut ev = Event::new(now, "run", Some(&s.name), None, exit, detail);
    ev.data = serde_json::json!({"trigger": trigger});
    record(cfg, &ev);
}

/// One step; None when it had nothing to do (and says nothing).
fn step(
    cfg: &Config,
    s: &Source,
    p: &Planned,
    facts: &Facts,
    now: DateTime<Utc>,
    journal: &Journal,
    done: &mut Done,
) -> Option<StepResult> {
    let target = p.target.as_deref().and_then(|n| cfg.targets.iter().find(|t| t.name == n));
    let result = match (&p.kind, &p.due) {
        (StepKind::Clock, Due::Yes(w)) => (Exit::Warnings, w.clone()),
        (StepKind::Clock, _) => return None,
        (StepKind::Verify, _) => verify(cfg, s, now),
        (StepKind::Runbook, _) => runbook(cfg, s)?,
        (StepKind::Snapshot, _) => {
            journal.doing("snapshot", None);
            match crate::steps::snapshot_one(cfg, s, now, journal.progress) {
                Ok((o, e)) => (e, crate::steps::describe(&o)),
                Err(e) => {
                    done.snapshot_failed = true;
                    (exit_for(&e).combine(Exit::Failed), format!("{e:#}"))
                }
            }
        }
        (StepKind::Mirror, _) => {
            journal.doing("mirror", None);
            mirror(cfg, s, now)
        }
        (StepKind::Repack, Due::Yes(_)) => {
            journal.doing("repack", None);
            repack(cfg, s, now)?
        }
        (StepKind::Repack, _) => return None,
        (StepKind::Bundle { full_every }, due) => {
            let tg = target.expect("the plan names configured targets");
            journal.doing("bundle", Some(&tg.name));
            let known = match facts.bundles.get(&(s.name.clone(), tg.name.clone())) {
                Some(Ok(l)) => Some(create::Known { listed: &l.listed, ranks: &l.ranks }),
                _ => None,
            };
            let how =
                create::Decide { force: false, full_every: *full_every, vault_seen: !done.snapshot_failed };
            bundle(cfg, s, tg, due, how, known, now, done, journal.progress)
        }
        (StepKind::Prune, _) => {
            prune(cfg, s, target.expect("the plan names configured targets"), now, journal, done)?
        }
        (StepKind::Check { scope, offsite }, _) => {
            journal.doing("check", None);
            check(cfg, s, facts, now, done, *scope, *offsite)
        }
        (StepKind::Drill { .. }, _) => return drill(cfg, s, p, now, journal, done),
        (StepKind::Health, _) => health(cfg, s)?,
    };
    // Snapshot, mirror, bundle, check and drill record their own line (with their data);
    // the others are recorded here, so the history holds every step a run took.
    if matches!(p.kind, StepKind::Verify | StepKind::Runbook | StepKind::Prune | StepKind::Health) {
        let ev =
            Event::new(now, p.kind.name(), Some(&s.name), p.target.as_deref(), result.0, result.1.clone());
        record(cfg, &ev);
    }
    Some(StepResult { target: p.target.clone(), exit: result.0, detail: result.1 })
}

/// Records an event; a history that cannot be written is said, never silently dropped.
fn record(cfg: &Config, ev: &Event) {
    state::record_or_warn(&cfg.state_dir, ev);
}

/// Verify (read-only, so a dry run takes it too): at risk or offline is worth a warning after
/// a session, never a failure.
pub fn verify(cfg: &Config, s: &Source, now: DateTime<Utc>) -> (Exit, String) {
    match crate::verify::verify(&s.name, &s.path, &cfg.network, false) {
        Ok(r) if r.unreachable => (Exit::Warnings, "a remote could not be reached".into()),
        Ok(r) => {
            let (warn, note) = crate::verify::for_run(&r, now, cfg.verify_grace);
            let noted = if note.is_empty() { String::new() } else { format!("; {}", note.join("; ")) };
            if !warn.is_empty() {
                (Exit::Warnings, format!("at risk: {}{noted}", warn.join("; ")))
            } else if !note.is_empty() {
                (Exit::Ok, format!("safe for now: {}", note.join("; ")))
            } else {
                (Exit::Ok, "everything is pushed".into())
            }
        }
        Err(e) => (Exit::Warnings, format!("{e:#}")),
    }
}

/// Rewrites `path` with `text` when its content differs; None when it already holds it.
fn refresh(path: &std::path::Path, text: &str, make_parent: bool) -> Option<(Exit, String)> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return None;
    }
    let parent = match (make_parent, path.parent()) {
        (true, Some(p)) => std::fs::create_dir_all(p),
        _ => Ok(()),
    };
    Some(match parent.and_then(|()| crate::atomic::write_file(path, text.as_bytes())) {
        Ok(()) => (Exit::Ok, format!("updated {}", path.display())),
        Err(e) => (Exit::Warnings, format!("cannot write {}: {e}", path.display())),
    })
}

/// The runbook inside the vault, refreshed so every snapshot and bundle carries it.
fn runbook(cfg: &Config, s: &Source) -> Option<(Exit, String)> {
    let rel = s.recovery_doc.as_ref()?;
    refresh(&s.path.join(rel), &crate::recovery::render(cfg), false)
}

/// The health note, refreshed when its content changed (a run that changed nothing leaves it
/// as it is: see `health`).
fn health(cfg: &Config, s: &Source) -> Option<(Exit, String)> {
    let rel = s.health_note.as_ref()?;
    refresh(&s.path.join(rel), &crate::health::render(cfg, s), true)
}

/// Imports the code refs into the backup repo; pushes when a mirror is configured.
fn mirror(cfg: &Config, s: &Source, now: DateTime<Utc>) -> (Exit, String) {
    let r = BackupRepo::create(&BackupRepo::location(&cfg.state_dir, &s.name), &s.snapshot_branch, &s.path)
        .and_then(|b| {
            crate::mirror::run(&b, s, &cfg.network, now)
                .and_then(|r| crate::mirror::save_pushed(cfg, s, &b, &r, now).map(|_| r))
        });
    let (exit, detail) = match r {
        Ok(r) => (
            Exit::Ok,
            format!(
                "{} ref change(s), {} pushed{}",
                r.imported.len(),
                r.pushed.len(),
                if r.confirmed { ", confirmed" } else { "" }
            ),
        ),
        // An unreachable or timed-out mirror is exit 5, as for `opus-mirror mirror`.
        Err(e) => (exit_for(&e), format!("{e:#}")),
    };
    record(cfg, &Event::new(now, "mirror", Some(&s.name), None, exit, detail.clone()));
    (exit, detail)
}

/// Merges the backup repo's packs into one with deltas, and records what it did; None (said
/// only in the history, so it is not due again) when there was nothing to do.
fn repack(cfg: &Config, s: &Source, now: DateTime<Utc>) -> Option<(Exit, String)> {
    let at = BackupRepo::location(&cfg.state_dir, &s.name);
    let r = if at.exists() {
        BackupRepo::open(&at).and_then(|b| crate::snapshot::maintain::repack(&b))
    } else {
        Ok(Default::default())
    };
    let (exit, detail, data) = match r {
        Ok(m) if m.packs == 0 && m.waiting > 0 => (
            Exit::Ok,
            format!(
                "not yet: {} deltas would save {} (the packs are rewritten once that is a {}th of them)",
                m.waiting,
                crate::human::human_bytes(m.would_save),
                crate::snapshot::maintain::REPACK_SAVING_PARTS
            ),
            serde_json::json!(m),
        ),
        Ok(m) if m.packs == 0 => {
            (Exit::Ok, "nothing to do: no delta to make".to_string(), serde_json::json!(m))
        }
        Ok(m) => {
            let detail = format!(
                "{} packs merged into one: {} objects, {} new deltas, {} kept; {} → {}",
                m.packs,
                m.objects,
                m.deltas_made,
                m.deltas_kept,
                crate::human::human_bytes(m.bytes_before),
                crate::human::human_bytes(m.bytes_after)
            );
            (Exit::Ok, detail, serde_json::json!(m))
        }
        // Too little room is said, not a failure: the backups are untouched.
        Err(e) if e.downcast_ref::<crate::git::pack::merge::NoRoom>().is_some() => {
            (Exit::Warnings, format!("{e:#}"), serde_json::Value::Null)
        }
        Err(e) => (exit_for(&e).combine(Exit::Failed), format!("{e:#}"), serde_json::Value::Null),
    };
    let quiet = exit == Exit::Ok && data.get("packs").and_then(|p| p.as_u64()) == Some(0);
    let mut ev = Event::new(now, "repack", Some(&s.name), None, exit, detail.clone());
    ev.data = data;
    record(cfg, &ev);
    (!quiet).then_some((exit, detail))
}

/// Writes a bundle when `create` finds one due; a target the plan found blocked is reported
/// (and recorded) with the error it gave, without asking it again; `known` is what the plan
/// listed of the target.
#[allow(clippy::too_many_arguments)] // each is one fact the step needs; a struct would only rename them
fn bundle(
    cfg: &Config,
    s: &Source,
    tg: &Target,
    due: &Due,
    how: create::Decide,
    known: Option<create::Known>,
    now: DateTime<Utc>,
    done: &mut Done,
    progress: &dyn crate::progress::Report,
) -> (Exit, String) {
    if let Due::Blocked(b) = due {
        record(cfg, &Event::new(now, "bundle", Some(&s.name), Some(&tg.name), b.exit, b.detail.clone()));
        if b.exit == Exit::Unreachable {
            done.unreachable.push(tg.name.clone());
        }
        return (b.exit, b.detail.clone());
    }
    // The plan listed this target moments ago and nothing since has written to it (the run
    // lock is held): decide from that listing rather than list the drive once more.
    let r = create::create_from(cfg, s, tg, now, how, progress, known);
    crate::steps::record_bundle(cfg, s, tg, now, &r);
    match r {
        Ok(o) => {
            if !o.settled.is_empty() && !done.changed.contains(&tg.name) {
                // A pending bundle settled: the plan's listing no longer says what is there.
                done.changed.push(tg.name.clone());
            }
            let detail = match (&o.file, &o.reason) {
                (Some(f), _) => {
                    done.written.push((tg.name.clone(), f.clone()));
                    done.changed.push(tg.name.clone());
                    format!("{f} ({}, verified)", crate::human::human_bytes(o.size))
                }
                (None, Some(why)) => format!("skipped: {why}"),
                _ => String::new(),
            };
            done.bundled_ok.push(tg.name.clone());
            (Exit::Ok, detail)
        }
        Err(e) => {
            if exit_for(&e) == Exit::Unreachable {
                done.unreachable.push(tg.name.clone());
            }
            (exit_for(&e), format!("{e:#}"))
        }
    }
}

/// Applies the keep policy of a target whose bundle succeeded, unless a step failed.
fn prune(
    cfg: &Config,
    s: &Source,
    tg: &Target,
    now: DateTime<Utc>,
    journal: &Journal,
    done: &mut Done,
) -> Option<(Exit, String)> {
    if !done.bundled_ok.contains(&tg.name) {
        return None;
    }
    if journal.failed() {
        return Some((Exit::Ok, "not pruned: an earlier step failed".into()));
    }
    let mine: Vec<String> =
        done.written.iter().filter(|(w, _)| *w == tg.name).map(|(_, f)| f.clone()).collect();
    Some(match prune_target(cfg, s, tg, now, &mine) {
        Ok((exit, detail, removed)) => {
            if removed > 0 {
                done.changed.push(tg.name.clone());
            }
            (exit, detail)
        }
        Err(e) => (exit_for(&e).combine(Exit::Failed), format!("{e:#}")),
    })
}

/// Applies a target's keep policy for one source, never removing `protect` (what this run
/// wrote); returns what happened (a warning when a bundle is dated in the future) and how
/// many bundles it removed.
fn prune_target(
    cfg: &Config,
    s: &Source,
    tg: &Target,
    now: DateTime<Utc>,
    protect: &[String],
) -> anyhow::Result<(Exit, String, usize)> {
    match crate::prune::plan(cfg, s, tg, now, protect)? {
        crate::prune::Plan::Suspended(_) => {
            Ok((Exit::Ok, format!("suspended by the guard (opus-mirror guard ack --source {})", s.name), 0))
        }
        crate::prune::Plan::Decisions(p) => {
            let removed = crate::prune::apply(tg, &p.decisions)?;
            let mut lines = vec![format!("{removed} removed, {} kept", p.decisions.len() - removed)];
            lines.extend(p.warnings.iter().cloned());
            let exit = if p.warnings.is_empty() { Exit::Ok } else { Exit::Warnings };
            Ok((exit, lines.join("\n"), removed))
        }
    }
}

/// The check of every run: the backup repo and each reachable drive's bundles as far as
/// `scope` reads them (what is new since the last check, so it costs what the run added, and
/// what is due again), and with `offsite` the off-site targets (a rotating tenth, and any not
/// read within `run.read_data_within`). Recorded: `status` shows it, the plan dates the next
/// off-site check from it.
fn check(
    cfg: &Config,
    s: &Source,
    facts: &Facts,
    now: DateTime<Utc>,
    done: &Done,
    scope: crate::check::Scope,
    offsite: bool,
) -> (Exit, String) {
    let mut problems = Vec::new();
    // The ledger the plan read (nothing since has written it).
    let (mut ledger, warning) = match facts.ledgers.get(&s.name) {
        Some(read) => read.clone(),
        None => crate::check::verified::load(&cfg.state_dir, &s.name),
    };
    let mut warnings: Vec<String> = warning.into_iter().collect();
    let (mut read, mut skipped) = (0, 0);
    match BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &s.name))
        .and_then(|r| crate::check::backup_repo(&r, &s.name, &mut ledger, scope, now))
    {
        Ok(r) => {
            (read, skipped) = (read + r.read.len(), skipped + r.skipped.len());
            problems.extend(r.problems);
        }
        Err(e) => problems.push(format!("{e:#}")),
    }
    let mut unchecked = Vec::new();
    for tg in cfg.targets.iter().filter(|t| t.takes(&s.name)) {
        if done.unreachable.contains(&tg.name) {
            unchecked.push(format!("{}: not checked, unreachable in this run's bundle step", tg.name));
            continue;
        }
        let off_site = matches!(tg.kind, TargetKind::Rclone { .. });
        if !matches!(facts.usable.get(&tg.name), Some(Ok(()))) || (off_site && !offsite) {
            continue;
        }
        // The plan's listing, unless this run wrote to or removed from the target since.
        let listed = match facts.bundles.get(&(s.name.clone(), tg.name.clone())) {
            Some(Ok(l)) if !done.changed.contains(&tg.name) => Some(l.listed.as_slice()),
            _ => None,
        };
        let how = crate::check::BundleRead {
            read: crate::check::ReadData::Subset(10.0),
            scope,
            identity: None,
            listed,
        };
        match crate::check::bundles(cfg, s, tg, how, &mut ledger, now) {
            Ok(r) => {
                (read, skipped) = (read + r.read.len(), skipped + r.skipped.len());
                problems.extend(r.problems);
            }
            Err(e) => problems.push(format!("{}: {e:#}", tg.name)),
        }
    }
    if let Err(e) = crate::check::verified::save(&cfg.state_dir, &s.name, &ledger) {
        warnings.push(format!("cannot record what was verified: {e:#}"));
    }
    let e = match (problems.is_empty(), unchecked.is_empty(), warnings.is_empty()) {
        (false, _, _) => Exit::Failed,
        (true, false, _) => Exit::Unreachable,
        (true, true, false) => Exit::Warnings,
        (true, true, true) => Exit::Ok,
    };
    let summary = format!(
        "{read} pack(s) and bundle(s) read, {skipped} verified before and not read again{}",
        if offsite { "; off-site targets checked" } else { "" }
    );
    let detail = match e {
        Exit::Ok => summary,
        _ => problems
            .into_iter()
            .chain(unchecked)
            .chain(warnings)
            .chain([summary])
            .collect::<Vec<_>>()
            .join("\n"),
    };
    // A check that read nothing and found nothing is no news (a run that changed nothing
    // leaves the history, and so the health note, as they were).
    if read > 0 || offsite || e != Exit::Ok {
        let mut ev = Event::new(now, "check", Some(&s.name), None, e, detail.clone());
        ev.data = serde_json::json!({"offsite": offsite, "read": read, "skipped": skipped});
        record(cfg, &ev);
    }
    (e, detail)
}

/// The not-drilled warning for a target nobody can decrypt: a drill is never skipped without
/// a word.
pub(crate) fn unkeyed(enc: &str) -> String {
    format!(
        "not drilled: target `{enc}` is encrypted and no key is configured\n  fix: set encrypt.identity_file = \"PATH\" (an age identity kept off that drive) in its [[target]], or run `opus-mirror drill --target {enc} --identity PATH`"
    )
}

/// A test restore when due, from the first candidate not found unreachable in this run.
fn drill(
    cfg: &Config,
    s: &Source,
    p: &Planned,
    now: DateTime<Utc>,
    journal: &Journal,
    done: &Done,
) -> Option<StepResult> {
    let (StepKind::Drill { candidates, encrypted, runbook }, Due::Yes(_)) = (&p.kind, &p.due) else {
        return None;
    };
    let Some(name) = candidates.iter().find(|c| !done.unreachable.contains(c)) else {
        let enc = encrypted.as_deref()?;
        return Some(StepResult {
            target: Some(enc.to_string()),
            exit: Exit::Warnings,
            detail: unkeyed(enc),
        });
    };
    let tg = cfg.targets.iter().find(|t| t.name == *name).expect("the plan names configured targets");
    journal.doing("drill", Some(&tg.name));
    let (exit, detail) =
        match crate::drill::drill_and_record(cfg, s, tg, now, tg.identity_file.as_deref(), *runbook) {
            Ok(r) if r.ok() => {
                let mut detail = format!(
                    "{} files restored and identical; time-to-recover {:.1}s",
                    r.files,
                    r.ttr_ms as f64 / 1000.0
                );
                for w in &r.warnings {
                    detail.push_str(&format!("\nwarning: {w}"));
                }
                (if r.warnings.is_empty() { Exit::Ok } else { Exit::Warnings }, detail)
            }
            Ok(r) => (Exit::Failed, r.problems.join("\n")),
            Err(e) => (Exit::Failed, format!("{e:#}")),
        };
    Some(StepResult { target: Some(tg.name.clone()), exit, detail })
}
