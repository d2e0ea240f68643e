//! `run --dry-run`: the plan as steps people read ("would …", "not due: …"), with nothing
//! carried out. Only read-only looks are taken: verify asks the remotes, and the snapshot is
//! built in memory against the backup repo, so a snapshot that would fail fails here too with
//! the same error and exit.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::plan::{Due, SourcePlan, StepKind};
use super::Journal;
use crate::classify::exit_for;
use crate::config::{Config, Source};
use crate::exit::Exit;

/// Puts what the plan would do for `s` into the journal.
pub fn source(cfg: &Config, s: &Source, plan: &SourcePlan, now: DateTime<Utc>, journal: &mut Journal) {
    for p in &plan.steps {
        let t = Instant::now();
        let (target, exit, detail) = match (&p.kind, &p.due) {
            (StepKind::Clock, Due::Yes(w)) => (None, Exit::Warnings, w.clone()),
            (StepKind::Verify, _) => {
                let (e, d) = super::execute::verify(cfg, s, now);
                (None, e, d)
            }
            (StepKind::Runbook, _) => match runbook(cfg, s) {
                Some(d) => (None, Exit::Ok, d),
                None => continue,
            },
            (StepKind::Snapshot, _) => {
                let (e, d) = snapshot(cfg, s);
                (None, e, d)
            }
            (StepKind::Mirror, _) => (None, Exit::Ok, mirror(s)),
            (StepKind::Bundle { .. }, Due::Blocked(b)) => {
                (p.target.clone(), Exit::Ok, format!("unavailable: {}", b.detail))
            }
            (StepKind::Bundle { .. }, Due::No(why)) => {
                (p.target.clone(), Exit::Ok, format!("not due: {why}"))
            }
            (StepKind::Bundle { .. }, Due::Yes(why)) => {
                (p.target.clone(), Exit::Ok, format!("would write a bundle if anything changed ({why})"))
            }
            (StepKind::Prune, Due::Yes(why)) => {
                (p.target.clone(), Exit::Ok, format!("would apply its keep policy ({why})"))
            }
            (StepKind::Repack, Due::Yes(why)) => (
                None,
                Exit::Ok,
                format!("would merge the backup repo's packs into one, making deltas ({why})"),
            ),
            (StepKind::Check { .. }, Due::Yes(why)) => (None, Exit::Ok, format!("would check {why}")),
            (StepKind::Drill { candidates, encrypted, .. }, due) => {
                match (candidates.first(), due, encrypted) {
                    (Some(tg), Due::Yes(why), _) => {
                        (Some(tg.clone()), Exit::Ok, format!("would run a test restore (due: {why})"))
                    }
                    (Some(tg), Due::No(why), _) => (Some(tg.clone()), Exit::Ok, format!("not due: {why}")),
                    (None, Due::Yes(_), Some(enc)) => {
                        (Some(enc.clone()), Exit::Warnings, super::execute::unkeyed(enc))
                    }
                    _ => continue,
                }
            }
            _ => continue,
        };
        journal.push(p.kind.name(), target.as_deref(), exit, detail, t);
    }
}

/// What the snapshot would do: the live tree built in memory and diffed against the last
/// snapshot. No backup repo yet is the first snapshot; any other error is the one `snapshot`
/// would stop with, reported as such, never as "ok".
fn snapshot(cfg: &Config, s: &Source) -> (Exit, String) {
    let probe = crate::snapshot::build_live(cfg, s).and_then(|(repo, built)| {
        let prev = repo
            .tip(&s.snapshot_branch)?
            .map(|c| repo.repo.find_commit(c).map(|c| c.tree_id()))
            .transpose()?;
        let changes = crate::snapshot::diff::diff(&repo.repo.odb()?, &built.trees, prev, Some(built.tree))?;
        Ok(crate::snapshot::diff::Summary::of(&changes))
    });
    match probe {
        Ok(sum) if sum == Default::default() => (Exit::Ok, "would do nothing: unchanged".into()),
        Ok(sum) => (Exit::Ok, format!("would snapshot +{} ~{} -{}", sum.added, sum.modified, sum.deleted)),
        Err(e) => {
            let fresh = !crate::git::BackupRepo::location(&cfg.state_dir, &s.name).exists();
            if fresh && std::fs::read_dir(&s.path).is_ok() {
                (Exit::Ok, "would take the first snapshot".into())
            } else {
                (exit_for(&e).combine(Exit::Failed), format!("would fail: {e:#}"))
            }
        }
    }
}

fn mirror(s: &Source) -> String {
    match &s.mirror {
        Some(u) => format!("would import refs and push to {}", crate::config::mask_url(u)),
        None => "would import refs into the backup repo".into(),
    }
}

/// The runbook would be rewritten only when its text changed.
fn runbook(cfg: &Config, s: &Source) -> Option<String> {
    let path = s.path.join(s.recovery_doc.as_ref()?);
    let text = crate::recovery::render(cfg);
    (std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()))
        .then(|| format!("would update {}", path.display()))
}
