//! The crops message: face crops cut by a client that detected the faces itself.
//!
//! See the crate documentation for the byte layout. Parsing is strict and total: every length
//! is checked against the buffer before anything is sliced, every number is bounded, and any
//! input, however malformed, yields a [`CropsError`] rather than a panic.

use ddfr_core::{BoundingBox, LandmarkScheme, Landmarks, Point};
use serde::{Deserialize, Serialize};

/// The first four bytes of every crops message. No image format ddfr accepts starts with them
/// (JPEG starts `FF D8 FF`, PNG `89 50 4E 47`, WebP `RIFF`).
pub const CROPS_MAGIC: [u8; 4] = *b"DDFC";
/// The format version this crate writes and reads.
pub const CROPS_VERSION: u8 = 1;
/// Bytes before the JSON header: magic (4), version (1), header length (4, little-endian).
pub const CROPS_PREFIX_LEN: usize = 9;
/// Largest accepted JSON header. 32 faces with landmarks need about 12 KiB.
pub const MAX_CROPS_HEADER_BYTES: u32 = 64 * 1024;
/// Most faces in one message; a client with more should send the full frame.
pub const MAX_CROPS_FACES: usize = 32;
/// Largest frame side in pixels: crops may come from a 4K (or larger) camera frame that is
/// never sent whole.
pub const MAX_FRAME_SIDE: u32 = 8192;
/// Largest crop side in pixels; face models take 112 to 640 pixel inputs.
pub const MAX_CROP_SIDE: u32 = 1024;
/// Largest crop payload: a raw RGB crop of the largest size.
pub const MAX_CROP_BYTES: u32 = MAX_CROP_SIDE * MAX_CROP_SIDE * 3;
/// How far, in frame pixels, a crop rectangle may pass the frame edge: clients compute it in
/// floating point and may round outwards.
pub const CROP_EDGE_TOLERANCE: f32 = 1.0;

/// The three bytes every JPEG starts with.
const JPEG_SIGNATURE: &[u8] = &[0xFF, 0xD8, 0xFF];
/// The eight bytes every PNG starts with.
const PNG_SIGNATURE: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
/// Bytes per pixel of an `rgb8` crop.
const RGB8_BYTES_PER_PIXEL: u64 = 3;

/// How one crop's pixels are encoded in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CropEncoding {
    /// A baseline JPEG file.
    Jpeg,
    /// A PNG file.
    Png,
    /// Raw 8-bit RGB, row-major, no padding: exactly `width * height * 3` bytes.
    Rgb8,
}

/// Where a crop was cut from the frame, in frame pixels, before any resize.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CropRegion {
    /// Left edge in the frame.
    pub left: f32,
    /// Top edge in the frame.
    pub top: f32,
    /// Width in frame pixels.
    pub width: f32,
    /// Height in frame pixels.
    pub height: f32,
}

/// One face of a crops message, with its crop's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceCrop {
    /// The face box in frame pixels.
    pub bbox: BoundingBox,
    /// The client detector's landmarks in frame pixels, when it has them.
    pub landmarks: Option<Landmarks>,
    /// The client detector's confidence in `[0, 1]`, when it has one.
    pub score: Option<f32>,
    /// The frame rectangle the crop was cut from.
    pub region: CropRegion,
    /// The crop's width in pixels, as encoded.
    pub width: u32,
    /// The crop's height in pixels, as encoded.
    pub height: u32,
    /// How `data` is encoded.
    pub encoding: CropEncoding,
    /// The encoded crop.
    pub data: Vec<u8>,
}

impl FaceCrop {
    /// Maps a point in crop pixels to frame pixels (undoing the cut and the resize).
    pub fn crop_to_frame(&self, point: Point) -> Point {
        Point::new(
            self.region.left + point.x * self.region.width / self.width.max(1) as f32,
            self.region.top + point.y * self.region.height / self.height.max(1) as f32,
        )
    }

    /// Maps a point in frame pixels to crop pixels.
    pub fn frame_to_crop(&self, point: Point) -> Point {
        let scale_x = self.width as f32 / self.region.width;
        let scale_y = self.height as f32 / self.region.height;
        Point::new((point.x - self.region.left) * scale_x, (point.y - self.region.top) * scale_y)
    }
}

