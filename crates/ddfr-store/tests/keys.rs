//! The API-key contract (schema v5), run on SQLite (always) and PostgreSQL (when
//! `DDFR_TEST_DATABASE_URL` is set and the `postgres` feature is on): create, list, revoke,
//! expiry, and the schema's refusals (duplicate hash, bad role, bad name).
// Test code outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ddfr_protocol::Timestamp;
use ddfr_store::{KeyRole, KeyStore, NewApiKey, PersonStore, SqliteStore, StoreError};

mod common;
use common::{Bytes, unique_suffix};

/// Environment variable with a PostgreSQL URL to run the story against.
const PG_URL_VAR: &str = "DDFR_TEST_DATABASE_URL";

fn hash(seed: u64) -> [u8; 32] {
    Bytes(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1).take(32).try_into().unwrap()
}

fn new_key(name: &str, role: KeyRole, seed: u64, expires_at: Option<i64>) -> NewApiKey {
    NewApiKey {
        name: name.to_owned(),
        role,
        secret_sha256: hash(seed),
        expires_at: expires_at.map(Timestamp::from_unix_millis),
    }
}

/// The contract every backend meets. Tolerates a non-empty database (PostgreSQL test databases
/// are reused): it only looks at the keys it created.
async fn key_story(store: &dyn PersonStore) {
    let seed = unique_suffix() as u64;
    let before = store.keys().await.unwrap().len();
    let door = store.create_key(&new_key("door", KeyRole::Recognizer, seed, None)).await.unwrap();
    let desk = new_key("front desk", KeyRole::Operator, seed + 1, Some(4_102_444_800_000));
    let desk = store.create_key(&desk).await.unwrap();
    let ops = store.create_key(&new_key("ops", KeyRole::Admin, seed + 2, Some(1))).await.unwrap();
    assert!(door.id < desk.id && desk.id < ops.id, "ids increase");
    assert_eq!((door.role, door.expires_at, door.revoked_at), (KeyRole::Recognizer, None, None));
    assert_eq!(desk.expires_at, Some(Timestamp::from_unix_millis(4_102_444_800_000)));

    let listed = store.keys().await.unwrap();
    assert_eq!(listed.len(), before + 3);
    let mine: Vec<_> = listed.iter().filter(|k| k.id >= door.id).cloned().collect();
    assert_eq!(mine, [door.clone(), desk.clone(), ops.clone()], "stored exactly as returned");
    let now = Timestamp::from_unix_millis(1_700_000_000_000);
    assert!(mine[0].is_valid_at(now) && mine[1].is_valid_at(now));
    assert!(!mine[2].is_valid_at(now), "expired at 1 ms after the epoch");

    // Revoking stamps the time once; the row stays listed.
    let revoked = store.revoke_key(door.id).await.unwrap().unwrap();
    let at = revoked.revoked_at.unwrap();
    assert!(at >= door.created_at);
    assert!(!revoked.is_valid_at(now));
    let again = store.revoke_key(door.id).await.unwrap().unwrap();
    assert_eq!(again.revoked_at, Some(at), "a second revocation keeps the first time");
    let listed = store.keys().await.unwrap();
    assert_eq!(listed.iter().find(|k| k.id == door.id), Some(&revoked));
    assert_eq!(listed.iter().find(|k| k.id == desk.id).unwrap().revoked_at, None);
    assert!(store.revoke_key(i64::MAX).await.unwrap().is_none(), "unknown id");

    // The schema refuses a second key with the same secret, and empty or overlong names.
    let duplicate = store.create_key(&new_key("copy", KeyRole::Admin, seed, None)).await;
    assert!(matches!(duplicate, Err(StoreError::Database(_))), "{duplicate:?}");
    for name in [String::new(), "x".repeat(101)] {
        let bad = store.create_key(&new_key(&name, KeyRole::Admin, seed + 9, None)).await;
        assert!(matches!(bad, Err(StoreError::Database(_))), "{name:?}: {bad:?}");
    }
    assert_eq!(store.keys().await.unwrap().len(), before + 3);
}

#[tokio::test]
async fn sqlite_key_story() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
    key_story(&store).await;
    // A role the code does not know is refused by the schema, not read back as something else.
    let bad = sqlx::query(
        "INSERT INTO api_keys (name, role, secret_sha256, created_at) VALUES ('x', 'root', $1, 0)",
    )
    .bind(vec![1u8; 32])
    .execute(store.pool())
    .await;
    assert!(bad.is_err());
    store.close().await;
    // Keys survive a reopen.
    let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
    let keys = store.keys().await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["door", "front desk", "ops"]
    );
    store.close().await;
}

#[tokio::test]
async fn postgres_key_story() {
    let Ok(url) = std::env::var(PG_URL_VAR) else {
        println!("SKIPPED: {PG_URL_VAR} is not set");
        return;
    };
    #[cfg(feature = "postgres")]
    {
        let store =
            ddfr_store::PgStore::connect(&ddfr_store::DatabaseUrl::new(url.clone())).await.unwrap();
        key_story(&store).await;
        store.close().await;
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = url;
        println!(
            "SKIPPED: built without the `postgres` feature (cargo test -p ddfr-store --features postgres)"
        );
    }
}
