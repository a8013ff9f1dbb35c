//! `from_conn_mat`: region-level connectome -> neuron-level weight matrix.
//!
//! # Algorithm (bio2art `importnet.from_conn_mat`, master e46de2b)
//!
//! Region r gets `nd[r]` neurons, the contiguous range `[off_r, off_r + nd[r])` with
//! `off_r = nd[0] + ... + nd[r-1]`; `M = sum(nd)`. `S_in[i] = sum_k C[k, i]` is the total
//! *input* of region i (upstream's comment says "outgoing", but it sums axis 0). `W` starts at
//! zero. Then, for every source region i in index order:
//!
//! 1. **Intrinsic block** (if `intrinsic_conn`): total weight
//!    `w_int = intrinsic_wei * S_in[i] / (1 - intrinsic_wei)` (4·S_in for the default 0.8).
//!    Each neuron of i gets `k` targets inside i, with `k = n_i` (or `n_i - 1` without the
//!    diagonal) when `target_sparsity_intrinsic == 1.0` exactly, otherwise
//!    `k = round_half_even(tsi * n_i)` (at least 1; one less if that equals `n_i` and the
//!    diagonal is excluded), and finally at least 1. For each source neuron m (in the current
//!    order of region i's list): copy the list, drop m unless `keep_diag`, shuffle, take the
//!    first k. Weights: all `w_int / (n_i * k)`, or with `rand_partition` consecutive pieces of
//!    one stick-breaking partition of `w_int` into `n_i * k` parts.
//! 2. **Extrinsic blocks**: for every target region j with `C[i, j] > 0`, ascending:
//!    `k = n_j` if `target_sparsity == 1.0` exactly, else `max(1, round_half_even(ts * n_j))`
//!    (1 whenever `ts * n_j < 1`). For each source neuron m of i: shuffle region j's list **in
//!    place** and take its first k neurons. Weights: all `C[i, j] / (n_i * k)`, or pieces of a
//!    partition of `C[i, j]` into `n_i * k` parts. Entries are assigned (overwritten), not added.
//!
//! Stick-breaking partition of f into n parts: `n - 1` times `x = uniform(0, |rest|)`,
//! `rest -= x`; then the residual `f - sum(parts)` (left-to-right sum); then one shuffle. The
//! residual can be exactly 0 or about -1e-15, so `W != 0` may differ slightly from the
//! topology: [`Bio2artNetwork::connected`] records every assigned entry.
//!
//! Both RNG modes run this very algorithm with the same call order; only the stream differs
//! (see [`crate::rng`]). Consequently every block sums to its intended weight (`C[i, j]` or
//! `w_int`) up to rounding, each source neuron has exactly k targets per connected region,
//! and upstream's region lists end up permuted exactly as upstream leaves them
//! ([`Bio2artNetwork::upstream_region_neuron_ids`]); the canonical map is
//! [`Bio2artNetwork::regions`].
//!
//! # Shapes
//! * input: `C` N x N (row = source region), `nd` N counts.
//! * [`Bio2artNetwork::weights`], [`Bio2artNetwork::connected`]: M x M row-major,
//!   `weights[m * M + n]` = weight **from neuron m to neuron n** (row = source).
//! * [`Bio2artNetwork::regions`]: N ranges tiling `0..M` in order.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::connectome::Connectome;
use crate::density::NeuronDensity;
use crate::error::{Error, Result};
use crate::rng::RngKind;
use biorng::Stream;

/// Largest neuron count M [`convert`] accepts: the dense M x M float64 matrix then takes 8 GiB.
pub const MAX_NEURONS: usize = 1 << 15;

/// The parameters of `from_conn_mat`, with upstream's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bio2artConfig {
    /// Neurons per region (default: 1 each, upstream's `None`).
    pub neuron_density: NeuronDensity,
    /// Fraction of a target region's neurons each source neuron connects to, in [0, 1]
    /// (default 0.2; at least one target).
    pub target_sparsity: f64,
    /// Whether to build within-region blocks (default true).
    pub intrinsic_conn: bool,
    /// `target_sparsity` for within-region blocks, in [0, 1] (default 1.0).
    pub target_sparsity_intrinsic: f64,
    /// Intrinsic share: a region's intrinsic block gets `w / (1 - w)` times its total input,
    /// in [0, 1) (default 0.8).
    pub intrinsic_wei: f64,
    /// Random stick-breaking weights instead of equal weights per block (default false).
    pub rand_partition: bool,
    /// Whether intrinsic self-connections (neuron -> itself) are allowed (default true).
    pub keep_diag: bool,
}

