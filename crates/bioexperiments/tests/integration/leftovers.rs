//! What interrupted runs and bad inputs leave behind: the temporary files of killed writers are
//! cleaned when a run starts or resumes in its folder (`bionpy::stale`), and a command refused
//! for a bad input creates no folder and writes no file.

use crate::common;

use std::path::Path;

use common::snapshot;

use bioexperiments::bionet::{reproduce_bionet, BioNetArgs};
use bioexperiments::common::prepare_results_folder;
use bioexperiments::rnn_runs::{merge_results, plot_loss, run, PlotLossOptions, RunOptions, RunsConfig};
#[cfg(unix)]
use bionpy::stale::{tag_of, temp_file_name};

/// The shipped seconds-long grid: 2 combinations × 2 iterations × 3 epochs.
fn tiny() -> RunsConfig {
    RunsConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/configs/tiny.toml")).unwrap()
}

fn opts(out: &Path) -> RunOptions {
    RunOptions {
        out: Some(out.to_path_buf()),
        progress: false,
        ..RunOptions::default()
    }
}

/// A pid whose process has exited and been reaped.
#[cfg(unix)]
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn touch(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"half-written").unwrap();
}

#[cfg(unix)]
#[test]
fn a_run_killed_while_writing_its_first_file_starts_again_fresh_or_resumed() {
    let dir = tempfile::tempdir().unwrap();
    for resume in [false, true] {
        let out = dir.path().join(format!("resume-{resume}"));
        let stale = out.join(temp_file_name("config.toml", dead_pid()));
        touch(&stale);
        prepare_results_folder(&out, "test", "a = 1\n", resume).unwrap();
        assert!(!stale.exists(), "resume {resume}: the dead writer's file is removed");
        assert!(out.join("config.toml").is_file());
    }
    // A live writer's temporary file (this process's) is content: the folder is not empty, and
    // the file is left alone.
    let busy = dir.path().join("busy");
    let live = busy.join(temp_file_name("config.toml", std::process::id()));
    touch(&live);
    let e = prepare_results_folder(&busy, "test", "a = 1\n", false).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    assert!(live.exists());
    // A missing folder is still no earlier run to resume.
    let e = prepare_results_folder(&dir.path().join("missing"), "test", "a = 1\n", true).unwrap_err();
    assert!(e.to_string().contains("no earlier run"), "{e}");
}

#[cfg(unix)]
#[test]
fn a_rerun_rnn_run_removes_stale_temps_and_the_resume_state_of_finished_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = tiny();
    run(&cfg, &opts(&out)).unwrap();
    let finished = snapshot(&out);
    // What kills leave: a temporary file of a checkpoint write, and the resume state of a run
    // killed after writing its history but before removing that state.
    let ckpt = out.join("0").join("checkpoints");
    let leftovers = [
        ckpt.join(temp_file_name("model_epoch_2_iter_0.npz", dead_pid())),
        ckpt.join("resume_iter_1.npz"),
        ckpt.join("resume_iter_1.json"),
    ];
    for f in &leftovers {
        touch(f);
    }
    let report = run(&cfg, &opts(&out)).unwrap();
    assert_eq!(report.skipped.len(), 4);
    assert_eq!(snapshot(&out), finished, "the folder is as the finished run left it");
}

#[cfg(unix)]
#[test]
fn a_merge_removes_the_work_folder_of_a_killed_merge_only() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    run(&tiny(), &opts(&full)).unwrap();
    let mut live = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let dead_work = dir.path().join(format!(".merged.merging-{}", tag_of(dead_pid())));
    let live_work = dir.path().join(format!(".merged.merging-{}", tag_of(live.id())));
    touch(&dead_work.join("config.toml"));
    touch(&live_work.join("config.toml"));
    merge_results(&[full], &dir.path().join("merged"), false).unwrap();
    live.kill().unwrap();
    live.wait().unwrap();
    assert!(!dead_work.exists(), "a dead merge's work folder is removed");
    assert!(live_work.exists(), "a running merge's work folder is left alone");
}

#[test]
fn plot_loss_checks_every_input_before_creating_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("bio");
    run(&tiny(), &opts(&results)).unwrap();
    let out = dir.path().join("figs");
    let plot = |labels: &[&str], start: usize| {
        let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        let folders = vec![results.clone(); labels.len()];
        plot_loss(&folders, &labels, &out, &PlotLossOptions { start, y_label: None })
    };
    // The last combination unfinished: nothing of the first one may be plotted.
    let arrays = results.join("1").join("validate_loss_all.npy");
    let kept = std::fs::read(&arrays).unwrap();
    std::fs::remove_file(&arrays).unwrap();
    let e = plot(&["bio"], 1).unwrap_err();
    assert!(e.to_string().contains("not all its runs are finished"), "{e}");
    assert!(!out.exists(), "no folder for an unfinished grid");
    std::fs::write(&arrays, kept).unwrap();
    for (labels, start, says) in [
        (&["bio", "bio"][..], 1, "given twice"),
        (&["bio,rand"][..], 1, "comma"),
        (&[""][..], 1, "non-empty"),
        (&["bio"][..], 3, "more than start = 3 epochs"),
    ] {
        let e = plot(labels, start).unwrap_err();
        assert!(e.to_string().contains(says), "{labels:?} start {start}: {e}");
        assert!(!out.exists(), "{labels:?} start {start}: no folder");
    }
    plot(&["bio"], 1).unwrap();
    assert!(out.join("summary.csv").is_file());
}

#[test]
fn bionet_without_its_data_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let opts = common::quick_options(out.clone(), Some(&dir.path().join("nowhere")), 3);
    let args = BioNetArgs {
        smoke: true,
        ..Default::default()
    };
    assert!(reproduce_bionet(&opts, &args).is_err());
    assert!(
        !out.exists(),
        "no folder, config.toml or env.txt for a run that cannot start"
    );
}
