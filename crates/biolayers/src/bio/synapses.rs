//! `BioSynapses`: the per-layer state of upstream's `BioModule` and its operations.

use biorng::Stream;
use rand_distr::{Beta, Distribution as _, Gamma};

use super::config::{BioConfig, Distribution};
use crate::error::{invalid, Error, Result};

/// The shape of a layer's weight in this project's layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerShape {
    /// Dense weight `(inputs, outputs)`.
    Dense { inputs: usize, outputs: usize },
    /// Conv weight `(kh, kw, cin, cout)` (cin per group).
    Conv {
        kh: usize,
        kw: usize,
        cin: usize,
        cout: usize,
    },
}

impl LayerShape {
    /// Number of weights.
    pub fn len(self) -> usize {
        match self {
            LayerShape::Dense { inputs, outputs } => inputs * outputs,
            LayerShape::Conv { kh, kw, cin, cout } => kh * kw * cin * cout,
        }
    }
    /// Whether the weight is empty.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
    /// Number of output units (the last axis).
    pub fn outputs(self) -> usize {
        match self {
            LayerShape::Dense { outputs, .. } => outputs,
            LayerShape::Conv { cout, .. } => cout,
        }
    }
    /// The Dale sign group of flat weight index `i`: the output unit for dense layers (upstream
    /// `[out, 1]`), the (input channel, output channel) pair for conv layers (upstream
    /// `[out, in, 1, 1]`).
    fn sign_group(self, i: usize) -> usize {
        match self {
            LayerShape::Dense { outputs, .. } => i % outputs,
            LayerShape::Conv { cin, cout, .. } => i % (cin * cout),
        }
    }
    fn sign_groups(self) -> usize {
        match self {
            LayerShape::Dense { outputs, .. } => outputs,
            LayerShape::Conv { cin, cout, .. } => cin * cout,
        }
    }
}

/// Per-layer synaptic-diversity state: the fuzzy learning-rate factors `p` (weight-shaped), the
/// Dale signs, activity counts and schedule counters.
#[derive(Debug, Clone)]
pub struct BioSynapses {
    config: BioConfig,
    shape: LayerShape,
    /// Weights that exist (the connection mask's support); `None` = all.
    support: Option<Vec<bool>>,
    factors: Vec<f32>,
    signs: Option<Vec<f32>>,
    activation_count: Vec<f64>,
    activity_initialized: bool,
    weight_adaptive_initialized: bool,
    update_step: u64,
    last_layer: bool,
    warnings: Vec<String>,
}

/// The counters and flags of a layer's synapses that training changes besides the factors and
/// signs: with those, everything a resumed run needs ([`BioSynapses::counters`],
/// [`BioSynapses::set_counters`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SynapsesCounters {
    /// Accumulated activity per output unit (`activity` distribution).
    pub activation_count: Vec<f64>,
    /// Whether the `activity` factors were sampled once.
    pub activity_initialized: bool,
    /// Whether the `weight_adaptive` factors were sampled.
    pub weight_adaptive_initialized: bool,
    /// Calls of the `temporal` update so far (its decay runs every `fuzzy_lr_update_freq`).
    pub update_step: u64,
}

fn clamp(v: f64, c: &BioConfig) -> f32 {
    v.clamp(c.fuzzy_lr_min, c.fuzzy_lr_max) as f32
}

/// `1 + (2u·ν − ν)`, upstream's uniform factor from a uniform draw `u`.
fn uniform_factor(u: f64, nu: f64) -> f64 {
    1.0 + (2.0 * u * nu - nu)
}

/// A Gamma(shape, scale) draw from `rand_distr` (Marsaglia & Tsang 2000) on `rng`'s raw words.
/// Upstream draws from torch, so no NumPy or CPython stream is to be reproduced here.
///
/// # Errors
/// [`Error::InvalidConfig`] naming `shape` and `scale` unless both are finite and positive.
pub fn gamma_sample(shape: f64, scale: f64, rng: &mut Stream) -> Result<f64> {
    Ok(gamma(shape, scale)?.sample(rng))
}

fn gamma(shape: f64, scale: f64) -> Result<Gamma<f64>> {
    Gamma::new(shape, scale).map_err(|e| invalid("gamma", format!("shape {shape}, scale {scale}"), e.to_string()))
}

/// The draws of the distributions that need a sampler beyond uniforms and normals.
enum Sampler {
    Gamma(Gamma<f64>),
    Beta(Beta<f64>),
    None,
}

