//! The CUDA side of the tape: opening devices once per process, the device buffer of a
//! [`Storage::Cuda`](crate::Storage::Cuda) tensor, and the small device helpers the ops share.
//!
//! A CUDA tensor is an `f32` buffer on one device ([`CudaBuffer`]: the device handle, its
//! ordinal and an `Arc<GpuMatrix>`), shared copy-on-write like the CPU `Arc<Vec<T>>`: cloning a
//! tensor into the tape is cheap, and an optimiser gets the buffer mutably once the tape is gone
//! (a device copy is made first if another tensor still shares it).
//!
//! The kernels check the `rows × cols` of some operands (GEMMs, softmax cross-entropy, bias
//! gradients), so every buffer is allocated as the matrix `(shape[0], Π shape[1..])` (a rank-1
//! `(n)` is `(1, n)`, a scalar `(1, 1)`); [`CudaBuffer::view`] gives another `rows × cols` (a
//! device copy when it differs), which is what a metadata-only `reshape` costs when a kernel
//! later needs the new dims.
//!
//! Without the `cuda` feature the `biokernels` dummy backend has the same API with uninhabited
//! types: this module compiles unchanged and [`device`] returns [`Error::CudaUnavailable`].
//! With the feature and no driver it returns [`Error::NoCudaDevice`] (never a panic).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use biokernels::cuda::{CudaDevice, DeviceConvMask, DeviceTileMap, GemmOp, GpuMatrix, Precision, GPU_TILE};
use biokernels::gemm::Beta;
use biokernels::{ConvMask, TileMap, TileSize};

use crate::error::{Error, Result};
use crate::tensor::Device;

type DeviceSlot = std::result::Result<Arc<CudaDevice>, Error>;

fn registry() -> &'static Mutex<HashMap<usize, DeviceSlot>> {
    static DEVICES: OnceLock<Mutex<HashMap<usize, DeviceSlot>>> = OnceLock::new();
    DEVICES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// CUDA device `ordinal`, opened on first use and shared by every tensor of the process (the
/// outcome, a device or the error, is cached: a machine without a GPU is probed once).
///
/// # Errors
/// [`Error::CudaUnavailable`] without the `cuda` feature, [`Error::NoCudaDevice`] when the
/// build has it but the device cannot be used.
pub fn device(ordinal: usize) -> Result<Arc<CudaDevice>> {
    let mut map = registry().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    map.entry(ordinal)
        .or_insert_with(|| {
            CudaDevice::new(ordinal)
                .map(Arc::new)
                .map_err(|e| match Error::from(e) {
                    Error::NoCudaDevice { reason, .. } => Error::NoCudaDevice { ordinal, reason },
                    other => other,
                })
        })
        .clone()
}

static DEFAULT_PRECISION: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets the GPU precision new graphs start with ([`crate::Graph::gpu_precision`]; `F32` until
/// set), for code that builds its graphs itself (e.g. `biolayers::train::train_step`).
///
/// # Errors
/// [`Error::InvalidArgument`] for `Bf16` (CUDA tensors are f32 buffers).
pub fn set_default_precision(precision: Precision) -> Result<()> {
    let code = match precision {
        Precision::F32 => 0,
        Precision::Tf32 => 1,
        Precision::Bf16 => {
            return Err(Error::InvalidArgument {
                op: "set_default_precision",
                what: "bf16 needs bf16 operands; tensors on CUDA are f32 (use F32 or Tf32)".into(),
            })
        }
    };
    DEFAULT_PRECISION.store(code, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The precision new graphs start with (see [`set_default_precision`]).
pub fn default_precision() -> Precision {
    match DEFAULT_PRECISION.load(std::sync::atomic::Ordering::Relaxed) {
        1 => Precision::Tf32,
        _ => Precision::F32,
    }
}

/// `true` when CUDA device `ordinal` can be used by this build on this machine.
pub fn is_available(ordinal: usize) -> bool {
    device(ordinal).is_ok()
}

/// The `rows × cols` a tensor of `shape` is stored as: `(shape[0], Π shape[1..])`, `(1, n)`
/// for a rank-1 tensor, `(1, 1)` for a scalar.
pub(crate) fn mat_dims(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (1, *n),
        [r, rest @ ..] => (*r, rest.iter().product()),
    }
}

/// The values of a CUDA tensor: an `f32` matrix on one device, shared copy-on-write.
#[derive(Clone)]
pub struct CudaBuffer {
    ordinal: usize,
    dev: Arc<CudaDevice>,
    mat: Arc<GpuMatrix>,
}

impl std::fmt::Debug for CudaBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBuffer")
            .field("ordinal", &self.ordinal)
            .field("rows", &self.mat.rows())
            .field("cols", &self.mat.cols())
            .finish()
    }
}