impl Default for Bio2artConfig {
    fn default() -> Self {
        Bio2artConfig {
            neuron_density: NeuronDensity::default(),
            target_sparsity: 0.2,
            intrinsic_conn: true,
            target_sparsity_intrinsic: 1.0,
            intrinsic_wei: 0.8,
            rand_partition: false,
            keep_diag: true,
        }
    }
}

impl Bio2artConfig {
    /// Checks the scalar parameters (the neuron counts are checked against a connectome by
    /// [`NeuronDensity::resolve`]). Parameters that the configuration does not use
    /// (`target_sparsity_intrinsic` and `intrinsic_wei` without `intrinsic_conn`) are not checked.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the parameter: sparsities outside [0, 1] or NaN,
    /// `intrinsic_wei` outside [0, 1) (1 divides by zero upstream; negative values give negative
    /// weights).
    pub fn validate(&self) -> Result<()> {
        let unit = |param: &'static str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::InvalidParameter {
                    param,
                    value: v.to_string(),
                    expected: "must lie in [0, 1]",
                })
            }
        };
        unit("target_sparsity", self.target_sparsity)?;
        if self.intrinsic_conn {
            unit("target_sparsity_intrinsic", self.target_sparsity_intrinsic)?;
            if !(0.0..1.0).contains(&self.intrinsic_wei) {
                return Err(Error::InvalidParameter {
                    param: "intrinsic_wei",
                    value: self.intrinsic_wei.to_string(),
                    expected: "must lie in [0, 1) (the intrinsic weight is w / (1 - w) times the input)",
                });
            }
        }
        Ok(())
    }
}

/// Everything needed to rebuild one network: connectome, parameters, stream and seed.
///
/// ```toml
/// connectome = "Marmoset_Normalized"
/// rng = "python"
/// seed = 42
/// [config]
/// neuron_density = 4
/// target_sparsity = 0.8
/// keep_diag = false
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bio2artSpec {
    /// A bundled connectome's `data_name`.
    pub connectome: String,
    /// The random stream (default `seeded`).
    #[serde(default, deserialize_with = "crate::rng::deserialize_kind")]
    pub rng: RngKind,
    /// The seed (default 0).
    #[serde(default)]
    pub seed: u64,
    /// The conversion parameters (default: upstream's).
    #[serde(default)]
    pub config: Bio2artConfig,
}

impl Bio2artSpec {
    /// Loads the connectome, seeds the stream and converts.
    ///
    /// # Errors
    /// Those of [`Connectome::load`] and [`convert`].
    pub fn build(&self) -> Result<Bio2artNetwork> {
        let c = Connectome::load(&self.connectome)?;
        if !crate::rng::KINDS.contains(&self.rng) {
            return Err(Error::InvalidParameter {
                param: "rng",
                value: self.rng.to_string(),
                expected: "seeded or python (bio2art draws from CPython's random)",
            });
        }
        // Seeded and Python take any u64 seed; NumPy (the only fallible kind) was refused above.
        let mut rng = self.rng.stream(self.seed).map_err(|_| Error::InvalidParameter {
            param: "seed",
            value: self.seed.to_string(),
            expected: "a seed the chosen stream accepts",
        })?;
        convert(&c, &self.config, &mut rng)
    }
}

