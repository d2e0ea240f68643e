//! `mirror` and `preserved`: every ref into the backup repo and onto a mirror remote, with
//! nothing ever lost to a force-push or a deleted branch; over file paths, `git daemon` and
//! sshd started here on loopback.

use std::fs;
use std::path::Path;

use crate::helpers::coderepo::CodeRepo;
use crate::helpers::servers::{GitDaemon, Sshd};
use crate::helpers::{assert_fsck, git, Env};
use crate::verify::regex_escape;

/// A code repo with `main` and `feature`, a bare mirror, and a config pointing at it.
fn setup(mirror_url: Option<&str>) -> (Env, CodeRepo, std::path::PathBuf) {
    let env = Env::new();
    let code = CodeRepo::new(&env.path("code"));
    code.git(&["checkout", "-q", "-b", "feature"]).ok();
    code.commit("feature.md", "f", "feature work");
    code.git(&["push", "-q", "-u", "origin", "feature"]).ok();
    code.git(&["checkout", "-q", "main"]).ok();
    code.commit("main.md", "m", "main work");
    code.git(&["push", "-q"]).ok();
    code.git(&["tag", "-a", "v1", "-m", "release v1"]).ok();
    let mirror = env.path("mirror.git");
    git(env.dir.path(), &["init", "-q", "--bare", mirror.to_str().unwrap()]).ok();
    let url = mirror_url.map(str::to_string).unwrap_or_else(|| mirror.display().to_string());
    write_config(&env, &code.work, &url, "");
    (env, code, mirror)
}

fn write_config(env: &Env, work: &Path, url: &str, network: &str) {
    env.write_config_text(&format!(
        "state_dir = {:?}\n{network}\n[[source]]\nname = \"opus\"\npath = {:?}\nmirror = {url:?}\n",
        env.state.display().to_string(),
        work.display().to_string()
    ));
}

fn refs(git_dir: &Path) -> String {
    git(
        Path::new("/"),
        &["--git-dir", git_dir.to_str().unwrap(), "for-each-ref", "--format=%(refname) %(objectname)"],
    )
    .ok()
    .stdout
}

