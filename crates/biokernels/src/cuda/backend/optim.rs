//! Optimiser steps (`adam_step`, `rmsprop_step` of `kernels/train/train.cu`), the formulas of
//! [`crate::optim`] with its state layout.

use super::*;

impl CudaDevice {
    /// One optimizer step in place: `w`, its gradient `g`, and the state buffers in the layout
    /// of [`crate::optim`] (`first` = Adam's `m` / RMSprop's momentum buffer, `second` = Adam's
    /// `v` / RMSprop's mean square), all f32 of the same length. (`rmsprop_step` takes the mean
    /// square before the momentum buffer: the two are swapped at the launch below.)
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn optimizer_step(
        &self,
        step: OptimizerStep,
        w: &mut GpuMatrix,
        g: &GpuMatrix,
        first: &mut GpuMatrix,
        second: &mut GpuMatrix,
    ) -> Result<()> {
        const OP: &str = "optimizer_step";
        let n = w.rows * w.cols;
        let ws = Self::f32_buf_mut(OP, "w", w, n)?;
        let gs = Self::f32_buf(OP, "g", g, n)?;
        let s1 = Self::f32_buf_mut(OP, "first", first, n)?;
        let s2 = Self::f32_buf_mut(OP, "second", second, n)?;
        let (cfg, ni) = Self::cfg_1d(OP, n)?;
        match step {
            OptimizerStep::Adam {
                beta1,
                beta2,
                eps,
                step,
                bc2_sqrt,
                torch,
                weight_decay,
            } => {
                let f = self.train_fn("adam_step")?;
                let t = i32::from(torch);
                let mut lb = self.stream.launch_builder(&f);
                lb.arg(ws)
                    .arg(gs)
                    .arg(s1)
                    .arg(s2)
                    .arg(&ni)
                    .arg(&beta1)
                    .arg(&beta2)
                    .arg(&eps)
                    .arg(&step)
                    .arg(&bc2_sqrt)
                    .arg(&t)
                    .arg(&weight_decay);
                // SAFETY: adam_step's signature; all buffers have n f32.
                unsafe { lb.launch(cfg) }.map_err(drv("launch adam_step"))?;
            }
            OptimizerStep::RmsProp {
                rho,
                eps,
                lr,
                momentum,
                torch,
                weight_decay,
            } => {
                let f = self.train_fn("rmsprop_step")?;
                let t = i32::from(torch);
                let mut lb = self.stream.launch_builder(&f);
                // rmsprop_step(w, g, mean_square, momentum, ...): `second`, then `first`.
                lb.arg(ws)
                    .arg(gs)
                    .arg(s2)
                    .arg(s1)
                    .arg(&ni)
                    .arg(&rho)
                    .arg(&eps)
                    .arg(&lr)
                    .arg(&momentum)
                    .arg(&t)
                    .arg(&weight_decay);
                // SAFETY: rmsprop_step's signature; all buffers have n f32.
                unsafe { lb.launch(cfg) }.map_err(drv("launch rmsprop_step"))?;
            }
        }
        Ok(())
    }
}

/// [`OptimOps`] on the device: the erased handles unwrapped, then the typed methods above.
impl OptimOps for CudaDevice {
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
