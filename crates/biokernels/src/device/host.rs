//! The host emulator of the device backend: [`HostDevice`] computes, on the CPU, what each
//! CUDA kernel is documented to compute (operands, the `rows × cols` checks that matter,
//! [`Beta`], scaling conventions). The masked products and convolutions call the CPU kernels of
//! this crate, which define the same products (`Y = X(W⊙M)`, `dX = dY(W⊙M)ᵀ`,
//! `dW = (XᵀdY)⊙M`); the optimiser steps call [`crate::optim::apply`], the CPU optimiser's own
//! formula.
//!
//! It exists so that the device paths of the tape run in tests on machines without a GPU; it
//! does not emulate the kernels' summation orders, precisions or launch limits. Every handle it
//! returns counts in [`MemoryOps::live_buffers`].

use crate::conv::{Conv2dGeometry, ConvMask, ConvTranspose2dGeometry};
use crate::cuda::{BinaryOp, GemmOp, Precision, UnaryOp};
use crate::device::norm::check_lengths;
use crate::device::{
    ConvOps, DeviceConv, DeviceIndex, DeviceMatrix, DevicePlaneMap, DeviceStorage, DeviceTiles, ElementwiseOps,
    GemmOps, LiveCounter, LiveToken, LossOps, MemoryOps, NormLayout, NormOps, NormReduce, OptimOps, PlaneMap, PoolOps,
    ReduceOps, ResampleOps,
};
use crate::error::{Error, Result};
use crate::gemm::{Beta, MatMut, MatRef};
use crate::optim::OptimizerStep;
use crate::tile_map::TileMap;

/// A row-major `rows × cols` f32 matrix standing for a device matrix.
#[derive(Debug)]
pub struct HostMat {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
    _live: LiveToken,
}

impl DeviceStorage for HostMat {
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn reshape(&mut self, rows: usize, cols: usize) -> Result<()> {
        if rows.checked_mul(cols) != Some(self.data.len()) {
            return Err(bad(
                "reshape",
                format!("a {}x{} matrix cannot be viewed as {rows}x{cols}", self.rows, self.cols),
            ));
        }
        self.rows = rows;
        self.cols = cols;
        Ok(())
    }
}

/// The host emulator (see the [module docs](self)).
#[derive(Debug, Default)]
pub struct HostDevice {
    live: LiveCounter,
}

impl HostDevice {
    /// A new emulator with its own live-buffer count.
    pub fn new() -> Self {
        HostDevice::default()
    }

    fn mat(&self, data: Vec<f32>, rows: usize, cols: usize) -> Result<DeviceMatrix> {
        super::limits::allocation("allocate", rows, cols)?;
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(Error::BufferSize {
                rows,
                cols,
                len: data.len(),
            });
        }
        Ok(DeviceMatrix::new(HostMat {
            rows,
            cols,
            data,
            _live: self.live.token(),
        }))
    }
}

fn bad(op: &'static str, reason: String) -> Error {
    Error::CudaOperand { op, reason }
}

fn same_len(op: &'static str, lens: &[usize]) -> Result<()> {
    if lens.windows(2).any(|w| w[0] != w[1]) {
        return Err(bad(op, format!("operand lengths {lens:?} differ")));
    }
    Ok(())
}

fn host<'a>(op: &'static str, m: &'a DeviceMatrix) -> Result<&'a HostMat> {
    m.storage(op)
}

fn host_mut<'a>(op: &'static str, m: &'a mut DeviceMatrix) -> Result<&'a mut HostMat> {
    m.storage_mut(op)
}

fn axpby(alpha: f32, x: &HostMat, beta: f32, y: &mut HostMat) -> Result<()> {
    same_len("axpby", &[x.data.len(), y.data.len()])?;
    for (o, &v) in y.data.iter_mut().zip(&x.data) {
        *o = if beta == 0.0 { alpha * v } else { alpha * v + beta * *o };
    }
    Ok(())
}

fn binary(kind: BinaryOp, a: &HostMat, b: &HostMat, out: &mut HostMat) -> Result<()> {
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
        UnaryOp::Sigmoid => sigmoid(v),
        UnaryOp::Swish => v * sigmoid(v),
    }
}

/// The logistic sigmoid in the form that never overflows.
fn sigmoid(v: f32) -> f32 {
    if v >= 0.0 {
        1.0 / (1.0 + (-v).exp())
    } else {
        let e = v.exp();
        e / (1.0 + e)
    }
}

fn unary(kind: UnaryOp, x: &HostMat, y: &mut HostMat) -> Result<()> {
    same_len(kind.name(), &[x.data.len(), y.data.len()])?;
    for (o, &v) in y.data.iter_mut().zip(&x.data) {
        *o = unary_value(kind, v);
    }
    Ok(())
}

fn unary_backward(kind: UnaryOp, x: &HostMat, y: &HostMat, dy: &HostMat, dx: &mut HostMat, beta: Beta) -> Result<()> {
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
            UnaryOp::Swish => {
                let (v, s) = (x.data[k], sigmoid(x.data[k]));
                s + v * s * (1.0 - s)
            }
        };
        let v = dy.data[k] * d;
        *o = if beta == Beta::One { *o + v } else { v };
    }
    Ok(())
}

