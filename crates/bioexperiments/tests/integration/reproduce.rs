//! `reproduce schizo-mnist` end to end on a tiny fake MNIST written here, and its missing-data error.

use crate::common;

use bioexperiments::{schizo_mnist::schizo_mnist, ReproduceOptions};

#[test]
fn schizo_mnist_quick_writes_every_output() {
    let data = tempfile::tempdir().unwrap();
    common::write_fake_mnist(data.path());
    let out = tempfile::tempdir().unwrap();
    let opts = common::quick_options(out.path().join("schizo-mnist"), Some(data.path()), 1);
    let results = schizo_mnist(&opts).unwrap();
    assert_eq!(results.len(), 3);
    assert!((results[1].density - 0.5).abs() < 0.01);
    let dir = out.path().join("schizo-mnist");
    for f in [
        "history.csv",
        "summary.md",
        "config.toml",
        "env.txt",
        "loss.png",
        "loss.svg",
        "accuracy.png",
        "accuracy.svg",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 * 3);
    assert!(std::fs::read_to_string(dir.join("summary.md"))
        .unwrap()
        .contains("| r=0.5 | 0.5"));
    // A resumed run reuses the finished checkpoints and gives the same history.
    let again = schizo_mnist(&ReproduceOptions { resume: true, ..opts }).unwrap();
    assert_eq!(again[2].runs, results[2].runs);
}

#[test]
fn missing_data_is_an_error_naming_the_path() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let opts = common::quick_options(out.path().join("x"), Some(data.path()), 1);
    let e = schizo_mnist(&opts).unwrap_err().to_string();
    assert!(e.contains("mnist"), "{e}");
    assert!(!out.path().join("x").exists(), "nothing should be written without data");
}

#[test]
fn a_results_folder_never_lies_about_its_settings() {
    let data = tempfile::tempdir().unwrap();
    common::write_fake_mnist(data.path());
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("schizo-mnist");
    let opts = common::quick_options(dir.clone(), Some(data.path()), 1);

    // --resume where nothing ran is an error, not a silent fresh start.
    let e = schizo_mnist(&ReproduceOptions {
        resume: true,
        ..opts.clone()
    })
    .unwrap_err();
    assert!(e.to_string().contains("no earlier run"), "{e}");
    assert!(!dir.exists());

    schizo_mnist(&opts).unwrap();
    let finished = common::snapshot(&dir);
    // Running again without --resume does not overwrite the finished run.
    let e = schizo_mnist(&opts).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    // Resuming with another seed would mix two experiments: refused, naming the key.
    let e = schizo_mnist(&ReproduceOptions {
        resume: true,
        seed: 2,
        ..opts.clone()
    })
    .unwrap_err();
    assert!(e.to_string().contains("seed"), "{e}");
    assert_eq!(
        common::snapshot(&dir),
        finished,
        "a refused command must leave the folder as it was"
    );
}

/// `export` of a real schizo-mnist checkpoint: the file holds the trained weights (not the
/// initial ones), in PyTorch names, and loads into a freshly initialised model that then
/// predicts exactly what the checkpoint's model predicts.
#[test]
fn a_trained_checkpoint_exports_to_safetensors_that_load_back() {
    use bioautograd::Tensor;
    use bioexperiments::export::{export_checkpoint, rebuild};
    use biolayers::interop::{load_weights, WeightFormat, WeightLayout};
    use biolayers::layers::Module;
    use biolayers::train::predict;
    use biorng::Stream;

    let data = tempfile::tempdir().unwrap();
    common::write_fake_mnist(data.path());
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("schizo-mnist");
    schizo_mnist(&common::quick_options(dir.clone(), Some(data.path()), 1)).unwrap();
    let ckpt = dir.join("checkpoints").join("r=0.5_r0");
    assert!(ckpt.is_dir(), "no checkpoint folder {}", ckpt.display());
    let file = out.path().join("model.safetensors");
    let summary = export_checkpoint(&ckpt, WeightFormat::Safetensors, WeightLayout::Torch, &file).unwrap();
    assert_eq!((summary.setting.as_str(), summary.repeat), ("r=0.5", 0));
    assert!(summary.epoch >= 1 && summary.tensors >= 4, "{summary:?}");

    let (mut trained, _) = rebuild(&ckpt).unwrap();
    let hidden = trained.params()[0].value.shape()[1];
    let (initial, _) = bioexperiments::schizo_mnist::model(hidden, 0.5, &mut Stream::seeded(2)).unwrap();
    assert_ne!(
        trained.params()[0].value.as_slice().unwrap(),
        initial.params()[0].value.as_slice().unwrap(),
        "the checkpoint should hold trained weights"
    );
    let (mut fresh, _) = bioexperiments::schizo_mnist::model(hidden, 0.5, &mut Stream::seeded(2)).unwrap();
    load_weights(&mut fresh, WeightFormat::Safetensors, WeightLayout::Torch, &file).unwrap();
    let x: Vec<f32> = (0..3 * 784).map(|i| ((i * 37) % 101) as f32 / 101.0).collect();
    let x = Tensor::from_vec(x, &[3, 784]).unwrap();
    let want = predict(&mut trained, x.clone()).unwrap();
    let got = predict(&mut fresh, x).unwrap();
    assert_eq!(got.as_slice().unwrap(), want.as_slice().unwrap());
}
