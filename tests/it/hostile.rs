//! Hostile backups: whoever can write to a backup repo (a shared drive, a mirror) crafts a
//! snapshot tree git itself would reject — `..`, `/` in a name, `.git` spellings, duplicates, a
//! symlink with entries below it — and makes it the newest snapshot. Nothing may be written
//! outside the destination: each test plants a canary directory next to it and checks it stays
//! empty, that the command refuses naming the entry, and that `check` names the tree.

use std::fs;
use std::path::PathBuf;

use git2::{ObjectType, Oid, Repository};

use crate::helpers::{vaultgen, Env};

/// A raw tree entry: mode text, name bytes, object id.
pub(crate) type RawEntry = (&'static str, Vec<u8>, Oid);

/// Writes a tree object with exactly these bytes (libgit2's tree builder would refuse them).
pub(crate) fn raw_tree(repo: &Repository, entries: &[RawEntry]) -> Oid {
    let mut data = Vec::new();
    for (mode, name, oid) in entries {
        data.extend_from_slice(mode.as_bytes());
        data.push(b' ');
        data.extend_from_slice(name);
        data.push(0);
        data.extend_from_slice(oid.as_bytes());
    }
    repo.odb().unwrap().write(ObjectType::Tree, &data).unwrap()
}

pub(crate) fn blob(repo: &Repository, data: &[u8]) -> Oid {
    repo.blob(data).unwrap()
}

/// A vault with one real snapshot, and a canary directory outside everything.
pub(crate) struct World {
    pub env: Env,
    pub vault: PathBuf,
    pub canary: PathBuf,
    pub repo: Repository,
}

pub(crate) fn world() -> World {
    let mut env = Env::new();
    env.now = Some("2026-01-01T00:00:00Z".into());
    let vault = env.path("vault");
    vaultgen::create(&vault, &vaultgen::Spec { notes: 5, attachments: 1, ..Default::default() });
    env.write_config(&[("vault", &vault)]);
    env.run(&["snapshot"]).ok();
    let canary = env.path("canary");
    fs::create_dir(&canary).unwrap();
    let repo = Repository::open_bare(env.backup_repo("vault")).unwrap();
    World { env, vault, canary, repo }
}

impl World {
    /// Makes `tree` the newest snapshot, dated in the future like a planted one would be.
    pub fn plant(&self, tree: Oid) -> Oid {
        let head = self.repo.find_reference("HEAD").unwrap();
        let branch = head.symbolic_target().expect("HEAD is symbolic").expect("utf-8").to_string();
        let parent = self.repo.refname_to_id(&branch).unwrap();
        let commit = format!(
            "tree {tree}\nparent {parent}\nauthor x <x@x> 1900000000 +0000\ncommitter x <x@x> 1900000000 +0000\n\nsnapshot\n\nFiles: 1\n"
        );
        let oid = self.repo.odb().unwrap().write(ObjectType::Commit, commit.as_bytes()).unwrap();
        self.repo.reference(&branch, oid, true, "planted").unwrap();
        oid
    }

    /// The canary holds nothing, and nothing appeared next to the destination.
    pub fn assert_untouched(&self) {
        let inside: Vec<_> = fs::read_dir(&self.canary).unwrap().map(|e| e.unwrap().path()).collect();
        assert!(inside.is_empty(), "written outside the destination: {inside:?}");
        for stray in ["pwned", "x", "slash"] {
            assert!(!self.env.path(stray).exists(), "{stray} written next to the destination");
        }
    }

    fn out(&self) -> String {
        self.env.path("out").display().to_string()
    }
}

/// Runs restore, browsing and check on the planted snapshot and checks each refuses naming `entry`.
fn assert_refused(w: &World, entry: &str) {
    let r = w.env.run(&["restore", "--to", &w.out()]);
    assert_ne!(r.code, 0, "restore --to accepted a hostile tree\n{}", r.stderr);
    assert!(r.stderr.contains(entry), "restore --to does not name `{entry}`:\n{}", r.stderr);
    w.assert_untouched();
    let r = w.env.run(&["restore", "--in-place", "--overwrite"]);
    assert_ne!(r.code, 0, "restore --in-place accepted a hostile tree\n{}", r.stderr);
    assert!(r.stderr.contains(entry), "restore --in-place does not name `{entry}`:\n{}", r.stderr);
    w.assert_untouched();
    assert!(!w.vault.join(".git").exists(), "restore --in-place wrote a .git into the live source");
    // Browsing reads every tree of the snapshot through the same validation.
    for args in [&["ls"][..], &["find", "pwned"]] {
        let r = w.env.run(args);
        assert_ne!(r.code, 0, "{args:?} accepted a hostile tree\n{}", r.stdout);
        assert!(r.stderr.contains(entry), "{args:?} does not name `{entry}`:\n{}", r.stderr);
    }
    let r = w.env.run(&["check"]);
    assert_ne!(r.code, 0, "check called a hostile tree healthy\n{}{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains(entry) && all.contains("tree "),
        "check does not name the tree and `{entry}`:\n{all}"
    );
}

#[test]
fn dotdot_entry_is_refused_and_writes_nothing_outside() {
    let w = world();
    let pwned = blob(&w.repo, b"pwned");
    let canary = raw_tree(&w.repo, &[("100644", b"pwned".to_vec(), pwned)]);
    let up = raw_tree(&w.repo, &[("40000", b"canary".to_vec(), canary)]);
    let root = raw_tree(&w.repo, &[("40000", b"..".to_vec(), up)]);
    w.plant(root);
    assert_refused(&w, "..");
}

#[test]
fn name_with_a_slash_or_absolute_is_refused() {
    for absolute in [false, true] {
        let w = world();
        // From the destination `<env>/out`, or from anywhere.
        let name = if absolute {
            format!("{}/abs", w.canary.display()).into_bytes()
        } else {
            b"../canary/slash".to_vec()
        };
        let pwned = blob(&w.repo, b"pwned");
        let root = raw_tree(&w.repo, &[("100644", name.clone(), pwned)]);
        w.plant(root);
        assert_refused(&w, &String::from_utf8_lossy(&name));
    }
}

#[test]
fn symlink_with_entries_below_it_is_refused() {
    let w = world();
    let target = blob(&w.repo, w.canary.as_os_str().as_encoded_bytes());
    let pwned = blob(&w.repo, b"pwned");
    let below = raw_tree(&w.repo, &[("100644", b"x".to_vec(), pwned)]);
    // `evil -> <canary>` and the tree `evil/x`: restoring x would go through the link.
    let root = raw_tree(&w.repo, &[("120000", b"evil".to_vec(), target), ("40000", b"evil".to_vec(), below)]);
    w.plant(root);
    assert_refused(&w, "evil");
}

#[test]
fn dotgit_in_every_spelling_git_rejects_is_refused() {
    for name in [".git", ".GIT", ".git ", "git~1", ".g\u{200c}it"] {
        let w = world();
        let hook = blob(&w.repo, b"#!/bin/sh\ntouch pwned\n");
        let hooks = raw_tree(&w.repo, &[("100755", b"post-commit".to_vec(), hook)]);
        let dotgit = raw_tree(&w.repo, &[("40000", b"hooks".to_vec(), hooks)]);
        let root = raw_tree(&w.repo, &[("40000", name.as_bytes().to_vec(), dotgit)]);
        w.plant(root);
        assert_refused(&w, &name.trim_end().escape_debug().to_string());
        assert!(!w.vault.join(name).exists(), "{name:?} restored into the live source");
    }
}

#[test]
fn empty_dot_duplicate_unsorted_and_bad_modes_are_refused() {
    type Case<'a> = (&'a [(&'a str, &'a [u8])], &'a str);
    let table: [Case; 5] = [
        (&[("100644", b"")], "entry ``"),
        (&[("100644", b".")], "`.`"),
        (&[("100644", b"same"), ("100644", b"same")], "same"),
        (&[("100644", b"b-late"), ("100644", b"a-early")], "a-early"),
        (&[("100600", b"badmode")], "badmode"),
    ];
    for (entries, named) in table {
        let w = world();
        let content = blob(&w.repo, b"pwned");
        let raw: Vec<RawEntry> = entries.iter().map(|(m, n)| (*m, n.to_vec(), content)).collect();
        let root = raw_tree(&w.repo, &raw);
        w.plant(root);
        assert_refused(&w, named);
    }
}

/// The live directory is not trusted either: a folder of the source replaced by a symlink to
/// elsewhere must not be written through by `restore --in-place`.
/// Not fixed yet: needs the openat-based writer (src/safe_fs.rs, issue 9 item 1).
#[test]
fn in_place_does_not_write_through_a_symlinked_live_directory() {
    let w = world();
    let dir = w.vault.join("scripts");
    assert!(dir.is_dir(), "the generated vault has scripts/");
    let before: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!before.is_empty());
    fs::remove_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&w.canary, &dir).unwrap();
    let r = w.env.run(&["restore", "--in-place", "--overwrite"]);
    w.assert_untouched();
    assert_ne!(r.code, 0, "a symlink in the way must be reported\n{}", r.stderr);
    assert!(r.stderr.contains("scripts"), "{}", r.stderr);
    // The link is left as it is (nothing is deleted), and the rest was restored.
    assert!(fs::symlink_metadata(&dir).unwrap().file_type().is_symlink());
}

