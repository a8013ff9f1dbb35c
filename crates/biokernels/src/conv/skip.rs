//! Masked direct convolutions that skip masked-out weights at register-block granularity: the
//! direct kernels of [`super::direct`] run over only the reduction indices that a block of
//! [`SKIP_CO`] output channels uses.
//!
//! A channel mask of a narrow layer (the mouse-mimetic 2d windows of the paper CNN's 32- and
//! 64-channel convolutions, band masks) leaves no empty 16 × 16 tile, but a few output
//! channels next to each other on the mask's output grid connect to only part of the input
//! channels. For each block `b` of 4 output channels (which ones: see below) the mask (once,
//! cached in the [`ConvMask`]) lists the reduction indices `kk = (i·kw + j)·C_in + c` where at
//! least one of the block's rows is kept, `K_b = { kk : ∃ co ∈ b, M[kk, co] = 1 }`, and the
//! kernel sums over those only:
//!
//! ```text
//! forward  y[co, q] = bias[co] + Σ_{chunk} Σ_{kk ∈ K_b ∩ chunk} (W ⊙ M)[kk, co] · xpad[c(kk), q + off(kk)]
//! dX       the same on the adjoint convolution (direct::adjoint_plan): blocks of 4 input
//!          channels, kk' = (i'·kw + j')·C_out + co over the flipped, channel-swapped mask
//! dW       dw[kk, co] = Σ_n Σ_q xpad[n, c(kk), q + off(kk)] · dyf[n, co, q]   for kk ∈ K_b, co ∈ b
//!          (blocks of 4 kept kk × the block's 4 output channels), exactly 0 elsewhere
//! ```
//!
//! (`off(kk) = i·wp + j` on the full-width grid, `dyf` = `dy` on the full-width grid with 0 in
//! the junk columns; see [`super::direct`].) The products skipped in the forward and `dX` have
//! a weight that is exactly 0 in `W ⊙ M`, and the sums keep the `KC` chunking of the dense
//! kernel, so for finite inputs the result equals the dense direct convolution of `W ⊙ M`
//! bit for bit — except that an accumulator that is exactly −0 (a kept product that
//! underflowed to −0) stays −0 where the dense kernel's `+0` product turns it into +0; and a
//! non-finite input meets a skipped 0 weight as nothing, where the dense kernel gives NaN.
//! The weight gradient sums each entry in 16 lanes (pixel `q` in lane `q mod 16`, images and
//! pixels in order), then the lanes in order: another order than the dense kernel (equal to
//! rounding), still independent of the number of threads.
//!
//! Four output channels per block (not the dense kernel's 8): on the 2d masks of the paper
//! layers at `w = 0.5`, blocks of 4 consecutive channels keep 0.59 of the `(kk, block)` pairs
//! of the 64 → 64 and 32 → 64 layers and 0.69 of the 32 → 32 layer, against 0.69 / 0.69 /
//! 0.75 for 8-channel blocks. A block need not hold consecutive channels: the lists group the
//! channels in whichever candidate grouping keeps the fewest pairs (consecutive, or 2 × 2
//! squares of the channels laid out on a grid, see [`groupings`]): squares keep 0.56 / 0.55 /
//! 0.59 on those layers (forward; 0.56 / 0.61 / 0.59 adjoint). Which channels share a block
//! changes no result for finite inputs: a channel's own products are the same, in the same
//! order, and the others it meets have an exact 0 weight (see above). The forward kernel keeps
//! the register block at 16 accumulators (4 channels × 64 pixels: 4 vector loads and 4
//! broadcasts per kk, as many as the 8 × 32 kernel's 2 + 8).
//!
//! # Shapes
//! As [`super::direct`]: `x (N, C_in, H, W)`, `w (kh, kw, C_in, C_out)` (Keras), `y (N, C_out,
//! OH, OW)`; the lists: `⌈C_out/4⌉` blocks over `kh·kw·C_in` reduction indices (forward and
//! `dW`), `⌈C_in/4⌉` blocks over `kh·kw·C_out` (adjoint); per image the padded input
//! `(C_in, oh + kh − 1, wp)` and the full-width output `(⌈C_out/4⌉·4, ⌈oh·wp/32⌉·32)`.

