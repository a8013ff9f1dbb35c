//! Optimisers: SGD (momentum, Nesterov), Adam and RMSprop, each in an explicit convention.
//!
//! The two frameworks the originals used differ, and a reproduction must say which one it means:
//!
//! | | Keras / TensorFlow 2 (`Convention::Keras`) | PyTorch (`Convention::Torch`) |
//! |---|---|---|
//! | SGD momentum | `v ← μv - lr·g; w ← w + v` (Nesterov: `w ← w + μv - lr·g`) | `b ← μb + g` (`b₁ = g`); `w ← w - lr·b` (Nesterov: `w ← w - lr·(g + μb)`) |
//! | Adam | `lr_t = lr·sqrt(1-β₂ᵗ)/(1-β₁ᵗ)`; `w ← w - lr_t·m/(sqrt(v) + ε)`, ε = 1e-7 | `w ← w - lr/(1-β₁ᵗ)·m/(sqrt(v)/sqrt(1-β₂ᵗ) + ε)`, ε = 1e-8 |
//! | RMSprop | ρ = 0.9, `s ← ρs + (1-ρ)g²`, `w ← w - lr·g/sqrt(s + ε)` (ε **inside** the root, TF's `ApplyRMSProp`), ε = 1e-7 | α = 0.99, `w ← w - lr·g/(sqrt(s) + ε)` (ε outside), ε = 1e-8 |
//! | RMSprop momentum | `b ← μb + lr·g/sqrt(s + ε); w ← w - b` | `b ← μb + g/(sqrt(s) + ε); w ← w - lr·b` |
//! | learning-rate decay | legacy `decay`: `lr_t = lr / (1 + decay·(t-1))` at step `t` | none (schedulers are separate) |
//! | weight decay | none (Keras regularisers are losses) | `g ← g + wd·w` (L2, coupled) |
//!
//! A schedule (Keras' `LearningRateScheduler`, PyTorch's `StepLR`) multiplies the configured rate
//! by a factor set from outside ([`Optimizer::set_lr_scale`]; `biotasks::fit` sets it per epoch):
//! the rate of a step is `lr · scale / (1 + decay·(t−1))`.
//!
//! Which paper used which: the schizophrenia CIFAR-10 CNN used Keras RMSprop(lr 1e-4,
//! decay 1e-6) and its MNIST nets Keras Adam; the schizophrenia VGG16 Keras Adam(5e-4) with a
//! step to 1e-4 after 150 of 200 epochs; BioNet Keras RMSprop(1e-4, decay 1e-6); the
//! bio-instantiated RNNs PyTorch Adam/RMSprop/SGD with PyTorch defaults.
//!
//! Parameters are plain `f32` slices identified by an index, so any model (tape-based or not)
//! can drive the update. Parameters on a CUDA device are updated there by
//! [`Optimizer::update_tensor`] (`DeviceBackend::optimizer_step`, Adam and RMSprop, the same
//! formulas and conventions; the moments stay on the device; SGD on a device is an
//! `UnsupportedOnDevice` error). The per-element Adam and RMSprop update is written once, in
//! `biokernels::optim::apply`, which the host emulator of the device calls too; every device
//! keeps the state in its layout (`first` = Adam `m` / RMSprop momentum, `second` = Adam `v` /
//! RMSprop mean square). Masked weights stay exactly 0: their gradient is 0,
//! so every state and update is 0 (no weight decay is applied to a weight that is 0).
//!
//! # Shapes
//! `param` and `grad` of one index always have the same length; the state is created on first use.

use bioautograd::{CudaBuffer, Device, Tensor};
use biokernels::optim::OptimizerStep;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Error, Result};

/// Whose update rule and defaults to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Convention {
    /// Keras / TensorFlow 2 (and Keras 3).
    #[default]
    Keras,
    /// PyTorch.
    Torch,
}

