//! # bioexperiments
//!
//! The experiments of the workspace, one module each: a config struct, a run function and what
//! it reports. `cargo xtask` only parses arguments, calls these and prints.
//!
//! | module | command | what it runs |
//! |---|---|---|
//! | [`schizo_mnist`] | `reproduce schizo-mnist` | `SzDense` MLP on MNIST over `param_reduction` |
//! | [`cifar`] | `reproduce schizo-cifar`, `mouse-cifar` | the CIFAR-10 CNN with `SzDense` or `MConv2D` |
//! | [`synaptic_diversity`] | `reproduce synaptic-diversity` | fuzzy learning rates, crystallisation, rejuvenation |
//! | [`vgg16_schizo`] | `reproduce vgg16-schizo` | VGG16 on CIFAR-10, `SzConv2D(individual)` last convolution, Keras augmentation |
//! | [`rnn_memory`] | `reproduce rnn-memory` | bio vs randomised RNN topology on `seq_mem` |
//! | [`bionet`] | `reproduce bionet` | BioNet front ends, perturbations, CIFAR-10G |
//! | [`mnist_latents`] | `mnist-latents` | the MNIST CNN whose 50-d layer is `pic_latent_mem`'s table |
//! | [`rnn_runs`] | `rnn-run`, `merge-results`, `plot-loss`, `reproduce rnn-memory --full` | upstream's `config.ini` sweeps |
//! | [`bench_train`] | `bench-train` | training throughput of the `schizo-cifar` network |
//! | [`bench_rnn`] | `bench-rnn` | epoch time of the bio-instantiated RNN |
//!
//! Shared plumbing: [`common`] (the options of `reproduce`, the results folder with
//! `config.toml` and `env.txt`, `history.csv`, curves and `summary.md`), the image-classification
//! sweep behind the first three rows and `vgg16_schizo` (private `sweep` module, on [`biotasks::fit`]) and the one
//! RNN pipeline ([`rnn`]: bio2art topology → model → training loop → trimmed loss) behind
//! `rnn-memory`, `rnn-run` and `bench-rnn`. Data, tasks, the fit loop, checkpoints and plots are
//! in `biotasks`.
//!
//! ## Adding an experiment (e.g. the mouse GAN/DDIM or VGG16 runs)
//! 1. `src/<name>.rs` (or `src/<name>/mod.rs` past a few hundred lines): a `<Name>Config`
//!    (`Serialize`, every setting and seed, the paper's values in a constructor), a
//!    `run(opts: &ReproduceOptions, cfg: &<Name>Config) -> Result<…>` and its result type; module
//!    docs with the model (formula, `# Shapes`) and the source it reproduces.
//! 2. Models and data from `biolayers` / `biotasks`; an image classifier trains with
//!    [`biotasks::fit`] (checkpoints and `--resume` for free), an RNN through [`rnn`].
//! 3. Write the folder with [`common::prepare_results_folder`], `history.csv`
//!    ([`biotasks::fit::history_csv`]), [`common::write_curves`] and [`common::summary_table`].
//! 4. New failure kinds become variants of [`Error`]; no panics on user input.
//! 5. `xtask/src/cmd_reproduce.rs`: one match arm that calls `run` and prints; a test in
//!    `tests/` that runs the smallest setting.

pub mod band_forms;
pub mod bench_rnn;
pub mod bench_train;
pub mod bionet;
pub mod cifar;
pub mod claims;
pub mod common;
mod error;
pub mod export;
pub mod jobs;
pub mod mnist_latents;
pub mod mouse_gan;
pub mod rnn;
pub mod rnn_memory;
pub mod rnn_runs;
pub mod schizo_mnist;
pub mod stats;
mod sweep;
pub mod synaptic_diversity;
pub mod torch_check;
pub mod vgg16_schizo;
mod weights_file;

pub use common::{Overrides, Preset, ReproduceOptions, SettingResult};
pub use error::{Error, Result, Undecidable};
pub mod mouse_ddim;
pub mod scoring;
