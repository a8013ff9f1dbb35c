//! The training kernels and the training-path ops on every device, against float64 references.

use super::common::*;

/// The CPU side of the training kernels' test: the same formulas in plain f32 loops (the
/// project's CPU implementations live in bioautograd / biolayers, which depend on this crate).
mod cpu_train {
    pub fn softmax_xent(z: &[f32], labels: &[f32], classes: usize, scale: f32) -> (Vec<f32>, Vec<f32>) {
        let rows = labels.len();
        let (mut loss, mut dz) = (vec![0f32; rows], vec![0f32; z.len()]);
        for r in 0..rows {
            let zr = &z[r * classes..(r + 1) * classes];
            let mx = zr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = zr.iter().map(|v| (v - mx).exp()).sum();
            let lab = labels[r] as usize;
            loss[r] = sum.ln() + mx - zr[lab];
            for j in 0..classes {
                dz[r * classes + j] = ((zr[j] - mx).exp() / sum - f32::from(u8::from(j == lab))) * scale;
            }
        }
        (loss, dz)
    }
}

#[test]
fn training_kernels_match_f64_reference_on_every_device() {
    use biokernels::cuda::OptimizerStep;
    let (rows, classes) = (300, 10);
    let z: Vec<f32> = random(rows * classes, 31).iter().map(|v| 4.0 * v).collect();
    let labels: Vec<f32> = random(rows, 32)
        .iter()
        .map(|v| (((v + 1.0) * 5.0) as usize % classes) as f32)
        .collect();
    let scale = 1.0 / rows as f32;
    // float64 references
    let mut want_loss = vec![0f64; rows];
    let mut want_dz = vec![0f64; rows * classes];
    for r in 0..rows {
        let zr: Vec<f64> = z[r * classes..(r + 1) * classes]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let mx = zr.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = zr.iter().map(|v| (v - mx).exp()).sum();
        let lab = labels[r] as usize;
        want_loss[r] = sum.ln() + mx - zr[lab];
        for j in 0..classes {
            want_dz[r * classes + j] = ((zr[j] - mx).exp() / sum - f64::from(u8::from(j == lab))) * f64::from(scale);
        }
    }
    let (n, c, hw) = (3, 5, 40);
    let dyc = random(n * c * hw, 33);
    let mut want_db = vec![0f64; c];
    for (i, &v) in dyc.iter().enumerate() {
        want_db[(i / hw) % c] += f64::from(v);
    }
    // Adam (Keras) three steps from zero state, float64 replica.
    let len = 500;
    let w0 = random(len, 34);
    let grads: Vec<Vec<f32>> = (0..3).map(|t| random(len, 40 + t)).collect();
    let (lr, b1, b2, eps) = (1e-3f64, 0.9f64, 0.999f64, 1e-7f64);
    let mut ww: Vec<f64> = w0.iter().map(|&v| f64::from(v)).collect();
    let (mut mm, mut vv) = (vec![0f64; len], vec![0f64; len]);
    let mut steps = Vec::new();
    for (t, g) in grads.iter().enumerate() {
        let t = t as i32 + 1;
        let (bc1, bc2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        steps.push(OptimizerStep::Adam {
            beta1: b1 as f32,
            beta2: b2 as f32,
            eps: eps as f32,
            step: (lr * bc2.sqrt() / bc1) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            torch: false,
            weight_decay: 0.0,
        });
        for i in 0..len {
            let gi = f64::from(g[i]);
            mm[i] = b1 * mm[i] + (1.0 - b1) * gi;
            vv[i] = b2 * vv[i] + (1.0 - b2) * gi * gi;
            ww[i] -= lr * bc2.sqrt() / bc1 * mm[i] / (vv[i].sqrt() + eps);
        }
    }
    for dev in devices("training_kernels_match_f64_reference_on_every_device") {
        let (loss, dz, db, w) = match &dev {
            Device::Cpu => {
                let (loss, dz) = cpu_train::softmax_xent(&z, &labels, classes, scale);
                let mut db = vec![0f32; c];
                for (i, &v) in dyc.iter().enumerate() {
                    db[(i / hw) % c] += v;
                }
                let mut w = w0.clone();
                let (mut m, mut v) = (vec![0f32; len], vec![0f32; len]);
                for (g, st) in grads.iter().zip(&steps) {
                    let OptimizerStep::Adam {
                        beta1,
                        beta2,
                        eps,
                        step,
                        ..
                    } = *st
                    else {
                        unreachable!()
                    };
                    for i in 0..len {
                        m[i] = beta1 * m[i] + (1.0 - beta1) * g[i];
                        v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i];
                        w[i] -= step * m[i] / (v[i].sqrt() + eps);
                    }
                }
                (loss, dz, db, w)
            }
            // The typed CUDA API (index buffers, `upload_into`, ...) exists with the feature only.
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => {
                let gz = d.upload(&z, rows, classes, Precision::F32).unwrap();
                let gl = d.upload(&labels, rows, 1, Precision::F32).unwrap();
                let mut gloss = d.filled(rows, 1, f32::NAN).unwrap();
                let mut gdz = d.filled(rows, classes, f32::NAN).unwrap();
                d.softmax_cross_entropy(&gz, &gl, scale, &mut gloss, &mut gdz).unwrap();
                let gdy = d.upload(&dyc, n, c * hw, Precision::F32).unwrap();
                let mut gdb = d.filled(c, 1, f32::NAN).unwrap();
                d.bias_grad(&gdy, c, hw, &mut gdb).unwrap();
                let mut gw = d.upload(&w0, len, 1, Precision::F32).unwrap();
                let mut gm = d.filled(len, 1, 0.0).unwrap();
                let mut gv = d.filled(len, 1, 0.0).unwrap();
                for (g, st) in grads.iter().zip(&steps) {
                    let gg = d.upload(g, len, 1, Precision::F32).unwrap();
                    d.optimizer_step(*st, &mut gw, &gg, &mut gm, &mut gv).unwrap();
                }
                (
                    d.download(&gloss).unwrap(),
                    d.download(&gdz).unwrap(),
                    d.download(&gdb).unwrap(),
                    d.download(&gw).unwrap(),
                )
            }
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => unreachable!("no CUDA device exists without the `cuda` feature"),
        };
        let label = dev.label();
        for (name, got, want) in [
            ("softmax_xent loss", &loss, &want_loss),
            ("softmax_xent grad", &dz, &want_dz),
            ("bias_grad nchw", &db, &want_db),
            ("adam keras x3", &w, &ww),
        ] {
            assert!(got.iter().all(|v| v.is_finite()), "{label} {name}: not fully written");
            let err = rel_error(got, want);
            assert!(err < 1e-5, "{label} {name}: relative error {err:.3e}");
        }
    }
}

