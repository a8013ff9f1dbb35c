//! BioNet's networks: a base (ALL-CNN-C, VGG-16 or ResNet-50) whose first convolution is replaceable by a
//! fixed filter bank, with the optional retinal bottleneck in front and an optional recurrent
//! (ConvLSTM) first stage.
//!
//! Layer by layer, for a 1-channel `s × s` input (`w` = the width scale, channel counts
//! `round(c · w)`, at least 1):
//!
//! * **Bottleneck** (`bottleneck = Some(N)`, Lindsey et al. 2019 as in the dissertation code):
//!   `Conv(32, 3×3, same, ReLU) → Conv(N, 3×3) → Conv(N, 3×3)` in front of everything; the first
//!   layer then sees `N` channels (a bank's kernel is tiled over them). The bank stays frozen
//!   unless `bank_trainable` (upstream's accident) is set.
//! * **First layer** ([`FrontEnd`]): `Standard` = the base's own learned first conv + ReLU;
//!   `Bank` = a frozen [`FilterBankLayer`] (ReLU, zero bias); `Combined` = DoG bank then Gabor
//!   bank (the Gabor filters the sum of the DoG maps).
//! * **Recurrent** ([`Recurrent`]): `ConvLstm { steps, kernel }` = a [`ConvLstm`] with as many
//!   channels as the first layer's output, unrolled over `steps` on that (static) output, its
//!   `h_T` going on to the base; `UpstreamOneStep` = upstream's version: the first layer is
//!   *replaced* by a one-step ConvLSTM with the bank's channel count and kernel size, Glorot
//!   initialised and learned (no filter bank, no ReLU).
//! * **ALL-CNN-C** (Springenberg et al., no dropout): conv 96 ×2, 96 stride 2; 192 ×2, 192 stride
//!   2 (all 3×3 same); 192 3×3 same, 192 1×1, `classes` 1×1 (valid); ReLU after every conv (the
//!   last included, as upstream); global average pooling. Logits = the pooled maps.
//! * **VGG-16** (Keras, `weights=None`): 3×3 same ReLU convs 64×2, 128×2, 256×3, 512×3, 512×3,
//!   2×2 max-pool after each block; flatten (channels last); dense 4096, 4096 (ReLU),
//!   `classes`. The input side must be divisible by 32.
//! * **ResNet-50** (Keras `ResNet50` v1, `weights=None`, upstream's `BioResNet50`): stem
//!   `ZeroPad(3) → Conv(64, 7×7, stride 2) → BN → ReLU → ZeroPad(1) → MaxPool(3×3, stride 2)`;
//!   stages of [`BottleneckConfig`] blocks `[3, 4, 6, 3]` with `f = 64, 128, 256, 512` (outputs
//!   `4f`), the first block of each stage with a projection shortcut and stride 2 (stride 1 in
//!   the first stage); global average pooling; dense `classes` (logits). Batch-norm ε 1.001e-5.
//!   With a bank (upstream's bio stem) the stem convolution is replaced by
//!   `ZeroPad(3) → bank (valid, stride 1, ReLU)`, followed by the same BN → ReLU → pool; the
//!   bank's side must be at most `s + 6`. Any input side works (32 → 16 → 8 → 8, 4, 2, 1 with
//!   the learned stem).
//!
//! Kernels Glorot-uniform, biases zero (the Keras defaults).
//!
//! # Shapes
//! Input `(n, channels, s, s)` → logits `(n, classes)`.

use bioautograd::{Graph, Pool2d, Var};
use biorng::Stream;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};
use crate::filters::{FilterBankConfig, FilterBankLayer, FilterBankSpec};
use crate::layers::{
    Activation, BatchNorm2d, BottleneckConfig, Conv2dConfig, ConvLstmConfig, DenseConfig, FlattenChannelsLast,
    MaxPool2d, Module, PaddingConfig, Sequential, KERAS_BN_MOMENTUM, KERAS_RESNET_BN_EPS,
};

/// The base network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Base {
    /// ALL-CNN-C.
    AllCnn,
    /// VGG-16.
    Vgg16,
    /// ResNet-50 (v1, Keras `applications.ResNet50`).
    Resnet50,
}

