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

/// The jobs run concurrently (`jobs::run_jobs_concurrent`, one rayon pool per worker) and a
/// run's numbers do not depend on its thread count, so every file of the results folder but
/// `env.txt` (which names the thread count and the date) is byte-identical to running the jobs
/// one by one on one thread: 2 workers × 2 threads (the batch of 80 split in two halves),
/// 2 workers × 1 thread, 3 workers × 1 thread over 6 jobs (finishing out of order), and a
/// `--resume` of a concurrent folder that lost two job files.
#[test]
fn concurrent_jobs_write_the_same_bytes_as_sequential_ones() {
    let dir = tempfile::tempdir().unwrap();
    let run_on = |threads: usize, name: &str, runs: usize, resume: bool| {
        let mut opts = common::quick_options(dir.path().join(name), None, 3);
        opts.resume = resume;
        let cfg = bioexperiments::rnn_memory::RnnMemoryConfig {
            trials: 100,
            epochs: 2,
            ..common::tiny_rnn_memory(runs)
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| run(&opts, &cfg)).unwrap();
        let mut files = common::snapshot(&opts.out);
        assert!(files.remove(std::path::Path::new("env.txt")).is_some());
        files
    };
    assert_eq!(bioexperiments::jobs::concurrency(4, 2), 2);
    assert_eq!(bioexperiments::jobs::concurrency(1, 6), 1);
    let one_by_one = run_on(1, "seq1", 1, false);
    assert_eq!(one_by_one.keys().filter(|p| p.starts_with("runs")).count(), 2);
    assert_eq!(run_on(4, "conc2x2", 1, false), one_by_one, "2 workers x 2 threads");
    assert_eq!(run_on(2, "conc2x1", 1, false), one_by_one, "2 workers x 1 thread");
    let one_by_one = run_on(1, "seq3", 3, false);
    assert_eq!(run_on(3, "conc3", 3, false), one_by_one, "3 workers x 1 thread");
    for lost in ["s00_r001.csv", "s01_r002.csv", "history.csv"] {
        std::fs::remove_file(dir.path().join("conc3").join("runs").join(lost))
            .or_else(|_| std::fs::remove_file(dir.path().join("conc3").join(lost)))
            .unwrap();
    }
    assert_eq!(run_on(3, "conc3", 3, true), one_by_one, "resumed concurrently");
}
