//! In-process handler tests: `router(state)` driven with `oneshot` on an SQLite temp dir and
//! the real model pack. Photo tests read `$DDFR_TESTDATA` and print SKIPPED when it is absent.

// Helpers of a test crate: a failed unwrap is a failed test, and SKIPPED goes to stdout.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;
use common::{
    MAX_BODY, contains, get, json_request, load_pack, multipart, send, services, testdata,
};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use ddfr_server::{ApiToken, AppState, ServerConfig, router};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Harness {
    app: axum::Router,
    _dir: tempfile::TempDir,
}

async fn harness(token: Option<&str>) -> Option<Harness> {
    let Some(pack) = load_pack(2) else {
        println!("SKIPPED: models or ONNX Runtime not set up (run scripts/setup)");
        return None;
    };
    let dir = tempfile::tempdir().ok()?;
    let store = ddfr_store::open_store(&ddfr_store::DatabaseUrl::new(format!(
        "sqlite:{}",
        dir.path().join("ddfr.db").display()
    )))
    .await
    .ok()?;
    let mut config = ServerConfig::new(([127, 0, 0, 1], 0).into());
    config.api_token = token.map(ApiToken::new);
    let state = AppState::new(config);
    state.set_ready(services(pack, store).await);
    Some(Harness { app: router(state), _dir: dir })
}

/// A photo of the test set's no-face folder.
fn no_face_photo(data: &Path) -> PathBuf {
    let entries = std::fs::read_dir(data.join("faces/none")).unwrap();
    entries.filter_map(|e| e.ok()).map(|e| e.path()).next().unwrap()
}

fn person_body(name: &str) -> Value {
    json!({"name": name, "surname": "Tester", "birthday": "1961-08-04", "relationship": "amico", "role": "guest"})
}

#[tokio::test]
async fn health_is_503_until_ready() {
    let state = AppState::new(ServerConfig::new(([127, 0, 0, 1], 0).into()));
    let app = router(state);
    let (status, body, _) = send(&app, get("/api/health")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "not_ready");
}

