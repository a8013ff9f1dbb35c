//! One checkpoint format for every training run (the [`crate::fit`] loop and the RNN runs of
//! `bioexperiments`): any [`Checkpointable`] model, its optimiser state, the random-stream seed,
//! the history and, for a converted model, its synaptic-diversity state, so that a resumed run
//! continues the uninterrupted one bit for bit.
//!
//! # Files
//! A checkpoint is a pair `<dir>/<stem>.npz` + `<dir>/<stem>.json` ([`CheckpointFiles`]), each
//! written atomically:
//!
//! * `.npz` (float32 arrays): `param.<name>` for every parameter, `buffer.<name>` for every
//!   buffer (batch-norm statistics), the optimiser slots `opt.<i>.first`, `opt.<i>.second`,
//!   `opt.<i>.started`, the optimiser step counter `meta.t` (two values, `t = hi·2²⁴ + lo`: f32
//!   holds integers exactly only up to 2²⁴) and `meta.epoch`;
//! * `.json`: `epoch`, `history` (one entry per finished epoch; the losses and accuracies as
//!   text in Rust's shortest round-trip form, so NaN accuracies and every bit survive; plain JSON
//!   numbers, as older `fit` checkpoints hold them, are read too), `seed` (the seed every
//!   random stream of the run is derived from: the RNG state) and, for a run with
//!   [`crate::early_stopping`], `early_stopping` (`epochs`, `reference`, `since_improvement`,
//!   `best_loss`, `best_epoch`; the losses as exact text, `inf` before the first improvement;
//!   its `epochs` must be the checkpoint's epoch).
//!
//! The epoch is stored in both files, so a torn pair (one file from another epoch) is detected.
//!
//! A save is crash-safe: the arrays are written to `<stem>.pending.npz`, the `.json` is written
//! next (the commit point), and the pending file then replaces the `.npz`. A process killed
//! before the commit leaves the previous pair intact (the pending file holds another epoch than
//! the `.json` and is ignored); killed after it, [`load`] finds the `.json`'s epoch in the
//! pending file, restores from it and completes the rename. No interruption leaves a pair that
//! cannot be resumed.
//! Files of the older `rnn-run` resume format (`resume_iter_<it>.json` with `history_csv`) are
//! refused with an error naming the file.
//!
//! Why a seed and not a generator state: every random choice of an epoch is drawn from streams
//! seeded by `(seed, epoch)`, so the seed and the epoch reproduce them exactly.
//!
//! # Synaptic diversity (models converted with `BioConverter`)
//! [`save_with_synapses`] / [`load_with_synapses`] (used by `fit_bio`) add the per-layer state of
//! the [`BioModel`]; `<param>` is the qualified name of each converted weight (a layer's kernel,
//! an RNN's `w_ih`/`w_hh`/`w_out`), as in `param.<name>` (a nested `Sequential`'s layers are
//! named layer by layer, `1.sequential.0.dense.kernel`):
//!
//! * `.npz`: `bio.<param>.factors` (the fuzzy learning-rate factors, the weight's shape; f32 as
//!   they are stored, so exact) and, for layers with Dale's principle, `bio.<param>.signs` (one
//!   ±1 per sign group);
//! * `.json`: the object `bio` with `steps` (training steps taken: the rejuvenation schedule
//!   counts them), `rng` (the exact position of the mechanisms' random stream, a
//!   [`biorng::StreamState`] with a `kind` tag: ChaCha8 key, stream and word position, or the
//!   624 MT19937 words, index and cached normal) and `layers`, one entry per converted layer in
//!   model order: `param`, `activation_count` (per output unit, exact text as the history),
//!   `activity_initialized`, `weight_adaptive_initialized` and `update_step` (the temporal
//!   schedule's counter). The counters are JSON integers (u64, exact).
//!
//! Unlike every other random choice, the mechanisms' stream (volume-dependent rates,
//! rejuvenation, the dynamic factor updates) is one stream that runs on across epochs (as
//! upstream's torch global generator does), so its position is saved, not a seed. The
//! `BioConfig` and the schedule are not saved: they come from the code that converts the model
//! again on resume (`reproduce` refuses a resume with other settings through its `config.toml`).
//! Restoring validates every array and field before anything changes: a converted run given a
//! checkpoint without this state, a plain model given one with it, arrays of another length or
//! shape, non-finite factors or factors outside `[0, fuzzy_lr_max]`, signs other than ±1 or on a
//! layer without Dale's principle, negative activity counts and impossible stream states are
//! [`Error::Data`] naming the file and the array or field.