/// A parsed, validated crops message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CropsMessage {
    /// Width of the frame the crops were cut from, in pixels.
    pub frame_width: u32,
    /// Height of that frame, in pixels.
    pub frame_height: u32,
    /// The faces, in the order the reply lists them.
    pub faces: Vec<FaceCrop>,
}

/// Why bytes are not a valid crops message.
#[derive(Debug, thiserror::Error)]
pub enum CropsError {
    /// Fewer bytes than the fixed prefix.
    #[error("crops message is {len} bytes, shorter than its {CROPS_PREFIX_LEN}-byte prefix")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// The first four bytes are not `DDFC`.
    #[error("not a crops message (magic bytes are not DDFC)")]
    BadMagic,
    /// A version this build does not read.
    #[error(
        "crops message version {version} is not supported (this build reads version {CROPS_VERSION})"
    )]
    UnsupportedVersion {
        /// The version byte received.
        version: u8,
    },
    /// The declared header length exceeds the limit.
    #[error("crops header of {len} bytes exceeds the {MAX_CROPS_HEADER_BYTES}-byte limit")]
    HeaderTooLarge {
        /// The declared header length.
        len: u32,
    },
    /// The declared header length runs past the end of the message.
    #[error("crops header declares {declared} bytes but only {available} follow the prefix")]
    TruncatedHeader {
        /// The declared header length.
        declared: u32,
        /// Bytes after the prefix.
        available: usize,
    },
    /// The header is not valid UTF-8 JSON of the expected shape.
    #[error("crops header is not valid: {source}")]
    Header {
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The frame size is zero or larger than [`MAX_FRAME_SIDE`].
    #[error("frame size {width}x{height} is out of range (1 to {MAX_FRAME_SIDE} per side)")]
    InvalidFrameSize {
        /// Declared frame width.
        width: u32,
        /// Declared frame height.
        height: u32,
    },
    /// More faces than [`MAX_CROPS_FACES`].
    #[error("{n_faces} faces in one crops message; at most {MAX_CROPS_FACES} are accepted")]
    TooManyFaces {
        /// Faces declared.
        n_faces: usize,
    },
    /// A face box is not finite, is inverted or empty, or lies outside the frame.
    #[error("face {face}: box is not finite, is empty, or lies outside the frame")]
    InvalidBox {
        /// Index of the face.
        face: usize,
    },
    /// Landmarks do not have the scheme's number of points, or a point is not finite.
    #[error("face {face}: landmarks need {expected} finite points for {scheme:?}, got {found}")]
    InvalidLandmarks {
        /// Index of the face.
        face: usize,
        /// The declared scheme.
        scheme: LandmarkScheme,
        /// Points the scheme has.
        expected: usize,
        /// Finite points received.
        found: usize,
    },
    /// The detector score is not a number in `[0, 1]`.
    #[error("face {face}: score must be a number in [0, 1]")]
    InvalidScore {
        /// Index of the face.
        face: usize,
    },
    /// The crop rectangle is not finite, empty, or passes the frame edges.
    #[error("face {face}: crop rectangle is not finite, is empty, or passes the frame edges")]
    InvalidCropRegion {
        /// Index of the face.
        face: usize,
    },
    /// The crop's pixel size is zero or larger than [`MAX_CROP_SIDE`].
    #[error(
        "face {face}: crop size {width}x{height} is out of range (1 to {MAX_CROP_SIDE} per side)"
    )]
    InvalidCropSize {
        /// Index of the face.
        face: usize,
        /// Declared crop width.
        width: u32,
        /// Declared crop height.
        height: u32,
    },
    /// The crop's byte length is impossible for its encoding and size.
    #[error("face {face}: {encoding:?} crop of {length} bytes; expected {expected}")]
    InvalidCropLength {
        /// Index of the face.
        face: usize,
        /// The declared encoding.
        encoding: CropEncoding,
        /// Declared length.
        length: u32,
        /// What the length should be, in words.
        expected: &'static str,
    },
    /// The crop's bytes do not start with its encoding's signature.
    #[error("face {face}: crop bytes are not {encoding:?}")]
    CropSignatureMismatch {
        /// Index of the face.
        face: usize,
        /// The declared encoding.
        encoding: CropEncoding,
    },
    /// The crop lengths do not add up to the payload that follows the header.
    #[error("crop lengths add up to {declared} bytes but the payload has {actual}")]
    PayloadLengthMismatch {
        /// Sum of the declared crop lengths.
        declared: u64,
        /// Bytes after the header.
        actual: usize,
    },
}