#[tokio::test]
async fn persons_crud_and_validation() {
    let Some(h) = harness(None).await else { return };
    let (status, health, _) = send(&h.app, get("/api/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["n_persons"], 0);

    let (status, created, _) =
        send(&h.app, json_request("POST", "/api/persons", &person_body("Ada"))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["faces"], 0);
    assert!(created["age"].as_i64().unwrap() >= 60);

    let bad = json!({"name": "", "surname": "X", "birthday": "2001-02-30", "relationship": "nemico", "role": "guest"});
    let (status, error, _) = send(&h.app, json_request("POST", "/api/persons", &bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["error"]["code"], "validation_error");
    let (status, error, _) =
        send(&h.app, json_request("POST", "/api/persons", &json!({"name": "A", "extra": 1}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");

    let (status, patched, _) = send(
        &h.app,
        json_request("PATCH", &format!("/api/persons/{id}"), &json!({"role": "user"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["role"], "user");
    assert_eq!(patched["name"], "Ada");

    send(&h.app, json_request("POST", "/api/persons", &person_body("Bob"))).await;
    let (status, page, _) = send(&h.app, get("/api/persons?limit=1&offset=1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["name"], "Bob");

    let delete = Request::builder()
        .method("DELETE")
        .uri(format!("/api/persons/{id}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&h.app, delete).await.0, StatusCode::NO_CONTENT);
    let (status, error, _) = send(&h.app, get(&format!("/api/persons/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"]["code"], "person_not_found");
    assert_eq!(send(&h.app, get("/api/persons/abc")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(send(&h.app, get("/api/nothing-here")).await.0, StatusCode::NOT_FOUND);

    let (status, doc, _) = send(&h.app, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/api/persons/{id}/faces"]["post"].is_object());
    assert!(doc["paths"]["/api/verify"]["post"].is_object());
}

#[tokio::test]
async fn enroll_recognize_verify_and_delete() {
    let Some(data) = testdata() else {
        println!("SKIPPED: $DDFR_TESTDATA (../shared/testdata) not found");
        return;
    };
    let Some(h) = harness(None).await else { return };
    let photo = |rel: &str| std::fs::read(data.join(rel)).unwrap();
    let (_, person, _) =
        send(&h.app, json_request("POST", "/api/persons", &person_body("Barack"))).await;
    let id = person["id"].as_i64().unwrap();
    let faces_uri = format!("/api/persons/{id}/faces");

    let (status, face, _) = send(
        &h.app,
        multipart(&faces_uri, &[("image", &photo("faces/barack_obama/barack_obama_01.jpg"))]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{face}");
    let face_id = face["id"].as_i64().unwrap();
    assert!(face["right"].as_i64() > face["left"].as_i64());

    let (status, error, _) =
        send(&h.app, multipart(&faces_uri, &[("image", b"GIF89a not an image")])).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{error}");
    let (status, error, _) =
        send(&h.app, multipart(&faces_uri, &[("image", &[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3])])).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_image"))
    );
    let none = no_face_photo(&data);
    let (status, error, _) =
        send(&h.app, multipart(&faces_uri, &[("image", &std::fs::read(none).unwrap())])).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("no_face"))
    );
    let (status, error, _) = send(&h.app, json_request("POST", &faces_uri, &json!({}))).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{error}");

    let (status, crop, bytes) = send(&h.app, get(&format!("{faces_uri}/{face_id}/crop"))).await;
    assert_eq!(status, StatusCode::OK, "{crop}");
    assert!(bytes.starts_with(&[0xFF, 0xD8, 0xFF]));
    let (_, list, _) = send(&h.app, get(&faces_uri)).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let other = photo("faces/barack_obama/barack_obama_02.jpg");
    let (status, reply, _) = send(&h.app, multipart("/api/recognize", &[("image", &other)])).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["status"], "ok");
    assert_eq!(reply["faces"][0]["name"], "Barack", "{reply}");
    assert_eq!(reply["faces"][0]["surname"], "Tester");
    assert!(reply["faces"][0]["age"].as_i64().unwrap() > 60);
    let (status, error, _) =
        send(&h.app, multipart("/api/recognize", &[("image", b"garbage")])).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_image"))
    );

    let first = photo("faces/barack_obama/barack_obama_01.jpg");
    let (status, verdict, _) =
        send(&h.app, multipart("/api/verify", &[("image1", &first), ("image2", &other)])).await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(verdict["match"], true, "{verdict}");
    let none = no_face_photo(&data);
    let (status, error, _) = send(
        &h.app,
        multipart("/api/verify", &[("image1", &first), ("image2", &std::fs::read(none).unwrap())]),
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("no_face"))
    );

    let delete = Request::builder()
        .method("DELETE")
        .uri(format!("/api/persons/{id}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&h.app, delete).await.0, StatusCode::NO_CONTENT);
    let (_, reply, _) = send(&h.app, multipart("/api/recognize", &[("image", &other)])).await;
    assert_eq!(reply["faces"][0]["name"], "Unknown", "{reply}");
    assert_eq!(reply["faces"][0]["surname"], Value::Null);
    assert_eq!(reply["faces"][0]["age"], 0);
    let (_, health, _) = send(&h.app, get("/api/health")).await;
    assert_eq!((health["n_persons"].as_i64(), health["n_faces"].as_i64()), (Some(0), Some(0)));
}

#[tokio::test]
async fn token_guards_everything_but_health_and_login() {
    let Some(h) = harness(Some("s3cret-token")).await else { return };
    assert_eq!(send(&h.app, get("/api/health")).await.0, StatusCode::OK);
    let (status, error, _) = send(&h.app, get("/api/persons")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["error"]["code"], "unauthorized");
    let authed = Request::builder()
        .uri("/api/persons")
        .header(header::AUTHORIZATION, "Bearer s3cret-token")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&h.app, authed).await.0, StatusCode::OK);
    let wrong = Request::builder()
        .uri("/api/persons")
        .header(header::AUTHORIZATION, "Bearer s3cret-tokeN")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&h.app, wrong).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&h.app, get("/ws")).await.0, StatusCode::UNAUTHORIZED);

    let response = h
        .app
        .clone()
        .oneshot(json_request("POST", "/api/login", &json!({"token": "s3cret-token"})))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = Request::builder()
        .uri("/api/persons")
        .header(header::COOKIE, pair)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&h.app, with_cookie).await.0, StatusCode::OK);
    let (status, _, _) =
        send(&h.app, json_request("POST", "/api/login", &json!({"token": "nope"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn web_root_explains_when_the_app_is_not_built() {
    let state = AppState::new(ServerConfig::new(([127, 0, 0, 1], 0).into()));
    let (status, _, bytes) = send(&router(state), get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&bytes).contains("scripts/build"));
}

/// `photo` followed by zeros up to `len` bytes: a decodable JPEG (decoders stop at its end
/// marker) of exactly the size under test.
fn padded(photo: &[u8], len: usize) -> Vec<u8> {
    assert!(photo.len() <= len);
    let mut bytes = photo.to_vec();
    bytes.resize(len, 0);
    bytes
}

#[tokio::test]
async fn verify_admits_two_maximum_size_photos_and_refuses_more() {
    let Some(data) = testdata() else {
        println!("SKIPPED: $DDFR_TESTDATA (../shared/testdata) not found");
        return;
    };
    let Some(h) = harness(None).await else { return };
    let max = ddfr_engine::decode::DecodeLimits::PHOTO.max_bytes;
    let first = std::fs::read(data.join("faces/barack_obama/barack_obama_01.jpg")).unwrap();
    let second = std::fs::read(data.join("faces/barack_obama/barack_obama_02.jpg")).unwrap();
    let (first, second) = (padded(&first, max), padded(&second, max));

    // Two photos of the largest size a photo may have: admitted and compared.
    let (status, verdict, _) =
        send(&h.app, multipart("/api/verify", &[("image1", &first), ("image2", &second)])).await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(verdict["match"], true, "{verdict}");

    // One byte over the photo limit in either image: 413.
    let over = padded(&second, max + 1);
    let (status, error, _) =
        send(&h.app, multipart("/api/verify", &[("image1", &first), ("image2", &over)])).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")),
        "{error}"
    );

    // A body over the route's limit (two maximum photos plus more than the framing allowance
    // in another field): refused while reading, with the same 413.
    let limit = ddfr_server::rest::verify_body_limit(ddfr_server::config::MAX_UPLOAD_BYTES);
    let extra = vec![0u8; limit - 2 * max + 1];
    let (status, error, _) = send(
        &h.app,
        multipart("/api/verify", &[("image1", &first), ("image2", &second), ("extra", &extra)]),
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")),
        "{error}"
    );

    // The single-photo routes keep their one-photo limit.
    let (status, error, _) =
        send(&h.app, multipart("/api/recognize", &[("image", &first), ("extra", &second)])).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")),
        "{error}"
    );
}

/// A photo re-encoded as JPEG after `edit`.
fn edited_jpeg(photo: &[u8], edit: impl Fn(image::RgbImage) -> image::RgbImage) -> Vec<u8> {
    let decoded = image::load_from_memory_with_format(photo, image::ImageFormat::Jpeg).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&edit(decoded.to_rgb8()))
        .unwrap();
    out.into_inner()
}

#[tokio::test]
async fn quality_gate_duplicates_batches_and_strict_mode() {
    let Some(data) = testdata() else {
        println!("SKIPPED: $DDFR_TESTDATA (../shared/testdata) not found");
        return;
    };
    let Some(h) = harness(None).await else { return };
    let photo = |rel: &str| std::fs::read(data.join(rel)).unwrap();
    let create = |name: &'static str| {
        let app = h.app.clone();
        async move {
            let (_, person, _) =
                send(&app, json_request("POST", "/api/persons", &person_body(name))).await;
            person["id"].as_i64().unwrap()
        }
    };
    let katy = create("Katy").await;
    let katy_faces = format!("/api/persons/{katy}/faces");
    let katy1 = photo("faces/katy_perry/katy_perry_01.jpg");

    // The same photo twice (re-encoded): stored once; the second answer is 200 with the same id.
    let (status, first, _) = send(&h.app, multipart(&katy_faces, &[("image", &katy1)])).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let again = edited_jpeg(&katy1, |img| img);
    let (status, dup, _) = send(&h.app, multipart(&katy_faces, &[("image", &again)])).await;
    assert_eq!((status, &dup["id"]), (StatusCode::OK, &first["id"]), "{dup}");

    // A heavily blurred photo is refused as blurry.
    let blurred = edited_jpeg(&photo("faces/katy_perry/katy_perry_03.jpg"), |img| {
        image::imageops::blur(&img, 10.0)
    });
    let (status, error, _) = send(&h.app, multipart(&katy_faces, &[("image", &blurred)])).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("blurry")),
        "{error}"
    );

    // A batch: new photos enrolled, a duplicate skipped, bad ones rejected with reasons.
    let none = no_face_photo(&data);
    let none = std::fs::read(none).unwrap();
    let katy2 = photo("faces/katy_perry/katy_perry_02.jpg");
    let batch = [
        ("image", katy2.as_slice()),
        ("image", katy1.as_slice()),
        ("image", blurred.as_slice()),
        ("image", none.as_slice()),
        ("image", b"not an image".as_slice()),
        ("image", katy2.as_slice()),
        ("ignored", katy2.as_slice()),
    ];
    let (status, reply, _) = send(&h.app, multipart(&format!("{katy_faces}/batch"), &batch)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let codes: Vec<(&str, Option<&str>)> = reply["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].as_str().unwrap(), r["code"].as_str()))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("enrolled", None),
            ("skipped", Some("near_duplicate")),
            ("rejected", Some("blurry")),
            ("rejected", Some("no_face")),
            ("rejected", Some("unsupported_format")),
            ("skipped", Some("near_duplicate")),
        ],
        "{reply}"
    );
    assert_eq!((reply["enrolled"].as_u64(), reply["skipped"].as_u64()), (Some(1), Some(2)));
    assert_eq!(reply["results"][0]["filename"], "image.jpg");
    let (_, list, _) = send(&h.app, get(&katy_faces)).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let eleven: Vec<(&str, &[u8])> = (0..11).map(|_| ("image", katy2.as_slice())).collect();
    let (status, error, _) = send(&h.app, multipart(&format!("{katy_faces}/batch"), &eleven)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let (status, _, _) = send(&h.app, multipart("/api/persons/999/faces/batch", &batch)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Strict mode: Katy's photo added to someone else is refused; without it, accepted.
    let other = create("Other").await;
    let katy4 = photo("faces/katy_perry/katy_perry_04.jpg");
    let (status, error, _) = send(
        &h.app,
        multipart(&format!("/api/persons/{other}/faces?strict=true"), &[("image", &katy4)]),
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("looks_like_other_person")),
        "{error}"
    );
    let (status, error, _) = send(
        &h.app,
        multipart(&format!("/api/persons/{other}/faces?strict=maybe"), &[("image", &katy4)]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let (status, _, _) =
        send(&h.app, multipart(&format!("/api/persons/{other}/faces"), &[("image", &katy4)])).await;
    assert_eq!(status, StatusCode::CREATED, "strict mode is off by default");
}

/// The token of the audit and throttle tests.
const AUDIT_TOKEN: &str = "audit-s3cret-Q7vX";

fn with_bearer(mut request: Request<Body>) -> Request<Body> {
    let value = format!("Bearer {AUDIT_TOKEN}").parse().unwrap();
    request.headers_mut().insert(header::AUTHORIZATION, value);
    request
}

fn request(method: &str, uri: &str) -> Request<Body> {
    Request::builder().method(method).uri(uri).body(Body::empty()).unwrap()
}

fn login(token: &str) -> Request<Body> {
    json_request("POST", "/api/login", &json!({"token": token}))
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut bits, mut n) = (0u32, 0u32);
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = ALPHABET.iter().position(|a| *a == byte).unwrap() as u32;
        bits = (bits << 6) | value;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

#[tokio::test]
async fn audit_log_records_every_change_and_the_export_holds_what_is_stored() {
    let Some(data) = testdata() else {
        println!("SKIPPED: $DDFR_TESTDATA (../shared/testdata) not found");
        return;
    };
    let Some(h) = harness(Some(AUDIT_TOKEN)).await else { return };
    let photo = |rel: &str| std::fs::read(data.join(rel)).unwrap();
    let name = "Zebediah";

    assert_eq!(send(&h.app, login("wrong-token")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&h.app, login(AUDIT_TOKEN)).await.0, StatusCode::NO_CONTENT);
    let (status, person, _) =
        send(&h.app, with_bearer(json_request("POST", "/api/persons", &person_body(name)))).await;
    assert_eq!(status, StatusCode::CREATED, "{person}");
    let id = person["id"].as_i64().unwrap();
    let mut patch = json_request("PATCH", &format!("/api/persons/{id}"), &json!({"role": "user"}));
    let cookie: header::HeaderValue = format!("ddfr_session={AUDIT_TOKEN}").parse().unwrap();
    patch.headers_mut().insert(header::COOKIE, cookie.clone());
    // A cookie-session write needs an origin proof (CSRF): refused without one, nothing changed.
    let (status, body, _) = send(&h.app, patch).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("csrf_failed"))
    );
    let mut patch = json_request("PATCH", &format!("/api/persons/{id}"), &json!({"role": "user"}));
    patch.headers_mut().insert(header::COOKIE, cookie);
    patch.headers_mut().insert("sec-fetch-site", header::HeaderValue::from_static("same-origin"));
    assert_eq!(send(&h.app, patch).await.0, StatusCode::OK);
    let faces_uri = format!("/api/persons/{id}/faces");
    let one = photo("faces/barack_obama/barack_obama_01.jpg");
    let (status, face, _) =
        send(&h.app, with_bearer(multipart(&faces_uri, &[("image", &one)]))).await;
    assert_eq!(status, StatusCode::CREATED, "{face}");
    let face_id = face["id"].as_i64().unwrap();
    let two = photo("faces/barack_obama/barack_obama_02.jpg");
    let batch_uri = format!("{faces_uri}/batch");
    let batch = multipart(&batch_uri, &[("image", &two), ("image", b"GIF89a no image")]);
    let (status, reply, _) = send(&h.app, with_bearer(batch)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let batch_face = reply["results"][0]["face"]["id"].as_i64().unwrap();

    // The export: fields, every sample with its chip and embedding, the person's entries.
    let export_uri = format!("/api/persons/{id}/export?format=json");
    let response = h.app.clone().oneshot(with_bearer(get(&export_uri))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        response.headers()[header::CONTENT_DISPOSITION],
        format!("attachment; filename=\"ddfr-person-{id}.json\"").as_str()
    );
    let export: Value =
        serde_json::from_slice(&to_bytes(response.into_body(), MAX_BODY).await.unwrap()).unwrap();
    assert_eq!(export["format"], "ddfr-person-export");
    let (_, stored_person, _) = send(&h.app, with_bearer(get(&format!("/api/persons/{id}")))).await;
    assert_eq!(export["person"], stored_person);
    assert_eq!(export["person"]["role"], "user");
    let (_, listed, _) = send(&h.app, with_bearer(get(&faces_uri))).await;
    let faces = export["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 2);
    let store = ddfr_store::SqliteStore::open_in_dir(h._dir.path()).await.unwrap();
    let stored = ddfr_store::PersonStore::person_embeddings(&store, ddfr_core::PersonId(id));
    let stored = stored.await.unwrap();
    assert_eq!(stored.len(), 2);
    for (face, (listed, embedding)) in
        faces.iter().zip(listed.as_array().unwrap().iter().zip(&stored))
    {
        for key in ["id", "top", "right", "bottom", "left", "created_at"] {
            assert_eq!(face[key], listed[key], "{key}");
        }
        let crop_uri = format!("{faces_uri}/{}/crop", face["id"]);
        let (status, _, crop) = send(&h.app, with_bearer(get(&crop_uri))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(base64_decode(face["crop_jpeg_base64"].as_str().unwrap()), crop);
        assert_eq!(&crop[..3], &[0xFF, 0xD8, 0xFF]);
        let exported = &face["embeddings"][0];
        assert_eq!(exported["model"], embedding.model.as_str());
        let vector: Vec<f32> = serde_json::from_value(exported["vector"].clone()).unwrap();
        assert_eq!(vector, embedding.embedding.as_slice(), "the vector round-trips exactly");
        assert_eq!(exported["dim"], vector.len());
    }
    let actions: Vec<&str> =
        export["audit"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["person_create", "person_update", "face_enroll", "faces_batch", "person_export"]
    );

    let delete_face = request("DELETE", &format!("{faces_uri}/{face_id}"));
    assert_eq!(send(&h.app, with_bearer(delete_face)).await.0, StatusCode::NO_CONTENT);
    let delete = request("DELETE", &format!("/api/persons/{id}"));
    assert_eq!(send(&h.app, with_bearer(delete)).await.0, StatusCode::NO_CONTENT);

    // The log, newest first, with the required fields; the deleted person's entries stay.
    let (status, log, _) = send(&h.app, with_bearer(get("/api/audit?limit=100"))).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let items = log["items"].as_array().unwrap();
    assert_eq!(log["total"], items.len());
    let summary: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|e| {
            assert!(e["id"].as_i64().is_some() && e["at"].as_str().is_some(), "{e}");
            (
                e["action"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("person_delete", "token", "success"),
            ("face_delete", "token", "success"),
            ("person_export", "token", "success"),
            ("faces_batch", "token", "success"),
            ("face_enroll", "token", "success"),
            ("person_update", "cookie", "success"),
            ("person_create", "token", "success"),
            ("login", "token", "success"),
            ("login", "token", "failure"),
        ]
    );
    assert_eq!(items[1]["target_kind"], "face");
    assert_eq!(items[1]["target_id"], face_id);
    assert_eq!(items[1]["person_id"], id);
    assert_eq!(items[3]["detail"], format!("enrolled_faces=[{batch_face}] skipped=0 rejected=1"));
    assert_eq!(items[5]["detail"], "fields=role");
    let (_, page, _) = send(&h.app, with_bearer(get("/api/audit?limit=2&offset=7"))).await;
    assert_eq!(page["items"][0]["id"], items[7]["id"]);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    // No route alters the log.
    for (method, uri) in
        [("DELETE", "/api/audit"), ("PATCH", "/api/audit"), ("DELETE", "/api/audit/1")]
    {
        let status = send(&h.app, with_bearer(request(method, uri))).await.0;
        assert!(
            status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_FOUND,
            "{method} {uri}: {status}"
        );
    }

    // Nothing secret or biometric in the file: not the token, no JPEG, not the name.
    assert!(store.checkpoint_truncate().await.unwrap());
    let db = h._dir.path().join("ddfr.db");
    let mut bytes = std::fs::read(&db).unwrap();
    bytes.extend(std::fs::read(db.with_extension("db-wal")).unwrap_or_default());
    assert!(!contains(&bytes, AUDIT_TOKEN.as_bytes()), "the token is in the database");
    assert!(!contains(&bytes, &[0xFF, 0xD8, 0xFF]), "JPEG bytes are in the database");
    assert!(!contains(&bytes, name.as_bytes()), "the deleted person's name is in the database");
    let vector = stored[1].embedding.to_le_bytes();
    assert!(!contains(&bytes, &vector[..64]), "an embedding is in the database");
    ddfr_store::PersonStore::close(&store).await;
}

fn throttled_app(throttle: Arc<ddfr_server::AuthThrottle>) -> axum::Router {
    let mut config = ServerConfig::new(([127, 0, 0, 1], 0).into());
    config.api_token = Some(ApiToken::new(AUDIT_TOKEN));
    // Not ready: an authorised request reaches its handler and gets 503, so 401, 429 and
    // "authorised" are told apart without models.
    ddfr_server::router_with_throttle(AppState::new(config), throttle)
}

fn bearer(uri: &str, token: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn failed_auth_is_throttled_per_client_and_success_resets_it() {
    let app = throttled_app(Arc::new(ddfr_server::AuthThrottle::default()));
    // Requests without any credential are not attempts.
    for _ in 0..15 {
        assert_eq!(send(&app, get("/api/persons")).await.0, StatusCode::UNAUTHORIZED);
    }
    for attempt in 1..=10 {
        let status = send(&app, bearer("/api/persons", "guess")).await.0;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let response = app.clone().oneshot(bearer("/api/persons", "guess")).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value =
        serde_json::from_slice(&to_bytes(response.into_body(), MAX_BODY).await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
    // While throttled even the right token, the login and the /ws handshake are refused.
    assert_eq!(
        send(&app, bearer("/api/persons", AUDIT_TOKEN)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(send(&app, login(AUDIT_TOKEN)).await.0, StatusCode::TOO_MANY_REQUESTS);
    let ws = app.clone().oneshot(bearer("/ws", AUDIT_TOKEN)).await.unwrap();
    assert_eq!(ws.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(ws.headers().contains_key(header::RETRY_AFTER));

    // A success before the limit resets the count: 9 failures, success, 10 more failures.
    let app = throttled_app(Arc::new(ddfr_server::AuthThrottle::default()));
    for _ in 0..9 {
        assert_eq!(send(&app, login("guess")).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(send(&app, login(AUDIT_TOKEN)).await.0, StatusCode::NO_CONTENT);
    for attempt in 1..=10 {
        let status = send(&app, bearer("/api/persons", "guess")).await.0;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt} after the reset");
    }
    assert_eq!(send(&app, login("guess")).await.0, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_right_token_works_again_after_the_window() {
    let window = std::time::Duration::from_millis(300);
    let app = throttled_app(Arc::new(ddfr_server::AuthThrottle::new(10, window)));
    for _ in 0..11 {
        send(&app, bearer("/api/persons", "guess")).await;
    }
    assert_eq!(
        send(&app, bearer("/api/persons", AUDIT_TOKEN)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(window).await;
    // Authorised: the handler answers (503, not ready), not the throttle.
    assert_eq!(
        send(&app, bearer("/api/persons", AUDIT_TOKEN)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn without_a_token_nothing_is_throttled() {
    let app = router(AppState::new(ServerConfig::new(([127, 0, 0, 1], 0).into())));
    for _ in 0..20 {
        assert_eq!(
            send(&app, bearer("/api/persons", "anything")).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}

#[tokio::test]
async fn health_reports_the_ws_and_visitor_counters() {
    let Some(h) = harness(None).await else { return };
    let (status, health, _) = send(&h.app, get("/api/health")).await;
    assert_eq!(status, StatusCode::OK);
    for field in [
        "ws_connections",
        "dropped_frames",
        "rate_limited_frames",
        "refused_connections",
        "unresponsive_connections",
        "visitor_writes_dropped",
    ] {
        assert_eq!(health[field], 0, "{field} in {health}");
    }
    assert_eq!(health["unknown_visitors"], false);
}
