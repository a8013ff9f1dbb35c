//! Parameter-free layers, batch-norm and `Sequential`.
//!
//! # Shapes
//! Activations and dropout keep the shape; `Flatten` maps `(n, ...)` to `(n, Π...)`; pooling and
//! batch-norm take NCHW.

use bioautograd::ops::pool::Pool2d;
use bioautograd::{BatchNormState, Graph, Tensor, Var};
use biorng::Stream;
use serde::{Deserialize, Serialize};

use super::{Module, Param};
use crate::error::{invalid, Result};

/// An elementwise (or last-axis) activation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    LeakyRelu(f64),
    Tanh,
    Sigmoid,
    Softmax,
    LogSoftmax,
}

impl Module for Activation {
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        Ok(match *self {
            Activation::Relu => g.relu(x)?,
            Activation::LeakyRelu(a) => g.leaky_relu(x, a)?,
            Activation::Tanh => g.tanh(x)?,
            Activation::Sigmoid => g.sigmoid(x)?,
            Activation::Softmax => g.softmax(x)?,
            Activation::LogSoftmax => g.log_softmax(x)?,
        })
    }
    fn name(&self) -> String {
        format!("{self:?}").to_lowercase()
    }
}

/// Inverted dropout with its own seeded stream (identity in eval mode).
#[derive(Debug, Clone)]
pub struct Dropout {
    p: f64,
    rng: Stream,
}

impl Dropout {
    /// Drops each activation with probability `p` in training.
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(invalid("dropout", p, "must be in [0, 1)"));
        }
        Ok(Dropout {
            p,
            rng: Stream::seeded(seed),
        })
    }
}

impl Module for Dropout {
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        Ok(g.dropout(x, self.p, &mut self.rng)?)
    }
    fn reseed(&mut self, seed: u64) {
        self.rng = Stream::seeded(seed);
    }
    fn name(&self) -> String {
        "dropout".into()
    }
}

/// `(n, ...) → (n, Π...)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flatten;

impl Module for Flatten {
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        Ok(g.flatten(x)?)
    }
    fn name(&self) -> String {
        "flatten".into()
    }
}

/// `(n, c, h, w) → (n, h·w·c)`: flattens in Keras' channels-last order, so that a dense layer
/// after it sees its inputs in the order the Keras originals did (this matters for band masks).
#[derive(Debug, Clone, Copy, Default)]
pub struct FlattenChannelsLast;

impl Module for FlattenChannelsLast {
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let nhcw = g.transpose(x, 1, 2)?;
        let nhwc = g.transpose(&nhcw, 2, 3)?;
        Ok(g.flatten(&nhwc)?)
    }
    fn name(&self) -> String {
        "flatten_channels_last".into()
    }
}

/// Max pooling over NCHW.
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2d(pub Pool2d);

impl Module for MaxPool2d {
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        Ok(g.max_pool2d(x, self.0)?)
    }
    fn name(&self) -> String {
        "maxpool2d".into()
    }
}

/// Average pooling over NCHW.
#[derive(Debug, Clone, Copy)]
pub struct AvgPool2d(pub Pool2d);

impl Module for AvgPool2d {
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        Ok(g.avg_pool2d(x, self.0)?)
    }
    fn name(&self) -> String {
        "avgpool2d".into()
    }
}

/// Batch-norm over the channels of NCHW input, with affine `gamma`/`beta` and running statistics
/// (PyTorch defaults: momentum 0.1, ε = 1e-5).
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    gamma: Param,
    beta: Param,
    state: BatchNormState,
}

impl BatchNorm2d {
    /// A batch-norm layer for `channels` channels (`gamma = 1`, `beta = 0`).
    pub fn new(channels: usize) -> Result<Self> {
        Ok(BatchNorm2d {
            gamma: Param::new("gamma", Tensor::from_vec(vec![1.0; channels], &[channels])?),
            beta: Param::new("beta", Tensor::from_vec(vec![0.0; channels], &[channels])?),
            state: BatchNormState::new(channels),
        })
    }
    /// With `eps` added to the variance and `momentum` the weight of the new batch statistics
    /// in the running update (PyTorch convention: Keras' `momentum = 0.99` is `0.01` here).
    ///
    /// # Errors
    /// `eps` not finite and > 0, `momentum` outside [0, 1].
    pub fn with_eps_momentum(mut self, eps: f64, momentum: f64) -> Result<Self> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(invalid("batchnorm eps", eps, "must be finite and > 0"));
        }
        if !(0.0..=1.0).contains(&momentum) {
            return Err(invalid("batchnorm momentum", momentum, "must be in [0, 1]"));
        }
        self.state.eps = eps;
        self.state.momentum = momentum;
        Ok(self)
    }
    /// The running statistics.
    pub fn state(&self) -> &BatchNormState {
        &self.state
    }
}

