//! Periodic verification that costs what it adds (issue 11): `check` records what it read
//! whole (`state/verified-SOURCE.json`), `check --incremental` and `run` then read what is new
//! plus a rotating slice, and a hook run leaves the drill to timer and manual runs until it is
//! twice overdue.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::helpers::{vaultgen, Env, Run};

/// A vault with two snapshots and two bundles on a drive, all verified by a full check.
fn verified_world() -> (Env, PathBuf, PathBuf) {
    let mut env = Env::new();
    let vault = env.path("vault");
    vaultgen::create(&vault, &vaultgen::Spec { notes: 40, attachments: 2, ..Default::default() });
    let drive = env.path("drive");
    env.write_config_with_drive("v", &vault, "", &drive, "mode = \"incremental\"");
    env.run(&["init"]).ok();
    env.now = Some("2026-11-20T03:30:00Z".into());
    env.run(&["snapshot"]).ok();
    env.run(&["bundle"]).ok();
    vaultgen::mutate(&vault, 1);
    env.now = Some("2026-11-20T04:30:00Z".into());
    env.run(&["snapshot"]).ok();
    env.run(&["bundle"]).ok();
    env.run(&["check"]).ok();
    (env, vault, drive)
}

/// A 10-note vault `v` with a dir target `drive` (its extra keys `target`), initialised.
fn small_world(target: &str) -> (Env, PathBuf, PathBuf) {
    let env = Env::new();
    let vault = env.path("vault");
    vaultgen::create(&vault, &vaultgen::Spec { notes: 10, attachments: 1, ..Default::default() });
    let drive = env.path("drive");
    env.write_config_with_drive("v", &vault, "", &drive, target);
    env.run(&["init"]).ok();
    (env, vault, drive)
}

/// (read, skipped) names of every area of a `check --json`.
fn read_and_skipped(data: &Value) -> (Vec<String>, Vec<String>) {
    let mut read = Vec::new();
    let mut skipped = Vec::new();
    for a in data["areas"].as_array().expect("areas") {
        for r in a["read"].as_array().expect("read") {
            read.push(format!("{} ({})", r["name"].as_str().expect("name"), r["why"].as_str().expect("why")));
        }
        for s in a["skipped"].as_array().expect("skipped") {
            skipped.push(s.as_str().expect("a name").to_string());
        }
    }
    (read, skipped)
}

fn bundles(drive: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(drive)
        .expect("the drive")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "bundle"))
        .collect();
    v.sort();
    v
}

/// Flips a byte in the middle of `p` and puts its mtime back: damage a size + mtime
/// fingerprint cannot see, which only reading finds.
fn flip_byte_keeping_mtime(p: &Path) {
    let mtime = fs::metadata(p).expect("stat").modified().expect("mtime");
    let mut b = fs::read(p).expect("read");
    let i = b.len() / 2;
    b[i] ^= 0x40;
    fs::write(p, b).expect("write");
    let f = fs::OpenOptions::new().write(true).open(p).expect("open");
    f.set_times(fs::FileTimes::new().set_modified(mtime)).expect("set mtime");
}

#[test]
fn a_second_check_reads_nothing_verified_and_what_was_added_is_read() {
    let (mut env, vault, drive) = verified_world();
    let again = env.run(&["check", "--incremental", "--json"]).ok().json();
    let (read, skipped) = read_and_skipped(&again);
    assert_eq!(read, Vec::<String>::new(), "nothing changed, nothing is read again");
    assert!(skipped.len() >= 3, "the packs and both bundles were skipped as verified: {skipped:?}");

    fs::write(vault.join("added.md"), "a note written since\n").expect("write");
    // A second later: no time for a slice to fall due.
    env.now = Some("2026-11-20T04:30:01Z".into());
    env.run(&["snapshot"]).ok();
    env.run(&["bundle"]).ok();
    let newest =
        bundles(&drive).last().expect("a bundle").file_name().expect("a name").to_string_lossy().into_owned();
    let after = env.run(&["check", "--incremental", "--json"]).ok().json();
    let (read, _) = read_and_skipped(&after);
    assert_eq!(read.len(), 2, "the new pack and the new bundle, nothing else: {read:?}");
    assert!(read.iter().any(|r| r.starts_with("pack-") && r.ends_with("(new)")), "{read:?}");
    assert!(read.contains(&format!("{newest} (new)")), "{read:?}");

    // A hand check still reads everything.
    let full = env.run(&["check", "--json"]).ok().json();
    let (read, skipped) = read_and_skipped(&full);
    assert!(skipped.is_empty() && read.len() >= 4 && read.iter().all(|r| r.ends_with("(full)")), "{read:?}");
}

