//! `reproduce rnn-memory`: bio-instantiated vs randomised recurrent topology on `seq_mem` and,
//! in the `converge` preset, `nback_mem`.
//!
//! The recurrent topology comes from a bundled connectome through `bio2art` (Marmoset, 4
//! neurons per region → 220 neurons). Upstream writes the neuron matrix into PyTorch's
//! `W_hh[to, from]` as `W[to, from]`, i.e. transposed relative to bio2art's row = source; this is
//! reproduced (a connection from `j` to `i` exists where `W[i, j] != 0`). The randomised control
//! permutes the off-diagonal entries of that topology (upstream's directed `random_w`), keeping
//! its density. Elman RNN (relu), zero initial state, linear readout, MSE on the recall steps only
//! (rows with a zero target are trimmed before the loss), PyTorch Adam; trained through the shared
//! RNN pipeline ([`crate::rnn`]), each epoch's loss the mean over trials (batches weighted by
//! their size). The (topology, run) jobs run concurrently, one per rayon thread
//! ([`crate::jobs::run_jobs_concurrent`]): a run of this size does not scale to two threads,
//! and its numbers do not depend on the thread count.
//!
//! # The `converge` preset
//! The presets `quick`, `medium` and `paper` train a fixed number of epochs, and the loss still
//! falls at the last one. `converge` ([`RnnMemoryPreset::Converge`], [`rnn_memory_converge`])
//! trains every (task, topology, run) job until its validation loss plateaus
//! ([`biotasks::early_stopping`]): epoch `e` improves on the reference `r` when
//! `l_e < r − min_delta·|r|`, and the job stops after `patience` epochs without an improvement
//! (not before `min_epochs`), or at the epoch cap (`epochs`). Its metrics are those of the best-validation epoch
//! `b = argmin_e l_e` (the weights early stopping keeps): min val loss, the epoch `b` (epochs to
//! converge, the paper's speed measure), the epochs trained and, for `nback_mem`, the
//! validation accuracy at `b`. Two tasks with upstream's settings (the first value of each list of
//! upstream's grid: relu, Adam, lr 1e-4): `seq_mem` (pattern length 5, 500 trials, MSE) and
//! `nback_mem` (trial length 5, n-back 2, 500 match + 500 non-match trials, NLL of the
//! log-softmax and accuracy on the decision step). Settings `<task> bio` and `<task> random`;
//! repeat `k` of each trains from seed `seed + k` (the same trials for both topologies). A job
//! saves a checkpoint every [`CHECKPOINT_EVERY`] epochs (`checkpoints/s<SS>_r<RRR>.{npz,json}`:
//! model, Adam state, history and the early-stopping state), so `--resume` continues an
//! interrupted job from it and ends with the bytes of an uninterrupted run.
//!
//! # Shapes
//! Batches `(128, T, 2)` with `T = 2·pattern_length + 1` (11 for the default pattern length 5,
//! lr 1e-4 as in upstream's config grid); predictions `(128·T, 1)`. `nback_mem`: `T =
//! trial_length + 1` (6), logits `(128·T, 3)`.

use bio2art::{random_w, Connectome, Orientation, RecurrentMatrix};
use biolayers::layers::{ElmanRnn, Module};
use biolayers::optim::{Optimizer, OptimizerConfig};
use biorng::Stream;
use biotasks::checkpoint::{self, CheckpointFiles, RunState};
use biotasks::early_stopping::{EarlyStopping, EarlyStoppingState};
use biotasks::{NbackMem, SeqMem, Task};
use serde::Serialize;

use crate::claims::{Better, Claim, Metric};
use crate::common::{prepare_results_folder, toml_of, Overrides, Preset, ReproduceOptions, SettingResult};
use crate::error::{invalid, io_err, Error, Result};
use crate::jobs::{run_jobs_concurrent, JobId, JobResult, Plan, SettingGroup};
use crate::rnn::loss::NllScaling;
use crate::rnn::{batches, split_datasets, Bio2artSettings, EpochMean, RnnSpec, RnnTraining};