/// An optimiser and its hyper-parameters (`None` = the convention's default), serialised with a
/// `kind` tag, e.g. `{kind = "rmsprop", lr = 1e-4, decay = 1e-6, convention = "keras"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Stochastic gradient descent.
    Sgd {
        lr: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        nesterov: bool,
        #[serde(default)]
        weight_decay: f64,
        #[serde(default)]
        decay: f64,
        #[serde(default)]
        convention: Convention,
    },
    /// Adam.
    Adam {
        lr: f64,
        #[serde(default)]
        beta1: Option<f64>,
        #[serde(default)]
        beta2: Option<f64>,
        #[serde(default)]
        eps: Option<f64>,
        #[serde(default)]
        weight_decay: f64,
        #[serde(default)]
        decay: f64,
        #[serde(default)]
        convention: Convention,
    },
    /// RMSprop.
    #[serde(rename = "rmsprop")]
    RmsProp {
        lr: f64,
        /// Keras `rho` / PyTorch `alpha`.
        #[serde(default)]
        rho: Option<f64>,
        #[serde(default)]
        eps: Option<f64>,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        weight_decay: f64,
        #[serde(default)]
        decay: f64,
        #[serde(default)]
        convention: Convention,
    },
}

/// Resolved hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    Sgd { momentum: f32, nesterov: bool },
    Adam { beta1: f64, beta2: f64, eps: f32 },
    RmsProp { rho: f32, eps: f32, momentum: f32 },
}

/// The running state of an optimiser (for checkpoints): the step counter and, per parameter,
/// the first/second moment buffers and whether the first step was taken.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimizerState {
    /// Steps begun.
    pub t: u64,
    /// `(first, second, started)` per parameter index.
    pub slots: Vec<(Vec<f32>, Vec<f32>, bool)>,
}

/// The moments of a parameter that lives on a CUDA device, in the layout of `biokernels::optim`
/// square and momentum buffer), on the same device. Clones share the buffers copy-on-write.
#[derive(Debug, Clone)]
struct DeviceState {
    first: CudaBuffer,
    second: CudaBuffer,
    /// Whether a step was taken (PyTorch's SGD momentum starts its buffer at the gradient).
    started: bool,
}

#[derive(Debug, Clone, Default)]
struct State {
    first: Vec<f32>,
    second: Vec<f32>,
    started: bool,
}

/// A running optimiser: call [`Optimizer::begin_step`] once per step, then
/// [`Optimizer::update`] for every parameter (or [`Optimizer::step`] for both).
#[derive(Debug, Clone)]
pub struct Optimizer {
    rule: Rule,
    convention: Convention,
    lr: f64,
    /// Factor on `lr` set by a schedule ([`Optimizer::set_lr_scale`]); 1 without one.
    lr_scale: f64,
    decay: f64,
    weight_decay: f32,
    t: u64,
    states: Vec<State>,
    device_states: Vec<Option<DeviceState>>,
}

fn check_range(name: &'static str, v: f64, lo: f64, hi: f64, reason: &str) -> Result<()> {
    if !v.is_finite() || v < lo || v > hi {
        return Err(invalid(name, v, reason));
    }
    Ok(())
}

fn check_beta(name: &'static str, v: f64) -> Result<()> {
    if !v.is_finite() || !(0.0..1.0).contains(&v) {
        return Err(invalid(name, v, "must be in [0, 1)"));
    }
    Ok(())
}

impl OptimizerConfig {
    /// Keras `RMSprop(learning_rate = lr, decay = decay)`, as the schizophrenia CIFAR net used.
    pub fn keras_rmsprop(lr: f64, decay: f64) -> Self {
        OptimizerConfig::RmsProp {
            lr,
            rho: None,
            eps: None,
            momentum: 0.0,
            weight_decay: 0.0,
            decay,
            convention: Convention::Keras,
        }
    }

    /// PyTorch `Adam(params, lr)` with its defaults.
    pub fn torch_adam(lr: f64) -> Self {
        OptimizerConfig::Adam {
            lr,
            beta1: None,
            beta2: None,
            eps: None,
            weight_decay: 0.0,
            decay: 0.0,
            convention: Convention::Torch,
        }
    }

