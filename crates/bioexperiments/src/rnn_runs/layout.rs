//! The results folder: where every file of a run lives, how per-run histories are written and
//! read, and how the per-combination arrays are assembled from them.
//!
//! ```text
//! OUT/config.toml                 the configuration (canonical TOML, path_to_results cleared)
//! OUT/folder_index.txt            upstream's "<idx> (<lr>, '<act>', '<opt>', <task_param>)" lines
//! OUT/combinations.csv            index,lr,nonlinearity,optimizer,task_param
//! OUT/<idx>/runs/iter_<it>.csv    one finished run: epoch,train_loss,train_acc,val_loss,val_acc
//! OUT/<idx>/checkpoints/model_epoch_<e>_iter_<it>.npz   parameters every checkpoint_every epochs and at the last
//! OUT/<idx>/checkpoints/resume_iter_<it>.{npz,json}     state of an unfinished run (deleted when it finishes)
//! OUT/<idx>/history.csv           iteration,epoch,train_loss,train_acc,val_loss,val_acc (all iterations)
//! OUT/<idx>/train_loss_all.npy    float64 (iterations, epochs), and validate_loss_all.npy
//! OUT/<idx>/train_metrics_all.npy float64 (iterations, epochs) accuracy in %, and
//!                                 validate_metrics_all.npy (classification tasks only)
//! ```
//!
//! A run counts as done when its `runs/iter_<it>.csv` exists (written atomically at its end);
//! the per-combination files are (re)written when all iterations of the combination are done.
//! The `.npy` names are upstream's, so upstream's `lossvisualization.py` reads the folder too.

use std::path::{Path, PathBuf};

use super::config::RunsConfig;
use super::grid::{Combination, Job};
use crate::error::{io_err, Result};
use biotasks::fit::EpochRecord;

/// `OUT/<idx>`.
pub fn combination_dir(out: &Path, combination: usize) -> PathBuf {
    out.join(combination.to_string())
}

/// `OUT/<idx>/runs/iter_<it>.csv`.
pub fn run_file(out: &Path, job: Job) -> PathBuf {
    combination_dir(out, job.combination)
        .join("runs")
        .join(format!("iter_{}.csv", job.iteration))
}

/// `OUT/<idx>/checkpoints`.
pub fn checkpoint_dir(out: &Path, combination: usize) -> PathBuf {
    combination_dir(out, combination).join("checkpoints")
}

/// `model_epoch_<e>_iter_<it>.npz` (`e` 1-based).
pub fn model_file_name(epoch: usize, iteration: usize) -> String {
    format!("model_epoch_{epoch}_iter_{iteration}.npz")
}

pub(crate) fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| io_err(path, e))
}

/// The per-run CSV text (full `f64` precision, `NaN` where a metric does not apply).
pub fn run_csv(history: &[EpochRecord]) -> String {
    let mut s = String::from("epoch,train_loss,train_acc,val_loss,val_acc\n");
    for r in history {
        s.push_str(&format!(
            "{},{},{},{},{}\n",
            r.epoch, r.train_loss, r.train_acc, r.val_loss, r.val_acc
        ));
    }
    s
}

/// Reads a per-run CSV written by [`run_csv`].
pub fn read_run_csv(path: &Path) -> Result<Vec<EpochRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    parse_run_csv(&text, path)
}

/// Parses the text of a per-run CSV (`path` names its origin in errors).
pub fn parse_run_csv(text: &str, path: &Path) -> Result<Vec<EpochRecord>> {
    let mut lines = text.lines();
    if lines.next() != Some("epoch,train_loss,train_acc,val_loss,val_acc") {
        return Err(io_err(path, "not a run history (unexpected header)"));
    }
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        let bad = || io_err(path, format!("line {}: malformed row {line:?}", n + 2));
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 5 {
            return Err(bad());
        }
        let num = |s: &str| s.parse::<f64>().map_err(|_| bad());
        out.push(EpochRecord {
            epoch: f[0].parse().map_err(|_| bad())?,
            train_loss: num(f[1])?,
            train_acc: num(f[2])?,
            val_loss: num(f[3])?,
            val_acc: num(f[4])?,
        });
    }
    Ok(out)
}

