//! BioNet's ten test-time image perturbations (`bionet/preparation.py`, `bionet/assess.py`),
//! with upstream's names and levels.
//!
//! Upstream perturbs each test image after it has been loaded as a **224x224 greyscale** float32
//! image in [0, 255]: `cifar_wrapper` multiplies by `1/255` (in float32), calls the perturbation
//! on the 2-D image in [0, 1], keeps channel 0 of 3-channel results, casts to float32 and
//! multiplies by 255; Keras then applies `(x - mean) / (std + 1e-6)`. Here:
//!
//! * [`Perturbation::apply`] is the perturbation function: one greyscale `(height, width)` image,
//!   row-major `f32` in [0, 1] in, the same shape in [0, 1] out (upstream's float32 cast
//!   included). Intermediate values are float64 where upstream's are (noise, filters, contrast)
//!   and rounded to float32 where upstream's are.
//! * [`to_unit_range`] / [`network_input`] are the wrapper's scaling and Keras' normalisation.
//! * [`Perturber`] applies one (perturbation, level) to a run of images with upstream's or the
//!   project's seeding; [`perturb_dataset`] does it for a greyscale [`ImageDataset`].
//!
//! | name | operation on x in [0, 1] (then clipped to [0, 1]) | levels |
//! | --- | --- | --- |
//! | Uniform | `x + U[-w, w)` per pixel | w = 0, 0.1, ..., 1 |
//! | Salt and Pepper | `u ~ U[0,1)`: `u >= 1 - p/2` -> +1, `u < p/2` -> -1 | p = 0, 0.1, ..., 1 |
//! | High Pass | `d = x - G_s(x)`, `d + (bg - mean(d))` | s = logspace(2, 0, 11) |
//! | Low Pass | `G_s(x)` | s = logspace(0, 2, 11) |
//! | Contrast | `(1 - c)/2 + c x` | c = logspace(0, -2, 11) |
//! | Phase Scrambling | FFT phase noise of width w degrees ([`phase`]) | w = 0, 18, ..., 180 |
//! | Darken | `x + l` | l = 0, -0.1, ..., -1 |
//! | Brighten | `x + l` | l = 0, 0.1, ..., 1 |
//! | Rotation | 0/90/180/270 degrees counter-clockwise | 0, 90, 180, 270 |
//! | Invert | `1 - x` when the level is >= 0.5 | 0, 1 |
//!
//! `G_s` is `scipy.ndimage.gaussian_filter(x, s, mode='constant', cval=bg)` ([`gaussian`]),
//! `bg` the background grey [`PerturbOptions::background`] (upstream: training mean / 255).
//! Uniform and Salt and Pepper first apply Contrast with
//! [`PerturbOptions::contrast_level`] (upstream's config: 1, the identity).
//!
//! # Randomness
//! Upstream draws from `numpy.random.RandomState(seed + level_index)`, one generator per level
//! shared by the test images in order. [`RngKind::Numpy`] reproduces that bit for bit
//! (`Uniform`: `rng.uniform(-w, w, (H, W))`; `Salt and Pepper`: `rng.uniform(size=(H, W))`;
//! `Phase Scrambling`: `rng.random(n)`), so results depend on image order as upstream's do.
//! The default [`RngKind::Seeded`] gives every image its own ChaCha8 stream derived from
//! `(seed, perturbation, level_index, image_index)`: the same values whatever the batch order
//! or thread count.
//!
//! # Shapes
//! One image: `(height, width)`, row-major, values in [0, 1]. A batch: `(n, height, width)`.
//!
//! ```
//! use biotasks::perturb::{PerturbOptions, Perturbation, Perturber};
//! use biotasks::RngKind;
//!
//! let p = Perturbation::from_name("salt_and_pepper")?;
//! assert_eq!(p.name(), "Salt and Pepper");
//! assert_eq!(p.levels()[3], 0.30000000000000004); // NumPy's linspace(0, 1, 11)[3]
//! let images = vec![0.5f32; 2 * 8 * 8]; // two 8x8 images in [0, 1]
//! let mut upstream = Perturber::new(p, 3, PerturbOptions::default(), RngKind::Numpy, 0)?;
//! let out = upstream.apply_batch(&images, 0, 8, 8)?;
//! assert!(out.iter().all(|&v| v == 0.0 || v == 0.5 || v == 1.0));
//! # Ok::<(), biotasks::Error>(())
//! ```

