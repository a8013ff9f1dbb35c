//! `reproduce mouse-ddim`: the mouse paper's DDIM (`DDIM_AFHQcat_240901d_git.py`, on the Keras
//! DDIM example) with the mouse-mimetic residual blocks (window `w`) against the standard
//! network, trained on one class and judged by a [`SampleScorer`] (FID where the caller passes
//! it).
//!
//! One setting = one network ([`biolayers::layers::DdimUnetConfig::mouse`] or `standard`),
//! trained as upstream's `train_step`: images normalised by the training set's per-channel
//! mean and variance (Keras `Normalization`), `t ~ U(0, 1)` per image, noises `~ N(0, 1)`,
//! `noisy = signal_rate·image + noise_rate·noise`, the network predicts the noise from
//! `(noisy, noise_rate²)`, loss = mean squared error on the noise (upstream's script; the Keras
//! example used mean absolute error: [`DdimLoss`]), Keras Adam, and after every step an EMA of
//! the weights (decay 0.999). Sampling uses the EMA weights and [`diffusion::CosineSchedule`]'s
//! deterministic DDIM steps, then denormalises and clips to `[0, 1]`.
//!
//! Each epoch ends with a checkpoint (`runs/<setting>/checkpoint.{npz,json}`: weights, Adam
//! state, EMA weights as buffers, history), so `--resume` continues a run; every random draw of
//! an epoch comes from a stream seeded by `(seed, epoch)`.
//!
//! # Shapes
//! Images `(batch, 3, s, s)`; the network's packed input `(batch, 4, s, s)` (the last channel
//! holds `noise_rate²`), its output `(batch, 3, s, s)`.

pub mod diffusion;

use std::path::{Path, PathBuf};

use bioautograd::{Graph, Mode, Tensor};
use biolayers::ema::Ema;
use biolayers::layers::{DdimUnet, DdimUnetConfig, Module, Param};
use biolayers::optim::{Convention, Optimizer, OptimizerConfig};
use biolayers::train::train_step;
use biorng::Stream;
use biotasks::checkpoint::{self, CheckpointFiles, Checkpointable, RunState};
use biotasks::data::{epoch_order, load_cifar10_folder, resolve_data_dir, FolderOptions, ImageDataset};
use biotasks::fit::EpochRecord;
use serde::{Deserialize, Serialize};

use crate::common::{prepare_results_folder, toml_of, write_text, Overrides, Preset, ReproduceOptions};
use crate::error::{invalid, io_err, Result};
use crate::scoring::SampleScorer;
use crate::weights_file::{load_weights, save_weights, weight_arrays};
use diffusion::CosineSchedule;

/// The training loss on the predicted noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DdimLoss {
    /// Mean squared error (upstream's `DDIM_AFHQcat` script).
    Mse,
    /// Mean absolute error (the Keras DDIM example).
    Mae,
}

/// The settings of `reproduce mouse-ddim`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MouseDdimConfig {
    /// CIFAR-10 class trained on (`cat`).
    pub class: String,
    /// Training images of that class (at most 5000).
    pub train_images: usize,
    /// U-Net widths (upstream `[64, 128, 256, 512]`).
    pub widths: Vec<usize>,
    /// Residual blocks per stage (upstream 2).
    pub block_depth: usize,
    /// GroupNorm groups (upstream 8).
    pub norm_groups: usize,
    /// Attention side (upstream 16).
    pub attention_resolution: Option<usize>,
    /// Mouse window radius (upstream `WND2D` 0.4).
    pub window: f64,
    /// Epochs.
    pub epochs: usize,
    /// Mini-batch size (upstream 64; the last partial batch is dropped, as upstream's).
    pub batch_size: usize,
    /// Keras Adam learning rate (upstream 2e-4).
    pub lr: f64,
    /// EMA decay (upstream 0.999).
    pub ema: f64,
    /// Training loss.
    pub loss: DdimLoss,
    /// DDIM steps when sampling (upstream's plots and FID: 20).
    pub diffusion_steps: usize,
    /// Generated images per setting (scored, and the first ones in the grid).
    pub samples: usize,
    /// Base seed.
    pub seed: u64,
}

