//! The one way we write a restored tree: every path is walked from an open directory one
//! component at a time with `openat(O_NOFOLLOW | O_DIRECTORY)`, so neither the tree we read
//! back nor whatever is on disk now (a directory swapped for a symlink, before or during the
//! restore) can make us write outside the destination. Files are created under a temp name
//! with `O_EXCL | O_NOFOLLOW` and renamed over the final name, which replaces a symlink there
//! rather than writing through it.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// A path could not be written safely.
#[derive(Debug, thiserror::Error)]
pub enum SafeError {
    /// A directory on the way is a symlink or not a directory: we never go through it.
    #[error("{at} is a symlink or not a directory (nothing is written through it)")]
    NotADirectory { at: String },
    /// A name we would never write (`..`, `.`, empty, with `/`): the tree is hostile.
    #[error("refusing the unsafe name {name:?}")]
    BadName { name: String },
    #[error("{at}: {source}")]
    Io { at: String, source: io::Error },
}

/// A destination directory, held open.
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    /// The last parent opened (items come sorted, so consecutive ones share it).
    last: Option<(Vec<u8>, OwnedFd)>,
    /// The process umask, read once (reading it means setting it: two syscalls).
    umask: u32,
}

/// What is at a path now, without following a final symlink.
pub struct Entry {
    pub kind: FileType,
    pub mode: u32,
    pub mtime: i64,
}

fn io_at(at: &[u8]) -> impl Fn(Errno) -> SafeError + '_ {
    move |e| SafeError::Io { at: String::from_utf8_lossy(at).into_owned(), source: e.into() }
}

fn check_name(name: &[u8]) -> Result<&OsStr, SafeError> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
        return Err(SafeError::BadName { name: String::from_utf8_lossy(name).into_owned() });
    }
    Ok(OsStr::from_bytes(name))
}

