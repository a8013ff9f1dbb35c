//! Plumbing shared by every experiment: the options of `cargo xtask reproduce`
//! ([`ReproduceOptions`]), the results folder (`config.toml`, `env.txt`), the per-setting results
//! ([`SettingResult`]) and what is written from them (`history.csv` rows, loss/accuracy curves,
//! `summary.md`).
//!
//! Every target writes into its output folder (default `results/<name>/`): `config.toml` (the
//! exact settings, seeds included), `history.csv` (`setting, repeat, epoch, train_loss,
//! train_acc, val_loss, val_acc`), loss and accuracy curves (mean ± std over repeats) as PNG and
//! SVG, `summary.md` (statistics and verdicts, [`crate::claims`]), `stats.csv`,
//! `comparisons.csv` and `env.txt` (revision, machine, threads, date); the jobs' own files and
//! shards are [`crate::jobs`].

use std::path::{Path, PathBuf};

use biotasks::fit::EpochRecord;
use biotasks::plot::{write_line_plot, LinePlot, Series};
use serde::Serialize;

use crate::error::Result;

/// The size of a reproduction (`--preset`): `quick` (minutes, a smoke test), `medium` (sized
/// so that the claim can show in about an hour on 2 cores) or `paper` (the papers' settings).
/// Each target's sizes per preset are in its config's `for_preset` (table in
/// docs/reproductions.md). `rnn-memory` also has `converge` (trained to a validation plateau),
/// its own preset: [`crate::rnn_memory::RnnMemoryPreset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Minutes on 2 cores (`--quick`).
    Quick,
    /// About an hour on 2 cores.
    Medium,
    /// The papers' settings (the default).
    #[default]
    Paper,
}

impl std::str::FromStr for Preset {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "quick" => Ok(Preset::Quick),
            "medium" => Ok(Preset::Medium),
            "paper" => Ok(Preset::Paper),
            "converge" => Err(crate::error::invalid(
                "preset",
                "converge",
                "only `reproduce rnn-memory` has the converge preset; the other targets have quick, medium and paper",
            )),
            other => Err(crate::error::invalid(
                "preset",
                other,
                "expected quick, medium or paper",
            )),
        }
    }
}

/// Command-line overrides of a preset's sizes (`None`: the preset's value); they win over the
/// preset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Epochs per run.
    pub epochs: Option<usize>,
    /// Training images (image targets).
    pub train_images: Option<usize>,
    /// Repeats (seeds) per setting.
    pub repeats: Option<usize>,
}

