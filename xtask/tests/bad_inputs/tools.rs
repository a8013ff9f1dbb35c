//! `bio2art`, `filters`, `perturb` (and the PNG/JPEG decoding path), `masks-gallery`, the
//! benchmarks and `validate`.

use std::path::Path;

use crate::fixtures::{image, write, GARBAGE};
use crate::harness::{case, with, Case, Group};

pub fn bio2art() -> Group {
    let b: &[&str] = &[
        "bio2art",
        "--connectome",
        "Macaque_Normalized",
        "--neuron-density",
        "2",
        "--out",
        "w.npy",
    ];
    let cases: Vec<Case> = vec![
        case(
            &[
                "bio2art",
                "--connectome",
                "Nope",
                "--neuron-density",
                "2",
                "--out",
                "w.npy",
            ],
            &["Nope", "--connectome"],
        ),
        case(
            &[
                "bio2art",
                "--connectome",
                "macaque",
                "--neuron-density",
                "2",
                "--out",
                "w.npy",
            ],
            &["macaque"],
        ),
        case(
            &["bio2art", "--neuron-density", "2", "--out", "w.npy"],
            &["--connectome"],
        ),
        case(
            &["bio2art", "--connectome", "Macaque_Normalized", "--neuron-density", "2"],
            &["--out"],
        ),
        with(
            &b[..3],
            &["--neuron-density", "x", "--out", "w.npy"],
            &["--neuron-density", "x"],
        ),
        with(&b[..3], &["--neuron-density", "-2", "--out", "w.npy"], &["-2"]),
        with(
            &b[..3],
            &["--neuron-density", "0", "--out", "w.npy"],
            &["--neuron-density", "0"],
        ),
        with(
            &b[..3],
            &["--neuron-density", "1,2,3", "--out", "w.npy"],
            &["--neuron-density", "3"],
        ),
        with(
            &b[..3],
            &["--neuron-density", "1,,2", "--out", "w.npy"],
            &["--neuron-density"],
        ),
        with(
            &b[..3],
            &["--neuron-density", "100000000", "--out", "w.npy"],
            &["--neuron-density", "100000000"],
        ),
        with(
            &b[..3],
            &["--neuron-density", "2", "--density-scale", "rank", "--out", "w.npy"],
            &["--neuron-density", "--density-scale"],
        ),
        with(&b[..3], &["--density-scale", "weird", "--out", "w.npy"], &["weird"]),
        with(
            &b[..3],
            &["--density-scale", "rank", "--seed-neuron", "0", "--out", "w.npy"],
            &["seed"],
        ),
        case(
            &[
                "bio2art",
                "--connectome",
                "Marmoset_Normalized",
                "--density-scale",
                "rank",
                "--seed-neuron",
                "100000000",
                "--out",
                "w.npy",
            ],
            &["100000000"],
        ),
        case(
            &[
                "bio2art",
                "--connectome",
                "Drosophila",
                "--density-scale",
                "rank",
                "--out",
                "w.npy",
            ],
            &["Drosophila"],
        ),
        case(
            &[
                "bio2art",
                "--connectome",
                "Macaque_Normalized",
                "--seed-neuron",
                "4",
                "--out",
                "w.npy",
            ],
            &["--density-scale"],
        ),
        with(b, &["--target-sparsity", "-0.1"], &["target", "-0.1"]),
        with(b, &["--target-sparsity", "1.5"], &["target", "1.5"]),
        with(b, &["--target-sparsity", "NaN"], &["target", "NaN"]),
        with(b, &["--target-sparsity-intrinsic", "2"], &["intrinsic", "2"]),
        with(b, &["--intrinsic-wei", "NaN"], &["intrinsic", "NaN"]),
        with(b, &["--intrinsic-wei", "-1"], &["intrinsic", "-1"]),
        with(b, &["--intrinsic-conn", "maybe"], &["maybe"]),
        with(b, &["--rand-partition", "2"], &["2"]),
        with(b, &["--keep-diag", "yes please"], &["yes please"]),
        with(b, &["--rng", "numpy"], &["numpy"]),
        with(b, &["--rng", "mersenne"], &["mersenne"]),
        with(b, &["--seed", "-1"], &["-1"]),
        case(
            &[
                "bio2art",
                "--connectome",
                "Macaque_Normalized",
                "--neuron-density",
                "2",
                "--out",
                "missing/w.npy",
            ],
            &["missing"],
        ),
        case(
            &[
                "bio2art",
                "--connectome",
                "Macaque_Normalized",
                "--neuron-density",
                "2",
                "--out",
                "dir",
            ],
            &["dir"],
        ),
        case(
            &[
                "bio2art",
                "--connectome",
                "Macaque_Normalized",
                "--neuron-density",
                "2",
                "--out",
                "w.txt",
            ],
            &["w.txt", ".npy"],
        ),
        with(b, &["--ids", "missing/ids.npy"], &["--ids", "missing"]),
        with(b, &["--ids", "ids.txt"], &["ids.txt", ".npy"]),
    ];
    Group {
        name: "bio2art",
        setup: |dir: &Path| std::fs::create_dir_all(dir.join("dir")).unwrap(),
        cases,
    }
}

