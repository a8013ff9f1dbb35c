//! `reproduce mouse-gan`: the mouse-mimetic DCGAN of arXiv 2410.20735 (Sci. Rep. 15:25091),
//! `DCGAN_AFHQcat_240805b_git.py`: a DCGAN whose generator's transposed convolutions carry the
//! `2d` mouse mask of radius `w`, against the standard DCGAN (`w = 1.4`), per image class,
//! judged by a [`SampleScorer`] (the FID in the command line).
//!
//! The paper's datasets (AFHQ cat, CelebA, Birds 525, Cheese Pics) are not on this machine; the
//! stand-in is CIFAR-10 per class at 32×32 (5 000 training images per class) with the 32×32
//! variant of the networks ([`model`]). `image_folder` trains on one class folder of the
//! user's copy instead (resized to the spec's size).
//!
//! Jobs are `(class, window, repeat)`, class-major, repeat `k` seeded `seed + k` (so the mouse
//! and standard runs of a class are paired by seed), sharded as every reproduction
//! (`Shard::select_items`). Folder layout:
//!
//! ```text
//! OUT/config.toml, env.txt                  (crate::common)
//! OUT/runs/<class>_<w0.4|standard>_r<RRR>/  one job:
//!     checkpoint.{npz,json}                   while it trains (every epoch; --resume continues it)
//!     result.toml                             when it ends: score, losses, weight usage, converged
//!     generator.npz, model.toml               the generator's weights and spec (`generate`)
//!     samples.png                             8×8 grid of samples
//! OUT/scores.csv, summary.md, score_vs_usage.{png,svg}   once every job is in the folder
//! ```
//!
//! ## The conditional DCGAN (`MouseGanConfig::conditional`)
//!
//! The paper's conditional DCGAN (`DCGAN_conditional_241006a_git.py`, not available; the
//! conditioning of the Keras "Conditional GAN" example, [`model`], [`train`]): one network per
//! `(window, repeat)` trained on every class together (`train_images` of each, shuffled
//! together), then scored per class: `score_samples` images conditioned on class `c` (drawn from
//! the sampling stream class after class, in the order of `classes`) against the first
//! `score_samples` real images of class `c`, with the same scorer. Jobs are `(window, repeat)`,
//! window-major; the folder of a job is `runs/conditional_<w0.4|standard>_r<RRR>/`, with
//! `result.toml` holding one `[[runs]]` row per class (the same rows as the unconditional
//! jobs', so `scores.csv` and the class × window summary are the same), `classes.toml` (the
//! class of each one-hot position, for `generate`) and `samples.png` with one row per class.

pub mod model;
pub mod scorer;
pub mod train;

use std::path::{Path, PathBuf};
use std::time::Instant;

use biolayers::io::NamedArray;
use biolayers::layers::{Module, Sequential};
use biolayers::optim::{Convention, OptimizerConfig};
use biorng::Stream;
use biotasks::checkpoint::{self, CheckpointFiles, Checkpointable, RunState};
use biotasks::data::{load_image_folder, resolve_data_dir, ColorMode, FolderOptions, ImageDataset};
use biotasks::fit::EpochRecord;
use biotasks::plot::{write_line_plot, LinePlot, Series};
use serde::{Deserialize, Serialize};

use crate::common::{prepare_results_folder, toml_of, write_text, Overrides, Preset, ReproduceOptions};
use crate::error::{invalid, io_err, Result};
use crate::stats::{describe, welch_t_test};
use crate::weights_file::{load_weights, save_weights, weight_arrays};
pub use model::{discriminator, generator, trainable_params, DcganSpec, Gan, MAX_CLASSES, STANDARD_WINDOW};
pub use scorer::{ChannelStatsFrechet, SampleScorer};

/// The most classes, windows or repeats a run may ask for (a typo guard, not a resource limit).
pub const MAX_SETTINGS: usize = 64;

/// The settings of `reproduce mouse-gan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MouseGanConfig {
    /// Image classes (CIFAR-10 names, or the sub-folders of `image_folder`).
    pub classes: Vec<String>,
    /// `window2d_width` of the mouse runs (the standard control is always added).
    pub windows: Vec<f64>,
    /// Repeats (seeds) per (class, window).
    pub repeats: usize,
    /// Epochs per run.
    pub epochs: usize,
    /// Training images per class (the first ones in file order).
    pub train_images: usize,
    /// Mini-batch size (upstream 32).
    pub batch_size: usize,
    /// Adam learning rate of both networks (upstream 1e-4).
    pub lr: f64,
    /// Adam β1 (upstream 0.5).
    pub beta1: f64,
    /// Image side (32: CIFAR-10; 64: upstream's image folders).
    pub image_size: usize,
    /// Channels after the generator's reshape (upstream 1024; smaller only in tests).
    pub base_channels: usize,
    /// Generated (and real) images scored per run.
    pub score_samples: usize,
    /// A folder of class sub-folders to train on instead of CIFAR-10 (`None`: CIFAR-10 JPEGs
    /// under the data folder).
    pub image_folder: Option<PathBuf>,
    /// Base seed.
    pub seed: u64,
    /// One conditional DCGAN over all `classes` per (window, repeat) instead of one DCGAN per
    /// class. Absent from the `config.toml` of unconditional runs (which therefore resume as
    /// before).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub conditional: bool,
}