/// The JSON header as on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireHeader {
    frame_width: u32,
    frame_height: u32,
    faces: Vec<WireFace>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBox {
    left: f32,
    top: f32,
    right: f32,
    bottom: f32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireLandmarks {
    scheme: LandmarkScheme,
    points: Vec<[f32; 2]>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFace {
    #[serde(rename = "box")]
    bbox: WireBox,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    landmarks: Option<WireLandmarks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
    crop_left: f32,
    crop_top: f32,
    crop_width: f32,
    crop_height: f32,
    width: u32,
    height: u32,
    encoding: CropEncoding,
    length: u32,
}

/// True when `bytes` start with the crops magic. A frame that does not is treated as an image.
pub fn is_crops_message(bytes: &[u8]) -> bool {
    bytes.starts_with(&CROPS_MAGIC)
}

/// Reads the little-endian u32 at `offset`, if the buffer has it.
fn read_u32_le(bytes: &[u8], offset: usize) -> Option<u32> {
    let field = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes([field[0], field[1], field[2], field[3]]))
}

/// Parses and validates a crops message. Never panics.
pub fn parse_crops_message(bytes: &[u8]) -> Result<CropsMessage, CropsError> {
    if !is_crops_message(bytes) {
        return Err(if bytes.len() < CROPS_MAGIC.len() {
            CropsError::TooShort { len: bytes.len() }
        } else {
            CropsError::BadMagic
        });
    }
    let (Some(&version), Some(header_len)) =
        (bytes.get(CROPS_MAGIC.len()), read_u32_le(bytes, CROPS_MAGIC.len() + 1))
    else {
        return Err(CropsError::TooShort { len: bytes.len() });
    };
    if version != CROPS_VERSION {
        return Err(CropsError::UnsupportedVersion { version });
    }
    if header_len > MAX_CROPS_HEADER_BYTES {
        return Err(CropsError::HeaderTooLarge { len: header_len });
    }
    let after_prefix = bytes.get(CROPS_PREFIX_LEN..).unwrap_or_default();
    // header_len <= 64 KiB, so the conversion is lossless on every target.
    let Some((header_bytes, payload)) = after_prefix.split_at_checked(header_len as usize) else {
        return Err(CropsError::TruncatedHeader {
            declared: header_len,
            available: after_prefix.len(),
        });
    };
    let header: WireHeader =
        serde_json::from_slice(header_bytes).map_err(|source| CropsError::Header { source })?;
    validate_header(&header)?;

    let declared: u64 = header.faces.iter().map(|face| u64::from(face.length)).sum();
    if declared != payload.len() as u64 {
        return Err(CropsError::PayloadLengthMismatch { declared, actual: payload.len() });
    }
    let mut rest = payload;
    let mut faces = Vec::with_capacity(header.faces.len());
    for (index, wire) in header.faces.into_iter().enumerate() {
        // The sum matched the payload length above, so every split succeeds; the checked
        // split still guards against any mistake in that reasoning.
        let (data, tail) = rest
            .split_at_checked(wire.length as usize)
            .ok_or(CropsError::PayloadLengthMismatch { declared, actual: payload.len() })?;
        rest = tail;
        check_signature(index, wire.encoding, data)?;
        faces.push(FaceCrop {
            bbox: BoundingBox::new(
                wire.bbox.left,
                wire.bbox.top,
                wire.bbox.right,
                wire.bbox.bottom,
            ),
            landmarks: wire.landmarks.map(|landmarks| Landmarks {
                scheme: landmarks.scheme,
                points: landmarks.points.iter().map(|[x, y]| Point::new(*x, *y)).collect(),
            }),
            score: wire.score,
            region: CropRegion {
                left: wire.crop_left,
                top: wire.crop_top,
                width: wire.crop_width,
                height: wire.crop_height,
            },
            width: wire.width,
            height: wire.height,
            encoding: wire.encoding,
            data: data.to_vec(),
        });
    }
    Ok(CropsMessage { frame_width: header.frame_width, frame_height: header.frame_height, faces })
}

fn validate_header(header: &WireHeader) -> Result<(), CropsError> {
    let (frame_width, frame_height) = (header.frame_width, header.frame_height);
    let side_ok = |side: u32| (1..=MAX_FRAME_SIDE).contains(&side);
    if !side_ok(frame_width) || !side_ok(frame_height) {
        return Err(CropsError::InvalidFrameSize { width: frame_width, height: frame_height });
    }
    if header.faces.len() > MAX_CROPS_FACES {
        return Err(CropsError::TooManyFaces { n_faces: header.faces.len() });
    }
    let (frame_w, frame_h) = (frame_width as f32, frame_height as f32);
    for (face, wire) in header.faces.iter().enumerate() {
        let b = &wire.bbox;
        let box_ok = [b.left, b.top, b.right, b.bottom].iter().all(|v| v.is_finite())
            && b.left < b.right
            && b.top < b.bottom
            && b.right > 0.0
            && b.bottom > 0.0
            && b.left < frame_w
            && b.top < frame_h;
        if !box_ok {
            return Err(CropsError::InvalidBox { face });
        }
        if let Some(landmarks) = &wire.landmarks {
            let expected = landmarks.scheme.len();
            let found =
                landmarks.points.iter().filter(|[x, y]| x.is_finite() && y.is_finite()).count();
            if landmarks.points.len() != expected || found != expected {
                return Err(CropsError::InvalidLandmarks {
                    face,
                    scheme: landmarks.scheme,
                    expected,
                    found,
                });
            }
        }
        if let Some(score) = wire.score
            && !(0.0..=1.0).contains(&score)
        {
            return Err(CropsError::InvalidScore { face });
        }
        let (left, top, width, height) =
            (wire.crop_left, wire.crop_top, wire.crop_width, wire.crop_height);
        let region_ok = [left, top, width, height].iter().all(|v| v.is_finite())
            && width > 0.0
            && height > 0.0
            && left >= -CROP_EDGE_TOLERANCE
            && top >= -CROP_EDGE_TOLERANCE
            && left + width <= frame_w + CROP_EDGE_TOLERANCE
            && top + height <= frame_h + CROP_EDGE_TOLERANCE;
        if !region_ok {
            return Err(CropsError::InvalidCropRegion { face });
        }
        let crop_side_ok = |side: u32| (1..=MAX_CROP_SIDE).contains(&side);
        if !crop_side_ok(wire.width) || !crop_side_ok(wire.height) {
            return Err(CropsError::InvalidCropSize {
                face,
                width: wire.width,
                height: wire.height,
            });
        }
        check_length(face, wire)?;
    }
    Ok(())
}

fn check_length(face: usize, wire: &WireFace) -> Result<(), CropsError> {
    let invalid = |expected| CropsError::InvalidCropLength {
        face,
        encoding: wire.encoding,
        length: wire.length,
        expected,
    };
    match wire.encoding {
        CropEncoding::Rgb8 => {
            let exact = u64::from(wire.width) * u64::from(wire.height) * RGB8_BYTES_PER_PIXEL;
            if u64::from(wire.length) != exact {
                return Err(invalid("width * height * 3"));
            }
        }
        CropEncoding::Jpeg | CropEncoding::Png => {
            let signature = signature_of(wire.encoding).len();
            if (wire.length as usize) < signature || wire.length > MAX_CROP_BYTES {
                return Err(invalid("between the file signature's length and 3 MiB"));
            }
        }
    }
    Ok(())
}

fn signature_of(encoding: CropEncoding) -> &'static [u8] {
    match encoding {
        CropEncoding::Jpeg => JPEG_SIGNATURE,
        CropEncoding::Png => PNG_SIGNATURE,
        CropEncoding::Rgb8 => &[],
    }
}

