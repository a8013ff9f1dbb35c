//! Tests of the CPU convolution path (im2col / col2im around the masked GEMM): chunking,
//! packing and thread-count independence against straightforward references.

use super::*;
use crate::conv::{Conv2dGeometry, Padding};
use crate::tile_map::TileSize;

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `‖got − want‖₂ / ‖want‖₂` in f64, checking that every value of `got` was written
/// (the buffers start as NaN).
fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    let (mut err, mut norm) = (0f64, 0f64);
    for (g, e) in got.iter().zip(want) {
        assert!(g.is_finite(), "every output written");
        err += f64::from(g - e).powi(2);
        norm += f64::from(*e).powi(2);
    }
    (err / norm).sqrt()
}

#[test]
fn direct_input_gradient_matches_im2col() {
    if !Isa::Avx512.is_available() {
        eprintln!("SKIPPED direct_input_gradient_matches_im2col: no AVX-512 on this CPU");
        return;
    }
    let geoms = [
        Conv2dGeometry::new(3, 32, (32, 32), 32, (3, 3)),
        Conv2dGeometry::new(2, 3, (32, 32), 32, (3, 3)).with_padding(Padding::Same),
        Conv2dGeometry::new(2, 32, (15, 15), 64, (3, 3)).with_padding(Padding::Same),
        Conv2dGeometry::new(2, 64, (15, 15), 64, (3, 3)),
        Conv2dGeometry::new(2, 5, (9, 11), 13, (5, 5)).with_padding(Padding::Same),
        Conv2dGeometry::new(1, 3, (7, 6), 8, (1, 1)),
        Conv2dGeometry::new(2, 9, (10, 13), 17, (2, 3)).with_padding(Padding::Explicit {
            top: 1,
            bottom: 0,
            left: 1,
            right: 2,
        }),
    ];
    for (gi, geom) in geoms.iter().enumerate() {
        let p = geom.plan("test").unwrap();
        let adj = super::super::direct::adjoint_plan(&p, None);
        assert!(adj.is_some(), "geometry {gi} takes the direct path");
        let dy = values(geom.output_len().unwrap(), 80 + gi as u64);
        let w = values(geom.weight_len(), 90 + gi as u64);
        let init = values(geom.in_channels, 95 + gi as u64);
        for init in [None, Some(&init[..])] {
            let mut want = vec![f32::NAN; geom.input_len()];
            backward_input_chunked(&p, &dy, &w, None, init, &mut want, p.chunk_lines(COL_BUDGET)).unwrap();
            let mut got = vec![f32::NAN; want.len()];
            backward_input(&p, &dy, &w, None, init, &mut got).unwrap();
            let rel = relative_error(&got, &want);
            assert!(rel < 1e-6, "geometry {gi}: relative error {rel}");
        }
    }
    // Padding larger than k − 1 on a side keeps the im2col path.
    let wide = Conv2dGeometry::new(1, 8, (5, 5), 8, (2, 2)).with_padding(Padding::Explicit {
        top: 2,
        bottom: 0,
        left: 0,
        right: 0,
    });
    assert!(super::super::direct::adjoint_plan(&wide.plan("test").unwrap(), None).is_none());
}

