//! Finite-difference gradient checks, in f64, for every op: the analytic vector-Jacobian
//! product `d(Σ y ⊙ u)/dx` of `Graph<f64>` against central differences
//! `(f(x + h eᵢ) − f(x − h eᵢ)) / 2h` with `f(x) = Σ y(x) ⊙ u`, for random non-zero inputs and a
//! random upstream `u`. Inputs of relu / leaky_relu / max-pool are kept away from their kinks.

use std::sync::Arc;

use bioautograd::{
    BatchNormState, Conv2dOptions, ConvMask, Graph, Mode, Padding, Pool2d, Result, RnnActivation, Tensor, TileMap,
    TileSize, Var,
};
use biorng::Stream;

const H: f64 = 1e-5;
const TOL: f64 = 1e-6;

fn randn(rng: &mut Stream, shape: &[usize]) -> Tensor<f64> {
    let n = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| rng.standard_normal()).collect(), shape).unwrap()
}

/// Random values at least `gap` away from 0.
fn away_from_zero(rng: &mut Stream, shape: &[usize], gap: f64) -> Tensor<f64> {
    let t = randn(rng, shape);
    let v = t.as_slice().unwrap().iter().map(|&x| x + gap * x.signum()).collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// Distinct values (pairwise at least 0.05 apart) in random order: no ties for max-pool.
fn distinct(rng: &mut Stream, shape: &[usize]) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    let mut v: Vec<f64> = (0..n).map(|i| (i as f64 - n as f64 / 2.0) * 0.05).collect();
    rng.shuffle(&mut v);
    Tensor::from_vec(v, shape).unwrap()
}

type Build = dyn Fn(&Graph<f64>, &[Var]) -> Result<Var>;

/// `Σ y ⊙ u` for the given inputs.
fn objective(build: &Build, inputs: &[Tensor<f64>], u: &[f64]) -> f64 {
    let g = Graph::<f64>::new();
    let xs: Vec<Var> = inputs.iter().map(|t| g.param(t.clone())).collect();
    let y = build(&g, &xs).expect("forward");
    g.value(&y)
        .unwrap()
        .as_slice()
        .unwrap()
        .iter()
        .zip(u)
        .map(|(a, b)| a * b)
        .sum()
}

