//! BioNet models and the ConvLSTM: shapes, frozen banks inside models, the one-step formula,
//! and an f64 finite-difference check of the unrolled recurrence.

use bioautograd::{Conv2dOptions, Graph, Padding, Tensor, Var};
use biolayers::bionet::{Base, BioNetConfig, FrontEnd, Recurrent};
use biolayers::filters::{DogParams, FilterBankSpec, GaborParams};
use biolayers::init::Initializer;
use biolayers::layers::{
    conv_lstm_forward, BottleneckConfig, Conv2dConfig, ConvLstmConfig, Module, Residual, Sequential,
};
use biolayers::optim::OptimizerConfig;
use biolayers::train::{load_params, predict, save_params, train_step};
use biorng::Stream;

fn gabor9() -> FilterBankSpec {
    FilterBankSpec::Gabor(GaborParams::paper()).scaled(1.0 / 7.0).unwrap()
}

fn images(n: usize, s: usize, seed: u64) -> Tensor {
    let mut rng = Stream::seeded(seed);
    Tensor::from_vec(
        (0..n * s * s).map(|_| rng.standard_normal() as f32).collect(),
        &[n, 1, s, s],
    )
    .unwrap()
}

fn small(base: Base, front: FrontEnd, size: usize) -> BioNetConfig {
    BioNetConfig {
        width_scale: 1.0 / 16.0,
        ..BioNetConfig::new(base, front, size)
    }
}

#[test]
fn every_variant_maps_images_to_logits() {
    let combined = FrontEnd::Combined {
        dog: FilterBankSpec::Dog(DogParams::trim()).scaled(1.0 / 7.0).unwrap(),
        gabor: FilterBankSpec::Gabor(GaborParams::trim()).scaled(1.0 / 7.0).unwrap(),
    };
    let fronts = [FrontEnd::Standard, FrontEnd::Bank(gabor9()), combined];
    let recurrents = [
        Recurrent::None,
        Recurrent::ConvLstm { steps: 2, kernel: 3 },
        Recurrent::UpstreamOneStep,
    ];
    for base in [Base::AllCnn, Base::Vgg16] {
        for front in &fronts {
            for recurrent in recurrents {
                for bottleneck in [None, Some(2)] {
                    let cfg = BioNetConfig {
                        recurrent,
                        bottleneck,
                        ..small(base, front.clone(), 32)
                    };
                    let mut m = cfg.build(&mut Stream::seeded(1)).unwrap();
                    let y = predict(&mut m, images(2, 32, 2)).unwrap();
                    assert_eq!(y.shape(), &[2, 10], "{cfg:?}");
                    assert!(y.to_vec().unwrap().iter().all(|v| v.is_finite()));
                }
            }
        }
    }
}

#[test]
fn bank_models_have_no_first_layer_parameters() {
    let standard = small(Base::AllCnn, FrontEnd::Standard, 32)
        .build(&mut Stream::seeded(1))
        .unwrap();
    let gabor = small(Base::AllCnn, FrontEnd::Bank(gabor9()), 32)
        .build(&mut Stream::seeded(1))
        .unwrap();
    // Standard: conv1 (1 -> 6) is learned; Gabor: the bank has no parameters, and conv2 sees 24
    // channels instead of 6.
    assert_eq!(standard.layers()[0].name(), "conv2d");
    assert_eq!(standard.layers()[0].params().len(), 2);
    assert_eq!(gabor.layers()[0].name(), "gabor_conv");
    assert!(gabor.layers()[0].params().is_empty());
    assert_eq!(gabor.layers()[1].params()[0].value.shape(), &[3, 3, 24, 6]);
    // Behind a bottleneck the bank stays frozen unless upstream's accident is asked for.
    let rib = BioNetConfig {
        bottleneck: Some(2),
        ..small(Base::AllCnn, FrontEnd::Bank(gabor9()), 32)
    };
    let m = rib.build(&mut Stream::seeded(1)).unwrap();
    assert_eq!(m.layers()[6].name(), "gabor_conv");
    assert!(m.layers()[6].params().is_empty());
    let quirk = BioNetConfig {
        bank_trainable: true,
        ..rib
    };
    let m = quirk.build(&mut Stream::seeded(1)).unwrap();
    assert_eq!(m.layers()[6].params()[0].value.shape(), &[9, 9, 2, 24]);
}

