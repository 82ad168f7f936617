//! Sorted score lists and their summaries: the counting every metric is built on.
//!
//! A comparison is accepted when its similarity is **at or above** the threshold (`>=`), as in
//! `ddfr verify` and the server.

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// Finite scores sorted ascending.
#[derive(Debug, Clone, PartialEq)]
pub struct SortedScores(Vec<f32>);

impl SortedScores {
    /// Sorts `scores`; fails on NaN or infinity.
    pub fn new(mut scores: Vec<f32>) -> Result<Self, EvalError> {
        if scores.iter().any(|s| !s.is_finite()) {
            return Err(EvalError::NotFinite);
        }
        scores.sort_by(f32::total_cmp);
        Ok(Self(scores))
    }

    /// The scores, ascending.
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// Number of scores.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many scores are `>= threshold`.
    pub fn at_or_above(&self, threshold: f32) -> usize {
        self.0.len() - self.0.partition_point(|s| *s < threshold)
    }

    /// The `k`-th largest score (`k = 0` is the maximum).
    pub fn kth_largest(&self, k: usize) -> Option<f32> {
        self.0.len().checked_sub(k + 1).map(|i| self.0[i])
    }

    /// The lowest threshold that accepts at most `allowed` scores: just above the
    /// `allowed + 1`-th largest score (ties with it are rejected too). When `allowed` is at
    /// least the number of scores, the lowest score (everything is accepted).
    pub fn threshold_accepting_at_most(&self, allowed: usize) -> Option<f32> {
        match self.kth_largest(allowed) {
            Some(score) => Some(score.next_up()),
            None => self.0.first().copied(),
        }
    }

    /// Mean, spread and extremes.
    pub fn summary(&self) -> ScoreSummary {
        ScoreSummary::of(&self.0)
    }
}

/// How many of `n` events a rate `target` allows: `floor(target * n)`, robust to the rounding
/// of `target` (0.01 * 300 is 3, not 2.999...).
pub fn allowed_count(target: f64, n: usize) -> usize {
    let exact = target * n as f64;
    (exact + exact.abs() * 1e-9 + 1e-12).floor().max(0.0) as usize
}

/// Summary statistics of a list of similarities (all zero when empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreSummary {
    /// Number of scores.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Lowest.
    pub min: f32,
    /// Median (mean of the middle two for an even count).
    pub median: f32,
    /// Highest.
    pub max: f32,
}

impl ScoreSummary {
    /// Summarises `sorted` (ascending).
    fn of(sorted: &[f32]) -> Self {
        let n = sorted.len();
        if n == 0 {
            return Self::default();
        }
        let mean = sorted.iter().map(|s| f64::from(*s)).sum::<f64>() / n as f64;
        let var = sorted.iter().map(|s| (f64::from(*s) - mean).powi(2)).sum::<f64>() / n as f64;
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            ((f64::from(sorted[n / 2 - 1]) + f64::from(sorted[n / 2])) / 2.0) as f32
        };
        Self { count: n as u64, mean, std: var.sqrt(), min: sorted[0], median, max: sorted[n - 1] }
    }
}

/// The decidability index d' of two score distributions: the distance of their means in units
/// of their pooled standard deviation, `(mean_a - mean_b) / sqrt((std_a² + std_b²) / 2)`.
/// `None` when both spreads are zero.
pub fn d_prime(a: &ScoreSummary, b: &ScoreSummary) -> Option<f64> {
    let pooled = ((a.std.powi(2) + b.std.powi(2)) / 2.0).sqrt();
    (pooled > 0.0).then(|| (a.mean - b.mean) / pooled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_at_or_above_with_ties() {
        let s = SortedScores::new(vec![0.5, 0.2, 0.5, 0.9]).unwrap();
        assert_eq!(s.at_or_above(0.5), 3);
        assert_eq!(s.at_or_above(0.5f32.next_up()), 1);
        assert_eq!(s.at_or_above(-1.0), 4);
        assert_eq!(s.at_or_above(1.0), 0);
        assert_eq!(s.kth_largest(0), Some(0.9));
        assert_eq!(s.kth_largest(3), Some(0.2));
        assert_eq!(s.kth_largest(4), None);
    }

    #[test]
    fn threshold_for_an_allowance_rejects_ties() {
        let s = SortedScores::new(vec![0.1, 0.5, 0.5, 0.9]).unwrap();
        // At most one accepted: just above the second largest (0.5), which rejects both 0.5s.
        let t = s.threshold_accepting_at_most(1).unwrap();
        assert_eq!(s.at_or_above(t), 1);
        // At most two: still just above 0.5 (accepting one 0.5 means accepting both).
        assert_eq!(s.at_or_above(s.threshold_accepting_at_most(2).unwrap()), 1);
        assert_eq!(s.at_or_above(s.threshold_accepting_at_most(0).unwrap()), 0);
        assert_eq!(s.threshold_accepting_at_most(4), Some(0.1));
        assert_eq!(SortedScores::new(vec![]).unwrap().threshold_accepting_at_most(0), None);
    }

    #[test]
    fn rejects_nan() {
        assert_eq!(SortedScores::new(vec![0.1, f32::NAN]), Err(EvalError::NotFinite));
    }

    #[test]
    fn allowed_counts_are_exact_for_decimal_rates() {
        assert_eq!(allowed_count(0.01, 300), 3);
        assert_eq!(allowed_count(0.001, 1000), 1);
        assert_eq!(allowed_count(0.01, 99), 0);
        assert_eq!(allowed_count(1e-4, 1205), 0);
        assert_eq!(allowed_count(0.1, 1205), 120);
    }

    #[test]
    fn summary_by_hand() {
        let s = SortedScores::new(vec![1.0, 0.0, 0.5, 0.5]).unwrap().summary();
        assert_eq!((s.count, s.min, s.median, s.max), (4, 0.0, 0.5, 1.0));
        assert!((s.mean - 0.5).abs() < 1e-12);
        assert!((s.std - (0.125f64).sqrt()).abs() < 1e-12);
        assert_eq!(SortedScores::new(vec![]).unwrap().summary(), ScoreSummary::default());
        let a = ScoreSummary { mean: 0.9, std: 0.03, ..ScoreSummary::default() };
        let b = ScoreSummary { mean: 0.8, std: 0.04, ..ScoreSummary::default() };
        assert!((d_prime(&a, &b).unwrap() - 0.1 / (0.00125f64).sqrt()).abs() < 1e-9);
        assert_eq!(d_prime(&ScoreSummary::default(), &ScoreSummary::default()), None);
    }

    proptest! {
        #[test]
        fn threshold_never_exceeds_the_allowance(
            scores in prop::collection::vec(-1.0f32..1.0, 1..200),
            allowed in 0usize..250,
        ) {
            let s = SortedScores::new(scores).unwrap();
            let t = s.threshold_accepting_at_most(allowed).unwrap();
            let accepted = s.at_or_above(t);
            prop_assert!(accepted <= allowed);
            // And it is the lowest such threshold: one step lower accepts more than allowed.
            if allowed < s.len() {
                prop_assert!(s.at_or_above(t.next_down()) > allowed);
            }
        }
    }
}