impl Overrides {
    /// Refuses a zero (a run of nothing); the upper limits are the callers' (`cli::check_range`).
    pub fn validate(&self) -> Result<()> {
        for (param, value) in [
            ("epochs", self.epochs),
            ("train_images", self.train_images),
            ("repeats", self.repeats),
        ] {
            if value == Some(0) {
                return Err(crate::error::invalid(param, 0, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// `value` overridden by `over`.
    pub(crate) fn pick(over: Option<usize>, value: usize) -> usize {
        over.unwrap_or(value)
    }
}

/// Options shared by every reproduction.
#[derive(Debug, Clone)]
pub struct ReproduceOptions {
    /// The sizes: quick, medium or paper.
    pub preset: Preset,
    /// Overrides of the preset's sizes.
    pub overrides: Overrides,
    /// The (setting, repeat) jobs to run in this call ([`crate::jobs`]); `Shard::ALL` for all.
    pub shard: crate::rnn_runs::Shard,
    /// Data folder (`None`: `../shared/data` when it exists).
    pub data: Option<PathBuf>,
    /// Output folder.
    pub out: PathBuf,
    /// Continue from the runs' checkpoints.
    pub resume: bool,
    /// Show progress bars.
    pub progress: bool,
    /// Base seed (run `k` of a setting uses `seed + k`).
    pub seed: u64,
    /// `--forms` of the schizophrenia-layer sweeps (window shapes at equal density; empty:
    /// the preset's).
    pub forms: Vec<String>,
    /// `--cifar-format` of the CIFAR-10 targets (`None`: the binary batches when the data
    /// folder has them, the JPEG copy otherwise).
    pub cifar_format: Option<biotasks::data::CifarFormat>,
    /// Where the image-classification sweeps train (`--device`; [`biotasks::fit`]): the host,
    /// a CUDA device or the host emulator of the device backend.
    pub device: bioautograd::Device,
}

impl ReproduceOptions {
    /// The `quick` preset into `out`, seed 1, no overrides, no shard, no progress bars.
    pub fn quick(out: PathBuf) -> Self {
        ReproduceOptions {
            preset: Preset::Quick,
            overrides: Overrides::default(),
            shard: crate::rnn_runs::Shard::ALL,
            data: None,
            out,
            resume: false,
            progress: false,
            seed: 1,
            forms: Vec::new(),
            cifar_format: None,
            device: bioautograd::Device::Cpu,
        }
    }

    /// `--forms` parsed (`None`: not given, the preset's forms).
    ///
    /// # Errors
    /// An unknown or repeated form.
    pub fn band_forms(&self) -> Result<Option<Vec<crate::band_forms::BandForm>>> {
        if self.forms.is_empty() {
            Ok(None)
        } else {
            crate::band_forms::BandForm::parse_list(&self.forms).map(Some)
        }
    }
}

/// One finished setting: its label, mask density and the histories of its repeats.
#[derive(Debug, Clone)]
pub struct SettingResult {
    /// e.g. `r=0.5`.
    pub label: String,
    /// Fraction of the masked layer's weights kept.
    pub density: f64,
    /// One history per repeat.
    pub runs: Vec<Vec<EpochRecord>>,
}

/// Writes `text` to `path` atomically, creating its folder first.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| crate::error::io_err(dir, e))?;
    }
    Ok(bionpy::write_atomic(path, text.as_bytes())?)
}

/// The settings as TOML text.
///
/// # Errors
/// Settings that are not a table, or a text holding a run of more than [`MAX_TOML_QUOTE_RUN`]
/// quotes (naming its key).
pub fn toml_of<T: Serialize>(cfg: &T) -> Result<String> {
    let toml_err = |e: &dyn std::fmt::Display| crate::error::invalid("config", "toml", e.to_string());
    let value = toml::Value::try_from(cfg).map_err(|e| toml_err(&e))?;
    if let Some(key) = value.as_table().and_then(overlong_quote_run) {
        return Err(crate::error::invalid(
            "config",
            key,
            format!("a text with more than {MAX_TOML_QUOTE_RUN} quotes in a row cannot be written as TOML"),
        ));
    }
    toml::to_string(cfg).map_err(|e| toml_err(&e))
}

/// The longest run of one quote character (`"` or `'`) a text (key or value) may hold when it is
/// written as TOML: the `toml` 0.8 writer counts such runs in a `u8` and panics at the 256th in
/// overflow-checked builds (toml-rs/toml#1188, fixed only in the 1.x writer). Found by the
/// `config_ini` fuzz target (fuzz/regressions/config_ini/).
pub const MAX_TOML_QUOTE_RUN: usize = 255;

/// The dotted key of the first key or text of `table` with a run of more than
/// [`MAX_TOML_QUOTE_RUN`] quotes; `None` when the table can be written.
pub(crate) fn overlong_quote_run(table: &toml::Table) -> Option<String> {
    fn too_long(s: &str) -> bool {
        [b'"', b'\''].iter().any(|&q| {
            s.as_bytes()
                .split(|&b| b != q)
                .any(|run| run.len() > MAX_TOML_QUOTE_RUN)
        })
    }
    fn walk(path: String, v: &toml::Value) -> Option<String> {
        match v {
            toml::Value::String(s) if too_long(s) => Some(path),
            toml::Value::Table(t) => in_table(&path, t),
            toml::Value::Array(a) => a.iter().enumerate().find_map(|(i, v)| walk(format!("{path}[{i}]"), v)),
            _ => None,
        }
    }
    fn in_table(prefix: &str, t: &toml::Table) -> Option<String> {
        t.iter().find_map(|(k, v)| {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if too_long(k) {
                Some(path)
            } else {
                walk(path, v)
            }
        })
    }
    in_table("", table)
}

/// Creates the results folder `out` and writes `config.toml` (headed by the command that made
/// it, `# cargo xtask reproduce <name>`) and `env.txt`, after checking that the folder is what
/// the caller means it to be, so that a results folder never lies about how it was made:
///
/// * without `resume`, `out` must not exist or be empty: a finished run is not overwritten;
/// * with `resume`, `out` must hold the `config.toml` of an earlier run of the same experiment
///   and settings (then `config.toml` and `env.txt`, the environment the run started in, are
///   left as they are):
///   resuming with another seed or setting would mix two experiments under one config, so it is
///   refused with the keys that differ (and a missing folder is not silently a fresh start).
///
/// An interrupted run may have left temporary files of killed writers ([`bionpy::stale`]): they
/// do not count as content (a run killed while writing its first file leaves a folder that is
/// empty but for one), and once the checks pass they are removed from the whole folder, so
/// that a resumed run leaves none behind. With `resume`, a folder that exists but is empty in
/// that sense (the earlier run was killed before its `config.toml` was written) starts afresh.
///
/// # Errors
/// [`crate::Error::Data`] naming the folder and, for a resume, the differing keys.
pub fn prepare_results_folder(out: &Path, name: &str, config_toml: &str, resume: bool) -> Result<()> {
    let data_err = |detail: String| crate::error::io_err(out, detail);
    let saved = out.join("config.toml");
    let empty = holds_only_stale_temps(out)?;
    if resume && !(empty && out.is_dir()) {
        let text = std::fs::read_to_string(&saved).map_err(|e| {
            data_err(format!(
                "--resume: no earlier run to continue here ({}: {e})",
                saved.display()
            ))
        })?;
        let header = format!("# cargo xtask reproduce {name}");
        if let Some(first) = text
            .lines()
            .next()
            .filter(|l| l.starts_with("# cargo xtask reproduce "))
        {
            if first.trim() != header {
                return Err(data_err(format!(
                    "--resume: {} was written by `{}`, not `reproduce {name}`",
                    saved.display(),
                    first.trim_start_matches("# cargo xtask ").trim()
                )));
            }
        }
        let differing = differing_keys(&text, config_toml).map_err(|e| {
            data_err(format!(
                "--resume: {}: not a config.toml of this project: {e}",
                saved.display()
            ))
        })?;
        if !differing.is_empty() {
            return Err(data_err(format!(
                "--resume: the settings differ from the saved config.toml in {} (resume with the same \
                 settings, or start a new --out)",
                differing.join(", ")
            )));
        }
    } else if !resume && !empty {
        return Err(data_err(
            "results folder is not empty: pass --resume to continue its runs, or choose another --out \
             (a finished run is never overwritten)"
                .to_string(),
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| data_err(e.to_string()))?;
    bionpy::remove_stale_temps(out)?;
    // A resume leaves config.toml (same settings, checked above) and env.txt (the environment
    // the run started in) as they are: a resume that then fails on a damaged checkpoint must
    // not have changed the folder.
    if resume && saved.is_file() {
        return Ok(());
    }
    write_text(&saved, &format!("# cargo xtask reproduce {name}\n{config_toml}"))?;
    write_text(&out.join("env.txt"), &env_report())
}

/// Whether `out` is missing, or holds nothing but temporary files of dead writers
/// ([`bionpy::stale`]).
fn holds_only_stale_temps(out: &Path) -> Result<bool> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(true);
    };
    for entry in entries {
        let entry = entry.map_err(|e| crate::error::io_err(out, e))?;
        if !bionpy::stale::is_stale_temp(&entry.path()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The keys (dotted paths) whose values differ between two TOML documents, sorted: how
/// [`prepare_results_folder`] compares a saved `config.toml` (`a`, read back on `--resume`) with
/// the settings of the run (`b`).
///
/// # Errors
/// Either text is not a TOML document.
pub fn differing_keys(a: &str, b: &str) -> std::result::Result<Vec<String>, toml::de::Error> {
    fn walk(prefix: &str, a: Option<&toml::Value>, b: Option<&toml::Value>, out: &mut Vec<String>) {
        match (a, b) {
            (Some(toml::Value::Table(ta)), Some(toml::Value::Table(tb))) => {
                let keys: std::collections::BTreeSet<&String> = ta.keys().chain(tb.keys()).collect();
                for k in keys {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, ta.get(k), tb.get(k), out);
                }
            }
            (x, y) if x != y => out.push(prefix.to_string()),
            _ => {}
        }
    }
    let a: toml::Value = toml::Value::Table(toml::from_str(a)?);
    let b: toml::Value = toml::Value::Table(toml::from_str(b)?);
    let mut out = Vec::new();
    walk("", Some(&a), Some(&b), &mut out);
    Ok(out)
}

/// Mean and (population) standard deviation per epoch of `f` over the runs, up to the shortest
/// run (`ragged` false) or, over the runs that reached each epoch, up to the longest (`ragged`
/// true: runs stopped early end at different epochs).
fn epoch_stats(runs: &[Vec<EpochRecord>], f: impl Fn(&EpochRecord) -> f64, ragged: bool) -> Vec<(f64, f64, f64)> {
    let lens = runs.iter().map(Vec::len);
    let epochs = if ragged { lens.max() } else { lens.min() }.unwrap_or(0);
    (0..epochs)
        .map(|e| {
            let v: Vec<f64> = runs.iter().filter_map(|r| r.get(e)).map(&f).collect();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            ((e + 1) as f64, m, s)
        })
        .collect()
}

type EpochMetric = fn(&EpochRecord) -> f64;

/// The plotted series of every setting: validation (solid, ±std band) and training (dashed)
/// curves of one metric; returns them with the last epoch plotted.
fn setting_series(
    results: &[SettingResult],
    train_f: EpochMetric,
    val_f: EpochMetric,
    ragged: bool,
) -> (Vec<Series>, f64) {
    let mut series = Vec::new();
    let mut max_epoch = 1.0f64;
    for res in results {
        for (part, f) in [("val", val_f), ("train", train_f)] {
            let ms = epoch_stats(&res.runs, f, ragged);
            max_epoch = max_epoch.max(ms.len() as f64);
            series.push(Series {
                label: format!("{} {part}", res.label),
                points: ms.iter().map(|&(e, m, _)| (e, m)).collect(),
                companion: part == "train",
                reference: false,
                band: if part == "val" {
                    ms.iter().map(|&(e, m, s)| (e, m - s, m + s)).collect()
                } else {
                    Vec::new()
                },
            });
        }
    }
    (series, max_epoch)
}

/// Loss and accuracy curves per setting: validation solid with a ±std band over repeats,
/// training dashed; `<out>/loss.{png,svg}` and `<out>/accuracy.{png,svg}`.
pub fn write_curves(out: &Path, name: &str, results: &[SettingResult]) -> Result<()> {
    let metrics: [(&str, &str, EpochMetric, EpochMetric); 2] = [
        ("loss", "loss", |r| r.train_loss, |r| r.val_loss),
        ("accuracy", "accuracy", |r| r.train_acc, |r| r.val_acc),
    ];
    for (file, y_label, train_f, val_f) in metrics {
        let any_finite = results
            .iter()
            .flat_map(|r| r.runs.iter().flatten())
            .any(|e| val_f(e).is_finite());
        if !any_finite {
            continue;
        }
        let (series, max_epoch) = setting_series(results, train_f, val_f, false);
        let title = format!("{name}: {file} (validation solid, ±std band; training dashed)");
        let plot = LinePlot {
            title: &title,
            x_label: "epoch",
            y_label,
            x_range: (1.0, max_epoch.max(2.0)),
            y_range: (0.0, 1.0),
            series,
        }
        .fit_y();
        write_line_plot(&out.join(file), &plot)?;
    }
    Ok(())
}

/// The curves of one [`crate::jobs::SettingGroup`] of a plan (`results`: its settings), as
/// [`write_curves`] but into `<out>/loss_<group>.{png,svg}` and, for a task with an accuracy,
/// `<out>/accuracy_<group>.{png,svg}`; each epoch's mean and band are over the runs still
/// training at that epoch (runs stopped early end at different epochs).
pub fn write_group_curves(
    out: &Path,
    name: &str,
    group: &crate::jobs::SettingGroup,
    results: &[SettingResult],
) -> Result<()> {
    let mut metrics: Vec<(&str, EpochMetric, EpochMetric)> = vec![("loss", |r| r.train_loss, |r| r.val_loss)];
    if group.accuracy {
        metrics.push(("accuracy", |r| r.train_acc, |r| r.val_acc));
    }
    for (what, train_f, val_f) in metrics {
        let (series, max_epoch) = setting_series(results, train_f, val_f, true);
        let title = format!(
            "{name} {}: {what} (validation solid, ±std band over the runs still training; training dashed)",
            group.name
        );
        let plot = LinePlot {
            title: &title,
            x_label: "epoch",
            y_label: what,
            x_range: (1.0, max_epoch.max(2.0)),
            y_range: (0.0, 1.0),
            series,
        }
        .fit_y();
        write_line_plot(&out.join(format!("{what}_{}", group.name)), &plot)?;
    }
    Ok(())
}

/// Revision, machine, thread count and date, for `env.txt`.
pub fn env_report() -> String {
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    format!(
        "revision: {}\ncpu: {cpu}\nthreads: {}\ndate: {}\n",
        run("git", &["rev-parse", "HEAD"]),
        rayon::current_num_threads(),
        run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
    )
}
