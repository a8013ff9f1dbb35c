//! `merge-results`: joins the results folders of the shards of one sweep into one folder.
//!
//! Every input must hold the same configuration (`config.toml`, compared as parsed values).
//! The finished runs (`<idx>/runs/iter_<it>.csv`) and their parameter files
//! (`<idx>/checkpoints/model_epoch_*_iter_<it>.npz`) are copied; a job found in two inputs is an
//! error ([`Error::Merge`]), and so is a job of the grid found in none, unless partial results
//! are allowed. The per-combination arrays are then written for every complete combination.
//! Everything is written to a sibling work folder renamed into place at the end: a failure
//! leaves no half-merged output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::grid::{combinations, jobs, Job};
use super::layout;
use crate::error::{io_err, Error, Result};

/// What [`merge_results`] did.
#[derive(Debug, Clone)]
pub struct MergeReport {
    /// Jobs copied.
    pub jobs: usize,
    /// Jobs of the grid missing from every input (empty unless partial results were allowed).
    pub missing: Vec<Job>,
    /// Combinations complete in the merged folder.
    pub complete_combinations: usize,
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from).map_err(|e| io_err(from, e))?;
    bionpy::write_atomic(to, &bytes)?;
    Ok(())
}

fn list_jobs(list: &[Job]) -> String {
    let shown: Vec<String> = list
        .iter()
        .take(10)
        .map(|j| format!("({}, {})", j.combination, j.iteration))
        .collect();
    let more = if list.len() > 10 {
        format!(" and {} more", list.len() - 10)
    } else {
        String::new()
    };
    format!("{}{more}", shown.join(", "))
}

/// Merges `inputs` into `out` (which must not exist or be empty).
pub fn merge_results(inputs: &[PathBuf], out: &Path, allow_partial: bool) -> Result<MergeReport> {
    if inputs.is_empty() {
        return Err(Error::Merge {
            detail: "no input folders given".into(),
        });
    }
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(|e| io_err(out, e))?;
        if entries.next().is_some() {
            return Err(io_err(out, "the output folder exists and is not empty"));
        }
    }
    let cfg = layout::read_config(&inputs[0])?;
    let mut reference = cfg.clone();
    reference.paths.path_to_results.clear();
    for input in &inputs[1..] {
        let mut other = layout::read_config(input)?;
        other.paths.path_to_results.clear();
        if other != reference {
            return Err(Error::Merge {
                detail: format!(
                    "{} holds a different configuration from {}; only shards of one sweep can be merged",
                    input.display(),
                    inputs[0].display()
                ),
            });
        }
    }
    let combos = combinations(&cfg);
    let iterations = cfg.trainvalidate.iterations;
    let mut source: BTreeMap<Job, &PathBuf> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for input in inputs {
        for job in layout::finished_jobs(input, combos.len(), iterations)? {
            if let Some(first) = source.insert(job, input) {
                duplicates.push(format!(
                    "({}, {}) in {} and {}",
                    job.combination,
                    job.iteration,
                    first.display(),
                    input.display()
                ));
                source.insert(job, first);
            }
        }
    }
    if !duplicates.is_empty() {
        return Err(Error::Merge {
            detail: format!(
                "{} job(s) (combination, iteration) appear in more than one input: {}",
                duplicates.len(),
                duplicates.join("; ")
            ),
        });
    }
    let missing: Vec<Job> = jobs(combos.len(), iterations)
        .into_iter()
        .filter(|j| !source.contains_key(j))
        .collect();
    if !missing.is_empty() && !allow_partial {
        return Err(Error::Merge {
            detail: format!(
                "{} of {} job(s) (combination, iteration) are in no input: {} (pass --allow-partial to merge anyway)",
                missing.len(),
                combos.len() * iterations,
                list_jobs(&missing)
            ),
        });
    }
    // Everything is written to a sibling work folder that is renamed into place when complete:
    // a malformed run file found half-way leaves no half-merged `out` that a retry would refuse.
    let work = work_folder(out)?;
    let merged = write_merged(&work, &cfg, &combos, &source);
    let complete = rename_work_folder(&work, out, merged)?;
    Ok(MergeReport {
        jobs: source.len(),
        missing,
        complete_combinations: complete,
    })
}

/// A fresh sibling work folder for the merge into `out` (`.<name>.merging-<process tag>`),
/// after removing those of merges killed before their rename.
pub(crate) fn work_folder(out: &Path) -> Result<PathBuf> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "merged".into());
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let work_prefix = format!(".{name}.merging-");
    remove_dead_work_folders(parent, &work_prefix)?;
    Ok(parent.join(format!("{work_prefix}{}", bionpy::stale::process_tag())))
}

/// Renames the work folder of a successful merge (`merged` is `Ok`) to `out` (an empty `out`
/// is replaced); removes it when the merge or the rename failed.
pub(crate) fn rename_work_folder<T>(work: &Path, out: &Path, merged: Result<T>) -> Result<T> {
    let renamed = merged.and_then(|value| {
        if out.exists() {
            std::fs::remove_dir(out).map_err(|e| io_err(out, e))?;
        }
        std::fs::rename(work, out).map_err(|e| io_err(out, e))?;
        Ok(value)
    });
    if renamed.is_err() {
        let _ = std::fs::remove_dir_all(work);
    }
    renamed
}

/// Removes the work folders `<parent>/<prefix><tag>` of merges killed before their rename (their
/// tag names a process of this machine that is no longer alive, [`bionpy::stale`]); those of
/// running merges, and of merges on other machines, are left alone.
fn remove_dead_work_folders(parent: &Path, prefix: &str) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        // A parent that cannot be listed fails below, when the work folder is created.
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_err(parent, e))?;
        let dead = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .is_some_and(bionpy::stale::tag_is_dead);
        if dead && entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(entry.path()).map_err(|e| io_err(&entry.path(), e))?;
        }
    }
    Ok(())
}

/// Writes the merged folder `out` (the work folder of [`merge_results`]): the index, every
/// job's run file and parameter files, and the arrays of the complete combinations, whose
/// number it returns.
fn write_merged(
    out: &Path,
    cfg: &super::RunsConfig,
    combos: &[super::Combination],
    source: &BTreeMap<Job, &PathBuf>,
) -> Result<usize> {
    layout::write_index(out, cfg, combos)?;
    for (job, input) in source {
        let dst_runs = layout::combination_dir(out, job.combination).join("runs");
        layout::create_dir(&dst_runs)?;
        copy_file(&layout::run_file(input, *job), &layout::run_file(out, *job))?;
        let src_ckpt = layout::checkpoint_dir(input, job.combination);
        if src_ckpt.is_dir() {
            let suffix = format!("_iter_{}.npz", job.iteration);
            let dst_ckpt = layout::checkpoint_dir(out, job.combination);
            for entry in std::fs::read_dir(&src_ckpt).map_err(|e| io_err(&src_ckpt, e))? {
                let entry = entry.map_err(|e| io_err(&src_ckpt, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("model_epoch_") && name.ends_with(&suffix) {
                    layout::create_dir(&dst_ckpt)?;
                    copy_file(&entry.path(), &dst_ckpt.join(&name))?;
                }
            }
        }
    }
    layout::write_combination_arrays(out, cfg, combos)
}
