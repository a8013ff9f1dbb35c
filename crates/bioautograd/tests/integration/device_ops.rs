//! Device tests of the ops with a CUDA path: every test body runs on the CPU and, when this
//! build has the `cuda` feature and the machine a usable GPU, on CUDA device 0, and the device
//! results (values and the gradients of every input) must match the CPU's within f32
//! tolerance (relative `‖cuda − cpu‖₂ / ‖cpu‖₂ < 1e-5`, exact f32 products).
//!
//! Every body also runs on the host emulator of the device backend
//! (`Device::Cuda(bioautograd::cuda::EMULATOR)`: the same device paths of the tape, each kernel
//! replaced by its CPU definition), so the dispatch, the device backward closures, the views
//! and the RNN's per-step BPTT are exercised on any machine.
//!
//! Without a device each test prints `SKIPPED cuda:0 ...` straight to the terminal's stderr
//! (bypassing the harness's capture) and still runs and checks its CPU and emulator parts; with
//! `BIOKERNELS_REQUIRE_CUDA=1` a missing device fails instead (the variable of
//! `biokernels/tests/cuda_device.rs`, so one setting covers a GPU run).

use std::sync::Arc;

use bioautograd::{
    BatchNormState, Conv2dOptions, ConvMask, Device, Error, Graph, Mode, Padding, Pool2d, RnnActivation, Tensor,
    TileMap, TileSize, Var,
};
use biorng::Stream;

/// The emulator and, when usable, CUDA device 0 (`bioautograd::cuda::devices_under_test`).
fn devices(test: &str) -> Vec<Device> {
    bioautograd::cuda::devices_under_test(test).unwrap_or_else(|e| panic!("{e}"))
}

/// Deterministic values in [-1, 1), never 0.
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = Stream::seeded(seed);
    (0..len)
        .map(|_| {
            let v = (s.uniform01() * 2.0 - 1.0) as f32;
            if v == 0.0 {
                0.5
            } else {
                v
            }
        })
        .collect()
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

/// Output and input gradients of `build` on `device`: every input is a `param` leaf; the loss
/// is `Σ y ⊙ r` with fixed random `r` (or `y` itself when `build` returns a scalar).
type Build = dyn Fn(&Graph, &[Var]) -> bioautograd::Result<Var>;

fn run(device: Device, inputs: &[(Vec<f32>, Vec<usize>)], build: &Build) -> (Vec<f32>, Vec<Vec<f32>>) {
    run_at(device, bioautograd::Precision::F32, inputs, build)
}

/// [`run`] with the graph's device products at `precision`.
fn run_at(
    device: Device,
    precision: bioautograd::Precision,
    inputs: &[(Vec<f32>, Vec<usize>)],
    build: &Build,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let g = Graph::new();
    g.set_gpu_precision(precision).unwrap();
    let vars: Vec<Var> = inputs
        .iter()
        .map(|(v, s)| g.param(Tensor::new(v.clone(), s, device).unwrap()))
        .collect();
    let y = build(&g, &vars).unwrap();
    let shape = g.shape(&y).unwrap();
    let loss = if shape.iter().product::<usize>() == 1 && shape.len() <= 1 {
        y
    } else {
        let r = g.input(Tensor::new(values(shape.iter().product(), 99), &shape, device).unwrap());
        g.sum(&g.mul(&y, &r).unwrap()).unwrap()
    };
    let grads = g.backward(&loss).unwrap();
    let out = g.value(&y).unwrap().to_vec().unwrap();
    let dins = vars
        .iter()
        .map(|v| grads.get(v).map_or_else(Vec::new, |t| t.to_vec().unwrap()))
        .collect();
    (out, dins)
}

/// Runs `build` on the CPU (always) and on CUDA (when present) and compares.
fn check(test: &str, inputs: Vec<(Vec<f32>, Vec<usize>)>, build: &Build) {
    let (cpu_y, cpu_d) = run(Device::Cpu, &inputs, build);
    assert!(cpu_y.iter().all(|v| v.is_finite()), "{test}: cpu output not finite");
    for dev in devices(test) {
        let (gy, gd) = run(dev, &inputs, build);
        let e = rel_err(&gy, &cpu_y);
        assert!(e < 1e-5, "{test} on {dev:?}: output rel err {e}");
        for (k, (a, b)) in gd.iter().zip(&cpu_d).enumerate() {
            assert_eq!(a.len(), b.len(), "{test} on {dev:?}: gradient {k} missing or extra");
            let e = rel_err(a, b);
            assert!(e < 1e-5, "{test} on {dev:?}: gradient of input {k} rel err {e}");
        }
    }
}

