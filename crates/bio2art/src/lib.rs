//! # bio2art
//!
//! Region-level connectomes turned into neuron-level recurrent topologies: a Rust port of the
//! Python package **bio2art** by Alexandros Goulas (MIT), used by "Bio-instantiated recurrent
//! neural networks" (Goulas, Damicelli & Hilgetag, *Neural Networks* 2021).
//!
//! * [`Connectome`]: the six connectomes bio2art ships (macaque, marmoset, two mouse, human,
//!   drosophila), embedded in the crate with their region names and, for macaque and marmoset,
//!   neuron densities. See [`list`], [`CONNECTOME_NAMES`], [`DATA_ATTRIBUTION`].
//! * [`convert`]: `importnet.from_conn_mat` with every upstream parameter and default
//!   ([`Bio2artConfig`]); returns a [`Bio2artNetwork`]: the M x M weight matrix (row = source
//!   neuron, column = target), its topology, and the region -> neuron map (sorted contiguous
//!   ranges).
//! * [`scale_neuron_density`]: upstream's `rank` / `ratio` neuron-count scaling.
//! * Randomness comes from an explicit [`Stream`] (`biorng::Stream`, see [`RngKind`]): the
//!   project's value-stable ChaCha8 stream, or CPython's `random` reproducing upstream's
//!   matrices bit for bit for the same seed.
//!
//! * [`topology`]: the neuron matrix as an RNN's recurrent matrix ([`Orientation`],
//!   [`RecurrentMatrix`]), upstream's `random_w` ([`random_w`]) and `remap_w` ([`remap_w`]).
//!
//! Upstream's silent failures become [`Error`]s (wrong `neuron_density` length, unknown name,
//! out-of-range parameters, zero or NaN densities) or [`Warning`]s (the intrinsic weight of a
//! one-neuron region with `keep_diag = false`). Differences from upstream are listed in
//! `docs/bio2art.md`.
//!
//! ```
//! use bio2art::{convert, Bio2artConfig, Connectome, NeuronDensity, Stream};
//!
//! let marmoset = Connectome::load("Marmoset_Normalized")?;
//! let config = Bio2artConfig {
//!     neuron_density: NeuronDensity::Uniform(4),
//!     target_sparsity: 0.8,
//!     keep_diag: false,
//!     ..Bio2artConfig::default()
//! };
//! let net = convert(&marmoset, &config, &mut Stream::python(42))?;
//! assert_eq!(net.n_neurons, 220);
//! assert_eq!(net.connection_count(), 23004);
//! # Ok::<(), bio2art::Error>(())
//! ```
//!
//! # Shapes
//! * [`Connectome::weights`]: N x N row-major, row = source region.
//! * [`Bio2artNetwork::weights`] / [`Bio2artNetwork::connected`]: M x M row-major, row = source
//!   neuron; [`Bio2artNetwork::transposed`] gives row = target (PyTorch `W_hh`).
//! * [`Bio2artNetwork::regions`]: N ranges tiling `0..M`.

pub mod connectome;
pub mod conversion;
pub mod density;
mod error;
mod numpy_sum;
pub mod rng;
pub mod topology;

pub use biorng::Stream;
pub use connectome::{list, Connectome, ConnectomeInfo, CONNECTOME_NAMES, DATA_ATTRIBUTION, DATA_LICENSE};
pub use conversion::{convert, Bio2artConfig, Bio2artNetwork, Bio2artSpec, Warning, MAX_NEURONS};
pub use density::{scale_neuron_density, NeuronDensity, ScaleType, MAX_NEURONS_PER_REGION};
pub use error::{Error, Result};
pub use rng::RngKind;
pub use topology::{is_symmetric, random_w, recurrent_matrix, remap_w, Orientation, RecurrentMatrix};
