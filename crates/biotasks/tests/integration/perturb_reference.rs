//! Compares every perturbation at every level with fixtures written by NumPy/SciPy following
//! upstream's code paths (`xtask/python/perturb_reference.py`, run by `cargo xtask validate`),
//! element by element, with the NumPy RandomState seeding upstream uses.
//!
//! Tolerances (absolute, on outputs in [0, 1]):
//! * pointwise operations and the noise perturbations: 0 (bit-identical float32): the same
//!   float64/float32 rounding points and NumPy's exact random stream;
//! * Gaussian low-pass: 2^-23 (one float32 ulp near 1), since our kernel sums run in another
//!   order than SciPy's and may round the final float32 cast the other way (measured: 0);
//! * high-pass: 4 * 2^-23: upstream's mean is a float32 pairwise sum, ours a float64 sum
//!   rounded to float32 (measured: 5.96e-8, one ulp);
//! * phase scrambling: 2^-23: rustfft vs pocketfft in float64 (about 1e-15 apart) can round the
//!   float32 cast the other way, and rustfft picks SIMD code paths by CPU (measured: 2.4e-16).

use std::path::{Path, PathBuf};

use biotasks::perturb::{PerturbOptions, Perturbation, Perturber};
use biotasks::RngKind;
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/perturb")
}

fn cases() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap()).unwrap()
}

fn tolerance(p: Perturbation) -> f32 {
    match p {
        Perturbation::LowPass | Perturbation::PhaseScrambling => f32::EPSILON,
        Perturbation::HighPass => 4.0 * f32::EPSILON,
        _ => 0.0,
    }
}

#[test]
fn levels_are_upstreams_value_for_value() {
    for p in Perturbation::ALL {
        let lv = bionpy::read_npy::<f64>(&dir().join(format!("levels_{}.npy", p.slug()))).unwrap();
        assert_eq!(lv.data, p.levels(), "{p}");
    }
}

#[test]
fn every_perturbation_and_level_matches_numpy_scipy() {
    let c = cases();
    let seed = c["seed"].as_u64().unwrap();
    let opts = PerturbOptions {
        background: c["background"].as_f64().unwrap(),
        contrast_level: 1.0,
    };
    assert_eq!(opts, PerturbOptions::default());
    let mut report = Vec::new();
    for set in c["sets"].as_array().unwrap() {
        let set = set.as_str().unwrap();
        let input = bionpy::read_npy::<f32>(&dir().join(format!("input_{set}.npy"))).unwrap();
        let (n, h, w) = (input.shape[0], input.shape[1], input.shape[2]);
        for p in Perturbation::ALL {
            let expected = bionpy::read_npy::<f32>(&dir().join(format!("{set}_{}.npy", p.slug()))).unwrap();
            assert_eq!(expected.shape, vec![p.levels().len(), n, h, w], "{set} {p}");
            let mut worst = 0f32;
            for li in 0..p.levels().len() {
                let want = &expected.data[li * n * h * w..(li + 1) * n * h * w];
                let mut perturber = Perturber::new(p, li, opts, RngKind::Numpy, seed).unwrap();
                let got = perturber.apply_batch(&input.data, 0, h, w);
                if want.iter().all(|v| v.is_nan()) {
                    // 90/270 degrees on a non-square image: upstream changes the shape, we refuse.
                    assert!(got.is_err(), "{set} {p} level {li} should be an error");
                    continue;
                }
                let got = got.unwrap();
                for (i, (a, b)) in got.iter().zip(want).enumerate() {
                    let d = (a - b).abs();
                    assert!(
                        d <= tolerance(p),
                        "{set} {p} level {li} element {i}: ours {a}, reference {b}"
                    );
                    worst = worst.max(d);
                }
            }
            report.push(format!("{set} {p}: max |diff| {worst:e}"));
        }
    }
    println!("{}", report.join("\n"));
}

#[test]
fn seeded_mode_is_reproducible_and_changes_with_the_seed() {
    let input = bionpy::read_npy::<f32>(&dir().join("input_square.npy")).unwrap();
    let (h, w) = (input.shape[1], input.shape[2]);
    let opts = PerturbOptions::default();
    for p in [
        Perturbation::Uniform,
        Perturbation::SaltAndPepper,
        Perturbation::PhaseScrambling,
    ] {
        let run = |seed| {
            Perturber::new(p, 5, opts, RngKind::Seeded, seed)
                .unwrap()
                .apply_batch(&input.data, 0, h, w)
                .unwrap()
        };
        assert_eq!(run(1), run(1), "{p}");
        assert_ne!(run(1), run(2), "{p}");
    }
}

/// Upstream's size: every perturbation at every level of one 224x224 image, against the arrays
/// `python3 xtask/python/perturb_reference.py --write-224 DIR` writes (too large to commit). Run
/// with `BIOMIMETIC_PERTURB_224=DIR cargo test -p biotasks --test integration perturb_reference:: -- --ignored
/// --nocapture`.
#[test]
#[ignore = "needs BIOMIMETIC_PERTURB_224=DIR written by perturb_reference.py --write-224 DIR"]
fn full_size_224_matches_numpy_scipy() {
    let dir = PathBuf::from(std::env::var("BIOMIMETIC_PERTURB_224").expect("set BIOMIMETIC_PERTURB_224=DIR"));
    let input = bionpy::read_npy::<f32>(&dir.join("input.npy")).unwrap();
    let (h, w) = (input.shape[1], input.shape[2]);
    for p in Perturbation::ALL {
        let want = bionpy::read_npy::<f32>(&dir.join(format!("{}.npy", p.slug()))).unwrap();
        let mut worst = 0f32;
        let start = std::time::Instant::now();
        for li in 0..p.levels().len() {
            let mut perturber = Perturber::new(p, li, PerturbOptions::default(), RngKind::Numpy, 7).unwrap();
            let got = perturber.apply_batch(&input.data, 0, h, w).unwrap();
            for (a, b) in got.iter().zip(&want.data[li * h * w..(li + 1) * h * w]) {
                worst = worst.max((a - b).abs());
            }
        }
        println!(
            "{p}: max |diff| {worst:e} ({:.3} s, all levels)",
            start.elapsed().as_secs_f64()
        );
        assert!(worst <= tolerance(p), "{p}: {worst}");
    }
}
