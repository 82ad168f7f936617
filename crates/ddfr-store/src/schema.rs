//! Schema versions: the reversible sqlx migrations of each backend (`migrations/<backend>/
//! NNNN_name.up.sql` and `.down.sql`), applied at open, and the automatic copy of a SQLite
//! database taken before any migration changes it.
//!
//! Released migrations never change: sqlx records each applied version with the SHA-384 of
//! its up script and refuses to open a database whose recorded checksum differs. (Schema
//! v1–v3 were released as `NNNN_name.sql`; renaming them to `.up.sql` kept their text, so
//! databases created by those releases open unchanged.)

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use sqlx::migrate::Migrator;
use sqlx::sqlite::SqlitePool;

use crate::StoreError;
use crate::model::now;

/// The newest schema version this build knows; opening migrates every database to it.
pub const SCHEMA_VERSION: i64 = 6;

/// How many pre-migration copies of a SQLite database are kept next to it by default.
pub const DEFAULT_MIGRATION_BACKUPS: usize = 3;

/// What a pre-migration copy's file name starts with, after the database's file name.
const BACKUP_INFIX: &str = ".before-migration-";

/// The migrations up to `target` (inclusive), for building a database at an older version.
pub(crate) fn migrator_up_to(migrator: &Migrator, target: i64) -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            migrator.iter().filter(|migration| migration.version <= target).cloned().collect(),
        ),
        ignore_missing: migrator.ignore_missing,
        locking: migrator.locking,
        no_tx: migrator.no_tx,
    }
}

/// The newest up-migration `migrator` holds.
#[cfg(test)]
fn latest_version(migrator: &Migrator) -> i64 {
    migrator
        .iter()
        .filter(|migration| migration.migration_type.is_up_migration())
        .map(|migration| migration.version)
        .max()
        .unwrap_or(0)
}

/// The version a SQLite database is at: `None` for a database no migration ever ran on.
pub(crate) async fn sqlite_applied_version(pool: &SqlitePool) -> Result<Option<i64>, StoreError> {
    let has_table: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(pool)
    .await?;
    if has_table == 0 {
        return Ok(None);
    }
    Ok(sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await?)
}

/// Writes a consistent copy of the database at `db` (open in `pool`) next to it with
/// `VACUUM INTO`, named `<file>.before-migration-<unix ms>-v<from>-to-v<to>`, and removes all
/// but the `keep` newest such copies. Nothing is written for `keep == 0` or an in-memory
/// database. Returns the copy's path.
pub(crate) async fn sqlite_backup_before_migration(
    pool: &SqlitePool,
    db: &Path,
    from: i64,
    to: i64,
    keep: usize,
) -> Result<Option<PathBuf>, StoreError> {
    let (Some(dir), Some(name)) = (db.parent(), db.file_name()) else {
        return Ok(None);
    };
    if keep == 0 || !db.is_file() {
        return Ok(None);
    }
    let prefix = format!("{}{BACKUP_INFIX}", name.to_string_lossy());
    let millis = now().unix_millis();
    let mut target = dir.join(format!("{prefix}{millis:013}-v{from}-to-v{to}"));
    let mut attempt = 1;
    while target.exists() {
        target = dir.join(format!("{prefix}{millis:013}-v{from}-to-v{to}-{attempt}"));
        attempt += 1;
    }
    sqlx::query("VACUUM INTO $1").bind(target.to_string_lossy().into_owned()).execute(pool).await?;
    tracing::info!(
        backup = %target.display(),
        from,
        to,
        "copied the database before migrating its schema"
    );
    prune_backups(dir, &prefix, keep);
    Ok(Some(target))
}