use std::cell::RefCell;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::cpu::Plan;
use super::direct::{pad_image_strided, PaddedImage};
use super::ConvMask;
use crate::gemm::KC;

/// Output channels per block (rows of the forward register block, columns of the weight
/// gradient's).
pub(crate) const SKIP_CO: usize = 4;
/// Full-width output pixels per forward kernel call (four AVX-512 vectors); the last block of
/// a row of blocks may take 32.
const SKIP_PIX: usize = 64;
/// Largest kept fraction of the `(kk, block)` pairs at which the skipping kernels run instead
/// of the dense ones on `W ⊙ M`: the skipping forward costs about what the dense one does per
/// kept pair (measured within a few percent on the full mask), so it pays below 1 less
/// the cost of the lists and the smaller weight panels' bookkeeping.
pub(crate) const SKIP_MAX_KEPT: f64 = 0.9;
/// [`SKIP_MAX_KEPT`] for the weight gradient, whose skipping kernel (6 indices × 4 channels,
/// pixels in the lanes) costs up to 1.2× the dense one per kept pair (measured on the paper's
/// 64 → 64 layer with a full mask).
pub(crate) const SKIP_MAX_KEPT_DW: f64 = 0.8;

/// The kept reduction indices of blocks of [`SKIP_CO`] channels, and where each `KC` chunk of
/// the reduction ends in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockLists {
    /// The channels of block `b`: `members[b][r]` for its rows `r`, [`NO_CHANNEL`] for the
    /// padding of a last partial block.
    members: Vec<[usize; SKIP_CO]>,
    /// Block `b` keeps `kk[starts[b]..starts[b + 1]]`, increasing.
    starts: Vec<usize>,
    kk: Vec<usize>,
    /// `⌈k / KC⌉` entries per block: the end (an index into `kk`) of the kept indices below
    /// `(chunk + 1)·KC`.
    chunk_ends: Vec<usize>,
    chunks: usize,
    /// Reduction length (`kh·kw·channels`).
    k: usize,
}

/// A padding row of a block (no channel).
pub(crate) const NO_CHANNEL: usize = usize::MAX;

impl BlockLists {
    /// The lists of `n` channels over `k` reduction indices, `uses(kk, c)`: whether channel
    /// `c` has a kept weight at `kk`. The channels are grouped into blocks of [`SKIP_CO`] in
    /// whichever of [`groupings`] keeps the fewest `(kk, block)` pairs.
    fn build(n: usize, k: usize, uses: impl Fn(usize, usize) -> bool) -> Self {
        let sets: Vec<Vec<bool>> = (0..n).map(|c| (0..k).map(|kk| uses(kk, c)).collect()).collect();
        // Whether the block of channels `m` uses `kk`.
        let block_uses = |m: &[usize; SKIP_CO], kk: usize| m.iter().any(|&c| c != NO_CHANNEL && sets[c][kk]);
        let kept = |members: &[[usize; SKIP_CO]]| -> usize {
            members
                .iter()
                .map(|m| (0..k).filter(|&kk| block_uses(m, kk)).count())
                .sum()
        };
        // The first grouping (consecutive channels) wins ties.
        let members = groupings(n)
            .into_iter()
            .map(|m| (kept(&m), m))
            .min_by_key(|(kept, _)| *kept)
            .map(|(_, m)| m)
            .unwrap_or_default();
        let chunks = k.div_ceil(KC).max(1);
        let mut starts = Vec::with_capacity(members.len() + 1);
        let mut kk = Vec::new();
        let mut chunk_ends = Vec::with_capacity(members.len() * chunks);
        for m in &members {
            starts.push(kk.len());
            for ch in 0..chunks {
                kk.extend((ch * KC..k.min((ch + 1) * KC)).filter(|&r| block_uses(m, r)));
                chunk_ends.push(kk.len());
            }
        }
        starts.push(kk.len());
        BlockLists {
            members,
            starts,
            kk,
            chunk_ends,
            chunks,
            k,
        }
    }

