//! The backend of builds without the `cuda` feature: no value of these types can exist, so
//! [`CudaDevice::new`] is the only reachable function and it returns [`Error::CudaUnavailable`].
//! The device operations of the tape are the [`crate::device::DeviceBackend`] families (the
//! compiler checks that these impls list every method); the typed GEMM/convolution/benchmark
//! API below mirrors the real backend's for the benchmarks and device tests. Call sites need no
//! `#[cfg]`.

use std::convert::Infallible;

use super::{BinaryOp, GemmOp, OptimizerStep, Precision, UnaryOp};
use crate::conv::{Conv2dGeometry, ConvMask, ConvTranspose2dGeometry};
use crate::device::{
    ConvOps, DeviceConv, DeviceIndex, DeviceMatrix, DevicePlaneMap, DeviceTiles, ElementwiseOps, GemmOps, LossOps,
    MemoryOps, NormLayout, NormOps, NormReduce, OptimOps, PlaneMap, PoolOps, ReduceOps, ResampleOps,
};
use crate::error::{Error, Result};
use crate::gemm::Beta;
use crate::tile_map::TileMap;

/// A CUDA device (never constructed in this build).
#[derive(Debug)]
pub struct CudaDevice(Infallible);
/// A device matrix (never constructed in this build).
#[derive(Debug)]
pub struct GpuMatrix(Infallible);
/// Device tile lists (never constructed in this build).
#[derive(Debug)]
pub struct DeviceTileMap(Infallible);
/// Device conv tile lists (never constructed in this build).
#[derive(Debug)]
pub struct DeviceConvMask(Infallible);

impl DeviceConvMask {
    /// `[kh, kw, nx, ny, groups]`.
    pub fn dims(&self) -> [usize; 5] {
        match self.0 {}
    }
}

/// A cuBLAS handle (never constructed in this build).
#[derive(Debug)]
pub struct CublasHandle(Infallible);

#[allow(unused_variables)]
impl GpuMatrix {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        match self.0 {}
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        match self.0 {}
    }
    /// Whether the values are stored as bf16.
    pub fn is_bf16(&self) -> bool {
        match self.0 {}
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self.0 {}
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        match self.0 {}
    }
    /// Reinterprets the buffer as `rows × cols`.
    ///
    /// # Errors
    /// Never returns.
    pub fn reshape(&mut self, rows: usize, cols: usize) -> Result<()> {
        match self.0 {}
    }
}

impl DeviceTileMap {
    /// `[k, n]` of the mask.
    pub fn shape(&self) -> [usize; 2] {
        match self.0 {}
    }
    /// Fraction of the dense work inside non-empty tiles.
    pub fn work_fraction(&self) -> f64 {
        match self.0 {}
    }
}

#[allow(clippy::too_many_arguments, unused_variables)]
impl CudaDevice {
    /// Always [`Error::CudaUnavailable`]: this build has no CUDA backend.
    ///
    /// # Errors
    /// [`Error::CudaUnavailable`].
    pub fn new(ordinal: usize) -> Result<Self> {
        Err(Error::CudaUnavailable)
    }
    /// The device's name.
    pub fn name(&self) -> String {
        match self.0 {}
    }
    /// `(major, minor)` compute capability.
    pub fn compute_capability(&self) -> (i32, i32) {
        match self.0 {}
    }
    /// Waits for all queued work.
    ///
    /// # Errors
    /// Never returns.
    pub fn synchronize(&self) -> Result<()> {
        match self.0 {}
    }
    /// Copies a matrix to the device.
    ///
    /// # Errors
    /// Never returns.
    pub fn upload(&self, data: &[f32], rows: usize, cols: usize, precision: Precision) -> Result<GpuMatrix> {
        match self.0 {}
    }
    /// An f32 output filled with `value`.
    ///
    /// # Errors
    /// Never returns.
    pub fn filled(&self, rows: usize, cols: usize, value: f32) -> Result<GpuMatrix> {
        match self.0 {}
    }
    /// Copies a matrix back.
    ///
    /// # Errors
    /// Never returns.
    pub fn download(&self, m: &GpuMatrix) -> Result<Vec<f32>> {
        match self.0 {}
    }
    /// Uploads the tile lists of a mask.
    ///
    /// # Errors
    /// Never returns.
    pub fn upload_tile_map(&self, map: &TileMap) -> Result<DeviceTileMap> {
        match self.0 {}
    }
    /// One masked GEMM on the device.
    ///
    /// # Errors
    /// Never returns.
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
        match self.0 {}
    }
    /// Uploads the per-group tile lists of a conv mask.
    ///
    /// # Errors
    /// Never returns.
    pub fn upload_conv_mask(&self, dims: [usize; 5], mask: Option<&ConvMask>) -> Result<DeviceConvMask> {
        match self.0 {}
    }
    /// The masked conv2d forward.
    ///
    /// # Errors
    /// Never returns.
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
        match self.0 {}
    }
    /// The masked transposed convolution and its gradients.
    ///
    /// # Errors
    /// Never returns.
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
        match self.0 {}
    }
    /// The input or weight gradient of the masked conv2d.
    ///
    /// # Errors
    /// Never returns.
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
        match self.0 {}
    }
    /// The dense cuBLAS product.
    ///
    /// # Errors
    /// Never returns.
    pub fn cublas_gemm(
        &self,
        blas: &CublasHandle,
        op: GemmOp,
        precision: Precision,
        a: &GpuMatrix,
        b: &GpuMatrix,
        out: &mut GpuMatrix,
    ) -> Result<()> {
        match self.0 {}
    }
    /// A cuBLAS handle.
    ///
    /// # Errors
    /// Never returns.
    pub fn cublas(&self) -> Result<CublasHandle> {
        match self.0 {}
    }
    /// Median time of `f` with CUDA events.
    ///
    /// # Errors
    /// Never returns.
    pub fn time_median(&self, warmup: usize, reps: usize, f: impl FnMut() -> Result<()>) -> Result<f64> {
        match self.0 {}
    }
}

