//! Sparse linear maps per plane (`plane_map` of `kernels/train/train.cu`): the tape's upsampling
//! and transposes, forward and backward (the adjoint map). Formula and sum order in
//! [`crate::device::resample`].

use super::*;

/// A [`PlaneMap`] on the device: the compressed rows as i32 (each list at least one entry: the
/// driver does not allocate zero bytes).
#[derive(Debug)]
pub struct GpuPlaneMap {
    in_len: usize,
    out_len: usize,
    offsets: CudaSlice<i32>,
    sources: CudaSlice<i32>,
    weights: CudaSlice<f32>,
}

impl CudaDevice {
    /// Uploads `map`.
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn upload_plane_map(&self, map: &PlaneMap) -> Result<GpuPlaneMap> {
        const OP: &str = "upload plane map";
        let (mut sources, mut weights) = (map.sources().to_vec(), map.weights().to_vec());
        if sources.is_empty() {
            sources.push(0);
            weights.push(0.0);
        }
        Ok(GpuPlaneMap {
            in_len: map.in_len(),
            out_len: map.out_len(),
            offsets: self.stream.clone_htod(map.offsets()).map_err(drv(OP))?,
            sources: self.stream.clone_htod(&sources).map_err(drv(OP))?,
            weights: self.stream.clone_htod(&weights).map_err(drv(OP))?,
        })
    }

    /// `y = M x` for every plane of `x` (see [`crate::device::resample`]).
    ///
    /// # Errors
    /// [`Error::CudaOperand`] for lengths that are not whole planes of the map, sizes beyond
    /// i32; [`Error::Cuda`].
    pub fn plane_map(&self, map: &GpuPlaneMap, x: &GpuMatrix, y: &mut GpuMatrix) -> Result<()> {
        const OP: &str = "plane_map";
        if x.is_empty() || !x.len().is_multiple_of(map.in_len) {
            return Err(Error::CudaOperand {
                op: OP,
                reason: format!("`x` has {} values, not whole planes of {}", x.len(), map.in_len),
            });
        }
        let planes = x.len() / map.in_len;
        let out_len = planes.checked_mul(map.out_len).ok_or(Error::CudaOperand {
            op: OP,
            reason: format!("{planes} planes of {} overflow", map.out_len),
        })?;
        let xs = Self::f32_buf(OP, "x", x, x.len())?;
        let ys = Self::f32_buf_mut(OP, "y", y, out_len)?;
        let (p, i, o) = (
            i32_dim(OP, planes)?,
            i32_dim(OP, map.in_len)?,
            i32_dim(OP, map.out_len)?,
        );
        let f = self.train_fn("plane_map")?;
        let mut lb = self.stream.launch_builder(&f);
        lb.arg(xs)
            .arg(ys)
            .arg(&map.offsets)
            .arg(&map.sources)
            .arg(&map.weights)
            .arg(&p)
            .arg(&i)
            .arg(&o);
        // SAFETY: plane_map(x, y, off, src, w, planes, in_len, out_len) with x of planes·in_len
        // and y of planes·out_len f32 (checked above); off has out_len + 1 entries and every src
        // is below in_len (PlaneMap::new checks both), so every read stays inside its plane.
        unsafe { lb.launch(Self::cfg_stride(out_len)) }.map_err(drv("launch plane_map"))?;
        Ok(())
    }
}

/// [`ResampleOps`] on the device: the erased handles unwrapped, then the typed methods above.
impl ResampleOps for CudaDevice {
    fn upload_plane_map(&self, map: &PlaneMap) -> Result<DevicePlaneMap> {
        Ok(self.live.opaque(CudaDevice::upload_plane_map(self, map)?))
    }

    fn plane_map(&self, map: &DevicePlaneMap, x: &DeviceMatrix, y: &mut DeviceMatrix) -> Result<()> {
        const OP: &str = "plane_map";
        let m = map.value::<GpuPlaneMap>(OP)?;
        CudaDevice::plane_map(self, m, gpu(OP, x)?, gpu_mut(OP, y)?)
    }
}
