//! A wrong clock never loses the newest backup (issue 14, "time cannot be trusted"): the
//! binary runs under libfaketime, with its clock a day behind or a year ahead, against a
//! drive whose keep policy would remove everything but one bundle. After every run the
//! newest snapshot is on the drive, `check` passes, and `status` never reports a negative
//! age. Also here: retention's other rule of trust, that an unverified bundle never takes a
//! verified one's place.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::servers::missing;
use crate::helpers::{assert_fsck, git, vaultgen, Env};

/// Where distributions put libfaketime (Debian/Ubuntu multiarch first).
const LIBFAKETIME: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/lib64/faketime/libfaketime.so.1",
];

fn libfaketime() -> Option<PathBuf> {
    LIBFAKETIME.iter().map(PathBuf::from).find(|p| p.exists())
}

/// An environment with one vault and two targets with the same keep policy: a drive, and an
/// rclone remote (rclone's local backend, so it needs no server).
struct World {
    env: Env,
    vault: PathBuf,
    drive: PathBuf,
    cloud: PathBuf,
    /// The rclone settings every run gets, under any clock.
    base: Vec<(String, String)>,
    lib: PathBuf,
}

impl World {
    /// None (after a loud SKIPPED) when libfaketime is not installed.
    fn new(test: &str, target_keys: &str) -> Option<World> {
        let Some(lib) = libfaketime() else {
            missing("faketime", test);
            return None;
        };
        if Command::new("rclone").arg("version").output().is_err() {
            missing("rclone", test);
            return None;
        }
        let mut env = Env::new();
        let vault = env.path("vault");
        let drive = env.path("drive");
        let cloud = env.path("cloud");
        fs::create_dir_all(&cloud).unwrap();
        let base: Vec<(String, String)> = vec![
            ("RCLONE_CONFIG".into(), "/dev/null".into()),
            ("RCLONE_CONFIG_CLOUD_TYPE".into(), "local".into()),
        ];
        env.vars = base.clone();
        vaultgen::create(&vault, &vaultgen::Spec { notes: 60, attachments: 2, ..Default::default() });
        env.write_config_text(&format!(
            "state_dir = {:?}\n[[source]]\nname = \"v\"\npath = {:?}\n\n\
             [[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {:?}\n{target_keys}\n\n\
             [[target]]\nname = \"cloud\"\nkind = \"rclone\"\nremote = \"cloud:{}\"\n{target_keys}\n",
            env.state.display().to_string(),
            vault.display().to_string(),
            drive.display().to_string(),
            cloud.display(),
        ));
        env.run(&["init"]).ok();
        Some(World { env, vault, drive, cloud, base, lib })
    }

    /// Runs the binary with its clock shifted by `shift` ("-1d", "+365d"; "" = the real clock).
    fn run_at(&mut self, shift: &str, args: &[&str]) -> crate::helpers::Run {
        self.env.vars = self.base.clone();
        if !shift.is_empty() {
            self.env.vars.push(("LD_PRELOAD".into(), self.lib.display().to_string()));
            self.env.vars.push(("FAKETIME".into(), shift.into()));
        }
        self.env.run(args)
    }

    /// The tip of the snapshot branch in the backup repo.
    fn newest_snapshot(&self) -> String {
        let repo = self.env.backup_repo("v");
        let r =
            git(Path::new("/"), &["--git-dir", repo.to_str().unwrap(), "rev-parse", "refs/heads/snapshot"]);
        r.stdout.trim().to_string()
    }

    /// The bundles on the drive, by name.
    fn bundles(&self) -> Vec<String> {
        bundles_in(&self.drive)
    }

    /// The newest snapshot is in a verified bundle on every target, and git reads it there.
    fn assert_newest_snapshot_on_every_target(&self, when: &str) {
        for dir in [&self.drive, &self.cloud] {
            self.assert_newest_snapshot_in(dir, when);
        }
    }

    /// The newest snapshot is in a verified bundle in `dir`, and git reads that bundle.
    fn assert_newest_snapshot_in(&self, dir: &Path, when: &str) {
        let tip = self.newest_snapshot();
        let holder = bundles_in(dir).into_iter().find(|b| {
            let m: serde_json::Value =
                serde_json::from_slice(&fs::read(dir.join(format!("{b}.json"))).unwrap_or_default())
                    .unwrap_or_default();
            m["snapshot"].as_str() == Some(tip.as_str()) && m["verified"] == true
        });
        let Some(b) = holder else {
            panic!(
                "{when}: no verified bundle in {} holds the newest snapshot {tip}: {:?}",
                dir.display(),
                bundles_in(dir)
            )
        };
        let repo = self.env.backup_repo("v");
        let file = dir.join(&b);
        git(
            Path::new("/"),
            &["--git-dir", repo.to_str().unwrap(), "bundle", "verify", file.to_str().unwrap()],
        )
        .ok();
    }

