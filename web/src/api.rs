//! The REST client: same-origin `fetch` with the session cookie, typed with `ddfr-protocol`.

use ddfr_protocol::{
    BatchEnrollReply, ConsentView, CreatedKey, ErrorBody, EventsStatus, FaceView, FieldError,
    Health, KeyList, NewConsent, NewKey, NewPerson, PersonList, PersonPatch, PersonView,
    PrivacyPolicy, UnknownList,
};
use js_sys::{Promise, Uint8Array};
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, FormData, Headers, RequestCredentials, RequestInit, Response};

use crate::dom::window;

/// Why a request failed, in terms the pages can show.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The server could not be reached.
    Network(String),
    /// The server wants a login (401).
    Unauthorized,
    /// The server answered with an error body.
    Http {
        /// HTTP status.
        status: u16,
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
        /// Per-field messages of a `validation_error`.
        fields: Vec<FieldError>,
    },
    /// The answer was not what the API reference promises.
    Decode(String),
}

impl ApiError {
    /// One line for a status bar.
    pub fn summary(&self) -> String {
        match self {
            ApiError::Network(text) => format!("server not reachable ({text})"),
            ApiError::Unauthorized => "login required".to_owned(),
            ApiError::Http { status, code, message, .. } => format!("{status} {code}: {message}"),
            ApiError::Decode(text) => format!("unexpected answer: {text}"),
        }
    }

    /// The message for one field of a validation error.
    pub fn field_message(&self, field: &str) -> Option<String> {
        match self {
            ApiError::Http { fields, .. } => {
                fields.iter().find(|f| f.field == field).map(|f| f.message.clone())
            }
            _ => None,
        }
    }
}

fn js_text(value: &JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| "unknown error".to_owned())
}

/// Sends one request to the same origin and returns the response, mapping 4xx/5xx to
/// [`ApiError`].
async fn send(method: &str, path: &str, body: Option<Body>) -> Result<Response, ApiError> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_credentials(RequestCredentials::SameOrigin);
    let headers = Headers::new().map_err(|e| ApiError::Network(js_text(&e)))?;
    match body {
        Some(Body::Json(text)) => {
            let _ = headers.set("Content-Type", "application/json");
            init.set_body(&JsValue::from_str(&text));
        }
        Some(Body::Form(form)) => init.set_body(&form),
        None => {}
    }
    init.set_headers(&headers);
    let promise: Promise = window().fetch_with_str_and_init(path, &init);
    let response: Response = JsFuture::from(promise)
        .await
        .map_err(|e| ApiError::Network(js_text(&e)))?
        .dyn_into()
        .map_err(|_| ApiError::Decode("fetch did not return a Response".to_owned()))?;
    let status = response.status();
    if status == 401 {
        return Err(ApiError::Unauthorized);
    }
    if status >= 400 {
        let text = text_of(&response).await.unwrap_or_default();
        return Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => ApiError::Http {
                status,
                code: body.error.code,
                message: body.error.message,
                fields: body.error.details.unwrap_or_default(),
            },
            Err(_) => ApiError::Http {
                status,
                code: "http_error".to_owned(),
                message: text.chars().take(200).collect(),
                fields: Vec::new(),
            },
        });
    }
    Ok(response)
}

/// A request body.
enum Body {
    Json(String),
    Form(FormData),
}

async fn text_of(response: &Response) -> Result<String, ApiError> {
    let promise = response.text().map_err(|e| ApiError::Decode(js_text(&e)))?;
    let value = JsFuture::from(promise).await.map_err(|e| ApiError::Network(js_text(&e)))?;
    Ok(value.as_string().unwrap_or_default())
}

async fn json_of<T: DeserializeOwned>(response: &Response) -> Result<T, ApiError> {
    let text = text_of(response).await?;
    serde_json::from_str(&text).map_err(|e| ApiError::Decode(e.to_string()))
}

fn json_body(value: &impl Serialize) -> Result<Option<Body>, ApiError> {
    serde_json::to_string(value)
        .map(|t| Some(Body::Json(t)))
        .map_err(|e| ApiError::Decode(e.to_string()))
}