    /// Validates the configuration and creates the optimiser.
    pub fn build(&self) -> Result<Optimizer> {
        let (lr, weight_decay, decay, convention, rule) = match *self {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                nesterov,
                weight_decay,
                decay,
                convention,
            } => {
                check_range("momentum", momentum, 0.0, 1.0, "must be in [0, 1]")?;
                if nesterov && momentum == 0.0 {
                    return Err(invalid("nesterov", true, "needs momentum > 0"));
                }
                (
                    lr,
                    weight_decay,
                    decay,
                    convention,
                    Rule::Sgd {
                        momentum: momentum as f32,
                        nesterov,
                    },
                )
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
                decay,
                convention,
            } => {
                let beta1 = beta1.unwrap_or(0.9);
                let beta2 = beta2.unwrap_or(0.999);
                let eps = eps.unwrap_or(default_eps(convention));
                check_beta("beta1", beta1)?;
                check_beta("beta2", beta2)?;
                check_range("eps", eps, f64::MIN_POSITIVE, 1.0, "must be in (0, 1]")?;
                (
                    lr,
                    weight_decay,
                    decay,
                    convention,
                    Rule::Adam {
                        beta1,
                        beta2,
                        eps: eps as f32,
                    },
                )
            }
            OptimizerConfig::RmsProp {
                lr,
                rho,
                eps,
                momentum,
                weight_decay,
                decay,
                convention,
            } => {
                let rho = rho.unwrap_or(match convention {
                    Convention::Keras => 0.9,
                    Convention::Torch => 0.99,
                });
                let eps = eps.unwrap_or(default_eps(convention));
                check_beta("rho", rho)?;
                check_range("eps", eps, f64::MIN_POSITIVE, 1.0, "must be in (0, 1]")?;
                check_range("momentum", momentum, 0.0, 1.0, "must be in [0, 1]")?;
                let rule = Rule::RmsProp {
                    rho: rho as f32,
                    eps: eps as f32,
                    momentum: momentum as f32,
                };
                (lr, weight_decay, decay, convention, rule)
            }
        };
        check_range("lr", lr, 0.0, f64::MAX, "must be finite and >= 0")?;
        check_range("weight_decay", weight_decay, 0.0, f64::MAX, "must be finite and >= 0")?;
        check_range("decay", decay, 0.0, f64::MAX, "must be finite and >= 0")?;
        if convention == Convention::Keras && weight_decay != 0.0 {
            return Err(invalid(
                "weight_decay",
                weight_decay,
                "is a PyTorch option; use a regulariser with Keras",
            ));
        }
        if convention == Convention::Torch && decay != 0.0 {
            return Err(invalid(
                "decay",
                decay,
                "is Keras' legacy learning-rate decay; use the keras convention",
            ));
        }
        Ok(Optimizer {
            rule,
            convention,
            lr,
            lr_scale: 1.0,
            decay,
            weight_decay: weight_decay as f32,
            t: 0,
            states: Vec::new(),
            device_states: Vec::new(),
        })
    }
}

fn default_eps(c: Convention) -> f64 {
    match c {
        Convention::Keras => 1e-7,
        Convention::Torch => 1e-8,
    }
}

/// Elements per rayon task of an optimiser update.
const UPDATE_CHUNK: usize = 1 << 14;

/// One optimiser rule applied to a slice of a parameter and its state buffers.
#[derive(Debug, Clone, Copy)]
struct UpdateKernel {
    rule: Rule,
    convention: Convention,
    lr: f64,
    weight_decay: f32,
    t: u64,
    started: bool,
}