#[allow(unused_variables)]
impl MemoryOps for CudaDevice {
    fn name(&self) -> String {
        match self.0 {}
    }

    fn live_buffers(&self) -> usize {
        match self.0 {}
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<DeviceMatrix> {
        match self.0 {}
    }

    fn filled(&self, rows: usize, cols: usize, value: f32) -> Result<DeviceMatrix> {
        match self.0 {}
    }

    fn download(&self, m: &DeviceMatrix) -> Result<Vec<f32>> {
        match self.0 {}
    }

    fn copy(&self, src: &DeviceMatrix, dst: &mut DeviceMatrix) -> Result<()> {
        match self.0 {}
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
        match self.0 {}
    }
}

#[allow(unused_variables)]
impl GemmOps for CudaDevice {
    fn upload_tile_map(&self, map: &TileMap) -> Result<DeviceTiles> {
        match self.0 {}
    }

    fn masked_gemm(
        &self,
        op: GemmOp,
        precision: Precision,
        a: &DeviceMatrix,
        b: &DeviceMatrix,
        tiles: &DeviceTiles,
        out: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()> {
        match self.0 {}
    }
}

#[allow(unused_variables)]
impl ConvOps for CudaDevice {
    fn upload_conv_mask(&self, dims: [usize; 5], mask: Option<&ConvMask>) -> Result<DeviceConv> {
        match self.0 {}
    }

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
    ) -> Result<()> {
        match self.0 {}
    }

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
    ) -> Result<()> {
        match self.0 {}
    }

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
    ) -> Result<()> {
        match self.0 {}
    }
}

#[allow(unused_variables)]
impl ElementwiseOps for CudaDevice {
    fn unary(&self, op: UnaryOp, x: &DeviceMatrix, y: &mut DeviceMatrix) -> Result<()> {
        match self.0 {}
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
        match self.0 {}
    }

    fn leaky_relu(&self, slope: f32, x: &DeviceMatrix, y: &mut DeviceMatrix) -> Result<()> {
        match self.0 {}
    }

    fn leaky_relu_backward(
        &self,
        slope: f32,
        x: &DeviceMatrix,
        dy: &DeviceMatrix,
        dx: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()> {
        match self.0 {}
    }

    fn binary(&self, op: BinaryOp, a: &DeviceMatrix, b: &DeviceMatrix, out: &mut DeviceMatrix) -> Result<()> {
        match self.0 {}
    }

    fn sign_diff(&self, a: &DeviceMatrix, b: &DeviceMatrix, s: &mut DeviceMatrix) -> Result<()> {
        match self.0 {}
    }

    fn axpby(&self, alpha: f32, x: &DeviceMatrix, beta: f32, y: &mut DeviceMatrix) -> Result<()> {
        match self.0 {}
    }

    fn fill(&self, m: &mut DeviceMatrix, value: f32) -> Result<()> {
        match self.0 {}
    }

    fn dropout(&self, x: &DeviceMatrix, keep: &DeviceMatrix, scale: f32, y: &mut DeviceMatrix) -> Result<()> {
        match self.0 {}
    }

    fn to_bf16(&self, x: &DeviceMatrix) -> Result<DeviceMatrix> {
        match self.0 {}
    }
}

#[allow(unused_variables)]
impl ReduceOps for CudaDevice {
    fn bias_add_rows(&self, y: &mut DeviceMatrix, bias: &DeviceMatrix) -> Result<()> {
        match self.0 {}
    }

