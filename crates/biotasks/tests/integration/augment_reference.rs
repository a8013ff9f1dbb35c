//! Keras' `ImageDataGenerator.apply_transform` for given parameters (rotation, shifts, zoom,
//! channel shift, flips) against the fixture of `xtask/python/augment_reference.py` (keras-
//! preprocessing 1.1.x's code on SciPy's `affine_transform`, run by `cargo xtask validate`).
//!
//! Tolerance 1e-5 absolute on values in [0, 1]: both sides interpolate in f64 from the same
//! float32 input and round to float32; only the order of a few additions differs (measured: one
//! float32 ulp at most, see the assertion message).

use std::path::{Path, PathBuf};

use biotasks::data::KerasTransform;
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/augment")
}

#[test]
fn keras_transform_matches_keras_preprocessing_on_scipy() {
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap()).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    let mut worst = 0f32;
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let shape: Vec<usize> = c["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let t = KerasTransform {
            theta: c["theta"].as_f64().unwrap(),
            tx: c["tx"].as_f64().unwrap(),
            ty: c["ty"].as_f64().unwrap(),
            zx: c["zx"].as_f64().unwrap(),
            zy: c["zy"].as_f64().unwrap(),
            channel_shift: c["channel_shift"].as_f64(),
            flip_horizontal: c["flip_horizontal"].as_bool().unwrap(),
            flip_vertical: c["flip_vertical"].as_bool().unwrap(),
        };
        let input = bionpy::read_npy::<f32>(&dir().join(format!("input_{name}.npy"))).unwrap();
        let want = bionpy::read_npy::<f32>(&dir().join(format!("output_{name}.npy"))).unwrap();
        assert_eq!(input.shape, shape, "{name}");
        let got = t.apply(&input.data, shape[0], shape[1], shape[2]).unwrap();
        assert_eq!(got.len(), want.data.len(), "{name}");
        let diff = got
            .iter()
            .zip(&want.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-5, "{name}: max |diff| {diff:e}");
        worst = worst.max(diff);
    }
    eprintln!("Keras transform vs keras-preprocessing/SciPy: max |diff| {worst:e}");
}
