//! Layers on the tape: upstream mask semantics, training keeps the support, parameter files.

use bioautograd::{Graph, Mode, Tensor};
use biolayers::layers::{Activation, DenseConfig, Module, Sequential};
use biolayers::optim::{Convention, OptimizerConfig};
use biolayers::train::{load_params, predict, save_params, train_step};
use biomask::MaskSpec;
use biorng::Stream;

/// A toy 3-class problem: the class is the argmax of three fixed projections of the input.
fn toy_data(n: usize, dim: usize, rng: &mut Stream) -> (Vec<f32>, Vec<usize>) {
    let x: Vec<f32> = (0..n * dim).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    let labels = (0..n)
        .map(|i| {
            let row = &x[i * dim..(i + 1) * dim];
            let s: Vec<f32> = (0..3).map(|c| row.iter().skip(c).step_by(3).sum()).collect();
            (0..3).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap_or(0)
        })
        .collect();
    (x, labels)
}

#[test]
fn szdense_applies_mask_times_w_corr_once_and_reports_upstream_getters() {
    let mut rng = Stream::seeded(0);
    let layer = DenseConfig::sz(64, 32, MaskSpec::diagonal(0.5)).init(&mut rng).unwrap();
    assert_eq!(layer.num_weights(), 2048);
    assert_eq!(layer.num_zeros(), 2048 - 1034);
    assert!((layer.reduced_ratio() - (1.0 - 1034.0 / 2048.0)).abs() < 1e-12);
    let k = layer.kernel().as_slice().unwrap();
    let support = layer.support();
    assert!(
        k.iter().zip(&support).all(|(w, s)| *s || *w == 0.0),
        "weights off the mask must be 0"
    );
    // Glorot limit sqrt(6/96) scaled by w_corr = 2048/1034.
    let limit = (6.0f32 / 96.0).sqrt() * 2048.0 / 1034.0;
    let max = k.iter().fold(0f32, |m, w| m.max(w.abs()));
    assert!(max <= limit && max > 0.9 * limit, "max {max} limit {limit}");
}

#[test]
fn training_an_mlp_with_szdense_lowers_the_loss_and_keeps_the_support() {
    let mut rng = Stream::seeded(1);
    let (x, y) = toy_data(256, 24, &mut rng);
    let mut model = Sequential::new()
        .push(DenseConfig::sz(24, 32, MaskSpec::diagonal(0.5)).init(&mut rng).unwrap())
        .push(Activation::Relu)
        .push(DenseConfig::new(32, 3).init(&mut rng).unwrap());
    let support: Vec<bool> = {
        let k = model.params()[0].value.as_slice().unwrap();
        k.iter().map(|&w| w != 0.0).collect()
    };
    let mut opt = OptimizerConfig::torch_adam(0.01).build().unwrap();
    let mut losses = Vec::new();
    for _ in 0..60 {
        let xt = Tensor::from_vec(x.clone(), &[256, 24]).unwrap();
        losses.push(train_step(&mut model, &mut opt, xt, |g, out| g.cross_entropy(out, &y)).unwrap());
    }
    assert!(losses[59] < 0.6 * losses[0], "loss {} -> {}", losses[0], losses[59]);
    let k = model.params()[0].value.as_slice().unwrap();
    assert!(
        k.iter().zip(&support).all(|(w, s)| *s || *w == 0.0),
        "a masked weight left the support"
    );
    // Eval-mode prediction and a parameter-file round trip give identical outputs.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.npz");
    save_params(&model, &path).unwrap();
    let before = predict(&mut model, Tensor::from_vec(x[..24 * 4].to_vec(), &[4, 24]).unwrap()).unwrap();
    let mut fresh = Sequential::new()
        .push(
            DenseConfig::sz(24, 32, MaskSpec::diagonal(0.5))
                .init(&mut Stream::seeded(9))
                .unwrap(),
        )
        .push(Activation::Relu)
        .push(DenseConfig::new(32, 3).init(&mut Stream::seeded(9)).unwrap());
    load_params(&mut fresh, &path).unwrap();
    let after = predict(&mut fresh, Tensor::from_vec(x[..24 * 4].to_vec(), &[4, 24]).unwrap()).unwrap();
    assert_eq!(before.as_slice().unwrap(), after.as_slice().unwrap());
    // A model of another shape is refused without being changed.
    let mut other = Sequential::new().push(DenseConfig::new(24, 3).init(&mut rng).unwrap());
    assert!(load_params(&mut other, &path).is_err());
}

