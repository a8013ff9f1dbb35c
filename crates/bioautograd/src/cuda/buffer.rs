//! [`CudaBuffer`]: the values of a CUDA tensor, and the device operations of the ops, each one
//! call of the buffer's [`DeviceBackend`].

use std::sync::Arc;

use biokernels::cuda::{GemmOp, Precision};
use biokernels::device::{DeviceBackend, DeviceConv, DeviceMatrix, DevicePlaneMap, DeviceTiles};
use biokernels::gemm::Beta;
use biokernels::optim::OptimizerStep;

use super::{backend, mat_dims};
use crate::error::{Error, Result};
use crate::tensor::Device;

/// The values of a CUDA tensor: an `f32` matrix on one device, shared copy-on-write.
#[derive(Clone)]
pub struct CudaBuffer {
    pub(super) ordinal: usize,
    pub(super) dev: Arc<dyn DeviceBackend>,
    mat: Arc<DeviceMatrix>,
}

impl std::fmt::Debug for CudaBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBuffer")
            .field("ordinal", &self.ordinal)
            .field("rows", &self.mat.rows())
            .field("cols", &self.mat.cols())
            .finish()
    }
}

/// The backend that `out` lives on, after checking that every input lives there too (cannot
/// fail through the tape, which refuses operands on different devices).
fn on_one_device(op: &'static str, out: &CudaBuffer, inputs: &[&CudaBuffer]) -> Result<Arc<dyn DeviceBackend>> {
    if let Some(other) = inputs.iter().find(|b| b.ordinal != out.ordinal) {
        return Err(Error::DeviceMismatch {
            op,
            lhs: out.device(),
            rhs: other.device(),
        });
    }
    Ok(out.dev.clone())
}

impl CudaBuffer {
    /// Uploads `data` as a `rows × cols` f32 matrix to device `ordinal`.
    pub(crate) fn upload(ordinal: usize, data: &[f32], rows: usize, cols: usize) -> Result<Self> {
        let dev = backend(ordinal)?;
        let mat = dev.upload(data, rows, cols)?;
        Ok(CudaBuffer {
            ordinal,
            dev,
            mat: Arc::new(mat),
        })
    }

    fn wrap(&self, mat: DeviceMatrix) -> Self {
        CudaBuffer {
            ordinal: self.ordinal,
            dev: self.dev.clone(),
            mat: Arc::new(mat),
        }
    }

    /// `rows × cols` holding `data`, on this buffer's device.
    ///
    /// # Errors
    /// `data` not `rows × cols` values; kernel errors.
    pub fn upload_like(&self, data: &[f32], rows: usize, cols: usize) -> Result<Self> {
        Ok(self.wrap(self.dev.upload(data, rows, cols)?))
    }

    /// `rows × cols` filled with `value`, on this buffer's device.
    pub(crate) fn filled(&self, rows: usize, cols: usize, value: f32) -> Result<Self> {
        Ok(self.wrap(self.dev.filled(rows, cols, value)?))
    }

    /// `rows × cols` zeros on this buffer's device.
    pub(crate) fn zeros(&self, rows: usize, cols: usize) -> Result<Self> {
        Ok(self.wrap(self.dev.zeros(rows, cols)?))
    }

    /// Zeros with this buffer's dims on its device (e.g. an optimizer's state).
    ///
    /// # Errors
    /// Kernel errors.
    pub fn zeros_like(&self) -> Result<Self> {
        self.zeros(self.rows(), self.cols())
    }

    /// The device.
    pub fn device(&self) -> Device {
        Device::Cuda(self.ordinal)
    }

    /// The backend this buffer lives on.
    pub(crate) fn backend(&self) -> &Arc<dyn DeviceBackend> {
        &self.dev
    }

    /// Rows of the device matrix.
    pub fn rows(&self) -> usize {
        self.mat.rows()
    }

    /// Columns of the device matrix.
    pub fn cols(&self) -> usize {
        self.mat.cols()
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.rows() * self.cols()
    }

    /// `true` when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A host copy of the values.
    ///
    /// # Errors
    /// Kernel errors.
    pub fn download(&self) -> Result<Vec<f32>> {
        Ok(self.dev.download(&self.mat)?)
    }

