//! Encryption at rest on SQLite: values round-trip, nothing biometric is readable in the
//! database or its log, a wrong or missing key is refused before anything is touched, tampered
//! or swapped values are errors, a plaintext database is encrypted without losing anyone, and
//! backups stay encrypted. Plus a measurement (`--ignored`): what encryption costs.
// Test code outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Instant;

use ddfr_core::{Embedding, FaceId, ModelId, PersonId, VisitorId};
use ddfr_protocol::Timestamp;
use ddfr_store::{
    ENVELOPE_OVERHEAD, FaceSample, PersonStore, SQLITE_FILE_NAME, SqliteStore, StoreError,
    StoreOptions, VisitorStore, VisitorWrite,
};

mod common;
use common::{DIM, contains, crop, database_bytes, embedding, fields, key, new_face};

async fn open(dir: &Path, key_byte: Option<u8>) -> Result<SqliteStore, StoreError> {
    let options = match key_byte {
        Some(byte) => StoreOptions::encrypted(key(byte)),
        None => StoreOptions::default(),
    };
    SqliteStore::open_in_dir_with_options(dir, &options).await
}

/// What [`populate`] stored, to compare against and to search for.
struct Stored {
    model: ModelId,
    faces: Vec<(PersonId, FaceSample, u64)>,
    visitor: VisitorId,
}

/// Three persons with two faces each, and one unknown visitor with two chips.
async fn populate(store: &dyn PersonStore) -> Stored {
    let model = ModelId::new("arcface-r100");
    let mut faces = Vec::new();
    for (index, name) in ["Anna", "Bruno", "Carla"].into_iter().enumerate() {
        let person = store.create_person(&fields(name)).await.unwrap();
        for sample in 0..2 {
            let seed = 100 + 10 * index as u64 + sample;
            faces.push((
                person.id,
                store.add_face(person.id, &new_face(seed, &model, DIM)).await.unwrap(),
                seed,
            ));
        }
    }
    let visitor = VisitorId(0x1234_5678);
    let at = Timestamp::from_unix_millis(1_700_000_000_000);
    store
        .write_visitor(&VisitorWrite::Create {
            id: visitor,
            model: model.clone(),
            centroid: embedding(900, DIM),
            at,
            sample: Some((embedding(901, DIM), crop(901, 3000))),
        })
        .await
        .unwrap();
    store
        .write_visitor(&VisitorWrite::Sighting {
            id: visitor,
            centroid: embedding(902, DIM),
            sightings: 2,
            at,
            sample: Some((embedding(903, DIM), crop(903, 3000))),
        })
        .await
        .unwrap();
    Stored { model, faces, visitor }
}

/// True when two unit vectors are the same (decoding renormalises, so the last bit may differ).
fn same(a: &Embedding, b: &Embedding) -> bool {
    (a.similarity(b) - 1.0).abs() < 1e-6
}

/// Everything [`populate`] stored reads back (crops byte for byte).
async fn assert_intact(store: &dyn PersonStore, stored: &Stored) {
    let rows = store.embeddings(&stored.model).await.unwrap();
    assert_eq!(rows.len(), stored.faces.len());
    for ((person, face, seed), row) in stored.faces.iter().zip(&rows) {
        assert_eq!((row.face, row.person), (face.id, *person));
        assert!(same(&row.embedding, &embedding(*seed, DIM)));
        assert_eq!(store.face_crop(*person, face.id).await.unwrap(), crop(*seed, 2048));
        assert!(store.faces(*person).await.unwrap().contains(face));
    }
    let (person, face, seed) = &stored.faces[0];
    let exported = store.person_embeddings(*person).await.unwrap();
    assert_eq!(exported[0].face, face.id);
    assert!(same(&exported[0].embedding, &embedding(*seed, DIM)));
    let visitors = store.visitors().await.unwrap();
    assert_eq!(visitors.len(), 1);
    assert!(same(&visitors[0].centroid, &embedding(902, DIM)));
    let samples = store.visitor_samples(stored.visitor).await.unwrap();
    assert_eq!(samples.len(), 2);
    for (sample, seed) in samples.iter().zip([901, 903]) {
        assert!(same(&sample.embedding, &embedding(seed, DIM)));
        assert_eq!(sample.jpeg, crop(seed, 3000));
    }
}

