//! `run`: everything, in order, for every source: verify → snapshot → mirror → bundle (each
//! target when due) → prune → check → drill (when due) → notify. A step that fails does not
//! stop independent later steps (a dead cloud target must not stop the drive bundle), but
//! nothing is pruned after a failure. One report and one exit code at the end.

use std::time::Instant;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::bundle::create;
use crate::classify::exit_for;
use crate::config::{Config, Source, TargetKind};
use crate::exit::Exit;
use crate::git::BackupRepo;
use crate::notify;
use crate::runhooks;
use crate::state::{self, Event};

/// What started the run (recorded, and shown in alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Hook,
    Timer,
    Manual,
}

/// One step of one source.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub source: String,
    pub step: &'static str,
    pub target: Option<String>,
    pub outcome: &'static str,
    #[serde(skip)]
    pub exit: Exit,
    pub detail: String,
    pub ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub trigger: Trigger,
    pub dry_run: bool,
    pub exit: Exit,
    pub steps: Vec<Step>,
    pub elapsed_ms: u64,
}

struct Steps<'a> {
    source: &'a str,
    out: Vec<Step>,
    /// Where each finished step is shown as it happens (a terminal), or nowhere.
    progress: &'a dyn crate::progress::Report,
}

impl Step {
    /// The step as one line for people (its first detail line).
    pub fn line(&self) -> String {
        let target = self.target.as_deref().map(|t| format!(" → {t}")).unwrap_or_default();
        let mark = match self.outcome {
            "ok" => "ok  ",
            "warning" => "WARN",
            _ => "FAIL",
        };
        format!(
            "{mark} {:<10} {:<9}{:<10} {:>6} ms  {}",
            self.source,
            self.step,
            target,
            self.ms,
            self.detail.lines().next().unwrap_or("")
        )
    }
}

impl Steps<'_> {
    /// Says what starts now (the spinner's message on a terminal).
    fn doing(&self, step: &str, target: Option<&str>) {
        let to = target.map(|t| format!(" → {t}")).unwrap_or_default();
        self.progress.doing(&format!("{}: {step}{to}", self.source));
    }

    fn push(
        &mut self,
        step: &'static str,
        target: Option<&str>,
        exit: Exit,
        detail: impl Into<String>,
        started: Instant,
    ) -> Exit {
        let step = Step {
            source: self.source.to_string(),
            step,
            target: target.map(str::to_string),
            outcome: state::outcome_word(exit),
            exit,
            detail: detail.into(),
            ms: started.elapsed().as_millis() as u64,
        };
        let mut block = step.line();
        for l in step.detail.lines().skip(1) {
            block.push_str(&format!("\n{:>44}{l}", ""));
        }
        self.progress.step(&block);
        self.out.push(step);
        exit
    }

    fn failed(&self) -> bool {
        self.out.iter().any(|s| s.exit == Exit::Failed)
    }
}

fn last_event_age(
    history: &[Event],
    source: &str,
    step: &str,
    now: DateTime<Utc>,
) -> Option<chrono::Duration> {
    history
        .iter()
        .rev()
        .find(|e| e.source.as_deref() == Some(source) && e.step == step && e.outcome == "ok")
        .and_then(|e| e.at())
        // Recorded in the future, the clock was ahead then: count the step as never done
        // (due now), not as done a moment from now (put off until the clock catches up).
        .filter(|t| *t <= now)
        .map(|t| now - t)
}

/// Whether the last thing recorded for `source` is dated after `now`: the clock jumped back
/// (or was ahead then). Bundles are ranked by content, so nothing is lost; the user should
/// still know their clock is not to be trusted.
fn clock_jumped_back(history: &[Event], source: &str, now: DateTime<Utc>) -> Option<String> {
    let last = history.iter().rev().find(|e| e.source.as_deref() == Some(source))?;
    let at = last.at().filter(|t| crate::ranking::ahead_of(*t, now))?;
    Some(format!(
        "the last {} was recorded at {}, after now ({}): the clock jumped back, or was ahead then; \
         fix: check the clock (`timedatectl`); backups are ordered by content, so none is lost",
        last.step,
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ))
}

