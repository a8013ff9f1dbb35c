//! Sweeps of bio-instantiated RNNs on the working-memory tasks, as upstream's `biornnmemory.py`
//! runs them from a `config.ini`: the combinations grid × iterations, each run trained and
//! validated for `epochs`, every run's per-epoch losses and accuracies saved, parameter files
//! every 10 epochs; plus sharding over a cluster, merging of shards and upstream's loss plots.
//!
//! * [`config`]: [`RunsConfig`] from upstream's INI (parsed by the private `ini` module) or the
//!   equivalent TOML;
//! * [`inputs`]: the connectome → neuron network ([`network`]) and the latent table ([`load_latents`]);
//! * [`grid`]: [`combinations`], [`jobs`], [`Shard`];
//! * [`runner`]: [`run`] (train the jobs of a shard into a results folder through the shared RNN
//!   pipeline [`crate::rnn`], resuming unfinished runs from their [`biotasks::checkpoint`]);
//! * [`layout`]: the results folder;
//! * [`merge`](mod@merge): [`merge_results`];
//! * [`plot_loss`](mod@plot_loss): [`plot_loss()`] (`lossvisualization.py`).
//!
//! ```no_run
//! use std::path::Path;
//! use bioexperiments::rnn_runs::{run, RunOptions, RunsConfig, Shard};
//!
//! let cfg = RunsConfig::load(Path::new("xtask/configs/seq_mem.ini"))?;
//! let report = run(&cfg, &RunOptions { shard: "0/4".parse::<Shard>()?, ..RunOptions::default() })?;
//! println!("{} of {} jobs run", report.ran.len(), report.total_jobs);
//! # Ok::<(), bioexperiments::Error>(())
//! ```

pub mod config;
pub mod grid;
mod ini;
pub mod inputs;
pub mod layout;
pub mod merge;
pub mod plot_loss;
pub mod runner;

pub use config::{InitName, Nonlinearity, OptimizerName, RunsConfig, TaskName};
pub use grid::{combinations, jobs, Combination, Job, Shard};
pub use inputs::{load_latents, network};
pub use merge::{merge_results, MergeReport};
pub use plot_loss::{non_finite_runs, plot_loss, NonFiniteRun, PlotLossOptions, RunSummary};
pub use runner::{bio_vs_rand, job_seed, run, RunOptions, RunReport};
