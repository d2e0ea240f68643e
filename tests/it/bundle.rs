//! Bundles against stock git (verify, clone, fetch of an incremental chain), our reader on
//! bundles git wrote, the drive guard, a killed run, `every`, and prune.

use std::fs;
use std::path::{Path, PathBuf};

use crate::helpers::coderepo::CodeRepo;
use crate::helpers::{git, treecmp, vaultgen, Env};

/// A git work tree holding code and a vault, snapshotted and imported, and a marked drive.
fn setup(target_extra: &str) -> (Env, CodeRepo, PathBuf) {
    let env = Env::new();
    let code = CodeRepo::new(&env.path("code"));
    vaultgen::create(
        &code.work.join("vault"),
        &vaultgen::Spec { notes: 60, attachments: 3, ..Default::default() },
    );
    code.git(&["add", "vault"]).ok();
    code.git(&["commit", "-q", "-m", "vault"]).ok();
    code.git(&["tag", "-a", "v1", "-m", "release"]).ok();
    let drive = env.path("drive");
    env.write_config_text(&format!(
        "state_dir = {:?}\n[[source]]\nname = \"opus\"\npath = {:?}\n\n[[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {:?}\n{target_extra}\n",
        env.state.display().to_string(),
        code.work.display().to_string(),
        drive.display().to_string()
    ));
    env.run(&["init"]).ok();
    env.run(&["snapshot"]).ok();
    env.run(&["mirror"]).ok();
    (env, code, drive)
}

fn bundles(drive: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(drive)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bundle"))
        .collect();
    v.sort();
    v
}

