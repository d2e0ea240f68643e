//! One opus-mirror at a time per state directory, by an OS file lock. The kernel drops the
//! lock when the process dies, so a crashed or killed run never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::exit::{Exit, HasExit};

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another opus-mirror run holds the lock {path} (waited {waited_s}s)\n  fix: wait for it to finish, or raise lock_wait; a killed run releases the lock by itself")]
    Busy { path: PathBuf, waited_s: u64 },
    #[error("cannot open the lock file {path}: {source}\n  fix: check that the state directory is writable")]
    Io { path: PathBuf, source: std::io::Error },
}

impl HasExit for LockError {
    fn exit(&self) -> Exit {
        match self {
            LockError::Busy { .. } => Exit::Busy,
            LockError::Io { .. } => Exit::Failed,
        }
    }
}

/// Held while a run changes anything in the state directory; released on drop or death.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock in `state_dir`, polling for up to `wait`.
    pub fn acquire(state_dir: &Path, wait: Duration) -> Result<RunLock, LockError> {
        let path = state_dir.join("lock");
        let io = |source| LockError::Io { path: path.clone(), source };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        let file =
            OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(io)?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(RunLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= wait {
                        return Err(LockError::Busy { path, waited_s: wait.as_secs() });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_busy_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), Duration::ZERO).expect("first lock");
        let second = RunLock::acquire(dir.path(), Duration::from_millis(100));
        assert!(matches!(second, Err(LockError::Busy { .. })));
        drop(first);
        RunLock::acquire(dir.path(), Duration::ZERO).expect("lock after release");
    }
}
