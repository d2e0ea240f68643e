//! Making git deltas: an edited note is stored as the instructions that rebuild it from its
//! other version (copy these bytes of the base, insert these new ones), in git's own delta
//! format, so stock git and libgit2 read it (`git fsck --full`). Applying one is
//! [`crate::git::pack::index::apply`], which also checks every delta we write before it is
//! stored.
//!
//! The matcher is the simple half of git's `diff-delta.c`: the base is indexed in 16-byte
//! blocks, the target is scanned byte by byte for a block that occurs in the base, and every
//! hit is extended both ways. Notes are small and edits local (an appended paragraph, a changed
//! line), so this finds nearly everything git's rolling-hash version finds.

use std::collections::HashMap;

/// Bytes per indexed block of the base: a match shorter than this is not found.
const BLOCK: usize = 16;
/// Git's delta format carries at most 127 literal bytes per insert instruction.
const MAX_INSERT: usize = 127;
/// Copies longer than this are split. Git's format allows 24-bit sizes; 64 KiB is what git's
/// own encoder emits, so every reader takes it.
const MAX_COPY: usize = 0xffff;

/// The delta that rebuilds `target` from `base`. Always valid; whether it is worth storing
/// (much smaller than `target`) is the caller's choice.
pub fn encode(base: &[u8], target: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + target.len() / 16);
    varint(&mut out, base.len() as u64);
    varint(&mut out, target.len() as u64);
    let index = block_index(base);
    let mut lit_start = 0;
    let mut p = 0;
    while p + BLOCK <= target.len() && !index.is_empty() {
        let Some(&o) = index.get(&block_hash(&target[p..p + BLOCK])) else {
            p += 1;
            continue;
        };
        let o = o as usize;
        if base[o..o + BLOCK] != target[p..p + BLOCK] {
            p += 1;
            continue;
        }
        let mut len = BLOCK;
        while o + len < base.len() && p + len < target.len() && base[o + len] == target[p + len] {
            len += 1;
        }
        // Grow the match backwards into the bytes not yet emitted.
        let mut back = 0;
        while back < p - lit_start && back < o && base[o - back - 1] == target[p - back - 1] {
            back += 1;
        }
        insert(&mut out, &target[lit_start..p - back]);
        copy(&mut out, o - back, len + back);
        p += len;
        lit_start = p;
    }
    insert(&mut out, &target[lit_start..]);
    out
}

/// Where each 16-byte block of `base` starts, by the block's hash (the first occurrence wins:
/// repeated blocks are copied from one place as well as another).
fn block_index(base: &[u8]) -> HashMap<u64, u32> {
    let mut index = HashMap::with_capacity(base.len() / BLOCK + 1);
    if base.len() > u32::MAX as usize {
        return index; // never asked for: deltas are only made of small blobs
    }
    for at in (0..base.len().saturating_sub(BLOCK - 1)).step_by(BLOCK) {
        index.entry(block_hash(&base[at..at + BLOCK])).or_insert(at as u32);
    }
    index
}

fn block_hash(b: &[u8]) -> u64 {
    let lo = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
    let hi = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
    (lo ^ hi.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn insert(out: &mut Vec<u8>, lit: &[u8]) {
    for chunk in lit.chunks(MAX_INSERT) {
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
}

fn copy(out: &mut Vec<u8>, mut offset: usize, mut len: usize) {
    while len > 0 {
        let n = len.min(MAX_COPY);
        let at = out.len();
        out.push(0x80);
        for bit in 0..4 {
            let b = (offset >> (8 * bit)) as u8;
            if b != 0 {
                out[at] |= 1 << bit;
                out.push(b);
            }
        }
        for bit in 0..3 {
            let b = (n >> (8 * bit)) as u8;
            if b != 0 {
                out[at] |= 0x10 << bit;
                out.push(b);
            }
        }
        offset += n;
        len -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::pack::index::apply;
    use proptest::prelude::*;

    fn note(lines: usize) -> Vec<u8> {
        (0..lines)
            .map(|i| format!("- [[note {i}]] a line of the vault about topic {}\n", i * 7))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn an_appended_note_costs_about_what_was_appended() {
        let base = note(200);
        let mut target = base.clone();
        target.extend_from_slice(b"\n## A new section\nwritten in this session.\n");
        let d = encode(&base, &target);
        assert_eq!(apply(&base, &d).expect("applies"), target);
        assert!(d.len() < 80, "{} bytes of delta for a 43-byte append", d.len());
    }

    #[test]
    fn a_changed_line_in_the_middle_is_a_small_delta() {
        let base = note(500);
        let mut target = base.clone();
        let mid = target.len() / 2;
        target.splice(mid..mid + 10, b"EDITED TEXT HERE".iter().copied());
        let d = encode(&base, &target);
        assert_eq!(apply(&base, &d).expect("applies"), target);
        assert!(d.len() < 100, "{} bytes", d.len());
    }

    #[test]
    fn edge_cases_still_rebuild_the_target() {
        for (base, target) in
            [(&b""[..], &b""[..]), (b"", b"new"), (b"old content that goes", b""), (b"short", b"short")]
        {
            assert_eq!(apply(base, &encode(base, target)).expect("applies"), target);
        }
        // Copies longer than one instruction are split.
        let big = vec![7u8; 300_000];
        let d = encode(&big, &big);
        assert_eq!(apply(&big, &d).expect("applies"), big);
        assert!(d.len() < 64);
    }

    proptest! {
        #[test]
        fn any_pair_round_trips(
            base in proptest::collection::vec(0u8..4, 0..3000),
            edits in proptest::collection::vec((0usize..3000, proptest::collection::vec(any::<u8>(), 0..40)), 0..6),
        ) {
            // Targets that share most of the base, the case deltas are made for, and ones that don't.
            let mut target = base.clone();
            for (at, bytes) in edits {
                let at = at.min(target.len());
                target.splice(at..at, bytes);
            }
            prop_assert_eq!(apply(&base, &encode(&base, &target)).expect("applies"), target.clone());
            prop_assert_eq!(apply(&target, &encode(&target, &base)).expect("applies"), base);
        }
    }
}
