//! Group normalisation over NCHW activations (Keras `GroupNormalization`, PyTorch `GroupNorm`).
//!
//! The `c` channels are split into `G` consecutive groups of `c/G`; each sample's group is
//! normalised over its `M = (c/G)·h·w` values, then every channel gets its own affine transform:
//!
//! ```text
//! μ = (1/M) Σ x,  σ² = (1/M) Σ (x − μ)²   (biased, per sample and group)
//! x̂ = (x − μ)/√(σ² + ε),  y = γ_c x̂ + β_c
//! dx = (1/M)·(1/√(σ² + ε))·(M·dx̂ − Σ dx̂ − x̂·Σ dx̂·x̂),  dx̂ = g·γ_c   (sums over the group)
//! dγ_c = Σ_{n,h,w} g·x̂,  dβ_c = Σ_{n,h,w} g
//! ```
//! There are no running statistics: training and evaluation compute the same thing. Keras'
//! default `ε` is `1e-3`, PyTorch's `1e-5`.
//!
//! # Shapes
//! `x (n, c, h, w)`, `gamma (c)`, `beta (c)` → `y (n, c, h, w)`; `c` divisible by `groups`.

use biokernels::device::NormLayout;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::ops::gpu_norm::NormStats;
use crate::shape::check_rank;
use crate::tensor::Tensor;

impl<T: Float> Graph<T> {
    /// Group norm with `groups` channel groups and `eps` added to the variance. See the
    /// [module docs](self).
    ///
    /// # Errors
    /// [`Error::Rank`] unless `x` is 4-D, [`Error::ShapeMismatch`] when `gamma` or `beta` do not
    /// have `c` entries, [`Error::InvalidArgument`] when `groups` is 0 or does not divide `c`, or
    /// `eps` is not positive and finite.
    pub fn group_norm(&self, x: &Var, gamma: &Var, beta: &Var, groups: usize, eps: f64) -> Result<Var> {
        const OP: &str = "group_norm";
        let (xt, gt) = self.get2_any(OP, x, gamma)?;
        let (_, bt) = self.get2_any(OP, x, beta)?;
        check_rank(OP, xt.shape(), 4)?;
        let (n, c, h, w) = (xt.shape()[0], xt.shape()[1], xt.shape()[2], xt.shape()[3]);
        for s in [gt.shape(), bt.shape()] {
            if s != [c] {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: xt.shape().to_vec(),
                    rhs: s.to_vec(),
                });
            }
        }
        if groups == 0 || c % groups != 0 {
            return Err(Error::InvalidArgument {
                op: OP,
                what: format!("groups = {groups} must be positive and divide the {c} channels"),
            });
        }
        if !(eps.is_finite() && eps > 0.0) {
            return Err(Error::InvalidArgument {
                op: OP,
                what: format!("eps = {eps} must be positive and finite"),
            });
        }
        let hw = h * w;
        if xt.is_cuda() {
            let layout = NormLayout {
                n,
                channels: c,
                hw,
                groups: Some(groups),
            };
            return self.gpu_norm(OP, [x, gamma, beta], [xt, gt, bt], layout, NormStats::Group(eps));
        }
        let cg = c / groups;
        // One group of one sample is a contiguous run of `cg·hw` values in NCHW.
        let m = cg * hw;
        let xs = xt.as_slice()?;
        let (gs, bs) = (gt.as_slice()?, bt.as_slice()?);
        let eps_t = T::from_f64(eps);
        let mut xhat = vec![T::ZERO; xs.len()];
        let mut y = vec![T::ZERO; xs.len()];
        let mut invstd = vec![T::ZERO; n * groups];
        if m > 0 {
            let mf = T::from_usize(m);
            for (k, (run, (xh, yr))) in xs.chunks(m).zip(xhat.chunks_mut(m).zip(y.chunks_mut(m))).enumerate() {
                let mu = run.iter().copied().sum::<T>() / mf;
                let var = run.iter().map(|&v| (v - mu) * (v - mu)).sum::<T>() / mf;
                let inv = T::ONE / (var + eps_t).sqrt();
                invstd[k] = inv;
                let first_channel = (k % groups) * cg;
                for (i, ((&v, o), out)) in run.iter().zip(xh.iter_mut()).zip(yr.iter_mut()).enumerate() {
                    let ch = first_channel + i / hw;
                    *o = (v - mu) * inv;
                    *out = gs[ch] * *o + bs[ch];
                }
            }
        }
        Ok(self.push(
            Tensor::from_parts(y, xt.shape().to_vec()),
            &[*x, *gamma, *beta],
            move |g, needs| {
                let gs = gt.as_slice()?;
                let mut dgamma = vec![T::ZERO; c];
                let mut dbeta = vec![T::ZERO; c];
                for (i, (&gv, &xh)) in g.iter().zip(&xhat).enumerate() {
                    let ch = (i / hw) % c;
                    dgamma[ch] += gv * xh;
                    dbeta[ch] += gv;
                }
                let dx = needs[0].then(|| {
                    let mut dx = vec![T::ZERO; g.len()];
                    if m == 0 {
                        return dx;
                    }
                    let mf = T::from_usize(m);
                    for (k, ((gr, xh), dr)) in g.chunks(m).zip(xhat.chunks(m)).zip(dx.chunks_mut(m)).enumerate() {
                        let first_channel = (k % groups) * cg;
                        let dxhat = |i: usize| gr[i] * gs[first_channel + i / hw];
                        let (mut s1, mut s2) = (T::ZERO, T::ZERO);
                        for (i, &xv) in xh.iter().enumerate() {
                            let d = dxhat(i);
                            s1 += d;
                            s2 += d * xv;
                        }
                        let scale = invstd[k] / mf;
                        for (i, o) in dr.iter_mut().enumerate() {
                            *o = scale * (mf * dxhat(i) - s1 - xh[i] * s2);
                        }
                    }
                    dx
                });
                Ok(vec![dx, needs[1].then_some(dgamma), needs[2].then_some(dbeta)])
            },
        ))
    }
}
