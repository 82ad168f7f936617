//! 1:1 verification metrics: accept rates at a threshold, the best threshold, ROC points.
//!
//! Definitions (a pair is accepted when its similarity is `>= threshold`):
//! - **TAR** (true accept rate): genuine pairs accepted / genuine pairs. **FRR** = 1 - TAR.
//! - **TRR** (true reject rate): impostor pairs rejected / impostor pairs. **FAR** = 1 - TRR.
//! - **Accuracy**: the balanced mean `(TAR + TRR) / 2`. LFW's protocol scores an equal number
//!   of genuine and impostor pairs, where plain accuracy equals this mean; over all pairs of a
//!   folder (far more impostor than genuine pairs) the balanced mean keeps that meaning instead
//!   of being dominated by impostors. Raw counts are reported alongside.
//! - **Best threshold**: the one with the highest balanced accuracy. Accuracy only changes at
//!   observed scores, so the best thresholds form intervals `(lower score, upper score]`; the
//!   widest one is chosen (the lowest when tied) and its midpoint reported, which sits in the
//!   middle of the gap instead of on a sample. It is fitted on the same pairs it is measured
//!   on, so it is an optimistic figure (LFW's protocol would choose it on 9 folds and measure
//!   on the tenth).
//! - **ROC point at FAR f**: the lowest threshold whose measured FAR is at most `f`
//!   (`floor(f * impostors)` impostor pairs accepted at most), and the TAR there. Reported
//!   only when at least one impostor acceptance is allowed (`f * impostors >= 1`): with fewer
//!   impostor pairs the point would only say "above the highest impostor".

use serde::{Deserialize, Serialize};

use crate::EvalError;
use crate::dataset::PairScores;
use crate::scores::{ScoreSummary, SortedScores, allowed_count};

/// The false-accept rates the ROC is reported at.
pub const ROC_FARS: [f64; 4] = [1e-1, 1e-2, 1e-3, 1e-4];

/// Accept and reject counts and rates at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// The threshold (accept when similarity >= threshold).
    pub threshold: f32,
    /// True accept rate.
    pub tar: f64,
    /// True reject rate.
    pub trr: f64,
    /// False accept rate (1 - TRR).
    pub far: f64,
    /// False reject rate (1 - TAR).
    pub frr: f64,
    /// Balanced accuracy (TAR + TRR) / 2.
    pub accuracy: f64,
    /// Genuine pairs accepted.
    pub genuine_accepted: u64,
    /// Genuine pairs.
    pub genuine: u64,
    /// Impostor pairs accepted (false accepts).
    pub impostor_accepted: u64,
    /// Impostor pairs scored.
    pub impostor: u64,
}

/// TAR at a target FAR.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// The FAR asked for.
    pub target_far: f64,
    /// The FAR measured at `threshold` (at most `target_far`).
    pub far: f64,
    /// The TAR measured at `threshold`.
    pub tar: f64,
    /// The lowest threshold with FAR <= `target_far`.
    pub threshold: f32,
}

/// Everything `ddfr evaluate` reports about verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationReport {
    /// Genuine pairs scored (all of them).
    pub genuine_pairs: u64,
    /// Impostor pairs scored.
    pub impostor_pairs: u64,
    /// Impostor pairs in the set.
    pub impostor_pairs_total: u64,
    /// Whether the impostor pairs are a sample.
    pub impostor_sampled: bool,
    /// At the threshold asked for.
    pub at_threshold: OperatingPoint,
    /// At the threshold with the highest balanced accuracy.
    pub best: OperatingPoint,
    /// TAR at each supported FAR of [`ROC_FARS`].
    pub roc: Vec<RocPoint>,
    /// The FARs of [`ROC_FARS`] the impostor count cannot resolve.
    pub roc_unsupported: Vec<f64>,
    /// Genuine similarities.
    pub genuine: ScoreSummary,
    /// Impostor similarities.
    pub impostor: ScoreSummary,
}

/// Genuine and impostor scores sorted once, for any number of thresholds.
#[derive(Debug, Clone)]
pub struct Verification {
    genuine: SortedScores,
    impostor: SortedScores,
}

