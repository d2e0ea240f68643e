//! `opus-mirror hook install|uninstall`: a git hook that runs `opus-mirror run --quiet
//! --trigger hook` in the background (so git is not slowed and a commit never fails because
//! of a backup), and a Claude Code session-end hook. What was there is kept: an existing git
//! hook is chained and put back byte for byte on uninstall; settings.json is merged, and
//! restored exactly when nothing else changed it meanwhile.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use crate::cli::{HookArgs, HookCommand};
use crate::context::{env_var, Context};
use opus_mirror_core::config::{self, Source};
use opus_mirror_core::exit::Exit;
use opus_mirror_core::shell::quote;

/// Marks what opus-mirror wrote.
pub const MARK: &str = "# opus-mirror hook";
const CHAINED: &str = ".pre-opus-mirror";

/// The command hooks run: this binary, this config, in the background.
fn command(config: &Path, state_dir: &Path) -> Result<String> {
    let exe = std::env::current_exe()?.canonicalize()?;
    let log = state_dir.join("hook.log");
    Ok(format!(
        "OPUS_MIRROR_CONFIG={} nohup {} run --quiet --trigger hook >>{} 2>&1 </dev/null &",
        quote(&config.display().to_string()),
        quote(&exe.display().to_string()),
        quote(&log.display().to_string())
    ))
}

/// The git hook script.
pub(crate) fn git_hook_script(hook: &str, cmd: &str) -> String {
    format!(
        "#!/bin/sh\n{MARK}: backs up after `git {hook}` in the background; never fails git.\n\
         # Installed by `opus-mirror hook install`; `opus-mirror hook uninstall` removes it and\n\
         # puts back the hook it chains to ({hook}{CHAINED}), if there was one.\n\
         status=0\n\
         if [ -x \"$(dirname \"$0\")/{hook}{CHAINED}\" ]; then\n  \"$(dirname \"$0\")/{hook}{CHAINED}\" \"$@\" || status=$?\nfi\n\
         ( {cmd} ) >/dev/null 2>&1\n\
         exit $status\n"
    )
}

fn hooks_dir(repo: &git2::Repository) -> PathBuf {
    let configured = repo.config().ok().and_then(|c| c.get_path("core.hooksPath").ok());
    match configured {
        Some(p) if p.is_absolute() => p,
        Some(p) => repo.workdir().unwrap_or_else(|| repo.path()).join(p),
        None => repo.path().join("hooks"),
    }
}

/// The hooks git runs (githooks(5)): a hook name is one of these, never a path.
const GIT_HOOKS: &[&str] = &[
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "proc-receive",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "sendemail-validate",
    "fsmonitor-watchman",
    "p4-changelist",
    "p4-prepare-changelist",
    "p4-post-changelist",
    "p4-pre-submit",
    "post-index-change",
];

/// Refuses anything but a git hook name (`--git ../../a.txt` replaced a vault file).
fn check_hook_name(hook: &str) -> Result<()> {
    if GIT_HOOKS.contains(&hook) {
        return Ok(());
    }
    Err(opus_mirror_core::exit::UserError::usage(format!(
        "--git {hook:?} is not a git hook name\n  fix: use one of git's hooks, e.g. post-commit or post-merge (see `git help hooks`)"
    ))
    .into())
}

fn install_git(s: &Source, hook: &str, cmd: &str) -> Result<String> {
    check_hook_name(hook)?;
    let repo = git2::Repository::open(&s.path)
        .with_context(|| format!("{} is not a git repository", s.path.display()))?;
    let dir = hooks_dir(&repo);
    fs::create_dir_all(&dir)?;
    let path = dir.join(hook);
    let chained = dir.join(format!("{hook}{CHAINED}"));
    let mut note = String::new();
    if let Ok(existing) = fs::read_to_string(&path) {
        if !existing.contains(MARK) {
            if chained.exists() {
                bail!("{} exists already; move it away, then install again", chained.display());
            }
            fs::rename(&path, &chained)?;
            note = format!(" (your hook is kept as {} and still runs first)", chained.display());
        }
    } else if path.exists() {
        // Not text: a binary hook. Keep it the same way.
        fs::rename(&path, &chained)?;
        note = format!(" (your hook is kept as {} and still runs first)", chained.display());
    }
    opus_mirror_core::atomic::write_file(&path, git_hook_script(hook, cmd).as_bytes())?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    Ok(format!("{}: git {hook} hook installed at {}{note}", s.name, path.display()))
}

fn uninstall_git(s: &Source, hook: &str) -> Result<String> {
    check_hook_name(hook)?;
    let repo = git2::Repository::open(&s.path)
        .with_context(|| format!("{} is not a git repository", s.path.display()))?;
    let dir = hooks_dir(&repo);
    let path = dir.join(hook);
    let chained = dir.join(format!("{hook}{CHAINED}"));
    match fs::read_to_string(&path) {
        Ok(t) if t.contains(MARK) => {
            fs::remove_file(&path)?;
            if chained.exists() {
                fs::rename(&chained, &path)?;
                return Ok(format!("{}: git {hook} hook removed; your previous hook is back", s.name));
            }
            Ok(format!("{}: git {hook} hook removed", s.name))
        }
        _ => Ok(format!("{}: no opus-mirror {hook} hook to remove", s.name)),
    }
}

/// Claude Code's two project settings files: the personal one (not committed) and the shared one.
const CLAUDE_FILES: [&str; 2] = ["settings.local.json", "settings.json"];

fn claude_state(s: &Source, file: &str) -> String {
    match file {
        "settings.json" => format!("claude-settings-{}.json", s.name),
        _ => format!("claude-settings-local-{}.json", s.name),
    }
}

