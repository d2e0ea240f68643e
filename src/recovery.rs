//! The recovery runbook: `docs/disaster-recovery.md`, compiled in, and rendered for this
//! machine by filling in the values its commands use (source, mirror, drive, cloud remote,
//! newest bundle). No secrets: URLs are masked, tokens never appear. Every value is quoted for
//! the shell (single quotes), so a `$(...)` in a path or branch name is never run when the block
//! is pasted.

use crate::config::{mask_url, Config, TargetKind};
use crate::shell::quote;

/// The runbook as committed.
pub const RUNBOOK: &str = include_str!("../docs/disaster-recovery.md");

/// The runbook with a block of this machine's values prepended.
pub fn render(cfg: &Config) -> String {
    let mut vars = Vec::new();
    if let Some(s) = cfg.sources.first() {
        vars.push(format!("export SOURCE={}", quote(&s.name)));
        vars.push(format!("export SNAPSHOT_BRANCH={}", quote(&s.snapshot_branch)));
        vars.push(format!("export RESTORE={}", quote(&s.path.display().to_string())));
        let repo = git2::Repository::open(&s.path).ok();
        if let Some(b) = repo.as_ref().and_then(|r| r.head().ok().and_then(|h| h.shorthand().ok().map(str::to_string))) {
            vars.push(format!("export BRANCH={}", quote(&b)));
        }
        if let Some(u) = repo.as_ref().and_then(|r| r.find_remote("origin").ok()?.url().ok().map(str::to_string)) {
            vars.push(format!("export UPSTREAM={}", quote(&mask_url(&u))));
        }
        if let Some(m) = &s.mirror {
            vars.push(format!("export MIRROR={}", quote(&mask_url(m))));
        }
    }
    for t in &cfg.targets {
        match &t.kind {
            TargetKind::Dir { path, .. } => vars.push(format!(
                "export BUNDLE_DIR={}   # target `{}`",
                quote(&path.display().to_string()),
                t.name
            )),
            TargetKind::Rclone { remote, .. } => {
                vars.push(format!("export CLOUD={}   # target `{}`", quote(&mask_url(remote)), t.name))
            }
        }
    }
    let others: Vec<String> = cfg
        .sources
        .iter()
        .skip(1)
        .map(|s| format!("#   source `{}`: {}", s.name, s.path.display()))
        .collect();
    format!(
        "<!-- Rendered by `opus-mirror recovery-doc` on {host}. Regenerate it after changing the config. -->\n\n\
         ## Values for this machine\n\nRun this first in the shell where you follow the steps below:\n\n```sh\n{vars}\n```\n{others}\n\n{body}",
        host = crate::snapshot::host(),
        vars = vars.join("\n"),
        others = if others.is_empty() { String::new() } else { format!("\nOther sources:\n\n```text\n{}\n```\n", others.join("\n")) },
        body = RUNBOOK
    )
}
