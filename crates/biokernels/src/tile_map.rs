//! The tile map: a 0/1 mask compiled once into empty / full / partial tiles.
//!
//! A mask `M` of shape `(rows, cols)` (for a dense layer `rows = k` input units `x` and
//! `cols = n` output units `y`, row-major, i.e. `biomask::Mask::channel_values()` order
//! `M[x * n + y]`) is cut into `tile.rows × tile.cols` tiles. Each tile is
//!
//! - [`TileKind::Empty`]: every entry is 0; kernels skip it entirely,
//! - [`TileKind::Full`]: every entry is 1; kernels run the dense micro-kernel,
//! - [`TileKind::Partial`]: a mix; its bit pattern is stored (one row of `words_per_row` `u64`
//!   words per tile row, bit `c % 64` of word `c / 64` is entry `(r, c)` of the tile).
//!
//! Tiles on the right and bottom border may be smaller than the tile size; their kind only
//! looks at the entries inside the matrix, and the bits outside are 0.
//!
//! The tile size is a kernel parameter, not a mask property: a CPU kernel and a CUDA kernel may
//! build different maps from the same mask. The map is stored as flat arrays
//! ([`TileMap::kinds`], [`TileMap::partial_slots`], [`TileMap::bits`]) so that a GPU backend
//! can upload it as is.
//!
//! # Shapes
//! - mask: `(rows, cols)`, row-major;
//! - tile grid: `(ceil(rows / tile.rows), ceil(cols / tile.cols))`, row-major.

use crate::device::DeviceCopies;
use crate::error::{Error, Result};

/// The shape of one tile: `rows` along the mask's first axis (`k`, inputs), `cols` along the
/// second (`n`, outputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileSize {
    /// Tile extent along the mask rows (`k`).
    pub rows: usize,
    /// Tile extent along the mask columns (`n`).
    pub cols: usize,
}

impl TileSize {
    /// The tile size the CPU kernels use by default, 16 × 16: fine enough that band masks lose
    /// little to tile rounding, coarse enough that the map stays small.
    pub const CPU_DEFAULT: TileSize = TileSize { rows: 16, cols: 16 };

    /// A `rows × cols` tile.
    pub const fn new(rows: usize, cols: usize) -> Self {
        TileSize { rows, cols }
    }

    /// A square `t × t` tile.
    pub const fn square(t: usize) -> Self {
        TileSize { rows: t, cols: t }
    }
}

impl Default for TileSize {
    fn default() -> Self {
        TileSize::CPU_DEFAULT
    }
}

/// What a tile holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TileKind {
    /// All entries 0: skipped.
    Empty = 0,
    /// All entries 1: dense micro-kernel.
    Full = 1,
    /// Some 0 and some 1: its bit pattern is stored.
    Partial = 2,
}

/// Marks a tile without a bit block in [`TileMap::partial_slots`].
pub const NO_SLOT: u32 = u32::MAX;

/// A 0/1 mask compiled into tiles. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileMap {
    rows: usize,
    cols: usize,
    tile: TileSize,
    grid_rows: usize,
    grid_cols: usize,
    kinds: Vec<TileKind>,
    slots: Vec<u32>,
    words_per_row: usize,
    bits: Vec<u64>,
    ones: usize,
    /// This mask's uploaded tile lists (see [`TileMap::device_copies`]).
    device_copies: DeviceCopies,
}

fn checked_len(rows: usize, cols: usize) -> Result<usize> {
    rows.checked_mul(cols).ok_or(Error::SizeOverflow { rows, cols })
}

impl TileMap {
    /// The copies of this mask uploaded to devices, owned by the mask and freed with it (a
    /// device caller uploads through [`DeviceCopies::get_or_upload`], once per device).
    pub fn device_copies(&self) -> &DeviceCopies {
        &self.device_copies
    }

