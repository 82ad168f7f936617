//! WebSocket benchmark: a real client, one frame in flight, against a `ddfr serve` it starts.
//!
//! `cargo build --release -p ddfr && cargo run --release -p ddfr-e2e --example bench_ws`
//! (`DDFR_BENCH_SECONDS`, default 10, per scenario). Frames are 640×480 JPEG q80 composed from
//! `$DDFR_TESTDATA` photos. Scenarios: `one` (1 client × 1 face), `five` (1 client × 5 faces),
//! `crops` (crops mode with 1 face), `clients2` and `clients4` (2 and 4 clients × 1 face),
//! `uhd` (3840×2160 JPEG q80 with 1 face, as a 4K camera sends), `png1080` (1920×1080 PNG with
//! 1 face) and `startup` (start-up to healthy with 10,000 stored face samples).
//!
//! Options after `--`: `--workers N` and `--intra-threads N` (passed to `ddfr serve`; default:
//! the server's own), `--scenarios one,clients4` (default: all). The server's per-connection
//! frame-rate cap is lifted to its maximum ([`BENCH_WS_MAX_FPS`]): the benchmark measures how
//! fast replies come, not the cap.

// A report tool: its output is the point.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ddfr_core::BoundingBox;
use ddfr_e2e::bench::{
    BENCH_WS_MAX_FPS, BenchFrame, FRAME_H, FRAME_W, five_face_frames, load_average, load_faces,
    one_face_frames, stream, uncapped,
};
use ddfr_e2e::{Server, ServerOptions, crop_region, encode_jpeg, identity_photos, testdata};
use ddfr_protocol::{CropEncoding, CropRegion, CropsMessage, FaceCrop, encode_crops_message};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// Face samples inserted for the start-up measurement.
const STARTUP_SAMPLES: usize = 10_000;
/// Every scenario, in the order they run.
const SCENARIOS: [&str; 8] =
    ["one", "five", "crops", "clients2", "clients4", "uhd", "png1080", "startup"];

/// The command line after `--`.
#[derive(Debug)]
struct Options {
    workers: Option<usize>,
    intra_threads: Option<usize>,
    scenarios: Vec<String>,
}

impl Options {
    fn parse() -> Result<Self> {
        let mut options = Self {
            workers: None,
            intra_threads: None,
            scenarios: SCENARIOS.iter().map(|s| (*s).to_owned()).collect(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--workers" => options.workers = Some(value()?.parse()?),
                "--intra-threads" => options.intra_threads = Some(value()?.parse()?),
                "--scenarios" => {
                    options.scenarios = value()?.split(',').map(str::to_owned).collect();
                    if let Some(unknown) =
                        options.scenarios.iter().find(|s| !SCENARIOS.contains(&s.as_str()))
                    {
                        bail!("unknown scenario {unknown:?}; known: {}", SCENARIOS.join(","));
                    }
                }
                other => bail!(
                    "unknown option {other:?}; use --workers N, --intra-threads N, --scenarios {}",
                    SCENARIOS.join(",")
                ),
            }
        }
        Ok(options)
    }