impl UpdateKernel {
    fn apply(&self, param: &mut [f32], grad: &[f32], first: &mut [f32], second: &mut [f32]) -> biokernels::Result<()> {
        let (lr, wd, t, started, conv) = (self.lr, self.weight_decay, self.t, self.started, self.convention);
        let lr32 = lr as f32;
        // PyTorch's coupled L2 weight decay: g + wd·w.
        let g_at = |i: usize, w: f32| if wd != 0.0 { grad[i] + wd * w } else { grad[i] };
        match (self.rule, conv) {
            (Rule::Sgd { momentum, nesterov }, Convention::Keras) => {
                for (i, w) in param.iter_mut().enumerate() {
                    let g = g_at(i, *w);
                    if momentum == 0.0 {
                        *w -= lr32 * g;
                    } else {
                        let v = momentum * first[i] - lr32 * g;
                        first[i] = v;
                        *w += if nesterov { momentum * v - lr32 * g } else { v };
                    }
                }
            }
            (Rule::Sgd { momentum, nesterov }, Convention::Torch) => {
                for (i, w) in param.iter_mut().enumerate() {
                    let g = g_at(i, *w);
                    if momentum == 0.0 {
                        *w -= lr32 * g;
                    } else {
                        let b = if started { momentum * first[i] + g } else { g };
                        first[i] = b;
                        *w -= lr32 * if nesterov { g + momentum * b } else { b };
                    }
                }
            }
            (Rule::Adam { .. } | Rule::RmsProp { .. }, _) => {
                if let Some(step) = step_constants(self.rule, conv, lr, t, wd) {
                    biokernels::optim::apply(step, param, grad, first, second)?;
                }
            }
        }
        Ok(())
    }
}

/// One SGD step of a parameter on a device, as `axpby` calls that round exactly as the host
/// formulas of [`UpdateKernel::apply`] (each product rounded, then the sum; `g' = g + wd·w` in a
/// private copy when there is weight decay):
///
/// ```text
/// Keras:  v ← μv − lr·g';  w ← w + v        (Nesterov: w ← w + (μv − lr·g'))
/// Torch:  b ← μb + g' (b₁ = g');  w ← w − lr·b   (Nesterov: w ← w − lr·(g' + μb))
/// μ = 0:  w ← w − lr·g'
/// ```
fn sgd_on_device(
    rule: Rule,
    convention: Convention,
    lr: f32,
    weight_decay: f32,
    w: &mut CudaBuffer,
    g: &CudaBuffer,
    st: &mut DeviceState,
) -> Result<()> {
    let Rule::Sgd { momentum, nesterov } = rule else {
        return Ok(());
    };
    let gw = if weight_decay != 0.0 {
        let mut c = g.deep_copy()?;
        CudaBuffer::axpby(weight_decay, w, 1.0, &mut c)?;
        c
    } else {
        g.clone()
    };
    if momentum == 0.0 {
        return Ok(CudaBuffer::axpby(-lr, &gw, 1.0, w)?);
    }
    let v = &mut st.first;
    match convention {
        Convention::Keras => {
            CudaBuffer::axpby(-lr, &gw, momentum, v)?;
            if nesterov {
                let mut step = gw.deep_copy()?;
                CudaBuffer::axpby(momentum, v, -lr, &mut step)?;
                CudaBuffer::axpby(1.0, &step, 1.0, w)?;
            } else {
                CudaBuffer::axpby(1.0, v, 1.0, w)?;
            }
        }
        Convention::Torch => {
            CudaBuffer::axpby(1.0, &gw, if st.started { momentum } else { 0.0 }, v)?;
            if nesterov {
                let mut step = gw.deep_copy()?;
                CudaBuffer::axpby(momentum, v, 1.0, &mut step)?;
                CudaBuffer::axpby(-lr, &step, 1.0, w)?;
            } else {
                CudaBuffer::axpby(-lr, v, 1.0, w)?;
            }
        }
    }
    Ok(())
}

/// The constants of one Adam or RMSprop step (learning rate of the step, bias corrections) for
/// the per-element formula [`biokernels::optim::apply`], shared by the host update and the
/// device step; `None` for SGD.
fn step_constants(rule: Rule, conv: Convention, lr: f64, t: u64, weight_decay: f32) -> Option<OptimizerStep> {
    let torch = conv == Convention::Torch;
    match rule {
        Rule::Adam { beta1, beta2, eps } => {
            let bc1 = 1.0 - beta1.powf(t as f64);
            let bc2 = 1.0 - beta2.powf(t as f64);
            Some(OptimizerStep::Adam {
                beta1: beta1 as f32,
                beta2: beta2 as f32,
                eps,
                step: if torch {
                    (lr / bc1) as f32
                } else {
                    (lr * bc2.sqrt() / bc1) as f32
                },
                bc2_sqrt: bc2.sqrt() as f32,
                torch,
                weight_decay,
            })
        }
        Rule::RmsProp { rho, eps, momentum } => Some(OptimizerStep::RmsProp {
            rho,
            eps,
            lr: lr as f32,
            momentum,
            torch,
            weight_decay,
        }),
        Rule::Sgd { .. } => None,
    }
}

