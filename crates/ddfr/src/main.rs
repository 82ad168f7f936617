//! The `ddfr` command line: `serve`, `recognize`, `verify`, `bench`, `evaluate`, `calibrate`.

mod cli;
mod commands;
mod engine;
mod output;
mod settings;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            output::report_error(&error);
            ExitCode::FAILURE
        }
    }
}
