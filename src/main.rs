//! The opus-mirror binary: parse, run, turn the outcome into an exit code. Nothing else.

use std::process::ExitCode;

use clap::Parser;
use opus_mirror::{app, cli::Cli, output::QuietPipe};
use opus_mirror_core::classify;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return app::command_line_error(err),
    };
    app::init_logging(&cli.global);
    // `opus-mirror log | head -1`: the reader may leave early; see `QuietPipe`. A broken
    // pipe that reaches here is another one (a child that died) and fails as any error.
    let mut out = QuietPipe::new(std::io::stdout().lock());
    match app::run(cli, &mut out) {
        Ok(e) => ExitCode::from(e.code()),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(classify::exit_for(&err).code())
        }
    }
}
