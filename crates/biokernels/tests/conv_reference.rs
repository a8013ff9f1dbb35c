//! The convolutions against a naive f64 direct convolution: many geometries (stride 1/2/3,
//! valid/same/explicit padding, dilation 1/2, groups 1/2/3/4, odd sizes, 1×1 kernels,
//! batch 1/2/3), unmasked and masked (biomask diagonal r = 0.5, 2d, per-tap `individual`);
//! adjoint identities for the backward passes; the transposed convolution against PyTorch's
//! `ConvTranspose2d` definition and against `conv2d_backward_input` of its adjoint convolution;
//! `dW` exactly 0 off the mask; thread-count independence; typed errors; a proptest over random
//! geometries.

use biokernels::conv::{
    conv2d, conv2d_backward_bias, conv2d_backward_input, conv2d_backward_weight, conv_transpose2d,
    conv_transpose2d_backward_bias, conv_transpose2d_backward_input, conv_transpose2d_backward_weight, Conv2dGeometry,
    ConvMask, ConvTranspose2dGeometry, Padding,
};
use biokernels::{Error, TileSize};
use biomask::{Layout, MaskSpec, Rng};
use proptest::prelude::*;

mod conv_support;
use conv_support::*;

fn check_conv(geom: &Conv2dGeometry, form: Form, tile: TileSize, seed: u64) {
    let ctx = format!("{geom:?} {form:?} tile {tile:?}");
    let d = direct_conv(geom);
    assert_eq!(geom.output_hw().unwrap(), (d.oh, d.ow), "{ctx}: output size");
    let (mask, mvals) = conv_mask(geom, form, tile);
    let m = mask.as_ref();
    let x = values(geom.input_len(), seed);
    let w = values(geom.weight_len(), seed + 1);
    let bias = values(geom.out_channels, seed + 2);
    let ylen = geom.output_len().unwrap();
    let dy = values(ylen, seed + 3);
    let wm = masked(&w, &mvals);

    let mut y = vec![f32::NAN; ylen];
    conv2d(geom, &x, &w, m, Some(&bias), &mut y).unwrap();
    assert_close(&format!("{ctx}: y"), &y, &d.forward(&x, &wm, Some(&bias)));

    let mut y0 = vec![f32::NAN; ylen];
    conv2d(geom, &x, &w, m, None, &mut y0).unwrap();
    assert_close(&format!("{ctx}: y (no bias)"), &y0, &d.forward(&x, &wm, None));

    let mut dx = vec![f32::NAN; x.len()];
    conv2d_backward_input(geom, &dy, &w, m, &mut dx).unwrap();
    assert_close(&format!("{ctx}: dx"), &dx, &d.backward_input(&dy, &wm));

    let mut dw = vec![f32::NAN; w.len()];
    conv2d_backward_weight(geom, &x, &dy, m, &mut dw).unwrap();
    assert_close(&format!("{ctx}: dw"), &dw, &d.backward_weight(&x, &dy, &mvals));
    for (idx, (&g, &mv)) in dw.iter().zip(&mvals).enumerate() {
        if mv == 0.0 {
            assert!(g == 0.0 && g.is_sign_positive(), "{ctx}: dw[{idx}] = {g} off the mask");
        }
    }

    let mut db = vec![f32::NAN; geom.out_channels];
    conv2d_backward_bias(geom, &dy, &mut db).unwrap();
    let per = d.oh * d.ow;
    for (o, &got) in db.iter().enumerate() {
        let (mut want, mut s) = (0f64, 0f64);
        for n in 0..geom.batch {
            for v in &dy[(n * geom.out_channels + o) * per..][..per] {
                want += f64::from(*v);
                s += f64::from(v.abs());
            }
        }
        assert!(
            (f64::from(got) - want).abs() <= 1e-6 * s + 1e-6,
            "{ctx}: db[{o}] {got} vs {want}"
        );
    }

    // Adjoint identities in f64: <conv(x), dy> = <x, dX(dy)> = <W, dW(x, dy)>.
    let (a, sa) = dot(&y0, &dy);
    let (b, _) = dot(&x, &dx);
    let (c, _) = dot(&w, &dw);
    assert!(
        (a - b).abs() <= 1e-5 * sa + 1e-6,
        "{ctx}: <y, dy> = {a} but <x, dx> = {b}"
    );
    assert!(
        (a - c).abs() <= 1e-5 * sa + 1e-6,
        "{ctx}: <y, dy> = {a} but <w, dw> = {c}"
    );

    // Masked-off weights are structural zeros: NaN there changes nothing.
    if form != Form::None {
        let wn: Vec<f32> = w
            .iter()
            .zip(&mvals)
            .map(|(&v, &mv)| if mv == 0.0 { f32::NAN } else { v })
            .collect();
        let mut yn = vec![0f32; ylen];
        conv2d(geom, &x, &wn, m, Some(&bias), &mut yn).unwrap();
        assert_eq!(yn, y, "{ctx}: NaN off the mask reached y");
        let mut dxn = vec![0f32; x.len()];
        conv2d_backward_input(geom, &dy, &wn, m, &mut dxn).unwrap();
        assert_eq!(dxn, dx, "{ctx}: NaN off the mask reached dx");
    }
}

