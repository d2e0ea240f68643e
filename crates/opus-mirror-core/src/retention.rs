//! Retention: which bundles of a target to keep, with restic's `forget` semantics, and the
//! safety rules on top. Pure: (bundles, policy, now) → a plan with a reason for every
//! decision; nothing here touches a file.
//!
//! restic's rules: bundles are taken newest first; `last` keeps the N newest; `hourly`,
//! `daily`, `weekly` (ISO weeks), `monthly`, `yearly` keep the newest bundle of each of the
//! N most recent periods that have one; while a bucket still has room, the oldest bundle is
//! kept too; `within` keeps everything newer than the duration before the newest bundle;
//! reasons are OR'd.
//!
//! "Newest" is by content (`Item::order`, ranked by the caller from the snapshot history and
//! the incremental chain), never by date: a clock a day behind dates the newest bundle
//! yesterday, and one that was a year ahead dates old bundles next year. The date is a label
//! and the bucket key only.
//!
//! Safety rules: nothing at all is removed while the newest bundle is unverified; unverified
//! bundles never fill a keep slot (so they never push a verified one out); the newest
//! verified bundle is always kept; a pinned bundle (written in this run, or holding the
//! newest snapshot) is kept; a bundle that a kept incremental builds on (directly or through
//! others) is kept.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// `keep = { ... }` of a target. Unset buckets keep nothing; an empty policy keeps all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepPolicy {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    /// A duration such as "14d" or "2w" (see `parse_duration`).
    pub within: Option<String>,
}

impl KeepPolicy {
    pub fn is_empty(&self) -> bool {
        self == &KeepPolicy::default()
    }
}

/// What retention needs to know of one bundle.
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    /// The date in its manifest or name: a label and the bucket key, not the order.
    pub created: DateTime<Utc>,
    /// Its rank by content: higher holds newer data. Ties fall back to `created`.
    pub order: u64,
    pub verified: bool,
    /// The bundle this one builds on (incremental bundles).
    pub base: Option<String>,
    /// Why it must be kept whatever the policy says (written in this run, holds the newest
    /// snapshot).
    pub pinned: Option<String>,
}

/// The decision for one bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub name: String,
    pub created: String,
    pub keep: bool,
    pub reasons: Vec<String>,
}

/// Parses "90s", "30min", "12h", "7d", "2w", "1y" and sums like "1w3d".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    // One checked parser for every span (no overflow, at most 10 000 years).
    crate::timeparse::parse_duration(s)
}

type Bucker = fn(DateTime<Utc>) -> i64;

fn hour(t: DateTime<Utc>) -> i64 {
    ((t.year() as i64 * 100 + t.month() as i64) * 100 + t.day() as i64) * 100 + t.hour() as i64
}
fn day(t: DateTime<Utc>) -> i64 {
    (t.year() as i64 * 100 + t.month() as i64) * 100 + t.day() as i64
}
fn week(t: DateTime<Utc>) -> i64 {
    let w = t.iso_week();
    w.year() as i64 * 100 + w.week() as i64
}
fn month(t: DateTime<Utc>) -> i64 {
    t.year() as i64 * 100 + t.month() as i64
}
fn year(t: DateTime<Utc>) -> i64 {
    t.year() as i64
}