/// A vault with a note, snapshotted once, and a note that the hook swaps after the walk.
fn race(swap: &str) -> (Env, std::path::PathBuf, crate::helpers::Run) {
    let env = Env::new();
    let vault = env.path("vault");
    fs::create_dir_all(vault.join("notes")).unwrap();
    fs::write(vault.join("notes/keep.md"), "kept\n").unwrap();
    fs::write(env.path("outside-secret.txt"), "SECRET FROM OUTSIDE THE VAULT\n").unwrap();
    env.write_config(&[("life", &vault)]);
    env.run(&["init"]).ok();
    fs::write(vault.join("notes/victim.md"), "the victim's own words\n").unwrap();
    let mut c = env.command(&["snapshot"]);
    c.env(
        "OPUS_MIRROR_TEST_AFTER_WALK",
        swap.replace("VAULT", &vault.display().to_string())
            .replace("OUT", &env.path("outside-secret.txt").display().to_string()),
    );
    // A hang is the bug: give up after 20 s rather than block the suite.
    let mut child =
        c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("the snapshot hung on the swapped file");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let run = crate::helpers::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (env, vault, run)
}

/// Every blob in the backup repo, as text.
fn stored_text(env: &Env) -> String {
    let repo = env.backup_repo("life");
    let all = crate::helpers::git(&repo, &["rev-list", "--objects", "--all"]).ok().stdout;
    let mut text = String::new();
    for line in all.lines() {
        let oid = line.split(' ').next().unwrap();
        let t = crate::helpers::git(&repo, &["cat-file", "-t", oid]).ok().stdout;
        if t.trim() == "blob" {
            text.push_str(&crate::helpers::git(&repo, &["cat-file", "-p", oid]).ok().stdout);
        }
    }
    text
}