fn check_transpose(geom: &ConvTranspose2dGeometry, form: Form, tile: TileSize, seed: u64) {
    let ctx = format!("{geom:?} {form:?} tile {tile:?}");
    let d = direct_transpose(geom);
    assert_eq!(geom.output_hw().unwrap(), (d.h, d.w), "{ctx}: output size");
    let (mask, mvals) = transpose_mask(geom, form, tile);
    let m = mask.as_ref();
    let x = values(geom.input_len(), seed);
    let w = values(geom.weight_len(), seed + 1);
    let bias = values(geom.out_channels, seed + 2);
    let ylen = geom.output_len().unwrap();
    let dy = values(ylen, seed + 3);
    let wm = masked(&w, &mvals);

    // Forward: the scatter of the definition, plus the bias per output channel.
    let mut y = vec![f32::NAN; ylen];
    conv_transpose2d(geom, &x, &w, m, Some(&bias), &mut y).unwrap();
    let (mut want, mut s) = d.backward_input(&x, &wm);
    for (idx, (v, sv)) in want.iter_mut().zip(s.iter_mut()).enumerate() {
        let b = f64::from(bias[(idx / (d.h * d.w)) % geom.out_channels]);
        *v += b;
        *sv += b.abs();
    }
    assert_close(&format!("{ctx}: y"), &y, &(want, s));

    let mut y0 = vec![f32::NAN; ylen];
    conv_transpose2d(geom, &x, &w, m, None, &mut y0).unwrap();

    let mut dx = vec![f32::NAN; x.len()];
    conv_transpose2d_backward_input(geom, &dy, &w, m, &mut dx).unwrap();
    assert_close(&format!("{ctx}: dx"), &dx, &d.forward(&dy, &wm, None));

    let mut dw = vec![f32::NAN; w.len()];
    conv_transpose2d_backward_weight(geom, &x, &dy, m, &mut dw).unwrap();
    assert_close(&format!("{ctx}: dw"), &dw, &d.backward_weight(&dy, &x, &mvals));
    for (idx, (&g, &mv)) in dw.iter().zip(&mvals).enumerate() {
        if mv == 0.0 {
            assert!(g == 0.0 && g.is_sign_positive(), "{ctx}: dw[{idx}] = {g} off the mask");
        }
    }

    let mut db = vec![f32::NAN; geom.out_channels];
    conv_transpose2d_backward_bias(geom, &dy, &mut db).unwrap();
    let per = d.h * d.w;
    for (o, &got) in db.iter().enumerate() {
        let want: f64 = (0..geom.batch)
            .flat_map(|n| dy[(n * geom.out_channels + o) * per..][..per].iter())
            .map(|&v| f64::from(v))
            .sum();
        assert!(
            (f64::from(got) - want).abs() <= 1e-5 * (per * geom.batch) as f64,
            "{ctx}: db[{o}]"
        );
    }

    let (a, sa) = dot(&y0, &dy);
    let (b, _) = dot(&x, &dx);
    let (c, _) = dot(&w, &dw);
    assert!(
        (a - b).abs() <= 1e-5 * sa + 1e-6,
        "{ctx}: <y, dy> = {a} but <x, dx> = {b}"
    );
    assert!(
        (a - c).abs() <= 1e-5 * sa + 1e-6,
        "{ctx}: <y, dy> = {a} but <w, dw> = {c}"
    );

    // The transposed forward is the adjoint convolution's input gradient, same weights. That
    // convolution exists unless the rows past the full output (output padding, or what `Same`
    // adds when the kernel is shorter than the stride) exceed the end padding + stride - 1.
    let (ph, pw, same) = axes(geom.padding);
    let exists = |size: usize, k: usize, s: usize, d: usize, op: usize, pad: Option<(usize, usize)>| {
        let full = (size - 1) * s + d * (k - 1) + 1;
        let (end, extra) = if same {
            let out = size * s + op;
            let total = full.saturating_sub(out);
            (total - total / 2, out.saturating_sub(full))
        } else {
            (pad.map_or(0, |p| p.1), op)
        };
        extra < end + s
    };
    let expect_adjoint = exists(
        geom.in_h,
        geom.kernel.0,
        geom.stride.0,
        geom.dilation.0,
        geom.output_padding.0,
        ph,
    ) && exists(
        geom.in_w,
        geom.kernel.1,
        geom.stride.1,
        geom.dilation.1,
        geom.output_padding.1,
        pw,
    );
    match geom.adjoint_conv() {
        Ok(conv) => {
            assert!(expect_adjoint, "{ctx}: unexpected adjoint {conv:?}");
            assert_eq!(conv.input_shape(), [geom.batch, geom.out_channels, d.h, d.w], "{ctx}");
            assert_eq!(conv.output_shape().unwrap(), geom.input_shape(), "{ctx}");
            assert_eq!(conv.weight_shape(), geom.weight_shape(), "{ctx}");
            assert_eq!(conv.mask_dims(), geom.mask_dims(), "{ctx}");
            let mut via_conv = vec![f32::NAN; ylen];
            conv2d_backward_input(&conv, &x, &w, m, &mut via_conv).unwrap();
            assert_eq!(
                via_conv, y0,
                "{ctx}: conv_transpose2d != conv2d_backward_input of {conv:?}"
            );
            let mut fwd = vec![f32::NAN; x.len()];
            conv2d(&conv, &dy, &w, m, None, &mut fwd).unwrap();
            assert_eq!(fwd, dx, "{ctx}: conv_transpose2d_backward_input != conv2d of {conv:?}");
            let mut dw_conv = vec![f32::NAN; w.len()];
            conv2d_backward_weight(&conv, &dy, &x, m, &mut dw_conv).unwrap();
            assert_eq!(
                dw_conv, dw,
                "{ctx}: conv_transpose2d_backward_weight != conv2d_backward_weight"
            );
        }
        Err(e) => {
            assert!(!expect_adjoint, "{ctx}: adjoint_conv failed: {e}");
            assert!(matches!(e, Error::ConvGeometry { .. }), "{ctx}: {e:?}");
        }
    }
}