#[test]
fn direct_weight_gradient_matches_im2col() {
    if !Isa::Avx512.is_available() {
        eprintln!("SKIPPED direct_weight_gradient_matches_im2col: no AVX-512 on this CPU");
        return;
    }
    // Batches that are not a multiple of the image step, C_in / C_out off the 8 / 32
    // blocks, every padding, 1×1 and non-square kernels.
    let geoms = [
        Conv2dGeometry::new(5, 32, (32, 32), 32, (3, 3)),
        Conv2dGeometry::new(6, 3, (32, 32), 32, (3, 3)).with_padding(Padding::Same),
        Conv2dGeometry::new(3, 32, (15, 15), 64, (3, 3)).with_padding(Padding::Same),
        Conv2dGeometry::new(2, 64, (15, 15), 64, (3, 3)),
        Conv2dGeometry::new(9, 13, (9, 11), 40, (5, 5)).with_padding(Padding::Same),
        Conv2dGeometry::new(1, 8, (7, 6), 5, (1, 1)),
        Conv2dGeometry::new(2, 9, (10, 13), 17, (2, 3)).with_padding(Padding::Explicit {
            top: 2,
            bottom: 0,
            left: 1,
            right: 3,
        }),
    ];
    for (gi, geom) in geoms.iter().enumerate() {
        let p = geom.plan("test").unwrap();
        assert!(
            super::super::direct::applies(&p, None),
            "geometry {gi} takes the direct path"
        );
        let x = values(geom.input_len(), 110 + gi as u64);
        let dy = values(geom.output_len().unwrap(), 120 + gi as u64);
        let mut want = vec![f32::NAN; geom.weight_len()];
        backward_weight_chunked(&p, &x, &dy, None, &mut want, p.chunk_lines(COL_BUDGET)).unwrap();
        let mut got = vec![f32::NAN; want.len()];
        backward_weight(&p, &x, &dy, None, &mut got).unwrap();
        let rel = relative_error(&got, &want);
        // Both are f32 sums over up to 4500 terms in different orders.
        assert!(rel < 1e-5, "geometry {gi}: relative error {rel}");
    }
}

