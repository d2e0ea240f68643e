//! Our own pack indexer, for the packs inside bundles: one streaming pass parses every entry
//! (type and size varints, `OFS_DELTA` and `REF_DELTA` bases), inflates it, CRC32s its bytes
//! and SHA-1s every whole object (`blob N\0` framing, never the whole blob in memory); a second
//! pass resolves the deltas, re-reading each base from the file by offset when it is not still
//! at hand. The object count, the zlib streams, each declared size and the trailer are checked.
//! Optionally the pack is written into a repository with a version-2 `.idx` (byte-identical to
//! `git index-pack`'s), the crash-safe way [`super::write`] does it, `.idx` last.
//!
//! Why not libgit2's indexer: it costs one core with collision-detecting SHA-1, maps the pack it
//! writes (a 2 GB file showed as 2.1 GB resident in a drill), and its connectivity check keeps a
//! copy of every object. Here the trailer SHA-1 (and the copy into the repository) runs on a
//! second thread that reads the file on its own, memory is bounded by the largest delta base
//! or delta result (whole objects stream; bases are kept within a budget, else re-read), and a
//! full bundle's completeness is checked with ids only.
//!
//! A pack is untrusted input (whoever can write to a target can plant a bundle): no size the
//! input declares is allocated up front beyond a cap, varints are bounded, a delta must name a
//! base before it (by offset) or resolvable by id, chains are limited to [`MAX_DEPTH`], and a
//! delta that never resolves (a loop, a missing base) is an error naming its offset.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use flate2::{Decompress, FlushDecompress, Status};
use git2::Oid;
use sha1::{Digest, Sha1};

use crate::git::objects::{self, Kind};

/// The longest delta chain accepted (git's own `pack.depth` cannot exceed 4095).
pub const MAX_DEPTH: usize = 4095;
/// Delta bases kept in memory while their children are resolved, at most this many bytes in
/// all; beyond it a base is re-read from the file (inflated, and rebuilt if it is a delta).
const KEEP_BUDGET: usize = 64 << 20;
/// The most bytes reserved at once for a size the input declares; more only as data arrives.
const RESERVE_CAP: usize = 1 << 20;
/// The largest object held whole in memory: a delta's result or base, a commit, tree or tag.
/// git never deltifies a file above `core.bigFileThreshold` (512 MiB), so no honest bundle
/// needs more; without a cap, a few hundred bytes of delta declaring 8 GiB made us allocate
/// until the process aborted.
pub const MAX_WHOLE: u64 = 512 << 20;

fn too_big(what: &str, n: u64) -> String {
    format!(
        "{what} of {n} bytes, more than the {} MiB an object is held in memory for (git deltifies nothing that big)",
        MAX_WHOLE >> 20
    )
}

/// Why a pack was refused. The caller names the file (a bundle) it came from.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot read or write the pack: {0}")]
    Io(#[from] io::Error),
    #[error("not a pack (it does not start with `PACK`)")]
    NotAPack,
    #[error("pack version {0} is not supported")]
    Version(u32),
    #[error("the pack is truncated: it ends inside object {index} of the {count} it declares")]
    Truncated { index: u32, count: u32 },
    #[error("the pack holds more than the {count} objects it declares ({extra} bytes before the trailer)")]
    Extra { count: u32, extra: u64 },
    #[error("the pack's checksum (trailer) does not match its content (damaged)")]
    Trailer,
    #[error("object {index} (offset {offset}): {problem}")]
    Entry { index: u32, offset: u64, problem: String },
    #[error("the delta at offset {offset} needs object {base}, which the pack does not hold (or only as a delta of itself)")]
    MissingBase { offset: u64, base: Oid },
    #[error("the delta at offset {offset} never resolves (its base is a delta of it: a loop)")]
    Loop { offset: u64 },
    #[error("a delta chain is deeper than {MAX_DEPTH} (at offset {offset})")]
    TooDeep { offset: u64 },
    #[error("incomplete: {missing} (named by {by}) is not in the pack")]
    Incomplete { missing: Oid, by: Oid },
    #[error("the bundle's ref {name} names {oid}, which is not in the pack")]
    MissingTip { name: String, oid: Oid },
    #[error("tree {tree} is unsafe to restore: {finding}")]
    UnsafeTree { tree: Oid, finding: String },
}

type Res<T> = Result<T, IndexError>;

/// What to do beside checking.
#[derive(Default)]
pub struct Options<'a> {
    /// Write the pack and its `.idx` into this directory (a repository's `objects/pack`).
    pub write_to: Option<&'a Path>,
    /// Where bases of a thin pack (`REF_DELTA` against an object not in it) come from; they are
    /// appended to the written pack, as `git index-pack --fix-thin` does. Without it such deltas
    /// are an error when `complete`, else left unverified (counted in [`Indexed::unverified`]).
    pub odb: Option<&'a git2::Odb<'a>>,
    /// Every object a commit, tree or tag in the pack names must be in it (a full bundle).
    /// Implies `trees`.
    pub complete: bool,
    /// Every tree must pass git's fsck rules (`fsck::check_tree`): what unbundle would refuse
    /// to restore, check refuses too, in an incremental bundle as in a full one.
    pub trees: bool,
    /// Refs (a bundle header's) whose objects must be in the pack; checked when `complete`.
    pub tips: &'a [(String, Oid)],
}

impl Options<'_> {
    /// Whether commits, trees and tags are read whole and parsed (their links, and the
    /// trees' safety).
    fn reads_links(&self) -> bool {
        self.complete || self.trees
    }
}

