//! Direct convolutions (AVX-512) for stride 1, no dilation and one group, with weights that fit
//! L2 ([`MAX_WEIGHTS`]): the convolutions of the paper CNNs. Forward, input gradient and weight
//! gradient; a mask that leaves at least [`MASKED_MIN_WORK`] of the work is applied to the
//! weights (`W ⊙ M`) instead of being skipped tile by tile, and then skipped per register
//! block by [`super::skip`] when that pays.
//!
//! The im2col path writes `kh·kw` copies of the input and reads them back, which in a training
//! step (operands cold in cache) costs as much as the arithmetic. Here each image is copied once
//! into a zero-padded buffer whose rows are `wp = ow + kw − 1` wide. On the *full-width* output
//! grid (`oh × wp`: columns `ow..wp` are junk and dropped), output pixel `q` of tap `(i, j)`
//! reads padded pixel `q + i·wp + j`, so 32 consecutive outputs read 32 consecutive inputs of
//! every channel: the micro-kernel loads them straight from the padded image, which stays in
//! L2. For a valid column `ox < ow` the read stays on its input row, so junk never leaks into a
//! kept output.
//!
//! ```text
//! y[co, q] = bias[co] + Σ_{chunk} Σ_{kk in chunk} W[kk, co] · xpad[c(kk), q + off(kk)]
//! kk = (i·kw + j)·cin + c,  off = i·wp + j,  chunks of KC reduction indices
//! ```
//! The reduction runs in the order and the chunking of the im2col GEMM (one fused multiply-add
//! accumulator per output over each `KC` chunk, chunks added to the running sum, then the bias),
//! so the result is bit-identical to [`super::cpu`]'s im2col path (test
//! `direct_forward_matches_im2col_bit_for_bit`).
//!
//! The input gradient of a stride-1 convolution is the same kind of convolution (the kernel
//! flipped, its channel axes swapped, `dy` padded by `k − 1 − pad`: [`adjoint_plan`]), so it
//! takes this path too; its sums then run in another order than the im2col path's (equal to
//! rounding, test `direct_input_gradient_matches_im2col`). The weight gradient
//! ([`backward_weight`]) sums pixel-major `dy` rows against the padded images on the same grid.
//!
//! # Shapes
//! `x (N, C_in, H, W)`, `w (kh, kw, C_in, C_out)` (Keras), `y (N, C_out, OH, OW)`; per image the
//! padded input `(C_in, oh + kh − 1, wp)` and the full-width output `(⌈C_out/8⌉·8, ⌈oh·wp/32⌉·32)`.

use std::cell::RefCell;

use rayon::prelude::*;

use super::cpu::Plan;
use super::ConvMask;
use crate::gemm::{Isa, KC};

/// Output channels per micro-kernel call (rows of its register block).
const CO_BLOCK: usize = 8;
/// Full-width output pixels per micro-kernel call (two AVX-512 vectors).
const PIX_BLOCK: usize = 32;

thread_local! {
    /// The padded image and the full-width output of the image this thread works on.
    static IMAGE: RefCell<(PaddedImage, Vec<f32>)> = const { RefCell::new((PaddedImage::new(), Vec::new())) };
}

/// A thread's zero-padded image buffer. Its padding stays zero from one image to the next of
/// the same layout (only the interior is written), so it is cleared only when the layout
/// changes: clearing it for every image was a few percent of a CNN training step.
pub(super) struct PaddedImage {
    data: Vec<f32>,
    /// The layout the padding was cleared for: `(C_in, H, W, top, left, wp, plane, len)`.
    layout: Option<[usize; 8]>,
}

impl PaddedImage {
    pub(super) const fn new() -> Self {
        PaddedImage {
            data: Vec::new(),
            layout: None,
        }
    }

