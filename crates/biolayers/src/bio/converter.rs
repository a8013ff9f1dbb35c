//! `BioConverter`: attaches [`BioSynapses`] to every convertible weight of a model, at any depth
//! of its containers, and the training step that runs the mechanisms in upstream's order.
//!
//! The converter walks the model tree ([`visit_layers`], upstream's `model.modules()`): every
//! layer that lists weights in [`Module::learnables`] is converted: dense and conv layers
//! (their kernel), an [`ElmanRnn`](crate::layers::ElmanRnn) (input, recurrent and readout
//! weights; the recurrent one on its topology's support) and a
//! [`ConvLstm`](crate::layers::ConvLstm) (input and recurrent kernels), inside nested
//! [`Sequential`](crate::layers::Sequential)s and [`Residual`](crate::layers::Residual) blocks
//! too. Every other layer with parameters, and every frozen weight, is reported in
//! [`BioModel::skipped`] with its path and why. A converted weight is named by its layer's path
//! and the weight's name ([`ConvertedLayer::key`], e.g. `"2.main.0.kernel"`, `"1.w_hh"`).
//!
//! Upstream defines weight splitting and Dale's principle for `Linear` and `Conv2d` only; here
//! they apply to dense and conv layers, and a recurrent layer ([`Module::learnable`] `None`)
//! that would get either is refused with [`crate::Error::InvalidConfig`] naming its path (see
//! `docs/synaptic-diversity.md`).

use std::borrow::Cow;

use bioautograd::{Graph, Tensor, Var};
use biorng::{Stream, StreamState};

use super::{BioConfig, BioSynapses, Distribution, SplitActivation};
use crate::error::{invalid, Result};
use crate::layers::{layer_at_mut, visit_layers, Learnable, Module};
use crate::optim::Optimizer;
use crate::train::train_step_with;

/// Which converted layer weight splitting skips (and Dale enforcement leaves alone).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LastLayer {
    /// Upstream's rule: among the converted layers that are direct children of the model (a
    /// path of one segment), the last one is marked when there is more than one; layers inside
    /// nested containers are never marked (as upstream, which looks at `model.children()`).
    #[default]
    Upstream,
    /// Mark the layer at this index of a `Sequential` (its path `"<index>"`).
    Index(usize),
    /// Mark the layer at this path (as [`visit_layers`] names it, e.g. `"3.1"`).
    Path(String),
    /// Mark none (every converted layer is split).
    None,
}

/// Converts models for synaptic diversity.
#[derive(Debug, Clone, Default)]
pub struct BioConverter {
    /// The configuration every layer gets (layer index and count are filled in per layer).
    pub config: BioConfig,
    /// The last-layer rule.
    pub last_layer: LastLayer,
}

/// One converted weight.
#[derive(Debug, Clone)]
pub struct ConvertedLayer {
    /// Path of its layer in the model (as [`visit_layers`] names it: `"0"`, `"2.main.0"`; for a
    /// flat `Sequential` the layer's index).
    pub path: String,
    /// The weight's name inside its layer (`kernel`, `w_ih`, `w_hh`, `w_out`, `recurrent_kernel`).
    pub weight: String,
    /// Index of the weight among its layer's [`Module::params`].
    pub layer_param: usize,
    /// Index of the weight in [`Module::params`] of the whole model.
    pub param: usize,
    /// Its state.
    pub synapses: BioSynapses,
}

impl ConvertedLayer {
    /// `"<path>.<weight>"` (`"<weight>"` when the model is the layer itself): the name
    /// [`BioModel::synapses_at`] accepts.
    pub fn key(&self) -> String {
        join(&self.path, &self.weight)
    }
    /// The index of the layer in a flat `Sequential` (its path when that is a number).
    pub fn layer_index(&self) -> Option<usize> {
        self.path.parse().ok()
    }
}

/// A layer or weight with parameters that the converter left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedWeight {
    /// Path of the layer.
    pub path: String,
    /// The layer's name ([`Module::name`]).
    pub layer: String,
    /// The weight, when only that one was skipped; `None`: the whole layer.
    pub weight: Option<String>,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for SkippedWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = match &self.weight {
            Some(w) => join(&self.path, w),
            None => self.path.clone(),
        };
        write!(f, "{at} ({}): {}", self.layer, self.reason)
    }
}

