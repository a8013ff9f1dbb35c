//! Synaptic diversity: formulas on recorded draws, statistics, exact operations, config errors.

use biolayers::bio::{gamma_sample, BioConfig, BioSynapses, Distribution, LayerShape};
use biorng::Stream;
use rand_distr::{Beta, Distribution as _};

fn cfg(d: Distribution) -> BioConfig {
    BioConfig {
        fuzzy_lr_distribution: d,
        ..BioConfig::default()
    }
}

fn dense(n_in: usize, n_out: usize) -> LayerShape {
    LayerShape::Dense {
        inputs: n_in,
        outputs: n_out,
    }
}

fn make(c: &BioConfig, shape: LayerShape, seed: u64) -> (BioSynapses, Vec<f32>) {
    let mut w: Vec<f32> = (0..shape.len()).map(|i| ((i as f32) * 0.37).sin() * 0.1).collect();
    let s = BioSynapses::new(c, shape, &mut w, None, &mut Stream::seeded(seed)).unwrap();
    (s, w)
}

fn stats(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let s = (v.iter().map(|&x| (f64::from(x) - m).powi(2)).sum::<f64>() / n).sqrt();
    (m, s)
}

#[test]
fn factors_equal_their_formula_on_the_recorded_draws() {
    type Formula = Box<dyn Fn(&mut Stream) -> f32>;
    let nu = 0.16f64;
    let clamp = |v: f64| v.clamp(0.5, 2.0) as f32;
    let cases: Vec<(Distribution, Formula)> = vec![
        (Distribution::Baseline, Box::new(|_| 1.0)),
        (
            Distribution::Uniform,
            Box::new(move |r| clamp(1.0 + (2.0 * r.uniform01() * nu - nu))),
        ),
        (
            Distribution::Temporal,
            Box::new(move |r| clamp(1.0 + (2.0 * r.uniform01() * nu - nu))),
        ),
        (
            Distribution::Normal,
            Box::new(move |r| clamp(1.0 + nu * r.standard_normal())),
        ),
        (
            Distribution::Lognormal,
            Box::new(move |r| clamp((-nu * nu / 2.0 + nu * r.standard_normal()).exp())),
        ),
        (
            Distribution::Gamma,
            Box::new(move |r| clamp(1.0 + gamma_sample(1.0 / nu, nu, r).unwrap())),
        ),
        (
            Distribution::Beta,
            Box::new(move |r| {
                let b = Beta::new(1.0 / nu, 1.0 / nu).unwrap().sample(r);
                clamp(1.0 + (2.0 * b - 1.0) * nu)
            }),
        ),
        (Distribution::WeightAdaptive, Box::new(|_| 1.0)),
        (Distribution::Activity, Box::new(|_| 1.0)),
    ];
    for (d, formula) in cases {
        let (s, _) = make(&cfg(d), dense(7, 5), 11);
        let mut r = Stream::seeded(11);
        let want: Vec<f32> = (0..35).map(|_| formula(&mut r)).collect();
        assert_eq!(s.factors(), &want[..], "{d:?}");
    }
    // layer_adaptive uses ν' = ν(1 - 0.5 i/L) at construction (upstream's converter never did).
    let c = BioConfig {
        fuzzy_lr_layer_index: 3,
        fuzzy_lr_total_layers: 4,
        ..cfg(Distribution::LayerAdaptive)
    };
    let (s, _) = make(&c, dense(7, 5), 2);
    let nu2 = nu * (1.0 - 0.5 * 3.0 / 4.0);
    let mut r = Stream::seeded(2);
    let want: Vec<f32> = (0..35)
        .map(|_| clamp(1.0 + (2.0 * r.uniform01() * nu2 - nu2)))
        .collect();
    assert_eq!(s.factors(), &want[..]);
    assert!(s.warnings().is_empty());
    let (s, _) = make(&cfg(Distribution::LayerAdaptive), dense(2, 2), 2);
    assert_eq!(s.warnings().len(), 1, "unset layer index must be reported");
}

