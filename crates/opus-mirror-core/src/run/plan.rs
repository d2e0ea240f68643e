//! What a run will do, decided before it does anything: for each source, its steps in order
//! and why each is due, not due or blocked. The facts it decides from (the history, whether
//! each target can be used, each target's bundles of each source) are read once, by
//! [`Facts::read`]; [`plan`] itself reads nothing and writes nothing, so it can be tested with
//! a fake clock and fake listings, and `--dry-run` can print it.
//!
//! Some conditions can only be known while running (a bundle failing makes the prune after it
//! wait; a target timing out makes the drill pick another): the plan names them, the executor
//! applies them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::classify::exit_for;
use crate::config::{Config, Source, Target};
use crate::exit::Exit;
use crate::human::human_duration;
use crate::state::{self, Event};
use crate::target::Listed;

use super::Trigger;

/// Why a step cannot run at all in this run, as the step will report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub exit: Exit,
    pub detail: String,
}

impl From<anyhow::Error> for Blocked {
    fn from(e: anyhow::Error) -> Self {
        Blocked { exit: exit_for(&e), detail: format!("{e:#}") }
    }
}

/// A target's bundles of one source, with their ranks by content (parallel to `listed`; empty
/// for a target with neither `every` nor incremental bundles, the things they are ranked for).
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub listed: Vec<Listed>,
    pub ranks: Vec<u64>,
}

/// What the world looks like at the start of a run, read once.
#[derive(Debug, Default)]
pub struct Facts {
    /// The run history (`state::history`), oldest first.
    pub history: Vec<Event>,
    /// Each source by name: whether it is a git repository (then verify and mirror apply).
    pub is_git: BTreeMap<String, bool>,
    /// Each target by name: whether it can be used now (`target::check`).
    pub usable: BTreeMap<String, Result<(), Blocked>>,
    /// (source, target): the target's bundles of that source, when the target is usable.
    pub bundles: BTreeMap<(String, String), Result<Listing, Blocked>>,
    /// Each source by name: what its checks verified and found damaged (`check::verified`),
    /// and why it could not be used (then it is empty). Only the check step writes it: it
    /// starts from this one rather than read the file again.
    pub ledgers: BTreeMap<String, (crate::check::verified::Ledger, Option<String>)>,
}

impl Facts {
    /// Reads what the plan needs: one check and one listing per target (rclone keeps what it
    /// listed for the rest of the process, so later steps ask the remote nothing again).
    pub fn read(cfg: &Config, sources: &[&Source], now: DateTime<Utc>) -> Facts {
        let mut f = Facts { history: state::history(&cfg.state_dir).unwrap_or_default(), ..Facts::default() };
        for tg in cfg.targets.iter().filter(|t| sources.iter().any(|s| t.takes(&s.name))) {
            let usable = crate::target::check(tg, &cfg.state_dir).map_err(Blocked::from);
            for s in sources.iter().filter(|s| tg.takes(&s.name)) {
                let listing = usable.clone().and_then(|()| {
                    let listed = crate::target::list(tg, &s.name)?;
                    // Only `every` and an incremental target's chain need the order by
                    // content (it walks the snapshot branch); the bundle step reuses it.
                    let ranks = if tg.every.is_some() || tg.incremental {
                        crate::ranking::by_content(cfg, s, &listed, now)
                    } else {
                        Vec::new()
                    };
                    Ok(Listing { listed, ranks })
                });
                f.bundles.insert((s.name.clone(), tg.name.clone()), listing);
            }
            f.usable.insert(tg.name.clone(), usable);
        }
        for s in sources {
            f.ledgers.insert(s.name.clone(), crate::check::verified::load(&cfg.state_dir, &s.name));
            f.is_git.insert(s.name.clone(), git2::Repository::open(&s.path).is_ok());
        }
        f
    }

    fn usable(&self, target: &str) -> bool {
        matches!(self.usable.get(target), Some(Ok(())))
    }
}

