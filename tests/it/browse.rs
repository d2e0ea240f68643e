//! Browsing history: `ls`, `cat`, `log PATH`, `find` and `restore --include/--exclude`, on a
//! vault with five snapshots where one note is added, edited, chmodded, deleted and re-added,
//! another is added then lost, beside a binary attachment and a name that is not UTF-8.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::helpers::{treecmp, Env, Run};

/// The bytes of the binary attachment: every byte value, and a NUL-heavy tail.
fn attachment() -> Vec<u8> {
    let mut v: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    v.extend_from_slice(&[0u8; 4096]);
    v
}

const LATIN1: &[u8] = b"notes/caf\xe9.md";

/// The vault and the ids of its five snapshots, oldest first:
/// 1 a.md "one", keep.md, café (latin-1 name), img.bin · 2 a.md "two", lost.md added ·
/// 3 a.md chmod 600, lost.md deleted · 4 a.md deleted · 5 a.md re-added "three".
struct History {
    env: Env,
    vault: PathBuf,
    ids: Vec<String>,
}

impl History {
    fn new() -> History {
        let mut env = Env::new();
        let vault = env.path("vault");
        fs::create_dir_all(vault.join("notes")).unwrap();
        fs::create_dir_all(vault.join("attachments")).unwrap();
        env.write_config(&[("vault", &vault)]);
        let snap = |env: &mut Env, day: u32| {
            env.now = Some(format!("2026-01-0{day}T10:00:00Z"));
            env.run(&["snapshot"]).ok();
        };
        fs::write(vault.join("notes/a.md"), "one").unwrap();
        fs::write(vault.join("notes/keep.md"), "kept all along").unwrap();
        fs::write(vault.join(OsStr::from_bytes(LATIN1)), "a latin-1 name").unwrap();
        fs::write(vault.join("attachments/img.bin"), attachment()).unwrap();
        snap(&mut env, 1);
        fs::write(vault.join("notes/a.md"), "two").unwrap();
        fs::write(vault.join("notes/lost.md"), "the note I lost").unwrap();
        snap(&mut env, 2);
        fs::set_permissions(vault.join("notes/a.md"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::remove_file(vault.join("notes/lost.md")).unwrap();
        snap(&mut env, 3);
        fs::remove_file(vault.join("notes/a.md")).unwrap();
        snap(&mut env, 4);
        fs::write(vault.join("notes/a.md"), "three").unwrap();
        snap(&mut env, 5);
        let list = env.run(&["snapshots", "--json"]).ok().json();
        let mut ids: Vec<String> = list[0]["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["short"].as_str().unwrap().to_string())
            .collect();
        ids.reverse();
        assert_eq!(ids.len(), 5, "{list}");
        History { env, vault, ids }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.env.run(args)
    }

    /// `cat SPEC` with raw bytes (for the latin-1 name): the exact stdout bytes.
    fn cat(&self, spec: &[u8]) -> Vec<u8> {
        let o = self.env.command(&["cat"]).arg(OsStr::from_bytes(spec)).output().unwrap();
        assert!(o.status.success(), "cat failed: {}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    }
}

fn spec(id: &str, path: &[u8]) -> Vec<u8> {
    [id.as_bytes(), b":", path].concat()
}

#[test]
fn ls_lists_kind_bits_size_and_path() {
    let h = History::new();
    let j = h.run(&["ls", &h.ids[2], "notes", "--json"]).ok().json();
    assert_eq!(j["snapshot"].as_str().unwrap()[..12], h.ids[2]);
    assert_eq!(j["modes_recorded"], true);
    let entries: Vec<(String, String, String, u64)> = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["kind"].as_str().unwrap().to_string(),
                e["mode"].as_str().unwrap().to_string(),
                e["size"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            ("notes".into(), "dir".into(), "0755".into(), 0),
            ("notes/a.md".into(), "file".into(), "0600".into(), 3),
            ("notes/caf\\xe9.md".into(), "file".into(), "0644".into(), 14),
            ("notes/keep.md".into(), "file".into(), "0644".into(), 14),
        ]
    );
    // Human: one line per entry; the newest snapshot by default; one argument is a path.
    let r = h.run(&["ls", "attachments"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with(&format!("vault snapshot {} (2026-01-05T10:00:00Z), 2 entries", h.ids[4])));
    assert_eq!(lines[1], "dir        0755          -  attachments/");
    assert_eq!(lines[2], "file       0644      74096  attachments/img.bin");
    // One argument that is a snapshot id lists the whole snapshot; SNAPSHOT:PATH works too.
    let whole = h.run(&["ls", &h.ids[1], "--json"]).ok().json();
    let paths: Vec<&str> =
        whole["entries"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"notes/lost.md") && paths.contains(&"attachments/img.bin"), "{paths:?}");
    let one = h.run(&["ls", &format!("{}:notes/lost.md", h.ids[1]), "--json"]).ok().json();
    assert_eq!(one["entries"].as_array().unwrap().len(), 1);
    // A path the snapshot lacks: exit 2, pointing at find.
    let r = h.run(&["ls", "notes/lost.md"]).code(2);
    assert!(r.stderr.contains(&format!("`notes/lost.md` is not in snapshot {}", h.ids[4])), "{}", r.stderr);
    assert!(r.stderr.contains("opus-mirror find 'lost.md' --source vault"), "{}", r.stderr);
}

#[test]
fn cat_streams_the_bytes_of_that_snapshot() {
    let h = History::new();
    assert_eq!(h.cat(&spec(&h.ids[0], b"notes/a.md")), b"one");
    assert_eq!(h.cat(&spec(&h.ids[1], b"notes/a.md")), b"two");
    assert_eq!(h.cat(b"notes/a.md"), b"three", "a bare path is the newest snapshot");
    assert_eq!(h.cat(&spec("latest", b"notes/a.md")), b"three");
    assert_eq!(h.cat(&spec(&h.ids[1], b"notes/lost.md")), b"the note I lost");
    assert_eq!(h.cat(&spec(&h.ids[0], LATIN1)), b"a latin-1 name");
    assert_eq!(h.cat(&spec(&h.ids[3], b"attachments/img.bin")), attachment());
    // --json says what the file is, not its bytes.
    let j = h.run(&["cat", &format!("{}:notes/a.md", h.ids[1]), "--json"]).ok().json();
    assert_eq!((j["kind"].as_str(), j["size"].as_u64()), (Some("file"), Some(3)));
    // A folder, a missing path, no path: exit 2 saying what to do.
    let r = h.run(&["cat", "notes"]).code(2);
    assert!(
        r.stderr.contains("`notes` is a folder in snapshot") && r.stderr.contains("opus-mirror ls"),
        "{}",
        r.stderr
    );
    let r = h.run(&["cat", &format!("{}:notes/lost.md", h.ids[2])]).code(2);
    assert!(r.stderr.contains(&format!("`notes/lost.md` is not in snapshot {}", h.ids[2])), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    let r = h.run(&["cat", "latest:"]).code(2);
    assert!(r.stderr.contains("cat needs a file"), "{}", r.stderr);
}

#[test]
fn log_lists_exactly_the_changes_of_one_file() {
    let h = History::new();
    let j = h.run(&["log", "notes/a.md", "--json"]).ok().json();
    let got: Vec<(String, String, Option<u64>, Option<String>)> = j["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["short"].as_str().unwrap().to_string(),
                v["change"].as_str().unwrap().to_string(),
                v["size"].as_u64(),
                v["mode"].as_str().map(String::from),
            )
        })
        .collect();
    let id = |i: usize| h.ids[i].clone();
    assert_eq!(
        got,
        vec![
            (id(4), "added".into(), Some(5), Some("0644".into())),
            (id(3), "deleted".into(), None, None),
            (id(2), "mode".into(), Some(3), Some("0600".into())),
            (id(1), "modified".into(), Some(3), Some("0644".into())),
            (id(0), "added".into(), Some(3), Some("0644".into())),
        ]
    );
    // Human lines, newest first; unchanged snapshots are not listed.
    let r = h.run(&["log", "notes/lost.md"]).ok();
    assert_eq!(
        r.stdout,
        format!(
            "vault notes/lost.md: 2 change(s), newest first\n\
             {}  2026-01-03T10:00:00Z  deleted            -     -\n\
             {}  2026-01-02T10:00:00Z  added             15  0644\n",
            h.ids[2], h.ids[1]
        )
    );
    let r = h.run(&["log", "notes/keep.md", "--limit", "1", "--json"]).ok().json();
    assert_eq!(r["versions"].as_array().unwrap().len(), 1);
    // A path that never was: exit 2; `log` alone is still the run history.
    let r = h.run(&["log", "notes/never.md"]).code(2);
    assert!(r.stderr.contains("`notes/never.md` is in no snapshot of `vault`"), "{}", r.stderr);
    let runs = h.run(&["log", "--json"]).ok().json();
    assert!(runs.as_array().unwrap().iter().any(|e| e["step"] == "snapshot"), "{runs}");
}

#[test]
fn find_reports_first_last_and_when_a_lost_note_went() {
    let h = History::new();
    let j = h.run(&["find", "LOST", "--json"]).ok().json();
    let hits = j[0]["paths"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{j}");
    let lost = &hits[0];
    assert_eq!(lost["path"], "notes/lost.md");
    assert_eq!(lost["first"]["short"], h.ids[1].as_str());
    assert_eq!(lost["last"]["short"], h.ids[1].as_str());
    assert_eq!(lost["disappeared"]["short"], h.ids[2].as_str());
    assert_eq!(lost["disappeared"]["time"], "2026-01-03T10:00:00Z");
    let cmd = lost["restore"].as_str().unwrap();
    assert_eq!(
        cmd,
        format!("opus-mirror restore --source vault --snapshot {} --path notes/lost.md --in-place", h.ids[1])
    );
    // The command it prints brings the note back.
    let args: Vec<&str> = cmd.split(' ').skip(1).collect();
    h.run(&args).ok();
    assert_eq!(fs::read_to_string(h.vault.join("notes/lost.md")).unwrap(), "the note I lost");

    // A glob over every snapshot: a.md was deleted and came back, so it is still there.
    let j = h.run(&["find", "notes/*.md", "--json"]).ok().json();
    let by_path =
        |p: &str| j[0]["paths"].as_array().unwrap().iter().find(|x| x["path"] == p).cloned().unwrap();
    let a = by_path("notes/a.md");
    assert_eq!(
        (a["first"]["short"].as_str(), a["last"]["short"].as_str()),
        (Some(&*h.ids[0]), Some(&*h.ids[4]))
    );
    assert!(a["disappeared"].is_null() && a["restore"].is_null(), "{a}");
    assert_eq!(by_path("notes/caf\\xe9.md")["first"]["short"], h.ids[0].as_str());
    assert_eq!(j[0]["paths"].as_array().unwrap().len(), 4, "a.md, café, keep.md, lost.md: {j}");
    assert_eq!(j[0]["snapshots"], 5);

    // Human output names the snapshot it went in and the command.
    let r = h.run(&["find", "lost"]).ok();
    assert!(r.stdout.starts_with("vault: 1 path(s) matching \"lost\" in 5 snapshot(s)\n"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "  notes/lost.md  seen {0} (2026-01-02T10:00:00Z) → {0} (2026-01-02T10:00:00Z), gone in {1} (2026-01-03T10:00:00Z)",
            h.ids[1], h.ids[2]
        )),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("    bring it back: opus-mirror restore --source vault"), "{}", r.stdout);

    // --since leaves older snapshots out: lost.md was gone by then.
    let j = h.run(&["find", "*.md", "--since", "2026-01-03", "--json"]).ok().json();
    let paths: Vec<&str> =
        j[0]["paths"].as_array().unwrap().iter().map(|x| x["path"].as_str().unwrap()).collect();
    assert_eq!(paths, vec!["notes/a.md", "notes/caf\\xe9.md", "notes/keep.md"]);
    assert_eq!(j[0]["snapshots"], 3);
    let r = h.run(&["find", "a["]).code(2);
    assert!(r.stderr.contains("find pattern \"a[\" is not a valid glob"), "{}", r.stderr);
}

#[test]
fn restore_include_exclude_select_exactly_and_dry_run_writes_nothing() {
    let h = History::new();
    let out = h.env.path("out");
    let o = out.to_str().unwrap();
    h.run(&[
        "restore",
        "--snapshot",
        &h.ids[1],
        "--include",
        "*.md",
        "--exclude",
        "notes/keep.md",
        "--to",
        o,
    ])
    .ok();
    let m = treecmp::manifest(&out, &|_| false);
    let names: Vec<Vec<u8>> = m.keys().cloned().collect();
    assert_eq!(names, vec![b"notes/a.md".to_vec(), LATIN1.to_vec(), b"notes/lost.md".to_vec()]);
    assert_eq!(fs::read(out.join("notes/a.md")).unwrap(), b"two");

    // A folder include, a name exclude; in place too.
    fs::remove_dir_all(h.vault.join("attachments")).unwrap();
    fs::remove_file(h.vault.join("notes/keep.md")).unwrap();
    let j = h.run(&["restore", "--in-place", "--include", "attachments", "--json"]).ok().json();
    assert_eq!(j["paths"], serde_json::json!(["attachments/img.bin"]));
    assert!(!h.vault.join("notes/keep.md").exists());
    assert_eq!(fs::read(h.vault.join("attachments/img.bin")).unwrap(), attachment());

    // --dry-run with --to: the list, and nothing written (not even the directory).
    let dry = h.env.path("dry");
    let r = h
        .run(&[
            "restore",
            "--include",
            "notes/**",
            "--exclude",
            "*.md",
            "--to",
            dry.to_str().unwrap(),
            "--dry-run",
        ])
        .code(2);
    assert!(r.stderr.contains("--include/--exclude select nothing in snapshot"), "{}", r.stderr);
    let r = h.run(&["restore", "--include", "notes/*", "--to", dry.to_str().unwrap(), "--dry-run"]).ok();
    assert_eq!(
        r.stdout.lines().collect::<Vec<_>>(),
        vec![
            "  notes/a.md",
            "  notes/caf\\xe9.md",
            "  notes/keep.md",
            &format!(
                "would restore 3 item(s), 33 B from snapshot {} (2026-01-05T10:00:00Z) into {}; 0 already identical",
                h.ids[4],
                dry.display()
            ),
        ]
    );
    assert!(!dry.exists());

    // A bad glob: exit 2 naming the flag, before anything is done.
    let r = h.run(&["restore", "--exclude", "a[", "--to", dry.to_str().unwrap()]).code(2);
    assert!(r.stderr.contains("--exclude pattern \"a[\" is not a valid glob"), "{}", r.stderr);
    let r = h.run(&["restore", "--include", "{x", "--in-place"]).code(2);
    assert!(r.stderr.contains("--include pattern \"{x\""), "{}", r.stderr);
    assert!(!dry.exists());
}

#[test]
fn browsing_errors_say_what_to_do() {
    let env = Env::new();
    let (a, b) = (env.path("a"), env.path("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("n.md"), "n").unwrap();
    env.write_config(&[("a", &a), ("b", &b)]);
    for args in [&["ls"][..], &["cat", "n.md"], &["log", "n.md"]] {
        let r = env.run(args).code(2);
        assert!(r.stderr.contains("more than one source is configured"), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("--source NAME"), "{args:?}: {}", r.stderr);
    }
    let r = env.run(&["ls", "--source", "a"]).code(2);
    assert!(r.stderr.contains("fix: run `opus-mirror init` to create the backup repos"), "{}", r.stderr);
    env.run(&["init"]).ok();
    let r = env.run(&["ls", "--source", "a"]).code(2);
    assert!(r.stderr.contains("source `a` has no snapshots yet"), "{}", r.stderr);
    let r = env.run(&["log", "n.md", "--source", "a"]).code(2);
    assert!(r.stderr.contains("opus-mirror snapshot --source a"), "{}", r.stderr);
    let r = env.run(&["find", "n.md", "--since", "last week"]).code(2);
    assert!(r.stderr.contains("--since: `last week` is neither a time nor a span"), "{}", r.stderr);
    // find reads every source; one with no snapshots has no paths.
    env.run(&["snapshot", "--source", "a"]).ok();
    let j = env.run(&["find", "n.md", "--json"]).ok().json();
    assert_eq!(j[0]["paths"][0]["path"], "n.md");
    assert_eq!(j[1]["snapshots"], 0);
    let r = env.run(&["log", "../a/n.md", "--source", "a"]).code(2);
    assert!(r.stderr.contains("`../a/n.md` cannot be in a snapshot: the name `..`"), "{}", r.stderr);
}
