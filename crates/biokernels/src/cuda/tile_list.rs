//! The GPU form of a [`TileMap`]: per-block lists of the non-empty tiles.
//!
//! The CUDA kernels use square [`GPU_TILE`] × [`GPU_TILE`] tiles of the `(k, n)` weight mask. A
//! CTA owns a block of the output and walks only the tiles of the reduction that hold at least
//! one kept weight:
//!
//! - forward (`Y = X·(W⊙M)`, output columns = `n`): for each column tile `tc`, the entries
//!   `col_entries[col_ptr[tc]..col_ptr[tc + 1]]`, each `[tr, slot]`;
//! - dX (`dX = dY·(W⊙M)ᵀ`, output columns = `k`): for each row tile `tr`, the entries
//!   `row_entries[row_ptr[tr]..row_ptr[tr + 1]]`, each `[tc, slot]`;
//! - dW (`dW = (Xᵀ·dY)⊙M`): one CTA per tile, `tile_slots[tr * grid_cols + tc]`.
//!
//! `slot` is [`SLOT_FULL`] (-1) for a full tile (dense inner loop, no mask), [`SLOT_EMPTY`]
//! (-2, only in `tile_slots`) for an empty one, or the index of the tile's bit block in
//! [`GpuTileLists::bits`] (`GPU_TILE` words of `u64`; bit `c` of word `r` is mask entry
//! `(tr·T + r, tc·T + c)`), which is exactly [`TileMap::bits`] for 64-wide tiles.
//!
//! # Shapes
//! - `col_ptr`: `grid_cols + 1`; `row_ptr`: `grid_rows + 1`; both entry lists: number of
//!   non-empty tiles; `tile_slots`: `grid_rows · grid_cols`; `bits`: `partial tiles · T`.

use crate::error::{Error, Result};
use crate::tile_map::{TileKind, TileMap, TileSize};

/// Side of the square mask tiles of the CUDA kernels (`TILE` in `kernels/masked_gemm`).
pub const GPU_TILE: usize = 64;
/// `slot` of a full tile.
pub const SLOT_FULL: i32 = -1;
/// `slot` of an empty tile (only in [`GpuTileLists::tile_slots`]).
pub const SLOT_EMPTY: i32 = -2;

/// Host-side tile lists of one mask, ready to upload. See the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct GpuTileLists {
    /// Mask rows (`k`).
    pub rows: usize,
    /// Mask columns (`n`).
    pub cols: usize,
    /// `ceil(k / T)`.
    pub grid_rows: usize,
    /// `ceil(n / T)`.
    pub grid_cols: usize,
    /// Forward: start of each column tile's entries (CSC-like).
    pub col_ptr: Vec<i32>,
    /// Forward: `[tr, slot]` per non-empty tile, column tile by column tile, `tr` ascending.
    pub col_entries: Vec<[i32; 2]>,
    /// dX: start of each row tile's entries (CSR-like).
    pub row_ptr: Vec<i32>,
    /// dX: `[tc, slot]` per non-empty tile, row tile by row tile, `tc` ascending.
    pub row_entries: Vec<[i32; 2]>,
    /// dW: slot of every tile, row-major over the grid.
    pub tile_slots: Vec<i32>,
    /// Bit blocks of the partial tiles, `T` words each.
    pub bits: Vec<u64>,
    /// Fraction of the dense work inside non-empty tiles.
    pub work_fraction: f64,
}

fn to_i32(v: usize, what: &'static str) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::CudaOperand {
        op: "tile lists",
        reason: format!("{what} = {v} does not fit in i32"),
    })
}

