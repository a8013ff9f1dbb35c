//! Typed errors (op and shapes named), broadcasting semantics, devices, modes and the
//! parameter/gradient API.

use std::sync::Arc;

use bioautograd::{BatchNormState, Device, Error, Graph, Mode, Pool2d, Tensor, TileMap, TileSize};
use biorng::Stream;

fn t(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|i| i as f32 * 0.5 - 1.0).collect(), shape).unwrap()
}

#[test]
fn broadcast_errors_name_the_op_and_both_shapes() {
    let g = Graph::new();
    let (a, b) = (g.input(t(&[2, 3])), g.input(t(&[4])));
    for (op, r) in [
        ("add", g.add(&a, &b)),
        ("sub", g.sub(&a, &b)),
        ("mul", g.mul(&a, &b)),
        ("div", g.div(&a, &b)),
    ] {
        let e = r.unwrap_err();
        assert_eq!(
            e,
            Error::ShapeMismatch {
                op,
                lhs: vec![2, 3],
                rhs: vec![4]
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains(op) && msg.contains("[2, 3]") && msg.contains("[4]"),
            "{msg}"
        );
    }
}

#[test]
fn matmul_shape_and_rank_errors() {
    let g = Graph::new();
    let (x, w) = (g.input(t(&[2, 3])), g.input(t(&[4, 5])));
    assert_eq!(
        g.matmul(&x, &w).unwrap_err(),
        Error::ShapeMismatch {
            op: "matmul",
            lhs: vec![2, 3],
            rhs: vec![4, 5]
        }
    );
    let v = g.input(t(&[3]));
    assert_eq!(
        g.matmul(&v, &w).unwrap_err(),
        Error::Rank {
            op: "matmul",
            expected: 2,
            got: vec![3]
        }
    );
    let w2 = g.input(t(&[3, 5]));
    let mask = Arc::new(TileMap::full(3, 4, TileSize::CPU_DEFAULT).unwrap());
    assert_eq!(
        g.masked_matmul(&x, &w2, &mask).unwrap_err(),
        Error::ShapeMismatch {
            op: "masked_matmul",
            lhs: vec![3, 5],
            rhs: vec![3, 4]
        }
    );
}

#[test]
fn shape_op_errors() {
    let g = Graph::new();
    let x = g.input(t(&[2, 3]));
    assert_eq!(
        g.reshape(&x, &[4, 2]).unwrap_err(),
        Error::Reshape {
            op: "reshape",
            from: vec![2, 3],
            to: vec![4, 2]
        }
    );
    assert!(matches!(
        g.sum_axis(&x, 2, false),
        Err(Error::AxisOutOfRange {
            op: "sum_axis",
            axis: 2,
            ..
        })
    ));
    assert!(matches!(
        g.transpose(&x, 0, 5),
        Err(Error::AxisOutOfRange { op: "transpose", .. })
    ));
    assert!(matches!(
        g.slice(&x, 1, 2, 4),
        Err(Error::SliceOutOfRange {
            op: "slice",
            start: 2,
            end: 4,
            ..
        })
    ));
    let y = g.input(t(&[3, 3]));
    assert_eq!(
        g.concat(&[x, y], 1).unwrap_err(),
        Error::ShapeMismatch {
            op: "concat",
            lhs: vec![2, 3],
            rhs: vec![3, 3]
        }
    );
    assert!(g.concat(&[x, y], 0).is_ok());
    assert!(matches!(
        g.concat(&[], 0),
        Err(Error::InvalidArgument { op: "concat", .. })
    ));
}

#[test]
fn loss_errors() {
    let g = Graph::new();
    let z = g.input(t(&[2, 3]));
    assert_eq!(
        g.cross_entropy(&z, &[0, 3]).unwrap_err(),
        Error::LabelOutOfRange {
            op: "cross_entropy",
            row: 1,
            label: 3,
            classes: 3
        }
    );
    assert_eq!(
        g.nll(&z, &[0]).unwrap_err(),
        Error::LabelCount {
            op: "nll",
            labels: 1,
            batch: 2
        }
    );
    let o = g.input(t(&[2, 4]));
    assert_eq!(
        g.mse(&z, &o).unwrap_err(),
        Error::ShapeMismatch {
            op: "mse",
            lhs: vec![2, 3],
            rhs: vec![2, 4]
        }
    );
    assert!(matches!(
        g.cross_entropy_one_hot(&z, &o),
        Err(Error::ShapeMismatch {
            op: "cross_entropy_one_hot",
            ..
        })
    ));
}

#[test]
fn pool_dropout_batchnorm_errors() {
    let g = Graph::new();
    let x3 = g.input(t(&[2, 3, 4]));
    assert!(matches!(
        g.max_pool2d(&x3, Pool2d::new(2)),
        Err(Error::Rank {
            op: "max_pool2d",
            expected: 4,
            ..
        })
    ));
    let x = g.input(t(&[1, 1, 4, 4]));
    assert!(matches!(
        g.avg_pool2d(&x, Pool2d::new(5)),
        Err(Error::InvalidArgument { op: "avg_pool2d", .. })
    ));
    assert!(matches!(
        g.avg_pool2d(&x, Pool2d::new(2).with_padding(2, 0)),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        g.max_pool2d(&x, Pool2d::new(0)),
        Err(Error::InvalidArgument { .. })
    ));
    let mut rng = Stream::seeded(0);
    for p in [1.0, -0.1, f64::NAN] {
        assert!(matches!(
            g.dropout(&x, p, &mut rng),
            Err(Error::InvalidArgument { op: "dropout", .. })
        ));
    }
    let (gamma, beta) = (g.input(t(&[2])), g.input(t(&[1])));
    let mut st = BatchNormState::new(1);
    assert_eq!(
        g.batch_norm2d(&x, &gamma, &beta, &mut st).unwrap_err(),
        Error::ShapeMismatch {
            op: "batch_norm2d",
            lhs: vec![1, 1, 4, 4],
            rhs: vec![2]
        }
    );
}

#[test]
fn tape_errors() {
    let (g1, g2) = (Graph::<f32>::new(), Graph::<f32>::new());
    let a = g1.param(t(&[2, 2]));
    assert_eq!(g2.relu(&a).unwrap_err(), Error::ForeignVar { op: "relu" });
    let y = g1.relu(&a).unwrap();
    assert_eq!(g1.backward(&y).unwrap_err(), Error::NonScalarLoss { shape: vec![2, 2] });
    assert!(matches!(
        g1.backward_with(&y, t(&[4])),
        Err(Error::ShapeMismatch { op: "backward", .. })
    ));
}

#[test]
fn cuda_is_a_typed_error_and_data_length_is_checked() {
    // Without the `cuda` feature every CUDA request is `CudaUnavailable`; with it, a machine
    // without a usable device gives `NoCudaDevice` naming the ordinal (tests/device.rs covers
    // a machine with a GPU).
    for ordinal in [0, 1] {
        match Tensor::<f32>::zeros(&[2], Device::Cuda(ordinal)) {
            Ok(z) => assert_eq!(z.device(), Device::Cuda(ordinal)),
            Err(e) => {
                #[cfg(not(feature = "cuda"))]
                assert_eq!(e, Error::CudaUnavailable);
                #[cfg(feature = "cuda")]
                assert!(
                    matches!(e, Error::NoCudaDevice { ordinal: o, .. } if o == ordinal),
                    "{e:?}"
                );
                assert_eq!(t(&[2]).to_device(Device::Cuda(ordinal)).unwrap_err(), e);
            }
        }
    }
    assert_eq!(
        Tensor::<f32>::from_vec(vec![1.0; 5], &[2, 3]).unwrap_err(),
        Error::DataLength {
            shape: vec![2, 3],
            len: 5
        }
    );
    assert_eq!(t(&[2, 3]).device(), Device::Cpu);
}

#[test]
fn numpy_broadcasting_rules() {
    let g = Graph::new();
    // (2, 1) + (3,) -> (2, 3); gradients sum over the broadcast axes.
    let a = g.param(Tensor::from_vec(vec![1.0, 2.0], &[2, 1]).unwrap());
    let b = g.param(Tensor::from_vec(vec![10.0, 20.0, 30.0], &[3]).unwrap());
    let y = g.add(&a, &b).unwrap();
    assert_eq!(g.shape(&y).unwrap(), vec![2, 3]);
    assert_eq!(
        g.value(&y).unwrap().to_vec().unwrap(),
        vec![11.0, 21.0, 31.0, 12.0, 22.0, 32.0]
    );
    let s = g.sum(&g.mul(&y, &y).unwrap()).unwrap();
    let grads = g.backward(&s).unwrap();
    // d/da_i Σ_j (a_i + b_j)² = 2 Σ_j (a_i + b_j); d/db_j = 2 Σ_i (a_i + b_j).
    assert_eq!(grads.slice(&a).unwrap(), &[2.0 * 63.0, 2.0 * 66.0]);
    assert_eq!(grads.slice(&b).unwrap(), &[2.0 * 23.0, 2.0 * 43.0, 2.0 * 63.0]);
    // A rank-0 operand broadcasts against anything; (2, 3, 4) with (3, 1) and (4, 1, 1).
    let s0 = g.input(Tensor::scalar(2.0));
    let x = g.input(t(&[2, 3, 4]));
    assert_eq!(g.shape(&g.mul(&s0, &x).unwrap()).unwrap(), vec![2, 3, 4]);
    assert_eq!(
        g.shape(&g.sub(&x, &g.input(t(&[3, 1]))).unwrap()).unwrap(),
        vec![2, 3, 4]
    );
    assert_eq!(
        g.shape(&g.div(&g.input(t(&[4, 1, 1])), &g.input(t(&[5]))).unwrap())
            .unwrap(),
        vec![4, 1, 5]
    );
    assert!(g.add(&x, &g.input(t(&[2, 3]))).is_err());
}

#[test]
fn dropout_modes_and_statistics() {
    let x = Tensor::from_vec(vec![1.0f32; 10_000], &[100, 100]).unwrap();
    let g = Graph::new();
    assert_eq!(g.mode(), Mode::Train);
    let xv = g.input(x.clone());
    let y = g.dropout(&xv, 0.25, &mut Stream::seeded(3)).unwrap();
    let v = g.value(&y).unwrap().to_vec().unwrap();
    let kept = v.iter().filter(|&&e| e != 0.0).count();
    assert!(v.iter().all(|&e| e == 0.0 || (e - 1.0 / 0.75).abs() < 1e-6));
    assert!(
        (kept as f64 / 1e4 - 0.75).abs() < 0.02,
        "kept fraction {}",
        kept as f64 / 1e4
    );
    // Same seed, same mask; another seed, another mask.
    let y2 = g.dropout(&xv, 0.25, &mut Stream::seeded(3)).unwrap();
    assert_eq!(g.value(&y2).unwrap().to_vec().unwrap(), v);
    let y3 = g.dropout(&xv, 0.25, &mut Stream::seeded(4)).unwrap();
    assert_ne!(g.value(&y3).unwrap().to_vec().unwrap(), v);
    // Eval: identity, and the stream is not consumed.
    let ge = Graph::with_mode(Mode::Eval);
    let mut rng = Stream::seeded(3);
    let ye = ge.dropout(&ge.input(x.clone()), 0.25, &mut rng).unwrap();
    assert_eq!(ge.value(&ye).unwrap().to_vec().unwrap(), x.to_vec().unwrap());
    assert_eq!(rng.uniform01(), Stream::seeded(3).uniform01());
}

#[test]
fn batch_norm_updates_running_stats_only_in_train_mode() {
    let x = t(&[2, 2, 2, 2]);
    let mut st = BatchNormState::<f32>::new(2);
    let g = Graph::new();
    let (xv, gm, bt) = (
        g.input(x.clone()),
        g.input(Tensor::ones(&[2], Device::Cpu).unwrap()),
        g.input(Tensor::zeros(&[2], Device::Cpu).unwrap()),
    );
    let y = g.batch_norm2d(&xv, &gm, &bt, &mut st).unwrap();
    // Train mode normalises each channel to mean 0.
    let yv = g.value(&y).unwrap().to_vec().unwrap();
    let ch0: f32 = [0, 1, 2, 3, 8, 9, 10, 11].iter().map(|&i| yv[i]).sum();
    assert!(ch0.abs() < 1e-5);
    assert_ne!(st.running_mean, vec![0.0, 0.0]);
    let after_train = st.clone();
    g.set_mode(Mode::Eval);
    g.batch_norm2d(&xv, &gm, &bt, &mut st).unwrap();
    assert_eq!(st, after_train);
}

#[test]
fn params_gradients_and_in_place_updates() {
    let mut w = t(&[3, 2]);
    let before = w.to_vec().unwrap();
    let grads_w;
    {
        let g = Graph::new();
        let x = g.input(t(&[4, 3]));
        let wv = g.param(w.clone());
        let b = g.param(t(&[2]));
        assert_eq!(g.params(), vec![wv, b]);
        let loss = g.mean(&g.add(&g.matmul(&x, &wv).unwrap(), &b).unwrap()).unwrap();
        let grads = g.backward(&loss).unwrap();
        assert!(grads.get(&x).is_none(), "inputs have no gradient");
        assert_eq!(grads.iter().count(), 2);
        grads_w = grads.slice(&wv).unwrap().to_vec();
    }
    // An optimizer step on the layer's own tensor (copy-on-write: the graph is gone).
    for (p, d) in w.data_mut().unwrap().iter_mut().zip(&grads_w) {
        *p -= 0.1 * d;
    }
    let after = w.to_vec().unwrap();
    assert!(after
        .iter()
        .zip(&before)
        .zip(&grads_w)
        .all(|((a, b), d)| (a - (b - 0.1 * d)).abs() < 1e-7));
    assert!(grads_w.iter().any(|&d| d != 0.0));
}

#[test]
fn stable_param_ids_across_graphs() {
    use bioautograd::ParamId;
    let (wid, bid) = (ParamId::fresh(), ParamId::fresh());
    assert_ne!(wid, bid);
    let mut seen = Vec::new();
    for step in 0..2 {
        let g = Graph::new();
        // Registration order differs between steps; the ids do not.
        let (w, b) = if step == 0 {
            let w = g.param_with_id(wid, t(&[3, 2])).unwrap();
            (w, g.param_with_id(bid, t(&[2])).unwrap())
        } else {
            let b = g.param_with_id(bid, t(&[2])).unwrap();
            (g.param_with_id(wid, t(&[3, 2])).unwrap(), b)
        };
        assert_eq!(
            g.param_with_id(wid, t(&[1])).unwrap_err(),
            Error::DuplicateParam { id: wid.0 }
        );
        assert_eq!(g.param_id(&w).unwrap(), Some(wid));
        let x = g.input(t(&[4, 3]));
        let loss = g.mean(&g.add(&g.matmul(&x, &w).unwrap(), &b).unwrap()).unwrap();
        let grads = g.backward(&loss).unwrap();
        assert_eq!(grads.get_by_id(wid).unwrap().shape(), &[3, 2]);
        assert_eq!(grads.get_by_id(bid).unwrap().shape(), &[2]);
        assert!(grads.get_by_id(ParamId::fresh()).is_none());
        seen.push(grads.get_by_id(wid).unwrap().to_vec().unwrap());
    }
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn f32_masked_path_agrees_with_f64_path() {
    // The f32 path runs biokernels' tile-skipping GEMM; the f64 path plain loops.
    let mut rng = Stream::seeded(8);
    let (m, k, n) = (5, 37, 33);
    let keep: Vec<bool> = (0..k * n)
        .map(|i| (i / n) / 16 == (i % n) / 16 || rng.uniform01() < 0.3)
        .collect();
    let mask = Arc::new(TileMap::from_bools(&keep, k, n, TileSize::CPU_DEFAULT).unwrap());
    let xd: Vec<f64> = (0..m * k).map(|_| rng.standard_normal()).collect();
    let wd: Vec<f64> = (0..k * n).map(|_| rng.standard_normal()).collect();
    let run = |x: Tensor<f64>, w: Tensor<f64>| -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let g = Graph::<f64>::new();
        let (xv, wv) = (g.param(x), g.param(w));
        let y = g.masked_matmul(&xv, &wv, &mask).unwrap();
        let l = g.sum(&g.tanh(&y).unwrap()).unwrap();
        let gr = g.backward(&l).unwrap();
        (
            g.value(&y).unwrap().to_vec().unwrap(),
            gr.slice(&xv).unwrap().to_vec(),
            gr.slice(&wv).unwrap().to_vec(),
        )
    };
    let reference = run(
        Tensor::from_vec(xd.clone(), &[m, k]).unwrap(),
        Tensor::from_vec(wd.clone(), &[k, n]).unwrap(),
    );
    let g = Graph::<f32>::new();
    let xv = g.param(Tensor::<f64>::from_vec(xd, &[m, k]).unwrap().cast().unwrap());
    let wv = g.param(Tensor::<f64>::from_vec(wd, &[k, n]).unwrap().cast().unwrap());
    let y = g.masked_matmul(&xv, &wv, &mask).unwrap();
    let l = g.sum(&g.tanh(&y).unwrap()).unwrap();
    let gr = g.backward(&l).unwrap();
    let got = (
        g.value(&y).unwrap().to_vec().unwrap(),
        gr.slice(&xv).unwrap().to_vec(),
        gr.slice(&wv).unwrap().to_vec(),
    );
    for (name, a, b) in [
        ("y", &got.0, &reference.0),
        ("dx", &got.1, &reference.1),
        ("dw", &got.2, &reference.2),
    ] {
        for (i, (&u, &v)) in a.iter().zip(b.iter()).enumerate() {
            assert!(
                (u as f64 - v).abs() <= 1e-4 * (1.0 + v.abs()),
                "{name}[{i}]: f32 {u} vs f64 {v}"
            );
        }
    }
}

#[test]
fn conv_errors_name_the_op_and_shapes() {
    use bioautograd::{Conv2dOptions, ConvMask, Padding};
    let g = Graph::new();
    let x = g.input(t(&[1, 3, 5, 5]));
    let w = g.input(t(&[3, 3, 2, 4]));
    let opts = Conv2dOptions::default();
    assert_eq!(
        g.conv2d(&x, &w, None, &opts, None).unwrap_err(),
        Error::ShapeMismatch {
            op: "conv2d",
            lhs: vec![1, 3, 5, 5],
            rhs: vec![3, 3, 2, 4]
        }
    );
    // conv_transpose2d: w (kh, kw, cout/g, cin) must end in x's channels.
    assert_eq!(
        g.conv_transpose2d(&x, &w, None, &opts, None).unwrap_err(),
        Error::ShapeMismatch {
            op: "conv_transpose2d",
            lhs: vec![1, 3, 5, 5],
            rhs: vec![3, 3, 2, 4]
        }
    );
    let w3 = g.input(t(&[3, 3, 3, 4]));
    let b = g.input(t(&[5]));
    assert_eq!(
        g.conv2d(&x, &w3, Some(&b), &opts, None).unwrap_err(),
        Error::ShapeMismatch {
            op: "conv2d",
            lhs: vec![3, 3, 3, 4],
            rhs: vec![5]
        }
    );
    let mask = Arc::new(ConvMask::full((3, 3), 3, 5, 1, TileSize::CPU_DEFAULT).unwrap());
    assert!(matches!(
        g.conv2d(&x, &w3, None, &opts, Some(&mask)),
        Err(Error::ShapeMismatch { op: "conv2d", .. })
    ));
    assert!(matches!(
        g.conv2d(&x, &w3, None, &opts.with_groups(0), None),
        Err(Error::InvalidArgument { op: "conv2d", .. })
    ));
    // A kernel larger than the input: the kernels' geometry error, passed through.
    let big = g.input(t(&[7, 7, 3, 4]));
    assert!(matches!(g.conv2d(&x, &big, None, &opts, None), Err(Error::Kernel(_))));
    assert!(g
        .conv2d(&x, &big, None, &opts.with_padding(Padding::Same), None)
        .is_ok());
    assert!(matches!(
        g.conv2d(&x, &g.input(t(&[3, 3, 3])), None, &opts, None),
        Err(Error::Rank { op: "conv2d", .. })
    ));
}

#[test]
fn device_errors_are_typed_without_a_device() {
    // f64 never lives on CUDA, whatever the machine: a dtype error before any device probe.
    assert_eq!(
        Tensor::<f64>::zeros(&[2], Device::Cuda(0)).unwrap_err(),
        Error::UnsupportedDtype {
            op: "to_device",
            dtype: "f64",
            device: Device::Cuda(0)
        }
    );
    // The kernels' "no CUDA" errors map onto this crate's; other kernel errors are wrapped.
    assert_eq!(Error::from(biokernels::Error::CudaUnavailable), Error::CudaUnavailable);
    let e = Error::from(biokernels::Error::NoCudaDevice {
        reason: "no libcuda".into(),
    });
    assert_eq!(
        e,
        Error::NoCudaDevice {
            ordinal: 0,
            reason: "no libcuda".into()
        }
    );
    assert!(e.is_no_cuda() && Error::CudaUnavailable.is_no_cuda());
    let k = Error::from(biokernels::Error::Cuda {
        op: "launch",
        message: "x".into(),
    });
    assert!(matches!(k, Error::Kernel(_)) && !k.is_no_cuda());
    // The messages name the op and the device.
    let u = Error::UnsupportedOnDevice {
        op: "softmax",
        device: Device::Cuda(0),
    };
    assert!(
        u.to_string().contains("softmax") && u.to_string().contains("Cuda(0)"),
        "{u}"
    );
    // Moving to the device a tensor is already on is the same tensor; the CPU is always there.
    let x = t(&[2, 3]);
    assert_eq!(x.to_device(Device::Cpu).unwrap().to_vec().unwrap(), x.to_vec().unwrap());
    assert!(Device::Cpu.check_available().is_ok() && !Device::Cpu.is_cuda());
    // A graph starts at F32 and takes every precision.
    let g = Graph::<f32>::new();
    assert_eq!(g.gpu_precision(), bioautograd::Precision::F32);
    for p in [bioautograd::Precision::Bf16, bioautograd::Precision::Tf32] {
        g.set_gpu_precision(p).unwrap();
        assert_eq!(g.gpu_precision(), p);
    }
}