use std::path::{Path, PathBuf};

use bioautograd::Tensor;
use biolayers::bio::BioModel;
use biolayers::io::{parse_npz, save_npz, NamedArray};
use biolayers::layers::{ElmanRnn, Module, Param, Sequential};
use biolayers::optim::{Optimizer, OptimizerState};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::early_stopping::EarlyStoppingState;
use crate::error::{invalid, Error, Result};
use crate::fit::EpochRecord;

mod synapses;

/// A model whose parameters have stable names, so that a checkpoint finds them again.
pub trait Checkpointable: Module {
    /// `(name, parameter)` pairs, in [`Module::params_mut`] order.
    fn named_params(&self) -> Vec<(String, &Param)>;
}

impl Checkpointable for Sequential {
    /// `"<layer index>.<layer name>.<param name>"`, e.g. `0.szdense.kernel`.
    fn named_params(&self) -> Vec<(String, &Param)> {
        Sequential::named_params(self)
    }
}

impl Checkpointable for ElmanRnn {
    /// The parameter names: `w_ih`, `b_ih`, `w_hh`, `b_hh`, `w_out`, `b_out`.
    fn named_params(&self) -> Vec<(String, &Param)> {
        self.params().into_iter().map(|p| (p.name.clone(), p)).collect()
    }
}

/// The two files of one checkpoint: `<dir>/<stem>.npz` and `<dir>/<stem>.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFiles {
    /// The folder.
    pub dir: PathBuf,
    /// The file name without extension (`checkpoint`, `resume_iter_0`).
    pub stem: String,
}

impl CheckpointFiles {
    /// The checkpoint `<dir>/<stem>.{npz,json}`.
    pub fn new(dir: &Path, stem: impl Into<String>) -> Self {
        CheckpointFiles {
            dir: dir.to_path_buf(),
            stem: stem.into(),
        }
    }

    /// The arrays file.
    pub fn npz(&self) -> PathBuf {
        self.dir.join(format!("{}.npz", self.stem))
    }

    /// The metadata file.
    pub fn json(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.stem))
    }

    /// The arrays of a save in progress: written before the `.json` (the commit point) and
    /// renamed to [`CheckpointFiles::npz`] after it, so that a process killed anywhere in a save
    /// leaves a loadable pair (see [`save`]).
    pub fn pending_npz(&self) -> PathBuf {
        self.dir.join(format!("{}.pending.npz", self.stem))
    }

    /// Whether both files exist.
    pub fn exists(&self) -> bool {
        self.npz().is_file() && self.json().is_file()
    }

    /// Deletes both files and a pending `.npz` (those that exist).
    pub fn remove(&self) -> Result<()> {
        for p in [self.npz(), self.json(), self.pending_npz()] {
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::Data {
                    path: p.clone(),
                    detail: e.to_string(),
                })?;
            }
        }
        Ok(())
    }
}

/// What a checkpoint holds besides the model and the optimiser.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    /// The finished epochs (the checkpoint's epoch is its length).
    pub history: Vec<EpochRecord>,
    /// The seed the run's random streams derive from (`None`: not recorded).
    pub seed: Option<u64>,
    /// The state of the run's early stopping after these epochs (`None`: the run has none).
    pub early_stopping: Option<EarlyStoppingState>,
}

/// The `early_stopping` object of the `.json` file: the losses as exact text (`inf` before the
/// first improvement), the counters as integers.
#[derive(Debug, Serialize, Deserialize)]
struct EarlyStoppingEntry {
    epochs: usize,
    reference: ExactF64,
    since_improvement: usize,
    best_loss: ExactF64,
    best_epoch: usize,
}

impl From<&EarlyStoppingState> for EarlyStoppingEntry {
    fn from(s: &EarlyStoppingState) -> Self {
        EarlyStoppingEntry {
            epochs: s.epochs,
            reference: ExactF64(s.reference),
            since_improvement: s.since_improvement,
            best_loss: ExactF64(s.best_loss),
            best_epoch: s.best_epoch,
        }
    }
}

impl From<EarlyStoppingEntry> for EarlyStoppingState {
    fn from(e: EarlyStoppingEntry) -> Self {
        EarlyStoppingState {
            epochs: e.epochs,
            reference: e.reference.0,
            since_improvement: e.since_improvement,
            best_loss: e.best_loss.0,
            best_epoch: e.best_epoch,
        }
    }
}