fn check(name: &str, inputs: Vec<Tensor<f64>>, build: &Build) {
    let mut rng = Stream::seeded(99);
    let g = Graph::<f64>::new();
    let xs: Vec<Var> = inputs.iter().map(|t| g.param(t.clone())).collect();
    let y = build(&g, &xs).unwrap_or_else(|e| panic!("{name}: {e}"));
    let yshape = g.shape(&y).unwrap();
    let u = randn(&mut rng, &yshape);
    let grads = g.backward_with(&y, u.clone()).unwrap();
    let u = u.to_vec().unwrap();
    let mut checked = 0;
    for (i, x) in xs.iter().enumerate() {
        let analytic = grads
            .get(x)
            .unwrap_or_else(|| panic!("{name}: no gradient for input {i}"));
        assert_eq!(
            analytic.shape(),
            inputs[i].shape(),
            "{name}: gradient shape of input {i}"
        );
        let analytic = analytic.as_slice().unwrap();
        for (j, &a) in analytic.iter().enumerate() {
            let mut plus = inputs.clone();
            plus[i].data_mut().unwrap()[j] += H;
            let mut minus = inputs.clone();
            minus[i].data_mut().unwrap()[j] -= H;
            let numeric = (objective(build, &plus, &u) - objective(build, &minus, &u)) / (2.0 * H);
            let err = (a - numeric).abs();
            assert!(
                err <= TOL * (1.0 + numeric.abs()),
                "{name}: d/dx{i}[{j}]: analytic {a} vs finite difference {numeric} (err {err:e})"
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "{name}: nothing checked");
}

fn rng() -> Stream {
    Stream::seeded(12345)
}

#[test]
fn matmul() {
    let mut r = rng();
    check(
        "matmul",
        vec![randn(&mut r, &[3, 4]), randn(&mut r, &[4, 5])],
        &|g, x| g.matmul(&x[0], &x[1]),
    );
}

#[test]
fn masked_matmul_gradient_lives_on_the_support() {
    let mut r = rng();
    let (k, n) = (6, 5);
    let keep: Vec<bool> = (0..k * n).map(|_| r.uniform01() < 0.5).collect();
    let mask = Arc::new(TileMap::from_bools(&keep, k, n, TileSize::square(2)).unwrap());
    let m2 = mask.clone();
    check(
        "masked_matmul",
        vec![randn(&mut r, &[3, k]), randn(&mut r, &[k, n])],
        &move |g, x| g.masked_matmul(&x[0], &x[1], &m2),
    );
    // Off the support the weight gradient is exactly 0 (and not merely small).
    let g = Graph::<f64>::new();
    let x = g.param(randn(&mut r, &[3, k]));
    let w = g.param(randn(&mut r, &[k, n]));
    let y = g.masked_matmul(&x, &w, &mask).unwrap();
    let s = g.sum(&y).unwrap();
    let dw = g.backward(&s).unwrap().get(&w).unwrap().to_vec().unwrap();
    for (i, (&d, &kp)) in dw.iter().zip(&keep).enumerate() {
        assert_eq!(d == 0.0, !kp, "dW[{i}] = {d}, mask {kp}");
    }
}

#[test]
fn fused_elman_sequence_with_a_sparse_mask() {
    let mut r = rng();
    let (b, t, i, h) = (2, 4, 3, 5);
    let keep: Vec<bool> = (0..h * h).map(|_| r.uniform01() < 0.5).collect();
    let mask = Arc::new(TileMap::from_bools(&keep, h, h, TileSize::square(2)).unwrap());
    for act in [RnnActivation::Tanh, RnnActivation::Relu] {
        let m2 = mask.clone();
        // Small weights and biases away from 0 keep the relu pre-activations off the kink.
        let scaled = |r: &mut Stream, shape: &[usize], s: f64| {
            let t = randn(r, shape);
            Tensor::from_vec(t.as_slice().unwrap().iter().map(|v| v * s).collect(), shape).unwrap()
        };
        check(
            &format!("elman_sequence {act:?}"),
            vec![
                randn(&mut r, &[b, t, i]),
                scaled(&mut r, &[i, h], 0.5),
                away_from_zero(&mut r, &[h], 0.3),
                scaled(&mut r, &[h, h], 0.5),
                away_from_zero(&mut r, &[h], 0.3),
            ],
            &move |g, x| g.elman_sequence(&x[0], &x[1], &x[2], &x[3], &x[4], Some(&m2), act),
        );
    }
}

#[test]
fn broadcasting_binary_ops() {
    let shapes: [(&[usize], &[usize]); 4] = [
        (&[2, 3, 4], &[3, 1]),
        (&[4, 1], &[1, 5]),
        (&[3], &[2, 3]),
        (&[], &[2, 2]),
    ];
    for (sa, sb) in shapes {
        let mut r = rng();
        let (a, b) = (randn(&mut r, sa), randn(&mut r, sb));
        let bd = away_from_zero(&mut r, sb, 0.5);
        check("add", vec![a.clone(), b.clone()], &|g, x| g.add(&x[0], &x[1]));
        check("sub", vec![a.clone(), b.clone()], &|g, x| g.sub(&x[0], &x[1]));
        check("mul", vec![a.clone(), b.clone()], &|g, x| g.mul(&x[0], &x[1]));
        check("div", vec![a.clone(), bd], &|g, x| g.div(&x[0], &x[1]));
    }
}

#[test]
fn reductions() {
    let mut r = rng();
    let x = randn(&mut r, &[2, 3, 4]);
    check("sum", vec![x.clone()], &|g, x| g.sum(&x[0]));
    check("mean", vec![x.clone()], &|g, x| g.mean(&x[0]));
    for axis in 0..3 {
        for keep in [true, false] {
            check("sum_axis", vec![x.clone()], &move |g, x| g.sum_axis(&x[0], axis, keep));
            check("mean_axis", vec![x.clone()], &move |g, x| {
                g.mean_axis(&x[0], axis, keep)
            });
        }
    }
}

#[test]
fn shape_ops() {
    let mut r = rng();
    let x = randn(&mut r, &[2, 3, 4]);
    check("reshape", vec![x.clone()], &|g, x| g.reshape(&x[0], &[4, 6]));
    check("flatten", vec![randn(&mut r, &[2, 3, 2, 2])], &|g, x| g.flatten(&x[0]));
    check("slice", vec![x.clone()], &|g, x| g.slice(&x[0], 2, 1, 3));
    check("transpose", vec![x.clone()], &|g, x| g.transpose(&x[0], 0, 2));
    check(
        "concat",
        vec![
            randn(&mut r, &[2, 1, 4]),
            randn(&mut r, &[2, 3, 4]),
            randn(&mut r, &[2, 2, 4]),
        ],
        &|g, x| g.concat(x, 1),
    );
    // Each op again under a non-linear consumer, so a wrong routing cannot hide behind linearity.
    check("transpose∘tanh", vec![x], &|g, x| g.tanh(&g.transpose(&x[0], 1, 2)?));
}

#[test]
fn activations() {
    let mut r = rng();
    let x = away_from_zero(&mut r, &[3, 7], 0.05);
    check("relu", vec![x.clone()], &|g, x| g.relu(&x[0]));
    check("leaky_relu", vec![x.clone()], &|g, x| g.leaky_relu(&x[0], 0.2));
    check("tanh", vec![x.clone()], &|g, x| g.tanh(&x[0]));
    check("sigmoid", vec![x], &|g, x| g.sigmoid(&x[0]));
}

#[test]
fn softmax_family() {
    let mut r = rng();
    let x = randn(&mut r, &[2, 3, 5]);
    check("softmax", vec![x.clone()], &|g, x| g.softmax(&x[0]));
    check("log_softmax", vec![x], &|g, x| g.log_softmax(&x[0]));
}

#[test]
fn losses() {
    let mut r = rng();
    let z = randn(&mut r, &[4, 5]);
    let labels = [3usize, 0, 4, 4];
    check("cross_entropy", vec![z.clone()], &move |g, x| {
        g.cross_entropy(&x[0], &labels)
    });
    // Soft targets (rows summing to 1), so both gradients are exercised away from one-hot.
    let t: Vec<f64> = (0..20).map(|_| r.uniform01() + 0.1).collect();
    let t: Vec<f64> = t
        .chunks(5)
        .flat_map(|row| {
            let s: f64 = row.iter().sum();
            row.iter().map(move |v| v / s)
        })
        .collect();
    let t = Tensor::from_vec(t, &[4, 5]).unwrap();
    check("cross_entropy_one_hot", vec![z.clone(), t], &|g, x| {
        g.cross_entropy_one_hot(&x[0], &x[1])
    });
    check("nll", vec![z.clone()], &move |g, x| {
        g.nll(&g.log_softmax(&x[0])?, &labels)
    });
    check("mse", vec![z, randn(&mut r, &[4, 5])], &|g, x| g.mse(&x[0], &x[1]));
}

#[test]
fn pooling() {
    for p in [
        Pool2d::new(2),
        Pool2d::new(3).with_stride(2, 2).with_padding(1, 1),
        Pool2d::new(2).with_stride(1, 2),
    ] {
        let mut r = rng();
        let x = distinct(&mut r, &[2, 2, 5, 6]);
        check("max_pool2d", vec![x.clone()], &move |g, x| g.max_pool2d(&x[0], p));
        check("avg_pool2d", vec![x], &move |g, x| g.avg_pool2d(&x[0], p));
    }
}

#[test]
fn dropout_train_and_eval() {
    let mut r = rng();
    let x = randn(&mut r, &[4, 6]);
    check("dropout(train)", vec![x.clone()], &|g, x| {
        g.dropout(&x[0], 0.4, &mut Stream::seeded(5))
    });
    check("dropout(eval)", vec![x], &|g, x| {
        g.set_mode(Mode::Eval);
        g.dropout(&x[0], 0.4, &mut Stream::seeded(5))
    });
}

#[test]
fn batch_norm_train_and_eval() {
    let mut r = rng();
    let x = randn(&mut r, &[3, 2, 2, 3]);
    let (gamma, beta) = (randn(&mut r, &[2]), randn(&mut r, &[2]));
    let state = BatchNormState {
        running_mean: vec![0.3, -0.2],
        running_var: vec![0.8, 1.7],
        momentum: 0.1,
        eps: 1e-5,
    };
    let s1 = state.clone();
    check(
        "batch_norm2d(train)",
        vec![x.clone(), gamma.clone(), beta.clone()],
        &move |g, x| g.batch_norm2d(&x[0], &x[1], &x[2], &mut s1.clone()),
    );
    check("batch_norm2d(eval)", vec![x, gamma, beta], &move |g, x| {
        g.set_mode(Mode::Eval);
        g.batch_norm2d(&x[0], &x[1], &x[2], &mut state.clone())
    });
}

#[test]
fn a_small_network_end_to_end() {
    let mut r = rng();
    let inputs = vec![
        randn(&mut r, &[4, 3]),
        randn(&mut r, &[3, 5]),
        randn(&mut r, &[5]),
        randn(&mut r, &[5, 2]),
    ];
    check("mlp", inputs, &|g, x| {
        let h = g.tanh(&g.add(&g.matmul(&x[0], &x[1])?, &x[2])?)?;
        let z = g.matmul(&h, &x[3])?;
        g.cross_entropy(&z, &[0, 1, 1, 0])
    });
}

fn random_conv_mask(r: &mut Stream, w: [usize; 4], groups: usize) -> Arc<ConvMask> {
    let v: Vec<f32> = (0..w.iter().product())
        .map(|_| if r.uniform01() < 0.6 { 1.0 } else { 0.0 })
        .collect();
    Arc::new(ConvMask::from_values(&v, (w[0], w[1]), w[2], w[3], groups, TileSize::square(2)).unwrap())
}

#[test]
fn conv2d() {
    let cases = [
        // x, w (kh, kw, cin/g, cout), options, masked
        ([2, 3, 5, 4], [3, 3, 3, 4], Conv2dOptions::default(), false),
        (
            [1, 2, 6, 5],
            [3, 2, 2, 3],
            Conv2dOptions::default().with_stride(2, 2).with_padding(Padding::Same),
            true,
        ),
        (
            [1, 4, 6, 6],
            [2, 3, 2, 4],
            Conv2dOptions::default()
                .with_groups(2)
                .with_dilation(2, 1)
                .with_padding(Padding::Explicit {
                    top: 1,
                    bottom: 0,
                    left: 2,
                    right: 1,
                }),
            true,
        ),
    ];
    for (xs, ws, opts, masked) in cases {
        let mut r = rng();
        let mask = masked.then(|| random_conv_mask(&mut r, ws, opts.groups));
        let inputs = vec![randn(&mut r, &xs), randn(&mut r, &ws), randn(&mut r, &[ws[3]])];
        check("conv2d", inputs, &move |g, x| {
            g.conv2d(&x[0], &x[1], Some(&x[2]), &opts, mask.as_ref())
        });
    }
}

#[test]
fn conv_transpose2d() {
    let cases = [
        // x, w (kh, kw, cout/g, cin), options, masked
        (
            [2, 3, 3, 4],
            [3, 3, 2, 3],
            Conv2dOptions::default()
                .with_stride(2, 2)
                .with_padding(Padding::symmetric(1))
                .with_output_padding(1, 0),
            false,
        ),
        (
            [1, 4, 3, 3],
            [2, 2, 3, 4],
            Conv2dOptions::default().with_groups(2).with_stride(2, 1),
            true,
        ),
        (
            [1, 2, 4, 3],
            [3, 2, 2, 2],
            Conv2dOptions::default().with_padding(Padding::Same).with_stride(2, 2),
            true,
        ),
    ];
    for (xs, ws, opts, masked) in cases {
        let mut r = rng();
        let mask = masked.then(|| random_conv_mask(&mut r, ws, opts.groups));
        let cout = ws[2] * opts.groups;
        let inputs = vec![randn(&mut r, &xs), randn(&mut r, &ws), randn(&mut r, &[cout])];
        check("conv_transpose2d", inputs, &move |g, x| {
            g.conv_transpose2d(&x[0], &x[1], Some(&x[2]), &opts, mask.as_ref())
        });
    }
}

/// Binary cross-entropy on logits and on probabilities (inside the clip, targets with GAN label
/// noise), with respect to both the prediction and the target.
#[test]
fn binary_cross_entropy_gradients() {
    let mut rng = Stream::seeded(314);
    let z = randn(&mut rng, &[6, 1]);
    let t = Tensor::from_vec(
        (0..6)
            .map(|i| f64::from(u8::from(i < 3)) + 0.05 * rng.uniform01())
            .collect(),
        &[6, 1],
    )
    .unwrap();
    check("binary_cross_entropy_with_logits", vec![z, t.clone()], &|g, x| {
        g.binary_cross_entropy_with_logits(&x[0], &x[1])
    });
    let p = Tensor::from_vec((0..6).map(|_| 0.1 + 0.8 * rng.uniform01()).collect(), &[6, 1]).unwrap();
    check("binary_cross_entropy", vec![p, t], &|g, x| {
        g.binary_cross_entropy(&x[0], &x[1], 1e-7)
    });
}

/// The discriminator's spectrally normalised convolution as Keras trains it: the power
/// iteration assigns `W ← W / σ` (no gradient through `σ`), then the convolution runs on the
/// assigned kernel, so the gradients are those of `conv2d(x, W/σ)` with respect to `x` and the
/// assigned kernel. Checked on a kernel normalised by one power iteration (σ ≈ its spectral
/// norm: the product of `u`, `v` and `σ` must make the normalised kernel's top singular value ≈ 1
/// after a few iterations, checked too).
#[test]
fn spectral_norm_conv_gradients() {
    use bioautograd::ops::spectral_norm::power_iteration;
    let mut rng = Stream::seeded(2718);
    let (kh, kw, cin, cout) = (3, 3, 2, 4);
    let mut w = randn(&mut rng, &[kh, kw, cin, cout]).as_slice().unwrap().to_vec();
    let mut u: Vec<f64> = (0..cout).map(|_| 0.02 * rng.standard_normal()).collect();
    let mut sigmas = Vec::new();
    for _ in 0..30 {
        let it = power_iteration(&w, kh * kw * cin, cout, &u, 1).unwrap();
        w.iter_mut().for_each(|v| *v /= it.sigma);
        u = it.u;
        sigmas.push(it.sigma);
    }
    assert!(
        (sigmas[29] - 1.0).abs() < 1e-6,
        "σ of the normalised kernel: {sigmas:?}"
    );
    let x = randn(&mut rng, &[2, cin, 6, 6]);
    let wt = Tensor::from_vec(w, &[kh, kw, cin, cout]).unwrap();
    let opts = Conv2dOptions::default().with_stride(2, 2).with_padding(Padding::Same);
    check("spectral_norm_conv2d", vec![x, wt], &move |g, v| {
        g.conv2d(&v[0], &v[1], None, &opts, None)
    });
}

#[test]
fn group_norm() {
    let mut r = rng();
    // 6 channels in 3 groups of 2, and 1 group (layer norm over c·h·w).
    let x = randn(&mut r, &[2, 6, 3, 2]);
    let gamma = randn(&mut r, &[6]);
    let beta = randn(&mut r, &[6]);
    for groups in [3, 1, 6] {
        check(
            &format!("group_norm(groups {groups})"),
            vec![x.clone(), gamma.clone(), beta.clone()],
            &move |g, x| g.group_norm(&x[0], &x[1], &x[2], groups, 1e-3),
        );
    }
}

#[test]
fn upsample2d_nearest_and_bilinear() {
    use bioautograd::Interpolation;
    let mut r = rng();
    let x = randn(&mut r, &[2, 2, 3, 4]);
    for (interp, factor) in [
        (Interpolation::Nearest, (2, 3)),
        (Interpolation::Bilinear, (2, 2)),
        (Interpolation::Bilinear, (3, 2)),
    ] {
        check(
            &format!("upsample2d({interp:?}, {factor:?})"),
            vec![x.clone()],
            &move |g, x| g.upsample2d(&x[0], factor, interp),
        );
    }
}

#[test]
fn swish_and_mae() {
    let mut r = rng();
    check("swish", vec![randn(&mut r, &[3, 5])], &|g, x| g.swish(&x[0]));
    // |a − b| has a kink at a = b: keep the difference away from 0.
    let a = randn(&mut r, &[2, 3, 2]);
    let d = away_from_zero(&mut r, &[2, 3, 2], 0.1);
    let b: Vec<f64> = a
        .as_slice()
        .unwrap()
        .iter()
        .zip(d.as_slice().unwrap())
        .map(|(x, y)| x - y)
        .collect();
    let b = Tensor::from_vec(b, &[2, 3, 2]).unwrap();
    check("mae", vec![a, b], &|g, x| g.mae(&x[0], &x[1]));
}
