//! `ddfr backup DEST` and `ddfr restore SRC`: an online, consistent copy of the SQLite
//! database (`VACUUM INTO`, safe while `ddfr serve` is writing) with its manifest
//! (`DEST.manifest.json`: file digest, counts, every crop's digest; see [`super::manifest`]), and
//! its restoration into a data dir. Both check the copy (`quick_check` at open, the counts, and
//! the manifest) and print a JSON summary. Face crops are BLOBs in the database, so the one file
//! is the whole backup; a plain file copy of a live database is never used.
//! An encrypted database is copied as it is (still encrypted); both commands need its key
//! (`DDFR_ENCRYPTION_KEY_FILE`) to check the copy. Neither encrypts a plaintext database: only
//! `ddfr serve` turns encryption on (a backup runs beside a server that has the file open).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use ddfr_store::{PersonStore, SQLITE_FILE_NAME, SqliteStore, StoreOptions};
use serde::Serialize;

use super::manifest::{Contents, Manifest, path_for};

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
    /// The backup's manifest (default: `SRC.manifest.json`). Without one, the backup is still
    /// checked, but not verified against its digests.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

/// What a backup or restore produced.
#[derive(Debug, Serialize)]
struct Summary {
    file: String,
    bytes: u64,
    persons: u64,
    faces: u64,
    unknown_visitors: u64,
    encrypted: bool,
    /// The manifest written (backup) or verified (restore); `null` for a restore without one.
    manifest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replaced: Option<String>,
}

/// Opens a database file read-write (running `quick_check`, the key check and migrations),
/// counts it and digests its crops; reading the crops and visitors decrypts them, so a wrong key
/// cannot pass. The file is closed (checkpointed) on return.
async fn inspect(file: &Path, options: &StoreOptions) -> Result<(Contents, bool)> {
    let store = SqliteStore::open_with_options(&file.to_string_lossy(), options)
        .await
        .map_err(crate::settings::explain_store_error)
        .with_context(|| format!("{} is not a usable ddfr database", file.display()))?;
    let contents = Contents::of(&store).await;
    let encrypted = store.is_encrypted();
    store.close().await;
    Ok((contents?, encrypted))
}

fn summary(file: &Path, contents: &Contents, encrypted: bool) -> Result<Summary> {
    Ok(Summary {
        file: file.display().to_string(),
        bytes: std::fs::metadata(file)?.len(),
        persons: contents.persons,
        faces: contents.faces,
        unknown_visitors: contents.unknown_visitors,
        encrypted,
        manifest: None,
        replaced: None,
    })
}

/// Checks `contents` against the manifest, if there is one.
fn verify(contents: &Contents, manifest: Option<&(Manifest, PathBuf)>) -> Result<()> {
    match manifest.and_then(|(m, path)| Some((contents.difference(&m.contents)?, path))) {
        Some((difference, path)) => {
            bail!("the backup does not match {}: {difference}", path.display())
        }
        None => Ok(()),
    }
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
    let manifest_path = path_for(&args.dest);
    for path in [&args.dest, &manifest_path] {
        if path.exists() {
            bail!("{} exists; a backup never overwrites a file", path.display());
        }
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
        // The manifest describes the copy as written (and checked), not the live database.
        let (contents, encrypted) = inspect(&args.dest, &options).await?;
        let mut summary = summary(&args.dest, &contents, encrypted)?;
        Manifest::new(&args.dest, encrypted, contents)?.write(&manifest_path)?;
        summary.manifest = Some(manifest_path.display().to_string());
        print(&summary)
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
    let manifest = match &args.manifest {
        Some(path) => Some((Manifest::read(path)?, path.clone())),
        None => {
            let path = path_for(&args.src);
            path.exists().then(|| Manifest::read(&path).map(|m| (m, path))).transpose()?
        }
    };
    if let Some((manifest, _)) = &manifest {
        manifest.check_file(&args.src)?;
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
        let checked = inspect(&staged, &staged_options)
            .await
            .and_then(|(contents, _)| verify(&contents, manifest.as_ref()));
        if let Err(error) = checked {
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
        let (contents, encrypted) = inspect(&db, &options).await?;
        let mut summary = summary(&db, &contents, encrypted)?;
        summary.replaced = replaced;
        summary.manifest = manifest.map(|(_, path)| path.display().to_string());
        print(&summary)
    })
}
