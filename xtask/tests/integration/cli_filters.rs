//! `cargo xtask filters`: the exported banks are the library's, as `.npy` and a PNG grid, and a
//! bad bank name is a non-zero exit with a one-line error.

use std::path::PathBuf;
use std::process::Command;

use biolayers::filters::{DogParams, FilterBankSpec, GaborParams};

fn xtask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-cli-filters-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn gabor_and_combined_banks_are_exported() {
    let out = tmp("gabor");
    let o = xtask()
        .args(["filters", "--bank", "gabor", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let arr: bionpy::NpyArray<f32> = bionpy::read_npy(&out.join("filters.npy")).unwrap();
    assert_eq!(arr.shape, vec![24, 63, 63]);
    assert_eq!(arr.data, GaborParams::paper().build().unwrap().to_f32());
    let png = image::open(out.join("filters.png")).unwrap();
    assert!(png.width() > 6 * 63 && png.height() > 4 * 63);

    let out = tmp("combined");
    let o = xtask()
        .args(["filters", "--bank", "combined", "--scale", "0.5", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dog: bionpy::NpyArray<f32> = bionpy::read_npy(&out.join("filters_dog.npy")).unwrap();
    let want = FilterBankSpec::Dog(DogParams::trim())
        .scaled(0.5)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(dog.shape, vec![32, want.ksize, want.ksize]);
    assert_eq!(dog.data, want.to_f32());
    assert!(out.join("filters_gabor.png").is_file());
}

#[test]
fn unknown_bank_fails_with_one_line() {
    let o = xtask()
        .args(["filters", "--bank", "sobel", "--out"])
        .arg(tmp("x"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown bank `sobel`"), "{err}");
    assert_eq!(err.trim().lines().count(), 1);
}