/// Inputs of the GPU training-path ops (issue 6): ragged lengths, random and never zero.
struct TrainOpsInputs {
    x: Vec<f32>,
    dy: Vec<f32>,
    dx0: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    keep: Vec<f32>,
    drop_scale: f32,
    /// `src (37, 23)`, `dst (37, 9)` for `copy_columns` (columns 11..16 into 3..8).
    col_src: Vec<f32>,
    col_dst: Vec<f32>,
    /// `(rows, cols, x, out0)` for `sum_rows_into`.
    sums: Vec<(usize, usize, Vec<f32>, Vec<f32>)>,
    big: Vec<f32>,
    /// `(n, c, hw, y, bias)` for `bias_add_nchw`.
    nchw: (usize, usize, usize, Vec<f32>, Vec<f32>),
    /// `([n, c, h, w], pool, stride, x, dy)`: overlapping 3×3/2 on odd sizes, 2×2/2 dropping a
    /// ragged column, 2×3 with stride (1, 2); values on a coarse grid, so windows tie.
    pools: Vec<PoolCase>,
}

/// `([n, c, h, w], pool, stride, x, dy)`.
type PoolCase = ([usize; 4], [usize; 2], [usize; 2], Vec<f32>, Vec<f32>);

const UNARY_OPS: [biokernels::cuda::UnaryOp; 4] = [
    biokernels::cuda::UnaryOp::Relu,
    biokernels::cuda::UnaryOp::Tanh,
    biokernels::cuda::UnaryOp::Sigmoid,
    biokernels::cuda::UnaryOp::Swish,
];
const BINARY_OPS: [biokernels::cuda::BinaryOp; 3] = [
    biokernels::cuda::BinaryOp::Add,
    biokernels::cuda::BinaryOp::Sub,
    biokernels::cuda::BinaryOp::Mul,
];

impl TrainOpsInputs {
    fn new() -> Self {
        let n = 1237;
        let pools = [
            ([2, 3, 9, 11], [3, 3], [2, 2]),
            ([3, 2, 8, 7], [2, 2], [2, 2]),
            ([1, 5, 6, 9], [2, 3], [1, 2]),
        ]
        .iter()
        .enumerate()
        .map(|(i, &(dims, pool, stride))| {
            let [pn, pc, h, w] = dims;
            let (oh, ow) = ((h - pool[0]) / stride[0] + 1, (w - pool[1]) / stride[1] + 1);
            let x = random(pn * pc * h * w, 70 + i as u64)
                .iter()
                .map(|v| (v * 2.0).round() / 2.0)
                .collect();
            (dims, pool, stride, x, random(pn * pc * oh * ow, 80 + i as u64))
        })
        .collect();
        TrainOpsInputs {
            x: random(n, 51).iter().map(|v| 8.0 * v).collect(),
            dy: random(n, 52),
            dx0: random(n, 53),
            a: random(n, 54),
            b: random(n, 55),
            keep: random(n, 56).iter().map(|&v| f32::from(u8::from(v > -0.2))).collect(),
            drop_scale: (1.0 / (1.0 - 0.4f64)) as f32,
            col_src: random(37 * 23, 64),
            col_dst: random(37 * 9, 65),
            sums: [(77, 300), (1000, 10)]
                .iter()
                .enumerate()
                .map(|(i, &(r, c))| (r, c, random(r * c, 57 + i as u64), random(c, 60 + i as u64)))
                .collect(),
            big: random(100_003, 61),
            nchw: (2, 3, 35, random(2 * 3 * 35, 62), random(3, 63)),
            pools,
        }
    }
}

