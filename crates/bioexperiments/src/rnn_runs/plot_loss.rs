//! `plot-loss`: upstream's `lossvisualization.py` for results folders of one grid.
//!
//! Per folder and combination the `(iterations, epochs)` loss arrays are read and the first
//! `start` epochs dropped (upstream: `read_results(start=1)`). Per run:
//! * `min_val_loss`: the minimum validation loss;
//! * `min_epoch`: the epoch of its first occurrence;
//! * `epoch_99`: the first epoch with `100·(loss − min)/(max − min) <= 1` (upstream's
//!   `min_loss_epoch(perc=99)`, min and max over the run's kept epochs).
//!
//! Epochs are reported 1-based as in the run histories; upstream's numbers are indices into the
//! kept window, i.e. ours minus `start + 1`.
//!
//! Output: `combination_<idx>_loss.{png,svg}` (mean ± SD over runs of validation (solid, band)
//! and training (dashed) loss, one colour per folder), `combination_<idx>_accuracy.{png,svg}` for
//! the classification tasks, the box plots `min_val_loss`, `min_epoch` and `epoch_99`
//! (`.png`/`.svg`, one box per folder over all combinations × runs), `summary.csv` (one row per
//! folder × combination × run) and `summary_by_label.csv` (mean, SD, median per folder).

use std::path::{Path, PathBuf};

use super::config::RunsConfig;
use super::grid::{combinations, Combination};
use super::layout;
use crate::error::{Error, Result};
use biotasks::plot::{quantile_sorted, write_box_plot, write_line_plot, BoxGroup, BoxPlot, LinePlot, Series};

/// Options of [`plot_loss`].
#[derive(Debug, Clone)]
pub struct PlotLossOptions {
    /// Epochs dropped at the start (upstream 1).
    pub start: usize,
    /// Y label of the loss plots (`None`: `loss (MSE)` or `loss (NLL)` by task).
    pub y_label: Option<String>,
}

impl Default for PlotLossOptions {
    fn default() -> Self {
        PlotLossOptions {
            start: 1,
            y_label: None,
        }
    }
}

/// The per-run quantities of one folder × combination × run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// Folder label.
    pub label: String,
    /// Combination index.
    pub combination: usize,
    /// Iteration.
    pub iteration: usize,
    /// Minimum validation loss.
    pub min_val_loss: f64,
    /// Epoch (1-based) of the minimum.
    pub min_epoch: usize,
    /// First epoch (1-based) within 1 % of the run's loss range above the minimum.
    pub epoch_99: usize,
}

