//! The PyTorch cross-check of the weight export ([`biolayers::interop`]): two reference models
//! written to upstream's definitions on the PyTorch side (`xtask/python/torch_crosscheck.py`),
//! trained here and exported, or initialised by PyTorch and imported here.
//!
//! * [`masked_cnn`]: `mConv2d(1→4, 3×3, padding 1, diagonal 0.5)` → `BatchNorm2d(4)` → ReLU →
//!   MaxPool 2 → `mConvTranspose2d(4→4, 2×2, stride 2, diagonal 0.5)` → ReLU →
//!   `mConv2d(4→6, 3×3, diagonal 0.5)` → ReLU → MaxPool 2 → Flatten → `mLinear(54→10, diagonal
//!   0.5)` → ReLU → `Linear(10→3)`; PyTorch keys `0.weight`, `0.mask`, `1.running_mean`, ...
//! * [`bio_rnn`]: upstream's bio-instantiated model, `nn.RNN(3, 16, relu, batch_first)` with a
//!   fixed 30 % topology and the `fc` readout `Linear(16→2)`; keys `rnn.weight_hh_l0`, `fc.weight`.
//!
//! [`write_trained`] trains both briefly (Adam on random targets, so that the batch-norm
//! statistics and all weights move away from their initial values), then writes
//! `<name>.safetensors` (the weights, PyTorch layout) and `<name>_io.safetensors` (`x`, and `y` =
//! this model's eval output) for the script to compare. [`compare_fixture`] does the reverse
//! with the files the script writes from PyTorch-initialised models.
//!
//! # Shapes
//! CNN: `x (4, 1, 8, 8)` → `y (4, 3)`. RNN: `x (4, 5, 3)` (batch, T, in) → `y (20, 2)`.

use std::path::Path;

use bioautograd::{Pool2d, Tensor};
use biolayers::interop::{
    load_weights, parse_safetensors, safetensors_bytes, save_weights, ExportTensor, TensorValues, WeightFormat,
    WeightLayout,
};
use biolayers::layers::{
    Activation, BatchNorm2d, Conv2dConfig, DenseConfig, ElmanRnn, ElmanRnnConfig, Flatten, MaxPool2d, Module,
    PaddingConfig, Sequential,
};
use biolayers::optim::OptimizerConfig;
use biolayers::train::{predict, train_step};
use biomask::MaskSpec;
use biorng::Stream;

use crate::error::{Error, Result};

/// The two reference models, by file stem.
pub const MODELS: [&str; 2] = ["masked_cnn", "bio_rnn"];

/// The masked CNN (see the module docs); its masks do not depend on `rng` (diagonal bands).
///
/// # Errors
/// Layer construction errors (none for these fixed sizes).
pub fn masked_cnn(rng: &mut Stream) -> Result<Sequential> {
    let band = MaskSpec::diagonal(0.5);
    Ok(Sequential::new()
        .push(
            Conv2dConfig::masked(1, 4, (3, 3), band.clone())
                .with_padding(PaddingConfig::Explicit([1, 1, 1, 1]))
                .init(rng)?,
        )
        .push(BatchNorm2d::new(4)?)
        .push(Activation::Relu)
        .push(MaxPool2d(Pool2d::new(2)))
        .push(
            Conv2dConfig::transpose(4, 4, (2, 2), band.clone())
                .with_strides(2, 2)
                .init(rng)?,
        )
        .push(Activation::Relu)
        .push(Conv2dConfig::masked(4, 6, (3, 3), band.clone()).init(rng)?)
        .push(Activation::Relu)
        .push(MaxPool2d(Pool2d::new(2)))
        .push(Flatten)
        .push(DenseConfig::sz(54, 10, band).init(rng)?)
        .push(Activation::Relu)
        .push(DenseConfig::new(10, 3).init(rng)?))
}

/// The fixed recurrent topology of [`bio_rnn`] (`[from·16 + to]`, about 30 % of connections).
pub fn rnn_topology() -> Vec<bool> {
    let mut rng = Stream::seeded(2024);
    (0..16 * 16).map(|_| rng.uniform01() < 0.3).collect()
}

/// The bio-instantiated RNN (see the module docs).
///
/// # Errors
/// Layer construction errors (none for these fixed sizes).
pub fn bio_rnn(rng: &mut Stream) -> Result<ElmanRnn> {
    Ok(ElmanRnnConfig::new(3, 16, 2).with_topology(rnn_topology()).init(rng)?)
}

