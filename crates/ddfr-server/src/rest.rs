//! The REST handlers: persons, face samples, recognize, verify, health.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ddfr_core::{FaceId, PersonId};
use ddfr_engine::EngineError;
use ddfr_engine::decode::{DecodeLimits, sniff_format};
use ddfr_protocol::{
    BatchEnrollReply, Date, EnrollStatus, FaceView, FieldError, FrameReply, Health, HealthReply,
    NewPerson, PageQuery, PersonList, PersonPatch, PersonView, PhotoResult, VerifyReply, age_on,
};
use ddfr_store::{AuditResult, FaceSample, NewFace, Person};

use crate::audit::{Actor, AuditAction, Target, record};
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::pipeline::{
    EnrollError, FrameOutcome, Naming, Screening, enroll_photo, largest_face_embedding,
    recognize_frame, screen_enrollment,
};
use crate::privacy;
use crate::state::{AppState, Services, today};

fn today_or_500() -> Result<Date, ApiError> {
    today().map_err(ApiError::internal)
}

/// A stored person as the API shows it.
pub(crate) fn person_view(person: &Person, today: Date) -> PersonView {
    PersonView {
        id: person.id.0,
        name: person.name.clone(),
        surname: person.surname.clone(),
        birthday: person.birthday,
        age: age_on(person.birthday, today),
        relationship: person.relationship,
        role: person.role,
        faces: person.n_faces,
        created_at: person.created_at,
        updated_at: person.updated_at,
        retain_until: None,
    }
}

pub(crate) fn face_view(face: &FaceSample) -> FaceView {
    FaceView {
        id: face.id.0,
        top: face.bbox.top,
        right: face.bbox.right,
        bottom: face.bbox.bottom,
        left: face.bbox.left,
        created_at: face.created_at,
    }
}

/// Path ids that are not integers name nothing: 404.
pub(crate) fn person_id(raw: &str) -> Result<PersonId, ApiError> {
    raw.parse().map(PersonId).map_err(|_| {
        ApiError::new(StatusCode::NOT_FOUND, "person_not_found", format!("no person with id {raw}"))
    })
}

fn face_id(raw: &str) -> Result<FaceId, ApiError> {
    raw.parse().map(FaceId).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "face_not_found",
            format!("no face sample with id {raw}"),
        )
    })
}

fn multipart_error(error: MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the upload is too large")
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("invalid multipart body: {}", error.body_text()),
        )
    }
}

fn multipart_rejection(_: MultipartRejection) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "expected a multipart/form-data body",
    )
}

/// Reads the named file fields of a multipart body; other fields are ignored.
async fn read_fields<const N: usize>(
    multipart: Result<Multipart, MultipartRejection>,
    names: [&str; N],
) -> Result<[Bytes; N], ApiError> {
    let mut multipart = multipart.map_err(multipart_rejection)?;
    let mut found: [Option<Bytes>; N] = std::array::from_fn(|_| None);
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let Some(slot) = field.name().and_then(|name| names.iter().position(|n| *n == name)) else {
            continue;
        };
        found[slot] = Some(field.bytes().await.map_err(multipart_error)?);
    }
    let mut missing = Vec::new();
    for (i, value) in found.iter().enumerate() {
        if value.is_none() {
            missing.push(FieldError::new(names[i], "missing file field"));
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::validation(missing));
    }
    Ok(found.map(Option::unwrap_or_default))
}

/// `POST /api/persons`.
#[utoipa::path(post, path = "/api/persons", tag = "persons", request_body = NewPerson,
    responses((status = 201, body = PersonView), (status = 422, body = ddfr_protocol::ErrorBody)))]
