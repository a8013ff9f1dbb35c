//! The residual U-Net of the Keras DDIM example (A. Béres, keras.io "Denoising Diffusion
//! Implicit Models") as the mouse paper's `DDIM_AFHQcat_240901d_git.py` changed it: GroupNorm,
//! dropout, self-attention at one resolution and the mouse-mimetic mapping of the residual
//! blocks' 3×3 convolutions.
//!
//! ```text
//! e      = nearest_upsample(sinusoidal_embedding(σ²))              (n, 32, s, s)
//! x      = concat(conv1×1(images), e)                              (n, w₀ + 32, s, s)
//! down i = [residual(wᵢ) (+ attention at the attention resolution)] × depth, skips kept,
//!          then avg_pool 2            (i < L − 1)
//! middle = [residual(w_{L−1}) (+ attention, not after the last)] × depth
//! up i   = bilinear_upsample 2, then [concat(x, skip.pop()) → residual(wᵢ) (+ attention)] × depth
//! out    = conv1×1(x) → channels, kernel initialised to zeros
//!
//! residual(w):  r = x if cin = w else conv1×1(x)
//!               h = conv3×3(GN(x)); h = dropout₀.₁(swish(GN(h))); y = conv3×3(h) + r
//! attention(w): x̂ = GN(x); q, k, v = conv1×1(x̂); A = softmax(q·kᵀ/√w) over the h·w positions
//!               y = x̂ + conv1×1(A·v)        (upstream adds the *normalised* input)
//! embedding:    f_k = exp(linspace(ln f_min, ln f_max, d/2)), e = [sin(2π f σ²), cos(2π f σ²)]
//! ```
//!
//! The mouse mapping: a residual block's two 3×3 convolutions are `mConv2D(form='2d',
//! a = b = width2d, window2d_width = r)` when its window radius `r < 1.4`, with
//! `width2d = 2^round(log2(w)/2)` (Python's `round`, half to even: 16 for widths 128, 256 and
//! 512, 8 for 64). Radii per down stage (the last is the middle's) and per up stage come from
//! [`DdimUnetConfig::window_down`] / [`DdimUnetConfig::window_up`]; upstream uses
//! `[1.4, 1.4, w, w]` and `[w, w, 1.4, 1.4]` ([`DdimUnetConfig::mouse`]). The 1×1 projections
//! stay standard. GroupNorm has Keras' defaults (ε = 1e-3, γ = 1, β = 0); the convolutions
//! Keras' `glorot_uniform` kernels and zero biases.
//!
//! # Shapes
//! [`DdimUnet::denoise`]: images `(n, channels, s, s)` and `n` noise variances →
//! predicted noise `(n, channels, s, s)`. As a [`Module`] the network takes one packed input
//! `(n, channels + 1, s, s)` whose last channel holds each image's noise variance (read at
//! pixel `(0, 0)`), so that checkpoints, the EMA and `visit_layers` see an ordinary module.

use bioautograd::{Graph, Interpolation, Pool2d, Tensor, Var};
use biomask::MaskSpec;
use biorng::Stream;
use serde::{Deserialize, Serialize};

use super::{Conv2d, Conv2dConfig, Dropout, Module, PaddingConfig, Param};
use crate::error::{invalid, Result};
use crate::init::Initializer;

/// A window radius at or above this keeps a residual block's convolutions standard (upstream:
/// `if (wndrad < 1.4)`).
pub const STANDARD_WINDOW: f64 = 1.4;

/// `2^round(log2(width)/2)` with Python's half-to-even rounding: the mouse grid width of a
/// `width`-channel convolution (upstream's `width2d`).
pub fn mouse_grid_width(width: usize) -> usize {
    let e = ((width.max(1) as f64).log2() / 2.0).round_ties_even();
    1usize << (e as u32)
}