/// Decides keep/remove for every bundle, newest content first. `now` only bounds which
/// bundle counts as newest for `within` (a bundle dated in the future is not trusted as the
/// reference).
pub fn plan(items: &[Item], policy: &KeepPolicy, now: DateTime<Utc>) -> Result<Vec<Decision>, String> {
    let mut sorted: Vec<&Item> = items.iter().collect();
    sorted.sort_by(|a, b| b.order.cmp(&a.order).then(b.created.cmp(&a.created)).then(b.name.cmp(&a.name)));
    let mut reasons: BTreeMap<usize, Vec<String>> = BTreeMap::new();

    if sorted.first().is_some_and(|n| !n.verified) {
        for i in 0..sorted.len() {
            add(&mut reasons, i, "the newest bundle is unverified: nothing is removed until it is".into());
        }
    }
    if policy.is_empty() {
        for i in 0..sorted.len() {
            add(&mut reasons, i, "no keep policy: everything is kept".into());
        }
    }
    if let Some(i) = sorted.iter().position(|b| b.verified) {
        add(&mut reasons, i, "newest verified bundle".into());
    }
    for (i, b) in sorted.iter().enumerate() {
        if let Some(why) = &b.pinned {
            add(&mut reasons, i, why.clone());
        }
    }
    if let Some(w) = &policy.within {
        let d = parse_duration(w)?;
        let latest = sorted.iter().map(|b| b.created).filter(|t| *t <= now).max().unwrap_or(now);
        for (i, b) in sorted.iter().enumerate() {
            if b.created > latest - d {
                add(&mut reasons, i, format!("within {w}"));
            }
        }
    }
    let buckets: [(Option<u32>, Option<Bucker>, &str); 6] = [
        (policy.last, None, "last"),
        (policy.hourly, Some(hour), "hourly"),
        (policy.daily, Some(day), "daily"),
        (policy.weekly, Some(week), "weekly"),
        (policy.monthly, Some(month), "monthly"),
        (policy.yearly, Some(year), "yearly"),
    ];
    // Only verified bundles fill keep slots: an unverified one must never push one out.
    let counted: Vec<usize> = (0..sorted.len()).filter(|&i| sorted[i].verified).collect();
    for (count, bucker, label) in buckets {
        let Some(mut left) = count.filter(|c| *c > 0) else { continue };
        // A set, not "differs from the previous one": in content order, dates need not fall.
        let mut seen = HashSet::new();
        for (n, &i) in counted.iter().enumerate() {
            if left == 0 {
                break;
            }
            let val = match bucker {
                Some(f) => f(sorted[i].created),
                None => n as i64,
            };
            let oldest = n == counted.len() - 1;
            let fresh = seen.insert(val);
            if fresh || oldest {
                let why = if fresh { label.to_string() } else { format!("oldest ({label} bucket not full)") };
                add(&mut reasons, i, why);
                left -= 1;
            }
        }
    }
    // Incremental bundles are useless without the bundles they build on.
    let by_name: HashMap<&str, usize> =
        sorted.iter().enumerate().map(|(i, b)| (b.name.as_str(), i)).collect();
    let kept: Vec<usize> = reasons.keys().copied().collect();
    for i in kept {
        let mut cur = sorted[i];
        while let Some(base) = &cur.base {
            let Some(&j) = by_name.get(base.as_str()) else { break };
            add(&mut reasons, j, format!("base of kept {}", sorted[i].name));
            cur = sorted[j];
        }
    }
    Ok(sorted
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let r = reasons.remove(&i).unwrap_or_default();
            Decision {
                name: b.name.clone(),
                created: b.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                keep: !r.is_empty(),
                reasons: if r.is_empty() { vec!["matches no keep rule".into()] } else { dedup(r) },
            }
        })
        .collect())
}

