//! rclone targets against a real S3 API server (moto) on loopback.

use std::fs;
use std::process::Command;

use crate::helpers::servers::S3Server;
use crate::helpers::{git, vaultgen, Env};

fn setup(s3: &S3Server, with_drive: bool) -> Env {
    let mut env = Env::new();
    env.vars = s3.rclone_env();
    s3.mkbucket("backups");
    let vault = env.path("vault");
    vaultgen::create(&vault, &vaultgen::Spec { notes: 40, attachments: 3, ..Default::default() });
    let drive = if with_drive {
        format!(
            "\n[[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {:?}\n",
            env.path("drive").display().to_string()
        )
    } else {
        String::new()
    };
    env.write_config_text(&format!(
        "state_dir = {:?}\n[[source]]\nname = \"vault\"\npath = {:?}\n\n[[target]]\nname = \"cloud\"\nkind = \"rclone\"\nremote = \"s3:backups/opus\"\n{drive}",
        env.state.display().to_string(),
        vault.display().to_string()
    ));
    env.run(&["init"]).ok();
    env.run(&["snapshot"]).ok();
    env
}

#[test]
fn bundles_go_to_s3_verified_and_come_back() {
    let Some(s3) = S3Server::start("bundles_go_to_s3_verified_and_come_back") else { return };
    let env = setup(&s3, false);
    let r = env.run(&["bundle", "--json"]).ok().json();
    let name = r[0]["file"].as_str().unwrap().to_string();
    let listed = env.run(&["bundles", "--json"]).ok().json();
    assert_eq!(listed[0]["manifest"]["verified"], true);
    assert_eq!(listed[0]["manifest"]["file"], name.as_str());
    // Stock tools on the worst day: rclone copy, then git clone.
    let local = env.path(&name);
    let st = Command::new("rclone")
        .arg("copyto")
        .arg(format!("s3:backups/opus/{name}"))
        .arg(&local)
        .envs(s3.rclone_env())
        .env_remove("AWS_CA_BUNDLE")
        .status()
        .unwrap();
    assert!(st.success());
    let out = env.path("restored");
    git(env.dir.path(), &["clone", "-q", local.to_str().unwrap(), out.to_str().unwrap()]).ok();
    assert!(out.join(".obsidian/app.json").exists());
    // And our own chain restore from the cloud.
    let repo = env.path("from-cloud.git");
    env.run(&["unbundle", "--to", repo.to_str().unwrap()]).ok();
    crate::helpers::assert_fsck(&repo);
}

#[test]
fn a_dead_cloud_target_fails_and_names_the_command_but_the_drive_still_gets_its_bundle() {
    let Some(mut s3) = S3Server::start(
        "a_dead_cloud_target_fails_and_names_the_command_but_the_drive_still_gets_its_bundle",
    ) else {
        return;
    };
    let env = setup(&s3, true);
    s3.stop();
    let r = env.run(&["bundle"]).code(1);
    assert!(r.stderr.contains("`rclone lsjson --files-only s3:backups/opus` failed"), "{}", r.stderr);
    assert!(!r.stderr.contains("test-secret"), "a credential leaked: {}", r.stderr);
    assert!(r.stdout.contains("vault → drive: vault-"), "{}", r.stdout);
    assert_eq!(
        fs::read_dir(env.path("drive"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".bundle"))
            .count(),
        1
    );
}

#[test]
fn a_missing_rclone_makes_the_target_unavailable() {
    let Some(s3) = S3Server::start("a_missing_rclone_makes_the_target_unavailable") else { return };
    let env = setup(&s3, false);
    let mut c = env.command(&["bundle"]);
    c.env("PATH", "/nonexistent");
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(6));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot run `rclone version`") && err.contains("install rclone"), "{err}");
}

