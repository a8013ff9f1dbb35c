//! The (setting, repeat) jobs of a reproduction: one file per finished job, shards, resume,
//! the finished folder written from the job files, and the merge of shard folders.
//!
//! A reproduction is `settings × repeats` jobs, setting-major: job `j` is setting
//! `j / repeats`, repeat `j % repeats`, and repeat `k` of every setting trains from seed
//! `seed + k` (so the runs of two settings are paired by their seed). Shard `i/n` runs the jobs
//! with `j mod n = i` ([`Shard`], as `rnn-run`), and every job depends only on its own seed, so
//! a job gives the same numbers in any shard. Jobs that cannot use every core on their own run
//! several at a time ([`run_jobs_concurrent`], one rayon pool per worker); since no
//! computation depends on the thread count, a job gives the same bytes there too.
//!
//! Folder layout (next to `config.toml` and `env.txt` of [`crate::common`]):
//!
//! ```text
//! OUT/plan.toml              what the summary needs: settings, repeats, description, claims
//! OUT/runs/s<SS>_r<RRR>.csv   one finished job: setting, repeat, density, epoch, losses and
//!                             accuracies at full precision (shortest round-trip decimals)
//! OUT/history.csv, summary.md, stats.csv, comparisons.csv, loss.{png,svg}, accuracy.{png,svg}
//!                             written by `finish` once every job's file is in the folder (a
//!                             plan with setting groups: loss_<group>.{png,svg}, accuracy_<group>…)
//! ```
//!
//! A job's file is written (atomically) when the job ends, so `--resume` skips finished jobs;
//! a job interrupted mid-run continues from its own checkpoint where the target keeps one (the
//! image sweeps, per epoch). The finished outputs are always made from the job files read
//! back, never from numbers in memory, so an unsharded run and the merge of its shards
//! ([`merge_reproduce`]) write the same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use biotasks::fit::{history_csv, EpochRecord};
use serde::{Deserialize, Serialize};

use biotasks::early_stopping::EarlyStopping;

use crate::claims::{summary_markdown, write_statistics, Claim, Metric};
use crate::common::{write_curves, write_group_curves, write_text, SettingResult};
use crate::error::{io_err, Error, Result};
use crate::rnn_runs::Shard;

/// What the finished summary of a reproduction needs besides the job files; written to
/// `plan.toml` by every shard (the same bytes for the same settings and data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The experiment, e.g. `rnn-memory`.
    pub name: String,
    /// One paragraph: model, data, optimiser, sizes.
    pub description: String,
    /// What differs from the paper or may mislead.
    pub caveat: String,
    /// Setting labels in order.
    pub settings: Vec<String>,
    /// Repeats per setting.
    pub repeats: usize,
    /// Whether the task has an accuracy (false: a regression, accuracy columns left out).
    pub accuracy: bool,
    /// The metrics of the statistics, in order, and of a per-run table in `summary.md` (empty:
    /// [`Metric::all`] of `accuracy` and no per-run table).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// The comparisons the paper's claims make.
    pub claims: Vec<Claim>,
    /// Settings reported and plotted apart, e.g. one task of several (empty: one group of every
    /// setting, with `accuracy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<SettingGroup>,
    /// The early stopping every job trained under (`None`: a fixed number of epochs); the
    /// summary then says per run where and why it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStopping>,
}

/// Settings of a [`Plan`] that are reported and plotted together, apart from the others: their
/// verdicts, statistics table and curves (`loss_<name>.{png,svg}`, `accuracy_<name>.{png,svg}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingGroup {
    /// A name without spaces (file names), e.g. `seq_mem`.
    pub name: String,
    /// Its settings (labels of [`Plan::settings`]).
    pub settings: Vec<String>,
    /// Whether its task has an accuracy (false: a regression, accuracy metrics left out).
    pub accuracy: bool,
}

impl Plan {
    /// Every job of the plan, setting-major.
    pub fn jobs(&self) -> Vec<JobId> {
        (0..self.settings.len())
            .flat_map(|setting| (0..self.repeats).map(move |repeat| JobId { setting, repeat }))
            .collect()
    }

    /// The group of `setting` (`None` for a plan without groups).
    pub fn group_of(&self, setting: &str) -> Option<&SettingGroup> {
        self.groups.iter().find(|g| g.settings.iter().any(|s| s == setting))
    }