impl MouseDdimConfig {
    /// `quick`: a narrow U-Net (widths 16/32/64/128, depth 1, the paper's are far too slow on 2
    /// CPU cores), 256 cat images, 2 epochs, batch 32, 10 steps, 64 samples; `medium`: widths
    /// 32/64/96/128 (the Keras example's), depth 2, 1000 images, 20 epochs; `paper`: upstream's
    /// network (64/128/256/512, depth 2, attention at 16) on all 5000 images, 1250 epochs.
    pub fn for_preset(preset: Preset, seed: u64) -> Self {
        let (widths, block_depth, train_images, epochs, batch_size, samples) = match preset {
            Preset::Quick => (vec![16, 32, 64, 128], 1, 256, 2, 32, 64),
            Preset::Medium => (vec![32, 64, 96, 128], 2, 1000, 20, 64, 500),
            Preset::Paper => (vec![64, 128, 256, 512], 2, 5000, 1250, 64, 5000),
        };
        MouseDdimConfig {
            class: "cat".into(),
            train_images,
            widths,
            block_depth,
            norm_groups: 8,
            attention_resolution: Some(16),
            window: 0.4,
            epochs,
            batch_size,
            lr: 2e-4,
            ema: 0.999,
            loss: DdimLoss::Mse,
            diffusion_steps: if preset == Preset::Quick { 10 } else { 20 },
            samples,
            seed,
        }
    }

    /// `preset`'s sizes with the overrides (epochs, train images) applied.
    pub fn from_options(opts: &ReproduceOptions) -> Self {
        let o = opts.overrides;
        let cfg = Self::for_preset(opts.preset, opts.seed);
        MouseDdimConfig {
            epochs: Overrides::pick(o.epochs, cfg.epochs),
            train_images: Overrides::pick(o.train_images, cfg.train_images),
            ..cfg
        }
    }

    /// The network of one setting at image side `side` (`window = None`: standard).
    pub fn unet(&self, side: usize, window: Option<f64>) -> DdimUnetConfig {
        let mut c = match window {
            Some(w) => DdimUnetConfig::mouse(side, self.widths.clone(), self.block_depth, w),
            None => DdimUnetConfig::standard(side, self.widths.clone(), self.block_depth),
        };
        c.norm_groups = self.norm_groups;
        c.attention_resolution = self.attention_resolution;
        c
    }

    /// Checks the sizes before any work.
    ///
    /// # Errors
    /// The first bad value, named.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("train_images", self.train_images),
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("diffusion_steps", self.diffusion_steps),
            ("samples", self.samples),
        ] {
            if v == 0 {
                return Err(invalid(name, v, "must be positive"));
            }
        }
        if self.batch_size > self.train_images {
            return Err(invalid(
                "batch_size",
                self.batch_size,
                format!(
                    "exceeds the {} training images (the partial batch is dropped)",
                    self.train_images
                ),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid("lr", self.lr, "must be positive"));
        }
        if !(0.0..1.0).contains(&self.ema) {
            return Err(invalid("ema", self.ema, "must be in [0, 1)"));
        }
        Ok(())
    }
}

/// A network with its EMA: the EMA weights travel in checkpoints as the model's buffers.
struct Trainee {
    net: DdimUnet,
    ema: Ema,
}

impl Module for Trainee {
    fn forward(&mut self, g: &Graph, x: &bioautograd::Var) -> biolayers::Result<bioautograd::Var> {
        self.net.forward(g, x)
    }
    fn params(&self) -> Vec<&Param> {
        self.net.params()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        self.net.params_mut()
    }
    fn name(&self) -> String {
        "ddim".into()
    }
    fn buffers(&self) -> Vec<(String, Vec<f32>)> {
        // Host and device tensors convert; a failed read-back would leave the checkpoint
        // without the EMA, which its restore then refuses by name.
        self.ema.state().unwrap_or_default()
    }
    fn set_buffers(&mut self, buffers: &[(String, Vec<f32>)]) -> biolayers::Result<()> {
        self.ema.set_state(buffers)
    }
    fn reseed(&mut self, seed: u64) {
        self.net.reseed(seed);
    }
}

impl Checkpointable for Trainee {
    fn named_params(&self) -> Vec<(String, &Param)> {
        self.net.named_params()
    }
}

