//! 8 × 8 register transposes (AVX) for packing: the GEMM's A micro-panels and the direct
//! convolution's pixel-major output gradients. Pure data movement.

/// Whether [`transpose8_avx`] can run here (always false off x86-64).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Transposes `blocks` 8 × 8 blocks of 8 rows (row `i` at `src + i · lds`, columns
/// `8·q .. 8·q + 8` for block `q`): column `c` of the rows lands as 8 contiguous values at
/// `dst + c · ldd` (`ldd = 8`: the GEMM's A micro-panel layout for `MR = 8`).
///
/// The classic three-stage AVX transpose: `unpack{lo,hi}` interleaves row pairs, `shuffle`
/// gathers four rows of one column per 128-bit lane, `permute2f128` joins the two halves.
///
/// # Safety
/// AVX must be available; the 8 rows must be readable for `8 · blocks` values each and `dst`
/// writable for 8 values at `c · ldd` for every `c < 8 · blocks`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
pub(crate) unsafe fn transpose8_avx(src: *const f32, lds: usize, dst: *mut f32, ldd: usize, blocks: usize) {
    use std::arch::x86_64::*;
    for q in 0..blocks {
        // SAFETY: the caller's contract covers rows 0..8, columns 8q..8q+8 and the 8 rows of
        // 8 values written at dst + (8q + c) · ldd.
        unsafe {
            let s = src.add(8 * q);
            let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(s.add(i * lds)));
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            // Per 128-bit lane: columns (0, 4), (1, 5), (2, 6), (3, 7) of rows 0-3 and 4-7.
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            let d = dst.add(8 * q * ldd);
            _mm256_storeu_ps(d, _mm256_permute2f128_ps::<0x20>(u0, u4));
            _mm256_storeu_ps(d.add(ldd), _mm256_permute2f128_ps::<0x20>(u1, u5));
            _mm256_storeu_ps(d.add(2 * ldd), _mm256_permute2f128_ps::<0x20>(u2, u6));
            _mm256_storeu_ps(d.add(3 * ldd), _mm256_permute2f128_ps::<0x20>(u3, u7));
            _mm256_storeu_ps(d.add(4 * ldd), _mm256_permute2f128_ps::<0x31>(u0, u4));
            _mm256_storeu_ps(d.add(5 * ldd), _mm256_permute2f128_ps::<0x31>(u1, u5));
            _mm256_storeu_ps(d.add(6 * ldd), _mm256_permute2f128_ps::<0x31>(u2, u6));
            _mm256_storeu_ps(d.add(7 * ldd), _mm256_permute2f128_ps::<0x31>(u3, u7));
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    /// Every value lands where a plain element-by-element transpose puts it, for a strided
    /// destination with untouched gaps.
    #[test]
    fn strided_transpose_equals_the_plain_one() {
        if !super::available() {
            return;
        }
        let (lds, ldd, blocks) = (37, 11, 3);
        let src: Vec<f32> = (0..8 * lds).map(|i| i as f32).collect();
        let mut dst = vec![-1.0f32; 8 * blocks * ldd];
        // SAFETY: AVX is available; 8 rows of lds ≥ 24 values; 24 destination rows of ldd ≥ 8.
        unsafe { super::transpose8_avx(src.as_ptr(), lds, dst.as_mut_ptr(), ldd, blocks) };
        for c in 0..8 * blocks {
            for r in 0..ldd {
                let want = if r < 8 { src[r * lds + c] } else { -1.0 };
                assert_eq!(dst[c * ldd + r], want, "column {c}, row {r}");
            }
        }
    }
}
