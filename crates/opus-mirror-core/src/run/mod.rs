//! `run`: everything, in order, for every source: verify → snapshot → mirror → bundle (each
//! target when due) → prune → check → drill (when due) → notify. A step that fails does not
//! stop independent later steps (a dead cloud target must not stop the drive bundle), but
//! nothing is pruned after a failure. One report and one exit code at the end.
//!
//! Three stages: [`plan::plan`] decides what is due from facts read once ([`plan::Facts`]);
//! [`execute::source`] carries a source's plan out a step at a time into one [`Journal`];
//! [`Report`] is what the command prints. `--dry-run` stops after the plan and shows it
//! ([`preview`]).

pub mod execute;
pub mod plan;
pub mod preview;

use std::time::Instant;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Config, Source};
use crate::exit::Exit;
use crate::notify;
use crate::runhooks;
use crate::state;

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

/// What `run` returns: every step taken (or, for a dry run, planned) and the run's exit. The
/// command prints it as a table or under `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub trigger: Trigger,
    pub dry_run: bool,
    pub exit: Exit,
    pub steps: Vec<Step>,
    pub elapsed_ms: u64,
}

/// The journal of one source's steps, in the order they were taken.
pub struct Journal<'a> {
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

impl Journal<'_> {
    /// Says what starts now (the spinner's message on a terminal).
    fn doing(&self, step: &str, target: Option<&str>) {
        let to = target.map(|t| format!(" → {t}")).unwrap_or_default();
        self.progress.doing(&format!("{}: {step}{to}", self.source));
    }

    /// Adds a finished step, and shows it as it happens.
    fn push(
        &mut self,
        step: &'static str,
        target: Option<&str>,
        exit: Exit,
        detail: impl Into<String>,
        started: Instant,
    ) {
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
    }

    /// Whether a step of this source failed (then nothing is pruned).
    fn failed(&self) -> bool {
        self.out.iter().any(|s| s.exit == Exit::Failed)
    }
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
    if dry_run {
        let facts = plan::Facts::read(cfg, sources, now);
        let plan = plan::plan(cfg, sources, &facts, now, trigger);
        let mut steps = Vec::new();
        for (s, sp) in sources.iter().zip(&plan.sources) {
            let mut journal = Journal { source: &s.name, out: Vec::new(), progress };
            preview::source(cfg, s, sp, now, &mut journal);
            steps.extend(journal.out);
        }
        let exit = steps.iter().fold(Exit::Ok, |e, s| e.combine(s.exit));
        return Ok(Report {
            trigger,
            dry_run,
            exit,
            steps,
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
    }
    let job = notify::Job::start(&cfg.notify);
    let mut steps = Vec::new();
    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    let mut vars = vec![
        ("OPUS_MIRROR_RUN_TRIGGER", format!("{trigger:?}").to_lowercase()),
        ("OPUS_MIRROR_RUN_SOURCES", names.join(" ")),
    ];
    // A failing before_run is a gate: nothing is backed up, and the run fails. The plan comes
    // after it: before_run may mount the drive the plan looks at.
    if hook_step(cfg, runhooks::Phase::BeforeRun, &vars, &mut steps) != Some(Exit::Failed) {
        let facts = plan::Facts::read(cfg, sources, now);
        let plan = plan::plan(cfg, sources, &facts, now, trigger);
        for (s, sp) in sources.iter().zip(&plan.sources) {
            let mut journal = Journal { source: &s.name, out: Vec::new(), progress };
            execute::source(cfg, s, sp, &facts, trigger, now, &mut journal);
            steps.extend(journal.out);
        }
    }
    let exit = after_hooks(cfg, &mut vars, &mut steps);
    let report = Report { trigger, dry_run, exit, steps, elapsed_ms: started.elapsed().as_millis() as u64 };
    alert(cfg, &report, now, job);
    Ok(report)
}

/// after_run when the run did not fail, on_error when it (or after_run) did; the run's exit.
fn after_hooks(cfg: &Config, vars: &mut Vec<(&str, String)>, steps: &mut Vec<Step>) -> Exit {
    let mut exit = steps.iter().fold(Exit::Ok, |e, s| e.combine(s.exit));
    let detail: Vec<String> = steps
        .iter()
        .filter(|x| x.exit != Exit::Ok)
        .map(|x| format!("{} {}: {}", x.source, x.step, x.detail))
        .collect();
    vars.push(("OPUS_MIRROR_RUN_DETAIL", detail.join("\n")));
    if notify::Level::of(exit) != notify::Level::Failure {
        vars.push(("OPUS_MIRROR_RUN_EXIT", exit.code().to_string()));
        vars.push(("OPUS_MIRROR_RUN_OUTCOME", state::outcome_word(exit).to_string()));
        hook_step(cfg, runhooks::Phase::AfterRun, vars, steps);
        exit = steps.iter().fold(Exit::Ok, |e, s| e.combine(s.exit));
        vars.truncate(vars.len() - 2);
    }
    if notify::Level::of(exit) == notify::Level::Failure {
        vars.push(("OPUS_MIRROR_RUN_EXIT", exit.code().to_string()));
        vars.push(("OPUS_MIRROR_RUN_OUTCOME", state::outcome_word(exit).to_string()));
        hook_step(cfg, runhooks::Phase::OnError, vars, steps);
    }
    exit
}

/// The run's alert (every step on success, the ones that did not go well otherwise) and the
/// end of the notify job.
fn alert(cfg: &Config, report: &Report, now: DateTime<Utc>, job: notify::Job) {
    let level = notify::Level::of(report.exit);
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
    let title = format!("opus-mirror run ({:?}): {}", report.trigger, state::outcome_word(report.exit))
        .to_lowercase();
    let text = lines.join("\n");
    notify::deliver(&cfg.notify, &notify::alert(level, title.clone(), text.clone(), None, report.exit, now));
    job.finish(report.exit, &format!("{title}\n{text}"));
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