pub mod gaussian;
pub mod phase;

use rayon::prelude::*;

use crate::data::ImageDataset;
use crate::error::{invalid, Error, Result};
use crate::{RngKind, Stream};

/// Mean of the 224x224 Lanczos-upscaled greyscale CIFAR-10 training images (upstream's cached
/// value, on the [0, 255] scale).
pub const LANCZOS_MEAN: f64 = 122.61385345458984;
/// Standard deviation matching [`LANCZOS_MEAN`].
pub const LANCZOS_STD: f64 = 60.87860107421875;
/// Mean of the nearest-neighbour-upscaled greyscale CIFAR-10 training images.
pub const NEAREST_MEAN: f64 = 122.61930353949222;
/// Standard deviation matching [`NEAREST_MEAN`].
pub const NEAREST_STD: f64 = 60.99213660091195;

/// One of BioNet's ten perturbations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Perturbation {
    /// Additive uniform noise.
    Uniform,
    /// Salt-and-pepper noise.
    SaltAndPepper,
    /// Gaussian high-pass filter.
    HighPass,
    /// Gaussian low-pass filter.
    LowPass,
    /// Contrast reduction towards mid-grey.
    Contrast,
    /// Random Fourier phase shifts.
    PhaseScrambling,
    /// Subtracting a constant.
    Darken,
    /// Adding a constant.
    Brighten,
    /// Rotation by multiples of 90 degrees.
    Rotation,
    /// Luminance inversion.
    Invert,
}

const LINSPACE_0_1: [f64; 11] = [
    0.0,
    0.1,
    0.2,
    0.30000000000000004,
    0.4,
    0.5,
    0.6000000000000001,
    0.7000000000000001,
    0.8,
    0.9,
    1.0,
];
const LINSPACE_0_M1: [f64; 11] = [
    0.0,
    -0.1,
    -0.2,
    -0.30000000000000004,
    -0.4,
    -0.5,
    -0.6000000000000001,
    -0.7000000000000001,
    -0.8,
    -0.9,
    -1.0,
];
const LOGSPACE_2_0: [f64; 11] = [
    100.0,
    63.09573444801933,
    39.810717055349734,
    25.118864315095795,
    15.848931924611133,
    10.0,
    6.30957344480193,
    3.9810717055349714,
    2.5118864315095797,
    1.5848931924611134,
    1.0,
];
const LOGSPACE_0_2: [f64; 11] = [
    1.0,
    1.5848931924611136,
    2.51188643150958,
    3.981071705534973,
    6.309573444801933,
    10.0,
    15.848931924611142,
    25.11886431509581,
    39.810717055349734,
    63.09573444801933,
    100.0,
];
const LOGSPACE_0_M2: [f64; 11] = [
    1.0,
    0.6309573444801932,
    0.3981071705534972,
    0.25118864315095796,
    0.15848931924611134,
    0.1,
    0.0630957344480193,
    0.03981071705534971,
    0.025118864315095794,
    0.015848931924611134,
    0.01,
];
const LINSPACE_0_180: [f64; 11] = [0.0, 18.0, 36.0, 54.0, 72.0, 90.0, 108.0, 126.0, 144.0, 162.0, 180.0];
const ROTATIONS: [f64; 4] = [0.0, 90.0, 180.0, 270.0];
const INVERT: [f64; 2] = [0.0, 1.0];

