//! The DCGAN of the mouse experiment (`DCGAN_AFHQcat_240805b_git.py`), as one [`Gan`] module.
//!
//! ```text
//! generator:      z (n, 100) → Dense(4·4·1024) → BN → ReLU → Reshape(4, 4, 1024)
//!                 → mConv2DTranspose(512, k5, s2, same; 2d 32,32,w) → BN → ReLU
//!                 → mConv2DTranspose(256, k5, s2, same; 2d 32,16,w) → BN → ReLU
//!                 → mConv2DTranspose(128, k5, s2, same; 2d 16,16,w) → BN → ReLU   (64×64 only)
//!                 → Conv2DTranspose(3, k5, s2, same) → sigmoid
//! discriminator:  x (n, 3, s, s) → 4 × [SpectralNorm(Conv2D(64|128|256|512, k4, s2, same)) → LeakyReLU(0.2)]
//!                 → Flatten → Dropout(0.2) → Dense(1) = logit;   D(x) = sigmoid(logit)
//! ```
//! The 32×32 variant (CIFAR-10) drops the third masked stage: 4 → 8 → 16 → 32. The
//! discriminator ends at the logit: the training loss is the binary cross-entropy on logits,
//! which is what Keras computes on TensorFlow for `Dense(1, activation="sigmoid")` followed by
//! `BinaryCrossentropy()` (it reads the logits behind a sigmoid output). The standard control
//! (`window = None`) has full masks everywhere.
//!
//! ## The conditional DCGAN (`num_classes = K ≥ 2`)
//!
//! Upstream's `DCGAN_conditional_241006a_git.py` is not available; the conditioning is that of
//! the Keras "Conditional GAN" example (keras.io/examples/generative/conditional_gan), on the
//! same layers:
//!
//! ```text
//! generator:      [z ‖ onehot(c)] (n, 100 + K) → Dense(4·4·1024) → … (as above)
//! discriminator:  [x ‖ onehot(c)·1_{s×s}] (n, 3 + K, s, s) → … (as above)
//! ```
//! The one-hot class follows the latent; on the discriminator's side it is broadcast to `K`
//! constant planes after the three colour channels. Only the generator's first Dense layer
//! (`K · 4·4·1024` more weights) and the discriminator's first convolution (`K · 4·4·64` more)
//! grow.
//!
//! # Shapes
//! Generator `(n, latent + K)` → `(n, 3, s, s)` in [0, 1]; discriminator `(n, 3 + K, s, s)` →
//! `(n, 1)` (`K = 0`: unconditional).

use biolayers::layers::{
    Activation, BatchNorm1d, BatchNorm2d, Conv2dConfig, DenseConfig, Dropout, FlattenChannelsLast, Module,
    PaddingConfig, Param, Reshape, Sequential, SpectralNormConv2d, KERAS_BN_EPS, KERAS_BN_MOMENTUM,
};
use biomask::MaskSpec;
use biorng::Stream;
use biotasks::checkpoint::Checkpointable;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};

/// The most classes a conditional DCGAN may have (a typo guard: each class adds an input
/// plane to the discriminator and `4·4·base_channels` weights to the generator).
pub const MAX_CLASSES: usize = 64;

/// Windows at or above this radius are the standard (fully connected) control: the paper's
/// `w = 1.4`.
pub const STANDARD_WINDOW: f64 = 1.4;

