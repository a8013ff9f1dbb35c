//! CPU path of the convolutions: im2col / col2im around the masked GEMM.
//!
//! Everything is expressed on the *convolution* side (`Plan`): input `(batch, cin, h, w)`,
//! output `(batch, cout, oh, ow)`. A transposed convolution runs the same code with its output
//! as the convolution input.
//!
//! Output rows `(n, oy)` ("lines", `ow` GEMM rows each) are processed in chunks of at most
//! `COL_BUDGET / (ow · max(k, cout_g))` lines (at least one), group by group:
//!
//! - forward: im2col straight into the GEMM's packed A layout (parallel over micro-panels) →
//!   `matmul_packed_a` → scatter into the NCHW output planes (parallel over planes);
//! - input gradient: gather `dY_g` (parallel over lines) → `masked_matmul_dx` → col2im,
//!   accumulated into the NCHW input planes (parallel over planes, lines in order);
//! - weight gradient: NHWC copy, im2col and gather → `masked_matmul_dw` (which reads the
//!   unrolled input in place for up to two column panels), overwriting on the first chunk and
//!   accumulating afterwards.
//!
//! The chunking depends only on the geometry and every sum runs in a fixed order, so results
//! do not depend on the number of threads.

use std::borrow::Cow;
use std::cell::RefCell;

use rayon::prelude::*;

use super::ConvMask;
use crate::error::{Error, Result};
use crate::gemm::{
    masked_matmul_dw, masked_matmul_dx, matmul_nt, matmul_packed_a, matmul_tn, packed_a_len, Beta, Isa, MatMut, MatRef,
};

/// Budget, in `f32`, of each of the unrolled-input and gathered-gradient buffers of one chunk
/// (16 MiB). A chunk holds at least one output row, whatever its size.
pub const COL_BUDGET: usize = 1 << 22;

thread_local! {
    /// The two chunk buffers of the last convolution on this thread, kept so that the next
    /// call does not fault in fresh pages.
    static SCRATCH: RefCell<[Vec<f32>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// Calls `f` with three buffers of exactly `lens` floats (contents unspecified), reusing this
/// thread's buffers unless they are in use; buffers over twice [`COL_BUDGET`] are not kept.
fn with_scratch<R>(lens: [usize; 3], f: impl FnOnce(&mut [f32], &mut [f32], &mut [f32]) -> R) -> R {
    fn grow(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
        if v.len() < n {
            v.resize(n, 0.0);
        }
        &mut v[..n]
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let [a, b, c] = &mut *bufs;
            let r = f(grow(a, lens[0]), grow(b, lens[1]), grow(c, lens[2]));
            for v in bufs.iter_mut() {
                if v.len() > 2 * COL_BUDGET {
                    *v = Vec::new();
                }
            }
            r
        }
        Err(_) => f(
            &mut vec![0.0; lens[0]],
            &mut vec![0.0; lens[1]],
            &mut vec![0.0; lens[2]],
        ),
    })
}

/// A convolution on its own side, with padding resolved. Shapes are checked by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub batch: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    /// Top padding.
    pub pt: usize,
    /// Left padding.
    pub pl: usize,
    pub groups: usize,
}

