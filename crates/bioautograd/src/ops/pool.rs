//! 2-D max and average pooling over NCHW activations.
//!
//! With kernel `(kh, kw)`, stride `(sh, sw)` and zero padding `(ph, pw)`, output pixel `(i, j)`
//! covers input rows `i·sh − ph .. i·sh − ph + kh` and columns `j·sw − pw .. j·sw − pw + kw`:
//!
//! ```text
//! max_pool2d:  y = max over the window (padding counts as −∞)   dx[argmax] += g
//! avg_pool2d:  y = (1/(kh·kw)) Σ window (padding counts as 0)   dx[window] += g/(kh·kw)
//! ```
//! Average pooling divides by the full window, padding included (PyTorch's default
//! `count_include_pad=True`). Ties in max pooling go to the first maximum in row-major window
//! order.
//!
//! # Shapes
//! `x (n, c, h, w)` → `(n, c, (h + 2ph − kh)/sh + 1, (w + 2pw − kw)/sw + 1)`.

use crate::error::{Error, Result};
use crate::float::Float;
use rayon::prelude::*;

use crate::graph::{Graph, Var};
use crate::ops::par;
use crate::shape::check_rank;
use crate::tensor::Tensor;

/// Geometry of a 2-D pooling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool2d {
    /// `(kh, kw)`.
    pub kernel: [usize; 2],
    /// `(sh, sw)`.
    pub stride: [usize; 2],
    /// `(ph, pw)`: zero padding on each side; at most half the kernel.
    pub padding: [usize; 2],
}

impl Pool2d {
    /// A `k × k` window with stride `k` and no padding.
    pub fn new(k: usize) -> Self {
        Pool2d {
            kernel: [k, k],
            stride: [k, k],
            padding: [0, 0],
        }
    }

    /// With stride `(sh, sw)`.
    pub fn with_stride(mut self, sh: usize, sw: usize) -> Self {
        self.stride = [sh, sw];
        self
    }

    /// With padding `(ph, pw)`.
    pub fn with_padding(mut self, ph: usize, pw: usize) -> Self {
        self.padding = [ph, pw];
        self
    }

    /// The output `(oh, ow)` for an `(h, w)` input.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero kernel or stride, padding over half the kernel,
    /// or a window larger than the padded input.
    pub fn output_hw(&self, op: &'static str, h: usize, w: usize) -> Result<(usize, usize)> {
        let bad = |what: String| Err(Error::InvalidArgument { op, what });
        let ([kh, kw], [sh, sw], [ph, pw]) = (self.kernel, self.stride, self.padding);
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 {
            return bad(format!(
                "kernel {:?} and stride {:?} must be positive",
                self.kernel, self.stride
            ));
        }
        if 2 * ph > kh || 2 * pw > kw {
            return bad(format!(
                "padding {:?} exceeds half the kernel {:?}",
                self.padding, self.kernel
            ));
        }
        if h + 2 * ph < kh || w + 2 * pw < kw {
            return bad(format!(
                "kernel {:?} larger than the padded input ({h}, {w})",
                self.kernel
            ));
        }
        Ok(((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1))
    }
}

/// The interior max-pool loop for a 2 × 2 window (the CNNs' pooling), with the window
/// unrolled: the same comparisons in the same order (the first strict maximum in row-major
/// order wins, as in the general loop), without the loop overhead that made pooling 5 % of a
/// training step.
fn max_2x2<T: Float>(
    plane: &[T],
    w: usize,
    (oh, ow): (usize, usize),
    (sh, sw): (usize, usize),
    base: usize,
    yp: &mut [T],
    ap: &mut [usize],
) {
    for i in 0..oh {
        let top = i * sh * w;
        let (r0, r1) = (&plane[top..top + w], &plane[top + w..top + 2 * w]);
        for ((j, y), a) in yp[i * ow..(i + 1) * ow]
            .iter_mut()
            .enumerate()
            .zip(&mut ap[i * ow..(i + 1) * ow])
        {
            let s = j * sw;
            let (mut best, mut at) = (r0[s], s);
            for (v, off) in [(r0[s + 1], s + 1), (r1[s], w + s), (r1[s + 1], w + s + 1)] {
                let gt = v > best;
                best = if gt { v } else { best };
                at = if gt { off } else { at };
            }
            *y = best;
            *a = base + top + at;
        }
    }
}

impl<T: Float> Graph<T> {
    /// Max pooling. See the [module docs](self).
    ///
    /// # Errors
    /// [`Error::Rank`] unless `x` is 4-D, and the errors of [`Pool2d::output_hw`].
    pub fn max_pool2d(&self, x: &Var, p: Pool2d) -> Result<Var> {
        self.pool("max_pool2d", x, p, true)
    }

