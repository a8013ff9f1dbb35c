//! Compares every mask with the independent NumPy references written by `cargo xtask validate`
//! (`xtask/python/masks_reference.py`): binary masks element by element (exact), the gaussian
//! window to f32 rounding.

use std::path::{Path, PathBuf};

use biomask::{LayerKind, Layout, MaskSpec, Rng};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/masks")
}

fn unpack_bits(bytes: &[u8], n: usize) -> Vec<f32> {
    (0..n).map(|i| f32::from((bytes[i / 8] >> (7 - i % 8)) & 1)).collect()
}

#[test]
fn every_fixture_matches() {
    let manifest: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap()).unwrap();
    assert!(manifest.len() >= 40, "fixture manifest is unexpectedly small");
    for case in &manifest {
        let name = case["name"].as_str().unwrap();
        let spec: MaskSpec = serde_json::from_value(case["spec"].clone()).unwrap();
        let nx = case["nx"].as_u64().unwrap() as usize;
        let ny = case["ny"].as_u64().unwrap() as usize;
        let kernel = (
            case["kernel"][0].as_u64().unwrap() as usize,
            case["kernel"][1].as_u64().unwrap() as usize,
        );
        let kind = match case["kind"].as_str().unwrap() {
            "dense" => LayerKind::Dense,
            "conv" => LayerKind::Conv { kernel },
            other => panic!("{name}: unknown kind {other}"),
        };
        let layout = match case["layout"].as_str().unwrap() {
            "keras" => Layout::Keras,
            _ => Layout::Torch,
        };
        let seed = case["seed"].as_u64().unwrap_or(0) as u32;
        let mut rng = match case["rng"].as_str() {
            Some("numpy") => Rng::numpy(seed),
            Some("python") => Rng::python(i128::from(seed)),
            _ => Rng::seeded(0),
        };
        let mask = spec.build(kind, nx, ny, layout, &mut rng).unwrap();
        let got = mask.keras_values();
        let file = fixtures().join(case["file"].as_str().unwrap());
        if case["packed"].as_bool().unwrap() {
            let packed: bionpy::NpyArray<u8> = bionpy::read_npy(&file).unwrap();
            let want = unpack_bits(&packed.data, got.len());
            let diff = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(diff, 0, "{name}: {diff} of {} entries differ from NumPy", got.len());
        } else {
            let want: bionpy::NpyArray<f32> = bionpy::read_npy(&file).unwrap();
            assert_eq!(want.data.len(), got.len(), "{name}: length");
            for (i, (a, b)) in got.iter().zip(&want.data).enumerate() {
                assert!(
                    (a - b).abs() <= 2.0 * f32::EPSILON * b.abs(),
                    "{name}[{i}]: {a} vs NumPy {b}"
                );
            }
        }
        assert_eq!(
            mask.num_ones() as u64,
            case["num_ones"].as_u64().unwrap(),
            "{name}: num_ones"
        );
    }
}
