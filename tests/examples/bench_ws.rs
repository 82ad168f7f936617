//! WebSocket benchmark: a real client, one frame in flight, against a `ddfr serve` it starts.
//!
//! `cargo build --release -p ddfr && cargo run --release -p ddfr-e2e --example bench_ws`
//! (`DDFR_BENCH_SECONDS`, default 10, per scenario). Frames are 640×480 JPEG q80 composed from
//! `$DDFR_TESTDATA` photos. Scenarios: 1 client × 1 face, 1 client × 5 faces, crops mode with
//! 1 face, 4 clients × 1 face, and start-up to healthy with 10,000 stored face samples.

// A report tool: its output is the point.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ddfr_core::BoundingBox;
use ddfr_e2e::{
    Server, ServerOptions, compose_frame, crop_region, encode_jpeg, identity_photos, read_rgb,
    testdata,
};
use ddfr_protocol::{CropEncoding, CropRegion, CropsMessage, FaceCrop, encode_crops_message};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// Frame size of every scenario.
const FRAME_W: u32 = 640;
const FRAME_H: u32 = 480;
/// JPEG quality of the frames.
const QUALITY: u8 = 80;
/// Face samples inserted for the start-up measurement.
const STARTUP_SAMPLES: usize = 10_000;

#[derive(Debug, Default)]
struct Stats {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Stats {
    fn fps(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        if sorted.is_empty() {
            return 0.0;
        }
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index].as_secs_f64() * 1000.0
    }
    fn line(&self, name: &str) -> String {
        format!(
            "{name:<28} {:>7.1} FPS  p50 {:>6.1} ms  p95 {:>6.1} ms  ({} frames)",
            self.fps(),
            self.percentile(0.5),
            self.percentile(0.95),
            self.latencies.len()
        )
    }
}

async fn stream(url: String, messages: Vec<Vec<u8>>, duration: Duration) -> Result<Stats> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    // Warm-up.
    for message in messages.iter().take(3) {
        ws.send(Message::binary(message.clone())).await?;
        ws.next().await.context("closed")??;
    }
    let mut stats = Stats::default();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < duration {
        let sent = Instant::now();
        ws.send(Message::binary(messages[i % messages.len()].clone())).await?;
        loop {
            match ws.next().await.context("closed")?? {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(text.as_str())?;
                    anyhow::ensure!(!value.is_null(), "null reply");
                    break;
                }
                _ => continue,
            }
        }
        stats.latencies.push(sent.elapsed());
        i += 1;
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

fn load_faces(data: &std::path::Path) -> Result<Vec<image::RgbImage>> {
    let mut faces = Vec::new();
    for identity in [
        "barack_obama",
        "katy_perry",
        "elon_musk",
        "sundar_pichai",
        "jeff_bezos",
        "rose_leslie",
        "kit_harington",
        "marissa_mayer",
    ] {
        faces.push(read_rgb(&identity_photos(data, identity)?[0])?);
    }
    Ok(faces)
}

