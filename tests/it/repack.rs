//! The run's periodic repack: every pack of the backup repo merged into one, the older
//! versions of an edited note stored as deltas of the newer ones, and everything still read
//! back exactly by us and by stock git (the backup repo, a full bundle cloned with `git clone`).

use std::fs;
use std::path::Path;

use crate::helpers::{assert_fsck, git, vaultgen, Env};

/// The size of every pack of a repository.
fn pack_bytes(repo: &Path) -> u64 {
    fs::read_dir(repo.join("objects/pack"))
        .expect("pack dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .map(|p| fs::metadata(p).expect("stat").len())
        .sum()
}

fn step<'a>(run: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    run["steps"].as_array().expect("steps").iter().find(|s| s["step"] == name)
}

/// A long note edited in eight sessions, then the daily timer's run a week later: the eight
/// older versions become deltas, the repo shrinks by about seven copies of the note, and every
/// version reads back exactly, through us, `git fsck --full` and a clone of the full bundle.
#[test]
fn a_weekly_repack_stores_edited_notes_as_deltas_and_every_version_reads_back() {
    let mut env = Env::new();
    let vault = env.path("vault");
    vaultgen::create(&vault, &vaultgen::Spec { notes: 10, attachments: 1, ..Default::default() });
    let mut rng = vaultgen::Rng::new(7);
    let mut long: String = (0..3000).map(|i| format!("- line {i}: {}\n", rng.next())).collect();
    fs::write(vault.join("journal.md"), &long).expect("write");
    let drive = env.path("drive");
    env.write_config_with_drive("v", &vault, "", &drive, "every = \"1d\"\nfull_every = \"1d\"");
    env.run(&["init"]).ok();
    env.now = Some("2026-11-20T03:30:00Z".into());
    let first = env.run(&["run", "--json"]).ok().json();
    assert!(step(&first, "repack").is_none(), "one pack, nothing to say: {first:#}");

    let mut versions = vec![long.clone()];
    for session in 1..=8 {
        long.push_str(&format!("\n## session {session}\nwritten after the {session}th session\n"));
        fs::write(vault.join("journal.md"), &long).expect("write");
        versions.push(long.clone());
        env.now = Some(format!("2026-11-20T{:02}:00:00Z", 4 + session));
        let r = env.run(&["run", "--trigger", "hook", "--json"]).ok().json();
        assert!(step(&r, "repack").is_none(), "repacked only a week later: {r:#}");
    }
    let repo = env.backup_repo("v");
    let before = pack_bytes(&repo);

    env.now = Some("2026-11-28T04:30:00Z".into());
    let r = env.run(&["run", "--trigger", "timer", "--json"]).ok().json();
    let repack = step(&r, "repack").unwrap_or_else(|| panic!("a repack: {r:#}"));
    assert_eq!(repack["outcome"], "ok", "{repack:#}");
    let detail = repack["detail"].as_str().expect("detail");
    assert!(detail.contains("packs merged into one") && detail.contains(" 8 new deltas"), "{detail}");
    assert_eq!(step(&r, "check").expect("a check")["outcome"], "ok", "the check reads the new pack: {r:#}");
    let after = pack_bytes(&repo);
    assert!(
        before - after > 5 * (long.len() as u64 / 3),
        "seven copies of a ~{} byte note (compressed) should go: {before} -> {after}",
        long.len()
    );
    assert_fsck(&repo);

    // Every version, as restored by us.
    let list = env.run(&["snapshots", "--json"]).ok().json();
    let mut ids: Vec<String> = list[0]["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .map(|s| s["short"].as_str().expect("short").to_string())
        .collect();
    ids.reverse();
    assert_eq!(ids.len(), versions.len(), "{list:#}");
    for (id, want) in ids.iter().zip(&versions) {
        let got = env.run(&["cat", &format!("{id}:journal.md")]).ok();
        assert!(got.stdout == *want, "snapshot {id}: journal.md differs");
    }
    // ... and by stock git from the full bundle written after the repack.
    let newest = fs::read_dir(&drive)
        .expect("drive")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "bundle"))
        .max()
        .expect("a bundle");
    let clone = env.path("clone");
    git(Path::new("/"), &["clone", "--quiet", "--mirror", newest.to_str().unwrap(), clone.to_str().unwrap()])
        .ok();
    let log = git(&clone, &["log", "--format=%H", "refs/heads/snapshot"]);
    let commits: Vec<&str> = log.stdout.lines().collect();
    assert_eq!(commits.len(), versions.len());
    for (c, want) in commits.iter().rev().zip(&versions) {
        let show = git(&clone, &["show", &format!("{c}:journal.md")]);
        assert!(show.stdout == *want, "commit {c}: journal.md differs in the clone");
    }
}