    /// `image` (`C_in` planes `H × W`) zero padded as [`pad_image_strided`] lays it out, in a
    /// buffer of `len` floats.
    pub(super) fn fill(&mut self, p: &Plan, image: &[f32], wp: usize, plane: usize, len: usize) -> &[f32] {
        let layout = [p.cin, p.h, p.w, p.pt, p.pl, wp, plane, len];
        if self.layout != Some(layout) {
            self.data.clear();
            self.data.resize(len, 0.0);
            self.layout = Some(layout);
        }
        pad_image_strided(p, image, wp, plane, &mut self.data);
        &self.data
    }
}

/// Kept fraction of the dense work (after tile skipping) above which a masked convolution runs
/// here, densely on `W ⊙ M`, instead of skipping tiles on the im2col path: the direct kernels
/// are 1.5–2× faster than im2col on the paper CNN's layers, so skipping a third of the work
/// or less does not pay. The 2d and band masks of 32–64-channel layers leave no empty tile
/// (work fraction 1.0).
pub(crate) const MASKED_MIN_WORK: f64 = 0.67;

/// Largest weight tensor (`kh·kw·C_in·C_out` floats, 512 KiB) for the direct path: every image
/// re-reads all the weights, which pays while they stay in L2; a wide layer (256→256, 3×3:
/// 590 k floats) measured 7.47 ms direct against 4.95 ms on the im2col GEMM, which reads the
/// packed weights once per row block.
pub(crate) const MAX_WEIGHTS: usize = 1 << 17;

/// Whether the direct path takes this convolution (else the im2col path does). A mask is
/// applied to the weights (`W ⊙ M`) when it leaves at least [`MASKED_MIN_WORK`] of the work.
pub(crate) fn applies(p: &Plan, mask: Option<&ConvMask>) -> bool {
    mask.is_none_or(|m| m.groups() == 1 && m.work_fraction() >= MASKED_MIN_WORK)
        && p.groups == 1
        && p.kh * p.kw * p.cin * p.cout <= MAX_WEIGHTS
        && (p.sh, p.sw, p.dh, p.dw) == (1, 1, 1, 1)
        // Any C_in from 1 (none: the im2col path handles the empty reduction): even 3 input
        // channels (27 reduction steps per block) beat im2col, measured 0.40–0.68 vs 1.0–1.2 ms
        // for the paper CNN's first layer.
        && p.cin >= 1
        && p.cout >= 1
        && p.oh > 0
        && p.ow > 0
        && Isa::detect() == Isa::Avx512
}

/// Copies one image (`C_in` planes of `h × w`) into the zero-filled padded buffer `xpad`
/// (planes of `(oh + kh − 1) × wp`) at the top/left padding; what falls outside stays 0.
fn pad_image(p: &Plan, image: &[f32], wp: usize, xpad: &mut [f32]) {
    pad_image_strided(p, image, wp, (p.oh + p.kh - 1) * wp, xpad);
}

/// [`pad_image`] with the planes `plane` floats apart (at least `(oh + kh − 1)·wp`).
pub(super) fn pad_image_strided(p: &Plan, image: &[f32], wp: usize, plane: usize, xpad: &mut [f32]) {
    let (hw, hp) = (p.h * p.w, p.oh + p.kh - 1);
    if hw == 0 {
        return;
    }
    for (c, src) in image.chunks_exact(hw).enumerate() {
        for yy in 0..p.h {
            let (py, px) = (yy + p.pt, p.pl);
            if py >= hp || px >= wp {
                continue;
            }
            let len = p.w.min(wp - px);
            xpad[c * plane + py * wp + px..][..len].copy_from_slice(&src[yy * p.w..][..len]);
        }
    }
}

