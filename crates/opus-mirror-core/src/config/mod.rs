//! Configuration: found, parsed, layered and validated here and nowhere else.
//!
//! Layers, weakest first: the TOML file < a `.env` file next to it < `OPUS_MIRROR_*`
//! environment variables < command-line flags. Every error names the file, the line and the
//! key, and says what to do; they all exit with [`crate::exit::Exit::Usage`].
//!
//! The files, in the order a config passes through them: `load` finds the file and reads it
//! with the `.env` beside it (`dotenv`); `raw` is the shape serde reads; `validate` turns it
//! into `types`, what the rest of the engine receives, resolving the paths it names (`paths`)
//! and recording where each setting came from (`origins`, with the lines from `spans`);
//! `render` shows it for `config check`, `mask` hides its credentials wherever they are
//! shown; `starter` is what `init` writes; `error` is the one error they all return.

mod dotenv;
mod error;
mod load;
mod mask;
mod origins;
mod paths;
mod raw;
mod render;
mod spans;
mod starter;
mod types;
mod validate;

pub use error::ConfigError;
pub use load::{load, locate};
pub use mask::{mask, mask_endpoint, mask_url, mask_urls_in, secret_key};
pub use paths::xdg_dir;
pub use render::{effective_rest, render_effective};
pub use starter::{name_for, starter_config, uncomment_examples};
pub use types::{
    url_host, Channel, Config, Guard, Hooks, MirrorRefs, Network, NotifyConfig, Source, Target, TargetKind,
    Timeouts, Transport,
};
pub use validate::keep_matcher;

/// The file name of the configuration inside `$XDG_CONFIG_HOME/opus-mirror/`.
pub const CONFIG_FILE_NAME: &str = "config.toml";
/// The default name of the orphan branch that holds a source's snapshots.
pub const DEFAULT_SNAPSHOT_BRANCH: &str = "snapshot";
/// Where old tips are kept, in the backup repo and on the mirror.
pub const PRESERVED: &str = "refs/opus-mirror/preserved/";

/// Environment variables (and `.env` keys) that override the file. Kept in one table so that
/// `.env.example`, `config check` and the parser cannot drift apart.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("OPUS_MIRROR_CONFIG", "path of the config file (not allowed inside .env)"),
    ("OPUS_MIRROR_STATE_DIR", "overrides state_dir"),
    ("OPUS_MIRROR_LOG", "log filter for stderr, e.g. info or opus_mirror=debug"),
];