    /// Builds the map of a row-major `(rows, cols)` mask whose values are exactly 0 or 1.
    ///
    /// # Errors
    /// [`Error::BufferSize`] if `values.len() != rows * cols`, [`Error::InvalidTileSize`] for a
    /// zero tile side, [`Error::NonBinaryMask`] for any value other than 0 or 1.
    pub fn from_values(values: &[f32], rows: usize, cols: usize, tile: TileSize) -> Result<Self> {
        let len = checked_len(rows, cols)?;
        if values.len() != len {
            return Err(Error::BufferSize {
                rows,
                cols,
                len: values.len(),
            });
        }
        if let Some(i) = values.iter().position(|&v| v != 0.0 && v != 1.0) {
            return Err(Error::NonBinaryMask {
                row: i / cols,
                col: i % cols,
                value: values[i],
            });
        }
        Self::from_fn(rows, cols, tile, |r, c| values[r * cols + c] != 0.0)
    }

    /// Builds the map of a row-major `(rows, cols)` boolean mask.
    ///
    /// # Errors
    /// As [`TileMap::from_values`], without the binary check.
    pub fn from_bools(values: &[bool], rows: usize, cols: usize, tile: TileSize) -> Result<Self> {
        let len = checked_len(rows, cols)?;
        if values.len() != len {
            return Err(Error::BufferSize {
                rows,
                cols,
                len: values.len(),
            });
        }
        Self::from_fn(rows, cols, tile, |r, c| values[r * cols + c])
    }

    /// The map of the mask that keeps everything (the dense case).
    ///
    /// # Errors
    /// [`Error::InvalidTileSize`], [`Error::SizeOverflow`].
    pub fn full(rows: usize, cols: usize, tile: TileSize) -> Result<Self> {
        Self::from_fn(rows, cols, tile, |_, _| true)
    }

    /// Builds the map of a `biomask` mask from its `(nx, ny)` channel mask (`x` = input unit =
    /// row, `y` = output unit = column).
    ///
    /// # Errors
    /// [`Error::PerTapMask`] when the conv mask differs between spatial taps (`individual`),
    /// [`Error::NonBinaryForm`] for `gaussian`, and the errors of [`TileMap::from_values`].
    pub fn from_mask(mask: &biomask::Mask, tile: TileSize) -> Result<Self> {
        if !mask.is_binary() {
            return Err(Error::NonBinaryForm {
                form: mask.form().name(),
            });
        }
        let values = match mask.channel_values() {
            Some(v) => v,
            None => {
                let (kh, kw) = mask.kernel_size();
                return Err(Error::PerTapMask {
                    form: mask.form().name(),
                    taps: kh * kw,
                });
            }
        };
        Self::from_values(values, mask.nx(), mask.ny(), tile)
    }

    /// Builds the map from a predicate `keep(row, col)`.
    ///
    /// # Errors
    /// [`Error::InvalidTileSize`], [`Error::SizeOverflow`].
    pub fn from_fn(rows: usize, cols: usize, tile: TileSize, keep: impl Fn(usize, usize) -> bool) -> Result<Self> {
        if tile.rows == 0 || tile.cols == 0 {
            return Err(Error::InvalidTileSize {
                rows: tile.rows,
                cols: tile.cols,
            });
        }
        checked_len(rows, cols)?;
        let grid_rows = rows.div_ceil(tile.rows);
        let grid_cols = cols.div_ceil(tile.cols);
        let ntiles = checked_len(grid_rows, grid_cols)?;
        let words_per_row = tile.cols.div_ceil(64);
        let mut kinds = Vec::with_capacity(ntiles);
        let mut slots = Vec::with_capacity(ntiles);
        let mut bits = Vec::new();
        let mut scratch = vec![0u64; tile.rows * words_per_row];
        let mut ones = 0usize;
        for tr in 0..grid_rows {
            let r0 = tr * tile.rows;
            let r1 = (r0 + tile.rows).min(rows);
            for tc in 0..grid_cols {
                let c0 = tc * tile.cols;
                let c1 = (c0 + tile.cols).min(cols);
                scratch.fill(0);
                let mut count = 0usize;
                for r in r0..r1 {
                    let row = &mut scratch[(r - r0) * words_per_row..(r - r0 + 1) * words_per_row];
                    for c in c0..c1 {
                        if keep(r, c) {
                            let cc = c - c0;
                            row[cc / 64] |= 1u64 << (cc % 64);
                            count += 1;
                        }
                    }
                }
                ones += count;
                let area = (r1 - r0) * (c1 - c0);
                if count == 0 {
                    kinds.push(TileKind::Empty);
                    slots.push(NO_SLOT);
                } else if count == area {
                    kinds.push(TileKind::Full);
                    slots.push(NO_SLOT);
                } else {
                    kinds.push(TileKind::Partial);
                    let slot = bits.len() / scratch.len();
                    slots.push(u32::try_from(slot).map_err(|_| Error::SizeOverflow { rows, cols })?);
                    bits.extend_from_slice(&scratch);
                }
            }
        }
        Ok(TileMap {
            rows,
            cols,
            tile,
            grid_rows,
            grid_cols,
            kinds,
            slots,
            words_per_row,
            bits,
            ones,
            device_copies: DeviceCopies::default(),
        })
    }