impl Optimizer {
    /// Starts a new step (increments the iteration counter `t`, 1-based).
    pub fn begin_step(&mut self) {
        self.t += 1;
    }

    /// Number of steps begun so far.
    pub fn iterations(&self) -> u64 {
        self.t
    }

    /// The learning rate used by the current step: the configured rate times the schedule's
    /// factor, with Keras' legacy decay applied.
    pub fn current_lr(&self) -> f64 {
        let done = self.t.saturating_sub(1) as f64;
        self.lr * self.lr_scale / (1.0 + self.decay * done)
    }

    /// Sets the factor a learning-rate schedule puts on the configured rate, as Keras'
    /// `LearningRateScheduler` sets `optimizer.lr` before an epoch (the moments and the step
    /// count are untouched, so Adam's bias corrections run on). It is not part of
    /// [`Optimizer::export_state`]: a schedule is a function of the epoch, and the training loop
    /// sets it again before every epoch, resumed or not.
    ///
    /// # Errors
    /// A factor that is not finite and `>= 0`.
    pub fn set_lr_scale(&mut self, scale: f64) -> Result<()> {
        check_range("lr scale", scale, 0.0, f64::MAX, "must be finite and >= 0")?;
        self.lr_scale = scale;
        Ok(())
    }

    /// The factor of [`Optimizer::set_lr_scale`] (1 unless a schedule set another).
    pub fn lr_scale(&self) -> f64 {
        self.lr_scale
    }

    /// Updates parameter `index` in place from its gradient. Errors on a length mismatch or a
    /// non-finite gradient (the parameter is left unchanged).
    pub fn update(&mut self, index: usize, param: &mut [f32], grad: &[f32]) -> Result<()> {
        if param.len() != grad.len() {
            return Err(Error::ShapeMismatch {
                op: "optimizer update",
                lhs_name: "param",
                lhs: vec![param.len()],
                rhs_name: "grad",
                rhs: vec![grad.len()],
            });
        }
        if let Some(i) = grad.iter().position(|g| !g.is_finite()) {
            return Err(Error::NonFinite {
                op: "optimizer update",
                what: format!("gradient of parameter {index} at {i}"),
            });
        }
        if self.t == 0 {
            self.t = 1;
        }
        if self.states.len() <= index {
            self.states.resize_with(index + 1, State::default);
        }
        let lr = self.current_lr();
        let t = self.t;
        let (conv, wd) = (self.convention, self.weight_decay);
        let st = &mut self.states[index];
        if st.first.len() != param.len() {
            st.first = vec![0.0; param.len()];
            st.second = vec![0.0; param.len()];
            st.started = false;
        }
        let kernel = UpdateKernel {
            rule: self.rule,
            convention: conv,
            lr,
            weight_decay: wd,
            t,
            started: st.started,
        };
        // Every element is updated independently, so splitting the buffers over the rayon
        // pool gives the same values for any number of threads.
        if param.len() >= 2 * UPDATE_CHUNK {
            param
                .par_chunks_mut(UPDATE_CHUNK)
                .zip(grad.par_chunks(UPDATE_CHUNK))
                .zip(st.first.par_chunks_mut(UPDATE_CHUNK))
                .zip(st.second.par_chunks_mut(UPDATE_CHUNK))
                .try_for_each(|(((w, g), m), v)| kernel.apply(w, g, m, v))?;
        } else {
            kernel.apply(param, grad, &mut st.first, &mut st.second)?;
        }
        st.started = true;
        Ok(())
    }

