//! The statistics of the reproductions' summaries: mean, sample standard deviation, the 95 %
//! confidence interval of a mean, Welch's and the paired t-test.
//!
//! * sample sd with `ddof = 1`: `sd = sqrt(Σ(x − x̄)² / (n − 1))`;
//! * 95 % CI of the mean: `x̄ ± t_{0.975, n−1} · sd / √n`;
//! * Welch: `t = (x̄_a − x̄_b) / sqrt(s_a²/n_a + s_b²/n_b)`, Welch–Satterthwaite
//!   `df = (s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)²/(n_a − 1) + (s_b²/n_b)²/(n_b − 1))`
//!   (SciPy's `ttest_ind(equal_var=False)`);
//! * paired: the one-sample t-test of the differences `d = a − b`, `t = d̄ / (s_d / √n)`,
//!   `df = n − 1` (SciPy's `ttest_rel`);
//! * p-values are two-sided, `p = 2 · F(−|t|; df)` with `F` the Student t CDF.
//!
//! The Student t CDF and quantile come from `statrs` (regularised incomplete beta function and
//! its inverse): special functions are easy to get subtly wrong, and `statrs` is kept and tested
//! against reference values. `tests/integration/stats_reference.rs` checks every function here against SciPy
//! (fixture written by `xtask/python/stats_reference.py`, `cargo xtask validate`).
//!
//! A test that cannot be computed is an [`Error::Undecidable`] naming why (too few values,
//! zero variance, a non-finite value): the summaries turn it into an "undecided" verdict, never a
//! number that looks like a result.

use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::error::{Error, Result, Undecidable};

/// Mean, sample sd and 95 % confidence interval of a set of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Describe {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (`ddof = 1`); `NaN` for one value.
    pub sd: f64,
    /// Lower end of the 95 % confidence interval of the mean; `NaN` for one value.
    pub ci_low: f64,
    /// Upper end of the 95 % confidence interval of the mean; `NaN` for one value.
    pub ci_high: f64,
}

/// A t statistic, its degrees of freedom and two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TTest {
    /// The t statistic (positive when the first sample's mean is larger).
    pub t: f64,
    /// Degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
}

fn undecidable(test: &'static str, reason: Undecidable) -> Error {
    Error::Undecidable { test, reason }
}

fn check_finite(test: &'static str, xs: &[f64]) -> Result<()> {
    match xs.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(undecidable(
            test,
            Undecidable::NonFinite {
                index,
                value: xs[index],
            },
        )),
        None => Ok(()),
    }
}

fn check_len(test: &'static str, xs: &[f64], need: usize) -> Result<()> {
    if xs.len() < need {
        return Err(undecidable(test, Undecidable::TooFew { n: xs.len(), need }));
    }
    check_finite(test, xs)
}

/// The arithmetic mean.
///
/// # Errors
/// No values, or a non-finite one.
pub fn mean(xs: &[f64]) -> Result<f64> {
    check_len("mean", xs, 1)?;
    Ok(xs.iter().sum::<f64>() / xs.len() as f64)
}

/// The sample variance (`ddof = 1`), two-pass.
fn sample_variance(test: &'static str, xs: &[f64]) -> Result<f64> {
    check_len(test, xs, 2)?;
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    Ok(xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64)
}

/// The sample standard deviation (`ddof = 1`).
///
/// # Errors
/// Fewer than two values, or a non-finite one.
pub fn sample_sd(xs: &[f64]) -> Result<f64> {
    Ok(sample_variance("sample sd", xs)?.sqrt())
}

fn students_t(test: &'static str, df: f64) -> Result<StudentsT> {
    StudentsT::new(0.0, 1.0, df).map_err(|_| undecidable(test, Undecidable::DegreesOfFreedom { df }))
}

/// The `p`-quantile of Student's t with `df` degrees of freedom (SciPy's `t.ppf`).
///
/// # Errors
/// `p` outside (0, 1) or `df` not positive.
pub fn t_quantile(p: f64, df: f64) -> Result<f64> {
    if !(p > 0.0 && p < 1.0) {
        return Err(undecidable("t quantile", Undecidable::Probability { p }));
    }
    Ok(students_t("t quantile", df)?.inverse_cdf(p))
}

/// The CDF of Student's t with `df` degrees of freedom at `x` (SciPy's `t.cdf`).
///
/// # Errors
/// `df` not positive.
pub fn t_cdf(x: f64, df: f64) -> Result<f64> {
    Ok(students_t("t cdf", df)?.cdf(x))
}

/// Two-sided p-value of `t` with `df` degrees of freedom: `2 · F(−|t|)`, computed in the lower
/// tail so that small p-values keep their relative precision.
fn two_sided_p(test: &'static str, t: f64, df: f64) -> Result<f64> {
    Ok((2.0 * students_t(test, df)?.cdf(-t.abs())).min(1.0))
}

