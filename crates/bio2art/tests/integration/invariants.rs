//! Own-RNG (ChaCha8) mode: structural invariants of the conversion.

use bio2art::{convert, Bio2artConfig, Bio2artNetwork, Connectome, NeuronDensity, RngKind, Stream};

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300)
}

/// Per source neuron of region i, the entries assigned in region j's block.
fn row_block(net: &Bio2artNetwork, src: usize, j: usize) -> Vec<(usize, f64, bool)> {
    let m = net.n_neurons;
    net.regions[j]
        .clone()
        .map(|t| (t, net.weights[src * m + t], net.connected[src * m + t]))
        .collect()
}

fn keep(frac: f64, n: usize) -> usize {
    // Upstream rule written independently: exact 1.0 keeps all, else round half even, at least 1.
    if frac == 1.0 {
        n
    } else {
        ((frac * n as f64).round_ties_even() as usize).max(1)
    }
}

fn check(conn: &Connectome, cfg: &Bio2artConfig, seed: u64) {
    let net = convert(conn, cfg, &mut Stream::seeded(seed)).unwrap();
    let n = conn.n_regions();
    let s_in = conn.column_sums();
    let counts = &net.neuron_counts;

    // Regions tile 0..M contiguously in order; the upstream lists hold the same sets.
    let mut next = 0;
    for (r, range) in net.regions.iter().enumerate() {
        assert_eq!(range.start, next);
        assert_eq!(range.len(), counts[r]);
        next = range.end;
        let mut ids = net.upstream_region_neuron_ids[r].clone();
        ids.sort_unstable();
        assert_eq!(ids, range.clone().collect::<Vec<_>>());
    }
    assert_eq!(next, net.n_neurons);
    assert_eq!(net.neuron_regions().len(), net.n_neurons);

    for i in 0..n {
        for j in 0..n {
            let cij = conn.weight(i, j).unwrap();
            let block = net.block_sum(i, j).unwrap();
            if i == j {
                if !cfg.intrinsic_conn {
                    assert_eq!(block, 0.0);
                    continue;
                }
                let w_int = cfg.intrinsic_wei * s_in[i] / (1.0 - cfg.intrinsic_wei);
                let ni = counts[i];
                if ni == 1 && !cfg.keep_diag {
                    assert_eq!(block, 0.0, "lost intrinsic weight of region {i}");
                    continue;
                }
                assert!(close(block, w_int, 1e-12), "intrinsic block {i}: {block} vs {w_int}");
                let k = if cfg.target_sparsity_intrinsic == 1.0 {
                    if cfg.keep_diag {
                        ni
                    } else {
                        ni - 1
                    }
                } else {
                    let k = keep(cfg.target_sparsity_intrinsic, ni);
                    if !cfg.keep_diag && k == ni {
                        k - 1
                    } else {
                        k
                    }
                }
                .max(1);
                for src in net.regions[i].clone() {
                    let row = row_block(&net, src, i);
                    assert_eq!(
                        row.iter().filter(|e| e.2).count(),
                        k,
                        "intrinsic targets of neuron {src}"
                    );
                    if !cfg.keep_diag {
                        assert!(!net.connected[src * net.n_neurons + src], "self-connection of {src}");
                    }
                    if !cfg.rand_partition {
                        let v = w_int / (ni * k) as f64;
                        assert!(row.iter().all(|e| if e.2 { e.1 == v } else { e.1 == 0.0 }));
                    }
                }
                continue;
            }
            if cij == 0.0 {
                assert_eq!(block, 0.0, "empty block {i}->{j}");
                assert!(net.regions[i]
                    .clone()
                    .all(|s| row_block(&net, s, j).iter().all(|e| !e.2)));
                continue;
            }
            assert!(close(block, cij, 1e-12), "block {i}->{j}: {block} vs {cij}");
            let k = keep(cfg.target_sparsity, counts[j]);
            for src in net.regions[i].clone() {
                let row = row_block(&net, src, j);
                assert_eq!(
                    row.iter().filter(|e| e.2).count(),
                    k,
                    "targets of neuron {src} in region {j}"
                );
                if !cfg.rand_partition {
                    let v = cij / (counts[i] * k) as f64;
                    assert!(
                        row.iter().all(|e| if e.2 { e.1 == v } else { e.1 == 0.0 }),
                        "equal weights {i}->{j}"
                    );
                }
            }
        }
    }
}

