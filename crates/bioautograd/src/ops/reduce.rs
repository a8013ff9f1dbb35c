//! Sums and means, over everything or along one axis.
//!
//! ```text
//! sum:   y = Σᵢ xᵢ              dxᵢ = g
//! mean:  y = (1/N) Σᵢ xᵢ        dxᵢ = g / N
//! ```
//! Along an axis the same holds per slice; the gradient is broadcast back along the axis.
//!
//! # Shapes
//! `sum`/`mean`: `x (..)` → `()` (rank 0). `sum_axis`/`mean_axis`: `x (.., d, ..)` →
//! `(.., 1, ..)` with `keepdim`, `(.., ..)` without.

use crate::error::Result;
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::shape::{check_axis, split_axis};
use crate::tensor::Tensor;

impl<T: Float> Graph<T> {
    /// Sum of all elements (a rank-0 tensor).
    ///
    /// # Errors
    /// [`Error::ForeignVar`](crate::Error::ForeignVar).
    pub fn sum(&self, x: &Var) -> Result<Var> {
        self.reduce_all("sum", x, false)
    }

    /// Mean of all elements (a rank-0 tensor).
    ///
    /// # Errors
    /// As [`Graph::sum`].
    pub fn mean(&self, x: &Var) -> Result<Var> {
        self.reduce_all("mean", x, true)
    }

    /// Sum along `axis`, keeping it as size 1 when `keepdim`.
    ///
    /// # Errors
    /// [`Error::AxisOutOfRange`](crate::Error::AxisOutOfRange).
    pub fn sum_axis(&self, x: &Var, axis: usize, keepdim: bool) -> Result<Var> {
        self.reduce_axis("sum_axis", x, axis, keepdim, false)
    }

    /// Mean along `axis`, keeping it as size 1 when `keepdim`.
    ///
    /// # Errors
    /// [`Error::AxisOutOfRange`](crate::Error::AxisOutOfRange).
    pub fn mean_axis(&self, x: &Var, axis: usize, keepdim: bool) -> Result<Var> {
        self.reduce_axis("mean_axis", x, axis, keepdim, true)
    }

    fn reduce_all(&self, op: &'static str, x: &Var, mean: bool) -> Result<Var> {
        let xt = self.get_any(op, x)?;
        if xt.is_cuda() {
            return self.gpu_reduce_all(op, x, xt, mean);
        }
        let n = xt.numel();
        let scale = if mean { T::ONE / T::from_usize(n) } else { T::ONE };
        let s: T = xt.as_slice()?.iter().copied().sum::<T>() * scale;
        Ok(self.push(Tensor::scalar(s), &[*x], move |g, _| {
            Ok(vec![Some(vec![g[0] * scale; n])])
        }))
    }

    fn reduce_axis(&self, op: &'static str, x: &Var, axis: usize, keepdim: bool, mean: bool) -> Result<Var> {
        let xt = self.get_any(op, x)?;
        check_axis(op, axis, xt.shape())?;
        let (outer, len, inner) = split_axis(xt.shape(), axis);
        let mut shape = xt.shape().to_vec();
        if keepdim {
            shape[axis] = 1;
        } else {
            shape.remove(axis);
        }
        if xt.is_cuda() {
            let scale = if mean { 1.0 / len as f32 } else { 1.0 };
            return self.gpu_reduce_axis(op, x, xt, (outer, len, inner), scale, shape);
        }
        let scale = if mean { T::ONE / T::from_usize(len) } else { T::ONE };
        let xs = xt.as_slice()?;
        let mut y = vec![T::ZERO; outer * inner];
        for o in 0..outer {
            for l in 0..len {
                for i in 0..inner {
                    y[o * inner + i] += xs[(o * len + l) * inner + i];
                }
            }
        }
        y.iter_mut().for_each(|v| *v *= scale);
        Ok(self.push(Tensor::from_parts(y, shape), &[*x], move |g, _| {
            let mut dx = vec![T::ZERO; outer * len * inner];
            for o in 0..outer {
                for l in 0..len {
                    for i in 0..inner {
                        dx[(o * len + l) * inner + i] = g[o * inner + i] * scale;
                    }
                }
            }
            Ok(vec![Some(dx)])
        }))
    }
}
