//! `pic_latent_mem`: n-back matching of MNIST digits seen through a CNN's 50-d latent features
//! (upstream `tasks.generate_pic_latent_wm_trials` through `wrapper_trials`).
//!
//! The input is a [`LatentTable`]: `N` feature vectors of width `D` (upstream: the `(10000, 50)`
//! float32 ReLU features of the MNIST test images) and their integer labels `(N,)`. With
//! `rescale` (upstream always passes `True`) every row is first min-max scaled on its own, in
//! float32: `(x - min + 1e-12) / max(max - min, 2e-12)`.
//!
//! One trial with trial length `TL` has `T = TL + 2` time steps and `1 + D` input channels:
//!
//! | step          | x\[0\] (cue) | x\[1..\]      | y                         |
//! |---------------|-------------|--------------|---------------------------|
//! | `0 ..= TL-1`  | 0           | image `p[t]` | 0                         |
//! | `TL`          | 1           | 0            | 0                         |
//! | `TL+1`        | 0           | 0            | 2 (match) / 1 (non-match) |
//!
//! Per trial:
//! 1. `k = randrange(K)` with `K` the number of distinct labels; the target label is the `k`-th
//!    smallest label (upstream compares `k` itself with the labels, the same for labels `0..K`).
//! 2. The target image: `sample(images of that label, 1)`, in ascending table order. It goes to
//!    position `TL-1`, and in a match trial also to `TL-1-n_back` (the identical image).
//! 3. The other `TL-1` (non-match) or `TL-2` (match) positions, in ascending order, get
//!    `sample(images of all other labels, m)`: distinct images, in selection order.
//!
//! [`PicLatentMem::generate`] returns `trials` match trials (ids `0..n`) followed by `trials`
//! non-match trials (ids `n..2n`), drawn in that order.
//!
//! # Shapes
//! `x` `(2n·(TL+2), 1 + D)`, `y` `(2n·(TL+2), 1)`, `trial_index` `(2n·(TL+2),)`.
//!
//! # Randomness
//! `randrange` and `sample` follow CPython 3.11's `random` (`_randbelow` by rejection on
//! `getrandbits`; `sample` with its pool / set-rejection branches) on top of
//! [`Stream::below`]: with [`biorng::Stream::python`]`(s)` this is upstream's stream after
//! `random.seed(s)`.

use std::collections::HashSet;
use std::path::Path;

use biorng::Stream;

use crate::error::{Error, Result};
use crate::nback_mem::{check_nback, decision_label};
use crate::trials::Trials;

/// A table of latent feature vectors with one integer label each.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentTable {
    data: Vec<f32>,
    labels: Vec<i64>,
    dim: usize,
}

impl LatentTable {
    /// A table from row-major `data` `(n, dim)` and `labels` `(n,)`. Values must be finite.
    pub fn new(data: Vec<f32>, labels: Vec<i64>, dim: usize) -> Result<Self> {
        let n = labels.len();
        if n == 0 {
            return Err(Error::Shape {
                what: "labels",
                expected: "at least one label".into(),
                got: "0".into(),
            });
        }
        if dim == 0 || data.len() != n * dim {
            return Err(Error::Shape {
                what: "latents",
                expected: format!("({n}, {dim}) to match the {n} labels"),
                got: format!("{} values", data.len()),
            });
        }
        if let Some(index) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "latents",
                value: f64::from(data[index]),
                index,
            });
        }
        Ok(Self { data, labels, dim })
    }

    /// Loads a float32 `(N, D)` latent table and its int64 (or uint8) `(N,)` labels from `.npy`
    /// files (`fortran_order` honoured).
    pub fn from_npy(latents: &Path, labels: &Path) -> Result<Self> {
        // Every error names the file it is about (`Error::Data`), so that a user with several
        // tables sees which one is wrong.
        let in_file = |path: &Path| {
            let path = path.to_path_buf();
            move |e: Error| match e {
                Error::Data { .. } | Error::Npy(_) => e,
                other => Error::Data {
                    path: path.clone(),
                    detail: other.to_string(),
                },
            }
        };
        let table = bionpy::read_npy::<f32>(latents)?;
        if table.shape.len() != 2 {
            return Err(in_file(latents)(Error::Shape {
                what: "latents",
                expected: "a 2-d array (N, D)".into(),
                got: format!("shape {:?}", table.shape),
            }));
        }
        let lab: Vec<i64> = match bionpy::read_npy::<i64>(labels) {
            Ok(a) => check_1d(a.shape, a.data).map_err(in_file(labels))?,
            Err(e) => match bionpy::read_npy::<u8>(labels) {
                Ok(a) => check_1d(a.shape, a.data.into_iter().map(i64::from).collect()).map_err(in_file(labels))?,
                Err(_) => return Err(e.into()),
            },
        };
        if lab.len() != table.shape[0] {
            return Err(in_file(labels)(Error::Shape {
                what: "labels",
                expected: format!("({},) to match the latents", table.shape[0]),
                got: format!("({},)", lab.len()),
            }));
        }
        if lab.is_empty() {
            return Err(in_file(labels)(Error::Shape {
                what: "labels",
                expected: "at least one label".into(),
                got: "0".into(),
            }));
        }
        Self::new(table.data, lab, table.shape[1]).map_err(in_file(latents))
    }

    /// Number of images `N`.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Always false (a table holds at least one image).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Feature width `D`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Row-major features `(N, D)`.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Labels `(N,)`.
    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    /// Feature row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The per-row min-max scaling upstream applies (`auxfun.scale_tensor(global_scaling=False)`),
    /// in float32: `(x - min + 1e-12) / max(max - min, 2e-12)`.
    pub fn rescaled(&self) -> LatentTable {
        let mut data = Vec::with_capacity(self.data.len());
        for row in self.data.chunks_exact(self.dim) {
            let mn = row.iter().copied().fold(f32::INFINITY, f32::min);
            let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let denom = (mx - mn).max(2e-12f32);
            data.extend(row.iter().map(|&x| ((x - mn) + 1e-12f32) / denom));
        }
        LatentTable {
            data,
            labels: self.labels.clone(),
            dim: self.dim,
        }
    }
}