/// An `f64` written as text in Rust's shortest round-trip form (`NaN` and `inf` included);
/// read back from that text or from a JSON number.
#[derive(Debug, Clone, Copy)]
struct ExactF64(f64);

impl Serialize for ExactF64 {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for ExactF64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Number(f64),
            Text(String),
        }
        match Wire::deserialize(d)? {
            Wire::Number(v) => Ok(ExactF64(v)),
            Wire::Text(t) => t.parse().map(ExactF64).map_err(serde::de::Error::custom),
        }
    }
}

/// One history entry of the `.json` file.
#[derive(Debug, Serialize, Deserialize)]
struct HistoryEntry {
    epoch: usize,
    train_loss: ExactF64,
    train_acc: ExactF64,
    val_loss: ExactF64,
    val_acc: ExactF64,
}

impl From<&EpochRecord> for HistoryEntry {
    fn from(r: &EpochRecord) -> Self {
        HistoryEntry {
            epoch: r.epoch,
            train_loss: ExactF64(r.train_loss),
            train_acc: ExactF64(r.train_acc),
            val_loss: ExactF64(r.val_loss),
            val_acc: ExactF64(r.val_acc),
        }
    }
}

impl From<HistoryEntry> for EpochRecord {
    fn from(h: HistoryEntry) -> Self {
        EpochRecord {
            epoch: h.epoch,
            train_loss: h.train_loss.0,
            train_acc: h.train_acc.0,
            val_loss: h.val_loss.0,
            val_acc: h.val_acc.0,
        }
    }
}

/// The `.json` file.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    epoch: usize,
    /// Absent only in files of the older `rnn-run` resume format.
    #[serde(default)]
    history: Option<Vec<HistoryEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    /// Present only in files of the older `rnn-run` resume format.
    #[serde(default, skip_serializing)]
    history_csv: Option<String>,
    /// The counters of a converted model's synaptic diversity (absent for plain models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bio: Option<synapses::BioMeta>,
    /// The early-stopping state (absent for runs without early stopping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    early_stopping: Option<EarlyStoppingEntry>,
}

fn data_err(path: &Path, detail: impl ToString) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// The optimiser's per-parameter slots as `.npz` arrays `opt.{i}.first`, `opt.{i}.second` and
/// `opt.{i}.started`.
fn optimizer_arrays(state: &OptimizerState) -> Vec<NamedArray> {
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

/// Writes the checkpoint `files` of `model`, `opt` and `state` (see the [module docs](self)).
pub fn save<M: Checkpointable + ?Sized>(
    files: &CheckpointFiles,
    model: &M,
    opt: &Optimizer,
    state: &RunState,
) -> Result<()> {
    save_with_synapses(files, model, None, opt, state)
}

/// [`save`] for a model that may be converted with `BioConverter`: `bio` (its synaptic-diversity
/// state; `None` for a plain model) is written too.
pub fn save_with_synapses<M: Checkpointable + ?Sized>(
    files: &CheckpointFiles,
    model: &M,
    bio: Option<&BioModel>,
    opt: &Optimizer,
    state: &RunState,
) -> Result<()> {
    let (bio_arrays, bio_meta) = match bio {
        Some(b) => {
            let (arrays, meta) = synapses::encode(model, b)?;
            (arrays, Some(meta))
        }
        None => (Vec::new(), None),
    };
    std::fs::create_dir_all(&files.dir).map_err(|e| data_err(&files.dir, e))?;
    let mut arrays = bio_arrays;
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
    let opt_state = opt.export_state_all()?;
    arrays.extend(optimizer_arrays(&opt_state));
    let (hi, lo) = ((opt_state.t >> 24) as f32, (opt_state.t & 0xFF_FFFF) as f32);
    arrays.push(NamedArray {
        name: "meta.t".into(),
        shape: vec![2],
        data: vec![hi, lo],
    });
    arrays.push(NamedArray {
        name: "meta.epoch".into(),
        shape: vec![1],
        data: vec![state.history.len() as f32],
    });
    // Crash safety: the arrays go to the pending file, the .json commits the save, and only then
    // the pending file replaces the .npz. Killed before the commit, the old pair is intact (and
    // the pending file is ignored: its epoch is not the .json's); killed after it, `load` finds
    // the .json's epoch in the pending file and uses it.
    save_npz(&files.pending_npz(), &arrays)?;
    let meta = Meta {
        epoch: state.history.len(),
        history: Some(state.history.iter().map(HistoryEntry::from).collect()),
        seed: state.seed,
        history_csv: None,
        bio: bio_meta,
        early_stopping: state.early_stopping.as_ref().map(EarlyStoppingEntry::from),
    };
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| invalid("checkpoint", "json", e.to_string()))?;
    bionpy::write_atomic(&files.json(), &json)?;
    commit_pending(files)
}