/// The CPU formulas of the ops, in f32 (those of `bioautograd`: activations, inverted dropout
/// `x·(keep ? scale : 0)`, MSE `Σd²·(1/N)` and `d·(2/N)`, max pooling with the first maximum
/// of a window winning and the backward as a scatter in output order).
mod cpu_ops {
    use biokernels::cuda::{BinaryOp, UnaryOp};

    pub fn unary(op: UnaryOp, x: &[f32]) -> Vec<f32> {
        x.iter()
            .map(|&v| match op {
                UnaryOp::Relu => {
                    if v > 0.0 {
                        v
                    } else {
                        0.0
                    }
                }
                UnaryOp::Tanh => v.tanh(),
                UnaryOp::Sigmoid => sigmoid(v),
                UnaryOp::Swish => v * sigmoid(v),
            })
            .collect()
    }

    fn sigmoid(v: f32) -> f32 {
        if v >= 0.0 {
            1.0 / (1.0 + (-v).exp())
        } else {
            let e = v.exp();
            e / (1.0 + e)
        }
    }

    pub fn unary_grad(op: UnaryOp, x: &[f32], y: &[f32], dy: &[f32]) -> Vec<f32> {
        (0..dy.len())
            .map(|i| {
                dy[i]
                    * match op {
                        UnaryOp::Relu => f32::from(u8::from(x[i] > 0.0)),
                        UnaryOp::Tanh => 1.0 - y[i] * y[i],
                        UnaryOp::Sigmoid => y[i] * (1.0 - y[i]),
                        UnaryOp::Swish => {
                            let s = sigmoid(x[i]);
                            s + x[i] * s * (1.0 - s)
                        }
                    }
            })
            .collect()
    }

    pub fn binary(op: BinaryOp, a: &[f32], b: &[f32]) -> Vec<f32> {
        a.iter()
            .zip(b)
            .map(|(&u, &v)| match op {
                BinaryOp::Add => u + v,
                BinaryOp::Sub => u - v,
                BinaryOp::Mul => u * v,
            })
            .collect()
    }

    /// `(y, argmax)` of valid max pooling.
    pub fn max_pool(x: &[f32], dims: [usize; 4], pool: [usize; 2], stride: [usize; 2]) -> (Vec<f32>, Vec<usize>) {
        let [n, c, h, w] = dims;
        let (oh, ow) = ((h - pool[0]) / stride[0] + 1, (w - pool[1]) / stride[1] + 1);
        let (mut y, mut arg) = (Vec::new(), Vec::new());
        for p in 0..n * c {
            for i in 0..oh {
                for j in 0..ow {
                    let (mut best, mut at) = (f32::NEG_INFINITY, usize::MAX);
                    for di in 0..pool[0] {
                        for dj in 0..pool[1] {
                            let k = (p * h + i * stride[0] + di) * w + j * stride[1] + dj;
                            if at == usize::MAX || x[k] > best {
                                best = x[k];
                                at = k;
                            }
                        }
                    }
                    y.push(best);
                    arg.push(at);
                }
            }
        }
        (y, arg)
    }
}

