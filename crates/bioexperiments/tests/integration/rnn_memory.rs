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

/// `--preset converge` on a tiny setting: both tasks, bio and random, every job stopped by the
/// early-stopping rule (on a plateau, or at the cap), the metrics of the best-validation epoch,
/// one verdict section per task, accuracy for nback_mem only, curves per task.
#[test]
fn tiny_converge_run_stops_every_job_by_the_rule_and_reports_each_task() {
    use bioexperiments::claims::Metric;
    use biotasks::early_stopping::StopReason;
    let out = tempfile::tempdir().unwrap();
    let opts = common::quick_options(out.path().join("conv"), None, 3);
    let cfg = common::tiny_rnn_converge(2);
    let rule = cfg.early_stopping().unwrap();
    let results = run(&opts, &cfg).unwrap();
    let labels: Vec<&str> = results.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        ["seq_mem bio", "seq_mem random", "nback_mem bio", "nback_mem random"]
    );
    let mut reasons = Vec::new();
    for r in &results {
        for h in &r.runs {
            let (stop, why) = rule.stop_epoch(h.iter().map(|e| e.val_loss)).unwrap();
            assert_eq!(stop, h.len(), "{}: the history ends where the rule stops", r.label);
            reasons.push(why);
            let acc = Metric::ValAccAtMinValLoss.of(h);
            if r.label.starts_with("nback_mem") {
                assert!((0.0..=100.0).contains(&acc), "{acc}");
            } else {
                assert!(acc.is_nan());
            }
        }
    }
    assert!(reasons.contains(&StopReason::Plateau), "{reasons:?}");
    let dir = &opts.out;
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    for want in [
        "### seq_mem",
        "### nback_mem",
        "## Early stopping",
        "## Per run",
        "stopped by",
        "on nback_mem, the bio-instantiated topology trains to a better network",
        "(nback_mem bio vs nback_mem random: val acc at min val loss higher)",
        "(seq_mem bio vs seq_mem random: epoch of min val loss lower)",
    ] {
        assert!(summary.contains(want), "{want}:\n{summary}");
    }
    assert!(!summary.contains("seq_mem bio vs seq_mem random: val acc"), "{summary}");
    let stats = std::fs::read_to_string(dir.join("stats.csv")).unwrap();
    assert!(stats.contains("nback_mem bio,") && stats.contains("val acc at min val loss"));
    assert!(
        !stats.lines().any(|l| l.starts_with("seq_mem") && l.contains("acc")),
        "{stats}"
    );
    for f in [
        "loss_seq_mem.png",
        "loss_nback_mem.svg",
        "accuracy_nback_mem.png",
        "history.csv",
        "comparisons.csv",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    for f in ["accuracy_seq_mem.png", "loss.png"] {
        assert!(!dir.join(f).exists(), "{f}");
    }
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(
        config.contains("[converge]") && config.contains("patience = 4"),
        "{config}"
    );
    // No checkpoint is left once every job is finished.
    let ckpt = dir.join("checkpoints");
    assert!(!ckpt.exists() || common::snapshot(&ckpt).is_empty());
}

/// `--preset converge --device emulator` (nback_mem's log-softmax and the trimmed NLL on the
/// device): the host run's histories within 1e-4; and an emulator run interrupted after 5
/// epochs resumes (the device optimiser state through its checkpoint) to the uninterrupted
/// emulator run's histories bit for bit.
#[test]
fn converge_on_the_emulator_matches_the_host_and_resumes_exactly() {
    use bioexperiments::rnn_memory::run_with_budget;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::tiny_rnn_converge(1);
    let opts = |name: &str, device| bioexperiments::ReproduceOptions {
        device,
        ..common::quick_options(dir.path().join(name), None, 3)
    };
    let host = run(&opts("cpu", bioautograd::Device::Cpu), &cfg).unwrap();
    let emulated = run(&opts("emu", common::EMULATOR), &cfg).unwrap();
    assert!(host.iter().any(|h| h.label.starts_with("nback_mem")));
    common::assert_same_histories(&host, &emulated);
    let mut cut = opts("cut", common::EMULATOR);
    let e = run_with_budget(&cut, &cfg, Some(5)).unwrap_err();
    assert!(e.to_string().contains("after epoch 5"), "{e}");
    cut.resume = true;
    let resumed = run(&cut, &cfg).unwrap();
    // Debug prints every f64 exactly (and NaN as NaN, which `==` would not equal).
    assert_eq!(format!("{:?}", resumed), format!("{:?}", emulated));
}

/// `--resume` of a converge run interrupted inside its jobs (each stopped after 5 epochs of a
/// call, then after 1 more, its checkpoint saved; some mid-patience), ends with the bytes of the
/// uninterrupted run; a checkpoint whose early-stopping state does not match its history is
/// refused.
#[test]
fn an_interrupted_converge_run_resumes_to_the_same_bytes() {
    use bioexperiments::rnn_memory::run_with_budget;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::tiny_rnn_converge(1);
    let whole = common::quick_options(dir.path().join("whole"), None, 3);
    run(&whole, &cfg).unwrap();
    let outputs = |p: &std::path::Path| {
        let mut files = common::snapshot(p);
        files.remove(std::path::Path::new("env.txt")).unwrap();
        files
    };
    let expected = outputs(&whole.out);
    let mut opts = common::quick_options(dir.path().join("cut"), None, 3);
    let e = run_with_budget(&opts, &cfg, Some(5)).unwrap_err();
    assert!(matches!(e, bioexperiments::Error::Interrupted { .. }), "{e}");
    assert!(e.to_string().contains("after epoch 5"), "{e}");
    opts.resume = true;
    // A second interruption, one epoch later, then the end.
    let e = run_with_budget(&opts, &cfg, Some(1)).unwrap_err();
    assert!(e.to_string().contains("after epoch 6"), "{e}");
    let waits: Vec<u64> = common::snapshot(&opts.out.join("checkpoints"))
        .iter()
        .filter(|(k, _)| k.extension().is_some_and(|x| x == "json"))
        .map(|(_, bytes)| {
            let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            assert_eq!(v["early_stopping"]["epochs"], 6);
            v["early_stopping"]["since_improvement"].as_u64().unwrap()
        })
        .collect();
    assert!(
        waits.iter().any(|&w| w > 0),
        "no job interrupted mid-patience: {waits:?}"
    );
    run(&opts, &cfg).unwrap();
    assert_eq!(outputs(&opts.out), expected);

    // A damaged early-stopping state: interrupt a fresh run, edit the state, resume.
    let mut bad = common::quick_options(dir.path().join("bad"), None, 3);
    run_with_budget(&bad, &cfg, Some(2)).unwrap_err();
    let json_path = std::fs::read_dir(bad.out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let text = std::fs::read_to_string(&json_path).unwrap();
    let edited = text.replacen("\"since_improvement\": ", "\"since_improvement\": 1", 1);
    assert_ne!(edited, text);
    std::fs::write(&json_path, edited).unwrap();
    bad.resume = true;
    let e = run(&bad, &cfg).unwrap_err().to_string();
    assert!(
        e.contains(&*json_path.to_string_lossy()) && e.contains("early_stopping"),
        "{e}"
    );
}
