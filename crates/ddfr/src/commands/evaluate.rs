//! `ddfr evaluate DIR`: recognition quality of a model pack on labelled photos laid out as
//! `DIR/<identity>/*.{jpg,jpeg,png,webp}` (the LFW layout).
//!
//! Each photo's largest face is embedded (on all cores, with a progress bar on stderr); photos
//! without a usable face are failures to acquire, reported and left out. Then, with
//! `ddfr-eval`: verification over all genuine pairs and all (or a deterministic sample of)
//! impostor pairs; open-set identification on a deterministic enrolled/stranger split, for the
//! chosen person score and, for comparison, every other; and the impostor-score model fitted on
//! the impostor pairs (what `models/manifest.toml` keeps as a pack's `impostor_prior`).
//! docs/evaluation.md defines every number.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use ddfr_core::Embedding;
use ddfr_engine::pack::ModelPack;
use ddfr_eval::{
    DEFAULT_MAX_IMPOSTOR_PAIRS, Dataset, FarBasis, FarEstimate, IdentificationReport,
    ImpostorModel, LabelledEmbedding, PersonScore, VerificationReport,
};

use crate::engine::EngineArgs;
use crate::output::{emit_json, emit_text};

/// Photo extensions read (case-insensitive).
const EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];
/// False-accept rates the impostor model's thresholds are reported for.
const MODEL_FARS: [f64; 3] = [1e-3, 1e-4, 1e-5];

/// Options of `ddfr evaluate`.
#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    /// Folder with one sub-folder of photos per identity (`DIR/<identity>/*.jpg`).
    pub dir: PathBuf,
    /// Threshold to report verification and identification at (default: the pack's
    /// `min_similarity`).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Photos enrolled per enrolled person (at most all but one of theirs).
    #[arg(long, default_value_t = 1)]
    pub enroll_photos: usize,
    /// How a person with several samples is scored: best, mean, trimmed or centroid (default:
    /// trimmed, what `ddfr serve` uses; every run also reports all four).
    #[arg(long, default_value = "trimmed")]
    pub person_score: PersonScore,
    /// The false positive identification rate TPIR is reported at.
    #[arg(long, default_value_t = 0.01)]
    pub fpir: f64,
    /// Impostor pairs scored before a deterministic sample is taken instead.
    #[arg(long, default_value_t = DEFAULT_MAX_IMPOSTOR_PAIRS)]
    pub max_impostor_pairs: u64,
    /// Sub-folders that are not identities (comma-separated; `--exclude=` for none). The
    /// developer test set keeps group photos and no-face images in `group/` and `none/`.
    #[arg(long, value_delimiter = ',', default_value = "group,none")]
    pub exclude: Vec<String>,
    /// A manifest to read instead of `<models-dir>/manifest.toml` (its model files are looked
    /// up in the models directory), e.g. the test fixtures' manifest.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Photos embedded at once (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print JSON instead of a report.
    #[arg(long)]
    pub json: bool,
}

/// A photo without a usable face.
#[derive(Debug, Serialize)]
struct Failure {
    photo: String,
    reason: String,
}

/// The impostor model's answers at the report's threshold and at a few FARs.
#[derive(Debug, Serialize)]
struct ModelEstimates {
    far_at_threshold: FarEstimate,
    thresholds: Vec<ModelThreshold>,
}

#[derive(Debug, Serialize)]
struct ModelThreshold {
    far: f64,
    threshold: f32,
    extrapolated: bool,
}

#[derive(Debug, Serialize)]
struct Timing {
    jobs: usize,
    load_seconds: f64,
    embed_seconds: f64,
    photos_per_second: f64,
    metrics_seconds: f64,
}