impl Plan {
    fn cin_g(&self) -> usize {
        self.cin / self.groups
    }
    fn cout_g(&self) -> usize {
        self.cout / self.groups
    }
    /// GEMM reduction length per group, `kh·kw·cin_g`.
    fn k(&self) -> usize {
        self.kh * self.kw * self.cin_g()
    }
    pub(crate) fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.cin, self.h, self.w]
    }
    pub(crate) fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.cout, self.oh, self.ow]
    }

    /// Floats of the NHWC copy of one group's channels of the images a chunk of `chunk` lines
    /// touches (at most `chunk / oh + 2` images).
    fn nhwc_len(&self, chunk: usize) -> usize {
        (chunk / self.oh + 2).min(self.batch) * self.h * self.w * self.cin_g()
    }
    /// Lines per chunk for a buffer budget (in `f32`).
    fn chunk_lines(&self, budget: usize) -> usize {
        let per_line = self.ow.saturating_mul(self.k().max(self.cout_g())).max(1);
        (budget / per_line).max(1)
    }

    /// Checks that every buffer and index of the plan is addressable.
    pub(crate) fn check_sizes(&self, op: &'static str) -> Result<()> {
        let too_large = |what: &str| Error::ConvGeometry {
            op,
            reason: format!("the {what} is too large to address"),
        };
        let mul = |dims: &[usize]| dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        mul(&self.input_shape()).ok_or_else(|| too_large("input"))?;
        mul(&self.output_shape()).ok_or_else(|| too_large("output"))?;
        mul(&[self.kh, self.kw, self.cin_g(), self.cout]).ok_or_else(|| too_large("weight"))?;
        // Input coordinates reached from the output: oy·sh + i·dh < (oh + kh)·(sh + dh).
        let reach = |o: usize, k: usize, s: usize, d: usize| mul(&[o.saturating_add(k), s.saturating_add(d)]);
        reach(self.oh, self.kh, self.sh, self.dh).ok_or_else(|| too_large("height"))?;
        reach(self.ow, self.kw, self.sw, self.dw).ok_or_else(|| too_large("width"))?;
        mul(&[self.ow, self.k().max(self.cout_g())]).ok_or_else(|| too_large("unrolled input row"))?;
        Ok(())
    }
}

/// The per-group weight matrices `(k, cout_g)`: the weight itself for one group, column
/// blocks copied out otherwise.
fn group_weights<'a>(p: &Plan, w: &'a [f32]) -> Vec<Cow<'a, [f32]>> {
    if p.groups == 1 {
        return vec![Cow::Borrowed(w)];
    }
    let (k, cg) = (p.k(), p.cout_g());
    (0..p.groups)
        .map(|g| {
            let mut m = Vec::with_capacity(k * cg);
            for r in 0..k {
                m.extend_from_slice(&w[r * p.cout + g * cg..][..cg]);
            }
            Cow::Owned(m)
        })
        .collect()
}

/// Channels per parallel task when scattering into or out of NCHW planes.
const CHANNEL_BLOCK: usize = 16;

/// Copies the channels of group `g` of images `n0..n1` of `x` (NCHW, `p.input_shape()`) into
/// `xt` in NHWC order (`(n1 − n0, h, w, cin_g)`), in parallel over image rows.
fn to_nhwc(p: &Plan, x: &[f32], g: usize, n0: usize, n1: usize, xt: &mut [f32]) {
    let (cg, w, hw) = (p.cin_g(), p.w, p.h * p.w);
    xt[..(n1 - n0) * hw * cg]
        .par_chunks_mut(w * cg)
        .enumerate()
        .for_each(|(r, row)| {
            let (n, y) = (n0 + r / p.h, r % p.h);
            for c in 0..cg {
                let src = &x[((n * p.cin + g * cg + c) * p.h + y) * w..][..w];
                for (xx, &v) in src.iter().enumerate() {
                    row[xx * cg + c] = v;
                }
            }
        });
}