/// `y = conv(x, w) + bias` for a plan that [`applies`].
pub(crate) fn forward(p: &Plan, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let (cin, cout) = (p.cin, p.cout);
    let taps = p.kh * p.kw;
    let co_blocks = cout.div_ceil(CO_BLOCK);
    // Weight panels: [co block][kk][8 output channels], zero past C_out.
    let mut panels = vec![0f32; co_blocks * taps * cin * CO_BLOCK];
    for (cb, panel) in panels.chunks_exact_mut(taps * cin * CO_BLOCK).enumerate() {
        for kk in 0..taps * cin {
            for ii in 0..CO_BLOCK.min(cout - cb * CO_BLOCK) {
                panel[kk * CO_BLOCK + ii] = w[kk * cout + cb * CO_BLOCK + ii];
            }
        }
    }
    let (hp, wp) = (p.oh + p.kh - 1, p.ow + p.kw - 1);
    let plane = hp * wp;
    let full = p.oh * wp;
    let full_padded = full.div_ceil(PIX_BLOCK) * PIX_BLOCK;
    // The last pixel block of the last channel reads up to `kw + PIX_BLOCK` past the planes.
    let xpad_len = cin * plane + p.kw + PIX_BLOCK;
    let offsets: Vec<usize> = (0..taps).map(|t| (t / p.kw) * wp + t % p.kw).collect();
    let (hw, ohw) = (p.h * p.w, p.oh * p.ow);
    let image = |n: usize, yn: &mut [f32]| {
        IMAGE.with(|cell| {
            let mut bufs = cell.borrow_mut();
            let (pad, yfull) = &mut *bufs;
            yfull.resize(co_blocks * CO_BLOCK * full_padded, 0.0);
            let xpad = pad.fill(p, &x[n * cin * hw..][..cin * hw], wp, plane, xpad_len);
            for (cb, panel) in panels.chunks_exact(taps * cin * CO_BLOCK).enumerate() {
                for pb in 0..full_padded / PIX_BLOCK {
                    let out = &mut yfull[cb * CO_BLOCK * full_padded + pb * PIX_BLOCK..];
                    // SAFETY: AVX-512F was detected (`applies`); every read of the block lies in
                    // `xpad` (the largest index is (cin − 1)·plane + (kh − 1)·wp + kw − 1 +
                    // full_padded − 1 < xpad_len), the panel holds taps·cin·8 values, and the
                    // 8 output rows of 32 values at stride `full_padded` lie in `out`.
                    unsafe {
                        block_8x32(
                            xpad[pb * PIX_BLOCK..].as_ptr(),
                            plane,
                            &offsets,
                            cin,
                            panel.as_ptr(),
                            out.as_mut_ptr(),
                            full_padded,
                        );
                    }
                }
            }
            // Keep the valid columns, add the bias (as the im2col path: sum, then + bias).
            for co in 0..cout {
                let b = bias.map_or(0.0, |b| b[co]);
                let src = &yfull[co * full_padded..];
                let dst = &mut yn[co * ohw..][..ohw];
                for oy in 0..p.oh {
                    for (d, &v) in dst[oy * p.ow..][..p.ow].iter_mut().zip(&src[oy * wp..][..p.ow]) {
                        *d = v + b;
                    }
                }
            }
        });
    };
    y.par_chunks_mut(cout * ohw)
        .enumerate()
        .for_each(|(n, yn)| image(n, yn));
}

/// The input gradient of a stride-1 convolution as a forward convolution (a full correlation
/// of `dy` with the kernel flipped and its channel axes swapped), when the direct path takes
/// it: `dx[ci, y, x] = Σ_{i', j', co} dyp[co, y + i', x + j'] · W[kh−1−i', kw−1−j', ci, co]`,
/// `dyp` = `dy` padded by `kh − 1 − pt` on top and `kw − 1 − pl` on the left. `None` when the
/// forward padding exceeds `k − 1` on a side (rows of `x` that reach no output) or the direct
/// path does not apply.
pub(crate) fn adjoint_plan(p: &Plan, mask: Option<&ConvMask>) -> Option<Plan> {
    if !applies(p, mask) {
        return None;
    }
    // Bottom / right padding of the forward: oh = h + pt + pb − kh + 1.
    let pb = (p.oh + p.kh - 1).checked_sub(p.h + p.pt)?;
    let pr = (p.ow + p.kw - 1).checked_sub(p.w + p.pl)?;
    if p.pt >= p.kh || p.pl >= p.kw || pb >= p.kh || pr >= p.kw {
        return None;
    }
    let adj = Plan {
        batch: p.batch,
        cin: p.cout,
        h: p.oh,
        w: p.ow,
        cout: p.cin,
        oh: p.h,
        ow: p.w,
        kh: p.kh,
        kw: p.kw,
        sh: 1,
        sw: 1,
        dh: 1,
        dw: 1,
        pt: p.kh - 1 - p.pt,
        pl: p.kw - 1 - p.pl,
        groups: 1,
    };
    applies(&adj, None).then_some(adj)
}

