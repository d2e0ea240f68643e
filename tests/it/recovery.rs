//! The recovery runbook cannot rot: every `sh` block of docs/disaster-recovery.md runs here,
//! section by section, against real backups made by `opus-mirror run`, and each section's
//! outcome is checked.

use std::fs;
use std::os::unix::fs::PermissionsExt;
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

/// The `sh` blocks of the section whose heading starts with `prefix` ("0.", "2b.").
fn section(prefix: &str) -> Vec<String> {
    sections()
        .into_iter()
        .find(|(h, _)| h.starts_with(prefix))
        .unwrap_or_else(|| panic!("no section {prefix}"))
        .1
}

fn run_section(env: &Env, vars: &[(&str, String)], preamble: &[String], blocks: &[String], name: &str) {
    let script = format!("set -euo pipefail\n{}\n{}", preamble.join("\n"), blocks.join("\n"));
    let bin_dir = Path::new(crate::helpers::bin()).parent().unwrap().to_path_buf();
    let mut c = Command::new("bash");
    c.arg("-c").arg(&script);
    env.isolate(&mut c);
    let tmp = env.path("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let o = c
        .env("TMPDIR", &tmp)
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

/// What `git status` says, independent of staging (the recovered index is the branch, so a
/// file staged as new shows as untracked): each edited or deleted path, and every new file.
fn changes(work: &Path) -> String {
    let diff = git(work, &["diff", "HEAD", "--name-status", "--no-renames"]).ok().stdout;
    let untracked = git(work, &["ls-files", "--others", "--exclude-standard"]).ok().stdout;
    let mut new: Vec<&str> = untracked.lines().collect();
    let mut changed = Vec::new();
    for l in diff.lines() {
        match l.split_once('\t') {
            Some(("A", p)) => new.push(p),
            _ => changed.push(l),
        }
    }
    new.sort();
    format!("{}\n--- new\n{}", changed.join("\n"), new.join("\n"))
}

/// What the runbook left in its temp dir (`TMPDIR` of every section).
fn temp_dirs(env: &Env) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(env.path("tmp")).unwrap().flatten().map(|e| e.path()).collect();
    v.sort();
    v
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
    // The working tree at the disaster: committed files deleted but not committed, a tracked
    // file edited, a new file staged, an unpushed commit.
    code.commit("vault/unpushed.md", "only here", "not pushed yet");
    let tracked = git(&code.work, &["ls-files", "vault"]).ok().stdout;
    let doomed: Vec<&str> = tracked.lines().filter(|l| l.ends_with(".md")).take(5).collect();
    assert_eq!(doomed.len(), 5);
    for f in &doomed {
        fs::remove_file(code.work.join(f)).unwrap();
    }
    let edited = tracked.lines().filter(|l| l.ends_with(".md")).nth(6).unwrap().to_string();
    fs::write(code.work.join(&edited), "edited, not committed\n").unwrap();
    fs::write(code.work.join("vault/staged.md"), "staged, not committed\n").unwrap();
    code.git(&["add", "vault/staged.md"]).ok();
    env.now = Some("2026-11-21T04:30:00Z".into());
    run_ok(&env);
    let status_before = changes(&code.work);
    assert!(status_before.contains(&format!("D\t{}", doomed[0])), "{status_before}");

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
        ("UPSTREAM", git(&code.work, &["remote", "get-url", "origin"]).ok().stdout.trim().to_string()),
        ("BUNDLE_DIR", drive.display().to_string()),
        ("RESTORE", restore.display().to_string()),
        ("LOST_PATH", lost.into()),
        ("OPUS_MIRROR_SRC", env!("CARGO_MANIFEST_DIR").into()),
        ("OPUS_MIRROR_CONFIG", env.config.display().to_string()),
        ("OPUS_MIRROR_NOW", "2026-11-22T03:30:00Z".into()),
    ];
    // Section 0 defines the helpers the procedures use.
    let preamble = section("0.");
    let skip = |n: &[u8]| n == b".git" || opus_mirror_core::snapshot::filter::is_secret(n);
    let find = section;

    let upstream = git(&code.work, &["remote", "get-url", "origin"]).ok().stdout.trim().to_string();
    // Someone holding only the drive finds the runbook, with this machine's values, beside the bundles.
    let beside = fs::read_to_string(drive.join("RESTORE.md")).expect("RESTORE.md on the drive");
    assert!(beside.contains("read-tree -u --reset") && beside.contains("export SOURCE=opus"), "{beside}");
    let log_before = git(&code.work, &["log", "--format=%H %s", "-5"]).ok().stdout;
    let check_exact = |how: &str| {
        treecmp::assert_same(&code.work, &restore, &skip);
        for f in &doomed {
            assert!(!restore.join(f).exists(), "{how}: {f} was deleted before the disaster and came back");
        }
        assert_eq!(changes(&restore), status_before, "{how}: git status differs");
        assert_eq!(git(&restore, &["log", "--format=%H %s", "-5"]).ok().stdout, log_before, "{how}: git log");
        assert_eq!(
            git(&restore, &["remote", "get-url", "origin"]).ok().stdout.trim(),
            upstream,
            "{how}: origin"
        );
        assert_eq!(temp_dirs(&env), Vec::<PathBuf>::new(), "{how}: the runbook left temp files behind");
    };

    run_section(&env, &vars, &preamble, &find("1."), "1. from the mirror");
    check_exact("from the mirror");

    // The drill runs this same section 2 on the same chain, and agrees with it.
    let d = env.run(&["drill", "--json"]).ok().json();
    assert_eq!(d[0]["stock_git_ok"], true, "{d}");
    assert!(d[0]["problems"].as_array().unwrap().is_empty(), "{d}");

    fs::rename(&restore, env.path("restored-from-mirror")).unwrap();
    run_section(&env, &vars, &preamble, &find("2."), "2. from a bundle");
    check_exact("from the bundles");

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
        doc.contains(&format!(
            "export BUNDLE_DIR={}",
            opus_mirror_core::shell::quote(&drive.display().to_string())
        )) && doc.contains("export SOURCE=opus")
            && doc.contains(&format!("export UPSTREAM={}", opus_mirror_core::shell::quote(&upstream))),
        "{}",
        &doc[..600.min(doc.len())]
    );
}