fn inp(shape: &[usize], seed: u64) -> (Vec<f32>, Vec<usize>) {
    (values(shape.iter().product(), seed), shape.to_vec())
}

#[test]
fn products_match_the_cpu() {
    check("matmul", vec![inp(&[5, 70], 1), inp(&[70, 9], 2)], &|g, v| {
        g.matmul(&v[0], &v[1])
    });
    let mask: Vec<bool> = (0..70 * 9).map(|k| (k * 7 + k / 9) % 3 != 0).collect();
    let tiles = Arc::new(TileMap::from_bools(&mask, 70, 9, TileSize::CPU_DEFAULT).unwrap());
    check(
        "masked_matmul",
        vec![inp(&[5, 70], 3), inp(&[70, 9], 4)],
        &move |g, v| g.masked_matmul(&v[0], &v[1], &tiles),
    );
}

#[test]
fn elementwise_ops_match_the_cpu() {
    check("add", vec![inp(&[4, 6], 5), inp(&[4, 6], 6)], &|g, v| {
        g.add(&v[0], &v[1])
    });
    check("sub", vec![inp(&[4, 6], 7), inp(&[4, 6], 8)], &|g, v| {
        g.sub(&v[0], &v[1])
    });
    check("mul", vec![inp(&[4, 6], 9), inp(&[4, 6], 10)], &|g, v| {
        g.mul(&v[0], &v[1])
    });
    check("add bias row", vec![inp(&[4, 6], 11), inp(&[6], 12)], &|g, v| {
        g.add(&v[0], &v[1])
    });
    check("add row bias", vec![inp(&[6], 13), inp(&[4, 6], 14)], &|g, v| {
        g.add(&v[0], &v[1])
    });
    check("relu", vec![inp(&[3, 7], 15)], &|g, v| g.relu(&v[0]));
    check("tanh", vec![inp(&[3, 7], 16)], &|g, v| g.tanh(&v[0]));
    check("sigmoid", vec![inp(&[3, 7], 17)], &|g, v| g.sigmoid(&v[0]));
    check("leaky_relu", vec![inp(&[3, 7], 20)], &|g, v| g.leaky_relu(&v[0], 0.2));
    check("scale", vec![inp(&[3, 7], 21)], &|g, v| g.scale(&v[0], -0.37));
    check("sum", vec![inp(&[3, 7], 18)], &|g, v| g.sum(&v[0]));
    check("mean", vec![inp(&[3, 7], 19)], &|g, v| g.mean(&v[0]));
}

#[test]
fn shape_ops_match_the_cpu() {
    check("reshape", vec![inp(&[2, 3, 4], 20)], &|g, v| g.reshape(&v[0], &[6, 4]));
    check("flatten", vec![inp(&[2, 3, 2, 2], 21)], &|g, v| g.flatten(&v[0]));
    // A matrix's transpose and one that moves the batch axis (the whole tensor is the plane).
    check("transpose matrix", vec![inp(&[7, 5], 23)], &|g, v| {
        g.transpose(&v[0], 0, 1)
    });
    check("transpose batch axis", vec![inp(&[2, 3, 4, 5], 24)], &|g, v| {
        g.transpose(&v[0], 0, 2)
    });
    // Keras' channels-last flatten: two transposes of non-batch axes.
    check("transpose", vec![inp(&[2, 3, 4, 5], 22)], &|g, v| {
        let a = g.transpose(&v[0], 1, 2)?;
        g.transpose(&a, 2, 3)
    });
    // Channel concatenation (the DDIM U-Net's skips, the conditional GAN's class planes), and
    // the first and last axes.
    check(
        "concat axis 1",
        vec![inp(&[2, 3, 2, 2], 40), inp(&[2, 1, 2, 2], 41)],
        &|g, v| g.concat(&[v[0], v[1]], 1),
    );
    check("concat axis 0", vec![inp(&[2, 5], 42), inp(&[3, 5], 43)], &|g, v| {
        g.concat(&[v[0], v[1]], 0)
    });
    check(
        "concat axis 2",
        vec![inp(&[2, 3, 4], 44), inp(&[2, 3, 1], 45), inp(&[2, 3, 2], 46)],
        &|g, v| g.concat(&[v[0], v[1], v[2]], 2),
    );
}

