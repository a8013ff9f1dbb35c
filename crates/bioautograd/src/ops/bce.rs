//! Binary cross-entropy, the mean over every element (rank-0 result), on logits and on
//! probabilities (Keras `BinaryCrossentropy(from_logits=True|False)`).
//!
//! With targets `t` (any real values; GAN label noise makes them leave {0, 1}) and `N` elements:
//!
//! ```text
//! on logits z:         L = (1/N) Σ max(z, 0) − z·t + ln(1 + e^(−|z|))
//!                      dz = (σ(z) − t)·g/N                 dt = −z·g/N
//! on probabilities p:  q = clip(p, ε, 1 − ε)
//!                      L = −(1/N) Σ t·ln q + (1 − t)·ln(1 − q)
//!                      dp = −(t/q − (1 − t)/(1 − q))·g/N  where ε < p < 1 − ε, else 0
//!                      dt = −(ln q − ln(1 − q))·g/N
//! ```
//! The logit form is the one that never overflows (TensorFlow's
//! `sigmoid_cross_entropy_with_logits`). The probability form clips as Keras does, with Keras'
//! `epsilon()` = 1e-7 by default ([`KERAS_EPSILON`]); the clip's gradient is zero outside the
//! open interval, as `tf.clip_by_value`'s.
//!
//! # Shapes
//! `z` or `p` and `t` of one shape (e.g. `(n, 1)` discriminator outputs) → `()`.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::tensor::Tensor;

/// Keras' `backend.epsilon()`, the clip of [`Graph::binary_cross_entropy`].
pub const KERAS_EPSILON: f64 = 1e-7;

impl<T: Float> Graph<T> {
    /// Host values of a prediction and its targets, checked to have one non-empty shape.
    fn bce_inputs(&self, op: &'static str, x: &Var, t: &Var) -> Result<(Vec<T>, Vec<T>)> {
        let (xt, tt) = self.bce_operands(op, x, t)?;
        if xt.is_cuda() {
            return Err(Error::UnsupportedOnDevice {
                op,
                device: xt.device(),
            });
        }
        Ok((xt.to_vec()?, tt.to_vec()?))
    }

    /// A prediction and its targets on one device, checked to have one non-empty shape.
    fn bce_operands(&self, op: &'static str, x: &Var, t: &Var) -> Result<(Tensor<T>, Tensor<T>)> {
        let (xt, tt) = self.get2_any(op, x, t)?;
        if xt.shape() != tt.shape() {
            return Err(Error::ShapeMismatch {
                op,
                lhs: xt.shape().to_vec(),
                rhs: tt.shape().to_vec(),
            });
        }
        if xt.numel() == 0 {
            return Err(Error::InvalidArgument {
                op,
                what: "empty tensors".into(),
            });
        }
        Ok((xt, tt))
    }

    /// Binary cross-entropy of logits `z` against targets `t`, mean over all elements.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `z` and `t` have one shape, [`Error::InvalidArgument`]
    /// when empty, [`Error::ForeignVar`].
    pub fn binary_cross_entropy_with_logits(&self, z: &Var, t: &Var) -> Result<Var> {
        const OP: &str = "binary_cross_entropy_with_logits";
        let (zt, tt) = self.bce_operands(OP, z, t)?;
        if zt.is_cuda() {
            return self.gpu_bce_logits(OP, z, t, zt, tt);
        }
        let (zs, ts) = (zt.to_vec()?, tt.to_vec()?);
        let inv_n = T::ONE / T::from_usize(zs.len());
        let loss = zs
            .iter()
            .zip(&ts)
            .map(|(&z, &t)| {
                let relu = if z > T::ZERO { z } else { T::ZERO };
                let abs = if z > T::ZERO { z } else { -z };
                relu - z * t + (T::ONE + (-abs).exp()).ln()
            })
            .sum::<T>()
            * inv_n;
        Ok(self.push(Tensor::scalar(loss), &[*z, *t], move |g, needs| {
            let s = g[0] * inv_n;
            let dz = needs[0].then(|| zs.iter().zip(&ts).map(|(&z, &t)| (stable_sigmoid(z) - t) * s).collect());
            let dt = needs[1].then(|| zs.iter().map(|&z| -z * s).collect());
            Ok(vec![dz, dt])
        }))
    }

    /// Binary cross-entropy of probabilities `p` against targets `t`, with `p` clipped to
    /// `[eps, 1 − eps]` (Keras: `eps` = [`KERAS_EPSILON`]), mean over all elements.
    ///
    /// # Errors
    /// As [`Graph::binary_cross_entropy_with_logits`]; [`Error::InvalidArgument`] unless
    /// `0 < eps < 0.5`.
    pub fn binary_cross_entropy(&self, p: &Var, t: &Var, eps: f64) -> Result<Var> {
        const OP: &str = "binary_cross_entropy";
        if !(eps > 0.0 && eps < 0.5) {
            return Err(Error::InvalidArgument {
                op: OP,
                what: format!("eps = {eps}: must be in (0, 0.5)"),
            });
        }
        let (ps, ts) = self.bce_inputs(OP, p, t)?;
        let (lo, hi) = (T::from_f64(eps), T::from_f64(1.0 - eps));
        let clip = move |p: T| {
            if p < lo {
                lo
            } else if p > hi {
                hi
            } else {
                p
            }
        };
        let inv_n = T::ONE / T::from_usize(ps.len());
        let loss = -ps
            .iter()
            .zip(&ts)
            .map(|(&p, &t)| {
                let q = clip(p);
                t * q.ln() + (T::ONE - t) * (T::ONE - q).ln()
            })
            .sum::<T>()
            * inv_n;
        Ok(self.push(Tensor::scalar(loss), &[*p, *t], move |g, needs| {
            let s = g[0] * inv_n;
            let dp = needs[0].then(|| {
                ps.iter()
                    .zip(&ts)
                    .map(|(&p, &t)| {
                        if p > lo && p < hi {
                            -(t / p - (T::ONE - t) / (T::ONE - p)) * s
                        } else {
                            T::ZERO
                        }
                    })
                    .collect()
            });
            let dt = needs[1].then(|| {
                ps.iter()
                    .map(|&p| {
                        let q = clip(p);
                        -(q.ln() - (T::ONE - q).ln()) * s
                    })
                    .collect()
            });
            Ok(vec![dp, dt])
        }))
    }
}

/// `1 / (1 + e^(−z))` without overflow.
fn stable_sigmoid<T: Float>(z: T) -> T {
    if z >= T::ZERO {
        T::ONE / (T::ONE + (-z).exp())
    } else {
        let e = z.exp();
        e / (T::ONE + e)
    }
}