/// What the networks look like: everything [`generator`] and [`discriminator`] need, saved as
/// `model.toml` in every run folder so that `generate` can rebuild the generator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcganSpec {
    /// Image side: 64 (upstream) or 32 (CIFAR-10).
    pub image_size: usize,
    /// Latent dimension (upstream 100).
    pub latent_dim: usize,
    /// Channels after the reshape (upstream 1024); the masked stages have 1/2, 1/4, 1/8 of it.
    /// Smaller values are for tests only.
    pub base_channels: usize,
    /// `window2d_width` of the masked layers; `None` = the standard control.
    pub window: Option<f64>,
    /// Classes of the conditional DCGAN (`K`, 2 to [`MAX_CLASSES`]); 0 = unconditional. Absent
    /// from the `model.toml` of unconditional runs, which therefore read and write as before.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_classes: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl DcganSpec {
    /// Checks the sizes.
    ///
    /// # Errors
    /// An image size other than 32 or 64, a zero latent dimension, a window that is not finite
    /// and > 0, a class count of 1 or above [`MAX_CLASSES`].
    pub fn validate(&self) -> Result<()> {
        if self.image_size != 32 && self.image_size != 64 {
            return Err(invalid("image_size", self.image_size, "must be 32 or 64"));
        }
        if self.latent_dim == 0 {
            return Err(invalid("latent_dim", 0, "must be at least 1"));
        }
        if self.base_channels < 256 || self.base_channels % 256 != 0 {
            return Err(invalid(
                "base_channels",
                self.base_channels,
                "must be a multiple of 256 (the masked stages' 2d grids need at least 16 channels)",
            ));
        }
        if let Some(w) = self.window {
            if !(w.is_finite() && w > 0.0) {
                return Err(invalid("window2d_width", w, "must be finite and > 0"));
            }
        }
        if self.num_classes == 1 || self.num_classes > MAX_CLASSES {
            return Err(invalid(
                "num_classes",
                self.num_classes,
                format!("must be 0 (unconditional) or 2 to {MAX_CLASSES}"),
            ));
        }
        Ok(())
    }

    /// Whether the networks take a class (`num_classes ≥ 2`).
    pub fn is_conditional(&self) -> bool {
        self.num_classes > 0
    }

    /// The generator's input width: the latent, then the one-hot class.
    pub fn generator_inputs(&self) -> usize {
        self.latent_dim + self.num_classes
    }

    /// The discriminator's input channels: RGB, then one constant plane per class.
    pub fn discriminator_channels(&self) -> usize {
        3 + self.num_classes
    }

    /// Upstream's generator and discriminator (64×64, latent 100) with masks of radius
    /// `window` (`None`: the standard control).
    pub fn upstream(image_size: usize, window: Option<f64>) -> Self {
        DcganSpec {
            image_size,
            latent_dim: 100,
            base_channels: 1024,
            window,
            num_classes: 0,
        }
    }

    /// [`DcganSpec::upstream`] conditioned on `num_classes` classes.
    pub fn upstream_conditional(image_size: usize, window: Option<f64>, num_classes: usize) -> Self {
        DcganSpec {
            num_classes,
            ..Self::upstream(image_size, window)
        }
    }

    /// The masked stages `(filters, input2d_width, output2d_width)` of upstream's generator
    /// (512, 256, 128 filters for `base_channels` 1024).
    fn stages(&self) -> Vec<(usize, usize, usize)> {
        let b = self.base_channels;
        let stages = [(b / 2, 32, 32), (b / 4, 32, 16), (b / 8, 16, 16)];
        let count = if self.image_size == 64 { 3 } else { 2 };
        stages[..count].to_vec()
    }

    /// The mask of a masked stage: `2d (a, b, w)`, or full for the standard control.
    fn mask(&self, a: usize, b: usize) -> MaskSpec {
        match self.window {
            Some(w) if w < STANDARD_WINDOW => MaskSpec::two_d(a, b, w),
            _ => MaskSpec::Full,
        }
    }
}

/// Upstream's generator for `spec`, drawn from `rng`. Returns it with the fraction of the masked
/// stages' weights kept (1 for the standard control).
///
/// # Errors
/// An invalid `spec`; layer construction errors.
pub fn generator(spec: &DcganSpec, rng: &mut Stream) -> Result<(Sequential, f64)> {
    spec.validate()?;
    let bn2d = |c: usize| BatchNorm2d::new(c)?.with_eps_momentum(KERAS_BN_EPS, KERAS_BN_MOMENTUM);
    let mut model = Sequential::new()
        .push(DenseConfig::new(spec.generator_inputs(), 4 * 4 * spec.base_channels).init(rng)?)
        .push(BatchNorm1d::keras(4 * 4 * spec.base_channels)?)
        .push(Activation::Relu)
        .push(Reshape::channels_last(4, 4, spec.base_channels)?);
    let (mut kept, mut total) = (0usize, 0usize);
    let mut channels = spec.base_channels;
    for (filters, a, b) in spec.stages() {
        let conv = Conv2dConfig::transpose(channels, filters, (5, 5), spec.mask(a, b))
            .with_strides(2, 2)
            .with_padding(PaddingConfig::Same)
            .init(rng)?;
        kept += conv.mask().num_ones();
        total += conv.mask().num_weights();
        model = model.push(conv).push(bn2d(filters)?).push(Activation::Relu);
        channels = filters;
    }
    let last = Conv2dConfig::transpose(channels, 3, (5, 5), MaskSpec::Full)
        .with_strides(2, 2)
        .with_padding(PaddingConfig::Same)
        .init(rng)?;
    model = model.push(last).push(Activation::Sigmoid);
    Ok((model, kept as f64 / total.max(1) as f64))
}

