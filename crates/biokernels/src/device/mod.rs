//! One device backend trait for everything the tape runs on a device: [`DeviceBackend`].
//!
//! Three types implement it, and the compiler keeps them in step (a method one of them lacks
//! does not compile):
//! - [`crate::cuda::CudaDevice`] with the `cuda` feature: the kernels of `kernels/`, one family
//!   file per op family under `src/cuda/` (see `docs/cuda.md`);
//! - [`host::HostDevice`], the host emulator: the same operations computed on the CPU with the
//!   semantics each kernel is documented to have, so every device path of the tape runs in
//!   tests on machines without a GPU;
//! - the uninhabited `CudaDevice` of builds without the feature (it can never be constructed).
//!
//! Buffers cross the trait as backend-erased handles ([`DeviceMatrix`], [`DeviceIndex`],
//! [`DeviceTiles`], [`DeviceConv`]): each backend downcasts to its own buffer type and answers
//! [`Error::ForeignDeviceBuffer`] for a buffer of another backend. Callers hold an
//! `Arc<dyn DeviceBackend>` per device and never match on the kind of device.
//!
//! Every handle a backend hands out carries a [`LiveToken`] of that backend, so
//! [`DeviceBackend::live_buffers`] counts the buffers, index buffers and uploaded masks that
//! are still alive (the test that dropped models free their device masks reads it).
//!
//! # Shapes
//! A [`DeviceMatrix`] is a flat f32 buffer with a `rows × cols` view ([`DeviceMatrix::reshape`]
//! changes the view, never the values). Elementwise operations check lengths; products, the
//! bias operations, the row reductions and softmax cross-entropy read the view. Operands of the
//! products as [`crate::gemm`]: `x (m, k)`, `w (k, n)`, `dy (m, n)`, mask `(k, n)`.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::conv::{Conv2dGeometry, ConvMask, ConvTranspose2dGeometry};
use crate::cuda::{BinaryOp, GemmOp, Precision, UnaryOp};
use crate::error::{Error, Result};
use crate::gemm::Beta;
use crate::optim::OptimizerStep;
use crate::tile_map::TileMap;

pub mod host;
pub mod norm;
pub mod resample;

pub use norm::{NormLayout, NormReduce, Segments};
pub use resample::PlaneMap;

/// Launch and allocation limits that every backend checks the same way, so that a run on the
/// host emulator refuses what a GPU would refuse, with the same typed error, before a GPU is
/// ever involved.
pub mod limits {
    use crate::error::{Error, Result};

    /// The largest grid extent in y and z of a CUDA launch.
    pub const MAX_GRID_YZ: usize = 65_535;
    /// The largest grid extent in x of a CUDA launch (2^31 − 1).
    pub const MAX_GRID_X: usize = i32::MAX as usize;

    /// The grid `(x, y, z)` as a launch takes it, or [`Error::CudaOperand`] naming the extent
    /// that is over the hardware limit (the driver would fail the launch with a bare
    /// `CUDA_ERROR_INVALID_VALUE`).
    pub fn grid(op: &'static str, x: usize, y: usize, z: usize) -> Result<(u32, u32, u32)> {
        for (axis, v, max) in [("x", x, MAX_GRID_X), ("y", y, MAX_GRID_YZ), ("z", z, MAX_GRID_YZ)] {
            if v > max {
                return Err(Error::CudaOperand {
                    op,
                    reason: format!("a launch grid of {v} blocks in {axis} is over the limit of {max}"),
                });
            }
        }
        // The casts cannot truncate: every extent is at most 2^31 − 1.
        Ok((x as u32, y as u32, z as u32))
    }

    /// The element count of a `rows × cols` device matrix, refusing an empty one: the CUDA
    /// driver cannot allocate zero bytes, so an empty matrix is an error on every backend.
    pub fn allocation(op: &'static str, rows: usize, cols: usize) -> Result<usize> {
        let len = rows.checked_mul(cols).ok_or(Error::SizeOverflow { rows, cols })?;
        if len == 0 {
            return Err(Error::CudaOperand {
                op,
                reason: format!("a {rows}x{cols} matrix is empty and device buffers cannot be zero bytes"),
            });
        }
        Ok(len)
    }

