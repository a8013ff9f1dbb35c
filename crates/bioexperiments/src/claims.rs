//! The statistics of a finished reproduction and the verdict on each claim it tests:
//! `summary.md`, `stats.csv` and `comparisons.csv`.
//!
//! Per setting and metric: mean ± sample sd and the 95 % CI of the mean over the repeats
//! ([`crate::stats::describe`]). Per claim (a setting against a baseline on one metric, with the
//! direction the paper claims): the paired t-test over the repeats (repeat `k` of both settings
//! trains from the same seed, so the runs are paired), and Welch's t-test for reference. The
//! verdict, two-sided at 5 %: **holds** (significant in the claimed direction), **fails**
//! (significant the other way) or **undecided** (not significant, or no test possible, with the
//! reason). No correction for testing several claims is applied; the p-values are all shown.
//!
//! A run whose metric is not finite (a diverged run) is counted and named, and left out of
//! that metric's statistics and tests (a pair needs both runs finite).

use std::path::Path;

use biotasks::early_stopping::StopReason;
use biotasks::fit::EpochRecord;
use serde::{Deserialize, Serialize};

use crate::common::{write_text, SettingResult};
use crate::error::{Error, Result};
use crate::jobs::Plan;
use crate::stats::{describe, paired_t_test, welch_t_test, Describe, TTest};

/// A per-run number taken from its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Validation loss after the last epoch.
    FinalValLoss,
    /// Lowest validation loss over the epochs.
    MinValLoss,
    /// Epoch of the lowest validation loss.
    EpochOfMinValLoss,
    /// Validation accuracy after the last epoch.
    FinalValAcc,
    /// Highest validation accuracy over the epochs.
    MaxValAcc,
    /// Validation accuracy after the first epoch (how fast a setting learns).
    FirstValAcc,
    /// Validation accuracy at the epoch of the lowest validation loss (the weights a run that
    /// keeps its best-validation weights ends with).
    ValAccAtMinValLoss,
    /// Epochs trained (where a run stopped early stopped).
    EpochsTrained,
}

impl Metric {
    /// Every metric of a task (`accuracy`: a classification).
    pub fn all(accuracy: bool) -> &'static [Metric] {
        use Metric::*;
        if accuracy {
            &[
                FinalValLoss,
                MinValLoss,
                EpochOfMinValLoss,
                FinalValAcc,
                MaxValAcc,
                FirstValAcc,
            ]
        } else {
            &[FinalValLoss, MinValLoss, EpochOfMinValLoss]
        }
    }

    /// Whether the metric is an accuracy (left out for a regression task).
    pub fn is_accuracy(self) -> bool {
        matches!(
            self,
            Metric::FinalValAcc | Metric::MaxValAcc | Metric::FirstValAcc | Metric::ValAccAtMinValLoss
        )
    }

    /// Plain name, e.g. `final val loss`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::FinalValLoss => "final val loss",
            Metric::MinValLoss => "min val loss",
            Metric::EpochOfMinValLoss => "epoch of min val loss",
            Metric::FinalValAcc => "final val acc",
            Metric::MaxValAcc => "max val acc",
            Metric::FirstValAcc => "val acc after epoch 1",
            Metric::ValAccAtMinValLoss => "val acc at min val loss",
            Metric::EpochsTrained => "epochs trained",
        }
    }

    /// The metric of one run (`NaN` for an empty history or a diverged run).
    pub fn of(self, h: &[EpochRecord]) -> f64 {
        let min = h.iter().min_by(|a, b| a.val_loss.total_cmp(&b.val_loss));
        match self {
            Metric::FinalValLoss => h.last().map_or(f64::NAN, |e| e.val_loss),
            Metric::FinalValAcc => h.last().map_or(f64::NAN, |e| e.val_acc),
            Metric::FirstValAcc => h.first().map_or(f64::NAN, |e| e.val_acc),
            // A NaN anywhere makes the minimum undefined: `total_cmp` would order it, a run
            // that diverged is reported as such instead.
            Metric::MinValLoss if h.iter().any(|e| e.val_loss.is_nan()) => f64::NAN,
            Metric::MinValLoss => min.map_or(f64::NAN, |e| e.val_loss),
            Metric::EpochOfMinValLoss if h.iter().any(|e| e.val_loss.is_nan()) => f64::NAN,
            Metric::EpochOfMinValLoss => min.map_or(f64::NAN, |e| e.epoch as f64),
            Metric::MaxValAcc if h.iter().any(|e| e.val_acc.is_nan()) => f64::NAN,
            Metric::MaxValAcc => h.iter().map(|e| e.val_acc).fold(f64::NEG_INFINITY, f64::max),
            Metric::ValAccAtMinValLoss if h.iter().any(|e| e.val_loss.is_nan()) => f64::NAN,
            Metric::ValAccAtMinValLoss => min.map_or(f64::NAN, |e| e.val_acc),
            Metric::EpochsTrained if h.is_empty() => f64::NAN,
            Metric::EpochsTrained => h.len() as f64,
        }
    }
}

