//! The `--json` contract (docs/json.md): every command, on success, on a partial failure and
//! on an error, prints exactly one envelope that deserializes into [`Envelope`] (unknown
//! fields refused), with `exit` equal to the process exit code and no failed item dropped.
//! The world: two sources (a plain folder and a git repository) and two targets (a dir
//! target and an rclone target on rclone's local backend).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;

use serde::Deserialize;
use serde_json::Value;

use crate::helpers::coderepo::CodeRepo;
use crate::helpers::{Env, Run};

mod data;
use data::{shape, Shape};

/// The envelope, as documented (the shapes of `data` are in [`data`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    schema: u32,
    ok: bool,
    exit: u8,
    outcome: String,
    command: String,
    data: Value,
    warnings: Vec<Problem>,
    errors: Vec<Problem>,
}

/// One error or warning.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Problem {
    message: String,
    #[serde(default)]
    fix: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    target: Option<String>,
}

/// Parses stdout as exactly one envelope (concatenated values fail) and checks what holds
/// for every command: the exit code, `ok`, the command's name.
fn envelope(r: &Run, command: &str) -> Envelope {
    let e: Envelope = serde_json::from_str(&r.stdout).unwrap_or_else(|err| {
        panic!("`{command} --json` is not one envelope ({err}):\n{}\n--- stderr\n{}", r.stdout, r.stderr)
    });
    assert_eq!(e.schema, 1);
    assert_eq!(i32::from(e.exit), r.code, "{command}: exit in the envelope\n{}", r.stdout);
    assert_eq!(e.ok, e.exit == 0, "{command}: ok");
    assert!(!e.outcome.is_empty());
    assert_eq!(e.command, command);
    // A failure always says why in errors; any other non-zero outcome at least in warnings.
    if [1, 2, 5, 6, 7].contains(&e.exit) {
        assert!(!e.errors.is_empty(), "{command}: exit {} without errors:\n{}", e.exit, r.stdout);
    } else if e.exit != 0 {
        assert!(!e.warnings.is_empty(), "{command}: exit {} without warnings:\n{}", e.exit, r.stdout);
    }
    for p in e.errors.iter().chain(&e.warnings) {
        assert!(!p.message.is_empty() && !p.message.contains("\n  fix:"), "{command}: {p:?}");
    }
    e
}

fn check_shape(command: &str, data: &Value, shape: Shape) {
    if let Err(e) = shape(data) {
        panic!("{command}: data is not as documented ({e}):\n{data:#}");
    }
}

struct World {
    env: Env,
    drive: PathBuf,
    restored: PathBuf,
    unbundled: PathBuf,
    _code: CodeRepo,
}

/// Two sources, `notes` (a folder) and `code` (a git repository with a pushed origin); two
/// targets, `drive` (dir) and `cloud` (rclone, local backend); an alert command.
fn world() -> World {
    let env = Env::new();
    let notes = env.path("notes");
    fs::create_dir_all(notes.join("plans")).unwrap();
    fs::write(notes.join("a.md"), "a\n").unwrap();
    fs::write(notes.join("plans/b.md"), "b\n").unwrap();
    let code = CodeRepo::new(&env.path("code"));
    let (drive, cloud) = (env.path("drive"), env.path("cloud"));
    fs::create_dir_all(&cloud).unwrap();
    env.write_config_text(&format!(
        "state_dir = {state:?}\n\
         [[source]]\nname = \"notes\"\npath = {notes:?}\n\n\
         [[source]]\nname = \"code\"\npath = {code:?}\n\n\
         [[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {drive:?}\n\n\
         [[target]]\nname = \"cloud\"\nkind = \"rclone\"\nremote = \":local:{cloud}\"\n\n\
         [notify.on_failure]\ncommand = [\"true\"]\n",
        state = env.state.display().to_string(),
        notes = notes.display().to_string(),
        code = code.work.display().to_string(),
        drive = drive.display().to_string(),
        cloud = cloud.display(),
    ));
    World { restored: env.path("restored"), unbundled: env.path("unbundled.git"), env, drive, _code: code }
}

