//! The synchronous work of one job: frame or crops to a reply, photo to an enrollment
//! candidate, photo to its largest face's embedding. Runs only inside
//! [`crate::pool::InferencePool::run`]; reads the gallery, never the database.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use ddfr_core::{
    BoundingBox, Embedding, Face, FaceId, Landmarks, PersonId, PixelBox, Point, VisitorId,
};
use ddfr_engine::EngineError;
use ddfr_engine::decode::{DecodeLimits, decode_image};
use ddfr_engine::pack::ModelPack;
use ddfr_engine::quality::{pose_ratios, sharpness};
use ddfr_protocol::{
    CropEncoding, CropsMessage, Date, FaceCrop, FrameReply, MAX_CROP_BYTES, MAX_CROP_SIDE, WsFace,
};
use ddfr_track::{Observation, Tracker, TrackerConfig};
use image::RgbImage;
use image::codecs::jpeg::JpegEncoder;

use crate::gallery::Gallery;
use crate::state::now_timestamp;
use crate::visitors::VisitorRegistry;

/// An enrollment photo with several faces is accepted when its largest face covers at least
/// this many times the area of the next one (a clear subject with a background face); the
/// largest face is then enrolled. Otherwise it is refused with `multiple_faces`.
pub const DOMINANT_FACE_AREA_RATIO: f32 = 2.0;

/// The shorter side, in photo pixels, below which an enrollment face is `face_too_small`:
/// smaller faces give unreliable embeddings.
pub const MIN_ENROLL_FACE_SIDE: i32 = 40;

/// Sharpness (see [`ddfr_engine::quality::sharpness`]) below which an enrollment chip is
/// `blurry`. Measured on the default pack's 150-pixel chips of the 61 test-data faces: sharp
/// photos 0.043–1.23; the same chips blurred with a Gaussian of σ = 1 px 0.012–0.080, σ = 2 px
/// 0.003–0.018, σ = 3 px 0.001–0.010. The bar sits about 3× below the least sharp real photo and
/// rejects chips blurred beyond σ ≈ 2 px, i.e. detail lost across a fifth of an eye's width.
pub const MIN_ENROLL_SHARPNESS: f32 = 0.015;

/// Yaw ratio (see [`ddfr_engine::quality::PoseRatios`]) above which an enrollment face is
/// `extreme_pose`: about 45° of head turn (the nose tip sits ~0.6 eye distances in front of the
/// eyes, so the ratio is ≈ 0.6·tan(yaw)). Test-data portraits reach 0.37 (≈ 32°).
pub const MAX_ENROLL_YAW: f32 = 0.6;

/// Pitch ratio bounds outside which an enrollment face is `extreme_pose` (head tilted far back
/// or bowed, beyond ≈ 40°). Level test-data faces span 0.40–0.75 with detector landmarks.
pub const ENROLL_PITCH_RANGE: (f32, f32) = (0.15, 1.1);

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
    max_jpeg_scans: 20,
    max_pixels: MAX_CROP_SIDE as u64 * MAX_CROP_SIDE as u64,
    max_decode_time: Some(std::time::Duration::from_millis(250)),
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
    /// The aligned chip (kept for the unknown-visitor feature's samples).
    chip: Option<RgbImage>,
}

/// Gallery candidates fetched per face: enough samples that a person with several close
/// samples does not crowd out the runner-up person the one-per-frame assignment may need.
pub const CANDIDATE_SAMPLES: usize = 16;

/// What a `/ws` connection remembers between frames: its tracks and, when the unknown-visitor
/// feature is on, which track was counted as which visitor.
#[derive(Debug)]
pub struct StreamState {
    tracker: Tracker,
    visitors: Option<Arc<VisitorRegistry>>,
    visitor_of_track: HashMap<u64, VisitorId>,
    /// The latest frame's decisions and live tracks, for the events (taken by the `/ws` loop).
    frame_tracks: Option<FrameTracks>,
}

/// One frame's tracker decisions and the live track ids after it.
pub type FrameTracks = (Vec<ddfr_events::TrackSeen>, Vec<u64>);

impl StreamState {
    /// A new connection's state.
    pub fn new(min_similarity: f32, visitors: Option<Arc<VisitorRegistry>>) -> Self {
        Self {
            tracker: Tracker::new(TrackerConfig::new(min_similarity)),
            visitors,
            visitor_of_track: HashMap::new(),
            frame_tracks: None,
        }
    }