    /// The matrix, mutable: the buffer itself when no other tensor shares it, otherwise a
    /// device copy first (copy-on-write).
    fn mat_mut(&mut self) -> Result<&mut DeviceMatrix> {
        if Arc::get_mut(&mut self.mat).is_none() {
            *self = self.deep_copy()?;
        }
        Arc::get_mut(&mut self.mat).ok_or(Error::UnsupportedOnDevice {
            op: "matrix_mut",
            device: Device::Cuda(self.ordinal),
        })
    }

    /// A private device copy (same dims).
    ///
    /// # Errors
    /// Kernel errors.
    pub fn deep_copy(&self) -> Result<Self> {
        let mut out = self.zeros(self.rows(), self.cols())?;
        let dev = self.dev.clone();
        dev.copy(&self.mat, out.mat_mut()?)?;
        Ok(out)
    }

    /// The same values as a `rows × cols` matrix: this buffer when the dims already match,
    /// otherwise a device copy with the new dims (the kernels check `rows × cols`).
    pub(crate) fn view(&self, rows: usize, cols: usize) -> Result<Self> {
        if self.rows() == rows && self.cols() == cols {
            return Ok(self.clone());
        }
        if rows * cols != self.len() {
            return Err(Error::Reshape {
                op: "cuda view",
                from: vec![self.rows(), self.cols()],
                to: vec![rows, cols],
            });
        }
        let mut out = self.deep_copy()?;
        out.reshape_in_place(rows, cols)?;
        Ok(out)
    }

    /// `self` as the matrix of `shape` (see [`mat_dims`]).
    pub(crate) fn view_shape(&self, shape: &[usize]) -> Result<Self> {
        let (r, c) = mat_dims(shape);
        self.view(r, c)
    }

    /// Reinterprets this (unshared, or first copied) buffer as `rows × cols`.
    pub(crate) fn reshape_in_place(&mut self, rows: usize, cols: usize) -> Result<()> {
        Ok(self.mat_mut()?.reshape(rows, cols)?)
    }

    /// `self += other` on the device (gradient accumulation); `self` is copied first if shared.
    pub(crate) fn add_assign(&mut self, other: &CudaBuffer) -> Result<()> {
        let other = other.view(self.rows(), self.cols())?;
        Self::axpby(1.0, &other, 1.0, self)
    }

    /// `alpha · self` as a new buffer.
    pub(crate) fn scaled(&self, alpha: f32) -> Result<Self> {
        let mut out = self.zeros_like()?;
        Self::axpby(alpha, self, 0.0, &mut out)?;
        Ok(out)
    }

    // --- device operations: a tape op calls its backend method through `launch`; what stays
    // here is what several tape ops share (gradient accumulation, GEMM/conv operand views,
    // the optimiser step) ----------------------------------------------------------------------

    /// The device matrix (an input of [`CudaBuffer::launch`]).
    pub(crate) fn matrix(&self) -> &DeviceMatrix {
        &self.mat
    }

    /// Runs one backend operation `run(backend, out)` that writes `out` (copied first if
    /// shared), after checking that every input lives on `out`'s device. A new device op calls
    /// its backend method through this from its tape op, e.g.
    /// `CudaBuffer::launch("dropout", &mut y, &[&x, &keep], |d, y| d.dropout(x.matrix(), keep.matrix(), s, y))`.
    pub(crate) fn launch<R>(
        op: &'static str,
        out: &mut CudaBuffer,
        inputs: &[&CudaBuffer],
        run: impl FnOnce(&dyn DeviceBackend, &mut DeviceMatrix) -> biokernels::Result<R>,
    ) -> Result<R> {
        let dev = on_one_device(op, out, inputs)?;
        Ok(run(&*dev, out.mat_mut()?)?)
    }

    /// `map` applied to every plane of this buffer, as a new `rows × cols` buffer.
    pub(crate) fn mapped(&self, map: &DevicePlaneMap, rows: usize, cols: usize) -> Result<CudaBuffer> {
        let mut y = self.zeros(rows, cols)?;
        CudaBuffer::launch("plane_map", &mut y, &[self], |d, out| d.plane_map(map, &self.mat, out))?;
        Ok(y)
    }

