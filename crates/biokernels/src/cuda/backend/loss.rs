//! Fused losses (`softmax_xent`, `mse_loss`, `mse_grad` of `kernels/train/train.cu`): loss
//! and gradient in one pass.

use super::*;

impl CudaDevice {
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
        limits::classes(OP, classes)?;
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
        // SAFETY: softmax_xent(z, labels, loss, dz, rows, classes, scale) on checked lengths,
        // classes > 0; a label that is not a class index gives its row NaN, never an access
        // outside the row.
        unsafe { lb.launch(cfg) }.map_err(drv("launch softmax_xent"))?;
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
}

impl CudaDevice {
    /// Per row of `x (rows, cols)`: `log_softmax` (`log`) or `softmax` into `y` (same view).
    ///
    /// # Errors
    /// [`Error::CudaOperand`] (also for 0 columns), [`Error::Cuda`].
    pub fn softmax_rows(&self, x: &GpuMatrix, log: bool, y: &mut GpuMatrix) -> Result<()> {
        const OP: &str = "softmax_rows";
        let (rows, cols) = (x.rows, x.cols);
        limits::classes(OP, cols)?;
        let xs = Self::f32_buf(OP, "x", x, rows * cols)?;
        let ys = Self::f32_buf_mut(OP, "y", y, rows * cols)?;
        let (ri, ci, li) = (i32_dim(OP, rows)?, i32_dim(OP, cols)?, i32::from(log));
        let f = self.train_fn("softmax_rows_fwd")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs).arg(ys).arg(&ri).arg(&ci).arg(&li);
        // SAFETY: softmax_rows_fwd(x, y, rows, cols, log) on two buffers of rows·cols f32, cols > 0.
        unsafe { lb.launch(Self::cfg_stride(rows)) }.map_err(drv("launch softmax_rows_fwd"))?;
        Ok(())
    }

    /// The input gradient of [`CudaDevice::softmax_rows`] from its output `y` (rows of `y`'s view).
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn softmax_rows_backward(
        &self,
        y: &GpuMatrix,
        dy: &GpuMatrix,
        log: bool,
        dx: &mut GpuMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "softmax_rows_backward";
        let (rows, cols) = (y.rows, y.cols);
        limits::classes(OP, cols)?;
        let ys = Self::f32_buf(OP, "y", y, rows * cols)?;
        let ds = Self::f32_buf(OP, "dy", dy, rows * cols)?;
        let xs = Self::f32_buf_mut(OP, "dx", dx, rows * cols)?;
        let (ri, ci, li, b) = (i32_dim(OP, rows)?, i32_dim(OP, cols)?, i32::from(log), beta_f32(beta));
        let f = self.train_fn("softmax_rows_bwd")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(ys).arg(ds).arg(xs).arg(&ri).arg(&ci).arg(&li).arg(&b);
        // SAFETY: softmax_rows_bwd(y, dy, dx, rows, cols, log, beta) on three buffers of rows·cols f32.
        unsafe { lb.launch(Self::cfg_stride(rows)) }.map_err(drv("launch softmax_rows_bwd"))?;
        Ok(())
    }

    /// Binary cross-entropy on logits per element and its scaled gradient (four f32 operands
    /// of one length).
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn bce_with_logits(
        &self,
        z: &GpuMatrix,
        t: &GpuMatrix,
        grad_scale: f32,
        loss: &mut GpuMatrix,
        dz: &mut GpuMatrix,
    ) -> Result<()> {
        const OP: &str = "bce_with_logits";
        let n = z.len();
        let zs = Self::f32_buf(OP, "z", z, n)?;
        let ts = Self::f32_buf(OP, "t", t, n)?;
        let ls = Self::f32_buf_mut(OP, "loss", loss, n)?;
        let ds = Self::f32_buf_mut(OP, "dz", dz, n)?;
        if n == 0 {
            return Ok(());
        }
        let ni = i32_dim(OP, n)?;
        let f = self.train_fn("bce_logits")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(zs).arg(ts).arg(ls).arg(ds).arg(&ni).arg(&grad_scale);
        // SAFETY: bce_logits(z, t, loss, dz, n, scale) on four buffers of n f32.
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch bce_logits"))?;
        Ok(())
    }
}

/// [`LossOps`] on the device: the erased handles unwrapped, then the typed methods above.
impl LossOps for CudaDevice {
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

    fn softmax_rows(&self, x: &DeviceMatrix, log: bool, y: &mut DeviceMatrix) -> Result<()> {
        CudaDevice::softmax_rows(self, gpu("softmax_rows", x)?, log, gpu_mut("softmax_rows", y)?)
    }

    fn softmax_rows_backward(
        &self,
        y: &DeviceMatrix,
        dy: &DeviceMatrix,
        log: bool,
        dx: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "softmax_rows_backward";
        CudaDevice::softmax_rows_backward(self, gpu(OP, y)?, gpu(OP, dy)?, log, gpu_mut(OP, dx)?, beta)
    }

    fn bce_with_logits(
        &self,
        z: &DeviceMatrix,
        t: &DeviceMatrix,
        grad_scale: f32,
        loss: &mut DeviceMatrix,
        dz: &mut DeviceMatrix,
    ) -> Result<()> {
        const OP: &str = "bce_with_logits";
        let (zm, tm) = (gpu(OP, z)?, gpu(OP, t)?);
        CudaDevice::bce_with_logits(self, zm, tm, grad_scale, gpu_mut(OP, loss)?, gpu_mut(OP, dz)?)
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
}