/// Unrolls lines `l0..l1` into `col` (`(l1 − l0)·ow` rows × `k`, columns `(i, j, c)`) from
/// `xt`, the NHWC copy of the group's channels of images `n0..` (see [`to_nhwc`]).
fn im2col(p: &Plan, xt: &[f32], n0: usize, l0: usize, l1: usize, col: &mut [f32]) {
    let (k, cg, ow) = (p.k(), p.cin_g(), p.ow);
    let img_len = p.h * p.w * cg;
    let tap_row = p.kw * cg;
    col[..(l1 - l0) * ow * k]
        .par_chunks_mut(ow * k)
        .enumerate()
        .for_each(|(li, line)| {
            let l = l0 + li;
            let (n, oy) = (l / p.oh, l % p.oh);
            let img = &xt[(n - n0) * img_len..][..img_len];
            for (ox, row) in line.chunks_exact_mut(k).enumerate() {
                let x0 = ox * p.sw;
                // All kw taps inside the image, and adjacent (dilation 1): one copy per tap row.
                let contiguous = p.dw == 1 && x0 >= p.pl && x0 + p.kw - p.pl <= p.w;
                for i in 0..p.kh {
                    let dst = &mut row[i * tap_row..][..tap_row];
                    let yy = oy * p.sh + i * p.dh;
                    if yy < p.pt || yy - p.pt >= p.h {
                        dst.fill(0.0);
                        continue;
                    }
                    let src_row = &img[(yy - p.pt) * p.w * cg..][..p.w * cg];
                    if contiguous {
                        dst.copy_from_slice(&src_row[(x0 - p.pl) * cg..][..tap_row]);
                        continue;
                    }
                    for (j, d) in dst.chunks_exact_mut(cg).enumerate() {
                        let xx = x0 + j * p.dw;
                        if xx < p.pl || xx - p.pl >= p.w {
                            d.fill(0.0);
                        } else {
                            d.copy_from_slice(&src_row[(xx - p.pl) * cg..][..cg]);
                        }
                    }
                }
            }
        });
}

/// Unrolls lines `l0..l1` of group `g` of `x` (NCHW) straight into the GEMM's packed A
/// layout for a kernel with `mr`-row micro-panels: row block `rb` (output pixels
/// `rb·mr .. rb·mr + mr` of the chunk) at `rb · k · mr`, `mr` values per column `(i, j, c)`,
/// zero past the chunk's last pixel. The pixels of a block are split into segments that lie on
/// one output line; along a line with stride 1 and dilation 1 a segment reads consecutive
/// values of one input row. Replaces the NHWC copy, the row-major unrolled buffer and the
/// GEMM's packing of it (three passes over the unrolled input) by one; the values are the same.
fn im2col_packed(p: &Plan, x: &[f32], g: usize, l0: usize, l1: usize, mr: usize, buf: &mut [f32]) {
    let (k, cg, ow) = (p.k(), p.cin_g(), p.ow);
    let rows = (l1 - l0) * ow;
    let hw = p.h * p.w;
    buf[..rows.div_ceil(mr) * k * mr]
        .par_chunks_mut(k * mr)
        .enumerate()
        .for_each(|(rb, dst)| {
            let r0 = rb * mr;
            let valid = mr.min(rows - r0);
            if valid < mr {
                dst.fill(0.0);
            }
            // Segments: (first ii, length, image, output row, first output column).
            let mut segs = [(0usize, 0usize, 0usize, 0usize, 0usize); 16];
            let mut nseg = 0;
            let mut ii = 0;
            while ii < valid {
                let r = r0 + ii;
                let line = l0 + r / ow;
                let ox = r % ow;
                let len = (ow - ox).min(valid - ii);
                segs[nseg] = (ii, len, line / p.oh, line % p.oh, ox);
                nseg += 1;
                ii += len;
            }
            for &(s0, len, n, oy, ox0) in &segs[..nseg] {
                for i in 0..p.kh {
                    let yy = oy * p.sh + i * p.dh;
                    let row_ok = yy >= p.pt && yy - p.pt < p.h;
                    for j in 0..p.kw {
                        // Input columns of the segment: (ox0 + t)·sw + j·dw − pl.
                        let x_first = ox0 * p.sw + j * p.dw;
                        let x_last = (ox0 + len - 1) * p.sw + j * p.dw;
                        let inside = x_first >= p.pl && x_last - p.pl < p.w;
                        for c in 0..cg {
                            let kk = (i * p.kw + j) * cg + c;
                            let d = &mut dst[kk * mr + s0..][..len];
                            if !row_ok {
                                d.fill(0.0);
                                continue;
                            }
                            let src = &x[(n * p.cin + g * cg + c) * hw + (yy - p.pt) * p.w..][..p.w];
                            if inside && p.sw == 1 {
                                let s = &src[x_first - p.pl..][..len];
                                // A whole AVX-512 block on one line: a fixed-size copy the
                                // compiler inlines (a slice copy of runtime length is a call).
                                match (<&mut [f32; 8]>::try_from(&mut *d), <&[f32; 8]>::try_from(s)) {
                                    (Ok(d8), Ok(s8)) => *d8 = *s8,
                                    _ => d.copy_from_slice(s),
                                }
                            } else {
                                for (t, v) in d.iter_mut().enumerate() {
                                    let xx = (ox0 + t) * p.sw + j * p.dw;
                                    *v = if xx >= p.pl && xx - p.pl < p.w {
                                        src[xx - p.pl]
                                    } else {
                                        0.0
                                    };
                                }
                            }
                        }
                    }
                }
            }
        });
}

