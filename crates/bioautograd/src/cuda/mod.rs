//! The CUDA side of the tape: opening devices once per process, the device buffer of a
//! [`Storage::Cuda`](crate::Storage::Cuda) tensor, and the device operations the ops use.
//!
//! A CUDA tensor is an `f32` buffer on one device ([`CudaBuffer`]: the device handle, its
//! ordinal and an `Arc` of the device matrix), shared copy-on-write like the CPU `Arc<Vec<T>>`:
//! cloning a tensor into the tape is cheap, and an optimiser gets the buffer mutably once the
//! tape is gone (a device copy is made first if another tensor still shares it).
//!
//! The kernels check the `rows × cols` of some operands (GEMMs, softmax cross-entropy, bias
//! gradients), so every buffer is allocated as the matrix `(shape[0], Π shape[1..])` (a rank-1
//! `(n)` is `(1, n)`, a scalar `(1, 1)`); `CudaBuffer::view` gives another `rows × cols` (a
//! device copy when it differs), which is what a metadata-only `reshape` costs when a kernel
//! later needs the new dims.
//!
//! Without the `cuda` feature the `biokernels` dummy backend has the same API with uninhabited
//! types: this module compiles unchanged and [`device`] returns [`Error::CudaUnavailable`].
//! With the feature and no driver it returns [`Error::NoCudaDevice`] (never a panic).
//!
//! ## The host emulator
//! [`Device::Cuda`]`(`[`EMULATOR`]`)` is a host emulation of the device backend, present in
//! every build: the same [`CudaBuffer`] operations, each computed on the CPU with the semantics
//! the `biokernels::cuda` documentation gives its kernel ([`host`]). Every device path of the
//! tape (dispatch, device backward closures, gradient accumulation, views, the column-block
//! copies, the RNN's BPTT loop, the optimiser step) therefore runs and is tested on a
//! machine without a GPU; only the kernels themselves are replaced. It is slow and exists for
//! tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use biokernels::cuda::{
    BinaryOp, CudaDevice, DeviceConvMask, DeviceTileMap, GemmOp, GpuIndex, GpuMatrix, OptimizerStep, Precision,
    UnaryOp, GPU_TILE,
};
use biokernels::gemm::Beta;
use biokernels::{ConvMask, TileMap, TileSize};

use crate::error::{Error, Result};
use crate::tensor::Device;

pub mod host;

use host::HostMat;

/// The ordinal of the host emulator of the device backend (see the [module docs](self)).
pub const EMULATOR: usize = usize::MAX;

/// The devices a device test runs its body on: the [`EMULATOR`] and CUDA device 0 when it is
/// usable. Without a usable GPU the skip is written to the terminal's stderr (`SKIPPED cuda:0
/// in <test>: <reason>`), or, under `BIOKERNELS_REQUIRE_CUDA=1`, returned as an error so that a
/// GPU run cannot pass by skipping. A failure other than "no CUDA device" is an error too.
///
/// # Errors
/// The message the test should fail with.
pub fn devices_under_test(test: &str) -> std::result::Result<Vec<Device>, String> {
    let mut out = vec![Device::Cuda(EMULATOR)];
    match Device::Cuda(0).check_available() {
        Ok(()) => out.push(Device::Cuda(0)),
        Err(e) if !e.is_no_cuda() => {
            return Err(format!(
                "{test}: a missing GPU must be a typed 'no CUDA' error, got {e:?}"
            ))
        }
        Err(e) if std::env::var("BIOKERNELS_REQUIRE_CUDA").is_ok_and(|v| v == "1") => {
            return Err(format!("{test}: BIOKERNELS_REQUIRE_CUDA=1 but {e}"))
        }
        Err(e) => {
            use std::io::Write;
            // Straight to stderr: the test harness captures `eprintln!` of passing tests.
            let _ = writeln!(std::io::stderr(), "SKIPPED cuda:0 in {test}: {e} (ran on cpu only)");
        }
    }
    Ok(out)
}

/// A device: a real CUDA device or the host emulator.
#[derive(Clone)]
pub(crate) enum Handle {
    Cuda(Arc<CudaDevice>),
    Host,
}

type DeviceSlot = std::result::Result<Arc<CudaDevice>, Error>;

