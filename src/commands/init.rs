//! `opus-mirror init`: write a starter config (or add sources to an existing one) and
//! create every source's backup repo.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::cli::InitArgs;
use crate::context::{env_var, Context};
use opus_mirror_core::config::{self, ConfigError};
use opus_mirror_core::exit::Exit;
use opus_mirror_core::git::BackupRepo;

pub fn run(ctx: &mut Context, args: &InitArgs) -> Result<Exit> {
    let path = config::locate(ctx.global.config.as_deref(), &env_var)?;
    let mut wanted = Vec::new();
    for s in &args.sources {
        let abs = std::fs::canonicalize(s).map_err(|_| ConfigError {
            file: None,
            line: None,
            key: Some("--source".into()),
            problem: format!("the directory {} does not exist", s.display()),
            fix: "pass an existing directory".into(),
        })?;
        if !abs.is_dir() {
            return Err(ConfigError {
                file: None,
                line: None,
                key: Some("--source".into()),
                problem: format!("{} is a file, not a directory", abs.display()),
                fix: "pass the directory to back up".into(),
            }
            .into());
        }
        wanted.push(abs);
    }
    if path.exists() {
        let cfg = ctx.config()?;
        let mut taken: Vec<String> = cfg.sources.iter().map(|s| s.name.clone()).collect();
        let mut add = String::new();
        for p in wanted.iter().filter(|p| !cfg.sources.iter().any(|s| &&s.path == p)) {
            let name = config::name_for(p, &taken);
            taken.push(name.clone());
            add.push_str(&format!(
                "\n[[source]]\nname = {name:?}\npath = {:?}\nexclude = []\n",
                p.display().to_string()
            ));
            ctx.say(format!("added source `{name}` ({})", p.display()))?;
        }
        if !add.is_empty() {
            let old = std::fs::read_to_string(&path)?;
            opus_mirror_core::atomic::write_file(
                &path,
                format!("{}{add}", old.trim_end_matches('\n').to_owned() + "\n").as_bytes(),
            )
            .with_context(|| format!("cannot update {}", path.display()))?;
        } else {
            ctx.say(format!("config {} already exists; keeping it", path.display()))?;
        }
    } else {
        let mut named: Vec<(String, PathBuf)> = Vec::new();
        for p in wanted {
            let taken: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
            named.push((config::name_for(&p, &taken), p));
        }
        let text = config::starter_config(args.state_dir.as_deref(), &named);
        opus_mirror_core::atomic::write_file(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        ctx.say(format!("wrote {}", path.display()))?;
    }
    let cfg = ctx.config()?;
    let _lock = ctx.lock(&cfg)?;
    for s in &cfg.sources {
        let loc = BackupRepo::location(&cfg.state_dir, &s.name);
        BackupRepo::create(&loc, &s.snapshot_branch, &s.path)?;
        ctx.say(format!("backup repo for `{}`: {}", s.name, loc.display()))?;
    }
    for t in &cfg.targets {
        if let opus_mirror_core::config::TargetKind::Dir { path, require_mount } = &t.kind {
            if *require_mount && !opus_mirror_core::target::dir::on_own_mount(path) {
                let text = format!(
                    "target `{}`: {} is not on a mounted drive; not marking it (mount the drive and run init again)",
                    t.name,
                    path.display()
                );
                ctx.warn(&text, None, Some(&t.name));
                continue;
            }
            let uuid = opus_mirror_core::target::dir::mark(&t.name, path, &cfg.state_dir, ctx.now)?;
            ctx.say(format!("target `{}`: marked {} (uuid {uuid})", t.name, path.display()))?;
        }
    }
    if cfg.sources.is_empty() {
        ctx.say("no sources yet: run `opus-mirror init --source PATH` to add one")?;
    } else {
        ctx.say("next: `opus-mirror snapshot`")?;
    }
    Ok(Exit::Ok)
}