impl BioSynapses {
    /// Validates `config`, applies Dale's initialisation to `weight` when asked (signs drawn
    /// before the factors, as upstream), and samples the initial factors. `support` marks the
    /// weights that exist in a masked layer (factors elsewhere are kept at 1 and never matter).
    ///
    /// Unlike upstream's converter, `layer_adaptive` uses `fuzzy_lr_layer_index` /
    /// `fuzzy_lr_total_layers` *at construction*, so the factors really depend on depth.
    pub fn new(
        config: &BioConfig,
        shape: LayerShape,
        weight: &mut [f32],
        support: Option<&[bool]>,
        rng: &mut Stream,
    ) -> Result<Self> {
        config.validate()?;
        let n = shape.len();
        if weight.len() != n || support.is_some_and(|s| s.len() != n) {
            return Err(Error::ShapeMismatch {
                op: "BioSynapses::new",
                lhs_name: "weight",
                lhs: vec![weight.len()],
                rhs_name: "layer shape",
                rhs: vec![n],
            });
        }
        let mut s = BioSynapses {
            config: config.clone(),
            shape,
            support: support.map(<[bool]>::to_vec),
            factors: vec![1.0; n],
            signs: None,
            activation_count: vec![0.0; shape.outputs()],
            activity_initialized: false,
            weight_adaptive_initialized: false,
            update_step: 0,
            last_layer: false,
            warnings: Vec::new(),
        };
        if config.apply_dales_principle {
            let signs: Vec<f32> = (0..shape.sign_groups())
                .map(|_| rng.below(2) as f32 * 2.0 - 1.0)
                .collect();
            for (i, w) in weight.iter_mut().enumerate() {
                *w = w.abs() * signs[shape.sign_group(i)];
            }
            s.signs = Some(signs);
        }
        s.initialize_factors(rng)?;
        Ok(s)
    }

    fn on_support(&self, i: usize) -> bool {
        self.support.as_ref().is_none_or(|s| s[i])
    }

