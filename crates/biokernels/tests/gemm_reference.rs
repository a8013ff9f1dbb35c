//! Every product against a naive f64 reference: many shapes (non-multiples of the tile and
//! micro-kernel sizes, m/k/n = 1, several reduction chunks), masks (empty, full, band, 2d,
//! random, several tile sizes), every micro-kernel this CPU runs, overwrite and accumulate.

use biokernels::gemm::{
    masked_matmul, masked_matmul_dw, masked_matmul_dx, matmul, matmul_nt, matmul_tn, Beta, Isa, MatMut, MatRef, Options,
};
use biokernels::{matmul_prepacked, Error, PackedB, TileMap, TileSize};
use proptest::prelude::*;

/// Deterministic non-zero values: sign random, magnitude in [0.25, 1.25).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            let mag = 0.25 + u;
            if s & 1 == 0 {
                mag
            } else {
                -mag
            }
        })
        .collect()
}

fn random_mask(k: usize, n: usize, p: f64, seed: u64) -> Vec<f32> {
    values(k * n, seed)
        .iter()
        .map(|v| if ((v.abs() - 0.25) as f64) < p { 1.0 } else { 0.0 })
        .collect()
}

/// Reference product with f64 accumulation: returns (value, Σ|terms|) per entry of
/// `C[i][j] = Σ_p A(i,p) B(p,j)` with accessors.
fn reference(
    m: usize,
    kk: usize,
    n: usize,
    a: impl Fn(usize, usize) -> f64,
    b: impl Fn(usize, usize) -> f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut c = vec![0f64; m * n];
    let mut s = vec![0f64; m * n];
    for i in 0..m {
        for p in 0..kk {
            let av = a(i, p);
            for j in 0..n {
                let t = av * b(p, j);
                c[i * n + j] += t;
                s[i * n + j] += t.abs();
            }
        }
    }
    (c, s)
}

fn assert_close(what: &str, got: &[f32], base: &[f32], want: &[f64], scale: &[f64]) {
    assert_eq!(got.len(), want.len());
    for i in 0..got.len() {
        let expected = base[i] as f64 + want[i];
        let tol = 1e-5 * (scale[i] + base[i].abs() as f64) + 1e-30;
        let err = (got[i] as f64 - expected).abs();
        assert!(
            err <= tol,
            "{what}: entry {i}: got {}, want {expected} (err {err:e}, tol {tol:e})",
            got[i]
        );
    }
}

struct Case {
    m: usize,
    k: usize,
    n: usize,
    mask: Vec<f32>,
    tile: TileSize,
    label: String,
}