/// Settings of `rnn-memory`.
#[derive(Debug, Clone, Serialize)]
pub struct RnnMemoryConfig {
    /// Bundled connectome.
    pub connectome: String,
    /// Neurons per region.
    pub neurons_per_region: usize,
    /// bio2art `target_sparsity`.
    pub target_sparsity: f64,
    /// bio2art `rand_partition`.
    pub rand_partition: bool,
    /// `seq_mem` pattern length.
    pub pattern_length: usize,
    /// `seq_mem` trials (before the 0.8 / 0.2 split).
    pub trials: usize,
    /// Epochs per run (with `converge`: the epoch cap).
    pub epochs: usize,
    /// Runs per topology (and task).
    pub runs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// PyTorch Adam learning rate.
    pub lr: f64,
    /// Base seed.
    pub seed: u64,
    /// The `converge` preset: early stopping and `nback_mem` (`None`: the fixed-epoch presets,
    /// `seq_mem` only; not written to `config.toml` then, which stays as it was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub converge: Option<ConvergeSettings>,
}

/// What the `converge` preset adds: the early-stopping rule (its cap is
/// [`RnnMemoryConfig::epochs`]) and the `nback_mem` task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConvergeSettings {
    /// Epochs without a relative improvement of `min_delta` after which a job stops.
    pub patience: usize,
    /// The relative improvement of the validation loss that resets the patience.
    pub min_delta: f64,
    /// No plateau stop before this epoch.
    pub min_epochs: usize,
    /// `nback_mem` trial length `TL` (upstream 5).
    pub nback_trial_length: usize,
    /// `nback_mem` n-back (upstream's grid: 2, 3, 4; its first).
    pub nback_n_back: usize,
    /// `nback_mem` match trials, and as many non-match trials (upstream 500, so 1000 trials
    /// before the 0.8 / 0.2 split).
    pub nback_trials: usize,
}

impl Default for ConvergeSettings {
    /// Patience 50, min_delta 0.001 (0.1 %), no plateau stop before epoch 500 (upstream's
    /// epoch budget: a converged run trains at least as long as the `paper` preset's),
    /// upstream's `nback_mem` (5, 2, 500).
    fn default() -> Self {
        ConvergeSettings {
            patience: 50,
            min_delta: 1e-3,
            min_epochs: 500,
            nback_trial_length: 5,
            nback_n_back: 2,
            nback_trials: 500,
        }
    }
}

/// The presets of `rnn-memory`: the shared ones and `converge`, which only this target has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RnnMemoryPreset {
    /// `quick`, `medium` or `paper`: a fixed number of epochs, `seq_mem`.
    Fixed(Preset),
    /// Early stopping on a validation plateau, `seq_mem` and `nback_mem`.
    Converge,
}

impl std::str::FromStr for RnnMemoryPreset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "converge" => Ok(RnnMemoryPreset::Converge),
            "quick" | "medium" | "paper" => s.parse().map(RnnMemoryPreset::Fixed),
            other => Err(invalid("preset", other, "expected quick, medium, paper or converge")),
        }
    }
}

/// The command-line overrides of the `converge` preset's early stopping (`None`: the preset's).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ConvergeOverrides {
    /// `--patience`.
    pub patience: Option<usize>,
    /// `--min-delta`.
    pub min_delta: Option<f64>,
    /// `--min-epochs`.
    pub min_epochs: Option<usize>,
}

/// A converge job saves its checkpoint after every this many epochs (a killed run loses at
/// most this many epochs of one job per worker).
pub const CHECKPOINT_EVERY: usize = 50;

impl RnnMemoryConfig {
    /// The sizes of `preset`: `quick` 300 epochs × 10 runs per topology (minutes; the former
    /// default); `medium` 500 epochs × 20 runs; `paper` upstream's 500 epochs × 5 iterations
    /// of this combination (seq_mem, pattern length 5, relu, Adam, lr 1e-4).
    pub fn for_preset(preset: Preset, seed: u64) -> Self {
        let (epochs, runs) = match preset {
            Preset::Quick => (300, 10),
            Preset::Medium => (500, 20),
            Preset::Paper => (500, 5),
        };
        RnnMemoryConfig {
            connectome: "Marmoset_Normalized".into(),
            neurons_per_region: 4,
            target_sparsity: 0.8,
            rand_partition: true,
            pattern_length: 5,
            trials: 500,
            epochs,
            runs,
            batch_size: 128,
            lr: 1e-4,
            seed,
            converge: None,
        }
    }

