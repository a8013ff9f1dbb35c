//! The training loop: epochs over an [`ImageDataset`], validation metrics, a progress bar, CSV
//! history, atomic checkpoints every epoch ([`crate::checkpoint`], `checkpoint.{npz,json}` in
//! `checkpoint_dir`), exact resume, and a clean stop on a non-finite loss.
//!
//! Every random choice of an epoch (shuffle, augmentation, dropout) is drawn from streams seeded
//! by `(seed, epoch)`, so a run resumed from the checkpoint of epoch `e` draws exactly what the
//! uninterrupted run drew from epoch `e + 1` on; together with the saved parameters, optimiser
//! moments and batch-norm statistics (and, for [`fit_bio`], the synaptic-diversity state with
//! the position of its own stream, which runs on across epochs) this reproduces the
//! uninterrupted trajectory bit for bit.
//!
//! A learning-rate step schedule ([`LrStep`], Keras' `LearningRateScheduler` with a step
//! function) sets the optimiser's rate before every epoch `e` (1-based):
//! `lr_e = lr · Π { factor_k : after_epochs_k < e }`. It is a function of the epoch alone, so a
//! resumed run sets the rate of its first epoch exactly as the uninterrupted run did; nothing
//! of it needs to be in the checkpoint.
//!
//! ## Devices
//! With `device` a CUDA device (or the host emulator, `bioautograd::cuda::EMULATOR`), the model
//! moves there after any resume, every batch is uploaded, forward, backward and the optimiser
//! step run there, and the logits come back for the training accuracy and the validation
//! metrics (`batch × classes` values per step). Checkpoints hold the parameters and the
//! optimiser's moments downloaded from the device, so a run resumes bit-identically on the same
//! kind of device and loads on any other. The synaptic-diversity mechanisms of [`fit_bio`] run
//! on the host: on a device, each step reads back the converted weights, their gradients (and,
//! for the `activity` distribution, their layers' outputs), and uploads the rewritten gradients
//! and, after rejuvenation or Dale's principle, the weights.
//!
//! # Shapes
//! The model maps `(batch, channels, height, width)` f32 (or the flattened `(batch, c·h·w)` when
//! `flatten_input`) to logits `(batch, classes)`; the loss is the mean cross-entropy.

use std::path::PathBuf;
use std::time::Instant;

use bioautograd::{Device, Tensor};
use biolayers::bio::{BioModel, BioSchedule};
use biolayers::layers::{Module, Sequential};
use biolayers::optim::Optimizer;
use biolayers::train::{predict, train_step};
use biorng::Stream;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CheckpointFiles, RunState};
use crate::data::{epoch_order, Augmentation, ImageDataset, Normalization};
use crate::error::{invalid, Result};

/// Settings of one training run.
#[derive(Debug, Clone)]
pub struct FitConfig {
    /// Epochs to train (in total, counting resumed ones).
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Seed of the epoch streams.
    pub seed: u64,
    /// Shuffle the training set every epoch.
    pub shuffle: bool,
    /// Optional augmentation of training batches.
    pub augment: Option<Augmentation>,
    /// Learning-rate steps by epoch (empty: the optimiser's rate throughout).
    pub lr_steps: Vec<LrStep>,
    /// Feed `(batch, c·h·w)` instead of NCHW (for MLPs).
    pub flatten_input: bool,
    /// Where `checkpoint.npz`/`checkpoint.json` go; `None` = no checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint in `checkpoint_dir` when there is one.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Where to train (`Device::Cpu`, a CUDA device or the emulator; see the module docs).
    pub device: Device,
}

/// One step of a learning-rate schedule: after `after_epochs` finished epochs the rate is
/// multiplied by `factor` (upstream's VGG16 script: `lr /= 5` from its 0-based epoch 150 on is
/// `LrStep { after_epochs: 150, factor: 0.2 }`). Serialised as `{after_epochs = 150, factor = 0.2}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrStep {
    /// Epochs finished before the step applies (the step is in force from epoch
    /// `after_epochs + 1`, 1-based).
    pub after_epochs: usize,
    /// Factor on the learning rate from then on.
    pub factor: f64,
}

/// The factor `steps` put on the learning rate in `epoch` (1-based): the product of the factors
/// of the steps with `after_epochs < epoch`.
pub fn lr_factor(steps: &[LrStep], epoch: usize) -> f64 {
    steps
        .iter()
        .filter(|s| s.after_epochs < epoch)
        .fold(1.0, |f, s| f * s.factor)
}

/// Metrics of one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Training accuracy (on the fly, train mode).
    pub train_acc: f64,
    /// Validation loss (eval mode).
    pub val_loss: f64,
    /// Validation accuracy (eval mode).
    pub val_acc: f64,
}

fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

fn batch_tensor(x: Vec<f32>, n: usize, ds: &ImageDataset, flatten: bool, device: Device) -> Result<Tensor> {
    let shape: Vec<usize> = if flatten {
        vec![n, ds.image_len()]
    } else {
        vec![n, ds.channels, ds.height, ds.width]
    };
    Ok(Tensor::new(x, &shape, device).map_err(biolayers::Error::from)?)
}

