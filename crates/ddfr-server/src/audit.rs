//! The audit log over HTTP: who acted (the kind of credential, never the credential), the
//! recording helper the handlers call after their store write succeeded, `GET /api/audit`
//! (newest first; there is no route that changes or removes an entry) and the per-person
//! export `GET /api/persons/{id}/export` (a ZIP archive, see [`crate::export`], or JSON).
//!
//! Entries name persons, faces and visitors by id only. They never hold a name, an image, an
//! embedding or a token, so a deleted person's trail stays without keeping their data.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::{Extension, http::StatusCode};
use ddfr_core::PersonId;
use ddfr_protocol::{
    ArchivedEmbedding, AuditList, AuditView, EXPORT_FORMAT, EXPORT_VERSION, ExportedEmbedding,
    ExportedFace, FieldError, PageQuery, PersonExport,
};
use ddfr_store::{AuditEntry, AuditResult, NewAuditEntry, PersonStore};

use crate::error::ApiError;
use crate::export::{ExportParts, archive_name, build_archive};
use crate::rest::{face_view, person_id, person_view};
use crate::state::{AppState, now_timestamp, today};

/// Who made an authorised request: the kind of credential it carried. Never the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// `Authorization: Bearer <token>`.
    Token,
    /// The `ddfr_session` cookie of `POST /api/login`.
    Cookie,
    /// No token is configured: the server only listens on loopback.
    Loopback,
    /// The server itself (the retention purge).
    System,
}

impl Actor {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Token => "token",
            Actor::Cookie => "cookie",
            Actor::Loopback => "loopback",
            Actor::System => "system",
        }
    }
}

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// `POST /api/persons`.
    PersonCreate,
    /// `PATCH /api/persons/{id}`.
    PersonUpdate,
    /// `DELETE /api/persons/{id}`.
    PersonDelete,
    /// `POST /api/persons/{id}/faces` stored a sample.
    FaceEnroll,
    /// `DELETE /api/persons/{id}/faces/{face_id}`.
    FaceDelete,
    /// `POST /api/persons/{id}/faces/batch` (one summarising entry).
    FacesBatch,
    /// `POST /api/unknowns/{id}/promote`.
    UnknownPromote,
    /// `DELETE /api/unknowns/{id}`.
    UnknownDelete,
    /// `GET /api/persons/{id}/export`.
    PersonExport,
    /// `POST /api/login`, successful or not.
    Login,
    /// `POST /api/persons/{id}/consent`.
    ConsentRecord,
    /// `POST /api/persons/{id}/consent/withdraw` (followed by a `person_delete` entry).
    ConsentWithdraw,
    /// The retention job deleted a person past their `retain_until`.
    Purge,
    /// `POST /api/keys`.
    KeyCreate,
    /// `DELETE /api/keys/{id}`.
    KeyRevoke,
}

impl AuditAction {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::PersonCreate => "person_create",
            AuditAction::PersonUpdate => "person_update",
            AuditAction::PersonDelete => "person_delete",
            AuditAction::FaceEnroll => "face_enroll",
            AuditAction::FaceDelete => "face_delete",
            AuditAction::FacesBatch => "faces_batch",
            AuditAction::UnknownPromote => "unknown_promote",
            AuditAction::UnknownDelete => "unknown_delete",
            AuditAction::PersonExport => "person_export",
            AuditAction::Login => "login",
            AuditAction::ConsentRecord => "consent_record",
            AuditAction::ConsentWithdraw => "consent_withdraw",
            AuditAction::Purge => "purge",
            AuditAction::KeyCreate => "key_create",
            AuditAction::KeyRevoke => "key_revoke",
        }
    }
}

/// The record an entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// `person`, `face` or `unknown`.
    pub kind: &'static str,
    /// Its id.
    pub id: i64,
    /// The person concerned, so the entry is part of their export.
    pub person: Option<PersonId>,
}

impl Target {
    /// A person.
    pub fn person(id: PersonId) -> Self {
        Self { kind: "person", id: id.0, person: Some(id) }
    }

    /// A face sample of `person`.
    pub fn face(person: PersonId, face: ddfr_core::FaceId) -> Self {
        Self { kind: "face", id: face.0, person: Some(person) }
    }

    /// An unknown visitor; `person` when it became one.
    pub fn unknown(id: ddfr_core::VisitorId, person: Option<PersonId>) -> Self {
        Self { kind: "unknown", id: id.0, person }
    }
}

/// Appends one entry. Called after the store write it records has committed, so a failure
/// to append cannot undo it: the failure is logged as an error and the request still
/// succeeds.
pub async fn record(
    store: &dyn PersonStore,
    actor: Actor,
    action: AuditAction,
    target: Option<Target>,
    result: AuditResult,
    detail: Option<String>,
) {
    let entry = NewAuditEntry {
        actor: actor.as_str().to_owned(),
        action: action.as_str().to_owned(),
        target_kind: target.map(|t| t.kind.to_owned()),
        target_id: target.map(|t| t.id),
        person: target.and_then(|t| t.person),
        result,
        detail,
    };
    if let Err(error) = store.append_audit(&entry).await {
        tracing::error!(
            action = action.as_str(),
            error = %crate::error::error_chain(&error),
            "audit entry could not be written"
        );
    }
}