fn conv_cases() -> Vec<Conv2dGeometry> {
    let e = |top, bottom, left, right| Padding::Explicit {
        top,
        bottom,
        left,
        right,
    };
    vec![
        Conv2dGeometry::new(1, 3, (5, 5), 4, (3, 3)),
        Conv2dGeometry::new(3, 4, (7, 6), 8, (3, 3))
            .with_stride((2, 2))
            .with_padding(Padding::Same)
            .with_groups(2),
        Conv2dGeometry::new(2, 8, (9, 7), 8, (3, 2))
            .with_stride((1, 2))
            .with_padding(e(1, 2, 0, 1))
            .with_dilation((2, 1))
            .with_groups(4),
        Conv2dGeometry::new(1, 5, (6, 6), 3, (1, 1)),
        Conv2dGeometry::new(3, 6, (5, 8), 4, (2, 3))
            .with_stride((2, 1))
            .with_padding(Padding::Same)
            .with_dilation((2, 2))
            .with_groups(2),
        Conv2dGeometry::new(2, 16, (8, 8), 32, (3, 3)).with_padding(Padding::Same),
        Conv2dGeometry::new(1, 4, (4, 4), 4, (5, 5)).with_padding(Padding::symmetric(2)),
        Conv2dGeometry::new(3, 2, (11, 3), 6, (3, 1))
            .with_stride((3, 1))
            .with_padding(Padding::Same)
            .with_groups(2),
        Conv2dGeometry::new(2, 4, (6, 5), 4, (1, 1))
            .with_stride((2, 2))
            .with_groups(4),
        Conv2dGeometry::new(1, 4, (10, 10), 8, (3, 3))
            .with_stride((2, 2))
            .with_padding(Padding::symmetric(1))
            .with_dilation((2, 2)),
        Conv2dGeometry::new(2, 3, (4, 4), 2, (4, 4)).with_padding(Padding::Same),
        Conv2dGeometry::new(1, 2, (1, 1), 3, (3, 3)).with_padding(Padding::Same),
    ]
}