    /// Checks the class count of a softmax cross-entropy: at least one class (the kernel reads
    /// the first logit of each row).
    pub fn classes(op: &'static str, classes: usize) -> Result<()> {
        if classes == 0 {
            return Err(Error::CudaOperand {
                op,
                reason: "softmax over 0 classes".to_string(),
            });
        }
        Ok(())
    }
}

/// Counts the live handles of one backend: each handle holds a [`LiveToken`] that gives its
/// count back when dropped.
#[derive(Debug, Clone, Default)]
pub struct LiveCounter(Arc<AtomicUsize>);

impl LiveCounter {
    /// A token for one new handle.
    pub fn token(&self) -> LiveToken {
        self.0.fetch_add(1, Ordering::Relaxed);
        LiveToken(self.0.clone())
    }

    /// Handles alive now.
    pub fn live(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// A backend object (an index buffer, tile lists) as an [`Opaque`] handle that counts as
    /// live until dropped; [`Opaque::value`] gives it back to the backend.
    pub fn opaque<T: Any + Send + Sync>(&self, value: T) -> Opaque {
        Opaque::new(Counted {
            value,
            _live: self.token(),
        })
    }
}

/// A backend object with the live token of its backend (see [`LiveCounter::opaque`]).
#[derive(Debug)]
struct Counted<T> {
    value: T,
    _live: LiveToken,
}

/// One live handle of a backend (see [`LiveCounter`]).
#[derive(Debug)]
pub struct LiveToken(Arc<AtomicUsize>);

impl Drop for LiveToken {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The storage of a [`DeviceMatrix`] in one backend: its own buffer type with the `rows × cols`
/// view.
pub trait DeviceStorage: Any + Send + Sync + std::fmt::Debug {
    /// Rows of the view.
    fn rows(&self) -> usize;
    /// Columns of the view.
    fn cols(&self) -> usize;
    /// Views the same values as `rows × cols` (no copy).
    ///
    /// # Errors
    /// [`Error::CudaOperand`] unless `rows · cols` is the length.
    fn reshape(&mut self, rows: usize, cols: usize) -> Result<()>;
}

/// The handle of an f32 matrix on some backend.
#[derive(Debug)]
pub struct DeviceMatrix(Box<dyn DeviceStorage>);

/// [`Error::ForeignDeviceBuffer`] for a handle that is not `T`.
fn foreign<T>(op: &'static str) -> Error {
    Error::ForeignDeviceBuffer {
        op,
        expected: std::any::type_name::<T>(),
    }
}

impl DeviceMatrix {
    /// Wraps a backend's storage.
    pub fn new(storage: impl DeviceStorage) -> Self {
        DeviceMatrix(Box::new(storage))
    }
    /// Rows of the view.
    pub fn rows(&self) -> usize {
        self.0.rows()
    }
    /// Columns of the view.
    pub fn cols(&self) -> usize {
        self.0.cols()
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        self.rows() * self.cols()
    }
    /// `true` without values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Views the same values as `rows × cols`.
    ///
    /// # Errors
    /// [`Error::CudaOperand`] unless `rows · cols` is the length.
    pub fn reshape(&mut self, rows: usize, cols: usize) -> Result<()> {
        self.0.reshape(rows, cols)
    }
    /// The backend's storage, or [`Error::ForeignDeviceBuffer`] for another backend's.
    ///
    /// # Errors
    /// [`Error::ForeignDeviceBuffer`].
    pub fn storage<T: DeviceStorage>(&self, op: &'static str) -> Result<&T> {
        let any: &dyn Any = &*self.0;
        any.downcast_ref().ok_or_else(|| foreign::<T>(op))
    }
    /// The backend's storage, mutable.
    ///
    /// # Errors
    /// [`Error::ForeignDeviceBuffer`].
    pub fn storage_mut<T: DeviceStorage>(&mut self, op: &'static str) -> Result<&mut T> {
        let any: &mut dyn Any = &mut *self.0;
        any.downcast_mut().ok_or_else(|| foreign::<T>(op))
    }
}

/// A backend-erased device object that is only read by the backend that made it.
#[derive(Debug)]
pub struct Opaque(Box<dyn Any + Send + Sync>);

impl Opaque {
    /// Wraps a backend's object.
    pub fn new(inner: impl Any + Send + Sync) -> Self {
        Opaque(Box::new(inner))
    }
    /// The backend's object, or [`Error::ForeignDeviceBuffer`].
    ///
    /// # Errors
    /// [`Error::ForeignDeviceBuffer`].
    pub fn get<T: Any>(&self, op: &'static str) -> Result<&T> {
        self.0.downcast_ref().ok_or_else(|| foreign::<T>(op))
    }
    /// The object of a handle made by [`LiveCounter::opaque`], or
    /// [`Error::ForeignDeviceBuffer`].
    ///
    /// # Errors
    /// [`Error::ForeignDeviceBuffer`].
    pub fn value<T: Any>(&self, op: &'static str) -> Result<&T> {
        Ok(&self.get::<Counted<T>>(op)?.value)
    }
}

/// The argmax index buffer of a device max pooling.
pub type DeviceIndex = Opaque;
/// The uploaded tile lists of a mask ([`DeviceBackend::upload_tile_map`]).
pub type DeviceTiles = Opaque;
/// The uploaded tile lists of a conv mask ([`DeviceBackend::upload_conv_mask`]).
pub type DeviceConv = Opaque;
/// An uploaded [`PlaneMap`] ([`ResampleOps::upload_plane_map`]).
pub type DevicePlaneMap = Opaque;

/// Uploaded copies of one host mask, owned by the mask ([`TileMap`], [`ConvMask`]): they are
/// freed with it, so a process that builds and drops many masked models does not keep their
/// masks on the device. Keyed by the caller's device key (e.g. an ordinal) and the mask dims
/// the copy was made for. Cloning a mask gives an empty set (the clone uploads its own), and
/// the copies take no part in comparisons.
#[derive(Default)]
pub struct DeviceCopies(Mutex<Vec<(DeviceKey, Arc<Opaque>)>>);

/// Which device (and, for a conv mask, which layer dims) an uploaded copy is for.
type DeviceKey = (usize, [usize; 5]);

impl DeviceCopies {
    /// The copy for `key`, uploaded by `upload` on first use.
    ///
    /// # Errors
    /// Those of `upload`.
    pub fn get_or_upload(
        &self,
        key: (usize, [usize; 5]),
        upload: impl FnOnce() -> Result<Opaque>,
    ) -> Result<Arc<Opaque>> {
        let mut copies = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, c)) = copies.iter().find(|(k, _)| *k == key) {
            return Ok(c.clone());
        }
        let c = Arc::new(upload()?);
        copies.push((key, c.clone()));
        Ok(c)
    }