impl Base {
    /// Upstream's name (`ALL-CNN`, `VGG-16`, `ResNet50`).
    pub fn label(self) -> &'static str {
        match self {
            Base::AllCnn => "ALL-CNN",
            Base::Vgg16 => "VGG-16",
            Base::Resnet50 => "ResNet50",
        }
    }
}

impl std::str::FromStr for Base {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "all-cnn" | "allcnn" | "all-cnn-c" => Ok(Base::AllCnn),
            "vgg16" | "vgg-16" => Ok(Base::Vgg16),
            "resnet50" | "resnet-50" | "resnet" => Ok(Base::Resnet50),
            _ => Err(invalid("base", s, "expected all-cnn, vgg16 or resnet50")),
        }
    }
}

/// What sits where the base's first convolution was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrontEnd {
    /// The base's own, learned first convolution (upstream's "Original").
    Standard,
    /// One frozen filter bank.
    Bank(FilterBankSpec),
    /// A DoG bank followed by a Gabor bank (upstream's "Combined").
    Combined {
        /// The first bank.
        dog: FilterBankSpec,
        /// The second bank (filters the sum of the first's maps).
        gabor: FilterBankSpec,
    },
}

/// The recurrent option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Recurrent {
    /// No recurrence.
    #[default]
    None,
    /// A ConvLSTM on the first layer's output, unrolled over `steps`.
    ConvLstm {
        /// Steps `T`.
        steps: usize,
        /// Kernel side of both convolutions.
        kernel: usize,
    },
    /// Upstream's version: the first layer replaced by a learned one-step ConvLSTM.
    UpstreamOneStep,
}

fn default_classes() -> usize {
    10
}
fn unit() -> f64 {
    1.0
}

/// Configuration of a BioNet model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BioNetConfig {
    /// The base.
    pub base: Base,
    /// The first layer.
    pub front: FrontEnd,
    /// Input channels (1: greyscale).
    pub in_channels: usize,
    /// Input side `s` (square images).
    pub input_size: usize,
    /// Output classes.
    #[serde(default = "default_classes")]
    pub classes: usize,
    /// Multiplies every learned layer's width (1 = the paper's networks).
    #[serde(default = "unit")]
    pub width_scale: f64,
    /// Retinal bottleneck of `N` channels.
    #[serde(default)]
    pub bottleneck: Option<usize>,
    /// Learn the bank behind a bottleneck (upstream's accident). Default: frozen.
    #[serde(default)]
    pub bank_trainable: bool,
    /// The recurrent option.
    #[serde(default)]
    pub recurrent: Recurrent,
}

impl BioNetConfig {
    /// A paper-sized model on 1-channel `input_size²` images, 10 classes.
    pub fn new(base: Base, front: FrontEnd, input_size: usize) -> Self {
        BioNetConfig {
            base,
            front,
            in_channels: 1,
            input_size,
            classes: 10,
            width_scale: 1.0,
            bottleneck: None,
            bank_trainable: false,
            recurrent: Recurrent::None,
        }
    }

    fn width(&self, c: usize) -> usize {
        ((c as f64 * self.width_scale).round() as usize).max(1)
    }

