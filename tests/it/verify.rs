//! `verify` on real repositories with a real remote: every state, the exit codes, --offline,
//! --push, and the JSON pinned.

use std::fs;

use serde_json::Value;

use crate::helpers::coderepo::CodeRepo;
use crate::helpers::Env;

fn setup() -> (Env, CodeRepo) {
    let env = Env::new();
    let code = CodeRepo::new(&env.path("code"));
    env.write_config(&[("opus", &code.work)]);
    (env, code)
}

fn branch<'a>(j: &'a Value, name: &str) -> &'a Value {
    j[0]["branches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no branch {name} in {j:#}"))
}

#[test]
fn in_sync_is_safe() {
    let (env, _code) = setup();
    let j = env.run(&["verify", "--json"]).ok().json();
    assert_eq!(j[0]["safe"], true);
    assert_eq!(branch(&j, "main")["state"], "in-sync");
    assert_eq!(j[0]["remotes"][0]["source"], "live");
}

#[test]
fn ahead_lists_the_unpushed_commits() {
    let (env, code) = setup();
    code.commit("notes.md", "x", "unpushed work");
    let r = env.run(&["verify"]).code(4);
    assert!(r.stdout.contains("main → origin/main: ahead 1 (unpushed)"), "{}", r.stdout);
    assert!(r.stdout.contains("unpushed work"));
    let j = env.run(&["verify", "--json"]).code(4).json();
    assert_eq!(branch(&j, "main")["unpushed"][0]["subject"], "unpushed work");
}

#[test]
fn behind_is_safe_and_unknown_remote_commits_are_named() {
    let (env, code) = setup();
    let other = code.other_clone();
    other.commit("from-laptop.md", "y", "pushed elsewhere");
    other.git(&["push", "-q"]).ok();
    // Not fetched yet: the remote's tip is a commit we do not have.
    let r = env.run(&["verify"]).code(4);
    assert!(r.stdout.contains("the remote has commits you do not have"), "{}", r.stdout);
    code.git(&["fetch", "-q"]).ok();
    let j = env.run(&["verify", "--json"]).ok().json();
    assert_eq!(branch(&j, "main")["state"], "behind");
    assert_eq!(branch(&j, "main")["behind"], 1);
}

#[test]
fn diverged_never_pushed_upstream_gone_and_remote_only() {
    let (env, code) = setup();
    let other = code.other_clone();
    other.commit("a.md", "a", "theirs");
    other.git(&["push", "-q"]).ok();
    other.git(&["push", "-q", "origin", "HEAD:refs/heads/only-remote"]).ok();
    code.commit("b.md", "b", "ours");
    code.git(&["fetch", "-q"]).ok();
    code.git(&["checkout", "-q", "-b", "idea"]).ok();
    code.commit("idea.md", "i", "an idea");
    code.git(&["checkout", "-q", "-b", "gone"]).ok();
    code.git(&["push", "-q", "-u", "origin", "gone"]).ok();
    other.git(&["push", "-q", "origin", "--delete", "gone"]).ok();
    code.git(&["checkout", "-q", "main"]).ok();
    let j = env.run(&["verify", "--json"]).code(4).json();
    assert_eq!(branch(&j, "main")["state"], "diverged");
    assert_eq!(branch(&j, "idea")["state"], "no-upstream");
    assert_eq!(
        branch(&j, "idea")["unpushed"].as_array().unwrap().len(),
        2,
        "ours + an idea, not what origin has"
    );
    assert_eq!(branch(&j, "gone")["state"], "upstream-gone");
    assert_eq!(j[0]["remote_only"], serde_json::json!(["origin/only-remote"]));
}

