//! Early stopping on a validation plateau: train until the validation loss stops improving by
//! a relative `min_delta` for `patience` epochs in a row, or until an epoch cap.
//!
//! Epoch `e = 1, 2, …` ends with the validation loss `l_e`. The **reference** `r` (Keras's
//! `best`) starts at `+∞`; epoch `e` is an **improvement** when `l_e` is finite and
//!
//! ```text
//! l_e < r − min_delta · |r|        (r = +∞: every finite l_e)
//! ```
//!
//! An improvement sets `r = l_e` and `wait = 0`, any other epoch (a non-finite loss included)
//! makes `wait = wait + 1`. Training stops after epoch `e` when `wait ≥ patience` and
//! `e ≥ min_epochs` (a **plateau**: `patience` epochs without a relative improvement of
//! `min_delta` over the reference, not before `min_epochs`) or when `e = max_epochs` (the
//! **cap**, checked second: a plateau reached at the cap is reported as a plateau). Because the
//! reference only moves on an improvement, a slow decline whose per-epoch steps are each below
//! `min_delta` still resets `wait` once the steps add up to `min_delta · |r|`. `min_epochs`
//! (Keras's `start_from_epoch` in spirit; `wait` counts from epoch 1 all the same) keeps a network
//! that sits on a chance-level plateau before it finds the task (an RNN on `nback_mem` at lr
//! 1e-4: about 150 epochs at `ln 2`) from being stopped there.
//!
//! Independently, the **best epoch** `b = argmin_e l_e` (the first of equal minima; finite losses
//! only) is tracked: the epoch whose weights a run restoring the best weights keeps, so the
//! metrics of a converged run are those of epoch `b` (`b ≤` the last improvement `≤ e`).
//!
//! The state after `e` epochs ([`EarlyStoppingState`]) is a function of `l_1 … l_e` alone
//! ([`EarlyStopping::replay`]), so a run resumed from a checkpoint holding the state (see
//! [`crate::checkpoint`]) stops at the epoch of the uninterrupted run.
//!
//! # Shapes
//! Scalars: one validation loss per epoch in, one decision per epoch out.

use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};

/// The rule: patience, relative `min_delta` and the epoch cap (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Epochs without an improvement after which training stops (≥ 1).
    pub patience: usize,
    /// The relative improvement that counts, in `[0, 1)` (0: any decrease).
    pub min_delta: f64,
    /// No plateau stop before this epoch (0 or 1: from the first).
    pub min_epochs: usize,
    /// The epoch cap (≥ 1): training stops after this epoch in any case.
    pub max_epochs: usize,
}

/// Why training stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `patience` epochs without an improvement.
    Plateau,
    /// The epoch cap was reached before a plateau.
    Cap,
}

/// The state of [`EarlyStopping`] after some epochs: what a checkpoint saves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStoppingState {
    /// Epochs observed.
    pub epochs: usize,
    /// The loss of the last improvement (`+∞` before the first).
    pub reference: f64,
    /// Epochs since the last improvement (`wait`).
    pub since_improvement: usize,
    /// The lowest finite loss so far (`+∞` before the first).
    pub best_loss: f64,
    /// Its epoch (1-based; 0 before the first finite loss).
    pub best_epoch: usize,
}

impl Default for EarlyStoppingState {
    /// No epoch observed.
    fn default() -> Self {
        EarlyStoppingState {
            epochs: 0,
            reference: f64::INFINITY,
            since_improvement: 0,
            best_loss: f64::INFINITY,
            best_epoch: 0,
        }
    }
}

impl EarlyStopping {
    /// The longest patience and the highest cap accepted (a typo must not start a run of years).
    pub const MAX_EPOCHS: usize = 1_000_000;