/// The sinusoidal noise embedding of each variance: `dims/2` sines then `dims/2` cosines of
/// `2π f σ²` at frequencies log-spaced from `min_frequency` to `max_frequency`.
pub fn sinusoidal_embedding(variances: &[f32], dims: usize, min_frequency: f64, max_frequency: f64) -> Vec<f32> {
    let half = dims / 2;
    let (lo, hi) = (min_frequency.ln(), max_frequency.ln());
    // Upstream casts the angular speeds to float32 and multiplies in float32.
    let speeds: Vec<f32> = (0..half)
        .map(|k| {
            let t = if half > 1 { k as f64 / (half - 1) as f64 } else { 0.0 };
            (2.0 * std::f64::consts::PI * (lo + t * (hi - lo)).exp()) as f32
        })
        .collect();
    let mut out = Vec::with_capacity(variances.len() * dims);
    for &v in variances {
        out.extend(speeds.iter().map(|&s| (s * v).sin()));
        out.extend(speeds.iter().map(|&s| (s * v).cos()));
    }
    out
}

/// Group normalisation with a per-channel scale and offset (Keras `GroupNormalization`).
#[derive(Debug, Clone)]
pub struct GroupNorm {
    groups: usize,
    eps: f64,
    gamma: Param,
    beta: Param,
}

impl GroupNorm {
    /// `channels` channels in `groups` groups, `γ = 1`, `β = 0`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] when `groups` is 0 or does not divide `channels`, or
    /// `eps` is not positive.
    pub fn new(channels: usize, groups: usize, eps: f64) -> Result<Self> {
        if groups == 0 || channels % groups != 0 {
            return Err(invalid(
                "norm_groups",
                groups,
                format!("must be positive and divide the {channels} channels"),
            ));
        }
        if !(eps.is_finite() && eps > 0.0) {
            return Err(invalid("norm_eps", eps, "must be positive and finite"));
        }
        Ok(GroupNorm {
            groups,
            eps,
            gamma: Param::new("gamma", Tensor::from_vec(vec![1.0; channels], &[channels])?),
            beta: Param::new("beta", Tensor::from_vec(vec![0.0; channels], &[channels])?),
        })
    }
}

impl Module for GroupNorm {
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let gamma = self.gamma.bind(g);
        let beta = self.beta.bind(g);
        Ok(g.group_norm(x, &gamma, &beta, self.groups, self.eps)?)
    }
    fn params(&self) -> Vec<&Param> {
        vec![&self.gamma, &self.beta]
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.gamma, &mut self.beta]
    }
    fn name(&self) -> String {
        "group_norm".into()
    }
}

fn conv(cin: usize, cout: usize, k: usize, window: f64, rng: &mut Stream) -> Result<Conv2d> {
    let cfg = if k > 1 && window < STANDARD_WINDOW {
        let a = mouse_grid_width(cout);
        Conv2dConfig::masked(cin, cout, (k, k), MaskSpec::two_d(a, a, window))
    } else {
        Conv2dConfig::new(cin, cout, (k, k))
    };
    cfg.with_padding(PaddingConfig::Same).init(rng)
}

fn params_of(children: Vec<(String, &dyn Module)>) -> Vec<&Param> {
    children.into_iter().flat_map(|(_, m)| m.params()).collect()
}

fn params_of_mut(children: Vec<(String, &mut dyn Module)>) -> Vec<&mut Param> {
    children.into_iter().flat_map(|(_, m)| m.params_mut()).collect()
}

/// The example's `ResidualBlock` (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct ResidualBlock {
    shortcut: Option<Conv2d>,
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    dropout: Dropout,
    conv2: Conv2d,
}

impl ResidualBlock {
    /// `cin → width`, mouse-masked 3×3 convolutions when `window < 1.4`.
    ///
    /// # Errors
    /// Invalid group counts, dropout or mask settings.
    pub fn new(cin: usize, width: usize, window: f64, cfg: &DdimUnetConfig, rng: &mut Stream) -> Result<Self> {
        let shortcut = (cin != width)
            .then(|| conv(cin, width, 1, STANDARD_WINDOW, rng))
            .transpose()?;
        let norm1 = GroupNorm::new(cin, cfg.norm_groups, cfg.norm_eps)?;
        let conv1 = conv(cin, width, 3, window, rng)?;
        let norm2 = GroupNorm::new(width, cfg.norm_groups, cfg.norm_eps)?;
        let conv2 = conv(width, width, 3, window, rng)?;
        Ok(ResidualBlock {
            shortcut,
            norm1,
            conv1,
            norm2,
            dropout: Dropout::new(cfg.dropout, rng.below(u64::MAX))?,
            conv2,
        })
    }