#[test]
fn check_reads_off_site_bundles_from_the_listing_or_fully() {
    let Some(s3) = S3Server::start("check_reads_off_site_bundles_from_the_listing_or_fully") else { return };
    let env = setup(&s3, false);
    env.run(&["bundle"]).ok();
    let j = env.run(&["check", "--json"]).ok().json();
    let area = bundles_area(&j);
    assert_eq!(area["checked"], 0, "by default off-site bundles are checked from the listing");
    let j = env.run(&["check", "--json", "--read-data-subset", "10%"]).ok().json();
    let area = bundles_area(&j);
    assert_eq!(area["checked"], 1, "10% of one bundle rounds up to one read");
    // Damage on the remote: replace the bundle with other bytes of the same size.
    let listed = env.run(&["bundles", "--json"]).ok().json();
    let name = listed[0]["name"].as_str().unwrap().to_string();
    let size = listed[0]["size"].as_u64().unwrap() as usize;
    let bad = env.path("bad");
    fs::write(&bad, vec![b'x'; size]).unwrap();
    let st = Command::new("rclone")
        .arg("copyto")
        .arg(&bad)
        .arg(format!("s3:backups/opus/{name}"))
        .envs(s3.rclone_env())
        .env_remove("AWS_CA_BUNDLE")
        .status()
        .unwrap();
    assert!(st.success());
    let r = env.run(&["check"]).code(1);
    assert!(r.stderr.contains(&name) && r.stderr.contains("md5"), "{}", r.stderr);
    let r = env.run(&["check", "--read-data"]).code(1);
    assert!(r.stderr.contains("sha256"), "{}", r.stderr);
}

/// The "bundles" part of `check --json`.
fn bundles_area(j: &serde_json::Value) -> serde_json::Value {
    j["areas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["area"].as_str().unwrap().starts_with("bundles"))
        .unwrap()
        .clone()
}

#[test]
fn every_off_site_bundle_is_fully_read_within_read_data_within() {
    let Some(s3) = S3Server::start("every_off_site_bundle_is_fully_read_within_read_data_within") else {
        return;
    };
    let mut env = setup(&s3, false);
    let vault = env.path("vault");
    for (i, day) in ["2026-10-01", "2026-10-21", "2026-11-10"].iter().enumerate() {
        fs::write(vault.join(format!("day{i}.md")), day).unwrap();
        env.now = Some(format!("{day}T03:30:00Z"));
        env.run(&["snapshot"]).ok();
        env.run(&["bundle"]).ok();
    }
    let checked = |env: &Env| {
        bundles_area(&env.run(&["check", "--json", "--read-data-subset", "1%"]).ok().json())["checked"]
            .as_u64()
            .unwrap()
    };
    // Day 0: 1 % of three bundles is one; none is overdue yet (the oldest is read first).
    env.now = Some("2026-11-10T04:00:00Z".into());
    assert_eq!(checked(&env), 1);
    // Forty days later nothing has been read for more than 30 days: all three are read.
    env.now = Some("2026-12-20T04:00:00Z".into());
    assert_eq!(checked(&env), 3);
    // Right after, only the rotating share again.
    assert_eq!(checked(&env), 1);
}

/// The part of the terminal's lines after `label` (a transfer's figures), one per redraw.
fn figures<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
    text.lines().filter_map(|l| l.split_once(label).map(|(_, rest)| rest.trim())).collect()
}