/// The kinds of step a run takes for a source, in the order it takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// The clock jumped back since the last run: a warning, said once.
    Clock,
    Verify,
    /// The runbook inside the vault, refreshed so every snapshot and bundle carries it.
    Runbook,
    Snapshot,
    Mirror,
    /// Every pack of the backup repo merged into one, older versions of edited files made
    /// deltas of their newer ones (`run.repack_every`; a hook run waits until it is twice late).
    Repack,
    /// A full bundle once the newest verified full one is `full_every` old (the target's; a
    /// hook run's plan doubles it, leaving the weekly full bundle to the timer).
    Bundle {
        full_every: chrono::Duration,
    },
    /// Only after this target's bundle succeeded and nothing in the run failed.
    Prune,
    /// The backup repo and the drives' bundles, as far as `scope` reads them (what is new,
    /// overdue, and for timer and manual runs the rotating slice); with `offsite`, the
    /// off-site targets too (their listing, hashes and a tenth of their bundles).
    Check {
        scope: crate::check::Scope,
        offsite: bool,
    },
    /// From the first of `candidates` not found unreachable by the bundle step; when none is
    /// left, `encrypted` (a target nobody can decrypt) is named in a warning.
    Drill {
        candidates: Vec<String>,
        encrypted: Option<String>,
        /// With the runbook's stock-git restore beside ours: every [`RUNBOOK_EVERY`] drill
        /// periods (a second layout of the whole vault; a hand `drill` always has it).
        runbook: bool,
    },
    /// The health note, refreshed after the source's steps.
    Health,
}

impl StepKind {
    /// The step's name in the report, the history and `--json`.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Clock => "clock",
            StepKind::Verify => "verify",
            StepKind::Runbook => "runbook",
            StepKind::Snapshot => "snapshot",
            StepKind::Mirror => "mirror",
            StepKind::Repack => "repack",
            StepKind::Bundle { .. } => "bundle",
            StepKind::Prune => "prune",
            StepKind::Check { .. } => "check",
            StepKind::Drill { .. } => "drill",
            StepKind::Health => "health",
        }
    }
}

/// Whether a planned step runs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    Yes(String),
    No(String),
    Blocked(Blocked),
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub kind: StepKind,
    pub target: Option<String>,
    pub due: Due,
}

/// The plan of one source.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    pub source: String,
    pub steps: Vec<Planned>,
}

/// The plan of a run: one [`SourcePlan`] per source, in the order given.
#[derive(Debug, Clone)]
pub struct Plan {
    pub sources: Vec<SourcePlan>,
}

/// Decides what is due for every source from `facts`, at `now`, for a run started by
/// `trigger`. Reads and writes nothing.
pub fn plan(cfg: &Config, sources: &[&Source], facts: &Facts, now: DateTime<Utc>, trigger: Trigger) -> Plan {
    Plan { sources: sources.iter().map(|s| source_plan(cfg, s, facts, now, trigger)).collect() }
}

/// A hook run (after every session) stays short: what is only periodic waits for a timer or
/// manual run, unless it is this many periods overdue (so a user with hooks alone still gets
/// it).
pub const HOOK_OVERDUE: i32 = 2;

/// A run's drill also runs the runbook's stock-git restore once the last one that did is this
/// many `drill_every` old (or there was none).
pub const RUNBOOK_EVERY: i32 = 4;

