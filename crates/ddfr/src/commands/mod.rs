//! Subcommand dispatch.

pub mod backup;
pub mod bench;
pub mod calibrate;
pub mod evaluate;
pub mod keys;
mod manifest;
mod recognize;
pub mod serve;
mod verify;

use anyhow::Result;

use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(&cli.engine, &args),
        Command::Recognize { images } => recognize::run(&cli.engine, &images),
        Command::Verify { a, b, threshold } => verify::run(&cli.engine, &a, &b, threshold),
        Command::Bench(args) => bench::run(&cli.engine, &args),
        Command::Evaluate(args) => evaluate::run(&cli.engine, &args),
        Command::Calibrate(args) => calibrate::run(&cli.engine, &args),
        Command::Backup(args) => backup::backup(&args),
        Command::Restore(args) => backup::restore(&args),
        Command::Keys(args) => keys::run(&args),
    }
}

/// Reads and decodes an image file with the photo limits.
pub fn read_photo(path: &std::path::Path) -> Result<image::RgbImage> {
    use anyhow::Context;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    ddfr_engine::decode::decode_image(&bytes, &ddfr_engine::decode::DecodeLimits::PHOTO)
        .with_context(|| format!("{} is not a usable image", path.display()))
}
