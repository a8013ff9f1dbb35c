//! `cargo xtask rnn-run`, `merge-results` and `plot-loss` from the command line: the shipped tiny
//! configs in two shards, the merge, the plots, and a bad config's exit status.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).output().unwrap()
}

fn config(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(name)
        .display()
        .to_string()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn tiny_sweep_in_two_shards_merges_and_plots() {
    let dir = std::env::temp_dir().join(format!("xtask-rnn-runs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let p = |s: &str| -> PathBuf { dir.join(s) };
    let s = |p: &PathBuf| p.display().to_string();
    let tiny = config("tiny.toml");
    for i in 0..2 {
        let shard = format!("{i}/2");
        let out = ok(&xtask(&[
            "rnn-run",
            "--config",
            &tiny,
            "--out",
            &s(&p(&format!("s{i}"))),
            "--shard",
            &shard,
            "--no-progress",
        ]));
        assert!(out.contains(&format!("shard {i}/2: 2 of 4 jobs; finished 2")), "{out}");
    }
    let out = ok(&xtask(&[
        "merge-results",
        "--inputs",
        &s(&p("s0")),
        &s(&p("s1")),
        "--out",
        &s(&p("bio")),
    ]));
    assert!(out.starts_with("merged 4 job(s) from 2 folder(s)"), "{out}");
    let arr: bionpy::NpyArray<f64> = bionpy::read_npy(&p("bio/1/validate_loss_all.npy")).unwrap();
    assert_eq!(arr.shape, vec![2, 3]);
    ok(&xtask(&[
        "rnn-run",
        "--config",
        &config("tiny_rand.toml"),
        "--out",
        &s(&p("rand")),
        "--no-progress",
    ]));
    let out = ok(&xtask(&[
        "plot-loss",
        "--results",
        &s(&p("bio")),
        &s(&p("rand")),
        "--labels",
        "bio",
        "rand",
        "--out",
        &s(&p("figs")),
    ]));
    assert!(out.contains("bio      runs    4"), "{out}");
    assert!(p("figs/min_val_loss.svg").is_file() && p("figs/combination_1_loss.png").is_file());
    // Errors: one line naming the key, exit status 1.
    let bad = p("bad.ini");
    std::fs::write(&bad, "[net]\nrnn_size = many\n[trialparams]\ntrial_params = {\"task_name\":\"seq_mem\"}\n[combosparams]\ncombos_params = {\"pattern_length\":[3]}\n").unwrap();
    let o = xtask(&["rnn-run", "--config", &s(&bad), "--out", &s(&p("never"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[net] rnn_size"));
    let o = xtask(&["merge-results", "--inputs", &s(&p("s0")), "--out", &s(&p("m"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("are in no input"));
    let _ = std::fs::remove_dir_all(&dir);
}
