//! Filter banks: element-by-element agreement with the NumPy reference of upstream's OpenCV
//! kernels (`xtask/python/filters_reference.py`), the orientation/sign convention, and frozen
//! layers staying frozen through training.

use std::path::{Path, PathBuf};

use bioautograd::Tensor;
use bioautograd::{Graph, Var};
use biolayers::filters::{
    gabor_bandwidth, gabor_kernel, gabor_sigma, gabor_wavelength, DogParams, FilterBankConfig, FilterBankLayer,
    FilterBankSpec, GaborParams, LowPassParams,
};
use biolayers::layers::{Conv2d, Conv2dConfig, Module, PaddingConfig, Param};
use biolayers::optim::OptimizerConfig;
use biolayers::train::{predict, train_step};
use biorng::Stream;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/filters")
        .join(format!("{name}.npy"))
}

fn f64_fixture(name: &str) -> (Vec<usize>, Vec<f64>) {
    let a = bionpy::read_npy::<f64>(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    (a.shape, a.data)
}

fn f32_fixture(name: &str) -> (Vec<usize>, Vec<f32>) {
    let a = bionpy::read_npy::<f32>(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    (a.shape, a.data)
}

fn assert_close_f64(name: &str, spec: &FilterBankSpec) {
    let (shape, want) = f64_fixture(name);
    let bank = spec.build().unwrap();
    assert_eq!(vec![bank.channels, bank.ksize, bank.ksize], shape, "{name} shape");
    for (i, (a, b)) in bank.kernels.iter().zip(&want).enumerate() {
        assert!((a - b).abs() <= 1e-13, "{name}[{i}]: ours {a} vs numpy {b}");
    }
}

fn assert_equal_f32(name: &str, spec: &FilterBankSpec) {
    let (shape, want) = f32_fixture(name);
    let bank = spec.build().unwrap();
    assert_eq!(vec![bank.channels, bank.ksize, bank.ksize], shape, "{name} shape");
    let ours = bank.to_f32();
    let mut differ = 0;
    for (i, (a, b)) in ours.iter().zip(&want).enumerate() {
        // float64 values that agree to ~1e-16 round to the same float32 except at a tie.
        let ulps = (a.to_bits() as i64 - b.to_bits() as i64).abs();
        assert!(ulps <= 1, "{name}[{i}]: ours {a} vs numpy {b}");
        differ += usize::from(ulps != 0);
    }
    assert!(differ * 1000 < ours.len(), "{name}: {differ} values off by one ulp");
}

#[test]
fn paper_gabor_bank_matches_the_reference() {
    let (_, lambdas) = f64_fixture("gabor_lambdas");
    for (b, want) in [1.0, 1.8, 2.6].iter().zip(&lambdas) {
        let l = gabor_wavelength(8.0, *b);
        assert!((l - want).abs() < 1e-12, "lambda({b}) = {l}, numpy {want}");
        assert!((gabor_sigma(l, *b) - 8.0).abs() < 1e-12);
        assert!((gabor_bandwidth(l, 8.0) - b).abs() < 1e-12);
    }
    // The reference's printed values.
    assert!((lambdas[0] - 14.2305).abs() < 1e-4 && (lambdas[2] - 30.6025).abs() < 1e-4);
    let spec = FilterBankSpec::Gabor(GaborParams::paper());
    assert_eq!(spec.channels(), 24);
    assert_equal_f32("gabor63_f32", &spec);
    assert_close_f64("gabor31", &FilterBankSpec::Gabor(GaborParams::trim()));
}

#[test]
fn dog_and_low_pass_banks_match_the_reference() {
    let dog = FilterBankSpec::Dog(DogParams::trim());
    assert_eq!(dog.channels(), 32);
    assert_close_f64("dog31", &dog);
    assert_equal_f32("low_pass63_f32", &FilterBankSpec::LowPass(LowPassParams::paper()));
    // Every DoG kernel sums to 0, every low-pass kernel to 1; on/off are negatives.
    let bank = FilterBankSpec::Dog(DogParams::paper()).build().unwrap();
    for c in 0..bank.channels {
        let s: f64 = bank.kernel(c).unwrap().iter().sum();
        assert!(s.abs() < 1e-12, "dog {c} sums to {s}");
    }
    let (on, off) = (bank.kernel(0).unwrap(), bank.kernel(1).unwrap());
    assert!(on.iter().zip(off).all(|(a, b)| *a == -*b));
    assert!(on[31 * 63 + 31] > 0.0, "on-centre kernel is positive at its centre");
}

#[test]
fn scaled_banks_match_the_reference() {
    let gabor = FilterBankSpec::Gabor(GaborParams::paper()).scaled(1.0 / 7.0).unwrap();
    assert_eq!(gabor.ksize(), 9);
    assert_close_f64("gabor9_scaled", &gabor);
    let dog = FilterBankSpec::Dog(DogParams::paper()).scaled(1.0 / 7.0).unwrap();
    assert_close_f64("dog9_scaled", &dog);
    assert_eq!(
        FilterBankSpec::Dog(DogParams::trim())
            .scaled(1.0 / 7.0)
            .unwrap()
            .ksize(),
        5
    );
}

#[test]
fn bad_parameters_are_errors() {
    assert!(gabor_kernel(4, 8.0, 0.0, 10.0, 0.5, 0.0).is_err());
    assert!(gabor_kernel(5, 0.0, 0.0, 10.0, 0.5, 0.0).is_err());
    let dog = DogParams {
        gammas: vec![0.9],
        ..DogParams::paper()
    };
    assert!(dog.build().is_err());
    let empty = GaborParams {
        psis: vec![],
        ..GaborParams::paper()
    };
    assert!(empty.build().is_err());
    assert!(FilterBankSpec::Gabor(GaborParams::paper()).scaled(0.0).is_err());
    assert!(
        FilterBankConfig::new(FilterBankSpec::LowPass(LowPassParams::paper()), 0)
            .init()
            .is_err()
    );
}

/// A 1-channel 21x21 image: 0 on one side of an edge through the centre, 1 on the other.
fn edge_image(vertical: bool, dark_first: bool) -> Tensor {
    let n = 21;
    let mut x = vec![0f32; n * n];
    for r in 0..n {
        for c in 0..n {
            let pos = if vertical { c } else { r };
            let second_half = pos > n / 2;
            x[r * n + c] = f32::from(u8::from(second_half == dark_first));
        }
    }
    Tensor::from_vec(x, &[1, 1, n, n]).unwrap()
}

#[test]
fn gabor_orientation_and_sign_convention() {
    // theta = 0, psi = pi/2 (channel 0): positive right of the centre, negative left; constant
    // along each column near the centre row (vertical stripes).
    let bank = GaborParams::paper().build().unwrap();
    let k0 = bank.kernel(0).unwrap();
    let at = |r: usize, c: usize| k0[r * 63 + c];
    assert!(at(31, 32) > 0.0 && at(31, 30) < 0.0, "{} {}", at(31, 32), at(31, 30));
    assert!(at(31, 31).abs() < 1e-15, "odd kernel is 0 at its centre");
    // theta = pi/2, psi = pi/2 is channel 2*6 = 12: positive below the centre.
    let k12 = bank.kernel(12).unwrap();
    assert!(k12[32 * 63 + 31] > 0.0 && k12[30 * 63 + 31] < 0.0);
    // ψ = 3π/2 is the negative of ψ = π/2.
    let k1 = bank.kernel(1).unwrap();
    assert!(k0.iter().zip(k1).all(|(a, b)| (a + b).abs() < 1e-12));

    // Through the layer (cross-correlation, same padding, ReLU), on 21x21 edges with a
    // small bank (k = 9) so the image is not dominated by the border.
    let spec = FilterBankSpec::Gabor(GaborParams::paper()).scaled(1.0 / 7.0).unwrap();
    let mut layer = FilterBankConfig::new(spec, 1).init().unwrap();
    let centre = 10 * 21 + 10;
    let plane = 21 * 21;
    let respond = |layer: &mut FilterBankLayer, img: Tensor| -> Vec<f32> {
        let y = predict(layer, img).unwrap().to_vec().unwrap();
        (0..24).map(|c| y[c * plane + centre]).collect()
    };
    // Dark left, bright right: channel 0 (theta 0, psi pi/2) fires, channel 1 is silenced.
    let r = respond(&mut layer, edge_image(true, true));
    assert!(r[0] > 0.05 && r[1] == 0.0, "{:?}", &r[..2]);
    // The mirrored edge swaps them.
    let r = respond(&mut layer, edge_image(true, false));
    assert!(r[1] > 0.05 && r[0] == 0.0, "{:?}", &r[..2]);
    // Dark above, bright below: theta = pi/2, psi = pi/2 (channel 12) fires; the vertical-edge
    // detectors see no contrast along their axis.
    let r = respond(&mut layer, edge_image(false, true));
    assert!(r[12] > 0.05 && r[13] == 0.0, "{:?}", &r[12..14]);
    assert!(r[0].abs() < 1e-4 && r[1].abs() < 1e-4, "{:?}", &r[..2]);
}

#[test]
fn kernel_is_tiled_over_input_channels() {
    let spec = FilterBankSpec::LowPass(LowPassParams {
        ksize: 5,
        sigmas: vec![1.0, 2.0],
    });
    let bank = spec.build().unwrap();
    let w = bank.keras_kernel(3).unwrap();
    assert_eq!(w.shape(), &[5, 5, 3, 2]);
    let w = w.to_vec().unwrap();
    for r in 0..5 {
        for c in 0..5 {
            for i in 0..3 {
                for ch in 0..2 {
                    let v = w[((r * 5 + c) * 3 + i) * 2 + ch];
                    assert_eq!(v, bank.kernel(ch).unwrap()[r * 5 + c] as f32);
                }
            }
        }
    }
}

/// A bank followed by a learned conv, with the bank reachable after training.
struct BankThenConv {
    bank: FilterBankLayer,
    conv: Conv2d,
}

impl Module for BankThenConv {
    fn forward(&mut self, g: &Graph, x: &Var) -> biolayers::Result<Var> {
        let h = self.bank.forward(g, x)?;
        let y = self.conv.forward(g, &h)?;
        Ok(g.flatten(&y)?)
    }
    fn params(&self) -> Vec<&Param> {
        self.bank.params().into_iter().chain(self.conv.params()).collect()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        self.bank
            .params_mut()
            .into_iter()
            .chain(self.conv.params_mut())
            .collect()
    }
    fn name(&self) -> String {
        "bank_then_conv".into()
    }
}

#[test]
fn frozen_bank_is_unchanged_by_training_and_trainable_one_learns() {
    let spec = FilterBankSpec::Dog(DogParams {
        ksize: 5,
        sigmas: vec![1.0],
        gammas: vec![1.6],
    });
    let mut rng = Stream::seeded(3);
    let mut build = |trainable: bool| BankThenConv {
        bank: FilterBankConfig {
            trainable,
            ..FilterBankConfig::new(spec.clone(), 1)
        }
        .init()
        .unwrap(),
        conv: Conv2dConfig::new(2, 3, (3, 3))
            .with_padding(PaddingConfig::Same)
            .init(&mut rng)
            .unwrap(),
    };
    let mut data = Stream::seeded(4);
    let x: Vec<f32> = (0..2 * 36).map(|_| data.uniform01() as f32).collect();
    let x = Tensor::from_vec(x, &[2, 1, 6, 6]).unwrap();
    let labels = vec![0usize, 5];
    let bank_kernel = spec.build().unwrap().keras_kernel(1).unwrap().to_vec().unwrap();

    let mut frozen = build(false);
    assert!(frozen.bank.params().is_empty());
    assert!(frozen.bank.learnable().is_none());
    assert_eq!(frozen.bank.name(), "dog_conv");
    assert_eq!(frozen.bank.kernel().to_vec().unwrap(), bank_kernel);
    let conv_before = frozen.conv.kernel().to_vec().unwrap();
    let mut opt = OptimizerConfig::keras_rmsprop(0.1, 0.0).build().unwrap();
    for _ in 0..3 {
        train_step(&mut frozen, &mut opt, x.clone(), |g, y| g.cross_entropy(y, &labels)).unwrap();
    }
    // The conv after it learned; the bank and its zero bias did not move.
    assert_ne!(frozen.conv.kernel().to_vec().unwrap(), conv_before);
    assert_eq!(frozen.bank.kernel().to_vec().unwrap(), bank_kernel);
    assert!(frozen.bank.bias().to_vec().unwrap().iter().all(|&b| b == 0.0));

    // The upstream-quirk variant (trainable) does change.
    let mut learned = build(true);
    assert_eq!(learned.bank.params().len(), 2);
    let mut opt = OptimizerConfig::keras_rmsprop(0.1, 0.0).build().unwrap();
    train_step(&mut learned, &mut opt, x, |g, y| g.cross_entropy(y, &labels)).unwrap();
    assert_ne!(learned.bank.kernel().to_vec().unwrap(), bank_kernel);
}