    /// The metrics reported for `setting`: [`Plan::metrics`] (or [`Metric::all`]) without the
    /// accuracy metrics where its task has no accuracy.
    pub fn metrics_of(&self, setting: &str) -> Vec<Metric> {
        let base: &[Metric] = if self.metrics.is_empty() {
            Metric::all(self.accuracy)
        } else {
            &self.metrics
        };
        let accuracy = self.group_of(setting).map_or(self.accuracy, |g| g.accuracy);
        base.iter().copied().filter(|m| accuracy || !m.is_accuracy()).collect()
    }
}

/// One (setting, repeat) job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct JobId {
    /// Index into [`Plan::settings`].
    pub setting: usize,
    /// Repeat (seed offset).
    pub repeat: usize,
}

impl JobId {
    fn file_name(&self) -> String {
        format!("s{:02}_r{:03}.csv", self.setting, self.repeat)
    }
}

/// A finished job: the density of its masked layer and its per-epoch history.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    /// Fraction of the masked layer's weights kept.
    pub density: f64,
    /// One record per epoch.
    pub history: Vec<EpochRecord>,
}

const JOB_HEADER: &str = "setting,repeat,density,epoch,train_loss,train_acc,val_loss,val_acc";

fn job_path(out: &Path, job: JobId) -> PathBuf {
    out.join("runs").join(job.file_name())
}

fn job_csv(label: &str, job: JobId, r: &JobResult) -> String {
    let mut s = format!("{JOB_HEADER}\n");
    for e in &r.history {
        // `{}` of an f64 is its shortest round-trip decimal: the file reads back to the same bits.
        s.push_str(&format!(
            "{label},{},{},{},{},{},{},{}\n",
            job.repeat, r.density, e.epoch, e.train_loss, e.train_acc, e.val_loss, e.val_acc
        ));
    }
    s
}

fn parse_job(path: &Path, text: &str, label: &str, job: JobId) -> Result<JobResult> {
    let bad = |line: usize, detail: String| io_err(path, format!("line {line}: {detail}"));
    let mut lines = text.lines();
    if lines.next() != Some(JOB_HEADER) {
        return Err(bad(1, format!("expected the header `{JOB_HEADER}`")));
    }
    let mut density = f64::NAN;
    let mut history = Vec::new();
    for (k, line) in lines.enumerate() {
        let n = k + 2;
        // The label may hold any character but a newline: split the 7 numbers off the right.
        let fields: Vec<&str> = line.rsplitn(8, ',').collect();
        if fields.len() != 8 {
            return Err(bad(n, "expected 8 comma-separated fields".into()));
        }
        if fields[7] != label || fields[6] != job.repeat.to_string() {
            return Err(bad(
                n,
                format!(
                    "holds setting `{}` repeat {}, its name says `{label}` repeat {}",
                    fields[7], fields[6], job.repeat
                ),
            ));
        }
        let num = |i: usize| -> Result<f64> {
            fields[i]
                .parse::<f64>()
                .map_err(|_| bad(n, format!("`{}` is not a number", fields[i])))
        };
        density = num(5)?;
        let epoch = fields[4]
            .parse::<usize>()
            .ok()
            .filter(|&e| e == history.len() + 1)
            .ok_or_else(|| bad(n, format!("epoch `{}`, expected {}", fields[4], history.len() + 1)))?;
        history.push(EpochRecord {
            epoch,
            train_loss: num(3)?,
            train_acc: num(2)?,
            val_loss: num(1)?,
            val_acc: num(0)?,
        });
    }
    if history.is_empty() {
        return Err(bad(2, "no epochs".into()));
    }
    Ok(JobResult { density, history })
}

/// Reads the job's file; `None` when it is not there yet.
fn read_job(out: &Path, plan: &Plan, job: JobId) -> Result<Option<JobResult>> {
    let path = job_path(out, job);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_job(&path, &text, &plan.settings[job.setting], job).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path, e)),
    }
}

fn write_plan(out: &Path, plan: &Plan) -> Result<()> {
    let path = out.join("plan.toml");
    let text = crate::common::toml_of(plan)?;
    match std::fs::read_to_string(&path) {
        Ok(saved) if saved == text => Ok(()),
        Ok(_) => Err(io_err(
            &path,
            "--resume: the plan of this run (settings, description, claims) differs from the saved one; \
             the data or the code changed since the folder was started (start a new --out)",
        )),
        Err(_) => write_text(&path, &text),
    }
}

