//! What a snapshot leaves out, and why: nested `.git` always; secret-looking files unless the
//! source opts in (all with `include_secrets`, some with `keep_secrets` patterns); the
//! source's own gitignore-style `exclude` patterns.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::config::Source;

/// Decides, for each path under a source, whether it belongs in the snapshot.
pub struct Filter {
    user: Gitignore,
    include_secrets: bool,
    /// `keep_secrets`: secret-looking files these match are captured anyway.
    keep: Gitignore,
    /// Our own directories inside the source (relative): never captured.
    own: Vec<Vec<u8>>,
    /// Our own files inside the source (the health note): never captured.
    own_files: Vec<Vec<u8>>,
}

/// Why an entry was left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Excluded {
    Git,
    Secret,
    Pattern,
    /// opus-mirror's own state dir or a dir target inside the source: capturing it would
    /// make every snapshot hold the last one and grow without end.
    Own,
}

impl Filter {
    /// Builds the filter of a source. Patterns were validated when the config was loaded.
    pub fn new(source: &Source) -> anyhow::Result<Filter> {
        let mut b = GitignoreBuilder::new(&source.path);
        for pat in &source.exclude {
            b.add_line(None, pat)
                .map_err(|e| anyhow::anyhow!("exclude pattern `{pat}` of source {}: {e}", source.name))?;
        }
        let keep = keep_matcher(&source.path, &source.keep_secrets)
            .map_err(|e| anyhow::anyhow!("keep_secrets of source {}: {e}", source.name))?;
        // The health note `run` keeps inside the source is our output, not the user's data.
        let own_files = source
            .health_note
            .iter()
            .map(|p| p.components().map(|c| c.as_os_str().as_encoded_bytes()).collect::<Vec<_>>().join(&b'/'))
            .collect();
        Ok(Filter {
            user: b.build()?,
            include_secrets: source.include_secrets,
            keep,
            own: Vec::new(),
            own_files,
        })
    }

    /// Whether a secret-looking file at `rel` is kept by a `keep_secrets` pattern (a pattern
    /// naming one of its directories keeps it too, as in .gitignore).
    fn kept(&self, rel: &[u8]) -> bool {
        !self.keep.is_empty()
            && self.keep.matched_path_or_any_parents(Path::new(OsStr::from_bytes(rel)), false).is_ignore()
    }

    /// Leaves out our own directories inside the source (see [`own_dirs`]).
    pub(crate) fn with_own(mut self, own: &[OwnDir]) -> Filter {
        self.own = own.iter().map(|o| o.rel.clone()).collect();
        self
    }

    /// Whether the entry at `rel` (relative to the source root) is left out.
    pub(crate) fn excluded(&self, rel: &[u8], name: &[u8], is_dir: bool) -> Option<Excluded> {
        if name == b".git" {
            return Some(Excluded::Git);
        }
        if is_dir && self.own.iter().any(|o| o == rel) {
            return Some(Excluded::Own);
        }
        if !is_dir && self.own_files.iter().any(|o| o == rel) {
            return Some(Excluded::Own);
        }
        if !is_dir && is_own_temp(name) {
            return Some(Excluded::Pattern);
        }
        // `looks_secret(rel)` with the name the walk already split off: this runs for every
        // file of every snapshot (finding the name again cost 4 % of a no-change run's CPU).
        if !is_dir && !self.include_secrets && (is_secret(name) || is_secret_path(rel)) && !self.kept(rel) {
            return Some(Excluded::Secret);
        }
        if !self.user.is_empty() && self.user.matched(Path::new(OsStr::from_bytes(rel)), is_dir).is_ignore() {
            return Some(Excluded::Pattern);
        }
        None
    }
}

pub use crate::config::keep_matcher;

/// One of our own directories found inside a source.
#[derive(Debug, Clone)]
pub struct OwnDir {
    /// What it is: "the state dir", "dir target `drive`".
    pub what: String,
    /// Its path relative to the source, `/`-separated.
    pub rel: Vec<u8>,
}

