//! The benchmark behind `cargo xtask bench-kernels`: masked GEMM against our dense GEMM and
//! `ndarray`'s matrix product, on the shapes of the issue; and [`run_conv_cases`], the masked
//! convolutions of the paper CNN ([`paper_cnn_layers`]) against the unmasked ones.
//!
//! Cases: `m=256, k=2304, n=512` (the paper CNN's `SzDense`) and `m=k=n=2048`; forms full,
//! diagonal `r=0.5`, diagonal `r=0.7` and 2d `w=0.4` (grid widths `a`, `b` ≈ the square roots
//! of `k` and `n`: 48 × 16 for 2304 → 512, 32 × 32 for 2048 → 2048); ops forward, dX and dW.
//! Each op also runs our dense GEMM on a one-thread pool (`full_1thread`) and
//! `ndarray::linalg::general_mat_mul` (`ndarray_dot`, what `dot` calls; single-threaded unless
//! ndarray's `matrixmultiply-threading` feature is on).
//!
//! Variants of one (shape, op) are timed in interleaved rounds (after warm-up), so a slow
//! phase of a noisy machine hits them alike; each record holds the median.
//!
//! `gflops_useful = 2·m·k·n·density / median_s / 1e9` counts only the products the mask keeps;
//! `speedup_vs_dense = median_s(our full-mask GEMM, same op and shape) / median_s`.

use std::time::Instant;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2};
use serde::Serialize;

use crate::conv::{conv2d, conv2d_backward_input, conv2d_backward_weight, Conv2dGeometry, ConvMask, Padding};
use crate::error::{Error, Result};
use crate::gemm::{
    masked_matmul, masked_matmul_dw, masked_matmul_dx, matmul, matmul_nt, matmul_tn, Beta, Isa, MatMut, MatRef,
};
use crate::tile_map::{TileMap, TileSize};

/// One line of the benchmark's JSON output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchRecord {
    /// `op/mxkxn/form(param)`.
    pub name: String,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// `full`, `diagonal`, `2d`, `full_1thread` or `ndarray_dot`.
    pub form: String,
    /// `r=0.5`, `a=32,b=32,w=0.4`, or empty.
    pub param: String,
    /// Fraction of weights the mask keeps (1 for dense).
    pub density: f64,
    /// Median wall time of one call, seconds.
    pub median_s: f64,
    /// Useful GFLOP/s: `2·m·k·n·density / median_s / 1e9`.
    pub gflops_useful: f64,
    /// Our full-mask GEMM's median (same op and shape) over this median.
    pub speedup_vs_dense: f64,
    /// `forward`, `dx` or `dw`.
    pub op: String,
    /// Threads the variant ran on.
    pub threads: usize,
    /// Fraction of the dense work inside non-empty tiles (`TileMap::work_fraction`).
    pub work_fraction: f64,
    /// GPU records only: `f32`, `tf32` or `bf16` (see `cuda::Precision`). CPU records are f32
    /// and leave it out of the JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
}

/// A benchmark shape with the 2d grid widths to use for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchShape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// `input2d_width` of the 2d mask (≈ √k).
    pub a: usize,
    /// `output2d_width` of the 2d mask (≈ √n).
    pub b: usize,
}

/// The shapes of the issue: `256×2304×512` (2d grid 48 × 16) and `2048³` (2d grid 32 × 32).
pub fn default_shapes() -> Vec<BenchShape> {
    vec![
        BenchShape {
            m: 256,
            k: 2304,
            n: 512,
            a: 48,
            b: 16,
        },
        BenchShape {
            m: 2048,
            k: 2048,
            n: 2048,
            a: 32,
            b: 32,
        },
    ]
}

/// The three products of a masked dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `Y = X (W ⊙ M)`.
    Forward,
    /// `dX = dY (W ⊙ M)ᵀ`.
    Dx,
    /// `dW = (Xᵀ dY) ⊙ M`.
    Dw,
}

impl Op {
    /// `forward`, `dx`, `dw`.
    pub fn name(self) -> &'static str {
        match self {
            Op::Forward => "forward",
            Op::Dx => "dx",
            Op::Dw => "dw",
        }
    }
}

