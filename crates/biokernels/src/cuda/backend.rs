//! The real CUDA backend (feature `cuda`): cudarc with the driver loaded at run time.

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
    /// Counts the handles this device gave out through [`crate::device::DeviceBackend`].
    pub(super) live: crate::device::LiveCounter,
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
    /// no driver, no such device, or a device older than sm_80.
    ///
    /// # Errors
    /// [`Error::NoCudaDevice`], [`Error::Cuda`] when loading the PTX fails.
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
        let src = if cc.0 >= 9 {
            ptx::MASKED_GEMM_COMPUTE_90
        } else {
            ptx::MASKED_GEMM_COMPUTE_80
        };
        let gemm = ctx
            .load_module(Ptx::from_src(src))
            .map_err(drv("load masked_gemm PTX"))?;
        let train_src = if cc.0 >= 9 {
            ptx::TRAIN_COMPUTE_90
        } else {
            ptx::TRAIN_COMPUTE_80
        };
        let train = ctx
            .load_module(Ptx::from_src(train_src))
            .map_err(drv("load train PTX"))?;
        Ok(CudaDevice {
            ctx,
            stream,
            gemm,
            train,
            name,
            cc,
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

    /// Waits for all queued work.
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(drv("synchronize"))
    }

    /// Copies a row-major `rows × cols` matrix to the device, as bf16 for
    /// [`Precision::Bf16`] (round to nearest even) and f32 otherwise.
    ///
    /// # Errors
    /// [`Error::BufferSize`], [`Error::Cuda`].
    pub fn upload(&self, data: &[f32], rows: usize, cols: usize, precision: Precision) -> Result<GpuMatrix> {
        crate::gemm::MatRef::new(data, rows, cols)?;
        let data = match precision {
            Precision::Bf16 => {
                let h: Vec<bf16> = data.iter().map(|&v| bf16::from_f32(v)).collect();
                GpuData::Bf16(self.stream.clone_htod(&h).map_err(drv("upload"))?)
            }
            _ => GpuData::F32(self.stream.clone_htod(data).map_err(drv("upload"))?),
        };
        Ok(GpuMatrix { rows, cols, data })
    }

    /// An f32 `rows × cols` output matrix filled with `value` (tests poison outputs with NaN).
    ///
    /// # Errors
    /// [`Error::SizeOverflow`], [`Error::Cuda`].
    pub fn filled(&self, rows: usize, cols: usize, value: f32) -> Result<GpuMatrix> {
        let len = rows.checked_mul(cols).ok_or(Error::SizeOverflow { rows, cols })?;
        let host = vec![value; len];
        Ok(GpuMatrix {
            rows,
            cols,
            data: GpuData::F32(self.stream.clone_htod(&host).map_err(drv("alloc"))?),
        })
    }

    /// Copies a matrix back (bf16 values are widened to f32).
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn download(&self, m: &GpuMatrix) -> Result<Vec<f32>> {
        match &m.data {
            GpuData::F32(s) => self.stream.clone_dtoh(s).map_err(drv("download")),
            GpuData::Bf16(s) => Ok(self
                .stream
                .clone_dtoh(s)
                .map_err(drv("download"))?
                .into_iter()
                .map(f32::from)
                .collect()),
        }
    }

    /// Uploads the tile lists of a mask (rebuilt with 64 × 64 tiles if needed).
    ///
    /// # Errors
    /// [`Error::Cuda`], [`Error::CudaOperand`].
    pub fn upload_tile_map(&self, map: &TileMap) -> Result<DeviceTileMap> {
        let l = GpuTileLists::from_tile_map(map)?;
        let flat = |v: &[[i32; 2]]| -> Vec<i32> {
            let mut out: Vec<i32> = v.iter().flat_map(|e| [e[0], e[1]]).collect();
            // cudarc cannot allocate zero-length buffers portably: keep one dummy entry.
            if out.is_empty() {
                out.extend([0, 0]);
            }
            out
        };
        let mut bits = l.bits.clone();
        if bits.is_empty() {
            bits.push(0);
        }
        let up_i32 = |v: &[i32]| self.stream.clone_htod(v).map_err(drv("upload tile lists"));
        Ok(DeviceTileMap {
            rows: l.rows,
            cols: l.cols,
            grid_rows: l.grid_rows,
            grid_cols: l.grid_cols,
            col_ptr: up_i32(&l.col_ptr)?,
            col_entries: up_i32(&flat(&l.col_entries))?,
            row_ptr: up_i32(&l.row_ptr)?,
            row_entries: up_i32(&flat(&l.row_entries))?,
            tile_slots: up_i32(&l.tile_slots)?,
            bits: self.stream.clone_htod(&bits).map_err(drv("upload tile lists"))?,
            work_fraction: l.work_fraction,
        })
    }

    /// Uploads the per-group tile lists of a conv mask for a layer whose mask dims are `dims`
    /// (`geom.mask_dims()` of a [`Conv2dGeometry`] or [`ConvTranspose2dGeometry`]); `None`
    /// keeps every weight.
    ///
    /// # Errors
    /// [`Error::ConvMaskMismatch`], [`Error::ConvGeometry`], [`Error::Cuda`].
    pub fn upload_conv_mask(&self, dims: [usize; 5], mask: Option<&ConvMask>) -> Result<DeviceConvMask> {
        let [kh, kw, nx, ny, g] = dims;
        if dims.contains(&0) || ny % g != 0 {
            return Err(Error::ConvGeometry {
                op: "conv mask",
                reason: format!("mask dims [kh, kw, nx, ny, groups] = {dims:?}: zero size or groups not dividing ny"),
            });
        }
        let cout_g = ny / g;
        let tile = TileSize::square(GPU_TILE);
        let full = TileMap::full(kh * kw * nx, cout_g, tile)?;
        let maps: Vec<&TileMap> = match mask {
            Some(m) => {
                if m.dims() != dims {
                    return Err(Error::ConvMaskMismatch {
                        op: "conv2d",
                        expected: dims,
                        got: m.dims(),
                    });
                }
                m.maps().iter().collect()
            }
            None => vec![&full; g],
        };
        let mut groups = Vec::with_capacity(g);
        let mut transposed = Vec::with_capacity(g);
        for map in maps {
            groups.push(self.upload_tile_map(map)?);
            // Row (tap, co), column c of the input-gradient GEMM is forward entry (tap, c), co.
            let t = TileMap::from_fn(kh * kw * cout_g, nx, tile, |r, c| {
                map.get((r / cout_g) * nx + c, r % cout_g)
            })?;
            transposed.push(self.upload_tile_map(&t)?);
        }
        Ok(DeviceConvMask {
            dims,
            groups,
            transposed,
        })
    }

    /// The masked conv2d forward as an implicit GEMM on the tile lists: `y = conv(x, W⊙M) +
    /// bias` (`Beta::Zero`) or added to `y` (`Beta::One`). `x`, `w`, `bias`, `y` hold the NCHW /
    /// Keras-layout buffers of [`crate::conv::conv2d`] (any `rows × cols` with the right
    /// length); `x` and `w` in bf16 exactly when `precision` is `Bf16`, `bias` and `y` in f32.
    ///
    /// # Errors
    /// [`Error::ConvGeometry`], [`Error::ConvBuffer`], [`Error::ConvMaskMismatch`],
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    #[allow(clippy::too_many_arguments)]
    pub fn masked_conv2d(
        &self,
        precision: Precision,
        geom: &Conv2dGeometry,
        x: &GpuMatrix,
        w: &GpuMatrix,
        mask: &DeviceConvMask,
        bias: Option<&GpuMatrix>,
        y: &mut GpuMatrix,
        beta: Beta,
    ) -> Result<()> {
        let plan = geom.plan("conv2d")?;
        self.conv_fwd_plan(precision, &plan, x, w, mask, bias, y, beta)
    }

    /// Shapes of a plan's convolution view: input, output, weight, mask dims.
    fn plan_shapes(p: &Plan) -> ([usize; 4], [usize; 4], [usize; 4], [usize; 5]) {
        let cin_g = p.cin / p.groups;
        (
            [p.batch, p.cin, p.h, p.w],
            [p.batch, p.cout, p.oh, p.ow],
            [p.kh, p.kw, cin_g, p.cout],
            [p.kh, p.kw, cin_g, p.cout, p.groups],
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_fwd_plan(
        &self,
        precision: Precision,
        plan: &Plan,
        x: &GpuMatrix,
        w: &GpuMatrix,
        mask: &DeviceConvMask,
        bias: Option<&GpuMatrix>,
        y: &mut GpuMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "conv2d";
        let params = conv_params(plan)?;
        let (in_shape, out_shape, w_shape, mask_dims) = Self::plan_shapes(plan);
        Self::conv_buf("x", in_shape.to_vec(), x)?;
        Self::conv_buf("w", w_shape.to_vec(), w)?;
        Self::conv_buf("y", out_shape.to_vec(), y)?;
        if let Some(b) = bias {
            Self::conv_buf("bias", vec![plan.cout], b)?;
            if b.is_bf16() {
                return Err(Error::CudaOperand {
                    op: OP,
                    reason: "the bias must be f32".to_string(),
                });
            }
        }
        Self::check_conv_operands(OP, precision, mask, mask_dims, [x, w], "x and w")?;
        let GpuData::F32(out_buf) = &mut y.data else {
            return Err(Error::CudaOperand {
                op: OP,
                reason: "the output must be an f32 matrix".to_string(),
            });
        };
        let rows = plan.batch * plan.oh * plan.ow;
        let m_blocks = u32::try_from(rows.div_ceil(BLOCK_M)).map_err(|_| Error::CudaOperand {
            op: OP,
            reason: format!("{rows} output pixels are too many"),
        })?;
        let f = self
            .gemm
            .load_function(&format!("masked_conv2d_fwd_{}", precision.name()))
            .map_err(drv("load kernel"))?;
        let beta = beta_f32(beta);
        // A null bias pointer: the kernel tests `bias != nullptr`.
        let null_bias: u64 = 0;
        for (group, lists) in mask.groups.iter().enumerate() {
            if m_blocks == 0 || lists.grid_cols == 0 {
                continue;
            }
            let group_i = group as i32;
            let cfg = threads_cfg((m_blocks, lists.grid_cols as u32, 1));
            let mut lb = self.stream.launch_builder(&f);
            push_operands(&mut lb, &x.data, &w.data);
            match bias.map(|b| &b.data) {
                Some(GpuData::F32(b)) => {
                    lb.arg(b);
                }
                _ => {
                    lb.arg(&null_bias);
                }
            }
            lb.arg(&mut *out_buf)
                .arg(&params)
                .arg(&group_i)
                .arg(&lists.col_ptr)
                .arg(&lists.col_entries)
                .arg(&lists.bits)
                .arg(&beta);
            // SAFETY: the arguments match `masked_conv2d_fwd_*` (x, w, bias or null, y, the
            // 16-int ConvGeom by value, group, the group's forward lists, bits, beta); the
            // buffer lengths were checked against the geometry above.
            unsafe { lb.launch(cfg) }.map_err(drv("launch masked_conv2d"))?;
        }
        Ok(())
    }

    /// The masked transposed convolution (PyTorch `ConvTranspose2d`, Keras weights
    /// `(kh, kw, C_out/G, C_in)`), on the kernels of the convolution whose input gradient it is:
    /// `GemmOp::Forward`: `a = x (N, C_in, H, W)`, `b = w`, `out = y (N, C_out, OH, OW)`, plus
    /// `bias` (the dgrad kernel, then a bias add); `GemmOp::Dx`: `a = dy`, `b = w`, `out = dx`
    /// (the conv forward kernel); `GemmOp::Dw`: `a = x`, `b = dy`, `out = dw` (the wgrad kernel
    /// with the roles of `x` and `dy` swapped), 0 off the mask. `bias` must be `None` for the
    /// gradients.
    ///
    /// # Errors
    /// [`Error::ConvGeometry`], [`Error::ConvBuffer`], [`Error::ConvMaskMismatch`],
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    #[allow(clippy::too_many_arguments)]
    pub fn masked_conv_transpose2d(
        &self,
        op: GemmOp,
        precision: Precision,
        geom: &ConvTranspose2dGeometry,
        a: &GpuMatrix,
        b: &GpuMatrix,
        mask: &DeviceConvMask,
        bias: Option<&GpuMatrix>,
        out: &mut GpuMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "conv_transpose2d";
        let (plan, _) = geom.resolve(OP)?;
        if bias.is_some() && op != GemmOp::Forward {
            return Err(Error::CudaOperand {
                op: OP,
                reason: "a bias only goes with the forward".to_string(),
            });
        }
        match op {
            GemmOp::Forward => {
                self.conv_back_plan(GemmOp::Dx, precision, &plan, a, b, mask, out, beta)?;
                if let Some(bias) = bias {
                    Self::conv_buf("bias", vec![plan.cin], bias)?;
                    self.bias_add_nchw(out, bias, plan.cin, plan.h * plan.w)?;
                }
                Ok(())
            }
            GemmOp::Dx => self.conv_fwd_plan(precision, &plan, a, b, mask, None, out, beta),
            GemmOp::Dw => self.conv_back_plan(GemmOp::Dw, precision, &plan, b, a, mask, out, beta),
        }
    }

    /// Checks a conv buffer's length.
    /// The mask must have been uploaded for this plan's dims, and both inputs in the precision
    /// the kernel reads (`inputs` names them in the error).
    fn check_conv_operands(
        op: &'static str,
        precision: Precision,
        mask: &DeviceConvMask,
        mask_dims: [usize; 5],
        operands: [&GpuMatrix; 2],
        inputs: &str,
    ) -> Result<()> {
        if mask.dims != mask_dims {
            return Err(Error::ConvMaskMismatch {
                op,
                expected: mask_dims,
                got: mask.dims,
            });
        }
        if operands.iter().any(|m| m.is_bf16() != (precision == Precision::Bf16)) {
            return Err(Error::CudaOperand {
                op,
                reason: format!(
                    "{} needs {inputs} uploaded with Precision::{precision:?}",
                    precision.name()
                ),
            });
        }
        Ok(())
    }

    fn conv_buf(name: &'static str, shape: Vec<usize>, m: &GpuMatrix) -> Result<()> {
        let expected = shape.iter().product::<usize>();
        let got = m.rows * m.cols;
        if got != expected {
            return Err(Error::ConvBuffer {
                op: "conv2d",
                name,
                shape,
                expected,
                got,
            });
        }
        Ok(())
    }

    /// The input (`Dx`) or weight (`Dw`) gradient of [`CudaDevice::masked_conv2d`]:
    /// `Dx`: `a = dy (N, C_out, OH, OW)`, `b = w`, `out = dx (N, C_in, H, W)`;
    /// `Dw`: `a = x (N, C_in, H, W)`, `b = dy`, `out = dw (kh, kw, C_in/G, C_out)`, computed only
    /// on the mask's non-empty tiles and exactly 0 off the mask (`Beta::Zero`). `a` and `b` in
    /// bf16 exactly when `precision` is `Bf16`; `out` f32. `GemmOp::Forward` is an error (use
    /// `masked_conv2d`).
    ///
    /// # Errors
    /// [`Error::ConvGeometry`], [`Error::ConvBuffer`], [`Error::ConvMaskMismatch`],
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    #[allow(clippy::too_many_arguments)]
    pub fn masked_conv2d_backward(
        &self,
        op: GemmOp,
        precision: Precision,
        geom: &Conv2dGeometry,
        a: &GpuMatrix,
        b: &GpuMatrix,
        mask: &DeviceConvMask,
        out: &mut GpuMatrix,
        beta: Beta,
    ) -> Result<()> {
        let plan = geom.plan("conv2d backward")?;
        self.conv_back_plan(op, precision, &plan, a, b, mask, out, beta)
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_back_plan(
        &self,
        op: GemmOp,
        precision: Precision,
        plan: &Plan,
        a: &GpuMatrix,
        b: &GpuMatrix,
        mask: &DeviceConvMask,
        out: &mut GpuMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "conv2d backward";
        let params = conv_params(plan)?;
        let (in_shape, out_shape, w_shape, mask_dims) = Self::plan_shapes(plan);
        let (name, rows) = match op {
            GemmOp::Dx => {
                Self::conv_buf("dy", out_shape.to_vec(), a)?;
                Self::conv_buf("w", w_shape.to_vec(), b)?;
                Self::conv_buf("dx", in_shape.to_vec(), out)?;
                ("dx", plan.batch * plan.h * plan.w)
            }
            GemmOp::Dw => {
                Self::conv_buf("x", in_shape.to_vec(), a)?;
                Self::conv_buf("dy", out_shape.to_vec(), b)?;
                Self::conv_buf("dw", w_shape.to_vec(), out)?;
                ("dw", plan.batch * plan.oh * plan.ow)
            }
            GemmOp::Forward => {
                return Err(Error::CudaOperand {
                    op: OP,
                    reason: "the forward convolution is masked_conv2d".to_string(),
                })
            }
        };
        Self::check_conv_operands(OP, precision, mask, mask_dims, [a, b], "inputs")?;
        let GpuData::F32(out_buf) = &mut out.data else {
            return Err(Error::CudaOperand {
                op: OP,
                reason: "the output must be an f32 matrix".to_string(),
            });
        };
        let f = self
            .gemm
            .load_function(&format!("masked_conv2d_{name}_{}", precision.name()))
            .map_err(drv("load kernel"))?;
        let beta = beta_f32(beta);
        let m_blocks = rows.div_ceil(BLOCK_M) as u32;
        let lists = if op == GemmOp::Dx {
            &mask.transposed
        } else {
            &mask.groups
        };
        for (group, l) in lists.iter().enumerate() {
            let grid = match op {
                GemmOp::Dx => (m_blocks, l.grid_cols as u32, 1),
                _ => (l.grid_cols as u32, l.grid_rows as u32, 1),
            };
            if grid.0 == 0 || grid.1 == 0 {
                continue;
            }
            let group_i = group as i32;
            let cfg = threads_cfg(grid);
            let mut lb = self.stream.launch_builder(&f);
            push_operands(&mut lb, &a.data, &b.data);
            lb.arg(&mut *out_buf).arg(&params).arg(&group_i);
            if op == GemmOp::Dx {
                lb.arg(&l.col_ptr).arg(&l.col_entries);
            } else {
                lb.arg(&l.tile_slots);
            }
            lb.arg(&l.bits).arg(&beta);
            // SAFETY: the arguments match `masked_conv2d_{dx,dw}_*` (two inputs, output, the
            // 16-int ConvGeom, group, the group's lists, bits, beta); the buffer lengths were
            // checked against the geometry above.
            unsafe { lb.launch(cfg) }.map_err(drv("launch masked_conv2d backward"))?;
        }
        Ok(())
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
        Ok((threads_cfg((n.div_ceil(THREADS as usize).max(1) as u32, 1, 1)), ni))
    }

    fn train_fn(&self, name: &str) -> Result<CudaFunction> {
        self.train.load_function(name).map_err(drv("load kernel"))
    }

    /// `y (rows, cols) += bias (cols)`.
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn bias_add_rows(&self, y: &mut GpuMatrix, bias: &GpuMatrix) -> Result<()> {
        const OP: &str = "bias_add_rows";
        let (rows, cols) = (y.rows, y.cols);
        let bs = Self::f32_buf(OP, "bias", bias, cols)?;
        let ys = Self::f32_buf_mut(OP, "y", y, rows * cols)?;
        let (cfg, _) = Self::cfg_1d(OP, rows * cols)?;
        let (ri, ci) = (i32_dim(OP, rows)?, i32_dim(OP, cols)?);
        let f = self.train_fn("bias_add_rows")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(ys).arg(bs).arg(&ri).arg(&ci);
        // SAFETY: bias_add_rows(y, b, rows, cols) with y of rows*cols and b of cols f32.
        unsafe { lb.launch(cfg) }.map_err(drv("launch bias_add_rows"))?;
        Ok(())
    }

    /// The bias gradient: `db (C) = Σ dy` over every axis but the channel. `dy` is `(rows, C)`
    /// with `hw = 1` (dense layers) or NCHW `(N, C, hw)` (`dy.rows = N`, `dy.cols = C·hw`).
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn bias_grad(&self, dy: &GpuMatrix, channels: usize, hw: usize, db: &mut GpuMatrix) -> Result<()> {
        const OP: &str = "bias_grad";
        let n = dy.rows;
        if channels == 0 || dy.cols != channels * hw {
            return Err(Error::CudaOperand {
                op: OP,
                reason: format!("dy has {} columns, expected {channels}·{hw}", dy.cols),
            });
        }
        let ds = Self::f32_buf(OP, "dy", dy, n * channels * hw)?;
        let bs = Self::f32_buf_mut(OP, "db", db, channels)?;
        let (ni, ci, hi) = (i32_dim(OP, n)?, i32_dim(OP, channels)?, i32_dim(OP, hw)?);
        if hw == 1 {
            let (cfg, _) = Self::cfg_1d(OP, channels)?;
            let f = self.train_fn("bias_grad_rows")?;
            let mut lb = self.stream.launch_builder(&f);
            lb.arg(ds).arg(bs).arg(&ni).arg(&ci);
            // SAFETY: bias_grad_rows(dy, db, rows, cols) on checked lengths.
            unsafe { lb.launch(cfg) }.map_err(drv("launch bias_grad_rows"))?;
        } else {
            let cfg = threads_cfg((channels as u32, 1, 1));
            let f = self.train_fn("bias_grad_nchw")?;
            let mut lb = self.stream.launch_builder(&f);
            lb.arg(ds).arg(bs).arg(&ni).arg(&ci).arg(&hi);
            // SAFETY: bias_grad_nchw(dy, db, n, c, hw), one CTA of 256 threads per channel.
            unsafe { lb.launch(cfg) }.map_err(drv("launch bias_grad_nchw"))?;
        }
        Ok(())
    }

    /// Fused softmax cross-entropy over the rows of `logits (rows, classes)` with `labels
    /// (rows)` (class indices stored as f32): `loss[r] = logsumexp(z_r) − z_r[label]` and
    /// `dlogits = (softmax − onehot)·grad_scale` (`1/rows` for a mean loss).
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn softmax_cross_entropy(
        &self,
        logits: &GpuMatrix,
        labels: &GpuMatrix,
        grad_scale: f32,
        loss: &mut GpuMatrix,
        dlogits: &mut GpuMatrix,
    ) -> Result<()> {
        const OP: &str = "softmax_cross_entropy";
        let (rows, classes) = (logits.rows, logits.cols);
        let zs = Self::f32_buf(OP, "logits", logits, rows * classes)?;
        let ls = Self::f32_buf(OP, "labels", labels, rows)?;
        let out_l = Self::f32_buf_mut(OP, "loss", loss, rows)?;
        let out_d = Self::f32_buf_mut(OP, "dlogits", dlogits, rows * classes)?;
        let (cfg, ri) = Self::cfg_1d(OP, rows)?;
        let ci = i32_dim(OP, classes)?;
        let f = self.train_fn("softmax_xent")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(zs)
            .arg(ls)
            .arg(out_l)
            .arg(out_d)
            .arg(&ri)
            .arg(&ci)
            .arg(&grad_scale);
        // SAFETY: softmax_xent(z, labels, loss, dz, rows, classes, scale) on checked lengths;
        // labels are read as class indices, which the caller keeps below `classes`.
        unsafe { lb.launch(cfg) }.map_err(drv("launch softmax_xent"))?;
        Ok(())
    }

    /// One optimizer step in place: `w`, its gradient `g`, and the state buffers in the layout
    /// of [`crate::optim`] (`first` = Adam's `m` / RMSprop's momentum buffer, `second` = Adam's
    /// `v` / RMSprop's mean square), all f32 of the same length. (`rmsprop_step` takes the mean
    /// square before the momentum buffer: the two are swapped at the launch below.)
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn optimizer_step(
        &self,
        step: OptimizerStep,
        w: &mut GpuMatrix,
        g: &GpuMatrix,
        first: &mut GpuMatrix,
        second: &mut GpuMatrix,
    ) -> Result<()> {
        const OP: &str = "optimizer_step";
        let n = w.rows * w.cols;
        let ws = Self::f32_buf_mut(OP, "w", w, n)?;
        let gs = Self::f32_buf(OP, "g", g, n)?;
        let s1 = Self::f32_buf_mut(OP, "first", first, n)?;
        let s2 = Self::f32_buf_mut(OP, "second", second, n)?;
        let (cfg, ni) = Self::cfg_1d(OP, n)?;
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
                let f = self.train_fn("adam_step")?;
                let t = i32::from(torch);
                let mut lb = self.stream.launch_builder(&f);
                lb.arg(ws)
                    .arg(gs)
                    .arg(s1)
                    .arg(s2)
                    .arg(&ni)
                    .arg(&beta1)
                    .arg(&beta2)
                    .arg(&eps)
                    .arg(&step)
                    .arg(&bc2_sqrt)
                    .arg(&t)
                    .arg(&weight_decay);
                // SAFETY: adam_step's signature; all buffers have n f32.
                unsafe { lb.launch(cfg) }.map_err(drv("launch adam_step"))?;
            }
            OptimizerStep::RmsProp {
                rho,
                eps,
                lr,
                momentum,
                torch,
                weight_decay,
            } => {
                let f = self.train_fn("rmsprop_step")?;
                let t = i32::from(torch);
                let mut lb = self.stream.launch_builder(&f);
                // rmsprop_step(w, g, mean_square, momentum, ...): `second`, then `first`.
                lb.arg(ws)
                    .arg(gs)
                    .arg(s2)
                    .arg(s1)
                    .arg(&ni)
                    .arg(&rho)
                    .arg(&eps)
                    .arg(&lr)
                    .arg(&momentum)
                    .arg(&t)
                    .arg(&weight_decay);
                // SAFETY: rmsprop_step's signature; all buffers have n f32.
                unsafe { lb.launch(cfg) }.map_err(drv("launch rmsprop_step"))?;
            }
        }
        Ok(())
    }

    // ---- training building blocks (kernels/train/train.cu) ------------------------------------

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

    /// An f32 `rows × cols` matrix of zeros (allocated on the device, no host transfer).
    ///
    /// # Errors
    /// [`Error::SizeOverflow`], [`Error::Cuda`] (also for a zero-size matrix if the driver
    /// refuses zero-byte allocations).
    pub fn zeros(&self, rows: usize, cols: usize) -> Result<GpuMatrix> {
        let len = rows.checked_mul(cols).ok_or(Error::SizeOverflow { rows, cols })?;
        Ok(GpuMatrix {
            rows,
            cols,
            data: GpuData::F32(self.stream.alloc_zeros::<f32>(len).map_err(drv("alloc"))?),
        })
    }

    /// An index buffer of `len` zeros, e.g. the argmax of [`CudaDevice::max_pool2d`].
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn alloc_index(&self, len: usize) -> Result<GpuIndex> {
        Ok(GpuIndex {
            len,
            data: self.stream.alloc_zeros::<i32>(len.max(1)).map_err(drv("alloc index"))?,
            geom: None,
        })
    }

    /// Copies an index buffer back (tests and debugging).
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn download_index(&self, idx: &GpuIndex) -> Result<Vec<i32>> {
        let mut v = self.stream.clone_dtoh(&idx.data).map_err(drv("download index"))?;
        v.truncate(idx.len);
        Ok(v)
    }

    /// Copies `data` into the existing f32 matrix `dst` (same number of elements): no
    /// allocation, so per-step inputs (a batch, a dropout mask) reuse one buffer.
    ///
    /// # Errors
    /// [`Error::CudaOperand`] for a length mismatch or a bf16 `dst`, [`Error::Cuda`].
    pub fn upload_into(&self, data: &[f32], dst: &mut GpuMatrix) -> Result<()> {
        const OP: &str = "upload_into";
        let n = data.len();
        let d = Self::f32_buf_mut(OP, "dst", dst, n)?;
        if n > 0 {
            self.stream.memcpy_htod(data, d).map_err(drv("upload"))?;
        }
        Ok(())
    }

    /// Copies `m` into the existing host slice `out` (same number of elements; bf16 values
    /// are widened). Waits for the copy.
    ///
    /// # Errors
    /// [`Error::CudaOperand`] for a length mismatch, [`Error::Cuda`].
    pub fn download_into(&self, m: &GpuMatrix, out: &mut [f32]) -> Result<()> {
        if out.len() != m.len() {
            return Err(Error::CudaOperand {
                op: "download_into",
                reason: format!("the host slice has {} elements, the matrix {}", out.len(), m.len()),
            });
        }
        if out.is_empty() {
            return Ok(());
        }
        match &m.data {
            GpuData::F32(s) => self.stream.memcpy_dtoh(s, out).map_err(drv("download"))?,
            GpuData::Bf16(_) => out.copy_from_slice(&self.download(m)?),
        }
        self.synchronize()
    }

    /// Elementwise activation `y = op(x)` (see [`UnaryOp`]); `x` and `y` f32 with the same
    /// number of elements.
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn unary(&self, op: UnaryOp, x: &GpuMatrix, y: &mut GpuMatrix) -> Result<()> {
        let name = op.name();
        let n = x.len();
        let xs = Self::f32_buf(name, "x", x, n)?;
        let ys = Self::f32_buf_mut(name, "y", y, n)?;
        if n == 0 {
            return Ok(());
        }
        let ni = i32_dim(name, n)?;
        let code = op.code();
        let f = self.train_fn("unary_fwd")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs).arg(ys).arg(&ni).arg(&code);
        // SAFETY: unary_fwd(x, y, n, op) on two buffers of n f32 (checked above).
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch unary_fwd"))?;
        Ok(())
    }

    /// The input gradient of [`CudaDevice::unary`]: `dx = dy·op'(x)` written (`Beta::Zero`,
    /// `dx` is not read) or added to `dx` (`Beta::One`). `Relu` reads `x` (`dy·[x > 0]`),
    /// `Tanh` and `Sigmoid` read the forward output `y` (`dy·(1 − y²)`, `dy·y·(1 − y)`); all
    /// four operands are f32 with the same number of elements.
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn unary_backward(
        &self,
        op: UnaryOp,
        x: &GpuMatrix,
        y: &GpuMatrix,
        dy: &GpuMatrix,
        dx: &mut GpuMatrix,
        beta: Beta,
    ) -> Result<()> {
        let name = op.name();
        let n = dy.len();
        Self::same_len(name, n, &[("x", x), ("y", y)])?;
        let saved = if op == UnaryOp::Relu {
            Self::f32_buf(name, "x", x, n)?
        } else {
            Self::f32_buf(name, "y", y, n)?
        };
        let ds = Self::f32_buf(name, "dy", dy, n)?;
        let dxs = Self::f32_buf_mut(name, "dx", dx, n)?;
        if n == 0 {
            return Ok(());
        }
        let ni = i32_dim(name, n)?;
        let (code, b) = (op.code(), beta_f32(beta));
        let f = self.train_fn("unary_bwd")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(saved).arg(ds).arg(dxs).arg(&ni).arg(&code).arg(&b);
        // SAFETY: unary_bwd(saved, dy, dx, n, op, beta) on three buffers of n f32.
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch unary_bwd"))?;
        Ok(())
    }

    /// Elementwise `out = a op b` (see [`BinaryOp`]) on f32 operands with the same number of
    /// elements (no broadcasting; `out`'s `rows × cols` view is not checked against `a`'s).
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn binary(&self, op: BinaryOp, a: &GpuMatrix, b: &GpuMatrix, out: &mut GpuMatrix) -> Result<()> {
        let name = op.name();
        let n = a.len();
        let as_ = Self::f32_buf(name, "a", a, n)?;
        let bs = Self::f32_buf(name, "b", b, n)?;
        let os = Self::f32_buf_mut(name, "out", out, n)?;
        if n == 0 {
            return Ok(());
        }
        let ni = i32_dim(name, n)?;
        let code = op.code();
        let f = self.train_fn("binary_ew")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(as_).arg(bs).arg(os).arg(&ni).arg(&code);
        // SAFETY: binary_ew(a, b, out, n, op) on three buffers of n f32.
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch binary_ew"))?;
        Ok(())
    }

    /// `y = alpha·x + beta·y` in place (gradient accumulation, SGD-like updates, scaling);
    /// with `beta = 0` `y` is not read (NaN in `y` does not survive).
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn axpby(&self, alpha: f32, x: &GpuMatrix, beta: f32, y: &mut GpuMatrix) -> Result<()> {
        const OP: &str = "axpby";
        let n = x.len();
        let xs = Self::f32_buf(OP, "x", x, n)?;
        let ys = Self::f32_buf_mut(OP, "y", y, n)?;
        if n == 0 {
            return Ok(());
        }
        let ni = i32_dim(OP, n)?;
        let f = self.train_fn("axpby")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs).arg(ys).arg(&ni).arg(&alpha).arg(&beta);
        // SAFETY: axpby(x, y, n, alpha, beta) on two buffers of n f32.
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch axpby"))?;
        Ok(())
    }

    /// Sets every element of the f32 matrix `m` to `value`.
    ///
    /// # Errors
    /// [`Error::CudaOperand`] for a bf16 matrix, [`Error::Cuda`].
    pub fn fill(&self, m: &mut GpuMatrix, value: f32) -> Result<()> {
        const OP: &str = "fill";
        let n = m.len();
        let ms = Self::f32_buf_mut(OP, "m", m, n)?;
        if n == 0 {
            return Ok(());
        }
        let ni = i32_dim(OP, n)?;
        let f = self.train_fn("fill_f32")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(ms).arg(&ni).arg(&value);
        // SAFETY: fill_f32(y, n, value) on a buffer of n f32.
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch fill_f32"))?;
        Ok(())
    }

    /// Device-to-device copy of `src` into `dst` (same number of elements, both f32 or both
    /// bf16); `dst` keeps its `rows × cols` view.
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn copy(&self, src: &GpuMatrix, dst: &mut GpuMatrix) -> Result<()> {
        const OP: &str = "copy";
        Self::same_len(OP, src.len(), &[("dst", dst)])?;
        if src.is_empty() {
            return Ok(());
        }
        match (&src.data, &mut dst.data) {
            (GpuData::F32(s), GpuData::F32(d)) => self.stream.memcpy_dtod(s, d),
            (GpuData::Bf16(s), GpuData::Bf16(d)) => self.stream.memcpy_dtod(s, d),
            _ => {
                return Err(Error::CudaOperand {
                    op: OP,
                    reason: "`src` and `dst` must both be f32 or both bf16".to_string(),
                })
            }
        }
        .map_err(drv("copy"))
    }

    /// Copies a block of columns between two row-major f32 matrices with the same number of
    /// rows: `dst[r, dst_col + j] = src[r, src_col + j]` (`Beta::Zero`, the block is not read)
    /// or `+=` (`Beta::One`) for `j < cols`; the other columns of `dst` are untouched. Slices a
    /// time step `(m, d)` out of a sequence `(m, T·d)` and places its gradient back.
    ///
    /// # Errors
    /// [`Error::CudaOperand`] when the rows differ or a column range leaves its matrix,
    /// [`Error::Cuda`].
    pub fn copy_columns(
        &self,
        src: &GpuMatrix,
        src_col: usize,
        dst: &mut GpuMatrix,
        dst_col: usize,
        cols: usize,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "copy_columns";
        let rows = src.rows;
        let (src_ld, dst_ld) = (src.cols, dst.cols);
        if dst.rows != rows
            || src_col.checked_add(cols).is_none_or(|e| e > src_ld)
            || dst_col.checked_add(cols).is_none_or(|e| e > dst_ld)
        {
            return Err(Error::CudaOperand {
                op: OP,
                reason: format!(
                    "columns {src_col}..+{cols} of a {rows}x{src_ld} `src` into columns {dst_col}..+{cols} of a {}x{dst_ld} `dst`",
                    dst.rows
                ),
            });
        }
        let ss = Self::f32_buf(OP, "src", src, rows * src_ld)?;
        let ds = Self::f32_buf_mut(OP, "dst", dst, rows * dst_ld)?;
        let n = rows * cols;
        if n == 0 {
            return Ok(());
        }
        i32_dim(OP, n)?;
        let (ri, sl, sc) = (i32_dim(OP, rows)?, i32_dim(OP, src_ld)?, i32_dim(OP, src_col)?);
        let (dl, dc, ci) = (i32_dim(OP, dst_ld)?, i32_dim(OP, dst_col)?, i32_dim(OP, cols)?);
        let b = beta_f32(beta);
        let f = self.train_fn("copy_cols")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(ss)
            .arg(ds)
            .arg(&ri)
            .arg(&sl)
            .arg(&sc)
            .arg(&dl)
            .arg(&dc)
            .arg(&ci)
            .arg(&b);
        // SAFETY: copy_cols(src, dst, rows, src_ld, src_col, dst_ld, dst_col, cols, beta); the
        // column ranges were checked to lie inside both matrices, whose lengths were checked.
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch copy_cols"))?;
        Ok(())
    }

    /// Column sums: `out (1, c) = Σ_r x (r, c)` written (`Beta::Zero`) or added to `out`
    /// (`Beta::One`). `out` must have `x.cols()` elements. Deterministic: each column is summed
    /// in a fixed order (8 interleaved partial sums over the rows, then a fixed tree), the same
    /// on every run, though not the CPU's sequential order.
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn sum_rows_into(&self, x: &GpuMatrix, out: &mut GpuMatrix, beta: Beta) -> Result<()> {
        const OP: &str = "sum_rows_into";
        let (rows, cols) = (x.rows, x.cols);
        let xs = Self::f32_buf(OP, "x", x, rows * cols)?;
        let os = Self::f32_buf_mut(OP, "out", out, cols)?;
        if cols == 0 {
            return Ok(());
        }
        let (ri, ci) = (i32_dim(OP, rows)?, i32_dim(OP, cols)?);
        let b = beta_f32(beta);
        let f = self.train_fn("sum_rows")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs).arg(os).arg(&ri).arg(&ci).arg(&b);
        let cfg = threads_cfg((cols.div_ceil(SUM_ROWS_COLS).min(MAX_GRID) as u32, 1, 1));
        // SAFETY: sum_rows(x, out, rows, cols, beta) with x of rows·cols and out of cols f32;
        // 256 threads per CTA as the kernel's shared array assumes.
        unsafe { lb.launch(cfg) }.map_err(drv("launch sum_rows"))?;
        Ok(())
    }

    /// `out (1×1) = Σ x` over every element, in one CTA with a fixed order (deterministic; meant
    /// for losses and norms, not for huge tensors: one CTA streams the whole buffer).
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn sum_all(&self, x: &GpuMatrix, out: &mut GpuMatrix) -> Result<()> {
        const OP: &str = "sum_all";
        let n = x.len();
        let xs = Self::f32_buf(OP, "x", x, n)?;
        let os = Self::f32_buf_mut(OP, "out", out, 1)?;
        let ni = i32_dim(OP, n)?;
        let f = self.train_fn("sum_all")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs).arg(os).arg(&ni);
        // SAFETY: sum_all(x, out, n): one CTA of 256 threads, x of n f32, out of one.
        unsafe { lb.launch(Self::cfg_one_cta()) }.map_err(drv("launch sum_all"))?;
        Ok(())
    }

    /// Mean squared error, fused with its gradient: `loss (1×1) = (1/N) Σ (pred − target)²`
    /// (one CTA, fixed order: deterministic) and `dpred = 2(pred − target)·grad_scale`
    /// (`grad_scale = 1/N` gives the gradient of the mean; the CPU `mse` uses `g/N`).
    /// `pred`, `target`, `dpred` f32 of the same length `N > 0`.
    ///
    /// # Errors
    /// [`Error::CudaOperand`] (also for `N = 0`), [`Error::Cuda`].
    pub fn mse(
        &self,
        pred: &GpuMatrix,
        target: &GpuMatrix,
        grad_scale: f32,
        loss: &mut GpuMatrix,
        dpred: &mut GpuMatrix,
    ) -> Result<()> {
        const OP: &str = "mse";
        let n = pred.len();
        if n == 0 {
            return Err(Error::CudaOperand {
                op: OP,
                reason: "the mean of an empty tensor is undefined".to_string(),
            });
        }
        let ps = Self::f32_buf(OP, "pred", pred, n)?;
        let ts = Self::f32_buf(OP, "target", target, n)?;
        let ls = Self::f32_buf_mut(OP, "loss", loss, 1)?;
        let ds = Self::f32_buf_mut(OP, "dpred", dpred, n)?;
        let ni = i32_dim(OP, n)?;
        let f = self.train_fn("mse_grad")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(ps).arg(ts).arg(ds).arg(&ni).arg(&grad_scale);
        // SAFETY: mse_grad(pred, target, dpred, n, scale) on three buffers of n f32.
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch mse_grad"))?;
        let f = self.train_fn("mse_loss")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(ps).arg(ts).arg(ls).arg(&ni);
        // SAFETY: mse_loss(pred, target, loss, n): one CTA, two buffers of n f32, loss of one.
        unsafe { lb.launch(Self::cfg_one_cta()) }.map_err(drv("launch mse_loss"))?;
        Ok(())
    }

    /// 2-D max pooling of NCHW `x` (`dims = [N, C, H, W]`) with window `pool = [kh, kw]` and
    /// `stride = [sh, sw]`, valid padding (Keras `MaxPooling2D(padding="valid")`): `y (N, C,
    /// OH, OW)` with `OH = (H − kh)/sh + 1`, `OW = (W − kw)/sw + 1`, and `argmax` (same length
    /// as `y`) the flat NCHW index into `x` of each maximum. Ties go to the first maximum in
    /// row-major window order, and a NaN only wins in a window's first position, exactly as the
    /// CPU `bioautograd` `max_pool2d`. `argmax` remembers the geometry for the backward.
    ///
    /// # Errors
    /// [`Error::CudaOperand`] for a zero window or stride, a window larger than the input,
    /// buffer lengths that do not match, or sizes beyond i32; [`Error::Cuda`].
    pub fn max_pool2d(
        &self,
        x: &GpuMatrix,
        dims: [usize; 4],
        pool: [usize; 2],
        stride: [usize; 2],
        y: &mut GpuMatrix,
        argmax: &mut GpuIndex,
    ) -> Result<()> {
        const OP: &str = "max_pool2d";
        let [n, c, h, w] = dims;
        let ([kh, kw], [sh, sw]) = (pool, stride);
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 || kh > h || kw > w {
            return Err(Error::CudaOperand {
                op: OP,
                reason: format!("window {pool:?} with stride {stride:?} does not fit a {h}x{w} input"),
            });
        }
        let (oh, ow) = ((h - kh) / sh + 1, (w - kw) / sw + 1);
        let planes = n.checked_mul(c).ok_or(Error::CudaOperand {
            op: OP,
            reason: format!("dims {dims:?} overflow"),
        })?;
        let in_len = planes.checked_mul(h * w).ok_or(Error::CudaOperand {
            op: OP,
            reason: format!("dims {dims:?} overflow"),
        })?;
        let out_len = planes * oh * ow;
        // The argmax holds flat input indices as i32.
        i32_dim(OP, in_len)?;
        let xs = Self::f32_buf(OP, "x", x, in_len)?;
        let ys = Self::f32_buf_mut(OP, "y", y, out_len)?;
        if argmax.len != out_len {
            return Err(Error::CudaOperand {
                op: OP,
                reason: format!("`argmax` has {} indices, expected {out_len}", argmax.len),
            });
        }
        let geom = PoolGeom {
            planes: i32_dim(OP, planes)?,
            h: i32_dim(OP, h)?,
            w: i32_dim(OP, w)?,
            kh: i32_dim(OP, kh)?,
            kw: i32_dim(OP, kw)?,
            sh: i32_dim(OP, sh)?,
            sw: i32_dim(OP, sw)?,
            oh: i32_dim(OP, oh)?,
            ow: i32_dim(OP, ow)?,
        };
        argmax.geom = Some(geom);
        if out_len == 0 {
            return Ok(());
        }
        let f = self.train_fn("max_pool2d_fwd")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs).arg(ys).arg(&mut argmax.data);
        Self::pool_args(&mut lb, &geom);
        // SAFETY: max_pool2d_fwd(x, y, arg, planes, h, w, kh, kw, sh, sw, oh, ow) with x of
        // planes·h·w f32 and y, arg of planes·oh·ow elements (checked above).
        unsafe { lb.launch(Self::cfg_stride(out_len)) }.map_err(drv("launch max_pool2d_fwd"))?;
        Ok(())
    }

    fn pool_args<'a>(lb: &mut LaunchArgs<'a>, g: &'a PoolGeom) {
        lb.arg(&g.planes)
            .arg(&g.h)
            .arg(&g.w)
            .arg(&g.kh)
            .arg(&g.kw)
            .arg(&g.sh)
            .arg(&g.sw)
            .arg(&g.oh)
            .arg(&g.ow);
    }

    /// The input gradient of [`CudaDevice::max_pool2d`]: `dx (N, C, H, W)` is zero except
    /// `dx[argmax[o]] += dy[o]`. Computed as a gather (each input element sums, in output order,
    /// the `dy` of the windows whose argmax it is), so overlapping windows (3×3, stride 2) need
    /// no atomics and the sums are bit-identical to the CPU's scatter. `dx` is fully written.
    ///
    /// # Errors
    /// [`Error::CudaOperand`] when `argmax` was not written by [`CudaDevice::max_pool2d`] or
    /// the lengths do not match its geometry, [`Error::Cuda`].
    pub fn max_pool2d_backward(&self, dy: &GpuMatrix, argmax: &GpuIndex, dx: &mut GpuMatrix) -> Result<()> {
        const OP: &str = "max_pool2d_backward";
        let Some(g) = argmax.geom else {
            return Err(Error::CudaOperand {
                op: OP,
                reason: "`argmax` was not written by max_pool2d".to_string(),
            });
        };
        let in_len = g.planes as usize * g.h as usize * g.w as usize;
        let ds = Self::f32_buf(OP, "dy", dy, argmax.len)?;
        let dxs = Self::f32_buf_mut(OP, "dx", dx, in_len)?;
        if in_len == 0 {
            return Ok(());
        }
        let f = self.train_fn("max_pool2d_bwd")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(ds).arg(&argmax.data).arg(dxs);
        Self::pool_args(&mut lb, &g);
        // SAFETY: max_pool2d_bwd(dy, arg, dx, geometry) with dy and arg of planes·oh·ow and dx
        // of planes·h·w elements; the indices in arg were written by max_pool2d_fwd for this
        // geometry (or are zeros), and are only compared, never dereferenced.
        unsafe { lb.launch(Self::cfg_stride(in_len)) }.map_err(drv("launch max_pool2d_bwd"))?;
        Ok(())
    }

    /// Inverted dropout with a mask made on the host: `y = x·(keep_mask·scale)` (`keep_mask`
    /// holds 0 or 1, `scale = 1/(1 − p)`), so the random stream is the CPU's and `y` is
    /// bit-identical to the CPU `dropout`. The backward is the same call on `dy`.
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn dropout(&self, x: &GpuMatrix, keep_mask: &GpuMatrix, scale: f32, y: &mut GpuMatrix) -> Result<()> {
        const OP: &str = "dropout";
        let n = x.len();
        let xs = Self::f32_buf(OP, "x", x, n)?;
        let ms = Self::f32_buf(OP, "keep_mask", keep_mask, n)?;
        let ys = Self::f32_buf_mut(OP, "y", y, n)?;
        if n == 0 {
            return Ok(());
        }
        let ni = i32_dim(OP, n)?;
        let f = self.train_fn("dropout_apply")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs).arg(ms).arg(ys).arg(&ni).arg(&scale);
        // SAFETY: dropout_apply(x, mask, y, n, scale) on three buffers of n f32.
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch dropout_apply"))?;
        Ok(())
    }

    /// `y (N, C, hw) += bias (C)` for NCHW activations (the conv bias): `y` holds
    /// `N·channels·hw` f32 for some `N`, `bias` `channels`.
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn bias_add_nchw(&self, y: &mut GpuMatrix, bias: &GpuMatrix, channels: usize, hw: usize) -> Result<()> {
        const OP: &str = "bias_add_nchw";
        let len = y.len();
        let plane = channels.checked_mul(hw).unwrap_or(0);
        if plane == 0 || !len.is_multiple_of(plane) {
            return Err(Error::CudaOperand {
                op: OP,
                reason: format!("`y` has {len} elements, not a multiple of channels·hw = {channels}·{hw}"),
            });
        }
        let n = len / plane;
        let bs = Self::f32_buf(OP, "bias", bias, channels)?;
        let ys = Self::f32_buf_mut(OP, "y", y, len)?;
        let (cfg, _) = Self::cfg_1d(OP, len)?;
        let (ni, ci, hi) = (i32_dim(OP, n)?, i32_dim(OP, channels)?, i32_dim(OP, hw)?);
        if len == 0 {
            return Ok(());
        }
        let f = self.train_fn("bias_add_nchw")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(ys).arg(bs).arg(&ni).arg(&ci).arg(&hi);
        // SAFETY: bias_add_nchw(y, b, n, c, hw) on buffers of n·c·hw and c f32.
        unsafe { lb.launch(cfg) }.map_err(drv("launch bias_add_nchw"))?;
        Ok(())
    }

    fn function(&self, op: GemmOp, precision: Precision) -> Result<CudaFunction> {
        let name = format!("masked_gemm_{}_{}", op.kernel_suffix(), precision.name());
        self.gemm.load_function(&name).map_err(drv("load kernel"))
    }

    /// One masked GEMM on the device: `op` says which product (see [`GemmOp`]); `a` and `b`
    /// are its two inputs in the order of [`crate::gemm`] (`x, w` / `dy, w` / `x, dy`), `out`
    /// an f32 output. Inputs must be stored as bf16 exactly when `precision` is `Bf16`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`], [`Error::OutputShape`], [`Error::CudaOperand`], [`Error::Cuda`].
    #[allow(clippy::too_many_arguments)]
    pub fn masked_gemm(
        &self,
        op: GemmOp,
        precision: Precision,
        a: &GpuMatrix,
        b: &GpuMatrix,
        mask: &DeviceTileMap,
        out: &mut GpuMatrix,
        beta: Beta,
    ) -> Result<()> {
        let name = op.name();
        let [k, n] = mask.shape();
        let (m, out_shape) = super::check_gemm_shapes(op, [a.rows, a.cols], [b.rows, b.cols], [k, n])?;
        if [out.rows, out.cols] != out_shape {
            return Err(Error::OutputShape {
                op: name,
                name: "out",
                expected: out_shape,
                got: [out.rows, out.cols],
            });
        }
        if a.is_bf16() != (precision == Precision::Bf16) || b.is_bf16() != (precision == Precision::Bf16) {
            return Err(Error::CudaOperand {
                op: name,
                reason: format!(
                    "{} needs inputs uploaded with Precision::{precision:?}",
                    precision.name()
                ),
            });
        }
        let GpuData::F32(out_buf) = &mut out.data else {
            return Err(Error::CudaOperand {
                op: name,
                reason: "the output must be an f32 matrix".to_string(),
            });
        };
        let (mi, ki, ni) = (i32_dim(name, m)?, i32_dim(name, k)?, i32_dim(name, n)?);
        let beta = beta_f32(beta);
        let f = self.function(op, precision)?;
        let m_blocks = u32::try_from(m.div_ceil(BLOCK_M)).map_err(|_| Error::CudaOperand {
            op: name,
            reason: format!("m = {m} is too large"),
        })?;
        let grid = match op {
            GemmOp::Forward => (m_blocks, mask.grid_cols as u32, 1),
            GemmOp::Dx => (m_blocks, mask.grid_rows as u32, 1),
            GemmOp::Dw => (mask.grid_cols as u32, mask.grid_rows as u32, 1),
        };
        if grid.0 == 0 || grid.1 == 0 {
            return Ok(());
        }
        let cfg = threads_cfg(grid);
        let mut lb = self.stream.launch_builder(&f);
        push_operands(&mut lb, &a.data, &b.data);
        lb.arg(out_buf).arg(&mi).arg(&ki).arg(&ni);
        match op {
            GemmOp::Forward => {
                lb.arg(&mask.col_ptr).arg(&mask.col_entries);
            }
            GemmOp::Dx => {
                lb.arg(&mask.row_ptr).arg(&mask.row_entries);
            }
            GemmOp::Dw => {
                lb.arg(&mask.tile_slots);
            }
        }
        lb.arg(&mask.bits).arg(&beta);
        // SAFETY: the argument list matches the kernel signature in kernels/masked_gemm (pointers,
        // three i32 sizes, list pointers, bits, f32 beta); shapes were checked above, so every
        // index the kernel forms stays inside the buffers.
        unsafe { lb.launch(cfg) }.map_err(drv("launch masked_gemm"))?;
        Ok(())
    }

    /// The dense cuBLAS product of the same op and precision (`cublasGemmEx`, f32 output;
    /// `Tf32` uses `CUBLAS_COMPUTE_32F_FAST_TF32`): the baseline of `bench-kernels --cuda`.
    ///
    /// # Errors
    /// [`Error::NoCudaDevice`] when libcublas is missing, shape errors, [`Error::Cuda`].
    pub fn cublas_gemm(
        &self,
        blas: &CublasHandle,
        op: GemmOp,
        precision: Precision,
        a: &GpuMatrix,
        b: &GpuMatrix,
        out: &mut GpuMatrix,
    ) -> Result<()> {
        use cudarc::driver::{DevicePtr, DevicePtrMut};
        let name = "cublas_gemm";
        let (m, k, n) = match op {
            GemmOp::Forward => (a.rows, a.cols, b.cols),
            GemmOp::Dx => (a.rows, b.rows, a.cols),
            GemmOp::Dw => (a.rows, a.cols, b.cols),
        };
        let (m, k, n) = (i32_dim(name, m)?, i32_dim(name, k)?, i32_dim(name, n)?);
        // Row-major products as column-major cuBLAS calls on the transposes.
        let (no, tr) = (cublasOperation_t::CUBLAS_OP_N, cublasOperation_t::CUBLAS_OP_T);
        let (ta, tb, cm, cn, ck, lda, ldb, ldc) = match op {
            // Yᵀ(n,m) = Wᵀ · Xᵀ
            GemmOp::Forward => (no, no, n, m, k, n, k, n),
            // dXᵀ(k,m) = W(k,n) · dYᵀ
            GemmOp::Dx => (tr, no, k, m, n, n, n, k),
            // dWᵀ(n,k) = dYᵀ(n,m) · X(m,k)
            GemmOp::Dw => (no, tr, n, k, m, n, k, n),
        };
        // First cuBLAS operand: W for forward and dX, dY for dW; second: X, dY, X.
        let (p, q) = (b, a);
        let (dtype, compute) = match precision {
            Precision::F32 => (cudaDataType_t::CUDA_R_32F, cublasComputeType_t::CUBLAS_COMPUTE_32F),
            Precision::Tf32 => (
                cudaDataType_t::CUDA_R_32F,
                cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32,
            ),
            Precision::Bf16 => (cudaDataType_t::CUDA_R_16BF, cublasComputeType_t::CUBLAS_COMPUTE_32F),
        };
        let GpuData::F32(c) = &mut out.data else {
            return Err(Error::CudaOperand {
                op: name,
                reason: "the output must be an f32 matrix".to_string(),
            });
        };
        let (alpha, beta) = (1.0f32, 0.0f32);
        let ptr = |d: &GpuData| match d {
            GpuData::F32(s) => s.device_ptr(&self.stream).0,
            GpuData::Bf16(s) => s.device_ptr(&self.stream).0,
        };
        let (pp, qp) = (ptr(&p.data), ptr(&q.data));
        let (cp, _rec) = c.device_ptr_mut(&self.stream);
        // SAFETY: the pointers are live device buffers of the shapes given (checked by the
        // caller through the masked path on the same matrices); alpha/beta are f32 as the
        // compute type requires.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *blas.0.handle(),
                ta,
                tb,
                cm,
                cn,
                ck,
                (&alpha) as *const f32 as *const _,
                pp as *const _,
                dtype,
                lda,
                qp as *const _,
                dtype,
                ldb,
                (&beta) as *const f32 as *const _,
                cp as *mut _,
                cudaDataType_t::CUDA_R_32F,
                ldc,
                compute,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| Error::Cuda {
            op: "cublasGemmEx",
            message: format!("{e:?}"),
        })
    }

    /// A cuBLAS handle on this device's stream.
    ///
    /// # Errors
    /// [`Error::NoCudaDevice`] when libcublas cannot be loaded, [`Error::Cuda`].
    pub fn cublas(&self) -> Result<CublasHandle> {
        // SAFETY: only probes whether libcublas can be opened.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(Error::NoCudaDevice {
                reason: "libcublas.so is not on the library path (needed for the dense baseline)".to_string(),
            });
        }
        let blas = cudarc::cublas::CudaBlas::new(self.stream.clone()).map_err(|e| Error::Cuda {
            op: "cublasCreate",
            message: format!("{e:?}"),
        })?;
        Ok(CublasHandle(blas))
    }

    /// Median time in seconds of `reps` calls of `f` after `warmup` calls, each timed with CUDA
    /// events on the device's stream.
    ///
    /// # Errors
    /// The errors of `f`, [`Error::Cuda`].
    pub fn time_median(&self, warmup: usize, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
        for _ in 0..warmup {
            f()?;
        }
        self.synchronize()?;
        let flags = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        let mut times = Vec::with_capacity(reps.max(1));
        for _ in 0..reps.max(1) {
            let start = self.ctx.new_event(flags).map_err(drv("event"))?;
            let end = self.ctx.new_event(flags).map_err(drv("event"))?;
            start.record(&self.stream).map_err(drv("event record"))?;
            f()?;
            end.record(&self.stream).map_err(drv("event record"))?;
            let ms = start.elapsed_ms(&end).map_err(drv("event elapsed"))?;
            times.push(f64::from(ms) * 1e-3);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }
}

/// A cuBLAS handle bound to a [`CudaDevice`]'s stream.
#[derive(Debug)]
pub struct CublasHandle(cudarc::cublas::CudaBlas);

// The launch geometry above assumes the kernels' TILE.
const _: () = assert!(GPU_TILE == 64);