    /// The two 3×3 convolutions (masked or not).
    pub fn convs(&self) -> [&Conv2d; 2] {
        [&self.conv1, &self.conv2]
    }
}

impl Module for ResidualBlock {
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let r = match &mut self.shortcut {
            Some(c) => c.forward(g, x)?,
            None => *x,
        };
        let h = self.norm1.forward(g, x)?;
        let h = self.conv1.forward(g, &h)?;
        let h = self.norm2.forward(g, &h)?;
        let h = g.swish(&h)?;
        let h = self.dropout.forward(g, &h)?;
        let h = self.conv2.forward(g, &h)?;
        Ok(g.add(&h, &r)?)
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut v: Vec<(String, &dyn Module)> = Vec::new();
        if let Some(c) = &self.shortcut {
            v.push(("shortcut".into(), c));
        }
        v.push(("norm1".into(), &self.norm1));
        v.push(("conv1".into(), &self.conv1));
        v.push(("norm2".into(), &self.norm2));
        v.push(("conv2".into(), &self.conv2));
        v
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        let mut v: Vec<(String, &mut dyn Module)> = Vec::new();
        if let Some(c) = &mut self.shortcut {
            v.push(("shortcut".into(), c));
        }
        v.push(("norm1".into(), &mut self.norm1));
        v.push(("conv1".into(), &mut self.conv1));
        v.push(("norm2".into(), &mut self.norm2));
        v.push(("conv2".into(), &mut self.conv2));
        v
    }
    fn params(&self) -> Vec<&Param> {
        params_of(self.children())
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        params_of_mut(self.children_mut())
    }
    fn reseed(&mut self, seed: u64) {
        self.dropout.reseed(seed);
    }
    fn name(&self) -> String {
        "residual_block".into()
    }
}

/// Single-head self-attention over the spatial positions (upstream's `AttentionBlock`, see the
/// [module docs](self)).
#[derive(Debug, Clone)]
pub struct AttentionBlock {
    units: usize,
    norm: GroupNorm,
    query: Conv2d,
    key: Conv2d,
    value: Conv2d,
    proj: Conv2d,
}

impl AttentionBlock {
    /// Attention over `units` channels.
    ///
    /// # Errors
    /// Invalid group counts.
    pub fn new(units: usize, cfg: &DdimUnetConfig, rng: &mut Stream) -> Result<Self> {
        Ok(AttentionBlock {
            units,
            norm: GroupNorm::new(units, cfg.norm_groups, cfg.norm_eps)?,
            query: conv(units, units, 1, STANDARD_WINDOW, rng)?,
            key: conv(units, units, 1, STANDARD_WINDOW, rng)?,
            value: conv(units, units, 1, STANDARD_WINDOW, rng)?,
            proj: conv(units, units, 1, STANDARD_WINDOW, rng)?,
        })
    }
}