/// Gathers lines `l0..l1` of group `g` of `dy` (NCHW, `p.output_shape()`) into `out`
/// (`(l1 − l0)·ow` rows × `cout_g`).
fn gather_dy(p: &Plan, dy: &[f32], g: usize, l0: usize, l1: usize, out: &mut [f32]) {
    let (cg, ow) = (p.cout_g(), p.ow);
    out[..(l1 - l0) * ow * cg]
        .par_chunks_mut(ow * cg)
        .enumerate()
        .for_each(|(li, line)| {
            let l = l0 + li;
            let (n, oy) = (l / p.oh, l % p.oh);
            for o in 0..cg {
                let src = &dy[((n * p.cout + g * cg + o) * p.oh + oy) * ow..][..ow];
                for (ox, &v) in src.iter().enumerate() {
                    line[ox * cg + o] = v;
                }
            }
        });
}

/// The images `n0..n1` that lines `l0..l1` touch.
fn images(p: &Plan, l0: usize, l1: usize) -> (usize, usize) {
    (l0 / p.oh, (l1 - 1) / p.oh + 1)
}

/// One parallel task of a scatter into NCHW planes: image `n`, the group-local channels
/// `c0 .. c0 + len / plane`, and their planes.
type PlaneBlock<'a> = (usize, usize, &'a mut [f32]);

/// Splits the planes of channels `g·cg .. (g+1)·cg` of images `n0..n1` of an NCHW tensor with
/// `c` channels of `plane` floats into blocks of at most [`CHANNEL_BLOCK`] channels.
fn plane_blocks(
    t: &mut [f32],
    c: usize,
    plane: usize,
    g: usize,
    cg: usize,
    n0: usize,
    n1: usize,
) -> Vec<PlaneBlock<'_>> {
    let mut out = Vec::with_capacity((n1 - n0) * cg.div_ceil(CHANNEL_BLOCK));
    for (di, img) in t[n0 * c * plane..n1 * c * plane]
        .chunks_exact_mut(c * plane)
        .enumerate()
    {
        let mut rest = &mut img[g * cg * plane..(g + 1) * cg * plane];
        let mut c0 = 0;
        while c0 < cg {
            let bw = CHANNEL_BLOCK.min(cg - c0);
            let (block, tail) = rest.split_at_mut(bw * plane);
            out.push((n0 + di, c0, block));
            rest = tail;
            c0 += bw;
        }
    }
    out
}

/// Writes the GEMM result `yg` (`(l1 − l0)·ow` rows × `cout_g`) of group `g` into the NCHW
/// output planes, adding the bias.
fn scatter_out(p: &Plan, g: usize, l0: usize, l1: usize, yg: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let (cg, ow, ohw) = (p.cout_g(), p.ow, p.oh * p.ow);
    let (n0, n1) = images(p, l0, l1);
    plane_blocks(y, p.cout, ohw, g, cg, n0, n1)
        .into_par_iter()
        .for_each(|(n, c0, block)| {
            let bw = block.len() / ohw;
            for l in l0.max(n * p.oh)..l1.min((n + 1) * p.oh) {
                let oy = l - n * p.oh;
                let row0 = (l - l0) * ow;
                for cc in 0..bw {
                    let o = c0 + cc;
                    let b = bias.map_or(0.0, |b| b[g * cg + o]);
                    let dst = &mut block[cc * ohw + oy * ow..][..ow];
                    for (ox, d) in dst.iter_mut().enumerate() {
                        *d = yg[(row0 + ox) * cg + o] + b;
                    }
                }
            }
        });
}

