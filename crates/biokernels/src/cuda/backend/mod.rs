//! The real CUDA backend (feature `cuda`): cudarc with the driver loaded at run time.
//!
//! This file holds the device, its buffer types and the launch helpers; each op family binds
//! its kernels in its own file beside it (`memory`, `gemm`, `conv`, `elementwise`, `reduce`,
//! `loss`, `norm`, `pool`, `resample`, `optim`), with typed methods on [`GpuMatrix`] and that family's trait of
//! [`crate::device::DeviceBackend`] (the erased handles unwrapped by the helpers at the end of
//! this file, then the typed method called). A handle of another backend is
//! [`Error::ForeignDeviceBuffer`].

mod conv;
mod elementwise;
mod gemm;
mod loss;
mod memory;
mod norm;
mod optim;
mod pool;
mod reduce;
mod resample;
pub use resample::GpuPlaneMap;

use std::sync::Arc;

use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType_t};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, LaunchArgs, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use half::bf16;

use super::tile_list::{GpuTileLists, GPU_TILE};
use super::{conv_params, ptx, BinaryOp, GemmOp, OptimizerStep, Precision, UnaryOp};
use crate::conv::{Conv2dGeometry, ConvMask, ConvTranspose2dGeometry, Plan};
use crate::device::{
    limits, pool_output, ConvOps, DeviceConv, DeviceIndex, DeviceMatrix, DevicePlaneMap, DeviceStorage, DeviceTiles,
    ElementwiseOps, GemmOps, LiveToken, LossOps, MemoryOps, NormLayout, NormOps, NormReduce, OptimOps, PlaneMap,
    PoolOps, ReduceOps, ResampleOps,
};
use crate::error::{Error, Result};
use crate::gemm::Beta;
use crate::tile_map::{TileMap, TileSize};

fn drv(op: &'static str) -> impl Fn(cudarc::driver::DriverError) -> Error {
    move |e| Error::Cuda {
        op,
        message: format!("{e:?}"),
    }
}

/// Rows of the output block of one CTA in the forward and dX kernels (`BM` in the source).
const BLOCK_M: usize = 128;
const THREADS: u32 = 256;
/// Most CTAs of a grid-stride launch (the kernels loop over the rest).
const MAX_GRID: usize = 65_535;
/// Columns per CTA of `sum_rows` (32 lanes × 8 row groups = 256 threads).
const SUM_ROWS_COLS: usize = 32;

/// A launch of `THREADS`-thread CTAs over `grid`, without dynamic shared memory.
fn threads_cfg(grid: (u32, u32, u32)) -> LaunchConfig {
    LaunchConfig {
        grid_dim: grid,
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Pushes the two operand buffers of a GEMM or convolution launch; the callers have checked
/// that both are f32 or both bf16 (the kernel's precision).
fn push_operands<'a>(lb: &mut LaunchArgs<'a>, a: &'a GpuData, b: &'a GpuData) {
    match (a, b) {
        (GpuData::F32(p), GpuData::F32(q)) => {
            lb.arg(p).arg(q);
        }
        (GpuData::Bf16(p), GpuData::Bf16(q)) => {
            lb.arg(p).arg(q);
        }
        // no-panic: every caller checks that both operands have the launch's precision first.
        _ => unreachable!("operand precisions are checked before every launch"),
    }
}

/// One CUDA device with its stream and the loaded kernel modules.
#[derive(Debug)]
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    gemm: Arc<CudaModule>,
    train: Arc<CudaModule>,
    name: String,
    cc: (i32, i32),
    /// `cuDriverGetVersion` (e.g. 13000 for CUDA 13.0), when the driver answers.
    driver: Option<i32>,
    /// How the masked-GEMM and training modules were loaded.
    loaded_from: [KernelSource; 2],
    /// Counts the handles this device gave out through [`crate::device::DeviceBackend`].
    live: crate::device::LiveCounter,
}

/// Values of a [`GpuMatrix`]: f32, or bf16 for [`Precision::Bf16`] inputs.
#[derive(Debug)]
enum GpuData {
    F32(CudaSlice<f32>),
    Bf16(CudaSlice<bf16>),
}

/// A row-major matrix in device memory.
#[derive(Debug)]
pub struct GpuMatrix {
    rows: usize,
    cols: usize,
    data: GpuData,
}