/// What indexing found.
#[derive(Debug)]
pub struct Indexed {
    /// Objects in the pack (as declared and found).
    pub objects: u32,
    /// Deltas against objects outside the pack left unverified (no odb was given).
    pub unverified: u32,
    /// The written pack's name (`pack-NAME.pack`), when one was written.
    pub name: Option<String>,
    /// Each entry as found: (offset, CRC32 of its bytes, the id its content hashes to; None
    /// for a delta left unverified), in pack order. What a `.idx` says can be checked against it.
    pub found: Vec<(u64, u32, Option<Oid>)>,
}

/// What we know about one entry.
struct Entry {
    offset: u64,
    /// Bytes of the entry's header (type, size, base): its zlib data starts after them.
    header_len: u8,
    /// 1–4 a whole object; 6 an offset delta; 7 a ref delta. After resolving, the object's kind.
    kind: u8,
    /// The inflated size: the object's, or the delta's instructions.
    size: u64,
    /// An offset delta's base offset (0: none).
    base_offset: u64,
    crc: u32,
    oid: Option<Oid>,
}

/// Indexes the pack that fills `path` from byte `start` to its end (a bundle's pack).
pub fn index_file(path: &Path, start: u64, opts: &Options) -> Res<Indexed> {
    let len = std::fs::metadata(path)?.len();
    if len < start + 12 + 20 {
        return Err(IndexError::Truncated { index: 0, count: 0 });
    }
    let body_end = len - 20;
    let tmp = match opts.write_to {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            Some(
                tempfile::Builder::new()
                    .prefix("tmp_opus_pack_")
                    .tempfile_in(dir)?
                    .into_temp_path()
                    .keep()
                    .map_err(|e| e.error)?,
            )
        }
        None => None,
    };
    let result = std::thread::scope(|s| {
        // The trailer (and the copy) on a second core: it reads the file on its own.
        let trailer = s.spawn(|| trailer_and_copy(path, start, len, tmp.as_deref()));
        let parsed = parse(path, start, body_end, opts);
        let trailer_ok = trailer.join().map_err(|_| io::Error::other("the trailer thread panicked"))?;
        let (entries, ext) = parsed?;
        if !trailer_ok? {
            return Err(IndexError::Trailer);
        }
        Ok((entries, ext))
    });
    let finish = |(mut entries, ext): (Vec<Entry>, Externals)| -> Res<Indexed> {
        let objects = entries.len() as u32;
        let name = match (opts.write_to, &tmp) {
            (Some(dir), Some(tmp)) => Some(install(dir, tmp, &mut entries, &ext, opts)?),
            _ => None,
        };
        let found = entries.iter().map(|e| (e.offset, e.crc, e.oid)).collect();
        Ok(Indexed { objects, unverified: ext.unverified, name, found })
    };
    let out = result.and_then(finish);
    if out.is_err() {
        if let Some(tmp) = &tmp {
            let _ = std::fs::remove_file(tmp);
        }
    }
    out
}

/// SHA-1s `path[start..len-20]` (copying it to `copy`) and compares the last 20 bytes.
fn trailer_and_copy(path: &Path, start: u64, len: u64, copy: Option<&Path>) -> Res<bool> {
    let mut f = crate::safe_fs::open_regular(path)?;
    f.seek(SeekFrom::Start(start))?;
    let mut out = match copy {
        Some(p) => Some(BufWriter::with_capacity(1 << 20, OpenOptions::new().write(true).open(p)?)),
        None => None,
    };
    let mut h = Sha1::new();
    let mut left = len - 20 - start;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = f.read(&mut buf[..want])?;
        if n == 0 {
            return Err(IndexError::Trailer);
        }
        h.update(&buf[..n]);
        if let Some(o) = &mut out {
            o.write_all(&buf[..n])?;
        }
        left -= n as u64;
    }
    let mut trailer = [0u8; 20];
    f.read_exact(&mut trailer)?;
    if let Some(mut o) = out {
        o.write_all(&trailer)?;
        o.flush()?;
    }
    Ok(h.finalize().as_slice() == trailer)
}

/// Bases from outside the pack (a thin pack): the ids used, for `install` to append.
#[derive(Default)]
struct Externals {
    used: Vec<Oid>,
    unverified: u32,
}

/// Links named by commits, trees and tags, for the completeness check.
#[derive(Default)]
struct Links {
    need: HashMap<Oid, Oid>,
    /// The first tree that git's fsck rules refuse (a name like `..`, `.git`, a duplicate):
    /// what unbundle would refuse to restore, check refuses too.
    unsafe_tree: Option<(Oid, String)>,
}

