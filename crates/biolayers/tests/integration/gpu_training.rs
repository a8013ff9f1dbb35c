//! Training on every device: a few steps of a tiny schizo-cifar-like CNN (masked conv + relu +
//! max-pool + dropout + channels-last flatten + `SzDense` + softmax cross-entropy, Keras
//! RMSprop) and of a tiny bio-RNN (`ElmanRnn` with a topology, PyTorch Adam, MSE) run on the
//! CPU and, when this build has the `cuda` feature and the machine a usable GPU, on CUDA
//! device 0, from the same initial weights; losses and final parameters must agree (exact f32
//! products on the GPU: relative error below 1e-4 after the steps).
//!
//! Both also run on the host emulator of the device backend (`Device::Cuda(EMULATOR)`: every
//! device path of the tape and the device optimiser step, with the kernels replaced by their
//! CPU definitions), on any machine.
//!
//! Without a device each test prints `SKIPPED cuda:0 ...` straight to the terminal's stderr and
//! still checks its CPU run; `BIOKERNELS_REQUIRE_CUDA=1` turns a missing device into a failure.

use bioautograd::{Device, Pool2d, Tensor};
use biolayers::layers::{
    Activation, Conv2dConfig, DenseConfig, Dropout, ElmanRnn, FlattenChannelsLast, MaxPool2d, Module, PaddingConfig,
    RnnNonlinearity, Sequential,
};
use biolayers::optim::OptimizerConfig;
use biolayers::train::train_step;
use biomask::MaskSpec;
use biorng::Stream;

/// The emulator and, when usable, CUDA device 0 (`bioautograd::cuda::devices_under_test`).
fn devices(test: &str) -> Vec<Device> {
    bioautograd::cuda::devices_under_test(test).unwrap_or_else(|e| panic!("{e}"))
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

fn params_host(model: &dyn Module) -> Vec<Vec<f32>> {
    model.params().iter().map(|p| p.value.to_vec().unwrap()).collect()
}

/// conv(3→8, same) relu conv(8→8, valid, band mask) relu pool dropout flatten-channels-last
/// SzDense(→16, diagonal 0.5) relu dense(→4).
fn tiny_cnn() -> Sequential {
    let mut rng = Stream::seeded(3);
    let c1 = Conv2dConfig::masked(3, 8, (3, 3), MaskSpec::Full)
        .with_padding(PaddingConfig::Same)
        .init(&mut rng)
        .unwrap();
    let c2 = Conv2dConfig::masked(8, 8, (3, 3), MaskSpec::diagonal(0.5))
        .with_padding(PaddingConfig::Valid)
        .init(&mut rng)
        .unwrap();
    let dense = DenseConfig::sz(8 * 3 * 3, 16, MaskSpec::diagonal(0.5))
        .init(&mut rng)
        .unwrap();
    Sequential::new()
        .push(c1)
        .push(Activation::Relu)
        .push(c2)
        .push(Activation::Relu)
        .push(MaxPool2d(Pool2d::new(2)))
        .push(Dropout::new(0.25, 7).unwrap())
        .push(FlattenChannelsLast)
        .push(dense)
        .push(Activation::Relu)
        .push(DenseConfig::new(16, 4).init(&mut rng).unwrap())
}

fn train_cnn(device: Device, steps: usize) -> (Vec<f32>, Vec<Vec<f32>>) {
    let mut model = tiny_cnn();
    model.to_device(device).unwrap();
    let mut opt = OptimizerConfig::keras_rmsprop(1e-3, 1e-6).build().unwrap();
    let mut rng = Stream::seeded(11);
    let (b, c, hw) = (6, 3, 8);
    let x: Vec<f32> = (0..b * c * hw * hw).map(|_| rng.uniform01() as f32).collect();
    let labels: Vec<usize> = (0..b).map(|i| i % 4).collect();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let xt = Tensor::new(x.clone(), &[b, c, hw, hw], device).unwrap();
        losses.push(train_step(&mut model, &mut opt, xt, |g, out| g.cross_entropy(out, &labels)).unwrap());
    }
    assert!(model.params().iter().all(|p| p.value.device() == device));
    (losses, params_host(&model))
}

