//! The synchronous work of one job: frame or crops to a reply, photo to an enrollment
//! candidate, photo to its largest face's embedding. Runs only inside
//! [`crate::pool::InferencePool::run`]; reads the gallery, never the database.

use std::io::Cursor;
use std::time::Duration;

use ddfr_core::{BoundingBox, Embedding, Face, Landmarks, PixelBox, Point};
use ddfr_engine::EngineError;
use ddfr_engine::decode::{DecodeLimits, decode_image};
use ddfr_engine::pack::ModelPack;
use ddfr_protocol::{
    CropEncoding, CropsMessage, Date, FaceCrop, FrameReply, MAX_CROP_BYTES, MAX_CROP_SIDE, WsFace,
};
use ddfr_track::{Observation, Tracker, TrackerConfig};
use image::RgbImage;
use image::codecs::jpeg::JpegEncoder;

use crate::gallery::Gallery;

/// An enrollment photo with several faces is accepted when its largest face covers at least
/// this many times the area of the next one (a clear subject with a background face); the
/// largest face is then enrolled. Otherwise it is refused with `multiple_faces`.
pub const DOMINANT_FACE_AREA_RATIO: f32 = 2.0;

/// The shorter side, in photo pixels, below which an enrollment face is `face_too_small`:
/// smaller faces give unreliable embeddings.
pub const MIN_ENROLL_FACE_SIDE: i32 = 40;

/// JPEG quality of stored face chips: small files, faithful enough to re-embed.
pub const CHIP_JPEG_QUALITY: u8 = 90;

/// A crop without landmarks is matched to a face detected inside it only when their boxes
/// overlap at least this much (intersection over union); otherwise the face stays Unknown.
pub const MIN_CROP_MATCH_IOU: f32 = 0.3;

/// Limits for one crop of a crops message (the protocol's own bounds).
const CROP_LIMITS: DecodeLimits = DecodeLimits {
    max_bytes: MAX_CROP_BYTES as usize,
    max_width: MAX_CROP_SIDE,
    max_height: MAX_CROP_SIDE,
    apply_orientation: false,
};

/// How a frame or crops message went.
#[derive(Debug)]
pub enum FrameOutcome {
    /// The reply to send.
    Reply(FrameReply),
    /// The input is not a usable image or crops message: answered with `null`.
    Undecodable(String),
    /// Something failed while processing: logged, answered with `null`.
    Failed(EngineError),
}

/// A face to put in a reply: its box in frame pixels, detector score, and embedding when the
/// face could be aligned.
struct FaceResult {
    pixel_box: PixelBox,
    score: Option<f32>,
    embedding: Option<Embedding>,
}

/// Gallery candidates fetched per face: enough samples that a person with several close
/// samples does not crowd out the runner-up person the one-per-frame assignment may need.
pub const CANDIDATE_SAMPLES: usize = 16;

/// How the faces of a reply are named.
#[derive(Debug)]
pub enum Naming<'a> {
    /// A single photo (REST): each face on its own, one person per face; no track ids.
    Single {
        /// Minimum cosine similarity for an identification.
        min_similarity: f32,
    },
    /// A frame of a stream (`/ws`): the connection's tracker; faces carry track ids.
    Stream {
        /// The connection's tracks.
        tracker: &'a mut Tracker,
        /// Time since the connection opened.
        at: Duration,
    },
}

