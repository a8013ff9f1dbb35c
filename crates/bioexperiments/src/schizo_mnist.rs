//! `reproduce schizo-mnist`: the schizophrenia-layer MNIST sweep (`MNIST_3layersSchizo200905.py`),
//! a `SzDense` hidden layer at every `param_reduction` of the sweep.
//!
//! # Shapes
//! Images `(32, 1, 28, 28)` → flatten `(32, 784)` → `SzDense` `(32, hidden)` → logits `(32, 10)`.

use biolayers::init::Initializer;
use biolayers::layers::{Activation, DenseConfig, Flatten, Sequential};
use biolayers::optim::{Convention, OptimizerConfig};
use biorng::Stream;
use biotasks::data::{load_mnist, resolve_data_dir, Split};
use serde::{Deserialize, Serialize};

use crate::band_forms::BandForm;
use crate::claims::{Better, Claim, Metric};
use crate::common::{toml_of, Overrides, Preset, ReproduceOptions, SettingResult};
use crate::error::Result;
use crate::sweep::{run_sweep, Builder, Sweep};

/// The settings of the schizophrenia-layer MNIST sweep (`MNIST_3layersSchizo200905.py`):
/// Flatten → `SzDense(512, diagonal r, relu, he_normal)` → Dense(10); Keras Adam (lr 1e-3),
/// batch 32, inputs scaled to [0, 1], the test set as validation data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchizoMnistConfig {
    /// The `param_reduction` sweep.
    pub reductions: Vec<f64>,
    /// The window shapes trained at every non-zero reduction, at the diagonal band's density
    /// ([`BandForm`]). Results folders written before `--forms` existed have no key: the
    /// diagonal band.
    #[serde(default = "diagonal_only")]
    pub forms: Vec<BandForm>,
    /// Hidden width (`idim`).
    pub hidden: usize,
    /// Epochs per run.
    pub epochs: usize,
    /// Repeats per setting.
    pub repeats: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Adam learning rate (Keras default).
    pub lr: f64,
    /// Training images used (60000 = all).
    pub train_images: usize,
    /// Base seed.
    pub seed: u64,
}

fn diagonal_only() -> Vec<BandForm> {
    vec![BandForm::Diagonal]
}

impl SchizoMnistConfig {
    /// The sizes of `preset`: `quick` r ∈ {0, 0.5, 0.9}, 10 000 training images, 3 epochs, 1
    /// repeat; `medium` r ∈ {0, 0.5} with the diagonal, random and Gaussian windows (the
    /// window-shape claim), 10 000 images, 20 epochs, 10 repeats; `paper` the script's sweep
    /// (10 reductions, diagonal, 60 000 images, 50 epochs, 100 repeats).
    pub fn for_preset(preset: Preset, seed: u64) -> Self {
        let (reductions, epochs, repeats, train_images) = match preset {
            Preset::Quick => (vec![0.0, 0.5, 0.9], 3, 1, 10_000),
            Preset::Medium => (vec![0.0, 0.5], 20, 10, 10_000),
            Preset::Paper => (
                vec![0.0, 0.167, 0.333, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.925],
                50,
                100,
                60_000,
            ),
        };
        let forms = match preset {
            Preset::Medium => vec![BandForm::Diagonal, BandForm::Random, BandForm::Gaussian],
            _ => vec![BandForm::Diagonal],
        };
        SchizoMnistConfig {
            reductions,
            forms,
            hidden: 512,
            epochs,
            repeats,
            batch_size: 32,
            lr: 1e-3,
            train_images,
            seed,
        }
    }

    /// `preset`'s sizes with the overrides (and `--forms`) applied.
    ///
    /// # Errors
    /// A bad `--forms` list.
    pub fn from_options(opts: &ReproduceOptions) -> Result<Self> {
        let o = opts.overrides;
        let cfg = Self::for_preset(opts.preset, opts.seed);
        Ok(SchizoMnistConfig {
            epochs: Overrides::pick(o.epochs, cfg.epochs),
            repeats: Overrides::pick(o.repeats, cfg.repeats),
            train_images: Overrides::pick(o.train_images, cfg.train_images),
            forms: opts.band_forms()?.unwrap_or(cfg.forms),
            ..cfg
        })
    }
}

/// Runs the MNIST sweep of `opts`' preset and overrides and writes the results folder.
/// Returns the per-setting results.
pub fn schizo_mnist(opts: &ReproduceOptions) -> Result<Vec<SettingResult>> {
    opts.overrides.validate()?;
    run(opts, &SchizoMnistConfig::from_options(opts)?)
}

/// The claims of the schizophrenia-layer paper tested by the MNIST and CIFAR sweeps: the
/// diagonal band layer at r = 0.5 resists overfitting (lower best validation loss) and beats the
/// fully connected layer (higher final accuracy), `setting` against `dense`.
pub(crate) fn schizo_claims(setting: &str, dense: &str) -> Vec<Claim> {
    let claim = "the schizophrenia (diagonal band) layer resists overfitting and beats the fully connected layer";
    vec![
        Claim::new(claim, setting, dense, Metric::MinValLoss, Better::Lower),
        Claim::new(claim, setting, dense, Metric::FinalValLoss, Better::Lower),
        Claim::new(claim, setting, dense, Metric::FinalValAcc, Better::Higher),
    ]
}

