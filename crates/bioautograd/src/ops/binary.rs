//! Element-wise `add`, `sub`, `mul`, `div` with NumPy broadcasting, and `scale` by a constant.
//!
//! Shapes are aligned on the right; each pair of dims must be equal or one of them 1 (a
//! missing dim counts as 1). The gradient of a broadcast operand is the upstream gradient
//! summed over the axes it was broadcast along:
//!
//! ```text
//! y = a + b:  da = Σ g          db = Σ g
//! y = a - b:  da = Σ g          db = -Σ g
//! y = a * b:  da = Σ g·b        db = Σ g·a
//! y = a / b:  da = Σ g/b        db = -Σ g·a/b²
//! ```
//!
//! # Shapes
//! `a (..)`, `b (..)` → `broadcast(a, b)`.

use biokernels::cuda::BinaryOp;

use crate::error::Result;
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::shape::{broadcast_offsets, broadcast_shape, numel};

/// Where each output element reads an operand: itself (same shape, no table) or a table.
enum Offsets {
    Identity,
    Table(Vec<usize>),
}

impl Offsets {
    fn new(input: &[usize], out: &[usize]) -> Self {
        if input == out {
            Offsets::Identity
        } else {
            Offsets::Table(broadcast_offsets(input, out))
        }
    }

    #[inline]
    fn at(&self, e: usize) -> usize {
        match self {
            Offsets::Identity => e,
            Offsets::Table(t) => t[e],
        }
    }
}
use crate::tensor::Tensor;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bin {
    Add,
    Sub,
    Mul,
    Div,
}

impl<T: Float> Graph<T> {
    /// `a + b`, broadcasting. See the [module docs](self).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when the shapes do not broadcast.
    pub fn add(&self, a: &Var, b: &Var) -> Result<Var> {
        self.binary("add", a, b, Bin::Add)
    }

    /// `a - b`, broadcasting.
    ///
    /// # Errors
    /// As [`Graph::add`].
    pub fn sub(&self, a: &Var, b: &Var) -> Result<Var> {
        self.binary("sub", a, b, Bin::Sub)
    }

    /// `a * b` (element-wise), broadcasting.
    ///
    /// # Errors
    /// As [`Graph::add`].
    pub fn mul(&self, a: &Var, b: &Var) -> Result<Var> {
        self.binary("mul", a, b, Bin::Mul)
    }

    /// `a / b` (element-wise), broadcasting.
    ///
    /// # Errors
    /// As [`Graph::add`].
    pub fn div(&self, a: &Var, b: &Var) -> Result<Var> {
        self.binary("div", a, b, Bin::Div)
    }

    /// `factor · x` for a constant `factor` (a scalar that is no graph value, so it needs no
    /// broadcast and gets no gradient); the same products as `mul` by a one-element tensor.
    ///
    /// # Errors
    /// A value of another graph.
    pub fn scale(&self, x: &Var, factor: f32) -> Result<Var> {
        let xt = self.get_any("scale", x)?;
        if xt.is_cuda() {
            return self.gpu_scale(x, xt, factor);
        }
        let f = T::from_f64(f64::from(factor));
        let y = xt.as_slice()?.iter().map(|&v| v * f).collect();
        Ok(
            self.push(Tensor::from_parts(y, xt.shape().to_vec()), &[*x], move |g, _| {
                Ok(vec![Some(g.iter().map(|&v| v * f).collect())])
            }),
        )
    }