fn read_plan(dir: &Path) -> Result<Plan> {
    let path = dir.join("plan.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
    toml::from_str(&text).map_err(|e| io_err(&path, e))
}

/// What [`run_jobs`] did in this call.
#[derive(Debug, Clone, Default)]
pub struct JobsReport {
    /// Jobs trained now.
    pub ran: usize,
    /// Jobs of this shard already finished in the folder (resume).
    pub skipped: usize,
    /// Jobs of the whole plan not yet in the folder (other shards'); 0 when the summary was written.
    pub missing: usize,
}

/// Runs the jobs of `shard` that are not finished in `out` yet (the folder was prepared by
/// [`crate::common::prepare_results_folder`]), writing each job's file as it ends; when every
/// job of the plan is then in the folder, writes the finished outputs ([`finish`]). Returns the
/// results of the jobs in the folder (all of them when finished) and what was done.
pub(crate) fn run_jobs(
    out: &Path,
    plan: &Plan,
    shard: Shard,
    mut run_job: impl FnMut(JobId) -> Result<JobResult>,
) -> Result<(Vec<SettingResult>, JobsReport)> {
    let (pending, mut report) = pending_jobs(out, plan, shard)?;
    for job in pending {
        let result = run_job(job)?;
        write_job(out, plan, job, &result)?;
        report.ran += 1;
    }
    finish_if_complete(out, plan, report)
}

/// [`run_jobs`] with up to [`concurrency`] jobs at a time, for jobs that cannot use every
/// core of the current rayon pool on their own (the RNN runs: 128 × 220 products do not scale
/// to two threads). Each worker runs its jobs in its own rayon pool of `threads / workers`
/// threads and writes each job's file when the job ends, in whatever order they finish; the
/// finished outputs are made from the files read back afterwards, in job order.
///
/// Every computation of the workspace gives the same bits for any number of threads (fixed
/// partitions, fixed reduction order; see `biokernels::gemm` and `bioautograd`), so a job's
/// file is byte-identical whether it ran alone on every thread or next to others on one.
/// After a failed job no further job is started; the jobs already running finish and keep
/// their files (a `--resume` continues from them), and the error of the earliest failed job
/// (in job order) is returned.
pub(crate) fn run_jobs_concurrent(
    out: &Path,
    plan: &Plan,
    shard: Shard,
    run_job: impl Fn(JobId) -> Result<JobResult> + Sync,
) -> Result<(Vec<SettingResult>, JobsReport)> {
    let (pending, mut report) = pending_jobs(out, plan, shard)?;
    let threads = rayon::current_num_threads();
    let workers = concurrency(threads, pending.len());
    if workers <= 1 {
        for &job in &pending {
            write_job(out, plan, job, &run_job(job)?)?;
            report.ran += 1;
        }
        return finish_if_complete(out, plan, report);
    }
    let per_worker = threads / workers;
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let worker = || -> WorkerOutcome {
        let pool = match rayon::ThreadPoolBuilder::new().num_threads(per_worker).build() {
            Ok(p) => p,
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                let detail = format!("a rayon pool of {per_worker} thread(s) could not be built: {e}");
                return (0, Some((0, Error::Workers { detail })));
            }
        };
        let mut ran = 0;
        while !stop.load(Ordering::SeqCst) {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(&job) = pending.get(i) else { break };
            match pool
                .install(|| run_job(job))
                .and_then(|r| write_job(out, plan, job, &r))
            {
                Ok(()) => ran += 1,
                Err(e) => {
                    stop.store(true, Ordering::SeqCst);
                    return (ran, Some((i, e)));
                }
            }
        }
        (ran, None)
    };
    let outcomes: Vec<std::thread::Result<WorkerOutcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers).map(|_| s.spawn(worker)).collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let mut first_error: Option<(usize, Error)> = None;
    for outcome in outcomes {
        let (ran, err) = outcome.map_err(|_| Error::Workers {
            detail: "a worker thread panicked".into(),
        })?;
        report.ran += ran;
        if let Some((i, e)) = err {
            if first_error.as_ref().is_none_or(|(j, _)| i < *j) {
                first_error = Some((i, e));
            }
        }
    }
    if let Some((_, e)) = first_error {
        return Err(e);
    }
    finish_if_complete(out, plan, report)
}

