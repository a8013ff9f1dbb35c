//! Layers in burn's config → init → forward style, on the `bioautograd` tape.
//!
//! A layer keeps its parameters as [`Param`]s (a named [`Tensor`]). Each training step builds a
//! fresh [`Graph`]; `forward` registers the parameters in it ([`Param::bind`]) and records the
//! ops; after `Graph::backward`, [`Module::params_mut`] hands every parameter to the optimiser
//! together with the gradient found through its bound [`Var`] (see [`crate::train`]).
//!
//! Masked layers follow the originals: after the initialiser, the kernel is multiplied once by
//! `mask · w_corr` (the gaussian window is not rescaled, as in `SzDense`), the mask is kept as
//! non-trainable state, and the forward pass computes `X·(W ⊙ M)` through the tile-skipping
//! kernels, so the gradient is zero off the mask and the weight never leaves its support.
//!
//! # Shapes
//! Dense: `(batch, in) → (batch, out)`, kernel `(in, out)`. Conv: NCHW activations, kernel
//! `(kh, kw, cin/groups, cout)`.

mod basic;
mod conv;
mod conv_lstm;
mod dense;
mod gan;
mod residual;
mod rnn;

pub use basic::{Activation, AvgPool2d, BatchNorm2d, Dropout, Flatten, FlattenChannelsLast, MaxPool2d, Sequential};
pub use conv::{Conv2d, Conv2dConfig, PaddingConfig};
pub use conv_lstm::{conv_lstm_forward, ConvLstm, ConvLstmConfig};
pub use dense::{Dense, DenseConfig};
pub use gan::{BatchNorm1d, Reshape, SpectralNormConv2d, KERAS_BN_EPS};
pub use residual::{BottleneckConfig, Residual, KERAS_BN_MOMENTUM, KERAS_RESNET_BN_EPS};
pub use rnn::{ElmanRnn, ElmanRnnConfig, RecurrentInit, RnnNonlinearity};

use bioautograd::{Device, Graph, Tensor, Var};

use crate::bio::{LayerShape, SplitActivation};

use crate::error::Result;

/// A trainable parameter: its name, value and, during a step, its node in the current graph.
#[derive(Debug, Clone)]
pub struct Param {
    /// Name inside its layer (`kernel`, `bias`, `gamma`, ...).
    pub name: String,
    /// The value.
    pub value: Tensor,
    var: Option<Var>,
    trainable: bool,
}

impl Param {
    /// A parameter named `name` holding `value`.
    pub fn new(name: &str, value: Tensor) -> Self {
        Param {
            name: name.to_string(),
            value,
            var: None,
            trainable: true,
        }
    }

    /// Registers the value in `g` and remembers its node: a `param` leaf, or, for a frozen
    /// parameter, a plain input leaf, so that no gradient is computed for it and the optimiser
    /// never sees it.
    pub fn bind(&mut self, g: &Graph) -> Var {
        let v = if self.trainable {
            g.param(self.value.clone())
        } else {
            g.input(self.value.clone())
        };
        self.var = Some(v);
        v
    }

    /// `false` for a frozen parameter (kept at its value by [`crate::train::train_step`]).
    pub fn is_trainable(&self) -> bool {
        self.trainable
    }

    /// Freezes (`false`) or unfreezes (`true`) the parameter.
    pub fn set_trainable(&mut self, trainable: bool) {
        self.trainable = trainable;
    }

    /// The node of the last [`Param::bind`].
    pub fn var(&self) -> Option<Var> {
        self.var
    }
}

/// What a learnable layer is, for converters (`BioConverter`) and inspection.
#[derive(Debug, Clone, PartialEq)]
pub enum LearnableKind {
    /// A dense layer with kernel `(inputs, outputs)`.
    Dense { inputs: usize, outputs: usize },
    /// A convolution with kernel `(kh, kw, cin, cout)`.
    Conv {
        kh: usize,
        kw: usize,
        cin: usize,
        cout: usize,
    },
}

