//! Unit tests of the perturbations: levels, streams, batching and bad arguments.

use super::*;

#[test]
fn names_round_trip_and_unknown_is_an_error() {
    for p in Perturbation::ALL {
        assert_eq!(Perturbation::from_name(p.name()).unwrap(), p);
        assert_eq!(Perturbation::from_name(&p.slug()).unwrap(), p);
    }
    assert_eq!(
        Perturbation::from_name("salt-and-pepper").unwrap(),
        Perturbation::SaltAndPepper
    );
    assert!(Perturbation::from_name("Gaussian").is_err());
    assert_eq!(Perturbation::SaltAndPepper.slug(), "salt_and_pepper");
}

#[test]
fn level_counts_and_clean_first_level() {
    for p in Perturbation::ALL {
        let n = p.levels().len();
        let expected = match p {
            Perturbation::Rotation => 4,
            Perturbation::Invert => 2,
            _ => 11,
        };
        assert_eq!(n, expected, "{p}");
        assert!(p.level(n).is_err());
    }
    // Level 0 is the identity for every perturbation but the filters.
    let img: Vec<f32> = (0..16).map(|i| i as f32 / 15.0).collect();
    let opts = PerturbOptions::default();
    for p in Perturbation::ALL {
        if matches!(p, Perturbation::HighPass | Perturbation::LowPass) {
            continue;
        }
        let out = p
            .apply(&img, 4, 4, p.levels()[0], &opts, &mut Stream::seeded(1))
            .unwrap();
        for (a, b) in img.iter().zip(&out) {
            assert!((a - b).abs() < 1e-6, "{p}: {a} vs {b}");
        }
    }
}

#[test]
fn rotations_are_counter_clockwise_and_compose() {
    // 2x2: [[a, b], [c, d]] -> 90 ccw: [[b, d], [a, c]].
    let img = [0.1f32, 0.2, 0.3, 0.4];
    let r90 = rotate(&img, 2, 2, 90.0).unwrap();
    assert_eq!(r90, vec![0.2, 0.4, 0.1, 0.3]);
    let r270 = rotate(&img, 2, 2, 270.0).unwrap();
    assert_eq!(r270, vec![0.3, 0.1, 0.4, 0.2]);
    assert_eq!(rotate(&r90, 2, 2, 90.0).unwrap(), rotate(&img, 2, 2, 180.0).unwrap());
    assert!(rotate(&[0.0; 6], 2, 3, 90.0).is_err());
    assert!(rotate(&img, 2, 2, 45.0).is_err());
}

#[test]
fn bad_inputs_are_errors() {
    let opts = PerturbOptions::default();
    let mut rng = Stream::seeded(0);
    assert!(Perturbation::Invert
        .apply(&[0.5; 3], 2, 2, 1.0, &opts, &mut rng)
        .is_err());
    assert!(Perturbation::Invert
        .apply(&[1.5; 4], 2, 2, 1.0, &opts, &mut rng)
        .is_err());
    assert!(Perturbation::Invert
        .apply(&[f32::NAN; 4], 2, 2, 1.0, &opts, &mut rng)
        .is_err());
    assert!(Perturbation::Contrast
        .apply(&[0.5; 4], 2, 2, 1.5, &opts, &mut rng)
        .is_err());
    assert!(Perturbation::SaltAndPepper
        .apply(&[0.5; 4], 2, 2, -0.1, &opts, &mut rng)
        .is_err());
    assert!(Perturbation::PhaseScrambling
        .apply(&[0.5; 9], 3, 3, 18.0, &opts, &mut rng)
        .is_err());
    assert!(Perturber::new(Perturbation::Uniform, 11, opts, RngKind::Seeded, 0).is_err());
    assert!(Perturber::new(Perturbation::Uniform, 1, opts, RngKind::Python, 0).is_err());
    assert!(Perturber::new(Perturbation::Uniform, 1, opts, RngKind::Numpy, u64::from(u32::MAX)).is_err());
}

