//! Finding and reading the config: which file (`--config`, `$OPUS_MIRROR_CONFIG`, XDG), that
//! no other user can write it, and the `.env` beside it; then [`super::validate`] does the rest.

use std::path::{Path, PathBuf};

use super::dotenv::load_dotenv;
use super::error::ConfigError;
use super::paths::xdg_dir;
use super::types::Config;
use super::validate::parse;
use super::CONFIG_FILE_NAME;

/// Where the config file is: `--config`, else `$OPUS_MIRROR_CONFIG`, else
/// `$XDG_CONFIG_HOME/opus-mirror/config.toml` (`~/.config` when XDG is unset).
pub fn locate(flag: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, ConfigError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = env("OPUS_MIRROR_CONFIG").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    Ok(xdg_dir(env, "XDG_CONFIG_HOME", ".config")?.join("opus-mirror").join(CONFIG_FILE_NAME))
}

/// Loads and validates the configuration at `path`. `env` reads the process environment
/// (passed in so tests control it).
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError {
                file: Some(path.to_path_buf()),
                line: None,
                key: None,
                problem: "the config file does not exist".into(),
                fix: "create it with `opus-mirror init --source PATH`, or point --config / OPUS_MIRROR_CONFIG at yours".into(),
            })
        }
        Err(e) => {
            return Err(ConfigError {
                file: Some(path.to_path_buf()),
                line: None,
                key: None,
                problem: format!("cannot read the config file: {e}"),
                fix: "check the file's permissions".into(),
            })
        }
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    refuse_writable_by_others(path)?;
    refuse_writable_by_others(&base)?;
    refuse_writable_by_others(&base.join(".env"))?;
    let dotenv = load_dotenv(&base.join(".env"))?;
    parse(path, &text, &dotenv, env)
}

/// The config says which commands to run (notify, hooks) and where backups go: like ssh with
/// its keys, we refuse one that another user could have changed. A missing file is fine.
fn refuse_writable_by_others(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else { return Ok(()) };
    let sticky_dir = meta.is_dir() && meta.mode() & 0o1000 != 0;
    if meta.mode() & 0o022 == 0 || sticky_dir {
        return Ok(());
    }
    Err(ConfigError {
        file: Some(path.to_path_buf()),
        line: None,
        key: None,
        problem: format!(
            "is writable by other users (mode {:o}): anyone who can change it chooses the commands opus-mirror runs and where your backups go",
            meta.mode() & 0o7777
        ),
        fix: format!("chmod go-w {}", crate::shell::quote(&path.display().to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn locate_prefers_flag_then_env_then_xdg() {
        let env = |k: &str| match k {
            "OPUS_MIRROR_CONFIG" => Some("/e/c.toml".to_string()),
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        };
        assert_eq!(locate(Some(Path::new("/f.toml")), &env).unwrap(), PathBuf::from("/f.toml"));
        assert_eq!(locate(None, &env).unwrap(), PathBuf::from("/e/c.toml"));
        let home_only = |k: &str| (k == "HOME").then(|| "/home/u".to_string());
        assert_eq!(
            locate(None, &home_only).unwrap(),
            PathBuf::from("/home/u/.config/opus-mirror/config.toml")
        );
        assert!(locate(None, &no_env).is_err());
    }
}
