//! Pruning one (source, target): the guard check, the retention plan over what the target
//! holds, and the removals. Shared by `prune` and `run`, so both judge bundles alike.

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::config::{Config, Source, Target};
use crate::retention::{self, Decision, Item};
use crate::target;

/// What pruning a target would do.
pub enum Plan {
    /// The guard tripped for this source: nothing is removed until it is acknowledged.
    Suspended(crate::guard::Alarm),
    Decisions(Vec<Decision>),
}

/// Plans the pruning of `source`'s bundles on `t`.
pub fn plan(cfg: &Config, source: &Source, t: &Target, now: DateTime<Utc>) -> Result<Plan> {
    if let Some(a) =
        crate::state::load::<crate::guard::Alarm>(&cfg.state_dir, &crate::guard::state_name(&source.name))
    {
        return Ok(Plan::Suspended(a));
    }
    let items: Vec<Item> = target::list(t, &source.name)?
        .iter()
        .map(|l| Item {
            name: l.name.clone(),
            // A bundle without a manifest (never verified) is dated by its name.
            created: l
                .manifest
                .as_ref()
                .and_then(|m| m.created_at())
                .or_else(|| date_from_name(&l.name))
                .unwrap_or(now),
            verified: l.manifest.as_ref().is_some_and(|m| m.verified),
            base: l.manifest.as_ref().and_then(|m| m.base.clone()),
        })
        .collect();
    Ok(Plan::Decisions(retention::plan(&items, &t.keep, now).map_err(anyhow::Error::msg)?))
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
}
