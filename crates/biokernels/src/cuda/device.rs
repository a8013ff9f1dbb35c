//! [`DeviceBackend`] for the real CUDA device: each method unwraps the backend-erased handles
//! into this backend's buffers ([`GpuMatrix`], [`GpuIndex`], [`DeviceTileMap`],
//! [`DeviceConvMask`]) and calls the typed method of the op's family (`backend.rs`), which
//! launches the kernel. Handles of another backend are [`Error::ForeignDeviceBuffer`].

use super::{BinaryOp, CudaDevice, DeviceConvMask, DeviceTileMap, GemmOp, GpuIndex, GpuMatrix, Precision, UnaryOp};
use crate::conv::{Conv2dGeometry, ConvMask, ConvTranspose2dGeometry};
use crate::device::{DeviceBackend, DeviceConv, DeviceIndex, DeviceMatrix, DeviceStorage, DeviceTiles, LiveToken};
use crate::error::Result;
use crate::gemm::Beta;
use crate::optim::OptimizerStep;
use crate::tile_map::TileMap;

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

impl DeviceBackend for CudaDevice {
    fn name(&self) -> String {
        CudaDevice::name(self)
    }

    fn live_buffers(&self) -> usize {
        self.live.live()
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<DeviceMatrix> {
        Ok(self.wrap(CudaDevice::upload(self, data, rows, cols, Precision::F32)?))
    }

    fn filled(&self, rows: usize, cols: usize, value: f32) -> Result<DeviceMatrix> {
        Ok(self.wrap(CudaDevice::filled(self, rows, cols, value)?))
    }

    fn zeros(&self, rows: usize, cols: usize) -> Result<DeviceMatrix> {
        Ok(self.wrap(CudaDevice::zeros(self, rows, cols)?))
    }

    fn download(&self, m: &DeviceMatrix) -> Result<Vec<f32>> {
        CudaDevice::download(self, gpu("download", m)?)
    }

    fn copy(&self, src: &DeviceMatrix, dst: &mut DeviceMatrix) -> Result<()> {
        CudaDevice::copy(self, gpu("copy", src)?, gpu_mut("copy", dst)?)
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
        const OP: &str = "copy_columns";
        CudaDevice::copy_columns(self, gpu(OP, src)?, src_col, gpu_mut(OP, dst)?, dst_col, cols, beta)
    }

    fn upload_tile_map(&self, map: &TileMap) -> Result<DeviceTiles> {
        Ok(self.live.opaque(CudaDevice::upload_tile_map(self, map)?))
    }

    fn upload_conv_mask(&self, dims: [usize; 5], mask: Option<&ConvMask>) -> Result<DeviceConv> {
        Ok(self.live.opaque(CudaDevice::upload_conv_mask(self, dims, mask)?))
    }

    fn masked_gemm(
        &self,
        op: GemmOp,
        precision: Precision,
        a: &DeviceMatrix,
        b: &DeviceMatrix,
        t: &DeviceTiles,
        out: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "masked_gemm";
        let (a, b, t) = (gpu(OP, a)?, gpu(OP, b)?, tiles(OP, t)?);
        CudaDevice::masked_gemm(self, op, precision, a, b, t, gpu_mut(OP, out)?, beta)
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
        const OP: &str = "masked_conv2d";
        let (x, w, m, bias) = (gpu(OP, x)?, gpu(OP, w)?, conv_mask(OP, mask)?, gpu_opt(OP, bias)?);
        CudaDevice::masked_conv2d(self, precision, geom, x, w, m, bias, gpu_mut(OP, y)?, beta)
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
        const OP: &str = "masked_conv2d_backward";
        let (a, b, m) = (gpu(OP, a)?, gpu(OP, b)?, conv_mask(OP, mask)?);
        CudaDevice::masked_conv2d_backward(self, op, precision, geom, a, b, m, gpu_mut(OP, out)?, beta)
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
        const OP: &str = "masked_conv_transpose2d";
        let (a, b, m, bias) = (gpu(OP, a)?, gpu(OP, b)?, conv_mask(OP, mask)?, gpu_opt(OP, bias)?);
        CudaDevice::masked_conv_transpose2d(self, op, precision, geom, a, b, m, bias, gpu_mut(OP, out)?, beta)
    }

    fn unary(&self, op: UnaryOp, x: &DeviceMatrix, y: &mut DeviceMatrix) -> Result<()> {
        CudaDevice::unary(self, op, gpu(op.name(), x)?, gpu_mut(op.name(), y)?)
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
        let n = op.name();
        CudaDevice::unary_backward(self, op, gpu(n, x)?, gpu(n, y)?, gpu(n, dy)?, gpu_mut(n, dx)?, beta)
    }

    fn binary(&self, op: BinaryOp, a: &DeviceMatrix, b: &DeviceMatrix, out: &mut DeviceMatrix) -> Result<()> {
        let n = op.name();
        CudaDevice::binary(self, op, gpu(n, a)?, gpu(n, b)?, gpu_mut(n, out)?)
    }

    fn axpby(&self, alpha: f32, x: &DeviceMatrix, beta: f32, y: &mut DeviceMatrix) -> Result<()> {
        CudaDevice::axpby(self, alpha, gpu("axpby", x)?, beta, gpu_mut("axpby", y)?)
    }

    fn fill(&self, m: &mut DeviceMatrix, value: f32) -> Result<()> {
        CudaDevice::fill(self, gpu_mut("fill", m)?, value)
    }

    fn dropout(&self, x: &DeviceMatrix, keep: &DeviceMatrix, scale: f32, y: &mut DeviceMatrix) -> Result<()> {
        const OP: &str = "dropout";
        CudaDevice::dropout(self, gpu(OP, x)?, gpu(OP, keep)?, scale, gpu_mut(OP, y)?)
    }

    fn bias_add_rows(&self, y: &mut DeviceMatrix, bias: &DeviceMatrix) -> Result<()> {
        const OP: &str = "bias_add_rows";
        CudaDevice::bias_add_rows(self, gpu_mut(OP, y)?, gpu(OP, bias)?)
    }

    fn bias_grad(&self, dy: &DeviceMatrix, channels: usize, hw: usize, db: &mut DeviceMatrix) -> Result<()> {
        const OP: &str = "bias_grad";
        CudaDevice::bias_grad(self, gpu(OP, dy)?, channels, hw, gpu_mut(OP, db)?)
    }

    fn sum_rows_into(&self, x: &DeviceMatrix, out: &mut DeviceMatrix, beta: Beta) -> Result<()> {
        const OP: &str = "sum_rows_into";
        CudaDevice::sum_rows_into(self, gpu(OP, x)?, gpu_mut(OP, out)?, beta)
    }

    fn sum_all(&self, x: &DeviceMatrix, out: &mut DeviceMatrix) -> Result<()> {
        CudaDevice::sum_all(self, gpu("sum_all", x)?, gpu_mut("sum_all", out)?)
    }

    fn softmax_cross_entropy(
        &self,
        logits: &DeviceMatrix,
        labels: &DeviceMatrix,
        grad_scale: f32,
        loss: &mut DeviceMatrix,
        dlogits: &mut DeviceMatrix,
    ) -> Result<()> {
        const OP: &str = "softmax_cross_entropy";
        let (z, l) = (gpu(OP, logits)?, gpu(OP, labels)?);
        CudaDevice::softmax_cross_entropy(self, z, l, grad_scale, gpu_mut(OP, loss)?, gpu_mut(OP, dlogits)?)
    }

    fn mse(
        &self,
        pred: &DeviceMatrix,
        target: &DeviceMatrix,
        grad_scale: f32,
        loss: &mut DeviceMatrix,
        dpred: &mut DeviceMatrix,
    ) -> Result<()> {
        const OP: &str = "mse";
        let (p, t) = (gpu(OP, pred)?, gpu(OP, target)?);
        CudaDevice::mse(self, p, t, grad_scale, gpu_mut(OP, loss)?, gpu_mut(OP, dpred)?)
    }

    fn max_pool2d(
        &self,
        x: &DeviceMatrix,
        dims: [usize; 4],
        pool: [usize; 2],
        stride: [usize; 2],
        y: &mut DeviceMatrix,
    ) -> Result<DeviceIndex> {
        const OP: &str = "max_pool2d";
        let y = gpu_mut(OP, y)?;
        let mut argmax = CudaDevice::alloc_index(self, y.len())?;
        CudaDevice::max_pool2d(self, gpu(OP, x)?, dims, pool, stride, y, &mut argmax)?;
        Ok(self.live.opaque(argmax))
    }

    fn max_pool2d_backward(&self, dy: &DeviceMatrix, argmax: &DeviceIndex, dx: &mut DeviceMatrix) -> Result<()> {
        const OP: &str = "max_pool2d_backward";
        let idx = argmax.value::<GpuIndex>(OP)?;
        CudaDevice::max_pool2d_backward(self, gpu(OP, dy)?, idx, gpu_mut(OP, dx)?)
    }

    fn optimizer_step(
        &self,
        step: OptimizerStep,
        w: &mut DeviceMatrix,
        g: &DeviceMatrix,
        first: &mut DeviceMatrix,
        second: &mut DeviceMatrix,
    ) -> Result<()> {
        const OP: &str = "optimizer_step";
        let (w, g) = (gpu_mut(OP, w)?, gpu(OP, g)?);
        CudaDevice::optimizer_step(self, step, w, g, gpu_mut(OP, first)?, gpu_mut(OP, second)?)
    }
}
