//! Skip connections: [`Residual`] (`y = act(main(x) + shortcut(x))`) and the ResNet v1
//! bottleneck block that builds one ([`BottleneckConfig`]).
//!
//! The bottleneck follows `block1` of Keras' `keras.applications.resnet` (ResNet50 v1), with
//! `f` filters and stride `s`:
//!
//! ```text
//! main(x)     = BN(Conv(4f, 1×1)(ReLU(BN(Conv(f, 3×3, same)(ReLU(BN(Conv(f, 1×1, stride s)(x))))))))
//! shortcut(x) = BN(Conv(4f, 1×1, stride s)(x))   (projection: the first block of a stage)
//!             = x                               (identity: the other blocks)
//! y           = ReLU(main(x) + shortcut(x))
//! ```
//!
//! Convolutions have biases (Keras' `use_bias=True`) and Glorot-uniform kernels; batch-norm uses
//! Keras' `epsilon = 1.001e-5` and momentum 0.99 (0.01 in the PyTorch convention of
//! [`bioautograd::BatchNormState`]).
//!
//! # Shapes
//! `(n, c, h, w) → (n, 4f, ⌈h/s⌉, ⌈w/s⌉)`; an identity shortcut needs `c = 4f` and `s = 1`.
//! For a general [`Residual`], `main(x)` and `shortcut(x)` must have the same shape.

use bioautograd::{Graph, Var};
use biorng::Stream;

use super::{Activation, BatchNorm2d, Conv2dConfig, Module, PaddingConfig, Param, Sequential};
use crate::error::{invalid, Result};

/// `y = act(main(x) + shortcut(x))`; an empty shortcut is the identity.
///
/// The parameters of both branches are renamed `main.<i>.<layer>.<name>` and
/// `shortcut.<i>.<layer>.<name>` so that the qualified names of a model holding residual blocks
/// (parameter files, checkpoints) stay unique.
#[derive(Debug)]
pub struct Residual {
    main: Sequential,
    shortcut: Sequential,
    activation: Option<Activation>,
}

fn qualify(branch: &str, seq: &mut Sequential) {
    for (i, layer) in seq.layers_mut().iter_mut().enumerate() {
        let prefix = format!("{branch}.{i}.{}", layer.name());
        for p in layer.params_mut() {
            p.name = format!("{prefix}.{}", p.name);
        }
    }
}

impl Residual {
    /// The block `act(main(x) + shortcut(x))` (`shortcut` empty: identity; `activation` `None`:
    /// no activation after the sum).
    pub fn new(mut main: Sequential, mut shortcut: Sequential, activation: Option<Activation>) -> Self {
        qualify("main", &mut main);
        qualify("shortcut", &mut shortcut);
        Residual {
            main,
            shortcut,
            activation,
        }
    }
    /// The main branch.
    pub fn main(&self) -> &Sequential {
        &self.main
    }
    /// The shortcut branch (empty: identity).
    pub fn shortcut(&self) -> &Sequential {
        &self.shortcut
    }
}

fn prefixed(prefix: &str, buffers: Vec<(String, Vec<f32>)>) -> impl Iterator<Item = (String, Vec<f32>)> + '_ {
    buffers.into_iter().map(move |(n, v)| (format!("{prefix}.{n}"), v))
}

fn strip(prefix: &str, buffers: &[(String, Vec<f32>)]) -> Vec<(String, Vec<f32>)> {
    buffers
        .iter()
        .filter_map(|(n, v)| {
            n.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('.'))
                .map(|r| (r.to_string(), v.clone()))
        })
        .collect()
}

impl Module for Residual {
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let main = self.main.forward(g, x)?;
        let shortcut = if self.shortcut.layers().is_empty() {
            *x
        } else {
            self.shortcut.forward(g, x)?
        };
        let sum = g.add(&main, &shortcut)?;
        match &mut self.activation {
            Some(act) => act.forward(g, &sum),
            None => Ok(sum),
        }
    }
    fn params(&self) -> Vec<&Param> {
        let mut p = self.main.params();
        p.extend(self.shortcut.params());
        p
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut p = self.main.params_mut();
        p.extend(self.shortcut.params_mut());
        p
    }
    fn name(&self) -> String {
        "residual".into()
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![
            ("main".into(), &self.main as &dyn Module),
            ("shortcut".into(), &self.shortcut),
        ]
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        vec![
            ("main".into(), &mut self.main as &mut dyn Module),
            ("shortcut".into(), &mut self.shortcut),
        ]
    }
    fn buffers(&self) -> Vec<(String, Vec<f32>)> {
        prefixed("main", self.main.buffers())
            .chain(prefixed("shortcut", self.shortcut.buffers()))
            .collect()
    }
    fn set_buffers(&mut self, buffers: &[(String, Vec<f32>)]) -> Result<()> {
        if let Some((name, _)) = buffers
            .iter()
            .find(|(n, _)| !(n.starts_with("main.") || n.starts_with("shortcut.")))
        {
            return Err(invalid(
                "buffer",
                name,
                "a residual block has main.* and shortcut.* buffers",
            ));
        }
        self.main.set_buffers(&strip("main", buffers))?;
        self.shortcut.set_buffers(&strip("shortcut", buffers))
    }
    fn reseed(&mut self, seed: u64) {
        self.main.reseed(seed);
        self.shortcut.reseed(seed ^ 0x5851_F42D_4C95_7F2D);
    }
}