impl Perturbation {
    /// The ten, in upstream's order (`get_perturbations`).
    pub const ALL: [Perturbation; 10] = [
        Perturbation::Uniform,
        Perturbation::SaltAndPepper,
        Perturbation::HighPass,
        Perturbation::LowPass,
        Perturbation::Contrast,
        Perturbation::PhaseScrambling,
        Perturbation::Darken,
        Perturbation::Brighten,
        Perturbation::Rotation,
        Perturbation::Invert,
    ];

    /// Upstream's name, e.g. `"Salt and Pepper"`.
    pub fn name(self) -> &'static str {
        match self {
            Perturbation::Uniform => "Uniform",
            Perturbation::SaltAndPepper => "Salt and Pepper",
            Perturbation::HighPass => "High Pass",
            Perturbation::LowPass => "Low Pass",
            Perturbation::Contrast => "Contrast",
            Perturbation::PhaseScrambling => "Phase Scrambling",
            Perturbation::Darken => "Darken",
            Perturbation::Brighten => "Brighten",
            Perturbation::Rotation => "Rotation",
            Perturbation::Invert => "Invert",
        }
    }

    /// Upstream's file-name form (`noise.replace(' ', '_').lower()`), e.g. `"salt_and_pepper"`.
    pub fn slug(self) -> String {
        self.name().replace(' ', "_").to_lowercase()
    }

    /// Parses upstream's name or its slug, case-insensitively (`"Salt and Pepper"`,
    /// `"salt_and_pepper"`, `"salt-and-pepper"`).
    pub fn from_name(name: &str) -> Result<Self> {
        let key = name.trim().to_lowercase().replace(['_', '-'], " ");
        Perturbation::ALL
            .into_iter()
            .find(|p| p.name().to_lowercase() == key)
            .ok_or_else(|| {
                invalid(
                    "perturbation",
                    name,
                    format!(
                        "unknown; expected one of {}",
                        Perturbation::ALL.map(|p| p.name()).join(", ")
                    ),
                )
            })
    }

    /// Upstream's levels, value for value (NumPy's `linspace`/`logspace` results); the first is
    /// the clean (identity) level.
    pub fn levels(self) -> &'static [f64] {
        match self {
            Perturbation::Uniform | Perturbation::SaltAndPepper | Perturbation::Brighten => &LINSPACE_0_1,
            Perturbation::HighPass => &LOGSPACE_2_0,
            Perturbation::LowPass => &LOGSPACE_0_2,
            Perturbation::Contrast => &LOGSPACE_0_M2,
            Perturbation::PhaseScrambling => &LINSPACE_0_180,
            Perturbation::Darken => &LINSPACE_0_M1,
            Perturbation::Rotation => &ROTATIONS,
            Perturbation::Invert => &INVERT,
        }
    }

    /// The level at `index`, or an error naming the valid range.
    pub fn level(self, index: usize) -> Result<f64> {
        self.levels().get(index).copied().ok_or_else(|| {
            invalid(
                "level_index",
                index,
                format!("{} has {} levels", self.name(), self.levels().len()),
            )
        })
    }

    /// Whether the perturbation draws random numbers (upstream's `stochastic_perturbations`).
    pub fn is_stochastic(self) -> bool {
        matches!(
            self,
            Perturbation::Uniform | Perturbation::SaltAndPepper | Perturbation::PhaseScrambling
        )
    }

    /// Position in [`Perturbation::ALL`].
    pub fn index(self) -> usize {
        Perturbation::ALL.iter().position(|&p| p == self).unwrap_or(0)
    }

    /// How many uniform [0, 1) draws one `(height, width)` image consumes: `H * W` for Uniform
    /// and Salt and Pepper, `((H - 1)(W - 1)) / 2` for Phase Scrambling, 0 otherwise.
    pub fn draws_per_image(self, height: usize, width: usize) -> usize {
        match self {
            Perturbation::Uniform | Perturbation::SaltAndPepper => height * width,
            Perturbation::PhaseScrambling => phase::phase_shift_count(height, width),
            _ => 0,
        }
    }

    /// Applies the perturbation at `level` (a value, normally one of [`Perturbation::levels`])
    /// to one greyscale `(height, width)` image in [0, 1]; stochastic ones draw
    /// [`Perturbation::draws_per_image`] values from `rng` with `uniform01`, exactly as
    /// upstream's calls draw from their `RandomState`. The result is clipped to [0, 1].
    ///
    /// Errors: wrong length, values outside [0, 1] or non-finite (upstream asserts), a level
    /// outside the operation's domain (contrast or probability outside [0, 1], negative width or
    /// sigma, a rotation that is not a multiple of 90 degrees, 90/270 on a non-square image),
    /// odd sides for phase scrambling.
    pub fn apply(
        self,
        image: &[f32],
        height: usize,
        width: usize,
        level: f64,
        opts: &PerturbOptions,
        rng: &mut Stream,
    ) -> Result<Vec<f32>> {
        let draws: Vec<f64> = (0..self.draws_per_image(height, width))
            .map(|_| rng.uniform01())
            .collect();
        self.apply_with_draws(image, height, width, level, opts, &draws)
    }

    /// [`Perturbation::apply`] with the uniform [0, 1) draws given (in the order `apply` would
    /// take them from its stream; length [`Perturbation::draws_per_image`]). This lets a batch
    /// draw sequentially, as upstream's shared generator does, and compute in parallel.
    pub fn apply_with_draws(
        self,
        image: &[f32],
        height: usize,
        width: usize,
        level: f64,
        opts: &PerturbOptions,
        draws: &[f64],
    ) -> Result<Vec<f32>> {
        if draws.len() != self.draws_per_image(height, width) {
            return Err(Error::Shape {
                what: "random draws",
                expected: self.draws_per_image(height, width).to_string(),
                got: draws.len().to_string(),
            });
        }
        check_image(image, height, width)?;
        if !level.is_finite() {
            return Err(invalid("level", level, "must be finite"));
        }
        let clip = |v: f64| v.clamp(0.0, 1.0) as f32;
        match self {
            Perturbation::Uniform => {
                if level < 0.0 {
                    return Err(invalid("width", level, "must be >= 0"));
                }
                let base = adjust_contrast(image, opts.contrast_level)?;
                // rng.uniform(low=-w, high=w, size=(H, W)) = low + (high - low) * u, added in
                // float64.
                let (low, range) = (-level, level - -level);
                Ok(base
                    .iter()
                    .zip(draws)
                    .map(|(&x, &u)| clip(x + (low + range * u)))
                    .collect())
            }
            Perturbation::SaltAndPepper => {
                if !(0.0..=1.0).contains(&level) {
                    return Err(invalid("p", level, "must be in [0, 1]"));
                }
                let base = adjust_contrast(image, opts.contrast_level)?;
                let (white, black) = (1.0 - level / 2.0, level / 2.0);
                Ok(base
                    .iter()
                    .zip(draws)
                    .map(|(&x, &u)| {
                        let salt = if u >= white { 1.0 } else { 0.0 };
                        let pepper = if u < black { -1.0 } else { 0.0 };
                        clip(x + salt + pepper)
                    })
                    .collect())
            }
            Perturbation::HighPass => {
                let low = low_pass_f32(image, height, width, level, opts.background)?;
                // new = image - gauss (float32); mean in float32; + (bg - mean) in float32.
                let diff: Vec<f32> = image.iter().zip(&low).map(|(&x, &g)| x - g).collect();
                let mean = (diff.iter().map(|&v| f64::from(v)).sum::<f64>() / diff.len() as f64) as f32;
                let shift = opts.background as f32 - mean;
                Ok(diff.iter().map(|&d| (d + shift).clamp(0.0, 1.0)).collect())
            }
            Perturbation::LowPass => Ok(low_pass_f32(image, height, width, level, opts.background)?
                .into_iter()
                .map(|v| v.clamp(0.0, 1.0))
                .collect()),
            Perturbation::Contrast => Ok(adjust_contrast(image, level)?.into_iter().map(clip).collect()),
            Perturbation::PhaseScrambling => {
                if level < 0.0 {
                    return Err(invalid("width", level, "must be >= 0"));
                }
                phase::check_size(height, width)?;
                let shifts: Vec<f64> = draws
                    .iter()
                    .map(|&u| (u - 0.5) * 2.0 * level / 180.0 * std::f64::consts::PI)
                    .collect();
                let img: Vec<f64> = image.iter().map(|&v| f64::from(v)).collect();
                Ok(phase::scramble_phases(&img, height, width, &shifts)?
                    .into_iter()
                    .map(|v| v as f32)
                    .collect())
            }
            Perturbation::Darken | Perturbation::Brighten => {
                // new_image += level: float32 array, float64 level -> float64 loop, cast back.
                Ok(image.iter().map(|&x| clip(f64::from(x) + level)).collect())
            }
            Perturbation::Rotation => rotate(image, height, width, level),
            Perturbation::Invert => {
                if level < 0.5 {
                    Ok(image.to_vec())
                } else {
                    Ok(image.iter().map(|&x| (1.0 - x).clamp(0.0, 1.0)).collect())
                }
            }
        }
    }
}