    fn binary(&self, op: &'static str, a: &Var, b: &Var, kind: Bin) -> Result<Var> {
        let (ta, tb) = self.get2_any(op, a, b)?;
        let out = broadcast_shape(op, ta.shape(), tb.shape())?;
        if ta.is_cuda() {
            let device_kind = match kind {
                Bin::Add => BinaryOp::Add,
                Bin::Sub => BinaryOp::Sub,
                Bin::Mul => BinaryOp::Mul,
                Bin::Div => {
                    return Err(crate::Error::UnsupportedOnDevice {
                        op,
                        device: ta.device(),
                    })
                }
            };
            return self.gpu_binary(op, a, b, ta, tb, out, device_kind);
        }
        let (xa, xb) = (ta.as_slice()?, tb.as_slice()?);
        let n = numel(&out);
        // Fast path (same arithmetic, no offset table): one operand has the output's shape and
        // the other repeats along the leading axes (a bias row, or the same shape).
        let cyclic = cyclic_pair(ta.shape(), tb.shape(), &out, n);
        if let Some((a_full, p)) = cyclic {
            let y = cyclic_forward(xa, xb, a_full, p, n, kind);
            return Ok(self.push(Tensor::from_parts(y, out), &[*a, *b], move |g, needs| {
                let (xa, xb) = (ta.as_slice()?, tb.as_slice()?);
                Ok(cyclic_backward(g, xa, xb, a_full, p, needs, kind))
            }));
        }
        let oa = Offsets::new(ta.shape(), &out);
        let ob = Offsets::new(tb.shape(), &out);
        let y: Vec<T> = (0..n)
            .map(|e| {
                let (u, v) = (xa[oa.at(e)], xb[ob.at(e)]);
                match kind {
                    Bin::Add => u + v,
                    Bin::Sub => u - v,
                    Bin::Mul => u * v,
                    Bin::Div => u / v,
                }
            })
            .collect();
        Ok(self.push(Tensor::from_parts(y, out), &[*a, *b], move |g, needs| {
            let (xa, xb) = (ta.as_slice()?, tb.as_slice()?);
            let mut ga = needs[0].then(|| vec![T::ZERO; xa.len()]);
            let mut gb = needs[1].then(|| vec![T::ZERO; xb.len()]);
            for (e, &gv) in g.iter().enumerate().take(n) {
                let (i, j) = (oa.at(e), ob.at(e));
                let (u, v) = (xa[i], xb[j]);
                let (da, db) = match kind {
                    Bin::Add => (gv, gv),
                    Bin::Sub => (gv, -gv),
                    Bin::Mul => (gv * v, gv * u),
                    Bin::Div => (gv / v, -gv * u / (v * v)),
                };
                if let Some(ga) = &mut ga {
                    ga[i] += da;
                }
                if let Some(gb) = &mut gb {
                    gb[j] += db;
                }
            }
            Ok(vec![ga, gb])
        }))
    }
}

#[inline(always)]
fn apply<T: Float>(kind: Bin, u: T, v: T) -> T {
    match kind {
        Bin::Add => u + v,
        Bin::Sub => u - v,
        Bin::Mul => u * v,
        Bin::Div => u / v,
    }
}

/// `(da, db)` of one element, as in the generic backward.
#[inline(always)]
fn partials<T: Float>(kind: Bin, gv: T, u: T, v: T) -> (T, T) {
    match kind {
        Bin::Add => (gv, gv),
        Bin::Sub => (gv, -gv),
        Bin::Mul => (gv * v, gv * u),
        Bin::Div => (gv / v, -gv * u / (v * v)),
    }
}

/// Period of `input` over `out` in row-major order when its shape, leading 1s removed, equals
/// the trailing axes of `out` (then element `e` reads `e % period`).
fn period(input: &[usize], out: &[usize]) -> Option<usize> {
    let lead = input.iter().take_while(|&&d| d == 1).count();
    let rest = &input[lead..];
    (rest.len() <= out.len() && out[out.len() - rest.len()..] == *rest).then(|| numel(rest))
}

/// `Some((a_is_full, period of the other))` when one operand has all `n` elements and the other
/// repeats with a nonzero period.
fn cyclic_pair(a: &[usize], b: &[usize], out: &[usize], n: usize) -> Option<(bool, usize)> {
    let (pa, pb) = (period(a, out)?, period(b, out)?);
    if n == 0 {
        return None;
    }
    if pa == n && pb > 0 {
        Some((true, pb))
    } else if pb == n && pa > 0 {
        Some((false, pa))
    } else {
        None
    }
}

fn cyclic_forward<T: Float>(xa: &[T], xb: &[T], a_full: bool, p: usize, n: usize, kind: Bin) -> Vec<T> {
    let mut y = vec![T::ZERO; n];
    let (full, cyc) = if a_full { (xa, xb) } else { (xb, xa) };
    for (yc, fc) in y.chunks_mut(p).zip(full.chunks(p)) {
        for ((yv, &f), &c) in yc.iter_mut().zip(fc).zip(cyc) {
            *yv = if a_full { apply(kind, f, c) } else { apply(kind, c, f) };
        }
    }
    y
}

