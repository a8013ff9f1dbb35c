//! The CUDA paths of batch norm, group norm, the row softmaxes, BCE on logits, MAE, slices and
//! axis reductions (formulas and `# Shapes` in [`super::batch_norm`], [`super::norm`],
//! [`super::softmax`], [`super::bce`], [`super::mae`], [`super::shape_ops`], [`super::reduce`]).
//!
//! | op | device kernels ([`biokernels::device::NormOps`], [`biokernels::device::LossOps`]) |
//! |---|---|
//! | `batch_norm2d` (train) | `norm_stats` → `norm_apply`; the `(3, C)` statistics are read back for the running update; backward `norm_grad_sums` per channel (`dβ`, `dγ`), `norm_grad_sums` with `γ` and `norm_grad_input` |
//! | `batch_norm2d` (eval) | the running statistics uploaded, `norm_apply`; backward `norm_grad_input` without sums |
//! | `group_norm` | as batch norm in training, one statistic per (sample, group), no read-back |
//! | `softmax`, `log_softmax` | `softmax_rows`, `softmax_rows_backward` |
//! | `binary_cross_entropy_with_logits` | `bce_with_logits` + `sum_all`; `dt = −z·g/N` by `scaled` |
//! | `mae` | `sign_diff`, then `(a − b)·sign` summed by `sum_all` and scaled; backward `±sign·g/N` |
//! | `slice` along any axis | as `outer`-row matrices the slice is a column block: `copy_columns` out; backward places it into zeros |
//! | `sum_axis`, `mean_axis` of the last axis | a product with a ones column, `(outer, len)·1 (len, 1)`, then the scale; backward `g (outer, 1)·1 (1, len)` |
//! | `sum_axis`, `mean_axis` of the first axis | `sum_rows_into` on the `(len, inner)` view; backward the product `1 (len, 1)·g (1, inner)` |

use biokernels::cuda::{BinaryOp, GemmOp, Precision};
use biokernels::device::{NormLayout, NormReduce};
use biokernels::gemm::Beta;

use crate::cuda::{select_columns, CudaBuffer};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::ops::batch_norm::BatchNormState;
use crate::ops::gpu::dbuf;
use crate::shape::numel;
use crate::tensor::Tensor;

