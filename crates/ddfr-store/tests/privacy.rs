//! Consent records and retention (schema v5), on SQLite (always) and PostgreSQL (when
//! `DDFR_TEST_DATABASE_URL` is set and the `postgres` feature is on): consent CRUD, retention
//! dates, batched last-match times, and the purge driven by an injected clock, which on SQLite
//! leaves none of the purged person's bytes in the database or its write-ahead log.
// The story and its helpers are test code outside `#[test]` functions: a failed unwrap is a
// failed test.
#![allow(clippy::unwrap_used)]

use ddfr_core::{ModelId, PersonId};
use ddfr_protocol::{Date, Timestamp};
use ddfr_store::{
    NewConsent, PersonStore, PrivacyStore, SqliteStore, StoreError, purge_expired_persons,
};

mod common;
use common::{DIM, contains, database_bytes, fields, new_face, unique_suffix};

/// Environment variable with a PostgreSQL URL to run the story against.
const PG_URL_VAR: &str = "DDFR_TEST_DATABASE_URL";

const DAY: i64 = 86_400_000;

fn consent(subject: &str) -> NewConsent {
    NewConsent {
        subject: subject.to_owned(),
        given_at: Timestamp::from_unix_millis(1_700_000_000_000),
        method: "written".to_owned(),
        notice_version: "2025-01".to_owned(),
        purpose: "recognise household members at the door".to_owned(),
        retention_term: "until withdrawn".to_owned(),
        recorded_by: "Marco".to_owned(),
    }
}

fn date(text: &str) -> Date {
    text.parse().unwrap()
}

