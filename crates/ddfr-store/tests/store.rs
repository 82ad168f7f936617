//! The store contract story, run on SQLite (always) and PostgreSQL (when configured), plus the
//! SQLite durability and privacy checks: pragmas, corrupt files, hard delete.
// The story and its helpers are test code outside `#[test]` functions: a failed unwrap is a
// failed test, which is what clippy's `allow-unwrap-in-tests` already grants test functions.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use ddfr_core::{FaceId, ModelId, PersonId, VisitorId};
use ddfr_protocol::{PersonChanges, Role, Timestamp};
use ddfr_store::{
    AuditResult, AuditStore, DatabaseUrl, NewAuditEntry, NewFace, PersonStore, SQLITE_FILE_NAME,
    SqliteStore, StoreError, StoreOptions, VisitorStore, VisitorWrite, open_store,
};

mod common;
use common::{
    DIM, contains, crop, database_bytes, embedding, fields, key, new_face, unique_suffix,
};

/// Environment variable with a PostgreSQL URL to run the story against.
const PG_URL_VAR: &str = "DDFR_TEST_DATABASE_URL";

/// The contract every backend meets. It tolerates a non-empty database (PostgreSQL test
/// databases are reused): it only looks at what it created, under a fresh model id.
async fn store_story(store: &dyn PersonStore) {
    let model = ModelId::new(format!("story-{}", unique_suffix()));
    let other_model = ModelId::new(format!("story-other-{}", unique_suffix()));
    let persons_before = store.count_persons().await.unwrap();
    let faces_before = store.count_faces().await.unwrap();

    // Create and read.
    let anna = store.create_person(&fields("Anna")).await.unwrap();
    let bruno = store.create_person(&fields("Bruno")).await.unwrap();
    let carla = store.create_person(&fields("Carla")).await.unwrap();
    assert!(anna.id < bruno.id && bruno.id < carla.id);
    assert_eq!(anna.fields(), fields("Anna"));
    assert_eq!(anna.n_faces, 0);
    assert_eq!(anna.created_at, anna.updated_at);
    assert_eq!(store.person(bruno.id).await.unwrap(), bruno);
    let missing = PersonId(carla.id.0 + 1_000_000);
    assert!(
        matches!(store.person(missing).await, Err(StoreError::PersonNotFound(id)) if id == missing)
    );

    // Paging: ours are the last three by id.
    let offset = u32::try_from(persons_before).unwrap();
    let (page, total) = store.list_persons(2, offset).await.unwrap();
    assert_eq!(total, persons_before + 3);
    assert_eq!(page.iter().map(|p| p.id).collect::<Vec<_>>(), [anna.id, bruno.id]);
    let (page, _) = store.list_persons(2, offset + 2).await.unwrap();
    assert_eq!(page.iter().map(|p| p.id).collect::<Vec<_>>(), [carla.id]);
    let (page, total) = store.list_persons(10, offset + 3).await.unwrap();
    assert!(page.is_empty());
    assert_eq!(total, persons_before + 3);
    let all = store.all_persons().await.unwrap();
    assert_eq!(all.len() as u64, persons_before + 3);
    assert!(all.windows(2).all(|pair| pair[0].id < pair[1].id));
    let some = store.persons_by_ids(&[carla.id, missing, anna.id, carla.id]).await.unwrap();
    assert_eq!(some.iter().map(|p| p.id).collect::<Vec<_>>(), [anna.id, carla.id]);
    assert!(store.persons_by_ids(&[]).await.unwrap().is_empty());

    // Update.
    let changes = PersonChanges {
        surname: Some("Bianchi".into()),
        role: Some(Role::User),
        ..PersonChanges::default()
    };
    let updated = store.update_person(bruno.id, &changes).await.unwrap();
    assert_eq!((updated.name.as_str(), updated.surname.as_str()), ("Bruno", "Bianchi"));
    assert_eq!(updated.role, Role::User);
    assert_eq!(updated.created_at, bruno.created_at);
    assert!(updated.updated_at >= bruno.updated_at);
    assert_eq!(store.update_person(bruno.id, &PersonChanges::default()).await.unwrap(), updated);
    assert!(matches!(
        store.update_person(missing, &changes).await,
        Err(StoreError::PersonNotFound(_))
    ));

    // Faces, crops and embeddings.
    let a1 = store.add_face(anna.id, &new_face(1, &model, DIM)).await.unwrap();
    let a2 = store.add_face(anna.id, &new_face(2, &model, DIM)).await.unwrap();
    let b1 = store.add_face(bruno.id, &new_face(3, &model, DIM)).await.unwrap();
    assert_eq!(a1.person, anna.id);
    assert_eq!(a1.bbox, new_face(1, &model, DIM).bbox);
    assert_eq!(store.person(anna.id).await.unwrap().n_faces, 2);
    assert_eq!(store.count_faces().await.unwrap(), faces_before + 3);
    let anna_faces = store.faces(anna.id).await.unwrap();
    assert_eq!(anna_faces, [a1.clone(), a2.clone()]);
    assert!(store.faces(carla.id).await.unwrap().is_empty());
    assert!(matches!(store.faces(missing).await, Err(StoreError::PersonNotFound(_))));
    assert_eq!(store.face_crop(anna.id, a2.id).await.unwrap(), crop(2, 2048));
    assert!(
        matches!(store.face_crop(bruno.id, a2.id).await, Err(StoreError::FaceNotFound(f)) if f == a2.id)
    );
    assert!(matches!(store.face_crop(missing, a2.id).await, Err(StoreError::PersonNotFound(_))));
    assert!(matches!(
        store.add_face(missing, &new_face(4, &model, DIM)).await,
        Err(StoreError::PersonNotFound(_))
    ));
    let mismatch = store.add_face(carla.id, &new_face(5, &model, 128)).await.unwrap_err();
    assert!(
        matches!(&mismatch, StoreError::ModelMismatch { expected_dim: DIM, found_dim: 128, .. }),
        "{mismatch:?}"
    );
    assert_eq!(store.person(carla.id).await.unwrap().n_faces, 0, "a failed add leaves nothing");

    let stored = store.embeddings(&model).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| (e.face, e.person)).collect::<Vec<_>>(),
        [(a1.id, anna.id), (a2.id, anna.id), (b1.id, bruno.id)]
    );
    assert!((stored[2].embedding.similarity(&embedding(3, DIM)) - 1.0).abs() < 1e-6);
    assert!(store.embeddings(&other_model).await.unwrap().is_empty());

    // A second model, added by re-embedding one face.
    store.set_embedding(a1.id, &other_model, &embedding(9, 128)).await.unwrap();
    store.set_embedding(a1.id, &other_model, &embedding(10, 128)).await.unwrap();
    let other = store.embeddings(&other_model).await.unwrap();
    assert_eq!(other.len(), 1);
    assert!((other[0].embedding.similarity(&embedding(10, 128)) - 1.0).abs() < 1e-6);
    let counts = store.embedding_models().await.unwrap();
    let count_of =
        |m: &ModelId| counts.iter().find(|c| &c.model == m).map(|c| (c.dim, c.n_embeddings));
    assert_eq!(count_of(&model), Some((DIM, 3)));
    assert_eq!(count_of(&other_model), Some((128, 1)));
    let without = store.faces_without_embedding(&other_model).await.unwrap();
    assert!(without.contains(&(a2.id, anna.id)) && without.contains(&(b1.id, bruno.id)));
    assert!(!without.iter().any(|(face, _)| *face == a1.id));
    assert!(matches!(
        store.set_embedding(FaceId(b1.id.0 + 1_000_000), &model, &embedding(1, DIM)).await,
        Err(StoreError::FaceNotFound(_))
    ));
    assert!(matches!(
        store.set_embedding(b1.id, &model, &embedding(1, 64)).await,
        Err(StoreError::ModelMismatch { .. })
    ));

    // Deleting a face removes its crop and every embedding of it.
    store.delete_face(anna.id, a1.id).await.unwrap();
    assert_eq!(store.faces(anna.id).await.unwrap(), std::slice::from_ref(&a2));
    assert!(store.embeddings(&other_model).await.unwrap().is_empty());
    assert_eq!(store.embeddings(&model).await.unwrap().len(), 2);
    assert!(matches!(store.delete_face(anna.id, a1.id).await, Err(StoreError::FaceNotFound(_))));
    assert!(matches!(store.delete_face(anna.id, b1.id).await, Err(StoreError::FaceNotFound(_))));
    assert!(matches!(store.delete_face(missing, b1.id).await, Err(StoreError::PersonNotFound(_))));
    assert!(matches!(store.face_crop(anna.id, a1.id).await, Err(StoreError::FaceNotFound(_))));

    // Deleting a person removes everything of theirs.
    store.delete_person(anna.id).await.unwrap();
    assert!(matches!(store.person(anna.id).await, Err(StoreError::PersonNotFound(_))));
    assert!(matches!(store.faces(anna.id).await, Err(StoreError::PersonNotFound(_))));
    assert!(matches!(store.delete_person(anna.id).await, Err(StoreError::PersonNotFound(_))));
    let left = store.embeddings(&model).await.unwrap();
    assert_eq!(left.iter().map(|e| e.person).collect::<Vec<_>>(), [bruno.id]);
    assert_eq!(store.count_persons().await.unwrap(), persons_before + 2);
    assert_eq!(store.count_faces().await.unwrap(), faces_before + 1);

    // Ids are never reused.
    let dario = store.create_person(&fields("Dario")).await.unwrap();
    assert!(dario.id > carla.id);
    let d1 = store.add_face(dario.id, &new_face(6, &model, DIM)).await.unwrap();
    assert!(d1.id > b1.id);

    store.check_integrity().await.unwrap();
    for person in [bruno.id, carla.id, dario.id] {
        store.delete_person(person).await.unwrap();
    }
    assert_eq!(store.count_persons().await.unwrap(), persons_before);
    assert_eq!(store.count_faces().await.unwrap(), faces_before);
}