#[test]
fn conv_and_pool_match_the_cpu() {
    let opts = Conv2dOptions::default().with_padding(Padding::Same);
    check(
        "conv2d",
        vec![inp(&[2, 3, 6, 6], 23), inp(&[3, 3, 3, 5], 24), inp(&[5], 25)],
        &move |g, v| g.conv2d(&v[0], &v[1], Some(&v[2]), &opts, None),
    );
    let keep: Vec<f32> = (0..3 * 3 * 3 * 5).map(|k| f32::from(u8::from(k % 4 != 1))).collect();
    let cm = Arc::new(ConvMask::from_values(&keep, (3, 3), 3, 5, 1, TileSize::CPU_DEFAULT).unwrap());
    check(
        "masked conv2d",
        vec![inp(&[2, 3, 6, 6], 26), inp(&[3, 3, 3, 5], 27), inp(&[5], 28)],
        &move |g, v| g.conv2d(&v[0], &v[1], Some(&v[2]), &Conv2dOptions::default(), Some(&cm)),
    );
    let topts = Conv2dOptions::default().with_stride(2, 2).with_padding(Padding::Same);
    check(
        "conv_transpose2d",
        vec![inp(&[2, 4, 3, 3], 40), inp(&[3, 3, 5, 4], 41), inp(&[5], 42)],
        &move |g, v| g.conv_transpose2d(&v[0], &v[1], Some(&v[2]), &topts, None),
    );
    check("max_pool2d", vec![inp(&[2, 3, 6, 6], 29)], &|g, v| {
        g.max_pool2d(&v[0], Pool2d::new(2))
    });
    // ResNet's stem pool (3×3, stride 2, padding 1) and the DDIM's 2×2 average pool; a padded
    // 3×3 average pool with stride 1.
    check("max_pool2d padded", vec![inp(&[2, 3, 7, 8], 55)], &|g, v| {
        g.max_pool2d(&v[0], Pool2d::new(3).with_stride(2, 2).with_padding(1, 1))
    });
    check("avg_pool2d", vec![inp(&[2, 3, 6, 6], 56)], &|g, v| {
        g.avg_pool2d(&v[0], Pool2d::new(2))
    });
    check("avg_pool2d padded", vec![inp(&[1, 2, 5, 6], 57)], &|g, v| {
        g.avg_pool2d(&v[0], Pool2d::new(3).with_stride(1, 1).with_padding(1, 1))
    });
}

/// Upsampling by plane maps: nearest and bilinear (half-pixel centres, clamped borders), odd
/// plane sizes and unequal factors; the backward is the adjoint map.
#[test]
fn upsampling_matches_the_cpu() {
    use bioautograd::Interpolation;
    for (interp, factor) in [
        (Interpolation::Nearest, (3, 1)),
        (Interpolation::Bilinear, (2, 2)),
        (Interpolation::Bilinear, (3, 2)),
    ] {
        check(
            &format!("upsample2d {interp:?} {factor:?}"),
            vec![inp(&[2, 3, 5, 3], 40)],
            &move |g, v| g.upsample2d(&v[0], factor, interp),
        );
    }
}

#[test]
fn losses_and_dropout_match_the_cpu() {
    let labels = [1usize, 0, 3, 2, 3];
    check("cross_entropy", vec![inp(&[5, 4], 30)], &move |g, v| {
        g.cross_entropy(&v[0], &labels)
    });
    check("mse", vec![inp(&[5, 4], 31), inp(&[5, 4], 32)], &|g, v| {
        g.mse(&v[0], &v[1])
    });
    // The mask comes from the same stream on both devices.
    check("dropout", vec![inp(&[4, 9], 33)], &|g, v| {
        let mut rng = Stream::seeded(5);
        g.dropout(&v[0], 0.4, &mut rng)
    });
}

/// A batch-norm state with running statistics away from their defaults (the eval path reads
/// them).
fn bn_state(c: usize) -> BatchNormState {
    let mut st = BatchNormState::new(c);
    st.running_mean = values(c, 40).iter().map(|v| 0.3 * v).collect();
    st.running_var = values(c, 41).iter().map(|v| 1.0 + 0.5 * v).collect();
    st.momentum = 0.01;
    st.eps = 1e-3;
    st
}