/// Per-channel mean and variance of images in `[0, 1]` (Keras `Normalization.adapt`).
fn channel_moments(images: &[f32], c: usize, plane: usize) -> (Vec<f32>, Vec<f32>) {
    let mut mean = vec![0.0f64; c];
    let mut sq = vec![0.0f64; c];
    let n = images.len() / (c * plane);
    for img in images.chunks(c * plane) {
        for (ch, p) in img.chunks(plane).enumerate() {
            for &v in p {
                mean[ch] += f64::from(v);
                sq[ch] += f64::from(v) * f64::from(v);
            }
        }
    }
    let m = (n * plane) as f64;
    let mean: Vec<f64> = mean.into_iter().map(|s| s / m).collect();
    let var = sq
        .iter()
        .zip(&mean)
        .map(|(s, mu)| (s / m - mu * mu).max(1e-12) as f32)
        .collect();
    (mean.into_iter().map(|v| v as f32).collect(), var)
}

fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// One setting's outcome.
#[derive(Debug, Clone)]
pub struct DdimSettingResult {
    /// `standard` or `mouse w=…`.
    pub label: String,
    /// Fraction of the network's weights kept by its masks (biases and norms not counted).
    pub weight_usage: f64,
    /// Mean training loss per finished epoch.
    pub losses: Vec<f64>,
    /// The scorer's value of the samples against the training images.
    pub score: f64,
    /// Generated images `(samples, 3, s, s)` in `[0, 1]`.
    pub samples: Vec<f32>,
}

/// What `reproduce mouse-ddim` produced.
#[derive(Debug, Clone)]
pub struct MouseDdimResult {
    /// Image side.
    pub side: usize,
    /// The scorer's name.
    pub scorer: String,
    /// Standard first, then mouse.
    pub settings: Vec<DdimSettingResult>,
}

/// Loads the configured class of CIFAR-10 (JPEG copy) as `[0, 1]` floats.
fn load_class(opts: &ReproduceOptions, cfg: &MouseDdimConfig) -> Result<(Vec<f32>, usize, usize)> {
    let data = resolve_data_dir(opts.data.as_deref())?;
    let root = data.join("cifar10-jpeg").join("train");
    let set: ImageDataset = load_cifar10_folder(&root, &FolderOptions::default())?;
    let class = set
        .classes
        .iter()
        .position(|c| *c == cfg.class)
        .ok_or_else(|| invalid("class", &cfg.class, format!("not a CIFAR-10 class ({:?})", set.classes)))?;
    let idx: Vec<usize> = (0..set.len())
        .filter(|&i| set.labels[i] == class)
        .take(cfg.train_images)
        .collect();
    if idx.len() < cfg.train_images {
        return Err(invalid(
            "train_images",
            cfg.train_images,
            format!("{}: only {} images of class {}", root.display(), idx.len(), cfg.class),
        ));
    }
    let sub = set.subset(&idx)?;
    let images = sub.images.iter().map(|&b| f32::from(b) / 255.0).collect();
    Ok((images, sub.height, sub.channels))
}

/// Runs `reproduce mouse-ddim` with `opts`' preset and overrides, scoring with `scorer`.
///
/// # Errors
/// Bad settings (before any write), data, training and checkpoint errors.
pub fn mouse_ddim(opts: &ReproduceOptions, scorer: &mut dyn SampleScorer) -> Result<MouseDdimResult> {
    opts.overrides.validate()?;
    run(opts, &MouseDdimConfig::from_options(opts), scorer)
}

/// Runs the comparison `cfg` into `opts.out`, on CIFAR-10 from `opts.data`.
///
/// # Errors
/// As [`mouse_ddim`].
pub fn run(opts: &ReproduceOptions, cfg: &MouseDdimConfig, scorer: &mut dyn SampleScorer) -> Result<MouseDdimResult> {
    cfg.validate()?;
    let (images, side, channels) = load_class(opts, cfg)?;
    run_on(opts, cfg, &images, side, channels, scorer)
}