#[test]
fn non_finite_loss_stops_with_a_typed_error() {
    let mut rng = Stream::seeded(2);
    let mut model = Sequential::new().push(DenseConfig::new(4, 2).init(&mut rng).unwrap());
    let before = model.params()[0].value.to_vec().unwrap();
    let mut opt = OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.0,
        decay: 0.0,
        convention: Convention::Torch,
    }
    .build()
    .unwrap();
    let x = Tensor::from_vec(vec![f32::NAN, 1.0, 2.0, 3.0], &[1, 4]).unwrap();
    let e = train_step(&mut model, &mut opt, x, |g, out| g.cross_entropy(out, &[0])).unwrap_err();
    assert!(matches!(e, biolayers::Error::NonFinite { .. }), "{e}");
    assert_eq!(model.params()[0].value.to_vec().unwrap(), before);
}

#[test]
fn gaussian_window_is_applied_in_forward_not_baked_in() {
    let mut rng = Stream::seeded(3);
    let spec = MaskSpec::Gaussian {
        param_reduction: 0.5,
        halfbandwidth: 0.0,
    };
    let mut layer = DenseConfig::sz(8, 4, spec).init(&mut rng).unwrap();
    let kernel = layer.kernel().to_vec().unwrap();
    let window = layer.mask().keras_values();
    let x = Tensor::from_vec(vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], &[1, 8]).unwrap();
    let y = predict(&mut layer, x).unwrap();
    // Row 0 of W ⊙ G (bias 0).
    for j in 0..4 {
        assert!((y.as_slice().unwrap()[j] - kernel[j] * window[j]).abs() < 1e-6);
    }
}

#[test]
fn visit_layers_walks_nested_containers_in_parameter_order() {
    use biolayers::layers::{layer_at_mut, visit_layers, Residual};
    let mut rng = Stream::seeded(3);
    let dense = |i, o, rng: &mut Stream| DenseConfig::new(i, o).init(rng).unwrap();
    let block = Residual::new(
        Sequential::new()
            .push(dense(4, 4, &mut rng))
            .push(Activation::Relu)
            .push(dense(4, 4, &mut rng)),
        Sequential::new().push(dense(4, 4, &mut rng)),
        Some(Activation::Relu),
    );
    let inner = Sequential::new().push(block).push(dense(4, 2, &mut rng));
    let mut model = Sequential::new()
        .push(dense(3, 4, &mut rng))
        .push(Activation::Tanh)
        .push(inner);
    let visits = visit_layers(&model);
    let paths: Vec<&str> = visits.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "0",
            "1",
            "2.0.main.0",
            "2.0.main.1",
            "2.0.main.2",
            "2.0.shortcut.0",
            "2.1"
        ]
    );
    let firsts: Vec<usize> = visits.iter().map(|v| v.first_param).collect();
    assert_eq!(firsts, [0, 2, 2, 4, 4, 6, 8]);
    // Each visit's first parameter is the same tensor the root lists at that index.
    let all = model.params();
    for v in &visits {
        if let Some(p) = v.layer.params().first() {
            assert!(std::ptr::eq(*p, all[v.first_param]), "{}", v.path);
        }
    }
    assert_eq!(all.len(), 10);
    let layer = layer_at_mut(&mut model, "2.0.shortcut.0").unwrap();
    assert_eq!(layer.params().len(), 2);
    assert!(layer_at_mut(&mut model, "2.7").is_none());
    assert!(layer_at_mut(&mut model, "0.x").is_none());
}