/// What to run and how often.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Untimed calls per variant before timing.
    pub warmup: usize,
    /// Timed calls per variant (the median is reported).
    pub reps: usize,
    /// Tile size of the tile maps.
    pub tile: TileSize,
    /// Shapes to run.
    pub shapes: Vec<BenchShape>,
    /// Ops to run.
    pub ops: Vec<Op>,
    /// Also time `ndarray` and our dense GEMM on one thread.
    pub baselines: bool,
}

impl BenchOptions {
    /// The full run: 2 warm-up calls, median of 7.
    pub fn standard() -> Self {
        BenchOptions {
            warmup: 2,
            reps: 7,
            tile: TileSize::CPU_DEFAULT,
            shapes: default_shapes(),
            ops: vec![Op::Forward, Op::Dx, Op::Dw],
            baselines: true,
        }
    }
    /// `--quick`: 1 warm-up call, median of 3.
    pub fn quick() -> Self {
        BenchOptions {
            warmup: 1,
            reps: 3,
            ..Self::standard()
        }
    }
}

/// Deterministic values in `[-1, 1)`, never exactly 0.
pub(crate) fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let v = ((s >> 40) as f32 + 0.5) / (1u64 << 23) as f32 - 1.0;
            if v == 0.0 {
                0.5
            } else {
                v
            }
        })
        .collect()
}

struct Variant<'a> {
    form: &'static str,
    param: String,
    density: f64,
    work: f64,
    threads: usize,
    call: Box<dyn FnMut() -> Result<()> + Send + 'a>,
    times: Vec<f64>,
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn masked_call<'a>(
    op: Op,
    s: BenchShape,
    x: &'a [f32],
    w: &'a [f32],
    dy: &'a [f32],
    tm: &'a TileMap,
) -> Box<dyn FnMut() -> Result<()> + Send + 'a> {
    let (m, k, n) = (s.m, s.k, s.n);
    match op {
        Op::Forward => {
            let mut y = vec![0f32; m * n];
            Box::new(move || {
                masked_matmul(
                    MatRef::new(x, m, k)?,
                    MatRef::new(w, k, n)?,
                    tm,
                    MatMut::new(&mut y, m, n)?,
                    Beta::Zero,
                )
            })
        }
        Op::Dx => {
            let mut dx = vec![0f32; m * k];
            Box::new(move || {
                masked_matmul_dx(
                    MatRef::new(dy, m, n)?,
                    MatRef::new(w, k, n)?,
                    tm,
                    MatMut::new(&mut dx, m, k)?,
                    Beta::Zero,
                )
            })
        }
        Op::Dw => {
            let mut dw = vec![0f32; k * n];
            Box::new(move || {
                masked_matmul_dw(
                    MatRef::new(x, m, k)?,
                    MatRef::new(dy, m, n)?,
                    tm,
                    MatMut::new(&mut dw, k, n)?,
                    Beta::Zero,
                )
            })
        }
    }
}

fn dense_call<'a>(
    op: Op,
    s: BenchShape,
    x: &'a [f32],
    w: &'a [f32],
    dy: &'a [f32],
) -> Box<dyn FnMut() -> Result<()> + Send + 'a> {
    let (m, k, n) = (s.m, s.k, s.n);
    match op {
        Op::Forward => {
            let mut y = vec![0f32; m * n];
            Box::new(move || {
                matmul(
                    MatRef::new(x, m, k)?,
                    MatRef::new(w, k, n)?,
                    MatMut::new(&mut y, m, n)?,
                    Beta::Zero,
                )
            })
        }
        Op::Dx => {
            let mut dx = vec![0f32; m * k];
            Box::new(move || {
                matmul_nt(
                    MatRef::new(dy, m, n)?,
                    MatRef::new(w, k, n)?,
                    MatMut::new(&mut dx, m, k)?,
                    Beta::Zero,
                )
            })
        }
        Op::Dw => {
            let mut dw = vec![0f32; k * n];
            Box::new(move || {
                matmul_tn(
                    MatRef::new(x, m, k)?,
                    MatRef::new(dy, m, n)?,
                    MatMut::new(&mut dw, k, n)?,
                    Beta::Zero,
                )
            })
        }
    }
}

