//! `opus-mirror schedule install|status|uninstall`: the daily run, as a systemd user timer
//! (`Persistent=true`, so a run missed while the machine was off happens at boot) or a
//! crontab line. A timer that is installed but not enabled is reported as a problem.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Result};

use crate::cli::{ScheduleArgs, ScheduleCommand};
use crate::context::{env_var, Context};
use opus_mirror_core::config;
use opus_mirror_core::exit::{Exit, UserError};
use opus_mirror_core::shell::{cron_word, systemd_word};

const UNIT: &str = "opus-mirror";
const CRON_MARK: &str = "# opus-mirror daily run";

fn parse_at(at: &str) -> Result<(u32, u32)> {
    let bad = || UserError::usage(format!("--at {at}: write the time of day as HH:MM, e.g. 03:30"));
    let (h, m) = at.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad().into());
    }
    Ok((h, m))
}

/// The systemd service and timer units; for a system timer, it runs as `user` (None: root,
/// or the user's own for a user timer).
pub(crate) fn systemd_units_as(
    exe: &Path,
    config: &Path,
    h: u32,
    m: u32,
    user: Option<&str>,
) -> (String, String) {
    // User= takes a plain name (systemd does not unquote it): only names that need no quoting.
    let run_as = user.filter(|u| valid_user(u)).map(|u| format!("User={u}\n")).unwrap_or_default();
    let service = format!(
        "[Unit]\nDescription=opus-mirror: snapshot, mirror and bundle the protected sources\nDocumentation=man:opus-mirror(1)\n\n\
         [Service]\nType=oneshot\n{run_as}Environment={}\nExecStart={} run --quiet --trigger timer\nNice=10\nIOSchedulingClass=idle\n",
        systemd_word(&format!("OPUS_MIRROR_CONFIG={}", config.display())),
        systemd_word(&exe.display().to_string())
    );
    let timer = format!(
        "[Unit]\nDescription=Daily opus-mirror run\n\n[Timer]\nOnCalendar=*-*-* {h:02}:{m:02}:00\nPersistent=true\nRandomizedDelaySec=5min\nUnit={UNIT}.service\n\n[Install]\nWantedBy=timers.target\n"
    );
    (service, timer)
}

/// A user name systemd's `User=` takes as is (the portable POSIX set).
fn valid_user(u: &str) -> bool {
    !u.is_empty()
        && !u.starts_with('-')
        && u.len() <= 32
        && u.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The crontab line.
pub(crate) fn cron_line(exe: &Path, config: &Path, h: u32, m: u32) -> String {
    format!(
        "{m} {h} * * * OPUS_MIRROR_CONFIG={} {} run --quiet --trigger timer {CRON_MARK}",
        cron_word(&config.display().to_string()),
        cron_word(&exe.display().to_string())
    )
}

/// Where the units go: the user's unit dir, or the system's (`OPUS_MIRROR_SYSTEM_UNIT_DIR`
/// overrides /etc/systemd/system, for packaging and tests).
fn unit_dir(system: bool) -> Result<PathBuf> {
    if system {
        return Ok(env_var("OPUS_MIRROR_SYSTEM_UNIT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/etc/systemd/system")));
    }
    Ok(config::xdg_dir(&env_var, "XDG_CONFIG_HOME", ".config")?.join("systemd").join("user"))
}

/// Whether the user's timers keep running with no login session (`loginctl enable-linger`).
fn lingers() -> Option<bool> {
    let user = env_var("USER")?;
    let o =
        Command::new("loginctl").args(["show-user", &user, "--property=Linger", "--value"]).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim() == "yes")
}

fn systemctl_in(system: bool, args: &[&str]) -> Result<String, String> {
    let o = Command::new("systemctl")
        .args(if system { &[][..] } else { &["--user"][..] })
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&o.stderr)
            .trim()
            .lines()
            .last()
            .unwrap_or("systemctl failed")
            .to_string())
    }
}

fn crontab() -> Result<String> {
    let o = Command::new("crontab").arg("-l").output()?;
    Ok(if o.status.success() { String::from_utf8_lossy(&o.stdout).into_owned() } else { String::new() })
}

fn set_crontab(text: &str) -> Result<()> {
    use std::io::Write;
    let mut c = Command::new("crontab").arg("-").stdin(Stdio::piped()).spawn()?;
    c.stdin.take().expect("piped").write_all(text.as_bytes())?;
    if !c.wait()?.success() {
        bail!("crontab - failed");
    }
    Ok(())
}

fn use_cron(a: &ScheduleArgs) -> bool {
    a.cron || (!a.systemd && !a.system && Command::new("systemctl").arg("--version").output().is_err())
}