pub async fn create_person(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    JsonBody(body): JsonBody<NewPerson>,
) -> Result<(StatusCode, Json<PersonView>), ApiError> {
    let services = state.services()?;
    let today = today_or_500()?;
    let (fields, retain) = match (body.validate(today), body.retain_until(today)) {
        (Ok(fields), Ok(retain)) => (fields, retain),
        (fields, retain) => {
            let mut errors = fields.err().unwrap_or_default();
            errors.extend(retain.err().unwrap_or_default());
            return Err(ApiError::validation(errors));
        }
    };
    let person = services.store.create_person(&fields).await?;
    if retain.is_some() {
        services.store.set_retain_until(person.id, retain).await?;
    }
    services.gallery.upsert_person(person.summary());
    let target = Some(Target::person(person.id));
    let store = services.store.as_ref();
    let detail = retain.is_some().then(|| "retain_until".to_owned());
    record(store, actor, AuditAction::PersonCreate, target, AuditResult::Success, detail).await;
    let mut view = person_view(&person, today);
    view.retain_until = privacy::retain_until(&state, store, person.id).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /api/persons?limit=&offset=`.
#[utoipa::path(get, path = "/api/persons", tag = "persons", params(PageQuery),
    responses((status = 200, body = PersonList)))]
pub async fn list_persons(
    State(state): State<AppState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<PersonList>, ApiError> {
    let services = state.services()?;
    let Query(query) = query.map_err(|rejection| {
        ApiError::validation(vec![FieldError::new("query", rejection.body_text())])
    })?;
    let today = today_or_500()?;
    let (persons, total) = services.store.list_persons(query.limit(), query.offset()).await?;
    let days = state.config().privacy.retention_days;
    let retain: std::collections::HashMap<PersonId, Option<Date>> = services
        .store
        .retentions()
        .await?
        .into_iter()
        .map(|r| (r.person, r.retain_until(days)))
        .collect();
    let items = persons
        .iter()
        .map(|p| {
            let mut view = person_view(p, today);
            view.retain_until = retain.get(&p.id).copied().flatten();
            view
        })
        .collect();
    Ok(Json(PersonList { items, total }))
}

/// `GET /api/persons/{id}`.
#[utoipa::path(get, path = "/api/persons/{id}", tag = "persons", params(("id" = i64, Path)),
    responses((status = 200, body = PersonView), (status = 404, body = ddfr_protocol::ErrorBody)))]
pub async fn get_person(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PersonView>, ApiError> {
    let services = state.services()?;
    let person = services.store.person(person_id(&id)?).await?;
    let mut view = person_view(&person, today_or_500()?);
    view.retain_until = privacy::retain_until(&state, services.store.as_ref(), person.id).await?;
    Ok(Json(view))
}

/// `PATCH /api/persons/{id}`.
#[utoipa::path(patch, path = "/api/persons/{id}", tag = "persons", params(("id" = i64, Path)),
    request_body = PersonPatch,
    responses((status = 200, body = PersonView), (status = 404, body = ddfr_protocol::ErrorBody), (status = 422, body = ddfr_protocol::ErrorBody)))]
pub async fn update_person(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PersonPatch>,
) -> Result<Json<PersonView>, ApiError> {
    let services = state.services()?;
    let id = person_id(&id)?;
    let today = today_or_500()?;
    let (changes, retain) = match (body.validate(today), body.retain_until(today)) {
        (Ok(changes), Ok(retain)) => (changes, retain),
        (changes, retain) => {
            let mut errors = changes.err().unwrap_or_default();
            errors.extend(retain.err().unwrap_or_default());
            return Err(ApiError::validation(errors));
        }
    };
    let person = services.store.update_person(id, &changes).await?;
    if let Some(retain) = retain {
        services.store.set_retain_until(id, retain).await?;
    }
    services.gallery.upsert_person(person.summary());
    // The names of the changed fields, never their values.
    let changed: Vec<&str> = [
        ("name", changes.name.is_some()),
        ("surname", changes.surname.is_some()),
        ("birthday", changes.birthday.is_some()),
        ("relationship", changes.relationship.is_some()),
        ("role", changes.role.is_some()),
        ("retain_until", retain.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, changed)| changed.then_some(field))
    .collect();
    let detail = Some(format!("fields={}", changed.join(",")));
    let store = services.store.as_ref();
    let target = Some(Target::person(id));
    record(store, actor, AuditAction::PersonUpdate, target, AuditResult::Success, detail).await;
    let mut view = person_view(&person, today);
    view.retain_until = privacy::retain_until(&state, store, id).await?;
    Ok(Json(view))
}

/// `DELETE /api/persons/{id}`: the person, every face sample, crop and index entry.
#[utoipa::path(delete, path = "/api/persons/{id}", tag = "persons", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ddfr_protocol::ErrorBody)))]
pub async fn delete_person(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let services = state.services()?;
    let id = person_id(&id)?;
    services.store.delete_person(id).await?;
    services.gallery.remove_person(id);
    tracing::info!(person = id.0, "person deleted");
    let (store, target) = (services.store.as_ref(), Some(Target::person(id)));
    record(store, actor, AuditAction::PersonDelete, target, AuditResult::Success, None).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The multipart upload of one image.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ImageUpload {
    /// A JPEG, PNG or WebP file.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
}

/// The multipart upload of several images: the `image` field repeated.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ImagesUpload {
    /// JPEG, PNG or WebP files, up to 10.
    #[schema(value_type = Vec<String>, format = Binary)]
    image: Vec<Vec<u8>>,
}

/// The multipart upload of two images.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TwoImagesUpload {
    /// The first JPEG, PNG or WebP file.
    #[schema(value_type = String, format = Binary)]
    image1: Vec<u8>,
    /// The second.
    #[schema(value_type = String, format = Binary)]
    image2: Vec<u8>,
}

fn enroll_error(error: EnrollError) -> ApiError {
    let unprocessable = |code, e: &EnrollError| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
    };
    match error {
        EnrollError::Image(engine) => ApiError::from_photo(engine),
        EnrollError::Engine(engine) => ApiError::internal(engine),
        EnrollError::NoFace
        | EnrollError::MultipleFaces { .. }
        | EnrollError::FaceTooSmall { .. }
        | EnrollError::Blurry { .. }
        | EnrollError::ExtremePose { .. } => unprocessable(error.code(), &error),
    }
}

pub(crate) fn check_format(image: &[u8]) -> Result<(), ApiError> {
    if image.len() > DecodeLimits::PHOTO.max_bytes {
        return Err(ApiError::from_photo(EngineError::TooLarge {
            bytes: image.len(),
            limit: DecodeLimits::PHOTO.max_bytes,
        }));
    }
    sniff_format(image)
        .map(|_| ())
        .ok_or_else(|| ApiError::from_photo(EngineError::UnsupportedFormat))
}

/// Query of the enrollment routes.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub struct EnrollQuery {
    /// Refuse a photo that matches another enrolled person better than this one
    /// (`looks_like_other_person`). Default: the server's `DDFR_STRICT_ENROLLMENT` (off).
    pub strict: Option<bool>,
}

/// Photos one `POST /api/persons/{id}/faces/batch` may carry.
pub const MAX_BATCH_PHOTOS: usize = 10;

/// The body limit of the batch route: four single-photo uploads' worth (≈ 40 MiB) for up to
/// [`MAX_BATCH_PHOTOS`] photos; each photo still obeys the single-photo limit.
pub fn batch_body_limit(max_upload_bytes: usize) -> usize {
    max_upload_bytes.saturating_mul(4)
}

/// What enrolling one photo did.
enum Enrolled {
    /// Stored.
    New(FaceSample),
    /// A near-duplicate of this existing sample: nothing stored.
    Duplicate(FaceView),
}

/// The whole enrollment of one photo: format check, quality gate (on a worker), gallery
/// screening (near-duplicate, strict mode), store, index.
async fn enroll_one(
    services: &Arc<Services>,
    person: PersonId,
    image: Bytes,
    strict: bool,
) -> Result<Enrolled, ApiError> {
    check_format(&image)?;
    let gallery = Arc::clone(&services.gallery);
    let min_similarity = services.min_similarity;
    let (candidate, screening) = services
        .pool
        .run(move |pack| {
            let candidate = enroll_photo(pack, &image)?;
            let screening =
                screen_enrollment(&gallery, person, &candidate.embedding, min_similarity, strict);
            Ok::<_, EnrollError>((candidate, screening))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(enroll_error)?;
    match screening {
        Screening::Duplicate(existing) => {
            let faces = services.store.faces(person).await?;
            if let Some(face) = faces.iter().find(|f| f.id == existing) {
                tracing::info!(
                    person = person.0,
                    face = existing.0,
                    "near-duplicate photo skipped"
                );
                return Ok(Enrolled::Duplicate(face_view(face)));
            }
            // The sample was deleted meanwhile: store this one.
        }
        Screening::LooksLikeOther { other, similarity, own } => {
            let own = own.map_or_else(|| "no sample yet".to_owned(), |s| format!("{s:.3}"));
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "looks_like_other_person",
                format!(
                    "the photo matches person {other} (similarity {similarity:.3}) better than \
                     this person ({own}); strict enrollment refuses it"
                ),
            ));
        }
        Screening::New => {}
    }
    let new_face = NewFace {
        embedding: candidate.embedding,
        model: services.pool.pack().embedder_id().clone(),
        bbox: candidate.bbox,
        crop_jpeg: candidate.chip_jpeg,
    };
    let sample = services.store.add_face(person, &new_face).await?;
    services
        .gallery
        .insert_face(sample.id, person, &new_face.embedding)
        .map_err(ApiError::internal)?;
    tracing::info!(person = person.0, face = sample.id.0, "face enrolled");
    Ok(Enrolled::New(sample))
}

/// `POST /api/persons/{id}/faces`: enrolls the one face of a photo (see `docs/api.md` for the
/// quality gate). 201 with the new sample; 200 with the existing sample when the photo is a
/// near-duplicate of one the person already has (nothing is stored twice).
#[utoipa::path(post, path = "/api/persons/{id}/faces", tag = "faces",
    params(("id" = i64, Path), EnrollQuery),
    request_body(content = ImageUpload, content_type = "multipart/form-data"),
    responses((status = 201, body = FaceView), (status = 200, description = "near-duplicate of this existing sample; nothing stored", body = FaceView),
        (status = 404, body = ddfr_protocol::ErrorBody),
        (status = 409, description = "consent_required: DDFR_REQUIRE_CONSENT is on and the person has no consent record; nothing stored", body = ddfr_protocol::ErrorBody),
        (status = 413, body = ddfr_protocol::ErrorBody), (status = 415, body = ddfr_protocol::ErrorBody),
        (status = 422, description = "no_face, multiple_faces, face_too_small, blurry, extreme_pose, looks_like_other_person (strict) or invalid_image", body = ddfr_protocol::ErrorBody)))]
pub async fn add_face(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    query: Result<Query<EnrollQuery>, QueryRejection>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<FaceView>), ApiError> {
    let services = state.services()?;
    let id = person_id(&id)?;
    let strict = strict_mode(&state, query)?;
    services.store.person(id).await?;
    privacy::require_consent(&state, &services, id).await?;
    let [image] = read_fields(multipart, ["image"]).await?;
    match enroll_one(&services, id, image, strict).await? {
        Enrolled::New(sample) => {
            let (store, target) = (services.store.as_ref(), Some(Target::face(id, sample.id)));
            record(store, actor, AuditAction::FaceEnroll, target, AuditResult::Success, None).await;
            Ok((StatusCode::CREATED, Json(face_view(&sample))))
        }
        Enrolled::Duplicate(existing) => Ok((StatusCode::OK, Json(existing))),
    }
}

fn strict_mode(
    state: &AppState,
    query: Result<Query<EnrollQuery>, QueryRejection>,
) -> Result<bool, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::validation(vec![FieldError::new("strict", e.body_text())]))?;
    Ok(query.strict.unwrap_or(state.config().strict_enrollment))
}

/// The `image` fields of a multipart body with their file names, at most [`MAX_BATCH_PHOTOS`].
async fn read_images(
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Vec<(Option<String>, Bytes)>, ApiError> {
    let mut multipart = multipart.map_err(multipart_rejection)?;
    let mut images = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("image") {
            continue;
        }
        if images.len() == MAX_BATCH_PHOTOS {
            return Err(ApiError::validation(vec![FieldError::new(
                "image",
                format!("at most {MAX_BATCH_PHOTOS} photos per request"),
            )]));
        }
        let filename = field.file_name().map(str::to_owned);
        images.push((filename, field.bytes().await.map_err(multipart_error)?));
    }
    if images.is_empty() {
        return Err(ApiError::validation(vec![FieldError::new("image", "missing file field")]));
    }
    Ok(images)
}

/// `POST /api/persons/{id}/faces/batch`: enrolls several photos of one person (repeated
/// `image` fields, up to [`MAX_BATCH_PHOTOS`]), each through the same quality gate, and says
/// per photo what happened. Photos are taken in order, so a later photo that duplicates an
/// earlier one of the same request is skipped too.
#[utoipa::path(post, path = "/api/persons/{id}/faces/batch", tag = "faces",
    params(("id" = i64, Path), EnrollQuery),
    request_body(content = ImagesUpload, content_type = "multipart/form-data"),
    responses((status = 200, body = BatchEnrollReply), (status = 404, body = ddfr_protocol::ErrorBody),
        (status = 409, description = "consent_required (see the single-photo route)", body = ddfr_protocol::ErrorBody),
        (status = 413, body = ddfr_protocol::ErrorBody), (status = 415, body = ddfr_protocol::ErrorBody),
        (status = 422, description = "no image field, or more than 10", body = ddfr_protocol::ErrorBody)))]
pub async fn add_faces(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    query: Result<Query<EnrollQuery>, QueryRejection>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<BatchEnrollReply>, ApiError> {
    let services = state.services()?;
    let id = person_id(&id)?;
    let strict = strict_mode(&state, query)?;
    services.store.person(id).await?;
    privacy::require_consent(&state, &services, id).await?;
    let images = read_images(multipart).await?;
    let mut results = Vec::with_capacity(images.len());
    // One summarising audit entry: the stored sample ids and the other outcomes' counts.
    let (mut enrolled, mut skipped, mut rejected) = (Vec::new(), 0usize, 0usize);
    let summary = |enrolled: &[i64], skipped: usize, rejected: usize| {
        let ids = enrolled.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        Some(format!("enrolled_faces=[{ids}] skipped={skipped} rejected={rejected}"))
    };
    let target = Some(Target::person(id));
    for (index, (filename, image)) in images.into_iter().enumerate() {
        let (status, code, message, face) = match enroll_one(&services, id, image, strict).await {
            Ok(Enrolled::New(sample)) => {
                enrolled.push(sample.id.0);
                (EnrollStatus::Enrolled, None, None, Some(face_view(&sample)))
            }
            Ok(Enrolled::Duplicate(existing)) => (
                {
                    skipped += 1;
                    EnrollStatus::Skipped
                },
                Some("near_duplicate".to_owned()),
                Some(format!("nearly identical to face sample {}", existing.id)),
                Some(existing),
            ),
            Err(error) if error.status.is_server_error() => {
                // Samples stored before the failure stay stored: audit them.
                let detail = summary(&enrolled, skipped, rejected);
                let store = services.store.as_ref();
                record(store, actor, AuditAction::FacesBatch, target, AuditResult::Failure, detail)
                    .await;
                return Err(error);
            }
            Err(error) => {
                rejected += 1;
                (EnrollStatus::Rejected, Some(error.code.to_owned()), Some(error.message), None)
            }
        };
        results.push(PhotoResult { index, filename, status, code, message, face });
    }
    let detail = summary(&enrolled, skipped, rejected);
    let store = services.store.as_ref();
    record(store, actor, AuditAction::FacesBatch, target, AuditResult::Success, detail).await;
    Ok(Json(BatchEnrollReply::new(results)))
}

/// `GET /api/persons/{id}/faces`.
#[utoipa::path(get, path = "/api/persons/{id}/faces", tag = "faces", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<FaceView>), (status = 404, body = ddfr_protocol::ErrorBody)))]
pub async fn list_faces(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<FaceView>>, ApiError> {
    let services = state.services()?;
    let faces = services.store.faces(person_id(&id)?).await?;
    Ok(Json(faces.iter().map(face_view).collect()))
}

/// `DELETE /api/persons/{id}/faces/{face_id}`.
#[utoipa::path(delete, path = "/api/persons/{id}/faces/{face_id}", tag = "faces",
    params(("id" = i64, Path), ("face_id" = i64, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ddfr_protocol::ErrorBody)))]
pub async fn delete_face(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path((id, face)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let services = state.services()?;
    let (id, face) = (person_id(&id)?, face_id(&face)?);
    services.store.delete_face(id, face).await?;
    services.gallery.remove_face(face);
    let (store, target) = (services.store.as_ref(), Some(Target::face(id, face)));
    record(store, actor, AuditAction::FaceDelete, target, AuditResult::Success, None).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/persons/{id}/faces/{face_id}/crop`: the stored aligned face chip, as JPEG.
#[utoipa::path(get, path = "/api/persons/{id}/faces/{face_id}/crop", tag = "faces",
    params(("id" = i64, Path), ("face_id" = i64, Path)),
    responses((status = 200, content_type = "image/jpeg", description = "The aligned face chip"), (status = 404, body = ddfr_protocol::ErrorBody)))]
