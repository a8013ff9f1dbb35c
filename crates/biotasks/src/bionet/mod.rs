//! `reproduce bionet`: train BioNet models (a base with a learned or fixed-filter first layer),
//! then measure accuracy on clean CIFAR-10, on every level of the ten perturbations, and on the
//! six CIFAR-10G sets (clean and perturbed).
//!
//! Output folder (upstream's `results/metrics/...` layout, one file per model and trial):
//! * `metrics/cifar10/<model>_<trial>.csv`: `epoch,acc,loss,val_acc,val_loss` (Keras history,
//!   epochs from 0);
//! * `metrics/generalisation/<model>_<trial>_generalise_s<seed>.csv`:
//!   `Model,Convolution,Base,Weights,Trial,Seed,Set,Type,Inverted,Loss,Accuracy`;
//! * `metrics/perturbed_cifar/<model>_<trial>_perturb_cifar10_s<seed>.csv`:
//!   `Model,Convolution,Base,Weights,Trial,Seed,Noise,LI,Level,Loss,Accuracy`;
//! * `metrics/perturbed_generalisation/<model>_<trial>_perturb_<set>_s<seed>.csv`: the same
//!   with a `Set` column after `Seed`;
//! * `robustness/<perturbation>.{png,svg}`: accuracy vs level, one line per model (mean over
//!   trials); `auc.csv` with the area under each curve; `summary.md`, `config.toml`, `env.txt`;
//! * `robustness/cifar10g/<perturbation>.{png,svg}` (when the CIFAR-10G sets are perturbed):
//!   accuracy vs level on the perturbed CIFAR-10G images, averaged over the six sets and the
//!   trials, one line per model.
//!
//! **AUC** per (model, perturbation) is upstream's `sklearn.metrics.auc(levels, accuracy)`: the
//! trapezoid rule over the levels, taken in increasing order so the area is positive
//! (`AUC`), and the same over the level *index* scaled to [0, 1] (`AUC_normalised`, comparable
//! across perturbations: 1 = perfect at every level, 0.1 = chance).
//!
//! Perturbations act on the model's input images in [0, 1] ([`crate::perturb`]). At 224 × 224
//! the levels are upstream's; on a smaller input (`--quick`) the two spatial ones (High Pass,
//! Low Pass: Gaussian σ in pixels) are scaled by `size / 224` so they remove the same band of
//! the image; the CSVs report the nominal (224-pixel) level.

pub mod input;

use std::path::{Path, PathBuf};

use bioautograd::Tensor;
use biolayers::bionet::{Base, BioNetConfig, FrontEnd, Recurrent};
use biolayers::filters::{DogParams, FilterBankSpec, GaborParams, LowPassParams};
use biolayers::layers::Sequential;
use biolayers::optim::OptimizerConfig;
use biolayers::train::predict;
use biorng::Stream;
use serde::Serialize;

use crate::data::{
    load_cifar10g, load_image_folder, resolve_data_dir, Augment, ColorMode, FolderOptions, ImageDataset, CIFAR10G_SETS,
};
use crate::error::{invalid, Error, Result};
use crate::fit::{fit, loss_and_accuracy, EpochRecord, FitConfig};
use crate::perturb::{image_seed, network_input, PerturbOptions, Perturbation};
use crate::plot::{write_line_plot, LinePlot, Series};
use crate::reproduce::{env_report, ReproduceOptions};
use input::{keras_normalization, prepare, training_stats, GreyImages, Interpolation};

/// The first layer (`--convolution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Convolution {
    /// The base's learned first convolution (upstream's "Original").
    Standard,
    /// Gabor bank.
    Gabor,
    /// Difference-of-Gaussians bank.
    Dog,
    /// Low-pass bank.
    LowPass,
    /// DoG then Gabor (Combined-trim).
    Combined,
}

impl Convolution {
    /// Upstream's name.
    pub fn label(self) -> &'static str {
        match self {
            Convolution::Standard => "Standard",
            Convolution::Gabor => "Gabor",
            Convolution::Dog => "DoG",
            Convolution::LowPass => "Low-pass",
            Convolution::Combined => "Combined",
        }
    }

    /// The first layer at 224 × 224, scaled by `bank_scale`.
    pub fn front(self, bank_scale: f64) -> Result<FrontEnd> {
        let s = |spec: FilterBankSpec| -> Result<FilterBankSpec> { Ok(spec.scaled(bank_scale)?) };
        Ok(match self {
            Convolution::Standard => FrontEnd::Standard,
            Convolution::Gabor => FrontEnd::Bank(s(FilterBankSpec::Gabor(GaborParams::paper()))?),
            Convolution::Dog => FrontEnd::Bank(s(FilterBankSpec::Dog(DogParams::paper()))?),
            Convolution::LowPass => FrontEnd::Bank(s(FilterBankSpec::LowPass(LowPassParams::paper()))?),
            Convolution::Combined => FrontEnd::Combined {
                dog: s(FilterBankSpec::Dog(DogParams::trim()))?,
                gabor: s(FilterBankSpec::Gabor(GaborParams::trim()))?,
            },
        })
    }
}