impl Module for AttentionBlock {
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let shape = g.shape(x)?;
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
        let xn = self.norm.forward(g, x)?;
        let q = self.query.forward(g, &xn)?;
        let k = self.key.forward(g, &xn)?;
        let v = self.value.forward(g, &xn)?;
        let scale = (self.units as f32).powf(-0.5);
        let mut outs = Vec::with_capacity(n);
        for b in 0..n {
            // (1, c, h, w) → (c, h·w): a column per position.
            let per = |t: &Var| -> Result<Var> { Ok(g.reshape(&g.slice(t, 0, b, b + 1)?, &[c, h * w])?) };
            let (qb, kb, vb) = (per(&q)?, per(&k)?, per(&v)?);
            let scores = g.scale(&g.matmul(&g.transpose(&qb, 0, 1)?, &kb)?, scale)?;
            let attn = g.softmax(&scores)?;
            // out[p, c] = Σ_P attn[p, P]·v[P, c]
            let o = g.matmul(&attn, &g.transpose(&vb, 0, 1)?)?;
            outs.push(g.reshape(&g.transpose(&o, 0, 1)?, &[1, c, h, w])?);
        }
        let o = if outs.len() == 1 { outs[0] } else { g.concat(&outs, 0)? };
        let o = self.proj.forward(g, &o)?;
        Ok(g.add(&xn, &o)?)
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![
            ("norm".into(), &self.norm),
            ("query".into(), &self.query),
            ("key".into(), &self.key),
            ("value".into(), &self.value),
            ("proj".into(), &self.proj),
        ]
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        vec![
            ("norm".into(), &mut self.norm),
            ("query".into(), &mut self.query),
            ("key".into(), &mut self.key),
            ("value".into(), &mut self.value),
            ("proj".into(), &mut self.proj),
        ]
    }
    fn params(&self) -> Vec<&Param> {
        params_of(self.children())
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        params_of_mut(self.children_mut())
    }
    fn name(&self) -> String {
        "attention_block".into()
    }
}

fn default_groups() -> usize {
    8
}
fn default_eps() -> f64 {
    1e-3
}
fn default_embedding_dims() -> usize {
    32
}
fn default_max_frequency() -> f64 {
    1000.0
}

/// Configuration of the DDIM U-Net (upstream's values in [`DdimUnetConfig::standard`] and
/// [`DdimUnetConfig::mouse`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DdimUnetConfig {
    /// Square image side `s` (divisible by `2^(len(widths) − 1)`).
    pub image_size: usize,
    /// Image channels.
    pub channels: usize,
    /// Stage widths (upstream `[64, 128, 256, 512]`).
    pub widths: Vec<usize>,
    /// Residual blocks per stage (upstream 2).
    pub block_depth: usize,
    /// GroupNorm groups (upstream 8).
    #[serde(default = "default_groups")]
    pub norm_groups: usize,
    /// GroupNorm ε (Keras 1e-3).
    #[serde(default = "default_eps")]
    pub norm_eps: f64,
    /// The feature-map side where attention blocks follow the residual blocks (upstream 16);
    /// `None`: no attention.
    pub attention_resolution: Option<usize>,
    /// Window radius per down stage, the last one for the middle blocks (one per width).
    pub window_down: Vec<f64>,
    /// Window radius per up stage, from the deepest (one per width; the last is unused, as
    /// upstream's).
    pub window_up: Vec<f64>,
    /// Noise-embedding size (upstream 32).
    #[serde(default = "default_embedding_dims")]
    pub embedding_dims: usize,
    /// Highest embedding frequency (upstream 1000; the lowest is 1).
    #[serde(default = "default_max_frequency")]
    pub embedding_max_frequency: f64,
    /// Dropout after the residual blocks' swish (upstream 0.1).
    pub dropout: f64,
}

impl DdimUnetConfig {
    /// The standard (control) network: every radius 1.4, i.e. no masks.
    pub fn standard(image_size: usize, widths: Vec<usize>, block_depth: usize) -> Self {
        let l = widths.len();
        DdimUnetConfig {
            image_size,
            channels: 3,
            widths,
            block_depth,
            norm_groups: 8,
            norm_eps: 1e-3,
            attention_resolution: Some(16),
            window_down: vec![STANDARD_WINDOW; l],
            window_up: vec![STANDARD_WINDOW; l],
            embedding_dims: 32,
            embedding_max_frequency: 1000.0,
            dropout: 0.1,
        }
    }

