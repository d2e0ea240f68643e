//! `diff`: between snapshots and against the live directory.

use std::fs;

use crate::helpers::Env;

#[test]
fn diff_lists_added_modified_and_deleted() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("notes")).unwrap();
    fs::write(src.join("notes/a.md"), "a").unwrap();
    fs::write(src.join("notes/b.md"), "b").unwrap();
    fs::write(src.join("c.md"), "c").unwrap();
    env.write_config(&[("s", &src)]);
    env.run(&["snapshot"]).ok();
    fs::write(src.join("notes/a.md"), "a2").unwrap();
    fs::remove_file(src.join("notes/b.md")).unwrap();
    fs::create_dir_all(src.join("new/empty")).unwrap();
    fs::write(src.join("d.md"), "d").unwrap();

    let live = env.run(&["diff"]).ok();
    let lines: Vec<_> = live.stdout.lines().skip(1).collect();
    assert_eq!(
        lines,
        vec!["+ d.md", "+ new/empty/", "~ notes/a.md", "- notes/b.md", "2 added, 1 modified, 1 deleted"]
    );

    env.run(&["snapshot"]).ok();
    let list = env.run(&["snapshots", "--json"]).ok().json();
    let ids: Vec<String> = list[0]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let j = env.run(&["diff", "--json", &ids[1][..8], &ids[0][..8]]).ok().json();
    assert_eq!(j[0]["summary"], serde_json::json!({"added": 2, "modified": 1, "deleted": 1}));
    // Nothing changed since: an empty live diff.
    let r = env.run(&["diff"]).ok();
    assert!(r.stdout.ends_with("0 added, 0 modified, 0 deleted\n"), "{}", r.stdout);
}
