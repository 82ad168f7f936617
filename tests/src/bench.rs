//! Shared parts of the WebSocket benchmarks (`examples/bench_ws.rs`,
//! `examples/bench_vs_face_recognition.rs`): the frames, a client that keeps one frame in
//! flight, and latency statistics.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures_util::{SinkExt, StreamExt};
use image::RgbImage;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::{compose_frame, encode_jpeg, identity_photos, read_rgb};

/// Frame width of every scenario.
pub const FRAME_W: u32 = 640;
/// Frame height of every scenario.
pub const FRAME_H: u32 = 480;
/// JPEG quality of the frames (what the seed's browser client sends).
pub const QUALITY: u8 = 80;
/// Frames sent before timing starts.
pub const WARM_UP_FRAMES: usize = 3;

/// The identities the frames are composed from, in order.
pub const IDENTITIES: [&str; 8] = [
    "barack_obama",
    "katy_perry",
    "elon_musk",
    "sundar_pichai",
    "jeff_bezos",
    "rose_leslie",
    "kit_harington",
    "marissa_mayer",
];

/// The per-connection frame-rate cap the benchmarks give the server: its maximum. They measure
/// how fast the server answers a client that waits for each reply, not the cap (default 30
/// frames per second, `DDFR_WS_MAX_FPS`), which would otherwise bound every one-client figure.
pub const BENCH_WS_MAX_FPS: u32 = 1000;

/// Server environment lifting the per-connection frame-rate cap to [`BENCH_WS_MAX_FPS`].
pub fn uncapped() -> Vec<(String, String)> {
    vec![("DDFR_WS_MAX_FPS".to_owned(), BENCH_WS_MAX_FPS.to_string())]
}

/// One message to send and the identities it shows.
#[derive(Debug, Clone)]
pub struct BenchFrame {
    /// The binary message (an encoded frame or a crops message).
    pub bytes: Vec<u8>,
    /// The identities in it (for the identification count).
    pub identities: Vec<String>,
}

/// The first photo of each of [`IDENTITIES`], decoded.
pub fn load_faces(testdata: &Path) -> Result<Vec<RgbImage>> {
    IDENTITIES.iter().map(|identity| read_rgb(&identity_photos(testdata, identity)?[0])).collect()
}

/// The photo to enroll for `identity`: the first of its photos (JPEG or PNG) that is not the
/// one its frames are composed from.
pub fn enrollment_photo(testdata: &Path, identity: &str) -> Result<PathBuf> {
    let frame_photo = identity_photos(testdata, identity)?.into_iter().next();
    let mut photos: Vec<PathBuf> = std::fs::read_dir(testdata.join("faces").join(identity))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["jpg", "jpeg", "png"].iter().any(|known| e.eq_ignore_ascii_case(known))
            })
        })
        .filter(|p| Some(p) != frame_photo.as_ref())
        .collect();
    photos.sort();
    photos.into_iter().next().with_context(|| format!("{identity} has only one photo"))
}

/// 640×480 JPEG q80 frames with one face each, one per identity: the decoded frames and the
/// messages.
pub fn one_face_frames(faces: &[RgbImage]) -> Result<(Vec<RgbImage>, Vec<BenchFrame>)> {
    let frames: Vec<RgbImage> =
        faces.iter().map(|f| compose_frame(std::slice::from_ref(f), FRAME_W, FRAME_H)).collect();
    let messages = frames
        .iter()
        .zip(IDENTITIES)
        .map(|(frame, identity)| {
            Ok(BenchFrame {
                bytes: encode_jpeg(frame, QUALITY)?,
                identities: vec![identity.to_owned()],
            })
        })
        .collect::<Result<_>>()?;
    Ok((frames, messages))
}

/// 640×480 JPEG q80 frames with five faces each (tiled 3+2), four different windows of the
/// identities.
pub fn five_face_frames(faces: &[RgbImage]) -> Result<Vec<BenchFrame>> {
    (0..4)
        .map(|k| {
            Ok(BenchFrame {
                bytes: encode_jpeg(&compose_frame(&faces[k..k + 5], FRAME_W, FRAME_H), QUALITY)?,
                identities: IDENTITIES[k..k + 5].iter().map(|s| (*s).to_owned()).collect(),
            })
        })
        .collect()
}