#[test]
fn training_step_leaves_the_bank_and_runs() {
    let cfg = BioNetConfig {
        recurrent: Recurrent::ConvLstm { steps: 2, kernel: 3 },
        ..small(Base::AllCnn, FrontEnd::Bank(gabor9()), 16)
    };
    let mut m = cfg.build(&mut Stream::seeded(5)).unwrap();
    let mut opt = OptimizerConfig::keras_rmsprop(1e-3, 1e-6).build().unwrap();
    let before: Vec<Vec<f32>> = m.params().iter().map(|p| p.value.to_vec().unwrap()).collect();
    let labels = vec![1usize, 7];
    let loss = train_step(&mut m, &mut opt, images(2, 16, 3), |g, y| g.cross_entropy(y, &labels)).unwrap();
    assert!(loss.is_finite());
    // The ConvLSTM (first parameters) learned.
    assert_ne!(m.params()[0].value.to_vec().unwrap(), before[0]);
}

#[test]
fn bad_configs_are_errors() {
    let mut rng = Stream::seeded(0);
    assert!(small(Base::Vgg16, FrontEnd::Standard, 40).build(&mut rng).is_err());
    let zero = BioNetConfig {
        bottleneck: Some(0),
        ..small(Base::AllCnn, FrontEnd::Standard, 32)
    };
    assert!(zero.build(&mut rng).is_err());
    let steps = BioNetConfig {
        recurrent: Recurrent::ConvLstm { steps: 0, kernel: 3 },
        ..small(Base::AllCnn, FrontEnd::Standard, 32)
    };
    assert!(steps.build(&mut rng).is_err());
    assert!("resnet18".parse::<Base>().is_err());
    assert_eq!("resnet50".parse::<Base>().unwrap(), Base::Resnet50);
    assert_eq!("ResNet-50".parse::<Base>().unwrap(), Base::Resnet50);
    assert_eq!(Base::Resnet50.label(), "ResNet50"); // model names: Gabor_ResNet50
    assert_eq!("vgg16".parse::<Base>().unwrap(), Base::Vgg16);
    assert!(ConvLstmConfig::new(1, 2, (3, 3), 0).init(&mut rng).is_err());
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn one_step_is_the_gated_feed_forward_map_and_forget_bias_is_one() {
    // 1x1 kernels on a 1x1 image: every gate is a scalar affine map of the input.
    let mut rng = Stream::seeded(11);
    let mut cell = ConvLstmConfig::new(1, 1, (1, 1), 1).init(&mut rng).unwrap();
    let b = cell.bias().to_vec().unwrap();
    assert_eq!(b, vec![0.0, 1.0, 0.0, 0.0]);
    let w: Vec<f64> = cell.kernel().to_vec().unwrap().into_iter().map(f64::from).collect();
    let x = 0.7f64;
    let pre: Vec<f64> = (0..4).map(|k| w[k] * x + f64::from(b[k])).collect();
    let want = sigmoid(pre[3]) * (sigmoid(pre[0]) * pre[2].tanh()).tanh();
    let y = predict(&mut cell, Tensor::from_vec(vec![x as f32], &[1, 1, 1, 1]).unwrap()).unwrap();
    assert!((f64::from(y.to_vec().unwrap()[0]) - want).abs() < 1e-6);

    // Two steps add the recurrent term: c2 = f c1 + i g with h1 fed back.
    let mut two = ConvLstmConfig::new(1, 1, (1, 1), 2)
        .init(&mut Stream::seeded(11))
        .unwrap();
    let u: Vec<f64> = two
        .recurrent_kernel()
        .to_vec()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    let c1 = sigmoid(pre[0]) * pre[2].tanh();
    let h1 = sigmoid(pre[3]) * c1.tanh();
    let p2: Vec<f64> = (0..4).map(|k| pre[k] + u[k] * h1).collect();
    let c2 = sigmoid(p2[1]) * c1 + sigmoid(p2[0]) * p2[2].tanh();
    let h2 = sigmoid(p2[3]) * c2.tanh();
    let y = predict(&mut two, Tensor::from_vec(vec![x as f32], &[1, 1, 1, 1]).unwrap()).unwrap();
    assert!((f64::from(y.to_vec().unwrap()[0]) - h2).abs() < 1e-6);
}

#[test]
fn conv_lstm_gradients_match_finite_differences_in_f64() {
    // n=1, cin=2, 4x4 image, F=2, 3x3 kernels, T=3, same padding.
    let mut rng = Stream::seeded(21);
    let mut randn = |shape: &[usize], s: f64| {
        let n: usize = shape.iter().product();
        Tensor::<f64>::from_vec((0..n).map(|_| rng.standard_normal() * s).collect(), shape).unwrap()
    };
    let inputs = vec![
        randn(&[1, 2, 4, 4], 1.0),
        randn(&[3, 3, 2, 8], 0.3),
        randn(&[3, 3, 2, 8], 0.3),
        randn(&[8], 0.3),
    ];
    let u = randn(&[1, 2, 4, 4], 1.0);
    let opts = Conv2dOptions::default().with_padding(Padding::Same);
    let build = |g: &Graph<f64>, v: &[Var]| conv_lstm_forward(g, &v[0], &v[1], &v[2], &v[3], &opts, 3);
    let objective = |inputs: &[Tensor<f64>]| -> f64 {
        let g = Graph::<f64>::new();
        let v: Vec<Var> = inputs.iter().map(|t| g.param(t.clone())).collect();
        let y = build(&g, &v).unwrap();
        let y = g.value(&y).unwrap();
        y.as_slice()
            .unwrap()
            .iter()
            .zip(u.as_slice().unwrap())
            .map(|(a, b)| a * b)
            .sum()
    };
    let g = Graph::<f64>::new();
    let v: Vec<Var> = inputs.iter().map(|t| g.param(t.clone())).collect();
    let y = build(&g, &v).unwrap();
    let grads = g.backward_with(&y, u.clone()).unwrap();
    let h = 1e-5;
    for (k, var) in v.iter().enumerate() {
        let analytic = grads.slice(var).unwrap().to_vec();
        for (i, &want) in analytic.iter().enumerate() {
            let mut plus = inputs.clone();
            let mut minus = inputs.clone();
            plus[k].data_mut().unwrap()[i] += h;
            minus[k].data_mut().unwrap()[i] -= h;
            let fd = (objective(&plus) - objective(&minus)) / (2.0 * h);
            assert!(
                (fd - want).abs() <= 1e-6 * (1.0 + fd.abs()),
                "input {k}[{i}]: analytic {want} vs finite difference {fd}"
            );
        }
    }
}

fn combined9() -> FrontEnd {
    FrontEnd::Combined {
        dog: FilterBankSpec::Dog(DogParams::trim()).scaled(1.0 / 7.0).unwrap(),
        gabor: FilterBankSpec::Gabor(GaborParams::trim()).scaled(1.0 / 7.0).unwrap(),
    }
}

#[test]
fn resnet50_maps_every_front_end_to_logits() {
    let fronts = [
        FrontEnd::Standard,
        FrontEnd::Bank(gabor9()),
        FrontEnd::Bank(FilterBankSpec::Dog(DogParams::paper()).scaled(1.0 / 7.0).unwrap()),
        combined9(),
    ];
    for front in fronts {
        let mut m = small(Base::Resnet50, front.clone(), 32)
            .build(&mut Stream::seeded(1))
            .unwrap();
        // Stem (conv or bank(s)), BN, ReLU, pool, 16 bottleneck blocks, GAP, dense.
        let blocks = m.layers().iter().filter(|l| l.name() == "residual").count();
        assert_eq!(blocks, 3 + 4 + 6 + 3, "{front:?}");
        let y = predict(&mut m, images(2, 32, 2)).unwrap();
        assert_eq!(y.shape(), &[2, 10], "{front:?}");
        assert!(y.to_vec().unwrap().iter().all(|v| v.is_finite()));
    }
    // The options in front of the base combine with it too.
    let cfg = BioNetConfig {
        bottleneck: Some(2),
        recurrent: Recurrent::ConvLstm { steps: 2, kernel: 3 },
        ..small(Base::Resnet50, FrontEnd::Bank(gabor9()), 16)
    };
    let y = predict(&mut cfg.build(&mut Stream::seeded(2)).unwrap(), images(1, 16, 4)).unwrap();
    assert_eq!(y.shape(), &[1, 10]);
    // The bio stem is valid-padded after a pad of 3: a bank wider than the input + 6 is an error.
    let wide = FilterBankSpec::Gabor(GaborParams::paper());
    assert!(small(Base::Resnet50, FrontEnd::Bank(wide), 32)
        .build(&mut Stream::seeded(1))
        .is_err());
}

/// Trainable parameters plus batch-norm running statistics: what Keras' `count_params()`
/// counts (its BN moving mean/variance are the "non-trainable params").
fn keras_count(m: &Sequential) -> (usize, usize) {
    let trainable: usize = m.params().iter().map(|p| p.value.numel()).sum();
    let buffers: usize = m.buffers().iter().map(|(_, v)| v.len()).sum();
    (trainable, buffers)
}

#[test]
fn resnet50_parameter_count_is_keras_resnet50() {
    // Keras `ResNet50(weights=None)` on RGB with the 1000-way top: "Total params: 25,636,712,
    // Trainable params: 25,583,592, Non-trainable params: 53,120" (23,587,712 without the top:
    // 25,636,712 - (2048 * 1000 + 1000)).
    let rgb = BioNetConfig {
        in_channels: 3,
        classes: 1000,
        ..BioNetConfig::new(Base::Resnet50, FrontEnd::Standard, 224)
    };
    let m = rgb.build(&mut Stream::seeded(0)).unwrap();
    let (trainable, buffers) = keras_count(&m);
    assert_eq!((trainable, buffers), (25_583_592, 53_120));
    assert_eq!(trainable + buffers - (2048 * 1000 + 1000), 23_587_712);

    // BioNet's setting: greyscale input (the stem kernel loses 7*7*2*64 = 6,272 weights) and a
    // 10-way head (2048*10 + 10 = 20,490 instead of 2,049,000):
    // 25,636,712 - 6,272 - 2,049,000 + 20,490 = 23,601,930.
    let grey = BioNetConfig::new(Base::Resnet50, FrontEnd::Standard, 224);
    let (t, b) = keras_count(&grey.build(&mut Stream::seeded(0)).unwrap());
    assert_eq!(t + b, 23_601_930);
    assert_eq!(b, 53_120);

    // Gabor bio stem (24 frozen maps, no learned weights): the stem conv goes (7*7*1*64 + 64 =
    // 3,200), the stem BN has 24 channels instead of 64 (4*40 = 160 fewer), and the first
    // block's 1x1 conv (64 -> 64) and projection (64 -> 256) see 24 inputs (40*64 + 40*256 =
    // 12,800 fewer): 23,601,930 - 3,200 - 160 - 12,800 = 23,585,770.
    let gabor = BioNetConfig::new(
        Base::Resnet50,
        FrontEnd::Bank(FilterBankSpec::Gabor(GaborParams::paper())),
        224,
    );
    let m = gabor.build(&mut Stream::seeded(0)).unwrap();
    assert_eq!(m.layers()[0].name(), "gabor_conv");
    assert!(m.layers()[0].params().is_empty());
    let (t, b) = keras_count(&m);
    assert_eq!(t + b, 23_585_770);
    assert_eq!(b, 53_120 - 2 * 40);
}

#[test]
fn residual_adds_the_identity_and_its_gradient() {
    // main(x) = 0 (zero 1x1 conv): the block is the identity, and d(sum y)/dx = 1 everywhere
    // comes through the shortcut alone.
    let zero = Conv2dConfig::new(2, 2, (1, 1))
        .with_initializer(Initializer::Zeros)
        .init(&mut Stream::seeded(0))
        .unwrap();
    let mut block = Residual::new(Sequential::new().push(zero), Sequential::new(), None);
    assert_eq!(block.params()[0].name, "main.0.conv2d.kernel");
    let x = Tensor::from_vec((0..18).map(|i| i as f32 - 9.0).collect(), &[1, 2, 3, 3]).unwrap();
    let g = Graph::new();
    let xv = g.param(x.clone());
    let y = block.forward(&g, &xv).unwrap();
    assert_eq!(g.value(&y).unwrap().to_vec().unwrap(), x.to_vec().unwrap());
    let loss = g.sum(&y).unwrap();
    let grads = g.backward(&loss).unwrap();
    assert!(grads.slice(&xv).unwrap().iter().all(|&d| d == 1.0));

    // A projection block with stride 2: 5x5 -> 3x3, 4f channels; identity blocks must match.
    let mut proj = BottleneckConfig::new(3, 2, 2, true)
        .init(&mut Stream::seeded(1))
        .unwrap();
    let x = Tensor::from_vec((0..2 * 3 * 25).map(|i| (i % 7) as f32 - 3.0).collect(), &[2, 3, 5, 5]).unwrap();
    assert_eq!(predict(&mut proj, x).unwrap().shape(), &[2, 8, 3, 3]);
    assert!(BottleneckConfig::new(3, 2, 1, false)
        .init(&mut Stream::seeded(1))
        .is_err());
    assert!(BottleneckConfig::new(8, 2, 2, false)
        .init(&mut Stream::seeded(1))
        .is_err());
    assert!(BottleneckConfig::new(8, 0, 1, true)
        .init(&mut Stream::seeded(1))
        .is_err());
    assert!(BottleneckConfig::new(8, 2, 1, false)
        .init(&mut Stream::seeded(1))
        .is_ok());
}

#[test]
fn resnet50_trains_its_stem_through_the_blocks_and_keeps_the_bank_frozen() {
    let labels = vec![1usize, 7];
    // Learned stem: one step changes the stem kernel (its gradient crosses all 16 blocks).
    let mut m = small(Base::Resnet50, FrontEnd::Standard, 16)
        .build(&mut Stream::seeded(5))
        .unwrap();
    let mut opt = OptimizerConfig::keras_rmsprop(1e-3, 1e-6).build().unwrap();
    let stem = m.params()[0].value.to_vec().unwrap();
    let stats = m.buffers();
    let loss = train_step(&mut m, &mut opt, images(2, 16, 3), |g, y| g.cross_entropy(y, &labels)).unwrap();
    assert!(loss.is_finite());
    assert_ne!(m.params()[0].value.to_vec().unwrap(), stem);
    assert_ne!(m.buffers(), stats, "batch-norm running statistics update in training");

    // Bank stem: the bank holds no parameter before or after a step; the BN behind it learns.
    let mut m = small(Base::Resnet50, FrontEnd::Bank(gabor9()), 16)
        .build(&mut Stream::seeded(5))
        .unwrap();
    let before: Vec<Vec<f32>> = m.params().iter().map(|p| p.value.to_vec().unwrap()).collect();
    let probe = images(1, 16, 9);
    let mut opt = OptimizerConfig::keras_rmsprop(1e-3, 1e-6).build().unwrap();
    train_step(&mut m, &mut opt, images(2, 16, 3), |g, y| g.cross_entropy(y, &labels)).unwrap();
    assert_eq!(m.layers()[0].name(), "gabor_conv");
    assert!(m.layers()[0].params().is_empty());
    let after: Vec<Vec<f32>> = m.params().iter().map(|p| p.value.to_vec().unwrap()).collect();
    assert_eq!(before.len(), after.len());
    assert_ne!(after[0], before[0], "stem batch-norm gamma learned");
    // The bank's response to a probe is what a fresh bank computes.
    let bank_out = |m: &mut Sequential| {
        let g = Graph::with_mode(bioautograd::Mode::Eval);
        let x = g.input(probe.clone());
        let y = m.layers_mut()[0].forward(&g, &x).unwrap();
        g.value(&y).unwrap().to_vec().unwrap()
    };
    let mut fresh = small(Base::Resnet50, FrontEnd::Bank(gabor9()), 16)
        .build(&mut Stream::seeded(6))
        .unwrap();
    assert_eq!(bank_out(&mut m), bank_out(&mut fresh));

    // Qualified names stay unique, so parameter files and buffers round-trip.
    let names: Vec<String> = m.named_params().into_iter().map(|(n, _)| n).collect();
    let unique: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len());
    assert!(
        names.iter().any(|n| n == "4.residual.shortcut.0.conv2d.kernel"),
        "{names:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("resnet.npz");
    save_params(&m, &file).unwrap();
    let mut other = small(Base::Resnet50, FrontEnd::Bank(gabor9()), 16)
        .build(&mut Stream::seeded(9))
        .unwrap();
    load_params(&mut other, &file).unwrap();
    other.set_buffers(&m.buffers()).unwrap();
    assert_eq!(other.buffers(), m.buffers());
    assert_eq!(
        predict(&mut other, probe.clone()).unwrap().to_vec().unwrap(),
        predict(&mut m, probe).unwrap().to_vec().unwrap()
    );
    assert!(other.set_buffers(&[("4.residual.side.x".into(), vec![0.0])]).is_err());
}
