//! `cargo xtask export`: rebuilds the model a checkpoint folder belongs to and writes its weights
//! in PyTorch or Keras names and layouts ([`biolayers::interop`]).
//!
//! A checkpoint folder of a `reproduce` sweep is `<results>/checkpoints/<setting>_r<repeat>/`
//! (holding `checkpoint.json` + `checkpoint.npz`, [`biotasks::checkpoint`]); the experiment and
//! its settings come from `<results>/config.toml` (first line `# cargo xtask reproduce <name>`),
//! the model is rebuilt as the run built it (same seed `seed + repeat`, so the same masks), and
//! the checkpoint's parameters are restored into it. The folder is only read: a checkpoint whose
//! save was interrupted is read as `--resume` would read it, without completing the rename.
//!
//! Rebuilt today: `schizo-mnist`. Other experiments (and `rnn-run` folders) are refused with an
//! error naming the folder and the experiment: their builders are not yet callable from a
//! saved configuration.

use std::path::{Path, PathBuf};

use biolayers::interop::{save_weights, WeightFormat, WeightLayout};
use biolayers::layers::Sequential;
use biorng::Stream;
use biotasks::checkpoint::{self, CheckpointFiles};

use crate::error::{Error, Result};
use crate::schizo_mnist::{self, SchizoMnistConfig};

/// The experiments whose checkpoints [`export_checkpoint`] rebuilds.
pub const SUPPORTED: &[&str] = &["schizo-mnist"];

/// What [`export_checkpoint`] rebuilt and wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// The experiment (`schizo-mnist`).
    pub experiment: String,
    /// The setting label (`r=0.5`) and repeat.
    pub setting: String,
    /// The repeat.
    pub repeat: usize,
    /// Epochs the checkpoint had trained.
    pub epoch: usize,
    /// Tensors written.
    pub tensors: usize,
}

fn data_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// `(results folder, setting label, repeat)` of a checkpoint folder `<results>/checkpoints/<label>_r<repeat>`.
fn locate(dir: &Path) -> Result<(PathBuf, String, usize)> {
    let not_one = |why: &str| {
        data_err(
            dir,
            format!(
                "not a checkpoint folder of a `reproduce` run (`<results>/checkpoints/<setting>_r<repeat>/`): {why}"
            ),
        )
    };
    if !dir.is_dir() {
        return Err(not_one("no such folder"));
    }
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| not_one("no folder name"))?;
    let (label, repeat) = name
        .rsplit_once("_r")
        .ok_or_else(|| not_one("its name does not end in `_r<repeat>`"))?;
    let repeat = repeat
        .parse::<usize>()
        .map_err(|_| not_one("its name does not end in `_r<repeat>`"))?;
    let parent = dir
        .parent()
        .filter(|p| p.file_name().is_some_and(|n| n == "checkpoints"));
    let results = parent
        .and_then(Path::parent)
        .ok_or_else(|| not_one("it is not inside a `checkpoints` folder"))?;
    Ok((results.to_path_buf(), label.to_string(), repeat))
}

/// Rebuilds the model of the checkpoint folder `dir` and restores its parameters.
///
/// # Errors
/// [`Error::Data`] naming the folder or file: not a checkpoint folder, no or a corrupt
/// `config.toml`, an experiment [`SUPPORTED`] does not list, a setting the configuration does not
/// have, a missing or damaged checkpoint (see [`biotasks::checkpoint::load`]).
pub fn rebuild(dir: &Path) -> Result<(Sequential, ExportSummary)> {
    let (results, label, repeat) = locate(dir)?;
    let config_path = results.join("config.toml");
    let text = std::fs::read_to_string(&config_path).map_err(|e| data_err(&config_path, e.to_string()))?;
    let experiment = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# cargo xtask reproduce "))
        .map(|s| s.trim().to_string())
        .ok_or_else(|| data_err(&config_path, "first line is not `# cargo xtask reproduce <name>`"))?;
    if experiment != "schizo-mnist" {
        return Err(data_err(
            dir,
            format!(
                "export cannot rebuild `{experiment}` models yet (it rebuilds: {})",
                SUPPORTED.join(", ")
            ),
        ));
    }
    let cfg: SchizoMnistConfig =
        toml::from_str(&text).map_err(|e| data_err(&config_path, format!("not a schizo-mnist config: {e}")))?;
    let r = cfg
        .reductions
        .iter()
        .copied()
        .find(|r| format!("r={r}") == label)
        .ok_or_else(|| data_err(dir, format!("setting `{label}` is not in {}", config_path.display())))?;
    if repeat >= cfg.repeats {
        return Err(data_err(
            dir,
            format!("repeat {repeat}, the run has {} repeat(s)", cfg.repeats),
        ));
    }
    let seed = cfg.seed + repeat as u64;
    let (mut model, _) = schizo_mnist::model(cfg.hidden, r, &mut Stream::seeded(seed))?;
    let mut opt = schizo_mnist::optimizer(&cfg).build()?;
    let files = CheckpointFiles::new(dir, "checkpoint");
    let (json_path, npz_path) = (files.json(), files.npz());
    let json = std::fs::read(&json_path).map_err(|e| data_err(&json_path, e.to_string()))?;
    // A save interrupted after its commit left the arrays in the pending file; read them from
    // there (as `--resume` would) without renaming anything.
    let pending = files.pending_npz();
    let from_pending = std::fs::read(&pending)
        .ok()
        .and_then(|bytes| checkpoint::load_from_bytes(&json, &bytes, &files, &mut model, &mut opt, Some(seed)).ok());
    let state = match from_pending {
        Some(state) => state,
        None => {
            let bytes = std::fs::read(&npz_path).map_err(|e| data_err(&npz_path, e.to_string()))?;
            checkpoint::load_from_bytes(&json, &bytes, &files, &mut model, &mut opt, Some(seed))?
        }
    };
    let summary = ExportSummary {
        experiment,
        setting: label,
        repeat,
        epoch: state.history.len(),
        tensors: 0,
    };
    Ok((model, summary))
}

/// Rebuilds the model of `checkpoint_dir` ([`rebuild`]) and writes its weights to `out`
/// (atomically: on any error no file is written and an existing `out` is untouched).
///
/// # Errors
/// Those of [`rebuild`] and of [`biolayers::interop::save_weights`].
pub fn export_checkpoint(
    checkpoint_dir: &Path,
    format: WeightFormat,
    layout: WeightLayout,
    out: &Path,
) -> Result<ExportSummary> {
    let (model, mut summary) = rebuild(checkpoint_dir)?;
    summary.tensors = biolayers::interop::export_tensors(&model, layout)?.len();
    save_weights(&model, format, layout, out)?;
    Ok(summary)
}