    /// Samples the factors for the configured distribution and clamps them to
    /// `[fuzzy_lr_min, fuzzy_lr_max]` (upstream's `_initialize_fuzzy_learning_rate_parameters`).
    /// `gamma` and `beta` draw through `rand_distr` (see [`gamma_sample`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `1/ν` is not a valid gamma or beta parameter (a `ν` so small
    /// that `1/ν` overflows); the factors are unchanged then.
    pub fn initialize_factors(&mut self, rng: &mut Stream) -> Result<()> {
        let c = self.config.clone();
        let nu = c.fuzzy_learning_rate_factor_nu;
        let mut layer_nu = nu;
        if c.fuzzy_lr_distribution == Distribution::LayerAdaptive {
            if c.fuzzy_lr_layer_index >= 0 && c.fuzzy_lr_total_layers > 0 {
                layer_nu = nu * (1.0 - 0.5 * c.fuzzy_lr_layer_index as f64 / c.fuzzy_lr_total_layers as f64);
            } else {
                self.warnings
                    .push("layer_adaptive requested but layer index or total not set; using uniform".to_string());
            }
        }
        let sampler = match c.fuzzy_lr_distribution {
            // Upstream's definition, kept: 1 + Gamma(1/ν, rate 1/ν), mean 2 before clamping.
            Distribution::Gamma => Sampler::Gamma(gamma(1.0 / nu, nu)?),
            Distribution::Beta => Sampler::Beta(
                Beta::new(1.0 / nu, 1.0 / nu)
                    .map_err(|e| invalid("fuzzy_learning_rate_factor_nu", nu, format!("beta(1/ν, 1/ν): {e}")))?,
            ),
            _ => Sampler::None,
        };
        for i in 0..self.factors.len() {
            if !self.on_support(i) {
                self.factors[i] = 1.0;
                continue;
            }
            let raw = match (c.fuzzy_lr_distribution, &sampler) {
                (_, Sampler::Gamma(g)) => 1.0 + g.sample(rng),
                (_, Sampler::Beta(b)) => 1.0 + (2.0 * b.sample(rng) - 1.0) * nu,
                (Distribution::Uniform | Distribution::Temporal, _) => uniform_factor(rng.uniform01(), nu),
                (Distribution::LayerAdaptive, _) => uniform_factor(rng.uniform01(), layer_nu),
                (Distribution::Normal, _) => 1.0 + nu * rng.standard_normal(),
                (Distribution::Lognormal, _) => (-nu * nu / 2.0 + nu * rng.standard_normal()).exp(),
                _ => 1.0,
            };
            self.factors[i] = clamp(raw, &c);
        }
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &BioConfig {
        &self.config
    }
    /// The weight shape.
    pub fn shape(&self) -> LayerShape {
        self.shape
    }
    /// The per-weight factors `p`.
    pub fn factors(&self) -> &[f32] {
        &self.factors
    }
    /// The Dale signs (per output unit for dense, per (input, output) channel pair for conv,
    /// output fastest), when enabled.
    pub fn signs(&self) -> Option<&[f32]> {
        self.signs.as_deref()
    }
    /// Accumulated activity counts per output unit (`activity` distribution).
    pub fn activation_count(&self) -> &[f64] {
        &self.activation_count
    }
    /// The counters and flags training changes (see [`SynapsesCounters`]).
    pub fn counters(&self) -> SynapsesCounters {
        SynapsesCounters {
            activation_count: self.activation_count.clone(),
            activity_initialized: self.activity_initialized,
            weight_adaptive_initialized: self.weight_adaptive_initialized,
            update_step: self.update_step,
        }
    }

    /// Replaces the factors `p` (weight-shaped, flat in the weight's layout). Nothing changes
    /// when a value is refused.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for another length than the weight's; [`Error::InvalidConfig`]
    /// naming the first bad index and value: non-finite, or outside `[0, fuzzy_lr_max]` (in f32,
    /// as the factors are stored; every
    /// factor upstream's mechanisms produce lies there: sampling and the dynamic updates clamp to
    /// `[fuzzy_lr_min, fuzzy_lr_max]`, crystallisation damps below `fuzzy_lr_min` towards 0), or,
    /// for a weight outside the connection mask, other than 1 (those factors are fixed at 1).
    pub fn set_factors(&mut self, factors: &[f32]) -> Result<()> {
        self.check_len("set_factors", "factors", factors.len())?;
        let max = self.config.fuzzy_lr_max;
        for (i, &p) in factors.iter().enumerate() {
            if !self.on_support(i) {
                if p != 1.0 {
                    return Err(invalid(
                        "factors",
                        format!("[{i}] = {p}"),
                        "weight outside the connection mask: its factor is fixed at 1",
                    ));
                }
            } else if !(p.is_finite() && p >= 0.0 && p <= max as f32) {
                return Err(invalid(
                    "factors",
                    format!("[{i}] = {p}"),
                    format!("must be finite and in [0, fuzzy_lr_max = {max}]"),
                ));
            }
        }
        self.factors.copy_from_slice(factors);
        Ok(())
    }

    /// Replaces the Dale signs (one per output unit for dense layers, per (input, output)
    /// channel pair for conv layers, output fastest). The weights are not touched: the next
    /// [`BioSynapses::enforce_dales_principle`] zeroes those of the wrong sign. Nothing changes
    /// when a value is refused.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `apply_dales_principle` is off or a sign is not exactly
    /// ±1 (naming its index and value); [`Error::ShapeMismatch`] for another length.
    pub fn set_signs(&mut self, signs: &[f32]) -> Result<()> {
        if !self.config.apply_dales_principle {
            return Err(invalid(
                "apply_dales_principle",
                false,
                "must be true for a layer to have Dale signs",
            ));
        }
        let groups = self.shape.sign_groups();
        if signs.len() != groups {
            return Err(Error::ShapeMismatch {
                op: "set_signs",
                lhs_name: "signs",
                lhs: vec![signs.len()],
                rhs_name: "sign groups",
                rhs: vec![groups],
            });
        }
        if let Some((i, s)) = signs.iter().enumerate().find(|(_, &s)| s != 1.0 && s != -1.0) {
            return Err(invalid("signs", format!("[{i}] = {s}"), "must be exactly 1 or -1"));
        }
        self.signs = Some(signs.to_vec());
        Ok(())
    }

    /// Replaces the counters and flags (see [`SynapsesCounters`]). Nothing changes when a value
    /// is refused.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for an `activation_count` of another length than the output
    /// units; [`Error::InvalidConfig`] naming the first count that is negative or not finite.
    pub fn set_counters(&mut self, counters: SynapsesCounters) -> Result<()> {
        let units = self.shape.outputs();
        if counters.activation_count.len() != units {
            return Err(Error::ShapeMismatch {
                op: "set_counters",
                lhs_name: "activation_count",
                lhs: vec![counters.activation_count.len()],
                rhs_name: "output units",
                rhs: vec![units],
            });
        }
        if let Some((i, c)) = counters
            .activation_count
            .iter()
            .enumerate()
            .find(|(_, c)| !(c.is_finite() && **c >= 0.0))
        {
            return Err(invalid(
                "activation_count",
                format!("[{i}] = {c}"),
                "must be finite and >= 0 (a count)",
            ));
        }
        self.activation_count = counters.activation_count;
        self.activity_initialized = counters.activity_initialized;
        self.weight_adaptive_initialized = counters.weight_adaptive_initialized;
        self.update_step = counters.update_step;
        Ok(())
    }

    /// Warnings upstream would only log (e.g. layer_adaptive without a layer index).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
    /// Whether this is the model's last learnable layer (weight splitting skips it, Dale
    /// enforcement leaves it alone).
    pub fn is_last_layer(&self) -> bool {
        self.last_layer
    }
    /// Marks (or unmarks) this layer as the last learnable one.
    pub fn set_last_layer(&mut self, last: bool) {
        self.last_layer = last;
    }

    fn check_len(&self, op: &'static str, what: &'static str, len: usize) -> Result<()> {
        if len != self.factors.len() {
            return Err(Error::ShapeMismatch {
                op,
                lhs_name: what,
                lhs: vec![len],
                rhs_name: "weight",
                rhs: vec![self.factors.len()],
            });
        }
        Ok(())
    }

    /// `grad *= p` (upstream `fuzzy_learning_rates`).
    pub fn fuzzy_learning_rates(&self, grad: &mut [f32]) -> Result<()> {
        self.check_len("fuzzy_learning_rates", "grad", grad.len())?;
        for (g, p) in grad.iter_mut().zip(&self.factors) {
            *g *= p;
        }
        Ok(())
    }

    /// Damps the factors of "crystallised" weights: where `|g|/|w| < crystal_thresh` or
    /// `|g| > mean|w|` (NaN comparisons false, as in IEEE/PyTorch), `p *= dampening_factor`
    /// (cumulative, not re-clamped). The mean runs over the mask's support.
    pub fn crystallize(&mut self, weight: &[f32], grad: &[f32]) -> Result<()> {
        self.check_len("crystallize", "weight", weight.len())?;
        self.check_len("crystallize", "grad", grad.len())?;
        let mean_a = self.support_mean(weight.iter().map(|w| f64::from(w.abs())));
        let thresh = self.config.crystal_thresh;
        let damp = self.config.dampening_factor as f32;
        for i in 0..weight.len() {
            if !self.on_support(i) {
                continue;
            }
            let a = f64::from(weight[i].abs());
            let g = f64::from(grad[i].abs());
            if g / a < thresh || g > mean_a {
                self.factors[i] *= damp;
            }
        }
        Ok(())
    }

    fn support_mean(&self, values: impl Iterator<Item = f64>) -> f64 {
        let (mut sum, mut count) = (0.0, 0usize);
        for (i, v) in values.enumerate() {
            if self.on_support(i) {
                sum += v;
                count += 1;
            }
        }
        if count == 0 {
            0.0
        } else {
            sum / count as f64
        }
    }

    /// `grad *= |N(m, lr_variability·m)|` with `m = base_lr·exp(-stability_factor·|w|/(|w|+1))`,
    /// a fresh draw per weight and call (upstream `volume_dependent_lr`).
    pub fn volume_dependent_lr(&self, weight: &[f32], grad: &mut [f32], rng: &mut Stream) -> Result<()> {
        self.check_len("volume_dependent_lr", "weight", weight.len())?;
        self.check_len("volume_dependent_lr", "grad", grad.len())?;
        let c = &self.config;
        for i in 0..weight.len() {
            if !self.on_support(i) {
                continue;
            }
            let a = f64::from(weight[i].abs());
            let m = c.base_lr * (-c.stability_factor * (a / (a + 1.0))).exp();
            let factor = (m + c.lr_variability * m * rng.standard_normal()).abs();
            grad[i] *= factor as f32;
        }
        Ok(())
    }

    /// Upstream's current `rejuvenate_weights`: weights are clamped to [-1, 1] (NaN → 0), each is
    /// replaced with probability `exp(-dre·|w|/std)` (always when it was NaN) by a draw of
    /// `clamp(exp(N(lm, ls/2)), -1, 1)`, the lognormal matching the layer's mean and std (mean or
    /// std ≤ 0 → 1e-8). Returns how many weights were replaced. Only the mask's support takes part.
    pub fn rejuvenate_weights(&self, weight: &mut [f32], rng: &mut Stream) -> Result<usize> {
        self.check_len("rejuvenate_weights", "weight", weight.len())?;
        let dre = self.config.rejuvenation_parameter_dre;
        let was_nan: Vec<bool> = weight.iter().map(|w| w.is_nan()).collect();
        let clamped: Vec<f64> = weight
            .iter()
            .map(|&w| if w.is_nan() { 0.0 } else { f64::from(w).clamp(-1.0, 1.0) })
            .collect();
        let (mean, std) = self.support_mean_std(&clamped);
        let mean = if mean.is_nan() || mean <= 0.0 { 1e-8 } else { mean };
        let std = if std.is_nan() || std <= 0.0 { 1e-8 } else { std };
        let lv = (1.0 + std * std / (mean * mean)).ln();
        let lm = mean.ln() - lv / 2.0;
        let ls = lv.sqrt();
        let idx: Vec<usize> = (0..weight.len()).filter(|&i| self.on_support(i)).collect();
        // Draw 1: a Bernoulli per weight; draw 2: a normal per weight (upstream's order).
        let replace: Vec<bool> = idx
            .iter()
            .map(|&i| {
                let p = (-dre * clamped[i].abs() / std).exp();
                let p = if p.is_finite() { p.clamp(0.0, 1.0) } else { 0.0 };
                rng.uniform01() < p || was_nan[i]
            })
            .collect();
        let mut count = 0;
        for (k, &i) in idx.iter().enumerate() {
            let fresh = (lm + 0.5 * ls * rng.standard_normal()).exp().clamp(-1.0, 1.0);
            weight[i] = if replace[k] {
                count += 1;
                fresh as f32
            } else {
                clamped[i] as f32
            };
        }
        Ok(count)
    }

    /// Upstream's legacy `rejuvenate_weights_old`, without its NaN bug: weights with
    /// `|N(mean, |max|w|/dre| + 1e-13)| > |w|` are replaced by `exp(N(lm, ls))`; where upstream
    /// takes `ln(mean)` of a negative mean (NaN weights), the mean is floored at 1e-8 as in the
    /// current algorithm. Returns how many weights were replaced.
    pub fn rejuvenate_weights_legacy(&self, weight: &mut [f32], rng: &mut Stream) -> Result<usize> {
        self.check_len("rejuvenate_weights_legacy", "weight", weight.len())?;
        let dre = self.config.rejuvenation_parameter_dre;
        let clamped: Vec<f64> = weight.iter().map(|&w| f64::from(w).clamp(-1.0, 1.0)).collect();
        let (mean, std) = self.support_mean_std(&clamped);
        let max_abs = (0..clamped.len())
            .filter(|&i| self.on_support(i))
            .fold(0f64, |m, i| m.max(clamped[i].abs()))
            .min(1.0);
        let spread = (max_abs / dre).abs() + 1e-13;
        let safe_mean = if mean.is_nan() || mean <= 0.0 { 1e-8 } else { mean };
        let safe_std = if std.is_nan() { 0.0 } else { std };
        let lv = (1.0 + safe_std * safe_std / (safe_mean * safe_mean)).ln();
        let lm = safe_mean.ln() - lv / 2.0;
        let ls = lv.sqrt();
        let mut count = 0;
        for i in 0..weight.len() {
            if !self.on_support(i) {
                continue;
            }
            let thr = (mean + spread * rng.standard_normal()).abs();
            let fresh = (lm + ls * rng.standard_normal()).exp();
            weight[i] = if thr > clamped[i].abs() {
                count += 1;
                fresh as f32
            } else {
                clamped[i] as f32
            };
        }
        Ok(count)
    }

    fn support_mean_std(&self, v: &[f64]) -> (f64, f64) {
        let vals: Vec<f64> = (0..v.len()).filter(|&i| self.on_support(i)).map(|i| v[i]).collect();
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        let var = vals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt())
    }