    /// Checks the rule.
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] naming `patience` or `max_epochs` (0 or above
    /// [`Self::MAX_EPOCHS`]), `min_epochs` (above [`Self::MAX_EPOCHS`]) or `min_delta` (not
    /// finite, negative or ≥ 1).
    pub fn validate(&self) -> Result<()> {
        for (param, v) in [("patience", self.patience), ("max_epochs", self.max_epochs)] {
            if v == 0 || v > Self::MAX_EPOCHS {
                return Err(invalid(param, v, format!("must be in 1..={}", Self::MAX_EPOCHS)));
            }
        }
        if self.min_epochs > Self::MAX_EPOCHS {
            return Err(invalid(
                "min_epochs",
                self.min_epochs,
                format!("must be in 0..={}", Self::MAX_EPOCHS),
            ));
        }
        if !(self.min_delta.is_finite() && (0.0..1.0).contains(&self.min_delta)) {
            return Err(invalid(
                "min_delta",
                self.min_delta,
                "a relative improvement in [0, 1) (e.g. 0.001 for 0.1 %)",
            ));
        }
        Ok(())
    }

    /// Whether `loss` improves on the reference `reference`.
    pub fn improves(&self, loss: f64, reference: f64) -> bool {
        loss.is_finite() && (reference == f64::INFINITY || loss < reference - self.min_delta * reference.abs())
    }

    /// Records epoch `state.epochs + 1` with validation loss `val_loss` and says whether
    /// training stops after it.
    pub fn observe(&self, state: &mut EarlyStoppingState, val_loss: f64) -> Option<StopReason> {
        state.epochs += 1;
        if self.improves(val_loss, state.reference) {
            state.reference = val_loss;
            state.since_improvement = 0;
        } else {
            state.since_improvement += 1;
        }
        if val_loss.is_finite() && val_loss < state.best_loss {
            state.best_loss = val_loss;
            state.best_epoch = state.epochs;
        }
        self.decision(state)
    }

    /// Whether training stops after the epochs of `state` (`None`: go on).
    pub fn decision(&self, state: &EarlyStoppingState) -> Option<StopReason> {
        if state.since_improvement >= self.patience && state.epochs >= self.min_epochs {
            Some(StopReason::Plateau)
        } else if state.epochs >= self.max_epochs {
            Some(StopReason::Cap)
        } else {
            None
        }
    }

    /// The state after the validation losses `val_losses`, in epoch order.
    pub fn replay(&self, val_losses: impl IntoIterator<Item = f64>) -> EarlyStoppingState {
        let mut state = EarlyStoppingState::default();
        for l in val_losses {
            self.observe(&mut state, l);
        }
        state
    }

    /// The epoch after which a run with these validation losses stops, and why; `None` when
    /// the losses end before the rule stops (the run would go on).
    pub fn stop_epoch(&self, val_losses: impl IntoIterator<Item = f64>) -> Option<(usize, StopReason)> {
        let mut state = EarlyStoppingState::default();
        for l in val_losses {
            if let Some(why) = self.observe(&mut state, l) {
                return Some((state.epochs, why));
            }
        }
        None
    }
}

