//! BioNet's input pipeline: greyscale, upscaling, training-set normalisation statistics.
//!
//! 1. **Greyscale**: ITU-R 601 luma `L = 0.299 R + 0.587 G + 0.114 B` as a float (not rounded),
//!    on the [0, 255] scale ([`luma`]).
//! 2. **Upscaling** from `h × w` to `H × W` ([`resize`], [`Interpolation`]), OpenCV `cv2.resize`
//!    semantics (pixel centres aligned: source coordinate `(d + 0.5)·h/H − 0.5`, borders
//!    replicated):
//!    * `nearest`: source pixel `floor(d · h / H)` (OpenCV `INTER_NEAREST`); for an integer
//!      factor this is the pixel repeat upstream uses (`x.repeat(7, 1).repeat(7, 2)`);
//!    * `bilinear`: OpenCV `INTER_LINEAR` (2 × 2 taps);
//!    * `bicubic`: OpenCV `INTER_CUBIC` (4 × 4 taps, Keys kernel with `a = −0.75`), then clipped
//!      to [0, 255] as upstream clips its Lanczos output. Upstream's paper recipe used Lanczos-4
//!      (8 × 8 taps), which is not implemented here.
//! 3. **Quantisation** (ours): the result is rounded to `u8` so that the 50 000 training images
//!    at 224 × 224 fit in 2.5 GB (upstream stores float16, whose spacing is 0.125 above 128, so
//!    both quantise; ours by at most 0.5 grey levels).
//! 4. **Normalisation**: `x' = (x − mean) / (std + 1e-6)` with the mean and (population) std of
//!    every pixel of the prepared training images ([`training_stats`]); the Keras `+ 1e-6` is
//!    kept.
//!
//! # Shapes
//! A greyscale set is `(n, height, width)` row-major `f32`; [`GreyImages::to_dataset`] gives a
//! one-channel [`ImageDataset`] `(n, 1, H, W)` of bytes.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{ImageDataset, Normalization};
use crate::error::{invalid, Error, Result};

/// ITU-R 601 luma weights (R, G, B), upstream's `luminance_weights`.
pub const LUMA_WEIGHTS: [f64; 3] = [0.299, 0.587, 0.114];

/// How images are upscaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Nearest neighbour (upstream's CLI default, `--interpolation 0`).
    #[default]
    Nearest,
    /// Bilinear (OpenCV `INTER_LINEAR`).
    Bilinear,
    /// Bicubic (OpenCV `INTER_CUBIC`), clipped to [0, 255].
    Bicubic,
}

impl std::str::FromStr for Interpolation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "nearest" | "0" => Ok(Interpolation::Nearest),
            "bilinear" | "linear" | "1" => Ok(Interpolation::Bilinear),
            "bicubic" | "cubic" | "2" => Ok(Interpolation::Bicubic),
            _ => Err(invalid("interpolation", s, "expected nearest, bilinear or bicubic")),
        }
    }
}

impl std::fmt::Display for Interpolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Interpolation::Nearest => "nearest",
            Interpolation::Bilinear => "bilinear",
            Interpolation::Bicubic => "bicubic",
        })
    }
}

/// Greyscale images `(n, height, width)` on the [0, 255] scale with their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct GreyImages {
    /// Row-major values.
    pub values: Vec<f32>,
    /// One label per image.
    pub labels: Vec<usize>,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// Class names.
    pub classes: Vec<String>,
}

impl GreyImages {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Rounds to bytes (see the [module docs](self)): a one-channel dataset for training.
    pub fn to_dataset(&self) -> ImageDataset {
        ImageDataset {
            images: self.values.iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect(),
            labels: self.labels.clone(),
            channels: 1,
            height: self.height,
            width: self.width,
            classes: self.classes.clone(),
        }
    }
}

/// The luma of every image of `ds` (3 channels: ITU-R 601 weights; 1 channel: as is), `f32` on
/// the [0, 255] scale.
///
/// # Errors
/// A dataset with 2 or more than 3 channels.
pub fn luma(ds: &ImageDataset) -> Result<GreyImages> {
    let hw = ds.height * ds.width;
    let values: Vec<f32> = match ds.channels {
        1 => ds.images.iter().map(|&b| f32::from(b)).collect(),
        3 => ds
            .images
            .par_chunks_exact(3 * hw.max(1))
            .flat_map_iter(|img| {
                (0..hw).map(move |p| {
                    let [r, g, b] = [img[p], img[hw + p], img[2 * hw + p]].map(f64::from);
                    (LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b) as f32
                })
            })
            .collect(),
        c => {
            return Err(Error::Shape {
                what: "dataset channels",
                expected: "1 or 3".into(),
                got: c.to_string(),
            })
        }
    };
    Ok(GreyImages {
        values,
        labels: ds.labels.clone(),
        height: ds.height,
        width: ds.width,
        classes: ds.classes.clone(),
    })
}

