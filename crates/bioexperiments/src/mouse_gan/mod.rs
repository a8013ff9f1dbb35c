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
pub use model::{discriminator, generator, trainable_params, DcganSpec, Gan, STANDARD_WINDOW};
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
}

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
        }
    }

    /// `preset`'s sizes with the overrides applied.
    pub fn from_options(opts: &ReproduceOptions) -> Self {
        let o = opts.overrides;
        let cfg = Self::for_preset(opts.preset, opts.seed);
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
    /// Empty or too long lists, duplicate classes or windows, a class name that is not a plain
    /// folder name, a window outside (0, 1.4), zero sizes, a batch larger than the images, a
    /// learning rate or β1 out of range, an invalid network spec.
    pub fn validate(&self) -> Result<()> {
        if self.classes.is_empty() || self.classes.len() > MAX_SETTINGS {
            return Err(invalid(
                "classes",
                self.classes.join(","),
                format!("need 1 to {MAX_SETTINGS} classes"),
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
        if self.batch_size > self.train_images {
            return Err(invalid(
                "batch_size",
                self.batch_size,
                format!("larger than the {} training images per class", self.train_images),
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

    /// The network spec of one window (`None`: standard).
    pub fn spec(&self, window: Option<f64>) -> DcganSpec {
        DcganSpec {
            image_size: self.image_size,
            latent_dim: 100,
            base_channels: self.base_channels,
            window,
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

/// One `(class, window, repeat)` job.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Job {
    class: usize,
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

/// What [`run`] did.
#[derive(Debug, Clone, Default)]
pub struct MouseGanReport {
    /// Jobs trained now.
    pub ran: usize,
    /// Jobs already finished in the folder.
    pub skipped: usize,
    /// Jobs of other shards not in the folder yet (0 when the summary was written).
    pub missing: usize,
    /// Every finished result in the folder.
    pub results: Vec<RunResult>,
}

fn job_dir(out: &Path, cfg: &MouseGanConfig, settings: &[Option<f64>], job: Job) -> PathBuf {
    out.join("runs").join(format!(
        "{}_{}_r{:03}",
        cfg.classes[job.class],
        window_label(settings[job.window]),
        job.repeat
    ))
}

fn read_result(dir: &Path) -> Result<Option<RunResult>> {
    let path = dir.join("result.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map(Some).map_err(|e| io_err(&path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path, e)),
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

/// Samples `n` images from `generator` with batch statistics over batches of up to 64 (its
/// running statistics are restored afterwards, so they stay as trained), NCHW in [0, 1].
///
/// # Errors
/// Forward errors.
pub fn sample(generator: &mut Sequential, spec: &DcganSpec, n: usize, rng: &mut Stream) -> Result<Vec<f32>> {
    let saved = generator.buffers();
    let mut out = Vec::with_capacity(n * 3 * spec.image_size * spec.image_size);
    let mut left = n;
    while left > 0 {
        let b = left.min(64);
        let z = train::latent(rng, b, spec.latent_dim)?;
        out.extend(train::generate_batch(generator, z)?.to_vec()?);
        left -= b;
    }
    generator.set_buffers(&saved)?;
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
/// `seed`), as the PNG bytes of a square-ish grid. Nothing is written here: the caller writes
/// the bytes atomically.
///
/// # Errors
/// `n` outside `[1, MAX_GENERATE]`; those of [`load_generator`]; forward errors.
pub fn generate_grid(dir: &Path, n: usize, seed: u64) -> Result<Vec<u8>> {
    if n == 0 || n > MAX_GENERATE {
        return Err(invalid("n", n, format!("must be in [1, {MAX_GENERATE}]")));
    }
    let (mut g, spec) = load_generator(dir)?;
    let images = sample(&mut g, &spec, n.max(2), &mut Stream::seeded(seed))?;
    let cols = (n as f64).sqrt().ceil() as usize;
    grid_png(&images, n, spec.image_size, cols)
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
    let spec_path = dir.join("model.toml");
    let text = std::fs::read_to_string(&spec_path)
        .map_err(|e| io_err(&spec_path, format!("{e} (not a finished mouse-gan run folder)")))?;
    let spec: DcganSpec = toml::from_str(&text).map_err(|e| io_err(&spec_path, e))?;
    spec.validate().map_err(|e| io_err(&spec_path, e))?;
    let (mut g, _) = generator(&spec, &mut Stream::seeded(0))?;
    let expected = generator_arrays(&g)?;
    load_weights(&dir.join("generator.npz"), &expected, &mut g)?;
    Ok((g, spec))
}

/// Trains (or resumes) one job and writes its folder; returns its result.
#[allow(clippy::too_many_arguments)]
fn run_job<'s>(
    dir: &Path,
    cfg: &MouseGanConfig,
    window: Option<f64>,
    class: &str,
    repeat: usize,
    images: &[f32],
    scorer: Option<&mut (dyn SampleScorer + 's)>,
    resume: bool,
    progress: bool,
) -> Result<RunResult> {
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
    let side = cfg.image_size;
    let per = 3 * side * side;
    let n = images.len() / per;
    let steps = n / cfg.batch_size;
    let started = Instant::now();
    let mut steps_done = 0usize;
    for epoch in history.len()..cfg.epochs {
        let mut erng = Stream::seeded(derive_seed(seed, epoch as u64));
        gan.reseed(derive_seed(seed, (epoch as u64) << 32));
        let order = biotasks::data::epoch_order(n, true, &mut erng);
        let (mut dsum, mut gsum) = (0.0f64, 0.0f64);
        for s in 0..steps {
            let mut batch = Vec::with_capacity(cfg.batch_size * per);
            for &i in &order[s * cfg.batch_size..(s + 1) * cfg.batch_size] {
                batch.extend_from_slice(&images[i * per..(i + 1) * per]);
            }
            let real = bioautograd::Tensor::from_vec(batch, &[cfg.batch_size, 3, side, side])?;
            let (dl, gl) = train::gan_step(&mut gan, &mut opt, &real, spec.latent_dim, &mut erng)?;
            dsum += f64::from(dl);
            gsum += f64::from(gl);
            steps_done += 1;
            if progress {
                eprint!(
                    "\r  {class} {} r{repeat}: epoch {}/{} step {}/{} d_loss {dl:.4} g_loss {gl:.4}   ",
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
    let mut srng = Stream::seeded(derive_seed(seed, SAMPLE_TAG));
    let fake = sample(&mut gan.generator, &spec, cfg.score_samples, &mut srng)?;
    let k = cfg.score_samples.min(n);
    let (score, scorer_name, threshold) = match scorer {
        Some(s) => {
            let v = s.score(
                &images[..k * per],
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
    let last = history
        .last()
        .copied()
        .ok_or_else(|| invalid("epochs", 0, "no epoch trained"))?;
    let result = RunResult {
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
    };
    save_weights(&dir.join("generator.npz"), &generator_arrays(&gan.generator)?)?;
    write_text(&dir.join("model.toml"), &toml_of(&spec)?)?;
    let shown = cfg.score_samples.min(64);
    bionpy::write_atomic(&dir.join("samples.png"), &grid_png(&fake, shown, side, 8)?)?;
    // result.toml is the commit point: a job with it is finished.
    write_text(&dir.join("result.toml"), &toml_of(&result)?)?;
    files.remove()?;
    Ok(result)
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
    let jobs: Vec<Job> = (0..cfg.classes.len())
        .flat_map(|class| {
            (0..settings.len())
                .flat_map(move |window| (0..cfg.repeats).map(move |repeat| Job { class, window, repeat }))
        })
        .collect();
    let mut report = MouseGanReport::default();
    for job in opts.shard.select_items(&jobs) {
        let dir = job_dir(&opts.out, cfg, &settings, job);
        if read_result(&dir)?.is_some() {
            report.skipped += 1;
            continue;
        }
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        run_job(
            &dir,
            cfg,
            settings[job.window],
            &cfg.classes[job.class],
            job.repeat,
            &images[job.class],
            scorer.as_deref_mut(),
            opts.resume,
            opts.progress,
        )?;
        report.ran += 1;
    }
    for job in &jobs {
        match read_result(&job_dir(&opts.out, cfg, &settings, *job))? {
            Some(r) => report.results.push(r),
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
    let mut md = format!(
        "# reproduce mouse-gan\n\nDCGAN ({}×{}, upstream's generator/discriminator, Keras Adam lr {} β1 {}, batch {}), \
         {} epoch(s) over {} training images per class, {} repeat(s); score: {metric} on {} samples.\n\n\
         | class | setting | weight usage | score (mean ± sd) | runs | not converged |\n|---|---|---|---|---|---|\n",
        cfg.image_size, cfg.image_size, cfg.lr, cfg.beta1, cfg.batch_size, cfg.epochs, cfg.train_images, cfg.repeats,
        cfg.score_samples
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
    md.push_str("\nRuns scoring above the scorer's divergence threshold (FID > 200, the paper's rule) are counted as not converged and left out of the means; they are never dropped silently.\n\n## The paper's claim at this scale\n\n");
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
