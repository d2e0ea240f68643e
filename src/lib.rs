//! The opus-mirror command line: clap types (`cli`), one module per subcommand
//! (`commands`), the context they share, terminal output and progress (`output`), the `--json`
//! envelope and the demo. Every capability lives in the engine crate, `opus_mirror_core`;
//! `main.rs` is a thin shell over `app`.

pub mod app;
pub mod cli;
pub mod commands;
pub mod context;
pub mod demo;
pub mod envelope;
pub mod output;

pub use opus_mirror_core::Exit;
