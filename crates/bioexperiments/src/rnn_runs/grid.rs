//! The combinations grid, the job list and its shards.
//!
//! # Order
//! Combinations are the Cartesian product `lr × nonlinearity × optimizer × task parameter`
//! (`pattern_length` or `n_back`) with the **last key varying fastest**, each list in the order
//! written: upstream's `itertools.product` over the dict in its shipped key order, so combination
//! `k` here is upstream's folder `k`. Jobs are `(combination, iteration)` pairs, combination-major:
//! job `j` is combination `j / iterations`, iteration `j % iterations`.
//!
//! # Shards
//! Shard `i/n` (0-based `i < n`) holds the jobs `j` with `j mod n = i`. Every job is in exactly
//! one shard, neighbouring jobs (same combination, similar cost) go to different shards, and the
//! assignment depends only on the grid, so any scheduler can run the shards independently.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::config::{Nonlinearity, OptimizerName, RunsConfig};
use crate::error::{invalid, Error, Result};

/// One point of the grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Combination {
    /// Position in the grid (upstream's folder name).
    pub index: usize,
    /// Learning rate.
    pub lr: f64,
    /// Recurrent nonlinearity.
    pub nonlinearity: Nonlinearity,
    /// Optimiser.
    pub optimizer: OptimizerName,
    /// `pattern_length` (seq_mem) or `n_back`.
    pub task_param: usize,
}

impl Combination {
    /// Upstream's `folder_index.txt` tuple, e.g. `(0.0001, 'relu', 'Adam', 3)`.
    pub fn upstream_tuple(&self) -> String {
        format!(
            "({}, '{}', '{}', {})",
            python_float(self.lr),
            self.nonlinearity.as_str(),
            self.optimizer.as_str(),
            self.task_param
        )
    }
}

/// Python's `repr(float)`: shortest round-trip digits, scientific notation below 1e-4 and from
/// 1e16 on, two-digit exponents, a `.0` on whole numbers.
pub fn python_float(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{x:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = exp.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", e.abs())
    } else {
        let s = format!("{x}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    }
}

/// Expands the grid of `cfg` (see the module docs for the order).
pub fn combinations(cfg: &RunsConfig) -> Vec<Combination> {
    let c = &cfg.combosparams.combos_params;
    let mut out = Vec::new();
    for &lr in &c.lr {
        for &nonlinearity in &c.nonlinearity {
            for &optimizer in &c.optimizer {
                for &task_param in cfg.task_params() {
                    out.push(Combination {
                        index: out.len(),
                        lr,
                        nonlinearity,
                        optimizer,
                        task_param,
                    });
                }
            }
        }
    }
    out
}

/// One training run: a combination and an iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Job {
    /// Combination index.
    pub combination: usize,
    /// Iteration (run) within the combination.
    pub iteration: usize,
}

/// Every job of a grid of `n_combinations` combinations × `iterations`, combination-major.
pub fn jobs(n_combinations: usize, iterations: usize) -> Vec<Job> {
    (0..n_combinations)
        .flat_map(|combination| (0..iterations).map(move |iteration| Job { combination, iteration }))
        .collect()
}

/// Shard `index` of `count` (0-based), written `i/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, `0 <= index < count`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole job list as one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// A validated shard.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(invalid(
                "shard",
                format!("{index}/{count}"),
                "needs n >= 1 and 0 <= i < n (i is 0-based, e.g. $SLURM_ARRAY_TASK_ID)",
            ));
        }
        Ok(Shard { index, count })
    }

    /// The jobs of this shard, in job order (`j mod count == index`).
    pub fn select(&self, jobs: &[Job]) -> Vec<Job> {
        self.select_items(jobs)
    }

    /// The items of this shard, in order (`position mod count == index`): the same rule for
    /// any job list (`reproduce`'s (setting, repeat) jobs too).
    pub fn select_items<T: Copy>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .enumerate()
            .filter(|(j, _)| j % self.count == self.index)
            .map(|(_, item)| *item)
            .collect()
    }
}

impl FromStr for Shard {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || invalid("shard", s, "expected i/n with 0 <= i < n, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::new(i, n)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_repr() {
        assert_eq!(python_float(0.0001), "0.0001");
        assert_eq!(python_float(1e-6), "1e-06");
        assert_eq!(python_float(1.5e-7), "1.5e-07");
        assert_eq!(python_float(0.01), "0.01");
        assert_eq!(python_float(1.0), "1.0");
        assert_eq!(python_float(1e16), "1e+16");
    }

    #[test]
    fn shard_parse_rejects_bad_input() {
        assert_eq!("1/4".parse::<Shard>().ok(), Some(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
