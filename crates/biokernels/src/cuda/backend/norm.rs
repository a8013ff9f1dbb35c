//! Batch and group normalisation (`norm_stats`, `norm_apply`, `norm_grad_sums`,
//! `norm_grad_input` of `kernels/train/train.cu`; layouts in [`crate::device::norm`]). The
//! reductions run one CTA per segment in a fixed order: the same bits on every run.

use super::*;
use crate::device::norm::{check_lengths, Segments};

/// The i32 kernel arguments of a segment layout: `segments, base, inner, stride, count`.
fn segment_args(op: &'static str, s: &Segments) -> Result<[i32; 5]> {
    Ok([
        i32_dim(op, s.segments)?,
        i32_dim(op, s.base)?,
        i32_dim(op, s.inner)?,
        i32_dim(op, s.stride)?,
        i32_dim(op, s.count)?,
    ])
}

/// The i32 kernel arguments of the element maps: `n, statistics, stat_div, stat_mod, hw, channels`.
fn map_args(op: &'static str, l: &NormLayout) -> Result<[i32; 6]> {
    let (div, modulo) = l.statistic_map();
    Ok([
        i32_dim(op, l.len())?,
        i32_dim(op, l.statistics())?,
        i32_dim(op, div)?,
        i32_dim(op, modulo)?,
        i32_dim(op, l.hw)?,
        i32_dim(op, l.channels)?,
    ])
}

/// One CTA per segment, at most `MAX_GRID` (the kernels loop over the rest).
fn segment_cfg(segments: usize) -> LaunchConfig {
    threads_cfg((segments.clamp(1, MAX_GRID) as u32, 1, 1))
}

impl CudaDevice {
    /// The statistics `[mean; var; invstd]` (`(3, S)`) of `x` under `layout`.
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn norm_stats(&self, x: &GpuMatrix, layout: NormLayout, eps: f32, stats: &mut GpuMatrix) -> Result<()> {
        const OP: &str = "norm_stats";
        let s_count = layout.statistics();
        check_lengths(
            OP,
            &layout,
            &[("x", x.len(), layout.len()), ("stats", stats.len(), 3 * s_count)],
        )?;
        let seg = layout.segments(NormReduce::Statistic);
        let [segs, base, inner, stride, count] = segment_args(OP, &seg)?;
        let xs = Self::f32_buf(OP, "x", x, layout.len())?;
        let ss = Self::f32_buf_mut(OP, "stats", stats, 3 * s_count)?;
        let f = self.train_fn("norm_stats")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs)
            .arg(ss)
            .arg(&segs)
            .arg(&base)
            .arg(&inner)
            .arg(&stride)
            .arg(&count)
            .arg(&eps);
        // SAFETY: norm_stats(x, stats, segs, base, inner, stride, count, eps): every index
        // s·base + (m/inner)·stride + m%inner of the checked layout is below x's length, stats
        // holds 3·segs values.
        unsafe { lb.launch(segment_cfg(seg.segments)) }.map_err(drv("launch norm_stats"))?;
        Ok(())
    }

    /// `y = γ_c·x̂ + β_c` (`affine`) or `x̂`.
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn norm_apply(
        &self,
        x: &GpuMatrix,
        layout: NormLayout,
        stats: &GpuMatrix,
        affine: Option<(&GpuMatrix, &GpuMatrix)>,
        y: &mut GpuMatrix,
    ) -> Result<()> {
        const OP: &str = "norm_apply";
        let (n, c) = (layout.len(), layout.channels);
        let (gl, bl) = affine.map_or((c, c), |(g, b)| (g.len(), b.len()));
        check_lengths(
            OP,
            &layout,
            &[
                ("x", x.len(), n),
                ("y", y.len(), n),
                ("stats", stats.len(), 3 * layout.statistics()),
                ("gamma", gl, c),
                ("beta", bl, c),
            ],
        )?;
        let [ni, si, div, modulo, hw, ci] = map_args(OP, &layout)?;
        let xs = Self::f32_buf(OP, "x", x, n)?;
        let ss = Self::f32_buf(OP, "stats", stats, stats.len())?;
        // Without the affine transform the kernel reads neither; x stands in for both.
        let (gs, bs) = match affine {
            Some((g, b)) => (Self::f32_buf(OP, "gamma", g, c)?, Self::f32_buf(OP, "beta", b, c)?),
            None => (xs, xs),
        };
        let ys = Self::f32_buf_mut(OP, "y", y, n)?;
        let flag = i32::from(affine.is_some());
        let f = self.train_fn("norm_apply")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs)
            .arg(ss)
            .arg(gs)
            .arg(bs)
            .arg(ys)
            .arg(&ni)
            .arg(&si)
            .arg(&div)
            .arg(&modulo)
            .arg(&hw)
            .arg(&ci)
            .arg(&flag);
        // SAFETY: norm_apply on checked lengths: x, y of n; stats of 3·S; gamma, beta of C.
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch norm_apply"))?;
        Ok(())
    }

    /// `sums = [Σ d; Σ d·x̂]` (`(2, R)`) per segment of `over`.
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    #[allow(clippy::too_many_arguments)]
    pub fn norm_grad_sums(
        &self,
        x: &GpuMatrix,
        dy: &GpuMatrix,
        layout: NormLayout,
        stats: &GpuMatrix,
        gamma: Option<&GpuMatrix>,
        over: NormReduce,
        sums: &mut GpuMatrix,
    ) -> Result<()> {
        const OP: &str = "norm_grad_sums";
        let seg = layout.segments(over);
        let (n, c) = (layout.len(), layout.channels);
        check_lengths(
            OP,
            &layout,
            &[
                ("x", x.len(), n),
                ("dy", dy.len(), n),
                ("stats", stats.len(), 3 * layout.statistics()),
                ("gamma", gamma.map_or(c, GpuMatrix::len), c),
                ("sums", sums.len(), 2 * seg.segments),
            ],
        )?;
        let [segs, base, inner, stride, count] = segment_args(OP, &seg)?;
        let [_, si, div, modulo, hw, ci] = map_args(OP, &layout)?;
        let xs = Self::f32_buf(OP, "x", x, n)?;
        let ds = Self::f32_buf(OP, "dy", dy, n)?;
        let ss = Self::f32_buf(OP, "stats", stats, stats.len())?;
        let gs = match gamma {
            Some(g) => Self::f32_buf(OP, "gamma", g, c)?,
            None => xs,
        };
        let out = Self::f32_buf_mut(OP, "sums", sums, 2 * seg.segments)?;
        let use_gamma = i32::from(gamma.is_some());
        let f = self.train_fn("norm_grad_sums")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs)
            .arg(ds)
            .arg(ss)
            .arg(gs)
            .arg(out)
            .arg(&segs)
            .arg(&base)
            .arg(&inner)
            .arg(&stride)
            .arg(&count)
            .arg(&si)
            .arg(&div)
            .arg(&modulo)
            .arg(&hw)
            .arg(&ci)
            .arg(&use_gamma);
        // SAFETY: norm_grad_sums on the checked layout and lengths (as norm_stats), sums of 2·R.
        unsafe { lb.launch(segment_cfg(seg.segments)) }.map_err(drv("launch norm_grad_sums"))?;
        Ok(())
    }

    /// The input gradient (batch statistics with `sums`, running statistics without).
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    #[allow(clippy::too_many_arguments)]
    pub fn norm_grad_input(
        &self,
        x: &GpuMatrix,
        dy: &GpuMatrix,
        layout: NormLayout,
        stats: &GpuMatrix,
        gamma: Option<&GpuMatrix>,
        sums: Option<&GpuMatrix>,
        dx: &mut GpuMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "norm_grad_input";
        let (n, c, s_count) = (layout.len(), layout.channels, layout.statistics());
        check_lengths(
            OP,
            &layout,
            &[
                ("x", x.len(), n),
                ("dy", dy.len(), n),
                ("dx", dx.len(), n),
                ("stats", stats.len(), 3 * s_count),
                ("gamma", gamma.map_or(c, GpuMatrix::len), c),
                ("sums", sums.map_or(2 * s_count, GpuMatrix::len), 2 * s_count),
            ],
        )?;
        let [ni, si, div, modulo, hw, ci] = map_args(OP, &layout)?;
        let xs = Self::f32_buf(OP, "x", x, n)?;
        let ds = Self::f32_buf(OP, "dy", dy, n)?;
        let ss = Self::f32_buf(OP, "stats", stats, 3 * s_count)?;
        let gs = match gamma {
            Some(g) => Self::f32_buf(OP, "gamma", g, c)?,
            None => xs,
        };
        let ms = match sums {
            Some(m) => Self::f32_buf(OP, "sums", m, 2 * s_count)?,
            None => ss,
        };
        let out = Self::f32_buf_mut(OP, "dx", dx, n)?;
        let (use_gamma, train) = (i32::from(gamma.is_some()), i32::from(sums.is_some()));
        let m = layout.count() as f32;
        let b = beta_f32(beta);
        let f = self.train_fn("norm_grad_input")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs)
            .arg(ds)
            .arg(ss)
            .arg(gs)
            .arg(ms)
            .arg(out)
            .arg(&ni)
            .arg(&si)
            .arg(&div)
            .arg(&modulo)
            .arg(&hw)
            .arg(&ci)
            .arg(&use_gamma)
            .arg(&train)
            .arg(&m)
            .arg(&b);
        // SAFETY: norm_grad_input on checked lengths; gamma and sums are read only when their
        // flags are set (x and stats stand in otherwise).
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch norm_grad_input"))?;
        Ok(())
    }
}