#[test]
fn masked_convs_on_the_direct_path_match_tile_skipping() {
    if !Isa::Avx512.is_available() {
        eprintln!("SKIPPED masked_convs_on_the_direct_path_match_tile_skipping: no AVX-512 on this CPU");
        return;
    }
    let geoms = [
        Conv2dGeometry::new(3, 32, (16, 16), 32, (3, 3)),
        Conv2dGeometry::new(2, 32, (15, 15), 64, (3, 3)).with_padding(Padding::Same),
        Conv2dGeometry::new(2, 13, (9, 11), 17, (5, 3)).with_padding(Padding::Same),
    ];
    for (gi, geom) in geoms.iter().enumerate() {
        let p = geom.plan("test").unwrap();
        let [kh, kw, cin, cout, groups] = geom.mask_dims();
        // A random half mask: every 16 × 16 tile partial, work fraction 1 → the direct path.
        let mvals: Vec<f32> = values(geom.weight_len(), 130 + gi as u64)
            .iter()
            .map(|&v| if v > 0.0 { 1.0 } else { 0.0 })
            .collect();
        let mask = ConvMask::from_values(&mvals, (kh, kw), cin, cout, groups, TileSize::CPU_DEFAULT).unwrap();
        assert!(super::super::direct::applies(&p, Some(&mask)), "geometry {gi}");
        let x = values(geom.input_len(), 140 + gi as u64);
        // Large weights off the mask: they must not leak into any result.
        let w: Vec<f32> = values(geom.weight_len(), 150 + gi as u64)
            .iter()
            .zip(&mvals)
            .map(|(&v, &m)| if m == 1.0 { v } else { 1e30 })
            .collect();
        let dy = values(geom.output_len().unwrap(), 160 + gi as u64);
        let bias = values(geom.out_channels, 170 + gi as u64);
        let chunk = p.chunk_lines(COL_BUDGET);
        let mut want = vec![f32::NAN; geom.output_len().unwrap()];
        forward_chunked(&p, &x, &w, Some(&mask), Some(&bias), &mut want, chunk).unwrap();
        let mut got = vec![f32::NAN; want.len()];
        forward(&p, &x, &w, Some(&mask), Some(&bias), &mut got).unwrap();
        // Skipped products are exact zeros on the direct path: equal values.
        assert_eq!(got, want, "geometry {gi}: forward");
        let mut want = vec![f32::NAN; geom.input_len()];
        backward_input_chunked(&p, &dy, &w, Some(&mask), None, &mut want, chunk).unwrap();
        let mut got = vec![f32::NAN; want.len()];
        backward_input(&p, &dy, &w, Some(&mask), None, &mut got).unwrap();
        assert!(relative_error(&got, &want) < 1e-6, "geometry {gi}: input gradient");
        let mut want = vec![f32::NAN; geom.weight_len()];
        backward_weight_chunked(&p, &x, &dy, Some(&mask), &mut want, chunk).unwrap();
        let mut got = vec![f32::NAN; want.len()];
        backward_weight(&p, &x, &dy, Some(&mask), &mut got).unwrap();
        assert!(relative_error(&got, &want) < 1e-5, "geometry {gi}: weight gradient");
        for (i, (&g, &m)) in got.iter().zip(&mvals).enumerate() {
            assert!(
                m == 1.0 || g.to_bits() == 0,
                "geometry {gi}: dw[{i}] = {g} off the mask"
            );
        }
    }
    // A mask that empties most tiles keeps the tile-skipping path.
    let geom = Conv2dGeometry::new(1, 64, (8, 8), 64, (3, 3));
    let [kh, kw, cin, cout, groups] = geom.mask_dims();
    let band: Vec<f32> = (0..geom.weight_len())
        .map(|i| {
            let (c, co) = ((i / cout) % cin, i % cout);
            if c.abs_diff(co) < 4 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let mask = ConvMask::from_values(&band, (kh, kw), cin, cout, groups, TileSize::CPU_DEFAULT).unwrap();
    assert!(mask.work_fraction() < super::super::direct::MASKED_MIN_WORK);
    assert!(!super::super::direct::applies(&geom.plan("test").unwrap(), Some(&mask)));
    // So does a layer whose weights do not fit the direct path's L2 budget.
    let wide = Conv2dGeometry::new(1, 256, (8, 8), 256, (3, 3)).with_padding(Padding::Same);
    assert!(!super::super::direct::applies(&wide.plan("test").unwrap(), None));
}

/// The padded-image buffer keeps its zero padding between images of one layout and is
/// cleared when the layout changes: two layouts that differ only in where the padding sits
/// (same image, buffer and plane sizes), run one after the other on one thread.
#[test]
fn padded_image_buffer_is_cleared_when_only_the_padding_moves() {
    if !Isa::Avx512.is_available() {
        eprintln!("SKIPPED padded_image_buffer_is_cleared_when_only_the_padding_moves: no AVX-512");
        return;
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let pads = [(2, 0, 2, 0), (0, 2, 0, 2), (1, 1, 1, 1), (2, 0, 2, 0)];
    pool.install(|| {
        for (k, &(top, bottom, left, right)) in pads.iter().enumerate() {
            let geom = Conv2dGeometry::new(2, 5, (6, 7), 8, (3, 3)).with_padding(Padding::Explicit {
                top,
                bottom,
                left,
                right,
            });
            let p = geom.plan("test").unwrap();
            assert!(super::super::direct::applies(&p, None));
            let x = values(geom.input_len(), 90 + k as u64);
            let w = values(geom.weight_len(), 95 + k as u64);
            let mut want = vec![f32::NAN; geom.output_len().unwrap()];
            forward_chunked(&p, &x, &w, None, None, &mut want, p.chunk_lines(COL_BUDGET)).unwrap();
            let mut got = vec![f32::NAN; want.len()];
            super::super::direct::forward(&p, &x, &w, None, &mut got);
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), e.to_bits(), "padding {k}, output {i}: {g} vs {e}");
            }
        }
    });
}

