//! The impostor-score model: an estimate of the false-accept rate (FAR) at any similarity, for
//! one embedding model, from the similarities of pairs of different people.
//!
//! `FAR(s)` is the fraction of impostor pairs whose similarity is `>= s`. The model has two
//! parts:
//!
//! - **Measured**: knots `(similarity, FAR)` read off the sorted impostor scores at FAR levels
//!   1, 0.9, 0.75, 0.5, 0.25 and every quarter decade from 0.1 down, while at least
//!   [`MIN_MEASURED_COUNT`] (10) impostor pairs lie at or above the knot, plus a last knot at
//!   exactly that count. Between knots `log FAR` is interpolated linearly in the similarity.
//!   So the model never claims a measured FAR below `10 / pairs` (above `1 / pairs`, the
//!   resolution of the data).
//! - **Extrapolated**: beyond the last knot `(s_L, FAR_L)`,
//!   `FAR(s) = FAR_L * exp(-(s - s_L) / scale)`, an exponential tail. Its `scale` is the mean
//!   excess over a high threshold `u`: the mean of `top - u` over the top 1% of the scores (at
//!   least 25 of them), `u` being the next score below them. By the Pickands-Balkema-de Haan
//!   theorem the excesses of light-tailed distributions (the Gaussian included) over a high
//!   threshold approach an exponential; a Gaussian tail falls faster than the exponential fitted
//!   to it, so for Gaussian-like impostor scores the extrapolation overstates FAR (a
//!   conservative threshold). Impostor tails that are *heavier* than exponential (twins,
//!   look-alikes, mislabelled data) would be understated; every estimate beyond the last knot
//!   is therefore flagged `extrapolated`. `scale` is floored at [`MIN_TAIL_SCALE`].
//!
//! A FAR is per comparison. A stranger compared with a gallery of `n` samples is falsely
//! matched to someone with probability about `1 - (1 - FAR)^n`
//! ([`ImpostorModel::gallery_false_match_rate`], assuming independent comparisons).
//!
//! The model serialises (serde) to a few hundred bytes; deserialising checks its invariants.

use serde::{Deserialize, Serialize};

use crate::EvalError;
use crate::scores::SortedScores;

/// Fewest impostor scores a model is fitted on.
pub const MIN_FIT_SCORES: usize = 50;
/// Impostor pairs that must lie at or above a knot for its FAR to count as measured.
pub const MIN_MEASURED_COUNT: usize = 10;
/// Share of the scores the tail scale is fitted on.
pub const TAIL_FIT_FRACTION: f64 = 0.01;
/// Fewest scores the tail scale is fitted on.
pub const MIN_TAIL_FIT: usize = 25;
/// Smallest tail scale (cosine units): a narrower tail would promise FARs that fall tenfold
/// every 0.0023 of similarity, which no face model's impostor data supports.
pub const MIN_TAIL_SCALE: f32 = 1e-3;
/// Most pseudo-scores a prior contributes to a pooled fit (bounds memory).
pub const MAX_PRIOR_PSEUDO_SCORES: u64 = 10_000_000;

/// FAR levels above 0.1 that get a knot; below 0.1 every quarter decade does.
const UPPER_LEVELS: [f64; 5] = [1.0, 0.9, 0.75, 0.5, 0.25];

/// One measured point of the FAR curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FarKnot {
    /// A similarity.
    pub similarity: f32,
    /// The fraction of impostor pairs at or above it.
    pub far: f64,
}

/// Whether a FAR estimate lies within the measured range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FarBasis {
    /// Interpolated between measured knots.
    Measured,
    /// Beyond the last knot: from the fitted exponential tail.
    Extrapolated,
}

/// A FAR estimate and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FarEstimate {
    /// The estimated false-accept rate per comparison.
    pub far: f64,
    /// Measured or extrapolated.
    pub basis: FarBasis,
}

/// The impostor-score model of one embedding model (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ModelFields")]
pub struct ImpostorModel {
    pairs: u64,
    mean: f32,
    std: f32,
    knots: Vec<FarKnot>,
    tail_scale: f32,
}

/// The serialised form, checked by `TryFrom` before it becomes a model.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFields {
    pairs: u64,
    mean: f32,
    std: f32,
    knots: Vec<FarKnot>,
    tail_scale: f32,
}

