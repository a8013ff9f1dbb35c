//! The backend of builds without the `cuda` feature: the same API as the real one, but no
//! value of these types can exist, so [`CudaDevice::new`] is the only reachable function and it
//! returns [`Error::CudaUnavailable`]. Call sites need no `#[cfg]`.

use std::convert::Infallible;

use super::{GemmOp, OptimizerStep, Precision};
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
