//! Embeds `fixtures/demo-vault` into the binary, so `opus-mirror demo` works from
//! `cargo install` and from any copy of the binary, not only inside the build tree.
//! Files keep their bytes and executable bit, symlinks their target.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn walk(root: &Path, dir: &Path, out: &mut String) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read the demo vault").flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path.strip_prefix(root).expect("below the root").to_str().expect("UTF-8 fixture names");
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).expect("readlink");
            writeln!(out, "    DemoEntry::Link({rel:?}, {:?}),", target.to_str().expect("UTF-8 target"))
                .unwrap();
        } else if meta.is_dir() {
            writeln!(out, "    DemoEntry::Dir({rel:?}),").unwrap();
            walk(root, &path, out);
        } else {
            let exec = meta.permissions().mode() & 0o111 != 0;
            let abs = path.canonicalize().expect("canonical");
            writeln!(
                out,
                "    DemoEntry::File({rel:?}, include_bytes!({:?}), {exec}),",
                abs.to_str().expect("UTF-8 path")
            )
            .unwrap();
        }
    }
}

fn main() {
    let root =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("fixtures/demo-vault");
    println!("cargo:rerun-if-changed=fixtures/demo-vault");
    let mut out = String::from("/// The demo vault, embedded at build time (see build.rs).\npub static DEMO_VAULT: &[DemoEntry] = &[\n");
    walk(&root, &root, &mut out);
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets it")).join("demo_vault.rs");
    std::fs::write(dest, out).expect("write the embedded demo vault");
}