impl GpuMatrix {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Whether the values are stored as bf16.
    pub fn is_bf16(&self) -> bool {
        matches!(self.data, GpuData::Bf16(_))
    }
    /// Number of elements (`rows · cols`).
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reinterprets the buffer as `rows × cols` (no copy; the elementwise ops only look at the
    /// length, the row ops at this view).
    ///
    /// # Errors
    /// [`Error::CudaOperand`] unless `rows · cols` is the current length.
    pub fn reshape(&mut self, rows: usize, cols: usize) -> Result<()> {
        if rows.checked_mul(cols) != Some(self.len()) {
            return Err(Error::CudaOperand {
                op: "reshape",
                reason: format!("a {}x{} matrix cannot be viewed as {rows}x{cols}", self.rows, self.cols),
            });
        }
        self.rows = rows;
        self.cols = cols;
        Ok(())
    }
}

/// The geometry a [`GpuIndex`] was written for by [`CudaDevice::max_pool2d`] (read by the
/// backward): `planes = N·C`, input `(h, w)`, window, stride, output `(oh, ow)`, as the i32
/// kernel arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PoolGeom {
    planes: i32,
    h: i32,
    w: i32,
    kh: i32,
    kw: i32,
    sh: i32,
    sw: i32,
    oh: i32,
    ow: i32,
    ph: i32,
    pw: i32,
}

/// An i32 index buffer in device memory: the argmax of [`CudaDevice::max_pool2d`] (flat NCHW
/// input index of each output's maximum, as the CPU `max_pool2d`), which also remembers the
/// pooling geometry for [`CudaDevice::max_pool2d_backward`].
#[derive(Debug)]
pub struct GpuIndex {
    len: usize,
    /// At least one element: the driver does not allocate zero bytes.
    data: CudaSlice<i32>,
    geom: Option<PoolGeom>,
}

impl GpuIndex {
    /// Number of indices.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether there are no indices.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The tile lists of one mask in device memory.
#[derive(Debug)]
pub struct DeviceTileMap {
    rows: usize,
    cols: usize,
    grid_rows: usize,
    grid_cols: usize,
    col_ptr: CudaSlice<i32>,
    col_entries: CudaSlice<i32>,
    row_ptr: CudaSlice<i32>,
    row_entries: CudaSlice<i32>,
    tile_slots: CudaSlice<i32>,
    bits: CudaSlice<u64>,
    work_fraction: f64,
}

impl DeviceTileMap {
    /// `[k, n]` of the mask.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }
    /// Fraction of the dense work inside non-empty tiles.
    pub fn work_fraction(&self) -> f64 {
        self.work_fraction
    }
}

/// The tile lists of a conv mask, one [`DeviceTileMap`] per group, for one geometry.
/// `groups` hold the forward / weight-gradient lists over `(kh·kw·nx, ny/G)`; `transposed` the
/// input-gradient lists over `(kh·kw·ny/G, nx)` (each tap's channel block transposed).
#[derive(Debug)]
pub struct DeviceConvMask {
    dims: [usize; 5],
    groups: Vec<DeviceTileMap>,
    transposed: Vec<DeviceTileMap>,
}

impl DeviceConvMask {
    /// `[kh, kw, nx, ny, groups]` (as [`ConvMask::dims`]).
    pub fn dims(&self) -> [usize; 5] {
        self.dims
    }
}

/// How a kernel module reached the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelSource {
    /// The prebuilt cubin for `sm_<major>0` (no JIT).
    Cubin { sm: i32 },
    /// The PTX for `compute_<major>0`, JIT-compiled by the driver (an architecture without a
    /// cubin, or a cubin the driver refused).
    Ptx { compute: i32 },
}

/// `cuDriverGetVersion`, `None` if the call fails.
fn driver_version() -> Option<i32> {
    let mut v: std::ffi::c_int = 0;
    // SAFETY: called after `probe` found the driver library and a context was created; the
    // driver writes one int.
    let r = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) };
    (r == cudarc::driver::sys::CUresult::CUDA_SUCCESS).then_some(v)
}

/// `13000` → `13.0`.
fn version_text(v: Option<i32>) -> String {
    v.map_or_else(
        || "unknown".to_string(),
        |v| format!("{}.{}", v / 1000, (v % 1000) / 10),
    )
}