/// Runs every step for `sources`. The caller holds the run lock.
pub fn run(
    cfg: &Config,
    sources: &[&Source],
    trigger: Trigger,
    dry_run: bool,
    now: DateTime<Utc>,
    progress: &dyn crate::progress::Report,
) -> Result<Report> {
    let started = Instant::now();
    let job = (!dry_run).then(|| notify::Job::start(&cfg.notify));
    let history = state::history(&cfg.state_dir).unwrap_or_default();
    let mut steps = Vec::new();
    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    let mut vars = vec![
        ("OPUS_MIRROR_RUN_TRIGGER", format!("{trigger:?}").to_lowercase()),
        ("OPUS_MIRROR_RUN_SOURCES", names.join(" ")),
    ];
    // A failing before_run is a gate: nothing is backed up, and the run fails.
    let gated =
        !dry_run && hook_step(cfg, runhooks::Phase::BeforeRun, &vars, &mut steps) == Some(Exit::Failed);
    for s in sources.iter().filter(|_| !gated) {
        let mut st = Steps { source: &s.name, out: Vec::new(), progress };
        source_steps(cfg, s, &history, dry_run, now, &mut st);
        if !dry_run {
            write_health(cfg, s, &mut st);
            let exit = st.out.iter().fold(Exit::Ok, |e, s| e.combine(s.exit));
            let detail: Vec<String> = st
                .out
                .iter()
                .filter(|x| x.exit != Exit::Ok)
                .map(|x| format!("{}: {}", x.step, x.detail))
                .collect();
            let mut ev = Event::new(
                now,
                "run",
                Some(&s.name),
                None,
                exit,
                if detail.is_empty() { "all steps ok".into() } else { detail.join("\n") },
            );
            ev.data = serde_json::json!({"trigger": trigger});
            let _ = state::record(&cfg.state_dir, &ev);
        }
        steps.extend(st.out);
    }
    let mut exit = steps.iter().fold(Exit::Ok, |e, s| e.combine(s.exit));
    if !dry_run {
        let detail: Vec<String> = steps
            .iter()
            .filter(|x| x.exit != Exit::Ok)
            .map(|x| format!("{} {}: {}", x.source, x.step, x.detail))
            .collect();
        vars.push(("OPUS_MIRROR_RUN_DETAIL", detail.join("\n")));
        if notify::Level::of(exit) != notify::Level::Failure {
            vars.push(("OPUS_MIRROR_RUN_EXIT", exit.code().to_string()));
            vars.push(("OPUS_MIRROR_RUN_OUTCOME", state::outcome_word(exit).to_string()));
            hook_step(cfg, runhooks::Phase::AfterRun, &vars, &mut steps);
            exit = steps.iter().fold(Exit::Ok, |e, s| e.combine(s.exit));
            vars.truncate(vars.len() - 2);
        }
        if notify::Level::of(exit) == notify::Level::Failure {
            vars.push(("OPUS_MIRROR_RUN_EXIT", exit.code().to_string()));
            vars.push(("OPUS_MIRROR_RUN_OUTCOME", state::outcome_word(exit).to_string()));
            hook_step(cfg, runhooks::Phase::OnError, &vars, &mut steps);
        }
    }
    let report = Report { trigger, dry_run, exit, steps, elapsed_ms: started.elapsed().as_millis() as u64 };
    if !dry_run {
        let level = notify::Level::of(exit);
        let lines: Vec<String> = report
            .steps
            .iter()
            .filter(|s| s.exit != Exit::Ok || level == notify::Level::Success)
            .map(|s| {
                format!(
                    "{} {}{}: {} {}",
                    s.source,
                    s.step,
                    s.target.as_deref().map(|t| format!(" → {t}")).unwrap_or_default(),
                    s.outcome,
                    s.detail.lines().next().unwrap_or("")
                )
            })
            .collect();
        let title = format!("opus-mirror run ({:?}): {}", trigger, state::outcome_word(exit)).to_lowercase();
        let text = lines.join("\n");
        notify::deliver(&cfg.notify, &notify::alert(level, title.clone(), text.clone(), None, exit, now));
        if let Some(job) = job {
            job.finish(exit, &format!("{title}\n{text}"));
        }
    }
    Ok(report)
}