fn add(m: &mut BTreeMap<usize, Vec<String>>, i: usize, reason: String) {
    m.entry(i).or_default().push(reason);
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A verified full bundle whose content is as new as its date says.
    fn dated(name: String, created: DateTime<Utc>) -> Item {
        Item { name, created, order: created.timestamp() as u64, verified: true, base: None, pinned: None }
    }

    /// One bundle a day at 03:30 for `days` days ending on `end`.
    fn daily_calendar(end: &str, days: i64) -> Vec<Item> {
        let end = at(end);
        (0..days)
            .map(|d| {
                let t = end - Duration::days(d);
                dated(format!("b-{}", t.format("%Y-%m-%d")), t)
            })
            .collect()
    }

    fn kept(plan: &[Decision]) -> Vec<String> {
        plan.iter().filter(|d| d.keep).map(|d| d.name.clone()).collect()
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("26h").unwrap(), Duration::hours(26));
        assert_eq!(parse_duration("1w3d").unwrap(), Duration::days(10));
        assert_eq!(parse_duration("30min").unwrap(), Duration::minutes(30));
        assert!(parse_duration("7 days").is_err());
        assert!(parse_duration("3m").unwrap_err().contains("unknown unit `m`"));
    }

    #[test]
    fn daily_and_weekly_over_sixty_days() {
        let items = daily_calendar("2026-11-24T03:30:00Z", 60);
        let p = plan(
            &items,
            &KeepPolicy { daily: Some(7), weekly: Some(4), ..Default::default() },
            at("2026-11-24T12:00:00Z"),
        )
        .unwrap();
        insta::assert_debug_snapshot!(kept(&p));
    }

    #[test]
    fn monthly_and_yearly_over_three_years() {
        let items: Vec<Item> = (0..36)
            .map(|m| {
                let t = Utc.with_ymd_and_hms(2024 + m / 12, (m % 12) as u32 + 1, 15, 3, 30, 0).unwrap();
                dated(format!("b-{}", t.format("%Y-%m")), t)
            })
            .collect();
        let p = plan(
            &items,
            &KeepPolicy { monthly: Some(6), yearly: Some(5), ..Default::default() },
            at("2026-12-31T00:00:00Z"),
        )
        .unwrap();
        insta::assert_debug_snapshot!(kept(&p));
    }

    #[test]
    fn a_bucket_with_room_keeps_the_oldest() {
        let items = daily_calendar("2026-11-24T03:30:00Z", 3);
        let p =
            plan(&items, &KeepPolicy { daily: Some(7), ..Default::default() }, at("2026-11-24T12:00:00Z"))
                .unwrap();
        assert_eq!(kept(&p).len(), 3);
        let items: Vec<Item> = (0..4)
            .map(|h| dated(format!("b{h}"), at("2026-11-24T10:00:00Z") - Duration::minutes(h * 10)))
            .collect();
        let p =
            plan(&items, &KeepPolicy { daily: Some(2), ..Default::default() }, at("2026-11-24T12:00:00Z"))
                .unwrap();
        assert_eq!(kept(&p), vec!["b0", "b3"], "newest of the day, and the oldest while the bucket has room");
        assert_eq!(p[3].reasons, vec!["oldest (daily bucket not full)"]);
    }

    #[test]
    fn last_and_within_are_ored_with_reasons() {
        let items = daily_calendar("2026-11-24T03:30:00Z", 10);
        let p = plan(
            &items,
            &KeepPolicy { last: Some(2), within: Some("4d".into()), ..Default::default() },
            at("2026-11-24T12:00:00Z"),
        )
        .unwrap();
        insta::assert_yaml_snapshot!(p);
    }

    #[test]
    fn an_unverified_newest_bundle_freezes_removal() {
        let mut items = daily_calendar("2026-11-24T03:30:00Z", 5);
        items[0].verified = false;
        let p = plan(&items, &KeepPolicy { last: Some(1), ..Default::default() }, at("2026-11-24T12:00:00Z"))
            .unwrap();
        assert!(p.iter().all(|d| d.keep), "{p:#?}");
        assert!(p[1].reasons.contains(&"newest verified bundle".to_string()));
    }

    #[test]
    fn the_newest_verified_bundle_is_always_kept() {
        let items = daily_calendar("2026-11-24T03:30:00Z", 3);
        let p = plan(
            &items,
            &KeepPolicy { yearly: Some(0), last: Some(0), weekly: Some(0), ..Default::default() },
            at("2026-11-24T12:00:00Z"),
        )
        .unwrap();
        assert_eq!(kept(&p), vec!["b-2026-11-24"]);
    }

    #[test]
    fn unverified_bundles_never_fill_a_keep_slot() {
        // A killed run's leftover between two verified bundles: `last = 2` keeps two verified.
        let mut items = daily_calendar("2026-11-24T03:30:00Z", 3);
        items[1].verified = false;
        let p = plan(&items, &KeepPolicy { last: Some(2), ..Default::default() }, at("2026-11-24T12:00:00Z"))
            .unwrap();
        assert_eq!(kept(&p), vec!["b-2026-11-24", "b-2026-11-22"]);
        let p =
            plan(&items, &KeepPolicy { daily: Some(2), ..Default::default() }, at("2026-11-24T12:00:00Z"))
                .unwrap();
        assert_eq!(kept(&p), vec!["b-2026-11-24", "b-2026-11-22"]);
    }

    #[test]
    fn content_order_not_dates_decides_what_is_newest() {
        // The clock was a day behind for the newest bundle: its date is the oldest.
        let mut items = daily_calendar("2026-11-24T03:30:00Z", 3);
        items[2].order = u64::MAX;
        let p = plan(&items, &KeepPolicy { last: Some(1), ..Default::default() }, at("2026-11-24T12:00:00Z"))
            .unwrap();
        assert_eq!(kept(&p), vec!["b-2026-11-22"]);
        assert_eq!(p[0].reasons, vec!["newest verified bundle", "last"]);
        // Daily buckets still go by the date label, newest content first.
        let p =
            plan(&items, &KeepPolicy { daily: Some(2), ..Default::default() }, at("2026-11-24T12:00:00Z"))
                .unwrap();
        assert_eq!(kept(&p), vec!["b-2026-11-22", "b-2026-11-24"]);
    }

    #[test]
    fn pinned_bundles_are_kept_with_their_bases() {
        let t = at("2026-11-24T03:30:00Z");
        let mut items = vec![
            dated("new".into(), t),
            Item { base: Some("full".into()), ..dated("incr".into(), t - Duration::days(1)) },
            dated("full".into(), t - Duration::days(2)),
        ];
        items[1].pinned = Some("written in this run".into());
        let p = plan(&items, &KeepPolicy { last: Some(1), ..Default::default() }, t).unwrap();
        assert_eq!(kept(&p), vec!["new", "incr", "full"]);
        assert_eq!(p[1].reasons, vec!["written in this run"]);
        assert_eq!(p[2].reasons, vec!["base of kept incr"]);
    }

    #[test]
    fn fulls_that_kept_incrementals_need_are_kept() {
        let t = at("2026-11-24T03:30:00Z");
        let mk = |n: &str, d: i64, base: Option<&str>| Item {
            base: base.map(str::to_string),
            ..dated(n.into(), t - Duration::days(d))
        };
        let items =
            vec![mk("i2", 0, Some("i1")), mk("i1", 1, Some("f1")), mk("f1", 2, None), mk("f0", 9, None)];
        let p = plan(&items, &KeepPolicy { last: Some(1), ..Default::default() }, t).unwrap();
        assert_eq!(kept(&p), vec!["i2", "i1", "f1"]);
        assert!(p[2].reasons[0].starts_with("base of kept i2"));
    }
}