fn registry() -> &'static Mutex<HashMap<usize, DeviceSlot>> {
    static DEVICES: OnceLock<Mutex<HashMap<usize, DeviceSlot>>> = OnceLock::new();
    DEVICES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// CUDA device `ordinal`, opened on first use and shared by every tensor of the process (the
/// outcome, a device or the error, is cached: a machine without a GPU is probed once).
///
/// # Errors
/// [`Error::CudaUnavailable`] without the `cuda` feature, [`Error::NoCudaDevice`] when the
/// build has it but the device cannot be used, and for [`EMULATOR`] (which is no CUDA device).
pub fn device(ordinal: usize) -> Result<Arc<CudaDevice>> {
    if ordinal == EMULATOR {
        return Err(Error::NoCudaDevice {
            ordinal,
            reason: "the host emulator is not a CUDA device".into(),
        });
    }
    let mut map = registry().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    map.entry(ordinal)
        .or_insert_with(|| {
            CudaDevice::new(ordinal)
                .map(Arc::new)
                .map_err(|e| match Error::from(e) {
                    Error::NoCudaDevice { reason, .. } => Error::NoCudaDevice { ordinal, reason },
                    other => other,
                })
        })
        .clone()
}

/// The handle of `Device::Cuda(ordinal)`: the emulator or an opened device.
pub(crate) fn handle(ordinal: usize) -> Result<Handle> {
    if ordinal == EMULATOR {
        Ok(Handle::Host)
    } else {
        device(ordinal).map(Handle::Cuda)
    }
}