    /// The `converge` preset: upstream's model, data and optimiser (as `paper`), both tasks,
    /// 10 runs per (task, topology), early stopping with patience 50 and min_delta 0.001, not
    /// before epoch 500, under a cap of 3000 epochs (sizing in docs/reproductions.md).
    pub fn converge(seed: u64) -> Self {
        RnnMemoryConfig {
            epochs: 3000,
            runs: 10,
            converge: Some(ConvergeSettings::default()),
            ..Self::for_preset(Preset::Paper, seed)
        }
    }

    /// `opts`' preset with its overrides applied.
    ///
    /// # Errors
    /// `--train-images`: this task has trials, not images.
    pub fn from_options(opts: &ReproduceOptions) -> Result<Self> {
        Self::with_overrides(Self::for_preset(opts.preset, opts.seed), opts)
    }

    /// The `converge` preset with `opts`' overrides (`--epochs` is the cap, `--repeats` the runs
    /// per setting, `opts.preset` is not read) and `stopping`'s (`--patience`, `--min-delta`,
    /// `--min-epochs`).
    ///
    /// # Errors
    /// `--train-images`, and an early-stopping rule that [`EarlyStopping::validate`] refuses.
    pub fn converge_from_options(opts: &ReproduceOptions, stopping: &ConvergeOverrides) -> Result<Self> {
        let mut cfg = Self::with_overrides(Self::converge(opts.seed), opts)?;
        if let Some(c) = cfg.converge.as_mut() {
            c.patience = stopping.patience.unwrap_or(c.patience);
            c.min_delta = stopping.min_delta.unwrap_or(c.min_delta);
            c.min_epochs = stopping.min_epochs.unwrap_or(c.min_epochs);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn with_overrides(cfg: Self, opts: &ReproduceOptions) -> Result<Self> {
        let o = opts.overrides;
        if let Some(n) = o.train_images {
            return Err(invalid(
                "train_images",
                n,
                "rnn-memory trains on seq_mem trials, not images (the trials are fixed at 500)",
            ));
        }
        Ok(RnnMemoryConfig {
            epochs: Overrides::pick(o.epochs, cfg.epochs),
            runs: Overrides::pick(o.repeats, cfg.runs),
            ..cfg
        })
    }

    /// The early-stopping rule of the `converge` preset (`None` for the others).
    pub fn early_stopping(&self) -> Option<EarlyStopping> {
        self.converge.as_ref().map(|c| EarlyStopping {
            patience: c.patience,
            min_delta: c.min_delta,
            min_epochs: c.min_epochs,
            max_epochs: self.epochs,
        })
    }

    /// Checks the `converge` settings (the early-stopping rule, the `nback_mem` task).
    ///
    /// # Errors
    /// [`biotasks::Error::InvalidParameter`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        if let (Some(rule), Some(c)) = (self.early_stopping(), &self.converge) {
            rule.validate()?;
            nback_task(c).validate()?;
        }
        Ok(())
    }
}

impl RnnMemoryConfig {
    /// The bio2art settings of the topology.
    pub fn bio2art(&self) -> Bio2artSettings {
        Bio2artSettings {
            neurons_per_region: self.neurons_per_region,
            target_sparsity: self.target_sparsity,
            rand_partition: self.rand_partition,
            seed: self.seed,
        }
    }
}

/// The bio2art neuron matrix as the recurrent template, in upstream's orientation (transposed;
/// see `bio2art::topology`).
fn bio_matrix(cfg: &RnnMemoryConfig) -> Result<RecurrentMatrix> {
    let net = cfg.bio2art().network(&Connectome::load(&cfg.connectome)?)?;
    Ok(RecurrentMatrix::from_network(&net, Orientation::Upstream)?)
}

fn nback_task(c: &ConvergeSettings) -> NbackMem {
    NbackMem {
        trial_length: c.nback_trial_length,
        n_back: c.nback_n_back,
        trials: c.nback_trials,
    }
}

