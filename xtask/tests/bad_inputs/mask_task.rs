//! `mask` and `task`: sizes, ranges, forms, outputs, and the npy inputs of `pic_latent_mem`.

use std::path::Path;

use crate::fixtures::{half_of, npy_f32, npy_f64, npy_i64, write, GARBAGE};
use crate::harness::{case, with, Case, Group};

const HUGE: &str = "18446744073709551615";

pub fn mask() -> Group {
    let d: &[&str] = &["mask", "--form", "diagonal", "--nx", "8", "--ny", "8", "--out", "m.npy"];
    let two_d: &[&str] = &["mask", "--form", "2d", "--nx", "100", "--ny", "100", "--out", "m.npy"];
    let m = |extra: &[&str], names: &[&str]| with(&["mask"], extra, names);
    let mut cases: Vec<Case> = vec![
        m(
            &["--form", "nope", "--nx", "4", "--ny", "4", "--out", "m.npy"],
            &["nope"],
        ),
        m(&["--form", "", "--nx", "4", "--ny", "4", "--out", "m.npy"], &["--form"]),
        m(
            &["--form", "diagonal", "--nx", "0", "--ny", "4", "--out", "m.npy"],
            &["nx=0"],
        ),
        m(
            &["--form", "diagonal", "--nx", "4", "--ny", "0", "--out", "m.npy"],
            &["ny=0"],
        ),
        m(
            &["--form", "diagonal", "--nx", "-1", "--ny", "4", "--out", "m.npy"],
            &["-1"],
        ),
        m(
            &["--form", "diagonal", "--nx", "abc", "--ny", "4", "--out", "m.npy"],
            &["abc", "--nx"],
        ),
        m(
            &["--form", "diagonal", "--nx", "4.5", "--ny", "4", "--out", "m.npy"],
            &["4.5", "--nx"],
        ),
        m(
            &["--form", "diagonal", "--nx", HUGE, "--ny", "4", "--out", "m.npy"],
            &[HUGE, "limit"],
        ),
        m(
            &[
                "--form",
                "diagonal",
                "--nx",
                "99999999999999999999",
                "--ny",
                "4",
                "--out",
                "m.npy",
            ],
            &["99999999999999999999"],
        ),
        m(
            &["--form", "2d", "--nx", "200000", "--ny", "200000", "--out", "m.npy"],
            &["200000", "limit"],
        ),
        m(
            &["--form", "random", "--nx", "65536", "--ny", "65536", "--out", "m.npy"],
            &["65536", "limit"],
        ),
        m(
            &[
                "--form",
                "individual",
                "--nx",
                "16384",
                "--ny",
                "16384",
                "--kernel-size",
                "3",
                "--out",
                "m.npy",
            ],
            &["16384", "limit"],
        ),
        m(
            &[
                "--form",
                "diagonal",
                "--nx",
                "4",
                "--ny",
                "4",
                "--kernel-size",
                "100000,100000",
                "--out",
                "m.npy",
            ],
            &["limit"],
        ),
        m(&["--form", "diagonal", "--nx", "8", "--ny", "8"], &["--out"]),
        m(&["--nx", "8", "--ny", "8", "--out", "m.npy"], &["--form"]),
    ];
    for bad in ["NaN", "-0.1", "1.5", "inf", "nope", ""] {
        cases.push(with(d, &["--param-reduction", bad], &["param"]));
    }
    cases.push(with(d, &["--param-reduction=-inf"], &["param_reduction", "-inf"]));
    for form in ["gaussian", "random"] {
        cases.push(m(
            &[
                "--form",
                form,
                "--nx",
                "8",
                "--ny",
                "8",
                "--param-reduction",
                "2",
                "--out",
                "m.npy",
            ],
            &["param_reduction", "2"],
        ));
    }
    cases.extend([
        m(
            &[
                "--form",
                "individual",
                "--nx",
                "8",
                "--ny",
                "8",
                "--kernel-size",
                "3",
                "--param-reduction",
                "NaN",
                "--out",
                "m.npy",
            ],
            &["NaN"],
        ),
        with(d, &["--halfbandwidth", "-1"], &["halfbandwidth", "-1"]),
        with(d, &["--halfbandwidth", "NaN"], &["halfbandwidth", "NaN"]),
        with(d, &["--halfbandwidth", "inf"], &["halfbandwidth", "inf"]),
        with(two_d, &["--window2d-width", "-1"], &["window2d_width", "-1"]),
        with(two_d, &["--window2d-width", "NaN"], &["window2d_width", "NaN"]),
        with(two_d, &["--window2d-width", "0"], &["window2d_width", "0"]),
        with(two_d, &["--input2d-width", "0"], &["input2d_width", "0"]),
        with(two_d, &["--output2d-width", "0"], &["output2d_width", "0"]),
        with(two_d, &["--input2d-width", "101"], &["input2d_width", "101"]),
        with(two_d, &["--output2d-width", "101"], &["output2d_width", "101"]),
        m(
            &[
                "--form",
                "gaussian",
                "--nx",
                "4",
                "--ny",
                "4",
                "--kernel-size",
                "3",
                "--out",
                "m.npy",
            ],
            &["gaussian"],
        ),
        m(
            &[
                "--form",
                "random",
                "--nx",
                "4",
                "--ny",
                "4",
                "--kernel-size",
                "3",
                "--out",
                "m.npy",
            ],
            &["random"],
        ),
        with(d, &["--kernel-size", "0x3"], &["0x3"]),
        with(d, &["--kernel-size", "0"], &["0"]),
        with(d, &["--kernel-size", "a"], &["a"]),
        with(d, &["--kernel-size", "3,"], &["3,"]),
        with(d, &["--kernel-size", "3,3,3"], &["3,3,3"]),
        with(d, &["--layout", "weird"], &["weird"]),
        with(d, &["--rng", "nope"], &["nope"]),
        with(d, &["--seed", "-1"], &["-1"]),
        with(d, &["--seed", "4294967296"], &["4294967296"]),
        m(
            &["--form", "diagonal", "--nx", "8", "--ny", "8", "--out", "missing/m.npy"],
            &["missing/m.npy"],
        ),
        m(
            &["--form", "diagonal", "--nx", "8", "--ny", "8", "--out", "m.txt"],
            &["m.txt", ".npy"],
        ),
        m(&["--form", "diagonal", "--nx", "8", "--ny", "8", "--out", "."], &["."]),
        m(
            &["--form", "diagonal", "--nx", "8", "--ny", "8", "--out", "existing_dir"],
            &["existing_dir"],
        ),
        with(d, &["--png", "m.jpg"], &["m.jpg", ".png"]),
        with(d, &["--png", "missing/x.png"], &["missing/x.png"]),
        with(d, &["--png", "existing_dir"], &["existing_dir"]),
        with(d, &["--png", "good.npy"], &["good.npy"]),
        m(
            &[
                "--form",
                "diagonal",
                "--nx",
                "16",
                "--ny",
                "8",
                "--out",
                "good.npy",
                "--png",
                "missing/x.png",
            ],
            &["missing/x.png"],
        ),
    ]);
    Group {
        name: "mask",
        setup: |dir: &Path| {
            std::fs::create_dir_all(dir.join("existing_dir")).unwrap();
            npy_f32(&dir.join("good.npy"), &[2, 2], &[1.0, 0.0, 0.0, 1.0]);
        },
        cases,
    }
}

