//! Consent, retention, the privacy policy and the export archive, in-process on an SQLite temp
//! dir with the real model pack. Photo tests read `$DDFR_TESTDATA` and print SKIPPED when it
//! (or the models) are absent.

// Helpers of a test crate: a failed unwrap is a failed test, and SKIPPED goes to stdout.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;
use common::{
    MAX_BODY, contains, get, json_request, load_pack, multipart, send, services, testdata,
};

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use ddfr_core::PersonId;
use ddfr_protocol::Timestamp;
use ddfr_server::privacy::{LastMatches, PrivacyConfig, flush_last_matches, purge_expired};
use ddfr_server::{AppState, ServerConfig, Services, router};
use ddfr_store::{PersonStore, SqliteStore};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

const DAY: i64 = 86_400_000;

struct Harness {
    app: axum::Router,
    state: AppState,
    dir: tempfile::TempDir,
    data: PathBuf,
}

impl Harness {
    fn photo(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.data.join("faces").join(rel)).unwrap()
    }

    fn services(&self) -> Arc<Services> {
        self.state.services().unwrap()
    }

    /// Every byte of the database and its write-ahead log.
    fn database_bytes(&self) -> Vec<u8> {
        let db = self.dir.path().join("ddfr.db");
        let mut bytes = std::fs::read(&db).unwrap();
        bytes.extend(std::fs::read(db.with_extension("db-wal")).unwrap_or_default());
        bytes
    }
}

