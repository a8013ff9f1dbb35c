//! The run configuration: upstream's `config.ini` (sections with JSON / Python-literal dict
//! values) and the equivalent TOML, both parsed into one typed [`RunsConfig`].
//!
//! Every upstream key exists with the value of upstream's README template as its default, so a
//! config only needs `[trialparams]` and `[combosparams]`. Our additions live in `[paths]`
//! (`path_to_latents`, `path_to_latent_labels`) and in a `[run]` section (`seed`, `batch_size`,
//! `checkpoint_every`, `orientation`). Unknown sections or keys and values of the wrong type are errors naming
//! the key ([`Error::Config`]).
//!
//! # INI rules (Python `configparser` + `eval`, as upstream)
//! * `[section]` headers, `key = value` or `key: value`, keys case-insensitive, full-line comments
//!   starting with `#` or `;`, indented continuation lines; a repeated section or key is an error.
//! * Booleans as `getboolean`: `1/yes/true/on`, `0/no/false/off` (any case).
//! * `trial_params` and `combos_params` are dict literals, JSON or Python (`True`, `'str'`).
//!
//! The TOML form has the same sections and keys; the two dicts are (inline) tables:
//! `trial_params = { task_name = "seq_mem", nr_of_trials = 500, train_size = 0.8 }`.

use std::path::Path;

use bio2art::Orientation;
use serde::{Deserialize, Serialize};

use super::ini::ini_to_toml;
use crate::error::{Error, Result};

/// The three tasks the runner trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskName {
    /// `seq_mem` (regression, MSE).
    SeqMem,
    /// `nback_mem` (3 classes, NLL).
    NbackMem,
    /// `pic_latent_mem` (3 classes, NLL; needs the latent table).
    PicLatentMem,
}

impl TaskName {
    /// Upstream's name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskName::SeqMem => "seq_mem",
            TaskName::NbackMem => "nback_mem",
            TaskName::PicLatentMem => "pic_latent_mem",
        }
    }

    /// True for the match / non-match tasks (log-softmax + NLL, accuracy).
    pub fn is_classification(self) -> bool {
        !matches!(self, TaskName::SeqMem)
    }

    /// The combos key of the task parameter (`pattern_length` or `n_back`).
    pub fn task_param_key(self) -> &'static str {
        match self {
            TaskName::SeqMem => "pattern_length",
            _ => "n_back",
        }
    }
}

/// The recurrent nonlinearity (`nonlinearity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Nonlinearity {
    /// `relu`.
    Relu,
    /// `tanh`.
    Tanh,
}

impl Nonlinearity {
    /// Upstream's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Nonlinearity::Relu => "relu",
            Nonlinearity::Tanh => "tanh",
        }
    }
}

/// The optimiser (`optimizer`), PyTorch's with its defaults and the combination's `lr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OptimizerName {
    /// `torch.optim.Adam`.
    Adam,
    /// `torch.optim.RMSprop`.
    #[serde(rename = "RMSprop")]
    RmsProp,
    /// `torch.optim.SGD`.
    #[serde(rename = "SGD")]
    Sgd,
}

impl OptimizerName {
    /// Upstream's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OptimizerName::Adam => "Adam",
            OptimizerName::RmsProp => "RMSprop",
            OptimizerName::Sgd => "SGD",
        }
    }
}

/// The weight initialisation scheme (`init`). As upstream, any value other than `default`
/// becomes `he` for relu and `xavier` for tanh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitName {
    /// PyTorch's `nn.RNN` / `nn.Linear` defaults.
    Default,
    /// Xavier uniform.
    Xavier,
    /// Kaiming uniform (fan out).
    He,
}

