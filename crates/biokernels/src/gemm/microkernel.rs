//! Register-blocked micro-kernels: `C[MR×NR] (+)= Σ_runs A_panel[k0..k0+len] · B_panel`.
//!
//! A micro-kernel reads an A micro-panel (`K × MR`, `MR` contiguous values per `k`, `k` at a
//! stride `lda`: `MR` when packed) and a
//! packed B micro-panel (`NR` contiguous values per kept `k`) and keeps the `MR × NR` block of C
//! in registers across all runs of kept `k`, so skipped tiles cost nothing inside the kernel.
//! The reduction over `k` is sequential (one accumulator per C entry), which makes the result
//! independent of how the caller splits C across threads.
//!
//! Three variants, picked at run time ([`crate::gemm::Isa`]): AVX-512F (8 × 32), AVX2 + FMA
//! (6 × 16) and a portable one (4 × 16) written so LLVM vectorises it with the baseline SIMD.

/// A run of kept reduction indices: `k0 .. k0 + len` (absolute `k`, used to index packed A).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub k0: usize,
    pub len: usize,
}

/// A register-blocked micro-kernel.
pub(crate) trait MicroKernel: Sync {
    /// Rows of C per call (A micro-panel width).
    const MR: usize;
    /// Columns of C per call (B micro-panel width).
    const NR: usize;

    /// `C[i, j] = (load_c ? C[i, j] : 0) + Σ_{run} Σ_{k in run} A[k][i] · B[k][j]`, where
    /// `A[k][i]` is `a[k · lda + i]` (`lda = MR` for a packed micro-panel; larger when the
    /// kernel reads `MR` contiguous values per `k` straight out of a transposed operand).
    ///
    /// # Safety
    /// `a` points to an A micro-panel with `MR` readable values at `k · lda` for every `k` of
    /// every run (`lda >= MR`); `b` to `Σ len * NR` packed B values (runs back to back); `c` to an `MR × NR` block
    /// with row stride `ldc` that is valid for reads (if `load_c`) and writes. The CPU must
    /// support the kernel's instruction set.
    unsafe fn run(runs: &[Run], a: *const f32, lda: usize, b: *const f32, c: *mut f32, ldc: usize, load_c: bool);

    /// [`run`](Self::run) with A read from `MR` rows of a row-major matrix in place:
    /// `A[k][i]` is `a[i · lda + k]`. The same products in the same order, so the same bits;
    /// only where the values are read differs (no packing when each A value is used by one or
    /// two column panels).
    ///
    /// # Safety
    /// `a` points to `MR` rows at a stride `lda`, each readable at every `k` of every run; the
    /// rest as [`run`](Self::run).
    unsafe fn run_rows(runs: &[Run], a: *const f32, lda: usize, b: *const f32, c: *mut f32, ldc: usize, load_c: bool);
}

/// Portable kernel: plain arrays that LLVM vectorises with the baseline target features.
pub(crate) struct Portable;

impl MicroKernel for Portable {
    const MR: usize = 4;
    const NR: usize = 16;

    unsafe fn run(runs: &[Run], a: *const f32, lda: usize, b: *const f32, c: *mut f32, ldc: usize, load_c: bool) {
        // SAFETY: forwarded contract (A[k][i] at k · lda + i).
        unsafe { portable_4x16(runs, a, lda, 1, b, c, ldc, load_c) }
    }

    unsafe fn run_rows(runs: &[Run], a: *const f32, lda: usize, b: *const f32, c: *mut f32, ldc: usize, load_c: bool) {
        // SAFETY: forwarded contract (A[k][i] at i · lda + k).
        unsafe { portable_4x16(runs, a, 1, lda, b, c, ldc, load_c) }
    }
}

