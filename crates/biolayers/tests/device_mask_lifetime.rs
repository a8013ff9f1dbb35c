//! A model's device masks live as long as the model: building, moving to a device, training
//! one step and dropping 1,000 masked models leaves the device's live-buffer count where it
//! was. (Before, the device tile lists of every mask were cached by the mask's address and
//! never freed, so a sweep kept every model's masks on the GPU.)
//!
//! This file holds one test so that no other test of the process allocates on the emulator
//! while it counts.

use bioautograd::cuda::{backend, EMULATOR};
use bioautograd::{Device, Tensor};
use biolayers::layers::{Activation, Conv2dConfig, DenseConfig, Flatten, Module, PaddingConfig, Sequential};
use biolayers::optim::OptimizerConfig;
use biolayers::train::train_step;
use biomask::MaskSpec;
use biorng::Stream;

/// `MConv2D(2→4, band mask)` relu flatten `SzDense(→8, diagonal 0.5)` relu dense(→3): a new
/// conv mask and a new dense mask per model.
fn masked_model(seed: u64) -> Sequential {
    let mut rng = Stream::seeded(seed);
    let conv = Conv2dConfig::masked(2, 4, (3, 3), MaskSpec::diagonal(0.5))
        .with_padding(PaddingConfig::Same)
        .init(&mut rng)
        .unwrap();
    let dense = DenseConfig::sz(4 * 5 * 5, 8, MaskSpec::diagonal(0.5))
        .init(&mut rng)
        .unwrap();
    Sequential::new()
        .push(conv)
        .push(Activation::Relu)
        .push(Flatten)
        .push(dense)
        .push(Activation::Relu)
        .push(DenseConfig::new(8, 3).init(&mut rng).unwrap())
}

/// Builds a model on `device`, runs one forward + backward + RMSprop step, and returns the
/// live-buffer count while the model is still alive.
fn one_model(device: Device, seed: u64) -> usize {
    let mut model = masked_model(seed);
    model.to_device(device).unwrap();
    let mut opt = OptimizerConfig::keras_rmsprop(1e-3, 0.0).build().unwrap();
    let x: Vec<f32> = (0..4 * 2 * 5 * 5).map(|i| (i % 7) as f32 / 7.0 - 0.4).collect();
    let xt = Tensor::new(x, &[4, 2, 5, 5], device).unwrap();
    let loss = train_step(&mut model, &mut opt, xt, |g, out| g.cross_entropy(out, &[0, 1, 2, 1])).unwrap();
    assert!(loss.is_finite());
    backend(EMULATOR).unwrap().live_buffers()
}

#[test]
fn dropped_models_free_their_device_masks() {
    let device = Device::Cuda(EMULATOR);
    let live = || backend(EMULATOR).unwrap().live_buffers();
    // One model first: the per-shape constants (the unmasked readout's full tile map) are
    // cached per device and dims, once.
    one_model(device, 0);
    let before = live();
    let mut during = 0;
    for seed in 1..=1000 {
        during = during.max(one_model(device, seed));
    }
    // The count did move while a model was alive (its parameters, state and masks).
    assert!(
        during > before,
        "live buffers with a model: {during}, without: {before}"
    );
    assert_eq!(live(), before, "device buffers left behind by 1,000 dropped models");
}
