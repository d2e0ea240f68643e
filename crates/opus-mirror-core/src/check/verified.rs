//! What `check` has fully verified, so that `run` reads what is new plus a rotating slice
//! instead of everything (restic's `--read-data-subset`, chosen by age, not at random).
//!
//! One private file per source, `state/verified-SOURCE.json` (0600, written atomically). Each
//! item is a backup repo pack (`pack/NAME`: size + mtime) or a bundle on a drive
//! (`bundle/TARGET/FILE`: size + the manifest's sha256 + mtime), with when it was last read
//! whole without a problem. An item whose fingerprint differs from what was verified is new.
//!
//! The file is untrusted like everything read back: a symlink, an oversized file, bad JSON,
//! an unknown format or a date that does not parse makes [`load`] say why and return an
//! empty ledger, and an empty ledger means "read everything". Nothing here can make a check
//! read less than it should for longer than `check_every`: a verification dated in the future
//! counts as none.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Bigger than any honest ledger (a few hundred bytes per pack or bundle).
const MAX_BYTES: u64 = 16 << 20;
const FORMAT: u32 = 1;

/// How much a check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything (a hand `check`).
    Full,
    /// What is new or changed, what was last verified `every` ago or more, and, with
    /// `rotate`, a slice of the least recently verified sized by the time since the last
    /// slice, so that the slices re-read everything within `every`.
    New { every: Duration, rotate: bool },
}

/// Why an item is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Why {
    /// A full check reads everything.
    Full,
    /// Never verified (or its state was unusable).
    New,
    /// Its size, mtime or sha256 is not what was verified.
    Changed,
    /// Verified `every` ago or more (or, by its date, in the future).
    Overdue,
    /// The rotating slice: the least recently verified.
    Slice,
}

/// An item a check could read, as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub key: String,
    pub size: u64,
    pub mtime_ns: Option<i64>,
    pub sha256: Option<String>,
}

/// One verified item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Seen {
    size: u64,
    #[serde(default)]
    mtime_ns: Option<i64>,
    #[serde(default)]
    sha256: Option<String>,
    /// When it was read whole without a problem (RFC 3339).
    at: String,
}

/// Where an area's rotation stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Area {
    /// When the area's last slice was chosen (RFC 3339).
    last: Option<String>,
    /// Bytes of slice owed (positive) or read ahead (negative): a slice item is read whole,
    /// so one run may read more than its share and the next ones less.
    credit: i64,
}

/// What a source's checks have verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    format: u32,
    /// Per area (`pack`, `bundle/TARGET`).
    areas: BTreeMap<String, Area>,
    items: BTreeMap<String, Seen>,
    /// Items a check read and found damaged (when), until one reads them whole again: a
    /// run's bundle step starts a new chain rather than build on one of these.
    #[serde(default)]
    damaged: BTreeMap<String, String>,
}

impl Default for Ledger {
    fn default() -> Ledger {
        Ledger { format: FORMAT, areas: BTreeMap::new(), items: BTreeMap::new(), damaged: BTreeMap::new() }
    }
}

