//! `cargo xtask bench-rnn`: time of one training epoch of the bio-instantiated RNN (forward,
//! backward and PyTorch-convention Adam over all training trials in batches), the Rust half of
//! `benches/rnn_epoch.sh`. The recurrent topology is bio2art's Marmoset × 4 neurons per region
//! (upstream's settings, upstream's orientation) when `--hidden 220`, else a random topology of
//! the same density. `--export DIR` writes the exact inputs (mask, batches) so that the PyTorch
//! half trains on the same data and topology.

use std::path::PathBuf;
use std::time::Instant;

use bio2art::{convert, Bio2artConfig, Connectome, NeuronDensity, Orientation, RecurrentMatrix};
use bioautograd::{Graph, Tensor, Var};
use biolayers::layers::{ElmanRnnConfig, RnnNonlinearity};
use biolayers::optim::OptimizerConfig;
use biolayers::train::train_step;
use biorng::Stream;
use biotasks::assembly::{Dataset, Rngs};
use biotasks::{NbackMem, SeqMem, Task};

use crate::CliResult;

/// Arguments of `cargo xtask bench-rnn`.
#[derive(clap::Args, Debug)]
pub struct BenchRnnArgs {
    /// Task: seq_mem (pattern length 5, MSE) or nback_mem (trial length 5, n-back 2, NLL).
    #[arg(long, default_value = "seq_mem")]
    pub task: String,
    /// Hidden neurons (220 = Marmoset × 4, the bio topology).
    #[arg(long, default_value_t = 220)]
    pub hidden: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Training trials per epoch.
    #[arg(long, default_value_t = 800)]
    pub trials: usize,
    /// Timed epochs (after one warm-up epoch); the median is reported.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Seed of the topology, the trials and the weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the result as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write mask.npy (PyTorch layout, [to, from]), x.npy (trials, T, in) and y.npy (trials, T)
    /// for the PyTorch half.
    #[arg(long)]
    pub export: Option<PathBuf>,
}

