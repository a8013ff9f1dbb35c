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
//! Perturbations act on the model's input images in [0, 1] ([`biotasks::perturb`]). At 224 × 224
//! the levels are upstream's; on a smaller input (`--quick`) the two spatial ones (High Pass,
//! Low Pass: Gaussian σ in pixels) are scaled by `size / 224` so they remove the same band of
//! the image; the CSVs report the nominal (224-pixel) level.

mod config;
mod evaluate;
mod report;

use std::path::{Path, PathBuf};

use biolayers::bionet::Base;
use biolayers::optim::OptimizerConfig;
use biorng::Stream;
use biotasks::bionet_input::{keras_normalization, prepare, training_stats, GreyImages};
use biotasks::data::{
    load_cifar10_folder, load_cifar10g, resolve_data_dir, Augment, ColorMode, FolderOptions, ImageDataset,
    CIFAR10G_SETS,
};
use biotasks::fit::{fit, FitConfig};

use crate::common::{env_report, toml_of, write_text, ReproduceOptions};
use crate::error::{invalid, io_err, Result};
use evaluate::{score, EvalSet};
use report::{summary, write_robustness};

pub use config::{BioNetArgs, BioNetRunConfig, Convolution, RecurrentOption};
pub use evaluate::{effective_level, Scored, TrialResult};
pub use report::{aucs, trapezoid_auc};

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
        let ds = load_cifar10_folder(
            &root.join(split),
            &FolderOptions {
                max_per_class: Some(n.div_ceil(10)),
                ..Default::default()
            },
        )?;
        Ok(prepare(&ds, cfg.input_size, cfg.interpolation)?)
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
                // CIFAR-10G images are square: a plain resize, as upstream.
                center_crop: false,
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
        augment: cfg.augment.then_some(
            Augment {
                hflip: true,
                max_shift: cfg.input_size / 10,
            }
            .into(),
        ),
        lr_steps: Vec::new(),
        flatten_input: false,
        checkpoint_dir: Some(opts.out.join("checkpoints").join(format!("{model_name}_{trial}"))),
        resume: opts.resume,
        progress: opts.progress,
        device: opts.device,
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

/// Runs the comparison and writes the results folder (see the [module docs](self)).
///
/// # Errors
/// Missing data, bad settings, training failures (a non-finite loss stops the run; the
/// checkpoint of the last completed epoch is kept and `--resume` continues from it).
pub fn reproduce_bionet(opts: &ReproduceOptions, args: &BioNetArgs) -> Result<Vec<TrialResult>> {
    if opts.preset == crate::common::Preset::Medium {
        return Err(invalid(
            "preset",
            "medium",
            "bionet has the presets quick and paper (size it with --epochs, --train-images, --trials)",
        ));
    }
    let cfg = BioNetRunConfig::new(args, opts.preset == crate::common::Preset::Quick, opts.seed);
    if cfg.trials == 0 {
        return Err(invalid("trials", 0, "must be >= 1"));
    }
    if cfg.epochs == 0 || cfg.train_images == 0 || cfg.test_images == 0 {
        return Err(invalid("epochs/train/test images", 0, "must be >= 1"));
    }
    if args.steps == 0 {
        return Err(invalid("steps", 0, "must be >= 1"));
    }
    // Fail on bad model settings before loading any data, and on missing data before the
    // results folder is touched: a bad input leaves no folder, config.toml or env.txt behind.
    for &c in &cfg.convolutions {
        cfg.network(c)?.build(&mut Stream::seeded(0))?;
    }
    let toml = toml_of(&cfg)?;
    let data = load_data(&cfg, opts.data.as_deref())?;
    std::fs::create_dir_all(&opts.out).map_err(|e| io_err(&opts.out, e))?;
    if opts.resume {
        // The folder of an interrupted run: what its killed writers left is garbage now.
        bionpy::remove_stale_temps(&opts.out)?;
    }
    write_text(&opts.out.join("config.toml"), &toml)?;
    write_text(&opts.out.join("env.txt"), &env_report())?;
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
    use biolayers::bionet::FrontEnd;
    use biotasks::perturb::Perturbation;

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