static DEFAULT_PRECISION: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets the GPU precision new graphs start with ([`crate::Graph::gpu_precision`]; `F32` until
/// set), for code that builds its graphs itself (e.g. `biolayers::train::train_step`).
///
/// # Errors
/// [`Error::InvalidArgument`] for `Bf16` (CUDA tensors are f32 buffers).
pub fn set_default_precision(precision: Precision) -> Result<()> {
    let code = match precision {
        Precision::F32 => 0,
        Precision::Tf32 => 1,
        Precision::Bf16 => {
            return Err(Error::InvalidArgument {
                op: "set_default_precision",
                what: "bf16 needs bf16 operands; tensors on CUDA are f32 (use F32 or Tf32)".into(),
            })
        }
    };
    DEFAULT_PRECISION.store(code, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The precision new graphs start with (see [`set_default_precision`]).
pub fn default_precision() -> Precision {
    match DEFAULT_PRECISION.load(std::sync::atomic::Ordering::Relaxed) {
        1 => Precision::Tf32,
        _ => Precision::F32,
    }
}

/// `true` when CUDA device `ordinal` (or the emulator) can be used by this build on this
/// machine.
pub fn is_available(ordinal: usize) -> bool {
    handle(ordinal).is_ok()
}

/// The `rows × cols` a tensor of `shape` is stored as: `(shape[0], Π shape[1..])`, `(1, n)`
/// for a rank-1 tensor, `(1, 1)` for a scalar.
pub(crate) fn mat_dims(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (1, *n),
        [r, rest @ ..] => (*r, rest.iter().product()),
    }
}

/// A device matrix: on a CUDA device or in the emulator.
pub(crate) enum DMat {
    Cuda(GpuMatrix),
    Host(HostMat),
}

impl DMat {
    fn rows(&self) -> usize {
        match self {
            DMat::Cuda(m) => m.rows(),
            DMat::Host(m) => m.rows,
        }
    }
    fn cols(&self) -> usize {
        match self {
            DMat::Cuda(m) => m.cols(),
            DMat::Host(m) => m.cols,
        }
    }
}

/// Device tile lists of a mask (or the host map in the emulator). Held behind an `Arc` in the
/// caches, so the size difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum DTiles {
    Cuda(DeviceTileMap),
    Host(TileMap),
}

/// Device conv tile lists (or the host mask in the emulator).
pub(crate) enum DConv {
    Cuda(DeviceConvMask),
    Host(Option<Arc<ConvMask>>),
}

/// The argmax of a device max-pool.
pub(crate) enum DIndex {
    Cuda(GpuIndex),
    Host(Vec<usize>),
}

/// The values of a CUDA tensor: an `f32` matrix on one device, shared copy-on-write.
#[derive(Clone)]
pub struct CudaBuffer {
    ordinal: usize,
    dev: Handle,
    mat: Arc<DMat>,
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

/// Operands from different backends (cannot happen through the tape, which refuses operands
/// on different devices).
fn mixed(op: &'static str) -> Error {
    Error::InvalidArgument {
        op,
        what: "device operands from different backends".into(),
    }
}

impl CudaBuffer {
    /// Uploads `data` as a `rows × cols` f32 matrix to device `ordinal`.
    pub(crate) fn upload(ordinal: usize, data: &[f32], rows: usize, cols: usize) -> Result<Self> {
        let dev = handle(ordinal)?;
        let mat = match &dev {
            Handle::Cuda(d) => DMat::Cuda(d.upload(data, rows, cols, Precision::F32)?),
            Handle::Host => DMat::Host(HostMat::new(data.to_vec(), rows, cols)?),
        };
        Ok(CudaBuffer {
            ordinal,
            dev,
            mat: Arc::new(mat),
        })
    }

    fn wrap(&self, mat: DMat) -> Self {
        CudaBuffer {
            ordinal: self.ordinal,
            dev: self.dev.clone(),
            mat: Arc::new(mat),
        }
    }

    /// `rows × cols` holding `data`, on this buffer's device.
    pub(crate) fn upload_like(&self, data: &[f32], rows: usize, cols: usize) -> Result<Self> {
        Self::upload(self.ordinal, data, rows, cols)
    }

    /// `rows × cols` filled with `value`, on this buffer's device.
    pub(crate) fn filled(&self, rows: usize, cols: usize, value: f32) -> Result<Self> {
        Ok(self.wrap(match &self.dev {
            Handle::Cuda(d) => DMat::Cuda(d.filled(rows, cols, value)?),
            Handle::Host => DMat::Host(HostMat::new(vec![value; rows * cols], rows, cols)?),
        }))
    }

    /// `rows × cols` zeros on this buffer's device.
    pub(crate) fn zeros(&self, rows: usize, cols: usize) -> Result<Self> {
        Ok(self.wrap(match &self.dev {
            Handle::Cuda(d) => DMat::Cuda(d.zeros(rows, cols)?),
            Handle::Host => DMat::Host(HostMat::new(vec![0.0; rows * cols], rows, cols)?),
        }))
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
        match (&self.dev, &*self.mat) {
            (Handle::Cuda(d), DMat::Cuda(m)) => Ok(d.download(m)?),
            (_, DMat::Host(m)) => Ok(m.data.clone()),
            _ => Err(mixed("download")),
        }
    }

    /// The matrix, mutable: the buffer itself when no other tensor shares it, otherwise a
    /// device copy first (copy-on-write).
    fn mat_mut(&mut self) -> Result<&mut DMat> {
        if Arc::get_mut(&mut self.mat).is_none() {
            *self = self.deep_copy()?;
        }
        Arc::get_mut(&mut self.mat).ok_or(Error::UnsupportedOnDevice {
            op: "matrix_mut",
            device: Device::Cuda(self.ordinal),
        })
    }

    /// A private device copy (same dims).
    pub(crate) fn deep_copy(&self) -> Result<Self> {
        let mut out = self.zeros(self.rows(), self.cols())?;
        let dev = self.dev.clone();
        match (&dev, &*self.mat, out.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(s), DMat::Cuda(o)) => d.copy(s, o)?,
            (Handle::Host, DMat::Host(s), DMat::Host(o)) => o.data.copy_from_slice(&s.data),
            _ => return Err(mixed("copy")),
        }
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
        match self.mat_mut()? {
            DMat::Cuda(m) => m.reshape(rows, cols)?,
            DMat::Host(m) => m.reshape(rows, cols)?,
        }
        Ok(())
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

    // --- the device operations --------------------------------------------------------------

    /// `y = alpha·x + beta·y` (`beta = 0`: `y` not read).
    pub(crate) fn axpby(alpha: f32, x: &CudaBuffer, beta: f32, y: &mut CudaBuffer) -> Result<()> {
        let dev = y.dev.clone();
        match (&dev, &*x.mat, y.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(a), DMat::Cuda(b)) => d.axpby(alpha, a, beta, b)?,
            (Handle::Host, DMat::Host(a), DMat::Host(b)) => host::axpby(alpha, a, beta, b)?,
            _ => return Err(mixed("axpby")),
        }
        Ok(())
    }

    /// `out = a op b` elementwise (same lengths).
    pub(crate) fn binary(kind: BinaryOp, a: &CudaBuffer, b: &CudaBuffer, out: &mut CudaBuffer) -> Result<()> {
        let dev = out.dev.clone();
        match (&dev, &*a.mat, &*b.mat, out.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(x), DMat::Cuda(y), DMat::Cuda(o)) => d.binary(kind, x, y, o)?,
            (Handle::Host, DMat::Host(x), DMat::Host(y), DMat::Host(o)) => host::binary(kind, x, y, o)?,
            _ => return Err(mixed("binary")),
        }
        Ok(())
    }

    /// `y = op(x)`.
    pub(crate) fn unary(kind: UnaryOp, x: &CudaBuffer, y: &mut CudaBuffer) -> Result<()> {
        let dev = y.dev.clone();
        match (&dev, &*x.mat, y.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(a), DMat::Cuda(b)) => d.unary(kind, a, b)?,
            (Handle::Host, DMat::Host(a), DMat::Host(b)) => host::unary(kind, a, b)?,
            _ => return Err(mixed("unary")),
        }
        Ok(())
    }

    /// `dx = dy·op'(x, y)` (`Beta::One`: added).
    pub(crate) fn unary_backward(
        kind: UnaryOp,
        x: &CudaBuffer,
        y: &CudaBuffer,
        dy: &CudaBuffer,
        dx: &mut CudaBuffer,
        beta: Beta,
    ) -> Result<()> {
        let dev = dx.dev.clone();
        match (&dev, &*x.mat, &*y.mat, &*dy.mat, dx.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(a), DMat::Cuda(b), DMat::Cuda(g), DMat::Cuda(o)) => {
                d.unary_backward(kind, a, b, g, o, beta)?
            }
            (Handle::Host, DMat::Host(a), DMat::Host(b), DMat::Host(g), DMat::Host(o)) => {
                host::unary_backward(kind, a, b, g, o, beta)?
            }
            _ => return Err(mixed("unary_backward")),
        }
        Ok(())
    }

    /// `y (rows, cols) += bias (cols)`.
    pub(crate) fn bias_add_rows(y: &mut CudaBuffer, bias: &CudaBuffer) -> Result<()> {
        let dev = y.dev.clone();
        match (&dev, &*bias.mat, y.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(b), DMat::Cuda(o)) => d.bias_add_rows(o, b)?,
            (Handle::Host, DMat::Host(b), DMat::Host(o)) => host::bias_add_rows(o, b)?,
            _ => return Err(mixed("bias_add_rows")),
        }
        Ok(())
    }

    /// `db (channels) = Σ dy` over every axis but the channel (`dy` as `(N, channels·hw)`).
    pub(crate) fn bias_grad(dy: &CudaBuffer, channels: usize, hw: usize, db: &mut CudaBuffer) -> Result<()> {
        let dev = db.dev.clone();
        match (&dev, &*dy.mat, db.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(g), DMat::Cuda(o)) => d.bias_grad(g, channels, hw, o)?,
            (Handle::Host, DMat::Host(g), DMat::Host(o)) => host::bias_grad(g, channels, hw, o)?,
            _ => return Err(mixed("bias_grad")),
        }
        Ok(())
    }

    /// Column sums `out (cols) (+)= Σ_r x (r, cols)`.
    pub(crate) fn sum_rows_into(x: &CudaBuffer, out: &mut CudaBuffer, beta: Beta) -> Result<()> {
        let dev = out.dev.clone();
        match (&dev, &*x.mat, out.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(a), DMat::Cuda(o)) => d.sum_rows_into(a, o, beta)?,
            (Handle::Host, DMat::Host(a), DMat::Host(o)) => host::sum_rows_into(a, o, beta)?,
            _ => return Err(mixed("sum_rows_into")),
        }
        Ok(())
    }

    /// `out (1×1) = Σ x`.
    pub(crate) fn sum_all(x: &CudaBuffer, out: &mut CudaBuffer) -> Result<()> {
        let dev = out.dev.clone();
        match (&dev, &*x.mat, out.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(a), DMat::Cuda(o)) => d.sum_all(a, o)?,
            (Handle::Host, DMat::Host(a), DMat::Host(o)) => host::sum_all(a, o)?,
            _ => return Err(mixed("sum_all")),
        }
        Ok(())
    }

    /// Fused softmax cross-entropy: per-row loss and `(softmax − onehot)·scale`.
    pub(crate) fn softmax_cross_entropy(
        z: &CudaBuffer,
        labels: &CudaBuffer,
        scale: f32,
        loss: &mut CudaBuffer,
        dz: &mut CudaBuffer,
    ) -> Result<()> {
        let dev = z.dev.clone();
        match (&dev, &*z.mat, &*labels.mat, loss.mat_mut()?, dz.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(a), DMat::Cuda(l), DMat::Cuda(o), DMat::Cuda(g)) => {
                d.softmax_cross_entropy(a, l, scale, o, g)?
            }
            (Handle::Host, DMat::Host(a), DMat::Host(l), DMat::Host(o), DMat::Host(g)) => {
                host::softmax_cross_entropy(a, l, scale, o, g)?
            }
            _ => return Err(mixed("softmax_cross_entropy")),
        }
        Ok(())
    }

    /// Fused MSE: `loss (1×1) = mean (p − t)²`, `dp = 2(p − t)·scale`.
    pub(crate) fn mse(
        p: &CudaBuffer,
        t: &CudaBuffer,
        scale: f32,
        loss: &mut CudaBuffer,
        dp: &mut CudaBuffer,
    ) -> Result<()> {
        let dev = p.dev.clone();
        match (&dev, &*p.mat, &*t.mat, loss.mat_mut()?, dp.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(a), DMat::Cuda(b), DMat::Cuda(l), DMat::Cuda(g)) => {
                d.mse(a, b, scale, l, g)?
            }
            (Handle::Host, DMat::Host(a), DMat::Host(b), DMat::Host(l), DMat::Host(g)) => host::mse(a, b, scale, l, g)?,
            _ => return Err(mixed("mse")),
        }
        Ok(())
    }

    /// `y = x·keep·scale` (inverted dropout with a host-made 0/1 mask).
    pub(crate) fn dropout(x: &CudaBuffer, keep: &CudaBuffer, scale: f32, y: &mut CudaBuffer) -> Result<()> {
        let dev = y.dev.clone();
        match (&dev, &*x.mat, &*keep.mat, y.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(a), DMat::Cuda(k), DMat::Cuda(o)) => d.dropout(a, k, scale, o)?,
            (Handle::Host, DMat::Host(a), DMat::Host(k), DMat::Host(o)) => host::dropout(a, k, scale, o)?,
            _ => return Err(mixed("dropout")),
        }
        Ok(())
    }

    /// Valid max pooling of NCHW `x` (`dims = [N, C, H, W]`) into `y`; returns the argmax.
    pub(crate) fn max_pool2d(
        x: &CudaBuffer,
        dims: [usize; 4],
        pool: [usize; 2],
        stride: [usize; 2],
        y: &mut CudaBuffer,
    ) -> Result<DIndex> {
        let dev = y.dev.clone();
        let len = y.len();
        Ok(match (&dev, &*x.mat, y.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(a), DMat::Cuda(o)) => {
                let mut idx = d.alloc_index(len)?;
                d.max_pool2d(a, dims, pool, stride, o, &mut idx)?;
                DIndex::Cuda(idx)
            }
            (Handle::Host, DMat::Host(a), DMat::Host(o)) => DIndex::Host(host::max_pool2d(a, dims, pool, stride, o)?),
            _ => return Err(mixed("max_pool2d")),
        })
    }

    /// `dx = 0` except `dx[argmax[o]] += dy[o]`.
    pub(crate) fn max_pool2d_backward(dy: &CudaBuffer, idx: &DIndex, dx: &mut CudaBuffer) -> Result<()> {
        let dev = dx.dev.clone();
        match (&dev, &*dy.mat, idx, dx.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(g), DIndex::Cuda(i), DMat::Cuda(o)) => d.max_pool2d_backward(g, i, o)?,
            (Handle::Host, DMat::Host(g), DIndex::Host(i), DMat::Host(o)) => host::max_pool2d_backward(g, i, o)?,
            _ => return Err(mixed("max_pool2d_backward")),
        }
        Ok(())
    }

    /// One optimizer step in place on this parameter buffer (copied first if shared), with
    /// its gradient and the two state buffers (Adam `m`, `v`; RMSprop mean square, momentum).
    ///
    /// # Errors
    /// Kernel errors, mismatched backends.
    pub fn optimizer_step(
        &mut self,
        step: OptimizerStep,
        g: &CudaBuffer,
        state1: &mut CudaBuffer,
        state2: &mut CudaBuffer,
    ) -> Result<()> {
        let dev = self.dev.clone();
        match (&dev, self.mat_mut()?, &*g.mat, state1.mat_mut()?, state2.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(w), DMat::Cuda(gm), DMat::Cuda(s1), DMat::Cuda(s2)) => {
                d.optimizer_step(step, w, gm, s1, s2)?
            }
            (Handle::Host, DMat::Host(w), DMat::Host(gm), DMat::Host(s1), DMat::Host(s2)) => {
                host::optimizer_step(step, w, gm, s1, s2)?
            }
            _ => return Err(mixed("optimizer_step")),
        }
        Ok(())
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
        tiles: &DTiles,
        out: &mut CudaBuffer,
        beta: Beta,
    ) -> Result<()> {
        let a = a.view(a_dims.0, a_dims.1)?;
        let b = b.view(b_dims.0, b_dims.1)?;
        let dev = out.dev.clone();
        match (&dev, &*a.mat, &*b.mat, tiles, out.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(x), DMat::Cuda(y), DTiles::Cuda(t), DMat::Cuda(o)) => {
                d.masked_gemm(op, precision, x, y, t, o, beta)?
            }
            (Handle::Host, DMat::Host(x), DMat::Host(y), DTiles::Host(t), DMat::Host(o)) => {
                host::gemm(op, x, y, t, o, beta)?
            }
            _ => return Err(mixed("masked_gemm")),
        }
        Ok(())
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
        mask: &DConv,
        bias: Option<&CudaBuffer>,
        out: &mut CudaBuffer,
    ) -> Result<()> {
        use crate::ops::conv::ConvGeometry as G;
        let dev = out.dev.clone();
        let bias_mat = bias.map(|b| &*b.mat);
        match (&dev, &*a.mat, &*b.mat, mask, out.mat_mut()?) {
            (Handle::Cuda(d), DMat::Cuda(x), DMat::Cuda(y), DConv::Cuda(m), DMat::Cuda(o)) => {
                let bias = match bias_mat {
                    Some(DMat::Cuda(b)) => Some(b),
                    Some(DMat::Host(_)) => return Err(mixed("conv")),
                    None => None,
                };
                match (geom, op) {
                    (G::Conv(g), GemmOp::Forward) => d.masked_conv2d(precision, g, x, y, m, bias, o, Beta::Zero)?,
                    (G::Conv(g), op) => d.masked_conv2d_backward(op, precision, g, x, y, m, o, Beta::Zero)?,
                    (G::Transpose(g), op) => {
                        d.masked_conv_transpose2d(op, precision, g, x, y, m, bias, o, Beta::Zero)?
                    }
                }
            }
            (Handle::Host, DMat::Host(x), DMat::Host(y), DConv::Host(m), DMat::Host(o)) => {
                let bias = match bias_mat {
                    Some(DMat::Host(b)) => Some(b.data.as_slice()),
                    Some(DMat::Cuda(_)) => return Err(mixed("conv")),
                    None => None,
                };
                host::conv(op, geom, &x.data, &y.data, m.as_deref(), bias, &mut o.data)?
            }
            _ => return Err(mixed("conv")),
        }
        Ok(())
    }

    // --- masks ------------------------------------------------------------------------------

    /// Device-resident tile lists of a mask, uploaded once per mask (cached by the `Arc`'s
    /// address; the cache keeps the `Arc`, so the address cannot be reused).
    pub(crate) fn tile_map(&self, mask: &Arc<TileMap>) -> Result<Arc<DTiles>> {
        cached_tile_map(
            self,
            TileKey::Mask(Arc::as_ptr(mask) as usize),
            || Ok((**mask).clone()),
            Some(mask.clone()),
        )
    }

    /// The tile lists of a full `(k, n)` mask (a dense product on the masked kernels).
    pub(crate) fn full_tile_map(&self, k: usize, n: usize) -> Result<Arc<DTiles>> {
        cached_tile_map(
            self,
            TileKey::Full(k, n),
            || Ok(TileMap::full(k, n, TileSize::square(GPU_TILE))?),
            None,
        )
    }

    /// The tile lists of the per-sample permutation of `transpose(shape, a, b)` (built by
    /// `build` on first use only).
    pub(crate) fn permutation_tile_map(
        &self,
        shape: &[usize],
        a: usize,
        b: usize,
        build: impl FnOnce() -> Result<TileMap>,
    ) -> Result<Arc<DTiles>> {
        let key = TileKey::Permutation {
            shape: shape.to_vec(),
            a,
            b,
        };
        cached_tile_map(self, key, build, None)
    }

    /// A constant all-ones `rows × cols` matrix on this device (cached).
    pub(crate) fn ones(&self, rows: usize, cols: usize) -> Result<CudaBuffer> {
        ones(self, rows, cols)
    }

    /// The tile lists of an optional mask: the mask's, or a full `(k, n)` one.
    pub(crate) fn tile_map_or_full(&self, mask: Option<&Arc<TileMap>>, k: usize, n: usize) -> Result<Arc<DTiles>> {
        match mask {
            Some(m) => self.tile_map(m),
            None => self.full_tile_map(k, n),
        }
    }

    /// The conv tile lists of an optional mask for a layer with mask dims `dims`.
    pub(crate) fn conv_mask(&self, dims: [usize; 5], mask: Option<&Arc<ConvMask>>) -> Result<Arc<DConv>> {
        let key = (self.ordinal, dims, mask.map_or(0, |m| Arc::as_ptr(m) as usize));
        let mut cache = conv_cache().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, d)) = cache.get(&key) {
            return Ok(d.clone());
        }
        let d = Arc::new(match &self.dev {
            Handle::Cuda(dev) => DConv::Cuda(dev.upload_conv_mask(dims, mask.map(|m| &**m))?),
            Handle::Host => DConv::Host(mask.cloned()),
        });
        cache.insert(key, (mask.cloned(), d.clone()));
        Ok(d)
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum TileKey {
    /// A caller's mask, by the address of its `Arc`.
    Mask(usize),
    /// A full `(k, n)` map.
    Full(usize, usize),
    /// The per-sample permutation of `transpose(shape, a, b)`.
    Permutation { shape: Vec<usize>, a: usize, b: usize },
}