    /// `w ← relu(w·sign)·sign`: weights of the wrong sign become 0. Does nothing on the last layer.
    pub fn enforce_dales_principle(&self, weight: &mut [f32]) -> Result<()> {
        self.check_len("enforce_dales_principle", "weight", weight.len())?;
        if !self.config.apply_dales_principle {
            return Err(invalid(
                "apply_dales_principle",
                false,
                "must be true to enforce Dale's principle",
            ));
        }
        if self.last_layer {
            return Ok(());
        }
        let signs = self
            .signs
            .as_ref()
            .ok_or_else(|| invalid("apply_dales_principle", true, "signs missing"))?;
        for (i, w) in weight.iter_mut().enumerate() {
            let s = signs[self.shape.sign_group(i)];
            *w = (*w * s).max(0.0) * s;
        }
        Ok(())
    }

    /// `Σ|p| + Σ|sign|`: the L1 norm of this state's own tensors, as upstream's `l1_reg`
    /// (which sums the BioModule's parameters, not the layer's weights).
    pub fn l1_reg(&self) -> f64 {
        let p: f64 = self.factors.iter().map(|v| f64::from(v.abs())).sum();
        let s: f64 = self.signs.iter().flatten().map(|v| f64::from(v.abs())).sum();
        p + s
    }

