//! `bio2art::topology`: orientation, `random_w` and `remap_w`, against NumPy fixtures written by
//! `xtask/python/rnn_topology_reference.py` (upstream's algorithms; `cargo xtask validate`
//! regenerates them) and through their invariants.

use std::path::{Path, PathBuf};

use bio2art::{
    convert, is_symmetric, random_w, recurrent_matrix, remap_w, Bio2artConfig, Connectome, NeuronDensity, Orientation,
    RecurrentMatrix, Stream,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/topology")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(fixtures().join("cases.json")).expect("cases.json");
    serde_json::from_str(&text).expect("valid json")
}

fn npy<T: bionpy::NpyElement>(name: &str) -> Vec<T> {
    bionpy::read_npy::<T>(&fixtures().join(name)).expect(name).data
}

fn transpose<T: Copy + Default>(w: &[T], n: usize) -> Vec<T> {
    let mut t = vec![T::default(); n * n];
    for i in 0..n {
        for j in 0..n {
            t[j * n + i] = w[i * n + j];
        }
    }
    t
}

#[test]
fn random_w_matches_numpy_element_by_element() {
    let cases = manifest()["random_w"].as_array().unwrap().clone();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let seed = case["seed"].as_u64().unwrap() as u32;
        let n = case["n"].as_u64().unwrap() as usize;
        let a: Vec<f64> = npy(&format!("random_{name}_in.npy"));
        let expected: Vec<f64> = npy(&format!("random_{name}_out.npy"));
        assert_eq!(is_symmetric(&a, n), case["symmetric"].as_bool().unwrap(), "{name}");
        let got = random_w(&a, n, &mut Stream::numpy(seed)).unwrap();
        assert_eq!(got.len(), expected.len());
        for (k, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g.to_bits(), e.to_bits(), "{name}: entry ({}, {})", k / n, k % n);
        }
    }
}

#[test]
fn remap_w_matches_the_stable_reference_including_ties() {
    let cases = manifest()["remap_w"].as_array().unwrap().clone();
    assert!(cases.iter().any(|c| c["tied_positions"].as_u64().unwrap() > 1000));
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let n = case["n"].as_u64().unwrap() as usize;
        // Fixtures are in upstream's layout (PyTorch weight_hh[to, from] = bio2art W).
        let w: Vec<f64> = npy(&format!("remap_{name}_in.npy"));
        let init_torch: Vec<f32> = npy(&format!("remap_{name}_init.npy"));
        let expected: Vec<f32> = npy(&format!("remap_{name}_out.npy"));
        let template = RecurrentMatrix::from_neuron_matrix(&w, n, Orientation::Upstream).unwrap();
        let got = remap_w(&template, &transpose(&init_torch, n)).unwrap();
        let got_torch = transpose(&got, n);
        for (k, (g, e)) in got_torch.iter().zip(&expected).enumerate() {
            assert_eq!(g.to_bits(), e.to_bits(), "{name}: entry ({}, {})", k / n, k % n);
        }
    }
}

/// Region 0 projects to region 1 only (one neuron each): bio2art's W[0, 1] > 0.
#[test]
fn orientation_is_pinned_on_a_tiny_asymmetric_connectome() {
    let c = Connectome::from_matrix("tiny", 2, vec![0.0, 0.5, 0.0, 0.0]).unwrap();
    let config = Bio2artConfig {
        intrinsic_conn: false,
        ..Bio2artConfig::default()
    };
    let net = convert(&c, &config, &mut Stream::seeded(0)).unwrap();
    assert_eq!(net.weights, [0.0, 0.5, 0.0, 0.0]);
    // Upstream: weight_hh[to, from] = W[to, from], so neuron 0 receives from neuron 1.
    let up = RecurrentMatrix::from_network(&net, Orientation::Upstream).unwrap();
    assert_eq!(up.weight(1, 0), Some(0.5));
    assert_eq!(up.weight(0, 1), Some(0.0));
    assert_eq!(up.topology(), [false, false, true, false]);
    // bio2art's convention: neuron 1 receives from neuron 0.
    let src = RecurrentMatrix::from_network(&net, Orientation::SourceRow).unwrap();
    assert_eq!(src.weight(0, 1), Some(0.5));
    assert_eq!(src.weight(1, 0), Some(0.0));
    assert_eq!(Orientation::default(), Orientation::Upstream);
}