/// A converted model's synaptic-diversity state.
#[derive(Debug, Clone)]
pub struct BioModel {
    /// The converted weights, in model (parameter) order.
    pub layers: Vec<ConvertedLayer>,
    /// Layers and weights with parameters that were not converted (path and why), reported
    /// rather than silently skipped. Biases are never converted (upstream never touches them)
    /// and not listed.
    pub skipped: Vec<SkippedWeight>,
    rng: Stream,
    steps: u64,
}

/// Which mechanisms a training step runs (upstream's README order: update → volume-dependent →
/// fuzzy → crystallise → optimiser step → rejuvenate every N steps; Dale enforcement after the step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BioSchedule {
    /// `update_fuzzy_learning_rates` (temporal/activity/weight-adaptive).
    pub update_fuzzy: bool,
    /// `volume_dependent_lr`.
    pub volume_dependent_lr: bool,
    /// `fuzzy_learning_rates` (`grad *= p`).
    pub fuzzy_learning_rates: bool,
    /// `crystallize`.
    pub crystallize: bool,
    /// `rejuvenate_weights` every this many steps.
    pub rejuvenate_every: Option<u64>,
    /// `enforce_dales_principle` after every step (needs `apply_dales_principle`).
    pub enforce_dales_principle: bool,
}

impl Default for BioSchedule {
    /// Fuzzy learning rates with their updates; nothing else.
    fn default() -> Self {
        BioSchedule {
            update_fuzzy: true,
            volume_dependent_lr: false,
            fuzzy_learning_rates: true,
            crystallize: false,
            rejuvenate_every: None,
            enforce_dales_principle: false,
        }
    }
}

/// `path.segment`, or `segment` alone at the root.
fn join(path: &str, segment: &str) -> String {
    if path.is_empty() {
        segment.to_string()
    } else {
        format!("{path}.{segment}")
    }
}

/// A layer the converter will convert: where it is and which of its weights.
struct Planned {
    path: String,
    name: String,
    first_param: usize,
    /// A dense or conv layer ([`Module::learnable`] is `Some`): splitting and Dale apply.
    feed_forward: bool,
    /// `(index in the layer, weight name, shape and support)`.
    weights: Vec<(usize, String, Learnable)>,
}

impl BioConverter {
    /// A converter with `config` and upstream's last-layer rule.
    pub fn new(config: BioConfig) -> Self {
        BioConverter {
            config,
            last_layer: LastLayer::Upstream,
        }
    }

    /// The layers to convert and what is skipped, from a walk of the model tree.
    fn plan(model: &dyn Module) -> Result<(Vec<Planned>, Vec<SkippedWeight>)> {
        let mut planned = Vec::new();
        let mut skipped = Vec::new();
        for v in visit_layers(model) {
            let params = v.layer.params();
            if params.is_empty() {
                continue;
            }
            let name = v.layer.name();
            let learnables = v.layer.learnables();
            if learnables.is_empty() {
                skipped.push(SkippedWeight {
                    path: v.path,
                    layer: name,
                    weight: None,
                    reason: "not a dense, conv or recurrent layer (its parameters are left as they are)".into(),
                });
                continue;
            }
            let mut weights = Vec::new();
            for (j, learnable) in learnables {
                let p = params.get(j).ok_or_else(|| {
                    invalid(
                        "layer",
                        &v.path,
                        format!("{name} lists weight {j} among its {} parameters", params.len()),
                    )
                })?;
                // Residual blocks qualify their parameters' names (`main.0.conv2d.kernel`).
                let weight = p.name.rsplit('.').next().unwrap_or(&p.name).to_string();
                if !p.is_trainable() {
                    skipped.push(SkippedWeight {
                        path: v.path.clone(),
                        layer: name.clone(),
                        weight: Some(weight),
                        reason: "frozen (rejuvenation and Dale's principle would change a weight that must stay fixed)"
                            .into(),
                    });
                    continue;
                }
                weights.push((j, weight, learnable));
            }
            if !weights.is_empty() {
                planned.push(Planned {
                    feed_forward: v.layer.learnable().is_some(),
                    path: v.path,
                    name,
                    first_param: v.first_param,
                    weights,
                });
            }
        }
        Ok((planned, skipped))
    }

