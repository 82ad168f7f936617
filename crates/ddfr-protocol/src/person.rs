//! Person and face-sample bodies of the REST API, and their field-level validation.
//!
//! Request bodies (`NewPerson`, `PersonPatch`) keep every field as received (`Option<String>`),
//! so that a missing field or an unknown enum value becomes a [`FieldError`] naming the field
//! instead of an opaque deserialisation error. [`NewPerson::validate`] and
//! [`PersonPatch::validate`] turn them into the checked values [`PersonFields`] and
//! [`PersonChanges`], which is what the store accepts.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::date::{Date, Timestamp, age_on};

/// Longest accepted name or surname, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 100;
/// Oldest accepted age in years; a birthday further back is a typo.
pub const MAX_AGE_YEARS: i64 = 150;

/// How a person relates to the household. The values are the seed's Italian enum values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Relationship {
    /// Family.
    Famiglia,
    /// Partner.
    Partner,
    /// Friend.
    Amico,
    /// Colleague.
    Collega,
    /// Acquaintance.
    Conoscente,
    /// Anything else; the default.
    Altro,
}

impl Relationship {
    /// Every value, in documentation order.
    pub const ALL: [Relationship; 6] = [
        Relationship::Famiglia,
        Relationship::Partner,
        Relationship::Amico,
        Relationship::Collega,
        Relationship::Conoscente,
        Relationship::Altro,
    ];

    /// The wire (and database) spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Relationship::Famiglia => "famiglia",
            Relationship::Partner => "partner",
            Relationship::Amico => "amico",
            Relationship::Collega => "collega",
            Relationship::Conoscente => "conoscente",
            Relationship::Altro => "altro",
        }
    }
}

/// A text that is not one of an enum's wire spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}; expected one of: {expected}")]
pub struct UnknownVariant {
    /// Which enum was being parsed.
    pub kind: &'static str,
    /// The text received (truncated to a few characters).
    pub value: String,
    /// The accepted spellings, comma-separated.
    pub expected: &'static str,
}

/// Longest piece of a rejected value echoed back in an error message.
const MAX_ECHOED_CHARS: usize = 40;

fn unknown(kind: &'static str, value: &str, expected: &'static str) -> UnknownVariant {
    UnknownVariant { kind, value: value.chars().take(MAX_ECHOED_CHARS).collect(), expected }
}

impl FromStr for Relationship {
    type Err = UnknownVariant;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Relationship::ALL.into_iter().find(|value| value.as_str() == text).ok_or_else(|| {
            unknown("relationship", text, "famiglia, partner, amico, collega, conoscente, altro")
        })
    }
}

impl fmt::Display for Relationship {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a person may do: a `user` of the household or a `guest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A member of the household.
    User,
    /// A visitor; the default, as the least privileged role.
    Guest,
}

impl Role {
    /// Every value.
    pub const ALL: [Role; 2] = [Role::User, Role::Guest];

    /// The wire (and database) spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Guest => "guest",
        }
    }
}

impl FromStr for Role {
    type Err = UnknownVariant;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|value| value.as_str() == text)
            .ok_or_else(|| unknown("role", text, "user, guest"))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One invalid field of a request body. The server lists them in a 422 `validation_error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// The field name as on the wire, or `body` when the JSON itself is malformed.
    pub field: String,
    /// What is wrong, in a sentence for humans.
    pub message: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// The `field` of a [`FieldError`] about the JSON as a whole.
pub const BODY_FIELD: &str = "body";

/// Deserialises a JSON request body, turning a serde error into a [`FieldError`]: an unknown
/// field is reported under its own name, anything else (bad JSON, a wrong type) under `body`.
pub fn parse_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Vec<FieldError>> {
    // serde would also read a struct from a JSON array, field by position (`[]` was an empty
    // PATCH); every body of the API is a JSON object.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(vec![FieldError::new(BODY_FIELD, "the body must be a JSON object")]);
    }
    serde_json::from_slice(bytes).map_err(|error| {
        let message = error.to_string();
        let field = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
            .map_or(BODY_FIELD, |(name, _)| name)
            .to_owned();
        vec![FieldError { field, message }]
    })
}

