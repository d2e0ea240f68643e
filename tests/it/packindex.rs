//! Our pack indexer (`git::pack::index`) against stock git: the `.idx` it writes for a pack
//! with deltas is `git index-pack`'s byte for byte; a repository it unbundled passes `git
//! verify-pack -v` and `git fsck --full`; stock git's thin incremental bundles still unbundle;
//! a damaged bundle is refused by `unbundle` and `check`, naming the file.

use std::fs;
use std::path::{Path, PathBuf};

use opus_mirror_core::git::pack::index::{index_file, Options};
use sha2::Digest;

use crate::helpers::coderepo::CodeRepo;
use crate::helpers::{git, Env};

/// A note long enough for git to store its later versions as deltas.
fn note(version: usize) -> String {
    (0..200)
        .map(|i| format!("line {i} of a long note, version {}\n", if i == 100 { version } else { 0 }))
        .collect()
}

/// A code repo whose `notes.md` has `versions` commits, repacked so they are deltas.
fn repo_with_deltas(env: &Env, versions: usize) -> (CodeRepo, Vec<String>) {
    let code = CodeRepo::new(&env.path("code"));
    let commits = (0..versions).map(|v| code.commit("notes.md", &note(v), &format!("v{v}"))).collect();
    code.git(&["tag", "-a", "v1", "-m", "annotated"]).ok();
    code.git(&["repack", "-q", "-a", "-d", "-f", "--depth=50", "--window=10"]).ok();
    (code, commits)
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// Where a bundle's pack starts (after the blank line ending its header).
fn pack_start(b: &[u8]) -> usize {
    b.windows(2).position(|w| w == b"\n\n").expect("a bundle header") + 2
}

#[test]
fn our_idx_is_byte_identical_to_git_index_pack() {
    let env = Env::new();
    let (code, _) = repo_with_deltas(&env, 8);
    let packs = files_with(&code.work.join(".git/objects/pack"), "pack");
    assert_eq!(packs.len(), 1);
    let verify = git(&code.work, &["verify-pack", "-v", packs[0].to_str().unwrap()]).ok().stdout;
    assert!(verify.contains("chain length = "), "the test pack has no deltas:\n{verify}");
    let copy = env.path("copy.pack");
    fs::copy(&packs[0], &copy).unwrap();
    git(env.dir.path(), &["index-pack", "-o", env.path("git.idx").to_str().unwrap(), copy.to_str().unwrap()])
        .ok();
    let out = env.path("ours");
    let got = index_file(&copy, 0, &Options { write_to: Some(&out), ..Default::default() }).expect("indexed");
    let name = got.name.expect("written");
    assert_eq!(fs::read(out.join(format!("pack-{name}.pack"))).unwrap(), fs::read(&copy).unwrap());
    assert!(
        fs::read(out.join(format!("pack-{name}.idx"))).unwrap() == fs::read(env.path("git.idx")).unwrap(),
        "our .idx differs from git index-pack's"
    );
}

#[test]
fn a_repository_we_unbundled_passes_verify_pack_and_fsck() {
    let env = Env::new();
    let (code, _) = repo_with_deltas(&env, 8);
    let full = env.path("full.bundle");
    code.git(&["bundle", "create", "-q", full.to_str().unwrap(), "--all"]).ok();
    let bare = env.path("r.git");
    let repo = git2::Repository::init_bare(&bare).unwrap();
    opus_mirror_core::bundle::read::unbundle(&repo, &full).expect("unbundled");
    for p in files_with(&bare.join("objects/pack"), "pack") {
        let r = git(&bare, &["verify-pack", "-v", p.to_str().unwrap()]).ok();
        assert!(r.stdout.contains("chain length = "), "the unbundled pack has no deltas");
    }
    crate::helpers::assert_fsck(&bare);
    assert_eq!(git(&bare, &["rev-parse", "main"]).ok().stdout.trim(), code.head());
}

#[test]
fn a_thin_incremental_bundle_from_stock_git_unbundles() {
    let env = Env::new();
    let (code, commits) = repo_with_deltas(&env, 3);
    let full = env.path("full.bundle");
    code.git(&["bundle", "create", "-q", full.to_str().unwrap(), "main"]).ok();
    code.commit("notes.md", &note(99), "v99");
    let inc = env.path("inc.bundle");
    code.git(&["bundle", "create", "-q", inc.to_str().unwrap(), "main", &format!("^{}", commits[2])]).ok();
    // It is thin: a delta against a blob only the prerequisite has.
    let b = fs::read(&inc).unwrap();
    let alone = index_file(&inc, pack_start(&b) as u64, &Options::default()).expect("readable alone");
    assert!(alone.unverified > 0, "stock git wrote no thin delta: the test proves nothing");

    let bare = env.path("r.git");
    let repo = git2::Repository::init_bare(&bare).unwrap();
    opus_mirror_core::bundle::read::unbundle(&repo, &full).expect("full");
    opus_mirror_core::bundle::read::unbundle(&repo, &inc).expect("thin incremental");
    // Every pack we wrote stands on its own (verify-pack refuses a thin one).
    for p in files_with(&bare.join("objects/pack"), "pack") {
        git(&bare, &["verify-pack", p.to_str().unwrap()]).ok();
    }
    crate::helpers::assert_fsck(&bare);
    assert_eq!(git(&bare, &["rev-parse", "main"]).ok().stdout.trim(), code.head());
}

#[test]
fn a_damaged_pack_in_a_bundle_is_refused_naming_the_file() {
    let env = Env::new();
    let (code, _) = repo_with_deltas(&env, 4);
    let full = env.path("full.bundle");
    code.git(&["bundle", "create", "-q", full.to_str().unwrap(), "--all"]).ok();
    let good = fs::read(&full).unwrap();
    let start = pack_start(&good);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() - 40].to_vec()),
        ("flipped", {
            let mut b = good.clone();
            b[start + (good.len() - start) / 2] ^= 0x10;
            b
        }),
        ("trailer", {
            let mut b = good.clone();
            let n = b.len();
            b[n - 3] ^= 1;
            b
        }),
        ("count", {
            let mut b = good.clone();
            b[start + 11] += 1;
            b
        }),
    ];
    for (what, bytes) in cases {
        let path = env.path(&format!("{what}.bundle"));
        fs::write(&path, bytes).unwrap();
        let repo = git2::Repository::init_bare(env.path(&format!("{what}.git"))).unwrap();
        let e = format!("{:#}", opus_mirror_core::bundle::read::unbundle(&repo, &path).expect_err(what));
        assert!(e.contains(&path.display().to_string()) && e.contains("damaged"), "{what}: {e}");
        let e = opus_mirror_core::check::bundle_file_ok(&path, &env.state).expect_err(what);
        assert!(e.starts_with("pack: "), "{what}: {e}");
    }
}

