//! 2-D convolution and transposed convolution (NCHW), masked or not, through the
//! `biokernels::conv` im2col + masked-GEMM kernels (f32) or direct loops (f64).
//!
//! With stride `s`, dilation `d`, top/left padding `(pt, pl)` and `G` groups (`Cg` input and
//! `Og` output channels per group), output channel `o` of group `g = o / Og`:
//!
//! ```text
//! conv2d:           Y[n,o,y,x] = b[o] + Σ_{i,j,c<Cg} X[n, g·Cg+c, y·sh+i·dh−pt, x·sw+j·dw−pl] · (W⊙M)[i,j,c,o]
//!                   dX = convᵀ(dY, W⊙M),   dW = (col(X)ᵀ·dY) ⊙ M,   db[o] = Σ_{n,y,x} dY[n,o,y,x]
//! conv_transpose2d: the adjoint of conv2d from the layer's output to its input (PyTorch
//!                   ConvTranspose2d): Y[n, g·Og+c, y·sh+i·dh−pt, x·sw+j·dw−pl] += X[n,q,y,x]·(W⊙M)[i,j,c,q]
//!                   dX = conv(dY, W⊙M),     dW = (col(dY)ᵀ·X) ⊙ M,   db as above
//! ```
//!
//! Weights use the Keras layouts: `(kh, kw, C_in/G, C_out)` for `conv2d`,
//! `(kh, kw, C_out/G, C_in)` for `conv_transpose2d`; a [`ConvMask`] has the weight's shape (and
//! is shared by every tap or not). `dW` is computed only on the mask's support. Padding is
//! [`Padding::Valid`], Keras [`Padding::Same`] or [`Padding::Explicit`] (see
//! `biokernels::conv` for the exact output sizes).
//!
//! # Shapes
//! - `conv2d`: `x (N, C_in, H, W)`, `w (kh, kw, C_in/G, C_out)`, `bias (C_out)` →
//!   `(N, C_out, OH, OW)`.
//! - `conv_transpose2d`: `x (N, C_in, H, W)`, `w (kh, kw, C_out/G, C_in)`, `bias (C_out)` →
//!   `(N, C_out, OH, OW)`.

use std::sync::Arc;

pub use biokernels::conv::{Conv2dGeometry, ConvMask, ConvTranspose2dGeometry, Padding};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::ops::par;
use crate::shape::check_rank;
use crate::tensor::Tensor;

/// Stride, padding, dilation, groups (and, for the transposed convolution, output padding);
/// the channel counts and the kernel size come from the operands' shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dOptions {
    /// `(sh, sw)`.
    pub stride: (usize, usize),
    /// Spatial padding.
    pub padding: Padding,
    /// `(dh, dw)`.
    pub dilation: (usize, usize),
    /// Channel groups (must divide both channel counts).
    pub groups: usize,
    /// Extra rows/columns at the end of a transposed convolution's output (ignored by
    /// `conv2d`).
    pub output_padding: (usize, usize),
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: (1, 1),
            padding: Padding::Valid,
            dilation: (1, 1),
            groups: 1,
            output_padding: (0, 0),
        }
    }
}

impl Conv2dOptions {
    /// With stride `(sh, sw)`.
    pub fn with_stride(mut self, sh: usize, sw: usize) -> Self {
        self.stride = (sh, sw);
        self
    }
    /// With `padding`.
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }
    /// With dilation `(dh, dw)`.
    pub fn with_dilation(mut self, dh: usize, dw: usize) -> Self {
        self.dilation = (dh, dw);
        self
    }
    /// With `groups` groups.
    pub fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
    /// With output padding `(oh, ow)` (transposed convolution).
    pub fn with_output_padding(mut self, oh: usize, ow: usize) -> Self {
        self.output_padding = (oh, ow);
        self
    }
}

/// The geometry of a convolution or a transposed convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvGeometry {
    /// A convolution.
    Conv(Conv2dGeometry),
    /// A transposed convolution.
    Transpose(ConvTranspose2dGeometry),
}