/// The default classes of the conditional DCGAN: four CIFAR-10 stand-ins for the paper's four
/// (CelebA, AFHQ cat, Birds 525, Cheese Pics), none of which CIFAR-10 has but cats and birds:
/// `cat` and `bird` (as the unconditional runs), `automobile` (the Sci. Rep. version adds
/// automobiles) and `deer`, a fourth natural-image class unlike the other three (faces and
/// cheese have no CIFAR-10 class).
pub const CONDITIONAL_CLASSES: [&str; 4] = ["cat", "bird", "automobile", "deer"];

impl MouseGanConfig {
    /// The sizes of `preset` (CIFAR-10 at 32×32, upstream's networks and optimiser):
    /// `quick` cat vs bird, w 0.4 vs standard, 1 repeat, 1 epoch over 640 images per class, 256
    /// scored samples (about 20 minutes on 2 cores, see docs/reproductions.md); `medium` the
    /// same contrast, 3 repeats, 5 epochs over 2 000 images, 1 000 scored samples; `paper` every
    /// radius of the paper's sweep (0.2 … 1.0), 10 repeats, 5 000 images, 100 epochs, 5 000
    /// scored samples.
    pub fn for_preset(preset: Preset, seed: u64) -> Self {
        let (windows, repeats, epochs, train_images, score_samples) = match preset {
            Preset::Quick => (vec![0.4], 1, 1, 640, 256),
            Preset::Medium => (vec![0.4], 3, 5, 2000, 1000),
            Preset::Paper => (vec![0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0], 10, 100, 5000, 5000),
        };
        MouseGanConfig {
            classes: vec!["cat".into(), "bird".into()],
            windows,
            repeats,
            epochs,
            train_images,
            batch_size: 32,
            lr: 1e-4,
            beta1: 0.5,
            image_size: 32,
            base_channels: 1024,
            score_samples,
            image_folder: None,
            seed,
            conditional: false,
        }
    }

    /// The conditional DCGAN's sizes of `preset`: the four [`CONDITIONAL_CLASSES`], the windows,
    /// repeats and scored samples (per class) of [`MouseGanConfig::for_preset`]. One run sees
    /// every class, so `quick` and `medium` take a quarter of the unconditional images per class
    /// (160 and 500): an epoch of a conditional run is as long as one of an unconditional run.
    /// `paper` is the paper's conditional DCGAN: 5 000 images per class, 125 epochs.
    pub fn for_preset_conditional(preset: Preset, seed: u64) -> Self {
        let base = Self::for_preset(preset, seed);
        let (epochs, train_images) = match preset {
            Preset::Quick => (base.epochs, 160),
            Preset::Medium => (base.epochs, 500),
            Preset::Paper => (125, 5000),
        };
        MouseGanConfig {
            classes: CONDITIONAL_CLASSES.iter().map(|c| c.to_string()).collect(),
            epochs,
            train_images,
            conditional: true,
            ..base
        }
    }

    /// `preset`'s sizes with the overrides applied.
    pub fn from_options(opts: &ReproduceOptions) -> Self {
        Self::with_overrides(opts, Self::for_preset(opts.preset, opts.seed))
    }

    /// The conditional DCGAN's sizes of `opts`' preset with the overrides applied.
    pub fn conditional_from_options(opts: &ReproduceOptions) -> Self {
        Self::with_overrides(opts, Self::for_preset_conditional(opts.preset, opts.seed))
    }

    fn with_overrides(opts: &ReproduceOptions, cfg: Self) -> Self {
        let o = opts.overrides;
        MouseGanConfig {
            epochs: Overrides::pick(o.epochs, cfg.epochs),
            repeats: Overrides::pick(o.repeats, cfg.repeats),
            train_images: Overrides::pick(o.train_images, cfg.train_images),
            ..cfg
        }
    }

