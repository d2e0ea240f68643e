//! Bad input ends in a clear error, never a panic (exit 101): spans too long for date
//! arithmetic, non-ASCII secrets being masked, and ids read back from manifests that are not
//! the 40 hex digits we wrote.

use crate::helpers::{vaultgen, Env, Run};

/// A vault source and a dir target `drive` (marked by `init`), with `target_extra` in the
/// target's table.
fn setup(target_extra: &str) -> Env {
    let env = Env::new();
    let vault = env.path("vault");
    vaultgen::create(&vault, &vaultgen::Spec { notes: 5, attachments: 0, ..Default::default() });
    env.write_config_text(&format!(
        "state_dir = {:?}\n[[source]]\nname = \"vault\"\npath = {:?}\n\n[[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {:?}\n{target_extra}",
        env.state.display().to_string(),
        vault.display().to_string(),
        env.path("drive").display().to_string()
    ));
    env
}

fn assert_no_panic(r: &Run) {
    assert_ne!(r.code, 101, "panicked:\n{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "panicked:\n{}", r.stderr);
}

#[test]
fn a_huge_status_max_age_is_a_usage_error() {
    let env = setup("");
    env.run(&["init"]).ok();
    env.run(&["snapshot"]).ok();
    let r = env.run(&["status", "--max-age", "99999999999999999d"]);
    assert_no_panic(&r);
    let r = r.code(2);
    assert!(r.stderr.contains("--max-age") && r.stderr.contains("too long"), "{}", r.stderr);
}

#[test]
fn a_huge_target_every_is_a_config_error_naming_the_key() {
    let env = setup("every = \"1000000y\"\n");
    for args in [&["config", "check"][..], &["bundle"], &["run"]] {
        let r = env.run(args);
        assert_no_panic(&r);
        let r = r.code(2);
        assert!(r.stderr.contains("target[1].every") && r.stderr.contains("too long"), "{}", r.stderr);
    }
}

#[test]
fn the_longest_span_still_works_end_to_end() {
    let env = setup("every = \"10000y\"\n");
    env.run(&["init"]).ok();
    env.run(&["snapshot"]).ok();
    env.run(&["bundle"]).ok();
    let r = env.run(&["bundle"]);
    assert_no_panic(&r);
    r.ok();
}

#[test]
fn a_non_ascii_dotenv_value_is_masked_by_characters() {
    let env = setup("");
    let dotenv = env.config.parent().expect("config dir").join(".env");
    std::fs::write(&dotenv, "MY_TOKEN=日本語のトークン\n").expect("write .env");
    let r = env.run(&["config", "check"]);
    assert_no_panic(&r);
    let r = r.ok();
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(said.contains("MY_TOKEN = 日本****"), "{said}");
    assert!(!said.contains("のトークン"), "the secret leaked: {said}");
}

#[test]
fn a_manifest_with_a_short_snapshot_id_is_an_error_not_a_panic() {
    let env = setup("");
    env.run(&["init"]).ok();
    env.run(&["snapshot"]).ok();
    env.run(&["bundle"]).ok();
    let manifest = std::fs::read_dir(env.path("drive"))
        .expect("drive")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().ends_with(".bundle.json"))
        .expect("a manifest");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).expect("read")).expect("json");
    for claimed in ["abcd", "éé"] {
        m["snapshot"] = claimed.into();
        std::fs::write(&manifest, serde_json::to_vec(&m).expect("json")).expect("write");
        let r = env.run(&["drill"]);
        assert_no_panic(&r);
        assert_ne!(r.code, 0, "a drill of a bundle whose manifest lies passed:\n{}", r.stdout);
    }
}
