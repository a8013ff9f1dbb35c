//! `BioConverter`: attaches [`BioSynapses`] to every dense and conv layer of a [`Sequential`]
//! model, and the training step that runs the mechanisms in upstream's order.

use bioautograd::{Graph, Tensor, Var};
use biorng::{Stream, StreamState};

use super::{BioConfig, BioSynapses, Distribution};
use crate::error::{invalid, Result};
use crate::layers::{Module, Sequential};
use crate::optim::Optimizer;
use crate::train::train_step_with;

/// Which learnable layer weight splitting skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LastLayer {
    /// Upstream's rule: among the model's direct learnable children, the last one is marked
    /// when there is more than one.
    #[default]
    Upstream,
    /// Mark the layer at this index of the `Sequential`.
    Index(usize),
    /// Mark none (every learnable layer is split).
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

/// One converted layer.
#[derive(Debug, Clone)]
pub struct ConvertedLayer {
    /// Index of the layer in the `Sequential`.
    pub layer: usize,
    /// Index of its kernel in [`Module::params`] of the whole model.
    pub param: usize,
    /// Its state.
    pub synapses: BioSynapses,
}

/// A converted model's synaptic-diversity state.
#[derive(Debug, Clone)]
pub struct BioModel {
    /// The converted layers, in model order.
    pub layers: Vec<ConvertedLayer>,
    /// Layers with parameters that could not be converted (name and why), reported rather than
    /// silently skipped.
    pub skipped: Vec<String>,
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

impl BioConverter {
    /// A converter with `config` and upstream's last-layer rule.
    pub fn new(config: BioConfig) -> Self {
        BioConverter {
            config,
            last_layer: LastLayer::Upstream,
        }
    }

