//! # biolayers
//!
//! Layers (dense, conv, masked `SzDense`/`MDense`/`MConv2D` variants), initialisers, optimisers,
//! BioConverter, filter banks and RNNs.
//!
//! Present today (tape-independent, so they serve the CPU and the future CUDA path alike):
//! * [`init`]: the initialisers of the originals (Keras `glorot_uniform`, `he_normal`,
//!   `he_uniform`; PyTorch's default `kaiming_uniform(a = √5)` and its bias rule; `zeros`), with
//!   Keras and PyTorch fan conventions.
//! * [`optim`]: SGD (momentum, Nesterov), Adam and RMSprop, each in an explicit Keras/TensorFlow
//!   or PyTorch convention.
//! * [`bio`]: synaptic diversity (Bio Transformations): `BioConfig` and the per-layer
//!   `BioSynapses` state with fuzzy learning rates, crystallisation, rejuvenation, weight
//!   splitting and Dale's principle.
//! * [`io`]: saving and loading named parameters as `.npz` (readable by `numpy.load`), atomically.
//! * [`interop`]: model weights in and out in PyTorch and Keras names and layouts (`safetensors`
//!   or `.npz`), masks beside the weights.
//!
//! * [`layers`]: `Dense`/`SzDense`/`MDense` (masked through the tile-skipping kernels), activations,
//!   dropout, pooling, batch-norm, flatten, `Sequential`.
//! * [`train`]: one optimisation step on the tape, prediction, model parameter files.
//! * [`filters`]: BioNet's fixed first-layer filter banks (Gabor, DoG, Low-pass) and the frozen
//!   layer that holds them; [`bionet`]: ALL-CNN-C / VGG-16 / ResNet-50 with a replaceable first
//!   layer, the retinal bottleneck and a ConvLSTM first stage ([`layers::ConvLstm`]); skip
//!   connections ([`layers::Residual`], [`layers::BottleneckConfig`]).
//! * [`inception`]: the TF-FID InceptionV3 feature extractor (inference only, BN folded), for
//!   the Fréchet Inception Distance of `biotasks::fid`.

pub mod bio;
pub mod bionet;
mod error;
pub mod filters;
pub mod inception;
pub mod init;
pub mod interop;
pub mod io;
pub mod layers;
pub mod optim;
pub mod train;

pub use error::{Error, Result};
pub mod ema;