#[test]
fn a_flipped_byte_in_a_verified_bundle_is_found_within_check_every_and_by_a_hand_check() {
    let (mut env, _vault, drive) = verified_world();
    let first = bundles(&drive)[0].clone();
    flip_byte_keeping_mtime(&first);
    // Verified as it was a moment ago: not read again yet.
    let soon = env.run(&["check", "--incremental", "--json"]).ok().json();
    assert!(read_and_skipped(&soon).0.is_empty());
    // Within check_every (7 days by default), the rotation reads it again and finds it.
    let name = first.file_name().expect("a name").to_string_lossy().into_owned();
    let mut found_on = None;
    for day in 1..=7 {
        env.now = Some(format!("2026-11-{:02}T04:30:00Z", 20 + day));
        let r = env.run(&["check", "--incremental", "--json"]);
        if r.code == 1 {
            let text = r.stdout.clone();
            assert!(text.contains(&name) && text.contains("damaged"), "{text}");
            found_on = Some(day);
            break;
        }
        r.ok();
    }
    assert!(found_on.is_some(), "the damage was never read within check_every");
    let hand = env.run(&["check"]).code(1);
    assert!(hand.stdout.contains(&name), "{}", hand.stdout);
}

#[test]
fn a_hostile_ledger_means_a_full_check_with_a_warning() {
    let (env, _vault, _drive) = verified_world();
    let ledger = env.state.join("state/verified-v.json");
    assert!(ledger.exists(), "the full check recorded what it verified");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&ledger).expect("stat").permissions().mode() & 0o777, 0o600);
    let good = fs::read(&ledger).expect("read");
    let elsewhere = env.path("elsewhere.json");
    fs::write(&elsewhere, &good).expect("write");
    let huge = vec![b' '; 17 << 20];
    type Spoil<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Spoil)> = vec![
        ("bad JSON", Box::new(|| fs::write(&ledger, b"{\"format\": 1, \"items\": [").expect("write"))),
        (
            "a symlink",
            Box::new(|| {
                fs::remove_file(&ledger).expect("rm");
                std::os::unix::fs::symlink(&elsewhere, &ledger).expect("symlink");
            }),
        ),
        ("huge", Box::new(|| fs::write(&ledger, &huge).expect("write"))),
    ];
    for (what, spoil) in cases {
        let _ = fs::remove_file(&ledger);
        fs::write(&ledger, &good).expect("restore");
        spoil();
        let r = env.run(&["check", "--incremental", "--json"]).code(3);
        let (read, skipped) = read_and_skipped(&r.json());
        assert!(skipped.is_empty() && read.len() >= 3, "{what}: everything read: {read:?} {skipped:?}");
        let warnings = r.envelope()["warnings"].to_string();
        assert!(warnings.contains("verified-v.json is unusable"), "{what}: {warnings}");
        assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
        // The next check replaced it with a good one.
        let meta = fs::symlink_metadata(&ledger).expect("stat");
        assert!(meta.file_type().is_file(), "{what}: replaced by a regular file");
        assert!(fs::read_link(&ledger).is_err() && fs::read(&elsewhere).expect("read") == good, "{what}");
    }
}

