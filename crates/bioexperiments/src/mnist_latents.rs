//! The 50-d MNIST latent table that `pic_latent_mem` needs, made with our own engine.
//!
//! Upstream's table (`latent_mnist/mnist_latent_output_labels.pt`: float32 `(10000, 50)`, ReLU
//! features, MNIST test order) ships in a repository without a licence, so it is not
//! redistributed. This module stands in for it: it trains the classic small PyTorch MNIST CNN
//! on the MNIST training set and keeps the ReLU output of its 50-unit layer for the 10 000
//! test images (same shape, same label order, values ≥ 0; the values themselves differ from
//! upstream's, whose network and training are not documented).
//!
//! Network (PyTorch's `examples/mnist` of 2017–2019):
//! `conv(1→10, k5) → maxpool 2 → relu → conv(10→20, k5) → dropout(0.5) → maxpool 2 → relu →
//! flatten (320) → fc(320→50) → relu [the latent] → fc(50→10)`, cross-entropy, PyTorch SGD
//! lr 0.01 momentum 0.5, batch 64, inputs normalised with MNIST's `(0.1307, 0.3081)`. Kernels use
//! PyTorch's default `kaiming_uniform(a=√5)`; biases start at 0. The example's `Dropout2d`
//! (whole channels) is an element-wise dropout here, and its second dropout after the 50-unit
//! layer is left out (eval mode makes both the identity, so the latent is unaffected).
//!
//! # Shapes
//! Images `(n, 1, 28, 28)` → logits `(n, 10)`; latents `(n, 50)`.

use std::path::Path;
use std::time::Instant;

use bioautograd::Pool2d;
use bioautograd::Tensor;
use biolayers::init::Initializer;
use biolayers::layers::{Activation, Conv2dConfig, DenseConfig, Dropout, Flatten, MaxPool2d, Module, Sequential};
use biolayers::optim::{Convention, OptimizerConfig};
use biolayers::train::predict;
use biorng::Stream;
use serde::Serialize;

use crate::error::{invalid, Error, Result};
use biotasks::data::{load_mnist, resolve_data_dir, ImageDataset, Normalization, Split};
use biotasks::fit::{evaluate_on, fit, EpochRecord, FitConfig};
use biotasks::LatentTable;

/// Width of the latent layer.
pub const LATENT_DIM: usize = 50;

/// Settings of `cargo xtask mnist-latents`.
#[derive(Debug, Clone, Serialize)]
pub struct MnistLatentsConfig {
    /// Training epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// SGD learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Training images used (`None` = all 60 000).
    pub train_images: Option<usize>,
    /// Seed of the weights, dropout and batch order.
    pub seed: u64,
    /// Where to train and extract (`--device`; not part of the recorded settings).
    #[serde(skip)]
    pub device: bioautograd::Device,
}

impl MnistLatentsConfig {
    /// Checks the settings that need no data (run first, so a bad flag costs no MNIST load).
    ///
    /// # Errors
    /// `epochs` or `batch_size` of 0, named.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(invalid("epochs", self.epochs, "must be >= 1"));
        }
        if self.batch_size == 0 {
            return Err(invalid("batch_size", self.batch_size, "must be >= 1"));
        }
        if self.train_images == Some(0) {
            return Err(invalid("train_images", 0, "must be >= 1 (or left out for all)"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid("lr", self.lr, "must be finite and > 0"));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(invalid("momentum", self.momentum, "must be in [0, 1)"));
        }
        Ok(())
    }
}