/// `GET /api/health`: the server's state, including whether the unknown-visitor feature is on.
pub async fn health() -> Result<Health, ApiError> {
    json_of(&send("GET", "/api/health", None).await?).await
}

/// `POST /api/login`: the server answers with an HttpOnly session cookie. The token goes in
/// the body only, never in a URL.
pub async fn login(token: &str) -> Result<(), ApiError> {
    #[derive(Serialize)]
    struct Login<'a> {
        token: &'a str,
    }
    send("POST", "/api/login", json_body(&Login { token })?).await.map(|_| ())
}

/// `GET /api/session`: what the browser's credential (the session cookie) allows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Session {
    /// Whether the server asks for a token at all.
    pub auth_required: bool,
    /// Whether this browser presented a valid credential.
    pub authenticated: bool,
    /// `admin`, `operator` or `recognizer`; `None` when not authenticated.
    pub role: Option<String>,
    /// `cookie`, `bearer` or `none`.
    pub via: String,
}

/// `GET /api/session` (open: needs no credential).
pub async fn session() -> Result<Session, ApiError> {
    json_of(&send("GET", "/api/session", None).await?).await
}

/// `POST /api/logout`.
pub async fn logout() -> Result<(), ApiError> {
    send("POST", "/api/logout", None).await.map(|_| ())
}

/// `GET /api/persons?limit=&offset=`.
pub async fn list_persons(limit: u32, offset: u32) -> Result<PersonList, ApiError> {
    let response =
        send("GET", &format!("/api/persons?limit={limit}&offset={offset}"), None).await?;
    json_of(&response).await
}

/// `GET /api/persons/{id}`.
pub async fn get_person(id: i64) -> Result<PersonView, ApiError> {
    json_of(&send("GET", &format!("/api/persons/{id}"), None).await?).await
}

/// `POST /api/persons`.
pub async fn create_person(person: &NewPerson) -> Result<PersonView, ApiError> {
    json_of(&send("POST", "/api/persons", json_body(person)?).await?).await
}

/// `PATCH /api/persons/{id}`.
pub async fn update_person(id: i64, patch: &PersonPatch) -> Result<PersonView, ApiError> {
    json_of(&send("PATCH", &format!("/api/persons/{id}"), json_body(patch)?).await?).await
}

/// `DELETE /api/persons/{id}`.
pub async fn delete_person(id: i64) -> Result<(), ApiError> {
    send("DELETE", &format!("/api/persons/{id}"), None).await.map(|_| ())
}

/// `GET /api/persons/{id}/faces`.
pub async fn list_faces(id: i64) -> Result<Vec<FaceView>, ApiError> {
    json_of(&send("GET", &format!("/api/persons/{id}/faces"), None).await?).await
}

/// `POST /api/persons/{id}/faces` with the photo as multipart field `image`.
pub async fn add_face(id: i64, photo: &Blob, filename: &str) -> Result<FaceView, ApiError> {
    let form = FormData::new().map_err(|e| ApiError::Network(js_text(&e)))?;
    form.append_with_blob_and_filename("image", photo, filename)
        .map_err(|e| ApiError::Network(js_text(&e)))?;
    json_of(&send("POST", &format!("/api/persons/{id}/faces"), Some(Body::Form(form))).await?).await
}

/// `POST /api/persons/{id}/faces/batch`: several photos in one request (repeated multipart
/// field `image`), one result per photo in order.
pub async fn add_faces(id: i64, photos: &[web_sys::File]) -> Result<BatchEnrollReply, ApiError> {
    let form = FormData::new().map_err(|e| ApiError::Network(js_text(&e)))?;
    for photo in photos {
        form.append_with_blob_and_filename("image", photo, &photo.name())
            .map_err(|e| ApiError::Network(js_text(&e)))?;
    }
    let path = format!("/api/persons/{id}/faces/batch");
    json_of(&send("POST", &path, Some(Body::Form(form))).await?).await
}