/// Runs the three masked products (and, for a full mask, the dense ones) for one case on every
/// available ISA with both betas.
fn check_case(c: &Case) {
    let (m, k, n) = (c.m, c.k, c.n);
    let tm = TileMap::from_values(&c.mask, k, n, c.tile).unwrap();
    let x = values(m * k, 1 + m as u64 * 31 + k as u64);
    let w = values(k * n, 2 + n as u64 * 17);
    let dy = values(m * n, 3 + (m * n) as u64);
    let wm = |p: usize, j: usize| (w[p * n + j] * c.mask[p * n + j]) as f64;
    let (y_ref, y_s) = reference(m, k, n, |i, p| x[i * k + p] as f64, wm);
    let (dx_ref, dx_s) = reference(m, n, k, |i, j| dy[i * n + j] as f64, |j, p| wm(p, j));
    let (dw_full, dw_s) = reference(k, m, n, |p, i| x[i * k + p] as f64, |i, j| dy[i * n + j] as f64);
    let dw_ref: Vec<f64> = dw_full.iter().zip(&c.mask).map(|(v, &mk)| v * mk as f64).collect();
    let is_full = c.mask.iter().all(|&v| v == 1.0);
    for isa in Isa::available() {
        for beta in [Beta::Zero, Beta::One] {
            let opts = Options { beta, isa: Some(isa) };
            let tag = format!("{} isa={} beta={beta:?}", c.label, isa.name());
            let init = |len: usize, seed: u64| {
                if beta == Beta::One {
                    values(len, seed)
                } else {
                    vec![f32::NAN; len]
                }
            };
            let base = |v: &Vec<f32>| {
                if beta == Beta::One {
                    v.clone()
                } else {
                    vec![0.0; v.len()]
                }
            };

            let mut y = init(m * n, 11);
            let y0 = base(&y);
            masked_matmul(
                MatRef::new(&x, m, k).unwrap(),
                MatRef::new(&w, k, n).unwrap(),
                &tm,
                MatMut::new(&mut y, m, n).unwrap(),
                opts,
            )
            .unwrap();
            assert_close(&format!("forward {tag}"), &y, &y0, &y_ref, &y_s);

            let mut dx = init(m * k, 12);
            let dx0 = base(&dx);
            masked_matmul_dx(
                MatRef::new(&dy, m, n).unwrap(),
                MatRef::new(&w, k, n).unwrap(),
                &tm,
                MatMut::new(&mut dx, m, k).unwrap(),
                opts,
            )
            .unwrap();
            assert_close(&format!("dx {tag}"), &dx, &dx0, &dx_ref, &dx_s);

            let mut dw = init(k * n, 13);
            let dw_init = dw.clone();
            let dw0 = base(&dw);
            masked_matmul_dw(
                MatRef::new(&x, m, k).unwrap(),
                MatRef::new(&dy, m, n).unwrap(),
                &tm,
                MatMut::new(&mut dw, k, n).unwrap(),
                opts,
            )
            .unwrap();
            assert_close(&format!("dw {tag}"), &dw, &dw0, &dw_ref, &dw_s);
            for i in 0..k * n {
                if c.mask[i] == 0.0 {
                    if beta == Beta::Zero {
                        assert_eq!(
                            dw[i].to_bits(),
                            0f32.to_bits(),
                            "dw {tag}: entry {i} off the support must be exactly +0"
                        );
                    } else {
                        assert_eq!(
                            dw[i].to_bits(),
                            dw_init[i].to_bits(),
                            "dw {tag}: entry {i} off the support must be unchanged"
                        );
                    }
                }
            }

            if is_full {
                let mut c1 = init(m * n, 11);
                matmul(
                    MatRef::new(&x, m, k).unwrap(),
                    MatRef::new(&w, k, n).unwrap(),
                    MatMut::new(&mut c1, m, n).unwrap(),
                    opts,
                )
                .unwrap();
                assert_close(&format!("matmul {tag}"), &c1, &y0, &y_ref, &y_s);
                let mut c2 = init(m * k, 12);
                matmul_nt(
                    MatRef::new(&dy, m, n).unwrap(),
                    MatRef::new(&w, k, n).unwrap(),
                    MatMut::new(&mut c2, m, k).unwrap(),
                    opts,
                )
                .unwrap();
                assert_close(&format!("matmul_nt {tag}"), &c2, &dx0, &dx_ref, &dx_s);
                let mut c3 = init(k * n, 13);
                matmul_tn(
                    MatRef::new(&x, m, k).unwrap(),
                    MatRef::new(&dy, m, n).unwrap(),
                    MatMut::new(&mut c3, k, n).unwrap(),
                    opts,
                )
                .unwrap();
                assert_close(&format!("matmul_tn {tag}"), &c3, &dw0, &dw_ref, &dw_s);
            }
        }
    }
}

fn biomask_values(spec: &biomask::MaskSpec, k: usize, n: usize) -> Vec<f32> {
    let mask = spec
        .dense(k, n, biomask::Layout::Keras, &mut biomask::Rng::seeded(0))
        .unwrap();
    mask.channel_values().unwrap().to_vec()
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 7, 5),
    (5, 1, 9),
    (6, 11, 1),
    (3, 5, 7),
    (8, 32, 32),
    (17, 33, 65),
    (9, 257, 33),
    (33, 300, 70),
    (13, 520, 97),
];

#[test]
fn full_and_empty_masks() {
    for &(m, k, n) in SHAPES {
        for (name, v) in [("full", 1.0), ("empty", 0.0)] {
            check_case(&Case {
                m,
                k,
                n,
                mask: vec![v; k * n],
                tile: TileSize::CPU_DEFAULT,
                label: format!("{name} {m}x{k}x{n}"),
            });
        }
    }
}