/// The portable kernel with `A[k][i]` at `a[k · ks + i · is]`.
///
/// # Safety
/// As [`MicroKernel::run`] for that addressing.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn portable_4x16(
    runs: &[Run],
    a: *const f32,
    ks: usize,
    is: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    load_c: bool,
) {
    const MR: usize = Portable::MR;
    const NR: usize = Portable::NR;
    let mut acc = [[0f32; NR]; MR];
    let mut bp = b;
    for run in runs {
        // SAFETY: the caller guarantees the panels cover every run.
        unsafe {
            let mut ap = a.add(run.k0 * ks);
            for _ in 0..run.len {
                let bv: [f32; NR] = *(bp as *const [f32; NR]);
                let av: [f32; MR] = std::array::from_fn(|i| *ap.add(i * is));
                for i in 0..MR {
                    for j in 0..NR {
                        acc[i][j] += av[i] * bv[j];
                    }
                }
                ap = ap.add(ks);
                bp = bp.add(NR);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: the caller guarantees an MR × NR block at `c` with stride `ldc`.
        unsafe {
            let cp = c.add(i * ldc);
            for (j, &v) in row.iter().enumerate() {
                let p = cp.add(j);
                *p = if load_c { *p + v } else { v };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2Fma, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MicroKernel, Run};
    use std::arch::x86_64::*;

    /// `impl MicroKernel` for a kernel function generic over `IN_ROWS` (how it reads A).
    macro_rules! x86_kernel {
        ($kernel:ident, $mr:literal, $nr:literal, $f:ident) => {
            impl MicroKernel for $kernel {
                const MR: usize = $mr;
                const NR: usize = $nr;

                unsafe fn run(
                    runs: &[Run],
                    a: *const f32,
                    lda: usize,
                    b: *const f32,
                    c: *mut f32,
                    ldc: usize,
                    load_c: bool,
                ) {
                    // SAFETY: forwarded contract (see the invocation).
                    unsafe { $f::<false>(runs, a, lda, b, c, ldc, load_c) }
                }

                unsafe fn run_rows(
                    runs: &[Run],
                    a: *const f32,
                    lda: usize,
                    b: *const f32,
                    c: *mut f32,
                    ldc: usize,
                    load_c: bool,
                ) {
                    // SAFETY: forwarded contract, A's rows read in place.
                    unsafe { $f::<true>(runs, a, lda, b, c, ldc, load_c) }
                }
            }
        };
    }

    /// AVX-512F kernel, 8 rows × 32 columns (16 zmm accumulators).
    pub(crate) struct Avx512;

    // SAFETY (of both entry points): the dispatcher only picks this kernel when
    // `is_x86_feature_detected!("avx512f")` holds; the rest is the caller's contract.
    x86_kernel!(Avx512, 8, 32, avx512_8x32);

    /// How many reduction steps ahead the AVX-512 kernel prefetches packed A.
    const PREFETCH_K: usize = 16;

    /// `A[k][i]` at `a[k · lda + i]` (`IN_ROWS = false`: packed, or transposed in place) or
    /// at `a[i · lda + k]` (`IN_ROWS = true`: row-major rows in place). A const parameter, so
    /// the packed kernel keeps its constant offsets.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_8x32<const IN_ROWS: bool>(
        runs: &[Run],
        a: *const f32,
        lda: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        load_c: bool,
    ) {
        let (lda, is) = if IN_ROWS { (1, lda) } else { (lda, 1) };
        const MR: usize = 8;
        let mut lo = [_mm512_setzero_ps(); MR];
        let mut hi = [_mm512_setzero_ps(); MR];
        let mut bp = b;
        if load_c {
            // The C block is read once at the end: fetch its 16 lines while the products run.
            for i in 0..MR {
                _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc + 16) as *const i8);
            }
        }
        for run in runs {
            // SAFETY: the caller guarantees the packed panels cover every run.
            unsafe {
                let mut ap = a.add(run.k0 * lda);
                let mut left = run.len;
                while left >= 2 {
                    if !IN_ROWS {
                        // Packed A streams from L2 at one line per two k: ask for it
                        // PREFETCH_K steps ahead (+7-11 % on 2048³; a prefetch never faults).
                        _mm_prefetch::<_MM_HINT_T0>(ap.wrapping_add(PREFETCH_K * lda) as *const i8);
                    }
                    let b0 = _mm512_loadu_ps(bp);
                    let b1 = _mm512_loadu_ps(bp.add(16));
                    for i in 0..MR {
                        let av = _mm512_set1_ps(*ap.add(i * is));
                        lo[i] = _mm512_fmadd_ps(av, b0, lo[i]);
                        hi[i] = _mm512_fmadd_ps(av, b1, hi[i]);
                    }
                    let b0 = _mm512_loadu_ps(bp.add(32));
                    let b1 = _mm512_loadu_ps(bp.add(48));
                    for i in 0..MR {
                        let av = _mm512_set1_ps(*ap.add(lda + i * is));
                        lo[i] = _mm512_fmadd_ps(av, b0, lo[i]);
                        hi[i] = _mm512_fmadd_ps(av, b1, hi[i]);
                    }
                    ap = ap.add(2 * lda);
                    bp = bp.add(64);
                    left -= 2;
                }
                if left == 1 {
                    let b0 = _mm512_loadu_ps(bp);
                    let b1 = _mm512_loadu_ps(bp.add(16));
                    for i in 0..MR {
                        let av = _mm512_set1_ps(*ap.add(i * is));
                        lo[i] = _mm512_fmadd_ps(av, b0, lo[i]);
                        hi[i] = _mm512_fmadd_ps(av, b1, hi[i]);
                    }
                    bp = bp.add(32);
                }
            }
        }
        for i in 0..MR {
            // SAFETY: the caller guarantees an MR × NR block at `c` with stride `ldc`.
            unsafe {
                let cp = c.add(i * ldc);
                let (mut v0, mut v1) = (lo[i], hi[i]);
                if load_c {
                    v0 = _mm512_add_ps(_mm512_loadu_ps(cp), v0);
                    v1 = _mm512_add_ps(_mm512_loadu_ps(cp.add(16)), v1);
                }
                _mm512_storeu_ps(cp, v0);
                _mm512_storeu_ps(cp.add(16), v1);
            }
        }
    }

    /// AVX2 + FMA kernel, 6 rows × 16 columns (12 ymm accumulators).
    pub(crate) struct Avx2Fma;

    // SAFETY (of both entry points): the dispatcher only picks this kernel when AVX2 and FMA
    // are detected; the rest is the caller's contract.
    x86_kernel!(Avx2Fma, 6, 16, avx2_6x16);

    /// A addressed as in [`avx512_8x32`].
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_6x16<const IN_ROWS: bool>(
        runs: &[Run],
        a: *const f32,
        lda: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        load_c: bool,
    ) {
        let (lda, is) = if IN_ROWS { (1, lda) } else { (lda, 1) };
        const MR: usize = 6;
        let mut lo = [_mm256_setzero_ps(); MR];
        let mut hi = [_mm256_setzero_ps(); MR];
        let mut bp = b;
        for run in runs {
            // SAFETY: the caller guarantees the packed panels cover every run.
            unsafe {
                let mut ap = a.add(run.k0 * lda);
                for _ in 0..run.len {
                    let b0 = _mm256_loadu_ps(bp);
                    let b1 = _mm256_loadu_ps(bp.add(8));
                    for i in 0..MR {
                        let av = _mm256_broadcast_ss(&*ap.add(i * is));
                        lo[i] = _mm256_fmadd_ps(av, b0, lo[i]);
                        hi[i] = _mm256_fmadd_ps(av, b1, hi[i]);
                    }
                    ap = ap.add(lda);
                    bp = bp.add(16);
                }
            }
        }
        for i in 0..MR {
            // SAFETY: the caller guarantees an MR × NR block at `c` with stride `ldc`.
            unsafe {
                let cp = c.add(i * ldc);
                let (mut v0, mut v1) = (lo[i], hi[i]);
                if load_c {
                    v0 = _mm256_add_ps(_mm256_loadu_ps(cp), v0);
                    v1 = _mm256_add_ps(_mm256_loadu_ps(cp.add(8)), v1);
                }
                _mm256_storeu_ps(cp, v0);
                _mm256_storeu_ps(cp.add(8), v1);
            }
        }
    }
}