/// Mean cross-entropy and accuracy of `logits (n, classes)` against `labels`.
///
/// # Errors
/// A label outside `0..classes` (a dataset whose labels do not fit the model's outputs).
pub fn loss_and_accuracy(logits: &[f32], labels: &[usize]) -> Result<(f64, f64)> {
    let n = labels.len().max(1);
    let classes = logits.len() / n;
    if let Some(&bad) = labels.iter().find(|&&l| l >= classes) {
        return Err(invalid(
            "label",
            bad,
            format!("is outside the model's {classes} outputs (classes 0..{classes})"),
        ));
    }
    let (mut loss, mut correct) = (0.0, 0usize);
    for (row, &l) in logits.chunks_exact(classes.max(1)).zip(labels) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let lse = f64::from(max) + row.iter().map(|&v| f64::from(v - max).exp()).sum::<f64>().ln();
        loss += lse - f64::from(row[l]);
        let arg = row
            .iter()
            .enumerate()
            .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
        correct += usize::from(arg == l);
    }
    Ok((loss / n as f64, correct as f64 / n as f64))
}

/// Evaluates `model` (on the host) on `ds` in eval mode: `(mean loss, accuracy)`.
pub fn evaluate(
    model: &mut Sequential,
    ds: &ImageDataset,
    norm: &Normalization,
    batch_size: usize,
    flatten: bool,
) -> Result<(f64, f64)> {
    evaluate_on(model, ds, norm, batch_size, flatten, Device::Cpu)
}

/// [`evaluate`] for a model on `device`: each batch is uploaded there and its logits read back.
pub fn evaluate_on(
    model: &mut Sequential,
    ds: &ImageDataset,
    norm: &Normalization,
    batch_size: usize,
    flatten: bool,
    device: Device,
) -> Result<(f64, f64)> {
    let mut rng = Stream::seeded(0);
    let (mut loss, mut acc) = (0.0, 0.0);
    let order: Vec<usize> = (0..ds.len()).collect();
    for chunk in order.chunks(batch_size.max(1)) {
        let (x, y) = ds.batch(chunk, norm, None, &mut rng)?;
        let out = predict(model, batch_tensor(x, chunk.len(), ds, flatten, device)?)?;
        let logits = out.to_vec().map_err(biolayers::Error::from)?;
        let (l, a) = loss_and_accuracy(&logits, &y)?;
        loss += l * chunk.len() as f64;
        acc += a * chunk.len() as f64;
    }
    let n = ds.len().max(1) as f64;
    Ok((loss / n, acc / n))
}

/// Trains `model` with `opt` on `train`, validating on `val` after every epoch. Returns the whole
/// history (resumed epochs included).
///
/// # Errors
/// A non-finite loss stops the run with [`crate::Error::Train`] (`NonFinite`); the checkpoint of the last
/// completed epoch is kept. Missing or inconsistent checkpoints on resume are errors naming the file.
pub fn fit(
    model: &mut Sequential,
    opt: &mut Optimizer,
    train: &ImageDataset,
    val: &ImageDataset,
    norm: &Normalization,
    cfg: &FitConfig,
) -> Result<Vec<EpochRecord>> {
    fit_impl(model, opt, train, val, norm, cfg, None)
}

/// [`fit`] for a model converted with `BioConverter`: every step runs the synaptic-diversity
/// mechanisms of `schedule` around the optimiser step. The checkpoints carry `bio`'s state
/// (factors, signs, counters, the step count and the position of its random stream), so a
/// resumed run continues the uninterrupted one bit for bit; resume with a model and `bio` built
/// and converted as for the first run (same `BioConfig`, same schedule).
///
/// # Errors
/// Those of [`fit`]; resuming from a checkpoint without synaptic-diversity state, or with state
/// of another shape or out of range, is an error naming the file and the array.
pub fn fit_bio(
    model: &mut Sequential,
    bio: &mut BioModel,
    schedule: &BioSchedule,
    opt: &mut Optimizer,
    data: (&ImageDataset, &ImageDataset, &Normalization),
    cfg: &FitConfig,
) -> Result<Vec<EpochRecord>> {
    fit_impl(model, opt, data.0, data.1, data.2, cfg, Some((bio, schedule)))
}

