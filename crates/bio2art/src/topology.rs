//! From a neuron-level bio2art network to the recurrent matrix of an RNN, as `bio_rnn_mem` does
//! it: orientation, `random_w` (`networkmetrics.rand_net`) and `remap_w`
//! (`auxfun.map_weights_to_template`).
//!
//! # Layout and orientation
//! bio2art's `W[m, n]` is the weight from neuron m (row = source) to neuron n. The RNN layer
//! (`biolayers::layers::ElmanRnn`) computes `h_t = act(… + h_{t-1}·W_hh)`, so its recurrent
//! matrix is stored `W_hh[from·H + to]`, i.e. PyTorch's `weight_hh_l0[to, from]` transposed.
//! [`RecurrentMatrix`] is in that layout.
//!
//! Upstream sets `weight_hh_l0[W == 0] = 0`, indexing PyTorch's `[to, from]` tensor with
//! bio2art's `[from, to]` matrix without a transpose: neuron n then receives from m where
//! `W[n, m] != 0`, the *transposed* connectome. [`Orientation::Upstream`] (the default)
//! reproduces this, [`Orientation::SourceRow`] follows bio2art's convention (n receives from m
//! where `W[m, n] != 0`):
//!
//! | orientation | `RecurrentMatrix[from·H + to]` | PyTorch `weight_hh_l0[to, from]` |
//! |---|---|---|
//! | `Upstream` | `W[to, from]` | `W[to, from]` (upstream's code) |
//! | `SourceRow` | `W[from, to]` | `W[from, to]` = `Wᵀ[to, from]` |
//!
//! # `random_w`
//! [`random_w`] is `rand_net(A)` with its default `freeze_diag=True`: when `A == Aᵀ` exactly, the
//! strict lower triangle (row-major positions `(i, j)`, `i > j`) is permuted with
//! `np.random.permutation` and mirrored; otherwise all off-diagonal entries, zeros included
//! (row-major positions), are permuted. The diagonal is kept in both cases. With
//! `Stream::numpy(s)` the result equals upstream's after `np.random.seed(s)` element for element.
//! Upstream crashes here on current PyTorch (a float32/float64 index-put); this version works
//! for any matrix. [`recurrent_matrix`] randomises bio2art's `W` before orienting it, in
//! upstream's order.
//!
//! # `remap_w`
//! [`remap_w`] keeps the init values of the weights at the template's nonzero positions and
//! reassigns them by rank: the k-th largest init value goes to the position of the k-th largest
//! template value; all other entries are 0. Upstream sorts with the unstable `torch.sort`, so its
//! order among tied template values is unspecified. Here it is stable and documented: positions
//! are enumerated in PyTorch's `weight_hh_l0` row-major order, i.e. by target neuron, then by
//! source neuron (for [`Orientation::Upstream`] this is the row-major order of bio2art's `W`,
//! upstream's `torch.where` order), and among equal template values the earlier position
//! receives the larger init value.
//!
//! # Shapes
//! Square matrices, `H·H` values, row-major.

use biorng::Stream;
use serde::{Deserialize, Serialize};

use crate::conversion::Bio2artNetwork;
use crate::error::{Error, Result};

/// How bio2art's neuron matrix (row = source) becomes the recurrent matrix (serialised
/// `"upstream"` / `"source_row"`). See the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Orientation {
    /// Upstream's code: `weight_hh_l0[to, from] = W[to, from]` (the transposed connectome).
    #[default]
    Upstream,
    /// bio2art's convention: neuron n receives from m where `W[m, n] != 0`.
    SourceRow,
}

impl std::str::FromStr for Orientation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "upstream" => Ok(Orientation::Upstream),
            "source_row" => Ok(Orientation::SourceRow),
            _ => Err(Error::InvalidParameter {
                param: "orientation",
                value: s.to_string(),
                expected: "upstream or source_row",
            }),
        }
    }
}

impl std::fmt::Display for Orientation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Orientation::Upstream => "upstream",
            Orientation::SourceRow => "source_row",
        })
    }
}

/// A recurrent weight template in the RNN layer's layout: `weights[from·hidden + to]`.
/// Its nonzero entries are the topology (upstream masks with `W == 0`).
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentMatrix {
    /// Number of neurons H.
    pub hidden: usize,
    /// `H·H` weights, `weights[from·H + to]`.
    pub weights: Vec<f64>,
}

