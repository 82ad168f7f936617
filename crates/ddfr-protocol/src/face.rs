//! The seed's face object and frame reply, sent on `/ws` and by `POST /api/recognize`.
//!
//! The null rules of `websocket-api.md` live here and only here: an unidentified face has
//! `name` `"Unknown"`, `age` 0 and `surname`, `relationship`, `role` `null`. The extras
//! (`person_id`, `similarity`, `false_accept_rate`, `score`, `track_id`, `unknown_id`) are
//! omitted when absent, so seed clients
//! see exactly the seed's fields.

use ddfr_core::{PersonId, PixelBox};
use serde::{Deserialize, Serialize};

use crate::date::{Date, age_on};
use crate::person::{Relationship, Role};

/// The `name` of a face nobody was identified for.
pub const UNKNOWN_NAME: &str = "Unknown";

/// The text sent instead of a [`FrameReply`] when a frame cannot be decoded: JSON `null`.
pub const UNDECODABLE_REPLY: &str = "null";

/// The reply to an undecodable frame, JSON `null`; the connection stays open.
pub const fn undecodable_reply() -> &'static str {
    UNDECODABLE_REPLY
}

/// What a face object needs to know about an identified person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonSummary {
    /// The person's id.
    pub id: PersonId,
    /// First name.
    pub name: String,
    /// Surname.
    pub surname: String,
    /// Birthday, from which the age is computed on the day of the frame.
    pub birthday: Date,
    /// Relationship.
    pub relationship: Relationship,
    /// Role.
    pub role: Role,
}

/// One face in a frame reply: the seed's fields with the seed's types, plus optional extras.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WsFace {
    /// `"{top}_{left}"`, unique within a frame.
    pub id: String,
    /// Top edge in frame pixels.
    pub top: i32,
    /// Right edge in frame pixels.
    pub right: i32,
    /// Bottom edge in frame pixels.
    pub bottom: i32,
    /// Left edge in frame pixels.
    pub left: i32,
    /// First name, or `"Unknown"`.
    pub name: String,
    /// Surname, or `null` when unidentified.
    pub surname: Option<String>,
    /// Whole years today, or 0 when unidentified.
    pub age: i64,
    /// Relationship, or `null` when unidentified.
    pub relationship: Option<Relationship>,
    /// Role, or `null` when unidentified.
    pub role: Option<Role>,
    /// The identified person's id; omitted when unidentified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_id: Option<i64>,
    /// Cosine similarity of the best match (1.0 identical); omitted when unidentified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    /// Estimated chance that a different person's face scores at least `similarity` against
    /// one enrolled sample, for the active model (see docs/evaluation.md); omitted when
    /// unidentified or when the model has no estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_accept_rate: Option<f64>,
    /// Detector confidence in `[0, 1]`; omitted when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// A per-connection id that follows the same face across frames; omitted when untracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<u64>,
    /// The anonymous id of a recurring unknown visitor (opt-in feature), stable across
    /// connections; omitted for identified faces and when the feature is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_id: Option<i64>,
}

/// The seed's face id: `"{top}_{left}"`.
pub fn face_id(pixel_box: PixelBox) -> String {
    format!("{}_{}", pixel_box.top, pixel_box.left)
}

impl WsFace {
    /// A face nobody was identified for.
    pub fn unknown(pixel_box: PixelBox) -> Self {
        Self {
            id: face_id(pixel_box),
            top: pixel_box.top,
            right: pixel_box.right,
            bottom: pixel_box.bottom,
            left: pixel_box.left,
            name: UNKNOWN_NAME.to_owned(),
            surname: None,
            age: 0,
            relationship: None,
            role: None,
            person_id: None,
            similarity: None,
            false_accept_rate: None,
            score: None,
            track_id: None,
            unknown_id: None,
        }
    }

    /// A face identified as `person` with cosine `similarity`; the age is computed for `today`.
    pub fn identified(
        pixel_box: PixelBox,
        person: &PersonSummary,
        similarity: f32,
        today: Date,
    ) -> Self {
        Self {
            name: person.name.clone(),
            surname: Some(person.surname.clone()),
            age: age_on(person.birthday, today),
            relationship: Some(person.relationship),
            role: Some(person.role),
            person_id: Some(person.id.0),
            similarity: Some(similarity),
            ..Self::unknown(pixel_box)
        }
    }

    /// The same face with its detector score.
    #[must_use]
    pub fn with_score(mut self, score: f32) -> Self {
        self.score = Some(score);
        self
    }

