//! BioNet models and the ConvLSTM: shapes, frozen banks inside models, the one-step formula,
//! and an f64 finite-difference check of the unrolled recurrence.

use bioautograd::{Conv2dOptions, Graph, Padding, Tensor, Var};
use biolayers::bionet::{Base, BioNetConfig, FrontEnd, Recurrent};
use biolayers::filters::{DogParams, FilterBankSpec, GaborParams};
use biolayers::layers::{conv_lstm_forward, ConvLstmConfig, Module};
use biolayers::optim::OptimizerConfig;
use biolayers::train::{predict, train_step};
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
    assert!("resnet".parse::<Base>().is_err());
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
