//! Weight export and import in PyTorch and Keras layouts (`biolayers::interop`): round trips
//! for every layer kind in both layouts and both formats, names and shapes, and bad files.

use bioautograd::{Pool2d, Tensor};
use biolayers::filters::{DogParams, FilterBankConfig, FilterBankSpec};
use biolayers::interop::{
    export_tensors, import_tensors, load_weights, parse_safetensors, safetensors_bytes, save_weights, ExportTensor,
    TensorValues, WeightFormat, WeightLayout,
};
use biolayers::layers::{
    Activation, BatchNorm2d, Conv2dConfig, ConvLstmConfig, DenseConfig, ElmanRnnConfig, Flatten, MaxPool2d, Module,
    PaddingConfig, Residual, Sequential,
};
use biolayers::train::predict;
use biolayers::Error;
use biomask::MaskSpec;
use biorng::Stream;

const SAME: PaddingConfig = PaddingConfig::Same;

/// Every layer kind with tensors, nested: (n, 1, 8, 8) → (n, 5).
fn cnn(seed: u64) -> Sequential {
    let mut rng = Stream::seeded(seed);
    let main = Sequential::new()
        .push(
            Conv2dConfig::new(4, 4, (3, 3))
                .with_padding(SAME)
                .init(&mut rng)
                .unwrap(),
        )
        .push(BatchNorm2d::new(4).unwrap());
    let mut bn = BatchNorm2d::new(4).unwrap();
    let stats: Vec<f32> = (0..4).map(|c| 0.1 * c as f32 - 0.05 * seed as f32).collect();
    let vars: Vec<f32> = (0..4).map(|c| 1.0 + 0.2 * c as f32 + 0.1 * seed as f32).collect();
    bn.set_buffers(&[("running_mean".into(), stats), ("running_var".into(), vars)])
        .unwrap();
    let filters = FilterBankConfig::new(
        FilterBankSpec::Dog(DogParams {
            ksize: 3,
            sigmas: vec![0.8],
            gammas: vec![2.0],
        }),
        2,
    );
    let filters = filters.init().unwrap();
    let fch = filters.bias().shape()[0];
    Sequential::new()
        .push(ConvLstmConfig::new(1, 2, (3, 3), 2).init(&mut rng).unwrap())
        .push(filters)
        .push(
            Conv2dConfig::masked(fch, 4, (3, 3), MaskSpec::diagonal(0.5))
                .with_padding(SAME)
                .init(&mut rng)
                .unwrap(),
        )
        .push(bn)
        .push(Activation::Relu)
        .push(Residual::new(main, Sequential::new(), Some(Activation::Relu)))
        .push(MaxPool2d(Pool2d::new(2)))
        .push(
            Conv2dConfig::transpose(4, 3, (2, 2), MaskSpec::diagonal(0.3))
                .with_strides(2, 2)
                .init(&mut rng)
                .unwrap(),
        )
        .push(Flatten)
        .push(
            DenseConfig::sz(3 * 8 * 8, 12, MaskSpec::two_d(8, 3, 1.0))
                .init(&mut rng)
                .unwrap(),
        )
        .push(
            DenseConfig::sz(
                12,
                6,
                MaskSpec::Gaussian {
                    param_reduction: 0.5,
                    halfbandwidth: 0.0,
                },
            )
            .init(&mut rng)
            .unwrap(),
        )
        .push(Activation::Tanh)
        .push(DenseConfig::new(6, 5).init(&mut rng).unwrap())
}

fn topology(h: usize) -> Vec<bool> {
    let mut rng = Stream::seeded(99);
    (0..h * h).map(|_| rng.uniform01() < 0.4).collect()
}

fn rnn(seed: u64) -> Sequential {
    let mut rng = Stream::seeded(seed);
    let layer = ElmanRnnConfig::new(3, 7, 2)
        .with_topology(topology(7))
        .init(&mut rng)
        .unwrap();
    Sequential::new().push(layer)
}

fn images(n: usize) -> Tensor {
    let mut rng = Stream::seeded(5);
    Tensor::from_vec(
        (0..n * 64).map(|_| rng.uniform(-1.0, 1.0) as f32).collect(),
        &[n, 1, 8, 8],
    )
    .unwrap()
}