fn marmoset(rand_partition: bool, seed: u64) -> bio2art::Bio2artNetwork {
    let c = Connectome::load("Marmoset_Normalized").unwrap();
    let config = Bio2artConfig {
        neuron_density: NeuronDensity::Uniform(4),
        target_sparsity: 0.8,
        rand_partition,
        keep_diag: false,
        ..Bio2artConfig::default()
    };
    convert(&c, &config, &mut Stream::seeded(seed)).unwrap()
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

#[test]
fn directed_randomisation_keeps_the_diagonal_the_multiset_and_the_density() {
    let net = marmoset(true, 1);
    let m = net.n_neurons;
    assert!(!is_symmetric(&net.weights, m));
    let r = random_w(&net.weights, m, &mut Stream::seeded(2)).unwrap();
    assert_ne!(r, net.weights);
    for i in 0..m {
        assert_eq!(r[i * m + i], net.weights[i * m + i]);
    }
    assert_eq!(sorted(r.clone()), sorted(net.weights.clone()));
    // The region block structure is gone: some within-block (intrinsic) entries become 0.
    let intrinsic_zeros = (0..m * m)
        .filter(|&k| k / m != k % m && net.region_of(k / m) == net.region_of(k % m) && r[k] == 0.0)
        .count();
    assert!(intrinsic_zeros > 0);
    // Upstream's pipeline order gives the same multiset, oriented.
    let rm = recurrent_matrix(&net, Orientation::Upstream, Some(&mut Stream::seeded(2))).unwrap();
    let direct = RecurrentMatrix::from_neuron_matrix(&r, m, Orientation::Upstream).unwrap();
    assert_eq!(rm, direct);
}

#[test]
fn symmetric_randomisation_stays_symmetric_and_keeps_density() {
    // Human with one neuron per region: W = C (symmetric; the intrinsic weight is lost without
    // self-connections).
    let c = Connectome::load("Human_Betzel_Normalized").unwrap();
    let config = Bio2artConfig {
        keep_diag: false,
        ..Bio2artConfig::default()
    };
    let net = convert(&c, &config, &mut Stream::seeded(0)).unwrap();
    let m = net.n_neurons;
    assert!(is_symmetric(&net.weights, m));
    let mut diag_weights = net.weights.clone();
    for i in 0..m {
        diag_weights[i * m + i] = 0.25 + i as f64; // the diagonal must survive untouched
    }
    for seed in 0..4 {
        let r = random_w(&diag_weights, m, &mut Stream::seeded(seed)).unwrap();
        assert!(is_symmetric(&r, m));
        assert_ne!(r, diag_weights);
        for i in 0..m {
            assert_eq!(r[i * m + i], diag_weights[i * m + i]);
        }
        let nz = |w: &[f64]| w.iter().filter(|&&v| v != 0.0).count();
        assert_eq!(nz(&r), nz(&diag_weights));
        assert_eq!(sorted(r), sorted(diag_weights.clone()));
    }
}

#[test]
fn remap_preserves_the_multiset_and_follows_the_template_rank_order() {
    for rand_partition in [false, true] {
        let net = marmoset(rand_partition, 3);
        let m = net.n_neurons;
        for orientation in [Orientation::Upstream, Orientation::SourceRow] {
            let t = RecurrentMatrix::from_network(&net, orientation).unwrap();
            let mut rng = Stream::seeded(7);
            let bound = 1.0 / (m as f64).sqrt();
            let init: Vec<f32> = (0..m * m).map(|_| rng.uniform(-bound, bound) as f32).collect();
            let out = remap_w(&t, &init).unwrap();
            let topo = t.topology();
            let on: Vec<usize> = (0..m * m).filter(|&k| topo[k]).collect();
            assert!(out.iter().zip(&topo).all(|(v, c)| *c || *v == 0.0));
            let ms = |w: &[f32]| sorted(on.iter().map(|&k| f64::from(w[k])).collect());
            assert_eq!(ms(&out), ms(&init));
            // Rank order: a larger template value never gets a smaller weight.
            let mut by_t = on.clone();
            by_t.sort_by(|&a, &b| t.weights[b].total_cmp(&t.weights[a]));
            for w in by_t.windows(2) {
                if t.weights[w[0]] > t.weights[w[1]] {
                    assert!(out[w[0]] >= out[w[1]]);
                }
            }
            // Ties: by target, then source, the earlier position gets the larger value.
            let mut tied = 0;
            for to in 0..m {
                let col: Vec<usize> = (0..m).map(|from| from * m + to).filter(|&k| topo[k]).collect();
                for w in col.windows(2) {
                    if t.weights[w[0]] == t.weights[w[1]] {
                        assert!(out[w[0]] >= out[w[1]]);
                        tied += 1;
                    }
                }
            }
            assert_eq!(tied > 0, !rand_partition);
        }
    }
}
