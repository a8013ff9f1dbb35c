//! The exact densities of `../shared/reference/schizo_mouse.md` (measured by running the original
//! code), pinned here.

use biomask::{Layout, Mask, MaskSpec, Rng};

fn dense(spec: &MaskSpec, nx: usize, ny: usize) -> Mask {
    spec.dense(nx, ny, Layout::Keras, &mut Rng::seeded(0)).unwrap()
}

/// Tables print 6 decimals; the value must round to the printed one.
fn assert_rounds_to(got: f64, printed: f64, decimals: i32, what: &str) {
    let scale = 10f64.powi(decimals);
    assert!(
        ((got * scale).round() - (printed * scale).round()).abs() < 0.5,
        "{what}: density {got} does not round to {printed}"
    );
}

#[test]
fn diagonal_64x32_r05_has_exactly_1034_ones() {
    let m = dense(&MaskSpec::diagonal(0.5), 64, 32);
    assert_eq!(m.num_ones(), 1034);
    assert_eq!(m.num_weights(), 2048);
}

#[test]
fn diagonal_density_table() {
    let table: [(usize, usize, [f64; 3]); 4] = [
        (64, 32, [0.802734, 0.504883, 0.301758]),
        (100, 37, [0.803243, 0.501081, 0.302703]),
        (512, 512, [0.800827, 0.498726, 0.299576]),
        (2304, 512, [0.800344, 0.500283, 0.300191]),
    ];
    for (nx, ny, dens) in table {
        for (r, want) in [0.2, 0.5, 0.7].into_iter().zip(dens) {
            let m = dense(&MaskSpec::diagonal(r), nx, ny);
            assert_rounds_to(m.density(), want, 6, &format!("diagonal {nx}x{ny} r={r}"));
        }
    }
}

#[test]
fn cifar_2304x512_sweep() {
    let sweep = [
        (0.0, 1.0),
        (0.25, 0.750339),
        (0.5, 0.500283),
        (0.7, 0.300191),
        (0.8, 0.200136),
        (0.9, 0.100069),
        (0.95, 0.050032),
    ];
    for (r, want) in sweep {
        let m = dense(&MaskSpec::diagonal(r), 2304, 512);
        assert_rounds_to(m.density(), want, 6, &format!("2304x512 r={r}"));
    }
}

#[test]
fn two_d_density_tables() {
    let ws = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0];
    let table: [(usize, usize, [f64; 8]); 3] = [
        (64, 8, [0.1182, 0.2471, 0.3896, 0.4561, 0.6055, 0.7441, 0.8555, 0.9775]),
        (
            256,
            16,
            [0.1201, 0.2068, 0.3469, 0.4713, 0.6257, 0.7534, 0.8471, 0.9756],
        ),
        (
            1024,
            32,
            [0.1056, 0.2171, 0.3419, 0.4788, 0.6185, 0.7464, 0.8508, 0.9754],
        ),
    ];
    for (n, a, dens) in table {
        for (w, want) in ws.into_iter().zip(dens) {
            let m = dense(&MaskSpec::two_d(a, a, w), n, n);
            assert_rounds_to(m.density(), want, 4, &format!("2d {n} ({a},{a},{w})"));
        }
    }
}

#[test]
fn two_d_other_cases() {
    let cases = [
        (256, 64, 16, 8, 0.6, 0.625671),
        (100, 37, 10, 6, 0.5, 0.468649),
        (768, 256, 16, 16, 0.4, 0.343333),
        (512, 512, 16, 16, 0.4, 0.345154),
    ];
    for (nx, ny, a, b, w, want) in cases {
        let m = dense(&MaskSpec::two_d(a, b, w), nx, ny);
        assert_rounds_to(m.density(), want, 6, &format!("2d {nx}->{ny} ({a},{b},{w})"));
    }
}

/// The 100 -> 37 (10, 6, 0.5) mask leaves output 36 dead (37 is not a multiple of 6).
#[test]
fn two_d_reports_dead_outputs() {
    let m = dense(&MaskSpec::two_d(10, 6, 0.5), 100, 37);
    assert_eq!(m.dead_outputs(), vec![36]);
    let m = dense(&MaskSpec::two_d(16, 16, 0.4), 512, 512);
    assert!(m.dead_outputs().is_empty());
}

