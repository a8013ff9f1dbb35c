//! Device memory: uploads and downloads, allocation, whole and column-block copies
//! (`fill_f32` and `copy_cols` of `kernels/train/train.cu`; the rest are driver copies).

use super::*;

impl CudaDevice {
    /// Copies a row-major `rows × cols` matrix to the device, as bf16 for
    /// [`Precision::Bf16`] (round to nearest even) and f32 otherwise.
    ///
    /// # Errors
    /// [`Error::BufferSize`], [`Error::Cuda`].
    pub fn upload(&self, data: &[f32], rows: usize, cols: usize, precision: Precision) -> Result<GpuMatrix> {
        crate::gemm::MatRef::new(data, rows, cols)?;
        limits::allocation("upload", rows, cols)?;
        let data = match precision {
            Precision::Bf16 => {
                let h: Vec<bf16> = data.iter().map(|&v| bf16::from_f32(v)).collect();
                GpuData::Bf16(self.stream.clone_htod(&h).map_err(drv("upload"))?)
            }
            _ => GpuData::F32(self.stream.clone_htod(data).map_err(drv("upload"))?),
        };
        Ok(GpuMatrix { rows, cols, data })
    }

    /// An f32 `rows × cols` output matrix filled with `value` (tests poison outputs with NaN).
    ///
    /// # Errors
    /// [`Error::SizeOverflow`], [`Error::Cuda`].
    pub fn filled(&self, rows: usize, cols: usize, value: f32) -> Result<GpuMatrix> {
        let len = limits::allocation("filled", rows, cols)?;
        let host = vec![value; len];
        Ok(GpuMatrix {
            rows,
            cols,
            data: GpuData::F32(self.stream.clone_htod(&host).map_err(drv("alloc"))?),
        })
    }

    /// Copies a matrix back (bf16 values are widened to f32).
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn download(&self, m: &GpuMatrix) -> Result<Vec<f32>> {
        match &m.data {
            GpuData::F32(s) => self.stream.clone_dtoh(s).map_err(drv("download")),
            GpuData::Bf16(s) => Ok(self
                .stream
                .clone_dtoh(s)
                .map_err(drv("download"))?
                .into_iter()
                .map(f32::from)
                .collect()),
        }
    }

    /// An f32 `rows × cols` matrix of zeros (allocated on the device, no host transfer).
    ///
    /// # Errors
    /// [`Error::SizeOverflow`], [`Error::CudaOperand`] for a zero-size matrix (the driver
    /// cannot allocate zero bytes), [`Error::Cuda`].
    pub fn zeros(&self, rows: usize, cols: usize) -> Result<GpuMatrix> {
        let len = limits::allocation("zeros", rows, cols)?;
        Ok(GpuMatrix {
            rows,
            cols,
            data: GpuData::F32(self.stream.alloc_zeros::<f32>(len).map_err(drv("alloc"))?),
        })
    }

    /// An index buffer of `len` zeros, e.g. the argmax of [`CudaDevice::max_pool2d`].
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn alloc_index(&self, len: usize) -> Result<GpuIndex> {
        Ok(GpuIndex {
            len,
            data: self.stream.alloc_zeros::<i32>(len.max(1)).map_err(drv("alloc index"))?,
            geom: None,
        })
    }

    /// Copies an index buffer back (tests and debugging).
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn download_index(&self, idx: &GpuIndex) -> Result<Vec<i32>> {
        let mut v = self.stream.clone_dtoh(&idx.data).map_err(drv("download index"))?;
        v.truncate(idx.len);
        Ok(v)
    }

    /// Copies `data` into the existing f32 matrix `dst` (same number of elements): no
    /// allocation, so per-step inputs (a batch, a dropout mask) reuse one buffer.
    ///
    /// # Errors
    /// [`Error::CudaOperand`] for a length mismatch or a bf16 `dst`, [`Error::Cuda`].
    pub fn upload_into(&self, data: &[f32], dst: &mut GpuMatrix) -> Result<()> {
        const OP: &str = "upload_into";
        let n = data.len();
        let d = Self::f32_buf_mut(OP, "dst", dst, n)?;
        if n > 0 {
            self.stream.memcpy_htod(data, d).map_err(drv("upload"))?;
        }
        Ok(())
    }