fn file_name(source: &str) -> String {
    format!("verified-{source}.json")
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// The ledger of `source`, and a warning when one exists but cannot be used (then it is
/// empty: everything is read, and the next save replaces it).
pub fn load(state_dir: &Path, source: &str) -> (Ledger, Option<String>) {
    let path = crate::state::dir(state_dir).join(file_name(source));
    match read(&path) {
        Ok(Some(l)) => (l, None),
        Ok(None) => (Ledger::default(), None),
        Err(why) => (
            Ledger::default(),
            Some(format!("{} is unusable ({why}): everything is read this time", path.display())),
        ),
    }
}

fn read(path: &Path) -> Result<Option<Ledger>, String> {
    let bytes = match crate::safe_fs::read_regular(path, MAX_BYTES) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let l: Ledger = serde_json::from_slice(&bytes).map_err(|e| format!("not a ledger: {e}"))?;
    if l.format != FORMAT {
        return Err(format!("format {}, this version reads {FORMAT}", l.format));
    }
    let dates =
        l.items.values().map(|s| Some(s.at.as_str())).chain(l.areas.values().map(|a| a.last.as_deref()));
    if dates.flatten().any(|t| parse_time(t).is_none()) {
        return Err("a date that does not parse".into());
    }
    Ok(Some(l))
}

/// Writes the ledger (0600: a temp file's mode, renamed over the old one).
pub fn save(state_dir: &Path, source: &str, l: &Ledger) -> anyhow::Result<()> {
    crate::state::save(state_dir, &file_name(source), l)
}

impl Ledger {
    /// Decides which of `items` (all of one area, as they are now) to read: None for an item
    /// skipped as verified. Moves the area's rotation on; nothing is marked verified here.
    pub fn select(
        &mut self,
        area: &str,
        items: &[Item],
        scope: Scope,
        now: DateTime<Utc>,
    ) -> Vec<Option<Why>> {
        let (every, rotate) = match scope {
            Scope::Full => {
                self.areas.insert(area.into(), Area { last: Some(stamp(now)), credit: 0 });
                return vec![Some(Why::Full); items.len()];
            }
            Scope::New { every, rotate } => (every, rotate),
        };
        let mut out: Vec<Option<Why>> = items
            .iter()
            .map(|it| match self.items.get(&it.key) {
                None => Some(Why::New),
                Some(s) if (s.size, &s.mtime_ns, &s.sha256) != (it.size, &it.mtime_ns, &it.sha256) => {
                    Some(Why::Changed)
                }
                Some(s) => match parse_time(&s.at) {
                    Some(at) if at <= now && now - at < every => None,
                    _ => Some(Why::Overdue),
                },
            })
            .collect();
        if !rotate {
            return out;
        }
        let a = self.areas.entry(area.into()).or_default();
        let total: u64 = items.iter().map(|i| i.size).sum();
        // The share of `every` since the last slice (all of it when there was none, or its
        // date is in the future: the clock is not to be trusted then).
        let share = match a.last.as_deref().and_then(parse_time) {
            Some(last) if last <= now => {
                ((now - last).num_seconds() as f64 / every.num_seconds().max(1) as f64).min(1.0)
            }
            _ => 1.0,
        };
        let total = i64::try_from(total).unwrap_or(i64::MAX);
        let mut credit = a.credit.saturating_add((total as f64 * share) as i64).min(total);
        // What is overdue is the least recently verified: it is read as part of the slice.
        for (it, why) in items.iter().zip(&out) {
            if *why == Some(Why::Overdue) {
                credit = credit.saturating_sub(i64::try_from(it.size).unwrap_or(i64::MAX));
            }
        }
        let mut order: Vec<usize> = (0..items.len()).filter(|&i| out[i].is_none()).collect();
        order.sort_by_key(|&i| (self.items.get(&items[i].key).map(|s| s.at.clone()), items[i].key.clone()));
        for i in order {
            if credit <= 0 {
                break;
            }
            out[i] = Some(Why::Slice);
            credit = credit.saturating_sub(i64::try_from(items[i].size).unwrap_or(i64::MAX));
        }
        // Credit left when every item was read is not carried: it would read them all again.
        let a = self.areas.get_mut(area).expect("inserted above");
        a.last = Some(stamp(now));
        a.credit = credit.clamp(-total, 0);
        out
    }

    /// Records `item` as read and found damaged at `now` (no longer verified).
    pub fn damaged(&mut self, item: &Item, now: DateTime<Utc>) {
        self.items.remove(&item.key);
        self.damaged.insert(item.key.clone(), stamp(now));
    }

    /// Whether the last check that read `key` found it damaged.
    pub fn is_damaged(&self, key: &str) -> bool {
        self.damaged.contains_key(key)
    }

    /// Records `item` as read whole without a problem at `now`.
    pub fn verified(&mut self, item: &Item, now: DateTime<Utc>) {
        self.damaged.remove(&item.key);
        let seen =
            Seen { size: item.size, mtime_ns: item.mtime_ns, sha256: item.sha256.clone(), at: stamp(now) };
        self.items.insert(item.key.clone(), seen);
    }

    /// Forgets the items of `area` that are gone (keys starting with `prefix` not in `keep`).
    pub(crate) fn forget_gone(&mut self, prefix: &str, keep: &[Item]) {
        let keep: std::collections::HashSet<&str> = keep.iter().map(|i| i.key.as_str()).collect();
        self.items.retain(|k, _| !k.starts_with(prefix) || keep.contains(k.as_str()));
        self.damaged.retain(|k, _| !k.starts_with(prefix) || keep.contains(k.as_str()));
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A file's size and mtime (nanoseconds since the epoch), as the ledger compares them.
pub fn stat(path: &Path) -> std::io::Result<(u64, Option<i64>)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.len(), Some(m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        parse_time(s).expect("a fixed date")
    }

    fn item(key: &str, size: u64) -> Item {
        Item { key: key.into(), size, mtime_ns: Some(1), sha256: None }
    }

    const WEEK: Scope = Scope::New { every: Duration::days(7), rotate: true };

    #[test]
    fn new_items_are_read_then_skipped_and_a_changed_one_is_read_again() {
        let mut l = Ledger::default();
        let items = vec![item("pack/a", 10), item("pack/b", 10)];
        let now = at("2026-11-01T00:00:00Z");
        assert_eq!(l.select("pack", &items, WEEK, now), [Some(Why::New), Some(Why::New)]);
        items.iter().for_each(|i| l.verified(i, now));
        // No time passed: no slice.
        assert_eq!(l.select("pack", &items, WEEK, now), [None, None]);
        let mut changed = items.clone();
        changed[1].mtime_ns = Some(2);
        assert_eq!(l.select("pack", &changed, WEEK, now), [None, Some(Why::Changed)]);
    }

    #[test]
    fn daily_slices_reread_everything_within_every_least_recently_verified_first() {
        let mut l = Ledger::default();
        let items: Vec<Item> = (0..14).map(|i| item(&format!("bundle/d/{i:02}"), 100)).collect();
        let mut now = at("2026-11-01T00:00:00Z");
        l.select("bundle/d", &items, WEEK, now);
        items.iter().for_each(|i| l.verified(i, now));
        let mut read_on: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for day in 1..=7 {
            now += Duration::days(1);
            let picked = l.select("bundle/d", &items, WEEK, now);
            let n = picked.iter().filter(|p| p.is_some()).count();
            assert!(n <= 2, "day {day}: a slice, not everything: {picked:?}");
            for (i, p) in picked.iter().enumerate() {
                if p.is_some() {
                    l.verified(&items[i], now);
                    read_on.entry(items[i].key.clone()).or_default().push(day);
                }
            }
        }
        assert_eq!(read_on.len(), 14, "every item re-read within a week: {read_on:?}");
    }

    #[test]
    fn without_rotation_only_new_and_overdue_items_are_read() {
        let mut l = Ledger::default();
        let items = vec![item("pack/a", 10), item("pack/b", 10)];
        let t0 = at("2026-11-01T00:00:00Z");
        l.verified(&items[0], t0);
        l.verified(&items[1], t0 + Duration::days(3));
        let hook = Scope::New { every: Duration::days(7), rotate: false };
        assert_eq!(l.select("pack", &items, hook, t0 + Duration::days(6)), [None, None]);
        assert_eq!(l.select("pack", &items, hook, t0 + Duration::days(8)), [Some(Why::Overdue), None]);
        // Dated in the future: not trusted.
        assert_eq!(l.select("pack", &items, hook, t0 + Duration::days(1)), [None, Some(Why::Overdue)]);
    }

    #[test]
    fn a_hostile_ledger_is_refused_with_a_reason() {
        let d = tempfile::tempdir().expect("temp dir");
        let sd = d.path();
        std::fs::create_dir_all(crate::state::dir(sd)).expect("state dir");
        let p = crate::state::dir(sd).join(file_name("v"));
        assert_eq!(load(sd, "v"), (Ledger::default(), None), "none yet: no warning");
        for bad in [
            &b"{not json"[..],
            b"{\"format\":2,\"areas\":{},\"items\":{}}",
            b"{\"format\":1,\"areas\":{},\"items\":{\"pack/a\":{\"size\":1,\"at\":\"yesterday\"}}}",
        ] {
            std::fs::write(&p, bad).expect("write");
            let (l, w) = load(sd, "v");
            assert_eq!(l, Ledger::default());
            assert!(w.is_some_and(|w| w.contains("unusable")));
        }
        std::fs::remove_file(&p).expect("rm");
        let real = sd.join("elsewhere.json");
        let mut good = Ledger::default();
        good.verified(&item("pack/a", 1), at("2026-11-01T00:00:00Z"));
        std::fs::write(&real, serde_json::to_vec(&good).expect("json")).expect("write");
        std::os::unix::fs::symlink(&real, &p).expect("symlink");
        let (l, w) = load(sd, "v");
        assert_eq!(l, Ledger::default(), "a symlink is not followed");
        assert!(w.is_some());
        std::fs::remove_file(&p).expect("rm");
        save(sd, "v", &good).expect("save");
        assert_eq!(load(sd, "v"), (good, None));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).expect("stat").permissions().mode() & 0o777, 0o600);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_load_without_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let d = tempfile::tempdir().expect("temp dir");
            std::fs::create_dir_all(crate::state::dir(d.path())).expect("state dir");
            std::fs::write(crate::state::dir(d.path()).join(file_name("v")), &data).expect("write");
            let (mut l, _) = load(d.path(), "v");
            let _ = l.select("pack", &[item("pack/a", 1)], WEEK, at("2026-11-01T00:00:00Z"));
        }
    }
}