    /// `y = alpha·x + beta·y` (`beta = 0`: `y` not read); `y` is copied first if shared.
    ///
    /// # Errors
    /// Operands on different devices or of different lengths; kernel errors.
    pub fn axpby(alpha: f32, x: &CudaBuffer, beta: f32, y: &mut CudaBuffer) -> Result<()> {
        let dev = on_one_device("axpby", y, &[x])?;
        Ok(dev.axpby(alpha, &x.mat, beta, y.mat_mut()?)?)
    }

    /// Per-row softmax cross-entropy loss and its scaled gradient.
    pub(crate) fn softmax_cross_entropy(
        z: &CudaBuffer,
        labels: &CudaBuffer,
        scale: f32,
        loss: &mut CudaBuffer,
        dz: &mut CudaBuffer,
    ) -> Result<()> {
        let dev = on_one_device("softmax_cross_entropy", loss, &[z, labels, &*dz])?;
        Ok(dev.softmax_cross_entropy(&z.mat, &labels.mat, scale, loss.mat_mut()?, dz.mat_mut()?)?)
    }

    /// Per-element BCE on logits and its scaled gradient.
    pub(crate) fn bce_with_logits(
        z: &CudaBuffer,
        t: &CudaBuffer,
        scale: f32,
        loss: &mut CudaBuffer,
        dz: &mut CudaBuffer,
    ) -> Result<()> {
        let dev = on_one_device("bce_with_logits", loss, &[z, t, &*dz])?;
        Ok(dev.bce_with_logits(&z.mat, &t.mat, scale, loss.mat_mut()?, dz.mat_mut()?)?)
    }

    /// MSE loss and its scaled gradient.
    pub(crate) fn mse(
        p: &CudaBuffer,
        t: &CudaBuffer,
        scale: f32,
        loss: &mut CudaBuffer,
        dp: &mut CudaBuffer,
    ) -> Result<()> {
        let dev = on_one_device("mse", loss, &[p, t, &*dp])?;
        Ok(dev.mse(&p.mat, &t.mat, scale, loss.mat_mut()?, dp.mat_mut()?)?)
    }

    /// One optimizer step in place on this parameter buffer (copied first if shared), with
    /// its gradient and the two state buffers in the layout of [`biokernels::optim`] (`first`
    /// = Adam's `m` / RMSprop's momentum buffer, `second` = Adam's `v` / RMSprop's mean
    /// square), the same on every device.
    ///
    /// # Errors
    /// Kernel errors, buffers on different devices.
    pub fn optimizer_step(
        &mut self,
        step: OptimizerStep,
        g: &CudaBuffer,
        first: &mut CudaBuffer,
        second: &mut CudaBuffer,
    ) -> Result<()> {
        let dev = on_one_device("optimizer_step", self, &[g, &*first, &*second])?;
        let w = self.mat_mut()?;
        Ok(dev.optimizer_step(step, w, &g.mat, first.mat_mut()?, second.mat_mut()?)?)
    }

