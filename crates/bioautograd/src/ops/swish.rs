//! Swish / SiLU (Keras `activations.swish`, PyTorch `SiLU`).
//!
//! ```text
//! swish(x) = x·σ(x),  σ(x) = 1/(1 + e^(−x))
//! dx = g·(σ(x) + x·σ(x)·(1 − σ(x)))
//! ```
//! `σ` is evaluated in the form that never overflows, as in [`Graph::sigmoid`].
//!
//! # Shapes
//! `x (..)` → `y` of the same shape.

use crate::error::Result;
use crate::float::Float;
use crate::graph::{Graph, Var};

fn logistic<T: Float>(v: T) -> T {
    if v >= T::ZERO {
        T::ONE / (T::ONE + (-v).exp())
    } else {
        let e = v.exp();
        e / (T::ONE + e)
    }
}

impl<T: Float> Graph<T> {
    /// `x·σ(x)`. See the [module docs](self).
    ///
    /// # Errors
    /// [`Error::ForeignVar`](crate::Error::ForeignVar).
    pub fn swish(&self, x: &Var) -> Result<Var> {
        self.unary(
            "swish",
            x,
            |v| v * logistic(v),
            |v, _| {
                let s = logistic(v);
                s + v * s * (T::ONE - s)
            },
        )
    }
}