#[test]
fn distribution_statistics_over_large_samples() {
    let shape = dense(500, 400); // 200 000 factors
    let (u, _) = make(&cfg(Distribution::Uniform), shape, 1);
    let (m, s) = stats(u.factors());
    assert!(
        (m - 1.0).abs() < 2e-3 && (s - 0.16 / 3f64.sqrt()).abs() < 2e-3,
        "uniform {m} {s}"
    );
    // Gamma keeps upstream's 1 + Gamma(1/ν, 1/ν): mean ≈ 1.842, std ≈ 0.197, ≈ 44.6 % at the max.
    let (g, _) = make(&cfg(Distribution::Gamma), shape, 2);
    let (m, s) = stats(g.factors());
    let at_max = g.factors().iter().filter(|&&v| v == 2.0).count() as f64 / 200_000.0;
    assert!(
        (m - 1.842).abs() < 0.01 && (s - 0.197).abs() < 0.01 && (at_max - 0.446).abs() < 0.01,
        "gamma {m} {s} {at_max}"
    );
    let (b, _) = make(&cfg(Distribution::Beta), shape, 3);
    let (m, s) = stats(b.factors());
    assert!(
        (m - 1.0).abs() < 2e-3 && (s - 0.16 / (2.0f64 / 0.16 + 1.0).sqrt()).abs() < 2e-3,
        "beta {m} {s}"
    );
    let (l, _) = make(&cfg(Distribution::Lognormal), shape, 4);
    assert!((stats(l.factors()).0 - 1.0).abs() < 3e-3);
    let (n, _) = make(&cfg(Distribution::Normal), shape, 5);
    let low = n.factors().iter().filter(|&&v| v == 0.5).count() as f64 / 200_000.0;
    assert!((0.0003..0.002).contains(&low), "normal clamp fraction {low}");
    // layer_adaptive: deeper layers get narrower factors.
    let spread = |i| {
        let c = BioConfig {
            fuzzy_lr_layer_index: i,
            fuzzy_lr_total_layers: 10,
            ..cfg(Distribution::LayerAdaptive)
        };
        stats(make(&c, dense(100, 100), 6).0.factors()).1
    };
    assert!(spread(0) > spread(9) * 1.5);
}

#[test]
fn crystallize_is_exact_and_cumulative() {
    let c = cfg(Distribution::Baseline);
    let mut w = vec![1.0f32, 0.5, -2.0, 0.0, 1e-3];
    let mut s = BioSynapses::new(&c, dense(5, 1), &mut w, None, &mut Stream::seeded(0)).unwrap();
    // mean|w| = 0.7002; |g|/|w|: 1e-6 (< thresh), 0.2, 0.1, 0/0 (NaN: false), 1.0 (|g| = 1e-3)
    let g = vec![1e-6f32, 0.1, -0.2, 0.0, 1e-3];
    s.crystallize(&w, &g).unwrap();
    assert_eq!(s.factors(), &[0.6, 1.0, 1.0, 1.0, 1.0]);
    let g = vec![0.9f32, 0.1, 0.1, 0.0, 0.1];
    for _ in 0..4 {
        s.crystallize(&w, &g).unwrap();
    }
    // entry 0: once more for the threshold and 4 times for |g| > mean; entry 4: |g| > 0.7? no, but
    // |g|/|w| = 100 is not small; untouched.
    assert!((s.factors()[0] - 0.6f32.powi(5)).abs() < 1e-7);
    assert_eq!(&s.factors()[1..], &[1.0, 1.0, 1.0, 1.0]);
    let mut grad = vec![1.0f32; 5];
    s.fuzzy_learning_rates(&mut grad).unwrap();
    assert_eq!(grad, s.factors());
}

