//! `ElmanRnn`: a bio-instantiated recurrent layer with a fixed topology and a linear readout.
//!
//! `h_t = act(x_t·W_ih + b_ih + h_{t-1}·(W_hh ⊙ M) + b_hh)`, `h_0 = 0`, `ŷ_t = h_t·W_out + b_out`.
//! `M` (hidden × hidden, row = source neuron, column = target neuron) is the topology. The
//! whole recurrence is one fused op ([`Graph::elman_sequence`]: forward over all steps and
//! BPTT inside, no per-step tape nodes); its recurrent weight gradient is computed only on the
//! topology's support (masked GEMM), so gradients at absent
//! connections are exactly zero and the topology survives training (upstream zeroes
//! `weight_hh_l0.grad` at `W == 0` after every backward; with no weight decay both leave those
//! entries at exactly 0).
//!
//! Built burn style: [`ElmanRnnConfig`] → [`ElmanRnnConfig::init`] → [`Module::forward`].
//! [`ElmanRnn::new`] is the short form (default init, no freezing).
//!
//! Layout: our weights are PyTorch's transposed. `W_ih` is `(in, hidden)` = `weight_ih_l0ᵀ`,
//! `W_hh` is `(hidden, hidden)` with `W_hh[from, to]` = `weight_hh_l0[to, from]`, `W_out` is
//! `(hidden, out)` = `fc.weightᵀ`. Fans in [`RecurrentInit`] are PyTorch's (of the PyTorch shapes).
//!
//! # Shapes
//! Input `(batch, T, in)`, batch-first; output `(batch·T, out)`, one row per time step.

use std::sync::Arc;

use bioautograd::{Graph, RnnActivation, Tensor, TileMap, TileSize, Var};
use biorng::Stream;
use serde::{Deserialize, Serialize};

use super::{Learnable, Module, Param};
use crate::bio::LayerShape;
use crate::error::{invalid, Result};

/// The recurrent nonlinearity (serialised `"relu"` / `"tanh"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RnnNonlinearity {
    /// ReLU (upstream's default in the experiments).
    Relu,
    /// tanh.
    Tanh,
}

impl std::str::FromStr for RnnNonlinearity {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "relu" => Ok(RnnNonlinearity::Relu),
            "tanh" => Ok(RnnNonlinearity::Tanh),
            other => Err(invalid("nonlinearity", other, "expected relu or tanh")),
        }
    }
}

/// Upstream's three init schemes (`rnnmodels.ModelBio(init=...)`, serialised lowercase).
///
/// With `H` = hidden, `I` = input and `O` = output size, and `U(±l)` = `U(-l, l)`:
///
/// | scheme | `W_hh` | `W_ih` | readout `W_out` |
/// |---|---|---|---|
/// | `default` (`nn.RNN` / `nn.Linear` defaults) | `U(±1/√H)` | `U(±1/√H)` | `U(±1/√H)` (`kaiming_uniform(a=√5)`, fan_in = H) |
/// | `xavier` (`xavier_uniform_`, gain 1) | `U(±√(6/2H))` | `U(±√(6/(I+H)))` | `U(±√(6/(H+O)))` |
/// | `he` (`kaiming_uniform_(mode='fan_out')`, a = 0 → gain √2) | `U(±√(6/H))` | `U(±√(6/H))` (fan_out of `(H, I)` = H) | `U(±√(6/O))` (fan_out of `(O, H)` = O) |
///
/// Biases are PyTorch's defaults in every scheme: `b_ih`, `b_hh`, `b_out` ~ `U(±1/√H)` (upstream
/// only replaces weights). `he` uses `mode='fan_out'` for the readout too, as `ModelBio` does
/// (its plain `Model` uses `fan_in` there). Upstream's script replaces any non-`default` choice
/// by the nonlinearity's ([`RecurrentInit::upstream_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecurrentInit {
    /// PyTorch's `nn.RNN` / `nn.Linear` defaults.
    #[default]
    Default,
    /// `nn.init.xavier_uniform_`.
    Xavier,
    /// `nn.init.kaiming_uniform_(mode='fan_out')`.
    He,
}

impl RecurrentInit {
    /// What upstream's `biornnmemory.py` ends up using when its `init` setting is `requested`:
    /// `default` stays, anything else becomes `he` for relu and `xavier` for tanh.
    pub fn upstream_for(requested: RecurrentInit, nonlinearity: RnnNonlinearity) -> RecurrentInit {
        match (requested, nonlinearity) {
            (RecurrentInit::Default, _) => RecurrentInit::Default,
            (_, RnnNonlinearity::Relu) => RecurrentInit::He,
            (_, RnnNonlinearity::Tanh) => RecurrentInit::Xavier,
        }
    }

