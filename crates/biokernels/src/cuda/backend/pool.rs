//! Max pooling with the argmax kept on the device (`max_pool2d_fwd`, `max_pool2d_bwd` of
//! `kernels/train/train.cu`).

use super::*;

impl CudaDevice {
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
}

/// [`PoolOps`] on the device: the erased handles unwrapped, then the typed methods above.
impl PoolOps for CudaDevice {
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
}