/// Gradients of the fast path, accumulated in the generic loop's order (element order), so the
/// results are bit-identical to it.
fn cyclic_backward<T: Float>(
    g: &[T],
    xa: &[T],
    xb: &[T],
    a_full: bool,
    p: usize,
    needs: &[bool],
    kind: Bin,
) -> Vec<Option<Vec<T>>> {
    let (full, cyc) = if a_full { (xa, xb) } else { (xb, xa) };
    let (need_full, need_cyc) = if a_full {
        (needs[0], needs[1])
    } else {
        (needs[1], needs[0])
    };
    let pair = |r: usize, j: usize| {
        let (f, c) = (full[r * p + j], cyc[j]);
        let (u, v) = if a_full { (f, c) } else { (c, f) };
        let (da, db) = partials(kind, g[r * p + j], u, v);
        if a_full {
            (da, db)
        } else {
            (db, da)
        }
    };
    let rows = g.len() / p;
    // Two passes, each in element order: the full operand's gradient is one term per element
    // (0 + d, as the generic loop), the cyclic one sums its terms row by row.
    let g_full = need_full.then(|| {
        let mut out = vec![T::ZERO; full.len()];
        for r in 0..rows {
            for j in 0..p {
                out[r * p + j] = T::ZERO + pair(r, j).0;
            }
        }
        out
    });
    let g_cyc = need_cyc.then(|| {
        let mut out = vec![T::ZERO; cyc.len()];
        for r in 0..rows {
            for (j, o) in out.iter_mut().enumerate() {
                *o += pair(r, j).1;
            }
        }
        out
    });
    if a_full {
        vec![g_full, g_cyc]
    } else {
        vec![g_cyc, g_full]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path (a full operand and a repeating one) against the element-wise definition,
    /// bit for bit, values and gradients, both operand orders and all four ops.
    #[test]
    fn cyclic_fast_path_is_bit_identical_to_the_definition() {
        let (rows, p) = (5, 7);
        let full: Vec<f32> = (0..rows * p).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        let cyc: Vec<f32> = (0..p).map(|i| ((i * 5 % 11) as f32 + 1.0) / 3.0).collect();
        let gy: Vec<f32> = (0..rows * p).map(|i| ((i * 13 % 17) as f32 - 8.0) / 5.0).collect();
        for a_full in [true, false] {
            for kind in [Bin::Add, Bin::Sub, Bin::Mul, Bin::Div] {
                let g = Graph::<f32>::new();
                let f = g.param(Tensor::from_vec(full.clone(), &[rows, p]).unwrap());
                let c = g.param(Tensor::from_vec(cyc.clone(), &[1, p]).unwrap());
                let (a, b) = if a_full { (f, c) } else { (c, f) };
                let y = g.binary("t", &a, &b, kind).unwrap();
                let w = g.input(Tensor::from_vec(gy.clone(), &[rows, p]).unwrap());
                let loss = g.sum(&g.mul(&y, &w).unwrap()).unwrap();
                let grads = g.backward(&loss).unwrap();
                let yv = g.value(&y).unwrap().to_vec().unwrap();
                let (mut g_full, mut g_cyc) = (vec![0f32; rows * p], vec![0f32; p]);
                for e in 0..rows * p {
                    let (fv, cv) = (full[e], cyc[e % p]);
                    let (u, v) = if a_full { (fv, cv) } else { (cv, fv) };
                    assert_eq!(yv[e].to_bits(), apply(kind, u, v).to_bits());
                    let (da, db) = partials(kind, gy[e], u, v);
                    let (df, dc) = if a_full { (da, db) } else { (db, da) };
                    g_full[e] += df;
                    g_cyc[e % p] += dc;
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(grads.slice(&f).unwrap()), bits(&g_full));
                assert_eq!(bits(grads.slice(&c).unwrap()), bits(&g_cyc));
            }
        }
    }
}
