//! The exact command-line interface of `cargo xtask mask` (other tools depend on it).

use std::path::PathBuf;
use std::process::Command;

fn xtask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn diagonal_prints_counts_and_writes_uint8_npy() {
    let out = tmp("diag.npy");
    let o = xtask()
        .args([
            "mask",
            "--form",
            "diagonal",
            "--nx",
            "64",
            "--ny",
            "32",
            "--param-reduction",
            "0.5",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "ones=1034 weights=2048 density=0.5048828125\n"
    );
    let arr: bionpy::NpyArray<u8> = bionpy::read_npy(&out).unwrap();
    assert_eq!(arr.shape, vec![64, 32]);
    assert_eq!(arr.data.iter().map(|&v| usize::from(v)).sum::<usize>(), 1034);
}

#[test]
fn two_d_and_torch_conv_layouts() {
    let out = tmp("twod.npy");
    let o = xtask()
        .args([
            "mask",
            "--form",
            "2d",
            "--nx",
            "1024",
            "--ny",
            "512",
            "--input2d-width",
            "32",
        ])
        .args(["--output2d-width", "16", "--window2d-width", "0.4", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "ones=179246 weights=524288 density=0.3418846130371094\n"
    );
    let out = tmp("ind.npy");
    let png = tmp("ind.png");
    let o = xtask()
        .args([
            "mask",
            "--form",
            "individual",
            "--nx",
            "64",
            "--ny",
            "32",
            "--kernel-size",
            "3,3",
        ])
        .args(["--layout", "torch", "--rng", "numpy", "--seed", "0", "--out"])
        .arg(&out)
        .arg("--png")
        .arg(&png)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let arr: bionpy::NpyArray<u8> = bionpy::read_npy(&out).unwrap();
    assert_eq!(arr.shape, vec![32, 64, 3, 3]);
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
}

#[test]
fn dead_outputs_are_reported() {
    let out = tmp("dead.npy");
    let o = xtask()
        .args([
            "mask",
            "--form",
            "2d",
            "--nx",
            "100",
            "--ny",
            "37",
            "--input2d-width",
            "10",
        ])
        .args(["--output2d-width", "6", "--window2d-width", "0.5", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 output unit(s) have no connection"));
}

#[test]
fn bad_arguments_fail_name_the_argument_and_write_nothing() {
    let cases: [(&[&str], &str); 5] = [
        (&["--form", "striping", "--nx", "8", "--ny", "8"], "--form"),
        (
            &[
                "--form",
                "diagonal",
                "--nx",
                "8",
                "--ny",
                "8",
                "--param-reduction",
                "1.5",
            ],
            "--param-reduction",
        ),
        (
            &["--form", "2d", "--nx", "8", "--ny", "8", "--input2d-width", "9"],
            "--input2d-width",
        ),
        (
            &[
                "--form",
                "2d",
                "--nx",
                "16",
                "--ny",
                "8",
                "--input2d-width",
                "4",
                "--output2d-width",
                "9",
            ],
            "--output2d-width",
        ),
        (
            &["--form", "diagonal", "--nx", "8", "--ny", "8", "--kernel-size", "3,x"],
            "--kernel-size",
        ),
    ];
    for (i, (args, flag)) in cases.iter().enumerate() {
        let out = tmp(&format!("bad{i}.npy"));
        let o = xtask().arg("mask").args(*args).arg("--out").arg(&out).output().unwrap();
        assert!(!o.status.success(), "case {i} should fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(flag), "case {i}: `{err}` does not name {flag}");
        assert!(!out.exists(), "case {i} wrote a file");
    }
}
