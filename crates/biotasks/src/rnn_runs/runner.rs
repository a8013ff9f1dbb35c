//! The runner: trains every job of a shard and writes the results folder ([`super::layout`]).
//!
//! Per job (upstream's `train_validate_epochs`): regenerate the trials and split them 80/20 by
//! trial, build a fresh model and optimiser, then per epoch one pass over the training batches
//! (forward, loss on the trimmed rows, backward, step) and one over the validation batches
//! (no step). An epoch's loss is the mean of the per-batch mean losses, its accuracy (%) the mean
//! of the per-batch accuracies, as upstream.
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

use bio2art::{
    convert, recurrent_matrix, remap_w, Bio2artConfig, Bio2artNetwork, Connectome, NeuronDensity, RecurrentMatrix,
};
use bioautograd::{Graph, Mode, Tensor, Var};
use biolayers::io::{load_npz, save_npz, NamedArray};
use biolayers::layers::{ElmanRnn, ElmanRnnConfig, Module, RecurrentInit, RnnNonlinearity};
use biolayers::optim::{Convention, Optimizer, OptimizerConfig, OptimizerState};
use biolayers::train::train_step;
use biorng::Stream;
use serde::{Deserialize, Serialize};

use super::config::{InitName, Nonlinearity, OptimizerName, RunsConfig, TaskName};
use super::grid::{combinations, jobs, Combination, Job, Shard};
use super::layout;
use crate::assembly::{Dataset, Rngs};
use crate::error::{Error, Result};
use crate::fit::EpochRecord;
use crate::{create_trials, LatentTable, NbackMem, PicLatentMem, SeqMem, Task};

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

fn load_connectome(cfg: &RunsConfig) -> Result<Connectome> {
    let net = &cfg.net;
    let folder = cfg.paths.path_to_network.trim();
    let connectome = if folder.is_empty() {
        Connectome::load(&net.net_name).map_err(|e| Error::Config {
            file: PathBuf::from("config"),
            key: "[net] net_name".into(),
            detail: e.to_string(),
        })?
    } else {
        let path = Path::new(folder).join(format!("C_{}.npy", net.net_name));
        if !path.is_file() {
            return Err(Error::Config {
                file: PathBuf::from("config"),
                key: "[paths] path_to_network".into(),
                detail: format!(
                    "{} not found (leave path_to_network empty to use the connectomes bundled with bio2art)",
                    path.display()
                ),
            });
        }
        let arr = bionpy::read_npy::<f64>(&path)?;
        if arr.shape.len() != 2 || arr.shape[0] != arr.shape[1] {
            return Err(Error::Shape {
                what: "connectome",
                expected: "a square (N, N) matrix".into(),
                got: format!("{:?} in {}", arr.shape, path.display()),
            });
        }
        Connectome::from_matrix(net.net_name.clone(), arr.shape[0], arr.data)?
    };
    if connectome.n_regions() != net.rnn_size {
        return Err(Error::Config {
            file: PathBuf::from("config"),
            key: "[net] rnn_size".into(),
            detail: format!(
                "{} but {} has {} regions (upstream would fail here too)",
                net.rnn_size,
                net.net_name,
                connectome.n_regions()
            ),
        });
    }
    Ok(connectome)
}

/// Converts the connectome of `[net]` as upstream does (target_sparsity 0.8, intrinsic
/// connections, target_sparsity_intrinsic 1, no self-connections), from `[run] seed`.
pub fn network(cfg: &RunsConfig) -> Result<Bio2artNetwork> {
    let connectome = load_connectome(cfg)?;
    let b2a = Bio2artConfig {
        neuron_density: NeuronDensity::Uniform(cfg.net.nr_neurons),
        target_sparsity: 0.8,
        rand_partition: cfg.net.rand_partition,
        keep_diag: false,
        ..Bio2artConfig::default()
    };
    Ok(convert(&connectome, &b2a, &mut Stream::seeded(cfg.run.seed))?)
}