/// The drill, due every 7 days by default: a hook run with it due (not twice overdue) leaves
/// it to the timer and says so in its plan; the timer run drills; a hook run drills once it is
/// 14 days late.
#[test]
fn a_hook_run_defers_a_due_drill_a_timer_run_drills_and_an_overdue_one_is_drilled_anyway() {
    let (mut env, _vault, _drive) = small_world("");
    let steps = |env: &Env, trigger: &str| -> Vec<String> {
        let r = env.run(&["run", "--trigger", trigger, "--json"]);
        assert!(r.code == 0 || r.code == 3, "{}\n{}", r.stdout, r.stderr);
        r.json()["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| s["step"].as_str().expect("a step").to_string())
            .collect()
    };
    env.now = Some("2026-11-01T03:30:00Z".into());
    assert!(steps(&env, "timer").contains(&"drill".to_string()), "never drilled: a first run drills");

    env.now = Some("2026-11-09T03:30:00Z".into());
    let plan = env.run(&["run", "--trigger", "hook", "--dry-run"]).ok().stdout;
    assert!(
        plan.contains("not due: deferred to a timer or manual run (run.drill_every = 1w: last done 8d ago)"),
        "{plan}"
    );
    assert!(
        plan.contains("re-reading the least recently verified is left to timer and manual runs"),
        "{plan}"
    );
    assert!(!steps(&env, "hook").contains(&"drill".to_string()), "a hook run with the drill due drilled");
    env.now = Some("2026-11-09T04:30:00Z".into());
    assert!(
        steps(&env, "timer").contains(&"drill".to_string()),
        "a timer run with the drill due did not drill"
    );

    env.now = Some("2026-11-23T05:30:00Z".into());
    assert!(steps(&env, "hook").contains(&"drill".to_string()), "a drill 14 days late was left undone");
}

/// A FIFO where the ledger was: the check never blocks on it (it hung until something wrote
/// to the pipe), reads everything with a warning and replaces it with a regular file.
#[test]
fn a_fifo_for_a_ledger_never_blocks_the_check() {
    let (env, _vault, _drive) = verified_world();
    let ledger = env.state.join("state/verified-v.json");
    fs::remove_file(&ledger).expect("rm");
    let st = std::process::Command::new("mkfifo").arg(&ledger).status().expect("mkfifo (coreutils)");
    assert!(st.success());
    let out = env
        .wrapped(&["timeout".into(), "30".into()], &["check", "--incremental", "--json"])
        .output()
        .expect("run opus-mirror");
    let r = Run::from(out).code(3);
    let (read, skipped) = read_and_skipped(&r.json());
    assert!(skipped.is_empty() && read.len() >= 3, "everything read: {read:?} {skipped:?}");
    assert!(r.envelope()["warnings"].to_string().contains("verified-v.json is unusable"), "{}", r.stderr);
    assert!(fs::symlink_metadata(&ledger).expect("stat").file_type().is_file(), "replaced by a regular file");
}

/// A full bundle due (`full_every = 7d`) is the other weekly cost: a hook run writes an
/// incremental one and leaves the full one to the timer (the year benchmark's hook runs peaked
/// at 7.3x their median on exactly those runs), and says so in its plan; a timer run writes
/// it; a hook run writes it once the newest full bundle is twice `full_every` old.
#[test]
fn a_hook_run_leaves_a_due_full_bundle_to_the_timer_until_it_is_twice_overdue() {
    let (mut env, vault, _drive) = small_world("mode = \"incremental\"\nfull_every = \"7d\"");
    assert_eq!(kind_of_run(&mut env, &vault, "2026-11-01T03:30:00Z", "timer"), "full");
    assert_eq!(kind_of_run(&mut env, &vault, "2026-11-05T03:30:00Z", "hook"), "incremental");
    // 8 days after the full one: due, but a hook run leaves it to the timer.
    env.now = Some("2026-11-09T03:00:00Z".into());
    let plan = env.run(&["run", "--trigger", "hook", "--dry-run"]).ok().stdout;
    assert!(plan.contains("a full bundle (full_every = 1w) is left to a timer or manual run"), "{plan}");
    assert_eq!(kind_of_run(&mut env, &vault, "2026-11-09T03:30:00Z", "hook"), "incremental");
    assert_eq!(kind_of_run(&mut env, &vault, "2026-11-09T04:30:00Z", "timer"), "full");
    // Hooks alone: the full bundle comes 14 days after the last one.
    assert_eq!(kind_of_run(&mut env, &vault, "2026-11-20T03:30:00Z", "hook"), "incremental");
    assert_eq!(kind_of_run(&mut env, &vault, "2026-11-23T05:30:00Z", "hook"), "full");
}

/// With `every` set, the timer run an hour after a hook run found the hook's incremental
/// bundle younger than `every` and wrote nothing: the full bundle the hook run left to the
/// timer came only from a hook run, twice overdue (in the year benchmark, `every = "6h"`, those
/// were the slowest hook runs). A due full bundle is written whatever `every` says.
#[test]
fn a_full_bundle_the_hook_run_left_is_written_by_the_timer_even_within_every() {
    let (mut env, vault, drive) = small_world("mode = \"incremental\"\nfull_every = \"7d\"\nevery = \"6h\"");
    assert_eq!(kind_of_run(&mut env, &vault, "2026-11-01T03:30:00Z", "timer"), "full");
    assert_eq!(kind_of_run(&mut env, &vault, "2026-11-09T03:30:00Z", "hook"), "incremental");
    env.now = Some("2026-11-09T04:30:00Z".into());
    let plan = env.run(&["run", "--trigger", "timer", "--dry-run"]).ok().stdout;
    assert!(plan.contains("a full bundle is due (full_every = 1w)"), "{plan}");
    // The timer an hour after the day's last session: nothing changed since the hook's bundle.
    assert_eq!(kind_of_unchanged_run(&mut env, "2026-11-09T04:30:00Z", "timer"), "full");
    // The next incremental bundle builds on that full one (it holds what the hook's bundle
    // held): the chain starts afresh there. It built on the hook's incremental one, so the full
    // bundle was pruned as redundant, and written again by every timer run for a week.
    assert_eq!(kind_of_run(&mut env, &vault, "2026-11-09T10:30:00Z", "hook"), "incremental");
    let manifest: Value =
        serde_json::from_slice(&fs::read(drive.join("v-2026-11-09T103000Z-incr.bundle.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["base"], "v-2026-11-09T043000Z.bundle", "{manifest:#}");
    // Within `every` and no full bundle due: nothing, as before; the next day too.
    assert!(kind_of_unchanged_run(&mut env, "2026-11-09T11:30:00Z", "timer").contains("younger than every"));
    assert_eq!(kind_of_run(&mut env, &vault, "2026-11-10T03:30:00Z", "hook"), "incremental");
    assert!(kind_of_unchanged_run(&mut env, "2026-11-10T04:30:00Z", "timer").contains("younger than every"));
}

/// One edit and a run at `when`: what its bundle step did ("full", "incremental", or its detail).
fn kind_of_run(env: &mut Env, vault: &Path, when: &str, trigger: &str) -> String {
    fs::write(vault.join(format!("{when}.md").replace(':', "-")), format!("session at {when}"))
        .expect("edit");
    kind_of_unchanged_run(env, when, trigger)
}

/// [`kind_of_run`] without the edit: the daily timer an hour after the day's last session.
fn kind_of_unchanged_run(env: &mut Env, when: &str, trigger: &str) -> String {
    env.now = Some(when.into());
    let r = env.run(&["run", "--trigger", trigger, "--json"]);
    assert!(r.code == 0 || r.code == 3, "{}\n{}", r.stdout, r.stderr);
    let json = r.json();
    let step = json["steps"].as_array().expect("steps").iter().find(|s| s["step"] == "bundle").cloned();
    let b = step
        .map(|s| s["detail"].as_str().expect("detail").to_string())
        .unwrap_or_else(|| format!("no bundle step: {json:#}"));
    if b.contains("-incr.bundle") && !b.contains("younger") {
        "incremental".into()
    } else if b.contains(".bundle") && !b.contains("younger") {
        "full".into()
    } else {
        b
    }
}

/// A small world with a full bundle (day 1) and an incremental one on it (day 2), the
/// incremental one then damaged where a size + mtime fingerprint cannot see.
fn a_damaged_incremental_chain() -> (Env, PathBuf, PathBuf, String) {
    let (mut env, vault, drive) = small_world("mode = \"incremental\"");
    env.now = Some("2026-11-01T03:30:00Z".into());
    env.run(&["run", "--trigger", "timer"]).ok();
    fs::write(vault.join("day-2.md"), "two").unwrap();
    env.now = Some("2026-11-02T03:30:00Z".into());
    env.run(&["run", "--trigger", "timer"]).ok();
    let incr: Vec<PathBuf> =
        bundles(&drive).into_iter().filter(|b| b.to_string_lossy().contains("-incr")).collect();
    assert_eq!(incr.len(), 1, "{incr:?}");
    flip_byte_keeping_mtime(&incr[0]);
    env.now = Some("2026-11-02T05:30:00Z".into());
    let name = incr[0].file_name().unwrap().to_string_lossy().to_string();
    (env, vault, drive, name)
}

/// The next run (day 3, a change in the vault) plans a full bundle saying `why`, and writes one.
fn next_run_writes_a_full_bundle(mut env: Env, vault: &Path, drive: &Path, why: &str) {
    fs::write(vault.join("day-3.md"), "three").unwrap();
    env.now = Some("2026-11-03T03:30:00Z".into());
    let plan = env.run(&["run", "--trigger", "hook", "--dry-run"]).ok().stdout;
    assert!(plan.contains(why), "{plan}");
    let r = env.run(&["run", "--trigger", "hook"]);
    let written: Vec<PathBuf> =
        bundles(drive).into_iter().filter(|b| b.to_string_lossy().contains("2026-11-03")).collect();
    assert_eq!(written.len(), 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        !written[0].to_string_lossy().contains("-incr"),
        "an incremental bundle on a damaged chain: {written:?}"
    );
}

/// Once check has found a bundle of the incremental chain damaged, the next run does not
/// chain another incremental bundle on it (nothing on the drive would restore the newest
/// snapshot until `full_every` came round): it writes a full bundle, and says why.
#[test]
fn a_chain_that_check_found_damaged_gets_a_full_bundle_next() {
    let (env, vault, drive, name) = a_damaged_incremental_chain();
    env.run(&["check"]).code(1);
    next_run_writes_a_full_bundle(
        env,
        &vault,
        &drive,
        &format!("a check or drill found {name} of the chain damaged"),
    );
}

/// The same when only the drill read the damaged bundle (a daily timer's drill, no check since):
/// the drill fails naming it, and the next run writes a full bundle rather than chain another
/// incremental one on it.
#[test]
fn a_chain_that_the_drill_found_damaged_gets_a_full_bundle_next() {
    let (env, vault, drive, name) = a_damaged_incremental_chain();
    let d = env.run(&["drill"]).code(1);
    assert!(d.stderr.contains(&name) && d.stderr.contains("damaged"), "{}", d.stderr);
    // A drill that stopped on the damage leaves no report, only its history line: status still
    // says the backups are in doubt (it said "ok, with warnings", exit 3).
    let st = env.run(&["status", "--max-age", "1000d"]).code(1);
    assert!(st.stdout.contains("IN DOUBT"), "{}", st.stdout);
    next_run_writes_a_full_bundle(env, &vault, &drive, &format!("drill found {name} of the chain damaged"));
}

/// `status --target` on another machine judges by what the target holds. A vault left alone
/// for a weekend gets no new incremental bundle (nothing changed), so the newest bundle aged
/// past `--max-age` and the other machine cried STALE while every run found the target
/// current. Each such run now leaves its word on the target (`SOURCE.current.json`: the
/// bundle that holds everything, and when it was found so); a word naming a bundle the target
/// does not hold, or dated ahead of the clock, counts for nothing, and a FIFO in its place is
/// never waited on.
#[test]
fn status_from_the_target_counts_a_run_that_found_the_newest_bundle_current() {
    let (mut env, _vault, drive) = small_world("mode = \"incremental\"\nevery = \"1d\"");
    env.now = Some("2026-11-01T03:30:00Z".into());
    env.run(&["run", "--trigger", "timer"]).ok();
    env.now = Some("2026-11-03T03:30:00Z".into());
    env.run(&["run", "--trigger", "timer"]).ok();
    env.now = Some("2026-11-03T04:30:00Z".into());
    let j = env.run(&["status", "--target", "drive", "--max-age", "26h", "--json"]).ok().json();
    assert_eq!(j["sources"][0]["stale"], false, "{j:#}");
    assert_eq!(j["sources"][0]["age_hours"], 1.0, "{j:#}");
    let text = env.run(&["status", "--target", "drive", "--max-age", "26h"]).ok().stdout;
    assert!(text.contains("current as of 2026-11-03T03:30:00Z"), "{text}");

    // A word naming a bundle that is not there (or forged ahead of the clock) proves nothing.
    let word = drive.join("v.current.json");
    let good = fs::read_to_string(&word).expect("the run left its word on the target");
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["bundle"] = "v-2026-10-01T000000Z.bundle".into();
    fs::write(&word, v.to_string()).unwrap();
    env.run(&["status", "--target", "drive", "--max-age", "26h"]).code(8);
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["at"] = "2027-01-01T00:00:00Z".into();
    fs::write(&word, v.to_string()).unwrap();
    env.run(&["status", "--target", "drive", "--max-age", "26h"]).code(8);
    fs::remove_file(&word).unwrap();
    nix_mkfifo(&word);
    env.run(&["status", "--target", "drive", "--max-age", "26h"]).code(8);
}

fn nix_mkfifo(p: &Path) {
    let st = std::process::Command::new("mkfifo").arg(p).status().expect("mkfifo runs");
    assert!(st.success());
}

/// After the damaged chain, one full bundle is enough: it ranked below the damaged incremental
/// bundle of the same snapshot (a deeper chain), so every run wrote another full bundle, drills
/// kept failing on the damaged chain, and prune kept the damaged bundle as "the newest" and
/// removed the good full ones, leaving nothing `recover` could use.
#[test]
fn after_a_damaged_chain_one_full_bundle_is_enough_and_prune_keeps_it() {
    let (mut env, vault, drive, name) = a_damaged_incremental_chain();
    env.run(&["drill"]).code(1);
    // The damaged bundle stays on the drive until pruned: each run's check says so (exit 1).
    env.now = Some("2026-11-03T03:30:00Z".into());
    env.run(&["run", "--trigger", "hook"]).code(1);
    let full = "v-2026-11-03T033000Z.bundle";
    assert!(drive.join(full).exists(), "a full bundle starts a new chain");
    env.now = Some("2026-11-03T09:30:00Z".into());
    let r = env.run(&["run", "--trigger", "timer", "--json"]).code(1).json();
    let bundle = r["steps"].as_array().unwrap().iter().find(|s| s["step"] == "bundle").unwrap().clone();
    assert!(bundle["detail"].as_str().unwrap().contains(&format!("nothing changed since {full}")), "{r:#}");
    let drill = env.run(&["drill", "--json"]).ok().json();
    assert_eq!(drill[0]["chain"], serde_json::json!([full]), "the drill restores the new chain: {drill:#}");

    env.write_config_with_drive("v", &vault, "", &drive, "mode = \"incremental\"\nkeep = { last = 1 }");
    env.run(&["prune"]).ok();
    assert!(drive.join(full).exists(), "prune keeps the newest intact copy");
    assert!(!drive.join(&name).exists(), "the damaged bundle is not what is kept");
    let fresh = Env::new();
    let to = fresh.path("recovered");
    fresh.run(&["recover", "--from", drive.to_str().unwrap(), "--to", to.to_str().unwrap()]).ok();
    assert!(to.join("day-2.md").exists());
}

/// "Nothing changed since" compares the backup repo with the bundle; only a run whose snapshot
/// just saw the vault may say on the target that the vault is current. A run whose snapshot
/// failed (here its pack directory made immutable) wrote the word all the same, and another
/// machine would have called a vault whose changes were never saved fresh.
#[test]
fn a_run_whose_snapshot_failed_says_nothing_is_current() {
    let (mut env, vault, drive) = small_world("mode = \"incremental\"\nevery = \"1d\"");
    env.now = Some("2026-11-01T03:30:00Z".into());
    env.run(&["run", "--trigger", "timer"]).ok();
    let packs = env.backup_repo("v").join("objects/pack");
    let chattr = |flag: &str| {
        std::process::Command::new("chattr").arg(flag).arg(&packs).status().is_ok_and(|s| s.success())
    };
    if !chattr("+i") {
        crate::helpers::servers::missing(
            "chattr +i (root on ext4)",
            "a_run_whose_snapshot_failed_says_nothing_is_current",
        );
        return;
    }
    struct Mutable<'a>(&'a dyn Fn(&str) -> bool);
    impl Drop for Mutable<'_> {
        fn drop(&mut self) {
            (self.0)("-i");
        }
    }
    let guard = Mutable(&chattr);
    fs::write(vault.join("unsaved.md"), "a change the snapshot cannot store").unwrap();
    env.now = Some("2026-11-03T03:30:00Z".into());
    let r = env.run(&["run", "--trigger", "timer"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(!drive.join("v.current.json").exists(), "{}", r.stdout);
    drop(guard);
    env.now = Some("2026-11-04T03:30:00Z".into());
    env.run(&["run", "--trigger", "timer"]).ok();
    fs::remove_file(vault.join("unsaved.md")).unwrap();
}

/// A run's drill lays the vault out once (recover's own layout) and proves the runbook's
/// stock-git procedure every fourth drill period; `opus-mirror drill` always does both.
#[test]
fn a_run_s_drill_proves_the_runbook_every_fourth_period_and_a_hand_drill_always() {
    let (mut env, vault, _drive) = small_world("");
    let drills = |env: &Env| -> Vec<(Option<bool>, Value)> {
        let log = env.run(&["log", "--json"]).ok().json();
        log.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["step"] == "drill")
            .map(|e| (e["data"]["runbook"].as_bool(), e["outcome"].clone()))
            .collect()
    };
    env.now = Some("2026-11-01T03:30:00Z".into());
    env.run(&["run", "--trigger", "timer"]).ok();
    fs::write(vault.join("day-9.md"), "nine").unwrap();
    env.now = Some("2026-11-09T03:30:00Z".into());
    env.run(&["run", "--trigger", "timer"]).ok();
    env.run(&["drill"]).ok();
    let ok = Value::from("ok");
    assert_eq!(drills(&env), [(Some(true), ok.clone()), (Some(false), ok.clone()), (Some(true), ok)]);
}