    /// Checks every setting before anything is read or written.
    ///
    /// # Errors
    /// Empty or too long lists (a conditional run needs at least 2 classes), duplicate classes
    /// or windows, a class name that is not a plain folder name, a window outside (0, 1.4), zero
    /// sizes, a batch larger than the images, a learning rate or β1 out of range, an invalid
    /// network spec.
    pub fn validate(&self) -> Result<()> {
        if self.classes.is_empty() || self.classes.len() > MAX_SETTINGS {
            return Err(invalid(
                "classes",
                self.classes.join(","),
                format!("need 1 to {MAX_SETTINGS} classes"),
            ));
        }
        if self.conditional && self.classes.len() < 2 {
            return Err(invalid(
                "classes",
                self.classes.join(","),
                "the conditional DCGAN needs at least 2 classes",
            ));
        }
        for (i, c) in self.classes.iter().enumerate() {
            if c.is_empty() || c.starts_with('.') || c.contains(['/', '\\', ',']) {
                return Err(invalid("classes", c, "must be a plain folder name"));
            }
            if self.classes[..i].contains(c) {
                return Err(invalid("classes", c, "listed twice"));
            }
        }
        if self.windows.len() > MAX_SETTINGS {
            return Err(invalid(
                "window2d_width",
                self.windows.len(),
                format!("at most {MAX_SETTINGS} radii"),
            ));
        }
        for (i, &w) in self.windows.iter().enumerate() {
            if !(w.is_finite() && w > 0.0 && w < STANDARD_WINDOW) {
                return Err(invalid(
                    "window2d_width",
                    w,
                    "must be in (0, 1.4) (1.4 and above is the standard control, always run)",
                ));
            }
            if self.windows[..i].contains(&w) {
                return Err(invalid("window2d_width", w, "listed twice"));
            }
        }
        for (name, v) in [
            ("repeats", self.repeats),
            ("epochs", self.epochs),
            ("train_images", self.train_images),
            ("batch_size", self.batch_size),
            ("score_samples", self.score_samples),
        ] {
            if v == 0 {
                return Err(invalid(name, 0, "must be at least 1"));
            }
        }
        if self.repeats > MAX_SETTINGS {
            return Err(invalid("repeats", self.repeats, format!("at most {MAX_SETTINGS}")));
        }
        if self.batch_size > self.train_images * self.run_classes() {
            return Err(invalid(
                "batch_size",
                self.batch_size,
                format!(
                    "larger than the {} training images of a run",
                    self.train_images * self.run_classes()
                ),
            ));
        }
        if self.score_samples < 2 {
            return Err(invalid("score_samples", self.score_samples, "need at least 2 images"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid("lr", self.lr, "must be finite and > 0"));
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return Err(invalid("beta1", self.beta1, "must be in [0, 1)"));
        }
        self.spec(None).validate()
    }

    /// The network spec of one window (`None`: standard); conditioned on every class when the
    /// run is conditional.
    pub fn spec(&self, window: Option<f64>) -> DcganSpec {
        DcganSpec {
            image_size: self.image_size,
            latent_dim: 100,
            base_channels: self.base_channels,
            window,
            num_classes: if self.conditional { self.classes.len() } else { 0 },
        }
    }

    /// The classes one run trains on: all of them (conditional) or one.
    fn run_classes(&self) -> usize {
        if self.conditional {
            self.classes.len()
        } else {
            1
        }
    }

    /// The windows run per class: the mouse radii, then the standard control (`None`).
    pub fn settings(&self) -> Vec<Option<f64>> {
        self.windows.iter().map(|&w| Some(w)).chain([None]).collect()
    }

    /// Keras `Adam(learning_rate=lr, beta_1=beta1)` (ε = 1e-7).
    pub fn optimizer(&self) -> OptimizerConfig {
        OptimizerConfig::Adam {
            lr: self.lr,
            beta1: Some(self.beta1),
            beta2: None,
            eps: None,
            weight_decay: 0.0,
            decay: 0.0,
            convention: Convention::Keras,
        }
    }
}

/// The label of a window in folder names and tables: `w0.4` or `standard`.
pub fn window_label(window: Option<f64>) -> String {
    window.map_or_else(|| "standard".to_string(), |w| format!("w{w}"))
}

/// One `(class, window, repeat)` job; `class` is `None` for a conditional job (every class).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Job {
    class: Option<usize>,
    window: usize,
    repeat: usize,
}

/// The outcome of one run, `result.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunResult {
    /// The image class.
    pub class: String,
    /// `w0.4` or `standard`.
    pub window: String,
    /// The repeat (seed offset).
    pub repeat: usize,
    /// Fraction of the masked stages' weights kept (1 for standard).
    pub weight_usage: f64,
    /// The scorer's name (`fid`, `channel-stats-frechet`) or `none` (`--no-fid`).
    pub scorer: String,
    /// The score (NaN without a scorer).
    pub score: f64,
    /// `false` when the score is above the scorer's divergence threshold (FID > 200).
    pub converged: bool,
    /// Mean discriminator and generator losses of the last epoch.
    pub d_loss: f64,
    /// See `d_loss`.
    pub g_loss: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// Training steps per second in this process (the last session of the run).
    pub steps_per_second: f64,
}

/// `result.toml` of a conditional job: one row per class, in the order of the run's classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionalResult {
    runs: Vec<RunResult>,
}

/// `classes.toml` of a conditional run folder: the class of each one-hot position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassList {
    classes: Vec<String>,
}

/// What [`run`] did.
#[derive(Debug, Clone, Default)]
pub struct MouseGanReport {
    /// Jobs trained now.
    pub ran: usize,
    /// Jobs already finished in the folder.
    pub skipped: usize,
    /// Jobs of other shards not in the folder yet (0 when the summary was written).
    pub missing: usize,
    /// Every finished result in the folder (a conditional job gives one per class).
    pub results: Vec<RunResult>,
}

fn job_dir(out: &Path, cfg: &MouseGanConfig, settings: &[Option<f64>], job: Job) -> PathBuf {
    let who = job.class.map_or("conditional", |c| cfg.classes[c].as_str());
    out.join("runs").join(format!(
        "{who}_{}_r{:03}",
        window_label(settings[job.window]),
        job.repeat
    ))
}

/// The results of a finished job (`None`: not finished): one row, or one per class of a
/// conditional job.
fn read_result(dir: &Path, conditional: bool) -> Result<Option<Vec<RunResult>>> {
    let path = dir.join("result.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path, e)),
    };
    if conditional {
        let r: ConditionalResult = toml::from_str(&text).map_err(|e| io_err(&path, e))?;
        Ok(Some(r.runs))
    } else {
        let r: RunResult = toml::from_str(&text).map_err(|e| io_err(&path, e))?;
        Ok(Some(vec![r]))
    }
}

