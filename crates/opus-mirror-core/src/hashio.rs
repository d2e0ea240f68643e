//! Hashing as bytes stream past, never holding a whole file: one writer that hashes what
//! passes through it (the pack trailer's SHA-1, a bundle's sha256, a stream hashed into
//! `io::sink()`), and the git blob id of a file on disk, which drill and in-place restore
//! compare restored and live files by.

use std::fs::File;
use std::io::{self, Write};

use git2::Oid;

use sha1::Digest;

/// Passes writes on to `inner`, feeding every byte written to the digest `D` and counting.
pub struct DigestWriter<W: Write, D: Digest> {
    pub inner: W,
    pub digest: D,
    pub len: u64,
}

impl<W: Write, D: Digest> DigestWriter<W, D> {
    pub fn new(inner: W) -> Self {
        DigestWriter { inner, digest: D::new(), len: 0 }
    }
}

impl<W: Write, D: Digest> Write for DigestWriter<W, D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The git blob id of an open file, read in bounded buffers (64 KiB): the size comes from
/// its metadata, so the `blob SIZE\0` header is hashed first. A file that grows or shrinks
/// while it is read is an error, not a wrong id.
pub(crate) fn file_blob_id(f: &mut File) -> io::Result<Oid> {
    let len = f.metadata()?.len();
    crate::git::objects::hash_reader(f, len)
}

/// The sha256 of a file, as hex.
pub(crate) fn sha256_file(p: &std::path::Path) -> io::Result<String> {
    let mut f = crate::safe_fs::open_regular(p)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_streamed_hashes_to_what_git_hash_object_says() {
        let dir = tempfile::tempdir().unwrap();
        // Empty, one byte, around the 64 KiB buffer, and several buffers with a tail.
        for size in [0usize, 1, 65_535, 65_536, 65_537, 1_000_003] {
            let p = dir.path().join(format!("f{size}"));
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
            std::fs::write(&p, &data).unwrap();
            let ours = file_blob_id(&mut File::open(&p).unwrap()).unwrap();
            let git = std::process::Command::new("git").arg("hash-object").arg(&p).output().unwrap();
            assert!(git.status.success());
            assert_eq!(ours.to_string(), String::from_utf8_lossy(&git.stdout).trim(), "size {size}");
        }
    }

    #[test]
    fn hashes_and_counts_what_it_passes_on() {
        let mut w: DigestWriter<Vec<u8>, sha1::Sha1> = DigestWriter::new(Vec::new());
        w.write_all(b"hi\n").unwrap();
        assert_eq!(w.inner, b"hi\n");
        assert_eq!(w.len, 3);
        assert_eq!(hex::encode(w.digest.finalize()), "55ca6286e3e4f4fba5d0448333fa99fc5a404a73");
    }
}
