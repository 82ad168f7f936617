//! `ddfr calibrate`: a threshold for a target false-accept rate, from the enrolled gallery.
//!
//! Reads the store `ddfr serve` uses (same `DDFR_DATA_DIR` / `DDFR_DATABASE_URL`), takes the
//! embeddings of the active pack's embedder, scores every pair of samples of different persons
//! (impostors) and of the same person (genuine), and fits `ddfr-eval`'s impostor model.
//!
//! Which data the model is fitted on (docs/evaluation.md):
//! - the pack declares an `impostor_prior` (models/manifest.toml) and the gallery has impostor
//!   pairs: the gallery's pairs **pooled** with the prior, the prior weighing as much as the
//!   pairs it was measured on (a gallery with more pairs than the prior dominates it);
//! - the gallery has no impostor pairs (fewer than two persons): the prior alone;
//! - `--no-prior`, or a pack without a prior: the gallery alone, which needs at least 50
//!   impostor pairs (e.g. 5 persons with 3 samples each).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use serde::Serialize;

use ddfr_core::ModelId;
use ddfr_eval::{
    DEFAULT_MAX_IMPOSTOR_PAIRS, Dataset, FarBasis, FarEstimate, ImpostorModel, LabelledEmbedding,
    ScoreSummary, SortedScores,
};
use ddfr_store::{DatabaseUrl, SQLITE_FILE_NAME};

use crate::engine::EngineArgs;
use crate::output::{emit_json, emit_text};

/// Options of `ddfr calibrate`.
#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// The data dir of `ddfr serve` (its `ddfr.db` is read).
    #[arg(long, env = "DDFR_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Database URL: `sqlite:PATH` or `postgres://...` (default: `sqlite:<data-dir>/ddfr.db`).
    #[arg(long, env = "DDFR_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The key file of an encrypted database (as `ddfr serve --encryption-key-file`).
    #[arg(long, env = "DDFR_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<std::path::PathBuf>,
    /// The false-accept rate per comparison to suggest a threshold for.
    #[arg(long, default_value_t = 0.001)]
    pub far: f64,
    /// The threshold in use, to estimate its false-accept rate (default: the pack's).
    #[arg(long, env = "DDFR_MATCH_THRESHOLD")]
    pub threshold: Option<f32>,
    /// Ignore the pack's impostor prior: fit on the gallery alone.
    #[arg(long)]
    pub no_prior: bool,
    /// Print JSON instead of a report.
    #[arg(long)]
    pub json: bool,
}

/// What the impostor model was fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum ModelSource {
    Gallery,
    GalleryAndPrior,
    Prior,
}

/// One threshold and what it does.
#[derive(Debug, Serialize)]
struct AtThreshold {
    threshold: f32,
    far: FarEstimate,
    /// Chance a stranger is matched to someone, compared with every enrolled sample.
    stranger_match_rate: f64,
    genuine_rejected: u64,
    gallery_impostor_accepted: u64,
}

#[derive(Debug, Serialize)]
struct CalibrateOut {
    database: String,
    pack: String,
    embedder: String,
    persons: usize,
    samples: usize,
    genuine_pairs: u64,
    impostor_pairs: u64,
    impostor_pairs_total: u64,
    model_source: ModelSource,
    prior_pairs: Option<u64>,
    prior_basis: Option<String>,
    target_far: f64,
    suggested: AtThreshold,
    current: AtThreshold,
    current_source: &'static str,
    genuine: ScoreSummary,
    impostor: ScoreSummary,
    model: ImpostorModel,
    notes: Vec<String>,
}

