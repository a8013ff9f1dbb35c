//! `cargo xtask bench-rnn`: time of one training epoch of the bio-instantiated RNN, the Rust half
//! of `benches/rnn_epoch.sh` ([`bioexperiments::bench_rnn`] does the work).

use std::path::PathBuf;

use bioexperiments::bench_rnn::{run as bench_rnn, BenchRnnConfig, BenchTask};

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

/// Limits of the flags (a few GB at most): hidden size, batch, trials, epochs.
const MAX_HIDDEN: usize = 4096;
const MAX_BATCH: usize = 4096;
const MAX_TRIALS: usize = 1_000_000;
const MAX_EPOCHS: usize = 100_000;

/// Runs `cargo xtask bench-rnn`.
pub fn run(a: &BenchRnnArgs) -> CliResult {
    use crate::cli::{check_output_file, check_range};
    check_range("--hidden", a.hidden, 2, MAX_HIDDEN)?;
    check_range("--batch", a.batch, 1, MAX_BATCH)?;
    check_range("--trials", a.trials, 1, MAX_TRIALS)?;
    check_range("--epochs", a.epochs, 1, MAX_EPOCHS)?;
    if let Some(p) = &a.json {
        check_output_file("--json", p)?;
    }
    let task = match a.task.as_str() {
        "seq_mem" => BenchTask::SeqMem,
        "nback_mem" => BenchTask::NbackMem,
        other => return Err(format!("--task {other}: expected seq_mem or nback_mem").into()),
    };
    let r = bench_rnn(&BenchRnnConfig {
        task,
        hidden: a.hidden,
        batch: a.batch,
        trials: a.trials,
        epochs: a.epochs,
        seed: a.seed,
        export: a.export.clone(),
    })?;
    let (h, n, steps, density, source) = (a.hidden, r.trials, r.steps, r.density, r.source);
    let (sorted, median, cpu_ms, last_loss) = (&r.sorted_seconds, r.median(), r.cpu_ms_per_epoch, r.last_loss);
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
