//! The masked conv2d and conv-transpose2d products on every device, against float64 references.

use super::common::*;

/// float64 reference of the masked conv2d forward (NCHW, Keras weights, top/left padding).
fn conv_reference(g: &Conv2dGeometry, x: &[f32], w: &[f32], mask: &ConvMask, bias: &[f32]) -> Vec<f64> {
    let (oh_n, ow_n) = g.output_hw().unwrap();
    let (top, _, left, _) = g.padding_amounts().unwrap();
    let (kh, kw) = g.kernel;
    let cin_g = g.in_channels / g.groups;
    let cout_g = g.out_channels / g.groups;
    let mut y = vec![0f64; g.batch * g.out_channels * oh_n * ow_n];
    for b in 0..g.batch {
        for co in 0..g.out_channels {
            let grp = co / cout_g;
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    let mut s = f64::from(bias[co]);
                    for i in 0..kh {
                        for j in 0..kw {
                            let ih = (oh * g.stride.0 + i * g.dilation.0) as isize - top as isize;
                            let iw = (ow * g.stride.1 + j * g.dilation.1) as isize - left as isize;
                            if ih < 0 || iw < 0 || ih >= g.in_h as isize || iw >= g.in_w as isize {
                                continue;
                            }
                            for c in 0..cin_g {
                                if !mask.get(i, j, c, co) {
                                    continue;
                                }
                                let xv = x[((b * g.in_channels + grp * cin_g + c) * g.in_h + ih as usize) * g.in_w
                                    + iw as usize];
                                s += f64::from(xv) * f64::from(w[((i * kw + j) * cin_g + c) * g.out_channels + co]);
                            }
                        }
                    }
                    y[((b * g.out_channels + co) * oh_n + oh) * ow_n + ow] = s;
                }
            }
        }
    }
    y
}

fn conv_geometries() -> [Conv2dGeometry; 2] {
    [
        Conv2dGeometry::new(2, 6, (9, 7), 70, (3, 3)).with_padding(Padding::Same),
        Conv2dGeometry::new(3, 8, (10, 11), 12, (3, 2))
            .with_stride((2, 1))
            .with_dilation((1, 2))
            .with_groups(2)
            .with_padding(Padding::Explicit {
                top: 1,
                bottom: 1,
                left: 0,
                right: 0,
            }),
    ]
}

/// A band over (channel, output channel) plus random entries, per tap.
fn conv_mask(g: &Conv2dGeometry) -> ConvMask {
    let [kh, kw, nx, ny, groups] = g.mask_dims();
    let coin = random(kh * kw * nx * ny, 17);
    let keep: Vec<f32> = (0..coin.len())
        .map(|idx| {
            let (c, co) = ((idx / ny) % nx, idx % ny);
            f32::from(u8::from((c * ny / nx).abs_diff(co) <= 2 || coin[idx] > 0.2))
        })
        .collect();
    ConvMask::from_values(&keep, (kh, kw), nx, ny, groups, TileSize::CPU_DEFAULT).unwrap()
}

#[test]
fn masked_conv2d_matches_f64_reference_on_every_device() {
    for dev in devices("masked_conv2d_matches_f64_reference_on_every_device") {
        for g in &conv_geometries() {
            let mask = conv_mask(g);
            let x = random(g.input_len(), 3);
            let w = random(g.weight_len(), 4);
            let bias = random(g.out_channels, 5);
            let want = conv_reference(g, &x, &w, &mask, &bias);
            for p in dev.precisions() {
                let mut y = vec![f32::NAN; g.output_len().unwrap()];
                match &dev {
                    Device::Cpu => biokernels::conv2d(g, &x, &w, Some(&mask), Some(&bias), &mut y).unwrap(),
                    Device::Cuda(d) => biokernels::cuda::masked_conv2d_host(
                        d,
                        p,
                        g,
                        &x,
                        &w,
                        Some(&mask),
                        Some(&bias),
                        &mut y,
                        Beta::Zero,
                    )
                    .unwrap(),
                }
                let what = format!("{} conv2d {g:?} {}", dev.label(), p.name());
                assert!(y.iter().all(|v| v.is_finite()), "{what}: output not fully written");
                let err = rel_error(&y, &want);
                assert!(err < p.tolerance(), "{what}: relative error {err:.3e}");
            }
        }
    }
}

