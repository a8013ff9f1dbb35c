//! The host emulator of the device backend ([`super::EMULATOR`]): each function computes, on
//! the CPU, what the `biokernels::cuda::CudaDevice` method of the same name is documented to
//! compute (operands, `rows × cols` checks that matter, `Beta`, scaling conventions). The
//! masked products and convolutions call the CPU `biokernels` kernels, which share the device
//! kernels' product definitions (`Y = X(W⊙M)`, `dX = dY(W⊙M)ᵀ`, `dW = (XᵀdY)⊙M`).
//!
//! It exists so that the device paths of the tape run in tests on machines without a GPU; it
//! does not emulate the kernels' summation orders, precisions or launch limits.

use biokernels::cuda::{BinaryOp, GemmOp, OptimizerStep, UnaryOp};
use biokernels::gemm::{Beta, MatMut, MatRef};
use biokernels::{ConvMask, TileMap};

use crate::error::{Error, Result};
use crate::ops::conv::ConvGeometry;

/// A row-major `rows × cols` f32 matrix standing for a device matrix.
#[derive(Debug, Clone)]
pub struct HostMat {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) data: Vec<f32>,
}

fn bad(op: &'static str, what: String) -> Error {
    Error::InvalidArgument { op, what }
}

fn same_len(op: &'static str, lens: &[usize]) -> Result<()> {
    if lens.windows(2).any(|w| w[0] != w[1]) {
        return Err(bad(op, format!("operand lengths {lens:?} differ")));
    }
    Ok(())
}

impl HostMat {
    pub(crate) fn new(data: Vec<f32>, rows: usize, cols: usize) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(Error::DataLength {
                shape: vec![rows, cols],
                len: data.len(),
            });
        }
        Ok(HostMat { rows, cols, data })
    }

    pub(crate) fn reshape(&mut self, rows: usize, cols: usize) -> Result<()> {
        if rows * cols != self.data.len() {
            return Err(Error::Reshape {
                op: "reshape",
                from: vec![self.rows, self.cols],
                to: vec![rows, cols],
            });
        }
        self.rows = rows;
        self.cols = cols;
        Ok(())
    }
}

pub(crate) fn axpby(alpha: f32, x: &HostMat, beta: f32, y: &mut HostMat) -> Result<()> {
    same_len("axpby", &[x.data.len(), y.data.len()])?;
    for (o, &v) in y.data.iter_mut().zip(&x.data) {
        *o = if beta == 0.0 { alpha * v } else { alpha * v + beta * *o };
    }
    Ok(())
}

pub(crate) fn binary(kind: BinaryOp, a: &HostMat, b: &HostMat, out: &mut HostMat) -> Result<()> {
    same_len(kind.name(), &[a.data.len(), b.data.len(), out.data.len()])?;
    for ((o, &u), &v) in out.data.iter_mut().zip(&a.data).zip(&b.data) {
        *o = match kind {
            BinaryOp::Add => u + v,
            BinaryOp::Sub => u - v,
            BinaryOp::Mul => u * v,
        };
    }
    Ok(())
}

fn unary_value(kind: UnaryOp, v: f32) -> f32 {
    match kind {
        UnaryOp::Relu => {
            if v > 0.0 {
                v
            } else {
                0.0
            }
        }
        UnaryOp::Tanh => v.tanh(),
        UnaryOp::Sigmoid => {
            if v >= 0.0 {
                1.0 / (1.0 + (-v).exp())
            } else {
                let e = v.exp();
                e / (1.0 + e)
            }
        }
    }
}

pub(crate) fn unary(kind: UnaryOp, x: &HostMat, y: &mut HostMat) -> Result<()> {
    same_len(kind.name(), &[x.data.len(), y.data.len()])?;
    for (o, &v) in y.data.iter_mut().zip(&x.data) {
        *o = unary_value(kind, v);
    }
    Ok(())
}

