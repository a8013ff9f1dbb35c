//! Bad input on the command line: a one-line error naming the value, exit code 1 or 2, no panic,
//! and every file that existed before the command byte-identical afterwards (issue 16's first
//! cases: sizes that used to overflow or abort, outputs that used to be half-replaced).

use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-bad-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir` with its bytes, sorted.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    v.sort();
    v
}

/// Runs `xtask args` in `dir` and checks the bad-input contract; `names` must appear in stderr.
fn rejects(dir: &Path, args: &[&str], names: &[&str]) {
    let before = snapshot(dir);
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        matches!(o.status.code(), Some(1 | 2)),
        "{args:?}: exit {:?}, {err}",
        o.status
    );
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for n in names {
        assert!(err.contains(n), "{args:?}: the message should name {n:?}: {err}");
    }
    assert_eq!(snapshot(dir), before, "{args:?} changed or left files");
}

#[test]
fn mask_sizes_beyond_the_limit_are_errors() {
    let dir = scratch("mask-size");
    let huge = u64::MAX.to_string();
    rejects(
        &dir,
        &[
            "mask", "--form", "diagonal", "--nx", &huge, "--ny", "4", "--out", "m.npy",
        ],
        &[&huge, "limit"],
    );
    rejects(
        &dir,
        &[
            "mask", "--form", "2d", "--nx", "200000", "--ny", "200000", "--out", "m.npy",
        ],
        &["200000", "limit"],
    );
    rejects(
        &dir,
        &[
            "mask",
            "--form",
            "individual",
            "--nx",
            "16384",
            "--ny",
            "16384",
            "--kernel-size",
            "3",
            "--out",
            "m.npy",
        ],
        &["16384", "limit"],
    );
}

#[test]
fn mask_with_a_bad_png_path_keeps_the_old_npy() {
    let dir = scratch("mask-png");
    let ok = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(&dir)
        .args([
            "mask", "--form", "diagonal", "--nx", "8", "--ny", "8", "--out", "good.npy",
        ])
        .output()
        .unwrap();
    assert!(ok.status.success());
    rejects(
        &dir,
        &[
            "mask",
            "--form",
            "diagonal",
            "--nx",
            "16",
            "--ny",
            "8",
            "--out",
            "good.npy",
            "--png",
            "missing/x.png",
        ],
        &["missing/x.png"],
    );
}

#[test]
fn task_sizes_beyond_the_limit_are_errors() {
    let dir = scratch("task-size");
    let huge = u64::MAX.to_string();
    rejects(
        &dir,
        &["task", "--name", "seq_mem", "--trials", "1000000000000", "--out", "t"],
        &["--trials", "1000000000000"],
    );
    rejects(
        &dir,
        &["task", "--name", "seq_mem", "--pattern-length", &huge, "--out", "t"],
        &["--pattern-length", &huge],
    );
    rejects(
        &dir,
        &["task", "--name", "nback_mem", "--trial-length", &huge, "--out", "t"],
        &["--trial-length", &huge],
    );
    assert!(!dir.join("t").exists(), "no output folder for a rejected task");
}

#[test]
fn task_with_an_unwritable_file_keeps_the_old_set() {
    let dir = scratch("task-partial");
    let gen = |trials: &str| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .current_dir(&dir)
            .args(["task", "--name", "seq_mem", "--trials", trials, "--out", "t"])
            .output()
            .unwrap()
    };
    assert!(gen("4").status.success());
    let before = snapshot(&dir.join("t"));
    // A folder where Y.npy should go: X.npy could be written, Y.npy cannot.
    std::fs::remove_file(dir.join("t").join("Y.npy")).unwrap();
    std::fs::create_dir(dir.join("t").join("Y.npy")).unwrap();
    let o = gen("6");
    assert!(!o.status.success());
    let after = snapshot(&dir.join("t"));
    let x = |s: &[(PathBuf, Vec<u8>)]| s.iter().find(|(p, _)| p.ends_with("X.npy")).map(|(_, b)| b.clone());
    assert_eq!(x(&after), x(&before), "X.npy must not be replaced when Y.npy fails");
    let names: Vec<_> = std::fs::read_dir(dir.join("t"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| !n.to_string_lossy().contains(".tmp-")),
        "temporary files left: {names:?}"
    );
}

#[test]
fn reproduce_refuses_other_experiments_flags_before_writing() {
    let dir = scratch("reproduce-flags");
    rejects(
        &dir,
        &["reproduce", "schizo-mnist", "--base", "vgg16", "--out", "r"],
        &["--base", "bionet"],
    );
    rejects(
        &dir,
        &["reproduce", "schizo-cifar", "--steps", "4", "--out", "r"],
        &["--steps"],
    );
    rejects(
        &dir,
        &["reproduce", "bionet", "--full", "--out", "r"],
        &["--full", "rnn-memory"],
    );
    rejects(&dir, &["reproduce", "nope", "--out", "r"], &["nope"]);
    assert!(!dir.join("r").exists());
}

#[test]
fn perturb_and_mnist_latents_name_the_bad_value() {
    let dir = scratch("perturb");
    image::GrayImage::from_pixel(8, 8, image::Luma([100u8]))
        .save(dir.join("in.png"))
        .unwrap();
    let base = [
        "perturb",
        "--image",
        "in.png",
        "--perturbation",
        "Uniform",
        "--level",
        "1",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> { base.iter().chain(extra).copied().collect() };
    rejects(&dir, &with(&["--mean", "NaN", "--out", "o.png"]), &["--mean", "NaN"]);
    rejects(&dir, &with(&["--mean", "300", "--out", "o.png"]), &["--mean", "300"]);
    rejects(&dir, &with(&["--out", "o.jpg"]), &["--out", "o.jpg", ".png"]);
    // A bad training setting is named before any data is looked for.
    rejects(
        &dir,
        &["mnist-latents", "--batch-size", "0", "--out", "l.npy"],
        &["batch_size", "0"],
    );
    rejects(&dir, &["mnist-latents", "--epochs", "0", "--out", "l.npy"], &["epochs"]);
}
