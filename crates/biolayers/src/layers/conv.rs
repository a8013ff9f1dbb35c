//! `Conv2D` / `SzConv2D` / `MConv2D` and `Conv2DTranspose` / `MConv2DTranspose`: (optionally
//! masked) 2-D convolutions on NCHW activations.
//!
//! `y[n, o] = b[o] + Σ_{i, j, c} x[n, c, ·] ⋆ (W ⊙ M)[i, j, c, o]` through the tile-skipping
//! implicit GEMM of `biokernels`; the channel mask `M` of the originals is shared by all
//! `kh × kw` taps (`individual` masks are per tap). Transposed convolutions follow both
//! originals: the mask's `x` axis is the layer's *output* channels.
//!
//! # Shapes
//! Conv: `x (n, cin, h, w)`, kernel `(kh, kw, cin/groups, filters)`, `y (n, filters, oh, ow)`.
//! Transposed: kernel `(kh, kw, filters/groups, cin)`.

use std::sync::Arc;

use bioautograd::{Conv2dOptions, ConvMask, Graph, Padding, Tensor, TileSize, Var};
use biomask::{Layout, Mask, MaskForm, MaskSpec};
use biorng::Stream;
use serde::{Deserialize, Serialize};

use super::dense::{initial_bias, mask_order};
use super::{split_on_tape, Learnable, Module, Param};
use crate::bio::{LayerShape, SplitActivation};
use crate::error::{invalid, Result};
use crate::init::{FanLayout, Initializer};
use crate::optim::Convention;

/// Spatial padding (serde: `"valid"`, `"same"` or `{explicit = [top, bottom, left, right]}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaddingConfig {
    /// No padding.
    #[default]
    Valid,
    /// Keras/TensorFlow `"same"`.
    Same,
    /// `[top, bottom, left, right]` (PyTorch `padding = p` is `[p, p, p, p]`).
    Explicit([usize; 4]),
}

impl From<PaddingConfig> for Padding {
    fn from(p: PaddingConfig) -> Self {
        match p {
            PaddingConfig::Valid => Padding::Valid,
            PaddingConfig::Same => Padding::Same,
            PaddingConfig::Explicit([top, bottom, left, right]) => Padding::Explicit {
                top,
                bottom,
                left,
                right,
            },
        }
    }
}

fn one() -> (usize, usize) {
    (1, 1)
}
fn one_group() -> usize {
    1
}
fn default_true() -> bool {
    true
}
fn default_full() -> MaskSpec {
    MaskSpec::Full
}
fn default_glorot() -> Initializer {
    Initializer::GlorotUniform
}

/// Configuration of a convolution or transposed convolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv2dConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub filters: usize,
    /// `(kh, kw)`.
    pub kernel_size: (usize, usize),
    /// `(sh, sw)`.
    #[serde(default = "one")]
    pub strides: (usize, usize),
    /// Padding.
    #[serde(default)]
    pub padding: PaddingConfig,
    /// `(dh, dw)`.
    #[serde(default = "one")]
    pub dilation: (usize, usize),
    /// Channel groups.
    #[serde(default = "one_group")]
    pub groups: usize,
    /// Transposed convolution (`Conv2DTranspose`).
    #[serde(default)]
    pub transposed: bool,
    /// Transposed only: extra output rows/columns.
    #[serde(default)]
    pub output_padding: (usize, usize),
    /// Whether to add a bias.
    #[serde(default = "default_true")]
    pub use_bias: bool,
    /// The connection mask (`full` for a plain convolution).
    #[serde(default = "default_full")]
    pub mask: MaskSpec,
    /// The kernel initialiser (Keras default `glorot_uniform`).
    #[serde(default = "default_glorot")]
    pub kernel_initializer: Initializer,
    /// Whose construction rules to follow: the order random masks are drawn in (Keras
    /// `(kh, kw, in, out)`, PyTorch `(out, in, kh, kw)`) and the bias init (Keras: zeros; PyTorch:
    /// `U(±1/sqrt(fan_in))`, `fan_in = kh·kw·in/groups`, for a transposed conv
    /// `kh·kw·filters/groups` as PyTorch computes it from its weight). Default `keras`.
    #[serde(default)]
    pub convention: Convention,
}