/// A loaded `(iterations, epochs)` array.
struct Array2 {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Array2 {
    fn row(&self, r: usize) -> &[f64] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

fn read_array(path: &Path) -> Result<Array2> {
    let a = bionpy::read_npy::<f64>(path)?;
    if a.shape.len() != 2 {
        return Err(crate::error::shape(
            "results array",
            "(iterations, epochs)",
            format!("{:?} in {}", a.shape, path.display()),
        ));
    }
    Ok(Array2 {
        rows: a.shape[0],
        cols: a.shape[1],
        data: a.data,
    })
}

/// A run whose training or validation loss is NaN or infinite from some epoch on (it diverged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonFiniteRun {
    /// The results folder.
    pub folder: PathBuf,
    /// Combination index.
    pub combination: usize,
    /// Iteration.
    pub iteration: usize,
    /// First epoch (1-based) whose training or validation loss is not finite.
    pub epoch: usize,
}

/// Every run of the results folders `results` (finished combinations only) with a non-finite
/// loss. Upstream keeps such runs and its plots drop the NaN without a word; `merge-results` and
/// `plot-loss` keep them too (a diverged run is a result) but name them with this.
///
/// # Errors
/// An unreadable `config.toml` or loss array.
pub fn non_finite_runs(results: &[PathBuf]) -> Result<Vec<NonFiniteRun>> {
    let mut found = Vec::new();
    for dir in results {
        let cfg = layout::read_config(dir)?;
        for ci in 0..combinations(&cfg).len() {
            let cdir = layout::combination_dir(dir, ci);
            let (val, train) = (cdir.join("validate_loss_all.npy"), cdir.join("train_loss_all.npy"));
            if !(val.is_file() && train.is_file()) {
                continue;
            }
            let (val, train) = (read_array(&val)?, read_array(&train)?);
            for it in 0..val.rows.min(train.rows) {
                let first_bad = (0..val.cols.min(train.cols))
                    .find(|&e| !(val.row(it)[e].is_finite() && train.row(it)[e].is_finite()));
                if let Some(e) = first_bad {
                    found.push(NonFiniteRun {
                        folder: dir.clone(),
                        combination: ci,
                        iteration: it,
                        epoch: e + 1,
                    });
                }
            }
        }
    }
    Ok(found)
}

/// `(min, index of its first occurrence, first index within 1 % of the range)` of one run.
pub fn run_quantities(losses: &[f64]) -> Option<(f64, usize, usize)> {
    let finite = losses.iter().copied().filter(|v| v.is_finite());
    let min = finite.clone().fold(f64::INFINITY, f64::min);
    let max = finite.fold(f64::NEG_INFINITY, f64::max);
    if !min.is_finite() {
        return None;
    }
    let at_min = losses.iter().position(|&v| v == min)?;
    let range = max - min;
    // Upstream divides by (max − min); with a flat curve that is 0/0 = NaN and no epoch
    // qualifies (np.min of an empty array raises); the first epoch is the honest answer here.
    let within = if range > 0.0 {
        losses
            .iter()
            .position(|&v| v.is_finite() && (v - min) / range * 100.0 <= 1.0)
            .unwrap_or(at_min)
    } else {
        0
    };
    Some((min, at_min, within))
}

fn mean_sd(rows: &[&[f64]], col: usize) -> (f64, f64) {
    let v: Vec<f64> = rows.iter().map(|r| r[col]).filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
    (m, var.sqrt())
}

struct Folder {
    label: String,
    cfg: RunsConfig,
    combos: Vec<Combination>,
}

/// Mean ± SD series of `(iterations, epochs)` arrays from `start`, x = 1-based epoch.
fn band_series(label: String, a: &Array2, start: usize, companion: bool) -> Series {
    let rows: Vec<&[f64]> = (0..a.rows).map(|r| a.row(r)).collect();
    let mut points = Vec::new();
    let mut band = Vec::new();
    for col in start..a.cols {
        let (m, s) = mean_sd(&rows, col);
        let x = (col + 1) as f64;
        points.push((x, m));
        band.push((x, m - s, m + s));
    }
    Series {
        label,
        points,
        reference: false,
        band: if companion { Vec::new() } else { band },
        companion,
    }
}

/// Writes the plots and summaries of `results` (labelled `labels`) into `out`; returns the
/// per-run quantities.
pub fn plot_loss(
    results: &[PathBuf],
    labels: &[String],
    out: &Path,
    opts: &PlotLossOptions,
) -> Result<Vec<RunSummary>> {
    if results.is_empty() || results.len() != labels.len() {
        return Err(crate::error::invalid(
            "labels",
            format!("{} folders, {} labels", results.len(), labels.len()),
            "give one label per results folder (and at least one folder)",
        ));
    }
    // A label is a CSV field and the key its runs are grouped by: an empty, repeated or
    // comma-holding label would write a summary that mixes or shifts the folders' numbers.
    for (i, label) in labels.iter().enumerate() {
        if label.is_empty() || label.contains([',', '"', '\n', '\r']) {
            return Err(crate::error::invalid(
                "labels",
                format!("{label:?}"),
                "a label must be non-empty and hold no comma, quote or line break (it is a CSV field)",
            ));
        }
        if labels[..i].contains(label) {
            return Err(crate::error::invalid(
                "labels",
                format!("{label:?}"),
                "is given twice; each results folder needs its own label",
            ));
        }
    }
    let mut folders = Vec::new();
    for (dir, label) in results.iter().zip(labels) {
        let cfg = layout::read_config(dir)?;
        let combos = combinations(&cfg);
        folders.push(Folder {
            label: label.clone(),
            cfg,
            combos,
        });
    }
    let first = &folders[0];
    for (f, dir) in folders.iter().zip(results).skip(1) {
        let same = f.combos.len() == first.combos.len()
            && f.combos
                .iter()
                .zip(&first.combos)
                .all(|(a, b)| a.upstream_tuple() == b.upstream_tuple())
            && f.cfg.trialparams.trial_params.task_name == first.cfg.trialparams.trial_params.task_name;
        if !same {
            return Err(Error::Data {
                path: dir.clone(),
                detail: format!(
                    "its grid differs from {}'s; all folders must come from the same grid",
                    results[0].display()
                ),
            });
        }
    }
    let task = first.cfg.trialparams.trial_params.task_name;
    let y_label = opts.y_label.clone().unwrap_or_else(|| {
        if task.is_classification() {
            "loss (NLL)".into()
        } else {
            "loss (MSE)".into()
        }
    });
    let start = opts.start;
    let mut summary = Vec::new();
    // Every array is read and checked before `out` is created: a folder with an unfinished
    // combination or a misshapen array leaves no folder and no partial set of figures behind.
    let mut figures = Vec::new();
    for (ci, combo) in first.combos.iter().enumerate() {
        let mut loss_series = Vec::new();
        let mut acc_series = Vec::new();
        let mut max_epoch = 2.0f64;
        for (f, dir) in folders.iter().zip(results) {
            let cdir = layout::combination_dir(dir, ci);
            if !cdir.join("validate_loss_all.npy").is_file() {
                return Err(Error::Data {
                    path: cdir.clone(),
                    detail: format!(
                        "combination {ci} {} has no loss arrays: not all its runs are finished (rnn-run, or merge-results for shards)",
                        combo.upstream_tuple()
                    ),
                });
            }
            let val = read_array(&cdir.join("validate_loss_all.npy"))?;
            let train = read_array(&cdir.join("train_loss_all.npy"))?;
            if val.cols <= start || train.cols != val.cols || train.rows != val.rows {
                return Err(Error::Data {
                    path: cdir.clone(),
                    detail: format!(
                        "loss arrays {}x{} / {}x{}: need equal shapes and more than start = {start} epochs",
                        train.rows, train.cols, val.rows, val.cols
                    ),
                });
            }
            max_epoch = max_epoch.max(val.cols as f64);
            loss_series.push(band_series(format!("{} validation", f.label), &val, start, false));
            loss_series.push(band_series(format!("{} training", f.label), &train, start, true));
            let (va, ta) = (
                cdir.join("validate_metrics_all.npy"),
                cdir.join("train_metrics_all.npy"),
            );
            if va.is_file() && ta.is_file() {
                acc_series.push(band_series(
                    format!("{} validation", f.label),
                    &read_array(&va)?,
                    start,
                    false,
                ));
                acc_series.push(band_series(
                    format!("{} training", f.label),
                    &read_array(&ta)?,
                    start,
                    true,
                ));
            }
            for it in 0..val.rows {
                let row = &val.row(it)[start..];
                if let Some((min, at, within)) = run_quantities(row) {
                    summary.push(RunSummary {
                        label: f.label.clone(),
                        combination: ci,
                        iteration: it,
                        min_val_loss: min,
                        min_epoch: start + at + 1,
                        epoch_99: start + within + 1,
                    });
                }
            }
        }
        let title = format!("{} {}", ci, combo.upstream_tuple());
        let with_accuracy = acc_series.len() == 2 * folders.len();
        figures.push((title, loss_series, with_accuracy.then_some(acc_series), max_epoch));
    }
    layout::create_dir(out)?;
    for (ci, (title, loss_series, acc_series, max_epoch)) in figures.into_iter().enumerate() {
        let plot = LinePlot {
            title: &title,
            x_label: "epoch",
            y_label: &y_label,
            x_range: ((start + 1) as f64, max_epoch),
            y_range: (0.0, 1.0),
            series: loss_series,
        }
        .fit_y();
        write_line_plot(&out.join(format!("combination_{ci}_loss")), &plot)?;
        if let Some(series) = acc_series {
            let plot = LinePlot {
                title: &title,
                x_label: "epoch",
                y_label: "accuracy (%)",
                x_range: ((start + 1) as f64, max_epoch),
                y_range: (0.0, 100.0),
                series,
            }
            .fit_y();
            write_line_plot(&out.join(format!("combination_{ci}_accuracy")), &plot)?;
        }
    }
    type Quantity = fn(&RunSummary) -> f64;
    let quantities: [(&str, &str, Quantity); 3] = [
        ("min_val_loss", y_label.as_str(), |r| r.min_val_loss),
        ("min_epoch", "epoch of min validation loss", |r| r.min_epoch as f64),
        ("epoch_99", "first epoch within 1% of min", |r| r.epoch_99 as f64),
    ];
    let mut by_label = String::from("label,quantity,runs,mean,sd,median\n");
    for (name, y, f) in quantities {
        let groups: Vec<BoxGroup> = labels
            .iter()
            .map(|l| BoxGroup {
                label: l.clone(),
                values: summary.iter().filter(|r| &r.label == l).map(f).collect(),
            })
            .collect();
        for g in &groups {
            let n = g.values.len();
            let m = g.values.iter().sum::<f64>() / n.max(1) as f64;
            let sd = (g.values.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n.max(1) as f64).sqrt();
            let mut sorted = g.values.clone();
            sorted.sort_by(f64::total_cmp);
            by_label.push_str(&format!(
                "{},{name},{n},{m},{sd},{}\n",
                g.label,
                quantile_sorted(&sorted, 0.5)
            ));
        }
        let title = format!("{name} over all combinations × runs");
        write_box_plot(
            &out.join(name),
            &BoxPlot {
                title: &title,
                x_label: "topology",
                y_label: y,
                groups,
            },
        )?;
    }
    let mut csv = String::from(
        "label,combination,lr,nonlinearity,optimizer,task_param,iteration,min_val_loss,min_epoch,epoch_99\n",
    );
    for r in &summary {
        let c = &first.combos[r.combination];
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.label,
            r.combination,
            super::grid::python_float(c.lr),
            c.nonlinearity.as_str(),
            c.optimizer.as_str(),
            c.task_param,
            r.iteration,
            r.min_val_loss,
            r.min_epoch,
            r.epoch_99
        ));
    }
    bionpy::write_atomic(&out.join("summary.csv"), csv.as_bytes())?;
    bionpy::write_atomic(&out.join("summary_by_label.csv"), by_label.as_bytes())?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_follow_upstream_definitions() {
        // min 0.1 at index 3; range 0.9; within 1 % means loss <= 0.109.
        let l = [1.0, 0.5, 0.105, 0.1, 0.2];
        assert_eq!(run_quantities(&l), Some((0.1, 3, 2)));
        assert_eq!(run_quantities(&[0.3, 0.3]), Some((0.3, 0, 0)));
        assert_eq!(run_quantities(&[f64::NAN]), None);
    }
}