/// One audit entry as the API shows it.
fn audit_view(entry: &AuditEntry) -> AuditView {
    AuditView {
        id: entry.id,
        at: entry.at,
        actor: entry.actor.clone(),
        action: entry.action.clone(),
        target_kind: entry.target_kind.clone(),
        target_id: entry.target_id,
        person_id: entry.person.map(|p| p.0),
        result: entry.result.as_str().to_owned(),
        detail: entry.detail.clone(),
    }
}

/// `GET /api/audit?limit=&offset=`: the audit log, newest first. Read-only: no route changes
/// or removes an entry.
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(PageQuery),
    responses((status = 200, body = AuditList), (status = 422, body = ddfr_protocol::ErrorBody)))]
pub async fn list_audit(
    State(state): State<AppState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<AuditList>, ApiError> {
    let services = state.services()?;
    let Query(query) = query.map_err(|rejection| {
        ApiError::validation(vec![FieldError::new("query", rejection.body_text())])
    })?;
    let (entries, total) = services.store.audit_page(query.limit(), query.offset()).await?;
    Ok(Json(AuditList { items: entries.iter().map(audit_view).collect(), total }))
}

/// Query of `GET /api/persons/{id}/export`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `zip` (the default): one archive with a manifest of SHA-256 hashes; `json`: the one
    /// JSON document of earlier versions (chips as base64).
    pub format: Option<String>,
}

/// `GET /api/persons/{id}/export`: everything stored about one person, as one ZIP archive
/// (`ddfr-person-{id}.zip`, see [`crate::export`]) or, with `?format=json`, one JSON document
/// (`ddfr-person-{id}.json`). Both hold the person's fields, every face sample with its stored
/// chip and embeddings, the consent records and the person's audit entries. The export is
/// itself audited, and its entry is part of what it returns.
#[utoipa::path(get, path = "/api/persons/{id}/export", tag = "persons", params(("id" = i64, Path), ExportQuery),
    responses((status = 200, content_type = "application/zip", description = "attachment ddfr-person-{id}.zip: person.json, faces.json, faces/<face id>.jpg, embeddings.json, consent.json, audit.json, manifest.json (size and SHA-256 of every other file)"),
        (status = 404, body = ddfr_protocol::ErrorBody), (status = 422, body = ddfr_protocol::ErrorBody)))]
pub async fn export_person(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    let id = person_id(&id)?;
    let Query(query) = query.map_err(|rejection| {
        ApiError::validation(vec![FieldError::new("query", rejection.body_text())])
    })?;
    let json = match query.format.as_deref() {
        None | Some("zip") => false,
        Some("json") => true,
        Some(_) => {
            return Err(ApiError::validation(vec![FieldError::new(
                "format",
                "must be zip or json",
            )]));
        }
    };
    let store = services.store.as_ref();
    let person = store.person(id).await?;
    let samples = store.faces(id).await?;
    let embeddings = store.person_embeddings(id).await?;
    let consents = crate::privacy::consent_views(store, id).await?;
    let mut view = person_view(&person, today().map_err(ApiError::internal)?);
    view.retain_until = crate::privacy::retain_until(&state, store, id).await?;
    let mut crops = Vec::with_capacity(samples.len());
    for sample in &samples {
        crops.push((face_view(sample), store.face_crop(id, sample.id).await?));
    }
    let format = if json { "json" } else { "zip" };
    record(
        store,
        actor,
        AuditAction::PersonExport,
        Some(Target::person(id)),
        AuditResult::Success,
        Some(format!("faces={} format={format}", crops.len())),
    )
    .await;
    let audit: Vec<AuditView> = store.audit_of_person(id).await?.iter().map(audit_view).collect();
    let exported_at = now_timestamp();
    let (content_type, name, body) = if json {
        let faces = crops
            .iter()
            .map(|(face, crop)| ExportedFace {
                face: face.clone(),
                crop_jpeg_base64: base64(crop),
                embeddings: embeddings
                    .iter()
                    .filter(|e| e.face.0 == face.id)
                    .map(|e| ExportedEmbedding {
                        model: e.model.as_str().to_owned(),
                        dim: e.embedding.dim(),
                        vector: e.embedding.as_slice().to_vec(),
                    })
                    .collect(),
            })
            .collect();
        let export = PersonExport {
            format: EXPORT_FORMAT.to_owned(),
            version: EXPORT_VERSION,
            exported_at,
            person: view,
            faces,
            audit,
            consents,
        };
        let body = serde_json::to_vec(&export).map_err(ApiError::internal)?;
        ("application/json", format!("ddfr-person-{}.json", id.0), body)
    } else {
        let parts = ExportParts {
            exported_at,
            person: view,
            faces: crops,
            embeddings: embeddings
                .iter()
                .map(|e| ArchivedEmbedding {
                    face_id: e.face.0,
                    model: e.model.as_str().to_owned(),
                    dim: e.embedding.dim(),
                    vector: e.embedding.as_slice().to_vec(),
                })
                .collect(),
            consents,
            audit,
        };
        let body = build_archive(&parts).map_err(ApiError::internal)?;
        ("application/zip", archive_name(id.0), body)
    };
    let disposition = format!("attachment; filename=\"{name}\"");
    Ok((
        StatusCode::OK,
        [(CONTENT_TYPE, content_type.to_owned()), (CONTENT_DISPOSITION, disposition)],
        body,
    )
        .into_response())
}

/// Standard base64 (RFC 4648, padded).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 0x3F) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xFF, 0xD8, 0xFF, 0xE0]), "/9j/4A==");
    }
}