/// `[paths]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Paths {
    /// Folder holding `C_<net_name>.npy`; empty = the connectomes bundled with `bio2art`.
    pub path_to_network: String,
    /// Results folder (`--out` overrides it).
    pub path_to_results: String,
    /// Upstream's pretrained-model folder; only empty is supported.
    pub pretrained: String,
    /// Ours: float32 `(N, D)` latent table (`.npy`) for `pic_latent_mem`; relative paths are
    /// looked up in the data folder (`--data`) first, then the working directory.
    pub path_to_latents: String,
    /// Ours: int64 / uint8 `(N,)` labels of the latent table (`.npy`).
    pub path_to_latent_labels: String,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            path_to_network: String::new(),
            path_to_results: "results/rnn-runs".into(),
            pretrained: String::new(),
            path_to_latents: "results/mnist_latents/latents.npy".into(),
            path_to_latent_labels: "results/mnist_latents/labels.npy".into(),
        }
    }
}

/// The largest hidden layer an `rnn-run` config may ask for (`rnn_size × nr_neurons`): its
/// recurrent matrix alone is 256 MB of f32 (upstream's experiments use 220).
pub const MAX_HIDDEN: usize = 8192;

/// `[net]`: the bio2art conversion. Required with every key, as upstream's
/// `config['net'][...]` reads them (a missing one was a `KeyError` there); a default here would
/// silently train a network nobody asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Net {
    /// Connectome name, e.g. `Marmoset_Normalized`.
    pub net_name: String,
    /// Number of regions of the connectome (upstream's length of `neuron_density`).
    pub rnn_size: usize,
    /// Neurons per region; the hidden size is `rnn_size · nr_neurons`.
    pub nr_neurons: usize,
    /// bio2art `rand_partition`.
    pub rand_partition: bool,
    /// Train on a randomised topology (upstream `networkmetrics.rand_net`) instead of the bio one.
    pub random_w: bool,
}

/// `[trainvalidate]`. Required with every key, as `[net]`: without it upstream stopped with a
/// `KeyError`, and defaults would start 500 epochs × 5 iterations unasked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainValidate {
    /// Epochs per run.
    pub epochs: usize,
    /// Runs per combination.
    pub iterations: usize,
    /// Initialisation scheme.
    pub init: InitName,
    /// Keep the recurrent matrix at its initial (masked) value.
    pub freeze_layer: bool,
    /// Reorder the initial recurrent values by the rank of the connectome weights.
    pub remap_w: bool,
}

/// The `trial_params` dict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialParams {
    /// The task.
    pub task_name: TaskName,
    /// Trials (match and again non-match trials for the two n-back tasks).
    #[serde(default = "default_trials")]
    pub nr_of_trials: usize,
    /// Fraction of the trials that train.
    #[serde(default = "default_train_size")]
    pub train_size: f64,
    /// Items per trial of the n-back tasks.
    #[serde(default = "default_trial_length")]
    pub trial_length: usize,
    /// `pic_latent_mem`: per-image min-max scaling.
    #[serde(default = "yes")]
    pub rescale: bool,
    /// `seq_mem`: lower bound of the values.
    #[serde(default)]
    pub low: f64,
    /// `seq_mem`: upper bound of the values.
    #[serde(default = "one")]
    pub high: f64,
    /// Upstream forces `True`; only `true` is accepted.
    #[serde(default = "yes")]
    pub trial_matching: bool,
}

fn default_trials() -> usize {
    500
}
fn default_train_size() -> f64 {
    0.8
}
fn default_trial_length() -> usize {
    5
}
fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}

/// `[trialparams]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialParamsSection {
    /// The dict.
    pub trial_params: TrialParams,
}

/// The `combos_params` dict: the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CombosParams {
    /// Learning rates.
    #[serde(default = "default_lrs")]
    pub lr: Vec<f64>,
    /// Nonlinearities.
    #[serde(default = "default_nonlinearities")]
    pub nonlinearity: Vec<Nonlinearity>,
    /// Optimisers.
    #[serde(default = "default_optimizers")]
    pub optimizer: Vec<OptimizerName>,
    /// `seq_mem` pattern lengths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern_length: Option<Vec<usize>>,
    /// n-back distances of the two match / non-match tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_back: Option<Vec<usize>>,
}

fn default_lrs() -> Vec<f64> {
    vec![1e-4, 1e-6]
}
fn default_nonlinearities() -> Vec<Nonlinearity> {
    vec![Nonlinearity::Relu, Nonlinearity::Tanh]
}
fn default_optimizers() -> Vec<OptimizerName> {
    vec![OptimizerName::Adam, OptimizerName::RmsProp]
}