/// The convolution relation `out[n,o,y,x] ← in[n, g·Cg+c, y·sh+i·dh−pt, x·sw+j·dw−pl]·w[i,j,c,o]`
/// on the *convolution* side (for a transposed convolution, `in` is the layer's output).
struct Relation {
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    pt: usize,
    pl: usize,
    groups: usize,
}

impl Relation {
    fn of(geom: &ConvGeometry) -> Result<Self> {
        Ok(match geom {
            ConvGeometry::Conv(g) => {
                let (oh, ow) = g.output_hw()?;
                let (pt, _, pl, _) = g.padding_amounts()?;
                Relation {
                    n: g.batch,
                    c_in: g.in_channels,
                    h: g.in_h,
                    w: g.in_w,
                    c_out: g.out_channels,
                    oh,
                    ow,
                    kh: g.kernel.0,
                    kw: g.kernel.1,
                    sh: g.stride.0,
                    sw: g.stride.1,
                    dh: g.dilation.0,
                    dw: g.dilation.1,
                    pt,
                    pl,
                    groups: g.groups,
                }
            }
            ConvGeometry::Transpose(g) => {
                let (h, w) = g.output_hw()?;
                let (pt, _, pl, _) = g.padding_amounts()?;
                Relation {
                    n: g.batch,
                    c_in: g.out_channels,
                    h,
                    w,
                    c_out: g.in_channels,
                    oh: g.in_h,
                    ow: g.in_w,
                    kh: g.kernel.0,
                    kw: g.kernel.1,
                    sh: g.stride.0,
                    sw: g.stride.1,
                    dh: g.dilation.0,
                    dw: g.dilation.1,
                    pt,
                    pl,
                    groups: g.groups,
                }
            }
        })
    }

