//! The one way opus-mirror replaces a file: write a temp file beside it, fsync it, rename it
//! over the final name, fsync the directory. A crash at any point leaves either the old file
//! or the new one under the final name, never a torn one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` atomically and durably.
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, |f| f.write_all(bytes))
}

/// Writes a file atomically, letting `fill` stream its content into the temp file.
pub(crate) fn write_with(path: &Path, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let dir = parent_dir(path);
    fs::create_dir_all(dir)?;
    let mut tmp = temp_in(dir)?;
    fill(tmp.as_file_mut())?;
    tmp.as_file_mut().flush()?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// A temp file in `dir` named `.opus-mirror-tmp-PID-RANDOM`: the pid tells the next run
/// whether its writer is gone (see `heal`). Removed when dropped unless persisted.
pub(crate) fn temp_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new().prefix(&format!(".opus-mirror-tmp-{}-", std::process::id())).tempfile_in(dir)
}

/// fsyncs a directory so that a rename or create inside it survives a power cut.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("state.json");
        write_file(&p, b"one").expect("first write");
        write_file(&p, b"two").expect("second write");
        assert_eq!(fs::read(&p).expect("read back"), b"two");
        let names: Vec<_> =
            fs::read_dir(dir.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }
}
