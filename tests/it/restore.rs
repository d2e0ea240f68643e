//! Restores: to a new directory, in place, by path, by time; and the refusals that keep
//! users from overwriting what they have.

use std::fs;

use crate::helpers::{treecmp, vaultgen, Env};

fn vault_env() -> (Env, std::path::PathBuf) {
    let mut env = Env::new();
    // Snapshots are dated in the past, so files edited during the test count as newer.
    env.now = Some("2026-01-01T00:00:00Z".into());
    let vault = env.path("vault");
    vaultgen::create(&vault, &vaultgen::Spec::default());
    env.write_config(&[("vault", &vault)]);
    (env, vault)
}

/// The seed's manual test: "restore from backup to a temp dir: all files present and intact".
#[test]
fn restore_from_backup_to_a_temp_dir_all_files_present_and_intact() {
    let (env, vault) = vault_env();
    env.run(&["snapshot"]).ok();
    let out = env.path("restore-here");
    let j = env.run(&["restore", "--to", out.to_str().unwrap(), "--json"]).ok().json();
    assert!(j["restored"].as_u64().unwrap() > 120);
    treecmp::assert_same(&vault, &out, &treecmp::default_skip);
}

/// The seed's manual test: "simulate file deletion + recovery: files restored from backup".
#[test]
fn simulated_file_deletion_is_recovered_in_place() {
    let (env, vault) = vault_env();
    env.run(&["snapshot"]).ok();
    let pristine = env.path("pristine");
    env.run(&["restore", "--to", pristine.to_str().unwrap()]).ok();
    // A misfiring script: deletes a folder and a note, truncates another, leaves a new file.
    fs::remove_dir_all(vault.join("10_projects")).unwrap();
    fs::remove_file(vault.join("scripts/sync.sh")).unwrap();
    fs::write(vault.join(".obsidian/app.json"), "").unwrap();
    fs::write(vault.join("inbox/new today.md"), "written after the snapshot").unwrap();

    // Default: the truncated file is newer than the snapshot, so it is kept and reported.
    let r = env.run(&["restore", "--in-place"]).code(3);
    assert!(r.stderr.contains(".obsidian/app.json"), "{}", r.stderr);
    assert!(vault.join("scripts/sync.sh").exists() && vault.join("10_projects").is_dir());
    assert_eq!(fs::read_to_string(vault.join(".obsidian/app.json")).unwrap(), "");
    // The message names the snapshot to use: "latest" is now the safety snapshot of the damage.
    let first =
        env.run(&["snapshots", "--json"]).ok().json()[0]["snapshots"].as_array().unwrap().last().unwrap()
            ["short"]
            .as_str()
            .unwrap()
            .to_string();
    assert!(r.stderr.contains(&format!("--snapshot {first} --overwrite")), "{}", r.stderr);
    env.run(&["restore", "--in-place", "--overwrite", "--snapshot", &first]).ok();
    assert_eq!(fs::read_to_string(vault.join("inbox/new today.md")).unwrap(), "written after the snapshot");
    fs::remove_file(vault.join("inbox/new today.md")).unwrap();
    treecmp::assert_same(&pristine, &vault, &treecmp::default_skip);
    // The live state before each restore was kept as a safety snapshot.
    let j = env.run(&["snapshots", "--json"]).ok().json();
    assert!(j[0]["snapshots"].as_array().unwrap().len() >= 2);
}

#[test]
fn in_place_dry_run_changes_nothing() {
    let (env, vault) = vault_env();
    env.run(&["snapshot"]).ok();
    fs::remove_file(vault.join("scripts/sync.sh")).unwrap();
    let r = env.run(&["restore", "--in-place", "--dry-run"]).ok();
    assert!(
        r.stdout.contains("scripts/sync.sh") && r.stdout.contains("would restore 1 item"),
        "{}",
        r.stdout
    );
    assert!(!vault.join("scripts/sync.sh").exists());
    let j = env.run(&["snapshots", "--json"]).ok().json();
    assert_eq!(j[0]["snapshots"].as_array().unwrap().len(), 1, "a dry run takes no safety snapshot");
}

#[test]
fn path_restores_only_what_is_asked() {
    let (env, _vault) = vault_env();
    env.run(&["snapshot"]).ok();
    let out = env.path("out");
    env.run(&["restore", "--path", "scripts", "--path", ".obsidian/app.json", "--to", out.to_str().unwrap()])
        .ok();
    let m = treecmp::manifest(&out, &|_| false);
    let names: Vec<_> = m.keys().map(|k| String::from_utf8_lossy(k).to_string()).collect();
    assert_eq!(names, vec![".obsidian/app.json", "scripts/sync.sh"]);
    assert!(matches!(m.get(b"scripts/sync.sh".as_slice()), Some(treecmp::Item::File { exec: true, .. })));
}

#[test]
fn at_picks_the_snapshot_as_of_that_time() {
    let (mut env, vault) = vault_env();
    fs::write(vault.join("state.md"), "january").unwrap();
    env.run(&["snapshot"]).ok();
    env.now = Some("2026-02-01T00:00:00Z".into());
    fs::write(vault.join("state.md"), "february").unwrap();
    env.run(&["snapshot"]).ok();
    let out = env.path("out");
    env.run(&["restore", "--at", "2026-01-15", "--path", "state.md", "--to", out.to_str().unwrap()]).ok();
    assert_eq!(fs::read_to_string(out.join("state.md")).unwrap(), "january");
    let r = env.run(&["restore", "--at", "2025-12-01", "--to", env.path("none").to_str().unwrap()]).code(2);
    assert!(r.stderr.contains("no snapshot of `vault` is as old as"), "{}", r.stderr);
}

/// A retry with the default `latest` restores the user's snapshot, not the safety snapshot the
/// first attempt took of the damage (which used to make the retry restore nothing).
#[test]
fn latest_never_means_a_safety_snapshot_and_to_the_source_is_in_place() {
    let (env, vault) = vault_env();
    env.run(&["snapshot"]).ok();
    let pristine = env.path("pristine");
    env.run(&["restore", "--to", pristine.to_str().unwrap()]).ok();
    fs::remove_dir_all(vault.join("10_projects")).unwrap();
    fs::write(vault.join(".obsidian/app.json"), "a newer edit").unwrap();
    env.run(&["restore", "--in-place"]).code(3);
    // The retry: `latest` is still the user's snapshot, so nothing new is restored and the
    // newer edit is still kept.
    fs::remove_dir_all(vault.join("10_projects")).unwrap();
    let again = env.run(&["restore", "--in-place", "--json"]).code(3).json();
    assert!(again["restored"].as_u64().unwrap() > 0, "the retry restored nothing: {again}");
    assert!(vault.join("10_projects").is_dir());
    let list = env.run(&["snapshots", "--json"]).ok().json();
    let snaps = list[0]["snapshots"].as_array().unwrap();
    assert!(snaps.iter().any(|s| s["safety"] == true), "the safety snapshot is not marked: {list}");
    // `--to` the source itself, even with --force, keeps the newer edit and takes a safety snapshot.
    let r = env.run(&["restore", "--to", vault.to_str().unwrap(), "--force"]).code(3);
    assert!(r.stderr.contains("restoring in place"), "{}", r.stderr);
    assert_eq!(fs::read_to_string(vault.join(".obsidian/app.json")).unwrap(), "a newer edit");
}