fn ndarray_call<'a>(
    op: Op,
    s: BenchShape,
    x: &'a [f32],
    w: &'a [f32],
    dy: &'a [f32],
) -> Result<Box<dyn FnMut() -> Result<()> + Send + 'a>> {
    let (m, k, n) = (s.m, s.k, s.n);
    let shape_err = |rows: usize, cols: usize, len: usize| Error::BufferSize { rows, cols, len };
    let xa = ArrayView2::from_shape((m, k), x).map_err(|_| shape_err(m, k, x.len()))?;
    let wa = ArrayView2::from_shape((k, n), w).map_err(|_| shape_err(k, n, w.len()))?;
    let dya = ArrayView2::from_shape((m, n), dy).map_err(|_| shape_err(m, n, dy.len()))?;
    Ok(match op {
        Op::Forward => {
            let mut y = Array2::<f32>::zeros((m, n));
            Box::new(move || {
                general_mat_mul(1.0, &xa, &wa, 0.0, &mut y);
                Ok(())
            })
        }
        Op::Dx => {
            let mut dx = Array2::<f32>::zeros((m, k));
            Box::new(move || {
                general_mat_mul(1.0, &dya, &wa.t(), 0.0, &mut dx);
                Ok(())
            })
        }
        Op::Dw => {
            let mut dw = Array2::<f32>::zeros((k, n));
            Box::new(move || {
                general_mat_mul(1.0, &xa.t(), &dya, 0.0, &mut dw);
                Ok(())
            })
        }
    })
}

/// Runs every (shape, op, form) of `opts`, calling `on_record` as each (shape, op) finishes,
/// and returns all records.
///
/// # Errors
/// Mask generation, tile map or kernel errors, and thread-pool creation.
pub fn run_cases(opts: &BenchOptions, mut on_record: impl FnMut(&BenchRecord)) -> Result<Vec<BenchRecord>> {
    let threads = rayon::current_num_threads();
    let pool1 = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| Error::ThreadPool(e.to_string()))?;
    let mut out = Vec::new();
    for &s in &opts.shapes {
        let (m, k, n) = (s.m, s.k, s.n);
        let x = values(m * k, 1);
        let w = values(k * n, 2);
        let dy = values(m * n, 3);
        let mut rng = biomask::Rng::seeded(0);
        let mut masks = Vec::new();
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
            masks.push((form, param, TileMap::from_mask(&mask, opts.tile)?));
        }
        for &op in &opts.ops {
            let mut variants: Vec<Variant<'_>> = Vec::new();
            variants.push(Variant {
                form: "full",
                param: String::new(),
                density: 1.0,
                work: 1.0,
                threads,
                call: dense_call(op, s, &x, &w, &dy),
                times: Vec::new(),
            });
            for (form, param, tm) in &masks {
                variants.push(Variant {
                    form,
                    param: param.clone(),
                    density: tm.density(),
                    work: tm.work_fraction(),
                    threads,
                    call: masked_call(op, s, &x, &w, &dy, tm),
                    times: Vec::new(),
                });
            }
            if opts.baselines {
                let mut inner = dense_call(op, s, &x, &w, &dy);
                let pool = &pool1;
                variants.push(Variant {
                    form: "full_1thread",
                    param: String::new(),
                    density: 1.0,
                    work: 1.0,
                    threads: 1,
                    call: Box::new(move || pool.install(&mut inner)),
                    times: Vec::new(),
                });
                variants.push(Variant {
                    form: "ndarray_dot",
                    param: String::new(),
                    density: 1.0,
                    work: 1.0,
                    threads: 1,
                    call: ndarray_call(op, s, &x, &w, &dy)?,
                    times: Vec::new(),
                });
            }
            for _ in 0..opts.warmup {
                for v in variants.iter_mut() {
                    (v.call)()?;
                }
            }
            for _ in 0..opts.reps.max(1) {
                for v in variants.iter_mut() {
                    let t0 = Instant::now();
                    (v.call)()?;
                    v.times.push(t0.elapsed().as_secs_f64());
                }
            }
            let mut medians: Vec<f64> = variants.iter_mut().map(|v| median(&mut v.times)).collect();
            let dense = medians[0];
            for (v, med) in variants.iter().zip(medians.iter_mut()) {
                let flops = 2.0 * (m * k * n) as f64 * v.density;
                let rec = BenchRecord {
                    name: if v.param.is_empty() {
                        format!("{}/{m}x{k}x{n}/{}", op.name(), v.form)
                    } else {
                        format!("{}/{m}x{k}x{n}/{}({})", op.name(), v.form, v.param)
                    },
                    m,
                    k,
                    n,
                    form: v.form.to_string(),
                    param: v.param.clone(),
                    density: v.density,
                    median_s: *med,
                    gflops_useful: flops / *med / 1e9,
                    speedup_vs_dense: dense / *med,
                    op: op.name().to_string(),
                    threads: v.threads,
                    work_fraction: v.work,
                    precision: None,
                };
                on_record(&rec);
                out.push(rec);
            }
        }
    }
    Ok(out)
}