impl std::fmt::Display for Perturbation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Perturbation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Perturbation::from_name(s)
    }
}

/// Settings shared by the perturbations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerturbOptions {
    /// Background grey in [0, 1]: the constant padding of the Gaussian filters and the mean the
    /// high-pass result is moved to. Upstream: `image_mean / 255` of the training statistics.
    pub background: f64,
    /// Contrast applied before the noise perturbations (upstream's `contrast_level`, 1).
    pub contrast_level: f64,
}

impl Default for PerturbOptions {
    /// The paper recipe: Lanczos statistics (`bg = 122.61385345458984 / 255`), contrast 1.
    fn default() -> Self {
        PerturbOptions::with_mean(LANCZOS_MEAN)
    }
}

impl PerturbOptions {
    /// Options for a training mean on the [0, 255] scale (`bg = mean / 255`), contrast 1.
    pub fn with_mean(mean: f64) -> Self {
        PerturbOptions {
            background: mean / 255.0,
            contrast_level: 1.0,
        }
    }
}

fn check_image(image: &[f32], height: usize, width: usize) -> Result<()> {
    if image.len() != height * width || image.is_empty() {
        return Err(Error::Shape {
            what: "image",
            expected: format!("{height}x{width} = {} values (non-empty)", height * width),
            got: format!("{} values", image.len()),
        });
    }
    if let Some(index) = image.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "image",
            value: f64::from(image[index]),
            index,
        });
    }
    if let Some(index) = image.iter().position(|&v| !(0.0..=1.0).contains(&v)) {
        return Err(invalid(
            "image",
            format!("value {} at index {index}", image[index]),
            "perturbations take images in [0, 1]",
        ));
    }
    Ok(())
}

