//! Command-line arguments. Every flag has a `DDFR_*` environment variable and a doc comment
//! that becomes its `--help` text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::engine::EngineArgs;

/// ddfr: self-hosted real-time face recognition.
#[derive(Debug, Parser)]
#[command(name = "ddfr", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: REST API, the /ws WebSocket and the web app.
    Serve(Box<crate::settings::ServeArgs>),
    /// Detect faces in images and print them as JSON (pixel boxes and detection scores).
    Recognize {
        /// JPEG, PNG or WebP files.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Compare the largest face of two images: `{"similarity", "match", "threshold"}`.
    Verify {
        /// First image.
        a: PathBuf,
        /// Second image.
        b: PathBuf,
        /// Minimum cosine similarity for a match (default: the pack's calibrated threshold).
        #[arg(long, env = "DDFR_MATCH_THRESHOLD")]
        threshold: Option<f32>,
    },
    /// Measure the pipeline stage by stage and the gallery search; prints a report.
    Bench(crate::commands::bench::BenchArgs),
    /// Measure recognition quality on labelled photos (`DIR/<identity>/*.jpg`): verification
    /// accuracy, ROC, open-set identification, the impostor-score model.
    Evaluate(crate::commands::evaluate::EvaluateArgs),
    /// Suggest a threshold for a target false-accept rate from the enrolled gallery.
    Calibrate(crate::commands::calibrate::CalibrateArgs),
    /// Write a consistent copy of the SQLite database, safe while `ddfr serve` runs.
    Backup(crate::commands::backup::BackupArgs),
    /// Restore a backup into a data dir (stop `ddfr serve` first).
    Restore(crate::commands::backup::RestoreArgs),
    /// Manage the API keys offline: create (prints the secret once), list, revoke. A running
    /// server sees the change at its next start; use /api/keys on a running server.
    Keys(crate::commands::keys::KeysArgs),
}
