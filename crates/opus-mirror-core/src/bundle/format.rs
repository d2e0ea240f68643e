//! The git bundle header (gitformat-bundle): a signature line, optional capabilities (v3),
//! prerequisite lines `-<oid> <comment>`, ref lines `<oid> <refname>`, a blank line; the pack
//! follows. Pure parsing and writing, no I/O beyond the reader given.

use std::io::BufRead;

use git2::Oid;

pub const V2: &str = "# v2 git bundle";
pub const V3: &str = "# v3 git bundle";

/// The longest header line we read: a ref line is 41 bytes plus a ref name; a longer line
/// is not a header we wrote, and reading it whole could take any amount of memory.
pub const MAX_LINE: usize = 64 * 1024;

/// A parsed bundle header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    pub version: u8,
    /// v3 capabilities, e.g. `object-format=sha1`.
    pub capabilities: Vec<String>,
    /// Commits the receiving repository must already have.
    pub prerequisites: Vec<(Oid, String)>,
    /// The refs the bundle carries, in file order (`HEAD` included when present).
    pub refs: Vec<(String, Oid)>,
}

/// Why a header could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("not a git bundle (first line is {0:?})")]
    NotABundle(String),
    #[error("line {line}: {problem}")]
    Malformed { line: usize, problem: String },
    #[error("unsupported bundle capability `{0}` (this reader handles sha1 bundles only)")]
    Unsupported(String),
    #[error("the header ends before the blank line that precedes the pack")]
    Truncated,
}