#[test]
fn direct_forward_matches_im2col_bit_for_bit() {
    if !Isa::Avx512.is_available() {
        eprintln!("SKIPPED direct_forward_matches_im2col_bit_for_bit: no AVX-512 on this CPU");
        return;
    }
    // Reductions below, at and across KC boundaries (9·32 = 288, 9·64 = 576, 25·13 = 325),
    // C_out not a multiple of 8, full-width grids not a multiple of 32, every padding,
    // 1×1 and non-square kernels, an image larger than the kernel's reach on one side.
    let geoms = [
        Conv2dGeometry::new(3, 32, (32, 32), 32, (3, 3)),
        Conv2dGeometry::new(2, 3, (32, 32), 32, (3, 3)).with_padding(Padding::Same),
        Conv2dGeometry::new(2, 32, (15, 15), 64, (3, 3)).with_padding(Padding::Same),
        Conv2dGeometry::new(2, 64, (15, 15), 64, (3, 3)),
        Conv2dGeometry::new(2, 13, (9, 11), 13, (5, 5)).with_padding(Padding::Same),
        Conv2dGeometry::new(1, 8, (7, 6), 5, (1, 1)),
        Conv2dGeometry::new(2, 9, (10, 13), 17, (2, 3)).with_padding(Padding::Explicit {
            top: 2,
            bottom: 0,
            left: 1,
            right: 3,
        }),
        Conv2dGeometry::new(1, 8, (4, 4), 8, (4, 4)),
    ];
    for (gi, geom) in geoms.iter().enumerate() {
        let p = geom.plan("test").unwrap();
        assert!(
            super::super::direct::applies(&p, None),
            "geometry {gi} takes the direct path"
        );
        let x = values(geom.input_len(), 50 + gi as u64);
        let w = values(geom.weight_len(), 60 + gi as u64);
        let bias = values(geom.out_channels, 70 + gi as u64);
        for b in [None, Some(&bias[..])] {
            let mut want = vec![f32::NAN; geom.output_len().unwrap()];
            forward_chunked(&p, &x, &w, None, b, &mut want, p.chunk_lines(COL_BUDGET)).unwrap();
            let mut got = vec![f32::NAN; want.len()];
            super::super::direct::forward(&p, &x, &w, b, &mut got);
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.to_bits() == e.to_bits(),
                    "geometry {gi}, bias {}, output {i}: {g} vs {e}",
                    b.is_some()
                );
            }
        }
    }
}

/// The forward through [`im2col_packed`] equals, bit for bit, the former path (NHWC copy,
/// row-major im2col, the GEMM packing it) on odd shapes: output widths that are not
/// multiples of the micro-kernel rows (blocks spanning lines and images), stride,
/// dilation, every padding, groups, masks, chunks that split images.
#[test]
fn packed_im2col_forward_matches_unpacked() {
    use crate::gemm::{masked_matmul, matmul};
    let geoms = [
        Conv2dGeometry::new(3, 3, (9, 7), 5, (3, 3)).with_padding(Padding::Same),
        Conv2dGeometry::new(2, 4, (8, 11), 6, (3, 2))
            .with_stride((2, 3))
            .with_padding(Padding::Same)
            .with_dilation((1, 2))
            .with_groups(2),
        Conv2dGeometry::new(2, 6, (10, 13), 9, (2, 3))
            .with_dilation((2, 2))
            .with_padding(Padding::Explicit {
                top: 1,
                bottom: 0,
                left: 2,
                right: 3,
            })
            .with_groups(3),
        Conv2dGeometry::new(4, 8, (6, 5), 16, (3, 3)),
        Conv2dGeometry::new(1, 2, (1, 1), 3, (1, 1)),
    ];
    for (gi, geom) in geoms.iter().enumerate() {
        let p = geom.plan("test").unwrap();
        let x = values(geom.input_len(), 10 + gi as u64);
        let w = values(geom.weight_len(), 20 + gi as u64);
        let bias = values(geom.out_channels, 30 + gi as u64);
        let [kh, kw, cing, cout, groups] = geom.mask_dims();
        let mvals: Vec<f32> = values(geom.weight_len(), 40 + gi as u64)
            .iter()
            .map(|&v| if v > -0.3 { 1.0 } else { 0.0 })
            .collect();
        let mask = ConvMask::from_values(&mvals, (kh, kw), cing, cout, groups, TileSize::square(4)).unwrap();
        let lines = p.batch * p.oh;
        for m in [None, Some(&mask)] {
            for chunk in [1, 2, 5, lines] {
                // The former forward.
                let (k, cg) = (p.k(), p.cout_g());
                let mut want = vec![0f32; geom.output_len().unwrap()];
                let wgs = group_weights(&p, &w);
                for l0 in (0..lines).step_by(chunk) {
                    let l1 = (l0 + chunk).min(lines);
                    let rows = (l1 - l0) * p.ow;
                    let (n0, n1) = images(&p, l0, l1);
                    for (g, wg) in wgs.iter().enumerate() {
                        let mut xt = vec![0f32; p.nhwc_len(chunk)];
                        let mut col = vec![0f32; rows * k];
                        let mut yg = vec![0f32; rows * cg];
                        to_nhwc(&p, &x, g, n0, n1, &mut xt);
                        im2col(&p, &xt, n0, l0, l1, &mut col);
                        let a = MatRef::new(&col, rows, k).unwrap();
                        let b = MatRef::new(wg, k, cg).unwrap();
                        let c = MatMut::new(&mut yg, rows, cg).unwrap();
                        match m.and_then(|mm| mm.group(g)) {
                            Some(tm) => masked_matmul(a, b, tm, c, Beta::Zero).unwrap(),
                            None => matmul(a, b, c, Beta::Zero).unwrap(),
                        }
                        scatter_out(&p, g, l0, l1, &yg, Some(&bias), &mut want);
                    }
                }
                let mut got = vec![f32::NAN; want.len()];
                forward_chunked(&p, &x, &w, m, Some(&bias), &mut got, chunk).unwrap();
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "geometry {gi}, chunk {chunk}, mask {}",
                    m.is_some()
                );
            }
        }
    }
}