impl Root {
    /// Opens `path` (created if missing) as the destination. The root itself is the user's
    /// choice and may be reached through a symlink; nothing below it is.
    pub fn open(path: &Path) -> io::Result<Root> {
        std::fs::create_dir_all(path)?;
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        let mask = rustix::process::umask(Mode::empty());
        rustix::process::umask(mask);
        Ok(Root { fd, path: path.to_path_buf(), last: None, umask: mask.as_raw_mode() as u32 })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Files are written with exactly the bits asked for, not masked by the umask: for a
    /// restore whose snapshot recorded each file's real permission bits.
    pub(crate) fn exact_modes(&mut self) {
        self.umask = 0;
    }

    /// Sets the permission bits of the file or directory at `rel` (empty: the root), through
    /// a descriptor opened without following a link: a symlink there is left alone (false).
    pub(crate) fn set_mode(&mut self, rel: &[u8], bits: u32) -> Result<bool, SafeError> {
        let fd = if rel.is_empty() {
            rustix::io::dup(&self.fd).map_err(io_at(rel))?
        } else {
            let (parent, name) = split(rel)?;
            let Some(dir) = self.dir(parent, false, 0)? else { return Ok(false) };
            // Never even open a device or FIFO (opening some devices does something).
            match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st)
                    if matches!(
                        FileType::from_raw_mode(st.st_mode),
                        FileType::RegularFile | FileType::Directory
                    ) => {}
                Ok(_) | Err(Errno::NOENT) => return Ok(false),
                Err(e) => return Err(io_at(rel)(e)),
            }
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            match rustix::fs::openat(dir, name, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::LOOP | Errno::NXIO) => return Ok(false),
                Err(e) => return Err(io_at(rel)(e)),
            }
        };
        let kind = FileType::from_raw_mode(rustix::fs::fstat(&fd).map_err(io_at(rel))?.st_mode);
        if !matches!(kind, FileType::RegularFile | FileType::Directory) {
            return Ok(false);
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(bits & 0o7777)).map_err(io_at(rel))?;
        Ok(true)
    }

    /// The directory `rel` (a `/`-separated relative path; empty = the root), opened one
    /// component at a time, creating missing directories with `mode` when `create`. None when
    /// it does not exist and `create` is false. The last one opened is kept: items come sorted,
    /// so consecutive files share it and cost no syscall to find.
    fn dir(&mut self, rel: &[u8], create: bool, mode: u32) -> Result<Option<BorrowedFd<'_>>, SafeError> {
        if rel.is_empty() {
            return Ok(Some(self.fd.as_fd()));
        }
        if self.last.as_ref().is_none_or(|(p, _)| p != rel) {
            let mut cur: Option<OwnedFd> = None;
            let mut walked = 0usize;
            for comp in rel.split(|&b| b == b'/') {
                let name = check_name(comp)?;
                walked += comp.len() + usize::from(walked > 0);
                let here = &rel[..walked];
                let base = cur.as_ref().map_or(self.fd.as_fd(), |f| f.as_fd());
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let next = match rustix::fs::openat(base, name, flags, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) if create => {
                        match rustix::fs::mkdirat(base, name, Mode::from_raw_mode(mode)) {
                            Ok(()) | Err(Errno::EXIST) => {}
                            Err(e) => return Err(io_at(here)(e)),
                        }
                        rustix::fs::openat(base, name, flags, Mode::empty()).map_err(|e| not_dir(here, e))?
                    }
                    Err(Errno::NOENT) => return Ok(None),
                    Err(e) => return Err(not_dir(here, e)),
                };
                cur = Some(next);
            }
            self.last = cur.map(|fd| (rel.to_vec(), fd));
        }
        Ok(self.last.as_ref().map(|(_, fd)| fd.as_fd()))
    }

    /// What is at `rel` now (not following a final symlink); None when nothing is, or when a
    /// directory on the way is missing.
    pub fn stat(&mut self, rel: &[u8]) -> Result<Option<Entry>, SafeError> {
        let (parent, name) = split(rel)?;
        let Some(dir) = self.dir(parent, false, 0)? else { return Ok(None) };
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Entry {
                kind: FileType::from_raw_mode(st.st_mode),
                mode: st.st_mode & 0o7777,
                mtime: st.st_mtime,
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(not_dir(rel, e)),
        }
    }

    /// Opens the regular file at `rel` for reading, never following a link and never blocking
    /// on a FIFO; None when it is not a regular file.
    pub(crate) fn open_file(&mut self, rel: &[u8]) -> Result<Option<File>, SafeError> {
        let (parent, name) = split(rel)?;
        let Some(dir) = self.dir(parent, false, 0)? else { return Ok(None) };
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::LOOP | Errno::NXIO) => return Ok(None),
            Err(e) => return Err(io_at(rel)(e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(io_at(rel))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Ok(None);
        }
        Ok(Some(File::from(fd)))
    }

    /// The target of the symlink at `rel`.
    pub fn read_link(&mut self, rel: &[u8]) -> Result<Option<Vec<u8>>, SafeError> {
        let (parent, name) = split(rel)?;
        let Some(dir) = self.dir(parent, false, 0)? else { return Ok(None) };
        match rustix::fs::readlinkat(dir, name, Vec::new()) {
            Ok(t) => Ok(Some(t.into_bytes())),
            Err(_) => Ok(None),
        }
    }

    /// Creates the directory `rel` (and its parents).
    pub fn mkdir(&mut self, rel: &[u8], mode: u32) -> Result<(), SafeError> {
        self.dir(rel, true, mode).map(|_| ())
    }

    /// Writes a file at `rel`: `fill` streams the content into a new temp file beside it, then
    /// the temp is given `mode`, optionally synced, and renamed over `rel`.
    pub fn write_file(
        &mut self,
        rel: &[u8],
        mode: u32,
        durable: bool,
        fill: &mut dyn FnMut(&mut File) -> anyhow::Result<u64>,
    ) -> anyhow::Result<u64> {
        let (parent, name) = split(rel)?;
        let umask = self.umask;
        let dir = self.dir(parent, true, 0o755)?.expect("created");
        let tmp = temp_name();
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let open = || rustix::fs::openat(dir, tmp.as_os_str(), flags, Mode::from_raw_mode(mode & 0o777));
        let fd = match open() {
            // A temp left by a killed restore of ours (same pid after a reboot): ours to remove.
            Err(Errno::EXIST) => {
                let _ = rustix::fs::unlinkat(dir, tmp.as_os_str(), AtFlags::empty());
                open()
            }
            other => other,
        }
        .map_err(io_at(rel))?;
        let mut f = File::from(fd);
        let written = match fill(&mut f) {
            Ok(n) => n,
            Err(e) => {
                let _ = rustix::fs::unlinkat(dir, tmp.as_os_str(), AtFlags::empty());
                return Err(e);
            }
        };
        // The umask (077: private) takes group and other bits; the owner's are set exactly,
        // whatever file was in the way before.
        let bits = mode & 0o7777 & !umask;
        rustix::fs::fchmod(f.as_fd(), Mode::from_raw_mode(bits)).map_err(io_at(rel))?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        replace(dir, &tmp, name, rel)?;
        Ok(written)
    }

    /// Creates a symlink `rel -> target` (replacing what is there, never following it).
    pub fn symlink(&mut self, rel: &[u8], target: &[u8]) -> Result<(), SafeError> {
        let (parent, name) = split(rel)?;
        let dir = self.dir(parent, true, 0o755)?.expect("created");
        let tmp = temp_name();
        let make = || rustix::fs::symlinkat(OsStr::from_bytes(target), dir, tmp.as_os_str());
        match make() {
            Err(Errno::EXIST) => {
                let _ = rustix::fs::unlinkat(dir, tmp.as_os_str(), AtFlags::empty());
                make()
            }
            other => other,
        }
        .map_err(io_at(rel))?;
        replace(dir, &tmp, name, rel)
    }

    /// fsyncs the directory holding `rel`'s entries (the root for "").
    pub fn sync(&mut self, rel: &[u8]) -> Result<(), SafeError> {
        if let Some(d) = self.dir(rel, false, 0)? {
            rustix::fs::fsync(d).map_err(io_at(rel))?;
        }
        Ok(())
    }
}