#[test]
fn temporal_schedule_decays_every_k_and_adds_noise_every_10k() {
    let c = BioConfig {
        fuzzy_lr_dynamic: true,
        fuzzy_lr_update_freq: 2,
        fuzzy_lr_decay: 0.5,
        ..cfg(Distribution::Temporal)
    };
    let (mut s, w) = make(&c, dense(3, 2), 9);
    let mut p: Vec<f32> = s.factors().to_vec();
    let mut rng = Stream::seeded(77);
    let mut mirror = Stream::seeded(77);
    for step in 1..=20u64 {
        s.update_fuzzy_learning_rates(&w, None, &mut rng).unwrap();
        if step % 2 == 0 {
            for v in &mut p {
                let mut x = 1.0 + (f64::from(*v) - 1.0) * 0.5;
                if step % 20 == 0 {
                    x += 0.1 * (2.0 * mirror.uniform01() * 0.16 - 0.16);
                }
                *v = x.clamp(0.5, 2.0) as f32;
            }
        }
        assert_eq!(s.factors(), &p[..], "step {step}");
    }
}

#[test]
fn dales_principle_signs_and_enforcement() {
    let c = BioConfig {
        apply_dales_principle: true,
        ..cfg(Distribution::Baseline)
    };
    let mut w: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) * 0.1).collect();
    let s = BioSynapses::new(&c, dense(3, 4), &mut w, None, &mut Stream::seeded(4)).unwrap();
    let signs = s.signs().unwrap().to_vec();
    assert_eq!(signs.len(), 4);
    for (i, v) in w.iter().enumerate() {
        assert_eq!(v.signum(), signs[i % 4], "weight {i} does not carry its output's sign");
    }
    let mut w2 = w.clone();
    w2[0] = -w2[0];
    s.enforce_dales_principle(&mut w2).unwrap();
    assert_eq!(w2[0], 0.0);
    assert_eq!(&w2[1..], &w[1..]);
    let mut last = s.clone();
    last.set_last_layer(true);
    let mut w3 = w.clone();
    w3[0] = -w3[0];
    last.enforce_dales_principle(&mut w3).unwrap();
    assert_eq!(w3[0], -w[0]);
    // Conv: one sign per (cin, cout) pair, shared by the taps.
    let mut wc = vec![0.3f32; 2 * 2 * 3 * 4];
    let sc = BioSynapses::new(
        &c,
        LayerShape::Conv {
            kh: 2,
            kw: 2,
            cin: 3,
            cout: 4,
        },
        &mut wc,
        None,
        &mut Stream::seeded(1),
    )
    .unwrap();
    assert_eq!(sc.signs().unwrap().len(), 12);
    assert_eq!(wc[5], wc[12 + 5]);
    let off = make(&cfg(Distribution::Baseline), dense(2, 2), 0).0;
    assert!(off.enforce_dales_principle(&mut [0.0; 4]).is_err());
    assert_eq!(s.l1_reg(), 12.0 + 4.0);
}

#[test]
fn rejuvenation_degenerate_cases_and_rate() {
    let (s, _) = make(&cfg(Distribution::Baseline), dense(10, 10), 0);
    let mut rng = Stream::seeded(5);
    let mut w = vec![10.0f32; 100];
    s.rejuvenate_weights(&mut w, &mut rng).unwrap();
    assert!(w.iter().all(|&v| v == 1.0));
    let mut w = vec![-3.0f32; 100];
    s.rejuvenate_weights(&mut w, &mut rng).unwrap();
    assert!(w.iter().all(|&v| v == -1.0));
    let mut w = vec![0.0f32; 100];
    assert_eq!(s.rejuvenate_weights(&mut w, &mut rng).unwrap(), 100);
    assert!(w.iter().all(|&v| v > 0.0 && v < 1e-6));
    let mut w = vec![0.5f32; 100];
    w[3] = f32::NAN;
    s.rejuvenate_weights(&mut w, &mut rng).unwrap();
    assert!(w.iter().all(|v| v.is_finite()));
    // i.i.d. uniform weights: about (1 - e^{-dre√3})/(dre√3) ≈ 7.2 % replaced per call.
    let (big, _) = make(&cfg(Distribution::Baseline), dense(200, 200), 0);
    let mut w: Vec<f32> = (0..40_000).map(|_| rng.uniform(-0.07, 0.07) as f32).collect();
    let k = big.rejuvenate_weights(&mut w, &mut rng).unwrap() as f64 / 40_000.0;
    assert!((0.06..0.085).contains(&k), "replaced fraction {k}");
    // Legacy: all 2.0 -> 1.0; a negative mean no longer produces NaN.
    let mut w = vec![2.0f32; 100];
    s.rejuvenate_weights_legacy(&mut w, &mut rng).unwrap();
    assert!(w.iter().all(|&v| v == 1.0));
    let mut w: Vec<f32> = (0..100).map(|i| -0.5 + (i as f32) * 0.001).collect();
    s.rejuvenate_weights_legacy(&mut w, &mut rng).unwrap();
    assert!(w.iter().all(|v| v.is_finite()));
}

