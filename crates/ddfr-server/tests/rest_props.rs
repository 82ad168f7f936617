//! Property tests over the REST schemas (reliability IV-6/IV-7): generated person bodies for
//! `POST` and `PATCH /api/persons` (valid, adversarial and random strings, dates, enum values,
//! `null`, wrong types, huge numbers, missing and unknown fields, malformed JSON) and generated
//! `limit`/`offset` query strings, sent through the real router in-process.
//!
//! Every answer must be a success whose person round-trips (the reply, a later `GET`, and the
//! model the test keeps all agree) or a 4xx with the documented error JSON; never a 5xx, never
//! a panic. Each generated value is classed by the documented rules as valid, invalid or
//! unknown (random text), and a body with only valid values must succeed, one with an invalid
//! value must be refused with `validation_error`.

// Helpers of a test crate: a failed unwrap is a failed test, and SKIPPED goes to stdout.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;
use common::load_pack;

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use ddfr_index::IndexConfig;
use ddfr_server::{AppState, Gallery, InferencePool, ServerConfig, Services, router};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

const MAX_BODY: usize = 1024 * 1024;
/// Generated bodies per property.
const CASES: u32 = 400;

/// The router on a fresh SQLite database, and the runtime to drive it; `None` (after printing
/// SKIPPED) when the models are not set up.
fn harness() -> Option<(tokio::runtime::Runtime, axum::Router, tempfile::TempDir)> {
    let Some(pack) = load_pack(1) else {
        println!("SKIPPED: models or ONNX Runtime not set up (run scripts/setup)");
        return None;
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("ddfr.db").display());
    let app = runtime.block_on(async {
        let store = ddfr_store::open_store(&ddfr_store::DatabaseUrl::new(url)).await.unwrap();
        let gallery = Gallery::load(
            store.as_ref(),
            pack.embedder_id(),
            pack.embedding_dim(),
            IndexConfig::default(),
        )
        .await
        .unwrap();
        let state = AppState::new(ServerConfig::new(([127, 0, 0, 1], 0).into()));
        state.set_ready(Services {
            min_similarity: pack.min_similarity,
            pool: InferencePool::new(pack, 1),
            store,
            gallery: Arc::new(gallery),
            visitors: None,
        });
        router(state)
    });
    Some((runtime, app, dir))
}

fn send(
    runtime: &tokio::runtime::Runtime,
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    runtime.block_on(async {
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), MAX_BODY).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    })
}

/// A documented error body: `{"error": {"code", "message"[, "details": [{"field", "message"}]]}}`
/// with the given code; `validation_error` must list at least one field.
fn assert_error(status: StatusCode, body: &Value, code: &str) -> Result<(), TestCaseError> {
    let error = &body["error"];
    prop_assert_eq!(error["code"].as_str(), Some(code), "{} {}", status, body);
    prop_assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", body);
    if code == "validation_error" {
        let details = error["details"].as_array();
        prop_assert!(details.is_some_and(|d| !d.is_empty()), "{}", body);
        for detail in details.into_iter().flatten() {
            prop_assert!(detail["field"].is_string() && detail["message"].is_string(), "{}", body);
        }
    }
    Ok(())
}

/// How a generated value stands against the documented rules. Ordered: a body is as good as
/// its worst field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Valid,
    /// Random text or a case the documentation leaves open: either answer is fine.
    Unknown,
    Invalid,
}

/// One field of a generated body: its JSON (`None` = absent) and its class.
#[derive(Debug, Clone)]
struct Field {
    json: Option<Value>,
    class: Class,
}

fn field(json: Value, class: Class) -> Field {
    Field { json: Some(json), class }
}

/// Values of the wrong JSON type, including numbers no integer type holds.
fn wrong_type() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(json!(1e308)),
        Just(json!(-0.0)),
        Just(serde_json::from_str::<Value>("123456789012345678901234567890").unwrap()),
        any::<bool>().prop_map(Value::from),
        Just(json!([])),
        Just(json!(["Ada"])),
        Just(json!({})),
        Just(json!({"name": "Ada"})),
    ]
}

const LETTERS: &str = "[A-Za-zÀ-ÖØ-öø-ÿĀ-žА-я李小龙'’.-]";

