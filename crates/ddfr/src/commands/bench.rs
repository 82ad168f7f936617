//! `ddfr bench`: per-stage timings of the pipeline on 640×480 JPEG frames with one and five
//! faces, for each available backend, then gallery search latency and recall, and peak memory.
//!
//! Frames are composed from the developer test photos (`$DDFR_TESTDATA`), encoded as JPEG at
//! quality 80 like a browser's `canvas.toBlob(..., 'image/jpeg', 0.8)`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use image::codecs::jpeg::JpegEncoder;
use image::{RgbImage, imageops};
use serde::Serialize;

use ddfr_core::{Embedding, FaceId, PersonId};
use ddfr_engine::decode::{DecodeLimits, decode_image};
use ddfr_engine::pack::ModelPack;
use ddfr_engine::runner::InferenceBackend;
use ddfr_index::{EmbeddingIndex, FlatIndex};

use crate::engine::EngineArgs;
use crate::output::{emit_json, emit_text};

/// Frame size of the benchmark, the common webcam resolution.
const FRAME_W: u32 = 640;
/// See [`FRAME_W`].
const FRAME_H: u32 = 480;
/// JPEG quality of the frames (browsers' default for `toBlob` is 0.92; the seed client uses 0.8).
const JPEG_QUALITY: u8 = 80;
/// Gallery size searched during the pipeline benchmark: a large household.
const PIPELINE_GALLERY: usize = 1000;
/// Dimension of the search benchmark's vectors: the default embedder's.
const INDEX_DIM: usize = 128;
/// Noisy and random queries per gallery size in the search benchmark.
const INDEX_QUERIES: usize = 300;

/// Options of `ddfr bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The developer test data (photos are composed into frames).
    #[arg(long, env = "DDFR_TESTDATA", default_value = "../shared/testdata")]
    pub testdata: PathBuf,
    /// Timed iterations per frame and backend (after 3 warm-up runs).
    #[arg(long, default_value_t = 50)]
    pub iterations: usize,
    /// Backends to measure (default: every one compiled in and loadable).
    #[arg(long, value_delimiter = ',')]
    pub backends: Vec<String>,
    /// Gallery sizes for the search benchmark (empty: skip it).
    #[arg(long, value_delimiter = ',', default_value = "1000,100000,1000000")]
    pub index_sizes: Vec<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Serialize)]
struct StageStats {
    p50_ms: f64,
    p95_ms: f64,
    mean_ms: f64,
}

impl StageStats {
    fn from(samples: &mut [Duration]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
        let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
        Self { p50_ms: at(0.5), p95_ms: at(0.95), mean_ms: mean }
    }
}

#[derive(Debug, Serialize)]
struct PipelineRow {
    backend: String,
    frame: String,
    faces_found: usize,
    jpeg_bytes: usize,
    decode: StageStats,
    detect: StageStats,
    align: StageStats,
    embed: StageStats,
    search: StageStats,
    total: StageStats,
    fps_one_worker: f64,
}

/// One gallery-search measurement (from `ddfr_index::bench`), in report form.
#[derive(Debug, Serialize)]
struct IndexRow {
    kind: &'static str,
    n: usize,
    dim: usize,
    build_ms: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_mean_us: Option<f64>,
    recall_noisy: f64,
    recall_random: f64,
    memory_mib: f64,
}