/// Loads one kernel module: the cubin of the device's architecture when there is one (sm_80
/// cubins run on every 8.x device, sm_90 on 9.x), else, or if the driver refuses it, the PTX.
/// A PTX the driver cannot compile (an ISA newer than the driver) is a typed error that names
/// the driver version and the one the PTX needs.
fn load_kernels(
    ctx: &Arc<CudaContext>,
    cc: (i32, i32),
    driver: Option<i32>,
    module: &ptx::KernelModule,
) -> Result<(Arc<CudaModule>, KernelSource)> {
    let cubin = match cc.0 {
        8 => Some((module.cubin_sm80, 80)),
        9 => Some((module.cubin_sm90, 90)),
        _ => None,
    };
    if let Some((bin, sm)) = cubin {
        if let Ok(m) = ctx.load_module(Ptx::from_binary(bin.to_vec())) {
            return Ok((m, KernelSource::Cubin { sm }));
        }
    }
    let (src, compute) = if cc.0 >= 9 {
        (module.ptx_compute90, 90)
    } else {
        (module.ptx_compute80, 80)
    };
    match ctx.load_module(Ptx::from_src(src)) {
        Ok(m) => Ok((m, KernelSource::Ptx { compute })),
        // The machine cannot run the kernels (as with no GPU): callers fall back to the CPU,
        // and the reason says which driver is needed.
        Err(e) => Err(Error::NoCudaDevice {
            reason: format!(
                "the driver (CUDA {}) cannot load the {} kernels: PTX ISA {} needs a CUDA {} driver or newer ({e:?})",
                version_text(driver),
                module.name,
                ptx::PTX_ISA,
                ptx::MIN_DRIVER,
            ),
        }),
    }
}

/// [`Error::NoCudaDevice`] unless the driver library can be opened: cudarc panics instead of
/// returning an error when it calls into a missing library.
fn probe() -> Result<()> {
    // SAFETY: only probes whether libcuda can be opened (dlopen); it does not call into it.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(Error::NoCudaDevice {
            reason: "the CUDA driver library (libcuda.so) is not installed".to_string(),
        });
    }
    Ok(())
}

fn i32_dim(op: &'static str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::CudaOperand {
        op,
        reason: format!("dimension {v} does not fit in i32"),
    })
}

fn beta_f32(beta: Beta) -> f32 {
    match beta {
        Beta::Zero => 0.0,
        Beta::One => 1.0,
    }
}

impl CudaDevice {
    /// Opens device `ordinal`, or returns [`Error::NoCudaDevice`] (never panics) when there is
    /// no driver, no such device, a device older than sm_80, or a driver too old for the
    /// kernels (the reason names its version and the one needed).
    ///
    /// # Errors
    /// [`Error::NoCudaDevice`], [`Error::Cuda`] for other driver failures.
    pub fn new(ordinal: usize) -> Result<Self> {
        probe()?;
        // cudarc panics instead of returning an error in a few driver-less corners; a panic here
        // must still become the typed error.
        let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| Error::NoCudaDevice {
                reason: "the CUDA driver could not be initialised".to_string(),
            })?
            .map_err(|e| Error::NoCudaDevice {
                reason: format!("device {ordinal}: {e:?}"),
            })?;
        let cc = ctx.compute_capability().map_err(drv("compute capability"))?;
        if cc.0 < 8 {
            return Err(Error::NoCudaDevice {
                reason: format!(
                    "device {ordinal} is sm_{}{}; the kernels need sm_80 or newer",
                    cc.0, cc.1
                ),
            });
        }
        let name = ctx.name().map_err(drv("device name"))?;
        let stream = ctx.default_stream();
        let driver = driver_version();
        let (gemm, gemm_from) = load_kernels(&ctx, cc, driver, &ptx::MASKED_GEMM)?;
        let (train, train_from) = load_kernels(&ctx, cc, driver, &ptx::TRAIN)?;
        let loaded_from = [gemm_from, train_from];
        Ok(CudaDevice {
            ctx,
            stream,
            gemm,
            train,
            name,
            cc,
            driver,
            loaded_from,
            live: crate::device::LiveCounter::default(),
        })
    }

    /// The device's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// `(major, minor)` compute capability.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.cc
    }

    /// The driver's CUDA version as `cuDriverGetVersion` reports it (13000 = CUDA 13.0), or
    /// `None` when the call failed.
    pub fn driver_version(&self) -> Option<i32> {
        self.driver
    }

    /// How the masked-GEMM and the training kernel modules were loaded: the prebuilt cubin of
    /// this architecture, or the PTX (JIT-compiled by the driver: seconds per device open).
    pub fn kernel_sources(&self) -> [KernelSource; 2] {
        self.loaded_from
    }

    /// Waits for all queued work.
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(drv("synchronize"))
    }

    fn f32_buf<'a>(op: &'static str, name: &'static str, m: &'a GpuMatrix, len: usize) -> Result<&'a CudaSlice<f32>> {
        match &m.data {
            GpuData::F32(s) if s.len() == len => Ok(s),
            GpuData::F32(s) => Err(Error::CudaOperand {
                op,
                reason: format!("`{name}` has {} elements, expected {len}", s.len()),
            }),
            GpuData::Bf16(_) => Err(Error::CudaOperand {
                op,
                reason: format!("`{name}` must be f32"),
            }),
        }
    }

    fn f32_buf_mut<'a>(
        op: &'static str,
        name: &'static str,
        m: &'a mut GpuMatrix,
        len: usize,
    ) -> Result<&'a mut CudaSlice<f32>> {
        match &mut m.data {
            GpuData::F32(s) if s.len() == len => Ok(s),
            _ => Err(Error::CudaOperand {
                op,
                reason: format!("`{name}` must be an f32 buffer of {len} elements"),
            }),
        }
    }

    fn cfg_1d(op: &'static str, n: usize) -> Result<(LaunchConfig, i32)> {
        let ni = i32_dim(op, n)?;
        let grid = limits::grid(op, n.div_ceil(THREADS as usize).max(1), 1, 1)?;
        Ok((threads_cfg(grid), ni))
    }

    fn train_fn(&self, name: &str) -> Result<CudaFunction> {
        self.train.load_function(name).map_err(drv("load kernel"))
    }

    /// A 1-D launch of `THREADS`-thread CTAs for grid-stride kernels: enough CTAs to give each
    /// thread about one element, at most `MAX_GRID` (the kernels loop over the rest).
    fn cfg_stride(n: usize) -> LaunchConfig {
        threads_cfg((n.div_ceil(THREADS as usize).clamp(1, MAX_GRID) as u32, 1, 1))
    }

    /// One CTA of `THREADS` threads (the deterministic single-CTA reductions).
    fn cfg_one_cta() -> LaunchConfig {
        threads_cfg((1, 1, 1))
    }

    /// [`Error::CudaOperand`] unless every operand has `n` elements (named in the message).
    fn same_len(op: &'static str, n: usize, operands: &[(&str, &GpuMatrix)]) -> Result<()> {
        for (name, m) in operands {
            if m.len() != n {
                return Err(Error::CudaOperand {
                    op,
                    reason: format!(
                        "`{name}` has {} elements ({}x{}), expected {n}",
                        m.len(),
                        m.rows,
                        m.cols
                    ),
                });
            }
        }
        Ok(())
    }
}

