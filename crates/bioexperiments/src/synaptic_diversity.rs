//! `reproduce synaptic-diversity`: an MNIST MLP under the synaptic-diversity mechanisms of
//! `biolayers::bio` (fuzzy learning rates, crystallisation, rejuvenation) vs plain SGD. Every
//! run keeps a checkpoint with its synaptic-diversity state, so `--resume` continues an
//! interrupted sweep bit for bit (test `tests/integration/synaptic_diversity.rs`).
//!
//! # Shapes
//! Images `(64, 1, 28, 28)` → flatten `(64, 784)` → `(64, hidden)` → logits `(64, 10)`.

use biolayers::bio::{BioConfig, BioConverter, BioSchedule, Distribution};
use biolayers::init::Initializer;
use biolayers::layers::{Activation, DenseConfig, Flatten, Sequential};
use biolayers::optim::{Convention, OptimizerConfig};
use biorng::Stream;
use biotasks::data::{load_mnist, resolve_data_dir, Split};
use serde::Serialize;

use crate::claims::{Better, Claim, Metric};
use crate::common::{toml_of, Overrides, Preset, ReproduceOptions, SettingResult};
use crate::error::Result;
use crate::sweep::{run_sweep, Builder, RunModel, Sweep};

/// Settings of the synaptic-diversity comparison on MNIST.
#[derive(Debug, Clone, Serialize)]
pub struct SynapticConfig {
    /// Hidden width of the MLP 784 → hidden → 10.
    pub hidden: usize,
    /// Epochs per run.
    pub epochs: usize,
    /// Seeds per setting.
    pub repeats: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// SGD learning rate (PyTorch convention).
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Steps between rejuvenations in the `rejuvenate` setting.
    pub rejuvenate_every: u64,
    /// Training images used.
    pub train_images: usize,
    /// Base seed.
    pub seed: u64,
}

/// `synaptic-diversity`: an MNIST MLP trained with plain SGD under baseline vs uniform vs
/// lognormal fuzzy learning rates, uniform with crystallisation, and uniform with rejuvenation.
/// SGD, not Adam: Adam divides each weight's step by its own gradient scale, so a constant
/// per-weight factor on the gradient would cancel out.
pub fn synaptic_diversity(opts: &ReproduceOptions) -> Result<Vec<SettingResult>> {
    opts.overrides.validate()?;
    run(opts, &SynapticConfig::from_options(opts))
}

impl SynapticConfig {
    /// The sizes of `preset`: `quick` 3 epochs, 2 seeds, 10 000 images; `medium` 10 epochs,
    /// 10 seeds, 60 000 images; `paper` 20 epochs, 5 seeds, 60 000 images (the paper's own
    /// networks and data were not available: its claims are tested on this MLP).
    pub fn for_preset(preset: Preset, seed: u64) -> Self {
        let (epochs, repeats, train_images) = match preset {
            Preset::Quick => (3, 2, 10_000),
            Preset::Medium => (10, 10, 60_000),
            Preset::Paper => (20, 5, 60_000),
        };
        SynapticConfig {
            hidden: 256,
            epochs,
            repeats,
            batch_size: 64,
            lr: 0.01,
            momentum: 0.9,
            rejuvenate_every: 200,
            train_images,
            seed,
        }
    }

    /// `opts`' preset with its overrides applied.
    pub fn from_options(opts: &ReproduceOptions) -> Self {
        let o = opts.overrides;
        let cfg = Self::for_preset(opts.preset, opts.seed);
        SynapticConfig {
            epochs: Overrides::pick(o.epochs, cfg.epochs),
            repeats: Overrides::pick(o.repeats, cfg.repeats),
            train_images: Overrides::pick(o.train_images, cfg.train_images),
            ..cfg
        }
    }
}

/// Runs the comparison `cfg` and writes the results folder of `opts`.
pub fn run(opts: &ReproduceOptions, cfg: &SynapticConfig) -> Result<Vec<SettingResult>> {
    let data = resolve_data_dir(opts.data.as_deref())?;
    let train = load_mnist(&data.join("mnist"), Split::Train)?.take(cfg.train_images);
    let test = load_mnist(&data.join("mnist"), Split::Test)?;
    let base = BioSchedule::default();
    let variants: Vec<(&str, Distribution, BioSchedule)> = vec![
        ("baseline", Distribution::Baseline, base),
        ("uniform", Distribution::Uniform, base),
        ("lognormal", Distribution::Lognormal, base),
        (
            "uniform+crystallize",
            Distribution::Uniform,
            BioSchedule {
                crystallize: true,
                ..base
            },
        ),
        (
            "uniform+rejuvenate",
            Distribution::Uniform,
            BioSchedule {
                rejuvenate_every: Some(cfg.rejuvenate_every),
                ..base
            },
        ),
    ];
    let hidden = cfg.hidden;
    let settings: Vec<(String, Builder)> = variants
        .into_iter()
        .map(|(label, dist, schedule)| {
            let build: Builder = Box::new(move |rng: &mut Stream| {
                let mut model = Sequential::new()
                    .push(Flatten)
                    .push(
                        DenseConfig::new(784, hidden)
                            .with_initializer(Initializer::TorchDefault)
                            .init(rng)?,
                    )
                    .push(Activation::Relu)
                    .push(
                        DenseConfig::new(hidden, 10)
                            .with_initializer(Initializer::TorchDefault)
                            .init(rng)?,
                    );
                let config = BioConfig {
                    fuzzy_lr_distribution: dist,
                    ..BioConfig::default()
                };
                let bio = BioConverter::new(config).convert(&mut model, rng)?;
                Ok(RunModel {
                    model,
                    density: 1.0,
                    bio: Some((bio, schedule)),
                })
            });
            (label.to_string(), build)
        })
        .collect();
    let sweep = Sweep {
        name: "synaptic-diversity",
        settings,
        optimizer: OptimizerConfig::Sgd {
            lr: cfg.lr,
            momentum: cfg.momentum,
            nesterov: false,
            weight_decay: 0.0,
            decay: 0.0,
            convention: Convention::Torch,
        },
        lr_steps: Vec::new(),
        augment: None,
        epochs: cfg.epochs,
        repeats: cfg.repeats,
        batch_size: cfg.batch_size,
        seed: cfg.seed,
        description: format!(
            "Flatten → Dense({}, relu) → Dense(10), PyTorch default init; PyTorch SGD lr {} momentum {}; batch {}; {} epochs; {} seed(s); {} training images; BioConverter defaults (ν = 0.16, factors clamped to [0.5, 2]); rejuvenation every {} steps",
            cfg.hidden, cfg.lr, cfg.momentum, cfg.batch_size, cfg.epochs, cfg.repeats, cfg.train_images, cfg.rejuvenate_every
        ),
        caveat: "MNIST from the official IDX files; validation data = the 10 000 test images. The paper's own networks and data sets were not available to us; this is a small-scale check of the claimed faster learning and higher accuracy, not a reproduction of its numbers.",
        claims: ["uniform", "lognormal"]
            .into_iter()
            .flat_map(|fuzzy| {
                let claim = format!("fuzzy learning rates ({fuzzy}) learn faster and reach a higher accuracy");
                [
                    Claim::new(&claim, fuzzy, "baseline", Metric::FirstValAcc, Better::Higher),
                    Claim::new(&claim, fuzzy, "baseline", Metric::FinalValAcc, Better::Higher),
                ]
            })
            .collect(),
    };
    run_sweep(sweep, &train, &test, opts, &toml_of(cfg)?)
}
