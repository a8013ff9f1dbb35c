//! The crate's error type.

/// Everything that can go wrong in this crate. Every variant names the parameter, region or file
/// involved; nothing here is a bug of the caller's program that would warrant a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `data_name` is not one of the bundled connectomes.
    #[error("unknown connectome {name:?}; available: {available}")]
    UnknownConnectome {
        /// The name asked for.
        name: String,
        /// The bundled names, comma-separated.
        available: String,
    },
    /// Neuron-density scaling was asked for a connectome without density data.
    #[error("connectome {connectome} has no neuron-density data (available for: {available})")]
    NoNeuronDensity {
        /// The connectome's name.
        connectome: String,
        /// The connectomes that have density data, comma-separated.
        available: String,
    },
    /// A per-region list has the wrong length (upstream prints a message and returns `None`).
    #[error("{what}: expected {expected} values (one per region of {connectome}), got {got}")]
    LengthMismatch {
        /// Which list (`neuron_density`, `region_names`, ...).
        what: &'static str,
        /// The connectome's name.
        connectome: String,
        /// The number of regions.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// One entry of a neuron-count or neuron-density vector is unusable.
    #[error("{what}[{index}] = {value}: {reason}")]
    InvalidDensity {
        /// Which vector (`neuron_density` or `neuron density data`).
        what: &'static str,
        /// The region index.
        index: usize,
        /// The offending value, as text.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A scalar parameter is out of its range.
    #[error("{param} = {value}: {expected}")]
    InvalidParameter {
        /// The parameter's name, as in upstream's signature (`target_sparsity`, ...).
        param: &'static str,
        /// The offending value, as text.
        value: String,
        /// The accepted range.
        expected: &'static str,
    },
    /// A region-level matrix given by the caller is unusable.
    #[error("connectome {connectome}: {detail}")]
    InvalidMatrix {
        /// The connectome's name.
        connectome: String,
        /// What is wrong.
        detail: String,
    },
    /// The neuron-level matrix would not fit in memory (or in `usize`).
    #[error("a {neurons} x {neurons} neuron matrix is too large: {detail}")]
    TooLarge {
        /// The number of neurons M.
        neurons: usize,
        /// Why.
        detail: String,
    },
    /// A matrix handed to the RNN helpers (`topology`) has the wrong size or a non-finite value.
    #[error("{detail}")]
    InvalidRecurrent {
        /// What is wrong.
        detail: String,
    },
    /// A file bundled in the crate could not be parsed (a corrupted build).
    #[error("bundled data file {file}: {detail}")]
    BundledData {
        /// The bundled file's name.
        file: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