async fn harness(privacy: PrivacyConfig) -> Option<Harness> {
    let Some(data) = testdata() else {
        println!("SKIPPED: $DDFR_TESTDATA (../shared/testdata) not found");
        return None;
    };
    let Some(pack) = load_pack(2) else {
        println!("SKIPPED: models or ONNX Runtime not set up (run scripts/setup)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("ddfr.db").display());
    let store = ddfr_store::open_store(&ddfr_store::DatabaseUrl::new(url)).await.unwrap();
    let mut config = ServerConfig::new(([127, 0, 0, 1], 0).into());
    config.privacy = privacy;
    let state = AppState::new(config);
    state.set_ready(services(pack, store).await);
    Some(Harness { app: router(state.clone()), state, dir, data })
}

fn post(uri: &str) -> Request<Body> {
    Request::builder().method("POST").uri(uri).body(Body::empty()).unwrap()
}

fn person_body(name: &str) -> Value {
    json!({"name": name, "surname": "Tester", "birthday": "1961-08-04"})
}

fn consent_body(subject: &str) -> Value {
    json!({
        "subject": subject, "method": "written", "notice_version": "2025-01",
        "purpose": "recognise household members at the door",
        "retention_term": "until withdrawn", "recorded_by": "the owner"
    })
}

async fn create_person(h: &Harness, name: &str) -> i64 {
    let (status, person, _) =
        send(&h.app, json_request("POST", "/api/persons", &person_body(name))).await;
    assert_eq!(status, StatusCode::CREATED, "{person}");
    person["id"].as_i64().unwrap()
}

async fn audit_actions(h: &Harness, person: i64) -> Vec<(String, String)> {
    let entries = h.services().store.audit_of_person(PersonId(person)).await.unwrap();
    entries.into_iter().map(|e| (e.action, e.actor)).collect()
}

fn required() -> PrivacyConfig {
    PrivacyConfig { require_consent: true, ..PrivacyConfig::default() }
}

#[tokio::test]
async fn enrolling_without_consent_is_refused_when_required_and_withdrawal_deletes_everything() {
    let Some(h) = harness(required()).await else { return };
    let id = create_person(&h, "Barack").await;
    let faces_uri = format!("/api/persons/{id}/faces");
    let photo = h.photo("barack_obama/barack_obama_01.jpg");

    // No consent record: 409, nothing stored, for one photo and for a batch.
    let (status, error, _) = send(&h.app, multipart(&faces_uri, &[("image", &photo)])).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"]["code"], "consent_required");
    let batch = multipart(&format!("{faces_uri}/batch"), &[("image", &photo)]);
    assert_eq!(send(&h.app, batch).await.0, StatusCode::CONFLICT);
    assert_eq!(h.services().store.count_faces().await.unwrap(), 0);
    assert_eq!(h.services().gallery.n_faces(), 0);

    // An invalid record is a 422 listing every field; a valid one is 201 and listed.
    let consent_uri = format!("/api/persons/{id}/consent");
    let bad = json!({"subject": "", "method": "telepathy"});
    let (status, error, _) = send(&h.app, json_request("POST", &consent_uri, &bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["details"].as_array().unwrap().len(), 6, "{error}");
    let subject = "Barack H. Obama (subject-91c4)";
    let (status, consent, _) =
        send(&h.app, json_request("POST", &consent_uri, &consent_body(subject))).await;
    assert_eq!(status, StatusCode::CREATED, "{consent}");
    assert_eq!(
        (consent["person_id"].as_i64(), consent["method"].as_str()),
        (Some(id), Some("written"))
    );
    assert!(consent["given_at"].as_str().unwrap().ends_with('Z'));
    let (status, listed, _) = send(&h.app, get(&consent_uri)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed, json!([consent]));
    let (status, _, _) = send(&h.app, get("/api/persons/999999/consent")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // With consent: enrolled, and recognised.
    let (status, face, _) = send(&h.app, multipart(&faces_uri, &[("image", &photo)])).await;
    assert_eq!(status, StatusCode::CREATED, "{face}");
    let face_id = face["id"].as_i64().unwrap();
    let other = h.photo("barack_obama/barack_obama_02.jpg");
    let (_, reply, _) = send(&h.app, multipart("/api/recognize", &[("image", &other)])).await;
    assert_eq!(reply["faces"][0]["person_id"], id, "{reply}");

    // The stored bytes, to look for after the withdrawal.
    let store = SqliteStore::open_in_dir(h.dir.path()).await.unwrap();
    let crop = store.face_crop(PersonId(id), ddfr_core::FaceId(face_id)).await.unwrap();
    let vector = store.person_embeddings(PersonId(id)).await.unwrap()[0].embedding.to_le_bytes();
    let needles = [
        crop[..64].to_vec(),
        crop[crop.len() / 2..][..64].to_vec(),
        vector[..64].to_vec(),
        subject.as_bytes().to_vec(),
    ];
    let before = h.database_bytes();
    assert!(needles.iter().all(|n| contains(&before, n)), "the search must find live data");

    // Withdrawal: 204, the person and every byte of theirs gone, never recognised again.
    let (status, _, _) = send(&h.app, post(&format!("{consent_uri}/withdraw"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(send(&h.app, get(&format!("/api/persons/{id}"))).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        send(&h.app, post(&format!("{consent_uri}/withdraw"))).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, reply, _) = send(&h.app, multipart("/api/recognize", &[("image", &other)])).await;
    assert_eq!(reply["faces"][0]["person_id"], Value::Null, "{reply}");
    assert_eq!(h.services().gallery.n_faces(), 0);
    let after = h.database_bytes();
    for (index, needle) in needles.iter().enumerate() {
        assert!(!contains(&after, needle), "withdrawn bytes {index} still in the database files");
    }
    let actions: Vec<String> = audit_actions(&h, id).await.into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        actions,
        ["person_create", "consent_record", "face_enroll", "consent_withdraw", "person_delete"]
    );
    store.close().await;
}

#[tokio::test]
async fn retention_dates_are_validated_shown_moved_by_matches_and_purged() {
    let privacy = PrivacyConfig { retention_days: 30, ..PrivacyConfig::default() };
    let Some(h) = harness(privacy.clone()).await else { return };
    let services = h.services();

    // Explicit dates: validated, shown, cleared back to the default rule.
    let mut body = person_body("Past");
    body["retain_until"] = json!("2001-01-01");
    let (status, error, _) = send(&h.app, json_request("POST", "/api/persons", &body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["details"][0]["field"], "retain_until");
    body["retain_until"] = json!("2099-12-31");
    body["name"] = json!("Kept");
    let (status, kept, _) = send(&h.app, json_request("POST", "/api/persons", &body)).await;
    assert_eq!(status, StatusCode::CREATED, "{kept}");
    assert_eq!(kept["retain_until"], "2099-12-31");
    let kept_id = kept["id"].as_i64().unwrap();

    let id = create_person(&h, "Barack").await;
    let uri = format!("/api/persons/{id}");
    let (_, person, _) = send(&h.app, get(&uri)).await;
    let created: Timestamp = person["created_at"].as_str().unwrap().parse().unwrap();
    let after_days = |base: Timestamp, days: i64| {
        Timestamp::from_unix_millis(base.unix_millis() + days * DAY).date().unwrap().to_string()
    };
    assert_eq!(person["retain_until"], after_days(created, 30));
    let patch = json_request("PATCH", &uri, &json!({"retain_until": "2099-01-01"}));
    assert_eq!(send(&h.app, patch).await.1["retain_until"], "2099-01-01");
    let (_, list, _) = send(&h.app, get("/api/persons")).await;
    let listed: Vec<&Value> =
        list["items"].as_array().unwrap().iter().map(|p| &p["retain_until"]).collect();
    assert_eq!(listed, [&json!("2099-12-31"), &json!("2099-01-01")]);
    let (status, patched, _) =
        send(&h.app, json_request("PATCH", &uri, &json!({"retain_until": null}))).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["retain_until"], after_days(created, 30));

    // A match is noted in memory only; the flush writes it and moves the date.
    let photo = h.photo("barack_obama/barack_obama_01.jpg");
    let faces_uri = format!("{uri}/faces");
    assert_eq!(
        send(&h.app, multipart(&faces_uri, &[("image", &photo)])).await.0,
        StatusCode::CREATED
    );
    let other = h.photo("barack_obama/barack_obama_02.jpg");
    let (_, reply, _) = send(&h.app, multipart("/api/recognize", &[("image", &other)])).await;
    assert_eq!(reply["faces"][0]["person_id"], id, "{reply}");
    assert_eq!(services.gallery.last_matches().pending(), 1);
    assert_eq!(services.store.retention(PersonId(id)).await.unwrap().last_matched_at, None);
    assert_eq!(flush_last_matches(&services).await, 1);
    assert_eq!(services.gallery.last_matches().pending(), 0);
    let matched = services.store.retention(PersonId(id)).await.unwrap().last_matched_at.unwrap();
    assert!(matched >= created);
    assert_eq!(send(&h.app, get(&uri)).await.1["retain_until"], after_days(matched, 30));

    // The purge with an injected clock: nothing on the last day, the person the day after,
    // with their index entries; the explicit date keeps the other; one `purge` entry.
    let last_day = Timestamp::from_unix_millis(matched.unix_millis() + 30 * DAY);
    assert!(purge_expired(&services, &privacy, last_day).await.unwrap().is_empty());
    let next_day = Timestamp::from_unix_millis(last_day.unix_millis() + DAY);
    assert_eq!(purge_expired(&services, &privacy, next_day).await.unwrap(), [PersonId(id)]);
    assert_eq!(send(&h.app, get(&uri)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(services.gallery.n_faces(), 0);
    let (_, reply, _) = send(&h.app, multipart("/api/recognize", &[("image", &other)])).await;
    assert_eq!(reply["faces"][0]["person_id"], Value::Null, "{reply}");
    assert_eq!(send(&h.app, get(&format!("/api/persons/{kept_id}"))).await.0, StatusCode::OK);
    let purge: Vec<(String, String)> =
        audit_actions(&h, id).await.into_iter().filter(|(a, _)| a == "purge").collect();
    assert_eq!(purge, [("purge".to_owned(), "system".to_owned())]);
}

#[tokio::test]
async fn the_policy_is_open_and_states_the_schedule() {
    let privacy = PrivacyConfig {
        retention_days: 400,
        require_consent: true,
        notice_version: "2025-03".to_owned(),
    };
    let Some(h) = harness(privacy).await else { return };
    let (status, policy, _) = send(&h.app, get("/api/privacy/policy")).await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert_eq!(policy["person_retention_days"], 400);
    assert_eq!(policy["consent_required"], true);
    assert_eq!(policy["notice_version"], "2025-03");
    assert_eq!(policy["unknown_visitors"], false);
    assert_eq!(policy["unknown_retention_days"], Value::Null);
    assert_eq!(policy["purge_interval_hours"], 1);
    assert!(policy["person_retention"].as_str().unwrap().contains("400 days"));
    let never = policy["never_stored"].as_array().unwrap();
    assert!(never.iter().any(|s| s.as_str().unwrap().starts_with("live frames")), "{policy}");
}

/// Reads one file of a ZIP archive.
fn unzip(archive: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>, name: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    archive.by_name(name).unwrap().read_to_end(&mut bytes).unwrap();
    bytes
}

#[tokio::test]
async fn the_export_is_one_zip_whose_contents_and_hashes_match_the_stored_data() {
    let Some(h) = harness(PrivacyConfig::default()).await else { return };
    let id = create_person(&h, "Barack").await;
    let uri = format!("/api/persons/{id}");
    let consent_uri = format!("{uri}/consent");
    send(&h.app, json_request("POST", &consent_uri, &consent_body("Barack"))).await;
    let mut face_ids = Vec::new();
    for n in ["01", "02"] {
        let photo = h.photo(&format!("barack_obama/barack_obama_{n}.jpg"));
        let (status, face, _) =
            send(&h.app, multipart(&format!("{uri}/faces"), &[("image", &photo)])).await;
        assert_eq!(status, StatusCode::CREATED, "{face}");
        face_ids.push(face["id"].as_i64().unwrap());
    }
    assert_eq!(
        send(&h.app, get(&format!("{uri}/export?format=tar"))).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let started = std::time::Instant::now();
    let response = h.app.clone().oneshot(get(&format!("{uri}/export"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/zip");
    assert_eq!(
        response.headers()[header::CONTENT_DISPOSITION],
        format!("attachment; filename=\"ddfr-person-{id}.zip\"").as_str()
    );
    let bytes = to_bytes(response.into_body(), MAX_BODY).await.unwrap().to_vec();
    println!("export of 2 samples: {} bytes in {:?}", bytes.len(), started.elapsed());
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut names: Vec<String> = archive.file_names().map(str::to_owned).collect();
    names.sort();
    let mut expected = vec![
        "audit.json".to_owned(),
        "consent.json".to_owned(),
        "embeddings.json".to_owned(),
        "faces.json".to_owned(),
        "manifest.json".to_owned(),
        "person.json".to_owned(),
    ];
    expected.extend(face_ids.iter().map(|f| format!("faces/{f}.jpg")));
    expected.sort();
    assert_eq!(names, expected);

    // The manifest: every other file, with its size and SHA-256.
    let manifest: Value = serde_json::from_slice(&unzip(&mut archive, "manifest.json")).unwrap();
    assert_eq!(
        (manifest["format"].as_str(), manifest["person_id"].as_i64()),
        (Some("ddfr-person-export"), Some(id))
    );
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), expected.len() - 1);
    for file in files {
        let bytes = unzip(&mut archive, file["path"].as_str().unwrap());
        assert_eq!(file["size"], bytes.len(), "{file}");
        assert_eq!(file["sha256"], hex::encode(Sha256::digest(&bytes)), "{file}");
    }

    // Each file against the stored data: fields, chips byte-identical to the crop route,
    // vectors bit-exact against the database, the consent records, the audit trail.
    let person: Value = serde_json::from_slice(&unzip(&mut archive, "person.json")).unwrap();
    assert_eq!(person, send(&h.app, get(&uri)).await.1);
    let faces: Value = serde_json::from_slice(&unzip(&mut archive, "faces.json")).unwrap();
    assert_eq!(faces, send(&h.app, get(&format!("{uri}/faces"))).await.1);
    for face in &face_ids {
        let (status, _, crop) = send(&h.app, get(&format!("{uri}/faces/{face}/crop"))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(unzip(&mut archive, &format!("faces/{face}.jpg")), crop);
    }
    let embeddings: Vec<Value> =
        serde_json::from_slice(&unzip(&mut archive, "embeddings.json")).unwrap();
    let stored = h.services().store.person_embeddings(PersonId(id)).await.unwrap();
    assert_eq!(embeddings.len(), stored.len());
    for (exported, stored) in embeddings.iter().zip(&stored) {
        assert_eq!(exported["face_id"], stored.face.0);
        assert_eq!(exported["model"], stored.model.as_str());
        let vector: Vec<f32> = serde_json::from_value(exported["vector"].clone()).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&vector), bits(stored.embedding.as_slice()));
    }
    let consent: Value = serde_json::from_slice(&unzip(&mut archive, "consent.json")).unwrap();
    assert_eq!(consent, send(&h.app, get(&consent_uri)).await.1);
    let audit: Vec<Value> = serde_json::from_slice(&unzip(&mut archive, "audit.json")).unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["person_create", "consent_record", "face_enroll", "face_enroll", "person_export"]
    );
    assert_eq!(audit[4]["detail"], "faces=2 format=zip");

    // The JSON form stays available and carries the consent records too.
    let (status, json_export, _) = send(&h.app, get(&format!("{uri}/export?format=json"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_export["consents"], consent);
}

/// The frame path's only retention work: one `LastMatches::note` per frame with a match.
/// Prints its cost (figures in docs/reliability.md, PR-3); run with `--ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn noting_a_match_costs_well_under_a_microsecond() {
    let matches = LastMatches::default();
    let n = 1_000_000u32;
    let started = std::time::Instant::now();
    for i in 0..n {
        let at = Timestamp::from_unix_millis(i64::from(i));
        matches.note([PersonId(i64::from(i % 4)), PersonId(i64::from(i % 7))], at);
    }
    let per_call = started.elapsed().as_nanos() as f64 / f64::from(n);
    println!("LastMatches::note (2 persons): {per_call:.0} ns per frame");
    let shared = Arc::new(LastMatches::default());
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let matches = Arc::clone(&shared);
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                for i in 0..n {
                    matches
                        .note([PersonId(i64::from(t))], Timestamp::from_unix_millis(i64::from(i)));
                }
                started.elapsed().as_nanos() as f64 / f64::from(n)
            })
        })
        .collect();
    for thread in threads {
        println!(
            "LastMatches::note (1 person, 2 threads on one map): {:.0} ns",
            thread.join().unwrap()
        );
    }
}