impl CudaBuffer {
    /// Uploads `data` as a `rows × cols` f32 matrix to device `ordinal`.
    pub(crate) fn upload(ordinal: usize, data: &[f32], rows: usize, cols: usize) -> Result<Self> {
        let dev = device(ordinal)?;
        let mat = dev.upload(data, rows, cols, Precision::F32)?;
        Ok(CudaBuffer {
            ordinal,
            dev,
            mat: Arc::new(mat),
        })
    }

    /// A new buffer on the same device.
    pub(crate) fn wrap(&self, mat: GpuMatrix) -> Self {
        CudaBuffer {
            ordinal: self.ordinal,
            dev: self.dev.clone(),
            mat: Arc::new(mat),
        }
    }

    /// Zeros with this buffer's dims on its device (e.g. an optimizer's state).
    ///
    /// # Errors
    /// Kernel errors.
    pub fn zeros_like(&self) -> Result<Self> {
        self.zeros_like_dims(self.mat.rows(), self.mat.cols())
    }

    /// `rows × cols` zeros on the same device.
    pub(crate) fn zeros_like_dims(&self, rows: usize, cols: usize) -> Result<Self> {
        Ok(self.wrap(self.dev.zeros(rows, cols)?))
    }

    /// The device.
    pub fn device(&self) -> Device {
        Device::Cuda(self.ordinal)
    }

    /// The device handle.
    pub fn cuda_device(&self) -> &Arc<CudaDevice> {
        &self.dev
    }

    /// The device matrix.
    pub fn matrix(&self) -> &GpuMatrix {
        &self.mat
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.mat.rows() * self.mat.cols()
    }

    /// `true` when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A host copy of the values.
    ///
    /// # Errors
    /// Kernel errors.
    pub fn download(&self) -> Result<Vec<f32>> {
        Ok(self.dev.download(&self.mat)?)
    }

    /// A private device copy (same dims).
    pub(crate) fn deep_copy(&self) -> Result<Self> {
        let mut out = self.dev.zeros(self.mat.rows(), self.mat.cols())?;
        self.dev.copy(&self.mat, &mut out)?;
        Ok(self.wrap(out))
    }

    /// The matrix, mutable: the buffer itself when no other tensor shares it, otherwise a
    /// device copy first (copy-on-write).
    ///
    /// # Errors
    /// Kernel errors of the copy.
    pub fn matrix_mut(&mut self) -> Result<&mut GpuMatrix> {
        if Arc::get_mut(&mut self.mat).is_none() {
            *self = self.deep_copy()?;
        }
        Arc::get_mut(&mut self.mat).ok_or(Error::UnsupportedOnDevice {
            op: "matrix_mut",
            device: Device::Cuda(self.ordinal),
        })
    }

    /// The same values as a `rows × cols` matrix: this buffer when the dims already match,
    /// otherwise a device copy with the new dims (the kernels check `rows × cols`).
    pub(crate) fn view(&self, rows: usize, cols: usize) -> Result<Self> {
        if self.mat.rows() == rows && self.mat.cols() == cols {
            return Ok(self.clone());
        }
        if rows * cols != self.len() {
            return Err(Error::Reshape {
                op: "cuda view",
                from: vec![self.mat.rows(), self.mat.cols()],
                to: vec![rows, cols],
            });
        }
        let mut out = self.dev.zeros(rows, cols)?;
        self.dev.copy(&self.mat, &mut out)?;
        Ok(self.wrap(out))
    }

    /// `self` as the matrix of `shape` (see [`mat_dims`]).
    pub(crate) fn view_shape(&self, shape: &[usize]) -> Result<Self> {
        let (r, c) = mat_dims(shape);
        self.view(r, c)
    }

    /// `self += other` on the device (gradient accumulation); `self` is copied first if shared.
    pub(crate) fn add_assign(&mut self, other: &CudaBuffer) -> Result<()> {
        let dev = self.dev.clone();
        let other = other.view(self.mat.rows(), self.mat.cols())?;
        dev.axpby(1.0, &other.mat, 1.0, self.matrix_mut()?)?;
        Ok(())
    }

