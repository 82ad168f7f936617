//! Schema migrations up and down on SQLite: for every schema version k, a database built at k
//! with fixture rows (written with that version's SQL) is upgraded by opening it, checked
//! through the store, taken back down to k, checked again, and upgraded again. Plus: databases
//! created under the migrations' released file names still open, an existing database is
//! copied aside before a migration, and an encrypted database cannot go below v4.
// Test code outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ddfr_core::{FaceId, ModelId, PersonId, PixelBox, VisitorId};
use ddfr_protocol::Timestamp;
use ddfr_store::{
    KeyRole, PersonStore, SCHEMA_VERSION, SQLITE_FILE_NAME, SqliteStore, StoreError, StoreOptions,
    VisitorStore, VisitorWrite,
};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

mod common;
use common::{crop, embedding, fields, key};

/// The fixture's embedding size and model.
const DIM: usize = 8;
const MODEL: &str = "dlib-resnet-v1";
/// The fixture visitor's id.
const VISITOR: i64 = 0x0000_5EED_0001;

async fn raw_pool(db: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new().filename(db).foreign_keys(true);
    SqlitePool::connect_with(options).await.unwrap()
}

async fn version(db: &Path) -> i64 {
    let pool = raw_pool(db).await;
    let version: i64 =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    version
}

async fn tables(db: &Path) -> Vec<String> {
    let pool = raw_pool(db).await;
    let names = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    names
}

/// Fixture rows written with the SQL of schema `k` into a fresh database (SQLite or
/// PostgreSQL: ids are assigned in insertion order): two persons (a third deleted, so its id is
/// spent), three faces with crops and embeddings; from v2 a visitor with two chips (a third
/// deleted); from v3 two audit entries.
macro_rules! write_fixture {
    ($pool:expr, $k:expr) => {{
        let (pool, k) = ($pool, $k);
        for (id, name) in [(1i64, "Ada"), (2, "Alan"), (3, "Gone")] {
            sqlx::query(
                "INSERT INTO persons (name, surname, birthday, relationship, role, created_at, \
                 updated_at) VALUES ($1, 'Rossi', '1990-05-17', 'amico', 'guest', $2, $2)",
            )
            .bind(name)
            .bind(1_000 * id)
            .execute(pool)
            .await
            .unwrap();
        }
        sqlx::query("DELETE FROM persons WHERE id = 3").execute(pool).await.unwrap();
        for (face, person) in [(1i64, 1i64), (2, 1), (3, 2)] {
            sqlx::query(
                "INSERT INTO faces (person_id, box_top, box_right, box_bottom, box_left, \
                 created_at) VALUES ($1, 10, 120, 140, $2, 5000)",
            )
            .bind(person)
            .bind(face)
            .execute(pool)
            .await
            .unwrap();
            sqlx::query("INSERT INTO face_crops (face_id, jpeg) VALUES ($1, $2)")
                .bind(face)
                .bind(crop(face as u64, 700))
                .execute(pool)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO embeddings (face_id, model, dim, vector) VALUES ($1, $2, $3, $4)",
            )
            .bind(face)
            .bind(MODEL)
            .bind(DIM as i64)
            .bind(embedding(face as u64, DIM).to_le_bytes())
            .execute(pool)
            .await
            .unwrap();
        }
        if k >= 2 {
            sqlx::query(
                "INSERT INTO visitors (id, model, dim, centroid, sightings, first_seen, \
                 last_seen) VALUES ($1, $2, $3, $4, 3, 7000, 8000)",
            )
            .bind(VISITOR)
            .bind(MODEL)
            .bind(DIM as i64)
            .bind(embedding(50, DIM).to_le_bytes())
            .execute(pool)
            .await
            .unwrap();
            for seed in [51u64, 52, 53] {
                sqlx::query(
                    "INSERT INTO visitor_samples (visitor_id, vector, jpeg, created_at) \
                     VALUES ($1, $2, $3, 7500)",
                )
                .bind(VISITOR)
                .bind(embedding(seed, DIM).to_le_bytes())
                .bind(crop(seed, 300))
                .execute(pool)
                .await
                .unwrap();
            }
            sqlx::query("DELETE FROM visitor_samples WHERE id = 3").execute(pool).await.unwrap();
        }
        if k >= 3 {
            for (action, person) in [("person_create", 1i64), ("person_delete", 3)] {
                sqlx::query(
                    "INSERT INTO audit_log (at, actor, action, target_kind, target_id, \
                     person_id, result, detail) \
                     VALUES (9000, 'token', $1, 'person', $2, $2, 'success', NULL)",
                )
                .bind(action)
                .bind(person)
                .execute(pool)
                .await
                .unwrap();
            }
        }
        if k >= 6 {
            sqlx::query(
                "INSERT INTO api_keys (name, role, secret_sha256, created_at, expires_at, \
                 revoked_at) VALUES ('door', 'recognizer', $1, 9500, NULL, NULL)",
            )
            .bind(vec![0xA5u8; 32])
            .execute(pool)
            .await
            .unwrap();
        }
    }};
}