#[test]
fn a_file_swapped_for_a_fifo_after_the_walk_never_hangs_the_snapshot() {
    let (env, _vault, r) = race("rm VAULT/notes/victim.md && mkfifo VAULT/notes/victim.md");
    assert_eq!(r.code, 3, "a file that could not be read is a warning\n{}\n{}", r.stdout, r.stderr);
    assert!(format!("{}{}", r.stdout, r.stderr).contains("victim.md"), "{}\n{}", r.stdout, r.stderr);
    assert!(stored_text(&env).contains("kept"), "the rest was stored");
    // The lock was released: the next command runs at once.
    env.run(&["snapshots"]).ok();
}

#[test]
fn a_file_swapped_for_a_symlink_after_the_walk_stores_nothing_from_outside() {
    let (env, _vault, r) = race("rm VAULT/notes/victim.md && ln -s OUT VAULT/notes/victim.md");
    assert_ne!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!stored_text(&env).contains("SECRET FROM OUTSIDE"), "the outside file was stored");
    // And a parent directory swapped for a link to outside: nothing below it is read.
    let (env, _vault, _r) = race("mv VAULT/notes VAULT/notes.moved && ln -s $(dirname OUT) VAULT/notes && cp OUT $(dirname OUT)/victim.md");
    assert!(
        !stored_text(&env).contains("SECRET FROM OUTSIDE"),
        "a file below a swapped-in dir link was stored"
    );
}

