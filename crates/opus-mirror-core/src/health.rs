//! The backup's health inside the vault: a Markdown note (`health_note` in a source) that
//! Obsidian renders — newest snapshot, newest verified copy per target, the mirror, the last
//! check and drill with its time-to-recover, open warnings with what to do, and a Mermaid
//! chart of the last 30 snapshots.
//!
//! The note is built only from facts that change when something happens (a snapshot, a
//! bundle, a check, a drill, a warning), never from "now" or the time of the last run, so a
//! run that changed nothing leaves it byte-identical and nothing rewrites it. It is opus-mirror's
//! own output: snapshots leave it out (like the state dir), so it never trips the guard and
//! never makes a snapshot by itself.

use std::fmt::Write as _;

use crate::config::{Config, Source};
use crate::git::BackupRepo;
use crate::human::{human_bytes, short_id};

/// The note's text for `source`, from the state dir and the backup repo.
pub fn render(cfg: &Config, source: &Source) -> String {
    let history = crate::state::history(&cfg.state_dir).unwrap_or_default();
    // `now` only feeds ages, which the note never shows (they would change every run).
    let st = crate::status::of(cfg, source, &history, chrono::Utc::now(), cfg.max_age);
    let mut s = String::new();
    let _ = writeln!(s, "# Backup health: {}\n", source.name);
    let _ = writeln!(
        s,
        "> Written by opus-mirror after each run that changed something; left out of the snapshots.\n\
         > `opus-mirror status` gives the live view (ages, staleness).\n"
    );
    let warnings: Vec<String> = st.warnings.iter().map(|w| strip_time(w)).collect();
    if warnings.is_empty() {
        let _ = writeln!(s, "**All good** at the newest snapshot.\n");
    } else {
        let _ = writeln!(s, "**Needs attention**:\n");
        for w in &warnings {
            let _ = writeln!(s, "- {w}");
        }
        s.push('\n');
    }

    let _ = writeln!(s, "| what | newest | detail |\n|---|---|---|");
    match (&st.last_snapshot, &st.last_snapshot_id) {
        (Some(t), Some(id)) => {
            let _ = writeln!(s, "| snapshot | {t} | `{id}` |");
        }
        _ => {
            let _ = writeln!(s, "| snapshot | none yet | |");
        }
    }
    if let Some(url) = &source.mirror {
        let pushed = crate::state::load::<crate::check::Pushed>(
            &cfg.state_dir,
            &crate::check::pushed_state(&source.name),
        );
        let snap_ref = BackupRepo::branch_ref(&source.snapshot_branch);
        let detail = match (&pushed, &st.last_snapshot_id) {
            (Some(p), Some(id)) if p.refs.get(&snap_ref).is_some_and(|o| o.starts_with(id.as_str())) => {
                "has the newest snapshot".to_string()
            }
            (Some(_), _) => "confirmed".to_string(),
            (None, _) => "never confirmed".to_string(),
        };
        let _ = writeln!(s, "| mirror | {} | {detail} |", crate::config::mask_url(url));
    }
    for b in &st.bundles {
        match (&b.file, &b.time) {
            (Some(f), Some(t)) => {
                let _ = writeln!(
                    s,
                    "| target `{}` | {t} | {f} ({}, verified) |",
                    b.target,
                    human_bytes(b.size.unwrap_or(0))
                );
            }
            _ => {
                let _ = writeln!(s, "| target `{}` | none yet | |", b.target);
            }
        }
    }
    if let Some(c) = &st.last_check {
        let _ = writeln!(s, "| check | {} | {}: {} |", c.time, c.outcome, first_line(&c.detail));
    }
    if let Some(d) = &st.last_drill {
        let verdict =
            if d.ok() { "passed".to_string() } else { format!("FAILED: {}", d.problems.join("; ")) };
        let _ = writeln!(
            s,
            "| drill | {} | from `{}`: {verdict}; time-to-recover {:.1} s for {} files |",
            d.time,
            d.target,
            d.ttr_ms as f64 / 1000.0,
            d.files
        );
    }
    if st.preserved > 0 {
        let _ = writeln!(s, "| preserved tips | {} | `opus-mirror preserved` lists them |", st.preserved);
    }
    s.push('\n');
    s.push_str(&chart(cfg, source));
    s
}

/// A Mermaid chart of the last 30 of the user's snapshots: size (MiB) as bars.
fn chart(cfg: &Config, source: &Source) -> String {
    let Ok(repo) = BackupRepo::open(&BackupRepo::location(&cfg.state_dir, &source.name)) else {
        return String::new();
    };
    // Safety snapshots are rare (one per restore in place): 60 read cover 30 of the user's.
    let mut list: Vec<_> = crate::snapshot::history::list_newest(&repo, &source.snapshot_branch, 60)
        .unwrap_or_default()
        .into_iter()
        .filter(|i| !i.safety)
        .take(30)
        .collect();
    if list.len() < 2 {
        return String::new();
    }
    list.reverse();
    let labels: Vec<String> = list.iter().map(|i| format!("\"{}\"", i.at.format("%m-%d %H:%M"))).collect();
    let sizes: Vec<String> = list.iter().map(|i| format!("{:.2}", i.bytes as f64 / 1_048_576.0)).collect();
    let files: Vec<String> = list.iter().map(|i| i.files.to_string()).collect();
    format!(
        "## The last {n} snapshots\n\n```mermaid\nxychart-beta\n    title \"Size of each snapshot (MiB)\"\n    x-axis [{}]\n    y-axis \"MiB\"\n    bar [{}]\n```\n\nFiles: {} (newest `{}`).\n",
        labels.join(", "),
        sizes.join(", "),
        files.join(", "),
        short_id(&list.last().map(|i| i.id.clone()).unwrap_or_default()),
        n = list.len()
    )
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// A status warning without the trailing `(TIME)` of the event, so a warning that persists
/// reads the same from run to run.
fn strip_time(w: &str) -> String {
    match w.rfind(" (") {
        Some(i) if w.ends_with(')') && w[i + 2..].starts_with("20") => w[..i].to_string(),
        _ => w.to_string(),
    }
}