    /// Copies `m` into the existing host slice `out` (same number of elements; bf16 values
    /// are widened). Waits for the copy.
    ///
    /// # Errors
    /// [`Error::CudaOperand`] for a length mismatch, [`Error::Cuda`].
    pub fn download_into(&self, m: &GpuMatrix, out: &mut [f32]) -> Result<()> {
        if out.len() != m.len() {
            return Err(Error::CudaOperand {
                op: "download_into",
                reason: format!("the host slice has {} elements, the matrix {}", out.len(), m.len()),
            });
        }
        if out.is_empty() {
            return Ok(());
        }
        match &m.data {
            GpuData::F32(s) => self.stream.memcpy_dtoh(s, out).map_err(drv("download"))?,
            GpuData::Bf16(_) => out.copy_from_slice(&self.download(m)?),
        }
        self.synchronize()
    }

    /// Device-to-device copy of `src` into `dst` (same number of elements, both f32 or both
    /// bf16); `dst` keeps its `rows × cols` view.
    ///
    /// # Errors
    /// [`Error::CudaOperand`], [`Error::Cuda`].
    pub fn copy(&self, src: &GpuMatrix, dst: &mut GpuMatrix) -> Result<()> {
        const OP: &str = "copy";
        Self::same_len(OP, src.len(), &[("dst", dst)])?;
        if src.is_empty() {
            return Ok(());
        }
        match (&src.data, &mut dst.data) {
            (GpuData::F32(s), GpuData::F32(d)) => self.stream.memcpy_dtod(s, d),
            (GpuData::Bf16(s), GpuData::Bf16(d)) => self.stream.memcpy_dtod(s, d),
            _ => {
                return Err(Error::CudaOperand {
                    op: OP,
                    reason: "`src` and `dst` must both be f32 or both bf16".to_string(),
                })
            }
        }
        .map_err(drv("copy"))
    }

    /// Copies a block of columns between two row-major f32 matrices with the same number of
    /// rows: `dst[r, dst_col + j] = src[r, src_col + j]` (`Beta::Zero`, the block is not read)
    /// or `+=` (`Beta::One`) for `j < cols`; the other columns of `dst` are untouched. Slices a
    /// time step `(m, d)` out of a sequence `(m, T·d)` and places its gradient back.
    ///
    /// # Errors
    /// [`Error::CudaOperand`] when the rows differ or a column range leaves its matrix,
    /// [`Error::Cuda`].
    pub fn copy_columns(
        &self,
        src: &GpuMatrix,
        src_col: usize,
        dst: &mut GpuMatrix,
        dst_col: usize,
        cols: usize,
        beta: Beta,
    ) -> Result<()> {
        const OP: &str = "copy_columns";
        let rows = src.rows;
        let (src_ld, dst_ld) = (src.cols, dst.cols);
        if dst.rows != rows
            || src_col.checked_add(cols).is_none_or(|e| e > src_ld)
            || dst_col.checked_add(cols).is_none_or(|e| e > dst_ld)
        {
            return Err(Error::CudaOperand {
                op: OP,
                reason: format!(
                    "columns {src_col}..+{cols} of a {rows}x{src_ld} `src` into columns {dst_col}..+{cols} of a {}x{dst_ld} `dst`",
                    dst.rows
                ),
            });
        }
        let ss = Self::f32_buf(OP, "src", src, rows * src_ld)?;
        let ds = Self::f32_buf_mut(OP, "dst", dst, rows * dst_ld)?;
        let n = rows * cols;
        if n == 0 {
            return Ok(());
        }
        i32_dim(OP, n)?;
        let (ri, sl, sc) = (i32_dim(OP, rows)?, i32_dim(OP, src_ld)?, i32_dim(OP, src_col)?);
        let (dl, dc, ci) = (i32_dim(OP, dst_ld)?, i32_dim(OP, dst_col)?, i32_dim(OP, cols)?);
        let b = beta_f32(beta);
        let f = self.train_fn("copy_cols")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(ss)
            .arg(ds)
            .arg(&ri)
            .arg(&sl)
            .arg(&sc)
            .arg(&dl)
            .arg(&dc)
            .arg(&ci)
            .arg(&b);
        // SAFETY: copy_cols(src, dst, rows, src_ld, src_col, dst_ld, dst_col, cols, beta); the
        // column ranges were checked to lie inside both matrices, whose lengths were checked.
        unsafe { lb.launch(Self::cfg_stride(n)) }.map_err(drv("launch copy_cols"))?;
        Ok(())
    }
}

/// [`MemoryOps`] on the device: the erased handles unwrapped, then the typed methods above.
impl MemoryOps for CudaDevice {
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
}