impl Verification {
    /// Sorts the scores; needs at least one genuine and one impostor pair.
    pub fn new(genuine: Vec<f32>, impostor: Vec<f32>) -> Result<Self, EvalError> {
        if genuine.is_empty() {
            return Err(EvalError::NoGenuinePairs);
        }
        if impostor.is_empty() {
            return Err(EvalError::NoImpostorPairs);
        }
        Ok(Self { genuine: SortedScores::new(genuine)?, impostor: SortedScores::new(impostor)? })
    }

    /// Counts and rates at `threshold`.
    pub fn at(&self, threshold: f32) -> OperatingPoint {
        let genuine = self.genuine.len() as u64;
        let impostor = self.impostor.len() as u64;
        let genuine_accepted = self.genuine.at_or_above(threshold) as u64;
        let impostor_accepted = self.impostor.at_or_above(threshold) as u64;
        let tar = genuine_accepted as f64 / genuine as f64;
        let far = impostor_accepted as f64 / impostor as f64;
        OperatingPoint {
            threshold,
            tar,
            trr: 1.0 - far,
            far,
            frr: 1.0 - tar,
            accuracy: (tar + 1.0 - far) / 2.0,
            genuine_accepted,
            genuine,
            impostor_accepted,
            impostor,
        }
    }

    /// The threshold with the highest balanced accuracy (see the module documentation).
    pub fn best(&self) -> OperatingPoint {
        let (g, i) = (self.genuine.as_slice(), self.impostor.as_slice());
        // Candidate k accepts the scores >= values[k]; the last candidate accepts nothing.
        let mut values: Vec<f32> = g.iter().chain(i).copied().collect();
        values.sort_by(f32::total_cmp);
        values.dedup();
        let (n_g, n_i) = (g.len() as u128, i.len() as u128);
        // Balanced accuracy * 2 * n_g * n_i, exactly: accepted_g * n_i + rejected_i * n_g.
        let score = |k: usize| -> u128 {
            let accepted_g = match values.get(k) {
                Some(v) => self.genuine.at_or_above(*v) as u128,
                None => 0,
            };
            let rejected_i = match values.get(k) {
                Some(v) => n_i - self.impostor.at_or_above(*v) as u128,
                None => n_i,
            };
            accepted_g * n_i + rejected_i * n_g
        };
        let scores: Vec<u128> = (0..=values.len()).map(score).collect();
        let best = scores.iter().copied().max().unwrap_or(0);
        // Candidate k covers thresholds in (values[k-1], values[k]]; runs of best candidates are
        // contiguous intervals. Pick the widest (lowest on ties) and report its midpoint.
        let lower = |k: usize| if k == 0 { None } else { Some(values[k - 1]) };
        let upper = |k: usize| values.get(k).copied();
        let mut chosen: Option<(usize, usize, f64)> = None;
        let mut k = 0;
        while k < scores.len() {
            if scores[k] != best {
                k += 1;
                continue;
            }
            let start = k;
            while k + 1 < scores.len() && scores[k + 1] == best {
                k += 1;
            }
            let width = match (lower(start), upper(k)) {
                (Some(lo), Some(hi)) => f64::from(hi) - f64::from(lo),
                _ => f64::INFINITY,
            };
            if chosen.is_none_or(|(_, _, w)| width > w) {
                chosen = Some((start, k, width));
            }
            k += 1;
        }
        let (start, end, _) = chosen.unwrap_or((0, 0, 0.0));
        let threshold = match (lower(start), upper(end)) {
            (Some(lo), Some(hi)) => {
                let mid = ((f64::from(lo) + f64::from(hi)) / 2.0) as f32;
                if mid > lo && mid <= hi { mid } else { hi }
            }
            (None, Some(hi)) => hi,
            (Some(lo), None) => lo.next_up(),
            (None, None) => values.first().copied().unwrap_or(0.0),
        };
        self.at(threshold)
    }

    /// The TAR at a target FAR, when the impostor count resolves it.
    pub fn roc_point(&self, target_far: f64) -> Result<Option<RocPoint>, EvalError> {
        if !(target_far > 0.0 && target_far < 1.0) {
            return Err(EvalError::InvalidRate { value: target_far });
        }
        let allowed = allowed_count(target_far, self.impostor.len());
        if allowed == 0 {
            return Ok(None);
        }
        let Some(threshold) = self.impostor.threshold_accepting_at_most(allowed) else {
            return Ok(None);
        };
        let point = self.at(threshold);
        Ok(Some(RocPoint { target_far, far: point.far, tar: point.tar, threshold }))
    }

