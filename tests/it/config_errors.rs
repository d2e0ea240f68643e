//! Every user-facing error about bad input, pinned: which file, which line, which key, what
//! to do, and exit code 2. Changing one of these messages is changing the UI.

use std::fs;

use crate::helpers::Env;

/// Runs `args` expecting a usage error; returns stderr with temp paths redacted.
fn usage_error(env: &Env, args: &[&str]) -> String {
    let r = env.run(args).code(2);
    assert!(r.stdout.is_empty(), "errors go to stderr only, stdout was: {}", r.stdout);
    env.redact(&r.stderr)
}

fn env_with(text: &str) -> Env {
    let env = Env::new();
    fs::create_dir_all(env.path("vault")).unwrap();
    fs::write(env.path("a-file.md"), "x").unwrap();
    env.write_config_text(&text.replace("TMP", &env.dir.path().display().to_string()));
    env
}

#[test]
fn unknown_top_level_key() {
    let env = env_with("state_dir = \"TMP/state\"\ncolour = \"red\"\n");
    insta::assert_snapshot!(usage_error(&env, &["config", "check"]));
}

#[test]
fn unknown_source_key() {
    let env = env_with("[[source]]\nname = \"v\"\npath = \"TMP/vault\"\nexclud = [\"*.tmp\"]\n");
    insta::assert_snapshot!(usage_error(&env, &["snapshot"]));
}

#[test]
fn missing_source_name() {
    let env = env_with("[[source]]\npath = \"TMP/vault\"\n");
    insta::assert_snapshot!(usage_error(&env, &["snapshot"]));
}

#[test]
fn duplicate_source_names() {
    let env = env_with(
        "[[source]]\nname = \"v\"\npath = \"TMP/vault\"\n\n[[source]]\nname = \"v\"\npath = \"TMP/vault\"\n",
    );
    insta::assert_snapshot!(usage_error(&env, &["snapshot"]));
}

#[test]
fn source_path_missing() {
    let env = env_with("[[source]]\nname = \"v\"\npath = \"TMP/nowhere\"\n");
    insta::assert_snapshot!(usage_error(&env, &["snapshot"]));
}

#[test]
fn source_path_is_a_file() {
    let env = env_with("[[source]]\nname = \"v\"\npath = \"TMP/a-file.md\"\n");
    insta::assert_snapshot!(usage_error(&env, &["config", "check"]));
}

#[test]
fn bad_source_name() {
    let env = env_with("[[source]]\nname = \"my vault\"\npath = \"TMP/vault\"\n");
    insta::assert_snapshot!(usage_error(&env, &["snapshot"]));
}

#[test]
fn toml_syntax_error() {
    let env = env_with("[[source]\nname = \"v\"\n");
    insta::assert_snapshot!(usage_error(&env, &["snapshot"]));
}

#[test]
fn wrong_value_type() {
    let env = env_with("[[source]]\nname = \"v\"\npath = \"TMP/vault\"\nexclude = \"*.tmp\"\n");
    insta::assert_snapshot!(usage_error(&env, &["snapshot"]));
}

#[test]
fn missing_config_file() {
    let env = Env::new();
    insta::assert_snapshot!(usage_error(&env, &["snapshot"]));
}

#[test]
fn unknown_key_in_dotenv() {
    let env = env_with("[[source]]\nname = \"v\"\npath = \"TMP/vault\"\n");
    fs::write(env.config.with_file_name(".env"), "# comment\nRCLONE_TOKEN=abc\nOPUS_MIRROR_STATEDIR=/x\n")
        .unwrap();
    insta::assert_snapshot!(usage_error(&env, &["config", "check"]));
}

#[test]
fn unknown_source_on_the_command_line() {
    let env = env_with("[[source]]\nname = \"v\"\npath = \"TMP/vault\"\n");
    insta::assert_snapshot!(usage_error(&env, &["snapshot", "--source", "nope"]));
}

#[test]
fn restore_refuses_a_non_empty_directory() {
    let env = env_with("state_dir = \"TMP/state\"\n[[source]]\nname = \"v\"\npath = \"TMP/vault\"\n");
    fs::write(env.path("vault/n.md"), "n").unwrap();
    env.run(&["snapshot"]).ok();
    fs::create_dir_all(env.path("busy")).unwrap();
    fs::write(env.path("busy/mine.txt"), "keep me").unwrap();
    insta::assert_snapshot!(usage_error(&env, &["restore", "--to", env.path("busy").to_str().unwrap()]));
    assert_eq!(fs::read_to_string(env.path("busy/mine.txt")).unwrap(), "keep me");
    env.run(&["restore", "--force", "--to", env.path("busy").to_str().unwrap()]).ok();
    assert_eq!(fs::read_to_string(env.path("busy/n.md")).unwrap(), "n");
}

