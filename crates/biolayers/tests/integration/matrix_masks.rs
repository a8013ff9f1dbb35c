//! Masks from any matrix (`MaskSpec::Matrix`) on Dense and Conv layers, bio2art connectomes as
//! masks, and the construction conventions (mask draw order, PyTorch's default bias).

use std::path::Path;

use bioautograd::{Graph, Tensor};
use biokernels::TileKind;
use biolayers::layers::{Conv2dConfig, DenseConfig, Module};
use biolayers::optim::Convention;
use biomask::{MaskForm, MaskSpec};
use biorng::Stream;

/// `x·(W ⊙ M) + b` in f64, `x (batch, in)`, `W, M (in, out)`.
fn reference_dense(x: &[f32], w: &[f32], m: &[f32], b: &[f32], batch: usize, nin: usize, nout: usize) -> Vec<f64> {
    let mut y = vec![0f64; batch * nout];
    for r in 0..batch {
        for o in 0..nout {
            let mut acc = f64::from(b[o]);
            for i in 0..nin {
                acc += f64::from(x[r * nin + i]) * f64::from(w[i * nout + o]) * f64::from(m[i * nout + o]);
            }
            y[r * nout + o] = acc;
        }
    }
    y
}

/// A block-diagonal `n × n` topology with `block`-wide blocks and a few extra links: many empty
/// 16×16 tiles, some partial ones.
fn block_topology(n: usize, block: usize) -> Vec<bool> {
    (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            i / block == j / block || (i, j) == (3, 40) || (i, j) == (50, 5)
        })
        .collect()
}

/// Forward and `dW`, `db` of `sum(y · u)` for a fixed upstream gradient `u`.
fn forward_and_grads(layer: &mut biolayers::layers::Dense, x: &[f32], batch: usize) -> (Vec<f32>, Vec<f32>) {
    let nin = layer.config().in_features;
    let g = Graph::new();
    let xv = g.input(Tensor::from_vec(x.to_vec(), &[batch, nin]).unwrap());
    let y = layer.forward(&g, &xv).unwrap();
    let nout = layer.config().units;
    let u: Vec<f32> = (0..batch * nout).map(|k| ((k * 13 % 7) as f32 - 3.0) / 3.0).collect();
    let grads = g
        .backward_with(&y, Tensor::from_vec(u, &[batch, nout]).unwrap())
        .unwrap();
    let dw = grads.slice(&layer.params()[0].var().unwrap()).unwrap().to_vec();
    (g.value(&y).unwrap().to_vec().unwrap(), dw)
}

