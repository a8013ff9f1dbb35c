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
use crate::graph::{Graph, Var};
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
            // The device kernel pools without padding (Keras `padding="valid"`).
            if !max || ph != 0 || pw != 0 {
                return Err(Error::UnsupportedOnDevice {
                    op,
                    device: xt.device(),
                });
            }
            return self.gpu_max_pool(op, x, xt, [n, c, h, w], [kh, kw], [sh, sw], vec![n, c, oh, ow]);
        }
        let xs = xt.as_slice()?;
        let planes = n * c;
        let inv = T::ONE / T::from_usize(kh * kw);
        let mut y = Vec::with_capacity(planes * oh * ow);
        // Max: the flat input index of each output's maximum (usize::MAX: all padding).
        let mut arg = Vec::with_capacity(if max { planes * oh * ow } else { 0 });
        for pl in 0..planes {
            let base = pl * h * w;
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
                        for dj in 0..kw {
                            let s = (j * sw + dj).wrapping_sub(pw);
                            if s >= w {
                                continue;
                            }
                            let v = xs[base + r * w + s];
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
                        y.push(best);
                        arg.push(best_at);
                    } else {
                        y.push(sum * inv);
                    }
                }
            }
        }
        let n_in = xt.numel();
        Ok(
            self.push(Tensor::from_parts(y, vec![n, c, oh, ow]), &[*x], move |g, _| {
                let mut dx = vec![T::ZERO; n_in];
                if max {
                    for (&a, &gv) in arg.iter().zip(g) {
                        if a != usize::MAX {
                            dx[a] += gv;
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