type TileCache = HashMap<(usize, TileKey), (Option<Arc<TileMap>>, Arc<DTiles>)>;

fn tile_cache() -> &'static Mutex<TileCache> {
    static CACHE: OnceLock<Mutex<TileCache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

type ConvCache = HashMap<(usize, [usize; 5], usize), (Option<Arc<ConvMask>>, Arc<DConv>)>;

fn conv_cache() -> &'static Mutex<ConvCache> {
    static CACHE: OnceLock<Mutex<ConvCache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn cached_tile_map(
    buf: &CudaBuffer,
    key: TileKey,
    build: impl FnOnce() -> Result<TileMap>,
    keep: Option<Arc<TileMap>>,
) -> Result<Arc<DTiles>> {
    let mut cache = tile_cache().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, d)) = cache.get(&(buf.ordinal, key.clone())) {
        return Ok(d.clone());
    }
    let map = build()?;
    let d = Arc::new(match &buf.dev {
        Handle::Cuda(dev) => DTiles::Cuda(dev.upload_tile_map(&map)?),
        Handle::Host => DTiles::Host(map),
    });
    cache.insert((buf.ordinal, key), (keep, d.clone()));
    Ok(d)
}

/// Constant all-ones matrices (the `W` of the permutation products), per device and dims.
fn ones(buf: &CudaBuffer, rows: usize, cols: usize) -> Result<CudaBuffer> {
    type OnesCache = HashMap<(usize, usize, usize), CudaBuffer>;
    static CACHE: OnceLock<Mutex<OnesCache>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(b) = cache.get(&(buf.ordinal, rows, cols)) {
        return Ok(b.clone());
    }
    let b = buf.filled(rows, cols, 1.0)?;
    cache.insert((buf.ordinal, rows, cols), b.clone());
    Ok(b)
}

