//! One writer that hashes what passes through it: the pack trailer (SHA-1), a bundle's
//! sha256, and hashing a stream into nowhere (`io::sink()`) all use it.

use std::io::{self, Write};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_counts_what_it_passes_on() {
        let mut w: DigestWriter<Vec<u8>, sha1::Sha1> = DigestWriter::new(Vec::new());
        w.write_all(b"hi\n").unwrap();
        assert_eq!(w.inner, b"hi\n");
        assert_eq!(w.len, 3);
        assert_eq!(hex::encode(w.digest.finalize()), "55ca6286e3e4f4fba5d0448333fa99fc5a404a73");
    }
}
