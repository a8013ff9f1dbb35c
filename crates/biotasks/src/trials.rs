//! [`Trials`]: time steps of many trials stacked row-wise, as upstream's generators return them.
//!
//! # Shapes
//! * `x`: `(rows, in_dim)` float32, row-major; column 0 is the cue channel.
//! * `y`: `(rows, 1)` float32 (the regression target for `seq_mem`, the class 0/1/2 for the
//!   match/non-match tasks).
//! * `trial_index`: `(rows,)` int64, the trial id of every row (upstream: float64 holding whole
//!   numbers; int64 here, same values).
//!
//! Every trial of a set has the same number of time steps, `steps`, and its rows are contiguous
//! as generated; after a split or shuffle the rows of one trial stay together and in order.

use crate::error::{invalid, Error, Result};

/// Largest trial set a generator makes, in input values (`rows × in_dim`): 2^28, 1 GiB of `f32`
/// (upstream's largest settings, 500 + 500 trials of a few dozen steps, are far below it). It is
/// checked before anything is allocated, so a size from a flag or a config that cannot fit is a
/// typed error naming the parameter instead of an abort.
pub const MAX_TRIAL_VALUES: usize = 1 << 28;

/// Checks that `trials` trials (× `kinds`: 2 for match and non-match) of `steps` time steps of
/// `in_dim` inputs fit [`MAX_TRIAL_VALUES`]; `steps` is `None` when computing it overflowed.
/// Names `length_param` when one trial alone is too long, else `trials`.
pub(crate) fn check_size(
    length_param: &'static str,
    length: usize,
    steps: Option<usize>,
    trials: usize,
    kinds: usize,
    in_dim: usize,
) -> Result<()> {
    let per_trial = steps
        .and_then(|s| s.checked_mul(in_dim))
        .filter(|&v| v <= MAX_TRIAL_VALUES);
    let Some(per_trial) = per_trial else {
        return Err(invalid(
            length_param,
            length,
            format!("one trial would exceed the limit of {MAX_TRIAL_VALUES} values (biotasks::MAX_TRIAL_VALUES)"),
        ));
    };
    let total = trials.checked_mul(kinds).and_then(|t| t.checked_mul(per_trial));
    if total.is_none_or(|t| t > MAX_TRIAL_VALUES) {
        return Err(invalid(
            "trials",
            trials,
            format!(
                "{trials} × {kinds} trials of {per_trial} values exceed the limit of {MAX_TRIAL_VALUES} values \
                 (biotasks::MAX_TRIAL_VALUES)"
            ),
        ));
    }
    Ok(())
}

/// A stack of trials, one row per time step.
#[derive(Debug, Clone, PartialEq)]
pub struct Trials {
    /// Inputs, `(rows, in_dim)` row-major.
    pub x: Vec<f32>,
    /// Targets, `(rows, 1)`.
    pub y: Vec<f32>,
    /// Trial id of each row, `(rows,)`.
    pub trial_index: Vec<i64>,
    /// Input width (cue channel included).
    pub in_dim: usize,
    /// Time steps per trial.
    pub steps: usize,
}

impl Trials {
    /// Builds a trial set after checking that the lengths agree.
    pub fn new(x: Vec<f32>, y: Vec<f32>, trial_index: Vec<i64>, in_dim: usize, steps: usize) -> Result<Self> {
        let rows = trial_index.len();
        if y.len() != rows {
            return Err(Error::Shape {
                what: "y",
                expected: format!("({rows}, 1)"),
                got: format!("{} values", y.len()),
            });
        }
        if in_dim == 0 || x.len() != rows * in_dim {
            return Err(Error::Shape {
                what: "x",
                expected: format!("({rows}, {in_dim})"),
                got: format!("{} values", x.len()),
            });
        }
        if steps == 0 || rows % steps != 0 {
            return Err(Error::Shape {
                what: "trial_index",
                expected: format!("a multiple of steps = {steps} rows"),
                got: format!("{rows} rows"),
            });
        }
        Ok(Self {
            x,
            y,
            trial_index,
            in_dim,
            steps,
        })
    }

    pub(crate) fn with_capacity(rows: usize, in_dim: usize, steps: usize) -> Self {
        Self {
            x: Vec::with_capacity(rows * in_dim),
            y: Vec::with_capacity(rows),
            trial_index: Vec::with_capacity(rows),
            in_dim,
            steps,
        }
    }

    /// Number of rows (time steps over all trials).
    pub fn rows(&self) -> usize {
        self.trial_index.len()
    }

    /// Number of trials (`rows / steps`).
    pub fn n_trials(&self) -> usize {
        self.rows() / self.steps
    }

    /// Row `r` of `x`.
    pub fn x_row(&self, r: usize) -> &[f32] {
        &self.x[r * self.in_dim..(r + 1) * self.in_dim]
    }

    /// The rows `idx`, in that order (NumPy fancy indexing `X[idx]`, `Y[idx]`, `ids[idx]`).
    /// Indices must be `< rows()`; `idx.len()` must be a multiple of `steps`.
    pub fn select_rows(&self, idx: &[usize]) -> Trials {
        let mut out = Trials::with_capacity(idx.len(), self.in_dim, self.steps);
        for &r in idx {
            out.x.extend_from_slice(self.x_row(r));
            out.y.push(self.y[r]);
            out.trial_index.push(self.trial_index[r]);
        }
        out
    }

    /// Appends `other`'s rows after shifting its trial ids by `offset` (upstream's
    /// `indexes_non_match += max(indexes_match) + 1` followed by `vstack`).
    pub(crate) fn append_shifted(&mut self, other: &Trials, offset: i64) {
        self.x.extend_from_slice(&other.x);
        self.y.extend_from_slice(&other.y);
        self.trial_index.extend(other.trial_index.iter().map(|&i| i + offset));
    }

    /// Sorted distinct trial ids (`np.unique(trial_index)`).
    pub fn unique_ids(&self) -> Vec<i64> {
        let mut ids = self.trial_index.clone();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}
