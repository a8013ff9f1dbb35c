//! The robustness report of `reproduce bionet`: AUCs, accuracy-vs-level plots and `summary.md`.

use std::path::Path;

use biotasks::data::CIFAR10G_SETS;
use biotasks::perturb::Perturbation;
use biotasks::plot::{write_line_plot, LinePlot, Series};

use super::config::BioNetRunConfig;
use super::evaluate::TrialResult;
use crate::error::io_err;
use crate::error::Result;

/// Trapezoid area under `(x, y)` after sorting by `x` (positive for any monotone levels).
pub fn trapezoid_auc(points: &[(f64, f64)]) -> f64 {
    let mut p = points.to_vec();
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    p.windows(2).map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0).sum()
}

/// Mean accuracy over trials per level index of `p` for the model `name`.
fn mean_curve(results: &[TrialResult], name: &str, p: Perturbation) -> Vec<(usize, f64)> {
    let runs: Vec<&TrialResult> = results.iter().filter(|r| r.model == name).collect();
    (0..p.levels().len())
        .map(|li| {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|r| {
                    r.perturbed
                        .iter()
                        .find(|(q, l, _)| *q == p && *l == li)
                        .map(|(_, _, s)| s.accuracy)
                })
                .collect();
            (li, v.iter().sum::<f64>() / v.len().max(1) as f64)
        })
        .collect()
}

/// Mean accuracy per level index of `p` for the model `name` on the perturbed CIFAR-10G images:
/// the mean over the sets (each set's mean over trials first), `None` where nothing was measured.
fn mean_curve_cifar10g(results: &[TrialResult], name: &str, p: Perturbation) -> Vec<(usize, f64)> {
    let runs: Vec<&TrialResult> = results.iter().filter(|r| r.model == name).collect();
    (0..p.levels().len())
        .filter_map(|li| {
            let per_set: Vec<f64> = CIFAR10G_SETS
                .iter()
                .filter_map(|set| {
                    let v: Vec<f64> = runs
                        .iter()
                        .flat_map(|r| r.perturbed_generalisation.iter())
                        .filter(|(s, q, l, _)| s == set && *q == p && *l == li)
                        .map(|(_, _, _, sc)| sc.accuracy)
                        .collect();
                    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
                })
                .collect();
            (!per_set.is_empty()).then(|| (li, per_set.iter().sum::<f64>() / per_set.len() as f64))
        })
        .collect()
}

/// `(model, perturbation, AUC over levels, AUC over normalised level index)`.
pub fn aucs(results: &[TrialResult], models: &[String]) -> Vec<(String, Perturbation, f64, f64)> {
    let mut out = Vec::new();
    for m in models {
        for p in evaluated(results) {
            let curve = mean_curve(results, m, p);
            let levels = p.levels();
            let raw: Vec<(f64, f64)> = curve.iter().map(|&(li, a)| (levels[li], a)).collect();
            let last = (levels.len() - 1).max(1) as f64;
            let norm: Vec<(f64, f64)> = curve.iter().map(|&(li, a)| (li as f64 / last, a)).collect();
            out.push((m.clone(), p, trapezoid_auc(&raw), trapezoid_auc(&norm)));
        }
    }
    out
}

/// The perturbations present in the results, in upstream's order.
fn evaluated(results: &[TrialResult]) -> Vec<Perturbation> {
    Perturbation::ALL
        .into_iter()
        .filter(|p| results.iter().any(|r| r.perturbed.iter().any(|(q, _, _)| q == p)))
        .collect()
}

/// The perturbations measured on the CIFAR-10G sets, in upstream's order.
fn evaluated_cifar10g(results: &[TrialResult]) -> Vec<Perturbation> {
    Perturbation::ALL
        .into_iter()
        .filter(|p| {
            results
                .iter()
                .any(|r| r.perturbed_generalisation.iter().any(|(_, q, _, _)| q == p))
        })
        .collect()
}

/// `robustness/<perturbation>` (CIFAR-10 test images) and `robustness/cifar10g/<perturbation>`
/// (mean over the six CIFAR-10G sets).
pub(crate) fn write_robustness(out: &Path, results: &[TrialResult], models: &[String]) -> Result<()> {
    let dir = out.join("robustness");
    write_robustness_plots(
        &dir,
        evaluated(results),
        "CIFAR-10 test accuracy",
        |m, p| mean_curve(results, m, p),
        models,
    )?;
    let cifar10g = evaluated_cifar10g(results);
    if !cifar10g.is_empty() {
        write_robustness_plots(
            &dir.join("cifar10g"),
            cifar10g,
            "CIFAR-10G accuracy (mean of the six sets)",
            |m, p| mean_curve_cifar10g(results, m, p),
            models,
        )?;
    }
    Ok(())
}