    fn bias_grad(&self, dy: &DeviceMatrix, channels: usize, hw: usize, db: &mut DeviceMatrix) -> Result<()> {
        match self.0 {}
    }

    fn sum_rows_into(&self, x: &DeviceMatrix, out: &mut DeviceMatrix, beta: Beta) -> Result<()> {
        match self.0 {}
    }

    fn sum_all(&self, x: &DeviceMatrix, out: &mut DeviceMatrix) -> Result<()> {
        match self.0 {}
    }
}

#[allow(unused_variables)]
impl LossOps for CudaDevice {
    fn softmax_cross_entropy(
        &self,
        logits: &DeviceMatrix,
        labels: &DeviceMatrix,
        grad_scale: f32,
        loss: &mut DeviceMatrix,
        dlogits: &mut DeviceMatrix,
    ) -> Result<()> {
        match self.0 {}
    }

    fn softmax_rows(&self, x: &DeviceMatrix, log: bool, y: &mut DeviceMatrix) -> Result<()> {
        match self.0 {}
    }

    fn softmax_rows_backward(
        &self,
        y: &DeviceMatrix,
        dy: &DeviceMatrix,
        log: bool,
        dx: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()> {
        match self.0 {}
    }

    fn bce_with_logits(
        &self,
        z: &DeviceMatrix,
        t: &DeviceMatrix,
        grad_scale: f32,
        loss: &mut DeviceMatrix,
        dz: &mut DeviceMatrix,
    ) -> Result<()> {
        match self.0 {}
    }

    fn mse(
        &self,
        pred: &DeviceMatrix,
        target: &DeviceMatrix,
        grad_scale: f32,
        loss: &mut DeviceMatrix,
        dpred: &mut DeviceMatrix,
    ) -> Result<()> {
        match self.0 {}
    }
}

#[allow(unused_variables)]
impl NormOps for CudaDevice {
    fn norm_stats(&self, x: &DeviceMatrix, layout: NormLayout, eps: f32, stats: &mut DeviceMatrix) -> Result<()> {
        match self.0 {}
    }

    fn norm_apply(
        &self,
        x: &DeviceMatrix,
        layout: NormLayout,
        stats: &DeviceMatrix,
        affine: Option<(&DeviceMatrix, &DeviceMatrix)>,
        y: &mut DeviceMatrix,
    ) -> Result<()> {
        match self.0 {}
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
        match self.0 {}
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
        match self.0 {}
    }
}

impl ResampleOps for CudaDevice {
    fn upload_plane_map(&self, _map: &PlaneMap) -> Result<DevicePlaneMap> {
        match self.0 {}
    }

    fn plane_map(&self, _map: &DevicePlaneMap, _x: &DeviceMatrix, _y: &mut DeviceMatrix) -> Result<()> {
        match self.0 {}
    }
}

#[allow(unused_variables)]
impl PoolOps for CudaDevice {
    fn max_pool2d(
        &self,
        x: &DeviceMatrix,
        dims: [usize; 4],
        pool: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        y: &mut DeviceMatrix,
    ) -> Result<DeviceIndex> {
        match self.0 {}
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
        match self.0 {}
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
        match self.0 {}
    }

    fn max_pool2d_backward(&self, dy: &DeviceMatrix, argmax: &DeviceIndex, dx: &mut DeviceMatrix) -> Result<()> {
        match self.0 {}
    }
}

#[allow(unused_variables)]
impl OptimOps for CudaDevice {
    fn optimizer_step(
        &self,
        step: OptimizerStep,
        w: &mut DeviceMatrix,
        g: &DeviceMatrix,
        first: &mut DeviceMatrix,
        second: &mut DeviceMatrix,
    ) -> Result<()> {
        match self.0 {}
    }
}
