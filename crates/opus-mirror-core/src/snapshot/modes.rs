//! Permission bits, kept beside the tree. A git tree knows two file modes (644 and 755), so a
//! private note (0600) would come back as whatever the umask makes of 644. The snapshot commit
//! records the real bits in its message instead — three defaults (the most common mode of
//! plain files, of executables and of directories) and one line per exception — so stock
//! `git clone` sees an ordinary tree while `restore`, `drill` and `recover` bring back 0600 as
//! 0600.
//!
//! The lines are read back from a commit message, which a hostile backup controls: parsing
//! never panics, ignores what it does not understand, and the bits it yields are applied only
//! to paths of the tree being restored, without setuid/setgid (see [`Modes::safe`]).

use std::collections::{BTreeMap, HashMap};

/// The permission bits of a snapshot's files and directories.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Modes {
    /// The most common mode of plain files, executables and directories.
    pub file: u32,
    pub exec: u32,
    pub dir: u32,
    /// Paths (files and directories) whose mode is not their kind's default.
    pub except: BTreeMap<Vec<u8>, u32>,
}

/// The trailer with the three defaults, and the one that names an exception.
const DEFAULTS: &str = "Modes: ";
const EXCEPTION: &str = "Mode: ";

impl Modes {
    /// Works out the defaults and exceptions from what the walk saw: files as (path, bits,
    /// executable), directories as (path, bits).
    pub fn collect<'a>(
        files: impl Iterator<Item = (&'a [u8], u32, bool)> + Clone,
        dirs: &[(Vec<u8>, u32)],
    ) -> Modes {
        let file = most_common(files.clone().filter(|f| !f.2).map(|f| f.1), 0o644);
        let exec = most_common(files.clone().filter(|f| f.2).map(|f| f.1), 0o755);
        let dir = most_common(dirs.iter().map(|d| d.1), 0o755);
        let mut except = BTreeMap::new();
        for (path, bits, x) in files {
            if bits != if x { exec } else { file } {
                except.insert(path.to_vec(), bits);
            }
        }
        for (path, bits) in dirs {
            if *bits != dir {
                except.insert(path.clone(), *bits);
            }
        }
        Modes { file, exec, dir, except }
    }

    /// The bits of the file at `path`; `exec` is what the tree says (100755).
    pub fn of_file(&self, path: &[u8], exec: bool) -> u32 {
        Self::safe(self.except.get(path).copied().unwrap_or(if exec { self.exec } else { self.file }))
    }

    /// The bits of the directory at `path`.
    pub(crate) fn of_dir(&self, path: &[u8]) -> u32 {
        Self::safe(self.except.get(path).copied().unwrap_or(self.dir))
    }

    /// Bits we are willing to set from a backup: never setuid or setgid (a hostile backup
    /// would otherwise hand out a program that runs as the user who restored it).
    pub fn safe(bits: u32) -> u32 {
        bits & 0o1777
    }

    /// The lines appended to the commit message.
    pub fn render(&self) -> String {
        let mut s = format!("{DEFAULTS}{:04o} {:04o} {:04o}\n", self.file, self.exec, self.dir);
        for (path, bits) in &self.except {
            s.push_str(&format!("{EXCEPTION}{bits:04o} {}\n", quote(path)));
        }
        s
    }

    /// The modes a commit message records; None for a snapshot taken before modes were
    /// recorded (restore then falls back to the tree's two modes).
    pub fn parse(msg: &[u8]) -> Option<Modes> {
        let text = String::from_utf8_lossy(msg);
        let mut modes: Option<Modes> = None;
        let mut except = BTreeMap::new();
        for line in text.split('\n') {
            if let Some(rest) = line.strip_prefix(DEFAULTS) {
                let v: Vec<u32> = rest.split(' ').filter_map(octal).collect();
                if let [file, exec, dir] = v[..] {
                    modes = Some(Modes { file, exec, dir, except: BTreeMap::new() });
                }
            } else if let Some(rest) = line.strip_prefix(EXCEPTION) {
                if let Some((bits, path)) = rest.split_once(' ') {
                    if let (Some(bits), Some(path)) = (octal(bits), unquote(path)) {
                        except.insert(path, bits);
                    }
                }
            }
        }
        modes.map(|m| Modes { except, ..m })
    }
}

