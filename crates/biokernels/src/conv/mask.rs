//! `ConvMask`: a convolution mask compiled into one tile map per group.

use super::skip::{SkipCache, SkipLists};
use crate::device::DeviceCopies;
use crate::error::{Error, Result};
use crate::tile_map::{TileMap, TileSize};

/// A 0/1 convolution mask compiled for the GEMM: one [`TileMap`] per group.
///
/// The mask has the Keras kernel shape `(kh, kw, nx, ny)` (`biomask::Mask::keras_values()`
/// order) with `nx` = input channels per group and `ny` = all output channels, both on the
/// *convolution* side: for a transposed convolution `nx` is the layer's output channels per
/// group and `ny` its input channels, exactly what `biomask::MaskSpec::conv_transpose` builds.
///
/// Group `g` uses the output channels `g·ny/groups .. (g+1)·ny/groups`; its map has shape
/// `(kh·kw·nx, ny/groups)` with rows ordered `(i, j, c)` (tap row, tap column, channel), the
/// `(k, n)` operand of the masked GEMM. A channel mask shared by all taps is repeated `kh·kw`
/// times down the rows, so a band or 2d mask keeps its empty tiles and the kernels still skip
/// them; a per-tap (`individual`) mask is compiled as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvMask {
    kernel: (usize, usize),
    nx: usize,
    ny: usize,
    groups: usize,
    tile: TileSize,
    maps: Vec<TileMap>,
    ones: usize,
    /// This mask's uploaded conv tile lists (see [`ConvMask::device_copies`]).
    device_copies: DeviceCopies,
    /// The kept reduction indices of its register blocks for the direct kernels, built on
    /// first use (see [`super::skip`]).
    skip: SkipCache,
}

const OP: &str = "ConvMask";

fn geometry(reason: String) -> Error {
    Error::ConvGeometry { op: OP, reason }
}

impl ConvMask {
    /// The copies of this mask uploaded to devices, owned by the mask and freed with it (one
    /// per device and layer geometry, through [`DeviceCopies::get_or_upload`]).
    pub fn device_copies(&self) -> &DeviceCopies {
        &self.device_copies
    }

    /// Compiles a `biomask` conv or transposed-conv mask (a dense mask is taken as a `1 × 1`
    /// kernel) for a layer with `groups` groups.
    ///
    /// # Errors
    /// [`Error::NonBinaryForm`] for `gaussian`, [`Error::ConvGeometry`] if `groups` is 0 or does
    /// not divide `ny`, [`Error::InvalidTileSize`].
    pub fn from_mask(mask: &biomask::Mask, groups: usize, tile: TileSize) -> Result<Self> {
        if !mask.is_binary() {
            return Err(Error::NonBinaryForm {
                form: mask.form().name(),
            });
        }
        let values = mask.keras_values();
        Self::from_values(&values, mask.kernel_size(), mask.nx(), mask.ny(), groups, tile)
    }

    /// Compiles a row-major Keras-order `(kh, kw, nx, ny)` 0/1 mask.
    ///
    /// # Errors
    /// [`Error::ConvGeometry`] for a zero size or `groups` not dividing `ny`,
    /// [`Error::BufferSize`] if `values.len() != kh·kw·nx·ny` (reported as a
    /// `(kh·kw·nx, ny)` matrix), [`Error::NonBinaryMask`] (with the same row/column
    /// convention), [`Error::InvalidTileSize`].
    pub fn from_values(
        values: &[f32],
        kernel: (usize, usize),
        nx: usize,
        ny: usize,
        groups: usize,
        tile: TileSize,
    ) -> Result<Self> {
        let rows = Self::check_dims(kernel, nx, ny, groups)?;
        let len = rows.checked_mul(ny).ok_or(Error::SizeOverflow { rows, cols: ny })?;
        if values.len() != len {
            return Err(Error::BufferSize {
                rows,
                cols: ny,
                len: values.len(),
            });
        }
        if let Some(i) = values.iter().position(|&v| v != 0.0 && v != 1.0) {
            return Err(Error::NonBinaryMask {
                row: i / ny,
                col: i % ny,
                value: values[i],
            });
        }
        Self::build(kernel, nx, ny, groups, tile, |r, c| values[r * ny + c] != 0.0)
    }

    /// The mask that keeps everything (a plain convolution through the masked path).
    ///
    /// # Errors
    /// As [`ConvMask::from_values`].
    pub fn full(kernel: (usize, usize), nx: usize, ny: usize, groups: usize, tile: TileSize) -> Result<Self> {
        Self::check_dims(kernel, nx, ny, groups)?;
        Self::build(kernel, nx, ny, groups, tile, |_, _| true)
    }

