//! Errors, serde, layouts and the counters of `Mask`.

use biomask::{Error, LayerKind, Layout, MaskForm, MaskSpec, Rng};

fn err_param(e: Error) -> &'static str {
    match e {
        Error::InvalidParameter { name, .. } => name,
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

#[test]
fn unknown_form_is_a_typed_error() {
    let e = "striping".parse::<MaskForm>().unwrap_err();
    assert_eq!(e, Error::UnknownForm("striping".into()));
    assert!(e.to_string().contains("striping"));
    let e = serde_json::from_str::<MaskSpec>(r#"{"form": "striping"}"#).unwrap_err();
    assert!(e.to_string().contains("striping"), "{e}");
    for f in MaskForm::ALL {
        assert_eq!(f.name().parse::<MaskForm>().unwrap(), f);
    }
}

#[test]
fn bad_parameters_name_the_parameter() {
    let mut rng = Rng::seeded(0);
    let mut build = |s: MaskSpec, nx, ny| s.dense(nx, ny, Layout::Keras, &mut rng).unwrap_err();
    assert_eq!(err_param(build(MaskSpec::diagonal(1.5), 8, 8)), "param_reduction");
    assert_eq!(err_param(build(MaskSpec::diagonal(-0.1), 8, 8)), "param_reduction");
    assert_eq!(err_param(build(MaskSpec::diagonal(f64::NAN), 8, 8)), "param_reduction");
    assert_eq!(
        err_param(build(MaskSpec::Random { param_reduction: 2.0 }, 8, 8)),
        "param_reduction"
    );
    assert_eq!(
        err_param(build(
            MaskSpec::Diagonal {
                param_reduction: 0.5,
                halfbandwidth: -1.0
            },
            8,
            8
        )),
        "halfbandwidth"
    );
    assert_eq!(
        err_param(build(
            MaskSpec::Gaussian {
                param_reduction: 0.5,
                halfbandwidth: f64::INFINITY
            },
            8,
            8
        )),
        "halfbandwidth"
    );
    assert_eq!(err_param(build(MaskSpec::two_d(0, 4, 0.5), 16, 16)), "input2d_width");
    assert_eq!(err_param(build(MaskSpec::two_d(4, 0, 0.5), 16, 16)), "output2d_width");
    assert_eq!(err_param(build(MaskSpec::two_d(4, 4, 0.0), 16, 16)), "window2d_width");
    assert_eq!(
        err_param(build(MaskSpec::two_d(4, 4, f64::NAN), 16, 16)),
        "window2d_width"
    );
    // Upstream divides by zero here.
    assert_eq!(err_param(build(MaskSpec::two_d(17, 4, 0.5), 16, 16)), "input2d_width");
    // Upstream silently builds an all-zero, dead layer here.
    assert_eq!(err_param(build(MaskSpec::two_d(4, 17, 0.5), 16, 16)), "output2d_width");
    assert!(matches!(build(MaskSpec::Full, 0, 4), Error::InvalidShape(_)));
}

#[test]
fn forms_undefined_for_conv_are_errors_not_zero_masks() {
    let conv = LayerKind::Conv { kernel: (3, 3) };
    for spec in [
        MaskSpec::Random { param_reduction: 0.5 },
        MaskSpec::Gaussian {
            param_reduction: 0.5,
            halfbandwidth: 0.0,
        },
    ] {
        let e = spec.build(conv, 8, 8, Layout::Keras, &mut Rng::seeded(0)).unwrap_err();
        assert!(matches!(e, Error::UnsupportedForm { .. }), "{e:?}");
    }
    let e = MaskSpec::Full
        .conv(10, 4, 3, (3, 3), Layout::Keras, &mut Rng::seeded(0))
        .unwrap_err();
    assert_eq!(err_param(e), "in_channels");
}

#[test]
fn serde_round_trip_json_and_toml() {
    let specs = [
        MaskSpec::Full,
        MaskSpec::diagonal(0.7),
        MaskSpec::Gaussian {
            param_reduction: 0.3,
            halfbandwidth: 2.5,
        },
        MaskSpec::Random { param_reduction: 0.2 },
        MaskSpec::Individual { param_reduction: 0.2 },
        MaskSpec::Kernel { param_reduction: 0.4 },
        MaskSpec::two_d(32, 16, 0.4),
    ];
    for s in specs {
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<MaskSpec>(&json).unwrap(), s, "{json}");
        let t = toml::to_string(&s).unwrap();
        assert_eq!(toml::from_str::<MaskSpec>(&t).unwrap(), s, "{t}");
    }
    let two_d: MaskSpec =
        toml::from_str("form = \"2d\"\ninput2d_width = 32\noutput2d_width = 16\nwindow2d_width = 0.4").unwrap();
    assert_eq!(two_d, MaskSpec::two_d(32, 16, 0.4));
    // Defaults are the originals'.
    assert_eq!(
        serde_json::from_str::<MaskSpec>(r#"{"form":"diagonal"}"#).unwrap(),
        MaskSpec::diagonal(0.5)
    );
    assert_eq!(
        serde_json::from_str::<MaskSpec>(r#"{"form":"2d"}"#).unwrap(),
        MaskSpec::two_d(10, 10, 1.41)
    );
    // Unknown field names are rejected.
    let e = serde_json::from_str::<MaskSpec>(r#"{"form":"diagonal","param_reductoin":0.3}"#).unwrap_err();
    assert!(e.to_string().contains("param_reductoin"), "{e}");
}

#[test]
fn counters_follow_upstream_definitions() {
    let m = MaskSpec::diagonal(0.5)
        .dense(64, 32, Layout::Keras, &mut Rng::seeded(0))
        .unwrap();
    assert_eq!((m.num_ones(), m.num_weights(), m.num_zeros()), (1034, 2048, 1014));
    assert_eq!(m.w_corr(), 2048.0 / 1034.0);
    assert_eq!(m.reduced_ratio(), 1.0 - 1034.0 / 2048.0);
    let h = 64.0 * 32.0 / ((64.0f64 * 64.0 + 32.0 * 32.0).sqrt()) * (1.0 - 0.5f64.sqrt());
    assert_eq!(m.halfbandwidth(), h);
    // A given halfbandwidth overrides the computed one.
    let m = MaskSpec::Diagonal {
        param_reduction: 0.5,
        halfbandwidth: 3.0,
    }
    .dense(64, 32, Layout::Keras, &mut Rng::seeded(0))
    .unwrap();
    assert_eq!(m.halfbandwidth(), 3.0);
    // Gaussian: h scaled by 1.5, w_corr 1, density = mean of the raw window.
    let g = MaskSpec::Gaussian {
        param_reduction: 0.5,
        halfbandwidth: 0.0,
    }
    .dense(64, 32, Layout::Keras, &mut Rng::seeded(0))
    .unwrap();
    assert_eq!(g.halfbandwidth(), 1.5 * h);
    assert_eq!(g.w_corr(), 1.0);
    assert!(!g.is_binary());
    assert!(g.density() > 0.3 && g.density() < 0.9, "{}", g.density());
}

#[test]
fn conv_shapes_groups_and_transposed_convention() {
    let mut rng = Rng::seeded(0);
    // Conv: nx = in/groups.
    let m = MaskSpec::diagonal(0.5)
        .conv(64, 32, 2, (3, 5), Layout::Keras, &mut rng)
        .unwrap();
    assert_eq!((m.nx(), m.ny(), m.kernel_size()), (32, 32, (3, 5)));
    assert_eq!(m.shape(Layout::Keras), vec![3, 5, 32, 32]);
    assert_eq!(m.shape(Layout::Torch), vec![32, 32, 3, 5]);
    assert_eq!(m.num_weights(), 3 * 5 * 32 * 32);
    // Transposed conv in -> out: nx = out channels, ny = in channels; mask equals a forward conv
    // from out to in channels.
    let t = MaskSpec::two_d(8, 4, 0.5)
        .conv_transpose(16, 64, 1, (4, 4), Layout::Torch, &mut rng)
        .unwrap();
    let f = MaskSpec::two_d(8, 4, 0.5)
        .conv(64, 16, 1, (4, 4), Layout::Torch, &mut rng)
        .unwrap();
    assert_eq!((t.nx(), t.ny()), (64, 16));
    assert_eq!(t.keras_values(), f.keras_values());
    // PyTorch layout (ny, nx, kh, kw) = ConvTranspose2d weight (in, out/groups, kh, kw).
    assert_eq!(t.shape(Layout::Torch), vec![16, 64, 4, 4]);
    let torch = t.to_layout(Layout::Torch);
    let keras = t.to_layout(Layout::Keras);
    for (y, x, i, j) in [(3, 10, 1, 2), (15, 63, 3, 3), (0, 0, 0, 0)] {
        assert_eq!(
            torch[((y * 64 + x) * 4 + i) * 4 + j],
            keras[((i * 4 + j) * 64 + x) * 16 + y]
        );
    }
}

#[test]
fn individual_conv_is_independent_per_tap_and_kernel_is_not() {
    let mut rng = Rng::numpy(0);
    let ind = MaskSpec::Individual { param_reduction: 0.5 }
        .conv(16, 16, 1, (3, 3), Layout::Keras, &mut rng)
        .unwrap();
    assert!(!ind.is_shared_across_taps());
    let differs = (0..16).any(|x| (0..16).any(|y| ind.get(0, 0, x, y) != ind.get(2, 1, x, y)));
    assert!(differs, "taps of an individual mask should differ");
    let ker = MaskSpec::Kernel { param_reduction: 0.5 }
        .conv(16, 16, 1, (3, 3), Layout::Keras, &mut rng)
        .unwrap();
    assert!(ker.is_shared_across_taps());
    assert!(ker.density() > 0.2 && ker.density() < 0.8);
}

#[test]
fn npy_export_is_c_order_uint8_or_float32() {
    let dir = std::env::temp_dir().join(format!("biomask-npy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let m = MaskSpec::diagonal(0.5)
        .dense(64, 32, Layout::Keras, &mut Rng::seeded(0))
        .unwrap();
    let p = dir.join("m.npy");
    m.write_npy(&p, Layout::Torch).unwrap();
    let back: bionpy::NpyArray<u8> = bionpy::read_npy(&p).unwrap();
    assert_eq!(back.shape, vec![32, 64]);
    assert_eq!(back.data.iter().map(|&v| usize::from(v)).sum::<usize>(), 1034);
    let g = MaskSpec::Gaussian {
        param_reduction: 0.5,
        halfbandwidth: 0.0,
    }
    .dense(8, 4, Layout::Keras, &mut Rng::seeded(0))
    .unwrap();
    g.write_npy(&p, Layout::Keras).unwrap();
    let back: bionpy::NpyArray<f32> = bionpy::read_npy(&p).unwrap();
    assert_eq!(back.shape, vec![8, 4]);
    assert_eq!(back.data, g.keras_values());
    std::fs::remove_dir_all(&dir).unwrap();
}
