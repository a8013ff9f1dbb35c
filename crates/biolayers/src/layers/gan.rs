//! The layers of the DCGAN that `biolayers` did not have: [`Reshape`] (Keras `Reshape`, with
//! Keras' channels-last order), [`BatchNorm1d`] (Keras `BatchNormalization` on dense features)
//! and [`SpectralNormConv2d`] (Keras `SpectralNormalization(Conv2D(...))`). `LeakyReLU` is
//! [`super::Activation::LeakyRelu`].
//!
//! Spectral normalisation, as Keras 3 `layers.SpectralNormalization` (one power iteration):
//!
//! ```text
//! training call:  v = normalize(W u),  u ← normalize(Wᵀ v),  σ = vᵀ W u,  W ← W / σ   (assigned)
//!                 then y = conv(x, W)
//! inference call: y = conv(x, W)
//! ```
//! with `W` the kernel as a `(kh·kw·cin, filters)` matrix and `u` a non-trainable state vector
//! (`[filters]`, drawn from a truncated normal with stddev 0.02 as Keras does, checkpointed as the
//! buffer `u`). The assignment is Keras' semantics: `σ` carries no gradient and the optimiser
//! updates the normalised kernel. A kernel that is all zero is left alone (Keras' `cond`).
//!
//! # Shapes
//! `Reshape`: `(n, Π shape)` → `(n, shape...)`; with `channels_last`, `shape = [h, w, c]` is read
//! in Keras' NHWC order and returned as NCHW `(n, c, h, w)`. `BatchNorm1d`: `(n, c)` → `(n, c)`.
//! `SpectralNormConv2d`: as [`Conv2d`].

use bioautograd::ops::spectral_norm::power_iteration;
use bioautograd::{BatchNormState, Graph, Var};
use biorng::Stream;

use super::{BatchNorm2d, Conv2d, Learnable, Module, Param, KERAS_BN_MOMENTUM};
use crate::error::{invalid, Result};

/// Keras `Reshape(shape)` of every sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Reshape {
    shape: Vec<usize>,
    channels_last: bool,
}

impl Reshape {
    /// `(n, Π shape)` → `(n, shape...)` in row-major order (PyTorch `view`).
    ///
    /// # Errors
    /// An empty `shape` or a zero in it.
    pub fn new(shape: &[usize]) -> Result<Self> {
        if shape.is_empty() || shape.contains(&0) {
            return Err(invalid(
                "reshape",
                format!("{shape:?}"),
                "needs at least one axis, none of them 0",
            ));
        }
        Ok(Reshape {
            shape: shape.to_vec(),
            channels_last: false,
        })
    }
    /// Keras `Reshape((h, w, c))` in front of channels-first convolutions: the features are read
    /// as NHWC (Keras' order) and returned as NCHW.
    ///
    /// # Errors
    /// A zero in the shape.
    pub fn channels_last(h: usize, w: usize, c: usize) -> Result<Self> {
        let mut r = Reshape::new(&[h, w, c])?;
        r.channels_last = true;
        Ok(r)
    }
}

impl Module for Reshape {
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let n = g.shape(x)?.first().copied().unwrap_or(0);
        let mut shape = vec![n];
        shape.extend_from_slice(&self.shape);
        let y = g.reshape(x, &shape)?;
        if self.channels_last {
            // (n, h, w, c) → (n, h, c, w) → (n, c, h, w)
            let nhcw = g.transpose(&y, 2, 3)?;
            return Ok(g.transpose(&nhcw, 1, 2)?);
        }
        Ok(y)
    }
    fn name(&self) -> String {
        "reshape".into()
    }
}

/// Batch normalisation of dense features `(n, c)`, per feature: [`BatchNorm2d`] on `(n, c, 1, 1)`
/// (the same statistics: over the batch only).
#[derive(Debug, Clone)]
pub struct BatchNorm1d(BatchNorm2d);

impl BatchNorm1d {
    /// For `features` features (`gamma = 1`, `beta = 0`, PyTorch's ε and momentum).
    ///
    /// # Errors
    /// As [`BatchNorm2d::new`].
    pub fn new(features: usize) -> Result<Self> {
        Ok(BatchNorm1d(BatchNorm2d::new(features)?))
    }
    /// Keras' `BatchNormalization()` defaults: ε = 1e-3, momentum 0.99 (0.01 in the PyTorch
    /// convention of [`BatchNorm2d::with_eps_momentum`]).
    ///
    /// # Errors
    /// As [`BatchNorm2d::new`].
    pub fn keras(features: usize) -> Result<Self> {
        Ok(BatchNorm1d(
            BatchNorm2d::new(features)?.with_eps_momentum(KERAS_BN_EPS, KERAS_BN_MOMENTUM)?,
        ))
    }
    /// The running statistics.
    pub fn state(&self) -> &BatchNormState {
        self.0.state()
    }
}

/// Keras `BatchNormalization`'s default `epsilon`.
pub const KERAS_BN_EPS: f64 = 1e-3;