/// The unknown-visitor contract: create, sightings with chips, list, samples, delete, purge.
async fn visitor_story(store: &dyn PersonStore) {
    let model = ModelId::new(format!("visitors-{}", unique_suffix()));
    let base = i64::try_from(unique_suffix() % 1_000_000_000).unwrap() * 10;
    let (a, b) = (VisitorId(base + 1), VisitorId(base + 2));
    let at = |ms: i64| Timestamp::from_unix_millis(1_700_000_000_000 + ms);
    let create = |id, seed, ms| VisitorWrite::Create {
        id,
        model: model.clone(),
        centroid: embedding(seed, DIM),
        at: at(ms),
        sample: Some((embedding(seed, DIM), crop(seed, 512))),
    };
    store.write_visitor(&create(a, 1, 0)).await.unwrap();
    store.write_visitor(&create(b, 2, 10)).await.unwrap();
    let sighting = VisitorWrite::Sighting {
        id: a,
        centroid: embedding(3, DIM),
        sightings: 2,
        at: at(20),
        sample: Some((embedding(3, DIM), crop(3, 512))),
    };
    store.write_visitor(&sighting).await.unwrap();
    // A sighting of a visitor deleted meanwhile is ignored.
    let ghost = VisitorWrite::Sighting {
        id: VisitorId(base + 3),
        centroid: embedding(4, DIM),
        sightings: 5,
        at: at(30),
        sample: None,
    };
    store.write_visitor(&ghost).await.unwrap();

    let mine: Vec<_> =
        store.visitors().await.unwrap().into_iter().filter(|v| v.model == model).collect();
    assert_eq!(mine.iter().map(|v| v.id).collect::<Vec<_>>(), vec![a, b], "latest seen first");
    assert_eq!((mine[0].sightings, mine[0].n_samples), (2, 2));
    assert_eq!((mine[0].first_seen, mine[0].last_seen), (at(0), at(20)));
    assert_eq!(mine[0].centroid, embedding(3, DIM));
    let samples = store.visitor_samples(a).await.unwrap();
    assert_eq!(samples.len(), 2);
    assert_eq!(
        (samples[0].jpeg.clone(), samples[1].embedding.clone()),
        (crop(1, 512), embedding(3, DIM))
    );
    assert!(matches!(
        store.visitor_samples(VisitorId(base + 3)).await,
        Err(StoreError::VisitorNotFound(_))
    ));

    store.delete_visitor(b).await.unwrap();
    assert!(matches!(store.delete_visitor(b).await, Err(StoreError::VisitorNotFound(_))));
    // Purge: everything last seen before at(21) goes, which is visitor a.
    assert!(store.purge_visitors(at(21)).await.unwrap() >= 1);
    assert!(store.visitors().await.unwrap().iter().all(|v| v.model != model));
}

