//! Consent records, retention and the privacy policy over HTTP, and the retention job.
//!
//! - `POST`/`GET /api/persons/{id}/consent`: record and list a person's consent records;
//!   `POST /api/persons/{id}/consent/withdraw` hard-deletes the person (as `DELETE
//!   /api/persons/{id}`), audited as `consent_withdraw` then `person_delete`.
//! - With [`PrivacyConfig::require_consent`] (`DDFR_REQUIRE_CONSENT`), enrolling a face of a
//!   person without a consent record is refused with 409 `consent_required` before anything is
//!   stored ([`require_consent`]).
//! - Retention: every person has an effective `retain_until` (an explicit date, or
//!   [`PrivacyConfig::retention_days`] after the last match or creation). The frame path only
//!   notes who was matched in memory ([`LastMatches::note`], one short lock per frame with a
//!   match); [`run_retention`] writes those times in batches every [`LAST_MATCH_FLUSH`] and
//!   deletes expired persons at start and every [`PURGE_INTERVAL`] ([`purge_expired`], which
//!   takes `now`), each audited as `purge`. [`flush_last_matches`] runs once more at shutdown.
//! - `GET /api/privacy/policy` (open, like `/api/health`): the schedule in force.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use ddfr_core::PersonId;
use ddfr_protocol::{ConsentView, Date, NewConsent, PrivacyPolicy, Timestamp};
use ddfr_store::{AuditResult, Consent, PersonStore, purge_expired_persons};

use crate::audit::{Actor, AuditAction, Target, record};
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::rest::person_id;
use crate::state::{AppState, Services, now_timestamp};
use crate::visitors::RETENTION_INTERVAL;

/// How often the last-match times kept in memory are written to the store.
pub const LAST_MATCH_FLUSH: Duration = Duration::from_secs(300);

/// How often expired persons are deleted (also once at start).
pub const PURGE_INTERVAL: Duration = RETENTION_INTERVAL;

/// Privacy settings of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacyConfig {
    /// Days a person is kept after their last match (or creation) unless a date is set on
    /// them (`DDFR_RETENTION_DAYS`).
    pub retention_days: u32,
    /// Refuse to enroll a face of a person without a consent record (`DDFR_REQUIRE_CONSENT`).
    pub require_consent: bool,
    /// The privacy notice version in force (`DDFR_PRIVACY_NOTICE_VERSION`), reported by the
    /// policy route.
    pub notice_version: String,
}

impl PrivacyConfig {
    /// The default retention: 3 years.
    pub const DEFAULT_RETENTION_DAYS: u32 = 1095;
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            retention_days: Self::DEFAULT_RETENTION_DAYS,
            require_consent: false,
            notice_version: "1".to_owned(),
        }
    }
}

/// When each person was last recognised, in memory until the next flush.
#[derive(Debug, Default)]
pub struct LastMatches {
    latest: Mutex<HashMap<PersonId, Timestamp>>,
}

impl LastMatches {
    /// Notes that `persons` were recognised at `at`. One short lock; no IO.
    pub fn note(&self, persons: impl IntoIterator<Item = PersonId>, at: Timestamp) {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        for person in persons {
            let entry = latest.entry(person).or_insert(at);
            if *entry < at {
                *entry = at;
            }
        }
    }

    /// Takes every noted time, leaving none.
    pub fn take(&self) -> Vec<(PersonId, Timestamp)> {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let mut taken: Vec<_> = latest.drain().collect();
        taken.sort_unstable();
        taken
    }

    /// Puts back times a failed flush took (a newer time noted meanwhile wins).
    fn restore(&self, times: &[(PersonId, Timestamp)]) {
        for (person, at) in times {
            self.note([*person], *at);
        }
    }