impl std::str::FromStr for Convolution {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "standard" | "original" => Ok(Convolution::Standard),
            "gabor" => Ok(Convolution::Gabor),
            "dog" => Ok(Convolution::Dog),
            "low-pass" | "lowpass" => Ok(Convolution::LowPass),
            "combined" | "combined-trim" => Ok(Convolution::Combined),
            _ => Err(invalid(
                "convolution",
                s,
                "expected Standard, Gabor, DoG, Low-pass or Combined",
            )),
        }
    }
}

/// The recurrent option of the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum RecurrentOption {
    /// None.
    #[default]
    None,
    /// A ConvLSTM over `T` steps on the first layer's output (ours).
    ConvLstm,
    /// Upstream's one-step ConvLSTM replacing the first layer.
    Upstream,
}

/// What the command line chooses.
#[derive(Debug, Clone)]
pub struct BioNetArgs {
    /// First layers to compare (empty: Standard and Gabor).
    pub convolutions: Vec<Convolution>,
    /// The base.
    pub base: Base,
    /// Retinal bottleneck width.
    pub bottleneck: Option<usize>,
    /// Recurrent option.
    pub recurrent: RecurrentOption,
    /// ConvLSTM steps `T`.
    pub steps: usize,
    /// Upscaling interpolation.
    pub interpolation: Interpolation,
    /// Trials per model (`None`: 5, 1 in quick mode).
    pub trials: Option<usize>,
    /// A seconds-long end-to-end check (tiny data, one epoch).
    pub smoke: bool,
    /// Overrides of the preset: training images, test images, epochs (for timing slices).
    pub overrides: (Option<usize>, Option<usize>, Option<usize>),
    /// Override of the preset's input side (the banks are scaled by `size / 224`).
    pub input_size: Option<usize>,
    /// Perturbations to evaluate (empty: all ten).
    pub perturbations: Vec<Perturbation>,
}

impl Default for BioNetArgs {
    fn default() -> Self {
        BioNetArgs {
            convolutions: Vec::new(),
            base: Base::AllCnn,
            bottleneck: None,
            recurrent: RecurrentOption::None,
            steps: 3,
            interpolation: Interpolation::Nearest,
            trials: None,
            smoke: false,
            overrides: (None, None, None),
            input_size: None,
            perturbations: Vec::new(),
        }
    }
}

/// The settings of a run (written to `config.toml`).
#[derive(Debug, Clone, Serialize)]
pub struct BioNetRunConfig {
    /// Models by first layer.
    pub convolutions: Vec<Convolution>,
    /// The base.
    pub base: Base,
    /// Input side.
    pub input_size: usize,
    /// Upscaling interpolation (32 → `input_size`).
    pub interpolation: Interpolation,
    /// Filter-bank length scale (`input_size / 224`).
    pub bank_scale: f64,
    /// Learned-layer width scale (1 = the paper's bases).
    pub width_scale: f64,
    /// Retinal bottleneck.
    pub bottleneck: Option<usize>,
    /// Recurrent option.
    pub recurrent: RecurrentOption,
    /// ConvLSTM steps.
    pub steps: usize,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Keras RMSprop learning rate.
    pub lr: f64,
    /// Keras legacy decay.
    pub decay: f64,
    /// Training images (50 000 = all).
    pub train_images: usize,
    /// Test images (validation, clean and perturbed accuracy; 10 000 = all).
    pub test_images: usize,
    /// CIFAR-10G images per class and set (10 = all).
    pub cifar10g_per_class: usize,
    /// CIFAR-10G images per class and set used for the perturbed sets (the first ones).
    pub cifar10g_perturbed_per_class: usize,
    /// Evaluate the perturbations on the CIFAR-10G sets too.
    pub perturb_generalisation: bool,
    /// Training augmentation (flip + 10 % shifts).
    pub augment: bool,
    /// Perturbations evaluated.
    pub perturbations: Vec<String>,
    /// Trials per model.
    pub trials: usize,
    /// Base seed (trial `t` uses `seed + t - 1`).
    pub seed: u64,
}

impl BioNetRunConfig {
    /// The perturbations evaluated, in upstream's order.
    pub fn perturbation_list(&self) -> Vec<Perturbation> {
        Perturbation::ALL
            .into_iter()
            .filter(|p| self.perturbations.iter().any(|n| n == p.name()))
            .collect()
    }

