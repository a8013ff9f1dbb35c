//! `bench-train`: training throughput (images/s) of the networks the reproductions train, each
//! masked setting beside its unmasked control, interleaved in one run (the Rust half of
//! `benches/cifar_throughput.sh` and `benches/dcgan_throughput.sh`):
//!
//! | [`BenchNet`] | model | settings |
//! |---|---|---|
//! | `SchizoCifar` | [`crate::cifar::schizo_cifar_model`] | dense (`r = 0`), `SzDense(512)` diagonal `r = 0.5` |
//! | `MouseCifar` | [`crate::cifar::mouse_cifar_model`] | dense, `MConv2D` 2d `w = 0.5` in convolutions 2–4 |
//! | `Dcgan` | [`crate::mouse_gan::generator`] + [`crate::mouse_gan::discriminator`] | standard, mouse 2d `w = 0.4` |
//!
//! A CIFAR step is one forward/backward/update of the classifier on `batch` images (Keras
//! RMSprop). A DCGAN step is upstream's `train_step` ([`crate::mouse_gan::train::gan_step`]): a
//! discriminator update on `batch` fakes + `batch` real images, then a generator update on
//! `batch` fresh fakes; its images/s counts the real images (`batch` per step), as Keras'
//! progress bar does.
//!
//! On a CUDA device (`bioautograd::Device::Cuda`, CIFAR networks only) parameters,
//! activations, gradients and the optimiser state stay on the device; each step uploads the
//! batch and reads back the loss.
//!
//! # Shapes
//! CIFAR: random images `(batch, 3, 32, 32)` in [0, 1), labels `i mod 10` → logits
//! `(batch, 10)`. DCGAN: random real images `(batch, 3, s, s)`, `s` = 64 (upstream) or 32;
//! latents `(batch, 100)`.

use std::time::Instant;

use bioautograd::{Device, Tensor};
use biolayers::layers::{Module, Sequential};
use biolayers::optim::{Optimizer, OptimizerConfig};
use biolayers::train::train_step;
use biorng::Stream;

use crate::cifar::{mouse_cifar_model, schizo_cifar_model};
use crate::error::{invalid, Result};
use crate::mouse_gan::{discriminator, generator, train::gan_step, DcganSpec, Gan};

/// The network timed by `bench-train`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchNet {
    /// The `schizo-cifar` classifier: dense vs `SzDense` diagonal `r = 0.5`.
    SchizoCifar,
    /// The `mouse-cifar` classifier: dense vs 2d `w = 0.5` convolutions.
    MouseCifar,
    /// Upstream's DCGAN at `image_size` 64 or 32: standard vs mouse 2d `w = 0.4`.
    Dcgan {
        /// Image side, 64 (upstream) or 32 (CIFAR-10 variant).
        image_size: usize,
    },
}