    /// The uniform bounds `(W_ih, W_hh, W_out)` for these sizes.
    pub fn bounds(self, input: usize, hidden: usize, output: usize) -> (f64, f64, f64) {
        let (i, h, o) = (input as f64, hidden as f64, output as f64);
        match self {
            RecurrentInit::Default => {
                let k = 1.0 / h.sqrt();
                (k, k, k)
            }
            RecurrentInit::Xavier => ((6.0 / (i + h)).sqrt(), (6.0 / (2.0 * h)).sqrt(), (6.0 / (h + o)).sqrt()),
            RecurrentInit::He => ((6.0 / h).sqrt(), (6.0 / h).sqrt(), (6.0 / o).sqrt()),
        }
    }
}

impl std::str::FromStr for RecurrentInit {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "default" => Ok(RecurrentInit::Default),
            "xavier" => Ok(RecurrentInit::Xavier),
            "he" => Ok(RecurrentInit::He),
            other => Err(invalid("init", other, "expected default, xavier or he")),
        }
    }
}

/// Configuration of an [`ElmanRnn`] (burn style: build, then [`ElmanRnnConfig::init`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ElmanRnnConfig {
    /// Input features per time step.
    pub input: usize,
    /// Hidden neurons `H`.
    pub hidden: usize,
    /// Readout outputs.
    pub output: usize,
    /// Recurrent nonlinearity.
    pub nonlinearity: RnnNonlinearity,
    /// Weight init scheme.
    pub init: RecurrentInit,
    /// `H·H` flags, `topology[from·H + to]`; `None` = fully connected (self-connections included).
    pub topology: Option<Vec<bool>>,
    /// Explicit initial recurrent weights `W_hh[from·H + to]` (e.g. `bio2art`'s `remap_w`),
    /// replacing the init scheme's draw (which is still made, so the other parameters get the
    /// same values either way). Must be 0 wherever `topology` is false.
    pub recurrent_weights: Option<Vec<f32>>,
    /// Keep `W_hh` at its initial value (upstream's `freeze_layer`); everything else trains.
    pub freeze_recurrent: bool,
}

impl ElmanRnnConfig {
    /// `input → hidden → output`, relu, default init, fully connected, trainable.
    pub fn new(input: usize, hidden: usize, output: usize) -> Self {
        ElmanRnnConfig {
            input,
            hidden,
            output,
            nonlinearity: RnnNonlinearity::Relu,
            init: RecurrentInit::Default,
            topology: None,
            recurrent_weights: None,
            freeze_recurrent: false,
        }
    }

    /// Sets the nonlinearity.
    pub fn with_nonlinearity(mut self, nonlinearity: RnnNonlinearity) -> Self {
        self.nonlinearity = nonlinearity;
        self
    }

    /// Sets the init scheme.
    pub fn with_init(mut self, init: RecurrentInit) -> Self {
        self.init = init;
        self
    }

    /// Sets the topology (`topology[from·H + to]`).
    pub fn with_topology(mut self, topology: Vec<bool>) -> Self {
        self.topology = Some(topology);
        self
    }

    /// Sets explicit initial recurrent weights (`W_hh[from·H + to]`).
    pub fn with_recurrent_weights(mut self, weights: Vec<f32>) -> Self {
        self.recurrent_weights = Some(weights);
        self
    }

    /// Freezes (`true`) the recurrent matrix.
    pub fn with_freeze_recurrent(mut self, freeze: bool) -> Self {
        self.freeze_recurrent = freeze;
        self
    }