#[test]
fn force_push_and_branch_deletion_never_lose_history() {
    let (env, code, mirror) = setup(None);
    env.run(&["snapshot"]).ok();
    env.run(&["mirror"]).ok();
    let old_main = code.head();
    let old_feature = code.git(&["rev-parse", "feature"]).ok().stdout.trim().to_string();
    assert!(refs(&mirror).contains(&format!("refs/heads/main {old_main}")));
    assert!(refs(&mirror).contains("refs/tags/v1") && refs(&mirror).contains("refs/heads/snapshot"));

    // Upstream main is rewritten and feature deleted, locally and on origin.
    code.git(&["reset", "-q", "--hard", "HEAD~1"]).ok();
    code.commit("main.md", "rewritten", "rewritten main");
    code.git(&["push", "-q", "-f", "origin", "main"]).ok();
    code.git(&["branch", "-q", "-D", "feature"]).ok();
    code.git(&["push", "-q", "origin", "--delete", "feature"]).ok();
    let r = env.run(&["mirror"]).ok();
    assert!(
        r.stdout.contains("forced refs/heads/main") && r.stdout.contains("deleted refs/heads/feature"),
        "{}",
        r.stdout
    );

    let all = git(Path::new("/"), &["--git-dir", mirror.to_str().unwrap(), "rev-list", "--all"]).ok().stdout;
    assert!(all.contains(&old_main), "old main tip lost on the mirror");
    assert!(all.contains(&old_feature), "deleted feature tip lost on the mirror");
    assert!(!refs(&mirror).contains("refs/heads/feature "), "the mirror follows the deletion");
    let p = env.run(&["preserved", "--json"]).ok().json();
    let was: Vec<_> = p[0]["preserved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["was"].as_str().unwrap().to_string(), x["commit"].as_str().unwrap().to_string()))
        .collect();
    assert!(was.contains(&("heads/main".into(), old_main.clone())), "{was:?}");
    assert!(was.contains(&("heads/feature".into(), old_feature.clone())), "{was:?}");
    let human = env.run(&["preserved"]).ok().stdout;
    assert!(
        human.contains("main work") && human.contains("feature work") && human.contains("to get one back"),
        "{human}"
    );
    assert_fsck(&mirror);
    assert_fsck(&env.backup_repo("opus"));
}

#[test]
fn tips_only_the_mirror_has_are_preserved_before_they_are_replaced() {
    let (env, code, mirror) = setup(None);
    env.run(&["mirror"]).ok();
    // Someone pushes straight to the mirror.
    let other = code.other_clone();
    other.commit("stray.md", "s", "pushed to the mirror directly");
    let stray = other.head();
    other.git(&["push", "-q", mirror.to_str().unwrap(), "HEAD:refs/heads/main", "-f"]).ok();
    let r = env.run(&["mirror"]).ok();
    assert!(r.stdout.contains("the mirror's old tip kept as refs/opus-mirror/preserved/"), "{}", r.stdout);
    let all = git(Path::new("/"), &["--git-dir", mirror.to_str().unwrap(), "rev-list", "--all"]).ok().stdout;
    assert!(all.contains(&stray));
    assert!(refs(&mirror).contains(&format!("refs/heads/main {}", code.head())));
}

#[test]
fn a_ref_the_mirror_refuses_is_named_and_fails_the_run() {
    // Served by git daemon: a local-path push writes the repo directly and runs no hooks.
    let (env, code, _) = setup(None);
    let served = env.path("served");
    fs::create_dir_all(&served).unwrap();
    let daemon = GitDaemon::start(&served);
    let mirror = served.join("mirror.git");
    git(&served, &["init", "-q", "--bare", "mirror.git"]).ok();
    write_config(&env, &code.work, &daemon.url("mirror.git"), "");
    let hook = mirror.join("hooks/pre-receive");
    fs::write(&hook, "#!/bin/sh\nwhile read old new ref; do [ \"$ref\" = refs/heads/main ] && { echo 'main is frozen' >&2; exit 1; }; done; exit 0\n").unwrap();
    fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let r = env.run(&["mirror"]).code(1);
    assert!(r.stderr.contains("rejected") && r.stderr.contains("refs/heads/"), "{}", r.stderr);
    assert!(!refs(&mirror).contains("refs/heads/main"), "nothing claimed that was not there");
}

#[test]
fn a_plain_folder_mirrors_its_snapshot_branch() {
    let env = Env::new();
    let vault = env.path("My Life Lab");
    fs::create_dir_all(&vault).unwrap();
    fs::write(vault.join("note.md"), "n").unwrap();
    let mirror = env.path("life.git");
    git(env.dir.path(), &["init", "-q", "--bare", mirror.to_str().unwrap()]).ok();
    write_config(&env, &vault, &mirror.display().to_string(), "");
    env.run(&["snapshot"]).ok();
    env.run(&["mirror"]).ok();
    let out = env.path("clone");
    git(env.dir.path(), &["clone", "-q", "-b", "snapshot", mirror.to_str().unwrap(), out.to_str().unwrap()])
        .ok();
    assert_eq!(fs::read_to_string(out.join("note.md")).unwrap(), "n");
}

#[test]
fn mirror_json_is_pinned() {
    let (env, _code, _mirror) = setup(None);
    let r = env.run(&["mirror", "--json"]).ok();
    let tmp = regex_escape(&env.dir.path().display().to_string());
    insta::with_settings!({filters => vec![(tmp.as_str(), "[TMP]")]}, {
        insta::assert_snapshot!(r.stdout);
    });
}

#[test]
fn mirror_and_verify_over_git_daemon() {
    let env = Env::new();
    let served = env.path("served");
    fs::create_dir_all(&served).unwrap();
    let daemon = GitDaemon::start(&served);
    let code = CodeRepo::new(&env.path("code"));
    git(&served, &["init", "-q", "--bare", "mirror.git"]).ok();
    git(&served, &["clone", "-q", "--bare", code.origin.to_str().unwrap(), "origin.git"]).ok();
    code.git(&["remote", "set-url", "origin", &daemon.url("origin.git")]).ok();
    write_config(&env, &code.work, &daemon.url("mirror.git"), "");
    let j = env.run(&["verify", "--json"]).ok().json();
    assert_eq!(j[0]["branches"][0]["state"], "in-sync");
    env.run(&["mirror"]).ok();
    assert!(refs(&served.join("mirror.git")).contains(&format!("refs/heads/main {}", code.head())));
}

/// An sshd with a user key, the config pointing at it, and the host in known_hosts.
fn ssh_setup(
    test: &str,
    known: bool,
    key_is_right: bool,
) -> Option<(Env, CodeRepo, std::path::PathBuf, Sshd)> {
    let env = Env::new();
    let sshd = Sshd::start(&env.path("sshd"), test)?;
    let (env, code, mirror) = {
        let code = CodeRepo::new(&env.path("code"));
        let mirror = env.path("mirror.git");
        git(env.dir.path(), &["init", "-q", "--bare", mirror.to_str().unwrap()]).ok();
        (env, code, mirror)
    };
    let ssh_dir = env.home.join(".ssh");
    fs::create_dir_all(&ssh_dir).unwrap();
    fs::write(ssh_dir.join("known_hosts"), if known { sshd.known_hosts_line.clone() } else { String::new() })
        .unwrap();
    let key = if key_is_right { &sshd.key } else { &sshd.wrong_key };
    write_config(
        &env,
        &code.work,
        &sshd.url(&mirror),
        &format!("[network]\nssh_key = {:?}\n", key.display().to_string()),
    );
    Some((env, code, mirror, sshd))
}

#[test]
fn mirror_over_ssh_with_a_known_host_and_key() {
    let Some((env, code, mirror, _sshd)) = ssh_setup("mirror_over_ssh_with_a_known_host_and_key", true, true)
    else {
        return;
    };
    env.run(&["mirror"]).ok();
    assert!(refs(&mirror).contains(&format!("refs/heads/main {}", code.head())));
}

#[test]
fn an_unknown_ssh_host_fails_closed_and_changes_nothing() {
    let Some((env, code, mirror, _sshd)) =
        ssh_setup("an_unknown_ssh_host_fails_closed_and_changes_nothing", false, true)
    else {
        return;
    };
    let before = (refs(&mirror), refs(&code.work.join(".git")));
    let r = env.run(&["mirror"]).code(5);
    pin_error("unknown_ssh_host", &env, &r.stderr);
    assert_eq!(before, (refs(&mirror), refs(&code.work.join(".git"))));
}

#[test]
fn a_wrong_ssh_key_is_a_clear_auth_error() {
    let Some((env, code, mirror, _sshd)) = ssh_setup("a_wrong_ssh_key_is_a_clear_auth_error", true, false)
    else {
        return;
    };
    let before = (refs(&mirror), refs(&code.work.join(".git")));
    let r = env.run(&["mirror"]).code(5);
    pin_error("wrong_ssh_key", &env, &r.stderr);
    assert_eq!(before, (refs(&mirror), refs(&code.work.join(".git"))));
}

#[test]
fn mirror_over_ssh_with_the_git_cli_transport() {
    let Some((env, code, mirror, sshd)) = ssh_setup("mirror_over_ssh_with_the_git_cli_transport", true, true)
    else {
        return;
    };
    let net = format!("[network]\ntransport = \"git-cli\"\nssh_key = {:?}\n", sshd.key.display().to_string());
    write_config(&env, &code.work, &sshd.url(&mirror), &net);
    env.run(&["mirror"]).ok();
    assert!(refs(&mirror).contains(&format!("refs/heads/main {}", code.head())));
    // Unknown host through the system ssh: fails closed too.
    fs::write(env.home.join(".ssh/known_hosts"), "").unwrap();
    code.commit("more.md", "m", "more");
    let before = refs(&mirror);
    let r = env.run(&["mirror"]).code(5);
    assert!(r.stderr.contains("host key"), "{}", r.stderr);
    assert_eq!(before, refs(&mirror));
}

#[test]
fn an_unreachable_host_exits_5() {
    let env = Env::new();
    let code = CodeRepo::new(&env.path("code"));
    let port = crate::helpers::servers::free_port();
    write_config(&env, &code.work, &format!("ssh://git@127.0.0.1:{port}/srv/m.git"), "");
    let r = env.run(&["mirror"]).code(5);
    pin_error("unreachable_host", &env, &r.stderr);
}

/// Pins a transport error message, with temp paths and ports redacted.
fn pin_error(name: &str, env: &Env, stderr: &str) {
    let tmp = regex_escape(&env.dir.path().display().to_string());
    insta::with_settings!({filters => vec![(tmp.as_str(), "[TMP]"), (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"), (r"ssh://\w+@", "ssh://[USER]@"), (r"-p \d+ ", "-p [PORT] ")]}, {
        insta::assert_snapshot!(name, stderr);
    });
}

#[test]
fn check_notices_a_ref_gone_from_the_mirror() {
    let (env, _code, mirror) = setup(None);
    env.run(&["mirror"]).ok();
    env.run(&["check"]).ok();
    git(Path::new("/"), &["--git-dir", mirror.to_str().unwrap(), "update-ref", "-d", "refs/heads/feature"])
        .ok();
    let r = env.run(&["check"]).code(1);
    assert!(r.stderr.contains("refs/heads/feature: gone from the mirror"), "{}", r.stderr);
}

#[test]
fn imported_delta_packs_are_merged_too() {
    let env = Env::new();
    let code = CodeRepo::new(&env.path("code"));
    env.write_config(&[("opus", &code.work)]);
    env.run(&["init"]).ok();
    let repo = env.backup_repo("opus");
    let mut text = String::new();
    for i in 0..24 {
        for j in 0..200 {
            text.push_str(&format!("line {j} of version {i}: some text that stays the same\n"));
        }
        code.commit("notes.md", &text, &format!("version {i}"));
        env.run(&["mirror"]).ok();
        if i == 5 {
            // Someone runs `git gc` in the backup repo: one pack full of deltas.
            git(&repo, &["gc", "-q", "--aggressive"]).ok();
            let idx = fs::read_dir(repo.join("objects/pack"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|x| x == "idx"))
                .unwrap();
            let v = git(&repo, &["verify-pack", "-v", idx.to_str().unwrap()]).ok().stdout;
            assert!(
                v.contains("chain length = 1"),
                "git gc made no deltas; the test would prove nothing:\n{v}"
            );
        }
    }
    let packs = fs::read_dir(repo.join("objects/pack"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "pack"))
        .count();
    assert!(
        packs <= opus_mirror_core::snapshot::maintain::MAX_PACKS,
        "{packs} packs: imports are not merged"
    );
    assert_fsck(&repo);
    let count = git(&repo, &["rev-list", "--count", "main"]).ok().stdout;
    assert_eq!(count.trim(), "25");
}

/// `mirror_refs = ["code", "preserved"]` keeps the vault off the mirror: the snapshot branch
/// (and a preserved tip of it) never goes there, and one already there is left alone; the
/// code still goes, and `check` judges only what was sent.
#[test]
fn mirror_refs_keep_the_vault_snapshot_off_the_mirror() {
    let (env, code, mirror) = setup(None);
    env.run(&["snapshot"]).ok();
    env.run(&["mirror"]).ok();
    assert!(refs(&mirror).contains("refs/heads/snapshot "), "{}", refs(&mirror));
    let old_snapshot = git(&mirror, &["rev-parse", "refs/heads/snapshot"]).ok().stdout;

    let cfg = fs::read_to_string(&env.config).unwrap();
    env.write_config_text(&cfg.replace("mirror = ", "mirror_refs = [\"code\", \"preserved\"]\nmirror = "));
    fs::write(code.work.join("untracked-secret-plan.md"), "plaintext").unwrap();
    env.run(&["snapshot"]).ok();
    code.commit("more.md", "m", "more work");
    env.run(&["mirror"]).ok();
    let after = refs(&mirror);
    assert_eq!(
        git(&mirror, &["rev-parse", "refs/heads/snapshot"]).ok().stdout,
        old_snapshot,
        "the snapshot branch moved on the mirror:\n{after}"
    );
    assert!(
        !after
            .lines()
            .any(|l| l.starts_with("refs/opus-mirror/preserved/") && l.contains("/heads/snapshot ")),
        "a preserved snapshot tip went to the mirror:\n{after}"
    );
    let main = git(&code.work, &["rev-parse", "main"]).ok().stdout;
    assert!(after.contains(&format!("refs/heads/main {}", main.trim())), "the code did not go:\n{after}");
    let r = env.run(&["check", "--json"]).ok().json();
    assert_eq!(r["ok"], true, "{r}");

    // A bad kind is a config error naming the key.
    env.write_config_text(&cfg.replace("mirror = ", "mirror_refs = [\"vault\"]\nmirror = "));
    let r = env.run(&["config", "check"]).code(2);
    assert!(r.stderr.contains("source[1].mirror_refs") && r.stderr.contains("`vault`"), "{}", r.stderr);
}

/// The day's push to a bare mirror on this machine writes the day's objects as one pack into
/// the mirror and moves its refs with compare-and-swap, without `git push` (whose receive-pack
/// re-indexed and re-walked the day: 3.7 s of a 3.9 s push on the large vault); stock git
/// still reads the mirror whole, and a tip only the mirror had is still preserved first.
#[test]
fn a_days_push_to_a_local_mirror_installs_one_pack_without_receive_pack() {
    let (mut env, code, mirror) = setup(None);
    env.run(&["snapshot"]).ok();
    env.run(&["mirror"]).ok();
    let packs = |m: &Path| {
        let mut v: Vec<String> = fs::read_dir(m.join("objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".pack"))
            .collect();
        v.sort();
        v
    };
    let before = packs(&mirror);

    // A day: the vault changes (a new nested folder too), the code gains a commit and a tag.
    fs::create_dir_all(code.work.join("vault/days/2026")).unwrap();
    fs::write(code.work.join("vault/days/2026/today.md"), "today").unwrap();
    code.commit("main.md", "the day's main", "a day of work");
    code.git(&["tag", "-a", "v2", "-m", "release v2"]).ok();
    env.run(&["snapshot"]).ok();
    // Someone else rewrites main on the mirror: that tip must be rescued before ours replaces it.
    let stray_repo = CodeRepo::new(&env.path("stray"));
    stray_repo.commit("stray.md", "s", "stray");
    let stray = stray_repo.head();
    stray_repo.git(&["push", "-q", "-f", mirror.to_str().unwrap(), "HEAD:refs/heads/main"]).ok();
    let before = {
        let mut b = before;
        b.extend(packs(&mirror).into_iter().filter(|p| !b.contains(p)).collect::<Vec<_>>());
        b
    };

    let trace = env.path("trace2.txt");
    env.vars.push(("GIT_TRACE2".into(), trace.display().to_string()));
    let r = env.run(&["mirror"]).ok();
    assert!(r.stdout.contains("the mirror's old tip kept as"), "{}", r.stdout);
    let t = fs::read_to_string(&trace).unwrap();
    assert!(t.contains("update-ref"), "no trace of the push's own git commands:\n{t}");
    assert!(!t.contains("receive-pack"), "the day's push still went through receive-pack:\n{t}");
    let new: Vec<String> = packs(&mirror).into_iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(new.len(), 1, "the day should be one new pack: {new:?}");
    // The .keep that held the pack against a concurrent repack until the refs reached it is gone.
    let keeps: Vec<_> = fs::read_dir(mirror.join("objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".keep"))
        .collect();
    assert!(keeps.is_empty(), "a .keep was left: {keeps:?}");
    // Readable by whoever could read git's own packs there (a git daemon's user, say).
    let mode =
        |p: &Path| std::os::unix::fs::PermissionsExt::mode(&fs::metadata(p).unwrap().permissions()) & 0o777;
    let gits = fs::read_dir(mirror.join("objects"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.file_name().unwrap().len() == 2)
        .flat_map(|d| fs::read_dir(d).unwrap().map(|e| e.unwrap().path()))
        .next()
        .expect("receive-pack wrote the first push's few objects loose");
    let ours = mirror.join("objects/pack").join(&new[0]);
    assert_eq!(mode(&ours), mode(&gits), "the day's pack has other permissions than git's objects");
    assert_eq!(mode(&ours.with_extension("idx")), mode(&gits));

    let backup = env.backup_repo("opus");
    let ours = refs(&backup);
    let theirs = refs(&mirror);
    for line in ours.lines().filter(|l| !l.starts_with("refs/opus-mirror/incoming/")) {
        assert!(theirs.contains(line), "the mirror lacks {line}:\n{theirs}");
    }
    assert!(theirs.contains("refs/tags/v2 "), "{theirs}");
    let all = git(Path::new("/"), &["--git-dir", mirror.to_str().unwrap(), "rev-list", "--all"]).ok().stdout;
    assert!(all.contains(&stray), "the stray tip was lost");
    assert_fsck(&mirror);
    let out = env.path("clone");
    git(env.dir.path(), &["clone", "-q", "-b", "snapshot", mirror.to_str().unwrap(), out.to_str().unwrap()])
        .ok();
    assert_eq!(fs::read_to_string(out.join("vault/days/2026/today.md")).unwrap(), "today");
}

/// A mirror whose `objects/pack` is a symlink is left to `git push`: we never write through a
/// symlink, wherever it points.
#[test]
fn a_mirror_with_a_symlinked_pack_dir_is_pushed_by_git() {
    let (mut env, code, mirror) = setup(None);
    env.run(&["snapshot"]).ok();
    env.run(&["mirror"]).ok();
    let elsewhere = env.path("elsewhere-packs");
    fs::rename(mirror.join("objects/pack"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, mirror.join("objects/pack")).unwrap();
    code.commit("main.md", "the day's main", "a day of work");
    env.run(&["snapshot"]).ok();
    let trace = env.path("trace2.txt");
    env.vars.push(("GIT_TRACE2".into(), trace.display().to_string()));
    env.run(&["mirror"]).ok();
    let t = fs::read_to_string(&trace).unwrap();
    assert!(t.contains("receive-pack"), "the push did not go through git:\n{t}");
    let backup = env.backup_repo("opus");
    for line in refs(&backup).lines().filter(|l| !l.starts_with("refs/opus-mirror/incoming/")) {
        assert!(refs(&mirror).contains(line), "the mirror lacks {line}");
    }
}

/// Our own day's push writes one pack per day into the mirror and skips receive-pack, so it
/// runs git's after-push upkeep itself (`receive.autogc`): the mirror's packs stay bounded.
/// Here gc may keep 3 packs and does not detach, so the upkeep is seen when the push returns.
#[test]
fn days_of_pushes_keep_the_mirrors_packs_bounded() {
    let (env, code, mirror) = setup(None);
    env.run(&["snapshot"]).ok();
    env.run(&["mirror"]).ok();
    let m = mirror.to_str().unwrap();
    for (k, v) in [("gc.autoPackLimit", "3"), ("gc.autoDetach", "false")] {
        git(Path::new("/"), &["--git-dir", m, "config", k, v]).ok();
    }
    let packs = || {
        fs::read_dir(mirror.join("objects/pack"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".pack"))
            .count()
    };
    let mut most = 0;
    for day in 0..5 {
        code.commit(&format!("day{day}.md"), "work", &format!("day {day}"));
        env.run(&["snapshot"]).ok();
        let trace = env.path(&format!("trace-{day}.txt"));
        let mut c = env.command(&["mirror"]);
        c.env("GIT_TRACE2", &trace);
        assert!(c.status().unwrap().success());
        assert!(
            !fs::read_to_string(&trace).unwrap().contains("receive-pack"),
            "day {day} went through git push"
        );
        most = most.max(packs());
    }
    assert!(most <= 4, "the mirror grew to {most} packs: its upkeep never ran");
    assert_fsck(&mirror);
}
