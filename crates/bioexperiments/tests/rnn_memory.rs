//! `reproduce rnn-memory` on a tiny configuration: outputs written, topologies of equal density.

use bioexperiments::rnn_memory::{run, RnnMemoryConfig};
use bioexperiments::ReproduceOptions;

#[test]
fn tiny_rnn_memory_run_writes_its_outputs() {
    let out = tempfile::tempdir().unwrap();
    let opts = ReproduceOptions {
        quick: true,
        data: None,
        out: out.path().join("rnn"),
        resume: false,
        progress: false,
        seed: 3,
    };
    let cfg = RnnMemoryConfig {
        trials: 20,
        epochs: 3,
        runs: 1,
        neurons_per_region: 1,
        ..RnnMemoryConfig::new(false, 3)
    };
    let results = run(&opts, &cfg).unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].density, results[1].density);
    for r in &results {
        let h = &r.runs[0];
        assert_eq!(h.len(), 3);
        assert!(h.iter().all(|e| e.train_loss.is_finite() && e.val_loss.is_finite()));
    }
    for f in [
        "history.csv",
        "summary.md",
        "config.toml",
        "env.txt",
        "loss.png",
        "loss.svg",
    ] {
        assert!(out.path().join("rnn").join(f).is_file(), "{f}");
    }
    assert!(
        !out.path().join("rnn").join("accuracy.png").exists(),
        "no accuracy plot for a regression task"
    );
}