#[test]
fn normalisations_match_the_cpu() {
    let (n, c, h, w) = (3, 6, 4, 5);
    let shapes = || vec![inp(&[n, c, h, w], 42), inp(&[c], 43), inp(&[c], 44)];
    check("batch_norm2d train", shapes(), &move |g, v| {
        g.batch_norm2d(&v[0], &v[1], &v[2], &mut bn_state(c))
    });
    check("batch_norm2d eval", shapes(), &move |g, v| {
        g.set_mode(Mode::Eval);
        g.batch_norm2d(&v[0], &v[1], &v[2], &mut bn_state(c))
    });
    for groups in [1, 2, 6] {
        check("group_norm", shapes(), &move |g, v| {
            g.group_norm(&v[0], &v[1], &v[2], groups, 1e-3)
        });
    }
    // The running statistics a training step leaves behind, on every device.
    let run_state = |dev: Device| {
        let g = Graph::new();
        let [x, gamma, beta] = [(&[n, c, h, w][..], 42), (&[c][..], 43), (&[c][..], 44)]
            .map(|(s, seed)| g.param(Tensor::new(values(s.iter().product(), seed), s, dev).unwrap()));
        let mut st = bn_state(c);
        g.batch_norm2d(&x, &gamma, &beta, &mut st).unwrap();
        st
    };
    let cpu = run_state(Device::Cpu);
    for dev in devices("batch_norm2d running statistics") {
        let got = run_state(dev);
        for (a, b) in [
            (&got.running_mean, &cpu.running_mean),
            (&got.running_var, &cpu.running_var),
        ] {
            let e = rel_err(a, b);
            assert!(e < 1e-6, "running statistics on {dev:?}: rel err {e}");
        }
    }
}

#[test]
fn slices_and_axis_reductions_match_the_cpu() {
    for (axis, start, end) in [(0, 1, 3), (1, 0, 2), (1, 2, 3), (2, 1, 4)] {
        check("slice", vec![inp(&[3, 3, 5], 49)], &move |g, v| {
            g.slice(&v[0], axis, start, end)
        });
    }
    for keepdim in [false, true] {
        check("sum_axis last", vec![inp(&[2, 3, 70], 50)], &move |g, v| {
            g.sum_axis(&v[0], 2, keepdim)
        });
        check("mean_axis last", vec![inp(&[4, 9], 51)], &move |g, v| {
            g.mean_axis(&v[0], 1, keepdim)
        });
        check("sum_axis first", vec![inp(&[7, 3, 5], 52)], &move |g, v| {
            g.sum_axis(&v[0], 0, keepdim)
        });
        check("mean_axis first", vec![inp(&[6, 10], 53)], &move |g, v| {
            g.mean_axis(&v[0], 0, keepdim)
        });
    }
    // BioNet's global average pooling: the last axis twice.
    check("global average pool", vec![inp(&[2, 3, 4, 5], 54)], &|g, v| {
        g.mean_axis(&g.mean_axis(&v[0], 3, false)?, 2, false)
    });
}

#[test]
fn softmaxes_and_bce_match_the_cpu() {
    check("softmax", vec![inp(&[2, 3, 7], 45)], &|g, v| g.softmax(&v[0]));
    check("log_softmax", vec![inp(&[9, 3], 46)], &|g, v| g.log_softmax(&v[0]));
    check(
        "swish",
        vec![(values(40, 58).iter().map(|v| 9.0 * v).collect(), vec![5, 8])],
        &|g, v| g.swish(&v[0]),
    );
    check("mae", vec![inp(&[5, 4], 59), inp(&[5, 4], 60)], &|g, v| {
        g.mae(&v[0], &v[1])
    });
    // Logits of a wide range (both branches of the stable form), targets off {0, 1} as GAN
    // label noise makes them; both gradients.
    let z: Vec<f32> = values(12, 47).iter().map(|v| 12.0 * v).collect();
    check(
        "binary_cross_entropy_with_logits",
        vec![(z, vec![12, 1]), inp(&[12, 1], 48)],
        &|g, v| g.binary_cross_entropy_with_logits(&v[0], &v[1]),
    );
}

#[test]
fn elman_sequence_matches_the_cpu() {
    let (b, t, i, h) = (3, 5, 2, 6);
    let topo: Vec<bool> = (0..h * h).map(|k| (k * 5 + k / h) % 3 != 0).collect();
    let tiles = Arc::new(TileMap::from_bools(&topo, h, h, TileSize::CPU_DEFAULT).unwrap());
    for act in [RnnActivation::Tanh, RnnActivation::Relu] {
        let tiles = tiles.clone();
        check(
            "elman_sequence",
            vec![
                inp(&[b, t, i], 34),
                inp(&[i, h], 35),
                inp(&[h], 36),
                inp(&[h, h], 37),
                inp(&[h], 38),
            ],
            &move |g, v| g.elman_sequence(&v[0], &v[1], &v[2], &v[3], &v[4], Some(&tiles), act),
        );
    }
}

#[test]
fn device_error_paths() {
    for dev in devices("device_error_paths") {
        error_paths_on(dev);
    }
}

