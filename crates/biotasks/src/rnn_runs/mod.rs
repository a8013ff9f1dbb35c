//! Sweeps of bio-instantiated RNNs on the working-memory tasks, as upstream's `biornnmemory.py`
//! runs them from a `config.ini`: the combinations grid × iterations, each run trained and
//! validated for `epochs`, every run's per-epoch losses and accuracies saved, parameter files
//! every 10 epochs; plus sharding over a cluster, merging of shards and upstream's loss plots.
//!
//! * [`config`]: [`RunsConfig`] from upstream's INI or the equivalent TOML;
//! * [`grid`]: [`combinations`], [`jobs`], [`Shard`];
//! * [`runner`]: [`run`] (train the jobs of a shard into a results folder, resuming unfinished runs);
//! * [`layout`]: the results folder;
//! * [`merge`](mod@merge): [`merge_results`];
//! * [`plot_loss`](mod@plot_loss): [`plot_loss()`] (`lossvisualization.py`).
//!
//! ```no_run
//! use std::path::Path;
//! use biotasks::rnn_runs::{run, RunOptions, RunsConfig, Shard};
//!
//! let cfg = RunsConfig::load(Path::new("xtask/configs/seq_mem.ini"))?;
//! let report = run(&cfg, &RunOptions { shard: "0/4".parse::<Shard>()?, ..RunOptions::default() })?;
//! println!("{} of {} jobs run", report.ran.len(), report.total_jobs);
//! # Ok::<(), biotasks::Error>(())
//! ```

pub mod config;
pub mod grid;
pub mod layout;
pub mod merge;
pub mod plot_loss;
pub mod runner;

pub use config::{InitName, Nonlinearity, OptimizerName, RunsConfig, TaskName};
pub use grid::{combinations, jobs, Combination, Job, Shard};
pub use merge::{merge_results, MergeReport};
pub use plot_loss::{plot_loss, PlotLossOptions, RunSummary};
pub use runner::{bio_vs_rand, run, RunOptions, RunReport};
