//! Proving the backups (issue: check, drill, status, alerts, guard): corruption is found and
//! named, a drill catches a bundle holding the wrong tree, a stale backup raises the alarm,
//! alerts reach a real HTTP server and a command, and a misfiring script trips the guard.

use std::fs;
use std::path::{Path, PathBuf};

use crate::helpers::servers::HttpSink;
use crate::helpers::{git, treecmp, vaultgen, Env};

/// A plain vault with two snapshots and bundles on a drive (`mode` full or incremental).
fn setup(extra: &str) -> (Env, PathBuf, PathBuf) {
    let mut env = Env::new();
    let vault = env.path("vault");
    vaultgen::create(&vault, &vaultgen::Spec { notes: 100, attachments: 4, ..Default::default() });
    let drive = env.path("drive");
    env.write_config_text(&format!(
        "state_dir = {:?}\n{extra}\n[[source]]\nname = \"vault\"\npath = {:?}\n\n[[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {:?}\nmode = \"incremental\"\n",
        env.state.display().to_string(),
        vault.display().to_string(),
        drive.display().to_string()
    ));
    env.run(&["init"]).ok();
    env.now = Some("2026-11-20T03:30:00Z".into());
    env.run(&["snapshot"]).ok();
    env.run(&["bundle"]).ok();
    vaultgen::mutate(&vault, 1);
    env.now = Some("2026-11-21T03:30:00Z".into());
    env.run(&["snapshot"]).ok();
    env.run(&["bundle"]).ok();
    (env, vault, drive)
}

fn files(drive: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(drive)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn flip_byte(p: &Path, at: u64) {
    let mut b = fs::read(p).unwrap();
    let i = (at as usize).min(b.len() - 1);
    b[i] ^= 0x40;
    fs::write(p, b).unwrap();
}

#[test]
fn check_passes_on_whole_backups() {
    let (env, _vault, _drive) = setup("");
    let r = env.run(&["check", "--json"]).ok().json();
    assert_eq!(r["ok"], true);
    let areas: Vec<&str> =
        r["areas"].as_array().unwrap().iter().map(|a| a["area"].as_str().unwrap()).collect();
    assert!(
        areas.iter().any(|a| a.starts_with("backup repo")) && areas.iter().any(|a| a.starts_with("bundles")),
        "{areas:?}"
    );
}

#[test]
fn a_flipped_byte_in_a_bundle_is_named() {
    let (env, _vault, drive) = setup("");
    let full = files(&drive, "Z.bundle")[0].clone();
    let name = full.file_name().unwrap().to_string_lossy().to_string();
    flip_byte(&full, fs::metadata(&full).unwrap().len() / 2);
    let r = env.run(&["check"]).code(1);
    assert!(r.stderr.contains(&name) && r.stderr.contains("sha256"), "{}", r.stderr);
    // Even when the manifest agrees with the damaged file (damage before it was written),
    // the pack itself is read: `git bundle verify` would not notice.
    let manifest = drive.join(format!("{name}.json"));
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    use sha2::Digest;
    m["sha256"] = hex::encode(sha2::Sha256::digest(fs::read(&full).unwrap())).into();
    fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let r = env.run(&["check"]).code(1);
    assert!(r.stderr.contains(&format!("{name}: pack")), "{}", r.stderr);
}

#[test]
fn a_truncated_bundle_is_named() {
    let (env, _vault, drive) = setup("");
    let inc = files(&drive, "-incr.bundle")[0].clone();
    let len = fs::metadata(&inc).unwrap().len();
    fs::OpenOptions::new().write(true).open(&inc).unwrap().set_len(len / 2).unwrap();
    let r = env.run(&["check"]).code(1);
    let name = inc.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        r.stderr.contains(&format!("{name}: {} bytes, but its manifest says {len}", len / 2)),
        "{}",
        r.stderr
    );
}

