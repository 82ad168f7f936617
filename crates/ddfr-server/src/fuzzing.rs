//! Entry points shared by the `cargo fuzz` targets in `fuzz/` and the corpus replay test below:
//! one function per target, each running exactly the server's own checks and decoders on
//! untrusted bytes, with the server's limits, and asserting what must hold of what they accept.
//!
//! Compiled only for tests and with the `fuzzing` feature (which `fuzz/Cargo.toml` enables), so
//! it is no part of the product's API. A panic here is a finding: either a decoder or parser
//! panicked, or an accepted input broke an invariant (a frame over the size limit, a crop whose
//! pixels disagree with its header, a photo refusal that would be a 5xx).

use axum::http::StatusCode;
use ddfr_engine::EngineError;
use ddfr_engine::decode::{DecodeLimits, decode_image};
use ddfr_protocol::{
    CropsError, MAX_CROPS_FACES, encode_crops_message, is_crops_message, parse_crops_message,
};

use crate::error::ApiError;
use crate::pipeline::decode_crop;
use crate::rest::check_format;

/// Why an input was refused. The server answers each of these (`null` on `/ws`, a 4xx on REST)
/// and keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A full frame the decoder path refused.
    #[error(transparent)]
    Image(#[from] EngineError),
    /// Bytes that are not a valid crops message.
    #[error(transparent)]
    Crops(#[from] CropsError),
    /// A crop of a valid crops message that cannot be used (the server's crop error, which is
    /// private to it, as text).
    #[error("{0}")]
    Crop(String),
    /// A REST photo refused with this status and code.
    #[error("{status} {code}")]
    Photo {
        /// The HTTP status (413, 415 or 422).
        status: StatusCode,
        /// The error code of the JSON body.
        code: &'static str,
    },
}

/// What an accepted input decoded to: the pixel size of each image (one for a frame or photo,
/// one per face for a crops message).
pub type Accepted = Vec<(u32, u32)>;

/// A `/ws` binary message, as `ws.rs` treats it: a crops message when it starts with the crops
/// magic, otherwise a frame decoded under [`DecodeLimits::FRAME`] (magic-byte sniffing, byte
/// limit, JPEG scan limit, header dimensions, then the decoder under its allocation limits).
pub fn decode_frame(bytes: &[u8]) -> Result<Accepted, Refused> {
    if is_crops_message(bytes) {
        return crops_message(bytes);
    }
    let limits = DecodeLimits::FRAME;
    match decode_image(bytes, &limits) {
        Ok(image) => {
            let (width, height) = image.dimensions();
            assert!(
                (1..=limits.max_width).contains(&width)
                    && (1..=limits.max_height).contains(&height),
                "a {width}x{height} frame passed the {}x{} limit",
                limits.max_width,
                limits.max_height
            );
            assert!(bytes.len() <= limits.max_bytes);
            Ok(vec![(width, height)])
        }
        Err(error) => {
            if let EngineError::TooLarge { .. } = error {
                assert!(bytes.len() > limits.max_bytes, "TooLarge for {} bytes", bytes.len());
            }
            Err(error.into())
        }
    }
}

/// A crops message on `/ws`: parsed and validated by `ddfr-protocol`, then every crop decoded
/// and checked against its declared size as `pipeline.rs` does before aligning it. What is
/// accepted must re-encode to a message that parses to the same value.
pub fn crops_message(bytes: &[u8]) -> Result<Accepted, Refused> {
    let message = parse_crops_message(bytes)?;
    assert!(message.faces.len() <= MAX_CROPS_FACES);
    assert!(message.frame_width >= 1 && message.frame_height >= 1);
    let reparsed = parse_crops_message(&encode_crops_message(&message))
        .unwrap_or_else(|error| panic!("an accepted crops message does not re-parse: {error}"));
    assert_eq!(reparsed, message, "an accepted crops message does not round-trip");
    let mut sizes = Vec::with_capacity(message.faces.len());
    for (index, crop) in message.faces.iter().enumerate() {
        let image = decode_crop(index, crop).map_err(|error| Refused::Crop(error.to_string()))?;
        assert_eq!(image.dimensions(), (crop.width, crop.height), "crop {index}");
        sizes.push(image.dimensions());
    }
    Ok(sizes)
}

/// A REST photo (enrollment, recognize, verify): the upload's format and size check, then the
/// decode under [`DecodeLimits::PHOTO`] (EXIF orientation applied), with refusals mapped to
/// their HTTP errors as the handlers map them. A refusal is never a 5xx.
pub fn photo_upload(bytes: &[u8]) -> Result<Accepted, Refused> {
    let limits = DecodeLimits::PHOTO;
    let decoded = check_format(bytes)
        .and_then(|()| decode_image(bytes, &limits).map_err(ApiError::from_photo));
    match decoded {
        Ok(image) => {
            let (width, height) = image.dimensions();
            assert!(
                (1..=limits.max_width).contains(&width)
                    && (1..=limits.max_height).contains(&height),
                "a {width}x{height} photo passed the {}x{} limit",
                limits.max_width,
                limits.max_height
            );
            Ok(vec![(width, height)])
        }
        Err(error) => {
            assert!(
                matches!(
                    error.status,
                    StatusCode::PAYLOAD_TOO_LARGE
                        | StatusCode::UNSUPPORTED_MEDIA_TYPE
                        | StatusCode::UNPROCESSABLE_ENTITY
                ),
                "a photo refused with {} {}: {}",
                error.status,
                error.code,
                error.message
            );
            Err(Refused::Photo { status: error.status, code: error.code })
        }
    }
}

/// One fuzz target's entry point: the input bytes in, accepted or refused out (a panic or a
/// broken invariant is the bug a fuzzer looks for).
pub type Target = fn(&[u8]) -> Result<Accepted, Refused>;

/// The fuzz targets, by name, with their entry point (the directory names under
/// `fuzz/corpus/` and the binaries under `fuzz/fuzz_targets/`).
pub const TARGETS: [(&str, Target); 3] = [
    ("decode_frame", decode_frame),
    ("crops_message", crops_message),
    ("photo_upload", photo_upload),
];

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn corpus_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
    }

    /// Every file of `fuzz/corpus/<target>/` (generated seeds and regression inputs) goes
    /// through its target's entry point, so stable CI replays what the fuzzers start from and
    /// every crash they found. Seeds named `ok-*` must be accepted and `err-*` refused; other
    /// files (fuzzer findings) must merely not panic.
    #[test]
    fn fuzz_corpus_replays_without_panics() {
        for (target, entry) in TARGETS {
            let dir = corpus_dir().join(target);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|entry| entry.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            files.sort();
            let (mut accepted, mut expected) = (0usize, 0usize);
            for file in &files {
                let bytes =
                    std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let outcome = entry(&bytes);
                if name.starts_with("ok-") {
                    expected += 1;
                    assert!(outcome.is_ok(), "{target}/{name} refused: {outcome:?}");
                } else if name.starts_with("err-") {
                    expected += 1;
                    assert!(outcome.is_err(), "{target}/{name} accepted: {outcome:?}");
                }
                accepted += usize::from(outcome.is_ok());
            }
            assert!(expected >= 8, "{target}: only {expected} labelled seeds in {}", dir.display());
            assert!(accepted >= 3, "{target}: only {accepted} of {} files accepted", files.len());
        }
    }

    #[test]
    fn photo_refusals_carry_their_rest_status() {
        let refused = |bytes: &[u8]| match photo_upload(bytes) {
            Err(Refused::Photo { status, code }) => (status.as_u16(), code),
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(refused(b"GIF89a...."), (415, "unsupported_format"));
        assert_eq!(refused(&[0xFF, 0xD8, 0xFF, 0xE0]), (422, "invalid_image"));
        let huge = vec![0u8; DecodeLimits::PHOTO.max_bytes + 1];
        assert_eq!(refused(&huge), (413, "payload_too_large"));
    }
}
