//! Neurons per region: uniform, per region, or scaled from measured neuron densities.
//!
//! bio2art takes `neuron_density`, the number of neurons of each region (default 1 each); the
//! neuron count is `M = sum(neuron_density)`. `utils.scale_neuron_density` turns measured
//! densities (neurons per mm³, bundled for macaque and marmoset) into such counts:
//!
//! * `rank`: the region with the k-th smallest density gets `k * seed_neuron` neurons
//!   (k = 1..N). Upstream computes the ranks through `np.intersect1d` and crashes (shape
//!   mismatch) when two densities are equal; here ties are ranked by region index (stable).
//! * `ratio`: `round(nd[i] / min(nd) * seed_neuron)`, rounding half to even like NumPy. Upstream
//!   crashes on ties here too (an index error); here ties are fine.
//!
//! NaN (the five unmeasured macaque areas), zero, negative or infinite densities are errors;
//! upstream casts NaN to `INT64_MIN` and carries on.

use serde::{Deserialize, Serialize};

use crate::connectome::{Connectome, CONNECTOME_NAMES};
use crate::error::{Error, Result};

/// Largest number of neurons one region may get (a guard against typos such as `4e9`).
pub const MAX_NEURONS_PER_REGION: usize = 1 << 20;

/// How [`scale_neuron_density`] maps densities to neuron counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleType {
    /// Rank order (1 = sparsest region) times `seed_neuron`.
    Rank,
    /// Ratio to the sparsest region times `seed_neuron`, rounded half to even.
    Ratio,
}

impl std::str::FromStr for ScaleType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "rank" => Ok(ScaleType::Rank),
            "ratio" => Ok(ScaleType::Ratio),
            _ => Err(format!("unknown scale type {s:?} (expected rank or ratio)")),
        }
    }
}

/// `utils.scale_neuron_density(neuron_density, seed_neuron, scale_type)`: neuron counts per
/// region from measured densities.
///
/// # Shapes
/// `density`: N values; result: N counts.
///
/// # Errors
/// [`Error::InvalidParameter`] for `seed_neuron == 0` or one that scales a region above
/// [`MAX_NEURONS_PER_REGION`]; [`Error::InvalidDensity`] for a NaN, infinite, zero or negative
/// density.
pub fn scale_neuron_density(density: &[f64], seed_neuron: usize, scale: ScaleType) -> Result<Vec<usize>> {
    const WHAT: &str = "neuron density data";
    if seed_neuron == 0 {
        return Err(Error::InvalidParameter {
            param: "seed_neuron",
            value: "0".into(),
            expected: "must be at least 1",
        });
    }
    if density.is_empty() {
        return Err(Error::InvalidParameter {
            param: "neuron_density",
            value: "[]".into(),
            expected: "at least one region",
        });
    }
    for (index, &v) in density.iter().enumerate() {
        let reason = if v.is_nan() {
            "NaN (not measured): choose the neuron counts by hand for this connectome"
        } else if !v.is_finite() {
            "not finite"
        } else if v <= 0.0 {
            "densities must be positive"
        } else {
            continue;
        };
        return Err(Error::InvalidDensity {
            what: WHAT,
            index,
            value: v.to_string(),
            reason,
        });
    }
    // The densities are data; what made a count too large is the seed neuron count.
    let too_many = |_index: usize, _value: String| Error::InvalidParameter {
        param: "seed_neuron",
        value: seed_neuron.to_string(),
        expected: "scales some region beyond the limit of 2^20 neurons (MAX_NEURONS_PER_REGION)",
    };
    let mut order: Vec<usize> = (0..density.len()).collect();
    order.sort_by(|&a, &b| density[a].total_cmp(&density[b]));
    let mut out = vec![0usize; density.len()];
    match scale {
        ScaleType::Rank => {
            for (rank0, &region) in order.iter().enumerate() {
                let count = (rank0 + 1)
                    .checked_mul(seed_neuron)
                    .filter(|&c| c <= MAX_NEURONS_PER_REGION);
                out[region] = count.ok_or_else(|| too_many(region, density[region].to_string()))?;
            }
        }
        ScaleType::Ratio => {
            let lo = density[order[0]];
            for (region, &v) in density.iter().enumerate() {
                let x = ((v / lo) * seed_neuron as f64).round_ties_even();
                if x.is_nan() || x > MAX_NEURONS_PER_REGION as f64 {
                    return Err(too_many(region, v.to_string()));
                }
                out[region] = x as usize;
            }
        }
    }
    Ok(out)
}

/// The number of neurons of each region, as a configuration value.
///
/// Serialised untagged, so a config file can say `neuron_density = 4`,
/// `neuron_density = [4, 2, ...]` or `neuron_density = { scale = "rank", seed_neuron = 2 }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NeuronDensity {
    /// The same count for every region (upstream's default is 1).
    Uniform(usize),
    /// One count per region.
    PerRegion(Vec<usize>),
    /// Counts from the connectome's bundled densities via [`scale_neuron_density`].
    Scaled {
        /// `rank` or `ratio`.
        scale: ScaleType,
        /// The multiplier.
        seed_neuron: usize,
    },
}

impl Default for NeuronDensity {
    fn default() -> Self {
        NeuronDensity::Uniform(1)
    }
}

impl NeuronDensity {
    /// The per-region counts for `connectome`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] for a per-region list of the wrong length (upstream: prints and
    /// returns `None`); [`Error::InvalidDensity`] for a zero count (upstream silently drops the
    /// weight of every connection into such a region) or one above [`MAX_NEURONS_PER_REGION`];
    /// [`Error::NoNeuronDensity`] when scaling is asked for a connectome without densities; the
    /// errors of [`scale_neuron_density`].
    pub fn resolve(&self, connectome: &Connectome) -> Result<Vec<usize>> {
        let n = connectome.n_regions();
        let counts = match self {
            NeuronDensity::Uniform(k) => vec![*k; n],
            NeuronDensity::PerRegion(v) => {
                if v.len() != n {
                    return Err(Error::LengthMismatch {
                        what: "neuron_density",
                        connectome: connectome.name().to_string(),
                        expected: n,
                        got: v.len(),
                    });
                }
                v.clone()
            }
            NeuronDensity::Scaled { scale, seed_neuron } => {
                let nd = connectome.neuron_density().ok_or_else(|| Error::NoNeuronDensity {
                    connectome: connectome.name().to_string(),
                    available: available_densities(),
                })?;
                scale_neuron_density(nd, *seed_neuron, *scale)?
            }
        };
        for (index, &k) in counts.iter().enumerate() {
            let reason = if k == 0 {
                "every region needs at least one neuron"
            } else if k > MAX_NEURONS_PER_REGION {
                "more than MAX_NEURONS_PER_REGION neurons"
            } else {
                continue;
            };
            return Err(Error::InvalidDensity {
                what: "neuron_density",
                index,
                value: k.to_string(),
                reason,
            });
        }
        Ok(counts)
    }
}

fn available_densities() -> String {
    CONNECTOME_NAMES
        .iter()
        .filter(|n| {
            Connectome::load(n)
                .ok()
                .and_then(|c| c.neuron_density().map(|_| ()))
                .is_some()
        })
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}