/// Which way the claim says a metric moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// The setting's metric is lower than the baseline's.
    Lower,
    /// The setting's metric is higher.
    Higher,
}

/// One comparison a paper's claim makes: `setting` against `baseline` on `metric`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// The claim in words, e.g. `the schizo layer (r = 0.5) overfits less than the dense layer`.
    pub statement: String,
    /// The setting the claim is about.
    pub setting: String,
    /// The setting it is compared with.
    pub baseline: String,
    /// The metric compared.
    pub metric: Metric,
    /// Which way the claim says it moves.
    pub better: Better,
}

impl Claim {
    /// A claim about `setting` vs `baseline`.
    pub fn new(statement: &str, setting: &str, baseline: &str, metric: Metric, better: Better) -> Self {
        Claim {
            statement: statement.into(),
            setting: setting.into(),
            baseline: baseline.into(),
            metric,
            better,
        }
    }
}

/// The outcome of one claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Significant (p < 0.05) in the claimed direction.
    Holds,
    /// Significant the other way.
    Fails,
    /// Not significant, or no test possible; the reason in words.
    Undecided(String),
}

impl Verdict {
    fn word(&self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::Fails => "fails",
            Verdict::Undecided(_) => "undecided",
        }
    }
}

/// A claim with its tests and verdict.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The claim.
    pub claim: Claim,
    /// Pairs where both runs are finite.
    pub pairs: usize,
    /// Mean of `setting − baseline` over those pairs (`NaN` without pairs).
    pub mean_difference: f64,
    /// The paired t-test, or why it could not be computed.
    pub paired: std::result::Result<TTest, String>,
    /// Welch's t-test, or why not.
    pub welch: std::result::Result<TTest, String>,
    /// The verdict (from the paired test).
    pub verdict: Verdict,
}

const ALPHA: f64 = 0.05;

fn finite(xs: &[f64]) -> Vec<f64> {
    xs.iter().copied().filter(|x| x.is_finite()).collect()
}

fn reason(e: Error) -> String {
    match e {
        Error::Undecidable { reason, .. } => reason.to_string(),
        other => other.to_string(),
    }
}