    /// Builds the network, drawing every learned weight from `rng`.
    ///
    /// # Errors
    /// Invalid sizes (zero channels or classes, a VGG input not divisible by 32, a bottleneck
    /// of 0), bad bank parameters, zero recurrent steps.
    pub fn build(&self, rng: &mut Stream) -> Result<Sequential> {
        if self.in_channels == 0 || self.classes == 0 || self.input_size == 0 {
            return Err(invalid(
                "bionet",
                format!(
                    "{} channels, {} classes, size {}",
                    self.in_channels, self.classes, self.input_size
                ),
                "must all be >= 1",
            ));
        }
        if !(self.width_scale.is_finite() && self.width_scale > 0.0) {
            return Err(invalid("width_scale", self.width_scale, "must be finite and > 0"));
        }
        if self.base == Base::Vgg16 && self.input_size % 32 != 0 {
            return Err(invalid("input_size", self.input_size, "VGG-16 needs a multiple of 32"));
        }
        let conv = |cin: usize, cout: usize, k: usize, stride: usize, pad: PaddingConfig, rng: &mut Stream| {
            Conv2dConfig::new(cin, cout, (k, k))
                .with_padding(pad)
                .with_strides(stride, stride)
                .init(rng)
        };
        let same = PaddingConfig::Same;
        let mut seq = Sequential::new();
        let mut channels = self.in_channels;
        if let Some(n) = self.bottleneck {
            if n == 0 {
                return Err(invalid("bottleneck", 0, "needs at least one channel"));
            }
            let retina = self.width(32);
            seq = seq
                .push(conv(channels, retina, 3, 1, same, rng)?)
                .push(Activation::Relu)
                .push(conv(retina, n, 3, 1, same, rng)?)
                .push(Activation::Relu)
                .push(conv(n, n, 3, 1, same, rng)?)
                .push(Activation::Relu);
            channels = n;
        }
        let first_width = match self.base {
            Base::AllCnn => self.width(96),
            Base::Vgg16 | Base::Resnet50 => self.width(64),
        };
        let resnet = self.base == Base::Resnet50;
        // ResNet's bio stem pads by 3 and filters with a valid, stride-1 bank (upstream's
        // BioResNet50); the other bases keep the map size (`same`).
        let bank_padding = |spec: &FilterBankSpec| -> Result<PaddingConfig> {
            if !resnet {
                return Ok(same);
            }
            if spec.ksize() > self.input_size + 6 {
                return Err(invalid(
                    "filter bank size",
                    spec.ksize(),
                    format!(
                        "the ResNet-50 bio stem needs at most input size + 6 = {}",
                        self.input_size + 6
                    ),
                ));
            }
            Ok(PaddingConfig::Explicit([3; 4]))
        };
        let bank = |spec: &FilterBankSpec, cin: usize, padding: PaddingConfig| -> Result<FilterBankLayer> {
            FilterBankConfig {
                trainable: self.bank_trainable && self.bottleneck.is_some(),
                padding,
                ..FilterBankConfig::new(spec.clone(), cin)
            }
            .init()
        };
        // The first layer (or upstream's one-step ConvLSTM in its place).
        match (&self.front, self.recurrent) {
            (FrontEnd::Standard, Recurrent::UpstreamOneStep) => {
                seq = seq.push(ConvLstmConfig::new(channels, first_width, (3, 3), 1).init(rng)?);
                channels = first_width;
            }
            (FrontEnd::Standard, _) if resnet => {
                // ZeroPadding2D(3) + Conv2D(64, 7, strides=2); BN and ReLU follow in the body.
                seq = seq.push(conv(channels, first_width, 7, 2, PaddingConfig::Explicit([3; 4]), rng)?);
                channels = first_width;
            }
            (FrontEnd::Standard, _) => {
                seq = seq
                    .push(conv(channels, first_width, 3, 1, same, rng)?)
                    .push(Activation::Relu);
                channels = first_width;
            }
            (FrontEnd::Bank(spec), Recurrent::UpstreamOneStep) => {
                let k = spec.ksize();
                seq = seq.push(ConvLstmConfig::new(channels, spec.channels(), (k, k), 1).init(rng)?);
                channels = spec.channels();
            }
            (FrontEnd::Bank(spec), _) => {
                seq = seq.push(bank(spec, channels, bank_padding(spec)?)?);
                channels = spec.channels();
            }
            (FrontEnd::Combined { dog, gabor }, recurrent) => {
                if recurrent == Recurrent::UpstreamOneStep {
                    let k = dog.ksize();
                    seq = seq.push(ConvLstmConfig::new(channels, dog.channels(), (k, k), 1).init(rng)?);
                } else {
                    seq = seq.push(bank(dog, channels, bank_padding(dog)?)?);
                }
                seq = seq.push(bank(gabor, dog.channels(), same)?);
                channels = gabor.channels();
            }
        }
        if let Recurrent::ConvLstm { steps, kernel } = self.recurrent {
            if kernel == 0 || kernel % 2 == 0 {
                return Err(invalid("recurrent kernel", kernel, "must be odd"));
            }
            seq = seq.push(ConvLstmConfig::new(channels, channels, (kernel, kernel), steps).init(rng)?);
        }
        match self.base {
            Base::AllCnn => self.all_cnn_body(seq, channels, rng),
            Base::Vgg16 => self.vgg16_body(seq, channels, rng),
            Base::Resnet50 => self.resnet50_body(seq, channels, rng),
        }
    }

