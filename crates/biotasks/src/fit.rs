//! The training loop: epochs over an [`ImageDataset`], validation metrics, a progress bar, CSV
//! history, atomic checkpoints every epoch, exact resume, and a clean stop on a non-finite loss.
//!
//! Every random choice of an epoch (shuffle, augmentation, dropout) is drawn from streams seeded
//! by `(seed, epoch)`, so a run resumed from the checkpoint of epoch `e` draws exactly what the
//! uninterrupted run drew from epoch `e + 1` on; together with the saved parameters, optimiser
//! moments and batch-norm statistics this reproduces the uninterrupted trajectory bit for bit.
//!
//! # Shapes
//! The model maps `(batch, channels, height, width)` f32 (or the flattened `(batch, c·h·w)` when
//! `flatten_input`) to logits `(batch, classes)`; the loss is the mean cross-entropy.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bioautograd::Tensor;
use biolayers::bio::{BioModel, BioSchedule};
use biolayers::io::{load_npz, save_npz, NamedArray};
use biolayers::layers::{Module, Sequential};
use biolayers::optim::{Optimizer, OptimizerState};
use biolayers::train::{predict, train_step};
use biorng::Stream;
use serde::{Deserialize, Serialize};

use crate::data::{epoch_order, Augment, ImageDataset, Normalization};
use crate::error::{invalid, Error, Result};

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
    pub augment: Option<Augment>,
    /// Feed `(batch, c·h·w)` instead of NCHW (for MLPs).
    pub flatten_input: bool,
    /// Where `checkpoint.npz`/`checkpoint.json` go; `None` = no checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint in `checkpoint_dir` when there is one.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
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

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointMeta {
    epoch: usize,
    history: Vec<EpochRecord>,
}

fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

fn batch_tensor(x: Vec<f32>, n: usize, ds: &ImageDataset, flatten: bool) -> Result<Tensor> {
    let shape: Vec<usize> = if flatten {
        vec![n, ds.image_len()]
    } else {
        vec![n, ds.channels, ds.height, ds.width]
    };
    Ok(Tensor::from_vec(x, &shape).map_err(biolayers::Error::from)?)
}

/// Mean cross-entropy and accuracy of `logits (n, classes)` against `labels`.
pub fn loss_and_accuracy(logits: &[f32], labels: &[usize]) -> (f64, f64) {
    let n = labels.len().max(1);
    let classes = logits.len() / n;
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
    (loss / n as f64, correct as f64 / n as f64)
}