fn source_plan(cfg: &Config, s: &Source, facts: &Facts, now: DateTime<Utc>, trigger: Trigger) -> SourcePlan {
    let step = |kind: StepKind, target: Option<&str>, due: Due| Planned {
        kind,
        target: target.map(str::to_string),
        due,
    };
    let mut steps = Vec::new();
    if let Some(w) = clock_jumped_back(&facts.history, &s.name, now) {
        steps.push(step(StepKind::Clock, None, Due::Yes(w)));
    }
    let is_git = facts.is_git.get(&s.name).copied().unwrap_or(false);
    if is_git {
        steps.push(step(StepKind::Verify, None, Due::Yes("a git source: is everything pushed?".into())));
    }
    if let Some(rel) = &s.recovery_doc {
        let why = format!("recovery_doc = {}: rewritten when its text changed", rel.display());
        steps.push(step(StepKind::Runbook, None, Due::Yes(why)));
    }
    steps.push(step(
        StepKind::Snapshot,
        None,
        Due::Yes("every run (nothing is written when unchanged)".into()),
    ));
    if let Some(u) = &s.mirror {
        steps.push(step(
            StepKind::Mirror,
            None,
            Due::Yes(format!("mirror = {}", crate::config::mask_url(u))),
        ));
    } else if is_git {
        steps.push(step(StepKind::Mirror, None, Due::Yes("a git source: its refs are imported".into())));
    }
    steps.push(repack_plan(cfg, s, facts, now, trigger));
    let targets: Vec<&Target> = cfg.targets.iter().filter(|t| t.takes(&s.name)).collect();
    for tg in &targets {
        let (full_every, due) = bundle_plan(tg, s, facts, now, trigger);
        steps.push(step(StepKind::Bundle { full_every }, Some(&tg.name), due));
    }
    for tg in targets.iter().filter(|t| !t.keep.is_empty()) {
        let why = "after its bundle, unless a step of this run failed".to_string();
        steps.push(step(StepKind::Prune, Some(&tg.name), Due::Yes(why)));
    }
    steps.push(check_plan(cfg, s, &targets, facts, now, trigger));
    steps.push(drill_plan(cfg, s, &targets, facts, now, trigger));
    if let Some(rel) = &s.health_note {
        let why = format!("health_note = {}: rewritten when its text changed", rel.display());
        steps.push(step(StepKind::Health, None, Due::Yes(why)));
    }
    SourcePlan { source: s.name.clone(), steps }
}

/// A bundle is due unless the target's newest verified bundle is younger than `every`; the
/// bundle step decides again after settling what a killed run left, and skips when nothing
/// changed.
fn bundle_due(tg: &Target, s: &Source, facts: &Facts, now: DateTime<Utc>) -> Due {
    match facts.bundles.get(&(s.name.clone(), tg.name.clone())) {
        None => Due::Blocked(Blocked { exit: Exit::Failed, detail: "not listed".into() }),
        Some(Err(b)) => Due::Blocked(b.clone()),
        Some(Ok(l)) => match crate::bundle::create::not_due(tg, &l.listed, &l.ranks, now) {
            Some(why) => Due::No(why),
            None => Due::Yes(match tg.every {
                Some(e) => format!("every = {}: no verified bundle that young", human_duration(e)),
                None => "no `every` set: due every run".into(),
            }),
        },
    }
}