#[test]
fn a_missing_prerequisite_bundle_is_named() {
    let (env, _vault, drive) = setup("");
    let full = files(&drive, "Z.bundle")[0].clone();
    let name = full.file_name().unwrap().to_string_lossy().to_string();
    fs::remove_file(&full).unwrap();
    fs::remove_file(drive.join(format!("{name}.json"))).unwrap();
    let r = env.run(&["check"]).code(1);
    assert!(
        r.stderr.contains(&format!("builds on {name}, which is missing from the target")),
        "{}",
        r.stderr
    );
}

#[test]
fn damaged_or_missing_objects_in_the_backup_repo_are_named() {
    let (env, _vault, _drive) = setup("");
    let packs = env.backup_repo("vault").join("objects/pack");
    let mut pks = files(&packs, ".pack");
    // Corrupt a byte in the middle of the newest pack: the pack read names the object, the walk
    // its path.
    let newest = pks.iter().max_by_key(|p| fs::metadata(p).unwrap().modified().unwrap()).unwrap().clone();
    flip_byte(&newest, fs::metadata(&newest).unwrap().len() / 2);
    let r = env.run(&["check"]).code(1);
    assert!(
        r.stderr.contains(&format!("pack {}: object ", newest.display())) && r.stderr.contains("is damaged"),
        "{}",
        r.stderr
    );
    // `status` is what a script or a person asks "are my backups good?": a failed check puts
    // them in doubt, so it exits 1 (not 0 with a line of text), fresh as they may be.
    let s = env.run(&["status", "--max-age", "1000d"]).code(1);
    assert!(s.stdout.contains("! last check failed"), "{}", s.stdout);
    let j = env.run(&["status", "--max-age", "1000d", "--json"]).code(1).envelope();
    assert_eq!(j["exit"], 1, "{j:#}");
    // A whole pack lost: the objects it held are missing, each named.
    pks.retain(|p| p != &newest);
    fs::remove_file(&newest).unwrap();
    fs::remove_file(newest.with_extension("idx")).unwrap();
    let r = env.run(&["check"]).code(1);
    assert!(r.stderr.contains("is missing") && r.stderr.contains("refs/heads/snapshot"), "{}", r.stderr);
}

#[test]
fn drill_restores_and_catches_a_bundle_holding_another_tree() {
    let (env, vault, drive) = setup("");
    let r = env.run(&["drill", "--json"]).ok().json();
    assert!(r[0]["problems"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r[0]["stock_git_ok"], true);
    assert!(r[0]["files"].as_u64().unwrap() > 100);
    let status = env.run(&["status", "--json", "--max-age", "1000d"]).ok().json();
    assert!(status["sources"][0]["last_drill"]["ttr_ms"].is_u64());
    // The newest bundle's manifest now claims the older snapshot: the drill must notice,
    // naming the files that differ.
    let inc = files(&drive, "-incr.bundle.json")[0].clone();
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&inc).unwrap()).unwrap();
    let older = git(&env.backup_repo("vault"), &["rev-parse", "snapshot~1"]).ok().stdout.trim().to_string();
    m["snapshot"] = older.into();
    fs::write(&inc, serde_json::to_vec(&m).unwrap()).unwrap();
    let r = env.run(&["drill"]).code(1);
    assert!(r.stderr.contains("drill of vault from drive FAILED"), "{}", r.stderr);
    assert!(r.stderr.contains("inbox/day 1 note 0.md is not in the snapshot"), "{}", r.stderr);
    let _ = vault;
}