#[test]
fn the_rendered_values_are_inert_when_pasted_into_a_shell() {
    let env = Env::new();
    let vault = env.path("it's $(touch pwned-by-path) `touch pwned-tick` \"q\" 100%");
    vaultgen::create(&vault, &vaultgen::Spec { notes: 3, attachments: 0, ..Default::default() });
    env.write_config(&[("life", &vault)]);
    let doc = env.run(&["recovery-doc"]).ok().stdout;
    let start = doc.find("```sh\n").expect("a values block") + 6;
    let block = &doc[start..start + doc[start..].find("```").unwrap()];
    let mut c = Command::new("bash");
    c.arg("-c").arg(format!("set -eu\n{block}\nprintf %s \"$RESTORE\""));
    env.isolate(&mut c);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), vault.display().to_string());
    for p in ["pwned-by-path", "pwned-tick"] {
        assert!(!env.dir.path().join(p).exists(), "pasting the values ran a command: {block}");
    }
}

/// A git vault backed up by two daily runs, to a drive or (with `to_mirror`) a mirror on this
/// machine; the second run after an unpushed commit, a deleted note and an untracked file.
/// Returns the env, the repo, the note deleted before the disaster, and the drive or mirror.
fn backed_up_git_vault(to_mirror: bool) -> (Env, CodeRepo, String, PathBuf) {
    backed_up_git_vault_in(Env::new(), to_mirror, None)
}