impl EarlyStoppingState {
    /// Whether the two states are the same, bit for bit (`+∞` and NaN included).
    pub fn same_bits(&self, other: &EarlyStoppingState) -> bool {
        self.epochs == other.epochs
            && self.reference.to_bits() == other.reference.to_bits()
            && self.since_improvement == other.since_improvement
            && self.best_loss.to_bits() == other.best_loss.to_bits()
            && self.best_epoch == other.best_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(patience: usize, min_delta: f64, max_epochs: usize) -> EarlyStopping {
        EarlyStopping {
            patience,
            min_delta,
            min_epochs: 0,
            max_epochs,
        }
    }

    #[test]
    fn stops_patience_epochs_after_the_last_improvement() {
        // Improvements at epochs 1, 2, 3; epochs 4..=6 improve by less than 1 %, 7 is worse.
        let losses = [1.0, 0.5, 0.4, 0.399, 0.398, 0.397, 0.5, 0.3];
        let r = rule(3, 0.01, 100);
        assert_eq!(r.stop_epoch(losses), Some((6, StopReason::Plateau)));
        let s = r.replay(losses[..6].iter().copied());
        assert_eq!((s.reference, s.since_improvement), (0.4, 3));
        // The best epoch is the lowest loss, even below min_delta: epoch 6 (0.397).
        assert_eq!((s.best_loss, s.best_epoch), (0.397, 6));
        // Patience 4: epoch 7 is no improvement either, epoch 8 (0.3) comes too late.
        assert_eq!(rule(4, 0.01, 100).stop_epoch(losses), Some((7, StopReason::Plateau)));
        // min_delta 0: every decrease is an improvement; epoch 7 starts the wait.
        assert_eq!(rule(1, 0.0, 100).stop_epoch(losses), Some((7, StopReason::Plateau)));
        // Equal losses are no improvement with min_delta 0.
        assert_eq!(
            rule(2, 0.0, 100).stop_epoch([1.0, 1.0, 1.0]),
            Some((3, StopReason::Plateau))
        );
    }

    #[test]
    fn small_steps_that_add_up_reset_the_wait() {
        // 0.4 % per epoch against a 1 % threshold: every third epoch crosses it.
        let losses: Vec<f64> = (0..30).map(|e| 0.996f64.powi(e)).collect();
        let r = rule(5, 0.01, 1000);
        assert_eq!(r.stop_epoch(losses.iter().copied()), None, "still improving");
        let s = r.replay(losses.iter().copied());
        assert!(s.since_improvement < 3, "{s:?}");
        assert_eq!(s.best_epoch, 30);
    }

    #[test]
    fn the_cap_stops_a_run_still_improving_and_a_plateau_at_the_cap_is_a_plateau() {
        let falling: Vec<f64> = (0..10).map(|e| 1.0 / f64::from(e + 1)).collect();
        assert_eq!(
            rule(3, 0.0, 5).stop_epoch(falling.iter().copied()),
            Some((5, StopReason::Cap))
        );
        assert_eq!(
            rule(2, 0.0, 3).stop_epoch([1.0, 2.0, 2.0]),
            Some((3, StopReason::Plateau))
        );
        assert_eq!(rule(1, 0.0, 1).stop_epoch([1.0]), Some((1, StopReason::Cap)));
    }

    #[test]
    fn no_plateau_stop_before_min_epochs() {
        // A flat start (a chance-level plateau), then a fall, then a plateau.
        let losses: Vec<f64> = (1..=40)
            .map(|e| match e {
                1..=10 => 0.7,
                11..=20 => 0.7 - 0.05 * f64::from(e - 10),
                _ => 0.7 - 0.05 * 10.0,
            })
            .collect();
        let flat = rule(3, 0.01, 100);
        assert_eq!(flat.stop_epoch(losses.iter().copied()), Some((4, StopReason::Plateau)));
        let guarded = EarlyStopping { min_epochs: 8, ..flat };
        // Epoch 8 is past min_epochs with wait 7 ≥ 3: the guard only delays the stop.
        assert_eq!(
            guarded.stop_epoch(losses.iter().copied()),
            Some((8, StopReason::Plateau))
        );
        let guarded = EarlyStopping { min_epochs: 12, ..flat };
        assert_eq!(
            guarded.stop_epoch(losses.iter().copied()),
            Some((23, StopReason::Plateau))
        );
        let s = guarded.replay(losses[..23].iter().copied());
        assert_eq!((s.best_epoch, s.best_loss), (20, losses[39]));
        // A guard past the cap: the cap stops.
        let late = EarlyStopping {
            min_epochs: 200,
            ..flat
        };
        assert_eq!(late.stop_epoch((0..150).map(|_| 1.0)), Some((100, StopReason::Cap)));
    }

    #[test]
    fn non_finite_losses_never_improve() {
        let r = rule(2, 0.0, 100);
        assert_eq!(r.stop_epoch([f64::NAN, f64::INFINITY]), Some((2, StopReason::Plateau)));
        let s = r.replay([f64::NAN, 0.5, f64::NAN]);
        assert_eq!((s.best_epoch, s.best_loss, s.since_improvement), (2, 0.5, 1));
        assert_eq!(r.replay([f64::NAN]).best_epoch, 0);
    }

    /// Resuming mid-patience: the state saved after any epoch, continued with the rest of the
    /// losses, stops at the epoch of the uninterrupted run, in the same state.
    #[test]
    fn a_run_resumed_mid_patience_stops_at_the_same_epoch() {
        let losses = [0.9, 0.7, 0.6, 0.61, 0.6, 0.59, 0.598, 0.62, 0.63, 0.64, 0.65, 0.5];
        let r = rule(4, 0.02, 50);
        let (stop, why) = r.stop_epoch(losses).unwrap();
        assert_eq!((stop, why), (7, StopReason::Plateau));
        let whole = r.replay(losses[..stop].iter().copied());
        for cut in 0..stop {
            let mut state = r.replay(losses[..cut].iter().copied());
            let mut got = None;
            for &l in &losses[cut..] {
                if let Some(w) = r.observe(&mut state, l) {
                    got = Some((state.epochs, w));
                    break;
                }
            }
            assert_eq!(got, Some((stop, why)), "resumed after epoch {cut}");
            assert!(state.same_bits(&whole), "{state:?} vs {whole:?}");
        }
    }

    #[test]
    fn bad_rules_are_refused_naming_the_value() {
        assert!(rule(50, 0.001, 3000).validate().is_ok());
        for (r, name) in [
            (rule(0, 0.001, 10), "patience"),
            (rule(1, 0.001, 0), "max_epochs"),
            (rule(1, 0.001, EarlyStopping::MAX_EPOCHS + 1), "max_epochs"),
            (rule(1, -0.1, 10), "min_delta"),
            (rule(1, 1.0, 10), "min_delta"),
            (rule(1, f64::NAN, 10), "min_delta"),
            (
                EarlyStopping {
                    min_epochs: EarlyStopping::MAX_EPOCHS + 1,
                    ..rule(1, 0.0, 10)
                },
                "min_epochs",
            ),
        ] {
            let e = r.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }
}