#[test]
fn a_binary_matrix_runs_the_tile_skipping_gemm_with_zero_gradient_off_the_mask() {
    let n = 64;
    let topology = block_topology(n, 16);
    let mut rng = Stream::seeded(4);
    let mut layer = DenseConfig::sz(n, n, MaskSpec::binary(&topology, n, n).unwrap())
        .init(&mut rng)
        .unwrap();
    assert_eq!(layer.mask().form(), MaskForm::Matrix);
    assert_eq!(layer.name(), "szdense");
    // The masked GEMM is used, and it has tiles to skip.
    let tiles = layer.tile_map().expect("a matrix mask must compile to a tile map");
    let empty = tiles.kinds().iter().filter(|k| **k == TileKind::Empty).count();
    assert_eq!((empty, tiles.kinds().len()), (10, 16));
    // Weights off the mask are exactly 0, those on it rescaled by w_corr = n²/ones.
    let kernel = layer.kernel().to_vec().unwrap();
    assert!(kernel.iter().zip(&topology).all(|(w, s)| *s || *w == 0.0));
    let ones = topology.iter().filter(|&&s| s).count();
    assert_eq!(layer.mask().w_corr(), (n * n) as f64 / ones as f64);
    // Forward = x·(W ⊙ M) + b (f64 reference); dW = 0 exactly off the mask, non-zero on it.
    let batch = 5;
    let x: Vec<f32> = (0..batch * n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    let m: Vec<f32> = topology.iter().map(|&s| f32::from(u8::from(s))).collect();
    let (y, dw) = forward_and_grads(&mut layer, &x, batch);
    let want = reference_dense(&x, &kernel, &m, &vec![0.0; n], batch, n, n);
    for (a, b) in y.iter().zip(&want) {
        assert!((f64::from(*a) - b).abs() < 1e-5, "{a} vs {b}");
    }
    assert!(
        dw.iter().zip(&topology).all(|(d, s)| *s || *d == 0.0),
        "gradient off the mask"
    );
    assert!(dw.iter().zip(&topology).filter(|(_, s)| **s).all(|(d, _)| *d != 0.0));
}

#[test]
fn a_weighted_matrix_is_a_float_window_over_its_support() {
    let (nin, nout) = (40, 24);
    let values: Vec<f32> = (0..nin * nout)
        .map(|k| if k % 5 < 2 { 0.25 + (k % 7) as f32 * 0.5 } else { 0.0 })
        .collect();
    let mut rng = Stream::seeded(5);
    let cfg = DenseConfig::sz(nin, nout, MaskSpec::matrix(values.clone(), nin, nout).unwrap());
    let mut layer = cfg.init(&mut rng).unwrap();
    assert!(!layer.mask().is_binary());
    assert!(layer.tile_map().is_some());
    // No rescale (w_corr = 1): the kernel is glorot on the support and exactly 0 off it.
    let kernel = layer.kernel().to_vec().unwrap();
    let limit = (6.0f32 / (nin + nout) as f32).sqrt();
    assert!(kernel.iter().all(|w| w.abs() <= limit));
    assert!(kernel.iter().zip(&values).all(|(w, m)| *m != 0.0 || *w == 0.0));
    let batch = 3;
    let x: Vec<f32> = (0..batch * nin).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    let (y, dw) = forward_and_grads(&mut layer, &x, batch);
    let want = reference_dense(&x, &kernel, &values, &vec![0.0; nout], batch, nin, nout);
    for (a, b) in y.iter().zip(&want) {
        assert!((f64::from(*a) - b).abs() < 1e-5, "{a} vs {b}");
    }
    // dW = (xᵀ·u) ⊙ M: zero exactly where M is 0.
    assert!(dw.iter().zip(&values).all(|(d, m)| *m != 0.0 || *d == 0.0));
    assert!(dw.iter().zip(&values).any(|(d, m)| *m != 0.0 && *d != 0.0));
}

#[test]
fn a_matrix_holding_a_diagonal_mask_builds_the_same_layers() {
    let mut rng = Stream::seeded(0);
    let diag = DenseConfig::sz(48, 20, MaskSpec::diagonal(0.6)).init(&mut rng).unwrap();
    let values = diag.mask().keras_values();
    let copy = DenseConfig::sz(48, 20, MaskSpec::matrix(values, 48, 20).unwrap())
        .init(&mut Stream::seeded(0))
        .unwrap();
    assert_eq!(copy.kernel().to_vec().unwrap(), diag.kernel().to_vec().unwrap());
    // Conv: a (cin, cout) channel matrix shared by every tap.
    let conv_diag = Conv2dConfig::masked(6, 8, (3, 3), MaskSpec::diagonal(0.5))
        .init(&mut Stream::seeded(1))
        .unwrap();
    let channel = conv_diag.mask().channel_values().unwrap().to_vec();
    let mut conv_copy = Conv2dConfig::masked(6, 8, (3, 3), MaskSpec::matrix(channel, 6, 8).unwrap())
        .init(&mut Stream::seeded(1))
        .unwrap();
    assert_eq!(
        conv_copy.kernel().to_vec().unwrap(),
        conv_diag.kernel().to_vec().unwrap()
    );
    assert_eq!(conv_copy.name(), "szconv2d");
    // Conv: a full (kh, kw, cin, cout) matrix equals the per-tap `individual` mask it copies.
    let mut conv_ind = Conv2dConfig::masked(6, 8, (3, 3), MaskSpec::Individual { param_reduction: 0.5 })
        .init(&mut Stream::seeded(2))
        .unwrap();
    let per_tap = conv_ind.mask().keras_values();
    let mut rng_copy = Stream::seeded(2);
    // `individual` drew its mask first; draw the same numbers so the kernels line up.
    for _ in 0..per_tap.len() {
        rng_copy.uniform01();
    }
    let mut conv_tap = Conv2dConfig::masked(
        6,
        8,
        (3, 3),
        MaskSpec::matrix_with_shape(per_tap.clone(), &[3, 3, 6, 8]).unwrap(),
    )
    .init(&mut rng_copy)
    .unwrap();
    assert_eq!(conv_tap.mask().keras_values(), per_tap);
    assert_eq!(conv_tap.kernel().to_vec().unwrap(), conv_ind.kernel().to_vec().unwrap());
    let x: Vec<f32> = (0..2 * 6 * 7 * 7).map(|k| ((k * 29 % 17) as f32 - 8.0) / 8.0).collect();
    let run = |layer: &mut biolayers::layers::Conv2d| {
        let g = Graph::new();
        let xv = g.input(Tensor::from_vec(x.clone(), &[2, 6, 7, 7]).unwrap());
        let y = layer.forward(&g, &xv).unwrap();
        g.value(&y).unwrap().to_vec().unwrap()
    };
    assert_eq!(run(&mut conv_tap), run(&mut conv_ind));
    let _ = run(&mut conv_copy);
    // A weighted matrix and a wrong shape are refused on conv layers, naming the problem.
    let e = Conv2dConfig::masked(2, 2, (3, 3), MaskSpec::matrix(vec![0.5, 1.0, 0.0, 2.0], 2, 2).unwrap())
        .init(&mut Stream::seeded(0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("matrix") && e.contains("0/1"), "{e}");
    let e = Conv2dConfig::masked(3, 2, (3, 3), MaskSpec::matrix(vec![1.0; 4], 2, 2).unwrap())
        .init(&mut Stream::seeded(0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[2, 2]") && e.contains("[nx, ny] = [3, 2]"), "{e}");
}

#[test]
fn a_bio2art_connectome_masks_a_dense_layer_in_one_line() {
    let spec: bio2art::Bio2artSpec =
        toml::from_str("connectome = \"Drosophila\"\nseed = 1\n[config]\nneuron_density = 2\ntarget_sparsity = 0.3\n")
            .unwrap();
    let net = spec.build().unwrap();
    let n = net.n_neurons;
    let layer = DenseConfig::sz(n, n, MaskSpec::binary(&net.connected, n, n).unwrap())
        .init(&mut Stream::seeded(0))
        .unwrap();
    let kernel = layer.kernel().to_vec().unwrap();
    assert!(kernel.iter().zip(&net.connected).all(|(w, c)| *c || *w == 0.0));
    assert_eq!(layer.support(), net.connected);
    // The weighted connectome is a float window on the same support.
    let weighted = DenseConfig::sz(n, n, MaskSpec::matrix_f64(&net.weights, n, n).unwrap())
        .init(&mut Stream::seeded(0))
        .unwrap();
    let support_w: Vec<bool> = net.weights.iter().map(|&w| w != 0.0).collect();
    assert_eq!(weighted.support(), support_w);
}

#[test]
fn a_matrix_npy_path_in_a_toml_config_builds_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topology.npy");
    let topo: Vec<u8> = (0..12 * 8).map(|k| u8::from(k % 3 == 0)).collect();
    bionpy::write_npy(&path, &[12, 8], &topo).unwrap();
    let text = format!(
        "in_features = 12\nunits = 8\nmask = {{ form = \"matrix\", path = {:?} }}\n",
        path.display().to_string()
    );
    let cfg: DenseConfig = toml::from_str(&text).unwrap();
    assert_eq!(cfg.convention, Convention::Keras);
    let layer = cfg.init(&mut Stream::seeded(0)).unwrap();
    let support: Vec<bool> = topo.iter().map(|&v| v == 1).collect();
    assert_eq!(layer.support(), support);
    // A missing file is a typed error naming it, at init.
    let missing: DenseConfig = toml::from_str(&text.replace("topology.npy", "absent.npy")).unwrap();
    let e = missing.init(&mut Stream::seeded(0)).unwrap_err().to_string();
    assert!(e.contains("absent.npy"), "{e}");
}

/// The `(kh, kw, nx, ny)` 0/1 values of a bit-packed NumPy mask fixture of `biomask`.
fn numpy_fixture(name: &str, len: usize) -> Vec<f32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../biomask/tests/fixtures/masks")
        .join(name);
    let packed: bionpy::NpyArray<u8> = bionpy::read_npy(&path).unwrap();
    (0..len)
        .map(|i| f32::from((packed.data[i / 8] >> (7 - i % 8)) & 1))
        .collect()
}

#[test]
fn the_torch_convention_draws_masks_in_pytorch_order() {
    // NumPy references of `xtask/python/masks_reference.py`, drawn in PyTorch's (out, in) order.
    let dense = DenseConfig::sz(64, 32, MaskSpec::Individual { param_reduction: 0.5 })
        .with_convention(Convention::Torch)
        .init(&mut Stream::numpy(0))
        .unwrap();
    assert_eq!(
        dense.mask().keras_values(),
        numpy_fixture("individual_torch_64x32_r0.5_s0.npy", 64 * 32)
    );
    let keras = DenseConfig::sz(64, 32, MaskSpec::Individual { param_reduction: 0.5 })
        .init(&mut Stream::numpy(0))
        .unwrap();
    assert_ne!(keras.mask().keras_values(), dense.mask().keras_values());
    let conv = Conv2dConfig::masked(8, 16, (3, 3), MaskSpec::Kernel { param_reduction: 0.3 })
        .with_convention(Convention::Torch)
        .init(&mut Stream::numpy(1))
        .unwrap();
    assert_eq!(
        conv.mask().keras_values(),
        numpy_fixture("kernel_torch_conv.npy", 3 * 3 * 8 * 16)
    );
    let conv_tap = Conv2dConfig::masked(8, 16, (3, 3), MaskSpec::Individual { param_reduction: 0.5 })
        .with_convention(Convention::Torch)
        .init(&mut Stream::numpy(0))
        .unwrap();
    assert_eq!(
        conv_tap.mask().keras_values(),
        numpy_fixture("individual_torch_conv.npy", 3 * 3 * 8 * 16)
    );
}

/// `(max |b|, mean b)` of a bias.
fn bias_stats(layer: &dyn Module) -> (f64, f64) {
    let b = layer.params()[1].value.to_vec().unwrap();
    let max = b.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs()));
    let mean = b.iter().map(|&v| f64::from(v)).sum::<f64>() / b.len() as f64;
    (max, mean)
}