    /// Everything after the stem convolution (or the bank that replaces it): BN, ReLU, the
    /// 3×3/2 max-pool, the four bottleneck stages, global average pooling and the dense head.
    fn resnet50_body(&self, seq: Sequential, cin: usize, rng: &mut Stream) -> Result<Sequential> {
        let stem_bn = BatchNorm2d::new(cin)?.with_eps_momentum(KERAS_RESNET_BN_EPS, KERAS_BN_MOMENTUM)?;
        // ZeroPadding2D(1) + MaxPooling2D(3, strides=2): the input is a ReLU output (>= 0), so
        // zero padding inside the pool gives the same maxima.
        let pool = Pool2d::new(3).with_stride(2, 2).with_padding(1, 1);
        let mut seq = seq.push(stem_bn).push(Activation::Relu).push(MaxPool2d(pool));
        let mut c = cin;
        // (filters, blocks, stride of the first block): Keras' stack1 calls of ResNet50.
        for (filters, blocks, stride) in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)] {
            let f = self.width(filters);
            for b in 0..blocks {
                let block = if b == 0 {
                    BottleneckConfig::new(c, f, stride, true)
                } else {
                    BottleneckConfig::new(c, f, 1, false)
                };
                c = block.out_channels();
                seq = seq.push(block.init(rng)?);
            }
        }
        Ok(seq
            .push(GlobalAvgPool)
            .push(DenseConfig::new(c, self.classes).init(rng)?))
    }

    fn all_cnn_body(&self, mut seq: Sequential, cin: usize, rng: &mut Stream) -> Result<Sequential> {
        let (w1, w2) = (self.width(96), self.width(192));
        let same = PaddingConfig::Same;
        let valid = PaddingConfig::Valid;
        // (out, kernel, stride, padding) after the first layer.
        let layers = [
            (w1, 3, 1, same),
            (w1, 3, 2, same),
            (w2, 3, 1, same),
            (w2, 3, 1, same),
            (w2, 3, 2, same),
            (w2, 3, 1, same),
            (w2, 1, 1, valid),
            (self.classes, 1, 1, valid),
        ];
        let mut c = cin;
        for (out, k, s, pad) in layers {
            seq = seq
                .push(
                    Conv2dConfig::new(c, out, (k, k))
                        .with_padding(pad)
                        .with_strides(s, s)
                        .init(rng)?,
                )
                .push(Activation::Relu);
            c = out;
        }
        Ok(seq.push(GlobalAvgPool))
    }

    fn vgg16_body(&self, mut seq: Sequential, cin: usize, rng: &mut Stream) -> Result<Sequential> {
        // Block widths and conv counts; the first conv of block 1 is the first layer (built).
        let blocks = [(64, 1), (128, 2), (256, 3), (512, 3), (512, 3)];
        let mut c = cin;
        for (width, convs) in blocks {
            let out = self.width(width);
            for _ in 0..convs {
                seq = seq
                    .push(
                        Conv2dConfig::new(c, out, (3, 3))
                            .with_padding(PaddingConfig::Same)
                            .init(rng)?,
                    )
                    .push(Activation::Relu);
                c = out;
            }
            seq = seq.push(MaxPool2d(Pool2d::new(2)));
        }
        let side = self.input_size / 32;
        let flat = side * side * c;
        let dense = self.width(4096);
        Ok(seq
            .push(FlattenChannelsLast)
            .push(DenseConfig::new(flat, dense).init(rng)?)
            .push(Activation::Relu)
            .push(DenseConfig::new(dense, dense).init(rng)?)
            .push(Activation::Relu)
            .push(DenseConfig::new(dense, self.classes).init(rng)?))
    }
}

/// `(n, c, h, w) → (n, c)`: the mean over each map (Keras `GlobalAveragePooling2D`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalAvgPool;

impl Module for GlobalAvgPool {
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let rows = g.mean_axis(x, 3, false)?;
        Ok(g.mean_axis(&rows, 2, false)?)
    }
    fn name(&self) -> String {
        "global_avg_pool".into()
    }
}
