//! The backup repo: one bare repository per source under `state_dir/repos/`, owned by
//! opus-mirror. It never uses alternates into the user's repo, so it survives the loss of
//! the original; the user's own repository is never opened for writing.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Context, Result};
use git2::{Oid, Repository, RepositoryInitOptions};

use crate::exit::UserError;

/// A source's bare backup repository.
pub struct BackupRepo {
    pub repo: Repository,
    pub path: PathBuf,
}

/// Makes libgit2 fsync what it writes (refs, packs, loose objects). Off by default in
/// libgit2; a backup tool needs a ref update to survive a power cut.
fn configure_libgit2() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: git_libgit2_opts with ENABLE_FSYNC_GITDIR takes one int argument; it is
        // called once, before any repository is opened by this process.
        unsafe {
            libgit2_sys::git_libgit2_opts(
                libgit2_sys::GIT_OPT_ENABLE_FSYNC_GITDIR as libc_int,
                1 as libc_int,
            );
        }
        // Cap the pack windows libgit2 maps (1 GiB each by default): a check of a large backup
        // repo otherwise shows the whole pack in its resident memory (770 MiB → 104 MiB).
        // SAFETY: plain option setters, called once before any repository is opened.
        unsafe {
            let _ = git2::opts::set_mwindow_size(128 * 1024 * 1024);
            let _ = git2::opts::set_mwindow_mapped_limit(256 * 1024 * 1024);
        }
    });
}

#[allow(non_camel_case_types)]
type libc_int = std::os::raw::c_int;

impl BackupRepo {
    /// Where the backup repo of source `name` lives.
    pub fn location(state_dir: &Path, name: &str) -> PathBuf {
        state_dir.join("repos").join(format!("{name}.git"))
    }

    /// Creates the backup repo if it does not exist yet, then opens it. Idempotent.
    pub fn create(path: &Path, branch: &str, source_path: &Path) -> Result<BackupRepo> {
        configure_libgit2();
        if path.join("HEAD").exists() {
            return Self::open(path);
        }
        let mut opts = RepositoryInitOptions::new();
        opts.bare(true).mkpath(true).no_reinit(true).initial_head(branch).description(&format!(
            "opus-mirror backup repo of {} (managed by opus-mirror; do not commit here)",
            source_path.display()
        ));
        let repo = Repository::init_opts(path, &opts)
            .with_context(|| format!("cannot create the backup repo {}", path.display()))?;
        {
            let mut cfg = repo.config()?;
            // Keep a reflog in the bare repo: one more way back to any snapshot tip.
            cfg.set_bool("core.logAllRefUpdates", true)?;
            // If the user ever runs `git gc` here, never prune unreachable objects.
            cfg.set_str("gc.pruneExpire", "never")?;
            cfg.set_str("gc.reflogExpire", "never")?;
            cfg.set_str("gc.reflogExpireUnreachable", "never")?;
        }
        Ok(BackupRepo { repo, path: path.to_path_buf() })
    }

    /// Opens an existing backup repo, with a clear next step when it is missing.
    pub fn open(path: &Path) -> Result<BackupRepo> {
        configure_libgit2();
        if !path.join("HEAD").exists() {
            return Err(UserError::usage(format!(
                "the backup repo {} does not exist\n  fix: run `opus-mirror init` to create the backup repos",
                path.display()
            ))
            .into());
        }
        let repo = Repository::open_bare(path)
            .with_context(|| format!("cannot open the backup repo {}", path.display()))?;
        Ok(BackupRepo { repo, path: path.to_path_buf() })
    }

    /// The directory new packs go to.
    pub fn pack_dir(&self) -> PathBuf {
        self.path.join("objects").join("pack")
    }

    /// The full ref name of a branch.
    pub(crate) fn branch_ref(branch: &str) -> String {
        format!("refs/heads/{branch}")
    }

    /// The current tip of `branch`, if it has one.
    pub fn tip(&self, branch: &str) -> Result<Option<Oid>> {
        match self.repo.find_reference(&Self::branch_ref(branch)) {
            Ok(r) => Ok(r.target()),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => {
                Err(e).with_context(|| format!("cannot read refs/heads/{branch} in {}", self.path.display()))
            }
        }
    }

    /// Moves `branch` from `expected` to `new`, failing if someone else moved it meanwhile.
    pub fn advance(&self, branch: &str, new: Oid, expected: Option<Oid>, log: &str) -> Result<()> {
        let name = Self::branch_ref(branch);
        // Objects were added as a new pack behind libgit2's back: let it see them.
        self.repo.odb()?.refresh()?;
        match expected {
            Some(old) => self.repo.reference_matching(&name, new, true, old, log),
            None => self.repo.reference(&name, new, false, log),
        }
        .with_context(|| format!("cannot move {name} in {} to {new}", self.path.display()))?;
        Ok(())
    }
}
