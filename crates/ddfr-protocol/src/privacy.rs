//! REST bodies of consent records (`/api/persons/{id}/consent`), the privacy policy
//! (`GET /api/privacy/policy`), the per-person retention date and the export archive's
//! manifest.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::date::{Date, Timestamp};
use crate::person::{FieldError, UnknownVariant};

/// How far a consent's `given_at` may lie ahead of the server's clock (clock skew).
pub const GIVEN_AT_TOLERANCE_MILLIS: i64 = 5 * 60 * 1000;

/// Latest explicit `retain_until` accepted, in years after today.
pub const MAX_RETAIN_YEARS: i64 = 100;

/// How consent was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ConsentMethod {
    /// On paper, signed.
    Written,
    /// A form, an e-mail, a checkbox.
    Electronic,
    /// Said aloud (record who heard it in `recorded_by`).
    Verbal,
    /// Anything else; say what in `purpose` or `retention_term`.
    Other,
}

impl ConsentMethod {
    /// Every value.
    pub const ALL: [ConsentMethod; 4] = [
        ConsentMethod::Written,
        ConsentMethod::Electronic,
        ConsentMethod::Verbal,
        ConsentMethod::Other,
    ];

    /// The wire (and database) spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConsentMethod::Written => "written",
            ConsentMethod::Electronic => "electronic",
            ConsentMethod::Verbal => "verbal",
            ConsentMethod::Other => "other",
        }
    }
}

impl FromStr for ConsentMethod {
    type Err = UnknownVariant;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ConsentMethod::ALL.into_iter().find(|m| m.as_str() == text).ok_or_else(|| UnknownVariant {
            kind: "method",
            value: text.chars().take(40).collect(),
            expected: "written, electronic, verbal, other",
        })
    }
}

impl fmt::Display for ConsentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /api/persons/{id}/consent` body. Fields stay as received until
/// [`NewConsent::validate`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewConsent {
    /// Who gave the consent: the person, or e.g. a child's parent; required, 1 to 200
    /// characters.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String, max_length = 200))]
    pub subject: Option<String>,
    /// When it was given, RFC 3339 UTC; now when absent; not in the future.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Timestamp>))]
    pub given_at: Option<String>,
    /// How it was given; required.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = ConsentMethod))]
    pub method: Option<String>,
    /// The version of the privacy notice the subject was shown; required, 1 to 64 characters.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String, max_length = 64))]
    pub notice_version: Option<String>,
    /// What the consent covers; required, 1 to 500 characters.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String, max_length = 500))]
    pub purpose: Option<String>,
    /// For how long it was given, e.g. `until withdrawn`; required, 1 to 200 characters.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String, max_length = 200))]
    pub retention_term: Option<String>,
    /// Who recorded it; required, 1 to 100 characters.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String, max_length = 100))]
    pub recorded_by: Option<String>,
}

/// A consent record, checked: trimmed non-empty texts within their lengths, a known method,
/// a time not in the future.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentFields {
    /// Who gave it.
    pub subject: String,
    /// When.
    pub given_at: Timestamp,
    /// How.
    pub method: ConsentMethod,
    /// The notice version shown.
    pub notice_version: String,
    /// What it covers.
    pub purpose: String,
    /// For how long.
    pub retention_term: String,
    /// Who recorded it.
    pub recorded_by: String,
}

fn text(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: Option<&String>,
    max: usize,
) -> Option<String> {
    let Some(value) = value else {
        errors.push(FieldError::new(field, "is required"));
        return None;
    };
    let trimmed = value.trim();
    let n_chars = trimmed.chars().count();
    let problem = if n_chars == 0 {
        Some("must not be empty".to_owned())
    } else if n_chars > max {
        Some(format!("must be at most {max} characters"))
    } else if trimmed.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else {
        None
    };
    match problem {
        Some(message) => {
            errors.push(FieldError::new(field, message));
            None
        }
        None => Some(trimmed.to_owned()),
    }
}

impl NewConsent {
    /// Checks every field against the server's clock `now`; returns them checked, or every
    /// problem found.
    pub fn validate(&self, now: Timestamp) -> Result<ConsentFields, Vec<FieldError>> {
        let mut errors = Vec::new();
        let subject = text(&mut errors, "subject", self.subject.as_ref(), 200);
        let given_at = match &self.given_at {
            None => Some(now),
            Some(value) => match value.trim().parse::<Timestamp>() {
                Err(error) => {
                    errors.push(FieldError::new("given_at", error.to_string()));
                    None
                }
                Ok(at) if at.unix_millis() > now.unix_millis() + GIVEN_AT_TOLERANCE_MILLIS => {
                    errors.push(FieldError::new("given_at", "must not be in the future"));
                    None
                }
                Ok(at) => Some(at),
            },
        };
        let method = match &self.method {
            None => {
                errors.push(FieldError::new("method", "is required"));
                None
            }
            Some(value) => match value.parse::<ConsentMethod>() {
                Ok(method) => Some(method),
                Err(error) => {
                    errors.push(FieldError::new("method", error.to_string()));
                    None
                }
            },
        };
        let notice_version = text(&mut errors, "notice_version", self.notice_version.as_ref(), 64);
        let purpose = text(&mut errors, "purpose", self.purpose.as_ref(), 500);
        let retention_term = text(&mut errors, "retention_term", self.retention_term.as_ref(), 200);
        let recorded_by = text(&mut errors, "recorded_by", self.recorded_by.as_ref(), 100);
        match (subject, given_at, method, notice_version, purpose, retention_term, recorded_by) {
            (
                Some(subject),
                Some(given_at),
                Some(method),
                Some(notice_version),
                Some(purpose),
                Some(retention_term),
                Some(recorded_by),
            ) if errors.is_empty() => Ok(ConsentFields {
                subject,
                given_at,
                method,
                notice_version,
                purpose,
                retention_term,
                recorded_by,
            }),
            _ => Err(errors),
        }
    }
}

/// A stored consent record, as `POST`/`GET /api/persons/{id}/consent` return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentView {
    /// The record's id.
    pub id: i64,
    /// The person it is for.
    pub person_id: i64,
    /// Who gave it.
    pub subject: String,
    /// When it was given.
    pub given_at: Timestamp,
    /// How: `written`, `electronic`, `verbal` or `other`.
    pub method: String,
    /// The notice version shown.
    pub notice_version: String,
    /// What it covers.
    pub purpose: String,
    /// For how long.
    pub retention_term: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// When the server stored it.
    pub recorded_at: Timestamp,
}

/// Checks an explicit retention date (the `retain_until` of a person body): a `YYYY-MM-DD`
/// date from `today` to [`MAX_RETAIN_YEARS`] years ahead.
pub fn validate_retain_until(value: &str, today: Date) -> Result<Date, FieldError> {
    let field = "retain_until";
    let date = value.trim().parse::<Date>().map_err(|e| FieldError::new(field, e.to_string()))?;
    if date < today {
        return Err(FieldError::new(field, "must not be in the past"));
    }
    if date.unix_days() - today.unix_days() > MAX_RETAIN_YEARS * 366 {
        return Err(FieldError::new(field, format!("must be within {MAX_RETAIN_YEARS} years")));
    }
    Ok(date)
}

/// `GET /api/privacy/policy`: what is kept, for how long, and on what basis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrivacyPolicy {
    /// The privacy notice version in force (`DDFR_PRIVACY_NOTICE_VERSION`).
    pub notice_version: String,
    /// Whether a consent record is required before a face is enrolled
    /// (`DDFR_REQUIRE_CONSENT`).
    pub consent_required: bool,
    /// Days an enrolled person is kept after their last match, or their creation if never
    /// matched, unless a `retain_until` date is set on them (`DDFR_RETENTION_DAYS`).
    pub person_retention_days: u32,
    /// The person rule in a sentence.
    pub person_retention: String,
    /// Whether recurring unknown visitors are kept (`DDFR_UNKNOWN_VISITORS`).
    pub unknown_visitors: bool,
    /// Days an unknown visitor not seen again is kept (`DDFR_UNKNOWN_RETENTION_DAYS`); `null`
    /// when the feature is off (then none is kept).
    pub unknown_retention_days: Option<u64>,
    /// How long the audit log is kept, in a sentence.
    pub audit_retention: String,
    /// How often expired persons and visitors are deleted, in hours (also at every start).
    pub purge_interval_hours: u64,
    /// What is stored.
    pub stored: Vec<String>,
    /// What is never stored.
    pub never_stored: Vec<String>,
}

/// The layout version of the export archive.
pub const EXPORT_ARCHIVE_VERSION: u32 = 1;

/// One file of the export archive, as `manifest.json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ManifestFile {
    /// The path inside the archive, e.g. `faces/12.jpg`.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// One stored embedding in the export archive's `embeddings.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArchivedEmbedding {
    /// The face sample it belongs to (`faces/<face_id>.jpg`).
    pub face_id: i64,
    /// The embedding model id.
    pub model: String,
    /// The vector's length.
    pub dim: usize,
    /// The unit-norm vector as stored.
    pub vector: Vec<f32>,
}