/// Wraps a present value (including `null`) in `Some`, so a PATCH can tell an explicit `null`
/// (`Some(None)`, rejected) from an absent field (`None`, left unchanged).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// `POST /api/persons` body. Fields stay as received until [`NewPerson::validate`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewPerson {
    /// First name; required, 1 to 100 characters after trimming.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String, max_length = 100))]
    pub name: Option<String>,
    /// Surname; required, 1 to 100 characters after trimming.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String, max_length = 100))]
    pub surname: Option<String>,
    /// Birthday as `YYYY-MM-DD`; required, not in the future, age at most 150.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = Date))]
    pub birthday: Option<String>,
    /// Relationship; `altro` when absent.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Relationship>))]
    pub relationship: Option<String>,
    /// Role; `guest` when absent.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Role>))]
    pub role: Option<String>,
    /// Keep the person until this day (`YYYY-MM-DD`, today to 100 years ahead), whatever
    /// their matches; absent: the server's default rule (see `GET /api/privacy/policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Date>))]
    pub retain_until: Option<String>,
}

/// `PATCH /api/persons/{id}` body: only the fields present change; `null` is rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PersonPatch {
    /// New first name.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 100))]
    pub name: Option<Option<String>>,
    /// New surname.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 100))]
    pub surname: Option<Option<String>>,
    /// New birthday, `YYYY-MM-DD`.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Date>))]
    pub birthday: Option<Option<String>>,
    /// New relationship.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Relationship>))]
    pub relationship: Option<Option<String>>,
    /// New role.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Role>))]
    pub role: Option<Option<String>>,
    /// New explicit retention date (`YYYY-MM-DD`, today to 100 years ahead); `null` removes
    /// it, so the server's default rule applies again.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Date>, nullable = true))]
    pub retain_until: Option<Option<String>>,
}

/// A person's fields, checked: trimmed non-empty names, a plausible birthday, known enums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonFields {
    /// Trimmed first name, 1 to 100 characters.
    pub name: String,
    /// Trimmed surname, 1 to 100 characters.
    pub surname: String,
    /// Not in the future, at most 150 years back.
    pub birthday: Date,
    /// Relationship.
    pub relationship: Relationship,
    /// Role.
    pub role: Role,
}

/// Checked changes to a person; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonChanges {
    /// New trimmed first name.
    pub name: Option<String>,
    /// New trimmed surname.
    pub surname: Option<String>,
    /// New birthday.
    pub birthday: Option<Date>,
    /// New relationship.
    pub relationship: Option<Relationship>,
    /// New role.
    pub role: Option<Role>,
}

impl PersonChanges {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `fields` with these changes applied.
    pub fn apply_to(&self, fields: &PersonFields) -> PersonFields {
        PersonFields {
            name: self.name.clone().unwrap_or_else(|| fields.name.clone()),
            surname: self.surname.clone().unwrap_or_else(|| fields.surname.clone()),
            birthday: self.birthday.unwrap_or(fields.birthday),
            relationship: self.relationship.unwrap_or(fields.relationship),
            role: self.role.unwrap_or(fields.role),
        }
    }
}

/// Collects field errors while checking one body.
struct Checker {
    today: Date,
    errors: Vec<FieldError>,
}

impl Checker {
    fn fail<T>(&mut self, field: &str, message: impl Into<String>) -> Option<T> {
        self.errors.push(FieldError::new(field, message));
        None
    }

    fn name(&mut self, field: &str, value: &str) -> Option<String> {
        let trimmed = value.trim();
        let n_chars = trimmed.chars().count();
        if n_chars == 0 {
            self.fail(field, "must not be empty")
        } else if n_chars > MAX_NAME_CHARS {
            self.fail(field, format!("must be at most {MAX_NAME_CHARS} characters"))
        } else if trimmed.chars().any(char::is_control) {
            self.fail(field, "must not contain control characters")
        } else {
            Some(trimmed.to_owned())
        }
    }