/// The training images of every class, NCHW in [0, 1], `train_images` each, checked against
/// the spec's size (CIFAR-10 JPEGs are decoded at their size; a user's folder is resized).
fn load_classes(cfg: &MouseGanConfig, data: Option<&Path>) -> Result<Vec<Vec<f32>>> {
    let (root, resize) = match &cfg.image_folder {
        Some(dir) => (dir.clone(), Some((cfg.image_size as u32, cfg.image_size as u32))),
        None => (resolve_data_dir(data)?.join("cifar10-jpeg").join("train"), None),
    };
    let opts = FolderOptions {
        color: ColorMode::Rgb,
        resize,
        max_per_class: Some(cfg.train_images),
        // A user's photos (AFHQ, CelebA, birds, cheese) are cut to their centred square before
        // the resize, so that they are not squashed (the Keras DDIM example's preprocessing).
        center_crop: true,
    };
    let set: ImageDataset = load_image_folder(&root, &opts)?;
    if (set.channels, set.height, set.width) != (3, cfg.image_size, cfg.image_size) {
        return Err(io_err(
            &root,
            format!(
                "{}×{}×{} images: the {}×{} networks need RGB {}×{}",
                set.channels, set.height, set.width, cfg.image_size, cfg.image_size, cfg.image_size, cfg.image_size
            ),
        ));
    }
    let per = set.image_len();
    cfg.classes
        .iter()
        .map(|c| {
            let label = set.classes.iter().position(|k| k == c).ok_or_else(|| {
                io_err(
                    &root,
                    format!("no class folder `{c}` (found: {})", set.classes.join(", ")),
                )
            })?;
            let imgs: Vec<f32> = set
                .labels
                .iter()
                .enumerate()
                .filter(|(_, &l)| l == label)
                .flat_map(|(i, _)| &set.images[i * per..(i + 1) * per])
                .map(|&b| f32::from(b) / 255.0)
                .collect();
            if imgs.len() / per < cfg.train_images {
                return Err(io_err(
                    &root.join(c),
                    format!("{} images, the run needs {}", imgs.len() / per, cfg.train_images),
                ));
            }
            Ok(imgs)
        })
        .collect()
}

/// A seed derived from the run's seed and a purpose (epoch `e`, or the sampling stream).
fn derive_seed(seed: u64, tag: u64) -> u64 {
    seed ^ tag.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The tag of the sampling stream (after training).
const SAMPLE_TAG: u64 = u64::MAX - 1;

/// Samples `n` images from the unconditional `generator` with batch statistics over batches of
/// up to 64 (its running statistics are restored afterwards, so they stay as trained), NCHW in
/// [0, 1].
///
/// # Errors
/// A conditional `spec` (use [`sample_class`]); forward errors.
pub fn sample(generator: &mut Sequential, spec: &DcganSpec, n: usize, rng: &mut Stream) -> Result<Vec<f32>> {
    sample_inner(generator, spec, None, n, rng)
}

/// Samples `n` images of class `class` from the conditional `generator` as [`sample`] does:
/// every batch (of up to 64) is of that one class, its latents drawn from `rng` as
/// [`sample`]'s.
///
/// # Errors
/// An unconditional `spec`, a class outside `0..spec.num_classes`; forward errors.
pub fn sample_class(
    generator: &mut Sequential,
    spec: &DcganSpec,
    class: usize,
    n: usize,
    rng: &mut Stream,
) -> Result<Vec<f32>> {
    sample_inner(generator, spec, Some(class), n, rng)
}

fn sample_inner(
    generator: &mut Sequential,
    spec: &DcganSpec,
    class: Option<usize>,
    n: usize,
    rng: &mut Stream,
) -> Result<Vec<f32>> {
    match (class, spec.is_conditional()) {
        (None, true) => {
            return Err(invalid(
                "class",
                "none",
                format!(
                    "the conditional generator needs one of its {} classes",
                    spec.num_classes
                ),
            ))
        }
        (Some(c), false) => return Err(invalid("class", c, "the generator is not conditional")),
        (Some(c), true) if c >= spec.num_classes => {
            return Err(invalid(
                "class",
                c,
                format!("must be below the generator's {} classes", spec.num_classes),
            ))
        }
        _ => {}
    }
    let saved = generator.buffers();
    let mut out = Vec::with_capacity(n * 3 * spec.image_size * spec.image_size);
    let mut left = n;
    while left > 0 {
        let b = left.min(64);
        let z = train::latent(rng, b, spec.latent_dim)?;
        let input = match class {
            Some(c) => train::one_hot_inputs(&z, &vec![c; b], spec.num_classes)?,
            None => z,
        };
        // On the generator's device (its first parameter's), read back.
        let device = generator
            .params()
            .first()
            .map_or(bioautograd::Device::Cpu, |p| p.value.device());
        out.extend(train::generate_batch(generator, input.to_device(device)?)?.to_vec()?);
        left -= b;
    }
    generator.set_buffers(&saved)?;
    Ok(out)
}

/// `per` samples of every class of the conditional `generator` (class after class, one
/// stream), NCHW: the rows of a grid with one row per class.
fn sample_rows(generator: &mut Sequential, spec: &DcganSpec, per: usize, rng: &mut Stream) -> Result<Vec<f32>> {
    let len = 3 * spec.image_size * spec.image_size;
    let mut out = Vec::with_capacity(spec.num_classes * per * len);
    for c in 0..spec.num_classes {
        // Batch statistics need two images; draw at least two, keep `per`.
        let imgs = sample_class(generator, spec, c, per.max(2), rng)?;
        out.extend_from_slice(&imgs[..per * len]);
    }
    Ok(out)
}

/// An 8-bit RGB PNG of the first `n` images of `images` (NCHW in [0, 1], `side × side`) in a
/// grid of `cols` columns with 2-pixel white gaps.
///
/// # Errors
/// Fewer than `n` images, `n` or `cols` zero; encoding errors.
pub fn grid_png(images: &[f32], n: usize, side: usize, cols: usize) -> Result<Vec<u8>> {
    let plane = side * side;
    if n == 0 || cols == 0 || side == 0 || images.len() < n * 3 * plane {
        return Err(invalid(
            "grid",
            n,
            format!(
                "needs n ≥ 1 images of 3×{side}×{side} and ≥ 1 column ({} values given)",
                images.len()
            ),
        ));
    }
    let rows = n.div_ceil(cols);
    let gap = 2;
    let (w, h) = (cols * (side + gap) + gap, rows * (side + gap) + gap);
    let mut img = image::RgbImage::from_pixel(w as u32, h as u32, image::Rgb([255, 255, 255]));
    for k in 0..n {
        let (ox, oy) = (gap + (k % cols) * (side + gap), gap + (k / cols) * (side + gap));
        let base = k * 3 * plane;
        for y in 0..side {
            for x in 0..side {
                let px = |c: usize| (images[base + c * plane + y * side + x].clamp(0.0, 1.0) * 255.0).round() as u8;
                img.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb([px(0), px(1), px(2)]));
            }
        }
    }
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| invalid("grid png", e, "could not be encoded"))?;
    Ok(bytes)
}

