//! `ddfr backup DEST` and `ddfr restore SRC`: an online, consistent copy of the SQLite
//! database (`VACUUM INTO`, safe while `ddfr serve` is writing) and its restoration into a data
//! dir. Both check the copy (`quick_check` at open, then the counts) and print a JSON summary.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use ddfr_store::{PersonStore, SQLITE_FILE_NAME, SqliteStore, VisitorStore};
use serde::Serialize;

/// Options of `ddfr backup`.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The backup file to write (must not exist).
    pub dest: PathBuf,
    /// The data dir of the service (as `ddfr serve --data-dir`).
    #[arg(long, env = "DDFR_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
}

/// Options of `ddfr restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// A backup written by `ddfr backup`.
    pub src: PathBuf,
    /// The data dir to restore into (stop `ddfr serve` first).
    #[arg(long, env = "DDFR_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Replace an existing database; it is kept as `ddfr.db.before-restore-<unix time>`.
    #[arg(long)]
    pub force: bool,
}

/// What a backup or restore produced.
#[derive(Debug, Serialize)]
struct Summary {
    file: String,
    bytes: u64,
    persons: u64,
    faces: u64,
    unknown_visitors: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    replaced: Option<String>,
}

/// Opens a database file read-write (running `quick_check` and migrations) and counts it.
async fn summarize(file: &Path, replaced: Option<String>) -> Result<Summary> {
    let store = SqliteStore::open(&file.to_string_lossy())
        .await
        .with_context(|| format!("{} is not a usable ddfr database", file.display()))?;
    let summary = Summary {
        file: file.display().to_string(),
        bytes: std::fs::metadata(file)?.len(),
        persons: store.count_persons().await?,
        faces: store.count_faces().await?,
        unknown_visitors: store.visitors().await?.len(),
        replaced,
    };
    store.close().await;
    Ok(summary)
}

fn print(summary: &Summary) -> Result<()> {
    crate::output::emit_json(summary)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// `ddfr backup`.
pub fn backup(args: &BackupArgs) -> Result<()> {
    let db = args.data_dir.join(SQLITE_FILE_NAME);
    if !db.is_file() {
        bail!("no database at {}: nothing to back up", db.display());
    }
    if args.dest.exists() {
        bail!("{} exists; a backup never overwrites a file", args.dest.display());
    }
    runtime()?.block_on(async {
        let store = SqliteStore::open_in_dir(&args.data_dir)
            .await
            .with_context(|| format!("opening {}", db.display()))?;
        store
            .backup_to(&args.dest)
            .await
            .with_context(|| format!("writing the backup {}", args.dest.display()))?;
        store.close().await;
        print(&summarize(&args.dest, None).await?)
    })
}

/// `ddfr restore`.
pub fn restore(args: &RestoreArgs) -> Result<()> {
    if !args.src.is_file() {
        bail!("no backup at {}", args.src.display());
    }
    let db = args.data_dir.join(SQLITE_FILE_NAME);
    if db.exists() && !args.force {
        bail!(
            "{} exists; stop ddfr serve and pass --force to replace it (it is kept aside)",
            db.display()
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    runtime()?.block_on(async {
        // Check the backup on a copy first: opening migrates, and the source stays untouched.
        let staged = args.data_dir.join(format!("{SQLITE_FILE_NAME}.restoring"));
        let _ = std::fs::remove_file(&staged);
        std::fs::copy(&args.src, &staged)
            .with_context(|| format!("copying {} to {}", args.src.display(), staged.display()))?;
        if let Err(error) = summarize(&staged, None).await {
            let _ = std::fs::remove_file(&staged);
            return Err(error);
        }
        // The staged copy is now a checked, checkpointed database file.
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(PathBuf::from(format!("{}{suffix}", staged.display())));
        }
        let replaced = if db.exists() {
            let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let aside = args.data_dir.join(format!("{SQLITE_FILE_NAME}.before-restore-{seconds}"));
            std::fs::rename(&db, &aside)
                .with_context(|| format!("moving {} aside", db.display()))?;
            for suffix in ["-wal", "-shm"] {
                let _ =
                    std::fs::remove_file(args.data_dir.join(format!("{SQLITE_FILE_NAME}{suffix}")));
            }
            Some(aside.display().to_string())
        } else {
            None
        };
        std::fs::rename(&staged, &db)
            .with_context(|| format!("moving the restored database to {}", db.display()))?;
        print(&summarize(&db, replaced).await?)
    })
}
