//! The masked GEMM products (`masked_gemm_{fwd,dx,dw}_{f32,tf32,bf16}` of
//! `kernels/masked_gemm/masked_gemm.cu`), their tile lists, and the cuBLAS baseline and timing
//! of the benchmarks.

use super::*;

impl CudaDevice {
    /// Uploads the tile lists of a mask (rebuilt with 64 × 64 tiles if needed).
    ///
    /// # Errors
    /// [`Error::Cuda`], [`Error::CudaOperand`].
    pub fn upload_tile_map(&self, map: &TileMap) -> Result<DeviceTileMap> {
        let l = GpuTileLists::from_tile_map(map)?;
        let flat = |v: &[[i32; 2]]| -> Vec<i32> {
            let mut out: Vec<i32> = v.iter().flat_map(|e| [e[0], e[1]]).collect();
            // cudarc cannot allocate zero-length buffers portably: keep one dummy entry.
            if out.is_empty() {
                out.extend([0, 0]);
            }
            out
        };
        let mut bits = l.bits.clone();
        if bits.is_empty() {
            bits.push(0);
        }
        let up_i32 = |v: &[i32]| self.stream.clone_htod(v).map_err(drv("upload tile lists"));
        Ok(DeviceTileMap {
            rows: l.rows,
            cols: l.cols,
            grid_rows: l.grid_rows,
            grid_cols: l.grid_cols,
            col_ptr: up_i32(&l.col_ptr)?,
            col_entries: up_i32(&flat(&l.col_entries))?,
            row_ptr: up_i32(&l.row_ptr)?,
            row_entries: up_i32(&flat(&l.row_entries))?,
            tile_slots: up_i32(&l.tile_slots)?,
            bits: self.stream.clone_htod(&bits).map_err(drv("upload tile lists"))?,
            work_fraction: l.work_fraction,
        })
    }

    fn function(&self, op: GemmOp, precision: Precision) -> Result<CudaFunction> {
        let name = format!("masked_gemm_{}_{}", op.kernel_suffix(), precision.name());
        self.gemm.load_function(&name).map_err(drv("load kernel"))
    }