#[test]
fn cnn_trains_the_same_on_every_device() {
    let (cpu_losses, cpu_params) = train_cnn(Device::Cpu, 4);
    assert!(cpu_losses.iter().all(|l| l.is_finite()));
    assert!(cpu_losses[3] < cpu_losses[0], "{cpu_losses:?}");
    for dev in devices("cnn_trains_the_same_on_every_device") {
        let (losses, params) = train_cnn(dev, 4);
        for (a, b) in losses.iter().zip(&cpu_losses) {
            assert!(
                ((a - b) / b).abs() < 1e-4,
                "{dev:?}: losses {losses:?} vs cpu {cpu_losses:?}"
            );
        }
        for (k, (a, b)) in params.iter().zip(&cpu_params).enumerate() {
            let e = rel_err(a, b);
            assert!(e < 1e-4, "{dev:?}: parameter {k}: rel err {e}");
        }
    }
}

fn train_rnn(device: Device, steps: usize) -> (Vec<f32>, Vec<Vec<f32>>) {
    let h = 12;
    let topo: Vec<bool> = (0..h * h).map(|k| (k * 7 + k / h) % 3 != 0 && k / h != k % h).collect();
    let mut rnn = ElmanRnn::new(2, h, 1, &topo, RnnNonlinearity::Tanh, &mut Stream::seeded(0)).unwrap();
    rnn.to_device(device).unwrap();
    let (b, t) = (8, 6);
    let x: Vec<f32> = (0..b * t * 2).map(|i| ((i * 37 % 11) as f32 / 11.0) - 0.3).collect();
    let y: Vec<f32> = (0..b * t).map(|i| ((i * 5 % 7) as f32 / 7.0) - 0.5).collect();
    let mut opt = OptimizerConfig::torch_adam(0.01).build().unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let xt = Tensor::new(x.clone(), &[b, t, 2], device).unwrap();
        let yt = Tensor::new(y.clone(), &[b * t, 1], device).unwrap();
        losses.push(
            train_step(&mut rnn, &mut opt, xt, |g, out| {
                let target = g.input(yt);
                g.mse(out, &target)
            })
            .unwrap(),
        );
    }
    // The parameters stayed on the device (the update ran there).
    assert!(rnn.params().iter().all(|p| p.value.device() == device));
    let params = params_host(&rnn);
    // The topology survives training on every device.
    assert!(params[2].iter().zip(&topo).all(|(w, c)| *c || *w == 0.0));
    (losses, params)
}

#[test]
fn rnn_trains_the_same_on_every_device() {
    let (cpu_losses, cpu_params) = train_rnn(Device::Cpu, 5);
    assert!(cpu_losses[4] < cpu_losses[0], "{cpu_losses:?}");
    for dev in devices("rnn_trains_the_same_on_every_device") {
        let (losses, params) = train_rnn(dev, 5);
        for (a, b) in losses.iter().zip(&cpu_losses) {
            assert!(
                ((a - b) / b).abs() < 1e-4,
                "{dev:?}: losses {losses:?} vs cpu {cpu_losses:?}"
            );
        }
        for (k, (a, b)) in params.iter().zip(&cpu_params).enumerate() {
            let e = rel_err(a, b);
            assert!(e < 1e-4, "{dev:?}: parameter {k}: rel err {e}");
        }
    }
}

#[test]
fn moving_a_model_without_a_device_is_a_typed_error() {
    let mut model = tiny_cnn();
    match model.to_device(Device::Cuda(0)) {
        Ok(()) => assert!(model.params().iter().all(|p| p.value.device() == Device::Cuda(0))),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                matches!(
                    e,
                    biolayers::Error::Autograd(
                        bioautograd::Error::CudaUnavailable | bioautograd::Error::NoCudaDevice { .. }
                    )
                ),
                "{msg}"
            );
            // Nothing moved: the first parameter already failed.
            assert!(model.params().iter().all(|p| p.value.device() == Device::Cpu));
        }
    }
    // `update_tensor` on host tensors is the host update (here plain SGD: w -= 0.1·g).
    let mut opt = OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.0,
        decay: 0.0,
        convention: biolayers::optim::Convention::Keras,
    }
    .build()
    .unwrap();
    let mut p = Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap();
    let g = Tensor::from_vec(vec![0.5, 0.5], &[2]).unwrap();
    opt.update_tensor(0, &mut p, &g).unwrap();
    assert_eq!(p.to_vec().unwrap(), vec![0.95, 1.95]);
}