/// A cuBLAS handle bound to a [`CudaDevice`]'s stream.
#[derive(Debug)]
pub struct CublasHandle(cudarc::cublas::CudaBlas);

// ---- the erased handles of crate::device, unwrapped for the family trait impls ----------------

/// A device matrix handed out through the trait, with its live token.
#[derive(Debug)]
struct CudaMat {
    m: GpuMatrix,
    _live: LiveToken,
}

impl DeviceStorage for CudaMat {
    fn rows(&self) -> usize {
        self.m.rows()
    }
    fn cols(&self) -> usize {
        self.m.cols()
    }
    fn reshape(&mut self, rows: usize, cols: usize) -> Result<()> {
        self.m.reshape(rows, cols)
    }
}

fn gpu<'a>(op: &'static str, m: &'a DeviceMatrix) -> Result<&'a GpuMatrix> {
    Ok(&m.storage::<CudaMat>(op)?.m)
}

fn gpu_mut<'a>(op: &'static str, m: &'a mut DeviceMatrix) -> Result<&'a mut GpuMatrix> {
    Ok(&mut m.storage_mut::<CudaMat>(op)?.m)
}

fn tiles<'a>(op: &'static str, t: &'a DeviceTiles) -> Result<&'a DeviceTileMap> {
    t.value::<DeviceTileMap>(op)
}

fn conv_mask<'a>(op: &'static str, t: &'a DeviceConv) -> Result<&'a DeviceConvMask> {
    t.value::<DeviceConvMask>(op)
}

fn gpu_opt<'a>(op: &'static str, m: Option<&'a DeviceMatrix>) -> Result<Option<&'a GpuMatrix>> {
    m.map(|m| gpu(op, m)).transpose()
}

impl CudaDevice {
    fn wrap(&self, m: GpuMatrix) -> DeviceMatrix {
        DeviceMatrix::new(CudaMat {
            m,
            _live: self.live.token(),
        })
    }
}

// The launch geometry above assumes the kernels' TILE.
const _: () = assert!(GPU_TILE == 64);