/// Everything `ddfr evaluate` prints.
#[derive(Debug, Serialize)]
struct Report {
    dir: String,
    pack: String,
    detector: String,
    embedder: String,
    backend: String,
    threshold: f32,
    threshold_source: &'static str,
    identities: usize,
    photos: usize,
    embedded: usize,
    failure_to_acquire_rate: f64,
    failures_to_acquire: Vec<Failure>,
    excluded_folders: Vec<String>,
    verification: Option<VerificationReport>,
    verification_unavailable: Option<String>,
    identification: Option<IdentificationReport>,
    identification_unavailable: Option<String>,
    person_scoring: Vec<IdentificationReport>,
    impostor_model: Option<ImpostorModel>,
    impostor_model_unavailable: Option<String>,
    impostor_estimates: Option<ModelEstimates>,
    timing: Timing,
}

/// One photo to embed.
struct Photo {
    identity: String,
    name: String,
    path: PathBuf,
}

enum Outcome {
    Embedded(Embedding),
    Failed(String),
}

pub fn run(engine: &EngineArgs, args: &EvaluateArgs) -> Result<()> {
    if let Some(t) = args.threshold {
        ensure!(
            (-1.0..=1.0).contains(&t),
            "threshold must be a cosine similarity in [-1, 1], got {t}"
        );
    }
    ensure!(args.fpir > 0.0 && args.fpir < 1.0, "--fpir must be in (0, 1), got {}", args.fpir);
    ensure!(args.enroll_photos >= 1, "--enroll-photos must be at least 1");
    let (photos, excluded) = list_photos(&args.dir, &args.exclude)?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, photos.len().max(1));

    let started = Instant::now();
    let manifest = engine.manifest(args.manifest.as_deref())?;
    let pack = engine.load_pack_from(&manifest, jobs)?;
    let load_seconds = started.elapsed().as_secs_f64();
    let embedder = manifest.pack(&pack.id)?.embedder.clone();
    let threshold = args.threshold.unwrap_or(pack.min_similarity);

    let started = Instant::now();
    let outcomes = embed_all(&pack, &photos, jobs)?;
    let embed_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut failures = Vec::new();
    for (photo, outcome) in photos.iter().zip(outcomes) {
        match outcome {
            Outcome::Embedded(embedding) => samples.push(LabelledEmbedding {
                identity: photo.identity.clone(),
                photo: photo.name.clone(),
                embedding,
            }),
            Outcome::Failed(reason) => failures
                .push(Failure { photo: format!("{}/{}", photo.identity, photo.name), reason }),
        }
    }
    let identities = {
        let mut names: Vec<&str> = photos.iter().map(|p| p.identity.as_str()).collect();
        names.dedup();
        names.len()
    };
    let embedded = samples.len();
    let data = Dataset::new(samples)?;

    let scores = ddfr_eval::pair_scores(&data, args.max_impostor_pairs);
    let (verification, verification_unavailable) =
        split_result(ddfr_eval::verification(&scores, threshold));
    let (impostor_model, impostor_model_unavailable) =
        split_result(ImpostorModel::fit(&scores.impostor));
    let impostor_estimates = impostor_model.as_ref().map(|model| ModelEstimates {
        far_at_threshold: model.estimate(threshold),
        thresholds: MODEL_FARS
            .iter()
            .map(|&far| {
                let t = model.threshold_for(far);
                ModelThreshold { far, threshold: t, extrapolated: t > model.measured_up_to() }
            })
            .collect(),
    });

    let mut person_scoring = Vec::new();
    let identification_unavailable = match ddfr_eval::open_set_split(&data, args.enroll_photos) {
        Ok(split) => {
            for strategy in PersonScore::ALL {
                person_scoring.push(ddfr_eval::identification(
                    &data, &split, strategy, threshold, args.fpir,
                )?);
            }
            None
        }
        Err(error) => Some(error.to_string()),
    };
    let identification =
        person_scoring.iter().find(|r| r.person_score == args.person_score).cloned();

    let report = Report {
        dir: args.dir.display().to_string(),
        pack: pack.id.clone(),
        detector: pack.detector_id.clone(),
        embedder,
        backend: format!("{:?}", pack.backend).to_lowercase(),
        threshold,
        threshold_source: if args.threshold.is_some() { "--threshold" } else { "pack" },
        identities,
        photos: photos.len(),
        embedded,
        failure_to_acquire_rate: failures.len() as f64 / photos.len() as f64,
        failures_to_acquire: failures,
        excluded_folders: excluded,
        verification,
        verification_unavailable,
        identification,
        identification_unavailable,
        person_scoring,
        impostor_model,
        impostor_model_unavailable,
        impostor_estimates,
        timing: Timing {
            jobs,
            load_seconds,
            embed_seconds,
            photos_per_second: photos.len() as f64 / embed_seconds.max(1e-9),
            metrics_seconds: started.elapsed().as_secs_f64(),
        },
    };
    if args.json { emit_json(&report) } else { emit_text(&render(&report)) }
}