    fn birthday(&mut self, field: &str, value: &str) -> Option<Date> {
        match value.trim().parse::<Date>() {
            Err(error) => self.fail(field, error.to_string()),
            Ok(birthday) if birthday > self.today => self.fail(field, "must not be in the future"),
            Ok(birthday) if age_on(birthday, self.today) > MAX_AGE_YEARS => {
                self.fail(field, format!("gives an age over {MAX_AGE_YEARS} years"))
            }
            Ok(birthday) => Some(birthday),
        }
    }

    fn parsed<T: FromStr<Err = UnknownVariant>>(&mut self, field: &str, value: &str) -> Option<T> {
        match value.parse() {
            Ok(parsed) => Some(parsed),
            Err(error) => self.fail(field, error.to_string()),
        }
    }

    fn required<'v>(&mut self, field: &str, value: Option<&'v String>) -> Option<&'v str> {
        match value {
            Some(value) => Some(value.as_str()),
            None => self.fail(field, "is required"),
        }
    }

    /// A PATCH field: absent is fine, `null` is an error.
    fn not_null<'v>(&mut self, field: &str, value: &'v Option<Option<String>>) -> Option<&'v str> {
        match value {
            None => None,
            Some(None) => self.fail(field, "must not be null"),
            Some(Some(value)) => Some(value.as_str()),
        }
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Vec<FieldError>> {
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ => Err(self.errors),
        }
    }
}

impl NewPerson {
    /// Checks every field against `today`'s date and returns them all checked, or every
    /// problem found (never just the first).
    pub fn validate(&self, today: Date) -> Result<PersonFields, Vec<FieldError>> {
        let mut check = Checker { today, errors: Vec::new() };
        let name = check.required("name", self.name.as_ref()).and_then(|v| check.name("name", v));
        let surname =
            check.required("surname", self.surname.as_ref()).and_then(|v| check.name("surname", v));
        let birthday = check
            .required("birthday", self.birthday.as_ref())
            .and_then(|v| check.birthday("birthday", v));
        let relationship = match &self.relationship {
            None => Some(Relationship::Altro),
            Some(value) => check.parsed("relationship", value),
        };
        let role = match &self.role {
            None => Some(Role::Guest),
            Some(value) => check.parsed("role", value),
        };
        let fields = (|| {
            Some(PersonFields {
                name: name?,
                surname: surname?,
                birthday: birthday?,
                relationship: relationship?,
                role: role?,
            })
        })();
        check.finish(fields)
    }

    /// The explicit retention date, checked against `today`; `None` when absent.
    pub fn retain_until(&self, today: Date) -> Result<Option<Date>, Vec<FieldError>> {
        self.retain_until
            .as_deref()
            .map(|value| crate::privacy::validate_retain_until(value, today))
            .transpose()
            .map_err(|error| vec![error])
    }
}

impl PersonPatch {
    /// Checks the fields present against `today`'s date.
    pub fn validate(&self, today: Date) -> Result<PersonChanges, Vec<FieldError>> {
        let mut check = Checker { today, errors: Vec::new() };
        let name = check.not_null("name", &self.name).map(|v| check.name("name", v));
        let surname = check.not_null("surname", &self.surname).map(|v| check.name("surname", v));
        let birthday =
            check.not_null("birthday", &self.birthday).map(|v| check.birthday("birthday", v));
        let relationship = check
            .not_null("relationship", &self.relationship)
            .map(|v| check.parsed("relationship", v));
        let role = check.not_null("role", &self.role).map(|v| check.parsed("role", v));
        // Each entry is None (absent), Some(None) (invalid, already reported) or Some(Some(v)).
        let changes = PersonChanges {
            name: name.flatten(),
            surname: surname.flatten(),
            birthday: birthday.flatten(),
            relationship: relationship.flatten(),
            role: role.flatten(),
        };
        check.finish(Some(changes))
    }