/// Tests `claim` on `results`.
pub fn compare(claim: &Claim, results: &[SettingResult]) -> Comparison {
    let values = |label: &str| -> Option<Vec<f64>> {
        results
            .iter()
            .find(|r| r.label == label)
            .map(|r| r.runs.iter().map(|h| claim.metric.of(h)).collect())
    };
    let (Some(a), Some(b)) = (values(&claim.setting), values(&claim.baseline)) else {
        return Comparison {
            claim: claim.clone(),
            pairs: 0,
            mean_difference: f64::NAN,
            paired: Err("a setting of the claim is not in this run".into()),
            welch: Err("a setting of the claim is not in this run".into()),
            verdict: Verdict::Undecided("this preset does not run both settings".into()),
        };
    };
    let (pa, pb): (Vec<f64>, Vec<f64>) = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(x, y)| (*x, *y))
        .unzip();
    let pairs = pa.len();
    let mean_difference = if pairs == 0 {
        f64::NAN
    } else {
        pa.iter().zip(&pb).map(|(x, y)| x - y).sum::<f64>() / pairs as f64
    };
    let paired = paired_t_test(&pa, &pb).map_err(reason);
    let welch = welch_t_test(&finite(&a), &finite(&b)).map_err(reason);
    let verdict = match &paired {
        Err(why) => Verdict::Undecided(format!("no paired test possible with {pairs} pair(s): {why}")),
        Ok(t) if t.p < ALPHA => {
            let claimed = match claim.better {
                Better::Lower => t.t < 0.0,
                Better::Higher => t.t > 0.0,
            };
            if claimed {
                Verdict::Holds
            } else {
                Verdict::Fails
            }
        }
        Ok(t) => Verdict::Undecided(format!(
            "p = {} ≥ {ALPHA} with n = {pairs} pairs: the difference is within the run-to-run spread",
            fmt_p(t.p)
        )),
    };
    Comparison {
        claim: claim.clone(),
        pairs,
        mean_difference,
        paired,
        welch,
        verdict,
    }
}

/// A statistic with four significant digits: fixed notation from 0.01 up (and for 0),
/// scientific below, so that losses of 1e-5 do not print as `0.0000`.
fn sig(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || v.abs() >= 0.01 {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

fn fmt_p(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.2e}")
    } else {
        format!("{p:.4}")
    }
}

/// The one plain sentence of a comparison.
pub fn sentence(c: &Comparison) -> String {
    let Claim {
        statement,
        setting,
        baseline,
        metric,
        better,
    } = &c.claim;
    let dir = match better {
        Better::Lower => "lower",
        Better::Higher => "higher",
    };
    let what = format!("{statement} ({setting} vs {baseline}: {} {dir})", metric.name());
    match (&c.verdict, &c.paired) {
        (Verdict::Holds, Ok(t)) => format!(
            "{what}: **holds** at this scale (paired t-test p = {}, n = {} pairs, mean difference {}).",
            fmt_p(t.p),
            c.pairs,
            sig(c.mean_difference)
        ),
        (Verdict::Fails, Ok(t)) => format!(
            "{what}: **fails** at this scale: significantly the other way (paired t-test p = {}, n = {} pairs, mean difference {}).",
            fmt_p(t.p),
            c.pairs,
            sig(c.mean_difference)
        ),
        (v, _) => format!(
            "{what}: **{}** at this scale ({}).",
            v.word(),
            match v {
                Verdict::Undecided(why) => why.as_str(),
                _ => "",
            }
        ),
    }
}

/// Per setting and metric, the statistics over the finite runs and the repeats that are not.
fn setting_stats(r: &SettingResult, metric: Metric) -> (Option<Describe>, Vec<usize>) {
    let values: Vec<f64> = r.runs.iter().map(|h| metric.of(h)).collect();
    let diverged: Vec<usize> = (0..values.len()).filter(|&k| !values[k].is_finite()).collect();
    (describe(&finite(&values)).ok(), diverged)
}

fn csv_num(x: f64) -> String {
    // Shortest round-trip decimal; empty for "not defined".
    if x.is_nan() {
        String::new()
    } else {
        format!("{x}")
    }
}

