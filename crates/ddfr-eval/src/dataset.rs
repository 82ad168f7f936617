//! Labelled embeddings grouped by identity, and the genuine and impostor pair scores of a set.
//!
//! Every pair of photos of the same identity is a genuine pair; every pair of photos of two
//! different identities is an impostor pair. Genuine pairs are always all scored. Impostor pairs
//! grow with the square of the set (LFW's 13,233 photos make 87 million), so above
//! `max_impostor_pairs` a deterministic sample is scored: each impostor pair `(i, j)` (indices
//! in the sorted set) is kept when a SplitMix64 hash of `(i, j)` falls below
//! `max_impostor_pairs / total`. Every pair has the same chance, no pair is drawn twice, the
//! expected sample size is `max_impostor_pairs`, and the same set always gives the same sample.

use std::ops::Range;

use ddfr_core::Embedding;

use crate::EvalError;

/// Impostor pairs scored before sampling starts: 5 million scores (20 MB) give measured
/// false-accept rates down to 2e-6 (10 pairs) while scoring in about a second.
pub const DEFAULT_MAX_IMPOSTOR_PAIRS: u64 = 5_000_000;

/// Seed of the impostor-pair sample (fixed: the sample is part of the definition).
const SAMPLE_SEED: u64 = 0x6464_6672_6576_616c; // "ddfreval"

/// One embedded photo with its identity.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledEmbedding {
    /// Who is in the photo (e.g. the folder name).
    pub identity: String,
    /// The photo's name; photos of an identity are ordered by it (e.g. the file name).
    pub photo: String,
    /// The unit-norm embedding of the photo's face.
    pub embedding: Embedding,
}

/// Labelled embeddings sorted by identity, then photo name, with one group per identity.
#[derive(Debug, Clone)]
pub struct Dataset {
    samples: Vec<LabelledEmbedding>,
    groups: Vec<Range<usize>>,
}

impl Dataset {
    /// Sorts and groups `samples`. Fails when the embeddings have different dimensions.
    pub fn new(mut samples: Vec<LabelledEmbedding>) -> Result<Self, EvalError> {
        if let Some(first) = samples.first().map(|s| s.embedding.dim())
            && let Some(other) = samples.iter().map(|s| s.embedding.dim()).find(|d| *d != first)
        {
            return Err(EvalError::DimensionMismatch { first, other });
        }
        samples.sort_by(|a, b| (&a.identity, &a.photo).cmp(&(&b.identity, &b.photo)));
        let mut groups: Vec<Range<usize>> = Vec::new();
        for (i, sample) in samples.iter().enumerate() {
            match groups.last_mut() {
                Some(group) if samples[group.start].identity == sample.identity => {
                    group.end = i + 1
                }
                _ => groups.push(i..i + 1),
            }
        }
        Ok(Self { samples, groups })
    }

    /// Every sample, sorted by identity then photo.
    pub fn samples(&self) -> &[LabelledEmbedding] {
        &self.samples
    }

    /// Number of photos.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no photos.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Number of identities.
    pub fn n_identities(&self) -> usize {
        self.groups.len()
    }

    /// The photos of each identity, identities sorted by name, photos by photo name.
    pub fn identities(&self) -> impl Iterator<Item = &[LabelledEmbedding]> {
        self.groups.iter().map(|g| &self.samples[g.clone()])
    }

    /// Index ranges into [`Dataset::samples`], one per identity.
    pub(crate) fn groups(&self) -> &[Range<usize>] {
        &self.groups
    }

    /// Number of genuine (same-identity) pairs.
    pub fn genuine_pair_count(&self) -> u64 {
        self.groups.iter().map(|g| pairs_within(g.len() as u64)).sum()
    }

    /// Number of impostor (different-identity) pairs.
    pub fn impostor_pair_count(&self) -> u64 {
        pairs_within(self.samples.len() as u64) - self.genuine_pair_count()
    }
}

