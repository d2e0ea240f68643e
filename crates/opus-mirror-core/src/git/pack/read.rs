//! Reading our packs directly: their indexes (for merging) and whole-object entries as
//! streams, so a multi-gigabyte file is restored without holding it in memory (libgit2 can
//! only stream loose objects).

use std::fs::{self, File};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use git2::Oid;

/// One object's entry in a pack, from its index.
pub struct Entry {
    pub oid: Oid,
    pub crc: u32,
    pub offset: u64,
}

/// Reads a version-2 index.
pub fn read_index(idx: &Path) -> Result<Vec<Entry>> {
    let b = fs::read(idx).with_context(|| format!("cannot read {}", idx.display()))?;
    parse_index(&b, idx)
}

/// Parses the bytes of a version-2 index (`idx` only names it in errors). Any bytes give an
/// entry list or an error, never a panic: the file is read back from disk.
pub fn parse_index(b: &[u8], idx: &Path) -> Result<Vec<Entry>> {
    if b.len() < 8 + 1024 + 40 || &b[..8] != b"\xfftOc\0\0\0\x02" {
        bail!("{} is not a version-2 pack index", idx.display());
    }
    let be32 = |at: usize| u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let n = be32(8 + 255 * 4) as usize;
    let names = 8 + 1024;
    let crcs = names + n * 20;
    let offs = crcs + n * 4;
    let large = offs + n * 4;
    if b.len() < large + 40 {
        bail!("{} is truncated", idx.display());
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let raw = be32(offs + i * 4);
        let offset = if raw & 0x8000_0000 != 0 {
            let at = large + (raw & 0x7fff_ffff) as usize * 8;
            u64::from_be_bytes(
                b.get(at..at + 8).context("large offset out of range")?.try_into().expect("8 bytes"),
            )
        } else {
            raw as u64
        };
        out.push(Entry {
            oid: Oid::from_bytes(&b[names + i * 20..names + i * 20 + 20])?,
            crc: be32(crcs + i * 4),
            offset,
        });
    }
    Ok(out)
}

/// Opens the blob `oid` as a stream if some pack in `pack_dir` stores it whole (not as a
/// delta). Returns its size and a reader of its inflated content; the caller verifies the
/// content against `oid` as it reads.
pub fn open_blob(pack_dir: &Path, oid: Oid) -> Result<Option<(u64, Box<dyn Read>)>> {
    for pack in list_packs(pack_dir)? {
        let entries = read_index(&pack.with_extension("idx"))?;
        let Ok(i) = entries.binary_search_by(|e| e.oid.as_bytes().cmp(oid.as_bytes())) else { continue };
        let mut f = BufReader::new(File::open(&pack)?);
        f.seek(SeekFrom::Start(entries[i].offset))?;
        let head = read_head(&mut f)?;
        if head.kind != 3 {
            return Ok(None);
        }
        return Ok(Some((head.size, Box::new(flate2::read::ZlibDecoder::new(f).take(head.size)))));
    }
    Ok(None)
}

/// The start of a pack entry: its type, its size, and for a `REF_DELTA` the id of its base.
pub struct Head {
    /// 1–4 for whole objects, [`super::OFS_DELTA`] or [`super::REF_DELTA`].
    pub kind: u8,
    /// The size of the object, or of the delta.
    pub size: u64,
    /// The bytes read: the header, and a `REF_DELTA`'s base id (`OFS_DELTA`: its offset).
    pub bytes: Vec<u8>,
    pub base: Option<Oid>,
    /// For an `OFS_DELTA`: how many bytes before this entry its base starts.
    pub back: Option<u64>,
}

impl Head {
    /// A whole object (commit, tree, blob, tag).
    pub fn is_whole(&self) -> bool {
        (1..=4).contains(&self.kind)
    }

    /// Whether the entry can be copied as it is into a pack that will hold `goes_too`'s
    /// objects: a whole object always, one of our deltas when its base goes too (never an
    /// offset delta, whose base offset would be wrong there; never a thin pack).
    pub fn copyable(&self, goes_too: impl Fn(&Oid) -> bool) -> bool {
        self.is_whole() || self.base.is_some_and(|b| goes_too(&b))
    }
}