/// Names valid after trimming (1 to 100 non-control characters), some with whitespace around.
fn valid_name() -> impl Strategy<Value = String> {
    let plain = format!("{LETTERS}({LETTERS}| ){{0,98}}{LETTERS}?");
    prop_oneof![
        4 => (proptest::string::string_regex(&plain).unwrap(), "[ \t\n\u{a0}\u{3000}]{0,3}", "[ \t\r\n]{0,3}")
            .prop_map(|(name, before, after)| format!("{before}{name}{after}")),
        1 => prop::sample::select(vec![
            "Zoë".to_owned(),
            "O'Brien".to_owned(),
            "👩‍👩‍👧".to_owned(),
            "\u{202e}evil".to_owned(),
            "Robert'); DROP TABLE persons;--".to_owned(),
            "<script>alert(1)</script>".to_owned(),
            "%s%n{0}${x}".to_owned(),
            "é".repeat(100),
            "a".repeat(100),
            format!("  {}  ", "b".repeat(100)),
        ]),
    ]
}

/// Names the rules refuse: empty after trimming, over 100 characters, control characters.
fn invalid_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" \t\n ".to_owned()),
        (101usize..300).prop_map(|n| "é".repeat(n)),
        (valid_name(), prop::sample::select(vec!['\0', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}']))
            .prop_map(|(name, control)| format!("x{control}{}", name.trim())),
    ]
}

fn this_year() -> i32 {
    ddfr_server::state::today().unwrap().to_string()[..4].parse().unwrap()
}

/// Birthdays between 2 and 148 years ago: valid whatever today's exact date.
fn valid_birthday() -> impl Strategy<Value = String> {
    let year = this_year();
    ((year - 148)..=(year - 2), 1u32..=12, 1u32..=28)
        .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"))
}

fn invalid_birthday() -> impl Strategy<Value = String> {
    let year = this_year();
    prop_oneof![
        prop::sample::select(vec![
            "2001-02-30".to_owned(),
            "1999-13-01".to_owned(),
            "1999-00-10".to_owned(),
            "1999-01-00".to_owned(),
            "0000-01-01".to_owned(),
            "1961-8-4".to_owned(),
            "04-08-1961".to_owned(),
            "1961/08/04".to_owned(),
            "abcd-ef-gh".to_owned(),
            "1961-08-04T00:00:00Z".to_owned(),
            String::new(),
        ]),
        // In the future, or more than 150 years ago.
        ((year + 1)..=9999).prop_map(|y| format!("{y:04}-06-15")),
        (1..=(year - 152)).prop_map(|y| format!("{y:04}-06-15")),
    ]
}

static RELATIONSHIPS: [&str; 6] =
    ["famiglia", "partner", "amico", "collega", "conoscente", "altro"];
static ROLES: [&str; 2] = ["user", "guest"];

fn invalid_enum(valid: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(valid).prop_map(str::to_uppercase),
        prop::sample::select(valid).prop_map(|v| format!(" {v}")),
        Just(String::new()),
        Just("nemico".to_owned()),
        "[a-z]{1,12}".prop_filter("not a valid value", move |v| !valid.contains(&v.as_str())),
    ]
}

/// A string field of a `POST` (`patch == false`) or `PATCH` body.
fn string_field(
    valid: BoxedStrategy<String>,
    invalid: BoxedStrategy<String>,
    required: bool,
    patch: bool,
) -> impl Strategy<Value = Field> {
    let absent = if required && !patch { Class::Invalid } else { Class::Valid };
    // `null`: "must not be null" in a PATCH; "is required" for a required field; for an
    // optional field of a POST the documentation does not say.
    let null = if patch || required { Class::Invalid } else { Class::Unknown };
    prop_oneof![
        30 => valid.prop_map(|v| field(json!(v), Class::Valid)),
        2 => invalid.prop_map(|v| field(json!(v), Class::Invalid)),
        1 => any::<String>().prop_map(|v| field(json!(v), Class::Unknown)),
        1 => wrong_type().prop_map(|v| field(v, Class::Invalid)),
        1 => Just(Field { json: None, class: absent }),
        1 => Just(field(Value::Null, null)),
    ]
}

const FIELDS: [&str; 5] = ["name", "surname", "birthday", "relationship", "role"];

