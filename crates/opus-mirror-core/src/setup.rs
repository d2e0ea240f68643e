//! The setup travels with the backup. Each snapshot run keeps, in the source's backup repo, a
//! record of the configuration that made it — this source's `[[source]]`, its targets,
//! notify, network, run and guard settings, with every credential taken out — and the
//! source's git remotes. The record is a small commit chain on `refs/opus-mirror/setup`, so
//! bundles and the mirror carry it like any other ref, and `recover` on a new machine gets
//! the same source name, mirror, targets, retention and alerts back, and `origin` pointing at
//! the real upstream, instead of a bare minimum to fill in by hand.
//!
//! What a backup holds is read back as a claim: `recover` parses the record with the same
//! validation as any config (it is written to the config path, then loaded), and never runs
//! anything from it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use git2::Oid;

use crate::config::{self, Config, Source};
use crate::git::objects::{self, Kind, Signature, TreeEntry, MODE_FILE};
use crate::git::pack::PackWriter;
use crate::git::BackupRepo;

/// The ref that holds the setup record.
pub const REF: &str = "refs/opus-mirror/setup";
const CONFIG: &str = "config.toml";
const REMOTES: &str = "remotes.toml";

/// The setup as recorded: the config text (credentials taken out) and the remotes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Setup {
    pub config: String,
    /// Remote name → URL (credentials masked) of a git source.
    pub remotes: BTreeMap<String, String>,
}

/// The setup of `source` as it is now: the config file's text reduced to this source (other
/// sources, `state_dir` and every credential-looking value left out) and its git remotes.
pub fn current(cfg: &Config, source: &Source) -> Result<Setup> {
    let raw = std::fs::read_to_string(&cfg.file)
        .with_context(|| format!("cannot read the config {}", cfg.file.display()))?;
    let (config, removed) = reduce(&raw, &source.name)?;
    let mut text =
        String::from("# The setup that made this backup (opus-mirror keeps it on refs/opus-mirror/setup).\n");
    for key in &removed {
        text.push_str(&format!("# left out: {key} held a credential; set it again after a recover\n"));
    }
    text.push_str(&config);
    let mut remotes = BTreeMap::new();
    if let Ok(repo) = git2::Repository::open(&source.path) {
        if let Ok(names) = repo.remotes() {
            for name in names.iter().flatten().flatten() {
                if let Some(url) = repo.find_remote(name).ok().and_then(|r| r.url().ok().map(str::to_string))
                {
                    remotes.insert(name.to_string(), config::mask_url(&url));
                }
            }
        }
    }
    Ok(Setup { config: text, remotes })
}

/// `raw` (a config file's text) reduced to the source `name`: no `state_dir` (a new machine
/// has its own), no other source, and no value that holds a credential (a URL with a
/// password or token, a secret-looking key). Returns the TOML and the keys left out.
pub(crate) fn reduce(raw: &str, name: &str) -> Result<(String, Vec<String>)> {
    let mut t: toml::Table = raw.parse().context("the config is not valid TOML")?;
    t.remove("state_dir");
    if let Some(toml::Value::Array(sources)) = t.get_mut("source") {
        sources.retain(|s| s.get("name").and_then(|n| n.as_str()) == Some(name));
    }
    let mut removed = Vec::new();
    strip_secrets(&mut t, "", &mut removed);
    let text = toml::to_string(&t).context("cannot render the setup")?;
    Ok((text, removed))
}

/// Removes every credential-looking value below `t`, noting its key path.
fn strip_secrets(t: &mut toml::Table, at: &str, removed: &mut Vec<String>) {
    let keys: Vec<String> = t.keys().cloned().collect();
    for k in keys {
        let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
        let secret = match t.get_mut(&k) {
            Some(toml::Value::String(v)) => holds_credential(&k, v),
            Some(toml::Value::Table(inner)) => {
                strip_secrets(inner, &path, removed);
                false
            }
            Some(toml::Value::Array(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let toml::Value::Table(inner) = item {
                        strip_secrets(inner, &format!("{path}[{}]", i + 1), removed);
                    }
                }
                // A command line as a list: one credential in it takes the whole list out.
                items.iter().any(|v| v.as_str().is_some_and(|v| holds_credential(&k, v)))
            }
            _ => false,
        };
        if secret {
            t.remove(&k);
            removed.push(path);
        }
    }
}