impl Module for BatchNorm1d {
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let shape = g.shape(x)?;
        if shape.len() != 2 {
            return Err(invalid(
                "batchnorm1d input",
                format!("{shape:?}"),
                "must be (n, features)",
            ));
        }
        let x4 = g.reshape(x, &[shape[0], shape[1], 1, 1])?;
        let y = self.0.forward(g, &x4)?;
        Ok(g.reshape(&y, &shape)?)
    }
    fn params(&self) -> Vec<&Param> {
        self.0.params()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        self.0.params_mut()
    }
    fn name(&self) -> String {
        "batchnorm1d".into()
    }
    fn buffers(&self) -> Vec<(String, Vec<f32>)> {
        self.0.buffers()
    }
    fn set_buffers(&mut self, buffers: &[(String, Vec<f32>)]) -> Result<()> {
        self.0.set_buffers(buffers)
    }
}

/// `SpectralNormalization(Conv2D(...))` with Keras 3 semantics (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct SpectralNormConv2d {
    conv: Conv2d,
    u: Vec<f32>,
    power_iterations: usize,
    last_sigma: Option<f32>,
}

impl SpectralNormConv2d {
    /// Wraps `conv` (a forward convolution) with one power iteration per training call; `u` is
    /// drawn from `rng` (truncated normal, stddev 0.02, as Keras' `vector_u`).
    ///
    /// # Errors
    /// A transposed `conv` (Keras wraps any layer with a `kernel`; the DCGAN needs Conv2D only).
    pub fn new(conv: Conv2d, rng: &mut Stream) -> Result<Self> {
        if conv.config().transposed {
            return Err(invalid(
                "spectral_norm layer",
                "conv_transpose2d",
                "only Conv2D is wrapped here",
            ));
        }
        let filters = conv.config().filters;
        let u = (0..filters)
            .map(|_| loop {
                let z = rng.standard_normal();
                if z.abs() <= 2.0 {
                    break (0.02 * z) as f32;
                }
            })
            .collect();
        Ok(SpectralNormConv2d {
            conv,
            u,
            power_iterations: 1,
            last_sigma: None,
        })
    }
    /// The wrapped convolution.
    pub fn conv(&self) -> &Conv2d {
        &self.conv
    }
    /// The singular-vector state `u` (`[filters]`).
    pub fn u(&self) -> &[f32] {
        &self.u
    }
    /// The `σ` the last training call divided the kernel by.
    pub fn last_sigma(&self) -> Option<f32> {
        self.last_sigma
    }

    /// The training call's update: one power iteration from `u`, then `W ← W / σ`, `u ← u'`.
    fn normalize_kernel(&mut self) -> Result<()> {
        let cols = self.conv.config().filters;
        let Some(kernel) = self.conv.params_mut().into_iter().next() else {
            return Err(invalid("spectral_norm layer", self.conv.name(), "has no kernel"));
        };
        // On a device the kernel is read back, normalised on the host and uploaded again (a
        // small kernel, once per training call).
        let mut on_host = kernel.value.is_cuda().then(|| kernel.value.to_vec()).transpose()?;
        let w = match on_host.as_mut() {
            Some(v) => &mut v[..],
            None => kernel.value.data_mut()?,
        };
        if w.iter().all(|&v| v == 0.0) {
            return Ok(());
        }
        let rows = w.len() / cols;
        let it = power_iteration(w, rows, cols, &self.u, self.power_iterations)?;
        let inv = 1.0 / it.sigma;
        w.iter_mut().for_each(|v| *v *= inv);
        self.u = it.u;
        self.last_sigma = Some(it.sigma);
        if let Some(v) = on_host {
            kernel.value = bioautograd::Tensor::new(v, kernel.value.shape(), kernel.value.device())?;
        }
        Ok(())
    }
}

impl Module for SpectralNormConv2d {
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        if g.is_training() {
            self.normalize_kernel()?;
        }
        self.conv.forward(g, x)
    }
    fn params(&self) -> Vec<&Param> {
        self.conv.params()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        self.conv.params_mut()
    }
    fn name(&self) -> String {
        "spectral_norm_conv2d".into()
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![("layer".into(), &self.conv as &dyn Module)]
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        vec![("layer".into(), &mut self.conv as &mut dyn Module)]
    }
    fn buffers(&self) -> Vec<(String, Vec<f32>)> {
        vec![("u".into(), self.u.clone())]
    }
    fn set_buffers(&mut self, buffers: &[(String, Vec<f32>)]) -> Result<()> {
        for (name, v) in buffers {
            if name != "u" {
                return Err(invalid("buffer", name, "spectral_norm_conv2d has the buffer u"));
            }
            if v.len() != self.u.len() {
                return Err(invalid(
                    "buffer",
                    name,
                    format!("needs {} values, got {}", self.u.len(), v.len()),
                ));
            }
            self.u.clone_from(v);
        }
        Ok(())
    }
    fn learnable(&self) -> Option<Learnable> {
        self.conv.learnable()
    }
}
