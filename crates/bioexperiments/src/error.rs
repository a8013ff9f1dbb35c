//! The crate's error type.

/// Errors of the experiments. Every variant names what was wrong (the file, the configuration
/// key); nothing in this crate panics on user input. Errors of the data, task and training layers
/// are wrapped unchanged (same message); a bad parameter or array shape is
/// `Tasks(biotasks::Error::InvalidParameter | Shape)`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder is missing or malformed; `path` names it.
    #[error("{path}: {detail}")]
    Data {
        /// The file or folder.
        path: std::path::PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A run configuration (`rnn-run --config`) is invalid; `key` names the entry
    /// (`[section] key` or `[section] dict.key`).
    #[error("{file}: {key}: {detail}")]
    Config {
        /// The configuration file.
        file: std::path::PathBuf,
        /// The offending section / key.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// Results folders cannot be merged (duplicate or missing jobs, different configurations).
    #[error("merge-results: {detail}")]
    Merge {
        /// What is wrong.
        detail: String,
    },
    /// Data, tasks, the fit loop, checkpoints or plots failed.
    #[error(transparent)]
    Tasks(#[from] biotasks::Error),
    /// Training failed (shapes, non-finite loss, parameter files).
    #[error(transparent)]
    Train(#[from] biolayers::Error),
    /// The connectome conversion failed.
    #[error(transparent)]
    Bio2art(#[from] bio2art::Error),
    /// Reading or writing a `.npy` file failed.
    #[error(transparent)]
    Npy(#[from] bionpy::Error),
    /// A random front end rejected its arguments.
    #[error(transparent)]
    Rng(#[from] biorng::Error),
    /// A statistic or test cannot be computed from these values ([`crate::stats`]); the
    /// summaries report the comparison as undecided, naming the reason.
    #[error("{test}: {reason}")]
    Undecidable {
        /// The statistic or test.
        test: &'static str,
        /// Why it cannot be computed.
        reason: Undecidable,
    },
    /// A job stopped on purpose before its end, its checkpoint saved (the epoch budget of the
    /// tests of `--resume`); a `--resume` continues it.
    #[error("interrupted: {detail}")]
    Interrupted {
        /// Which job, after which epoch.
        detail: String,
    },
    /// The worker threads of concurrent jobs ([`crate::jobs`]) could not be started, or one
    /// of them stopped without a result.
    #[error("concurrent jobs: {detail}")]
    Workers {
        /// What failed.
        detail: String,
    },
}

/// Why a statistic cannot be computed ([`Error::Undecidable`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Undecidable {
    /// Fewer values than the statistic needs.
    TooFew {
        /// Values given.
        n: usize,
        /// Values needed.
        need: usize,
    },
    /// Every value (or every difference) is the same: the t statistic is 0/0.
    ZeroVariance,
    /// A value is NaN or infinite (a diverged run).
    NonFinite {
        /// Its position.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A paired test of samples of different lengths.
    LengthMismatch {
        /// Length of the first sample.
        a: usize,
        /// Length of the second.
        b: usize,
    },
    /// Degrees of freedom that are not positive.
    DegreesOfFreedom {
        /// The value.
        df: f64,
    },
    /// A probability outside (0, 1).
    Probability {
        /// The value.
        p: f64,
    },
}

impl std::fmt::Display for Undecidable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Undecidable::TooFew { n, need } => write!(f, "{n} value(s), needs at least {need}"),
            Undecidable::ZeroVariance => write!(f, "no variance (all values equal), the t statistic is undefined"),
            Undecidable::NonFinite { index, value } => write!(f, "value {index} is {value} (a diverged run)"),
            Undecidable::LengthMismatch { a, b } => write!(f, "samples of {a} and {b} values cannot be paired"),
            Undecidable::DegreesOfFreedom { df } => write!(f, "degrees of freedom {df} must be > 0"),
            Undecidable::Probability { p } => write!(f, "probability {p} must be in (0, 1)"),
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl From<biomask::Error> for Error {
    fn from(e: biomask::Error) -> Self {
        Error::Train(biolayers::Error::from(e))
    }
}

impl From<bioautograd::Error> for Error {
    fn from(e: bioautograd::Error) -> Self {
        Error::Train(biolayers::Error::from(e))
    }
}

/// `param = value: reason` ([`biotasks::Error::InvalidParameter`]).
/// A file or folder that could not be read or written ([`Error::Data`] naming it).
pub(crate) fn io_err(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

pub(crate) fn invalid(param: &'static str, value: impl ToString, reason: impl Into<String>) -> Error {
    Error::Tasks(biotasks::Error::InvalidParameter {
        param,
        value: value.to_string(),
        reason: reason.into(),
    })
}

/// `what: expected …, got …` ([`biotasks::Error::Shape`]).
pub(crate) fn shape(what: &'static str, expected: impl Into<String>, got: impl Into<String>) -> Error {
    Error::Tasks(biotasks::Error::Shape {
        what,
        expected: expected.into(),
        got: got.into(),
    })
}
