//! `opus-mirror demo`: the whole story on the bundled demo vault, inside one temp directory:
//! snapshot, a change, a diff, a misfiring script, a restore, and stock git agreeing.

use std::fs;
use std::path::Path;
use std::process::Command as Proc;

use anyhow::{bail, Result};

use crate::cli::DemoArgs;
use crate::context::Context;
use opus_mirror_core::config;
use opus_mirror_core::exit::Exit;
use opus_mirror_core::git::BackupRepo;
use opus_mirror_core::restore;
use opus_mirror_core::snapshot::{self, diff, history};
use opus_mirror_core::steps::describe;

/// One entry of the embedded demo vault: a directory, a file (bytes, executable) or a
/// symlink (target).
pub enum DemoEntry {
    Dir(&'static str),
    File(&'static str, &'static [u8], bool),
    Link(&'static str, &'static str),
}

include!(concat!(env!("OUT_DIR"), "/demo_vault.rs"));

/// Writes the embedded demo vault into `to` (which the caller just created, empty).
fn write_demo_vault(to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(to)?;
    for e in DEMO_VAULT {
        match e {
            DemoEntry::Dir(rel) => fs::create_dir_all(to.join(rel))?,
            DemoEntry::File(rel, bytes, exec) => {
                fs::write(to.join(rel), bytes)?;
                if *exec {
                    fs::set_permissions(to.join(rel), fs::Permissions::from_mode(0o755))?;
                }
            }
            DemoEntry::Link(rel, target) => std::os::unix::fs::symlink(target, to.join(rel))?,
        }
    }
    Ok(())
}

pub fn run(ctx: &mut Context, args: &DemoArgs) -> Result<Exit> {
    let tmp;
    let base = match &args.keep {
        Some(d) => {
            fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("opus-mirror-demo-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let vault = base.join("vault");
    if vault.exists() {
        bail!("{} already exists\n  fix: give --keep an empty directory", vault.display());
    }
    write_demo_vault(&vault)?;
    fs::create_dir_all(vault.join("inbox"))?;
    fs::write(vault.join(".env"), "API_TOKEN=not-for-backups\n")?;
    let cfg_path = base.join("config.toml");
    let text = config::starter_config(Some(&base.join("state")), &[("demo".into(), vault.clone())]);
    fs::write(&cfg_path, text)?;
    let cfg = config::load(&cfg_path, &|k| {
        if k == "HOME" {
            std::env::var(k).ok()
        } else {
            None
        }
    })?;
    let source = &cfg.sources[0];
    let _lock = ctx.lock(&cfg)?;

    ctx.say(format!("opus-mirror demo in {}", base.display()))?;
    ctx.say(format!(
        "vault: {} (notes, an attachment, .obsidian/, a unicode name, a symlink,",
        vault.display()
    ))?;
    ctx.say("       an executable script, an empty folder, and a .env secret that stays out)")?;
    ctx.say(format!("config: {}\n", cfg_path.display()))?;

    ctx.say("$ opus-mirror snapshot")?;
    let first = snapshot::take(&cfg, source, ctx.now)?;
    ctx.say(format!("  {}", describe(&first)))?;
    let again = snapshot::take(&cfg, source, ctx.now)?;
    ctx.say(format!("$ opus-mirror snapshot   # again, nothing changed\n  {}", describe(&again)))?;

    ctx.say("\n# a day of work: edit a note, delete one, add an attachment")?;
    let plan = vault.join("10_projects/opus/Backup plan.md");
    let mut text = fs::read_to_string(&plan)?;
    text.push_str("- [x] ran the opus-mirror demo\n");
    fs::write(&plan, text)?;
    fs::remove_file(vault.join("journal/2026/2026-11-23.md"))?;
    fs::write(vault.join("attachments/scan.pdf"), b"%PDF-1.4\n% demo attachment\n")?;
    ctx.say("$ opus-mirror diff")?;
    let (repo, live) = snapshot::build_live(&cfg, source)?;
    let odb = repo.repo.odb()?;
    let prev_tree = repo
        .repo
        .find_commit(git2::Oid::from_str(first.snapshot.as_deref().expect("first snapshot exists"))?)?
        .tree_id();
    for c in diff::diff(&odb, &live.trees, Some(prev_tree), Some(live.tree))? {
        ctx.say(format!("  {} {}", format!("{:?}", c.kind).to_lowercase(), c.path))?;
    }
    let second = snapshot::take(&cfg, source, ctx.now)?;
    ctx.say(format!("$ opus-mirror snapshot\n  {}", describe(&second)))?;

    ctx.say("\n# a misfiring script deletes 10_projects/ and empties a note")?;
    fs::remove_dir_all(vault.join("10_projects"))?;
    fs::write(vault.join("20_areas/health/Sleep.md"), "")?;
    let info = history::resolve(&repo, &source.snapshot_branch, &source.name, &history::Pick::Latest)?;
    let items = restore::select(&odb, git2::Oid::from_str(&info.tree)?, &[], &info.short)?;
    let modes = history::modes(&repo, &info)?;
    let safety = snapshot::take(&cfg, source, ctx.now)?;
    ctx.say(format!("$ opus-mirror restore --in-place --snapshot {}", info.short))?;
    ctx.say(format!("  safety snapshot first: {}", describe(&safety)))?;
    // The damage happened "after" the snapshot, so the emptied note counts as newer: the
    // demo passes --overwrite, as a user who knows the script did it would.
    let rep = restore::in_place(
        &repo,
        &items,
        &vault,
        &info.short,
        info.at - chrono::Duration::days(1),
        restore::InPlace { overwrite: true, dry_run: false },
        modes.as_ref(),
    )?;
    ctx.say(format!("  restored {} item(s); {} were already identical", rep.restored, rep.unchanged))?;

    let copy = base.join("restored");
    ctx.say(format!("\n$ opus-mirror restore --to {}", copy.display()))?;
    let rep = restore::to_dir(&repo, &items, &copy, false, &info.short, modes.as_ref())?;
    ctx.say(format!("  restored {} item(s)", rep.restored))?;
    let check_src = config::Source { path: copy.clone(), ..source.clone() };
    let (_, rebuilt) = snapshot::build_live(&cfg, &check_src)?;
    let same = rebuilt.tree.to_string() == info.tree;
    ctx.say(format!(
        "  restored tree {} the snapshot's tree ({}): every byte, mode, link and empty folder",
        if same { "equals" } else { "DIFFERS FROM" },
        crate::output::short_id(&info.tree)
    ))?;

    // The main job: one `run` with a mirror remote and a "drive" in the temp dir.
    let mirror = base.join("mirror.git");
    git2::Repository::init_bare(&mirror)?;
    let drive = base.join("drive");
    let mut text = fs::read_to_string(&cfg_path)?;
    text =
        text.replace("exclude = []", &format!("exclude = []\nmirror = {:?}", mirror.display().to_string()));
    text.push_str(&format!(
        "\n[[target]]\nname = \"drive\"\nkind = \"dir\"\npath = {:?}\nmode = \"incremental\"\nkeep = {{ daily = 7, weekly = 4 }}\n",
        drive.display().to_string()
    ));
    fs::write(&cfg_path, text)?;
    let cfg = config::load(&cfg_path, &|k| if k == "HOME" { std::env::var(k).ok() } else { None })?;
    opus_mirror_core::target::dir::mark("drive", &drive, &cfg.state_dir, ctx.now)?;
    ctx.say(format!("\n# the main job, as the post-session hook and the daily timer run it\n$ opus-mirror run   # mirror {} and drive {}", mirror.display(), drive.display()))?;
    let sources: Vec<&config::Source> = cfg.sources.iter().collect();
    let report = opus_mirror_core::run::run(
        &cfg,
        &sources,
        opus_mirror_core::run::Trigger::Manual,
        false,
        ctx.now,
        &crate::output::NoProgress,
    )?;
    for s in &report.steps {
        let target = s.target.as_deref().map(|t| format!(" → {t}")).unwrap_or_default();
        ctx.say(format!(
            "  {:<7} {:<9}{:<9} {}",
            s.outcome,
            s.step,
            target,
            s.detail.lines().next().unwrap_or("")
        ))?;
    }
    let bundle = fs::read_dir(&drive)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "bundle"));
    if let Some(b) = bundle {
        ctx.say(format!("  worst day, with nothing but git: git clone -b snapshot {} vault", b.display()))?;
    }

    let git_dir = BackupRepo::location(&cfg.state_dir, &source.name);
    ctx.say(format!("\n$ git --git-dir {} log --oneline {}", git_dir.display(), source.snapshot_branch))?;
    match Proc::new("git")
        .arg("--git-dir")
        .arg(&git_dir)
        .args(["log", "--oneline", &source.snapshot_branch])
        .output()
    {
        Ok(o) => {
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                ctx.say(format!("  {l}"))?;
            }
        }
        Err(_) => ctx.say("  (git is not installed; skipped)")?,
    }
    if args.keep.is_none() {
        ctx.say("\n(the demo directory is removed now; pass --keep DIR to look around)")?;
    }
    Ok(if same && report.exit != Exit::Failed { Exit::Ok } else { Exit::Failed })
}

#[cfg(test)]
mod embedded_tests {
    use super::*;

    /// The embedded vault is the fixture on disk, entry for entry.
    #[test]
    fn the_embedded_demo_vault_is_the_fixture() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        write_demo_vault(&dir.path().join("v")).unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo-vault");
        let list = |root: &Path| -> Vec<(std::path::PathBuf, Vec<u8>, bool)> {
            walkdir::WalkDir::new(root)
                .sort_by_file_name()
                .into_iter()
                .flatten()
                .map(|e| {
                    let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
                    let ft = e.file_type();
                    let data = if ft.is_symlink() {
                        fs::read_link(e.path()).unwrap().into_os_string().into_encoded_bytes()
                    } else if ft.is_file() {
                        fs::read(e.path()).unwrap()
                    } else {
                        Vec::new()
                    };
                    let exec = ft.is_file() && e.metadata().unwrap().permissions().mode() & 0o111 != 0;
                    (rel, data, exec)
                })
                .collect()
        };
        let (want, got) = (list(&fixture), list(&dir.path().join("v")));
        assert!(want.len() > 10, "{want:?}");
        assert_eq!(want, got);
    }
}
