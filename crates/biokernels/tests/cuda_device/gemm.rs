//! The masked GEMM products (forward, dX, dW) on every device, against float64 references.

use super::common::*;

/// Masks covering every tile kind at the GPU's 64 × 64 tiles and the CPU's 16 × 16: a band
/// (full, partial and empty tiles), a random half (almost only partial tiles), everything, and
/// a mask with whole empty tile columns and rows.
fn masks(k: usize, n: usize) -> Vec<(&'static str, TileMap)> {
    let t = TileSize::CPU_DEFAULT;
    let coin = random(k * n, 99);
    vec![
        (
            "band",
            TileMap::from_fn(k, n, t, |r, c| (r * n / k).abs_diff(c) <= n / 5).unwrap(),
        ),
        (
            "random",
            TileMap::from_fn(k, n, t, |r, c| coin[r * n + c] > 0.0).unwrap(),
        ),
        ("full", TileMap::full(k, n, t).unwrap()),
        (
            "holes",
            TileMap::from_fn(k, n, t, |r, c| (c / 64) % 2 == 0 && (r / 64) % 3 != 1).unwrap(),
        ),
    ]
}

/// float64 reference of `op` (entries of dW off the mask are 0).
fn reference(op: GemmOp, a: &[f32], b: &[f32], mask: &TileMap, m: usize) -> Vec<f64> {
    let [k, n] = mask.shape();
    let keep = mask.to_values();
    let masked = |w: &[f32]| -> Vec<f64> {
        w.iter()
            .zip(&keep)
            .map(|(&v, &k)| f64::from(v) * f64::from(k))
            .collect()
    };
    match op {
        GemmOp::Forward => {
            let w = masked(b);
            let mut y = vec![0f64; m * n];
            for i in 0..m {
                for kk in 0..k {
                    let x = f64::from(a[i * k + kk]);
                    for j in 0..n {
                        y[i * n + j] += x * w[kk * n + j];
                    }
                }
            }
            y
        }
        GemmOp::Dx => {
            let w = masked(b);
            let mut dx = vec![0f64; m * k];
            for i in 0..m {
                for kk in 0..k {
                    let mut s = 0f64;
                    for j in 0..n {
                        s += f64::from(a[i * n + j]) * w[kk * n + j];
                    }
                    dx[i * k + kk] = s;
                }
            }
            dx
        }
        GemmOp::Dw => {
            let mut dw = vec![0f64; k * n];
            for i in 0..m {
                for kk in 0..k {
                    let x = f64::from(a[i * k + kk]);
                    for j in 0..n {
                        dw[kk * n + j] += x * f64::from(b[i * n + j]);
                    }
                }
            }
            for (d, &kp) in dw.iter_mut().zip(&keep) {
                *d *= f64::from(kp);
            }
            dw
        }
    }
}

/// Runs `op` on `dev` into `out` (`(rows, cols)`), as the CPU or the GPU path.
#[allow(clippy::too_many_arguments)]
fn run(
    dev: &Device,
    op: GemmOp,
    p: Precision,
    a: (&[f32], usize, usize),
    b: (&[f32], usize, usize),
    mask: &TileMap,
    out: (&mut [f32], usize, usize),
    beta: Beta,
) -> biokernels::Result<()> {
    let a = MatRef::new(a.0, a.1, a.2)?;
    let b = MatRef::new(b.0, b.1, b.2)?;
    let out = MatMut::new(out.0, out.1, out.2)?;
    match dev {
        Device::Cpu => match op {
            GemmOp::Forward => masked_matmul(a, b, mask, out, beta),
            GemmOp::Dx => masked_matmul_dx(a, b, mask, out, beta),
            GemmOp::Dw => masked_matmul_dw(a, b, mask, out, beta),
        },
        Device::Cuda(d) => masked_gemm_host(d, op, p, a, b, mask, out, beta),
    }
}

/// Operands of `op` for `(m, k, n)`: `(a, a_shape, b, b_shape, out_shape)`.
#[allow(clippy::type_complexity)]
fn operands(
    op: GemmOp,
    m: usize,
    k: usize,
    n: usize,
    seed: u64,
) -> (Vec<f32>, [usize; 2], Vec<f32>, [usize; 2], [usize; 2]) {
    match op {
        GemmOp::Forward => (random(m * k, seed), [m, k], random(k * n, seed + 1), [k, n], [m, n]),
        GemmOp::Dx => (random(m * n, seed), [m, n], random(k * n, seed + 1), [k, n], [m, k]),
        GemmOp::Dw => (random(m * k, seed), [m, k], random(m * n, seed + 1), [m, n], [k, n]),
    }
}

/// Ragged shapes: every dimension off the 64/128 block sizes somewhere, and one with a long
/// reduction.
const SHAPES: [(usize, usize, usize); 3] = [(130, 200, 150), (37, 64, 257), (200, 700, 96)];