/// Upstream's discriminator for `spec` (ending at the logit), drawn from `rng`; its dropout
/// stream is seeded from `dropout_seed`.
///
/// # Errors
/// An invalid `spec`; layer construction errors.
pub fn discriminator(spec: &DcganSpec, rng: &mut Stream, dropout_seed: u64) -> Result<Sequential> {
    spec.validate()?;
    let mut model = Sequential::new();
    let mut channels = spec.discriminator_channels();
    for filters in [64, 128, 256, 512] {
        let conv = Conv2dConfig::new(channels, filters, (4, 4))
            .with_strides(2, 2)
            .with_padding(PaddingConfig::Same)
            .init(rng)?;
        model = model
            .push(SpectralNormConv2d::new(conv, rng)?)
            .push(Activation::LeakyRelu(0.2));
        channels = filters;
    }
    let side = spec.image_size / 16;
    Ok(model
        .push(FlattenChannelsLast)
        .push(Dropout::new(0.2, dropout_seed)?)
        .push(DenseConfig::new(side * side * 512, 1).init(rng)?))
}

/// The trainable parameters of a model (Keras' "Trainable params").
pub fn trainable_params(model: &dyn Module) -> usize {
    model.params().iter().map(|p| p.value.numel()).sum()
}

/// Generator and discriminator as one module, so that one checkpoint holds both (with their
/// batch-norm statistics, the spectral-norm vectors and one optimiser whose slots are the
/// generator's parameters, then the discriminator's). Its `forward` is `D(G(z))`.
pub struct Gan {
    /// The generator.
    pub generator: Sequential,
    /// The discriminator.
    pub discriminator: Sequential,
}

impl Gan {
    /// Number of generator parameter tensors (the discriminator's optimiser slots start here).
    pub fn generator_slots(&self) -> usize {
        self.generator.params().len()
    }
}

impl Module for Gan {
    fn forward(&mut self, g: &bioautograd::Graph, x: &bioautograd::Var) -> biolayers::Result<bioautograd::Var> {
        let fake = self.generator.forward(g, x)?;
        self.discriminator.forward(g, &fake)
    }
    fn params(&self) -> Vec<&Param> {
        let mut p = self.generator.params();
        p.extend(self.discriminator.params());
        p
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut p = self.generator.params_mut();
        p.extend(self.discriminator.params_mut());
        p
    }
    fn name(&self) -> String {
        "gan".into()
    }
    fn to_device(&mut self, device: bioautograd::Device) -> biolayers::Result<()> {
        self.generator.to_device(device)?;
        self.discriminator.to_device(device)
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![
            ("generator".into(), &self.generator as &dyn Module),
            ("discriminator".into(), &self.discriminator as &dyn Module),
        ]
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        vec![
            ("generator".into(), &mut self.generator as &mut dyn Module),
            ("discriminator".into(), &mut self.discriminator as &mut dyn Module),
        ]
    }
    fn buffers(&self) -> Vec<(String, Vec<f32>)> {
        let g = self
            .generator
            .buffers()
            .into_iter()
            .map(|(n, v)| (format!("generator.{n}"), v));
        let d = self
            .discriminator
            .buffers()
            .into_iter()
            .map(|(n, v)| (format!("discriminator.{n}"), v));
        g.chain(d).collect()
    }
    fn set_buffers(&mut self, buffers: &[(String, Vec<f32>)]) -> biolayers::Result<()> {
        let part = |prefix: &str| -> Vec<(String, Vec<f32>)> {
            buffers
                .iter()
                .filter_map(|(n, v)| n.strip_prefix(prefix).map(|rest| (rest.to_string(), v.clone())))
                .collect()
        };
        self.generator.set_buffers(&part("generator."))?;
        self.discriminator.set_buffers(&part("discriminator."))
    }
    fn reseed(&mut self, seed: u64) {
        self.discriminator.reseed(seed);
    }
}

impl Checkpointable for Gan {
    /// `generator.<index>.<layer>.<param>`, then `discriminator.…`.
    fn named_params(&self) -> Vec<(String, &Param)> {
        let g = self
            .generator
            .named_params()
            .into_iter()
            .map(|(n, p)| (format!("generator.{n}"), p));
        let d = self
            .discriminator
            .named_params()
            .into_iter()
            .map(|(n, p)| (format!("discriminator.{n}"), p));
        g.chain(d).collect()
    }
}
