//! Pruning one (source, target): the guard check, the retention plan over what the target
//! holds, and the removals. Shared by `prune` and `run`, so both judge bundles alike.
//!
//! Bundles are ordered by content (`ranking`), never by a clock that may be wrong; the
//! bundle that holds the newest snapshot and the ones this run wrote are pinned; a bundle
//! dated in the future is reported, never trusted.

use anyhow::Result;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::config::{Config, Source, Target};
use crate::ranking::{self, SnapshotHistory};
use crate::retention::{self, Decision, Item};
use crate::target::{self, Listed};

/// What pruning a target would do.
pub enum Plan {
    /// The guard tripped for this source: nothing is removed until it is acknowledged.
    Suspended(crate::guard::Alarm),
    Decisions(Pruning),
}

/// The decisions for every bundle, and what looked wrong while making them.
pub struct Pruning {
    pub decisions: Vec<Decision>,
    /// Bundles dated in the future: the clock was ahead when they were written, or is
    /// behind now.
    pub warnings: Vec<String>,
}

/// Plans the pruning of `source`'s bundles on `t`. `protect` names bundles that must stay
/// whatever the policy says (the ones this run wrote).
pub fn plan(
    cfg: &Config,
    source: &Source,
    t: &Target,
    now: DateTime<Utc>,
    protect: &[String],
) -> Result<Plan> {
    if let Some(a) =
        crate::state::load::<crate::guard::Alarm>(&cfg.state_dir, &crate::guard::state_name(&source.name))
    {
        return Ok(Plan::Suspended(a));
    }
    let listed = target::list(t, &source.name)?;
    let history = SnapshotHistory::of(cfg, source, &listed);
    let ranks = ranking::ranks(&history, &listed, now);
    let mut items: Vec<Item> = listed.iter().zip(&ranks).map(|(l, r)| item(l, *r, now)).collect();
    for it in items.iter_mut().filter(|it| protect.contains(&it.name)) {
        it.pinned = Some("written in this run".into());
    }
    if let Some(i) = newest_holder(&history, &listed, &items) {
        items[i].pinned.get_or_insert("holds the newest snapshot".into());
    }
    let warnings = items
        .iter()
        .filter(|it| ranking::ahead_of(it.created, now))
        .map(|it| {
            format!(
                "bundle {} is dated {}: the clock was ahead or is behind now",
                it.name,
                it.created.to_rfc3339_opts(SecondsFormat::Secs, true)
            )
        })
        .collect();
    let decisions = retention::plan(&items, &t.keep, now).map_err(anyhow::Error::msg)?;
    Ok(Plan::Decisions(Pruning { decisions, warnings }))
}

/// A listed bundle as retention sees it.
fn item(l: &Listed, order: u64, now: DateTime<Utc>) -> Item {
    Item {
        name: l.name.clone(),
        // A bundle without a manifest (never verified) is dated by its name.
        created: ranking::dated(l).unwrap_or(now),
        order,
        verified: l.manifest.as_ref().is_some_and(|m| m.verified),
        base: l.manifest.as_ref().and_then(|m| m.base.clone()),
        pinned: None,
    }
}

/// The best-ranked bundle holding the newest snapshot: a verified one if there is one.
fn newest_holder(history: &SnapshotHistory, listed: &[Listed], items: &[Item]) -> Option<usize> {
    let tip = history.tip()?;
    let holds = |i: &usize| listed[*i].manifest.as_ref().and_then(|m| m.snapshot.as_deref()) == Some(tip);
    let best = |verified_only: bool| {
        (0..items.len())
            .filter(holds)
            .filter(|i| items[*i].verified || !verified_only)
            .max_by_key(|i| items[*i].order)
    };
    best(true).or_else(|| best(false))
}

/// Removes what `decisions` do not keep; returns how many were removed.
pub fn apply(t: &Target, decisions: &[Decision]) -> Result<usize> {
    let mut removed = 0;
    for d in decisions.iter().filter(|d| !d.keep) {
        target::delete(t, &d.name)?;
        removed += 1;
    }
    Ok(removed)
}