/// The window-shape claim (schizophrenia paper): at equal density the band window `r=<r>`
/// does better than every other form of `forms` (lower best validation loss, higher final
/// accuracy).
pub(crate) fn form_claims(forms: &[BandForm], r: f64) -> Vec<Claim> {
    let claim =
        "the gain appears only with the band (diagonal) window, not with random or other shapes of equal density";
    let band = BandForm::Diagonal.label(r);
    forms
        .iter()
        .filter(|f| **f != BandForm::Diagonal)
        .flat_map(|f| {
            [
                Claim::new(claim, &band, &f.label(r), Metric::MinValLoss, Better::Lower),
                Claim::new(claim, &band, &f.label(r), Metric::FinalValAcc, Better::Higher),
            ]
        })
        .collect()
}

/// The settings `(label, r, form)` of a band-form sweep: the dense network once for r = 0,
/// every form at every other r.
pub(crate) fn band_settings(reductions: &[f64], forms: &[BandForm]) -> Vec<(String, f64, BandForm)> {
    reductions
        .iter()
        .flat_map(|&r| {
            if r == 0.0 {
                vec![(BandForm::Diagonal.label(r), r, BandForm::Diagonal)]
            } else {
                forms.iter().map(|&f| (f.label(r), r, f)).collect()
            }
        })
        .collect()
}

/// The networks of the MNIST experiments take 28×28 images: anything else under MNIST's file
/// names is refused here, before a results folder exists, rather than as a shape error mid-run.
fn check_mnist_size(dir: &std::path::Path, sets: &[&biotasks::data::ImageDataset]) -> Result<()> {
    for set in sets {
        if (set.height, set.width) != (28, 28) {
            return Err(crate::error::Error::Data {
                path: dir.to_path_buf(),
                detail: format!("{}x{} images: MNIST's are 28x28", set.height, set.width),
            });
        }
    }
    Ok(())
}

/// The network of one setting (`param_reduction` = `r`) and its masked layer's density, drawn
/// from `rng` (the run's stream: `seed + repeat`).
///
/// # Errors
/// Layer construction errors.
pub fn model(hidden: usize, r: f64, rng: &mut Stream) -> Result<(Sequential, f64)> {
    model_with_form(hidden, r, BandForm::Diagonal, rng)
}

/// As [`model`] with the hidden layer's window `form` at the diagonal band's density.
///
/// # Errors
/// Layer construction errors.
pub fn model_with_form(hidden: usize, r: f64, form: BandForm, rng: &mut Stream) -> Result<(Sequential, f64)> {
    let layer = DenseConfig::sz(784, hidden, form.spec(r, 784, hidden)?)
        .with_initializer(Initializer::HeNormal)
        .init(rng)?;
    let density = layer.mask().density();
    let model = Sequential::new()
        .push(Flatten)
        .push(layer)
        .push(Activation::Relu)
        .push(DenseConfig::new(hidden, 10).init(rng)?);
    Ok((model, density))
}

/// The sweep's optimiser (Keras Adam at `cfg.lr`).
pub fn optimizer(cfg: &SchizoMnistConfig) -> OptimizerConfig {
    OptimizerConfig::Adam {
        lr: cfg.lr,
        beta1: None,
        beta2: None,
        eps: None,
        weight_decay: 0.0,
        decay: 0.0,
        convention: Convention::Keras,
    }
}

/// Runs the sweep `cfg` and writes the results folder of `opts`.
pub fn run(opts: &ReproduceOptions, cfg: &SchizoMnistConfig) -> Result<Vec<SettingResult>> {
    let data = resolve_data_dir(opts.data.as_deref())?;
    let train = load_mnist(&data.join("mnist"), Split::Train)?.take(cfg.train_images);
    let test = load_mnist(&data.join("mnist"), Split::Test)?;
    check_mnist_size(&data.join("mnist"), &[&train, &test])?;
    let hidden = cfg.hidden;
    let settings: Vec<(String, Builder)> = band_settings(&cfg.reductions, &cfg.forms)
        .into_iter()
        .map(|(label, r, form)| {
            let build: Builder = Box::new(move |rng: &mut Stream| Ok(model_with_form(hidden, r, form, rng)?.into()));
            (label, build)
        })
        .collect();
    let forms = cfg.forms.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ");
    let sweep = Sweep {
        name: "schizo-mnist",
        settings,
        optimizer: optimizer(cfg),
        lr_steps: Vec::new(),
        augment: None,
        epochs: cfg.epochs,
        repeats: cfg.repeats,
        batch_size: cfg.batch_size,
        seed: cfg.seed,
        description: format!(
            "Flatten → SzDense({}, {forms} at the diagonal band's density, relu, he_normal) → Dense(10); Keras Adam lr {}; batch {}; {} epochs; {} repeat(s); {} training images",
            cfg.hidden, cfg.lr, cfg.batch_size, cfg.epochs, cfg.repeats, cfg.train_images
        ),
        caveat: "MNIST from the official IDX files; validation data = the 10 000 test images, as in the original script.",
        claims: schizo_claims("r=0.5", "r=0")
            .into_iter()
            .chain(form_claims(&cfg.forms, 0.5))
            .collect(),
    };
    run_sweep(sweep, &train, &test, opts, &toml_of(cfg)?)
}