pub fn run(engine: &EngineArgs, args: &CalibrateArgs) -> Result<()> {
    ensure!(args.far > 0.0 && args.far < 1.0, "--far must be in (0, 1), got {}", args.far);
    if let Some(t) = args.threshold {
        ensure!(
            (-1.0..=1.0).contains(&t),
            "threshold must be a cosine similarity in [-1, 1], got {t}"
        );
    }
    let manifest = engine.manifest(None)?;
    let pack = manifest.pack(&engine.pack)?;
    let embedder = pack.embedder.clone();
    let prior = if args.no_prior { None } else { pack.impostor_prior.clone() };
    let current = args.threshold.unwrap_or(pack.min_similarity);
    let current_source = if args.threshold.is_some() { "DDFR_MATCH_THRESHOLD" } else { "pack" };

    let url = match &args.database_url {
        Some(url) => DatabaseUrl::new(url.clone()),
        None => {
            DatabaseUrl::new(format!("sqlite:{}", args.data_dir.join(SQLITE_FILE_NAME).display()))
        }
    };
    let mut notes = Vec::new();
    let stored = if args.database_url.is_none() && !args.data_dir.join(SQLITE_FILE_NAME).is_file() {
        notes.push(format!(
            "no database at {}: nobody is enrolled (start `ddfr serve` and enroll persons)",
            args.data_dir.join(SQLITE_FILE_NAME).display()
        ));
        Vec::new()
    } else {
        read_embeddings(
            &url,
            &crate::settings::store_options(args.encryption_key_file.as_deref())?,
            &ModelId::new(&embedder),
            &mut notes,
        )?
    };

    let samples: Vec<LabelledEmbedding> = stored
        .into_iter()
        .map(|row| LabelledEmbedding {
            identity: format!("{:020}", row.person.0),
            photo: format!("{:020}", row.face.0),
            embedding: row.embedding,
        })
        .collect();
    let n_samples = samples.len();
    // Whether a database was read (a missing one already has its note).
    let stored_any = notes.is_empty();
    let data = Dataset::new(samples)?;
    let persons = data.n_identities();
    let scores = ddfr_eval::pair_scores(&data, DEFAULT_MAX_IMPOSTOR_PAIRS);

    let (model, source) = match (&prior, scores.impostor.is_empty()) {
        (Some(prior), true) => {
            if n_samples > 0 {
                notes.push(format!(
                    "the gallery has {persons} person with faces for {embedder}, so no impostor pairs: the estimate is the pack prior's alone"
                ));
            } else if stored_any {
                notes.push(format!(
                    "the gallery is empty (no face enrolled for {embedder}): the estimate is the pack prior's alone"
                ));
            }
            (prior.clone(), ModelSource::Prior)
        }
        (Some(prior), false) => {
            (prior.pooled_with(&scores.impostor)?, ModelSource::GalleryAndPrior)
        }
        (None, _) if scores.impostor.len() >= ddfr_eval::impostor::MIN_FIT_SCORES => {
            (ImpostorModel::fit(&scores.impostor)?, ModelSource::Gallery)
        }
        (None, _) => {
            let why = if args.no_prior {
                "--no-prior was given".to_owned()
            } else {
                format!("pack {:?} has no impostor_prior in the manifest", pack.id)
            };
            bail!(
                "the gallery has {} impostor pairs ({persons} persons, {n_samples} samples for {embedder}); at least {} are needed to estimate false-accept rates and {why}",
                scores.impostor.len(),
                ddfr_eval::impostor::MIN_FIT_SCORES
            );
        }
    };

    let genuine = SortedScores::new(scores.genuine.clone())?;
    let impostor = SortedScores::new(scores.impostor.clone())?;
    let at = |threshold: f32| AtThreshold {
        threshold,
        far: model.estimate(threshold),
        stranger_match_rate: model.gallery_false_match_rate(threshold, n_samples as u64),
        genuine_rejected: (genuine.len() - genuine.at_or_above(threshold)) as u64,
        gallery_impostor_accepted: impostor.at_or_above(threshold) as u64,
    };
    let suggested = model.threshold_for(args.far);
    if genuine.is_empty() && n_samples > 0 {
        notes.push(
            "no person has two samples: how many of a person's own faces the threshold rejects cannot be measured".to_owned(),
        );
    }
    let out = CalibrateOut {
        database: url.redacted(),
        pack: pack.id.clone(),
        embedder,
        persons,
        samples: n_samples,
        genuine_pairs: genuine.len() as u64,
        impostor_pairs: impostor.len() as u64,
        impostor_pairs_total: scores.impostor_total,
        model_source: source,
        prior_pairs: prior.as_ref().map(ImpostorModel::pairs),
        prior_basis: prior.as_ref().map(|_| pack.impostor_prior_basis.clone()),
        target_far: args.far,
        suggested: at(suggested),
        current: at(current),
        current_source,
        genuine: genuine.summary(),
        impostor: impostor.summary(),
        model,
        notes,
    };
    if args.json { emit_json(&out) } else { emit_text(&render(&out)) }
}