    fn len(&self) -> usize {
        self.0.lock().map_or(0, |c| c.len())
    }
}

impl Clone for DeviceCopies {
    fn clone(&self) -> Self {
        DeviceCopies::default()
    }
}

impl PartialEq for DeviceCopies {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for DeviceCopies {}

impl std::fmt::Debug for DeviceCopies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceCopies({})", self.len())
    }
}

/// Every operation a device runs for the tape: the op families below, one supertrait each, so
/// that a family's trait methods sit next to its kernels in each backend. Every method checks
/// its operands and returns a typed error (never panics); `beta` as [`Beta`] (`Zero` never
/// reads the output, `One` adds to it). Bring the families into scope to call them
/// (`use biokernels::device::*`).
pub trait DeviceBackend:
    MemoryOps
    + GemmOps
    + ConvOps
    + ElementwiseOps
    + ReduceOps
    + LossOps
    + PoolOps
    + NormOps
    + ResampleOps
    + OptimOps
    + Send
    + Sync
    + std::fmt::Debug
{
}

impl<T> DeviceBackend for T where
    T: MemoryOps
        + GemmOps
        + ConvOps
        + ElementwiseOps
        + ReduceOps
        + LossOps
        + PoolOps
        + NormOps
        + ResampleOps
        + OptimOps
        + Send
        + Sync
        + std::fmt::Debug
{
}

