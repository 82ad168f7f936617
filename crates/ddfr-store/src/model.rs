//! The values the store hands out and takes in, and the row decoding shared by both backends.

use std::time::{SystemTime, UNIX_EPOCH};

use ddfr_core::{Embedding, FaceId, ModelId, PersonId, PixelBox};
use ddfr_protocol::{Date, PersonFields, PersonSummary, Relationship, Role, Timestamp};

use crate::StoreError;

/// A stored person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The person's id; never reused after a delete.
    pub id: PersonId,
    /// First name.
    pub name: String,
    /// Surname.
    pub surname: String,
    /// Birthday.
    pub birthday: Date,
    /// Relationship.
    pub relationship: Relationship,
    /// Role.
    pub role: Role,
    /// Number of enrolled face samples.
    pub n_faces: u64,
    /// When the person was created.
    pub created_at: Timestamp,
    /// When the person's fields last changed.
    pub updated_at: Timestamp,
}

impl Person {
    /// The person's editable fields.
    pub fn fields(&self) -> PersonFields {
        PersonFields {
            name: self.name.clone(),
            surname: self.surname.clone(),
            birthday: self.birthday,
            relationship: self.relationship,
            role: self.role,
        }
    }

    /// What a face object needs to name this person (the server's in-memory person table).
    pub fn summary(&self) -> PersonSummary {
        PersonSummary {
            id: self.id,
            name: self.name.clone(),
            surname: self.surname.clone(),
            birthday: self.birthday,
            relationship: self.relationship,
            role: self.role,
        }
    }
}

/// A face sample to enroll: the crop it was computed from and its embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFace {
    /// The unit-norm embedding.
    pub embedding: Embedding,
    /// The model that computed `embedding`.
    pub model: ModelId,
    /// The face box in the enrolled photo.
    pub bbox: PixelBox,
    /// The face crop, re-encoded as JPEG from pixels (no metadata); kept so embeddings can be
    /// recomputed when the face model changes.
    pub crop_jpeg: Vec<u8>,
}

/// A stored face sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceSample {
    /// The sample's id; never reused after a delete.
    pub id: FaceId,
    /// Whose face it is.
    pub person: PersonId,
    /// The face box in the enrolled photo.
    pub bbox: PixelBox,
    /// When the sample was enrolled.
    pub created_at: Timestamp,
}

/// One stored embedding, as the index is rebuilt from.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEmbedding {
    /// The face sample it belongs to.
    pub face: FaceId,
    /// The person of that face.
    pub person: PersonId,
    /// The unit-norm vector.
    pub embedding: Embedding,
}

/// One embedding of one face sample, with its model (a person's export).
#[derive(Debug, Clone, PartialEq)]
pub struct FaceEmbedding {
    /// The face sample.
    pub face: FaceId,
    /// The model that computed it.
    pub model: ModelId,
    /// The unit-norm vector.
    pub embedding: Embedding,
}

/// How many embeddings of one model (and dimension) are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingModelCount {
    /// The model id.
    pub model: ModelId,
    /// The dimension of its vectors.
    pub dim: usize,
    /// Number of stored embeddings.
    pub n_embeddings: u64,
}

/// Unix milliseconds now. A clock before 1970 reads as 0 rather than failing a write.
pub(crate) fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_unix_millis(millis)
}

/// A `persons` row as both backends read it (with the face count joined in).
pub(crate) struct PersonRow {
    pub id: i64,
    pub name: String,
    pub surname: String,
    pub birthday: String,
    pub relationship: String,
    pub role: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub n_faces: i64,
}

impl PersonRow {
    /// Checks the stored text values: a row that fails was not written by ddfr.
    pub fn into_person(self) -> Result<Person, StoreError> {
        let bad = |column: &str, value: &str| {
            StoreError::integrity(format!("person {}: invalid {column} {value:?}", self.id))
        };
        Ok(Person {
            id: PersonId(self.id),
            birthday: self.birthday.parse().map_err(|_| bad("birthday", &self.birthday))?,
            relationship: self
                .relationship
                .parse()
                .map_err(|_| bad("relationship", &self.relationship))?,
            role: self.role.parse().map_err(|_| bad("role", &self.role))?,
            n_faces: u64::try_from(self.n_faces).unwrap_or(0),
            created_at: Timestamp::from_unix_millis(self.created_at),
            updated_at: Timestamp::from_unix_millis(self.updated_at),
            name: self.name,
            surname: self.surname,
        })
    }
}

/// A `faces` row.
pub(crate) struct FaceRow {
    pub id: i64,
    pub person_id: i64,
    pub top: i64,
    pub right: i64,
    pub bottom: i64,
    pub left: i64,
    pub created_at: i64,
}

impl FaceRow {
    pub fn into_sample(self) -> Result<FaceSample, StoreError> {
        let coordinate = |value: i64| {
            i32::try_from(value).map_err(|_| {
                StoreError::integrity(format!(
                    "face {}: box coordinate {value} out of range",
                    self.id
                ))
            })
        };
        Ok(FaceSample {
            id: FaceId(self.id),
            person: PersonId(self.person_id),
            bbox: PixelBox {
                top: coordinate(self.top)?,
                right: coordinate(self.right)?,
                bottom: coordinate(self.bottom)?,
                left: coordinate(self.left)?,
            },
            created_at: Timestamp::from_unix_millis(self.created_at),
        })
    }
}

/// Decodes a stored vector, checking it against its recorded dimension.
pub(crate) fn decode_embedding(
    face: i64,
    person: i64,
    dim: i64,
    bytes: &[u8],
) -> Result<StoredEmbedding, StoreError> {
    let expected_len = usize::try_from(dim).ok().and_then(|d| d.checked_mul(4));
    if expected_len != Some(bytes.len()) {
        return Err(StoreError::integrity(format!(
            "face {face}: embedding has {} bytes for dimension {dim}",
            bytes.len()
        )));
    }
    let embedding = Embedding::from_le_bytes(bytes).map_err(|error| {
        StoreError::integrity(format!("face {face}: stored embedding is invalid: {error}"))
    })?;
    Ok(StoredEmbedding { face: FaceId(face), person: PersonId(person), embedding })
}

/// Decodes one row of [`crate::sql::EMBEDDINGS_OF_PERSON`].
pub(crate) fn decode_face_embedding(
    face: i64,
    model: String,
    dim: i64,
    bytes: &[u8],
) -> Result<FaceEmbedding, StoreError> {
    let stored = decode_embedding(face, 0, dim, bytes)?;
    Ok(FaceEmbedding { face: stored.face, model: ModelId::new(model), embedding: stored.embedding })
}

/// Fails when `rows` mix dimensions for one model, which ddfr never writes.
pub(crate) fn check_single_dim(
    model: &ModelId,
    rows: &[StoredEmbedding],
) -> Result<(), StoreError> {
    if let Some(first) = rows.first()
        && let Some(other) = rows.iter().find(|row| row.embedding.dim() != first.embedding.dim())
    {
        return Err(StoreError::ModelMismatch {
            model: model.clone(),
            expected_dim: first.embedding.dim(),
            found_dim: other.embedding.dim(),
        });
    }
    Ok(())
}

/// A dimension as the database column holds it.
pub(crate) fn dim_column(embedding: &Embedding) -> i64 {
    i64::try_from(embedding.dim()).unwrap_or(i64::MAX)
}