    /// The full, quick or smoke settings for `args`.
    pub fn new(args: &BioNetArgs, quick: bool, seed: u64) -> Self {
        let convolutions = if args.convolutions.is_empty() {
            vec![Convolution::Standard, Convolution::Gabor]
        } else {
            args.convolutions.clone()
        };
        let (input_size, width_scale, epochs, lr, train_images, test_images, per_class, augment) = if args.smoke {
            (32, 0.125, 1, 1e-3, 200, 100, 2, false)
        } else if quick {
            (32, 0.25, 8, 1e-3, 10_000, 500, 10, false)
        } else {
            (224, 1.0, 100, 1e-4, 50_000, 10_000, 10, true)
        };
        let perturbed_per_class = if args.smoke {
            1
        } else if quick {
            3
        } else {
            10
        };
        let input_size = args.input_size.unwrap_or(input_size);
        let (train_images, test_images, epochs) = (
            args.overrides.0.unwrap_or(train_images),
            args.overrides.1.unwrap_or(test_images),
            args.overrides.2.unwrap_or(epochs),
        );
        BioNetRunConfig {
            convolutions,
            base: args.base,
            input_size,
            interpolation: args.interpolation,
            bank_scale: input_size as f64 / 224.0,
            width_scale,
            bottleneck: args.bottleneck,
            recurrent: args.recurrent,
            steps: args.steps,
            epochs,
            // Quick: more, smaller steps (the dissertation runs also used 32).
            batch_size: if quick || args.smoke { 32 } else { 64 },
            lr,
            decay: 1e-6,
            train_images,
            test_images,
            cifar10g_per_class: per_class,
            cifar10g_perturbed_per_class: perturbed_per_class,
            perturb_generalisation: true,
            augment,
            perturbations: if args.perturbations.is_empty() {
                Perturbation::ALL.to_vec()
            } else {
                args.perturbations.clone()
            }
            .iter()
            .map(|p| p.name().to_string())
            .collect(),
            trials: args.trials.unwrap_or(if quick || args.smoke { 1 } else { 5 }),
            seed,
        }
    }

    /// The model name used in file names and CSVs, e.g. `Gabor_ALL-CNN`, `Gabor_VGG-16_RIB2_ConvLSTM3`.
    pub fn model_name(&self, conv: Convolution) -> String {
        let mut name = format!("{}_{}", conv.label(), self.base.label());
        if let Some(n) = self.bottleneck {
            name.push_str(&format!("_RIB{n}"));
        }
        match self.recurrent {
            RecurrentOption::None => {}
            RecurrentOption::ConvLstm => name.push_str(&format!("_ConvLSTM{}", self.steps)),
            RecurrentOption::Upstream => name.push_str("_RecurrentUpstream"),
        }
        name
    }

    /// The network for `conv`.
    pub fn network(&self, conv: Convolution) -> Result<BioNetConfig> {
        let recurrent = match self.recurrent {
            RecurrentOption::None => Recurrent::None,
            RecurrentOption::ConvLstm => Recurrent::ConvLstm {
                steps: self.steps,
                kernel: 3,
            },
            RecurrentOption::Upstream => Recurrent::UpstreamOneStep,
        };
        Ok(BioNetConfig {
            width_scale: self.width_scale,
            bottleneck: self.bottleneck,
            recurrent,
            ..BioNetConfig::new(self.base, conv.front(self.bank_scale)?, self.input_size)
        })
    }
}

/// Accuracy of one model on one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Accuracy.
    pub accuracy: f64,
}

/// One model's measurements in one trial.
#[derive(Debug, Clone)]
pub struct TrialResult {
    /// Model name.
    pub model: String,
    /// First layer.
    pub convolution: Convolution,
    /// 1-based trial.
    pub trial: usize,
    /// Training history.
    pub history: Vec<EpochRecord>,
    /// `(set, score)` on CIFAR-10G.
    pub generalisation: Vec<(String, Scored)>,
    /// `(perturbation, level index, score)` on the CIFAR-10 test images.
    pub perturbed: Vec<(Perturbation, usize, Scored)>,
    /// `(set, perturbation, level index, score)` on the CIFAR-10G sets (empty when they are not
    /// perturbed).
    pub perturbed_generalisation: Vec<(String, Perturbation, usize, Scored)>,
}

/// Evaluation images in [0, 1] (as [`crate::perturb`] takes them) with labels.
struct EvalSet {
    unit: Vec<f32>,
    labels: Vec<usize>,
    size: usize,
}

