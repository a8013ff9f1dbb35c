//! # biorng
//!
//! The Mersenne Twister MT19937 with two front ends that reproduce, bit for bit, the random
//! streams the original Python projects used:
//!
//! * [`NumpyRandomState`]: NumPy's legacy `numpy.random.RandomState` / the global
//!   `numpy.random.seed(s); numpy.random.rand(...)` stream (`random_sample`, `rand`, `uniform`,
//!   `randint`, `shuffle`, `permutation`, `standard_normal`/`normal` with the cached polar
//!   Box-Muller pair, `choice`).
//! * [`PyRandom`]: CPython's `random` module (`random.seed(int)`, `random()`, `uniform`,
//!   `getrandbits`, `randrange`, `randint`, `shuffle`, `choice`, `sample`).
//!
//! [`Stream`] wraps either of them, or the project's default ChaCha8 generator, behind one type that
//! every crate takes as its explicit source of randomness; [`RngKind`] names which one a config or
//! command line chose.
//!
//! Both are driven by the same [`Mt19937`] core and differ only in seeding and in how raw 32-bit
//! words become doubles and integers. The crate knows nothing about masks or tensors; it exists so
//! that `biomask`, `bio2art` and `biotasks` can reproduce upstream runs for the same seed.
//!
//! Doubles in both front ends use the 53-bit construction
//! `((a >> 5) * 2^26 + (b >> 6)) / 2^53` from two consecutive words `a`, `b`.

mod kind;
mod mt;
mod numpy;
mod python;
mod state;
mod stream;

pub use kind::RngKind;
pub use mt::Mt19937;
pub use numpy::NumpyRandomState;
pub use python::PyRandom;
pub use state::StreamState;
pub use stream::Stream;

/// Errors from the random front ends (bad arguments that NumPy/CPython would raise on).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An empty range or population was given where at least one element is needed.
    #[error("{op}: empty range or population ({detail})")]
    EmptyRange { op: &'static str, detail: String },
    /// A sample larger than its population was requested without replacement.
    #[error("{op}: sample larger than population (k = {k}, n = {n})")]
    SampleTooLarge { op: &'static str, k: usize, n: usize },
    /// Probabilities that are negative, non-finite, of the wrong length or do not sum to 1.
    #[error("{op}: invalid probabilities: {detail}")]
    InvalidProbabilities { op: &'static str, detail: String },
    /// A saved generator state that no generator can be in (wrong length, index out of range,
    /// a non-finite cached normal, an unparsable position); `kind` names the generator.
    #[error("{kind} state: {detail}")]
    InvalidState { kind: &'static str, detail: String },
    /// A seed the chosen stream cannot take.
    #[error("seed = {seed}: {limit}")]
    SeedOutOfRange {
        kind: &'static str,
        seed: u64,
        limit: &'static str,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Turns two consecutive 32-bit words into a double in [0, 1) with 53 random bits, exactly as
/// NumPy's `legacy_double`/`random_standard_uniform` and CPython's `random_random` do.
#[inline]
pub(crate) fn words_to_f64(a: u32, b: u32) -> f64 {
    let a = (a >> 5) as f64;
    let b = (b >> 6) as f64;
    (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
}
