//! The recovery runbook cannot rot: every `sh` block of docs/disaster-recovery.md runs here,
//! section by section, against real backups made by `opus-mirror run`, and each section's
//! outcome is checked.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::coderepo::CodeRepo;
use crate::helpers::{git, treecmp, vaultgen, Env};

/// The doc split into (heading, sh blocks).
fn sections() -> Vec<(String, Vec<String>)> {
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/disaster-recovery.md")).unwrap();
    let mut out: Vec<(String, Vec<String>)> = vec![("preamble".into(), vec![])];
    let mut block: Option<String> = None;
    for line in doc.lines() {
        match (&mut block, line) {
            (None, l) if l.starts_with("## ") => out.push((l[3..].to_string(), vec![])),
            (None, "```sh") => block = Some(String::new()),
            (Some(b), "```") => {
                out.last_mut().unwrap().1.push(std::mem::take(b));
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

fn run_section(env: &Env, vars: &[(&str, String)], preamble: &[String], blocks: &[String], name: &str) {
    let script = format!("set -euo pipefail\n{}\n{}", preamble.join("\n"), blocks.join("\n"));
    let bin_dir = Path::new(crate::helpers::bin()).parent().unwrap().to_path_buf();
    let mut c = Command::new("bash");
    c.arg("-c").arg(&script);
    env.isolate(&mut c);
    let o = c
        .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()))
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "runbook section `{name}` failed:\n--- script\n{script}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `run` succeeds: 0, or 3 when verify warns about untracked files (they are the point).
fn run_ok(env: &Env) {
    let r = env.run(&["run"]);
    assert!(r.code == 0 || r.code == 3, "run failed ({}):\n{}\n{}", r.code, r.stdout, r.stderr);
    assert!(!r.stdout.contains("FAIL"), "{}", r.stdout);
}

#[test]
fn the_disaster_recovery_runbook_works_end_to_end() {
    let mut env = Env::new();
    let code = CodeRepo::new(&env.path("code"));
    vaultgen::create(
        &code.work.join("vault"),
        &vaultgen::Spec { notes: 80, attachments: 3, ..Default::default() },
    );
    fs::write(code.work.join(".gitignore"), "vault/private/\n*.local.md\n.env\n").unwrap();
    code.git(&["add", "-A"]).ok();
    code.git(&["commit", "-q", "-m", "vault"]).ok();
    code.git(&["push", "-q"]).ok();
    fs::write(code.work.join("vault/inbox/untracked idea.md"), "not committed yet").unwrap();
    let mirror = env.path("mirror.git");
    git(env.dir.path(), &["init", "-q", "--bare", mirror.to_str().unwrap()]).ok();
    let drive = env.path("drive");
    env.write_config_text(&format!(
        "state_dir = {:?}\n[[source]]\nname = \"opus\"\npath = {:?}\nmirror = {:?}\nrecovery_doc = \"vault/00_system/docs/disaster-recovery.md\"\n\n[[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {:?}\nmode = \"incremental\"\n",
        env.state.display().to_string(),
        code.work.display().to_string(),
        mirror.display().to_string(),
        drive.display().to_string()
    ));
    env.run(&["init"]).ok();
    env.now = Some("2026-11-20T03:30:00Z".into());
    run_ok(&env);
    assert!(
        code.work.join("vault/00_system/docs/disaster-recovery.md").exists(),
        "run keeps the runbook in the vault"
    );
    // A day of work, committed; then a force-push rewrites main, and another run.
    vaultgen::mutate(&code.work.join("vault"), 1);
    code.git(&["add", "-A", "vault"]).ok();
    code.git(&["reset", "-q", "--", "vault/inbox/untracked idea.md"]).ok();
    code.git(&["commit", "-q", "-m", "day 1"]).ok();
    code.git(&["push", "-q"]).ok();
    let old_main = code.head();
    env.now = Some("2026-11-21T03:30:00Z".into());
    run_ok(&env);
    code.git(&["commit", "-q", "--amend", "-m", "day 1, rewritten"]).ok();
    code.git(&["push", "-q", "-f"]).ok();
    env.now = Some("2026-11-21T04:30:00Z".into());
    run_ok(&env);
    assert_eq!(
        fs::read_dir(&drive)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".bundle"))
            .count(),
        3
    );

    let restore = env.path("restored");
    let lost = "vault/10_projects";
    let vars: Vec<(&str, String)> = vec![
        ("SOURCE", "opus".into()),
        ("SNAPSHOT_BRANCH", "snapshot".into()),
        ("BRANCH", "main".into()),
        ("MIRROR", mirror.display().to_string()),
        ("BUNDLE_DIR", drive.display().to_string()),
        ("RESTORE", restore.display().to_string()),
        ("LOST_PATH", lost.into()),
        ("OPUS_MIRROR_SRC", env!("CARGO_MANIFEST_DIR").into()),
        ("OPUS_MIRROR_CONFIG", env.config.display().to_string()),
        ("OPUS_MIRROR_NOW", "2026-11-22T03:30:00Z".into()),
    ];
    let secs = sections();
    let preamble: Vec<String> = secs[0].1.clone();
    let skip = |n: &[u8]| n == b".git" || opus_mirror::snapshot::filter::is_secret(n);
    let find = |prefix: &str| {
        secs.iter()
            .find(|(h, _)| h.starts_with(prefix))
            .unwrap_or_else(|| panic!("no section {prefix}"))
            .1
            .clone()
    };

    run_section(&env, &vars, &preamble, &find("1."), "1. from the mirror");
    treecmp::assert_same(&code.work, &restore, &skip);

    run_section(&env, &vars, &preamble, &find("2."), "2. from a bundle");
    treecmp::assert_same(&code.work, &PathBuf::from(format!("{}-from-bundle", restore.display())), &skip);

    // A misfiring script deletes a folder, and a snapshot records the damage.
    let pristine = env.path("pristine");
    crate::helpers::copy_tree(&code.work.join(lost), &pristine);
    fs::remove_dir_all(code.work.join(lost)).unwrap();
    env.now = Some("2026-11-22T03:00:00Z".into());
    env.run(&["snapshot"]).ok();
    run_section(&env, &vars, &preamble, &find("3."), "3. files deleted by a script");
    treecmp::assert_same(&pristine, &code.work.join(lost), &|_| false);

    run_section(&env, &vars, &preamble, &find("4."), "4. history destroyed by a force-push");
    assert_eq!(git(&restore, &["rev-parse", "recovered"]).ok().stdout.trim(), old_main);

    run_section(&env, &vars, &preamble, &find("5."), "5. .env");
    assert!(env.home.join(".config/opus-mirror/.env").exists());

    run_section(&env, &vars, &preamble, &find("6."), "6. hook and timer");
    let hook = fs::read_to_string(code.work.join(".git/hooks/post-commit")).unwrap();
    assert!(hook.contains(opus_mirror::commands::hook::MARK));

    // The rendered runbook names this machine's values, and no secret.
    let doc = env.run(&["recovery-doc"]).ok().stdout;
    assert!(
        doc.contains(&format!("export BUNDLE_DIR={:?}", drive.display().to_string()))
            && doc.contains("export SOURCE=\"opus\""),
        "{}",
        &doc[..600.min(doc.len())]
    );
}
