//! A bounded best-`k` collector shared by every search path.

use ddfr_core::{FaceId, PersonId};

use crate::Hit;

/// The best `k` hits seen so far, best first. Ties in similarity go to the smaller face id so
/// that results do not depend on storage order.
#[derive(Debug, Clone)]
pub(crate) struct TopK {
    k: usize,
    hits: Vec<Hit>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self { k, hits: Vec::with_capacity(k) }
    }

    /// Scores below this cannot enter; scanning loops test it before calling [`TopK::offer`].
    #[inline]
    pub(crate) fn floor(&self) -> f32 {
        if self.hits.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.hits.last().map_or(f32::INFINITY, |worst| worst.similarity)
        }
    }

    /// Keeps the hit if it is among the best `k`.
    pub(crate) fn offer(&mut self, similarity: f32, face: FaceId, person: PersonId) {
        if self.k == 0 {
            return;
        }
        let better = |hit: &Hit| {
            hit.similarity > similarity || (hit.similarity == similarity && hit.face < face)
        };
        let position = self.hits.partition_point(better);
        if position >= self.k {
            return;
        }
        if self.hits.len() == self.k {
            self.hits.pop();
        }
        self.hits.insert(position, Hit { face, person, similarity });
    }

    pub(crate) fn into_hits(self) -> Vec<Hit> {
        self.hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_best_k_in_order_with_face_id_tie_break() {
        let mut top = TopK::new(2);
        assert_eq!(top.floor(), f32::NEG_INFINITY);
        top.offer(0.1, FaceId(1), PersonId(1));
        top.offer(0.9, FaceId(5), PersonId(1));
        top.offer(0.9, FaceId(3), PersonId(2));
        top.offer(0.5, FaceId(4), PersonId(2));
        let faces: Vec<i64> = top.clone().into_hits().iter().map(|hit| hit.face.0).collect();
        assert_eq!(faces, vec![3, 5]);
        assert_eq!(top.floor(), 0.9);
    }

    #[test]
    fn zero_k_keeps_nothing() {
        let mut top = TopK::new(0);
        top.offer(1.0, FaceId(1), PersonId(1));
        assert!(top.into_hits().is_empty());
    }
}
