//! Max pooling with the argmax kept on the device and average pooling (`max_pool2d_fwd`,
//! `max_pool2d_bwd`, `avg_pool2d_fwd`, `avg_pool2d_bwd` of `kernels/train/train.cu`), with zero
//! padding on each side (padded positions skipped; average pooling counts them in its divisor).

use super::*;

/// Which average-pooling kernel a launch runs.
#[derive(Clone, Copy)]
enum AvgPoolPass {
    Forward,
    Backward,
}

impl CudaDevice {
    /// The checked geometry of a pooling of `dims = [N, C, H, W]` (see [`pool_output`]) as the
    /// kernels' i32 arguments, with the input and output lengths.
    fn pool_geom(
        op: &'static str,
        dims: [usize; 4],
        pool: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<(PoolGeom, usize, usize)> {
        let [n, c, h, w] = dims;
        let (oh, ow) = pool_output(op, dims, pool, stride, padding)?;
        let overflow = || Error::CudaOperand {
            op,
            reason: format!("dims {dims:?} overflow"),
        };
        let planes = n.checked_mul(c).ok_or_else(overflow)?;
        let in_len = planes.checked_mul(h * w).ok_or_else(overflow)?;
        let out_len = planes.checked_mul(oh * ow).ok_or_else(overflow)?;
        // The argmax holds flat input indices as i32.
        i32_dim(op, in_len)?;
        let geom = PoolGeom {
            planes: i32_dim(op, planes)?,
            h: i32_dim(op, h)?,
            w: i32_dim(op, w)?,
            kh: i32_dim(op, pool[0])?,
            kw: i32_dim(op, pool[1])?,
            sh: i32_dim(op, stride[0])?,
            sw: i32_dim(op, stride[1])?,
            oh: i32_dim(op, oh)?,
            ow: i32_dim(op, ow)?,
            ph: i32_dim(op, padding[0])?,
            pw: i32_dim(op, padding[1])?,
        };
        Ok((geom, in_len, out_len))
    }

    /// 2-D max pooling of NCHW `x` (`dims = [N, C, H, W]`) with window `pool = [kh, kw]`,
    /// `stride = [sh, sw]` and zero `padding = [ph, pw]` on each side (padded positions are
    /// skipped): `y (N, C, OH, OW)` with `OH = (H + 2ph − kh)/sh + 1` (likewise `OW`), and
    /// `argmax` (same length as `y`) the flat NCHW index into `x` of each maximum (−1 for a
    /// window wholly in the padding, whose `y` is −∞). Ties go to the first maximum in
    /// row-major window order, and a NaN only wins in a window's first position, exactly as
    /// the CPU `bioautograd` `max_pool2d`. `argmax` remembers the geometry for the backward.
    ///
    /// # Errors
    /// [`Error::CudaOperand`] for a geometry [`pool_output`] refuses, buffer lengths that do
    /// not match, or sizes beyond i32; [`Error::Cuda`].
    #[allow(clippy::too_many_arguments)]
    pub fn max_pool2d(
        &self,
        x: &GpuMatrix,
        dims: [usize; 4],
        pool: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        y: &mut GpuMatrix,
        argmax: &mut GpuIndex,
    ) -> Result<()> {
        const OP: &str = "max_pool2d";
        let (geom, in_len, out_len) = Self::pool_geom(OP, dims, pool, stride, padding)?;
        let xs = Self::f32_buf(OP, "x", x, in_len)?;
        let ys = Self::f32_buf_mut(OP, "y", y, out_len)?;
        if argmax.len != out_len {
            return Err(Error::CudaOperand {
                op: OP,
                reason: format!("`argmax` has {} indices, expected {out_len}", argmax.len),
            });
        }
        argmax.geom = Some(geom);
        if out_len == 0 {
            return Ok(());
        }
        let f = self.train_fn("max_pool2d_fwd")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs).arg(ys).arg(&mut argmax.data);
        Self::pool_args(&mut lb, &geom);
        // SAFETY: max_pool2d_fwd(x, y, arg, planes, h, w, kh, kw, sh, sw, oh, ow, ph, pw) with x
        // of planes·h·w f32 and y, arg of planes·oh·ow elements (checked above); every read is
        // bounds-tested against the plane.
        unsafe { lb.launch(Self::cfg_stride(out_len)) }.map_err(drv("launch max_pool2d_fwd"))?;
        Ok(())
    }