fn transpose_cases() -> Vec<ConvTranspose2dGeometry> {
    vec![
        ConvTranspose2dGeometry::new(1, 4, (3, 3), 2, (3, 3))
            .with_stride((2, 2))
            .with_padding(Padding::symmetric(1))
            .with_output_padding((1, 1)),
        ConvTranspose2dGeometry::new(3, 8, (4, 5), 4, (3, 3))
            .with_stride((2, 2))
            .with_padding(Padding::Same)
            .with_groups(2),
        ConvTranspose2dGeometry::new(2, 4, (3, 4), 8, (2, 2))
            .with_stride((2, 2))
            .with_groups(4),
        ConvTranspose2dGeometry::new(1, 6, (5, 5), 3, (3, 2))
            .with_stride((1, 2))
            .with_padding(Padding::Explicit {
                top: 0,
                bottom: 1,
                left: 2,
                right: 0,
            })
            .with_output_padding((0, 1))
            .with_dilation((2, 1)),
        ConvTranspose2dGeometry::new(2, 4, (4, 4), 4, (1, 1))
            .with_stride((3, 3))
            .with_output_padding((2, 2))
            .with_groups(2),
        ConvTranspose2dGeometry::new(1, 16, (4, 4), 16, (3, 3))
            .with_stride((2, 2))
            .with_padding(Padding::Same)
            .with_output_padding((1, 1)),
        ConvTranspose2dGeometry::new(2, 3, (5, 4), 6, (3, 3))
            .with_output_padding((1, 1))
            .with_dilation((2, 2))
            .with_groups(3),
        ConvTranspose2dGeometry::new(3, 5, (3, 2), 7, (4, 3))
            .with_stride((2, 3))
            .with_padding(Padding::Same)
            .with_dilation((1, 2)),
    ]
}

#[test]
fn conv2d_matches_direct_reference() {
    for (ci, geom) in conv_cases().iter().enumerate() {
        for form in FORMS {
            check_conv(geom, form, TileSize::square(4), 10 * ci as u64);
        }
    }
}

#[test]
fn conv2d_with_default_tiles_and_a_full_mask() {
    for (ci, geom) in conv_cases().iter().enumerate() {
        check_conv(geom, Form::Diagonal, TileSize::CPU_DEFAULT, 100 + ci as u64);
        // An all-ones ConvMask runs the masked kernels and must agree with the dense path.
        let mask = ConvMask::full(
            geom.kernel,
            geom.in_channels / geom.groups,
            geom.out_channels,
            geom.groups,
            TileSize::new(3, 5),
        )
        .unwrap();
        let x = values(geom.input_len(), 7);
        let w = values(geom.weight_len(), 8);
        let mut a = vec![0f32; geom.output_len().unwrap()];
        let mut b = a.clone();
        conv2d(geom, &x, &w, Some(&mask), None, &mut a).unwrap();
        conv2d(geom, &x, &w, None, None, &mut b).unwrap();
        assert_eq!(a, b, "{geom:?}");
    }
}