/// Keeps the personal settings file out of commits (in `.git/info/exclude`, which is never
/// committed itself) unless the repository already ignores it.
fn keep_uncommitted(s: &Source, rel: &str) -> Result<()> {
    let Ok(repo) = git2::Repository::open(&s.path) else { return Ok(()) };
    if repo.status_should_ignore(Path::new(rel)).unwrap_or(false) {
        return Ok(());
    }
    let exclude = repo.path().join("info").join("exclude");
    let mut text = fs::read_to_string(&exclude).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("/{rel}\n"));
    fs::create_dir_all(exclude.parent().expect("info/ has a parent"))?;
    opus_mirror_core::atomic::write_file(&exclude, text.as_bytes())
        .with_context(|| format!("cannot write {}", exclude.display()))
}

fn install_claude(cfg: &config::Config, s: &Source, cmd: &str, file: &str) -> Result<String> {
    let path = s.path.join(".claude").join(file);
    if file == "settings.local.json" {
        keep_uncommitted(s, ".claude/settings.local.json")?;
    }
    let original = fs::read(&path).ok();
    let mut v: Value = match &original {
        Some(b) => serde_json::from_slice(b)
            .with_context(|| format!("{} is not valid JSON; fix it first", path.display()))?,
        None => json!({}),
    };
    let full = format!("{cmd} {MARK}");
    let ends = v
        .as_object_mut()
        .context("settings.json must hold a JSON object")?
        .entry("hooks")
        .or_insert(json!({}));
    let list = ends
        .as_object_mut()
        .context("`hooks` in settings.json must be an object")?
        .entry("SessionEnd")
        .or_insert(json!([]));
    let arr = list.as_array_mut().context("`hooks.SessionEnd` must be an array")?;
    let present = arr.iter().any(|e| e.to_string().contains(MARK));
    if present {
        return Ok(format!("{}: Claude Code hook already in {}", s.name, path.display()));
    }
    arr.push(json!({"hooks": [{"type": "command", "command": full}]}));
    let mut bytes = serde_json::to_vec_pretty(&v)?;
    bytes.push(b'\n');
    opus_mirror_core::atomic::write_file(&path, &bytes)?;
    let saved = json!({"original": original.map(|b| String::from_utf8_lossy(&b).into_owned()), "written": String::from_utf8_lossy(&bytes)});
    opus_mirror_core::state::save(&cfg.state_dir, &claude_state(s, file), &saved)?;
    Ok(format!("{}: Claude Code session-end hook added to {}", s.name, path.display()))
}

fn uninstall_claude(cfg: &config::Config, s: &Source, file: &str) -> Result<String> {
    let path = s.path.join(".claude").join(file);
    let Ok(current) = fs::read(&path) else { return Ok(format!("{}: no {}", s.name, path.display())) };
    let saved: Option<Value> = opus_mirror_core::state::load(&cfg.state_dir, &claude_state(s, file));
    if let Some(saved) = &saved {
        if saved["written"].as_str().map(str::as_bytes) == Some(current.as_slice()) {
            match saved["original"].as_str() {
                Some(o) => opus_mirror_core::atomic::write_file(&path, o.as_bytes())?,
                None => fs::remove_file(&path)?,
            }
            opus_mirror_core::state::remove(&cfg.state_dir, &claude_state(s, file))?;
            return Ok(format!("{}: {} restored as it was", s.name, path.display()));
        }
    }
    // Edited since: remove only our entry.
    let mut v: Value = serde_json::from_slice(&current)?;
    let mut removed = false;
    if let Some(arr) = v.pointer_mut("/hooks/SessionEnd").and_then(Value::as_array_mut) {
        let before = arr.len();
        arr.retain(|e| !e.to_string().contains(MARK));
        removed = arr.len() != before;
    }
    if removed {
        let mut bytes = serde_json::to_vec_pretty(&v)?;
        bytes.push(b'\n');
        opus_mirror_core::atomic::write_file(&path, &bytes)?;
    }
    opus_mirror_core::state::remove(&cfg.state_dir, &claude_state(s, file))?;
    Ok(format!(
        "{}: {} ({})",
        s.name,
        if removed { "Claude Code hook removed" } else { "no opus-mirror Claude Code hook found" },
        path.display()
    ))
}

pub fn run(ctx: &mut Context, cmd: &HookCommand) -> Result<Exit> {
    let cfg = ctx.config()?;
    let config_path = config::locate(ctx.global.config.as_deref(), &env_var)?.canonicalize()?;
    let (args, install): (&HookArgs, bool) = match cmd {
        HookCommand::Install(a) => (a, true),
        HookCommand::Uninstall(a) => (a, false),
    };
    let git_hook = match (&args.git, args.claude) {
        (Some(h), _) => Some(h.clone()),
        (None, false) => Some("post-commit".to_string()),
        (None, true) => None,
    };
    let line = command(&config_path, &cfg.state_dir)?;
    for s in cfg.select_sources(args.source.source.as_deref())? {
        let is_git = git2::Repository::open(&s.path).is_ok();
        if let Some(h) = &git_hook {
            if is_git {
                let msg = if install { install_git(s, h, &line)? } else { uninstall_git(s, h)? };
                ctx.say(msg)?;
            } else {
                ctx.say(format!("{}: not a git repository; no git hook (use the timer)", s.name))?;
            }
        }
        if args.claude && install {
            let file = if args.shared { CLAUDE_FILES[1] } else { CLAUDE_FILES[0] };
            ctx.say(install_claude(&cfg, s, &line, file)?)?;
        } else if args.claude {
            // Uninstall takes ours out of whichever file holds it.
            for file in CLAUDE_FILES {
                if s.path.join(".claude").join(file).exists() {
                    ctx.say(uninstall_claude(&cfg, s, file)?)?;
                }
            }
        }
    }
    Ok(Exit::Ok)
}