pub fn filters_perturb() -> Group {
    let f = |extra: &[&str], names: &[&str]| with(&["filters"], extra, names);
    let p: &[&str] = &[
        "perturb",
        "--image",
        "in.png",
        "--perturbation",
        "Uniform",
        "--level",
        "1",
        "--out",
        "o.png",
    ];
    let img = |file: &str, names: &[&str]| {
        case(
            &[
                "perturb",
                "--image",
                file,
                "--perturbation",
                "Uniform",
                "--level",
                "1",
                "--out",
                "o.png",
            ],
            names,
        )
    };
    let mut cases: Vec<Case> = vec![
        f(&["--bank", "nope", "--out", "f"], &["nope"]),
        f(&["--bank", "gabor"], &["--out"]),
        f(&["--out", "f"], &["--bank"]),
        f(&["--bank", "gabor", "--out", "f", "--scale", "0"], &["--scale", "0"]),
        f(&["--bank", "gabor", "--out", "f", "--scale=-1"], &["--scale", "-1"]),
        f(
            &["--bank", "gabor", "--out", "f", "--scale", "NaN"],
            &["--scale", "NaN"],
        ),
        f(
            &["--bank", "gabor", "--out", "f", "--scale", "inf"],
            &["--scale", "inf"],
        ),
        f(
            &["--bank", "dog", "--out", "f", "--scale", "1000"],
            &["--scale", "1000"],
        ),
        f(
            &["--bank", "gabor", "--out", "f", "--scale", "50"],
            &["--scale", "50", "limit"],
        ),
        f(&["--bank", "gabor", "--out", "file.txt"], &["file.txt"]),
        img("missing.png", &["missing.png"]),
        img("garbage.png", &["garbage.png"]),
        img("empty.png", &["empty.png"]),
        img("trunc.png", &["trunc.png"]),
        img("trunc.jpg", &["trunc.jpg"]),
        img("garbage.jpg", &["garbage.jpg"]),
        img("png_named.jpg", &["png_named.jpg"]),
        img("dir", &["dir"]),
        img("huge_header.png", &["huge_header.png"]),
        with(&p[..3], &["--perturbation", "nope", "--out", "o.png"], &["nope"]),
        with(
            &p[..3],
            &["--perturbation", "Uniform", "--level", "99", "--out", "o.png"],
            &["--level", "99"],
        ),
        with(
            &p[..3],
            &["--perturbation", "all", "--level", "2", "--out", "o.png"],
            &["--level"],
        ),
        with(p, &["--mean", "NaN"], &["--mean", "NaN"]),
        with(p, &["--mean", "300"], &["--mean", "300"]),
        with(p, &["--mean=-1"], &["--mean", "-1"]),
        with(p, &["--display-scale", "0"], &["--display-scale", "0"]),
        with(p, &["--display-scale", "NaN"], &["--display-scale", "NaN"]),
        with(p, &["--display-scale", "1000"], &["--display-scale", "1000"]),
        with(p, &["--rng", "nope"], &["nope"]),
        with(&p[..7], &["--out", "o.jpg"], &["o.jpg", ".png"]),
        with(&p[..7], &["--out", "missing/o.png"], &["missing"]),
        with(&p[..7], &["--out", "dir"], &["dir"]),
    ];
    cases.push(case(
        &["perturb", "--perturbation", "Uniform", "--out", "o.png"],
        &["--image"],
    ));
    Group {
        name: "filters-perturb",
        setup: |dir: &Path| {
            std::fs::create_dir_all(dir.join("dir")).unwrap();
            write(&dir.join("file.txt"), b"a file");
            image(&dir.join("in.png"), 1);
            image(&dir.join("ok.jpg"), 2);
            image(&dir.join("png_src.png"), 3);
            write(&dir.join("garbage.png"), GARBAGE);
            write(&dir.join("garbage.jpg"), GARBAGE);
            write(&dir.join("empty.png"), b"");
            let png = std::fs::read(dir.join("in.png")).unwrap();
            write(&dir.join("trunc.png"), &png[..png.len() / 2]);
            let jpg = std::fs::read(dir.join("ok.jpg")).unwrap();
            write(&dir.join("trunc.jpg"), &jpg[..jpg.len() / 3]);
            // PNG bytes under a .jpg name decode by content, so this one is valid: make it
            // invalid another way (a JPEG header followed by PNG bytes).
            let mut mixed = jpg[..20].to_vec();
            mixed.extend_from_slice(&png);
            write(&dir.join("png_named.jpg"), &mixed);
            // A PNG whose header claims 2^31 × 2^31 pixels.
            let mut huge = png.clone();
            huge[16..24].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff]);
            write(&dir.join("huge_header.png"), &huge);
        },
        cases,
    }
}