/// Adds the unrolled gradient `dcol` (`(l1 − l0)·ow` rows × `k`) of group `g` into the NCHW
/// input planes (col2im): first into `dxt`, an NHWC buffer of the chunk's images (in parallel
/// over images, contiguous adds of `cin_g` channels per tap), then `dx += dxt` plane by plane.
/// Every sum runs in a fixed order (rows, then taps), whatever the number of threads.
fn col2im(p: &Plan, g: usize, l0: usize, l1: usize, dcol: &[f32], dxt: &mut [f32], dx: &mut [f32]) {
    let (k, cg, ow, hw) = (p.k(), p.cin_g(), p.ow, p.h * p.w);
    let (n0, n1) = images(p, l0, l1);
    let img_len = hw * cg;
    let tap_row = p.kw * cg;
    dxt[..(n1 - n0) * img_len]
        .par_chunks_mut(img_len)
        .enumerate()
        .for_each(|(di, img)| {
            img.fill(0.0);
            let n = n0 + di;
            for l in l0.max(n * p.oh)..l1.min((n + 1) * p.oh) {
                let oy = l - n * p.oh;
                let row0 = (l - l0) * ow;
                for ox in 0..ow {
                    let src_row = &dcol[(row0 + ox) * k..][..k];
                    let x0 = ox * p.sw;
                    let contiguous = p.dw == 1 && x0 >= p.pl && x0 + p.kw - p.pl <= p.w;
                    for i in 0..p.kh {
                        let yy = oy * p.sh + i * p.dh;
                        if yy < p.pt || yy - p.pt >= p.h {
                            continue;
                        }
                        let src = &src_row[i * tap_row..][..tap_row];
                        let dst_row = &mut img[(yy - p.pt) * p.w * cg..][..p.w * cg];
                        if contiguous {
                            let dst = &mut dst_row[(x0 - p.pl) * cg..][..tap_row];
                            for (d, &v) in dst.iter_mut().zip(src) {
                                *d += v;
                            }
                            continue;
                        }
                        for (j, s) in src.chunks_exact(cg).enumerate() {
                            let xx = x0 + j * p.dw;
                            if xx < p.pl || xx - p.pl >= p.w {
                                continue;
                            }
                            let dst = &mut dst_row[(xx - p.pl) * cg..][..cg];
                            for (d, &v) in dst.iter_mut().zip(s) {
                                *d += v;
                            }
                        }
                    }
                }
            }
        });
    let dxt = &*dxt;
    dx[n0 * p.cin * hw..n1 * p.cin * hw]
        .par_chunks_mut(hw)
        .enumerate()
        .for_each(|(pi, plane)| {
            let (di, ci) = (pi / p.cin, pi % p.cin);
            if ci / cg != g {
                return;
            }
            let c = ci - g * cg;
            let img = &dxt[di * img_len..][..img_len];
            for (pix, d) in plane.iter_mut().enumerate() {
                *d += img[pix * cg + c];
            }
        });
}