pub fn run(ctx: &mut Context, cmd: &ScheduleCommand) -> Result<Exit> {
    let config_path = config::locate(ctx.global.config.as_deref(), &env_var)?;
    let _ = ctx.config()?; // validate before scheduling anything
    let config_path = config_path.canonicalize()?;
    let exe = std::env::current_exe()?.canonicalize()?;
    match cmd {
        ScheduleCommand::Install(a) => {
            let (h, m) = parse_at(&a.at)?;
            if use_cron(a) {
                let mut lines: Vec<String> =
                    crontab()?.lines().filter(|l| !l.contains(CRON_MARK)).map(str::to_string).collect();
                lines.push(cron_line(&exe, &config_path, h, m));
                set_crontab(&(lines.join("\n") + "\n"))?;
                ctx.say(format!("crontab: opus-mirror runs daily at {h:02}:{m:02}"))?;
                return Ok(Exit::Ok);
            }
            let dir = unit_dir(a.system)?;
            // Under sudo the system timer runs as the user who asked, with their config.
            let user =
                if a.system { env_var("SUDO_USER").filter(|u| !u.is_empty() && u != "root") } else { None };
            let (service, timer) = systemd_units_as(&exe, &config_path, h, m, user.as_deref());
            let write = |name: &str, text: &str| {
                opus_mirror_core::atomic::write_file(&dir.join(name), text.as_bytes()).map_err(|e| {
                    let fix = if a.system {
                        "run it as root (sudo), or use the user timer (without --system) and `loginctl enable-linger $USER`"
                    } else {
                        "check that the directory is writable"
                    };
                    anyhow::anyhow!("cannot write {}: {e}\n  fix: {fix}", dir.join(name).display())
                })
            };
            write(&format!("{UNIT}.service"), &service)?;
            write(&format!("{UNIT}.timer"), &timer)?;
            ctx.say(format!(
                "wrote {}/{UNIT}.service and {UNIT}.timer (daily at {h:02}:{m:02}, Persistent=true{})",
                dir.display(),
                user.as_deref().map(|u| format!(", as {u}")).unwrap_or_default()
            ))?;
            let scope = if a.system { "" } else { " --user" };
            match systemctl_in(a.system, &["daemon-reload"])
                .and_then(|_| systemctl_in(a.system, &["enable", "--now", &format!("{UNIT}.timer")]))
            {
                Ok(_) => {
                    ctx.say(format!("enabled: systemctl{scope} list-timers shows it"))?;
                    if !a.system && lingers() == Some(false) {
                        ctx.say("note: a user timer runs only while you are logged in; on a server run `loginctl enable-linger $USER` (or `sudo opus-mirror schedule install --system`)")?;
                    }
                    Ok(Exit::Ok)
                }
                Err(e) => {
                    ctx.warn(&format!(
                        "the timer is installed but not enabled ({e})\n  fix: in your desktop session run `systemctl --user daemon-reload && systemctl --user enable --now {UNIT}.timer`; on a server also `loginctl enable-linger $USER`"
                    ), None, None);
                    Ok(Exit::Warnings)
                }
            }
        }
        ScheduleCommand::Status(a) => {
            if use_cron(a) {
                return Ok(match crontab()?.lines().find(|l| l.contains(CRON_MARK)) {
                    Some(l) => {
                        ctx.say(format!("crontab: installed: {l}"))?;
                        Exit::Ok
                    }
                    None => {
                        ctx.say("crontab: not installed (opus-mirror schedule install --cron)")?;
                        Exit::Warnings
                    }
                });
            }
            let dir = unit_dir(a.system)?;
            if !dir.join(format!("{UNIT}.timer")).exists() {
                ctx.say("systemd timer: not installed (opus-mirror schedule install)")?;
                return Ok(Exit::Warnings);
            }
            match systemctl_in(a.system, &["is-enabled", &format!("{UNIT}.timer")]) {
                Ok(s) if s == "enabled" => {
                    let info = systemctl_in(
                        a.system,
                        &[
                            "show",
                            &format!("{UNIT}.timer"),
                            "-p",
                            "LastTriggerUSec",
                            "-p",
                            "NextElapseUSecRealtime",
                        ],
                    )
                    .unwrap_or_default();
                    ctx.say(format!("systemd timer: installed and enabled\n{info}"))?;
                    Ok(Exit::Ok)
                }
                other => {
                    let why = match other {
                        Ok(s) => s,
                        Err(e) => e,
                    };
                    ctx.say(format!(
                        "systemd timer: installed but NOT enabled ({why}): no daily run will happen"
                    ))?;
                    ctx.warn(&format!("enable it: systemctl --user enable --now {UNIT}.timer"), None, None);
                    Ok(Exit::Warnings)
                }
            }
        }
        ScheduleCommand::Uninstall(a) => {
            if use_cron(a) {
                let text = crontab()?;
                let kept: Vec<&str> = text.lines().filter(|l| !l.contains(CRON_MARK)).collect();
                set_crontab(&(kept.join("\n") + "\n"))?;
                ctx.say("crontab: opus-mirror line removed")?;
                return Ok(Exit::Ok);
            }
            let _ = systemctl_in(a.system, &["disable", "--now", &format!("{UNIT}.timer")]);
            let dir = unit_dir(a.system)?;
            for f in [format!("{UNIT}.timer"), format!("{UNIT}.service")] {
                let _ = std::fs::remove_file(dir.join(&f));
            }
            let _ = systemctl_in(a.system, &["daemon-reload"]);
            ctx.say(format!("systemd timer removed from {}", dir.display()))?;
            Ok(Exit::Ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_cron_lines() {
        assert_eq!(parse_at("03:30").unwrap(), (3, 30));
        assert!(parse_at("25:00").is_err() && parse_at("3h").is_err());
        let l = cron_line(Path::new("/usr/bin/opus-mirror"), Path::new("/c.toml"), 3, 30);
        assert_eq!(l, "30 3 * * * OPUS_MIRROR_CONFIG=/c.toml /usr/bin/opus-mirror run --quiet --trigger timer # opus-mirror daily run");
        // A config path that would run a command, or break the line at `%`, in a careless crontab.
        let evil =
            cron_line(Path::new("/usr/bin/opus-mirror"), Path::new("/h/it's $(touch x) 50%.toml"), 3, 30);
        assert!(evil.contains("'/h/it'\\''s $(touch x) 50\\%.toml'"), "{evil}");
        let (service, _) = systemd_units_as(
            Path::new("/opt/om bin/opus-mirror"),
            Path::new("/h/50% $HOME.toml"),
            3,
            30,
            None,
        );
        assert!(service.contains("Environment=\"OPUS_MIRROR_CONFIG=/h/50%% $$HOME.toml\""), "{service}");
        assert!(service.contains("ExecStart=\"/opt/om bin/opus-mirror\" run"), "{service}");
    }
}
