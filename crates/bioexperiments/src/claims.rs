//! The statistics of a finished reproduction and the verdict on each claim it tests:
//! `summary.md`, `stats.csv` and `comparisons.csv`.
//!
//! Per setting and metric: mean ± sample sd and the 95 % CI of the mean over the repeats
//! ([`crate::stats::describe`]). Per claim (a setting against a baseline on one metric, with the
//! direction the paper claims): the paired t-test over the repeats (repeat `k` of both settings
//! trains from the same seed, so the runs are paired), Welch's t-test for reference, and the
//! 95 % CI of the mean paired difference `d̄ ± t_{0.975, n−1} · sd(d) / √n`,
//! `d_k = setting_k − baseline_k`.
//!
//! The verdict of a superiority claim ([`ClaimTest::Superiority`], the default), two-sided at
//! 5 %: **holds** (significant in the claimed direction), **fails** (significant the other way)
//! or **undecided** (not significant, or no test possible, with the reason). A non-inferiority
//! claim ([`ClaimTest::NonInferiority`], "not worse by more than the margin δ") reads the CI
//! with the differences signed so that better is positive (`g_k = d_k` when higher is better,
//! `−d_k` when lower is): **holds** when the whole CI of `ḡ` lies above `−δ` (a one-sided test at
//! 2.5 %), **fails** when it lies wholly below `−δ` (worse by more than the margin), and is
//! **undecided** when it contains `−δ` or cannot be computed (fewer than two pairs, all
//! differences equal). No correction for testing several claims is applied; the p-values are all
//! shown.
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

/// What a claim asserts about `setting − baseline` (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClaimTest {
    /// The setting is better in the claimed direction: the paired t-test.
    #[default]
    Superiority,
    /// The setting is not worse than the baseline by more than `margin`, in the metric's units
    /// (0.01 = one percentage point of accuracy): the 95 % CI of the mean paired difference.
    NonInferiority {
        /// The largest loss that still counts as "no loss" (> 0).
        margin: f64,
    },
}

impl ClaimTest {
    fn is_superiority(&self) -> bool {
        *self == ClaimTest::Superiority
    }
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
    /// Which way the claim says it moves (for a non-inferiority claim: which way is better).
    pub better: Better,
    /// Superiority (the default, not written to `plan.toml`, so the plans of the superiority
    /// targets keep their bytes) or non-inferiority.
    #[serde(default, skip_serializing_if = "ClaimTest::is_superiority")]
    pub test: ClaimTest,
}

impl Claim {
    /// A superiority claim about `setting` vs `baseline`.
    pub fn new(statement: &str, setting: &str, baseline: &str, metric: Metric, better: Better) -> Self {
        Claim {
            statement: statement.into(),
            setting: setting.into(),
            baseline: baseline.into(),
            metric,
            better,
            test: ClaimTest::Superiority,
        }
    }

    /// A non-inferiority claim: `setting` is not worse than `baseline` on `metric` (`better`
    /// says which way is better) by more than `margin` (metric units).
    ///
    /// # Errors
    /// A margin that is not finite and > 0.
    pub fn non_inferior(
        statement: &str,
        setting: &str,
        baseline: &str,
        metric: Metric,
        better: Better,
        margin: f64,
    ) -> Result<Self> {
        if !(margin.is_finite() && margin > 0.0) {
            return Err(crate::error::invalid("margin", margin, "must be finite and > 0"));
        }
        Ok(Claim {
            test: ClaimTest::NonInferiority { margin },
            ..Claim::new(statement, setting, baseline, metric, better)
        })
    }

