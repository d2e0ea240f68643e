//! Which bundle on a target holds newer data, decided by what the bundles hold, never by
//! their dates: clocks cannot be trusted (a laptop a day behind dates its newest bundle
//! yesterday; one that ran a year ahead leaves bundles dated next year).
//!
//! A bundle ranks by the generation of its snapshot on the snapshot branch of the backup
//! repo (first parent from the tip: a descendant holds newer data), then by its depth in the
//! incremental chain (an incremental holds what its base holds, and more), and only then by
//! its date. Retention (`prune`) orders by this rank; so should anything that picks "the
//! newest bundle" (incremental base, `every`, drill and unbundle chains).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::bundle::manifest::Manifest;
use crate::config::{Config, Source};
use crate::git::BackupRepo;
use crate::target::Listed;

/// The snapshot branch of a source's backup repo, first parent from the tip: the generation
/// of each snapshot a bundle names (higher is newer). Empty when the backup repo cannot be
/// read (a target pruned from another machine): bundles then rank by their dates.
#[derive(Debug, Default)]
pub struct SnapshotHistory {
    tip: Option<String>,
    generation: HashMap<String, u64>,
}

impl SnapshotHistory {
    /// Walks back from the tip only until every snapshot in `wanted` is found: bundles hold
    /// recent snapshots, and a walk of all 100,000 snapshots would cost a second.
    pub fn read(cfg: &Config, source: &Source, wanted: &HashSet<&str>) -> SnapshotHistory {
        let Ok(repo) = BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &source.name)) else {
            return SnapshotHistory::default();
        };
        let Ok(Some(tip)) = repo.tip(&source.snapshot_branch) else { return SnapshotHistory::default() };
        let mut generation = HashMap::new();
        if let Ok(mut walk) = repo.repo.revwalk() {
            if walk.simplify_first_parent().and_then(|()| walk.push(tip)).is_ok() {
                for (depth, c) in walk.filter_map(Result::ok).enumerate() {
                    if generation.len() == wanted.len() {
                        break;
                    }
                    let hex = c.to_string();
                    if wanted.contains(hex.as_str()) {
                        generation.insert(hex, u64::MAX - depth as u64);
                    }
                }
            }
        }
        SnapshotHistory { tip: Some(tip.to_string()), generation }
    }

    /// The history of what `listed` holds.
    pub fn of(cfg: &Config, source: &Source, listed: &[Listed]) -> SnapshotHistory {
        let wanted: HashSet<&str> =
            listed.iter().filter_map(|l| l.manifest.as_ref()?.snapshot.as_deref()).collect();
        SnapshotHistory::read(cfg, source, &wanted)
    }

    /// The newest snapshot (the tip of the branch), as hex.
    pub fn tip(&self) -> Option<&str> {
        self.tip.as_deref()
    }

    /// The generation of the snapshot a bundle holds, if it is on the branch.
    pub(crate) fn generation(&self, m: &Manifest) -> Option<u64> {
        self.generation.get(m.snapshot.as_ref()?).copied()
    }
}

/// How far ahead of the clock a date may be before it is reported: drift between machines
/// sharing a target, a slow run.
const FUTURE_SLACK_MINUTES: i64 = 10;

/// Whether `t` is dated ahead of the clock: written while the clock was ahead, or the clock
/// is behind now. Such a date says nothing about how long ago it was.
pub fn ahead_of(t: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    t > now + chrono::Duration::minutes(FUTURE_SLACK_MINUTES)
}

/// The date a bundle carries: its manifest's, else the one in its name.
pub fn dated(l: &Listed) -> Option<DateTime<Utc>> {
    l.manifest.as_ref().and_then(|m| m.created_at()).or_else(|| date_from_name(&l.name))
}

/// The rank of every listed bundle by content (1 = oldest), parallel to `listed`. A bundle
/// without a date counts as dated `now`.
pub fn ranks(history: &SnapshotHistory, listed: &[Listed], now: DateTime<Utc>) -> Vec<u64> {
    let facts: Vec<Facts> = listed
        .iter()
        .map(|l| Facts {
            name: &l.name,
            created: dated(l).unwrap_or(now),
            base: l.manifest.as_ref().and_then(|m| m.base.as_deref()),
            generation: l.manifest.as_ref().and_then(|m| history.generation(m)),
        })
        .collect();
    rank(&facts)
}

/// `ranks` after reading the source's snapshot history.
pub(crate) fn by_content(cfg: &Config, source: &Source, listed: &[Listed], now: DateTime<Utc>) -> Vec<u64> {
    ranks(&SnapshotHistory::of(cfg, source, listed), listed, now)
}

/// What ranking needs to know of one bundle.
struct Facts<'a> {
    name: &'a str,
    created: DateTime<Utc>,
    base: Option<&'a str>,
    generation: Option<u64>,
}

