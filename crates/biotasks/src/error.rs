//! The crate's error type.

/// Errors of the task generators, trial assembly and table loading. Every variant names what was
/// wrong; nothing in this crate panics on user input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is out of its valid range (`param` is the upstream/CLI name, e.g.
    /// `n_back`, `train_size`).
    #[error("{param} = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        param: &'static str,
        /// The value given, as text.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// An array does not have the expected shape or length.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        /// Which array.
        what: &'static str,
        /// Expected shape or length.
        expected: String,
        /// Shape or length found.
        got: String,
    },
    /// A latent table holds too few images of the other classes to fill a trial.
    #[error("label {label}: a trial needs {needed} distinct images of the other classes, only {available} exist")]
    NotEnoughImages {
        /// The target label.
        label: i64,
        /// Images needed.
        needed: usize,
        /// Images available.
        available: usize,
    },
    /// A value that must be finite is NaN or infinite.
    #[error("{what}: non-finite value {value} at index {index}")]
    NonFinite {
        /// Which array.
        what: &'static str,
        /// The value (NaN or ±inf).
        value: f64,
        /// Flat index of the first offending value.
        index: usize,
    },
    /// A dataset file or folder is missing or malformed; `path` names it.
    #[error("{path}: {detail}")]
    Data {
        /// The file or folder.
        path: std::path::PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Training failed (shapes, non-finite loss, parameter files).
    #[error(transparent)]
    Train(#[from] biolayers::Error),
    /// Reading a `.npy` file failed.
    #[error(transparent)]
    Npy(#[from] bionpy::Error),
    /// A random front end rejected its arguments.
    #[error(transparent)]
    Rng(biorng::Error),
    /// The FID network's weights file does not exist (it is made by a command, not shipped).
    #[error(
        "{path}: no FID network weights here; run `cargo xtask fid-weights` to make them (or pass --weights FILE)"
    )]
    MissingFidWeights {
        /// Where the weights were looked for.
        path: std::path::PathBuf,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl From<biorng::Error> for Error {
    /// A seed a stream cannot take is a bad `seed` parameter like any other; the rest stay
    /// the random front end's own errors.
    fn from(e: biorng::Error) -> Self {
        match e {
            biorng::Error::SeedOutOfRange { seed, limit, .. } => invalid("seed", seed, limit),
            other => Error::Rng(other),
        }
    }
}

pub(crate) fn invalid(param: &'static str, value: impl ToString, reason: impl Into<String>) -> Error {
    Error::InvalidParameter {
        param,
        value: value.to_string(),
        reason: reason.into(),
    }
}
