//! Writing packs ourselves: a snapshot streams its new objects into one pack file (never one
//! loose object per file), and we write the `.idx` too, so no second pass through libgit2's
//! indexer is needed. Objects are stored whole (no deltas), which also lets packs be merged
//! later by copying bytes.
//!
//! Crash safety: the pack is written under a temp name in `objects/pack/`, fsynced, then
//! renamed to `pack-<sum>.pack`; the `.idx` is renamed last, because git and libgit2 only see
//! a pack once its index exists. A killed run leaves at most an ignored temp file.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::write::ZlibEncoder;
use flate2::Compression;
use git2::Oid;
use sha1::{Digest, Sha1};

use crate::atomic;
use crate::git::objects::Kind;

/// zlib level for new objects: level 1 is several times faster than git's default 6 and
/// costs a few percent of size on Markdown.
pub const LEVEL: u32 = 1;

/// One object's place in the pack, for the index.
#[derive(Clone, Copy, Debug)]
pub(super) struct IdxEntry {
    pub(super) oid: Oid,
    pub(super) crc: u32,
    pub(super) offset: u64,
}

/// An entry of another pack being copied: the head already read, its index CRC, and how many
/// bytes follow the head.
pub struct OldEntry<'a> {
    pub head: &'a [u8],
    pub crc: u32,
    pub rest: u64,
}

/// A pack being written. Nothing is visible to git until [`PackWriter::finish`].
pub struct PackWriter {
    dir: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    entries: Vec<IdxEntry>,
    seen: HashSet<Oid>,
    /// A `.keep` to write before the pack becomes visible (see [`PackWriter::keep_with`]).
    keep: Option<Vec<u8>>,
    /// Renamed into place: the temp file is no longer ours to remove.
    installed: bool,
}

/// A writer that counts and checksums what passes through it (the CRC the index records).
struct Tally<'a, W: Write> {
    inner: &'a mut W,
    crc: crc32fast::Hasher,
    count: u64,
}

impl<W: Write> Write for Tally<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The pack entry type of a delta whose base is named by id.
pub const REF_DELTA: u8 = 7;
/// The pack entry type of a delta whose base is named by its offset in the same pack.
pub const OFS_DELTA: u8 = 6;

/// The variable-length type-and-size header of a pack entry.
pub fn entry_header(kind: Kind, size: u64) -> Vec<u8> {
    entry_header_raw(kind as u8, size)
}

/// [`entry_header`] for any entry type, deltas included.
pub(super) fn entry_header_raw(kind: u8, size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    let mut byte = (kind << 4) | (size & 0x0f) as u8;
    let mut rest = size >> 4;
    while rest > 0 {
        out.push(byte | 0x80);
        byte = (rest & 0x7f) as u8;
        rest >>= 7;
    }
    out.push(byte);
    out
}

