//! The shapes ddfr speaks on the wire: JSON replies and requests, and the binary crops message.
//!
//! Architecture invariant: this is the only crate that defines JSON shapes. It depends on
//! `serde` (plus `ddfr-core` for plain values) and compiles to `wasm32-unknown-unknown`, so the
//! server, the browser app and the end-to-end tests share one definition. It does no IO and
//! never reads the clock: functions that depend on the date take `today` as an argument.
//!
//! # Frame replies (`/ws` and `POST /api/recognize`)
//!
//! [`FrameReply`] serialises as `{"status":"ok","faces":[...]}` with [`WsFace`] objects that
//! follow `websocket-api.md` to the letter; [`WsFace::unknown`] and [`WsFace::identified`] are
//! the only constructors, so the null rules live in one place. An undecodable frame is answered
//! with the text [`undecodable_reply`] (JSON `null`).
//!
//! # The crops message, version 1
//!
//! A client that detects faces itself (the browser app) may send, instead of a whole frame,
//! a binary WebSocket message with the face crops. It can never be mistaken for an image:
//! JPEG starts `FF D8 FF`, PNG `89 50 4E 47`, WebP `52 49 46 46` (`RIFF`), and a crops
//! message starts `44 44 46 43` (`DDFC`).
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 4 | magic `DDFC` (`44 44 46 43`) |
//! | 4 | 1 | version, `1` |
//! | 5 | 4 | header length `H` in bytes, unsigned little-endian, at most 65 536 |
//! | 9 | `H` | header: UTF-8 JSON object, described below |
//! | 9 + `H` | rest | payload: the crops' bytes, concatenated in the order of `faces` |
//!
//! The header (unknown fields are rejected):
//!
//! ```json
//! {
//!   "frame_width": 640, "frame_height": 480,
//!   "faces": [{
//!     "box": {"left": 100.5, "top": 80.0, "right": 220.0, "bottom": 230.0},
//!     "landmarks": {"scheme": "arc_face5", "points": [[130, 130], [190, 131], [160, 160], [138, 195], [182, 196]]},
//!     "score": 0.93,
//!     "crop_left": 80.0, "crop_top": 60.0, "crop_width": 160.0, "crop_height": 190.0,
//!     "width": 112, "height": 112, "encoding": "jpeg", "length": 5321
//!   }]
//! }
//! ```
//!
//! - `frame_width`, `frame_height`: the size of the frame the crops were cut from, 1 to 8192
//!   pixels per side. All coordinates below are in that frame's pixels (x right, y down).
//! - `faces`: 0 to 32 entries; the reply lists faces in the same order.
//! - `box`: the face box, finite, with `left < right`, `top < bottom`, overlapping the frame.
//! - `landmarks` (optional): `scheme` is `arc_face5` (5 points: image-left eye, image-right
//!   eye, nose tip, left and right mouth corners), `blaze_face6` (6 points: left eye, right
//!   eye, nose tip, mouth centre, left and right ear tragion) or `dlib5`; `points` holds
//!   exactly that many finite `[x, y]` pairs.
//! - `score` (optional): the client detector's confidence, in `[0, 1]`.
//! - `crop_left`, `crop_top`, `crop_width`, `crop_height`: the frame rectangle the crop was cut
//!   from, before any resize; finite, positive size, inside the frame (1 pixel of tolerance).
//! - `width`, `height`: the crop's own pixel size as encoded, 1 to 1024 per side. A crop pixel
//!   `(x, y)` maps to frame pixel `(crop_left + x * crop_width / width, crop_top + y *
//!   crop_height / height)`.
//! - `encoding`: `jpeg` (bytes start `FF D8 FF`), `png` (bytes start with the PNG signature) or
//!   `rgb8` (raw RGB, row-major, exactly `width * height * 3` bytes).
//! - `length`: the crop's byte length in the payload, at most 3 MiB. The lengths must add up to
//!   the payload length exactly.
//!
//! The answer is the same JSON as for a full frame, boxes in frame coordinates. A message that
//! fails validation gets `null`, like an undecodable frame. A future incompatible change bumps
//! the version byte; this build rejects other versions with
//! [`CropsError::UnsupportedVersion`].
//!
//! # REST bodies
//!
//! [`NewPerson`] and [`PersonPatch`] are request bodies that keep their fields as received;
//! `validate(today)` returns checked [`PersonFields`] / [`PersonChanges`] or every
//! [`FieldError`] at once, for a 422 `validation_error`. Replies are [`PersonView`],
//! [`PersonList`], [`FaceView`], [`VerifyReply`], [`HealthReply`] and [`ErrorBody`].
//! With the `openapi` feature every wire type derives `utoipa::ToSchema`.
#![warn(missing_docs)]

