//! The runner: trains every job of a shard and writes the results folder ([`super::layout`]).
//!
//! Per job (upstream's `train_validate_epochs`): regenerate the trials and split them 80/20 by
//! trial, build a fresh model and optimiser, then per epoch one pass over the training batches
//! (forward, loss on the trimmed rows, backward, step) and one over the validation batches
//! (no step). An epoch's loss is the mean of the per-batch mean losses, its accuracy (%) the mean
//! of the per-batch accuracies, as upstream. The model, batches, loop and losses are the shared
//! RNN pipeline ([`crate::rnn`]); an unfinished run is checkpointed in the workspace's one
//! format ([`biotasks::checkpoint`], `checkpoints/resume_iter_<it>.{npz,json}`).
//!
//! Model: Elman RNN (relu or tanh), hidden size = `rnn_size · nr_neurons`, input and recurrent
//! biases, zero initial state, batch-first, linear readout; `seq_mem` uses MSE, the two
//! match / non-match tasks log-softmax + NLL. The recurrent topology is the bio2art network of
//! `[net]` (converted once, from `[run] seed`) in upstream's orientation (transposed: neuron `n`
//! receives from `m` where `W[n, m] != 0`), or its randomisation (`random_w`, drawn per job).
//!
//! # Randomness
//! Job `(c, it)` draws everything (trials, split, model, randomised topology) from streams seeded
//! by [`job_seed`]`(seed, c, it)`, so a job gives the same numbers whichever shard runs it, and a
//! run resumed from its checkpoint continues exactly (no per-epoch randomness: upstream's
//! `DataLoader(shuffle=False)`).
//!
//! # Shapes
//! Batches `(B, T, in)`: `seq_mem` `T = 2L + 1`, in 2, out 1; `nback_mem` `T = TL + 1`, in 2,
//! out 3; `pic_latent_mem` `T = TL + 2`, in `1 + D`, out 3. Predictions `(B·T, out)`.

use std::path::{Path, PathBuf};

use bio2art::{recurrent_matrix, Bio2artNetwork};
use biolayers::io::{save_npz, NamedArray};
use biolayers::layers::{ElmanRnn, Module, RecurrentInit, RnnNonlinearity};
use biolayers::optim::{Convention, Optimizer, OptimizerConfig};
use biorng::Stream;
use biotasks::checkpoint::{self, CheckpointFiles, RunState};
use biotasks::fit::EpochRecord;
use biotasks::LatentTable;

use super::config::{InitName, Nonlinearity, OptimizerName, RunsConfig, TaskName};
use super::grid::{combinations, jobs, Combination, Job, Shard};
use super::inputs::{load_latents, network};
use super::layout;
use crate::error::{Error, Result};
use crate::rnn::loss::NllScaling;
use crate::rnn::{batches, split_datasets, EpochMean, RnnSpec, RnnTraining};

/// How to run a configuration.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Results folder (`None`: the config's `path_to_results`).
    pub out: Option<PathBuf>,
    /// Which jobs to run.
    pub shard: Shard,
    /// Data folder for relative latent-table paths (`None`: `../shared/data` when it exists).
    pub data: Option<PathBuf>,
    /// Show a progress bar.
    pub progress: bool,
    /// Train at most this many epochs in this call, then stop with the unfinished run
    /// checkpointed (a rerun continues it); for schedulers with time limits.
    pub max_epochs: Option<usize>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            out: None,
            shard: Shard::ALL,
            data: None,
            progress: true,
            max_epochs: None,
        }
    }
}

/// What a call to [`run`] did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The results folder.
    pub out: PathBuf,
    /// Jobs of the whole grid.
    pub total_jobs: usize,
    /// Jobs of this shard.
    pub shard_jobs: usize,
    /// Jobs finished now (resumed ones included).
    pub ran: Vec<Job>,
    /// Jobs of this shard that were already finished.
    pub skipped: Vec<Job>,
    /// Jobs continued from a checkpoint.
    pub resumed: Vec<Job>,
    /// Jobs left unfinished (checkpointed) because `max_epochs` was reached.
    pub unfinished: Vec<Job>,
    /// Combinations whose runs are all finished in `out`.
    pub complete_combinations: usize,
    /// Neurons (hidden size).
    pub hidden: usize,
    /// Density of the bio topology.
    pub density: f64,
}