    /// Mask rows (`k`).
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Mask columns (`n`).
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }
    /// The tile size the map was built for.
    pub fn tile_size(&self) -> TileSize {
        self.tile
    }
    /// `(grid_rows, grid_cols)`: the number of tiles along each axis.
    pub fn grid(&self) -> (usize, usize) {
        (self.grid_rows, self.grid_cols)
    }
    /// Tile kinds, row-major over the grid (`kinds()[tr * grid_cols + tc]`).
    pub fn kinds(&self) -> &[TileKind] {
        &self.kinds
    }
    /// The kind of tile `(tr, tc)`; `None` outside the grid.
    pub fn kind(&self, tr: usize, tc: usize) -> Option<TileKind> {
        if tr < self.grid_rows && tc < self.grid_cols {
            Some(self.kinds[tr * self.grid_cols + tc])
        } else {
            None
        }
    }
    /// For each tile (row-major over the grid), the index of its bit block in [`TileMap::bits`]
    /// (block `s` is `bits()[s * tile.rows * words_per_row ..][.. tile.rows * words_per_row]`),
    /// or [`NO_SLOT`] for empty and full tiles.
    pub fn partial_slots(&self) -> &[u32] {
        &self.slots
    }
    /// `u64` words per tile row in a bit block: `ceil(tile.cols / 64)`.
    pub fn words_per_row(&self) -> usize {
        self.words_per_row
    }
    /// The bit blocks of all partial tiles, concatenated.
    pub fn bits(&self) -> &[u64] {
        &self.bits
    }
    /// The bit block of tile `(tr, tc)` if it is partial.
    pub fn partial_bits(&self, tr: usize, tc: usize) -> Option<&[u64]> {
        if tr >= self.grid_rows || tc >= self.grid_cols {
            return None;
        }
        let slot = self.slots[tr * self.grid_cols + tc];
        if slot == NO_SLOT {
            return None;
        }
        let block = self.tile.rows * self.words_per_row;
        let start = slot as usize * block;
        self.bits.get(start..start + block)
    }

    /// Whether entry `(r, c)` is kept; `false` outside the mask.
    pub fn get(&self, r: usize, c: usize) -> bool {
        if r >= self.rows || c >= self.cols {
            return false;
        }
        let (tr, tc) = (r / self.tile.rows, c / self.tile.cols);
        match self.kinds[tr * self.grid_cols + tc] {
            TileKind::Empty => false,
            TileKind::Full => true,
            TileKind::Partial => {
                let block = self.tile.rows * self.words_per_row;
                let start = self.slots[tr * self.grid_cols + tc] as usize * block;
                let (rr, cc) = (r - tr * self.tile.rows, c - tc * self.tile.cols);
                (self.bits[start + rr * self.words_per_row + cc / 64] >> (cc % 64)) & 1 == 1
            }
        }
    }

    /// The bits of row `r`, columns `c0 .. c0 + len` (`len <= 64`): bit `j` is entry
    /// `(r, c0 + j)`. Entries outside the mask read as 0.
    pub fn row_bits(&self, r: usize, c0: usize, len: usize) -> u64 {
        let len = len.min(64);
        if r >= self.rows || c0 >= self.cols || len == 0 {
            return 0;
        }
        let c1 = (c0 + len).min(self.cols);
        let tr = r / self.tile.rows;
        let rr = r - tr * self.tile.rows;
        let mut out = 0u64;
        let mut c = c0;
        while c < c1 {
            let tc = c / self.tile.cols;
            let tile_end = ((tc + 1) * self.tile.cols).min(c1);
            let seg = tile_end - c;
            let idx = tr * self.grid_cols + tc;
            let seg_bits = match self.kinds[idx] {
                TileKind::Empty => 0,
                TileKind::Full => low_ones(seg),
                TileKind::Partial => {
                    let block = self.tile.rows * self.words_per_row;
                    let start = self.slots[idx] as usize * block + rr * self.words_per_row;
                    let words = &self.bits[start..start + self.words_per_row];
                    extract_bits(words, c - tc * self.tile.cols, seg)
                }
            };
            out |= seg_bits << (c - c0);
            c = tile_end;
        }
        out
    }

    /// Number of kept entries.
    pub fn num_ones(&self) -> usize {
        self.ones
    }
    /// Fraction of kept entries, `num_ones / (rows * cols)` (1 for an empty shape).
    pub fn density(&self) -> f64 {
        let total = self.rows * self.cols;
        if total == 0 {
            1.0
        } else {
            self.ones as f64 / total as f64
        }
    }
    /// Number of empty tiles.
    pub fn num_empty(&self) -> usize {
        self.kinds.iter().filter(|&&k| k == TileKind::Empty).count()
    }
    /// Number of full tiles.
    pub fn num_full(&self) -> usize {
        self.kinds.iter().filter(|&&k| k == TileKind::Full).count()
    }
    /// Number of partial tiles.
    pub fn num_partial(&self) -> usize {
        self.kinds.iter().filter(|&&k| k == TileKind::Partial).count()
    }
    /// The fraction of the dense work a tile-skipping kernel keeps at this tile size: the
    /// entries inside non-empty tiles over all entries (border tiles weigh by their area).
    /// `1 / work_fraction()` bounds the speed-up over an equally good dense kernel.
    pub fn work_fraction(&self) -> f64 {
        let total = self.rows * self.cols;
        if total == 0 {
            return 1.0;
        }
        let mut kept = 0usize;
        for tr in 0..self.grid_rows {
            let h = (self.rows - tr * self.tile.rows).min(self.tile.rows);
            for tc in 0..self.grid_cols {
                if self.kinds[tr * self.grid_cols + tc] != TileKind::Empty {
                    kept += h * (self.cols - tc * self.tile.cols).min(self.tile.cols);
                }
            }
        }
        kept as f64 / total as f64
    }
    /// The mask as row-major 0/1 values (for tests and export).
    pub fn to_values(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for r in 0..self.rows {
            for c in 0..self.cols {
                if self.get(r, c) {
                    out[r * self.cols + c] = 1.0;
                }
            }
        }
        out
    }
}

