//! Hostile backups on an rclone target (issue 9): whoever can write to the bucket plants a
//! bundle whose newest snapshot is hostile, or a manifest that lies — its `file` a path
//! instead of the listed name, its sha256 not the bundle's. `drill`, `run` and `unbundle`
//! refuse naming what is wrong, and nothing is ever written outside their destination: each
//! test plants a canary directory next to everything and checks it stays empty.
//!
//! The target is rclone's `local` backend (no server, so these never skip for a slow moto);
//! the code under test is the same rclone path S3 takes (`lsjson`, `cat`, `copyto`).
//! `recover --from` reads only a drive directory or a mirror, not an rclone remote, so it has
//! no case here (the dir-target test in `hostile.rs` covers it).

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::helpers::servers::missing;
use crate::hostile::{blob, raw_tree, world, World};

/// A hostile world with an rclone target `cloud` (local backend) at `<env>/cloud`.
struct Cloud {
    w: World,
    dir: PathBuf,
}

/// None (after a loud SKIPPED) when rclone is not installed. `target_keys` go into the
/// `[[target]]` table of the rclone target.
fn cloud(test: &str, target_keys: &str) -> Option<Cloud> {
    if Command::new("rclone").arg("version").output().is_err() {
        missing("rclone", test);
        return None;
    }
    let mut w = world();
    let dir = w.env.path("cloud");
    fs::create_dir_all(&dir).unwrap();
    w.env.vars = vec![
        ("RCLONE_CONFIG".into(), "/dev/null".into()),
        ("RCLONE_CONFIG_CLOUD_TYPE".into(), "local".into()),
    ];
    let cfg = fs::read_to_string(&w.env.config).unwrap();
    w.env.write_config_text(&format!(
        "{cfg}\n[[target]]\nname = \"cloud\"\nkind = \"rclone\"\nremote = \"cloud:{}\"\n{target_keys}\n",
        dir.display()
    ));
    w.env.run(&["init"]).ok();
    Some(Cloud { w, dir })
}

impl Cloud {
    /// Makes the newest snapshot a tree with `..` → `canary/pwned`, and writes it to the
    /// cloud as a bundle with a manifest that says verified (as the bucket's owner would).
    fn plant_dotdot_bundle(&self) -> String {
        let w = &self.w;
        let pwned = blob(&w.repo, b"pwned");
        let canary = raw_tree(&w.repo, &[("100644", b"pwned".to_vec(), pwned)]);
        let up = raw_tree(&w.repo, &[("40000", b"canary".to_vec(), canary)]);
        let root = raw_tree(&w.repo, &[("40000", b"..".to_vec(), up)]);
        w.plant(root);
        self.bundle()
    }

    /// Writes a bundle of the newest snapshot to the cloud; returns its name.
    fn bundle(&self) -> String {
        let r = self.w.env.run(&["bundle", "--json"]).ok().json();
        let name = r[0]["file"].as_str().expect("a bundle was written").to_string();
        assert_eq!(self.manifest(&name)["verified"], true, "the planted manifest says verified");
        name
    }

    fn manifest_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn manifest(&self, name: &str) -> serde_json::Value {
        serde_json::from_slice(&fs::read(self.manifest_path(name)).unwrap()).unwrap()
    }