pub(crate) fn unary_backward(
    kind: UnaryOp,
    x: &HostMat,
    y: &HostMat,
    dy: &HostMat,
    dx: &mut HostMat,
    beta: Beta,
) -> Result<()> {
    same_len(kind.name(), &[x.data.len(), y.data.len(), dy.data.len(), dx.data.len()])?;
    for (k, o) in dx.data.iter_mut().enumerate() {
        let d = match kind {
            UnaryOp::Relu => {
                if x.data[k] > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            UnaryOp::Tanh => 1.0 - y.data[k] * y.data[k],
            UnaryOp::Sigmoid => y.data[k] * (1.0 - y.data[k]),
        };
        let v = dy.data[k] * d;
        *o = if beta == Beta::One { *o + v } else { v };
    }
    Ok(())
}

pub(crate) fn bias_add_rows(y: &mut HostMat, bias: &HostMat) -> Result<()> {
    if bias.data.len() != y.cols {
        return Err(bad(
            "bias_add_rows",
            format!("bias of {} for {} columns", bias.data.len(), y.cols),
        ));
    }
    for row in y.data.chunks_mut(y.cols.max(1)) {
        row.iter_mut().zip(&bias.data).for_each(|(o, &b)| *o += b);
    }
    Ok(())
}

pub(crate) fn bias_grad(dy: &HostMat, channels: usize, hw: usize, db: &mut HostMat) -> Result<()> {
    if channels == 0 || dy.cols != channels * hw || db.data.len() != channels {
        return Err(bad(
            "bias_grad",
            format!("dy {}x{} for {channels} channels of {hw}", dy.rows, dy.cols),
        ));
    }
    db.data.iter_mut().for_each(|v| *v = 0.0);
    for (k, chunk) in dy.data.chunks(hw.max(1)).enumerate() {
        db.data[k % channels] += chunk.iter().sum::<f32>();
    }
    Ok(())
}

pub(crate) fn sum_rows_into(x: &HostMat, out: &mut HostMat, beta: Beta) -> Result<()> {
    if out.data.len() != x.cols {
        return Err(bad(
            "sum_rows_into",
            format!("out of {} for {} columns", out.data.len(), x.cols),
        ));
    }
    if beta == Beta::Zero {
        out.data.iter_mut().for_each(|v| *v = 0.0);
    }
    for row in x.data.chunks(x.cols.max(1)) {
        out.data.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
    }
    Ok(())
}

pub(crate) fn sum_all(x: &HostMat, out: &mut HostMat) -> Result<()> {
    if out.data.len() != 1 {
        return Err(bad("sum_all", "the output must have one element".into()));
    }
    out.data[0] = x.data.iter().sum();
    Ok(())
}

pub(crate) fn softmax_cross_entropy(
    z: &HostMat,
    labels: &HostMat,
    scale: f32,
    loss: &mut HostMat,
    dz: &mut HostMat,
) -> Result<()> {
    let (rows, c) = (z.rows, z.cols);
    if labels.data.len() != rows || loss.data.len() != rows || dz.data.len() != rows * c {
        return Err(bad("softmax_cross_entropy", "operand lengths".into()));
    }
    for r in 0..rows {
        let row = &z.data[r * c..(r + 1) * c];
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = row.iter().map(|&v| (v - m).exp()).sum::<f32>().ln() + m;
        let label = labels.data[r] as usize;
        loss.data[r] = lse - row[label];
        for (j, &v) in row.iter().enumerate() {
            let onehot = if j == label { 1.0 } else { 0.0 };
            dz.data[r * c + j] = ((v - lse).exp() - onehot) * scale;
        }
    }
    Ok(())
}

pub(crate) fn mse(p: &HostMat, t: &HostMat, scale: f32, loss: &mut HostMat, dp: &mut HostMat) -> Result<()> {
    let n = p.data.len();
    same_len("mse", &[n, t.data.len(), dp.data.len()])?;
    if n == 0 || loss.data.len() != 1 {
        return Err(bad("mse", "empty operands or a loss that is not one element".into()));
    }
    let mut s = 0.0f32;
    for k in 0..n {
        let d = p.data[k] - t.data[k];
        s += d * d;
        dp.data[k] = 2.0 * d * scale;
    }
    loss.data[0] = s / n as f32;
    Ok(())
}

pub(crate) fn dropout(x: &HostMat, keep: &HostMat, scale: f32, y: &mut HostMat) -> Result<()> {
    same_len("dropout", &[x.data.len(), keep.data.len(), y.data.len()])?;
    for ((o, &v), &k) in y.data.iter_mut().zip(&x.data).zip(&keep.data) {
        *o = v * (k * scale);
    }
    Ok(())
}

pub(crate) fn max_pool2d(
    x: &HostMat,
    [n, c, h, w]: [usize; 4],
    [kh, kw]: [usize; 2],
    [sh, sw]: [usize; 2],
    y: &mut HostMat,
) -> Result<Vec<usize>> {
    if kh == 0 || kw == 0 || sh == 0 || sw == 0 || kh > h || kw > w || x.data.len() != n * c * h * w {
        return Err(bad("max_pool2d", "window, stride or input size".into()));
    }
    let (oh, ow) = ((h - kh) / sh + 1, (w - kw) / sw + 1);
    if y.data.len() != n * c * oh * ow {
        return Err(bad("max_pool2d", "output length".into()));
    }
    let mut arg = vec![0usize; y.data.len()];
    for p in 0..n * c {
        for i in 0..oh {
            for j in 0..ow {
                let mut best_at = p * h * w + i * sh * w + j * sw;
                for di in 0..kh {
                    for dj in 0..kw {
                        let at = p * h * w + (i * sh + di) * w + j * sw + dj;
                        if x.data[at] > x.data[best_at] {
                            best_at = at;
                        }
                    }
                }
                let o = (p * oh + i) * ow + j;
                y.data[o] = x.data[best_at];
                arg[o] = best_at;
            }
        }
    }
    Ok(arg)
}

pub(crate) fn max_pool2d_backward(dy: &HostMat, arg: &[usize], dx: &mut HostMat) -> Result<()> {
    same_len("max_pool2d_backward", &[dy.data.len(), arg.len()])?;
    dx.data.iter_mut().for_each(|v| *v = 0.0);
    for (&a, &g) in arg.iter().zip(&dy.data) {
        let slot = dx
            .data
            .get_mut(a)
            .ok_or_else(|| bad("max_pool2d_backward", format!("argmax {a} out of range")))?;
        *slot += g;
    }
    Ok(())
}

pub(crate) fn copy_columns(
    src: &HostMat,
    src_col: usize,
    dst: &mut HostMat,
    dst_col: usize,
    cols: usize,
    beta: Beta,
) -> Result<()> {
    if src.rows != dst.rows || src_col + cols > src.cols || dst_col + cols > dst.cols {
        return Err(bad(
            "copy_columns",
            "rows differ or a column range leaves its matrix".into(),
        ));
    }
    for r in 0..src.rows {
        for j in 0..cols {
            let v = src.data[r * src.cols + src_col + j];
            let o = &mut dst.data[r * dst.cols + dst_col + j];
            *o = if beta == Beta::One { *o + v } else { v };
        }
    }
    Ok(())
}

/// The formulas of `OptimizerStep` (see its documentation in `biokernels::cuda`).
pub(crate) fn optimizer_step(
    step: OptimizerStep,
    w: &mut HostMat,
    g: &HostMat,
    s1: &mut HostMat,
    s2: &mut HostMat,
) -> Result<()> {
    same_len(
        "optimizer_step",
        &[w.data.len(), g.data.len(), s1.data.len(), s2.data.len()],
    )?;
    for k in 0..w.data.len() {
        let wv = w.data[k];
        match step {
            OptimizerStep::Adam {
                beta1,
                beta2,
                eps,
                step,
                bc2_sqrt,
                torch,
                weight_decay,
            } => {
                let gv = if weight_decay != 0.0 {
                    g.data[k] + weight_decay * wv
                } else {
                    g.data[k]
                };
                let m = beta1 * s1.data[k] + (1.0 - beta1) * gv;
                let v = beta2 * s2.data[k] + (1.0 - beta2) * gv * gv;
                s1.data[k] = m;
                s2.data[k] = v;
                w.data[k] -= if torch {
                    step * m / (v.sqrt() / bc2_sqrt + eps)
                } else {
                    step * m / (v.sqrt() + eps)
                };
            }
            OptimizerStep::RmsProp {
                rho,
                eps,
                lr,
                momentum,
                torch,
                weight_decay,
            } => {
                let gv = if weight_decay != 0.0 {
                    g.data[k] + weight_decay * wv
                } else {
                    g.data[k]
                };
                let s = rho * s1.data[k] + (1.0 - rho) * gv * gv;
                s1.data[k] = s;
                if torch {
                    let scaled = gv / (s.sqrt() + eps);
                    if momentum == 0.0 {
                        w.data[k] -= lr * scaled;
                    } else {
                        let b = momentum * s2.data[k] + scaled;
                        s2.data[k] = b;
                        w.data[k] -= lr * b;
                    }
                } else {
                    let inc = lr * gv / (s + eps).sqrt();
                    if momentum == 0.0 {
                        w.data[k] -= inc;
                    } else {
                        let b = momentum * s2.data[k] + inc;
                        s2.data[k] = b;
                        w.data[k] -= b;
                    }
                }
            }
        }
    }
    Ok(())
}

/// One masked product through the CPU kernels.
pub(crate) fn gemm(op: GemmOp, a: &HostMat, b: &HostMat, mask: &TileMap, out: &mut HostMat, beta: Beta) -> Result<()> {
    let (ar, ac, br, bc) = (a.rows, a.cols, b.rows, b.cols);
    let (or, oc) = (out.rows, out.cols);
    let (a, b) = (MatRef::new(&a.data, ar, ac)?, MatRef::new(&b.data, br, bc)?);
    let o = MatMut::new(&mut out.data, or, oc)?;
    match op {
        GemmOp::Forward => biokernels::masked_matmul(a, b, mask, o, beta)?,
        GemmOp::Dx => biokernels::masked_matmul_dx(a, b, mask, o, beta)?,
        GemmOp::Dw => biokernels::masked_matmul_dw(a, b, mask, o, beta)?,
    }
    Ok(())
}

/// One convolution product through the CPU kernels (`out` overwritten).
pub(crate) fn conv(
    op: GemmOp,
    geom: &ConvGeometry,
    a: &[f32],
    b: &[f32],
    mask: Option<&ConvMask>,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    use biokernels::conv;
    match (geom, op) {
        (ConvGeometry::Conv(g), GemmOp::Forward) => conv::conv2d(g, a, b, mask, bias, out)?,
        (ConvGeometry::Conv(g), GemmOp::Dx) => conv::conv2d_backward_input(g, a, b, mask, out)?,
        (ConvGeometry::Conv(g), GemmOp::Dw) => conv::conv2d_backward_weight(g, a, b, mask, out)?,
        (ConvGeometry::Transpose(g), GemmOp::Forward) => conv::conv_transpose2d(g, a, b, mask, bias, out)?,
        (ConvGeometry::Transpose(g), GemmOp::Dx) => conv::conv_transpose2d_backward_input(g, a, b, mask, out)?,
        (ConvGeometry::Transpose(g), GemmOp::Dw) => conv::conv_transpose2d_backward_weight(g, a, b, mask, out)?,
    }
    Ok(())
}