impl RecurrentMatrix {
    /// Orients a neuron matrix `w` (`H·H`, bio2art's row = source).
    ///
    /// # Errors
    /// [`Error::InvalidRecurrent`] when `w` is not `H·H` or holds a non-finite value.
    pub fn from_neuron_matrix(w: &[f64], hidden: usize, orientation: Orientation) -> Result<Self> {
        check_square(w, hidden, "neuron matrix")?;
        let weights = match orientation {
            Orientation::SourceRow => w.to_vec(),
            Orientation::Upstream => transpose(w, hidden),
        };
        Ok(RecurrentMatrix { hidden, weights })
    }

    /// Orients a bio2art network's weights.
    ///
    /// # Errors
    /// As [`RecurrentMatrix::from_neuron_matrix`].
    pub fn from_network(net: &Bio2artNetwork, orientation: Orientation) -> Result<Self> {
        Self::from_neuron_matrix(&net.weights, net.n_neurons, orientation)
    }

    /// `topology[from·H + to]`: true where the weight is nonzero.
    pub fn topology(&self) -> Vec<bool> {
        self.weights.iter().map(|&w| w != 0.0).collect()
    }

    /// Fraction of nonzero entries among all `H·H`.
    pub fn density(&self) -> f64 {
        let n = self.weights.len().max(1);
        self.weights.iter().filter(|&&w| w != 0.0).count() as f64 / n as f64
    }

    /// The weight of the connection `from → to`, or `None` out of range.
    pub fn weight(&self, from: usize, to: usize) -> Option<f64> {
        if from < self.hidden && to < self.hidden {
            self.weights.get(from * self.hidden + to).copied()
        } else {
            None
        }
    }
}

/// Upstream's pipeline: `random_w` (when `randomise` is given) on bio2art's `W`, then the
/// orientation.
///
/// # Errors
/// As [`RecurrentMatrix::from_neuron_matrix`].
pub fn recurrent_matrix(
    net: &Bio2artNetwork,
    orientation: Orientation,
    randomise: Option<&mut Stream>,
) -> Result<RecurrentMatrix> {
    match randomise {
        None => RecurrentMatrix::from_network(net, orientation),
        Some(rng) => {
            let w = random_w(&net.weights, net.n_neurons, rng)?;
            RecurrentMatrix::from_neuron_matrix(&w, net.n_neurons, orientation)
        }
    }
}

/// `true` when `w == wᵀ` exactly (upstream's `check_symmetric`: `np.all(X == X.T)`).
pub fn is_symmetric(w: &[f64], n: usize) -> bool {
    w.len() == n * n && (0..n).all(|i| (0..i).all(|j| w[i * n + j] == w[j * n + i]))
}

/// Upstream's `networkmetrics.rand_net(A)` (`freeze_diag=True`) on a square matrix `w`
/// (`n·n`, row-major, any orientation): see the [module documentation](self). The draws are
/// one `shuffle` of the permuted values, which consumes the stream exactly as
/// `np.random.permutation(len)` does.
///
/// # Errors
/// [`Error::InvalidRecurrent`] when `w` is not `n·n` or holds a non-finite value.
pub fn random_w(w: &[f64], n: usize, rng: &mut Stream) -> Result<Vec<f64>> {
    check_square(w, n, "random_w matrix")?;
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        out[i * n + i] = w[i * n + i];
    }
    if is_symmetric(w, n) {
        // Strict lower triangle in row-major order, permuted, then mirrored.
        let idx: Vec<(usize, usize)> = (0..n).flat_map(|i| (0..i).map(move |j| (i, j))).collect();
        let mut values: Vec<f64> = idx.iter().map(|&(i, j)| w[i * n + j]).collect();
        rng.shuffle(&mut values);
        for (&(i, j), v) in idx.iter().zip(values) {
            out[i * n + j] = v;
            out[j * n + i] = v;
        }
    } else {
        let idx: Vec<usize> = (0..n * n).filter(|k| k / n != k % n).collect();
        let mut values: Vec<f64> = idx.iter().map(|&k| w[k]).collect();
        rng.shuffle(&mut values);
        for (&k, v) in idx.iter().zip(values) {
            out[k] = v;
        }
    }
    Ok(out)
}