    /// The `claimed` column: `lower`, `higher`, or for non-inferiority e.g.
    /// `not lower by > 0.01`.
    fn claimed(&self) -> String {
        match (self.test, self.better) {
            (ClaimTest::Superiority, Better::Lower) => "lower".into(),
            (ClaimTest::Superiority, Better::Higher) => "higher".into(),
            (ClaimTest::NonInferiority { margin }, Better::Higher) => format!("not lower by > {margin}"),
            (ClaimTest::NonInferiority { margin }, Better::Lower) => format!("not higher by > {margin}"),
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
    /// The 95 % CI of that mean, `(low, high)` (`NaN`s with fewer than two pairs).
    pub difference_ci: (f64, f64),
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
            difference_ci: (f64::NAN, f64::NAN),
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
    let diffs: Vec<f64> = pa.iter().zip(&pb).map(|(x, y)| x - y).collect();
    let difference_ci = describe(&diffs).map_or((f64::NAN, f64::NAN), |d| (d.ci_low, d.ci_high));
    let verdict = match claim.test {
        ClaimTest::Superiority => superiority_verdict(claim, &paired, pairs),
        ClaimTest::NonInferiority { margin } => non_inferiority_verdict(claim.better, margin, &diffs, difference_ci),
    };
    Comparison {
        claim: claim.clone(),
        pairs,
        mean_difference,
        difference_ci,
        paired,
        welch,
        verdict,
    }
}

/// The verdict of a superiority claim from the paired t-test.
fn superiority_verdict(claim: &Claim, paired: &std::result::Result<TTest, String>, pairs: usize) -> Verdict {
    match paired {
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
    }
}

/// The verdict of a non-inferiority claim with margin `margin` from the 95 % CI `ci` of the mean
/// of `diffs` (`setting − baseline`), signed so that better is positive.
fn non_inferiority_verdict(better: Better, margin: f64, diffs: &[f64], ci: (f64, f64)) -> Verdict {
    let n = diffs.len();
    if n < 2 {
        return Verdict::Undecided(format!("no confidence interval with {n} pair(s)"));
    }
    if diffs.iter().all(|&d| d == diffs[0]) {
        return Verdict::Undecided(format!(
            "all {n} differences are equal: no spread to estimate a confidence interval from"
        ));
    }
    // Gains: the differences with better = positive.
    let (lo, hi) = match better {
        Better::Higher => ci,
        Better::Lower => (-ci.1, -ci.0),
    };
    if lo > -margin {
        Verdict::Holds
    } else if hi < -margin {
        Verdict::Fails
    } else {
        Verdict::Undecided(format!(
            "the 95 % CI of the mean difference, [{}, {}], contains the margin −{} (n = {n} pairs)",
            sig(ci.0),
            sig(ci.1),
            sig(margin)
        ))
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
        ..
    } = &c.claim;
    let what = format!(
        "{statement} ({setting} vs {baseline}: {} {})",
        metric.name(),
        c.claim.claimed()
    );
    if let ClaimTest::NonInferiority { margin } = c.claim.test {
        let ci = format!(
            "95 % CI of the mean difference [{}, {}], margin −{}, n = {} pairs, mean difference {}",
            sig(c.difference_ci.0),
            sig(c.difference_ci.1),
            sig(margin),
            c.pairs,
            sig(c.mean_difference)
        );
        return match &c.verdict {
            Verdict::Holds => format!("{what}: **holds** at this scale: no loss beyond the margin ({ci})."),
            Verdict::Fails => format!("{what}: **fails** at this scale: worse by more than the margin ({ci})."),
            Verdict::Undecided(why) => format!("{what}: **undecided** at this scale ({why})."),
        };
    }
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
        "setting,baseline,metric,claimed,pairs,mean_difference,diff_ci95_low,diff_ci95_high,paired_t,paired_df,paired_p,welch_t,welch_df,welch_p,verdict\n",
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
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            claim.setting,
            claim.baseline,
            claim.metric.name(),
            claim.claimed(),
            cmp.pairs,
            csv_num(cmp.mean_difference),
            csv_num(cmp.difference_ci.0),
            csv_num(cmp.difference_ci.1),
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
         {} repeat(s) per setting; no correction for testing several claims.\n",
        plan.repeats
    ));
    if plan
        .claims
        .iter()
        .any(|c| matches!(c.test, ClaimTest::NonInferiority { .. }))
    {
        s.push_str(
            "A non-inferiority claim (\"not worse by more than the margin\") holds when the whole 95 % CI of the mean paired \
             difference lies on the better side of −margin (a one-sided test at 2.5 %), fails when it lies wholly on the \
             worse side, and is undecided when it contains −margin.\n",
        );
    }
    s.push('\n');
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
        s.push_str("\n## Tests\n\n| setting | baseline | metric | claimed | pairs | mean difference [95 % CI] | paired t (df), p | Welch t (df), p | verdict |\n|---|---|---|---|---|---|---|---|---|\n");
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
                c.claim.claimed(),
                c.pairs,
                if c.difference_ci.0.is_nan() {
                    sig(c.mean_difference)
                } else {
                    format!(
                        "{} [{}, {}]",
                        sig(c.mean_difference),
                        sig(c.difference_ci.0),
                        sig(c.difference_ci.1)
                    )
                },
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

    fn accuracies(label: &str, accs: &[f64]) -> SettingResult {
        SettingResult {
            label: label.into(),
            density: 1.0,
            runs: accs
                .iter()
                .map(|&a| {
                    vec![EpochRecord {
                        epoch: 1,
                        train_loss: 1.0,
                        train_acc: a,
                        val_loss: 1.0 - a,
                        val_acc: a,
                    }]
                })
                .collect(),
        }
    }

    fn with_differences(d: &[f64]) -> [SettingResult; 2] {
        let dense = [0.90, 0.91, 0.905, 0.895, 0.9];
        let sparse: Vec<f64> = dense.iter().zip(d).map(|(a, d)| a + d).collect();
        [accuracies("id=0.6", &sparse), accuracies("dense", &dense[..d.len()])]
    }