/// Keras `Reshape((h, w, c))` reads the features channels-last; the layer returns NCHW.
#[test]
fn reshape_channels_last_reads_keras_order() {
    use biolayers::layers::{Module, Reshape};
    let g = bioautograd::Graph::new();
    // One sample, h = 1, w = 2, c = 3: Keras features [p0c0, p0c1, p0c2, p1c0, p1c1, p1c2].
    let x = g.input(bioautograd::Tensor::from_vec(vec![0., 1., 2., 10., 11., 12.], &[1, 6]).unwrap());
    let y = Reshape::channels_last(1, 2, 3).unwrap().forward(&g, &x).unwrap();
    let v = g.value(&y).unwrap();
    assert_eq!(v.shape(), &[1, 3, 1, 2]);
    assert_eq!(v.as_slice().unwrap(), &[0., 10., 1., 11., 2., 12.]);
    let plain = Reshape::new(&[2, 3]).unwrap().forward(&g, &x).unwrap();
    assert_eq!(g.value(&plain).unwrap().shape(), &[1, 2, 3]);
    assert!(Reshape::new(&[2, 0]).is_err());
}

/// Batch-norm of dense features: per feature over the batch, Keras' ε = 1e-3.
#[test]
fn batch_norm1d_normalises_each_feature_over_the_batch() {
    use biolayers::layers::{BatchNorm1d, Module};
    let g = bioautograd::Graph::with_mode(bioautograd::Mode::Train);
    let x = g.input(bioautograd::Tensor::from_vec(vec![1., 10., 3., 30.], &[2, 2]).unwrap());
    let mut bn = BatchNorm1d::keras(2).unwrap();
    let y = g.value(&bn.forward(&g, &x).unwrap()).unwrap();
    // Feature 0: mean 2, var 1 → ±1/√(1 + 1e-3); feature 1: mean 20, var 100.
    let a = 1.0 / (1.0f32 + 1e-3).sqrt();
    let b = 10.0 / (100.0f32 + 1e-3).sqrt();
    for (got, want) in y.as_slice().unwrap().iter().zip([-a, -b, a, b]) {
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
    // Keras momentum 0.99: the running mean moves 1 % of the way.
    assert!((bn.state().running_mean[1] - 0.2).abs() < 1e-6);
}

/// Keras `SpectralNormalization`: a training call divides the kernel by σ (one power iteration)
/// and updates `u`; an inference call changes nothing; `u` is a checkpointed buffer.
#[test]
fn spectral_norm_conv_normalises_in_training_only() {
    use biolayers::layers::{Conv2dConfig, Module, PaddingConfig, SpectralNormConv2d};
    let mut rng = biorng::Stream::seeded(7);
    let conv = Conv2dConfig::new(3, 8, (4, 4))
        .with_strides(2, 2)
        .with_padding(PaddingConfig::Same)
        .init(&mut rng)
        .unwrap();
    let before: Vec<f32> = conv.kernel().as_slice().unwrap().to_vec();
    let mut sn = SpectralNormConv2d::new(conv, &mut rng).unwrap();
    let u0 = sn.u().to_vec();
    let x = bioautograd::Tensor::from_vec(vec![0.5; 2 * 3 * 8 * 8], &[2, 3, 8, 8]).unwrap();
    let eval = bioautograd::Graph::with_mode(bioautograd::Mode::Eval);
    let xv = eval.input(x.clone());
    let y = sn.forward(&eval, &xv).unwrap();
    assert_eq!(eval.value(&y).unwrap().shape(), &[2, 8, 4, 4]);
    assert_eq!(sn.conv().kernel().as_slice().unwrap(), before.as_slice());
    assert_eq!(sn.u(), u0.as_slice());
    let mut sigmas = Vec::new();
    for _ in 0..20 {
        let g = bioautograd::Graph::with_mode(bioautograd::Mode::Train);
        let xv = g.input(x.clone());
        sn.forward(&g, &xv).unwrap();
        sigmas.push(sn.last_sigma().unwrap());
    }
    let ratio = before[0] / sn.conv().kernel().as_slice().unwrap()[0];
    assert!(
        (ratio - sigmas.iter().product::<f32>()).abs() < 1e-3 * ratio,
        "the kernel is divided by each σ"
    );
    assert!(
        (sigmas[19] - 1.0).abs() < 1e-3,
        "the normalised kernel's spectral norm tends to 1: {sigmas:?}"
    );
    assert_ne!(sn.u(), u0.as_slice());
    let saved = sn.buffers();
    assert_eq!(saved[0].0, "u");
    let mut other = SpectralNormConv2d::new(Conv2dConfig::new(3, 8, (4, 4)).init(&mut rng).unwrap(), &mut rng).unwrap();
    other.set_buffers(&saved).unwrap();
    assert_eq!(other.u(), sn.u());
    assert!(other.set_buffers(&[("u".into(), vec![0.0; 3])]).is_err());
    assert!(other.set_buffers(&[("v".into(), vec![0.0; 8])]).is_err());
}

// ---- DDIM U-Net and EMA ----

/// Keras' parameter count of `Conv2D(cout, k)` on `cin` channels (kernel + bias).
fn keras_conv(cin: usize, cout: usize, k: usize) -> usize {
    k * k * cin * cout + cout
}
/// `GroupNormalization`: gamma + beta.
fn keras_gn(c: usize) -> usize {
    2 * c
}
fn keras_residual(cin: usize, w: usize) -> usize {
    let proj = if cin == w { 0 } else { keras_conv(cin, w, 1) };
    proj + keras_gn(cin) + keras_conv(cin, w, 3) + keras_gn(w) + keras_conv(w, w, 3)
}
fn keras_attention(w: usize) -> usize {
    keras_gn(w) + 4 * keras_conv(w, w, 1)
}

/// The upstream DDIM network (64×64, widths 64/128/256/512, depth 2, attention at 16×16)
/// written out block by block as `get_network` builds it.
fn upstream_ddim_param_count() -> usize {
    let stem = keras_conv(3, 64, 1);
    // Down: 96 → 64 (64×64), 64 → 128 (32×32), 128 → 256 (16×16, with attention).
    let down = keras_residual(96, 64)
        + keras_residual(64, 64)
        + keras_residual(64, 128)
        + keras_residual(128, 128)
        + keras_residual(128, 256)
        + keras_attention(256)
        + keras_residual(256, 256)
        + keras_attention(256);
    // Middle at 8×8: no attention there.
    let middle = keras_residual(256, 512) + keras_residual(512, 512);
    // Up: skips popped 256, 256 | 128, 128 | 64, 64.
    let up = keras_residual(512 + 256, 256)
        + keras_attention(256)
        + keras_residual(256 + 256, 256)
        + keras_attention(256)
        + keras_residual(256 + 128, 128)
        + keras_residual(128 + 128, 128)
        + keras_residual(128 + 64, 64)
        + keras_residual(64 + 64, 64);
    let head = keras_conv(64, 3, 1);
    stem + down + middle + up + head
}

fn density(c: &biolayers::layers::Conv2d) -> f64 {
    let v = c.mask().keras_values();
    v.iter().filter(|&&m| m != 0.0).count() as f64 / v.len() as f64
}

#[test]
fn ddim_unet_has_the_keras_parameter_count_and_the_upstream_mouse_masks() {
    use biolayers::layers::{mouse_grid_width, DdimUnetConfig};
    assert_eq!(
        [64, 128, 256, 512].map(mouse_grid_width),
        [8, 16, 16, 16],
        "banker's rounding of log2(w)/2"
    );
    let widths = vec![64, 128, 256, 512];
    let standard = DdimUnetConfig::standard(64, widths.clone(), 2)
        .init(&mut Stream::seeded(1))
        .unwrap();
    let count = |m: &dyn Module| m.params().iter().map(|p| p.value.numel()).sum::<usize>();
    let want = upstream_ddim_param_count();
    assert_eq!(count(&standard), want);
    let mouse = DdimUnetConfig::mouse(64, widths, 2, 0.4)
        .init(&mut Stream::seeded(1))
        .unwrap();
    assert_eq!(count(&mouse), want, "masks do not change the parameter count");
    let blocks = mouse.residual_blocks();
    // down 64, 64, 128, 128, 256, 256 | middle 512, 512 | up 256, 256, 128, 128, 64, 64
    let masked: Vec<bool> = blocks
        .iter()
        .map(|b| b.convs()[0].mask().form() != biomask::MaskForm::Full)
        .collect();
    let expect = [
        false, false, false, false, true, true, true, true, true, true, true, true, false, false,
    ];
    assert_eq!(masked, expect);
    for b in &blocks {
        let [c1, c2] = b.convs();
        assert_eq!(c1.mask().form(), c2.mask().form(), "both 3x3 convs of a block alike");
    }
    // The reference study's exact densities: 768→256 (16,16,0.4) is the first up block's first
    // conv, 512→512 (16,16,0.4) the second middle block's.
    assert!(
        (density(blocks[8].convs()[0]) - 0.343333).abs() < 5e-7,
        "{}",
        density(blocks[8].convs()[0])
    );
    assert!(
        (density(blocks[7].convs()[0]) - 0.345154).abs() < 5e-7,
        "{}",
        density(blocks[7].convs()[0])
    );
    assert_eq!(
        standard
            .residual_blocks()
            .iter()
            .filter(|b| b.convs()[0].mask().form() != biomask::MaskForm::Full)
            .count(),
        0
    );

    // The paper reports 44% weight usage for the mouse DDIM: the kept share of all kernels.
    let (mut kept, mut total) = (0.0f64, 0.0f64);
    for (name, p) in mouse.named_params() {
        if name.ends_with("kernel") {
            total += p.value.numel() as f64;
            kept += p.value.numel() as f64;
        }
    }
    for b in &blocks {
        for c in b.convs() {
            kept -= c.kernel().numel() as f64 * (1.0 - density(c));
        }
    }
    assert!((kept / total - 0.439693).abs() < 1e-6, "usage {}", kept / total);
}

fn tiny_unet() -> biolayers::layers::DdimUnet {
    let mut cfg = biolayers::layers::DdimUnetConfig::mouse(8, vec![8, 16], 1, 0.5);
    cfg.norm_groups = 4;
    cfg.embedding_dims = 8;
    cfg.attention_resolution = Some(4);
    cfg.init(&mut Stream::seeded(3)).unwrap()
}

#[test]
fn ddim_unet_predicts_noise_of_the_image_shape_and_trains_every_parameter() {
    use bioautograd::Graph;
    let mut net = tiny_unet();
    let mut rng = Stream::seeded(4);
    let n = 2;
    let images: Vec<f32> = (0..n * 3 * 64).map(|_| rng.standard_normal() as f32).collect();
    let g = Graph::new();
    let x = g.input(Tensor::from_vec(images.clone(), &[n, 3, 8, 8]).unwrap());
    let y = net.denoise(&g, &x, &[0.1, 0.7]).unwrap();
    assert_eq!(g.shape(&y).unwrap(), vec![n, 3, 8, 8]);
    // The head starts at zero, as upstream's `kernel_initializer="zeros"`.
    assert!(g.value(&y).unwrap().as_slice().unwrap().iter().all(|&v| v == 0.0));
    let loss = g.mae(&y, &x).unwrap();
    let grads = g.backward(&loss).unwrap();
    let missing: Vec<String> = net
        .named_params()
        .iter()
        .filter(|(_, p)| grads.get(&p.var().unwrap()).is_none())
        .map(|(n, _)| n.clone())
        .collect();
    assert!(missing.is_empty(), "no gradient for {missing:?}");
    assert_eq!(net.named_params().len(), net.params().len());
    // The packed Module input gives the same output.
    let mut packed = Vec::new();
    for (b, img) in images.chunks(3 * 64).enumerate() {
        packed.extend_from_slice(img);
        packed.extend(std::iter::repeat_n([0.1f32, 0.7][b], 64));
    }
    let g2 = Graph::new();
    let xp = g2.input(Tensor::from_vec(packed, &[n, 4, 8, 8]).unwrap());
    let y2 = net.forward(&g2, &xp).unwrap();
    assert_eq!(g2.value(&y2).unwrap().shape(), &[n, 3, 8, 8]);
}

#[test]
fn ddim_unet_rejects_bad_configs_by_name() {
    use biolayers::layers::DdimUnetConfig;
    let mut cfg = DdimUnetConfig::standard(30, vec![8, 16, 32], 1);
    let e = cfg.init(&mut Stream::seeded(1)).unwrap_err().to_string();
    assert!(e.contains("image_size") && e.contains("30"), "{e}");
    cfg.image_size = 32;
    cfg.norm_groups = 3;
    let e = cfg.init(&mut Stream::seeded(1)).unwrap_err().to_string();
    assert!(e.contains("norm_groups"), "{e}");
    cfg.norm_groups = 8;
    cfg.window_up.pop();
    let e = cfg.init(&mut Stream::seeded(1)).unwrap_err().to_string();
    assert!(e.contains("window"), "{e}");
}

#[test]
fn ema_averages_swaps_and_restores_its_state() {
    use biolayers::ema::Ema;
    let mut net = tiny_unet();
    let mut ema = Ema::new(&net, 0.9).unwrap();
    let before: Vec<Vec<f32>> = net.params().iter().map(|p| p.value.to_vec().unwrap()).collect();
    for p in net.params_mut() {
        for v in p.value.data_mut().unwrap() {
            *v += 1.0;
        }
    }
    ema.update(&net).unwrap();
    for (s, b) in ema.weights().iter().zip(&before) {
        for (sv, bv) in s.as_slice().unwrap().iter().zip(b) {
            let want = 0.9f32 * bv + (1.0 - 0.9f32) * (bv + 1.0);
            assert_eq!(*sv, want);
        }
    }
    let state = ema.state().unwrap();
    ema.swap(&mut net).unwrap();
    assert_eq!(
        net.params()[0].value.to_vec().unwrap(),
        state[0].1,
        "the average is in the model"
    );
    ema.swap(&mut net).unwrap();
    assert_eq!(
        net.params()[0].value.to_vec().unwrap(),
        before[0].iter().map(|v| v + 1.0).collect::<Vec<_>>()
    );
    let mut fresh = Ema::new(&net, 0.9).unwrap();
    fresh.set_state(&state).unwrap();
    assert_eq!(fresh.state().unwrap(), state);
    let mut short = state.clone();
    short[1].1.pop();
    let e = fresh.set_state(&short).unwrap_err().to_string();
    assert!(e.contains("ema.1"), "{e}");
    assert_eq!(fresh.state().unwrap(), state, "a refused restore changes nothing");
    assert!(Ema::new(&net, 1.0).is_err());
}

/// Upstream's self-attention block against an independent NumPy forward (einsum over channels
/// last, as the Keras DDPM example's `AttentionBlock`; `xtask/python/ddim_reference.py`, fixture
/// `tests/fixtures/ddim_attention.json`), with every weight set from the fixture.
#[test]
fn attention_block_matches_the_numpy_reference() {
    use biolayers::layers::{AttentionBlock, DdimUnetConfig};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ddim_attention.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let field = |k: &str| -> (Vec<usize>, Vec<f32>) {
        let a = &doc[k];
        let shape = a["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let data = a["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        (shape, data)
    };
    let (xs, x) = field("x");
    let c = xs[1];
    let mut cfg = DdimUnetConfig::standard(8, vec![c], 1);
    cfg.norm_groups = doc["groups"].as_u64().unwrap() as usize;
    cfg.norm_eps = doc["eps"].as_f64().unwrap();
    let mut block = AttentionBlock::new(c, &cfg, &mut Stream::seeded(1)).unwrap();
    // Parameter order: norm γ, β, then kernel and bias of query, key, value, proj. Our 1×1
    // kernels are Keras-layout (1, 1, in, out): the flat data of a Dense (in, out) kernel.
    let mut values = vec![field("gamma").1, field("beta").1];
    for m in ["query", "key", "value", "proj"] {
        values.push(field(&format!("{m}_kernel")).1);
        values.push(field(&format!("{m}_bias")).1);
    }
    let params = block.params_mut();
    assert_eq!(params.len(), values.len());
    for (p, v) in params.into_iter().zip(&values) {
        let shape = p.value.shape().to_vec();
        assert!(shape == [c] || shape == [1, 1, c, c], "{shape:?}");
        p.value.data_mut().unwrap().copy_from_slice(v);
    }
    let g = Graph::with_mode(Mode::Eval);
    let xv = g.input(Tensor::from_vec(x, &xs).unwrap());
    let y = block.forward(&g, &xv).unwrap();
    let got = g.value(&y).unwrap().to_vec().unwrap();
    let (ys, want) = field("y");
    assert_eq!(g.shape(&y).unwrap(), ys);
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 2e-5, "max |ours - NumPy| = {worst}");
}