/// float64 references of the conv2d input and weight gradients (dW is 0 off the mask).
fn conv_grad_reference(g: &Conv2dGeometry, x: &[f32], w: &[f32], dy: &[f32], mask: &ConvMask) -> (Vec<f64>, Vec<f64>) {
    let (oh_n, ow_n) = g.output_hw().unwrap();
    let (top, _, left, _) = g.padding_amounts().unwrap();
    let (kh, kw) = g.kernel;
    let cin_g = g.in_channels / g.groups;
    let cout_g = g.out_channels / g.groups;
    let mut dx = vec![0f64; x.len()];
    let mut dw = vec![0f64; w.len()];
    for b in 0..g.batch {
        for co in 0..g.out_channels {
            let grp = co / cout_g;
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    let d = f64::from(dy[((b * g.out_channels + co) * oh_n + oh) * ow_n + ow]);
                    for i in 0..kh {
                        for j in 0..kw {
                            let ih = (oh * g.stride.0 + i * g.dilation.0) as isize - top as isize;
                            let iw = (ow * g.stride.1 + j * g.dilation.1) as isize - left as isize;
                            if ih < 0 || iw < 0 || ih >= g.in_h as isize || iw >= g.in_w as isize {
                                continue;
                            }
                            for c in 0..cin_g {
                                if !mask.get(i, j, c, co) {
                                    continue;
                                }
                                let xi = ((b * g.in_channels + grp * cin_g + c) * g.in_h + ih as usize) * g.in_w
                                    + iw as usize;
                                let wi = ((i * kw + j) * cin_g + c) * g.out_channels + co;
                                dx[xi] += d * f64::from(w[wi]);
                                dw[wi] += d * f64::from(x[xi]);
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw)
}

#[test]
fn masked_conv2d_gradients_match_f64_reference_on_every_device() {
    for dev in devices("masked_conv2d_gradients_match_f64_reference_on_every_device") {
        for g in &conv_geometries() {
            let mask = conv_mask(g);
            let x = random(g.input_len(), 6);
            let w = random(g.weight_len(), 7);
            let dy = random(g.output_len().unwrap(), 8);
            let (want_dx, want_dw) = conv_grad_reference(g, &x, &w, &dy, &mask);
            for p in dev.precisions() {
                let mut dx = vec![f32::NAN; x.len()];
                let mut dw = vec![f32::NAN; w.len()];
                match &dev {
                    Device::Cpu => {
                        biokernels::conv2d_backward_input(g, &dy, &w, Some(&mask), &mut dx).unwrap();
                        biokernels::conv2d_backward_weight(g, &x, &dy, Some(&mask), &mut dw).unwrap();
                    }
                    Device::Cuda(d) => {
                        use biokernels::cuda::masked_conv2d_backward_host as back;
                        back(d, GemmOp::Dx, p, g, &dy, &w, Some(&mask), &mut dx, Beta::Zero).unwrap();
                        back(d, GemmOp::Dw, p, g, &x, &dy, Some(&mask), &mut dw, Beta::Zero).unwrap();
                    }
                }
                let what = format!("{} conv2d grads {g:?} {}", dev.label(), p.name());
                assert!(
                    dx.iter().chain(&dw).all(|v| v.is_finite()),
                    "{what}: output not fully written"
                );
                let (ex, ew) = (rel_error(&dx, &want_dx), rel_error(&dw, &want_dw));
                assert!(ex < p.tolerance(), "{what}: dx relative error {ex:.3e}");
                assert!(ew < p.tolerance(), "{what}: dw relative error {ew:.3e}");
                for (v, r) in dw.iter().zip(&want_dw) {
                    if *r == 0.0 {
                        // Off the mask (or never reached): exactly 0.
                        assert_eq!(*v, 0.0, "{what}: dw off the mask");
                    }
                }
            }
        }
    }
}

#[test]
fn masked_conv_transpose2d_matches_f64_reference_on_every_device() {
    use biokernels::ConvTranspose2dGeometry;
    let geoms = [
        ConvTranspose2dGeometry::new(2, 12, (5, 4), 6, (3, 3))
            .with_stride((2, 2))
            .with_padding(Padding::Same),
        ConvTranspose2dGeometry::new(3, 8, (4, 6), 4, (2, 3))
            .with_stride((2, 1))
            .with_groups(2)
            .with_output_padding((1, 0)),
    ];
    for dev in devices("masked_conv_transpose2d_matches_f64_reference_on_every_device") {
        for gt in &geoms {
            // References through the convolution this layer is the input gradient of.
            let adj = gt.adjoint_conv().unwrap();
            let mask = conv_mask(&adj);
            let x = random(gt.input_len(), 51);
            let w = random(gt.weight_len(), 52);
            let bias = random(gt.out_channels, 53);
            let y_len = gt.output_len().unwrap();
            let dy = random(y_len, 54);
            let zeros_b = vec![0f32; adj.out_channels];
            let zeros_x = vec![0f32; adj.input_len()];
            let (mut want_y, _) = conv_grad_reference(&adj, &zeros_x, &w, &x, &mask);
            let hw = y_len / (gt.batch * gt.out_channels);
            for (i, v) in want_y.iter_mut().enumerate() {
                *v += f64::from(bias[(i / hw) % gt.out_channels]);
            }
            let want_dx = conv_reference(&adj, &dy, &w, &mask, &zeros_b);
            let (_, want_dw) = conv_grad_reference(&adj, &dy, &w, &x, &mask);
            for p in dev.precisions() {
                let mut y = vec![f32::NAN; y_len];
                let mut dx = vec![f32::NAN; x.len()];
                let mut dw = vec![f32::NAN; w.len()];
                match &dev {
                    Device::Cpu => {
                        biokernels::conv_transpose2d(gt, &x, &w, Some(&mask), Some(&bias), &mut y).unwrap();
                        biokernels::conv_transpose2d_backward_input(gt, &dy, &w, Some(&mask), &mut dx).unwrap();
                        biokernels::conv_transpose2d_backward_weight(gt, &x, &dy, Some(&mask), &mut dw).unwrap();
                    }
                    Device::Cuda(d) => {
                        use biokernels::cuda::masked_conv_transpose2d_host as run_t;
                        let m = Some(&mask);
                        run_t(d, GemmOp::Forward, p, gt, &x, &w, m, Some(&bias), &mut y, Beta::Zero).unwrap();
                        run_t(d, GemmOp::Dx, p, gt, &dy, &w, m, None, &mut dx, Beta::Zero).unwrap();
                        run_t(d, GemmOp::Dw, p, gt, &x, &dy, m, None, &mut dw, Beta::Zero).unwrap();
                    }
                }
                let what = format!("{} conv_transpose2d {gt:?} {}", dev.label(), p.name());
                for (name, got, want) in [("y", &y, &want_y), ("dx", &dx, &want_dx), ("dw", &dw, &want_dw)] {
                    assert!(got.iter().all(|v| v.is_finite()), "{what} {name}: not fully written");
                    let err = rel_error(got, want);
                    assert!(err < p.tolerance(), "{what} {name}: relative error {err:.3e}");
                }
            }
        }
    }
}

/// The convolution kernels (forward, dX, dW) launched twice on the same inputs, outputs
/// poisoned differently, give the same bits.
#[test]
fn masked_conv2d_is_repeatable_bit_for_bit_on_every_device() {
    for dev in devices("masked_conv2d_is_repeatable_bit_for_bit_on_every_device") {
        for g in &conv_geometries() {
            let mask = conv_mask(g);
            let (x, w) = (random(g.input_len(), 13), random(g.weight_len(), 14));
            let dy = random(g.output_len().unwrap(), 15);
            for p in dev.precisions() {
                let launch = |poison: f32| -> [Vec<u32>; 3] {
                    let mut y = vec![poison; dy.len()];
                    let (mut dx, mut dw) = (vec![poison; x.len()], vec![poison; w.len()]);
                    match &dev {
                        Device::Cpu => {
                            biokernels::conv2d(g, &x, &w, Some(&mask), None, &mut y).unwrap();
                            biokernels::conv2d_backward_input(g, &dy, &w, Some(&mask), &mut dx).unwrap();
                            biokernels::conv2d_backward_weight(g, &x, &dy, Some(&mask), &mut dw).unwrap();
                        }
                        Device::Cuda(d) => {
                            use biokernels::cuda::{masked_conv2d_backward_host as back, masked_conv2d_host};
                            masked_conv2d_host(d, p, g, &x, &w, Some(&mask), None, &mut y, Beta::Zero).unwrap();
                            back(d, GemmOp::Dx, p, g, &dy, &w, Some(&mask), &mut dx, Beta::Zero).unwrap();
                            back(d, GemmOp::Dw, p, g, &x, &dy, Some(&mask), &mut dw, Beta::Zero).unwrap();
                        }
                    }
                    [y, dx, dw].map(|v| v.iter().map(|f| f.to_bits()).collect())
                };
                let (first, second) = (launch(f32::NAN), launch(-3.0));
                for (name, (u, v)) in ["y", "dx", "dw"].iter().zip(first.iter().zip(&second)) {
                    assert!(
                        u == v,
                        "{} conv2d {g:?} {} {name}: two launches differ",
                        dev.label(),
                        p.name()
                    );
                }
            }
        }
    }
}