/// Keras' batch-norm epsilon in `keras.applications.resnet`.
pub const KERAS_RESNET_BN_EPS: f64 = 1.001e-5;
/// Keras' default batch-norm momentum 0.99, as the weight of the new batch (PyTorch convention).
pub const KERAS_BN_MOMENTUM: f64 = 0.01;

/// A ResNet v1 bottleneck block (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct BottleneckConfig {
    /// Input channels `c`.
    pub in_channels: usize,
    /// Bottleneck width `f` (the block outputs `4f` channels).
    pub filters: usize,
    /// Stride `s` of the first 1×1 convolution and of the projection.
    pub stride: usize,
    /// Projection shortcut (`true`) or identity (`false`).
    pub conv_shortcut: bool,
    /// Batch-norm ε.
    pub bn_eps: f64,
    /// Batch-norm momentum (weight of the new batch statistics).
    pub bn_momentum: f64,
}

impl BottleneckConfig {
    /// A block with Keras' batch-norm settings.
    pub fn new(in_channels: usize, filters: usize, stride: usize, conv_shortcut: bool) -> Self {
        BottleneckConfig {
            in_channels,
            filters,
            stride,
            conv_shortcut,
            bn_eps: KERAS_RESNET_BN_EPS,
            bn_momentum: KERAS_BN_MOMENTUM,
        }
    }

    /// The output channels `4f`.
    pub fn out_channels(&self) -> usize {
        4 * self.filters
    }

    /// Draws the kernels from `rng` (the projection first, then the main branch in order, as
    /// Keras creates them).
    ///
    /// # Errors
    /// Zero channels, filters or stride; an identity shortcut whose input does not match the
    /// output (`c ≠ 4f` or `s ≠ 1`); bad batch-norm settings.
    pub fn init(&self, rng: &mut Stream) -> Result<Residual> {
        if self.in_channels == 0 || self.filters == 0 || self.stride == 0 {
            return Err(invalid(
                "bottleneck block",
                format!(
                    "{} channels, {} filters, stride {}",
                    self.in_channels, self.filters, self.stride
                ),
                "must all be >= 1",
            ));
        }
        let out = self.out_channels();
        if !self.conv_shortcut && (self.in_channels != out || self.stride != 1) {
            return Err(invalid(
                "bottleneck block",
                format!("{} channels in, {out} out, stride {}", self.in_channels, self.stride),
                "an identity shortcut needs as many channels in as out and stride 1",
            ));
        }
        let bn = |c: usize| BatchNorm2d::new(c).and_then(|b| b.with_eps_momentum(self.bn_eps, self.bn_momentum));
        let conv = |cin: usize, cout: usize, k: usize, s: usize, rng: &mut Stream| {
            let pad = if k == 1 {
                PaddingConfig::Valid
            } else {
                PaddingConfig::Same
            };
            Conv2dConfig::new(cin, cout, (k, k))
                .with_padding(pad)
                .with_strides(s, s)
                .init(rng)
        };
        let mut shortcut = Sequential::new();
        if self.conv_shortcut {
            shortcut = shortcut
                .push(conv(self.in_channels, out, 1, self.stride, rng)?)
                .push(bn(out)?);
        }
        let f = self.filters;
        let main = Sequential::new()
            .push(conv(self.in_channels, f, 1, self.stride, rng)?)
            .push(bn(f)?)
            .push(Activation::Relu)
            .push(conv(f, f, 3, 1, rng)?)
            .push(bn(f)?)
            .push(Activation::Relu)
            .push(conv(f, out, 1, 1, rng)?)
            .push(bn(out)?);
        Ok(Residual::new(main, shortcut, Some(Activation::Relu)))
    }
}