    /// Rewrites one field of the manifest on the cloud, as whoever holds the bucket can.
    fn set(&self, name: &str, field: &str, value: serde_json::Value) {
        let mut m = self.manifest(name);
        m[field] = value;
        fs::write(self.manifest_path(name), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }

    /// `unbundle` into a fresh path; returns the run and that path.
    fn unbundle(&self, extra: &[&str]) -> (crate::helpers::Run, PathBuf) {
        let bare = self.w.env.path("unbundled.git");
        let mut args = vec!["unbundle", "--to", bare.to_str().unwrap()];
        args.extend_from_slice(extra);
        (self.w.env.run(&args), bare)
    }

    /// No plaintext bundle and no scratch dir is left in the state dir.
    fn assert_no_scratch_left(&self) {
        let tmp = self.w.env.state.join("tmp");
        let left: Vec<_> = walkdir::WalkDir::new(&tmp)
            .min_depth(1)
            .into_iter()
            .filter_map(Result::ok)
            .map(|e| e.path().to_path_buf())
            .collect();
        assert!(left.is_empty(), "left behind in the scratch root: {left:?}");
    }
}

/// Both streams, for messages that may go to either (a `run` step, a warning).
fn all(r: &crate::helpers::Run) -> String {
    format!("{}{}", r.stdout, r.stderr)
}

/// A planted bundle whose newest snapshot has `..`: `drill`, `unbundle` and a scheduled `run`
/// (whose drill restores it) each refuse naming the entry, and write nothing outside.
#[test]
fn a_planted_bundle_on_an_rclone_target_is_refused_naming_the_entry() {
    let Some(c) = cloud("a_planted_bundle_on_an_rclone_target_is_refused_naming_the_entry", "every = \"1d\"")
    else {
        return;
    };
    let w = &c.w;
    c.plant_dotdot_bundle();

    let r = w.env.run(&["drill"]);
    assert_ne!(r.code, 0, "drill accepted a hostile bundle\n{}", all(&r));
    assert!(
        r.stderr.contains("`..`") && r.stderr.contains("unsafe"),
        "drill does not name `..`:\n{}",
        r.stderr
    );
    w.assert_untouched();
    c.assert_no_scratch_left();

    let (r, bare) = c.unbundle(&[]);
    assert_ne!(r.code, 0, "unbundle accepted a hostile bundle\n{}", all(&r));
    assert!(r.stderr.contains("`..`"), "unbundle does not name `..`:\n{}", r.stderr);
    assert!(!bare.exists(), "a refused unbundle left a repository behind");
    w.assert_untouched();

    // `run` on the same day: no bundle is due (every = 1d), the drill is, and it takes the
    // planted bundle from the cloud.
    let r = w.env.run(&["run"]);
    assert_ne!(r.code, 0, "run accepted a hostile bundle\n{}", all(&r));
    let drilled = all(&r).lines().any(|l| l.contains("drill") && l.contains("unsafe") && l.contains("`..`"));
    assert!(drilled, "run's drill does not name `..`:\n{}", all(&r));
    w.assert_untouched();
    c.assert_no_scratch_left();
}

/// A manifest is a claim about the file listed next to it, never a path to follow: with
/// `file` an absolute path (new or existing), a path with `../`, or a name with `/`,
/// `unbundle`, `drill` and `run` neither create nor overwrite it, and say the manifest was
/// ignored.
#[test]
fn a_manifest_whose_file_is_a_path_is_ignored_and_never_followed() {
    for case in ["absolute-new", "absolute-existing", "dotdot", "slash"] {
        let Some(mut c) = cloud("a_manifest_whose_file_is_a_path_is_ignored_and_never_followed", "") else {
            return;
        };
        let name = c.bundle();
        let w = &c.w;
        let victim = w.env.path("victim.bundle");
        fs::write(&victim, "the user's own file\n").unwrap();
        // The scratch dir is STATE/tmp/PURPOSE-PID-RANDOM: three levels up is the env root.
        let file = match case {
            "absolute-new" => w.canary.join(&name).display().to_string(),
            "absolute-existing" => victim.display().to_string(),
            "dotdot" => format!("../../../canary/{name}"),
            _ => format!("sub/{name}"),
        };
        c.set(&name, "file", file.clone().into());

        let (r, bare) = c.unbundle(&[]);
        assert_ne!(r.code, 0, "{case}: unbundle trusted a manifest naming {file}\n{}", all(&r));
        assert!(
            r.stderr.contains(&format!("ignoring the manifest of {name}"))
                && r.stderr.contains("no verified bundle"),
            "{case}: unbundle does not say the manifest was ignored:\n{}",
            r.stderr
        );
        assert!(!bare.exists(), "{case}");
        let r = w.env.run(&["drill"]);
        assert_ne!(r.code, 0, "{case}: drill trusted a manifest naming {file}\n{}", all(&r));
        assert!(r.stderr.contains(&format!("ignoring the manifest of {name}")), "{case}:\n{}", r.stderr);
        // `run` (a day later) ignores it too: it writes a bundle of its own and drills that.
        c.w.env.now = Some("2026-01-02T00:00:00Z".into());
        let r = c.w.env.run(&["run"]);
        assert!(all(&r).contains(&format!("ignoring the manifest of {name}")), "{case}:\n{}", all(&r));

        let w = &c.w;
        w.assert_untouched();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "the user's own file\n", "{case}: overwritten");
        let sub = walkdir::WalkDir::new(&w.env.state)
            .into_iter()
            .filter_map(Result::ok)
            .any(|e| e.file_name() == "sub");
        assert!(!sub, "{case}: a `sub/` directory was created under the state dir");
        c.assert_no_scratch_left();
    }
}

