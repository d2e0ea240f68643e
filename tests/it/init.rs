//! `init`: the starter config, the backup repos, and adding sources later.

use std::fs;

use crate::helpers::{git, Env};

#[test]
fn init_writes_a_starter_config_and_creates_backup_repos() {
    let env = Env::new();
    let a = env.path("work/opus");
    let b = env.path("other/opus");
    let c = env.path("My Life Lab");
    for d in [&a, &b, &c] {
        fs::create_dir_all(d).unwrap();
    }
    let r = env.run(&["init", "--source", a.to_str().unwrap(), "--source", b.to_str().unwrap()]).ok();
    assert!(r.stdout.contains("wrote "), "{}", r.stdout);
    let text = fs::read_to_string(&env.config).unwrap();
    assert!(text.contains("include_secrets = true"), "the starter config explains secrets:\n{text}");
    assert!(text.contains("name = \"opus\"") && text.contains("name = \"opus-2\""), "{text}");
    let data = env.home.join(".local/share/opus-mirror/repos");
    for name in ["opus", "opus-2"] {
        let repo = data.join(format!("{name}.git"));
        let head = git(&repo, &["symbolic-ref", "HEAD"]).ok();
        assert_eq!(head.stdout.trim(), "refs/heads/snapshot");
        let alternates = repo.join("objects/info/alternates");
        assert!(!alternates.exists(), "a backup repo must never borrow objects from the user's repo");
    }
    // Again, with one more source: the file is kept and the source appended.
    env.run(&["init", "--source", c.to_str().unwrap(), "--source", a.to_str().unwrap()]).ok();
    let after = fs::read_to_string(&env.config).unwrap();
    assert!(after.starts_with(&text), "existing config text must be kept as it was");
    assert!(after.contains("name = \"my-life-lab\""));
    assert_eq!(after.matches("\n[[source]]\n").count(), 3, "{after}");
    let j = env.run(&["config", "check", "--json"]).ok().json();
    assert_eq!(j["sources"].as_array().unwrap().len(), 3);
    env.run(&["snapshot"]).ok();
}

#[test]
fn init_refuses_a_missing_directory() {
    let env = Env::new();
    let r = env.run(&["init", "--source", env.path("nope").to_str().unwrap()]).code(2);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert!(!env.config.exists(), "no config is written when a source is wrong");
}