/// One accuracy-vs-level plot per perturbation in `dir`, one line per model from `curve`.
fn write_robustness_plots(
    dir: &Path,
    perturbations: Vec<Perturbation>,
    what: &str,
    curve: impl Fn(&str, Perturbation) -> Vec<(usize, f64)>,
    models: &[String],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    for p in perturbations {
        let levels = p.levels();
        let series: Vec<Series> = models
            .iter()
            .map(|m| Series {
                label: m.clone(),
                points: curve(m, p).into_iter().map(|(li, a)| (levels[li], a)).collect(),
                ..Default::default()
            })
            .chain(std::iter::once(Series {
                label: "chance".into(),
                points: vec![(levels[0], 0.1), (levels[levels.len() - 1], 0.1)],
                reference: true,
                ..Default::default()
            }))
            .collect();
        let (lo, hi) = levels
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let title = format!("{}: {what} vs level", p.name());
        let plot = LinePlot {
            title: &title,
            x_label: "level",
            y_label: "accuracy",
            x_range: (lo, if hi > lo { hi } else { lo + 1.0 }),
            y_range: (0.0, 1.0),
            series,
        };
        write_line_plot(&dir.join(p.slug()), &plot)?;
    }
    Ok(())
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt())
}

pub(crate) fn summary(
    cfg: &BioNetRunConfig,
    results: &[TrialResult],
    models: &[String],
    auc: &[(String, Perturbation, f64, f64)],
) -> String {
    let mut s = String::from("# bionet\n\n");
    s.push_str(&format!(
        "Base {} at {}x{} ({} upscaling from 32x32 greyscale), width scale {}, filter banks scaled by {:.4}; bottleneck {:?}; recurrent {:?} (T = {}). Keras RMSprop lr {} decay {}, batch {}, {} epochs, {} training and {} test images, {} trial(s).\n\n",
        cfg.base.label(), cfg.input_size, cfg.input_size, cfg.interpolation, cfg.width_scale, cfg.bank_scale,
        cfg.bottleneck, cfg.recurrent, cfg.steps, cfg.lr, cfg.decay, cfg.batch_size, cfg.epochs,
        cfg.train_images, cfg.test_images, cfg.trials
    ));
    s.push_str("CIFAR-10 here is the JPEG (quality 75) copy (`cifar10-jpeg`); CIFAR-10G images are resized to the input size when it is not 224. ± is the standard deviation over trials.\n\n");
    s.push_str("## Clean accuracy\n\n| model | CIFAR-10 test (final epoch) | CIFAR-10G mean |\n|---|---|---|\n");
    for m in models {
        let runs: Vec<&TrialResult> = results.iter().filter(|r| &r.model == m).collect();
        let test: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.history.last().map(|e| e.val_acc))
            .collect();
        let gen: Vec<f64> = runs
            .iter()
            .map(|r| {
                r.generalisation.iter().map(|(_, g)| g.accuracy).sum::<f64>() / r.generalisation.len().max(1) as f64
            })
            .collect();
        let (tm, ts) = mean_std(&test);
        let (gm, gs) = mean_std(&gen);
        s.push_str(&format!("| {m} | {tm:.4} ± {ts:.4} | {gm:.4} ± {gs:.4} |\n"));
    }
    s.push_str("\n## CIFAR-10G accuracy per set\n\n| model |");
    for set in CIFAR10G_SETS {
        s.push_str(&format!(" {set} |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(CIFAR10G_SETS.len()));
    s.push('\n');
    for m in models {
        s.push_str(&format!("| {m} |"));
        for set in CIFAR10G_SETS {
            let v: Vec<f64> = results
                .iter()
                .filter(|r| &r.model == m)
                .filter_map(|r| r.generalisation.iter().find(|(n, _)| n == set).map(|(_, g)| g.accuracy))
                .collect();
            s.push_str(&format!(" {:.2} |", mean_std(&v).0));
        }
        s.push('\n');
    }
    s.push_str("\n## Robustness: normalised AUC per perturbation\n\nArea under accuracy vs level index scaled to [0, 1] (1 = perfect at every level, 0.1 = chance); `auc.csv` also holds the AUC over the raw levels (upstream's).\n\n| perturbation |");
    for m in models {
        s.push_str(&format!(" {m} |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(models.len()));
    s.push('\n');
    for p in evaluated(results) {
        s.push_str(&format!("| {} |", p.name()));
        for m in models {
            let v = auc
                .iter()
                .find(|(n, q, _, _)| n == m && *q == p)
                .map_or(f64::NAN, |a| a.3);
            s.push_str(&format!(" {v:.4} |"));
        }
        s.push('\n');
    }
    s.push_str("\nCurves: `robustness/<perturbation>.png` (CIFAR-10 test images)");
    if !evaluated_cifar10g(results).is_empty() {
        s.push_str(", `robustness/cifar10g/<perturbation>.png` (perturbed CIFAR-10G images, mean of the six sets)");
    }
    s.push_str(". Per-level numbers: `metrics/perturbed_cifar/`, `metrics/perturbed_generalisation/`.\n");
    s
}