/// `[combosparams]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CombosParamsSection {
    /// The dict.
    pub combos_params: CombosParams,
}

/// `[pretrainedparams]` (upstream: used only with `pretrained`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pretrained {
    /// Epoch of the pretrained model.
    pub pretrained_epoch: usize,
    /// Iteration of the pretrained model.
    pub pretrained_iteration: usize,
}

/// `[run]` (ours): what upstream hard-codes or leaves unseeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    /// Base seed: the bio2art conversion uses it, every job derives its own from it and the
    /// job's (combination, iteration), so a job's result does not depend on the sharding.
    pub seed: u64,
    /// Mini-batch size (upstream 128).
    pub batch_size: usize,
    /// Parameter files every this many epochs, and at the last one (upstream 10).
    pub checkpoint_every: usize,
    /// How bio2art's neuron matrix becomes the recurrent matrix: `upstream` (the transposed
    /// connectome, as upstream's code does) or `source_row` (bio2art's row = source).
    pub orientation: Orientation,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            seed: 1,
            batch_size: 128,
            checkpoint_every: 10,
            orientation: Orientation::Upstream,
        }
    }
}

/// A whole run configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsConfig {
    /// `[paths]`.
    #[serde(default)]
    pub paths: Paths,
    /// `[net]` (required).
    pub net: Net,
    /// `[trainvalidate]` (required).
    pub trainvalidate: TrainValidate,
    /// `[trialparams]`.
    pub trialparams: TrialParamsSection,
    /// `[combosparams]`.
    pub combosparams: CombosParamsSection,
    /// `[pretrainedparams]`.
    #[serde(default)]
    pub pretrainedparams: Pretrained,
    /// `[run]` (ours).
    #[serde(default)]
    pub run: RunSection,
}

pub(crate) fn config_err(file: &Path, key: impl Into<String>, detail: impl Into<String>) -> Error {
    Error::Config {
        file: file.to_path_buf(),
        key: key.into(),
        detail: detail.into(),
    }
}