/// The `(s, s)` mask of a per-sample permutation: output `c` reads input `src[c]`, so
/// `y = x · (1 ⊙ P)` gathers and `dx = dy · (1 ⊙ P)ᵀ` scatters back.
pub(crate) fn permutation_map(src: &[usize], tile: TileSize) -> Result<TileMap> {
    let s = src.len();
    Ok(TileMap::from_fn(s, s, tile, |r, c| src[c] == r)?)
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
    let dev = out.dev.clone();
    match (&dev, &*src.mat, out.mat_mut()?) {
        (Handle::Cuda(d), DMat::Cuda(a), DMat::Cuda(o)) => d.copy_columns(a, src_col, o, dst_col, len, beta)?,
        (Handle::Host, DMat::Host(a), DMat::Host(o)) => host::copy_columns(a, src_col, o, dst_col, len, beta)?,
        _ => return Err(mixed("copy_columns")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_dims_follow_the_leading_axis() {
        assert_eq!(mat_dims(&[]), (1, 1));
        assert_eq!(mat_dims(&[7]), (1, 7));
        assert_eq!(mat_dims(&[2, 3]), (2, 3));
        assert_eq!(mat_dims(&[2, 3, 4, 5]), (2, 60));
    }

    /// The permutation mask, run through the CPU masked GEMM (the same `Y = X(W⊙M)`,
    /// `dX = dY(W⊙M)ᵀ` as the device kernels) with an all-ones `W`, moves values exactly where
    /// the device `transpose` expects them.
    #[test]
    fn permutation_masks_move_values_exactly() {
        use biokernels::gemm::{masked_matmul, masked_matmul_dx, MatMut, MatRef};
        let mm = |a: &[f32], ar: usize, ac: usize, map: &TileMap, beta: Beta, out: &mut [f32]| {
            let [k, n] = map.shape();
            let ones = vec![1.0f32; k * n];
            let (a, w) = (MatRef::new(a, ar, ac).unwrap(), MatRef::new(&ones, k, n).unwrap());
            masked_matmul(a, w, map, MatMut::new(out, ar, n).unwrap(), beta).unwrap();
        };
        // A permutation: NCHW → NHWC of one (C=2, H=2, W=3) sample, gathered and scattered back.
        let (c, h, w) = (2, 2, 3);
        let s = c * h * w;
        let src: Vec<usize> = (0..s)
            .map(|o| {
                let (p, ch) = (o / c, o % c);
                ch * h * w + p
            })
            .collect();
        let perm = permutation_map(&src, TileSize::CPU_DEFAULT).unwrap();
        let xs: Vec<f32> = (0..2 * s).map(|v| v as f32 + 0.5).collect();
        let mut y = vec![f32::NAN; 2 * s];
        mm(&xs, 2, s, &perm, Beta::Zero, &mut y);
        for n in 0..2 {
            for o in 0..s {
                assert_eq!(y[n * s + o], xs[n * s + src[o]]);
            }
        }
        let ones = vec![1.0f32; s * s];
        let mut dx = vec![f32::NAN; 2 * s];
        masked_matmul_dx(
            MatRef::new(&y, 2, s).unwrap(),
            MatRef::new(&ones, s, s).unwrap(),
            &perm,
            MatMut::new(&mut dx, 2, s).unwrap(),
            Beta::Zero,
        )
        .unwrap();
        assert_eq!(dx, xs);
    }

    #[test]
    fn a_missing_device_is_a_typed_error_and_cached() {
        match device(0) {
            Ok(_) => {} // a GPU machine
            Err(e) => {
                #[cfg(not(feature = "cuda"))]
                assert_eq!(e, Error::CudaUnavailable);
                #[cfg(feature = "cuda")]
                assert!(matches!(e, Error::NoCudaDevice { ordinal: 0, .. }), "{e:?}");
                assert!(e.is_no_cuda());
                // The second request answers from the cache with the same error.
                assert_eq!(device(0).unwrap_err(), e);
                assert!(!is_available(0));
            }
        }
        // An ordinal that no machine here has names itself in the error.
        if let Err(Error::NoCudaDevice { ordinal, .. }) = device(7) {
            assert_eq!(ordinal, 7);
        }
    }
}