/// Writes `stats.csv` (per setting and metric) and `comparisons.csv` (per claim) into `out`.
pub(crate) fn write_statistics(out: &Path, plan: &Plan, results: &[SettingResult]) -> Result<()> {
    let mut s = String::from("setting,density,metric,runs,diverged,n,mean,sd,ci95_low,ci95_high\n");
    for r in results {
        for metric in plan.metrics_of(&r.label) {
            let (d, diverged) = setting_stats(r, metric);
            let cols = d.map_or([f64::NAN; 4], |d| [d.mean, d.sd, d.ci_low, d.ci_high]);
            s.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                r.label,
                csv_num(r.density),
                metric.name(),
                r.runs.len(),
                diverged.len(),
                r.runs.len() - diverged.len(),
                cols.map(csv_num).join(",")
            ));
        }
    }
    write_text(&out.join("stats.csv"), &s)?;
    let mut c = String::from(
        "setting,baseline,metric,claimed,pairs,mean_difference,paired_t,paired_df,paired_p,welch_t,welch_df,welch_p,verdict\n",
    );
    for claim in &plan.claims {
        let cmp = compare(claim, results);
        let t = |r: &std::result::Result<TTest, String>| {
            r.as_ref()
                .map_or([f64::NAN; 3], |t| [t.t, t.df, t.p])
                .map(csv_num)
                .join(",")
        };
        c.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            claim.setting,
            claim.baseline,
            claim.metric.name(),
            match claim.better {
                Better::Lower => "lower",
                Better::Higher => "higher",
            },
            cmp.pairs,
            csv_num(cmp.mean_difference),
            t(&cmp.paired),
            t(&cmp.welch),
            cmp.verdict.word()
        ));
    }
    write_text(&out.join("comparisons.csv"), &c)
}

/// `summary.md`: the description, the per-setting statistics, the diverged runs, the tests and
/// one sentence per claim.
pub(crate) fn summary_markdown(plan: &Plan, results: &[SettingResult]) -> String {
    if !plan.groups.is_empty() || !plan.metrics.is_empty() || plan.early_stopping.is_some() {
        return grouped_summary_markdown(plan, results);
    }
    let metrics = Metric::all(plan.accuracy);
    let mut s = format!("# {}\n\n{}\n\n{}\n\n", plan.name, plan.description, plan.caveat);
    s.push_str("## Verdicts\n\n");
    if plan.claims.is_empty() {
        s.push_str("This experiment tests no claim of a paper.\n");
    }
    let comparisons: Vec<Comparison> = plan.claims.iter().map(|c| compare(c, results)).collect();
    for c in &comparisons {
        s.push_str(&format!("- {}\n", sentence(c)));
    }
    s.push_str(&format!(
        "\nTwo-sided tests at 5 %, paired over the repeats (repeat k of every setting trains from seed + k); \
         {} repeat(s) per setting; no correction for testing several claims.\n\n",
        plan.repeats
    ));
    s.push_str("## Per setting\n\nmean ± sd [95 % CI of the mean] over the repeats\n\n| setting | weight density |");
    for m in metrics {
        s.push_str(&format!(" {} |", m.name()));
    }
    s.push_str("\n|---|---|");
    s.push_str(&"---|".repeat(metrics.len()));
    s.push('\n');
    let mut diverged_runs = Vec::new();
    for r in results {
        s.push_str(&format!("| {} | {:.4} |", r.label, r.density));
        for &m in metrics {
            let (d, diverged) = setting_stats(r, m);
            for k in diverged {
                diverged_runs.push(format!("{} repeat {k} ({})", r.label, m.name()));
            }
            s.push_str(&match d {
                None => " — |".to_string(),
                Some(d) if d.n < 2 => format!(" {} (n = 1) |", sig(d.mean)),
                Some(d) => format!(
                    " {} ± {} [{}, {}] |",
                    sig(d.mean),
                    sig(d.sd),
                    sig(d.ci_low),
                    sig(d.ci_high)
                ),
            });
        }
        s.push('\n');
    }
    s.push_str("\n## Diverged runs\n\n");
    if diverged_runs.is_empty() {
        s.push_str("None: every run's metrics are finite.\n");
    } else {
        s.push_str(&format!(
            "{} run metric(s) not finite, left out of the statistics above and of the tests: {}.\n",
            diverged_runs.len(),
            diverged_runs.join(", ")
        ));
    }
    if !comparisons.is_empty() {
        s.push_str("\n## Tests\n\n| setting | baseline | metric | claimed | pairs | mean difference | paired t (df), p | Welch t (df), p | verdict |\n|---|---|---|---|---|---|---|---|---|\n");
        let t = |r: &std::result::Result<TTest, String>| match r {
            Ok(t) => format!("{:.3} ({:.1}), {}", t.t, t.df, fmt_p(t.p)),
            Err(why) => format!("— ({why})"),
        };
        for c in &comparisons {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                c.claim.setting,
                c.claim.baseline,
                c.claim.metric.name(),
                match c.claim.better {
                    Better::Lower => "lower",
                    Better::Higher => "higher",
                },
                c.pairs,
                sig(c.mean_difference),
                t(&c.paired),
                t(&c.welch),
                c.verdict.word()
            ));
        }
    }
    s.push_str("\nTables as CSV: `stats.csv`, `comparisons.csv`; every epoch of every run: `history.csv`, `runs/`.\n");
    s
}