impl Links {
    fn add(&mut self, kind: u8, oid: Oid, data: &[u8]) {
        let need = &mut self.need;
        let mut add = |o: Oid| {
            need.entry(o).or_insert(oid);
        };
        match kind {
            // One parse, git's fsck rules and the links together; a tree they refuse is named
            // and its parseable entries are still followed for the completeness check.
            2 => match crate::git::fsck::check_tree(data) {
                Ok(entries) => {
                    for e in entries.iter().filter(|e| e.mode != objects::MODE_GITLINK) {
                        add(e.oid);
                    }
                }
                Err(f) => {
                    self.unsafe_tree.get_or_insert((oid, f.to_string()));
                    for e in objects::raw_tree_entries(data).map_while(|e| e) {
                        if e.mode != b"160000" {
                            add(e.oid);
                        }
                    }
                }
            },
            1 | 4 => {
                for line in data.split(|&b| b == b'\n') {
                    if line.is_empty() {
                        break;
                    }
                    let (key, val) = match line.iter().position(|&b| b == b' ') {
                        Some(i) => (&line[..i], &line[i + 1..]),
                        None => (line, &[][..]),
                    };
                    if matches!(key, b"tree" | b"parent" | b"object") {
                        if let Some(o) = std::str::from_utf8(val).ok().and_then(|v| Oid::from_str(v).ok()) {
                            add(o);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// The reader of pass 1: counts offsets and CRC32s what is consumed.
struct Cursor<R: BufRead> {
    r: R,
    offset: u64,
    crc: crc32fast::Hasher,
}

impl<R: BufRead> Cursor<R> {
    fn byte(&mut self) -> io::Result<Option<u8>> {
        let b = match self.r.fill_buf()?.first() {
            Some(b) => *b,
            None => return Ok(None),
        };
        self.consume(&[b]);
        self.r.consume(1);
        Ok(Some(b))
    }
    fn consume(&mut self, b: &[u8]) {
        self.crc.update(b);
        self.offset += b.len() as u64;
    }
}

/// Pass 1 and 2: every entry parsed, inflated, hashed; every delta resolved.
fn parse(path: &Path, start: u64, body_end: u64, opts: &Options) -> Res<(Vec<Entry>, Externals)> {
    let mut f = crate::safe_fs::open_regular(path)?;
    f.seek(SeekFrom::Start(start))?;
    let mut c = Cursor {
        r: BufReader::with_capacity(1 << 20, f.take(body_end - start)),
        offset: 0,
        crc: Default::default(),
    };
    let mut head = [0u8; 12];
    c.r.read_exact(&mut head).map_err(|_| IndexError::Truncated { index: 0, count: 0 })?;
    c.offset = 12;
    if &head[..4] != b"PACK" {
        return Err(IndexError::NotAPack);
    }
    let version = u32::from_be_bytes(head[4..8].try_into().expect("4 bytes"));
    if version != 2 && version != 3 {
        return Err(IndexError::Version(version));
    }
    let count = u32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
    let mut entries: Vec<Entry> = Vec::with_capacity((count as usize).min(1 << 16));
    let mut ref_bases: HashMap<usize, Oid> = HashMap::new();
    let mut links = Links::default();
    let mut have: HashSet<Oid> = HashSet::new();
    let mut inflater = Inflater::new();
    for index in 0..count {
        let offset = c.offset;
        c.crc = crc32fast::Hasher::new();
        let bad = |problem: String| IndexError::Entry { index, offset, problem };
        let Some(first) = c.byte()? else { return Err(IndexError::Truncated { index, count }) };
        let kind = (first >> 4) & 7;
        let mut size = (first & 0x0f) as u64;
        let mut shift = 4;
        let mut b = first;
        while b & 0x80 != 0 {
            b = c.byte()?.ok_or(IndexError::Truncated { index, count })?;
            if shift > 57 {
                return Err(bad("its size does not fit in 64 bits".into()));
            }
            size |= ((b & 0x7f) as u64) << shift;
            shift += 7;
        }
        let mut base_offset = 0;
        match kind {
            1..=4 => {}
            6 => {
                let mut b = c.byte()?.ok_or(IndexError::Truncated { index, count })?;
                let mut rel = (b & 0x7f) as u64;
                while b & 0x80 != 0 {
                    b = c.byte()?.ok_or(IndexError::Truncated { index, count })?;
                    rel = rel
                        .checked_add(1)
                        .and_then(|r| r.checked_mul(128))
                        .map(|r| r | (b & 0x7f) as u64)
                        .filter(|r| *r < 1 << 62)
                        .ok_or_else(|| bad("its base offset does not fit in 64 bits".into()))?;
                }
                if rel == 0 || rel > offset {
                    return Err(bad(format!("its delta base is {rel} bytes back, not an object before it")));
                }
                base_offset = offset - rel;
            }
            7 => {
                let mut id = [0u8; 20];
                for x in id.iter_mut() {
                    *x = c.byte()?.ok_or(IndexError::Truncated { index, count })?;
                }
                ref_bases.insert(entries.len(), Oid::from_bytes(&id).expect("20 bytes"));
            }
            k => return Err(bad(format!("unknown entry type {k}"))),
        }
        let header_len = (c.offset - offset) as u8;
        let mut oid = None;
        if (1..=4).contains(&kind) {
            let k = kind_of(kind);
            let keep = opts.reads_links() && kind != 3;
            if keep && size > MAX_WHOLE {
                return Err(bad(too_big(&format!("a {}", k.name()), size)));
            }
            let mut h = objects::hasher(k, size);
            let mut data = Vec::new();
            let got = inflater.stream(&mut c, size, &mut |b| {
                h.update(b);
                if keep {
                    data.extend_from_slice(b);
                }
            });
            got.map_err(|e| match e {
                Stream::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    IndexError::Truncated { index, count }
                }
                e => bad(e.to_string()),
            })?;
            let id = objects::finish(h);
            if opts.reads_links() {
                have.insert(id);
                links.add(kind, id, &data);
            }
            oid = Some(id);
        } else {
            inflater.stream(&mut c, size, &mut |_| {}).map_err(|e| match e {
                Stream::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    IndexError::Truncated { index, count }
                }
                e => bad(e.to_string()),
            })?;
        }
        entries.push(Entry {
            offset,
            header_len,
            kind,
            size,
            base_offset,
            crc: c.crc.clone().finalize(),
            oid,
        });
    }
    let extra = (body_end - start) - c.offset;
    if extra > 0 {
        return Err(IndexError::Extra { count, extra });
    }
    let ext = resolve(path, start, &mut entries, &ref_bases, opts, &mut links, &mut have)?;
    if let (true, Some((tree, finding))) = (opts.reads_links(), links.unsafe_tree) {
        return Err(IndexError::UnsafeTree { tree, finding });
    }
    if opts.complete {
        if let Some((missing, by)) = links.need.iter().find(|(o, _)| !have.contains(o)) {
            return Err(IndexError::Incomplete { missing: *missing, by: *by });
        }
        if let Some((name, oid)) = opts.tips.iter().find(|(_, o)| !have.contains(o)) {
            return Err(IndexError::MissingTip { name: name.clone(), oid: *oid });
        }
    }
    Ok((entries, ext))
}

fn kind_of(k: u8) -> Kind {
    match k {
        1 => Kind::Commit,
        2 => Kind::Tree,
        4 => Kind::Tag,
        _ => Kind::Blob,
    }
}

/// Why a zlib stream was refused.
#[derive(Debug, thiserror::Error)]
enum Stream {
    #[error("{0}")]
    Io(io::Error),
    #[error("its zlib data is damaged ({0})")]
    Zlib(String),
    #[error("it inflates to more than the {0} bytes it declares")]
    TooLong(u64),
    #[error("it inflates to {got} bytes, not the {want} it declares")]
    TooShort { got: u64, want: u64 },
}

/// One zlib inflater reused for every entry (its state is reset, not reallocated).
struct Inflater {
    z: Decompress,
    out: Vec<u8>,
}

impl Inflater {
    fn new() -> Inflater {
        Inflater { z: Decompress::new(true), out: vec![0u8; 256 * 1024] }
    }

    /// Inflates one zlib stream from `c`, consuming exactly its bytes, handing the output to
    /// `sink`; it must come to `size` bytes.
    fn stream<R: BufRead>(
        &mut self,
        c: &mut Cursor<R>,
        size: u64,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Stream> {
        self.z.reset(true);
        let mut total = 0u64;
        loop {
            let input = c.r.fill_buf().map_err(Stream::Io)?;
            let eof = input.is_empty();
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let status = self
                .z
                .decompress(input, &mut self.out, FlushDecompress::None)
                .map_err(|e| Stream::Zlib(e.to_string()))?;
            let used = (self.z.total_in() - in0) as usize;
            let made = (self.z.total_out() - out0) as usize;
            c.crc.update(&input[..used]);
            c.offset += used as u64;
            c.r.consume(used);
            total += made as u64;
            if total > size {
                return Err(Stream::TooLong(size));
            }
            sink(&self.out[..made]);
            if status == Status::StreamEnd {
                break;
            }
            if used == 0 && made == 0 {
                if eof {
                    return Err(Stream::Io(io::ErrorKind::UnexpectedEof.into()));
                }
                return Err(Stream::Zlib("the stream does not progress".into()));
            }
        }
        if total != size {
            return Err(Stream::TooShort { got: total, want: size });
        }
        Ok(())
    }
}

/// Random access to the pack for pass 2: entries re-read by offset.
struct Pack<'a> {
    f: BufReader<File>,
    start: u64,
    inflater: Inflater,
    entries: &'a [Entry],
}

impl Pack<'_> {
    /// The inflated data of entry `i` (an object's content, or a delta's instructions).
    fn data(&mut self, i: usize) -> Res<Vec<u8>> {
        let e = &self.entries[i];
        if e.size > MAX_WHOLE {
            let problem = too_big("it is needed whole (a delta or its base)", e.size);
            return Err(IndexError::Entry { index: i as u32, offset: e.offset, problem });
        }
        let at = self.start + e.offset + e.header_len as u64;
        super::read::seek_to(&mut self.f, at)?;
        let mut c = Cursor { r: &mut self.f, offset: 0, crc: Default::default() };
        let mut out = Vec::with_capacity((e.size as usize).min(RESERVE_CAP));
        self.inflater
            .stream(&mut c, e.size, &mut |b| out.extend_from_slice(b))
            .map_err(|p| IndexError::Entry { index: i as u32, offset: e.offset, problem: p.to_string() })?;
        Ok(out)
    }
}

/// Pass 2: resolves every delta depth-first from the whole objects (and, for a thin pack, from
/// bases in the odb), hashing each result.
fn resolve(
    path: &Path,
    start: u64,
    entries: &mut [Entry],
    ref_bases: &HashMap<usize, Oid>,
    opts: &Options,
    links: &mut Links,
    have: &mut HashSet<Oid>,
) -> Res<Externals> {
    let mut ext = Externals::default();
    if ref_bases.is_empty() && entries.iter().all(|e| e.base_offset == 0) {
        return Ok(ext);
    }
    let mut ofs_children: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut ref_children: HashMap<Oid, Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if e.kind == 6 {
            if entries.binary_search_by_key(&e.base_offset, |x| x.offset).is_err() {
                return Err(IndexError::Entry {
                    index: i as u32,
                    offset: e.offset,
                    problem: format!("its delta base offset {} is not the start of an object", e.base_offset),
                });
            }
            ofs_children.entry(e.base_offset).or_default().push(i);
        }
    }
    let mut refs: Vec<(&usize, &Oid)> = ref_bases.iter().collect();
    refs.sort();
    for (i, base) in refs {
        ref_children.entry(*base).or_default().push(*i);
    }
    let roots: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].oid.is_some()).collect();
    let pack_file = BufReader::with_capacity(64 * 1024, crate::safe_fs::open_regular(path)?);
    let mut r = Resolver {
        kinds: entries.iter().map(|e| e.kind).collect(),
        oids: entries.iter().map(|e| e.oid).collect(),
        ofs_children,
        ref_children,
        opts,
        links,
        have,
        held: 0,
    };
    let mut pack = Pack { f: pack_file, start, inflater: Inflater::new(), entries };
    for root in roots {
        r.build_on(&mut pack, Node::Entry(root), None)?;
    }
    // Thin pack: what is left refers to objects outside it.
    let mut outside: Vec<Oid> = r.ref_children.keys().copied().collect();
    outside.sort();
    for base in outside {
        let found = match opts.odb {
            Some(odb) => odb.read(base).ok().map(|o| (o.kind(), o.data().to_vec())),
            None => None,
        };
        match found {
            Some((kind, data)) => {
                ext.used.push(base);
                let k = objects::Kind::of(kind) as u8;
                r.build_on(&mut pack, Node::Outside(k, base), Some(data))?;
            }
            None if opts.odb.is_none() && !opts.complete => {
                ext.unverified += r.ref_children.get(&base).map_or(0, |v| v.len() as u32);
                r.ref_children.remove(&base);
            }
            None => {
                let i = r.ref_children[&base][0];
                return Err(IndexError::MissingBase { offset: pack.entries[i].offset, base });
            }
        }
    }
    let (kinds, oids) = (r.kinds, r.oids);
    let unverified = ext.unverified > 0;
    for (i, e) in entries.iter_mut().enumerate() {
        match oids[i] {
            Some(o) => {
                e.oid = Some(o);
                e.kind = kinds[i];
            }
            None if unverified => {}
            None => return Err(IndexError::Loop { offset: e.offset }),
        }
    }
    Ok(ext)
}

/// A resolved object waiting for its children to be resolved: the node, its kind, its content
/// if kept (else re-read), its children, its depth in the chain.
type Pending = (Node, u8, Option<Vec<u8>>, Vec<usize>, usize);

/// A resolved object whose children are to be resolved.
#[derive(Clone, Copy)]
enum Node {
    Entry(usize),
    Outside(u8, Oid),
}

struct Resolver<'a, 'o> {
    kinds: Vec<u8>,
    oids: Vec<Option<Oid>>,
    ofs_children: HashMap<u64, Vec<usize>>,
    ref_children: HashMap<Oid, Vec<usize>>,
    opts: &'a Options<'o>,
    links: &'a mut Links,
    have: &'a mut HashSet<Oid>,
    held: usize,
}

impl Resolver<'_, '_> {
    fn children(&mut self, pack: &Pack, n: Node) -> Vec<usize> {
        let (offset, oid) = match n {
            Node::Entry(i) => (Some(pack.entries[i].offset), self.oids[i]),
            Node::Outside(_, o) => (None, Some(o)),
        };
        let mut out = offset.and_then(|o| self.ofs_children.remove(&o)).unwrap_or_default();
        if let Some(o) = oid {
            out.extend(self.ref_children.remove(&o).unwrap_or_default());
        }
        out
    }

