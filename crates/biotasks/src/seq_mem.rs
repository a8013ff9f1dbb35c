//! `seq_mem`: remember a sequence of numbers and replay it after a cue (upstream
//! `tasks.generate_sequence_patterns`).
//!
//! One trial with pattern length `L` has `T = 2L + 1` time steps and two input channels:
//!
//! | step            | x\[0\] (cue) | x\[1\] (value) | y        |
//! |-----------------|-------------|---------------|----------|
//! | `0 ..= L-1`     | 0           | `v[t]`        | 0        |
//! | `L`             | 1           | 0             | 0        |
//! | `L+1 ..= 2L`    | 0           | 0             | `v[t-L-1]` |
//!
//! `v` = `L` draws of `uniform(low, high)` (NumPy `np.random.uniform(low, high, L)`, one call per
//! trial, cast to float32). The target replays the values in the same order, starting one step
//! after the cue. Regression (MSE on the trimmed rows).
//!
//! # Shapes
//! `x` `(n·(2L+1), 2)`, `y` `(n·(2L+1), 1)`, `trial_index` `(n·(2L+1),)` with ids `0..n`.
//!
//! # Randomness
//! Exactly `L` uniform doubles per trial, trial after trial: with [`biorng::Stream::numpy`]`(s)`
//! this is upstream's stream after `np.random.seed(s)`.

use biorng::Stream;

use crate::error::{invalid, Result};
use crate::trials::Trials;

/// Parameters of `seq_mem` (upstream `generate_sequence_patterns`).
#[derive(Debug, Clone, PartialEq)]
pub struct SeqMem {
    /// Values to memorise per trial, `L >= 1` (upstream default 3; swept over 3, 5, 10).
    pub pattern_length: usize,
    /// Lower bound of the uniform values (upstream default 0).
    pub low: f64,
    /// Upper bound of the uniform values (upstream default 1).
    pub high: f64,
    /// Number of trials `n >= 1` (upstream default 100).
    pub trials: usize,
}

impl Default for SeqMem {
    fn default() -> Self {
        Self {
            pattern_length: 3,
            low: 0.0,
            high: 1.0,
            trials: 100,
        }
    }
}

impl SeqMem {
    /// Time steps per trial, `2L + 1`.
    pub fn steps(&self) -> usize {
        2 * self.pattern_length + 1
    }

    /// Input width (cue + value).
    pub const IN_DIM: usize = 2;

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        if self.pattern_length == 0 {
            return Err(invalid("pattern_length", 0, "must be at least 1"));
        }
        if self.trials == 0 {
            return Err(invalid("trials", 0, "must be at least 1"));
        }
        if !self.low.is_finite() {
            return Err(invalid("low", self.low, "must be finite"));
        }
        if !self.high.is_finite() || !(self.high - self.low).is_finite() {
            return Err(invalid("high", self.high, "must be finite (and high - low too)"));
        }
        // NumPy's uniform(low, high) also draws for low >= high (from (high, low]), but a
        // reversed or empty range is a typo far more often than an intent.
        if self.high <= self.low {
            return Err(invalid(
                "high",
                self.high,
                format!(
                    "must be greater than low = {} (the values are uniform in [low, high))",
                    self.low
                ),
            ));
        }
        let steps = self.pattern_length.checked_mul(2).and_then(|s| s.checked_add(1));
        crate::trials::check_size(
            "pattern_length",
            self.pattern_length,
            steps,
            self.trials,
            1,
            Self::IN_DIM,
        )
    }

    /// Generates the trials (see the module docs).
    pub fn generate(&self, rng: &mut Stream) -> Result<Trials> {
        self.validate()?;
        let l = self.pattern_length;
        let steps = self.steps();
        let mut out = Trials::with_capacity(steps * self.trials, Self::IN_DIM, steps);
        let mut values = vec![0f32; l];
        for tr in 0..self.trials {
            for v in values.iter_mut() {
                *v = rng.uniform(self.low, self.high) as f32;
            }
            for t in 0..steps {
                let (cue, val, target) = if t < l {
                    (0.0, values[t], 0.0)
                } else if t == l {
                    (1.0, 0.0, 0.0)
                } else {
                    (0.0, 0.0, values[t - l - 1])
                };
                out.x.push(cue);
                out.x.push(val);
                out.y.push(target);
                out.trial_index.push(tr as i64);
            }
        }
        Ok(out)
    }
}

/// `seq_mem` with the given parameters (shorthand for [`SeqMem::generate`]).
pub fn seq_mem(params: &SeqMem, rng: &mut Stream) -> Result<Trials> {
    params.generate(rng)
}