impl Header {
    /// Serialises the header, blank line included. Writes v3 only when capabilities exist.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::new();
        s.push_str(if self.capabilities.is_empty() { V2 } else { V3 });
        s.push('\n');
        for c in &self.capabilities {
            s.push_str(&format!("@{c}\n"));
        }
        for (oid, comment) in &self.prerequisites {
            if comment.is_empty() {
                s.push_str(&format!("-{oid}\n"));
            } else {
                s.push_str(&format!("-{oid} {comment}\n"));
            }
        }
        for (name, oid) in &self.refs {
            s.push_str(&format!("{oid} {name}\n"));
        }
        s.push('\n');
        s.into_bytes()
    }

    /// Reads a header from `r`, leaving `r` at the first byte of the pack. Returns the
    /// header and its length in bytes.
    pub fn read(r: &mut dyn BufRead) -> Result<(Header, u64), HeaderError> {
        let mut h = Header::default();
        let mut consumed = 0u64;
        let mut line = Vec::new();
        let mut n = 0;
        loop {
            line.clear();
            let got = std::io::Read::take(&mut *r, MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|_| HeaderError::Truncated)?;
            if got == 0 {
                return Err(HeaderError::Truncated);
            }
            consumed += got as u64;
            n += 1;
            if got > MAX_LINE {
                let start = String::from_utf8_lossy(&line[..40]).into_owned();
                return Err(match n {
                    1 => HeaderError::NotABundle(start),
                    _ => HeaderError::Malformed {
                        line: n,
                        problem: format!("a line longer than {MAX_LINE} bytes"),
                    },
                });
            }
            if line.last() != Some(&b'\n') {
                return Err(HeaderError::Truncated);
            }
            line.pop();
            let text = String::from_utf8_lossy(&line).to_string();
            if n == 1 {
                h.version = match text.as_str() {
                    V2 => 2,
                    V3 => 3,
                    _ => return Err(HeaderError::NotABundle(text.chars().take(40).collect())),
                };
                continue;
            }
            if text.is_empty() {
                return Ok((h, consumed));
            }
            let bad = |problem: &str| HeaderError::Malformed { line: n, problem: problem.into() };
            if let Some(cap) = text.strip_prefix('@') {
                if h.version != 3 {
                    return Err(bad("capability line in a v2 bundle"));
                }
                if cap.starts_with("object-format=") && cap != "object-format=sha1" {
                    return Err(HeaderError::Unsupported(cap.to_string()));
                }
                h.capabilities.push(cap.to_string());
            } else if let Some(rest) = text.strip_prefix('-') {
                let (oid, comment) = rest.split_once(' ').unwrap_or((rest, ""));
                if oid.len() != 40 {
                    return Err(bad("bad prerequisite object id"));
                }
                let oid = Oid::from_str(oid).map_err(|_| bad("bad prerequisite object id"))?;
                h.prerequisites.push((oid, comment.to_string()));
            } else {
                let (oid, name) = text.split_once(' ').ok_or_else(|| bad("expected `<oid> <refname>`"))?;
                if oid.len() != 40 {
                    return Err(bad("bad object id"));
                }
                let oid = Oid::from_str(oid).map_err(|_| bad("bad object id"))?;
                h.refs.push((name.to_string(), oid));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn oid(c: char) -> Oid {
        Oid::from_str(&c.to_string().repeat(40)).unwrap()
    }

    #[test]
    fn round_trips() {
        let h = Header {
            version: 2,
            capabilities: vec![],
            prerequisites: vec![(oid('a'), "base".into())],
            refs: vec![("HEAD".into(), oid('b')), ("refs/heads/main".into(), oid('b'))],
        };
        let bytes = h.to_bytes();
        let mut with_pack = bytes.clone();
        with_pack.extend_from_slice(b"PACK...");
        let (back, n) = Header::read(&mut &with_pack[..]).unwrap();
        assert_eq!(back, h);
        assert_eq!(n as usize, bytes.len());
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(matches!(Header::read(&mut &b"hello\n"[..]), Err(HeaderError::NotABundle(_))));
        assert_eq!(
            Header::read(&mut format!("# v2 git bundle\n{} refs/x\n", "a".repeat(40)).as_bytes())
                .unwrap_err(),
            HeaderError::Truncated
        );
        let v3 = format!("# v3 git bundle\n@object-format=sha256\n{} refs/heads/m\n\n", "b".repeat(64));
        assert!(matches!(Header::read(&mut v3.as_bytes()), Err(HeaderError::Unsupported(_))));
        let bad = b"# v2 git bundle\nnot-an-oid refs/heads/m\n\n";
        assert!(matches!(Header::read(&mut &bad[..]), Err(HeaderError::Malformed { line: 2, .. })));
    }

    #[test]
    fn a_short_prerequisite_id_is_malformed() {
        // libgit2 would read `-ab` as the abbreviation ab00000…: a bundle we never wrote.
        let short = b"# v2 git bundle\n-ab base\n\n";
        assert!(matches!(Header::read(&mut &short[..]), Err(HeaderError::Malformed { line: 2, .. })));
    }

    #[test]
    fn an_endless_line_is_not_read_into_memory() {
        let mut big = std::io::BufReader::new(std::io::repeat(b'a').take(64 << 20));
        assert!(matches!(Header::read(&mut big), Err(HeaderError::NotABundle(_))));
        let mut left = 0u64;
        while let Ok(n) = std::io::Read::read(&mut big, &mut [0u8; 1 << 16]) {
            if n == 0 {
                break;
            }
            left += n as u64;
        }
        assert!(
            left >= (64 << 20) - 2 * MAX_LINE as u64,
            "the header reader read {} bytes",
            (64 << 20) - left
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = Header::read(&mut &data[..]);
        }

        #[test]
        fn a_header_prefix_with_any_lines_never_panics(lines in proptest::collection::vec("[-@# a-f0-9/=\\PC]{0,60}", 0..8)) {
            let text = format!("# v3 git bundle\n{}\n\n", lines.join("\n"));
            if let Ok((h, n)) = Header::read(&mut text.as_bytes()) {
                proptest::prop_assert!(n as usize <= text.len());
                let (back, _) = Header::read(&mut &h.to_bytes()[..]).expect("what we write reads back");
                // The writer says v2 when there are no capabilities; the content is the same.
                proptest::prop_assert_eq!((back.capabilities, back.prerequisites, back.refs), (h.capabilities, h.prerequisites, h.refs));
            }
        }
    }
}