    /// `kh·kw·nx`, after checking the sizes.
    fn check_dims(kernel: (usize, usize), nx: usize, ny: usize, groups: usize) -> Result<usize> {
        if kernel.0 == 0 || kernel.1 == 0 || nx == 0 || ny == 0 || groups == 0 {
            return Err(geometry(format!(
                "kernel {kernel:?}, nx = {nx}, ny = {ny}, groups = {groups}: every size must be >= 1"
            )));
        }
        if !ny.is_multiple_of(groups) {
            return Err(geometry(format!(
                "ny = {ny} output channels are not divisible by groups = {groups}"
            )));
        }
        let taps = kernel.0.checked_mul(kernel.1).ok_or(Error::SizeOverflow {
            rows: kernel.0,
            cols: kernel.1,
        })?;
        taps.checked_mul(nx).ok_or(Error::SizeOverflow { rows: taps, cols: nx })
    }

    fn build(
        kernel: (usize, usize),
        nx: usize,
        ny: usize,
        groups: usize,
        tile: TileSize,
        keep: impl Fn(usize, usize) -> bool,
    ) -> Result<Self> {
        let rows = kernel.0 * kernel.1 * nx;
        let cg = ny / groups;
        let maps = (0..groups)
            .map(|g| TileMap::from_fn(rows, cg, tile, |r, c| keep(r, g * cg + c)))
            .collect::<Result<Vec<_>>>()?;
        let ones = maps.iter().map(TileMap::num_ones).sum();
        Ok(ConvMask {
            kernel,
            nx,
            ny,
            groups,
            tile,
            maps,
            ones,
            device_copies: DeviceCopies::default(),
            skip: SkipCache::default(),
        })
    }

    /// `(kh, kw)`.
    pub fn kernel(&self) -> (usize, usize) {
        self.kernel
    }
    /// Input channels per group (convolution side).
    pub fn nx(&self) -> usize {
        self.nx
    }
    /// Output channels, all groups (convolution side).
    pub fn ny(&self) -> usize {
        self.ny
    }
    /// Number of groups.
    pub fn groups(&self) -> usize {
        self.groups
    }
    /// `[kh, kw, nx, ny, groups]`, as in [`Error::ConvMaskMismatch`].
    pub fn dims(&self) -> [usize; 5] {
        [self.kernel.0, self.kernel.1, self.nx, self.ny, self.groups]
    }
    /// The tile size the maps were built for.
    pub fn tile_size(&self) -> TileSize {
        self.tile
    }
    /// The tile maps, one per group, each `(kh·kw·nx, ny/groups)`.
    pub fn maps(&self) -> &[TileMap] {
        &self.maps
    }
    /// The tile map of group `g`; `None` past the last group.
    pub fn group(&self, g: usize) -> Option<&TileMap> {
        self.maps.get(g)
    }
    /// Whether weight `(i, j, x, y)` (Keras kernel index) is kept; `false` outside the mask.
    pub fn get(&self, i: usize, j: usize, x: usize, y: usize) -> bool {
        let (kh, kw) = self.kernel;
        if i >= kh || j >= kw || x >= self.nx || y >= self.ny {
            return false;
        }
        let cg = self.ny / self.groups;
        self.maps[y / cg].get((i * kw + j) * self.nx + x, y % cg)
    }
    /// The mask as Keras-order `(kh, kw, nx, ny)` 0/1 values.
    pub fn to_keras_values(&self) -> Vec<f32> {
        let (kh, kw) = self.kernel;
        let mut out = Vec::with_capacity(kh * kw * self.nx * self.ny);
        for i in 0..kh {
            for j in 0..kw {
                for x in 0..self.nx {
                    for y in 0..self.ny {
                        out.push(if self.get(i, j, x, y) { 1.0 } else { 0.0 });
                    }
                }
            }
        }
        out
    }
    /// Number of kept weights.
    pub fn num_ones(&self) -> usize {
        self.ones
    }
    /// Fraction of kept weights.
    pub fn density(&self) -> f64 {
        self.ones as f64 / (self.kernel.0 * self.kernel.1 * self.nx * self.ny) as f64
    }
    /// The block lists of the skipping direct kernels (built once, on first use); `None`
    /// for a grouped mask.
    pub(crate) fn skip_lists(&self) -> Option<&SkipLists> {
        self.skip.get(self)
    }
    /// The fraction of the dense GEMM work left after tile skipping (see
    /// [`TileMap::work_fraction`]), averaged over the groups.
    pub fn work_fraction(&self) -> f64 {
        self.maps.iter().map(TileMap::work_fraction).sum::<f64>() / self.groups as f64
    }
}