/// Upstream's `adjust_contrast`: `(1 - c)/2 + image.dot(c)` in float64 (the level is a NumPy
/// float64, so `dot` promotes), clipped to [0, 1].
fn adjust_contrast(image: &[f32], contrast: f64) -> Result<Vec<f64>> {
    if !(0.0..=1.0).contains(&contrast) {
        return Err(invalid("contrast_level", contrast, "must be in [0, 1]"));
    }
    let offset = (1.0 - contrast) / 2.0;
    Ok(image
        .iter()
        .map(|&x| (offset + f64::from(x) * contrast).clamp(0.0, 1.0))
        .collect())
}

/// `gaussian_filter(image.astype(float64), sigma, mode='constant', cval=bg).astype(float32)`.
fn low_pass_f32(image: &[f32], height: usize, width: usize, sigma: f64, background: f64) -> Result<Vec<f32>> {
    if sigma < 0.0 {
        return Err(invalid("sigma", sigma, "must be >= 0"));
    }
    let img: Vec<f64> = image.iter().map(|&v| f64::from(v)).collect();
    Ok(
        gaussian::gaussian_filter_constant(&img, height, width, sigma, background)
            .into_iter()
            .map(|v| v as f32)
            .collect(),
    )
}

/// Upstream's `rotate90` (`transpose` then reverse rows: counter-clockwise), `rotate180`,
/// `rotate270` (reverse rows then transpose: clockwise).
fn rotate(image: &[f32], height: usize, width: usize, degrees: f64) -> Result<Vec<f32>> {
    let (h, w) = (height, width);
    let quarter = match [0.0, 90.0, 180.0, 270.0].iter().position(|&d| d == degrees) {
        Some(q) => q,
        None => return Err(invalid("degrees", degrees, "rotation supports 0, 90, 180 or 270")),
    };
    if quarter % 2 == 1 && h != w {
        return Err(Error::Shape {
            what: "rotated image",
            expected: "a square image (90/270 degrees would swap height and width)".into(),
            got: format!("{h}x{w}"),
        });
    }
    let mut out = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = match quarter {
                0 => image[y * w + x],
                // transpose(img)[::-1, :][y, x] = img[x, n-1-y]
                1 => image[x * w + (w - 1 - y)],
                2 => image[(h - 1 - y) * w + (w - 1 - x)],
                // transpose(img[::-1, :])[y, x] = img[n-1-x, y]
                _ => image[(h - 1 - x) * w + y],
            };
        }
    }
    Ok(out)
}