#[tokio::test]
async fn sqlite_store_story() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
    store_story(&store).await;
    visitor_story(&store).await;
    store.close().await;
}

/// The same contract with encryption at rest on: callers see exactly what they stored.
#[tokio::test]
async fn sqlite_store_story_with_encryption_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::encrypted(key(0x42));
    let store = SqliteStore::open_in_dir_with_options(dir.path(), &options).await.unwrap();
    assert!(store.is_encrypted());
    store_story(&store).await;
    visitor_story(&store).await;
    audit_story(&store).await;
    store.close().await;
}

#[tokio::test]
async fn purged_and_deleted_visitors_leave_no_bytes_in_the_db_or_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
    let model = ModelId::new("dlib");
    for (id, seed, ms) in [(11, 500, 0), (12, 501, 5_000)] {
        let write = VisitorWrite::Create {
            id: VisitorId(id),
            model: model.clone(),
            centroid: embedding(seed, DIM),
            at: Timestamp::from_unix_millis(ms),
            sample: Some((embedding(seed + 1000, DIM), crop(seed, 4096))),
        };
        store.write_visitor(&write).await.unwrap();
    }
    let needles: Vec<Vec<u8>> = [500u64, 501]
        .iter()
        .flat_map(|&seed| {
            [
                embedding(seed, DIM).to_le_bytes()[..64].to_vec(),
                embedding(seed + 1000, DIM).to_le_bytes()[..64].to_vec(),
                crop(seed, 4096)[2000..2064].to_vec(),
            ]
        })
        .collect();
    assert!(needles.iter().all(|n| contains(&database_bytes(dir.path()), n)));
    assert_eq!(store.purge_visitors(Timestamp::from_unix_millis(1_000)).await.unwrap(), 1);
    store.delete_visitor(VisitorId(12)).await.unwrap();
    let after = database_bytes(dir.path());
    for (index, needle) in needles.iter().enumerate() {
        assert!(!contains(&after, needle), "visitor bytes {index} still in the database files");
    }
    store.close().await;
}