/// What a worker of [`run_jobs_concurrent`] did: jobs finished, and its failed job (index
/// into the pending jobs) with the error.
type WorkerOutcome = (usize, Option<(usize, Error)>);

/// How many jobs [`run_jobs_concurrent`] runs at once on `threads` threads: one per thread,
/// at most one per job (so each job gets `threads / workers >= 1` threads).
pub fn concurrency(threads: usize, jobs: usize) -> usize {
    threads.min(jobs).max(1)
}

/// Writes the plan and returns the jobs of `shard` not yet in the folder (in job order), with
/// the finished ones counted as skipped.
fn pending_jobs(out: &Path, plan: &Plan, shard: Shard) -> Result<(Vec<JobId>, JobsReport)> {
    write_plan(out, plan)?;
    let mut report = JobsReport::default();
    let mut pending = Vec::new();
    for job in shard.select_items(&plan.jobs()) {
        if read_job(out, plan, job)?.is_some() {
            report.skipped += 1;
        } else {
            pending.push(job);
        }
    }
    Ok((pending, report))
}

/// Writes one finished job's file (atomically: a reader never sees half of it).
fn write_job(out: &Path, plan: &Plan, job: JobId, result: &JobResult) -> Result<()> {
    write_text(&job_path(out, job), &job_csv(&plan.settings[job.setting], job, result))
}

/// Reads every job file back and, when none is missing, writes the finished outputs.
fn finish_if_complete(out: &Path, plan: &Plan, mut report: JobsReport) -> Result<(Vec<SettingResult>, JobsReport)> {
    let (results, missing) = collect(out, plan)?;
    report.missing = missing.len();
    if missing.is_empty() {
        finish(out, plan, &results)?;
    }
    Ok((results, report))
}

/// The results of the jobs found in `out` (settings without a finished job are left out) and
/// the jobs not found.
fn collect(out: &Path, plan: &Plan) -> Result<(Vec<SettingResult>, Vec<JobId>)> {
    let mut results: Vec<SettingResult> = Vec::new();
    let mut missing = Vec::new();
    for (setting, label) in plan.settings.iter().enumerate() {
        let mut runs = Vec::new();
        let mut density = f64::NAN;
        for repeat in 0..plan.repeats {
            let job = JobId { setting, repeat };
            match read_job(out, plan, job)? {
                Some(r) => {
                    density = r.density;
                    runs.push(r.history);
                }
                None => missing.push(job),
            }
        }
        if !runs.is_empty() {
            results.push(SettingResult {
                label: label.clone(),
                density,
                runs,
            });
        }
    }
    Ok((results, missing))
}

/// Writes `history.csv`, the curves, `summary.md`, `stats.csv` and `comparisons.csv` of a
/// folder holding every job of `plan`.
fn finish(out: &Path, plan: &Plan, results: &[SettingResult]) -> Result<()> {
    let rows: Vec<(String, usize, EpochRecord)> = results
        .iter()
        .flat_map(|r| {
            r.runs
                .iter()
                .enumerate()
                .flat_map(move |(k, h)| h.iter().map(move |e| (r.label.clone(), k, *e)))
        })
        .collect();
    write_text(&out.join("history.csv"), &history_csv(&rows))?;
    if plan.groups.is_empty() {
        write_curves(out, &plan.name, results)?;
    } else {
        for g in &plan.groups {
            let members: Vec<SettingResult> = results
                .iter()
                .filter(|r| g.settings.contains(&r.label))
                .cloned()
                .collect();
            write_group_curves(out, &plan.name, g, &members)?;
        }
    }
    write_statistics(out, plan, results)?;
    write_text(&out.join("summary.md"), &summary_markdown(plan, results))
}

/// What [`merge_reproduce`] did.
#[derive(Debug, Clone)]
pub struct MergeReproduceReport {
    /// The experiment.
    pub name: String,
    /// Jobs copied.
    pub jobs: usize,
}

/// Whether `dir` is a results folder of `cargo xtask reproduce` (its `config.toml` starts with
/// `# cargo xtask reproduce `), as opposed to one of `rnn-run`.
pub fn is_reproduce_folder(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("config.toml"))
        .map(|t| t.starts_with("# cargo xtask reproduce "))
        .unwrap_or(false)
}

