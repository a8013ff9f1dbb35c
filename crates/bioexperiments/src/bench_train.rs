//! `bench-train`: training throughput (images/s) of the `schizo-cifar` network
//! ([`crate::cifar::schizo_cifar_model`], the model the experiment trains) at `r = 0` (dense)
//! and `r = 0.5`, the Rust half of `benches/cifar_throughput.sh`.
//!
//! On a CUDA device (`bioautograd::Device::Cuda`) parameters, activations, gradients and the
//! optimiser state stay on the device; each step uploads the batch and reads back the loss.
//!
//! # Shapes
//! Random images `(batch, 3, 32, 32)` in [0, 1), labels `i mod 10` → logits `(batch, 10)`.

use std::time::Instant;

use bioautograd::{Device, Tensor};
use biolayers::layers::Module;
use biolayers::optim::OptimizerConfig;
use biolayers::train::train_step;
use biorng::Stream;

use crate::cifar::schizo_cifar_model;
use crate::error::{invalid, Result};

/// The `param_reduction` settings timed.
pub const SETTINGS: [f64; 2] = [0.0, 0.5];

/// Settings of `bench-train`.
#[derive(Debug, Clone, Copy)]
pub struct BenchTrainConfig {
    /// Batch size.
    pub batch: usize,
    /// Timed training steps per repetition.
    pub steps: usize,
    /// Repetitions (after one warm-up); the settings are interleaved per repetition.
    pub reps: usize,
    /// Where to train (a device must be available: `Device::check_available`).
    pub device: Device,
}

/// One setting's measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchTrainResult {
    /// `param_reduction` of the `SzDense(512)` layer.
    pub r: f64,
    /// Median over the repetitions of the images per second.
    pub images_per_s: f64,
    /// Loss of the last step: the same on every device within f32 rounding (a cheap check that
    /// a device run trains what the CPU trains).
    pub last_loss: f32,
}

/// Times `cfg.reps` repetitions of `cfg.steps` steps per setting of [`SETTINGS`].
pub fn run(cfg: &BenchTrainConfig) -> Result<Vec<BenchTrainResult>> {
    if cfg.batch == 0 || cfg.steps == 0 || cfg.reps == 0 {
        return Err(invalid("bench-train", "0", "batch, steps and reps must be >= 1"));
    }
    let mut rng = Stream::seeded(0);
    let n = cfg.batch * 3 * 32 * 32;
    let x: Vec<f32> = (0..n).map(|_| rng.uniform01() as f32).collect();
    let labels: Vec<usize> = (0..cfg.batch).map(|i| i % 10).collect();
    let mut models = Vec::new();
    for &r in &SETTINGS {
        let (mut model, _) = schizo_cifar_model(r, &mut Stream::seeded(1))?;
        model.to_device(cfg.device)?;
        let opt = OptimizerConfig::keras_rmsprop(1e-4, 1e-6).build()?;
        models.push((model, opt));
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); SETTINGS.len()];
    let mut last_loss = vec![f32::NAN; SETTINGS.len()];
    for rep in 0..=cfg.reps {
        for (i, (model, opt)) in models.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..cfg.steps {
                let xt = Tensor::new(x.clone(), &[cfg.batch, 3, 32, 32], cfg.device).map_err(biolayers::Error::from)?;
                last_loss[i] = train_step(model, opt, xt, |g, out| g.cross_entropy(out, &labels))?;
            }
            if rep > 0 {
                // Repetition 0 is the warm-up.
                times[i].push(start.elapsed().as_secs_f64());
            }
        }
    }
    Ok(SETTINGS
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            let mut t = times[i].clone();
            t.sort_by(f64::total_cmp);
            let median = t[t.len() / 2];
            BenchTrainResult {
                r,
                images_per_s: (cfg.batch * cfg.steps) as f64 / median,
                last_loss: last_loss[i],
            }
        })
        .collect())
}