fn split_result<T>(result: Result<T, ddfr_eval::EvalError>) -> (Option<T>, Option<String>) {
    match result {
        Ok(value) => (Some(value), None),
        Err(error) => (None, Some(error.to_string())),
    }
}

/// The photos of every identity folder (sorted by folder, then file name) and the excluded
/// folders that exist.
fn list_photos(dir: &Path, exclude: &[String]) -> Result<(Vec<Photo>, Vec<String>)> {
    let mut folders: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_owned();
            (!name.starts_with('.')).then_some((name, path))
        })
        .collect();
    folders.sort();
    let mut photos = Vec::new();
    let mut excluded = Vec::new();
    for (identity, path) in folders {
        if exclude.contains(&identity) {
            excluded.push(identity);
            continue;
        }
        let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&path)
            .with_context(|| format!("cannot read the folder {}", path.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter_map(|p| {
                let ext = p.extension()?.to_str()?.to_ascii_lowercase();
                let name = p.file_name()?.to_str()?.to_owned();
                EXTENSIONS.contains(&ext.as_str()).then_some((name, p))
            })
            .collect();
        files.sort();
        photos.extend(files.into_iter().map(|(name, path)| Photo {
            identity: identity.clone(),
            name,
            path,
        }));
    }
    if photos.is_empty() {
        bail!(
            "no photos found in {}: expected one folder per identity holding .jpg, .jpeg, .png or .webp files",
            dir.display()
        );
    }
    Ok((photos, excluded))
}

/// Embeds every photo's largest face on `jobs` threads sharing one pack.
fn embed_all(pack: &ModelPack, photos: &[Photo], jobs: usize) -> Result<Vec<Outcome>> {
    let bar = ProgressBar::new(photos.len() as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "embedding {bar:40.cyan/blue} {pos}/{len} photos  {per_sec}  eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> =
        Mutex::new(std::iter::repeat_with(|| None).take(photos.len()).collect());
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(photo) = photos.get(i) else { return Ok(()) };
                        let outcome = embed_photo(pack, &photo.path)?;
                        results.lock().map_err(|_| anyhow::anyhow!("a worker panicked"))?[i] =
                            Some(outcome);
                        bar.inc(1);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| anyhow::anyhow!("an embedding thread panicked"))??;
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    let results = results.into_inner().map_err(|_| anyhow::anyhow!("a worker panicked"))?;
    results.into_iter().map(|outcome| outcome.context("a photo was not processed")).collect()
}

/// The largest face's embedding, or why there is none. Model failures are errors.
fn embed_photo(pack: &ModelPack, path: &Path) -> Result<Outcome> {
    let frame = match super::read_photo(path) {
        Ok(frame) => frame,
        Err(error) => return Ok(Outcome::Failed(format!("unreadable: {:#}", error.root_cause()))),
    };
    let mut faces = pack.detect(&frame)?;
    faces.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
    let Some(largest) = faces.into_iter().next() else {
        return Ok(Outcome::Failed("no face found".to_owned()));
    };
    Ok(match pack.analyze_faces(&frame, vec![largest])?.into_iter().next() {
        Some(analyzed) => Outcome::Embedded(analyzed.embedding),
        None => Outcome::Failed("the face could not be aligned".to_owned()),
    })
}