/// Where a device normalisation takes its statistics from.
pub(crate) enum NormStats<'a, T: Float> {
    /// Batch norm in training: the batch's, with the running statistics updated.
    BatchTrain(&'a mut BatchNormState<T>),
    /// Batch norm in evaluation: the running statistics.
    BatchEval(&'a BatchNormState<T>),
    /// Group norm: the sample's group, `eps` added to the variance.
    Group(f64),
}

/// `[row 0 | row 1]` of a `(2, c)` buffer as two `(1, c)` buffers.
fn split_rows(sums: &CudaBuffer, c: usize) -> Result<(CudaBuffer, CudaBuffer)> {
    let mut first = sums.zeros(1, c)?;
    let mut second = sums.zeros(1, c)?;
    select_columns(sums, 1, 2 * c, 0, c, false, &mut first, Beta::Zero)?;
    select_columns(sums, 1, 2 * c, c, c, false, &mut second, Beta::Zero)?;
    Ok((first, second))
}

impl<T: Float> Graph<T> {
    /// `batch_norm2d` / `group_norm` on the device (shapes checked by the caller).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gpu_norm(
        &self,
        op: &'static str,
        [x, gamma, beta]: [&Var; 3],
        [xt, gt, bt]: [Tensor<T>; 3],
        layout: NormLayout,
        stats_from: NormStats<'_, T>,
    ) -> Result<Var> {
        let xb = dbuf(op, &xt)?.clone();
        let gb = dbuf(op, &gt)?.clone();
        let bb = dbuf(op, &bt)?.clone();
        let s_count = layout.statistics();
        let (stats, batch_stats) = match stats_from {
            NormStats::BatchEval(state) => {
                let eps = T::from_f64(state.eps);
                let mut host = Vec::with_capacity(3 * s_count);
                host.extend(state.running_mean.iter().map(|v| v.to_f64() as f32));
                host.extend(state.running_var.iter().map(|v| v.to_f64() as f32));
                host.extend(
                    state
                        .running_var
                        .iter()
                        .map(|&v| (T::ONE / (v + eps).sqrt()).to_f64() as f32),
                );
                (xb.upload_like(&host, 3, s_count)?, false)
            }
            NormStats::BatchTrain(state) => {
                let stats = self.gpu_norm_stats(op, &xb, layout, state.eps)?;
                // The running update on the host, in T as the CPU path (one read-back of 2·C
                // values per layer and step).
                let host = stats.download()?;
                let m = layout.count();
                let (mf, mo) = (T::from_usize(m), T::from_f64(state.momentum));
                for ch in 0..s_count {
                    let (mu, var) = (
                        T::from_f64(f64::from(host[ch])),
                        T::from_f64(f64::from(host[s_count + ch])),
                    );
                    let unbiased = var * mf / T::from_usize(m - 1);
                    state.running_mean[ch] = (T::ONE - mo) * state.running_mean[ch] + mo * mu;
                    state.running_var[ch] = (T::ONE - mo) * state.running_var[ch] + mo * unbiased;
                }
                (stats, true)
            }
            NormStats::Group(eps) => (self.gpu_norm_stats(op, &xb, layout, eps)?, true),
        };
        let mut y = xb.zeros_like()?;
        CudaBuffer::launch(op, &mut y, &[&xb, &stats, &gb, &bb], |d, out| {
            d.norm_apply(
                xb.matrix(),
                layout,
                stats.matrix(),
                Some((gb.matrix(), bb.matrix())),
                out,
            )
        })?;
        let c = layout.channels;
        Ok(self.push_device(
            Tensor::from_cuda(y, xt.shape().to_vec()),
            &[*x, *gamma, *beta],
            move |g, needs| {
                let (dgamma, dbeta) = if needs[1] || needs[2] {
                    let mut sums = xb.zeros(2, c)?;
                    CudaBuffer::launch(op, &mut sums, &[&xb, g, &stats], |d, out| {
                        d.norm_grad_sums(
                            xb.matrix(),
                            g.matrix(),
                            layout,
                            stats.matrix(),
                            None,
                            NormReduce::Channel,
                            out,
                        )
                    })?;
                    let (db, dg) = split_rows(&sums, c)?;
                    (needs[1].then_some(dg), needs[2].then_some(db))
                } else {
                    (None, None)
                };
                let dx = if needs[0] {
                    let sums = if batch_stats {
                        let mut sums = xb.zeros(2, s_count)?;
                        CudaBuffer::launch(op, &mut sums, &[&xb, g, &stats, &gb], |d, out| {
                            d.norm_grad_sums(
                                xb.matrix(),
                                g.matrix(),
                                layout,
                                stats.matrix(),
                                Some(gb.matrix()),
                                NormReduce::Statistic,
                                out,
                            )
                        })?;
                        Some(sums)
                    } else {
                        None
                    };
                    let mut dx = xb.zeros_like()?;
                    let mut inputs = vec![&xb, g, &stats, &gb];
                    inputs.extend(sums.as_ref());
                    CudaBuffer::launch(op, &mut dx, &inputs, |d, out| {
                        d.norm_grad_input(
                            xb.matrix(),
                            g.matrix(),
                            layout,
                            stats.matrix(),
                            Some(gb.matrix()),
                            sums.as_ref().map(CudaBuffer::matrix),
                            out,
                            Beta::Zero,
                        )
                    })?;
                    Some(dx)
                } else {
                    None
                };
                Ok(vec![dx, dgamma, dbeta])
            },
        ))
    }

    /// The `(3, S)` statistics of `x` on its device.
    fn gpu_norm_stats(&self, op: &'static str, xb: &CudaBuffer, layout: NormLayout, eps: f64) -> Result<CudaBuffer> {
        let mut stats = xb.zeros(3, layout.statistics())?;
        CudaBuffer::launch(op, &mut stats, &[xb], |d, out| {
            d.norm_stats(xb.matrix(), layout, eps as f32, out)
        })?;
        Ok(stats)
    }

    /// `slice(x, axis, start, ..)` on the device (`shape` the slice's, checked by the caller).
    pub(crate) fn gpu_slice(
        &self,
        x: &Var,
        xt: Tensor<T>,
        axis: usize,
        start: usize,
        shape: Vec<usize>,
    ) -> Result<Var> {
        const OP: &str = "slice";
        let xb = dbuf(OP, &xt)?.clone();
        let outer = numel(&xt.shape()[..axis]);
        let width = numel(&xt.shape()[axis..]);
        let inner = numel(&xt.shape()[axis + 1..]);
        let (off, len) = (start * inner, shape[axis] * inner);
        if outer == 0 || len == 0 {
            return Err(Error::UnsupportedOnDevice {
                op: OP,
                device: xt.device(),
            });
        }
        let mut y = xb.zeros(outer, len)?;
        select_columns(&xb, outer, width, off, len, false, &mut y, Beta::Zero)?;
        let y = y.view_shape(&shape)?;
        let x_shape = xt.shape().to_vec();
        Ok(self.push_device(Tensor::from_cuda(y, shape), &[*x], move |g, _| {
            let mut dx = xb.zeros(outer, width)?;
            select_columns(g, outer, width, off, len, true, &mut dx, Beta::Zero)?;
            Ok(vec![Some(dx.view_shape(&x_shape)?)])
        }))
    }

    /// `sum_axis` / `mean_axis` (`scale` = 1 or 1/len) on the device, for the last axis
    /// (`inner` = 1) or the first (`outer` = 1); any other axis is `UnsupportedOnDevice`.
    pub(crate) fn gpu_reduce_axis(
        &self,
        op: &'static str,
        x: &Var,
        xt: Tensor<T>,
        (outer, len, inner): (usize, usize, usize),
        scale: f32,
        shape: Vec<usize>,
    ) -> Result<Var> {
        let xb = dbuf(op, &xt)?.clone();
        let x_shape = xt.shape().to_vec();
        if outer * len * inner == 0 || (inner != 1 && outer != 1) {
            return Err(Error::UnsupportedOnDevice {
                op,
                device: xt.device(),
            });
        }
        // Both forms are one product with a ones vector on the masked GEMM (a full tile map),
        // the same sums as the CPU's up to their order.
        let product = |a: &CudaBuffer, (m, k): (usize, usize), b: &CudaBuffer, n: usize| -> Result<CudaBuffer> {
            let tiles = a.full_tile_map(k, n)?;
            CudaBuffer::product(GemmOp::Forward, Precision::F32, (a, (m, k)), (b, (k, n)), &tiles)
        };
        let y = if inner == 1 {
            product(&xb.view(outer, len)?, (outer, len), &xb.ones(len, 1)?, 1)?
        } else {
            let mut y = xb.zeros(1, inner)?;
            let xv = xb.view(len, inner)?;
            CudaBuffer::launch(op, &mut y, &[&xv], |d, out| {
                d.sum_rows_into(xv.matrix(), out, Beta::Zero)
            })?;
            y
        };
        let y = if scale == 1.0 { y } else { y.scaled(scale)? };
        let y = y.view_shape(&shape)?;
        Ok(self.push_device(Tensor::from_cuda(y, shape), &[*x], move |g, _| {
            let dx = if inner == 1 {
                product(&g.view(outer, 1)?, (outer, 1), &xb.ones(1, len)?, len)?
            } else {
                product(&xb.ones(len, 1)?, (len, 1), &g.view(1, inner)?, inner)?
            };
            let dx = if scale == 1.0 { dx } else { dx.scaled(scale)? };
            Ok(vec![Some(dx.view_shape(&x_shape)?)])
        }))
    }

    /// `softmax` / `log_softmax` along the last axis (`c` of it) on the device.
    pub(crate) fn gpu_softmax(&self, op: &'static str, x: &Var, xt: Tensor<T>, c: usize, log: bool) -> Result<Var> {
        let xb = dbuf(op, &xt)?.view(xt.numel() / c, c)?;
        let mut y = xb.zeros_like()?;
        CudaBuffer::launch(op, &mut y, &[&xb], |d, out| d.softmax_rows(xb.matrix(), log, out))?;
        let ys = y.clone();
        Ok(
            self.push_device(Tensor::from_cuda(y, xt.shape().to_vec()), &[*x], move |g, _| {
                let gv = g.view(ys.rows(), ys.cols())?;
                let mut dx = ys.zeros_like()?;
                CudaBuffer::launch(op, &mut dx, &[&ys, &gv], |d, out| {
                    d.softmax_rows_backward(ys.matrix(), gv.matrix(), log, out, Beta::Zero)
                })?;
                Ok(vec![Some(dx)])
            }),
        )
    }

    /// `mae` on the device (`a`, `b` of one checked shape): `|a − b| = (a − b)·sign(a − b)`.
    pub(crate) fn gpu_mae(&self, a: &Var, b: &Var, at: Tensor<T>, bt: Tensor<T>) -> Result<Var> {
        const OP: &str = "mae";
        let ab = dbuf(OP, &at)?.clone();
        let bb = dbuf(OP, &bt)?.view(ab.rows(), ab.cols())?;
        let inv_n = 1.0 / at.numel() as f32;
        let mut sign = ab.zeros_like()?;
        CudaBuffer::launch(OP, &mut sign, &[&ab, &bb], |d, out| {
            d.sign_diff(ab.matrix(), bb.matrix(), out)
        })?;
        let mut diff = ab.zeros_like()?;
        CudaBuffer::launch(OP, &mut diff, &[&ab, &bb], |d, out| {
            d.binary(BinaryOp::Sub, ab.matrix(), bb.matrix(), out)
        })?;
        let mut abs = ab.zeros_like()?;
        CudaBuffer::launch(OP, &mut abs, &[&diff, &sign], |d, out| {
            d.binary(BinaryOp::Mul, diff.matrix(), sign.matrix(), out)
        })?;
        let mut loss = ab.zeros(1, 1)?;
        CudaBuffer::launch("sum_all", &mut loss, &[&abs], |d, out| d.sum_all(abs.matrix(), out))?;
        let loss = loss.scaled(inv_n)?;
        Ok(
            self.push_device(Tensor::from_cuda(loss, Vec::new()), &[*a, *b], move |g, needs| {
                let s = crate::ops::gpu::scalar(g)? * inv_n;
                Ok(vec![
                    needs[0].then(|| sign.scaled(s)).transpose()?,
                    needs[1].then(|| sign.scaled(-s)).transpose()?,
                ])
            }),
        )
    }

    /// `binary_cross_entropy_with_logits` on the device (`z`, `t` of one checked shape).
    pub(crate) fn gpu_bce_logits(
        &self,
        op: &'static str,
        z: &Var,
        t: &Var,
        zt: Tensor<T>,
        tt: Tensor<T>,
    ) -> Result<Var> {
        let zb = dbuf(op, &zt)?.clone();
        let tb = dbuf(op, &tt)?.view(zb.rows(), zb.cols())?;
        let inv_n = 1.0 / zt.numel() as f32;
        let mut per = zb.zeros_like()?;
        let mut dz = zb.zeros_like()?;
        CudaBuffer::bce_with_logits(&zb, &tb, inv_n, &mut per, &mut dz)?;
        let mut loss = zb.zeros(1, 1)?;
        CudaBuffer::launch("sum_all", &mut loss, &[&per], |d, out| d.sum_all(per.matrix(), out))?;
        let loss = loss.scaled(inv_n)?;
        Ok(
            self.push_device(Tensor::from_cuda(loss, Vec::new()), &[*z, *t], move |g, needs| {
                let s = crate::ops::gpu::scalar(g)?;
                Ok(vec![
                    needs[0].then(|| dz.scaled(s)).transpose()?,
                    needs[1].then(|| zb.scaled(-s * inv_n)).transpose()?,
                ])
            }),
        )
    }
}