    /// Average pooling of NCHW `x` (geometry as [`CudaDevice::max_pool2d`]): the sum of each
    /// window's in-range values divided by `kh·kw` (the padding counts in the divisor), summed
    /// in the CPU's row-major order.
    ///
    /// # Errors
    /// As [`CudaDevice::max_pool2d`].
    pub fn avg_pool2d(
        &self,
        x: &GpuMatrix,
        dims: [usize; 4],
        pool: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        y: &mut GpuMatrix,
    ) -> Result<()> {
        self.avg_pool_launch(AvgPoolPass::Forward, x, dims, pool, stride, padding, y)
    }

    /// The input gradient of [`CudaDevice::avg_pool2d`]: each input element sums `dy/(kh·kw)`
    /// of the windows containing it, in output order (a gather; the CPU scatter's sums).
    ///
    /// # Errors
    /// As [`CudaDevice::max_pool2d`].
    pub fn avg_pool2d_backward(
        &self,
        dy: &GpuMatrix,
        dims: [usize; 4],
        pool: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dx: &mut GpuMatrix,
    ) -> Result<()> {
        self.avg_pool_launch(AvgPoolPass::Backward, dy, dims, pool, stride, padding, dx)
    }

    /// One launch of `avg_pool2d_fwd` (`src = x`, `dst = y`) or `avg_pool2d_bwd` (`src = dy`,
    /// `dst = dx`).
    #[allow(clippy::too_many_arguments)]
    fn avg_pool_launch(
        &self,
        pass: AvgPoolPass,
        src: &GpuMatrix,
        dims: [usize; 4],
        [kh, kw]: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dst: &mut GpuMatrix,
    ) -> Result<()> {
        let (op, kernel, src_name, dst_name) = match pass {
            AvgPoolPass::Forward => ("avg_pool2d", "avg_pool2d_fwd", "x", "y"),
            AvgPoolPass::Backward => ("avg_pool2d_backward", "avg_pool2d_bwd", "dy", "dx"),
        };
        let (geom, in_len, out_len) = Self::pool_geom(op, dims, [kh, kw], stride, padding)?;
        let (src_len, dst_len) = match pass {
            AvgPoolPass::Forward => (in_len, out_len),
            AvgPoolPass::Backward => (out_len, in_len),
        };
        let ss = Self::f32_buf(op, src_name, src, src_len)?;
        let ds = Self::f32_buf_mut(op, dst_name, dst, dst_len)?;
        if dst_len == 0 {
            return Ok(());
        }
        let inv = 1.0 / (kh * kw) as f32;
        let f = self.train_fn(kernel)?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(ss).arg(ds);
        Self::pool_args(&mut lb, &geom);
        lb.arg(&inv);
        // SAFETY: avg_pool2d_fwd(x, y, geometry, inv) / avg_pool2d_bwd(dy, dx, geometry, inv)
        // with x, dx of planes·h·w and y, dy of planes·oh·ow f32 (checked above); the forward
        // bounds-tests every read against the plane, the backward clamps its window ranges to
        // the output.
        unsafe { lb.launch(Self::cfg_stride(dst_len)) }.map_err(drv("launch avg_pool2d"))?;
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
            .arg(&g.ow)
            .arg(&g.ph)
            .arg(&g.pw);
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
        padding: [usize; 2],
        y: &mut DeviceMatrix,
    ) -> Result<DeviceIndex> {
        const OP: &str = "max_pool2d";
        let y = gpu_mut(OP, y)?;
        let mut argmax = CudaDevice::alloc_index(self, y.len())?;
        CudaDevice::max_pool2d(self, gpu(OP, x)?, dims, pool, stride, padding, y, &mut argmax)?;
        Ok(self.live.opaque(argmax))
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
        const OP: &str = "avg_pool2d";
        CudaDevice::avg_pool2d(self, gpu(OP, x)?, dims, pool, stride, padding, gpu_mut(OP, y)?)
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
        const OP: &str = "avg_pool2d_backward";
        CudaDevice::avg_pool2d_backward(self, gpu(OP, dy)?, dims, pool, stride, padding, gpu_mut(OP, dx)?)
    }

    fn max_pool2d_backward(&self, dy: &DeviceMatrix, argmax: &DeviceIndex, dx: &mut DeviceMatrix) -> Result<()> {
        const OP: &str = "max_pool2d_backward";
        let idx = argmax.value::<GpuIndex>(OP)?;
        CudaDevice::max_pool2d_backward(self, gpu(OP, dy)?, idx, gpu_mut(OP, dx)?)
    }
}
