"""SciPy reference for the reproductions' statistics (bioexperiments::stats).

Run through `cargo xtask validate` (or directly:
`python3 xtask/python/stats_reference.py crates/bioexperiments/tests/fixtures/stats`).

Writes OUT_DIR/stats_reference.json: for each case two samples `a`, `b` and SciPy's answers:
  mean_a, sd_a (ddof=1), ci95_a (mean ± t.ppf(0.975, n-1)·sd/√n),
  welch: ttest_ind(a, b, equal_var=False) statistic, Welch–Satterthwaite df, two-sided p,
  paired: ttest_rel(a, b) statistic, df = n-1, two-sided p (cases of equal length);
and `quantiles` / `cdfs`: t.ppf(p, df) and t.cdf(x, df) on a grid. Numbers are written with
repr() (17 significant digits), so the Rust test compares against SciPy's exact doubles.
The samples are fixed literals (values like the per-run losses and accuracies of the
summaries, including a large effect with a tiny p and a negligible one), not random draws.
"""
import json
import math
import os
import sys

import numpy as np
from scipy import stats

CASES = [
    ("losses_overlap", [0.0157, 0.0002, 0.037, 0.012, 0.021], [0.0153, 0.0011, 0.031, 0.019, 0.009]),
    ("acc_shift", [0.9484, 0.9501, 0.9490, 0.9478, 0.9512, 0.9495], [0.9500, 0.9521, 0.9515, 0.9507, 0.9530, 0.9519]),
    ("unequal_sizes", [1.4263, 1.4102, 1.4391], [1.4702, 1.4655, 1.4810, 1.4588, 1.4733]),
    ("big_effect", [10.0, 10.5, 9.8, 10.2, 10.1, 9.9, 10.3, 10.0], [1.0, 1.2, 0.9, 1.1, 1.05, 0.95, 1.0, 1.15]),
    ("two_each", [0.3317, 0.3366], [0.3315, 0.3362]),
    ("one_constant", [2.0, 2.0, 2.0, 2.0], [1.0, 1.5, 2.5, 2.0]),
]


def ci95(x):
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    half = stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return [float(x.mean() - half), float(x.mean() + half)]


def welch_df(a, b):
    a, b = np.asarray(a), np.asarray(b)
    sa, sb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    return float((sa + sb) ** 2 / (sa**2 / (len(a) - 1) + sb**2 / (len(b) - 1)))


def main(out_dir):
    cases = []
    for name, a, b in CASES:
        w = stats.ttest_ind(a, b, equal_var=False)
        case = {
            "name": name,
            "a": a,
            "b": b,
            "mean_a": float(np.mean(a)),
            "sd_a": float(np.std(a, ddof=1)),
            "ci95_a": ci95(a),
            "welch": {"t": float(w.statistic), "df": welch_df(a, b), "p": float(w.pvalue)},
        }
        if len(a) == len(b):
            r = stats.ttest_rel(a, b)
            case["paired"] = {"t": float(r.statistic), "df": float(len(a) - 1), "p": float(r.pvalue)}
        cases.append(case)
    quantiles = [
        {"p": p, "df": df, "q": float(stats.t.ppf(p, df))}
        for df in [1.0, 2.0, 3.0, 4.5, 9.0, 29.0, 99.0]
        for p in [0.025, 0.5, 0.9, 0.975, 0.995]
    ]
    cdfs = [
        {"x": x, "df": df, "cdf": float(stats.t.cdf(x, df))}
        for df in [1.0, 3.0, 7.3, 30.0]
        for x in [-8.0, -2.5, -0.3, 0.0, 1.0, 4.0]
    ]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "stats_reference.json"), "w") as f:
        json.dump({"scipy": __import__("scipy").__version__, "cases": cases, "quantiles": quantiles, "cdfs": cdfs}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "crates/bioexperiments/tests/fixtures/stats")