/// Something the caller should know about a conversion that still succeeded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Warning {
    /// A one-neuron region with `intrinsic_conn` and `keep_diag = false` has no possible
    /// intrinsic target: its intrinsic weight is dropped (as upstream does silently).
    LostIntrinsicWeight {
        /// Region index.
        region: usize,
        /// Region name.
        name: String,
        /// The weight that is not in the matrix.
        weight: f64,
    },
    /// `C[i, i] > 0`: the extrinsic self-block overwrites the intrinsic block of region i
    /// (upstream behaviour; no bundled connectome has a nonzero diagonal).
    SelfConnection {
        /// Region index.
        region: usize,
        /// Region name.
        name: String,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::LostIntrinsicWeight { region, name, weight } => write!(
                f,
                "region {region} ({name}) has a single neuron and keep_diag is false: \
                 its intrinsic weight {weight} has no target and is dropped"
            ),
            Warning::SelfConnection { region, name } => write!(
                f,
                "region {region} ({name}) has C[i,i] > 0: its extrinsic self-block overwrites the intrinsic block"
            ),
        }
    }
}

/// The neuron-level network built by [`convert`].
#[derive(Debug, Clone, PartialEq)]
pub struct Bio2artNetwork {
    /// Name of the source connectome.
    pub connectome: String,
    /// Number of neurons M.
    pub n_neurons: usize,
    /// M x M weights, row-major, `weights[m * M + n]` = weight from neuron m to neuron n.
    pub weights: Vec<f64>,
    /// M x M, true where the algorithm assigned an entry (the topology; a stick-breaking
    /// residual can assign an exact 0 or a value of about -1e-15).
    pub connected: Vec<bool>,
    /// Region r owns neurons `regions[r]` (sorted, contiguous, in region order).
    pub regions: Vec<Range<usize>>,
    /// bio2art's returned `region_neuron_ids`: the same sets, in the order its in-place
    /// shuffles left them.
    pub upstream_region_neuron_ids: Vec<Vec<usize>>,
    /// Neurons per region (`regions[r].len()`).
    pub neuron_counts: Vec<usize>,
    /// Non-fatal findings, see [`Warning`].
    pub warnings: Vec<Warning>,
}

impl Bio2artNetwork {
    /// `W[source, target]`, or `None` out of range.
    pub fn weight(&self, source: usize, target: usize) -> Option<f64> {
        let m = self.n_neurons;
        if source < m && target < m {
            self.weights.get(source * m + target).copied()
        } else {
            None
        }
    }

    /// The region index of every neuron (M values).
    pub fn neuron_regions(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.n_neurons);
        for (r, range) in self.regions.iter().enumerate() {
            out.extend(std::iter::repeat_n(r, range.len()));
        }
        out
    }

    /// The region of `neuron`, or `None` out of range.
    pub fn region_of(&self, neuron: usize) -> Option<usize> {
        self.regions.iter().position(|r| r.contains(&neuron))
    }

    /// Number of assigned entries (see [`Bio2artNetwork::connected`]).
    pub fn connection_count(&self) -> usize {
        self.connected.iter().filter(|&&c| c).count()
    }

    /// Number of nonzero weights.
    pub fn nonzero_count(&self) -> usize {
        self.weights.iter().filter(|&&w| w != 0.0).count()
    }

    /// Sum of all weights.
    pub fn total_weight(&self) -> f64 {
        self.weights.iter().sum()
    }

    /// Sum of the block from region `source` to region `target`, or `None` out of range.
    pub fn block_sum(&self, source: usize, target: usize) -> Option<f64> {
        let (rs, rt) = (self.regions.get(source)?, self.regions.get(target)?);
        let m = self.n_neurons;
        let mut total = 0.0;
        for a in rs.clone() {
            total += self.weights.get(a * m + rt.start..a * m + rt.end)?.iter().sum::<f64>();
        }
        Some(total)
    }

    /// The weights transposed: row = target, column = source (`W_hh[to, from]`, the PyTorch
    /// recurrent-weight layout). Upstream's bio_rnn_mem copies [`Bio2artNetwork::weights`]
    /// into `W_hh` *without* this transpose.
    pub fn transposed(&self) -> Vec<f64> {
        let m = self.n_neurons;
        let mut t = vec![0.0; m * m];
        for (k, &w) in self.weights.iter().take(m * m).enumerate() {
            t[(k % m) * m + k / m] = w;
        }
        t
    }
}