fn task_of(cfg: &RunsConfig, combo: &Combination) -> Task {
    let tp = &cfg.trialparams.trial_params;
    match tp.task_name {
        TaskName::SeqMem => Task::SeqMem(SeqMem {
            pattern_length: combo.task_param,
            low: tp.low,
            high: tp.high,
            trials: tp.nr_of_trials,
        }),
        TaskName::NbackMem => Task::NbackMem(NbackMem {
            trial_length: tp.trial_length,
            n_back: combo.task_param,
            trials: tp.nr_of_trials,
        }),
        TaskName::PicLatentMem => Task::PicLatentMem(PicLatentMem {
            trial_length: tp.trial_length,
            n_back: combo.task_param,
            trials: tp.nr_of_trials,
            rescale: tp.rescale,
        }),
    }
}

fn resolve_input(path: &str, data: Option<&Path>) -> PathBuf {
    let p = PathBuf::from(path);
    if p.is_absolute() {
        return p;
    }
    let data_dir = data
        .map(Path::to_path_buf)
        .or_else(|| crate::data::resolve_data_dir(None).ok());
    match data_dir.map(|d| d.join(&p)) {
        Some(d) if d.exists() => d,
        _ => p,
    }
}

/// Loads the `pic_latent_mem` latent table named by `[paths]`.
pub fn load_latents(cfg: &RunsConfig, data: Option<&Path>) -> Result<LatentTable> {
    let latents = resolve_input(&cfg.paths.path_to_latents, data);
    let labels = resolve_input(&cfg.paths.path_to_latent_labels, data);
    for (p, key) in [
        (&latents, "[paths] path_to_latents"),
        (&labels, "[paths] path_to_latent_labels"),
    ] {
        if !p.is_file() {
            return Err(Error::Config {
                file: PathBuf::from("config"),
                key: key.into(),
                detail: format!(
                    "{} not found: pic_latent_mem needs the (10000, 50) MNIST latent table and its labels as .npy \
                     (create them with `cargo xtask mnist-latents`), looked in --data then the working directory",
                    p.display()
                ),
            });
        }
    }
    LatentTable::from_npy(&latents, &labels)
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

/// Builds the model of one job from its recurrent template (already oriented and, for
/// `random_w`, randomised): upstream's init choice, `remap_w` and `freeze_layer`.
fn build_model(
    cfg: &RunsConfig,
    combo: &Combination,
    template: &RecurrentMatrix,
    dims: (usize, usize),
    seed: u64,
) -> Result<ElmanRnn> {
    let act = nonlinearity(combo.nonlinearity);
    let init = RecurrentInit::upstream_for(init_scheme(cfg.trainvalidate.init), act);
    let mut rnn = ElmanRnnConfig::new(dims.0, template.hidden, dims.1)
        .with_nonlinearity(act)
        .with_init(init)
        .with_topology(template.topology())
        .with_freeze_recurrent(cfg.trainvalidate.freeze_layer);
    if cfg.trainvalidate.remap_w {
        // Same stream twice: the draft's draw gives the values to reorder, and the final model
        // gets the same other parameters.
        let draft = rnn.init(&mut Stream::seeded(seed))?;
        let values = draft.recurrent().to_vec().map_err(biolayers::Error::from)?;
        rnn = rnn.with_recurrent_weights(remap_w(template, &values)?);
    }
    Ok(rnn.init(&mut Stream::seeded(seed))?)
}

fn bt(e: bioautograd::Error) -> Error {
    Error::Train(biolayers::Error::from(e))
}

use crate::rnn_memory::trimmed_mse;

/// NLL of the log-softmax over the rows whose target (class) is nonzero.
fn trimmed_nll(g: &Graph, logits: &Var, onehot: &[f32], count: usize) -> bioautograd::Result<Var> {
    let t = g.input(Tensor::from_vec(onehot.to_vec(), &[onehot.len() / 3, 3])?);
    let ls = g.log_softmax(logits)?;
    let picked = g.sum(&g.mul(&ls, &t)?)?;
    g.mul(&picked, &g.input(Tensor::scalar(-1.0 / count.max(1) as f32)))
}

/// Accuracy (%) of `logits (rows, 3)` on the rows whose target is nonzero.
fn trimmed_accuracy(logits: &[f32], y: &[f32]) -> f64 {
    let classes = 3;
    let (mut correct, mut count) = (0usize, 0usize);
    for (row, &label) in logits.chunks_exact(classes).zip(y) {
        if label == 0.0 {
            continue;
        }
        let arg = row
            .iter()
            .enumerate()
            .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
        correct += usize::from(arg == label as usize);
        count += 1;
    }
    100.0 * correct as f64 / count.max(1) as f64
}

/// One batch: inputs, targets, size and (classification) the one-hot targets and their count.
struct Batch {
    x: Vec<f32>,
    y: Vec<f32>,
    size: usize,
    onehot: Vec<f32>,
    count: usize,
}

fn batches(ds: &Dataset, size: usize, classification: bool) -> Result<Vec<Batch>> {
    let mut out = Vec::new();
    for start in (0..ds.len()).step_by(size.max(1)) {
        let (x, y, b) = ds.batch(start, size);
        let mut onehot = Vec::new();
        let mut count = 0;
        if classification {
            onehot = vec![0.0f32; y.len() * 3];
            for (r, &v) in y.iter().enumerate() {
                if v != 0.0 {
                    let class = v as usize;
                    if class >= 3 || v.fract() != 0.0 {
                        return Err(crate::error::invalid("y", v, "classes must be 0, 1 or 2"));
                    }
                    onehot[r * 3 + class] = 1.0;
                    count += 1;
                }
            }
        }
        out.push(Batch {
            x,
            y,
            size: b,
            onehot,
            count,
        });
    }
    Ok(out)
}

/// State of an unfinished run, next to `resume_iter_<it>.npz`: the epoch, the optimiser's step
/// counter and the history as the run CSV text (JSON has no NaN).
#[derive(Debug, Serialize, Deserialize)]
struct ResumeMeta {
    epoch: usize,
    t: u64,
    history_csv: String,
}

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

fn save_resume(dir: &Path, it: usize, model: &ElmanRnn, opt: &Optimizer, history: &[EpochRecord]) -> Result<()> {
    let mut arrays = params_arrays(model)?;
    let state = opt.export_state();
    arrays.extend(crate::fit::optimizer_arrays(&state));
    save_npz(&dir.join(format!("resume_iter_{it}.npz")), &arrays)?;
    let meta = ResumeMeta {
        epoch: history.len(),
        t: state.t,
        history_csv: layout::run_csv(history),
    };
    let json = serde_json::to_vec(&meta).map_err(|e| crate::error::invalid("resume", "json", e.to_string()))?;
    bionpy::write_atomic(&dir.join(format!("resume_iter_{it}.json")), &json)?;
    Ok(())
}

fn load_resume(dir: &Path, it: usize, model: &mut ElmanRnn, opt: &mut Optimizer) -> Result<Option<Vec<EpochRecord>>> {
    let json_path = dir.join(format!("resume_iter_{it}.json"));
    let npz_path = dir.join(format!("resume_iter_{it}.npz"));
    if !json_path.is_file() || !npz_path.is_file() {
        return Ok(None);
    }
    let bad = |p: &Path, d: String| Error::Data {
        path: p.to_path_buf(),
        detail: d,
    };
    let text = std::fs::read(&json_path).map_err(|e| bad(&json_path, e.to_string()))?;
    let meta: ResumeMeta = serde_json::from_slice(&text).map_err(|e| bad(&json_path, e.to_string()))?;
    let t = meta.t;
    let history = layout::parse_run_csv(&meta.history_csv, &json_path)?;
    if history.len() != meta.epoch {
        return Err(bad(&json_path, "history and epoch disagree".into()));
    }
    let arrays = load_npz(&npz_path)?;
    let find = |name: &str| arrays.iter().find(|a| a.name == name);
    let mut values = Vec::new();
    for p in model.params() {
        let a = find(&p.name).ok_or_else(|| bad(&npz_path, format!("parameter {} missing", p.name)))?;
        if a.shape != p.value.shape() {
            return Err(bad(
                &npz_path,
                format!(
                    "parameter {} has shape {:?}, the model {:?}",
                    p.name,
                    a.shape,
                    p.value.shape()
                ),
            ));
        }
        values.push(Tensor::from_vec(a.data.clone(), &a.shape).map_err(biolayers::Error::from)?);
    }
    for (p, v) in model.params_mut().into_iter().zip(values) {
        p.value = v;
    }
    let mut slots = Vec::new();
    while let (Some(m), Some(v), Some(s)) = (
        find(&format!("opt.{}.first", slots.len())),
        find(&format!("opt.{}.second", slots.len())),
        find(&format!("opt.{}.started", slots.len())),
    ) {
        slots.push((
            m.data.clone(),
            v.data.clone(),
            s.data.first().copied().unwrap_or(0.0) != 0.0,
        ));
    }
    opt.import_state(OptimizerState { t, slots });
    Ok(Some(history))
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
    let task = task_of(cfg, combo);
    let classification = cfg.trialparams.trial_params.task_name.is_classification();
    let seed = job_seed(cfg.run.seed, job);
    let mut rngs = Rngs::seeded(seed);
    let split = create_trials(&task, s.table, cfg.trialparams.trial_params.train_size, &mut rngs)?;
    let train = Dataset::new(split.train, &mut rngs.np);
    let val = Dataset::new(split.validate, &mut rngs.np);
    let (in_dim, steps) = (train.trials().in_dim, train.trials().steps);
    let out_dim = if classification { 3 } else { 1 };
    let bs = cfg.run.batch_size;
    let (train_b, val_b) = (batches(&train, bs, classification)?, batches(&val, bs, classification)?);
    let mut topo_rng = Stream::seeded(seed ^ 0x5A4D);
    let template = recurrent_matrix(s.net, cfg.run.orientation, cfg.net.random_w.then_some(&mut topo_rng))?;
    let mut model = build_model(cfg, combo, &template, (in_dim, out_dim), seed ^ 0x4D0D)?;
    let mut opt = optimizer(combo)?;
    let ckpt = layout::checkpoint_dir(s.out, job.combination);
    layout::create_dir(&ckpt)?;
    let mut history = load_resume(&ckpt, job.iteration, &mut model, &mut opt)?.unwrap_or_default();
    let resumed = !history.is_empty();
    let epochs = cfg.trainvalidate.epochs;
    if let Some(bar) = s.bar {
        bar.inc(history.len() as u64);
    }
    let tensor = |x: &[f32], b: usize| Tensor::from_vec(x.to_vec(), &[b, steps, in_dim]).map_err(bt);
    for epoch in history.len() + 1..=epochs {
        match s.budget.get() {
            Some(0) => {
                if !history.is_empty() {
                    save_resume(&ckpt, job.iteration, &model, &opt, &history)?;
                }
                return Ok(Outcome::Stopped);
            }
            Some(n) => s.budget.set(Some(n - 1)),
            None => {}
        }
        let (mut train_loss, mut train_acc) = (0.0, 0.0);
        for b in &train_b {
            let mut acc = f64::NAN;
            let loss = train_step(&mut model, &mut opt, tensor(&b.x, b.size)?, |g, out| {
                if classification {
                    if let Ok(v) = g.value(out) {
                        if let Ok(sl) = v.as_slice() {
                            acc = trimmed_accuracy(sl, &b.y);
                        }
                    }
                    trimmed_nll(g, out, &b.onehot, b.count)
                } else {
                    trimmed_mse(g, out, &b.y)
                }
            })
            .map_err(|e| match e {
                biolayers::Error::NonFinite { what, .. } => Error::Train(biolayers::Error::NonFinite {
                    op: "rnn-run",
                    what: format!(
                        "{what} in combination {} iteration {} epoch {epoch}",
                        job.combination, job.iteration
                    ),
                }),
                other => Error::Train(other),
            })?;
            train_loss += f64::from(loss);
            train_acc += acc;
        }
        let (mut val_loss, mut val_acc) = (0.0, 0.0);
        for b in &val_b {
            let g = Graph::with_mode(Mode::Eval);
            let xv = g.input(tensor(&b.x, b.size)?);
            let out = model.forward(&g, &xv)?;
            let loss = if classification {
                let v = g.value(&out).map_err(bt)?;
                val_acc += trimmed_accuracy(v.as_slice().map_err(bt)?, &b.y);
                trimmed_nll(&g, &out, &b.onehot, b.count).map_err(bt)?
            } else {
                val_acc = f64::NAN;
                trimmed_mse(&g, &out, &b.y).map_err(bt)?
            };
            let v = g.value(&loss).map_err(bt)?;
            val_loss += f64::from(v.as_slice().map_err(bt)?[0]);
        }
        let (nt, nv) = (train_b.len().max(1) as f64, val_b.len().max(1) as f64);
        history.push(EpochRecord {
            epoch,
            train_loss: train_loss / nt,
            train_acc: if classification { train_acc / nt } else { f64::NAN },
            val_loss: val_loss / nv,
            val_acc: if classification { val_acc / nv } else { f64::NAN },
        });
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
                save_resume(&ckpt, job.iteration, &model, &opt, &history)?;
            }
        }
    }
    bionpy::write_atomic(&layout::run_file(s.out, job), layout::run_csv(&history).as_bytes())?;
    for ext in ["npz", "json"] {
        let p = ckpt.join(format!("resume_iter_{}.{ext}", job.iteration));
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| Error::Data {
                path: p.clone(),
                detail: e.to_string(),
            })?;
        }
    }
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
    }
    let combos = combinations(cfg);
    layout::write_index(&out, cfg, &combos)?;
    let all = jobs(combos.len(), cfg.trainvalidate.iterations);
    let mine = opts.shard.select(&all);
    let (mut todo, mut skipped) = (Vec::new(), Vec::new());
    for job in &mine {
        if layout::run_file(&out, *job).is_file() {
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
    fn trimmed_losses_and_accuracy_use_only_nonzero_targets() {
        let g = Graph::new();
        // Three rows, three classes; rows 0 and 2 are decision steps (labels 2 and 1).
        let logits = [0.5f32, -1.0, 2.0, 9.0, 9.0, 9.0, 0.1, 0.3, -0.2];
        let y = [2.0f32, 0.0, 1.0];
        let onehot = [0.0f32, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let z = g.input(Tensor::from_vec(logits.to_vec(), &[3, 3]).unwrap());
        let nll = trimmed_nll(&g, &z, &onehot, 2).unwrap();
        let got = f64::from(g.value(&nll).unwrap().as_slice().unwrap()[0]);
        let lsm = |r: &[f32], k: usize| {
            let m = r.iter().map(|&v| f64::from(v)).fold(f64::NEG_INFINITY, f64::max);
            let lse = m + r.iter().map(|&v| (f64::from(v) - m).exp()).sum::<f64>().ln();
            f64::from(r[k]) - lse
        };
        let want = -(lsm(&logits[0..3], 2) + lsm(&logits[6..9], 1)) / 2.0;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        // Row 0 predicts 2 (right), row 2 predicts 1 (right); row 1 is ignored.
        assert_eq!(trimmed_accuracy(&logits, &y), 100.0);
        assert_eq!(trimmed_accuracy(&logits, &[1.0, 0.0, 2.0]), 0.0);
        let pred = g.input(Tensor::from_vec(vec![0.5f32, 7.0, 0.0], &[3, 1]).unwrap());
        let mse = trimmed_mse(&g, &pred, &[0.25, 0.0, 1.0]).unwrap();
        let got = g.value(&mse).unwrap().as_slice().unwrap()[0];
        assert!((got - (0.0625 + 1.0) / 2.0).abs() < 1e-7, "{got}");
    }

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
