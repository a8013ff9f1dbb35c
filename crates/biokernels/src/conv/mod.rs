//! Masked 2-D convolution and transposed convolution, f32, NCHW, on the masked GEMM.
//!
//! # Convolution
//! With stride `(sh, sw)`, dilation `(dh, dw)`, top/left padding `(pt, pl)` and `G` groups of
//! `Cg = C_in / G` input and `Og = C_out / G` output channels, output channel `o` of group
//! `g = o / Og` is
//!
//! ```text
//! Y[n, o, oy, ox] = b[o] + Σ_{i<kh, j<kw, c<Cg} X[n, g·Cg + c, oy·sh + i·dh − pt, ox·sw + j·dw − pl]
//!                                              · (W ⊙ M)[i, j, c, o]
//! ```
//!
//! where `X` reads as 0 outside the image. The weight `W` and the mask `M` have the Keras
//! kernel layout `(kh, kw, C_in / G, C_out)`. Per group, `W[.., .., .., g·Og .. (g+1)·Og]` is a
//! `(kh·kw·Cg, Og)` matrix whose rows are ordered `(i, j, c)`: the `(k, n)` operand of the
//! masked GEMM. The input is unrolled (im2col) into rows `(n, oy, ox)` × columns `(i, j, c)`,
//! so that per group
//!
//! ```text
//! forward   Y_g  = col(X)_g · (W_g ⊙ M_g)         gemm::masked_matmul
//! dX        dX_g = col2im(dY_g · (W_g ⊙ M_g)ᵀ)    gemm::masked_matmul_dx
//! dW        dW_g = (col(X)_gᵀ · dY_g) ⊙ M_g       gemm::masked_matmul_dw
//! ```
//!
//! and the mask's tile map ([`ConvMask`], one [`TileMap`](crate::TileMap) per group) makes the
//! kernels skip the work the mask removes. A channel mask shared by all `kh × kw` taps (band,
//! 2d, kernel) is repeated down the rows, so its empty tiles survive; per-tap `individual`
//! masks are compiled as they are. Masked-off weights are structural zeros: they never reach
//! the result (a NaN there is ignored), and `dW` is exactly 0 off the mask.
//!
//! The unrolled input is built in chunks of output rows (at most about [`COL_BUDGET`] floats
//! per buffer, or one output row if that is larger), so memory stays bounded for any batch. The
//! forward unrolls the NCHW input straight into the GEMM's packed operand layout (micro-panels
//! of `MR` output pixels; along an output line a tap and channel is a contiguous copy). The
//! weight gradient copies the input images a chunk reads to NHWC (one group's channels), so
//! that every tap of the unrolled row is a contiguous copy, and col2im accumulates in NHWC the
//! same way before adding to the NCHW gradient. The chunking depends only on the geometry and every
//! reduction runs in a fixed order, so the results do not depend on the number of threads.
//! Work runs on the current rayon pool (col2im is parallel over the images of a chunk).
//!
//! **Which path, and what skips.** Two CPU paths compute the same formulas:
//!
//! * the *direct* AVX-512 kernels (`direct.rs`: forward, input gradient as the adjoint
//!   convolution, weight gradient) take stride-1, undilated, ungrouped layers whose weights fit
//!   512 KiB, unmasked **or masked** when tile skipping would keep at least 67 % of the work.
//!   The 2d and band masks of narrow layers (the paper CNN's 32- and 64-channel convolutions)
//!   leave no empty tile, but blocks of 4 output channels use only part of the reduction
//!   indices (input channel × tap): per mask the kept indices of each block are listed once
//!   (`skip.rs`), and when at most 90 % of the `(index, block)` pairs are kept (80 % for the
//!   weight gradient) the skipping kernels run over those only (forward; input gradient on
//!   blocks of 4 input channels; weight gradient on blocks of 6 kept indices × 4 output
//!   channels). Otherwise the layer
//!   runs densely on `W ⊙ M` (a select). Either way `dW` is exactly 0 off the mask;
//! * every other layer takes the im2col path above, where the masked GEMM decides per
//!   micro-panel of `NR` columns of its weight operand (32 with AVX-512; output channels in the
//!   forward, unrolled input channels in `dX`) which reduction indices to skip: those outside
//!   every non-empty mask tile the panel overlaps. A channel mask repeated over the taps keeps
//!   its tile structure, so wide masked layers (hundreds of channels) skip what their channel
//!   mask would skip in a dense layer.
//!
//! Measured by [`bench::run_conv_cases`](crate::bench::run_conv_cases) (`cargo xtask
//! bench-kernels --cpu --conv`).
//!
//! # Padding
//! [`Padding::Valid`]: none; [`Padding::Same`]: Keras/TensorFlow `"same"`, output
//! `ceil(H / sh)`, total padding `max((out − 1)·sh + dh·(kh − 1) + 1 − H, 0)`, the odd pixel at
//! the bottom/right; [`Padding::Explicit`]: as given (PyTorch `padding = p` is
//! `Explicit { top: p, bottom: p, left: p, right: p }`). Output size
//! `floor((H + top + bottom − dh·(kh − 1) − 1) / sh) + 1`.
//!
//! # Transposed convolution
//! [`conv_transpose2d`] is PyTorch's `ConvTranspose2d` (and Keras' `Conv2DTranspose`): the
//! adjoint of the convolution from the layer's output to its input,
//!
//! ```text
//! Y[n, g·Og + c, iy·sh + i·dh − pt, ix·sw + j·dw − pl] += X[n, q, iy, ix] · (W ⊙ M)[i, j, c, q]
//! ```
//!
//! for every input channel `q` of group `g = q / (C_in / G)`, `Og = C_out / G`, plus the bias.
//! Its weight has the Keras `Conv2DTranspose` kernel layout `(kh, kw, C_out / G, C_in)`
//! (PyTorch stores `(C_in, C_out / G, kh, kw)`), i.e. the `(kh, kw, nx, ny)` of
//! `biomask::MaskSpec::conv_transpose` with `nx` = the layer's output channels per group, so
//! its mask applies directly. Output size (per axis)
//! `(H − 1)·s − top − bottom + d·(k − 1) + 1 + output_padding` with [`Padding::Explicit`] or
//! [`Padding::Valid`] (no padding); [`Padding::Same`] gives `H·s + output_padding`, with the
//! padding TensorFlow uses for that size (`total = max((H − 1)·s + d·(k − 1) + 1 − out, 0)`,
//! top = `total / 2`). `output_padding` must be smaller than the stride or the dilation
//! (PyTorch's rule). Keras `Conv2DTranspose(padding="same")` without `output_padding` is
//! `Same`; `padding="valid"` is `Valid` with `output_padding = max(s − d·(k − 1) − 1, 0)`;
//! with an explicit Keras `output_padding = op`, both are `Explicit` with
//! `p = (d·(k − 1) + 1) / 2` (same) or 0 (valid) on every side and `output_padding = op`.
//!
//! The transposed forward is the convolution's input gradient, its input gradient is the
//! convolution's forward and its weight gradient is the convolution's weight gradient with the
//! roles of input and output exchanged: the same code runs both.
//!
//! # Shapes
//! | function | inputs | output |
//! |---|---|---|
//! | [`conv2d`] | `x (N, C_in, H, W)`, `w (kh, kw, C_in/G, C_out)`, bias `(C_out)` | `y (N, C_out, OH, OW)` |
//! | [`conv2d_backward_input`] | `dy (N, C_out, OH, OW)`, `w` | `dx (N, C_in, H, W)` |
//! | [`conv2d_backward_weight`] | `x`, `dy` | `dw (kh, kw, C_in/G, C_out)` |
//! | [`conv2d_backward_bias`] | `dy` | `db (C_out)` |
//! | [`conv_transpose2d`] | `x (N, C_in, H, W)`, `w (kh, kw, C_out/G, C_in)`, bias `(C_out)` | `y (N, C_out, OH, OW)` |
//! | [`conv_transpose2d_backward_input`] | `dy (N, C_out, OH, OW)`, `w` | `dx (N, C_in, H, W)` |
//! | [`conv_transpose2d_backward_weight`] | `x`, `dy` | `dw (kh, kw, C_out/G, C_in)` |
//! | [`conv_transpose2d_backward_bias`] | `dy` | `db (C_out)` |
//!
//! All outputs are overwritten. A mask, when given, must have been built for the layer
//! ([`Conv2dGeometry::mask_dims`], [`ConvTranspose2dGeometry::mask_dims`]).
//!
//! # Example
//! ```
//! use biokernels::conv::{conv2d, Conv2dGeometry, ConvMask, Padding};
//! use biokernels::TileSize;
//! # fn main() -> biokernels::Result<()> {
//! let geom = Conv2dGeometry::new(1, 2, (4, 4), 4, (3, 3)).with_padding(Padding::Same);
//! let x = vec![1.0; geom.input_len()];
//! let w = vec![0.5; geom.weight_len()];
//! let mut rng = biomask::Rng::seeded(0);
//! let m = biomask::MaskSpec::diagonal(0.5).conv(2, 4, 1, (3, 3), biomask::Layout::Keras, &mut rng)?;
//! let mask = ConvMask::from_mask(&m, 1, TileSize::CPU_DEFAULT)?;
//! let mut y = vec![0.0; geom.output_len()?];
//! conv2d(&geom, &x, &w, Some(&mask), None, &mut y)?;
//! assert_eq!(geom.output_hw()?, (4, 4));
//! # Ok(())
//! # }
//! ```

