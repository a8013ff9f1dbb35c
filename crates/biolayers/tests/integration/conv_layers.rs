//! Convolution layers: upstream mask semantics, training keeps the support, transposed shapes.

use bioautograd::{Pool2d, Tensor};
use biolayers::layers::{Activation, Conv2dConfig, DenseConfig, Flatten, MaxPool2d, Module, PaddingConfig, Sequential};
use biolayers::optim::OptimizerConfig;
use biolayers::train::{predict, train_step};
use biomask::MaskSpec;
use biorng::Stream;

/// 8x8 single-channel images with horizontal (0), vertical (1) or diagonal (2) stripes + noise.
fn stripes(n: usize, rng: &mut Stream) -> (Vec<f32>, Vec<usize>) {
    let mut x = Vec::with_capacity(n * 64);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 3;
        let phase = rng.below(2) as usize;
        for r in 0..8 {
            for c in 0..8 {
                let on = match class {
                    0 => (r + phase) % 2 == 0,
                    1 => (c + phase) % 2 == 0,
                    _ => (r + c + phase) % 2 == 0,
                };
                x.push(f32::from(u8::from(on)) + 0.3 * (rng.uniform01() as f32 - 0.5));
            }
        }
        y.push(class);
    }
    (x, y)
}

#[test]
fn mconv2d_masks_once_and_trains_keeping_the_support() {
    let mut rng = Stream::seeded(0);
    let mconv = Conv2dConfig::masked(4, 16, (3, 3), MaskSpec::two_d(2, 4, 0.5))
        .with_padding(PaddingConfig::Same)
        .init(&mut rng)
        .unwrap();
    assert_eq!(mconv.name(), "mconv2d");
    assert_eq!(mconv.num_weights(), 3 * 3 * 4 * 16);
    let support: Vec<bool> = mconv.mask().keras_values().iter().map(|&v| v != 0.0).collect();
    assert!(support.iter().any(|s| !s), "the 2d mask should remove weights");
    let mut model = Sequential::new()
        .push(
            Conv2dConfig::new(1, 4, (3, 3))
                .with_padding(PaddingConfig::Same)
                .init(&mut rng)
                .unwrap(),
        )
        .push(Activation::Relu)
        .push(mconv)
        .push(Activation::Relu)
        .push(MaxPool2d(Pool2d::new(2)))
        .push(Flatten)
        .push(DenseConfig::new(16 * 16, 3).init(&mut rng).unwrap());
    let (x, y) = stripes(48, &mut rng);
    let mut opt = OptimizerConfig::torch_adam(0.01).build().unwrap();
    let mut losses = Vec::new();
    for _ in 0..25 {
        let xt = Tensor::from_vec(x.clone(), &[48, 1, 8, 8]).unwrap();
        losses.push(train_step(&mut model, &mut opt, xt, |g, out| g.cross_entropy(out, &y)).unwrap());
    }
    assert!(losses[24] < 0.5 * losses[0], "loss {} -> {}", losses[0], losses[24]);
    let k = model.params()[2].value.as_slice().unwrap();
    assert_eq!(k.len(), support.len());
    assert!(
        k.iter().zip(&support).all(|(w, s)| *s || *w == 0.0),
        "a masked weight left the support"
    );
}

#[test]
fn transposed_conv_uses_the_output_channels_as_x() {
    let mut rng = Stream::seeded(1);
    let mut t = Conv2dConfig::transpose(16, 8, (4, 4), MaskSpec::two_d(4, 4, 0.5))
        .with_strides(2, 2)
        .with_padding(PaddingConfig::Same)
        .init(&mut rng)
        .unwrap();
    assert_eq!(t.name(), "mconv2dtranspose");
    assert_eq!(t.kernel().shape(), &[4, 4, 8, 16]);
    assert_eq!((t.mask().nx(), t.mask().ny()), (8, 16));
    let out = predict(
        &mut t,
        Tensor::from_vec(vec![0.5; 2 * 16 * 5 * 5], &[2, 16, 5, 5]).unwrap(),
    )
    .unwrap();
    assert_eq!(out.shape(), &[2, 8, 10, 10]);
}

#[test]
fn bad_conv_configurations_are_errors() {
    let mut rng = Stream::seeded(2);
    let bad_groups = Conv2dConfig {
        groups: 3,
        ..Conv2dConfig::new(4, 8, (3, 3))
    };
    assert!(bad_groups.init(&mut rng).is_err());
    let gaussian = Conv2dConfig::masked(
        4,
        8,
        (3, 3),
        MaskSpec::Gaussian {
            param_reduction: 0.5,
            halfbandwidth: 0.0,
        },
    );
    assert!(gaussian.init(&mut rng).is_err());
    let mut c = Conv2dConfig::new(3, 4, (3, 3)).init(&mut rng).unwrap();
    assert!(predict(&mut c, Tensor::from_vec(vec![0.0; 2 * 5 * 5], &[1, 2, 5, 5]).unwrap()).is_err());
}