/// `W ⊙ M` for a one-group mask in the Keras layout `(kh, kw, C_in, C_out)` (the rows of the
/// mask's tile map are the weight's `(i, j, c)` rows): kept weights as they are, the others
/// exactly 0 (a select, so an infinite weight off the mask gives 0, not NaN).
pub(crate) fn masked_weights(mask: &ConvMask, w: &[f32]) -> Vec<f32> {
    let mut out = w.to_vec();
    zero_off_mask(mask, &mut out);
    out
}

/// Sets the entries of a Keras-layout weight (or weight gradient) off a one-group mask to
/// exactly 0.
pub(crate) fn zero_off_mask(mask: &ConvMask, dw: &mut [f32]) {
    let Some(map) = mask.group(0) else { return };
    let (rows, cols) = (map.rows(), map.cols());
    for r in 0..rows {
        for c0 in (0..cols).step_by(64) {
            let len = 64.min(cols - c0);
            let bits = map.row_bits(r, c0, len);
            for t in 0..len {
                if bits >> t & 1 == 0 {
                    dw[r * cols + c0 + t] = 0.0;
                }
            }
        }
    }
}

/// `dx = convᵀ(dy, w) (+ init[c])` through [`forward`] on the [`adjoint_plan`] `adj` of `p`,
/// or through the skipping forward ([`super::skip::forward`]) over the adjoint `lists` of a
/// mask (then `w` must be `W ⊙ M`).
pub(crate) fn backward_input(
    p: &Plan,
    adj: &Plan,
    lists: Option<&super::skip::BlockLists>,
    dy: &[f32],
    w: &[f32],
    init: Option<&[f32]>,
    dx: &mut [f32],
) {
    let (kh, kw, cin, cout) = (p.kh, p.kw, p.cin, p.cout);
    // W'[i', j', co, ci] = W[kh − 1 − i', kw − 1 − j', ci, co] (Keras layout on both sides).
    let mut flipped = vec![0f32; w.len()];
    for i in 0..kh {
        for j in 0..kw {
            let src_tap = (kh - 1 - i) * kw + (kw - 1 - j);
            let dst_tap = i * kw + j;
            for ci in 0..cin {
                for co in 0..cout {
                    flipped[(dst_tap * cout + co) * cin + ci] = w[(src_tap * cin + ci) * cout + co];
                }
            }
        }
    }
    match lists {
        Some(l) => super::skip::forward(adj, l, dy, &flipped, init, dx),
        None => forward(adj, dy, &flipped, init, dx),
    }
}

/// Images per step of the weight gradient: the partial sums of each step are added to the
/// result in order, so the result does not depend on the number of threads.
const WGRAD_IMAGES: usize = 4;
/// Output channels per weight-gradient block (two AVX-512 vectors).
const WGRAD_CO: usize = 32;