/// Renames the temp `tmp` over `name` in `dir` (replacing a file or link there, never
/// following it); a directory in the way is a conflict, and the temp is removed.
fn replace(dir: BorrowedFd<'_>, tmp: &OsStr, name: &OsStr, rel: &[u8]) -> Result<(), SafeError> {
    rustix::fs::renameat(dir, tmp, dir, name).map_err(|e| {
        let _ = rustix::fs::unlinkat(dir, tmp, AtFlags::empty());
        match e {
            Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST => {
                SafeError::Io { at: lossy(rel), source: io::Error::other("a directory is in the way") }
            }
            e => io_at(rel)(e),
        }
    })
}

/// Why [`open_beneath`] refused a path.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenFail {
    /// Nothing is there (any more).
    Gone,
    /// A symlink where a directory or the file was: never followed.
    Symlink,
    /// Something other than a regular file is there (a FIFO, socket, device or directory).
    NotRegular,
    Other(String),
}

/// Opens the regular file `rel` below the directory `root` for reading, resolving no symlink
/// at any depth and never blocking on a FIFO: what a snapshot reads is what is at that path
/// inside the source, or nothing. One `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where
/// the kernel has it (Linux 5.6+), else a walk one component at a time.
pub(crate) fn open_beneath(root: &OwnedFd, rel: &[u8]) -> Result<File, OpenFail> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let path = OsStr::from_bytes(rel);
    let how = rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_SYMLINKS;
    let fd = match rustix::fs::openat2(root, path, flags, Mode::empty(), how) {
        Err(Errno::NOSYS | Errno::PERM) => walk_open(root, rel, flags),
        other => other,
    }
    .map_err(|e| match e {
        Errno::NOENT => OpenFail::Gone,
        Errno::LOOP | Errno::NOTDIR | Errno::XDEV | Errno::MLINK => OpenFail::Symlink,
        Errno::NXIO => OpenFail::NotRegular,
        e => OpenFail::Other(io::Error::from(e).to_string()),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| OpenFail::Other(io::Error::from(e).to_string()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(OpenFail::NotRegular);
    }
    Ok(File::from(fd))
}

fn walk_open(root: &OwnedFd, rel: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
    let mut cur = root.try_clone().map_err(|_| Errno::MFILE)?;
    let mut parts = rel.split(|&b| b == b'/').peekable();
    while let Some(comp) = parts.next() {
        if comp.is_empty() || comp == b"." || comp == b".." {
            return Err(Errno::XDEV);
        }
        let name = OsStr::from_bytes(comp);
        if parts.peek().is_none() {
            return rustix::fs::openat(&cur, name, flags, Mode::empty());
        }
        let dflags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        cur = rustix::fs::openat(&cur, name, dflags, Mode::empty())?;
    }
    Err(Errno::NOENT)
}

/// Opens a directory to read below with [`open_beneath`].
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

/// `.opus-mirror-restore-PID`: the pid tells the next run whether its writer is gone.
fn temp_name() -> std::ffi::OsString {
    format!(".opus-mirror-restore-{}", std::process::id()).into()
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn not_dir(at: &[u8], e: Errno) -> SafeError {
    match e {
        Errno::LOOP | Errno::NOTDIR | Errno::MLINK => SafeError::NotADirectory { at: lossy(at) },
        e => io_at(at)(e),
    }
}

/// `a/b/c` → (`a/b`, `c`), checking the final name.
fn split(rel: &[u8]) -> Result<(&[u8], &OsStr), SafeError> {
    let (parent, name) = match rel.iter().rposition(|&b| b == b'/') {
        // An absolute path is never relative to the destination.
        Some(0) => return Err(SafeError::BadName { name: lossy(rel) }),
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&rel[..0], rel),
    };
    Ok((parent, check_name(name)?))
}

/// Opens the regular file at `path` for reading, as everything read back from a drive is:
/// a symlink is never followed and a FIFO never waited on (both refused: "not a regular
/// file"), so a planted bundle can neither hang a command nor point it at `/dev/zero`.
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let f = match std::fs::OpenOptions::new().read(true).custom_flags(flags.bits() as i32).open(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(std::io::Error::other(format!("{}: a symlink, not a regular file", path.display())))
        }
        Err(e) => return Err(e),
    };
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other(format!("{}: not a regular file", path.display())));
    }
    Ok(f)
}