fn sequences(n: usize) -> Tensor {
    let mut rng = Stream::seeded(6);
    Tensor::from_vec(
        (0..n * 4 * 3).map(|_| rng.uniform(-1.0, 1.0) as f32).collect(),
        &[n, 4, 3],
    )
    .unwrap()
}

/// Every parameter's values and every buffer.
type State = (Vec<Vec<f32>>, Vec<(String, Vec<f32>)>);

fn state(m: &dyn Module) -> State {
    (
        m.params().iter().map(|p| p.value.to_vec().unwrap()).collect(),
        m.buffers(),
    )
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (a.to_vec().unwrap(), b.to_vec().unwrap());
    assert_eq!(a.len(), b.len());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn round_trip_every_kind_both_layouts_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    for layout in [WeightLayout::Torch, WeightLayout::Keras] {
        for format in [WeightFormat::Safetensors, WeightFormat::Npz] {
            let mut source = cnn(1);
            let mut target = cnn(2);
            let x = images(2);
            let want = predict(&mut source, x.clone()).unwrap();
            assert!(
                max_diff(&want, &predict(&mut target, x.clone()).unwrap()) > 1e-3,
                "models must differ first"
            );
            let path = dir.path().join(format!("cnn_{}_{format:?}", layout.as_str()));
            save_weights(&source, format, layout, &path).unwrap();
            load_weights(&mut target, format, layout, &path).unwrap();
            // Exactly the same parameters and statistics, hence the same outputs.
            assert!(state(&source) == state(&target), "{layout:?} {format:?}");
            for l in [WeightLayout::Torch, WeightLayout::Keras] {
                assert!(export_tensors(&source, l).unwrap() == export_tensors(&target, l).unwrap());
            }
            assert_eq!(max_diff(&want, &predict(&mut target, x).unwrap()), 0.0);

            let mut source = rnn(1);
            let mut target = rnn(2);
            let x = sequences(3);
            let want = predict(&mut source, x.clone()).unwrap();
            save_weights(&source, format, layout, &path).unwrap();
            load_weights(&mut target, format, layout, &path).unwrap();
            let got = predict(&mut target, x).unwrap();
            if layout == WeightLayout::Torch {
                assert!(state(&source) == state(&target));
                assert_eq!(max_diff(&want, &got), 0.0);
            } else {
                // Keras' SimpleRNN has one bias (b_ih + b_hh): the same map, one rounding apart.
                assert!(max_diff(&want, &got) < 1e-6, "{}", max_diff(&want, &got));
            }
        }
    }
}

fn find<'a>(tensors: &'a [ExportTensor], name: &str) -> &'a ExportTensor {
    tensors.iter().find(|t| t.name == name).unwrap_or_else(|| {
        panic!(
            "no `{name}` in {:?}",
            tensors.iter().map(|t| &t.name).collect::<Vec<_>>()
        )
    })
}

fn f32s(t: &ExportTensor) -> &[f32] {
    match &t.values {
        TensorValues::F32(v) => v,
        TensorValues::I64(_) => panic!("{} is int64", t.name),
    }
}