    /// Upstream's mouse mapping with radius `window`: down `[1.4, …, 1.4, w, w]` (the last two
    /// stages, i.e. the deepest down stage and the middle), up `[w, w, 1.4, …]`.
    pub fn mouse(image_size: usize, widths: Vec<usize>, block_depth: usize, window: f64) -> Self {
        let mut c = Self::standard(image_size, widths, block_depth);
        let l = c.widths.len();
        for (i, r) in c.window_down.iter_mut().enumerate() {
            if i + 2 >= l {
                *r = window;
            }
        }
        for (i, r) in c.window_up.iter_mut().enumerate() {
            if i < 2 {
                *r = window;
            }
        }
        c
    }

    /// Checks every size before anything is built.
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] naming the bad value.
    pub fn validate(&self) -> Result<()> {
        let l = self.widths.len();
        if l < 2 {
            return Err(invalid(
                "widths",
                format!("{:?}", self.widths),
                "needs at least two stages",
            ));
        }
        if self.widths.contains(&0) || self.channels == 0 || self.block_depth == 0 {
            return Err(invalid(
                "widths",
                format!(
                    "{:?}, channels {}, block_depth {}",
                    self.widths, self.channels, self.block_depth
                ),
                "every width, the channels and the block depth must be positive",
            ));
        }
        let div = 1usize << (l - 1);
        if self.image_size == 0 || self.image_size % div != 0 {
            return Err(invalid(
                "image_size",
                self.image_size,
                format!("must be a positive multiple of {div}"),
            ));
        }
        if self.window_down.len() != l || self.window_up.len() != l {
            return Err(invalid(
                "window_down/window_up",
                format!("{} / {}", self.window_down.len(), self.window_up.len()),
                format!("need one radius per width ({l})"),
            ));
        }
        if let Some(r) = self
            .window_down
            .iter()
            .chain(&self.window_up)
            .find(|r| !(r.is_finite() && **r > 0.0))
        {
            return Err(invalid("window2d_width", r, "must be positive and finite"));
        }
        if self.embedding_dims < 2 || self.embedding_dims % 2 != 0 {
            return Err(invalid(
                "embedding_dims",
                self.embedding_dims,
                "must be even and at least 2",
            ));
        }
        if !(self.embedding_max_frequency.is_finite() && self.embedding_max_frequency > 0.0) {
            return Err(invalid(
                "embedding_max_frequency",
                self.embedding_max_frequency,
                "must be positive",
            ));
        }
        Ok(())
    }

    /// Builds the network (every GroupNorm's channel count is checked against `norm_groups`).
    ///
    /// # Errors
    /// [`DdimUnetConfig::validate`]'s, and a group count that does not divide a block's channels.
    pub fn init(&self, rng: &mut Stream) -> Result<DdimUnet> {
        self.validate()?;
        let l = self.widths.len();
        let attn = |side: usize| self.attention_resolution == Some(side);
        let stem = conv(self.channels, self.widths[0], 1, STANDARD_WINDOW, rng)?;
        let mut c = self.widths[0] + self.embedding_dims;
        let mut skips = Vec::new();
        let mut down = Vec::new();
        for (i, &w) in self.widths[..l - 1].iter().enumerate() {
            let side = self.image_size >> i;
            let mut stage = Vec::new();
            for _ in 0..self.block_depth {
                let res = ResidualBlock::new(c, w, self.window_down[i], self, rng)?;
                c = w;
                let att = attn(side).then(|| AttentionBlock::new(w, self, rng)).transpose()?;
                stage.push(UnetUnit { res, attn: att });
                skips.push(c);
            }
            down.push(stage);
        }
        let mut middle = Vec::new();
        let deepest = self.image_size >> (l - 1);
        for d in 0..self.block_depth {
            let w = self.widths[l - 1];
            let res = ResidualBlock::new(c, w, self.window_down[l - 1], self, rng)?;
            c = w;
            let att = (attn(deepest) && d + 1 != self.block_depth)
                .then(|| AttentionBlock::new(w, self, rng))
                .transpose()?;
            middle.push(UnetUnit { res, attn: att });
        }
        let mut up = Vec::new();
        for (j, (i, &w)) in self.widths[..l - 1].iter().enumerate().rev().enumerate() {
            let side = self.image_size >> i;
            let mut stage = Vec::new();
            for _ in 0..self.block_depth {
                let skip = skips.pop().ok_or_else(|| invalid("widths", l, "skip bookkeeping"))?;
                let res = ResidualBlock::new(c + skip, w, self.window_up[j], self, rng)?;
                c = w;
                let att = attn(side).then(|| AttentionBlock::new(w, self, rng)).transpose()?;
                stage.push(UnetUnit { res, attn: att });
            }
            up.push(stage);
        }
        let head = Conv2dConfig::new(c, self.channels, (1, 1))
            .with_initializer(Initializer::Zeros)
            .init(rng)?;
        Ok(DdimUnet {
            config: self.clone(),
            stem,
            down,
            middle,
            up,
            head,
        })
    }
}