/// Distinctive windows of every stored crop and vector: the JPEG's first 8 bytes (`FF D8 FF
/// E0` then 4 data bytes), a window from the middle of each crop, and two windows of each
/// vector's float bytes.
fn needles(stored: &Stored) -> Vec<Vec<u8>> {
    let mut needles = Vec::new();
    for (_, _, seed) in &stored.faces {
        let (jpeg, vector) = (crop(*seed, 2048), embedding(*seed, DIM).to_le_bytes());
        needles.extend([jpeg[..8].to_vec(), jpeg[1000..1032].to_vec()]);
        needles.extend([vector[..32].to_vec(), vector[1024..1056].to_vec()]);
    }
    for seed in [901, 903] {
        let (jpeg, vector) = (crop(seed, 3000), embedding(seed, DIM).to_le_bytes());
        needles.extend([jpeg[..8].to_vec(), jpeg[1500..1532].to_vec(), vector[..32].to_vec()]);
    }
    needles.push(embedding(902, DIM).to_le_bytes()[..32].to_vec());
    needles
}

fn found(dir: &Path, needles: &[Vec<u8>]) -> usize {
    let bytes = database_bytes(dir);
    needles.iter().filter(|needle| contains(&bytes, needle)).count()
}

/// Nearest stored face (cosine, top-1) for each probe: what the index answers on start.
fn identify(rows: &[ddfr_store::StoredEmbedding], probes: &[Embedding]) -> Vec<(FaceId, f32)> {
    probes
        .iter()
        .map(|probe| {
            rows.iter()
                .map(|row| (row.face, row.embedding.similarity(probe)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn encrypted_values_round_trip_and_never_reach_the_disk_in_the_clear() {
    // Control: without a key the search finds every needle, so it can find them.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = open(plain_dir.path(), None).await.unwrap();
    let stored = populate(&plain).await;
    let needles = needles(&stored);
    assert_eq!(found(plain_dir.path(), &needles), needles.len());
    plain.close().await;

    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Some(1)).await.unwrap();
    let stored = populate(&store).await;
    assert_intact(&store, &stored).await;
    // While open (the values are in the write-ahead log) and after closing.
    assert_eq!(found(dir.path(), &needles), 0, "plaintext in the database or WAL");
    let wal = std::fs::metadata(dir.path().join(format!("{SQLITE_FILE_NAME}-wal"))).unwrap();
    assert!(wal.len() > 0, "the search covered a non-empty WAL");
    // Sealed values are the plaintext plus the envelope.
    let (face_id, vector): (i64, Vec<u8>) =
        sqlx::query_as("SELECT face_id, vector FROM embeddings ORDER BY face_id LIMIT 1")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(face_id, stored.faces[0].1.id.0);
    assert_eq!(vector.len(), 4 * DIM + ENVELOPE_OVERHEAD);
    store.close().await;
    assert_eq!(found(dir.path(), &needles), 0);

    let store = open(dir.path(), Some(1)).await.unwrap();
    assert_intact(&store, &stored).await;
    store.close().await;
}

#[tokio::test]
async fn a_wrong_or_missing_key_is_refused_and_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Some(1)).await.unwrap();
    let stored = populate(&store).await;
    store.close().await;
    let db = dir.path().join(SQLITE_FILE_NAME);
    // The database and its write-ahead log. `close` returns before SQLite's closing
    // checkpoint has finished on its worker thread: wait until it has removed the log.
    let wal = dir.path().join(format!("{SQLITE_FILE_NAME}-wal"));
    let files = || (std::fs::read(&db).unwrap(), std::fs::read(&wal).unwrap_or_default());
    for _ in 0..500 {
        if !wal.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = files();

    let wrong = open(dir.path(), Some(2)).await.unwrap_err();
    println!("wrong key: {wrong}");
    assert!(matches!(wrong, StoreError::WrongEncryptionKey), "{wrong:?}");
    assert!(wrong.to_string().contains("nothing was changed"));
    let missing = open(dir.path(), None).await.unwrap_err();
    println!("no key: {missing}");
    assert!(matches!(missing, StoreError::EncryptionKeyRequired), "{missing:?}");
    assert!(files() == before, "a refused open changed the database or its log");

    let store = open(dir.path(), Some(1)).await.unwrap();
    assert_intact(&store, &stored).await;
    store.close().await;
}

/// Flips the lowest bit of byte `index` of `table.column` in the row `condition` selects,
/// bypassing the store.
async fn flip_bit(store: &SqliteStore, table: &str, column: &str, condition: &str, index: usize) {
    let mut value: Vec<u8> =
        sqlx::query_scalar(&format!("SELECT {column} FROM {table} WHERE {condition}"))
            .fetch_one(store.pool())
            .await
            .unwrap();
    value[index] ^= 1;
    sqlx::query(&format!("UPDATE {table} SET {column} = $1 WHERE {condition}"))
        .bind(value)
        .execute(store.pool())
        .await
        .unwrap();
}

/// Runs `statement` on the raw database, bypassing the store.
async fn raw(store: &SqliteStore, statement: &str) {
    sqlx::query(statement).execute(store.pool()).await.unwrap();
}

fn assert_decryption_error<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Decryption { value }) => assert!(!value.is_empty(), "{what}"),
        other => panic!("{what}: expected a decryption error, got {other:?}"),
    }
}