#[test]
fn torch_names_and_layouts() {
    let model = cnn(1);
    let t = export_tensors(&model, WeightLayout::Torch).unwrap();
    // ConvLstm: Keras tensors under the path.
    assert_eq!(find(&t, "0.kernel").shape, vec![3, 3, 1, 8]);
    assert_eq!(find(&t, "0.recurrent_kernel").shape, vec![3, 3, 2, 8]);
    // Masked conv [out, in, kh, kw] with its mask in the same layout.
    let w = find(&t, "2.weight");
    assert_eq!(w.shape[0], 4);
    assert_eq!(w.shape[2..], [3, 3]);
    assert_eq!(find(&t, "2.mask").shape, w.shape);
    // The weight is zero wherever the mask is.
    for (wv, mv) in f32s(w).iter().zip(f32s(find(&t, "2.mask"))) {
        assert!(*mv != 0.0 || *wv == 0.0);
    }
    let kernel = model.layers()[2].params()[0].value.clone();
    let ks = kernel.shape().to_vec();
    let kv = kernel.to_vec().unwrap();
    // weight[o, i, h, w] = kernel[h, w, i, o]
    let (o, i, h, ww) = (3, 1, 2, 0);
    let file = f32s(w)[((o * w.shape[1] + i) * 3 + h) * 3 + ww];
    assert_eq!(file, kv[((h * ks[1] + ww) * ks[2] + i) * ks[3] + o]);
    // Batch norm.
    for n in ["weight", "bias", "running_mean", "running_var"] {
        assert_eq!(find(&t, &format!("3.{n}")).shape, vec![4]);
    }
    let count = find(&t, "3.num_batches_tracked");
    assert_eq!(
        (count.shape.clone(), count.values.clone()),
        (vec![], TensorValues::I64(vec![0]))
    );
    // Nested residual branch.
    assert_eq!(find(&t, "5.main.0.weight").shape, vec![4, 4, 3, 3]);
    assert!(
        t.iter().all(|x| !x.name.starts_with("5.main.0.mask")),
        "unmasked conv has no mask"
    );
    // ConvTranspose2d: [in, out, kh, kw].
    assert_eq!(find(&t, "7.weight").shape, vec![4, 3, 2, 2]);
    // Linear [out, in]; the gaussian window as the mask.
    assert_eq!(find(&t, "9.weight").shape, vec![12, 192]);
    assert_eq!(find(&t, "10.mask").shape, vec![6, 12]);
    assert!(f32s(find(&t, "10.mask")).iter().any(|&v| v > 0.0 && v < 1.0));
    assert!(t.iter().all(|x| x.name != "12.mask"));

    let r = export_tensors(&rnn(1), WeightLayout::Torch).unwrap();
    let names: Vec<&str> = r.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "0.rnn.weight_ih_l0",
            "0.rnn.weight_hh_l0",
            "0.rnn.bias_ih_l0",
            "0.rnn.bias_hh_l0",
            "0.rnn.mask",
            "0.fc.weight",
            "0.fc.bias"
        ]
    );
    assert_eq!(find(&r, "0.rnn.weight_ih_l0").shape, vec![7, 3]);
    assert_eq!(find(&r, "0.fc.weight").shape, vec![2, 7]);
    // mask[to, from] = topology[from, to]
    let topo = topology(7);
    let mask = f32s(find(&r, "0.rnn.mask"));
    assert_eq!(mask[2 * 7 + 5], f32::from(u8::from(topo[5 * 7 + 2])));
    // A model that is one layer has upstream's keys exactly.
    let mut rng = Stream::seeded(0);
    let alone = ElmanRnnConfig::new(3, 4, 2).init(&mut rng).unwrap();
    let a = export_tensors(&alone, WeightLayout::Torch).unwrap();
    assert_eq!(a[0].name, "rnn.weight_ih_l0");
    assert_eq!(a[6].name, "fc.bias");
}

#[test]
fn keras_names_and_layouts() {
    let t = export_tensors(&cnn(1), WeightLayout::Keras).unwrap();
    assert_eq!(find(&t, "conv_lstm2d/kernel").shape, vec![3, 3, 1, 8]);
    // The filter bank and the two plain/masked convs are conv2d, conv2d_1, conv2d_2 in model order.
    assert_eq!(
        find(&t, "conv2d/kernel").shape[..2],
        [find(&t, "conv2d/kernel").shape[0]; 2]
    );
    assert_eq!(find(&t, "conv2d_1/mask").shape, find(&t, "conv2d_1/kernel").shape);
    assert_eq!(find(&t, "conv2d_2/kernel").shape, vec![3, 3, 4, 4]);
    assert_eq!(find(&t, "conv2d_transpose/kernel").shape, vec![2, 2, 3, 4]);
    for n in ["gamma", "beta", "moving_mean", "moving_variance"] {
        assert_eq!(find(&t, &format!("batch_normalization_1/{n}")).shape, vec![4]);
    }
    assert_eq!(find(&t, "dense/kernel").shape, vec![192, 12]);
    assert_eq!(find(&t, "dense_2/bias").shape, vec![5]);
    let r = export_tensors(&rnn(1), WeightLayout::Keras).unwrap();
    let names: Vec<&str> = r.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "simple_rnn/kernel",
            "simple_rnn/recurrent_kernel",
            "simple_rnn/bias",
            "simple_rnn/mask",
            "dense/kernel",
            "dense/bias"
        ]
    );
}