/// Snapshot generation; then, among bundles of one snapshot, the chain that starts at the newer
/// full bundle (its generation, date, name), and within a chain the deeper bundle; then date,
/// then name. So a full bundle written after an incremental one with nothing changed (the
/// timer's weekly one) is the newest: the next incremental builds on it, prune keeps it, and a
/// damaged incremental of that snapshot no longer passes for the newest copy. A bundle whose
/// snapshot is unknown (no manifest, or not on the branch) takes the place of the newest known
/// bundle dated no later than itself, and its date decides among those.
fn rank(facts: &[Facts]) -> Vec<u64> {
    let by_name: HashMap<&str, usize> = facts.iter().enumerate().map(|(i, f)| (f.name, i)).collect();
    // The bundle a chain starts at (as far as its bases are listed), and how deep `i` is in it.
    let chain = |i: usize| {
        let mut d = 0;
        let mut cur = i;
        while let Some(&b) = facts[cur].base.and_then(|b| by_name.get(b)) {
            d += 1;
            cur = b;
            if d > facts.len() {
                break; // a cycle of hand-edited manifests
            }
        }
        (cur, d)
    };
    type Place<'a> = (u64, (u64, DateTime<Utc>, &'a str), usize);
    let place = |i: usize, g: u64| -> Place<'_> {
        let (root, d) = chain(i);
        (g, (facts[root].generation.unwrap_or(g), facts[root].created, facts[root].name), d)
    };
    let known: Vec<(Place, DateTime<Utc>)> = (0..facts.len())
        .filter_map(|i| facts[i].generation.map(|g| (place(i, g), facts[i].created)))
        .collect();
    let keys: Vec<(Place, DateTime<Utc>, &str)> = (0..facts.len())
        .map(|i| {
            let p = match facts[i].generation {
                Some(g) => place(i, g),
                None => known.iter().filter(|k| k.1 <= facts[i].created).max().map(|k| k.0).unwrap_or((
                    0,
                    (0, DateTime::<Utc>::MIN_UTC, ""),
                    0,
                )),
            };
            (p, facts[i].created, facts[i].name)
        })
        .collect();
    let mut idx: Vec<usize> = (0..facts.len()).collect();
    idx.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
    let mut out = vec![0; facts.len()];
    for (r, i) in idx.into_iter().enumerate() {
        out[i] = r as u64 + 1;
    }
    out
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

    fn f<'a>(name: &'a str, created: &str, base: Option<&'a str>, generation: Option<u64>) -> Facts<'a> {
        Facts { name, created: at(created), base, generation }
    }

    /// Names, newest content first.
    fn newest_first(facts: &[Facts]) -> Vec<String> {
        let r = rank(facts);
        let mut idx: Vec<usize> = (0..facts.len()).collect();
        idx.sort_by_key(|i| std::cmp::Reverse(r[*i]));
        idx.into_iter().map(|i| facts[i].name.to_string()).collect()
    }

    #[test]
    fn content_outranks_dates() {
        // A clock a day behind: the newest snapshot is dated yesterday.
        let v = [
            f("today", "2026-11-24T03:30:00Z", None, Some(1)),
            f("yesterday", "2026-11-23T03:31:00Z", None, Some(2)),
        ];
        assert_eq!(newest_first(&v), ["yesterday", "today"]);
        // Same snapshot (only code refs moved), the clock set back: the incremental is newer.
        let v = [
            f("full", "2027-11-24T00:00:00Z", None, Some(5)),
            f("incr", "2026-11-24T00:00:00Z", Some("full"), Some(5)),
        ];
        assert_eq!(newest_first(&v), ["incr", "full"]);
        // Same snapshot, a new full bundle after a long chain (nothing changed: the timer's
        // weekly one): the new chain is the newest, whatever the old chain's depth.
        let v = [
            f("old-full", "2026-11-01T00:00:00Z", None, Some(3)),
            f("i1", "2026-11-02T00:00:00Z", Some("old-full"), Some(4)),
            f("i2", "2026-11-03T00:00:00Z", Some("i1"), Some(5)),
            f("new-full", "2026-11-03T01:00:00Z", None, Some(5)),
        ];
        assert_eq!(newest_first(&v), ["new-full", "i2", "i1", "old-full"]);
        let v = [
            f("old-full", "2026-11-01T00:00:00Z", None, Some(3)),
            f("i2", "2026-11-03T00:00:00Z", Some("old-full"), Some(5)),
            f("new-full", "2026-11-03T01:00:00Z", None, Some(5)),
            f("on-new", "2026-11-03T02:00:00Z", Some("new-full"), Some(5)),
        ];
        assert_eq!(newest_first(&v), ["on-new", "new-full", "i2", "old-full"]);
    }

    #[test]
    fn unknown_snapshots_rank_by_date_among_known_ones() {
        let v = [
            f("a", "2026-11-20T00:00:00Z", None, Some(1)),
            f("b", "2026-11-21T00:00:00Z", None, Some(2)),
            f("leftover", "2026-11-22T00:00:00Z", None, None),
            f("old-leftover", "2026-11-19T00:00:00Z", None, None),
        ];
        assert_eq!(newest_first(&v), ["leftover", "b", "a", "old-leftover"]);
        // No backup repo at all: dates alone.
        let v = [f("x", "2026-11-21T00:00:00Z", None, None), f("y", "2026-11-22T00:00:00Z", None, None)];
        assert_eq!(newest_first(&v), ["y", "x"]);
    }
}