/// An untouched vault over a weekend is not stale: each day's run found the drive's verified
/// bundles already holding the current snapshot ("nothing changed"), which confirms the
/// off-machine copy as current then. Once the runs stop, the alarm comes as before.
#[test]
fn an_untouched_vault_backed_up_by_daily_runs_is_not_stale() {
    let (mut env, _vault, drive) = setup("[status]\nmax_age = \"26h\"");
    let bundles = files(&drive, ".bundle");
    for day in ["2026-11-22", "2026-11-23", "2026-11-24"] {
        env.now = Some(format!("{day}T03:30:00Z"));
        env.run(&["run", "--quiet"]).ok();
    }
    assert_eq!(files(&drive, ".bundle"), bundles, "nothing changed, yet a bundle was written");
    env.now = Some("2026-11-24T12:00:00Z".into());
    let j = env.run(&["status", "--json"]).ok().json();
    assert_eq!(j["stale"], false, "{j:#}");
    assert_eq!(j["sources"][0]["newest_good_backup"], "2026-11-24T03:30:00Z", "{j:#}");
    env.now = Some("2026-11-26T12:00:00Z".into());
    let r = env.run(&["status"]).code(8);
    assert!(r.stdout.contains("vault: STALE"), "{}", r.stdout);
}

#[test]
fn status_raises_the_stale_alarm_from_backdated_state() {
    let (mut env, _vault, _drive) = setup("[status]\nmax_age = \"26h\"");
    env.now = Some("2026-11-21T12:00:00Z".into());
    let j = env.run(&["status", "--json"]).ok().json();
    assert_eq!(j["stale"], false);
    assert_eq!(j["sources"][0]["bundles"][0]["verified"], true);
    env.now = Some("2026-11-23T12:00:00Z".into());
    let r = env.run(&["status"]).code(8);
    assert!(
        r.stdout.contains("vault: STALE") && r.stderr.contains("older than 26h"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    env.run(&["status", "--max-age", "3d"]).ok();
    let log = env.run(&["log", "--json"]).ok().json();
    assert!(log.as_array().unwrap().iter().any(|e| e["step"] == "bundle"));
}

#[test]
fn alerts_reach_a_webhook_a_healthcheck_and_a_command() {
    let sink = HttpSink::start();
    // `notify test` below runs the command again: the file lives in a dir that goes with the test.
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("alert-env");
    let notify = format!(
        "[notify]\nhealthcheck = {:?}\n[notify.on_failure]\nwebhook = {:?}\ncommand = [\"sh\", \"-c\", \"env | grep ^OPUS_MIRROR_ALERT_ | sort > {}\"]\n",
        sink.url("/ping/abc"),
        sink.url("/hook/secret-token"),
        out.display()
    );
    let (env, _vault, drive) = setup(&notify);
    let full = files(&drive, "Z.bundle")[0].clone();
    flip_byte(&full, 100);
    let r = env.run(&["check"]).code(1);
    assert!(!r.stderr.contains("secret-token"), "a webhook secret leaked: {}", r.stderr);
    let got = sink.received();
    let paths: Vec<&str> = got.iter().map(|q| q.path.as_str()).collect();
    assert!(paths.contains(&"/ping/abc/start") && paths.contains(&"/ping/abc/fail"), "{paths:?}");
    let hook = got.iter().find(|q| q.path == "/hook/secret-token").expect("webhook called");
    let body: serde_json::Value = serde_json::from_str(&hook.body).unwrap();
    assert_eq!(body["level"], "failure");
    assert!(body["text"].as_str().unwrap().contains("check found damage in vault"), "{body}");
    let env_dump = fs::read_to_string(&out).unwrap();
    fs::remove_file(&out).unwrap();
    assert!(
        env_dump.contains("OPUS_MIRROR_ALERT_LEVEL=failure")
            && env_dump.contains("OPUS_MIRROR_ALERT_SOURCE=vault"),
        "{env_dump}"
    );
    // notify test: every channel.
    let before = sink.received().len();
    env.run(&["notify", "test"]).ok();
    assert!(sink.received().len() > before);
    assert!(out.exists(), "notify test did not run the command");
}

#[test]
fn a_script_deleting_forty_percent_trips_the_guard() {
    let out = std::env::temp_dir().join(format!("om-guard-{}", std::process::id()));
    let notify = format!(
        "[notify.on_warning]\ncommand = [\"sh\", \"-c\", \"echo \\\"$OPUS_MIRROR_ALERT_TEXT\\\" > {}\"]\n",
        out.display()
    );
    let (mut env, vault, _drive) = setup(&notify);
    let pristine = env.path("pristine");
    env.run(&["restore", "--to", pristine.to_str().unwrap()]).ok();
    // The misfiring script: delete 40 % of the notes.
    let mut notes: Vec<PathBuf> = walkdir::WalkDir::new(&vault)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect();
    notes.sort();
    let n = notes.len() * 2 / 5 + 1;
    for p in notes.iter().step_by(2).take(n) {
        fs::remove_file(p).unwrap();
    }
    env.now = Some("2026-11-22T03:30:00Z".into());
    let r = env.run(&["snapshot"]).code(3);
    assert!(r.stderr.contains("GUARD") && r.stderr.contains("files deleted"), "{}", r.stderr);
    let alert = fs::read_to_string(&out).unwrap();
    let _ = fs::remove_file(&out);
    let cmd_line = alert
        .lines()
        .find(|l| l.starts_with("To bring the previous state back: "))
        .expect("restore command in the alert");
    let restore = cmd_line.trim_start_matches("To bring the previous state back: ").to_string();
    assert!(restore.starts_with("opus-mirror restore --source vault --snapshot "), "{restore}");
    // Prune is suspended until acknowledged.
    let p = env.run(&["prune"]).code(3);
    assert!(p.stderr.contains("prune suspended") && p.stderr.contains("guard ack"), "{}", p.stderr);
    // The printed command works.
    let args: Vec<&str> = restore.split_whitespace().skip(1).collect();
    env.now = Some("2026-11-22T04:00:00Z".into());
    env.run(&args).ok();
    treecmp::assert_same(&pristine, &vault, &treecmp::default_skip);
    env.run(&["guard", "ack", "--source", "vault"]).ok();
    env.run(&["prune"]).ok();
}

#[test]
fn another_machine_can_raise_the_stale_alarm_from_the_target() {
    let (_env, vault, drive) = setup("");
    // A second machine: its own state dir, a config naming the same source and drive.
    let mut other = Env::new();
    other.write_config_text(&format!(
        "state_dir = {:?}\n[[source]]\nname = \"vault\"\npath = {:?}\n[[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {:?}\n",
        other.state.display().to_string(),
        vault.display().to_string(),
        drive.display().to_string()
    ));
    other.now = Some("2026-11-21T20:00:00Z".into());
    let r = other.run(&["status", "--target", "drive", "--max-age", "26h"]).ok();
    assert!(r.stdout.contains("vault on drive: ok"), "{}", r.stdout);
    other.now = Some("2026-11-23T12:00:00Z".into());
    let j = other.run(&["status", "--target", "drive", "--max-age", "26h", "--json"]).code(8).json();
    assert_eq!(j["stale"], true);
    assert_eq!(
        j["sources"][0]["newest"],
        files(&drive, "-incr.bundle")[0].file_name().unwrap().to_string_lossy().as_ref()
    );
}

/// Credentials in every place a config can hold them never leave the process: not on stdout or
/// stderr (`run`, `--json`, `status`, `log`, `recovery-doc`, `config check`), not in any file
/// under the state dir, not in a webhook or healthcheck body or path.
#[test]
fn credentials_never_reach_output_state_or_alerts() {
    let sink = HttpSink::start();
    let env = Env::new();
    let vault = env.path("vault");
    crate::helpers::vaultgen::create(
        &vault,
        &crate::helpers::vaultgen::Spec { notes: 3, attachments: 0, ..Default::default() },
    );
    let dead = crate::helpers::servers::free_port();
    env.write_config_text(&format!(
        "state_dir = {:?}\n[network]\ntimeout = \"2s\"\n[notify]\nhealthcheck = {:?}\n[notify.on_failure]\nwebhook = {:?}\n\
         [[source]]\nname = \"life\"\npath = {:?}\nmirror = \"https://me:PASSLEAK3@127.0.0.1:{dead}/x.git?token=QUERYLEAK4\"\n\n\
         [[target]]\nname = \"cloud\"\nkind = \"rclone\"\nremote = \":s3,provider=Other,env_auth=false,access_key_id=AKIDLEAK1,secret_access_key=SECRETLEAK2:bucket/life\"\n",
        env.state.display().to_string(),
        sink.url("/ping/x"),
        sink.url("/hook/x"),
        vault.display().to_string()
    ));
    env.run(&["init"]).ok();
    let mut said = String::new();
    for args in [
        &["run"][..],
        &["run", "--json"],
        &["status"],
        &["status", "--json"],
        &["log"],
        &["log", "--json"],
        &["recovery-doc"],
        &["config", "check"],
        &["config", "check", "--json"],
        &["mirror"],
        &["check"],
    ] {
        let r = env.run(args);
        said.push_str(&r.stdout);
        said.push_str(&r.stderr);
    }
    for e in walkdir::WalkDir::new(&env.state).into_iter().flatten().filter(|e| e.file_type().is_file()) {
        said.push_str(&String::from_utf8_lossy(&fs::read(e.path()).unwrap_or_default()));
    }
    // The setup record travels in every bundle and to the mirror: compressed in a pack, so
    // read it back with git.
    let repo = env.backup_repo("life");
    let record =
        crate::helpers::git(&repo, &["cat-file", "-p", "refs/opus-mirror/setup:config.toml"]).ok().stdout;
    assert!(record.contains("[[source]]") && record.contains("left out"), "{record}");
    said.push_str(&record);
    let alerts = sink.received();
    assert!(!alerts.is_empty(), "the failing run sent no alert");
    for q in &alerts {
        said.push_str(&q.path);
        said.push_str(&q.body);
    }
    for secret in ["AKIDLEAK1", "SECRETLEAK2", "PASSLEAK3", "QUERYLEAK4"] {
        let lines: Vec<&str> = said.lines().filter(|l| l.contains(secret)).take(3).collect();
        assert!(lines.is_empty(), "{secret} leaked:\n{}", lines.join("\n"));
    }
}

/// Freshness is judged by the newest copy off this machine: a snapshot taken a minute ago on
/// the disk that may die does not make a 36-day-old target bundle fresh.
#[test]
fn status_judges_by_the_newest_off_machine_copy() {
    let (mut env, vault, _drive) = setup("");
    vaultgen::mutate(&vault, 2);
    env.now = Some("2026-12-27T03:00:00Z".into());
    env.run(&["snapshot"]).ok();
    env.now = Some("2026-12-27T03:30:00Z".into());
    let r = env.run(&["status"]).code(8);
    assert!(
        r.stdout.contains("vault: STALE (newest off-machine copy 864 h ago; local snapshot 0.5 h ago)"),
        "{}",
        r.stdout
    );
    let j = env.run(&["status", "--json"]).code(8).json();
    assert_eq!(j["sources"][0]["judged_by"], "off-machine copy");
    assert_eq!(j["sources"][0]["newest_good_backup"], "2026-11-21T03:30:00Z");
    // A bundle today makes it fresh again.
    env.run(&["bundle"]).ok();
    env.run(&["status"]).ok();

    // With nowhere off the machine to go, the local snapshot is all there is — and it says so.
    let local = Env::new();
    let v = local.path("v");
    vaultgen::create(&v, &vaultgen::Spec { notes: 5, attachments: 0, ..Default::default() });
    local.write_config(&[("v", &v)]);
    local.run(&["snapshot"]).ok();
    // Only this machine holds it: a warning, and exit 3, so `status || alert` says so too.
    let j = local.run(&["status", "--json"]).code(3).json();
    assert_eq!(j["sources"][0]["judged_by"], "local snapshot");
    assert!(j["sources"][0]["warnings"].to_string().contains("only this machine holds"), "{j}");
}

/// The healthcheck follows jobs, one rule for every command that pings it: each `/start` is
/// followed by exactly one success or `/fail`, never left open; a warning pings success unless
/// `healthcheck_warnings = "fail"`; a snapshot's guard alert is an alert, not a job outcome.
#[test]
fn every_healthcheck_start_is_finished() {
    let sink = HttpSink::start();
    let (mut env, vault, drive) = setup(&format!("[notify]\nhealthcheck = {:?}\n", sink.url("/hc")));
    let seen = std::cell::Cell::new(0usize);
    let pings = || -> Vec<String> {
        let all: Vec<String> =
            sink.received().into_iter().map(|q| q.path).filter(|p| p.starts_with("/hc")).collect();
        let new = all[seen.get()..].to_vec();
        seen.set(all.len());
        new
    };
    let ok = ["/hc/start".to_string(), "/hc".to_string()];
    let fail = ["/hc/start".to_string(), "/hc/fail".to_string()];

    env.now = Some("2026-11-22T03:30:00Z".into());
    env.run(&["run"]).ok();
    assert_eq!(pings(), ok, "run");
    env.run(&["check"]).ok();
    assert_eq!(pings(), ok, "check");
    env.run(&["drill"]).ok();
    assert_eq!(pings(), ok, "drill");
    env.run(&["notify", "test"]).ok();
    assert_eq!(pings(), ok, "notify test");

    // A misfiring script deletes half the notes: the snapshot's guard alert reaches the
    // channels, never the healthcheck.
    let wreck = || {
        let notes: Vec<_> = walkdir::WalkDir::new(&vault)
            .into_iter()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "md"))
            .map(|e| e.path().to_path_buf())
            .collect();
        for n in notes.iter().take(notes.len() / 2) {
            fs::remove_file(n).unwrap();
        }
    };
    wreck();
    env.run(&["snapshot"]);
    assert_eq!(pings(), Vec::<String>::new(), "snapshot pinged the healthcheck");

    // A run that ends with a warning (the guard) pings success by default, /fail when asked.
    env.now = Some("2026-11-23T03:30:00Z".into());
    wreck();
    let r = env.run(&["run"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert_eq!(pings(), ok, "a run with warnings");
    let cfg = fs::read_to_string(&env.config).unwrap();
    env.write_config_text(&cfg.replace("[notify]\n", "[notify]\nhealthcheck_warnings = \"fail\"\n"));
    env.now = Some("2026-11-24T03:30:00Z".into());
    wreck();
    assert_eq!(env.run(&["run"]).code, 3);
    assert_eq!(pings(), fail, "a run with warnings under healthcheck_warnings = \"fail\"");

    // A damaged bundle: check fails, and says so to the healthcheck.
    let full = files(&drive, "Z.bundle")[0].clone();
    flip_byte(&full, 100);
    env.run(&["check"]).code(1);
    assert_eq!(pings(), fail, "a failed check");
}

/// Regression (issue 11): each object's path used to carry the whole "parent of" chain of its
/// commit (memory grew with history depth squared); the path is now built from parent links
/// only for the message, as a git revision that `git show` accepts.
#[test]
fn corruption_deep_in_a_long_history_is_named_by_a_readable_path() {
    let env = Env::new();
    let vault = env.path("vault");
    fs::create_dir_all(vault.join("notes")).unwrap();
    env.write_config(&[("vault", &vault)]);
    env.run(&["init"]).ok();
    // 40 snapshots; one version of notes/a.md lives only in the third, 37 below the newest.
    for i in 0..40 {
        fs::write(vault.join("notes/a.md"), if i == 2 { "only in snapshot 2\n" } else { "a\n" }).unwrap();
        fs::write(vault.join("b.md"), format!("edit {i}\n")).unwrap();
        env.run(&["snapshot"]).ok();
    }
    env.run(&["check"]).ok();
    let repo = env.backup_repo("vault");
    let deep = "refs/heads/snapshot~37:notes/a.md";
    let oid = git(&repo, &["rev-parse", deep]).ok().stdout.trim().to_string();
    // Every object loose (the packs moved aside and unpacked), then that blob's file replaced
    // by a valid loose object holding other bytes: it reads, but does not hash to its id.
    let aside = env.path("packs-aside");
    fs::rename(repo.join("objects/pack"), &aside).unwrap();
    fs::create_dir(repo.join("objects/pack")).unwrap();
    for p in files(&aside, ".pack") {
        let out = std::process::Command::new("git")
            .args(["--git-dir", repo.to_str().unwrap(), "unpack-objects", "-q"])
            .stdin(fs::File::open(&p).unwrap())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    fs::write(env.path("other"), "ONLY in snapshot 2\n").unwrap();
    let other = git(&repo, &["hash-object", "-w", env.path("other").to_str().unwrap()]).ok().stdout;
    let loose = |id: &str| repo.join("objects").join(&id[..2]).join(&id[2..]);
    let target = loose(&oid);
    fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::copy(loose(other.trim()), &target).unwrap();
    let r = env.run(&["check"]).code(1);
    assert!(
        r.stderr.contains(&format!("blob {oid} (in {deep}) is corrupt: its content does not hash to its id")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("parent of"), "{}", r.stderr);
}

/// A drill that ran is not failed by a history line that cannot be written (it exited 1 with
/// "Is a directory", the restore it had verified lost): the drill's verdict stands, the lost
/// line is a warning naming the file (exit 3), in `drill` and in `run`'s drill step.
#[test]
fn a_drill_whose_history_cannot_be_written_still_reports_its_verdict() {
    let (mut env, _vault, _drive) = setup("");
    let history = env.state.join("state/history.jsonl");
    fs::remove_file(&history).unwrap();
    fs::create_dir_all(&history).unwrap();
    let r = env.run(&["drill"]).code(3);
    assert!(
        r.stdout.contains("vault from drive: restored"),
        "the verdict is gone:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("cannot append to {}", history.display())),
        "no warning naming the file:\n{}",
        r.stderr
    );
    let j = env.run(&["drill", "--json"]).code(3).json();
    assert_eq!(j[0]["problems"], serde_json::json!([]), "{j:#}");
    env.now = Some("2026-12-21T03:30:00Z".into());
    let r = env.run(&["run"]).code(3);
    assert!(r.stdout.contains("files restored and identical"), "{}\n{}", r.stdout, r.stderr);
    let line = r.stdout.lines().find(|l| l.contains(" drill ")).expect("a drill step line");
    assert!(!line.starts_with("FAIL"), "the drill step failed:\n{}", r.stdout);
}

/// A FIFO (or a symlink) where a state file was (the last drill's result) never blocks
/// `status`: it hung until something wrote to the pipe. It reads as no state.
#[test]
fn a_fifo_for_a_state_file_never_blocks_status() {
    let (env, _vault, _drive) = setup("");
    env.run(&["drill"]).ok();
    let state = env.state.join("state/drill-vault-drive.json");
    assert!(state.exists(), "the drill saved its result");
    fs::remove_file(&state).unwrap();
    let st = std::process::Command::new("mkfifo").arg(&state).status().expect("mkfifo (coreutils)");
    assert!(st.success());
    let out = env
        .wrapped(&["timeout".into(), "30".into()], &["status", "--json", "--max-age", "1000d"])
        .output()
        .expect("run opus-mirror");
    let r = crate::helpers::Run::from(out);
    assert!(r.code == 0 || r.code == 3, "exit {}:\n{}", r.code, r.stderr);
    assert!(r.json()["sources"][0]["last_drill"].is_null(), "{}", r.stdout);
}

/// Whoever controls the drive puts FIFOs where the marker, a manifest, a pending manifest and
/// RESTORE.md were: no command waits on one (each hung until something wrote to the pipe).
/// A FIFO marker makes the drive unavailable, a FIFO manifest leaves its bundle unverified.
#[test]
fn fifos_on_a_hostile_drive_never_block_a_command() {
    let (mut env, _vault, drive) = setup("");
    let fifo = |p: &Path| {
        let _ = fs::remove_file(p);
        let st = std::process::Command::new("mkfifo").arg(p).status().expect("mkfifo (coreutils)");
        assert!(st.success());
    };
    let within = |env: &Env, args: &[&str]| {
        let mut w = vec!["timeout".to_string(), "30".to_string()];
        w.extend(args.iter().map(|a| a.to_string()));
        let out = env.wrapped(&w[..2], args).output().expect("run opus-mirror");
        let r = crate::helpers::Run::from(out);
        assert_ne!(r.code, 124, "{args:?} blocked on a FIFO:\n{}", r.stderr);
        r
    };
    let manifest = files(&drive, "-incr.bundle.json")[0].clone();
    fifo(&manifest);
    fifo(&drive.join("v-2026-11-21T040000Z-incr.bundle.pending.json"));
    fifo(&drive.join("RESTORE.md"));
    env.now = Some("2026-11-22T03:30:00Z".into());
    let r = within(&env, &["check"]);
    assert_eq!(r.code, 1, "a bundle without a usable manifest is a problem:\n{}", r.stderr);
    within(&env, &["status"]);
    within(&env, &["run"]);
    let fresh = Env::new();
    let to = env.path("recovered");
    within(&fresh, &["recover", "--from", drive.to_str().unwrap(), "--to", to.to_str().unwrap()]);
    fifo(&drive.join(".opus-mirror-target"));
    let r = within(&env, &["bundle"]);
    assert!(
        r.stderr.contains("marker file")
            && r.stderr.contains("cannot be used")
            && r.stderr.contains("not a regular file"),
        "a FIFO marker is no marker, and is named as what it is:\n{}",
        r.stderr
    );
}

/// A FIFO (or a symlink to /dev/zero) planted as a bundle, with a manifest naming it: no
/// command waits on it or reads it for ever (check, drill, run, unbundle and recover hung on
/// the FIFO; check hashed /dev/zero without end). It is refused as not a regular file.
#[test]
fn a_fifo_or_a_symlink_planted_as_a_bundle_never_blocks_a_command() {
    let (mut env, _vault, drive) = setup("");
    let real = files(&drive, "-incr.bundle.json")[0].clone();
    let plant = |name: &str| {
        let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&real).unwrap()).unwrap();
        m["file"] = name.into();
        m["created"] = "2026-11-21T04:00:00Z".into();
        fs::write(drive.join(format!("{name}.json")), serde_json::to_vec(&m).unwrap()).unwrap();
        drive.join(name)
    };
    let within = |env: &Env, args: &[&str]| {
        let w = ["timeout".to_string(), "30".to_string()];
        let r = crate::helpers::Run::from(env.wrapped(&w, args).output().expect("run opus-mirror"));
        assert_ne!(r.code, 124, "{args:?} blocked on a planted bundle:\n{}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
        r
    };
    let fifo = plant("vault-2026-11-21T040000Z-incr.bundle");
    let st = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo (coreutils)");
    assert!(st.success());
    env.now = Some("2026-11-22T03:30:00Z".into());
    let r = within(&env, &["check"]);
    assert_eq!(r.code, 1, "a FIFO is no bundle:\n{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
    within(&env, &["drill"]);
    within(&env, &["run"]);
    let to = env.path("unbundled.git");
    within(&env, &["unbundle", "--to", to.to_str().unwrap()]);
    let fresh = Env::new();
    let rec = env.path("recovered");
    within(&fresh, &["recover", "--from", drive.to_str().unwrap(), "--to", rec.to_str().unwrap()]);
    fs::remove_file(&fifo).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &fifo).unwrap();
    let r = within(&env, &["check"]);
    assert_eq!(r.code, 1, "a symlink is no bundle:\n{}", r.stderr);
}