impl RunsConfig {
    /// Reads `path`: `.ini` (upstream format) or `.toml`, by extension.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Data {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("ini") | Some("cfg") => Self::from_ini(&text, path),
            Some("toml") => Self::from_toml(&text, path),
            _ => Err(config_err(
                path,
                "file",
                "the config must end in .ini (upstream format) or .toml",
            )),
        }
    }

    /// Parses the TOML form (`origin` names the source in errors) and validates it.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let cfg: RunsConfig =
            toml::from_str(text).map_err(|e| config_err(origin, error_key(&e, text), e.message().trim()))?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Parses upstream's `config.ini` form (`origin` names the source in errors) and validates it.
    pub fn from_ini(text: &str, origin: &Path) -> Result<Self> {
        let table = ini_to_toml(text, origin)?;
        if let Some(key) = crate::common::overlong_quote_run(&table) {
            return Err(config_err(
                origin,
                ini_key_name(&key),
                format!(
                    "more than {} quotes in a row are not supported",
                    crate::common::MAX_TOML_QUOTE_RUN
                ),
            ));
        }
        let generated =
            toml::to_string(&table).map_err(|e| config_err(origin, "config", format!("cannot re-encode: {e}")))?;
        let cfg: RunsConfig = toml::from_str(&generated)
            .map_err(|e| config_err(origin, ini_key_name(&error_key(&e, &generated)), e.message().trim()))?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// The canonical TOML text of this configuration.
    pub fn to_toml(&self) -> Result<String> {
        crate::common::toml_of(self)
    }

    /// The values of the task parameter of the grid (`pattern_length` or `n_back`).
    pub fn task_params(&self) -> &[usize] {
        let c = &self.combosparams.combos_params;
        let v = match self.trialparams.trial_params.task_name {
            TaskName::SeqMem => &c.pattern_length,
            _ => &c.n_back,
        };
        v.as_deref().unwrap_or(&[])
    }

    /// The task of one grid point, `task_param` being its `pattern_length` or `n_back`.
    pub fn task(&self, task_param: usize) -> biotasks::Task {
        use biotasks::{NbackMem, PicLatentMem, SeqMem, Task};
        let tp = &self.trialparams.trial_params;
        match tp.task_name {
            TaskName::SeqMem => Task::SeqMem(SeqMem {
                pattern_length: task_param,
                low: tp.low,
                high: tp.high,
                trials: tp.nr_of_trials,
            }),
            TaskName::NbackMem => Task::NbackMem(NbackMem {
                trial_length: tp.trial_length,
                n_back: task_param,
                trials: tp.nr_of_trials,
            }),
            TaskName::PicLatentMem => Task::PicLatentMem(PicLatentMem {
                trial_length: tp.trial_length,
                n_back: task_param,
                trials: tp.nr_of_trials,
                rescale: tp.rescale,
            }),
        }
    }

    /// Checks ranges and cross-key rules; every error names its key.
    pub fn validate(&self, origin: &Path) -> Result<()> {
        let err = |key: &str, detail: String| Err(config_err(origin, key, detail));
        let tv = &self.trainvalidate;
        if tv.epochs == 0 {
            return err("[trainvalidate] epochs", "must be >= 1".into());
        }
        if tv.iterations == 0 {
            return err("[trainvalidate] iterations", "must be >= 1".into());
        }
        if self.net.rnn_size == 0 {
            return err("[net] rnn_size", "must be >= 1".into());
        }
        if self.net.nr_neurons == 0 {
            return err("[net] nr_neurons", "must be >= 1".into());
        }
        if self.net.net_name.trim().is_empty() {
            return err("[net] net_name", "must name a connectome".into());
        }
        if !self.paths.pretrained.trim().is_empty() {
            return err(
                "[paths] pretrained",
                "loading pretrained models is not supported (upstream does not use it either); leave it empty".into(),
            );
        }
        let tp = &self.trialparams.trial_params;
        let key = |k: &str| format!("[trialparams] trial_params.{k}");
        if tp.nr_of_trials == 0 {
            return err(&key("nr_of_trials"), "must be >= 1".into());
        }
        if !(tp.train_size > 0.0 && tp.train_size < 1.0) {
            return err(
                &key("train_size"),
                format!("{} must lie strictly between 0 and 1", tp.train_size),
            );
        }
        if !tp.trial_matching {
            return err(
                &key("trial_matching"),
                "upstream always sets it to True; false is not supported".into(),
            );
        }
        if !(tp.low.is_finite() && tp.high.is_finite() && tp.low < tp.high) {
            return err(
                &key("low"),
                format!("needs finite low < high, got {} and {}", tp.low, tp.high),
            );
        }
        let c = &self.combosparams.combos_params;
        let ckey = |k: &str| format!("[combosparams] combos_params.{k}");
        if c.lr.is_empty() {
            return err(&ckey("lr"), "needs at least one learning rate".into());
        }
        if let Some(lr) = c.lr.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
            return err(&ckey("lr"), format!("{lr} is not a positive learning rate"));
        }
        if c.nonlinearity.is_empty() {
            return err(&ckey("nonlinearity"), "needs at least one of relu, tanh".into());
        }
        if c.optimizer.is_empty() {
            return err(&ckey("optimizer"), "needs at least one of Adam, RMSprop, SGD".into());
        }
        let (wanted, other) = match tp.task_name {
            TaskName::SeqMem => ("pattern_length", c.n_back.is_some()),
            _ => ("n_back", c.pattern_length.is_some()),
        };
        if other {
            let unused = if wanted == "n_back" { "pattern_length" } else { "n_back" };
            return err(
                &ckey(unused),
                format!("does not apply to {}; give {wanted}", tp.task_name.as_str()),
            );
        }
        let values = self.task_params();
        if values.is_empty() {
            return err(
                &ckey(wanted),
                format!("{} needs a non-empty list {wanted}", tp.task_name.as_str()),
            );
        }
        for &v in values {
            match tp.task_name {
                TaskName::SeqMem if v == 0 => return err(&ckey(wanted), "pattern lengths must be >= 1".into()),
                TaskName::NbackMem | TaskName::PicLatentMem if v == 0 || v >= tp.trial_length => {
                    return err(
                        &ckey(wanted),
                        format!(
                            "n_back {v} must satisfy 1 <= n_back < trial_length = {}",
                            tp.trial_length
                        ),
                    )
                }
                _ => {}
            }
        }
        // Every grid point's task, so that a trial set beyond the memory limit is refused
        // before any folder is made; the error names the key behind the parameter.
        for &v in values {
            if let Err(e) = self.task(v).validate_params() {
                let k = match &e {
                    biotasks::Error::InvalidParameter { param: "trials", .. } => key("nr_of_trials"),
                    biotasks::Error::InvalidParameter {
                        param: "trial_length", ..
                    } => key("trial_length"),
                    biotasks::Error::InvalidParameter {
                        param: "low" | "high", ..
                    } => key("low"),
                    _ => ckey(wanted),
                };
                return err(&k, e.to_string());
            }
        }
        let hidden = self.net.rnn_size.checked_mul(self.net.nr_neurons);
        if hidden.is_none_or(|h| h > MAX_HIDDEN) {
            return err(
                "[net] nr_neurons",
                format!(
                    "rnn_size {} × nr_neurons {} neurons exceed the limit of {MAX_HIDDEN} hidden units",
                    self.net.rnn_size, self.net.nr_neurons
                ),
            );
        }
        if self.run.batch_size == 0 {
            return err("[run] batch_size", "must be >= 1".into());
        }
        if self.run.checkpoint_every == 0 {
            return err("[run] checkpoint_every", "must be >= 1".into());
        }
        // The results folder gets the config's canonical TOML: refuse now what cannot be written.
        let table = toml::Table::try_from(self).map_err(|e| config_err(origin, "config", e.to_string()))?;
        if let Some(key) = crate::common::overlong_quote_run(&table) {
            return err(
                &ini_key_name(&key),
                format!(
                    "more than {} quotes in a row cannot be written as TOML",
                    crate::common::MAX_TOML_QUOTE_RUN
                ),
            );
        }
        Ok(())
    }
}