/// `importnet.from_conn_mat(data_name, neuron_density=..., ...)` with an explicit random stream.
///
/// See the [module documentation](crate::conversion) for the algorithm. With [`Stream::python`] and
/// seed s the result equals upstream's after `random.seed(s)`, bit for bit.
///
/// # Errors
/// [`Error::InvalidParameter`] (see [`Bio2artConfig::validate`]), the errors of
/// [`NeuronDensity::resolve`], and [`Error::TooLarge`] when M exceeds [`MAX_NEURONS`] or
/// the M x M matrix cannot be allocated.
pub fn convert(connectome: &Connectome, config: &Bio2artConfig, rng: &mut Stream) -> Result<Bio2artNetwork> {
    config.validate()?;
    let nd = config.neuron_density.resolve(connectome)?;
    let n = connectome.n_regions();
    let c = connectome.weights();
    let names = connectome.region_names();

    let m_total = nd.iter().try_fold(0usize, |s, &k| s.checked_add(k));
    let too_large = |neurons: usize, detail: &str| Error::TooLarge {
        neurons,
        detail: detail.to_string(),
    };
    let m_total = m_total.ok_or_else(|| too_large(usize::MAX, "neuron count overflows usize"))?;
    if m_total > MAX_NEURONS {
        return Err(too_large(
            m_total,
            "more than MAX_NEURONS neurons (a dense M x M matrix)",
        ));
    }
    let cells = m_total
        .checked_mul(m_total)
        .filter(|c| {
            c.checked_mul(std::mem::size_of::<f64>())
                .is_some_and(|b| b <= isize::MAX as usize)
        })
        .ok_or_else(|| too_large(m_total, "M * M overflows"))?;
    let mut weights: Vec<f64> = Vec::new();
    weights
        .try_reserve_exact(cells)
        .map_err(|e| too_large(m_total, &e.to_string()))?;
    weights.resize(cells, 0.0);
    let mut connected: Vec<bool> = Vec::new();
    connected
        .try_reserve_exact(cells)
        .map_err(|e| too_large(m_total, &e.to_string()))?;
    connected.resize(cells, false);

    let mut regions = Vec::with_capacity(n);
    let mut ids: Vec<Vec<usize>> = Vec::with_capacity(n);
    let mut off = 0;
    for &k in &nd {
        regions.push(off..off + k);
        ids.push((off..off + k).collect());
        off += k;
    }

    let s_in = connectome.column_sums();
    let mut warnings = Vec::new();
    let mut set = |src: usize, dst: usize, v: f64| {
        weights[src * m_total + dst] = v;
        connected[src * m_total + dst] = true;
    };

    for i in 0..n {
        let n_i = ids[i].len();
        if config.intrinsic_conn {
            let w_int = (config.intrinsic_wei * s_in[i]) / (1.0 - config.intrinsic_wei);
            let k = intrinsic_count(config.target_sparsity_intrinsic, n_i, config.keep_diag);
            if n_i == 1 && !config.keep_diag {
                warnings.push(Warning::LostIntrinsicWeight {
                    region: i,
                    name: names[i].clone(),
                    weight: w_int,
                });
            }
            let blocks = Blocks::new(w_int, n_i * k, config.rand_partition, rng);
            for pos in 0..n_i {
                let src = ids[i][pos];
                let mut cand = ids[i].clone();
                if !config.keep_diag {
                    if let Some(p) = cand.iter().position(|&x| x == src) {
                        cand.remove(p);
                    }
                }
                rng.shuffle(&mut cand);
                for (t, &dst) in cand.iter().take(k).enumerate() {
                    set(src, dst, blocks.value(pos * k + t));
                }
            }
        }
        for j in 0..n {
            let cij = c[i * n + j];
            if cij <= 0.0 {
                continue;
            }
            if i == j {
                warnings.push(Warning::SelfConnection {
                    region: i,
                    name: names[i].clone(),
                });
            }
            let k = keep_count(config.target_sparsity, ids[j].len());
            let blocks = Blocks::new(cij, n_i * k, config.rand_partition, rng);
            // Upstream iterates over region i's list while shuffling region j's list in place;
            // reading by position reproduces that even when i == j.
            for pos in 0..n_i {
                let src = ids[i][pos];
                rng.shuffle(&mut ids[j]);
                for (t, &dst) in ids[j].iter().take(k).enumerate() {
                    set(src, dst, blocks.value(pos * k + t));
                }
            }
        }
    }

    Ok(Bio2artNetwork {
        connectome: connectome.name().to_string(),
        n_neurons: m_total,
        weights,
        connected,
        regions,
        upstream_region_neuron_ids: ids,
        neuron_counts: nd,
        warnings,
    })
}