/// A manifest whose sha256 is not its bundle's is not trusted: drill names the mismatch and
/// reads nothing of the bundle. The hostile case: the bucket's owner replaces a good bundle's
/// bytes with a hostile bundle and leaves the good manifest.
#[test]
fn a_manifest_whose_sha256_does_not_match_is_not_trusted() {
    let Some(mut c) = cloud("a_manifest_whose_sha256_does_not_match_is_not_trusted", "") else { return };
    let good = c.bundle();
    let original = fs::read(c.manifest_path(&good)).unwrap();
    // A wrong sha256 alone.
    c.set(&good, "sha256", "0".repeat(64).into());
    let r = c.w.env.run(&["drill"]);
    assert_ne!(r.code, 0, "drill trusted a manifest with the wrong sha256\n{}", all(&r));
    assert!(r.stderr.contains(&good) && r.stderr.contains("sha256"), "{}", r.stderr);
    let (r, bare) = c.unbundle(&[]);
    assert_ne!(r.code, 0, "unbundle trusted a manifest with the wrong sha256\n{}", all(&r));
    assert!(r.stderr.contains("sha256") && !bare.exists(), "{}", r.stderr);

    // The good manifest back, over a hostile bundle's bytes.
    fs::write(c.manifest_path(&good), original).unwrap();
    c.w.env.now = Some("2026-01-02T00:00:00Z".into());
    let hostile = c.plant_dotdot_bundle();
    fs::rename(c.dir.join(&hostile), c.dir.join(&good)).unwrap();
    fs::remove_file(c.manifest_path(&hostile)).unwrap();
    let r = c.w.env.run(&["drill"]);
    assert_ne!(r.code, 0, "drill trusted a bundle whose bytes were swapped\n{}", all(&r));
    assert!(
        r.stderr.contains("sha256") && r.stderr.contains("damaged") && !r.stderr.contains("`..`"),
        "the mismatch must stop the drill before the bundle is read:\n{}",
        r.stderr
    );
    c.w.assert_untouched();
    c.assert_no_scratch_left();
}

/// An encrypted rclone target: the planted bundle is refused after decryption as well, and no
/// decrypted bundle is left behind. (That decrypting never follows a symlink at its output is
/// a unit test in `bundle::create`: the scratch dir is fresh and 0700, so nothing outside the
/// process can plant one there.)
#[test]
fn a_planted_encrypted_bundle_is_refused_and_leaves_no_plaintext() {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let keys = format!("encrypt = {{ age_recipients = [\"{}\"] }}", id.to_public());
    let Some(c) = cloud("a_planted_encrypted_bundle_is_refused_and_leaves_no_plaintext", &keys) else {
        return;
    };
    let key = c.w.env.path("key.txt");
    fs::write(&key, format!("{}\n", id.to_string().expose_secret())).unwrap();
    let name = c.plant_dotdot_bundle();
    assert!(name.ends_with(".bundle.age"), "{name}");
    let r = c.w.env.run(&["drill", "--identity", key.to_str().unwrap()]);
    assert_ne!(r.code, 0, "drill accepted a hostile encrypted bundle\n{}", all(&r));
    assert!(r.stderr.contains("`..`"), "{}", r.stderr);
    let (r, bare) = c.unbundle(&["--identity", key.to_str().unwrap()]);
    assert_ne!(r.code, 0, "unbundle accepted a hostile encrypted bundle\n{}", all(&r));
    assert!(r.stderr.contains("`..`") && !bare.exists(), "{}", r.stderr);
    c.w.assert_untouched();
    c.assert_no_scratch_left();
}