/// One setting: a task, its trial length, whether it is a classification, and the topology.
#[derive(Debug, Clone)]
struct Setting {
    label: String,
    task: Task,
    steps: usize,
    classification: bool,
    random: bool,
}

impl Setting {
    /// The training of this setting's task (upstream's per-trial epoch mean and NLL scaling).
    fn training<'a>(&self, model: &'a mut ElmanRnn, opt: &'a mut Optimizer, in_dim: usize) -> RnnTraining<'a> {
        RnnTraining {
            model,
            opt,
            steps: self.steps,
            in_dim,
            classification: self.classification,
            mean: EpochMean::PerTrial,
            nll: NllScaling::AfterSum,
        }
    }
}

/// The settings of `cfg`, in job order: `bio`, `random` (fixed-epoch presets) or `seq_mem bio`,
/// `seq_mem random`, `nback_mem bio`, `nback_mem random` (`converge`).
fn settings(cfg: &RnnMemoryConfig) -> Vec<Setting> {
    let seq = Task::SeqMem(SeqMem {
        pattern_length: cfg.pattern_length,
        trials: cfg.trials,
        ..SeqMem::default()
    });
    let seq_steps = 2 * cfg.pattern_length + 1;
    let Some(c) = &cfg.converge else {
        return ["bio", "random"]
            .iter()
            .map(|&t| Setting {
                label: t.into(),
                task: seq.clone(),
                steps: seq_steps,
                classification: false,
                random: t == "random",
            })
            .collect();
    };
    let nback = nback_task(c);
    let nback_steps = nback.steps();
    let tasks = [
        ("seq_mem", seq, seq_steps, false),
        ("nback_mem", Task::NbackMem(nback), nback_steps, true),
    ];
    tasks
        .into_iter()
        .flat_map(|(name, task, steps, classification)| {
            ["bio", "random"].map(|t| Setting {
                label: format!("{name} {t}"),
                task: task.clone(),
                steps,
                classification,
                random: t == "random",
            })
        })
        .collect()
}

/// Runs the comparison of `opts`' preset and overrides and writes the results folder.
pub fn rnn_memory(opts: &ReproduceOptions) -> Result<Vec<SettingResult>> {
    opts.overrides.validate()?;
    run(opts, &RnnMemoryConfig::from_options(opts)?)
}

/// Runs the `converge` preset with `opts`' overrides (`opts.preset` is not read) and writes the
/// results folder.
pub fn rnn_memory_converge(opts: &ReproduceOptions, stopping: &ConvergeOverrides) -> Result<Vec<SettingResult>> {
    opts.overrides.validate()?;
    run(opts, &RnnMemoryConfig::converge_from_options(opts, stopping)?)
}