/// Upstream's wrapper scaling `image *= 1/255` in float32, for images on the [0, 255] scale.
pub fn to_unit_range(values: &[f32]) -> Vec<f32> {
    let rescale = (1.0f64 / 255.0) as f32;
    values.iter().map(|&v| v * rescale).collect()
}

/// Upstream's network input after a perturbation: `x * 255` (float32), then Keras'
/// featurewise `(x - mean) / (std + 1e-6)` in float32.
pub fn network_input(perturbed: &[f32], mean: f64, std: f64) -> Vec<f32> {
    let (m, s) = (mean as f32, (std + 1e-6) as f32);
    perturbed.iter().map(|&v| (v * 255.0 - m) / s).collect()
}

/// A 64-bit mix (SplitMix64 finaliser) used to derive per-image seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of image `image_index` under the default seeding: a hash of
/// `(seed, perturbation, level_index, image_index)`.
pub fn image_seed(seed: u64, perturbation: Perturbation, level_index: usize, image_index: usize) -> u64 {
    let mut h = mix(seed);
    h = mix(h ^ perturbation.index() as u64);
    h = mix(h ^ level_index as u64);
    mix(h ^ image_index as u64)
}

/// One (perturbation, level) applied to the images of an evaluation set, batch after batch.
///
/// * [`RngKind::Numpy`]: one `RandomState(seed + level_index)` for the whole set, drawn from in
///   image order (upstream); batches must come in order, from image 0.
/// * [`RngKind::Seeded`] (default): each image has its own stream ([`image_seed`]); batches
///   may come in any order and images are perturbed in parallel.
#[derive(Debug, Clone)]
pub struct Perturber {
    perturbation: Perturbation,
    level_index: usize,
    level: f64,
    opts: PerturbOptions,
    kind: RngKind,
    seed: u64,
    numpy: Option<(Stream, usize)>,
}

impl Perturber {
    /// A perturber for `perturbation` at `levels()[level_index]`.
    pub fn new(
        perturbation: Perturbation,
        level_index: usize,
        opts: PerturbOptions,
        kind: RngKind,
        seed: u64,
    ) -> Result<Self> {
        let level = perturbation.level(level_index)?;
        Perturber::with_level(perturbation, level_index, level, opts, kind, seed)
    }