    /// Average pooling (padding counted in the divisor). See the [module docs](self).
    ///
    /// # Errors
    /// As [`Graph::max_pool2d`].
    pub fn avg_pool2d(&self, x: &Var, p: Pool2d) -> Result<Var> {
        self.pool("avg_pool2d", x, p, false)
    }

    fn pool(&self, op: &'static str, x: &Var, p: Pool2d, max: bool) -> Result<Var> {
        let xt = self.get_any(op, x)?;
        check_rank(op, xt.shape(), 4)?;
        let (n, c, h, w) = (xt.shape()[0], xt.shape()[1], xt.shape()[2], xt.shape()[3]);
        let (oh, ow) = p.output_hw(op, h, w)?;
        let ([kh, kw], [sh, sw], [ph, pw]) = (p.kernel, p.stride, p.padding);
        if xt.is_cuda() {
            let geom = ([n, c, h, w], [kh, kw], [sh, sw], [ph, pw]);
            return self.gpu_pool(op, x, xt, geom, max, vec![n, c, oh, ow]);
        }
        let xs = xt.as_slice()?;
        let planes = n * c;
        let inv = T::ONE / T::from_usize(kh * kw);
        let out_plane = oh * ow;
        let mut y = vec![T::ZERO; planes * out_plane];
        // Max: the flat input index of each output's maximum (usize::MAX: all padding).
        let mut arg = vec![0usize; if max { planes * out_plane } else { 0 }];
        // One input plane into its output plane (and argmax plane); planes are independent.
        // Without padding every window lies inside the plane: no bounds tests, and max pooling
        // starts from the window's first value (the rule below also takes it unconditionally).
        let interior = ph == 0 && pw == 0;
        let pool_plane = |pl: usize, yp: &mut [T], ap: &mut [usize]| {
            let base = pl * h * w;
            if interior && max && (kh, kw) == (2, 2) {
                max_2x2(&xs[base..base + h * w], w, (oh, ow), (sh, sw), base, yp, ap);
                return;
            }
            if interior && max {
                let plane = &xs[base..base + h * w];
                for i in 0..oh {
                    for j in 0..ow {
                        let first = i * sh * w + j * sw;
                        let (mut best, mut best_at) = (plane[first], first);
                        for di in 0..kh {
                            let row = &plane[first + di * w..][..kw];
                            for (dj, &v) in row.iter().enumerate() {
                                // Branch-free select: on random data `v > best` is a coin
                                // flip, and mispredicted branches cost more than the loads.
                                let gt = v > best;
                                best = if gt { v } else { best };
                                best_at = if gt { first + di * w + dj } else { best_at };
                            }
                        }
                        yp[i * ow + j] = best;
                        ap[i * ow + j] = base + best_at;
                    }
                }
                return;
            }
            for i in 0..oh {
                for j in 0..ow {
                    let mut best = T::NEG_INFINITY;
                    let mut best_at = usize::MAX;
                    let mut sum = T::ZERO;
                    for di in 0..kh {
                        let r = (i * sh + di).wrapping_sub(ph);
                        if r >= h {
                            continue;
                        }
                        let row = &xs[base + r * w..][..w];
                        for dj in 0..kw {
                            let s = (j * sw + dj).wrapping_sub(pw);
                            if s >= w {
                                continue;
                            }
                            let v = row[s];
                            if max {
                                if best_at == usize::MAX || v > best {
                                    best = v;
                                    best_at = base + r * w + s;
                                }
                            } else {
                                sum += v;
                            }
                        }
                    }
                    if max {
                        yp[i * ow + j] = best;
                        ap[i * ow + j] = best_at;
                    } else {
                        yp[i * ow + j] = sum * inv;
                    }
                }
            }
        };
        let parallel = planes * out_plane >= 2 * par::PAR_MIN && out_plane > 0;
        match (max, parallel) {
            (true, true) => y
                .par_chunks_mut(out_plane)
                .zip(arg.par_chunks_mut(out_plane))
                .enumerate()
                .for_each(|(pl, (yp, ap))| pool_plane(pl, yp, ap)),
            (false, true) => y
                .par_chunks_mut(out_plane)
                .enumerate()
                .for_each(|(pl, yp)| pool_plane(pl, yp, &mut [])),
            (true, false) => y
                .chunks_mut(out_plane.max(1))
                .zip(arg.chunks_mut(out_plane.max(1)))
                .enumerate()
                .for_each(|(pl, (yp, ap))| pool_plane(pl, yp, ap)),
            (false, false) => y
                .chunks_mut(out_plane.max(1))
                .enumerate()
                .for_each(|(pl, yp)| pool_plane(pl, yp, &mut [])),
        }
        let n_in = xt.numel();
        Ok(
            self.push(Tensor::from_parts(y, vec![n, c, oh, ow]), &[*x], move |g, _| {
                let mut dx = vec![T::ZERO; n_in];
                if max {
                    // Each plane's maxima lie in its own input plane, so planes scatter
                    // independently (in the same order within a plane as one thread would).
                    let in_plane = h * w;
                    let scatter = |pl: usize, dxp: &mut [T]| {
                        let at = pl * out_plane;
                        for (&a, &gv) in arg[at..at + out_plane].iter().zip(&g[at..at + out_plane]) {
                            if a != usize::MAX {
                                dxp[a - pl * in_plane] += gv;
                            }
                        }
                    };
                    if in_plane > 0 && out_plane > 0 {
                        if n_in >= 2 * par::PAR_MIN {
                            dx.par_chunks_mut(in_plane)
                                .enumerate()
                                .for_each(|(pl, dxp)| scatter(pl, dxp));
                        } else {
                            dx.chunks_mut(in_plane)
                                .enumerate()
                                .for_each(|(pl, dxp)| scatter(pl, dxp));
                        }
                    }
                    return Ok(vec![Some(dx)]);
                }
                for pl in 0..planes {
                    let base = pl * h * w;
                    for i in 0..oh {
                        for j in 0..ow {
                            let gv = g[(pl * oh + i) * ow + j] * inv;
                            for di in 0..kh {
                                let r = (i * sh + di).wrapping_sub(ph);
                                if r >= h {
                                    continue;
                                }
                                for dj in 0..kw {
                                    let s = (j * sw + dj).wrapping_sub(pw);
                                    if s < w {
                                        dx[base + r * w + s] += gv;
                                    }
                                }
                            }
                        }
                    }
                }
                Ok(vec![Some(dx)])
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Max pooling by the definition: the first maximum in row-major window order, a NaN only
    /// when it is the window's first value (`v > best` is false for NaN either way).
    fn naive_max(x: &[f32], [n, c, h, w]: [usize; 4], p: Pool2d) -> (Vec<f32>, Vec<usize>) {
        let (oh, ow) = p.output_hw("test", h, w).unwrap();
        let (mut y, mut arg) = (Vec::new(), Vec::new());
        for pl in 0..n * c {
            for i in 0..oh {
                for j in 0..ow {
                    let mut best: Option<(f32, usize)> = None;
                    for di in 0..p.kernel[0] {
                        for dj in 0..p.kernel[1] {
                            let (r, s) = (i * p.stride[0] + di, j * p.stride[1] + dj);
                            if r < p.padding[0] || s < p.padding[1] || r - p.padding[0] >= h || s - p.padding[1] >= w {
                                continue;
                            }
                            let at = pl * h * w + (r - p.padding[0]) * w + s - p.padding[1];
                            if best.is_none_or(|(b, _)| x[at] > b) {
                                best = Some((x[at], at));
                            }
                        }
                    }
                    let (b, at) = best.unwrap();
                    y.push(b);
                    arg.push(at);
                }
            }
        }
        (y, arg)
    }

    #[test]
    fn max_pool_matches_the_definition_with_ties_nans_and_every_path() {
        // Small values from a short range give many ties; a few NaNs sit at window starts and
        // inside windows. Sizes: below and above the parallel threshold, odd sides, overlapping
        // windows (3×3 stride 2), padding (the general path).
        let cases = [
            ([1, 3, 7, 9], Pool2d::new(2)),
            ([2, 8, 130, 131], Pool2d::new(2)),
            ([2, 3, 9, 11], Pool2d::new(3).with_stride(2, 2)),
            ([2, 8, 131, 130], Pool2d::new(3).with_stride(2, 2).with_padding(1, 1)),
        ];
        for (dims, p) in cases {
            let len: usize = dims.iter().product();
            let x: Vec<f32> = (0..len)
                .map(|i| if i % 37 == 5 { f32::NAN } else { ((i * 7919) % 5) as f32 })
                .collect();
            let (want_y, want_arg) = naive_max(&x, dims, p);
            let g: Graph<f32> = Graph::new();
            let xv = g.param(Tensor::from_vec(x.clone(), &dims).unwrap());
            let y = g.max_pool2d(&xv, p).unwrap();
            let got = g.value(&y).unwrap().to_vec().unwrap();
            assert_eq!(got.len(), want_y.len());
            for (k, (a, b)) in got.iter().zip(&want_y).enumerate() {
                assert!(a.to_bits() == b.to_bits(), "{dims:?} {p:?} output {k}: {a} vs {b}");
            }
            // The gradient lands on the argmax of each window (summed where windows overlap).
            let ones = Tensor::from_vec(vec![1.0; want_y.len()], g.value(&y).unwrap().shape()).unwrap();
            let grads = g.backward_with(&y, ones).unwrap();
            let mut want_dx = vec![0.0f32; len];
            for &a in &want_arg {
                want_dx[a] += 1.0;
            }
            assert_eq!(grads.slice(&xv).unwrap(), &want_dx[..], "{dims:?} {p:?}");
        }
    }
}
