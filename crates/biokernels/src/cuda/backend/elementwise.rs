//! Elementwise ops (`unary_fwd`, `unary_bwd`, `binary_ew`, `axpby`, `fill_f32`,
//! `dropout_apply` of `kernels/train/train.cu`; grid-stride loops, any length).

use super::*;

impl CudaDevice {
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
        let saved = if op.backward_reads_input() {
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

    /// LeakyReLU `y = x` where `x > 0`, `slope·x` elsewhere; `x` and `y` f32 with the same
    /// number of elements.
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn leaky_relu(&self, slope: f32, x: &GpuMatrix, y: &mut GpuMatrix) -> Result<()> {
        const OP: &str = "leaky_relu";
        let n = x.len();
        let xs = Self::f32_buf(OP, "x", x, n)?;
        let ys = Self::f32_buf_mut(OP, "y", y, n)?;
        if n == 0 {
            return Ok(());
        }
        let ni = i32_dim(OP, n)?;
        let f = self.train_fn("leaky_relu_fwd")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs).arg(ys).arg(&ni).arg(&slope);
        // SAFETY: leaky_relu_fwd(x, y, n, slope) on two buffers of n f32 (checked above).
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch leaky_relu_fwd"))?;
        Ok(())
    }

    /// The input gradient of [`CudaDevice::leaky_relu`]: `dx = dy·(1 if x > 0 else slope)`
    /// written (`Beta::Zero`) or added (`Beta::One`); three f32 operands of one length.
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn leaky_relu_backward(
        &self,
        slope: f32,
        x: &GpuMatrix,
        dy: &GpuMatrix,
        dx: &mut GpuMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "leaky_relu";
        let n = dy.len();
        let xs = Self::f32_buf(OP, "x", x, n)?;
        let ds = Self::f32_buf(OP, "dy", dy, n)?;
        let dxs = Self::f32_buf_mut(OP, "dx", dx, n)?;
        if n == 0 {
            return Ok(());
        }
        let ni = i32_dim(OP, n)?;
        let b = beta_f32(beta);
        let f = self.train_fn("leaky_relu_bwd")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs).arg(ds).arg(dxs).arg(&ni).arg(&slope).arg(&b);
        // SAFETY: leaky_relu_bwd(x, dy, dx, n, slope, beta) on three buffers of n f32.
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch leaky_relu_bwd"))?;
        Ok(())
    }

    /// `s = sign(a − b)` elementwise (0 on ties and NaN), three f32 operands of one length.
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn sign_diff(&self, a: &GpuMatrix, b: &GpuMatrix, s: &mut GpuMatrix) -> Result<()> {
        const OP: &str = "sign_diff";
        let n = a.len();
        let (as_, bs) = (Self::f32_buf(OP, "a", a, n)?, Self::f32_buf(OP, "b", b, n)?);
        let ss = Self::f32_buf_mut(OP, "s", s, n)?;
        if n == 0 {
            return Ok(());
        }
        let ni = i32_dim(OP, n)?;
        let f = self.train_fn("sign_diff")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(as_).arg(bs).arg(ss).arg(&ni);
        // SAFETY: sign_diff(a, b, s, n) on three buffers of n f32.
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch sign_diff"))?;
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
}

impl CudaDevice {
    /// A bf16 copy of the f32 `x` (same view, round to nearest even): the operands of the
    /// [`Precision::Bf16`] products.
    ///
    /// # Errors
    /// `x` not f32, an empty `x`; [`Error::Cuda`].
    pub fn to_bf16(&self, x: &GpuMatrix) -> Result<GpuMatrix> {
        const OP: &str = "to_bf16";
        let n = limits::allocation(OP, x.rows, x.cols)?;
        let xs = Self::f32_buf(OP, "x", x, n)?;
        let mut y = self.stream.alloc_zeros::<bf16>(n).map_err(drv("alloc bf16"))?;
        let nl = n as i64;
        let f = self.train_fn("f32_to_bf16")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs).arg(&mut y).arg(&nl);
        // SAFETY: f32_to_bf16(x, y, n) with x of n f32 and y of n bf16 (allocated above).
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch f32_to_bf16"))?;
        Ok(GpuMatrix {
            rows: x.rows,
            cols: x.cols,
            data: GpuData::Bf16(y),
        })
    }
}

/// [`ElementwiseOps`] on the device: the erased handles unwrapped, then the typed methods above.
impl ElementwiseOps for CudaDevice {
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

    fn leaky_relu(&self, slope: f32, x: &DeviceMatrix, y: &mut DeviceMatrix) -> Result<()> {
        CudaDevice::leaky_relu(self, slope, gpu("leaky_relu", x)?, gpu_mut("leaky_relu", y)?)
    }

    fn leaky_relu_backward(
        &self,
        slope: f32,
        x: &DeviceMatrix,
        dy: &DeviceMatrix,
        dx: &mut DeviceMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "leaky_relu";
        CudaDevice::leaky_relu_backward(self, slope, gpu(OP, x)?, gpu(OP, dy)?, gpu_mut(OP, dx)?, beta)
    }

    fn binary(&self, op: BinaryOp, a: &DeviceMatrix, b: &DeviceMatrix, out: &mut DeviceMatrix) -> Result<()> {
        let n = op.name();
        CudaDevice::binary(self, op, gpu(n, a)?, gpu(n, b)?, gpu_mut(n, out)?)
    }

    fn sign_diff(&self, a: &DeviceMatrix, b: &DeviceMatrix, s: &mut DeviceMatrix) -> Result<()> {
        const OP: &str = "sign_diff";
        CudaDevice::sign_diff(self, gpu(OP, a)?, gpu(OP, b)?, gpu_mut(OP, s)?)
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

    fn to_bf16(&self, x: &DeviceMatrix) -> Result<DeviceMatrix> {
        Ok(self.wrap(CudaDevice::to_bf16(self, gpu("to_bf16", x)?)?))
    }
}