    /// One masked GEMM on the device: `op` says which product (see [`GemmOp`]); `a` and `b`
    /// are its two inputs in the order of [`crate::gemm`] (`x, w` / `dy, w` / `x, dy`), `out`
    /// an f32 output. Inputs must be stored as bf16 exactly when `precision` is `Bf16`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`], [`Error::OutputShape`], [`Error::CudaOperand`], [`Error::Cuda`].
    #[allow(clippy::too_many_arguments)]
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
        let name = op.name();
        let [k, n] = mask.shape();
        let (m, out_shape) = crate::cuda::check_gemm_shapes(op, [a.rows, a.cols], [b.rows, b.cols], [k, n])?;
        if [out.rows, out.cols] != out_shape {
            return Err(Error::OutputShape {
                op: name,
                name: "out",
                expected: out_shape,
                got: [out.rows, out.cols],
            });
        }
        if a.is_bf16() != (precision == Precision::Bf16) || b.is_bf16() != (precision == Precision::Bf16) {
            return Err(Error::CudaOperand {
                op: name,
                reason: format!(
                    "{} needs inputs uploaded with Precision::{precision:?}",
                    precision.name()
                ),
            });
        }
        let GpuData::F32(out_buf) = &mut out.data else {
            return Err(Error::CudaOperand {
                op: name,
                reason: "the output must be an f32 matrix".to_string(),
            });
        };
        let (mi, ki, ni) = (i32_dim(name, m)?, i32_dim(name, k)?, i32_dim(name, n)?);
        let beta = beta_f32(beta);
        let f = self.function(op, precision)?;
        let m_blocks = m.div_ceil(BLOCK_M);
        let grid = match op {
            GemmOp::Forward => limits::grid(name, m_blocks, mask.grid_cols, 1)?,
            GemmOp::Dx => limits::grid(name, m_blocks, mask.grid_rows, 1)?,
            GemmOp::Dw => limits::grid(name, mask.grid_cols, mask.grid_rows, 1)?,
        };
        if grid.0 == 0 || grid.1 == 0 {
            return Ok(());
        }
        let cfg = threads_cfg(grid);
        let mut lb = self.stream.launch_builder(&f);
        push_operands(&mut lb, &a.data, &b.data);
        lb.arg(out_buf).arg(&mi).arg(&ki).arg(&ni);
        match op {
            GemmOp::Forward => {
                lb.arg(&mask.col_ptr).arg(&mask.col_entries);
            }
            GemmOp::Dx => {
                lb.arg(&mask.row_ptr).arg(&mask.row_entries);
            }
            GemmOp::Dw => {
                lb.arg(&mask.tile_slots);
            }
        }
        lb.arg(&mask.bits).arg(&beta);
        // SAFETY: the argument list matches the kernel signature in kernels/masked_gemm (pointers,
        // three i32 sizes, list pointers, bits, f32 beta); shapes were checked above, so every
        // index the kernel forms stays inside the buffers.
        unsafe { lb.launch(cfg) }.map_err(drv("launch masked_gemm"))?;
        Ok(())
    }

    /// The dense cuBLAS product of the same op and precision (`cublasGemmEx`, f32 output;
    /// `Tf32` uses `CUBLAS_COMPUTE_32F_FAST_TF32`): the baseline of `bench-kernels --cuda`.
    ///
    /// # Errors
    /// [`Error::NoCudaDevice`] when libcublas is missing, shape errors, [`Error::Cuda`].
    pub fn cublas_gemm(
        &self,
        blas: &CublasHandle,
        op: GemmOp,
        precision: Precision,
        a: &GpuMatrix,
        b: &GpuMatrix,
        out: &mut GpuMatrix,
    ) -> Result<()> {
        use cudarc::driver::{DevicePtr, DevicePtrMut};
        let name = "cublas_gemm";
        let (m, k, n) = match op {
            GemmOp::Forward => (a.rows, a.cols, b.cols),
            GemmOp::Dx => (a.rows, b.rows, a.cols),
            GemmOp::Dw => (a.rows, a.cols, b.cols),
        };
        let (m, k, n) = (i32_dim(name, m)?, i32_dim(name, k)?, i32_dim(name, n)?);
        // Row-major products as column-major cuBLAS calls on the transposes.
        let (no, tr) = (cublasOperation_t::CUBLAS_OP_N, cublasOperation_t::CUBLAS_OP_T);
        let (ta, tb, cm, cn, ck, lda, ldb, ldc) = match op {
            // Yᵀ(n,m) = Wᵀ · Xᵀ
            GemmOp::Forward => (no, no, n, m, k, n, k, n),
            // dXᵀ(k,m) = W(k,n) · dYᵀ
            GemmOp::Dx => (tr, no, k, m, n, n, n, k),
            // dWᵀ(n,k) = dYᵀ(n,m) · X(m,k)
            GemmOp::Dw => (no, tr, n, k, m, n, k, n),
        };
        // First cuBLAS operand: W for forward and dX, dY for dW; second: X, dY, X.
        let (p, q) = (b, a);
        let (dtype, compute) = match precision {
            Precision::F32 => (cudaDataType_t::CUDA_R_32F, cublasComputeType_t::CUBLAS_COMPUTE_32F),
            Precision::Tf32 => (
                cudaDataType_t::CUDA_R_32F,
                cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32,
            ),
            Precision::Bf16 => (cudaDataType_t::CUDA_R_16BF, cublasComputeType_t::CUBLAS_COMPUTE_32F),
        };
        let GpuData::F32(c) = &mut out.data else {
            return Err(Error::CudaOperand {
                op: name,
                reason: "the output must be an f32 matrix".to_string(),
            });
        };
        let (alpha, beta) = (1.0f32, 0.0f32);
        let ptr = |d: &GpuData| match d {
            GpuData::F32(s) => s.device_ptr(&self.stream).0,
            GpuData::Bf16(s) => s.device_ptr(&self.stream).0,
        };
        let (pp, qp) = (ptr(&p.data), ptr(&q.data));
        let (cp, _rec) = c.device_ptr_mut(&self.stream);
        // SAFETY: the pointers are live device buffers of the shapes given (checked by the
        // caller through the masked path on the same matrices); alpha/beta are f32 as the
        // compute type requires.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *blas.0.handle(),
                ta,
                tb,
                cm,
                cn,
                ck,
                (&alpha) as *const f32 as *const _,
                pp as *const _,
                dtype,
                lda,
                qp as *const _,
                dtype,
                ldb,
                (&beta) as *const f32 as *const _,
                cp as *mut _,
                cudaDataType_t::CUDA_R_32F,
                ldc,
                compute,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| Error::Cuda {
            op: "cublasGemmEx",
            message: format!("{e:?}"),
        })
    }

    /// A cuBLAS handle on this device's stream.
    ///
    /// # Errors
    /// [`Error::NoCudaDevice`] when libcublas cannot be loaded, [`Error::Cuda`].
    pub fn cublas(&self) -> Result<CublasHandle> {
        // SAFETY: only probes whether libcublas can be opened.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(Error::NoCudaDevice {
                reason: "libcublas.so is not on the library path (needed for the dense baseline)".to_string(),
            });
        }
        let blas = cudarc::cublas::CudaBlas::new(self.stream.clone()).map_err(|e| Error::Cuda {
            op: "cublasCreate",
            message: format!("{e:?}"),
        })?;
        Ok(CublasHandle(blas))
    }

    /// Median time in seconds of `reps` calls of `f` after `warmup` calls, each timed with CUDA
    /// events on the device's stream.
    ///
    /// # Errors
    /// The errors of `f`, [`Error::Cuda`].
    pub fn time_median(&self, warmup: usize, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
        for _ in 0..warmup {
            f()?;
        }
        self.synchronize()?;
        let flags = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        let mut times = Vec::with_capacity(reps.max(1));
        for _ in 0..reps.max(1) {
            let start = self.ctx.new_event(flags).map_err(drv("event"))?;
            let end = self.ctx.new_event(flags).map_err(drv("event"))?;
            start.record(&self.stream).map_err(drv("event record"))?;
            f()?;
            end.record(&self.stream).map_err(drv("event record"))?;
            // With dynamic loading cudarc panics when the driver lacks the symbol it calls
            // (`cuEventElapsedTime_v2`, which older drivers lack).
            let ms = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| start.elapsed_ms(&end)))
                .map_err(|_| Error::Cuda {
                    op: "event elapsed",
                    message: format!(
                        "the CUDA {} driver has no cuEventElapsedTime_v2; timing needs a newer driver",
                        version_text(self.driver)
                    ),
                })?
                .map_err(drv("event elapsed"))?;
            times.push(f64::from(ms) * 1e-3);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }
}

/// [`GemmOps`] on the device: the erased handles unwrapped, then the typed methods above.
impl GemmOps for CudaDevice {
    fn upload_tile_map(&self, map: &TileMap) -> Result<DeviceTiles> {
        Ok(self.live.opaque(CudaDevice::upload_tile_map(self, map)?))
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
}
