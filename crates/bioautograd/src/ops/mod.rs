//! The ops, one file per family. Each file adds methods to [`Graph`](crate::Graph) and
//! documents its forward and backward formulas and its `# Shapes`.
//!
//! | file | ops |
//! |---|---|
//! | [`matmul`] | `matmul`, `masked_matmul` (biokernels) |
//! | [`binary`] | broadcasting `add`, `sub`, `mul`, `div` |
//! | [`reduce`] | `sum`, `mean`, `sum_axis`, `mean_axis` |
//! | [`shape_ops`] | `reshape`, `flatten`, `concat`, `slice`, `transpose` |
//! | [`activation`] | `relu`, `leaky_relu`, `tanh`, `sigmoid` |
//! | [`softmax`] | `softmax`, `log_softmax` |
//! | [`loss`] | `cross_entropy`, `cross_entropy_one_hot`, `nll`, `mse` |
//! | [`pool`] | `max_pool2d`, `avg_pool2d` |
//! | [`dropout`] | `dropout` |
//! | [`batch_norm`] | `batch_norm2d` |
//! | [`conv`] | `conv2d`, `conv_transpose2d` (masked or not; biokernels) |
//! | [`rnn`] | `elman_sequence` (a whole masked Elman recurrence with its BPTT, one node) |
//! | [`bce`] | `binary_cross_entropy_with_logits`, `binary_cross_entropy` (Keras clipping) |
//! | [`spectral_norm`] | `power_iteration` of Keras `SpectralNormalization` (host, no tape node) |
//! | [`norm`] | `group_norm` |
//! | [`upsample`] | `upsample2d` (nearest, bilinear with half-pixel centres) |
//! | [`swish`] | `swish` (SiLU) |
//! | [`mae`] | `mae` (mean absolute error) |

pub mod activation;
pub mod batch_norm;
pub mod bce;
pub mod binary;
pub mod conv;
pub mod dropout;
mod gpu;
mod gpu_norm;
pub mod loss;
pub mod mae;
pub mod matmul;
pub mod norm;
mod par;
pub mod pool;
pub mod reduce;
pub mod rnn;
pub mod shape_ops;
pub mod softmax;
pub mod spectral_norm;
pub mod swish;
pub mod upsample;