/// Runs every op of the GPU training path on `dev`; `(name, output)` in a fixed order. The CPU
/// device runs the CPU formulas ([`cpu_ops`]).
fn train_ops_outputs(dev: &Device, inp: &TrainOpsInputs) -> Vec<(String, Vec<f32>)> {
    let mut out: Vec<(String, Vec<f32>)> = Vec::new();
    match dev {
        Device::Cpu => {
            for op in UNARY_OPS {
                let y = cpu_ops::unary(op, &inp.x);
                let g = cpu_ops::unary_grad(op, &inp.x, &y, &inp.dy);
                let acc = inp.dx0.iter().zip(&g).map(|(a, b)| a + b).collect();
                out.push((format!("unary {}", op.name()), y));
                out.push((format!("unary_backward {} beta=0", op.name()), g));
                out.push((format!("unary_backward {} beta=1", op.name()), acc));
            }
            for op in BINARY_OPS {
                out.push((format!("binary {}", op.name()), cpu_ops::binary(op, &inp.a, &inp.b)));
            }
            out.push(("axpby beta=0".into(), inp.a.iter().map(|v| -1.5 * v).collect()));
            out.push((
                "axpby beta=0.5".into(),
                inp.a.iter().zip(&inp.b).map(|(x, y)| 0.25 * x + 0.5 * y).collect(),
            ));
            out.push(("fill".into(), vec![-3.5; inp.a.len()]));
            out.push(("copy".into(), inp.b.clone()));
            let (mut c0, mut c1) = (inp.col_dst.clone(), inp.col_dst.clone());
            for r in 0..37 {
                for j in 0..5 {
                    c0[r * 9 + 3 + j] = inp.col_src[r * 23 + 11 + j];
                    c1[r * 9 + 3 + j] += inp.col_src[r * 23 + 11 + j];
                }
            }
            out.push(("copy_columns beta=0".into(), c0));
            out.push(("copy_columns beta=1".into(), c1));
            let s = inp.drop_scale;
            let drop = inp
                .x
                .iter()
                .zip(&inp.keep)
                .map(|(&v, &k)| v * if k != 0.0 { s } else { 0.0 })
                .collect();
            out.push(("dropout".into(), drop));
            let inv_n = 1.0 / inp.a.len() as f32;
            let d: Vec<f32> = inp.a.iter().zip(&inp.b).map(|(u, v)| u - v).collect();
            out.push(("mse loss".into(), vec![d.iter().map(|v| v * v).sum::<f32>() * inv_n]));
            out.push(("mse grad".into(), d.iter().map(|v| v * (2.0 * inv_n)).collect()));
            for (r, c, x, o0) in &inp.sums {
                let mut s = vec![0f32; *c];
                for row in x.chunks(*c) {
                    for (a, v) in s.iter_mut().zip(row) {
                        *a += v;
                    }
                }
                let acc = o0.iter().zip(&s).map(|(a, b)| a + b).collect();
                out.push((format!("sum_rows_into {r}x{c} beta=0"), s));
                out.push((format!("sum_rows_into {r}x{c} beta=1"), acc));
            }
            // The GPU's fixed order: 256 strided partial sums, then a tree (a sequential f32 sum
            // of 10⁵ values drifts by ~1e-5).
            let mut part = [0f32; 256];
            for (i, v) in inp.big.iter().enumerate() {
                part[i % 256] += v;
            }
            let mut half = 128;
            while half > 0 {
                for t in 0..half {
                    part[t] += part[t + half];
                }
                half /= 2;
            }
            out.push(("sum_all".into(), vec![part[0]]));
            let (n, c, hw, y, bias) = &inp.nchw;
            let ys = y.iter().enumerate().map(|(i, v)| v + bias[(i / hw) % c]).collect();
            let _ = n;
            out.push(("bias_add_nchw".into(), ys));
            for (dims, pool, stride, x, dy) in &inp.pools {
                let (y, arg) = cpu_ops::max_pool(x, *dims, *pool, *stride);
                let mut dx = vec![0f32; x.len()];
                for (&k, &g) in arg.iter().zip(dy) {
                    dx[k] += g;
                }
                out.push((format!("max_pool2d {dims:?} {pool:?}/{stride:?} y"), y));
                out.push((
                    format!("max_pool2d {dims:?} {pool:?}/{stride:?} argmax"),
                    arg.iter().map(|&k| k as f32).collect(),
                ));
                out.push((format!("max_pool2d {dims:?} {pool:?}/{stride:?} dx"), dx));
            }
        }
        // The typed CUDA API (index buffers, `upload_into`, ...) exists with the feature only.
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => {
            let up = |v: &[f32]| d.upload(v, 1, v.len(), Precision::F32).unwrap();
            let nan = |len: usize| d.filled(1, len, f32::NAN).unwrap();
            let down = |m: &biokernels::cuda::GpuMatrix| d.download(m).unwrap();
            let n = inp.x.len();
            let (gx, gdy, ga, gb) = (up(&inp.x), up(&inp.dy), up(&inp.a), up(&inp.b));
            for op in UNARY_OPS {
                let mut y = nan(n);
                d.unary(op, &gx, &mut y).unwrap();
                let mut g = nan(n);
                d.unary_backward(op, &gx, &y, &gdy, &mut g, Beta::Zero).unwrap();
                let mut acc = up(&inp.dx0);
                d.unary_backward(op, &gx, &y, &gdy, &mut acc, Beta::One).unwrap();
                out.push((format!("unary {}", op.name()), down(&y)));
                out.push((format!("unary_backward {} beta=0", op.name()), down(&g)));
                out.push((format!("unary_backward {} beta=1", op.name()), down(&acc)));
            }
            for op in BINARY_OPS {
                let mut o = nan(n);
                d.binary(op, &ga, &gb, &mut o).unwrap();
                out.push((format!("binary {}", op.name()), down(&o)));
            }
            let mut y0 = nan(n);
            d.axpby(-1.5, &ga, 0.0, &mut y0).unwrap();
            out.push(("axpby beta=0".into(), down(&y0)));
            let mut y1 = up(&inp.b);
            d.axpby(0.25, &ga, 0.5, &mut y1).unwrap();
            out.push(("axpby beta=0.5".into(), down(&y1)));
            let mut f = nan(n);
            d.fill(&mut f, -3.5).unwrap();
            out.push(("fill".into(), down(&f)));
            let mut c = nan(n);
            d.copy(&gb, &mut c).unwrap();
            out.push(("copy".into(), down(&c)));
            let gsrc = d.upload(&inp.col_src, 37, 23, Precision::F32).unwrap();
            // The block is NaN before a Beta::Zero copy: it must be written, the rest kept.
            let mut c0 = inp.col_dst.clone();
            for r in 0..37 {
                c0[r * 9 + 3..r * 9 + 8].fill(f32::NAN);
            }
            let mut g0 = d.upload(&c0, 37, 9, Precision::F32).unwrap();
            d.copy_columns(&gsrc, 11, &mut g0, 3, 5, Beta::Zero).unwrap();
            let mut g1 = d.upload(&inp.col_dst, 37, 9, Precision::F32).unwrap();
            d.copy_columns(&gsrc, 11, &mut g1, 3, 5, Beta::One).unwrap();
            out.push(("copy_columns beta=0".into(), down(&g0)));
            out.push(("copy_columns beta=1".into(), down(&g1)));
            // The mask is uploaded into a reused buffer, as a training loop does every step.
            let mut mask = d.zeros(1, n).unwrap();
            d.upload_into(&inp.keep, &mut mask).unwrap();
            let mut yd = nan(n);
            d.dropout(&gx, &mask, inp.drop_scale, &mut yd).unwrap();
            let mut host = vec![f32::NAN; n];
            d.download_into(&yd, &mut host).unwrap();
            out.push(("dropout".into(), host));
            let (mut loss, mut dp) = (nan(1), nan(n));
            d.mse(&ga, &gb, 1.0 / n as f32, &mut loss, &mut dp).unwrap();
            out.push(("mse loss".into(), down(&loss)));
            out.push(("mse grad".into(), down(&dp)));
            for (r, cols, x, o0) in &inp.sums {
                let gx = d.upload(x, *r, *cols, Precision::F32).unwrap();
                let mut s = nan(*cols);
                d.sum_rows_into(&gx, &mut s, Beta::Zero).unwrap();
                let mut acc = up(o0);
                d.sum_rows_into(&gx, &mut acc, Beta::One).unwrap();
                out.push((format!("sum_rows_into {r}x{cols} beta=0"), down(&s)));
                out.push((format!("sum_rows_into {r}x{cols} beta=1"), down(&acc)));
            }
            let gbig = up(&inp.big);
            let (mut s1, mut s2) = (nan(1), nan(1));
            d.sum_all(&gbig, &mut s1).unwrap();
            d.sum_all(&gbig, &mut s2).unwrap();
            let (s1, s2) = (down(&s1), down(&s2));
            assert_eq!(s1[0].to_bits(), s2[0].to_bits(), "sum_all is not deterministic");
            out.push(("sum_all".into(), s1));
            let (_, ch, hw, y, bias) = &inp.nchw;
            let mut gy = up(y);
            d.bias_add_nchw(&mut gy, &up(bias), *ch, *hw).unwrap();
            out.push(("bias_add_nchw".into(), down(&gy)));
            for (dims, pool, stride, x, dy) in &inp.pools {
                let mut y = nan(dy.len());
                let mut arg = d.alloc_index(dy.len()).unwrap();
                d.max_pool2d(&up(x), *dims, *pool, *stride, [0, 0], &mut y, &mut arg)
                    .unwrap();
                let mut dx = nan(x.len());
                d.max_pool2d_backward(&up(dy), &arg, &mut dx).unwrap();
                out.push((format!("max_pool2d {dims:?} {pool:?}/{stride:?} y"), down(&y)));
                let idx = d.download_index(&arg).unwrap();
                out.push((
                    format!("max_pool2d {dims:?} {pool:?}/{stride:?} argmax"),
                    idx.iter().map(|&k| k as f32).collect(),
                ));
                out.push((format!("max_pool2d {dims:?} {pool:?}/{stride:?} dx"), down(&dx)));
            }
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => unreachable!("no CUDA device exists without the `cuda` feature"),
    }
    out
}

/// float64 references of [`train_ops_outputs`], same order.
fn train_ops_reference(inp: &TrainOpsInputs) -> Vec<Vec<f64>> {
    let f = |v: &[f32]| -> Vec<f64> { v.iter().map(|&x| f64::from(x)).collect() };
    let mut out = Vec::new();
    let x = f(&inp.x);
    for op in UNARY_OPS {
        let y: Vec<f64> = x
            .iter()
            .map(|&v| match op {
                biokernels::cuda::UnaryOp::Relu => v.max(0.0),
                biokernels::cuda::UnaryOp::Tanh => v.tanh(),
                biokernels::cuda::UnaryOp::Sigmoid => 1.0 / (1.0 + (-v).exp()),
                biokernels::cuda::UnaryOp::Swish => v / (1.0 + (-v).exp()),
            })
            .collect();
        let g: Vec<f64> = (0..x.len())
            .map(|i| {
                f64::from(inp.dy[i])
                    * match op {
                        biokernels::cuda::UnaryOp::Relu => f64::from(u8::from(x[i] > 0.0)),
                        biokernels::cuda::UnaryOp::Tanh => 1.0 - y[i] * y[i],
                        biokernels::cuda::UnaryOp::Sigmoid => y[i] * (1.0 - y[i]),
                        biokernels::cuda::UnaryOp::Swish => {
                            let s = 1.0 / (1.0 + (-x[i]).exp());
                            s + x[i] * s * (1.0 - s)
                        }
                    }
            })
            .collect();
        let acc = g.iter().zip(&inp.dx0).map(|(a, &b)| a + f64::from(b)).collect();
        out.extend([y, g, acc]);
    }
    let (a, b) = (f(&inp.a), f(&inp.b));
    out.push(a.iter().zip(&b).map(|(u, v)| u + v).collect());
    out.push(a.iter().zip(&b).map(|(u, v)| u - v).collect());
    out.push(a.iter().zip(&b).map(|(u, v)| u * v).collect());
    out.push(a.iter().map(|v| -1.5 * v).collect());
    out.push(a.iter().zip(&b).map(|(u, v)| 0.25 * u + 0.5 * v).collect());
    out.push(vec![-3.5; a.len()]);
    out.push(b.clone());
    let (mut c0, mut c1) = (f(&inp.col_dst), f(&inp.col_dst));
    for r in 0..37 {
        for j in 0..5 {
            let v = f64::from(inp.col_src[r * 23 + 11 + j]);
            c0[r * 9 + 3 + j] = v;
            c1[r * 9 + 3 + j] += v;
        }
    }
    out.extend([c0, c1]);
    let s = 1.0 / (1.0 - 0.4);
    out.push(x.iter().zip(&inp.keep).map(|(v, &k)| v * f64::from(k) * s).collect());
    let nn = a.len() as f64;
    out.push(vec![a.iter().zip(&b).map(|(u, v)| (u - v) * (u - v)).sum::<f64>() / nn]);
    out.push(a.iter().zip(&b).map(|(u, v)| 2.0 * (u - v) / nn).collect());
    for (_, c, xs, o0) in &inp.sums {
        let mut s = vec![0f64; *c];
        for row in xs.chunks(*c) {
            for (acc, &v) in s.iter_mut().zip(row) {
                *acc += f64::from(v);
            }
        }
        let acc = s.iter().zip(o0).map(|(u, &v)| u + f64::from(v)).collect();
        out.extend([s, acc]);
    }
    out.push(vec![inp.big.iter().map(|&v| f64::from(v)).sum()]);
    let (_, c, hw, y, bias) = &inp.nchw;
    out.push(
        y.iter()
            .enumerate()
            .map(|(i, &v)| f64::from(v) + f64::from(bias[(i / hw) % c]))
            .collect(),
    );
    for (dims, pool, stride, xs, dy) in &inp.pools {
        // Independent of the CPU loop: the window's maximum, then the first position (row-major)
        // holding it; the gradient is the f64 scatter onto those positions.
        let [n, c, h, w] = *dims;
        let (oh, ow) = ((h - pool[0]) / stride[0] + 1, (w - pool[1]) / stride[1] + 1);
        let (mut y, mut arg) = (Vec::new(), Vec::new());
        for p in 0..n * c {
            for i in 0..oh {
                for j in 0..ow {
                    let window: Vec<usize> = (0..pool[0] * pool[1])
                        .map(|t| (p * h + i * stride[0] + t / pool[1]) * w + j * stride[1] + t % pool[1])
                        .collect();
                    let mx = window.iter().map(|&k| xs[k]).fold(f32::NEG_INFINITY, f32::max);
                    y.push(mx);
                    arg.push(*window.iter().find(|&&k| xs[k] == mx).unwrap());
                }
            }
        }
        let mut dx = vec![0f64; xs.len()];
        for (&k, &g) in arg.iter().zip(dy) {
            dx[k] += f64::from(g);
        }
        out.push(f(&y));
        out.push(arg.iter().map(|&k| k as f64).collect());
        out.push(dx);
    }
    out
}

#[test]
fn training_path_ops_match_f64_reference_on_every_device() {
    let inp = TrainOpsInputs::new();
    let want = train_ops_reference(&inp);
    let cpu = train_ops_outputs(&Device::Cpu, &inp);
    // Exactly the CPU's bits wherever the operation order is fixed and the same: selections,
    // copies, the dropout product, max pooling (ties) and its gradient (same summation order).
    let exact = |name: &str| {
        [
            "unary relu",
            "unary_backward relu beta=0",
            "fill",
            "copy",
            "copy_columns beta=0",
            "copy_columns beta=1",
            "dropout",
        ]
        .contains(&name)
            || name.starts_with("max_pool2d")
    };
    for dev in devices("training_path_ops_match_f64_reference_on_every_device") {
        let label = dev.label();
        let got = train_ops_outputs(&dev, &inp);
        assert_eq!(got.len(), want.len(), "{label}: one output per reference");
        for (((name, out), reference), (cpu_name, cpu_out)) in got.iter().zip(&want).zip(&cpu) {
            assert_eq!(name, cpu_name);
            assert_eq!(out.len(), reference.len(), "{label} {name}: length");
            assert!(out.iter().all(|v| v.is_finite()), "{label} {name}: not fully written");
            let err = rel_error(out, reference);
            assert!(err < 1e-5, "{label} {name}: relative error {err:.3e}");
            if exact(name) {
                let differ = out
                    .iter()
                    .zip(cpu_out)
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count();
                assert_eq!(differ, 0, "{label} {name}: {differ} values differ from the CPU's bits");
            }
        }
        // The pooling inputs really tie (so the tie rule is tested).
        let (dims, pool, stride, x, _) = &inp.pools[0];
        let (y, _) = cpu_ops::max_pool(x, *dims, *pool, *stride);
        let ties = y.iter().filter(|&&m| x.iter().filter(|&&v| v == m).count() > 1).count();
        assert!(ties > 0);
    }
}

// The checks are the typed CUDA wrappers', which exist with the `cuda` feature only.
#[cfg(feature = "cuda")]
#[test]
fn training_path_ops_reject_bad_operands_with_typed_errors() {
    for dev in devices("training_path_ops_reject_bad_operands_with_typed_errors") {
        let Device::Cuda(d) = &dev else {
            continue; // the checks are the GPU wrappers'
        };
        use biokernels::cuda::{BinaryOp, UnaryOp};
        let m = |r: usize, c: usize| d.filled(r, c, 1.0).unwrap();
        let operand = |r: biokernels::Result<()>, what: &str| {
            assert!(
                matches!(r, Err(Error::CudaOperand { .. })),
                "{what}: expected CudaOperand, got {r:?}"
            );
        };
        let (a, b) = (m(3, 4), m(4, 4));
        operand(d.unary(UnaryOp::Tanh, &a, &mut m(4, 4)), "unary length");
        operand(
            d.unary_backward(UnaryOp::Sigmoid, &a, &a, &b, &mut m(3, 4), Beta::Zero),
            "unary_backward dy length",
        );
        operand(d.binary(BinaryOp::Add, &a, &b, &mut m(3, 4)), "binary length");
        operand(d.axpby(1.0, &a, 0.0, &mut m(2, 2)), "axpby length");
        operand(d.copy(&a, &mut m(1, 5)), "copy length");
        operand(
            d.copy_columns(&a, 2, &mut m(3, 4), 0, 3, Beta::Zero),
            "copy_columns src range",
        );
        operand(
            d.copy_columns(&a, 0, &mut m(3, 2), 0, 3, Beta::Zero),
            "copy_columns dst range",
        );
        operand(
            d.copy_columns(&a, 0, &mut m(2, 4), 0, 3, Beta::One),
            "copy_columns rows",
        );
        operand(d.sum_rows_into(&a, &mut m(1, 3), Beta::Zero), "sum_rows_into out");
        operand(d.sum_all(&a, &mut m(1, 2)), "sum_all out");
        operand(d.mse(&a, &b, 1.0, &mut m(1, 1), &mut m(3, 4)), "mse target");
        operand(d.dropout(&a, &b, 2.0, &mut m(3, 4)), "dropout mask");
        operand(d.bias_add_nchw(&mut m(1, 10), &m(1, 3), 3, 3), "bias_add_nchw length");
        operand(d.upload_into(&[1.0; 5], &mut m(2, 2)), "upload_into length");
        operand(d.download_into(&a, &mut [0.0; 5]), "download_into length");
        operand(a_reshape(d), "reshape");
        let x = m(1, 2 * 9 * 9);
        let mut idx = d.alloc_index(2 * 4 * 4).unwrap();
        operand(
            d.max_pool2d(&x, [1, 2, 9, 9], [10, 2], [2, 2], [0, 0], &mut m(1, 32), &mut idx),
            "window larger than the input",
        );
        operand(
            d.max_pool2d(&x, [1, 2, 9, 9], [3, 3], [0, 2], [0, 0], &mut m(1, 32), &mut idx),
            "zero stride",
        );
        operand(
            d.max_pool2d(&x, [1, 2, 9, 9], [3, 3], [2, 2], [0, 0], &mut m(1, 31), &mut idx),
            "y length",
        );
        operand(
            d.max_pool2d(&x, [1, 2, 9, 9], [3, 3], [2, 2], [2, 2], &mut m(1, 32), &mut idx),
            "padding over half the window",
        );
        operand(
            d.max_pool2d_backward(&m(1, 32), &idx, &mut m(1, 162)),
            "argmax never written by max_pool2d",
        );
        d.max_pool2d(&x, [1, 2, 9, 9], [3, 3], [2, 2], [0, 0], &mut m(1, 32), &mut idx)
            .unwrap();
        operand(d.max_pool2d_backward(&m(1, 32), &idx, &mut m(1, 161)), "dx length");
        let bf = d.upload(&[1.0; 12], 3, 4, Precision::Bf16).unwrap();
        operand(d.unary(UnaryOp::Relu, &bf, &mut m(3, 4)), "bf16 input");
    }
}

#[cfg(feature = "cuda")]
fn a_reshape(d: &CudaDevice) -> biokernels::Result<()> {
    let mut a = d.filled(3, 4, 0.0)?;
    a.reshape(6, 2)?;
    assert_eq!((a.rows(), a.cols(), a.len()), (6, 2, 12));
    a.reshape(5, 2)
}

/// The host emulator and, when usable, CUDA device 0 (a skip is printed; under
/// `BIOKERNELS_REQUIRE_CUDA=1` a missing device fails `test`).
fn emulator_and_gpu(test: &str) -> Vec<(&'static str, Box<dyn biokernels::device::DeviceBackend>)> {
    let mut backends: Vec<(&str, Box<dyn biokernels::device::DeviceBackend>)> =
        vec![("emulator", Box::new(biokernels::device::host::HostDevice::new()))];
    match CudaDevice::new(0) {
        Ok(d) => backends.push(("cuda:0", Box::new(d))),
        Err(e) => {
            if std::env::var("BIOKERNELS_REQUIRE_CUDA").is_ok_and(|v| v == "1") {
                panic!("{test}: BIOKERNELS_REQUIRE_CUDA=1 but {e}");
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED cuda:0 in {test}: {e}");
        }
    }
    backends
}

/// What a GPU refuses, every backend refuses the same way: the host emulator gives the typed
/// error (or the NaN rows) a CUDA device gives, so an emulator run finds these before a GPU does.
#[test]
fn bad_labels_and_empty_buffers_behave_alike_on_every_backend() {
    use biokernels::device::limits;
    let backends = emulator_and_gpu("bad_labels_and_empty_buffers");
    for (name, dev) in &backends {
        for (rows, cols) in [(0, 3), (2, 0)] {
            let e = dev
                .zeros(rows, cols)
                .err()
                .unwrap_or_else(|| panic!("{name}: zeros({rows}, {cols})"));
            assert!(
                matches!(e, Error::CudaOperand { .. }) && e.to_string().contains(&format!("{rows}x{cols}")),
                "{name}: {e}"
            );
            assert!(dev.upload(&[], rows, cols).is_err(), "{name}: upload of {rows}x{cols}");
        }
        // Rows 1-4 have labels that are not class indices: NaN there, the reference elsewhere,
        // and no access outside the rows (the kernel used to index z and dz by the raw label).
        let (rows, classes) = (6, 4);
        let labels = [1.0, -1.0, 4.0, 2.5, f32::NAN, 3.0];
        let z_host = random(rows * classes, 7);
        let z = dev.upload(&z_host, rows, classes).unwrap();
        let lab = dev.upload(&labels, 1, rows).unwrap();
        let (mut loss, mut dz) = (dev.zeros(1, rows).unwrap(), dev.zeros(rows, classes).unwrap());
        dev.softmax_cross_entropy(&z, &lab, 1.0, &mut loss, &mut dz).unwrap();
        let (loss, dz) = (dev.download(&loss).unwrap(), dev.download(&dz).unwrap());
        for r in 0..rows {
            let valid = r == 0 || r == 5;
            assert_eq!(loss[r].is_finite(), valid, "{name}: loss row {r} = {}", loss[r]);
            let row = &dz[r * classes..(r + 1) * classes];
            assert!(
                row.iter().all(|v| v.is_finite() == valid),
                "{name}: dz row {r} = {row:?}"
            );
        }
    }
    assert_eq!(limits::grid("t", 9, 65_535, 1).unwrap(), (9, 65_535, 1));
    for (x, y, z) in [(1, 65_536, 1), (1, 1, 65_536), (1 << 31, 1, 1)] {
        let e = limits::grid("t", x, y, z).unwrap_err();
        assert!(e.to_string().contains("over the limit"), "{e}");
    }
}

/// `plane_map` on every backend: a bilinear-style map with repeated sources and zero weights,
/// and its adjoint, bit for bit as `PlaneMap::apply` (the kernel rounds each product, then
/// sums from −0, with nvcc's FMA contraction off); a transpose copies a −0 and a NaN exactly;
/// operands that are not whole planes are typed errors.
#[test]
fn plane_maps_match_the_host_definition_on_every_backend() {
    use biokernels::device::PlaneMap;
    let backends = emulator_and_gpu("plane_maps");
    let (in_len, out_len, planes) = (37, 70, 5);
    let taps: Vec<Vec<(usize, f32)>> = (0..out_len)
        .map(|i| {
            let a = (i * 7) % in_len;
            vec![
                (a, 0.5625),
                (a, 0.0),
                ((a + 3) % in_len, 0.1875),
                ((i * 11) % in_len, 0.25),
            ]
        })
        .collect();
    let map = PlaneMap::new(in_len, taps.iter().map(|t| &t[..])).unwrap();
    let adjoint = map.adjoint();
    let x = random(planes * in_len, 21);
    let g = random(planes * out_len, 22);
    let (mut want_y, mut want_dx) = (vec![0.0; planes * out_len], vec![0.0; planes * in_len]);
    map.apply(&x, &mut want_y).unwrap();
    adjoint.apply(&g, &mut want_dx).unwrap();
    let perm = PlaneMap::gather(4, &[3, 0, 2, 1]).unwrap();
    for (name, dev) in &backends {
        let run = |m: &PlaneMap, v: &[f32], rows: usize, cols: usize| {
            let dm = dev.upload_plane_map(m).unwrap();
            let xs = dev.upload(v, 1, v.len()).unwrap();
            let mut y = dev.zeros(rows, cols).unwrap();
            dev.plane_map(&dm, &xs, &mut y).unwrap();
            dev.download(&y).unwrap()
        };
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&run(&map, &x, planes, out_len)), bits(&want_y), "{name}: forward");
        assert_eq!(
            bits(&run(&adjoint, &g, planes, in_len)),
            bits(&want_dx),
            "{name}: adjoint"
        );
        let y = run(&perm, &[1.0, -0.0, f32::NAN, 4.0], 1, 4);
        assert!(
            y[0] == 4.0 && y[1] == 1.0 && y[2].is_nan() && y[3].to_bits() == (-0.0f32).to_bits(),
            "{name}: {y:?}"
        );
        let dm = dev.upload_plane_map(&map).unwrap();
        let xs = dev.upload(&x[..in_len + 1], 1, in_len + 1).unwrap();
        let mut y = dev.zeros(1, out_len).unwrap();
        let e = dev.plane_map(&dm, &xs, &mut y).unwrap_err();
        assert!(e.to_string().contains("not whole planes of 37"), "{name}: {e}");
    }
}
