//! What a face is called on screen: the server's answer (a known person, a recurring visitor
//! or a stranger) or the local detector's score (offline demo).
//!
//! Pure functions of the reply, so the wording is the same on the overlay, in the list under
//! the video and in the tests.

use ddfr_protocol::{FrameReply, WsFace};
use ddfr_wasm::DetectedFace;

use crate::visitors::visitor_name;

/// One box to draw, with its text.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Label {
    pub(super) left: f32,
    pub(super) top: f32,
    pub(super) right: f32,
    pub(super) bottom: f32,
    /// First line: "Name Surname", "Visitor K7QF", "Unknown" or the detector's score.
    pub(super) title: String,
    /// Second line, possibly empty: age · relationship · role, or what a visitor is.
    pub(super) facts: String,
    /// A short confidence hint for identified faces ("match 0.95").
    pub(super) hint: Option<String>,
    /// How sure the identification is, for the hint's colour.
    pub(super) confidence: Option<Confidence>,
    /// A sentence about the false-accept estimate, for a tooltip and the details line.
    pub(super) details: Option<String>,
    /// Identified by the server (solid green) vs unknown (dashed orange) vs local-only (blue).
    pub(super) kind: LabelKind,
    /// The server's per-connection track id.
    pub(super) track_id: Option<u64>,
    /// The recurring visitor's anonymous id.
    pub(super) unknown_id: Option<i64>,
    /// Cosine similarity of an identified face.
    pub(super) similarity: Option<f32>,
    /// The server's false-accept estimate for `similarity`.
    pub(super) false_accept_rate: Option<f64>,
}

impl Label {
    /// Title, facts and hint on one line: what the text list shows and what tests read.
    pub(super) fn one_line(&self) -> String {
        let mut parts = vec![self.title.clone()];
        parts.extend(self.facts_parts());
        parts.join(" · ")
    }

    /// The second line's pieces: the facts, then the hint.
    pub(super) fn facts_parts(&self) -> Vec<String> {
        let mut parts = Vec::new();
        if !self.facts.is_empty() {
            parts.push(self.facts.clone());
        }
        if let Some(hint) = &self.hint {
            parts.push(hint.clone());
        }
        parts
    }
}

/// How a box is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LabelKind {
    Known,
    Unknown,
    Local,
}

impl LabelKind {
    /// The CSS class and `data-kind` of the list entry.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            LabelKind::Known => "known",
            LabelKind::Unknown => "unknown",
            LabelKind::Local => "local",
        }
    }
}

/// How much to trust a name, from the server's false-accept estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Confidence {
    /// At most 1 in 10 000 other people would match this closely (or no estimate, and the
    /// server named the face).
    Sure,
    /// At most 1 in 100.
    Likely,
    /// More: a blurred or turned face kept its name from earlier frames.
    Unsure,
}

impl Confidence {
    fn of(false_accept_rate: Option<f64>) -> Self {
        match false_accept_rate {
            None => Confidence::Sure,
            Some(far) if far <= 1e-4 => Confidence::Sure,
            Some(far) if far <= 1e-2 => Confidence::Likely,
            Some(_) => Confidence::Unsure,
        }
    }

    /// The CSS class of the hint.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Confidence::Sure => "sure",
            Confidence::Likely => "likely",
            Confidence::Unsure => "unsure",
        }
    }
}

/// The labels of a `/ws` answer.
pub(super) fn labels_from_reply(reply: &FrameReply) -> Vec<Label> {
    reply.faces.iter().map(face_label).collect()
}

/// One face of a `/ws` answer: name, surname, age, relationship, role and a confidence hint
/// when identified; "Visitor K7QF" for a recurring stranger; "Unknown" otherwise.
fn face_label(face: &WsFace) -> Label {
    let known = !face.is_unknown();
    let (title, facts, hint, confidence, details) = if known {
        let name = match face.surname.as_deref() {
            Some(surname) if !surname.is_empty() => format!("{} {surname}", face.name),
            _ => face.name.clone(),
        };
        let mut facts = vec![face.age.to_string()];
        facts.extend(face.relationship.map(|r| r.as_str().to_owned()));
        facts.extend(face.role.map(|r| r.as_str().to_owned()));
        let confidence = Confidence::of(face.false_accept_rate);
        let hint = face.similarity.map(|s| match confidence {
            Confidence::Unsure => format!("match {s:.2}?"),
            _ => format!("match {s:.2}"),
        });
        let details = face.false_accept_rate.map(false_accept_sentence);
        (name, facts.join(" · "), hint, Some(confidence), details)
    } else if let Some(id) = face.unknown_id {
        (visitor_name(id), "not known yet".to_owned(), None, None, None)
    } else {
        (face.name.clone(), String::new(), None, None, None)
    };
    Label {
        left: face.left as f32,
        top: face.top as f32,
        right: face.right as f32,
        bottom: face.bottom as f32,
        title,
        facts,
        hint,
        confidence,
        details,
        kind: if known { LabelKind::Known } else { LabelKind::Unknown },
        track_id: face.track_id,
        unknown_id: if known { None } else { face.unknown_id },
        similarity: face.similarity,
        false_accept_rate: face.false_accept_rate,
    }
}