#[test]
fn random_masks_many_tile_sizes() {
    let tiles = [
        TileSize::CPU_DEFAULT,
        TileSize::new(5, 7),
        TileSize::new(64, 8),
        TileSize::square(1),
        TileSize::new(3, 100),
    ];
    for (t, &(m, k, n)) in SHAPES.iter().enumerate() {
        for (s, p) in [0.3, 0.9].into_iter().enumerate() {
            let tile = tiles[(t + s) % tiles.len()];
            check_case(&Case {
                m,
                k,
                n,
                mask: random_mask(k, n, p, (t * 7 + s) as u64),
                tile,
                label: format!("random p={p} {m}x{k}x{n} tile {tile:?}"),
            });
        }
    }
}

#[test]
fn diagonal_masks() {
    for &(m, k, n) in &[(7, 64, 64), (20, 300, 130), (3, 97, 211), (33, 520, 96), (4, 130, 700)] {
        for r in [0.5, 0.7] {
            for tile in [TileSize::CPU_DEFAULT, TileSize::square(32), TileSize::new(8, 40)] {
                check_case(&Case {
                    m,
                    k,
                    n,
                    mask: biomask_values(&biomask::MaskSpec::diagonal(r), k, n),
                    tile,
                    label: format!("diagonal r={r} {m}x{k}x{n} tile {tile:?}"),
                });
            }
        }
    }
}

#[test]
fn two_d_masks() {
    for &(m, k, n, a, b) in &[(5, 64, 64, 8, 8), (19, 300, 120, 15, 10), (9, 576, 128, 24, 8)] {
        for tile in [TileSize::CPU_DEFAULT, TileSize::square(32)] {
            check_case(&Case {
                m,
                k,
                n,
                mask: biomask_values(&biomask::MaskSpec::two_d(a, b, 0.4), k, n),
                tile,
                label: format!("2d a={a} b={b} {m}x{k}x{n} tile {tile:?}"),
            });
        }
    }
}