fn expect_tensor_error(result: biolayers::Result<()>, tensor: &str, what: &str) {
    match result {
        Err(Error::WeightFile { tensor: t, detail, .. }) => {
            assert_eq!(t, tensor, "{what}: {detail}");
        }
        other => panic!("{what}: expected an error naming `{tensor}`, got {other:?}"),
    }
}

#[test]
fn bad_tensors_name_the_tensor_and_leave_the_model_unchanged() {
    let good = export_tensors(&cnn(1), WeightLayout::Torch).unwrap();
    let mut model = cnn(2);
    let before = state(&model);
    let origin = std::path::Path::new("weights.safetensors");
    let edit = |f: &dyn Fn(&mut Vec<ExportTensor>)| {
        let mut t = good.clone();
        f(&mut t);
        t
    };
    let idx = |t: &[ExportTensor], n: &str| t.iter().position(|x| x.name == n).unwrap();

    let missing = edit(&|t| {
        let i = idx(t, "9.bias");
        t.remove(i);
    });
    expect_tensor_error(
        import_tensors(&mut model, WeightLayout::Torch, &missing, origin),
        "9.bias",
        "missing",
    );

    let renamed = edit(&|t| {
        let i = idx(t, "12.weight");
        t[i].name = "12.wieght".into();
    });
    expect_tensor_error(
        import_tensors(&mut model, WeightLayout::Torch, &renamed, origin),
        "12.weight",
        "renamed",
    );

    let extra = edit(&|t| {
        let mut x = t[0].clone();
        x.name = "13.weight".into();
        t.push(x);
    });
    expect_tensor_error(
        import_tensors(&mut model, WeightLayout::Torch, &extra, origin),
        "13.weight",
        "extra",
    );

    let reshaped = edit(&|t| {
        let i = idx(t, "9.weight");
        t[i].shape = vec![192, 12];
    });
    expect_tensor_error(
        import_tensors(&mut model, WeightLayout::Torch, &reshaped, origin),
        "9.weight",
        "transposed shape",
    );

    let int = edit(&|t| {
        let i = idx(t, "12.bias");
        t[i].values = TensorValues::I64(vec![0; 5]);
    });
    expect_tensor_error(
        import_tensors(&mut model, WeightLayout::Torch, &int, origin),
        "12.bias",
        "int64",
    );

    let nan = edit(&|t| {
        let i = idx(t, "3.running_var");
        t[i].values = TensorValues::F32(vec![1.0, f32::NAN, 1.0, 1.0]);
    });
    expect_tensor_error(
        import_tensors(&mut model, WeightLayout::Torch, &nan, origin),
        "3.running_var",
        "NaN",
    );

    let mask = edit(&|t| {
        let i = idx(t, "2.mask");
        if let TensorValues::F32(v) = &mut t[i].values {
            let k = v.iter().position(|&m| m == 0.0).unwrap();
            v[k] = 1.0;
        }
    });
    expect_tensor_error(
        import_tensors(&mut model, WeightLayout::Torch, &mask, origin),
        "2.mask",
        "other mask",
    );

    let keras = export_tensors(&cnn(1), WeightLayout::Keras).unwrap();
    expect_tensor_error(
        import_tensors(&mut model, WeightLayout::Torch, &keras, origin),
        "0.kernel",
        "keras names",
    );
    assert!(state(&model) == before, "a refused import changes nothing");

    // The recurrent weight must stay on the topology.
    let mut r = rnn(2);
    let r_before = state(&r);
    let mut t = export_tensors(&rnn(1), WeightLayout::Torch).unwrap();
    let i = idx(&t, "0.rnn.weight_hh_l0");
    let m = idx(&t, "0.rnn.mask");
    let off = f32s(&t[m]).iter().position(|&v| v == 0.0).unwrap();
    if let TensorValues::F32(v) = &mut t[i].values {
        v[off] = 0.5;
    }
    expect_tensor_error(
        import_tensors(&mut r, WeightLayout::Torch, &t, origin),
        "0.rnn.weight_hh_l0",
        "off topology",
    );
    assert!(state(&r) == r_before);
}