    /// The decisions and live tracks of the frame processed last, once.
    pub fn take_frame_tracks(&mut self) -> Option<FrameTracks> {
        self.frame_tracks.take()
    }

    /// The visitor id of a confirmed-unknown face: looked up once per track (one sighting),
    /// then remembered for the track's life.
    fn visitor_for(&mut self, track_id: u64, result: &FaceResult) -> Option<VisitorId> {
        let registry = self.visitors.as_ref()?;
        if let Some(id) = self.visitor_of_track.get(&track_id) {
            return Some(*id);
        }
        let embedding = result.embedding.as_ref()?;
        let id = registry.sighting(embedding, now_timestamp(), || {
            result.chip.as_ref().and_then(|chip| encode_jpeg(chip).ok())
        });
        self.visitor_of_track.insert(track_id, id);
        Some(id)
    }
}

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
        stream: &'a mut StreamState,
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
    let (decisions, mut stream) = match naming {
        Naming::Single { min_similarity } => (
            Tracker::new(TrackerConfig::new(min_similarity)).update(Duration::ZERO, &observations),
            None,
        ),
        Naming::Stream { stream, at } => {
            stream.tracker.sync_gallery(generation);
            let decisions = stream.tracker.update(at, &observations);
            let seen = decisions
                .iter()
                .map(|d| ddfr_events::TrackSeen {
                    track_id: d.track_id,
                    person: d.person.map(|c| c.person),
                    confirmed: d.confirmed,
                })
                .collect();
            stream.frame_tracks = Some((seen, stream.tracker.live_track_ids().collect()));
            (decisions, Some(stream))
        }
    };
    let mut faces = Vec::with_capacity(results.len());
    let mut matched = Vec::new();
    for ((result, decision), observation) in results.iter().zip(decisions).zip(&observations) {
        let named =
            decision.person.and_then(|c| gallery.person(c.person).map(|p| (p, c.similarity)));
        if let Some((person, _)) = &named {
            matched.push(person.id);
        }
        let mut face = match &named {
            Some((person, similarity)) => {
                let face = WsFace::identified(result.pixel_box, person, *similarity, today);
                match gallery.false_accept_rate(*similarity) {
                    Some(far) => face.with_false_accept_rate(far),
                    None => face,
                }
            }
            None => WsFace::unknown(result.pixel_box),
        };
        if let Some(score) = result.score {
            face = face.with_score(score);
        }
        if let Some(stream) = stream.as_deref_mut() {
            face = face.with_track_id(decision.track_id);
            // Unknown for sure: confirmed by the track's votes, or nobody is enrolled at all.
            let surely_unknown = decision.confirmed || observation.candidates.is_empty();
            if named.is_none()
                && surely_unknown
                && let Some(visitor) = stream.visitor_for(decision.track_id, result)
            {
                face = face.with_unknown_id(visitor.0);
            }
        }
        faces.push(face);
    }
    // Retention counts from the last match: noted in memory, written in batches.
    if !matched.is_empty() {
        gallery.last_matches().note(matched, crate::state::now_timestamp());
    }
    if let Some(stream) = stream {
        let tracker = &stream.tracker;
        stream.visitor_of_track.retain(|track, _| tracker.is_live(*track));
    }
    FrameReply::new(faces)
}

fn pixel_box_to_bbox(b: &PixelBox) -> BoundingBox {
    BoundingBox::new(b.left as f32, b.top as f32, b.right as f32, b.bottom as f32)
}

/// A face's aligned chip and its embedding; both `None` when the face could not be aligned.
type ChipAndEmbedding = (Option<RgbImage>, Option<Embedding>);

/// Embeds the chips that exist in one call; returns each chip with its embedding. The chips
/// move into the batch and back out, never copied (a chip is 67 KB at 150×150).
fn embed_chips(
    pack: &ModelPack,
    chips: Vec<Option<RgbImage>>,
) -> Result<Vec<ChipAndEmbedding>, EngineError> {
    let present: Vec<bool> = chips.iter().map(Option::is_some).collect();
    let batch: Vec<RgbImage> = chips.into_iter().flatten().collect();
    let mut embeddings = pack.embed(&batch)?.into_iter();
    let mut batch = batch.into_iter();
    Ok(present
        .into_iter()
        .map(|present| if present { (batch.next(), embeddings.next()) } else { (None, None) })
        .collect())
}

