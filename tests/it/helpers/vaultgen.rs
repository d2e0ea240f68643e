//! A deterministic, realistic vault for tests, the in-project twin of
//! `../shared/bench/make-vault`: Markdown notes with front matter and [[wiki links]] in
//! PARA folders and daily journals, binary attachments, `.obsidian/`, `.trash/`, an empty
//! folder, a symlink, an executable, names with spaces and non-ASCII, git-ignored private
//! files, and optionally a git repository around it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const WORDS: &[&str] = &[
    "the", "of", "and", "project", "note", "idea", "meeting", "review", "plan", "draft", "backup", "vault",
    "restore", "git", "branch", "remote", "commit", "snapshot", "daily", "goal", "habit", "health",
    "reading", "book", "summary", "decision", "risk", "status", "next", "action", "context", "system",
    "design", "failure", "recovery", "archive",
];
const FOLDERS: &[&str] = &[
    "00_system/docs",
    "00_system/templates",
    "10_projects/opus",
    "10_projects/garden",
    "10_projects/écriture",
    "20_areas/health",
    "20_areas/finance",
    "30_resources/books",
    "40_archive/2025",
    "inbox",
];

/// A small deterministic PRNG (xorshift64*): same seed, same vault, on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len() as u64) as usize]
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn sentence(rng: &mut Rng, n: usize) -> String {
    let mut s: Vec<&str> = (0..n).map(|_| rng.pick(WORDS)).collect();
    let first = s[0].to_string();
    let cap = first[..1].to_uppercase() + &first[1..];
    s[0] = &cap;
    format!("{}.", s.join(" "))
}

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, data).expect("write");
}

/// Sizes of a generated vault.
pub struct Spec {
    pub notes: usize,
    pub attachments: usize,
    pub seed: u64,
    pub git: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Spec { notes: 120, attachments: 6, seed: 7, git: false }
    }
}

/// Creates the vault at `root`.
pub fn create(root: &Path, spec: &Spec) {
    let mut rng = Rng::new(spec.seed);
    let mut titles = Vec::new();
    for i in 0..spec.notes {
        let rel = if i % 5 == 0 {
            format!("journal/2026/2026-{:02}-{:02} ({i}).md", (i / 150) % 12 + 1, (i / 5) % 28 + 1)
        } else {
            let words = 2 + rng.below(3) as usize;
            let mut title = format!("{} {i}", sentence(&mut rng, words).trim_end_matches('.'));
            if i % 17 == 0 {
                title.push_str(" — café ünïcode");
            }
            format!("{}/{title}.md", rng.pick(FOLDERS))
        };
        let title = Path::new(&rel).file_stem().expect("stem").to_string_lossy().to_string();
        let mut body = format!(
            "---\ntitle: {title}\ntags: [{}, {}]\ncreated: 2025-{:02}-{:02}\n---\n# {title}\n\n",
            rng.pick(WORDS),
            rng.pick(WORDS),
            rng.below(12) + 1,
            rng.below(28) + 1
        );
        for _ in 0..(2 + rng.below(8)) {
            match rng.below(4) {
                0 => body.push_str(&format!("## {}\n\n", sentence(&mut rng, 3))),
                1 => body.push_str(&format!(
                    "- [ ] {}\n- [x] {}\n\n",
                    sentence(&mut rng, 5),
                    sentence(&mut rng, 4)
                )),
                2 if !titles.is_empty() => {
                    let t: &String = &titles[rng.below(titles.len() as u64) as usize];
                    body.push_str(&format!("See [[{t}]].\n\n"));
                }
                _ => body.push_str(&format!("{} {}\n\n", sentence(&mut rng, 12), sentence(&mut rng, 9))),
            }
        }
        write(&root.join(&rel), body.as_bytes());
        titles.push(title);
    }
    for i in 0..spec.attachments {
        let ext = ["png", "pdf", "jpg"][i % 3];
        let size = 2_000 + rng.below(60_000) as usize;
        write(&root.join(format!("attachments/file {i}.{ext}")), &rng.bytes(size));
    }
    write(&root.join(".obsidian/app.json"), b"{\"alwaysUpdateLinks\": true}\n");
    write(&root.join(".obsidian/workspace.json"), b"{\"lastOpenFiles\": []}\n");
    write(&root.join(".trash/old note.md"), b"# deleted in Obsidian\n");
    fs::create_dir_all(root.join("inbox/empty folder")).expect("empty dir");
    write(&root.join("scripts/sync.sh"), b"#!/bin/sh\necho sync\n");
    fs::set_permissions(root.join("scripts/sync.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::symlink("../00_system", root.join("inbox/system-link")).expect("symlink");
    write(&root.join("private/diary.md"), b"# private, git-ignored but backed up\n");
    write(&root.join("drafts.local.md"), b"local draft\n");
    write(&root.join(".env"), b"TOKEN=secret-value\n");
    write(&root.join(".env.example"), b"TOKEN=\n");
    if spec.git {
        write(&root.join(".gitignore"), b"private/\n.obsidian/workspace*.json\n*.local.md\n.env\n");
        super::git(root, &["init", "-q", "-b", "main"]).ok();
        super::git(root, &["add", "-A"]).ok();
        super::git(root, &["commit", "-q", "-m", "vault"]).ok();
    }
}

/// One deterministic day of work: edits ~1 % of notes, adds ~0.5 %, deletes ~0.2 %, adds
/// an attachment. Returns how many files it edited, added and deleted.
pub fn mutate(root: &Path, day: u64) -> (usize, usize, usize) {
    let mut rng = Rng::new(1000 + day);
    let mut notes: Vec<_> = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git" && e.file_name() != ".obsidian")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "md"))
        .map(|e| e.path().to_path_buf())
        .collect();
    let edits = (notes.len() / 100).max(1);
    let adds = (notes.len() / 200).max(1);
    let dels = (notes.len() / 500).max(1);
    for _ in 0..edits {
        let p = &notes[rng.below(notes.len() as u64) as usize];
        let mut t = fs::read_to_string(p).expect("read note");
        t.push_str(&format!("\nEdited on day {day}: {}\n", sentence(&mut rng, 8)));
        fs::write(p, t).expect("edit");
    }
    for i in 0..adds {
        write(
            &root.join(format!("inbox/day {day} note {i}.md")),
            format!("# Day {day}\n\n{}\n", sentence(&mut rng, 20)).as_bytes(),
        );
    }
    for _ in 0..dels {
        let i = rng.below(notes.len() as u64) as usize;
        let p = notes.remove(i);
        fs::remove_file(p).expect("delete");
    }
    write(&root.join(format!("attachments/day {day}.png")), &rng.bytes(10_000));
    (edits, adds + 1, dels)
}