/// `manifest.json` of the export archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportManifest {
    /// `ddfr-person-export`.
    pub format: String,
    /// [`EXPORT_ARCHIVE_VERSION`].
    pub version: u32,
    /// When the export was made.
    pub exported_at: Timestamp,
    /// The exported person.
    pub person_id: i64,
    /// Every other file of the archive.
    pub files: Vec<ManifestFile>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_json_body;

    fn now() -> Timestamp {
        "2025-06-15T12:00:00Z".parse().unwrap()
    }

    const VALID: &str = r#"{"subject":" Anna Rossi ","method":"written","notice_version":"2025-01",
        "purpose":"recognise family members at the door","retention_term":"until withdrawn",
        "recorded_by":"Marco"}"#;

    #[test]
    fn a_valid_consent_is_trimmed_and_stamped_now() {
        let fields = parse_json_body::<NewConsent>(VALID.as_bytes()).unwrap().validate(now());
        let fields = fields.unwrap();
        assert_eq!(fields.subject, "Anna Rossi");
        assert_eq!(fields.given_at, now());
        assert_eq!(fields.method, ConsentMethod::Written);
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let body = r#"{"subject":"","given_at":"2025-06-16T12:00:00Z","method":"telepathy"}"#;
        let errors =
            parse_json_body::<NewConsent>(body.as_bytes()).unwrap().validate(now()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "subject",
                "given_at",
                "method",
                "notice_version",
                "purpose",
                "retention_term",
                "recorded_by"
            ]
        );
        assert_eq!(errors[1].message, "must not be in the future");
        let unknown = parse_json_body::<NewConsent>(br#"{"signature":"x"}"#).unwrap_err();
        assert_eq!(unknown[0].field, "signature");
    }

    #[test]
    fn retain_until_is_today_or_later_within_a_century() {
        let today: Date = "2025-06-15".parse().unwrap();
        assert!(validate_retain_until("2025-06-15", today).is_ok());
        assert_eq!(
            validate_retain_until("2025-06-14", today).unwrap_err().message,
            "must not be in the past"
        );
        assert!(validate_retain_until("2125-06-14", today).is_ok());
        assert!(validate_retain_until("2126-06-16", today).is_err());
        assert!(validate_retain_until("15/06/2026", today).is_err());
    }
}