#[tokio::main]
async fn main() -> Result<()> {
    let Some(data) = testdata() else {
        println!("SKIPPED: $DDFR_TESTDATA not found");
        return Ok(());
    };
    let seconds: u64 =
        std::env::var("DDFR_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let duration = Duration::from_secs(seconds);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before: {}", load.trim());
    let faces = load_faces(&data)?;
    let one_face: Vec<image::RgbImage> =
        faces.iter().map(|f| compose_frame(std::slice::from_ref(f), FRAME_W, FRAME_H)).collect();
    let one_face_jpeg: Vec<Vec<u8>> =
        one_face.iter().map(|f| encode_jpeg(f, QUALITY)).collect::<Result<_>>()?;
    let five_faces: Vec<Vec<u8>> = (0..4)
        .map(|k| encode_jpeg(&compose_frame(&faces[k..k + 5], FRAME_W, FRAME_H), QUALITY))
        .collect::<Result<_>>()?;

    let server = Server::start_with(ServerOptions::default()).await?;
    // Enroll a few identities so identification runs against a non-empty gallery.
    for identity in ["barack_obama", "katy_perry", "elon_musk"] {
        let id = ddfr_e2e::create_person(&server, None, identity, "Bench").await?;
        ddfr_e2e::add_face(
            &server,
            None,
            id,
            std::fs::read(&identity_photos(&data, identity)?[1])?,
        )
        .await?;
    }
    let health: Value = reqwest::get(server.url("/api/health")).await?.json().await?;
    println!(
        "server: backend {} workers {} pack {}",
        health["backend"], health["workers"], health["pack"]
    );

    let one = stream(server.ws_url(), one_face_jpeg.clone(), duration).await?;
    println!("{}", one.line("1 client, 1 face"));
    let five = stream(server.ws_url(), five_faces, duration).await?;
    println!("{}", five.line("1 client, 5 faces"));

    // Crops mode: boxes from a full-frame pass, crops with a 40 % margin, JPEG q90, no landmarks
    // (the server detects inside the crop).
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await?;
    let mut crops_messages = Vec::new();
    for (frame, jpeg) in one_face.iter().zip(&one_face_jpeg) {
        ws.send(Message::binary(jpeg.clone())).await?;
        let reply: Value = match ws.next().await.context("closed")?? {
            Message::Text(text) => serde_json::from_str(text.as_str())?,
            _ => continue,
        };
        let Some(face) = reply["faces"].as_array().and_then(|f| f.first()) else { continue };
        let px = |k: &str| face[k].as_f64().unwrap_or(0.0) as f32;
        let (left, top, right, bottom) = (px("left"), px("top"), px("right"), px("bottom"));
        let margin = 0.4 * (right - left).max(bottom - top);
        let (crop, [l, t, w, h]) =
            crop_region(frame, left - margin, top - margin, right + margin, bottom + margin);
        let message = CropsMessage {
            frame_width: FRAME_W,
            frame_height: FRAME_H,
            faces: vec![FaceCrop {
                bbox: BoundingBox::new(left, top, right, bottom),
                landmarks: None,
                score: None,
                region: CropRegion { left: l, top: t, width: w, height: h },
                width: crop.width(),
                height: crop.height(),
                encoding: CropEncoding::Jpeg,
                data: encode_jpeg(&crop, 90)?,
            }],
        };
        crops_messages.push(encode_crops_message(&message));
    }
    drop(ws);
    let crops = stream(server.ws_url(), crops_messages, duration).await?;
    println!("{}", crops.line("crops, 1 face (no lmk)"));

    for n_clients in [2usize, 4] {
        let tasks: Vec<_> = (0..n_clients)
            .map(|k| {
                let mut frames = one_face_jpeg.clone();
                frames.rotate_left(k);
                tokio::spawn(stream(server.ws_url(), frames, duration))
            })
            .collect();
        let mut total = 0.0;
        let mut lines = Vec::new();
        for task in tasks {
            let stats = task.await??;
            total += stats.fps();
            lines.push(format!("{:.1}", stats.fps()));
        }
        println!(
            "{n_clients} clients, 1 face            {total:>7.1} FPS aggregate (per client: {})",
            lines.join(", ")
        );
    }
    drop(server);

    // Start-up with 10,000 stored face samples, inserted directly through the store.
    let dir = tempfile::tempdir()?;
    let embedder = health["embedder"].as_str().context("embedder id")?.to_owned();
    let inserted = Instant::now();
    insert_samples(dir.path(), &embedder, 128, STARTUP_SAMPLES).await?;
    println!("inserted {STARTUP_SAMPLES} samples in {:.1} s", inserted.elapsed().as_secs_f64());
    let started = Instant::now();
    let server = Server::start_with(ServerOptions {
        data_dir: Some(dir.path().to_path_buf()),
        ..ServerOptions::default()
    })
    .await?;
    println!(
        "start-up to healthy with {STARTUP_SAMPLES} samples: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let health: Value = reqwest::get(server.url("/api/health")).await?.json().await?;
    println!("  n_faces {} n_persons {}", health["n_faces"], health["n_persons"]);
    println!(
        "load average after: {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    Ok(())
}

async fn insert_samples(dir: &std::path::Path, model: &str, dim: usize, n: usize) -> Result<()> {
    let url = ddfr_store::DatabaseUrl::new(format!("sqlite:{}", dir.join("ddfr.db").display()));
    let store = ddfr_store::open_store(&url).await?;
    let today: ddfr_protocol::Date = "1990-01-01".parse()?;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let per_person = 10;
    for p in 0..n / per_person {
        let fields = ddfr_protocol::PersonFields {
            name: format!("P{p}"),
            surname: "Bench".into(),
            birthday: today,
            relationship: ddfr_protocol::Relationship::Altro,
            role: ddfr_protocol::Role::Guest,
        };
        let person = store.create_person(&fields).await?;
        for _ in 0..per_person {
            let raw: Vec<f32> = (0..dim)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect();
            let face = ddfr_store::NewFace {
                embedding: ddfr_core::Embedding::from_raw(raw)?,
                model: ddfr_core::ModelId::new(model),
                bbox: ddfr_core::PixelBox { top: 0, right: 10, bottom: 10, left: 0 },
                crop_jpeg: vec![0xFF, 0xD8, 0xFF, 0xD9],
            };
            store.add_face(person.id, &face).await?;
        }
    }
    store.close().await;
    Ok(())
}
