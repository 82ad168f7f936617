//! `ddfr backup DEST` and `ddfr restore SRC`: an online, consistent copy of the SQLite
//! database (`VACUUM INTO`, safe while `ddfr serve` is writing) and its restoration into a data
//! dir. Both check the copy (`quick_check` at open, then the counts) and print a JSON summary.
//! An encrypted database is copied as it is (still encrypted); both commands need its key
//! (`DDFR_ENCRYPTION_KEY_FILE`) to check the copy. Neither encrypts a plaintext database: only
//! `ddfr serve` turns encryption on (a backup runs beside a server that has the file open).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use ddfr_store::{PersonStore, SQLITE_FILE_NAME, SqliteStore, StoreOptions, VisitorStore};
use serde::Serialize;

/// Options of `ddfr backup`.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The backup file to write (must not exist).
    pub dest: PathBuf,
    /// The data dir of the service (as `ddfr serve --data-dir`).
    #[arg(long, env = "DDFR_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// The key file of an encrypted database (as `ddfr serve --encryption-key-file`).
    #[arg(long, env = "DDFR_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
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
    /// The key file of an encrypted backup (as `ddfr serve --encryption-key-file`).
    #[arg(long, env = "DDFR_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
}

/// What a backup or restore produced.
#[derive(Debug, Serialize)]
struct Summary {
    file: String,
    bytes: u64,
    persons: u64,
    faces: u64,
    unknown_visitors: usize,
    encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    replaced: Option<String>,
}

/// Opens a database file read-write (running `quick_check`, the key check and migrations) and
/// counts it; reading the visitors decrypts their values, so a wrong key cannot pass.
async fn summarize(
    file: &Path,
    replaced: Option<String>,
    options: &StoreOptions,
) -> Result<Summary> {
    let store = SqliteStore::open_with_options(&file.to_string_lossy(), options)
        .await
        .map_err(crate::settings::explain_store_error)
        .with_context(|| format!("{} is not a usable ddfr database", file.display()))?;
    let summary = Summary {
        file: file.display().to_string(),
        bytes: std::fs::metadata(file)?.len(),
        persons: store.count_persons().await?,
        faces: store.count_faces().await?,
        unknown_visitors: store.visitors().await?.len(),
        encrypted: store.is_encrypted(),
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

/// Store options for `key_file` that never encrypt a plaintext database.
fn options(key_file: Option<&Path>) -> Result<StoreOptions> {
    let options = crate::settings::store_options(key_file)?;
    Ok(StoreOptions { encrypt_plaintext: false, ..options })
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
    let options = options(args.encryption_key_file.as_deref())?;
    runtime()?.block_on(async {
        let store = SqliteStore::open_in_dir_with_options(&args.data_dir, &options)
            .await
            .map_err(crate::settings::explain_store_error)
            .with_context(|| format!("opening {}", db.display()))?;
        store
            .backup_to(&args.dest)
            .await
            .with_context(|| format!("writing the backup {}", args.dest.display()))?;
        store.close().await;
        print(&summarize(&args.dest, None, &options).await?)
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
    let options = options(args.encryption_key_file.as_deref())?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    runtime()?.block_on(async {
        // Check the backup on a copy first: opening migrates, and the source stays untouched.
        let staged = args.data_dir.join(format!("{SQLITE_FILE_NAME}.restoring"));
        let _ = std::fs::remove_file(&staged);
        std::fs::copy(&args.src, &staged)
            .with_context(|| format!("copying {} to {}", args.src.display(), staged.display()))?;
        // The staged file is itself a copy: no pre-migration copy of it.
        let staged_options = StoreOptions { migration_backups: 0, ..options.clone() };
        if let Err(error) = summarize(&staged, None, &staged_options).await {
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
        print(&summarize(&db, replaced, &options).await?)
    })
}
