//! Row-major storage of unit vectors with their ids, and the blocked scan over it.

use ddfr_core::{FaceId, PersonId};

use crate::simd::Kernel;
use crate::topk::TopK;

/// Rows scored per kernel call. 256 rows of 128-D f32 are 128 KiB, which stays in L2 while
/// every query of the frame is scored against them, so memory is read once per frame.
const TILE_ROWS: usize = 256;

/// Contiguous `n × dim` vectors plus the face and person of each row. Removal swaps the last
/// row into the hole, so it is O(1) and the caller updates the moved face's row.
#[derive(Clone, Default)]
pub(crate) struct RowStore {
    dim: usize,
    values: Vec<f32>,
    faces: Vec<FaceId>,
    persons: Vec<PersonId>,
}

impl RowStore {
    pub(crate) fn new(dim: usize) -> Self {
        Self { dim, values: Vec::new(), faces: Vec::new(), persons: Vec::new() }
    }

    pub(crate) fn len(&self) -> usize {
        self.faces.len()
    }

    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    pub(crate) fn reserve(&mut self, rows: usize) {
        self.values.reserve(rows * self.dim);
        self.faces.reserve(rows);
        self.persons.reserve(rows);
    }

    /// Appends a row (of exactly `dim` values, checked by the caller) and returns its index.
    pub(crate) fn push(&mut self, face: FaceId, person: PersonId, vector: &[f32]) -> usize {
        self.values.extend_from_slice(vector);
        self.faces.push(face);
        self.persons.push(person);
        self.faces.len() - 1
    }

    /// Removes `row` by moving the last row into it. Returns the face that now sits at `row`,
    /// if one moved.
    pub(crate) fn swap_remove(&mut self, row: usize) -> Option<FaceId> {
        let last = self.len().checked_sub(1)?;
        if row > last {
            return None;
        }
        if row != last {
            let (head, tail) = self.values.split_at_mut(last * self.dim);
            head[row * self.dim..(row + 1) * self.dim].copy_from_slice(tail);
        }
        self.values.truncate(last * self.dim);
        self.faces.swap_remove(row);
        self.persons.swap_remove(row);
        (row != last).then(|| self.faces[row])
    }

    pub(crate) fn vector(&self, row: usize) -> &[f32] {
        &self.values[row * self.dim..(row + 1) * self.dim]
    }

    pub(crate) fn face(&self, row: usize) -> FaceId {
        self.faces[row]
    }

    pub(crate) fn person(&self, row: usize) -> PersonId {
        self.persons[row]
    }

    pub(crate) fn persons(&self) -> &[PersonId] {
        &self.persons
    }

    pub(crate) fn values(&self) -> &[f32] {
        &self.values
    }

    /// Heap bytes held by this store.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.values.capacity() * size_of::<f32>()
            + self.faces.capacity() * size_of::<FaceId>()
            + self.persons.capacity() * size_of::<PersonId>()
    }

    /// Offers every row to every job's collector. Rows are walked in tiles and each tile is
    /// scored for all jobs before moving on, so the matrix streams from memory once however
    /// many queries a frame has. Each job's query must have `dim` values.
    pub(crate) fn scan(
        &self,
        kernel: Kernel,
        jobs: &mut [(&[f32], &mut TopK)],
        scratch: &mut Vec<f32>,
    ) {
        if self.dim == 0 || jobs.is_empty() {
            return;
        }
        scratch.resize(TILE_ROWS, 0.0);
        for (tile_index, tile) in self.values.chunks(TILE_ROWS * self.dim).enumerate() {
            let first_row = tile_index * TILE_ROWS;
            let scores = &mut scratch[..tile.len() / self.dim];
            for (query, top) in jobs.iter_mut() {
                kernel.dots(tile, query, scores);
                let mut floor = top.floor();
                for (offset, &score) in scores.iter().enumerate() {
                    if score >= floor {
                        let row = first_row + offset;
                        top.offer(score, self.faces[row], self.persons[row]);
                        floor = top.floor();
                    }
                }
            }
        }
    }
}
