//! Losses, each the mean over the batch (rank-0 result).
//!
//! With `p = softmax(z)` and `ℓ = log_softmax(z)` of logits `z (n, c)`:
//!
//! ```text
//! cross_entropy (labels yᵢ):     L = −(1/n) Σᵢ ℓ[i, yᵢ]              dz = (p − onehot(y)) · g/n
//! cross_entropy_one_hot (t):     L = −(1/n) Σᵢ Σⱼ t[i,j] ℓ[i,j]       dz = (p·Σⱼ t[i,j] − t) · g/n
//!                                                                    dt = −ℓ · g/n
//! nll (log-probabilities q):     L = −(1/n) Σᵢ q[i, yᵢ]              dq[i, yᵢ] = −g/n
//! mse (a, b):                    L = (1/N) Σ (a − b)²                da = 2(a − b)·g/N = −db
//! ```
//! (`N` = number of elements of `a`.)
//!
//! # Shapes
//! logits / log-probabilities `(n, c)`, labels `[n]` (each `< c`), one-hot targets `(n, c)`;
//! `mse`: `a` and `b` of one shape. All return `()`.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::ops::softmax::log_softmax_rows;
use crate::shape::check_rank;
use crate::tensor::Tensor;

fn check_labels(op: &'static str, shape: &[usize], labels: &[usize]) -> Result<(usize, usize)> {
    check_rank(op, shape, 2)?;
    let (n, c) = (shape[0], shape[1]);
    if labels.len() != n {
        return Err(Error::LabelCount {
            op,
            labels: labels.len(),
            batch: n,
        });
    }
    if n == 0 {
        return Err(Error::InvalidArgument {
            op,
            what: "empty batch".into(),
        });
    }
    if let Some((row, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= c) {
        return Err(Error::LabelOutOfRange {
            op,
            row,
            label,
            classes: c,
        });
    }
    Ok((n, c))
}

impl<T: Float> Graph<T> {
    /// Softmax cross-entropy with integer labels, mean over the batch.
    ///
    /// # Errors
    /// [`Error::Rank`], [`Error::LabelCount`], [`Error::LabelOutOfRange`],
    /// [`Error::InvalidArgument`] for an empty batch.
    pub fn cross_entropy(&self, logits: &Var, labels: &[usize]) -> Result<Var> {
        const OP: &str = "cross_entropy";
        let zt = self.get_any(OP, logits)?;
        let (n, c) = check_labels(OP, zt.shape(), labels)?;
        if zt.is_cuda() {
            return self.gpu_cross_entropy(OP, logits, zt, labels, (n, c));
        }
        let ls = log_softmax_rows(zt.as_slice()?, c);
        let inv_n = T::ONE / T::from_usize(n);
        let loss = -labels.iter().enumerate().map(|(i, &l)| ls[i * c + l]).sum::<T>() * inv_n;
        let labels = labels.to_vec();
        Ok(self.push(Tensor::scalar(loss), &[*logits], move |g, _| {
            let s = g[0] * inv_n;
            let mut dz: Vec<T> = ls.iter().map(|&v| v.exp() * s).collect();
            for (i, &l) in labels.iter().enumerate() {
                dz[i * c + l] -= s;
            }
            Ok(vec![Some(dz)])
        }))
    }

    /// Softmax cross-entropy with one-hot (or any probability) targets, mean over the batch.
    ///
    /// # Errors
    /// [`Error::Rank`], [`Error::ShapeMismatch`] unless `targets` has the logits' shape,
    /// [`Error::InvalidArgument`] for an empty batch.
    pub fn cross_entropy_one_hot(&self, logits: &Var, targets: &Var) -> Result<Var> {
        const OP: &str = "cross_entropy_one_hot";
        let (zt, tt) = self.get2(OP, logits, targets)?;
        check_rank(OP, zt.shape(), 2)?;
        if zt.shape() != tt.shape() {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: zt.shape().to_vec(),
                rhs: tt.shape().to_vec(),
            });
        }
        let (n, c) = (zt.shape()[0], zt.shape()[1]);
        if n == 0 || c == 0 {
            return Err(Error::InvalidArgument {
                op: OP,
                what: format!("empty logits {:?}", zt.shape()),
            });
        }
        let ls = log_softmax_rows(zt.as_slice()?, c);
        let inv_n = T::ONE / T::from_usize(n);
        let loss = -ls.iter().zip(tt.as_slice()?).map(|(&a, &b)| a * b).sum::<T>() * inv_n;
        Ok(self.push(Tensor::scalar(loss), &[*logits, *targets], move |g, needs| {
            let s = g[0] * inv_n;
            let t = tt.as_slice()?;
            let dz = needs[0].then(|| {
                let mut dz = Vec::with_capacity(ls.len());
                for (lr, tr) in ls.chunks(c).zip(t.chunks(c)) {
                    let ts: T = tr.iter().copied().sum();
                    dz.extend(lr.iter().zip(tr).map(|(&l, &tv)| (l.exp() * ts - tv) * s));
                }
                dz
            });
            let dt = needs[1].then(|| ls.iter().map(|&l| -l * s).collect());
            Ok(vec![dz, dt])
        }))
    }

    /// Negative log-likelihood of log-probabilities `(n, c)` (e.g. `log_softmax` output) with
    /// integer labels, mean over the batch.
    ///
    /// # Errors
    /// As [`Graph::cross_entropy`].
    pub fn nll(&self, log_probs: &Var, labels: &[usize]) -> Result<Var> {
        const OP: &str = "nll";
        let qt = self.get(OP, log_probs)?;
        let (n, c) = check_labels(OP, qt.shape(), labels)?;
        let q = qt.as_slice()?;
        let inv_n = T::ONE / T::from_usize(n);
        let loss = -labels.iter().enumerate().map(|(i, &l)| q[i * c + l]).sum::<T>() * inv_n;
        let labels = labels.to_vec();
        Ok(self.push(Tensor::scalar(loss), &[*log_probs], move |g, _| {
            let mut dq = vec![T::ZERO; n * c];
            for (i, &l) in labels.iter().enumerate() {
                dq[i * c + l] = -g[0] * inv_n;
            }
            Ok(vec![Some(dq)])
        }))
    }

    /// Mean squared error over all elements.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless both have one shape, [`Error::InvalidArgument`] when
    /// empty.
    pub fn mse(&self, a: &Var, b: &Var) -> Result<Var> {
        const OP: &str = "mse";
        let (at, bt) = self.get2_any(OP, a, b)?;
        let n = same_shape_numel(OP, at.shape(), bt.shape())?;
        if at.is_cuda() {
            return self.gpu_mse(OP, a, b, at, bt);
        }
        let inv_n = T::ONE / T::from_usize(n);
        let d: Vec<T> = at
            .as_slice()?
            .iter()
            .zip(bt.as_slice()?)
            .map(|(&u, &v)| u - v)
            .collect();
        let loss = d.iter().map(|&v| v * v).sum::<T>() * inv_n;
        Ok(self.push(Tensor::scalar(loss), &[*a, *b], move |g, needs| {
            let s = (T::ONE + T::ONE) * g[0] * inv_n;
            let da: Vec<T> = d.iter().map(|&v| v * s).collect();
            let db = needs[1].then(|| da.iter().map(|&v| -v).collect());
            Ok(vec![needs[0].then_some(da), db])
        }))
    }
}

/// The element count of two same-shape, non-empty operands of an element-wise loss.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the shapes differ, [`Error::InvalidArgument`] when empty.
pub(crate) fn same_shape_numel(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Result<usize> {
    if lhs != rhs {
        return Err(Error::ShapeMismatch {
            op,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
        });
    }
    let n = lhs.iter().product::<usize>();
    if n == 0 {
        return Err(Error::InvalidArgument {
            op,
            what: "empty tensors".into(),
        });
    }
    Ok(n)
}