impl TryFrom<ModelFields> for ImpostorModel {
    type Error = EvalError;

    fn try_from(f: ModelFields) -> Result<Self, Self::Error> {
        let model = Self {
            pairs: f.pairs,
            mean: f.mean,
            std: f.std,
            knots: f.knots,
            tail_scale: f.tail_scale,
        };
        model.validate()?;
        Ok(model)
    }
}

impl ImpostorModel {
    /// Fits the model to impostor similarities (at least [`MIN_FIT_SCORES`], all finite).
    pub fn fit(scores: &[f32]) -> Result<Self, EvalError> {
        let n = scores.len();
        if n < MIN_FIT_SCORES {
            return Err(EvalError::TooFewScores { found: n, needed: MIN_FIT_SCORES });
        }
        let sorted = SortedScores::new(scores.to_vec())?;
        let s = sorted.as_slice();
        let summary = sorted.summary();

        // Counts (pairs at or above) of the knots.
        let mut counts: Vec<usize> =
            UPPER_LEVELS.iter().map(|l| (l * n as f64).round() as usize).collect();
        let mut quarter = 0;
        loop {
            let level = 10f64.powf(-1.0 - f64::from(quarter) / 4.0);
            let count = (level * n as f64).round() as usize;
            if count < MIN_MEASURED_COUNT {
                break;
            }
            counts.push(count);
            quarter += 1;
        }
        counts.push(MIN_MEASURED_COUNT);
        let mut knots: Vec<FarKnot> = counts
            .into_iter()
            .map(|count| count.clamp(MIN_MEASURED_COUNT, n))
            .map(|count| {
                let similarity = s[n - count];
                FarKnot { similarity, far: sorted.at_or_above(similarity) as f64 / n as f64 }
            })
            .collect();
        knots.sort_by(|a, b| a.similarity.total_cmp(&b.similarity));
        knots.dedup_by(|later, earlier| later.similarity == earlier.similarity);

        let fit = ((TAIL_FIT_FRACTION * n as f64).ceil() as usize).max(MIN_TAIL_FIT).min(n - 1);
        let u = f64::from(s[n - 1 - fit]);
        let excess = s[n - fit..].iter().map(|v| f64::from(*v) - u).sum::<f64>() / fit as f64;
        let tail_scale = (excess as f32).max(MIN_TAIL_SCALE);

        let model = Self {
            pairs: n as u64,
            mean: summary.mean as f32,
            std: summary.std as f32,
            knots,
            tail_scale,
        };
        model.validate()?;
        Ok(model)
    }

    /// Fits a model to `scores` pooled with the prior's distribution, represented by as many
    /// pseudo-scores as the prior was fitted on (its quantiles at FAR `(i + 0.5) / pairs`,
    /// at most [`MAX_PRIOR_PSEUDO_SCORES`]). Equivalent to fitting on the prior's pairs and
    /// the new ones together, so each side weighs as much as the pairs behind it. The prior's
    /// extrapolated top (its 10 highest pseudo-scores) enters the pooled sample as if measured.
    pub fn pooled_with(&self, scores: &[f32]) -> Result<Self, EvalError> {
        let count = self.pairs.min(MAX_PRIOR_PSEUDO_SCORES);
        let mut pooled = Vec::with_capacity(scores.len() + count as usize);
        pooled.extend_from_slice(scores);
        pooled.extend((0..count).map(|i| self.threshold_for((i as f64 + 0.5) / count as f64)));
        Self::fit(&pooled)
    }

    /// Checks the invariants a fitted model has; deserialisation runs it.
    pub fn validate(&self) -> Result<(), EvalError> {
        let bad = |reason: &str| Err(EvalError::InvalidModel { reason: reason.to_owned() });
        if self.pairs == 0 {
            return bad("pairs must be at least 1");
        }
        if !self.mean.is_finite() || !self.std.is_finite() || self.std < 0.0 {
            return bad("mean and std must be finite, std >= 0");
        }
        if !(self.tail_scale.is_finite() && self.tail_scale > 0.0) {
            return bad("tail_scale must be finite and positive");
        }
        let Some(last) = self.knots.last() else { return bad("knots must not be empty") };
        for knot in &self.knots {
            if !(knot.similarity.is_finite() && knot.far > 0.0 && knot.far <= 1.0) {
                return bad("every knot needs a finite similarity and a FAR in (0, 1]");
            }
        }
        for pair in self.knots.windows(2) {
            if pair[1].similarity <= pair[0].similarity || pair[1].far >= pair[0].far {
                return bad("knots must rise in similarity and fall in FAR");
            }
        }
        if last.far * (self.pairs as f64) < MIN_MEASURED_COUNT as f64 - 1e-6 {
            return bad("the last knot claims a FAR below 10 pairs' worth of the measured pairs");
        }
        Ok(())
    }

