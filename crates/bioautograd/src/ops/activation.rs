//! Element-wise activations.
//!
//! ```text
//! relu(x)        = max(x, 0)                    dx = g·[x > 0]
//! leaky_relu(x)  = x if x > 0 else α·x          dx = g·(1 if x > 0 else α)   (α rounded to f32 on a device)
//! tanh(x)                                       dx = g·(1 − y²)
//! sigmoid(x)     = 1 / (1 + e^(−x))             dx = g·y·(1 − y)
//! ```
//! The derivative of relu at 0 is taken as 0 (PyTorch's convention). `sigmoid` is evaluated
//! in the form that never overflows (`e^x / (1 + e^x)` for negative `x`).
//!
//! # Shapes
//! `x (..)` → `y` of the same shape.

use crate::error::Result;
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::ops::par;
use crate::tensor::Tensor;

impl<T: Float> Graph<T> {
    /// `max(x, 0)`.
    ///
    /// # Errors
    /// [`Error::ForeignVar`](crate::Error::ForeignVar).
    pub fn relu(&self, x: &Var) -> Result<Var> {
        self.unary(
            "relu",
            x,
            |v| if v > T::ZERO { v } else { T::ZERO },
            |v, _| if v > T::ZERO { T::ONE } else { T::ZERO },
        )
    }

    /// `x` for `x > 0`, `alpha·x` otherwise.
    ///
    /// # Errors
    /// As [`Graph::relu`].
    pub fn leaky_relu(&self, x: &Var, alpha: f64) -> Result<Var> {
        let xt = self.get_any("leaky_relu", x)?;
        if xt.is_cuda() {
            return self.gpu_leaky_relu(x, xt, alpha as f32);
        }
        let a = T::from_f64(alpha);
        self.unary(
            "leaky_relu",
            x,
            move |v| if v > T::ZERO { v } else { a * v },
            move |v, _| if v > T::ZERO { T::ONE } else { a },
        )
    }

    /// Hyperbolic tangent.
    ///
    /// # Errors
    /// As [`Graph::relu`].
    pub fn tanh(&self, x: &Var) -> Result<Var> {
        self.unary("tanh", x, T::tanh, |_, y| T::ONE - y * y)
    }

    /// Logistic sigmoid.
    ///
    /// # Errors
    /// As [`Graph::relu`].
    pub fn sigmoid(&self, x: &Var) -> Result<Var> {
        self.unary(
            "sigmoid",
            x,
            |v| {
                if v >= T::ZERO {
                    T::ONE / (T::ONE + (-v).exp())
                } else {
                    let e = v.exp();
                    e / (T::ONE + e)
                }
            },
            |_, y| y * (T::ONE - y),
        )
    }

    /// `y = f(x)` element-wise with `dx = g · df(x, y)`.
    pub(crate) fn unary(
        &self,
        op: &'static str,
        x: &Var,
        f: impl Fn(T) -> T + Sync,
        df: impl Fn(T, T) -> T + Send + Sync + 'static,
    ) -> Result<Var> {
        let xt = self.get_any(op, x)?;
        if xt.is_cuda() {
            return self.gpu_unary(op, x, xt);
        }
        let y: Vec<T> = par::map(xt.as_slice()?, f);
        let yt = Tensor::from_parts(y, xt.shape().to_vec());
        let ys = yt.clone();
        Ok(self.push(yt, &[*x], move |g, _| {
            let (xs, ys) = (xt.as_slice()?, ys.as_slice()?);
            Ok(vec![Some(par::zip3_map(g, xs, ys, |g, x, y| g * df(x, y)))])
        }))
    }
}