/// Compresses `data` for a pack entry. Data that does not shrink (photos, PDFs) is stored
/// with zlib's "stored" blocks: valid zlib, and far cheaper than compressing noise.
pub fn compress(data: &[u8]) -> Vec<u8> {
    let level = choose_level(data);
    let mut enc = ZlibEncoder::new(Vec::with_capacity(data.len() / 2 + 64), level);
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// Samples the start of the data: if level 1 saves under 3 %, don't bother compressing.
pub fn choose_level(data: &[u8]) -> Compression {
    const SAMPLE: usize = 64 * 1024;
    if data.len() < SAMPLE {
        return Compression::new(LEVEL);
    }
    let mut enc = ZlibEncoder::new(Vec::with_capacity(SAMPLE), Compression::new(LEVEL));
    enc.write_all(&data[..SAMPLE]).expect("writing to a Vec cannot fail");
    let n = enc.finish().expect("writing to a Vec cannot fail").len();
    if n * 100 > SAMPLE * 97 {
        Compression::none()
    } else {
        Compression::new(LEVEL)
    }
}

impl PackWriter {
    /// Starts a pack in `pack_dir` (the repo's `objects/pack`).
    pub fn create(pack_dir: &Path) -> io::Result<PackWriter> {
        fs::create_dir_all(pack_dir)?;
        let tmp = tempfile::Builder::new()
            .prefix("tmp_opus_pack_")
            .tempfile_in(pack_dir)?
            .into_temp_path()
            .keep()
            .map_err(|e| e.error)?;
        let file = OpenOptions::new().write(true).read(true).truncate(true).open(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        // The object count is patched in by `finish`, once known.
        out.write_all(b"PACK\0\0\0\x02\0\0\0\0")?;
        Ok(PackWriter {
            dir: pack_dir.to_path_buf(),
            tmp,
            out,
            offset: 12,
            entries: Vec::new(),
            seen: HashSet::new(),
            keep: None,
            installed: false,
        })
    }

    /// Whether this pack already holds `oid`.
    pub fn contains(&self, oid: &Oid) -> bool {
        self.seen.contains(oid)
    }

    /// How many objects are in the pack so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends an object whose content is already zlib-compressed.
    pub fn add_compressed(&mut self, oid: Oid, kind: Kind, size: u64, zdata: &[u8]) -> io::Result<()> {
        if !self.seen.insert(oid) {
            return Ok(());
        }
        let header = entry_header(kind, size);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        crc.update(zdata);
        self.out.write_all(&header)?;
        self.out.write_all(zdata)?;
        self.entries.push(IdxEntry { oid, crc: crc.finalize(), offset: self.offset });
        self.offset += (header.len() + zdata.len()) as u64;
        Ok(())
    }

    /// Appends `oid` as a `REF_DELTA` against `base`: `delta` rebuilds it from the base. The
    /// base is named by id, not by offset, so the entry can later be copied byte for byte into
    /// any pack that also holds the base (a merge, a bundle, a mirror push). The caller makes
    /// sure the base is in this pack (git reads no delta across packs).
    pub fn add_ref_delta(&mut self, oid: Oid, base: Oid, delta: &[u8]) -> io::Result<()> {
        if !self.seen.insert(oid) {
            return Ok(());
        }
        let mut head = entry_header_raw(REF_DELTA, delta.len() as u64);
        head.extend_from_slice(base.as_bytes());
        let z = compress(delta);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.update(&z);
        self.out.write_all(&head)?;
        self.out.write_all(&z)?;
        self.entries.push(IdxEntry { oid, crc: crc.finalize(), offset: self.offset });
        self.offset += (head.len() + z.len()) as u64;
        Ok(())
    }

    /// Copies a pack entry (header and data) of `len` bytes verbatim from another pack,
    /// streaming, and checks it against the CRC its index records. Returns false, with
    /// nothing added, when the CRC does not match (the source pack is damaged).
    pub fn add_raw(&mut self, oid: Oid, crc: u32, len: u64, src: &mut dyn Read) -> io::Result<bool> {
        if self.seen.contains(&oid) {
            return Ok(true);
        }
        let start = self.offset;
        let mut tally = Tally { inner: &mut self.out, crc: crc32fast::Hasher::new(), count: 0 };
        let copied = io::copy(&mut src.take(len), &mut tally)?;
        let got = tally.crc.finalize();
        if copied != len || got != crc {
            self.rollback(start)?;
            return Ok(false);
        }
        self.seen.insert(oid);
        self.entries.push(IdxEntry { oid, crc, offset: start });
        self.offset = start + len;
        Ok(true)
    }

    /// Copies an `OFS_DELTA` entry from another pack as a `REF_DELTA` against `base` (its
    /// compressed delta byte for byte, under a new head): the entry no longer depends on where
    /// its base sits, so later merges, bundles and pushes can copy it too. `old.head` is what
    /// was read of the entry; the rest (`old.rest` bytes) comes from `src`. The original bytes
    /// are checked against the index's `old.crc`; on a mismatch nothing is added and false
    /// returned.
    pub fn add_ofs_as_ref(
        &mut self,
        oid: Oid,
        base: Oid,
        size: u64,
        old: OldEntry<'_>,
        src: &mut dyn Read,
    ) -> io::Result<bool> {
        let OldEntry { head: old_head, crc, rest } = old;
        if self.seen.contains(&oid) {
            return Ok(true);
        }
        let start = self.offset;
        let mut head = entry_header_raw(REF_DELTA, size);
        head.extend_from_slice(base.as_bytes());
        self.out.write_all(&head)?;
        let mut old = crc32fast::Hasher::new();
        old.update(old_head);
        let mut tally = Tally { inner: &mut self.out, crc: crc32fast::Hasher::new(), count: 0 };
        tally.crc.update(&head);
        let mut buf = vec![0u8; 1 << 16];
        let mut left = rest;
        while left > 0 {
            let n = src.read(&mut buf[..left.min(1 << 16) as usize])?;
            if n == 0 {
                break;
            }
            old.update(&buf[..n]);
            tally.write_all(&buf[..n])?;
            left -= n as u64;
        }
        let new_crc = tally.crc.finalize();
        let written = tally.count;
        if left > 0 || old.finalize() != crc {
            self.rollback(start)?;
            return Ok(false);
        }
        self.seen.insert(oid);
        self.entries.push(IdxEntry { oid, crc: new_crc, offset: start });
        self.offset = start + head.len() as u64 + written;
        Ok(true)
    }

    /// Appends a small object, compressing it here.
    pub fn add(&mut self, kind: Kind, data: &[u8]) -> io::Result<Oid> {
        let oid = crate::git::objects::hash(kind, data);
        if !self.seen.contains(&oid) {
            self.add_compressed(oid, kind, data.len() as u64, &compress(data))?;
        }
        Ok(oid)
    }

    /// Streams an object of `size` bytes from `src` into the pack without holding it in
    /// memory. Returns the id of what was actually read; if that is not `expect` (the
    /// source changed since it was hashed) or the length differs, the entry is rolled back
    /// and `Ok(None)` is returned.
    pub fn add_stream(
        &mut self,
        expect: Oid,
        kind: Kind,
        size: u64,
        src: &mut dyn Read,
        level: Compression,
    ) -> io::Result<Option<Oid>> {
        if self.seen.contains(&expect) {
            return Ok(Some(expect));
        }
        let start = self.offset;
        let header = entry_header(kind, size);
        let mut hasher = crate::git::objects::hasher(kind, size);
        let mut tally = Tally { inner: &mut self.out, crc: crc32fast::Hasher::new(), count: 0 };
        tally.write_all(&header)?;
        let mut read_total = 0u64;
        {
            let mut enc = ZlibEncoder::new(&mut tally, level);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = src.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                read_total += n as u64;
                if read_total > size {
                    break;
                }
                hasher.update(&buf[..n]);
                enc.write_all(&buf[..n])?;
            }
            enc.finish()?;
        }
        let crc = tally.crc.finalize();
        let written = tally.count;
        let got = crate::git::objects::finish(hasher);
        if read_total != size || got != expect {
            self.rollback(start)?;
            return Ok(None);
        }
        self.seen.insert(got);
        self.entries.push(IdxEntry { oid: got, crc, offset: start });
        self.offset = start + written;
        Ok(Some(got))
    }

    /// Cuts the file back to `offset`, dropping a half-written entry.
    fn rollback(&mut self, offset: u64) -> io::Result<()> {
        self.out.flush()?;
        let f = self.out.get_mut();
        f.set_len(offset)?;
        f.seek(SeekFrom::Start(offset))?;
        self.offset = offset;
        Ok(())
    }

    /// Drops the pack (nothing was worth keeping, or the run failed). Dropping a writer that
    /// was not finished does the same: an error anywhere (a full disk) leaves no temp pack to
    /// fill the disk for the rest of the run.
    pub fn abandon(self) {
        drop(self);
    }

    /// Installs a `pack-NAME.keep` holding `content` before the pack itself, as receive-pack
    /// does: a `git repack -a -d` running meanwhile in that repository neither deletes nor
    /// repacks a kept pack whose objects no ref reaches yet. The caller removes it once its
    /// refs are written.
    pub fn keep_with(&mut self, content: &[u8]) {
        self.keep = Some(content.to_vec());
    }

    /// Completes the pack and its index and makes them visible. Returns the pack's checksum
    /// (its name), or `None` when the pack is empty and was discarded.
    pub fn finish(mut self) -> io::Result<Option<String>> {
        if self.entries.is_empty() {
            self.abandon();
            return Ok(None);
        }
        self.out.flush()?;
        let file = self.out.get_mut();
        file.seek(SeekFrom::Start(8))?;
        file.write_all(&(self.entries.len() as u32).to_be_bytes())?;
        // The trailer is the SHA-1 of everything before it, header included: read it back.
        file.seek(SeekFrom::Start(0))?;
        let mut h = Sha1::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let sum: [u8; 20] = h.finalize().into();
        file.seek(SeekFrom::End(0))?;
        file.write_all(&sum)?;
        file.sync_all()?;
        let name = hex::encode(sum);
        let idx = index_bytes(&mut self.entries, &sum);
        if let Some(keep) = &self.keep {
            atomic::write_file(&self.dir.join(format!("pack-{name}.keep")), keep)?;
        }
        install(&self.dir, &self.tmp, &name, &idx)?;
        self.installed = true;
        Ok(Some(name))
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Renames the pack into place, then writes the index beside it (last: it makes the pack
/// visible), then syncs the directory.
pub(super) fn install(dir: &Path, tmp_pack: &Path, name: &str, idx: &[u8]) -> io::Result<()> {
    let pack_path = dir.join(format!("pack-{name}.pack"));
    fs::rename(tmp_pack, &pack_path)?;
    atomic::write_file(&dir.join(format!("pack-{name}.idx")), idx)?;
    atomic::sync_dir(dir)
}

/// Builds a version-2 pack index.
pub(super) fn index_bytes(entries: &mut [IdxEntry], pack_sum: &[u8; 20]) -> Vec<u8> {
    entries.sort_by(|a, b| a.oid.as_bytes().cmp(b.oid.as_bytes()));
    let mut out = Vec::with_capacity(8 + 1024 + entries.len() * 28 + 40);
    out.extend_from_slice(b"\xfftOc\0\0\0\x02");
    let mut fanout = [0u32; 256];
    for e in entries.iter() {
        fanout[e.oid.as_bytes()[0] as usize] += 1;
    }
    let mut acc = 0u32;
    for f in fanout.iter_mut() {
        acc += *f;
        *f = acc;
    }
    for f in fanout {
        out.extend_from_slice(&f.to_be_bytes());
    }
    for e in entries.iter() {
        out.extend_from_slice(e.oid.as_bytes());
    }
    for e in entries.iter() {
        out.extend_from_slice(&e.crc.to_be_bytes());
    }
    let mut large = Vec::new();
    for e in entries.iter() {
        if e.offset < 0x8000_0000 {
            out.extend_from_slice(&(e.offset as u32).to_be_bytes());
        } else {
            out.extend_from_slice(&(0x8000_0000u32 | large.len() as u32).to_be_bytes());
            large.push(e.offset);
        }
    }
    for off in large {
        out.extend_from_slice(&off.to_be_bytes());
    }
    out.extend_from_slice(pack_sum);
    let idx_sum: [u8; 20] = Sha1::digest(&out).into();
    out.extend_from_slice(&idx_sum);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer dropped before `finish` (an error on the way: a full disk) leaves no temp pack
    /// behind to fill the disk for the rest of the run.
    #[test]
    fn an_unfinished_pack_is_removed_when_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let temps = || fs::read_dir(dir.path()).expect("list").count();
        let mut w = PackWriter::create(dir.path()).expect("writer");
        w.add(Kind::Blob, b"half a pack").expect("add");
        assert_eq!(temps(), 1);
        drop(w);
        assert_eq!(temps(), 0, "the temp pack is gone");
        let mut w = PackWriter::create(dir.path()).expect("writer");
        w.add(Kind::Blob, b"a whole pack").expect("add");
        w.finish().expect("finish").expect("a name");
        assert_eq!(temps(), 2, "a finished pack and its index stay");
    }

    #[test]
    fn entry_header_matches_git_varint() {
        assert_eq!(entry_header(Kind::Blob, 5), vec![0x35]);
        // size 100 = 0b110_0100: low nibble 4 with continuation, then 6.
        assert_eq!(entry_header(Kind::Blob, 100), vec![0xb4, 0x06]);
    }

    #[test]
    fn incompressible_data_is_stored() {
        let mut x = 1u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(choose_level(&noise), Compression::none());
        assert_eq!(choose_level(&vec![b'a'; 200_000]), Compression::new(LEVEL));
    }
}
