//! A full database fails cleanly (requirement DU-6), without root: the test lowers SQLite's
//! `PRAGMA max_page_count` to the file's current size on every connection of the store's own
//! pool (reached through [`SqliteStore::pool`], so the product has no test-only knob), which
//! makes SQLite answer the next write that needs a new page with `SQLITE_FULL`, exactly as a
//! full disk does. The real full filesystem (a small tmpfs) is exercised end to end in
//! `tests/tests/durability.rs`.
// Test code outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ddfr_core::{Embedding, FaceId, ModelId, PersonId, PixelBox};
use ddfr_protocol::{PersonChanges, PersonFields, Relationship, Role};
use ddfr_store::{NewFace, PersonStore, SqliteStore, StoreError};

/// dlib's embedding size.
const DIM: usize = 128;
/// A crop large enough to need overflow pages (so it can never fit into free space of a page).
const BIG_CROP: usize = 64 * 1024;

fn fields(name: &str) -> PersonFields {
    PersonFields {
        name: name.to_owned(),
        surname: "Pieno".to_owned(),
        birthday: "1985-03-02".parse().unwrap(),
        relationship: Relationship::Collega,
        role: Role::User,
    }
}

fn new_face(seed: u32, crop_bytes: usize) -> NewFace {
    let vector = (0..DIM).map(|i| ((i as u32 * 7 + seed * 13) % 101) as f32 - 50.0).collect();
    let mut crop_jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    crop_jpeg.extend((0..crop_bytes).map(|i| (i as u32).wrapping_mul(2_654_435_761 ^ seed) as u8));
    NewFace {
        embedding: Embedding::from_raw(vector).unwrap(),
        model: ModelId::new("dlib-resnet-v1"),
        bbox: PixelBox { top: 10, right: 120, bottom: 140, left: 20 },
        crop_jpeg,
    }
}

/// Sets `PRAGMA max_page_count` on every connection the pool may hand out (it holds all of
/// them at once, so none is left with the old limit) and returns the value now in force. The
/// limit belongs to a connection: one the store closes after a failure is replaced by a fresh
/// one without it, so the test sets it again before every write it expects to fail.
async fn set_max_page_count(store: &SqliteStore, pages: i64) -> i64 {
    let pool = store.pool();
    let mut connections = Vec::new();
    for _ in 0..pool.options().get_max_connections() {
        connections.push(pool.acquire().await.unwrap());
    }
    let mut in_force = Vec::new();
    for connection in &mut connections {
        let value: i64 = sqlx::query_scalar(&format!("PRAGMA max_page_count = {pages}"))
            .fetch_one(&mut **connection)
            .await
            .unwrap();
        in_force.push(value);
    }
    in_force.dedup();
    assert_eq!(in_force.len(), 1, "every connection has the same limit: {in_force:?}");
    in_force[0]
}

async fn scalar(store: &SqliteStore, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(store.pool()).await.unwrap()
}

/// What must hold whatever failed: every face has its crop and embedding, nothing points at a
/// missing row, and the file is sound.
async fn assert_nothing_half_written(store: &SqliteStore, persons: u64, faces: u64) {
    assert_eq!(store.count_persons().await.unwrap(), persons);
    assert_eq!(store.count_faces().await.unwrap(), faces);
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM face_crops").await, faces as i64);
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM embeddings").await, faces as i64);
    let model = ModelId::new("dlib-resnet-v1");
    assert!(store.faces_without_embedding(&model).await.unwrap().is_empty());
    assert_eq!(store.embeddings(&model).await.unwrap().len() as u64, faces);
    let orphans = scalar(
        store,
        "SELECT (SELECT COUNT(*) FROM face_crops WHERE face_id NOT IN (SELECT id FROM faces)) \
         + (SELECT COUNT(*) FROM faces WHERE person_id NOT IN (SELECT id FROM persons))",
    )
    .await;
    assert_eq!(orphans, 0);
    let check: String =
        sqlx::query_scalar("PRAGMA integrity_check").fetch_one(store.pool()).await.unwrap();
    assert_eq!(check, "ok");
    store.check_integrity().await.unwrap();
}

#[tokio::test]
async fn a_full_database_refuses_writes_cleanly_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
    let person = store.create_person(&fields("Ada")).await.unwrap();
    let first = store.add_face(person.id, &new_face(1, 2048)).await.unwrap();

    // Full: not one more page.
    let pages = scalar(&store, "PRAGMA page_count").await;
    let default_limit = scalar(&store, "PRAGMA max_page_count").await;

    // Twice as many attempts as connections, so every pooled connection fails at least once.
    // SQLite rolls such a transaction back by itself; the connection must not go back to the
    // pool believing it is still inside it (it would refuse every later write, see below).
    let attempts = 2 * store.pool().options().get_max_connections();
    for attempt in 0..attempts {
        assert_eq!(set_max_page_count(&store, pages).await, pages);
        let error = store.add_face(person.id, &new_face(10 + attempt, BIG_CROP)).await.unwrap_err();
        assert!(matches!(error, StoreError::StorageFull { .. }), "attempt {attempt}: {error:?}");
        assert!(error.to_string().contains("full"), "{error}");
    }
    let mut created = 0u64;
    let error = loop {
        assert_eq!(set_max_page_count(&store, pages).await, pages);
        match store.create_person(&fields(&format!("P{created}"))).await {
            Ok(_) => created += 1,
            Err(error) => break error,
        }
        assert!(created < 10_000, "a full database kept accepting persons");
    };
    assert!(matches!(error, StoreError::StorageFull { .. }), "{error:?}");
    println!("full database: {attempts} enrollments refused, {created} small persons fitted");
    assert_nothing_half_written(&store, 1 + created, 1).await;

    // Reads, which the frame path and the index rebuild need, keep working.
    assert_eq!(store.faces(person.id).await.unwrap(), vec![first.clone()]);
    assert!(!store.face_crop(person.id, first.id).await.unwrap().is_empty());

    // An update that needs no new page still goes through.
    assert_eq!(set_max_page_count(&store, pages).await, pages);
    let rename = PersonChanges { surname: Some("Vuoto".to_owned()), ..PersonChanges::default() };
    assert_eq!(store.update_person(person.id, &rename).await.unwrap().surname, "Vuoto");

    // Space is back: every connection writes again (before the fix, the connections that
    // had failed refused with `InvalidSavePointStatement` from here on).
    assert_eq!(set_max_page_count(&store, default_limit).await, default_limit);
    for attempt in 0..attempts {
        store.add_face(person.id, &new_face(100 + attempt, BIG_CROP)).await.unwrap();
    }
    let faces = 1 + u64::from(attempts);
    assert_nothing_half_written(&store, 1 + created, faces).await;
    store.close().await;

    // And the file opens again with the same content.
    let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
    assert_nothing_half_written(&store, 1 + created, faces).await;
    assert_eq!(store.faces(person.id).await.unwrap()[0].id, FaceId(first.id.0));
    assert_eq!(store.person(PersonId(person.id.0)).await.unwrap().n_faces, faces);
    store.close().await;
}
