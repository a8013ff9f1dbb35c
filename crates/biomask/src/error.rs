//! The one error type of `biomask`.

/// Errors of mask generation. Each names the parameter at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A form name that is not one of `full, diagonal, gaussian, random, individual, kernel, 2d, matrix`.
    #[error(
        "unknown mask form `{0}` (expected one of: full, diagonal, gaussian, random, individual, kernel, 2d, matrix)"
    )]
    UnknownForm(String),
    /// A parameter outside its valid range.
    #[error("invalid `{name}` = {value}: {reason}")]
    InvalidParameter {
        name: &'static str,
        value: String,
        reason: String,
    },
    /// A form that the chosen layer kind does not support.
    #[error("mask form `{form}` is not defined for {layer} layers: {hint}")]
    UnsupportedForm {
        form: &'static str,
        layer: &'static str,
        hint: &'static str,
    },
    /// A shape that cannot hold a mask.
    #[error("invalid mask shape: {0}")]
    InvalidShape(String),
    /// A matrix mask's `.npy` file that cannot be read as a numeric array.
    #[error("matrix mask file `{path}`: {reason}")]
    Npy { path: String, reason: String },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(name: &'static str, value: impl std::fmt::Display, reason: impl Into<String>) -> Error {
    Error::InvalidParameter {
        name,
        value: value.to_string(),
        reason: reason.into(),
    }
}