/// The most images `generate` draws into one grid.
pub const MAX_GENERATE: usize = 1024;

/// `generate`: `n` samples of the generator in the finished run folder `dir` (latents from
/// `seed`), drawn on `device`, as the PNG bytes of a square-ish grid. A conditional generator draws one row per
/// class, in the order of [`grid_rows`], of `⌈n / K⌉` images each (so `K·⌈n / K⌉` images),
/// class after class from one stream. Nothing is written here: the caller writes the bytes
/// atomically.
///
/// # Errors
/// `n` outside `[1, MAX_GENERATE]`; those of [`load_generator`]; forward errors.
pub fn generate_grid(dir: &Path, n: usize, seed: u64, device: bioautograd::Device) -> Result<Vec<u8>> {
    if n == 0 || n > MAX_GENERATE {
        return Err(invalid("n", n, format!("must be in [1, {MAX_GENERATE}]")));
    }
    let (mut g, spec) = load_generator(dir)?;
    g.to_device(device)?;
    let mut rng = Stream::seeded(seed);
    if spec.is_conditional() {
        let per = n.div_ceil(spec.num_classes);
        let images = sample_rows(&mut g, &spec, per, &mut rng)?;
        return grid_png(&images, per * spec.num_classes, spec.image_size, per);
    }
    let images = sample(&mut g, &spec, n.max(2), &mut rng)?;
    let cols = (n as f64).sqrt().ceil() as usize;
    grid_png(&images, n, spec.image_size, cols)
}

/// The rows of [`generate_grid`]'s grid for the run folder `dir`: the classes of a conditional
/// generator in one-hot order (`classes.toml`); empty for an unconditional one.
///
/// # Errors
/// Those of [`load_generator`]'s `model.toml`; `classes.toml` of a conditional run missing,
/// unreadable, or not naming `num_classes` classes.
pub fn grid_rows(dir: &Path) -> Result<Vec<String>> {
    let spec = read_spec(dir)?;
    if !spec.is_conditional() {
        return Ok(Vec::new());
    }
    let path = dir.join("classes.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
    let list: ClassList = toml::from_str(&text).map_err(|e| io_err(&path, e))?;
    if list.classes.len() != spec.num_classes {
        return Err(io_err(
            &path,
            format!("{} classes, model.toml says {}", list.classes.len(), spec.num_classes),
        ));
    }
    Ok(list.classes)
}

/// The validated `model.toml` of a run folder.
fn read_spec(dir: &Path) -> Result<DcganSpec> {
    let spec_path = dir.join("model.toml");
    let text = std::fs::read_to_string(&spec_path)
        .map_err(|e| io_err(&spec_path, format!("{e} (not a finished mouse-gan run folder)")))?;
    let spec: DcganSpec = toml::from_str(&text).map_err(|e| io_err(&spec_path, e))?;
    spec.validate().map_err(|e| io_err(&spec_path, e))?;
    Ok(spec)
}

/// The generator's parameters and buffers as `.npz` entries (`param.<name>`, `buffer.<name>`).
fn generator_arrays(g: &Sequential) -> Result<Vec<NamedArray>> {
    weight_arrays(Checkpointable::named_params(g), g.buffers())
}

/// Rebuilds the generator a run folder holds (`model.toml` + `generator.npz`, written when the
/// run finished). Every name, shape and value is checked before the model is returned.
///
/// # Errors
/// [`Error::Data`] naming the file: missing or unreadable, a spec that does not validate, an
/// entry missing, extra, misshapen or not finite.
pub fn load_generator(dir: &Path) -> Result<(Sequential, DcganSpec)> {
    let spec = read_spec(dir)?;
    let (mut g, _) = generator(&spec, &mut Stream::seeded(0))?;
    let expected = generator_arrays(&g)?;
    load_weights(&dir.join("generator.npz"), &expected, &mut g)?;
    Ok((g, spec))
}

/// What one job trains on and scores against.
struct TrainSet<'a> {
    /// Every training image of the job, NCHW in [0, 1]: one class, or (conditional) every class
    /// after the other.
    images: &'a [f32],
    /// The class index of each image (conditional jobs); `None`: unconditional.
    labels: Option<&'a [usize]>,
    /// The scored classes: the name and the real images of each (one for an unconditional job,
    /// every class in one-hot order for a conditional one).
    classes: Vec<(&'a str, &'a [f32])>,
}