/// Buffers: allocation, transfers and copies (`src/cuda/backend/memory.rs`), and what every backend reports.
pub trait MemoryOps {
    /// A name for messages, e.g. the GPU's.
    fn name(&self) -> String;
    /// Buffers, index buffers and uploaded masks of this backend alive now.
    fn live_buffers(&self) -> usize;
    /// Copies a row-major `rows × cols` f32 matrix to the device.
    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<DeviceMatrix>;
    /// A `rows × cols` matrix filled with `value`.
    fn filled(&self, rows: usize, cols: usize, value: f32) -> Result<DeviceMatrix>;
    /// A `rows × cols` matrix of zeros.
    fn zeros(&self, rows: usize, cols: usize) -> Result<DeviceMatrix> {
        self.filled(rows, cols, 0.0)
    }
    /// The values, on the host.
    fn download(&self, m: &DeviceMatrix) -> Result<Vec<f32>>;
    /// `dst = src` (same length).
    fn copy(&self, src: &DeviceMatrix, dst: &mut DeviceMatrix) -> Result<()>;
    /// `dst[r, dst_col + j] (+)= src[r, src_col + j]` for `j < cols`, same rows.
    fn copy_columns(
        &self,
        src: &DeviceMatrix,
        src_col: usize,
        dst: &mut DeviceMatrix,
        dst_col: usize,
        cols: usize,
        beta: Beta,
    ) -> Result<()>;
}

