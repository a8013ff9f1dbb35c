//! The device copies of masks. A caller's mask ([`TileMap`], [`ConvMask`]) owns its uploaded
//! copy ([`biokernels::device::DeviceCopies`], one per device): it is uploaded on first use and
//! freed with the mask, so a sweep that builds and drops many masked models does not keep their
//! masks on the device. The constant maps this crate makes itself (a full `(k, n)` map, the
//! plane maps of a transpose or an upsampling and their adjoints, an all-ones matrix, an
//! unmasked conv's lists) are cached per device and dims: their number is bounded by the shapes
//! a process uses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use biokernels::cuda::GPU_TILE;
use biokernels::device::{DeviceConv, DevicePlaneMap, DeviceTiles, PlaneMap};
use biokernels::{ConvMask, TileMap, TileSize};

use super::CudaBuffer;
use crate::error::Result;

/// What a constant device map is cached under (with the device's ordinal).
#[derive(Clone, PartialEq, Eq, Hash)]
enum ConstKey {
    /// A full `(k, n)` map.
    Full(usize, usize),
    /// A plane map (`adjoint`: its backward).
    Plane { key: PlaneKey, adjoint: bool },
    /// The lists of an unmasked conv layer with mask dims `[kh, kw, nx, ny, groups]`.
    UnmaskedConv([usize; 5]),
}

/// What a plane map is made for.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum PlaneKey {
    /// `transpose(shape, a, b)`.
    Transpose { shape: Vec<usize>, a: usize, b: usize },
    /// `upsample2d` of `(h, w)` planes by `factor`, bilinear or nearest.
    Upsample {
        hw: (usize, usize),
        factor: (usize, usize),
        bilinear: bool,
    },
}

type ConstCache = HashMap<(usize, ConstKey), Arc<DeviceTiles>>;

/// The constant map under `key` on `buf`'s device, made by `upload` on first use.
fn cached(buf: &CudaBuffer, key: ConstKey, upload: impl FnOnce() -> Result<DeviceTiles>) -> Result<Arc<DeviceTiles>> {
    static CACHE: OnceLock<Mutex<ConstCache>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = (buf.ordinal, key);
    if let Some(d) = cache.get(&key) {
        return Ok(d.clone());
    }
    let d = Arc::new(upload()?);
    cache.insert(key, d.clone());
    Ok(d)
}

/// The key of a mask's device copy on device `ordinal` (a tile map has no layer dims).
fn copy_key(ordinal: usize, dims: [usize; 5]) -> (usize, [usize; 5]) {
    (ordinal, dims)
}

impl CudaBuffer {
    /// Device-resident tile lists of a mask, uploaded once per mask and device and owned by
    /// the mask.
    pub(crate) fn tile_map(&self, mask: &TileMap) -> Result<Arc<DeviceTiles>> {
        let dev = self.backend();
        Ok(mask
            .device_copies()
            .get_or_upload(copy_key(self.ordinal, [0; 5]), || dev.upload_tile_map(mask))?)
    }

    /// The tile lists of a full `(k, n)` mask (a dense product on the masked kernels).
    pub(crate) fn full_tile_map(&self, k: usize, n: usize) -> Result<Arc<DeviceTiles>> {
        cached(self, ConstKey::Full(k, n), || {
            let map = TileMap::full(k, n, TileSize::square(GPU_TILE))?;
            Ok(self.backend().upload_tile_map(&map)?)
        })
    }

    /// The plane map under `key` and its adjoint (the backward) on this device, built by
    /// `build` on first use only.
    pub(crate) fn plane_maps(
        &self,
        key: PlaneKey,
        build: impl Fn() -> Result<PlaneMap>,
    ) -> Result<[Arc<DevicePlaneMap>; 2]> {
        let mut host = None;
        let forward = cached(
            self,
            ConstKey::Plane {
                key: key.clone(),
                adjoint: false,
            },
            || {
                let m = build()?;
                let d = self.backend().upload_plane_map(&m)?;
                host = Some(m);
                Ok(d)
            },
        )?;
        let adjoint = cached(self, ConstKey::Plane { key, adjoint: true }, || {
            let m = match host.take() {
                Some(m) => m,
                None => build()?,
            };
            Ok(self.backend().upload_plane_map(&m.adjoint())?)
        })?;
        Ok([forward, adjoint])
    }

    /// The tile lists of an optional mask: the mask's, or a full `(k, n)` one.
    pub(crate) fn tile_map_or_full(&self, mask: Option<&Arc<TileMap>>, k: usize, n: usize) -> Result<Arc<DeviceTiles>> {
        match mask {
            Some(m) => self.tile_map(m),
            None => self.full_tile_map(k, n),
        }
    }

    /// The conv tile lists of an optional mask for a layer with mask dims `dims` (a mask's
    /// copy is owned by the mask, one per device and dims).
    pub(crate) fn conv_mask(&self, dims: [usize; 5], mask: Option<&Arc<ConvMask>>) -> Result<Arc<DeviceConv>> {
        let dev = self.backend();
        match mask {
            Some(m) => Ok(m
                .device_copies()
                .get_or_upload(copy_key(self.ordinal, dims), || dev.upload_conv_mask(dims, Some(m)))?),
            None => cached(self, ConstKey::UnmaskedConv(dims), || {
                Ok(dev.upload_conv_mask(dims, None)?)
            }),
        }
    }

    /// A constant all-ones `rows × cols` matrix on this device (cached).
    pub(crate) fn ones(&self, rows: usize, cols: usize) -> Result<CudaBuffer> {
        type OnesCache = HashMap<(usize, usize, usize), CudaBuffer>;
        static CACHE: OnceLock<Mutex<OnesCache>> = OnceLock::new();
        let mut cache = CACHE
            .get_or_init(|| Mutex::new(HashMap::new()))
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = cache.get(&(self.ordinal, rows, cols)) {
            return Ok(b.clone());
        }
        let b = self.filled(rows, cols, 1.0)?;
        cache.insert((self.ordinal, rows, cols), b.clone());
        Ok(b)
    }
}