#[test]
fn the_torch_convention_draws_pytorchs_default_bias() {
    // Keras: zeros (unchanged default).
    let keras = DenseConfig::new(64, 2000).init(&mut Stream::seeded(0)).unwrap();
    assert_eq!(bias_stats(&keras), (0.0, 0.0));
    // PyTorch nn.Linear: U(±1/sqrt(in)).
    let torch = DenseConfig::new(64, 2000)
        .with_convention(Convention::Torch)
        .init(&mut Stream::seeded(0))
        .unwrap();
    let (max, mean) = bias_stats(&torch);
    let bound = 1.0 / 8.0;
    assert!(max <= bound && max > 0.99 * bound, "max {max}, bound {bound}");
    assert!(mean.abs() < 0.01, "mean {mean}");
    // The kernel is the same draw as under Keras (the bias is drawn after it).
    assert_eq!(torch.kernel().to_vec().unwrap(), keras.kernel().to_vec().unwrap());
    // nn.Conv2d: fan_in = kh·kw·in/groups; nn.ConvTranspose2d: kh·kw·out/groups.
    let conv = Conv2dConfig::new(8, 3000, (3, 3))
        .with_convention(Convention::Torch)
        .init(&mut Stream::seeded(1))
        .unwrap();
    let (max, _) = bias_stats(&conv);
    let bound = 1.0 / 72f64.sqrt();
    assert!(max <= bound && max > 0.99 * bound, "max {max}, bound {bound}");
    let mut transposed = Conv2dConfig::transpose(3000, 6, (2, 2), MaskSpec::Full);
    transposed.groups = 2;
    let transposed = transposed
        .with_convention(Convention::Torch)
        .init(&mut Stream::seeded(2))
        .unwrap();
    let b = transposed.params()[1].value.to_vec().unwrap();
    let bound = 1.0 / 12f64.sqrt();
    assert!(b.iter().all(|v| f64::from(v.abs()) <= bound));
    assert!(b.iter().any(|v| f64::from(v.abs()) > 0.25 * bound));
    // serde: `convention = "torch"` in a config.
    let cfg: Conv2dConfig =
        toml::from_str("in_channels = 3\nfilters = 4\nkernel_size = [3, 3]\nconvention = \"torch\"\n").unwrap();
    assert_eq!(cfg.convention, Convention::Torch);
}
