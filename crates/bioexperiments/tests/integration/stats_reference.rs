//! `bioexperiments::stats` against SciPy: the fixture `tests/fixtures/stats/stats_reference.json`
//! is written by `xtask/python/stats_reference.py` (`cargo xtask validate`) from
//! `scipy.stats.ttest_ind(equal_var=False)`, `ttest_rel`, `t.ppf` and `t.cdf`; every value must
//! agree within 1e-10 relative.

use bioexperiments::stats::{describe, paired_t_test, t_cdf, t_quantile, welch_t_test, TTest};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stats/stats_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(num).collect()
}

#[track_caller]
fn close(got: f64, want: f64, what: &str) {
    let scale = want.abs().max(1e-300);
    assert!(
        (got - want).abs() <= 1e-10 * scale,
        "{what}: got {got:e}, SciPy {want:e} (relative error {:e})",
        (got - want).abs() / scale
    );
}

fn check_test(got: TTest, want: &Value, what: &str) {
    close(got.t, num(&want["t"]), &format!("{what} t"));
    close(got.df, num(&want["df"]), &format!("{what} df"));
    close(got.p, num(&want["p"]), &format!("{what} p"));
}

#[test]
fn summaries_and_t_tests_match_scipy() {
    let f = fixture();
    let cases = f["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    let mut paired = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (a, b) = (nums(&case["a"]), nums(&case["b"]));
        let d = describe(&a).unwrap();
        close(d.mean, num(&case["mean_a"]), &format!("{name} mean"));
        close(d.sd, num(&case["sd_a"]), &format!("{name} sd"));
        let ci = nums(&case["ci95_a"]);
        close(d.ci_low, ci[0], &format!("{name} ci low"));
        close(d.ci_high, ci[1], &format!("{name} ci high"));
        check_test(welch_t_test(&a, &b).unwrap(), &case["welch"], &format!("{name} Welch"));
        if let Some(want) = case.get("paired") {
            check_test(paired_t_test(&a, &b).unwrap(), want, &format!("{name} paired"));
            paired += 1;
        }
    }
    assert!(paired >= 3, "the fixture should hold paired cases");
}

#[test]
fn t_quantiles_and_cdf_match_scipy() {
    let f = fixture();
    for q in f["quantiles"].as_array().unwrap() {
        let (p, df) = (num(&q["p"]), num(&q["df"]));
        let got = t_quantile(p, df).unwrap();
        let want = num(&q["q"]);
        if want == 0.0 {
            assert!(got.abs() < 1e-12, "t.ppf({p}, {df}) = {got}");
        } else {
            close(got, want, &format!("t.ppf({p}, {df})"));
        }
    }
    for c in f["cdfs"].as_array().unwrap() {
        let (x, df) = (num(&c["x"]), num(&c["df"]));
        close(t_cdf(x, df).unwrap(), num(&c["cdf"]), &format!("t.cdf({x}, {df})"));
    }
}