    /// Calls `f(in_index, w_index, out_index)` for every kept term of the sum.
    fn visit(&self, mask: Option<&ConvMask>, mut f: impl FnMut(usize, usize, usize)) {
        let (cg, og) = (self.c_in / self.groups, self.c_out / self.groups);
        for n in 0..self.n {
            for o in 0..self.c_out {
                let g = o / og;
                for y in 0..self.oh {
                    for x in 0..self.ow {
                        let oi = ((n * self.c_out + o) * self.oh + y) * self.ow + x;
                        for i in 0..self.kh {
                            let iy = (y * self.sh + i * self.dh).wrapping_sub(self.pt);
                            if iy >= self.h {
                                continue;
                            }
                            for j in 0..self.kw {
                                let ix = (x * self.sw + j * self.dw).wrapping_sub(self.pl);
                                if ix >= self.w {
                                    continue;
                                }
                                for c in 0..cg {
                                    if mask.is_some_and(|m| !m.get(i, j, c, o)) {
                                        continue;
                                    }
                                    let ii = ((n * self.c_in + g * cg + c) * self.h + iy) * self.w + ix;
                                    let wi = ((i * self.kw + j) * cg + c) * self.c_out + o;
                                    f(ii, wi, oi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn in_len(&self) -> usize {
        self.n * self.c_in * self.h * self.w
    }
    fn out_len(&self) -> usize {
        self.n * self.c_out * self.oh * self.ow
    }
    fn w_len(&self) -> usize {
        self.kh * self.kw * (self.c_in / self.groups) * self.c_out
    }
}

/// Direct-loop reference of the three convolution products (used by `f64`).
pub(crate) mod reference {
    use super::*;

    /// Layer forward without bias.
    pub fn forward<T: Float>(geom: &ConvGeometry, x: &[T], w: &[T], mask: Option<&ConvMask>) -> Result<Vec<T>> {
        let r = Relation::of(geom)?;
        Ok(match geom {
            ConvGeometry::Conv(_) => {
                let mut y = vec![T::ZERO; r.out_len()];
                r.visit(mask, |ii, wi, oi| y[oi] += x[ii] * w[wi]);
                y
            }
            ConvGeometry::Transpose(_) => {
                let mut y = vec![T::ZERO; r.in_len()];
                r.visit(mask, |ii, wi, oi| y[ii] += x[oi] * w[wi]);
                y
            }
        })
    }

    /// Layer input gradient.
    pub fn backward_input<T: Float>(geom: &ConvGeometry, dy: &[T], w: &[T], mask: Option<&ConvMask>) -> Result<Vec<T>> {
        let r = Relation::of(geom)?;
        Ok(match geom {
            ConvGeometry::Conv(_) => {
                let mut dx = vec![T::ZERO; r.in_len()];
                r.visit(mask, |ii, wi, oi| dx[ii] += dy[oi] * w[wi]);
                dx
            }
            ConvGeometry::Transpose(_) => {
                let mut dx = vec![T::ZERO; r.out_len()];
                r.visit(mask, |ii, wi, oi| dx[oi] += dy[ii] * w[wi]);
                dx
            }
        })
    }

    /// Layer weight gradient (0 off the mask).
    pub fn backward_weight<T: Float>(
        geom: &ConvGeometry,
        x: &[T],
        dy: &[T],
        mask: Option<&ConvMask>,
    ) -> Result<Vec<T>> {
        let r = Relation::of(geom)?;
        let mut dw = vec![T::ZERO; r.w_len()];
        match geom {
            ConvGeometry::Conv(_) => r.visit(mask, |ii, wi, oi| dw[wi] += x[ii] * dy[oi]),
            ConvGeometry::Transpose(_) => r.visit(mask, |ii, wi, oi| dw[wi] += dy[ii] * x[oi]),
        }
        Ok(dw)
    }
}

impl<T: Float> Graph<T> {
    /// 2-D convolution, optionally masked and with a bias. See the [module docs](self).
    ///
    /// # Errors
    /// [`Error::Rank`] unless `x` and `w` are 4-D, [`Error::ShapeMismatch`] when the channels
    /// of `x` and `w`, the bias or the mask do not fit, [`Error::InvalidArgument`] for zero
    /// groups, and the kernels' geometry errors ([`Error::Kernel`]) for an impossible stride,
    /// padding or dilation.
    pub fn conv2d(
        &self,
        x: &Var,
        w: &Var,
        bias: Option<&Var>,
        opts: &Conv2dOptions,
        mask: Option<&Arc<ConvMask>>,
    ) -> Result<Var> {
        self.conv("conv2d", x, w, bias, opts, mask, false)
    }

    /// 2-D transposed convolution (PyTorch `ConvTranspose2d`), optionally masked and with a
    /// bias. See the [module docs](self).
    ///
    /// # Errors
    /// As [`Graph::conv2d`].
    pub fn conv_transpose2d(
        &self,
        x: &Var,
        w: &Var,
        bias: Option<&Var>,
        opts: &Conv2dOptions,
        mask: Option<&Arc<ConvMask>>,
    ) -> Result<Var> {
        self.conv("conv_transpose2d", x, w, bias, opts, mask, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &self,
        op: &'static str,
        x: &Var,
        w: &Var,
        bias: Option<&Var>,
        opts: &Conv2dOptions,
        mask: Option<&Arc<ConvMask>>,
        transpose: bool,
    ) -> Result<Var> {
        let (xt, wt) = self.get2_any(op, x, w)?;
        check_rank(op, xt.shape(), 4)?;
        check_rank(op, wt.shape(), 4)?;
        if opts.groups == 0 {
            return Err(Error::InvalidArgument {
                op,
                what: "groups must be at least 1".into(),
            });
        }
        let (xs, ws) = (xt.shape(), wt.shape());
        let (n, cin, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
        let kernel = (ws[0], ws[1]);
        let mismatch = || Error::ShapeMismatch {
            op,
            lhs: xs.to_vec(),
            rhs: ws.to_vec(),
        };
        let (geom, cout) = if transpose {
            if ws[3] != cin {
                return Err(mismatch());
            }
            let cout = ws[2] * opts.groups;
            let g = ConvTranspose2dGeometry::new(n, cin, (h, wd), cout, kernel)
                .with_stride(opts.stride)
                .with_padding(opts.padding)
                .with_output_padding(opts.output_padding)
                .with_dilation(opts.dilation)
                .with_groups(opts.groups);
            g.validate()?;
            (ConvGeometry::Transpose(g), cout)
        } else {
            if ws[2] * opts.groups != cin {
                return Err(mismatch());
            }
            let cout = ws[3];
            let g = Conv2dGeometry::new(n, cin, (h, wd), cout, kernel)
                .with_stride(opts.stride)
                .with_padding(opts.padding)
                .with_dilation(opts.dilation)
                .with_groups(opts.groups);
            g.validate()?;
            (ConvGeometry::Conv(g), cout)
        };
        let (mask_dims, out_shape) = match &geom {
            ConvGeometry::Conv(g) => (g.mask_dims(), g.output_shape()?),
            ConvGeometry::Transpose(g) => (g.mask_dims(), g.output_shape()?),
        };
        if let Some(m) = mask {
            if m.dims() != mask_dims {
                return Err(Error::ShapeMismatch {
                    op,
                    lhs: ws.to_vec(),
                    rhs: m.dims().to_vec(),
                });
            }
        }
        let mut parents = vec![*x, *w];
        let bt = match bias {
            Some(b) => {
                let (_, bt) = self.get2_any(op, x, b)?;
                if bt.shape() != [cout] {
                    return Err(Error::ShapeMismatch {
                        op,
                        lhs: ws.to_vec(),
                        rhs: bt.shape().to_vec(),
                    });
                }
                parents.push(*b);
                Some(bt)
            }
            None => None,
        };
        let mask = mask.cloned();
        if xt.is_cuda() {
            return self.gpu_conv(op, geom, mask_dims, out_shape.to_vec(), parents, xt, wt, bt, mask, cout);
        }
        let mut y = T::conv_forward(&geom, xt.as_slice()?, wt.as_slice()?, mask.as_deref())?;
        let plane = out_shape[2] * out_shape[3];
        if let Some(bt) = &bt {
            let b = bt.as_slice()?;
            // One bias value per (image, channel) plane: no per-element index arithmetic.
            let add = |(k, chunk): (usize, &mut [T])| {
                let bv = b[k % cout];
                for v in chunk {
                    *v += bv;
                }
            };
            if y.len() >= 2 * par::PAR_MIN {
                y.par_chunks_mut(plane.max(1)).enumerate().for_each(add);
            } else {
                y.chunks_mut(plane.max(1)).enumerate().for_each(add);
            }
        }
        Ok(
            self.push(Tensor::from_parts(y, out_shape.to_vec()), &parents, move |g, needs| {
                let m = mask.as_deref();
                let dx = if needs[0] {
                    Some(T::conv_backward_input(&geom, g, wt.as_slice()?, m)?)
                } else {
                    None
                };
                let dw = if needs[1] {
                    Some(T::conv_backward_weight(&geom, xt.as_slice()?, g, m)?)
                } else {
                    None
                };
                let mut out = vec![dx, dw];
                if needs.len() == 3 {
                    out.push(needs[2].then(|| bias_gradient(g, cout, plane)));
                }
                Ok(out)
            }),
        )
    }
}

/// Lanes of [`bias_gradient`]: channels summed side by side.
const DB_LANES: usize = 8;

/// The bias gradient of a convolution: per channel `c`, the sums of its planes of `g`
/// (`(N, cout, plane)`), each plane summed in order from 0 and the planes added image by image
/// (the same order for any number of threads). A plane's sum is one chain of dependent adds;
/// [`DB_LANES`] channels run side by side so their chains overlap (one at a time, the adds'
/// latency made this 4 % of a CNN training step), each in exactly its own order.
fn bias_gradient<T: Float>(g: &[T], cout: usize, plane: usize) -> Vec<T> {
    let images = g.len() / (cout * plane).max(1);
    let lanes = |c0: usize| -> [T; DB_LANES] {
        let width = DB_LANES.min(cout - c0);
        let mut db = [T::ZERO; DB_LANES];
        for b in 0..images {
            // Lanes past the last channel repeat it; their sums are dropped.
            let rows: [&[T]; DB_LANES] =
                std::array::from_fn(|l| &g[(b * cout + c0 + l.min(width - 1)) * plane..][..plane]);
            let mut sum = [T::ZERO; DB_LANES];
            for i in 0..plane {
                for (s, row) in sum.iter_mut().zip(&rows) {
                    *s += row[i];
                }
            }
            for (d, s) in db.iter_mut().zip(sum) {
                *d += s;
            }
        }
        db
    };
    let groups: Vec<usize> = (0..cout).step_by(DB_LANES).collect();
    let sums: Vec<[T; DB_LANES]> = if g.len() >= 2 * par::PAR_MIN {
        groups.par_iter().map(|&c0| lanes(c0)).collect()
    } else {
        groups.iter().map(|&c0| lanes(c0)).collect()
    };
    sums.iter().flatten().take(cout).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On an output large enough for the parallel bias paths: the bias adds `b[c]` to every
    /// value of channel `c`, and its gradient is the channel sum of the output gradient.
    #[test]
    fn bias_gradient_sums_in_the_documented_order() {
        // Non-integer terms of mixed magnitude, so another order would change the bits.
        for (images, cout, plane) in [(1, 1, 1), (3, 7, 5), (2, 8, 33), (3, 9, 17), (2, 17, 40)] {
            let g: Vec<f32> = (0..images * cout * plane)
                .map(|i| ((i * 7919) % 1009) as f32 * 1.37e-3 * if i % 3 == 0 { 1e4 } else { 1.0 } - 0.61)
                .collect();
            let got = bias_gradient(&g, cout, plane);
            for (c, got) in got.iter().enumerate() {
                let want = (0..images).fold(0.0f32, |db, b| {
                    db + g[(b * cout + c) * plane..][..plane]
                        .iter()
                        .fold(0.0f32, |acc, &v| acc + v)
                });
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{images} × {cout} × {plane}, channel {c}"
                );
            }
        }
    }

    #[test]
    fn bias_add_and_gradient_on_large_outputs() {
        let (n, cin, hw, cout) = (3, 2, 50, 9);
        assert!(n * cout * hw * hw >= 2 * par::PAR_MIN);
        let x: Vec<f32> = (0..n * cin * hw * hw)
            .map(|i| ((i * 7) % 11) as f32 * 0.1 - 0.5)
            .collect();
        let w: Vec<f32> = (0..cin * cout).map(|i| ((i * 5) % 7) as f32 * 0.25 - 0.75).collect();
        let b: Vec<f32> = (0..cout).map(|c| c as f32 * 1.5 - 4.0).collect();
        let g = Graph::new();
        let xv = g.input(Tensor::from_vec(x, &[n, cin, hw, hw]).unwrap());
        let wv = g.param(Tensor::from_vec(w, &[1, 1, cin, cout]).unwrap());
        let bv = g.param(Tensor::from_vec(b.clone(), &[cout]).unwrap());
        let opts = Conv2dOptions::default();
        let with = g.conv2d(&xv, &wv, Some(&bv), &opts, None).unwrap();
        let without = g.conv2d(&xv, &wv, None, &opts, None).unwrap();
        let (yw, yo) = (
            g.value(&with).unwrap().to_vec().unwrap(),
            g.value(&without).unwrap().to_vec().unwrap(),
        );
        let plane = hw * hw;
        for (i, (a, o)) in yw.iter().zip(&yo).enumerate() {
            assert_eq!(*a, *o + b[(i / plane) % cout], "output {i}");
        }
        let dy: Vec<f32> = (0..yw.len()).map(|i| ((i * 3) % 13) as f32 - 6.0).collect();
        let grads = g
            .backward_with(&with, Tensor::from_vec(dy.clone(), &[n, cout, hw, hw]).unwrap())
            .unwrap();
        let db = grads.slice(&bv).unwrap();
        for (c, &got) in db.iter().enumerate() {
            // Integer-valued terms: every summation order gives the exact sum.
            let want: f32 = (0..n)
                .map(|k| dy[(k * cout + c) * plane..][..plane].iter().sum::<f32>())
                .sum();
            assert_eq!(got, want, "channel {c}");
        }
    }
}
