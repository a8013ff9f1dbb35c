//! `reproduce schizo-mnist` end to end on a tiny fake MNIST written here, and its missing-data error.

mod common;

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