/// Trains (or resumes) one job and writes its folder; returns its results (one per scored
/// class).
#[allow(clippy::too_many_arguments)]
fn run_job<'s>(
    dir: &Path,
    cfg: &MouseGanConfig,
    window: Option<f64>,
    set: &TrainSet<'_>,
    repeat: usize,
    mut scorer: Option<&mut (dyn SampleScorer + 's)>,
    opts: &ReproduceOptions,
) -> Result<Vec<RunResult>> {
    let (resume, progress, device) = (opts.resume, opts.progress, opts.device);
    let spec = cfg.spec(window);
    let seed = cfg.seed + repeat as u64;
    let mut rng = Stream::seeded(seed);
    let (g, usage) = generator(&spec, &mut rng)?;
    let d = discriminator(&spec, &mut rng, derive_seed(seed, u64::MAX))?;
    let mut gan = Gan {
        generator: g,
        discriminator: d,
    };
    let mut opt = cfg.optimizer().build()?;
    let files = CheckpointFiles::new(dir, "checkpoint");
    let mut history: Vec<EpochRecord> = Vec::new();
    if resume && files.exists() {
        if let Some(state) = checkpoint::load(&files, &mut gan, &mut opt, Some(seed))? {
            history = state.history;
        }
    }
    // After the checkpoint went into the host models (its saves read back from the device).
    gan.to_device(device)?;
    let side = cfg.image_size;
    let per = 3 * side * side;
    let n = set.images.len() / per;
    let steps = n / cfg.batch_size;
    let who = match set.labels {
        Some(_) => "conditional",
        None => set.classes.first().map_or("", |c| c.0),
    };
    let started = Instant::now();
    let mut steps_done = 0usize;
    for epoch in history.len()..cfg.epochs {
        let mut erng = Stream::seeded(derive_seed(seed, epoch as u64));
        gan.reseed(derive_seed(seed, (epoch as u64) << 32));
        let order = biotasks::data::epoch_order(n, true, &mut erng);
        let (mut dsum, mut gsum) = (0.0f64, 0.0f64);
        for s in 0..steps {
            let picked = &order[s * cfg.batch_size..(s + 1) * cfg.batch_size];
            let mut batch = Vec::with_capacity(cfg.batch_size * per);
            for &i in picked {
                batch.extend_from_slice(&set.images[i * per..(i + 1) * per]);
            }
            let real = bioautograd::Tensor::new(batch, &[cfg.batch_size, 3, side, side], device)?;
            let (dl, gl) = match set.labels {
                Some(labels) => {
                    let classes: Vec<usize> = picked.iter().map(|&i| labels[i]).collect();
                    train::conditional_gan_step(
                        &mut gan,
                        &mut opt,
                        &real,
                        &classes,
                        spec.num_classes,
                        spec.latent_dim,
                        &mut erng,
                    )?
                }
                None => train::gan_step(&mut gan, &mut opt, &real, spec.latent_dim, &mut erng)?,
            };
            dsum += f64::from(dl);
            gsum += f64::from(gl);
            steps_done += 1;
            if progress {
                eprint!(
                    "\r  {who} {} r{repeat}: epoch {}/{} step {}/{} d_loss {dl:.4} g_loss {gl:.4}   ",
                    window_label(window),
                    epoch + 1,
                    cfg.epochs,
                    s + 1,
                    steps
                );
            }
        }
        history.push(EpochRecord {
            epoch: epoch + 1,
            train_loss: dsum / steps as f64,
            train_acc: f64::NAN,
            val_loss: gsum / steps as f64,
            val_acc: f64::NAN,
        });
        checkpoint::save(
            &files,
            &gan,
            &opt,
            &RunState {
                history: history.clone(),
                seed: Some(seed),
                early_stopping: None,
            },
        )?;
    }
    if progress {
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    let last = history
        .last()
        .copied()
        .ok_or_else(|| invalid("epochs", 0, "no epoch trained"))?;
    // One sampling stream per job; a conditional job draws its classes one after the other.
    let mut srng = Stream::seeded(derive_seed(seed, SAMPLE_TAG));
    let mut results = Vec::with_capacity(set.classes.len());
    // Conditional: the first 8 samples of every class, one row each.
    let row = cfg.score_samples.min(8);
    let mut shown = Vec::with_capacity(set.classes.len() * row * per);
    let mut grid = Vec::new();
    for (c, (class, real)) in set.classes.iter().enumerate() {
        let fake = if spec.is_conditional() {
            let fake = sample_class(&mut gan.generator, &spec, c, cfg.score_samples, &mut srng)?;
            shown.extend_from_slice(&fake[..row * per]);
            fake
        } else {
            let fake = sample(&mut gan.generator, &spec, cfg.score_samples, &mut srng)?;
            let count = cfg.score_samples.min(64);
            grid = grid_png(&fake, count, side, 8)?;
            fake
        };
        let k = cfg.score_samples.min(real.len() / per);
        let (score, scorer_name, threshold) = match scorer.as_deref_mut() {
            Some(s) => {
                let v = s.score(
                    &real[..k * per],
                    &fake[..cfg.score_samples * per],
                    k,
                    cfg.score_samples,
                    3,
                    side,
                    side,
                )?;
                (v, s.name().to_string(), s.divergence_threshold())
            }
            None => (f64::NAN, "none".to_string(), None),
        };
        results.push(RunResult {
            class: class.to_string(),
            window: window_label(window),
            repeat,
            weight_usage: usage,
            scorer: scorer_name,
            score,
            converged: threshold.is_none_or(|t| score <= t),
            d_loss: last.train_loss,
            g_loss: last.val_loss,
            epochs: history.len(),
            steps_per_second: if secs > 0.0 { steps_done as f64 / secs } else { 0.0 },
        });
    }
    save_weights(&dir.join("generator.npz"), &generator_arrays(&gan.generator)?)?;
    write_text(&dir.join("model.toml"), &toml_of(&spec)?)?;
    let result_toml = if spec.is_conditional() {
        let classes = ClassList {
            classes: set.classes.iter().map(|c| c.0.to_string()).collect(),
        };
        write_text(&dir.join("classes.toml"), &toml_of(&classes)?)?;
        grid = grid_png(&shown, set.classes.len() * row, side, row)?;
        toml_of(&ConditionalResult { runs: results.clone() })?
    } else {
        let first = results
            .first()
            .ok_or_else(|| invalid("classes", 0, "a job scores at least one class"))?;
        toml_of(first)?
    };
    bionpy::write_atomic(&dir.join("samples.png"), &grid)?;
    // result.toml is the commit point: a job with it is finished.
    write_text(&dir.join("result.toml"), &result_toml)?;
    files.remove()?;
    Ok(results)
}

/// Runs `reproduce mouse-gan` with `cfg` into `opts.out`, scoring with `scorer` (`None`: no
/// score, `--no-fid`). Writes the summary when every job is in the folder.
///
/// # Errors
/// An invalid `cfg`; the folder checks of [`prepare_results_folder`]; data, training and
/// scoring errors.
pub fn run<'s>(
    opts: &ReproduceOptions,
    cfg: &MouseGanConfig,
    mut scorer: Option<&mut (dyn SampleScorer + 's)>,
) -> Result<MouseGanReport> {
    cfg.validate()?;
    let images = load_classes(cfg, opts.data.as_deref())?;
    let mut config = toml_of(cfg)?;
    config.push_str(&format!(
        "\n[scoring]\nscorer = \"{}\"\n",
        scorer.as_deref().map_or("none", |s| s.name())
    ));
    prepare_results_folder(&opts.out, "mouse-gan", &config, opts.resume)?;
    let settings = cfg.settings();
    let classes: Vec<Option<usize>> = if cfg.conditional {
        vec![None]
    } else {
        (0..cfg.classes.len()).map(Some).collect()
    };
    let jobs: Vec<Job> = classes
        .iter()
        .flat_map(|&class| {
            (0..settings.len())
                .flat_map(move |window| (0..cfg.repeats).map(move |repeat| Job { class, window, repeat }))
        })
        .collect();
    // A conditional run trains on every class at once: the images class after class, with
    // their class indices.
    let (all, labels): (Vec<f32>, Vec<usize>) = if cfg.conditional {
        let per = 3 * cfg.image_size * cfg.image_size;
        (
            images.concat(),
            images
                .iter()
                .enumerate()
                .flat_map(|(c, imgs)| std::iter::repeat_n(c, imgs.len() / per))
                .collect(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let mut report = MouseGanReport::default();
    for job in opts.shard.select_items(&jobs) {
        let dir = job_dir(&opts.out, cfg, &settings, job);
        if read_result(&dir, cfg.conditional)?.is_some() {
            report.skipped += 1;
            continue;
        }
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let set = match job.class {
            Some(c) => TrainSet {
                images: &images[c],
                labels: None,
                classes: vec![(cfg.classes[c].as_str(), images[c].as_slice())],
            },
            None => TrainSet {
                images: &all,
                labels: Some(labels.as_slice()),
                classes: cfg
                    .classes
                    .iter()
                    .zip(&images)
                    .map(|(name, imgs)| (name.as_str(), imgs.as_slice()))
                    .collect(),
            },
        };
        run_job(
            &dir,
            cfg,
            settings[job.window],
            &set,
            job.repeat,
            scorer.as_deref_mut(),
            opts,
        )?;
        report.ran += 1;
    }
    for job in &jobs {
        match read_result(&job_dir(&opts.out, cfg, &settings, *job), cfg.conditional)? {
            Some(r) => report.results.extend(r),
            None => report.missing += 1,
        }
    }
    if report.missing == 0 {
        finish(&opts.out, cfg, &report.results)?;
    }
    Ok(report)
}

/// `reproduce mouse-gan` at `opts`' preset and overrides, with `classes` and `windows` when
/// given.
///
/// # Errors
/// Those of [`run`].
pub fn mouse_gan<'s>(
    opts: &ReproduceOptions,
    classes: Option<Vec<String>>,
    windows: Option<Vec<f64>>,
    scorer: Option<&mut (dyn SampleScorer + 's)>,
) -> Result<MouseGanReport> {
    opts.overrides.validate()?;
    let mut cfg = MouseGanConfig::from_options(opts);
    if let Some(c) = classes {
        cfg.classes = c;
    }
    if let Some(w) = windows {
        cfg.windows = w;
    }
    run(opts, &cfg, scorer)
}

/// The classes where the paper reports the mouse GAN better (`Some(true)`) or worse
/// (`Some(false)`) than the standard one, by the CIFAR-10 stand-in's class name; `None`: the
/// paper says nothing about the class.
fn paper_expectation(class: &str) -> Option<(bool, &'static str)> {
    match class {
        "cat" => Some((true, "better on cat faces (AFHQ cat)")),
        "bird" => Some((false, "worse on birds (Birds 525)")),
        _ => None,
    }
}

fn fmt_stat(xs: &[f64]) -> String {
    match describe(xs) {
        Ok(d) if xs.len() > 1 => format!("{:.2} ± {:.2}", d.mean, d.sd),
        Ok(d) => format!("{:.2}", d.mean),
        Err(_) => "n/a".into(),
    }
}

/// Writes `scores.csv`, `summary.md` and the score-vs-usage plot from the finished results.
fn finish(out: &Path, cfg: &MouseGanConfig, results: &[RunResult]) -> Result<()> {
    let mut csv = String::from("class,window,repeat,weight_usage,scorer,score,converged,d_loss,g_loss,epochs\n");
    for r in results {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.class, r.window, r.repeat, r.weight_usage, r.scorer, r.score, r.converged, r.d_loss, r.g_loss, r.epochs
        ));
    }
    write_text(&out.join("scores.csv"), &csv)?;
    let scorer = results.first().map_or("none", |r| r.scorer.as_str());
    let metric = match scorer {
        "none" => "no score (--no-fid)".to_string(),
        "fid" => "FID (lower is better)".to_string(),
        other => format!("{other} (lower is better; not an FID)"),
    };
    let what = if cfg.conditional {
        format!(
            "Conditional DCGAN over {} classes (one network per setting and repeat trained on all of them: the \
             one-hot class after the generator's latent and as {} constant planes of the discriminator's input, \
             the Keras Conditional GAN example's conditioning; upstream's conditional script was not available), \
             scored per class on the samples conditioned on that class",
            cfg.classes.len(),
            cfg.classes.len()
        )
    } else {
        "DCGAN".to_string()
    };
    let mut md = format!(
        "# reproduce mouse-gan\n\n{what} ({}×{}, upstream's generator/discriminator, Keras Adam lr {} β1 {}, batch {}), \
         {} epoch(s) over {} training images per class, {} repeat(s); score: {metric} on {} samples{}.\n\n\
         | class | setting | weight usage | score (mean ± sd) | runs | not converged |\n|---|---|---|---|---|---|\n",
        cfg.image_size, cfg.image_size, cfg.lr, cfg.beta1, cfg.batch_size, cfg.epochs, cfg.train_images, cfg.repeats,
        cfg.score_samples,
        if cfg.conditional { " per class" } else { "" }
    );
    let settings = cfg.settings();
    let mut series = Vec::new();
    let mut verdicts = String::new();
    for class in &cfg.classes {
        let mut points = Vec::new();
        let converged = |label: &str| -> Vec<f64> {
            results
                .iter()
                .filter(|r| &r.class == class && r.window == label && r.converged && r.score.is_finite())
                .map(|r| r.score)
                .collect()
        };
        for w in &settings {
            let label = window_label(*w);
            let runs: Vec<&RunResult> = results
                .iter()
                .filter(|r| &r.class == class && r.window == label)
                .collect();
            let scores = converged(&label);
            let failed = runs.iter().filter(|r| !r.converged).count();
            let usage = runs.first().map_or(f64::NAN, |r| r.weight_usage);
            md.push_str(&format!(
                "| {class} | {label} | {:.1} % | {} | {} | {failed} |\n",
                100.0 * usage,
                fmt_stat(&scores),
                runs.len()
            ));
            if let Ok(d) = describe(&scores) {
                points.push((100.0 * usage, d.mean));
            }
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push(Series {
            label: class.clone(),
            points,
            ..Series::default()
        });
        let standard = converged("standard");
        for &w in &cfg.windows {
            let mouse = converged(&window_label(Some(w)));
            verdicts.push_str(&verdict(class, w, &mouse, &standard, scorer));
        }
    }
    md.push_str("\nRuns scoring above the scorer's divergence threshold (FID > 200, the paper's rule) are counted as not converged and left out of the means; they are never dropped silently.\n");
    if series.iter().all(|s| s.points.is_empty()) {
        md.push_str("No run converged, so there is no score-vs-usage plot; every run's score is in scores.csv.\n");
    }
    md.push_str("\n## The paper's claim at this scale\n\n");
    md.push_str(&verdicts);
    write_text(&out.join("summary.md"), &md)?;
    if scorer != "none" && series.iter().any(|s| !s.points.is_empty()) {
        let plot = LinePlot {
            title: "mouse-gan: score vs weight usage",
            x_label: "weight usage of the masked generator layers (%)",
            y_label: "score (lower is better)",
            x_range: (0.0, 105.0),
            y_range: (0.0, 1.0),
            series,
        }
        .fit_y();
        write_line_plot(&out.join("score_vs_usage"), &plot)?;
    }
    Ok(())
}

/// One sentence per (class, window): the Welch test of mouse vs standard and whether the
/// paper's claim for the class holds at this scale.
fn verdict(class: &str, w: f64, mouse: &[f64], standard: &[f64], scorer: &str) -> String {
    let head = format!(
        "- **{class}, w {w}**: mouse {} vs standard {} ({} vs {} converged runs)",
        fmt_stat(mouse),
        fmt_stat(standard),
        mouse.len(),
        standard.len()
    );
    if scorer == "none" {
        return format!("{head}: no score was computed (--no-fid), so the claim cannot be judged.\n");
    }
    let test = welch_t_test(mouse, standard);
    let expectation = paper_expectation(class);
    let tail = match (&test, expectation) {
        (Err(e), _) => format!("the Welch test is undecidable ({e}); the claim cannot be judged at this scale"),
        (Ok(t), None) => format!(
            "Welch t = {:.2}, p = {:.3}; the paper makes no claim for this class",
            t.t, t.p
        ),
        (Ok(t), Some((mouse_better, what))) => {
            let observed_better = t.t < 0.0;
            let significant = t.p < 0.05;
            let holds = match (significant, observed_better == mouse_better) {
                (true, true) => "holds",
                (true, false) => "is contradicted",
                (false, _) => "is not supported (no significant difference)",
            };
            format!(
                "Welch t = {:.2}, p = {:.3}; the paper's claim (mouse GAN {what}) {holds} at this scale",
                t.t, t.p
            )
        }
    };
    format!("{head}: {tail}.\n")
}
