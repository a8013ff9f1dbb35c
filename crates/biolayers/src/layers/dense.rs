//! `Dense` / `SzDense` / `MDense`: one (optionally masked) linear layer.
//!
//! `y = x·(W ⊙ M) + b` (`M` = 1 for `form = "full"`; the gaussian window and a weighted `matrix`
//! are a float `M`).
//!
//! # Masks
//! * binary forms (`diagonal`, `2d`, `random`, a 0/1 `matrix`, ...): the initial kernel is
//!   rescaled once, `W ← W ⊙ M · w_corr`, and `x·(W ⊙ M)` runs as a tile-skipping masked GEMM
//!   whose `dW` is exactly 0 off the mask.
//! * `gaussian`: the window `G` (mean 1) multiplies the kernel in every forward pass,
//!   `x·(W ⊙ G)`, with no rescale at construction, as upstream `SzDense` (upstream `mDense`
//!   also rescales the kernel once by `G`, an effective `k0·G²`; see
//!   `docs/upstream-differences.md`).
//! * a weighted `matrix` `M`: the kernel is zeroed off the support of `M` once, then
//!   `x·(W ⊙ M)` runs as a masked GEMM over the support (tiles where `M` is exactly 0 are skipped).
//!
//! # Conventions
//! `convention = "keras"` (default): random masks are drawn in Keras' `(in, out)` order, the
//! bias starts at 0. `convention = "torch"`: random masks are drawn in PyTorch's `(out, in)`
//! order (the `mLinear` stream for the same seed) and the bias is PyTorch's default
//! `U(-1/sqrt(in), 1/sqrt(in))`, drawn after the kernel. The kernel initialiser is chosen
//! separately (`torch_default` for PyTorch's).
//!
//! # Shapes
//! `x (batch, in)`, `W (in, out)`, `b (out)`, `y (batch, out)`.

use std::sync::Arc;

use bioautograd::{Graph, Tensor, TileMap, TileSize, Var};
use biomask::{Layout, Mask, MaskForm, MaskSpec};
use biorng::Stream;
use serde::{Deserialize, Serialize};

use super::{split_on_tape, Learnable, Module, Param};
use crate::bio::{LayerShape, SplitActivation};
use crate::error::{invalid, Result};
use crate::init::{torch_default_bias, FanLayout, Initializer};
use crate::optim::Convention;

fn default_true() -> bool {
    true
}
fn default_full() -> MaskSpec {
    MaskSpec::Full
}
fn default_glorot() -> Initializer {
    Initializer::GlorotUniform
}

/// Configuration of a dense layer (serde: TOML/JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseConfig {
    /// Input width.
    pub in_features: usize,
    /// Output width (`units`).
    pub units: usize,
    /// Whether to add a bias.
    #[serde(default = "default_true")]
    pub use_bias: bool,
    /// The connection mask (`full` for a plain `Dense`).
    #[serde(default = "default_full")]
    pub mask: MaskSpec,
    /// The kernel initialiser (Keras default `glorot_uniform`).
    #[serde(default = "default_glorot")]
    pub kernel_initializer: Initializer,
    /// Whose construction rules to follow: the order random masks are drawn in and the bias
    /// init (Keras: zeros; PyTorch: `U(±1/sqrt(in_features))`). Default `keras`.
    #[serde(default)]
    pub convention: Convention,
}

impl DenseConfig {
    /// A plain dense layer.
    pub fn new(in_features: usize, units: usize) -> Self {
        DenseConfig {
            in_features,
            units,
            use_bias: true,
            mask: MaskSpec::Full,
            kernel_initializer: Initializer::GlorotUniform,
            convention: Convention::Keras,
        }
    }

    /// `SzDense`: the schizophrenia-mimicking band (`MaskSpec::diagonal(r)`) or any other form.
    pub fn sz(in_features: usize, units: usize, mask: MaskSpec) -> Self {
        DenseConfig {
            mask,
            ..Self::new(in_features, units)
        }
    }