/// [`run`] on given images `(n, channels, side, side)` in `[0, 1]`.
///
/// # Errors
/// As [`mouse_ddim`].
pub fn run_on(
    opts: &ReproduceOptions,
    cfg: &MouseDdimConfig,
    images: &[f32],
    side: usize,
    channels: usize,
    scorer: &mut dyn SampleScorer,
) -> Result<MouseDdimResult> {
    cfg.validate()?;
    let per = channels * side * side;
    if per == 0 || images.len() % per != 0 || images.len() / per < cfg.train_images {
        return Err(invalid(
            "images",
            images.len(),
            format!("need {} images of {channels}x{side}x{side}", cfg.train_images),
        ));
    }
    let images = &images[..cfg.train_images * per];
    // Build both networks once up front so that a bad size fails before the folder is touched.
    for w in [None, Some(cfg.window)] {
        let mut u = cfg.unet(side, w);
        u.channels = channels;
        u.validate()?;
    }
    prepare_results_folder(&opts.out, "mouse-ddim", &toml_of(cfg)?, opts.resume)?;
    let mut settings = Vec::new();
    for (label, window) in [
        ("standard".to_string(), None),
        (format!("mouse w={}", cfg.window), Some(cfg.window)),
    ] {
        let r = run_setting(opts, cfg, images, side, channels, &label, window, scorer)?;
        settings.push(r);
    }
    let result = MouseDdimResult {
        side,
        scorer: scorer.name().to_string(),
        settings,
    };
    write_text(&opts.out.join("summary.md"), &summary(cfg, &result))?;
    Ok(result)
}

fn summary(cfg: &MouseDdimConfig, r: &MouseDdimResult) -> String {
    let mut s = format!(
        "# mouse-ddim\n\nDDIM U-Net widths {:?}, depth {}, {}x{} CIFAR-10 `{}` ({} images), {} epoch(s), batch {}, Keras Adam lr {}, EMA {}, loss {:?}, {} DDIM steps, {} samples.\n\n| setting | weight usage | final train loss | {} |\n|---|---|---|---|\n",
        cfg.widths, cfg.block_depth, r.side, r.side, cfg.class, cfg.train_images, cfg.epochs, cfg.batch_size, cfg.lr, cfg.ema, cfg.loss, cfg.diffusion_steps, cfg.samples, r.scorer
    );
    for st in &r.settings {
        s.push_str(&format!(
            "| {} | {:.4} | {:.5} | {:.5} |\n",
            st.label,
            st.weight_usage,
            st.losses.last().copied().unwrap_or(f64::NAN),
            st.score
        ));
    }
    s.push_str(
        "\nOne run per setting: no statistics. Grids: grid_standard.png, grid_mouse.png (written by the command).\n",
    );
    s
}

fn weight_usage(net: &DdimUnet) -> f64 {
    let (mut kept, mut total) = (0.0f64, 0.0f64);
    for b in net.residual_blocks() {
        for c in b.convs() {
            let n = c.kernel().numel() as f64;
            kept += n * c.mask().density();
            total += n;
        }
    }
    // Every other kernel (1×1 projections, attention, stem, head) is full.
    let all: f64 = net
        .named_params()
        .iter()
        .filter(|(name, _)| name.ends_with("kernel"))
        .map(|(_, p)| p.value.numel() as f64)
        .sum();
    (kept + (all - total)) / all
}