mod audit;
mod crops;
mod date;
mod events;
mod face;
mod keys;
mod person;
mod privacy;
mod reply;
mod visitor;

pub use audit::{
    AuditList, AuditView, EXPORT_FORMAT, EXPORT_VERSION, ExportedEmbedding, ExportedFace,
    PersonExport,
};
pub use crops::{
    CROP_EDGE_TOLERANCE, CROPS_MAGIC, CROPS_PREFIX_LEN, CROPS_VERSION, CropEncoding, CropRegion,
    CropsError, CropsMessage, FaceCrop, MAX_CROP_BYTES, MAX_CROP_SIDE, MAX_CROPS_FACES,
    MAX_CROPS_HEADER_BYTES, MAX_FRAME_SIDE, encode_crops_message, is_crops_message,
    parse_crops_message,
};
pub use date::{
    Date, DateError, MAX_YEAR, MIN_YEAR, Timestamp, age_on, days_in_month, is_leap_year,
};
pub use events::{
    CameraView, DEFAULT_CAMERA, Event, EventKind, EventsHealth, EventsStatus,
    MAX_CAMERA_NAME_CHARS, MqttHealth, WebhookHealth, is_valid_camera_name,
};
pub use face::{
    FrameReply, PersonSummary, RecognizedImage, ReplyStatus, UNDECODABLE_REPLY, UNKNOWN_NAME,
    WsFace, face_id, undecodable_reply,
};
pub use keys::{CreatedKey, KeyList, KeyView, NewKey};
pub use person::{
    BODY_FIELD, BatchEnrollReply, DEFAULT_PAGE_LIMIT, EnrollStatus, FaceView, FieldError,
    MAX_AGE_YEARS, MAX_NAME_CHARS, MAX_PAGE_LIMIT, NewPerson, PageQuery, PersonChanges,
    PersonFields, PersonList, PersonPatch, PersonView, PhotoResult, Relationship, Role,
    UnknownVariant, parse_json_body,
};
pub use privacy::{
    ArchivedEmbedding, ConsentFields, ConsentMethod, ConsentView, EXPORT_ARCHIVE_VERSION,
    ExportManifest, GIVEN_AT_TOLERANCE_MILLIS, MAX_RETAIN_YEARS, ManifestFile, NewConsent,
    PrivacyPolicy, validate_retain_until,
};
pub use reply::{ErrorBody, ErrorDetail, Health, HealthReply, VerifyReply};
pub use visitor::{UnknownList, UnknownView};

#[cfg(all(test, feature = "openapi"))]
mod openapi_tests {
    use super::*;
    use utoipa::OpenApi;

    #[derive(OpenApi)]
    #[openapi(components(schemas(
        FrameReply,
        WsFace,
        NewPerson,
        PersonPatch,
        PersonView,
        PersonList,
        FaceView,
        VerifyReply,
        HealthReply,
        ErrorBody,
        FieldError,
        Relationship,
        Role,
        Date,
        Timestamp,
        RecognizedImage,
        CropEncoding,
        PageQuery
    )))]
    struct Doc;

    #[test]
    fn every_wire_type_has_a_schema() {
        let doc: serde_json::Value = serde_json::to_value(Doc::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["Date"]["format"], "date");
        assert_eq!(schemas["Timestamp"]["format"], "date-time");
        let required = schemas["NewPerson"]["required"].as_array().unwrap();
        for field in ["name", "surname", "birthday"] {
            assert!(required.iter().any(|r| r == field), "{field} should be required");
        }
        assert_eq!(schemas["Relationship"]["enum"].as_array().unwrap().len(), 6);
        assert!(schemas["VerifyReply"]["properties"]["match"].is_object());
        assert!(schemas["WsFace"]["properties"]["surname"].is_object());
    }
}
