//! `ddfr keys create|list|revoke` as an operator runs them on a real SQLite data dir: the
//! secret is printed once and never stored, the list never shows it, revocation sticks, and
//! every change is audited with the actor `cli`.

// Test code outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use ddfr_store::{AuditStore, PersonStore, SQLITE_FILE_NAME, SqliteStore};

mod common;
use common::{ddfr, json};

fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(dir.join(SQLITE_FILE_NAME)).unwrap();
    bytes.extend(std::fs::read(dir.join(format!("{SQLITE_FILE_NAME}-wal"))).unwrap_or_default());
    bytes
}

#[test]
fn keys_are_created_listed_and_revoked_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    // No database yet: refused with a hint, nothing created.
    let missing = ddfr(&["keys", "list", "--data-dir", data]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--data-dir"));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        SqliteStore::open_in_dir(dir.path()).await.unwrap().close().await;
    });

    let created = json(&ddfr(&[
        "keys",
        "create",
        "--name",
        "front door",
        "--role",
        "recognizer",
        "--expires-in-days",
        "30",
        "--data-dir",
        data,
    ]));
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("ddfr_") && secret.len() == 69, "{secret}");
    assert_eq!(created["key"]["role"], "recognizer");
    assert_eq!(created["key"]["status"], "active");
    assert!(created["key"]["expires_at"].is_string());
    let id = created["key"]["id"].as_i64().unwrap();
    let bytes = database_bytes(dir.path());
    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "secret stored");
    let hash = ddfr_server::keys::hash_secret(&secret);
    assert!(bytes.windows(32).any(|w| w == hash), "its hash is stored");

    let bad = ddfr(&["keys", "create", "--name", "x", "--role", "root", "--data-dir", data]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("role"), "{bad:?}");

    let list = json(&ddfr(&["keys", "list", "--data-dir", data]));
    assert!(!list.to_string().contains(&secret));
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    let revoked = json(&ddfr(&["keys", "revoke", &id.to_string(), "--data-dir", data]));
    assert_eq!(revoked["status"], "revoked");
    let list = json(&ddfr(&["keys", "list", "--data-dir", data]));
    assert_eq!(list["items"][0]["status"], "revoked");
    let unknown = ddfr(&["keys", "revoke", "999", "--data-dir", data]);
    assert_eq!(unknown.status.code(), Some(1));

    let actions = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
        let (entries, _) = store.audit_page(10, 0).await.unwrap();
        store.close().await;
        entries.into_iter().map(|e| (e.actor, e.action, e.target_id)).collect::<Vec<_>>()
    });
    assert_eq!(
        actions,
        [
            ("cli".to_owned(), "key_revoke".to_owned(), Some(id)),
            ("cli".to_owned(), "key_create".to_owned(), Some(id))
        ]
    );
}