#[allow(clippy::too_many_arguments)]
fn run_setting(
    opts: &ReproduceOptions,
    cfg: &MouseDdimConfig,
    images: &[f32],
    side: usize,
    channels: usize,
    label: &str,
    window: Option<f64>,
    scorer: &mut dyn SampleScorer,
) -> Result<DdimSettingResult> {
    let plane = side * side;
    let per = channels * plane;
    let n = images.len() / per;
    let (mean, var) = channel_moments(images, channels, plane);
    let std: Vec<f32> = var.iter().map(|v| v.sqrt()).collect();
    let normalised: Vec<f32> = images
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / plane) % channels;
            (v - mean[ch]) / std[ch]
        })
        .collect();
    let mut ucfg = cfg.unet(side, window);
    ucfg.channels = channels;
    let mut init_rng = Stream::seeded(cfg.seed);
    let net = ucfg.init(&mut init_rng)?;
    let ema = Ema::new(&net, cfg.ema)?;
    let mut model = Trainee { net, ema };
    let mut opt: Optimizer = OptimizerConfig::Adam {
        lr: cfg.lr,
        beta1: None,
        beta2: None,
        eps: None,
        weight_decay: 0.0,
        decay: 0.0,
        convention: Convention::Keras,
    }
    .build()?;
    let dir = opts.out.join("runs").join(label.replace([' ', '='], "_"));
    let files = CheckpointFiles::new(&dir, "checkpoint");
    let mut history: Vec<EpochRecord> = Vec::new();
    if opts.resume && files.exists() {
        if let Some(state) = checkpoint::load(&files, &mut model, &mut opt, Some(cfg.seed))? {
            history = state.history;
        }
    }
    // After the checkpoint went into the host model: the network and its average train on
    // the device (the checkpoint saves read them back).
    let device = opts.device;
    model.net.to_device(device)?;
    model.ema.to_device(device)?;
    let schedule = CosineSchedule::default();
    for epoch in history.len()..cfg.epochs {
        let seed = epoch_seed(cfg.seed, epoch);
        let mut rng = Stream::seeded(seed);
        model.reseed(seed);
        let order = epoch_order(n, true, &mut rng);
        let mut losses = Vec::new();
        for batch in order.chunks_exact(cfg.batch_size) {
            let b = batch.len();
            let mut x = Vec::with_capacity(b * (channels + 1) * plane);
            let mut noises = Vec::with_capacity(b * per);
            for &i in batch {
                let (nr, sr) = schedule.rates(rng.uniform01());
                let (nr, sr) = (nr as f32, sr as f32);
                let noise: Vec<f32> = (0..per).map(|_| rng.standard_normal() as f32).collect();
                x.extend(
                    normalised[i * per..(i + 1) * per]
                        .iter()
                        .zip(&noise)
                        .map(|(&im, &e)| sr * im + nr * e),
                );
                x.extend(std::iter::repeat_n(nr * nr, plane));
                noises.extend(noise);
            }
            let xt = Tensor::new(x, &[b, channels + 1, side, side], device)?;
            let target = Tensor::new(noises, &[b, channels, side, side], device)?;
            let loss_kind = cfg.loss;
            let loss = train_step(&mut model, &mut opt, xt, move |g, y| {
                let t = g.input(target);
                match loss_kind {
                    DdimLoss::Mse => g.mse(y, &t),
                    DdimLoss::Mae => g.mae(y, &t),
                }
            })?;
            let Trainee { net, ema } = &mut model;
            ema.update(net)?;
            losses.push(f64::from(loss));
        }
        history.push(EpochRecord {
            epoch: epoch + 1,
            train_loss: losses.iter().sum::<f64>() / losses.len().max(1) as f64,
            train_acc: f64::NAN,
            val_loss: f64::NAN,
            val_acc: f64::NAN,
        });
        checkpoint::save(
            &files,
            &model,
            &opt,
            &RunState {
                history: history.clone(),
                seed: Some(cfg.seed),
                early_stopping: None,
            },
        )?;
        if opts.progress {
            println!("{label}: epoch {} loss {:.5}", epoch + 1, history[epoch].train_loss);
        }
    }
    // Sample with the EMA weights, as upstream's `denoise(training=False)`; the same weights
    // go to `denoiser.npz` + `model.toml` for `cargo xtask generate`.
    let Trainee { net, ema } = &mut model;
    ema.swap(net)?;
    let saved = save_denoiser(&dir, net, &ucfg, &mean, &std, cfg.diffusion_steps);
    let sampled = saved.and_then(|()| {
        generate(
            net,
            &schedule,
            cfg.samples,
            cfg.diffusion_steps,
            cfg.seed ^ 0x5A5A,
            &mean,
            &std,
        )
    });
    ema.swap(net)?;
    let samples = sampled?;
    let score = scorer.score(images, &samples, n, cfg.samples, channels, side, side)?;
    Ok(DdimSettingResult {
        label: label.to_string(),
        weight_usage: weight_usage(net),
        losses: history.iter().map(|e| e.train_loss).collect(),
        score,
        samples,
    })
}

