//! Where bundles go: a directory on a secondary drive (guarded against the drive being
//! unplugged), or an rclone remote. Both answer the same questions: is it there, what
//! bundles does it hold (with their manifests), store one, fetch one, delete one.

pub mod dir;
pub mod rclone;

use std::path::Path;

use anyhow::Result;

use crate::bundle::manifest::Manifest;
use crate::config::{Target, TargetKind};
use crate::exit::{Exit, HasExit};

/// The target cannot be used right now; the run skips it with exit code 6.
#[derive(Debug, thiserror::Error)]
#[error("target `{target}` is unavailable: {problem}\n  fix: {fix}")]
pub struct Unavailable {
    pub target: String,
    pub problem: String,
    pub fix: String,
}

impl HasExit for Unavailable {
    fn exit(&self) -> Exit {
        Exit::TargetUnavailable
    }
}

/// One bundle found on a target.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub size: u64,
    /// None: written but never verified (or a killed run's leftover).
    pub manifest: Option<Manifest>,
}

/// Checks that a target can be used now.
pub fn check(t: &Target, state_dir: &Path) -> Result<()> {
    match &t.kind {
        TargetKind::Dir { path, require_mount } => dir::check(&t.name, path, *require_mount, state_dir),
        TargetKind::Rclone { .. } => rclone::check(t),
    }
}

/// The bundles of `source` on the target, oldest first.
pub fn list(t: &Target, source: &str) -> Result<Vec<Listed>> {
    let mut v = match &t.kind {
        TargetKind::Dir { path, .. } => dir::list(path, source)?,
        TargetKind::Rclone { .. } => rclone::list(t, source)?,
    };
    for l in &mut v {
        if l.manifest.as_ref().is_some_and(|m| !manifest_matches(m, &l.name, source)) {
            tracing::warn!(
                "ignoring the manifest of {} on target `{}`: it names another file or source",
                l.name,
                t.name
            );
            l.manifest = None;
        }
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

/// The suffix of a manifest written before its bundle is in place (`NAME.pending.json`):
/// pending shows in a listing, so finding one costs no read, and no reader ever mistakes it
/// for the verified manifest `NAME.json`.
pub const PENDING: &str = ".pending.json";

/// Finishes what a killed `bundle` or `prune` left on the target: a pending manifest whose
/// bundle is complete becomes the verified manifest; one whose bundle is missing or damaged
/// is removed with it; a manifest whose bundle was pruned is removed. Returns what was done.
pub fn settle(t: &Target, source: &str, state_dir: &Path) -> Result<Vec<String>> {
    match &t.kind {
        TargetKind::Dir { path, .. } => dir::settle(path, source),
        TargetKind::Rclone { .. } => rclone::settle(t, source, &crate::heal::scratch_root(state_dir)),
    }
}

/// Whether a manifest belongs to the bundle it was listed with: its `file` is exactly that
/// name (a plain name, never a path) and its source is this source. Anything else is a
/// hostile or misplaced manifest and is ignored.
pub(crate) fn manifest_matches(m: &Manifest, name: &str, source: &str) -> bool {
    m.file == name && m.source == source
}

/// Copies bundle `name` from the target into `dest` (a local file path).
pub fn fetch(t: &Target, name: &str, dest: &Path) -> Result<()> {
    match &t.kind {
        TargetKind::Dir { path, .. } => {
            // Never through a symlink, never waiting on a FIFO planted on the drive.
            let mut from = crate::safe_fs::open_regular(&path.join(name))?;
            let mut to = std::fs::File::create(dest)?;
            std::io::copy(&mut from, &mut to)?;
            Ok(())
        }
        TargetKind::Rclone { .. } => rclone::fetch(t, name, dest),
    }
}

/// Deletes bundle `name` and its manifest.
pub fn delete(t: &Target, name: &str) -> Result<()> {
    match &t.kind {
        TargetKind::Dir { path, .. } => dir::delete(path, name),
        TargetKind::Rclone { .. } => rclone::delete(t, name),
    }
}

/// A run's word on the target that its newest verified bundle `bundle` held everything the
/// source had at `at` (the bundle step found nothing changed since, so it wrote no bundle).
/// `status --target` on another machine counts it as a backup as fresh as `at`: an untouched
/// vault is not stale. Read back like everything on a target: only when it names a verified
/// bundle the target holds and is not dated ahead of the clock.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Current {
    pub format: u32,
    pub source: String,
    pub bundle: String,
    /// RFC 3339, UTC.
    pub at: String,
}

/// The file name of [`Current`] on a target: never taken for a bundle or a manifest.
pub fn current_name(source: &str) -> String {
    format!("{source}.current.json")
}

/// Writes (replaces) the source's [`Current`] on the target.
pub fn write_current(t: &Target, state_dir: &Path, c: &Current) -> Result<()> {
    let name = current_name(&c.source);
    match &t.kind {
        TargetKind::Dir { path, .. } => {
            crate::atomic::write_file(&path.join(&name), &serde_json::to_vec_pretty(c)?)?;
            Ok(())
        }
        TargetKind::Rclone { .. } => rclone::upload_json(t, &name, c, &crate::heal::scratch_root(state_dir)),
    }
}

/// The source's [`Current`] on the target, if there is a readable one of this source (a
/// regular file: a symlink or FIFO planted there counts as none).
pub fn read_current(t: &Target, source: &str, state_dir: &Path) -> Option<Current> {
    const MAX: u64 = 64 << 10;
    let name = current_name(source);
    let bytes = match &t.kind {
        TargetKind::Dir { path, .. } => {
            crate::safe_fs::read_regular(&path.join(&name), MAX).ok().flatten()?
        }
        TargetKind::Rclone { .. } => {
            let scratch = crate::heal::scratch_dir(state_dir, "current").ok()?;
            let local = scratch.path().join("current.json");
            rclone::fetch(t, &name, &local).ok()?;
            crate::safe_fs::read_regular(&local, MAX).ok().flatten()?
        }
    };
    serde_json::from_slice::<Current>(&bytes).ok().filter(|c| c.format == 1 && c.source == source)
}

/// Whether a file name is a bundle of `source` (not another source sharing the target).
pub(crate) fn is_bundle_of(name: &str, source: &str) -> bool {
    name.strip_prefix(source).and_then(|r| r.strip_prefix('-')).is_some_and(|r| {
        r.len() >= 17
            && r.as_bytes()[0].is_ascii_digit()
            && (r.ends_with(".bundle") || r.ends_with(".bundle.age"))
    })
}