#[tokio::test]
async fn open_store_picks_the_backend_by_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::new(format!("sqlite:{}", dir.path().join("x.db").display()));
    let store = open_store(&url).await.unwrap();
    assert_eq!(store.count_persons().await.unwrap(), 0);
    store.close().await;
    let unknown = open_store(&DatabaseUrl::new("mysql://root:hunter2@db/ddfr")).await.unwrap_err();
    assert!(matches!(unknown, StoreError::UnsupportedUrl { .. }));
    assert!(!unknown.to_string().contains("hunter2"));
    #[cfg(not(feature = "postgres"))]
    {
        let error =
            open_store(&DatabaseUrl::new("postgres://u:p@localhost/ddfr")).await.unwrap_err();
        assert!(matches!(error, StoreError::BackendNotCompiled { feature: "postgres", .. }));
    }
}

#[tokio::test]
async fn postgres_store_story() {
    let Ok(url) = std::env::var(PG_URL_VAR) else {
        println!("SKIPPED: {PG_URL_VAR} is not set");
        return;
    };
    #[cfg(feature = "postgres")]
    {
        let store = ddfr_store::PgStore::connect(&DatabaseUrl::new(url.clone())).await.unwrap();
        store_story(&store).await;
        visitor_story(&store).await;
        audit_story(&store).await;
        store.close().await;
        // With encryption at rest, in a database of its own (turning it on is for good).
        let (fresh, name) = common::fresh_pg_database(&url, "story_encrypted").await;
        let options = StoreOptions::encrypted(key(0x42));
        let store = ddfr_store::PgStore::connect_with_options(&fresh, &options).await.unwrap();
        store_story(&store).await;
        visitor_story(&store).await;
        audit_story(&store).await;
        store.close().await;
        common::drop_pg_database(&url, &name).await;
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = url;
        println!(
            "SKIPPED: built without the `postgres` feature (cargo test -p ddfr-store --features postgres)"
        );
    }
}

/// A pragma's value as text, whatever type SQLite reports it in.
async fn pragma(connection: &mut sqlx::SqliteConnection, name: &str) -> String {
    use sqlx::Row;
    let row = sqlx::query(&format!("PRAGMA {name}")).fetch_one(connection).await.unwrap();
    row.try_get::<String, _>(0)
        .or_else(|_| row.try_get::<i64, _>(0).map(|v| v.to_string()))
        .unwrap()
}