#[test]
fn weight_adaptive_works_with_dynamic_on_and_activity_counts() {
    let c = BioConfig {
        fuzzy_lr_dynamic: true,
        ..cfg(Distribution::WeightAdaptive)
    };
    let (mut s, w) = make(&c, dense(20, 10), 0);
    assert!(s.factors().iter().all(|&v| v == 1.0));
    s.update_fuzzy_learning_rates(&w, None, &mut Stream::seeded(1)).unwrap();
    assert!(
        s.factors().iter().any(|&v| v != 1.0),
        "weight_adaptive must initialise with dynamic = true"
    );
    let c = BioConfig {
        fuzzy_lr_dynamic: true,
        ..cfg(Distribution::Activity)
    };
    let (mut s, w) = make(&c, dense(4, 3), 0);
    // batch 2, 3 outputs: unit 0 always active, unit 1 once, unit 2 never.
    let out = [1.0f32, 0.5, 0.0, 2.0, 0.0, 0.001];
    s.update_fuzzy_learning_rates(&w, Some((&out, 2, 1)), &mut Stream::seeded(3))
        .unwrap();
    assert_eq!(s.activation_count(), &[2.0, 1.0, 0.0]);
    // Busy units get narrower factors: ν_i = ν(2 - f_i), f = clamp(1 + (n - 1)/10, 0.8, 1.2).
    assert!(s.factors().iter().all(|&v| (0.5..=2.0).contains(&v)));
    assert!(s
        .update_fuzzy_learning_rates(&w, Some((&out[..5], 2, 1)), &mut Stream::seeded(3))
        .is_err());
}

#[test]
fn volume_dependent_factor_statistics() {
    let (s, _) = make(&cfg(Distribution::Baseline), dense(200, 100), 0);
    let w = vec![0.0f32; 20_000];
    let mut g = vec![1.0f32; 20_000];
    s.volume_dependent_lr(&w, &mut g, &mut Stream::seeded(8)).unwrap();
    let (m, sd) = stats(&g);
    assert!((m - 0.1).abs() < 0.001 && (sd / m - 0.2).abs() < 0.01, "{m} {sd}");
}

#[test]
fn masked_layers_only_touch_the_support() {
    let c = BioConfig {
        fuzzy_lr_distribution: Distribution::Uniform,
        ..BioConfig::default()
    };
    let support: Vec<bool> = (0..20).map(|i| i % 3 != 0).collect();
    let mut w: Vec<f32> = (0..20)
        .map(|i| if i % 3 == 0 { 0.0 } else { 0.1 + i as f32 * 0.01 })
        .collect();
    let mut s = BioSynapses::new(&c, dense(4, 5), &mut w, Some(&support), &mut Stream::seeded(0)).unwrap();
    for i in (0..20).step_by(3) {
        assert_eq!(s.factors()[i], 1.0);
    }
    s.crystallize(&w, &[1.0; 20]).unwrap();
    for i in (0..20).step_by(3) {
        assert_eq!(s.factors()[i], 1.0);
    }
    s.rejuvenate_weights(&mut w, &mut Stream::seeded(1)).unwrap();
    for i in (0..20).step_by(3) {
        assert_eq!(w[i], 0.0);
    }
}

