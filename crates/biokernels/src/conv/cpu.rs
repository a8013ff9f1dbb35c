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
            Some(m) => super::direct::forward(p, x, &super::direct::masked_weights(m, w), bias, y),
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
            Some(m) => super::direct::backward_input(p, &adj, dy, &super::direct::masked_weights(m, w), init, dx),
            None => super::direct::backward_input(p, &adj, dy, w, init, dx),
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
        super::direct::backward_weight(p, x, dy, dw);
        if let Some(m) = mask {
            super::direct::zero_off_mask(m, dw);
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
mod tests {
    use super::*;
    use crate::conv::{Conv2dGeometry, Padding};
    use crate::tile_map::TileSize;

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// `‖got − want‖₂ / ‖want‖₂` in f64, checking that every value of `got` was written
    /// (the buffers start as NaN).
    fn relative_error(got: &[f32], want: &[f32]) -> f64 {
        let (mut err, mut norm) = (0f64, 0f64);
        for (g, e) in got.iter().zip(want) {
            assert!(g.is_finite(), "every output written");
            err += f64::from(g - e).powi(2);
            norm += f64::from(*e).powi(2);
        }
        (err / norm).sqrt()
    }

    #[test]
    fn direct_input_gradient_matches_im2col() {
        if !Isa::Avx512.is_available() {
            eprintln!("SKIPPED direct_input_gradient_matches_im2col: no AVX-512 on this CPU");
            return;
        }
        let geoms = [
            Conv2dGeometry::new(3, 32, (32, 32), 32, (3, 3)),
            Conv2dGeometry::new(2, 3, (32, 32), 32, (3, 3)).with_padding(Padding::Same),
            Conv2dGeometry::new(2, 32, (15, 15), 64, (3, 3)).with_padding(Padding::Same),
            Conv2dGeometry::new(2, 64, (15, 15), 64, (3, 3)),
            Conv2dGeometry::new(2, 5, (9, 11), 13, (5, 5)).with_padding(Padding::Same),
            Conv2dGeometry::new(1, 3, (7, 6), 8, (1, 1)),
            Conv2dGeometry::new(2, 9, (10, 13), 17, (2, 3)).with_padding(Padding::Explicit {
                top: 1,
                bottom: 0,
                left: 1,
                right: 2,
            }),
        ];
        for (gi, geom) in geoms.iter().enumerate() {
            let p = geom.plan("test").unwrap();
            let adj = super::super::direct::adjoint_plan(&p, None);
            assert!(adj.is_some(), "geometry {gi} takes the direct path");
            let dy = values(geom.output_len().unwrap(), 80 + gi as u64);
            let w = values(geom.weight_len(), 90 + gi as u64);
            let init = values(geom.in_channels, 95 + gi as u64);
            for init in [None, Some(&init[..])] {
                let mut want = vec![f32::NAN; geom.input_len()];
                backward_input_chunked(&p, &dy, &w, None, init, &mut want, p.chunk_lines(COL_BUDGET)).unwrap();
                let mut got = vec![f32::NAN; want.len()];
                backward_input(&p, &dy, &w, None, init, &mut got).unwrap();
                let rel = relative_error(&got, &want);
                assert!(rel < 1e-6, "geometry {gi}: relative error {rel}");
            }
        }
        // Padding larger than k − 1 on a side keeps the im2col path.
        let wide = Conv2dGeometry::new(1, 8, (5, 5), 8, (2, 2)).with_padding(Padding::Explicit {
            top: 2,
            bottom: 0,
            left: 0,
            right: 0,
        });
        assert!(super::super::direct::adjoint_plan(&wide.plan("test").unwrap(), None).is_none());
    }

    #[test]
    fn direct_weight_gradient_matches_im2col() {
        if !Isa::Avx512.is_available() {
            eprintln!("SKIPPED direct_weight_gradient_matches_im2col: no AVX-512 on this CPU");
            return;
        }
        // Batches that are not a multiple of the image step, C_in / C_out off the 8 / 32
        // blocks, every padding, 1×1 and non-square kernels.
        let geoms = [
            Conv2dGeometry::new(5, 32, (32, 32), 32, (3, 3)),
            Conv2dGeometry::new(6, 3, (32, 32), 32, (3, 3)).with_padding(Padding::Same),
            Conv2dGeometry::new(3, 32, (15, 15), 64, (3, 3)).with_padding(Padding::Same),
            Conv2dGeometry::new(2, 64, (15, 15), 64, (3, 3)),
            Conv2dGeometry::new(9, 13, (9, 11), 40, (5, 5)).with_padding(Padding::Same),
            Conv2dGeometry::new(1, 8, (7, 6), 5, (1, 1)),
            Conv2dGeometry::new(2, 9, (10, 13), 17, (2, 3)).with_padding(Padding::Explicit {
                top: 2,
                bottom: 0,
                left: 1,
                right: 3,
            }),
        ];
        for (gi, geom) in geoms.iter().enumerate() {
            let p = geom.plan("test").unwrap();
            assert!(
                super::super::direct::applies(&p, None),
                "geometry {gi} takes the direct path"
            );
            let x = values(geom.input_len(), 110 + gi as u64);
            let dy = values(geom.output_len().unwrap(), 120 + gi as u64);
            let mut want = vec![f32::NAN; geom.weight_len()];
            backward_weight_chunked(&p, &x, &dy, None, &mut want, p.chunk_lines(COL_BUDGET)).unwrap();
            let mut got = vec![f32::NAN; want.len()];
            backward_weight(&p, &x, &dy, None, &mut got).unwrap();
            let rel = relative_error(&got, &want);
            // Both are f32 sums over up to 4500 terms in different orders.
            assert!(rel < 1e-5, "geometry {gi}: relative error {rel}");
        }
    }

    #[test]
    fn masked_convs_on_the_direct_path_match_tile_skipping() {
        if !Isa::Avx512.is_available() {
            eprintln!("SKIPPED masked_convs_on_the_direct_path_match_tile_skipping: no AVX-512 on this CPU");
            return;
        }
        let geoms = [
            Conv2dGeometry::new(3, 32, (16, 16), 32, (3, 3)),
            Conv2dGeometry::new(2, 32, (15, 15), 64, (3, 3)).with_padding(Padding::Same),
            Conv2dGeometry::new(2, 13, (9, 11), 17, (5, 3)).with_padding(Padding::Same),
        ];
        for (gi, geom) in geoms.iter().enumerate() {
            let p = geom.plan("test").unwrap();
            let [kh, kw, cin, cout, groups] = geom.mask_dims();
            // A random half mask: every 16 × 16 tile partial, work fraction 1 → the direct path.
            let mvals: Vec<f32> = values(geom.weight_len(), 130 + gi as u64)
                .iter()
                .map(|&v| if v > 0.0 { 1.0 } else { 0.0 })
                .collect();
            let mask = ConvMask::from_values(&mvals, (kh, kw), cin, cout, groups, TileSize::CPU_DEFAULT).unwrap();
            assert!(super::super::direct::applies(&p, Some(&mask)), "geometry {gi}");
            let x = values(geom.input_len(), 140 + gi as u64);
            // Large weights off the mask: they must not leak into any result.
            let w: Vec<f32> = values(geom.weight_len(), 150 + gi as u64)
                .iter()
                .zip(&mvals)
                .map(|(&v, &m)| if m == 1.0 { v } else { 1e30 })
                .collect();
            let dy = values(geom.output_len().unwrap(), 160 + gi as u64);
            let bias = values(geom.out_channels, 170 + gi as u64);
            let chunk = p.chunk_lines(COL_BUDGET);
            let mut want = vec![f32::NAN; geom.output_len().unwrap()];
            forward_chunked(&p, &x, &w, Some(&mask), Some(&bias), &mut want, chunk).unwrap();
            let mut got = vec![f32::NAN; want.len()];
            forward(&p, &x, &w, Some(&mask), Some(&bias), &mut got).unwrap();
            // Skipped products are exact zeros on the direct path: equal values.
            assert_eq!(got, want, "geometry {gi}: forward");
            let mut want = vec![f32::NAN; geom.input_len()];
            backward_input_chunked(&p, &dy, &w, Some(&mask), None, &mut want, chunk).unwrap();
            let mut got = vec![f32::NAN; want.len()];
            backward_input(&p, &dy, &w, Some(&mask), None, &mut got).unwrap();
            assert!(relative_error(&got, &want) < 1e-6, "geometry {gi}: input gradient");
            let mut want = vec![f32::NAN; geom.weight_len()];
            backward_weight_chunked(&p, &x, &dy, Some(&mask), &mut want, chunk).unwrap();
            let mut got = vec![f32::NAN; want.len()];
            backward_weight(&p, &x, &dy, Some(&mask), &mut got).unwrap();
            assert!(relative_error(&got, &want) < 1e-5, "geometry {gi}: weight gradient");
            for (i, (&g, &m)) in got.iter().zip(&mvals).enumerate() {
                assert!(
                    m == 1.0 || g.to_bits() == 0,
                    "geometry {gi}: dw[{i}] = {g} off the mask"
                );
            }
        }
        // A mask that empties most tiles keeps the tile-skipping path.
        let geom = Conv2dGeometry::new(1, 64, (8, 8), 64, (3, 3));
        let [kh, kw, cin, cout, groups] = geom.mask_dims();
        let band: Vec<f32> = (0..geom.weight_len())
            .map(|i| {
                let (c, co) = ((i / cout) % cin, i % cout);
                if c.abs_diff(co) < 4 {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let mask = ConvMask::from_values(&band, (kh, kw), cin, cout, groups, TileSize::CPU_DEFAULT).unwrap();
        assert!(mask.work_fraction() < super::super::direct::MASKED_MIN_WORK);
        assert!(!super::super::direct::applies(&geom.plan("test").unwrap(), Some(&mask)));
        // So does a layer whose weights do not fit the direct path's L2 budget.
        let wide = Conv2dGeometry::new(1, 256, (8, 8), 256, (3, 3)).with_padding(Padding::Same);
        assert!(!super::super::direct::applies(&wide.plan("test").unwrap(), None));
    }

    #[test]
    fn direct_forward_matches_im2col_bit_for_bit() {
        if !Isa::Avx512.is_available() {
            eprintln!("SKIPPED direct_forward_matches_im2col_bit_for_bit: no AVX-512 on this CPU");
            return;
        }
        // Reductions below, at and across KC boundaries (9·32 = 288, 9·64 = 576, 25·13 = 325),
        // C_out not a multiple of 8, full-width grids not a multiple of 32, every padding,
        // 1×1 and non-square kernels, an image larger than the kernel's reach on one side.
        let geoms = [
            Conv2dGeometry::new(3, 32, (32, 32), 32, (3, 3)),
            Conv2dGeometry::new(2, 3, (32, 32), 32, (3, 3)).with_padding(Padding::Same),
            Conv2dGeometry::new(2, 32, (15, 15), 64, (3, 3)).with_padding(Padding::Same),
            Conv2dGeometry::new(2, 64, (15, 15), 64, (3, 3)),
            Conv2dGeometry::new(2, 13, (9, 11), 13, (5, 5)).with_padding(Padding::Same),
            Conv2dGeometry::new(1, 8, (7, 6), 5, (1, 1)),
            Conv2dGeometry::new(2, 9, (10, 13), 17, (2, 3)).with_padding(Padding::Explicit {
                top: 2,
                bottom: 0,
                left: 1,
                right: 3,
            }),
            Conv2dGeometry::new(1, 8, (4, 4), 8, (4, 4)),
        ];
        for (gi, geom) in geoms.iter().enumerate() {
            let p = geom.plan("test").unwrap();
            assert!(
                super::super::direct::applies(&p, None),
                "geometry {gi} takes the direct path"
            );
            let x = values(geom.input_len(), 50 + gi as u64);
            let w = values(geom.weight_len(), 60 + gi as u64);
            let bias = values(geom.out_channels, 70 + gi as u64);
            for b in [None, Some(&bias[..])] {
                let mut want = vec![f32::NAN; geom.output_len().unwrap()];
                forward_chunked(&p, &x, &w, None, b, &mut want, p.chunk_lines(COL_BUDGET)).unwrap();
                let mut got = vec![f32::NAN; want.len()];
                super::super::direct::forward(&p, &x, &w, b, &mut got);
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        g.to_bits() == e.to_bits(),
                        "geometry {gi}, bias {}, output {i}: {g} vs {e}",
                        b.is_some()
                    );
                }
            }
        }
    }

    /// The forward through [`im2col_packed`] equals, bit for bit, the former path (NHWC copy,
    /// row-major im2col, the GEMM packing it) on odd shapes: output widths that are not
    /// multiples of the micro-kernel rows (blocks spanning lines and images), stride,
    /// dilation, every padding, groups, masks, chunks that split images.
    #[test]
    fn packed_im2col_forward_matches_unpacked() {
        use crate::gemm::{masked_matmul, matmul};
        let geoms = [
            Conv2dGeometry::new(3, 3, (9, 7), 5, (3, 3)).with_padding(Padding::Same),
            Conv2dGeometry::new(2, 4, (8, 11), 6, (3, 2))
                .with_stride((2, 3))
                .with_padding(Padding::Same)
                .with_dilation((1, 2))
                .with_groups(2),
            Conv2dGeometry::new(2, 6, (10, 13), 9, (2, 3))
                .with_dilation((2, 2))
                .with_padding(Padding::Explicit {
                    top: 1,
                    bottom: 0,
                    left: 2,
                    right: 3,
                })
                .with_groups(3),
            Conv2dGeometry::new(4, 8, (6, 5), 16, (3, 3)),
            Conv2dGeometry::new(1, 2, (1, 1), 3, (1, 1)),
        ];
        for (gi, geom) in geoms.iter().enumerate() {
            let p = geom.plan("test").unwrap();
            let x = values(geom.input_len(), 10 + gi as u64);
            let w = values(geom.weight_len(), 20 + gi as u64);
            let bias = values(geom.out_channels, 30 + gi as u64);
            let [kh, kw, cing, cout, groups] = geom.mask_dims();
            let mvals: Vec<f32> = values(geom.weight_len(), 40 + gi as u64)
                .iter()
                .map(|&v| if v > -0.3 { 1.0 } else { 0.0 })
                .collect();
            let mask = ConvMask::from_values(&mvals, (kh, kw), cing, cout, groups, TileSize::square(4)).unwrap();
            let lines = p.batch * p.oh;
            for m in [None, Some(&mask)] {
                for chunk in [1, 2, 5, lines] {
                    // The former forward.
                    let (k, cg) = (p.k(), p.cout_g());
                    let mut want = vec![0f32; geom.output_len().unwrap()];
                    let wgs = group_weights(&p, &w);
                    for l0 in (0..lines).step_by(chunk) {
                        let l1 = (l0 + chunk).min(lines);
                        let rows = (l1 - l0) * p.ow;
                        let (n0, n1) = images(&p, l0, l1);
                        for (g, wg) in wgs.iter().enumerate() {
                            let mut xt = vec![0f32; p.nhwc_len(chunk)];
                            let mut col = vec![0f32; rows * k];
                            let mut yg = vec![0f32; rows * cg];
                            to_nhwc(&p, &x, g, n0, n1, &mut xt);
                            im2col(&p, &xt, n0, l0, l1, &mut col);
                            let a = MatRef::new(&col, rows, k).unwrap();
                            let b = MatRef::new(wg, k, cg).unwrap();
                            let c = MatMut::new(&mut yg, rows, cg).unwrap();
                            match m.and_then(|mm| mm.group(g)) {
                                Some(tm) => masked_matmul(a, b, tm, c, Beta::Zero).unwrap(),
                                None => matmul(a, b, c, Beta::Zero).unwrap(),
                            }
                            scatter_out(&p, g, l0, l1, &yg, Some(&bias), &mut want);
                        }
                    }
                    let mut got = vec![f32::NAN; want.len()];
                    forward_chunked(&p, &x, &w, m, Some(&bias), &mut got, chunk).unwrap();
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "geometry {gi}, chunk {chunk}, mask {}",
                        m.is_some()
                    );
                }
            }
        }
    }

    /// Chunks that split images (and single lines) give the same result as one chunk, for
    /// every pass, masked and unmasked.
    #[test]
    fn chunking_does_not_change_results() {
        let geom = Conv2dGeometry::new(3, 4, (7, 6), 6, (3, 2))
            .with_stride((2, 1))
            .with_padding(Padding::Same)
            .with_dilation((1, 2))
            .with_groups(2);
        let p = geom.plan("test").unwrap();
        let x = values(geom.input_len(), 1);
        let w = values(geom.weight_len(), 2);
        let ylen = geom.output_len().unwrap();
        let dy = values(ylen, 3);
        let bias = values(6, 4);
        let mvals: Vec<f32> = values(geom.weight_len(), 5)
            .iter()
            .map(|&v| if v > 0.0 { 1.0 } else { 0.0 })
            .collect();
        let mask = ConvMask::from_values(&mvals, (3, 2), 2, 6, 2, TileSize::square(4)).unwrap();
        let lines = p.batch * p.oh;
        for m in [None, Some(&mask)] {
            let mut y_ref = vec![0f32; ylen];
            forward_chunked(&p, &x, &w, m, Some(&bias), &mut y_ref, lines).unwrap();
            let mut dx_ref = vec![0f32; x.len()];
            backward_input_chunked(&p, &dy, &w, m, None, &mut dx_ref, lines).unwrap();
            let mut dw_ref = vec![0f32; w.len()];
            backward_weight_chunked(&p, &x, &dy, m, &mut dw_ref, lines).unwrap();
            for chunk in [1, 2, 3, 5] {
                let mut y = vec![f32::NAN; ylen];
                forward_chunked(&p, &x, &w, m, Some(&bias), &mut y, chunk).unwrap();
                assert_eq!(y, y_ref, "forward, chunk {chunk}");
                let mut dx = vec![f32::NAN; x.len()];
                backward_input_chunked(&p, &dy, &w, m, None, &mut dx, chunk).unwrap();
                // An image split between chunks gets its two partial sums added separately.
                for (a, b) in dx.iter().zip(&dx_ref) {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "dx, chunk {chunk}: {a} vs {b}");
                }
                let mut dw = vec![f32::NAN; w.len()];
                backward_weight_chunked(&p, &x, &dy, m, &mut dw, chunk).unwrap();
                for (a, b) in dw.iter().zip(&dw_ref) {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "dw, chunk {chunk}: {a} vs {b}");
                }
            }
        }
    }
}