    /// The estimated FAR of one comparison at `similarity` (1 for NaN).
    pub fn far_at(&self, similarity: f32) -> f64 {
        self.estimate(similarity).far
    }

    /// The estimated FAR at `similarity` and whether it is measured or extrapolated.
    pub fn estimate(&self, similarity: f32) -> FarEstimate {
        let measured = |far: f64| FarEstimate { far, basis: FarBasis::Measured };
        if similarity.is_nan() {
            return measured(1.0);
        }
        let s = f64::from(similarity);
        let (first, last) = (self.knots[0], self.knots[self.knots.len() - 1]);
        if similarity <= first.similarity {
            return measured(first.far);
        }
        if similarity > last.similarity {
            let far =
                last.far * (-(s - f64::from(last.similarity)) / f64::from(self.tail_scale)).exp();
            return FarEstimate { far, basis: FarBasis::Extrapolated };
        }
        let i = self.knots.partition_point(|k| k.similarity < similarity);
        // knots[i - 1].similarity < similarity <= knots[i].similarity
        let (a, b) = (self.knots[i - 1], self.knots[i]);
        let t = (s - f64::from(a.similarity)) / (f64::from(b.similarity) - f64::from(a.similarity));
        measured((a.far.ln() + t * (b.far.ln() - a.far.ln())).exp())
    }

    /// The lowest similarity whose estimated FAR is at most `far`, clamped to `[lowest
    /// knot, 1]`. `far <= 0` or NaN gives 1 (nothing but identical vectors accepted).
    pub fn threshold_for(&self, far: f64) -> f32 {
        if far.is_nan() || far <= 0.0 {
            return 1.0;
        }
        let (first, last) = (self.knots[0], self.knots[self.knots.len() - 1]);
        if far >= first.far {
            return first.similarity;
        }
        let s = if far >= last.far {
            // knots[i - 1].far > far >= knots[i].far
            let i = self.knots.partition_point(|k| k.far > far);
            let (a, b) = (self.knots[i - 1], self.knots[i]);
            let t = (far.ln() - a.far.ln()) / (b.far.ln() - a.far.ln());
            f64::from(a.similarity) + t * (f64::from(b.similarity) - f64::from(a.similarity))
        } else {
            f64::from(last.similarity) + f64::from(self.tail_scale) * (last.far / far).ln()
        };
        if s >= 1.0 {
            return 1.0;
        }
        // Round up, so the FAR at the returned f32 does not exceed `far`.
        let rounded = s as f32;
        if f64::from(rounded) < s { rounded.next_up() } else { rounded }
    }

    /// The estimated chance that a stranger's face is matched to someone when compared with
    /// `comparisons` gallery samples at `similarity`: `1 - (1 - FAR)^comparisons`, assuming
    /// independent comparisons.
    pub fn gallery_false_match_rate(&self, similarity: f32, comparisons: u64) -> f64 {
        let far = self.far_at(similarity).min(1.0);
        if far >= 1.0 {
            return if comparisons == 0 { 0.0 } else { 1.0 };
        }
        -((comparisons as f64) * (-far).ln_1p()).exp_m1()
    }

    /// The smallest FAR the model calls measured (the last knot's).
    pub fn measured_far_floor(&self) -> f64 {
        self.knots[self.knots.len() - 1].far
    }

    /// The similarity beyond which estimates are extrapolated.
    pub fn measured_up_to(&self) -> f32 {
        self.knots[self.knots.len() - 1].similarity
    }

    /// Impostor pairs the model was fitted on.
    pub fn pairs(&self) -> u64 {
        self.pairs
    }

    /// Mean impostor similarity.
    pub fn mean(&self) -> f32 {
        self.mean
    }