/// Whether a config value is (or carries) a credential. `*_env` keys name a variable, and
/// a variable's name is what the record should keep.
fn holds_credential(key: &str, value: &str) -> bool {
    if key.ends_with("_env") || key.ends_with("_file") {
        return false;
    }
    config::mask_url(value) != value || config::mask_urls_in(value) != value || config::secret_key(key)
}

/// The setup recorded in `repo`, if any. Malformed records read as None (a backup made by
/// an older opus-mirror has none; a hostile one gets no say).
pub fn load(repo: &BackupRepo) -> Option<Setup> {
    let commit = repo.repo.find_reference(REF).ok()?.peel_to_commit().ok()?;
    let tree = commit.tree().ok()?;
    let text = |name: &str| -> Option<String> {
        let blob = tree.get_name(name)?.to_object(&repo.repo).ok()?.peel_to_blob().ok()?;
        String::from_utf8(blob.content().to_vec()).ok()
    };
    let config = text(CONFIG)?;
    let remotes: BTreeMap<String, String> =
        text(REMOTES).and_then(|r| toml::from_str::<toml::Table>(&r).ok()).map_or_else(BTreeMap::new, |t| {
            t.into_iter().filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string()))).collect()
        });
    Some(Setup { config, remotes })
}

/// The tree of a setup record.
fn tree_of(setup: &Setup) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let remotes = toml::to_string(&setup.remotes).unwrap_or_default();
    let (c, r) = (setup.config.as_bytes().to_vec(), remotes.into_bytes());
    let mut entries = vec![
        TreeEntry { name: CONFIG.into(), mode: MODE_FILE, oid: objects::hash(Kind::Blob, &c) },
        TreeEntry { name: REMOTES.into(), mode: MODE_FILE, oid: objects::hash(Kind::Blob, &r) },
    ];
    objects::sort_entries(&mut entries);
    (objects::tree_bytes(&entries), c, r)
}

/// Adds a new setup record to `pack` when the setup changed; returns the commit to move
/// [`REF`] to once the pack is installed (None when nothing changed).
pub(crate) fn stage(
    repo: &BackupRepo,
    setup: &Setup,
    pack: &mut PackWriter,
    now: i64,
) -> Result<Option<(Oid, Option<Oid>)>> {
    let (tree, c, r) = tree_of(setup);
    let tree_id = objects::hash(Kind::Tree, &tree);
    let parent = repo.repo.refname_to_id(REF).ok();
    if let Some(p) = parent {
        if repo.repo.find_commit(p).map(|c| c.tree_id()).ok() == Some(tree_id) {
            return Ok(None);
        }
    }
    pack.add(Kind::Blob, &c)?;
    pack.add(Kind::Blob, &r)?;
    pack.add(Kind::Tree, &tree)?;
    let sig = Signature {
        name: "opus-mirror".into(),
        email: format!("opus-mirror@{}", crate::git::objects::host()),
        time: now,
    };
    let commit =
        pack.add(Kind::Commit, &objects::commit_bytes(tree_id, parent, &sig, "opus-mirror setup\n"))?;
    Ok(Some((commit, parent)))
}

/// Moves [`REF`] to a staged record (compare-and-swap on the old value).
pub fn commit(repo: &BackupRepo, staged: (Oid, Option<Oid>)) -> Result<()> {
    let (new, old) = staged;
    repo.repo.odb()?.refresh()?;
    match old {
        Some(o) => repo.repo.reference_matching(REF, new, true, o, "opus-mirror: setup"),
        None => repo.repo.reference(REF, new, false, "opus-mirror: setup"),
    }
    .with_context(|| format!("cannot move {REF} in {}", repo.path.display()))?;
    Ok(())
}

