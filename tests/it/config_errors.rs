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
fn bad_keep_secrets_pattern() {
    let env = env_with(
        "[[source]]\nname = \"v\"\npath = \"TMP/vault\"\nkeep_secrets = [\"*.key\", \"deploy/{a,b\"]\n",
    );
    insta::assert_snapshot!(usage_error(&env, &["config", "check"]));
}

#[test]
fn wrong_value_type() {
    let env = env_with("[[source]]\nname = \"v\"\npath = \"TMP/vault\"\nexclude = \"*.tmp\"\n");
    insta::assert_snapshot!(usage_error(&env, &["snapshot"]));
    // The key is named by its path, never by the value that was wrong (`key `42``).
    let env = env_with("[[source]]\nname = \"v\"\npath = \"TMP/vault\"\n\n[guard]\nmin_files = \"42\"\n");
    insta::assert_snapshot!("wrong_value_type_in_a_section", usage_error(&env, &["snapshot"]));
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
    let j = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["data"].clone();
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

#[test]
fn a_config_other_users_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let vault = env.path("vault");
    std::fs::create_dir_all(&vault).unwrap();
    env.write_config(&[("life", &vault)]);
    std::fs::set_permissions(&env.config, std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = env.run(&["config", "check"]).code(2);
    assert!(r.stderr.contains("writable by other users") && r.stderr.contains("chmod go-w"), "{}", r.stderr);
    std::fs::set_permissions(&env.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dir = env.config.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    env.run(&["config", "check"]).code(2);
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join(".env"), "OPUS_MIRROR_STATE_DIR=/tmp/x\n").unwrap();
    std::fs::set_permissions(dir.join(".env"), std::fs::Permissions::from_mode(0o662)).unwrap();
    let r = env.run(&["config", "check"]).code(2);
    assert!(r.stderr.contains(".env"), "{}", r.stderr);
    std::fs::set_permissions(dir.join(".env"), std::fs::Permissions::from_mode(0o600)).unwrap();
    env.run(&["config", "check"]).ok();
}

#[test]
fn keys_in_an_rclone_connection_string_never_leave_the_process() {
    let env = Env::new();
    let vault = env.path("vault");
    crate::helpers::vaultgen::create(
        &vault,
        &crate::helpers::vaultgen::Spec { notes: 3, attachments: 0, ..Default::default() },
    );
    let port = crate::helpers::servers::free_port();
    env.write_config_text(&format!(
        "state_dir = {:?}\n[network]\ntimeout = \"2s\"\n[[source]]\nname = \"life\"\npath = {:?}\n\n[[target]]\nname = \"cloud\"\nkind = \"rclone\"\nremote = \":s3,provider=Other,env_auth=false,access_key_id=AKIDLEAK1,secret_access_key=SECRETLEAK2,endpoint=http://127.0.0.1:{port}:bucket/life\"\n",
        env.state.display().to_string(),
        vault.display().to_string()
    ));
    env.run(&["init"]).ok();
    let mut said = String::new();
    for args in
        [&["run"][..], &["run", "--json"], &["status"], &["log"], &["recovery-doc"], &["config", "check"]]
    {
        let r = env.run(args);
        said.push_str(&r.stdout);
        said.push_str(&r.stderr);
    }
    for e in walkdir::WalkDir::new(&env.state).into_iter().flatten().filter(|e| e.file_type().is_file()) {
        said.push_str(&String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default()));
    }
    for secret in ["AKIDLEAK1", "SECRETLEAK2"] {
        assert!(
            !said.contains(secret),
            "{secret} leaked:\n{}",
            said.lines().filter(|l| l.contains(secret)).collect::<Vec<_>>().join("\n")
        );
    }
}
