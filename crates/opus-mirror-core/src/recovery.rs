//! The recovery runbook: `docs/disaster-recovery.md`, compiled in, and rendered for this
//! machine by filling in the values its commands use (source, mirror, drive, cloud remote,
//! newest bundle). No secrets: URLs are masked, tokens never appear. Every value is quoted for
//! the shell (single quotes), so a `$(...)` in a path or branch name is never run when the block
//! is pasted.

use crate::config::{mask_url, Config, TargetKind};
use crate::shell::quote;

/// The runbook as committed.
pub const RUNBOOK: &str = include_str!("../../../docs/disaster-recovery.md");

/// The `sh` blocks of the runbook's sections whose headings start with `prefix` ("0.", "2."):
/// what the drill runs, so the drill and the documented restore can never disagree.
pub(crate) fn runbook_blocks(prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_section = false;
    let mut block: Option<String> = None;
    for line in RUNBOOK.lines() {
        match (&mut block, line) {
            (None, l) if l.starts_with("## ") => in_section = l[3..].starts_with(prefix),
            (None, "```sh") if in_section => block = Some(String::new()),
            (Some(b), "```") => {
                out.push(std::mem::take(b));
                block = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// Runs the runbook's section 0 (its helpers), then the sections named by `sections`, then
/// `then`, under `bash -euo pipefail` with `vars`: the product runs the documented commands
/// themselves, so the two cannot drift apart. The error is the script's last line on stderr.
pub(crate) fn run_runbook(
    sections: &[&str],
    then: &str,
    vars: &[(&str, &std::ffi::OsStr)],
) -> Result<(), String> {
    let mut script = String::from("set -euo pipefail\n");
    for s in std::iter::once(&"0.").chain(sections) {
        runbook_blocks(s).iter().for_each(|b| script.push_str(b));
    }
    script.push_str(then);
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .envs(vars.iter().copied())
        .env_remove("CLOUD")
        .env_remove("KEY")
        .output()
        .map_err(|e| format!("cannot run bash (the runbook needs bash and git): {e}"))?;
    if o.status.success() {
        return Ok(());
    }
    Err(String::from_utf8_lossy(&o.stderr)
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_string())
}

/// The runbook with a block of this machine's values prepended.
pub fn render(cfg: &Config) -> String {
    let mut vars = Vec::new();
    if let Some(s) = cfg.sources.first() {
        vars.push(format!("export SOURCE={}", quote(&s.name)));
        vars.push(format!("export SNAPSHOT_BRANCH={}", quote(&s.snapshot_branch)));
        vars.push(format!("export RESTORE={}", quote(&s.path.display().to_string())));
        let repo = git2::Repository::open(&s.path).ok();
        if let Some(b) =
            repo.as_ref().and_then(|r| r.head().ok().and_then(|h| h.shorthand().ok().map(str::to_string)))
        {
            vars.push(format!("export BRANCH={}", quote(&b)));
        }
        if let Some(u) =
            repo.as_ref().and_then(|r| r.find_remote("origin").ok()?.url().ok().map(str::to_string))
        {
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
        host = crate::git::objects::host(),
        vars = vars.join("\n"),
        others = if others.is_empty() { String::new() } else { format!("\nOther sources:\n\n```text\n{}\n```\n", others.join("\n")) },
        body = RUNBOOK
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drill_gets_the_runbooks_own_git_only_procedure() {
        let helpers = runbook_blocks("0.");
        assert!(helpers.iter().any(|b| b.contains("restore_empty_dirs()")), "{helpers:?}");
        assert!(helpers.iter().any(|b| b.contains("restore_extras()")), "{helpers:?}");
        let bundle = runbook_blocks("2.").join("");
        assert!(bundle.contains("read-tree -u --reset") && bundle.contains("$BUNDLE_DIR"), "{bundle}");
        assert!(bundle.contains("restore_extras") && !bundle.contains("\"$BUNDLE\""), "{bundle}");
        assert!(runbook_blocks("9.").is_empty());
    }
}
