//! The masked convolutions: conv2d forward, input and weight gradients and the transposed
//! convolution (`masked_conv2d_{fwd,dx,dw}_*` of `kernels/masked_gemm/masked_gemm.cu`, implicit
//! GEMMs on the conv mask's tile lists).

use super::*;

impl CudaDevice {
    /// Uploads the per-group tile lists of a conv mask for a layer whose mask dims are `dims`
    /// (`geom.mask_dims()` of a [`Conv2dGeometry`] or [`ConvTranspose2dGeometry`]); `None`
    /// keeps every weight.
    ///
    /// # Errors
    /// [`Error::ConvMaskMismatch`], [`Error::ConvGeometry`], [`Error::Cuda`].
    pub fn upload_conv_mask(&self, dims: [usize; 5], mask: Option<&ConvMask>) -> Result<DeviceConvMask> {
        let [kh, kw, nx, ny, g] = dims;
        if dims.contains(&0) || ny % g != 0 {
            return Err(Error::ConvGeometry {
                op: "conv mask",
                reason: format!("mask dims [kh, kw, nx, ny, groups] = {dims:?}: zero size or groups not dividing ny"),
            });
        }
        let cout_g = ny / g;
        let tile = TileSize::square(GPU_TILE);
        let full = TileMap::full(kh * kw * nx, cout_g, tile)?;
        let maps: Vec<&TileMap> = match mask {
            Some(m) => {
                if m.dims() != dims {
                    return Err(Error::ConvMaskMismatch {
                        op: "conv2d",
                        expected: dims,
                        got: m.dims(),
                    });
                }
                m.maps().iter().collect()
            }
            None => vec![&full; g],
        };
        let mut groups = Vec::with_capacity(g);
        let mut transposed = Vec::with_capacity(g);
        for map in maps {
            groups.push(self.upload_tile_map(map)?);
            // Row (tap, co), column c of the input-gradient GEMM is forward entry (tap, c), co.
            let t = TileMap::from_fn(kh * kw * cout_g, nx, tile, |r, c| {
                map.get((r / cout_g) * nx + c, r % cout_g)
            })?;
            transposed.push(self.upload_tile_map(&t)?);
        }
        Ok(DeviceConvMask {
            dims,
            groups,
            transposed,
        })
    }

