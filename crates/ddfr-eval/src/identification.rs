//! Open-set 1:N identification: a gallery of enrolled persons, probes of enrolled persons
//! (mated) and of strangers (non-mated).
//!
//! **Split** (deterministic, from names only): identities sorted by name; those with at least
//! two photos alternate enrolled / stranger (the 1st, 3rd, 5th... are enrolled, the 2nd, 4th...
//! are strangers); identities with a single photo are strangers. An enrolled identity enrolls
//! its first `k` photos by photo name (at most all but one, so every enrolled identity keeps a
//! probe) and its later photos are mated probes. Every photo of a stranger is a non-mated
//! probe. The split does not depend on `k`, so runs with different `k` compare the same people.
//!
//! **Scoring**: a probe is compared with every enrolled person; a person's score is one of
//! [`PersonScore`] over that person's samples, and the probe's answer is the person with the
//! highest score (the lowest in name order on an exact tie).
//!
//! **Metrics** (accept when score `>= threshold`):
//! - **TPIR** (true positive identification rate): mated probes whose top person is the right
//!   one *and* is accepted / mated probes. FNIR = 1 - TPIR.
//! - **FPIR** (false positive identification rate): non-mated probes whose top score is
//!   accepted / non-mated probes.
//! - **TPIR at FPIR = f**: the threshold is the lowest with measured FPIR <= f on the
//!   non-mated top scores (`floor(f * non-mated)` accepted at most). With fewer than `1 / f`
//!   non-mated probes no stranger may be accepted at all; the report says so
//!   (`target_fpir_resolved: false`).
//! - **Rank-1**: mated probes whose top person is right, at any score (closed-set accuracy).

use std::fmt;
use std::str::FromStr;

use ddfr_core::Embedding;
use serde::{Deserialize, Serialize};

use crate::EvalError;
use crate::dataset::{Dataset, LabelledEmbedding};
use crate::scores::{ScoreSummary, SortedScores, allowed_count, d_prime};

/// How a person with several enrolled samples is scored against a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PersonScore {
    /// The highest similarity over the person's samples (what a flat nearest-sample index
    /// computes).
    Best,
    /// The mean of the similarities.
    Mean,
    /// The mean after dropping the lowest and the highest `max(1, k / 4)` similarities when the
    /// person has `k >= 3` samples (the median for 3); the plain mean for fewer.
    Trimmed,
    /// The similarity with the person's centroid: the normalised mean of their embeddings.
    Centroid,
}

impl PersonScore {
    /// Every strategy, in report order.
    pub const ALL: [PersonScore; 4] =
        [PersonScore::Best, PersonScore::Mean, PersonScore::Trimmed, PersonScore::Centroid];

    /// The strategy's name as the command line and JSON spell it.
    pub fn name(self) -> &'static str {
        match self {
            PersonScore::Best => "best",
            PersonScore::Mean => "mean",
            PersonScore::Trimmed => "trimmed",
            PersonScore::Centroid => "centroid",
        }
    }

    /// Combines one probe's similarities with a person's samples (not for `Centroid`, which
    /// compares with one vector). `similarities` is reordered.
    pub fn combine(self, similarities: &mut [f32]) -> f32 {
        let n = similarities.len();
        if n == 0 {
            return f32::NEG_INFINITY;
        }
        let mean =
            |s: &[f32]| (s.iter().map(|v| f64::from(*v)).sum::<f64>() / s.len() as f64) as f32;
        match self {
            PersonScore::Best => similarities.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            PersonScore::Mean | PersonScore::Centroid => mean(similarities),
            PersonScore::Trimmed => {
                if n < 3 {
                    return mean(similarities);
                }
                similarities.sort_by(f32::total_cmp);
                let cut = (n / 4).max(1);
                mean(&similarities[cut..n - cut])
            }
        }
    }
}