    /// The same (identified) face with the estimated false-accept rate of its similarity.
    #[must_use]
    pub fn with_false_accept_rate(mut self, far: f64) -> Self {
        self.false_accept_rate = Some(far);
        self
    }

    /// The same face with a track id.
    #[must_use]
    pub fn with_track_id(mut self, track_id: u64) -> Self {
        self.track_id = Some(track_id);
        self
    }

    /// The same (unidentified) face with its recurring-visitor id.
    #[must_use]
    pub fn with_unknown_id(mut self, unknown_id: i64) -> Self {
        self.unknown_id = Some(unknown_id);
        self
    }

    /// True when nobody was identified.
    pub fn is_unknown(&self) -> bool {
        self.person_id.is_none() && self.name == UNKNOWN_NAME && self.surname.is_none()
    }
}

/// The only status a frame reply has; failures are `null`, not a status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ReplyStatus {
    /// The frame was processed.
    #[default]
    Ok,
}

/// `{"status": "ok", "faces": [...]}`: the reply to a decodable frame or crops message, and the
/// body of `POST /api/recognize`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FrameReply {
    /// Always `"ok"`.
    pub status: ReplyStatus,
    /// Faces in the frame, in detection order; empty when there are none.
    pub faces: Vec<WsFace>,
}

impl FrameReply {
    /// A reply listing `faces`.
    pub fn new(faces: Vec<WsFace>) -> Self {
        Self { status: ReplyStatus::Ok, faces }
    }
}

/// One image's result from `ddfr recognize IMAGE...` (one JSON object per image).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecognizedImage {
    /// The image path as given on the command line.
    pub image: String,
    /// The faces found, with detector scores.
    pub faces: Vec<WsFace>,
    /// Why the image could not be processed, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pixel_box() -> PixelBox {
        PixelBox { top: 100, right: 300, bottom: 400, left: 200 }
    }

    fn john() -> PersonSummary {
        PersonSummary {
            id: PersonId(42),
            name: "John".into(),
            surname: "Doe".into(),
            birthday: "1994-01-10".parse().unwrap(),
            relationship: Relationship::Amico,
            role: Role::Guest,
        }
    }

    #[test]
    fn unknown_face_matches_the_seed_example_exactly() {
        let reply = FrameReply::new(vec![WsFace::unknown(pixel_box())]);
        let text = serde_json::to_string(&reply).unwrap();
        assert_eq!(
            text,
            r#"{"status":"ok","faces":[{"id":"100_200","top":100,"right":300,"bottom":400,"left":200,"name":"Unknown","surname":null,"age":0,"relationship":null,"role":null}]}"#
        );
        assert!(reply.faces[0].is_unknown());
    }

    #[test]
    fn identified_face_has_the_seed_fields_and_types() {
        let today = "2024-06-15".parse().unwrap();
        let face = WsFace::identified(pixel_box(), &john(), 0.8125, today).with_score(0.5);
        let value = serde_json::to_value(&face).unwrap();
        assert_eq!(
            value,
            json!({
                "id": "100_200", "top": 100, "right": 300, "bottom": 400, "left": 200,
                "name": "John", "surname": "Doe", "age": 30, "relationship": "amico", "role": "guest",
                "person_id": 42, "similarity": 0.8125, "score": 0.5
            })
        );
        assert!(value["age"].is_i64() && value["top"].is_i64() && value["id"].is_string());
        assert!(!face.is_unknown());
        let back: WsFace = serde_json::from_value(value).unwrap();
        assert_eq!(back, face);
    }

    #[test]
    fn empty_and_undecodable_replies() {
        assert_eq!(
            serde_json::to_string(&FrameReply::default()).unwrap(),
            r#"{"status":"ok","faces":[]}"#
        );
        assert_eq!(undecodable_reply(), "null");
        assert_eq!(serde_json::from_str::<Option<FrameReply>>(undecodable_reply()).unwrap(), None);
        assert!(serde_json::from_str::<FrameReply>(r#"{"status":"error","faces":[]}"#).is_err());
    }

    #[test]
    fn seed_examples_deserialise() {
        let seed = r#"{"status":"ok","faces":[{"id":"123_456","top":100,"right":300,"bottom":400,"left":200,
            "name":"John","surname":"Doe","age":30,"relationship":"amico","role":"guest"}]}"#;
        let reply: FrameReply = serde_json::from_str(seed).unwrap();
        assert_eq!(reply.faces[0].relationship, Some(Relationship::Amico));
        assert_eq!(reply.faces[0].track_id, None);
        let with_track = WsFace::unknown(pixel_box()).with_track_id(9);
        assert_eq!(serde_json::to_value(&with_track).unwrap()["track_id"], 9);
    }
}