    /// The masked conv2d forward as an implicit GEMM on the tile lists: `y = conv(x, W⊙M) +
    /// bias` (`Beta::Zero`) or added to `y` (`Beta::One`). `x`, `w`, `bias`, `y` hold the NCHW /
    /// Keras-layout buffers of [`crate::conv::conv2d`] (any `rows × cols` with the right
    /// length); `x` and `w` in bf16 exactly when `precision` is `Bf16`, `bias` and `y` in f32.
    ///
    /// # Errors
    /// [`Error::ConvGeometry`], [`Error::ConvBuffer`], [`Error::ConvMaskMismatch`],
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    #[allow(clippy::too_many_arguments)]
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
        let plan = geom.plan("conv2d")?;
        self.conv_fwd_plan(precision, &plan, x, w, mask, bias, y, beta)
    }

    /// Shapes of a plan's convolution view: input, output, weight, mask dims.
    fn plan_shapes(p: &Plan) -> ([usize; 4], [usize; 4], [usize; 4], [usize; 5]) {
        let cin_g = p.cin / p.groups;
        (
            [p.batch, p.cin, p.h, p.w],
            [p.batch, p.cout, p.oh, p.ow],
            [p.kh, p.kw, cin_g, p.cout],
            [p.kh, p.kw, cin_g, p.cout, p.groups],
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_fwd_plan(
        &self,
        precision: Precision,
        plan: &Plan,
        x: &GpuMatrix,
        w: &GpuMatrix,
        mask: &DeviceConvMask,
        bias: Option<&GpuMatrix>,
        y: &mut GpuMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "conv2d";
        let params = conv_params(plan)?;
        let (in_shape, out_shape, w_shape, mask_dims) = Self::plan_shapes(plan);
        Self::conv_buf("x", in_shape.to_vec(), x)?;
        Self::conv_buf("w", w_shape.to_vec(), w)?;
        Self::conv_buf("y", out_shape.to_vec(), y)?;
        if let Some(b) = bias {
            Self::conv_buf("bias", vec![plan.cout], b)?;
            if b.is_bf16() {
                return Err(Error::CudaOperand {
                    op: OP,
                    reason: "the bias must be f32".to_string(),
                });
            }
        }
        Self::check_conv_operands(OP, precision, mask, mask_dims, [x, w], "x and w")?;
        let GpuData::F32(out_buf) = &mut y.data else {
            return Err(Error::CudaOperand {
                op: OP,
                reason: "the output must be an f32 matrix".to_string(),
            });
        };
        let rows = plan.batch * plan.oh * plan.ow;
        let m_blocks = u32::try_from(rows.div_ceil(BLOCK_M)).map_err(|_| Error::CudaOperand {
            op: OP,
            reason: format!("{rows} output pixels are too many"),
        })?;
        let f = self
            .gemm
            .load_function(&format!("masked_conv2d_fwd_{}", precision.name()))
            .map_err(drv("load kernel"))?;
        let beta = beta_f32(beta);
        // A null bias pointer: the kernel tests `bias != nullptr`.
        let null_bias: u64 = 0;
        for (group, lists) in mask.groups.iter().enumerate() {
            if m_blocks == 0 || lists.grid_cols == 0 {
                continue;
            }
            let group_i = group as i32;
            let cfg = threads_cfg(limits::grid(OP, m_blocks as usize, lists.grid_cols, 1)?);
            let mut lb = self.stream.launch_builder(&f);
            push_operands(&mut lb, &x.data, &w.data);
            match bias.map(|b| &b.data) {
                Some(GpuData::F32(b)) => {
                    lb.arg(b);
                }
                _ => {
                    lb.arg(&null_bias);
                }
            }
            lb.arg(&mut *out_buf)
                .arg(&params)
                .arg(&group_i)
                .arg(&lists.col_ptr)
                .arg(&lists.col_entries)
                .arg(&lists.bits)
                .arg(&beta);
            // SAFETY: the arguments match `masked_conv2d_fwd_*` (x, w, bias or null, y, the
            // 16-int ConvGeom by value, group, the group's forward lists, bits, beta); the
            // buffer lengths were checked against the geometry above.
            unsafe { lb.launch(cfg) }.map_err(drv("launch masked_conv2d"))?;
        }
        Ok(())
    }

    /// The masked transposed convolution (PyTorch `ConvTranspose2d`, Keras weights
    /// `(kh, kw, C_out/G, C_in)`), on the kernels of the convolution whose input gradient it is:
    /// `GemmOp::Forward`: `a = x (N, C_in, H, W)`, `b = w`, `out = y (N, C_out, OH, OW)`, plus
    /// `bias` (the dgrad kernel, then a bias add); `GemmOp::Dx`: `a = dy`, `b = w`, `out = dx`
    /// (the conv forward kernel); `GemmOp::Dw`: `a = x`, `b = dy`, `out = dw` (the wgrad kernel
    /// with the roles of `x` and `dy` swapped), 0 off the mask. `bias` must be `None` for the
    /// gradients.
    ///
    /// # Errors
    /// [`Error::ConvGeometry`], [`Error::ConvBuffer`], [`Error::ConvMaskMismatch`],
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    #[allow(clippy::too_many_arguments)]
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
        const OP: &str = "conv_transpose2d";
        let (plan, _) = geom.resolve(OP)?;
        if bias.is_some() && op != GemmOp::Forward {
            return Err(Error::CudaOperand {
                op: OP,
                reason: "a bias only goes with the forward".to_string(),
            });
        }
        match op {
            GemmOp::Forward => {
                self.conv_back_plan(GemmOp::Dx, precision, &plan, a, b, mask, out, beta)?;
                if let Some(bias) = bias {
                    Self::conv_buf("bias", vec![plan.cin], bias)?;
                    self.bias_add_nchw(out, bias, plan.cin, plan.h * plan.w)?;
                }
                Ok(())
            }
            GemmOp::Dx => self.conv_fwd_plan(precision, &plan, a, b, mask, None, out, beta),
            GemmOp::Dw => self.conv_back_plan(GemmOp::Dw, precision, &plan, b, a, mask, out, beta),
        }
    }

    /// Checks a conv buffer's length.
    /// The mask must have been uploaded for this plan's dims, and both inputs in the precision
    /// the kernel reads (`inputs` names them in the error).
    fn check_conv_operands(
        op: &'static str,
        precision: Precision,
        mask: &DeviceConvMask,
        mask_dims: [usize; 5],
        operands: [&GpuMatrix; 2],
        inputs: &str,
    ) -> Result<()> {
        if mask.dims != mask_dims {
            return Err(Error::ConvMaskMismatch {
                op,
                expected: mask_dims,
                got: mask.dims,
            });
        }
        if operands.iter().any(|m| m.is_bf16() != (precision == Precision::Bf16)) {
            return Err(Error::CudaOperand {
                op,
                reason: format!(
                    "{} needs {inputs} uploaded with Precision::{precision:?}",
                    precision.name()
                ),
            });
        }
        Ok(())
    }

    fn conv_buf(name: &'static str, shape: Vec<usize>, m: &GpuMatrix) -> Result<()> {
        let expected = shape.iter().product::<usize>();
        let got = m.rows * m.cols;
        if got != expected {
            return Err(Error::ConvBuffer {
                op: "conv2d",
                name,
                shape,
                expected,
                got,
            });
        }
        Ok(())
    }

    /// The input (`Dx`) or weight (`Dw`) gradient of [`CudaDevice::masked_conv2d`]:
    /// `Dx`: `a = dy (N, C_out, OH, OW)`, `b = w`, `out = dx (N, C_in, H, W)`;
    /// `Dw`: `a = x (N, C_in, H, W)`, `b = dy`, `out = dw (kh, kw, C_in/G, C_out)`, computed only
    /// on the mask's non-empty tiles and exactly 0 off the mask (`Beta::Zero`). `a` and `b` in
    /// bf16 exactly when `precision` is `Bf16`; `out` f32. `GemmOp::Forward` is an error (use
    /// `masked_conv2d`).
    ///
    /// # Errors
    /// [`Error::ConvGeometry`], [`Error::ConvBuffer`], [`Error::ConvMaskMismatch`],
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    #[allow(clippy::too_many_arguments)]
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
        let plan = geom.plan("conv2d backward")?;
        self.conv_back_plan(op, precision, &plan, a, b, mask, out, beta)
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_back_plan(
        &self,
        op: GemmOp,
        precision: Precision,
        plan: &Plan,
        a: &GpuMatrix,
        b: &GpuMatrix,
        mask: &DeviceConvMask,
        out: &mut GpuMatrix,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "conv2d backward";
        let params = conv_params(plan)?;
        let (in_shape, out_shape, w_shape, mask_dims) = Self::plan_shapes(plan);
        let (name, rows) = match op {
            GemmOp::Dx => {
                Self::conv_buf("dy", out_shape.to_vec(), a)?;
                Self::conv_buf("w", w_shape.to_vec(), b)?;
                Self::conv_buf("dx", in_shape.to_vec(), out)?;
                ("dx", plan.batch * plan.h * plan.w)
            }
            GemmOp::Dw => {
                Self::conv_buf("x", in_shape.to_vec(), a)?;
                Self::conv_buf("dy", out_shape.to_vec(), b)?;
                Self::conv_buf("dw", w_shape.to_vec(), out)?;
                ("dw", plan.batch * plan.oh * plan.ow)
            }
            GemmOp::Forward => {
                return Err(Error::CudaOperand {
                    op: OP,
                    reason: "the forward convolution is masked_conv2d".to_string(),
                })
            }
        };
        Self::check_conv_operands(OP, precision, mask, mask_dims, [a, b], "inputs")?;
        let GpuData::F32(out_buf) = &mut out.data else {
            return Err(Error::CudaOperand {
                op: OP,
                reason: "the output must be an f32 matrix".to_string(),
            });
        };
        let f = self
            .gemm
            .load_function(&format!("masked_conv2d_{name}_{}", precision.name()))
            .map_err(drv("load kernel"))?;
        let beta = beta_f32(beta);
        let m_blocks = rows.div_ceil(BLOCK_M) as u32;
        let lists = if op == GemmOp::Dx {
            &mask.transposed
        } else {
            &mask.groups
        };
        for (group, l) in lists.iter().enumerate() {
            let grid = match op {
                GemmOp::Dx => limits::grid(OP, m_blocks as usize, l.grid_cols, 1)?,
                _ => limits::grid(OP, l.grid_cols, l.grid_rows, 1)?,
            };
            if grid.0 == 0 || grid.1 == 0 {
                continue;
            }
            let group_i = group as i32;
            let cfg = threads_cfg(grid);
            let mut lb = self.stream.launch_builder(&f);
            push_operands(&mut lb, &a.data, &b.data);
            lb.arg(&mut *out_buf).arg(&params).arg(&group_i);
            if op == GemmOp::Dx {
                lb.arg(&l.col_ptr).arg(&l.col_entries);
            } else {
                lb.arg(&l.tile_slots);
            }
            lb.arg(&l.bits).arg(&beta);
            // SAFETY: the arguments match `masked_conv2d_{dx,dw}_*` (two inputs, output, the
            // 16-int ConvGeom, group, the group's lists, bits, beta); the buffer lengths were
            // checked against the geometry above.
            unsafe { lb.launch(cfg) }.map_err(drv("launch masked_conv2d backward"))?;
        }
        Ok(())
    }
}

/// [`ConvOps`] on the device: the erased handles unwrapped, then the typed methods above.
impl ConvOps for CudaDevice {
    fn upload_conv_mask(&self, dims: [usize; 5], mask: Option<&ConvMask>) -> Result<DeviceConv> {
        Ok(self.live.opaque(CudaDevice::upload_conv_mask(self, dims, mask)?))
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
}