impl fmt::Display for PersonScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PersonScore {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PersonScore::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            format!("unknown person score {s:?} (use best, mean, trimmed or centroid)")
        })
    }
}

/// One enrolled identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolledPerson {
    /// The identity.
    pub identity: String,
    /// Its enrolled samples (indices into [`Dataset::samples`]).
    pub samples: Vec<usize>,
}

/// Who is enrolled and which photos are probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSetSplit {
    /// Photos enrolled per person asked for.
    pub enroll_photos: usize,
    /// The gallery, in identity name order.
    pub persons: Vec<EnrolledPerson>,
    /// Mated probes: (sample index, index of its person in `persons`).
    pub mated: Vec<(usize, usize)>,
    /// Non-mated probes (sample indices).
    pub non_mated: Vec<usize>,
    /// Identities never enrolled.
    pub stranger_identities: usize,
}

/// Splits `data` as the module documentation says.
pub fn open_set_split(data: &Dataset, enroll_photos: usize) -> Result<OpenSetSplit, EvalError> {
    if enroll_photos == 0 {
        return Err(EvalError::NoEnrollmentPhotos);
    }
    let mut split = OpenSetSplit {
        enroll_photos,
        persons: Vec::new(),
        mated: Vec::new(),
        non_mated: Vec::new(),
        stranger_identities: 0,
    };
    let mut multi_photo = 0usize;
    for group in data.groups() {
        let enrolled = group.len() >= 2 && {
            multi_photo += 1;
            multi_photo % 2 == 1
        };
        if enrolled {
            let k = enroll_photos.min(group.len() - 1);
            let person = split.persons.len();
            split.persons.push(EnrolledPerson {
                identity: data.samples()[group.start].identity.clone(),
                samples: (group.start..group.start + k).collect(),
            });
            split.mated.extend((group.start + k..group.end).map(|i| (i, person)));
        } else {
            split.stranger_identities += 1;
            split.non_mated.extend(group.clone());
        }
    }
    if split.persons.is_empty() {
        return Err(EvalError::NoEnrolledIdentities);
    }
    if split.non_mated.is_empty() {
        return Err(EvalError::NoStrangers);
    }
    Ok(split)
}

/// TPIR and FPIR at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpenSetPoint {
    /// The threshold (accept when score >= threshold).
    pub threshold: f32,
    /// True positive identification rate.
    pub tpir: f64,
    /// False positive identification rate.
    pub fpir: f64,
    /// Mated probes identified correctly and accepted.
    pub mated_identified: u64,
    /// Mated probes.
    pub mated: u64,
    /// Non-mated probes accepted (as someone).
    pub non_mated_accepted: u64,
    /// Non-mated probes.
    pub non_mated: u64,
}

/// Everything `ddfr evaluate` reports about open-set identification for one scoring strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentificationReport {
    /// How persons were scored.
    pub person_score: PersonScore,
    /// Photos enrolled per person asked for.
    pub enroll_photos: usize,
    /// Persons in the gallery.
    pub enrolled_persons: u64,
    /// Samples in the gallery.
    pub enrolled_samples: u64,
    /// Identities never enrolled.
    pub stranger_identities: u64,
    /// Probes of enrolled persons.
    pub mated_probes: u64,
    /// Probes of strangers.
    pub non_mated_probes: u64,
    /// Closed-set rank-1 accuracy of the mated probes.
    pub rank1: f64,
    /// At the threshold asked for.
    pub at_threshold: OpenSetPoint,
    /// The FPIR the second point is chosen for.
    pub target_fpir: f64,
    /// At the lowest threshold with FPIR <= `target_fpir`.
    pub at_target_fpir: OpenSetPoint,
    /// Whether the non-mated probes are enough to allow one false positive at `target_fpir`;
    /// when not, `at_target_fpir` rejects every stranger (threshold above the highest).
    pub target_fpir_resolved: bool,
    /// Scores of mated probes with their own person.
    pub mated_scores: ScoreSummary,
    /// Top scores of non-mated probes.
    pub non_mated_scores: ScoreSummary,
    /// Decidability of the two: (mean mated - mean non-mated) / pooled std.
    pub d_prime: Option<f64>,
}

