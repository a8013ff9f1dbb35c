//! The backend of builds without the `cuda` feature: the same API as the real one, but no
//! value of these types can exist, so [`CudaDevice::new`] is the only reachable function and it
//! returns [`Error::CudaUnavailable`]. Call sites need no `#[cfg]`.

use std::convert::Infallible;

use super::{BinaryOp, GemmOp, OptimizerStep, Precision, UnaryOp};
use crate::conv::{Conv2dGeometry, ConvMask, ConvTranspose2dGeometry};
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

/// A device index buffer (never constructed in this build).
#[derive(Debug)]
pub struct GpuIndex(Infallible);

impl GpuIndex {
    /// Number of indices.
    pub fn len(&self) -> usize {
        match self.0 {}
    }
    /// Whether there are no indices.
    pub fn is_empty(&self) -> bool {
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
    /// An f32 matrix of zeros.
    ///
    /// # Errors
    /// Never returns.
    pub fn zeros(&self, rows: usize, cols: usize) -> Result<GpuMatrix> {
        match self.0 {}
    }
    /// An index buffer of `len` zeros.
    ///
    /// # Errors
    /// Never returns.
    pub fn alloc_index(&self, len: usize) -> Result<GpuIndex> {
        match self.0 {}
    }
    /// Copies an index buffer back.
    ///
    /// # Errors
    /// Never returns.
    pub fn download_index(&self, idx: &GpuIndex) -> Result<Vec<i32>> {
        match self.0 {}
    }
    /// Copies host values into an existing f32 matrix.
    ///
    /// # Errors
    /// Never returns.
    pub fn upload_into(&self, data: &[f32], dst: &mut GpuMatrix) -> Result<()> {
        match self.0 {}
    }
    /// Copies a matrix into an existing host slice.
    ///
    /// # Errors
    /// Never returns.
    pub fn download_into(&self, m: &GpuMatrix, out: &mut [f32]) -> Result<()> {
        match self.0 {}
    }
    /// Elementwise activation.
    ///
    /// # Errors
    /// Never returns.
    pub fn unary(&self, op: UnaryOp, x: &GpuMatrix, y: &mut GpuMatrix) -> Result<()> {
        match self.0 {}
    }
    /// Gradient of an elementwise activation.
    ///
    /// # Errors
    /// Never returns.
    pub fn unary_backward(
        &self,
        op: UnaryOp,
        x: &GpuMatrix,
        y: &GpuMatrix,
        dy: &GpuMatrix,
        dx: &mut GpuMatrix,
        beta: Beta,
    ) -> Result<()> {
        match self.0 {}
    }
    /// Elementwise `a op b`.
    ///
    /// # Errors
    /// Never returns.
    pub fn binary(&self, op: BinaryOp, a: &GpuMatrix, b: &GpuMatrix, out: &mut GpuMatrix) -> Result<()> {
        match self.0 {}
    }
    /// `y = alpha·x + beta·y`.
    ///
    /// # Errors
    /// Never returns.
    pub fn axpby(&self, alpha: f32, x: &GpuMatrix, beta: f32, y: &mut GpuMatrix) -> Result<()> {
        match self.0 {}
    }
    /// Fills a matrix with `value`.
    ///
    /// # Errors
    /// Never returns.
    pub fn fill(&self, m: &mut GpuMatrix, value: f32) -> Result<()> {
        match self.0 {}
    }
    /// Device-to-device copy.
    ///
    /// # Errors
    /// Never returns.
    pub fn copy(&self, src: &GpuMatrix, dst: &mut GpuMatrix) -> Result<()> {
        match self.0 {}
    }
    /// Copies a block of columns between two matrices with the same rows.
    ///
    /// # Errors
    /// Never returns.
    pub fn copy_columns(
        &self,
        src: &GpuMatrix,
        src_col: usize,
        dst: &mut GpuMatrix,
        dst_col: usize,
        cols: usize,
        beta: Beta,
    ) -> Result<()> {
        match self.0 {}
    }
    /// Column sums over the rows.
    ///
    /// # Errors
    /// Never returns.
    pub fn sum_rows_into(&self, x: &GpuMatrix, out: &mut GpuMatrix, beta: Beta) -> Result<()> {
        match self.0 {}
    }
    /// The sum of every element.
    ///
    /// # Errors
    /// Never returns.
    pub fn sum_all(&self, x: &GpuMatrix, out: &mut GpuMatrix) -> Result<()> {
        match self.0 {}
    }
    /// Mean squared error and its gradient.
    ///
    /// # Errors
    /// Never returns.
    pub fn mse(
        &self,
        pred: &GpuMatrix,
        target: &GpuMatrix,
        grad_scale: f32,
        loss: &mut GpuMatrix,
        dpred: &mut GpuMatrix,
    ) -> Result<()> {
        match self.0 {}
    }
    /// 2-D max pooling (valid padding) with the argmax.
    ///
    /// # Errors
    /// Never returns.
    pub fn max_pool2d(
        &self,
        x: &GpuMatrix,
        dims: [usize; 4],
        pool: [usize; 2],
        stride: [usize; 2],
        y: &mut GpuMatrix,
        argmax: &mut GpuIndex,
    ) -> Result<()> {
        match self.0 {}
    }
    /// The input gradient of max pooling.
    ///
    /// # Errors
    /// Never returns.
    pub fn max_pool2d_backward(&self, dy: &GpuMatrix, argmax: &GpuIndex, dx: &mut GpuMatrix) -> Result<()> {
        match self.0 {}
    }
    /// `y = x·mask·scale` (inverted dropout with a host-made mask).
    ///
    /// # Errors
    /// Never returns.
    pub fn dropout(&self, x: &GpuMatrix, keep_mask: &GpuMatrix, scale: f32, y: &mut GpuMatrix) -> Result<()> {
        match self.0 {}
    }
    /// `y (N, C, hw) += bias (C)`.
    ///
    /// # Errors
    /// Never returns.
    pub fn bias_add_nchw(&self, y: &mut GpuMatrix, bias: &GpuMatrix, channels: usize, hw: usize) -> Result<()> {
        match self.0 {}
    }
    /// ReLU forward or backward.
    ///
    /// # Errors
    /// Never returns.
    pub fn relu(&self, x: &GpuMatrix, dy: Option<&GpuMatrix>, y: &mut GpuMatrix) -> Result<()> {
        match self.0 {}
    }
    /// `y += bias` per row.
    ///
    /// # Errors
    /// Never returns.
    pub fn bias_add_rows(&self, y: &mut GpuMatrix, bias: &GpuMatrix) -> Result<()> {
        match self.0 {}
    }
    /// The bias gradient.
    ///
    /// # Errors
    /// Never returns.
    pub fn bias_grad(&self, dy: &GpuMatrix, channels: usize, hw: usize, db: &mut GpuMatrix) -> Result<()> {
        match self.0 {}
    }
    /// Fused softmax cross-entropy.
    ///
    /// # Errors
    /// Never returns.
    pub fn softmax_cross_entropy(
        &self,
        logits: &GpuMatrix,
        labels: &GpuMatrix,
        grad_scale: f32,
        loss: &mut GpuMatrix,
        dlogits: &mut GpuMatrix,
    ) -> Result<()> {
        match self.0 {}
    }
    /// One optimizer step.
    ///
    /// # Errors
    /// Never returns.
    pub fn optimizer_step(
        &self,
        step: OptimizerStep,
        w: &mut GpuMatrix,
        g: &GpuMatrix,
        state1: &mut GpuMatrix,
        state2: &mut GpuMatrix,
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