fn pct(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "ddfr evaluate {}", r.dir);
    let _ = writeln!(
        out,
        "pack {} (detector {}, embedder {}) on {}, {} threads",
        r.pack, r.detector, r.embedder, r.backend, r.timing.jobs
    );
    let _ = writeln!(
        out,
        "photos: {} of {} identities, {} embedded in {:.1} s ({:.1} photos/s; models loaded in {:.1} s)",
        r.photos,
        r.identities,
        r.embedded,
        r.timing.embed_seconds,
        r.timing.photos_per_second,
        r.timing.load_seconds
    );
    let _ = writeln!(
        out,
        "failures to acquire: {} ({}), left out of every pair",
        r.failures_to_acquire.len(),
        pct(r.failure_to_acquire_rate)
    );
    for f in &r.failures_to_acquire {
        let _ = writeln!(out, "  {}: {}", f.photo, f.reason);
    }
    if !r.excluded_folders.is_empty() {
        let _ =
            writeln!(out, "folders skipped (not identities): {}", r.excluded_folders.join(", "));
    }
    let source = if r.threshold_source == "pack" { "the pack's default" } else { "--threshold" };
    let _ = writeln!(
        out,
        "threshold: {:.4} ({source}); accept when similarity >= threshold",
        r.threshold
    );

    let _ = writeln!(out, "\nVerification (1:1, every pair of photos)");
    match &r.verification {
        Some(v) => render_verification(&mut out, v),
        None => {
            let _ = writeln!(
                out,
                "  not available: {}",
                r.verification_unavailable.as_deref().unwrap_or("")
            );
        }
    }

    let _ = writeln!(out, "\nOpen-set identification (1:N)");
    match &r.identification {
        Some(i) => render_identification(&mut out, i, &r.person_scoring),
        None => {
            let _ = writeln!(
                out,
                "  not available: {}",
                r.identification_unavailable.as_deref().unwrap_or("")
            );
        }
    }

    let _ = writeln!(out, "\nImpostor-score model (FAR estimate per comparison)");
    match (&r.impostor_model, &r.impostor_estimates) {
        (Some(m), Some(e)) => {
            let _ = writeln!(
                out,
                "  fitted on {} impostor pairs: mean {:.4}, std {:.4}; measured down to FAR {} (similarity {:.4}), exponential tail (scale {:.4}) beyond",
                m.pairs(),
                m.mean(),
                m.std(),
                pct(m.measured_far_floor()),
                m.measured_up_to(),
                m.tail_scale()
            );
            let _ = writeln!(
                out,
                "  estimated FAR at the threshold {:.4}: {} ({})",
                r.threshold,
                sci(e.far_at_threshold.far),
                basis(e.far_at_threshold.basis == FarBasis::Extrapolated)
            );
            for t in &e.thresholds {
                let _ = writeln!(
                    out,
                    "  threshold for FAR {:.0e}: {:.4} ({})",
                    t.far,
                    t.threshold,
                    basis(t.extrapolated)
                );
            }
        }
        _ => {
            let _ = writeln!(
                out,
                "  not available: {}",
                r.impostor_model_unavailable.as_deref().unwrap_or("")
            );
        }
    }
    out
}

fn basis(extrapolated: bool) -> &'static str {
    if extrapolated { "extrapolated" } else { "measured" }
}

fn sci(rate: f64) -> String {
    if rate >= 1e-3 { pct(rate) } else { format!("{rate:.1e}") }
}