    /// `alpha · self` as a new buffer.
    pub(crate) fn scaled(&self, alpha: f32) -> Result<Self> {
        let mut out = self.dev.zeros(self.mat.rows(), self.mat.cols())?;
        self.dev.axpby(alpha, &self.mat, 0.0, &mut out)?;
        Ok(self.wrap(out))
    }

    /// Device-resident tile lists of a mask, uploaded once per mask (cached by the `Arc`'s
    /// address; the cache keeps the `Arc`, so the address cannot be reused).
    pub(crate) fn tile_map(&self, mask: &Arc<TileMap>) -> Result<Arc<DeviceTileMap>> {
        cached_tile_map(
            self.ordinal,
            &self.dev,
            TileKey::Mask(Arc::as_ptr(mask) as usize),
            || Ok((**mask).clone()),
            Some(mask.clone()),
        )
    }

    /// The tile lists of a full `(k, n)` mask (a dense product on the masked kernels).
    pub(crate) fn full_tile_map(&self, k: usize, n: usize) -> Result<Arc<DeviceTileMap>> {
        cached_tile_map(
            self.ordinal,
            &self.dev,
            TileKey::Full(k, n),
            || Ok(TileMap::full(k, n, TileSize::square(GPU_TILE))?),
            None,
        )
    }

    /// The tile lists of the per-sample permutation of `transpose(shape, a, b)` (built by
    /// `build` on first use only).
    pub(crate) fn permutation_tile_map(
        &self,
        shape: &[usize],
        a: usize,
        b: usize,
        build: impl FnOnce() -> Result<TileMap>,
    ) -> Result<Arc<DeviceTileMap>> {
        let key = TileKey::Permutation {
            shape: shape.to_vec(),
            a,
            b,
        };
        cached_tile_map(self.ordinal, &self.dev, key, build, None)
    }

    /// A constant all-ones `rows × cols` matrix on this device (cached).
    pub(crate) fn ones(&self, rows: usize, cols: usize) -> Result<CudaBuffer> {
        ones(self, rows, cols)
    }

    /// The tile lists of an optional mask: the mask's, or a full `(k, n)` one.
    pub(crate) fn tile_map_or_full(
        &self,
        mask: Option<&Arc<TileMap>>,
        k: usize,
        n: usize,
    ) -> Result<Arc<DeviceTileMap>> {
        match mask {
            Some(m) => self.tile_map(m),
            None => self.full_tile_map(k, n),
        }
    }

    /// The conv tile lists of an optional mask for a layer with mask dims `dims`.
    pub(crate) fn conv_mask(&self, dims: [usize; 5], mask: Option<&Arc<ConvMask>>) -> Result<Arc<DeviceConvMask>> {
        let key = (self.ordinal, dims, mask.map_or(0, |m| Arc::as_ptr(m) as usize));
        let mut cache = conv_cache().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, d)) = cache.get(&key) {
            return Ok(d.clone());
        }
        let d = Arc::new(self.dev.upload_conv_mask(dims, mask.map(|m| &**m))?);
        cache.insert(key, (mask.cloned(), d.clone()));
        Ok(d)
    }

    /// `out (m, n) = a (m, k) · (W ⊙ M)` and the two gradient products on the device, through
    /// the masked kernels (`mask = None`: a full tile map). `a`, `b` are viewed with the dims
    /// the op needs.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gemm(
        op: GemmOp,
        precision: Precision,
        a: &CudaBuffer,
        a_dims: (usize, usize),
        b: &CudaBuffer,
        b_dims: (usize, usize),
        tiles: &DeviceTileMap,
        out: &mut GpuMatrix,
        beta: Beta,
    ) -> Result<()> {
        let a = a.view(a_dims.0, a_dims.1)?;
        let b = b.view(b_dims.0, b_dims.1)?;
        a.dev.masked_gemm(op, precision, &a.mat, &b.mat, tiles, out, beta)?;
        Ok(())
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum TileKey {
    /// A caller's mask, by the address of its `Arc`.
    Mask(usize),
    /// A full `(k, n)` map.
    Full(usize, usize),
    /// The selection map `(rows, cols)` with ones at `(r, c)` where `r = c + offset` (extract
    /// a column block) or `c = r + offset` (place one), see [`select_columns`].
    Select {
        rows: usize,
        cols: usize,
        offset: usize,
        place: bool,
    },
    /// The per-sample permutation of `transpose(shape, a, b)`.
    Permutation { shape: Vec<usize>, a: usize, b: usize },
}

type TileCache = HashMap<(usize, TileKey), (Option<Arc<TileMap>>, Arc<DeviceTileMap>)>;

fn tile_cache() -> &'static Mutex<TileCache> {
    static CACHE: OnceLock<Mutex<TileCache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

type ConvCache = HashMap<(usize, [usize; 5], usize), (Option<Arc<ConvMask>>, Arc<DeviceConvMask>)>;

fn conv_cache() -> &'static Mutex<ConvCache> {
    static CACHE: OnceLock<Mutex<ConvCache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn cached_tile_map(
    ordinal: usize,
    dev: &CudaDevice,
    key: TileKey,
    build: impl FnOnce() -> Result<TileMap>,
    keep: Option<Arc<TileMap>>,
) -> Result<Arc<DeviceTileMap>> {
    let mut cache = tile_cache().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, d)) = cache.get(&(ordinal, key.clone())) {
        return Ok(d.clone());
    }
    let d = Arc::new(dev.upload_tile_map(&build()?)?);
    cache.insert((ordinal, key), (keep, d.clone()));
    Ok(d)
}