/// `dw = col(x)ᵀ · dy` (Keras layout, overwritten) for a plan that [`applies`], on the full-width
/// grid: for tap `t`, `dw[t, ci, co] = Σ_n Σ_q xpad[n, ci, q + off(t)] · dyw[n, q, co]`, where
/// `dyw` is `dy` transposed to pixel-major rows on the full-width grid with 0 in the junk
/// columns. Blocks of 8 (tap, input channel) rows × 32 output channels sum the pixels of
/// [`WGRAD_IMAGES`] images in registers; a junk pixel contributes `x · 0` (a NaN or infinite
/// input there gives NaN, where the im2col path would not read it; the forward output is
/// then already non-finite).
/// `dyw[(oy · wp + ox) · ld + co] = dy[co][oy][ox]`: one image's output gradient (`cout`
/// planes `oh × ow`) pixel-major, rows of `ld` values on the padded width `wp` (the other
/// entries untouched). 8 channels × 8 pixels at a time are transposed in AVX registers: the
/// scalar gather, one value from each of `cout` planes per pixel, took most of the first
/// layer's weight gradient (3 → 32 channels, 32 × 32 pixels: 1.1 ms of a 56-MFLOP pass).
fn pixel_major(dy: &[f32], cout: usize, oh: usize, ow: usize, wp: usize, ld: usize, dyw: &mut [f32]) {
    let ohw = oh * ow;
    let (co8, ox8) = if crate::transpose::available() {
        (cout - cout % 8, ow - ow % 8)
    } else {
        (0, 0)
    };
    for oy in 0..oh {
        let row = &mut dyw[oy * wp * ld..];
        if ox8 > 0 {
            for c0 in (0..co8).step_by(8) {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX was detected. Source rows c0..c0+8 (stride ohw) hold the ox8
                // values from oy·ow on; the destination rows ox < ox8 ≤ ow of `row` (stride
                // ld) take 8 values from c0 ≤ cout − 8, and row ox ends at oy·wp·ld + ox·ld
                // + cout ≤ dyw.len() (the caller's oh·wp rows of ld ≥ cout).
                unsafe {
                    crate::transpose::transpose8_avx(
                        dy[c0 * ohw + oy * ow..].as_ptr(),
                        ohw,
                        row[c0..].as_mut_ptr(),
                        ld,
                        ox8 / 8,
                    );
                }
            }
        }
        for ox in 0..ow {
            let first = if ox < ox8 { co8 } else { 0 };
            let dst = &mut row[ox * ld..][..cout];
            for (co, d) in dst.iter_mut().enumerate().skip(first) {
                *d = dy[co * ohw + oy * ow + ox];
            }
        }
    }
}