    /// One masked GEMM: `Forward` `out = a·(b⊙M)`, `Dx` `out = a·(b⊙M)ᵀ`, `Dw`
    /// `out = (aᵀ·b)⊙M`; `a`, `b` viewed with the dims the op needs.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gemm(
        op: GemmOp,
        precision: Precision,
        a: &CudaBuffer,
        a_dims: (usize, usize),
        b: &CudaBuffer,
        b_dims: (usize, usize),
        tiles: &DeviceTiles,
        out: &mut CudaBuffer,
        beta: Beta,
    ) -> Result<()> {
        let a = a.view(a_dims.0, a_dims.1)?.operand(precision)?;
        let b = b.view(b_dims.0, b_dims.1)?.operand(precision)?;
        let dev = on_one_device("masked_gemm", out, &[&a, &b])?;
        Ok(dev.masked_gemm(op, precision, &a.mat, &b.mat, tiles, out.mat_mut()?, beta)?)
    }

    /// One masked GEMM into a fresh output of the op's dims: `Forward` `a (m, k)` ·
    /// `b (k, n)` → `(m, n)`, `Dx` `a (m, n)` · `b (k, n)`ᵀ → `(m, k)`, `Dw` `a (m, k)`ᵀ ·
    /// `b (m, n)` → `(k, n)` (see [`CudaBuffer::gemm`]).
    pub(crate) fn product(
        op: GemmOp,
        precision: Precision,
        (a, a_dims): (&CudaBuffer, (usize, usize)),
        (b, b_dims): (&CudaBuffer, (usize, usize)),
        tiles: &DeviceTiles,
    ) -> Result<CudaBuffer> {
        let (rows, cols) = match op {
            GemmOp::Forward => (a_dims.0, b_dims.1),
            GemmOp::Dx => (a_dims.0, b_dims.0),
            GemmOp::Dw => (a_dims.1, b_dims.1),
        };
        let mut out = a.zeros(rows, cols)?;
        Self::gemm(op, precision, a, a_dims, b, b_dims, tiles, &mut out, Beta::Zero)?;
        Ok(out)
    }

    /// This buffer as the kernels of `precision` read it: a bf16 copy (same view, round to
    /// nearest even) for [`Precision::Bf16`], else itself. The tensors, master weights
    /// included, stay f32; only the product's operands are bf16.
    fn operand(&self, precision: Precision) -> Result<CudaBuffer> {
        match precision {
            Precision::Bf16 => Ok(self.wrap(self.dev.to_bf16(&self.mat)?)),
            _ => Ok(self.clone()),
        }
    }

    /// A convolution product: `Forward` (`a = x`, `b = w`, `bias`), `Dx` (`a = dy`, `b = w`)
    /// or `Dw` (`a = x`, `b = dy`) of a convolution or a transposed convolution; `out` is
    /// overwritten.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv(
        op: GemmOp,
        precision: Precision,
        geom: &crate::ops::conv::ConvGeometry,
        a: &CudaBuffer,
        b: &CudaBuffer,
        mask: &DeviceConv,
        bias: Option<&CudaBuffer>,
        out: &mut CudaBuffer,
    ) -> Result<()> {
        use crate::ops::conv::ConvGeometry as G;
        let (a, b) = (&a.operand(precision)?, &b.operand(precision)?);
        let mut inputs = vec![a, b];
        inputs.extend(bias);
        let dev = on_one_device("conv", out, &inputs)?;
        let bias = bias.map(|b| &*b.mat);
        let (a, b, o) = (&a.mat, &b.mat, out.mat_mut()?);
        match (geom, op) {
            (G::Conv(g), GemmOp::Forward) => dev.masked_conv2d(precision, g, a, b, mask, bias, o, Beta::Zero)?,
            (G::Conv(g), op) => dev.masked_conv2d_backward(op, precision, g, a, b, mask, o, Beta::Zero)?,
            (G::Transpose(g), op) => dev.masked_conv_transpose2d(op, precision, g, a, b, mask, bias, o, Beta::Zero)?,
        }
        Ok(())
    }

    /// A block of columns copied between two buffers of this device (see [`select_columns`]).
    fn copy_columns(
        src: &CudaBuffer,
        src_col: usize,
        out: &mut CudaBuffer,
        dst_col: usize,
        len: usize,
        beta: Beta,
    ) -> Result<()> {
        let dev = on_one_device("copy_columns", out, &[src])?;
        Ok(dev.copy_columns(&src.mat, src_col, out.mat_mut()?, dst_col, len, beta)?)
    }
}

/// A block of columns between two matrices with `m` rows (`CudaDevice::copy_columns`):
///
/// - extract (`place = false`): `out (m, len) = x (m, total)[:, start .. start + len]`;
/// - place (`place = true`): `out (m, total)[:, start .. start + len] (+)= x (m, len)`, the
///   other columns of `out` untouched.
///
/// (How the RNN slices a time step out of a `(B, T·d)` sequence and places its gradient back.)
#[allow(clippy::too_many_arguments)]
pub(crate) fn select_columns(
    x: &CudaBuffer,
    m: usize,
    total: usize,
    start: usize,
    len: usize,
    place: bool,
    out: &mut CudaBuffer,
    beta: Beta,
) -> Result<()> {
    let (src, src_col, dst_col) = if place {
        (x.view(m, len)?, 0, start)
    } else {
        (x.view(m, total)?, start, 0)
    };
    CudaBuffer::copy_columns(&src, src_col, out, dst_col, len, beta)
}