    /// Resolves everything built on `base` (whose content is `data` if at hand), depth first.
    fn build_on(&mut self, pack: &mut Pack, base: Node, data: Option<Vec<u8>>) -> Res<()> {
        let first = self.children(pack, base);
        if first.is_empty() {
            return Ok(());
        }
        let kind = match base {
            Node::Entry(i) => self.kinds[i],
            Node::Outside(k, _) => k,
        };
        let mut stack: Vec<Pending> = vec![(base, kind, data, first, 0)];
        while let Some((node, kind, data, kids, depth)) = stack.pop() {
            if let Some(d) = &data {
                self.held -= d.len().min(self.held);
            }
            let base_data = match data {
                Some(d) => d,
                None => self.load(pack, node)?,
            };
            for k in kids {
                let offset = pack.entries[k].offset;
                if depth + 1 > MAX_DEPTH {
                    return Err(IndexError::TooDeep { offset });
                }
                let delta = pack.data(k)?;
                let out = apply(&base_data, &delta).map_err(|p| IndexError::Entry {
                    index: k as u32,
                    offset,
                    problem: p,
                })?;
                let oid = objects::hash(kind_of(kind), &out);
                self.kinds[k] = kind;
                self.oids[k] = Some(oid);
                if self.opts.reads_links() {
                    self.have.insert(oid);
                    self.links.add(kind, oid, &out);
                }
                let grand = self.children(pack, Node::Entry(k));
                if !grand.is_empty() {
                    let keep = self.held + out.len() <= KEEP_BUDGET;
                    if keep {
                        self.held += out.len();
                    }
                    stack.push((Node::Entry(k), kind, keep.then_some(out), grand, depth + 1));
                }
            }
        }
        Ok(())
    }