    /// Genuine scores, ascending.
    pub fn genuine(&self) -> &SortedScores {
        &self.genuine
    }

    /// Impostor scores, ascending.
    pub fn impostor(&self) -> &SortedScores {
        &self.impostor
    }
}

/// The full verification report of a set's pair scores at `threshold`.
pub fn verification(scores: &PairScores, threshold: f32) -> Result<VerificationReport, EvalError> {
    if !(-1.0..=1.0).contains(&threshold) {
        return Err(EvalError::InvalidThreshold { value: threshold });
    }
    let v = Verification::new(scores.genuine.clone(), scores.impostor.clone())?;
    let mut roc = Vec::new();
    let mut roc_unsupported = Vec::new();
    for far in ROC_FARS {
        match v.roc_point(far)? {
            Some(point) => roc.push(point),
            None => roc_unsupported.push(far),
        }
    }
    Ok(VerificationReport {
        genuine_pairs: v.genuine.len() as u64,
        impostor_pairs: v.impostor.len() as u64,
        impostor_pairs_total: scores.impostor_total,
        impostor_sampled: scores.impostor_sampled,
        at_threshold: v.at(threshold),
        best: v.best(),
        roc,
        roc_unsupported,
        genuine: v.genuine.summary(),
        impostor: v.impostor.summary(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scores(genuine: &[f32], impostor: &[f32]) -> PairScores {
        PairScores {
            genuine: genuine.to_vec(),
            impostor: impostor.to_vec(),
            impostor_total: impostor.len() as u64,
            impostor_sampled: false,
        }
    }

    #[test]
    fn rates_at_a_threshold_by_hand() {
        // 4 genuine, 5 impostor. At 0.6: genuine 0.9, 0.7, 0.6 accepted (3/4); impostor 0.65
        // accepted (1/5).
        let v =
            Verification::new(vec![0.9, 0.7, 0.6, 0.5], vec![0.65, 0.55, 0.4, 0.3, 0.1]).unwrap();
        let p = v.at(0.6);
        assert_eq!((p.genuine_accepted, p.genuine, p.impostor_accepted, p.impostor), (3, 4, 1, 5));
        assert!((p.tar - 0.75).abs() < 1e-12 && (p.far - 0.2).abs() < 1e-12);
        assert!((p.trr - 0.8).abs() < 1e-12 && (p.frr - 0.25).abs() < 1e-12);
        assert!((p.accuracy - 0.775).abs() < 1e-12);
    }

    #[test]
    fn best_threshold_sits_in_the_middle_of_a_perfect_gap() {
        let v = Verification::new(vec![0.9, 0.8], vec![0.3, 0.5]).unwrap();
        let best = v.best();
        assert!((best.threshold - 0.65).abs() < 1e-6, "{best:?}");
        assert_eq!(best.accuracy, 1.0);
    }

    #[test]
    fn best_threshold_with_overlap_by_hand() {
        // Genuine 0.9, 0.7, 0.5; impostor 0.6, 0.4, 0.2, 0.1.
        // Accept >= 0.7: TAR 2/3, TRR 4/4 -> 0.8333; accept >= 0.5: TAR 3/3, TRR 3/4 -> 0.875.
        let v = Verification::new(vec![0.9, 0.7, 0.5], vec![0.6, 0.4, 0.2, 0.1]).unwrap();
        let best = v.best();
        assert!((best.accuracy - 0.875).abs() < 1e-12);
        // The best interval is (0.4, 0.5]: midpoint 0.45.
        assert!((best.threshold - 0.45).abs() < 1e-6, "{best:?}");
    }

    #[test]
    fn ties_between_genuine_and_impostor_scores() {
        // Every score is 0.5: any threshold accepts all or nothing, accuracy 0.5 either way.
        let v = Verification::new(vec![0.5, 0.5], vec![0.5]).unwrap();
        assert_eq!(v.best().accuracy, 0.5);
        assert_eq!(v.at(0.5).impostor_accepted, 1);
        assert_eq!(v.at(0.5).genuine_accepted, 2);
        // The same value in both lists: accepting it takes both.
        let v = Verification::new(vec![0.9, 0.5], vec![0.5, 0.1]).unwrap();
        let best = v.best();
        // >= 0.9: (1/2 + 2/2)/2 = 0.75; >= 0.5: (2/2 + 1/2)/2 = 0.75; the best thresholds form
        // one interval (0.1, 0.9], whose midpoint 0.5 is reported.
        assert_eq!(best.accuracy, 0.75);
        assert!((best.threshold - 0.5).abs() < 1e-6, "{best:?}");
        // Two separate best intervals of different widths: the wider one wins.
        // Genuine 0.9, 0.3; impostor 0.8, 0.1: >= 0.9 -> 0.75 in (0.8, 0.9]; >= 0.3 -> 0.75 in
        // (0.1, 0.3]; >= 0.8 -> 0.5.
        let v = Verification::new(vec![0.9, 0.3], vec![0.8, 0.1]).unwrap();
        let best = v.best();
        assert_eq!(best.accuracy, 0.75);
        assert!((best.threshold - 0.2).abs() < 1e-6, "{best:?}");
    }

    #[test]
    fn edge_cases_are_typed_errors() {
        assert_eq!(Verification::new(vec![], vec![0.1]).unwrap_err(), EvalError::NoGenuinePairs);
        assert_eq!(Verification::new(vec![0.1], vec![]).unwrap_err(), EvalError::NoImpostorPairs);
        assert!(matches!(
            verification(&scores(&[0.9], &[0.1]), 1.5),
            Err(EvalError::InvalidThreshold { .. })
        ));
        let v = Verification::new(vec![0.9], vec![0.1]).unwrap();
        assert!(v.roc_point(0.0).is_err() && v.roc_point(1.0).is_err());
    }

    #[test]
    fn roc_points_by_hand() {
        // 10 impostors 0.0..0.9, genuine 0.95, 0.85, 0.75, 0.05.
        let impostor: Vec<f32> = (0..10).map(|i| i as f32 / 10.0).collect();
        let v = Verification::new(vec![0.95, 0.85, 0.75, 0.05], impostor).unwrap();
        // FAR 0.1 allows one impostor: threshold just above 0.8 (second largest), accepting
        // 0.9 only. Genuine accepted: 0.95, 0.85 -> TAR 0.5.
        let p = v.roc_point(0.1).unwrap().unwrap();
        assert_eq!(p.threshold, 0.8f32.next_up());
        assert!((p.far - 0.1).abs() < 1e-12 && (p.tar - 0.5).abs() < 1e-12);
        // FAR 0.01 cannot be resolved with 10 impostors.
        assert_eq!(v.roc_point(0.01).unwrap(), None);
        let report =
            verification(&scores(&[0.95, 0.85, 0.75, 0.05], v.impostor.as_slice()), 0.5).unwrap();
        assert_eq!(report.roc.len(), 1);
        assert_eq!(report.roc_unsupported, vec![1e-2, 1e-3, 1e-4]);
        assert_eq!((report.genuine_pairs, report.impostor_pairs), (4, 10));
    }

    proptest! {
        #[test]
        fn best_is_at_least_every_observed_threshold(
            genuine in prop::collection::vec(-1.0f32..1.0, 1..40),
            impostor in prop::collection::vec(-1.0f32..1.0, 1..40),
        ) {
            let v = Verification::new(genuine.clone(), impostor.clone()).unwrap();
            let best = v.best();
            for t in genuine.iter().chain(&impostor) {
                prop_assert!(best.accuracy + 1e-12 >= v.at(*t).accuracy);
            }
            prop_assert!(best.accuracy >= 0.5 - 1e-12);
        }

        #[test]
        fn roc_far_never_exceeds_its_target(
            genuine in prop::collection::vec(-1.0f32..1.0, 1..40),
            impostor in prop::collection::vec(-1.0f32..1.0, 10..300),
        ) {
            let v = Verification::new(genuine, impostor).unwrap();
            for far in ROC_FARS {
                if let Some(p) = v.roc_point(far).unwrap() {
                    prop_assert!(p.far <= far + 1e-12);
                    prop_assert_eq!(v.at(p.threshold).tar, p.tar);
                }
            }
        }
    }
}