#[tokio::test]
async fn every_sqlite_connection_has_the_durability_pragmas() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
    // Hold several connections at once so the pool must open more than one.
    let mut connections = Vec::new();
    for _ in 0..3 {
        connections.push(store.pool().acquire().await.unwrap());
    }
    for connection in &mut connections {
        assert_eq!(pragma(connection, "journal_mode").await, "wal");
        assert_eq!(pragma(connection, "synchronous").await, "2", "FULL");
        assert_eq!(pragma(connection, "foreign_keys").await, "1");
        assert_eq!(pragma(connection, "busy_timeout").await, "5000");
        assert_eq!(pragma(connection, "secure_delete").await, "1");
    }
    drop(connections);
    store.close().await;
}

/// Overwrites one page of a closed database file with garbage.
fn corrupt_page(path: &Path, page: u64) {
    use std::io::{Seek, SeekFrom, Write};
    const PAGE_SIZE: u64 = 4096;
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start((page - 1) * PAGE_SIZE)).unwrap();
    file.write_all(&[0x5A; PAGE_SIZE as usize]).unwrap();
    file.sync_all().unwrap();
}

#[tokio::test]
async fn a_corrupt_sqlite_file_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let model = ModelId::new("m");
    let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
    for seed in 0..20 {
        let person = store.create_person(&fields(&format!("P{seed}"))).await.unwrap();
        store.add_face(person.id, &new_face(seed, &model, DIM)).await.unwrap();
    }
    // Everything must be in the main file, or opening would replay the log over the damage.
    assert!(store.checkpoint_truncate().await.unwrap());
    store.close().await;
    let path = dir.path().join(SQLITE_FILE_NAME);
    let wal = dir.path().join(format!("{SQLITE_FILE_NAME}-wal"));
    assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);

    corrupt_page(&path, 2);
    let error = SqliteStore::open_in_dir(dir.path()).await.unwrap_err();
    println!("corrupt page: {error}");
    assert!(matches!(&error, StoreError::Integrity { .. }), "{error:?}");
    assert!(
        error.to_string().contains("corrupt") || error.to_string().contains("malformed"),
        "{error}"
    );

    // A file that is not a database at all is refused too.
    std::fs::write(&path, vec![0x42; 8192]).unwrap();
    let error = SqliteStore::open_in_dir(dir.path()).await.unwrap_err();
    println!("not a database: {error}");
    assert!(matches!(&error, StoreError::Integrity { .. }), "{error:?}");
}

#[tokio::test]
async fn deleted_crops_and_embeddings_leave_no_bytes_in_the_db_or_wal() {
    let dir = tempfile::tempdir().unwrap();
    let model = ModelId::new("arcface");
    let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
    let keep = store.create_person(&fields("Keep")).await.unwrap();
    store.add_face(keep.id, &new_face(100, &model, DIM)).await.unwrap();
    let gone = store.create_person(&fields("Gone")).await.unwrap();
    let faces: Vec<NewFace> = (200..203).map(|seed| new_face(seed, &model, DIM)).collect();
    let mut one_face = None;
    for face in &faces {
        one_face = Some(store.add_face(gone.id, face).await.unwrap());
    }

    // Distinctive windows: the start of each embedding's bytes, the start and middle of each crop.
    let needles: Vec<Vec<u8>> = faces
        .iter()
        .flat_map(|face| {
            let vector = face.embedding.to_le_bytes();
            [
                vector[..64].to_vec(),
                vector[1024..1088].to_vec(),
                face.crop_jpeg[..64].to_vec(),
                face.crop_jpeg[1000..1064].to_vec(),
            ]
        })
        .collect();
    let before = database_bytes(dir.path());
    assert!(
        needles.iter().all(|needle| contains(&before, needle)),
        "the search must find live data"
    );

    // Deleting one face, then the person, while the store stays open (as a running server).
    store.delete_face(gone.id, one_face.unwrap().id).await.unwrap();
    store.delete_person(gone.id).await.unwrap();
    let after = database_bytes(dir.path());
    for (index, needle) in needles.iter().enumerate() {
        assert!(!contains(&after, needle), "deleted bytes {index} still in the database files");
    }
    // The kept person's data is intact.
    assert!(contains(&after, &new_face(100, &model, DIM).crop_jpeg[..64]));
    store.close().await;
    let closed = database_bytes(dir.path());
    assert!(needles.iter().all(|needle| !contains(&closed, needle)));
}

#[tokio::test]
async fn backup_is_a_consistent_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
    let person = store.create_person(&fields("Anna")).await.unwrap();
    let target = dir.path().join("backup.db");
    store.backup_to(&target).await.unwrap();
    store.close().await;
    let copy = SqliteStore::open(&target.display().to_string()).await.unwrap();
    assert_eq!(copy.person(person.id).await.unwrap().name, "Anna");
    copy.close().await;
}