    /// The channel of row `r` of block `b` ([`NO_CHANNEL`] for a padding row).
    pub(crate) fn channel(&self, b: usize, r: usize) -> usize {
        self.members[b][r]
    }

    /// Number of blocks.
    pub(crate) fn blocks(&self) -> usize {
        self.starts.len() - 1
    }

    /// The kept reduction indices of block `b`.
    pub(crate) fn block(&self, b: usize) -> &[usize] {
        &self.kk[self.starts[b]..self.starts[b + 1]]
    }

    /// The ends of the `KC` chunks in block `b`'s list (indices into [`Self::block`]).
    fn chunk_ends(&self, b: usize) -> impl Iterator<Item = usize> + '_ {
        let s = self.starts[b];
        self.chunk_ends[b * self.chunks..][..self.chunks]
            .iter()
            .map(move |&e| e - s)
    }

    /// Fraction of the `(kk, block)` pairs kept: the work left to the skipping kernels.
    pub(crate) fn kept_fraction(&self) -> f64 {
        if self.blocks() == 0 || self.k == 0 {
            return 1.0;
        }
        self.kk.len() as f64 / (self.blocks() * self.k) as f64
    }
}

/// Candidate groupings of `n` channels into blocks of [`SKIP_CO`] (the last one padded with
/// [`NO_CHANNEL`]): consecutive channels, and for every factorisation `n = rows × width` with
/// both even, the 2 × 2 squares of the channels laid out row-major on that grid. The mouse
/// masks are windows on such a grid (`biomask::square_grid_width`), and a square's four
/// windows overlap more than a row's four: on the paper CNN at 2d `w = 0.5` squares keep 0.59
/// instead of 0.69 of the `(kk, block)` pairs of the 32 → 32 layer, 0.56 instead of 0.59 of
/// the 64 → 64 layer.
fn groupings(n: usize) -> Vec<Vec<[usize; SKIP_CO]>> {
    let consecutive = (0..n.div_ceil(SKIP_CO))
        .map(|b| {
            std::array::from_fn(|r| {
                if b * SKIP_CO + r < n {
                    b * SKIP_CO + r
                } else {
                    NO_CHANNEL
                }
            })
        })
        .collect();
    let mut all = vec![consecutive];
    for width in (2..n).step_by(2) {
        if !n.is_multiple_of(width) || !(n / width).is_multiple_of(2) {
            continue;
        }
        let squares = (0..n / width)
            .step_by(2)
            .flat_map(|r| {
                (0..width).step_by(2).map(move |c| {
                    [
                        r * width + c,
                        r * width + c + 1,
                        (r + 1) * width + c,
                        (r + 1) * width + c + 1,
                    ]
                })
            })
            .collect();
        all.push(squares);
    }
    all
}

/// The block lists of a one-group mask: forward (and weight gradient) and adjoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SkipLists {
    /// Blocks of 4 output channels over `kk = t·C_in + c`.
    pub fwd: BlockLists,
    /// Blocks of 4 input channels over the adjoint's `kk' = t'·C_out + co`, `t'` the flipped tap.
    pub adj: BlockLists,
}

impl SkipLists {
    /// The lists of group 0 of `mask` (the caller checks that it has one group).
    fn new(mask: &ConvMask) -> Self {
        let (kh, kw) = mask.kernel();
        let (taps, nx, ny) = (kh * kw, mask.nx(), mask.ny());
        let Some(map) = mask.group(0) else {
            return SkipLists {
                fwd: BlockLists::build(0, 0, |_, _| false),
                adj: BlockLists::build(0, 0, |_, _| false),
            };
        };
        let fwd = BlockLists::build(ny, taps * nx, |kk, co| map.get(kk, co));
        let adj = BlockLists::build(nx, taps * ny, |kk, ci| {
            // Adjoint tap t' = i'·kw + j' reads the forward tap (kh − 1 − i', kw − 1 − j').
            let (t, co) = (kk / ny, kk % ny);
            map.get((taps - 1 - t) * nx + ci, co)
        });
        SkipLists { fwd, adj }
    }
}