fn octal(s: &str) -> Option<u32> {
    u32::from_str_radix(s, 8).ok().filter(|b| *b <= 0o7777)
}

/// The most common value, the smallest on a tie (so the result is deterministic).
fn most_common(values: impl Iterator<Item = u32>, none: u32) -> u32 {
    let mut n: HashMap<u32, u64> = HashMap::new();
    for v in values {
        *n.entry(v).or_default() += 1;
    }
    n.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).map_or(none, |(v, _)| v)
}

/// A path as one line of text: as is when that is unambiguous, else in double quotes with
/// C escapes (as git quotes paths), so names with newlines or invalid UTF-8 survive.
pub fn quote(path: &[u8]) -> String {
    let plain = std::str::from_utf8(path)
        .ok()
        .filter(|s| !s.starts_with('"') && !s.chars().any(|c| c.is_control() || c == '\\'));
    if let Some(s) = plain {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    let mut b = [0u8; 4];
                    for byte in c.encode_utf8(&mut b).bytes() {
                        out.push_str(&format!("\\{byte:03o}"));
                    }
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\{byte:03o}"));
        }
    }
    out.push('"');
    out
}

/// The inverse of [`quote`]; None for text [`quote`] never writes.
pub fn unquote(s: &str) -> Option<Vec<u8>> {
    let Some(inner) = s.strip_prefix('"') else { return Some(s.as_bytes().to_vec()) };
    let inner = inner.strip_suffix('"')?;
    let mut out = Vec::with_capacity(inner.len());
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1)? {
            b'"' => out.push(b'"'),
            b'\\' => out.push(b'\\'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'0'..=b'3' => {
                let digits = b.get(i + 1..i + 4)?;
                if !digits.iter().all(|c| (b'0'..=b'7').contains(c)) {
                    return None;
                }
                out.push(digits.iter().fold(0u8, |acc, c| acc * 8 + (c - b'0')));
                i += 4;
                continue;
            }
            _ => return None,
        }
        i += 2;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_most_common_modes_and_the_rest_are_exceptions() {
        let files: Vec<(&[u8], u32, bool)> = vec![
            (b"a.md", 0o644, false),
            (b"b.md", 0o644, false),
            (b"private.md", 0o600, false),
            (b"run.sh", 0o755, true),
        ];
        let dirs = vec![(b"notes".to_vec(), 0o755), (b"secret".to_vec(), 0o700), (b"x".to_vec(), 0o755)];
        let m = Modes::collect(files.iter().copied(), &dirs);
        assert_eq!((m.file, m.exec, m.dir), (0o644, 0o755, 0o755));
        assert_eq!(m.of_file(b"private.md", false), 0o600);
        assert_eq!(m.of_file(b"a.md", false), 0o644);
        assert_eq!(m.of_dir(b"secret"), 0o700);
        assert_eq!(m.except.len(), 2);
        let msg = format!("opus-mirror snapshot\n\nFiles: 4\n{}", m.render());
        assert_eq!(Modes::parse(msg.as_bytes()), Some(m));
    }

    #[test]
    fn odd_names_survive_the_message() {
        for name in
            [&b"line\nbreak"[..], b"\"quoted", b"back\\slash", b"\xff\xferaw", b"tab\there", b"caf\xc3\xa9"]
        {
            let q = quote(name);
            assert!(!q.contains('\n'), "{q:?}");
            assert_eq!(unquote(&q).as_deref(), Some(name), "{q:?}");
        }
    }

    #[test]
    fn a_message_without_modes_or_with_garbage_gives_none_or_skips_the_line() {
        assert_eq!(Modes::parse(b"opus-mirror snapshot\n\nFiles: 3\n"), None);
        let m = Modes::parse(
            b"Modes: 0600 0700 0700\nMode: 99999 x\nMode: 0644 \"unterminated\nMode: 4755 tool\n",
        )
        .unwrap();
        assert_eq!(m.except.len(), 1);
        assert_eq!(m.of_file(b"tool", true), 0o755, "setuid is never restored");
    }
}
