//! `softmax` and `log_softmax` along the last axis, numerically stable (the row maximum is
//! subtracted before exponentiating).
//!
//! ```text
//! softmax:      yᵢ = e^(xᵢ − m) / Σⱼ e^(xⱼ − m)        dxᵢ = yᵢ·(gᵢ − Σⱼ gⱼ yⱼ)
//! log_softmax:  yᵢ = xᵢ − m − ln Σⱼ e^(xⱼ − m)        dxᵢ = gᵢ − softmax(x)ᵢ·Σⱼ gⱼ
//! ```
//! with `m = maxⱼ xⱼ` of the row.
//!
//! # Shapes
//! `x (.., c)` → `y (.., c)`.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::tensor::Tensor;

/// Row-wise `log_softmax` of a `(rows, c)` buffer.
pub(crate) fn log_softmax_rows<T: Float>(x: &[T], c: usize) -> Vec<T> {
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks(c) {
        let m = row
            .iter()
            .copied()
            .fold(T::NEG_INFINITY, |a, b| if b > a { b } else { a });
        let lse = row.iter().map(|&v| (v - m).exp()).sum::<T>().ln() + m;
        y.extend(row.iter().map(|&v| v - lse));
    }
    y
}

fn last_dim(op: &'static str, shape: &[usize]) -> Result<usize> {
    match shape.last() {
        Some(&c) if c > 0 => Ok(c),
        _ => Err(Error::InvalidArgument {
            op,
            what: format!("needs a non-empty last axis, got shape {shape:?}"),
        }),
    }
}

impl<T: Float> Graph<T> {
    /// Softmax along the last axis.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a rank-0 tensor or an empty last axis.
    pub fn softmax(&self, x: &Var) -> Result<Var> {
        let xt = self.get_any("softmax", x)?;
        let c = last_dim("softmax", xt.shape())?;
        if xt.is_cuda() {
            return self.gpu_softmax("softmax", x, xt, c, false);
        }
        let y: Vec<T> = log_softmax_rows(xt.as_slice()?, c).into_iter().map(T::exp).collect();
        let yt = Tensor::from_parts(y, xt.shape().to_vec());
        let ys = yt.clone();
        Ok(self.push(yt, &[*x], move |g, _| {
            let y = ys.as_slice()?;
            let mut dx = Vec::with_capacity(y.len());
            for (yr, gr) in y.chunks(c).zip(g.chunks(c)) {
                let dot: T = yr.iter().zip(gr).map(|(&a, &b)| a * b).sum();
                dx.extend(yr.iter().zip(gr).map(|(&yv, &gv)| yv * (gv - dot)));
            }
            Ok(vec![Some(dx)])
        }))
    }

    /// Log-softmax along the last axis.
    ///
    /// # Errors
    /// As [`Graph::softmax`].
    pub fn log_softmax(&self, x: &Var) -> Result<Var> {
        let xt = self.get_any("log_softmax", x)?;
        let c = last_dim("log_softmax", xt.shape())?;
        if xt.is_cuda() {
            return self.gpu_softmax("log_softmax", x, xt, c, true);
        }
        let y = log_softmax_rows(xt.as_slice()?, c);
        let yt = Tensor::from_parts(y, xt.shape().to_vec());
        let ys = yt.clone();
        Ok(self.push(yt, &[*x], move |g, _| {
            let y = ys.as_slice()?;
            let mut dx = Vec::with_capacity(y.len());
            for (yr, gr) in y.chunks(c).zip(g.chunks(c)) {
                let s: T = gr.iter().copied().sum();
                dx.extend(yr.iter().zip(gr).map(|(&yv, &gv)| gv - yv.exp() * s));
            }
            Ok(vec![Some(dx)])
        }))
    }
}