impl EvalSet {
    /// The first `k` images of every class (in set order).
    fn per_class(&self, k: usize) -> EvalSet {
        let plane = self.size * self.size;
        let mut seen = std::collections::HashMap::new();
        let (mut unit, mut labels) = (Vec::new(), Vec::new());
        for (i, &l) in self.labels.iter().enumerate() {
            let c = seen.entry(l).or_insert(0usize);
            if *c < k {
                *c += 1;
                unit.extend_from_slice(&self.unit[i * plane..(i + 1) * plane]);
                labels.push(l);
            }
        }
        EvalSet {
            unit,
            labels,
            size: self.size,
        }
    }

    fn from_dataset(ds: &ImageDataset) -> Self {
        let rescale = (1.0f64 / 255.0) as f32;
        EvalSet {
            unit: ds.images.iter().map(|&b| f32::from(b) * rescale).collect(),
            labels: ds.labels.clone(),
            size: ds.height,
        }
    }
}

/// The level a perturbation is applied at on `size`-pixel images (see the module docs).
pub fn effective_level(p: Perturbation, level: f64, size: usize) -> f64 {
    match p {
        Perturbation::HighPass | Perturbation::LowPass => level * size as f64 / 224.0,
        _ => level,
    }
}

/// Scores `model` on `set` perturbed by `p` at level index `li` (index 0 of every perturbation
/// is the clean image, except High/Low Pass whose first level already filters).
fn score(
    model: &mut Sequential,
    set: &EvalSet,
    perturbation: Option<(Perturbation, usize)>,
    stats: (f64, f64),
    seed: u64,
) -> Result<Scored> {
    let plane = set.size * set.size;
    let n = set.labels.len();
    let batch = 100;
    let opts = PerturbOptions::with_mean(stats.0);
    let (mut loss, mut correct) = (0.0, 0.0);
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        let images = &set.unit[start * plane..end * plane];
        let perturbed: Vec<f32> = match perturbation {
            None => images.to_vec(),
            Some((p, li)) => {
                let level = effective_level(p, p.level(li)?, set.size);
                use rayon::prelude::*;
                let parts: Vec<Result<Vec<f32>>> = images
                    .par_chunks_exact(plane)
                    .enumerate()
                    .map(|(i, img)| {
                        let mut rng = Stream::seeded(image_seed(seed, p, li, start + i));
                        p.apply(img, set.size, set.size, level, &opts, &mut rng)
                    })
                    .collect();
                let mut out = Vec::with_capacity(images.len());
                for part in parts {
                    out.extend(part?);
                }
                out
            }
        };
        let x = network_input(&perturbed, stats.0, stats.1);
        let t = Tensor::from_vec(x, &[end - start, 1, set.size, set.size]).map_err(biolayers::Error::from)?;
        let out = predict(model, t)?;
        let (l, a) = loss_and_accuracy(out.as_slice().map_err(biolayers::Error::from)?, &set.labels[start..end]);
        loss += l * (end - start) as f64;
        correct += a * (end - start) as f64;
    }
    Ok(Scored {
        loss: loss / n.max(1) as f64,
        accuracy: correct / n.max(1) as f64,
    })
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    Ok(bionpy::write_atomic(path, text.as_bytes())?)
}

/// The data a run needs, prepared at the model's input size.
struct Data {
    train: ImageDataset,
    test: ImageDataset,
    stats: (f64, f64),
    cifar10g: Vec<(String, EvalSet)>,
}

fn load_data(cfg: &BioNetRunConfig, data_dir: Option<&Path>) -> Result<Data> {
    let data = resolve_data_dir(data_dir)?;
    let root = data.join("cifar10-jpeg");
    let load = |split: &str, n: usize| -> Result<GreyImages> {
        let ds = load_image_folder(
            &root.join(split),
            &FolderOptions {
                max_per_class: Some(n.div_ceil(10)),
                ..Default::default()
            },
        )?;
        prepare(&ds, cfg.input_size, cfg.interpolation)
    };
    let train = load("train", cfg.train_images)?.to_dataset();
    let test = load("test", cfg.test_images)?.to_dataset();
    let stats = training_stats(&train)?;
    let mut cifar10g = Vec::new();
    for set in CIFAR10G_SETS {
        let ds = load_cifar10g(
            &data,
            set,
            &FolderOptions {
                color: ColorMode::Gray,
                resize: (cfg.input_size != 224).then_some((cfg.input_size as u32, cfg.input_size as u32)),
                max_per_class: Some(cfg.cifar10g_per_class),
            },
        )?;
        cifar10g.push((set.to_string(), EvalSet::from_dataset(&ds)));
    }
    Ok(Data {
        train,
        test,
        stats,
        cifar10g,
    })
}

fn header_fields(model: &str, conv: Convolution, base: Base, trial: usize, seed: u64) -> String {
    format!("{model},{},{},None,{trial},{seed}", conv.label(), base.label())
}