    fn no_loss(better: Better, metric: Metric) -> Claim {
        Claim::non_inferior("60 % removed without loss", "id=0.6", "dense", metric, better, 0.01).unwrap()
    }

    /// Holds when the CI of the mean difference is above −margin, fails when it is below,
    /// undecided when it straddles −margin or cannot be computed.
    #[test]
    fn non_inferiority_reads_the_ci_against_the_margin() {
        let claim = no_loss(Better::Higher, Metric::FinalValAcc);
        // Slightly worse, tightly: CI ≈ [−0.0031, −0.0009], above −0.01.
        let c = compare(&claim, &with_differences(&[-0.002, -0.001, -0.003, -0.002]));
        assert_eq!(c.verdict, Verdict::Holds, "{c:?}");
        assert!(c.difference_ci.0 > -0.01 && c.difference_ci.1 < 0.0, "{c:?}");
        assert!(sentence(&c).contains("**holds**"), "{}", sentence(&c));
        // Clearly worse than the margin.
        let c = compare(&claim, &with_differences(&[-0.05, -0.04, -0.045, -0.05]));
        assert_eq!(c.verdict, Verdict::Fails, "{c:?}");
        // Noisy: the CI contains −0.01.
        let c = compare(&claim, &with_differences(&[-0.03, 0.02, -0.01, 0.015]));
        assert!(
            matches!(c.verdict, Verdict::Undecided(ref why) if why.contains("contains the margin")),
            "{c:?}"
        );
        // Better by a lot is non-inferior too (the paired t-test would also call it superior).
        let c = compare(&claim, &with_differences(&[0.03, 0.031, 0.029, 0.03]));
        assert_eq!(c.verdict, Verdict::Holds);
        for (d, why) in [(&[-0.001][..], "1 pair"), (&[-0.002, -0.002, -0.002][..], "equal")] {
            let c = compare(&claim, &with_differences(d));
            assert!(
                matches!(c.verdict, Verdict::Undecided(ref w) if w.contains(why)),
                "{c:?}"
            );
        }
    }

    /// Lower-is-better metrics flip the sign: a loss higher by more than the margin fails.
    #[test]
    fn non_inferiority_on_a_lower_is_better_metric() {
        let claim = no_loss(Better::Lower, Metric::FinalValLoss);
        // val_loss = 1 − acc: accuracies 0.002 lower are losses 0.002 higher.
        let c = compare(&claim, &with_differences(&[-0.002, -0.001, -0.003, -0.002]));
        assert_eq!(c.verdict, Verdict::Holds, "{c:?}");
        let c = compare(&claim, &with_differences(&[-0.05, -0.04, -0.045, -0.05]));
        assert_eq!(c.verdict, Verdict::Fails, "{c:?}");
        assert_eq!(claim.claimed(), "not higher by > 0.01");
        for bad in [0.0, -0.01, f64::NAN, f64::INFINITY] {
            assert!(Claim::non_inferior("x", "a", "b", Metric::FinalValAcc, Better::Higher, bad).is_err());
        }
    }

    /// The plan of a superiority target keeps its bytes (no `test` key); a non-inferiority claim
    /// round-trips through TOML; the summary and the CSV say which test was made.
    #[test]
    fn non_inferiority_in_plans_summaries_and_csv() {
        let plain = crate::common::toml_of(&claim()).unwrap();
        assert!(!plain.contains("test"), "{plain}");
        let ni = no_loss(Better::Higher, Metric::MaxValAcc);
        let text = crate::common::toml_of(&ni).unwrap();
        assert!(
            text.contains("non_inferiority") && text.contains("margin = 0.01"),
            "{text}"
        );
        assert_eq!(toml::from_str::<Claim>(&text).unwrap(), ni);
        assert_eq!(toml::from_str::<Claim>(&plain).unwrap(), claim());
        let plan = Plan {
            name: "t".into(),
            description: String::new(),
            caveat: String::new(),
            settings: vec!["id=0.6".into(), "dense".into()],
            repeats: 4,
            accuracy: true,
            metrics: Vec::new(),
            claims: vec![ni],
            groups: Vec::new(),
            early_stopping: None,
        };
        let results = with_differences(&[-0.002, -0.001, -0.003, -0.002]);
        let md = summary_markdown(&plan, &results);
        assert!(md.contains("non-inferiority claim"), "{md}");
        assert!(md.contains("not lower by > 0.01"), "{md}");
        let dir = tempfile::tempdir().unwrap();
        write_statistics(dir.path(), &plan, &results).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("comparisons.csv")).unwrap();
        let row = csv.lines().nth(1).unwrap();
        assert!(row.contains("not lower by > 0.01") && row.ends_with(",holds"), "{csv}");
    }
}