pub fn task() -> Group {
    let seq: &[&str] = &["task", "--name", "seq_mem", "--out", "t"];
    let nback: &[&str] = &["task", "--name", "nback_mem", "--out", "t"];
    let pic = |latents: &str, labels: &str, names: &[&str]| {
        case(
            &[
                "task",
                "--name",
                "pic_latent_mem",
                "--latents",
                latents,
                "--labels",
                labels,
                "--out",
                "t",
            ],
            names,
        )
    };
    let mut cases = vec![
        case(&["task", "--name", "nope", "--out", "t"], &["nope"]),
        case(&["task", "--name", "seq_mem"], &["--out"]),
        case(&["task", "--out", "t"], &["--name"]),
        with(seq, &["--trials", "0"], &["trials", "0"]),
        with(seq, &["--trials", "1000000000000"], &["--trials", "1000000000000"]),
        with(seq, &["--trials", "-5"], &["-5"]),
        with(seq, &["--pattern-length", "0"], &["pattern_length", "0"]),
        with(seq, &["--pattern-length", HUGE], &["--pattern-length", HUGE]),
        with(seq, &["--low", "1", "--high", "0"], &["high", "0", "low = 1"]),
        with(seq, &["--low", "0.5", "--high", "0.5"], &["high", "0.5"]),
        with(seq, &["--low", "NaN"], &["low", "NaN"]),
        with(seq, &["--high", "inf"], &["high", "inf"]),
        with(seq, &["--low", "-1e308", "--high", "1e308"], &["high"]),
        with(seq, &["--n-back", "2"], &["--n-back"]),
        with(seq, &["--trial-length", "5"], &["--trial-length"]),
        with(seq, &["--latents", "lat.npy"], &["--latents"]),
        with(seq, &["--rescale", "true"], &["--rescale"]),
        with(seq, &["--rng", "nope"], &["nope"]),
        with(seq, &["--seed", "-3"], &["-3"]),
        with(nback, &["--trial-length", "0"], &["trial_length", "0"]),
        with(nback, &["--trial-length", HUGE], &["--trial-length", HUGE]),
        with(nback, &["--n-back", "0"], &["n_back", "0"]),
        with(nback, &["--n-back", "9", "--trial-length", "5"], &["n_back", "9"]),
        with(nback, &["--n-back", "5", "--trial-length", "5"], &["n_back", "5"]),
        with(nback, &["--pattern-length", "3"], &["--pattern-length"]),
        with(nback, &["--low", "0"], &["--low"]),
        with(nback, &["--trials", "0"], &["trials", "0"]),
        case(&["task", "--name", "seq_mem", "--out", "file.txt"], &["file.txt"]),
        case(&["task", "--name", "pic_latent_mem", "--out", "t"], &["--latents"]),
        case(
            &["task", "--name", "pic_latent_mem", "--latents", "lat.npy", "--out", "t"],
            &["--labels"],
        ),
        pic("missing.npy", "lab.npy", &["missing.npy"]),
        pic("lat.npy", "missing.npy", &["missing.npy"]),
        pic("garbage.npy", "lab.npy", &["garbage.npy"]),
        pic("trunc.npy", "lab.npy", &["trunc.npy"]),
        pic("empty.npy", "lab.npy", &["empty.npy"]),
        pic("lat_1d.npy", "lab.npy", &["lat_1d.npy"]),
        pic("lat_3d.npy", "lab.npy", &["lat_3d.npy"]),
        pic("lat.npy", "lab_short.npy", &["lab_short.npy"]),
        pic("lat.npy", "lab_neg.npy", &["lab_neg.npy", "-1"]),
        pic("lat.npy", "lab_2d.npy", &["lab_2d.npy"]),
        pic("lat.npy", "lab_f32.npy", &["lab_f32.npy"]),
        pic("lat_nan.npy", "lab.npy", &["lat_nan.npy", "NaN"]),
        pic("lat_empty.npy", "lab_empty.npy", &["lab_empty.npy"]),
        pic("lat.npy", "garbage.npy", &["garbage.npy"]),
        pic("lat.npy", "lab_trunc.npy", &["lab_trunc.npy"]),
        // Valid input, but the earlier set's Y.npy cannot be replaced (a folder stands there):
        // X.npy must not be replaced either.
        case(
            &[
                "task",
                "--name",
                "pic_latent_mem",
                "--latents",
                "lat.npy",
                "--labels",
                "lab.npy",
                "--out",
                "blocked",
            ],
            &["Y.npy"],
        ),
    ];
    cases.push(with(
        &[
            "task",
            "--name",
            "pic_latent_mem",
            "--latents",
            "lat.npy",
            "--labels",
            "lab.npy",
            "--out",
            "t",
        ],
        &["--rescale", "maybe"],
        &["maybe"],
    ));
    Group {
        name: "task",
        setup: |dir: &Path| {
            let lat: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
            npy_f32(&dir.join("lat.npy"), &[20, 5], &lat);
            npy_i64(
                &dir.join("lab.npy"),
                &[20],
                &(0..20).map(|i| i % 10).collect::<Vec<_>>(),
            );
            npy_f32(&dir.join("lat_1d.npy"), &[20], &lat[..20]);
            npy_f32(&dir.join("lat_3d.npy"), &[5, 4, 5], &lat);
            npy_i64(&dir.join("lab_short.npy"), &[5], &[0, 1, 2, 3, 4]);
            npy_i64(&dir.join("lab_neg.npy"), &[20], &[-1; 20]);
            npy_i64(&dir.join("lab_2d.npy"), &[4, 5], &[0; 20]);
            npy_f64(&dir.join("lab_f32.npy"), &[20], &[0.5; 20]);
            let mut nan = lat.clone();
            nan[13] = f32::NAN;
            npy_f32(&dir.join("lat_nan.npy"), &[20, 5], &nan);
            npy_f32(&dir.join("lat_empty.npy"), &[0, 5], &[]);
            npy_i64(&dir.join("lab_empty.npy"), &[0], &[]);
            write(&dir.join("garbage.npy"), GARBAGE);
            write(&dir.join("trunc.npy"), &half_of(&dir.join("lat.npy")));
            write(&dir.join("lab_trunc.npy"), &half_of(&dir.join("lab.npy")));
            write(&dir.join("empty.npy"), b"");
            write(&dir.join("file.txt"), b"a file, not a folder");
            // An earlier set whose Y.npy cannot be replaced (a folder stands there).
            write(&dir.join("blocked/X.npy"), b"old X");
            std::fs::create_dir_all(dir.join("blocked/Y.npy")).unwrap();
        },
        cases,
    }
}