#[test]
fn marmoset_x4_equal_weights() {
    let conn = Connectome::load("Marmoset_Normalized").unwrap();
    let cfg = Bio2artConfig {
        neuron_density: NeuronDensity::Uniform(4),
        target_sparsity: 0.8,
        keep_diag: false,
        ..Bio2artConfig::default()
    };
    for seed in 0..2 {
        check(&conn, &cfg, seed);
    }
    let net = convert(&conn, &cfg, &mut Stream::seeded(0)).unwrap();
    // 4 * 3 intrinsic + 3 per connection: the same count as upstream's 23004.
    assert_eq!(net.connection_count(), 55 * 4 * 3 + 1862 * 4 * 3);
    assert!(net.warnings.is_empty());
    assert!(close(
        net.total_weight(),
        5.0 * conn.weights().iter().sum::<f64>(),
        1e-12
    ));
}

#[test]
fn mixed_densities_partition_and_diagonal() {
    let conn = Connectome::load("Mouse_Gamanut_Normalized").unwrap();
    let counts: Vec<usize> = (0..19).map(|r| 1 + r % 5).collect();
    for (keep_diag, tsi, rp, ts) in [
        (true, 0.5, true, 0.5),
        (false, 0.5, true, 0.3),
        (true, 1.0, false, 1.0),
        (false, 0.9, false, 0.0),
    ] {
        let cfg = Bio2artConfig {
            neuron_density: NeuronDensity::PerRegion(counts.clone()),
            target_sparsity: ts,
            target_sparsity_intrinsic: tsi,
            rand_partition: rp,
            keep_diag,
            ..Bio2artConfig::default()
        };
        check(&conn, &cfg, 7);
    }
}

#[test]
fn no_intrinsic_and_scaled_density() {
    let conn = Connectome::load("Marmoset_Normalized").unwrap();
    let cfg = Bio2artConfig {
        neuron_density: NeuronDensity::Scaled {
            scale: bio2art::ScaleType::Ratio,
            seed_neuron: 2,
        },
        intrinsic_conn: false,
        target_sparsity: 0.5,
        rand_partition: true,
        ..Bio2artConfig::default()
    };
    check(&conn, &cfg, 1);
}

#[test]
fn single_neuron_regions_keep_their_diagonal() {
    let conn = Connectome::load("Macaque_Normalized").unwrap();
    let cfg = Bio2artConfig::default();
    check(&conn, &cfg, 3);
    let net = convert(&conn, &cfg, &mut Stream::seeded(3)).unwrap();
    let s_in = conn.column_sums();
    for (i, s) in s_in.iter().enumerate() {
        assert_eq!(net.weight(i, i), Some(0.8 * s / (1.0 - 0.8)));
    }
    // Same structure without the diagonal: every intrinsic weight is lost, with a warning each.
    let cfg = Bio2artConfig {
        keep_diag: false,
        ..cfg
    };
    check(&conn, &cfg, 3);
    let net = convert(&conn, &cfg, &mut Stream::seeded(3)).unwrap();
    assert_eq!(net.warnings.len(), 29);
}

#[test]
fn seeds_are_reproducible_and_matter() {
    let conn = Connectome::load("Mouse_Gamanut_Normalized").unwrap();
    let cfg = Bio2artConfig {
        neuron_density: NeuronDensity::Uniform(5),
        ..Bio2artConfig::default()
    };
    let a = convert(&conn, &cfg, &mut RngKind::Seeded.stream(11).unwrap()).unwrap();
    let b = convert(&conn, &cfg, &mut Stream::seeded(11)).unwrap();
    let c = convert(&conn, &cfg, &mut Stream::seeded(12)).unwrap();
    let p = convert(&conn, &cfg, &mut Stream::python(11)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.weights, c.weights);
    assert_ne!(a.weights, p.weights);
    assert_eq!(a.connection_count(), p.connection_count());
}

#[test]
fn transposed_and_region_lookup() {
    let conn = Connectome::load("Mouse_Gamanut_Normalized").unwrap();
    let cfg = Bio2artConfig {
        neuron_density: NeuronDensity::Uniform(2),
        ..Bio2artConfig::default()
    };
    let net = convert(&conn, &cfg, &mut Stream::seeded(0)).unwrap();
    let t = net.transposed();
    let m = net.n_neurons;
    for a in 0..m {
        for b in 0..m {
            assert_eq!(t[b * m + a], net.weights[a * m + b]);
        }
    }
    assert_eq!(net.region_of(0), Some(0));
    assert_eq!(net.region_of(3), Some(1));
    assert_eq!(net.region_of(m), None);
    assert_eq!(net.neuron_regions()[m - 1], 18);
}