/// Every command that takes `--json` (all of them: it is global), in an order that builds
/// the state the next needs, with its shape of `data` and its exit on a healthy world
/// (`None`: depends on the machine, e.g. whether a crontab exists).
fn commands(w: &World) -> Vec<(Vec<String>, &'static str, Shape, Option<i32>)> {
    let p = |p: &PathBuf| p.display().to_string();
    let messages: Shape = shape::<data::Messages>;
    let rows: Vec<(&[&str], &str, Shape, Option<i32>)> = vec![
        (&["init"], "init", messages, Some(0)),
        (&["config", "check"], "config check", shape::<data::ConfigCheck>, Some(0)),
        (&["snapshot"], "snapshot", shape::<Vec<data::SnapshotOutcome>>, Some(0)),
        (&["snapshots"], "snapshots", shape::<Vec<data::SourceHistory>>, Some(0)),
        (&["diff"], "diff", shape::<Vec<data::Diff>>, Some(0)),
        (&["verify", "--offline"], "verify", shape::<Vec<data::Verify>>, Some(0)),
        (&["mirror"], "mirror", shape::<Vec<data::Mirror>>, Some(0)),
        (&["preserved"], "preserved", shape::<Vec<data::Preserved>>, Some(0)),
        (&["bundle"], "bundle", shape::<Vec<data::Bundle>>, Some(0)),
        (&["bundles"], "bundles", shape::<Vec<data::Listed>>, Some(0)),
        (&["check"], "check", shape::<data::Check>, Some(0)),
        (&["drill"], "drill", shape::<Vec<data::Drill>>, Some(0)),
        (&["prune", "--dry-run"], "prune", shape::<Vec<data::Prune>>, Some(0)),
        (&["status"], "status", shape::<data::Status>, Some(0)),
        (&["status", "--target", "drive"], "status", shape::<data::Status>, Some(0)),
        (&["log"], "log", shape::<Vec<data::Event>>, Some(0)),
        (&["log", "--source", "notes", "a.md"], "log", shape::<data::PathLog>, Some(0)),
        (&["ls", "--source", "notes"], "ls", shape::<data::Ls>, Some(0)),
        (&["cat", "--source", "notes", "latest:a.md"], "cat", shape::<data::Cat>, Some(0)),
        (&["find", "b.md"], "find", shape::<Vec<data::Found>>, Some(0)),
        (&["guard", "status"], "guard status", shape::<data::GuardStatus>, Some(0)),
        (&["guard", "ack"], "guard ack", shape::<data::GuardAck>, Some(0)),
        (&["notify", "test"], "notify test", shape::<data::NotifyTest>, Some(0)),
        (&["run"], "run", shape::<data::Run>, Some(0)),
        (&["hook", "install"], "hook install", messages, Some(0)),
        (&["hook", "uninstall"], "hook uninstall", messages, Some(0)),
        (&["schedule", "status", "--cron"], "schedule status", messages, None),
        (&["recovery-doc"], "recovery-doc", shape::<data::Text>, Some(0)),
        (&["completions", "bash"], "completions", shape::<data::Text>, Some(0)),
        (&["man"], "man", shape::<data::Text>, Some(0)),
    ];
    let mut all: Vec<_> =
        rows.into_iter().map(|(a, c, s, x)| (a.iter().map(|a| a.to_string()).collect(), c, s, x)).collect();
    let to = |args: &[&str], path: &PathBuf| {
        let mut v: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        v.push(p(path));
        v
    };
    all.push((
        to(&["restore", "--source", "notes", "--to"], &w.restored),
        "restore",
        shape::<data::Restore>,
        Some(0),
    ));
    all.push((
        to(&["unbundle", "--source", "notes", "--target", "drive", "--to"], &w.unbundled),
        "unbundle",
        shape::<data::Unbundle>,
        Some(0),
    ));
    all
}

fn run_json(env: &Env, args: &[String]) -> Run {
    let mut v: Vec<&str> = args.iter().map(String::as_str).collect();
    v.push("--json");
    env.run(&v)
}

#[test]
fn every_command_prints_one_envelope_on_success() {
    let w = world();
    for (args, command, shape, want) in commands(&w) {
        let r = run_json(&w.env, &args);
        let e = envelope(&r, command);
        if let Some(want) = want {
            assert_eq!(r.code, want, "{args:?}\n{}\n--- stderr\n{}", r.stdout, r.stderr);
            assert!(e.errors.is_empty(), "{args:?}: {:?}", e.errors);
            check_shape(command, &e.data, shape);
        }
    }
    // Two sources: one value holding both (diff printed two concatenated objects).
    let diff = run_json(&w.env, &["diff".into()]);
    let data = envelope(&diff, "diff").data;
    let sources: Vec<&str> = data.as_array().unwrap().iter().map(|d| d["source"].as_str().unwrap()).collect();
    assert_eq!(sources, ["notes", "code"]);
    let bundles = envelope(&run_json(&w.env, &["bundles".into()]), "bundles").data;
    let mut pairs: Vec<String> =
        bundles.as_array().unwrap().iter().map(|b| format!("{}/{}", b["source"], b["target"])).collect();
    pairs.dedup();
    assert_eq!(pairs.len(), 4, "two sources on two targets: {pairs:?}");
}