/// A bundle of several MB takes a while to write and longer to upload: on a terminal `run`
/// shows its bytes as they go, written to the drive (counted as they reach the file) and
/// uploaded to S3 (rclone's own stats, read from its stderr as they come), done of total.
/// Through a pipe none of it shows. Before, the spinner named the step and nothing else.
#[test]
fn a_run_on_a_terminal_shows_the_bytes_of_a_big_bundle_for_the_drive_and_the_upload() {
    const TEST: &str = "a_run_on_a_terminal_shows_the_bytes_of_a_big_bundle_for_the_drive_and_the_upload";
    let Some(s3) = S3Server::start(TEST) else { return };
    let mut env = setup(&s3, true);
    // Slow enough on loopback for rclone to report the upload under way (every 500 ms).
    env.vars.push(("RCLONE_BWLIMIT".into(), "4M".into()));
    let vault = env.path("vault");
    // 6 MiB that no compression shrinks.
    let mut rng = vaultgen::Rng::new(13);
    fs::write(vault.join("attachments/scan.pdf"), rng.bytes(6 << 20)).unwrap();
    let Some(tty) = crate::run::on_a_pty(&env, "run", TEST) else { return };

    let written = figures(&tty.text, "vault: writing bundle → drive");
    assert!(
        written.iter().any(|f| f.contains(" MiB")),
        "no byte figure while the bundle was written to the drive: {written:?}\n{}",
        tty.text
    );
    // The bar reads `DONE/TOTAL [===>  ]`, the total being the whole bundle (6 MiB and a
    // little), and shows the upload under way, not only its end.
    let uploaded: Vec<(&str, &str)> = figures(&tty.text, "vault: uploading bundle → cloud")
        .into_iter()
        .filter_map(|f| f.split(" [").next().and_then(|f| f.split_once('/')))
        .collect();
    assert!(
        uploaded.iter().any(|(_, total)| total.starts_with("6.") && total.ends_with(" MiB")),
        "no byte figure (done/total) while the bundle was uploaded: {uploaded:?}\n{}",
        tty.text
    );
    assert!(
        uploaded.iter().any(|(done, total)| done != total && *done != "0 B"),
        "the upload showed no figure while under way: {uploaded:?}\n{}",
        tty.text
    );
    let listed = env.run(&["bundles", "--json"]).ok().json();
    // The bundle whose upload was shown is on the bucket, whole and verified.
    let cloud: Vec<_> = listed.as_array().unwrap().iter().filter(|b| b["target"] == "cloud").collect();
    assert!(
        cloud.len() == 1
            && cloud[0]["manifest"]["verified"] == true
            && cloud[0]["size"].as_u64() > Some(6 << 20),
        "{listed}"
    );

    // Through a pipe: another big bundle, and no figures.
    fs::write(vault.join("attachments/scan 2.pdf"), rng.bytes(3 << 20)).unwrap();
    let piped = env.run(&["run"]).ok();
    assert!(piped.stdout.contains("→ cloud") && piped.stdout.contains("verified"), "{}", piped.stdout);
    for shown in [&piped.stdout, &piped.stderr] {
        assert!(
            !shown.contains("uploading bundle")
                && !shown.contains("writing bundle")
                && !shown.contains("iB/s"),
            "progress in a pipe:\n{shown}"
        );
    }
}

/// A run checks off-site targets every `check_every`, judged by the last check that did. A hand
/// `check --target drive` (the drive only) or a `check` that could not reach the cloud counted
/// as one: the run's plan then put the off-site check off for a week it was never done.
#[test]
fn only_a_check_that_read_the_off_site_target_counts_as_an_off_site_check() {
    let Some(mut s3) =
        S3Server::start("only_a_check_that_read_the_off_site_target_counts_as_an_off_site_check")
    else {
        return;
    };
    let env = setup(&s3, true);
    env.run(&["bundle"]).ok();
    let offsite_plan = |env: &Env| {
        let plan = env.run(&["run", "--dry-run", "--trigger", "timer"]).stdout;
        plan.lines().find(|l| l.contains(" check ")).unwrap_or_default().to_string()
    };
    env.run(&["check", "--target", "drive"]).ok();
    let p = offsite_plan(&env);
    assert!(p.contains("off-site targets too") && p.contains("never done"), "{p}");
    env.run(&["check"]).ok();
    let p = offsite_plan(&env);
    assert!(p.contains("off-site targets not due"), "{p}");

    // A check that could not reach the cloud did not check it.
    let fresh = setup(&s3, true);
    s3.stop();
    let r = fresh.run(&["check"]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    let p = offsite_plan(&fresh);
    assert!(p.contains("off-site targets too") && p.contains("never done"), "{p}");
}