/// The bytes of the regular file at `path`, or None when nothing is there. Like everything
/// read back it is not trusted: a symlink is never followed, a FIFO never waited on (both
/// are errors: not a regular file), and more than `max` bytes is an error, not an allocation.
pub fn read_regular(path: &Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let f = match open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if meta.len() > max {
        return Err(std::io::Error::other(format!("{} bytes, more than it can hold", meta.len())));
    }
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::other("it grew past its limit while being read"));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn never_writes_through_a_symlinked_directory() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let dest = d.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        std::os::unix::fs::symlink(&outside, dest.join("evil")).unwrap();
        let mut root = Root::open(&dest).unwrap();
        let err = root.write_file(b"evil/x", 0o644, false, &mut |f| Ok(f.write(b"x")? as u64)).unwrap_err();
        assert!(err.to_string().contains("is a symlink"), "{err}");
        assert!(root.symlink(b"evil/y", b"/etc/passwd").is_err());
        assert!(root.mkdir(b"evil/z", 0o755).is_err());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // A final symlink is replaced, not written through.
        std::os::unix::fs::symlink(outside.join("f"), dest.join("f")).unwrap();
        root.write_file(b"f", 0o600, true, &mut |f| Ok(f.write(b"data")? as u64)).unwrap();
        assert!(!outside.join("f").exists());
        assert_eq!(std::fs::read(dest.join("f")).unwrap(), b"data");
        for bad in [&b"../x"[..], b"a/../../x", b"", b"/abs", b"a//b"] {
            assert!(root.write_file(bad, 0o644, false, &mut |_| Ok(0)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn open_beneath_follows_no_link_and_opens_no_fifo() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("notes")).unwrap();
        std::fs::write(src.join("notes/a.md"), "a").unwrap();
        std::fs::write(d.path().join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), src.join("link.md")).unwrap();
        std::os::unix::fs::symlink(d.path(), src.join("up")).unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, src.join("fifo"), FileType::Fifo, Mode::from_raw_mode(0o600), 0)
            .unwrap();
        let root = open_dir(&src).unwrap();
        assert!(open_beneath(&root, b"notes/a.md").is_ok());
        assert_eq!(open_beneath(&root, b"link.md").unwrap_err(), OpenFail::Symlink);
        assert_eq!(open_beneath(&root, b"up/secret").unwrap_err(), OpenFail::Symlink);
        assert_eq!(open_beneath(&root, b"fifo").unwrap_err(), OpenFail::NotRegular);
        assert_eq!(open_beneath(&root, b"gone.md").unwrap_err(), OpenFail::Gone);
        assert!(open_beneath(&root, b"../secret").is_err());
        // The fallback walk refuses the same.
        let e = walk_open(&root, b"up/secret", OFlags::RDONLY).unwrap_err();
        assert!(matches!(e, Errno::LOOP | Errno::NOTDIR), "{e:?}");
        assert!(walk_open(&root, b"../secret", OFlags::RDONLY).is_err());
        assert!(walk_open(&root, b"notes/a.md", OFlags::RDONLY).is_ok());
    }

    #[test]
    fn fifos_are_not_files_and_never_block() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("pipe");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        let mut root = Root::open(d.path()).unwrap();
        assert!(root.open_file(b"pipe").unwrap().is_none());
    }
}