/// A vault of `notes` notes, snapshotted, bundled to a dir target and checked clean: the
/// environment and the bundle file.
fn checked_bundle(notes: usize) -> (Env, PathBuf) {
    let env = Env::new();
    let vault = env.path("vault");
    fs::create_dir_all(&vault).unwrap();
    for i in 0..notes {
        fs::write(vault.join(format!("n{i}.md")), note(i)).unwrap();
    }
    let drive = env.path("drive");
    env.write_config_with_drive("notes", &vault, "", &drive, "");
    env.run(&["init"]).ok();
    env.run(&["snapshot"]).ok();
    env.run(&["bundle"]).ok();
    env.run(&["check"]).ok();
    let bundle = files_with(&drive, "bundle").pop().expect("a bundle");
    (env, bundle)
}

/// `check` reads the pack of a bundle whose manifest matches (whoever wrote the bundle wrote
/// the manifest too) and names the file.
#[test]
fn check_refuses_a_bundle_whose_pack_is_damaged() {
    let (env, bundle) = checked_bundle(20);
    let mut b = fs::read(&bundle).unwrap();
    let start = pack_start(&b);
    // Damage an entry and give the pack a matching trailer: only the entries' own checks can tell.
    let at = start + (b.len() - start) / 2;
    b[at] ^= 0x10;
    let n = b.len();
    let sum: [u8; 20] = sha1::Sha1::digest(&b[start..n - 20]).into();
    b[n - 20..].copy_from_slice(&sum);
    fs::write(&bundle, &b).unwrap();
    let manifest = PathBuf::from(format!("{}.json", bundle.display()));
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    m["sha256"] = hex::encode(sha2::Sha256::digest(&b)).into();
    fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let r = env.run(&["check"]);
    assert_ne!(r.code, 0, "check passed a damaged pack\n{}", r.stdout);
    let name = bundle.file_name().unwrap().to_str().unwrap();
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains(&format!("{name}: pack: object")),
        "check does not name the bundle and the object:\n{all}"
    );
}

/// A pack of these raw entries (count as given) with its trailer.
fn raw_pack(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut b = b"PACK\0\0\0\x02".to_vec();
    b.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        b.extend_from_slice(e);
    }
    let sum: [u8; 20] = sha1::Sha1::digest(&b).into();
    b.extend_from_slice(&sum);
    b
}

/// A full bundle (no prerequisites) whose one ref `refs/heads/main` names `tip`.
fn raw_bundle(tip: git2::Oid, pack: &[u8]) -> Vec<u8> {
    let mut b = format!("# v2 git bundle\n{tip} refs/heads/main\n\n").into_bytes();
    b.extend_from_slice(pack);
    b
}

/// A ref delta against `base` that makes one byte from a one-byte base.
fn ref_delta(base: git2::Oid) -> Vec<u8> {
    use opus_mirror_core::git::{objects::Kind, pack};
    let d = [1u8, 1, 1, b'x'];
    let mut e = pack::entry_header(Kind::Blob, d.len() as u64);
    e[0] = (e[0] & 0x8f) | (7 << 4);
    e.extend_from_slice(base.as_bytes());
    e.extend(pack::compress(&d));
    e
}

