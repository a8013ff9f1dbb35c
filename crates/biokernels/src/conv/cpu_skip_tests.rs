//! Tests of the masked direct convolutions that skip masked-out weights per register block
//! (`skip.rs`): forward, input gradient and weight gradient against the im2col path (the
//! masked GEMM) and the dense direct kernels on `W ⊙ M`, on fixed geometries with random,
//! 2d mouse-mimetic and band masks, and a proptest over random shapes and masks.

use proptest::prelude::*;

use super::*;
use crate::conv::direct;
use crate::conv::skip::{self, BlockLists, NO_CHANNEL, SKIP_CO};
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

/// `‖got − want‖₂ / ‖want‖₂` in f64 (0 when both are 0), checking that every value of `got`
/// was written (the buffers start as NaN).
fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    let (mut err, mut norm) = (0f64, 0f64);
    for (g, e) in got.iter().zip(want) {
        assert!(g.is_finite(), "every output written");
        err += f64::from(g - e).powi(2);
        norm += f64::from(*e).powi(2);
    }
    if norm == 0.0 {
        err.sqrt()
    } else {
        (err / norm).sqrt()
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

/// A `biomask` form compiled for `geom` (one group).
fn spec_mask(geom: &Conv2dGeometry, spec: biomask::MaskSpec) -> ConvMask {
    let mut rng = biomask::Rng::seeded(0);
    let m = spec
        .conv(
            geom.in_channels,
            geom.out_channels,
            1,
            geom.kernel,
            biomask::Layout::Keras,
            &mut rng,
        )
        .unwrap();
    ConvMask::from_mask(&m, 1, TileSize::CPU_DEFAULT).unwrap()
}

/// The mouse-cifar mask of a layer: 2d, grid widths the divisors nearest the square roots.
fn mouse_mask(geom: &Conv2dGeometry, w: f64) -> ConvMask {
    let (a, b) = (
        biomask::square_grid_width(geom.in_channels),
        biomask::square_grid_width(geom.out_channels),
    );
    spec_mask(geom, biomask::MaskSpec::two_d(a, b, w))
}

/// A Bernoulli mask keeping about `density` of the weights.
fn random_mask(geom: &Conv2dGeometry, density: f64, seed: u64) -> (Vec<f32>, ConvMask) {
    let [kh, kw, cin, cout, groups] = geom.mask_dims();
    let mvals: Vec<f32> = values(geom.weight_len(), seed)
        .iter()
        .map(|&v| if f64::from(v + 1.0) / 2.0 < density { 1.0 } else { 0.0 })
        .collect();
    let mask = ConvMask::from_values(&mvals, (kh, kw), cin, cout, groups, TileSize::CPU_DEFAULT).unwrap();
    (mvals, mask)
}

/// Checks the three skipping passes of `geom` under `mask` against the references:
/// forward bit for bit against the im2col path and the dense direct kernel on `W ⊙ M`; the
/// input gradient bit for bit against the dense direct adjoint on `W ⊙ M` and to rounding
/// against im2col; the weight gradient to rounding against im2col and exactly 0 off the mask.
/// Calls the skipping kernels directly (whatever their kept fraction).
fn check_skip_passes(geom: &Conv2dGeometry, mask: &ConvMask, seed: u64, label: &str) {
    let p = geom.plan("test").unwrap();
    assert!(direct::applies(&p, None), "{label}: the direct path applies");
    let lists = mask.skip_lists().expect("one-group mask");
    let x = values(geom.input_len(), seed);
    let mvals = mask.to_keras_values();
    // Large weights off the mask: they must not leak into any result.
    let w: Vec<f32> = values(geom.weight_len(), seed + 1)
        .iter()
        .zip(&mvals)
        .map(|(&v, &m)| if m == 1.0 { v } else { 1e30 })
        .collect();
    let wm = direct::masked_weights(mask, &w);
    let dy = values(geom.output_len().unwrap(), seed + 2);
    let bias = values(geom.out_channels, seed + 3);
    let chunk = p.chunk_lines(COL_BUDGET);

    let mut want = vec![f32::NAN; geom.output_len().unwrap()];
    forward_chunked(&p, &x, &w, Some(mask), Some(&bias), &mut want, chunk).unwrap();
    let mut dense = vec![f32::NAN; want.len()];
    direct::forward(&p, &x, &wm, Some(&bias), &mut dense);
    let mut got = vec![f32::NAN; want.len()];
    skip::forward(&p, &lists.fwd, &x, &wm, Some(&bias), &mut got);
    assert_eq!(bits(&got), bits(&dense), "{label}: forward vs dense W ⊙ M");
    assert_eq!(bits(&got), bits(&want), "{label}: forward vs im2col");

    if let Some(adj) = direct::adjoint_plan(&p, None) {
        let mut want = vec![f32::NAN; geom.input_len()];
        backward_input_chunked(&p, &dy, &w, Some(mask), None, &mut want, chunk).unwrap();
        let mut dense = vec![f32::NAN; want.len()];
        direct::backward_input(&p, &adj, None, &dy, &wm, None, &mut dense);
        let mut got = vec![f32::NAN; want.len()];
        direct::backward_input(&p, &adj, Some(&lists.adj), &dy, &wm, None, &mut got);
        assert_eq!(bits(&got), bits(&dense), "{label}: input gradient vs dense W ⊙ M");
        let rel = relative_error(&got, &want);
        assert!(rel < 1e-6, "{label}: input gradient vs im2col, relative error {rel}");
    }

    let mut want = vec![f32::NAN; geom.weight_len()];
    backward_weight_chunked(&p, &x, &dy, Some(mask), &mut want, chunk).unwrap();
    let mut got = vec![f32::NAN; want.len()];
    skip::backward_weight(&p, &lists.fwd, mask, &x, &dy, &mut got);
    let rel = relative_error(&got, &want);
    assert!(rel < 1e-5, "{label}: weight gradient vs im2col, relative error {rel}");
    for (i, (&g, &m)) in got.iter().zip(&mvals).enumerate() {
        assert!(m == 1.0 || g.to_bits() == 0, "{label}: dw[{i}] = {g} off the mask");
    }
}

fn avx512(test: &str) -> bool {
    let ok = Isa::Avx512.is_available();
    if !ok {
        eprintln!("SKIPPED {test}: no AVX-512 on this CPU");
    }
    ok
}

/// The paper CNN's masked layers (batch 2) under their mouse-cifar masks at w = 0.4, 0.5, 0.6,
/// band masks, and random masks on odd shapes (channels off the blocks of 4 and 8, every
/// padding, 1×1, non-square and 5×5 kernels, reductions across `KC`).
#[test]
fn skip_passes_match_references_on_mouse_band_and_random_masks() {
    if !avx512("skip_passes_match_references_on_mouse_band_and_random_masks") {
        return;
    }
    let paper = [
        Conv2dGeometry::new(2, 32, (32, 32), 32, (3, 3)),
        Conv2dGeometry::new(2, 32, (15, 15), 64, (3, 3)).with_padding(Padding::Same),
        Conv2dGeometry::new(2, 64, (15, 15), 64, (3, 3)),
    ];
    for (gi, geom) in paper.iter().enumerate() {
        for w in [0.4, 0.5, 0.6] {
            check_skip_passes(
                geom,
                &mouse_mask(geom, w),
                10 + gi as u64,
                &format!("paper {gi}, 2d w={w}"),
            );
        }
        for r in [0.5, 0.8] {
            let band = spec_mask(geom, biomask::MaskSpec::diagonal(r));
            check_skip_passes(geom, &band, 20 + gi as u64, &format!("paper {gi}, diagonal r={r}"));
        }
    }
    let odd = [
        Conv2dGeometry::new(3, 13, (9, 11), 17, (5, 5)).with_padding(Padding::Same),
        Conv2dGeometry::new(2, 9, (10, 13), 7, (2, 3)).with_padding(Padding::Explicit {
            top: 1,
            bottom: 0,
            left: 1,
            right: 2,
        }),
        Conv2dGeometry::new(1, 3, (7, 6), 5, (1, 1)),
        Conv2dGeometry::new(5, 30, (6, 5), 11, (3, 3)).with_padding(Padding::Same),
        Conv2dGeometry::new(2, 1, (12, 12), 1, (3, 3)),
    ];
    for (gi, geom) in odd.iter().enumerate() {
        for density in [0.05, 0.3, 0.9] {
            let (_, mask) = random_mask(geom, density, 40 + gi as u64);
            check_skip_passes(geom, &mask, 50 + gi as u64, &format!("odd {gi}, random {density}"));
        }
        let empty = ConvMask::from_values(
            &vec![0.0; geom.weight_len()],
            geom.kernel,
            geom.in_channels,
            geom.out_channels,
            1,
            TileSize::CPU_DEFAULT,
        )
        .unwrap();
        check_skip_passes(geom, &empty, 60 + gi as u64, &format!("odd {gi}, empty mask"));
    }
}

/// The dispatch (`forward`, `backward_input`, `backward_weight` of the CPU path) takes the
/// skipping kernels for the mouse-cifar masks of the paper layers at w = 0.5 and the dense ones
/// for a full mask, with the results of the references.
#[test]
fn dispatch_takes_the_skipping_path_for_mouse_masks() {
    if !avx512("dispatch_takes_the_skipping_path_for_mouse_masks") {
        return;
    }
    let geom = Conv2dGeometry::new(2, 64, (15, 15), 64, (3, 3));
    let p = geom.plan("test").unwrap();
    let mask = mouse_mask(&geom, 0.5);
    assert!(direct::applies(&p, Some(&mask)));
    let fwd = skip::forward_lists(&mask).expect("forward skips");
    let adj = skip::adjoint_lists(&mask).expect("input gradient skips");
    let full = ConvMask::full((3, 3), 64, 64, 1, TileSize::CPU_DEFAULT).unwrap();
    assert!(skip::weight_gradient_lists(&mask).is_some());
    assert!(skip::forward_lists(&full).is_none() && skip::adjoint_lists(&full).is_none());
    assert!(skip::weight_gradient_lists(&full).is_none());
    let x = values(geom.input_len(), 1);
    let w = values(geom.weight_len(), 2);
    let wm = direct::masked_weights(&mask, &w);
    let dy = values(geom.output_len().unwrap(), 3);
    let mut want = vec![f32::NAN; dy.len()];
    skip::forward(&p, fwd, &x, &wm, None, &mut want);
    let mut got = vec![f32::NAN; dy.len()];
    forward(&p, &x, &w, Some(&mask), None, &mut got).unwrap();
    assert_eq!(bits(&got), bits(&want), "forward");
    let adjp = direct::adjoint_plan(&p, Some(&mask)).unwrap();
    let mut want = vec![f32::NAN; x.len()];
    direct::backward_input(&p, &adjp, Some(adj), &dy, &wm, None, &mut want);
    let mut got = vec![f32::NAN; x.len()];
    backward_input(&p, &dy, &w, Some(&mask), None, &mut got).unwrap();
    assert_eq!(bits(&got), bits(&want), "input gradient");
    let mut want = vec![f32::NAN; w.len()];
    skip::backward_weight(&p, fwd, &mask, &x, &dy, &mut want);
    let mut got = vec![f32::NAN; w.len()];
    backward_weight(&p, &x, &dy, Some(&mask), &mut got).unwrap();
    assert_eq!(bits(&got), bits(&want), "weight gradient");
}

/// The kept fractions of the `(kk, 4-channel block)` pairs of the paper layers' mouse-cifar
/// masks at w = 0.5 (grid widths 4 for 32 channels, 8 for 64), the numbers the module docs
/// quote, and the lists' own invariants.
#[test]
fn mouse_mask_kept_fractions() {
    let cases = [
        // 2 × 2 squares of channels on the masks' grids (consecutive channels: 0.6875 /
        // 0.6875, 0.58203125 / 0.6875, 0.58984375 / 0.58984375).
        (Conv2dGeometry::new(1, 32, (32, 32), 32, (3, 3)), 0.59375, 0.59375),
        (
            Conv2dGeometry::new(1, 32, (15, 15), 64, (3, 3)).with_padding(Padding::Same),
            0.546875,
            0.609375,
        ),
        (Conv2dGeometry::new(1, 64, (15, 15), 64, (3, 3)), 0.5625, 0.5625),
    ];
    for (geom, fwd, adj) in cases {
        let mask = mouse_mask(&geom, 0.5);
        let lists = mask.skip_lists().unwrap();
        eprintln!(
            "{}→{}: density {:.3}, kept fraction forward/dW {:.4}, dX {:.4}",
            geom.in_channels,
            geom.out_channels,
            mask.density(),
            lists.fwd.kept_fraction(),
            lists.adj.kept_fraction()
        );
        assert_eq!(
            lists.fwd.kept_fraction(),
            fwd,
            "{}→{}",
            geom.in_channels,
            geom.out_channels
        );
        assert_eq!(
            lists.adj.kept_fraction(),
            adj,
            "{}→{}",
            geom.in_channels,
            geom.out_channels
        );
        check_lists(&mask, &lists.fwd, &lists.adj);
    }
}

/// Every channel sits in exactly one block row, every kept pair of the mask lies in its
/// block's list and every listed index is used by a row of the block (forward and adjoint).
fn check_lists(mask: &ConvMask, fwd: &BlockLists, adj: &BlockLists) {
    let (kh, kw) = mask.kernel();
    let (taps, nx, ny) = (kh * kw, mask.nx(), mask.ny());
    let channels = |lists: &BlockLists, b: usize| -> Vec<usize> {
        (0..SKIP_CO)
            .map(|r| lists.channel(b, r))
            .filter(|&c| c != NO_CHANNEL)
            .collect()
    };
    for (lists, n, what) in [(fwd, ny, "forward"), (adj, nx, "adjoint")] {
        let mut all: Vec<usize> = (0..lists.blocks()).flat_map(|b| channels(lists, b)).collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..n).collect::<Vec<_>>(),
            "{what} blocks must hold every channel once"
        );
    }
    for b in 0..fwd.blocks() {
        let list = fwd.block(b);
        for kk in 0..taps * nx {
            let (t, c) = (kk / nx, kk % nx);
            let used = channels(fwd, b).into_iter().any(|co| mask.get(t / kw, t % kw, c, co));
            assert_eq!(list.binary_search(&kk).is_ok(), used, "forward block {b}, kk {kk}");
        }
    }
    for b in 0..adj.blocks() {
        let list = adj.block(b);
        for kk in 0..taps * ny {
            let (t, co) = (taps - 1 - kk / ny, kk % ny);
            let used = channels(adj, b).into_iter().any(|ci| mask.get(t / kw, t % kw, ci, co));
            assert_eq!(list.binary_search(&kk).is_ok(), used, "adjoint block {b}, kk {kk}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random shapes (channel counts off the blocks of 4 and 8, kernels up to 4 × 4, every
    /// padding kind) and random masks of random density: the three skipping passes against
    /// the references, and the block lists against the mask.
    #[test]
    fn skip_passes_match_references_on_random_shapes(
        batch in 1usize..4,
        cin in 1usize..21,
        cout in 1usize..21,
        h in 1usize..12,
        w in 1usize..12,
        kh in 1usize..5,
        kw in 1usize..5,
        pad in 0usize..3,
        density in 0.0f64..1.0,
        seed in 0u64..1000,
    ) {
        if !Isa::Avx512.is_available() {
            return Ok(());
        }
        let padding = match pad {
            0 => Padding::Same,
            1 => Padding::Valid,
            _ => Padding::Explicit { top: kh - 1, bottom: 0, left: 0, right: kw - 1 },
        };
        let geom = Conv2dGeometry::new(batch, cin, (h, w), cout, (kh, kw)).with_padding(padding);
        let Ok(p) = geom.plan("test") else { return Ok(()) };
        prop_assume!(direct::applies(&p, None));
        let (_, mask) = random_mask(&geom, density, seed);
        let lists = mask.skip_lists().unwrap();
        check_lists(&mask, &lists.fwd, &lists.adj);
        check_skip_passes(&geom, &mask, seed + 7, &format!("{geom:?}, density {density:.2}"));
    }
}
