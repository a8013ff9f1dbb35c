//! Bias adds and deterministic reductions (`bias_add_rows`, `bias_add_nchw`, `bias_grad_rows`,
//! `bias_grad_nchw`, `sum_rows`, `sum_all` of `kernels/train/train.cu`: fixed summation
//! orders, the same bits on every run).

use super::*;

impl CudaDevice {
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
            let cfg = threads_cfg(limits::grid(OP, channels, 1, 1)?);
            let f = self.train_fn("bias_grad_nchw")?;
            let mut lb = self.stream.launch_builder(&f);
            lb.arg(ds).arg(bs).arg(&ni).arg(&ci).arg(&hi);
            // SAFETY: bias_grad_nchw(dy, db, n, c, hw), one CTA of 256 threads per channel.
            unsafe { lb.launch(cfg) }.map_err(drv("launch bias_grad_nchw"))?;
        }
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
}

/// [`ReduceOps`] on the device: the erased handles unwrapped, then the typed methods above.
impl ReduceOps for CudaDevice {
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
}