fn fmt_level(v: f64) -> String {
    format!("{}", (v * 1e9).round() / 1e9)
}

/// Trains and evaluates one model in one trial, writing its CSVs.
fn run_trial(
    cfg: &BioNetRunConfig,
    conv: Convolution,
    trial: usize,
    data: &Data,
    opts: &ReproduceOptions,
) -> Result<TrialResult> {
    let model_name = cfg.model_name(conv);
    let seed = cfg.seed + trial as u64 - 1;
    let mut rng = Stream::seeded(seed);
    let mut model = cfg.network(conv)?.build(&mut rng)?;
    let mut opt = OptimizerConfig::keras_rmsprop(cfg.lr, cfg.decay).build()?;
    let norm = keras_normalization(data.stats.0, data.stats.1);
    let fit_cfg = FitConfig {
        epochs: cfg.epochs,
        batch_size: cfg.batch_size,
        seed,
        shuffle: true,
        augment: cfg.augment.then_some(Augment {
            hflip: true,
            max_shift: cfg.input_size / 10,
        }),
        flatten_input: false,
        checkpoint_dir: Some(opts.out.join("checkpoints").join(format!("{model_name}_{trial}"))),
        resume: opts.resume,
        progress: opts.progress,
    };
    if opts.progress {
        eprintln!("training {model_name} (trial {trial}/{})", cfg.trials);
    }
    let started = std::time::Instant::now();
    let history = fit(&mut model, &mut opt, &data.train, &data.test, &norm, &fit_cfg)?;
    if opts.progress {
        eprintln!("  {model_name}: trained in {:.1} s", started.elapsed().as_secs_f64());
    }
    let started = std::time::Instant::now();
    let metrics = opts.out.join("metrics");
    let mut hist = String::from("epoch,acc,loss,val_acc,val_loss\n");
    for r in &history {
        hist.push_str(&format!(
            "{},{},{},{},{}\n",
            r.epoch - 1,
            r.train_acc,
            r.train_loss,
            r.val_acc,
            r.val_loss
        ));
    }
    write_text(
        &metrics.join("cifar10").join(format!("{model_name}_{trial}.csv")),
        &hist,
    )?;

    let fields = header_fields(&model_name, conv, cfg.base, trial, seed);
    // Generalisation.
    let mut generalisation = Vec::new();
    let mut gen_csv = String::from("Model,Convolution,Base,Weights,Trial,Seed,Set,Type,Inverted,Loss,Accuracy\n");
    for (set, images) in &data.cifar10g {
        let s = score(&mut model, images, None, data.stats, seed)?;
        let inverted = set.ends_with("_inverted");
        let kind = set.trim_end_matches("_inverted");
        let cap = |b: bool| if b { "True" } else { "False" };
        gen_csv.push_str(&format!(
            "{fields},{set},{kind},{},{},{}\n",
            cap(inverted),
            s.loss,
            s.accuracy
        ));
        generalisation.push((set.clone(), s));
    }
    write_text(
        &metrics
            .join("generalisation")
            .join(format!("{model_name}_{trial}_generalise_s{seed}.csv")),
        &gen_csv,
    )?;
    // Perturbations of the CIFAR-10 test images.
    let test = EvalSet::from_dataset(&data.test);
    let mut perturbed = Vec::new();
    let mut csv = String::from("Model,Convolution,Base,Weights,Trial,Seed,Noise,LI,Level,Loss,Accuracy\n");
    for p in cfg.perturbation_list() {
        for (li, &level) in p.levels().iter().enumerate() {
            let s = score(&mut model, &test, Some((p, li)), data.stats, seed)?;
            csv.push_str(&format!(
                "{fields},{},{li},{},{},{}\n",
                p.name(),
                fmt_level(level),
                s.loss,
                s.accuracy
            ));
            perturbed.push((p, li, s));
        }
    }
    write_text(
        &metrics
            .join("perturbed_cifar")
            .join(format!("{model_name}_{trial}_perturb_cifar10_s{seed}.csv")),
        &csv,
    )?;
    if opts.progress {
        eprintln!(
            "  {model_name}: CIFAR-10 perturbations in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let started = std::time::Instant::now();
    // Perturbations of the CIFAR-10G sets.
    let mut perturbed_generalisation = Vec::new();
    if cfg.perturb_generalisation {
        for (set, all) in &data.cifar10g {
            let images = &all.per_class(cfg.cifar10g_perturbed_per_class);
            let mut csv = String::from("Model,Convolution,Base,Weights,Trial,Seed,Set,Noise,LI,Level,Loss,Accuracy\n");
            for p in cfg.perturbation_list() {
                for (li, &level) in p.levels().iter().enumerate() {
                    let s = score(&mut model, images, Some((p, li)), data.stats, seed)?;
                    csv.push_str(&format!(
                        "{fields},{set},{},{li},{},{},{}\n",
                        p.name(),
                        fmt_level(level),
                        s.loss,
                        s.accuracy
                    ));
                    perturbed_generalisation.push((set.clone(), p, li, s));
                }
            }
            write_text(
                &metrics
                    .join("perturbed_generalisation")
                    .join(format!("{model_name}_{trial}_perturb_{set}_s{seed}.csv")),
                &csv,
            )?;
        }
    }
    if opts.progress {
        eprintln!(
            "  {model_name}: CIFAR-10G perturbations in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(TrialResult {
        model: model_name,
        convolution: conv,
        trial,
        history,
        generalisation,
        perturbed,
        perturbed_generalisation,
    })
}

/// Trapezoid area under `(x, y)` after sorting by `x` (positive for any monotone levels).
pub fn trapezoid_auc(points: &[(f64, f64)]) -> f64 {
    let mut p = points.to_vec();
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    p.windows(2).map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0).sum()
}

/// Mean accuracy over trials per level index of `p` for the model `name`.
fn mean_curve(results: &[TrialResult], name: &str, p: Perturbation) -> Vec<(usize, f64)> {
    let runs: Vec<&TrialResult> = results.iter().filter(|r| r.model == name).collect();
    (0..p.levels().len())
        .map(|li| {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|r| {
                    r.perturbed
                        .iter()
                        .find(|(q, l, _)| *q == p && *l == li)
                        .map(|(_, _, s)| s.accuracy)
                })
                .collect();
            (li, v.iter().sum::<f64>() / v.len().max(1) as f64)
        })
        .collect()
}

