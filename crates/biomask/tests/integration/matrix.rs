//! The `matrix` form: masks from memory or `.npy`, their checks, serde and counts.

use biomask::{Error, LayerKind, Layout, MaskForm, MaskSpec, MatrixMask, Rng};

fn err_param(e: Error) -> (&'static str, String) {
    match e {
        Error::InvalidParameter { name, value, .. } => (name, value),
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

#[test]
fn a_binary_matrix_equals_the_form_it_copies() {
    // The values of a diagonal mask, given as a matrix, give the same mask values, counts and
    // w_corr (the upstream rescale for every binary form).
    let mut rng = Rng::seeded(0);
    let diag = MaskSpec::diagonal(0.7).dense(40, 24, Layout::Keras, &mut rng).unwrap();
    let m = MaskSpec::matrix(diag.keras_values(), 40, 24)
        .unwrap()
        .dense(40, 24, Layout::Keras, &mut rng)
        .unwrap();
    assert_eq!(m.form(), MaskForm::Matrix);
    assert!(m.is_binary());
    assert_eq!(m.keras_values(), diag.keras_values());
    assert_eq!(m.num_ones(), diag.num_ones());
    assert_eq!(m.w_corr(), diag.w_corr());
    assert!(m.w_corr() > 1.0);
    assert_eq!(m.to_layout(Layout::Torch), diag.to_layout(Layout::Torch));
}

#[test]
fn a_weighted_matrix_is_a_window_without_rescale() {
    let values = vec![0.0, 0.5, 2.0, 0.0, 0.0, 1.0];
    let m = MaskSpec::matrix(values.clone(), 2, 3)
        .unwrap()
        .dense(2, 3, Layout::Keras, &mut Rng::seeded(0))
        .unwrap();
    assert!(!m.is_binary());
    assert_eq!(m.w_corr(), 1.0);
    assert_eq!(m.num_ones(), 3);
    assert_eq!(m.density(), 0.5);
    assert_eq!(m.keras_values(), values);
    // A weighted matrix is a dense-layer window only.
    let e = MaskSpec::matrix(values, 2, 3)
        .unwrap()
        .conv(2, 3, 1, (3, 3), Layout::Keras, &mut Rng::seeded(0))
        .unwrap_err();
    assert!(matches!(e, Error::UnsupportedForm { form: "matrix", .. }), "{e:?}");
}

#[test]
fn conv_matrices_are_shared_or_per_tap() {
    let mut rng = Rng::seeded(0);
    let channel = vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]; // (nx=3, ny=2)
    let shared = MaskSpec::matrix(channel.clone(), 3, 2)
        .unwrap()
        .conv(3, 2, 1, (2, 2), Layout::Keras, &mut rng)
        .unwrap();
    assert!(shared.is_shared_across_taps());
    assert_eq!(shared.num_ones(), 4 * 4);
    assert_eq!(shared.get(1, 1, 1, 1), Some(1.0));
    assert_eq!(shared.get(1, 0, 0, 1), Some(0.0));
    let per_tap: Vec<f32> = (0..2 * 2 * 3 * 2).map(|i| f32::from(u8::from(i % 3 == 0))).collect();
    let m = MaskSpec::matrix_with_shape(per_tap.clone(), &[2, 2, 3, 2])
        .unwrap()
        .conv(3, 2, 1, (2, 2), Layout::Keras, &mut rng)
        .unwrap();
    assert!(!m.is_shared_across_taps());
    assert_eq!(m.keras_values(), per_tap);
    assert_eq!(m.num_ones(), 8);
    // A transposed conv's x axis is its output channels: (out=3, in=2).
    let t = MaskSpec::matrix(channel, 3, 2)
        .unwrap()
        .conv_transpose(2, 3, 1, (2, 2), Layout::Keras, &mut rng)
        .unwrap();
    assert_eq!(t.layer_kind(), LayerKind::ConvTranspose { kernel: (2, 2) });
    assert_eq!((t.nx(), t.ny()), (3, 2));
}

#[test]
fn bad_matrices_are_typed_errors_naming_the_value() {
    let (name, value) = err_param(MaskSpec::matrix(vec![1.0; 5], 2, 3).unwrap_err());
    assert_eq!((name, value.as_str()), ("shape", "[2, 3]"));
    let (name, value) = err_param(MaskSpec::matrix(vec![1.0, f32::NAN, 0.0, 1.0], 2, 2).unwrap_err());
    assert_eq!((name, value.as_str()), ("values", "NaN at [0, 1]"));
    let (name, _) = err_param(MaskSpec::matrix(vec![0.0; 4], 2, 2).unwrap_err());
    assert_eq!(name, "values");
    let (name, _) = err_param(MaskSpec::matrix(vec![], 0, 3).unwrap_err());
    assert_eq!(name, "shape");
    let (name, _) = err_param(MaskSpec::matrix_with_shape(vec![1.0; 8], &[2, 2, 2]).unwrap_err());
    assert_eq!(name, "shape");
    let (name, value) = err_param(MaskSpec::matrix_f64(&[1.0, 1e-50], 1, 2).unwrap_err());
    assert_eq!((name, value.as_str()), ("values", "1e-50 at [0, 1]"));
    // A matrix of the wrong size for the layer.
    let spec = MaskSpec::matrix(vec![1.0; 6], 2, 3).unwrap();
    let (name, value) = err_param(spec.dense(3, 2, Layout::Keras, &mut Rng::seeded(0)).unwrap_err());
    assert_eq!((name, value.as_str()), ("shape", "[2, 3]"));
    let e = spec.dense(3, 2, Layout::Keras, &mut Rng::seeded(0)).unwrap_err();
    assert!(e.to_string().contains("[nx, ny] = [3, 2]"), "{e}");
}

#[test]
fn binary_support_and_f64_values_build_the_same_mask() {
    let support = [true, false, false, true, true, false];
    let weights = [0.3, 0.0, 0.0, 1.2, 5.0, 0.0];
    let a = MaskSpec::binary(&support, 3, 2).unwrap();
    let b = MaskSpec::matrix_f64(&weights, 3, 2).unwrap();
    let build = |s: &MaskSpec| s.dense(3, 2, Layout::Keras, &mut Rng::seeded(0)).unwrap();
    let (ma, mb) = (build(&a), build(&b));
    assert!(ma.is_binary() && !mb.is_binary());
    let supp = |m: &biomask::Mask| m.keras_values().iter().map(|&v| v != 0.0).collect::<Vec<_>>();
    assert_eq!(supp(&ma), support);
    assert_eq!(supp(&mb), support);
    assert_eq!(ma.w_corr(), 2.0);
}

#[test]
fn serde_inline_and_npy_path() {
    let spec: MaskSpec =
        serde_json::from_str(r#"{"form": "matrix", "values": [1, 0, 0, 1], "shape": [2, 2]}"#).unwrap();
    assert_eq!(spec, MaskSpec::matrix(vec![1.0, 0.0, 0.0, 1.0], 2, 2).unwrap());
    let back: MaskSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
    let toml_spec: MaskSpec = toml::from_str("form = \"matrix\"\npath = \"topology.npy\"\n").unwrap();
    assert_eq!(toml_spec, MaskSpec::matrix_npy("topology.npy"));
    // Inline values are checked while parsing; unknown fields and half-given sources are refused.
    for bad in [
        r#"{"form": "matrix", "values": [1, 0], "shape": [2, 2]}"#,
        r#"{"form": "matrix", "values": [1, 0]}"#,
        r#"{"form": "matrix"}"#,
        r#"{"form": "matrix", "path": "a.npy", "values": [1], "shape": [1, 1]}"#,
        r#"{"form": "matrix", "path": "a.npy", "scale": 2}"#,
    ] {
        assert!(serde_json::from_str::<MaskSpec>(bad).is_err(), "{bad}");
    }
    let e = serde_json::from_str::<MaskSpec>(r#"{"form": "matrix", "values": [1, 0], "shape": [2, 2]}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[2, 2]"), "{e}");
}

#[test]
fn npy_files_of_every_numeric_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let support = [1u8, 0, 0, 1, 1, 0];
    let expected: Vec<f32> = support.iter().map(|&v| f32::from(v)).collect();
    let f64_values: Vec<f64> = support.iter().map(|&v| f64::from(v)).collect();
    let i64_values: Vec<i64> = support.iter().map(|&v| i64::from(v)).collect();
    let files = [
        ("u8.npy", bionpy::npy_bytes(&[3, 2], &support).unwrap()),
        ("f32.npy", bionpy::npy_bytes(&[3, 2], &expected).unwrap()),
        ("f64.npy", bionpy::npy_bytes(&[3, 2], &f64_values).unwrap()),
        ("i64.npy", bionpy::npy_bytes(&[3, 2], &i64_values).unwrap()),
    ];
    for (name, bytes) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let m = MaskSpec::matrix_npy(&path)
            .dense(3, 2, Layout::Keras, &mut Rng::seeded(0))
            .unwrap();
        assert_eq!(m.keras_values(), expected, "{name}");
        assert!(m.is_binary());
        assert_eq!(MatrixMask::npy(&path).path(), Some(path.as_path()));
    }
    // A missing file and a file that is no .npy name the path.
    let missing = dir.path().join("missing.npy");
    let e = MaskSpec::matrix_npy(&missing)
        .dense(3, 2, Layout::Keras, &mut Rng::seeded(0))
        .unwrap_err();
    assert!(
        matches!(&e, Error::Npy { path, .. } if path.contains("missing.npy")),
        "{e:?}"
    );
    let junk = dir.path().join("junk.npy");
    std::fs::write(&junk, b"not an array").unwrap();
    let e = MaskSpec::matrix_npy(&junk)
        .dense(3, 2, Layout::Keras, &mut Rng::seeded(0))
        .unwrap_err();
    assert!(e.to_string().contains("junk.npy"), "{e}");
    // A file holding NaN is refused when the layer is built.
    let nan = dir.path().join("nan.npy");
    std::fs::write(&nan, bionpy::npy_bytes(&[1, 2], &[1.0f32, f32::NAN]).unwrap()).unwrap();
    let (name, value) = err_param(
        MaskSpec::matrix_npy(&nan)
            .dense(1, 2, Layout::Keras, &mut Rng::seeded(0))
            .unwrap_err(),
    );
    assert_eq!((name, value.as_str()), ("values", "NaN at [0, 1]"));
    // The written mask reads back as the same mask (uint8 for binary).
    let m = MaskSpec::matrix(expected.clone(), 3, 2)
        .unwrap()
        .dense(3, 2, Layout::Keras, &mut Rng::seeded(0))
        .unwrap();
    let out = dir.path().join("out.npy");
    m.write_npy(&out, Layout::Keras).unwrap();
    let again = MaskSpec::matrix_npy(&out)
        .dense(3, 2, Layout::Keras, &mut Rng::seeded(0))
        .unwrap();
    assert_eq!(again.keras_values(), m.keras_values());
}