fn leaky_relu(slope: f32, x: &HostMat, y: &mut HostMat) -> Result<()> {
    same_len("leaky_relu", &[x.data.len(), y.data.len()])?;
    for (o, &v) in y.data.iter_mut().zip(&x.data) {
        *o = if v > 0.0 { v } else { slope * v };
    }
    Ok(())
}

fn leaky_relu_backward(slope: f32, x: &HostMat, dy: &HostMat, dx: &mut HostMat, beta: Beta) -> Result<()> {
    same_len("leaky_relu", &[x.data.len(), dy.data.len(), dx.data.len()])?;
    for ((o, &v), &g) in dx.data.iter_mut().zip(&x.data).zip(&dy.data) {
        let d = if v > 0.0 { g } else { slope * g };
        *o = if beta == Beta::One { *o + d } else { d };
    }
    Ok(())
}

fn bias_add_rows(y: &mut HostMat, bias: &HostMat) -> Result<()> {
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

fn bias_grad(dy: &HostMat, channels: usize, hw: usize, db: &mut HostMat) -> Result<()> {
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

fn sum_rows_into(x: &HostMat, out: &mut HostMat, beta: Beta) -> Result<()> {
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

fn sum_all(x: &HostMat, out: &mut HostMat) -> Result<()> {
    if out.data.len() != 1 {
        return Err(bad("sum_all", "the output must have one element".into()));
    }
    out.data[0] = x.data.iter().sum();
    Ok(())
}

fn softmax_cross_entropy(
    z: &HostMat,
    labels: &HostMat,
    scale: f32,
    loss: &mut HostMat,
    dz: &mut HostMat,
) -> Result<()> {
    let (rows, c) = (z.rows, z.cols);
    super::limits::classes("softmax_cross_entropy", c)?;
    if labels.data.len() != rows || loss.data.len() != rows || dz.data.len() != rows * c {
        return Err(bad("softmax_cross_entropy", "operand lengths".into()));
    }
    for r in 0..rows {
        let row = &z.data[r * c..(r + 1) * c];
        // As the kernel: a label that is not a class index gives the row NaN loss and gradient.
        let lf = labels.data[r];
        if !(lf >= 0.0 && lf < c as f32 && lf.fract() == 0.0) {
            loss.data[r] = f32::NAN;
            dz.data[r * c..(r + 1) * c].fill(f32::NAN);
            continue;
        }
        let label = lf as usize;
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = row.iter().map(|&v| (v - m).exp()).sum::<f32>().ln() + m;
        loss.data[r] = lse - row[label];
        for (j, &v) in row.iter().enumerate() {
            let onehot = if j == label { 1.0 } else { 0.0 };
            dz.data[r * c + j] = ((v - lse).exp() - onehot) * scale;
        }
    }
    Ok(())
}

fn mse(p: &HostMat, t: &HostMat, scale: f32, loss: &mut HostMat, dp: &mut HostMat) -> Result<()> {
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

fn rows_of<'a>(op: &'static str, x: &'a HostMat, others: &[usize]) -> Result<std::slice::ChunksExact<'a, f32>> {
    if x.cols == 0 {
        return Err(bad(op, "rows of 0 columns".into()));
    }
    let mut lens = vec![x.data.len()];
    lens.extend_from_slice(others);
    same_len(op, &lens)?;
    Ok(x.data.chunks_exact(x.cols))
}

fn softmax_rows(x: &HostMat, log: bool, y: &mut HostMat) -> Result<()> {
    let c = x.cols;
    let rows = rows_of("softmax_rows", x, &[y.data.len()])?;
    for (row, out) in rows.zip(y.data.chunks_exact_mut(c)) {
        let m = row.iter().copied().fold(row[0], |a, b| if b > a { b } else { a });
        let lse = row.iter().map(|&v| (v - m).exp()).sum::<f32>().ln() + m;
        for (o, &v) in out.iter_mut().zip(row) {
            *o = if log { v - lse } else { (v - lse).exp() };
        }
    }
    Ok(())
}

fn softmax_rows_backward(y: &HostMat, dy: &HostMat, log: bool, dx: &mut HostMat, beta: Beta) -> Result<()> {
    let c = y.cols;
    let rows = rows_of("softmax_rows_backward", y, &[dy.data.len(), dx.data.len()])?;
    for ((yr, gr), dr) in rows.zip(dy.data.chunks_exact(c)).zip(dx.data.chunks_exact_mut(c)) {
        let s: f32 = if log {
            gr.iter().sum()
        } else {
            gr.iter().zip(yr).map(|(&g, &v)| g * v).sum()
        };
        for ((o, &v), &g) in dr.iter_mut().zip(yr).zip(gr) {
            let d = if log { g - v.exp() * s } else { v * (g - s) };
            *o = if beta == Beta::One { *o + d } else { d };
        }
    }
    Ok(())
}

fn bce_with_logits(z: &HostMat, t: &HostMat, scale: f32, loss: &mut HostMat, dz: &mut HostMat) -> Result<()> {
    same_len(
        "bce_with_logits",
        &[z.data.len(), t.data.len(), loss.data.len(), dz.data.len()],
    )?;
    for (k, (&v, &tv)) in z.data.iter().zip(&t.data).enumerate() {
        let (relu, abs) = if v > 0.0 { (v, v) } else { (0.0, -v) };
        loss.data[k] = relu - v * tv + (1.0 + (-abs).exp()).ln();
        dz.data[k] = (sigmoid(v) - tv) * scale;
    }
    Ok(())
}

/// The statistics `[mean; var; invstd]` of each statistic's values, two passes in order.
fn norm_stats(x: &HostMat, layout: NormLayout, eps: f32, stats: &mut HostMat) -> Result<()> {
    let s_count = layout.statistics();
    check_lengths(
        "norm_stats",
        &layout,
        &[
            ("x", x.data.len(), layout.len()),
            ("stats", stats.data.len(), 3 * s_count),
        ],
    )?;
    let seg = layout.segments(NormReduce::Statistic);
    let m = seg.count as f32;
    for s in 0..s_count {
        let mu = (0..seg.count).map(|k| x.data[seg.index(s, k)]).sum::<f32>() / m;
        let var = (0..seg.count)
            .map(|k| {
                let d = x.data[seg.index(s, k)] - mu;
                d * d
            })
            .sum::<f32>()
            / m;
        stats.data[s] = mu;
        stats.data[s_count + s] = var;
        stats.data[2 * s_count + s] = 1.0 / (var + eps).sqrt();
    }
    Ok(())
}

/// `x̂` of element `i` from the statistics.
fn xhat(layout: &NormLayout, stats: &[f32], x: &[f32], i: usize) -> f32 {
    let s = layout.statistic_of(i);
    (x[i] - stats[s]) * stats[2 * layout.statistics() + s]
}

fn norm_apply(
    x: &HostMat,
    layout: NormLayout,
    stats: &HostMat,
    affine: Option<(&HostMat, &HostMat)>,
    y: &mut HostMat,
) -> Result<()> {
    let (c, n) = (layout.channels, layout.len());
    let (gl, bl) = affine.map_or((c, c), |(g, b)| (g.data.len(), b.data.len()));
    check_lengths(
        "norm_apply",
        &layout,
        &[
            ("x", x.data.len(), n),
            ("y", y.data.len(), n),
            ("stats", stats.data.len(), 3 * layout.statistics()),
            ("gamma", gl, c),
            ("beta", bl, c),
        ],
    )?;
    for i in 0..n {
        let xh = xhat(&layout, &stats.data, &x.data, i);
        y.data[i] = match affine {
            Some((g, b)) => {
                let ch = layout.channel_of(i);
                g.data[ch] * xh + b.data[ch]
            }
            None => xh,
        };
    }
    Ok(())
}

/// `d = dy·γ_c` or `dy` of element `i`.
fn norm_d(layout: &NormLayout, dy: &[f32], gamma: Option<&HostMat>, i: usize) -> f32 {
    gamma.map_or(dy[i], |g| dy[i] * g.data[layout.channel_of(i)])
}

#[allow(clippy::too_many_arguments)]
fn norm_grad_sums(
    x: &HostMat,
    dy: &HostMat,
    layout: NormLayout,
    stats: &HostMat,
    gamma: Option<&HostMat>,
    over: NormReduce,
    sums: &mut HostMat,
) -> Result<()> {
    let seg = layout.segments(over);
    let (c, n) = (layout.channels, layout.len());
    check_lengths(
        "norm_grad_sums",
        &layout,
        &[
            ("x", x.data.len(), n),
            ("dy", dy.data.len(), n),
            ("stats", stats.data.len(), 3 * layout.statistics()),
            ("gamma", gamma.map_or(c, |g| g.data.len()), c),
            ("sums", sums.data.len(), 2 * seg.segments),
        ],
    )?;
    for r in 0..seg.segments {
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for k in 0..seg.count {
            let i = seg.index(r, k);
            let d = norm_d(&layout, &dy.data, gamma, i);
            s1 += d;
            s2 += d * xhat(&layout, &stats.data, &x.data, i);
        }
        sums.data[r] = s1;
        sums.data[seg.segments + r] = s2;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn norm_grad_input(
    x: &HostMat,
    dy: &HostMat,
    layout: NormLayout,
    stats: &HostMat,
    gamma: Option<&HostMat>,
    sums: Option<&HostMat>,
    dx: &mut HostMat,
    beta: Beta,
) -> Result<()> {
    let (c, n, s_count) = (layout.channels, layout.len(), layout.statistics());
    check_lengths(
        "norm_grad_input",
        &layout,
        &[
            ("x", x.data.len(), n),
            ("dy", dy.data.len(), n),
            ("dx", dx.data.len(), n),
            ("stats", stats.data.len(), 3 * s_count),
            ("gamma", gamma.map_or(c, |g| g.data.len()), c),
            ("sums", sums.map_or(2 * s_count, |m| m.data.len()), 2 * s_count),
        ],
    )?;
    let m = layout.count() as f32;
    for i in 0..n {
        let s = layout.statistic_of(i);
        let inv = stats.data[2 * s_count + s];
        let d = norm_d(&layout, &dy.data, gamma, i);
        let g = match sums {
            Some(sm) => {
                let xh = (x.data[i] - stats.data[s]) * inv;
                inv / m * (m * d - sm.data[s] - xh * sm.data[s_count + s])
            }
            None => d * inv,
        };
        dx.data[i] = if beta == Beta::One { dx.data[i] + g } else { g };
    }
    Ok(())
}

fn dropout(x: &HostMat, keep: &HostMat, scale: f32, y: &mut HostMat) -> Result<()> {
    same_len("dropout", &[x.data.len(), keep.data.len(), y.data.len()])?;
    for ((o, &v), &k) in y.data.iter_mut().zip(&x.data).zip(&keep.data) {
        *o = v * (k * scale);
    }
    Ok(())
}

/// `v` rounded to the nearest bf16 (ties to even; NaN stays NaN), widened back to f32: what a
/// bf16 operand holds.
pub fn round_to_bf16(v: f32) -> f32 {
    if v.is_nan() {
        return v;
    }
    let u = v.to_bits();
    f32::from_bits(u.wrapping_add(0x7fff + ((u >> 16) & 1)) & 0xffff_0000)
}

/// The in-range input positions of output window `(i, j)`, in row-major window order.
fn window(
    (i, j): (usize, usize),
    [h, w]: [usize; 2],
    [kh, kw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
) -> impl Iterator<Item = usize> {
    (0..kh).flat_map(move |di| {
        (0..kw).filter_map(move |dj| {
            let r = (i * sh + di).checked_sub(ph).filter(|&r| r < h)?;
            let c = (j * sw + dj).checked_sub(pw).filter(|&c| c < w)?;
            Some(r * w + c)
        })
    })
}

/// Checks a pooling's lengths; returns `(planes, oh, ow)`.
fn pool_check(
    op: &'static str,
    x_len: usize,
    y_len: usize,
    dims: [usize; 4],
    pool: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<(usize, usize, usize)> {
    let (oh, ow) = super::pool_output(op, dims, pool, stride, padding)?;
    let [n, c, h, w] = dims;
    if x_len != n * c * h * w || y_len != n * c * oh * ow {
        return Err(bad(op, format!("operand lengths {x_len}, {y_len} do not fit {dims:?}")));
    }
    Ok((n * c, oh, ow))
}

fn max_pool2d(
    x: &HostMat,
    dims: [usize; 4],
    pool: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    y: &mut HostMat,
) -> Result<Vec<usize>> {
    let (planes, oh, ow) = pool_check("max_pool2d", x.data.len(), y.data.len(), dims, pool, stride, padding)?;
    let [_, _, h, w] = dims;
    // usize::MAX: a window wholly in the padding (no gradient), as the CPU max_pool2d.
    let mut arg = vec![usize::MAX; y.data.len()];
    for p in 0..planes {
        for i in 0..oh {
            for j in 0..ow {
                let o = (p * oh + i) * ow + j;
                let mut best = f32::NEG_INFINITY;
                for at in window((i, j), [h, w], pool, stride, padding).map(|k| p * h * w + k) {
                    if arg[o] == usize::MAX || x.data[at] > best {
                        best = x.data[at];
                        arg[o] = at;
                    }
                }
                y.data[o] = best;
            }
        }
    }
    Ok(arg)
}

fn avg_pool2d(
    x: &HostMat,
    dims: [usize; 4],
    pool: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    y: &mut HostMat,
) -> Result<()> {
    let (planes, oh, ow) = pool_check("avg_pool2d", x.data.len(), y.data.len(), dims, pool, stride, padding)?;
    let [_, _, h, w] = dims;
    let inv = 1.0 / (pool[0] * pool[1]) as f32;
    for p in 0..planes {
        for i in 0..oh {
            for j in 0..ow {
                let sum: f32 = window((i, j), [h, w], pool, stride, padding)
                    .map(|k| x.data[p * h * w + k])
                    .sum();
                y.data[(p * oh + i) * ow + j] = sum * inv;
            }
        }
    }
    Ok(())
}

fn avg_pool2d_backward(
    dy: &HostMat,
    dims: [usize; 4],
    pool: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dx: &mut HostMat,
) -> Result<()> {
    let op = "avg_pool2d_backward";
    let (planes, oh, ow) = pool_check(op, dx.data.len(), dy.data.len(), dims, pool, stride, padding)?;
    let [_, _, h, w] = dims;
    let inv = 1.0 / (pool[0] * pool[1]) as f32;
    dx.data.iter_mut().for_each(|v| *v = 0.0);
    for p in 0..planes {
        for i in 0..oh {
            for j in 0..ow {
                let gv = dy.data[(p * oh + i) * ow + j] * inv;
                for k in window((i, j), [h, w], pool, stride, padding) {
                    dx.data[p * h * w + k] += gv;
                }
            }
        }
    }
    Ok(())
}

fn max_pool2d_backward(dy: &HostMat, arg: &[usize], dx: &mut HostMat) -> Result<()> {
    same_len("max_pool2d_backward", &[dy.data.len(), arg.len()])?;
    dx.data.iter_mut().for_each(|v| *v = 0.0);
    for (&a, &g) in arg.iter().zip(&dy.data).filter(|(&a, _)| a != usize::MAX) {
        let slot = dx
            .data
            .get_mut(a)
            .ok_or_else(|| bad("max_pool2d_backward", format!("argmax {a} out of range")))?;
        *slot += g;
    }
    Ok(())
}

fn copy_columns(
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

/// One masked product through the CPU kernels.
fn gemm(op: GemmOp, a: &HostMat, b: &HostMat, mask: &TileMap, out: &mut HostMat, beta: Beta) -> Result<()> {
    let (ar, ac, br, bc) = (a.rows, a.cols, b.rows, b.cols);
    let (or, oc) = (out.rows, out.cols);
    let (a, b) = (MatRef::new(&a.data, ar, ac)?, MatRef::new(&b.data, br, bc)?);
    let o = MatMut::new(&mut out.data, or, oc)?;
    match op {
        GemmOp::Forward => crate::gemm::masked_matmul(a, b, mask, o, beta)?,
        GemmOp::Dx => crate::gemm::masked_matmul_dx(a, b, mask, o, beta)?,
        GemmOp::Dw => crate::gemm::masked_matmul_dw(a, b, mask, o, beta)?,
    }
    Ok(())
}

/// Runs a CPU convolution product into `out`: overwriting it (`Beta::Zero`), or into a
/// scratch buffer then added (`Beta::One`; the CPU kernels always overwrite).
fn conv_into(out: &mut HostMat, beta: Beta, run: impl FnOnce(&mut [f32]) -> Result<()>) -> Result<()> {
    match beta {
        Beta::Zero => run(&mut out.data),
        Beta::One => {
            let mut fresh = vec![0.0; out.data.len()];
            run(&mut fresh)?;
            out.data.iter_mut().zip(&fresh).for_each(|(o, v)| *o += v);
            Ok(())
        }
    }
}

/// The emulator's conv mask: the host mask (a private copy, `None` = every weight) and the
/// dims it was uploaded for.
#[derive(Debug)]
struct HostConvMask {
    dims: [usize; 5],
    mask: Option<ConvMask>,
}

fn conv_mask<'a>(op: &'static str, mask: &'a DeviceConv, dims: [usize; 5]) -> Result<Option<&'a ConvMask>> {
    let m = mask.value::<HostConvMask>(op)?;
    if m.dims != dims {
        return Err(Error::ConvMaskMismatch {
            op,
            expected: dims,
            got: m.dims,
        });
    }
    Ok(m.mask.as_ref())
}

fn bias_slice<'a>(op: &'static str, bias: Option<&'a DeviceMatrix>) -> Result<Option<&'a [f32]>> {
    bias.map(|b| host(op, b).map(|m| m.data.as_slice())).transpose()
}

impl MemoryOps for HostDevice {
    fn name(&self) -> String {
        "host emulator".into()
    }

    fn live_buffers(&self) -> usize {
        self.live.live()
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<DeviceMatrix> {
        self.mat(data.to_vec(), rows, cols)
    }

    fn filled(&self, rows: usize, cols: usize, value: f32) -> Result<DeviceMatrix> {
        let len = rows.checked_mul(cols).ok_or(Error::SizeOverflow { rows, cols })?;
        self.mat(vec![value; len], rows, cols)
    }

    fn download(&self, m: &DeviceMatrix) -> Result<Vec<f32>> {
        Ok(host("download", m)?.data.clone())
    }

    fn copy(&self, src: &DeviceMatrix, dst: &mut DeviceMatrix) -> Result<()> {
        let (s, d) = (host("copy", src)?, host_mut("copy", dst)?);
        same_len("copy", &[s.data.len(), d.data.len()])?;
        d.data.copy_from_slice(&s.data);
        Ok(())
    }

    fn copy_columns(
        &self,
        src: &DeviceMatrix,
        src_col: usize,
        dst: &mut DeviceMatrix,
        dst_col: usize,
        cols: usize,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "copy_columns";
        copy_columns(host(OP, src)?, src_col, host_mut(OP, dst)?, dst_col, cols, beta)
    }
}

impl GemmOps for HostDevice {
    fn upload_tile_map(&self, map: &TileMap) -> Result<DeviceTiles> {
        Ok(self.live.opaque(map.clone()))
    }

    fn masked_gemm(
        &self,
        op: GemmOp,
        _precision: Precision,
        a: &DeviceMatrix,
        b: &DeviceMatrix,
        tiles: &DeviceTiles,
        out: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "masked_gemm";
        let map = tiles.value::<TileMap>(OP)?;
        gemm(op, host(OP, a)?, host(OP, b)?, map, host_mut(OP, out)?, beta)
    }
}

impl ConvOps for HostDevice {
    fn upload_conv_mask(&self, dims: [usize; 5], mask: Option<&ConvMask>) -> Result<DeviceConv> {
        if let Some(m) = mask {
            if m.dims() != dims {
                return Err(Error::ConvMaskMismatch {
                    op: "upload_conv_mask",
                    expected: dims,
                    got: m.dims(),
                });
            }
        }
        Ok(self.live.opaque(HostConvMask {
            dims,
            mask: mask.cloned(),
        }))
    }

    fn masked_conv2d(
        &self,
        _precision: Precision,
        geom: &Conv2dGeometry,
        x: &DeviceMatrix,
        w: &DeviceMatrix,
        mask: &DeviceConv,
        bias: Option<&DeviceMatrix>,
        y: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "masked_conv2d";
        let m = conv_mask(OP, mask, geom.mask_dims())?;
        let (x, w, bias) = (host(OP, x)?, host(OP, w)?, bias_slice(OP, bias)?);
        conv_into(host_mut(OP, y)?, beta, |out| {
            crate::conv::conv2d(geom, &x.data, &w.data, m, bias, out)
        })
    }

    fn masked_conv2d_backward(
        &self,
        op: GemmOp,
        _precision: Precision,
        geom: &Conv2dGeometry,
        a: &DeviceMatrix,
        b: &DeviceMatrix,
        mask: &DeviceConv,
        out: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "masked_conv2d_backward";
        let m = conv_mask(OP, mask, geom.mask_dims())?;
        let (a, b) = (&host(OP, a)?.data, &host(OP, b)?.data);
        conv_into(host_mut(OP, out)?, beta, |out| match op {
            GemmOp::Dx => crate::conv::conv2d_backward_input(geom, a, b, m, out),
            GemmOp::Dw => crate::conv::conv2d_backward_weight(geom, a, b, m, out),
            GemmOp::Forward => Err(bad(OP, "the forward is masked_conv2d".into())),
        })
    }

    fn masked_conv_transpose2d(
        &self,
        op: GemmOp,
        _precision: Precision,
        geom: &ConvTranspose2dGeometry,
        a: &DeviceMatrix,
        b: &DeviceMatrix,
        mask: &DeviceConv,
        bias: Option<&DeviceMatrix>,
        out: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "masked_conv_transpose2d";
        use crate::conv::{conv_transpose2d, conv_transpose2d_backward_input, conv_transpose2d_backward_weight};
        let m = conv_mask(OP, mask, geom.mask_dims())?;
        let (a, b, bias) = (&host(OP, a)?.data, &host(OP, b)?.data, bias_slice(OP, bias)?);
        conv_into(host_mut(OP, out)?, beta, |out| match op {
            GemmOp::Forward => conv_transpose2d(geom, a, b, m, bias, out),
            GemmOp::Dx => conv_transpose2d_backward_input(geom, a, b, m, out),
            GemmOp::Dw => conv_transpose2d_backward_weight(geom, a, b, m, out),
        })
    }
}

impl ElementwiseOps for HostDevice {
    fn unary(&self, op: UnaryOp, x: &DeviceMatrix, y: &mut DeviceMatrix) -> Result<()> {
        unary(op, host(op.name(), x)?, host_mut(op.name(), y)?)
    }

    fn unary_backward(
        &self,
        op: UnaryOp,
        x: &DeviceMatrix,
        y: &DeviceMatrix,
        dy: &DeviceMatrix,
        dx: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()> {
        let n = op.name();
        unary_backward(op, host(n, x)?, host(n, y)?, host(n, dy)?, host_mut(n, dx)?, beta)
    }

    fn leaky_relu(&self, slope: f32, x: &DeviceMatrix, y: &mut DeviceMatrix) -> Result<()> {
        leaky_relu(slope, host("leaky_relu", x)?, host_mut("leaky_relu", y)?)
    }

    fn leaky_relu_backward(
        &self,
        slope: f32,
        x: &DeviceMatrix,
        dy: &DeviceMatrix,
        dx: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "leaky_relu";
        leaky_relu_backward(slope, host(OP, x)?, host(OP, dy)?, host_mut(OP, dx)?, beta)
    }

    fn binary(&self, op: BinaryOp, a: &DeviceMatrix, b: &DeviceMatrix, out: &mut DeviceMatrix) -> Result<()> {
        let n = op.name();
        binary(op, host(n, a)?, host(n, b)?, host_mut(n, out)?)
    }

    fn sign_diff(&self, a: &DeviceMatrix, b: &DeviceMatrix, s: &mut DeviceMatrix) -> Result<()> {
        const OP: &str = "sign_diff";
        let (a, b, s) = (host(OP, a)?, host(OP, b)?, host_mut(OP, s)?);
        same_len(OP, &[a.data.len(), b.data.len(), s.data.len()])?;
        for ((o, &u), &v) in s.data.iter_mut().zip(&a.data).zip(&b.data) {
            *o = if u > v {
                1.0
            } else if u < v {
                -1.0
            } else {
                0.0
            };
        }
        Ok(())
    }

    fn axpby(&self, alpha: f32, x: &DeviceMatrix, beta: f32, y: &mut DeviceMatrix) -> Result<()> {
        axpby(alpha, host("axpby", x)?, beta, host_mut("axpby", y)?)
    }

    fn fill(&self, m: &mut DeviceMatrix, value: f32) -> Result<()> {
        host_mut("fill", m)?.data.iter_mut().for_each(|v| *v = value);
        Ok(())
    }

    fn dropout(&self, x: &DeviceMatrix, keep: &DeviceMatrix, scale: f32, y: &mut DeviceMatrix) -> Result<()> {
        dropout(
            host("dropout", x)?,
            host("dropout", keep)?,
            scale,
            host_mut("dropout", y)?,
        )
    }

    /// The emulator's matrices are f32: the copy holds the bf16 values widened, so its f32
    /// products compute what the bf16 kernels do (bf16 operands, f32 sums) up to sum order.
    fn to_bf16(&self, x: &DeviceMatrix) -> Result<DeviceMatrix> {
        let x = host("to_bf16", x)?;
        self.mat(x.data.iter().map(|&v| round_to_bf16(v)).collect(), x.rows, x.cols)
    }
}

impl ReduceOps for HostDevice {
    fn bias_add_rows(&self, y: &mut DeviceMatrix, bias: &DeviceMatrix) -> Result<()> {
        bias_add_rows(host_mut("bias_add_rows", y)?, host("bias_add_rows", bias)?)
    }

    fn bias_grad(&self, dy: &DeviceMatrix, channels: usize, hw: usize, db: &mut DeviceMatrix) -> Result<()> {
        bias_grad(host("bias_grad", dy)?, channels, hw, host_mut("bias_grad", db)?)
    }

    fn sum_rows_into(&self, x: &DeviceMatrix, out: &mut DeviceMatrix, beta: Beta) -> Result<()> {
        sum_rows_into(host("sum_rows_into", x)?, host_mut("sum_rows_into", out)?, beta)
    }

    fn sum_all(&self, x: &DeviceMatrix, out: &mut DeviceMatrix) -> Result<()> {
        sum_all(host("sum_all", x)?, host_mut("sum_all", out)?)
    }
}

impl LossOps for HostDevice {
    fn softmax_cross_entropy(
        &self,
        logits: &DeviceMatrix,
        labels: &DeviceMatrix,
        grad_scale: f32,
        loss: &mut DeviceMatrix,
        dlogits: &mut DeviceMatrix,
    ) -> Result<()> {
        const OP: &str = "softmax_cross_entropy";
        softmax_cross_entropy(
            host(OP, logits)?,
            host(OP, labels)?,
            grad_scale,
            host_mut(OP, loss)?,
            host_mut(OP, dlogits)?,
        )
    }

    fn softmax_rows(&self, x: &DeviceMatrix, log: bool, y: &mut DeviceMatrix) -> Result<()> {
        softmax_rows(host("softmax_rows", x)?, log, host_mut("softmax_rows", y)?)
    }

    fn softmax_rows_backward(
        &self,
        y: &DeviceMatrix,
        dy: &DeviceMatrix,
        log: bool,
        dx: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "softmax_rows_backward";
        softmax_rows_backward(host(OP, y)?, host(OP, dy)?, log, host_mut(OP, dx)?, beta)
    }

    fn bce_with_logits(
        &self,
        z: &DeviceMatrix,
        t: &DeviceMatrix,
        grad_scale: f32,
        loss: &mut DeviceMatrix,
        dz: &mut DeviceMatrix,
    ) -> Result<()> {
        const OP: &str = "bce_with_logits";
        bce_with_logits(
            host(OP, z)?,
            host(OP, t)?,
            grad_scale,
            host_mut(OP, loss)?,
            host_mut(OP, dz)?,
        )
    }

    fn mse(
        &self,
        pred: &DeviceMatrix,
        target: &DeviceMatrix,
        grad_scale: f32,
        loss: &mut DeviceMatrix,
        dpred: &mut DeviceMatrix,
    ) -> Result<()> {
        const OP: &str = "mse";
        mse(
            host(OP, pred)?,
            host(OP, target)?,
            grad_scale,
            host_mut(OP, loss)?,
            host_mut(OP, dpred)?,
        )
    }
}

impl NormOps for HostDevice {
    fn norm_stats(&self, x: &DeviceMatrix, layout: NormLayout, eps: f32, stats: &mut DeviceMatrix) -> Result<()> {
        norm_stats(host("norm_stats", x)?, layout, eps, host_mut("norm_stats", stats)?)
    }

    fn norm_apply(
        &self,
        x: &DeviceMatrix,
        layout: NormLayout,
        stats: &DeviceMatrix,
        affine: Option<(&DeviceMatrix, &DeviceMatrix)>,
        y: &mut DeviceMatrix,
    ) -> Result<()> {
        const OP: &str = "norm_apply";
        let affine = match affine {
            Some((g, b)) => Some((host(OP, g)?, host(OP, b)?)),
            None => None,
        };
        norm_apply(host(OP, x)?, layout, host(OP, stats)?, affine, host_mut(OP, y)?)
    }

    fn norm_grad_sums(
        &self,
        x: &DeviceMatrix,
        dy: &DeviceMatrix,
        layout: NormLayout,
        stats: &DeviceMatrix,
        gamma: Option<&DeviceMatrix>,
        over: NormReduce,
        sums: &mut DeviceMatrix,
    ) -> Result<()> {
        const OP: &str = "norm_grad_sums";
        let gamma = gamma.map(|g| host(OP, g)).transpose()?;
        norm_grad_sums(
            host(OP, x)?,
            host(OP, dy)?,
            layout,
            host(OP, stats)?,
            gamma,
            over,
            host_mut(OP, sums)?,
        )
    }

    fn norm_grad_input(
        &self,
        x: &DeviceMatrix,
        dy: &DeviceMatrix,
        layout: NormLayout,
        stats: &DeviceMatrix,
        gamma: Option<&DeviceMatrix>,
        sums: Option<&DeviceMatrix>,
        dx: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "norm_grad_input";
        let gamma = gamma.map(|g| host(OP, g)).transpose()?;
        let sums = sums.map(|m| host(OP, m)).transpose()?;
        norm_grad_input(
            host(OP, x)?,
            host(OP, dy)?,
            layout,
            host(OP, stats)?,
            gamma,
            sums,
            host_mut(OP, dx)?,
            beta,
        )
    }
}

impl PoolOps for HostDevice {
    fn max_pool2d(
        &self,
        x: &DeviceMatrix,
        dims: [usize; 4],
        pool: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        y: &mut DeviceMatrix,
    ) -> Result<DeviceIndex> {
        const OP: &str = "max_pool2d";
        let arg = max_pool2d(host(OP, x)?, dims, pool, stride, padding, host_mut(OP, y)?)?;
        Ok(self.live.opaque(arg))
    }

    fn avg_pool2d(
        &self,
        x: &DeviceMatrix,
        dims: [usize; 4],
        pool: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        y: &mut DeviceMatrix,
    ) -> Result<()> {
        avg_pool2d(
            host("avg_pool2d", x)?,
            dims,
            pool,
            stride,
            padding,
            host_mut("avg_pool2d", y)?,
        )
    }

    fn avg_pool2d_backward(
        &self,
        dy: &DeviceMatrix,
        dims: [usize; 4],
        pool: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dx: &mut DeviceMatrix,
    ) -> Result<()> {
        const OP: &str = "avg_pool2d_backward";
        avg_pool2d_backward(host(OP, dy)?, dims, pool, stride, padding, host_mut(OP, dx)?)
    }

    fn max_pool2d_backward(&self, dy: &DeviceMatrix, argmax: &DeviceIndex, dx: &mut DeviceMatrix) -> Result<()> {
        const OP: &str = "max_pool2d_backward";
        let arg = argmax.value::<Vec<usize>>(OP)?;
        max_pool2d_backward(host(OP, dy)?, arg, host_mut(OP, dx)?)
    }
}

impl ResampleOps for HostDevice {
    fn upload_plane_map(&self, map: &PlaneMap) -> Result<DevicePlaneMap> {
        Ok(self.live.opaque(map.clone()))
    }

    fn plane_map(&self, map: &DevicePlaneMap, x: &DeviceMatrix, y: &mut DeviceMatrix) -> Result<()> {
        const OP: &str = "plane_map";
        let map = map.value::<PlaneMap>(OP)?;
        map.apply(&host(OP, x)?.data, &mut host_mut(OP, y)?.data)
    }
}

impl OptimOps for HostDevice {
    fn optimizer_step(
        &self,
        step: OptimizerStep,
        w: &mut DeviceMatrix,
        g: &DeviceMatrix,
        first: &mut DeviceMatrix,
        second: &mut DeviceMatrix,
    ) -> Result<()> {
        const OP: &str = "optimizer_step";
        crate::optim::apply(
            step,
            &mut host_mut(OP, w)?.data,
            &host(OP, g)?.data,
            &mut host_mut(OP, first)?.data,
            &mut host_mut(OP, second)?.data,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::round_to_bf16;

    /// Round to nearest, ties to even, on bf16's 8 significant bits; NaN stays NaN, values past
    /// bf16's largest finite round to infinity (as `__float2bfloat16_rn`).
    #[test]
    fn bf16_rounding_is_nearest_even() {
        let one_ulp = 1.0 / 128.0; // bf16's spacing in [1, 2)
        assert_eq!(round_to_bf16(1.0), 1.0);
        assert_eq!(round_to_bf16(1.0 + one_ulp / 2.0), 1.0); // tie → even (1.0)
        assert_eq!(round_to_bf16(1.0 + 3.0 * one_ulp / 2.0), 1.0 + 2.0 * one_ulp); // tie → even
        assert_eq!(round_to_bf16(1.0 + 0.6 * one_ulp), 1.0 + one_ulp);
        assert_eq!(round_to_bf16(-1.0 - 0.4 * one_ulp), -1.0);
        assert_eq!(round_to_bf16(f32::MAX), f32::INFINITY);
        assert_eq!(round_to_bf16(f32::NEG_INFINITY), f32::NEG_INFINITY);
        assert!(round_to_bf16(f32::NAN).is_nan());
        assert_eq!(round_to_bf16(-0.0).to_bits(), (-0.0f32).to_bits());
    }
}