fn check_1d(shape: Vec<usize>, data: Vec<i64>) -> Result<Vec<i64>> {
    if shape.len() != 1 {
        return Err(Error::Shape {
            what: "labels",
            expected: "a 1-d array (N,)".into(),
            got: format!("shape {shape:?}"),
        });
    }
    Ok(data)
}

/// Parameters of `pic_latent_mem`.
#[derive(Debug, Clone, PartialEq)]
pub struct PicLatentMem {
    /// Images per trial `TL` (upstream 5).
    pub trial_length: usize,
    /// Distance of the compared image, `1 <= n_back < TL`.
    pub n_back: usize,
    /// Match trials, and again non-match trials (`nr_of_trials`).
    pub trials: usize,
    /// Per-row min-max scaling of the table first (upstream: always true).
    pub rescale: bool,
}

impl Default for PicLatentMem {
    fn default() -> Self {
        Self {
            trial_length: 5,
            n_back: 2,
            trials: 100,
            rescale: true,
        }
    }
}

/// The table split by label: sorted distinct labels, and per label the ascending indices of its
/// images and of all other images.
struct Pools {
    labels: Vec<i64>,
    same: Vec<Vec<usize>>,
    other: Vec<Vec<usize>>,
}

impl Pools {
    fn new(table: &LatentTable) -> Self {
        let mut labels = table.labels.clone();
        labels.sort_unstable();
        labels.dedup();
        let same = labels
            .iter()
            .map(|&l| (0..table.len()).filter(|&i| table.labels[i] == l).collect())
            .collect();
        let other = labels
            .iter()
            .map(|&l| (0..table.len()).filter(|&i| table.labels[i] != l).collect())
            .collect();
        Self { labels, same, other }
    }
}

impl PicLatentMem {
    /// Time steps per trial, `TL + 2`.
    pub fn steps(&self) -> usize {
        self.trial_length + 2
    }

    /// Input width for a table of width `dim`: `1 + dim`.
    pub fn in_dim(dim: usize) -> usize {
        1 + dim
    }

    /// Checks the parameters that do not depend on the table (`1 <= n_back < trial_length`,
    /// `trials >= 1`).
    pub fn validate_params(&self) -> Result<()> {
        check_nback(self.trial_length, self.n_back, self.trials)
    }

    /// Checks the parameters against the table (every label needs at least `TL - 1` images of
    /// other labels).
    pub fn validate(&self, table: &LatentTable) -> Result<()> {
        self.checked_pools(table).map(|_| ())
    }

    /// Every check of [`Self::validate`], returning the label pools the generators draw from.
    fn checked_pools(&self, table: &LatentTable) -> Result<Pools> {
        self.validate_params()?;
        crate::trials::check_size(
            "trial_length",
            self.trial_length,
            self.trial_length.checked_add(1),
            self.trials,
            2,
            Self::in_dim(table.dim()),
        )?;
        let pools = Pools::new(table);
        self.check_pools(&pools)?;
        Ok(pools)
    }

