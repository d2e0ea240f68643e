//! Writing a bundle's pack ourselves. libgit2 has no bundle API, and its PackBuilder inflates
//! and re-deflates every object; our backup repos store whole objects, so the pack entries
//! are copied byte for byte (each checked against its index CRC) and only objects that sit
//! in delta packs (code fetched from the user's repo) are re-read and compressed fresh.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};

use anyhow::{bail, Context, Result};
use git2::{ObjectType, Odb, Oid};
use sha1::{Digest, Sha1};

use crate::git::objects::{self, Kind, MODE_TREE};
use crate::git::pack;
use crate::git::pack::{read_index, seek_to};
use crate::hashio::DigestWriter;

/// Reads the ids an object points at: a commit's tree and parents, a tag's target.
pub fn links(kind: ObjectType, data: &[u8]) -> Vec<(Oid, Option<ObjectType>)> {
    let mut out = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        if line.is_empty() {
            break; // end of the headers: the message follows
        }
        let text = String::from_utf8_lossy(line);
        let (key, val) = text.split_once(' ').unwrap_or((&text, ""));
        let Ok(oid) = Oid::from_str(val.trim()) else { continue };
        match (kind, key) {
            (ObjectType::Commit, "tree") => out.push((oid, Some(ObjectType::Tree))),
            (ObjectType::Commit, "parent") => out.push((oid, Some(ObjectType::Commit))),
            (ObjectType::Tag, "object") => out.push((oid, None)),
            _ => {}
        }
    }
    out
}

/// Every object reachable from `tips` and not in `skip`, with its kind.
pub fn reachable(odb: &Odb, tips: &[Oid], skip: &HashSet<Oid>) -> Result<Vec<(Oid, ObjectType)>> {
    let mut seen: HashSet<Oid> = HashSet::new();
    let mut out = Vec::new();
    let mut stack: Vec<(Oid, Option<ObjectType>)> = tips.iter().map(|t| (*t, None)).collect();
    while let Some((oid, kind)) = stack.pop() {
        if skip.contains(&oid) || !seen.insert(oid) {
            continue;
        }
        let kind = match kind {
            Some(k) => k,
            None => {
                odb.read_header(oid)
                    .with_context(|| format!("object {oid} is missing from the backup repo"))?
                    .1
            }
        };
        match kind {
            ObjectType::Blob => {}
            ObjectType::Tree => {
                let obj =
                    odb.read(oid).with_context(|| format!("tree {oid} is missing from the backup repo"))?;
                let entries =
                    objects::parse_tree(obj.data()).with_context(|| format!("tree {oid} is malformed"))?;
                for e in entries {
                    match e.mode {
                        0o160000 => {} // a submodule commit: not ours to carry
                        MODE_TREE => stack.push((e.oid, Some(ObjectType::Tree))),
                        _ => stack.push((e.oid, Some(ObjectType::Blob))),
                    }
                }
            }
            ObjectType::Commit | ObjectType::Tag => {
                let obj =
                    odb.read(oid).with_context(|| format!("object {oid} is missing from the backup repo"))?;
                stack.extend(links(kind, obj.data()));
            }
            other => bail!("object {oid} has an unexpected type {other:?}"),
        }
        out.push((oid, kind));
    }
    Ok(out)
}

/// Where an object's whole entry sits in one of our packs.
#[derive(Clone, Copy)]
struct Loc {
    pack: usize,
    offset: u64,
    end: u64,
    crc: u32,
}

/// Writes a complete pack (header, entries, SHA-1 trailer) of `objs` into `out`.
pub(crate) fn write_pack(
    out: &mut dyn Write,
    odb: &Odb,
    pack_dir: &std::path::Path,
    objs: &[(Oid, ObjectType)],
) -> Result<()> {
    let packs = crate::git::pack::list_packs(pack_dir)?;
    let mut locs: HashMap<Oid, Loc> = HashMap::new();
    for (i, p) in packs.iter().enumerate() {
        let mut entries = read_index(&p.with_extension("idx"))?;
        entries.sort_by_key(|e| e.offset);
        let len = std::fs::metadata(p)?.len();
        for (j, e) in entries.iter().enumerate() {
            let end = entries.get(j + 1).map(|n| n.offset).unwrap_or(len - 20);
            locs.entry(e.oid).or_insert(Loc { pack: i, offset: e.offset, end, crc: e.crc });
        }
    }
    let wanted: HashSet<Oid> = objs.iter().map(|(o, _)| *o).collect();
    // Copy in pack order: sequential reads.
    let mut order: Vec<(Option<Loc>, Oid, ObjectType)> =
        objs.iter().map(|(o, k)| (locs.get(o).copied(), *o, *k)).collect();
    order.sort_by_key(|(l, _, _)| l.map(|l| (l.pack, l.offset)).unwrap_or((usize::MAX, 0)));

    let mut w: DigestWriter<_, Sha1> = DigestWriter::new(io::BufWriter::with_capacity(1 << 20, out));
    w.write_all(b"PACK")?;
    w.write_all(&2u32.to_be_bytes())?;
    w.write_all(&(objs.len() as u32).to_be_bytes())?;
    let mut readers: HashMap<usize, BufReader<File>> = HashMap::new();
    for (loc, oid, kind) in order {
        if let Some(l) = loc {
            let r = match readers.entry(l.pack) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(BufReader::with_capacity(1 << 20, File::open(&packs[l.pack])?))
                }
            };
            seek_to(r, l.offset)?;
            let head = pack::read_head(r)?;
            if head.copyable(|b| wanted.contains(b)) {
                let mut crc = crc32fast::Hasher::new();
                crc.update(&head.bytes);
                w.write_all(&head.bytes)?;
                let mut rest = r.by_ref().take((l.end - l.offset).saturating_sub(head.bytes.len() as u64));
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = rest.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    crc.update(&buf[..n]);
                    w.write_all(&buf[..n])?;
                }
                if crc.finalize() != l.crc {
                    bail!(
                        "pack {} is damaged at object {oid} (CRC mismatch); run `opus-mirror check`",
                        packs[l.pack].display()
                    );
                }
                continue;
            }
        }
        // A delta without its base here, or a loose object: read it whole and store it afresh.
        let obj = odb.read(oid).with_context(|| format!("object {oid} is missing from the backup repo"))?;
        let z = pack::compress(obj.data());
        w.write_all(&pack::entry_header(Kind::of(kind), obj.data().len() as u64))?;
        w.write_all(&z)?;
    }
    let sum: [u8; 20] = w.digest.clone().finalize().into();
    w.write_all(&sum)?;
    w.flush()?;
    Ok(())
}