pub fn misc() -> Group {
    let cases: Vec<Case> = vec![
        case(&["masks-gallery", "--out", "file.txt"], &["file.txt"]),
        case(&["bench-train", "--batch", "0"], &["--batch", "0"]),
        case(&["bench-train", "--steps", "0"], &["--steps", "0"]),
        case(&["bench-train", "--reps", "0"], &["--reps", "0"]),
        case(&["bench-train", "--device", "tpu"], &["tpu"]),
        case(&["bench-train", "--device", "cuda"], &["cuda"]),
        case(&["bench-train", "--precision", "f8"], &["f8"]),
        case(
            &["bench-train", "--batch", "100000000"],
            &["--batch", "100000000", "limit"],
        ),
        case(
            &[
                "bench-train",
                "--json",
                "missing/b.json",
                "--steps",
                "1",
                "--reps",
                "1",
                "--batch",
                "1",
            ],
            &["missing"],
        ),
        case(&["bench-rnn", "--task", "nope"], &["nope"]),
        case(&["bench-rnn", "--hidden", "0"], &["--hidden", "0"]),
        case(&["bench-rnn", "--batch", "0"], &["--batch", "0"]),
        case(&["bench-rnn", "--trials", "0"], &["--trials", "0"]),
        case(&["bench-rnn", "--epochs", "0"], &["--epochs", "0"]),
        case(
            &["bench-rnn", "--hidden", "10000000"],
            &["--hidden", "10000000", "limit"],
        ),
        case(&["bench-kernels", "--cuda"], &["cuda"]),
        case(&["bench-kernels", "--json", "missing/k.json", "--quick"], &["missing"]),
        case(&["bench-kernels", "--shapes", "64x0x8"], &["--shapes 64x0x8", "MxKxN"]),
        case(&["bench-kernels", "--shapes", "64x8"], &["--shapes 64x8"]),
        case(&["bench-kernels", "--shapes", "4096x4096x8192"], &["2^36"]),
        case(
            &["bench-kernels", "--conv", "--shapes", "8x8x8"],
            &["--shapes", "--conv"],
        ),
        case(&["validate", "--python", "missing/python3"], &["missing/python3"]),
        case(&["nope"], &["nope"]),
        case(&["mask", "--nope"], &["--nope"]),
    ];
    Group {
        name: "misc",
        setup: |dir: &Path| write(&dir.join("file.txt"), b"a file"),
        cases,
    }
}