/// `DELETE /api/persons/{id}/faces/{face_id}`.
pub async fn delete_face(id: i64, face_id: i64) -> Result<(), ApiError> {
    send("DELETE", &format!("/api/persons/{id}/faces/{face_id}"), None).await.map(|_| ())
}

/// The URL of an enrolled crop's JPEG thumbnail.
pub fn face_crop_url(id: i64, face_id: i64) -> String {
    format!("/api/persons/{id}/faces/{face_id}/crop")
}

/// `GET /api/unknowns`: the recurring unknown visitors, most recently seen first.
pub async fn list_unknowns() -> Result<UnknownList, ApiError> {
    json_of(&send("GET", "/api/unknowns", None).await?).await
}

/// `DELETE /api/unknowns/{id}`: forgets a visitor and its face chips.
pub async fn delete_unknown(id: i64) -> Result<(), ApiError> {
    send("DELETE", &format!("/api/unknowns/{id}"), None).await.map(|_| ())
}

/// `POST /api/unknowns/{id}/promote`: makes the visitor a person (role guest) whose face
/// samples are the visitor's stored chips.
pub async fn promote_unknown(id: i64, person: &NewPerson) -> Result<PersonView, ApiError> {
    let path = format!("/api/unknowns/{id}/promote");
    json_of(&send("POST", &path, json_body(person)?).await?).await
}

/// The bytes at a same-origin URL (model files).
pub async fn fetch_bytes(path: &str) -> Result<Vec<u8>, ApiError> {
    let response = send("GET", path, None).await?;
    let promise = response.array_buffer().map_err(|e| ApiError::Decode(js_text(&e)))?;
    let buffer = JsFuture::from(promise).await.map_err(|e| ApiError::Network(js_text(&e)))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// The text at a same-origin URL (the model manifest).
pub async fn fetch_text(path: &str) -> Result<String, ApiError> {
    text_of(&send("GET", path, None).await?).await
}

/// `GET /api/keys`: every API key, revoked and expired ones included (admin).
pub async fn list_keys() -> Result<KeyList, ApiError> {
    json_of(&send("GET", "/api/keys", None).await?).await
}

/// `POST /api/keys`: the reply carries the secret, this once.
pub async fn create_key(key: &NewKey) -> Result<CreatedKey, ApiError> {
    json_of(&send("POST", "/api/keys", json_body(key)?).await?).await
}

/// `DELETE /api/keys/{id}`: revokes a key (it stays listed as `revoked`).
pub async fn revoke_key(id: i64) -> Result<(), ApiError> {
    send("DELETE", &format!("/api/keys/{id}"), None).await.map(|_| ())
}

/// `GET /api/events/status`: MQTT and webhook state, cameras, latest events (admin).
pub async fn events_status() -> Result<EventsStatus, ApiError> {
    json_of(&send("GET", "/api/events/status", None).await?).await
}

/// `GET /api/privacy/policy` (open).
pub async fn privacy_policy() -> Result<PrivacyPolicy, ApiError> {
    json_of(&send("GET", "/api/privacy/policy", None).await?).await
}

/// `GET /api/persons/{id}/consent`: the person's consent records, oldest first.
pub async fn list_consents(id: i64) -> Result<Vec<ConsentView>, ApiError> {
    json_of(&send("GET", &format!("/api/persons/{id}/consent"), None).await?).await
}

/// `POST /api/persons/{id}/consent`.
pub async fn record_consent(id: i64, consent: &NewConsent) -> Result<ConsentView, ApiError> {
    json_of(&send("POST", &format!("/api/persons/{id}/consent"), json_body(consent)?).await?).await
}

/// `POST /api/persons/{id}/consent/withdraw`: the person is deleted for good.
pub async fn withdraw_consent(id: i64) -> Result<(), ApiError> {
    send("POST", &format!("/api/persons/{id}/consent/withdraw"), None).await.map(|_| ())
}

/// The URL of a person's export archive (a ZIP; admin only).
pub fn export_url(id: i64) -> String {
    format!("/api/persons/{id}/export")
}