/// What `cargo xtask generate` needs to sample a finished `mouse-ddim` run
/// (`runs/<setting>/model.toml`, beside the EMA weights in `denoiser.npz`): the network's spec,
/// the training set's per-channel normalisation and the run's sampling steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DdimModelSpec {
    /// The U-Net.
    pub unet: DdimUnetConfig,
    /// Per-channel mean of the training images (in `[0, 1]`).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation of the training images.
    pub std: Vec<f32>,
    /// Deterministic DDIM steps the run sampled with.
    pub diffusion_steps: usize,
}

impl DdimModelSpec {
    fn validate(&self) -> Result<()> {
        self.unet.validate()?;
        let c = self.unet.channels;
        if self.mean.len() != c || self.std.len() != c {
            return Err(invalid(
                "mean/std",
                format!("{}/{}", self.mean.len(), self.std.len()),
                format!("need one value per channel ({c})"),
            ));
        }
        if let Some(v) = self.mean.iter().chain(&self.std).find(|v| !v.is_finite()) {
            return Err(invalid("mean/std", v, "must be finite"));
        }
        if let Some(v) = self.std.iter().find(|v| **v <= 0.0) {
            return Err(invalid("std", v, "must be > 0"));
        }
        check_steps(self.diffusion_steps)
    }
}

/// The most sampling steps `generate` accepts (the paper's runs use 20–1000).
pub const MAX_DIFFUSION_STEPS: usize = 10_000;

fn check_steps(steps: usize) -> Result<()> {
    if steps == 0 || steps > MAX_DIFFUSION_STEPS {
        return Err(invalid(
            "diffusion_steps",
            steps,
            format!("must be in [1, {MAX_DIFFUSION_STEPS}]"),
        ));
    }
    Ok(())
}

/// Writes `model.toml` and `denoiser.npz` (the weights `net` holds now) into `dir`.
fn save_denoiser(
    dir: &Path,
    net: &DdimUnet,
    unet: &DdimUnetConfig,
    mean: &[f32],
    std: &[f32],
    diffusion_steps: usize,
) -> Result<()> {
    let spec = DdimModelSpec {
        unet: unet.clone(),
        mean: mean.to_vec(),
        std: std.to_vec(),
        diffusion_steps,
    };
    save_weights(
        &dir.join("denoiser.npz"),
        &weight_arrays(net.named_params(), net.buffers())?,
    )?;
    write_text(&dir.join("model.toml"), &toml_of(&spec)?)
}

/// Rebuilds the EMA denoiser a finished run folder holds (`model.toml` + `denoiser.npz`),
/// every entry checked before it is used.
///
/// # Errors
/// Errors naming the file: missing or unreadable, a spec that does not validate, an entry
/// missing, extra, misshapen or not finite.
pub fn load_denoiser(dir: &Path) -> Result<(DdimUnet, DdimModelSpec)> {
    let spec_path = dir.join("model.toml");
    let text = std::fs::read_to_string(&spec_path)
        .map_err(|e| io_err(&spec_path, format!("{e} (not a finished mouse-ddim run folder)")))?;
    let spec: DdimModelSpec = toml::from_str(&text).map_err(|e| io_err(&spec_path, e))?;
    spec.validate().map_err(|e| io_err(&spec_path, e))?;
    let mut net = spec.unet.init(&mut Stream::seeded(0))?;
    let expected = weight_arrays(net.named_params(), net.buffers())?;
    load_weights(&dir.join("denoiser.npz"), &expected, &mut net)?;
    Ok((net, spec))
}

/// `generate` for a finished `mouse-ddim` run folder `dir`: `n` samples from noise drawn with
/// `seed`, with `steps` DDIM steps (`None`: the run's), the denoiser on `device`, as the PNG
/// bytes of a square-ish grid. Nothing is written here.
///
/// # Errors
/// `n` outside `[1, MAX_GENERATE]`, bad `steps`, a non-RGB network; those of
/// [`load_denoiser`]; forward errors.
pub fn generate_grid(
    dir: &Path,
    n: usize,
    seed: u64,
    steps: Option<usize>,
    device: bioautograd::Device,
) -> Result<Vec<u8>> {
    let max = crate::mouse_gan::MAX_GENERATE;
    if n == 0 || n > max {
        return Err(invalid("n", n, format!("must be in [1, {max}]")));
    }
    if let Some(s) = steps {
        check_steps(s)?;
    }
    let (mut net, spec) = load_denoiser(dir)?;
    if spec.unet.channels != 3 {
        return Err(invalid(
            "channels",
            spec.unet.channels,
            "the grid shows RGB images (3 channels)",
        ));
    }
    let steps = steps.unwrap_or(spec.diffusion_steps);
    net.to_device(device)?;
    let images = generate(
        &mut net,
        &CosineSchedule::default(),
        n,
        steps,
        seed,
        &spec.mean,
        &spec.std,
    )?;
    let cols = (n as f64).sqrt().ceil() as usize;
    crate::mouse_gan::grid_png(&images, n, spec.unet.image_size, cols)
}