impl Conv2dConfig {
    /// A plain `Conv2D(filters, kernel)` with stride 1 and valid padding.
    pub fn new(in_channels: usize, filters: usize, kernel_size: (usize, usize)) -> Self {
        Conv2dConfig {
            in_channels,
            filters,
            kernel_size,
            strides: (1, 1),
            padding: PaddingConfig::Valid,
            dilation: (1, 1),
            groups: 1,
            transposed: false,
            output_padding: (0, 0),
            use_bias: true,
            mask: MaskSpec::Full,
            kernel_initializer: Initializer::GlorotUniform,
            convention: Convention::Keras,
        }
    }
    /// `SzConv2D` / `MConv2D`: with a connection mask.
    pub fn masked(in_channels: usize, filters: usize, kernel_size: (usize, usize), mask: MaskSpec) -> Self {
        Conv2dConfig {
            mask,
            ..Self::new(in_channels, filters, kernel_size)
        }
    }
    /// `Conv2DTranspose` / `MConv2DTranspose`.
    pub fn transpose(in_channels: usize, filters: usize, kernel_size: (usize, usize), mask: MaskSpec) -> Self {
        Conv2dConfig {
            transposed: true,
            mask,
            ..Self::new(in_channels, filters, kernel_size)
        }
    }
    /// With a padding.
    pub fn with_padding(mut self, padding: PaddingConfig) -> Self {
        self.padding = padding;
        self
    }
    /// With strides.
    pub fn with_strides(mut self, sh: usize, sw: usize) -> Self {
        self.strides = (sh, sw);
        self
    }
    /// With another kernel initialiser.
    pub fn with_initializer(mut self, init: Initializer) -> Self {
        self.kernel_initializer = init;
        self
    }
    /// With another construction convention (mask draw order and bias init).
    pub fn with_convention(mut self, convention: Convention) -> Self {
        self.convention = convention;
        self
    }

    /// Draws the mask (random forms from `rng`, in the convention's order), then the kernel,
    /// applies the originals' one-time rescale `W ← W ⊙ M · w_corr` and, for the torch
    /// convention, draws the bias.
    pub fn init(&self, rng: &mut Stream) -> Result<Conv2d> {
        let k = self.kernel_size;
        let order = mask_order(self.convention);
        let mask = if self.transposed {
            self.mask
                .conv_transpose(self.in_channels, self.filters, self.groups, k, order, rng)?
        } else {
            self.mask
                .conv(self.in_channels, self.filters, self.groups, k, order, rng)?
        };
        self.init_with_mask(mask, rng)
    }

    /// As [`Conv2dConfig::init`] with a mask made elsewhere.
    pub fn init_with_mask(&self, mask: Mask, rng: &mut Stream) -> Result<Conv2d> {
        if self.groups == 0 || self.in_channels % self.groups != 0 || self.filters % self.groups != 0 {
            return Err(invalid("groups", self.groups, "must divide in_channels and filters"));
        }
        let (kh, kw) = self.kernel_size;
        let shape = if self.transposed {
            [kh, kw, self.filters / self.groups, self.in_channels]
        } else {
            [kh, kw, self.in_channels / self.groups, self.filters]
        };
        if mask.shape(Layout::Keras) != shape {
            return Err(invalid(
                "mask",
                format!("{:?}", mask.shape(Layout::Keras)),
                format!("must have the kernel shape {shape:?}"),
            ));
        }
        let mut kernel = self.kernel_initializer.sample(&shape, FanLayout::Keras, rng)?;
        let conv_mask = if mask.form() == MaskForm::Full {
            None
        } else {
            let w_corr = mask.w_corr() as f32;
            for (k, m) in kernel.iter_mut().zip(mask.keras_values()) {
                *k *= m * w_corr;
            }
            Some(Arc::new(ConvMask::from_mask(
                &mask,
                self.groups,
                TileSize::CPU_DEFAULT,
            )?))
        };
        // PyTorch's fan_in: the Keras kernel's `kh·kw·shape[2]` for both directions.
        let fan_in = kh * kw * shape[2];
        let bias = self
            .use_bias
            .then(|| initial_bias(self.convention, fan_in, self.filters, rng))
            .transpose()?;
        let options = Conv2dOptions {
            stride: self.strides,
            padding: self.padding.into(),
            dilation: self.dilation,
            groups: self.groups,
            output_padding: self.output_padding,
        };
        Ok(Conv2d {
            config: self.clone(),
            kernel: Param::new("kernel", Tensor::from_vec(kernel, &shape)?),
            bias: bias.map(|b| Param::new("bias", b)),
            mask,
            conv_mask,
            options,
            split: None,
            last_output: None,
        })
    }
}

