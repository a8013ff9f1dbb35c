//! Ops that move elements without arithmetic: `reshape`, `flatten`, `concat`, `slice`,
//! `transpose`. Each backward routes the upstream gradient back to where the element came
//! from.
//!
//! # Shapes
//! - `reshape(x, s)`: same element count.
//! - `flatten(x)`: `(n, d1, d2, ..)` → `(n, d1·d2·..)`.
//! - `concat([x₁, x₂, ..], axis)`: equal shapes except along `axis`, which adds up.
//! - `slice(x, axis, start, end)`: `axis` becomes `end - start`.
//! - `transpose(x, a, b)`: axes `a` and `b` swapped.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::shape::{check_axis, gather_offsets, numel, split_axis, strides};
use crate::tensor::Tensor;

impl<T: Float> Graph<T> {
    /// The same elements with another shape of equal element count.
    ///
    /// # Errors
    /// [`Error::Reshape`].
    pub fn reshape(&self, x: &Var, shape: &[usize]) -> Result<Var> {
        let xt = self.get_any("reshape", x)?;
        if numel(shape) != xt.numel() {
            return Err(Error::Reshape {
                op: "reshape",
                from: xt.shape().to_vec(),
                to: shape.to_vec(),
            });
        }
        let y = xt.reshape(shape)?;
        if y.is_cuda() {
            return Ok(self.gpu_reshape(x, y));
        }
        Ok(self.push(y, &[*x], |g, _| Ok(vec![Some(g.to_vec())])))
    }

    /// `(n, d1, d2, ..)` → `(n, d1·d2·..)`.
    ///
    /// # Errors
    /// [`Error::Rank`] for a rank-0 tensor.
    pub fn flatten(&self, x: &Var) -> Result<Var> {
        let s = self.shape(x)?;
        if s.is_empty() {
            return Err(Error::Rank {
                op: "flatten",
                expected: 1,
                got: s,
            });
        }
        self.reshape(x, &[s[0], numel(&s[1..])])
    }

    /// Concatenation along `axis`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for no inputs, [`Error::AxisOutOfRange`],
    /// [`Error::ShapeMismatch`] naming the first shape and the first one that does not fit.
    pub fn concat(&self, xs: &[Var], axis: usize) -> Result<Var> {
        const OP: &str = "concat";
        if xs.is_empty() {
            return Err(Error::InvalidArgument {
                op: OP,
                what: "no tensors to concatenate".into(),
            });
        }
        let ts: Vec<Tensor<T>> = xs.iter().map(|v| self.get_any(OP, v)).collect::<Result<_>>()?;
        let s0 = ts[0].shape().to_vec();
        check_axis(OP, axis, &s0)?;
        for t in &ts[1..] {
            let s = t.shape();
            let fits = s.len() == s0.len() && s.iter().zip(&s0).enumerate().all(|(i, (a, b))| i == axis || a == b);
            if !fits {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: s0,
                    rhs: s.to_vec(),
                });
            }
            if t.device() != ts[0].device() {
                return Err(Error::DeviceMismatch {
                    op: OP,
                    lhs: ts[0].device(),
                    rhs: t.device(),
                });
            }
        }
        let (outer, _, inner) = split_axis(&s0, axis);
        let lens: Vec<usize> = ts.iter().map(|t| t.shape()[axis]).collect();
        if ts[0].is_cuda() {
            return self.gpu_concat(xs, &ts, axis, outer, inner);
        }
        let total: usize = lens.iter().sum();
        let mut y = Vec::with_capacity(outer * total * inner);
        for o in 0..outer {
            for (t, &l) in ts.iter().zip(&lens) {
                y.extend_from_slice(&t.as_slice()?[o * l * inner..(o + 1) * l * inner]);
            }
        }
        let mut shape = s0;
        shape[axis] = total;
        Ok(self.push(Tensor::from_parts(y, shape), xs, move |g, needs| {
            let mut out: Vec<Option<Vec<T>>> = lens
                .iter()
                .zip(needs)
                .map(|(&l, &need)| need.then(|| Vec::with_capacity(outer * l * inner)))
                .collect();
            let mut pos = 0;
            for _ in 0..outer {
                for (gi, &l) in out.iter_mut().zip(&lens) {
                    if let Some(gi) = gi {
                        gi.extend_from_slice(&g[pos..pos + l * inner]);
                    }
                    pos += l * inner;
                }
            }
            Ok(out)
        }))
    }

    /// Elements `start..end` along `axis`.
    ///
    /// # Errors
    /// [`Error::AxisOutOfRange`], [`Error::SliceOutOfRange`] unless `start <= end <= dim`.
    pub fn slice(&self, x: &Var, axis: usize, start: usize, end: usize) -> Result<Var> {
        const OP: &str = "slice";
        let xt = self.get_any(OP, x)?;
        check_axis(OP, axis, xt.shape())?;
        if start > end || end > xt.shape()[axis] {
            return Err(Error::SliceOutOfRange {
                op: OP,
                axis,
                start,
                end,
                shape: xt.shape().to_vec(),
            });
        }
        let mut shape = xt.shape().to_vec();
        shape[axis] = end - start;
        if xt.is_cuda() {
            return self.gpu_slice(x, xt, axis, start, shape);
        }
        let st = strides(xt.shape());
        let base = start * st[axis];
        let offs: Vec<usize> = gather_offsets(&shape, &st).into_iter().map(|o| o + base).collect();
        self.gather(x, &xt, shape, offs)
    }

    /// Swaps axes `a` and `b` (a permutation of two axes; `transpose(x, 0, 1)` of a matrix is
    /// its transpose).
    ///
    /// # Errors
    /// [`Error::AxisOutOfRange`].
    pub fn transpose(&self, x: &Var, a: usize, b: usize) -> Result<Var> {
        const OP: &str = "transpose";
        let xt = self.get_any(OP, x)?;
        check_axis(OP, a, xt.shape())?;
        check_axis(OP, b, xt.shape())?;
        let mut shape = xt.shape().to_vec();
        let mut st = strides(xt.shape());
        shape.swap(a, b);
        st.swap(a, b);
        let offs = gather_offsets(&shape, &st);
        if xt.is_cuda() {
            return self.gpu_transpose(OP, x, xt, a, b, shape, &offs);
        }
        self.gather(x, &xt, shape, offs)
    }

    /// `y[i] = x[offs[i]]` with distinct offsets; backward scatters.
    fn gather(&self, x: &Var, xt: &Tensor<T>, shape: Vec<usize>, offs: Vec<usize>) -> Result<Var> {
        let xs = xt.as_slice()?;
        let y = offs.iter().map(|&o| xs[o]).collect();
        let n_in = xt.numel();
        Ok(self.push(Tensor::from_parts(y, shape), &[*x], move |g, _| {
            let mut dx = vec![T::ZERO; n_in];
            for (&o, &gv) in offs.iter().zip(g) {
                dx[o] += gv;
            }
            Ok(vec![Some(dx)])
        }))
    }
}