pub async fn face_crop(
    State(state): State<AppState>,
    Path((id, face)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    let jpeg = services.store.face_crop(person_id(&id)?, face_id(&face)?).await?;
    Ok(([(CONTENT_TYPE, "image/jpeg")], jpeg).into_response())
}

/// `POST /api/recognize`: the JSON a `/ws` full frame would get.
#[utoipa::path(post, path = "/api/recognize", tag = "recognition",
    request_body(content = ImageUpload, content_type = "multipart/form-data"),
    responses((status = 200, body = FrameReply), (status = 422, body = ddfr_protocol::ErrorBody)))]
pub async fn recognize(
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<FrameReply>, ApiError> {
    let services = state.services()?;
    let [image] = read_fields(multipart, ["image"]).await?;
    let today = today_or_500()?;
    let gallery = Arc::clone(&services.gallery);
    let min_similarity = services.min_similarity;
    let outcome = services
        .pool
        .run(move |pack| {
            let naming = Naming::Single { min_similarity };
            recognize_frame(pack, &gallery, &image, &DecodeLimits::PHOTO, naming, today)
        })
        .await
        .map_err(ApiError::internal)?;
    match outcome {
        FrameOutcome::Reply(reply) => Ok(Json(reply)),
        FrameOutcome::Undecodable(reason) => Err(ApiError::invalid_image(reason)),
        FrameOutcome::Failed(error) => Err(ApiError::internal(error)),
    }
}

/// The body limit of `POST /api/verify`: two photos, each as large as a single-photo upload may
/// be (`max_upload_bytes`: one [`DecodeLimits::PHOTO`] image plus the form framing). Larger
/// bodies get 413 `payload_too_large`, and so does either image over the photo limit.
pub fn verify_body_limit(max_upload_bytes: usize) -> usize {
    max_upload_bytes.saturating_mul(2)
}

/// `POST /api/verify`: compares the largest face of two photos (body limit:
/// [`verify_body_limit`]).
#[utoipa::path(post, path = "/api/verify", tag = "recognition",
    request_body(content = TwoImagesUpload, content_type = "multipart/form-data"),
    responses((status = 200, body = VerifyReply), (status = 413, body = ddfr_protocol::ErrorBody),
        (status = 422, body = ddfr_protocol::ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<VerifyReply>, ApiError> {
    let services = state.services()?;
    let [image1, image2] = read_fields(multipart, ["image1", "image2"]).await?;
    let photo_error = |e: EngineError| match e {
        EngineError::UnsupportedFormat
        | EngineError::Decode { .. }
        | EngineError::DimensionsTooLarge { .. }
        | EngineError::TooManyScans { .. } => ApiError::invalid_image(e.to_string()),
        other => ApiError::from_photo(other),
    };
    let (a, b) = services
        .pool
        .run(move |pack| {
            (largest_face_embedding(pack, &image1), largest_face_embedding(pack, &image2))
        })
        .await
        .map_err(ApiError::internal)?;
    let (Some(a), Some(b)) = (a.map_err(photo_error)?, b.map_err(photo_error)?) else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_face",
            "no face was found in at least one of the images",
        ));
    };
    let similarity = a.similarity(&b);
    let mut reply = VerifyReply::new(similarity, services.min_similarity);
    reply.false_accept_rate = services.gallery.false_accept_rate(similarity);
    Ok(Json(reply))
}