/// A residual block and the attention block after it, if any.
#[derive(Debug, Clone)]
pub struct UnetUnit {
    /// The residual block.
    pub res: ResidualBlock,
    /// The attention block after it.
    pub attn: Option<AttentionBlock>,
}

impl UnetUnit {
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let y = self.res.forward(g, x)?;
        match &mut self.attn {
            Some(a) => a.forward(g, &y),
            None => Ok(y),
        }
    }
}

/// The DDIM noise-prediction network (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct DdimUnet {
    config: DdimUnetConfig,
    stem: Conv2d,
    down: Vec<Vec<UnetUnit>>,
    middle: Vec<UnetUnit>,
    up: Vec<Vec<UnetUnit>>,
    head: Conv2d,
}

impl DdimUnet {
    /// The configuration.
    pub fn config(&self) -> &DdimUnetConfig {
        &self.config
    }

    /// Every residual block, in forward order (down stages, middle, up stages).
    pub fn residual_blocks(&self) -> Vec<&ResidualBlock> {
        self.down
            .iter()
            .flatten()
            .chain(&self.middle)
            .chain(self.up.iter().flatten())
            .map(|u| &u.res)
            .collect()
    }

    /// Predicted noise of `images (n, channels, s, s)` at the given noise variances (one per
    /// image).
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] for another image shape or variance count; tape errors.
    pub fn denoise(&mut self, g: &Graph, images: &Var, noise_variances: &[f32]) -> Result<Var> {
        let cfg = &self.config;
        let shape = g.shape(images)?;
        let s = cfg.image_size;
        if shape.len() != 4 || shape[1] != cfg.channels || shape[2] != s || shape[3] != s {
            return Err(invalid(
                "images",
                format!("{shape:?}"),
                format!("must be (n, {}, {s}, {s})", cfg.channels),
            ));
        }
        let n = shape[0];
        if noise_variances.len() != n {
            return Err(invalid(
                "noise_variances",
                noise_variances.len(),
                format!("need one per image ({n})"),
            ));
        }
        let d = cfg.embedding_dims;
        let e = sinusoidal_embedding(noise_variances, d, 1.0, cfg.embedding_max_frequency);
        // The embedding goes where the images are (a device run computes it on the host).
        let device = g.value(images)?.device();
        let e = g.input(Tensor::new(e, &[n, d, 1, 1], device)?);
        let e = g.upsample2d(&e, (s, s), Interpolation::Nearest)?;
        let x = self.stem.forward(g, images)?;
        let mut x = g.concat(&[x, e], 1)?;
        let mut skips = Vec::new();
        for stage in &mut self.down {
            for unit in stage.iter_mut() {
                x = unit.forward(g, &x)?;
                skips.push(x);
            }
            x = g.avg_pool2d(&x, Pool2d::new(2))?;
        }
        for unit in &mut self.middle {
            x = unit.forward(g, &x)?;
        }
        for stage in &mut self.up {
            x = g.upsample2d(&x, (2, 2), Interpolation::Bilinear)?;
            for unit in stage.iter_mut() {
                let skip = skips
                    .pop()
                    .ok_or_else(|| invalid("skips", 0, "fewer skips than up blocks"))?;
                x = g.concat(&[x, skip], 1)?;
                x = unit.forward(g, &x)?;
            }
        }
        self.head.forward(g, &x)
    }

    fn units_ref(&self) -> Vec<(String, &UnetUnit)> {
        let mut v = Vec::new();
        for (i, stage) in self.down.iter().enumerate() {
            v.extend(stage.iter().enumerate().map(|(j, u)| (format!("down{i}_{j}"), u)));
        }
        v.extend(self.middle.iter().enumerate().map(|(j, u)| (format!("middle_{j}"), u)));
        for (i, stage) in self.up.iter().enumerate() {
            v.extend(stage.iter().enumerate().map(|(j, u)| (format!("up{i}_{j}"), u)));
        }
        v
    }
}