async fn write_fixture(db: &Path, k: i64) {
    let pool = raw_pool(db).await;
    write_fixture!(&pool, k);
    pool.close().await;
}

fn same(a: &ddfr_core::Embedding, b: &ddfr_core::Embedding) -> bool {
    (a.similarity(b) - 1.0).abs() < 1e-6
}

/// The fixture of schema `k`, read through the store (at the newest schema).
async fn check_through_store(store: &dyn PersonStore, k: i64) {
    let persons = store.all_persons().await.unwrap();
    let names: Vec<_> = persons.iter().map(|p| (p.id.0, p.name.as_str(), p.n_faces)).collect();
    assert_eq!(names, [(1, "Ada", 2), (2, "Alan", 1)], "schema v{k}");
    let ada = store.faces(PersonId(1)).await.unwrap();
    assert_eq!(ada[1].bbox, PixelBox { top: 10, right: 120, bottom: 140, left: 2 });
    for (face, person) in [(1, 1), (2, 1), (3, 2)] {
        let jpeg = store.face_crop(PersonId(person), FaceId(face)).await.unwrap();
        assert_eq!(jpeg, crop(face as u64, 700), "crop of face {face}, schema v{k}");
    }
    let rows = store.embeddings(&ModelId::new(MODEL)).await.unwrap();
    assert_eq!(rows.len(), 3);
    for (row, face) in rows.iter().zip(1..) {
        assert_eq!(row.face, FaceId(face));
        assert!(same(&row.embedding, &embedding(face as u64, DIM)), "embedding {face}, v{k}");
    }
    let visitors = store.visitors().await.unwrap();
    let audit = store.audit_page(10, 0).await.unwrap();
    if k >= 2 {
        assert_eq!(visitors.len(), 1);
        assert_eq!(
            (visitors[0].id, visitors[0].sightings, visitors[0].n_samples),
            (VisitorId(VISITOR), 3, 2)
        );
        assert!(same(&visitors[0].centroid, &embedding(50, DIM)));
        let samples = store.visitor_samples(VisitorId(VISITOR)).await.unwrap();
        assert_eq!(
            samples.iter().map(|s| s.jpeg.clone()).collect::<Vec<_>>(),
            [crop(51, 300), crop(52, 300)]
        );
    } else {
        assert!(visitors.is_empty());
    }
    if k >= 3 {
        let actions: Vec<_> = audit.0.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["person_delete", "person_create"], "newest first");
    } else {
        assert_eq!(audit.1, 0);
    }
    let keys = store.keys().await.unwrap();
    if k >= 6 {
        let found: Vec<_> = keys.iter().map(|key| (key.id, key.name.as_str(), key.role)).collect();
        assert_eq!(found, [(1, "door", KeyRole::Recognizer)], "schema v{k}");
        assert_eq!(keys[0].secret_sha256, [0xA5; 32]);
    } else {
        assert!(keys.is_empty(), "schema v{k}");
    }
}

/// The fixture of schema `k`, read with raw SQL at schema `k`.
async fn check_raw(db: &Path, k: i64) {
    let pool = raw_pool(db).await;
    let persons: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, name FROM persons ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(persons, [(1, "Ada".to_owned()), (2, "Alan".to_owned())]);
    let crops: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT face_id, jpeg FROM face_crops ORDER BY face_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(crops, (1..=3).map(|f| (f, crop(f as u64, 700))).collect::<Vec<_>>());
    let vectors: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT vector FROM embeddings ORDER BY face_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(vectors, (1..=3u64).map(|f| embedding(f, DIM).to_le_bytes()).collect::<Vec<_>>());
    if k >= 2 {
        let samples: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT id, jpeg FROM visitor_samples ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(samples, [(1, crop(51, 300)), (2, crop(52, 300))]);
    }
    if k >= 3 {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log").fetch_one(&pool).await.unwrap();
        assert_eq!(n, 2);
    }
    pool.close().await;
}

/// The pre-migration copies next to `db`.
fn backups(db: &Path) -> Vec<PathBuf> {
    let prefix = format!("{SQLITE_FILE_NAME}.before-migration-");
    let mut copies: Vec<PathBuf> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap().to_string_lossy().starts_with(&prefix))
        .collect();
    copies.sort();
    copies
}