#[test]
fn bad_files_are_typed_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = cnn(2);
    let before = state(&model);
    let path = dir.path().join("w.safetensors");
    // Corrupt bytes.
    std::fs::write(&path, b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage").unwrap();
    assert!(matches!(
        load_weights(&mut model, WeightFormat::Safetensors, WeightLayout::Torch, &path),
        Err(Error::ParamFile { .. })
    ));
    // Truncated file.
    let bytes = safetensors_bytes(
        &export_tensors(&cnn(1), WeightLayout::Torch).unwrap(),
        WeightLayout::Torch,
    )
    .unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    assert!(matches!(
        load_weights(&mut model, WeightFormat::Safetensors, WeightLayout::Torch, &path),
        Err(Error::ParamFile { .. })
    ));
    // A file of the other layout.
    std::fs::write(&path, &bytes).unwrap();
    let err = load_weights(&mut model, WeightFormat::Safetensors, WeightLayout::Keras, &path).unwrap_err();
    assert!(err.to_string().contains("`torch` layout"), "{err}");
    // Missing file.
    assert!(load_weights(
        &mut model,
        WeightFormat::Npz,
        WeightLayout::Torch,
        &dir.path().join("no.npz")
    )
    .is_err());
    assert!(state(&model) == before);
    // A float16 tensor is named.
    let (mut tensors, _) = parse_safetensors(&bytes, &path).unwrap();
    tensors.truncate(1);
    let name = tensors[0].name.clone();
    let n: usize = tensors[0].shape.iter().product();
    let half = vec![0u8; 2 * n];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F16, tensors[0].shape.clone(), &half).unwrap();
    let f16 = safetensors::serialize(vec![(name.clone(), view)], &None).unwrap();
    match parse_safetensors(&f16, &path) {
        Err(Error::WeightFile { tensor, detail, .. }) => {
            assert_eq!(tensor, name);
            assert!(detail.contains("F16"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unmapped_layer_with_parameters_is_named() {
    use bioautograd::{Graph, Var};
    use biolayers::layers::Param;
    struct Custom(Param);
    impl Module for Custom {
        fn forward(&mut self, _g: &Graph, x: &Var) -> biolayers::Result<Var> {
            Ok(*x)
        }
        fn params(&self) -> Vec<&Param> {
            vec![&self.0]
        }
        fn name(&self) -> String {
            "custom".into()
        }
    }
    let model = Sequential::new()
        .push(Activation::Relu)
        .push(Custom(Param::new("w", Tensor::from_vec(vec![1.0], &[1]).unwrap())));
    let err = export_tensors(&model, WeightLayout::Torch).unwrap_err();
    assert!(
        err.to_string().contains("= 1:") && err.to_string().contains("custom"),
        "{err}"
    );
}

/// The TF-FID InceptionV3's tensors with zero convolution weights: each layer then outputs
/// `relu(beta − mean / √(var + 0.001))` whatever its input, so the features show the batch-norm
/// folding, the order of `mixed_10`'s concatenation and the final average.
fn inception_tensors(
    beta_of: impl Fn(&str, usize) -> f32,
) -> std::collections::HashMap<String, (Vec<usize>, Vec<f32>)> {
    biolayers::inception::tensor_shapes()
        .into_iter()
        .map(|(name, shape)| {
            let len: usize = shape.iter().product();
            let values = if name.ends_with(".beta") {
                (0..len).map(|i| beta_of(&name, i)).collect()
            } else if name.ends_with(".mean") {
                vec![0.5; len]
            } else if name.ends_with(".var") {
                vec![2.999; len]
            } else {
                vec![0.0; len]
            };
            (name, (shape, values))
        })
        .collect()
}

#[test]
fn inception_fid_folds_batch_norm_and_concatenates_in_torchscript_order() {
    use biolayers::inception::{tensor_shapes, InceptionV3Fid, FID_FEATURES, FID_INPUT_SIZE};
    use std::path::Path;
    let shapes = tensor_shapes();
    assert_eq!(shapes.len(), 376, "the TorchScript state_dict has 376 tensors");
    assert!(shapes.contains(&("net.layers.mixed_4.tower.conv_1.weight".into(), vec![128, 128, 1, 7])));
    // mixed_10's branches, in the TorchScript's torch.cat order, and their widths.
    let order = [
        ("net.layers.mixed_10.conv.beta", 320),
        ("net.layers.mixed_10.tower_mixed_conv.beta", 384),
        ("net.layers.mixed_10.tower_mixed_conv_1.beta", 384),
        ("net.layers.mixed_10.tower_1_mixed_conv.beta", 384),
        ("net.layers.mixed_10.tower_1_mixed_conv_1.beta", 384),
        ("net.layers.mixed_10.tower_2_conv.beta", 192),
    ];
    let branch = |name: &str| order.iter().position(|(n, _)| *n == name);
    // Branch b's channel i gets beta 1 + b + i / 1000 (distinct, and positive after the shift).
    let beta = |name: &str, i: usize| match branch(name) {
        Some(b) => 1.0 + b as f32 + i as f32 / 1000.0,
        None => 0.25,
    };
    let origin = Path::new("zero-weights");
    let net = InceptionV3Fid::from_named(inception_tensors(beta), origin).unwrap();
    let x = vec![0.3f32; 3 * FID_INPUT_SIZE * FID_INPUT_SIZE];
    let features = net.forward(&x, 1).unwrap();
    assert_eq!(features.len(), FID_FEATURES);
    let shift = 0.5 / 3.0f32.sqrt();
    let mut k = 0;
    for (name, width) in order {
        for i in 0..width {
            let expected = beta(name, i) - shift;
            assert!(
                (features[k] - expected).abs() < 1e-5,
                "feature {k} ({name}[{i}]): {} vs {expected}",
                features[k]
            );
            k += 1;
        }
    }
    assert_eq!(k, FID_FEATURES);

    // Wrong input size, a missing, a misshapen and an unexpected tensor: errors naming them.
    assert!(net.forward(&x[1..], 1).is_err());
    let mut missing = inception_tensors(beta);
    missing.remove("net.layers.mixed_7.tower_1.conv_3.var");
    let e = InceptionV3Fid::from_named(missing, origin).unwrap_err().to_string();
    assert!(e.contains("mixed_7.tower_1.conv_3.var") && e.contains("missing"), "{e}");
    let mut misshapen = inception_tensors(beta);
    misshapen.insert("net.layers.conv.weight".into(), (vec![32, 3, 3, 2], vec![0.0; 576]));
    let e = InceptionV3Fid::from_named(misshapen, origin).unwrap_err().to_string();
    assert!(
        e.contains("net.layers.conv.weight") && e.contains("[32, 3, 3, 3]"),
        "{e}"
    );
    let mut extra = inception_tensors(beta);
    extra.insert("net.fc.weight".into(), (vec![1], vec![0.0]));
    let e = InceptionV3Fid::from_named(extra, origin).unwrap_err().to_string();
    assert!(e.contains("net.fc.weight") && e.contains("unexpected"), "{e}");

    // Through a safetensors file, as `cargo xtask fid-weights` writes it.
    let tensors: Vec<ExportTensor> = inception_tensors(beta)
        .into_iter()
        .map(|(name, (shape, values))| ExportTensor {
            name,
            shape,
            values: TensorValues::F32(values),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inception_fid.safetensors");
    std::fs::write(&path, safetensors_bytes(&tensors, WeightLayout::Torch).unwrap()).unwrap();
    let loaded = InceptionV3Fid::load(&path).unwrap();
    assert_eq!(loaded.forward(&x, 1).unwrap(), features);
    let e = InceptionV3Fid::load(&dir.path().join("none.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("none.safetensors"), "{e}");
}