impl Module for BatchNorm2d {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let gamma = self.gamma.bind(g);
        let beta = self.beta.bind(g);
        Ok(g.batch_norm2d(x, &gamma, &beta, &mut self.state)?)
    }
    fn params(&self) -> Vec<&Param> {
        vec![&self.gamma, &self.beta]
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.gamma, &mut self.beta]
    }
    fn name(&self) -> String {
        "batchnorm2d".into()
    }
    fn buffers(&self) -> Vec<(String, Vec<f32>)> {
        vec![
            ("running_mean".into(), self.state.running_mean.clone()),
            ("running_var".into(), self.state.running_var.clone()),
        ]
    }
    fn set_buffers(&mut self, buffers: &[(String, Vec<f32>)]) -> Result<()> {
        for (name, v) in buffers {
            let slot = match name.as_str() {
                "running_mean" => &mut self.state.running_mean,
                "running_var" => &mut self.state.running_var,
                _ => return Err(invalid("buffer", name, "batchnorm2d has running_mean and running_var")),
            };
            if v.len() != slot.len() {
                return Err(invalid(
                    "buffer",
                    name,
                    format!("needs {} values, got {}", slot.len(), v.len()),
                ));
            }
            slot.clone_from(v);
        }
        Ok(())
    }
}

/// Layers applied in order.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl std::fmt::Debug for Sequential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.layers.iter().map(|l| l.name())).finish()
    }
}

impl Sequential {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends a layer.
    pub fn push(mut self, layer: impl Module + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }
    /// The layers.
    pub fn layers(&self) -> &[Box<dyn Module>] {
        &self.layers
    }
    /// The layers, mutable.
    pub fn layers_mut(&mut self) -> &mut [Box<dyn Module>] {
        &mut self.layers
    }
    /// `(qualified name, parameter)` pairs, e.g. `"0.szdense.kernel"`. A nested `Sequential`
    /// is named layer by layer (`"1.sequential.0.dense.kernel"`), so that its layers' names stay
    /// unique; a residual block's parameters carry their branch already
    /// (`"2.residual.main.0.conv2d.kernel"`).
    pub fn named_params(&self) -> Vec<(String, &Param)> {
        fn walk<'a>(m: &'a dyn Module, prefix: &str, out: &mut Vec<(String, &'a Param)>) {
            if m.name() == "sequential" {
                for (segment, child) in m.children() {
                    walk(child, &format!("{prefix}{segment}.{}.", child.name()), out);
                }
            } else {
                out.extend(m.params().into_iter().map(|p| (format!("{prefix}{}", p.name), p)));
            }
        }
        let mut out = Vec::new();
        walk(self, "", &mut out);
        out
    }
}

impl Module for Sequential {
    fn to_device(&mut self, device: bioautograd::Device) -> Result<()> {
        for l in &mut self.layers {
            l.to_device(device)?;
        }
        Ok(())
    }
    fn buffers(&self) -> Vec<(String, Vec<f32>)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                let prefix = format!("{i}.{}", l.name());
                l.buffers().into_iter().map(move |(n, v)| (format!("{prefix}.{n}"), v))
            })
            .collect()
    }
    fn set_buffers(&mut self, buffers: &[(String, Vec<f32>)]) -> Result<()> {
        for (i, l) in self.layers.iter_mut().enumerate() {
            let prefix = format!("{i}.{}.", l.name());
            let mine: Vec<(String, Vec<f32>)> = buffers
                .iter()
                .filter_map(|(n, v)| n.strip_prefix(&prefix).map(|rest| (rest.to_string(), v.clone())))
                .collect();
            l.set_buffers(&mine)?;
        }
        Ok(())
    }
    fn reseed(&mut self, seed: u64) {
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.reseed(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i as u64));
        }
    }
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let mut h = *x;
        for l in &mut self.layers {
            h = l.forward(g, &h)?;
        }
        Ok(h)
    }
    fn params(&self) -> Vec<&Param> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        self.layers.iter_mut().flat_map(|l| l.params_mut()).collect()
    }
    fn name(&self) -> String {
        "sequential".into()
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), l.as_ref()))
            .collect()
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        self.layers
            .iter_mut()
            .enumerate()
            .map(|(i, l)| (i.to_string(), l.as_mut() as &mut dyn Module))
            .collect()
    }
}
