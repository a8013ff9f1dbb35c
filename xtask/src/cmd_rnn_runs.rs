//! `cargo xtask rnn-run`, `merge-results` and `plot-loss`: upstream's `biornnmemory.py` config
//! sweeps, sharded over a cluster, and its `lossvisualization.py` (see docs/rnn-runs.md).
//!
//! ```text
//! cargo xtask rnn-run --config xtask/configs/tiny.toml --out results/tiny [--shard 0/2] [--data DIR] [--no-progress] [--max-epochs N]
//! cargo xtask merge-results --inputs results/s0 results/s1 --out results/merged [--allow-partial]
//!   (also joins the shard folders of `cargo xtask reproduce NAME --shard i/n`)
//! cargo xtask plot-loss --results results/bio results/rand --labels bio rand --out results/figs
//! ```

use std::path::{Path, PathBuf};

use bioexperiments::rnn_runs::{
    merge_results, plot_loss, run, PlotLossOptions, RunOptions, RunSummary, RunsConfig, Shard,
};

use crate::CliResult;

/// Arguments of `cargo xtask rnn-run`.
#[derive(clap::Args, Debug)]
pub struct RnnRunArgs {
    /// Configuration: upstream's config.ini format (.ini) or the equivalent .toml.
    #[arg(long)]
    pub config: PathBuf,
    /// Results folder [default: the config's path_to_results].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run only shard i of n (0-based, e.g. 0/4 or $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT).
    #[arg(long)]
    pub shard: Option<String>,
    /// Data folder for relative latent-table paths (default ../shared/data when it exists).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Train at most N epochs in this call, then stop with the run checkpointed (rerun to continue).
    #[arg(long)]
    pub max_epochs: Option<usize>,
}

/// Runs `cargo xtask rnn-run`.
pub fn run_cmd(a: &RnnRunArgs) -> CliResult {
    if a.max_epochs == Some(0) {
        return Err("--max-epochs: 0 would train nothing; give N >= 1 (or leave it out)".into());
    }
    let cfg = RunsConfig::load(&a.config)?;
    let shard = match &a.shard {
        Some(s) => s.parse::<Shard>()?,
        None => Shard::ALL,
    };
    let report = run_named(
        &a.config,
        &cfg,
        &RunOptions {
            out: a.out.clone(),
            shard,
            data: a.data.clone(),
            progress: !a.no_progress,
            max_epochs: a.max_epochs,
        },
    )?;
    println!(
        "{}: {} neurons (topology density {:.4}); shard {shard}: {} of {} jobs; finished {} (resumed {}), already done {}, left unfinished {}; {} complete combination(s) in {}",
        cfg.trialparams.trial_params.task_name.as_str(),
        report.hidden,
        report.density,
        report.shard_jobs,
        report.total_jobs,
        report.ran.len(),
        report.resumed.len(),
        report.skipped.len(),
        report.unfinished.len(),
        report.complete_combinations,
        report.out.display()
    );
    Ok(())
}

/// [`run`], with configuration errors naming `path` (the runner only knows the parsed config).
fn run_named(
    path: &Path,
    cfg: &RunsConfig,
    opts: &RunOptions,
) -> Result<bioexperiments::rnn_runs::RunReport, bioexperiments::Error> {
    run(cfg, opts).map_err(|e| match e {
        bioexperiments::Error::Config { key, detail, .. } => bioexperiments::Error::Config {
            file: path.to_path_buf(),
            key,
            detail,
        },
        other => other,
    })
}

/// Arguments of `cargo xtask merge-results`.
#[derive(clap::Args, Debug)]
pub struct MergeResultsArgs {
    /// Results folders of the shards of one sweep.
    #[arg(long, num_args = 1.., required = true)]
    pub inputs: Vec<PathBuf>,
    /// Merged folder (must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Merge even when some (combination, iteration) jobs are in no input.
    #[arg(long)]
    pub allow_partial: bool,
}

