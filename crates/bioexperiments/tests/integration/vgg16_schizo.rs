//! `reproduce vgg16-schizo` end to end on a tiny CIFAR-10 folder written here, with the network
//! narrowed 16× (upstream's full width is the unit tests' parameter count): every output, the
//! non-inferiority verdicts in the summary, the last convolution's density, and a resume that
//! reproduces the finished runs.

use std::path::Path;

use bioexperiments::vgg16_schizo::{run, Vgg16SchizoConfig};
use bioexperiments::{Preset, ReproduceOptions};
use biotasks::data::CIFAR10_CLASSES;

use crate::common;

/// `n` 32×32 PNG images per class under `dir/<class>/`, each class a different colour split.
fn write_cifar_like(dir: &Path, n: usize) {
    for (c, class) in CIFAR10_CLASSES.iter().enumerate() {
        let d = dir.join(class);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                let on = (x / 4 + y / 4) % 10 == c as u32;
                let base = if on { 220 } else { 30 };
                image::Rgb([base, ((c * 25) as u32 + i as u32 * 7 + x) as u8, (y * 8) as u8])
            });
            img.save(d.join(format!("{class}{:03}.png", i + 1))).unwrap();
        }
    }
}

#[test]
fn vgg16_schizo_tiny_writes_every_output_and_resumes() {
    let data = tempfile::tempdir().unwrap();
    write_cifar_like(&data.path().join("cifar10-jpeg/train"), 4);
    write_cifar_like(&data.path().join("cifar10-jpeg/test"), 2);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("vgg16-schizo");
    let opts = common::quick_options(dir.clone(), Some(data.path()), 1);
    let cfg = Vgg16SchizoConfig {
        epochs: 2,
        repeats: 2,
        batch_size: 20,
        train_images: 40,
        test_images: 20,
        width_divisor: 16,
        lr_steps: bioexperiments::vgg16_schizo::lr_steps_for(2),
        ..Vgg16SchizoConfig::for_preset(Preset::Quick, 1)
    };
    let results = run(&opts, &cfg).unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(
        (results[0].label.as_str(), results[1].label.as_str()),
        ("dense", "id=0.6")
    );
    assert_eq!(results[0].density, 1.0);
    // 3·3·32·32 = 9 216 weights kept with probability 0.4 (sd 0.005).
    assert!((results[1].density - 0.4).abs() < 0.03, "{}", results[1].density);
    for f in [
        "history.csv",
        "summary.md",
        "stats.csv",
        "comparisons.csv",
        "config.toml",
        "plan.toml",
        "accuracy.png",
        "runs/s01_r001.csv",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    for want in [
        "non-inferiority claim",
        "not lower by > 0.01",
        "cifar10-jpeg",
        "lr 0.0005 × 0.2 after epoch 2",
    ] {
        assert!(summary.contains(want), "summary lacks {want:?}:\n{summary}");
    }
    let plan = std::fs::read_to_string(dir.join("plan.toml")).unwrap();
    assert!(plan.contains("non_inferiority"), "{plan}");
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("rotation_range = 20.0"), "{config}");
    // Lose a finished job: resume trains it again from its seed and gets the same numbers.
    std::fs::remove_file(dir.join("runs/s01_r001.csv")).unwrap();
    std::fs::remove_dir_all(dir.join("checkpoints/id=0.6_r1")).unwrap();
    let again = run(&ReproduceOptions { resume: true, ..opts }, &cfg).unwrap();
    assert_eq!(again[1].runs, results[1].runs);
}

/// `reproduce vgg16-schizo --device emulator` on the tiny setting (batch norm in training and
/// evaluation, the augmentation, dropout, the masked last convolution): every epoch of every
/// run within 1e-4 of the `--device cpu` run.
#[test]
fn vgg16_schizo_on_the_emulator_matches_the_host() {
    let data = tempfile::tempdir().unwrap();
    write_cifar_like(&data.path().join("cifar10-jpeg/train"), 2);
    write_cifar_like(&data.path().join("cifar10-jpeg/test"), 1);
    let out = tempfile::tempdir().unwrap();
    let cfg = Vgg16SchizoConfig {
        epochs: 2,
        repeats: 1,
        batch_size: 10,
        train_images: 20,
        test_images: 10,
        width_divisor: 16,
        lr_steps: bioexperiments::vgg16_schizo::lr_steps_for(2),
        ..Vgg16SchizoConfig::for_preset(Preset::Quick, 1)
    };
    let opts = |name: &str, device| ReproduceOptions {
        device,
        ..common::quick_options(out.path().join(name), Some(data.path()), 1)
    };
    let host = run(&opts("cpu", bioautograd::Device::Cpu), &cfg).unwrap();
    let emulated = run(&opts("emu", common::EMULATOR), &cfg).unwrap();
    assert!(host.iter().all(|h| h.runs.iter().all(|r| r.len() == 2)));
    common::assert_same_histories(&host, &emulated);
}