    /// Number of persons with a time not yet written.
    pub fn pending(&self) -> usize {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Writes the noted last-match times to the store in one transaction; on failure they stay
/// in memory for the next attempt. Returns the rows written.
pub async fn flush_last_matches(services: &Services) -> u64 {
    let times = services.gallery.last_matches().take();
    if times.is_empty() {
        return 0;
    }
    match services.store.record_last_matches(&times).await {
        Ok(written) => written,
        Err(error) => {
            tracing::error!(%error, persons = times.len(), "writing last-match times failed");
            services.gallery.last_matches().restore(&times);
            0
        }
    }
}

/// Deletes every person past their retention date at `now` (after writing the pending
/// last-match times, so a recent match counts), removes them from the index and audits each
/// as `purge`. Returns their ids.
pub async fn purge_expired(
    services: &Services,
    config: &PrivacyConfig,
    now: Timestamp,
) -> Result<Vec<PersonId>, ddfr_store::StoreError> {
    flush_last_matches(services).await;
    let purged = purge_expired_persons(services.store.as_ref(), now, config.retention_days).await?;
    for person in &purged {
        services.gallery.remove_person(*person);
        let detail = Some(format!("retention_days={}", config.retention_days));
        let target = Some(Target::person(*person));
        let store = services.store.as_ref();
        record(store, Actor::System, AuditAction::Purge, target, AuditResult::Success, detail)
            .await;
    }
    if !purged.is_empty() {
        tracing::info!(deleted = purged.len(), "persons past their retention date deleted");
    }
    Ok(purged)
}

/// The retention task: a purge now and every [`PURGE_INTERVAL`], last-match times written
/// every [`LAST_MATCH_FLUSH`]. Runs until the runtime stops; the caller flushes once more at
/// shutdown.
pub async fn run_retention(services: Arc<Services>, config: PrivacyConfig) {
    let mut purge = tokio::time::interval(PURGE_INTERVAL);
    let mut flush = tokio::time::interval(LAST_MATCH_FLUSH);
    loop {
        tokio::select! {
            _ = purge.tick() => {
                if let Err(error) = purge_expired(&services, &config, now_timestamp()).await {
                    tracing::error!(%error, "deleting persons past their retention date failed");
                }
            }
            _ = flush.tick() => {
                flush_last_matches(&services).await;
            }
        }
    }
}

/// The effective `retain_until` of `person`.
pub(crate) async fn retain_until(
    state: &AppState,
    store: &dyn PersonStore,
    person: PersonId,
) -> Result<Option<Date>, ApiError> {
    let retention = store.retention(person).await?;
    Ok(retention.retain_until(state.config().privacy.retention_days))
}

/// 409 `consent_required` when consent is required and `person` has no consent record.
pub(crate) async fn require_consent(
    state: &AppState,
    services: &Services,
    person: PersonId,
) -> Result<(), ApiError> {
    if !state.config().privacy.require_consent {
        return Ok(());
    }
    if services.store.consents(person).await?.is_empty() {
        return Err(consent_required(format!(
            "person {} has no consent record; record one with POST /api/persons/{}/consent \
             before enrolling faces",
            person.0, person.0
        )));
    }
    Ok(())
}

/// The 409 `consent_required` error.
pub(crate) fn consent_required(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "consent_required", message)
}

fn consent_view(consent: &Consent) -> ConsentView {
    ConsentView {
        id: consent.id,
        person_id: consent.person.0,
        subject: consent.record.subject.clone(),
        given_at: consent.record.given_at,
        method: consent.record.method.clone(),
        notice_version: consent.record.notice_version.clone(),
        purpose: consent.record.purpose.clone(),
        retention_term: consent.record.retention_term.clone(),
        recorded_by: consent.record.recorded_by.clone(),
        recorded_at: consent.recorded_at,
    }
}

/// A person's consent records as the API shows them.
pub(crate) async fn consent_views(
    store: &dyn PersonStore,
    person: PersonId,
) -> Result<Vec<ConsentView>, ApiError> {
    Ok(store.consents(person).await?.iter().map(consent_view).collect())
}

/// `POST /api/persons/{id}/consent`: stores a consent record. 201 with the record.
#[utoipa::path(post, path = "/api/persons/{id}/consent", tag = "privacy",
    params(("id" = i64, Path)), request_body = NewConsent,
    responses((status = 201, body = ConsentView), (status = 404, body = ddfr_protocol::ErrorBody),
        (status = 422, body = ddfr_protocol::ErrorBody)))]
pub async fn add_consent(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NewConsent>,
) -> Result<(StatusCode, Json<ConsentView>), ApiError> {
    let services = state.services()?;
    let id = person_id(&id)?;
    let fields = body.validate(now_timestamp()).map_err(ApiError::validation)?;
    let record = ddfr_store::NewConsent {
        subject: fields.subject,
        given_at: fields.given_at,
        method: fields.method.as_str().to_owned(),
        notice_version: fields.notice_version,
        purpose: fields.purpose,
        retention_term: fields.retention_term,
        recorded_by: fields.recorded_by,
    };
    let consent = services.store.add_consent(id, &record).await?;
    // Ids and the method only: the texts are personal data and stay with the person.
    let detail = Some(format!("consent={} method={}", consent.id, record.method));
    let (store, target) = (services.store.as_ref(), Some(Target::person(id)));
    record_audit(store, actor, AuditAction::ConsentRecord, target, detail).await;
    Ok((StatusCode::CREATED, Json(consent_view(&consent))))
}

async fn record_audit(
    store: &dyn PersonStore,
    actor: Actor,
    action: AuditAction,
    target: Option<Target>,
    detail: Option<String>,
) {
    record(store, actor, action, target, AuditResult::Success, detail).await;
}