/// Renames the pending `.npz` of a committed save to the `.npz`.
fn commit_pending(files: &CheckpointFiles) -> Result<()> {
    let (pending, npz) = (files.pending_npz(), files.npz());
    std::fs::rename(&pending, &npz).map_err(|e| data_err(&npz, e))
}

/// The `meta.epoch` a (pending) `.npz` holds, if it is readable.
fn npz_epoch(bytes: &[u8], path: &Path) -> Option<usize> {
    let arrays = parse_npz(bytes, path).ok()?;
    let epoch = arrays.iter().find(|a| a.name == "meta.epoch")?.data.first().copied()?;
    Some(epoch as usize)
}

/// Restores the checkpoint `files` into `model` and `opt` (same architecture, same optimiser)
/// and returns its [`RunState`]; `Ok(None)` when there is no checkpoint. `seed`: the run's seed,
/// refused when the checkpoint recorded another one (the resumed run would not be the same run).
///
/// # Errors
/// A torn pair, a missing or misshapen parameter or optimiser slot, another seed, a checkpoint
/// of a converted run (synaptic-diversity state, see [`load_with_synapses`]), or a file of the
/// older `rnn-run` format: [`Error::Data`] naming the file (and the array).
pub fn load<M: Checkpointable + ?Sized>(
    files: &CheckpointFiles,
    model: &mut M,
    opt: &mut Optimizer,
    seed: Option<u64>,
) -> Result<Option<RunState>> {
    load_with_synapses(files, model, None, opt, seed)
}

/// [`load`] for a model that may be converted with `BioConverter`: with `bio` (the state the
/// converter returned for `model`, same configuration) the checkpoint must hold that state and
/// it is restored too; with `None` a checkpoint holding synaptic-diversity state is refused.
/// Nothing is changed when the checkpoint is refused.
///
/// # Errors
/// Those of [`load`], and [`Error::Data`] naming the file and the array or field for missing
/// synaptic-diversity state, arrays of another length or shape, non-finite factors or factors
/// outside `[0, fuzzy_lr_max]`, signs other than ±1 or on a layer without Dale's principle,
/// negative activity counts, or an impossible random-stream state.
pub fn load_with_synapses<M: Checkpointable + ?Sized>(
    files: &CheckpointFiles,
    model: &mut M,
    bio: Option<&mut BioModel>,
    opt: &mut Optimizer,
    seed: Option<u64>,
) -> Result<Option<RunState>> {
    let json_path = files.json();
    if !json_path.is_file() {
        return Ok(None);
    }
    let json = std::fs::read(&json_path).map_err(|e| data_err(&json_path, e))?;
    // A save killed after its commit (the .json) left its arrays in the pending file.
    let committed_epoch = serde_json::from_slice::<Meta>(&json).ok().map(|m| m.epoch);
    let pending = files.pending_npz();
    let pending_bytes = std::fs::read(&pending)
        .ok()
        .filter(|b| committed_epoch.is_some() && npz_epoch(b, &pending) == committed_epoch);
    let state = match pending_bytes {
        Some(bytes) => {
            let state = restore(&json, || Ok(bytes), (&json_path, &pending), (model, bio), opt, seed)?;
            commit_pending(files)?;
            state
        }
        None => {
            let npz_path = files.npz();
            restore(
                &json,
                || std::fs::read(&npz_path).map_err(|e| data_err(&npz_path, e)),
                (&json_path, &npz_path),
                (model, bio),
                opt,
                seed,
            )?
        }
    };
    Ok(Some(state))
}

/// [`load`] from the bytes of the two files (`json`, `npz`); `files` names them in errors.
///
/// # Errors
/// Those of [`load`].
pub fn load_from_bytes<M: Checkpointable + ?Sized>(
    json: &[u8],
    npz: &[u8],
    files: &CheckpointFiles,
    model: &mut M,
    opt: &mut Optimizer,
    seed: Option<u64>,
) -> Result<RunState> {
    restore(
        json,
        || Ok(npz),
        (&files.json(), &files.npz()),
        (model, None),
        opt,
        seed,
    )
}