/// `export`: checkpoint folders that are missing, of another experiment, of a setting or repeat
/// the configuration lacks, damaged; bad format, layout and output paths.
pub fn export() -> Group {
    let ok = ["export", "--checkpoint", "mn/checkpoints/r=0.5_r0"];
    let cases: Vec<Case> = vec![
        case(
            &["export", "--checkpoint", "missing/dir", "--out", "w.safetensors"],
            &["missing/dir"],
        ),
        with(&ok, &["--out", "w.safetensors", "--format", "onnx"], &["onnx"]),
        with(&ok, &["--out", "w.safetensors", "--layout", "tf"], &["tf"]),
        with(&ok, &["--out", "w.txt"], &["w.txt", "safetensors"]),
        with(
            &ok,
            &["--out", "w.safetensors", "--format", "npz"],
            &["w.safetensors", "npz"],
        ),
        with(&ok, &["--out", "nodir/w.safetensors"], &["nodir"]),
        with(&ok, &["--out", "mn"], &["mn"]),
        with(&ok, &["--out", "w.safetensors"], &["checkpoint.json"]),
        case(
            &[
                "export",
                "--checkpoint",
                "res/checkpoints/r=0.5_r0",
                "--out",
                "w.safetensors",
            ],
            &["schizo-cifar"],
        ),
        case(
            &[
                "export",
                "--checkpoint",
                "mn/checkpoints/r=0.7_r0",
                "--out",
                "w.safetensors",
            ],
            &["r=0.7"],
        ),
        case(
            &[
                "export",
                "--checkpoint",
                "mn/checkpoints/r=0.5_r9",
                "--out",
                "w.safetensors",
            ],
            &["repeat 9"],
        ),
        case(&["export", "--checkpoint", "mn", "--out", "w.safetensors"], &["mn"]),
        case(
            &[
                "export",
                "--checkpoint",
                "bad/checkpoints/x_r0",
                "--out",
                "w.safetensors",
            ],
            &["config.toml"],
        ),
        case(&["export", "--checkpoint", "mn/checkpoints/r=0.5_r0"], &["--out"]),
    ];
    Group {
        name: "export",
        setup: |dir| {
            let mk = |p: &str| std::fs::create_dir_all(dir.join(p)).unwrap();
            mk("res/checkpoints/r=0.5_r0");
            write(
                &dir.join("res/config.toml"),
                b"# cargo xtask reproduce schizo-cifar\nseed = 0\n",
            );
            for c in ["r=0.5_r0", "r=0.7_r0", "r=0.5_r9"] {
                mk(&format!("mn/checkpoints/{c}"));
            }
            write(
                &dir.join("mn/config.toml"),
                b"# cargo xtask reproduce schizo-mnist\nreductions = [0.0, 0.5]\nhidden = 8\nepochs = 1\nrepeats = 1\nbatch_size = 4\nlr = 0.001\ntrain_images = 10\nseed = 0\n",
            );
            write(&dir.join("mn/checkpoints/r=0.5_r0/checkpoint.json"), b"{not json");
            write(&dir.join("mn/checkpoints/r=0.5_r0/checkpoint.npz"), b"garbage");
            mk("bad/checkpoints/x_r0");
            write(&dir.join("bad/config.toml"), b"not a header\n");
        },
        cases,
    }
}

/// `fid` and `fid-weights`: missing and empty folders, missing weights (the message gives the
/// command that makes them), out-of-range sizes, wrong output names. Nothing here needs the
/// real weights.
pub fn fid() -> Group {
    let w: &[&str] = &["--weights", "nowhere.safetensors"];
    let cases: Vec<Case> = vec![
        with(
            &["fid", "--real", "missing", "--fake", "imgs"],
            w,
            &["--real", "missing"],
        ),
        with(
            &["fid", "--real", "imgs", "--fake", "missing"],
            w,
            &["--fake", "missing"],
        ),
        with(
            &["fid", "--real", "imgs", "--fake", "one.png"],
            w,
            &["--fake", "one.png"],
        ),
        with(
            &["fid", "--real", "imgs", "--fake", "imgs"],
            w,
            &["nowhere.safetensors", "cargo xtask fid-weights"],
        ),
        with(
            &["fid", "--real", "empty", "--fake", "imgs", "--size", "0"],
            w,
            &["--size", "0"],
        ),
        with(
            &["fid", "--real", "imgs", "--fake", "imgs", "--size", "100000"],
            w,
            &["--size", "100000", "limit"],
        ),
        with(
            &["fid", "--real", "imgs", "--fake", "imgs", "--batch", "0"],
            w,
            &["--batch", "0"],
        ),
        with(
            &["fid", "--real", "imgs", "--fake", "imgs", "--weights", "w.npy"],
            &[],
            &["w.npy"],
        ),
        case(&["fid", "--real", "imgs"], &["--fake"]),
        case(&["fid-weights", "--out", "w.txt"], &["w.txt", "safetensors"]),
        case(
            &["fid-weights", "--out", "dir.safetensors"],
            &["dir.safetensors", "folder"],
        ),
        case(
            &["fid-weights", "--python", "missing/python3", "--out", "w.safetensors"],
            &["missing/python3"],
        ),
    ];
    Group {
        name: "fid",
        setup: |dir| {
            image(&dir.join("imgs/a.png"), 1);
            image(&dir.join("imgs/b/c.jpg"), 2);
            image(&dir.join("one.png"), 3);
            std::fs::create_dir_all(dir.join("empty")).unwrap();
            std::fs::create_dir_all(dir.join("dir.safetensors")).unwrap();
            write(&dir.join("w.npy"), GARBAGE);
        },
        cases,
    }
}