    /// The retention change, checked against `today`: `None` when absent, `Some(None)` to
    /// remove the explicit date (`null`), `Some(Some(date))` to set it.
    pub fn retain_until(&self, today: Date) -> Result<Option<Option<Date>>, Vec<FieldError>> {
        match &self.retain_until {
            None => Ok(None),
            Some(None) => Ok(Some(None)),
            Some(Some(value)) => crate::privacy::validate_retain_until(value, today)
                .map(|date| Some(Some(date)))
                .map_err(|error| vec![error]),
        }
    }
}

/// A person as the REST API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PersonView {
    /// The person's id.
    pub id: i64,
    /// First name.
    pub name: String,
    /// Surname.
    pub surname: String,
    /// Birthday, `YYYY-MM-DD`.
    pub birthday: Date,
    /// Whole years today (UTC), from `birthday`.
    pub age: i64,
    /// Relationship.
    pub relationship: Relationship,
    /// Role.
    pub role: Role,
    /// Number of enrolled face samples.
    pub faces: u64,
    /// When the person was created.
    pub created_at: Timestamp,
    /// When the person's fields last changed.
    pub updated_at: Timestamp,
    /// The last day the person is kept: the explicit date set on them, or the server's
    /// retention period after their last match (or creation). Absent from older servers.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Date>))]
    pub retain_until: Option<Date>,
}

/// A page of persons: `GET /api/persons?limit=&offset=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PersonList {
    /// The persons of this page, by id.
    pub items: Vec<PersonView>,
    /// Number of persons in all pages.
    pub total: u64,
}

/// Page size when `limit` is absent.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
/// Largest page size served; larger requests are clamped.
pub const MAX_PAGE_LIMIT: u32 = 500;

/// Query of `GET /api/persons`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, default 50, at most 500.
    pub limit: Option<u32>,
    /// Persons to skip, default 0.
    pub offset: Option<u32>,
}

impl PageQuery {
    /// The page size to use: the default when absent, clamped to 1..=[`MAX_PAGE_LIMIT`].
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_PAGE_LIMIT).clamp(1, MAX_PAGE_LIMIT)
    }

    /// The number of persons to skip.
    pub fn offset(&self) -> u32 {
        self.offset.unwrap_or(0)
    }
}

/// An enrolled face sample, as `POST`/`GET /api/persons/{id}/faces` return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FaceView {
    /// The face sample's id.
    pub id: i64,
    /// Top edge of the face in the enrolled photo, pixels.
    pub top: i32,
    /// Right edge, pixels.
    pub right: i32,
    /// Bottom edge, pixels.
    pub bottom: i32,
    /// Left edge, pixels.
    pub left: i32,
    /// When the sample was enrolled.
    pub created_at: Timestamp,
}

/// What happened to one photo of a multi-photo enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EnrollStatus {
    /// Stored as a new face sample.
    Enrolled,
    /// Not stored: a near-duplicate of a sample the person already has.
    Skipped,
    /// Refused by the quality gate; `code` says why.
    Rejected,
}

/// The result for one photo of `POST /api/persons/{id}/faces/batch`, in upload order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhotoResult {
    /// Position of the photo among the uploaded `image` fields, from 0.
    pub index: usize,
    /// The uploaded file name, when the form gave one.
    pub filename: Option<String>,
    /// What happened.
    pub status: EnrollStatus,
    /// `near_duplicate` when skipped; when rejected one of `no_face`, `multiple_faces`,
    /// `face_too_small`, `blurry`, `extreme_pose`, `looks_like_other_person`,
    /// `invalid_image`, `payload_too_large`, `unsupported_format`; `null` when enrolled.
    pub code: Option<String>,
    /// A human explanation when skipped or rejected.
    pub message: Option<String>,
    /// The new sample when enrolled; the existing sample it duplicates when skipped.
    pub face: Option<FaceView>,
}