#[test]
fn conv_transpose2d_matches_direct_reference() {
    for (ci, geom) in transpose_cases().iter().enumerate() {
        for form in FORMS {
            check_transpose(geom, form, TileSize::square(4), 1000 + 10 * ci as u64);
        }
        check_transpose(geom, Form::Diagonal, TileSize::CPU_DEFAULT, 2000 + ci as u64);
    }
}

#[test]
fn masks_keep_their_empty_tiles() {
    // A band channel mask repeated over 3×3 taps still has empty tiles to skip.
    let m = MaskSpec::diagonal(0.5)
        .conv(64, 64, 1, (3, 3), Layout::Keras, &mut Rng::seeded(0))
        .unwrap();
    let cm = ConvMask::from_mask(&m, 1, TileSize::CPU_DEFAULT).unwrap();
    assert_eq!(cm.maps().len(), 1);
    assert_eq!(cm.maps()[0].shape(), [9 * 64, 64]);
    assert_eq!(cm.num_ones(), m.num_ones());
    assert!(cm.maps()[0].num_empty() > 0);
    // 64 channels fill whole 16-row tiles, so every tap has the channel mask's tile structure.
    let channel = biokernels::TileMap::from_mask(&m, TileSize::CPU_DEFAULT).unwrap();
    assert!(channel.work_fraction() < 1.0);
    assert!((cm.work_fraction() - channel.work_fraction()).abs() < 1e-12);
    assert_eq!(cm.maps()[0].num_empty(), 9 * channel.num_empty());
    let values: Vec<f32> = cm.to_keras_values();
    assert_eq!(values, m.keras_values());
    // Groups split the output channels.
    let m = MaskSpec::Individual { param_reduction: 0.5 }
        .conv(8, 12, 4, (2, 3), Layout::Keras, &mut Rng::seeded(0))
        .unwrap();
    let cm = ConvMask::from_mask(&m, 4, TileSize::square(4)).unwrap();
    assert_eq!(cm.dims(), [2, 3, 2, 12, 4]);
    assert_eq!(cm.maps().len(), 4);
    assert!(cm.maps().iter().all(|t| t.shape() == [12, 3]));
    for i in 0..2 {
        for j in 0..3 {
            for x in 0..2 {
                for y in 0..12 {
                    assert_eq!(cm.get(i, j, x, y), m.get(i, j, x, y) == Some(1.0));
                }
            }
        }
    }
}