impl Default for MnistLatentsConfig {
    fn default() -> Self {
        MnistLatentsConfig {
            epochs: 3,
            batch_size: 64,
            lr: 0.01,
            momentum: 0.5,
            train_images: None,
            seed: 0,
            device: bioautograd::Device::Cpu,
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct MnistLatents {
    /// The `(n_test, 50)` table with the test labels.
    pub table: LatentTable,
    /// Accuracy of the classifier on the test images (0..1).
    pub test_accuracy: f64,
    /// Per-epoch history (validation = the test images).
    pub history: Vec<EpochRecord>,
    /// Wall-clock seconds of training and extraction.
    pub seconds: f64,
}

/// MNIST's per-pixel mean and standard deviation (of `x / 255`), as the PyTorch example uses.
pub fn mnist_normalization() -> Normalization {
    Normalization {
        mean: vec![0.1307],
        std: vec![0.3081],
    }
}

/// The network up to the latent (`with_head = false`) or with the 10-way readout.
pub fn mnist_cnn(with_head: bool, rng: &mut Stream, seed: u64) -> Result<Sequential> {
    let init = Initializer::TorchDefault;
    let mut model = Sequential::new()
        .push(Conv2dConfig::new(1, 10, (5, 5)).with_initializer(init).init(rng)?)
        .push(MaxPool2d(Pool2d::new(2)))
        .push(Activation::Relu)
        .push(Conv2dConfig::new(10, 20, (5, 5)).with_initializer(init).init(rng)?)
        .push(Dropout::new(0.5, seed ^ 0xD0)?)
        .push(MaxPool2d(Pool2d::new(2)))
        .push(Activation::Relu)
        .push(Flatten)
        .push(DenseConfig::new(320, LATENT_DIM).with_initializer(init).init(rng)?)
        .push(Activation::Relu);
    if with_head {
        model = model.push(DenseConfig::new(LATENT_DIM, 10).with_initializer(init).init(rng)?);
    }
    Ok(model)
}

/// The latent `(n, 50)` of every image of `ds` (eval mode), in dataset order, computed on
/// `device` (where `features` lives).
pub fn latents_of(
    features: &mut Sequential,
    ds: &ImageDataset,
    batch_size: usize,
    device: bioautograd::Device,
) -> Result<Vec<f32>> {
    let norm = mnist_normalization();
    let mut rng = Stream::seeded(0);
    let mut out = Vec::with_capacity(ds.len() * LATENT_DIM);
    let order: Vec<usize> = (0..ds.len()).collect();
    for chunk in order.chunks(batch_size.max(1)) {
        let (x, _) = ds.batch(chunk, &norm, None, &mut rng)?;
        let xt =
            Tensor::new(x, &[chunk.len(), ds.channels, ds.height, ds.width], device).map_err(biolayers::Error::from)?;
        let y = predict(features, xt)?;
        out.extend(y.to_vec().map_err(biolayers::Error::from)?);
    }
    Ok(out)
}

/// Trains the CNN on `train`, validates on `test` after every epoch, and returns the latent
/// table of `test`.
///
/// # Errors
/// Images that are not `(1, 28, 28)`, a bad configuration, or a non-finite loss.
pub fn train_mnist_latents(
    train: &ImageDataset,
    test: &ImageDataset,
    cfg: &MnistLatentsConfig,
    progress: bool,
) -> Result<MnistLatents> {
    cfg.validate()?;
    for (name, ds) in [("train", train), ("test", test)] {
        if (ds.channels, ds.height, ds.width) != (1, 28, 28) || ds.is_empty() {
            return Err(crate::error::shape(
                "MNIST images",
                "a non-empty set of (1, 28, 28) images",
                format!(
                    "{name}: {} images of ({}, {}, {})",
                    ds.len(),
                    ds.channels,
                    ds.height,
                    ds.width
                ),
            ));
        }
    }
    let start = Instant::now();
    let train = match cfg.train_images {
        Some(n) => train.take(n),
        None => train.clone(),
    };
    let mut rng = Stream::seeded(cfg.seed);
    let mut model = mnist_cnn(true, &mut rng, cfg.seed)?;
    let mut opt = OptimizerConfig::Sgd {
        lr: cfg.lr,
        momentum: cfg.momentum,
        nesterov: false,
        weight_decay: 0.0,
        decay: 0.0,
        convention: Convention::Torch,
    }
    .build()?;
    let fit_cfg = FitConfig {
        epochs: cfg.epochs,
        batch_size: cfg.batch_size,
        seed: cfg.seed,
        shuffle: true,
        augment: None,
        lr_steps: Vec::new(),
        flatten_input: false,
        checkpoint_dir: None,
        resume: false,
        progress,
        device: cfg.device,
    };
    let norm = mnist_normalization();
    let history = fit(&mut model, &mut opt, &train, test, &norm, &fit_cfg)?;
    let (_, test_accuracy) = evaluate_on(&mut model, test, &norm, 500, false, cfg.device)?;
    // The feature extractor: the same layers without the readout, sharing the trained values.
    let mut features = mnist_cnn(false, &mut Stream::seeded(0), 0)?;
    let trained: Vec<Tensor> = model.params().iter().map(|p| p.value.clone()).collect();
    for (p, v) in features.params_mut().into_iter().zip(trained) {
        p.value = v;
    }
    let data = latents_of(&mut features, test, 500, cfg.device)?;
    let labels: Vec<i64> = test.labels.iter().map(|&l| l as i64).collect();
    let table = LatentTable::new(data, labels, LATENT_DIM)?;
    Ok(MnistLatents {
        table,
        test_accuracy,
        history,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Writes the table as float32 `(n, 50)` and the labels as int64 `(n,)`, each atomically.
pub fn write_latents(table: &LatentTable, latents: &Path, labels: &Path) -> Result<()> {
    for p in [latents, labels] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Data {
                path: dir.to_path_buf(),
                detail: e.to_string(),
            })?;
        }
    }
    // Both files or neither: a failure on the labels must not leave a new table beside old
    // labels.
    let io = |path: &Path, e: std::io::Error| Error::Data {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let table_bytes = bionpy::npy_bytes(&[table.len(), table.dim()], table.data()).map_err(|e| io(latents, e))?;
    let label_bytes = bionpy::npy_bytes(&[table.len()], table.labels()).map_err(|e| io(labels, e))?;
    bionpy::write_all_atomic(&[(latents, &table_bytes), (labels, &label_bytes)])?;
    Ok(())
}

/// `cargo xtask mnist-latents`: MNIST from `data` (`<data>/mnist`, or `data` itself when it
/// holds the IDX files), training, then the two `.npy` files.
pub fn run_mnist_latents(
    data: Option<&Path>,
    latents: &Path,
    labels: &Path,
    cfg: &MnistLatentsConfig,
    progress: bool,
) -> Result<MnistLatents> {
    cfg.validate()?;
    let dir = resolve_data_dir(data)?;
    let mnist = if dir.join("mnist").is_dir() {
        dir.join("mnist")
    } else {
        dir
    };
    let train = load_mnist(&mnist, Split::Train)?;
    let test = load_mnist(&mnist, Split::Test)?;
    let out = train_mnist_latents(&train, &test, cfg, progress)?;
    write_latents(&out.table, latents, labels)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes IDX files of `n` 28×28 images: class c has a bright 6×6 square at one of two
    /// places, so that a few steps learn it.
    fn write_idx(dir: &Path, stem: &str, n: usize) {
        let mut img = vec![0, 0, 8, 3];
        for v in [n as u32, 28, 28] {
            img.extend_from_slice(&v.to_be_bytes());
        }
        let mut lab = vec![0, 0, 8, 1];
        lab.extend_from_slice(&(n as u32).to_be_bytes());
        for i in 0..n {
            let c = (i % 2) as u8;
            let mut pix = [0u8; 784];
            let off = if c == 0 { 3 } else { 17 };
            for r in off..off + 6 {
                for col in off..off + 6 {
                    pix[r * 28 + col] = 200 + (i % 50) as u8;
                }
            }
            img.extend_from_slice(&pix);
            lab.push(c);
        }
        std::fs::write(dir.join(format!("{stem}-images-idx3-ubyte")), img).unwrap();
        std::fs::write(dir.join(format!("{stem}-labels-idx1-ubyte")), lab).unwrap();
    }

    #[test]
    fn tiny_synthetic_mnist_gives_a_loadable_nonnegative_table() {
        let tmp = tempfile::tempdir().unwrap();
        write_idx(tmp.path(), "train", 64);
        write_idx(tmp.path(), "t10k", 12);
        let (lat, lab) = (tmp.path().join("out/latents.npy"), tmp.path().join("out/labels.npy"));
        let cfg = MnistLatentsConfig {
            epochs: 2,
            batch_size: 16,
            lr: 0.05,
            ..MnistLatentsConfig::default()
        };
        let out = run_mnist_latents(Some(tmp.path()), &lat, &lab, &cfg, false).unwrap();
        assert_eq!((out.table.len(), out.table.dim()), (12, LATENT_DIM));
        assert!(out.table.data().iter().all(|&v| v >= 0.0));
        assert!(out.table.data().iter().any(|&v| v > 0.0));
        assert_eq!(out.history.len(), 2);
        assert!(out.test_accuracy > 0.9, "{}", out.test_accuracy);
        let back = LatentTable::from_npy(&lat, &lab).unwrap();
        assert_eq!(back, out.table);
        assert_eq!(back.labels()[..4], [0, 1, 0, 1]);
        // The same seed gives the same table.
        let again = run_mnist_latents(Some(tmp.path()), &lat, &lab, &cfg, false).unwrap();
        assert_eq!(again.table, out.table);
        // Wrong image sizes are a typed error.
        let mut small = ImageDataset {
            images: vec![0; 4],
            labels: vec![0],
            channels: 1,
            height: 2,
            width: 2,
            classes: vec!["0".into()],
        };
        assert!(train_mnist_latents(&small, &small, &cfg, false).is_err());
        small.labels.clear();
        assert!(run_mnist_latents(Some(&tmp.path().join("missing")), &lat, &lab, &cfg, false).is_err());
    }

    /// The whole run on the host emulator of the device backend (SGD with momentum, convs,
    /// pooling, dropout, the latent extraction): the CPU run's history and table within 1e-4.
    #[test]
    fn the_emulator_gives_the_host_table() {
        let tmp = tempfile::tempdir().unwrap();
        write_idx(tmp.path(), "train", 64);
        write_idx(tmp.path(), "t10k", 12);
        let run = |device, name: &str| {
            let cfg = MnistLatentsConfig {
                epochs: 2,
                batch_size: 16,
                lr: 0.05,
                device,
                ..MnistLatentsConfig::default()
            };
            let (lat, lab) = (
                tmp.path().join(format!("{name}/l.npy")),
                tmp.path().join(format!("{name}/y.npy")),
            );
            run_mnist_latents(Some(tmp.path()), &lat, &lab, &cfg, false).unwrap()
        };
        let host = run(bioautograd::Device::Cpu, "cpu");
        let emu = run(bioautograd::Device::Cuda(bioautograd::cuda::EMULATOR), "emu");
        for (a, b) in host.history.iter().zip(&emu.history) {
            assert!(
                (a.train_loss - b.train_loss).abs() <= 1e-4 * a.train_loss,
                "{a:?} vs {b:?}"
            );
            assert!((a.val_loss - b.val_loss).abs() <= 1e-4 * a.val_loss, "{a:?} vs {b:?}");
        }
        let scale = host.table.data().iter().fold(0f32, |m, v| m.max(v.abs()));
        for (a, b) in host.table.data().iter().zip(emu.table.data()) {
            assert!((a - b).abs() <= 1e-4 * scale, "latent {a} vs {b}");
        }
    }
}