/// A convolution layer of the conv benchmark.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvBenchLayer {
    /// A short label, e.g. `conv2_32to32`.
    pub name: &'static str,
    /// The layer's geometry (batch included).
    pub geom: Conv2dGeometry,
}

/// The convolutions of the paper CNN (the Keras CIFAR-10 network whose flattened 6·6·64 = 2304
/// features feed the `SzDense` 2304 → 512): 3 → 32 and 32 → 32 on 32 × 32 (same, then
/// valid), 32 → 64 and 64 → 64 on 15 × 15 (same, then valid), 3 × 3 kernels.
pub fn paper_cnn_layers(batch: usize) -> Vec<ConvBenchLayer> {
    let layer = |name, cin, cout, hw, padding| ConvBenchLayer {
        name,
        geom: Conv2dGeometry::new(batch, cin, (hw, hw), cout, (3, 3)).with_padding(padding),
    };
    vec![
        layer("conv1_3to32", 3, 32, 32, Padding::Same),
        layer("conv2_32to32", 32, 32, 32, Padding::Valid),
        layer("conv3_32to64", 32, 64, 15, Padding::Same),
        layer("conv4_64to64", 64, 64, 15, Padding::Valid),
    ]
}

/// The grid width of a mouse-mimetic layer of `n` channels: the divisor of `n` closest to
/// `√n` (as `bioexperiments::cifar` builds the mouse-cifar masks: 4 for 32 channels, 8 for 64).
fn mouse_grid_width(n: usize) -> usize {
    let s = (n as f64).sqrt();
    (1..=n)
        .filter(|d| n.is_multiple_of(*d))
        .min_by(|a, b| (*a as f64 - s).abs().total_cmp(&(*b as f64 - s).abs()))
        .unwrap_or(1)
}