#[tokio::test]
async fn every_schema_version_upgrades_downgrades_and_upgrades_again_without_losing_rows() {
    let all_tables = [
        "api_keys",
        "audit_log",
        "consents",
        "embeddings",
        "face_crops",
        "faces",
        "person_retention",
        "persons",
        "store_meta",
        "visitor_samples",
        "visitors",
    ];
    let tables_of = |k: i64| -> Vec<String> {
        let since = |table: &str| match table {
            "visitors" | "visitor_samples" => 2,
            "audit_log" => 3,
            "store_meta" => 4,
            "consents" | "person_retention" => 5,
            "api_keys" => 6,
            _ => 1,
        };
        all_tables.iter().filter(|t| since(t) <= k).map(|t| t.to_string()).collect()
    };
    for k in 1..=SCHEMA_VERSION {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(SQLITE_FILE_NAME);
        let path = db.to_string_lossy().into_owned();
        assert_eq!(SqliteStore::migrate_to(&path, k, 3).await.unwrap(), None, "a new database");
        assert_eq!((version(&db).await, tables(&db).await), (k, tables_of(k)));
        write_fixture(&db, k).await;

        // Up: opening migrates to the newest schema, copying the database aside first.
        let store = SqliteStore::open(&path).await.unwrap();
        check_through_store(&store, k).await;
        store.close().await;
        assert_eq!(
            (version(&db).await, tables(&db).await),
            (SCHEMA_VERSION, tables_of(SCHEMA_VERSION))
        );
        let copies = backups(&db);
        if k < SCHEMA_VERSION {
            assert_eq!(copies.len(), 1, "one copy before migrating v{k}");
            assert_eq!(version(&copies[0]).await, k, "the copy is the database as it was");
            check_raw(&copies[0], k).await;
        } else {
            assert!(copies.is_empty(), "no migration, no copy");
        }

        // Down to k: the rows schema k holds are intact, later tables are gone.
        let copy = SqliteStore::migrate_to(&path, k, 3).await.unwrap();
        assert_eq!(copy.is_some(), k < SCHEMA_VERSION);
        assert_eq!((version(&db).await, tables(&db).await), (k, tables_of(k)));
        check_raw(&db, k).await;

        // Up again, then new writes: ids are never reused across the round trip.
        let store = SqliteStore::open(&path).await.unwrap();
        check_through_store(&store, k).await;
        let person = store.create_person(&fields("New")).await.unwrap();
        assert_eq!(person.id, PersonId(4), "person 3 was deleted before the round trip");
        if k >= 2 {
            let sighting = VisitorWrite::Sighting {
                id: VisitorId(VISITOR),
                centroid: embedding(60, DIM),
                sightings: 4,
                at: Timestamp::from_unix_millis(9_000),
                sample: Some((embedding(61, DIM), crop(61, 300))),
            };
            store.write_visitor(&sighting).await.unwrap();
            let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM visitor_samples ORDER BY id")
                .fetch_all(store.pool())
                .await
                .unwrap();
            assert_eq!(ids, [1, 2, 4], "sample 3 was deleted before the round trip");
        }
        store.close().await;
        assert!(backups(&db).len() <= 3, "at most 3 copies are kept");
    }
}

#[tokio::test]
async fn databases_created_under_the_released_file_names_still_open() {
    // Schema v1-v3 were released as `NNNN_name.sql`; sqlx keeps each version's checksum.
    let released = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for name in ["0001_initial", "0002_visitors", "0003_audit_log"] {
        std::fs::copy(
            source.join(format!("{name}.up.sql")),
            released.path().join(format!("{name}.sql")),
        )
        .unwrap();
    }
    let migrator = sqlx::migrate::Migrator::new(released.path()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(SQLITE_FILE_NAME);
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::new().filename(&db).create_if_missing(true).foreign_keys(true),
    )
    .await
    .unwrap();
    migrator.run(&pool).await.unwrap();
    pool.close().await;
    write_fixture(&db, 3).await;

    let store = SqliteStore::open(&db.to_string_lossy()).await.unwrap();
    check_through_store(&store, 3).await;
    store.close().await;
    assert_eq!(version(&db).await, SCHEMA_VERSION);
}