    /// Rebuilds a resolved object's content from the pack (or the odb).
    fn load(&mut self, pack: &mut Pack, node: Node) -> Res<Vec<u8>> {
        let mut chain = Vec::new();
        let mut at = match node {
            Node::Outside(_, o) => return self.outside(o),
            Node::Entry(i) => i,
        };
        loop {
            let e = &pack.entries[at];
            if chain.len() > MAX_DEPTH {
                return Err(IndexError::TooDeep { offset: e.offset });
            }
            match e.kind {
                6 => {
                    chain.push(at);
                    at = pack
                        .entries
                        .binary_search_by_key(&e.base_offset, |x| x.offset)
                        .expect("checked in resolve");
                }
                7 => {
                    chain.push(at);
                    // A ref delta in the middle of a chain: its base resolved before it.
                    let base = self.base_of_ref(pack, at)?;
                    match self.oids.iter().position(|o| *o == Some(base)) {
                        Some(j) => at = j,
                        None => {
                            let base = self.outside(base)?;
                            return apply_chain(pack, base, &chain);
                        }
                    }
                }
                _ => break,
            }
        }
        let base = pack.data(at)?;
        apply_chain(pack, base, &chain)
    }

    /// The base id a ref delta names (read again from its header).
    fn base_of_ref(&mut self, pack: &mut Pack, i: usize) -> Res<Oid> {
        let e = &pack.entries[i];
        let at = pack.start + e.offset + e.header_len as u64 - 20;
        super::read::seek_to(&mut pack.f, at)?;
        let mut id = [0u8; 20];
        pack.f.read_exact(&mut id)?;
        Ok(Oid::from_bytes(&id).expect("20 bytes"))
    }