/// Where a recover got the backup from.
#[derive(Debug, Clone, Copy)]
pub enum Recovered<'a> {
    /// A dir target's directory, at this path on this machine.
    Drive(&'a Path),
    /// An rclone remote, as the user named it.
    Rclone(&'a str),
    /// The mirror, at this URL.
    Mirror(&'a str),
}

/// The config a recover writes from a recorded setup: the source at `to` (under the name it
/// was recovered as), its mirror the one recovered from, and the target that held the
/// bundles where it is now — added when the record has none. A target that lost a required
/// value to credential stripping (an rclone remote with keys in it) is left out, and said.
pub fn recovered_config(setup: &Setup, source: &str, to: &Path, from: Recovered<'_>) -> Result<String> {
    let (drive, rclone, mirror) = match from {
        Recovered::Drive(p) => (Some(p), None, None),
        Recovered::Rclone(r) => (None, Some(r), None),
        Recovered::Mirror(m) => (None, None, Some(m)),
    };
    let mut t: toml::Table = setup.config.parse().context("the recorded setup is not valid TOML")?;
    let mut notes = String::new();
    if let Some(toml::Value::Array(targets)) = t.get_mut("target") {
        targets.retain(|x| {
            let broken =
                x.get("kind").and_then(|k| k.as_str()) == Some("rclone") && x.get("remote").is_none();
            if broken {
                let name = x.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                notes.push_str(&format!(
                    "# left out: target `{name}` (its remote held a credential); add it again\n"
                ));
            }
            !broken
        });
    }
    if let Some(remote) = rclone {
        let targets = t.entry("target").or_insert_with(|| toml::Value::Array(Vec::new()));
        if let toml::Value::Array(targets) = targets {
            if !targets.iter().any(|x| x.get("remote").and_then(|r| r.as_str()) == Some(remote)) {
                let taken =
                    |n: &str| targets.iter().any(|x| x.get("name").and_then(|v| v.as_str()) == Some(n));
                let name = ["offsite", "recovered-offsite"]
                    .into_iter()
                    .find(|n| !taken(n))
                    .unwrap_or("recovered-from");
                let mut x = toml::Table::new();
                x.insert("name".into(), toml::Value::String(name.into()));
                x.insert("kind".into(), toml::Value::String("rclone".into()));
                x.insert("remote".into(), toml::Value::String(remote.into()));
                targets.push(toml::Value::Table(x));
            }
        }
    }
    if let Some(toml::Value::Array(sources)) = t.get_mut("source") {
        // The record holds one source; a recover under another name keeps that name.
        if let [only] = sources.as_mut_slice() {
            if let Some(s) = only.as_table_mut() {
                s.insert("name".into(), toml::Value::String(source.to_string()));
                s.insert("path".into(), toml::Value::String(to.display().to_string()));
                if let Some(m) = mirror {
                    s.insert("mirror".into(), toml::Value::String(m.to_string()));
                }
            }
        }
    }
    if let Some(drive) = drive {
        let targets = t.entry("target").or_insert_with(|| toml::Value::Array(Vec::new()));
        if let toml::Value::Array(targets) = targets {
            let dirs: Vec<usize> = targets
                .iter()
                .enumerate()
                .filter(|(_, x)| x.get("kind").and_then(|k| k.as_str()) == Some("dir"))
                .map(|(i, _)| i)
                .collect();
            // The drive's folder name usually survives a move between machines; else the only one.
            let same_name = dirs.iter().copied().find(|i| {
                let p = targets[*i].get("path").and_then(|p| p.as_str()).unwrap_or_default();
                Path::new(p).file_name().is_some() && Path::new(p).file_name() == drive.file_name()
            });
            let found = same_name.or(if dirs.len() == 1 { dirs.first().copied() } else { None });
            let path = toml::Value::String(drive.display().to_string());
            match found.and_then(|i| targets[i].as_table_mut()) {
                Some(x) => {
                    x.insert("path".into(), path);
                }
                None => {
                    let taken =
                        |n: &str| targets.iter().any(|x| x.get("name").and_then(|v| v.as_str()) == Some(n));
                    let name = ["drive", "recovered-drive"]
                        .into_iter()
                        .find(|n| !taken(n))
                        .unwrap_or("recovered-from");
                    let mut x = toml::Table::new();
                    x.insert("name".into(), toml::Value::String(name.into()));
                    x.insert("kind".into(), toml::Value::String("dir".into()));
                    x.insert("path".into(), path);
                    targets.push(toml::Value::Table(x));
                }
            }
        }
    }
    let header: String =
        setup.config.lines().take_while(|l| l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    Ok(format!("{header}{notes}{}", toml::to_string(&t).context("cannot render the recovered config")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_keeps_this_source_and_no_credential() {
        let raw = r#"
state_dir = "/home/me/.state"
[[source]]
name = "opus"
path = "/home/me/opus"
mirror = "https://me:hunter2@git.example/opus.git"
token_env = "GH_TOKEN"
[[source]]
name = "diary"
path = "/home/me/diary"
[[target]]
name = "s3"
kind = "rclone"
remote = ":s3,access_key_id=AKIA,secret_access_key=SECRET:bucket"
[[target]]
name = "drive"
kind = "dir"
path = "/media/usb/opus-bundles"
[notify]
webhook = "https://hooks.example/x?token=abc"
"#;
        let (text, removed) = reduce(raw, "opus").unwrap();
        for gone in ["hunter2", "SECRET", "AKIA", "abc", "diary", ".state"] {
            assert!(!text.contains(gone), "{gone} is in the record:\n{text}");
        }
        assert!(text.contains("GH_TOKEN") && text.contains("/media/usb/opus-bundles"), "{text}");
        assert_eq!(removed, ["notify.webhook", "source[1].mirror", "target[1].remote"]);
    }

    #[test]
    fn recover_puts_the_source_and_the_drive_where_they_are_now() {
        let setup = Setup {
            config: "# head\n[[source]]\nname = \"opus\"\npath = \"/old/opus\"\n\n[[target]]\nname = \"usb\"\nkind = \"dir\"\npath = \"/media/old/opus-bundles\"\n".into(),
            remotes: BTreeMap::new(),
        };
        let text = recovered_config(
            &setup,
            "opus",
            Path::new("/new/opus"),
            Recovered::Drive(Path::new("/mnt/x/opus-bundles")),
        )
        .unwrap();
        assert!(text.starts_with("# head\n"), "{text}");
        assert!(
            text.contains("path = \"/new/opus\"") && text.contains("path = \"/mnt/x/opus-bundles\""),
            "{text}"
        );
        assert!(text.contains("name = \"usb\""), "{text}");
    }

    #[test]
    fn a_target_that_lost_its_remote_is_left_out_and_the_one_recovered_from_added() {
        let raw = "[[source]]\nname = \"opus\"\npath = \"/old\"\n[[target]]\nname = \"s3\"\nkind = \"rclone\"\nremote = \":s3,secret_access_key=X:b\"\n";
        let (config, _) = reduce(raw, "opus").unwrap();
        let setup = Setup { config, remotes: BTreeMap::new() };
        let text =
            recovered_config(&setup, "opus", Path::new("/new"), Recovered::Rclone("cloud:b/opus")).unwrap();
        assert!(text.contains("# left out: target `s3`"), "{text}");
        assert!(text.contains("remote = \"cloud:b/opus\"") && !text.contains("name = \"s3\""), "{text}");
    }
}