/// [`bundle_due`], and when a full bundle comes: after `full_every`, or in a hook run after
/// [`HOOK_OVERDUE`] times that (writing a full bundle is the other weekly cost a hook run
/// leaves to the timer), which the plan says when it happens.
fn bundle_plan(
    tg: &Target,
    s: &Source,
    facts: &Facts,
    now: DateTime<Utc>,
    trigger: Trigger,
) -> (chrono::Duration, Due) {
    let mut due = bundle_due(tg, s, facts, now);
    // A due full bundle does not wait for `every`: the hook run that wrote the young
    // incremental bundle left the full one to this (timer or manual) run.
    let full_every = if trigger == Trigger::Hook { tg.full_every * HOOK_OVERDUE } else { tg.full_every };
    if let (true, Due::No(why), Some(Ok(l))) =
        (tg.incremental, &due, facts.bundles.get(&(s.name.clone(), tg.name.clone())))
    {
        if crate::bundle::create::full_due(&l.listed, &l.ranks, now, full_every) {
            due = Due::Yes(format!(
                "{why}, but a full bundle is due (full_every = {})",
                human_duration(full_every)
            ));
        }
    }
    // A chain that holds a bundle check found damaged is not built on: a full bundle starts
    // a new one (an incremental would restore nothing new until `full_every` came round).
    let ledger = facts.ledgers.get(&s.name).map(|(l, _)| l);
    if let (true, Due::Yes(why), Some(Ok(l)), Some(ledger)) =
        (tg.incremental, &due, facts.bundles.get(&(s.name.clone(), tg.name.clone())), ledger)
    {
        let chain = crate::bundle::create::chain_since_full(&l.listed, &l.ranks);
        if let Some(bad) = chain.iter().find(|m| ledger.is_damaged(&format!("bundle/{}/{}", tg.name, m.file)))
        {
            let why =
                format!("{why}; a full bundle, as a check or drill found {} of the chain damaged", bad.file);
            return (chrono::Duration::zero(), Due::Yes(why));
        }
    }
    if trigger != Trigger::Hook || !tg.incremental {
        return (tg.full_every, due);
    }
    let patient = tg.full_every * HOOK_OVERDUE;
    let due = match (due, facts.bundles.get(&(s.name.clone(), tg.name.clone()))) {
        (Due::Yes(why), Some(Ok(l)))
            if crate::bundle::create::full_due(&l.listed, &l.ranks, now, tg.full_every)
                && !crate::bundle::create::full_due(&l.listed, &l.ranks, now, patient) =>
        {
            Due::Yes(format!(
                "{why}; a full bundle (full_every = {}) is left to a timer or manual run, an \
                 incremental one is written (a hook run writes the full one when the newest is {} old)",
                human_duration(tg.full_every),
                human_duration(patient)
            ))
        }
        (due, _) => due,
    };
    (patient, due)
}

/// The check of every run: what is new since the last one (so it costs what the run added);
/// timer and manual runs also re-read a slice of the least recently verified, a hook run only
/// what is [`HOOK_OVERDUE`] times `check_every` old. Off-site targets every `check_every`.
fn check_plan(
    cfg: &Config,
    s: &Source,
    targets: &[&Target],
    facts: &Facts,
    now: DateTime<Utc>,
    trigger: Trigger,
) -> Planned {
    let every = cfg.check_every;
    let (scope, mut why) = match trigger {
        Trigger::Hook => (
            crate::check::Scope::New { every: every * HOOK_OVERDUE, rotate: false },
            format!(
                "what is new since the last check; re-reading the least recently verified is left \
                 to timer and manual runs (a hook run re-reads only what was verified {} ago or more)",
                human_duration(every * HOOK_OVERDUE)
            ),
        ),
        _ => (
            crate::check::Scope::New { every, rotate: true },
            format!(
                "what is new since the last check, and a slice of the least recently verified \
                 (all re-read within run.check_every = {})",
                human_duration(every)
            ),
        ),
    };
    let cloud = targets.iter().any(|t| matches!(t.kind, crate::config::TargetKind::Rclone { .. }));
    let offsite = cloud && {
        let age = last_age(&facts.history, &s.name, "check", now, |e| {
            e.data.get("offsite").and_then(|o| o.as_bool()) == Some(true)
        });
        let (due, deferred) = periodic(age, every, trigger);
        let setting = format!("run.check_every = {}", human_duration(every));
        let last =
            age.map(|a| format!("last done {} ago", human_duration(round(a)))).unwrap_or("never done".into());
        why.push_str(&match (due, deferred) {
            (true, _) => format!("; off-site targets too ({setting}: {last})"),
            (false, true) => {
                format!("; off-site targets deferred to a timer or manual run ({setting}: {last})")
            }
            (false, false) => format!("; off-site targets not due ({setting}: {last})"),
        });
        due
    };
    Planned { kind: StepKind::Check { scope, offsite }, target: None, due: Due::Yes(why) }
}