/// Evaluates `model` on `ds` in eval mode: `(mean loss, accuracy)`.
pub fn evaluate(
    model: &mut Sequential,
    ds: &ImageDataset,
    norm: &Normalization,
    batch_size: usize,
    flatten: bool,
) -> Result<(f64, f64)> {
    let mut rng = Stream::seeded(0);
    let (mut loss, mut acc) = (0.0, 0.0);
    let order: Vec<usize> = (0..ds.len()).collect();
    for chunk in order.chunks(batch_size.max(1)) {
        let (x, y) = ds.batch(chunk, norm, None, &mut rng)?;
        let out = predict(model, batch_tensor(x, chunk.len(), ds, flatten)?)?;
        let (l, a) = loss_and_accuracy(out.as_slice().map_err(biolayers::Error::from)?, &y);
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
/// A non-finite loss stops the run with [`Error::Train`] (`NonFinite`); the checkpoint of the last
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
/// mechanisms of `schedule` around the optimiser step. Resuming is refused (the per-weight
/// state is not part of the checkpoint).
pub fn fit_bio(
    model: &mut Sequential,
    bio: &mut BioModel,
    schedule: &BioSchedule,
    opt: &mut Optimizer,
    data: (&ImageDataset, &ImageDataset, &Normalization),
    cfg: &FitConfig,
) -> Result<Vec<EpochRecord>> {
    if cfg.resume {
        return Err(invalid(
            "resume",
            true,
            "is not supported with synaptic-diversity state",
        ));
    }
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
    let mut history = Vec::new();
    if cfg.resume {
        if let Some(dir) = &cfg.checkpoint_dir {
            if dir.join("checkpoint.json").is_file() {
                history = load_checkpoint(dir, model, opt)?;
            }
        }
    }
    for epoch in history.len() + 1..=cfg.epochs {
        let mut rng = Stream::seeded(epoch_seed(cfg.seed, epoch));
        model.reseed(epoch_seed(cfg.seed ^ 0x5EED, epoch));
        let order = epoch_order(train.len(), cfg.shuffle, &mut rng);
        let n_batches = order.len().div_ceil(cfg.batch_size);
        let bar = progress_bar(cfg.progress, n_batches, epoch, cfg.epochs);
        let started = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0.0, 0usize);
        for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let (x, y) = train.batch(chunk, norm, cfg.augment.as_ref(), &mut rng)?;
            let xt = batch_tensor(x, chunk.len(), train, cfg.flatten_input)?;
            let mut batch_acc = 0.0;
            let loss_fn = |g: &bioautograd::Graph, out: &bioautograd::Var| {
                if let Ok(v) = g.value(out) {
                    if let Ok(s) = v.as_slice() {
                        batch_acc = loss_and_accuracy(s, &y).1;
                    }
                }
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
        let (val_loss, val_acc) = evaluate(model, val, norm, cfg.batch_size.max(256), cfg.flatten_input)?;
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
        if let Some(dir) = &cfg.checkpoint_dir {
            save_checkpoint(dir, model, opt, &history)?;
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

/// The optimizer's per-parameter slots as `.npz` arrays `opt.{i}.first`, `opt.{i}.second` and
/// `opt.{i}.started` (the layout `load_checkpoint` and the RNN runner's resume files read back).
pub(crate) fn optimizer_arrays(state: &OptimizerState) -> Vec<NamedArray> {
    let mut arrays = Vec::with_capacity(3 * state.slots.len());
    for (i, (m, v, started)) in state.slots.iter().enumerate() {
        arrays.push(NamedArray {
            name: format!("opt.{i}.first"),
            shape: vec![m.len()],
            data: m.clone(),
        });
        arrays.push(NamedArray {
            name: format!("opt.{i}.second"),
            shape: vec![v.len()],
            data: v.clone(),
        });
        arrays.push(NamedArray {
            name: format!("opt.{i}.started"),
            shape: vec![1],
            data: vec![f32::from(u8::from(*started))],
        });
    }
    arrays
}

/// Writes `checkpoint.npz` (parameters, buffers, optimiser state) and `checkpoint.json` (epoch,
/// history), each atomically; the epoch is stored in both so a torn pair is detected.
pub fn save_checkpoint(dir: &Path, model: &Sequential, opt: &Optimizer, history: &[EpochRecord]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Data {
        path: dir.to_path_buf(),
        detail: e.to_string(),
    })?;
    let mut arrays = Vec::new();
    for (name, p) in model.named_params() {
        arrays.push(NamedArray {
            name: format!("param.{name}"),
            shape: p.value.shape().to_vec(),
            data: p.value.to_vec().map_err(biolayers::Error::from)?,
        });
    }
    for (name, v) in model.buffers() {
        arrays.push(NamedArray {
            name: format!("buffer.{name}"),
            shape: vec![v.len()],
            data: v,
        });
    }
    let state = opt.export_state();
    arrays.extend(optimizer_arrays(&state));
    // f32 holds integers exactly up to 2^24; split larger counters.
    let (hi, lo) = ((state.t >> 24) as f32, (state.t & 0xFF_FFFF) as f32);
    arrays.push(NamedArray {
        name: "meta.t".into(),
        shape: vec![2],
        data: vec![hi, lo],
    });
    arrays.push(NamedArray {
        name: "meta.epoch".into(),
        shape: vec![1],
        data: vec![history.len() as f32],
    });
    save_npz(&dir.join("checkpoint.npz"), &arrays)?;
    let meta = CheckpointMeta {
        epoch: history.len(),
        history: history.to_vec(),
    };
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| invalid("checkpoint", "json", e.to_string()))?;
    bionpy::write_atomic(&dir.join("checkpoint.json"), &json)?;
    Ok(())
}

/// Restores a checkpoint written by [`save_checkpoint`] into `model` and `opt`; returns the
/// history. The model must have the same architecture.
pub fn load_checkpoint(dir: &Path, model: &mut Sequential, opt: &mut Optimizer) -> Result<Vec<EpochRecord>> {
    let json_path = dir.join("checkpoint.json");
    let text = std::fs::read(&json_path).map_err(|e| Error::Data {
        path: json_path.clone(),
        detail: e.to_string(),
    })?;
    let meta: CheckpointMeta = serde_json::from_slice(&text).map_err(|e| Error::Data {
        path: json_path.clone(),
        detail: e.to_string(),
    })?;
    let npz_path = dir.join("checkpoint.npz");
    let arrays = load_npz(&npz_path)?;
    let find = |name: &str| arrays.iter().find(|a| a.name == name);
    let bad = |detail: String| Error::Data {
        path: npz_path.clone(),
        detail,
    };
    let epoch = find("meta.epoch")
        .and_then(|a| a.data.first().copied())
        .ok_or_else(|| bad("no meta.epoch".into()))?;
    if epoch as usize != meta.epoch || meta.history.len() != meta.epoch {
        return Err(bad(format!("holds epoch {epoch}, checkpoint.json says {}", meta.epoch)));
    }
    let names: Vec<(String, Vec<usize>)> = model
        .named_params()
        .into_iter()
        .map(|(n, p)| (n, p.value.shape().to_vec()))
        .collect();
    let mut values = Vec::with_capacity(names.len());
    for (n, shape) in &names {
        let a = find(&format!("param.{n}")).ok_or_else(|| bad(format!("parameter {n} missing")))?;
        if &a.shape != shape {
            return Err(bad(format!(
                "parameter {n} has shape {:?}, the model {shape:?}",
                a.shape
            )));
        }
        values.push(Tensor::from_vec(a.data.clone(), shape).map_err(biolayers::Error::from)?);
    }
    let buffers: Vec<(String, Vec<f32>)> = arrays
        .iter()
        .filter_map(|a| a.name.strip_prefix("buffer.").map(|n| (n.to_string(), a.data.clone())))
        .collect();
    model.set_buffers(&buffers)?;
    for (p, v) in model.params_mut().into_iter().zip(values) {
        p.value = v;
    }
    let mut slots = Vec::new();
    while let (Some(m), Some(v), Some(s)) = (
        find(&format!("opt.{}.first", slots.len())),
        find(&format!("opt.{}.second", slots.len())),
        find(&format!("opt.{}.started", slots.len())),
    ) {
        slots.push((
            m.data.clone(),
            v.data.clone(),
            s.data.first().copied().unwrap_or(0.0) != 0.0,
        ));
    }
    let t = find("meta.t").map_or(0, |a| {
        ((a.data[0] as u64) << 24) | a.data.get(1).copied().unwrap_or(0.0) as u64
    });
    opt.import_state(OptimizerState { t, slots });
    Ok(meta.history)
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