/// Constant all-ones matrices (the `W` of the selection products), per device and dims.
fn ones(buf: &CudaBuffer, rows: usize, cols: usize) -> Result<CudaBuffer> {
    type OnesCache = HashMap<(usize, usize, usize), CudaBuffer>;
    static CACHE: OnceLock<Mutex<OnesCache>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(b) = cache.get(&(buf.ordinal, rows, cols)) {
        return Ok(b.clone());
    }
    let b = buf.wrap(buf.dev.filled(rows, cols, 1.0)?);
    cache.insert((buf.ordinal, rows, cols), b.clone());
    Ok(b)
}

/// The mask of [`select_columns`]: `(rows, cols)` with ones at `r = c + start` (extract) or
/// `c = r + start` (place).
pub(crate) fn selection_map(rows: usize, cols: usize, start: usize, place: bool, tile: TileSize) -> Result<TileMap> {
    Ok(TileMap::from_fn(rows, cols, tile, |r, c| {
        if place {
            c == r + start
        } else {
            r == c + start
        }
    })?)
}

/// The `(s, s)` mask of a per-sample permutation: output `c` reads input `src[c]`, so
/// `y = x · (1 ⊙ P)` gathers and `dx = dy · (1 ⊙ P)ᵀ` scatters back.
pub(crate) fn permutation_map(src: &[usize], tile: TileSize) -> Result<TileMap> {
    let s = src.len();
    Ok(TileMap::from_fn(s, s, tile, |r, c| src[c] == r)?)
}