/// Aligns each face (keeping those that fail, unembedded) and embeds the chips in one call.
fn align_and_embed(
    pack: &ModelPack,
    image: &RgbImage,
    faces: &[Face],
) -> Result<Vec<ChipAndEmbedding>, EngineError> {
    let chips: Vec<Option<RgbImage>> =
        faces.iter().map(|face| pack.aligner().align(image, face).ok().map(|a| a.chip)).collect();
    embed_chips(pack, chips)
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
        .map(|(face, (chip, embedding))| FaceResult {
            pixel_box: face.bbox.to_pixels(frame.width(), frame.height()),
            score: Some(face.score),
            embedding,
            chip,
        })
        .collect();
    Ok(build_reply(gallery, results, naming, today))
}

/// Why one crop could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CropError {
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
pub(crate) fn decode_crop(index: usize, crop: &FaceCrop) -> Result<RgbImage, CropError> {
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
    let embedded = match embed_chips(pack, chips) {
        Ok(embedded) => embedded,
        Err(error) => return FrameOutcome::Failed(error),
    };
    let results = message
        .faces
        .iter()
        .zip(embedded)
        .map(|(crop, (chip, embedding))| FaceResult {
            pixel_box: crop.bbox.to_pixels(message.frame_width, message.frame_height),
            score: crop.score,
            embedding,
            chip,
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
    /// The face is too blurred for a reliable embedding.
    #[error(
        "the face is blurry (sharpness {sharpness:.3}, at least {MIN_ENROLL_SHARPNESS} is needed)"
    )]
    Blurry {
        /// The chip's sharpness.
        sharpness: f32,
    },
    /// The head is turned or tilted too far.
    #[error(
        "the head is turned or tilted too far (yaw ratio {yaw:.2}, pitch ratio {pitch:.2}); use a photo facing the camera"
    )]
    ExtremePose {
        /// Yaw ratio.
        yaw: f32,
        /// Pitch ratio.
        pitch: f32,
    },
    /// Inference failed.
    #[error("processing the photo failed")]
    Engine(#[source] EngineError),
}

impl EnrollError {
    /// The reason code of the REST error and of a batch's per-photo result.
    pub fn code(&self) -> &'static str {
        match self {
            EnrollError::Image(_) => "invalid_image",
            EnrollError::NoFace => "no_face",
            EnrollError::MultipleFaces { .. } => "multiple_faces",
            EnrollError::FaceTooSmall { .. } => "face_too_small",
            EnrollError::Blurry { .. } => "blurry",
            EnrollError::ExtremePose { .. } => "extreme_pose",
            EnrollError::Engine(_) => "internal_error",
        }
    }
}

/// Checks the quality of an enrollment face: pose from the detector's landmarks, sharpness
/// of the aligned chip.
pub fn check_enroll_quality(face: &Face, chip: &RgbImage) -> Result<(), EnrollError> {
    if let Some(pose) = pose_ratios(&face.landmarks)
        && (pose.yaw > MAX_ENROLL_YAW
            || pose.pitch < ENROLL_PITCH_RANGE.0
            || pose.pitch > ENROLL_PITCH_RANGE.1)
    {
        return Err(EnrollError::ExtremePose { yaw: pose.yaw, pitch: pose.pitch });
    }
    let sharpness = sharpness(chip);
    if sharpness < MIN_ENROLL_SHARPNESS {
        return Err(EnrollError::Blurry { sharpness });
    }
    Ok(())
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
    check_enroll_quality(&face, &aligned.chip)?;
    let embedding = pack
        .embed(std::slice::from_ref(&aligned.chip))
        .map_err(EnrollError::Engine)?
        .into_iter()
        .next()
        .ok_or(EnrollError::NoFace)?;
    let chip_jpeg = encode_jpeg(&aligned.chip).map_err(EnrollError::Engine)?;
    Ok(EnrollCandidate { bbox, embedding, chip_jpeg })
}

/// Samples searched when screening an enrollment: the person's own closest sample and the
/// closest other person are among them unless a gallery holds dozens of near-identical faces.
const SCREEN_SAMPLES: usize = 64;