/// Deterministic DDIM sampling of `count` images with `steps` steps from noise drawn with
/// `seed`, denormalised with the per-channel `mean`/`std` and clipped to `[0, 1]`. A network
/// on a device predicts the noise there; each step's update runs on the host (one upload and
/// one read-back per step).
///
/// # Errors
/// Tape errors.
pub fn generate(
    net: &mut DdimUnet,
    schedule: &CosineSchedule,
    count: usize,
    steps: usize,
    seed: u64,
    mean: &[f32],
    std: &[f32],
) -> Result<Vec<f32>> {
    let c = net.config().channels;
    let side = net.config().image_size;
    let plane = side * side;
    let per = c * plane;
    let mut rng = Stream::seeded(seed);
    let mut out = Vec::with_capacity(count * per);
    // Sample where the network is: the denoiser runs there, each DDIM step on the host.
    let device = net
        .params()
        .first()
        .map_or(bioautograd::Device::Cpu, |p| p.value.device());
    let chunk = 16;
    for start in (0..count).step_by(chunk) {
        let b = chunk.min(count - start);
        let mut noisy: Vec<f32> = (0..b * per).map(|_| rng.standard_normal() as f32).collect();
        let mut images = noisy.clone();
        let dt = 1.0 / steps as f64;
        for k in 0..steps {
            let t = 1.0 - k as f64 * dt;
            let (nr, _) = schedule.rates(t);
            let g = Graph::with_mode(Mode::Eval);
            let x = g.input(Tensor::new(noisy.clone(), &[b, c, side, side], device)?);
            let variances = vec![(nr * nr) as f32; b];
            let pred = net.denoise(&g, &x, &variances)?;
            let pred = g.value(&pred)?.to_vec()?;
            let (img, next) = schedule.ddim_step(&noisy, &pred, t, dt)?;
            images = img;
            noisy = next;
        }
        out.extend(images.iter().enumerate().map(|(i, &v)| {
            let ch = (i / plane) % c;
            (mean[ch] + v * std[ch]).clamp(0.0, 1.0)
        }));
    }
    Ok(out)
}

/// The samples of one setting as an RGB grid of `cols` columns (`(rows·s) × (cols·s)` pixels,
/// row-major RGB bytes), for the command to encode as PNG.
pub fn sample_grid(samples: &[f32], channels: usize, side: usize, cols: usize) -> (usize, usize, Vec<u8>) {
    let per = channels * side * side;
    if per == 0 {
        return (0, 0, Vec::new());
    }
    let n = samples.len() / per;
    let cols = cols.max(1).min(n.max(1));
    let rows = n.div_ceil(cols);
    let (w, h) = (cols * side, rows * side);
    let mut rgb = vec![0u8; w * h * 3];
    for (k, img) in samples.chunks(per).enumerate() {
        let (r0, c0) = ((k / cols) * side, (k % cols) * side);
        for y in 0..side {
            for x in 0..side {
                for ch in 0..3 {
                    let src = ch.min(channels - 1);
                    let v = img[src * side * side + y * side + x];
                    rgb[((r0 + y) * w + c0 + x) * 3 + ch] = (v * 255.0).round() as u8;
                }
            }
        }
    }
    (w, h, rgb)
}

/// The results folder's grid file for a setting label.
pub fn grid_path(out: &Path, label: &str) -> PathBuf {
    let short = if label.starts_with("mouse") {
        "mouse"
    } else {
        "standard"
    };
    out.join(format!("grid_{short}.png"))
}
