//! The one error type of `biolayers`.

/// Errors of layers, initialisers, optimisers and parameter files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value outside its valid range.
    #[error("invalid `{name}` = {value}: {reason}")]
    InvalidConfig {
        name: &'static str,
        value: String,
        reason: String,
    },
    /// Arrays whose lengths or shapes do not agree.
    #[error("{op}: shape mismatch: {lhs_name} {lhs:?} vs {rhs_name} {rhs:?}")]
    ShapeMismatch {
        op: &'static str,
        lhs_name: &'static str,
        lhs: Vec<usize>,
        rhs_name: &'static str,
        rhs: Vec<usize>,
    },
    /// A non-finite value where training cannot continue.
    #[error("{op}: non-finite value in `{what}`")]
    NonFinite { op: &'static str, what: String },
    /// A parameter file problem (missing, corrupt, wrong names or shapes).
    #[error("{path}: {detail}")]
    ParamFile { path: std::path::PathBuf, detail: String },
    /// One tensor of a weight file that does not fit the model (missing, unexpected, wrong
    /// shape or dtype, a different mask), named.
    #[error("{path}: tensor `{tensor}`: {detail}")]
    WeightFile {
        path: std::path::PathBuf,
        tensor: String,
        detail: String,
    },
    /// A `.npy`/file error.
    #[error(transparent)]
    Npy(#[from] bionpy::Error),
    /// An error of the tape (shapes, devices).
    #[error(transparent)]
    Autograd(#[from] bioautograd::Error),
    /// An error of mask generation.
    #[error(transparent)]
    Mask(#[from] biomask::Error),
    /// A random stream's saved state that no stream can be in.
    #[error(transparent)]
    Rng(#[from] biorng::Error),
    /// An error of the kernels (tile maps).
    #[error(transparent)]
    Kernels(#[from] biokernels::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(name: &'static str, value: impl std::fmt::Display, reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        name,
        value: value.to_string(),
        reason: reason.into(),
    }
}
