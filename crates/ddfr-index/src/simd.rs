//! Dot-product kernels: a portable one written to auto-vectorise and an AVX2+FMA one picked at
//! run time. This is the only module of the crate allowed to use `unsafe`.
#![allow(unsafe_code)]

/// Lanes of the portable kernel's accumulator: eight f32 fill one 256-bit register, so LLVM
/// turns the loop into packed multiply-adds on any target with SIMD.
const LANES: usize = 8;

/// A dot-product kernel. The AVX2 variant can only be obtained from [`Kernel::detect`], which
/// checks the CPU first: that is what makes calling it sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kernel(Variant);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Kernel {
    /// The fastest kernel this CPU supports.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && std::is_x86_feature_detected!("popcnt")
            {
                return Self(Variant::Avx2Fma);
            }
        }
        Self::portable()
    }

    /// The portable kernel, available everywhere (and the reference in tests).
    pub(crate) fn portable() -> Self {
        Self(Variant::Portable)
    }

    /// A short name for reports.
    pub(crate) fn name(self) -> &'static str {
        match self.0 {
            Variant::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Variant::Avx2Fma => "avx2+fma+popcnt",
        }
    }

    /// Writes `out[i] = dot(row i of rows, query)` for the row-major `rows` of width
    /// `query.len()`. Rows past `out.len()` and a trailing partial row are ignored.
    pub(crate) fn dots(self, rows: &[f32], query: &[f32], out: &mut [f32]) {
        if query.is_empty() {
            out.fill(0.0);
            return;
        }
        match self.0 {
            Variant::Portable => {
                for (row, score) in rows.chunks_exact(query.len()).zip(out.iter_mut()) {
                    *score = dot_portable(row, query);
                }
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `dot`, this variant exists only when AVX2 and FMA were detected.
            Variant::Avx2Fma => unsafe { avx2::dots(rows, query, out) },
        }
    }

    /// Writes `out[i] = min(255, hamming(sketches[i], query))`: the number of differing bits
    /// of two binary sketches, saturated to a byte (only small distances matter to callers).
    pub(crate) fn hamming(self, sketches: &[Sketch], query: &Sketch, out: &mut [u8]) {
        match self.0 {
            Variant::Portable => hamming_portable(sketches, query, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `dots`, this variant exists only when AVX2, FMA and POPCNT were
            // detected.
            Variant::Avx2Fma => unsafe { avx2::hamming(sketches, query, out) },
        }
    }
}

/// 64-bit words of a binary sketch.
pub(crate) const SKETCH_WORDS: usize = 4;

/// A 256-bit binary sketch: one sign bit per random projection.
pub(crate) type Sketch = [u64; SKETCH_WORDS];

#[inline(always)]
fn hamming_one(a: &Sketch, b: &Sketch) -> u8 {
    let bits: u32 = a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum();
    bits.min(u32::from(u8::MAX)) as u8
}

fn hamming_portable(sketches: &[Sketch], query: &Sketch, out: &mut [u8]) {
    for (sketch, distance) in sketches.iter().zip(out.iter_mut()) {
        *distance = hamming_one(sketch, query);
    }
}

/// The portable kernel: eight independent accumulators over `chunks_exact(8)`, which
/// auto-vectorises, then the tail.
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    let mut acc = [0.0f32; LANES];
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES {
            acc[lane] += x[lane] * y[lane];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2+FMA kernels. Every function needs a CPU with both features.

    use std::arch::x86_64::{
        __m256, _mm_add_ps, _mm_cvtss_f32, _mm_hadd_ps, _mm256_add_ps, _mm256_castps256_ps128,
        _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
    };

    /// f32 lanes in one 256-bit register.
    const LANES: usize = 8;
    /// Four registers per step keep four independent FMA chains in flight, which hides the
    /// FMA latency (4 cycles) on current x86 cores.
    const STEP: usize = 4 * LANES;

    /// Writes `out[i] = dot(row i, query)` for rows of width `query.len()` (non-zero).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dots(rows: &[f32], query: &[f32], out: &mut [f32]) {
        for (row, score) in rows.chunks_exact(query.len()).zip(out.iter_mut()) {
            *score = dot_inner(row, query);
        }
    }

    /// Hamming distances of sketches to `query`, saturated to a byte; `count_ones` compiles
    /// to the POPCNT instruction here.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and POPCNT.
    #[target_feature(enable = "avx2,fma,popcnt")]
    pub(super) unsafe fn hamming(
        sketches: &[super::Sketch],
        query: &super::Sketch,
        out: &mut [u8],
    ) {
        for (sketch, distance) in sketches.iter().zip(out.iter_mut()) {
            *distance = super::hamming_one(sketch, query);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn dot_inner(a: &[f32], b: &[f32]) -> f32 {
        let len = a.len().min(b.len());
        let (a, b) = (&a[..len], &b[..len]);
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc: [__m256; 4] = [_mm256_setzero_ps(); 4];
        let mut offset = 0;
        while offset + STEP <= len {
            for (register, acc) in acc.iter_mut().enumerate() {
                let at = offset + register * LANES;
                // SAFETY: `at + LANES <= offset + STEP <= len`, and both slices hold `len`
                // elements, so each unaligned 8-lane load stays inside its slice.
                let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(at)), _mm256_loadu_ps(pb.add(at))) };
                *acc = _mm256_fmadd_ps(x, y, *acc);
            }
            offset += STEP;
        }
        while offset + LANES <= len {
            // SAFETY: `offset + LANES <= len`, so both loads stay inside their slices.
            let (x, y) =
                unsafe { (_mm256_loadu_ps(pa.add(offset)), _mm256_loadu_ps(pb.add(offset))) };
            acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            offset += LANES;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let halves = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
        let pairs = _mm_hadd_ps(halves, halves);
        let total = _mm_cvtss_f32(_mm_hadd_ps(pairs, pairs));
        let tail: f32 = a[offset..].iter().zip(&b[offset..]).map(|(x, y)| x * y).sum();
        total + tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// SIMD and portable sums differ only in rounding order; on unit-norm inputs that is far
    /// below this bound.
    const AGREEMENT: f32 = 1e-5;

    /// One dot product through the row kernel.
    fn dot(kernel: Kernel, a: &[f32], b: &[f32]) -> f32 {
        let mut out = [0.0];
        kernel.dots(a, b, &mut out);
        out[0]
    }

    fn unit(raw: Vec<f32>) -> Vec<f32> {
        let norm = raw.iter().map(|v| v * v).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
        raw.into_iter().map(|v| v / norm).collect()
    }

    #[test]
    fn portable_matches_naive_sum() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let b = vec![1.0; 19];
        assert_eq!(dot(Kernel::portable(), &a, &b), 171.0);
        assert_eq!(dot(Kernel::detect(), &a, &b), 171.0);
    }

    #[test]
    fn dots_fill_one_score_per_row() {
        let rows = [1.0, 0.0, 0.0, 1.0, 0.5, 0.5];
        let mut out = [9.0; 3];
        Kernel::detect().dots(&rows, &[1.0, 0.0], &mut out);
        assert_eq!(out, [1.0, 0.0, 0.5]);
    }

    #[test]
    fn hamming_counts_differing_bits() {
        let sketches = [[0u64; SKETCH_WORDS], [u64::MAX, 0, 0, 1], [u64::MAX; SKETCH_WORDS]];
        let mut out = [0u8; 3];
        for kernel in [Kernel::portable(), Kernel::detect()] {
            kernel.hamming(&sketches, &[0; SKETCH_WORDS], &mut out);
            assert_eq!(out, [0, 65, 255]);
        }
    }

    proptest! {
        #[test]
        fn hamming_kernels_agree(
            sketches in prop::collection::vec(any::<[u64; SKETCH_WORDS]>(), 0..40),
            query in any::<[u64; SKETCH_WORDS]>(),
        ) {
            let mut fast = vec![0u8; sketches.len()];
            let mut reference = vec![0u8; sketches.len()];
            Kernel::detect().hamming(&sketches, &query, &mut fast);
            Kernel::portable().hamming(&sketches, &query, &mut reference);
            prop_assert_eq!(fast, reference);
        }

        #[test]
        fn simd_and_portable_agree(
            pair in (1usize..600).prop_flat_map(|dim| (
                prop::collection::vec(-1.0f32..1.0, dim),
                prop::collection::vec(-1.0f32..1.0, dim),
            ))
        ) {
            let (a, b) = (unit(pair.0), unit(pair.1));
            let fast = Kernel::detect();
            let reference = Kernel::portable();
            prop_assert!((dot(fast, &a, &b) - dot(reference, &a, &b)).abs() <= AGREEMENT);
            let rows: Vec<f32> = a.iter().chain(&b).copied().collect();
            let (mut fast_out, mut reference_out) = ([0.0f32; 2], [0.0f32; 2]);
            fast.dots(&rows, &b, &mut fast_out);
            reference.dots(&rows, &b, &mut reference_out);
            for (x, y) in fast_out.iter().zip(&reference_out) {
                prop_assert!((x - y).abs() <= AGREEMENT);
            }
        }
    }
}