impl From<ddfr_index::bench::BenchRow> for IndexRow {
    fn from(r: ddfr_index::bench::BenchRow) -> Self {
        Self {
            kind: r.kind,
            n: r.n,
            dim: r.dim,
            build_ms: r.build_ms,
            p50_us: r.p50_us,
            p99_us: r.p99_us,
            cpu_mean_us: r.cpu_mean_us,
            recall_noisy: r.recall_noisy,
            recall_random: r.recall_random,
            memory_mib: r.memory_bytes as f64 / (1024.0 * 1024.0),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    pipeline: Vec<PipelineRow>,
    index: Vec<IndexRow>,
    peak_rss_mib: f64,
}

pub fn run(engine: &EngineArgs, args: &BenchArgs) -> Result<()> {
    let frames = compose_frames(&args.testdata)?;
    let backends: Vec<InferenceBackend> = if args.backends.is_empty() {
        InferenceBackend::compiled()
    } else {
        args.backends
            .iter()
            .map(|b| InferenceBackend::parse(b).with_context(|| format!("unknown backend {b:?}")))
            .collect::<Result<_>>()?
    };
    let mut pipeline = Vec::new();
    for backend in backends {
        let mut engine = engine.clone();
        engine.backend = format!("{backend:?}").to_lowercase();
        let pack = match engine.load_pack(1) {
            Ok(pack) => pack,
            Err(error) if args.backends.is_empty() => {
                tracing_free_note(&format!("skipping backend {backend:?}: {error:#}"));
                continue;
            }
            Err(error) => return Err(error),
        };
        let gallery = random_gallery(PIPELINE_GALLERY, pack.embedding_dim(), 7)?;
        for (name, jpeg) in &frames {
            pipeline.push(bench_pipeline(&pack, &gallery, name, jpeg, args.iterations)?);
        }
    }
    let index = if args.index_sizes.is_empty() {
        Vec::new()
    } else {
        ddfr_index::bench::bench_report(&args.index_sizes, INDEX_DIM, INDEX_QUERIES, 42)?
            .into_iter()
            .map(IndexRow::from)
            .collect()
    };
    let report =
        Report { machine: describe_machine(), pipeline, index, peak_rss_mib: peak_rss_mib() };
    if args.json { emit_json(&report) } else { emit_text(&render(&report)) }
}

/// A note on stderr that is part of the report's context, not an error.
fn tracing_free_note(note: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "ddfr bench: {note}");
}

fn bench_pipeline(
    pack: &ModelPack,
    gallery: &FlatIndex,
    name: &str,
    jpeg: &[u8],
    iterations: usize,
) -> Result<PipelineRow> {
    let mut stages: [Vec<Duration>; 6] = Default::default();
    let mut faces_found = 0;
    for i in 0..iterations + 3 {
        let t0 = Instant::now();
        let frame = decode_image(jpeg, &DecodeLimits::FRAME)?;
        let t1 = Instant::now();
        let faces = pack.detect(&frame)?;
        let t2 = Instant::now();
        let aligned = pack.align(&frame, faces);
        let t3 = Instant::now();
        let chips: Vec<RgbImage> = aligned.iter().map(|(_, a)| a.chip.clone()).collect();
        let embeddings = pack.embed(&chips)?;
        let t4 = Instant::now();
        let hits = gallery.search(&embeddings, 1);
        let t5 = Instant::now();
        faces_found = hits.len();
        if i >= 3 {
            for (k, (a, b)) in
                [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t0, t5)].into_iter().enumerate()
            {
                stages[k].push(b - a);
            }
        }
    }
    let [mut decode, mut detect, mut align, mut embed, mut search, mut total] = stages;
    let total = StageStats::from(&mut total);
    Ok(PipelineRow {
        backend: format!("{:?}", pack.backend).to_lowercase(),
        frame: name.to_owned(),
        faces_found,
        jpeg_bytes: jpeg.len(),
        decode: StageStats::from(&mut decode),
        detect: StageStats::from(&mut detect),
        align: StageStats::from(&mut align),
        embed: StageStats::from(&mut embed),
        search: StageStats::from(&mut search),
        fps_one_worker: if total.mean_ms > 0.0 { 1e3 / total.mean_ms } else { 0.0 },
        total,
    })
}

