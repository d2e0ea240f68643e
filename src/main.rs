//! The opus-mirror binary: parse, run, turn the outcome into an exit code. Nothing else.

use std::process::ExitCode;

use clap::Parser;
use opus_mirror::{app, cli::Cli, exit};

fn main() -> ExitCode {
    let cli = Cli::parse();
    app::init_logging(&cli.global);
    let mut out = std::io::stdout().lock();
    match app::run(cli, &mut out) {
        Ok(e) => ExitCode::from(e.code()),
        // `opus-mirror log | head -1`: the reader left early; nothing went wrong here.
        Err(err) if exit::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit::exit_for(&err).code())
        }
    }
}
