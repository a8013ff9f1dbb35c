//! Settings of `reproduce bionet`: the first layer (`--convolution`), the command-line
//! arguments ([`BioNetArgs`]) and the resolved run configuration ([`BioNetRunConfig`]).

use biolayers::bionet::{Base, BioNetConfig, FrontEnd, Recurrent};
use biolayers::filters::{DogParams, FilterBankSpec, GaborParams, LowPassParams};
use biotasks::bionet_input::Interpolation;
use biotasks::perturb::Perturbation;
use serde::Serialize;

use crate::error::{invalid, Error, Result};

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