    /// A perturber that applies `level` (any value, e.g. a filter width rescaled for a smaller
    /// image) but seeds as level `level_index` does.
    pub fn with_level(
        perturbation: Perturbation,
        level_index: usize,
        level: f64,
        opts: PerturbOptions,
        kind: RngKind,
        seed: u64,
    ) -> Result<Self> {
        if !level.is_finite() {
            return Err(invalid("level", level, "must be finite"));
        }
        let numpy = match kind {
            RngKind::Seeded => None,
            RngKind::Numpy => {
                let s = seed
                    .checked_add(level_index as u64)
                    .and_then(|s| u32::try_from(s).ok())
                    .ok_or_else(|| invalid("seed", seed, "NumPy seeds (seed + level index) must be below 2^32"))?;
                Some((Stream::numpy(s), 0))
            }
            RngKind::Python => {
                return Err(invalid(
                    "rng",
                    kind,
                    "perturbations draw from NumPy (numpy) or the project stream (seeded)",
                ))
            }
        };
        Ok(Perturber {
            perturbation,
            level_index,
            level,
            opts,
            kind,
            seed,
            numpy,
        })
    }

    /// The perturbation.
    pub fn perturbation(&self) -> Perturbation {
        self.perturbation
    }

    /// The level value.
    pub fn level(&self) -> f64 {
        self.level
    }

    /// Perturbs `images` (`(n, height, width)` in [0, 1]), which are images
    /// `first_index..first_index + n` of the evaluation set.
    pub fn apply_batch(&mut self, images: &[f32], first_index: usize, height: usize, width: usize) -> Result<Vec<f32>> {
        let len = height * width;
        if len == 0 || images.len() % len != 0 {
            return Err(Error::Shape {
                what: "image batch",
                expected: format!("a multiple of {height}x{width}"),
                got: format!("{} values", images.len()),
            });
        }
        let (p, level, opts) = (self.perturbation, self.level, self.opts);
        let n = images.len() / len;
        let k = p.draws_per_image(height, width);
        // Random draws per image: upstream's shared stream taken in image order, or one
        // stream per image; the perturbations themselves then run in parallel.
        let draws: Vec<f64> = match self.numpy.as_mut() {
            Some((stream, next)) => {
                if first_index != *next && p.is_stochastic() {
                    return Err(invalid(
                        "first_index",
                        first_index,
                        format!("numpy seeding draws in image order; the next image is {next}"),
                    ));
                }
                *next = first_index + n;
                (0..n * k).map(|_| stream.uniform01()).collect()
            }
            None => {
                let (seed, li) = (self.seed, self.level_index);
                (0..n)
                    .into_par_iter()
                    .flat_map_iter(|i| {
                        let mut rng = Stream::seeded(image_seed(seed, p, li, first_index + i));
                        (0..k).map(move |_| rng.uniform01())
                    })
                    .collect()
            }
        };
        let parts: Vec<Result<Vec<f32>>> = images
            .par_chunks_exact(len)
            .enumerate()
            .map(|(i, img)| p.apply_with_draws(img, height, width, level, &opts, &draws[i * k..(i + 1) * k]))
            .collect();
        let mut out = Vec::with_capacity(images.len());
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    /// The kind of random stream.
    pub fn rng_kind(&self) -> RngKind {
        self.kind
    }
}

/// Applies `perturber` to every image of a one-channel dataset (e.g. CIFAR-10G loaded as
/// greyscale), scaling bytes with upstream's `x * (1/255)` first. Returns `(n, height, width)`
/// values in [0, 1].
pub fn perturb_dataset(dataset: &ImageDataset, perturber: &mut Perturber) -> Result<Vec<f32>> {
    if dataset.channels != 1 {
        return Err(Error::Shape {
            what: "dataset channels",
            expected: "1 (BioNet perturbs greyscale images; load with ColorMode::Gray)".into(),
            got: dataset.channels.to_string(),
        });
    }
    let values: Vec<f32> = dataset.images.iter().map(|&b| f32::from(b)).collect();
    perturber.apply_batch(&to_unit_range(&values), 0, dataset.height, dataset.width)
}

#[cfg(test)]
mod tests;
