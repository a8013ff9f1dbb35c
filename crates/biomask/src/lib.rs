//! # biomask
//!
//! The fixed connection masks of the Mizutani-lab layers, reproduced with the originals' exact
//! numerical behaviour:
//!
//! * `diagonal`: the schizophrenia-mimicking band matrix. With half-bandwidth
//!   `h = nx·ny / sqrt(nx² + ny²) · (1 - sqrt(r))`, slope `rxy = (nx-1)/(ny-1)` and
//!   `hw = h · sqrt(rxy² + 1)`: `M[x, y] = 1 ⇔ |x - rxy·y| < hw` (strict, computed in f64 through
//!   the original's `int(lo)+1` / `ceil(hi)` bounds). Density ≈ `1 - r`.
//! * `gaussian`: the float window `G[x, y] = exp(-(x - rxy·y)² / (2h²))` with `h` scaled by 1.5,
//!   normalised to mean 1.
//! * `2d`: the mouse-mimetic window. Inputs on an `a`-wide grid, outputs on a `b`-wide grid, both
//!   normalised to the unit square; `M[x, y] = 1` when the output lies within radius `w` of the
//!   input, through the original's ceil-based bounds (left x-edge inclusive, right exclusive).
//!   Density → `πw² - 8/3·w³ + w⁴/2` on fine grids.
//! * `random` / `individual` / `kernel`: Bernoulli masks (`u >= r` kept; `kernel` keeps a whole
//!   kh×kw kernel per channel pair when `u > r`), drawn in the array order of the framework being
//!   mirrored, from a seeded [`Rng`] (modern, NumPy-legacy or CPython stream).
//! * `full`: all ones.
//! * `matrix`: any given matrix ([`MatrixMask`]), from memory or an `.npy` file: 0/1 values are a
//!   binary mask (a bio2art topology), other values a float window (dense layers only).
//!
//! # Shapes
//! The canonical layout is Keras dense layout `(x = layer input unit, y = layer output unit)`:
//! a [`Mask`] of a dense layer has shape `(nx, ny)`; of a conv layer `(kh, kw, nx, ny)` with
//! `nx = in_channels / groups` and `ny = out_channels`. For a transposed convolution `x` is the
//! layer's **output** channels (see [`LayerKind::ConvTranspose`]). Conversions to PyTorch
//! layouts (`(ny, nx)` for linear, `(ny, nx, kh, kw)` for conv) are in [`Mask::to_layout`].
//!
//! No ML code lives here: a mask can be generated and exported to NumPy/PyTorch on its own.

mod error;
mod forms;
mod mask;
mod matrix;
mod rng;
mod spec;

pub use error::{Error, Result};
pub use forms::two_d::{square_grid_width, two_d_density_limit};
pub use mask::{Layout, Mask};
pub use matrix::MatrixMask;
pub use rng::Rng;
pub use spec::{LayerKind, MaskForm, MaskSpec, MAX_MASK_ELEMENTS};
