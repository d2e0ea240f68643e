//! Permission bits: git keeps only 644 and 755, so each snapshot records the real bits in its
//! commit message; `restore`, `drill` and `recover` bring them back exactly (a 0600 note as
//! 0600), a chmod alone is a change, and stock git sees an ordinary tree.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::helpers::{git, treecmp, vaultgen, Env};

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A vault with every kind of bits a user would miss: private notes and folders, a group-only
/// script, a read-only folder.
fn vault_with_modes(vault: &Path) {
    vaultgen::create(vault, &vaultgen::Spec { notes: 8, attachments: 1, ..Default::default() });
    fs::write(vault.join("diary.md"), "PRIVATE\n").unwrap();
    chmod(&vault.join("diary.md"), 0o600);
    fs::write(vault.join("tool.sh"), "#!/bin/sh\necho hi\n").unwrap();
    chmod(&vault.join("tool.sh"), 0o750);
    fs::create_dir_all(vault.join("private/inner")).unwrap();
    fs::write(vault.join("private/inner/plans.md"), "plans\n").unwrap();
    chmod(&vault.join("private/inner/plans.md"), 0o640);
    chmod(&vault.join("private"), 0o700);
    fs::create_dir_all(vault.join("frozen")).unwrap();
    fs::write(vault.join("frozen/done.md"), "done\n").unwrap();
    chmod(&vault.join("frozen/done.md"), 0o444);
    chmod(&vault.join("frozen"), 0o555);
}

#[test]
fn restore_drill_and_recover_bring_back_every_permission_bit() {
    let env = Env::new();
    let vault = env.path("vault");
    vault_with_modes(&vault);
    let drive = env.path("drive");
    env.write_config_with_drive("life", &vault, "", &drive, "");
    env.run(&["init"]).ok();
    env.run(&["snapshot"]).ok();
    let skip = treecmp::default_skip;

    let restored = env.path("restored");
    env.run(&["restore", "--to", restored.to_str().unwrap()]).ok();
    treecmp::assert_same(&vault, &restored, &skip);
    treecmp::assert_same_modes(&vault, &restored, &skip);

    // Stock git sees an ordinary tree: nothing extra in it, fsck clean.
    let repo = env.backup_repo("life");
    let files = git(&repo, &["ls-tree", "-r", "--name-only", "snapshot"]).ok().stdout;
    assert!(
        files.lines().all(|f| vault.join(f).exists()),
        "the tree holds something the vault has not:\n{files}"
    );
    git(&repo, &["fsck", "--full", "--strict"]).ok();
    // The first thing `git log` shows after a clone of the branch says how to get it back.
    let body = git(&repo, &["log", "-1", "--format=%b", "snapshot"]).ok().stdout;
    assert!(body.starts_with("The folder exactly as it was") && body.contains("RESTORE.md"), "{body}");
    assert!(body.contains("Mode: 0600 diary.md"), "{body}");

    // A chmod alone is a change worth a snapshot; nothing new after it is unchanged.
    chmod(&vault.join(files.lines().find(|f| f.ends_with(".md") && !f.contains("frozen")).unwrap()), 0o600);
    let made = env.run(&["snapshot", "--json"]).ok().json();
    assert!(!made[0]["created"].is_null(), "a chmod was not snapshotted: {made}");
    let again = env.run(&["snapshot", "--json"]).ok().json();
    assert!(again[0]["created"].is_null(), "an unchanged vault made a snapshot: {again}");

    // In place: a note whose bits were opened up gets the snapshot's bits back.
    chmod(&vault.join("diary.md"), 0o666);
    env.run(&["restore", "--in-place"]).ok();
    assert_eq!(mode(&vault.join("diary.md")), 0o600);

    // The drill compares the bits too, and passes; recover on a new machine brings them back.
    env.run(&["bundle"]).ok();
    let drill = env.run(&["drill", "--json"]).ok().json();
    assert_eq!(drill[0]["problems"], serde_json::json!([]), "{drill}");
    let fresh = Env::new();
    let to = fresh.path("recovered");
    fresh.run(&["recover", "--from", drive.to_str().unwrap(), "--to", to.to_str().unwrap()]).ok();
    treecmp::assert_same_modes(&vault, &to, &skip);
}

/// The same as an ordinary user (CI runs as root, which no permission bit stops): under
/// umask 022, snapshot, bundle, drill and restore bring a 0600 note back as 0600, and the
/// read-only folder neither stops the restore nor leaves the drill's scratch behind.
#[test]
fn an_ordinary_user_under_umask_022_gets_every_bit_back() {
    let Some(user) = crate::private::other_user() else { return };
    let env = Env::new();
    let vault = env.path("vault");
    vault_with_modes(&vault);
    let drive = env.path("drive");
    env.write_config_with_drive("life", &vault, "", &drive, "");
    // The user owns the whole world and runs its own copy of the binary.
    let bin = env.path("opus-mirror");
    fs::copy(crate::helpers::bin(), &bin).unwrap();
    chmod(&bin, 0o755);
    chmod(env.dir.path(), 0o755);
    let chown = Command::new("chown").arg("-R").arg(format!("{user}:")).arg(env.dir.path()).status().unwrap();
    assert!(chown.success());
    // chown -R keeps the bits, but the read-only folder must stay as the user made it.
    let sh = |args: &str| {
        let mut c = Command::new("runuser");
        c.args(["--preserve-environment", "-u", user, "--", "sh", "-c"])
            .arg(format!("umask 022; exec {} {args}", bin.display()));
        env.isolate(&mut c);
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "{args}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    sh("init");
    sh("snapshot");
    sh("bundle");
    let drill = serde_json::from_str::<serde_json::Value>(&sh("drill --json")).unwrap()["data"].clone();
    assert_eq!(drill[0]["problems"], serde_json::json!([]), "{drill}");
    let restored = env.path("restored");
    sh(&format!("restore --to {}", restored.display()));
    let skip = treecmp::default_skip;
    treecmp::assert_same(&vault, &restored, &skip);
    treecmp::assert_same_modes(&vault, &restored, &skip);
    assert_eq!(mode(&restored.join("diary.md")), 0o600);
    assert_eq!(mode(&env.state), 0o700, "the state dir is not private");
    let scratch: Vec<_> = walkdir::WalkDir::new(&env.state)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_dir() && e.file_name().to_string_lossy().starts_with("drill-"))
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(scratch.is_empty(), "the drill left its scratch: {scratch:?}");
}
