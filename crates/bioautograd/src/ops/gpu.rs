//! The CUDA paths of the ops (forward and backward), dispatched from each op when its operands
//! live on a CUDA device. Formulas and `# Shapes` are those of the op's own module; this file
//! only says how each runs on the device.
//!
//! | op | device kernels (`biokernels::cuda::CudaDevice`) |
//! |---|---|
//! | `matmul`, `masked_matmul` | `masked_gemm` forward / dX / dW (a full tile map without a mask), [`Graph::gpu_precision`] |
//! | `add`, `sub`, `mul` (same shape) | `binary`; backward `axpby` / `binary` |
//! | `scale` (by a constant) | `axpby` (β = 0), both ways |
//! | `add` of a bias row (`(.., n) + (n)`) | `copy` + `bias_add_rows`; backward `sum_rows_into` |
//! | `conv2d`, `conv_transpose2d` (mask, bias) | `masked_conv2d(_backward)`, `masked_conv_transpose2d`, `bias_grad` |
//! | `relu`, `tanh`, `sigmoid`, `swish` | `unary`, `unary_backward` |
//! | `leaky_relu` | `leaky_relu`, `leaky_relu_backward` (the slope as f32) |
//! | `max_pool2d`, `avg_pool2d` (with padding) | `max_pool2d` / `max_pool2d_backward`, `avg_pool2d` / `avg_pool2d_backward` |
//! | `reshape`, `flatten` | metadata only |
//! | `concat` (any axis) | one `copy_columns` per input into its column block of the `outer`-row output; backward extracts the blocks |
//! | `transpose` (any two axes) | `plane_map` with one tap of weight 1 per output (the sample's permutation, or the whole tensor's when the batch axis moves), exact; backward the adjoint map |
//! | `upsample2d` (nearest, bilinear) | `plane_map` with the CPU op's four taps per output; backward the adjoint map (the CPU scatter's order) |
//! | `sum`, `mean` | `sum_all`; backward `fill` |
//! | `cross_entropy` (labels) | `softmax_cross_entropy` + `sum_all` |
//! | `mse` | `mse` |
//! | `dropout` | the CPU's mask (same stream), uploaded; `dropout` |
//! | `elman_sequence` | per step: `copy_columns` (slice a step out, place it back), two GEMMs, `bias_add_rows`, `unary`; BPTT per step |
//!
//! The scalar upstream gradient of a loss (`sum`, `mean`, `cross_entropy`, `mse`) is read back
//! from the device (one `f32`, one synchronisation per loss) to scale the gradient on the host
//! side of the launch.

use std::sync::Arc;

use biokernels::cuda::{BinaryOp, GemmOp, UnaryOp};
use biokernels::device::PlaneMap;
use biokernels::gemm::Beta;
use biokernels::{ConvMask, TileMap};

use crate::cuda::{mat_dims, select_columns, CudaBuffer, PlaneKey};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::ops::conv::ConvGeometry;
use crate::ops::rnn::RnnActivation;
use crate::ops::upsample::{plane_taps, Interpolation};
use crate::shape::numel;
use crate::tensor::Tensor;

/// The device buffer of a CUDA tensor.
pub(crate) fn dbuf<'a, T: Float>(op: &'static str, t: &'a Tensor<T>) -> Result<&'a CudaBuffer> {
    t.cuda_buffer()
        .ok_or(Error::UnsupportedOnDevice { op, device: t.device() })
}

/// A zero buffer of `shape` on `like`'s device.
fn zeros_shape(like: &CudaBuffer, shape: &[usize]) -> Result<CudaBuffer> {
    let (r, c) = mat_dims(shape);
    like.zeros(r, c)
}

/// The one value of a one-element device gradient (a loss's upstream gradient).
pub(crate) fn scalar(g: &CudaBuffer) -> Result<f32> {
    g.download()?.first().copied().ok_or(Error::InvalidArgument {
        op: "backward",
        what: "empty upstream gradient".into(),
    })
}

