//! `BioConfig`: every field of upstream's `BioConfig` NamedTuple, with its default.

use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};

/// The ten fuzzy learning-rate distributions (serialised as upstream's strings, e.g.
/// `"layer_adaptive"`). Upstream silently falls back to `uniform` for an unknown string; here an
/// unknown name is a deserialisation error naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    Baseline,
    #[default]
    Uniform,
    Normal,
    Lognormal,
    Gamma,
    Beta,
    LayerAdaptive,
    WeightAdaptive,
    Temporal,
    Activity,
}

/// The activation applied to a layer's output before the weight-splitting group sum (upstream
/// accepts any callable; a serialisable config names one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitActivation {
    #[default]
    Identity,
    Relu,
    Tanh,
    Sigmoid,
}

impl SplitActivation {
    /// Applies the activation.
    pub fn apply(self, v: f32) -> f32 {
        match self {
            SplitActivation::Identity => v,
            SplitActivation::Relu => v.max(0.0),
            SplitActivation::Tanh => v.tanh(),
            SplitActivation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
        }
    }

    /// Its derivative at input `v`.
    pub fn derivative(self, v: f32) -> f32 {
        match self {
            SplitActivation::Identity => 1.0,
            SplitActivation::Relu => f32::from(u8::from(v > 0.0)),
            SplitActivation::Tanh => 1.0 - v.tanh().powi(2),
            SplitActivation::Sigmoid => {
                let s = 1.0 / (1.0 + (-v).exp());
                s * (1.0 - s)
            }
        }
    }
}

/// Upstream's `BioConfig` (field names kept, defaults kept). TOML/JSON via serde; unknown field
/// names are an error that names them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BioConfig {
    pub weight_splitting_activation_function: SplitActivation,
    pub fuzzy_learning_rate_factor_nu: f64,
    pub dampening_factor: f64,
    pub crystal_thresh: f64,
    pub rejuvenation_parameter_dre: f64,
    #[serde(rename = "weight_splitting_Gamma")]
    pub weight_splitting_gamma: usize,
    pub apply_dales_principle: bool,
    pub base_lr: f64,
    pub stability_factor: f64,
    pub lr_variability: f64,
    pub fuzzy_lr_distribution: Distribution,
    pub fuzzy_lr_min: f64,
    pub fuzzy_lr_max: f64,
    pub fuzzy_lr_dynamic: bool,
    pub fuzzy_lr_decay: f64,
    pub fuzzy_lr_update_freq: u64,
    /// Set by the converter (upstream: -1 = unset).
    pub fuzzy_lr_layer_index: i64,
    /// Set by the converter (upstream: -1 = unset).
    pub fuzzy_lr_total_layers: i64,
}

impl Default for BioConfig {
    fn default() -> Self {
        BioConfig {
            weight_splitting_activation_function: SplitActivation::Identity,
            fuzzy_learning_rate_factor_nu: 0.16,
            dampening_factor: 0.6,
            crystal_thresh: 4.5e-5,
            rejuvenation_parameter_dre: 8.0,
            weight_splitting_gamma: 0,
            apply_dales_principle: false,
            base_lr: 0.1,
            stability_factor: 2.0,
            lr_variability: 0.2,
            fuzzy_lr_distribution: Distribution::Uniform,
            fuzzy_lr_min: 0.5,
            fuzzy_lr_max: 2.0,
            fuzzy_lr_dynamic: false,
            fuzzy_lr_decay: 0.9995,
            fuzzy_lr_update_freq: 100,
            fuzzy_lr_layer_index: -1,
            fuzzy_lr_total_layers: -1,
        }
    }
}

fn positive(name: &'static str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(invalid(name, v, "must be positive"));
    }
    Ok(())
}

fn open_unit(name: &'static str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0 && v < 1.0) {
        return Err(invalid(name, v, "must be between 0 and 1 (exclusive)"));
    }
    Ok(())
}

impl BioConfig {
    /// Upstream's `_validate_parameters` rules, plus `fuzzy_lr_min <= fuzzy_lr_max` (both finite,
    /// min >= 0: upstream accepts 0, and its wide `[0, 10]` settings are used in practice),
    /// `fuzzy_lr_update_freq > 0` and `0 < fuzzy_lr_decay <= 1`, which upstream forgot.
    pub fn validate(&self) -> Result<()> {
        positive("fuzzy_learning_rate_factor_nu", self.fuzzy_learning_rate_factor_nu)?;
        open_unit("dampening_factor", self.dampening_factor)?;
        positive("crystal_thresh", self.crystal_thresh)?;
        positive("rejuvenation_parameter_dre", self.rejuvenation_parameter_dre)?;
        open_unit("base_lr", self.base_lr)?;
        positive("stability_factor", self.stability_factor)?;
        positive("lr_variability", self.lr_variability)?;
        if !(self.fuzzy_lr_min.is_finite() && self.fuzzy_lr_min >= 0.0) {
            return Err(invalid("fuzzy_lr_min", self.fuzzy_lr_min, "must be finite and >= 0"));
        }
        positive("fuzzy_lr_max", self.fuzzy_lr_max)?;
        if self.fuzzy_lr_min > self.fuzzy_lr_max {
            return Err(invalid(
                "fuzzy_lr_min",
                self.fuzzy_lr_min,
                format!(
                    "must be <= fuzzy_lr_max = {} (upstream silently sets every factor to the max)",
                    self.fuzzy_lr_max
                ),
            ));
        }
        if !(self.fuzzy_lr_decay.is_finite() && self.fuzzy_lr_decay > 0.0 && self.fuzzy_lr_decay <= 1.0) {
            return Err(invalid("fuzzy_lr_decay", self.fuzzy_lr_decay, "must be in (0, 1]"));
        }
        if self.fuzzy_lr_update_freq == 0 {
            return Err(invalid(
                "fuzzy_lr_update_freq",
                0,
                "must be > 0 (upstream divides by it)",
            ));
        }
        Ok(())
    }

    /// Parses a TOML document (unknown fields are errors naming them) and validates it.
    pub fn from_toml(text: &str) -> Result<Self> {
        let c: BioConfig = toml::from_str(text).map_err(|e| invalid("BioConfig", "(toml)", e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Serialises to TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| invalid("BioConfig", "(toml)", e.to_string()))
    }
}