#[test]
fn unpushed_tags_and_a_dirty_tree_are_at_risk() {
    let (env, code) = setup();
    code.git(&["tag", "v1"]).ok();
    fs::write(code.work.join("README.md"), "changed").unwrap();
    fs::write(code.work.join("staged.md"), "s").unwrap();
    code.git(&["add", "staged.md"]).ok();
    fs::write(code.work.join("untracked.md"), "u").unwrap();
    let j = env.run(&["verify", "--json"]).code(4).json();
    assert_eq!(j[0]["tags"][0]["name"], "v1");
    assert_eq!(j[0]["tags"][0]["state"], "unpushed");
    assert!(j[0]["tags"][0]["since"].as_str().is_some_and(|t| t.ends_with('Z')), "{}", j[0]["tags"]);
    let wt = &j[0]["worktree"];
    assert_eq!(
        (wt["modified"].as_u64(), wt["staged"].as_u64(), wt["untracked"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    code.git(&["stash", "-q", "-u"]).ok();
    code.git(&["push", "-q", "origin", "v1"]).ok();
    let j = env.run(&["verify", "--json"]).code(4).json();
    assert_eq!(j[0]["worktree"]["stashes"], 1);
    assert!(j[0]["reasons"][0].as_str().unwrap().contains("stash"));
}

#[test]
fn detached_head_and_a_merge_in_progress_are_reported() {
    let (env, code) = setup();
    code.git(&["checkout", "-q", "-b", "side"]).ok();
    code.commit("README.md", "side\n", "side change");
    code.git(&["checkout", "-q", "main"]).ok();
    code.commit("README.md", "main\n", "main change");
    let merge = code.git(&["merge", "side"]);
    assert_ne!(merge.code, 0, "the merge must conflict");
    let j = env.run(&["verify", "--json"]).code(4).json();
    assert_eq!(j[0]["worktree"]["in_progress"], "merge");
    code.git(&["merge", "--abort"]).ok();
    code.git(&["checkout", "-q", "--detach", "HEAD"]).ok();
    let j = env.run(&["verify", "--json"]).code(4).json();
    assert_eq!(j[0]["worktree"]["detached_head"], true);
}

#[test]
fn an_unreachable_remote_exits_5_and_offline_uses_tracking_refs() {
    let (env, code) = setup();
    fs::rename(&code.origin, env.path("moved.git")).unwrap();
    let r = env.run(&["verify"]).code(5);
    assert!(r.stdout.contains("UNREACHABLE"), "{}", r.stdout);
    let j = env.run(&["verify", "--offline", "--json"]).ok().json();
    assert_eq!(j[0]["remotes"][0]["source"], "offline");
    assert_eq!(branch(&j, "main")["state"], "in-sync");
}

#[test]
fn push_fast_forwards_only_branches_that_are_only_ahead() {
    let (env, code) = setup();
    code.git(&["checkout", "-q", "-b", "feature"]).ok();
    code.git(&["push", "-q", "-u", "origin", "feature"]).ok();
    let other = code.other_clone();
    other.git(&["checkout", "-q", "feature"]).ok();
    other.commit("f.md", "theirs", "their feature work");
    other.git(&["push", "-q"]).ok();
    code.commit("f2.md", "ours", "our feature work");
    code.git(&["fetch", "-q"]).ok();
    code.git(&["checkout", "-q", "main"]).ok();
    let ahead = code.commit("m.md", "m", "main work");
    let r = env.run(&["verify", "--push"]).code(4);
    assert!(r.stdout.contains("pushed main"), "{}", r.stdout);
    let on_origin = crate::helpers::git(&code.origin, &["rev-parse", "main"]).ok().stdout;
    assert_eq!(on_origin.trim(), ahead);
    let theirs = crate::helpers::git(&code.origin, &["log", "-1", "--format=%s", "feature"]).ok().stdout;
    assert_eq!(theirs.trim(), "their feature work", "a diverged branch is never forced");
}

#[test]
fn verify_json_is_pinned() {
    let (env, code) = setup();
    code.commit("notes.md", "x", "unpushed work");
    fs::write(code.work.join("scratch.md"), "u").unwrap();
    let r = env.run(&["verify", "--json"]).code(4);
    let tmp = regex_escape(&env.dir.path().display().to_string());
    insta::with_settings!({filters => vec![(tmp.as_str(), "[TMP]")]}, {
        insta::assert_snapshot!(r.stdout);
    });
}

/// Escapes a literal for an insta filter (a regex).
pub fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}