#[tokio::test]
async fn tampered_values_are_errors_never_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Some(1)).await.unwrap();
    let stored = populate(&store).await;
    let (person, face, _) = stored.faces[2].clone();
    let face = face.id.0;

    // One flipped bit in the middle of a crop's ciphertext, and in the tag of a vector.
    flip_bit(&store, "face_crops", "jpeg", &format!("face_id = {face}"), 1000).await;
    flip_bit(&store, "embeddings", "vector", &format!("face_id = {face}"), 4 * DIM + 40).await;
    assert_decryption_error(store.face_crop(person, FaceId(face)).await, "tampered crop");
    assert_decryption_error(store.embeddings(&stored.model).await, "tampered embedding");
    assert_decryption_error(store.person_embeddings(person).await, "tampered embedding (export)");
    // A flipped nonce bit, and an emptied value.
    flip_bit(&store, "visitors", "centroid", &format!("id = {}", stored.visitor.0), 5).await;
    raw(
        &store,
        "UPDATE visitor_samples SET jpeg = x'' WHERE id = (SELECT MIN(id) FROM visitor_samples)",
    )
    .await;
    assert_decryption_error(store.visitors().await, "tampered centroid");
    assert_decryption_error(store.visitor_samples(stored.visitor).await, "emptied chip");
    store.close().await;
}

#[tokio::test]
async fn values_moved_between_rows_or_persons_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Some(1)).await.unwrap();
    let stored = populate(&store).await;
    let (anna, a1, _) = stored.faces[0].clone();
    let (_, a2, _) = stored.faces[1].clone();
    let (bruno, b1, _) = stored.faces[2].clone();

    // Two of Anna's crops swapped.
    raw(
        &store,
        &format!(
            "UPDATE face_crops SET jpeg = CASE face_id \
         WHEN {a} THEN (SELECT jpeg FROM face_crops WHERE face_id = {b}) \
         WHEN {b} THEN (SELECT jpeg FROM face_crops WHERE face_id = {a}) END \
         WHERE face_id IN ({a}, {b})",
            a = a1.id.0,
            b = a2.id.0
        ),
    )
    .await;
    assert_decryption_error(store.face_crop(anna, a1.id).await, "swapped crop");
    // Anna's vector copied onto Bruno's face: the index would name Bruno for Anna's face.
    raw(
        &store,
        &format!(
            "UPDATE embeddings SET vector = (SELECT vector FROM embeddings WHERE face_id = {a}) \
         WHERE face_id = {b}",
            a = a1.id.0,
            b = b1.id.0
        ),
    )
    .await;
    assert_decryption_error(store.embeddings(&stored.model).await, "copied embedding");
    // Restore Bruno's vector by re-enrolling the value, then move a whole face to Bruno.
    store.set_embedding(b1.id, &stored.model, &embedding(110, DIM)).await.unwrap();
    store.embeddings(&stored.model).await.unwrap();
    raw(&store, &format!("UPDATE faces SET person_id = {} WHERE id = {}", bruno.0, a2.id.0)).await;
    assert_decryption_error(store.embeddings(&stored.model).await, "face moved to another person");
    // A visitor's two chips swapped.
    raw(
        &store,
        "UPDATE visitor_samples SET jpeg = (SELECT jpeg FROM visitor_samples s \
                 WHERE s.id <> visitor_samples.id)",
    )
    .await;
    assert_decryption_error(store.visitor_samples(stored.visitor).await, "swapped chips");
    store.close().await;
}