/// The contract every backend meets. Tolerates a non-empty database: it only looks at the
/// persons it created.
async fn privacy_story(store: &dyn PersonStore) {
    let suffix = unique_suffix();
    let anna = store.create_person(&fields("Anna")).await.unwrap();
    let bruno = store.create_person(&fields("Bruno")).await.unwrap();

    // Consent records: none, then two, oldest first; unknown persons are refused.
    assert!(store.consents(anna.id).await.unwrap().is_empty());
    let first = store.add_consent(anna.id, &consent(&format!("Anna {suffix}"))).await.unwrap();
    let mut second_record = consent("Anna's guardian");
    second_record.method = "verbal".to_owned();
    let second = store.add_consent(anna.id, &second_record).await.unwrap();
    assert!(second.id > first.id);
    let listed = store.consents(anna.id).await.unwrap();
    assert_eq!(listed, vec![first.clone(), second.clone()]);
    assert_eq!(listed[1].record, second_record);
    assert!(store.consents(bruno.id).await.unwrap().is_empty());
    let missing = PersonId(i64::MAX - 7);
    assert!(matches!(
        store.add_consent(missing, &consent("x")).await,
        Err(StoreError::PersonNotFound(_))
    ));
    assert!(matches!(store.consents(missing).await, Err(StoreError::PersonNotFound(_))));
    // The database's own checks hold: an unknown method is refused.
    let mut bad = consent("x");
    bad.method = "telepathy".to_owned();
    assert!(store.add_consent(anna.id, &bad).await.is_err());
    assert_eq!(store.consents(anna.id).await.unwrap().len(), 2);

    // Retention: the default rule until a date is set; clearing it restores the rule.
    let retention = store.retention(anna.id).await.unwrap();
    assert_eq!((retention.explicit, retention.last_matched_at), (None, None));
    assert_eq!(retention.created_at, anna.created_at);
    let by_default = Timestamp::from_unix_millis(anna.created_at.unix_millis() + 30 * DAY);
    assert_eq!(retention.retain_until(30), Some(by_default.date().unwrap()));
    store.set_retain_until(anna.id, Some(date("2999-12-31"))).await.unwrap();
    assert_eq!(store.retention(anna.id).await.unwrap().retain_until(30), Some(date("2999-12-31")));
    store.set_retain_until(anna.id, None).await.unwrap();
    assert_eq!(store.retention(anna.id).await.unwrap().explicit, None);
    assert!(matches!(store.retention(missing).await, Err(StoreError::PersonNotFound(_))));
    assert!(matches!(
        store.set_retain_until(missing, None).await,
        Err(StoreError::PersonNotFound(_))
    ));

    // Last matches: the later time wins, a deleted or unknown person is skipped.
    let at = |days: i64| Timestamp::from_unix_millis(anna.created_at.unix_millis() + days * DAY);
    let written = store
        .record_last_matches(&[(anna.id, at(10)), (bruno.id, at(3)), (missing, at(3))])
        .await
        .unwrap();
    assert_eq!(written, 2);
    store.record_last_matches(&[(anna.id, at(5))]).await.unwrap();
    assert_eq!(store.retention(anna.id).await.unwrap().last_matched_at, Some(at(10)));
    assert_eq!(store.retention(bruno.id).await.unwrap().last_matched_at, Some(at(3)));
    let all = store.retentions().await.unwrap();
    assert!(all.windows(2).all(|w| w[0].person < w[1].person), "by ascending id");
    assert!(all.iter().any(|r| r.person == anna.id && r.last_matched_at == Some(at(10))));

    // The purge, with an injected clock and a 30-day rule: Bruno (last match day 3) expires
    // after day 33, Anna (day 10) after day 40; an explicit date keeps Carla.
    let carla = store.create_person(&fields("Carla")).await.unwrap();
    store.set_retain_until(carla.id, Some(date("2999-01-01"))).await.unwrap();
    let ours = |ids: Vec<PersonId>| -> Vec<PersonId> {
        ids.into_iter().filter(|id| [anna.id, bruno.id, carla.id].contains(id)).collect()
    };
    assert!(ours(purge_expired_persons(store, at(33), 30).await.unwrap()).is_empty());
    assert_eq!(ours(purge_expired_persons(store, at(35), 30).await.unwrap()), vec![bruno.id]);
    assert!(matches!(store.person(bruno.id).await, Err(StoreError::PersonNotFound(_))));
    assert_eq!(ours(purge_expired_persons(store, at(41), 30).await.unwrap()), vec![anna.id]);
    // Anna's consent records went with her.
    assert!(matches!(store.consents(anna.id).await, Err(StoreError::PersonNotFound(_))));
    assert!(ours(purge_expired_persons(store, at(5000), 30).await.unwrap()).is_empty());
    assert_eq!(store.person(carla.id).await.unwrap().id, carla.id);

    // Deleting a person removes their consent and retention rows too.
    store.add_consent(carla.id, &consent("Carla")).await.unwrap();
    store.delete_person(carla.id).await.unwrap();
    assert!(store.retentions().await.unwrap().iter().all(|r| r.person != carla.id));
}

#[tokio::test]
async fn sqlite_privacy_story() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
    privacy_story(&store).await;
    // No consent or retention row survives its person.
    for table in ["consents", "person_retention"] {
        let orphans: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {table} WHERE person_id NOT IN (SELECT id FROM persons)"
        ))
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(orphans, 0, "{table}");
    }
    store.close().await;
}

