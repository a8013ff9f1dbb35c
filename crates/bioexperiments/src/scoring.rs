//! Scores of generated samples against real images, behind one small trait so that a
//! reproduction does not depend on which scorer the command line passes in (the real FID lives
//! elsewhere; tests use the cheap [`PixelMomentDistance`]).
//!
//! # Shapes
//! `real (n_real, c, h, w)`, `fake (n_fake, c, h, w)`, values in `[0, 1]`, NCHW, flattened.

use crate::error::{invalid, Result};

/// A distance between a set of real and a set of generated images (lower = closer).
pub trait SampleScorer {
    /// The score of `fake` against `real`.
    ///
    /// # Errors
    /// Sizes that do not match the counts and shape; the scorer's own failures.
    #[allow(clippy::too_many_arguments)]
    fn score(
        &mut self,
        real: &[f32],
        fake: &[f32],
        n_real: usize,
        n_fake: usize,
        c: usize,
        h: usize,
        w: usize,
    ) -> Result<f64>;
    /// What the score is, for summaries (e.g. `FID (Inception v3)`).
    fn name(&self) -> &str;
}

/// A cheap stand-in that is **not** FID: the squared distance between the per-pixel means plus
/// the squared distance between the per-pixel standard deviations of the two sets, averaged
/// over the `c·h·w` pixel values: `(1/D) Σ_d (μ_r − μ_f)² + (σ_r − σ_f)²`. It is the Fréchet
/// distance of two Gaussians with diagonal covariances over raw pixels, per dimension; it only
/// says whether the samples have the data's first two pixel moments.
#[derive(Debug, Clone, Copy, Default)]
pub struct PixelMomentDistance;

fn moments(x: &[f32], n: usize, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0f64; d];
    for img in x.chunks(d) {
        for (m, &v) in mean.iter_mut().zip(img) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0.0f64; d];
    for img in x.chunks(d) {
        for ((s, &v), m) in var.iter_mut().zip(img).zip(&mean) {
            *s += (f64::from(v) - m).powi(2);
        }
    }
    (mean, var.into_iter().map(|s| (s / n as f64).sqrt()).collect())
}

impl SampleScorer for PixelMomentDistance {
    fn score(
        &mut self,
        real: &[f32],
        fake: &[f32],
        n_real: usize,
        n_fake: usize,
        c: usize,
        h: usize,
        w: usize,
    ) -> Result<f64> {
        let d = c * h * w;
        if d == 0 || n_real == 0 || n_fake == 0 || real.len() != n_real * d || fake.len() != n_fake * d {
            return Err(invalid(
                "scorer sizes",
                format!("real {} / fake {} values", real.len(), fake.len()),
                format!("need {n_real} and {n_fake} images of {c}x{h}x{w}"),
            ));
        }
        let (mr, sr) = moments(real, n_real, d);
        let (mf, sf) = moments(fake, n_fake, d);
        let total: f64 = (0..d).map(|i| (mr[i] - mf[i]).powi(2) + (sr[i] - sf[i]).powi(2)).sum();
        Ok(total / d as f64)
    }
    fn name(&self) -> &str {
        "pixel-moment distance (not FID)"
    }
}