/// Turns per-face results into the reply: one index search for all faces of the frame, then
/// the tracker names each face (votes over its track, one person per face).
fn build_reply(
    gallery: &Gallery,
    results: Vec<FaceResult>,
    naming: Naming<'_>,
    today: Date,
) -> FrameReply {
    let queries: Vec<Embedding> = results.iter().filter_map(|r| r.embedding.clone()).collect();
    // Read before the search: a change racing with it relabels on the next frame.
    let generation = gallery.generation();
    let mut candidates = gallery.candidates(&queries, CANDIDATE_SAMPLES).into_iter();
    let observations: Vec<Observation> = results
        .iter()
        .map(|result| Observation {
            bbox: pixel_box_to_bbox(&result.pixel_box),
            embedding: result.embedding.clone(),
            candidates: if result.embedding.is_some() {
                candidates.next().unwrap_or_default()
            } else {
                Vec::new()
            },
        })
        .collect();
    let (decisions, with_track_ids) = match naming {
        Naming::Single { min_similarity } => (
            Tracker::new(TrackerConfig::new(min_similarity)).update(Duration::ZERO, &observations),
            false,
        ),
        Naming::Stream { tracker, at } => {
            tracker.sync_gallery(generation);
            (tracker.update(at, &observations), true)
        }
    };
    let faces = results
        .into_iter()
        .zip(decisions)
        .map(|(result, decision)| {
            let named =
                decision.person.and_then(|c| gallery.person(c.person).map(|p| (p, c.similarity)));
            let mut face = match named {
                Some((person, similarity)) => {
                    WsFace::identified(result.pixel_box, &person, similarity, today)
                }
                None => WsFace::unknown(result.pixel_box),
            };
            if let Some(score) = result.score {
                face = face.with_score(score);
            }
            if with_track_ids {
                face = face.with_track_id(decision.track_id);
            }
            face
        })
        .collect();
    FrameReply::new(faces)
}

fn pixel_box_to_bbox(b: &PixelBox) -> BoundingBox {
    BoundingBox::new(b.left as f32, b.top as f32, b.right as f32, b.bottom as f32)
}

/// Aligns each face (keeping those that fail, unembedded) and embeds the chips in one call.
fn align_and_embed(
    pack: &ModelPack,
    image: &RgbImage,
    faces: &[Face],
) -> Result<Vec<Option<Embedding>>, EngineError> {
    let chips: Vec<Option<RgbImage>> =
        faces.iter().map(|face| pack.aligner().align(image, face).ok().map(|a| a.chip)).collect();
    let batch: Vec<RgbImage> = chips.iter().flatten().cloned().collect();
    let mut embeddings = pack.embed(&batch)?.into_iter();
    Ok(chips.into_iter().map(|chip| chip.and_then(|_| embeddings.next())).collect())
}

/// A full frame: decode, detect, align, embed, identify.
pub fn recognize_frame(
    pack: &ModelPack,
    gallery: &Gallery,
    bytes: &[u8],
    limits: &DecodeLimits,
    naming: Naming<'_>,
    today: Date,
) -> FrameOutcome {
    let frame = match decode_image(bytes, limits) {
        Ok(frame) => frame,
        Err(error) => return FrameOutcome::Undecodable(error.to_string()),
    };
    match recognize_decoded(pack, gallery, &frame, naming, today) {
        Ok(reply) => FrameOutcome::Reply(reply),
        Err(error) => FrameOutcome::Failed(error),
    }
}

/// Detect, align, embed and identify every face of a decoded frame.
pub fn recognize_decoded(
    pack: &ModelPack,
    gallery: &Gallery,
    frame: &RgbImage,
    naming: Naming<'_>,
    today: Date,
) -> Result<FrameReply, EngineError> {
    let faces = pack.detect(frame)?;
    let embeddings = align_and_embed(pack, frame, &faces)?;
    let results = faces
        .iter()
        .zip(embeddings)
        .map(|(face, embedding)| FaceResult {
            pixel_box: face.bbox.to_pixels(frame.width(), frame.height()),
            score: Some(face.score),
            embedding,
        })
        .collect();
    Ok(build_reply(gallery, results, naming, today))
}

/// Why one crop could not be used.
#[derive(Debug, thiserror::Error)]
enum CropError {
    #[error("crop {index} could not be decoded")]
    Decode {
        index: usize,
        #[source]
        source: EngineError,
    },
    #[error("crop {index} decodes to {found:?}, its header says {declared:?}")]
    SizeMismatch { index: usize, found: (u32, u32), declared: (u32, u32) },
}