#[test]
fn output_sizes_follow_keras_and_pytorch() {
    // Keras Conv2D "same": ceil(in / s); "valid": ceil((in - keff + 1) / s).
    for (h, k, s, d) in [(7, 3, 2, 1), (8, 3, 2, 1), (9, 2, 3, 2), (5, 5, 1, 1), (1, 3, 1, 1)] {
        let same = Conv2dGeometry::new(1, 1, (h, h), 1, (k, k))
            .with_stride((s, s))
            .with_dilation((d, d))
            .with_padding(Padding::Same);
        assert_eq!(same.output_hw().unwrap(), (h.div_ceil(s), h.div_ceil(s)));
        let keff = d * (k - 1) + 1;
        let valid = Conv2dGeometry {
            padding: Padding::Valid,
            ..same
        };
        if h >= keff {
            let o = (h - keff + 1).div_ceil(s);
            assert_eq!(valid.output_hw().unwrap(), (o, o));
        } else {
            assert!(matches!(valid.output_hw(), Err(Error::ConvGeometry { .. })));
        }
    }
    // Keras same padding puts the odd pixel at the bottom/right.
    let g = Conv2dGeometry::new(1, 1, (8, 8), 1, (4, 4)).with_padding(Padding::Same);
    assert_eq!(g.padding_amounts().unwrap(), (1, 2, 1, 2));
    // Keras Conv2DTranspose without output_padding: same -> in·s, valid -> in·s + max(keff - s, 0).
    for (h, k, s, d) in [(4, 3, 2, 1), (5, 2, 2, 1), (3, 1, 3, 1), (4, 3, 1, 2), (6, 5, 2, 1)] {
        let keff = d * (k - 1) + 1;
        let same = ConvTranspose2dGeometry::new(1, 1, (h, h), 1, (k, k))
            .with_stride((s, s))
            .with_dilation((d, d))
            .with_padding(Padding::Same);
        assert_eq!(same.output_hw().unwrap(), (h * s, h * s));
        let op = s.saturating_sub(keff);
        let valid = ConvTranspose2dGeometry {
            padding: Padding::Valid,
            output_padding: (op, op),
            ..same
        };
        let o = h * s + keff.saturating_sub(s);
        assert_eq!(valid.output_hw().unwrap(), (o, o), "h {h} k {k} s {s} d {d}");
    }
    // PyTorch ConvTranspose2d: (in - 1)·s - 2p + d(k - 1) + op + 1.
    let t = ConvTranspose2dGeometry::new(1, 1, (5, 7), 1, (3, 4))
        .with_stride((2, 3))
        .with_padding(Padding::symmetric(1))
        .with_output_padding((1, 2))
        .with_dilation((2, 1));
    assert_eq!(
        t.output_hw().unwrap(),
        (4 * 2 - 2 + 2 * 2 + 1 + 1, 6 * 3 - 2 + 3 + 2 + 1)
    );
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let geom = Conv2dGeometry::new(3, 8, (9, 9), 16, (3, 3))
        .with_padding(Padding::Same)
        .with_groups(2);
    let (mask, _) = conv_mask(&geom, Form::Diagonal, TileSize::square(4));
    let x = values(geom.input_len(), 1);
    let w = values(geom.weight_len(), 2);
    let dy = values(geom.output_len().unwrap(), 3);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut y = vec![0f32; dy.len()];
            conv2d(&geom, &x, &w, mask.as_ref(), None, &mut y).unwrap();
            let mut dx = vec![0f32; x.len()];
            conv2d_backward_input(&geom, &dy, &w, mask.as_ref(), &mut dx).unwrap();
            let mut dw = vec![0f32; w.len()];
            conv2d_backward_weight(&geom, &x, &dy, mask.as_ref(), &mut dw).unwrap();
            (y, dx, dw)
        })
    };
    let one = run(1);
    for t in [2, 3, 5] {
        assert!(run(t) == one, "{t} threads differ from 1");
    }
}

