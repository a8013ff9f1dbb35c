//! `nback_mem`: does the last number equal the one `n_back` steps before it? (upstream
//! `tasks.generate_nback_wm_trials` through `wrapper_trials`).
//!
//! One trial with trial length `TL` has `T = TL + 1` time steps and two input channels:
//!
//! | step          | x\[0\] (cue)        | x\[1\] (value) | y                              |
//! |---------------|--------------------|---------------|--------------------------------|
//! | `0 ..= TL-2`  | 0                  | `v[t]`        | 0                              |
//! | `TL-1`        | 1                  | `v[TL-1]`     | 0                              |
//! | `TL`          | 0                  | 0             | 2 (match) / 1 (non-match)      |
//!
//! Per trial: `v` = `TL` draws of `uniform(0, 1)`, then one more draw `target`. `v[TL-1] = target`;
//! in a **match** trial also `v[TL-1-n_back] = target`; in a non-match trial the `n_back`-back
//! value stays the random draw (different with probability 1). Values are cast to float32.
//! Three-class classification on the trimmed (decision) row.
//!
//! [`NbackMem::generate`] returns `trials` match trials (ids `0..n`) followed by `trials` non-match
//! trials (ids `n..2n`), drawn in that order, as upstream's `wrapper_trials`.
//!
//! # Shapes
//! `x` `(2n·(TL+1), 2)`, `y` `(2n·(TL+1), 1)`, `trial_index` `(2n·(TL+1),)`.
//!
//! # Randomness
//! `TL + 1` uniform doubles per trial (`np.random.uniform(0, 1, TL)` then
//! `np.random.uniform(0, 1, 1)`): with [`biorng::Stream::numpy`]`(s)` this is upstream's stream
//! after `np.random.seed(s)`.

use biorng::Stream;

use crate::error::{invalid, Result};
use crate::trials::Trials;

/// Parameters of `nback_mem`.
#[derive(Debug, Clone, PartialEq)]
pub struct NbackMem {
    /// Values per trial `TL` (upstream 5).
    pub trial_length: usize,
    /// Distance of the compared value, `1 <= n_back < TL` (upstream 2, 3, 4).
    pub n_back: usize,
    /// Match trials, and again non-match trials (`nr_of_trials`; upstream 500).
    pub trials: usize,
}

impl Default for NbackMem {
    fn default() -> Self {
        Self {
            trial_length: 5,
            n_back: 2,
            trials: 100,
        }
    }
}

impl NbackMem {
    /// Input width (cue + value).
    pub const IN_DIM: usize = 2;

    /// Time steps per trial, `TL + 1`.
    pub fn steps(&self) -> usize {
        self.trial_length + 1
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        check_nback(self.trial_length, self.n_back, self.trials)
    }

    /// `trials` trials of one kind (upstream's generator with `trial_matching = matching`), ids
    /// `0..trials`.
    pub fn generate_block(&self, matching: bool, rng: &mut Stream) -> Result<Trials> {
        self.validate()?;
        let tl = self.trial_length;
        let steps = self.steps();
        let mut out = Trials::with_capacity(steps * self.trials, Self::IN_DIM, steps);
        let mut values = vec![0f64; tl];
        for tr in 0..self.trials {
            for v in values.iter_mut() {
                *v = rng.uniform(0.0, 1.0);
            }
            let target = rng.uniform(0.0, 1.0);
            values[tl - 1] = target;
            if matching {
                values[tl - 1 - self.n_back] = target;
            }
            for t in 0..steps {
                let val = values.get(t).map_or(0.0, |&v| v as f32);
                let cue = if t + 1 == tl { 1.0 } else { 0.0 };
                out.x.push(cue);
                out.x.push(val);
                out.y.push(if t == tl { decision_label(matching) } else { 0.0 });
                out.trial_index.push(tr as i64);
            }
        }
        Ok(out)
    }

    /// Match trials then non-match trials (see the module docs).
    pub fn generate(&self, rng: &mut Stream) -> Result<Trials> {
        let mut all = self.generate_block(true, rng)?;
        let non_match = self.generate_block(false, rng)?;
        all.append_shifted(&non_match, self.trials as i64);
        Ok(all)
    }
}

/// `nback_mem` with the given parameters (shorthand for [`NbackMem::generate`]).
pub fn nback_mem(params: &NbackMem, rng: &mut Stream) -> Result<Trials> {
    params.generate(rng)
}

/// The decision-step class: 2 for a match trial, 1 for a non-match trial.
pub(crate) fn decision_label(matching: bool) -> f32 {
    if matching {
        2.0
    } else {
        1.0
    }
}

pub(crate) fn check_nback(trial_length: usize, n_back: usize, trials: usize) -> Result<()> {
    if trial_length == 0 {
        return Err(invalid("trial_length", 0, "must be at least 1"));
    }
    if n_back == 0 {
        return Err(invalid(
            "n_back",
            0,
            "must be at least 1 (with 0 match and non-match trials would be identical)",
        ));
    }
    if n_back >= trial_length {
        return Err(invalid(
            "n_back",
            n_back,
            format!("must be less than the trial length {trial_length}"),
        ));
    }
    if trials == 0 {
        return Err(invalid("trials", 0, "must be at least 1"));
    }
    // Match and non-match trials of at least the two inputs (cue, value); a latent table's
    // wider rows are checked against the table.
    crate::trials::check_size(
        "trial_length",
        trial_length,
        trial_length.checked_add(1),
        trials,
        2,
        NbackMem::IN_DIM,
    )
}