/// Reads the head of the entry `r` is at. Copying the entry is then `bytes` followed by the
/// rest of it, so nothing is read twice.
pub fn read_head(r: &mut dyn Read) -> std::io::Result<Head> {
    let mut bytes = Vec::with_capacity(32);
    let mut byte = [0u8; 1];
    r.read_exact(&mut byte)?;
    bytes.push(byte[0]);
    let kind = (byte[0] >> 4) & 7;
    let mut size = (byte[0] & 0x0f) as u64;
    let mut shift = 4;
    while byte[0] & 0x80 != 0 {
        if shift > 60 {
            return Err(std::io::Error::other("a pack entry's size does not fit in 64 bits"));
        }
        r.read_exact(&mut byte)?;
        bytes.push(byte[0]);
        size |= ((byte[0] & 0x7f) as u64) << shift;
        shift += 7;
    }
    let mut base = None;
    let mut back = None;
    if kind == super::REF_DELTA {
        let mut id = [0u8; 20];
        r.read_exact(&mut id)?;
        bytes.extend_from_slice(&id);
        base = Some(Oid::from_bytes(&id).map_err(std::io::Error::other)?);
    } else if kind == super::OFS_DELTA {
        // Git's offset encoding: big-endian 7-bit groups, each continuation adding one.
        r.read_exact(&mut byte)?;
        bytes.push(byte[0]);
        let mut rel = (byte[0] & 0x7f) as u64;
        while byte[0] & 0x80 != 0 {
            if rel > (u64::MAX >> 8) {
                return Err(std::io::Error::other("a delta's base offset does not fit in 64 bits"));
            }
            r.read_exact(&mut byte)?;
            bytes.push(byte[0]);
            rel = ((rel + 1) << 7) | (byte[0] & 0x7f) as u64;
        }
        back = Some(rel);
    }
    Ok(Head { kind, size, bytes, base, back })
}

/// Moves a buffered reader to `offset`, keeping its buffer when the move is short: entries
/// are visited in pack order, so most moves are zero or a few bytes, and a plain `seek`
/// would throw the buffer away and re-read a megabyte for every object.
pub fn seek_to(r: &mut BufReader<File>, offset: u64) -> std::io::Result<()> {
    let cur = r.stream_position()?;
    if offset != cur {
        r.seek_relative(offset as i64 - cur as i64)?;
    }
    Ok(())
}

/// The `.pack` files that have an index, oldest name order.
pub fn list_packs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(out);
    };
    for e in rd {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "pack")
            && p.with_extension("idx").exists()
            && !p.with_extension("keep").exists()
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A header that passes the magic check, `n` objects in the last fan-out slot.
    fn header(n: u32) -> Vec<u8> {
        let mut b = b"\xfftOc\0\0\0\x02".to_vec();
        b.extend(std::iter::repeat_n(0u8, 255 * 4));
        b.extend_from_slice(&n.to_be_bytes());
        b
    }

    #[test]
    fn a_real_index_parses() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let blob = repo.blob(b"hello").unwrap();
        let mut pb = repo.packbuilder().unwrap();
        pb.insert_object(blob, None).unwrap();
        pb.write(&dir.path().join("objects/pack"), 0o644).unwrap();
        let idx = fs::read_dir(dir.path().join("objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "idx"))
            .unwrap();
        let entries = read_index(&idx).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].oid, blob);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = parse_index(&data, Path::new("x.idx"));
        }

        #[test]
        fn a_valid_header_with_any_count_and_body_never_panics(
            n in prop_oneof![0u32..8, any::<u32>()],
            body in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut b = header(n);
            b.extend_from_slice(&body);
            if let Ok(entries) = parse_index(&b, Path::new("x.idx")) {
                prop_assert_eq!(entries.len(), n as usize);
            }
        }
    }
}