/// The plan (description, claims) of `cfg`'s run.
fn plan(cfg: &RnnMemoryConfig, labels: &[String], m: usize, density: f64) -> Plan {
    let Some(c) = &cfg.converge else {
        let description = format!(
            "{} × {} neurons per region = {m} neurons (bio2art target_sparsity {}, rand_partition {}, no self-connections; topology density {density:.4}); Elman RNN (relu) → linear readout; seq_mem pattern length {}, {} trials (80/20 split); PyTorch Adam lr {}; batch {}; {} epochs; {} run(s) per topology",
            cfg.connectome, cfg.neurons_per_region, cfg.target_sparsity, cfg.rand_partition, cfg.pattern_length, cfg.trials, cfg.lr, cfg.batch_size, cfg.epochs, cfg.runs
        );
        let claim = "the bio-instantiated topology learns the memory task better than its randomised control";
        return Plan {
            name: "rnn-memory".into(),
            description,
            caveat: "Loss = MSE over the recall steps only (zero-target rows trimmed), as upstream. The randomised topology permutes the off-diagonal entries of the bio topology (same density). A regression task: no accuracy.".into(),
            settings: labels.to_vec(),
            repeats: cfg.runs,
            accuracy: false,
            metrics: Vec::new(),
            claims: vec![
                Claim::new(claim, "bio", "random", Metric::FinalValLoss, Better::Lower),
                Claim::new(claim, "bio", "random", Metric::MinValLoss, Better::Lower),
            ],
            groups: Vec::new(),
            early_stopping: None,
        };
    };
    let description = format!(
        "{} × {} neurons per region = {m} neurons (bio2art target_sparsity {}, rand_partition {}, no self-connections; topology density {density:.4}); Elman RNN (relu) → linear readout; two tasks: seq_mem pattern length {}, {} trials, and nback_mem trial length {}, n-back {}, {} match + {} non-match trials (80/20 split each); PyTorch Adam lr {}; batch {}; trained to a validation plateau (early stopping: patience {}, min_delta {} relative, not before epoch {}, at most {} epochs); {} run(s) per task and topology",
        cfg.connectome, cfg.neurons_per_region, cfg.target_sparsity, cfg.rand_partition, cfg.pattern_length, cfg.trials,
        c.nback_trial_length, c.nback_n_back, c.nback_trials, c.nback_trials, cfg.lr, cfg.batch_size,
        c.patience, c.min_delta, c.min_epochs, cfg.epochs, cfg.runs
    );
    let mut claims = Vec::new();
    let mut groups = Vec::new();
    for (task, accuracy) in [("seq_mem", false), ("nback_mem", true)] {
        let (bio, random) = (format!("{task} bio"), format!("{task} random"));
        let better =
            format!("on {task}, the bio-instantiated topology trains to a better network than its randomised control");
        let faster = format!("on {task}, the bio-instantiated topology converges faster than its randomised control");
        claims.push(Claim::new(&better, &bio, &random, Metric::MinValLoss, Better::Lower));
        if accuracy {
            claims.push(Claim::new(
                &better,
                &bio,
                &random,
                Metric::ValAccAtMinValLoss,
                Better::Higher,
            ));
        }
        claims.push(Claim::new(
            &faster,
            &bio,
            &random,
            Metric::EpochOfMinValLoss,
            Better::Lower,
        ));
        groups.push(SettingGroup {
            name: task.into(),
            settings: vec![bio, random],
            accuracy,
        });
    }
    Plan {
        name: "rnn-memory".into(),
        description,
        caveat: "Losses as upstream: seq_mem MSE over the recall steps, nback_mem NLL of the log-softmax over the decision step (zero-target rows trimmed); accuracy on the decision step. The randomised topology permutes the off-diagonal entries of the bio topology (same density). The paper (Goulas et al. 2021) reports no performance gain of bio-instantiated over randomly wired RNNs: **undecided** agrees with it.".into(),
        settings: labels.to_vec(),
        repeats: cfg.runs,
        accuracy: true,
        metrics: vec![
            Metric::MinValLoss,
            Metric::ValAccAtMinValLoss,
            Metric::EpochOfMinValLoss,
            Metric::EpochsTrained,
        ],
        claims,
        groups,
        early_stopping: cfg.early_stopping(),
    }
}

/// Runs `cfg` and writes the results folder of `opts`: the jobs of `opts.shard` not yet
/// finished there (a resumed run continues after the last finished (topology, run) job; a
/// `converge` job also from its checkpoint).
pub fn run(opts: &ReproduceOptions, cfg: &RnnMemoryConfig) -> Result<Vec<SettingResult>> {
    run_with_budget(opts, cfg, None)
}

