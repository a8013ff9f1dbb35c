//! `bench-rnn`: time of one training epoch of the bio-instantiated RNN (forward, backward and
//! PyTorch-convention Adam over all training trials in batches), the Rust half of
//! `benches/rnn_epoch.sh`. The model, the batches, the loop and the trimmed loss are those of
//! the experiments ([`crate::rnn`]). The recurrent topology is bio2art's Marmoset × 4 neurons per
//! region (upstream's settings, upstream's orientation) when `hidden` is 220, else a random
//! topology of the same density. [`BenchRnnConfig::export`] writes the exact inputs (mask,
//! batches) so that the PyTorch half trains on the same data and topology.
//!
//! # Shapes
//! Batches `(batch, T, 2)` (`seq_mem`: `T = 11`, out 1; `nback_mem`: `T = 6`, out 3).

use std::path::PathBuf;
use std::time::Instant;

use bio2art::{Connectome, Orientation, RecurrentMatrix};
use biolayers::optim::OptimizerConfig;
use biorng::Stream;
use biotasks::assembly::{Dataset, Rngs};
use biotasks::{NbackMem, SeqMem, Task};

use crate::error::{invalid, Result};
use crate::rnn::loss::NllScaling;
use crate::rnn::{batches, Bio2artSettings, EpochMean, RnnSpec, RnnTraining};

/// The benchmarked task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchTask {
    /// `seq_mem`, pattern length 5, MSE.
    SeqMem,
    /// `nback_mem`, trial length 5, n-back 2, NLL.
    NbackMem,
}

impl BenchTask {
    /// Upstream's name.
    pub fn name(self) -> &'static str {
        match self {
            BenchTask::SeqMem => "seq_mem",
            BenchTask::NbackMem => "nback_mem",
        }
    }
}

/// Settings of `bench-rnn`.
#[derive(Debug, Clone)]
pub struct BenchRnnConfig {
    /// Task.
    pub task: BenchTask,
    /// Hidden neurons (220 = Marmoset × 4, the bio topology).
    pub hidden: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Training trials per epoch.
    pub trials: usize,
    /// Timed epochs (after one warm-up epoch).
    pub epochs: usize,
    /// Seed of the topology, the trials and the weights.
    pub seed: u64,
    /// Write `mask.npy` (PyTorch layout, `[to, from]`), `x.npy` `(trials, T, in)` and `y.npy`
    /// `(trials, T)` here for the PyTorch half.
    pub export: Option<PathBuf>,
}

/// What `bench-rnn` measured.
#[derive(Debug, Clone)]
pub struct BenchRnnReport {
    /// Trials per epoch.
    pub trials: usize,
    /// Trial length `T`.
    pub steps: usize,
    /// Density of the topology.
    pub density: f64,
    /// Where the topology comes from.
    pub source: &'static str,
    /// Seconds per timed epoch, sorted.
    pub sorted_seconds: Vec<f64>,
    /// Mean CPU milliseconds per timed epoch (`None` without `/proc`).
    pub cpu_ms_per_epoch: Option<f64>,
    /// Mean trimmed loss of the last epoch.
    pub last_loss: f64,
}

impl BenchRnnReport {
    /// Median epoch time in seconds.
    pub fn median(&self) -> f64 {
        self.sorted_seconds
            .get(self.sorted_seconds.len() / 2)
            .copied()
            .unwrap_or(f64::NAN)
    }
}

/// The recurrent template `[from·H + to]`, its density and its source.
fn topology(hidden: usize, seed: u64) -> Result<(RecurrentMatrix, f64, &'static str)> {
    let settings = Bio2artSettings {
        neurons_per_region: 4,
        target_sparsity: 0.8,
        rand_partition: true,
        seed,
    };
    let net = settings.network(&Connectome::load("Marmoset_Normalized")?)?;
    let bio = RecurrentMatrix::from_network(&net, Orientation::Upstream)?;
    if hidden == bio.hidden {
        let density = bio.density();
        return Ok((bio, density, "bio2art Marmoset_Normalized x 4"));
    }
    // Another size: the same density, off-diagonal, uniformly placed.
    let density = bio.density();
    let mut rng = Stream::seeded(seed ^ 0x70);
    let weights: Vec<f64> = (0..hidden * hidden)
        .map(|k| {
            let c = k / hidden != k % hidden && rng.uniform01() < density * hidden as f64 / (hidden - 1).max(1) as f64;
            f64::from(u8::from(c))
        })
        .collect();
    let template = RecurrentMatrix { hidden, weights };
    let d = template.density();
    Ok((template, d, "random, Marmoset x 4 density"))
}

