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

/// The starter config is a complete, commented example: it loads as written, and with every
/// example line uncommented it still loads, so each shown key is real and correctly spelled.
#[test]
fn the_starter_config_shows_every_section_and_each_example_loads() {
    let env = Env::new();
    let vault = env.path("vault");
    fs::create_dir_all(&vault).unwrap();
    env.run(&["init", "--source", vault.to_str().unwrap()]).ok();
    let text = fs::read_to_string(&env.config).unwrap();
    for section in [
        "[mirror]",
        "[[target]]",
        "keep = ",
        "encrypt = ",
        "[notify]",
        "[guard]",
        "[status]",
        "[verify]",
        "[run]",
        "[network]",
    ] {
        assert!(text.contains(section), "the starter config lacks {section}:\n{text}");
    }
    env.run(&["config", "check"]).ok();
    let example = opus_mirror_core::config::uncomment_examples(&text);
    env.write_config_text(&example);
    let r = env.run(&["config", "check", "--json"]);
    assert_eq!(r.code, 0, "the uncommented examples do not load:\n{}\n---\n{example}", r.stderr);
    let j = r.json();
    assert_eq!(j["targets"].as_array().map(|t| t.len()), Some(2), "{j}");
    // `config check` shows every section of it, each setting with the line that set it (the
    // column the origins line up in depends on the temp dir's length: not pinned).
    let shown = env.redact(&env.run(&["config", "check"]).ok().stdout);
    insta::with_settings!({filters => vec![(r" {2,}# ", "  # ")]}, {
        insta::assert_snapshot!("config_check_of_every_example", shown);
    });
    let origins: Vec<String> =
        j["origins"].as_object().unwrap().values().map(|o| o.as_str().unwrap().to_string()).collect();
    for (i, line) in example.lines().enumerate() {
        let key = line.split(" = ").next().unwrap_or_default();
        if line.starts_with('#') || !line.contains(" = ") || key.contains(' ') {
            continue;
        }
        let at = format!("config.toml line {}", i + 1);
        assert!(
            origins.iter().any(|o| o.ends_with(&at)),
            "`{line}` ({at}) is the origin of no setting: {:#}",
            j["origins"]
        );
    }
}
