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