/// The stored embeddings of `model`; notes when other models' embeddings are stored too.
fn read_embeddings(
    url: &DatabaseUrl,
    options: &ddfr_store::StoreOptions,
    model: &ModelId,
    notes: &mut Vec<String>,
) -> Result<Vec<ddfr_store::StoredEmbedding>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = ddfr_store::open_store_with(url, options)
            .await
            .map_err(crate::settings::explain_store_error)
            .with_context(|| format!("opening the database {url}"))?;
        let result = async {
            for other in store.embedding_models().await? {
                if other.model != *model {
                    notes.push(format!(
                        "{} embeddings of another model ({}) are stored and not used; `ddfr serve` re-embeds them from their crops",
                        other.n_embeddings, other.model
                    ));
                }
            }
            store.embeddings(model).await
        }
        .await;
        store.close().await;
        result.context("reading the enrolled embeddings")
    })
}

fn pct(rate: f64) -> String {
    if rate > 0.0 && rate < 1e-4 { format!("{rate:.1e}") } else { format!("{:.3}%", rate * 100.0) }
}

fn basis(far: &FarEstimate) -> &'static str {
    match far.basis {
        FarBasis::Measured => "measured",
        FarBasis::Extrapolated => "extrapolated",
    }
}

fn render(o: &CalibrateOut) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "ddfr calibrate: {} (pack {}, embedder {})", o.database, o.pack, o.embedder);
    let _ = writeln!(
        out,
        "gallery: {} persons, {} face samples; {} impostor pairs, {} genuine pairs",
        o.persons, o.samples, o.impostor_pairs, o.genuine_pairs
    );
    if o.samples > 0 {
        let _ = writeln!(
            out,
            "  similarity: impostor mean {:.4} (max {:.4}); genuine mean {:.4} (min {:.4})",
            o.impostor.mean, o.impostor.max, o.genuine.mean, o.genuine.min
        );
    }
    let source = match o.model_source {
        ModelSource::Gallery => "the gallery's impostor pairs".to_owned(),
        ModelSource::GalleryAndPrior => format!(
            "the gallery's impostor pairs pooled with the pack prior ({} pairs)",
            o.prior_pairs.unwrap_or(0)
        ),
        ModelSource::Prior => {
            format!("the pack prior alone ({} pairs)", o.prior_pairs.unwrap_or(0))
        }
    };
    let _ = writeln!(
        out,
        "impostor model: {source}; measured down to FAR {} (similarity {:.4}), extrapolated beyond",
        pct(o.model.measured_far_floor()),
        o.model.measured_up_to()
    );
    if let Some(basis) = &o.prior_basis {
        let _ = writeln!(out, "  prior: {basis}");
    }
    let current =
        if o.current_source == "pack" { "the pack's default" } else { "DDFR_MATCH_THRESHOLD" };
    for (label, at) in [
        (format!("suggested threshold for FAR {}", pct(o.target_far)), &o.suggested),
        (format!("current threshold ({current})"), &o.current),
    ] {
        let _ = writeln!(
            out,
            "\n{label}: {:.4}\n  estimated FAR per comparison: {} ({})",
            at.threshold,
            pct(at.far.far),
            basis(&at.far)
        );
        if o.samples > 0 {
            let _ = writeln!(
                out,
                "  a stranger compared with all {} samples is matched to someone with probability ~{}",
                o.samples,
                pct(at.stranger_match_rate)
            );
        }
        if o.genuine_pairs > 0 {
            let _ = writeln!(
                out,
                "  same-person pairs rejected: {} of {} ({})",
                at.genuine_rejected,
                o.genuine_pairs,
                pct(at.genuine_rejected as f64 / o.genuine_pairs as f64)
            );
        }
        if o.impostor_pairs > 0 {
            let _ = writeln!(
                out,
                "  gallery impostor pairs accepted: {} of {}",
                at.gallery_impostor_accepted, o.impostor_pairs
            );
        }
    }
    for note in &o.notes {
        let _ = writeln!(out, "\nnote: {note}");
    }
    out
}
