//! What the `ddfr` command-line tests share: running the built binary hermetically, finding the
//! checkout's models and the test data, reading JSON output.

#![allow(dead_code, clippy::print_stdout)] // Each test binary uses a subset; SKIPPED goes to stdout.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the built `ddfr` with `args`. The binary may live outside the checkout
/// (CARGO_TARGET_DIR), so the models directory is named; settings that would change answers
/// are cleared from the environment.
pub fn ddfr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ddfr"))
        .env("DDFR_MODELS_DIR", repo_root().join("models"))
        .env_remove("DDFR_MATCH_THRESHOLD")
        .env_remove("DDFR_DATABASE_URL")
        .env_remove("DDFR_PACK")
        .args(args)
        .output()
        .expect("run ddfr")
}

/// The checkout.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The test data when it and the models are there; prints SKIPPED and gives `None` otherwise.
pub fn ready() -> Option<PathBuf> {
    let testdata = std::env::var_os("DDFR_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/testdata"));
    if !repo_root().join("models/dlib_resnet_v1.onnx").is_file() || !testdata.join("faces").is_dir()
    {
        println!("SKIPPED: models/ (scripts/setup) or the test data is missing");
        return None;
    }
    Some(testdata)
}

/// The JSON a successful run printed.
pub fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "ddfr failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}
