//! The stat cache: for every file of the last snapshot, the stat data it had and the blob it
//! hashed to. A file whose size, mtime, ctime and inode are unchanged is not read again, so a
//! snapshot of an unchanged vault is one stat walk.
//!
//! Trust rules. The cache names the snapshot commit it was written with; it is used only if
//! that commit exists in the backup repo, since objects are never removed, all the blobs it
//! names then exist too. Files modified in the same second the cache was written are stored
//! as "racy" (no blob) and re-hashed next time, as git does for its index. A cache that fails
//! its checksum (CRC-32: it guards against torn or damaged files, not against an attacker
//! who can already write the state dir) is ignored: the cost is one slower snapshot, never a
//! wrong one.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use git2::Oid;

use super::walk::{FileRec, Stat};
use crate::atomic;

const MAGIC: &[u8; 8] = b"OMSCACH2";

#[derive(Clone, Copy, Debug)]
struct Entry {
    stat: Stat,
    exec: bool,
    oid: Oid,
}

/// A loaded stat cache.
#[derive(Debug, Default)]
pub struct StatCache {
    /// The snapshot commit the cache belongs to.
    pub commit: Option<Oid>,
    entries: HashMap<Vec<u8>, Entry>,
}

impl StatCache {
    /// Loads the cache at `path`; a missing or damaged cache is an empty one.
    pub fn load(path: &Path) -> StatCache {
        match std::fs::read(path) {
            Ok(bytes) => match decode(&bytes) {
                Some(c) => c,
                None => {
                    tracing::warn!(path = %path.display(), "stat cache is damaged; every file will be re-read once");
                    StatCache::default()
                }
            },
            Err(_) => StatCache::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The blob of `rel` if its stat data is exactly what the cache recorded.
    pub fn lookup(&self, rel: &[u8], stat: &Stat, exec: bool) -> Option<Oid> {
        let e = self.entries.get(rel)?;
        (e.stat == *stat && e.exec == exec && !e.oid.is_zero()).then_some(e.oid)
    }

    /// Writes the cache for `commit` atomically. Files whose mtime is not older than
    /// `racy_after_ns` are stored without a blob, so they are hashed again next time. (Only
    /// mtime matters: a content change within one timestamp tick after our stat is the race;
    /// ctime is still compared on lookup, which catches chmod and `touch -r`.)
    pub fn save(path: &Path, commit: Oid, files: &[&FileRec], racy_after_ns: i64) -> io::Result<()> {
        let mut out = Vec::with_capacity(64 + files.len() * 100);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(commit.as_bytes());
        out.extend_from_slice(&(files.len() as u64).to_le_bytes());
        for f in files {
            let oid = match f.oid {
                Some(o) if f.stat.mtime_ns < racy_after_ns => o,
                _ => Oid::ZERO_SHA1,
            };
            out.extend_from_slice(&(f.rel.len() as u32).to_le_bytes());
            out.extend_from_slice(&f.rel);
            out.extend_from_slice(&f.stat.size.to_le_bytes());
            out.extend_from_slice(&f.stat.mtime_ns.to_le_bytes());
            out.extend_from_slice(&f.stat.ctime_ns.to_le_bytes());
            out.extend_from_slice(&f.stat.ino.to_le_bytes());
            out.push(f.exec as u8);
            out.extend_from_slice(oid.as_bytes());
        }
        let sum = crc32fast::hash(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        atomic::write_file(path, &out)
    }
}

/// Reads fixed-size pieces off the front of a byte slice.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn oid(&mut self) -> Option<Oid> {
        Oid::from_bytes(self.take(20)?).ok()
    }
}

fn decode(bytes: &[u8]) -> Option<StatCache> {
    if bytes.len() < MAGIC.len() + 20 + 8 + 4 {
        return None;
    }
    let (body, sum) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != sum {
        return None;
    }
    let mut c = Cursor(body);
    if c.take(8)? != MAGIC {
        return None;
    }
    let commit = c.oid()?;
    let n = c.u64()? as usize;
    let mut entries = HashMap::with_capacity(n.min(10_000_000));
    for _ in 0..n {
        let len = c.u32()? as usize;
        let rel = c.take(len)?.to_vec();
        let stat = Stat { size: c.u64()?, mtime_ns: c.i64()?, ctime_ns: c.i64()?, ino: c.u64()? };
        let exec = c.take(1)?[0] != 0;
        let oid = c.oid()?;
        entries.insert(rel, Entry { stat, exec, oid });
    }
    Some(StatCache { commit: (!commit.is_zero()).then_some(commit), entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(rel: &str, mtime: i64) -> FileRec {
        FileRec {
            rel: rel.as_bytes().to_vec(),
            stat: Stat { size: 3, mtime_ns: mtime, ctime_ns: mtime, ino: 7 },
            exec: false,
            perm: 0o644,
            oid: Some(crate::git::objects::hash(crate::git::objects::Kind::Blob, b"abc")),
        }
    }

    #[test]
    fn round_trips_and_marks_racy_entries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cache");
        let commit = crate::git::objects::empty_tree();
        let old = rec("old.md", 1_000);
        let fresh = rec("fresh.md", 5_000);
        StatCache::save(&p, commit, &[&old, &fresh], 5_000).unwrap();
        let c = StatCache::load(&p);
        assert_eq!(c.commit, Some(commit));
        assert_eq!(c.lookup(b"old.md", &old.stat, false), old.oid);
        assert_eq!(c.lookup(b"fresh.md", &fresh.stat, false), None, "racy entry must be re-hashed");
        assert_eq!(c.lookup(b"old.md", &old.stat, true), None, "mode change is a change");
    }

    #[test]
    fn damaged_cache_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cache");
        StatCache::save(&p, crate::git::objects::empty_tree(), &[&rec("a", 1)], 10).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[12] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert!(StatCache::load(&p).is_empty());
    }

    /// `body` with the checksum [`decode`] wants, so the property reaches the parser proper.
    fn sealed(body: &[u8]) -> Vec<u8> {
        let mut b = body.to_vec();
        b.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        b
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = decode(&data);
            let _ = decode(&sealed(&data));
        }

        #[test]
        fn any_body_behind_the_magic_never_panics(
            count in proptest::prop_oneof![0u64..4, proptest::prelude::any::<u64>()],
            rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        ) {
            let mut body = MAGIC.to_vec();
            body.extend_from_slice(&[1u8; 20]);
            body.extend_from_slice(&count.to_le_bytes());
            body.extend_from_slice(&rest);
            if let Some(c) = decode(&sealed(&body)) {
                proptest::prop_assert!(c.len() as u64 <= count);
            }
        }
    }
}