/// Writes `config.toml`, `folder_index.txt` and `combinations.csv` of `out`.
pub fn write_index(out: &Path, cfg: &RunsConfig, combos: &[Combination]) -> Result<()> {
    create_dir(out)?;
    let text = canonical_config(cfg)?;
    bionpy::write_atomic(&out.join("config.toml"), text.as_bytes())?;
    let mut index = String::new();
    let mut csv = format!(
        "index,lr,nonlinearity,optimizer,{}\n",
        cfg.trialparams.trial_params.task_name.task_param_key()
    );
    for c in combos {
        index.push_str(&format!("{} {}\n", c.index, c.upstream_tuple()));
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            c.index,
            super::grid::python_float(c.lr),
            c.nonlinearity.as_str(),
            c.optimizer.as_str(),
            c.task_param
        ));
    }
    bionpy::write_atomic(&out.join("folder_index.txt"), index.as_bytes())?;
    bionpy::write_atomic(&out.join("combinations.csv"), csv.as_bytes())?;
    Ok(())
}

/// The configuration as stored in a results folder: canonical TOML with `path_to_results`
/// cleared, so every shard of a sweep writes the same text whatever its `--out`.
pub fn canonical_config(cfg: &RunsConfig) -> Result<String> {
    let mut c = cfg.clone();
    c.paths.path_to_results = String::new();
    Ok(format!(
        "# written by cargo xtask rnn-run; the configuration of every run in this folder\n{}",
        c.to_toml()?
    ))
}

/// Reads `OUT/config.toml`.
pub fn read_config(out: &Path) -> Result<RunsConfig> {
    RunsConfig::load(&out.join("config.toml"))
}

/// The finished runs found in `out` for a grid of `n_combinations` × `iterations`; files of jobs
/// outside the grid are errors.
pub fn finished_jobs(out: &Path, n_combinations: usize, iterations: usize) -> Result<Vec<Job>> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(out).map_err(|e| io_err(out, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_err(out, e))?;
        let Some(combination) = entry.file_name().to_str().and_then(|s| s.parse::<usize>().ok()) else {
            continue;
        };
        let runs = entry.path().join("runs");
        if !runs.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&runs).map_err(|e| io_err(&runs, e))? {
            let f = f.map_err(|e| io_err(&runs, e))?;
            let name = f.file_name();
            let Some(iteration) = name
                .to_str()
                .and_then(|s| s.strip_prefix("iter_"))
                .and_then(|s| s.strip_suffix(".csv"))
                .and_then(|s| s.parse::<usize>().ok())
            else {
                continue;
            };
            if combination >= n_combinations || iteration >= iterations {
                return Err(io_err(
                    &f.path(),
                    format!("run outside the grid ({n_combinations} combinations × {iterations} iterations)"),
                ));
            }
            found.push(Job { combination, iteration });
        }
    }
    found.sort();
    Ok(found)
}

/// Writes `history.csv` and the `(iterations, epochs)` arrays of every combination whose runs
/// are all finished; returns how many combinations are complete.
pub fn write_combination_arrays(out: &Path, cfg: &RunsConfig, combos: &[Combination]) -> Result<usize> {
    let iterations = cfg.trainvalidate.iterations;
    let epochs = cfg.trainvalidate.epochs;
    let classification = cfg.trialparams.trial_params.task_name.is_classification();
    let mut complete = 0;
    for c in combos {
        let files: Vec<PathBuf> = (0..iterations)
            .map(|iteration| {
                run_file(
                    out,
                    Job {
                        combination: c.index,
                        iteration,
                    },
                )
            })
            .collect();
        if !files.iter().all(|f| f.is_file()) {
            continue;
        }
        let mut cols: [Vec<f64>; 4] = Default::default();
        let mut csv = String::from("iteration,epoch,train_loss,train_acc,val_loss,val_acc\n");
        for (it, f) in files.iter().enumerate() {
            let h = read_run_csv(f)?;
            if h.len() != epochs {
                return Err(io_err(f, format!("holds {} epochs, the config says {epochs}", h.len())));
            }
            for r in &h {
                cols[0].push(r.train_loss);
                cols[1].push(r.val_loss);
                cols[2].push(r.train_acc);
                cols[3].push(r.val_acc);
                csv.push_str(&format!(
                    "{it},{},{},{},{},{}\n",
                    r.epoch, r.train_loss, r.train_acc, r.val_loss, r.val_acc
                ));
            }
        }
        let dir = combination_dir(out, c.index);
        let shape = [iterations, epochs];
        bionpy::write_npy(&dir.join("train_loss_all.npy"), &shape, &cols[0])?;
        bionpy::write_npy(&dir.join("validate_loss_all.npy"), &shape, &cols[1])?;
        if classification {
            bionpy::write_npy(&dir.join("train_metrics_all.npy"), &shape, &cols[2])?;
            bionpy::write_npy(&dir.join("validate_metrics_all.npy"), &shape, &cols[3])?;
        }
        bionpy::write_atomic(&dir.join("history.csv"), csv.as_bytes())?;
        complete += 1;
    }
    Ok(complete)
}