fn cubic_weights(t: f64) -> [f64; 4] {
    // OpenCV interpolateCubic, A = -0.75.
    const A: f64 = -0.75;
    let w0 = ((A * (t + 1.0) - 5.0 * A) * (t + 1.0) + 8.0 * A) * (t + 1.0) - 4.0 * A;
    let w1 = ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0;
    let w2 = ((A + 2.0) * (1.0 - t) - (A + 3.0)) * (1.0 - t) * (1.0 - t) + 1.0;
    [w0, w1, w2, 1.0 - w0 - w1 - w2]
}

/// Per output index: `(source indices, weights)` along one axis.
fn axis_taps(src: usize, dst: usize, interp: Interpolation) -> Vec<(Vec<usize>, Vec<f64>)> {
    let scale = src as f64 / dst as f64;
    let clampi = |i: i64| i.clamp(0, src as i64 - 1) as usize;
    (0..dst)
        .map(|d| match interp {
            Interpolation::Nearest => (vec![((d as f64 * scale).floor() as usize).min(src - 1)], vec![1.0]),
            Interpolation::Bilinear => {
                let x = (d as f64 + 0.5) * scale - 0.5;
                let x0 = x.floor();
                let t = x - x0;
                let i = x0 as i64;
                (vec![clampi(i), clampi(i + 1)], vec![1.0 - t, t])
            }
            Interpolation::Bicubic => {
                let x = (d as f64 + 0.5) * scale - 0.5;
                let x0 = x.floor();
                let i = x0 as i64;
                (
                    (-1..=2).map(|k| clampi(i + k)).collect(),
                    cubic_weights(x - x0).to_vec(),
                )
            }
        })
        .collect()
}

/// Resizes one `(h, w)` image to `(out_h, out_w)` (see the [module docs](self)).
///
/// # Errors
/// Zero sizes or a value count that is not `h · w`.
pub fn resize(
    image: &[f32],
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
    interp: Interpolation,
) -> Result<Vec<f32>> {
    if h == 0 || w == 0 || out_h == 0 || out_w == 0 || image.len() != h * w {
        return Err(Error::Shape {
            what: "image to resize",
            expected: format!("{h}x{w} values, non-zero sizes, target {out_h}x{out_w}"),
            got: format!("{} values", image.len()),
        });
    }
    let rows = axis_taps(h, out_h, interp);
    let cols = axis_taps(w, out_w, interp);
    let mut out = Vec::with_capacity(out_h * out_w);
    for (ri, rw) in &rows {
        for (ci, cw) in &cols {
            let mut v = 0.0f64;
            for (&r, &a) in ri.iter().zip(rw) {
                for (&c, &b) in ci.iter().zip(cw) {
                    v += a * b * f64::from(image[r * w + c]);
                }
            }
            if interp == Interpolation::Bicubic {
                v = v.clamp(0.0, 255.0);
            }
            out.push(v as f32);
        }
    }
    Ok(out)
}

/// Greyscale, then resize every image to `size × size` (nothing to do when already that size).
///
/// # Errors
/// As [`luma`] and [`resize`].
pub fn prepare(ds: &ImageDataset, size: usize, interp: Interpolation) -> Result<GreyImages> {
    let grey = luma(ds)?;
    if grey.height == size && grey.width == size {
        return Ok(grey);
    }
    let (h, w) = (grey.height, grey.width);
    let parts: Vec<Result<Vec<f32>>> = grey
        .values
        .par_chunks_exact((h * w).max(1))
        .map(|img| resize(img, h, w, size, size, interp))
        .collect();
    let mut values = Vec::with_capacity(grey.len() * size * size);
    for p in parts {
        values.extend(p?);
    }
    Ok(GreyImages {
        values,
        height: size,
        width: size,
        ..grey
    })
}

