//! Helpers shared by the integration tests.

#![allow(dead_code)] // each test file uses a part

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bioexperiments::rnn_memory::RnnMemoryConfig;
use bioexperiments::{Preset, ReproduceOptions, SettingResult};

/// The host emulator of the device backend (`--device emulator`).
pub const EMULATOR: bioautograd::Device = bioautograd::Device::Cuda(bioautograd::cuda::EMULATOR);

/// Asserts that a run on a device gave the host run's histories: the same settings, runs and
/// epochs, every loss within `1e-4` relative and every accuracy within `1e-4·max(|acc|, 1)`
/// (NaN where the host has NaN).
pub fn assert_same_histories(host: &[SettingResult], device: &[SettingResult]) {
    assert_eq!(host.len(), device.len());
    for (h, d) in host.iter().zip(device) {
        assert_eq!(h.runs.len(), d.runs.len(), "{}", h.label);
        for (hr, dr) in h.runs.iter().zip(&d.runs) {
            assert_eq!(hr.len(), dr.len(), "{}: epochs", h.label);
            for (a, b) in hr.iter().zip(dr) {
                for (x, y, scale) in [
                    (a.train_loss, b.train_loss, a.train_loss.abs()),
                    (a.val_loss, b.val_loss, a.val_loss.abs()),
                    (a.train_acc, b.train_acc, a.train_acc.abs().max(1.0)),
                    (a.val_acc, b.val_acc, a.val_acc.abs().max(1.0)),
                ] {
                    let same = (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-4 * scale;
                    assert!(same, "{}: host {a:?} device {b:?}", h.label);
                }
            }
        }
    }
}

/// `--quick` options without progress bars or resume.
pub fn quick_options(out: PathBuf, data: Option<&Path>, seed: u64) -> ReproduceOptions {
    ReproduceOptions {
        data: data.map(Path::to_path_buf),
        seed,
        ..ReproduceOptions::quick(out)
    }
}

/// A seconds-long `rnn-memory`: 20 trials, 3 epochs, `runs` runs, Marmoset × 1 neuron, seed 3.
pub fn tiny_rnn_memory(runs: usize) -> RnnMemoryConfig {
    RnnMemoryConfig {
        trials: 20,
        epochs: 3,
        runs,
        neurons_per_region: 1,
        ..RnnMemoryConfig::for_preset(Preset::Quick, 3)
    }
}

/// A seconds-long `rnn-memory --preset converge`: [`tiny_rnn_memory`] with both tasks (20
/// trials each), lr 0.01 so that the loss plateaus within tens of epochs, patience 4, min_delta
/// 0.01, no stop before epoch 6 and a cap of 40 epochs.
pub fn tiny_rnn_converge(runs: usize) -> RnnMemoryConfig {
    let converge = bioexperiments::rnn_memory::ConvergeSettings {
        patience: 4,
        min_delta: 0.01,
        min_epochs: 6,
        nback_trials: 10,
        ..Default::default()
    };
    RnnMemoryConfig {
        epochs: 40,
        lr: 0.01,
        converge: Some(converge),
        ..tiny_rnn_memory(runs)
    }
}

/// Writes a tiny MNIST in IDX format into `dir/mnist`: 60 training and 30 test images of
/// 28 × 28 where each class lights a different band of rows.
pub fn write_fake_mnist(dir: &Path) {
    let mnist = dir.join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    write_idx(&mnist, "train", 60);
    write_idx(&mnist, "t10k", 30);
}

fn write_idx(dir: &Path, stem: &str, n: u32) {
    let mut img = Vec::new();
    for x in [0x0803u32, n, 28, 28] {
        img.extend_from_slice(&x.to_be_bytes());
    }
    let mut lab = Vec::new();
    for x in [0x0801u32, n] {
        lab.extend_from_slice(&x.to_be_bytes());
    }
    for i in 0..n {
        let label = (i % 10) as u8;
        lab.push(label);
        // Each class lights a different band of rows.
        img.extend((0..784u32).map(|p| {
            if (p / 28) / 3 == u32::from(label) {
                200
            } else {
                (p * 7 + i) as u8 % 40
            }
        }));
    }
    std::fs::write(dir.join(format!("{stem}-images-idx3-ubyte")), img).unwrap();
    std::fs::write(dir.join(format!("{stem}-labels-idx1-ubyte")), lab).unwrap();
}

/// Every file under `dir`, subfolders included, by its path relative to `dir`, with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                pending.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    out
}

/// Copies the folder `from` (recursively) to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}
