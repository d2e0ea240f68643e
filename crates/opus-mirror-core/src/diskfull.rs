//! A full disk, told in words a user can act on: which filesystem is full (by the path we were
//! writing), how much is free now, that nothing already backed up was touched, and what to
//! free. Every write we make goes to a temp name first, so a full disk costs only the write
//! that failed; the next run removes its remains (see `heal`).

use std::path::Path;

/// Whether the error (or anything it wraps) is "no space left" or "quota exceeded".
pub(crate) fn is_disk_full(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(io.raw_os_error(), Some(28) | Some(122))
                || io.kind() == std::io::ErrorKind::StorageFull
                || io.kind() == std::io::ErrorKind::QuotaExceeded;
        }
        let text = c.to_string().to_lowercase();
        text.contains("no space left on device") || text.contains("disk quota exceeded")
    })
}

/// Free bytes on the filesystem holding `path` (or its nearest existing parent).
pub(crate) fn free_bytes(path: &Path) -> Option<u64> {
    let mut p = Some(path);
    while let Some(cur) = p {
        if let Ok(s) = rustix::fs::statvfs(cur) {
            return Some(s.f_bavail.saturating_mul(s.f_frsize));
        }
        p = cur.parent();
    }
    None
}

/// Adds the full-disk explanation to `err` when it is one; `place` is where we were writing
/// and `what` the step ("writing the snapshot", "writing a bundle").
pub fn explain(err: anyhow::Error, place: &Path, what: &str) -> anyhow::Error {
    if !is_disk_full(&err) {
        return err;
    }
    let free = free_bytes(place).map(crate::human::human_bytes).unwrap_or_else(|| "unknown".into());
    let quoted = crate::shell::quote(&place.display().to_string());
    // One message with the cause inline, so the kept/fix lines come last where they are read.
    anyhow::anyhow!(
        "the disk holding {} is full ({free} free) while {what}: {err:#}\n  kept: every snapshot and verified bundle written before this run is intact; the half-written file was a temp file and the next run removes it\n  fix: free space on that disk (`df -h {quoted}` shows it, `du -sh {quoted}/*` what uses it; `opus-mirror prune` removes bundles the keep policy no longer needs), then run again",
        place.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_anywhere_in_the_chain_is_a_full_disk() {
        let e = anyhow::Error::from(std::io::Error::from_raw_os_error(28)).context("cannot write x");
        assert!(is_disk_full(&e));
        let msg = format!("{:#}", explain(e, Path::new("/"), "writing the snapshot"));
        assert!(msg.starts_with("the disk holding / is full"), "{msg}");
        assert!(msg.contains("fix: free space"), "{msg}");
        let other = anyhow::anyhow!("permission denied");
        assert!(!is_disk_full(&other));
        assert_eq!(format!("{:#}", explain(other, Path::new("/"), "x")), "permission denied");
        assert!(msg.contains("cannot write x: "), "the cause is kept: {msg}");
        assert!(msg.lines().last().unwrap().trim_start().starts_with("fix:"), "{msg}");
    }
}