/// Mean and population standard deviation of every pixel of a one-channel dataset, on the
/// [0, 255] scale (upstream's `--recalculate_statistics`).
///
/// # Errors
/// An empty or multi-channel dataset.
pub fn training_stats(ds: &ImageDataset) -> Result<(f64, f64)> {
    if ds.channels != 1 || ds.is_empty() {
        return Err(invalid(
            "training set",
            ds.channels,
            "needs a non-empty one-channel dataset",
        ));
    }
    let (sum, sq) = ds
        .images
        .par_chunks(1 << 16)
        .map(|c| {
            c.iter().fold((0f64, 0f64), |(s, q), &b| {
                let v = f64::from(b);
                (s + v, q + v * v)
            })
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let n = ds.images.len() as f64;
    let mean = sum / n;
    Ok((mean, (sq / n - mean * mean).max(0.0).sqrt()))
}

/// The [`Normalization`] that makes `ImageDataset::batch` compute Keras'
/// `(x − mean) / (std + 1e-6)` for statistics on the [0, 255] scale.
pub fn keras_normalization(mean: f64, std: f64) -> Normalization {
    Normalization {
        mean: vec![(mean / 255.0) as f32],
        std: vec![((std + 1e-6) / 255.0) as f32],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_is_pixel_repeat_and_linear_keeps_constants() {
        let img: Vec<f32> = (0..6).map(|v| v as f32 * 10.0).collect(); // 2x3
        let up = resize(&img, 2, 3, 4, 6, Interpolation::Nearest).unwrap();
        for r in 0..4 {
            for c in 0..6 {
                assert_eq!(up[r * 6 + c], img[(r / 2) * 3 + c / 2]);
            }
        }
        let flat = vec![7.5f32; 9];
        for interp in [Interpolation::Bilinear, Interpolation::Bicubic] {
            let up = resize(&flat, 3, 3, 7, 7, interp).unwrap();
            assert!(up.iter().all(|&v| (v - 7.5).abs() < 1e-5), "{interp}");
        }
    }

    #[test]
    fn bilinear_matches_opencv_half_pixel_rule() {
        // 1x2 -> 1x4: OpenCV INTER_LINEAR gives [a, a + (b-a)/4, a + 3(b-a)/4, b].
        let up = resize(&[0.0, 100.0], 1, 2, 1, 4, Interpolation::Bilinear).unwrap();
        assert_eq!(up, vec![0.0, 25.0, 75.0, 100.0]);
        // Bicubic overshoot at a step is clipped.
        let step = resize(&[0.0, 0.0, 255.0, 255.0], 1, 4, 1, 16, Interpolation::Bicubic).unwrap();
        assert!(step.iter().all(|v| (0.0..=255.0).contains(v)));
    }

    #[test]
    fn luma_stats_and_normalisation() {
        let ds = ImageDataset {
            images: vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 10, 10],
            labels: vec![0],
            channels: 3,
            height: 2,
            width: 2,
            classes: vec!["a".into()],
        };
        // Channel-major: R plane [255, 0, 0, 0], G [255, 0, 0, 0]...
        let g = luma(&ds).unwrap();
        assert_eq!(g.values.len(), 4);
        // Pixel 0 is (255, 255, 255), pixel 1 (0, 0, 10).
        assert!((g.values[0] - 255.0).abs() < 1e-4, "{}", g.values[0]);
        assert!((g.values[1] - 1.14).abs() < 1e-5, "{}", g.values[1]);
        let up = prepare(&ds, 4, Interpolation::Nearest).unwrap().to_dataset();
        assert_eq!((up.channels, up.height, up.width), (1, 4, 4));
        let (m, s) = training_stats(&up).unwrap();
        let vals: Vec<f64> = up.images.iter().map(|&b| f64::from(b)).collect();
        let mm = vals.iter().sum::<f64>() / 16.0;
        assert!((m - mm).abs() < 1e-9);
        assert!((s - (vals.iter().map(|v| (v - mm).powi(2)).sum::<f64>() / 16.0).sqrt()).abs() < 1e-9);
        let norm = keras_normalization(m, s);
        let x = 200.0f32;
        let ours = (x / 255.0 - norm.mean[0]) / norm.std[0];
        assert!((f64::from(ours) - (200.0 - m) / (s + 1e-6)).abs() < 1e-4);
        assert!("lanczos".parse::<Interpolation>().is_err());
    }
}