    fn check_pools(&self, pools: &Pools) -> Result<()> {
        let needed = self.trial_length - 1;
        for (l, other) in pools.labels.iter().zip(&pools.other) {
            if other.len() < needed {
                return Err(Error::NotEnoughImages {
                    label: *l,
                    needed,
                    available: other.len(),
                });
            }
        }
        Ok(())
    }

    /// `trials` trials of one kind (upstream's generator with `trial_matching = matching`), ids
    /// `0..trials`.
    pub fn generate_block(&self, table: &LatentTable, matching: bool, rng: &mut Stream) -> Result<Trials> {
        let pools = self.checked_pools(table)?;
        let scaled;
        let table = if self.rescale {
            scaled = table.rescaled();
            &scaled
        } else {
            table
        };
        Ok(self.block(table, &pools, matching, rng))
    }

    fn block(&self, table: &LatentTable, pools: &Pools, matching: bool, rng: &mut Stream) -> Trials {
        let tl = self.trial_length;
        let steps = self.steps();
        let dim = table.dim();
        let in_dim = Self::in_dim(dim);
        let mut out = Trials::with_capacity(steps * self.trials, in_dim, steps);
        let mut picks = vec![0usize; tl];
        let mut is_target = vec![false; tl];
        for tr in 0..self.trials {
            let k = rng.below(pools.labels.len() as u64) as usize;
            let same = &pools.same[k];
            let target = same[sample_indices(rng, same.len(), 1)[0]];
            is_target.iter_mut().for_each(|v| *v = false);
            is_target[tl - 1] = true;
            if matching {
                is_target[tl - 1 - self.n_back] = true;
            }
            let free: Vec<usize> = (0..tl).filter(|&p| !is_target[p]).collect();
            let other = &pools.other[k];
            let chosen = sample_indices(rng, other.len(), free.len());
            for p in 0..tl {
                if is_target[p] {
                    picks[p] = target;
                }
            }
            for (&p, &c) in free.iter().zip(&chosen) {
                picks[p] = other[c];
            }
            for t in 0..steps {
                if let Some(&img) = picks.get(t) {
                    out.x.push(0.0);
                    out.x.extend_from_slice(table.row(img));
                } else {
                    out.x.push(if t == tl { 1.0 } else { 0.0 });
                    out.x.extend(std::iter::repeat_n(0.0, dim));
                }
                out.y.push(if t == tl + 1 { decision_label(matching) } else { 0.0 });
                out.trial_index.push(tr as i64);
            }
        }
        out
    }

    /// Match trials then non-match trials (see the module docs).
    pub fn generate(&self, table: &LatentTable, rng: &mut Stream) -> Result<Trials> {
        let pools = self.checked_pools(table)?;
        let scaled;
        let table = if self.rescale {
            scaled = table.rescaled();
            &scaled
        } else {
            table
        };
        let mut all = self.block(table, &pools, true, rng);
        let non_match = self.block(table, &pools, false, rng);
        all.append_shifted(&non_match, self.trials as i64);
        Ok(all)
    }
}

/// `pic_latent_mem` with the given parameters (shorthand for [`PicLatentMem::generate`]).
pub fn pic_latent_mem(table: &LatentTable, params: &PicLatentMem, rng: &mut Stream) -> Result<Trials> {
    params.generate(table, rng)
}

/// Positions of `random.sample(range(n), k)` as CPython 3.11 computes them (caller ensures
/// `k <= n`): a pool with swap-remove when `n <= setsize`, else rejection of repeats. Every
/// bounded integer comes from [`Stream::below`], which is CPython's `_randbelow` for the Python
/// flavour.
pub fn sample_indices(rng: &mut Stream, n: usize, k: usize) -> Vec<usize> {
    let mut setsize = 21usize;
    if k > 5 {
        // 4 ** ceil(log(3k, 4)), computed like CPython (floating log quotient).
        let e = ((k as f64 * 3.0).ln() / 4f64.ln()).ceil() as u32;
        setsize += 4usize.saturating_pow(e);
    }
    let mut result = Vec::with_capacity(k);
    if n <= setsize {
        let mut pool: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = rng.below((n - i) as u64) as usize;
            result.push(pool[j]);
            pool[j] = pool[n - i - 1];
        }
    } else {
        let mut selected = HashSet::with_capacity(k);
        for _ in 0..k {
            let mut j = rng.below(n as u64) as usize;
            while !selected.insert(j) {
                j = rng.below(n as u64) as usize;
            }
            result.push(j);
        }
    }
    result
}