/// Runs `cargo xtask merge-results`.
pub fn merge_cmd(a: &MergeResultsArgs) -> CliResult {
    if a.inputs
        .first()
        .is_some_and(|d| bioexperiments::jobs::is_reproduce_folder(d))
    {
        if a.allow_partial {
            return Err(crate::cli::cli_err(
                "--allow-partial: shards of `reproduce` merge only when every job is there (the summary needs all runs)",
            ));
        }
        let r = bioexperiments::jobs::merge_reproduce(&a.inputs, &a.out)?;
        println!(
            "merged {} job(s) of reproduce {} from {} folder(s) into {} (summary.md, stats.csv, comparisons.csv, history.csv, plots)",
            r.jobs,
            r.name,
            a.inputs.len(),
            a.out.display()
        );
        return Ok(());
    }
    let r = merge_results(&a.inputs, &a.out, a.allow_partial)?;
    warn_non_finite(
        std::slice::from_ref(&a.out),
        "merged as they are (a diverged run is a result)",
    )?;
    println!(
        "merged {} job(s) from {} folder(s) into {}; {} complete combination(s){}",
        r.jobs,
        a.inputs.len(),
        a.out.display(),
        r.complete_combinations,
        if r.missing.is_empty() {
            String::new()
        } else {
            format!("; {} job(s) missing (--allow-partial)", r.missing.len())
        }
    );
    Ok(())
}

/// Prints one warning per run of `results` whose loss is NaN or infinite, saying `what` is done
/// with it (upstream drops such values without a word).
fn warn_non_finite(results: &[PathBuf], what: &str) -> CliResult {
    let runs = bioexperiments::rnn_runs::non_finite_runs(results)?;
    for r in &runs {
        eprintln!(
            "warning: {} combination {} iteration {}: the loss is NaN or infinite from epoch {} (diverged run)",
            r.folder.display(),
            r.combination,
            r.iteration,
            r.epoch
        );
    }
    if !runs.is_empty() {
        eprintln!("warning: {} run(s) with non-finite losses: {what}", runs.len());
    }
    Ok(())
}

/// Arguments of `cargo xtask plot-loss`.
#[derive(clap::Args, Debug)]
pub struct PlotLossArgs {
    /// Results folders of one grid (e.g. bio and rand).
    #[arg(long, num_args = 1.., required = true)]
    pub results: Vec<PathBuf>,
    /// One label per folder.
    #[arg(long, num_args = 1.., required = true)]
    pub labels: Vec<String>,
    /// Output folder for the figures and summaries.
    #[arg(long)]
    pub out: PathBuf,
    /// Epochs dropped at the start (upstream drops the first).
    #[arg(long, default_value_t = 1)]
    pub start: usize,
    /// Y label of the loss plots [default: loss (MSE) or loss (NLL) by task].
    #[arg(long)]
    pub ylabel: Option<String>,
}

/// Runs `cargo xtask plot-loss`.
pub fn plot_cmd(a: &PlotLossArgs) -> CliResult {
    plot_and_report(&a.results, &a.labels, &a.out, a.start, a.ylabel.clone())
}

/// Plots `results` and prints the per-label summary.
pub fn plot_and_report(
    results: &[PathBuf],
    labels: &[String],
    out: &Path,
    start: usize,
    y_label: Option<String>,
) -> CliResult {
    let summary = plot_loss(results, labels, out, &PlotLossOptions { start, y_label })?;
    warn_non_finite(
        results,
        "left out of the mean ± SD from that epoch on, and out of the summary if no validation loss is finite",
    )?;
    print_summary(labels, &summary, out);
    Ok(())
}

/// Prints per label the mean of the run quantities of `summary`.
pub fn print_summary(labels: &[String], summary: &[RunSummary], out: &Path) {
    for l in labels {
        let runs: Vec<&RunSummary> = summary.iter().filter(|r| &r.label == l).collect();
        let n = runs.len().max(1) as f64;
        let mean = |f: &dyn Fn(&RunSummary) -> f64| runs.iter().map(|r| f(r)).sum::<f64>() / n;
        println!(
            "{l:<8} runs {:>4}  mean min val loss {:.6}  mean epoch of min {:.1}  mean epoch within 1% {:.1}",
            runs.len(),
            mean(&|r| r.min_val_loss),
            mean(&|r| r.min_epoch as f64),
            mean(&|r| r.epoch_99 as f64)
        );
    }
    println!(
        "wrote per-combination loss plots, box plots (min_val_loss, min_epoch, epoch_99) and summary.csv to {}",
        out.display()
    );
}