pub(crate) fn backward_weight(p: &Plan, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let (cin, cout, taps) = (p.cin, p.cout, p.kh * p.kw);
    let (hp, wp) = (p.oh + p.kh - 1, p.ow + p.kw - 1);
    let plane = hp * wp;
    let full = p.oh * wp;
    let co_blocks = cout.div_ceil(WGRAD_CO);
    let cout_pad = co_blocks * WGRAD_CO;
    // Rows of dW are the (tap, input channel) pairs kk = t·cin + ci, in blocks of 8 (a
    // 3-channel first layer fills them: 27 rows in 4 blocks); row kk reads plane ci at the
    // tap's offset. Rows past the last (the last block's padding) read row 0 and are dropped.
    let rows = taps * cin;
    let row_blocks = rows.div_ceil(CO_BLOCK);
    let tap_offset = |t: usize| (t / p.kw) * wp + t % p.kw;
    let row_offset = |kk: usize| {
        if kk < rows {
            (kk % cin) * plane + tap_offset(kk / cin)
        } else {
            0
        }
    };
    // The channels plus the slack the last taps read (x index ≤ cin·plane + kw − 2).
    let img_len = cin * plane + p.kw + 1;
    let dyw_len = full * cout_pad;
    let (hw, ohw) = (p.h * p.w, p.oh * p.ow);
    let mut sums = vec![0f32; row_blocks * co_blocks * CO_BLOCK * WGRAD_CO];
    let mut xpads = vec![0f32; WGRAD_IMAGES * img_len];
    let mut dyws = vec![0f32; WGRAD_IMAGES * dyw_len];
    for (step, n0) in (0..p.batch).step_by(WGRAD_IMAGES).enumerate() {
        let n1 = (n0 + WGRAD_IMAGES).min(p.batch);
        let imgs = n1 - n0;
        xpads[..imgs * img_len]
            .par_chunks_mut(img_len)
            .zip(dyws[..imgs * dyw_len].par_chunks_mut(dyw_len))
            .enumerate()
            .for_each(|(i, (xp, dyw))| {
                let n = n0 + i;
                // The buffers start zeroed and every step writes the same entries: the
                // padding and junk columns stay 0.
                pad_image(p, &x[n * cin * hw..][..cin * hw], wp, xp);
                pixel_major(&dy[n * cout * ohw..][..cout * ohw], cout, p.oh, p.ow, wp, cout_pad, dyw);
            });
        let (xpads, dyws) = (&xpads[..imgs * img_len], &dyws[..imgs * dyw_len]);
        sums.par_chunks_mut(CO_BLOCK * WGRAD_CO)
            .enumerate()
            .for_each(|(b, out)| {
                let (rb, cob) = (b / co_blocks, b % co_blocks);
                let offs: [usize; CO_BLOCK] = std::array::from_fn(|r| row_offset(rb * CO_BLOCK + r));
                // SAFETY: AVX-512F was detected (`applies`). For every image the largest x index
                // is (cin − 1)·plane + off + full − 1 with off ≤ (kh − 1)·wp + kw − 1 and
                // full = oh·wp, i.e. at most cin·plane + kw − 2 < img_len; the dyw reads
                // (q < full, columns cob·32 .. +32 ≤ cout_pad) lie in dyw_len; `out` holds 8 × 32.
                unsafe {
                    wgrad_block_8x32(
                        xpads,
                        img_len,
                        &offs,
                        dyws,
                        dyw_len,
                        cob * WGRAD_CO,
                        cout_pad,
                        full,
                        out.as_mut_ptr(),
                        step > 0,
                    );
                }
            });
    }
    for kk in 0..rows {
        let (rb, r) = (kk / CO_BLOCK, kk % CO_BLOCK);
        for co in 0..cout {
            let (cob, cc) = (co / WGRAD_CO, co % WGRAD_CO);
            let b = rb * co_blocks + cob;
            dw[kk * cout + co] = sums[b * CO_BLOCK * WGRAD_CO + r * WGRAD_CO + cc];
        }
    }
}