/// `len` low bits set (`len <= 64`).
#[inline]
pub(crate) fn low_ones(len: usize) -> u64 {
    if len >= 64 {
        u64::MAX
    } else {
        (1u64 << len) - 1
    }
}

/// Bits `start .. start + len` of a little-endian word array, as the low bits of a `u64`.
#[inline]
fn extract_bits(words: &[u64], start: usize, len: usize) -> u64 {
    let (w, off) = (start / 64, start % 64);
    let mut v = words[w] >> off;
    if off != 0 && off + len > 64 {
        if let Some(next) = words.get(w + 1) {
            v |= next << (64 - off);
        }
    }
    v & low_ones(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg_mask(rows: usize, cols: usize, seed: u64, p: f64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..rows * cols)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                if ((s >> 11) as f64 / (1u64 << 53) as f64) < p {
                    1.0
                } else {
                    0.0
                }
            })
            .collect()
    }

    #[test]
    fn get_and_row_bits_match_the_mask() {
        for &(rows, cols, t) in &[
            (37, 53, TileSize::new(5, 7)),
            (64, 130, TileSize::new(16, 70)),
            (9, 200, TileSize::square(16)),
        ] {
            for (seed, p) in [(1, 0.5), (2, 0.05), (3, 0.97)] {
                let v = lcg_mask(rows, cols, seed, p);
                let tm = TileMap::from_values(&v, rows, cols, t).unwrap();
                assert_eq!(tm.to_values(), v);
                assert_eq!(tm.num_ones(), v.iter().filter(|&&x| x == 1.0).count());
                for r in 0..rows {
                    for c0 in (0..cols).step_by(3) {
                        let len = 64.min(cols + 5 - c0);
                        let bits = tm.row_bits(r, c0, len);
                        for j in 0..len {
                            let want = c0 + j < cols && v[r * cols + c0 + j] == 1.0;
                            assert_eq!((bits >> j) & 1 == 1, want, "r={r} c0={c0} j={j}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn kinds_and_counts() {
        // 4x4 mask, 2x2 tiles: top-left full, top-right empty, bottom-left partial, bottom-right 1x? border.
        let v = [
            1., 1., 0., 0., //
            1., 1., 0., 0., //
            1., 0., 1., 1., //
            0., 0., 1., 1.,
        ];
        let tm = TileMap::from_values(&v, 4, 4, TileSize::square(2)).unwrap();
        assert_eq!(
            tm.kinds(),
            &[TileKind::Full, TileKind::Empty, TileKind::Partial, TileKind::Full]
        );
        assert_eq!((tm.num_empty(), tm.num_full(), tm.num_partial()), (1, 2, 1));
        assert!((tm.density() - 9.0 / 16.0).abs() < 1e-12);
        assert!((tm.work_fraction() - 0.75).abs() < 1e-12);
        assert_eq!(tm.partial_bits(1, 0), Some(&[0b01u64, 0b00][..]));
        // Border tiles: 3x3 with 2x2 tiles; bottom-right tile is 1x1.
        let v = [1., 1., 0., 1., 1., 0., 0., 0., 1.];
        let tm = TileMap::from_values(&v, 3, 3, TileSize::square(2)).unwrap();
        assert_eq!(
            tm.kinds(),
            &[TileKind::Full, TileKind::Empty, TileKind::Empty, TileKind::Full]
        );
        assert!((tm.work_fraction() - 5.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn errors() {
        assert_eq!(
            TileMap::from_values(&[0.0; 5], 2, 3, TileSize::square(2)),
            Err(Error::BufferSize {
                rows: 2,
                cols: 3,
                len: 5
            })
        );
        assert_eq!(
            TileMap::from_values(&[0.0, 0.5, 1.0, 1.0], 2, 2, TileSize::square(2)),
            Err(Error::NonBinaryMask {
                row: 0,
                col: 1,
                value: 0.5
            })
        );
        assert_eq!(
            TileMap::full(2, 2, TileSize::new(0, 2)),
            Err(Error::InvalidTileSize { rows: 0, cols: 2 })
        );
        assert!(TileMap::full(usize::MAX, 2, TileSize::square(2)).is_err());
    }

    #[test]
    fn from_biomask() {
        let mut rng = biomask::Rng::seeded(0);
        let m = biomask::MaskSpec::diagonal(0.5)
            .dense(64, 48, biomask::Layout::Keras, &mut rng)
            .unwrap();
        let tm = TileMap::from_mask(&m, TileSize::square(8)).unwrap();
        assert_eq!(tm.shape(), [64, 48]);
        assert_eq!(tm.num_ones(), m.num_ones());
        for x in 0..64 {
            for y in 0..48 {
                assert_eq!(tm.get(x, y), m.get(0, 0, x, y) == Some(1.0));
            }
        }
        assert!(tm.num_empty() > 0, "a band mask has empty tiles");
        let g = biomask::MaskSpec::Gaussian {
            param_reduction: 0.5,
            halfbandwidth: 0.0,
        }
        .dense(16, 16, biomask::Layout::Keras, &mut rng)
        .unwrap();
        assert!(matches!(
            TileMap::from_mask(&g, TileSize::square(8)),
            Err(Error::NonBinaryForm { .. })
        ));
        let ind = biomask::MaskSpec::Individual { param_reduction: 0.5 }
            .conv(8, 8, 1, (3, 3), biomask::Layout::Keras, &mut rng)
            .unwrap();
        assert!(matches!(
            TileMap::from_mask(&ind, TileSize::square(8)),
            Err(Error::PerTapMask { taps: 9, .. })
        ));
    }
}