/// A (transposed) convolution with an optional fixed connection mask.
#[derive(Debug, Clone)]
pub struct Conv2d {
    config: Conv2dConfig,
    kernel: Param,
    bias: Option<Param>,
    mask: Mask,
    conv_mask: Option<Arc<ConvMask>>,
    options: Conv2dOptions,
    split: Option<(usize, SplitActivation)>,
    last_output: Option<Var>,
}

impl Conv2d {
    /// The configuration.
    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }
    /// The connection mask.
    pub fn mask(&self) -> &Mask {
        &self.mask
    }
    /// The kernel.
    pub fn kernel(&self) -> &Tensor {
        &self.kernel.value
    }
    /// Upstream `get_num_zeros()`.
    pub fn num_zeros(&self) -> usize {
        self.mask.num_zeros()
    }
    /// Upstream `get_num_weights()`.
    pub fn num_weights(&self) -> usize {
        self.mask.num_weights()
    }
    /// Upstream `get_reduced_ratio()`.
    pub fn reduced_ratio(&self) -> f64 {
        self.mask.reduced_ratio()
    }
    /// Upstream `get_halfbandwidth()`.
    pub fn halfbandwidth(&self) -> f64 {
        self.mask.halfbandwidth()
    }
}

impl Module for Conv2d {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let w = self.kernel.bind(g);
        let b = self.bias.as_mut().map(|b| b.bind(g));
        let mask = self.conv_mask.as_ref();
        let y = if self.config.transposed {
            g.conv_transpose2d(x, &w, b.as_ref(), &self.options, mask)?
        } else {
            g.conv2d(x, &w, b.as_ref(), &self.options, mask)?
        };
        let y = match self.split {
            Some((gamma, act)) => split_on_tape(g, &y, gamma, act)?,
            None => y,
        };
        self.last_output = Some(y);
        Ok(y)
    }
    fn learnable(&self) -> Option<Learnable> {
        let s = self.kernel.value.shape();
        let shape = LayerShape::Conv {
            kh: s[0],
            kw: s[1],
            cin: s[2],
            cout: s[3],
        };
        let support = self
            .conv_mask
            .is_some()
            .then(|| self.mask.keras_values().iter().map(|&v| v != 0.0).collect());
        Some(Learnable { shape, support })
    }
    fn set_weight_splitting(&mut self, gamma: usize, activation: SplitActivation) -> Result<()> {
        if gamma > 1 && self.config.filters % gamma != 0 {
            return Err(invalid(
                "weight_splitting_Gamma",
                gamma,
                format!("must evenly divide the output channels ({})", self.config.filters),
            ));
        }
        self.split = (gamma > 1).then_some((gamma, activation));
        Ok(())
    }
    fn last_output(&self) -> Option<Var> {
        self.last_output
    }
    fn params(&self) -> Vec<&Param> {
        std::iter::once(&self.kernel).chain(self.bias.as_ref()).collect()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        std::iter::once(&mut self.kernel).chain(self.bias.as_mut()).collect()
    }
    fn name(&self) -> String {
        let base = match self.mask.form() {
            MaskForm::Full => "conv2d",
            MaskForm::TwoD => "mconv2d",
            _ => "szconv2d",
        };
        if self.config.transposed {
            format!("{base}transpose")
        } else {
            base.to_string()
        }
    }
}