    /// `mDense`: the mouse-mimetic 2d window.
    pub fn mouse(in_features: usize, units: usize, input2d_width: usize, output2d_width: usize, w: f64) -> Self {
        Self::sz(in_features, units, MaskSpec::two_d(input2d_width, output2d_width, w))
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

    /// Draws the mask (from `rng`, random forms only, in the convention's order), then the
    /// kernel, applies the originals' one-time rescale `W ← W ⊙ M · w_corr` and, for the torch
    /// convention, draws the bias.
    pub fn init(&self, rng: &mut Stream) -> Result<Dense> {
        let mask = self
            .mask
            .dense(self.in_features, self.units, mask_order(self.convention), rng)?;
        self.init_with_mask(mask, rng)
    }

    /// As [`DenseConfig::init`] with a mask made elsewhere (e.g. with `Rng::numpy(seed)` to
    /// reproduce an upstream run).
    pub fn init_with_mask(&self, mask: Mask, rng: &mut Stream) -> Result<Dense> {
        if mask.nx() != self.in_features || mask.ny() != self.units || mask.kernel_size() != (1, 1) {
            return Err(invalid(
                "mask",
                format!("{}x{}", mask.nx(), mask.ny()),
                format!("must be a dense {}x{} mask", self.in_features, self.units),
            ));
        }
        let shape = [self.in_features, self.units];
        let mut kernel = self.kernel_initializer.sample(&shape, FanLayout::Keras, rng)?;
        let values = mask.keras_values();
        let mut tiles = None;
        let mut window = None;
        match mask.form() {
            MaskForm::Full => {}
            MaskForm::Gaussian => window = Some(Tensor::from_vec(values, &shape)?),
            _ if !mask.is_binary() => {
                // A weighted matrix: a float window applied every forward, computed only on its
                // support so that the masked GEMM skips the tiles where it is exactly 0.
                let support: Vec<bool> = values.iter().map(|&v| v != 0.0).collect();
                for (k, _) in kernel.iter_mut().zip(&support).filter(|(_, &s)| !s) {
                    *k = 0.0;
                }
                tiles = Some(Arc::new(TileMap::from_bools(
                    &support,
                    self.in_features,
                    self.units,
                    TileSize::CPU_DEFAULT,
                )?));
                window = Some(Tensor::from_vec(values, &shape)?);
            }
            _ => {
                let w_corr = mask.w_corr() as f32;
                for (k, m) in kernel.iter_mut().zip(&values) {
                    *k *= m * w_corr;
                }
                tiles = Some(Arc::new(TileMap::from_mask(&mask, TileSize::CPU_DEFAULT)?));
            }
        }
        let bias = self
            .use_bias
            .then(|| initial_bias(self.convention, self.in_features, self.units, rng))
            .transpose()?;
        Ok(Dense {
            config: self.clone(),
            kernel: Param::new("kernel", Tensor::from_vec(kernel, &shape)?),
            bias: bias.map(|b| Param::new("bias", b)),
            mask,
            tiles,
            window,
            split: None,
            last_output: None,
        })
    }
}

/// The order random masks are drawn in under `convention`.
pub(crate) fn mask_order(convention: Convention) -> Layout {
    match convention {
        Convention::Keras => Layout::Keras,
        Convention::Torch => Layout::Torch,
    }
}

/// The initial bias of `len` outputs under `convention`: Keras zeros, or PyTorch's
/// `U(±1/sqrt(fan_in))` (`nn.Linear`, `nn.Conv2d`, `nn.ConvTranspose2d` alike).
pub(crate) fn initial_bias(convention: Convention, fan_in: usize, len: usize, rng: &mut Stream) -> Result<Tensor> {
    let values = match convention {
        Convention::Keras => vec![0.0; len],
        Convention::Torch => torch_default_bias(fan_in, len, rng)?,
    };
    Ok(Tensor::from_vec(values, &[len])?)
}

/// A dense layer with an optional fixed connection mask.
#[derive(Debug, Clone)]
pub struct Dense {
    config: DenseConfig,
    kernel: Param,
    bias: Option<Param>,
    mask: Mask,
    tiles: Option<Arc<TileMap>>,
    window: Option<Tensor>,
    split: Option<(usize, SplitActivation)>,
    last_output: Option<Var>,
}

impl Dense {
    /// The configuration.
    pub fn config(&self) -> &DenseConfig {
        &self.config
    }
    /// The connection mask.
    pub fn mask(&self) -> &Mask {
        &self.mask
    }
    /// The kernel `(in, out)`.
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
    /// The tile map the masked GEMM runs on (`None` for `full` and `gaussian`): its empty tiles
    /// are skipped in the forward and backward passes.
    pub fn tile_map(&self) -> Option<&TileMap> {
        self.tiles.as_deref()
    }
    /// The support of the mask (`true` where a weight exists), row-major `(in, out)`.
    pub fn support(&self) -> Vec<bool> {
        self.mask.keras_values().iter().map(|&v| v != 0.0).collect()
    }
}

impl Module for Dense {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }
    fn to_device(&mut self, device: bioautograd::Device) -> Result<()> {
        for p in self.params_mut() {
            p.value = p.value.to_device(device)?;
        }
        if let Some(w) = &mut self.window {
            *w = w.to_device(device)?;
        }
        Ok(())
    }
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let w = self.kernel.bind(g);
        let y = match (&self.tiles, &self.window) {
            (Some(tiles), Some(window)) => {
                let m = g.input(window.clone());
                g.masked_matmul(x, &g.mul(&w, &m)?, tiles)?
            }
            (Some(tiles), None) => g.masked_matmul(x, &w, tiles)?,
            (None, Some(window)) => {
                let m = g.input(window.clone());
                g.matmul(x, &g.mul(&w, &m)?)?
            }
            (None, None) => g.matmul(x, &w)?,
        };
        let y = match &mut self.bias {
            Some(b) => {
                let bv = b.bind(g);
                g.add(&y, &bv)?
            }
            None => y,
        };
        let y = match self.split {
            Some((gamma, act)) => split_on_tape(g, &y, gamma, act)?,
            None => y,
        };
        self.last_output = Some(y);
        Ok(y)
    }
    fn learnable(&self) -> Option<Learnable> {
        let shape = LayerShape::Dense {
            inputs: self.config.in_features,
            outputs: self.config.units,
        };
        let support = (self.tiles.is_some()).then(|| self.support());
        Some(Learnable { shape, support })
    }
    fn set_weight_splitting(&mut self, gamma: usize, activation: SplitActivation) -> Result<()> {
        if gamma > 1 && self.config.units % gamma != 0 {
            return Err(invalid(
                "weight_splitting_Gamma",
                gamma,
                format!("must evenly divide the output units ({})", self.config.units),
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
        match self.mask.form() {
            MaskForm::Full => "dense".into(),
            MaskForm::TwoD => "mdense".into(),
            _ => "szdense".into(),
        }
    }
}