/// Recreates empty directories recorded in a snapshot, with the one-liner the README gives.
fn make_empty_dirs(clone: &Path) {
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg("git ls-tree -r -t -z HEAD | grep -z '^040000 tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904' | cut -z -f2 | xargs -0 -r mkdir -p")
        .current_dir(clone)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn stock_git_verifies_and_clones_our_bundle_code_and_vault() {
    let (env, code, drive) = setup("");
    let r = env.run(&["bundle"]).ok();
    assert!(r.stdout.contains("verified"), "{}", r.stdout);
    let b = bundles(&drive);
    assert_eq!(b.len(), 1);
    let empty = env.path("empty");
    git(env.dir.path(), &["init", "-q", empty.to_str().unwrap()]).ok();
    let v = git(&empty, &["bundle", "verify", b[0].to_str().unwrap()]).ok();
    assert!(v.stderr.contains("is okay"), "{}", v.stderr);

    // The code: `git clone X.bundle code` checks out the user's branch with its history.
    let clone = env.path("restored-code");
    git(env.dir.path(), &["clone", "-q", b[0].to_str().unwrap(), clone.to_str().unwrap()]).ok();
    assert_eq!(git(&clone, &["rev-parse", "HEAD"]).ok().stdout.trim(), code.head());
    assert_eq!(git(&clone, &["rev-parse", "--abbrev-ref", "HEAD"]).ok().stdout.trim(), "main");
    assert!(git(&clone, &["tag", "-l"]).ok().stdout.contains("v1"));

    // The vault: `git clone -b snapshot X.bundle vault` is the newest snapshot, byte for byte.
    let vault = env.path("restored-vault");
    git(env.dir.path(), &["clone", "-q", "-b", "snapshot", b[0].to_str().unwrap(), vault.to_str().unwrap()])
        .ok();
    make_empty_dirs(&vault);
    treecmp::assert_same(&code.work, &vault, &treecmp::default_skip);
}

#[test]
fn a_plain_vault_bundle_clones_straight_to_the_vault() {
    let env = Env::new();
    let vault = env.path("My Life Lab");
    vaultgen::create(&vault, &vaultgen::Spec { notes: 40, attachments: 2, ..Default::default() });
    let drive = env.path("drive");
    env.write_config_text(&format!(
        "state_dir = {:?}\n[[source]]\nname = \"life\"\npath = {:?}\n[[target]]\nname = \"d\"\nkind = \"dir\"\npath = {:?}\n",
        env.state.display().to_string(),
        vault.display().to_string(),
        drive.display().to_string()
    ));
    env.run(&["init"]).ok();
    env.run(&["snapshot"]).ok();
    env.run(&["bundle"]).ok();
    let out = env.path("clone");
    git(env.dir.path(), &["clone", "-q", bundles(&drive)[0].to_str().unwrap(), out.to_str().unwrap()]).ok();
    make_empty_dirs(&out);
    treecmp::assert_same(&vault, &out, &treecmp::default_skip);
}

#[test]
fn an_incremental_chain_restores_with_stock_git_and_with_our_reader() {
    let (mut env, code, drive) = setup("mode = \"incremental\"\nfull_every = \"7d\"");
    env.now = Some("2026-11-20T03:30:00Z".into());
    env.run(&["bundle"]).ok();
    for (day, now) in [(1, "2026-11-21T03:30:00Z"), (2, "2026-11-22T03:30:00Z")] {
        vaultgen::mutate(&code.work.join("vault"), day);
        code.commit(&format!("day{day}.md"), "work", &format!("day {day}"));
        env.now = Some(now.into());
        env.run(&["snapshot"]).ok();
        env.run(&["mirror"]).ok();
        let r = env.run(&["bundle", "--json"]).ok().json();
        assert_eq!(r[0]["kind"], "incremental", "{r}");
    }
    let b = bundles(&drive);
    assert_eq!(b.len(), 3);
    // Nothing new: no bundle.
    env.now = Some("2026-11-22T04:00:00Z".into());
    let r = env.run(&["bundle"]).ok();
    assert!(r.stdout.contains("nothing changed since"), "{}", r.stdout);

    // Stock git: clone the full bundle, fetch each incremental in order.
    let repo = env.path("stock");
    git(env.dir.path(), &["clone", "-q", "--mirror", b[0].to_str().unwrap(), repo.to_str().unwrap()]).ok();
    for inc in &b[1..] {
        git(&repo, &["bundle", "verify", inc.to_str().unwrap()]).ok();
        git(&repo, &["fetch", "-q", inc.to_str().unwrap(), "+refs/*:refs/*"]).ok();
    }
    let backup = env.backup_repo("opus");
    let want = git(&backup, &["rev-parse", "snapshot", "main"]).ok().stdout;
    assert_eq!(git(&repo, &["rev-parse", "snapshot", "main"]).ok().stdout, want);
    crate::helpers::assert_fsck(&repo);

    // Our reader, through `unbundle`.
    let ours = env.path("ours.git");
    let r = env.run(&["unbundle", "--to", ours.to_str().unwrap()]).ok();
    assert_eq!(r.stdout.matches("applied ").count(), 3, "{}", r.stdout);
    assert_eq!(git(&ours, &["rev-parse", "snapshot", "main"]).ok().stdout, want);
    crate::helpers::assert_fsck(&ours);
}

#[test]
fn our_reader_reads_bundles_git_wrote() {
    let env = Env::new();
    let code = CodeRepo::new(&env.path("code"));
    let first = code.commit("a.md", "a", "a");
    code.commit("b.md", "b", "b");
    code.git(&["tag", "-a", "v2", "-m", "annotated"]).ok();
    let full = env.path("full.bundle");
    let inc = env.path("inc.bundle");
    code.git(&["bundle", "create", "-q", full.to_str().unwrap(), "--all"]).ok();
    code.commit("c.md", "c", "c");
    code.git(&["bundle", "create", "-q", inc.to_str().unwrap(), "main", &format!("^{first}")]).ok();
    let repo = git2::Repository::init_bare(env.path("r.git")).unwrap();
    let h = opus_mirror_core::bundle::read::unbundle(&repo, &full).expect("full bundle from git");
    assert!(h.refs.iter().any(|(n, _)| n == "refs/tags/v2"));
    let h2 =
        opus_mirror_core::bundle::read::unbundle(&repo, &inc).expect("incremental (thin) bundle from git");
    assert_eq!(h2.prerequisites.len(), 1);
    assert_eq!(repo.refname_to_id("refs/heads/main").unwrap().to_string(), code.head());
    crate::helpers::assert_fsck(&env.path("r.git"));
    // Missing prerequisite: named.
    let other = git2::Repository::init_bare(env.path("o.git")).unwrap();
    let err = opus_mirror_core::bundle::read::unbundle(&other, &inc).unwrap_err().to_string();
    assert!(err.contains(&first) && err.contains("apply the bundles of the chain in order"), "{err}");
}

#[test]
fn an_unplugged_drive_is_skipped_with_exit_6_and_nothing_written() {
    let (env, _code, drive) = setup("");
    // The drive's marker is gone: as if the mount point were an empty directory.
    fs::remove_file(drive.join(".opus-mirror-target")).unwrap();
    let r = env.run(&["bundle"]).code(6);
    insta::assert_snapshot!("unplugged_drive", env.redact(&r.stderr));
    assert!(bundles(&drive).is_empty());
    // require_mount: a path on the root filesystem is refused even with a marker.
    let text = fs::read_to_string(&env.config).unwrap();
    env.write_config_text(&format!("{text}require_mount = true\n"));
    env.run(&["init"]).ok();
    let r = env.run(&["bundle"]).code(6);
    assert!(r.stderr.contains("is not on a mounted filesystem of its own"), "{}", r.stderr);
    assert!(bundles(&drive).is_empty());
}

#[test]
fn a_killed_bundle_run_leaves_no_partial_bundle() {
    let (env, code, drive) = setup("");
    env.run(&["bundle"]).ok();
    let first = bundles(&drive);
    let sum = |p: &Path| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(fs::read(p).unwrap()))
    };
    let first_sum = sum(&first[0]);
    let mut rng = vaultgen::Rng::new(4);
    fs::write(code.work.join("vault/attachments/huge.bin"), rng.bytes(64 << 20)).unwrap();
    env.run(&["snapshot"]).ok();
    for delay in [30, 120, 300] {
        std::thread::sleep(std::time::Duration::from_millis(1100)); // a new bundle name
        let mut child = env
            .command(&["bundle"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        child.kill().unwrap();
        child.wait().unwrap();
        for b in bundles(&drive) {
            let manifest = b.with_file_name(format!("{}.json", b.file_name().unwrap().to_string_lossy()));
            if manifest.exists() {
                let m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
                assert_eq!(m["sha256"], sum(&b), "{} does not match its manifest", b.display());
            } else {
                // Killed between rename and manifest: complete, just not yet verified.
                let empty = env.path("verify-empty");
                let _ = git(env.dir.path(), &["init", "-q", empty.to_str().unwrap()]);
                git(&empty, &["bundle", "verify", b.to_str().unwrap()]).ok();
            }
        }
    }
    assert_eq!(sum(&first[0]), first_sum, "the previous bundle changed");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.run(&["bundle", "--force"]).ok();
    let leftovers: Vec<_> = fs::read_dir(&drive)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".opus-mirror-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn every_skips_a_target_until_it_is_due() {
    let (mut env, _code, drive) = setup("every = \"1d\"");
    env.now = Some("2026-11-20T03:30:00Z".into());
    env.run(&["bundle"]).ok();
    env.now = Some("2026-11-20T20:00:00Z".into());
    let r = env.run(&["bundle"]).ok();
    assert!(r.stdout.contains("skipped") && r.stdout.contains("younger than every = 1d"), "{}", r.stdout);
    // run --dry-run judges "due" exactly as bundle does.
    let dry = env.run(&["run", "--dry-run"]);
    assert!(
        dry.stdout.contains("not due: opus-2026-11-20T033000Z.bundle is younger than every = 1d"),
        "{}",
        dry.stdout
    );
    assert_eq!(bundles(&drive).len(), 1);
    env.now = Some("2026-11-21T03:31:00Z".into());
    env.run(&["bundle"]).ok();
    assert_eq!(bundles(&drive).len(), 2);
}

#[test]
fn prune_applies_the_policy_with_reasons_and_dry_run_deletes_nothing() {
    let (mut env, code, drive) = setup("keep = { last = 2, weekly = 2 }");
    for (i, day) in ["2026-11-01", "2026-11-08", "2026-11-15", "2026-11-20", "2026-11-21", "2026-11-22"]
        .iter()
        .enumerate()
    {
        code.commit(&format!("n{i}.md"), "x", "work");
        env.now = Some(format!("{day}T03:30:00Z"));
        env.run(&["mirror"]).ok();
        env.run(&["bundle"]).ok();
    }
    assert_eq!(bundles(&drive).len(), 6);
    let dry = env.run(&["prune", "--dry-run", "--json"]).ok().json();
    insta::assert_json_snapshot!("prune_plan", dry);
    assert_eq!(bundles(&drive).len(), 6, "a dry run deletes nothing");
    env.run(&["prune"]).ok();
    let left: Vec<String> =
        bundles(&drive).iter().map(|p| p.file_name().unwrap().to_string_lossy().to_string()).collect();
    assert_eq!(
        left,
        vec![
            "opus-2026-11-15T033000Z.bundle",
            "opus-2026-11-21T033000Z.bundle",
            "opus-2026-11-22T033000Z.bundle"
        ]
    );
    assert!(!drive.join("opus-2026-11-01T033000Z.bundle.json").exists(), "the manifest goes with its bundle");
}

#[test]
fn encrypted_bundles_decrypt_with_age_and_restore() {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let (env, code, drive) = setup(&format!("encrypt = {{ age_recipients = [\"{}\"] }}", id.to_public()));
    let key = env.path("key.txt");
    fs::write(&key, format!("{}\n", id.to_string().expose_secret())).unwrap();
    let r = env.run(&["bundle", "--json"]).ok().json();
    let name = r[0]["file"].as_str().unwrap().to_string();
    assert!(name.ends_with(".bundle.age"), "{name}");
    let file = drive.join(&name);
    let head = fs::read(&file).unwrap();
    assert!(head.starts_with(b"age-encryption.org/v1"), "not an age file");
    assert!(!head.windows(15).any(|w| w == b"# v2 git bundle"), "plaintext leaked");
    // Our restore needs the identity, and says so.
    let out = env.path("ours.git");
    let r = env.run(&["unbundle", "--to", out.to_str().unwrap()]).code(2);
    assert!(r.stderr.contains("--identity"), "{}", r.stderr);
    env.run(&["unbundle", "--identity", key.to_str().unwrap(), "--to", out.to_str().unwrap()]).ok();
    assert_eq!(git(&out, &["rev-parse", "main"]).ok().stdout.trim(), code.head());
    // Stock tools: `age -d`, then `git clone`.
    let Ok(o) = std::process::Command::new("age").args(["-d", "-i"]).arg(&key).arg(&file).output() else {
        crate::helpers::servers::missing("age", "encrypted_bundles_decrypt_with_age_and_restore");
        return;
    };
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plain = env.path("plain.bundle");
    fs::write(&plain, o.stdout).unwrap();
    let clone = env.path("clone");
    git(env.dir.path(), &["clone", "-q", plain.to_str().unwrap(), clone.to_str().unwrap()]).ok();
    assert_eq!(git(&clone, &["rev-parse", "HEAD"]).ok().stdout.trim(), code.head());
}

/// `run` never skips the drill of an encrypted target without a word: with the key configured
/// it drills it, without one it says "not drilled" as a warning with the fix.
#[test]
fn an_encrypted_target_is_drilled_with_its_configured_key_or_reported() {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let (env, _code, _drive) = setup(&format!("encrypt = {{ age_recipients = [\"{}\"] }}", id.to_public()));
    let r = env.run(&["run", "--json"]).json();
    let steps = r["steps"].as_array().unwrap();
    let drill = steps.iter().find(|s| s["step"] == "drill").unwrap_or_else(|| panic!("no drill step: {r:#}"));
    assert_eq!(drill["outcome"], "warning", "{drill}");
    assert!(
        drill["detail"].as_str().unwrap().contains("not drilled")
            && drill["detail"].as_str().unwrap().contains("identity_file"),
        "{drill}"
    );
    assert_eq!(r["exit"], "warnings", "{r:#}");

    let key = env.path("key.txt");
    fs::write(&key, format!("{}\n", id.to_string().expose_secret())).unwrap();
    let text = fs::read_to_string(&env.config).unwrap().replace(
        "encrypt = { age_recipients = [",
        &format!("encrypt = {{ identity_file = {:?}, age_recipients = [", key.display().to_string()),
    );
    env.write_config_text(&text);
    let r = env.run(&["drill", "--json"]).ok().json();
    assert!(r[0]["problems"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r[0]["stock_git_ok"], true, "{r}");
}

/// `snapshot` then `bundle`, without `mirror` or `run` in between: the bundle still carries
/// the code's branches and tags (bundle imports them first), so a recover from it gives back a
/// repository, not only files.
#[test]
fn a_bundle_made_without_a_mirror_step_still_carries_the_code() {
    let env = Env::new();
    let code = CodeRepo::new(&env.path("code"));
    fs::write(code.work.join("note.md"), "n\n").unwrap();
    code.git(&["add", "note.md"]).ok();
    code.git(&["commit", "-q", "-m", "note"]).ok();
    code.git(&["tag", "v1"]).ok();
    let drive = env.path("drive");
    env.write_config_with_drive("opus", &code.work, "", &drive, "");
    env.run(&["init"]).ok();
    env.run(&["snapshot"]).ok();
    env.run(&["bundle"]).ok();
    let file = bundles(&drive).into_iter().next().unwrap();
    let heads = git(env.dir.path(), &["bundle", "list-heads", file.to_str().unwrap()]).ok().stdout;
    assert!(heads.contains("refs/heads/main") && heads.contains("refs/tags/v1"), "{heads}");
    let fresh = Env::new();
    let to = fresh.path("opus");
    fresh.run(&["recover", "--from", drive.to_str().unwrap(), "--to", to.to_str().unwrap()]).ok();
    assert_eq!(git(&to, &["log", "-1", "--format=%s"]).ok().stdout.trim(), "note");
}