    /// Standard deviation of the impostor similarities.
    pub fn std(&self) -> f32 {
        self.std
    }

    /// The measured knots, similarity ascending.
    pub fn knots(&self) -> &[FarKnot] {
        &self.knots
    }

    /// Scale of the exponential tail (cosine units per factor e of FAR).
    pub fn tail_scale(&self) -> f32 {
        self.tail_scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Deterministic standard-normal samples (SplitMix64 + Box-Muller).
    fn gaussian(n: usize, mean: f64, std: f64) -> Vec<f32> {
        let mut state = 0x1234_5678u64;
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (u1, u2) = (next().max(1e-300), next());
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                (mean + std * z) as f32
            })
            .collect()
    }

    #[test]
    fn knots_are_the_empirical_far_by_hand() {
        // 100 scores 0.00, 0.01, ..., 0.99.
        let scores: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let m = ImpostorModel::fit(&scores).unwrap();
        assert_eq!(m.pairs(), 100);
        // The lowest knot is the lowest score with FAR 1; 0.5 has 50 scores at or above.
        assert_eq!(m.knots()[0], FarKnot { similarity: 0.0, far: 1.0 });
        assert!((m.far_at(0.5) - 0.5).abs() < 1e-9);
        assert!((m.far_at(0.9) - 0.1).abs() < 1e-9, "the 10th largest is the last knot");
        assert_eq!(m.measured_far_floor(), 0.1);
        assert_eq!(m.measured_up_to(), 0.9);
        assert_eq!(m.estimate(0.9).basis, FarBasis::Measured);
        assert_eq!(m.estimate(0.95).basis, FarBasis::Extrapolated);
        // Below the lowest score everything is accepted.
        assert_eq!(m.far_at(-1.0), 1.0);
        // Tail: top 25 (0.75..0.99) over u = 0.74: mean excess 0.13.
        assert!((m.tail_scale() - 0.13).abs() < 1e-4, "{}", m.tail_scale());
        let expected = 0.1 * (-(0.99f64 - 0.9) / 0.13).exp();
        assert!((m.far_at(0.99) - expected).abs() < 1e-4);
        assert!((m.mean() - 0.495).abs() < 1e-6);
    }

    #[test]
    fn never_measures_below_ten_pairs() {
        for n in [50, 51, 99, 1205, 30_000] {
            let m = ImpostorModel::fit(&gaussian(n, 0.8, 0.04)).unwrap();
            assert!(m.measured_far_floor() * n as f64 >= MIN_MEASURED_COUNT as f64 - 1e-9);
            assert!(m.measured_far_floor() > 1.0 / n as f64);
            // Knots reach down to 10 pairs: the floor is within a few pairs of 10 / n.
            assert!(
                m.measured_far_floor() * (n as f64) < 12.0,
                "n {n}: {}",
                m.measured_far_floor()
            );
        }
    }

    #[test]
    fn gaussian_tail_extrapolation_is_conservative() {
        // 30,000 scores N(0.8, 0.04): measured down to 10/30000 = 3.3e-4.
        let m = ImpostorModel::fit(&gaussian(30_000, 0.8, 0.04)).unwrap();
        // True thresholds: FAR 1e-5 at z = 4.265, 1e-6 at z = 4.753.
        for (far, z) in [(1e-5, 4.265), (1e-6, 4.753)] {
            let truth = 0.8 + 0.04 * z;
            let estimated = m.threshold_for(far);
            assert!(f64::from(estimated) >= truth, "FAR {far}: {estimated} < true {truth}");
            // ...but not absurdly so (within 2.5 standard deviations).
            assert!(f64::from(estimated) < truth + 0.1, "FAR {far}: {estimated}");
            assert!(m.far_at(truth as f32) >= far);
            assert_eq!(m.estimate(truth as f32).basis, FarBasis::Extrapolated);
        }
        // In the measured range the estimate is close to the truth: FAR 1e-2 at z = 2.326.
        let t = m.threshold_for(1e-2);
        assert!((f64::from(t) - (0.8 + 0.04 * 2.326)).abs() < 0.004, "{t}");
    }

    #[test]
    fn errors() {
        assert_eq!(
            ImpostorModel::fit(&[0.5; 49]),
            Err(EvalError::TooFewScores { found: 49, needed: MIN_FIT_SCORES })
        );
        let mut with_nan = vec![0.5; 60];
        with_nan[3] = f32::NAN;
        assert_eq!(ImpostorModel::fit(&with_nan), Err(EvalError::NotFinite));
    }

    #[test]
    fn identical_scores_give_one_knot_and_the_scale_floor() {
        let m = ImpostorModel::fit(&[0.7; 80]).unwrap();
        assert_eq!(m.knots().len(), 1);
        assert_eq!(m.tail_scale(), MIN_TAIL_SCALE);
        assert_eq!(m.far_at(0.7), 1.0);
        assert!(m.far_at(0.71) < 1e-4);
        // Beyond the single knot the tail starts at FAR 1: 0.7 + scale * ln(1 / 0.5).
        let expected = 0.7 + f64::from(MIN_TAIL_SCALE) * 2f64.ln();
        assert!((f64::from(m.threshold_for(0.5)) - expected).abs() < 1e-6);
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let m = ImpostorModel::fit(&gaussian(2000, 0.8, 0.04)).unwrap();
        let json = serde_json::to_string(&m).unwrap();
        let back: ImpostorModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        // A FAR that rises with similarity is refused.
        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value["knots"][1]["far"] = serde_json::json!(1.0);
        assert!(serde_json::from_value::<ImpostorModel>(value).is_err());
        // A last knot below 10 pairs' worth is refused.
        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value["pairs"] = serde_json::json!(10);
        assert!(serde_json::from_value::<ImpostorModel>(value).is_err());
        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value["tail_scale"] = serde_json::json!(0.0);
        assert!(serde_json::from_value::<ImpostorModel>(value).is_err());
    }

    #[test]
    fn gallery_false_match_rate_by_hand() {
        let scores: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let m = ImpostorModel::fit(&scores).unwrap();
        let far = m.far_at(0.99);
        assert!((far - 0.01).abs() < 1e-9);
        let expected = 1.0 - (1.0 - 0.01f64).powi(100);
        assert!((m.gallery_false_match_rate(0.99, 100) - expected).abs() < 1e-12);
        assert_eq!(m.gallery_false_match_rate(0.99, 0), 0.0);
        assert_eq!(m.gallery_false_match_rate(-1.0, 3), 1.0);
    }

    #[test]
    fn pooling_weighs_each_side_by_its_pairs() {
        let prior = ImpostorModel::fit(&gaussian(5000, 0.80, 0.04)).unwrap();
        // Pooled with nothing, the prior is reproduced.
        let alone = prior.pooled_with(&[]).unwrap();
        assert_eq!(alone.pairs(), 5000);
        for s in [0.75f32, 0.8, 0.85, 0.88] {
            assert!((alone.far_at(s) - prior.far_at(s)).abs() < 0.01, "{s}");
        }
        // 5000 gallery scores shifted up by 0.05: the pooled median lies between the two.
        let gallery = gaussian(5000, 0.85, 0.04);
        let pooled = prior.pooled_with(&gallery).unwrap();
        assert_eq!(pooled.pairs(), 10_000);
        let median = pooled.threshold_for(0.5);
        assert!((median - 0.825).abs() < 0.005, "{median}");
    }

    proptest! {
        #[test]
        fn far_is_monotone_and_threshold_inverts_it(
            mean in 0.0f64..0.9,
            std in 0.005f64..0.2,
            n in 50usize..3000,
            far in 1e-9f64..0.99,
        ) {
            let m = ImpostorModel::fit(&gaussian(n, mean, std)).unwrap();
            let t = m.threshold_for(far);
            prop_assert!(t <= 1.0);
            if t < 1.0 && t > m.knots()[0].similarity {
                // The returned threshold meets the rate, and one step lower does not (up to
                // rounding).
                prop_assert!(m.far_at(t) <= far * (1.0 + 1e-6));
                prop_assert!(m.far_at(t.next_down().next_down()) >= far * (1.0 - 1e-3));
            }
            let mut previous = 1.0f64;
            for i in 0..=200 {
                let s = -0.2 + i as f32 * 0.006;
                let f = m.far_at(s);
                prop_assert!(f <= previous + 1e-12 && f > 0.0 && f <= 1.0);
                previous = f;
            }
        }
    }
}