/// Column blocks without a strided-copy kernel: a masked GEMM with an all-ones `W` whose mask
/// is a shifted identity, in exact f32 (each output is one product by 1 plus exact zeros, so
/// the values move bit for bit; masked-off ones are never read).
///
/// - extract (`place = false`): `out (m, len) = x (m, total) · S`, `S[r, c] = [r = c + start]`
///   → `out = x[:, start .. start + len]`;
/// - place (`place = true`): `out (m, total) (+)= x (m, len) · S`, `S[r, c] = [c = r + start]`
///   → `out[:, start .. start + len] (+)= x` (other columns get `+0`, or 0 with `Beta::Zero`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn select_columns(
    x: &CudaBuffer,
    m: usize,
    total: usize,
    start: usize,
    len: usize,
    place: bool,
    out: &mut GpuMatrix,
    beta: Beta,
) -> Result<()> {
    let (rows, cols) = if place { (len, total) } else { (total, len) };
    let key = TileKey::Select {
        rows,
        cols,
        offset: start,
        place,
    };
    let tiles = cached_tile_map(
        x.ordinal,
        &x.dev,
        key,
        || selection_map(rows, cols, start, place, TileSize::square(GPU_TILE)),
        None,
    )?;
    let w = ones(x, rows, cols)?;
    let a_dims = if place { (m, len) } else { (m, total) };
    CudaBuffer::gemm(
        GemmOp::Forward,
        Precision::F32,
        x,
        a_dims,
        &w,
        (rows, cols),
        &tiles,
        out,
        beta,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_dims_follow_the_leading_axis() {
        assert_eq!(mat_dims(&[]), (1, 1));
        assert_eq!(mat_dims(&[7]), (1, 7));
        assert_eq!(mat_dims(&[2, 3]), (2, 3));
        assert_eq!(mat_dims(&[2, 3, 4, 5]), (2, 60));
    }

    /// The selection and permutation masks, run through the CPU masked GEMM (the same
    /// `Y = X(W⊙M)`, `dX = dY(W⊙M)ᵀ` as the device kernels) with an all-ones `W`, move values
    /// exactly where the device paths expect them.
    #[test]
    fn selection_and_permutation_masks_move_values_exactly() {
        use biokernels::gemm::{masked_matmul, masked_matmul_dx, MatMut, MatRef};
        let (m, total, start, len) = (3, 10, 4, 3);
        let x: Vec<f32> = (0..m * total).map(|v| v as f32 * 0.37 - 2.0).collect();
        let mm = |a: &[f32], ar: usize, ac: usize, map: &TileMap, beta: Beta, out: &mut [f32]| {
            let [k, n] = map.shape();
            let ones = vec![1.0f32; k * n];
            let (a, w) = (MatRef::new(a, ar, ac).unwrap(), MatRef::new(&ones, k, n).unwrap());
            masked_matmul(a, w, map, MatMut::new(out, ar, n).unwrap(), beta).unwrap();
        };
        // Extract columns start..start+len.
        let ext = selection_map(total, len, start, false, TileSize::CPU_DEFAULT).unwrap();
        let mut out = vec![f32::NAN; m * len];
        mm(&x, m, total, &ext, Beta::Zero, &mut out);
        for r in 0..m {
            for c in 0..len {
                assert_eq!(out[r * len + c].to_bits(), x[r * total + start + c].to_bits());
            }
        }
        // Place them back into zeros, accumulating (Beta::One): the other columns stay 0.
        let plc = selection_map(len, total, start, true, TileSize::CPU_DEFAULT).unwrap();
        let mut back = vec![0.0f32; m * total];
        mm(&out, m, len, &plc, Beta::One, &mut back);
        for r in 0..m {
            for c in 0..total {
                let want = if (start..start + len).contains(&c) {
                    x[r * total + c]
                } else {
                    0.0
                };
                assert_eq!(back[r * total + c].to_bits(), want.to_bits());
            }
        }
        // A permutation: NCHW → NHWC of one (C=2, H=2, W=3) sample, gathered and scattered back.
        let (c, h, w) = (2, 2, 3);
        let s = c * h * w;
        let src: Vec<usize> = (0..s)
            .map(|o| {
                let (p, ch) = (o / c, o % c);
                ch * h * w + p
            })
            .collect();
        let perm = permutation_map(&src, TileSize::CPU_DEFAULT).unwrap();
        let xs: Vec<f32> = (0..2 * s).map(|v| v as f32 + 0.5).collect();
        let mut y = vec![f32::NAN; 2 * s];
        mm(&xs, 2, s, &perm, Beta::Zero, &mut y);
        for n in 0..2 {
            for o in 0..s {
                assert_eq!(y[n * s + o], xs[n * s + src[o]]);
            }
        }
        let ones = vec![1.0f32; s * s];
        let mut dx = vec![f32::NAN; 2 * s];
        masked_matmul_dx(
            MatRef::new(&y, 2, s).unwrap(),
            MatRef::new(&ones, s, s).unwrap(),
            &perm,
            MatMut::new(&mut dx, 2, s).unwrap(),
            Beta::Zero,
        )
        .unwrap();
        assert_eq!(dx, xs);
    }

    #[test]
    fn a_missing_device_is_a_typed_error_and_cached() {
        match device(0) {
            Ok(_) => {} // a GPU machine
            Err(e) => {
                #[cfg(not(feature = "cuda"))]
                assert_eq!(e, Error::CudaUnavailable);
                #[cfg(feature = "cuda")]
                assert!(matches!(e, Error::NoCudaDevice { ordinal: 0, .. }), "{e:?}");
                assert!(e.is_no_cuda());
                // The second request answers from the cache with the same error.
                assert_eq!(device(0).unwrap_err(), e);
                assert!(!is_available(0));
            }
        }
        // An ordinal that no machine here has names itself in the error.
        if let Err(Error::NoCudaDevice { ordinal, .. }) = device(7) {
            assert_eq!(ordinal, 7);
        }
    }
}
