//! Commands refused for a bad input exit with status 1 and leave no folder behind:
//! `reproduce bionet` without its data, `plot-loss` on a grid with unfinished runs.

use std::path::Path;
use std::process::{Command, Output};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).output().unwrap()
}

fn refused_without_leftovers(args: &[&str], out: &Path, says: &str) {
    let o = xtask(args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(stderr.contains(says), "{args:?}: {stderr}");
    assert!(!out.exists(), "{args:?}: {} was created", out.display());
}

#[test]
fn refused_commands_create_no_folder() {
    let root = std::env::temp_dir().join(format!("xtask-leftovers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let s = |p: &Path| p.display().to_string();

    let out = root.join("bionet");
    refused_without_leftovers(
        &[
            "reproduce",
            "bionet",
            "--smoke",
            "--no-progress",
            "--data",
            &s(&root.join("nowhere")),
            "--out",
            &s(&out),
        ],
        &out,
        "nowhere",
    );

    // One epoch of the tiny grid: no combination is finished, so there is nothing to plot.
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/tiny.toml");
    let runs = root.join("runs");
    let o = xtask(&[
        "rnn-run",
        "--config",
        &s(&tiny),
        "--out",
        &s(&runs),
        "--no-progress",
        "--max-epochs",
        "1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let figs = root.join("figs");
    let (runs, figs_arg) = (s(&runs), s(&figs));
    refused_without_leftovers(
        &["plot-loss", "--results", &runs, "--labels", "bio", "--out", &figs_arg],
        &figs,
        "not all its runs are finished",
    );
    refused_without_leftovers(
        &[
            "plot-loss",
            "--results",
            &runs,
            &runs,
            "--labels",
            "bio",
            "bio",
            "--out",
            &figs_arg,
        ],
        &figs,
        "given twice",
    );
    let _ = std::fs::remove_dir_all(&root);
}