/// Mean accuracy per level index of `p` for the model `name` on the perturbed CIFAR-10G images:
/// the mean over the sets (each set's mean over trials first), `None` where nothing was measured.
fn mean_curve_cifar10g(results: &[TrialResult], name: &str, p: Perturbation) -> Vec<(usize, f64)> {
    let runs: Vec<&TrialResult> = results.iter().filter(|r| r.model == name).collect();
    (0..p.levels().len())
        .filter_map(|li| {
            let per_set: Vec<f64> = CIFAR10G_SETS
                .iter()
                .filter_map(|set| {
                    let v: Vec<f64> = runs
                        .iter()
                        .flat_map(|r| r.perturbed_generalisation.iter())
                        .filter(|(s, q, l, _)| s == set && *q == p && *l == li)
                        .map(|(_, _, _, sc)| sc.accuracy)
                        .collect();
                    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
                })
                .collect();
            (!per_set.is_empty()).then(|| (li, per_set.iter().sum::<f64>() / per_set.len() as f64))
        })
        .collect()
}

/// `(model, perturbation, AUC over levels, AUC over normalised level index)`.
pub fn aucs(results: &[TrialResult], models: &[String]) -> Vec<(String, Perturbation, f64, f64)> {
    let mut out = Vec::new();
    for m in models {
        for p in evaluated(results) {
            let curve = mean_curve(results, m, p);
            let levels = p.levels();
            let raw: Vec<(f64, f64)> = curve.iter().map(|&(li, a)| (levels[li], a)).collect();
            let last = (levels.len() - 1).max(1) as f64;
            let norm: Vec<(f64, f64)> = curve.iter().map(|&(li, a)| (li as f64 / last, a)).collect();
            out.push((m.clone(), p, trapezoid_auc(&raw), trapezoid_auc(&norm)));
        }
    }
    out
}

/// The perturbations present in the results, in upstream's order.
fn evaluated(results: &[TrialResult]) -> Vec<Perturbation> {
    Perturbation::ALL
        .into_iter()
        .filter(|p| results.iter().any(|r| r.perturbed.iter().any(|(q, _, _)| q == p)))
        .collect()
}

/// The perturbations measured on the CIFAR-10G sets, in upstream's order.
fn evaluated_cifar10g(results: &[TrialResult]) -> Vec<Perturbation> {
    Perturbation::ALL
        .into_iter()
        .filter(|p| {
            results
                .iter()
                .any(|r| r.perturbed_generalisation.iter().any(|(_, q, _, _)| q == p))
        })
        .collect()
}

/// `robustness/<perturbation>` (CIFAR-10 test images) and `robustness/cifar10g/<perturbation>`
/// (mean over the six CIFAR-10G sets).
fn write_robustness(out: &Path, results: &[TrialResult], models: &[String]) -> Result<()> {
    let dir = out.join("robustness");
    write_robustness_plots(
        &dir,
        evaluated(results),
        "CIFAR-10 test accuracy",
        |m, p| mean_curve(results, m, p),
        models,
    )?;
    let cifar10g = evaluated_cifar10g(results);
    if !cifar10g.is_empty() {
        write_robustness_plots(
            &dir.join("cifar10g"),
            cifar10g,
            "CIFAR-10G accuracy (mean of the six sets)",
            |m, p| mean_curve_cifar10g(results, m, p),
            models,
        )?;
    }
    Ok(())
}