impl BenchNet {
    /// The settings timed: `(label, mask parameter)`, the unmasked control first.
    pub fn settings(&self) -> [(&'static str, f64); 2] {
        match self {
            BenchNet::SchizoCifar => [("dense", 0.0), ("r=0.5", 0.5)],
            BenchNet::MouseCifar => [("dense", 0.0), ("w=0.5", 0.5)],
            BenchNet::Dcgan { .. } => [("standard", 0.0), ("w=0.4", 0.4)],
        }
    }

    /// The name used on the command line and in the JSON records.
    pub fn name(&self) -> String {
        match self {
            BenchNet::SchizoCifar => "schizo-cifar".into(),
            BenchNet::MouseCifar => "mouse-cifar".into(),
            BenchNet::Dcgan { image_size } => format!("dcgan{image_size}"),
        }
    }
}

/// Settings of `bench-train`.
#[derive(Debug, Clone, Copy)]
pub struct BenchTrainConfig {
    /// The network.
    pub net: BenchNet,
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
#[derive(Debug, Clone, PartialEq)]
pub struct BenchTrainResult {
    /// The setting's label (`dense`, `r=0.5`, `w=0.5`, `standard`, `w=0.4`).
    pub setting: String,
    /// Its mask parameter (`r` or `w`; 0 for the control).
    pub value: f64,
    /// Fraction of the masked layers' weights kept (1 for the control).
    pub density: f64,
    /// Median over the repetitions of the images per second.
    pub images_per_s: f64,
    /// Loss of the last step (the discriminator's for the DCGAN): the same on every device
    /// within f32 rounding (a cheap check that a device run trains what the CPU trains).
    pub last_loss: f32,
}

/// One model under test with its optimiser.
enum Trainee {
    Classifier(Sequential, Optimizer),
    Gan(Box<GanTrainee>),
}

/// A GAN, its optimiser and the stream of its latents and label noise.
struct GanTrainee {
    gan: Gan,
    opt: Optimizer,
    rng: Stream,
}

fn build(net: BenchNet, value: f64, device: Device) -> Result<(Trainee, f64)> {
    let mut rng = Stream::seeded(1);
    match net {
        BenchNet::SchizoCifar | BenchNet::MouseCifar => {
            let (mut model, density) = if net == BenchNet::SchizoCifar {
                schizo_cifar_model(value, &mut rng)?
            } else {
                mouse_cifar_model(value, &mut rng)?
            };
            model.to_device(device)?;
            let opt = OptimizerConfig::keras_rmsprop(1e-4, 1e-6).build()?;
            Ok((Trainee::Classifier(model, opt), density))
        }
        BenchNet::Dcgan { image_size } => {
            if device != Device::Cpu {
                return Err(invalid(
                    "bench-train --net",
                    net.name(),
                    "the DCGAN step runs on the CPU only (issue 18 brings it to devices)",
                ));
            }
            let spec = DcganSpec::upstream(image_size, (value > 0.0).then_some(value));
            let (g, density) = generator(&spec, &mut rng)?;
            let d = discriminator(&spec, &mut rng, 2)?;
            let opt = crate::mouse_gan::MouseGanConfig::for_preset(crate::Preset::Paper, 1)
                .optimizer()
                .build()?;
            let gan = Gan {
                generator: g,
                discriminator: d,
            };
            let rng = Stream::seeded(3);
            Ok((Trainee::Gan(Box::new(GanTrainee { gan, opt, rng })), density))
        }
    }
}

/// Times `cfg.reps` repetitions of `cfg.steps` steps per setting of `cfg.net`.
pub fn run(cfg: &BenchTrainConfig) -> Result<Vec<BenchTrainResult>> {
    if cfg.batch == 0 || cfg.steps == 0 || cfg.reps == 0 {
        return Err(invalid("bench-train", "0", "batch, steps and reps must be >= 1"));
    }
    let side = match cfg.net {
        BenchNet::Dcgan { image_size } => image_size,
        _ => 32,
    };
    let mut rng = Stream::seeded(0);
    let n = cfg.batch * 3 * side * side;
    let x: Vec<f32> = (0..n).map(|_| rng.uniform01() as f32).collect();
    let labels: Vec<usize> = (0..cfg.batch).map(|i| i % 10).collect();
    let settings = cfg.net.settings();
    let mut trainees = Vec::new();
    for &(_, value) in &settings {
        trainees.push(build(cfg.net, value, cfg.device)?);
    }
    let shape = [cfg.batch, 3, side, side];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); settings.len()];
    let mut last_loss = vec![f32::NAN; settings.len()];
    for rep in 0..=cfg.reps {
        for (i, (trainee, _)) in trainees.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..cfg.steps {
                let xt = Tensor::new(x.clone(), &shape, cfg.device).map_err(biolayers::Error::from)?;
                last_loss[i] = match trainee {
                    Trainee::Classifier(model, opt) => {
                        train_step(model, opt, xt, |g, out| g.cross_entropy(out, &labels))?
                    }
                    Trainee::Gan(t) => gan_step(&mut t.gan, &mut t.opt, &xt, 100, &mut t.rng)?.0,
                };
            }
            if rep > 0 {
                // Repetition 0 is the warm-up.
                times[i].push(start.elapsed().as_secs_f64());
            }
        }
    }
    Ok(settings
        .iter()
        .enumerate()
        .map(|(i, &(label, value))| {
            let mut t = times[i].clone();
            t.sort_by(f64::total_cmp);
            let median = t[t.len() / 2];
            BenchTrainResult {
                setting: label.to_string(),
                value,
                density: trainees[i].1,
                images_per_s: (cfg.batch * cfg.steps) as f64 / median,
                last_loss: last_loss[i],
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_net_trains_both_settings_and_reports_the_masks_density() {
        for net in [BenchNet::SchizoCifar, BenchNet::MouseCifar] {
            let res = run(&BenchTrainConfig {
                net,
                batch: 2,
                steps: 1,
                reps: 1,
                device: Device::Cpu,
            })
            .unwrap();
            assert_eq!(res.len(), 2);
            assert_eq!(res[0].density, 1.0, "{net:?}");
            assert!(
                res[1].density < 0.8 && res[1].density > 0.2,
                "{net:?}: {}",
                res[1].density
            );
            assert!(res.iter().all(|r| r.images_per_s > 0.0 && r.last_loss.is_finite()));
        }
        assert!(run(&BenchTrainConfig {
            net: BenchNet::Dcgan { image_size: 32 },
            batch: 1,
            steps: 1,
            reps: 1,
            device: Device::Cuda(0),
        })
        .is_err());
    }
}