/// The dotted key a TOML error is about: the key at its span, or for a missing field the
/// field inside the table at its span (the whole document: a missing section).
fn error_key(e: &toml::de::Error, text: &str) -> String {
    let missing = e
        .message()
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
        .map(str::to_string);
    match (e.span(), missing) {
        (Some(s), Some(field)) if s.start == 0 => field,
        (Some(s), Some(field)) => format!("{}.{field}", key_at(text, s.start)),
        (None, Some(field)) => field,
        (Some(s), None) => key_at(text, s.start),
        (None, None) => "config".into(),
    }
}

/// The dotted key whose line holds byte `offset` of a TOML text: the last `[header]` before it
/// plus the key on that line (or the header itself).
fn key_at(text: &str, offset: usize) -> String {
    let mut section = String::new();
    let mut key = None;
    let mut pos = 0;
    for line in text.lines() {
        let end = pos + line.len();
        let t = line.trim();
        if t.starts_with('[') {
            section = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            key = None;
        } else if let Some((k, _)) = t.split_once('=') {
            key = Some(k.trim().trim_matches('"').to_string());
        }
        if offset <= end {
            break;
        }
        pos = end + 1;
    }
    match key {
        Some(k) if section.is_empty() => k,
        Some(k) => format!("{section}.{k}"),
        None if section.is_empty() => "config".into(),
        None => section,
    }
}

/// `trialparams.trial_params.task_name` → `[trialparams] trial_params.task_name`.
pub(crate) fn ini_key_name(dotted: &str) -> String {
    match dotted.split_once('.') {
        Some((section, rest)) => format!("[{section}] {rest}"),
        None => format!("[{dotted}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_at_finds_sections_and_keys() {
        let text = "[net]\nnet_name = \"x\"\nrnn_size = \"a\"\n";
        let off = text.find("\"a\"").unwrap_or(0);
        assert_eq!(key_at(text, off), "net.rnn_size");
        assert_eq!(ini_key_name("net.rnn_size"), "[net] rnn_size");
    }
}