impl GpuTileLists {
    /// Builds the lists of `map`. A map with another tile size is first rebuilt with
    /// [`GPU_TILE`] tiles from its entries (the CPU default is 16 × 16).
    ///
    /// # Errors
    /// [`Error::CudaOperand`] when a count does not fit in `i32`.
    pub fn from_tile_map(map: &TileMap) -> Result<Self> {
        let rebuilt;
        let map = if map.tile_size() == TileSize::square(GPU_TILE) {
            map
        } else {
            rebuilt = TileMap::from_fn(map.rows(), map.cols(), TileSize::square(GPU_TILE), |r, c| map.get(r, c))?;
            &rebuilt
        };
        debug_assert_eq!(map.words_per_row(), 1);
        let (grid_rows, grid_cols) = map.grid();
        let slot_of = |tr: usize, tc: usize| -> Result<i32> {
            Ok(match map.kind(tr, tc) {
                Some(TileKind::Full) => SLOT_FULL,
                Some(TileKind::Partial) => to_i32(map.partial_slots()[tr * grid_cols + tc] as usize, "slot")?,
                _ => SLOT_EMPTY,
            })
        };
        let mut tile_slots = Vec::with_capacity(grid_rows * grid_cols);
        for tr in 0..grid_rows {
            for tc in 0..grid_cols {
                tile_slots.push(slot_of(tr, tc)?);
            }
        }
        let mut col_ptr = vec![0i32];
        let mut col_entries = Vec::new();
        for tc in 0..grid_cols {
            for tr in 0..grid_rows {
                let s = tile_slots[tr * grid_cols + tc];
                if s != SLOT_EMPTY {
                    col_entries.push([to_i32(tr, "tile row")?, s]);
                }
            }
            col_ptr.push(to_i32(col_entries.len(), "entries")?);
        }
        let mut row_ptr = vec![0i32];
        let mut row_entries = Vec::new();
        for tr in 0..grid_rows {
            for tc in 0..grid_cols {
                let s = tile_slots[tr * grid_cols + tc];
                if s != SLOT_EMPTY {
                    row_entries.push([to_i32(tc, "tile column")?, s]);
                }
            }
            row_ptr.push(to_i32(row_entries.len(), "entries")?);
        }
        Ok(GpuTileLists {
            rows: map.rows(),
            cols: map.cols(),
            grid_rows,
            grid_cols,
            col_ptr,
            col_entries,
            row_ptr,
            row_entries,
            tile_slots,
            bits: map.bits().to_vec(),
            work_fraction: map.work_fraction(),
        })
    }

    /// Whether mask entry `(r, c)` is kept, read back from the lists the way the kernels read
    /// them (the forward list and the bit blocks).
    pub fn get(&self, r: usize, c: usize) -> bool {
        let (tr, tc) = (r / GPU_TILE, c / GPU_TILE);
        let (b, e) = (self.col_ptr[tc] as usize, self.col_ptr[tc + 1] as usize);
        match self.col_entries[b..e].iter().find(|en| en[0] as usize == tr) {
            None => false,
            Some(&[_, SLOT_FULL]) => true,
            Some(&[_, slot]) => (self.bits[slot as usize * GPU_TILE + r % GPU_TILE] >> (c % GPU_TILE)) & 1 == 1,
        }
    }

    /// Number of non-empty tiles.
    pub fn num_nonempty(&self) -> usize {
        self.col_entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn band(k: usize, n: usize, half_width: usize) -> TileMap {
        TileMap::from_fn(k, n, TileSize::CPU_DEFAULT, |r, c| {
            let centre = r * n / k;
            centre.abs_diff(c) <= half_width
        })
        .unwrap()
    }

    #[test]
    fn lists_reproduce_the_mask_on_ragged_shapes() {
        for (k, n, hw) in [(200, 150, 20), (64, 64, 3), (130, 257, 70), (5, 300, 1)] {
            let map = band(k, n, hw);
            let lists = GpuTileLists::from_tile_map(&map).unwrap();
            assert_eq!(lists.grid_rows, k.div_ceil(64));
            assert_eq!(lists.grid_cols, n.div_ceil(64));
            for r in 0..k {
                for c in 0..n {
                    assert_eq!(lists.get(r, c), map.get(r, c), "({r}, {c}) of {k}x{n}");
                }
            }
            // The forward and dX lists hold the same tiles, and no empty tile is listed.
            assert_eq!(lists.col_entries.len(), lists.row_entries.len());
            let listed = lists.tile_slots.iter().filter(|&&s| s != SLOT_EMPTY).count();
            assert_eq!(listed, lists.col_entries.len());
            assert!(lists.col_entries.iter().all(|e| e[1] != SLOT_EMPTY));
            for tr in 0..lists.grid_rows {
                let (b, e) = (lists.row_ptr[tr] as usize, lists.row_ptr[tr + 1] as usize);
                for en in &lists.row_entries[b..e] {
                    assert_eq!(en[1], lists.tile_slots[tr * lists.grid_cols + en[0] as usize]);
                }
            }
        }
    }

    #[test]
    fn full_and_empty_masks() {
        let full = GpuTileLists::from_tile_map(&TileMap::full(100, 70, TileSize::square(64)).unwrap()).unwrap();
        assert!(full.tile_slots.iter().all(|&s| s == SLOT_FULL));
        assert!(full.bits.is_empty());
        assert_eq!(full.num_nonempty(), 4);
        let empty = GpuTileLists::from_tile_map(&TileMap::from_fn(100, 70, TileSize::square(8), |_, _| false).unwrap())
            .unwrap();
        assert_eq!(empty.num_nonempty(), 0);
        assert_eq!(empty.col_ptr, vec![0, 0, 0]);
        assert!(empty.tile_slots.iter().all(|&s| s == SLOT_EMPTY));
    }
}