/// `GET /api/persons/{id}/consent`: the person's consent records, oldest first.
#[utoipa::path(get, path = "/api/persons/{id}/consent", tag = "privacy",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ConsentView>), (status = 404, body = ddfr_protocol::ErrorBody)))]
pub async fn list_consents(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<ConsentView>>, ApiError> {
    let services = state.services()?;
    Ok(Json(consent_views(services.store.as_ref(), person_id(&id)?).await?))
}

/// `POST /api/persons/{id}/consent/withdraw`: consent is withdrawn, so the person is deleted
/// for good, exactly as `DELETE /api/persons/{id}` (rows, crops, embeddings, consent records,
/// index entries). 204.
#[utoipa::path(post, path = "/api/persons/{id}/consent/withdraw", tag = "privacy",
    params(("id" = i64, Path)),
    responses((status = 204, description = "Consent withdrawn; the person is deleted"),
        (status = 404, body = ddfr_protocol::ErrorBody)))]
pub async fn withdraw_consent(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let services = state.services()?;
    let id = person_id(&id)?;
    let n_consents = services.store.consents(id).await?.len();
    services.store.delete_person(id).await?;
    services.gallery.remove_person(id);
    tracing::info!(person = id.0, "consent withdrawn; person deleted");
    let (store, target) = (services.store.as_ref(), Some(Target::person(id)));
    let detail = Some(format!("consents={n_consents}"));
    record_audit(store, actor, AuditAction::ConsentWithdraw, target, detail).await;
    record_audit(store, actor, AuditAction::PersonDelete, target, Some("withdraw".to_owned()))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// What ddfr stores, for the policy.
const STORED: [&str; 6] = [
    "enrolled persons' fields: name, surname, birthday, relationship, role",
    "per enrolled photo: the face box, one aligned face chip (JPEG, about 150x150 pixels) and its embedding",
    "consent records: subject, time, method, notice version, purpose, retention term, recorded by",
    "each person's explicit retention date and the time they were last recognised (written every few minutes)",
    "the audit log: time, kind of credential, action, target ids, result (no names, images, embeddings or tokens)",
    "only with DDFR_UNKNOWN_VISITORS on: per recurring unknown visitor a mean embedding and up to 5 aligned face chips",
];

/// What ddfr never stores, for the policy.
const NEVER_STORED: [&str; 4] = [
    "live frames from /ws or POST /api/recognize (processed in memory and dropped)",
    "the uploaded enrollment photos themselves (only the aligned face chip is kept)",
    "faces or embeddings from the live stream (unless the unknown-visitor feature is on)",
    "tokens or passwords (the audit log records the kind of credential only)",
];

/// `GET /api/privacy/policy` (no auth): the retention schedule and consent policy in force.
#[utoipa::path(get, path = "/api/privacy/policy", tag = "privacy",
    responses((status = 200, body = PrivacyPolicy), (status = 503, body = ddfr_protocol::ErrorBody)))]
pub async fn policy(State(state): State<AppState>) -> Result<Json<PrivacyPolicy>, ApiError> {
    let services = state.services()?;
    let config = &state.config().privacy;
    let days = config.retention_days;
    Ok(Json(PrivacyPolicy {
        notice_version: config.notice_version.clone(),
        consent_required: config.require_consent,
        person_retention_days: days,
        person_retention: format!(
            "An enrolled person is deleted for good {days} days after they were last \
             recognised (or created, if never recognised), unless a retain_until date is set \
             on them: then the day after that date. Withdrawing consent deletes them at once."
        ),
        unknown_visitors: services.visitors.is_some(),
        unknown_retention_days: services.visitors.as_ref().map(|v| v.config().retention_days()),
        audit_retention: "The audit log is append-only and kept for the life of the database; \
                          its entries name persons by id only, so they outlive a deletion \
                          without keeping personal data."
            .to_owned(),
        purge_interval_hours: PURGE_INTERVAL.as_secs() / 3600,
        stored: STORED.iter().map(|s| (*s).to_owned()).collect(),
        never_stored: NEVER_STORED.iter().map(|s| (*s).to_owned()).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_matches_keep_the_latest_time_and_drain() {
        let matches = LastMatches::default();
        let t = Timestamp::from_unix_millis;
        matches.note([PersonId(2), PersonId(1)], t(10));
        matches.note([PersonId(1)], t(30));
        matches.note([PersonId(1)], t(20));
        assert_eq!(matches.pending(), 2);
        let taken = matches.take();
        assert_eq!(taken, vec![(PersonId(1), t(30)), (PersonId(2), t(10))]);
        assert_eq!(matches.pending(), 0);
        matches.note([PersonId(1)], t(40));
        matches.restore(&taken);
        assert_eq!(matches.take(), vec![(PersonId(1), t(40)), (PersonId(2), t(10))]);
    }
}