/// Unmounts a tmpfs when dropped.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A repack needs room for a second copy of the packs. On a state disk without it, the repack
/// wrote until the disk was full, left its temp pack there (so the check and the drill after
/// it failed too), and tried again on every run. Now it changes nothing, says why (a warning,
/// exit 3: the backups are untouched), and leaves no temp file.
#[test]
fn a_repack_without_room_changes_nothing_and_says_so() {
    let mut env = Env::new();
    let small = env.path("small");
    fs::create_dir_all(&small).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=12m", "tmpfs"])
        .arg(&small)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        crate::helpers::servers::missing(
            "a tmpfs mount (root, CAP_SYS_ADMIN)",
            "a_repack_without_room_changes_nothing_and_says_so",
        );
        return;
    }
    let _unmount = Mounted(small.clone());
    // Two versions of a long note: a repack would pay (about half the packs).
    let vault = env.path("vault");
    fs::create_dir_all(&vault).expect("mkdir");
    let mut rng = vaultgen::Rng::new(3);
    let mut long: String = (0..3000).map(|i| format!("- line {i}: {}\n", rng.next())).collect();
    fs::write(vault.join("journal.md"), &long).expect("write");
    let state = small.join("state");
    env.write_config_text(&format!(
        "state_dir = {:?}\n[[source]]\nname = \"v\"\npath = {:?}\n",
        state.display().to_string(),
        vault.display().to_string()
    ));
    env.now = Some("2026-11-20T03:30:00Z".into());
    env.run(&["snapshot"]).ok();
    long.push_str("one more line\n");
    fs::write(vault.join("journal.md"), &long).expect("write");
    env.run(&["snapshot"]).ok();
    let packs = state.join("repos/v.git/objects/pack");
    let list = || {
        let mut v: Vec<_> =
            fs::read_dir(&packs).expect("packs").map(|e| e.expect("entry").file_name()).collect();
        v.sort();
        v
    };
    let before = list();

    env.now = Some("2026-11-28T03:30:00Z".into());
    let r = env.run(&["run", "--trigger", "timer", "--json"]).code(3).envelope();
    let repack = step(&r["data"], "repack").unwrap_or_else(|| panic!("a repack step: {r:#}"));
    assert_eq!(repack["outcome"], "warning", "{repack:#}");
    assert!(repack["detail"].as_str().expect("detail").contains("not enough free space"), "{repack:#}");
    assert_eq!(list(), before, "nothing written, nothing left behind");
    assert_fsck(&state.join("repos/v.git"));
}

/// A repack costs a read and a write of the whole repo: a week of small edits on a large vault
/// is not worth it (the year benchmark's weekly repack rewrote 170 MiB to save 35 KiB). It
/// waits, says why in the history, and rewrites once the deltas save a fiftieth of the packs.
#[test]
fn a_repack_waits_until_its_deltas_save_a_fiftieth_of_the_packs() {
    let mut env = Env::new();
    let vault = env.path("vault");
    fs::create_dir_all(&vault).expect("mkdir");
    let mut rng = vaultgen::Rng::new(5);
    let noise: Vec<u8> = (0..2_000_000).map(|_| rng.next() as u8).collect();
    fs::write(vault.join("photo.jpg"), &noise).expect("write");
    let mut note: String = (0..200).map(|i| format!("- line {i}: {}\n", rng.next())).collect();
    fs::write(vault.join("note.md"), &note).expect("write");
    env.write_config(&[("v", &vault)]);
    env.now = Some("2026-11-20T03:30:00Z".into());
    env.run(&["snapshot"]).ok();
    note.push_str("an edit\n");
    fs::write(vault.join("note.md"), &note).expect("write");
    env.run(&["snapshot"]).ok();
    let repo = env.backup_repo("v");
    let before = pack_bytes(&repo);

    env.now = Some("2026-11-28T03:30:00Z".into());
    let r = env.run(&["run", "--trigger", "timer", "--json"]).ok().json();
    assert!(step(&r, "repack").is_none(), "a repack that waits says so in the history only: {r:#}");
    assert_eq!(pack_bytes(&repo), before, "nothing rewritten");
    let log = env.run(&["log", "--json"]).ok().json();
    let last =
        log.as_array().expect("events").iter().rev().find(|e| e["step"] == "repack").expect("recorded");
    let detail = last["detail"].as_str().expect("detail");
    assert!(detail.starts_with("not yet: 1 deltas would save"), "{detail}");

    // Weeks of edits later (here: the note grown to a fiftieth of the packs), it pays.
    for week in 0..3 {
        note.push_str(
            &(0..2000).map(|i| format!("- week {week} line {i}: {}\n", rng.next())).collect::<String>(),
        );
        fs::write(vault.join("note.md"), &note).expect("write");
        env.run(&["snapshot"]).ok();
    }
    env.now = Some("2026-12-06T03:30:00Z".into());
    let r = env.run(&["run", "--trigger", "timer", "--json"]).ok().json();
    let repack = step(&r, "repack").unwrap_or_else(|| panic!("a repack now: {r:#}"));
    assert!(repack["detail"].as_str().expect("detail").contains("new deltas"), "{repack:#}");
    assert_fsck(&repo);
}