    /// Updates parameter `index` from its gradient wherever both live: the host path of
    /// [`Optimizer::update`], or, for a parameter on a CUDA device, one
    /// `DeviceBackend::optimizer_step` there (Adam and RMSprop with the same hyper-parameters,
    /// learning-rate decay and bias corrections as the host path; SGD as `axpby` calls; the
    /// moments are kept on the device). On the device the gradient is not checked for non-finite values (that would
    /// cost a download per parameter; [`crate::train::train_step`] still rejects a non-finite
    /// loss).
    ///
    /// # Errors
    /// As [`Optimizer::update`]; `DeviceMismatch` when the two are on different devices;
    /// kernel errors. (SGD runs on the device as `axpby` calls, `sgd_on_device`.)
    pub fn update_tensor(&mut self, index: usize, param: &mut Tensor, grad: &Tensor) -> Result<()> {
        let (pd, gd) = (param.device(), grad.device());
        if pd != gd {
            return Err(bioautograd::Error::DeviceMismatch {
                op: "optimizer update",
                lhs: pd,
                rhs: gd,
            }
            .into());
        }
        if pd == Device::Cpu {
            return self.update(index, param.data_mut()?, grad.as_slice()?);
        }
        if param.numel() != grad.numel() {
            return Err(Error::ShapeMismatch {
                op: "optimizer update",
                lhs_name: "param",
                lhs: param.shape().to_vec(),
                rhs_name: "grad",
                rhs: grad.shape().to_vec(),
            });
        }
        if self.t == 0 {
            self.t = 1;
        }
        let lr = self.current_lr();
        let t = self.t;
        let (rule, convention, weight_decay) = (self.rule, self.convention, self.weight_decay);
        // `None`: SGD, done with `axpby` below.
        let step = step_constants(rule, convention, lr, t, weight_decay);
        let g = grad.cuda_buffer().ok_or(bioautograd::Error::UnsupportedOnDevice {
            op: "optimizer update",
            device: gd,
        })?;
        let p = param.cuda_buffer_mut()?;
        if self.device_states.len() <= index {
            self.device_states.resize_with(index + 1, || None);
        }
        let slot = &mut self.device_states[index];
        if slot.as_ref().is_none_or(|s| s.first.len() != p.len()) {
            // Moments restored from a checkpoint (`import_state`) or kept by host steps of this
            // parameter move to the device with it; otherwise they start at zero.
            let host = self.states.get_mut(index).filter(|h| h.first.len() == p.len());
            *slot = Some(match host {
                Some(h) => {
                    let st = DeviceState {
                        first: p.upload_like(&h.first, p.rows(), p.cols())?,
                        second: p.upload_like(&h.second, p.rows(), p.cols())?,
                        started: h.started,
                    };
                    *h = State::default();
                    st
                }
                None => DeviceState {
                    first: p.zeros_like()?,
                    second: p.zeros_like()?,
                    started: false,
                },
            });
        }
        let Some(st) = slot.as_mut() else {
            return Ok(());
        };
        match step {
            Some(step) => p.optimizer_step(step, g, &mut st.first, &mut st.second)?,
            None => sgd_on_device(rule, convention, lr as f32, weight_decay, p, g, st)?,
        }
        st.started = true;
        Ok(())
    }

    /// The state of the host parameters (the moments of parameters on a CUDA device are not
    /// part of it: [`Optimizer::export_state_all`] downloads them too).
    pub fn export_state(&self) -> OptimizerState {
        OptimizerState {
            t: self.t,
            slots: self
                .states
                .iter()
                .map(|s| (s.first.clone(), s.second.clone(), s.started))
                .collect(),
        }
    }

    /// The whole state to checkpoint: [`Optimizer::export_state`] with the moments of the
    /// parameters on a CUDA device downloaded into their slots (same layout). Imported with
    /// [`Optimizer::import_state`], they resume on the host, or move back to a device at the
    /// parameter's first device update there, so a checkpoint of a device run resumes on any
    /// device.
    ///
    /// # Errors
    /// Kernel errors of the downloads.
    pub fn export_state_all(&self) -> Result<OptimizerState> {
        let mut state = self.export_state();
        for (i, dev) in self.device_states.iter().enumerate() {
            if let Some(d) = dev {
                if state.slots.len() <= i {
                    state.slots.resize_with(i + 1, || (Vec::new(), Vec::new(), false));
                }
                state.slots[i] = (d.first.download()?, d.second.download()?, d.started);
            }
        }
        Ok(state)
    }

