//! Python RNG mode against CPython/NumPy fixtures (bit-exact).
//!
//! The fixtures in `tests/fixtures/` were written by `xtask/python/bio2art_fixtures.py` (CPython
//! `random` + NumPy), cross-checked there against the original bio2art `from_conn_mat`; see
//! `docs/bio2art.md`.

use std::path::{Path, PathBuf};

use bio2art::{
    convert, scale_neuron_density, Bio2artConfig, Connectome, NeuronDensity, ScaleType, Stream, Warning,
    CONNECTOME_NAMES,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(fixtures().join("cases.json")).expect("cases.json");
    serde_json::from_str(&text).expect("valid json")
}

fn npy_f64(name: &str) -> bionpy::NpyArray<f64> {
    bionpy::read_npy::<f64>(&fixtures().join(name)).expect(name)
}

fn npy_i64(name: &str) -> bionpy::NpyArray<i64> {
    bionpy::read_npy::<i64>(&fixtures().join(name)).expect(name)
}

fn fnv1a64(values: &[f64]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        for b in v.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn config_of(case: &Value) -> Bio2artConfig {
    let f = |k: &str| case[k].as_f64().unwrap_or_else(|| panic!("{k}"));
    let b = |k: &str| case[k].as_bool().unwrap_or_else(|| panic!("{k}"));
    let neuron_density = match &case["nd"] {
        Value::Null => NeuronDensity::default(),
        Value::Array(v) => NeuronDensity::PerRegion(v.iter().map(|x| x.as_u64().unwrap() as usize).collect()),
        other => panic!("nd {other}"),
    };
    Bio2artConfig {
        neuron_density,
        target_sparsity: f("target_sparsity"),
        intrinsic_conn: b("intrinsic_conn"),
        target_sparsity_intrinsic: f("target_sparsity_intrinsic"),
        intrinsic_wei: f("intrinsic_wei"),
        rand_partition: b("rand_partition"),
        keep_diag: b("keep_diag"),
    }
}

#[test]
fn manifest_covers_the_interesting_cases() {
    let m = manifest();
    let cases = m["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    let any = |k: &str, v: Value| cases.iter().any(|c| c[k] == v);
    for (k, v) in [
        ("rand_partition", true),
        ("rand_partition", false),
        ("keep_diag", true),
        ("keep_diag", false),
    ] {
        assert!(any(k, Value::Bool(v)), "{k}={v}");
    }
    assert!(any("intrinsic_conn", Value::Bool(false)));
    let conns: std::collections::BTreeSet<&str> = cases.iter().map(|c| c["connectome"].as_str().unwrap()).collect();
    assert_eq!(conns.len(), CONNECTOME_NAMES.len(), "every connectome is exercised");
}

#[test]
fn python_mode_is_bit_identical_to_cpython() {
    let m = manifest();
    for case in m["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let conn = Connectome::load(case["connectome"].as_str().unwrap()).unwrap();
        let seed = case["seed"].as_u64().unwrap();
        let net = convert(&conn, &config_of(case), &mut Stream::python(i128::from(seed))).unwrap();
        let mm = case["m"].as_u64().unwrap() as usize;
        assert_eq!(net.n_neurons, mm, "{name}: M");
        assert_eq!(
            net.nonzero_count(),
            case["nnz"].as_u64().unwrap() as usize,
            "{name}: nonzeros"
        );

        // bio2art's returned region_neuron_ids, in its (shuffled) order.
        let ids = npy_i64(case["ids_file"].as_str().unwrap());
        let ours: Vec<i64> = net
            .upstream_region_neuron_ids
            .iter()
            .flatten()
            .map(|&v| v as i64)
            .collect();
        assert_eq!(ours, ids.data, "{name}: upstream region_neuron_ids order");

        if let Some(file) = case["w_file"].as_str() {
            let w = npy_f64(file);
            assert_eq!(w.shape, vec![mm, mm], "{name}");
            for (k, (a, b)) in net.weights.iter().zip(&w.data).enumerate() {
                assert!(
                    a.to_bits() == b.to_bits(),
                    "{name}: W[{}, {}] = {a:e}, CPython {b:e}",
                    k / mm,
                    k % mm
                );
            }
        } else {
            let rows = npy_f64(case["rowsum_file"].as_str().unwrap());
            for (r, want) in rows.data.iter().enumerate() {
                let got: f64 = net.weights[r * mm..(r + 1) * mm].iter().sum();
                assert!(
                    (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "{name}: row {r} sums {got} vs {want}"
                );
            }
            let digest = format!("{:016x}", fnv1a64(&net.weights));
            assert_eq!(digest, case["w_fnv1a64"].as_str().unwrap(), "{name}: W digest");
        }
    }
}

#[test]
fn lost_intrinsic_weight_is_reported() {
    // Fixture case human_n1_nodiag_lost: one neuron per region, keep_diag = false.
    let conn = Connectome::load("Human_Betzel_Normalized").unwrap();
    let config = Bio2artConfig {
        keep_diag: false,
        ..Bio2artConfig::default()
    };
    let net = convert(&conn, &config, &mut Stream::python(5)).unwrap();
    assert_eq!(net.warnings.len(), conn.n_regions());
    assert!(matches!(
        net.warnings[0],
        Warning::LostIntrinsicWeight { region: 0, .. }
    ));
    assert!(net.warnings[0].to_string().contains("ctx-lh-bankssts_1"));
    assert!((0..net.n_neurons).all(|i| net.weight(i, i) == Some(0.0)));
}

#[test]
fn column_sums_follow_numpy_pairwise_summation() {
    let m = manifest();
    let mut naive_differs = false;
    for entry in m["colsums"].as_array().unwrap() {
        let conn = Connectome::load(entry["connectome"].as_str().unwrap()).unwrap();
        let want = npy_f64(entry["file"].as_str().unwrap());
        let got = conn.column_sums();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want.data), "{}", conn.name());
        let n = conn.n_regions();
        for (j, w) in want.data.iter().enumerate() {
            let naive = (0..n).fold(0.0, |s, i| s + conn.weights()[i * n + j]);
            naive_differs |= naive.to_bits() != w.to_bits();
        }
    }
    assert!(
        naive_differs,
        "the fixtures must discriminate pairwise from left-to-right sums"
    );
}

#[test]
fn density_scaling_matches_upstream() {
    let m = manifest();
    let conn = Connectome::load("Marmoset_Normalized").unwrap();
    let nd = conn.neuron_density().unwrap();
    for entry in m["scales"].as_array().unwrap() {
        let scale: ScaleType = entry["scale"].as_str().unwrap().parse().unwrap();
        let seed = entry["seed_neuron"].as_u64().unwrap() as usize;
        let want = npy_i64(entry["file"].as_str().unwrap());
        let got: Vec<i64> = scale_neuron_density(nd, seed, scale)
            .unwrap()
            .iter()
            .map(|&v| v as i64)
            .collect();
        assert_eq!(got, want.data, "{scale:?} x {seed}");
    }
}

/// Values printed by NumPy: `C = np.load("C_Marmoset_Normalized.npy"); C[0, 21], C[21, 0], ...`.
/// Reading the Fortran-ordered file as C order would swap each pair.
#[test]
fn fortran_order_is_honoured() {
    let marm = Connectome::load("Marmoset_Normalized").unwrap();
    assert_eq!(marm.weight(0, 21), Some(0.0127501547349));
    assert_eq!(marm.weight(21, 0), Some(0.0));
    assert_eq!(marm.weight(0, 8), Some(0.0177907307264));
    assert_eq!(marm.weight(8, 0), Some(0.0179011677919));
    let dro = Connectome::load("Drosophila").unwrap();
    assert_eq!(dro.weight(0, 1), Some(23.3195659646965));
    assert_eq!(dro.weight(1, 0), Some(35.025179233914));
}