/// Refreshes the source's health note when its content changed (a run that changed nothing
/// leaves it as it is: see `health`).
fn write_health(cfg: &Config, s: &Source, st: &mut Steps) {
    let Some(rel) = &s.health_note else { return };
    let t = Instant::now();
    let path = s.path.join(rel);
    let text = crate::health::render(cfg, s);
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return;
    }
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| crate::atomic::write_file(&path, text.as_bytes()));
    match written {
        Ok(()) => st.push("health", None, Exit::Ok, format!("updated {}", path.display()), t),
        Err(e) => st.push("health", None, Exit::Warnings, format!("cannot write {}: {e}", path.display()), t),
    };
}

/// Runs one `[hooks]` command, recorded as a step of its own (source `*`); None when none
/// is configured. A failing hook is a failed step.
fn hook_step(
    cfg: &Config,
    phase: runhooks::Phase,
    vars: &[(&str, String)],
    steps: &mut Vec<Step>,
) -> Option<Exit> {
    let t = Instant::now();
    let (exit, detail) = match cfg.hooks.call(phase, vars)? {
        Ok(()) => (Exit::Ok, "ran".to_string()),
        Err(e) => (Exit::Failed, e),
    };
    steps.push(Step {
        source: "*".into(),
        step: match phase {
            runhooks::Phase::BeforeRun => "before_run",
            runhooks::Phase::AfterRun => "after_run",
            runhooks::Phase::OnError => "on_error",
        },
        target: None,
        outcome: state::outcome_word(exit),
        exit,
        detail,
        ms: t.elapsed().as_millis() as u64,
    });
    Some(exit)
}