/// The similarity from which a new photo counts as a near-duplicate of a person's existing
/// sample and is not stored again: a tenth of the way from the threshold to identical
/// (0.9916 for the default pack's 0.916). The same photo re-encoded or re-cropped scores
/// ≥ 0.995; different photos of one person rarely exceed 0.98.
pub fn near_duplicate_similarity(min_similarity: f32) -> f32 {
    1.0 - 0.1 * (1.0 - min_similarity)
}

/// What the gallery says about a photo about to be enrolled for `person`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Screening {
    /// Store it.
    New,
    /// Nearly identical to this existing sample of the same person: skipped.
    Duplicate(FaceId),
    /// (Strict mode) it matches another enrolled person better than this one.
    LooksLikeOther {
        /// The other person.
        other: PersonId,
        /// Similarity to the other person's closest sample.
        similarity: f32,
        /// Similarity to this person's closest sample, if they have any.
        own: Option<f32>,
    },
}

/// Screens an enrollment embedding against the gallery: near-duplicates of the person's own
/// samples are skipped; in strict mode a photo whose closest person above the threshold is
/// someone else (closer than any of the person's own samples) is refused.
pub fn screen_enrollment(
    gallery: &Gallery,
    person: PersonId,
    embedding: &Embedding,
    min_similarity: f32,
    strict: bool,
) -> Screening {
    let hits = gallery.nearest_samples(embedding, SCREEN_SAMPLES);
    let own = hits.iter().find(|h| h.person == person);
    if let Some(own) = own
        && own.similarity >= near_duplicate_similarity(min_similarity)
    {
        return Screening::Duplicate(own.face);
    }
    if strict
        && let Some(other) = hits.iter().find(|h| h.person != person)
        && other.similarity >= min_similarity
        && own.is_none_or(|own| other.similarity > own.similarity)
    {
        return Screening::LooksLikeOther {
            other: other.person,
            similarity: other.similarity,
            own: own.map(|h| h.similarity),
        };
    }
    Screening::New
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

#[cfg(test)]
mod tests {
    use super::*;
    use ddfr_core::LandmarkScheme;

    fn face_with_nose(nose_x: f32, nose_y: f32) -> Face {
        let points = [
            (30.0, 40.0),
            (70.0, 40.0),
            (nose_x, nose_y),
            (50.0, 80.0),
            (20.0, 50.0),
            (80.0, 50.0),
        ];
        Face {
            bbox: BoundingBox::new(10.0, 10.0, 90.0, 100.0),
            score: 0.9,
            landmarks: Landmarks {
                scheme: LandmarkScheme::BlazeFace6,
                points: points.iter().map(|&(x, y)| Point::new(x, y)).collect(),
            },
        }
    }

    fn textured_chip() -> RgbImage {
        RgbImage::from_fn(150, 150, |x, y| {
            let v = if (x / 2 + y / 3) % 2 == 0 { 210 } else { 30 };
            image::Rgb([v, v / 2, v])
        })
    }

    #[test]
    fn frontal_sharp_faces_pass_the_gate() {
        assert!(check_enroll_quality(&face_with_nose(52.0, 64.0), &textured_chip()).is_ok());
    }

    #[test]
    fn turned_tilted_and_blurred_faces_are_refused_with_their_code() {
        let chip = textured_chip();
        // Nose 0.7 eye distances to the side: more than 45° of yaw.
        let turned = check_enroll_quality(&face_with_nose(78.0, 64.0), &chip).unwrap_err();
        assert_eq!(turned.code(), "extreme_pose");
        // Nose level with the eyes: the head is tilted far back.
        let tilted = check_enroll_quality(&face_with_nose(50.0, 42.0), &chip).unwrap_err();
        assert_eq!(tilted.code(), "extreme_pose");
        let bowed = check_enroll_quality(&face_with_nose(50.0, 90.0), &chip).unwrap_err();
        assert_eq!(bowed.code(), "extreme_pose");
        let blurred = image::imageops::blur(&chip, 4.0);
        let error = check_enroll_quality(&face_with_nose(52.0, 64.0), &blurred).unwrap_err();
        assert_eq!(error.code(), "blurry");
        assert!(error.to_string().contains("blurry"));
    }

    #[test]
    fn near_duplicate_bar_follows_the_threshold() {
        assert!((near_duplicate_similarity(0.916) - 0.9916).abs() < 1e-4);
        assert!((near_duplicate_similarity(0.47) - 0.947).abs() < 1e-4);
    }
}