#[tokio::test]
async fn a_plaintext_database_is_encrypted_in_place_when_a_key_is_first_given() {
    let dir = tempfile::tempdir().unwrap();
    let plain = open(dir.path(), None).await.unwrap();
    let stored = populate(&plain).await;
    let probes: Vec<Embedding> = (0..12).map(|seed| embedding(100 + seed, DIM)).collect();
    let before = identify(&plain.embeddings(&stored.model).await.unwrap(), &probes);
    let persons_before = plain.all_persons().await.unwrap();
    let needles = needles(&stored);
    assert_eq!(found(dir.path(), &needles), needles.len());
    plain.close().await;

    let started = Instant::now();
    let store = open(dir.path(), Some(3)).await.unwrap();
    println!(
        "encrypted {} faces + 1 visitor at open in {:?}",
        stored.faces.len(),
        started.elapsed()
    );
    assert_eq!(store.all_persons().await.unwrap(), persons_before);
    assert_intact(&store, &stored).await;
    assert_eq!(identify(&store.embeddings(&stored.model).await.unwrap(), &probes), before);
    // The plaintext is gone from the file and the log, open or closed.
    assert_eq!(found(dir.path(), &needles), 0, "plaintext left after encrypting");
    store.close().await;
    assert_eq!(found(dir.path(), &needles), 0);

    // From now on the key is required, and a second open does not encrypt twice.
    assert!(matches!(open(dir.path(), None).await, Err(StoreError::EncryptionKeyRequired)));
    let store = open(dir.path(), Some(3)).await.unwrap();
    assert_intact(&store, &stored).await;
    let next = store.add_face(persons_before[0].id, &new_face(500, &stored.model, DIM)).await;
    assert_eq!(
        store.face_crop(persons_before[0].id, next.unwrap().id).await.unwrap(),
        crop(500, 2048)
    );
    store.close().await;
}

#[tokio::test]
async fn a_backup_of_an_encrypted_database_stays_encrypted_and_opens_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Some(5)).await.unwrap();
    let stored = populate(&store).await;
    let copy_dir = tempfile::tempdir().unwrap();
    store.backup_to(&copy_dir.path().join(SQLITE_FILE_NAME)).await.unwrap();
    store.close().await;
    assert_eq!(found(copy_dir.path(), &needles(&stored)), 0, "plaintext in the backup");
    assert!(matches!(open(copy_dir.path(), None).await, Err(StoreError::EncryptionKeyRequired)));
    assert!(matches!(open(copy_dir.path(), Some(6)).await, Err(StoreError::WrongEncryptionKey)));
    let copy = open(copy_dir.path(), Some(5)).await.unwrap();
    assert_intact(&copy, &stored).await;
    copy.close().await;
}

/// Measures what encryption costs: enrolling, opening (key check) and loading every
/// embedding for the index, and encrypting an existing plaintext database, with
/// `DDFR_BENCH_SAMPLES` (default 10,000) samples of a 512-d embedding and a 6 KB chip.
/// `cargo test -p ddfr-store --release --test encryption -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a measurement, minutes in a debug build"]
async fn encryption_cost() {
    let n: usize =
        std::env::var("DDFR_BENCH_SAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let model = ModelId::new("arcface-r100");
    let faces: Vec<_> = (0..n as u64)
        .map(|seed| {
            let mut face = new_face(seed, &model, DIM);
            face.crop_jpeg = crop(seed, 6 * 1024);
            face
        })
        .collect();
    for encrypted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let key_byte = encrypted.then_some(9);
        let store = open(dir.path(), key_byte).await.unwrap();
        let started = Instant::now();
        let mut person = PersonId(0);
        for (index, face) in faces.iter().enumerate() {
            // Five samples per person.
            if index % 5 == 0 {
                person = store.create_person(&fields(&format!("P{index}"))).await.unwrap().id;
            }
            store.add_face(person, face).await.unwrap();
        }
        let enroll = started.elapsed();
        store.close().await;
        let started = Instant::now();
        let store = open(dir.path(), key_byte).await.unwrap();
        let opened = started.elapsed();
        let rows = store.embeddings(&model).await.unwrap();
        let loaded = started.elapsed();
        assert_eq!(rows.len(), n);
        store.close().await;
        let size = std::fs::metadata(dir.path().join(SQLITE_FILE_NAME)).unwrap().len();
        println!(
            "{:>9}: enroll {n} samples (and {} persons) {:?} ({:.3} ms per sample), \
             open {opened:?}, open + load all embeddings {loaded:?}, file {:.1} MiB",
            if encrypted { "encrypted" } else { "plaintext" },
            n / 5,
            enroll,
            enroll.as_secs_f64() * 1e3 / n as f64,
            size as f64 / (1024.0 * 1024.0)
        );
        if !encrypted {
            // Turning encryption on for this plaintext database.
            let copy = tempfile::tempdir().unwrap();
            std::fs::copy(dir.path().join(SQLITE_FILE_NAME), copy.path().join(SQLITE_FILE_NAME))
                .unwrap();
            let started = Instant::now();
            let store = open(copy.path(), Some(9)).await.unwrap();
            println!("encrypting the existing {n} samples at open: {:?}", started.elapsed());
            store.close().await;
        }
    }
}