fn random_gallery(n: usize, dim: usize, seed: u64) -> Result<FlatIndex> {
    let mut index = FlatIndex::new(dim);
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in 0..n {
        let raw: Vec<f32> = (0..dim)
            .map(|_| {
                // xorshift64*: cheap, deterministic, good enough for filler vectors.
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let embedding = Embedding::from_raw(raw).context("random gallery vector")?;
        index.insert(FaceId(i as i64), PersonId(i as i64), &embedding)?;
    }
    Ok(index)
}

/// Identity photos in a stable order: `faces/<identity>/<file>`.
fn identity_photos(testdata: &Path) -> Result<Vec<PathBuf>> {
    let faces = testdata.join("faces");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&faces)
        .with_context(|| format!("test data not found at {} (set DDFR_TESTDATA)", faces.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir() && !matches!(p.file_name().and_then(|n| n.to_str()), Some("group" | "none"))
        })
        .collect();
    dirs.sort();
    let mut photos = Vec::new();
    for dir in dirs {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(&dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        photos.extend(files.into_iter().next());
    }
    if photos.len() < 5 {
        bail!("need at least 5 identity folders in {}", faces.display());
    }
    Ok(photos)
}

/// A 640×480 frame with one photo, and one with five photos tiled, as JPEG.
fn compose_frames(testdata: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let photos = identity_photos(testdata)?;
    let load = |p: &Path| super::read_photo(p);
    let one = fit_into(&load(&photos[1])?, FRAME_W, FRAME_H);
    let mut five = RgbImage::from_pixel(FRAME_W, FRAME_H, image::Rgb([40, 40, 40]));
    let (tile_w, tile_h) = (FRAME_W / 3, FRAME_H / 2);
    for (i, path) in photos.iter().skip(1).take(5).enumerate() {
        let tile = fit_into(&load(path)?, tile_w, tile_h);
        let (x, y) = ((i as u32 % 3) * tile_w, (i as u32 / 3) * tile_h);
        imageops::replace(&mut five, &tile, i64::from(x), i64::from(y));
    }
    Ok(vec![
        ("640x480, 1 face".to_owned(), encode_jpeg(&one)?),
        ("640x480, 5 faces".to_owned(), encode_jpeg(&five)?),
    ])
}

/// Scales `img` to fit `w`×`h` and centres it on a grey canvas of that size.
fn fit_into(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let scale = (w as f32 / img.width() as f32).min(h as f32 / img.height() as f32);
    let (sw, sh) = (
        ((img.width() as f32 * scale) as u32).max(1),
        ((img.height() as f32 * scale) as u32).max(1),
    );
    let scaled = imageops::resize(img, sw, sh, imageops::FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(w, h, image::Rgb([40, 40, 40]));
    imageops::replace(&mut canvas, &scaled, i64::from((w - sw) / 2), i64::from((h - sh) / 2));
    canvas
}

fn encode_jpeg(img: &RgbImage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY).encode_image(img)?;
    Ok(out)
}

fn describe_machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cpu}, {cores} cores")
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "machine: {}\n", report.machine);
    let _ = writeln!(
        out,
        "| backend | frame | faces | decode | detect | align | embed | search | total p50 | total p95 | FPS (1 worker) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &report.pipeline {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | {:.2} | {:.2} | {:.1} |",
            r.backend,
            r.frame,
            r.faces_found,
            r.decode.p50_ms,
            r.detect.p50_ms,
            r.align.p50_ms,
            r.embed.p50_ms,
            r.search.p50_ms,
            r.total.p50_ms,
            r.total.p95_ms,
            r.fps_one_worker
        );
    }
    let _ = writeln!(
        out,
        "\n(stage columns: p50 in ms; search over a {PIPELINE_GALLERY}-face gallery)\n"
    );
    if !report.index.is_empty() {
        let _ = writeln!(
            out,
            "| index | n | build ms | p50 µs | p99 µs | CPU mean µs | recall@1 (noisy) | recall@1 (random) | memory MiB |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
        for r in &report.index {
            let cpu = r.cpu_mean_us.map_or_else(|| "–".to_owned(), |c| format!("{c:.0}"));
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.0} | {:.0} | {} | {:.3} | {:.3} | {:.0} |",
                r.kind,
                r.n,
                r.build_ms,
                r.p50_us,
                r.p99_us,
                cpu,
                r.recall_noisy,
                r.recall_random,
                r.memory_mib
            );
        }
        let _ = writeln!(
            out,
            "\n(noisy queries: gallery vectors perturbed to cosine 0.6–0.9; random queries have no meaningful neighbour)\n"
        );
    }
    let _ = writeln!(out, "peak RSS: {:.0} MiB", report.peak_rss_mib);
    out
}