/// check reads the trees of every bundle like git's fsck, an incremental bundle's too: a tree
/// naming `..` in the newest incremental bundle failed drill and recover but passed check.
#[test]
fn check_refuses_an_incremental_bundle_holding_an_unsafe_tree() {
    let w = world();
    let drive = w.env.path("drive");
    let cfg = fs::read_to_string(&w.env.config).unwrap();
    w.env.write_config_text(&format!(
        "{cfg}\n[[target]]\nname = \"drive\"\nkind = \"dir\"\nmode = \"incremental\"\npath = {:?}\n",
        drive.display().to_string()
    ));
    w.env.run(&["init"]).ok();
    w.env.run(&["bundle"]).ok();
    let pwned = blob(&w.repo, b"pwned");
    let up = raw_tree(&w.repo, &[("100644", b"pwned".to_vec(), pwned)]);
    let root = raw_tree(&w.repo, &[("40000", b"..".to_vec(), up)]);
    w.plant(root);
    w.env.run(&["bundle"]).ok();
    let incr: Vec<_> = fs::read_dir(&drive)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with("-incr.bundle"))
        .collect();
    assert_eq!(incr.len(), 1, "{incr:?}");
    let r = w.env.run(&["check"]).code(1);
    assert!(
        r.stderr.contains(&incr[0]) && r.stderr.contains("unsafe to restore") && r.stderr.contains("`..`"),
        "check does not name the incremental bundle's unsafe tree:\n{}",
        r.stderr
    );
}

/// A drive planted with a verified bundle whose newest snapshot is hostile: `drill`, `unbundle`
/// and `recover` on a new machine each refuse or stay inside their destination.
#[test]
fn a_planted_bundle_on_the_drive_writes_nothing_outside() {
    let w = world();
    let drive = w.env.path("drive");
    let cfg = fs::read_to_string(&w.env.config).unwrap();
    w.env.write_config_text(&format!(
        "{cfg}\n[[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {:?}\n",
        drive.display().to_string()
    ));
    w.env.run(&["init"]).ok();
    let pwned = blob(&w.repo, b"pwned");
    let canary = raw_tree(&w.repo, &[("100644", b"pwned".to_vec(), pwned)]);
    let up = raw_tree(&w.repo, &[("40000", b"canary".to_vec(), canary)]);
    let root = raw_tree(&w.repo, &[("40000", b"..".to_vec(), up)]);
    w.plant(root);
    // Whoever controls the drive writes a bundle and a manifest that say all is well.
    w.env.run(&["bundle"]).ok();

    let r = w.env.run(&["drill"]);
    assert_ne!(r.code, 0, "drill accepted a hostile bundle\n{}", r.stderr);
    w.assert_untouched();
    let bare = w.env.path("unbundled.git");
    let r = w.env.run(&["unbundle", "--to", bare.to_str().unwrap()]);
    assert!(r.code != 0 && r.stderr.contains("`..`"), "unbundle does not refuse naming `..`:\n{}", r.stderr);
    assert!(!bare.exists(), "a refused unbundle left a repository behind");
    w.assert_untouched();

    let fresh = Env::new();
    let to = w.env.path("recovered");
    let r = fresh.run(&["recover", "--from", drive.to_str().unwrap(), "--to", to.to_str().unwrap()]);
    assert_ne!(r.code, 0, "recover accepted a hostile bundle\n{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("unsafe") && r.stderr.contains(".."),
        "recover does not name the entry:\n{}",
        r.stderr
    );
    w.assert_untouched();
    assert!(!fresh.config.exists(), "a refused recover left its config");
}
