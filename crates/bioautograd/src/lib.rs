//! # bioautograd
//!
//! A minimal reverse-mode tape over f32 tensors, running its products through `biokernels`.
//!
//! ```
//! use bioautograd::{Graph, Tensor};
//! # fn main() -> bioautograd::Result<()> {
//! let g = Graph::new();
//! let x = g.input(Tensor::from_vec(vec![1.0, -2.0, 0.5, 3.0, 0.0, 1.0], &[2, 3])?);
//! let w = g.param(Tensor::from_vec(vec![0.1; 12], &[3, 4])?);
//! let b = g.param(Tensor::from_vec(vec![0.0; 4], &[4])?);
//! let y = g.add(&g.matmul(&x, &w)?, &b)?; // (2, 4) + (4) broadcasts
//! let loss = g.cross_entropy(&g.relu(&y)?, &[1, 3])?;
//! let grads = g.backward(&loss)?;
//! let dw: &[f32] = grads.slice(&w).unwrap_or(&[]);
//! assert_eq!(dw.len(), 12);
//! # Ok(())
//! # }
//! ```
//!
//! ## Layout
//! - [`tensor`]: [`Device`], [`Storage`], [`Tensor`] (shape + device + storage: a CPU buffer,
//!   or an `f32` CUDA buffer with the `cuda` feature; see docs/gpu-training.md).
//! - [`cuda`]: opening CUDA devices once per process, [`CudaBuffer`], the device helpers.
//! - [`graph`]: the tape ([`Graph`], [`Var`], [`Gradients`], [`Mode`]).
//! - [`ops`]: one file per op family, each with its formulas and `# Shapes`.
//! - [`float`]: the [`Float`] trait (f32 / f64) and the matrix products.
//! - [`shape`]: broadcasting and axis helpers.
//! - [`error`]: the crate's one [`Error`] enum.
//!
//! ## Precision and checking
//! Every op is generic over [`Float`]: `Graph<f32>` (the default) trains, running its matrix
//! products through the `biokernels` tile-skipping GEMM; `Graph<f64>` runs the same op code
//! with plain f64 products. Finite-difference gradient checks run in f64, and the f32 path is
//! compared with independent NumPy float64 references (`xtask/python/autograd_reference.py`).
//!
//! ## Parameters and optimizers
//! A graph is built for every step. A layer keeps its weights as [`Tensor`]s with a stable
//! [`ParamId`] each (drawn once with [`ParamId::fresh`]), registers them with
//! [`Graph::param_with_id`] (or [`Graph::param`]; a cheap clone sharing the buffer) and, after
//! [`Graph::backward`], reads `grads.get_by_id(id)` or `grads.slice(&var)`; once the graph is
//! dropped, [`Tensor::data_mut`] hands the optimizer a `&mut [f32]` without copying.

pub mod cuda;
pub mod error;
pub mod float;
pub mod graph;
pub mod ops;
pub mod shape;
pub mod tensor;

pub use biokernels::cuda::Precision;
pub use biokernels::{TileMap, TileSize};
pub use cuda::CudaBuffer;
pub use error::{Error, Result};
pub use float::Float;
pub use graph::{Gradients, Graph, Mode, ParamId, Var};
pub use ops::batch_norm::BatchNormState;
pub use ops::conv::{Conv2dOptions, ConvGeometry, ConvMask, Padding};
pub use ops::pool::Pool2d;
pub use ops::rnn::RnnActivation;
pub use ops::upsample::Interpolation;
pub use tensor::{Device, Storage, Tensor};