/// Whether a periodic step is due in a run started by `trigger`, and whether it was due but
/// deferred (a hook run, not yet [`HOOK_OVERDUE`] periods late). Never done is overdue.
fn periodic(age: Option<chrono::Duration>, every: chrono::Duration, trigger: Trigger) -> (bool, bool) {
    match (age, trigger) {
        (None, _) => (true, false),
        (Some(a), Trigger::Hook) if a >= every => (a >= every * HOOK_OVERDUE, a < every * HOOK_OVERDUE),
        (Some(a), _) => (a >= every, false),
    }
}

fn drill_plan(
    cfg: &Config,
    s: &Source,
    targets: &[&Target],
    facts: &Facts,
    now: DateTime<Utc>,
    trigger: Trigger,
) -> Planned {
    let candidates = targets
        .iter()
        .filter(|t| (t.age_recipients.is_empty() || t.identity_file.is_some()) && facts.usable(&t.name))
        .map(|t| t.name.clone())
        .collect();
    let encrypted = targets.iter().find(|t| !t.age_recipients.is_empty()).map(|t| t.name.clone());
    let due = periodic_due(facts, s, ("drill", "drills", "run.drill_every"), cfg.drill_every, now, trigger);
    // The runbook's own procedure is proven every few drills, not every one: it lays the whole
    // vault out a second time (a drill is then about a restore plus the comparison).
    let runbook = last_age(&facts.history, &s.name, "drill", now, |e| {
        e.data.get("runbook").and_then(|r| r.as_bool()) == Some(true)
    })
    .is_none_or(|a| a >= cfg.drill_every * RUNBOOK_EVERY);
    Planned { kind: StepKind::Drill { candidates, encrypted, runbook }, target: None, due }
}

/// Whether a periodic step (`what`: its history name, the verb of "a hook run drills when",
/// its setting) is due in this run, with the setting and the age it was judged by.
fn periodic_due(
    facts: &Facts,
    s: &Source,
    what: (&str, &str, &str),
    every_: chrono::Duration,
    now: DateTime<Utc>,
    trigger: Trigger,
) -> Due {
    let (step, verb, key) = what;
    let (_, why) = every(&facts.history, &s.name, step, every_, now, key);
    let age = last_event_age(&facts.history, &s.name, step, now);
    match periodic(age, every_, trigger) {
        (true, _) => Due::Yes(why),
        (false, true) => Due::No(format!(
            "deferred to a timer or manual run ({why}); a hook run {verb} when it is {} late",
            human_duration(every_ * HOOK_OVERDUE)
        )),
        (false, false) => Due::No(why),
    }
}

/// A repack every `run.repack_every`, before the bundles (a full bundle copies its deltas as
/// they are) and the check (which reads the new pack back).
fn repack_plan(cfg: &Config, s: &Source, facts: &Facts, now: DateTime<Utc>, trigger: Trigger) -> Planned {
    let due =
        periodic_due(facts, s, ("repack", "repacks", "run.repack_every"), cfg.repack_every, now, trigger);
    Planned { kind: StepKind::Repack, target: None, due }
}

/// Whether a step done every `every` is due, and why: ("run.check_every = 7d: last ok 8d ago").
fn every(
    history: &[Event],
    source: &str,
    step: &str,
    every: chrono::Duration,
    now: DateTime<Utc>,
    key: &str,
) -> (bool, String) {
    let setting = format!("{key} = {}", human_duration(every));
    match last_event_age(history, source, step, now) {
        None => (true, format!("{setting}: never done")),
        Some(a) => (a >= every, format!("{setting}: last done {} ago", human_duration(round(a)))),
    }
}

/// An age rounded down to what people read (whole days, hours or minutes).
fn round(a: chrono::Duration) -> chrono::Duration {
    let s = a.num_seconds();
    let unit = [86_400, 3600, 60, 1].into_iter().find(|u| s >= *u).unwrap_or(1);
    chrono::Duration::seconds(s - s % unit)
}

