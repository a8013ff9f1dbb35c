//! How `reproduce mouse-gan` scores a run's samples against the real images: a
//! [`SampleScorer`], built by the caller (the command line builds the FID of InceptionV3
//! features; tests use the cheap [`ChannelStatsFrechet`], which is **not** an FID).
//!
//! The Fréchet distance of two Gaussians fitted to features `(μ₁, C₁)` and `(μ₂, C₂)`:
//!
//! ```text
//! d² = |μ₁ − μ₂|² + tr(C₁ + C₂ − 2 (C₁^½ C₂ C₁^½)^½)
//! ```
//! (`tr (C₁C₂)^½ = tr (C₁^½ C₂ C₁^½)^½`, the symmetric form, computed with Jacobi eigenvalues.)
//!
//! # Shapes
//! `real (n_real, channels, h, w)`, `fake (n_fake, channels, h, w)`, NCHW in [0, 1].

use crate::error::{invalid, Result};
pub use crate::scoring::SampleScorer;

/// The Fréchet distance between Gaussians fitted to per-image channel means and standard
/// deviations (`2·channels` features). Cheap and deterministic, for tests and for runs without
/// FID weights; **not** comparable with FID values.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChannelStatsFrechet;

impl SampleScorer for ChannelStatsFrechet {
    fn name(&self) -> &str {
        "channel-stats-frechet"
    }
    fn score(
        &mut self,
        real: &[f32],
        fake: &[f32],
        n_real: usize,
        n_fake: usize,
        channels: usize,
        h: usize,
        w: usize,
    ) -> Result<f64> {
        let fr = channel_features(real, n_real, channels, h * w)?;
        let ff = channel_features(fake, n_fake, channels, h * w)?;
        frechet(&fr, &ff, 2 * channels)
    }
}

/// Per image: the mean and the standard deviation of each channel.
fn channel_features(images: &[f32], n: usize, channels: usize, plane: usize) -> Result<Vec<Vec<f64>>> {
    if n < 2 || channels == 0 || plane == 0 || images.len() != n * channels * plane {
        return Err(invalid(
            "images",
            images.len(),
            format!("need n ≥ 2 images of {channels}×{plane} values (n = {n})"),
        ));
    }
    Ok(images
        .chunks(channels * plane)
        .map(|img| {
            let mut f = Vec::with_capacity(2 * channels);
            for c in img.chunks(plane) {
                let m = c.iter().map(|&v| f64::from(v)).sum::<f64>() / plane as f64;
                let var = c.iter().map(|&v| (f64::from(v) - m).powi(2)).sum::<f64>() / plane as f64;
                f.push(m);
                f.push(var.sqrt());
            }
            f
        })
        .collect())
}

fn mean_cov(x: &[Vec<f64>], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = x.len() as f64;
    let mut mu = vec![0.0; d];
    for row in x {
        for (m, v) in mu.iter_mut().zip(row) {
            *m += v / n;
        }
    }
    let mut cov = vec![0.0; d * d];
    for row in x {
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] += (row[i] - mu[i]) * (row[j] - mu[j]) / (n - 1.0);
            }
        }
    }
    (mu, cov)
}

/// Eigenvalues and eigenvectors (columns of `v`) of a symmetric `d × d` matrix (cyclic Jacobi).
fn jacobi_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v: Vec<f64> = (0..d * d).map(|k| if k / d == k % d { 1.0 } else { 0.0 }).collect();
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j].powi(2))
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

/// The symmetric square root of a positive semi-definite matrix (negative rounding noise in
/// the eigenvalues is clamped to 0).
fn sqrtm_psd(a: &[f64], d: usize) -> Vec<f64> {
    let (e, v) = jacobi_eigen(a, d);
    let mut out = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            out[i * d + j] = (0..d).map(|k| v[i * d + k] * e[k].max(0.0).sqrt() * v[j * d + k]).sum();
        }
    }
    out
}

fn matmul(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut out = vec![0.0; d * d];
    for i in 0..d {
        for k in 0..d {
            for j in 0..d {
                out[i * d + j] += a[i * d + k] * b[k * d + j];
            }
        }
    }
    out
}

/// The Fréchet distance between Gaussians fitted to the feature rows `a` and `b` (`d` each).
fn frechet(a: &[Vec<f64>], b: &[Vec<f64>], d: usize) -> Result<f64> {
    let (m1, c1) = mean_cov(a, d);
    let (m2, c2) = mean_cov(b, d);
    let s1 = sqrtm_psd(&c1, d);
    let inner = matmul(&matmul(&s1, &c2, d), &s1, d);
    let sym: Vec<f64> = (0..d * d)
        .map(|k| 0.5 * (inner[k] + inner[(k % d) * d + k / d]))
        .collect();
    let (e, _) = jacobi_eigen(&sym, d);
    let tr_sqrt: f64 = e.iter().map(|&x| x.max(0.0).sqrt()).sum();
    let tr: f64 = (0..d).map(|i| c1[i * d + i] + c2[i * d + i]).sum();
    let dm: f64 = m1.iter().zip(&m2).map(|(x, y)| (x - y).powi(2)).sum();
    let d2 = dm + tr - 2.0 * tr_sqrt;
    if !d2.is_finite() {
        return Err(invalid("frechet distance", d2, "not finite (degenerate features)"));
    }
    Ok(d2.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frechet_of_a_set_with_itself_is_zero_and_grows_with_a_shift() {
        let imgs: Vec<f32> = (0..4 * 3 * 4).map(|i| ((i * 7) % 11) as f32 / 11.0).collect();
        let mut s = ChannelStatsFrechet;
        let same = s.score(&imgs, &imgs, 4, 4, 3, 2, 2).unwrap();
        assert!(same.abs() < 1e-9, "{same}");
        let shifted: Vec<f32> = imgs.iter().map(|v| v + 0.5).collect();
        let d = s.score(&imgs, &shifted, 4, 4, 3, 2, 2).unwrap();
        // Every channel mean moves by 0.5, the spreads stay: d² = 3 · 0.25.
        assert!((d - 0.75).abs() < 1e-6, "{d}");
    }

    #[test]
    fn sqrtm_squares_back() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        let s = sqrtm_psd(&a, 3);
        let back = matmul(&s, &s, 3);
        for (x, y) in back.iter().zip(&a) {
            assert!((x - y).abs() < 1e-9);
        }
    }
}