#[test]
fn typed_errors() {
    let g = Conv2dGeometry::new(2, 4, (6, 6), 8, (3, 3));
    let x = vec![0f32; g.input_len()];
    let w = vec![0f32; g.weight_len()];
    let mut y = vec![0f32; g.output_len().unwrap()];
    // Buffers.
    let err = conv2d(&g, &x[1..], &w, None, None, &mut y).unwrap_err();
    assert_eq!(
        err,
        Error::ConvBuffer {
            op: "conv2d",
            name: "x",
            shape: vec![2, 4, 6, 6],
            expected: 288,
            got: 287
        }
    );
    assert!(err.to_string().contains("conv2d") && err.to_string().contains("[2, 4, 6, 6]"));
    assert!(matches!(
        conv2d(&g, &x, &w, None, Some(&[0.0; 7]), &mut y),
        Err(Error::ConvBuffer { name: "bias", .. })
    ));
    assert!(matches!(
        conv2d(&g, &x, &w, None, None, &mut y[1..]),
        Err(Error::ConvBuffer { name: "y", .. })
    ));
    assert!(matches!(
        conv2d_backward_weight(&g, &x, &y, None, &mut [0.0; 3]),
        Err(Error::ConvBuffer {
            op: "conv2d_backward_weight",
            name: "dw",
            ..
        })
    ));
    assert!(matches!(
        conv2d_backward_input(&g, &y[2..], &w, None, &mut x.clone()),
        Err(Error::ConvBuffer { name: "dy", .. })
    ));
    assert!(matches!(
        conv2d_backward_bias(&g, &y, &mut [0.0; 3]),
        Err(Error::ConvBuffer { name: "db", .. })
    ));
    // Geometry.
    for bad in [
        Conv2dGeometry { stride: (0, 1), ..g },
        Conv2dGeometry { dilation: (1, 0), ..g },
        Conv2dGeometry { groups: 3, ..g },
        Conv2dGeometry { groups: 0, ..g },
        Conv2dGeometry { in_h: 0, ..g },
        Conv2dGeometry { kernel: (7, 3), ..g },
        Conv2dGeometry { dilation: (3, 1), ..g },
        Conv2dGeometry {
            batch: usize::MAX / 2,
            ..g
        },
        Conv2dGeometry {
            in_h: usize::MAX,
            padding: Padding::symmetric(1),
            ..g
        },
        Conv2dGeometry {
            kernel: (usize::MAX, 1),
            dilation: (2, 1),
            ..g
        },
        Conv2dGeometry {
            padding: Padding::symmetric(usize::MAX / 4),
            ..g
        },
        Conv2dGeometry {
            padding: Padding::symmetric(usize::MAX / 2),
            ..g
        },
        Conv2dGeometry {
            stride: (usize::MAX, 1),
            in_h: usize::MAX / 2,
            batch: 1,
            ..g
        },
    ] {
        assert!(
            matches!(bad.validate(), Err(Error::ConvGeometry { op: "conv2d", .. })),
            "{bad:?}: {:?}",
            bad.validate()
        );
        assert!(matches!(
            conv2d(&bad, &x, &w, None, None, &mut y),
            Err(Error::ConvGeometry { .. })
        ));
    }
    // Masks built for another layer.
    let other = ConvMask::full((3, 3), 4, 4, 1, TileSize::CPU_DEFAULT).unwrap();
    assert_eq!(
        conv2d(&g, &x, &w, Some(&other), None, &mut y),
        Err(Error::ConvMaskMismatch {
            op: "conv2d",
            expected: [3, 3, 4, 8, 1],
            got: [3, 3, 4, 4, 1]
        })
    );
    assert!(matches!(
        ConvMask::full((3, 3), 4, 6, 4, TileSize::CPU_DEFAULT),
        Err(Error::ConvGeometry { .. })
    ));
    assert!(matches!(
        ConvMask::from_values(&[0.0, 0.5], (1, 1), 1, 2, 1, TileSize::CPU_DEFAULT),
        Err(Error::NonBinaryMask { row: 0, col: 1, .. })
    ));
    assert!(matches!(
        ConvMask::from_values(&[0.0; 3], (1, 1), 1, 2, 1, TileSize::CPU_DEFAULT),
        Err(Error::BufferSize { .. })
    ));
    // Transposed: output padding and padding that removes the output.
    let t = ConvTranspose2dGeometry::new(1, 2, (3, 3), 2, (3, 3)).with_stride((2, 2));
    assert!(t.validate().is_ok());
    for bad in [
        t.with_output_padding((2, 0)),
        t.with_padding(Padding::symmetric(4)),
        t.with_groups(4),
        t.with_stride((0, 1)),
        t.with_stride((usize::MAX / 2, 1)).with_dilation((3, 1)),
        ConvTranspose2dGeometry {
            in_h: usize::MAX / 2,
            ..t
        },
    ] {
        assert!(
            matches!(
                bad.validate(),
                Err(Error::ConvGeometry {
                    op: "conv_transpose2d",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    let tx = vec![0f32; t.input_len()];
    let tw = vec![0f32; t.weight_len()];
    let mut ty = vec![0f32; t.output_len().unwrap()];
    assert!(matches!(
        conv_transpose2d(&t, &tx, &tw[1..], None, None, &mut ty),
        Err(Error::ConvBuffer {
            op: "conv_transpose2d",
            name: "w",
            ..
        })
    ));
    let wrong = ConvMask::full((3, 3), 1, 2, 1, TileSize::CPU_DEFAULT).unwrap();
    assert!(matches!(
        conv_transpose2d(&t, &tx, &tw, Some(&wrong), None, &mut ty),
        Err(Error::ConvMaskMismatch { .. })
    ));
}

#[test]
fn batch_zero_is_a_no_op_with_zero_gradients() {
    let g = Conv2dGeometry::new(0, 2, (4, 4), 2, (3, 3));
    let w = values(g.weight_len(), 1);
    let mut dw = vec![f32::NAN; w.len()];
    conv2d(&g, &[], &w, None, None, &mut []).unwrap();
    conv2d_backward_weight(&g, &[], &[], None, &mut dw).unwrap();
    assert!(dw.iter().all(|&v| v == 0.0));
    let mut db = [f32::NAN; 2];
    conv2d_backward_bias(&g, &[], &mut db).unwrap();
    assert_eq!(db, [0.0, 0.0]);
}

fn padding_strategy() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::Valid),
        Just(Padding::Same),
        (0usize..3, 0usize..3, 0usize..3, 0usize..3).prop_map(|(top, bottom, left, right)| Padding::Explicit {
            top,
            bottom,
            left,
            right
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_geometries_match_the_reference(
        batch in 1usize..4,
        groups in 1usize..4,
        cin_g in 1usize..4,
        cout_g in 1usize..5,
        h in 1usize..9,
        w in 1usize..9,
        kernel in (1usize..4, 1usize..4),
        stride in (1usize..4, 1usize..4),
        dilation in (1usize..3, 1usize..3),
        padding in padding_strategy(),
        output_padding in (0usize..3, 0usize..3),
        form in prop::sample::select(FORMS.to_vec()),
        tile in prop::sample::select(vec![TileSize::square(2), TileSize::new(3, 5), TileSize::CPU_DEFAULT]),
        seed in 0u64..1000,
    ) {
        let conv = Conv2dGeometry {
            batch, in_channels: cin_g * groups, in_h: h, in_w: w, out_channels: cout_g * groups,
            kernel, stride, padding, dilation, groups,
        };
        // The reference decides which geometries are valid.
        let (ph, pw, same) = axes(padding);
        let ok = tf_axis(h, kernel.0, stride.0, dilation.0, ph, same).is_some()
            && tf_axis(w, kernel.1, stride.1, dilation.1, pw, same).is_some();
        prop_assert_eq!(conv.validate().is_ok(), ok, "{:?}", conv);
        if ok {
            check_conv(&conv, form, tile, seed);
        }
        let t = ConvTranspose2dGeometry {
            batch, in_channels: cin_g * groups, in_h: h, in_w: w, out_channels: cout_g * groups,
            kernel, stride, padding, output_padding, dilation, groups,
        };
        let op_ok = (output_padding.0 < stride.0 || output_padding.0 < dilation.0)
            && (output_padding.1 < stride.1 || output_padding.1 < dilation.1);
        let size_ok = |size: usize, k: usize, s: usize, d: usize, op: usize, pad: Option<(usize, usize)>| {
            same || {
                let (b, e) = pad.unwrap_or((0, 0));
                (size - 1) * s + d * (k - 1) + 1 + op > b + e
            }
        };
        let ok = op_ok
            && size_ok(h, kernel.0, stride.0, dilation.0, output_padding.0, ph)
            && size_ok(w, kernel.1, stride.1, dilation.1, output_padding.1, pw);
        prop_assert_eq!(t.validate().is_ok(), ok, "{:?}", t);
        if ok {
            check_transpose(&t, form, tile, seed + 7);
        }
    }
}