/// The false-accept estimate in words for a household: how many other people would match the
/// enrolled face this closely.
pub(super) fn false_accept_sentence(far: f64) -> String {
    if !far.is_finite() || far < 1e-6 {
        return "Fewer than 1 in a million other people would match this closely.".to_owned();
    }
    if far >= 0.01 {
        let in_100 = (far * 100.0).round().clamp(1.0, 100.0);
        return format!(
            "About {in_100:.0} in 100 other people would match this closely: worth a second look."
        );
    }
    format!("About 1 in {} other people would match this closely.", round_count(1.0 / far))
}

/// `n` rounded to two significant digits, with thousands separators: 12 345 → "12,000".
fn round_count(n: f64) -> String {
    let digits = n.max(1.0).log10().floor() as i32;
    let unit = 10f64.powi((digits - 1).max(0));
    let rounded = ((n / unit).round() * unit) as u64;
    let text = rounded.to_string();
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i > 0 && (text.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
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
            title: format!("face {:.0}%", f.score * 100.0),
            facts: String::new(),
            hint: None,
            confidence: None,
            details: None,
            kind: LabelKind::Local,
            track_id: None,
            unknown_id: None,
            similarity: None,
            false_accept_rate: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(json: &str) -> WsFace {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn identified_face_has_name_facts_and_hint() {
        let label = face_label(&face(
            r#"{"id":"1_2","top":1,"right":9,"bottom":9,"left":2,"name":"John","surname":"Doe",
            "age":30,"relationship":"amico","role":"guest","person_id":4,"similarity":0.951,
            "false_accept_rate":0.00004,"track_id":3}"#,
        ));
        assert_eq!(label.kind, LabelKind::Known);
        assert_eq!(label.one_line(), "John Doe · 30 · amico · guest · match 0.95");
        assert_eq!(label.confidence, Some(Confidence::Sure));
        assert_eq!(
            label.details.as_deref(),
            Some("About 1 in 25,000 other people would match this closely.")
        );
        assert_eq!(label.track_id, Some(3));
    }

    #[test]
    fn strangers_and_visitors() {
        let stranger = face_label(&face(
            r#"{"id":"1_2","top":1,"right":9,"bottom":9,"left":2,"name":"Unknown","surname":null,
            "age":0,"relationship":null,"role":null}"#,
        ));
        assert_eq!(stranger.one_line(), "Unknown");
        assert_eq!(stranger.kind, LabelKind::Unknown);
        let visitor = face_label(&face(
            r#"{"id":"1_2","top":1,"right":9,"bottom":9,"left":2,"name":"Unknown","surname":null,
            "age":0,"relationship":null,"role":null,"unknown_id":183746552913,"track_id":1}"#,
        ));
        assert_eq!(visitor.kind, LabelKind::Unknown);
        assert_eq!(visitor.title, visitor_name(183_746_552_913));
        assert_eq!(visitor.unknown_id, Some(183_746_552_913));
    }

    #[test]
    fn false_accept_wording() {
        assert!(false_accept_sentence(0.0).starts_with("Fewer than 1 in a million"));
        assert_eq!(
            false_accept_sentence(1.0 / 12_345.0),
            "About 1 in 12,000 other people would match this closely."
        );
        assert!(false_accept_sentence(0.034).starts_with("About 3 in 100"));
        assert_eq!(round_count(987.0), "990");
        assert_eq!(round_count(1_234_567.0), "1,200,000");
        assert_eq!(Confidence::of(Some(0.5)), Confidence::Unsure);
        assert_eq!(Confidence::of(Some(0.001)), Confidence::Likely);
    }
}