/// [`NormOps`] on the device: the erased handles unwrapped, then the typed methods above.
impl NormOps for CudaDevice {
    fn norm_stats(&self, x: &DeviceMatrix, layout: NormLayout, eps: f32, stats: &mut DeviceMatrix) -> Result<()> {
        const OP: &str = "norm_stats";
        CudaDevice::norm_stats(self, gpu(OP, x)?, layout, eps, gpu_mut(OP, stats)?)
    }

    fn norm_apply(
        &self,
        x: &DeviceMatrix,
        layout: NormLayout,
        stats: &DeviceMatrix,
        affine: Option<(&DeviceMatrix, &DeviceMatrix)>,
        y: &mut DeviceMatrix,
    ) -> Result<()> {
        const OP: &str = "norm_apply";
        let affine = match affine {
            Some((g, b)) => Some((gpu(OP, g)?, gpu(OP, b)?)),
            None => None,
        };
        CudaDevice::norm_apply(self, gpu(OP, x)?, layout, gpu(OP, stats)?, affine, gpu_mut(OP, y)?)
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
        const OP: &str = "norm_grad_sums";
        let (xm, dm, sm) = (gpu(OP, x)?, gpu(OP, dy)?, gpu(OP, stats)?);
        CudaDevice::norm_grad_sums(self, xm, dm, layout, sm, gpu_opt(OP, gamma)?, over, gpu_mut(OP, sums)?)
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
        const OP: &str = "norm_grad_input";
        let (xm, dm, sm) = (gpu(OP, x)?, gpu(OP, dy)?, gpu(OP, stats)?);
        let (g, s) = (gpu_opt(OP, gamma)?, gpu_opt(OP, sums)?);
        CudaDevice::norm_grad_input(self, xm, dm, layout, sm, g, s, gpu_mut(OP, dx)?, beta)
    }
}
