//! `reproduce rnn-memory` on a tiny configuration: outputs written, topologies of equal density.

use crate::common;

use bioexperiments::rnn_memory::run;

#[test]
fn tiny_rnn_memory_run_writes_its_outputs() {
    let out = tempfile::tempdir().unwrap();
    let opts = common::quick_options(out.path().join("rnn"), None, 3);
    let cfg = common::tiny_rnn_memory(1);
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