/// [`backed_up_git_vault`] in `env`; with `remote`, to that rclone remote instead.
fn backed_up_git_vault_in(
    mut env: Env,
    to_mirror: bool,
    remote: Option<&str>,
) -> (Env, CodeRepo, String, PathBuf) {
    let code = CodeRepo::new(&env.path("code"));
    vaultgen::create(
        &code.work.join("vault"),
        &vaultgen::Spec { notes: 40, attachments: 2, ..Default::default() },
    );
    fs::write(code.work.join(".gitignore"), "vault/private/\n").unwrap();
    // Permission bits git does not keep: a private note and a private folder.
    fs::write(code.work.join("vault/diary.md"), "mine\n").unwrap();
    fs::set_permissions(code.work.join("vault/diary.md"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::create_dir_all(code.work.join("vault/private")).unwrap();
    fs::write(code.work.join("vault/private/plans.md"), "plans\n").unwrap();
    fs::set_permissions(code.work.join("vault/private"), fs::Permissions::from_mode(0o700)).unwrap();
    code.git(&["add", "-A"]).ok();
    code.git(&["commit", "-q", "-m", "vault"]).ok();
    let (backup, extra) = if let Some(remote) = remote {
        let line = format!("\n[[target]]\nname = \"cloud\"\nkind = \"rclone\"\nremote = {remote:?}\nmode = \"incremental\"\n");
        (PathBuf::from(remote), line)
    } else if to_mirror {
        let mirror = env.path("opus.git");
        git(env.dir.path(), &["init", "-q", "--bare", mirror.to_str().unwrap()]).ok();
        let line = format!("mirror = {:?}\n", mirror.display().to_string());
        (mirror, line)
    } else {
        let drive = env.path("drive");
        let target = format!(
            "\n[[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {:?}\nmode = \"incremental\"\n",
            drive.display().to_string()
        );
        (drive, target)
    };
    // Settings a user would hate to type again on the worst day.
    env.write_config_text(&format!(
        "state_dir = {:?}\n[[source]]\nname = \"opus\"\npath = {:?}\nexclude = [\"*.tmp\"]\n{extra}\n[network]\ntimeout = \"45s\"\ntoken_env = \"OPUS_TEST_TOKEN\"\n\n[guard]\nmin_files = 5\n\n[status]\nmax_age = \"30h\"\n",
        env.state.display().to_string(),
        code.work.display().to_string(),
    ));
    env.run(&["init"]).ok();
    env.now = Some("2026-11-20T03:30:00Z".into());
    run_ok(&env);
    code.commit("vault/unpushed.md", "only here", "not pushed");
    let tracked = git(&code.work, &["ls-files", "vault"]).ok().stdout;
    let doomed = tracked.lines().find(|l| l.ends_with(".md")).unwrap().to_string();
    fs::remove_file(code.work.join(&doomed)).unwrap();
    fs::write(code.work.join("vault/untracked.md"), "new\n").unwrap();
    // Staged work: a new file, a change and a removal, each in the index only.
    fs::write(code.work.join("vault/staged.md"), "staged, not committed\n").unwrap();
    let notes: Vec<&str> = tracked.lines().filter(|l| l.ends_with(".md")).collect();
    fs::write(code.work.join(notes[1]), "changed and staged\n").unwrap();
    code.git(&["add", "vault/staged.md", notes[1]]).ok();
    code.git(&["rm", "-q", notes[2]]).ok();
    fs::write(code.work.join(notes[3]), "edited, not staged\n").unwrap();
    env.now = Some("2026-11-21T03:30:00Z".into());
    run_ok(&env);
    (env, code, doomed, backup)
}

/// The recovered config is the one the backup carried: same settings, this machine's paths,
/// origin at the real upstream.
fn assert_setup_came_back(fresh: &Env, code: &CodeRepo, to: &Path, extra: &str) {
    let text = fs::read_to_string(&fresh.config).unwrap();
    for want in [
        "name = \"opus\"",
        "\"*.tmp\"",
        "timeout = \"45s\"",
        "OPUS_TEST_TOKEN",
        "min_files = 5",
        "max_age = \"30h\"",
        extra,
    ] {
        assert!(text.contains(want), "the recovered config lacks {want}:\n{text}");
    }
    assert!(text.contains(&format!("path = {:?}", to.display().to_string())), "{text}");
    let origin = git(to, &["remote", "get-url", "origin"]).ok().stdout;
    assert_eq!(origin.trim(), code.origin.display().to_string(), "origin does not point at the upstream");
}

/// `to` is the repository as it was: the same tree (deleted files absent), status and log.
fn assert_recovered_exactly(code: &CodeRepo, to: &Path, doomed: &str) {
    let skip = |n: &[u8]| n == b".git" || opus_mirror_core::snapshot::filter::is_secret(n);
    treecmp::assert_same(&code.work, to, &skip);
    treecmp::assert_same_modes(&code.work, to, &skip);
    assert!(!to.join(doomed).exists(), "a note deleted before the disaster came back");
    assert_eq!(changes(to), changes(&code.work), "git status differs");
    let status = |d: &Path| git(d, &["status", "--porcelain"]).ok().stdout;
    assert_eq!(status(to), status(&code.work), "git status --porcelain differs (staged work?)");
    assert!(status(to).contains("A  vault/staged.md"), "{}", status(to));
    let log = |d: &Path| git(d, &["log", "--format=%H %s"]).ok().stdout;
    assert_eq!(log(to), log(&code.work), "git log differs");
}

/// The worst day in one command: only the drive survives; `recover` brings back the repository
/// and the working tree exactly, every snapshot, and a setup whose next `run` goes on.
#[test]
fn recover_brings_everything_back_from_the_drive_in_one_command() {
    let (env, code, doomed, drive) = backed_up_git_vault(false);
    let snapshots_before =
        env.run(&["snapshots", "--json"]).ok().json()[0]["snapshots"].as_array().unwrap().len();

    // A new machine: nothing but the drive.
    let mut fresh = Env::new();
    fresh.now = Some("2026-11-22T03:30:00Z".into());
    let to = fresh.path("opus");
    let r = fresh.run(&["recover", "--from", drive.to_str().unwrap(), "--to", to.to_str().unwrap()]).ok();
    assert!(r.stdout.contains("recovered `opus`"), "{}", r.stdout);
    assert_recovered_exactly(&code, &to, &doomed);
    assert_setup_came_back(&fresh, &code, &to, "mode = \"incremental\"");
    let snaps = fresh.run(&["snapshots", "--json"]).ok().json();
    assert_eq!(snaps[0]["snapshots"].as_array().unwrap().len(), snapshots_before, "{snaps}");
    let older = fresh.path("older");
    fresh.run(&["restore", "--at", "2026-11-20T12:00:00Z", "--to", older.to_str().unwrap()]).ok();
    assert!(older.join(&doomed).exists(), "restore --at an older snapshot");
    // The next run goes on with the same history: nothing changed, no new snapshot.
    let r = fresh.run(&["run", "--json"]).json();
    assert!(r["exit"] == "ok" || r["exit"] == "warnings", "{r:#}");
    let after = fresh.run(&["snapshots", "--json"]).ok().json();
    assert_eq!(
        after[0]["snapshots"].as_array().unwrap().len(),
        snapshots_before,
        "the next run restarted the history"
    );
    // No tip was preserved (nothing was rewritten), and new work chains onto the old bundles.
    let kept = fresh.run(&["preserved", "--json"]).ok().json();
    assert_eq!(kept[0]["preserved"].as_array().map(|a| a.len()).unwrap_or(0), 0, "{kept}");
    fs::write(to.join("vault/after-recovery.md"), "new life\n").unwrap();
    fresh.now = Some("2026-11-23T03:30:00Z".into());
    let r = fresh.run(&["run", "--json"]).json();
    let bundle = r["steps"].as_array().unwrap().iter().find(|s| s["step"] == "bundle").unwrap().clone();
    assert!(
        bundle["detail"].as_str().unwrap().contains("-incr.bundle"),
        "not chained onto the old bundles: {bundle}"
    );
    // Recovering again over a backup repo that exists never replaces it: it may hold newer snapshots.
    fs::remove_file(&fresh.config).unwrap();
    let again = fresh.path("again");
    let r =
        fresh.run(&["recover", "--from", drive.to_str().unwrap(), "--to", again.to_str().unwrap()]).code(2);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    assert!(!fresh.config.exists() && !again.exists(), "a failed recover left its config or directory");
    // ... the one that exists is untouched: every snapshot, and the one made after recovery.
    let repo = fresh.home.join(".local/share/opus-mirror/repos/opus.git");
    assert_eq!(
        git(&repo, &["rev-list", "--count", "snapshot"]).ok().stdout.trim(),
        (snapshots_before + 1).to_string()
    );
}

#[test]
fn recover_brings_everything_back_from_the_mirror_in_one_command() {
    let (_env, code, doomed, mirror) = backed_up_git_vault(true);
    let fresh = Env::new();
    let to = fresh.path("opus");
    let r = fresh.run(&["recover", "--from", mirror.to_str().unwrap(), "--to", to.to_str().unwrap()]).ok();
    assert!(r.stdout.contains("recovered `opus` from the mirror"), "{}", r.stdout);
    assert_recovered_exactly(&code, &to, &doomed);
    assert_setup_came_back(&fresh, &code, &to, "mirror = ");
    let snaps = fresh.run(&["snapshots", "--json"]).ok().json();
    assert_eq!(snaps[0]["snapshots"].as_array().unwrap().len(), 2, "{snaps}");
    // The recovered setup mirrors to the same place again.
    let cfg = fresh.run(&["config", "check"]).ok().stdout;
    assert!(cfg.contains(mirror.to_str().unwrap()), "{cfg}");
}

/// From an off-site target (S3 on loopback) with nothing else left: the same exact result.
#[test]
fn recover_brings_everything_back_from_an_rclone_target() {
    let test = "recover_brings_everything_back_from_an_rclone_target";
    let Some(s3) = crate::helpers::servers::S3Server::start(test) else { return };
    s3.mkbucket("backups");
    let mut env = Env::new();
    env.vars = s3.rclone_env();
    let (_env, code, doomed, _) = backed_up_git_vault_in(env, false, Some("s3:backups/opus"));
    let mut fresh = Env::new();
    fresh.vars = s3.rclone_env();
    let to = fresh.path("opus");
    let r = fresh.run(&["recover", "--from", "rclone:s3:backups/opus", "--to", to.to_str().unwrap()]).code(2);
    assert!(r.stderr.contains("--source"), "{}", r.stderr);
    let r = fresh
        .run(&[
            "recover",
            "--from",
            "rclone:s3:backups/opus",
            "--source",
            "opus",
            "--to",
            to.to_str().unwrap(),
        ])
        .ok();
    assert!(r.stdout.contains("recovered `opus`"), "{}", r.stdout);
    assert_recovered_exactly(&code, &to, &doomed);
    assert_setup_came_back(&fresh, &code, &to, "remote = \"s3:backups/opus\"");
    let snaps = fresh.run(&["snapshots", "--json"]).ok().json();
    assert_eq!(snaps[0]["snapshots"].as_array().unwrap().len(), 2, "{snaps}");
    // An older snapshot comes back too, and the next run chains onto the bucket's bundles.
    let older = fresh.path("older");
    fresh.run(&["restore", "--at", "2026-11-20T12:00:00Z", "--to", older.to_str().unwrap()]).ok();
    assert!(older.join(&doomed).exists(), "restore --at an older snapshot");
    fs::write(to.join("vault/after-recovery.md"), "new life\n").unwrap();
    fresh.now = Some("2026-11-23T03:30:00Z".into());
    let r = fresh.run(&["run", "--json"]).json();
    let bundle = r["steps"].as_array().unwrap().iter().find(|s| s["step"] == "bundle").unwrap().clone();
    assert!(
        bundle["detail"].as_str().unwrap().contains("-incr.bundle"),
        "not chained onto the bucket's bundles: {bundle}"
    );
    let kept = fresh.run(&["preserved", "--json"]).ok().json();
    assert_eq!(kept[0]["preserved"].as_array().map(|a| a.len()).unwrap_or(0), 0, "{kept}");
}

/// `--at` brings back the repository as it was then: the files of that day's snapshot and the
/// branch at the commit it was on, with every snapshot still in the history.
#[test]
fn recover_at_an_earlier_time_brings_back_that_day() {
    let (_env, code, doomed, drive) = backed_up_git_vault(false);
    let pushed = git(&code.work, &["rev-parse", "HEAD~1"]).ok().stdout.trim().to_string();
    let fresh = Env::new();
    let to = fresh.path("opus");
    let r = fresh
        .run(&[
            "recover",
            "--from",
            drive.to_str().unwrap(),
            "--at",
            "2026-11-20T12:00:00Z",
            "--to",
            to.to_str().unwrap(),
        ])
        .ok();
    assert!(r.stdout.contains("as of then"), "{}", r.stdout);
    assert!(to.join(&doomed).exists(), "the note deleted on the 21st is missing from the 20th");
    assert!(!to.join("vault/untracked.md").exists() && !to.join("vault/unpushed.md").exists());
    assert_eq!(git(&to, &["rev-parse", "HEAD"]).ok().stdout.trim(), pushed, "the branch is not where it was");
    assert_eq!(git(&to, &["status", "--porcelain"]).ok().stdout, "", "the 20th's tree was clean");
    let snaps = fresh.run(&["snapshots", "--json"]).ok().json();
    assert_eq!(snaps[0]["snapshots"].as_array().unwrap().len(), 2, "{snaps}");
    // The newer commit is not lost: it is on the backup remote.
    assert!(git(&to, &["log", "--oneline", "backup/main"]).ok().stdout.contains("not pushed"));
}

/// A vault with no empty folder: the runbook's empty-folder step finds nothing to make, which
/// must not fail the drill's stock-git half nor `recover` (both run it under `pipefail`).
#[test]
fn a_vault_without_empty_folders_drills_and_recovers() {
    let env = Env::new();
    let code = CodeRepo::new(&env.path("code"));
    fs::create_dir_all(code.work.join("notes")).unwrap();
    fs::write(code.work.join("notes/a.md"), "a\n").unwrap();
    code.git(&["add", "-A"]).ok();
    code.git(&["commit", "-q", "-m", "notes"]).ok();
    let drive = env.path("drive");
    env.write_config_with_drive("opus", &code.work, "", &drive, "");
    env.run(&["init"]).ok();
    env.run(&["snapshot"]).ok();
    env.run(&["bundle"]).ok();
    let empty = git(&env.backup_repo("opus"), &["ls-tree", "-r", "-t", "snapshot"]).ok().stdout;
    assert!(
        !empty.contains("4b825dc642cb6eb9a060e54bf8d69288fbee4904"),
        "the vault has an empty folder:\n{empty}"
    );
    let r = env.run(&["drill", "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let fresh = Env::new();
    let to = fresh.path("opus");
    fresh.run(&["recover", "--from", drive.to_str().unwrap(), "--to", to.to_str().unwrap()]).ok();
    assert_eq!(fs::read_to_string(to.join("notes/a.md")).unwrap(), "a\n");
}

/// The git-only procedures — nothing but git and the runbook's own text — give back what
/// `recover` does: the tree with deleted files absent, the permission bits (a 0600 note, a
/// 0700 folder), and `git status --porcelain` with what was staged, added and removed. From
/// the mirror and one full bundle in four commands, and from a chain of bundles.
#[test]
fn the_git_only_procedures_bring_back_staging_and_permission_bits() {
    let preamble = section("0.");
    for (to_mirror, name) in [(true, "1."), (false, "2."), (false, "2b.")] {
        let (mut env, code, doomed, backup) = backed_up_git_vault(to_mirror);
        let blocks = section(name);
        if name == "1." || name == "2b." {
            let commands: Vec<String> =
                blocks.concat().lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
            assert!(commands.len() <= 4, "section {name} is more than four commands: {commands:#?}");
        }
        let mut bundle = String::new();
        if name == "2b." {
            // One bundle that stands alone: a full one holding the newest snapshot.
            let text = fs::read_to_string(&env.config).unwrap().replace("\"incremental\"", "\"full\"");
            env.write_config_text(&text);
            env.now = Some("2026-11-21T05:00:00Z".into());
            env.run(&["bundle", "--force"]).ok();
            let mut full: Vec<String> = fs::read_dir(&backup)
                .unwrap()
                .map(|e| e.unwrap().path().display().to_string())
                .filter(|n| n.ends_with(".bundle") && !n.ends_with("-incr.bundle"))
                .collect();
            full.sort();
            bundle = full.pop().expect("a full bundle");
        }
        let restore = env.path("restored");
        let vars: Vec<(&str, String)> = vec![
            ("SOURCE", "opus".into()),
            ("SNAPSHOT_BRANCH", "snapshot".into()),
            ("BRANCH", "main".into()),
            ("MIRROR", backup.display().to_string()),
            ("BUNDLE_DIR", backup.display().to_string()),
            ("BUNDLE", bundle),
            ("UPSTREAM", code.origin.display().to_string()),
            ("RESTORE", restore.display().to_string()),
        ];
        run_section(&env, &vars, &preamble, &blocks, name);
        assert_recovered_exactly(&code, &restore, &doomed);
        assert_eq!(
            git(&restore, &["remote", "get-url", "origin"]).ok().stdout.trim(),
            code.origin.display().to_string(),
            "{name}: origin"
        );
        assert_eq!(temp_dirs(&env), Vec::<PathBuf>::new(), "{name}: temp files left behind");
    }
}

/// `restore_extras` reads a commit message from the backup, which an attacker who holds the
/// drive or the bucket controls: its `Mode:`, `Staged:` and `Left-Out:` lines never reach
/// outside the restored tree (`..`, quoted `..`, a symlink), and never set setuid.
#[test]
fn the_runbooks_restore_extras_stays_inside_the_tree_whatever_the_message_says() {
    let env = Env::new();
    let outside = env.path("outside.txt");
    fs::write(&outside, "mine\n").unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o600)).unwrap();
    let repo = env.path("r");
    git(env.dir.path(), &["init", "-q", "-b", "main", repo.to_str().unwrap()]).ok();
    fs::write(repo.join("a.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(repo.join("a.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(repo.join("note.md"), "n\n").unwrap();
    // A real exception under a name git quotes (a tab, a `%`, a backslash): unquoted right.
    fs::write(repo.join("100%s\t\\x.md"), "q\n").unwrap();
    std::os::unix::fs::symlink(&outside, repo.join("link")).unwrap();
    git(&repo, &["add", "-A"]).ok();
    let msg = "hostile\n\nModes: 0644 0755 0755\nMode: 4755 a.sh\nMode: 0777 link\n\
               Mode: 0777 ../outside.txt\nMode: 0777 \"\\056\\056/outside.txt\"\n\
               Mode: 0666 note.md/../../outside.txt\nStaged: ../outside.txt\nStaged: link\n\
               Staged-Delete: ../outside.txt\nLeft-Out: ../outside.txt\n\
               Mode: 0600 \"100%s\\t\\\\x.md\"\n";
    git(&repo, &["-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "-m", msg]).ok();
    let preamble = section("0.");
    let vars = vec![("R", repo.display().to_string())];
    run_section(&env, &vars, &preamble, &["restore_extras \"$R\" HEAD\n".to_string()], "restore_extras");
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&outside), 0o600, "a hostile Mode: line reached a file outside the tree");
    assert_eq!(mode(&repo.join("a.sh")), 0o755, "setuid from a backup");
    assert_eq!(mode(&repo.join("note.md")), 0o644);
    assert_eq!(mode(&repo.join("100%s\t\\x.md")), 0o600, "a quoted path's own Mode: line");
    assert_eq!(fs::read_to_string(&outside).unwrap(), "mine\n");
    let status = git(&repo, &["status", "--porcelain"]).ok().stdout;
    assert_eq!(status, "", "nothing outside the tree, nor the symlink's target, was staged");
}