/// The body of [`load_with_synapses`]: the `.json` is checked before the `.npz` is read
/// (`read_npz`), so that a file of the older format is named as such whatever its `.npz` holds;
/// everything is checked before the model, the synapses or the optimiser is touched.
fn restore<M: Checkpointable + ?Sized, B: AsRef<[u8]>>(
    json: &[u8],
    read_npz: impl FnOnce() -> Result<B>,
    (json_path, npz_path): (&Path, &Path),
    (model, bio): (&mut M, Option<&mut BioModel>),
    opt: &mut Optimizer,
    seed: Option<u64>,
) -> Result<RunState> {
    let meta: Meta = serde_json::from_slice(json).map_err(|e| data_err(json_path, e))?;
    let history: Vec<EpochRecord> = match (meta.history, meta.history_csv) {
        (Some(h), _) => h.into_iter().map(EpochRecord::from).collect(),
        (None, Some(_)) => {
            return Err(data_err(
                json_path,
                "a resume file of the older rnn-run format (before the shared checkpoint format); \
                 delete it and its .npz to restart this run from epoch 1",
            ))
        }
        (None, None) => return Err(data_err(json_path, "no history")),
    };
    if let (Some(stored), Some(wanted)) = (meta.seed, seed) {
        if stored != wanted {
            return Err(data_err(
                json_path,
                format!("written by a run with seed {stored}, this run has seed {wanted}"),
            ));
        }
    }
    let arrays = parse_npz(read_npz()?.as_ref(), npz_path)?;
    let find = |name: &str| arrays.iter().find(|a| a.name == name);
    let bad = |detail: String| data_err(npz_path, detail);
    let epoch = find("meta.epoch")
        .and_then(|a| a.data.first().copied())
        .ok_or_else(|| bad("no meta.epoch".into()))?;
    let early_stopping: Option<EarlyStoppingState> = meta.early_stopping.map(EarlyStoppingState::from);
    if let Some(es) = early_stopping.filter(|es| es.epochs != meta.epoch) {
        return Err(data_err(
            json_path,
            format!(
                "early_stopping holds the state after {} epochs, the checkpoint is of epoch {}",
                es.epochs, meta.epoch
            ),
        ));
    }
    if epoch as usize != meta.epoch || history.len() != meta.epoch {
        return Err(bad(format!(
            "holds epoch {epoch}, {} says {}",
            json_path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            meta.epoch
        )));
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
    // The optimiser slots are checked before the model is touched: the update indexes both
    // moments by the parameter's elements, so a slot of another length would fail (or panic) at
    // the first step after the resume instead of here, naming the file.
    let mut slots = Vec::new();
    while let (Some(m), Some(v), Some(s)) = (
        find(&format!("opt.{}.first", slots.len())),
        find(&format!("opt.{}.second", slots.len())),
        find(&format!("opt.{}.started", slots.len())),
    ) {
        let i = slots.len();
        let numel = names.get(i).map(|(_, shape)| shape.iter().product::<usize>());
        let fits = |len: usize| len == 0 || numel.is_none_or(|n| n == len);
        if m.data.len() != v.data.len() || !fits(m.data.len()) {
            return Err(bad(format!(
                "optimiser slot {i} holds {} first and {} second moments, for {}",
                m.data.len(),
                v.data.len(),
                numel.map_or_else(|| "no parameter".to_string(), |n| format!("a parameter of {n} values"))
            )));
        }
        slots.push((
            m.data.clone(),
            v.data.clone(),
            s.data.first().copied().unwrap_or(0.0) != 0.0,
        ));
    }
    let restored_bio = match &bio {
        Some(b) => Some(synapses::decode(&*model, b, meta.bio, &arrays, npz_path, json_path)?),
        None => {
            synapses::refuse(meta.bio.as_ref(), &arrays, npz_path, json_path)?;
            None
        }
    };
    let buffers: Vec<(String, Vec<f32>)> = arrays
        .iter()
        .filter_map(|a| a.name.strip_prefix("buffer.").map(|n| (n.to_string(), a.data.clone())))
        .collect();
    model.set_buffers(&buffers)?;
    for (p, v) in model.params_mut().into_iter().zip(values) {
        p.value = v;
    }
    let t = find("meta.t").map_or(0, |a| {
        ((a.data.first().copied().unwrap_or(0.0) as u64) << 24) | a.data.get(1).copied().unwrap_or(0.0) as u64
    });
    opt.import_state(OptimizerState { t, slots });
    if let (Some(b), Some(r)) = (bio, restored_bio) {
        *b = r;
    }
    Ok(RunState {
        history,
        seed: meta.seed,
        early_stopping,
    })
}