fn pairs_within(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Cosine similarities of the genuine and impostor pairs of a data set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PairScores {
    /// Every same-identity pair.
    pub genuine: Vec<f32>,
    /// The different-identity pairs scored (all, or the sample).
    pub impostor: Vec<f32>,
    /// How many different-identity pairs the set has.
    pub impostor_total: u64,
    /// Whether `impostor` is a sample of them.
    pub impostor_sampled: bool,
}

/// Scores every genuine pair and every impostor pair, or a deterministic sample of about
/// `max_impostor_pairs` impostor pairs when there are more (see the module documentation).
pub fn pair_scores(data: &Dataset, max_impostor_pairs: u64) -> PairScores {
    let samples = data.samples();
    let groups = data.groups();
    let mut genuine = Vec::with_capacity(usize::try_from(data.genuine_pair_count()).unwrap_or(0));
    for group in groups {
        for i in group.clone() {
            for j in i + 1..group.end {
                genuine.push(samples[i].embedding.similarity(&samples[j].embedding));
            }
        }
    }
    let total = data.impostor_pair_count();
    let sampled = total > max_impostor_pairs;
    // Keep a pair when its hash is below `cutoff`: probability max / total.
    let cutoff = if sampled {
        u64::try_from((u128::from(max_impostor_pairs) << 64) / u128::from(total))
            .unwrap_or(u64::MAX)
    } else {
        u64::MAX
    };
    let expected = if sampled { max_impostor_pairs } else { total };
    let mut impostor = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    for (a, group_a) in groups.iter().enumerate() {
        for group_b in &groups[a + 1..] {
            for i in group_a.clone() {
                for j in group_b.clone() {
                    if sampled && pair_hash(i, j) >= cutoff {
                        continue;
                    }
                    impostor.push(samples[i].embedding.similarity(&samples[j].embedding));
                }
            }
        }
    }
    PairScores { genuine, impostor, impostor_total: total, impostor_sampled: sampled }
}

/// SplitMix64 of the pair's two indices: a fixed, well-mixed hash.
fn pair_hash(i: usize, j: usize) -> u64 {
    let mut z = SAMPLE_SEED ^ ((i as u64) << 32 | (j as u64 & 0xffff_ffff));
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A unit embedding at `angle` radians in the plane: similarity of two is cos(a - b).
    pub fn at_angle(identity: &str, photo: &str, angle: f32) -> LabelledEmbedding {
        LabelledEmbedding {
            identity: identity.to_owned(),
            photo: photo.to_owned(),
            embedding: Embedding::from_raw(vec![angle.cos(), angle.sin()]).unwrap(),
        }
    }

    #[test]
    fn groups_by_identity_in_name_order() {
        let data = Dataset::new(vec![
            at_angle("b", "2.jpg", 0.0),
            at_angle("a", "1.jpg", 0.0),
            at_angle("b", "1.jpg", 0.0),
        ])
        .unwrap();
        let names: Vec<Vec<(&str, &str)>> = data
            .identities()
            .map(|g| g.iter().map(|s| (s.identity.as_str(), s.photo.as_str())).collect())
            .collect();
        assert_eq!(names, vec![vec![("a", "1.jpg")], vec![("b", "1.jpg"), ("b", "2.jpg")]]);
        assert_eq!(data.genuine_pair_count(), 1);
        assert_eq!(data.impostor_pair_count(), 2);
    }

    #[test]
    fn mixed_dimensions_are_refused() {
        let mut other = at_angle("b", "1", 0.0);
        other.embedding = Embedding::from_raw(vec![1.0, 0.0, 0.0]).unwrap();
        assert_eq!(
            Dataset::new(vec![at_angle("a", "1", 0.0), other]).unwrap_err(),
            EvalError::DimensionMismatch { first: 2, other: 3 }
        );
    }

    #[test]
    fn scores_every_pair_once() {
        // a: 0 and 0.1 rad; b: 1.0 rad.
        let data = Dataset::new(vec![
            at_angle("a", "1", 0.0),
            at_angle("a", "2", 0.1),
            at_angle("b", "1", 1.0),
        ])
        .unwrap();
        let scores = pair_scores(&data, DEFAULT_MAX_IMPOSTOR_PAIRS);
        assert_eq!(scores.genuine.len(), 1);
        assert!((scores.genuine[0] - 0.1f32.cos()).abs() < 1e-6);
        let mut impostor = scores.impostor.clone();
        impostor.sort_by(f32::total_cmp);
        assert!((impostor[0] - 1.0f32.cos()).abs() < 1e-6);
        assert!((impostor[1] - 0.9f32.cos()).abs() < 1e-6);
        assert!(!scores.impostor_sampled);
        assert_eq!(scores.impostor_total, 2);
    }

    #[test]
    fn impostor_sample_is_deterministic_and_about_the_asked_size() {
        let samples: Vec<_> = (0..400)
            .map(|i| at_angle(&format!("id{:03}", i / 2), &i.to_string(), i as f32 * 0.01))
            .collect();
        let data = Dataset::new(samples).unwrap();
        assert_eq!(data.impostor_pair_count(), 400 * 399 / 2 - 200);
        let first = pair_scores(&data, 10_000);
        let second = pair_scores(&data, 10_000);
        assert!(first.impostor_sampled);
        assert_eq!(first.impostor, second.impostor);
        // Binomial(79600, 0.126): standard deviation about 94.
        let n = first.impostor.len() as i64;
        assert!((n - 10_000).abs() < 500, "sampled {n}");
        assert_eq!(first.genuine.len(), 200, "genuine pairs are never sampled");
    }

    #[test]
    fn single_photos_and_single_identities_give_empty_sides() {
        let one = Dataset::new(vec![at_angle("a", "1", 0.0), at_angle("a", "2", 0.0)]).unwrap();
        let scores = pair_scores(&one, 10);
        assert_eq!((scores.genuine.len(), scores.impostor.len()), (1, 0));
        let singles = Dataset::new(vec![at_angle("a", "1", 0.0), at_angle("b", "1", 0.0)]).unwrap();
        let scores = pair_scores(&singles, 10);
        assert_eq!((scores.genuine.len(), scores.impostor.len()), (0, 1));
        let empty = Dataset::new(Vec::new()).unwrap();
        assert!(empty.is_empty());
        assert_eq!(pair_scores(&empty, 10), PairScores::default());
    }
}