/// `b` scaled by the upstream scalar `s` (the same buffer when `s = 1`).
fn times(b: &CudaBuffer, s: f32) -> Result<CudaBuffer> {
    if s == 1.0 {
        Ok(b.clone())
    } else {
        b.scaled(s)
    }
}

impl<T: Float> Graph<T> {
    /// `matmul` / `masked_matmul` on the device.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gpu_product(
        &self,
        op: &'static str,
        x: &Var,
        w: &Var,
        xt: Tensor<T>,
        wt: Tensor<T>,
        mask: Option<Arc<TileMap>>,
        (m, k, n): (usize, usize, usize),
    ) -> Result<Var> {
        let (xb, wb) = (dbuf(op, &xt)?.clone(), dbuf(op, &wt)?.clone());
        let prec = self.gpu_precision();
        let tiles = xb.tile_map_or_full(mask.as_ref(), k, n)?;
        let y = CudaBuffer::product(GemmOp::Forward, prec, (&xb, (m, k)), (&wb, (k, n)), &tiles)?;
        Ok(
            self.push_device(Tensor::from_cuda(y, vec![m, n]), &[*x, *w], move |g, needs| {
                let dx = needs[0]
                    .then(|| CudaBuffer::product(GemmOp::Dx, prec, (g, (m, n)), (&wb, (k, n)), &tiles))
                    .transpose()?;
                let dw = needs[1]
                    .then(|| CudaBuffer::product(GemmOp::Dw, prec, (&xb, (m, k)), (g, (m, n)), &tiles))
                    .transpose()?;
                Ok(vec![dx, dw])
            }),
        )
    }

    /// `add` / `sub` / `mul` on the device: same shapes, or `add` of a bias row.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gpu_binary(
        &self,
        op: &'static str,
        a: &Var,
        b: &Var,
        ta: Tensor<T>,
        tb: Tensor<T>,
        out: Vec<usize>,
        kind: BinaryOp,
    ) -> Result<Var> {
        let (ab, bb) = (dbuf(op, &ta)?.clone(), dbuf(op, &tb)?.clone());
        let n = numel(&out);
        if ta.shape() == tb.shape() {
            // The elementwise kernels only look at lengths: no views needed.
            let mut y = zeros_shape(&ab, &out)?;
            CudaBuffer::launch(kind.name(), &mut y, &[&ab, &bb], |d, out| {
                d.binary(kind, ab.matrix(), bb.matrix(), out)
            })?;
            return Ok(self.push_device(Tensor::from_cuda(y, out), &[*a, *b], move |g, needs| {
                Ok(match kind {
                    BinaryOp::Add => vec![needs[0].then(|| g.clone()), needs[1].then(|| g.clone())],
                    BinaryOp::Sub => vec![
                        needs[0].then(|| g.clone()),
                        needs[1].then(|| g.scaled(-1.0)).transpose()?,
                    ],
                    BinaryOp::Mul => {
                        let prod = |other: &CudaBuffer| -> Result<CudaBuffer> {
                            let mut o = g.zeros_like()?;
                            CudaBuffer::launch("mul", &mut o, &[g, other], |d, out| {
                                d.binary(BinaryOp::Mul, g.matrix(), other.matrix(), out)
                            })?;
                            Ok(o)
                        };
                        vec![
                            needs[0].then(|| prod(&bb)).transpose()?,
                            needs[1].then(|| prod(&ab)).transpose()?,
                        ]
                    }
                })
            }));
        }
        // A bias row: one operand has the output's shape, the other its trailing axes.
        let trailing = |s: &[usize]| {
            let lead = s.iter().take_while(|&&d| d == 1).count();
            let rest = &s[lead..];
            rest.len() <= out.len() && out[out.len() - rest.len()..] == *rest
        };
        let a_full = ta.shape() == out.as_slice() && trailing(tb.shape());
        let b_full = tb.shape() == out.as_slice() && trailing(ta.shape());
        if kind != BinaryOp::Add || !(a_full || b_full) || n == 0 {
            return Err(Error::UnsupportedOnDevice {
                op,
                device: ta.device(),
            });
        }
        let (full, row) = if a_full { (&ab, &bb) } else { (&bb, &ab) };
        let p = row.len();
        let rows = n / p.max(1);
        let mut y = full.view(rows, p)?;
        if y.rows() == full.rows() && y.cols() == full.cols() {
            // `view` returned the shared buffer itself: write into a copy.
            y = y.deep_copy()?;
        }
        let bias = row.view(1, p)?;
        CudaBuffer::launch("bias_add_rows", &mut y, &[&bias], |d, out| {
            d.bias_add_rows(out, bias.matrix())
        })?;
        let y = y.view_shape(&out)?;
        Ok(self.push_device(Tensor::from_cuda(y, out), &[*a, *b], move |g, needs| {
            let need_row = if a_full { needs[1] } else { needs[0] };
            let need_full = if a_full { needs[0] } else { needs[1] };
            let d_row = if need_row {
                let gv = g.view(rows, p)?;
                let mut d = gv.zeros(1, p)?;
                CudaBuffer::launch("sum_rows_into", &mut d, &[&gv], |dev, out| {
                    dev.sum_rows_into(gv.matrix(), out, Beta::Zero)
                })?;
                Some(d)
            } else {
                None
            };
            let d_full = need_full.then(|| g.clone());
            Ok(if a_full {
                vec![d_full, d_row]
            } else {
                vec![d_row, d_full]
            })
        }))
    }

    /// `conv2d` / `conv_transpose2d` on the device.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gpu_conv(
        &self,
        op: &'static str,
        geom: ConvGeometry,
        mask_dims: [usize; 5],
        out_shape: Vec<usize>,
        parents: Vec<Var>,
        xt: Tensor<T>,
        wt: Tensor<T>,
        bt: Option<Tensor<T>>,
        mask: Option<Arc<ConvMask>>,
        cout: usize,
    ) -> Result<Var> {
        let (xb, wb) = (dbuf(op, &xt)?.clone(), dbuf(op, &wt)?.clone());
        let bb = bt.as_ref().map(|b| dbuf(op, b).cloned()).transpose()?;
        let prec = self.gpu_precision();
        let dmask = xb.conv_mask(mask_dims, mask.as_ref())?;
        let mut y = zeros_shape(&xb, &out_shape)?;
        CudaBuffer::conv(GemmOp::Forward, prec, &geom, &xb, &wb, &dmask, bb.as_ref(), &mut y)?;
        let (x_shape, w_shape) = (xt.shape().to_vec(), wt.shape().to_vec());
        let hw = out_shape[2] * out_shape[3];
        let batch = out_shape[0];
        Ok(
            self.push_device(Tensor::from_cuda(y, out_shape), &parents, move |g, needs| {
                let gv = g.view(batch, cout * hw)?;
                let dx = if needs[0] {
                    let mut dx = zeros_shape(&xb, &x_shape)?;
                    CudaBuffer::conv(GemmOp::Dx, prec, &geom, &gv, &wb, &dmask, None, &mut dx)?;
                    Some(dx)
                } else {
                    None
                };
                let dw = if needs[1] {
                    let mut dw = zeros_shape(&xb, &w_shape)?;
                    CudaBuffer::conv(GemmOp::Dw, prec, &geom, &xb, &gv, &dmask, None, &mut dw)?;
                    Some(dw)
                } else {
                    None
                };
                let mut out = vec![dx, dw];
                if needs.len() == 3 {
                    out.push(if needs[2] {
                        let mut db = gv.zeros(1, cout)?;
                        CudaBuffer::launch("bias_grad", &mut db, &[&gv], |d, out| {
                            d.bias_grad(gv.matrix(), cout, hw, out)
                        })?;
                        Some(db)
                    } else {
                        None
                    });
                }
                Ok(out)
            }),
        )
    }

    /// `relu` / `tanh` / `sigmoid` on the device.
    pub(crate) fn gpu_unary(&self, op: &'static str, x: &Var, xt: Tensor<T>) -> Result<Var> {
        let kind = match op {
            "relu" => UnaryOp::Relu,
            "tanh" => UnaryOp::Tanh,
            "sigmoid" => UnaryOp::Sigmoid,
            "swish" => UnaryOp::Swish,
            _ => {
                return Err(Error::UnsupportedOnDevice {
                    op,
                    device: xt.device(),
                })
            }
        };
        let xb = dbuf(op, &xt)?.clone();
        let mut y = xb.zeros_like()?;
        CudaBuffer::launch(kind.name(), &mut y, &[&xb], |d, out| d.unary(kind, xb.matrix(), out))?;
        let yb = y.clone();
        Ok(
            self.push_device(Tensor::from_cuda(y, xt.shape().to_vec()), &[*x], move |g, _| {
                let mut dx = xb.zeros_like()?;
                CudaBuffer::launch(kind.name(), &mut dx, &[&xb, &yb, g], |d, out| {
                    d.unary_backward(kind, xb.matrix(), yb.matrix(), g.matrix(), out, Beta::Zero)
                })?;
                Ok(vec![Some(dx)])
            }),
        )
    }

    /// `leaky_relu` on the device (the slope as f32).
    pub(crate) fn gpu_leaky_relu(&self, x: &Var, xt: Tensor<T>, slope: f32) -> Result<Var> {
        const OP: &str = "leaky_relu";
        let xb = dbuf(OP, &xt)?.clone();
        let mut y = xb.zeros_like()?;
        CudaBuffer::launch(OP, &mut y, &[&xb], |d, out| d.leaky_relu(slope, xb.matrix(), out))?;
        Ok(
            self.push_device(Tensor::from_cuda(y, xt.shape().to_vec()), &[*x], move |g, _| {
                let mut dx = xb.zeros_like()?;
                CudaBuffer::launch(OP, &mut dx, &[&xb, g], |d, out| {
                    d.leaky_relu_backward(slope, xb.matrix(), g.matrix(), out, Beta::Zero)
                })?;
                Ok(vec![Some(dx)])
            }),
        )
    }

    /// `concat` along `axis` on the device: as matrices of `outer` rows, input `i` is the
    /// column block `[off_i·inner, (off_i + l_i)·inner)` of the output (a strided copy per
    /// input, `select_columns`); backward extracts the blocks of the upstream gradient.
    pub(crate) fn gpu_concat(
        &self,
        xs: &[Var],
        ts: &[Tensor<T>],
        axis: usize,
        outer: usize,
        inner: usize,
    ) -> Result<Var> {
        const OP: &str = "concat";
        let bufs: Vec<CudaBuffer> = ts.iter().map(|t| dbuf(OP, t).cloned()).collect::<Result<_>>()?;
        let lens: Vec<usize> = ts.iter().map(|t| t.shape()[axis]).collect();
        let shapes: Vec<Vec<usize>> = ts.iter().map(|t| t.shape().to_vec()).collect();
        let total: usize = lens.iter().sum();
        let width = total * inner;
        let mut out = bufs[0].zeros(outer, width)?;
        let mut off = 0;
        for (b, &l) in bufs.iter().zip(&lens) {
            select_columns(b, outer, width, off * inner, l * inner, true, &mut out, Beta::Zero)?;
            off += l;
        }
        let mut shape = shapes[0].clone();
        shape[axis] = total;
        let y = out.view_shape(&shape)?;
        Ok(self.push_device(Tensor::from_cuda(y, shape), xs, move |g, needs| {
            let mut grads = Vec::with_capacity(lens.len());
            let mut off = 0;
            for ((&l, s), &need) in lens.iter().zip(&shapes).zip(needs) {
                grads.push(if need {
                    let mut gi = g.zeros(outer, l * inner)?;
                    select_columns(g, outer, width, off * inner, l * inner, false, &mut gi, Beta::Zero)?;
                    Some(gi.view_shape(s)?)
                } else {
                    None
                });
                off += l;
            }
            Ok(grads)
        }))
    }

    /// `max_pool2d` (argmax kept on the device) or `avg_pool2d` on the device, with padding.
    #[allow(clippy::type_complexity)]
    pub(crate) fn gpu_pool(
        &self,
        op: &'static str,
        x: &Var,
        xt: Tensor<T>,
        (dims, kernel, stride, padding): ([usize; 4], [usize; 2], [usize; 2], [usize; 2]),
        max: bool,
        out_shape: Vec<usize>,
    ) -> Result<Var> {
        let xb = dbuf(op, &xt)?.clone();
        let mut y = zeros_shape(&xb, &out_shape)?;
        let x_shape = xt.shape().to_vec();
        if max {
            let argmax = CudaBuffer::launch(op, &mut y, &[&xb], |d, out| {
                d.max_pool2d(xb.matrix(), dims, kernel, stride, padding, out)
            })?;
            return Ok(self.push_device(Tensor::from_cuda(y, out_shape), &[*x], move |g, _| {
                let mut dx = zeros_shape(&xb, &x_shape)?;
                CudaBuffer::launch("max_pool2d_backward", &mut dx, &[g], |d, out| {
                    d.max_pool2d_backward(g.matrix(), &argmax, out)
                })?;
                Ok(vec![Some(dx)])
            }));
        }
        CudaBuffer::launch(op, &mut y, &[&xb], |d, out| {
            d.avg_pool2d(xb.matrix(), dims, kernel, stride, padding, out)
        })?;
        Ok(self.push_device(Tensor::from_cuda(y, out_shape), &[*x], move |g, _| {
            let mut dx = zeros_shape(&xb, &x_shape)?;
            CudaBuffer::launch("avg_pool2d_backward", &mut dx, &[g], |d, out| {
                d.avg_pool2d_backward(g.matrix(), dims, kernel, stride, padding, out)
            })?;
            Ok(vec![Some(dx)])
        }))
    }

    /// `reshape` on the device: the same buffer under another shape (a kernel that needs other
    /// `rows × cols` later views it).
    pub(crate) fn gpu_reshape(&self, x: &Var, y: Tensor<T>) -> Var {
        self.push_device(y, &[*x], |g, _| Ok(vec![Some(g.clone())]))
    }

    /// `transpose` on the device: a one-tap plane map (the sample's permutation when both axes
    /// are within a sample, else the whole tensor's), exact; the backward is its adjoint.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gpu_transpose(
        &self,
        op: &'static str,
        x: &Var,
        xt: Tensor<T>,
        a: usize,
        b: usize,
        shape: Vec<usize>,
        offs: &[usize],
    ) -> Result<Var> {
        let xb = dbuf(op, &xt)?.clone();
        // offs[j] is the source of output j; within the first sample (or the whole tensor when
        // the batch axis moves) that is the permutation every plane repeats.
        let plane = if a == 0 || b == 0 {
            xt.numel()
        } else {
            numel(&xt.shape()[1..])
        };
        let key = PlaneKey::Transpose {
            shape: xt.shape().to_vec(),
            a,
            b,
        };
        let [forward, adjoint] = xb.plane_maps(key, || Ok(PlaneMap::gather(plane, &offs[..plane])?))?;
        let (rows, cols) = mat_dims(&shape);
        let y = xb.mapped(&forward, rows, cols)?;
        let (xr, xc) = (xb.rows(), xb.cols());
        Ok(self.push_device(Tensor::from_cuda(y, shape), &[*x], move |g, _| {
            Ok(vec![Some(g.mapped(&adjoint, xr, xc)?)])
        }))
    }

    /// `scale` on the device: `axpby` with `β = 0` both ways.
    pub(crate) fn gpu_scale(&self, x: &Var, xt: Tensor<T>, factor: f32) -> Result<Var> {
        let y = dbuf("scale", &xt)?.scaled(factor)?;
        Ok(
            self.push_device(Tensor::from_cuda(y, xt.shape().to_vec()), &[*x], move |g, _| {
                Ok(vec![Some(g.scaled(factor)?)])
            }),
        )
    }

    /// `upsample2d` on the device: the CPU op's four taps per output pixel as a plane map over
    /// the `(h, w)` planes; the backward is the adjoint map (each input sums its taps in the
    /// CPU scatter's order).
    pub(crate) fn gpu_upsample(
        &self,
        x: &Var,
        xt: Tensor<T>,
        (h, w): (usize, usize),
        factor: (usize, usize),
        interp: Interpolation,
    ) -> Result<Var> {
        const OP: &str = "upsample2d";
        let xb = dbuf(OP, &xt)?.clone();
        let key = PlaneKey::Upsample {
            hw: (h, w),
            factor,
            bilinear: interp == Interpolation::Bilinear,
        };
        let [forward, adjoint] = xb.plane_maps(key, || {
            let taps: Vec<[(usize, f32); 4]> = plane_taps(interp, (h, w), factor)
                .into_iter()
                .map(|p| p.map(|(k, wt)| (k, wt as f32)))
                .collect();
            Ok(PlaneMap::new(h * w, taps.iter().map(|t| &t[..]))?)
        })?;
        let mut shape = xt.shape().to_vec();
        shape[2] = h * factor.0;
        shape[3] = w * factor.1;
        let (rows, cols) = mat_dims(&shape);
        let y = xb.mapped(&forward, rows, cols)?;
        let (xr, xc) = (xb.rows(), xb.cols());
        Ok(self.push_device(Tensor::from_cuda(y, shape), &[*x], move |g, _| {
            Ok(vec![Some(g.mapped(&adjoint, xr, xc)?)])
        }))
    }

    /// `sum` / `mean` of every element on the device.
    pub(crate) fn gpu_reduce_all(&self, op: &'static str, x: &Var, xt: Tensor<T>, mean: bool) -> Result<Var> {
        let xb = dbuf(op, &xt)?.clone();
        let n = xt.numel();
        let scale = if mean { 1.0 / n as f32 } else { 1.0 };
        let mut s = xb.zeros(1, 1)?;
        CudaBuffer::launch("sum_all", &mut s, &[&xb], |d, out| d.sum_all(xb.matrix(), out))?;
        let s = times(&s, scale)?;
        let (rows, cols) = (xb.rows(), xb.cols());
        Ok(self.push_device(Tensor::from_cuda(s, Vec::new()), &[*x], move |g, _| {
            let v = scalar(g)? * scale;
            Ok(vec![Some(xb.filled(rows, cols, v)?)])
        }))
    }

    /// `cross_entropy` with integer labels on the device (labels checked on the host).
    pub(crate) fn gpu_cross_entropy(
        &self,
        op: &'static str,
        logits: &Var,
        zt: Tensor<T>,
        labels: &[usize],
        (n, c): (usize, usize),
    ) -> Result<Var> {
        let zb = dbuf(op, &zt)?.view(n, c)?;
        let lab: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
        let lab = zb.upload_like(&lab, 1, n)?;
        let mut rows_loss = zb.zeros(1, n)?;
        let mut dz = zb.zeros(n, c)?;
        let inv_n = 1.0 / n as f32;
        CudaBuffer::softmax_cross_entropy(&zb, &lab, inv_n, &mut rows_loss, &mut dz)?;
        let mut loss = zb.zeros(1, 1)?;
        CudaBuffer::launch("sum_all", &mut loss, &[&rows_loss], |d, out| {
            d.sum_all(rows_loss.matrix(), out)
        })?;
        let loss = loss.scaled(inv_n)?;
        Ok(
            self.push_device(Tensor::from_cuda(loss, Vec::new()), &[*logits], move |g, _| {
                Ok(vec![Some(times(&dz, scalar(g)?)?)])
            }),
        )
    }

    /// `mse` on the device.
    pub(crate) fn gpu_mse(&self, op: &'static str, a: &Var, b: &Var, at: Tensor<T>, bt: Tensor<T>) -> Result<Var> {
        let ab = dbuf(op, &at)?.clone();
        let bb = dbuf(op, &bt)?.view(ab.rows(), ab.cols())?;
        let n = at.numel();
        let mut loss = ab.zeros(1, 1)?;
        let mut da = ab.zeros_like()?;
        CudaBuffer::mse(&ab, &bb, 1.0 / n as f32, &mut loss, &mut da)?;
        Ok(
            self.push_device(Tensor::from_cuda(loss, Vec::new()), &[*a, *b], move |g, needs| {
                let s = scalar(g)?;
                Ok(vec![
                    needs[0].then(|| times(&da, s)).transpose()?,
                    needs[1].then(|| da.scaled(-s)).transpose()?,
                ])
            }),
        )
    }

    /// `dropout` in training on the device, with the keep mask drawn on the host (the CPU's
    /// stream, so the mask is the CPU's).
    pub(crate) fn gpu_dropout(
        &self,
        op: &'static str,
        x: &Var,
        xt: Tensor<T>,
        keep: &[f32],
        scale: f32,
    ) -> Result<Var> {
        let xb = dbuf(op, &xt)?.clone();
        let (rows, cols) = (xb.rows(), xb.cols());
        let mask = xb.upload_like(keep, rows, cols)?;
        let mut y = xb.zeros_like()?;
        CudaBuffer::launch(op, &mut y, &[&xb, &mask], |d, y| {
            d.dropout(xb.matrix(), mask.matrix(), scale, y)
        })?;
        Ok(
            self.push_device(Tensor::from_cuda(y, xt.shape().to_vec()), &[*x], move |g, _| {
                let mut dx = mask.zeros_like()?;
                CudaBuffer::launch("dropout backward", &mut dx, &[g, &mask], |d, dx| {
                    d.dropout(g.matrix(), mask.matrix(), scale, dx)
                })?;
                Ok(vec![Some(dx)])
            }),
        )
    }

    /// The identity on the device (dropout in eval mode or with `p = 0`).
    pub(crate) fn gpu_identity(&self, x: &Var, xt: Tensor<T>) -> Var {
        self.push_device(xt, &[*x], |g, _| Ok(vec![Some(g.clone())]))
    }

    /// `elman_sequence` on the device: the recurrence step by step (see the module table),
    /// keeping every step's input and state for the BPTT loop.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gpu_elman(
        &self,
        op: &'static str,
        parents: [Var; 5],
        ts: [Tensor<T>; 5],
        mask: Option<&Arc<TileMap>>,
        activation: RnnActivation,
        (b, steps, i, h): (usize, usize, usize, usize),
    ) -> Result<Var> {
        let [xb, wih, bih, whh, bhh] = [&ts[0], &ts[1], &ts[2], &ts[3], &ts[4]].map(|t| dbuf(op, t).cloned());
        let (xb, wih, bih, whh, bhh) = (xb?, wih?, bih?, whh?, bhh?);
        let prec = self.gpu_precision();
        let act = match activation {
            RnnActivation::Relu => UnaryOp::Relu,
            RnnActivation::Tanh => UnaryOp::Tanh,
        };
        let t_hh = xb.tile_map_or_full(mask, h, h)?;
        let t_ih = xb.full_tile_map(i, h)?;
        let mut bias = xb.zeros(1, h)?;
        CudaBuffer::launch("add", &mut bias, &[&bih, &bhh], |d, out| {
            d.binary(BinaryOp::Add, bih.matrix(), bhh.matrix(), out)
        })?;
        let mut out = xb.zeros(b, steps * h)?;
        let mut xs = Vec::with_capacity(steps);
        let mut hs: Vec<CudaBuffer> = Vec::with_capacity(steps);
        for t in 0..steps {
            let mut x_t = xb.zeros(b, i)?;
            select_columns(&xb, b, steps * i, t * i, i, false, &mut x_t, Beta::Zero)?;
            let mut z = xb.zeros(b, h)?;
            CudaBuffer::gemm(
                GemmOp::Forward,
                prec,
                &x_t,
                (b, i),
                &wih,
                (i, h),
                &t_ih,
                &mut z,
                Beta::Zero,
            )?;
            CudaBuffer::launch("bias_add_rows", &mut z, &[&bias], |d, out| {
                d.bias_add_rows(out, bias.matrix())
            })?;
            if let Some(prev) = hs.last() {
                CudaBuffer::gemm(
                    GemmOp::Forward,
                    prec,
                    prev,
                    (b, h),
                    &whh,
                    (h, h),
                    &t_hh,
                    &mut z,
                    Beta::One,
                )?;
            }
            let mut ht = xb.zeros(b, h)?;
            CudaBuffer::launch(act.name(), &mut ht, &[&z], |d, out| d.unary(act, z.matrix(), out))?;
            select_columns(&ht, b, steps * h, t * h, h, true, &mut out, Beta::One)?;
            xs.push(x_t);
            hs.push(ht);
        }
        Ok(
            self.push_device(Tensor::from_cuda(out, vec![b, steps, h]), &parents, move |g, needs| {
                let mut dx = if needs[0] { Some(xb.zeros(b, steps * i)?) } else { None };
                let mut dwih = if needs[1] { Some(xb.zeros(i, h)?) } else { None };
                let mut dwhh = if needs[3] { Some(xb.zeros(h, h)?) } else { None };
                let mut db = if needs[2] || needs[4] {
                    Some(xb.zeros(1, h)?)
                } else {
                    None
                };
                let mut delta: Option<CudaBuffer> = None;
                for t in (0..steps).rev() {
                    let mut d = xb.zeros(b, h)?;
                    select_columns(g, b, steps * h, t * h, h, false, &mut d, Beta::Zero)?;
                    if let Some(dl) = &delta {
                        CudaBuffer::launch("axpby", &mut d, &[dl], |dev, out| dev.axpby(1.0, dl.matrix(), 1.0, out))?;
                    }
                    // relu reads x: h_t > 0 exactly where z_t > 0, so h_t stands for z_t.
                    let mut dz = xb.zeros(b, h)?;
                    CudaBuffer::launch(act.name(), &mut dz, &[&hs[t], &d], |dev, out| {
                        dev.unary_backward(act, hs[t].matrix(), hs[t].matrix(), d.matrix(), out, Beta::Zero)
                    })?;
                    if t > 0 {
                        let mut dl = xb.zeros(b, h)?;
                        CudaBuffer::gemm(GemmOp::Dx, prec, &dz, (b, h), &whh, (h, h), &t_hh, &mut dl, Beta::Zero)?;
                        delta = Some(dl);
                        if let Some(dw) = &mut dwhh {
                            CudaBuffer::gemm(GemmOp::Dw, prec, &hs[t - 1], (b, h), &dz, (b, h), &t_hh, dw, Beta::One)?;
                        }
                    }
                    if let Some(dw) = &mut dwih {
                        CudaBuffer::gemm(GemmOp::Dw, prec, &xs[t], (b, i), &dz, (b, h), &t_ih, dw, Beta::One)?;
                    }
                    if let Some(dx) = &mut dx {
                        let mut dxt = xb.zeros(b, i)?;
                        CudaBuffer::gemm(GemmOp::Dx, prec, &dz, (b, h), &wih, (i, h), &t_ih, &mut dxt, Beta::Zero)?;
                        select_columns(&dxt, b, steps * i, t * i, i, true, dx, Beta::One)?;
                    }
                    if let Some(db) = &mut db {
                        CudaBuffer::launch("sum_rows_into", db, &[&dz], |d, out| {
                            d.sum_rows_into(dz.matrix(), out, Beta::One)
                        })?;
                    }
                }
                let dbih = if needs[2] { db.clone() } else { None };
                let dbhh = if needs[4] { db } else { None };
                Ok(vec![dx, dwih, dbih, dwhh, dbhh])
            }),
        )
    }
}