/// A layer or a container of layers.
pub trait Module {
    /// Records the forward pass of `x` in `g`.
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var>;
    /// The parameters, in a fixed order.
    fn params(&self) -> Vec<&Param> {
        Vec::new()
    }
    /// The parameters, mutable, in the same order.
    fn params_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }
    /// A short name for messages and parameter files.
    fn name(&self) -> String;
    /// The direct sub-modules of a container, each with its path segment (`"0"`, `"1"`, ... in a
    /// [`Sequential`]; `"main"`, `"shortcut"` in a [`Residual`]); empty for a layer. A container's
    /// [`Module::params`] are its children's parameters in this order, so walking the tree with
    /// [`visit_layers`] finds each layer's first parameter index in the whole model.
    fn children(&self) -> Vec<(String, &dyn Module)> {
        Vec::new()
    }
    /// [`Module::children`], mutable.
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        Vec::new()
    }
    /// Non-trainable state to checkpoint (e.g. batch-norm running statistics), by name.
    fn buffers(&self) -> Vec<(String, Vec<f32>)> {
        Vec::new()
    }
    /// Restores buffers from [`Module::buffers`]; unknown names or wrong lengths are errors.
    fn set_buffers(&mut self, buffers: &[(String, Vec<f32>)]) -> Result<()> {
        match buffers.first() {
            None => Ok(()),
            Some((name, _)) => Err(crate::error::invalid(
                "buffer",
                name,
                format!("{} has no buffers", self.name()),
            )),
        }
    }
    /// Re-seeds the layer's own random streams (dropout) from `seed`, so that a run resumed
    /// at an epoch boundary draws exactly what the uninterrupted run drew.
    fn reseed(&mut self, _seed: u64) {}
    /// For dense and conv layers: the kernel's shape and mask support, so that a converter
    /// (`BioConverter`) can attach per-weight state. The kernel is the layer's first parameter.
    fn learnable(&self) -> Option<Learnable> {
        None
    }
    /// Weight splitting on the layer's output: groups of `gamma` consecutive output units are
    /// replaced by their sum after `activation`. Only dense and conv layers support it.
    fn set_weight_splitting(&mut self, gamma: usize, _activation: SplitActivation) -> Result<()> {
        Err(crate::error::invalid(
            "weight_splitting_Gamma",
            gamma,
            format!("{} has no output units to split", self.name()),
        ))
    }
    /// The layer's output in the last graph it ran in (dense and conv layers), for activity
    /// counting.
    fn last_output(&self) -> Option<Var> {
        None
    }
    /// Moves every parameter (and any other tensor the forward pass reads, e.g. a gaussian
    /// window) to `device`; the next graphs then run there (see docs/gpu-training.md). The
    /// default moves [`Module::params_mut`]; layers holding other tensors override it.
    ///
    /// # Errors
    /// The device errors of [`Tensor::to_device`] (no CUDA in this build or machine, ...);
    /// on error some parameters may already have moved.
    fn to_device(&mut self, device: Device) -> Result<()> {
        for p in self.params_mut() {
            p.value = p.value.to_device(device)?;
        }
        Ok(())
    }
    /// The concrete layer, so that code needing its kind can downcast it: the weight export and
    /// import of [`crate::interop`] (PyTorch / Keras names and layouts differ per kind). `None`
    /// (the default) for containers and parameter-free layers; a layer with parameters that
    /// returns `None` cannot be exported (the export names it).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
    /// [`Module::as_any`], mutable.
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }
    /// Every weight a converter (`BioConverter`) may attach per-weight state to, as
    /// `(index among this layer's` [`Module::params`]`, shape and support)`. The default is
    /// [`Module::learnable`]'s kernel at index 0 (dense and conv layers); layers with several
    /// weights (an [`ElmanRnn`]: input, recurrent and readout weights; a [`ConvLstm`]: input and
    /// recurrent kernels) list each. Biases are never listed (upstream never touches them).
    fn learnables(&self) -> Vec<(usize, Learnable)> {
        self.learnable().map(|l| (0, l)).into_iter().collect()
    }
    /// The output of the weight at `param` (an index of [`Module::learnables`]) in the last
    /// graph the layer ran in, `(batch, units, ...)` with one unit per output of the weight, for
    /// activity counting. The default is [`Module::last_output`] for the kernel at index 0.
    fn weight_output(&self, param: usize) -> Option<Var> {
        if param == 0 {
            self.last_output()
        } else {
            None
        }
    }
}

