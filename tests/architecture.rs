//! The shape of the code, checked like behaviour: no import cycle between modules.
//!
//! A cycle means two files cannot be understood (or moved to another crate) one without the
//! other; the engine calling back into the command layer was one (issue 12). The check reads
//! every `crate::`/`super::` path in each source file, maps it to the module file it names and
//! looks for strongly connected components. A module may use its own parents' items (that is how
//! a folder of modules shares its types); every other edge counts, a parent using its children too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every crate of the workspace whose modules are checked: (name, its `src` folder).
fn crates() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    vec![
        ("opus-mirror".into(), root.join("src")),
        ("opus-mirror-core".into(), root.join("crates/opus-mirror-core/src")),
    ]
}

/// The module path of a source file: `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `lib.rs`
/// and `main.rs` are the crate root (`""`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without comments (doc comments name modules in prose).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths a piece of code refers to: `crate::a::b::c` and `use crate::{a, b::{c}}`
/// alike, `super::x` resolved against `module`. Not resolved to real modules yet.
fn references(module: &str, code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent(module))] {
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            for path in expand(rest) {
                let mut full = base.clone();
                full.extend(path);
                out.push(full);
            }
        }
    }
    out
}

/// `super` of a module: its parent's segments.
fn parent(module: &str) -> Vec<String> {
    let mut p: Vec<String> = module.split("::").filter(|s| !s.is_empty()).map(String::from).collect();
    p.pop();
    p
}

/// The paths at the start of `text`: `a::b::c` → [[a,b,c]]; `{a, b::{c, d}}` → [[a],[b,c],[b,d]].
fn expand(text: &str) -> Vec<Vec<String>> {
    let mut segs = Vec::new();
    let mut rest = text;
    loop {
        if let Some(inner) = rest.strip_prefix('{') {
            let close = matching_brace(inner);
            let mut out = Vec::new();
            for part in split_top(&inner[..close]) {
                for tail in expand(part.trim()) {
                    let mut p = segs.clone();
                    p.extend(tail);
                    out.push(p);
                }
            }
            return out;
        }
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        segs.push(rest[..end].to_string());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    vec![segs]
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The longest known module that a path starts with (`a::b::Thing` → `a::b`).
fn resolve(known: &BTreeSet<String>, path: &[String]) -> Option<String> {
    (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|m| known.contains(m))
}

/// True when `a` lies inside `b` (or is `b`): a child may use its parent's items (`super::`),
/// as a folder of modules shares its types; the parent using its children still counts.
fn within(a: &str, b: &str) -> bool {
    b.is_empty() || a == b || a.starts_with(&format!("{b}::"))
}

/// The module graph of one crate: module → the modules it refers to.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files: Vec<PathBuf> =
        walk(src).into_iter().filter(|f| f.extension().is_some_and(|e| e == "rs")).collect();
    let known: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    let mut g = BTreeMap::new();
    for f in &files {
        let m = module_of(src, f);
        let code = code_of(&std::fs::read_to_string(f).unwrap());
        // `mod x;` is an edge to the child: a parent that dispatches to its children and a
        // child that calls back into the parent's caller form a cycle too.
        let children = code.lines().filter_map(|l| {
            let l = l.trim().trim_start_matches("pub ").trim_start_matches("pub(crate) ");
            let name = l.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(m.split("::").filter(|s| !s.is_empty()).chain([name]).map(String::from).collect::<Vec<_>>())
        });
        let edges: BTreeSet<String> = references(&m, &code)
            .into_iter()
            .chain(children)
            .collect::<Vec<_>>()
            .iter()
            .filter_map(|p| resolve(&known, p))
            .filter(|t| !within(&m, t))
            .collect();
        g.insert(m, edges);
    }
    g
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Strongly connected components with more than one module (Tarjan's algorithm).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct St<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut St<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = St {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_module_imports_itself_through_others() {
    let mut found = Vec::new();
    for (name, src) in crates() {
        let g = graph(&src);
        for c in cycles(&g) {
            let edges: Vec<String> = c
                .iter()
                .flat_map(|a| g[a].iter().filter(|b| c.contains(b)).map(move |b| format!("{a} → {b}")))
                .collect();
            found.push(format!("{name}: {} modules: {}", c.len(), edges.join(", ")));
        }
    }
    assert!(
        found.is_empty(),
        "import cycles (break them by moving the shared item down a layer):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checker_sees_a_cycle_and_resolves_grouped_and_super_paths() {
    let refs = references(
        "snapshot::maintain",
        "use crate::{a::b, c::{d, e::F}};\nlet x = super::packread::read();",
    );
    assert_eq!(
        refs,
        vec![vec!["a", "b"], vec!["c", "d"], vec!["c", "e", "F"], vec!["snapshot", "packread", "read"],]
            .into_iter()
            .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    );
    let g: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
            .collect();
    assert_eq!(cycles(&g), vec![vec!["a".to_string(), "b".into(), "c".into()]]);
    assert!(within("snapshot::maintain", "snapshot") && !within("snapshot", "snapshot::maintain"));
    assert!(!within("snapshot::maintain", "snapshot::packread"));
}

/// The engine crate's dependency tree, as `cargo tree` prints it (normal dependencies only).
fn core_dependencies() -> String {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-p", "opus-mirror-core", "-e", "normal", "--prefix", "none"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The engine has no command line and no terminal in it: the compiler keeps it so, as long as
/// its dependency tree holds neither clap nor indicatif.
#[test]
fn the_engine_depends_on_no_command_line_or_terminal_crate() {
    let tree = core_dependencies();
    assert!(tree.lines().any(|l| l.starts_with("git2 ")), "not the engine's tree:\n{tree}");
    for banned in ["clap", "clap_complete", "clap_mangen", "indicatif", "tracing-subscriber"] {
        let found: Vec<&str> = tree.lines().filter(|l| l.split(' ').next() == Some(banned)).collect();
        assert!(found.is_empty(), "opus-mirror-core depends on {banned}: {found:?}");
    }
}

/// The engine's source names no module of the binary crate and never prints: what it has to
/// say is returned, reported through `progress::Report`, or logged with `tracing` (the binary
/// decides where logs go). Unit tests (after `#[cfg(test)]`) may print.
#[test]
fn the_engine_never_reaches_into_the_binary_crate_nor_prints() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/opus-mirror-core/src");
    let mut found = Vec::new();
    for f in walk(&src).into_iter().filter(|f| f.extension().is_some_and(|e| e == "rs")) {
        let text = std::fs::read_to_string(&f).unwrap();
        let code = code_of(text.split("#[cfg(test)]").next().unwrap_or(""));
        for bad in
            ["opus_mirror::", "clap::", "indicatif::", "println!", "print!", "io::stdout", "io::stderr"]
        {
            if code.contains(bad) {
                found.push(format!("{} uses {bad}", f.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:?}");
}
