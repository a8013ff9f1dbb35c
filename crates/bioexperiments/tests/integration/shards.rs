//! Shards, merge and resume of `reproduce` on tiny settings: the merged shard folders hold the
//! same bytes as one unsharded run (summary, statistics, history, plots, job files), and a
//! run resumed from a partial folder (jobs missing, as a run killed between jobs leaves it)
//! finishes with the same bytes too.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bioexperiments::jobs::merge_reproduce;
use bioexperiments::rnn_runs::Shard;
use bioexperiments::{rnn_memory, schizo_mnist, ReproduceOptions};

/// The outputs that must not depend on how the run was split: every file but `env.txt` (its
/// date) and the training checkpoints (only the shard that trained a job has its checkpoint).
fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    common::snapshot(dir)
        .into_iter()
        .map(|(name, bytes)| (name.to_string_lossy().into_owned(), bytes))
        .filter(|(name, _)| name != "env.txt" && !name.starts_with("checkpoints"))
        .collect()
}

fn shard(opts: &ReproduceOptions, out: PathBuf, s: &str) -> ReproduceOptions {
    ReproduceOptions {
        out,
        shard: s.parse::<Shard>().unwrap(),
        ..opts.clone()
    }
}

fn assert_same(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>, what: &str) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: files differ"
    );
    for (name, bytes) in a {
        assert!(&b[name] == bytes, "{what}: {name} differs");
    }
}

#[test]
fn rnn_memory_shards_merge_to_the_bytes_of_one_run_and_a_partial_run_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = common::tiny_rnn_memory(3);
    let whole = common::quick_options(tmp.path().join("whole"), None, 3);
    rnn_memory::run(&whole, &cfg).unwrap();
    let expected = outputs(&whole.out);
    for f in [
        "summary.md",
        "stats.csv",
        "comparisons.csv",
        "history.csv",
        "loss.png",
        "runs/s01_r002.csv",
    ] {
        assert!(expected.contains_key(f), "{f} missing");
    }
    let summary = String::from_utf8(expected["summary.md"].clone()).unwrap();
    assert!(!summary.contains("NaN") && !summary.contains("val acc"), "{summary}");
    assert!(summary.contains("bio-instantiated topology"), "{summary}");

    // Three shards of 6 jobs; the first alone writes no summary.
    let parts: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("s{i}"))).collect();
    for (i, dir) in parts.iter().enumerate() {
        let results = rnn_memory::run(&shard(&whole, dir.clone(), &format!("{i}/3")), &cfg).unwrap();
        assert_eq!(results.iter().map(|r| r.runs.len()).sum::<usize>(), 2);
        assert!(!dir.join("summary.md").exists());
    }
    // A merge missing a shard is refused, naming the jobs, and writes nothing.
    let merged = tmp.path().join("merged");
    let e = merge_reproduce(&parts[..2], &merged).unwrap_err().to_string();
    assert!(e.contains("bio repeat 2, random repeat 2"), "{e}");
    assert!(!merged.exists());
    // Shards of another run are refused.
    let other = tmp.path().join("other");
    rnn_memory::run(&shard(&whole, other.clone(), "2/3"), &common::tiny_rnn_memory(4)).unwrap();
    let mixed = [parts[0].clone(), parts[1].clone(), other];
    assert!(merge_reproduce(&mixed, &merged).is_err());

    let report = merge_reproduce(&parts, &merged).unwrap();
    assert_eq!(report.jobs, 6);
    assert_same(&expected, &outputs(&merged), "merged shards");

    // Resume of a partial folder: two finished jobs lost (killed before they were written).
    let partial = tmp.path().join("partial");
    common::copy_dir(&whole.out, &partial);
    for f in [
        "runs/s00_r002.csv",
        "runs/s01_r000.csv",
        "summary.md",
        "history.csv",
        "stats.csv",
    ] {
        std::fs::remove_file(partial.join(f)).unwrap();
    }
    let resumed = ReproduceOptions {
        out: partial.clone(),
        resume: true,
        ..whole.clone()
    };
    rnn_memory::run(&resumed, &cfg).unwrap();
    assert_same(&expected, &outputs(&partial), "resumed run");
}

#[test]
fn schizo_mnist_shards_merge_to_the_bytes_of_one_run() {
    let data = tempfile::tempdir().unwrap();
    common::write_fake_mnist(data.path());
    let tmp = tempfile::tempdir().unwrap();
    let whole = ReproduceOptions {
        overrides: bioexperiments::Overrides {
            epochs: Some(2),
            repeats: Some(2),
            train_images: Some(40),
        },
        ..common::quick_options(tmp.path().join("whole"), Some(data.path()), 1)
    };
    let results = schizo_mnist::schizo_mnist(&whole).unwrap();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r.runs.len() == 2 && r.runs[0].len() == 2));
    let expected = outputs(&whole.out);
    let summary = String::from_utf8(expected["summary.md"].clone()).unwrap();
    assert!(summary.contains("r=0.5 vs r=0"), "{summary}");
    assert!(summary.contains("final val acc"), "{summary}");
    let config = String::from_utf8(expected["config.toml"].clone()).unwrap();
    assert!(
        config.contains("epochs = 2") && config.contains("train_images = 40"),
        "{config}"
    );

    let parts: Vec<PathBuf> = (0..2).map(|i| tmp.path().join(format!("s{i}"))).collect();
    for (i, dir) in parts.iter().enumerate() {
        schizo_mnist::schizo_mnist(&shard(&whole, dir.clone(), &format!("{i}/2"))).unwrap();
    }
    let merged = tmp.path().join("merged");
    merge_reproduce(&parts, &merged).unwrap();
    assert_same(&expected, &outputs(&merged), "merged shards");
}

/// `--preset converge` (early stopping, two tasks, groups in the summary): two shards merge to
/// the bytes of one run.
#[test]
fn rnn_memory_converge_shards_merge_to_the_bytes_of_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = common::tiny_rnn_converge(2);
    let whole = common::quick_options(tmp.path().join("whole"), None, 3);
    rnn_memory::run(&whole, &cfg).unwrap();
    let expected = outputs(&whole.out);
    for f in ["summary.md", "loss_nback_mem.png", "runs/s03_r001.csv", "plan.toml"] {
        assert!(expected.contains_key(f), "{f} missing");
    }
    let plan = String::from_utf8(expected["plan.toml"].clone()).unwrap();
    assert!(
        plan.contains("[early_stopping]") && plan.contains("[[groups]]"),
        "{plan}"
    );
    let parts: Vec<PathBuf> = (0..2).map(|i| tmp.path().join(format!("s{i}"))).collect();
    for (i, dir) in parts.iter().enumerate() {
        rnn_memory::run(&shard(&whole, dir.clone(), &format!("{i}/2")), &cfg).unwrap();
        assert!(!dir.join("summary.md").exists());
    }
    let merged = tmp.path().join("merged");
    assert_eq!(merge_reproduce(&parts, &merged).unwrap().jobs, 8);
    assert_same(&expected, &outputs(&merged), "merged converge shards");
}
