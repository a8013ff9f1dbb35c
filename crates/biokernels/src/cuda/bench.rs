//! The GPU benchmark behind `cargo xtask bench-kernels --cuda`: the masked kernels against
//! cuBLAS dense (`cublasGemmEx` through cudarc) on the same shapes and precision.
//!
//! Shapes: `m = k = n = 4096` (2d grid 64 × 64), `8192` (2d grid 128 × 64) and the paper CNN's
//! `m = 8192, k = 2304, n = 512` (2d grid 48 × 16). Forms: `full` (the masked kernel with a
//! mask that keeps everything), diagonal `r = 0.5` and `r = 0.7`, 2d `w = 0.4`; plus `cublas`.
//! Each (shape, precision, op, form) is timed with CUDA events on the device stream, after
//! warm-up, and the median of `reps` runs is kept.
//!
//! The records have the CPU benchmark's format ([`BenchRecord`]) with `precision` set;
//! `speedup_vs_dense` is `median(cuBLAS, same op, shape, precision) / median`, and `threads`
//! is 0. Before timing, the full-mask kernel's output is compared with cuBLAS's; a relative
//! difference above 10× the precision's tolerance is an error (a broken kernel is not timed).

use super::{CudaDevice, GemmOp, Precision};
use crate::bench::{values, BenchRecord, BenchShape};
use crate::error::{Error, Result};
use crate::gemm::Beta;
use crate::tile_map::{TileMap, TileSize};

/// What the GPU benchmark runs.
#[derive(Debug, Clone)]
pub struct CudaBenchOptions {
    /// Untimed calls per variant.
    pub warmup: usize,
    /// Timed calls per variant (the median is reported).
    pub reps: usize,
    /// Shapes.
    pub shapes: Vec<BenchShape>,
    /// Ops.
    pub ops: Vec<GemmOp>,
    /// Precisions.
    pub precisions: Vec<Precision>,
}

/// The shapes: `4096³`, `8192³` and `8192 × 2304 × 512`.
pub fn cuda_shapes() -> Vec<BenchShape> {
    vec![
        BenchShape {
            m: 4096,
            k: 4096,
            n: 4096,
            a: 64,
            b: 64,
        },
        BenchShape {
            m: 8192,
            k: 8192,
            n: 8192,
            a: 128,
            b: 64,
        },
        BenchShape {
            m: 8192,
            k: 2304,
            n: 512,
            a: 48,
            b: 16,
        },
    ]
}

impl CudaBenchOptions {
    /// The full run: 5 warm-up calls, median of 21, every shape, op and precision.
    pub fn standard() -> Self {
        CudaBenchOptions {
            warmup: 5,
            reps: 21,
            shapes: cuda_shapes(),
            ops: GemmOp::ALL.to_vec(),
            precisions: Precision::ALL.to_vec(),
        }
    }
    /// `--quick`: 2 warm-up calls, median of 5, only `4096³`.
    pub fn quick() -> Self {
        CudaBenchOptions {
            warmup: 2,
            reps: 5,
            shapes: cuda_shapes().into_iter().take(1).collect(),
            ..Self::standard()
        }
    }
}

fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        num += (f64::from(x) - f64::from(y)).powi(2);
        den += f64::from(y).powi(2);
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Runs every case of `opts` on `dev`, calling `on_record` per record.
///
/// # Errors
/// Mask, device and cuBLAS errors; [`Error::CudaOperand`] when the full-mask kernel disagrees
/// with cuBLAS beyond the precision's tolerance.
pub fn run_cuda_cases(
    dev: &CudaDevice,
    opts: &CudaBenchOptions,
    mut on_record: impl FnMut(&BenchRecord),
) -> Result<Vec<BenchRecord>> {
    let blas = dev.cublas()?;
    let tile = TileSize::square(super::GPU_TILE);
    let mut out = Vec::new();
    for &s in &opts.shapes {
        let (m, k, n) = (s.m, s.k, s.n);
        let hx = values(m * k, 1);
        let hw = values(k * n, 2);
        let hdy = values(m * n, 3);
        let mut rng = biomask::Rng::seeded(0);
        let mut masks = vec![("full", String::new(), TileMap::full(k, n, tile)?)];
        for (form, spec, param) in [
            ("diagonal", biomask::MaskSpec::diagonal(0.5), "r=0.5".to_string()),
            ("diagonal", biomask::MaskSpec::diagonal(0.7), "r=0.7".to_string()),
            (
                "2d",
                biomask::MaskSpec::two_d(s.a, s.b, 0.4),
                format!("a={},b={},w=0.4", s.a, s.b),
            ),
        ] {
            let mask = spec.dense(k, n, biomask::Layout::Keras, &mut rng)?;
            masks.push((form, param, TileMap::from_mask(&mask, tile)?));
        }
        let dev_masks = masks
            .iter()
            .map(|(_, _, tm)| dev.upload_tile_map(tm))
            .collect::<Result<Vec<_>>>()?;
        for &p in &opts.precisions {
            let x = dev.upload(&hx, m, k, p)?;
            let w = dev.upload(&hw, k, n, p)?;
            let dy = dev.upload(&hdy, m, n, p)?;
            for &op in &opts.ops {
                let (a, b, shape) = match op {
                    GemmOp::Forward => (&x, &w, [m, n]),
                    GemmOp::Dx => (&dy, &w, [m, k]),
                    GemmOp::Dw => (&x, &dy, [k, n]),
                };
                let mut c = dev.filled(shape[0], shape[1], f32::NAN)?;
                // Correctness gate: the full-mask kernel must agree with cuBLAS.
                dev.cublas_gemm(&blas, op, p, a, b, &mut c)?;
                let reference = dev.download(&c)?;
                dev.masked_gemm(op, p, a, b, &dev_masks[0], &mut c, Beta::Zero)?;
                let ours = dev.download(&c)?;
                let diff = rel_diff(&ours, &reference);
                // A sanity gate against a broken kernel (which is off by O(1)), not the accuracy
                // test: two f32 sums over k = 8192 in different orders already differ by ~1e-5.
                let gate = 10.0 * p.tolerance();
                if !diff.is_finite() || diff > gate {
                    return Err(Error::CudaOperand {
                        op: "bench-kernels --cuda",
                        reason: format!(
                            "{} {m}x{k}x{n} {}: full-mask kernel differs from cuBLAS by {diff:.2e} (gate {gate:.0e})",
                            op.name(),
                            p.name()
                        ),
                    });
                }
                let t_blas = dev.time_median(opts.warmup, opts.reps, || dev.cublas_gemm(&blas, op, p, a, b, &mut c))?;
                let mut variants = vec![("cublas".to_string(), String::new(), 1.0, 1.0, t_blas)];
                for ((form, param, tm), dm) in masks.iter().zip(&dev_masks) {
                    let t = dev.time_median(opts.warmup, opts.reps, || {
                        dev.masked_gemm(op, p, a, b, dm, &mut c, Beta::Zero)
                    })?;
                    variants.push((form.to_string(), param.clone(), tm.density(), tm.work_fraction(), t));
                }
                for (form, param, density, work, med) in variants {
                    let flops = 2.0 * (m * k * n) as f64 * density;
                    let rec = BenchRecord {
                        name: if param.is_empty() {
                            format!("{}/{m}x{k}x{n}/{}/{form}", op.name(), p.name())
                        } else {
                            format!("{}/{m}x{k}x{n}/{}/{form}({param})", op.name(), p.name())
                        },
                        m,
                        k,
                        n,
                        form,
                        param,
                        density,
                        median_s: med,
                        gflops_useful: flops / med / 1e9,
                        speedup_vs_dense: t_blas / med,
                        op: op.name().to_string(),
                        threads: 0,
                        work_fraction: work,
                        precision: Some(p.name().to_string()),
                    };
                    on_record(&rec);
                    out.push(rec);
                }
            }
        }
    }
    Ok(out)
}
