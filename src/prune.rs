//! Pruning one (source, target): the guard check, the retention plan over what the target
//! holds, and the removals. Shared by `prune` and `run`, so both judge bundles alike.
//!
//! Clocks cannot be trusted (a laptop a day behind dates its newest bundle yesterday; one
//! that ran a year ahead leaves bundles dated next year), so bundles are ranked by what they
//! hold: the generation of their snapshot on the snapshot branch of the backup repo, then
//! their depth in the incremental chain. Their dates are labels and bucket keys, and the
//! order of last resort. A bundle dated in the future is reported, never trusted.

use std::collections::HashMap;

use anyhow::Result;
use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::config::{Config, Source, Target};
use crate::git::BackupRepo;
use crate::retention::{self, Decision, Item};
use crate::target::{self, Listed};

/// How far ahead of the clock a bundle may be dated before it is reported (clock drift
/// between machines, a run that crosses a leap second).
pub const FUTURE_SLACK_MINUTES: i64 = 10;

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
    let history = SnapshotHistory::read(cfg, source);
    let mut items: Vec<Item> = listed.iter().map(|l| item(l, now)).collect();
    let generations: Vec<Option<u64>> = listed.iter().map(|l| history.generation(l)).collect();
    rank(&mut items, &generations);
    for it in items.iter_mut().filter(|it| protect.contains(&it.name)) {
        it.pinned = Some("written in this run".into());
    }
    if let Some(i) = history.newest_holder(&listed, &items) {
        items[i].pinned.get_or_insert("holds the newest snapshot".into());
    }
    let warnings = items
        .iter()
        .filter(|it| it.created > now + Duration::minutes(FUTURE_SLACK_MINUTES))
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

/// A listed bundle as retention sees it, before it is ranked.
fn item(l: &Listed, now: DateTime<Utc>) -> Item {
    Item {
        name: l.name.clone(),
        // A bundle without a manifest (never verified) is dated by its name.
        created: l
            .manifest
            .as_ref()
            .and_then(|m| m.created_at())
            .or_else(|| date_from_name(&l.name))
            .unwrap_or(now),
        order: 0,
        verified: l.manifest.as_ref().is_some_and(|m| m.verified),
        base: l.manifest.as_ref().and_then(|m| m.base.clone()),
        pinned: None,
    }
}

/// The snapshot branch of the backup repo, first parent from the tip: each commit's
/// generation (the root is 1, the tip the highest). Empty when the backup repo cannot be
/// read (a target pruned from another machine): bundles are then ranked by their dates.
#[derive(Default)]
struct SnapshotHistory {
    tip: Option<String>,
    generation: HashMap<String, u64>,
}

impl SnapshotHistory {
    fn read(cfg: &Config, source: &Source) -> SnapshotHistory {
        let Ok(repo) = BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &source.name)) else {
            return SnapshotHistory::default();
        };
        let Ok(Some(tip)) = repo.tip(&source.snapshot_branch) else { return SnapshotHistory::default() };
        let chain: Vec<git2::Oid> = repo
            .repo
            .revwalk()
            .and_then(|mut w| {
                w.simplify_first_parent()?;
                w.push(tip)?;
                Ok(w.filter_map(Result::ok).collect())
            })
            .unwrap_or_default();
        let n = chain.len() as u64;
        SnapshotHistory {
            tip: Some(tip.to_string()),
            generation: chain
                .iter()
                .enumerate()
                .map(|(depth, c)| (c.to_string(), n - depth as u64))
                .collect(),
        }
    }

    /// The generation of the snapshot a bundle holds, if it is on the branch.
    fn generation(&self, l: &Listed) -> Option<u64> {
        let snap = l.manifest.as_ref()?.snapshot.as_ref()?;
        self.generation.get(snap).copied()
    }

    /// The best-ranked bundle holding the tip: a verified one if there is one.
    fn newest_holder(&self, listed: &[Listed], items: &[Item]) -> Option<usize> {
        let tip = self.tip.as_deref()?;
        let holds = |i: &usize| listed[*i].manifest.as_ref().and_then(|m| m.snapshot.as_deref()) == Some(tip);
        let best = |verified: bool| {
            (0..items.len())
                .filter(holds)
                .filter(|i| items[*i].verified || !verified)
                .max_by_key(|i| items[*i].order)
        };
        best(true).or_else(|| best(false))
    }
}