/// Block-diagonal masks: one panel's kept rows end exactly where the next panel's begin
/// (regression: runs must never merge across panels).
#[test]
fn block_diagonal_masks() {
    for &(m, k, n, block) in &[(5, 64, 64, 32), (9, 96, 96, 16), (3, 96, 144, 48), (12, 600, 300, 8)] {
        let mask: Vec<f32> = (0..k * n)
            .map(|i| {
                let (r, c) = (i / n, i % n);
                if r * n / k / block == c / block {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        for tile in [TileSize::CPU_DEFAULT, TileSize::square(8)] {
            check_case(&Case {
                m,
                k,
                n,
                mask: mask.clone(),
                tile,
                label: format!("block-diagonal {block} {m}x{k}x{n}"),
            });
        }
    }
}

#[test]
fn band_masks_have_empty_tiles() {
    let v = biomask_values(&biomask::MaskSpec::diagonal(0.5), 512, 512);
    let tm = TileMap::from_values(&v, 512, 512, TileSize::CPU_DEFAULT).unwrap();
    assert!((tm.density() - 0.5).abs() < 0.02, "density {}", tm.density());
    assert!(tm.work_fraction() < 0.6, "work fraction {}", tm.work_fraction());
    let (gr, gc) = tm.grid();
    assert!(
        tm.num_empty() as f64 > 0.4 * (gr * gc) as f64,
        "{} empty of {}",
        tm.num_empty(),
        gr * gc
    );
}

/// Same bits with 1, 2 and 3 threads: the reduction is never split across threads.
#[test]
fn identical_results_for_any_thread_count() {
    let (m, k, n) = (70, 600, 300);
    let mask = biomask_values(&biomask::MaskSpec::two_d(30, 15, 0.4), k, n);
    let tm = TileMap::from_values(&mask, k, n, TileSize::CPU_DEFAULT).unwrap();
    let x = values(m * k, 5);
    let w = values(k * n, 6);
    let dy = values(m * n, 7);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut y = vec![0.0; m * n];
            let mut dx = vec![0.0; m * k];
            let mut dw = vec![0.0; k * n];
            masked_matmul(
                MatRef::new(&x, m, k).unwrap(),
                MatRef::new(&w, k, n).unwrap(),
                &tm,
                MatMut::new(&mut y, m, n).unwrap(),
                Beta::Zero,
            )
            .unwrap();
            masked_matmul_dx(
                MatRef::new(&dy, m, n).unwrap(),
                MatRef::new(&w, k, n).unwrap(),
                &tm,
                MatMut::new(&mut dx, m, k).unwrap(),
                Beta::Zero,
            )
            .unwrap();
            masked_matmul_dw(
                MatRef::new(&x, m, k).unwrap(),
                MatRef::new(&dy, m, n).unwrap(),
                &tm,
                MatMut::new(&mut dw, k, n).unwrap(),
                Beta::Zero,
            )
            .unwrap();
            let mut d = vec![0.0; m * n];
            matmul(
                MatRef::new(&x, m, k).unwrap(),
                MatRef::new(&w, k, n).unwrap(),
                MatMut::new(&mut d, m, n).unwrap(),
                Beta::Zero,
            )
            .unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            (bits(&y), bits(&dx), bits(&dw), bits(&d))
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}

/// `matmul_tn` (A = Sᵀ) and `matmul` (row-major A) read A in place when C is at most two
/// micro-kernel panels wide and pack it otherwise: the same columns come out bit-identical
/// either way, for every micro-kernel, with a partial last row block (m = 8·k + 5 and
/// 6·k + 5) and several reduction chunks.
#[test]
fn a_in_place_matches_packed() {
    let (m, k) = (53, 700);
    for isa in Isa::available() {
        let nr = isa.micro_tile().1;
        let (n_small, n_big) = (2 * nr, 2 * nr + 3);
        let a = values(k * m, 11);
        let b_big = values(k * n_big, 12);
        let b_small: Vec<f32> = b_big.chunks(n_big).flat_map(|r| r[..n_small].to_vec()).collect();
        let opts = Options {
            beta: Beta::Zero,
            isa: Some(isa),
        };
        for transposed in [true, false] {
            let product = |b: &[f32], n: usize| {
                let mut c = vec![0.0; m * n];
                let cm = MatMut::new(&mut c, m, n).unwrap();
                let bm = MatRef::new(b, k, n).unwrap();
                if transposed {
                    matmul_tn(MatRef::new(&a, k, m).unwrap(), bm, cm, opts).unwrap();
                } else {
                    matmul(MatRef::new(&a, m, k).unwrap(), bm, cm, opts).unwrap();
                }
                c
            };
            let (c_small, c_big) = (product(&b_small, n_small), product(&b_big, n_big));
            for i in 0..m {
                for j in 0..n_small {
                    assert_eq!(
                        c_small[i * n_small + j].to_bits(),
                        c_big[i * n_big + j].to_bits(),
                        "{} transposed {transposed} ({i}, {j})",
                        isa.name()
                    );
                }
            }
        }
    }
}

#[test]
fn shape_errors_name_the_op_and_both_shapes() {
    let x = vec![1.0; 6];
    let w = vec![1.0; 12];
    let tm = TileMap::full(4, 3, TileSize::CPU_DEFAULT).unwrap();
    let mut y = vec![0.0; 6];
    let err = masked_matmul(
        MatRef::new(&x, 2, 3).unwrap(),
        MatRef::new(&w, 4, 3).unwrap(),
        &tm,
        MatMut::new(&mut y, 2, 3).unwrap(),
        Beta::Zero,
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::ShapeMismatch {
            op: "masked_matmul",
            lhs: "x",
            lhs_shape: [2, 3],
            rhs: "w",
            rhs_shape: [4, 3]
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("masked_matmul") && msg.contains("[2, 3]") && msg.contains("[4, 3]"),
        "{msg}"
    );

    let tm2 = TileMap::full(3, 4, TileSize::CPU_DEFAULT).unwrap();
    let err = masked_matmul_dx(
        MatRef::new(&x, 2, 3).unwrap(),
        MatRef::new(&w, 4, 3).unwrap(),
        &tm2,
        MatMut::new(&mut y, 2, 3).unwrap(),
        Beta::Zero,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ShapeMismatch {
                op: "masked_matmul_dx",
                lhs: "w",
                rhs: "mask",
                ..
            }
        ),
        "{err}"
    );
    let err = masked_matmul_dx(
        MatRef::new(&x, 2, 3).unwrap(),
        MatRef::new(&w, 4, 3).unwrap(),
        &tm,
        MatMut::new(&mut y, 2, 3).unwrap(),
        Beta::Zero,
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::OutputShape {
            op: "masked_matmul_dx",
            name: "dx",
            expected: [2, 4],
            got: [2, 3]
        }
    );
    let mut dw = vec![0.0; 12];
    let err = masked_matmul_dw(
        MatRef::new(&x, 2, 3).unwrap(),
        MatRef::new(&w, 4, 3).unwrap(),
        &tm,
        MatMut::new(&mut dw, 4, 3).unwrap(),
        Beta::Zero,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ShapeMismatch {
                op: "masked_matmul_dw",
                lhs: "x",
                rhs: "dy",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        MatRef::new(&x, 4, 2).unwrap_err(),
        Error::BufferSize {
            rows: 4,
            cols: 2,
            len: 6
        }
    );
    let err = matmul(
        MatRef::new(&x, 3, 2).unwrap(),
        MatRef::new(&x, 3, 2).unwrap(),
        MatMut::new(&mut y, 3, 2).unwrap(),
        Beta::Zero,
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("matmul:"), "{err}");
}

#[test]
fn zero_sized_dimensions() {
    let tm = TileMap::full(0, 4, TileSize::CPU_DEFAULT).unwrap();
    let mut y = vec![f32::NAN; 12];
    masked_matmul(
        MatRef::new(&[], 3, 0).unwrap(),
        MatRef::new(&[], 0, 4).unwrap(),
        &tm,
        MatMut::new(&mut y, 3, 4).unwrap(),
        Beta::Zero,
    )
    .unwrap();
    assert!(y.iter().all(|&v| v == 0.0));
    let mut y = vec![2.0; 12];
    matmul(
        MatRef::new(&[], 3, 0).unwrap(),
        MatRef::new(&[], 0, 4).unwrap(),
        MatMut::new(&mut y, 3, 4).unwrap(),
        Beta::One,
    )
    .unwrap();
    assert!(y.iter().all(|&v| v == 2.0));
    matmul(
        MatRef::new(&[], 0, 5).unwrap(),
        MatRef::new(&[0.0; 10], 5, 2).unwrap(),
        MatMut::new(&mut [], 0, 2).unwrap(),
        Beta::Zero,
    )
    .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn random_shapes_and_masks(
        m in 1usize..24,
        k in 1usize..300,
        n in 1usize..80,
        p in 0.0f64..1.0,
        tr in 1usize..40,
        tc in 1usize..70,
        seed in 0u64..1000,
    ) {
        check_case(&Case {
            m, k, n,
            mask: random_mask(k, n, p, seed),
            tile: TileSize::new(tr, tc),
            label: format!("proptest {m}x{k}x{n} p={p:.2} tile {tr}x{tc}"),
        });
    }
}

/// `PackedB` + `matmul_prepacked` against the f64 reference and, bit for bit, against the
/// products that pack B at every call (`masked_matmul` / `matmul` for `PackedB::new`,
/// `masked_matmul_dx` / `matmul_nt` for `PackedB::transposed`): every micro-kernel, both betas,
/// with and without a mask, the same packed operand reused for two left-hand sides.
fn check_prepacked(m: usize, k: usize, n: usize, mask: &[f32], tile: TileSize, label: &str) {
    let tm = TileMap::from_values(mask, k, n, tile).unwrap();
    let w = values(k * n, 5 + k as u64);
    let xs = [values(m * k, 6 + m as u64), values(m * k, 7 + n as u64)];
    let dys = [values(m * n, 8 + m as u64), values(m * n, 9)];
    for isa in Isa::available() {
        for beta in [Beta::Zero, Beta::One] {
            let opts = Options { beta, isa: Some(isa) };
            let tag = format!("{label} isa={} beta={beta:?}", isa.name());
            let start = |len: usize| {
                if beta == Beta::One {
                    values(len, 13)
                } else {
                    vec![f32::NAN; len]
                }
            };
            for masked in [true, false] {
                let mk = |p: usize, j: usize| if masked { mask[p * n + j] as f64 } else { 1.0 };
                let tmask = masked.then_some(&tm);
                let fwd = PackedB::new(MatRef::new(&w, k, n).unwrap(), tmask, opts).unwrap();
                let bwd = PackedB::transposed(MatRef::new(&w, k, n).unwrap(), tmask, opts).unwrap();
                assert_eq!(fwd.shape(), [k, n]);
                assert_eq!(bwd.shape(), [n, k]);
                for (x, dy) in xs.iter().zip(&dys) {
                    // Forward: x (m, k) · (W ⊙ M).
                    let mut got = start(m * n);
                    let mut want = got.clone();
                    let base = if beta == Beta::One {
                        got.clone()
                    } else {
                        vec![0.0; m * n]
                    };
                    matmul_prepacked(
                        MatRef::new(x, m, k).unwrap(),
                        &fwd,
                        MatMut::new(&mut got, m, n).unwrap(),
                        beta,
                    )
                    .unwrap();
                    let (xr, wr, wantm) = (
                        MatRef::new(x, m, k).unwrap(),
                        MatRef::new(&w, k, n).unwrap(),
                        MatMut::new(&mut want, m, n).unwrap(),
                    );
                    match tmask {
                        Some(t) => masked_matmul(xr, wr, t, wantm, opts).unwrap(),
                        None => matmul(xr, wr, wantm, opts).unwrap(),
                    }
                    let (r, sc) = reference(
                        m,
                        k,
                        n,
                        |i, p| x[i * k + p] as f64,
                        |p, j| w[p * n + j] as f64 * mk(p, j),
                    );
                    assert_close(
                        &format!("prepacked forward {tag} masked={masked}"),
                        &got,
                        &base,
                        &r,
                        &sc,
                    );
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "prepacked forward {tag} masked={masked}");
                    // Input gradient: dy (m, n) · (W ⊙ M)ᵀ.
                    let mut got = start(m * k);
                    let mut want = got.clone();
                    let base = if beta == Beta::One {
                        got.clone()
                    } else {
                        vec![0.0; m * k]
                    };
                    matmul_prepacked(
                        MatRef::new(dy, m, n).unwrap(),
                        &bwd,
                        MatMut::new(&mut got, m, k).unwrap(),
                        beta,
                    )
                    .unwrap();
                    let (dyr, wr, wantm) = (
                        MatRef::new(dy, m, n).unwrap(),
                        MatRef::new(&w, k, n).unwrap(),
                        MatMut::new(&mut want, m, k).unwrap(),
                    );
                    match tmask {
                        Some(t) => masked_matmul_dx(dyr, wr, t, wantm, opts).unwrap(),
                        None => matmul_nt(dyr, wr, wantm, opts).unwrap(),
                    }
                    let (r, sc) = reference(
                        m,
                        n,
                        k,
                        |i, j| dy[i * n + j] as f64,
                        |j, p| w[p * n + j] as f64 * mk(p, j),
                    );
                    assert_close(&format!("prepacked dx {tag} masked={masked}"), &got, &base, &r, &sc);
                    assert_eq!(bits(&got), bits(&want), "prepacked dx {tag} masked={masked}");
                }
            }
        }
    }
}

#[test]
fn prepacked_b_rnn_sizes_and_errors() {
    // The fused RNN's products: a half batch of 64 states by 220 × 220, ~0.48 dense.
    check_prepacked(
        64,
        220,
        220,
        &random_mask(220, 220, 0.48, 3),
        TileSize::CPU_DEFAULT,
        "rnn 64x220x220",
    );
    let w = values(12, 1);
    let packed = PackedB::new(MatRef::new(&w, 3, 4).unwrap(), None, Beta::Zero).unwrap();
    let mut c = vec![0.0; 8];
    let e = matmul_prepacked(
        MatRef::new(&w[..6], 2, 3).unwrap(),
        &packed,
        MatMut::new(&mut c[..6], 2, 3).unwrap(),
        Beta::Zero,
    )
    .unwrap_err();
    assert!(e.to_string().contains("matmul_prepacked"), "{e}");
    let e = matmul_prepacked(
        MatRef::new(&w[..4], 2, 2).unwrap(),
        &packed,
        MatMut::new(&mut c, 2, 4).unwrap(),
        Beta::Zero,
    )
    .unwrap_err();
    assert!(e.to_string().contains("matmul_prepacked"), "{e}");
    let wrong = TileMap::from_values(&[1.0; 12], 4, 3, TileSize::square(2)).unwrap();
    assert!(PackedB::new(MatRef::new(&w, 3, 4).unwrap(), Some(&wrong), Beta::Zero).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn prepacked_b_random_shapes_and_masks(
        m in 1usize..20,
        k in 1usize..300,
        n in 1usize..70,
        p in 0.0f64..1.0,
        tr in 1usize..40,
        tc in 1usize..40,
        seed in 0u64..1000,
    ) {
        check_prepacked(m, k, n, &random_mask(k, n, p, seed), TileSize::new(tr, tc), &format!("proptest {m}x{k}x{n} p={p:.2} tile {tr}x{tc}"));
    }
}