/// One accuracy-vs-level plot per perturbation in `dir`, one line per model from `curve`.
fn write_robustness_plots(
    dir: &Path,
    perturbations: Vec<Perturbation>,
    what: &str,
    curve: impl Fn(&str, Perturbation) -> Vec<(usize, f64)>,
    models: &[String],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    for p in perturbations {
        let levels = p.levels();
        let series: Vec<Series> = models
            .iter()
            .map(|m| Series {
                label: m.clone(),
                points: curve(m, p).into_iter().map(|(li, a)| (levels[li], a)).collect(),
                ..Default::default()
            })
            .chain(std::iter::once(Series {
                label: "chance".into(),
                points: vec![(levels[0], 0.1), (levels[levels.len() - 1], 0.1)],
                reference: true,
                ..Default::default()
            }))
            .collect();
        let (lo, hi) = levels
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let title = format!("{}: {what} vs level", p.name());
        let plot = LinePlot {
            title: &title,
            x_label: "level",
            y_label: "accuracy",
            x_range: (lo, if hi > lo { hi } else { lo + 1.0 }),
            y_range: (0.0, 1.0),
            series,
        };
        write_line_plot(&dir.join(p.slug()), &plot)?;
    }
    Ok(())
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt())
}

fn summary(
    cfg: &BioNetRunConfig,
    results: &[TrialResult],
    models: &[String],
    auc: &[(String, Perturbation, f64, f64)],
) -> String {
    let mut s = String::from("# bionet\n\n");
    s.push_str(&format!(
        "Base {} at {}x{} ({} upscaling from 32x32 greyscale), width scale {}, filter banks scaled by {:.4}; bottleneck {:?}; recurrent {:?} (T = {}). Keras RMSprop lr {} decay {}, batch {}, {} epochs, {} training and {} test images, {} trial(s).\n\n",
        cfg.base.label(), cfg.input_size, cfg.input_size, cfg.interpolation, cfg.width_scale, cfg.bank_scale,
        cfg.bottleneck, cfg.recurrent, cfg.steps, cfg.lr, cfg.decay, cfg.batch_size, cfg.epochs,
        cfg.train_images, cfg.test_images, cfg.trials
    ));
    s.push_str("CIFAR-10 here is the JPEG (quality 75) copy (`cifar10-jpeg`); CIFAR-10G images are resized to the input size when it is not 224. ± is the standard deviation over trials.\n\n");
    s.push_str("## Clean accuracy\n\n| model | CIFAR-10 test (final epoch) | CIFAR-10G mean |\n|---|---|---|\n");
    for m in models {
        let runs: Vec<&TrialResult> = results.iter().filter(|r| &r.model == m).collect();
        let test: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.history.last().map(|e| e.val_acc))
            .collect();
        let gen: Vec<f64> = runs
            .iter()
            .map(|r| {
                r.generalisation.iter().map(|(_, g)| g.accuracy).sum::<f64>() / r.generalisation.len().max(1) as f64
            })
            .collect();
        let (tm, ts) = mean_std(&test);
        let (gm, gs) = mean_std(&gen);
        s.push_str(&format!("| {m} | {tm:.4} ± {ts:.4} | {gm:.4} ± {gs:.4} |\n"));
    }
    s.push_str("\n## CIFAR-10G accuracy per set\n\n| model |");
    for set in CIFAR10G_SETS {
        s.push_str(&format!(" {set} |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(CIFAR10G_SETS.len()));
    s.push('\n');
    for m in models {
        s.push_str(&format!("| {m} |"));
        for set in CIFAR10G_SETS {
            let v: Vec<f64> = results
                .iter()
                .filter(|r| &r.model == m)
                .filter_map(|r| r.generalisation.iter().find(|(n, _)| n == set).map(|(_, g)| g.accuracy))
                .collect();
            s.push_str(&format!(" {:.2} |", mean_std(&v).0));
        }
        s.push('\n');
    }
    s.push_str("\n## Robustness: normalised AUC per perturbation\n\nArea under accuracy vs level index scaled to [0, 1] (1 = perfect at every level, 0.1 = chance); `auc.csv` also holds the AUC over the raw levels (upstream's).\n\n| perturbation |");
    for m in models {
        s.push_str(&format!(" {m} |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(models.len()));
    s.push('\n');
    for p in evaluated(results) {
        s.push_str(&format!("| {} |", p.name()));
        for m in models {
            let v = auc
                .iter()
                .find(|(n, q, _, _)| n == m && *q == p)
                .map_or(f64::NAN, |a| a.3);
            s.push_str(&format!(" {v:.4} |"));
        }
        s.push('\n');
    }
    s.push_str("\nCurves: `robustness/<perturbation>.png` (CIFAR-10 test images)");
    if !evaluated_cifar10g(results).is_empty() {
        s.push_str(", `robustness/cifar10g/<perturbation>.png` (perturbed CIFAR-10G images, mean of the six sets)");
    }
    s.push_str(". Per-level numbers: `metrics/perturbed_cifar/`, `metrics/perturbed_generalisation/`.\n");
    s
}

/// Runs the comparison and writes the results folder (see the [module docs](self)).
///
/// # Errors
/// Missing data, bad settings, training failures (a non-finite loss stops the run; the
/// checkpoint of the last completed epoch is kept and `--resume` continues from it).
pub fn reproduce_bionet(opts: &ReproduceOptions, args: &BioNetArgs) -> Result<Vec<TrialResult>> {
    let cfg = BioNetRunConfig::new(args, opts.quick, opts.seed);
    if cfg.trials == 0 {
        return Err(invalid("trials", 0, "must be >= 1"));
    }
    if cfg.epochs == 0 || cfg.train_images == 0 || cfg.test_images == 0 {
        return Err(invalid("epochs/train/test images", 0, "must be >= 1"));
    }
    if args.steps == 0 {
        return Err(invalid("steps", 0, "must be >= 1"));
    }
    // Fail on bad model settings before loading any data.
    for &c in &cfg.convolutions {
        cfg.network(c)?.build(&mut Stream::seeded(0))?;
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| io_err(&opts.out, e))?;
    let toml = toml::to_string(&cfg).map_err(|e| invalid("config", "toml", e.to_string()))?;
    write_text(&opts.out.join("config.toml"), &toml)?;
    write_text(&opts.out.join("env.txt"), &env_report())?;
    let data = load_data(&cfg, opts.data.as_deref())?;
    let mut results = Vec::new();
    for &conv in &cfg.convolutions {
        for trial in 1..=cfg.trials {
            results.push(run_trial(&cfg, conv, trial, &data, opts)?);
        }
    }
    let models: Vec<String> = cfg.convolutions.iter().map(|&c| cfg.model_name(c)).collect();
    let auc = aucs(&results, &models);
    let mut auc_csv = String::from("Model,Noise,AUC,AUC_normalised\n");
    for (m, p, a, an) in &auc {
        auc_csv.push_str(&format!("{m},{},{a},{an}\n", p.name()));
    }
    write_text(&opts.out.join("auc.csv"), &auc_csv)?;
    write_robustness(&opts.out, &results, &models)?;
    write_text(&opts.out.join("summary.md"), &summary(&cfg, &results, &models, &auc))?;
    Ok(results)
}

/// The default output folder of `reproduce bionet`.
pub fn default_out() -> PathBuf {
    PathBuf::from("results").join("bionet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_is_the_trapezoid_over_sorted_levels() {
        // Decreasing levels (Contrast, High Pass, Darken) give the same positive area.
        let up = [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)];
        let down = [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)];
        assert!((trapezoid_auc(&up) - 0.5).abs() < 1e-12);
        assert_eq!(trapezoid_auc(&up), trapezoid_auc(&down));
        assert!((trapezoid_auc(&[(-1.0, 0.2), (0.0, 0.6)]) - 0.4).abs() < 1e-12);
    }

    #[test]
    fn names_parse_and_scale() {
        assert_eq!("Low-pass".parse::<Convolution>().unwrap(), Convolution::LowPass);
        assert_eq!("DoG".parse::<Convolution>().unwrap(), Convolution::Dog);
        assert!("sobel".parse::<Convolution>().is_err());
        let args = BioNetArgs {
            bottleneck: Some(2),
            recurrent: RecurrentOption::ConvLstm,
            ..Default::default()
        };
        let cfg = BioNetRunConfig::new(&args, true, 1);
        assert_eq!(cfg.convolutions, vec![Convolution::Standard, Convolution::Gabor]);
        assert_eq!(cfg.model_name(Convolution::Gabor), "Gabor_ALL-CNN_RIB2_ConvLSTM3");
        assert_eq!(effective_level(Perturbation::LowPass, 7.0, 32), 1.0);
        assert_eq!(effective_level(Perturbation::Contrast, 0.5, 32), 0.5);
        match cfg.network(Convolution::Gabor).unwrap().front {
            FrontEnd::Bank(spec) => assert_eq!(spec.ksize(), 9),
            other => panic!("{other:?}"),
        }
    }
}
