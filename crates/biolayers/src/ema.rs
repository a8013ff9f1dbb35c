//! An exponential moving average (EMA) of a model's weights, as the Keras DDIM example keeps
//! its `ema_network`.
//!
//! ```text
//! after each optimiser step:  s ← d·s + (1 − d)·w     (per parameter, in f32, d = decay)
//! ```
//! The average starts as a copy of the weights. For sampling, [`Ema::swap`] exchanges the
//! model's weights with the average (call it again to swap back), so that no second model has
//! to be built. [`Ema::state`] / [`Ema::set_state`] give the average as named `f32` arrays for
//! checkpoints (`ema.<i>`, in [`Module::params`] order), so a resumed run continues the same
//! average. [`Ema::to_device`] keeps the average on a device beside the model, where the update
//! is one `axpby` per parameter.
//!
//! # Shapes
//! One shadow tensor per model parameter, of its shape.

use bioautograd::Tensor;

use crate::error::{invalid, Result};
use crate::layers::Module;

/// The moving average of a model's parameters.
#[derive(Debug, Clone)]
pub struct Ema {
    decay: f32,
    shadow: Vec<Tensor>,
}

impl Ema {
    /// Starts the average at the model's current weights.
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] unless `0 ≤ decay < 1`; tensor errors for a device model.
    pub fn new(model: &dyn Module, decay: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&decay) {
            return Err(invalid("ema_decay", decay, "must be in [0, 1)"));
        }
        let shadow = model
            .params()
            .iter()
            .map(|p| Ok(Tensor::from_vec(p.value.to_vec()?, p.value.shape())?))
            .collect::<Result<Vec<_>>>()?;
        Ok(Ema {
            decay: decay as f32,
            shadow,
        })
    }

    /// The decay `d`.
    pub fn decay(&self) -> f32 {
        self.decay
    }

    /// The averaged weights, in [`Module::params`] order.
    pub fn weights(&self) -> &[Tensor] {
        &self.shadow
    }

    fn check_model(&self, n: usize, what: &str) -> Result<()> {
        if n != self.shadow.len() {
            return Err(invalid(
                "ema",
                n,
                format!("{what}: the average holds {} parameters", self.shadow.len()),
            ));
        }
        Ok(())
    }

    /// `s ← d·s + (1 − d)·w` for every parameter.
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] when the model has another parameter count or shapes.
    pub fn update(&mut self, model: &dyn Module) -> Result<()> {
        let params = model.params();
        self.check_model(params.len(), "update with another model")?;
        let (d, e) = (self.decay, 1.0 - self.decay);
        for (s, p) in self.shadow.iter_mut().zip(params) {
            if s.shape() != p.value.shape() {
                return Err(invalid("ema", &p.name, "parameter shape changed"));
            }
            if let (true, Some(w)) = (s.is_cuda(), p.value.cuda_buffer()) {
                // On the device: s = e·w + d·s (the same two products and sum).
                bioautograd::cuda::CudaBuffer::axpby(e, w, d, s.cuda_buffer_mut()?)?;
                continue;
            }
            let w = p.value.to_vec()?;
            for (sv, wv) in s.data_mut()?.iter_mut().zip(w) {
                *sv = d * *sv + e * wv;
            }
        }
        Ok(())
    }

    /// Moves the average to `device` (beside a model moved there with
    /// [`Module::to_device`]): [`Ema::update`] then runs on the device and [`Ema::swap`]
    /// exchanges device tensors.
    ///
    /// # Errors
    /// The device errors of [`Tensor::to_device`]; on error the average stays where it was.
    pub fn to_device(&mut self, device: bioautograd::Device) -> Result<()> {
        let moved = self
            .shadow
            .iter()
            .map(|t| t.to_device(device))
            .collect::<bioautograd::Result<Vec<_>>>()?;
        self.shadow = moved;
        Ok(())
    }

    /// Exchanges the model's weights with the average (twice restores both).
    ///
    /// # Errors
    /// As [`Ema::update`].
    pub fn swap(&mut self, model: &mut dyn Module) -> Result<()> {
        let params = model.params_mut();
        self.check_model(params.len(), "swap with another model")?;
        for (s, p) in self.shadow.iter().zip(&params) {
            if s.shape() != p.value.shape() {
                return Err(invalid("ema", &p.name, "parameter shape changed"));
            }
        }
        for (s, p) in self.shadow.iter_mut().zip(params) {
            std::mem::swap(s, &mut p.value);
        }
        Ok(())
    }

    /// The average as `("ema.<i>", values)` for a checkpoint.
    ///
    /// # Errors
    /// Tensor errors (device tensors are copied to the host).
    pub fn state(&self) -> Result<Vec<(String, Vec<f32>)>> {
        self.shadow
            .iter()
            .enumerate()
            .map(|(i, t)| Ok((format!("ema.{i}"), t.to_vec()?)))
            .collect()
    }

    /// Restores [`Ema::state`]; validates every name and length before changing anything.
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] naming the first array that does not fit.
    pub fn set_state(&mut self, state: &[(String, Vec<f32>)]) -> Result<()> {
        self.check_model(state.len(), "restore")?;
        for (i, ((name, values), s)) in state.iter().zip(&self.shadow).enumerate() {
            if *name != format!("ema.{i}") || values.len() != s.numel() {
                return Err(invalid(
                    "ema",
                    name,
                    format!("expected ema.{i} with {} values, got {}", s.numel(), values.len()),
                ));
            }
        }
        for ((_, values), s) in state.iter().zip(self.shadow.iter_mut()) {
            *s = Tensor::from_vec(values.clone(), s.shape())?;
        }
        Ok(())
    }
}