    /// `status --json` under the given clock: the age of the newest good backup.
    fn status_age(&mut self, shift: &str) -> (f64, serde_json::Value) {
        let r = self.run_at(shift, &["status", "--json", "--max-age", "2d"]);
        let j = r.json();
        let age = j["sources"][0]["age_hours"].as_f64().unwrap_or_else(|| panic!("no age: {j:#}"));
        (age, j)
    }
}

/// The bundles in a target's directory, by name.
fn bundles_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bundle"))
        .collect();
    v.sort();
    v
}

#[test]
fn clock_one_day_behind_keeps_the_newest_snapshot() {
    let Some(mut w) = World::new("clock_one_day_behind_keeps_the_newest_snapshot", "keep = { last = 1 }")
    else {
        return;
    };
    w.run_at("", &["run"]).ok();
    w.assert_newest_snapshot_on_every_target("after a run with the real clock");

    // The clock falls a day behind; the vault changes; the next run dates its bundle yesterday.
    vaultgen::mutate(&w.vault, 1);
    let r = w.run_at("-1d", &["run"]);
    assert_eq!(r.code, 3, "a bundle dated ahead of the clock is a warning\n{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("the clock was ahead or is behind now"), "{}", r.stdout);
    assert!(r.stdout.contains("WARN v          clock"), "the jump back is a warning: {}", r.stdout);
    w.assert_newest_snapshot_on_every_target("after a run with the clock a day behind");
    assert_eq!(w.bundles().len(), 1, "keep last = 1 removed the older content: {:?}", w.bundles());
    w.run_at("-1d", &["check"]).ok();
    w.run_at("", &["check"]).ok();
    assert_fsck(&w.env.backup_repo("v"));

    let (age, j) = w.status_age("-1d");
    assert!((0.0..1.0).contains(&age), "status under the behind clock: {j:#}");
    let warnings = j["sources"][0]["warnings"].to_string();
    assert!(warnings.contains("clock behind?"), "{j:#}");
    let (age, j) = w.status_age("");
    assert!((0.0..1.0).contains(&age), "status under the real clock: {j:#}");
    let text = w.run_at("-1d", &["status"]).stdout;
    assert!(!text.contains(" -"), "a negative age: {text}");
}

#[test]
fn a_clock_a_year_ahead_then_corrected_keeps_the_newest_snapshot() {
    let Some(mut w) =
        World::new("a_clock_a_year_ahead_then_corrected_keeps_the_newest_snapshot", "keep = { daily = 1 }")
    else {
        return;
    };
    // Two runs a year ahead, a day apart: bundles dated next year.
    w.run_at("+365d", &["run"]).ok();
    vaultgen::mutate(&w.vault, 1);
    w.run_at("+366d", &["run"]).ok();
    w.assert_newest_snapshot_on_every_target("after runs a year ahead");
    let ahead = w.bundles();
    assert!(ahead.iter().all(|b| b.contains("-2027-") || b.contains("-2028-")), "{ahead:?}");

    // `prune` under the real clock warns about them and keeps the one with the newest snapshot.
    let r = w.run_at("", &["prune"]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("the clock was ahead or is behind now"), "{}", r.stderr);
    w.assert_newest_snapshot_on_every_target("after prune with the corrected clock");
    let j = w.run_at("", &["status", "--target", "drive", "--json", "--max-age", "2d"]).ok().json();
    assert_eq!(j["sources"][0]["age_hours"], 0.0, "{j:#}");
    assert_eq!(j["sources"][0]["clock_behind"], true, "{j:#}");

    // The clock is corrected. The first run warns about the future bundles; its own bundle
    // is not pruned at once.
    vaultgen::mutate(&w.vault, 2);
    let r = w.run_at("", &["run"]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("the clock was ahead or is behind now"), "{}", r.stdout);
    assert!(r.stdout.contains("the clock jumped back"), "{}", r.stdout);
    w.assert_newest_snapshot_on_every_target("after the first run with the corrected clock");
    let (age, j) = w.status_age("");
    assert!((0.0..1.0).contains(&age), "status after the correction: {j:#}");

    // Runs hours later with the corrected clock keep their own bundles too, and no longer warn.
    for (day, later) in [(3, "+1h"), (4, "+2h")] {
        vaultgen::mutate(&w.vault, day);
        let r = w.run_at(later, &["run"]).ok();
        assert!(!r.stdout.contains("clock"), "the jump was reported once: {}", r.stdout);
        w.assert_newest_snapshot_on_every_target(&format!("after the run {later} with the corrected clock"));
    }
    w.run_at("+2h", &["check"]).ok();
    assert_fsck(&w.env.backup_repo("v"));
    let (age, j) = w.status_age("+2h");
    assert!((0.0..1.0).contains(&age), "status: {j:#}");
    let text = w.run_at("+2h", &["status"]).stdout;
    assert!(!text.contains(" -"), "a negative age: {text}");
}

/// Incremental bundles under the same clocks: a chain that a kept bundle needs is kept, even
/// when its members are dated next year.
#[test]
fn incremental_chains_survive_a_clock_a_year_ahead_then_corrected() {
    let Some(mut w) = World::new(
        "incremental_chains_survive_a_clock_a_year_ahead_then_corrected",
        "mode = \"incremental\"\nkeep = { last = 1 }",
    ) else {
        return;
    };
    w.run_at("+365d", &["run"]).ok();
    vaultgen::mutate(&w.vault, 1);
    w.run_at("+366d", &["run"]).ok();
    w.assert_newest_snapshot_on_every_target("after runs a year ahead");
    for (day, at) in [(2, ""), (3, "+1h"), (4, "+2h")] {
        vaultgen::mutate(&w.vault, day);
        let r = w.run_at(at, &["run"]);
        assert!(r.code == 0 || r.code == 3, "{}\n{}", r.stdout, r.stderr);
        w.assert_newest_snapshot_on_every_target(&format!(
            "after the run at {at:?} with the corrected clock"
        ));
        w.run_at(at, &["check"]).ok();
    }
    // The corrected clock started a new full bundle (the full dated next year is no measure of
    // `full_every`), so the chains dated next year are gone, and the drill restores the newest.
    assert!(w.bundles().iter().all(|b| b.contains("-2026-")), "{:?}", w.bundles());
    let j = w.run_at("+2h", &["drill", "--json"]).ok().json();
    let chain = j.to_string();
    let newest = w.bundles().last().unwrap().clone();
    assert!(chain.contains(&newest), "the drill restored an older chain than {newest}: {j:#}");
    assert_fsck(&w.env.backup_repo("v"));
}

/// A bundle without a manifest (a killed run's leftover) between two verified ones: with
/// `keep = { last = 2 }` it must not take the older verified bundle's slot.
#[test]
fn an_unverified_bundle_never_pushes_a_verified_one_out() {
    let mut env = Env::new();
    let vault = env.path("vault");
    let drive = env.path("drive");
    vaultgen::create(&vault, &vaultgen::Spec { notes: 30, attachments: 1, ..Default::default() });
    env.write_config_text(&format!(
        "state_dir = {:?}\n[[source]]\nname = \"v\"\npath = {:?}\n\n\
         [[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {:?}\nkeep = {{ last = 2 }}\n",
        env.state.display().to_string(),
        vault.display().to_string(),
        drive.display().to_string(),
    ));
    env.run(&["init"]).ok();
    env.now = Some("2026-11-20T03:30:00Z".into());
    env.run(&["snapshot"]).ok();
    env.run(&["bundle"]).ok();
    vaultgen::mutate(&vault, 1);
    env.now = Some("2026-11-22T03:30:00Z".into());
    env.run(&["snapshot"]).ok();
    env.run(&["bundle"]).ok();
    fs::copy(drive.join("v-2026-11-20T033000Z.bundle"), drive.join("v-2026-11-21T033000Z.bundle")).unwrap();

    let r = env.run(&["prune"]).ok();
    let mut left: Vec<String> = fs::read_dir(&drive)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bundle"))
        .collect();
    left.sort();
    assert_eq!(left, ["v-2026-11-20T033000Z.bundle", "v-2026-11-22T033000Z.bundle"], "{}", r.stdout);
}

/// `every` under a clock that was a year ahead: a bundle dated next year does not hold back
/// the next one for a year.
#[test]
fn every_is_not_stalled_by_a_bundle_dated_next_year() {
    let Some(mut w) = World::new(
        "every_is_not_stalled_by_a_bundle_dated_next_year",
        "every = \"12h\"\nkeep = { last = 1 }",
    ) else {
        return;
    };
    w.run_at("+365d", &["run"]).ok();
    vaultgen::mutate(&w.vault, 1);
    let r = w.run_at("", &["run"]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    w.assert_newest_snapshot_on_every_target("after the first run with the corrected clock");
    vaultgen::mutate(&w.vault, 2);
    let r = w.run_at("+1h", &["run"]).ok();
    assert!(
        r.stdout.contains("is younger than every"),
        "a bundle an hour old holds the next back: {}",
        r.stdout
    );
}