/// Runs the split's probes against its gallery with `person_score` and reports the metrics at
/// `threshold` and at `target_fpir`.
pub fn identification(
    data: &Dataset,
    split: &OpenSetSplit,
    person_score: PersonScore,
    threshold: f32,
    target_fpir: f64,
) -> Result<IdentificationReport, EvalError> {
    if !(-1.0..=1.0).contains(&threshold) {
        return Err(EvalError::InvalidThreshold { value: threshold });
    }
    if !(target_fpir > 0.0 && target_fpir < 1.0) {
        return Err(EvalError::InvalidRate { value: target_fpir });
    }
    let samples = data.samples();
    let centroids: Vec<Embedding> = split.persons.iter().map(|p| centroid(samples, p)).collect();
    let mut buffer = Vec::new();
    // Every person's score for one probe.
    let mut person_scores = |probe: &Embedding| -> Vec<f32> {
        split
            .persons
            .iter()
            .zip(&centroids)
            .map(|(person, centroid)| {
                if person_score == PersonScore::Centroid {
                    return probe.similarity(centroid);
                }
                buffer.clear();
                buffer.extend(
                    person.samples.iter().map(|&i| probe.similarity(&samples[i].embedding)),
                );
                person_score.combine(&mut buffer)
            })
            .collect()
    };
    let top = |scores: &[f32]| -> (usize, f32) {
        scores
            .iter()
            .copied()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, s)| if s > best.1 { (i, s) } else { best })
    };

    let mut identified = Vec::new(); // top scores of correctly ranked mated probes
    let mut own = Vec::new(); // each mated probe's score with its own person
    for &(sample, person) in &split.mated {
        let scores = person_scores(&samples[sample].embedding);
        let (best, score) = top(&scores);
        own.push(scores[person]);
        if best == person {
            identified.push(score);
        }
    }
    let mut strangers = Vec::new();
    for &sample in &split.non_mated {
        strangers.push(top(&person_scores(&samples[sample].embedding)).1);
    }

    let mated = split.mated.len();
    let rank1 = if mated == 0 { 0.0 } else { identified.len() as f64 / mated as f64 };
    let identified = SortedScores::new(identified)?;
    let strangers = SortedScores::new(strangers)?;
    let own = SortedScores::new(own)?;
    let point = |t: f32| OpenSetPoint {
        threshold: t,
        tpir: if mated == 0 { 0.0 } else { identified.at_or_above(t) as f64 / mated as f64 },
        fpir: strangers.at_or_above(t) as f64 / strangers.len() as f64,
        mated_identified: identified.at_or_above(t) as u64,
        mated: mated as u64,
        non_mated_accepted: strangers.at_or_above(t) as u64,
        non_mated: strangers.len() as u64,
    };
    let allowed = allowed_count(target_fpir, strangers.len());
    let fpir_threshold = strangers.threshold_accepting_at_most(allowed).unwrap_or(threshold);
    let (mated_scores, non_mated_scores) = (own.summary(), strangers.summary());
    Ok(IdentificationReport {
        person_score,
        enroll_photos: split.enroll_photos,
        enrolled_persons: split.persons.len() as u64,
        enrolled_samples: split.persons.iter().map(|p| p.samples.len() as u64).sum(),
        stranger_identities: split.stranger_identities as u64,
        mated_probes: mated as u64,
        non_mated_probes: strangers.len() as u64,
        rank1,
        at_threshold: point(threshold),
        target_fpir,
        at_target_fpir: point(fpir_threshold),
        target_fpir_resolved: allowed >= 1,
        d_prime: d_prime(&mated_scores, &non_mated_scores),
        mated_scores,
        non_mated_scores,
    })
}

