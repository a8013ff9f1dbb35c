//! Mean absolute error (Keras `mean_absolute_error` over all elements, PyTorch `L1Loss`).
//!
//! ```text
//! L = (1/N) Σ |a − b|
//! da = g·sign(a − b)/N,  db = −da   (sign(0) = 0, PyTorch's convention)
//! ```
//!
//! # Shapes
//! `a`, `b` of one shape → a scalar.

use crate::error::Result;
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::ops::loss::same_shape_numel;
use crate::tensor::Tensor;

impl<T: Float> Graph<T> {
    /// Mean absolute error over all elements. See the [module docs](self).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) unless both have one shape, [`Error::InvalidArgument`](crate::Error::InvalidArgument) when
    /// empty.
    pub fn mae(&self, a: &Var, b: &Var) -> Result<Var> {
        const OP: &str = "mae";
        let (at, bt) = self.get2_any(OP, a, b)?;
        let n = same_shape_numel(OP, at.shape(), bt.shape())?;
        if at.is_cuda() {
            return self.gpu_mae(a, b, at, bt);
        }
        let inv_n = T::ONE / T::from_usize(n);
        let sign: Vec<T> = at
            .as_slice()?
            .iter()
            .zip(bt.as_slice()?)
            .map(|(&u, &v)| {
                if u > v {
                    T::ONE
                } else if u < v {
                    -T::ONE
                } else {
                    T::ZERO
                }
            })
            .collect();
        let loss = at
            .as_slice()?
            .iter()
            .zip(bt.as_slice()?)
            .zip(&sign)
            .map(|((&u, &v), &s)| (u - v) * s)
            .sum::<T>()
            * inv_n;
        Ok(self.push(Tensor::scalar(loss), &[*a, *b], move |g, needs| {
            let s = g[0] * inv_n;
            let da: Vec<T> = sign.iter().map(|&v| v * s).collect();
            let db = needs[1].then(|| da.iter().map(|&v| -v).collect());
            Ok(vec![needs[0].then_some(da), db])
        }))
    }
}
