//! Bit-identity regression test: tiny settings of `reproduce rnn-memory`, `reproduce
//! schizo-mnist` and `rnn-run` rerun through today's code and compared byte for byte (`.npy`:
//! exact f64 equality) with outputs of the code before the `bioexperiments` refactor.
//!
//! How the goldens in `tests/golden/` were made, at commit `8addd37` (the last commit before
//! the refactor, when the experiments lived in `biotasks`):
//!
//! * `rnn-memory-tiny/history.csv` and `rnn-memory-tiny-full.txt`:
//!   `biotasks::rnn_memory::run(&ReproduceOptions { quick: true, data: None, out, resume: false,
//!   progress: false, seed: 3 }, &RnnMemoryConfig { trials: 20, epochs: 3, runs: 2,
//!   neurons_per_region: 1, ..RnnMemoryConfig::new(false, 3) })`; the `.txt` has one line per
//!   epoch, runs in order (bio runs, then random), `format!("{:?} {:?} {:?} {:?}", e.train_loss,
//!   e.val_loss, e.train_acc, e.val_acc)`.
//! * `schizo-mnist-tiny/history.csv` and `schizo-mnist-tiny-full.txt`:
//!   `biotasks::reproduce::schizo_mnist` with `quick: true, seed: 1`, data = the tiny IDX files
//!   of [`common::write_fake_mnist`] (train 60, t10k 30), same `.txt` format.
//! * `rnn-run-tiny/` and `rnn-run-tiny_rand/`: `xtask rnn-run --config xtask/configs/tiny.toml`
//!   (and `tiny_rand.toml`) `--out …`: the config, index, combination and history CSVs, the run
//!   CSVs, the `.npy` arrays and the parameter files of the last epoch.

use crate::common;

use std::path::{Path, PathBuf};

use bioexperiments::rnn_memory::run as rnn_memory;
use bioexperiments::rnn_runs::{run as rnn_run, RunOptions, RunsConfig};
use bioexperiments::schizo_mnist::schizo_mnist;
use bioexperiments::SettingResult;

fn golden(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(rel)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The full-precision `.txt` of the goldens: one line per epoch, runs in order.
fn full_precision(results: &[SettingResult]) -> String {
    let mut s = String::new();
    for r in results {
        for run in &r.runs {
            for e in run {
                s.push_str(&format!(
                    "{:?} {:?} {:?} {:?}\n",
                    e.train_loss, e.val_loss, e.train_acc, e.val_acc
                ));
            }
        }
    }
    s
}

fn assert_same_text(got: &str, golden_file: &str) {
    let want = String::from_utf8(read(&golden(golden_file))).unwrap();
    assert_eq!(got, want, "{golden_file} differs from the pre-refactor output");
}

#[test]
fn rnn_memory_tiny_is_bit_identical() {
    let out = tempfile::tempdir().unwrap();
    // quick: true, data: None, resume: false, progress: false, seed: 3; trials: 20, epochs: 3,
    // runs: 2, neurons_per_region: 1, ..RnnMemoryConfig::new(false, 3).
    let opts = common::quick_options(out.path().join("rnn-memory-tiny"), None, 3);
    let results = rnn_memory(&opts, &common::tiny_rnn_memory(2)).unwrap();
    assert_same_text(&full_precision(&results), "rnn-memory-tiny-full.txt");
    let history = String::from_utf8(read(&opts.out.join("history.csv"))).unwrap();
    assert_same_text(&history, "rnn-memory-tiny/history.csv");
}

#[test]
fn schizo_mnist_tiny_is_bit_identical() {
    let data = tempfile::tempdir().unwrap();
    common::write_fake_mnist(data.path());
    let out = tempfile::tempdir().unwrap();
    let opts = common::quick_options(out.path().join("schizo-mnist-tiny"), Some(data.path()), 1);
    let results = schizo_mnist(&opts).unwrap();
    assert_same_text(&full_precision(&results), "schizo-mnist-tiny-full.txt");
    let history = String::from_utf8(read(&opts.out.join("history.csv"))).unwrap();
    assert_same_text(&history, "schizo-mnist-tiny/history.csv");
}

fn rnn_run_matches(config: &str, golden_dir: &str) {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/configs");
    let cfg = RunsConfig::load(&configs.join(config)).unwrap();
    let out = tempfile::tempdir().unwrap();
    let report = rnn_run(
        &cfg,
        &RunOptions {
            out: Some(out.path().to_path_buf()),
            progress: false,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(report.ran.len(), 4);
    let want_dir = golden(golden_dir);
    let files: Vec<_> = common::snapshot(&want_dir).into_keys().collect();
    assert!(files.len() >= 20, "{golden_dir}: only {} golden files", files.len());
    for rel in files {
        let (want, got) = (want_dir.join(&rel), out.path().join(&rel));
        if rel.extension().is_some_and(|e| e == "npy") {
            let w = bionpy::read_npy::<f64>(&want).unwrap();
            let g = bionpy::read_npy::<f64>(&got).unwrap();
            assert_eq!(g.shape, w.shape, "{}", rel.display());
            // Exact f64 equality, NaN (the accuracy of seq_mem) equal to NaN.
            let same = g.data.iter().zip(&w.data).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "{golden_dir}/{} differs: {:?} vs {:?}",
                rel.display(),
                g.data,
                w.data
            );
        } else {
            assert!(read(&got) == read(&want), "{golden_dir}/{} differs", rel.display());
        }
    }
}

#[test]
fn rnn_run_tiny_is_bit_identical() {
    rnn_run_matches("tiny.toml", "rnn-run-tiny");
}

#[test]
fn rnn_run_tiny_rand_is_bit_identical() {
    rnn_run_matches("tiny_rand.toml", "rnn-run-tiny_rand");
}
