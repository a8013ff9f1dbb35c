//! `cargo xtask task`: the files it writes equal the NumPy/CPython reference fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/biotasks/tests/fixtures")
        .join(name)
}

#[test]
fn seq_mem_numpy_stream_matches_the_reference() {
    let out = std::env::temp_dir().join(format!("xtask-task-{}", std::process::id()));
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "task",
            "--name",
            "seq_mem",
            "--pattern-length",
            "3",
            "--trials",
            "4",
            "--rng",
            "numpy",
            "--seed",
            "0",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let x: bionpy::NpyArray<f32> = bionpy::read_npy(&out.join("X.npy")).unwrap();
    let y: bionpy::NpyArray<f32> = bionpy::read_npy(&out.join("Y.npy")).unwrap();
    let want_x: bionpy::NpyArray<f32> = bionpy::read_npy(&fixture("seq_L3_n4_s0_X.npy")).unwrap();
    let want_y: bionpy::NpyArray<f32> = bionpy::read_npy(&fixture("seq_L3_n4_s0_Y.npy")).unwrap();
    assert_eq!((x.shape.clone(), y.shape.clone()), (vec![28, 2], vec![28, 1]));
    assert_eq!(x, want_x);
    assert_eq!(y, want_y);
    let ids: bionpy::NpyArray<i64> = bionpy::read_npy(&out.join("trial_index.npy")).unwrap();
    assert_eq!(ids.shape, vec![28]);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn bad_task_arguments_name_the_flag_and_write_nothing() {
    let out = std::env::temp_dir().join(format!("xtask-task-bad-{}", std::process::id()));
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "task",
            "--name",
            "nback_mem",
            "--trial-length",
            "5",
            "--n-back",
            "0",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--n-back"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.exists());
}