#[test]
fn failed_items_are_in_errors_with_their_source_and_target() {
    let w = world();
    for step in ["init", "snapshot", "bundle"] {
        w.env.run(&[step]).ok();
    }
    // The drive is unplugged (no marker), and the backup repo of `notes` is damaged.
    fs::remove_file(w.drive.join(".opus-mirror-target")).unwrap();
    fs::write(w.env.path("notes/new.md"), "new\n").unwrap();
    fs::write(w.env.backup_repo("notes").join("HEAD"), "not a ref\n").unwrap();

    let r = run_json(&w.env, &["snapshot".into()]);
    let e = envelope(&r, "snapshot");
    assert_ne!(r.code, 0);
    assert!(e.errors.iter().any(|p| p.source.as_deref() == Some("notes")), "{:?}", e.errors);
    let kept: Vec<&str> = e.data.as_array().unwrap().iter().map(|o| o["source"].as_str().unwrap()).collect();
    assert_eq!(kept, ["code"], "the good source's outcome is kept");

    // Bundles are named by the second: the first `bundle` above may have been this second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = run_json(&w.env, &["bundle".into(), "--force".into()]);
    let e = envelope(&r, "bundle");
    assert_ne!(r.code, 0);
    assert!(
        e.errors.iter().any(|p| p.target.as_deref() == Some("drive") && p.fix.is_some()),
        "the unplugged drive is named, with its fix: {:?}",
        e.errors
    );
    assert!(e.errors.iter().any(|p| p.source.as_deref() == Some("notes")), "{:?}", e.errors);
    assert!(
        e.data.as_array().unwrap().iter().any(|o| o["file"].as_str().is_some_and(|f| f.starts_with("code"))),
        "code → cloud was written and reported: {}\nerrors: {:?}",
        e.data,
        e.errors
    );

    for (args, command) in [
        (vec!["bundles"], "bundles"),
        (vec!["prune", "--dry-run"], "prune"),
        (vec!["check"], "check"),
        (vec!["drill"], "drill"),
        (vec!["run"], "run"),
        (vec!["status", "--target", "drive"], "status"),
    ] {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let r = run_json(&w.env, &args);
        let e = envelope(&r, command);
        assert_ne!(r.code, 0, "{args:?}: {}", r.stdout);
        assert!(!e.errors.is_empty(), "{args:?}: the failure is not in errors:\n{}", r.stdout);
    }
    // Then every command in this world (after the checks above: `init` marks the drive again):
    // one envelope each, what worked as documented, and each failure says why.
    for (args, command, shape, _) in commands(&w) {
        let e = envelope(&run_json(&w.env, &args), command);
        if !e.data.is_null() {
            check_shape(command, &e.data, shape);
        }
    }
}

#[test]
fn errors_are_envelopes_too() {
    let w = world();
    // A config that does not load: every command that reads it fails with exit 2 and the
    // same message and fix the human error prints.
    fs::write(&w.env.config, "state_dir = [unclosed\n").unwrap();
    for (args, command, _, _) in commands(&w) {
        let r = run_json(&w.env, &args);
        let e = envelope(&r, command);
        if ["completions", "man"].contains(&command) {
            continue;
        }
        assert_eq!(r.code, 2, "{args:?}\n{}\n{}", r.stdout, r.stderr);
        assert!(e.data.is_null(), "{command}: {}", e.data);
        let first = &e.errors[0];
        assert!(r.stderr.contains(&first.message), "{command}: {first:?} vs {}", r.stderr);
        assert!(r.stderr.contains(first.fix.as_deref().expect("a fix")), "{command}: {first:?}");
    }
    // A command line clap refuses.
    let r = w.env.run(&["snapshot", "--no-such-flag", "--json"]);
    let e = envelope(&r, "snapshot");
    assert_eq!((r.code, e.data), (2, Value::Null));
    assert!(e.errors[0].message.contains("--no-such-flag"), "{:?}", e.errors);
}

/// `log --json | head -1`: the reader leaves after one line; the command ends quietly with
/// its own exit code, no "Broken pipe".
#[test]
fn a_reader_that_leaves_early_is_no_error() {
    let w = world();
    w.env.run(&["init"]).ok();
    for i in 0..40 {
        fs::write(w.env.path("notes/a.md"), format!("{i}\n")).unwrap();
        w.env.run(&["snapshot"]).ok();
    }
    for args in [&["log", "--json"][..], &["log"], &["snapshots", "--json"], &["find", "a.md", "--json"]] {
        let mut child = w.env.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        assert!(!first.is_empty());
        // The reader is dropped here: the pipe is closed with output still to come.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

/// `recover` and `demo` build their own world.
#[test]
fn recover_and_demo_print_one_envelope() {
    let w = world();
    for step in ["init", "snapshot", "bundle"] {
        w.env.run(&[step]).ok();
    }
    let fresh = Env::new();
    let to = fresh.path("notes");
    let r = fresh.run(&[
        "recover",
        "--from",
        w.drive.to_str().unwrap(),
        "--source",
        "notes",
        "--to",
        to.to_str().unwrap(),
        "--json",
    ]);
    let e = envelope(&r, "recover");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    check_shape("recover", &e.data, shape::<data::Messages>);
    assert_eq!(fs::read_to_string(to.join("a.md")).unwrap(), "a\n");

    let r = fresh.run(&["demo", "--keep", fresh.path("demo").to_str().unwrap(), "--json"]);
    let e = envelope(&r, "demo");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    check_shape("demo", &e.data, shape::<data::Messages>);
}