/// The seed of job `(combination, iteration)`: SplitMix64 of the base seed and the job, so
/// neighbouring jobs get unrelated streams.
pub fn job_seed(seed: u64, job: Job) -> u64 {
    let mut z = seed
        ^ (job.combination as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (job.iteration as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn optimizer(combo: &Combination) -> Result<Optimizer> {
    let lr = combo.lr;
    let cfg = match combo.optimizer {
        OptimizerName::Adam => OptimizerConfig::torch_adam(lr),
        OptimizerName::RmsProp => OptimizerConfig::RmsProp {
            lr,
            rho: None,
            eps: None,
            momentum: 0.0,
            weight_decay: 0.0,
            decay: 0.0,
            convention: Convention::Torch,
        },
        OptimizerName::Sgd => OptimizerConfig::Sgd {
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            decay: 0.0,
            convention: Convention::Torch,
        },
    };
    Ok(cfg.build()?)
}

fn init_scheme(init: InitName) -> RecurrentInit {
    match init {
        InitName::Default => RecurrentInit::Default,
        InitName::Xavier => RecurrentInit::Xavier,
        InitName::He => RecurrentInit::He,
    }
}

fn nonlinearity(n: Nonlinearity) -> RnnNonlinearity {
    match n {
        Nonlinearity::Relu => RnnNonlinearity::Relu,
        Nonlinearity::Tanh => RnnNonlinearity::Tanh,
    }
}

/// The model settings of one job: upstream's init choice, `remap_w` and `freeze_layer`.
fn model_spec(cfg: &RunsConfig, combo: &Combination) -> RnnSpec {
    let act = nonlinearity(combo.nonlinearity);
    RnnSpec {
        nonlinearity: act,
        init: RecurrentInit::upstream_for(init_scheme(cfg.trainvalidate.init), act),
        freeze_recurrent: cfg.trainvalidate.freeze_layer,
        remap_w: cfg.trainvalidate.remap_w,
    }
}

/// The parameters as the `model_epoch_<e>_iter_<it>.npz` entries (`w_ih`, `b_ih`, `w_hh`,
/// `b_hh`, `w_out`, `b_out`).
fn params_arrays(model: &ElmanRnn) -> Result<Vec<NamedArray>> {
    model
        .params()
        .iter()
        .map(|p| {
            Ok(NamedArray {
                name: p.name.clone(),
                shape: p.value.shape().to_vec(),
                data: p.value.to_vec().map_err(biolayers::Error::from)?,
            })
        })
        .collect()
}

/// The resume checkpoint of iteration `it` in the combination's `checkpoints/` folder.
fn resume_files(ckpt: &Path, it: usize) -> CheckpointFiles {
    CheckpointFiles::new(ckpt, format!("resume_iter_{it}"))
}

/// Everything a job needs that is shared by all jobs.
struct Shared<'a> {
    cfg: &'a RunsConfig,
    combos: &'a [Combination],
    net: &'a Bio2artNetwork,
    table: Option<&'a LatentTable>,
    out: &'a Path,
    bar: Option<&'a indicatif::ProgressBar>,
    budget: &'a std::cell::Cell<Option<usize>>,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// All epochs trained (`resumed`: continued from a checkpoint).
    Finished { resumed: bool },
    /// Stopped at the epoch budget, state saved.
    Stopped,
}

/// Trains one job (or as many epochs as the budget allows).
fn run_job(s: &Shared, job: Job) -> Result<Outcome> {
    let cfg = s.cfg;
    let combo = &s.combos[job.combination];
    let task = cfg.task(combo.task_param);
    let classification = cfg.trialparams.trial_params.task_name.is_classification();
    let seed = job_seed(cfg.run.seed, job);
    let (train, val) = split_datasets(&task, s.table, cfg.trialparams.trial_params.train_size, seed)?;
    let (in_dim, steps) = (train.trials().in_dim, train.trials().steps);
    let out_dim = if classification { 3 } else { 1 };
    let bs = cfg.run.batch_size;
    let train_b = batches(&train, bs, train.len(), classification)?;
    let val_b = batches(&val, bs, val.len(), classification)?;
    let mut topo_rng = Stream::seeded(seed ^ 0x5A4D);
    let template = recurrent_matrix(s.net, cfg.run.orientation, cfg.net.random_w.then_some(&mut topo_rng))?;
    let mut model = model_spec(cfg, combo).build(in_dim, out_dim, &template, &mut Stream::seeded(seed ^ 0x4D0D))?;
    let mut opt = optimizer(combo)?;
    let ckpt = layout::checkpoint_dir(s.out, job.combination);
    layout::create_dir(&ckpt)?;
    let resume = resume_files(&ckpt, job.iteration);
    let mut history = if resume.exists() {
        checkpoint::load(&resume, &mut model, &mut opt, Some(seed))?.map_or_else(Vec::new, |st| st.history)
    } else {
        Vec::new()
    };
    let resumed = !history.is_empty();
    let epochs = cfg.trainvalidate.epochs;
    if let Some(bar) = s.bar {
        bar.inc(history.len() as u64);
    }
    let save_resume = |model: &ElmanRnn, opt: &Optimizer, history: &[EpochRecord]| {
        let state = RunState {
            history: history.to_vec(),
            seed: Some(seed),
            early_stopping: None,
        };
        checkpoint::save(&resume, model, opt, &state)
    };
    for epoch in history.len() + 1..=epochs {
        match s.budget.get() {
            Some(0) => {
                if !history.is_empty() {
                    save_resume(&model, &opt, &history)?;
                }
                return Ok(Outcome::Stopped);
            }
            Some(n) => s.budget.set(Some(n - 1)),
            None => {}
        }
        let mut training = RnnTraining {
            model: &mut model,
            opt: &mut opt,
            steps,
            in_dim,
            classification,
            mean: EpochMean::PerBatch,
            nll: NllScaling::AfterSum,
        };
        let record = training.epoch(epoch, &train_b, &val_b).map_err(|e| match e {
            Error::Train(biolayers::Error::NonFinite { what, .. }) => Error::Train(biolayers::Error::NonFinite {
                op: "rnn-run",
                what: format!(
                    "{what} in combination {} iteration {} epoch {epoch}",
                    job.combination, job.iteration
                ),
            }),
            other => other,
        })?;
        history.push(record);
        if let Some(bar) = s.bar {
            bar.inc(1);
            bar.set_message(format!(
                "combination {} iteration {} val loss {:.4}",
                job.combination,
                job.iteration,
                history[epoch - 1].val_loss
            ));
        }
        if epoch % cfg.run.checkpoint_every == 0 || epoch == epochs {
            save_npz(
                &ckpt.join(layout::model_file_name(epoch, job.iteration)),
                &params_arrays(&model)?,
            )?;
            if epoch < epochs {
                save_resume(&model, &opt, &history)?;
            }
        }
    }
    bionpy::write_atomic(&layout::run_file(s.out, job), layout::run_csv(&history).as_bytes())?;
    resume.remove()?;
    Ok(Outcome::Finished { resumed })
}

/// Runs the jobs of `opts.shard` of `cfg` into the results folder; finished jobs are skipped and
/// unfinished ones resumed from their last checkpoint. A folder that holds results of another
/// configuration is refused.
pub fn run(cfg: &RunsConfig, opts: &RunOptions) -> Result<RunReport> {
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(&cfg.paths.path_to_results));
    // Inputs first, so that a missing connectome or latent table leaves no folder behind.
    let net = network(cfg)?;
    let table = if cfg.trialparams.trial_params.task_name == TaskName::PicLatentMem {
        Some(load_latents(cfg, opts.data.as_deref())?)
    } else {
        None
    };
    layout::create_dir(&out)?;
    let stored = out.join("config.toml");
    if stored.is_file() {
        let existing = layout::read_config(&out)?;
        let mut a = existing.clone();
        let mut b = cfg.clone();
        a.paths.path_to_results.clear();
        b.paths.path_to_results.clear();
        if a != b {
            return Err(Error::Config {
                file: stored,
                key: "config".into(),
                detail: "this results folder holds runs of a different configuration; use another --out".into(),
            });
        }
        // Our folder, continued: the temporary files of killed writers are garbage (see
        // `bionpy::stale`; a fresh folder has none but those its own writes replace).
        bionpy::remove_stale_temps(&out)?;
    }
    let combos = combinations(cfg);
    layout::write_index(&out, cfg, &combos)?;
    let all = jobs(combos.len(), cfg.trainvalidate.iterations);
    let mine = opts.shard.select(&all);
    let (mut todo, mut skipped) = (Vec::new(), Vec::new());
    for job in &mine {
        if layout::run_file(&out, *job).is_file() {
            // A run killed between writing its history and removing its resume state leaves
            // that state behind; the finished run makes it obsolete.
            resume_files(&layout::checkpoint_dir(&out, job.combination), job.iteration).remove()?;
            skipped.push(*job);
        } else {
            todo.push(*job);
        }
    }
    for job in &todo {
        layout::create_dir(&layout::combination_dir(&out, job.combination).join("runs"))?;
    }
    let bar = opts.progress.then(|| {
        let bar = indicatif::ProgressBar::new((todo.len() * cfg.trainvalidate.epochs) as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("[{bar:30}] {pos}/{len} epochs {msg} ({elapsed}, eta {eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let shared = Shared {
        cfg,
        combos: &combos,
        net: &net,
        table: table.as_ref(),
        out: &out,
        bar: bar.as_ref(),
        budget: &std::cell::Cell::new(opts.max_epochs),
    };
    let (mut resumed, mut ran, mut unfinished) = (Vec::new(), Vec::new(), Vec::new());
    for job in &todo {
        if shared.budget.get() == Some(0) {
            break;
        }
        match run_job(&shared, *job)? {
            Outcome::Finished { resumed: r } => {
                ran.push(*job);
                if r {
                    resumed.push(*job);
                }
            }
            Outcome::Stopped => unfinished.push(*job),
        }
    }
    if let Some(bar) = &bar {
        bar.finish();
    }
    let complete = layout::write_combination_arrays(&out, cfg, &combos)?;
    let density =
        net.weights.iter().filter(|&&w| w != 0.0).count() as f64 / (net.n_neurons * net.n_neurons).max(1) as f64;
    Ok(RunReport {
        out,
        total_jobs: all.len(),
        shard_jobs: mine.len(),
        ran,
        skipped,
        resumed,
        unfinished,
        complete_combinations: complete,
        hidden: net.n_neurons,
        density,
    })
}

/// Upstream's bio-vs-random comparison of one grid: `cfg` with `random_w = false` into
/// `out/bio`, with `random_w = true` into `out/rand` (each resumable), then the loss plots of
/// both into `out/figs`. Returns the two run reports and the per-run summary.
pub fn bio_vs_rand(
    cfg: &RunsConfig,
    out: &Path,
    opts: &RunOptions,
) -> Result<(RunReport, RunReport, Vec<super::plot_loss::RunSummary>)> {
    let mut reports = Vec::new();
    for (label, random_w) in [("bio", false), ("rand", true)] {
        let mut c = cfg.clone();
        c.net.random_w = random_w;
        reports.push(run(
            &c,
            &RunOptions {
                out: Some(out.join(label)),
                ..opts.clone()
            },
        )?);
    }
    let labels = vec!["bio".to_string(), "rand".to_string()];
    let summary = super::plot_loss::plot_loss(
        &[out.join("bio"), out.join("rand")],
        &labels,
        &out.join("figs"),
        &super::plot_loss::PlotLossOptions::default(),
    )?;
    let rand = reports.pop();
    let bio = reports.pop();
    match (bio, rand) {
        (Some(b), Some(r)) => Ok((b, r, summary)),
        _ => Err(crate::error::invalid("bio_vs_rand", "runs", "both runs must report")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_seeds_differ() {
        let a = job_seed(
            1,
            Job {
                combination: 0,
                iteration: 1,
            },
        );
        let b = job_seed(
            1,
            Job {
                combination: 1,
                iteration: 0,
            },
        );
        assert_ne!(a, b);
    }
}