/// The [`SkipLists`] of a mask, built on first use and kept with it (a layer holds its mask
/// for all its steps). Cloning a mask gives an empty cache; the cache takes no part in
/// comparisons.
#[derive(Default)]
pub(crate) struct SkipCache(OnceLock<Option<SkipLists>>);

impl SkipCache {
    /// The lists of `mask` (whose cache this is); `None` for a grouped mask.
    pub(crate) fn get<'a>(&'a self, mask: &ConvMask) -> Option<&'a SkipLists> {
        self.0
            .get_or_init(|| (mask.groups() == 1).then(|| SkipLists::new(mask)))
            .as_ref()
    }
}

impl Clone for SkipCache {
    fn clone(&self) -> Self {
        SkipCache::default()
    }
}

impl PartialEq for SkipCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SkipCache {}

impl std::fmt::Debug for SkipCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "SkipCache(built)"
        } else {
            "SkipCache(empty)"
        })
    }
}

/// The forward lists of `mask` when skipping pays ([`SKIP_MAX_KEPT`]).
pub(crate) fn forward_lists(mask: &ConvMask) -> Option<&BlockLists> {
    mask.skip_lists()
        .map(|l| &l.fwd)
        .filter(|l| l.kept_fraction() <= SKIP_MAX_KEPT)
}

/// The forward lists of `mask` when skipping pays for the weight gradient
/// ([`SKIP_MAX_KEPT_DW`]).
pub(crate) fn weight_gradient_lists(mask: &ConvMask) -> Option<&BlockLists> {
    mask.skip_lists()
        .map(|l| &l.fwd)
        .filter(|l| l.kept_fraction() <= SKIP_MAX_KEPT_DW)
}

/// The adjoint (input-gradient) lists of `mask` when skipping pays.
pub(crate) fn adjoint_lists(mask: &ConvMask) -> Option<&BlockLists> {
    mask.skip_lists()
        .map(|l| &l.adj)
        .filter(|l| l.kept_fraction() <= SKIP_MAX_KEPT)
}

thread_local! {
    /// The padded image and the full-width output of the image this thread works on.
    static IMAGE: RefCell<(PaddedImage, Vec<f32>)> = const { RefCell::new((PaddedImage::new(), Vec::new())) };
}

/// The distance in floats between the padded input planes: at least `plane`, a multiple of
/// 16 (one cache line) and an odd number of cache lines. The kernels read the same pixels of
/// many channels in a row; planes a multiple of 4 KiB apart (the 32 × 32 planes of the
/// paper's 32 → 32 layer) would put all those lines in the same L1 set and evict each other
/// (measured: the forward at 2d w = 0.5 gained 1.15× there against 1.8× on a 32 × 33 image).
fn plane_stride(plane: usize) -> usize {
    let lines = plane.div_ceil(16);
    (lines | 1) * 16
}

/// Tap offset on the full-width grid of row width `wp`.
fn tap_offset(p: &Plan, wp: usize, t: usize) -> usize {
    (t / p.kw) * wp + t % p.kw
}