fn check_signature(face: usize, encoding: CropEncoding, data: &[u8]) -> Result<(), CropsError> {
    if data.starts_with(signature_of(encoding)) {
        Ok(())
    } else {
        Err(CropsError::CropSignatureMismatch { face, encoding })
    }
}

/// Writes `message` in the crops format. The declared lengths are the lengths of the crops'
/// `data`; nothing is validated, so tests can also write invalid messages.
pub fn encode_crops_message(message: &CropsMessage) -> Vec<u8> {
    let header = WireHeader {
        frame_width: message.frame_width,
        frame_height: message.frame_height,
        faces: message
            .faces
            .iter()
            .map(|face| WireFace {
                bbox: WireBox {
                    left: face.bbox.left,
                    top: face.bbox.top,
                    right: face.bbox.right,
                    bottom: face.bbox.bottom,
                },
                landmarks: face.landmarks.as_ref().map(|landmarks| WireLandmarks {
                    scheme: landmarks.scheme,
                    points: landmarks.points.iter().map(|p| [p.x, p.y]).collect(),
                }),
                score: face.score,
                crop_left: face.region.left,
                crop_top: face.region.top,
                crop_width: face.region.width,
                crop_height: face.region.height,
                width: face.width,
                height: face.height,
                encoding: face.encoding,
                length: u32::try_from(face.data.len()).unwrap_or(u32::MAX),
            })
            .collect(),
    };
    // Serialising plain derived structs to a Vec cannot fail (no maps with non-string keys, no
    // custom serialisers); an empty header would still be rejected loudly by the parser.
    let header_json = serde_json::to_vec(&header).unwrap_or_default();
    let header_len = u32::try_from(header_json.len()).unwrap_or(u32::MAX);
    let payload_len: usize = message.faces.iter().map(|face| face.data.len()).sum();
    let mut bytes = Vec::with_capacity(CROPS_PREFIX_LEN + header_json.len() + payload_len);
    bytes.extend_from_slice(&CROPS_MAGIC);
    bytes.push(CROPS_VERSION);
    bytes.extend_from_slice(&header_len.to_le_bytes());
    bytes.extend_from_slice(&header_json);
    for face in &message.faces {
        bytes.extend_from_slice(&face.data);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn jpeg_bytes(n: usize) -> Vec<u8> {
        let mut data = vec![0xFF, 0xD8, 0xFF, 0xE0];
        data.resize(n.max(4), 0x42);
        data
    }

    fn sample() -> CropsMessage {
        CropsMessage {
            frame_width: 640,
            frame_height: 480,
            faces: vec![
                FaceCrop {
                    bbox: BoundingBox::new(100.5, 80.25, 220.0, 230.0),
                    landmarks: Some(Landmarks {
                        scheme: LandmarkScheme::ArcFace5,
                        points: vec![
                            Point::new(130.0, 130.0),
                            Point::new(190.0, 131.0),
                            Point::new(160.0, 160.0),
                            Point::new(138.0, 195.0),
                            Point::new(182.0, 196.0),
                        ],
                    }),
                    score: Some(0.93),
                    region: CropRegion { left: 80.0, top: 60.0, width: 160.0, height: 190.0 },
                    width: 112,
                    height: 112,
                    encoding: CropEncoding::Jpeg,
                    data: jpeg_bytes(300),
                },
                FaceCrop {
                    bbox: BoundingBox::new(400.0, 50.0, 460.0, 120.0),
                    landmarks: None,
                    score: None,
                    region: CropRegion { left: 400.0, top: 50.0, width: 60.0, height: 70.0 },
                    width: 4,
                    height: 2,
                    encoding: CropEncoding::Rgb8,
                    data: (0..24).collect(),
                },
                FaceCrop {
                    bbox: BoundingBox::new(-5.0, 400.0, 30.0, 490.0),
                    landmarks: None,
                    score: Some(0.0),
                    region: CropRegion { left: 0.0, top: 390.0, width: 40.0, height: 90.0 },
                    width: 40,
                    height: 90,
                    encoding: CropEncoding::Png,
                    data: [PNG_SIGNATURE, b"rest"].concat(),
                },
            ],
        }
    }

    #[test]
    fn round_trips() {
        let message = sample();
        let bytes = encode_crops_message(&message);
        assert!(is_crops_message(&bytes));
        assert_eq!(parse_crops_message(&bytes).unwrap(), message);
        let empty = CropsMessage { frame_width: 1, frame_height: 1, faces: vec![] };
        assert_eq!(parse_crops_message(&encode_crops_message(&empty)).unwrap(), empty);
    }

    #[test]
    fn layout_is_as_documented() {
        let bytes = encode_crops_message(&sample());
        assert_eq!(&bytes[0..4], b"DDFC");
        assert_eq!(bytes[4], 1);
        let header_len = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[9..9 + header_len]).unwrap();
        assert_eq!(header["frame_width"], 640);
        let face = &header["faces"][0];
        assert_eq!(face["box"]["left"], 100.5);
        assert_eq!(face["landmarks"]["scheme"], "arc_face5");
        assert_eq!(face["landmarks"]["points"][0], serde_json::json!([130.0, 130.0]));
        assert_eq!(face["encoding"], "jpeg");
        assert_eq!(face["length"], 300);
        assert_eq!(face["crop_width"], 160.0);
        assert!(header["faces"][1].get("landmarks").is_none());
        assert_eq!(bytes.len(), 9 + header_len + 300 + 24 + 12);
    }

    #[test]
    fn images_are_never_crops_messages() {
        assert!(!is_crops_message(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]));
        assert!(!is_crops_message(PNG_SIGNATURE));
        assert!(!is_crops_message(b"RIFF\x10\0\0\0WEBPVP8 "));
        assert!(!is_crops_message(b"DDF"));
        assert!(matches!(parse_crops_message(b"RIFF\x10\0\0\0WEBP"), Err(CropsError::BadMagic)));
        assert!(matches!(parse_crops_message(b""), Err(CropsError::TooShort { len: 0 })));
        assert!(matches!(
            parse_crops_message(b"DDFC\x01\0\0"),
            Err(CropsError::TooShort { len: 7 })
        ));
    }

    /// The sample with one face changed, encoded.
    fn with_first_face(change: impl FnOnce(&mut FaceCrop)) -> Result<CropsMessage, CropsError> {
        let mut message = sample();
        change(&mut message.faces[0]);
        parse_crops_message(&encode_crops_message(&message))
    }

    #[test]
    fn rejects_bad_fields() {
        let err = with_first_face(|f| f.bbox.right = f32::NAN).unwrap_err();
        // NaN is written as JSON null, which is not a number.
        assert!(matches!(err, CropsError::Header { .. }), "{err:?}");
        let err =
            with_first_face(|f| f.bbox = BoundingBox::new(10.0, 10.0, 5.0, 20.0)).unwrap_err();
        assert!(matches!(err, CropsError::InvalidBox { face: 0 }), "{err:?}");
        let err =
            with_first_face(|f| f.bbox = BoundingBox::new(700.0, 10.0, 800.0, 20.0)).unwrap_err();
        assert!(matches!(err, CropsError::InvalidBox { face: 0 }), "{err:?}");
        let err = with_first_face(|f| {
            f.landmarks.as_mut().unwrap().points.pop();
        })
        .unwrap_err();
        assert!(
            matches!(err, CropsError::InvalidLandmarks { expected: 5, found: 4, .. }),
            "{err:?}"
        );
        let err = with_first_face(|f| f.score = Some(1.5)).unwrap_err();
        assert!(matches!(err, CropsError::InvalidScore { face: 0 }), "{err:?}");
        let err = with_first_face(|f| f.region.width = 600.0).unwrap_err();
        assert!(matches!(err, CropsError::InvalidCropRegion { face: 0 }), "{err:?}");
        let err = with_first_face(|f| f.width = MAX_CROP_SIDE + 1).unwrap_err();
        assert!(matches!(err, CropsError::InvalidCropSize { .. }), "{err:?}");
        let err = with_first_face(|f| f.data[0] = 0).unwrap_err();
        assert!(matches!(err, CropsError::CropSignatureMismatch { face: 0, .. }), "{err:?}");
        let err = with_first_face(|f| {
            f.encoding = CropEncoding::Rgb8;
            f.data = vec![0; 10];
        })
        .unwrap_err();
        assert!(matches!(err, CropsError::InvalidCropLength { face: 0, .. }), "{err:?}");

        let mut message = sample();
        message.frame_width = 0;
        let err = parse_crops_message(&encode_crops_message(&message)).unwrap_err();
        assert!(matches!(err, CropsError::InvalidFrameSize { .. }), "{err:?}");
        let mut message = sample();
        let face = message.faces[1].clone();
        message.faces = vec![face; MAX_CROPS_FACES + 1];
        let err = parse_crops_message(&encode_crops_message(&message)).unwrap_err();
        assert!(matches!(err, CropsError::TooManyFaces { n_faces: 33 }), "{err:?}");
    }

    #[test]
    fn rejects_bad_framing() {
        let bytes = encode_crops_message(&sample());
        let mut wrong_version = bytes.clone();
        wrong_version[4] = 2;
        assert!(matches!(
            parse_crops_message(&wrong_version),
            Err(CropsError::UnsupportedVersion { version: 2 })
        ));
        let mut huge_header = bytes.clone();
        huge_header[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse_crops_message(&huge_header),
            Err(CropsError::HeaderTooLarge { .. })
        ));
        assert!(matches!(
            parse_crops_message(&bytes[..20]),
            Err(CropsError::TruncatedHeader { .. })
        ));
        assert!(matches!(
            parse_crops_message(&bytes[..bytes.len() - 1]),
            Err(CropsError::PayloadLengthMismatch { .. })
        ));
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(matches!(
            parse_crops_message(&extra),
            Err(CropsError::PayloadLengthMismatch { .. })
        ));
        let mut unknown_field = b"DDFC\x01".to_vec();
        let header = br#"{"frame_width":1,"frame_height":1,"faces":[],"x":1}"#;
        unknown_field.extend_from_slice(&(header.len() as u32).to_le_bytes());
        unknown_field.extend_from_slice(header);
        assert!(matches!(parse_crops_message(&unknown_field), Err(CropsError::Header { .. })));
    }

    #[test]
    fn maps_points_between_crop_and_frame() {
        let face = &sample().faces[0];
        let centre = face.crop_to_frame(Point::new(56.0, 56.0));
        assert!((centre.x - 160.0).abs() < 1e-4 && (centre.y - 155.0).abs() < 1e-4);
        let back = face.frame_to_crop(centre);
        assert!((back.x - 56.0).abs() < 1e-4 && (back.y - 56.0).abs() < 1e-4);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_crops_message(&bytes);
            let mut prefixed = b"DDFC\x01".to_vec();
            prefixed.extend_from_slice(&bytes);
            let _ = parse_crops_message(&prefixed);
        }

        #[test]
        fn mutated_messages_never_panic(
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = encode_crops_message(&sample());
            for (index, value) in flips {
                let at = index.index(bytes.len());
                bytes[at] = value;
            }
            let _ = parse_crops_message(&bytes);
            let end = cut.index(bytes.len());
            let _ = parse_crops_message(&bytes[..end]);
        }

        #[test]
        fn generated_messages_round_trip(
            frame in (1u32..=4096, 1u32..=4096),
            boxes in prop::collection::vec((0.0f32..0.9, 0.0f32..0.9, 0.01f32..0.1, any::<bool>()), 0..=MAX_CROPS_FACES),
        ) {
            let (frame_width, frame_height) = frame;
            let faces: Vec<FaceCrop> = boxes.into_iter().map(|(fx, fy, fs, raw)| {
                let (w, h) = (frame_width as f32, frame_height as f32);
                let bbox = BoundingBox::new(fx * w, fy * h, (fx + fs) * w, (fy + fs) * h);
                let (encoding, data) = if raw {
                    (CropEncoding::Rgb8, vec![7; 2 * 3 * 3])
                } else {
                    (CropEncoding::Jpeg, jpeg_bytes(10))
                };
                FaceCrop {
                    bbox,
                    landmarks: None,
                    score: Some(fs * 10.0),
                    region: CropRegion { left: bbox.left, top: bbox.top, width: bbox.width(), height: bbox.height() },
                    width: 2,
                    height: 3,
                    encoding,
                    data,
                }
            }).collect();
            let message = CropsMessage { frame_width, frame_height, faces };
            let parsed = parse_crops_message(&encode_crops_message(&message));
            prop_assert!(parsed.is_ok(), "{:?}", parsed);
            prop_assert_eq!(parsed.unwrap(), message);
        }
    }
}