fn last_event_age(
    history: &[Event],
    source: &str,
    step: &str,
    now: DateTime<Utc>,
) -> Option<chrono::Duration> {
    last_age(history, source, step, now, |_| true)
}

/// The age of the last ok `step` of `source` that `which` accepts.
fn last_age(
    history: &[Event],
    source: &str,
    step: &str,
    now: DateTime<Utc>,
    which: impl Fn(&Event) -> bool,
) -> Option<chrono::Duration> {
    history
        .iter()
        .rev()
        .find(|e| e.source.as_deref() == Some(source) && e.step == step && e.outcome == "ok" && which(e))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A config with one source, a drive bundled daily and kept to two, and a cloud target.
    fn config(dir: &std::path::Path) -> Config {
        let text = format!(
            "state_dir = {:?}\n[run]\ncheck_every = \"7d\"\ndrill_every = \"30d\"\n\n\
             [[source]]\nname = \"v\"\npath = {:?}\n\n\
             [[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {:?}\nevery = \"1d\"\nkeep = {{ last = 2 }}\n\n\
             [[target]]\nname = \"cloud\"\nkind = \"rclone\"\nremote = \"s3:backups\"\n",
            dir.join("state").display().to_string(),
            dir.join("vault").display().to_string(),
            dir.join("drive").display().to_string()
        );
        let path = dir.join("config.toml");
        std::fs::create_dir_all(dir.join("vault")).expect("the vault");
        std::fs::write(&path, text).expect("write the config");
        crate::config::load(&path, &|_| None).expect("a valid config")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("a fixed date").with_timezone(&Utc)
    }

    /// An ok event; a check one read the off-site targets too.
    fn ok(now: &str, step: &str) -> Event {
        let mut e = Event::new(at(now), step, Some("v"), None, Exit::Ok, "");
        if step == "check" {
            e.data = serde_json::json!({"offsite": true});
        }
        e
    }

    /// A verified full bundle of `v` on a target, written at `created`.
    fn bundle(created: &str) -> Listed {
        let name = format!("v-{}.bundle", at(created).format("%Y-%m-%dT%H%M%SZ"));
        let m = serde_json::json!({
            "format": 1, "source": "v", "file": name, "created": created, "kind": "full",
            "size": 1, "sha256": "", "refs": {}, "head": null, "prerequisites": [], "base": null,
            "snapshot": null, "objects": 1, "tool": "test", "verified": true
        });
        Listed { name, size: 1, manifest: Some(serde_json::from_value(m).expect("a manifest")) }
    }

    /// Facts where the drive holds `listed` and the cloud could not be reached.
    fn facts(history: Vec<Event>, listed: Vec<Listed>) -> Facts {
        let down = Blocked { exit: Exit::Unreachable, detail: "target `cloud` got no answer".into() };
        let ranks = (0..listed.len() as u64).collect();
        let mut f = Facts { history, ..Facts::default() };
        f.is_git.insert("v".into(), false);
        f.usable.insert("drive".into(), Ok(()));
        f.usable.insert("cloud".into(), Err(down.clone()));
        f.bundles.insert(("v".into(), "drive".into()), Ok(Listing { listed, ranks }));
        f.bundles.insert(("v".into(), "cloud".into()), Err(down));
        f
    }

    fn steps(cfg: &Config, f: &Facts, now: &str) -> Vec<Planned> {
        steps_of(cfg, f, now, Trigger::Timer)
    }

    fn steps_of(cfg: &Config, f: &Facts, now: &str, trigger: Trigger) -> Vec<Planned> {
        let sources: Vec<&Source> = cfg.sources.iter().collect();
        let mut p = plan(cfg, &sources, f, at(now), trigger);
        assert_eq!(p.sources.len(), 1);
        p.sources.remove(0).steps
    }

    #[test]
    fn a_first_run_plans_every_step_in_order_and_a_dead_target_is_blocked_with_its_exit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = config(dir.path());
        let s = steps(&cfg, &facts(Vec::new(), Vec::new()), "2026-11-20T03:30:00Z");
        let names: Vec<(&str, Option<&str>)> =
            s.iter().map(|p| (p.kind.name(), p.target.as_deref())).collect();
        assert_eq!(
            names,
            [
                ("snapshot", None),
                ("repack", None),
                ("bundle", Some("drive")),
                ("bundle", Some("cloud")),
                ("prune", Some("drive")),
                ("check", None),
                ("drill", None)
            ]
        );
        assert!(matches!(&s[2].due, Due::Yes(why) if why == "every = 1d: no verified bundle that young"));
        assert!(matches!(&s[3].due, Due::Blocked(b) if b.exit == Exit::Unreachable));
        assert_eq!(s[5].kind, StepKind::Check { scope: WEEK, offsite: true });
        assert!(
            matches!(&s[5].due, Due::Yes(why) if why.ends_with("off-site targets too (run.check_every = 1w: never done)"))
        );
        // The unreachable cloud is no drill candidate.
        assert_eq!(
            s[6].kind,
            StepKind::Drill { candidates: vec!["drive".into()], encrypted: None, runbook: true }
        );
        assert_eq!(s[6].due, Due::Yes("run.drill_every = 30d: never done".into()));
    }

    #[test]
    fn what_was_done_recently_is_not_due_with_its_age() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = config(dir.path());
        let history = vec![ok("2026-11-18T01:00:00Z", "check"), ok("2026-11-01T03:30:00Z", "drill")];
        let f = facts(history, vec![bundle("2026-11-19T20:00:00Z")]);
        let s = steps(&cfg, &f, "2026-11-20T03:30:00Z");
        assert_eq!(
            s[2].due,
            Due::No("v-2026-11-19T200000Z.bundle is younger than every = 1d".into()),
            "{s:#?}"
        );
        assert_eq!(s[5].kind, StepKind::Check { scope: WEEK, offsite: false });
        assert!(
            matches!(&s[5].due, Due::Yes(why) if why.ends_with("off-site targets not due (run.check_every = 1w: last done 2d ago)"))
        );
        assert_eq!(s[6].due, Due::No("run.drill_every = 30d: last done 19d ago".into()));
    }

    #[test]
    fn a_clock_that_jumped_back_is_said_first_and_a_future_check_counts_as_never_done() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = config(dir.path());
        let f = facts(vec![ok("2026-12-20T03:30:00Z", "check")], Vec::new());
        let s = steps(&cfg, &f, "2026-11-20T03:30:00Z");
        assert_eq!(s[0].kind, StepKind::Clock);
        assert!(matches!(&s[0].due, Due::Yes(w) if w.contains("the clock jumped back")));
        assert_eq!(s[6].kind, StepKind::Check { scope: WEEK, offsite: true });
    }

    #[test]
    fn a_repack_is_due_every_repack_every_and_a_hook_run_leaves_it_to_the_timer_until_twice_late() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = config(dir.path());
        let repacked = |at: &str| facts(vec![ok(at, "repack")], Vec::new());
        let kind =
            |s: &[Planned]| s.iter().find(|p| p.kind == StepKind::Repack).expect("planned").due.clone();
        let now = "2026-11-20T03:30:00Z";
        assert_eq!(
            kind(&steps_of(&cfg, &repacked("2026-11-18T03:30:00Z"), now, Trigger::Timer)),
            Due::No("run.repack_every = 1w: last done 2d ago".into())
        );
        assert_eq!(
            kind(&steps_of(&cfg, &repacked("2026-11-10T03:30:00Z"), now, Trigger::Timer)),
            Due::Yes("run.repack_every = 1w: last done 10d ago".into())
        );
        assert!(matches!(kind(&steps_of(&cfg, &repacked("2026-11-10T03:30:00Z"), now, Trigger::Hook)),
            Due::No(why) if why.starts_with("deferred to a timer or manual run")));
        assert!(matches!(
            kind(&steps_of(&cfg, &repacked("2026-11-05T03:30:00Z"), now, Trigger::Hook)),
            Due::Yes(_)
        ));
        assert!(matches!(
            kind(&steps_of(&cfg, &facts(Vec::new(), Vec::new()), now, Trigger::Hook)),
            Due::Yes(_)
        ));
    }

    #[test]
    fn a_run_s_drill_proves_the_runbook_every_fourth_drill_period() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = config(dir.path()); // drill_every = 30d
        let drilled = |at: &str, runbook: bool| {
            let mut e = ok(at, "drill");
            e.data = serde_json::json!({"runbook": runbook});
            facts(vec![e], Vec::new())
        };
        let runbook = |f: &Facts| {
            let s = steps_of(&cfg, f, "2026-11-20T03:30:00Z", Trigger::Timer);
            match &s.iter().find(|p| p.kind.name() == "drill").expect("a drill").kind {
                StepKind::Drill { runbook, .. } => *runbook,
                k => panic!("{k:?}"),
            }
        };
        assert!(runbook(&facts(Vec::new(), Vec::new())), "never proven: now");
        assert!(!runbook(&drilled("2026-10-01T03:30:00Z", true)), "proven 50 days ago, every 120 days");
        assert!(runbook(&drilled("2026-07-01T03:30:00Z", true)), "proven 142 days ago");
        assert!(runbook(&drilled("2026-11-01T03:30:00Z", false)), "our half only, ever: now");
    }

    const WEEK: crate::check::Scope =
        crate::check::Scope::New { every: chrono::Duration::days(7), rotate: true };

    #[test]
    fn a_hook_run_defers_a_due_drill_and_the_rotation_until_they_are_twice_overdue() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = config(dir.path());
        // drill_every = 30d: due after 30 days, overdue for a hook run after 60.
        let history = |drilled: &str| vec![ok("2026-11-19T03:30:00Z", "check"), ok(drilled, "drill")];
        let due = facts(history("2026-10-10T03:30:00Z"), Vec::new());
        let hook = steps_of(&cfg, &due, "2026-11-20T03:30:00Z", Trigger::Hook);
        assert!(
            matches!(&hook[6].due, Due::No(why) if why.starts_with("deferred to a timer or manual run (run.drill_every = 30d: last done 41d ago)")),
            "{:?}",
            hook[6].due
        );
        let StepKind::Check { scope, .. } = hook[5].kind else { panic!("a check: {:?}", hook[5]) };
        assert_eq!(scope, crate::check::Scope::New { every: chrono::Duration::days(14), rotate: false });
        let timer = steps_of(&cfg, &due, "2026-11-20T03:30:00Z", Trigger::Timer);
        assert!(matches!(&timer[6].due, Due::Yes(why) if why == "run.drill_every = 30d: last done 41d ago"));
        let manual = steps_of(&cfg, &due, "2026-11-20T03:30:00Z", Trigger::Manual);
        assert!(matches!(&manual[6].due, Due::Yes(_)));
        let overdue = facts(history("2026-09-20T03:30:00Z"), Vec::new());
        let hook = steps_of(&cfg, &overdue, "2026-11-20T03:30:00Z", Trigger::Hook);
        assert!(matches!(&hook[6].due, Due::Yes(why) if why == "run.drill_every = 30d: last done 61d ago"));
        let never = facts(Vec::new(), Vec::new());
        assert!(matches!(&steps_of(&cfg, &never, "2026-11-20T03:30:00Z", Trigger::Hook)[6].due, Due::Yes(_)));
    }
}