/// Decodes one crop to RGB and checks its declared size.
fn decode_crop(index: usize, crop: &FaceCrop) -> Result<RgbImage, CropError> {
    let image = match crop.encoding {
        CropEncoding::Jpeg | CropEncoding::Png => decode_image(&crop.data, &CROP_LIMITS)
            .map_err(|source| CropError::Decode { index, source })?,
        CropEncoding::Rgb8 => RgbImage::from_raw(crop.width, crop.height, crop.data.clone())
            .ok_or(CropError::SizeMismatch {
                index,
                found: (0, 0),
                declared: (crop.width, crop.height),
            })?,
    };
    if image.dimensions() != (crop.width, crop.height) {
        return Err(CropError::SizeMismatch {
            index,
            found: image.dimensions(),
            declared: (crop.width, crop.height),
        });
    }
    Ok(image)
}

/// A frame box mapped into crop pixels.
fn box_to_crop(crop: &FaceCrop, bbox: &BoundingBox) -> BoundingBox {
    let top_left = crop.frame_to_crop(Point::new(bbox.left, bbox.top));
    let bottom_right = crop.frame_to_crop(Point::new(bbox.right, bbox.bottom));
    BoundingBox::new(top_left.x, top_left.y, bottom_right.x, bottom_right.y)
}

/// The face to align in a crop, in crop pixels: the client's landmarks when the aligner can
/// use them, else the detected face that best overlaps the client's box.
fn face_in_crop(
    pack: &ModelPack,
    crop: &FaceCrop,
    image: &RgbImage,
) -> Result<Option<Face>, EngineError> {
    let bbox = box_to_crop(crop, &crop.bbox);
    if let Some(landmarks) = &crop.landmarks
        && pack.aligner().supports(landmarks.scheme)
    {
        let points = landmarks.points.iter().map(|p| crop.frame_to_crop(*p)).collect();
        return Ok(Some(Face {
            bbox,
            score: crop.score.unwrap_or(1.0),
            landmarks: Landmarks { scheme: landmarks.scheme, points },
        }));
    }
    let best = pack
        .detect(image)?
        .into_iter()
        .map(|face| (face.bbox.iou(&bbox), face))
        .filter(|(iou, _)| *iou >= MIN_CROP_MATCH_IOU)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, face)| face);
    Ok(best)
}

/// A crops message: decode each crop, align with the client's landmarks (or detect inside the
/// crop), embed, identify; boxes in the reply are the client's, in frame pixels.
pub fn recognize_crops(
    pack: &ModelPack,
    gallery: &Gallery,
    message: &CropsMessage,
    naming: Naming<'_>,
    today: Date,
) -> FrameOutcome {
    let mut chips: Vec<Option<RgbImage>> = Vec::with_capacity(message.faces.len());
    for (index, crop) in message.faces.iter().enumerate() {
        let image = match decode_crop(index, crop) {
            Ok(image) => image,
            Err(error) => return FrameOutcome::Undecodable(error.to_string()),
        };
        let face = match face_in_crop(pack, crop, &image) {
            Ok(face) => face,
            Err(error) => return FrameOutcome::Failed(error),
        };
        chips.push(face.and_then(|face| pack.aligner().align(&image, &face).ok().map(|a| a.chip)));
    }
    let batch: Vec<RgbImage> = chips.iter().flatten().cloned().collect();
    let mut embeddings = match pack.embed(&batch) {
        Ok(embeddings) => embeddings.into_iter(),
        Err(error) => return FrameOutcome::Failed(error),
    };
    let results = message
        .faces
        .iter()
        .zip(chips)
        .map(|(crop, chip)| FaceResult {
            pixel_box: crop.bbox.to_pixels(message.frame_width, message.frame_height),
            score: crop.score,
            embedding: chip.and_then(|_| embeddings.next()),
        })
        .collect();
    FrameOutcome::Reply(build_reply(gallery, results, naming, today))
}

/// Why an enrollment photo was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The bytes are not a usable image.
    #[error(transparent)]
    Image(EngineError),
    /// No face was found.
    #[error("no face was found in the photo")]
    NoFace,
    /// Several faces of similar size.
    #[error(
        "the photo shows {n_faces} faces and none is clearly the subject; use a photo with one face"
    )]
    MultipleFaces {
        /// Faces detected.
        n_faces: usize,
    },
    /// The face is too small for a reliable embedding.
    #[error("the face is {side} pixels across; at least {MIN_ENROLL_FACE_SIDE} are needed")]
    FaceTooSmall {
        /// The face's shorter side.
        side: i32,
    },
    /// Inference failed.
    #[error("processing the photo failed")]
    Engine(#[source] EngineError),
}

