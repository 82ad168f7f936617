//! What a face is called on screen: the server's answer (known or unknown) or the local
//! detector's score (offline demo).

use ddfr_protocol::{FrameReply, UNKNOWN_NAME};
use ddfr_wasm::DetectedFace;

/// One box to draw.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Label {
    pub(super) left: f32,
    pub(super) top: f32,
    pub(super) right: f32,
    pub(super) bottom: f32,
    pub(super) text: String,
    /// Identified by the server (solid green) vs unknown (dashed orange) vs local-only (blue).
    pub(super) kind: LabelKind,
}

/// How a box is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LabelKind {
    Known,
    Unknown,
    Local,
}

/// The labels of a `/ws` answer: name, surname, age, relationship and role for identified
/// faces, "Unknown" for the others.
pub(super) fn labels_from_reply(reply: &FrameReply) -> Vec<Label> {
    reply
        .faces
        .iter()
        .map(|face| {
            let known = face.name != UNKNOWN_NAME;
            let text = if known {
                let mut parts =
                    vec![format!("{} {}", face.name, face.surname.as_deref().unwrap_or_default())];
                parts.push(face.age.to_string());
                if let Some(relationship) = face.relationship {
                    parts.push(relationship.as_str().to_owned());
                }
                if let Some(role) = face.role {
                    parts.push(role.as_str().to_owned());
                }
                parts.join(" · ")
            } else {
                UNKNOWN_NAME.to_owned()
            };
            Label {
                left: face.left as f32,
                top: face.top as f32,
                right: face.right as f32,
                bottom: face.bottom as f32,
                text,
                kind: if known { LabelKind::Known } else { LabelKind::Unknown },
            }
        })
        .collect()
}

/// The offline demo's labels: the detector's score.
pub(super) fn local_labels(faces: &[DetectedFace]) -> Vec<Label> {
    faces
        .iter()
        .map(|f| Label {
            left: f.left,
            top: f.top,
            right: f.right,
            bottom: f.bottom,
            text: format!("face {:.0}%", f.score * 100.0),
            kind: LabelKind::Local,
        })
        .collect()
}