    /// Checks sizes and the lengths and support of the optional matrices.
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        let h = self.hidden;
        if self.input == 0 || h == 0 || self.output == 0 {
            return Err(invalid(
                "hidden",
                format!("input {}, hidden {h}, output {}", self.input, self.output),
                "input, hidden and output sizes must be >= 1",
            ));
        }
        let hh = h
            .checked_mul(h)
            .ok_or_else(|| invalid("hidden", h, "hidden² overflows"))?;
        if let Some(t) = &self.topology {
            if t.len() != hh {
                return Err(invalid("topology", t.len(), format!("needs hidden² = {hh} entries")));
            }
        }
        if let Some(w) = &self.recurrent_weights {
            if w.len() != hh {
                return Err(invalid(
                    "recurrent_weights",
                    w.len(),
                    format!("needs hidden² = {hh} entries"),
                ));
            }
            if let Some(k) = w.iter().position(|v| !v.is_finite()) {
                return Err(invalid(
                    "recurrent_weights",
                    w[k],
                    format!("entry {k} (from {}, to {}) is not finite", k / h, k % h),
                ));
            }
            if let Some(t) = &self.topology {
                if let Some(k) = w.iter().zip(t).position(|(v, c)| !c && *v != 0.0) {
                    return Err(invalid(
                        "recurrent_weights",
                        w[k],
                        format!(
                            "entry {k} (from {}, to {}) is nonzero where the topology has no connection",
                            k / h,
                            k % h
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Draws the parameters from `rng`, in the order `W_ih`, `W_hh`, `b_ih`, `b_hh`, `W_out`,
    /// `b_out` (each in C order of our layout), masks `W_hh` with the topology, then applies
    /// [`ElmanRnnConfig::recurrent_weights`] and [`ElmanRnnConfig::freeze_recurrent`].
    ///
    /// # Errors
    /// See [`ElmanRnnConfig::validate`].
    pub fn init(&self, rng: &mut Stream) -> Result<ElmanRnn> {
        self.validate()?;
        let (input, hidden, output) = (self.input, self.hidden, self.output);
        let topology = self.topology.clone().unwrap_or_else(|| vec![true; hidden * hidden]);
        let (l_ih, l_hh, l_out) = self.init.bounds(input, hidden, output);
        let k_bias = 1.0 / (hidden as f64).sqrt();
        let mut u = |n: usize, bound: f64| -> Vec<f32> { (0..n).map(|_| rng.uniform(-bound, bound) as f32).collect() };
        let w_ih = u(input * hidden, l_ih);
        let mut w_hh = u(hidden * hidden, l_hh);
        for (w, &c) in w_hh.iter_mut().zip(&topology) {
            if !c {
                *w = 0.0;
            }
        }
        let (b_ih, b_hh) = (u(hidden, k_bias), u(hidden, k_bias));
        let (w_out, b_out) = (u(hidden * output, l_out), u(output, k_bias));
        if let Some(w) = &self.recurrent_weights {
            w_hh.clone_from(w);
        }
        let tiles = TileMap::from_bools(&topology, hidden, hidden, TileSize::CPU_DEFAULT)?;
        let t = |v: Vec<f32>, s: &[usize]| Tensor::from_vec(v, s);
        let mut w_hh = Param::new("w_hh", t(w_hh, &[hidden, hidden])?);
        w_hh.set_trainable(!self.freeze_recurrent);
        Ok(ElmanRnn {
            w_ih: Param::new("w_ih", t(w_ih, &[input, hidden])?),
            b_ih: Param::new("b_ih", t(b_ih, &[hidden])?),
            w_hh,
            b_hh: Param::new("b_hh", t(b_hh, &[hidden])?),
            w_out: Param::new("w_out", t(w_out, &[hidden, output])?),
            b_out: Param::new("b_out", t(b_out, &[output])?),
            topology_flags: topology,
            topology: Arc::new(tiles),
            hidden,
            nonlinearity: self.nonlinearity,
            last_states: None,
            last_output: None,
        })
    }
}

/// An Elman RNN with a masked recurrent matrix and a linear readout.
#[derive(Debug, Clone)]
pub struct ElmanRnn {
    w_ih: Param,
    b_ih: Param,
    w_hh: Param,
    b_hh: Param,
    w_out: Param,
    b_out: Param,
    topology_flags: Vec<bool>,
    topology: Arc<TileMap>,
    hidden: usize,
    nonlinearity: RnnNonlinearity,
    /// The hidden states `(batch·T, hidden)` of the last forward (the outputs of `W_ih` and
    /// `W_hh`, for activity counting).
    last_states: Option<Var>,
    /// The readout `(batch·T, out)` of the last forward (the output of `W_out`).
    last_output: Option<Var>,
}

impl ElmanRnn {
    /// A layer `input → hidden → output` whose recurrent weights exist only where
    /// `topology[from·hidden + to]` is true, with [`RecurrentInit::Default`] and a trainable
    /// recurrent matrix: `ElmanRnnConfig::new(..).with_topology(..).init(rng)`.
    pub fn new(
        input: usize,
        hidden: usize,
        output: usize,
        topology: &[bool],
        nonlinearity: RnnNonlinearity,
        rng: &mut Stream,
    ) -> Result<Self> {
        ElmanRnnConfig::new(input, hidden, output)
            .with_nonlinearity(nonlinearity)
            .with_topology(topology.to_vec())
            .init(rng)
    }

    /// The recurrent weights `(hidden, hidden)`, row = source.
    pub fn recurrent(&self) -> &Tensor {
        &self.w_hh.value
    }

    /// The topology `topology[from·hidden + to]`.
    pub fn topology(&self) -> &[bool] {
        &self.topology_flags
    }

    /// Hidden size.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// `true` when the recurrent matrix is frozen.
    pub fn recurrent_frozen(&self) -> bool {
        !self.w_hh.is_trainable()
    }

    /// Replaces the recurrent weights (`W_hh[from·H + to]`, e.g. after `bio2art::remap_w` of
    /// [`ElmanRnn::recurrent`]); they must be finite and 0 off the topology.
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] for a wrong length, a non-finite value or a weight at an
    /// absent connection; the layer is unchanged then.
    pub fn set_recurrent(&mut self, weights: &[f32]) -> Result<()> {
        let h = self.hidden;
        let check = ElmanRnnConfig {
            topology: Some(self.topology_flags.clone()),
            recurrent_weights: Some(weights.to_vec()),
            ..ElmanRnnConfig::new(1, h, 1)
        };
        check.validate()?;
        self.w_hh.value = Tensor::from_vec(weights.to_vec(), &[h, h])?;
        Ok(())
    }

    /// Freezes (`true`) or unfreezes the recurrent matrix.
    pub fn set_freeze_recurrent(&mut self, freeze: bool) {
        self.w_hh.set_trainable(!freeze);
    }
}

impl Module for ElmanRnn {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let shape = g.shape(x)?;
        if shape.len() != 3 {
            return Err(invalid(
                "input",
                format!("{shape:?}"),
                "an RNN takes (batch, T, features)",
            ));
        }
        let (b, t) = (shape[0], shape[1]);
        let (w_ih, b_ih, w_hh, b_hh) = (
            self.w_ih.bind(g),
            self.b_ih.bind(g),
            self.w_hh.bind(g),
            self.b_hh.bind(g),
        );
        let (w_out, b_out) = (self.w_out.bind(g), self.b_out.bind(g));
        let activation = match self.nonlinearity {
            RnnNonlinearity::Relu => RnnActivation::Relu,
            RnnNonlinearity::Tanh => RnnActivation::Tanh,
        };
        // One fused node for the whole recurrence (forward and BPTT); a frozen `W_hh` is an
        // input of the graph, so no dW_hh is computed.
        let states = g.elman_sequence(x, &w_ih, &b_ih, &w_hh, &b_hh, Some(&self.topology), activation)?;
        let all = g.reshape(&states, &[b * t, self.hidden])?;
        let y = g.add(&g.matmul(&all, &w_out)?, &b_out)?;
        self.last_states = Some(all);
        self.last_output = Some(y);
        Ok(y)
    }
    fn params(&self) -> Vec<&Param> {
        vec![&self.w_ih, &self.b_ih, &self.w_hh, &self.b_hh, &self.w_out, &self.b_out]
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![
            &mut self.w_ih,
            &mut self.b_ih,
            &mut self.w_hh,
            &mut self.b_hh,
            &mut self.w_out,
            &mut self.b_out,
        ]
    }
    fn name(&self) -> String {
        "elman_rnn".into()
    }
    fn last_output(&self) -> Option<Var> {
        self.last_output
    }
    /// `W_ih (in, hidden)` (parameter 0), `W_hh (hidden, hidden)` with the topology as support
    /// (parameter 2) and the readout `W_out (hidden, out)` (parameter 4), all dense-shaped
    /// `(inputs, outputs)`.
    fn learnables(&self) -> Vec<(usize, Learnable)> {
        let dense = |inputs, outputs| LayerShape::Dense { inputs, outputs };
        let input = self.w_ih.value.shape().first().copied().unwrap_or(0);
        let output = self.w_out.value.shape().get(1).copied().unwrap_or(0);
        let partial = self.topology_flags.iter().any(|&c| !c);
        vec![
            (
                0,
                Learnable {
                    shape: dense(input, self.hidden),
                    support: None,
                },
            ),
            (
                2,
                Learnable {
                    shape: dense(self.hidden, self.hidden),
                    support: partial.then(|| self.topology_flags.clone()),
                },
            ),
            (
                4,
                Learnable {
                    shape: dense(self.hidden, output),
                    support: None,
                },
            ),
        ]
    }
    /// The hidden states `(batch·T, hidden)` for `W_ih` and `W_hh` (their output units are the
    /// hidden neurons), the readout `(batch·T, out)` for `W_out`.
    fn weight_output(&self, param: usize) -> Option<Var> {
        match param {
            0 | 2 => self.last_states,
            4 => self.last_output,
            _ => None,
        }
    }
}