/// Sets `order` on every item (1 = oldest content). A bundle ranks by its snapshot's
/// generation, then by its depth in the incremental chain (an incremental holds what its
/// base holds, and more), then by its date. A bundle whose snapshot is unknown (no
/// manifest, or not on the branch) takes the rank of the newest known bundle dated no
/// later than itself, and its date decides among those.
fn rank(items: &mut [Item], generations: &[Option<u64>]) {
    let by_name: HashMap<&str, usize> =
        items.iter().enumerate().map(|(i, it)| (it.name.as_str(), i)).collect();
    let depth = |i: usize| {
        let mut d = 0;
        let mut cur = i;
        while let Some(&b) = items[cur].base.as_deref().and_then(|b| by_name.get(b)) {
            d += 1;
            cur = b;
            if d > items.len() {
                break; // a cycle of hand-edited manifests
            }
        }
        d
    };
    let known: Vec<(u64, usize, DateTime<Utc>)> =
        (0..items.len()).filter_map(|i| generations[i].map(|g| (g, depth(i), items[i].created))).collect();
    let keys: Vec<(u64, usize, DateTime<Utc>, &str)> = (0..items.len())
        .map(|i| {
            let (g, d) = match generations[i] {
                Some(g) => (g, depth(i)),
                None => known
                    .iter()
                    .filter(|k| k.2 <= items[i].created)
                    .max()
                    .map(|k| (k.0, k.1))
                    .unwrap_or((0, 0)),
            };
            (g, d, items[i].created, items[i].name.as_str())
        })
        .collect();
    let mut idx: Vec<usize> = (0..items.len()).collect();
    idx.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
    let mut order = vec![0; items.len()];
    for (r, i) in idx.into_iter().enumerate() {
        order[i] = r as u64 + 1;
    }
    for (it, o) in items.iter_mut().zip(order) {
        it.order = o;
    }
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

/// `SOURCE-2026-11-24T101500Z[-incr].bundle[.age]` → its time.
fn date_from_name(name: &str) -> Option<DateTime<Utc>> {
    let stem = name.trim_end_matches(".age").strip_suffix(".bundle")?.trim_end_matches("-incr");
    let ts = stem.get(stem.len().checked_sub(18)?..)?;
    chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%dT%H%M%SZ").ok().map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_time() {
        let t = date_from_name("my-vault-2026-11-24T101500Z-incr.bundle.age").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-24T10:15:00+00:00");
        assert!(date_from_name("notes.md").is_none());
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn it(name: &str, created: &str, base: Option<&str>) -> Item {
        Item {
            name: name.into(),
            created: at(created),
            order: 0,
            verified: true,
            base: base.map(str::to_string),
            pinned: None,
        }
    }

    fn ranked(mut items: Vec<Item>, generations: &[Option<u64>]) -> Vec<String> {
        rank(&mut items, generations);
        items.sort_by_key(|i| std::cmp::Reverse(i.order));
        items.into_iter().map(|i| i.name).collect()
    }

    #[test]
    fn content_outranks_dates() {
        // A clock a day behind: the newest snapshot is dated yesterday.
        let items =
            vec![it("today", "2026-11-24T03:30:00Z", None), it("yesterday", "2026-11-23T03:31:00Z", None)];
        assert_eq!(ranked(items, &[Some(1), Some(2)]), ["yesterday", "today"]);
        // Same snapshot (only code refs moved), the clock set back: the incremental is newer.
        let items =
            vec![it("full", "2027-11-24T00:00:00Z", None), it("incr", "2026-11-24T00:00:00Z", Some("full"))];
        assert_eq!(ranked(items, &[Some(5), Some(5)]), ["incr", "full"]);
    }

    #[test]
    fn unknown_snapshots_rank_by_date_among_known_ones() {
        let items = vec![
            it("a", "2026-11-20T00:00:00Z", None),
            it("b", "2026-11-21T00:00:00Z", None),
            it("leftover", "2026-11-22T00:00:00Z", None),
            it("old-leftover", "2026-11-19T00:00:00Z", None),
        ];
        assert_eq!(ranked(items, &[Some(1), Some(2), None, None]), ["leftover", "b", "a", "old-leftover"]);
        // No backup repo at all: dates alone.
        let items = vec![it("x", "2026-11-21T00:00:00Z", None), it("y", "2026-11-22T00:00:00Z", None)];
        assert_eq!(ranked(items, &[None, None]), ["y", "x"]);
    }
}