/// The reply of `POST /api/persons/{id}/faces/batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchEnrollReply {
    /// Photos stored.
    pub enrolled: usize,
    /// Photos skipped as near-duplicates.
    pub skipped: usize,
    /// Photos refused.
    pub rejected: usize,
    /// One entry per uploaded photo, in order.
    pub results: Vec<PhotoResult>,
}

impl BatchEnrollReply {
    /// Counts the results.
    pub fn new(results: Vec<PhotoResult>) -> Self {
        let count = |status| results.iter().filter(|r| r.status == status).count();
        Self {
            enrolled: count(EnrollStatus::Enrolled),
            skipped: count(EnrollStatus::Skipped),
            rejected: count(EnrollStatus::Rejected),
            results,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        "2024-06-15".parse().unwrap()
    }

    fn new_person(json: &str) -> Result<PersonFields, Vec<FieldError>> {
        parse_json_body::<NewPerson>(json.as_bytes())?.validate(today())
    }

    fn fields_of(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_valid_person_is_trimmed_and_defaulted() {
        let fields =
            new_person(r#"{"name":"  Anna ","surname":"Rossi","birthday":"1990-05-17"}"#).unwrap();
        assert_eq!(fields.name, "Anna");
        assert_eq!(fields.relationship, Relationship::Altro);
        assert_eq!(fields.role, Role::Guest);
        let fields = new_person(
            r#"{"name":"Anna","surname":"Rossi","birthday":"1990-05-17","relationship":"amico","role":"user"}"#,
        )
        .unwrap();
        assert_eq!((fields.relationship, fields.role), (Relationship::Amico, Role::User));
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let errors = new_person(
            r#"{"name":"   ","birthday":"2030-01-01","relationship":"nemico","role":"admin"}"#,
        )
        .unwrap_err();
        assert_eq!(fields_of(&errors), ["name", "surname", "birthday", "relationship", "role"]);
        assert_eq!(errors[1].message, "is required");
        assert_eq!(errors[2].message, "must not be in the future");
    }

    #[test]
    fn names_and_birthdays_are_bounded() {
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        let json = format!(r#"{{"name":"{long}","surname":"a\nb","birthday":"1870-01-01"}}"#);
        let errors = new_person(&json).unwrap_err();
        assert_eq!(fields_of(&errors), ["name", "surname", "birthday"]);
        // Exactly 100 characters (multi-byte ones included) and exactly 150 years are fine.
        let hundred = "è".repeat(MAX_NAME_CHARS);
        let json = format!(r#"{{"name":"{hundred}","surname":"B","birthday":"1874-06-15"}}"#);
        assert!(new_person(&json).is_ok());
        let errors =
            new_person(r#"{"name":"A","surname":"B","birthday":"1990-02-30"}"#).unwrap_err();
        assert_eq!(errors[0].message, "1990-02-30 is not a calendar date");
        assert!(new_person(r#"{"name":"A","surname":"B","birthday":"2024-06-15"}"#).is_ok());
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_field_errors() {
        let errors = new_person(r#"{"name":"A","surname":"B","birthday":"1990-01-01","age":3}"#)
            .unwrap_err();
        assert_eq!(fields_of(&errors), ["age"]);
        let errors = new_person(r#"{"name":5}"#).unwrap_err();
        assert_eq!(fields_of(&errors), [BODY_FIELD]);
        let errors = new_person("not json").unwrap_err();
        assert_eq!(fields_of(&errors), [BODY_FIELD]);
    }

    #[test]
    fn patches_change_only_present_fields_and_reject_null() {
        let patch: PersonPatch =
            parse_json_body(br#"{"surname":" Bianchi ","role":"user"}"#).unwrap();
        let changes = patch.validate(today()).unwrap();
        assert_eq!(changes.surname.as_deref(), Some("Bianchi"));
        assert_eq!(changes.role, Some(Role::User));
        assert_eq!(changes.name, None);
        let before =
            new_person(r#"{"name":"Anna","surname":"Rossi","birthday":"1990-05-17"}"#).unwrap();
        let after = changes.apply_to(&before);
        assert_eq!((after.name.as_str(), after.surname.as_str()), ("Anna", "Bianchi"));

        let empty: PersonPatch = parse_json_body(b"{}").unwrap();
        assert!(empty.validate(today()).unwrap().is_empty());

        let patch: PersonPatch = parse_json_body(br#"{"name":null,"birthday":"x"}"#).unwrap();
        let errors = patch.validate(today()).unwrap_err();
        assert_eq!(fields_of(&errors), ["name", "birthday"]);
        assert_eq!(errors[0].message, "must not be null");
        assert!(parse_json_body::<PersonPatch>(br#"{"id":1}"#).is_err());
    }

    #[test]
    fn retain_until_is_set_cleared_or_left_alone() {
        let patch = |json: &str| parse_json_body::<PersonPatch>(json.as_bytes()).unwrap();
        assert_eq!(patch("{}").retain_until(today()), Ok(None));
        assert_eq!(patch(r#"{"retain_until":null}"#).retain_until(today()), Ok(Some(None)));
        let date: Date = "2030-01-01".parse().unwrap();
        assert_eq!(
            patch(r#"{"retain_until":"2030-01-01"}"#).retain_until(today()),
            Ok(Some(Some(date)))
        );
        let errors = patch(r#"{"retain_until":"2020-01-01"}"#).retain_until(today()).unwrap_err();
        assert_eq!(fields_of(&errors), ["retain_until"]);
        let body =
            r#"{"name":"A","surname":"B","birthday":"1990-01-01","retain_until":"2030-01-01"}"#;
        let person = parse_json_body::<NewPerson>(body.as_bytes()).unwrap();
        assert!(person.validate(today()).is_ok());
        assert_eq!(person.retain_until(today()), Ok(Some(date)));
    }

    #[test]
    fn views_serialise_with_wire_names() {
        let view = PersonView {
            id: 7,
            name: "Anna".into(),
            surname: "Rossi".into(),
            birthday: "1990-05-17".parse().unwrap(),
            age: 34,
            relationship: Relationship::Famiglia,
            role: Role::User,
            faces: 2,
            created_at: Timestamp::from_unix_millis(0),
            updated_at: Timestamp::from_unix_millis(1000),
            retain_until: Some("2027-01-01".parse().unwrap()),
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": 7, "name": "Anna", "surname": "Rossi", "birthday": "1990-05-17", "age": 34,
                "relationship": "famiglia", "role": "user", "faces": 2,
                "created_at": "1970-01-01T00:00:00.000Z", "updated_at": "1970-01-01T00:00:01.000Z",
                "retain_until": "2027-01-01"
            })
        );
        let back: PersonView = serde_json::from_value(json).unwrap();
        assert_eq!(back, view);
    }

    #[test]
    fn page_query_is_clamped() {
        assert_eq!(PageQuery::default().limit(), DEFAULT_PAGE_LIMIT);
        assert_eq!(PageQuery { limit: Some(0), offset: None }.limit(), 1);
        assert_eq!(PageQuery { limit: Some(u32::MAX), offset: Some(3) }.limit(), MAX_PAGE_LIMIT);
    }

    #[test]
    fn enums_round_trip_through_their_spellings() {
        for value in Relationship::ALL {
            assert_eq!(value.as_str().parse::<Relationship>(), Ok(value));
            assert_eq!(serde_json::to_string(&value).unwrap(), format!("\"{value}\""));
        }
        for value in Role::ALL {
            assert_eq!(value.as_str().parse::<Role>(), Ok(value));
        }
        assert!("User".parse::<Role>().is_err());
    }
}
