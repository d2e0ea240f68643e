//! `opus-mirror guard status|ack` and `opus-mirror notify test`.

use anyhow::Result;

use crate::cli::GuardCommand;
use crate::context::Context;
use opus_mirror_core::exit::Exit;
use opus_mirror_core::notify;
use opus_mirror_core::state;

pub fn run(ctx: &mut Context, cmd: &GuardCommand) -> Result<Exit> {
    let cfg = ctx.config()?;
    match cmd {
        GuardCommand::Status => {
            let mut any = false;
            let mut tripped = Vec::new();
            for s in &cfg.sources {
                if let Some(a) = state::load::<opus_mirror_core::guard::Alarm>(
                    &cfg.state_dir,
                    &opus_mirror_core::guard::state_name(&s.name),
                ) {
                    any = true;
                    ctx.note_warning(
                        &format!("{}: the guard tripped: {}", s.name, a.reasons.join("; ")),
                        Some(&s.name),
                        None,
                    );
                    tripped.push(serde_json::json!({"source": s.name, "alarm": a}));
                    ctx.say(format!(
                        "{}: tripped {} by snapshot {}: {}",
                        s.name,
                        a.time,
                        crate::output::short_id(&a.snapshot),
                        a.reasons.join("; ")
                    ))?;
                    ctx.say(format!("  previous state: {}", a.restore_command))?;
                    ctx.say(format!("  when it was intended: opus-mirror guard ack --source {}", s.name))?;
                }
            }
            if !any {
                ctx.say("no guard is tripped")?;
            }
            ctx.json(&serde_json::json!({ "tripped": tripped }))?;
            Ok(if any { Exit::Warnings } else { Exit::Ok })
        }
        GuardCommand::Ack(which) => {
            let _lock = ctx.lock(&cfg)?;
            let (mut acknowledged, mut not_tripped) = (Vec::new(), Vec::new());
            for s in cfg.select_sources(which.source.as_deref())? {
                if state::remove(&cfg.state_dir, &opus_mirror_core::guard::state_name(&s.name))? {
                    acknowledged.push(s.name.clone());
                    state::record_or_warn(
                        &cfg.state_dir,
                        &state::Event::new(ctx.now, "guard", Some(&s.name), None, Exit::Ok, "acknowledged"),
                    );
                    ctx.say(format!("{}: guard acknowledged; pruning resumes", s.name))?;
                } else {
                    not_tripped.push(s.name.clone());
                    ctx.say(format!("{}: no guard was tripped", s.name))?;
                }
            }
            ctx.json(&serde_json::json!({ "acknowledged": acknowledged, "not_tripped": not_tripped }))?;
            Ok(Exit::Ok)
        }
    }
}

pub(crate) fn notify_test(ctx: &mut Context) -> Result<Exit> {
    let cfg = ctx.config()?;
    if cfg.notify.is_empty() {
        ctx.say("no [notify] channel is configured")?;
        ctx.note_error("no [notify] channel is configured\n  fix: add a [notify] table to the config (docs/configuration.md)", None, None);
        return Ok(Exit::Usage);
    }
    let mut problems = cfg.notify.start();
    for level in [notify::Level::Success, notify::Level::Warning, notify::Level::Failure] {
        let a = notify::alert(
            level,
            "opus-mirror test alert",
            format!("This is a test of the {level:?} channel. Nothing is wrong."),
            None,
            Exit::Ok,
            ctx.now,
        );
        problems.extend(cfg.notify.send(&a));
    }
    // The healthcheck follows jobs: the test is one, started above and finished here.
    problems.extend(cfg.notify.finish(Exit::Ok, "opus-mirror test: the healthcheck works"));
    for p in &problems {
        eprintln!("error: {p}");
        ctx.note_error(&p.to_string(), None, None);
    }
    ctx.json(&serde_json::json!({ "sent": problems.is_empty(), "problems": problems.len() }))?;
    if problems.is_empty() {
        ctx.say("test alerts sent through every configured channel")?;
        Ok(Exit::Ok)
    } else {
        Ok(Exit::Failed)
    }
}