/// Every optimiser, in both conventions (momentum, Nesterov, weight decay, Keras decay
/// included), gives the host update's parameters on each device over a few steps.
#[test]
fn device_optimizer_steps_match_the_host_update() {
    use biolayers::optim::Convention::{Keras, Torch};
    let configs = [
        OptimizerConfig::Adam {
            lr: 0.01,
            beta1: None,
            beta2: None,
            eps: None,
            weight_decay: 0.0,
            decay: 1e-3,
            convention: Keras,
        },
        OptimizerConfig::Adam {
            lr: 0.01,
            beta1: Some(0.8),
            beta2: Some(0.99),
            eps: None,
            weight_decay: 0.05,
            decay: 0.0,
            convention: Torch,
        },
        OptimizerConfig::RmsProp {
            lr: 0.01,
            rho: None,
            eps: None,
            momentum: 0.5,
            weight_decay: 0.0,
            decay: 1e-3,
            convention: Keras,
        },
        OptimizerConfig::RmsProp {
            lr: 0.01,
            rho: None,
            eps: None,
            momentum: 0.9,
            weight_decay: 0.01,
            decay: 0.0,
            convention: Torch,
        },
        OptimizerConfig::keras_rmsprop(1e-3, 1e-6),
        OptimizerConfig::torch_adam(1e-3),
        // SGD (axpby on the device): plain, momentum, Nesterov, both conventions, weight decay.
        OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.01,
            decay: 0.0,
            convention: Torch,
        },
        OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            decay: 0.0,
            convention: Keras,
        },
        OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.8,
            nesterov: true,
            weight_decay: 0.0,
            decay: 1e-3,
            convention: Keras,
        },
        OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.01,
            decay: 0.0,
            convention: Torch,
        },
        OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.7,
            nesterov: true,
            weight_decay: 0.0,
            decay: 0.0,
            convention: Torch,
        },
    ];
    let w0: Vec<f32> = (0..37).map(|i| ((i * 13 % 17) as f32 - 8.0) / 9.0).collect();
    let grads: Vec<Vec<f32>> = (0..4)
        .map(|s| (0..37).map(|i| (((i + 5 * s) * 7 % 11) as f32 - 5.0) / 6.0).collect())
        .collect();
    for cfg in &configs {
        let mut host_opt = cfg.build().unwrap();
        let mut host_w = w0.clone();
        for g in &grads {
            host_opt.begin_step();
            host_opt.update(0, &mut host_w, g).unwrap();
        }
        for dev in devices("device_optimizer_steps_match_the_host_update") {
            let mut opt = cfg.build().unwrap();
            let mut w = Tensor::new(w0.clone(), &[37], dev).unwrap();
            for g in &grads {
                opt.begin_step();
                let gt = Tensor::new(g.clone(), &[37], dev).unwrap();
                opt.update_tensor(0, &mut w, &gt).unwrap();
            }
            let got = w.to_vec().unwrap();
            let e = rel_err(&got, &host_w);
            assert!(e < 1e-6, "{cfg:?} on {dev:?}: rel err {e}");
        }
    }
}

/// A frozen recurrent matrix stays exactly as it was on every device.
#[test]
fn frozen_recurrent_weights_stay_on_every_device() {
    for dev in devices("frozen_recurrent_weights_stay_on_every_device") {
        let h = 6;
        let topo: Vec<bool> = (0..h * h).map(|k| k % 4 != 0).collect();
        let mut rnn = ElmanRnn::new(2, h, 1, &topo, RnnNonlinearity::Relu, &mut Stream::seeded(4)).unwrap();
        rnn.set_freeze_recurrent(true);
        let before = rnn.recurrent().to_vec().unwrap();
        rnn.to_device(dev).unwrap();
        let mut opt = OptimizerConfig::torch_adam(0.05).build().unwrap();
        let x: Vec<f32> = (0..3 * 4 * 2).map(|i| (i % 5) as f32 / 5.0).collect();
        let first_w_ih = rnn.params()[0].value.to_vec().unwrap();
        for _ in 0..3 {
            let xt = Tensor::new(x.clone(), &[3, 4, 2], dev).unwrap();
            train_step(&mut rnn, &mut opt, xt, |g, out| g.mean(out)).unwrap();
        }
        assert_eq!(rnn.recurrent().to_vec().unwrap(), before, "{dev:?}");
        assert_ne!(
            rnn.params()[0].value.to_vec().unwrap(),
            first_w_ih,
            "{dev:?}: W_ih must train"
        );
    }
}