/// The masked GEMM products on uploaded tile lists (`src/cuda/backend/gemm.rs`).
#[allow(clippy::too_many_arguments)]
pub trait GemmOps {
    /// The tile lists of a mask on the device.
    fn upload_tile_map(&self, map: &TileMap) -> Result<DeviceTiles>;
    /// `Forward` `out = a·(b⊙M)`, `Dx` `out = a·(b⊙M)ᵀ`, `Dw` `out = (aᵀ·b)⊙M`.
    fn masked_gemm(
        &self,
        op: GemmOp,
        precision: Precision,
        a: &DeviceMatrix,
        b: &DeviceMatrix,
        tiles: &DeviceTiles,
        out: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()>;
}

/// The masked convolutions on uploaded conv tile lists (`src/cuda/backend/conv.rs`).
#[allow(clippy::too_many_arguments)]
pub trait ConvOps {
    /// The conv tile lists of a mask for a layer with mask dims `dims` (`None`: every weight).
    fn upload_conv_mask(&self, dims: [usize; 5], mask: Option<&ConvMask>) -> Result<DeviceConv>;
    /// `y = conv(x, W⊙M) + bias` (NCHW, Keras weights), as [`crate::conv::conv2d`].
    fn masked_conv2d(
        &self,
        precision: Precision,
        geom: &Conv2dGeometry,
        x: &DeviceMatrix,
        w: &DeviceMatrix,
        mask: &DeviceConv,
        bias: Option<&DeviceMatrix>,
        y: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()>;
    /// `Dx` (`a = dy`, `b = w`) or `Dw` (`a = x`, `b = dy`, 0 off the mask) of the conv2d.
    fn masked_conv2d_backward(
        &self,
        op: GemmOp,
        precision: Precision,
        geom: &Conv2dGeometry,
        a: &DeviceMatrix,
        b: &DeviceMatrix,
        mask: &DeviceConv,
        out: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()>;
    /// The transposed convolution: `Forward` (`a = x`, `b = w`, `bias`), `Dx` (`a = dy`,
    /// `b = w`), `Dw` (`a = x`, `b = dy`).
    fn masked_conv_transpose2d(
        &self,
        op: GemmOp,
        precision: Precision,
        geom: &ConvTranspose2dGeometry,
        a: &DeviceMatrix,
        b: &DeviceMatrix,
        mask: &DeviceConv,
        bias: Option<&DeviceMatrix>,
        out: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()>;
}

/// Elementwise ops; they check lengths, not views (`src/cuda/backend/elementwise.rs`).
pub trait ElementwiseOps {
    /// `y = f(x)` ([`UnaryOp`]).
    fn unary(&self, op: UnaryOp, x: &DeviceMatrix, y: &mut DeviceMatrix) -> Result<()>;
    /// `dx (+)= dy·f'(x)`: reads `x` for `Relu`, the forward output `y` otherwise.
    fn unary_backward(
        &self,
        op: UnaryOp,
        x: &DeviceMatrix,
        y: &DeviceMatrix,
        dy: &DeviceMatrix,
        dx: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()>;
    /// LeakyReLU: `y = x` where `x > 0`, `slope·x` elsewhere.
    fn leaky_relu(&self, slope: f32, x: &DeviceMatrix, y: &mut DeviceMatrix) -> Result<()>;
    /// `dx (+)= dy·(1 if x > 0 else slope)`.
    fn leaky_relu_backward(
        &self,
        slope: f32,
        x: &DeviceMatrix,
        dy: &DeviceMatrix,
        dx: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()>;
    /// `out = a op b` (same lengths).
    fn binary(&self, op: BinaryOp, a: &DeviceMatrix, b: &DeviceMatrix, out: &mut DeviceMatrix) -> Result<()>;
    /// `s = sign(a − b)` (0 on ties and NaN; same lengths).
    fn sign_diff(&self, a: &DeviceMatrix, b: &DeviceMatrix, s: &mut DeviceMatrix) -> Result<()>;
    /// `y = αx + βy` (`β = 0` does not read `y`).
    fn axpby(&self, alpha: f32, x: &DeviceMatrix, beta: f32, y: &mut DeviceMatrix) -> Result<()>;
    /// Every value of `m` set to `value`.
    fn fill(&self, m: &mut DeviceMatrix, value: f32) -> Result<()>;
    /// Inverted dropout: `y = x·keep·scale` (`keep` 0/1).
    fn dropout(&self, x: &DeviceMatrix, keep: &DeviceMatrix, scale: f32, y: &mut DeviceMatrix) -> Result<()>;
    /// A bf16 copy of `x` with its view (round to nearest even): the operands of a product
    /// with [`Precision::Bf16`], whose kernels read bf16 and accumulate in f32.
    fn to_bf16(&self, x: &DeviceMatrix) -> Result<DeviceMatrix>;
}

/// Bias adds and deterministic reductions (`src/cuda/backend/reduce.rs`).
pub trait ReduceOps {
    /// `y (rows, C) += bias (C)` per row.
    fn bias_add_rows(&self, y: &mut DeviceMatrix, bias: &DeviceMatrix) -> Result<()>;
    /// `db (C) = Σ dy` over rows (dense `(rows, C)`, `hw = 1`) or over `N` and `hw` (NCHW).
    fn bias_grad(&self, dy: &DeviceMatrix, channels: usize, hw: usize, db: &mut DeviceMatrix) -> Result<()>;
    /// `out (c) (+)= Σ_r x (r, c)`.
    fn sum_rows_into(&self, x: &DeviceMatrix, out: &mut DeviceMatrix, beta: Beta) -> Result<()>;
    /// `out (1) = Σ x`.
    fn sum_all(&self, x: &DeviceMatrix, out: &mut DeviceMatrix) -> Result<()>;
}

/// Fused losses: loss and gradient in one pass (`src/cuda/backend/loss.rs`).
pub trait LossOps {
    /// Per row `loss = logsumexp(z) − z[label]`, `dz = (softmax(z) − onehot)·scale`.
    fn softmax_cross_entropy(
        &self,
        logits: &DeviceMatrix,
        labels: &DeviceMatrix,
        grad_scale: f32,
        loss: &mut DeviceMatrix,
        dlogits: &mut DeviceMatrix,
    ) -> Result<()>;
    /// Per row of `x (rows, cols)`: `log_softmax` (`log`) or `softmax`, the row maximum
    /// subtracted first.
    fn softmax_rows(&self, x: &DeviceMatrix, log: bool, y: &mut DeviceMatrix) -> Result<()>;
    /// The input gradient from the forward's `y`: `dx (+)= dy − e^y·Σdy` (`log`) or
    /// `y·(dy − Σ dy·y)`, sums per row.
    fn softmax_rows_backward(
        &self,
        y: &DeviceMatrix,
        dy: &DeviceMatrix,
        log: bool,
        dx: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()>;
    /// Binary cross-entropy on logits per element, `loss = max(z, 0) − z·t + ln(1 + e^(−|z|))`,
    /// and `dz = (σ(z) − t)·grad_scale`.
    fn bce_with_logits(
        &self,
        z: &DeviceMatrix,
        t: &DeviceMatrix,
        grad_scale: f32,
        loss: &mut DeviceMatrix,
        dz: &mut DeviceMatrix,
    ) -> Result<()>;
    /// `loss = Σ(p − t)²/N`, `dp = 2(p − t)·grad_scale`.
    fn mse(
        &self,
        pred: &DeviceMatrix,
        target: &DeviceMatrix,
        grad_scale: f32,
        loss: &mut DeviceMatrix,
        dpred: &mut DeviceMatrix,
    ) -> Result<()>;
}

/// Batch and group normalisation over NCHW values (`src/cuda/backend/norm.rs`; formulas and
/// layouts in [`norm`]). The statistics are one `(3, S)` matrix: rows mean, biased variance and
/// `invstd = 1/√(σ² + ε)`; the gradient sums one `(2, R)` matrix: rows `Σ d` and `Σ d·x̂`.
pub trait NormOps {
    /// The statistics of `x` (two passes: the mean, then the squared deviations from it).
    fn norm_stats(&self, x: &DeviceMatrix, layout: NormLayout, eps: f32, stats: &mut DeviceMatrix) -> Result<()>;
    /// `y = γ_c·x̂ + β_c` with `affine = Some((γ, β))`, else `y = x̂`; `x̂ = (x − μ_s)·invstd_s`.
    fn norm_apply(
        &self,
        x: &DeviceMatrix,
        layout: NormLayout,
        stats: &DeviceMatrix,
        affine: Option<(&DeviceMatrix, &DeviceMatrix)>,
        y: &mut DeviceMatrix,
    ) -> Result<()>;
    /// `sums = [Σ d; Σ d·x̂]` over each segment of `over`, `d = dy·γ_c` (`gamma` given) or `dy`.
    #[allow(clippy::too_many_arguments)]
    fn norm_grad_sums(
        &self,
        x: &DeviceMatrix,
        dy: &DeviceMatrix,
        layout: NormLayout,
        stats: &DeviceMatrix,
        gamma: Option<&DeviceMatrix>,
        over: NormReduce,
        sums: &mut DeviceMatrix,
    ) -> Result<()>;
    /// With the per-statistic `sums` (batch statistics): `dx = invstd/M·(M·d − Σd − x̂·Σd·x̂)`;
    /// without (running statistics): `dx = d·invstd`. `d` as in [`NormOps::norm_grad_sums`].
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<()>;
}

/// Max pooling with the argmax kept on the device (`src/cuda/backend/pool.rs`).
pub trait PoolOps {
    /// Max pooling of NCHW `x` (`dims = [N, C, H, W]`, zero `padding` per side, padded
    /// positions skipped) into `y`; the argmax (first maximum of a window in row-major order)
    /// for the backward.
    fn max_pool2d(
        &self,
        x: &DeviceMatrix,
        dims: [usize; 4],
        pool: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        y: &mut DeviceMatrix,
    ) -> Result<DeviceIndex>;
    /// `dx = 0`, then `dx[argmax[o]] += dy[o]`.
    fn max_pool2d_backward(&self, dy: &DeviceMatrix, argmax: &DeviceIndex, dx: &mut DeviceMatrix) -> Result<()>;
    /// Average pooling (the padding counted in the divisor `kh·kw`, as the CPU `avg_pool2d`).
    fn avg_pool2d(
        &self,
        x: &DeviceMatrix,
        dims: [usize; 4],
        pool: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        y: &mut DeviceMatrix,
    ) -> Result<()>;
    /// `dx` = each element's sum of `dy/(kh·kw)` over the windows that contain it (written).
    fn avg_pool2d_backward(
        &self,
        dy: &DeviceMatrix,
        dims: [usize; 4],
        pool: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dx: &mut DeviceMatrix,
    ) -> Result<()>;
}

/// Sparse linear maps applied per plane: upsampling, transposes (`src/cuda/backend/resample.rs`;
/// formula and sum order in [`resample`]).
pub trait ResampleOps {
    /// The map on the device.
    fn upload_plane_map(&self, map: &PlaneMap) -> Result<DevicePlaneMap>;
    /// `y = M x` plane by plane (`y` written).
    fn plane_map(&self, map: &DevicePlaneMap, x: &DeviceMatrix, y: &mut DeviceMatrix) -> Result<()>;
}

/// The output `(oh, ow)` of a pooling of `dims = [N, C, H, W]`, checked: positive window and
/// stride, padding at most half the window, the window inside the padded input.
///
/// # Errors
/// [`Error::CudaOperand`] naming the geometry.
pub fn pool_output(
    op: &'static str,
    [_, _, h, w]: [usize; 4],
    [kh, kw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
) -> Result<(usize, usize)> {
    if kh == 0 || kw == 0 || sh == 0 || sw == 0 || 2 * ph > kh || 2 * pw > kw || kh > h + 2 * ph || kw > w + 2 * pw {
        return Err(Error::CudaOperand {
            op,
            reason: format!(
                "window {:?} with stride {:?} and padding {:?} does not fit a {h}x{w} input",
                [kh, kw],
                [sh, sw],
                [ph, pw]
            ),
        });
    }
    Ok(((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1))
}

/// Optimiser steps with the formulas and state layout of [`crate::optim`] (`src/cuda/backend/optim.rs`).
pub trait OptimOps {
    /// One step of `step` on `w` with gradient `g` and the state of [`crate::optim`] (`first` =
    /// Adam's `m` / RMSprop's momentum buffer, `second` = Adam's `v` / RMSprop's mean square).
    fn optimizer_step(
        &self,
        step: OptimizerStep,
        w: &mut DeviceMatrix,
        g: &DeviceMatrix,
        first: &mut DeviceMatrix,
        second: &mut DeviceMatrix,
    ) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::host::HostDevice;
    use super::*;
    use crate::tile_map::TileSize;

    /// A buffer of some other backend.
    #[derive(Debug)]
    struct Elsewhere;

    impl DeviceStorage for Elsewhere {
        fn rows(&self) -> usize {
            1
        }
        fn cols(&self) -> usize {
            1
        }
        fn reshape(&mut self, _: usize, _: usize) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_foreign_buffer_is_a_typed_error() {
        let host = HostDevice::new();
        let foreign = DeviceMatrix::new(Elsewhere);
        let mut out = host.zeros(1, 1).unwrap();
        let e = host.axpby(1.0, &foreign, 0.0, &mut out).unwrap_err();
        assert!(matches!(e, Error::ForeignDeviceBuffer { op: "axpby", .. }), "{e:?}");
        assert!(matches!(
            host.download(&foreign),
            Err(Error::ForeignDeviceBuffer { op: "download", .. })
        ));
        let not_tiles = Opaque::new(3usize);
        let x = host.zeros(2, 2).unwrap();
        let e = host
            .masked_gemm(
                GemmOp::Forward,
                Precision::F32,
                &x,
                &x,
                &not_tiles,
                &mut out,
                Beta::Zero,
            )
            .unwrap_err();
        assert!(matches!(e, Error::ForeignDeviceBuffer { .. }), "{e:?}");
    }

    #[test]
    fn a_mask_uploads_once_per_device_and_frees_its_copies_with_it() {
        let host = HostDevice::new();
        let map = TileMap::full(20, 30, TileSize::square(16)).unwrap();
        let mut uploads = 0;
        for _ in 0..3 {
            map.device_copies()
                .get_or_upload((0, [0; 5]), || {
                    uploads += 1;
                    host.upload_tile_map(&map)
                })
                .unwrap();
        }
        assert_eq!((uploads, host.live_buffers()), (1, 1));
        // Another device key gets its own copy; a clone of the mask starts with none.
        map.device_copies()
            .get_or_upload((1, [0; 5]), || host.upload_tile_map(&map))
            .unwrap();
        assert_eq!(host.live_buffers(), 2);
        let clone = map.clone();
        assert_eq!(clone, map);
        assert_eq!(format!("{:?}", clone.device_copies()), "DeviceCopies(0)");
        drop(map);
        assert_eq!(host.live_buffers(), 0);
    }
}