    /// Upstream's `update_fuzzy_learning_rates`. `outputs` is this layer's output for the current
    /// batch as `(values, batch, spatial)` in `(batch, outputs, spatial)` order, needed by the
    /// `activity` distribution. Differences from upstream: `weight_adaptive` is initialised on the
    /// first call whether or not `fuzzy_lr_dynamic` is set (upstream never initialises it when
    /// dynamic); activity takes the outputs the layer already computed; its 10 % re-sampling coin
    /// comes from `rng` instead of CPython's global `random`.
    pub fn update_fuzzy_learning_rates(
        &mut self,
        weight: &[f32],
        outputs: Option<(&[f32], usize, usize)>,
        rng: &mut Stream,
    ) -> Result<()> {
        self.check_len("update_fuzzy_learning_rates", "weight", weight.len())?;
        let c = self.config.clone();
        if c.fuzzy_lr_distribution == Distribution::WeightAdaptive && !self.weight_adaptive_initialized {
            let mean_a = self.support_mean(weight.iter().map(|w| f64::from(w.abs())));
            for (i, w) in weight.iter().enumerate() {
                if self.on_support(i) {
                    let a = f64::from(w.abs());
                    let nu = c.fuzzy_learning_rate_factor_nu * (2.0 - a / (mean_a + 1e-8)).clamp(0.5, 1.5);
                    self.factors[i] = clamp(uniform_factor(rng.uniform01(), nu), &c);
                }
            }
            self.weight_adaptive_initialized = true;
            return Ok(());
        }
        if !c.fuzzy_lr_dynamic {
            return Ok(());
        }
        match c.fuzzy_lr_distribution {
            Distribution::Temporal => {
                self.update_step += 1;
                let k = c.fuzzy_lr_update_freq;
                if self.update_step % k != 0 {
                    return Ok(());
                }
                let noise = self.update_step % (10 * k) == 0;
                let nu = c.fuzzy_learning_rate_factor_nu;
                for i in 0..self.factors.len() {
                    if !self.on_support(i) {
                        continue;
                    }
                    let mut p = 1.0 + (f64::from(self.factors[i]) - 1.0) * c.fuzzy_lr_decay;
                    if noise {
                        p += 0.1 * (2.0 * rng.uniform01() * nu - nu);
                    }
                    self.factors[i] = clamp(p, &c);
                }
            }
            Distribution::Activity => {
                let Some((out, batch, spatial)) = outputs else {
                    return Ok(());
                };
                let units = self.shape.outputs();
                if out.len() != batch * units * spatial {
                    return Err(Error::ShapeMismatch {
                        op: "update_fuzzy_learning_rates (activity)",
                        lhs_name: "outputs",
                        lhs: vec![out.len()],
                        rhs_name: "(batch, outputs, spatial)",
                        rhs: vec![batch, units, spatial],
                    });
                }
                for b in 0..batch {
                    for u in 0..units {
                        let off = (b * units + u) * spatial;
                        let active = out[off..off + spatial].iter().filter(|v| v.abs() > 0.01).count();
                        self.activation_count[u] += active as f64;
                    }
                }
                if !self.activity_initialized || rng.uniform01() < 0.1 {
                    let mean = self.activation_count.iter().sum::<f64>() / units as f64;
                    let nu = c.fuzzy_learning_rate_factor_nu;
                    for i in 0..self.factors.len() {
                        if !self.on_support(i) {
                            continue;
                        }
                        let u = i % units;
                        let n = self.activation_count[u] / (mean + 1e-8);
                        let f = (1.0 + (n - 1.0) * 0.1).clamp(0.8, 1.2);
                        let nu_i = nu * (2.0 - f);
                        self.factors[i] = clamp(1.0 + (2.0 * rng.uniform01() - 1.0) * nu_i, &c);
                    }
                    self.activity_initialized = true;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