#[test]
fn unknown_snapshot_id_and_missing_path() {
    let env = env_with("state_dir = \"TMP/state\"\n[[source]]\nname = \"v\"\npath = \"TMP/vault\"\n");
    fs::write(env.path("vault/n.md"), "n").unwrap();
    env.run(&["snapshot"]).ok();
    let out = env.path("out");
    insta::assert_snapshot!(
        "unknown_snapshot_id",
        usage_error(&env, &["restore", "--snapshot", "deadbeef", "--to", out.to_str().unwrap()])
    );
    insta::with_settings!({filters => vec![(r"\b[0-9a-f]{12}\b", "[ID]")]}, {
        insta::assert_snapshot!("path_not_in_snapshot", usage_error(&env, &["restore", "--path", "nope.md", "--to", out.to_str().unwrap()]));
    });
}

#[test]
fn config_check_masks_secrets_and_names_origins() {
    let env = env_with("[[source]]\nname = \"v\"\npath = \"TMP/vault\"\n");
    fs::write(
        env.config.with_file_name(".env"),
        "RCLONE_TOKEN=supersecret\nOPUS_MIRROR_STATE_DIR=TMP/st\n"
            .replace("TMP", &env.dir.path().display().to_string()),
    )
    .unwrap();
    let r = env.run(&["config", "check"]).ok();
    assert!(!r.stdout.contains("supersecret"), "secret leaked: {}", r.stdout);
    assert!(r.stdout.contains("RCLONE_TOKEN = su****"));
    assert!(r.stdout.contains(".env line 2"), "{}", r.stdout);
    // The environment beats .env.
    let mut c = env.command(&["config", "check", "--json"]);
    c.env("OPUS_MIRROR_STATE_DIR", env.path("from-env"));
    let o = c.output().unwrap();
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["state_dir"], env.path("from-env").display().to_string());
    assert_eq!(j["origins"]["state_dir"], "environment OPUS_MIRROR_STATE_DIR");
}

#[test]
fn two_sources_sharing_one_mirror() {
    let env = env_with("[mirror]\nurl = \"/srv/m.git\"\n[[source]]\nname = \"a\"\npath = \"TMP/vault\"\n[[source]]\nname = \"b\"\npath = \"TMP/vault\"\n");
    insta::assert_snapshot!(usage_error(&env, &["mirror"]));
}

#[test]
fn unknown_transport() {
    let env = env_with(
        "[network]\ntransport = \"carrier-pigeon\"\n[[source]]\nname = \"v\"\npath = \"TMP/vault\"\n",
    );
    insta::assert_snapshot!(usage_error(&env, &["verify"]));
}

#[test]
fn missing_ssh_key_file() {
    let env = env_with(
        "[network]\nssh_key = \"TMP/no-such-key\"\n[[source]]\nname = \"v\"\npath = \"TMP/vault\"\n",
    );
    insta::assert_snapshot!(usage_error(&env, &["mirror"]));
}

#[test]
fn target_errors_name_line_and_key() {
    let cases = [
        ("kind = \"tape\"", "unknown_target_kind"),
        ("kind = \"dir\"", "dir_target_without_path"),
        ("kind = \"rclone\"\nremote = \"just-a-bucket\"", "rclone_remote_without_colon"),
        ("kind = \"dir\"\npath = \"TMP/d\"\nevery = \"daily\"", "bad_every_duration"),
        ("kind = \"dir\"\npath = \"TMP/d\"\nkeep = { dayly = 7 }", "unknown_keep_key"),
        (
            "kind = \"dir\"\npath = \"TMP/d\"\nencrypt = { age_recipients = [\"not-a-key\"] }",
            "bad_age_recipient",
        ),
    ];
    for (body, name) in cases {
        let env = env_with(&format!(
            "[[source]]\nname = \"v\"\npath = \"TMP/vault\"\n\n[[target]]\nname = \"t\"\n{body}\n"
        ));
        insta::assert_snapshot!(name, usage_error(&env, &["bundle"]));
    }
}
