//! `/api/unknowns`: the recurring unknown visitors (opt-in), their face chips, deleting one,
//! and promoting one into a person (role guest) with its chips as face samples.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ddfr_core::{PixelBox, VisitorId};
use ddfr_protocol::{FieldError, NewPerson, PersonView, Timestamp, UnknownList, UnknownView};
use ddfr_store::{AuditResult, NewFace};

use crate::audit::{Actor, AuditAction, Target, record};
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::rest::person_view;
use crate::state::{AppState, Services, today};
use crate::visitors::{VisitorRegistry, retention_cutoff};

fn visitor_id(raw: &str) -> Result<VisitorId, ApiError> {
    raw.parse().map(VisitorId).map_err(|_| not_found(raw))
}

fn not_found(raw: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_not_found",
        format!("no unknown visitor with id {raw}"),
    )
}

/// The registry, or 404: with the feature off nothing is kept, so no visitor exists.
fn registry(services: &Services, raw: &str) -> Result<Arc<VisitorRegistry>, ApiError> {
    services.visitors.clone().ok_or_else(|| not_found(raw))
}

/// `GET /api/unknowns`: the visitors, most recently seen first.
#[utoipa::path(get, path = "/api/unknowns", tag = "unknowns",
    responses((status = 200, body = UnknownList)))]
pub async fn list_unknowns(State(state): State<AppState>) -> Result<Json<UnknownList>, ApiError> {
    let services = state.services()?;
    let Some(registry) = services.visitors.clone() else {
        let days = crate::visitors::VisitorsConfig::DEFAULT_RETENTION_DAYS;
        return Ok(Json(UnknownList {
            enabled: false,
            retention_days: u64::from(days),
            items: Vec::new(),
        }));
    };
    let retention = registry.config().retention;
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let cutoff = retention_cutoff(crate::state::now_timestamp(), retention);
    let items = services
        .store
        .visitors()
        .await?
        .into_iter()
        .filter(|v| v.last_seen >= cutoff)
        .map(|v| UnknownView {
            id: v.id.0,
            sightings: v.sightings,
            first_seen: v.first_seen,
            last_seen: v.last_seen,
            samples: v.n_samples,
            crop_url: (v.n_samples > 0).then(|| format!("/api/unknowns/{}/crop", v.id)),
            expires_at: Timestamp::from_unix_millis(
                v.last_seen.unix_millis().saturating_add(retention_ms),
            ),
        })
        .collect();
    Ok(Json(UnknownList {
        enabled: true,
        retention_days: registry.config().retention_days(),
        items,
    }))
}

/// `GET /api/unknowns/{id}/crop`: the visitor's first face chip, as JPEG.
#[utoipa::path(get, path = "/api/unknowns/{id}/crop", tag = "unknowns", params(("id" = i64, Path)),
    responses((status = 200, content_type = "image/jpeg", description = "The first stored face chip"),
        (status = 404, body = ddfr_protocol::ErrorBody)))]
pub async fn unknown_crop(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    registry(&services, &raw)?;
    let samples = services.store.visitor_samples(visitor_id(&raw)?).await?;
    let first = samples.into_iter().next().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "crop_not_found", "this visitor has no stored chip")
    })?;
    Ok(([(CONTENT_TYPE, "image/jpeg")], first.jpeg).into_response())
}

/// `DELETE /api/unknowns/{id}`: forgets a visitor and its chips for good.
#[utoipa::path(delete, path = "/api/unknowns/{id}", tag = "unknowns", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ddfr_protocol::ErrorBody)))]
pub async fn delete_unknown(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let services = state.services()?;
    let registry = registry(&services, &raw)?;
    let id = visitor_id(&raw)?;
    services.store.delete_visitor(id).await?;
    registry.remove(id);
    tracing::info!(visitor = id.0, "unknown visitor deleted");
    let (store, target) = (services.store.as_ref(), Some(Target::unknown(id, None)));
    record(store, actor, AuditAction::UnknownDelete, target, AuditResult::Success, None).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/unknowns/{id}/promote`: makes the visitor a person with role `guest` (body: the
/// person fields of `POST /api/persons`; `role` may be omitted and must be `guest` if given),
/// enrolls its stored chips as face samples and forgets the visitor.
#[utoipa::path(post, path = "/api/unknowns/{id}/promote", tag = "unknowns", params(("id" = i64, Path)),
    request_body = NewPerson,
    responses((status = 201, body = PersonView), (status = 404, body = ddfr_protocol::ErrorBody),
        (status = 409, description = "consent_required: DDFR_REQUIRE_CONSENT is on", body = ddfr_protocol::ErrorBody),
        (status = 422, body = ddfr_protocol::ErrorBody)))]
pub async fn promote_unknown(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(raw): Path<String>,
    JsonBody(mut fields): JsonBody<NewPerson>,
) -> Result<(StatusCode, Json<PersonView>), ApiError> {
    let services = state.services()?;
    let registry = registry(&services, &raw)?;
    let id = visitor_id(&raw)?;
    if state.config().privacy.require_consent {
        // A promoted visitor is a new person: nobody can have recorded their consent yet.
        return Err(crate::privacy::consent_required(
            "consent is required before enrolling: create the person, record their consent, \
             then enroll their photos"
                .to_owned(),
        ));
    }
    let today = today().map_err(ApiError::internal)?;
    let retain = fields.retain_until(today).map_err(ApiError::validation)?;
    match fields.role.as_deref() {
        None => fields.role = Some("guest".to_owned()),
        Some("guest") => {}
        Some(_) => {
            return Err(ApiError::validation(vec![FieldError::new(
                "role",
                "a promoted visitor is a guest; change the role afterwards",
            )]));
        }
    }
    let fields = fields.validate(today).map_err(ApiError::validation)?;
    let samples = services.store.visitor_samples(id).await?;
    let model = services.pool.pack().embedder_id().clone();
    let side = i32::try_from(services.pool.pack().aligner().chip_size()).unwrap_or(i32::MAX);
    let person = services.store.create_person(&fields).await?;
    if retain.is_some() {
        services.store.set_retain_until(person.id, retain).await?;
    }
    services.gallery.upsert_person(person.summary());
    for sample in samples {
        let face = NewFace {
            embedding: sample.embedding,
            model: model.clone(),
            bbox: PixelBox { top: 0, right: side, bottom: side, left: 0 },
            crop_jpeg: sample.jpeg,
        };
        let stored = services.store.add_face(person.id, &face).await?;
        services
            .gallery
            .insert_face(stored.id, person.id, &face.embedding)
            .map_err(ApiError::internal)?;
    }
    services.store.delete_visitor(id).await?;
    registry.remove(id);
    let person = services.store.person(person.id).await?;
    tracing::info!(
        visitor = id.0,
        person = person.id.0,
        faces = person.n_faces,
        "unknown visitor promoted"
    );
    let target = Some(Target::unknown(id, Some(person.id)));
    let detail = Some(format!("person={} faces={}", person.id.0, person.n_faces));
    let store = services.store.as_ref();
    record(store, actor, AuditAction::UnknownPromote, target, AuditResult::Success, detail).await;
    let mut view = person_view(&person, today);
    view.retain_until =
        crate::privacy::retain_until(&state, services.store.as_ref(), person.id).await?;
    Ok((StatusCode::CREATED, Json(view)))
}