/// A statistics cell: `mean ± sd [ci]`, `mean (n = 1)` or `—`.
fn stat_cell(d: Option<Describe>) -> String {
    match d {
        None => "—".to_string(),
        Some(d) if d.n < 2 => format!("{} (n = 1)", sig(d.mean)),
        Some(d) => format!(
            "{} ± {} [{}, {}]",
            sig(d.mean),
            sig(d.sd),
            sig(d.ci_low),
            sig(d.ci_high)
        ),
    }
}

/// One run's value of `m`: epochs as integers, the rest as [`sig`].
fn run_value(m: Metric, v: f64) -> String {
    if matches!(m, Metric::EpochOfMinValLoss | Metric::EpochsTrained) && v.is_finite() {
        format!("{v:.0}")
    } else {
        sig(v)
    }
}

/// `summary.md` of a plan with setting groups, its own metrics or early stopping: the verdicts,
/// the statistics per group (each with the metrics of its task), the early-stopping rule and
/// where each run stopped, a per-run table, the diverged runs and the tests.
fn grouped_summary_markdown(plan: &Plan, results: &[SettingResult]) -> String {
    let mut s = format!("# {}\n\n{}\n\n{}\n\n", plan.name, plan.description, plan.caveat);
    // Groups in order; a plan without groups is one group of every setting.
    let all = crate::jobs::SettingGroup {
        name: String::new(),
        settings: plan.settings.clone(),
        accuracy: plan.accuracy,
    };
    let groups: Vec<&crate::jobs::SettingGroup> = if plan.groups.is_empty() {
        vec![&all]
    } else {
        plan.groups.iter().collect()
    };
    let heading = |s: &mut String, g: &crate::jobs::SettingGroup| {
        if !g.name.is_empty() {
            s.push_str(&format!("### {}\n\n", g.name));
        }
    };
    let comparisons: Vec<Comparison> = plan.claims.iter().map(|c| compare(c, results)).collect();
    s.push_str("## Verdicts\n\n");
    if plan.claims.is_empty() {
        s.push_str("This experiment tests no claim of a paper.\n\n");
    }
    for g in &groups {
        let mine: Vec<&Comparison> = comparisons
            .iter()
            .filter(|c| g.settings.contains(&c.claim.setting))
            .collect();
        if mine.is_empty() {
            continue;
        }
        heading(&mut s, g);
        for c in mine {
            s.push_str(&format!("- {}\n", sentence(c)));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "Two-sided tests at 5 %, paired over the repeats (repeat k of every setting trains from seed + k); \
         {} repeat(s) per setting; no correction for testing several claims.\n\n",
        plan.repeats
    ));
    s.push_str("## Per setting\n\nmean ± sd [95 % CI of the mean] over the repeats\n\n");
    let mut diverged_runs = Vec::new();
    for g in &groups {
        heading(&mut s, g);
        let members: Vec<&SettingResult> = results.iter().filter(|r| g.settings.contains(&r.label)).collect();
        let Some(first) = members.first() else {
            s.push_str("No finished run.\n\n");
            continue;
        };
        let metrics = plan.metrics_of(&first.label);
        s.push_str("| setting | weight density |");
        for m in &metrics {
            s.push_str(&format!(" {} |", m.name()));
        }
        s.push_str("\n|---|---|");
        s.push_str(&"---|".repeat(metrics.len()));
        s.push('\n');
        for r in &members {
            s.push_str(&format!("| {} | {:.4} |", r.label, r.density));
            for &m in &metrics {
                let (d, diverged) = setting_stats(r, m);
                for k in diverged {
                    diverged_runs.push(format!("{} repeat {k} ({})", r.label, m.name()));
                }
                s.push_str(&format!(" {} |", stat_cell(d)));
            }
            s.push('\n');
        }
        s.push('\n');
    }
    let stop = |h: &[EpochRecord]| -> &'static str {
        let Some(rule) = &plan.early_stopping else {
            return "";
        };
        match rule.stop_epoch(h.iter().map(|e| e.val_loss)) {
            Some((e, StopReason::Plateau)) if e == h.len() => "plateau",
            Some((e, StopReason::Cap)) if e == h.len() => "cap",
            _ => "not by this rule",
        }
    };
    if let Some(rule) = &plan.early_stopping {
        let runs: Vec<(&str, usize, &Vec<EpochRecord>)> = results
            .iter()
            .flat_map(|r| r.runs.iter().enumerate().map(move |(k, h)| (r.label.as_str(), k, h)))
            .collect();
        let capped: Vec<String> = runs
            .iter()
            .filter(|(_, _, h)| stop(h) != "plateau")
            .map(|(l, k, h)| format!("{l} repeat {k} ({})", stop(h)))
            .collect();
        s.push_str(&format!(
            "## Early stopping\n\nEvery run trained until its validation loss had not improved by {} % (relative) for {} epochs, \
             not before epoch {} and at most {} epochs; its metrics are those of its best-validation epoch (the epoch of min val loss: \
             the weights early stopping keeps), the epoch of min val loss is its epochs to converge. \
             {} of {} run(s) stopped on a plateau.",
            100.0 * rule.min_delta,
            rule.patience,
            rule.min_epochs,
            rule.max_epochs,
            runs.len() - capped.len(),
            runs.len()
        ));
        if capped.is_empty() {
            s.push('\n');
        } else {
            s.push_str(&format!(
                " Not stopped on a plateau (at the cap the loss was still falling: their numbers are bounds, not converged values): {}.\n",
                capped.join(", ")
            ));
        }
        s.push('\n');
    }
    if !plan.metrics.is_empty() {
        s.push_str("## Per run\n\n");
        for g in &groups {
            let members: Vec<&SettingResult> = results.iter().filter(|r| g.settings.contains(&r.label)).collect();
            let Some(first) = members.first() else { continue };
            heading(&mut s, g);
            let metrics = plan.metrics_of(&first.label);
            s.push_str("| setting | repeat |");
            for m in &metrics {
                s.push_str(&format!(" {} |", m.name()));
            }
            if plan.early_stopping.is_some() {
                s.push_str(" stopped by |");
            }
            s.push_str("\n|---|---|");
            s.push_str(&"---|".repeat(metrics.len() + usize::from(plan.early_stopping.is_some())));
            s.push('\n');
            for r in &members {
                for (k, h) in r.runs.iter().enumerate() {
                    s.push_str(&format!("| {} | {k} |", r.label));
                    for &m in &metrics {
                        s.push_str(&format!(" {} |", run_value(m, m.of(h))));
                    }
                    if plan.early_stopping.is_some() {
                        s.push_str(&format!(" {} |", stop(h)));
                    }
                    s.push('\n');
                }
            }
            s.push('\n');
        }
    }
    s.push_str("## Diverged runs\n\n");
    if diverged_runs.is_empty() {
        s.push_str("None: every run's metrics are finite.\n");
    } else {
        s.push_str(&format!(
            "{} run metric(s) not finite, left out of the statistics above and of the tests: {}.\n",
            diverged_runs.len(),
            diverged_runs.join(", ")
        ));
    }
    if !comparisons.is_empty() {
        s.push_str("\n## Tests\n\n| setting | baseline | metric | claimed | pairs | mean difference | paired t (df), p | Welch t (df), p | verdict |\n|---|---|---|---|---|---|---|---|---|\n");
        let t = |r: &std::result::Result<TTest, String>| match r {
            Ok(t) => format!("{:.3} ({:.1}), {}", t.t, t.df, fmt_p(t.p)),
            Err(why) => format!("— ({why})"),
        };
        for c in &comparisons {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                c.claim.setting,
                c.claim.baseline,
                c.claim.metric.name(),
                match c.claim.better {
                    Better::Lower => "lower",
                    Better::Higher => "higher",
                },
                c.pairs,
                sig(c.mean_difference),
                t(&c.paired),
                t(&c.welch),
                c.verdict.word()
            ));
        }
    }
    let plots = if plan.groups.is_empty() {
        String::new()
    } else {
        format!(
            "; curves per group: {}",
            plan.groups
                .iter()
                .map(|g| format!("`loss_{}.png`", g.name))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    s.push_str(&format!(
        "\nTables as CSV: `stats.csv`, `comparisons.csv`; every epoch of every run: `history.csv`, `runs/`{plots}.\n"
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(final_loss: f64) -> Vec<EpochRecord> {
        vec![EpochRecord {
            epoch: 1,
            train_loss: 1.0,
            train_acc: f64::NAN,
            val_loss: final_loss,
            val_acc: f64::NAN,
        }]
    }

    fn setting(label: &str, losses: &[f64]) -> SettingResult {
        SettingResult {
            label: label.into(),
            density: 1.0,
            runs: losses.iter().map(|&l| run(l)).collect(),
        }
    }

    fn claim() -> Claim {
        Claim::new("bio beats random", "bio", "random", Metric::FinalValLoss, Better::Lower)
    }

    #[test]
    fn verdicts_follow_the_paired_test_and_the_direction() {
        let clear_win = [
            setting("bio", &[0.10, 0.12, 0.11, 0.13, 0.09]),
            setting("random", &[0.20, 0.23, 0.21, 0.22, 0.19]),
        ];
        assert_eq!(compare(&claim(), &clear_win).verdict, Verdict::Holds);
        let clear_loss = [clear_win[1].clone(), clear_win[0].clone()].map(|mut r| {
            r.label = if r.label == "bio" {
                "random".into()
            } else {
                "bio".into()
            };
            r
        });
        assert_eq!(compare(&claim(), &clear_loss).verdict, Verdict::Fails);
        let noise = [
            setting("bio", &[0.10, 0.30, 0.20, 0.15]),
            setting("random", &[0.25, 0.12, 0.18, 0.22]),
        ];
        let c = compare(&claim(), &noise);
        assert!(
            matches!(c.verdict, Verdict::Undecided(ref why) if why.contains("n = 4")),
            "{c:?}"
        );
        assert!(sentence(&c).contains("**undecided**"), "{}", sentence(&c));
    }

    #[test]
    fn one_repeat_and_diverged_runs_are_undecided_and_named() {
        let one = [setting("bio", &[0.1]), setting("random", &[0.2])];
        let c = compare(&claim(), &one);
        assert!(
            matches!(c.verdict, Verdict::Undecided(ref why) if why.contains("1 pair")),
            "{c:?}"
        );
        let diverged = [
            setting("bio", &[0.1, f64::NAN, 0.12]),
            setting("random", &[0.2, 0.21, 0.25]),
        ];
        let c = compare(&claim(), &diverged);
        assert_eq!(c.pairs, 2);
        let plan = Plan {
            name: "t".into(),
            description: String::new(),
            caveat: String::new(),
            settings: vec!["bio".into(), "random".into()],
            repeats: 3,
            accuracy: false,
            metrics: Vec::new(),
            claims: vec![claim()],
            groups: Vec::new(),
            early_stopping: None,
        };
        let md = summary_markdown(&plan, &diverged);
        assert!(md.contains("bio repeat 1 (final val loss)"), "{md}");
        assert!(
            !md.contains("acc"),
            "a regression summary has no accuracy column:\n{md}"
        );
    }
}