/// One block of 8 (tap, input channel) rows × 32 output channels of the weight gradient over the
/// images of a step: pixels summed in order in registers, then stored (`add` = false) or
/// added to `out` (later steps).
///
/// # Safety
/// AVX-512F must be available; for every image `i` below `xpads.len() / img_len`, the values
/// `xpads[i·img_len + offs[r] + q]` (r < 8, q < full) and `dyws[i·dyw_len + q·ld + co0 +
/// 0..32]` must exist; `out` must hold 8 × 32 values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn wgrad_block_8x32(
    xpads: &[f32],
    img_len: usize,
    offs: &[usize; CO_BLOCK],
    dyws: &[f32],
    dyw_len: usize,
    co0: usize,
    ld: usize,
    full: usize,
    out: *mut f32,
    add: bool,
) {
    use std::arch::x86_64::*;
    let zero = _mm512_setzero_ps();
    let (mut lo, mut hi) = ([zero; CO_BLOCK], [zero; CO_BLOCK]);
    for i in 0..xpads.len() / img_len {
        let xp = xpads[i * img_len..].as_ptr();
        let bp = dyws[i * dyw_len + co0..].as_ptr();
        for q in 0..full {
            // SAFETY: covered by the caller's contract.
            unsafe {
                let b0 = _mm512_loadu_ps(bp.add(q * ld));
                let b1 = _mm512_loadu_ps(bp.add(q * ld + 16));
                for r in 0..CO_BLOCK {
                    let av = _mm512_set1_ps(*xp.add(offs[r] + q));
                    lo[r] = _mm512_fmadd_ps(av, b0, lo[r]);
                    hi[r] = _mm512_fmadd_ps(av, b1, hi[r]);
                }
            }
        }
    }
    for r in 0..CO_BLOCK {
        // SAFETY: covered by the caller's contract.
        unsafe {
            let o = out.add(r * WGRAD_CO);
            let (mut v0, mut v1) = (lo[r], hi[r]);
            if add {
                v0 = _mm512_add_ps(_mm512_loadu_ps(o), v0);
                v1 = _mm512_add_ps(_mm512_loadu_ps(o.add(16)), v1);
            }
            _mm512_storeu_ps(o, v0);
            _mm512_storeu_ps(o.add(16), v1);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn wgrad_block_8x32(
    _: &[f32],
    _: usize,
    _: &[usize; CO_BLOCK],
    _: &[f32],
    _: usize,
    _: usize,
    _: usize,
    _: usize,
    _: *mut f32,
    _: bool,
) {
}

/// One 8-channel × 32-pixel block of the full-width output, the reduction in `KC` chunks as
/// the GEMM micro-kernel sums it (see the module docs).
///
/// # Safety
/// AVX-512F must be available; `x + t_off + c·plane + 0..32` must be readable for every tap
/// offset and channel, `a` must hold `offsets.len()·cin·8` values and `out + r·ldo + 0..32`
/// must be writable for `r < 8`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_8x32(
    x: *const f32,
    plane: usize,
    offsets: &[usize],
    cin: usize,
    a: *const f32,
    out: *mut f32,
    ldo: usize,
) {
    use std::arch::x86_64::*;
    let zero = _mm512_setzero_ps();
    let (mut lo, mut hi) = ([zero; CO_BLOCK], [zero; CO_BLOCK]);
    let (mut tlo, mut thi) = ([zero; CO_BLOCK], [zero; CO_BLOCK]);
    let mut started = false;
    let mut kk = 0;
    let mut ap = a;
    for &off in offsets {
        for c in 0..cin {
            if kk > 0 && kk % KC == 0 {
                // End of a reduction chunk: fold it into the total as the GEMM does (the first
                // chunk is the total; later ones are added to it).
                for r in 0..CO_BLOCK {
                    if started {
                        tlo[r] = _mm512_add_ps(tlo[r], lo[r]);
                        thi[r] = _mm512_add_ps(thi[r], hi[r]);
                    } else {
                        tlo[r] = lo[r];
                        thi[r] = hi[r];
                    }
                    lo[r] = zero;
                    hi[r] = zero;
                }
                started = true;
            }
            // SAFETY: covered by the caller's contract.
            unsafe {
                let xp = x.add(off + c * plane);
                let b0 = _mm512_loadu_ps(xp);
                let b1 = _mm512_loadu_ps(xp.add(16));
                for r in 0..CO_BLOCK {
                    let av = _mm512_set1_ps(*ap.add(r));
                    lo[r] = _mm512_fmadd_ps(av, b0, lo[r]);
                    hi[r] = _mm512_fmadd_ps(av, b1, hi[r]);
                }
                ap = ap.add(CO_BLOCK);
            }
            kk += 1;
        }
    }
    for r in 0..CO_BLOCK {
        let (v0, v1) = if started {
            (_mm512_add_ps(tlo[r], lo[r]), _mm512_add_ps(thi[r], hi[r]))
        } else {
            (lo[r], hi[r])
        };
        // SAFETY: covered by the caller's contract.
        unsafe {
            _mm512_storeu_ps(out.add(r * ldo), v0);
            _mm512_storeu_ps(out.add(r * ldo + 16), v1);
        }
    }
}

/// Never called: [`applies`] requires AVX-512, which only exists on x86-64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn block_8x32(_: *const f32, _: usize, _: &[usize], _: usize, _: *const f32, _: *mut f32, _: usize) {}