#[test]
fn config_defaults_serde_and_every_validation_error() {
    let d = BioConfig::default();
    assert_eq!(d.fuzzy_learning_rate_factor_nu, 0.16);
    assert_eq!(d.crystal_thresh, 4.5e-5);
    assert_eq!(d.fuzzy_lr_update_freq, 100);
    let t = d.to_toml().unwrap();
    assert!(t.contains("weight_splitting_Gamma"));
    assert_eq!(BioConfig::from_toml(&t).unwrap(), d);
    let c = BioConfig::from_toml("fuzzy_lr_distribution = \"gamma\"\nweight_splitting_Gamma = 2").unwrap();
    assert_eq!(
        (c.fuzzy_lr_distribution, c.weight_splitting_gamma),
        (Distribution::Gamma, 2)
    );
    let e = BioConfig::from_toml("fuzzy_lr_nu = 0.2").unwrap_err().to_string();
    assert!(e.contains("fuzzy_lr_nu"), "{e}");
    let e = BioConfig::from_toml("fuzzy_lr_distribution = \"cauchy\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cauchy"), "{e}");
    let bad: Vec<(&str, BioConfig)> = vec![
        (
            "fuzzy_learning_rate_factor_nu",
            BioConfig {
                fuzzy_learning_rate_factor_nu: 0.0,
                ..d.clone()
            },
        ),
        (
            "dampening_factor",
            BioConfig {
                dampening_factor: 1.0,
                ..d.clone()
            },
        ),
        (
            "crystal_thresh",
            BioConfig {
                crystal_thresh: -1.0,
                ..d.clone()
            },
        ),
        (
            "rejuvenation_parameter_dre",
            BioConfig {
                rejuvenation_parameter_dre: 0.0,
                ..d.clone()
            },
        ),
        (
            "base_lr",
            BioConfig {
                base_lr: 1.0,
                ..d.clone()
            },
        ),
        (
            "stability_factor",
            BioConfig {
                stability_factor: f64::NAN,
                ..d.clone()
            },
        ),
        (
            "lr_variability",
            BioConfig {
                lr_variability: 0.0,
                ..d.clone()
            },
        ),
        (
            "fuzzy_lr_min",
            BioConfig {
                fuzzy_lr_min: 2.0,
                fuzzy_lr_max: 1.0,
                ..d.clone()
            },
        ),
        (
            "fuzzy_lr_decay",
            BioConfig {
                fuzzy_lr_decay: 1.5,
                ..d.clone()
            },
        ),
        (
            "fuzzy_lr_decay",
            BioConfig {
                fuzzy_lr_decay: 0.0,
                ..d.clone()
            },
        ),
        (
            "fuzzy_lr_update_freq",
            BioConfig {
                fuzzy_lr_update_freq: 0,
                ..d.clone()
            },
        ),
    ];
    for (field, c) in bad {
        match c.validate().unwrap_err() {
            biolayers::Error::InvalidConfig { name, .. } => assert_eq!(name, field),
            e => panic!("{e:?}"),
        }
    }
}

/// Upstream accepts `fuzzy_lr_min = 0` (its wide `[0, 10]` settings are used in practice); so do
/// we. Negative or non-finite minima stay errors naming the field.
#[test]
fn fuzzy_lr_min_zero_is_accepted_as_upstream() {
    let wide = BioConfig {
        fuzzy_lr_min: 0.0,
        fuzzy_lr_max: 10.0,
        ..BioConfig::default()
    };
    assert!(wide.validate().is_ok());
    for bad in [-0.1, f64::NAN, f64::INFINITY] {
        let e = BioConfig {
            fuzzy_lr_min: bad,
            ..BioConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("fuzzy_lr_min"), "{e}");
    }
}