/// Mean, sample sd and the 95 % confidence interval of the mean (`t_{0.975, n−1}`); sd and
/// the interval are `NaN` for a single value (there is no spread to estimate).
///
/// # Errors
/// No values, or a non-finite one.
pub fn describe(xs: &[f64]) -> Result<Describe> {
    let m = mean(xs)?;
    let n = xs.len();
    if n < 2 {
        return Ok(Describe {
            n,
            mean: m,
            sd: f64::NAN,
            ci_low: f64::NAN,
            ci_high: f64::NAN,
        });
    }
    let sd = sample_sd(xs)?;
    let half = t_quantile(0.975, (n - 1) as f64)? * sd / (n as f64).sqrt();
    Ok(Describe {
        n,
        mean: m,
        sd,
        ci_low: m - half,
        ci_high: m + half,
    })
}

/// Welch's two-sample t-test (unequal variances; SciPy's `ttest_ind(a, b, equal_var=False)`).
///
/// # Errors
/// Fewer than two values in either sample, a non-finite value, or both samples without
/// variance (the statistic is 0/0).
pub fn welch_t_test(a: &[f64], b: &[f64]) -> Result<TTest> {
    const TEST: &str = "Welch t-test";
    let (va, vb) = (sample_variance(TEST, a)?, sample_variance(TEST, b)?);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (sa, sb) = (va / na, vb / nb);
    if sa + sb == 0.0 {
        return Err(undecidable(TEST, Undecidable::ZeroVariance));
    }
    let diff = a.iter().sum::<f64>() / na - b.iter().sum::<f64>() / nb;
    let t = diff / (sa + sb).sqrt();
    let df = (sa + sb).powi(2) / (sa * sa / (na - 1.0) + sb * sb / (nb - 1.0));
    Ok(TTest {
        t,
        df,
        p: two_sided_p(TEST, t, df)?,
    })
}

/// The paired t-test of `a` against `b` (SciPy's `ttest_rel(a, b)`): a one-sample test of the
/// differences `a[i] − b[i]`.
///
/// # Errors
/// Samples of different lengths, fewer than two pairs, a non-finite value, or differences
/// without variance.
pub fn paired_t_test(a: &[f64], b: &[f64]) -> Result<TTest> {
    const TEST: &str = "paired t-test";
    if a.len() != b.len() {
        return Err(undecidable(
            TEST,
            Undecidable::LengthMismatch { a: a.len(), b: b.len() },
        ));
    }
    check_finite(TEST, a)?;
    check_finite(TEST, b)?;
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let var = sample_variance(TEST, &d)?;
    if var == 0.0 {
        return Err(undecidable(TEST, Undecidable::ZeroVariance));
    }
    let n = d.len() as f64;
    let t = (d.iter().sum::<f64>() / n) / (var / n).sqrt();
    let df = n - 1.0;
    Ok(TTest {
        t,
        df,
        p: two_sided_p(TEST, t, df)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_cases_are_typed_errors() {
        let too_few = |e: Error| {
            matches!(
                e,
                Error::Undecidable {
                    reason: Undecidable::TooFew { .. },
                    ..
                }
            )
        };
        assert!(too_few(mean(&[]).unwrap_err()));
        assert!(too_few(sample_sd(&[1.0]).unwrap_err()));
        assert!(too_few(welch_t_test(&[1.0], &[1.0, 2.0]).unwrap_err()));
        assert!(too_few(paired_t_test(&[1.0], &[2.0]).unwrap_err()));
        assert!(matches!(
            paired_t_test(&[1.0, 2.0], &[0.0, 1.0]).unwrap_err(),
            Error::Undecidable {
                reason: Undecidable::ZeroVariance,
                ..
            }
        ));
        assert!(matches!(
            welch_t_test(&[1.0, 1.0], &[2.0, 2.0]).unwrap_err(),
            Error::Undecidable {
                reason: Undecidable::ZeroVariance,
                ..
            }
        ));
        let e = welch_t_test(&[1.0, f64::NAN], &[2.0, 3.0]).unwrap_err();
        assert!(e.to_string().contains("NaN"), "{e}");
        assert!(paired_t_test(&[1.0, 2.0, 3.0], &[1.0, 2.0]).is_err());
        assert!(t_quantile(1.0, 3.0).is_err());
        assert!(t_quantile(0.5, 0.0).is_err());
        let one = describe(&[2.5]).unwrap();
        assert_eq!((one.n, one.mean), (1, 2.5));
        assert!(one.sd.is_nan() && one.ci_low.is_nan());
    }

    #[test]
    fn the_sign_of_t_follows_the_first_sample() {
        let t = welch_t_test(&[3.0, 4.0, 5.0], &[1.0, 2.0, 2.5]).unwrap();
        assert!(t.t > 0.0 && t.p > 0.0 && t.p < 1.0);
        let p = paired_t_test(&[1.0, 2.0, 2.5], &[3.0, 4.0, 5.0]).unwrap();
        assert!(p.t < 0.0);
    }
}