/// The five fields of a body, in [`FIELDS`] order, plus maybe an unknown field.
fn person_body(patch: bool) -> impl Strategy<Value = (Vec<Field>, Option<String>)> {
    let name = || string_field(valid_name().boxed(), invalid_name().boxed(), true, patch);
    let relationships = prop::sample::select(&RELATIONSHIPS[..]).prop_map(str::to_owned).boxed();
    let roles = prop::sample::select(&ROLES[..]).prop_map(str::to_owned).boxed();
    let fields = (
        name(),
        name(),
        string_field(valid_birthday().boxed(), invalid_birthday().boxed(), true, patch),
        string_field(relationships, invalid_enum(&RELATIONSHIPS).boxed(), false, patch),
        string_field(roles, invalid_enum(&ROLES).boxed(), false, patch),
    )
        .prop_map(|(a, b, c, d, e)| vec![a, b, c, d, e]);
    let extra = prop_oneof![
        8 => Just(None),
        1 => prop::sample::select(vec!["id", "age", "faces", "created_at", "__proto__", "Name"])
            .prop_map(|k| Some(k.to_owned())),
        1 => "[a-z_]{1,12}".prop_filter("unknown", |k| !FIELDS.contains(&k.as_str())).prop_map(Some),
    ];
    (fields, extra)
}

fn to_json(fields: &[Field], extra: &Option<String>) -> Value {
    let mut object = Map::new();
    for (name, field) in FIELDS.iter().zip(fields) {
        if let Some(json) = &field.json {
            object.insert((*name).to_owned(), json.clone());
        }
    }
    if let Some(key) = extra {
        object.insert(key.clone(), json!("x"));
    }
    Value::Object(object)
}

/// What a valid field becomes in the stored person: names trimmed, the rest as sent.
fn stored(name: &str, json: &Value) -> Value {
    match (name, json.as_str()) {
        ("name" | "surname" | "birthday", Some(text)) => json!(text.trim()),
        _ => json.clone(),
    }
}

/// Bodies that are not a JSON object of fields at all.
fn malformed_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"[]".to_vec()),
        Just(b"null".to_vec()),
        Just(b"\"Ada\"".to_vec()),
        Just(b"1e999".to_vec()),
        Just(Vec::new()),
        Just(b"{\"name\": \"Ada\", \"name\": \"Bob\", \"surname\": \"X\", \"birthday\": \"1990-01-01\"}".to_vec()),
        Just(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes()),
        Just(b"{\"name\": \"\xff\xfe\", \"surname\": \"X\", \"birthday\": \"1990-01-01\"}".to_vec()),
        Just(b"{\"name\": \"\\ud800\", \"surname\": \"X\", \"birthday\": \"1990-01-01\"}".to_vec()),
        prop::collection::vec(any::<u8>(), 0..200),
        "\\{\"name\": \"[a-z]{0,5}".prop_map(String::into_bytes),
    ]
}

/// Person bodies (for a PATCH when `patch`) with their class, and malformed bytes: the bytes,
/// whether they must be accepted or refused, and the fields they were built from.
fn bodies(patch: bool) -> impl Strategy<Value = (Vec<u8>, Class, Option<Vec<Field>>)> {
    prop_oneof![
        5 => person_body(patch).prop_map(|(fields, extra)| {
            let class = fields.iter().map(|f| f.class).max().unwrap_or(Class::Valid);
            let class = if extra.is_some() { Class::Invalid } else { class };
            (to_json(&fields, &extra).to_string().into_bytes(), class, Some(fields))
        }),
        1 => malformed_body().prop_map(|bytes| (bytes, Class::Invalid, None)),
    ]
}

fn runner() -> TestRunner {
    TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() })
}