    /// Attaches per-weight state to every dense and conv layer (masked ones included: the
    /// factors matter only on the mask's support), sets up weight splitting (Γ > 1) on every
    /// learnable layer but the last, and applies Dale's initialisation when configured.
    pub fn convert(&self, model: &mut Sequential, rng: &mut Stream) -> Result<BioModel> {
        self.config.validate()?;
        let mut param_offset = 0;
        let mut learnable = Vec::new();
        let mut skipped = Vec::new();
        for (i, layer) in model.layers().iter().enumerate() {
            let n_params = layer.params().len();
            match layer.learnable() {
                Some(l) => learnable.push((i, param_offset, l)),
                None if n_params > 0 => skipped.push(format!(
                    "{i}.{}: not a dense or conv layer (its parameters are left as they are)",
                    layer.name()
                )),
                None => {}
            }
            param_offset += n_params;
        }
        let last = match self.last_layer {
            LastLayer::Upstream => (learnable.len() > 1).then(|| learnable.last().map(|l| l.0)).flatten(),
            LastLayer::Index(i) => {
                if !learnable.iter().any(|l| l.0 == i) {
                    return Err(invalid("last_layer", i, "is not a dense or conv layer of the model"));
                }
                Some(i)
            }
            LastLayer::None => None,
        };
        let total = learnable.len();
        let mut layers = Vec::with_capacity(total);
        for (k, (i, param, l)) in learnable.into_iter().enumerate() {
            let mut cfg = self.config.clone();
            cfg.fuzzy_lr_layer_index = k as i64;
            cfg.fuzzy_lr_total_layers = total as i64;
            let layer = &mut model.layers_mut()[i];
            let is_last = Some(i) == last;
            if !is_last && cfg.weight_splitting_gamma > 1 {
                layer.set_weight_splitting(cfg.weight_splitting_gamma, cfg.weight_splitting_activation_function)?;
            }
            let name = layer.name();
            let mut params = layer.params_mut();
            let kernel = params.first_mut().ok_or_else(|| {
                invalid(
                    "layer",
                    name,
                    "a learnable layer must have its kernel as first parameter",
                )
            })?;
            let mut synapses = BioSynapses::new(&cfg, l.shape, kernel.value.data_mut()?, l.support.as_deref(), rng)?;
            synapses.set_last_layer(is_last);
            layers.push(ConvertedLayer {
                layer: i,
                param,
                synapses,
            });
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

    /// The state of the converted layer at index `layer` of the `Sequential`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] naming `layer` and the converted layers' indices.
    pub fn synapses(&self, layer: usize) -> Result<&BioSynapses> {
        self.layers
            .iter()
            .find(|cl| cl.layer == layer)
            .map(|cl| &cl.synapses)
            .ok_or_else(|| self.not_converted(layer))
    }

    /// The state of the converted layer at index `layer` of the `Sequential`, to set its
    /// factors or signs ([`BioSynapses::set_factors`], [`BioSynapses::set_signs`]).
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] naming `layer` and the converted layers' indices.
    pub fn synapses_mut(&mut self, layer: usize) -> Result<&mut BioSynapses> {
        match self.layers.iter().position(|cl| cl.layer == layer) {
            Some(i) => Ok(&mut self.layers[i].synapses),
            None => Err(self.not_converted(layer)),
        }
    }

    fn not_converted(&self, layer: usize) -> crate::Error {
        let converted: Vec<usize> = self.layers.iter().map(|cl| cl.layer).collect();
        invalid(
            "layer",
            layer,
            format!("is not a converted layer (the converted layers are {converted:?})"),
        )
    }

    /// The gradient mechanisms, between backward and the optimiser step.
    fn before_update(
        &mut self,
        g: &Graph,
        model: &Sequential,
        grads: &mut [Option<Vec<f32>>],
        schedule: &BioSchedule,
    ) -> Result<()> {
        let params = model.params();
        for cl in &mut self.layers {
            let weight = params
                .get(cl.param)
                .ok_or_else(|| wrong_model(cl.param))?
                .value
                .as_slice()?;
            if schedule.update_fuzzy {
                let out = if cl.synapses.config().fuzzy_lr_distribution == Distribution::Activity {
                    model.layers()[cl.layer]
                        .last_output()
                        .map(|v: Var| g.value(&v))
                        .transpose()?
                } else {
                    None
                };
                let outputs = out.as_ref().map(activity_view).transpose()?;
                cl.synapses
                    .update_fuzzy_learning_rates(weight, outputs, &mut self.rng)?;
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
    fn after_update(&mut self, model: &mut Sequential, schedule: &BioSchedule) -> Result<()> {
        self.steps += 1;
        let rejuvenate = schedule.rejuvenate_every.is_some_and(|n| n > 0 && self.steps % n == 0);
        if !rejuvenate && !schedule.enforce_dales_principle {
            return Ok(());
        }
        let mut params = model.params_mut();
        for cl in &self.layers {
            let w = params
                .get_mut(cl.param)
                .ok_or_else(|| wrong_model(cl.param))?
                .value
                .data_mut()?;
            if rejuvenate {
                cl.synapses.rejuvenate_weights(w, &mut self.rng)?;
            }
            if schedule.enforce_dales_principle {
                cl.synapses.enforce_dales_principle(w)?;
            }
        }
        Ok(())
    }

    /// One training step of a converted model: forward, backward, the gradient mechanisms of
    /// `schedule`, the optimiser step, then the weight mechanisms. Returns the loss.
    pub fn train_step(
        &mut self,
        model: &mut Sequential,
        opt: &mut Optimizer,
        x: Tensor,
        loss_fn: impl FnOnce(&Graph, &Var) -> bioautograd::Result<Var>,
        schedule: &BioSchedule,
    ) -> Result<f32> {
        let loss = train_step_with(
            model,
            opt,
            x,
            loss_fn,
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

/// `(values, batch, spatial)` of a layer output `(n, c)` or `(n, c, h, w)`.
fn activity_view(t: &Tensor) -> Result<(&[f32], usize, usize)> {
    let s = t.shape();
    let spatial: usize = s.iter().skip(2).product();
    Ok((t.as_slice()?, s.first().copied().unwrap_or(0), spatial))
}