/// The recurrent topology `[from·H + to]` and its density.
fn topology(hidden: usize, seed: u64) -> CliResult<(Vec<bool>, f64, &'static str)> {
    let marmoset = Connectome::load("Marmoset_Normalized")?;
    let config = Bio2artConfig {
        neuron_density: NeuronDensity::Uniform(4),
        target_sparsity: 0.8,
        rand_partition: true,
        keep_diag: false,
        ..Bio2artConfig::default()
    };
    let net = convert(&marmoset, &config, &mut Stream::seeded(seed))?;
    let bio = RecurrentMatrix::from_network(&net, Orientation::Upstream)?;
    if hidden == bio.hidden {
        return Ok((bio.topology(), bio.density(), "bio2art Marmoset_Normalized x 4"));
    }
    // Another size: the same density, off-diagonal, uniformly placed.
    let density = bio.density();
    let mut rng = Stream::seeded(seed ^ 0x70);
    let topo: Vec<bool> = (0..hidden * hidden)
        .map(|k| k / hidden != k % hidden && rng.uniform01() < density * hidden as f64 / (hidden - 1).max(1) as f64)
        .collect();
    let d = topo.iter().filter(|&&c| c).count() as f64 / (hidden * hidden) as f64;
    Ok((topo, d, "random, Marmoset x 4 density"))
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

/// Mean over the rows with a nonzero target: squared error (`classes == 1`) or NLL of the
/// log-softmax (the target is the class).
fn trimmed_loss(g: &Graph, out: &Var, y: &[f32], classes: usize) -> bioautograd::Result<Var> {
    let n = y.len();
    let count = y.iter().filter(|&&v| v != 0.0).count().max(1) as f32;
    if classes == 1 {
        let keep: Vec<f32> = y.iter().map(|&v| f32::from(u8::from(v != 0.0))).collect();
        let diff = g.sub(out, &g.input(Tensor::from_vec(y.to_vec(), &[n, 1])?))?;
        let sq = g.mul(&g.mul(&diff, &diff)?, &g.input(Tensor::from_vec(keep, &[n, 1])?))?;
        return g.mul(&g.sum(&sq)?, &g.input(Tensor::scalar(1.0 / count)));
    }
    let mut pick = vec![0f32; n * classes];
    for (r, &v) in y.iter().enumerate() {
        if v != 0.0 {
            pick[r * classes + v as usize] = -1.0 / count;
        }
    }
    let logp = g.log_softmax(out)?;
    g.sum(&g.mul(&logp, &g.input(Tensor::from_vec(pick, &[n, classes])?))?)
}

/// Runs `cargo xtask bench-rnn`.
pub fn run(a: &BenchRnnArgs) -> CliResult {
    if a.hidden < 2 || a.batch == 0 || a.trials == 0 || a.epochs == 0 {
        return Err("--hidden must be >= 2 and --batch, --trials, --epochs >= 1".into());
    }
    let (task, classes) = match a.task.as_str() {
        "seq_mem" => (
            Task::SeqMem(SeqMem {
                pattern_length: 5,
                trials: a.trials,
                ..SeqMem::default()
            }),
            1,
        ),
        "nback_mem" => (
            Task::NbackMem(NbackMem {
                trial_length: 5,
                n_back: 2,
                trials: a.trials.div_ceil(2),
            }),
            3,
        ),
        other => return Err(format!("--task {other}: expected seq_mem or nback_mem").into()),
    };
    let mut rngs = Rngs::seeded(a.seed);
    let trials = task.generate(None, &mut rngs)?;
    let (in_dim, steps) = (trials.in_dim, trials.steps);
    let data = Dataset::new(trials, &mut rngs.np);
    let n = a.trials.min(data.len());
    let batches: Vec<(Vec<f32>, Vec<f32>, usize)> = (0..n)
        .step_by(a.batch)
        .map(|s| data.batch(s, a.batch.min(n - s)))
        .collect();
    let (topo, density, source) = topology(a.hidden, a.seed)?;
    let h = a.hidden;
    if let Some(dir) = &a.export {
        std::fs::create_dir_all(dir)?;
        let mut mask = vec![0u8; h * h];
        for (k, &c) in topo.iter().enumerate() {
            // PyTorch's weight_hh_l0[to, from].
            mask[(k % h) * h + k / h] = u8::from(c);
        }
        bionpy::write_npy(&dir.join("mask.npy"), &[h, h], &mask)?;
        let x: Vec<f32> = batches.iter().flat_map(|b| b.0.iter().copied()).collect();
        let y: Vec<f32> = batches.iter().flat_map(|b| b.1.iter().copied()).collect();
        bionpy::write_npy(&dir.join("x.npy"), &[n, steps, in_dim], &x)?;
        bionpy::write_npy(&dir.join("y.npy"), &[n, steps], &y)?;
    }
    let mut model = ElmanRnnConfig::new(in_dim, h, classes)
        .with_nonlinearity(RnnNonlinearity::Relu)
        .with_topology(topo)
        .init(&mut Stream::seeded(a.seed ^ 0xB10))?;
    let mut opt = OptimizerConfig::torch_adam(1e-4).build()?;
    let mut times = Vec::with_capacity(a.epochs);
    let mut last_loss = f64::NAN;
    let mut cpu_start = None;
    for epoch in 0..=a.epochs {
        if epoch == 1 {
            cpu_start = process_cpu_seconds();
        }
        let start = Instant::now();
        let mut total = 0.0;
        for (x, y, b) in &batches {
            let xt = Tensor::from_vec(x.clone(), &[*b, steps, in_dim])?;
            let loss = train_step(&mut model, &mut opt, xt, |g, out| trimmed_loss(g, out, y, classes))?;
            total += f64::from(loss);
        }
        if epoch > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
        last_loss = total / batches.len() as f64;
    }
    let cpu_ms = match (cpu_start, process_cpu_seconds()) {
        (Some(a0), Some(a1)) => Some(1e3 * (a1 - a0) / a.epochs as f64),
        _ => None,
    };
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "rust {}: H {h}, batch {}, {n} trials (T {steps}), topology {source} density {density:.4}: median epoch {:.2} ms [min {:.2}, max {:.2}] over {} epochs; CPU {} ms/epoch (mean); last loss {last_loss:.4}",
        a.task,
        a.batch,
        1e3 * median,
        1e3 * sorted[0],
        1e3 * sorted[sorted.len() - 1],
        a.epochs,
        cpu_ms.map_or("n/a".to_string(), |c| format!("{c:.1}"))
    );
    if let Some(p) = &a.json {
        let rec = serde_json::json!({
            "impl": "rust", "task": a.task, "hidden": h, "batch": a.batch, "trials": n,
            "steps": steps, "density": density, "topology": source, "epochs": a.epochs,
            "median_epoch_ms": 1e3 * median, "min_epoch_ms": 1e3 * sorted[0],
            "max_epoch_ms": 1e3 * sorted[sorted.len() - 1], "cpu_ms_per_epoch": cpu_ms,
            "threads": std::thread::available_parallelism().map(|v| v.get()).unwrap_or(1),
        });
        bionpy::write_atomic(p, serde_json::to_string_pretty(&rec)?.as_bytes())?;
    }
    Ok(())
}
