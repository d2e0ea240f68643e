//! `opus-mirror config check`: validate, then show the effective settings and their origin.

use anyhow::Result;
use serde_json::json;

use crate::context::Context;
use opus_mirror_core::config;
use opus_mirror_core::exit::Exit;

pub fn run(ctx: &mut Context) -> Result<Exit> {
    let cfg = ctx.config()?;
    if ctx.mode.json {
        let sources: Vec<_> = cfg
            .sources
            .iter()
            .map(|s| {
                let own: Vec<String> = opus_mirror_core::snapshot::filter::own_dirs(&cfg, s)
                    .iter()
                    .map(|o| crate::output::display_path(&o.rel))
                    .collect();
                json!({"name": s.name, "path": s.path, "exclude": s.exclude,
                       "include_secrets": s.include_secrets, "keep_secrets": s.keep_secrets,
                       "snapshot_branch": s.snapshot_branch,
                       "left_out_own_dirs": own})
            })
            .collect();
        let extra: serde_json::Map<_, _> =
            cfg.extra_env.iter().map(|(k, v)| (k.clone(), json!(config::mask(v)))).collect();
        let mut all = json!({"file": cfg.file, "state_dir": cfg.state_dir, "origins": cfg.origins, "sources": sources, "env": extra});
        if let (Some(obj), serde_json::Value::Object(rest)) =
            (all.as_object_mut(), config::effective_rest(&cfg))
        {
            obj.extend(rest);
        }
        ctx.json(&all)?;
    } else {
        write!(ctx.out, "{}", config::render_effective(&cfg))?;
        for s in &cfg.sources {
            for o in opus_mirror_core::snapshot::filter::own_dirs(&cfg, s) {
                ctx.say(format!(
                    "\nnote: {} is inside source `{}` ({}): its snapshots leave it out",
                    o.what,
                    s.name,
                    crate::output::display_path(&o.rel)
                ))?;
            }
        }
        ctx.say(format!("\nconfig ok: {} source(s)", cfg.sources.len()))?;
    }
    Ok(Exit::Ok)
}