    /// The path of the layer the last-layer rule marks.
    fn marked(&self, planned: &[Planned]) -> Result<Option<String>> {
        let converted = || planned.iter().map(|p| p.path.as_str()).collect::<Vec<_>>();
        let check = |path: String, what: &str| {
            if planned.iter().any(|p| p.path == path) {
                Ok(Some(path))
            } else {
                Err(invalid(
                    "last_layer",
                    what,
                    format!("is not a converted layer of the model (those are {:?})", converted()),
                ))
            }
        };
        match &self.last_layer {
            LastLayer::Upstream => {
                let direct: Vec<&Planned> = planned.iter().filter(|p| !p.path.contains('.')).collect();
                Ok((direct.len() > 1)
                    .then(|| direct.last().map(|p| p.path.clone()))
                    .flatten())
            }
            LastLayer::Index(i) => check(i.to_string(), &i.to_string()),
            LastLayer::Path(path) => check(path.clone(), path),
            LastLayer::None => Ok(None),
        }
    }

    /// Weight splitting on every planned layer but `last`; when a layer refuses Γ (it does not
    /// divide its output units), the layers already set are reset, so the model is unchanged.
    fn split_all(
        model: &mut dyn Module,
        planned: &[Planned],
        last: Option<&str>,
        gamma: usize,
        activation: SplitActivation,
    ) -> Result<()> {
        let targets: Vec<&str> = planned
            .iter()
            .map(|p| p.path.as_str())
            .filter(|&path| Some(path) != last)
            .collect();
        for (k, path) in targets.iter().enumerate() {
            let set = layer_at_mut(model, path)
                .ok_or_else(|| invalid("layer", path, "vanished from the model while it was converted"))
                .and_then(|layer| layer.set_weight_splitting(gamma, activation));
            if let Err(e) = set {
                for done in &targets[..k] {
                    if let Some(layer) = layer_at_mut(model, done) {
                        layer.set_weight_splitting(1, activation)?;
                    }
                }
                return Err(invalid(
                    "weight_splitting_Gamma",
                    gamma,
                    format!("refused by layer {path}: {e}"),
                ));
            }
        }
        Ok(())
    }