/// Times [`conv2d`], [`conv2d_backward_input`] and [`conv2d_backward_weight`] on each layer,
/// unmasked (`full`), with diagonal `r = 0.5` and 2d `w = 0.4` masks (grid widths ≈ the
/// square roots of the channel counts), and with the mouse-cifar network's 2d `w = 0.5` masks
/// (grid widths: the divisors nearest the square roots), variants interleaved as in
/// [`run_cases`]. Records use the im2col GEMM shape: `m = batch·oh·ow`, `k = kh·kw·cin`,
/// `n = cout`, op `conv_forward` / `conv_dx` / `conv_dw`, name `op/layer/form(param)`;
/// `speedup_vs_dense` is against the unmasked convolution. `opts.shapes` and
/// `opts.baselines` are ignored.
///
/// # Errors
/// Mask generation, geometry and kernel errors.
pub fn run_conv_cases(
    opts: &BenchOptions,
    layers: &[ConvBenchLayer],
    mut on_record: impl FnMut(&BenchRecord),
) -> Result<Vec<BenchRecord>> {
    let threads = rayon::current_num_threads();
    let mut out = Vec::new();
    for layer in layers {
        let g = layer.geom;
        let (oh, ow) = g.output_hw()?;
        let nx = g.in_channels / g.groups;
        let (m, k, n) = (g.batch * oh * ow, g.kernel.0 * g.kernel.1 * nx, g.out_channels);
        let x = values(g.input_len(), 1);
        let w = values(g.weight_len(), 2);
        let dy = values(g.output_len()?, 3);
        let isqrt = |v: usize| ((v as f64).sqrt().round() as usize).clamp(1, v);
        let (a, b) = (isqrt(nx), isqrt(g.out_channels));
        let (ma, mb) = (mouse_grid_width(nx), mouse_grid_width(g.out_channels));
        let mut masks: Vec<(&'static str, String, Option<ConvMask>)> = vec![("full", String::new(), None)];
        for (form, spec, param) in [
            ("diagonal", biomask::MaskSpec::diagonal(0.5), "r=0.5".to_string()),
            ("2d", biomask::MaskSpec::two_d(a, b, 0.4), format!("a={a},b={b},w=0.4")),
            // The mouse-cifar network's masks (`bioexperiments::cifar::mouse_cifar_model`).
            (
                "2d",
                biomask::MaskSpec::two_d(ma, mb, 0.5),
                format!("a={ma},b={mb},w=0.5"),
            ),
        ] {
            let mut rng = biomask::Rng::seeded(0);
            let mask = spec.conv(
                g.in_channels,
                g.out_channels,
                g.groups,
                g.kernel,
                biomask::Layout::Keras,
                &mut rng,
            )?;
            masks.push((form, param, Some(ConvMask::from_mask(&mask, g.groups, opts.tile)?)));
        }
        for &op in &opts.ops {
            let mut variants: Vec<Variant<'_>> = Vec::new();
            for (form, param, mask) in &masks {
                let mask = mask.as_ref();
                let (density, work) = mask.map_or((1.0, 1.0), |m| (m.density(), m.work_fraction()));
                let (x, w, dy, g) = (&x, &w, &dy, &g);
                let call: Box<dyn FnMut() -> Result<()> + Send + '_> = match op {
                    Op::Forward => {
                        let mut y = vec![0f32; dy.len()];
                        Box::new(move || conv2d(g, x, w, mask, None, &mut y))
                    }
                    Op::Dx => {
                        let mut dx = vec![0f32; x.len()];
                        Box::new(move || conv2d_backward_input(g, dy, w, mask, &mut dx))
                    }
                    Op::Dw => {
                        let mut dw = vec![0f32; w.len()];
                        Box::new(move || conv2d_backward_weight(g, x, dy, mask, &mut dw))
                    }
                };
                variants.push(Variant {
                    form,
                    param: param.clone(),
                    density,
                    work,
                    threads,
                    call,
                    times: Vec::new(),
                });
            }
            for _ in 0..opts.warmup {
                for v in variants.iter_mut() {
                    (v.call)()?;
                }
            }
            for _ in 0..opts.reps.max(1) {
                for v in variants.iter_mut() {
                    let t0 = Instant::now();
                    (v.call)()?;
                    v.times.push(t0.elapsed().as_secs_f64());
                }
            }
            let medians: Vec<f64> = variants.iter_mut().map(|v| median(&mut v.times)).collect();
            let dense = medians[0];
            let op_name = format!("conv_{}", op.name());
            for (v, &med) in variants.iter().zip(&medians) {
                let flops = 2.0 * (m * k * n) as f64 * v.density;
                let rec = BenchRecord {
                    name: if v.param.is_empty() {
                        format!("{op_name}/{}/{}", layer.name, v.form)
                    } else {
                        format!("{op_name}/{}/{}({})", layer.name, v.form, v.param)
                    },
                    m,
                    k,
                    n,
                    form: v.form.to_string(),
                    param: v.param.clone(),
                    density: v.density,
                    median_s: med,
                    gflops_useful: flops / med / 1e9,
                    speedup_vs_dense: dense / med,
                    op: op_name.clone(),
                    threads: v.threads,
                    work_fraction: v.work,
                    precision: None,
                };
                on_record(&rec);
                out.push(rec);
            }
        }
    }
    Ok(out)
}