    /// Restores a state from [`Optimizer::export_state`] (of an optimiser with the same
    /// configuration).
    pub fn import_state(&mut self, state: OptimizerState) {
        self.t = state.t;
        self.device_states.clear();
        self.states = state
            .slots
            .into_iter()
            .map(|(first, second, started)| State { first, second, started })
            .collect();
    }

    /// One whole step: [`Optimizer::begin_step`], then [`Optimizer::update`] for every
    /// `(param, grad)` pair, indexed by position.
    pub fn step(&mut self, params: &mut [(&mut [f32], &[f32])]) -> Result<()> {
        self.begin_step();
        for (i, (p, g)) in params.iter_mut().enumerate() {
            self.update(i, p, g)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parameter large enough to be split over the thread pool gets exactly the values it
    /// gets when updated piece by piece below the split size (each piece its own slot), for
    /// every rule and convention, over three steps with momentum and weight decay.
    #[test]
    fn split_update_equals_piecewise_update() {
        let n = 3 * UPDATE_CHUNK + 77;
        let piece = UPDATE_CHUNK + 3;
        let configs = [
            OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
                weight_decay: 1e-3,
                decay: 0.0,
                convention: Convention::Torch,
            },
            OptimizerConfig::Adam {
                lr: 1e-3,
                beta1: None,
                beta2: None,
                eps: None,
                weight_decay: 0.0,
                decay: 1e-3,
                convention: Convention::Keras,
            },
            OptimizerConfig::RmsProp {
                lr: 1e-3,
                rho: None,
                eps: None,
                momentum: 0.5,
                weight_decay: 0.0,
                decay: 0.0,
                convention: Convention::Torch,
            },
            OptimizerConfig::keras_rmsprop(1e-4, 1e-6),
        ];
        for cfg in configs {
            let mut whole = cfg.build().unwrap();
            let mut pieces = cfg.build().unwrap();
            let mut w: Vec<f32> = (0..n).map(|i| ((i * 37) % 101) as f32 * 0.01 - 0.5).collect();
            let w0 = w.clone();
            let mut w2 = w.clone();
            for step in 0..3 {
                let g: Vec<f32> = (0..n).map(|i| ((i * 13 + step * 7) % 29) as f32 * 0.1 - 1.4).collect();
                whole.begin_step();
                whole.update(0, &mut w, &g).unwrap();
                pieces.begin_step();
                for (slot, (wp, gp)) in w2.chunks_mut(piece).zip(g.chunks(piece)).enumerate() {
                    pieces.update(slot, wp, gp).unwrap();
                }
            }
            assert!(w.iter().zip(&w2).all(|(a, b)| a.to_bits() == b.to_bits()), "{cfg:?}");
            assert!(w.iter().zip(&w0).all(|(a, b)| a != b), "{cfg:?}: every weight moved");
        }
    }

    /// A schedule's factor scales the step's rate (legacy decay on top) and leaves the state
    /// alone; bad factors are refused.
    #[test]
    fn lr_scale_multiplies_the_rate_of_the_step() {
        let mut opt = OptimizerConfig::keras_rmsprop(1e-3, 0.5).build().unwrap();
        opt.begin_step();
        opt.begin_step();
        assert_eq!(opt.current_lr(), 1e-3 / 1.5);
        opt.set_lr_scale(0.2).unwrap();
        assert_eq!(opt.lr_scale(), 0.2);
        assert!((opt.current_lr() - 1e-3 * 0.2 / 1.5).abs() < 1e-18);
        assert_eq!(opt.iterations(), 2);
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(opt.set_lr_scale(bad).is_err());
        }
        assert_eq!(opt.lr_scale(), 0.2);
    }
}