/// Chunks that split images (and single lines) give the same result as one chunk, for
/// every pass, masked and unmasked.
#[test]
fn chunking_does_not_change_results() {
    let geom = Conv2dGeometry::new(3, 4, (7, 6), 6, (3, 2))
        .with_stride((2, 1))
        .with_padding(Padding::Same)
        .with_dilation((1, 2))
        .with_groups(2);
    let p = geom.plan("test").unwrap();
    let x = values(geom.input_len(), 1);
    let w = values(geom.weight_len(), 2);
    let ylen = geom.output_len().unwrap();
    let dy = values(ylen, 3);
    let bias = values(6, 4);
    let mvals: Vec<f32> = values(geom.weight_len(), 5)
        .iter()
        .map(|&v| if v > 0.0 { 1.0 } else { 0.0 })
        .collect();
    let mask = ConvMask::from_values(&mvals, (3, 2), 2, 6, 2, TileSize::square(4)).unwrap();
    let lines = p.batch * p.oh;
    for m in [None, Some(&mask)] {
        let mut y_ref = vec![0f32; ylen];
        forward_chunked(&p, &x, &w, m, Some(&bias), &mut y_ref, lines).unwrap();
        let mut dx_ref = vec![0f32; x.len()];
        backward_input_chunked(&p, &dy, &w, m, None, &mut dx_ref, lines).unwrap();
        let mut dw_ref = vec![0f32; w.len()];
        backward_weight_chunked(&p, &x, &dy, m, &mut dw_ref, lines).unwrap();
        for chunk in [1, 2, 3, 5] {
            let mut y = vec![f32::NAN; ylen];
            forward_chunked(&p, &x, &w, m, Some(&bias), &mut y, chunk).unwrap();
            assert_eq!(y, y_ref, "forward, chunk {chunk}");
            let mut dx = vec![f32::NAN; x.len()];
            backward_input_chunked(&p, &dy, &w, m, None, &mut dx, chunk).unwrap();
            // An image split between chunks gets its two partial sums added separately.
            for (a, b) in dx.iter().zip(&dx_ref) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "dx, chunk {chunk}: {a} vs {b}");
            }
            let mut dw = vec![f32::NAN; w.len()];
            backward_weight_chunked(&p, &x, &dy, m, &mut dw, chunk).unwrap();
            for (a, b) in dw.iter().zip(&dw_ref) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "dw, chunk {chunk}: {a} vs {b}");
            }
        }
    }
}