    fn runs(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = Options::parse()?;
    let Some(data) = testdata() else {
        println!("SKIPPED: $DDFR_TESTDATA not found");
        return Ok(());
    };
    let seconds: u64 =
        std::env::var("DDFR_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let duration = Duration::from_secs(seconds);
    println!("load average before: {}", load_average());
    let faces = load_faces(&data)?;
    let (one_face, one_face_jpeg) = one_face_frames(&faces)?;
    let five_faces = five_face_frames(&faces)?;

    let server = Server::start_with(ServerOptions {
        workers: options.workers,
        intra_threads: options.intra_threads,
        env: uncapped(),
        ..ServerOptions::default()
    })
    .await?;
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
        "server: backend {} workers {} intra-threads {} pack {} ws-max-fps {BENCH_WS_MAX_FPS}",
        health["backend"],
        health["workers"],
        options.intra_threads.map_or_else(|| "default".to_owned(), |n| n.to_string()),
        health["pack"]
    );

    if options.runs("one") {
        let one = stream(server.ws_url(), one_face_jpeg.clone(), duration).await?;
        println!("{}", one.line("1 client, 1 face"));
    }
    if options.runs("five") {
        let five = stream(server.ws_url(), five_faces, duration).await?;
        println!("{}", five.line("1 client, 5 faces"));
    }

    if options.runs("crops") {
        let crops = crops_messages(&server, &one_face, &one_face_jpeg).await?;
        let crops = stream(server.ws_url(), crops, duration).await?;
        println!("{}", crops.line("crops, 1 face (no lmk)"));
    }

    for n_clients in [2usize, 4] {
        if !options.runs(&format!("clients{n_clients}")) {
            continue;
        }
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
    for (scenario, label, width, height, format) in [
        ("uhd", "3840x2160 JPEG, 1 face", 3840, 2160, image::ImageFormat::Jpeg),
        ("png1080", "1920x1080 PNG, 1 face", 1920, 1080, image::ImageFormat::Png),
    ] {
        if options.runs(scenario) {
            let frames = large_frames(&faces, width, height, format)?;
            let bytes = frames.iter().map(|f| f.bytes.len()).sum::<usize>() / frames.len();
            let stats = stream(server.ws_url(), frames, duration).await?;
            println!("{} (mean {} KB per frame)", stats.line(label), bytes / 1024);
        }
    }
    drop(server);

    if options.runs("startup") {
        // Start-up with 10,000 stored face samples, inserted directly through the store.
        let dir = tempfile::tempdir()?;
        let embedder = health["embedder"].as_str().context("embedder id")?.to_owned();
        let inserted = Instant::now();
        insert_samples(dir.path(), &embedder, 128, STARTUP_SAMPLES).await?;
        println!("inserted {STARTUP_SAMPLES} samples in {:.1} s", inserted.elapsed().as_secs_f64());
        let started = Instant::now();
        let server = Server::start_with(ServerOptions {
            data_dir: Some(dir.path().to_path_buf()),
            workers: options.workers,
            intra_threads: options.intra_threads,
            env: uncapped(),
            ..ServerOptions::default()
        })
        .await?;
        println!(
            "start-up to healthy with {STARTUP_SAMPLES} samples: {:.2} s",
            started.elapsed().as_secs_f64()
        );
        let health: Value = reqwest::get(server.url("/api/health")).await?.json().await?;
        println!("  n_faces {} n_persons {}", health["n_faces"], health["n_persons"]);
    }
    println!("load average after: {}", load_average());
    Ok(())
}

/// Crops-mode messages for the one-face frames: boxes from a full-frame pass, crops with a 40 %
/// One frame per face photo: `width`×`height`, grey, the photo scaled into the middle two
/// fifths (a person a few metres from a door camera), encoded as `format` (JPEG at q80).
fn large_frames(
    faces: &[image::RgbImage],
    width: u32,
    height: u32,
    format: image::ImageFormat,
) -> Result<Vec<BenchFrame>> {
    faces
        .iter()
        .zip(ddfr_e2e::bench::IDENTITIES)
        .map(|(face, identity)| {
            let inner =
                ddfr_e2e::compose_frame(std::slice::from_ref(face), width * 2 / 5, height * 2 / 5);
            let mut frame = image::RgbImage::from_pixel(width, height, image::Rgb([96, 96, 96]));
            image::imageops::replace(
                &mut frame,
                &inner,
                i64::from(width * 3 / 10),
                i64::from(height * 3 / 10),
            );
            let bytes = if format == image::ImageFormat::Jpeg {
                encode_jpeg(&frame, 80)?
            } else {
                let mut out = std::io::Cursor::new(Vec::new());
                image::DynamicImage::ImageRgb8(frame).write_to(&mut out, format)?;
                out.into_inner()
            };
            Ok(BenchFrame { bytes, identities: vec![identity.to_owned()] })
        })
        .collect()
}

/// margin, JPEG q90, no landmarks (the server detects inside the crop).
async fn crops_messages(
    server: &Server,
    frames: &[image::RgbImage],
    jpegs: &[BenchFrame],
) -> Result<Vec<BenchFrame>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await?;
    let mut messages = Vec::new();
    for (frame, jpeg) in frames.iter().zip(jpegs) {
        ws.send(Message::binary(jpeg.bytes.clone())).await?;
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
        messages.push(BenchFrame {
            bytes: encode_crops_message(&message),
            identities: jpeg.identities.clone(),
        });
    }
    Ok(messages)
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
