//! A directory target, typically on a secondary drive. The classic failure is writing to the
//! internal disk because the drive is not plugged in: `init` writes a marker file with a
//! UUID, and a missing or different marker, or (with `require_mount`) a path that is not on
//! a mounted filesystem of its own, makes the target unavailable instead.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{Listed, Unavailable};
use crate::bundle::manifest::Manifest;

pub const MARKER: &str = ".opus-mirror-target";

/// Bigger than any marker or manifest we write: what the drive holds beyond it is not ours.
const MAX_JSON: u64 = 16 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    uuid: String,
    target: String,
    created: String,
}

fn random_uuid() -> String {
    let mut b = [0u8; 16];
    fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).expect("/dev/urandom is readable");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn recorded(state_dir: &Path, target: &str) -> PathBuf {
    state_dir.join("targets").join(format!("{target}.uuid"))
}

/// Marks `path` as target `name` (creating it), and records the UUID in the state dir.
/// Keeps an existing marker: re-running `init` must not orphan a drive's identity.
pub fn mark(name: &str, path: &Path, state_dir: &Path, now: chrono::DateTime<chrono::Utc>) -> Result<String> {
    fs::create_dir_all(path)
        .with_context(|| format!("cannot create the target directory {}", path.display()))?;
    let marker = path.join(MARKER);
    let uuid = match crate::safe_fs::read_regular(&marker, MAX_JSON)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<Marker>(&b).ok())
    {
        Some(m) => m.uuid,
        None => {
            let m = Marker { uuid: random_uuid(), target: name.into(), created: now.to_rfc3339() };
            crate::atomic::write_file(&marker, &serde_json::to_vec_pretty(&m)?)?;
            m.uuid
        }
    };
    crate::atomic::write_file(&recorded(state_dir, name), uuid.as_bytes())?;
    Ok(uuid)
}

/// Whether `path` lies on a filesystem mounted somewhere below `/` (not the root one).
pub fn on_own_mount(path: &Path) -> bool {
    let mut cur = Some(path);
    while let Some(p) = cur {
        let parent = p.parent();
        match (fs::metadata(p), parent.map(fs::metadata)) {
            (Ok(m), Some(Ok(pm))) if m.dev() != pm.dev() => return true,
            (_, None) => return false,
            _ => {}
        }
        cur = parent;
    }
    false
}

/// The drive guard.
pub fn check(name: &str, path: &Path, require_mount: bool, state_dir: &Path) -> Result<()> {
    let unavailable =
        |problem: String, fix: &str| Unavailable { target: name.into(), problem, fix: fix.into() };
    if require_mount && !on_own_mount(path) {
        return Err(unavailable(
            format!("{} is not on a mounted filesystem of its own (is the drive plugged in?)", path.display()),
            "plug in and mount the drive; or set require_mount = false if this path is meant to be on the internal disk",
        )
        .into());
    }
    let marker = path.join(MARKER);
    let read = crate::safe_fs::read_regular(&marker, MAX_JSON);
    if let Err(e) = &read {
        // There is something at the marker's path, but not a marker we could read: say so,
        // rather than send the user looking for an unplugged drive.
        return Err(unavailable(
            format!("the marker file {} cannot be used: {e}", marker.display()),
            "if this is the right drive, remove what is at that path and run `opus-mirror init` to mark it again",
        )
        .into());
    }
    let Some(m) = read.ok().flatten().and_then(|b| serde_json::from_slice::<Marker>(&b).ok()) else {
        return Err(unavailable(
            format!("no marker file {} (is the drive plugged in?)", marker.display()),
            "plug in the drive; if this is the right place, run `opus-mirror init` to mark it",
        )
        .into());
    };
    if let Ok(want) = fs::read_to_string(recorded(state_dir, name)) {
        if want.trim() != m.uuid {
            return Err(unavailable(
                format!("{} holds the marker of another target (uuid {})", path.display(), m.uuid),
                "mount the drive that was marked for this target, or run `opus-mirror init` to adopt this one",
            )
            .into());
        }
    }
    Ok(())
}

/// The bundles of `source` in the directory, with their manifests.
pub fn list(path: &Path, source: &str) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    for e in fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        if !super::is_bundle_of(&name, source) {
            continue;
        }
        let manifest = crate::safe_fs::read_regular(&path.join(format!("{name}.json")), MAX_JSON)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok());
        out.push(Listed { name, size: e.metadata()?.len(), manifest });
    }
    Ok(out)
}

/// Deletes a bundle, then its manifest: a crash in between leaves a manifest naming
/// nothing, which the next `bundle` step removes (see [`settle`]); never a bundle without a
/// manifest, which nothing could prove complete.
pub fn delete(path: &Path, name: &str) -> Result<()> {
    gone(fs::remove_file(path.join(name)))
        .with_context(|| format!("cannot delete {}", path.join(name).display()))?;
    let json = path.join(format!("{name}.json"));
    gone(fs::remove_file(&json)).with_context(|| format!("cannot delete {}", json.display()))?;
    crate::atomic::sync_dir(path)?;
    Ok(())
}

/// See [`super::settle`].
pub fn settle(path: &Path, source: &str) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let names: Vec<String> = fs::read_dir(path)
        .with_context(|| format!("cannot list {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .collect();
    for file in &names {
        if let Some(name) = file.strip_suffix(super::PENDING).filter(|n| super::is_bundle_of(n, source)) {
            let pending = path.join(file);
            let bundle = path.join(name);
            let verified = path.join(format!("{name}.json"));
            let m = crate::safe_fs::read_regular(&pending, MAX_JSON)
                .ok()
                .flatten()
                .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok());
            if verified.exists() {
                // Killed after the verified manifest was written: only the marker is left.
            } else if let Some(m) =
                m.filter(|m| super::manifest_matches(m, name, source) && intact(&bundle, m))
            {
                crate::atomic::write_file(
                    &verified,
                    &serde_json::to_vec_pretty(&Manifest { verified: true, ..m })?,
                )?;
                done.push(format!(
                    "{name}: pending bundle of an interrupted run read back intact; marked verified"
                ));
            } else {
                gone(fs::remove_file(&bundle))
                    .with_context(|| format!("cannot delete {}", bundle.display()))?;
                done.push(format!(
                    "{name}: pending bundle of an interrupted run is missing or incomplete; removed"
                ));
            }
            gone(fs::remove_file(&pending))
                .with_context(|| format!("cannot delete {}", pending.display()))?;
            crate::atomic::sync_dir(path)?;
        } else if let Some(name) = file.strip_suffix(".json").filter(|n| super::is_bundle_of(n, source)) {
            if !names.iter().any(|n| n == name) {
                gone(fs::remove_file(path.join(file)))?;
                done.push(format!(
                    "{name}: removed the manifest of a bundle an interrupted prune had removed"
                ));
            }
        }
    }
    Ok(done)
}

/// Whether `bundle` is the file its manifest describes (size, then sha256).
fn intact(bundle: &Path, m: &Manifest) -> bool {
    fs::symlink_metadata(bundle).is_ok_and(|md| md.is_file() && md.len() == m.size)
        && crate::hashio::sha256_file(bundle).is_ok_and(|s| s == m.sha256)
}

/// A removal that finds nothing to remove has nothing left to do.
fn gone(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
