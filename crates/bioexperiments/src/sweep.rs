//! The image-classification sweep shared by `schizo-mnist`, `schizo-cifar`, `mouse-cifar` and
//! `synaptic-diversity`: settings × repeats, each repeat a fresh model from `seed + repeat`
//! trained by [`biotasks::fit`] on the same data, optimiser and schedule. Each run keeps its
//! checkpoint under `checkpoints/<setting>_r<repeat>/` (with the synaptic-diversity state of
//! converted models), so `--resume` continues an interrupted sweep where it stopped.

use biolayers::bio::{BioModel, BioSchedule};
use biolayers::layers::Sequential;
use biolayers::optim::OptimizerConfig;
use biorng::Stream;
use biotasks::data::{ImageDataset, Normalization};
use biotasks::fit::{fit, fit_bio, history_csv, FitConfig};

use crate::common::{prepare_results_folder, summary_table, write_curves, write_text, ReproduceOptions, SettingResult};
use crate::error::Result;

/// One run's model: the network, the density of its masked layers and, for synaptic-diversity
/// settings, the converted state with its schedule.
pub(crate) struct RunModel {
    pub(crate) model: Sequential,
    pub(crate) density: f64,
    pub(crate) bio: Option<(BioModel, BioSchedule)>,
}

impl From<(Sequential, f64)> for RunModel {
    fn from((model, density): (Sequential, f64)) -> Self {
        RunModel {
            model,
            density,
            bio: None,
        }
    }
}

/// A model factory: builds the model of one setting from the run's stream.
pub(crate) type Builder<'a> = Box<dyn Fn(&mut Stream) -> Result<RunModel> + 'a>;

/// One sweep: settings × repeats trained with the same data, optimiser and schedule.
pub(crate) struct Sweep<'a> {
    pub(crate) name: &'a str,
    pub(crate) settings: Vec<(String, Builder<'a>)>,
    pub(crate) optimizer: OptimizerConfig,
    pub(crate) epochs: usize,
    pub(crate) repeats: usize,
    pub(crate) batch_size: usize,
    pub(crate) seed: u64,
    pub(crate) description: String,
    pub(crate) caveat: &'a str,
}

/// Trains every setting × repeat of `sweep` and writes the results folder of `opts`.
pub(crate) fn run_sweep(
    sweep: Sweep,
    train: &ImageDataset,
    val: &ImageDataset,
    opts: &ReproduceOptions,
    config_toml: &str,
) -> Result<Vec<SettingResult>> {
    prepare_results_folder(&opts.out, sweep.name, config_toml, opts.resume)?;
    let norm = Normalization::unit(train.channels);
    let mut results = Vec::new();
    let mut rows = Vec::new();
    for (label, build) in &sweep.settings {
        let mut runs = Vec::new();
        let mut density = 1.0;
        for repeat in 0..sweep.repeats {
            let seed = sweep.seed + repeat as u64;
            let RunModel {
                mut model,
                density: d,
                bio,
            } = build(&mut Stream::seeded(seed))?;
            density = d;
            let mut opt = sweep.optimizer.build()?;
            if opts.progress {
                eprintln!(
                    "{} {label} repeat {}/{} (density {density:.4})",
                    sweep.name,
                    repeat + 1,
                    sweep.repeats
                );
            }
            let fit_cfg = FitConfig {
                epochs: sweep.epochs,
                batch_size: sweep.batch_size,
                seed,
                shuffle: true,
                augment: None,
                flatten_input: false,
                checkpoint_dir: Some(opts.out.join("checkpoints").join(format!("{label}_r{repeat}"))),
                resume: opts.resume,
                progress: opts.progress,
            };
            let history = match bio {
                Some((mut b, schedule)) => {
                    fit_bio(&mut model, &mut b, &schedule, &mut opt, (train, val, &norm), &fit_cfg)?
                }
                None => fit(&mut model, &mut opt, train, val, &norm, &fit_cfg)?,
            };
            rows.extend(history.iter().map(|h| (label.clone(), repeat, *h)));
            write_text(&opts.out.join("history.csv"), &history_csv(&rows))?;
            runs.push(history);
        }
        results.push(SettingResult {
            label: label.clone(),
            density,
            runs,
        });
    }
    write_curves(&opts.out, sweep.name, &results)?;
    write_text(
        &opts.out.join("summary.md"),
        &summary_table(sweep.name, &sweep.description, sweep.caveat, &results),
    )?;
    Ok(results)
}