fn render_verification(out: &mut String, v: &VerificationReport) {
    let sampled = if v.impostor_sampled {
        format!(" (a deterministic sample of {})", v.impostor_pairs_total)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "  pairs: {} genuine, {} impostor{sampled}",
        v.genuine_pairs, v.impostor_pairs
    );
    for (label, p) in [("at the threshold", &v.at_threshold), ("best threshold  ", &v.best)] {
        let _ = writeln!(
            out,
            "  {label} {:.4}: accuracy {} = (TAR {} ({}/{}) + TRR {} ({}/{})) / 2",
            p.threshold,
            pct(p.accuracy),
            pct(p.tar),
            p.genuine_accepted,
            p.genuine,
            pct(p.trr),
            p.impostor - p.impostor_accepted,
            p.impostor
        );
    }
    for p in &v.roc {
        let _ = writeln!(
            out,
            "  TAR at FAR {:.0e}: {} (threshold {:.4}, measured FAR {})",
            p.target_far,
            pct(p.tar),
            p.threshold,
            sci(p.far)
        );
    }
    for far in &v.roc_unsupported {
        let _ = writeln!(
            out,
            "  TAR at FAR {far:.0e}: not measurable (needs at least {:.0} impostor pairs)",
            (1.0 / far).ceil()
        );
    }
    let _ = writeln!(
        out,
        "  similarity: genuine mean {:.4} (min {:.4}), impostor mean {:.4} (max {:.4})",
        v.genuine.mean, v.genuine.min, v.impostor.mean, v.impostor.max
    );
}

fn render_identification(out: &mut String, i: &IdentificationReport, all: &[IdentificationReport]) {
    let _ = writeln!(
        out,
        "  gallery: {} persons, {} samples (up to {} per person); probes: {} mated, {} non-mated from {} strangers",
        i.enrolled_persons,
        i.enrolled_samples,
        i.enroll_photos,
        i.mated_probes,
        i.non_mated_probes,
        i.stranger_identities
    );
    let _ = writeln!(out, "  person score: {}", i.person_score);
    let _ = writeln!(
        out,
        "  rank-1: {} ({}/{})",
        pct(i.rank1),
        (i.rank1 * i.mated_probes as f64).round(),
        i.mated_probes
    );
    let p = &i.at_threshold;
    let _ = writeln!(
        out,
        "  at the threshold {:.4}: TPIR {} ({}/{}), FPIR {} ({}/{})",
        p.threshold,
        pct(p.tpir),
        p.mated_identified,
        p.mated,
        pct(p.fpir),
        p.non_mated_accepted,
        p.non_mated
    );
    let p = &i.at_target_fpir;
    let note = if i.target_fpir_resolved {
        String::new()
    } else {
        format!(
            "; fewer than {:.0} non-mated probes, so no stranger may be accepted",
            (1.0 / i.target_fpir).ceil()
        )
    };
    let _ = writeln!(
        out,
        "  TPIR at FPIR <= {}: {} ({}/{}) at threshold {:.4} (FPIR {}/{}{note})",
        pct(i.target_fpir),
        pct(p.tpir),
        p.mated_identified,
        p.mated,
        p.threshold,
        p.non_mated_accepted,
        p.non_mated
    );
    let _ = writeln!(
        out,
        "\n  person score  rank-1   TPIR@thr  FPIR@thr  TPIR@FPIR<={:<5} mated mean/min   stranger top mean/max  d'",
        format!("{}%", i.target_fpir * 100.0)
    );
    for r in all {
        let _ = writeln!(
            out,
            "  {:<12}  {:>7}  {:>8}  {:>8}  {:>15}  {:.4}/{:.4}    {:.4}/{:.4}          {}",
            r.person_score.name(),
            pct(r.rank1),
            pct(r.at_threshold.tpir),
            pct(r.at_threshold.fpir),
            pct(r.at_target_fpir.tpir),
            r.mated_scores.mean,
            r.mated_scores.min,
            r.non_mated_scores.mean,
            r.non_mated_scores.max,
            r.d_prime.map_or("-".to_owned(), |d| format!("{d:.2}"))
        );
    }
}
