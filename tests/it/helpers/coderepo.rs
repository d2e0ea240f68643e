//! A code repository with a bare `origin`, built with stock git and fixed identities and
//! dates, so commit ids are the same on every run.

use std::path::{Path, PathBuf};

use super::{git, Run};

pub struct CodeRepo {
    pub origin: PathBuf,
    pub work: PathBuf,
    root: PathBuf,
}

impl CodeRepo {
    /// `root/origin.git` (bare) and `root/work` with one pushed commit on `main`.
    pub fn new(root: &Path) -> CodeRepo {
        std::fs::create_dir_all(root).expect("root");
        let origin = root.join("origin.git");
        let work = root.join("work");
        git(root, &["init", "-q", "--bare", "-b", "main", origin.to_str().expect("utf-8")]).ok();
        git(root, &["init", "-q", "-b", "main", work.to_str().expect("utf-8")]).ok();
        let r = CodeRepo { origin, work, root: root.to_path_buf() };
        r.commit("README.md", "# opus\n", "initial");
        r.git(&["remote", "add", "origin", r.origin.to_str().expect("utf-8")]).ok();
        r.git(&["push", "-q", "-u", "origin", "main"]).ok();
        r
    }

    pub fn git(&self, args: &[&str]) -> Run {
        git(&self.work, args)
    }

    /// Writes a file and commits it; returns the commit id.
    pub fn commit(&self, file: &str, content: &str, msg: &str) -> String {
        let p = self.work.join(file);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
        self.git(&["add", file]).ok();
        self.git(&["commit", "-q", "-m", msg]).ok();
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).ok().stdout.trim().to_string()
    }

    /// A second clone of origin, as another machine would have, to push from.
    pub fn other_clone(&self) -> CodeRepo {
        let other = self.root.join("other");
        git(
            &self.root,
            &["clone", "-q", self.origin.to_str().expect("utf-8"), other.to_str().expect("utf-8")],
        )
        .ok();
        CodeRepo { origin: self.origin.clone(), work: other, root: self.root.clone() }
    }
}