/// The face to enroll from a photo.
#[derive(Debug, Clone)]
pub struct EnrollCandidate {
    /// The face box in the photo.
    pub bbox: PixelBox,
    /// Its embedding.
    pub embedding: Embedding,
    /// The aligned chip as JPEG, re-encoded from pixels (no metadata).
    pub chip_jpeg: Vec<u8>,
}

fn pixel_area(b: &PixelBox) -> f32 {
    ((b.right - b.left).max(0) as f32) * ((b.bottom - b.top).max(0) as f32)
}

/// Picks the one face of an enrollment photo (see [`DOMINANT_FACE_AREA_RATIO`] and
/// [`MIN_ENROLL_FACE_SIDE`]), aligns and embeds it.
pub fn enroll_photo(pack: &ModelPack, bytes: &[u8]) -> Result<EnrollCandidate, EnrollError> {
    let photo = decode_image(bytes, &DecodeLimits::PHOTO).map_err(EnrollError::Image)?;
    let (w, h) = photo.dimensions();
    let mut faces: Vec<(PixelBox, Face)> = pack
        .detect(&photo)
        .map_err(EnrollError::Engine)?
        .into_iter()
        .map(|face| (face.bbox.to_pixels(w, h), face))
        .collect();
    faces.sort_by(|a, b| pixel_area(&b.0).total_cmp(&pixel_area(&a.0)));
    let (bbox, face) = match faces.as_slice() {
        [] => return Err(EnrollError::NoFace),
        [only] => only.clone(),
        [first, second, ..] => {
            if pixel_area(&first.0) < DOMINANT_FACE_AREA_RATIO * pixel_area(&second.0) {
                return Err(EnrollError::MultipleFaces { n_faces: faces.len() });
            }
            first.clone()
        }
    };
    let side = (bbox.right - bbox.left).min(bbox.bottom - bbox.top);
    if side < MIN_ENROLL_FACE_SIDE {
        return Err(EnrollError::FaceTooSmall { side });
    }
    let aligned = pack.aligner().align(&photo, &face).map_err(|_| EnrollError::NoFace)?;
    let embedding = pack
        .embed(std::slice::from_ref(&aligned.chip))
        .map_err(EnrollError::Engine)?
        .into_iter()
        .next()
        .ok_or(EnrollError::NoFace)?;
    let chip_jpeg = encode_jpeg(&aligned.chip).map_err(EnrollError::Engine)?;
    Ok(EnrollCandidate { bbox, embedding, chip_jpeg })
}

/// Encodes pixels as a baseline JPEG.
pub fn encode_jpeg(image: &RgbImage) -> Result<Vec<u8>, EngineError> {
    let mut out = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, CHIP_JPEG_QUALITY)
        .encode_image(image)
        .map_err(|source| EngineError::Decode { source })?;
    Ok(out.into_inner())
}

/// The embedding of a photo's largest face; `Ok(None)` when it has none.
pub fn largest_face_embedding(
    pack: &ModelPack,
    bytes: &[u8],
) -> Result<Option<Embedding>, EngineError> {
    let photo = decode_image(bytes, &DecodeLimits::PHOTO)?;
    let largest =
        pack.detect(&photo)?.into_iter().max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()));
    let Some(face) = largest else { return Ok(None) };
    let Ok(aligned) = pack.aligner().align(&photo, &face) else { return Ok(None) };
    Ok(pack.embed(std::slice::from_ref(&aligned.chip))?.into_iter().next())
}

/// Re-embeds a stored chip (a JPEG of the aligned face) with the current embedder, when the
/// chip has the size the embedder expects.
pub fn reembed_chip(pack: &ModelPack, chip_jpeg: &[u8]) -> Result<Option<Embedding>, EngineError> {
    let chip = decode_image(chip_jpeg, &DecodeLimits::PHOTO)?;
    let size = pack.aligner().chip_size();
    if chip.dimensions() != (size, size) {
        return Ok(None);
    }
    Ok(pack.embed(std::slice::from_ref(&chip))?.into_iter().next())
}