fn inputs(name: &str, seed: u64) -> Result<Tensor> {
    let mut rng = Stream::seeded(seed);
    let shape: &[usize] = if name == "bio_rnn" { &[4, 5, 3] } else { &[4, 1, 8, 8] };
    let n = shape.iter().product();
    Ok(Tensor::from_vec(
        (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect(),
        shape,
    )?)
}

fn build(name: &str, rng: &mut Stream) -> Result<Box<dyn Module>> {
    Ok(if name == "bio_rnn" {
        Box::new(bio_rnn(rng)?)
    } else {
        Box::new(masked_cnn(rng)?)
    })
}

fn io_tensors(x: &Tensor, y: &Tensor) -> Result<Vec<ExportTensor>> {
    Ok(vec![
        ExportTensor {
            name: "x".into(),
            shape: x.shape().to_vec(),
            values: TensorValues::F32(x.to_vec()?),
        },
        ExportTensor {
            name: "y".into(),
            shape: y.shape().to_vec(),
            values: TensorValues::F32(y.to_vec()?),
        },
    ])
}

/// Trains both models for `steps` Adam steps from `seed` and writes their weights and
/// input/output pairs into `dir` (see the module docs). Returns the final training losses.
///
/// # Errors
/// Training or write errors, naming the file.
pub fn write_trained(dir: &Path, seed: u64, steps: usize) -> Result<Vec<(String, f32)>> {
    let mut losses = Vec::new();
    for name in MODELS {
        let mut rng = Stream::seeded(seed);
        let mut model = build(name, &mut rng)?;
        let mut opt = OptimizerConfig::torch_adam(0.01).build()?;
        let x = inputs(name, seed + 1)?;
        let rows = if name == "bio_rnn" { 20 } else { 4 };
        let cols = if name == "bio_rnn" { 2 } else { 3 };
        let target = Tensor::from_vec(
            (0..rows * cols).map(|_| rng.uniform(-1.0, 1.0) as f32).collect(),
            &[rows, cols],
        )?;
        let mut loss = f32::NAN;
        for _ in 0..steps {
            let t = target.clone();
            loss = train_step(model.as_mut(), &mut opt, x.clone(), |g, y| {
                let tv = g.input(t);
                g.mse(y, &tv)
            })?;
        }
        let y = predict(model.as_mut(), x.clone())?;
        save_weights(
            model.as_ref(),
            WeightFormat::Safetensors,
            WeightLayout::Torch,
            &dir.join(format!("{name}.safetensors")),
        )?;
        let io_path = dir.join(format!("{name}_io.safetensors"));
        let bytes = safetensors_bytes(&io_tensors(&x, &y)?, WeightLayout::Torch).map_err(|detail| Error::Data {
            path: io_path.clone(),
            detail,
        })?;
        bionpy::write_atomic(&io_path, &bytes)?;
        losses.push((name.to_string(), loss));
    }
    Ok(losses)
}

/// Loads `<dir>/<name>.safetensors` (PyTorch-initialised weights) into a fresh model here, runs
/// it on `x` of `<dir>/<name>_io.safetensors` and returns the largest absolute difference from
/// PyTorch's `y` there.
///
/// # Errors
/// Missing or malformed files (naming them), weights that do not fit the model.
pub fn compare_fixture(dir: &Path, name: &str) -> Result<f32> {
    let mut model = build(name, &mut Stream::seeded(0))?;
    load_weights(
        model.as_mut(),
        WeightFormat::Safetensors,
        WeightLayout::Torch,
        &dir.join(format!("{name}.safetensors")),
    )?;
    let io_path = dir.join(format!("{name}_io.safetensors"));
    let bytes = std::fs::read(&io_path).map_err(|e| crate::error::io_err(&io_path, e))?;
    let (tensors, _) = parse_safetensors(&bytes, &io_path)?;
    let get = |n: &str| -> Result<Tensor> {
        let t = tensors.iter().find(|t| t.name == n).ok_or_else(|| Error::Data {
            path: io_path.clone(),
            detail: format!("no tensor `{n}`"),
        })?;
        match &t.values {
            TensorValues::F32(v) => Ok(Tensor::from_vec(v.clone(), &t.shape)?),
            TensorValues::I64(_) => Err(Error::Data {
                path: io_path.clone(),
                detail: format!("`{n}` is int64"),
            }),
        }
    };
    let (x, want) = (get("x")?, get("y")?);
    let got = predict(model.as_mut(), x)?;
    if got.shape() != want.shape() {
        return Err(Error::Data {
            path: io_path,
            detail: format!("y has shape {:?}, the model gives {:?}", want.shape(), got.shape()),
        });
    }
    Ok(got
        .to_vec()?
        .iter()
        .zip(want.to_vec()?)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max))
}