/// Bundles made by hand to attack the reader: a declared size of a petabyte, deltas that name
/// each other, a ref naming an object the pack does not hold. `unbundle` and `check` refuse each
/// (no panic, nothing allocated for the declared size), naming the file.
#[test]
fn handmade_hostile_bundles_are_refused_naming_the_file() {
    use opus_mirror_core::git::{objects, objects::Kind, pack};
    let env = Env::new();
    let blob = |data: &[u8]| {
        let mut e = pack::entry_header(Kind::Blob, data.len() as u64);
        e.extend(pack::compress(data));
        e
    };
    let (a, b) = (objects::hash(Kind::Blob, b"a"), objects::hash(Kind::Blob, b"b"));
    let hello = objects::hash(Kind::Blob, b"hello");
    let huge = {
        let mut e = pack::entry_header(Kind::Blob, 1 << 50);
        e.extend(pack::compress(b"small"));
        e
    };
    let absent = objects::hash(Kind::Commit, b"not in the pack");
    let tip = format!("ref refs/heads/main names {absent}, which is not in the pack");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("huge", raw_bundle(hello, &raw_pack(&[huge])), "not the 1125899906842624 it declares"),
        ("loop", raw_bundle(hello, &raw_pack(&[ref_delta(b), ref_delta(a)])), "which the pack does not hold"),
        ("tip", raw_bundle(absent, &raw_pack(&[blob(b"hello")])), &tip),
    ];
    for (what, bytes, why) in &cases {
        let path = env.path(&format!("{what}.bundle"));
        fs::write(&path, bytes).unwrap();
        let e = opus_mirror_core::check::bundle_file_ok(&path, &env.state).expect_err(what);
        assert!(e.starts_with("pack: ") && e.contains(why), "{what}: {e}");
        let repo = git2::Repository::init_bare(env.path(&format!("{what}.git"))).unwrap();
        let e = format!("{:#}", opus_mirror_core::bundle::read::unbundle(&repo, &path).expect_err(what));
        assert!(e.contains(&path.display().to_string()), "{what}: {e}");
    }
}

/// A full bundle whose header names a commit its pack does not hold would restore nothing for
/// that ref: `check` reads the header's refs against the pack, and names the bundle and the ref.
#[test]
fn check_refuses_a_full_bundle_whose_ref_is_not_in_its_pack() {
    let (env, bundle) = checked_bundle(5);
    let b = fs::read(&bundle).unwrap();
    let start = pack_start(&b);
    let header = String::from_utf8(b[..start].to_vec()).unwrap();
    // A branch's line in the header names a commit that is nowhere (HEAD still names the tip).
    let line = header.lines().find(|l| l.contains("refs/heads/")).expect("a branch in the header");
    let name = line.split_once(' ').unwrap().1;
    let absent = opus_mirror_core::git::objects::hash(
        opus_mirror_core::git::objects::Kind::Commit,
        b"a commit that is in no pack",
    )
    .to_string();
    let mut forged = header.replacen(line, &format!("{absent} {name}"), 1).into_bytes();
    forged.extend_from_slice(&b[start..]);
    fs::write(&bundle, &forged).unwrap();
    let manifest = PathBuf::from(format!("{}.json", bundle.display()));
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    m["sha256"] = hex::encode(sha2::Sha256::digest(&forged)).into();
    fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let r = env.run(&["check"]);
    assert_ne!(r.code, 0, "check passed a bundle whose ref is not in it\n{}", r.stdout);
    let file = bundle.file_name().unwrap().to_str().unwrap();
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains(&format!("{file}: pack: the bundle's ref"))
            && all.contains(name)
            && all.contains(&absent),
        "check does not name the bundle, the ref and its object:\n{all}"
    );
}

/// A bundle changed after its manifest was written is reported by its sha256 (the manifest is
/// the record of what was written), not by whatever its pack then looks like; the sha256 and the
/// pack are read in one pass.
#[test]
fn check_reports_a_bundle_that_is_not_what_its_manifest_says_by_its_sha256() {
    let (env, bundle) = checked_bundle(5);
    let mut b = fs::read(&bundle).unwrap();
    let (start, n) = (pack_start(&b), b.len());
    b[start + (n - start) / 2] ^= 0x10;
    fs::write(&bundle, &b).unwrap();
    let want = hex::encode(sha2::Sha256::digest(&b));
    let r = env.run(&["check"]);
    assert_ne!(r.code, 0, "check passed a changed bundle\n{}", r.stdout);
    let file = bundle.file_name().unwrap().to_str().unwrap();
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains(&format!("{file}: sha256 {want}, but its manifest says")), "{all}");
    assert!(!all.contains("pack: "), "the pack's own problem is not reported beside it:\n{all}");
}