    /// Attaches per-weight state to every convertible weight of `model` at any depth (masked
    /// ones included: the factors matter only on the mask's support), sets up weight splitting
    /// (Γ > 1) on every converted layer but the last, and applies Dale's initialisation when
    /// configured. Layers are numbered in model order for `layer_adaptive`
    /// (`fuzzy_lr_layer_index`; `fuzzy_lr_total_layers` = the converted layers; the weights of
    /// one layer share its number).
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`]: a bad config; a last layer that is not converted;
    /// weight splitting (Γ > 1) or Dale's principle on a recurrent layer, or a Γ that does not
    /// divide a layer's output units. All are found before the model is changed.
    pub fn convert(&self, model: &mut dyn Module, rng: &mut Stream) -> Result<BioModel> {
        self.config.validate()?;
        let (planned, skipped) = Self::plan(model)?;
        let last = self.marked(&planned)?;
        let gamma = self.config.weight_splitting_gamma;
        for p in &planned {
            if self.config.apply_dales_principle && !p.feed_forward {
                return Err(invalid(
                    "apply_dales_principle",
                    true,
                    format!(
                        "{} ({}) is a recurrent layer: upstream defines Dale signs for Linear and Conv2d layers only",
                        p.path, p.name
                    ),
                ));
            }
            if gamma > 1 && Some(&p.path) != last.as_ref() && !p.feed_forward {
                return Err(invalid(
                    "weight_splitting_Gamma",
                    gamma,
                    format!(
                        "{} ({}) is a recurrent layer: upstream splits the outputs of Linear and Conv2d layers only \
                         (mark it as the last layer or convert with Γ <= 1)",
                        p.path, p.name
                    ),
                ));
            }
        }
        if gamma > 1 {
            Self::split_all(
                model,
                &planned,
                last.as_deref(),
                gamma,
                self.config.weight_splitting_activation_function,
            )?;
        }
        let total = planned.len();
        let mut layers = Vec::new();
        for (k, p) in planned.into_iter().enumerate() {
            let mut cfg = self.config.clone();
            cfg.fuzzy_lr_layer_index = k as i64;
            cfg.fuzzy_lr_total_layers = total as i64;
            let layer = layer_at_mut(model, &p.path)
                .ok_or_else(|| invalid("layer", &p.path, "vanished from the model while it was converted"))?;
            let is_last = Some(&p.path) == last.as_ref();
            let mut params = layer.params_mut();
            for (j, weight, l) in p.weights {
                let kernel = params
                    .get_mut(j)
                    .ok_or_else(|| invalid("layer", &p.path, format!("has no parameter {j}")))?;
                let mut synapses =
                    BioSynapses::new(&cfg, l.shape, kernel.value.data_mut()?, l.support.as_deref(), rng)?;
                synapses.set_last_layer(is_last);
                layers.push(ConvertedLayer {
                    path: p.path.clone(),
                    weight,
                    layer_param: j,
                    param: p.first_param + j,
                    synapses,
                });
            }
        }
        Ok(BioModel {
            layers,
            skipped,
            rng: rng.clone(),
            steps: 0,
        })
    }
}

impl BioModel {
    /// Training steps taken (rejuvenation runs when it is a multiple of
    /// [`BioSchedule::rejuvenate_every`]).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Sets the step counter (to continue a run from a checkpoint).
    pub fn set_steps(&mut self, steps: u64) {
        self.steps = steps;
    }

    /// The exact position of the stream every mechanism draws from (volume-dependent rates,
    /// rejuvenation, the dynamic factor updates). It runs on across epochs, so a checkpoint
    /// must carry it.
    pub fn rng_state(&self) -> StreamState {
        self.rng.state()
    }

    /// Continues the mechanisms' stream from `state` (see [`BioModel::rng_state`]).
    ///
    /// # Errors
    /// A state no stream can be in ([`biorng::Error::InvalidState`]); nothing changes then.
    pub fn set_rng_state(&mut self, state: &StreamState) -> Result<()> {
        self.rng = Stream::from_state(state)?;
        Ok(())
    }

    /// The state of the converted layer at index `layer` of a flat `Sequential` (the layer at
    /// path `"<layer>"`, see [`BioModel::synapses_at`]).
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] naming `layer` and the converted weights' keys.
    pub fn synapses(&self, layer: usize) -> Result<&BioSynapses> {
        self.synapses_at(&layer.to_string())
    }

    /// The state of the converted layer at index `layer` of a flat `Sequential`, to set its
    /// factors or signs ([`BioSynapses::set_factors`], [`BioSynapses::set_signs`]).
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] naming `layer` and the converted weights' keys.
    pub fn synapses_mut(&mut self, layer: usize) -> Result<&mut BioSynapses> {
        self.synapses_at_mut(&layer.to_string())
    }

    /// The state of one converted weight, by its key (`"<path>.<weight>"`, e.g. `"1.w_hh"`,
    /// see [`ConvertedLayer::key`]) or, for a layer with one converted weight, by the layer's
    /// path alone (`"2.main.0"`).
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] naming `at` and the converted weights' keys: no such
    /// weight, or a path whose layer has several converted weights.
    pub fn synapses_at(&self, at: &str) -> Result<&BioSynapses> {
        let i = self.position(at)?;
        Ok(&self.layers[i].synapses)
    }

    /// [`BioModel::synapses_at`], mutable.
    ///
    /// # Errors
    /// As [`BioModel::synapses_at`].
    pub fn synapses_at_mut(&mut self, at: &str) -> Result<&mut BioSynapses> {
        let i = self.position(at)?;
        Ok(&mut self.layers[i].synapses)
    }

    fn position(&self, at: &str) -> Result<usize> {
        if let Some(i) = self.layers.iter().position(|cl| cl.key() == at) {
            return Ok(i);
        }
        let on_path: Vec<usize> = (0..self.layers.len()).filter(|&i| self.layers[i].path == at).collect();
        match on_path.as_slice() {
            [i] => Ok(*i),
            [] => Err(invalid(
                "layer",
                at,
                format!("is not a converted layer (the converted weights are {:?})", self.keys()),
            )),
            several => Err(invalid(
                "layer",
                at,
                format!(
                    "has {} converted weights: name one of {:?}",
                    several.len(),
                    several.iter().map(|&i| self.layers[i].key()).collect::<Vec<_>>()
                ),
            )),
        }
    }

    fn keys(&self) -> Vec<String> {
        self.layers.iter().map(ConvertedLayer::key).collect()
    }

    /// The gradient mechanisms, between backward and the optimiser step.
    fn before_update(
        &mut self,
        g: &Graph,
        model: &dyn Module,
        grads: &mut [Option<Vec<f32>>],
        schedule: &BioSchedule,
    ) -> Result<()> {
        let params = model.params();
        let activity = schedule.update_fuzzy
            && self
                .layers
                .iter()
                .any(|cl| cl.synapses.config().fuzzy_lr_distribution == Distribution::Activity);
        // The layers by path, only when activity counting reads their outputs.
        let visits = if activity { visit_layers(model) } else { Vec::new() };
        for cl in &mut self.layers {
            let weight = host_values(&params.get(cl.param).ok_or_else(|| wrong_model(cl.param))?.value)?;
            let weight = &weight[..];
            if schedule.update_fuzzy {
                let out = if cl.synapses.config().fuzzy_lr_distribution == Distribution::Activity {
                    let layer = visits.iter().find(|v| v.path == cl.path).ok_or_else(|| {
                        invalid(
                            "model",
                            &cl.path,
                            "has no layer at this path (not the model this BioModel was converted from)",
                        )
                    })?;
                    layer
                        .layer
                        .weight_output(cl.layer_param)
                        .map(|v: Var| g.value(&v))
                        .transpose()?
                } else {
                    None
                };
                let outputs = out.as_ref().map(activity_view).transpose()?;
                cl.synapses.update_fuzzy_learning_rates(
                    weight,
                    outputs.as_ref().map(|(v, n, s)| (&v[..], *n, *s)),
                    &mut self.rng,
                )?;
            }
            let Some(grad) = grads.get_mut(cl.param).and_then(Option::as_mut) else {
                continue;
            };
            if schedule.volume_dependent_lr {
                cl.synapses.volume_dependent_lr(weight, grad, &mut self.rng)?;
            }
            if schedule.fuzzy_learning_rates {
                cl.synapses.fuzzy_learning_rates(grad)?;
            }
            if schedule.crystallize {
                cl.synapses.crystallize(weight, grad)?;
            }
        }
        Ok(())
    }

    /// The weight mechanisms, after the optimiser step.
    fn after_update(&mut self, model: &mut dyn Module, schedule: &BioSchedule) -> Result<()> {
        self.steps += 1;
        let rejuvenate = schedule.rejuvenate_every.is_some_and(|n| n > 0 && self.steps % n == 0);
        if !rejuvenate && !schedule.enforce_dales_principle {
            return Ok(());
        }
        let mut params = model.params_mut();
        for cl in &self.layers {
            let value = &mut params.get_mut(cl.param).ok_or_else(|| wrong_model(cl.param))?.value;
            // A weight on a device is read back, changed on the host and uploaded again.
            let mut on_host = value.is_cuda().then(|| value.to_vec()).transpose()?;
            let w = match on_host.as_mut() {
                Some(v) => &mut v[..],
                None => value.data_mut()?,
            };
            if rejuvenate {
                cl.synapses.rejuvenate_weights(w, &mut self.rng)?;
            }
            if schedule.enforce_dales_principle {
                cl.synapses.enforce_dales_principle(w)?;
            }
            if let Some(v) = on_host {
                *value = Tensor::new(v, value.shape(), value.device())?;
            }
        }
        Ok(())
    }

    /// One training step of a converted model: forward, backward, the gradient mechanisms of
    /// `schedule`, the optimiser step, then the weight mechanisms. Returns the loss. With the
    /// `activity` distribution, each converted weight's output is read from the step's tape
    /// ([`Module::weight_output`]) and counted before the gradient mechanisms.
    pub fn train_step(
        &mut self,
        model: &mut dyn Module,
        opt: &mut Optimizer,
        x: Tensor,
        loss_fn: impl FnOnce(&Graph, &Var) -> bioautograd::Result<Var>,
        schedule: &BioSchedule,
    ) -> Result<f32> {
        // On a device the converted weights' gradients are read back for the mechanisms.
        let converted: Vec<usize> = self.layers.iter().map(|cl| cl.param).collect();
        let loss = train_step_with(
            model,
            opt,
            x,
            loss_fn,
            &converted,
            |g, m, grads| self.before_update(g, m, grads, schedule),
            |_| Ok(()),
        )?;
        self.after_update(model, schedule)?;
        Ok(loss)
    }
}

fn wrong_model(param: usize) -> crate::Error {
    invalid("model", param, "is not the model this BioModel was converted from")
}

/// The values of `t`: borrowed on the host, read back from a device.
fn host_values(t: &Tensor) -> Result<Cow<'_, [f32]>> {
    Ok(if t.is_cuda() {
        Cow::Owned(t.to_vec()?)
    } else {
        Cow::Borrowed(t.as_slice()?)
    })
}

/// `(values, batch, spatial)` of a layer output `(n, c)` or `(n, c, h, w)`.
fn activity_view(t: &Tensor) -> Result<(Cow<'_, [f32]>, usize, usize)> {
    let s = t.shape();
    let spatial: usize = s.iter().skip(2).product();
    Ok((host_values(t)?, s.first().copied().unwrap_or(0), spatial))
}
