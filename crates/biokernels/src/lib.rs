//! # biokernels
//!
//! Masked GEMM kernels whose cost follows the connection mask. A 0/1 mask `M` (e.g. a
//! [`biomask::Mask`]'s channel mask, `(in, out)` = `(k, n)`) is compiled once into a
//! [`TileMap`] (empty / full / partial tiles for a given [`TileSize`]); the kernels in [`gemm`]
//! then skip empty tiles, run a dense register-blocked micro-kernel on full tiles and apply the
//! bit pattern of partial ones. The three products of training a masked dense layer are
//!
//! ```text
//! Y  = X · (W ⊙ M)          masked_matmul       X (m,k), W (k,n) -> Y (m,n)
//! dX = dY · (W ⊙ M)ᵀ        masked_matmul_dx    dY (m,n), W (k,n) -> dX (m,k)
//! dW = (Xᵀ · dY) ⊙ M        masked_matmul_dw    X (m,k), dY (m,n) -> dW (k,n)
//! ```
//!
//! plus the dense `matmul`, `matmul_nt`, `matmul_tn` on the same machinery. [`conv`] builds
//! masked 2-D convolutions and transposed convolutions (NCHW, stride, padding, dilation,
//! groups) on these products through im2col, with a [`ConvMask`] (one tile map per group)
//! compiled from a `biomask` conv mask.
//!
//! Everything is f32, row-major (NCHW for convolutions), parallel over the current rayon pool,
//! and deterministic (the result does not depend on the number of threads). The micro-kernel (AVX-512, AVX2+FMA or portable) is picked
//! at run time, so default builds without `-C target-cpu` are fast.
//!
//! [`bench`](mod@bench) holds the benchmark cases behind `cargo xtask bench-kernels`.
//!
//! [`cuda`] runs the same three products on NVIDIA GPUs (feature `cuda`; exact f32, TF32 and
//! bf16) from the same [`TileMap`]. Without the feature a CUDA request returns
//! [`Error::CudaUnavailable`], and on a machine without a driver or GPU
//! [`Error::NoCudaDevice`]; callers then stay on the CPU.

pub mod bench;
pub mod conv;
pub mod cuda;
pub mod device;
pub mod error;
pub mod gemm;
pub mod optim;
pub mod tile_map;
mod transpose;

pub use conv::{
    conv2d, conv2d_backward_bias, conv2d_backward_input, conv2d_backward_weight, conv_transpose2d,
    conv_transpose2d_backward_bias, conv_transpose2d_backward_input, conv_transpose2d_backward_weight, Conv2dGeometry,
    ConvMask, ConvTranspose2dGeometry, Padding,
};
pub use error::{Error, Result};
pub use gemm::{
    masked_matmul, masked_matmul_dw, masked_matmul_dx, matmul, matmul_nt, matmul_tn, Beta, Isa, MatMut, MatRef, Options,
};
pub use tile_map::{TileKind, TileMap, TileSize};

// The fused RNN packs its recurrent weights once per sequence.
pub use gemm::{matmul_prepacked, PackedB};