/// Upstream-exact but surprising outcomes are named by `notes()` (the CLI prints them).
#[test]
fn surprising_upstream_outcomes_are_noted() {
    // gaussian r = 1: half-bandwidth 0 switches the window off (density 1); r = 0.99 is narrow.
    let full = dense(
        &MaskSpec::Gaussian {
            param_reduction: 1.0,
            halfbandwidth: 0.0,
        },
        8,
        8,
    );
    assert_eq!(full.density(), 1.0);
    assert!(full.notes()[0].contains("all ones"), "{:?}", full.notes());
    let narrow = dense(
        &MaskSpec::Gaussian {
            param_reduction: 0.99,
            halfbandwidth: 0.0,
        },
        8,
        8,
    );
    assert!(
        narrow.density() < 0.2 && narrow.notes().is_empty(),
        "{}",
        narrow.density()
    );
    // 2d: 15 inputs on a 10-wide grid, 37 outputs on a 6-wide grid.
    let notes = dense(&MaskSpec::two_d(10, 6, 0.5), 15, 37).notes();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("nx = 15") && notes[1].contains("ny = 37"),
        "{notes:?}"
    );
    assert!(dense(&MaskSpec::two_d(10, 6, 0.5), 100, 36).notes().is_empty());
    assert!(dense(&MaskSpec::diagonal(0.5), 15, 37).notes().is_empty());
}

/// The percentages printed by the authors' notebooks (`100 / w_corr`), bit for bit.
#[test]
fn notebook_percentages_are_exact() {
    let mut rng = Rng::seeded(0);
    let spec = |a, b| MaskSpec::two_d(a, b, 0.4);
    let pct = |m: &Mask| 100.0 / m.w_corr();
    let lin = spec(32, 16).dense(1024, 512, Layout::Torch, &mut rng).unwrap();
    assert_eq!(pct(&lin), 34.18846130371094);
    let conv = spec(3, 4).conv(6, 16, 1, (5, 5), Layout::Torch, &mut rng).unwrap();
    assert_eq!(pct(&conv), 33.333333333333336);
    // mConvTranspose2d(in, out): nx = out channels, ny = in channels.
    let t1 = spec(16, 16)
        .conv_transpose(512, 256, 1, (4, 4), Layout::Torch, &mut rng)
        .unwrap();
    assert_eq!(pct(&t1), 34.515380859375);
    let t2 = spec(16, 8)
        .conv_transpose(256, 128, 1, (4, 4), Layout::Torch, &mut rng)
        .unwrap();
    assert_eq!(pct(&t2), 34.4970703125);
    let t3 = spec(8, 8)
        .conv_transpose(128, 64, 1, (4, 4), Layout::Torch, &mut rng)
        .unwrap();
    assert_eq!(pct(&t3), 35.888671875);
}

#[test]
fn diagonal_edge_cases() {
    // r = 0: full.
    assert_eq!(dense(&MaskSpec::diagonal(0.0), 64, 32).density(), 1.0);
    // r = 1: empty, counted as 0 ones (upstream SzDense reports -1), w_corr stays 1.
    let m = dense(&MaskSpec::diagonal(1.0), 64, 32);
    assert_eq!(m.num_ones(), 0);
    assert_eq!(m.w_corr(), 1.0);
    assert_eq!(m.dead_outputs().len(), 32);
    // ny == 1: full mask, even at r = 1.
    assert_eq!(dense(&MaskSpec::diagonal(0.9), 64, 1).density(), 1.0);
    // nx == 1: full unless r = 1.
    assert_eq!(dense(&MaskSpec::diagonal(0.9), 1, 50).density(), 1.0);
    assert_eq!(dense(&MaskSpec::diagonal(1.0), 1, 50).num_ones(), 0);
}

#[test]
fn two_d_differs_from_the_precise_circle_where_documented() {
    // The ceil version differs from the strict circle `dx² + dy² < w²` at exactly 32 entries for
    // 64x64 (8,8,0.5) and 128 for 256x256 (16,16,0.5); 0 for w = 0.4 and 0.6.
    fn circle_diff(n: usize, a: usize, w: f64) -> usize {
        let m = MaskSpec::two_d(a, a, w)
            .dense(n, n, Layout::Keras, &mut Rng::seeded(0))
            .unwrap();
        let g = n / a;
        let mut diff = 0;
        for ix in 0..n {
            let (ox, oy) = ((ix % a) as f64 / a as f64, (ix / a) as f64 / g as f64);
            for iy in 0..n {
                let (px, py) = ((iy % a) as f64 / a as f64, (iy / a) as f64 / g as f64);
                let precise = (px - ox).powi(2) + (py - oy).powi(2) < w * w;
                if precise != (m.get(0, 0, ix, iy).unwrap() == 1.0) {
                    diff += 1;
                }
            }
        }
        diff
    }
    assert_eq!(circle_diff(64, 8, 0.5), 32);
    assert_eq!(circle_diff(256, 16, 0.5), 128);
    assert_eq!(circle_diff(64, 8, 0.4), 0);
    assert_eq!(circle_diff(64, 8, 0.6), 0);
}