mod cpu;
mod direct;
mod geometry;
mod mask;
mod skip;

pub use cpu::COL_BUDGET;
use geometry::mul_all;
pub use geometry::{Conv2dGeometry, ConvTranspose2dGeometry, Padding};
pub use mask::ConvMask;

use crate::error::{Error, Result};
pub(crate) use cpu::Plan;

fn check_buf(op: &'static str, name: &'static str, shape: &[usize], got: usize) -> Result<()> {
    let expected = mul_all(op, shape)?;
    if expected != got {
        return Err(Error::ConvBuffer {
            op,
            name,
            shape: shape.to_vec(),
            expected,
            got,
        });
    }
    Ok(())
}

fn check_mask(op: &'static str, mask: Option<&ConvMask>, expected: [usize; 5]) -> Result<()> {
    if let Some(m) = mask {
        if m.dims() != expected {
            return Err(Error::ConvMaskMismatch {
                op,
                expected,
                got: m.dims(),
            });
        }
    }
    Ok(())
}

/// Convolution forward: `y = conv(x, W ⊙ M) + bias` (see the [module docs](self)).
///
/// # Shapes
/// `x (N, C_in, H, W)`, `w (kh, kw, C_in / G, C_out)`, `mask` dims
/// [`Conv2dGeometry::mask_dims`], `bias (C_out)`, `y (N, C_out, OH, OW)`.
///
/// # Errors
/// [`Error::ConvGeometry`], [`Error::ConvBuffer`], [`Error::ConvMaskMismatch`].
pub fn conv2d(
    geom: &Conv2dGeometry,
    x: &[f32],
    w: &[f32],
    mask: Option<&ConvMask>,
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<()> {
    const OP: &str = "conv2d";
    let plan = geom.plan(OP)?;
    check_buf(OP, "x", &geom.input_shape(), x.len())?;
    check_buf(OP, "w", &geom.weight_shape(), w.len())?;
    if let Some(b) = bias {
        check_buf(OP, "bias", &[geom.out_channels], b.len())?;
    }
    check_buf(OP, "y", &plan.output_shape(), y.len())?;
    check_mask(OP, mask, geom.mask_dims())?;
    cpu::forward(&plan, x, w, mask, bias, y)
}

/// Input gradient of [`conv2d`]: `dx = convᵀ(dy, W ⊙ M)` (col2im of `dY · (W ⊙ M)ᵀ`).
///
/// # Shapes
/// `dy (N, C_out, OH, OW)`, `w (kh, kw, C_in / G, C_out)`, `dx (N, C_in, H, W)`.
///
/// # Errors
/// [`Error::ConvGeometry`], [`Error::ConvBuffer`], [`Error::ConvMaskMismatch`].
pub fn conv2d_backward_input(
    geom: &Conv2dGeometry,
    dy: &[f32],
    w: &[f32],
    mask: Option<&ConvMask>,
    dx: &mut [f32],
) -> Result<()> {
    const OP: &str = "conv2d_backward_input";
    let plan = geom.plan(OP)?;
    check_buf(OP, "dy", &plan.output_shape(), dy.len())?;
    check_buf(OP, "w", &geom.weight_shape(), w.len())?;
    check_buf(OP, "dx", &geom.input_shape(), dx.len())?;
    check_mask(OP, mask, geom.mask_dims())?;
    cpu::backward_input(&plan, dy, w, mask, None, dx)
}

/// Weight gradient of [`conv2d`]: `dw = (col(x)ᵀ · dy) ⊙ M`, computed only on the mask's
/// support and exactly 0 off it.
///
/// # Shapes
/// `x (N, C_in, H, W)`, `dy (N, C_out, OH, OW)`, `dw (kh, kw, C_in / G, C_out)`.
///
/// # Errors
/// [`Error::ConvGeometry`], [`Error::ConvBuffer`], [`Error::ConvMaskMismatch`].
pub fn conv2d_backward_weight(
    geom: &Conv2dGeometry,
    x: &[f32],
    dy: &[f32],
    mask: Option<&ConvMask>,
    dw: &mut [f32],
) -> Result<()> {
    const OP: &str = "conv2d_backward_weight";
    let plan = geom.plan(OP)?;
    check_buf(OP, "x", &geom.input_shape(), x.len())?;
    check_buf(OP, "dy", &plan.output_shape(), dy.len())?;
    check_buf(OP, "dw", &geom.weight_shape(), dw.len())?;
    check_mask(OP, mask, geom.mask_dims())?;
    cpu::backward_weight(&plan, x, dy, mask, dw)
}

/// Bias gradient of [`conv2d`]: `db[o] = Σ_{n, oy, ox} dy[n, o, oy, ox]` (accumulated in f64).
///
/// # Shapes
/// `dy (N, C_out, OH, OW)`, `db (C_out)`.
///
/// # Errors
/// [`Error::ConvGeometry`], [`Error::ConvBuffer`].
pub fn conv2d_backward_bias(geom: &Conv2dGeometry, dy: &[f32], db: &mut [f32]) -> Result<()> {
    const OP: &str = "conv2d_backward_bias";
    let plan = geom.plan(OP)?;
    let shape = plan.output_shape();
    check_buf(OP, "dy", &shape, dy.len())?;
    check_buf(OP, "db", &[geom.out_channels], db.len())?;
    cpu::bias_grad(shape, dy, db);
    Ok(())
}

/// Transposed convolution forward (PyTorch `ConvTranspose2d`): `y = convᵀ(x, W ⊙ M) + bias`,
/// the input gradient of the [adjoint convolution](ConvTranspose2dGeometry::adjoint_conv).
///
/// # Shapes
/// `x (N, C_in, H, W)`, `w (kh, kw, C_out / G, C_in)`, `mask` dims
/// [`ConvTranspose2dGeometry::mask_dims`], `bias (C_out)`, `y (N, C_out, OH, OW)`.
///
/// # Errors
/// [`Error::ConvGeometry`], [`Error::ConvBuffer`], [`Error::ConvMaskMismatch`].
pub fn conv_transpose2d(
    geom: &ConvTranspose2dGeometry,
    x: &[f32],
    w: &[f32],
    mask: Option<&ConvMask>,
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<()> {
    const OP: &str = "conv_transpose2d";
    let (plan, _) = geom.resolve(OP)?;
    check_buf(OP, "x", &geom.input_shape(), x.len())?;
    check_buf(OP, "w", &geom.weight_shape(), w.len())?;
    if let Some(b) = bias {
        check_buf(OP, "bias", &[geom.out_channels], b.len())?;
    }
    check_buf(OP, "y", &plan.input_shape(), y.len())?;
    check_mask(OP, mask, geom.mask_dims())?;
    cpu::backward_input(&plan, x, w, mask, bias, y)
}

/// Input gradient of [`conv_transpose2d`]: the forward convolution of `dy`.
///
/// # Shapes
/// `dy (N, C_out, OH, OW)`, `w (kh, kw, C_out / G, C_in)`, `dx (N, C_in, H, W)`.
///
/// # Errors
/// [`Error::ConvGeometry`], [`Error::ConvBuffer`], [`Error::ConvMaskMismatch`].
pub fn conv_transpose2d_backward_input(
    geom: &ConvTranspose2dGeometry,
    dy: &[f32],
    w: &[f32],
    mask: Option<&ConvMask>,
    dx: &mut [f32],
) -> Result<()> {
    const OP: &str = "conv_transpose2d_backward_input";
    let (plan, _) = geom.resolve(OP)?;
    check_buf(OP, "dy", &plan.input_shape(), dy.len())?;
    check_buf(OP, "w", &geom.weight_shape(), w.len())?;
    check_buf(OP, "dx", &geom.input_shape(), dx.len())?;
    check_mask(OP, mask, geom.mask_dims())?;
    cpu::forward(&plan, dy, w, mask, None, dx)
}

/// Weight gradient of [`conv_transpose2d`], only on the mask's support and exactly 0 off it:
/// the convolution weight gradient with input `dy` and output gradient `x`.
///
/// # Shapes
/// `x (N, C_in, H, W)`, `dy (N, C_out, OH, OW)`, `dw (kh, kw, C_out / G, C_in)`.
///
/// # Errors
/// [`Error::ConvGeometry`], [`Error::ConvBuffer`], [`Error::ConvMaskMismatch`].
pub fn conv_transpose2d_backward_weight(
    geom: &ConvTranspose2dGeometry,
    x: &[f32],
    dy: &[f32],
    mask: Option<&ConvMask>,
    dw: &mut [f32],
) -> Result<()> {
    const OP: &str = "conv_transpose2d_backward_weight";
    let (plan, _) = geom.resolve(OP)?;
    check_buf(OP, "x", &geom.input_shape(), x.len())?;
    check_buf(OP, "dy", &plan.input_shape(), dy.len())?;
    check_buf(OP, "dw", &geom.weight_shape(), dw.len())?;
    check_mask(OP, mask, geom.mask_dims())?;
    cpu::backward_weight(&plan, dy, x, mask, dw)
}

/// Bias gradient of [`conv_transpose2d`]: `db[o] = Σ_{n, y, x} dy[n, o, y, x]`.
///
/// # Shapes
/// `dy (N, C_out, OH, OW)`, `db (C_out)`.
///
/// # Errors
/// [`Error::ConvGeometry`], [`Error::ConvBuffer`].
pub fn conv_transpose2d_backward_bias(geom: &ConvTranspose2dGeometry, dy: &[f32], db: &mut [f32]) -> Result<()> {
    const OP: &str = "conv_transpose2d_backward_bias";
    let (plan, _) = geom.resolve(OP)?;
    let shape = plan.input_shape();
    check_buf(OP, "dy", &shape, dy.len())?;
    check_buf(OP, "db", &[geom.out_channels], db.len())?;
    cpu::bias_grad(shape, dy, db);
    Ok(())
}