/// Joins the folders of the shards of one `cargo xtask reproduce` run into `out` (which must
/// not exist or be empty) and writes the finished outputs: the same bytes as the run unsharded
/// (`env.txt` is the first input's). Every input must hold the same `config.toml` and
/// `plan.toml`; a job found in two inputs, and a job found in none, is an [`Error::Merge`].
/// Everything is written into a sibling work folder renamed into place at the end.
pub fn merge_reproduce(inputs: &[PathBuf], out: &Path) -> Result<MergeReproduceReport> {
    let merge_err = |detail: String| Error::Merge { detail };
    let first = inputs
        .first()
        .ok_or_else(|| merge_err("no input folders given".into()))?;
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(io_err(out, "the output folder exists and is not empty"));
    }
    let read = |dir: &Path, file: &str| -> Result<String> {
        let p = dir.join(file);
        std::fs::read_to_string(&p).map_err(|e| io_err(&p, e))
    };
    let config = read(first, "config.toml")?;
    let plan = read_plan(first)?;
    for input in &inputs[1..] {
        if !is_reproduce_folder(input) || read(input, "config.toml")? != config || read_plan(input)? != plan {
            return Err(merge_err(format!(
                "{} holds another run than {} (config.toml or plan.toml differ); only shards of one run can be merged",
                input.display(),
                first.display()
            )));
        }
    }
    let mut source: BTreeMap<JobId, &PathBuf> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for input in inputs {
        for job in plan.jobs() {
            if job_path(input, job).is_file() {
                if let Some(earlier) = source.insert(job, input) {
                    duplicates.push(format!(
                        "{} (in {} and {})",
                        job_label(&plan, job),
                        earlier.display(),
                        input.display()
                    ));
                }
            }
        }
    }
    if !duplicates.is_empty() {
        return Err(merge_err(format!(
            "job(s) in more than one input: {}",
            duplicates.join("; ")
        )));
    }
    let missing: Vec<String> = plan
        .jobs()
        .into_iter()
        .filter(|j| !source.contains_key(j))
        .map(|j| job_label(&plan, j))
        .collect();
    if !missing.is_empty() {
        return Err(merge_err(format!(
            "{} of {} job(s) are in no input: {} (run the missing shards, or --resume the unfinished ones)",
            missing.len(),
            plan.jobs().len(),
            missing.join(", ")
        )));
    }
    let work = crate::rnn_runs::merge::work_folder(out)?;
    let merged = (|| -> Result<()> {
        std::fs::create_dir_all(work.join("runs")).map_err(|e| io_err(&work, e))?;
        for file in ["config.toml", "env.txt", "plan.toml"] {
            write_text(&work.join(file), &read(first, file)?)?;
        }
        for (job, input) in &source {
            write_text(&job_path(&work, *job), &read(&input.join("runs"), &job.file_name())?)?;
        }
        let (results, _) = collect(&work, &plan)?;
        finish(&work, &plan, &results)
    })();
    crate::rnn_runs::merge::rename_work_folder(&work, out, merged)?;
    Ok(MergeReproduceReport {
        name: plan.name,
        jobs: source.len(),
    })
}

fn job_label(plan: &Plan, job: JobId) -> String {
    format!("{} repeat {}", plan.settings[job.setting], job.repeat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_file_reads_back_to_the_same_bits() {
        let r = JobResult {
            density: 0.500283,
            history: vec![
                EpochRecord {
                    epoch: 1,
                    train_loss: 0.1 + 0.2,
                    train_acc: f64::NAN,
                    val_loss: 1e-300,
                    val_acc: 0.95,
                },
                EpochRecord {
                    epoch: 2,
                    train_loss: f64::INFINITY,
                    train_acc: 0.5,
                    val_loss: f64::NAN,
                    val_acc: 1.0 / 3.0,
                },
            ],
        };
        let job = JobId { setting: 1, repeat: 2 };
        let text = job_csv("r=0.5,odd", job, &r);
        let back = parse_job(Path::new("x.csv"), &text, "r=0.5,odd", job).unwrap();
        assert_eq!(format!("{back:?}"), format!("{r:?}"));
        let e = parse_job(Path::new("x.csv"), &text, "dense", job).unwrap_err();
        assert!(e.to_string().contains("dense"), "{e}");
        let e = parse_job(Path::new("x.csv"), &text.replace(",2,", ",3,"), "r=0.5,odd", job).unwrap_err();
        assert!(
            e.to_string().contains("line 2") || e.to_string().contains("line 3"),
            "{e}"
        );
    }
}