fn error_paths_on(dev: Device) {
    let x = Tensor::new(values(6, 1), &[2, 3], dev).unwrap();
    assert_eq!(x.device(), dev);
    assert!(matches!(
        x.as_slice(),
        Err(Error::UnsupportedOnDevice { op: "as_slice", .. })
    ));
    assert_eq!(x.to_device(Device::Cpu).unwrap().to_vec().unwrap(), values(6, 1));
    let g = Graph::new();
    let a = g.param(x.clone());
    let c = g.input(Tensor::from_vec(values(6, 2), &[2, 3]).unwrap());
    assert!(matches!(g.add(&a, &c), Err(Error::DeviceMismatch { op: "add", .. })));
    assert!(matches!(
        g.div(&a, &a),
        Err(Error::UnsupportedOnDevice { op: "div", .. })
    ));
    // Paths that exist on the device only in part.
    let img = g.param(Tensor::new(values(2 * 3 * 4 * 4, 3), &[2, 3, 4, 4], dev).unwrap());
    assert_eq!(
        g.sum_axis(&img, 1, false).unwrap_err(),
        Error::UnsupportedOnDevice {
            op: "sum_axis",
            device: dev
        }
    );
    // A seed gradient on another device than the output.
    let y = g.relu(&a).unwrap();
    let host_seed = Tensor::from_vec(vec![1.0; 6], &[2, 3]).unwrap();
    assert!(matches!(
        g.backward_with(&y, host_seed),
        Err(Error::DeviceMismatch { op: "backward", .. })
    ));
    // f64 never goes to a device.
    assert!(matches!(
        Tensor::<f64>::zeros(&[2], dev),
        Err(Error::UnsupportedDtype { dtype: "f64", .. })
    ));
}

/// Mixed precision: under `Precision::Bf16` every device product reads bf16 copies of its
/// operands (f32 sums, f32 tensors). The forward of a matmul, a masked conv and a transposed
/// conv equals the CPU op on the bf16-rounded inputs (relative 1e-5: sum order only), and
/// output and gradients stay within bf16 rounding of the exact f32 CPU results (1e-2) while
/// differing from them (> 1e-5: the rounding happened).
#[test]
fn bf16_products_read_rounded_operands() {
    use biokernels::device::host::round_to_bf16;
    let keep: Vec<f32> = (0..3 * 3 * 3 * 5).map(|k| f32::from(u8::from(k % 4 != 1))).collect();
    let cm = Arc::new(ConvMask::from_values(&keep, (3, 3), 3, 5, 1, TileSize::CPU_DEFAULT).unwrap());
    let topts = Conv2dOptions::default().with_stride(2, 2).with_padding(Padding::Same);
    type Case = (&'static str, Vec<(Vec<f32>, Vec<usize>)>, Box<Build>);
    let cases: Vec<Case> = vec![
        (
            "matmul",
            vec![inp(&[5, 70], 61), inp(&[70, 9], 62)],
            Box::new(|g: &Graph, v: &[Var]| g.matmul(&v[0], &v[1])),
        ),
        (
            "masked conv2d",
            vec![inp(&[2, 3, 6, 6], 63), inp(&[3, 3, 3, 5], 64)],
            Box::new(move |g: &Graph, v: &[Var]| g.conv2d(&v[0], &v[1], None, &Conv2dOptions::default(), Some(&cm))),
        ),
        (
            "conv_transpose2d",
            vec![inp(&[2, 4, 3, 3], 65), inp(&[3, 3, 5, 4], 66)],
            Box::new(move |g: &Graph, v: &[Var]| g.conv_transpose2d(&v[0], &v[1], None, &topts, None)),
        ),
    ];
    for (name, inputs, build) in &cases {
        let (cpu_y, cpu_d) = run(Device::Cpu, inputs, build.as_ref());
        let rounded: Vec<(Vec<f32>, Vec<usize>)> = inputs
            .iter()
            .map(|(v, s)| (v.iter().map(|&x| round_to_bf16(x)).collect(), s.clone()))
            .collect();
        let (ref_y, _) = run(Device::Cpu, &rounded, build.as_ref());
        for dev in devices("bf16_products") {
            let (y, d) = run_at(dev, bioautograd::Precision::Bf16, inputs, build.as_ref());
            let e_ref = rel_err(&y, &ref_y);
            assert!(e_ref < 1e-5, "{name} on {dev:?}: forward vs rounded inputs {e_ref}");
            let e = rel_err(&y, &cpu_y);
            assert!(e > 1e-5 && e < 1e-2, "{name} on {dev:?}: forward vs f32 {e}");
            for (k, (a, b)) in d.iter().zip(&cpu_d).enumerate() {
                let e = rel_err(a, b);
                assert!(e > 1e-5 && e < 1e-2, "{name} on {dev:?}: gradient {k} vs f32 {e}");
            }
        }
    }
}