/// `POST /api/persons`: valid bodies give 201 and a person that reads back identically;
/// invalid ones 422 `validation_error`; nothing gives a 5xx.
#[test]
fn created_persons_round_trip_and_invalid_bodies_get_422() {
    let Some((runtime, app, _dir)) = harness() else { return };
    let (created, refused) = (Cell::new(0u32), Cell::new(0u32));
    let strategy = bodies(false);
    runner()
        .run(&strategy, |(body, class, fields)| {
            let (status, reply) = send(&runtime, &app, "POST", "/api/persons", body);
            prop_assert!(!status.is_server_error(), "{} {}", status, reply);
            match status {
                StatusCode::CREATED => {
                    prop_assert!(class != Class::Invalid, "invalid body accepted: {}", reply);
                    created.set(created.get() + 1);
                    let id = reply["id"].as_i64().unwrap();
                    prop_assert_eq!(&reply["faces"], &json!(0));
                    for (name, field) in FIELDS.iter().zip(fields.iter().flatten()) {
                        if let Some(json) = field.json.as_ref().filter(|j| j.is_string()) {
                            prop_assert_eq!(&reply[*name], &stored(name, json), "{}", name);
                        }
                    }
                    if fields.as_ref().is_some_and(|f| f[3].json.is_none()) {
                        prop_assert_eq!(&reply["relationship"], &json!("altro"));
                    }
                    if fields.as_ref().is_some_and(|f| f[4].json.is_none()) {
                        prop_assert_eq!(&reply["role"], &json!("guest"));
                    }
                    let (status, read) =
                        send(&runtime, &app, "GET", &format!("/api/persons/{id}"), Vec::new());
                    prop_assert_eq!(status, StatusCode::OK);
                    prop_assert_eq!(read, reply);
                }
                StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
                    prop_assert!(class != Class::Valid, "valid body refused: {}", reply);
                    refused.set(refused.get() + 1);
                    assert_error(status, &reply, "validation_error")?;
                }
                other => prop_assert!(false, "unexpected {} {}", other, reply),
            }
            Ok(())
        })
        .unwrap();
    let (created, refused) = (created.get(), refused.get());
    println!("POST /api/persons: {created} created, {refused} refused, no 5xx");
    assert!(created > CASES / 10 && refused > CASES / 10, "{created} created, {refused} refused");
}

/// `PATCH /api/persons/{id}`: valid changes apply exactly those fields (checked against the
/// person the test expects); refused ones change nothing.
#[test]
fn patches_apply_exactly_their_fields_or_change_nothing() {
    let Some((runtime, app, _dir)) = harness() else { return };
    let start = json!({"name": "Ada", "surname": "Lovelace", "birthday": "1980-12-10",
        "relationship": "amico", "role": "user"});
    let (status, created) =
        send(&runtime, &app, "POST", "/api/persons", start.to_string().into_bytes());
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let uri = format!("/api/persons/{}", created["id"]);
    let person = RefCell::new(created);
    let (applied, refused) = (Cell::new(0u32), Cell::new(0u32));
    let strategy = bodies(true);
    runner()
        .run(&strategy, |(body, class, fields)| {
            let (status, reply) = send(&runtime, &app, "PATCH", &uri, body);
            prop_assert!(!status.is_server_error(), "{} {}", status, reply);
            match status {
                StatusCode::OK => {
                    prop_assert!(class != Class::Invalid, "invalid patch accepted: {}", reply);
                    applied.set(applied.get() + 1);
                    for (name, field) in FIELDS.iter().zip(fields.iter().flatten()) {
                        let expected = match field.json.as_ref().filter(|j| j.is_string()) {
                            Some(json) => stored(name, json),
                            None => person.borrow()[*name].clone(),
                        };
                        prop_assert_eq!(&reply[*name], &expected, "{}", name);
                    }
                    prop_assert_eq!(&reply["id"], &person.borrow()["id"]);
                    person.replace(reply);
                }
                StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
                    prop_assert!(class != Class::Valid, "valid patch refused: {}", reply);
                    refused.set(refused.get() + 1);
                    assert_error(status, &reply, "validation_error")?;
                }
                other => prop_assert!(false, "unexpected {} {}", other, reply),
            }
            let (status, read) = send(&runtime, &app, "GET", &uri, Vec::new());
            prop_assert_eq!(status, StatusCode::OK);
            prop_assert_eq!(
                &read,
                &*person.borrow(),
                "the stored person differs from the expected one"
            );
            Ok(())
        })
        .unwrap();
    let (applied, refused) = (applied.get(), refused.get());
    println!("PATCH /api/persons/{{id}}: {applied} applied, {refused} refused, no 5xx");
    assert!(applied > CASES / 10 && refused > CASES / 10, "{applied} applied, {refused} refused");
}