fn audit_entry(action: &str, person: Option<PersonId>, detail: &str) -> NewAuditEntry {
    NewAuditEntry {
        actor: "token".to_owned(),
        action: action.to_owned(),
        target_kind: person.map(|_| "person".to_owned()),
        target_id: person.map(|p| p.0),
        person,
        result: AuditResult::Success,
        detail: Some(detail.to_owned()),
    }
}

/// The audit contract: append, newest-first pages, a person's entries outliving the person,
/// and a person's embeddings for the export. Tolerates a non-empty database.
async fn audit_story(store: &dyn PersonStore) {
    let model = ModelId::new(format!("audit-{}", unique_suffix()));
    let person = store.create_person(&fields("Audited")).await.unwrap();
    let other = store.create_person(&fields("Other")).await.unwrap();
    let (_, total_before) = store.audit_page(1, 0).await.unwrap();

    let first = store.append_audit(&audit_entry("person_create", Some(person.id), "a")).await;
    let first = first.unwrap();
    assert_eq!(first.action, "person_create");
    assert_eq!(first.person, Some(person.id));
    assert_eq!(first.result, AuditResult::Success);
    store.append_audit(&audit_entry("person_create", Some(other.id), "b")).await.unwrap();
    let mut login = audit_entry("login", None, "client=127.0.0.1 wrong_token");
    login.result = AuditResult::Failure;
    let login = store.append_audit(&login).await.unwrap();
    assert!(login.id > first.id && login.at >= first.at);
    assert_eq!((login.target_kind.as_deref(), login.target_id, login.person), (None, None, None));
    let long_entry = audit_entry("face_enroll", Some(person.id), &"x".repeat(5000));
    let long = store.append_audit(&long_entry).await.unwrap();
    assert_eq!(long.detail.as_ref().map(String::len), Some(ddfr_store::MAX_AUDIT_DETAIL_CHARS));

    let (page, total) = store.audit_page(2, 0).await.unwrap();
    assert_eq!(total, total_before + 4);
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), vec![long.id, login.id]);
    let (page, _) = store.audit_page(1, 3).await.unwrap();
    assert_eq!(page[0], first);

    // The export's embeddings: every model of every face, by face then model.
    let face_a = store.add_face(person.id, &new_face(31, &model, 8)).await.unwrap();
    let face_b = store.add_face(person.id, &new_face(32, &model, 8)).await.unwrap();
    let model_2 = ModelId::new(format!("{}-2", model.as_str()));
    store.set_embedding(face_a.id, &model_2, &embedding(33, 4)).await.unwrap();
    store.add_face(other.id, &new_face(34, &model, 8)).await.unwrap();
    let mine = store.person_embeddings(person.id).await.unwrap();
    let keys: Vec<_> = mine.iter().map(|e| (e.face, e.model.clone())).collect();
    assert_eq!(
        keys,
        vec![(face_a.id, model.clone()), (face_a.id, model_2.clone()), (face_b.id, model.clone())]
    );
    assert_eq!(mine[0].embedding, embedding(31, 8));
    assert_eq!(mine[1].embedding, embedding(33, 4));

    // Deleting the person keeps their entries.
    store.delete_person(person.id).await.unwrap();
    assert!(matches!(store.person_embeddings(person.id).await, Err(StoreError::PersonNotFound(_))));
    let kept = store.audit_of_person(person.id).await.unwrap();
    assert_eq!(kept.iter().map(|e| e.id).collect::<Vec<_>>(), vec![first.id, long.id]);
    store.delete_person(other.id).await.unwrap();
}

#[tokio::test]
async fn sqlite_audit_log_is_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
    audit_story(&store).await;
    // Not even SQL bypassing the trait can change or remove an entry.
    let (entries, total) = store.audit_page(100, 0).await.unwrap();
    assert_eq!(total, 4);
    for statement in [
        "UPDATE audit_log SET actor = 'someone'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE id = 1",
    ] {
        let error = sqlx::query(statement).execute(store.pool()).await.unwrap_err();
        assert!(error.to_string().contains("append-only"), "{statement}: {error}");
    }
    assert_eq!(store.audit_page(100, 0).await.unwrap().0, entries);
    store.close().await;
}
