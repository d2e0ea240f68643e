//! Private by default: with a umask of 022, another local user reads nothing opus-mirror
//! wrote — the backup repo, history, scratch, bundles on a drive, an unbundled repo, a
//! restored copy. CI runs as root: the test creates the other user (`useradd`) and reads as it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::helpers::{vaultgen, Env};

const OTHER: &str = "om-other";

/// An ordinary user to read as; None (with a loud message) when we cannot make one.
pub(crate) fn other_user() -> Option<&'static str> {
    let exists = Command::new("id").arg(OTHER).output().is_ok_and(|o| o.status.success());
    if !exists {
        let made = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER])
            .status()
            .is_ok_and(|s| s.success());
        let raced = Command::new("id").arg(OTHER).output().is_ok_and(|o| o.status.success());
        if !made && !raced {
            crate::helpers::servers::missing("useradd (root)", "another_user_reads_nothing_we_wrote");
            return None;
        }
    }
    Some(OTHER)
}

/// Whether `user` can read the file at `path`.
fn can_read(user: &str, path: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", user, "--", "cat"])
        .arg(path)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn another_user_reads_nothing_we_wrote() {
    let Some(user) = other_user() else { return };
    let env = Env::new();
    // Only our own modes may protect the files: open the test's own temp dir to everyone.
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let vault = env.path("vault");
    vaultgen::create(&vault, &vaultgen::Spec { notes: 6, attachments: 1, ..Default::default() });
    fs::write(vault.join("diary.md"), "PRIVATE DIARY\n").unwrap();
    fs::set_permissions(vault.join("diary.md"), fs::Permissions::from_mode(0o600)).unwrap();
    let drive = env.path("drive");
    env.write_config_with_drive("life", &vault, "", &drive, "");
    // The user's own umask is the common 022.
    let sh = |args: &str| {
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!("umask 022; exec {} {args}", crate::helpers::bin()));
        env.isolate(&mut c);
        let o = c.output().unwrap();
        assert!(o.status.success(), "{args}: {}", String::from_utf8_lossy(&o.stderr));
    };
    sh("init");
    sh("snapshot");
    sh("bundle");
    let restored = env.path("restored");
    sh(&format!("restore --to {}", restored.display()));
    let unbundled = env.path("unbundled.git");
    sh(&format!("unbundle --to {}", unbundled.display()));

    let mut leaks = Vec::new();
    for root in [&env.state, &drive, &restored, &unbundled] {
        for e in walkdir::WalkDir::new(root).into_iter().flatten() {
            if e.file_type().is_file() && can_read(user, e.path()) {
                leaks.push(e.path().display().to_string());
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{user} can read {} file(s) we wrote, e.g.:\n{}",
        leaks.len(),
        leaks[..leaks.len().min(8)].join("\n")
    );
    let diary = restored.join("diary.md");
    assert_eq!(
        fs::metadata(&diary).unwrap().permissions().mode() & 0o777,
        0o600,
        "the 0600 note came back with other bits"
    );
    assert_eq!(fs::read_to_string(diary).unwrap(), "PRIVATE DIARY\n");
}