#[tokio::test]
async fn postgres_privacy_story() {
    let Ok(url) = std::env::var(PG_URL_VAR) else {
        println!("SKIPPED: {PG_URL_VAR} is not set");
        return;
    };
    #[cfg(feature = "postgres")]
    {
        // A database of its own: the purge deletes every expired person it finds.
        let (fresh, name) = common::fresh_pg_database(&url, "privacy").await;
        let store = ddfr_store::PgStore::connect(&fresh).await.unwrap();
        privacy_story(&store).await;
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

#[tokio::test]
async fn a_purged_person_leaves_no_bytes_in_the_db_or_wal() {
    let dir = tempfile::tempdir().unwrap();
    let model = ModelId::new("arcface");
    let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
    let keep = store.create_person(&fields("Keep")).await.unwrap();
    store.set_retain_until(keep.id, Some(date("2999-01-01"))).await.unwrap();
    store.add_face(keep.id, &new_face(100, &model, DIM)).await.unwrap();
    let gone = store.create_person(&fields("Gone")).await.unwrap();
    let faces: Vec<_> = (300..303).map(|seed| new_face(seed, &model, DIM)).collect();
    for face in &faces {
        store.add_face(gone.id, face).await.unwrap();
    }
    let subject = "Subject-7f3a-only-in-this-consent";
    store.add_consent(gone.id, &consent(subject)).await.unwrap();
    let last_match = Timestamp::from_unix_millis(gone.created_at.unix_millis() + DAY);
    store.record_last_matches(&[(gone.id, last_match)]).await.unwrap();

    let mut needles: Vec<Vec<u8>> = faces
        .iter()
        .flat_map(|face| {
            let vector = face.embedding.to_le_bytes();
            [
                vector[..64].to_vec(),
                face.crop_jpeg[..64].to_vec(),
                face.crop_jpeg[1000..1064].to_vec(),
            ]
        })
        .collect();
    needles.push(subject.as_bytes().to_vec());
    let before = database_bytes(dir.path());
    assert!(needles.iter().all(|n| contains(&before, n)), "the search must find live data");

    // One day before expiry nothing goes; the day after, the person does, with every byte.
    let expiry = last_match.unix_millis() + 1095 * DAY;
    let day_before = Timestamp::from_unix_millis(expiry - DAY);
    assert!(purge_expired_persons(&store, day_before, 1095).await.unwrap().is_empty());
    let day_after = Timestamp::from_unix_millis(expiry + DAY);
    assert_eq!(purge_expired_persons(&store, day_after, 1095).await.unwrap(), vec![gone.id]);
    let after = database_bytes(dir.path());
    for (index, needle) in needles.iter().enumerate() {
        assert!(!contains(&after, needle), "purged bytes {index} still in the database files");
    }
    assert!(contains(&after, &new_face(100, &model, DIM).crop_jpeg[..64]), "kept person intact");
    assert_eq!(store.count_persons().await.unwrap(), 1);
    store.close().await;
}

/// What the hourly job costs: the scan when nobody expired, and deleting expired persons.
/// Prints figures (docs/reliability.md, PR-3); run with `--ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn purge_cost() {
    let dir = tempfile::tempdir().unwrap();
    let model = ModelId::new("arcface");
    let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
    let n = 1000u64;
    let mut created = None;
    for seed in 0..n {
        let person = store.create_person(&fields("Anna")).await.unwrap();
        store.add_face(person.id, &new_face(seed, &model, DIM)).await.unwrap();
        created.get_or_insert(person.created_at);
    }
    let matches: Vec<_> = (1..=i64::try_from(n).unwrap())
        .map(|id| (PersonId(id), Timestamp::from_unix_millis(created.unwrap().unix_millis() + DAY)))
        .collect();
    let started = std::time::Instant::now();
    store.record_last_matches(&matches).await.unwrap();
    println!("record_last_matches, {n} persons in one transaction: {:?}", started.elapsed());
    let started = std::time::Instant::now();
    let none = purge_expired_persons(&store, created.unwrap(), 1095).await.unwrap();
    assert!(none.is_empty());
    println!("purge scan, {n} persons, none expired: {:?}", started.elapsed());
    let later = Timestamp::from_unix_millis(created.unwrap().unix_millis() + 2000 * DAY);
    let started = std::time::Instant::now();
    let purged = purge_expired_persons(&store, later, 1095).await.unwrap();
    assert_eq!(purged.len() as u64, n);
    println!("purge, {n} expired persons with one 512-d sample each: {:?}", started.elapsed());
    store.close().await;
}