#[tokio::test]
async fn an_encrypted_database_cannot_go_below_v4_and_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(SQLITE_FILE_NAME);
    let path = db.to_string_lossy().into_owned();
    SqliteStore::migrate_to(&path, 3, 3).await.unwrap();
    write_fixture(&db, 3).await;
    // A v3 plaintext database opened with a key: migrated, then encrypted.
    let options = StoreOptions::encrypted(key(7));
    let store = SqliteStore::open_with_options(&path, &options).await.unwrap();
    check_through_store(&store, 3).await;
    store.close().await;

    let error = SqliteStore::migrate_to(&path, 3, 3).await.unwrap_err();
    println!("downgrade refused: {error:?}");
    assert!(matches!(error, StoreError::Migration(_)), "{error:?}");
    assert!(format!("{error:?}").contains("an_encrypted_database_cannot_be_downgraded_below_v4"));
    // Each version goes down in its own transaction: the steps above v4 (v6's API keys, v5's
    // consent and retention tables) are done, v4 stays.
    assert_eq!(version(&db).await, 4);
    let store = SqliteStore::open_with_options(&path, &options).await.unwrap();
    check_through_store(&store, 3).await;
    store.close().await;
}

#[tokio::test]
async fn no_copies_are_taken_when_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(SQLITE_FILE_NAME);
    let path = db.to_string_lossy().into_owned();
    SqliteStore::migrate_to(&path, 2, 0).await.unwrap();
    write_fixture(&db, 2).await;
    let options = StoreOptions { migration_backups: 0, ..StoreOptions::default() };
    let store = SqliteStore::open_with_options(&path, &options).await.unwrap();
    check_through_store(&store, 2).await;
    store.close().await;
    assert!(backups(&db).is_empty());
}

/// The same round trip on PostgreSQL, each version in a fresh database created next to the
/// one `DDFR_TEST_DATABASE_URL` names (the user needs CREATEDB), plus turning encryption on.
#[tokio::test]
async fn postgres_every_schema_version_upgrades_downgrades_and_upgrades_again() {
    let Ok(url) = std::env::var("DDFR_TEST_DATABASE_URL") else {
        println!("SKIPPED: DDFR_TEST_DATABASE_URL is not set");
        return;
    };
    #[cfg(not(feature = "postgres"))]
    {
        let _ = url;
        println!("SKIPPED: built without the `postgres` feature");
    }
    #[cfg(feature = "postgres")]
    postgres_round_trips(&url).await;
}

#[cfg(feature = "postgres")]
async fn postgres_round_trips(url: &str) {
    use ddfr_store::PgStore;
    use sqlx::postgres::PgPool;

    let admin_url = url;
    for k in 1..=SCHEMA_VERSION {
        let (url, name) = common::fresh_pg_database(admin_url, &format!("migrations_v{k}")).await;
        PgStore::migrate_to(&url, k).await.unwrap();
        let pool = PgPool::connect(url.expose()).await.unwrap();
        write_fixture!(&pool, k);
        pool.close().await;

        let store = PgStore::connect(&url).await.unwrap();
        check_through_store(&store, k).await;
        store.close().await;
        PgStore::migrate_to(&url, k).await.unwrap();
        let pool = PgPool::connect(url.expose()).await.unwrap();
        let version: i64 =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(version, k);
        pool.close().await;

        let store = PgStore::connect(&url).await.unwrap();
        check_through_store(&store, k).await;
        store.close().await;

        // Encryption on: the existing rows are sealed, a wrong or missing key is refused, and
        // an encrypted database cannot go below v4.
        let options = StoreOptions::encrypted(key(7));
        let store = PgStore::connect_with_options(&url, &options).await.unwrap();
        check_through_store(&store, k).await;
        store.close().await;
        let wrong = PgStore::connect_with_options(&url, &StoreOptions::encrypted(key(8))).await;
        assert!(matches!(wrong, Err(StoreError::WrongEncryptionKey)), "{wrong:?}");
        assert!(matches!(PgStore::connect(&url).await, Err(StoreError::EncryptionKeyRequired)));
        let down = PgStore::migrate_to(&url, 3).await.unwrap_err();
        assert!(format!("{down:?}").contains("cannot be downgraded"), "{down:?}");
        let store = PgStore::connect_with_options(&url, &options).await.unwrap();
        // Each version steps down on its own: v6 and v5 went before v4 refused.
        check_through_store(&store, k.min(4)).await;
        // New writes are sealed too, and ids are never reused across the round trip.
        let person = store.create_person(&fields("New")).await.unwrap();
        assert_eq!(person.id, PersonId(4));
        let face = common::new_face(70, &ModelId::new(MODEL), DIM);
        let added = store.add_face(person.id, &face).await.unwrap();
        assert_eq!(store.face_crop(person.id, added.id).await.unwrap(), face.crop_jpeg);
        store.close().await;

        common::drop_pg_database(admin_url, &name).await;
    }
}
