//! The image-classification sweep shared by `schizo-mnist`, `schizo-cifar`, `mouse-cifar`,
//! `synaptic-diversity` and `vgg16-schizo`: settings × repeats, each repeat a fresh model from
//! `seed + repeat` trained by [`biotasks::fit`] on the same data, optimiser, learning-rate
//! steps and augmentation. Each run keeps its
//! checkpoint under `checkpoints/<setting>_r<repeat>/` (with the synaptic-diversity state of
//! converted models), so `--resume` continues an interrupted sweep where it stopped: finished
//! jobs are skipped ([`crate::jobs`]), the interrupted one continues from its last epoch.

use biolayers::bio::{BioModel, BioSchedule};
use biolayers::layers::Sequential;
use biolayers::optim::OptimizerConfig;
use biorng::Stream;
use biotasks::data::{Augmentation, ImageDataset, Normalization};
use biotasks::fit::{fit, fit_bio, FitConfig, LrStep};

use crate::claims::Claim;
use crate::common::{prepare_results_folder, ReproduceOptions, SettingResult};
use crate::error::Result;
use crate::jobs::{run_jobs, JobResult, Plan};

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
    /// Learning-rate steps by epoch (empty: constant).
    pub(crate) lr_steps: Vec<LrStep>,
    /// Augmentation of the training batches (`None`: none).
    pub(crate) augment: Option<Augmentation>,
    pub(crate) epochs: usize,
    pub(crate) repeats: usize,
    pub(crate) batch_size: usize,
    pub(crate) seed: u64,
    pub(crate) description: String,
    pub(crate) caveat: &'a str,
    /// The comparisons the paper's claims make.
    pub(crate) claims: Vec<Claim>,
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
    let plan = Plan {
        name: sweep.name.to_string(),
        description: sweep.description.clone(),
        caveat: sweep.caveat.to_string(),
        settings: sweep.settings.iter().map(|(label, _)| label.clone()).collect(),
        repeats: sweep.repeats,
        accuracy: true,
        metrics: Vec::new(),
        claims: sweep.claims.clone(),
        groups: Vec::new(),
        early_stopping: None,
    };
    let (results, _) = run_jobs(&opts.out, &plan, opts.shard, |job| {
        let (label, build) = &sweep.settings[job.setting];
        let repeat = job.repeat;
        let seed = sweep.seed + repeat as u64;
        let RunModel {
            mut model,
            density,
            bio,
        } = build(&mut Stream::seeded(seed))?;
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
            augment: sweep.augment,
            lr_steps: sweep.lr_steps.clone(),
            flatten_input: false,
            checkpoint_dir: Some(opts.out.join("checkpoints").join(format!("{label}_r{repeat}"))),
            resume: opts.resume,
            progress: opts.progress,
            device: opts.device,
        };
        let history = match bio {
            Some((mut b, schedule)) => fit_bio(&mut model, &mut b, &schedule, &mut opt, (train, val, &norm), &fit_cfg)?,
            None => fit(&mut model, &mut opt, train, val, &norm, &fit_cfg)?,
        };
        Ok(JobResult { density, history })
    })?;
    Ok(results)
}