/// What one client measured.
#[derive(Debug, Default)]
pub struct Stats {
    /// Send-to-reply time of each timed frame.
    pub latencies: Vec<Duration>,
    /// Wall time of the timed part.
    pub elapsed: Duration,
    /// Faces the frames showed, summed over the timed frames.
    pub faces_shown: usize,
    /// Faces the replies held.
    pub faces_found: usize,
    /// Faces named with an identity the frame shows.
    pub faces_identified: usize,
}

impl Stats {
    /// Replies per second.
    pub fn fps(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p` quantile (0..=1) of the latencies, in milliseconds (nearest rank).
    pub fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        if sorted.is_empty() {
            return 0.0;
        }
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index].as_secs_f64() * 1000.0
    }

    /// One report line.
    pub fn line(&self, name: &str) -> String {
        format!(
            "{name:<28} {:>7.1} FPS  p50 {:>6.1} ms  p95 {:>6.1} ms  ({} frames)",
            self.fps(),
            self.percentile(0.5),
            self.percentile(0.95),
            self.latencies.len()
        )
    }

    fn count(&mut self, frame: &BenchFrame, reply: &Value) {
        self.faces_shown += frame.identities.len();
        for face in reply["faces"].as_array().map(Vec::as_slice).unwrap_or_default() {
            self.faces_found += 1;
            if face["name"].as_str().is_some_and(|name| frame.identities.iter().any(|i| i == name))
            {
                self.faces_identified += 1;
            }
        }
    }
}

/// Streams `frames` round-robin over one WebSocket for `duration`, one frame in flight (send,
/// wait for the reply, send the next), after [`WARM_UP_FRAMES`] untimed ones. A `null` reply
/// (undecodable frame) is an error.
pub async fn stream(url: String, frames: Vec<BenchFrame>, duration: Duration) -> Result<Stats> {
    ensure!(!frames.is_empty(), "no frames to stream");
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .with_context(|| format!("connecting to {url}"))?;
    for frame in frames.iter().cycle().take(WARM_UP_FRAMES) {
        round_trip(&mut ws, frame).await?;
    }
    let mut stats = Stats::default();
    let started = Instant::now();
    for frame in frames.iter().cycle() {
        if started.elapsed() >= duration {
            break;
        }
        let sent = Instant::now();
        let reply = round_trip(&mut ws, frame).await?;
        stats.latencies.push(sent.elapsed());
        stats.count(frame, &reply);
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// Sends each frame once and returns, per frame index, the identities it shows that the reply
/// did not name (frames where every face was identified are left out).
pub async fn missed_identities(
    url: String,
    frames: &[BenchFrame],
) -> Result<Vec<(usize, Vec<String>)>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let mut misses = Vec::new();
    for (index, frame) in frames.iter().enumerate() {
        let reply = round_trip(&mut ws, frame).await?;
        let named: Vec<&str> = reply["faces"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|face| face["name"].as_str())
            .collect();
        let missed: Vec<String> =
            frame.identities.iter().filter(|i| !named.contains(&i.as_str())).cloned().collect();
        if !missed.is_empty() {
            misses.push((index, missed));
        }
    }
    Ok(misses)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends one frame and returns its JSON reply (text messages only; pings are answered by the
/// library).
async fn round_trip(ws: &mut Socket, frame: &BenchFrame) -> Result<Value> {
    ws.send(Message::binary(frame.bytes.clone())).await?;
    loop {
        if let Message::Text(text) = ws.next().await.context("connection closed")?? {
            let value: Value = serde_json::from_str(text.as_str())?;
            ensure!(!value.is_null(), "null reply: the frame was not decodable");
            return Ok(value);
        }
    }
}

/// `/proc/loadavg` (empty where it does not exist).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned()
}