/// A query parameter value and its class: decimal u32 values are valid.
fn query_value() -> impl Strategy<Value = (String, Class)> {
    prop_oneof![
        4 => (0u32..=1000).prop_map(|n| (n.to_string(), Class::Valid)),
        1 => any::<u32>().prop_map(|n| (n.to_string(), Class::Valid)),
        1 => Just(("4294967295".to_owned(), Class::Valid)),
        1 => (1u64..=u64::MAX).prop_map(|n| (format!("-{n}"), Class::Invalid)),
        1 => (u64::from(u32::MAX) + 1..=u64::MAX).prop_map(|n| (n.to_string(), Class::Invalid)),
        1 => prop::sample::select(vec!["1.5", "1e3", "abc", "0x10", "1_000", "NaN", "١٢"])
            .prop_map(|v| (v.to_owned(), Class::Invalid)),
        1 => prop::sample::select(vec!["", "+5", " 5", "007"]).prop_map(|v| (v.to_owned(), Class::Unknown)),
        1 => any::<String>().prop_map(|v| (v, Class::Unknown)),
    ]
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /api/persons?limit=&offset=`: valid pages have the documented size and total; anything
/// else is 422 `validation_error`.
#[test]
fn person_pages_have_the_documented_size_or_get_422() {
    let Some((runtime, app, _dir)) = harness() else { return };
    const PERSONS: u32 = 7;
    for i in 0..PERSONS {
        let body = json!({"name": format!("P{i}"), "surname": "Page", "birthday": "1990-01-01"});
        let (status, reply) =
            send(&runtime, &app, "POST", "/api/persons", body.to_string().into_bytes());
        assert_eq!(status, StatusCode::CREATED, "{reply}");
    }
    let (pages, refused) = (Cell::new(0u32), Cell::new(0u32));
    let param = || prop_oneof![1 => Just(None), 3 => query_value().prop_map(Some)];
    let strategy = (param(), param(), prop::option::weighted(0.1, "[a-z]{1,8}"), any::<bool>());
    runner()
        .run(&strategy, |(limit, offset, extra, swap)| {
            let mut parts = Vec::new();
            let mut class = Class::Valid;
            for (key, value) in [("limit", &limit), ("offset", &offset)] {
                if let Some((value, value_class)) = value {
                    parts.push(format!("{key}={}", encode(value)));
                    class = class.max(*value_class);
                }
            }
            if let Some(key) = &extra {
                parts.push(format!("{key}=1"));
                // A repeated key or an unknown one is refused.
                class = class.max(if ["limit", "offset"].contains(&key.as_str()) {
                    Class::Unknown
                } else {
                    Class::Invalid
                });
            }
            if swap {
                parts.reverse();
            }
            let uri = format!("/api/persons?{}", parts.join("&"));
            let (status, reply) = send(&runtime, &app, "GET", &uri, Vec::new());
            prop_assert!(!status.is_server_error(), "{} {} {}", uri, status, reply);
            match status {
                StatusCode::OK => {
                    prop_assert!(class != Class::Invalid, "{} accepted: {}", uri, reply);
                    pages.set(pages.get() + 1);
                    prop_assert_eq!(&reply["total"], &json!(PERSONS));
                    let n_items = reply["items"].as_array().map(Vec::len).unwrap_or(usize::MAX);
                    if class == Class::Valid {
                        let parse = |v: &Option<(String, Class)>, default: u64| {
                            v.as_ref().map_or(default, |(text, _)| text.parse::<u64>().unwrap())
                        };
                        let (limit, offset) = (parse(&limit, 50).clamp(1, 500), parse(&offset, 0));
                        let expected = limit.min(u64::from(PERSONS).saturating_sub(offset));
                        prop_assert_eq!(n_items as u64, expected, "{}", uri);
                    } else {
                        prop_assert!(n_items <= PERSONS as usize, "{}", uri);
                    }
                }
                StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
                    prop_assert!(class != Class::Valid, "{} refused: {}", uri, reply);
                    refused.set(refused.get() + 1);
                    assert_error(status, &reply, "validation_error")?;
                }
                other => prop_assert!(false, "{} unexpected {} {}", uri, other, reply),
            }
            Ok(())
        })
        .unwrap();
    let (pages, refused) = (pages.get(), refused.get());
    println!("GET /api/persons: {pages} pages, {refused} refused, no 5xx");
    assert!(pages > CASES / 10 && refused > CASES / 20, "{pages} pages, {refused} refused");
}