/// The normalised mean of the person's samples (their first sample if they cancel out).
/// Persons of a split always have at least one sample.
fn centroid(samples: &[LabelledEmbedding], person: &EnrolledPerson) -> Embedding {
    let first = &samples[person.samples[0]].embedding;
    let mut sum = vec![0.0f32; first.dim()];
    for &i in &person.samples {
        sum.iter_mut().zip(samples[i].embedding.as_slice()).for_each(|(s, v)| *s += v);
    }
    Embedding::from_raw(sum).unwrap_or_else(|_| first.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::tests::at_angle;

    fn data(photos: &[(&str, &str, f32)]) -> Dataset {
        Dataset::new(photos.iter().map(|(id, photo, a)| at_angle(id, photo, *a)).collect()).unwrap()
    }

    #[test]
    fn split_alternates_multi_photo_identities_and_keeps_singletons_as_strangers() {
        let d = data(&[
            ("ann", "1", 0.0),
            ("ann", "2", 0.0),
            ("ann", "3", 0.0),
            ("bob", "1", 1.0),
            ("bob", "2", 1.0),
            ("cat", "1", 2.0),
            ("dan", "1", 3.0),
            ("dan", "2", 3.0),
        ]);
        let split = open_set_split(&d, 1).unwrap();
        // ann (enrolled), bob (stranger), cat (single photo: stranger), dan (enrolled).
        let names: Vec<&str> = split.persons.iter().map(|p| p.identity.as_str()).collect();
        assert_eq!(names, ["ann", "dan"]);
        assert_eq!(split.persons[0].samples, vec![0], "first photo by name");
        assert_eq!(split.mated, vec![(1, 0), (2, 0), (7, 1)]);
        assert_eq!(split.non_mated, vec![3, 4, 5]);
        assert_eq!(split.stranger_identities, 2);
        // k = 5 enrolls all but one photo of each enrolled identity.
        let split = open_set_split(&d, 5).unwrap();
        assert_eq!(split.persons[0].samples, vec![0, 1]);
        assert_eq!(split.mated, vec![(2, 0), (7, 1)]);
    }

    #[test]
    fn split_edge_cases() {
        let singles = data(&[("a", "1", 0.0), ("b", "1", 1.0)]);
        assert_eq!(open_set_split(&singles, 1), Err(EvalError::NoEnrolledIdentities));
        let one = data(&[("a", "1", 0.0), ("a", "2", 0.1)]);
        assert_eq!(open_set_split(&one, 1), Err(EvalError::NoStrangers));
        assert_eq!(open_set_split(&one, 0), Err(EvalError::NoEnrollmentPhotos));
    }

    #[test]
    fn metrics_by_hand() {
        // ann enrolled at angle 0, probe at 0.2 (cos 0.980). dan enrolled at 1.5, probe at 0.6
        // (cos(0.9) = 0.622 with dan, cos(0.6) = 0.825 with ann: misidentified).
        // Strangers bob 0.3 (top: ann, cos 0.955) and 3.0 (top: dan, cos 1.5 = 0.0707).
        let d = data(&[
            ("ann", "1", 0.0),
            ("ann", "2", 0.2),
            ("bob", "1", 0.3),
            ("bob", "2", 3.0),
            ("dan", "1", 1.5),
            ("dan", "2", 0.6),
        ]);
        let split = open_set_split(&d, 1).unwrap();
        let r = identification(&d, &split, PersonScore::Best, 0.9, 0.01).unwrap();
        assert_eq!((r.enrolled_persons, r.mated_probes, r.non_mated_probes), (2, 2, 2));
        assert!((r.rank1 - 0.5).abs() < 1e-12);
        // At 0.9: ann's probe identified (0.980); bob's 0.955 falsely accepted.
        assert_eq!(r.at_threshold.mated_identified, 1);
        assert_eq!(r.at_threshold.non_mated_accepted, 1);
        assert!((r.at_threshold.fpir - 0.5).abs() < 1e-12);
        // FPIR 1% with 2 strangers: none may be accepted: threshold just above 0.955.
        assert!(!r.target_fpir_resolved);
        assert_eq!(r.at_target_fpir.non_mated_accepted, 0);
        assert!((r.non_mated_scores.max - 0.3f32.cos()).abs() < 1e-6);
        assert_eq!(r.at_target_fpir.threshold, r.non_mated_scores.max.next_up());
        assert_eq!(r.at_target_fpir.mated_identified, 1);
        // The own-person scores: cos 0.2 and cos 0.9.
        assert!((r.mated_scores.min - 0.9f32.cos()).abs() < 1e-6);
    }

    #[test]
    fn person_scores_by_hand() {
        assert_eq!(PersonScore::Best.combine(&mut [0.2, 0.9, 0.5]), 0.9);
        assert!((PersonScore::Mean.combine(&mut [0.2, 0.9, 0.5]) - 1.6 / 3.0).abs() < 1e-6);
        // k = 3: drop one from each end: the median.
        assert_eq!(PersonScore::Trimmed.combine(&mut [0.2, 0.9, 0.5]), 0.5);
        // k = 2: plain mean.
        assert!((PersonScore::Trimmed.combine(&mut [0.2, 0.6]) - 0.4).abs() < 1e-6);
        // k = 8: drop two from each end.
        let mut eight = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7];
        assert!((PersonScore::Trimmed.combine(&mut eight) - 0.35).abs() < 1e-6);
        assert_eq!(PersonScore::Best.combine(&mut []), f32::NEG_INFINITY);
        assert_eq!("trimmed".parse::<PersonScore>(), Ok(PersonScore::Trimmed));
        assert!("median".parse::<PersonScore>().is_err());
        assert_eq!(serde_json_name(PersonScore::Centroid), "\"centroid\"");
    }

    fn serde_json_name(p: PersonScore) -> String {
        serde_json::to_string(&p).unwrap()
    }

    #[test]
    fn strategies_differ_when_one_sample_is_an_outlier() {
        // ann's samples: 0.0 and 0.05 and an outlier at 1.2 (close to the stranger at 1.25).
        let d = data(&[
            ("ann", "1", 0.0),
            ("ann", "2", 0.05),
            ("ann", "3", 1.2),
            ("ann", "4", 0.1),
            ("bob", "1", 1.25),
            ("bob", "2", 1.3),
        ]);
        let split = open_set_split(&d, 3).unwrap();
        assert_eq!(split.persons[0].samples.len(), 3);
        let best = identification(&d, &split, PersonScore::Best, 0.9, 0.1).unwrap();
        let trimmed = identification(&d, &split, PersonScore::Trimmed, 0.9, 0.1).unwrap();
        // Best: the outlier matches the stranger almost perfectly (cos 0.05 = 0.9988).
        assert_eq!(best.at_threshold.non_mated_accepted, 2);
        // Trimmed (median of 3): the stranger scores cos(1.2) = 0.362 and cos(1.25) = 0.315.
        assert_eq!(trimmed.at_threshold.non_mated_accepted, 0);
        assert_eq!(trimmed.at_threshold.mated_identified, 1);
        // Centroid of 0, 0.05 and 1.2 rad points at 0.394 rad: the probe at 0.1 scores 0.957,
        // the strangers cos(0.856) = 0.656 and cos(0.906) = 0.617.
        let centroid = identification(&d, &split, PersonScore::Centroid, 0.9, 0.1).unwrap();
        assert_eq!(centroid.enrolled_samples, 3);
        assert_eq!(centroid.at_threshold.mated_identified, 1);
        assert_eq!(centroid.at_threshold.non_mated_accepted, 0);
        assert!((centroid.non_mated_scores.max - 0.8559f32.cos()).abs() < 1e-3);
    }
}
