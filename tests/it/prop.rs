//! Property: any tree of files (random names including non-UTF-8 and unicode, random bytes,
//! permission bits, symlinks, empty directories) survives snapshot → restore exactly.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use proptest::prelude::*;

use crate::helpers::{treecmp, Env};

#[derive(Debug, Clone)]
enum Node {
    File { name: Vec<u8>, content: Vec<u8>, mode: u32 },
    Link { name: Vec<u8>, target: Vec<u8> },
    Dir { name: Vec<u8>, children: Vec<Node> },
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-zA-Z0-9 _.-]{1,12}".prop_map(|s| s.into_bytes()),
        "[a-z]{1,4}(é|ü|🌱|—)[a-z]{0,4}".prop_map(|s| s.into_bytes()),
        proptest::collection::vec(0x80u8..=0xfe, 1..4).prop_map(|mut v| {
            v.insert(0, b'x');
            v
        }),
    ]
    .prop_filter("not . or .. or .git or a secret", |n| {
        n != b"." && n != b".." && n != b".git" && !opus_mirror_core::snapshot::filter::is_secret(n)
    })
}

/// Bits a user's files have (readable by the owner: the comparison reads them back).
const FILE_MODES: &[u32] = &[0o644, 0o600, 0o640, 0o400, 0o444, 0o755, 0o700, 0o750, 0o711];

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        (name(), proptest::collection::vec(any::<u8>(), 0..300), proptest::sample::select(FILE_MODES))
            .prop_map(|(name, content, mode)| Node::File { name, content, mode }),
        (name(), "[a-z/.]{1,20}").prop_map(|(name, t)| Node::Link { name, target: t.into_bytes() }),
        name().prop_map(|name| Node::Dir { name, children: vec![] }),
    ];
    leaf.prop_recursive(3, 40, 6, |inner| {
        (name(), proptest::collection::vec(inner, 0..6))
            .prop_map(|(name, children)| Node::Dir { name, children })
    })
}

fn materialise(dir: &Path, nodes: &[Node]) {
    for n in nodes {
        match n {
            Node::File { name, content, mode } => {
                let p = dir.join(OsStr::from_bytes(name));
                if p.symlink_metadata().is_ok() {
                    continue; // duplicate name drawn: first wins
                }
                fs::write(&p, content).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
            }
            Node::Link { name, target } => {
                let p = dir.join(OsStr::from_bytes(name));
                if p.symlink_metadata().is_ok() {
                    continue;
                }
                std::os::unix::fs::symlink(OsStr::from_bytes(target), &p).unwrap();
            }
            Node::Dir { name, children } => {
                let p = dir.join(OsStr::from_bytes(name));
                if p.symlink_metadata().is_ok() && !p.is_dir() {
                    continue;
                }
                fs::create_dir_all(&p).unwrap();
                materialise(&p, children);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn random_trees_round_trip(nodes in proptest::collection::vec(node(), 1..8)) {
        let env = Env::new();
        let src = env.path("src");
        fs::create_dir_all(&src).unwrap();
        materialise(&src, &nodes);
        fs::write(src.join("anchor.md"), "so the tree is never empty").unwrap();
        env.write_config(&[("p", &src)]);
        env.run(&["snapshot"]).ok();
        let out = env.path("out");
        env.run(&["restore", "--to", out.to_str().unwrap()]).ok();
        treecmp::assert_same(&src, &out, &|n| n == b".git");
        let (want, got) = (treecmp::modes(&src, &|n| n == b".git"), treecmp::modes(&out, &|n| n == b".git"));
        prop_assert_eq!(want, got);
    }

    /// The permission record is read back from a commit message a hostile backup controls.
    #[test]
    fn mode_records_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Some(m) = opus_mirror_core::snapshot::modes::Modes::parse(&data) {
            prop_assert_eq!(m.of_file(b"x", false) & 0o6000, 0, "setuid/setgid never restored");
        }
    }

    #[test]
    fn any_path_survives_the_mode_record(path in proptest::collection::vec(any::<u8>(), 1..40)) {
        let q = opus_mirror_core::snapshot::modes::quote(&path);
        prop_assert!(!q.contains('\n') && !q.contains('\r'));
        prop_assert_eq!(opus_mirror_core::snapshot::modes::unquote(&q), Some(path));
    }
}

/// A manifest as a hostile target could write it: the right keys, any values.
fn manifest_json() -> impl Strategy<Value = serde_json::Value> {
    let text =
        || prop_oneof!["\\PC{0,50}", "[0-9a-f]{0,45}", "[+-]?[0-9]{4,6}-[01][0-9]-[0-3][0-9]T00:00:00Z"];
    (text(), text(), text(), text(), any::<u64>(), any::<bool>()).prop_map(
        |(file, created, snapshot, sha256, size, verified)| {
            serde_json::json!({
                "format": 1, "source": "vault", "file": file, "created": created, "kind": "full",
                "size": size, "sha256": sha256, "refs": {}, "head": null, "prerequisites": [],
                "base": null, "snapshot": snapshot, "objects": 0, "tool": "x", "verified": verified,
            })
        },
    )
}

proptest! {
    #[test]
    fn manifest_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = serde_json::from_slice::<opus_mirror_core::bundle::manifest::Manifest>(&data);
    }

    #[test]
    fn manifest_values_are_read_without_panic(v in manifest_json()) {
        let m: opus_mirror_core::bundle::manifest::Manifest =
            serde_json::from_value(v).expect("the keys are the manifest's");
        let _ = opus_mirror::output::short_id(m.snapshot.as_deref().unwrap_or(""));
        if let Some(t) = m.created_at() {
            let max = chrono::Duration::days(365 * opus_mirror_core::timeparse::MAX_SPAN_YEARS);
            prop_assert!(t.checked_sub_signed(max).is_some() && t.checked_add_signed(max).is_some());
        }
    }
}