impl Module for DdimUnet {
    /// `x (n, channels + 1, s, s)`: the images and, in the last channel, each image's noise
    /// variance (read at pixel `(0, 0)`; the variance is an input, never differentiated). On a
    /// device the variance planes are read back to the host for the embedding.
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let shape = g.shape(x)?;
        let c = self.config.channels;
        if shape.len() != 4 || shape[1] != c + 1 {
            return Err(invalid(
                "x",
                format!("{shape:?}"),
                format!("must be (n, {}, s, s)", c + 1),
            ));
        }
        // The variance planes, read back from a device (one plane per image).
        let planes = g.value(&g.slice(x, 1, c, c + 1)?)?.to_vec()?;
        let plane = shape[2] * shape[3];
        let variances: Vec<f32> = (0..shape[0]).map(|b| planes[b * plane]).collect();
        let images = g.slice(x, 1, 0, c)?;
        self.denoise(g, &images, &variances)
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut v: Vec<(String, &dyn Module)> = vec![("stem".into(), &self.stem)];
        for (name, u) in self.units_ref() {
            v.push((name.clone(), &u.res));
            if let Some(a) = &u.attn {
                v.push((format!("{name}_attn"), a));
            }
        }
        v.push(("head".into(), &self.head));
        v
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        let mut v: Vec<(String, &mut dyn Module)> = vec![("stem".into(), &mut self.stem)];
        let mut units: Vec<(String, &mut UnetUnit)> = Vec::new();
        for (i, stage) in self.down.iter_mut().enumerate() {
            units.extend(stage.iter_mut().enumerate().map(|(j, u)| (format!("down{i}_{j}"), u)));
        }
        units.extend(
            self.middle
                .iter_mut()
                .enumerate()
                .map(|(j, u)| (format!("middle_{j}"), u)),
        );
        for (i, stage) in self.up.iter_mut().enumerate() {
            units.extend(stage.iter_mut().enumerate().map(|(j, u)| (format!("up{i}_{j}"), u)));
        }
        for (name, u) in units {
            v.push((name.clone(), &mut u.res));
            if let Some(a) = &mut u.attn {
                v.push((format!("{name}_attn"), a));
            }
        }
        v.push(("head".into(), &mut self.head));
        v
    }
    fn params(&self) -> Vec<&Param> {
        params_of(self.children())
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        params_of_mut(self.children_mut())
    }
    fn reseed(&mut self, seed: u64) {
        for (k, (_, m)) in self.children_mut().into_iter().enumerate() {
            m.reseed(seed.wrapping_add(k as u64));
        }
    }
    fn name(&self) -> String {
        "ddim_unet".into()
    }
}

impl DdimUnet {
    /// `(path.param, parameter)` pairs in [`Module::params`] order (`down2_0.conv1.kernel`).
    pub fn named_params(&self) -> Vec<(String, &Param)> {
        let mut v = Vec::new();
        for (path, m) in self.children() {
            for (cpath, c) in m.children() {
                v.extend(
                    c.params()
                        .into_iter()
                        .map(|p| (format!("{path}.{cpath}.{}", p.name), p)),
                );
            }
            if m.children().is_empty() {
                v.extend(m.params().into_iter().map(|p| (format!("{path}.{}", p.name), p)));
            }
        }
        v
    }
}