/// CPU time (user + system) of this process in seconds, from `/proc/self/stat` (Linux; 10 ms
/// ticks, so only sums over many epochs are meaningful). `None` elsewhere.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (u, s): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    Some((u + s) / 100.0)
}

/// Trains one warm-up epoch and `cfg.epochs` timed ones.
pub fn run(cfg: &BenchRnnConfig) -> Result<BenchRnnReport> {
    if cfg.hidden < 2 || cfg.batch == 0 || cfg.trials == 0 || cfg.epochs == 0 {
        return Err(invalid(
            "bench-rnn",
            format!(
                "hidden {} batch {} trials {} epochs {}",
                cfg.hidden, cfg.batch, cfg.trials, cfg.epochs
            ),
            "hidden must be >= 2 and batch, trials, epochs >= 1",
        ));
    }
    let (task, classification) = match cfg.task {
        BenchTask::SeqMem => (
            Task::SeqMem(SeqMem {
                pattern_length: 5,
                trials: cfg.trials,
                ..SeqMem::default()
            }),
            false,
        ),
        BenchTask::NbackMem => (
            Task::NbackMem(NbackMem {
                trial_length: 5,
                n_back: 2,
                trials: cfg.trials.div_ceil(2),
            }),
            true,
        ),
    };
    let mut rngs = Rngs::seeded(cfg.seed);
    let trials = task.generate(None, &mut rngs)?;
    let (in_dim, steps) = (trials.in_dim, trials.steps);
    let data = Dataset::new(trials, &mut rngs.np);
    let n = cfg.trials.min(data.len());
    let train_b = batches(&data, cfg.batch, n, classification)?;
    let (template, density, source) = topology(cfg.hidden, cfg.seed)?;
    let h = cfg.hidden;
    if let Some(dir) = &cfg.export {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::Data {
            path: dir.clone(),
            detail: e.to_string(),
        })?;
        let mut mask = vec![0u8; h * h];
        for (k, &w) in template.weights.iter().enumerate() {
            // PyTorch's weight_hh_l0[to, from].
            mask[(k % h) * h + k / h] = u8::from(w != 0.0);
        }
        bionpy::write_npy(&dir.join("mask.npy"), &[h, h], &mask)?;
        let x: Vec<f32> = train_b.iter().flat_map(|b| b.x.iter().copied()).collect();
        let y: Vec<f32> = train_b.iter().flat_map(|b| b.y.iter().copied()).collect();
        bionpy::write_npy(&dir.join("x.npy"), &[n, steps, in_dim], &x)?;
        bionpy::write_npy(&dir.join("y.npy"), &[n, steps], &y)?;
    }
    let out_dim = if classification { 3 } else { 1 };
    let mut model = RnnSpec::default().build(in_dim, out_dim, &template, &mut Stream::seeded(cfg.seed ^ 0xB10))?;
    let mut opt = OptimizerConfig::torch_adam(1e-4).build()?;
    let mut training = RnnTraining {
        model: &mut model,
        opt: &mut opt,
        steps,
        in_dim,
        classification,
        mean: EpochMean::PerBatch,
        nll: NllScaling::InTargets,
    };
    let mut times = Vec::with_capacity(cfg.epochs);
    let mut last_loss = f64::NAN;
    let mut cpu_start = None;
    for epoch in 0..=cfg.epochs {
        if epoch == 1 {
            cpu_start = process_cpu_seconds();
        }
        let start = Instant::now();
        last_loss = training.train_pass(&train_b)?.loss;
        if epoch > 0 {
            // Epoch 0 is the warm-up.
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let cpu_ms_per_epoch = match (cpu_start, process_cpu_seconds()) {
        (Some(a0), Some(a1)) => Some(1e3 * (a1 - a0) / cfg.epochs as f64),
        _ => None,
    };
    times.sort_by(f64::total_cmp);
    Ok(BenchRnnReport {
        trials: n,
        steps,
        density,
        source,
        sorted_seconds: times,
        cpu_ms_per_epoch,
        last_loss,
    })
}