fn fit_impl(
    model: &mut Sequential,
    opt: &mut Optimizer,
    train: &ImageDataset,
    val: &ImageDataset,
    norm: &Normalization,
    cfg: &FitConfig,
    mut bio: Option<(&mut BioModel, &BioSchedule)>,
) -> Result<Vec<EpochRecord>> {
    if cfg.batch_size == 0 {
        return Err(invalid("batch_size", 0, "must be >= 1"));
    }
    if train.is_empty() {
        return Err(invalid("train", "empty", "the training set has no images"));
    }
    if let Some(a) = &cfg.augment {
        a.validate()?;
    }
    if let Some(s) = cfg.lr_steps.iter().find(|s| !(s.factor.is_finite() && s.factor >= 0.0)) {
        return Err(invalid("lr step factor", s.factor, "must be finite and >= 0"));
    }
    let files = cfg
        .checkpoint_dir
        .as_deref()
        .map(|dir| CheckpointFiles::new(dir, "checkpoint"));
    let mut history = Vec::new();
    if let (true, Some(files)) = (cfg.resume, &files) {
        let bio_state = bio.as_mut().map(|(b, _)| &mut **b);
        if let Some(state) = checkpoint::load_with_synapses(files, model, bio_state, opt, Some(cfg.seed))? {
            history = state.history;
        }
    }
    // After the resume: a checkpoint's values are loaded into the host model.
    model.to_device(cfg.device)?;
    for epoch in history.len() + 1..=cfg.epochs {
        let mut rng = Stream::seeded(epoch_seed(cfg.seed, epoch));
        model.reseed(epoch_seed(cfg.seed ^ 0x5EED, epoch));
        opt.set_lr_scale(lr_factor(&cfg.lr_steps, epoch))?;
        let order = epoch_order(train.len(), cfg.shuffle, &mut rng);
        let n_batches = order.len().div_ceil(cfg.batch_size);
        let bar = progress_bar(cfg.progress, n_batches, epoch, cfg.epochs);
        let started = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0.0, 0usize);
        for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let (x, y) = train.batch(chunk, norm, cfg.augment.as_ref(), &mut rng)?;
            let xt = batch_tensor(x, chunk.len(), train, cfg.flatten_input, cfg.device)?;
            let mut batch_acc = 0.0;
            let loss_fn = |g: &bioautograd::Graph, out: &bioautograd::Var| {
                // On a device the logits are downloaded (`batch × classes` values); a failed
                // read fails the step rather than leaving the accuracy at 0.
                let logits = g.value(out)?.to_vec()?;
                // A bad label is reported by cross_entropy just below.
                batch_acc = loss_and_accuracy(&logits, &y).map_or(0.0, |r| r.1);
                g.cross_entropy(out, &y)
            };
            let step = match bio.as_mut() {
                Some((b, schedule)) => b.train_step(model, opt, xt, loss_fn, schedule),
                None => train_step(model, opt, xt, loss_fn),
            };
            let loss = step.map_err(|e| match e {
                biolayers::Error::NonFinite { what, .. } => biolayers::Error::NonFinite {
                    op: "fit",
                    what: format!(
                        "{what} at epoch {epoch}, batch {}; the checkpoint of epoch {} is kept",
                        b + 1,
                        epoch - 1
                    ),
                },
                other => other,
            })?;
            loss_sum += f64::from(loss) * chunk.len() as f64;
            correct += batch_acc * chunk.len() as f64;
            seen += chunk.len();
            if let Some(bar) = &bar {
                bar.inc(1);
                let rate = seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!("loss {:.4}  {rate:.0} img/s", loss_sum / seen as f64));
            }
        }
        let (val_loss, val_acc) =
            evaluate_on(model, val, norm, cfg.batch_size.max(256), cfg.flatten_input, cfg.device)?;
        let rec = EpochRecord {
            epoch,
            train_loss: loss_sum / seen as f64,
            train_acc: correct / seen as f64,
            val_loss,
            val_acc,
        };
        if let Some(bar) = bar {
            bar.finish_with_message(format!(
                "loss {:.4} acc {:.3} | val loss {:.4} acc {:.3}",
                rec.train_loss, rec.train_acc, rec.val_loss, rec.val_acc
            ));
        }
        history.push(rec);
        if let Some(files) = &files {
            let state = RunState {
                history: history.clone(),
                seed: Some(cfg.seed),
                early_stopping: None,
            };
            let bio_state = bio.as_ref().map(|(b, _)| &**b);
            checkpoint::save_with_synapses(files, model, bio_state, opt, &state)?;
        }
    }
    Ok(history)
}

fn progress_bar(enabled: bool, len: usize, epoch: usize, epochs: usize) -> Option<indicatif::ProgressBar> {
    if !enabled {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(format!("epoch {epoch}/{epochs}"));
    Some(bar)
}

/// Appends `rows` of one `(setting, repeat)` to a `history.csv` text with the header
/// `setting,repeat,epoch,train_loss,train_acc,val_loss,val_acc`.
pub fn history_csv(rows: &[(String, usize, EpochRecord)]) -> String {
    let mut s = String::from("setting,repeat,epoch,train_loss,train_acc,val_loss,val_acc\n");
    for (setting, repeat, r) in rows {
        s.push_str(&format!(
            "{setting},{repeat},{},{:.6},{:.6},{:.6},{:.6}\n",
            r.epoch, r.train_loss, r.train_acc, r.val_loss, r.val_acc
        ));
    }
    s
}