#[test]
fn seeded_batches_do_not_depend_on_order_numpy_batches_must_be_in_order() {
    let (h, w) = (4, 4);
    let images: Vec<f32> = (0..3 * h * w).map(|i| (i % 7) as f32 / 7.0).collect();
    let opts = PerturbOptions::default();
    let mut all = Perturber::new(Perturbation::Uniform, 3, opts, RngKind::Seeded, 5).unwrap();
    let whole = all.apply_batch(&images, 0, h, w).unwrap();
    let mut parts = Perturber::new(Perturbation::Uniform, 3, opts, RngKind::Seeded, 5).unwrap();
    let last = parts.apply_batch(&images[2 * h * w..], 2, h, w).unwrap();
    let first = parts.apply_batch(&images[..2 * h * w], 0, h, w).unwrap();
    assert_eq!([first, last].concat(), whole);
    assert_ne!(whole[..h * w], images[..h * w]);

    let mut np = Perturber::new(Perturbation::Uniform, 3, opts, RngKind::Numpy, 5).unwrap();
    let a = np.apply_batch(&images[..h * w], 0, h, w).unwrap();
    assert!(np.apply_batch(&images[..h * w], 0, h, w).is_err());
    let b = np.apply_batch(&images[h * w..], 1, h, w).unwrap();
    let mut np_whole = Perturber::new(Perturbation::Uniform, 3, opts, RngKind::Numpy, 5).unwrap();
    assert_eq!([a, b].concat(), np_whole.apply_batch(&images, 0, h, w).unwrap());
}

#[test]
fn apply_equals_apply_with_its_own_draws() {
    let (h, w) = (4, 6);
    let img: Vec<f32> = (0..h * w).map(|i| (i % 5) as f32 / 5.0).collect();
    let opts = PerturbOptions::default();
    for p in Perturbation::ALL {
        let level = p.levels()[p.levels().len() / 2];
        let k = p.draws_per_image(h, w);
        assert_eq!(k > 0, p.is_stochastic(), "{p}");
        let mut a = Stream::numpy(3);
        let mut b = Stream::numpy(3);
        let draws: Vec<f64> = (0..k).map(|_| b.uniform01()).collect();
        let got = p.apply(&img, h, w, level, &opts, &mut a);
        let want = p.apply_with_draws(&img, h, w, level, &opts, &draws);
        match (got, want) {
            (Ok(x), Ok(y)) => assert_eq!(x, y, "{p}"),
            (Err(_), Err(_)) => assert_eq!(p, Perturbation::Rotation), // 90 degrees, not square
            other => panic!("{p}: {other:?}"),
        }
        assert_eq!(a.uniform01(), b.uniform01(), "{p}: same number of draws");
        assert!(p.apply_with_draws(&img, h, w, level, &opts, &vec![0.5; k + 1]).is_err());
    }
}

#[test]
fn with_level_applies_its_value_and_seeds_by_index() {
    let img: Vec<f32> = (0..16).map(|i| i as f32 / 16.0).collect();
    let opts = PerturbOptions::default();
    let mut a = Perturber::with_level(Perturbation::Uniform, 2, 0.2, opts, RngKind::Seeded, 9).unwrap();
    let mut b = Perturber::new(Perturbation::Uniform, 2, opts, RngKind::Seeded, 9).unwrap();
    assert_eq!(
        a.apply_batch(&img, 0, 4, 4).unwrap(),
        b.apply_batch(&img, 0, 4, 4).unwrap()
    );
    let c = Perturber::with_level(Perturbation::LowPass, 0, 0.5, opts, RngKind::Seeded, 9).unwrap();
    assert_eq!(c.level(), 0.5);
    assert!(Perturber::with_level(Perturbation::LowPass, 0, f64::NAN, opts, RngKind::Seeded, 9).is_err());
}

#[test]
fn network_input_matches_keras_normalisation() {
    let out = network_input(&[0.0, 1.0], LANCZOS_MEAN, LANCZOS_STD);
    assert!((out[0] - (-LANCZOS_MEAN / (LANCZOS_STD + 1e-6)) as f32).abs() < 1e-5);
    assert!((out[1] - ((255.0 - LANCZOS_MEAN) / (LANCZOS_STD + 1e-6)) as f32).abs() < 1e-5);
    assert_eq!(to_unit_range(&[255.0])[0], 255.0 * (1.0f64 / 255.0) as f32);
}
