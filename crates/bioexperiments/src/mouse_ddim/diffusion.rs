//! The Keras DDIM example's diffusion arithmetic: the cosine schedule and the deterministic
//! (η = 0) DDIM update of `reverse_diffusion`.
//!
//! ```text
//! schedule:  φ(t) = arccos(max_signal) + t·(arccos(min_signal) − arccos(max_signal))
//!            noise_rate = sin φ(t),  signal_rate = cos φ(t)        (t ∈ [0, 1])
//! training:  noisy = signal_rate·image + noise_rate·noise, the network sees noise_rate²
//! step:      image_pred = (noisy − noise_rate(t)·noise_pred) / signal_rate(t)
//!            next_noisy = signal_rate(t − Δ)·image_pred + noise_rate(t − Δ)·noise_pred
//! sampling:  t = 1 − k·Δ for k = 0 … N − 1 (Δ = 1/N), from pure noise; returns the last
//!            image_pred
//! ```
//! Upstream's rates: `min_signal_rate = 0.02`, `max_signal_rate = 0.95`. The rates are computed
//! in f64 and applied in f32.
//!
//! # Shapes
//! `noisy`, `noise_pred` `(n, c, h, w)` flattened, one diffusion time for all `n` (the sampler's
//! case) → `(image_pred, next_noisy)` of the same length.

use crate::error::{invalid, Result};

/// The cosine schedule's signal-rate bounds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CosineSchedule {
    /// Signal rate at `t = 1` (upstream 0.02).
    pub min_signal_rate: f64,
    /// Signal rate at `t = 0` (upstream 0.95).
    pub max_signal_rate: f64,
}

impl Default for CosineSchedule {
    fn default() -> Self {
        CosineSchedule {
            min_signal_rate: 0.02,
            max_signal_rate: 0.95,
        }
    }
}

impl CosineSchedule {
    /// Checks `0 < min_signal_rate < max_signal_rate < 1`.
    ///
    /// # Errors
    /// The parameter that is out of range.
    pub fn validate(&self) -> Result<()> {
        if !(self.min_signal_rate > 0.0 && self.min_signal_rate < self.max_signal_rate && self.max_signal_rate < 1.0) {
            return Err(invalid(
                "signal rates",
                format!("{} / {}", self.min_signal_rate, self.max_signal_rate),
                "need 0 < min_signal_rate < max_signal_rate < 1",
            ));
        }
        Ok(())
    }

    /// `(noise_rate, signal_rate)` at diffusion time `t`.
    pub fn rates(&self, t: f64) -> (f64, f64) {
        let start = self.max_signal_rate.acos();
        let end = self.min_signal_rate.acos();
        let angle = start + t * (end - start);
        (angle.sin(), angle.cos())
    }

    /// One DDIM step at time `t` with step `dt` (see the [module docs](self)).
    ///
    /// # Errors
    /// Lengths that differ.
    pub fn ddim_step(&self, noisy: &[f32], noise_pred: &[f32], t: f64, dt: f64) -> Result<(Vec<f32>, Vec<f32>)> {
        if noisy.len() != noise_pred.len() {
            return Err(invalid(
                "noise_pred",
                noise_pred.len(),
                format!("must have the noisy images' length {}", noisy.len()),
            ));
        }
        let (nr, sr) = self.rates(t);
        let (nnr, nsr) = self.rates(t - dt);
        let (nr, sr, nnr, nsr) = (nr as f32, sr as f32, nnr as f32, nsr as f32);
        let images: Vec<f32> = noisy.iter().zip(noise_pred).map(|(&x, &e)| (x - nr * e) / sr).collect();
        let next = images
            .iter()
            .zip(noise_pred)
            .map(|(&x, &e)| nsr * x + nnr * e)
            .collect();
        Ok((images, next))
    }
}