/// `y = conv(x, wm) + bias` over the kept indices `lists` (blocks of output channels of `p`),
/// for a plan that [`super::direct::applies`]; `wm` must be `W ⊙ M` (the entries a block keeps
/// for one of its channels and not another are read).
pub(crate) fn forward(p: &Plan, lists: &BlockLists, x: &[f32], wm: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let (cin, cout) = (p.cin, p.cout);
    let blocks = cout.div_ceil(SKIP_CO);
    debug_assert_eq!(lists.blocks(), blocks);
    let (hp, wp) = (p.oh + p.kh - 1, p.ow + p.kw - 1);
    let plane = plane_stride(hp * wp);
    // Per kept entry: its weights (4 channels, 0 past C_out) and its input offset.
    let mut panels = vec![0f32; lists.kk.len() * SKIP_CO];
    let mut offs = vec![0usize; lists.kk.len()];
    for b in 0..blocks {
        let s = lists.starts[b];
        for (e, &kk) in lists.block(b).iter().enumerate() {
            for r in 0..SKIP_CO {
                let co = lists.channel(b, r);
                if co != NO_CHANNEL {
                    panels[(s + e) * SKIP_CO + r] = wm[kk * cout + co];
                }
            }
            offs[s + e] = (kk % cin) * plane + tap_offset(p, wp, kk / cin);
        }
    }
    let ends: Vec<Vec<usize>> = (0..blocks).map(|b| lists.chunk_ends(b).collect()).collect();
    let full = p.oh * wp;
    let full_padded = full.div_ceil(32) * 32;
    // As the dense kernel: the last pixel block of the last channel reads up to `kw + 32`
    // past the planes (a 64-pixel block never ends past `full_padded`).
    let xpad_len = cin * plane + p.kw + 32;
    let (hw, ohw) = (p.h * p.w, p.oh * p.ow);
    let image = |n: usize, yn: &mut [f32]| {
        IMAGE.with(|cell| {
            let mut bufs = cell.borrow_mut();
            let (pad, yfull) = &mut *bufs;
            yfull.resize(blocks * SKIP_CO * full_padded, 0.0);
            let xpad = pad.fill(p, &x[n * cin * hw..][..cin * hw], wp, plane, xpad_len);
            for (b, ends) in ends.iter().enumerate() {
                let s = lists.starts[b];
                let (bo, bp) = (&offs[s..lists.starts[b + 1]], &panels[s * SKIP_CO..]);
                let mut q = 0;
                while q < full {
                    let out = &mut yfull[b * SKIP_CO * full_padded + q..];
                    // SAFETY: AVX-512F was detected (`direct::applies`). The reads of a block lie in
                    // `xpad`: the largest is (cin − 1)·plane + (kh − 1)·wp + kw − 1 + q + width − 1,
                    // with q + width ≤ full_padded ≤ full + 31 and (kh − 1)·wp + full ≤ plane,
                    // below cin·plane + kw + 32; the
                    // panel holds 4 values per kept entry; the 4 output rows of `width` values at
                    // stride `full_padded` lie in `out` (q + width ≤ full_padded).
                    unsafe {
                        if full - q > 32 {
                            block_4xn::<4>(xpad[q..].as_ptr(), bo, ends, bp.as_ptr(), out.as_mut_ptr(), full_padded);
                        } else {
                            block_4xn::<2>(xpad[q..].as_ptr(), bo, ends, bp.as_ptr(), out.as_mut_ptr(), full_padded);
                        }
                    }
                    q += SKIP_PIX;
                }
            }
            // Row `slot` of the full-width output is channel `lists.channel(slot / 4, slot % 4)`.
            for slot in 0..blocks * SKIP_CO {
                let co = lists.channel(slot / SKIP_CO, slot % SKIP_CO);
                if co == NO_CHANNEL {
                    continue;
                }
                let b = bias.map_or(0.0, |b| b[co]);
                let src = &yfull[slot * full_padded..];
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

/// Images per step of the weight gradient (as the dense kernel: their padded inputs and
/// gradients stay in L2).
const WGRAD_IMAGES: usize = 4;
/// Pixels per vector of the weight-gradient kernel.
const LANES: usize = 16;
/// Reduction indices per weight-gradient register block (× the block's 4 output channels: 24
/// accumulators; 4 aligned gradient loads and 6 input loads per 24 fused multiply-adds).
const WG_ROWS: usize = 6;
/// Floats in the L1 data cache we plan for (48 KiB, as on Ice Lake and later Xeons; 32 KiB
/// parts only see a few more L1 misses).
const L1_FLOATS: usize = 12 * 1024;

/// `dw = (col(x)ᵀ · dy) ⊙ M` (Keras layout, overwritten) over the kept indices `lists` (the
/// forward lists: blocks of output channels), for a plan that [`super::direct::applies`]:
/// entries of a kept `(kk, block)` pair are computed and then the mask applied; every other
/// entry is exactly 0.
///
/// Per block of 4 output channels the kept indices are taken channel-major (`c`, then the
/// tap) in groups of 6 rows, so that a group reads a few input planes at nearby offsets,
/// which stay in L1 while the group runs over an image's pixels; the block's 4 gradient
/// planes of that image stay there across its groups. Each entry is summed in 16 lanes
/// (images and pixels in order), kept in memory between images, and the lanes are added in
/// order at the end.
pub(crate) fn backward_weight(p: &Plan, lists: &BlockLists, mask: &ConvMask, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let (cin, cout) = (p.cin, p.cout);
    let blocks = cout.div_ceil(SKIP_CO);
    debug_assert_eq!(lists.blocks(), blocks);
    let (hp, wp) = (p.oh + p.kh - 1, p.ow + p.kw - 1);
    let plane = plane_stride(hp * wp);
    let full = p.oh * wp;
    let fullv = full.div_ceil(LANES);
    let dplane = fullv * LANES;
    // The reads past the last plane: (cin − 1)·plane + (kh − 1)·wp + kw − 1 + dplane − 1
    // < cin·plane + kw + 16, as (kh − 1)·wp + full ≤ plane.
    let img_len = cin * plane + p.kw + LANES;
    let dyf_len = blocks * SKIP_CO * dplane;
    let (hw, ohw) = (p.h * p.w, p.oh * p.ow);
    let row_offset = |kk: usize| (kk % cin) * plane + tap_offset(p, wp, kk / cin);
    // Per block: the kept entries channel-major, in groups of 4 (the last padded with row 0,
    // dropped).
    let order: Vec<Vec<usize>> = (0..blocks)
        .map(|b| {
            let mut v = lists.block(b).to_vec();
            v.sort_by_key(|&kk| (kk % cin, kk / cin));
            v
        })
        .collect();
    let groups: Vec<Vec<[usize; WG_ROWS]>> = order
        .iter()
        .map(|v| {
            v.chunks(WG_ROWS)
                .map(|g| std::array::from_fn(|r| g.get(r).map_or(0, |&kk| row_offset(kk))))
                .collect()
        })
        .collect();
    // 6 × 4 accumulators of 16 lanes per group.
    const ACC: usize = WG_ROWS * SKIP_CO * LANES;
    let mut accs: Vec<Vec<f32>> = groups.iter().map(|g| vec![0f32; g.len() * ACC]).collect();
    let mut xpads = vec![0f32; WGRAD_IMAGES * img_len];
    // The gradient planes start on cache lines (dplane and dyf_len are multiples of 16):
    // their loads then never split a line.
    let mut dyfs_buf = vec![0f32; WGRAD_IMAGES * dyf_len + LANES];
    let align = dyfs_buf.as_ptr().align_offset(64).min(LANES);
    let dyfs = &mut dyfs_buf[align..][..WGRAD_IMAGES * dyf_len];
    for n0 in (0..p.batch).step_by(WGRAD_IMAGES) {
        let imgs = (n0 + WGRAD_IMAGES).min(p.batch) - n0;
        xpads[..imgs * img_len]
            .par_chunks_mut(img_len)
            .zip(dyfs[..imgs * dyf_len].par_chunks_mut(dyf_len))
            .enumerate()
            .for_each(|(i, (xp, dyf))| {
                let n = n0 + i;
                // The buffers start zeroed and every step writes the same entries: the
                // padding, junk columns and padding rows of the blocks stay 0.
                pad_image_strided(p, &x[n * cin * hw..][..cin * hw], wp, plane, xp);
                // Plane `slot` holds the gradient of the block row's channel.
                for slot in 0..blocks * SKIP_CO {
                    let co = lists.channel(slot / SKIP_CO, slot % SKIP_CO);
                    if co == NO_CHANNEL {
                        continue;
                    }
                    let src = &dy[(n * cout + co) * ohw..][..ohw];
                    for oy in 0..p.oh {
                        dyf[slot * dplane + oy * wp..][..p.ow].copy_from_slice(&src[oy * p.ow..][..p.ow]);
                    }
                }
            });
        let (xpads, dyfs) = (&xpads[..imgs * img_len], &dyfs[..imgs * dyf_len]);
        // A group runs over all the step's images at once (accumulators in registers) when
        // the block's gradient planes of those images fit in half of L1, else image by image
        // (the planes of one image stay in L1 across the block's groups).
        let per_call = if imgs * SKIP_CO * dplane <= L1_FLOATS / 2 {
            imgs
        } else {
            1
        };
        accs.par_iter_mut().enumerate().for_each(|(b, acc)| {
            for i0 in (0..imgs).step_by(per_call) {
                let xp = &xpads[i0 * img_len..];
                let dp = &dyfs[i0 * dyf_len + b * SKIP_CO * dplane..];
                for (offs, a) in groups[b].iter().zip(acc.chunks_exact_mut(ACC)) {
                    // SAFETY: AVX-512F was detected (`direct::applies`). For each image i of the
                    // call (i0 + i < imgs) the x reads `i·img_len + offs[r] + q` (q < dplane)
                    // lie below (i + 1)·img_len (see above), the dy reads
                    // `i·dyf_len + c·dplane + q` in the block's 4 planes; `a` holds 384 values.
                    unsafe {
                        wgrad_6x4(
                            xp.as_ptr(),
                            img_len,
                            dp.as_ptr(),
                            dyf_len,
                            per_call,
                            offs,
                            dplane,
                            fullv,
                            a.as_mut_ptr(),
                        )
                    };
                }
            }
        });
    }
    dw.fill(0.0);
    for (b, (v, acc)) in order.iter().zip(&accs).enumerate() {
        for (e, &kk) in v.iter().enumerate() {
            let (g, r) = (e / WG_ROWS, e % WG_ROWS);
            for c in 0..SKIP_CO {
                let co = lists.channel(b, c);
                if co != NO_CHANNEL {
                    let lanes = &acc[g * ACC + (r * SKIP_CO + c) * LANES..][..LANES];
                    dw[kk * cout + co] = lanes.iter().sum();
                }
            }
        }
    }
    // Entries of a kept pair that the mask removes for this channel.
    super::direct::zero_off_mask(mask, dw);
}

/// One block of 4 output channels × `16·NV` full-width pixels over the kept entries
/// (`offs`, 4 weights each at `a`), the `KC` chunks ending at `ends` folded as the dense
/// kernel folds them (see the module docs).
///
/// # Safety
/// AVX-512F must be available; `x + offs[e] + 0..16·NV` must be readable for every entry, `a`
/// must hold `4·offs.len()` values, `ends` must be increasing and end at `offs.len()`, and
/// `out + r·ldo + 0..16·NV` must be writable for `r < 4`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
// Register-block loops: index loops over fixed-size arrays that LLVM unrolls into registers.
#[allow(clippy::needless_range_loop)]
unsafe fn block_4xn<const NV: usize>(
    x: *const f32,
    offs: &[usize],
    ends: &[usize],
    a: *const f32,
    out: *mut f32,
    ldo: usize,
) {
    use std::arch::x86_64::*;
    let zero = _mm512_setzero_ps();
    let mut acc = [[zero; NV]; SKIP_CO];
    let mut tot = [[zero; NV]; SKIP_CO];
    let mut e = 0;
    for (ch, &end) in ends.iter().enumerate() {
        if ch > 0 {
            // A chunk boundary of the dense reduction: the first chunk is the total, later
            // ones are added to it (even an empty chunk: +0 as the dense kernel adds it).
            for r in 0..SKIP_CO {
                for v in 0..NV {
                    tot[r][v] = if ch == 1 {
                        acc[r][v]
                    } else {
                        _mm512_add_ps(tot[r][v], acc[r][v])
                    };
                    acc[r][v] = zero;
                }
            }
        }
        while e < end {
            // SAFETY: covered by the caller's contract.
            unsafe {
                let xp = x.add(*offs.get_unchecked(e));
                let bv: [__m512; NV] = std::array::from_fn(|v| _mm512_loadu_ps(xp.add(16 * v)));
                let ap = a.add(e * SKIP_CO);
                for r in 0..SKIP_CO {
                    let av = _mm512_set1_ps(*ap.add(r));
                    for v in 0..NV {
                        acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
                    }
                }
            }
            e += 1;
        }
    }
    for r in 0..SKIP_CO {
        for v in 0..NV {
            let val = if ends.len() > 1 {
                _mm512_add_ps(tot[r][v], acc[r][v])
            } else {
                acc[r][v]
            };
            // SAFETY: covered by the caller's contract.
            unsafe { _mm512_storeu_ps(out.add(r * ldo + 16 * v), val) };
        }
    }
}

/// Never called: `direct::applies` requires AVX-512, which only exists on x86-64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn block_4xn<const NV: usize>(_: *const f32, _: &[usize], _: &[usize], _: *const f32, _: *mut f32, _: usize) {}

/// 6 (kk) rows × 4 output channels of the weight gradient over the pixels of `nimg` images:
/// the 24 accumulators of 16 lanes at `acc` (entry `(r, c)` at `(r·4 + c)·16`) plus, per
/// lane, the products of the pixels `q ≡ lane (mod 16)`, images and pixels in order.
///
/// # Safety
/// AVX-512F must be available; for `i < nimg`, `x + i·x_stride + offs[r] + 0..16·nvec` and
/// `d + i·d_stride + c·dplane + 0..16·nvec` (r < 6, c < 4) must be readable and `acc + 0..384`
/// readable and writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
// Register-block loops: index loops over fixed-size arrays that LLVM unrolls into registers.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn wgrad_6x4(
    x: *const f32,
    x_stride: usize,
    d: *const f32,
    d_stride: usize,
    nimg: usize,
    offs: &[usize; WG_ROWS],
    dplane: usize,
    nvec: usize,
    acc: *mut f32,
) {
    use std::arch::x86_64::*;
    // SAFETY: covered by the caller's contract.
    unsafe {
        let mut a: [[__m512; SKIP_CO]; WG_ROWS] =
            std::array::from_fn(|r| std::array::from_fn(|c| _mm512_loadu_ps(acc.add((r * SKIP_CO + c) * LANES))));
        for i in 0..nimg {
            let xr: [*const f32; WG_ROWS] = std::array::from_fn(|r| x.add(i * x_stride + offs[r]));
            let dr: [*const f32; SKIP_CO] = std::array::from_fn(|c| d.add(i * d_stride + c * dplane));
            for v in 0..nvec {
                let q = v * LANES;
                let ds: [__m512; SKIP_CO] = std::array::from_fn(|c| _mm512_loadu_ps(dr[c].add(q)));
                for r in 0..WG_ROWS {
                    let xs = _mm512_loadu_ps(xr[r].add(q));
                    for c in 0..SKIP_CO {
                        a[r][c] = _mm512_fmadd_ps(xs, ds[c], a[r][c]);
                    }
                }
            }
        }
        for r in 0..WG_ROWS {
            for c in 0..SKIP_CO {
                _mm512_storeu_ps(acc.add((r * SKIP_CO + c) * LANES), a[r][c]);
            }
        }
    }
}

/// Never called: `direct::applies` requires AVX-512, which only exists on x86-64.
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn wgrad_6x4(
    _: *const f32,
    _: usize,
    _: *const f32,
    _: usize,
    _: usize,
    _: &[usize; WG_ROWS],
    _: usize,
    _: usize,
    _: *mut f32,
) {
}
