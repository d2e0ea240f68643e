//! Reading, hashing and packing file contents: the hot path of a first snapshot. Small files
//! go through in chunks, read and hashed on every core, then the missing ones compressed on
//! every core and appended to the pack in order. Large files are streamed twice (hash, then
//! pack) so memory stays flat whatever their size.
//!
//! Every read is checked against the file's stat before and after: a file that changes while
//! being read is read again, and after three tries reported, never stored torn.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use git2::{Odb, Oid};
use rayon::prelude::*;

use super::walk::{FileRec, Skipped, Stat};
use crate::git::objects::{self, Kind};
use crate::git::pack::{self, PackWriter};
use crate::safe_fs::{self, OpenFail};

/// Files at least this big are streamed instead of read into memory.
pub const LARGE_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// How much file data one parallel chunk reads at most.
const CHUNK_BYTES: u64 = 32 * 1024 * 1024;
const CHUNK_FILES: usize = 4096;
const TRIES: usize = 3;

/// What hashing did, for the report and the benchmark.
#[derive(Debug, Default, Clone, Copy)]
pub struct HashStats {
    pub files: u64,
    pub bytes: u64,
    pub new_objects: u64,
}

/// Why a file's content could not be captured.
enum ReadFail {
    /// It is gone (deleted or renamed after the walk): nothing to back up.
    Vanished,
    Failed(String),
}

fn open_err(e: io::Error) -> ReadFail {
    if e.kind() == io::ErrorKind::NotFound {
        ReadFail::Vanished
    } else {
        ReadFail::Failed(format!("cannot read: {e}"))
    }
}

/// Opens what the walk found at `rel`, below the source root and through no symlink: a file
/// swapped for a link (to anything outside) or for a FIFO after the walk is not read.
fn open_walked(root: &OwnedFd, rel: &[u8]) -> Result<File, ReadFail> {
    safe_fs::open_beneath(root, rel).map_err(|e| match e {
        OpenFail::Gone => ReadFail::Vanished,
        OpenFail::Symlink => ReadFail::Failed("became a symlink after the walk; not stored".into()),
        OpenFail::NotRegular => ReadFail::Failed(
            "is no longer a regular file (a FIFO, socket or device took its place); not stored".into(),
        ),
        OpenFail::Other(e) => ReadFail::Failed(format!("cannot read: {e}")),
    })
}

/// Reads a whole file, retrying while its stat data moves under us.
fn read_stable(root: &OwnedFd, rel: &[u8]) -> Result<(Vec<u8>, Stat), ReadFail> {
    for _ in 0..TRIES {
        let mut f = open_walked(root, rel)?;
        let before = Stat::of(&f.metadata().map_err(open_err)?);
        let mut data = Vec::with_capacity(before.size as usize);
        f.read_to_end(&mut data).map_err(open_err)?;
        let after = Stat::of(&f.metadata().map_err(open_err)?);
        if before == after && data.len() as u64 == after.size {
            return Ok((data, after));
        }
    }
    Err(ReadFail::Failed(format!("changed while being read ({TRIES} tries)")))
}

/// Streams a file through SHA-1, retrying while it changes. Returns its id, stat, and the
/// compression level its first bytes call for.
fn hash_stream(root: &OwnedFd, rel: &[u8]) -> Result<(Oid, Stat, flate2::Compression), ReadFail> {
    for _ in 0..TRIES {
        let mut f = open_walked(root, rel)?;
        let before = Stat::of(&f.metadata().map_err(open_err)?);
        let mut h = objects::hasher(Kind::Blob, before.size);
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        let mut level = None;
        loop {
            let n = f.read(&mut buf).map_err(open_err)?;
            if n == 0 {
                break;
            }
            if level.is_none() {
                level = Some(pack::choose_level(&buf[..n]));
            }
            total += n as u64;
            sha1::Digest::update(&mut h, &buf[..n]);
        }
        let after = Stat::of(&f.metadata().map_err(open_err)?);
        if before == after && total == after.size {
            let level = level.unwrap_or(flate2::Compression::new(pack::LEVEL));
            return Ok((objects::finish(h), after, level));
        }
    }
    Err(ReadFail::Failed(format!("changed while being read ({TRIES} tries)")))
}