/// [`run`] that interrupts every `converge` job after `interrupt_after` epochs trained in this
/// call, saving its checkpoint first, as a process killed then leaves the folder: the failed
/// run returns [`Error::Interrupted`] and a `--resume` continues. For the tests of resume
/// (`None`: no budget).
#[doc(hidden)]
pub fn run_with_budget(
    opts: &ReproduceOptions,
    cfg: &RnnMemoryConfig,
    interrupt_after: Option<usize>,
) -> Result<Vec<SettingResult>> {
    cfg.validate()?;
    let bio_w = bio_matrix(cfg)?;
    let m = bio_w.hidden;
    let density = bio_w.density();
    prepare_results_folder(&opts.out, "rnn-memory", &toml_of(cfg)?, opts.resume)?;
    let settings = settings(cfg);
    let labels: Vec<String> = settings.iter().map(|s| s.label.clone()).collect();
    let plan = plan(cfg, &labels, m, density);
    // One bar per running job: with concurrent jobs (`jobs::run_jobs_concurrent`) several
    // bars are live at once and must share the terminal.
    let bars = indicatif::MultiProgress::new();
    let (results, _) = run_jobs_concurrent(&opts.out, &plan, opts.shard, |job| {
        let setting = &settings[job.setting];
        let run = job.repeat;
        let seed = cfg.seed + run as u64;
        let (train, val) = split_datasets(&setting.task, None, 0.8, seed)?;
        let in_dim = train.trials().in_dim;
        let train_b = batches(&train, cfg.batch_size, train.len(), setting.classification)?;
        let val_b = batches(&val, cfg.batch_size, val.len(), setting.classification)?;
        let mut rng = Stream::seeded(seed ^ 0xB10);
        // The random control is `random_w` applied to the oriented matrix (one shuffle of the
        // off-diagonal entries): the same distribution as randomising bio2art's W before
        // orienting it (upstream's order, `bio2art::recurrent_matrix`), and the same draws
        // as the committed results. The model is then drawn from the same stream.
        let template = if !setting.random {
            bio_w.clone()
        } else {
            RecurrentMatrix {
                hidden: m,
                weights: random_w(&bio_w.weights, m, &mut rng)?,
            }
        };
        let out_dim = if setting.classification { 3 } else { 1 };
        let mut model = RnnSpec::default().build(in_dim, out_dim, &template, &mut rng)?;
        let mut opt = OptimizerConfig::torch_adam(cfg.lr).build()?;
        let bar = opts
            .progress
            .then(|| bars.add(indicatif::ProgressBar::new(cfg.epochs as u64)));
        let label = &setting.label;
        let show = |bar: &Option<indicatif::ProgressBar>, epoch: usize, val_loss: f64| {
            if let Some(bar) = bar {
                bar.inc(1);
                bar.set_message(format!("{label} run {} epoch {epoch} val loss {val_loss:.4}", run + 1));
            }
        };
        let Some(rule) = cfg.early_stopping() else {
            model.to_device(opts.device)?;
            let mut training = setting.training(&mut model, &mut opt, in_dim);
            let mut history = Vec::with_capacity(cfg.epochs);
            for epoch in 1..=cfg.epochs {
                history.push(training.epoch(epoch, &train_b, &val_b)?);
                show(&bar, epoch, history[epoch - 1].val_loss);
            }
            if let Some(bar) = bar {
                bar.finish();
            }
            return Ok(JobResult { density, history });
        };
        // converge: from the job's checkpoint (a resumed run), until the rule stops it.
        let files = CheckpointFiles::new(&opts.out.join("checkpoints"), job_stem(job));
        let (mut history, mut state) = match checkpoint::load(&files, &mut model, &mut opt, Some(seed))? {
            Some(saved) => resumed_state(&files, &rule, saved)?,
            None => (Vec::new(), EarlyStoppingState::default()),
        };
        // After the checkpoint went into the host model (its saves download from the device).
        model.to_device(opts.device)?;
        if let Some(bar) = &bar {
            bar.inc(history.len() as u64);
        }
        let mut trained = 0;
        while rule.decision(&state).is_none() {
            let epoch = history.len() + 1;
            // (A fresh borrow each epoch: the checkpoint below reads the model and optimiser.)
            let record = setting
                .training(&mut model, &mut opt, in_dim)
                .epoch(epoch, &train_b, &val_b)?;
            history.push(record);
            rule.observe(&mut state, record.val_loss);
            show(&bar, epoch, record.val_loss);
            trained += 1;
            let interrupted = interrupt_after.is_some_and(|n| trained >= n);
            if rule.decision(&state).is_none() && (epoch % CHECKPOINT_EVERY == 0 || interrupted) {
                let saved = RunState {
                    history: history.clone(),
                    seed: Some(seed),
                    early_stopping: Some(state),
                };
                checkpoint::save(&files, &model, &opt, &saved)?;
                if interrupted {
                    return Err(Error::Interrupted {
                        detail: format!(
                            "{label} repeat {run} after epoch {epoch} (checkpoint saved; --resume continues)"
                        ),
                    });
                }
            }
        }
        if let Some(bar) = bar {
            bar.finish_with_message(format!(
                "{label} run {}: stopped after epoch {}, best epoch {}",
                run + 1,
                history.len(),
                state.best_epoch
            ));
        }
        // The job file (written next) replaces the checkpoint; killed in between, a resume
        // trains the job again from its start, to the same numbers.
        files.remove()?;
        Ok(JobResult { density, history })
    })?;
    Ok(results)
}