fn health_of(state: &AppState, services: &Services) -> Health {
    let pack = services.pool.pack();
    let (n_persons, n_faces) = (services.gallery.n_persons(), services.gallery.n_faces());
    let ws = state.ws_counters();
    let counter = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let mut base = HealthReply::ok(env!("CARGO_PKG_VERSION"));
    base.detector = Some(pack.detector_id.clone());
    base.embedder = Some(pack.embedder_id().as_str().to_owned());
    base.persons = Some(n_persons as u64);
    base.faces = Some(n_faces as u64);
    Health {
        base,
        pack: pack.id.clone(),
        backend: format!("{:?}", pack.backend).to_lowercase(),
        workers: services.pool.workers(),
        n_persons,
        n_faces,
        min_similarity: services.min_similarity,
        ws_connections: counter(&ws.open),
        dropped_frames: state.dropped_frames(),
        rate_limited_frames: counter(&ws.rate_limited),
        refused_connections: counter(&ws.refused),
        unresponsive_connections: counter(&ws.unresponsive),
        unknown_visitors: services.visitors.is_some(),
        visitor_writes_dropped: services.visitors.as_ref().map_or(0, |v| v.dropped_writes()),
        cameras: state.events().map(ddfr_events::Events::cameras).unwrap_or_default(),
        events: state.events().map(ddfr_events::Events::health).unwrap_or_default(),
    }
}

/// `GET /api/health` (no auth).
#[utoipa::path(get, path = "/api/health", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = ddfr_protocol::ErrorBody)))]
pub async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let services = state.services()?;
    Ok(Json(health_of(&state, &services)))
}