/// The state dir and the dir targets that lie inside `source` (compared after resolving
/// symlinks, so `~/vault/.state` and a link to it are the same place).
pub fn own_dirs(cfg: &crate::config::Config, source: &Source) -> Vec<OwnDir> {
    let Ok(root) = source.path.canonicalize() else { return Vec::new() };
    let mut places = vec![("the state dir".to_string(), cfg.state_dir.clone())];
    for t in &cfg.targets {
        if let crate::config::TargetKind::Dir { path, .. } = &t.kind {
            places.push((format!("dir target `{}`", t.name), path.clone()));
        }
    }
    let mut out = Vec::new();
    for (what, p) in places {
        // It may not exist yet: resolve its nearest existing ancestor.
        let resolved = resolve_lexically(&p);
        if let Ok(rel) = resolved.strip_prefix(&root) {
            if !rel.as_os_str().is_empty() {
                out.push(OwnDir { what, rel: rel.as_os_str().as_bytes().to_vec() });
            }
        }
    }
    out
}

/// `p` with its longest existing prefix canonicalized.
fn resolve_lexically(p: &Path) -> std::path::PathBuf {
    let mut rest = Vec::new();
    let mut cur = p.to_path_buf();
    loop {
        if let Ok(c) = cur.canonicalize() {
            return rest.iter().rev().fold(c, |acc: std::path::PathBuf, n: &std::ffi::OsString| acc.join(n));
        }
        match (cur.file_name().map(|n| n.to_os_string()), cur.parent()) {
            (Some(n), Some(parent)) => {
                rest.push(n);
                cur = parent.to_path_buf();
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// Temp files opus-mirror itself writes next to their final name (atomic writes, restores):
/// a killed run may leave one behind, and it is never the user's data.
pub(crate) fn is_own_temp(name: &[u8]) -> bool {
    name.starts_with(b".opus-mirror-tmp-") || name.starts_with(b".opus-mirror-restore-")
}

/// Whether the file at `rel` (relative to the source root) looks secret, by its name or by
/// where it lives (`.aws/credentials`): what snapshots leave out unless told otherwise.
pub(crate) fn looks_secret(rel: &[u8]) -> bool {
    let name = rel.rsplit(|&b| b == b'/').next().unwrap_or(rel);
    is_secret(name) || is_secret_path(rel)
}

/// Secret-looking file names (in any case: `.ENV` is `.env` on a case-insensitive disk), left
/// out unless `include_secrets` is set. Each snapshot names the ones it left out.
pub fn is_secret(name: &[u8]) -> bool {
    let n = name.to_ascii_lowercase();
    let n = n.as_slice();
    const EXACT: &[&[u8]] = &[
        b".env",
        b".netrc",
        b"_netrc",
        b".git-credentials",
        b".npmrc",
        b".pypirc",
        b".pgpass",
        b".vault-token",
        b"credentials",
        b".htpasswd",
        b"secring.gpg",
    ];
    const KEYS: &[&[u8]] = &[b"id_rsa", b"id_dsa", b"id_ecdsa", b"id_ed25519", b"id_xmss"];
    const SUFFIXES: &[&[u8]] = &[b".pem", b".p12", b".pfx", b".jks", b".keystore", b".ppk"];
    EXACT.contains(&n)
        || (n.starts_with(b".env.") && n != b".env.example" && n != b".env.sample")
        || KEYS.iter().any(|k| n.starts_with(k) && !n.ends_with(b".pub"))
        || SUFFIXES.iter().any(|s| n.ends_with(s))
        // Also a Keynote document's extension: the snapshot names every file left out, so a
        // user who sees one there keeps it with `include_secrets = true`.
        || n.ends_with(b".key")
}

/// Secret files known by where they live rather than by name alone.
pub(crate) fn is_secret_path(rel: &[u8]) -> bool {
    let r = rel.to_ascii_lowercase();
    [&b".docker/config.json"[..], b".kube/config", b".aws/credentials", b".config/gh/hosts.yml"]
        .iter()
        .any(|p| r == *p || (r.ends_with(p) && r[..r.len() - p.len()].ends_with(b"/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognised_in_any_case_and_by_place() {
        for n in [
            ".env",
            ".ENV",
            ".env.local",
            "id_ecdsa",
            "id_dsa",
            "ID_RSA",
            ".netrc",
            ".git-credentials",
            ".npmrc",
            ".pypirc",
            ".pgpass",
            "cert.P12",
            "a.pfx",
            ".vault-token",
            "server.pem",
            "x.key",
        ] {
            assert!(is_secret(n.as_bytes()), "{n}");
        }
        for n in [".env.example", "id_rsa.pub", "notes.md", "keys.md", "environment.md"] {
            assert!(!is_secret(n.as_bytes()), "{n}");
        }
        assert!(is_secret_path(b".docker/config.json") && is_secret_path(b"home/.kube/config"));
        assert!(is_secret_path(b".aws/credentials"));
        assert!(!is_secret_path(b"notes/config.json") && !is_secret_path(b"my.kube/config"));
    }

    fn source(exclude: &[&str], include_secrets: bool) -> Source {
        Source {
            name: "t".into(),
            path: "/v".into(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            include_secrets,
            keep_secrets: Vec::new(),
            snapshot_branch: "snapshot".into(),
            mirror: None,
            mirror_refs: Default::default(),
            recovery_doc: None,
            health_note: None,
        }
    }

    #[test]
    fn secrets_are_out_by_default_but_env_example_stays() {
        let f = Filter::new(&source(&[], false)).unwrap();
        for n in [".env", ".env.local", "server.pem", "tls.key", "id_rsa", "id_ed25519"] {
            assert_eq!(f.excluded(n.as_bytes(), n.as_bytes(), false), Some(Excluded::Secret), "{n}");
        }
        // A public key is not a secret: it stays in the backup.
        for n in [".env.example", "notes.md", "keyboard.md", "id_ed25519.pub"] {
            assert_eq!(f.excluded(n.as_bytes(), n.as_bytes(), false), None, "{n}");
        }
        let all = Filter::new(&source(&[], true)).unwrap();
        assert_eq!(all.excluded(b".env", b".env", false), None);
    }

    #[test]
    fn keep_secrets_keeps_what_it_matches_and_nothing_else() {
        let mut s = source(&[], false);
        s.keep_secrets = vec!["*.key".into(), "deploy/.env.staging".into(), "certs/".into()];
        let f = Filter::new(&s).unwrap();
        for rel in
            ["Keynote.key", "talks/Keynote.key", "deploy/.env.staging", "certs/server.pem", "a/certs/x.p12"]
        {
            let name = rel.rsplit('/').next().unwrap();
            assert_eq!(f.excluded(rel.as_bytes(), name.as_bytes(), false), None, "{rel} is kept");
        }
        // Patterns match case-sensitively, as in .gitignore: `*.key` does not keep `X.KEY`.
        let out = ["id_rsa", ".env", "deploy/.env", ".env.staging", "other/deploy/.env.staging", "X.KEY"];
        for rel in out {
            let name = rel.rsplit('/').next().unwrap();
            assert_eq!(f.excluded(rel.as_bytes(), name.as_bytes(), false), Some(Excluded::Secret), "{rel}");
        }
        // Keeping is about secrets only: it never brings back what `exclude` leaves out.
        let mut s = source(&["*.key"], false);
        s.keep_secrets = vec!["*.key".into()];
        let f = Filter::new(&s).unwrap();
        assert_eq!(f.excluded(b"Keynote.key", b"Keynote.key", false), Some(Excluded::Pattern));
        assert!(keep_matcher(Path::new("/v"), &["a[".into()]).unwrap_err().contains("`a[`"));
    }

    #[test]
    fn our_own_temp_files_are_never_captured() {
        let f = Filter::new(&source(&[], true)).unwrap();
        assert!(f.excluded(b"a/.opus-mirror-tmp-x1", b".opus-mirror-tmp-x1", false).is_some());
        assert!(f.excluded(b"a/.opus-mirror-restore-42", b".opus-mirror-restore-42", false).is_some());
        assert!(f.excluded(b"a/opus-mirror-notes.md", b"opus-mirror-notes.md", false).is_none());
    }

    #[test]
    fn nested_git_is_always_out() {
        let f = Filter::new(&source(&[], true)).unwrap();
        assert_eq!(f.excluded(b"sub/.git", b".git", true), Some(Excluded::Git));
        assert_eq!(f.excluded(b"sub/.git", b".git", false), Some(Excluded::Git));
    }

    #[test]
    fn patterns_follow_gitignore_rules() {
        let f = Filter::new(&source(&["node_modules/", "*.tmp", "/build"], false)).unwrap();
        assert_eq!(f.excluded(b"a/node_modules", b"node_modules", true), Some(Excluded::Pattern));
        assert_eq!(f.excluded(b"a/node_modules", b"node_modules", false), None);
        assert_eq!(f.excluded(b"x/y.tmp", b"y.tmp", false), Some(Excluded::Pattern));
        assert_eq!(f.excluded(b"build", b"build", true), Some(Excluded::Pattern));
        assert_eq!(f.excluded(b"src/build", b"build", true), None);
    }
}