/// A plain-text table of the records (one line each).
pub fn format_table(records: &[BenchRecord]) -> String {
    let mut s = format!(
        "{:<8} {:<16} {:<13} {:<16} {:>7} {:>6} {:>3} {:>10} {:>9} {:>8}\n",
        "op", "m x k x n", "form", "param", "density", "work", "thr", "median ms", "GFLOP/s", "speedup"
    );
    for r in records {
        s.push_str(&format!(
            "{:<8} {:<16} {:<13} {:<16} {:>7.3} {:>6.3} {:>3} {:>10.3} {:>9.1} {:>7.2}x\n",
            r.op,
            format!("{}x{}x{}", r.m, r.k, r.n),
            r.form,
            r.param,
            r.density,
            r.work_fraction,
            r.threads,
            r.median_s * 1e3,
            r.gflops_useful,
            r.speedup_vs_dense
        ));
    }
    s
}

/// A one-line description of the machine's kernel choice, for reports.
pub fn kernel_info() -> String {
    let isa = Isa::detect();
    let (mr, nr) = isa.micro_tile();
    format!(
        "micro-kernel {} ({mr}x{nr}), KC {}, {} rayon threads",
        isa.name(),
        crate::gemm::KC,
        rayon::current_num_threads()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_run_produces_consistent_records() {
        let opts = BenchOptions {
            warmup: 0,
            reps: 1,
            tile: TileSize::CPU_DEFAULT,
            shapes: vec![BenchShape {
                m: 8,
                k: 64,
                n: 48,
                a: 8,
                b: 8,
            }],
            ops: vec![Op::Forward, Op::Dw],
            baselines: true,
        };
        let mut seen = 0;
        let recs = run_cases(&opts, |_| seen += 1).unwrap();
        assert_eq!(recs.len(), 2 * 6);
        assert_eq!(seen, recs.len());
        for r in &recs {
            assert!(r.median_s > 0.0 && r.gflops_useful > 0.0, "{r:?}");
            let want = 2.0 * (8 * 64 * 48) as f64 * r.density / r.median_s / 1e9;
            assert!((r.gflops_useful - want).abs() <= 1e-9 * want);
        }
        assert!(recs
            .iter()
            .any(|r| r.form == "2d" && r.param == "a=8,b=8,w=0.4" && r.density < 1.0));
        assert_eq!(recs[0].speedup_vs_dense, 1.0);
        assert!(format_table(&recs).lines().count() == recs.len() + 1);
    }

    #[test]
    fn tiny_conv_run_produces_consistent_records() {
        let opts = BenchOptions {
            warmup: 0,
            reps: 1,
            ops: vec![Op::Forward, Op::Dx, Op::Dw],
            ..BenchOptions::quick()
        };
        let layers = [ConvBenchLayer {
            name: "tiny",
            geom: Conv2dGeometry::new(2, 16, (6, 5), 16, (3, 3)).with_padding(Padding::Same),
        }];
        let recs = run_conv_cases(&opts, &layers, |_| {}).unwrap();
        assert_eq!(recs.len(), 3 * 4);
        for r in &recs {
            assert_eq!((r.m, r.k, r.n), (2 * 6 * 5, 9 * 16, 16), "{r:?}");
            assert!(r.median_s > 0.0 && r.gflops_useful > 0.0, "{r:?}");
            assert!(r.op.starts_with("conv_") && r.name.contains("/tiny/"), "{r:?}");
        }
        assert!(recs
            .iter()
            .any(|r| r.form == "2d" && r.param == "a=4,b=4,w=0.4" && r.density < 1.0));
        assert!(recs
            .iter()
            .any(|r| r.form == "2d" && r.param == "a=4,b=4,w=0.5" && r.density < 1.0));
        assert!(recs.iter().any(|r| r.form == "diagonal" && r.density < 0.8));
        assert_eq!(recs[0].speedup_vs_dense, 1.0);
        let cnn = paper_cnn_layers(8);
        assert_eq!(cnn.len(), 4);
        assert_eq!(cnn[3].geom.output_hw().unwrap(), (13, 13));
    }
}