/// Fills `oid` of every file in `files`, writing missing blobs into `pack` when given.
/// Files that cannot be read keep `oid: None` and are listed in `skipped`.
pub(crate) fn hash_files(
    root: &Path,
    files: Vec<&mut FileRec>,
    odb: &Odb,
    mut pack: Option<&mut PackWriter>,
    skipped: &mut Vec<Skipped>,
    progress: &dyn crate::progress::Report,
) -> anyhow::Result<HashStats> {
    let mut stats = HashStats::default();
    let root = &safe_fs::open_dir(root)?;
    progress.total(files.iter().map(|f| f.stat.size).sum());
    let (large, small): (Vec<_>, Vec<_>) = files.into_iter().partition(|f| f.stat.size >= LARGE_FILE_BYTES);
    let mut chunk: Vec<&mut FileRec> = Vec::new();
    let mut chunk_bytes = 0;
    for f in small {
        chunk_bytes += f.stat.size;
        chunk.push(f);
        if chunk_bytes >= CHUNK_BYTES || chunk.len() >= CHUNK_FILES {
            hash_chunk(root, &mut chunk, odb, pack.as_deref_mut(), skipped, &mut stats)?;
            progress.advance(chunk_bytes);
            chunk.clear();
            chunk_bytes = 0;
        }
    }
    hash_chunk(root, &mut chunk, odb, pack.as_deref_mut(), skipped, &mut stats)?;
    progress.advance(chunk_bytes);
    for f in large {
        let size = f.stat.size;
        hash_large(root, f, odb, pack.as_deref_mut(), skipped, &mut stats)?;
        progress.advance(size);
    }
    Ok(stats)
}

fn note_failure(f: &FileRec, fail: ReadFail, skipped: &mut Vec<Skipped>) {
    match fail {
        ReadFail::Vanished => {
            tracing::debug!(path = %crate::human::display_path(&f.rel), "vanished during the snapshot")
        }
        ReadFail::Failed(reason) => {
            skipped.push(Skipped { path: crate::human::display_path(&f.rel), reason })
        }
    }
}

fn hash_chunk(
    root: &OwnedFd,
    chunk: &mut [&mut FileRec],
    odb: &Odb,
    pack: Option<&mut PackWriter>,
    skipped: &mut Vec<Skipped>,
    stats: &mut HashStats,
) -> anyhow::Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    let read: Vec<_> = chunk
        .par_iter()
        .map(|f| {
            read_stable(root, &f.rel).map(|(data, stat)| {
                let oid = objects::hash(Kind::Blob, &data);
                (oid, data, stat)
            })
        })
        .collect();
    let mut missing = Vec::new();
    let mut queued = std::collections::HashSet::new();
    for (f, r) in chunk.iter_mut().zip(read) {
        match r {
            Ok((oid, data, stat)) => {
                f.oid = Some(oid);
                f.stat = stat;
                stats.files += 1;
                stats.bytes += data.len() as u64;
                if let Some(p) = pack.as_deref() {
                    if !p.contains(&oid) && !queued.contains(&oid) && !odb.exists(oid) {
                        queued.insert(oid);
                        missing.push((oid, data));
                    }
                }
            }
            Err(fail) => note_failure(f, fail, skipped),
        }
    }
    if let Some(p) = pack {
        let compressed: Vec<_> =
            missing.par_iter().map(|(oid, data)| (*oid, data.len() as u64, pack::compress(data))).collect();
        for (oid, size, z) in compressed {
            p.add_compressed(oid, Kind::Blob, size, &z)?;
            stats.new_objects += 1;
        }
    }
    Ok(())
}

fn hash_large(
    root: &OwnedFd,
    f: &mut FileRec,
    odb: &Odb,
    mut pack: Option<&mut PackWriter>,
    skipped: &mut Vec<Skipped>,
    stats: &mut HashStats,
) -> anyhow::Result<()> {
    for _ in 0..TRIES {
        let (oid, stat, level) = match hash_stream(root, &f.rel) {
            Ok(r) => r,
            Err(fail) => {
                note_failure(f, fail, skipped);
                return Ok(());
            }
        };
        let Some(p) = pack.as_deref_mut() else {
            (f.oid, f.stat) = (Some(oid), stat);
            stats.files += 1;
            stats.bytes += stat.size;
            return Ok(());
        };
        if p.contains(&oid) || odb.exists(oid) {
            (f.oid, f.stat) = (Some(oid), stat);
            stats.files += 1;
            stats.bytes += stat.size;
            return Ok(());
        }
        let mut file = match open_walked(root, &f.rel) {
            Ok(file) => file,
            Err(fail) => {
                note_failure(f, fail, skipped);
                return Ok(());
            }
        };
        // The pack writer re-hashes what it streams; a file that changed since the first
        // pass is rolled back out of the pack and tried again.
        if p.add_stream(oid, Kind::Blob, stat.size, &mut file, level)?.is_some() {
            (f.oid, f.stat) = (Some(oid), stat);
            stats.files += 1;
            stats.bytes += stat.size;
            stats.new_objects += 1;
            return Ok(());
        }
    }
    note_failure(f, ReadFail::Failed(format!("changed while being read ({TRIES} tries)")), skipped);
    Ok(())
}