/// Upstream's `remap_w` (`auxfun.map_weights_to_template`): the init values `init` (same layout
/// as `template`, `weights[from·H + to]`) at the template's nonzero positions, reassigned so that
/// their rank order follows the template's; 0 elsewhere. Ties: see the
/// [module documentation](self).
///
/// # Errors
/// [`Error::InvalidRecurrent`] when `init` has the wrong length or a non-finite value at a
/// template position.
pub fn remap_w(template: &RecurrentMatrix, init: &[f32]) -> Result<Vec<f32>> {
    let h = template.hidden;
    check_square(&template.weights, h, "remap_w template")?;
    if init.len() != h * h {
        return Err(Error::InvalidRecurrent {
            detail: format!("remap_w: init has {} values, the template {h}x{h}", init.len()),
        });
    }
    // PyTorch's weight_hh row-major order: by target, then source; in our layout k = from·H + to.
    let positions: Vec<usize> = (0..h)
        .flat_map(|to| (0..h).map(move |from| from * h + to))
        .filter(|&k| template.weights[k] != 0.0)
        .collect();
    if let Some(&k) = positions.iter().find(|&&k| !init[k].is_finite()) {
        return Err(Error::InvalidRecurrent {
            detail: format!(
                "remap_w: init value {} at (from {}, to {}) is not finite",
                init[k],
                k / h,
                k % h
            ),
        });
    }
    let mut by_template = positions.clone();
    // Stable: equal template values keep their enumeration order.
    by_template.sort_by(|&a, &b| template.weights[b].total_cmp(&template.weights[a]));
    let mut values: Vec<f32> = positions.iter().map(|&k| init[k]).collect();
    values.sort_by(|a, b| b.total_cmp(a));
    let mut out = vec![0.0f32; h * h];
    for (&k, v) in by_template.iter().zip(values) {
        out[k] = v;
    }
    Ok(out)
}

fn transpose(w: &[f64], n: usize) -> Vec<f64> {
    let mut t = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            t[j * n + i] = w[i * n + j];
        }
    }
    t
}

fn check_square(w: &[f64], n: usize, what: &str) -> Result<()> {
    if n.checked_mul(n) != Some(w.len()) {
        return Err(Error::InvalidRecurrent {
            detail: format!("{what}: {} values, expected {n}x{n}", w.len()),
        });
    }
    if let Some(k) = w.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidRecurrent {
            detail: format!(
                "{what}: entry ({}, {}) = {} is not finite",
                k / n.max(1),
                k % n.max(1),
                w[k]
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked 3×3 example of the reference (upstream layout = PyTorch `[to, from]`):
    /// template [[0,.5,.1],[.2,0,0],[.9,.3,0]], init [[1,2,3],[4,5,6],[7,8,9]] →
    /// [[0,7,2],[3,0,0],[8,4,0]].
    #[test]
    fn remap_reproduces_the_worked_example() {
        let torch_template = [0.0, 0.5, 0.1, 0.2, 0.0, 0.0, 0.9, 0.3, 0.0];
        let torch_init: [f32; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        // Our layout is PyTorch's transposed.
        let template = RecurrentMatrix {
            hidden: 3,
            weights: transpose(&torch_template, 3),
        };
        let init: Vec<f32> = transpose(&torch_init.map(f64::from), 3)
            .iter()
            .map(|&v| v as f32)
            .collect();
        let out = remap_w(&template, &init).unwrap();
        let out_torch = transpose(&out.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), 3);
        assert_eq!(out_torch, [0.0, 7.0, 2.0, 3.0, 0.0, 0.0, 8.0, 4.0, 0.0]);
    }

    #[test]
    fn bad_shapes_and_values_are_errors() {
        let mut rng = Stream::seeded(0);
        assert!(random_w(&[0.0; 5], 2, &mut rng).is_err());
        assert!(random_w(&[0.0, f64::NAN, 1.0, 0.0], 2, &mut rng).is_err());
        assert!(RecurrentMatrix::from_neuron_matrix(&[0.0; 3], 2, Orientation::Upstream).is_err());
        let t = RecurrentMatrix {
            hidden: 2,
            weights: vec![0.0, 1.0, 1.0, 0.0],
        };
        assert!(remap_w(&t, &[0.0; 3]).is_err());
        assert!(remap_w(&t, &[0.0, f32::INFINITY, 1.0, 0.0]).is_err());
        assert!("sideways".parse::<Orientation>().is_err());
        for o in [Orientation::Upstream, Orientation::SourceRow] {
            assert_eq!(o.to_string().parse::<Orientation>().unwrap(), o);
        }
    }
}
