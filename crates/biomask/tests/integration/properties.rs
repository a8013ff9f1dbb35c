//! Invariants of the mask forms, checked with proptest over random sizes and parameters.

use biomask::{two_d_density_limit, LayerKind, Layout, Mask, MaskSpec, Rng};
use proptest::prelude::*;

fn dense(spec: &MaskSpec, nx: usize, ny: usize) -> Mask {
    spec.dense(nx, ny, Layout::Keras, &mut Rng::seeded(0)).unwrap()
}

fn column(m: &Mask, y: usize) -> Vec<f32> {
    (0..m.nx()).map(|x| m.get(0, 0, x, y).unwrap()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Each column of a diagonal mask is one contiguous run of ones (or empty).
    #[test]
    fn diagonal_columns_are_contiguous(nx in 1usize..120, ny in 1usize..120, r in 0.0f64..=1.0) {
        let m = dense(&MaskSpec::diagonal(r), nx, ny);
        for y in 0..ny {
            let col = column(&m, y);
            let runs = col.windows(2).filter(|w| w[0] == 0.0 && w[1] == 1.0).count()
                + usize::from(col[0] == 1.0);
            prop_assert!(runs <= 1, "column {} has {} runs", y, runs);
        }
    }

    /// The band is symmetric in (nx, ny): diagonal(nx, ny) == diagonal(ny, nx) transposed.
    #[test]
    fn diagonal_is_transpose_symmetric(nx in 2usize..100, ny in 2usize..100, r in 0.0f64..1.0) {
        let a = dense(&MaskSpec::diagonal(r), nx, ny);
        let b = dense(&MaskSpec::diagonal(r), ny, nx);
        for x in 0..nx {
            for y in 0..ny {
                prop_assert_eq!(a.get(0, 0, x, y), b.get(0, 0, y, x));
            }
        }
    }

    /// More reduction never adds weights.
    #[test]
    fn diagonal_density_is_non_increasing(nx in 1usize..150, ny in 1usize..150, r1 in 0.0f64..=1.0, r2 in 0.0f64..=1.0) {
        let (lo, hi) = if r1 <= r2 { (r1, r2) } else { (r2, r1) };
        let a = dense(&MaskSpec::diagonal(lo), nx, ny);
        let b = dense(&MaskSpec::diagonal(hi), nx, ny);
        prop_assert!(b.num_ones() <= a.num_ones());
    }

    /// |density - (1 - r)| <= 2 / min(nx, ny): each of the ny columns is off from its continuous
    /// length by less than 2 cells (two band edges), and likewise per row.
    #[test]
    fn diagonal_density_close_to_one_minus_r(nx in 2usize..300, ny in 2usize..300, r in 0.0f64..=1.0) {
        let m = dense(&MaskSpec::diagonal(r), nx, ny);
        let bound = 2.0 / nx.min(ny) as f64;
        prop_assert!((m.density() - (1.0 - r)).abs() <= bound,
            "density {} r {} bound {}", m.density(), r, bound);
    }

    /// Conv expansion equals the channel mask at every tap for the non-random forms.
    #[test]
    fn conv_taps_repeat_the_channel_mask(nx in 1usize..40, ny in 2usize..40, kh in 1usize..4, kw in 1usize..4, r in 0.0f64..=1.0) {
        for spec in [MaskSpec::diagonal(r), MaskSpec::two_d(1, 1, 0.5), MaskSpec::Full] {
            let chan = dense(&spec, nx, ny);
            let conv = spec.build(LayerKind::Conv { kernel: (kh, kw) }, nx, ny, Layout::Keras, &mut Rng::seeded(1)).unwrap();
            prop_assert_eq!(conv.num_ones(), kh * kw * chan.num_ones());
            prop_assert_eq!(conv.density(), chan.density());
            for i in 0..kh { for j in 0..kw { for x in 0..nx { for y in 0..ny {
                prop_assert_eq!(conv.get(i, j, x, y), chan.get(0, 0, x, y));
            }}}}
        }
    }

    /// Same seed, same mask; the PyTorch layout is the Keras layout transposed.
    #[test]
    fn random_forms_are_reproducible(nx in 1usize..50, ny in 1usize..50, r in 0.0f64..=1.0, seed in any::<u32>()) {
        for spec in [MaskSpec::Random { param_reduction: r }, MaskSpec::Individual { param_reduction: r }, MaskSpec::Kernel { param_reduction: r }] {
            for rng in [Rng::numpy(seed), Rng::python(i128::from(seed)), Rng::seeded(u64::from(seed))] {
                let a = spec.dense(nx, ny, Layout::Keras, &mut rng.clone()).unwrap();
                let b = spec.dense(nx, ny, Layout::Keras, &mut rng.clone()).unwrap();
                prop_assert_eq!(a.keras_values(), b.keras_values());
            }
        }
        let m = MaskSpec::diagonal(r).dense(nx, ny, Layout::Keras, &mut Rng::seeded(0)).unwrap();
        let keras = m.to_layout(Layout::Keras);
        let torch = m.to_layout(Layout::Torch);
        for x in 0..nx { for y in 0..ny {
            prop_assert_eq!(keras[x * ny + y], torch[y * nx + x]);
        }}
    }

    /// The gaussian window has mean 1 and peaks on the diagonal line.
    #[test]
    fn gaussian_window_has_mean_one(nx in 2usize..80, ny in 2usize..80, r in 0.05f64..0.95) {
        let m = dense(&MaskSpec::Gaussian { param_reduction: r, halfbandwidth: 0.0 }, nx, ny);
        let v = m.keras_values();
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        prop_assert!((mean - 1.0).abs() < 1e-5, "mean {}", mean);
        prop_assert!(m.density() > 0.0 && m.density() <= 1.0);
    }
}

/// On fine grids the 2d density approaches πw² - 8/3 w³ + w⁴/2.
#[test]
fn two_d_density_approaches_the_continuum_limit() {
    for w in [0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0] {
        let limit = two_d_density_limit(w).unwrap();
        let coarse = (dense(&MaskSpec::two_d(8, 8, w), 64, 64).density() - limit).abs();
        let fine = (dense(&MaskSpec::two_d(48, 48, w), 2304, 2304).density() - limit).abs();
        assert!(fine < 0.02, "w={w}: fine-grid density off by {fine}");
        assert!(fine <= coarse + 1e-3, "w={w}: fine {fine} vs coarse {coarse}");
    }
    assert!(two_d_density_limit(1.2).is_none());
}

/// For w >= sqrt(2) every pair is within reach: the mask is full.
#[test]
fn two_d_is_full_beyond_sqrt2() {
    assert_eq!(dense(&MaskSpec::two_d(10, 10, 1.415), 100, 100).density(), 1.0);
    // The default 1.41 is just below sqrt(2); for 100x100 (10,10) the mask is still full.
    assert_eq!(dense(&MaskSpec::two_d(10, 10, 1.41), 100, 100).density(), 1.0);
}