/// The checkpoint name of a converge job: `s<SS>_r<RRR>`, as its job file.
fn job_stem(job: JobId) -> String {
    format!("s{:02}_r{:03}", job.setting, job.repeat)
}

/// The history and early-stopping state of a checkpoint, checked: the state must be there and
/// be the one its history gives under `rule` (a checkpoint of another rule, or damaged, is
/// refused naming the file).
fn resumed_state(
    files: &CheckpointFiles,
    rule: &EarlyStopping,
    saved: RunState,
) -> Result<(Vec<biotasks::fit::EpochRecord>, EarlyStoppingState)> {
    let state = saved.early_stopping.ok_or_else(|| {
        io_err(
            &files.json(),
            "no early_stopping state: not a checkpoint of the converge preset",
        )
    })?;
    let replayed = rule.replay(saved.history.iter().map(|e| e.val_loss));
    if !replayed.same_bits(&state) {
        return Err(io_err(
            &files.json(),
            format!(
                "the early_stopping state ({state:?}) is not the one its history gives under this rule ({replayed:?}): \
                 a damaged checkpoint or another rule; delete it to rerun the job from epoch 1"
            ),
        ));
    }
    if rule.decision(&state).is_some() {
        return Err(io_err(
            &files.json(),
            format!(
                "the run had already stopped after epoch {} under this rule; delete it to rerun the job",
                state.epochs
            ),
        ));
    }
    Ok((saved.history, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bio2art::{convert, Bio2artConfig, NeuronDensity};
    use bioautograd::Tensor;
    use biolayers::layers::Module;

    /// `converge` is rnn-memory's own preset: its parser takes it and the shared ones, the shared
    /// parser refuses it naming the value; its config is `paper`'s plus both tasks and the rule.
    #[test]
    fn the_converge_preset_parses_here_only_and_extends_paper() {
        assert_eq!(
            "converge".parse::<RnnMemoryPreset>().unwrap(),
            RnnMemoryPreset::Converge
        );
        assert_eq!(
            "medium".parse::<RnnMemoryPreset>().unwrap(),
            RnnMemoryPreset::Fixed(Preset::Medium)
        );
        let e = "converge".parse::<Preset>().unwrap_err().to_string();
        assert!(e.contains("converge") && e.contains("rnn-memory"), "{e}");
        let e = "huge".parse::<RnnMemoryPreset>().unwrap_err().to_string();
        assert!(e.contains("huge") && e.contains("converge"), "{e}");
        let paper = RnnMemoryConfig::for_preset(Preset::Paper, 1);
        let conv = RnnMemoryConfig::converge(1);
        assert_eq!(paper.converge, None);
        assert_eq!(
            (conv.epochs, conv.runs, conv.lr, conv.trials),
            (3000, 10, paper.lr, paper.trials)
        );
        let labels: Vec<String> = settings(&conv).into_iter().map(|s| s.label).collect();
        assert_eq!(
            labels,
            ["seq_mem bio", "seq_mem random", "nback_mem bio", "nback_mem random"]
        );
        assert_eq!(
            settings(&paper).into_iter().map(|s| s.label).collect::<Vec<_>>(),
            ["bio", "random"]
        );
        let mut opts = ReproduceOptions::quick("unused".into());
        opts.overrides.epochs = Some(100);
        let stopping = ConvergeOverrides {
            patience: Some(0),
            ..ConvergeOverrides::default()
        };
        let e = RnnMemoryConfig::converge_from_options(&opts, &stopping)
            .unwrap_err()
            .to_string();
        assert!(e.contains("patience = 0"), "{e}");
        let cfg = RnnMemoryConfig::converge_from_options(&opts, &ConvergeOverrides::default()).unwrap();
        assert_eq!(
            cfg.early_stopping().map(|r| (r.patience, r.min_epochs, r.max_epochs)),
            Some((50, 500, 100))
        );
    }

    /// The topologies before `bio2art::topology` existed: the transposed nonzero pattern, and a
    /// shuffle of its off-diagonal flags. The API must give the same ones for the same seeds.
    #[test]
    fn bio_and_random_topologies_are_unchanged() {
        let cfg = RnnMemoryConfig::for_preset(Preset::Quick, 3);
        let connectome = Connectome::load(&cfg.connectome).unwrap();
        let b2a = Bio2artConfig {
            neuron_density: NeuronDensity::Uniform(cfg.neurons_per_region),
            target_sparsity: cfg.target_sparsity,
            rand_partition: cfg.rand_partition,
            keep_diag: false,
            ..Bio2artConfig::default()
        };
        let net = convert(&connectome, &b2a, &mut Stream::seeded(cfg.seed)).unwrap();
        let m = net.n_neurons;
        let mut old = vec![false; m * m];
        for i in 0..m {
            for j in 0..m {
                old[j * m + i] = net.weights[i * m + j] != 0.0;
            }
        }
        let bio = bio_matrix(&cfg).unwrap();
        assert_eq!(bio.topology(), old);
        assert!((bio.density() - 0.4753).abs() < 1e-4, "{}", bio.density());
        let idx: Vec<usize> = (0..m * m).filter(|k| k / m != k % m).collect();
        let mut vals: Vec<bool> = idx.iter().map(|&k| old[k]).collect();
        Stream::seeded(3 ^ 0xB10).shuffle(&mut vals);
        let mut old_random = old.clone();
        for (&k, v) in idx.iter().zip(vals) {
            old_random[k] = v;
        }
        let new_random: Vec<bool> = random_w(&bio.weights, m, &mut Stream::seeded(3 ^ 0xB10))
            .unwrap()
            .iter()
            .map(|&w| w != 0.0)
            .collect();
        assert_eq!(new_random, old_random);
    }

    /// End to end through the layer: region 0 → region 1 in bio2art (W[0, 1] > 0). The input
    /// drives neuron 1 only and the readout sees neuron 0 only, so a signal reaches the output
    /// one step later exactly when neuron 0 receives from neuron 1: upstream's orientation.
    #[test]
    fn orientation_decides_which_neuron_receives() {
        let c = Connectome::from_matrix("tiny", 2, vec![0.0, 0.5, 0.0, 0.0]).unwrap();
        let b2a = Bio2artConfig {
            intrinsic_conn: false,
            ..Bio2artConfig::default()
        };
        let net = convert(&c, &b2a, &mut Stream::seeded(0)).unwrap();
        let response = |orientation: Orientation| -> Vec<f32> {
            let rm = RecurrentMatrix::from_network(&net, orientation).unwrap();
            let w: Vec<f32> = rm.weights.iter().map(|&v| v as f32).collect();
            let mut rnn = biolayers::layers::ElmanRnnConfig::new(1, 2, 1)
                .with_topology(rm.topology())
                .with_recurrent_weights(w)
                .init(&mut Stream::seeded(0))
                .unwrap();
            let values: [Vec<f32>; 6] = [
                vec![0.0, 1.0],
                vec![0.0; 2],
                vec![],
                vec![0.0; 2],
                vec![1.0, 0.0],
                vec![0.0],
            ];
            for (k, p) in rnn.params_mut().into_iter().enumerate() {
                if k != 2 {
                    let shape = p.value.shape().to_vec();
                    p.value = Tensor::from_vec(values[k].clone(), &shape).unwrap();
                }
            }
            let x = Tensor::from_vec(vec![1.0, 0.0, 0.0], &[1, 3, 1]).unwrap();
            biolayers::train::predict(&mut rnn, x).unwrap().to_vec().unwrap()
        };
        assert_eq!(response(Orientation::Upstream), [0.0, 0.5, 0.0]);
        assert_eq!(response(Orientation::SourceRow), [0.0, 0.0, 0.0]);
    }
}