/// What a converter needs to know of a learnable layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Learnable {
    /// The kernel shape.
    pub shape: LayerShape,
    /// The mask's support (`true` where a weight exists), kernel order; `None` = unmasked.
    pub support: Option<Vec<bool>>,
}

/// `y → group_sum(act(y))` over groups of `gamma` consecutive channels (axis 1), repeated
/// `gamma` times: the weight-splitting map recorded on the tape (its backward follows).
pub(crate) fn split_on_tape(g: &Graph, y: &Var, gamma: usize, act: SplitActivation) -> Result<Var> {
    let y = match act {
        SplitActivation::Identity => *y,
        SplitActivation::Relu => g.relu(y)?,
        SplitActivation::Tanh => g.tanh(y)?,
        SplitActivation::Sigmoid => g.sigmoid(y)?,
    };
    let shape = g.shape(&y)?;
    if shape.len() < 2 || gamma <= 1 {
        return Ok(y);
    }
    let (n, c) = (shape[0], shape[1]);
    let rest: usize = shape[2..].iter().product();
    let grouped = g.reshape(&y, &[n, c / gamma, gamma, rest])?;
    let sums = g.sum_axis(&grouped, 2, true)?;
    let copies = vec![sums; gamma];
    let repeated = g.concat(&copies, 2)?;
    Ok(g.reshape(&repeated, &shape)?)
}

/// One layer (a module without children) met by [`visit_layers`].
pub struct LayerVisit<'a> {
    /// Its path from the root, segments joined by `.` (`"3"`, `"2.main.0"`).
    pub path: String,
    /// The layer.
    pub layer: &'a dyn Module,
    /// Index of its first parameter in [`Module::params`] of the root.
    pub first_param: usize,
}

/// Every layer under `root` (depth first, in parameter order; `root` itself when it has no
/// children), with its path and the index of its first parameter in `root.params()`.
pub fn visit_layers(root: &dyn Module) -> Vec<LayerVisit<'_>> {
    fn walk<'a>(m: &'a dyn Module, path: String, offset: &mut usize, out: &mut Vec<LayerVisit<'a>>) {
        let children = m.children();
        if children.is_empty() {
            out.push(LayerVisit {
                path,
                layer: m,
                first_param: *offset,
            });
            *offset += m.params().len();
            return;
        }
        for (segment, child) in children {
            let p = if path.is_empty() {
                segment
            } else {
                format!("{path}.{segment}")
            };
            walk(child, p, offset, out);
        }
    }
    let mut out = Vec::new();
    walk(root, String::new(), &mut 0, &mut out);
    out
}

/// The layer at `path` (as [`visit_layers`] names it) under `root`, mutable; `None` when no
/// module has that path.
pub fn layer_at_mut<'a>(root: &'a mut dyn Module, path: &str) -> Option<&'a mut dyn Module> {
    if path.is_empty() {
        return Some(root);
    }
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    let child = root.children_mut().into_iter().find(|(s, _)| s == head)?.1;
    layer_at_mut(child, rest)
}

mod unet;
pub use unet::{
    mouse_grid_width, sinusoidal_embedding, AttentionBlock, DdimUnet, DdimUnetConfig, GroupNorm, ResidualBlock,
    UnetUnit, STANDARD_WINDOW,
};
