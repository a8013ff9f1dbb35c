//! Batch normalisation over NCHW activations, per channel, with an affine transform.
//!
//! Over the `M = n·h·w` values of channel `c`:
//!
//! ```text
//! train:  μ = (1/M) Σ x,  σ² = (1/M) Σ (x − μ)²   (biased)
//!         x̂ = (x − μ)/√(σ² + ε),  y = γ x̂ + β
//!         running_mean ← (1 − m)·running_mean + m·μ
//!         running_var  ← (1 − m)·running_var  + m·σ²·M/(M − 1)   (unbiased)
//!         dx = (1/M)·(1/√(σ² + ε))·(M·dx̂ − Σ dx̂ − x̂·Σ dx̂·x̂),  dx̂ = g·γ
//! eval:   x̂ = (x − running_mean)/√(running_var + ε),  y = γ x̂ + β,  dx = g·γ/√(running_var + ε)
//! both:   dγ = Σ g·x̂,  dβ = Σ g
//! ```
//! This is PyTorch's `BatchNorm2d` convention (`momentum = 0.1` weights the *new* batch; Keras'
//! `momentum = 0.99` weights the old running value, i.e. PyTorch `m = 1 − keras_momentum`).
//!
//! # Shapes
//! `x (n, c, h, w)`, `gamma (c)`, `beta (c)` → `y (n, c, h, w)`; running statistics `[c]`.

use biokernels::device::NormLayout;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::ops::gpu_norm::NormStats;
use crate::shape::check_rank;
use crate::tensor::Tensor;

/// The non-trainable state of a batch-norm layer.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormState<T: Float = f32> {
    /// Running mean per channel.
    pub running_mean: Vec<T>,
    /// Running (unbiased) variance per channel.
    pub running_var: Vec<T>,
    /// Weight of the new batch statistics in the running update (PyTorch convention).
    pub momentum: f64,
    /// Added to the variance before the square root.
    pub eps: f64,
}

impl<T: Float> BatchNormState<T> {
    /// Running mean 0, running variance 1, momentum 0.1, ε = 1e-5 (PyTorch's defaults).
    pub fn new(channels: usize) -> Self {
        BatchNormState {
            running_mean: vec![T::ZERO; channels],
            running_var: vec![T::ONE; channels],
            momentum: 0.1,
            eps: 1e-5,
        }
    }
}

impl<T: Float> Graph<T> {
    /// Batch-norm 2d: batch statistics (and a running-stat update) in train mode, running
    /// statistics in eval mode. See the [module docs](self).
    ///
    /// # Errors
    /// [`Error::Rank`] unless `x` is 4-D, [`Error::ShapeMismatch`] when `gamma`, `beta` or the
    /// state do not have `c` entries, [`Error::InvalidArgument`] in train mode with a single
    /// value per channel.
    pub fn batch_norm2d(&self, x: &Var, gamma: &Var, beta: &Var, state: &mut BatchNormState<T>) -> Result<Var> {
        const OP: &str = "batch_norm2d";
        let (xt, gt) = self.get2_any(OP, x, gamma)?;
        let (_, bt) = self.get2_any(OP, x, beta)?;
        check_rank(OP, xt.shape(), 4)?;
        let (n, c, h, w) = (xt.shape()[0], xt.shape()[1], xt.shape()[2], xt.shape()[3]);
        for s in [
            gt.shape(),
            bt.shape(),
            &[state.running_mean.len()],
            &[state.running_var.len()],
        ] {
            if s != [c] {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: xt.shape().to_vec(),
                    rhs: s.to_vec(),
                });
            }
        }
        let hw = h * w;
        let m = n * hw;
        let train = self.is_training();
        if train && m < 2 {
            return Err(Error::InvalidArgument {
                op: OP,
                what: format!(
                    "training needs more than one value per channel, got shape {:?}",
                    xt.shape()
                ),
            });
        }
        if xt.is_cuda() {
            let layout = NormLayout {
                n,
                channels: c,
                hw,
                groups: None,
            };
            let from = if train {
                NormStats::BatchTrain(state)
            } else {
                NormStats::BatchEval(state)
            };
            return self.gpu_norm(OP, [x, gamma, beta], [xt, gt, bt], layout, from);
        }
        let xs = xt.as_slice()?;
        let idx = move |b: usize, ch: usize, k: usize| (b * c + ch) * hw + k;
        let eps = T::from_f64(state.eps);
        let mut mean = vec![T::ZERO; c];
        let mut invstd = vec![T::ZERO; c];
        for ch in 0..c {
            let (mu, var) = if train {
                let mf = T::from_usize(m);
                let mu = (0..n)
                    .flat_map(|b| (0..hw).map(move |k| (b, k)))
                    .map(|(b, k)| xs[idx(b, ch, k)])
                    .sum::<T>()
                    / mf;
                let var = (0..n)
                    .flat_map(|b| (0..hw).map(move |k| (b, k)))
                    .map(|(b, k)| {
                        let d = xs[idx(b, ch, k)] - mu;
                        d * d
                    })
                    .sum::<T>()
                    / mf;
                let mo = T::from_f64(state.momentum);
                let unbiased = var * mf / T::from_usize(m - 1);
                state.running_mean[ch] = (T::ONE - mo) * state.running_mean[ch] + mo * mu;
                state.running_var[ch] = (T::ONE - mo) * state.running_var[ch] + mo * unbiased;
                (mu, var)
            } else {
                (state.running_mean[ch], state.running_var[ch])
            };
            mean[ch] = mu;
            invstd[ch] = T::ONE / (var + eps).sqrt();
        }
        let (gs, bs) = (gt.as_slice()?, bt.as_slice()?);
        let mut xhat = vec![T::ZERO; xs.len()];
        let mut y = vec![T::ZERO; xs.len()];
        for b in 0..n {
            for ch in 0..c {
                for k in 0..hw {
                    let i = idx(b, ch, k);
                    xhat[i] = (xs[i] - mean[ch]) * invstd[ch];
                    y[i] = gs[ch] * xhat[i] + bs[ch];
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
                for b in 0..n {
                    for ch in 0..c {
                        for k in 0..hw {
                            let i = idx(b, ch, k);
                            dgamma[ch] += g[i] * xhat[i];
                            dbeta[ch] += g[i];
                        }
                    }
                }
                let dx = needs[0].then(|| {
                    let mut dx = vec![T::ZERO; g.len()];
                    let mf = T::from_usize(m);
                    for ch in 0..c {
                        // Σ dx̂ = γ·dβ and Σ dx̂·x̂ = γ·dγ.
                        let (s1, s2) = (gs[ch] * dbeta[ch], gs[ch] * dgamma[ch]);
                        for b in 0..n {
                            for k in 0..hw {
                                let i = idx(b, ch, k);
                                let dxhat = g[i] * gs[ch];
                                dx[i] = if train {
                                    invstd[ch] / mf * (mf * dxhat - s1 - xhat[i] * s2)
                                } else {
                                    dxhat * invstd[ch]
                                };
                            }
                        }
                    }
                    dx
                });
                Ok(vec![dx, needs[1].then_some(dgamma), needs[2].then_some(dbeta)])
            },
        ))
    }
}