fn source_steps(
    cfg: &Config,
    s: &Source,
    history: &[Event],
    dry_run: bool,
    now: DateTime<Utc>,
    st: &mut Steps,
) {
    let is_git = git2::Repository::open(&s.path).is_ok();

    // A clock that jumped back: said once, on the first run after the jump.
    if let Some(w) = clock_jumped_back(history, &s.name, now) {
        st.push("clock", None, Exit::Warnings, w, Instant::now());
    }

    // verify: at risk or offline is worth a warning after a session, never a failure.
    if is_git {
        let t = Instant::now();
        match crate::verify::verify(&s.name, &s.path, &cfg.network, false) {
            Ok(r) if r.unreachable => {
                st.push("verify", None, Exit::Warnings, "a remote could not be reached", t)
            }
            Ok(r) => {
                let (warn, note) = crate::verify::for_run(&r, now, cfg.verify_grace);
                let noted = if note.is_empty() { String::new() } else { format!("; {}", note.join("; ")) };
                if !warn.is_empty() {
                    st.push("verify", None, Exit::Warnings, format!("at risk: {}{noted}", warn.join("; ")), t)
                } else if !note.is_empty() {
                    st.push("verify", None, Exit::Ok, format!("safe for now: {}", note.join("; ")), t)
                } else {
                    st.push("verify", None, Exit::Ok, "everything is pushed", t)
                }
            }
            Err(e) => st.push("verify", None, Exit::Warnings, format!("{e:#}"), t),
        };
    }

    // The runbook inside the vault, refreshed so every snapshot and bundle carries it.
    if let (Some(rel), false) = (&s.recovery_doc, dry_run) {
        let t = Instant::now();
        let path = s.path.join(rel);
        let text = crate::recovery::render(cfg);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            match crate::atomic::write_file(&path, text.as_bytes()) {
                Ok(()) => st.push("runbook", None, Exit::Ok, format!("updated {}", path.display()), t),
                Err(e) => st.push(
                    "runbook",
                    None,
                    Exit::Warnings,
                    format!("cannot write {}: {e}", path.display()),
                    t,
                ),
            };
        }
    }

    // snapshot
    let t = Instant::now();
    if dry_run {
        match crate::snapshot::build_live(cfg, s).and_then(|(repo, built)| {
            let prev = repo
                .tip(&s.snapshot_branch)?
                .map(|c| repo.repo.find_commit(c).map(|c| c.tree_id()))
                .transpose()?;
            let changes =
                crate::snapshot::diff::diff(&repo.repo.odb()?, &built.trees, prev, Some(built.tree))?;
            Ok(crate::snapshot::diff::Summary::of(&changes))
        }) {
            Ok(sum) if sum == Default::default() => {
                st.push("snapshot", None, Exit::Ok, "would do nothing: unchanged", t)
            }
            Ok(sum) => st.push(
                "snapshot",
                None,
                Exit::Ok,
                format!("would snapshot +{} ~{} -{}", sum.added, sum.modified, sum.deleted),
                t,
            ),
            // No backup repo yet: the first snapshot is what a real run would take. Any other
            // error is the one `snapshot` would stop with: reported as such, never as "ok".
            Err(e) => {
                let fresh = !crate::git::BackupRepo::location(&cfg.state_dir, &s.name).exists();
                if fresh && std::fs::read_dir(&s.path).is_ok() {
                    st.push("snapshot", None, Exit::Ok, "would take the first snapshot", t)
                } else {
                    st.push(
                        "snapshot",
                        None,
                        exit_for(&e).combine(Exit::Failed),
                        format!("would fail: {e:#}"),
                        t,
                    )
                }
            }
        };
    } else {
        st.doing("snapshot", None);
        match crate::steps::snapshot_one(cfg, s, now, st.progress) {
            Ok((o, e)) => st.push("snapshot", None, e, crate::steps::describe(&o), t),
            Err(e) => st.push("snapshot", None, exit_for(&e).combine(Exit::Failed), format!("{e:#}"), t),
        };
    }

    // mirror: import the code refs; push when a mirror is configured.
    if is_git || s.mirror.is_some() {
        let t = Instant::now();
        st.doing("mirror", None);
        if dry_run {
            let what = match &s.mirror {
                Some(u) => format!("would import refs and push to {}", crate::config::mask_url(u)),
                None => "would import refs into the backup repo".into(),
            };
            st.push("mirror", None, Exit::Ok, what, t);
        } else {
            let r = BackupRepo::create(
                &BackupRepo::location(&cfg.state_dir, &s.name),
                &s.snapshot_branch,
                &s.path,
            )
            .and_then(|b| {
                crate::mirror::run(&b, s, &cfg.network, now)
                    .and_then(|r| crate::mirror::save_pushed(cfg, s, &b, &r, now).map(|_| r))
            });
            match r {
                Ok(r) => {
                    let detail = format!(
                        "{} ref change(s), {} pushed{}",
                        r.imported.len(),
                        r.pushed.len(),
                        if r.confirmed { ", confirmed" } else { "" }
                    );
                    let _ = state::record(
                        &cfg.state_dir,
                        &Event::new(now, "mirror", Some(&s.name), None, Exit::Ok, detail.clone()),
                    );
                    st.push("mirror", None, Exit::Ok, detail, t)
                }
                Err(e) => {
                    // An unreachable or timed-out mirror is exit 5, as for `opus-mirror mirror`.
                    let exit = exit_for(&e);
                    let _ = state::record(
                        &cfg.state_dir,
                        &Event::new(now, "mirror", Some(&s.name), None, exit, format!("{e:#}")),
                    );
                    st.push("mirror", None, exit, format!("{e:#}"), t)
                }
            };
        }
    }

    // bundle to every target first; then prune, only if nothing in this run failed.
    let mut written = Vec::new();
    let mut bundled_ok = Vec::new();
    // Targets that timed out or could not be reached: check and drill do not wait on them
    // again in this run.
    let mut unreachable: Vec<&str> = Vec::new();
    for tg in cfg.targets.iter().filter(|t| t.takes(&s.name)) {
        let t = Instant::now();
        st.doing("bundle", Some(&tg.name));
        if dry_run {
            let due = match crate::target::check(tg, &cfg.state_dir)
                .and_then(|()| crate::target::list(tg, &s.name))
            {
                Err(e) => format!("unavailable: {e:#}"),
                Ok(listed) => {
                    let ranks = crate::ranking::by_content(cfg, s, &listed, now);
                    match create::not_due(tg, &listed, &ranks, now) {
                        Some(why) => format!("not due: {why}"),
                        None => "would write a bundle if anything changed".into(),
                    }
                }
            };
            st.push("bundle", Some(&tg.name), Exit::Ok, due, t);
            continue;
        }
        let r = create::create(cfg, s, tg, now, false, st.progress);
        crate::steps::record_bundle(cfg, s, tg, now, &r);
        match r {
            Ok(o) => {
                let detail = match (&o.file, &o.reason) {
                    (Some(f), _) => {
                        written.push((tg, f.clone()));
                        format!("{f} ({}, verified)", crate::human::human_bytes(o.size))
                    }
                    (None, Some(why)) => format!("skipped: {why}"),
                    _ => String::new(),
                };
                st.push("bundle", Some(&tg.name), Exit::Ok, detail, t);
                bundled_ok.push(tg);
            }
            Err(e) => {
                if exit_for(&e) == Exit::Unreachable {
                    unreachable.push(&tg.name);
                }
                st.push("bundle", Some(&tg.name), exit_for(&e), format!("{e:#}"), t);
            }
        };
    }
    for tg in bundled_ok.into_iter().filter(|t| !t.keep.is_empty()) {
        let t = Instant::now();
        if st.failed() {
            st.push("prune", Some(&tg.name), Exit::Ok, "not pruned: an earlier step failed", t);
            continue;
        }
        let mine: Vec<String> =
            written.iter().filter(|(w, _)| w.name == tg.name).map(|(_, f)| f.clone()).collect();
        match prune_target(cfg, s, tg, now, &mine) {
            Ok((exit, msg)) => st.push("prune", Some(&tg.name), exit, msg, t),
            Err(e) => {
                st.push("prune", Some(&tg.name), exit_for(&e).combine(Exit::Failed), format!("{e:#}"), t)
            }
        };
    }

    // check: the bundles written now, read back through the indexer; a full check when due.
    let t = Instant::now();
    st.doing("check", None);
    let due_check = last_event_age(history, &s.name, "check", now).is_none_or(|a| a >= cfg.check_every);
    if dry_run {
        st.push(
            "check",
            None,
            Exit::Ok,
            if due_check { "would run a full check (due)" } else { "would check what this run writes" },
            t,
        );
    } else if due_check {
        let mut problems = Vec::new();
        match BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &s.name))
            .and_then(|r| crate::check::backup_repo(&r, &s.name))
        {
            Ok(r) => problems.extend(r.problems),
            Err(e) => problems.push(format!("{e:#}")),
        }
        let mut skipped = Vec::new();
        for tg in cfg.targets.iter().filter(|t| t.takes(&s.name)) {
            if unreachable.contains(&tg.name.as_str()) {
                skipped.push(format!("{}: not checked, unreachable in this run's bundle step", tg.name));
                continue;
            }
            if crate::target::check(tg, &cfg.state_dir).is_err() {
                continue;
            }
            // Off-site bundles: a rotating tenth, and any not read within run.read_data_within.
            match crate::check::bundles(cfg, s, tg, crate::check::ReadData::Subset(10.0), now, None) {
                Ok(r) => problems.extend(r.problems),
                Err(e) => problems.push(format!("{}: {e:#}", tg.name)),
            }
        }
        let e = match (problems.is_empty(), skipped.is_empty()) {
            (false, _) => Exit::Failed,
            (true, false) => Exit::Unreachable,
            (true, true) => Exit::Ok,
        };
        let detail = match e {
            Exit::Ok => "full check passed".to_string(),
            _ => problems.into_iter().chain(skipped).collect::<Vec<_>>().join("\n"),
        };
        let _ =
            state::record(&cfg.state_dir, &Event::new(now, "check", Some(&s.name), None, e, detail.clone()));
        st.push("check", None, e, detail, t);
    } else {
        let mut problems = Vec::new();
        for (tg, f) in &written {
            if let TargetKind::Dir { path, .. } = &tg.kind {
                if !f.ends_with(".age") {
                    if let Err(e) = crate::check::bundle_file_ok(&path.join(f), &cfg.state_dir) {
                        problems.push(format!("{f}: {e}"));
                    }
                }
            }
        }
        let e = if problems.is_empty() { Exit::Ok } else { Exit::Failed };
        st.push(
            "check",
            None,
            e,
            if problems.is_empty() {
                format!("{} new bundle(s) read back", written.len())
            } else {
                problems.join("\n")
            },
            t,
        );
    }

    // drill when due, from the first available target.
    let due_drill = last_event_age(history, &s.name, "drill", now).is_none_or(|a| a >= cfg.drill_every);
    if let Some(tg) = cfg
        .targets
        .iter()
        .filter(|t| {
            let decryptable = t.age_recipients.is_empty() || t.identity_file.is_some();
            t.takes(&s.name) && decryptable && !unreachable.contains(&t.name.as_str())
        })
        .find(|t| crate::target::check(t, &cfg.state_dir).is_ok())
    {
        let t = Instant::now();
        if !due_drill {
            return;
        }
        st.doing("drill", Some(&tg.name));
        if dry_run {
            st.push("drill", Some(&tg.name), Exit::Ok, "would run a test restore (due)", t);
            return;
        }
        match crate::drill::drill_and_record(cfg, s, tg, now, tg.identity_file.as_deref()) {
            Ok(r) if r.ok() => {
                let detail = format!(
                    "{} files restored and identical; time-to-recover {:.1}s",
                    r.files,
                    r.ttr_ms as f64 / 1000.0
                );
                st.push("drill", Some(&tg.name), Exit::Ok, detail, t)
            }
            Ok(r) => st.push("drill", Some(&tg.name), Exit::Failed, r.problems.join("\n"), t),
            Err(e) => st.push("drill", Some(&tg.name), Exit::Failed, format!("{e:#}"), t),
        };
    } else if due_drill {
        // Never skip a drill without a word: an encrypted target needs the key to be drilled.
        if let Some(enc) = cfg.targets.iter().find(|t| t.takes(&s.name) && !t.age_recipients.is_empty()) {
            st.push(
                "drill",
                Some(&enc.name),
                Exit::Warnings,
                format!(
                    "not drilled: target `{}` is encrypted and no key is configured\n  fix: set encrypt.identity_file = \"PATH\" (an age identity kept off that drive) in its [[target]], or run `opus-mirror drill --target {} --identity PATH`",
                    enc.name, enc.name
                ),
                Instant::now(),
            );
        }
    }
}

/// Applies a target's keep policy for one source, never removing `protect` (what this run
/// wrote); returns what happened, a warning when a bundle is dated in the future.
pub fn prune_target(
    cfg: &Config,
    s: &Source,
    tg: &crate::config::Target,
    now: DateTime<Utc>,
    protect: &[String],
) -> Result<(Exit, String)> {
    match crate::prune::plan(cfg, s, tg, now, protect)? {
        crate::prune::Plan::Suspended(_) => {
            Ok((Exit::Ok, format!("suspended by the guard (opus-mirror guard ack --source {})", s.name)))
        }
        crate::prune::Plan::Decisions(p) => {
            let removed = crate::prune::apply(tg, &p.decisions)?;
            let mut lines = vec![format!("{removed} removed, {} kept", p.decisions.len() - removed)];
            lines.extend(p.warnings.iter().cloned());
            let exit = if p.warnings.is_empty() { Exit::Ok } else { Exit::Warnings };
            Ok((exit, lines.join("\n")))
        }
    }
}