/// `y = conv(x, W ⊙ M) + bias`, overwriting `y`.
pub(crate) fn forward(
    p: &Plan,
    x: &[f32],
    w: &[f32],
    mask: Option<&ConvMask>,
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<()> {
    if super::direct::applies(p, mask) {
        match mask {
            Some(m) => {
                let wm = super::direct::masked_weights(m, w);
                match super::skip::forward_lists(m) {
                    Some(lists) => super::skip::forward(p, lists, x, &wm, bias, y),
                    None => super::direct::forward(p, x, &wm, bias, y),
                }
            }
            None => super::direct::forward(p, x, w, bias, y),
        }
        return Ok(());
    }
    forward_chunked(p, x, w, mask, bias, y, p.chunk_lines(COL_BUDGET))
}

#[allow(clippy::too_many_arguments)]
fn forward_chunked(
    p: &Plan,
    x: &[f32],
    w: &[f32],
    mask: Option<&ConvMask>,
    bias: Option<&[f32]>,
    y: &mut [f32],
    chunk: usize,
) -> Result<()> {
    let lines = p.batch * p.oh;
    if lines == 0 {
        return Ok(());
    }
    let (k, cg) = (p.k(), p.cout_g());
    let wgs = group_weights(p, w);
    let max_rows = chunk.min(lines) * p.ow;
    let isa = Isa::detect();
    let mr = isa.micro_tile().0;
    with_scratch([packed_a_len(isa, max_rows, k), max_rows * cg, 0], |apack, yg, _| {
        for l0 in (0..lines).step_by(chunk) {
            let l1 = (l0 + chunk).min(lines);
            let rows = (l1 - l0) * p.ow;
            let alen = packed_a_len(isa, rows, k);
            for (g, wg) in wgs.iter().enumerate() {
                im2col_packed(p, x, g, l0, l1, mr, apack);
                let b = MatRef::new(wg, k, cg)?;
                let c = MatMut::new(&mut yg[..rows * cg], rows, cg)?;
                let tm = mask.and_then(|m| m.group(g));
                matmul_packed_a(isa, &apack[..alen], rows, b, tm, c, Beta::Zero)?;
                scatter_out(p, g, l0, l1, yg, bias, y);
            }
        }
        Ok(())
    })
}

/// `dx = convᵀ(dy, W ⊙ M) (+ init[c] on every plane of channel c)`, overwriting `dx`.
pub(crate) fn backward_input(
    p: &Plan,
    dy: &[f32],
    w: &[f32],
    mask: Option<&ConvMask>,
    init: Option<&[f32]>,
    dx: &mut [f32],
) -> Result<()> {
    if let Some(adj) = super::direct::adjoint_plan(p, mask) {
        match mask {
            Some(m) => {
                let wm = super::direct::masked_weights(m, w);
                let lists = super::skip::adjoint_lists(m);
                super::direct::backward_input(p, &adj, lists, dy, &wm, init, dx);
            }
            None => super::direct::backward_input(p, &adj, None, dy, w, init, dx),
        }
        return Ok(());
    }
    backward_input_chunked(p, dy, w, mask, init, dx, p.chunk_lines(COL_BUDGET))
}

#[allow(clippy::too_many_arguments)]
fn backward_input_chunked(
    p: &Plan,
    dy: &[f32],
    w: &[f32],
    mask: Option<&ConvMask>,
    init: Option<&[f32]>,
    dx: &mut [f32],
    chunk: usize,
) -> Result<()> {
    let hw = p.h * p.w;
    dx.par_chunks_mut(hw.max(1)).enumerate().for_each(|(pi, plane)| {
        plane.fill(init.map_or(0.0, |b| b[pi % p.cin]));
    });
    let lines = p.batch * p.oh;
    if lines == 0 {
        return Ok(());
    }
    let (k, cg) = (p.k(), p.cout_g());
    let wgs = group_weights(p, w);
    let max_rows = chunk.min(lines) * p.ow;
    with_scratch([max_rows * k, max_rows * cg, p.nhwc_len(chunk)], |dcol, dyg, dxt| {
        for l0 in (0..lines).step_by(chunk) {
            let l1 = (l0 + chunk).min(lines);
            let rows = (l1 - l0) * p.ow;
            for (g, wg) in wgs.iter().enumerate() {
                gather_dy(p, dy, g, l0, l1, dyg);
                let a = MatRef::new(&dyg[..rows * cg], rows, cg)?;
                let b = MatRef::new(wg, k, cg)?;
                let c = MatMut::new(&mut dcol[..rows * k], rows, k)?;
                match mask.and_then(|m| m.group(g)) {
                    Some(tm) => masked_matmul_dx(a, b, tm, c, Beta::Zero)?,
                    None => matmul_nt(a, b, c, Beta::Zero)?,
                }
                col2im(p, g, l0, l1, dcol, dxt, dx);
            }
        }
        Ok(())
    })
}

/// `dw = (col(x)ᵀ · dy) ⊙ M`, overwriting `dw` (exactly 0 off the mask).
pub(crate) fn backward_weight(p: &Plan, x: &[f32], dy: &[f32], mask: Option<&ConvMask>, dw: &mut [f32]) -> Result<()> {
    if super::direct::applies(p, mask) {
        match mask {
            Some(m) => match super::skip::weight_gradient_lists(m) {
                Some(lists) => super::skip::backward_weight(p, lists, m, x, dy, dw),
                None => {
                    super::direct::backward_weight(p, x, dy, dw);
                    super::direct::zero_off_mask(m, dw);
                }
            },
            None => super::direct::backward_weight(p, x, dy, dw),
        }
        return Ok(());
    }
    backward_weight_chunked(p, x, dy, mask, dw, p.chunk_lines(COL_BUDGET))
}

fn backward_weight_chunked(
    p: &Plan,
    x: &[f32],
    dy: &[f32],
    mask: Option<&ConvMask>,
    dw: &mut [f32],
    chunk: usize,
) -> Result<()> {
    let lines = p.batch * p.oh;
    if lines == 0 {
        dw.fill(0.0);
        return Ok(());
    }
    let (k, cg) = (p.k(), p.cout_g());
    let max_rows = chunk.min(lines) * p.ow;
    // One group writes straight into dw; several accumulate into per-group blocks.
    let mut blocks: Vec<Vec<f32>> = if p.groups == 1 {
        Vec::new()
    } else {
        vec![vec![0f32; k * cg]; p.groups]
    };
    with_scratch([max_rows * k, max_rows * cg, p.nhwc_len(chunk)], |col, dyg, xt| {
        for l0 in (0..lines).step_by(chunk) {
            let l1 = (l0 + chunk).min(lines);
            let rows = (l1 - l0) * p.ow;
            let beta = if l0 == 0 { Beta::Zero } else { Beta::One };
            let (n0, n1) = images(p, l0, l1);
            for g in 0..p.groups {
                to_nhwc(p, x, g, n0, n1, xt);
                im2col(p, xt, n0, l0, l1, col);
                gather_dy(p, dy, g, l0, l1, dyg);
                let a = MatRef::new(&col[..rows * k], rows, k)?;
                let b = MatRef::new(&dyg[..rows * cg], rows, cg)?;
                let out: &mut [f32] = match blocks.get_mut(g) {
                    Some(block) => block,
                    None => &mut *dw,
                };
                let c = MatMut::new(out, k, cg)?;
                match mask.and_then(|m| m.group(g)) {
                    Some(tm) => masked_matmul_dw(a, b, tm, c, beta)?,
                    None => matmul_tn(a, b, c, beta)?,
                }
            }
        }
        Ok::<(), Error>(())
    })?;
    for (g, block) in blocks.iter().enumerate() {
        for r in 0..k {
            dw[r * p.cout + g * cg..][..cg].copy_from_slice(&block[r * cg..][..cg]);
        }
    }
    Ok(())
}

/// `db[c] = Σ_{n, y, x} dy[n, c, y, x]` over an NCHW `shape`, summed in f64.
pub(crate) fn bias_grad(shape: [usize; 4], dy: &[f32], db: &mut [f32]) {
    let [n, c, h, w] = shape;
    let hw = h * w;
    db.par_iter_mut().enumerate().for_each(|(ci, out)| {
        let mut s = 0f64;
        for b in 0..n {
            s += dy[(b * c + ci) * hw..][..hw].iter().map(|&v| f64::from(v)).sum::<f64>();
        }
        *out = s as f32;
    });
}

#[cfg(test)]
#[path = "cpu_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "cpu_skip_tests.rs"]
mod skip_tests;