    fn outside(&self, o: Oid) -> Res<Vec<u8>> {
        let odb = self.opts.odb.ok_or_else(|| io::Error::other(format!("object {o} is not here")))?;
        Ok(odb.read(o).map_err(|e| io::Error::other(e.message().to_string()))?.data().to_vec())
    }
}

/// Reads a delta's size varint.
fn varint(d: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *d.get(*at).ok_or("its delta ends inside a size")?;
        *at += 1;
        if shift > 63 {
            return Err("a delta size does not fit in 64 bits".into());
        }
        v |= ((b & 0x7f) as u64) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
}

/// Applies a git delta to `base`.
pub fn apply(base: &[u8], d: &[u8]) -> Result<Vec<u8>, String> {
    let mut at = 0;
    let src = varint(d, &mut at)?;
    let dst = varint(d, &mut at)?;
    if dst > MAX_WHOLE {
        return Err(too_big("its delta would build an object", dst));
    }
    if src != base.len() as u64 {
        return Err(format!("its delta expects a base of {src} bytes, the base has {}", base.len()));
    }
    let mut out = Vec::with_capacity((dst as usize).min(RESERVE_CAP));
    while at < d.len() {
        let cmd = d[at];
        at += 1;
        if cmd & 0x80 != 0 {
            let mut off = 0u64;
            let mut n = 0u64;
            for bit in 0..4 {
                if cmd & (1 << bit) != 0 {
                    off |= (*d.get(at).ok_or("its delta ends inside a copy")? as u64) << (8 * bit);
                    at += 1;
                }
            }
            for bit in 0..3 {
                if cmd & (0x10 << bit) != 0 {
                    n |= (*d.get(at).ok_or("its delta ends inside a copy")? as u64) << (8 * bit);
                    at += 1;
                }
            }
            if n == 0 {
                n = 0x10000;
            }
            let end = off + n;
            if end > base.len() as u64 {
                return Err("its delta copies from beyond its base".into());
            }
            if out.len() as u64 + n > dst {
                return Err("its delta makes more than the size it declares".into());
            }
            out.extend_from_slice(&base[off as usize..end as usize]);
        } else if cmd != 0 {
            let n = cmd as usize;
            let lit = d.get(at..at + n).ok_or("its delta ends inside an insert")?;
            at += n;
            if (out.len() + n) as u64 > dst {
                return Err("its delta makes more than the size it declares".into());
            }
            out.extend_from_slice(lit);
        } else {
            return Err("its delta has a reserved instruction (0)".into());
        }
    }
    if out.len() as u64 != dst {
        return Err(format!("its delta makes {} bytes, not the {dst} it declares", out.len()));
    }
    Ok(out)
}

/// Completes the written copy (a thin pack gets its outside bases appended), then installs it
/// with its index: pack renamed into place, `.idx` written last.
fn install(dir: &Path, tmp: &Path, entries: &mut [Entry], ext: &Externals, opts: &Options) -> Res<String> {
    let mut file = OpenOptions::new().read(true).write(true).open(tmp)?;
    let mut idx: Vec<super::write::IdxEntry> = entries
        .iter()
        .map(|e| super::write::IdxEntry {
            oid: e.oid.expect("every object resolved before install"),
            crc: e.crc,
            offset: e.offset,
        })
        .collect();
    let sum: [u8; 20] = if ext.used.is_empty() {
        file.seek(SeekFrom::End(-20))?;
        let mut s = [0u8; 20];
        file.read_exact(&mut s)?;
        s
    } else {
        let odb = opts.odb.expect("outside bases come from the odb");
        let len = file.metadata()?.len() - 20;
        file.set_len(len)?;
        file.seek(SeekFrom::Start(len))?;
        let mut offset = len;
        let mut w = BufWriter::new(&mut file);
        for o in &ext.used {
            let obj = odb.read(*o).map_err(|e| io::Error::other(e.message().to_string()))?;
            let header = super::write::entry_header(Kind::of(obj.kind()), obj.data().len() as u64);
            let z = super::write::compress(obj.data());
            let mut crc = crc32fast::Hasher::new();
            crc.update(&header);
            crc.update(&z);
            w.write_all(&header)?;
            w.write_all(&z)?;
            idx.push(super::write::IdxEntry { oid: *o, crc: crc.finalize(), offset });
            offset += (header.len() + z.len()) as u64;
        }
        w.flush()?;
        drop(w);
        file.seek(SeekFrom::Start(8))?;
        file.write_all(&(idx.len() as u32).to_be_bytes())?;
        file.seek(SeekFrom::Start(0))?;
        let mut h = Sha1::new();
        let mut r = BufReader::with_capacity(1 << 20, (&mut file).take(offset));
        loop {
            let buf = r.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            h.update(buf);
            let n = buf.len();
            r.consume(n);
        }
        let s: [u8; 20] = h.finalize().into();
        file.seek(SeekFrom::End(0))?;
        file.write_all(&s)?;
        s
    };
    file.sync_all()?;
    drop(file);
    let name = hex::encode(sum);
    let bytes = super::write::index_bytes(&mut idx, &sum);
    super::write::install(dir, tmp, &name, &bytes)?;
    Ok(name)
}

/// Applies the deltas of `chain` (outermost first, as [`Resolver::load`] collects them) to
/// `base`, innermost first; a delta that does not apply names its entry.
fn apply_chain(pack: &mut Pack, base: Vec<u8>, chain: &[usize]) -> Res<Vec<u8>> {
    let mut data = base;
    for &k in chain.iter().rev() {
        let d = pack.data(k)?;
        data = apply(&data, &d).map_err(|p| IndexError::Entry {
            index: k as u32,
            offset: pack.entries[k].offset,
            problem: p,
        })?;
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::pack::{compress, entry_header};
    use proptest::prelude::*;

    /// A pack of these raw entries, `count` declared, with its trailer.
    fn pack(entries: &[Vec<u8>], count: u32) -> Vec<u8> {
        let mut b = b"PACK\0\0\0\x02".to_vec();
        b.extend_from_slice(&count.to_be_bytes());
        for e in entries {
            b.extend_from_slice(e);
        }
        let sum: [u8; 20] = Sha1::digest(&b).into();
        b.extend_from_slice(&sum);
        b
    }

    fn whole(kind: Kind, data: &[u8]) -> Vec<u8> {
        let mut e = entry_header(kind, data.len() as u64);
        e.extend(compress(data));
        e
    }

    /// A delta header of type 6 (offset) `rel` bytes back, or 7 (ref) against `base`.
    fn delta_entry(rel: Option<u64>, base: Option<Oid>, delta: &[u8]) -> Vec<u8> {
        let mut e = entry_header(Kind::Blob, delta.len() as u64);
        e[0] = (e[0] & 0x8f) | if rel.is_some() { 6 << 4 } else { 7 << 4 };
        if let Some(mut n) = rel {
            let mut v = vec![(n & 127) as u8];
            n >>= 7;
            while n > 0 {
                n -= 1;
                v.insert(0, 0x80 | (n & 127) as u8);
                n >>= 7;
            }
            e.extend(v);
        }
        if let Some(b) = base {
            e.extend_from_slice(b.as_bytes());
        }
        e.extend(compress(delta));
        e
    }

    fn size_varint(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    /// A delta that copies all of a `base_len`-byte base, then inserts `tail`.
    fn copy_then_insert(base_len: u64, tail: &[u8]) -> Vec<u8> {
        let mut d = Vec::new();
        size_varint(base_len, &mut d);
        size_varint(base_len + tail.len() as u64, &mut d);
        d.extend([0x80 | 0x10 | 0x20, (base_len & 0xff) as u8, (base_len >> 8) as u8]);
        d.push(tail.len() as u8);
        d.extend_from_slice(tail);
        d
    }

    fn index(bytes: &[u8], complete: bool) -> Res<Indexed> {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("x.pack");
        std::fs::write(&p, bytes).expect("write");
        index_file(&p, 0, &Options { complete, ..Default::default() })
    }

    const BASE: &[u8] = b"a note with enough text to be worth a delta\n";

    fn with_delta() -> (Vec<Vec<u8>>, Oid) {
        let base = whole(Kind::Blob, BASE);
        let d = delta_entry(Some(base.len() as u64), None, &copy_then_insert(BASE.len() as u64, b"more\n"));
        let want = objects::hash(Kind::Blob, &[BASE, b"more\n"].concat());
        (vec![base, d], want)
    }

    #[test]
    fn deltas_resolve_and_are_hashed() {
        let (entries, want) = with_delta();
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("x.pack");
        std::fs::write(&p, pack(&entries, 2)).expect("write");
        let packs = dir.path().join("pack");
        let got =
            index_file(&p, 0, &Options { write_to: Some(&packs), ..Default::default() }).expect("indexed");
        assert_eq!(got.objects, 2);
        let idx =
            super::super::read::read_index(&packs.join(format!("pack-{}.idx", got.name.expect("named"))))
                .expect("our idx reads back");
        assert!(idx.iter().any(|e| e.oid == want), "the delta's result is indexed under its id");
    }

    /// A delta bomb: a 64 KiB base and a delta of a few hundred bytes declaring 8 GiB (it
    /// aborted the process, out of memory); a commit declaring 1 GiB, which a complete read
    /// would hold whole. Both refused from their headers, naming the cap.
    #[test]
    fn an_object_declared_too_big_to_hold_is_refused_before_it_is_built() {
        let base = whole(Kind::Blob, &vec![b'x'; 65536]);
        let mut d = Vec::new();
        size_varint(65536, &mut d);
        size_varint(8 << 30, &mut d);
        d.extend(std::iter::repeat_n(0x80u8, 200));
        let bomb = delta_entry(Some(base.len() as u64), None, &d);
        let e = index(&pack(&[base, bomb], 2), false).expect_err("a delta bomb");
        assert!(
            e.to_string()
                .contains("its delta would build an object of 8589934592 bytes, more than the 512 MiB"),
            "{e}"
        );
        let mut commit = entry_header(Kind::Commit, 1 << 30);
        commit.extend(compress(b"tree 0\n"));
        let e = index(&pack(&[commit], 1), true).expect_err("a huge commit");
        assert!(e.to_string().contains("a commit of 1073741824 bytes, more than"), "{e}");
    }

    /// A complete read (check's full bundles) validates every tree like git's fsck, as unbundle
    /// does: a tree naming `..` passed check while drill and recover refused it.
    #[test]
    fn a_complete_read_refuses_a_tree_that_is_unsafe_to_restore() {
        let blob = whole(Kind::Blob, b"pwned");
        let blob_id = objects::hash(Kind::Blob, b"pwned");
        let mut tree = b"100644 ..\0".to_vec();
        tree.extend_from_slice(blob_id.as_bytes());
        let tree_id = objects::hash(Kind::Tree, &tree);
        let commit = format!("tree {tree_id}\nauthor a <a> 0 +0000\ncommitter a <a> 0 +0000\n\nx\n");
        let entries = [blob, whole(Kind::Tree, &tree), whole(Kind::Commit, commit.as_bytes())];
        let e = index(&pack(&entries, 3), true).expect_err("an unsafe tree");
        assert!(e.to_string().contains(&format!("tree {tree_id} is unsafe to restore")), "{e}");
        assert!(e.to_string().contains("`..`"), "{e}");
        index(&pack(&entries, 3), false).expect("an incomplete read does not parse trees");
        // Asked for (check's incremental bundles), the trees of an incomplete read are checked.
        let p = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(p.path(), pack(&entries, 3)).expect("write");
        let e = index_file(p.path(), 0, &Options { trees: true, ..Default::default() }).expect_err("unsafe");
        assert!(e.to_string().contains("`..`"), "{e}");
    }

    #[test]
    fn a_truncated_pack_is_refused() {
        let (entries, _) = with_delta();
        let b = pack(&entries, 2);
        let e = index(&b[..b.len() - 30], false).expect_err("truncated");
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn a_flipped_byte_inside_an_entry_is_refused() {
        // The trailer is made after the flip: the entry's own checks must catch it.
        let (mut entries, _) = with_delta();
        entries[0][5] ^= 0x40;
        let e = index(&pack(&entries, 2), false).expect_err("damaged");
        assert!(e.to_string().starts_with("object 0 (offset 12)"), "{e}");
    }

    #[test]
    fn a_wrong_trailer_is_refused() {
        let (entries, _) = with_delta();
        let mut b = pack(&entries, 2);
        let n = b.len();
        b[n - 1] ^= 1;
        let e = index(&b, false).expect_err("trailer");
        assert!(matches!(e, IndexError::Trailer), "{e}");
    }

    #[test]
    fn a_count_mismatch_is_refused() {
        let (entries, _) = with_delta();
        let e = index(&pack(&entries, 3), false).expect_err("more declared");
        assert!(e.to_string().contains("ends inside object 2 of the 3"), "{e}");
        let e = index(&pack(&entries, 1), false).expect_err("fewer declared");
        assert!(e.to_string().contains("more than the 1 objects"), "{e}");
    }

    #[test]
    fn a_huge_declared_size_is_refused_without_allocating_it() {
        for kind in [Kind::Blob, Kind::Tree] {
            let mut e = entry_header(kind, 1 << 50);
            e.extend(compress(b"small"));
            let err = index(&pack(&[e], 1), true).expect_err("huge");
            // A blob streams (its size is checked against what inflates); a tree would be held
            // whole for its links, so its header alone is refused.
            let want = match kind {
                Kind::Tree => "a tree of 1125899906842624 bytes, more than the 512 MiB",
                _ => "not the 1125899906842624 it declares",
            };
            assert!(err.to_string().contains(want), "{err}");
        }
        // A delta declaring a huge result.
        let base = whole(Kind::Blob, BASE);
        let mut d = Vec::new();
        size_varint(BASE.len() as u64, &mut d);
        size_varint(1 << 50, &mut d);
        d.extend([1, b'x']);
        let err = index(&pack(&[base.clone(), delta_entry(Some(base.len() as u64), None, &d)], 2), false)
            .expect_err("huge delta");
        assert!(
            err.to_string().contains("its delta would build an object of 1125899906842624 bytes"),
            "{err}"
        );
    }

    #[test]
    fn self_referencing_and_looping_deltas_are_refused() {
        let d = copy_then_insert(BASE.len() as u64, b"x");
        // An offset delta pointing at itself (0 bytes back) or into the middle of an entry.
        let base = whole(Kind::Blob, BASE);
        let e = index(&pack(&[base.clone(), delta_entry(Some(0), None, &d)], 2), false).expect_err("self");
        assert!(e.to_string().contains("not an object before it"), "{e}");
        let e = index(&pack(&[base.clone(), delta_entry(Some(base.len() as u64 - 2), None, &d)], 2), false)
            .expect_err("middle");
        assert!(e.to_string().contains("not the start of an object"), "{e}");
        // Two ref deltas each naming the other's id (what each would be), and one naming itself.
        let a = objects::hash(Kind::Blob, b"a");
        let b = objects::hash(Kind::Blob, b"b");
        let e = index(&pack(&[delta_entry(None, Some(b), &d), delta_entry(None, Some(a), &d)], 2), true)
            .expect_err("loop");
        assert!(e.to_string().contains("does not hold"), "{e}");
    }

    #[test]
    fn a_full_pack_must_be_complete() {
        let blob = objects::hash(Kind::Blob, b"absent");
        let tree = objects::tree_bytes(&[objects::TreeEntry {
            name: b"a.md".to_vec(),
            mode: objects::MODE_FILE,
            oid: blob,
        }]);
        let e = index(&pack(&[whole(Kind::Tree, &tree)], 1), true).expect_err("incomplete");
        assert!(e.to_string().contains(&format!("incomplete: {blob}")), "{e}");
        index(&pack(&[whole(Kind::Tree, &tree)], 1), false).expect("an incremental pack may name others");
        index(&pack(&[whole(Kind::Tree, &tree), whole(Kind::Blob, b"absent")], 2), true).expect("complete");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = index(&data, true);
        }

        #[test]
        fn a_valid_header_and_junk_never_panic(
            n in prop_oneof![0u32..4, any::<u32>()],
            body in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut b = b"PACK\0\0\0\x02".to_vec();
            b.extend_from_slice(&n.to_be_bytes());
            b.extend_from_slice(&body);
            let sum: [u8; 20] = Sha1::digest(&b).into();
            b.extend_from_slice(&sum);
            let _ = index(&b, true);
        }

        #[test]
        fn damaged_real_packs_never_panic(at in 0usize..200, bit in 0u8..8, cut in 0usize..40) {
            let (entries, _) = with_delta();
            let mut b = pack(&entries, 2);
            let at = at % b.len();
            b[at] ^= 1 << bit;
            let len = b.len() - cut.min(b.len());
            let _ = index(&b[..len], true);
        }
    }
}