#[test]
fn masked_gemm_matches_f64_reference_on_every_device() {
    for dev in devices("masked_gemm_matches_f64_reference_on_every_device") {
        for &(m, k, n) in &SHAPES {
            for (mask_name, mask) in masks(k, n) {
                for op in GemmOp::ALL {
                    let (a, ash, b, bsh, osh) = operands(op, m, k, n, 7);
                    let want = reference(op, &a, &b, &mask, m);
                    for p in dev.precisions() {
                        let mut out = vec![f32::NAN; osh[0] * osh[1]];
                        run(
                            &dev,
                            op,
                            p,
                            (&a, ash[0], ash[1]),
                            (&b, bsh[0], bsh[1]),
                            &mask,
                            (&mut out, osh[0], osh[1]),
                            Beta::Zero,
                        )
                        .unwrap();
                        let what = format!("{} {} {m}x{k}x{n} {mask_name} {}", dev.label(), op.name(), p.name());
                        assert!(out.iter().all(|v| v.is_finite()), "{what}: output not fully written");
                        let err = rel_error(&out, &want);
                        assert!(
                            err < p.tolerance(),
                            "{what}: relative error {err:.3e} >= {:.0e}",
                            p.tolerance()
                        );
                        if op == GemmOp::Dw {
                            for kk in 0..k {
                                for j in 0..n {
                                    if !mask.get(kk, j) {
                                        assert_eq!(out[kk * n + j], 0.0, "{what}: dW off the mask at ({kk}, {j})");
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn beta_one_accumulates_on_every_device() {
    let (m, k, n) = (70, 130, 90);
    for dev in devices("beta_one_accumulates_on_every_device") {
        let (_, mask) = masks(k, n).swap_remove(0);
        for op in GemmOp::ALL {
            let (a, ash, b, bsh, osh) = operands(op, m, k, n, 21);
            let prev = random(osh[0] * osh[1], 5);
            let product = reference(op, &a, &b, &mask, m);
            for p in dev.precisions() {
                let mut out = prev.clone();
                run(
                    &dev,
                    op,
                    p,
                    (&a, ash[0], ash[1]),
                    (&b, bsh[0], bsh[1]),
                    &mask,
                    (&mut out, osh[0], osh[1]),
                    Beta::One,
                )
                .unwrap();
                // Entries of dW off the mask are left unchanged with Beta::One.
                let want: Vec<f64> = prev.iter().zip(&product).map(|(&p0, &q)| f64::from(p0) + q).collect();
                let err = rel_error(&out, &want);
                assert!(
                    err < p.tolerance(),
                    "{} {} {}: relative error {err:.3e}",
                    dev.label(),
                    op.name(),
                    p.name()
                );
            }
        }
    }
}

#[test]
fn shape_errors_are_typed_on_every_device() {
    for dev in devices("shape_errors_are_typed_on_every_device") {
        let mask = TileMap::full(8, 6, TileSize::CPU_DEFAULT).unwrap();
        let x = random(5 * 7, 1);
        let w = random(8 * 6, 2);
        let mut y = vec![0f32; 5 * 6];
        for p in dev.precisions() {
            let err = run(
                &dev,
                GemmOp::Forward,
                p,
                (&x, 5, 7),
                (&w, 8, 6),
                &mask,
                (&mut y, 5, 6),
                Beta::Zero,
            )
            .unwrap_err();
            assert!(matches!(err, Error::ShapeMismatch { .. }), "{}: {err:?}", dev.label());
        }
    }
}

#[test]
fn no_gpu_is_a_typed_error_not_a_panic() {
    // On any machine: either a device, or CudaUnavailable (no feature) / NoCudaDevice (no
    // driver or GPU). `open_device` turns the error into the CPU fallback.
    match CudaDevice::new(0) {
        Ok(d) => {
            assert!(!d.name().is_empty());
            #[cfg(feature = "cuda")]
            {
                use biokernels::cuda::KernelSource;
                let (cc, sources) = (d.compute_capability(), d.kernel_sources());
                let _ = writeln!(
                    std::io::stderr(),
                    "cuda:0 {} sm_{}{}, driver {:?}, kernels from {sources:?}",
                    d.name(),
                    cc.0,
                    cc.1,
                    d.driver_version()
                );
                // The families with a committed cubin must load it (no JIT at every open).
                if cc.0 == 8 || cc.0 == 9 {
                    let sm = cc.0 * 10;
                    assert_eq!(
                        sources,
                        [KernelSource::Cubin { sm }; 2],
                        "the sm_{sm} cubins were refused"
                    );
                }
            }
        }
        Err(e) => {
            assert!(
                matches!(e, Error::CudaUnavailable | Error::NoCudaDevice { .. }),
                "{e:?}"
            );
            assert!(biokernels::cuda::open_device().is_none());
            if cfg!(feature = "cuda") {
                assert!(matches!(e, Error::NoCudaDevice { .. }), "{e:?}");
            } else {
                assert_eq!(e, Error::CudaUnavailable);
            }
        }
    }
}

/// Every product kernel launched twice on the same inputs (outputs poisoned differently) gives
/// the same bits: no race, no read of uninitialised memory, no order that depends on timing.
#[test]
fn masked_gemm_is_repeatable_bit_for_bit_on_every_device() {
    let (m, k, n) = (200, 700, 96);
    for dev in devices("masked_gemm_is_repeatable_bit_for_bit_on_every_device") {
        for (mask_name, mask) in masks(k, n) {
            for op in GemmOp::ALL {
                let (a, ash, b, bsh, osh) = operands(op, m, k, n, 11);
                for p in dev.precisions() {
                    let runs: Vec<Vec<u32>> = [f32::NAN, 7.0]
                        .into_iter()
                        .map(|poison| {
                            let mut out = vec![poison; osh[0] * osh[1]];
                            run(
                                &dev,
                                op,
                                p,
                                (&a, ash[0], ash[1]),
                                (&b, bsh[0], bsh[1]),
                                &mask,
                                (&mut out, osh[0], osh[1]),
                                Beta::Zero,
                            )
                            .unwrap();
                            out.iter().map(|v| v.to_bits()).collect()
                        })
                        .collect();
                    let differ = runs[0].iter().zip(&runs[1]).filter(|(x, y)| x != y).count();
                    assert_eq!(
                        differ,
                        0,
                        "{} {} {mask_name} {}: {differ} outputs differ between two launches",
                        dev.label(),
                        op.name(),
                        p.name()
                    );
                }
            }
        }
    }
}