/// The weights of one block: equal (`total / count`) or one stick-breaking partition.
enum Blocks {
    Equal(f64),
    Parts(Vec<f64>),
}

impl Blocks {
    fn new(total: f64, count: usize, partition: bool, rng: &mut Stream) -> Self {
        if partition {
            Blocks::Parts(stick_partition(total, count, rng))
        } else {
            Blocks::Equal(total / count as f64)
        }
    }

    fn value(&self, idx: usize) -> f64 {
        match self {
            Blocks::Equal(v) => *v,
            Blocks::Parts(p) => p.get(idx).copied().unwrap_or(0.0),
        }
    }
}

/// `utils._float_partition(f, n)`: stick breaking, residual, shuffle.
pub(crate) fn stick_partition(f: f64, n: usize, rng: &mut Stream) -> Vec<f64> {
    let mut parts = Vec::with_capacity(n.max(1));
    let mut rest = f;
    for _ in 1..n {
        let x = rng.uniform(0.0, rest.abs());
        parts.push(x);
        rest -= x;
    }
    let mut sum = 0.0;
    for &p in &parts {
        sum += p;
    }
    parts.push(f - sum);
    rng.shuffle(&mut parts);
    parts
}

/// Extrinsic targets per source neuron: `n` when `frac == 1.0` exactly, else
/// `max(1, round_half_even(frac * n))`.
pub(crate) fn keep_count(frac: f64, n: usize) -> usize {
    if frac == 1.0 {
        return n;
    }
    let x = frac * n as f64;
    if x < 1.0 {
        1
    } else {
        x.round_ties_even() as usize
    }
}

/// Intrinsic targets per source neuron (upstream's rule, at least 1).
pub(crate) fn intrinsic_count(tsi: f64, n: usize, keep_diag: bool) -> usize {
    let k = if tsi == 1.0 {
        if keep_diag {
            n
        } else {
            n.saturating_sub(1)
        }
    } else {
        let x = tsi * n as f64;
        if x < 1.0 {
            1
        } else {
            let k = x.round_ties_even() as usize;
            if !keep_diag && k == n {
                k - 1
            } else {
                k
            }
        }
    };
    k.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_count_rounds_half_to_even_and_floors_at_one() {
        assert_eq!(keep_count(0.8, 4), 3); // 3.2
        assert_eq!(keep_count(0.2, 4), 1); // 0.8 -> 1
        assert_eq!(keep_count(0.5, 5), 2); // 2.5 -> 2
        assert_eq!(keep_count(0.5, 3), 2); // 1.5 -> 2
        assert_eq!(keep_count(0.0, 7), 1);
        assert_eq!(keep_count(1.0, 7), 7);
    }

    #[test]
    fn intrinsic_count_cases() {
        assert_eq!(intrinsic_count(1.0, 4, true), 4);
        assert_eq!(intrinsic_count(1.0, 4, false), 3);
        assert_eq!(intrinsic_count(1.0, 1, false), 1);
        assert_eq!(intrinsic_count(0.9, 4, false), 3); // 3.6 -> 4 == n -> 3
        assert_eq!(intrinsic_count(0.9, 4, true), 4);
        assert_eq!(intrinsic_count(0.1, 4, false), 1);
        assert_eq!(intrinsic_count(0.5, 1, false), 1);
    }

    #[test]
    fn stick_partition_sums_to_total() {
        let mut rng = Stream::seeded(9);
        let p = stick_partition(2.5, 40, &mut rng);
        assert_eq!(p.len(), 40);
        assert!((p.iter().sum::<f64>() - 2.5).abs() < 1e-12);
        assert_eq!(stick_partition(1.5, 1, &mut rng), vec![1.5]);
    }
}