/// Removes all but the `keep` newest pre-migration copies (their names sort by time). A copy
/// that cannot be removed is logged, not an error: the migration matters more.
fn prune_backups(dir: &Path, prefix: &str, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut copies: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
        .map(|entry| entry.path())
        .collect();
    copies.sort();
    let excess = copies.len().saturating_sub(keep);
    for old in &copies[..excess] {
        if let Err(error) = std::fs::remove_file(old) {
            tracing::warn!(file = %old.display(), %error, "cannot remove an old pre-migration copy");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_version_is_the_newest_migration_of_each_backend() {
        assert_eq!(latest_version(&crate::sqlite::MIGRATOR), SCHEMA_VERSION);
        #[cfg(feature = "postgres")]
        assert_eq!(latest_version(&crate::postgres::MIGRATOR), SCHEMA_VERSION);
    }

    #[test]
    fn every_migration_is_reversible() {
        let migrators: Vec<&Migrator> = vec![
            &crate::sqlite::MIGRATOR,
            #[cfg(feature = "postgres")]
            &crate::postgres::MIGRATOR,
        ];
        for migrator in migrators {
            for version in 1..=SCHEMA_VERSION {
                let kinds: Vec<_> = migrator
                    .iter()
                    .filter(|m| m.version == version)
                    .map(|m| m.migration_type.is_down_migration())
                    .collect();
                assert_eq!(kinds.len(), 2, "version {version} needs an up and a down script");
                assert!(kinds.contains(&true) && kinds.contains(&false), "version {version}");
            }
        }
    }

    /// SHA-384 of each released up script, as sqlx recorded it in every database created since.
    /// Changing a released script makes those databases refuse to open: add a migration instead.
    const RELEASED_SQLITE: [(i64, &str); 4] = [
        (
            1,
            "d7aed03caa201d11ba430f08eec96e00341a800472fb2222c3108ecebcd48fdb0ce985ba01c4895dbfd1736db62d4788",
        ),
        (
            2,
            "51076aa707f81b007b30410bbadf18a6c6c2f1315330309f4404e346d28eb9937182d79638c295ec33d0957e18cee24c",
        ),
        (
            3,
            "982f393483520e27f1348f5e544299439fd1d98220b38e34ee5b318a71246bf453e47a9287d6eb2842ae18cc53ad79bd",
        ),
        (
            4,
            "038a2d2259ef9e3b5a6708995aeb5e2b7e09d02fd5fe91bbeec46d3540d905d18f7215802550a8608abcb9eb9934ca83",
        ),
    ];
    #[cfg(feature = "postgres")]
    const RELEASED_POSTGRES: [(i64, &str); 4] = [
        (
            1,
            "594ccd10ed440efe11162a3edda63f46f456178c9d25ff2f2e89cb322f8fe7345cb5dce98548f663be7a110e704accc4",
        ),
        (
            2,
            "b86a181012c942865249ffe43852d5b995e8aead700d4be6f918af0be1fd5bbeb81cc56803d501c20227398bd0e75d4a",
        ),
        (
            3,
            "528bf59d9350854f4a595e0c441f5617aff84e1f0b50bf20e0accb3138aaf9631e4c2a6b7789a085818fa8ba45f94f3a",
        ),
        (
            4,
            "9c6dfb90f7b69d4a4bac272917601794542f1e6169f206ba909d3ae3cee1a27102e5caac45e6fd1de51b0d13dcdb9def",
        ),
    ];

    fn assert_released(migrator: &Migrator, released: &[(i64, &str)]) {
        for (version, checksum) in released {
            let up = migrator
                .iter()
                .find(|m| m.version == *version && m.migration_type.is_up_migration())
                .unwrap();
            assert_eq!(
                hex::encode(&up.checksum),
                *checksum,
                "released migration {version} changed"
            );
        }
    }

    #[test]
    fn released_migrations_never_change() {
        assert_released(&crate::sqlite::MIGRATOR, &RELEASED_SQLITE);
        #[cfg(feature = "postgres")]
        assert_released(&crate::postgres::MIGRATOR, &RELEASED_POSTGRES);
    }

    #[test]
    fn only_the_newest_copies_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = format!("ddfr.db{BACKUP_INFIX}");
        for millis in [3, 1, 4, 2, 5] {
            std::fs::write(dir.path().join(format!("{prefix}{millis:013}-v1-to-v2")), b"x")
                .unwrap();
        }
        std::fs::write(dir.path().join("ddfr.db"), b"db").unwrap();
        prune_backups(dir.path(), &prefix, 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "ddfr.db",
                &format!("{prefix}0000000000004-v1-to-v2"),
                &format!("{prefix}0000000000005-v1-to-v2")
            ]
        );
    }
}
