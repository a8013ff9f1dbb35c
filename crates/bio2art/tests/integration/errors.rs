//! Upstream's silent failures are typed errors here.

use bio2art::{
    convert, scale_neuron_density, Bio2artConfig, Bio2artSpec, Connectome, Error, NeuronDensity, RngKind, ScaleType,
    Stream,
};

fn run(name: &str, cfg: Bio2artConfig) -> Result<bio2art::Bio2artNetwork, Error> {
    convert(&Connectome::load(name).unwrap(), &cfg, &mut Stream::seeded(0))
}

#[test]
fn unknown_connectome() {
    let e = Connectome::load("Marmoset").unwrap_err();
    assert!(matches!(e, Error::UnknownConnectome { .. }));
    assert!(e.to_string().contains("Marmoset_Normalized"), "{e}");
}

#[test]
fn wrong_density_length() {
    let e = run(
        "Marmoset_Normalized",
        Bio2artConfig {
            neuron_density: NeuronDensity::PerRegion(vec![4; 54]),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::LengthMismatch {
                what: "neuron_density",
                expected: 55,
                got: 54,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn zero_density() {
    let mut v = vec![2; 19];
    v[3] = 0;
    let e = run(
        "Mouse_Gamanut_Normalized",
        Bio2artConfig {
            neuron_density: NeuronDensity::PerRegion(v),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidDensity { index: 3, .. }), "{e}");
    let e = run(
        "Mouse_Gamanut_Normalized",
        Bio2artConfig {
            neuron_density: NeuronDensity::Uniform(0),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidDensity { index: 0, .. }), "{e}");
}

#[test]
fn out_of_range_parameters_name_the_parameter() {
    let cases: Vec<(Bio2artConfig, &str)> = vec![
        (
            Bio2artConfig {
                target_sparsity: 1.5,
                ..Default::default()
            },
            "target_sparsity",
        ),
        (
            Bio2artConfig {
                target_sparsity: -0.1,
                ..Default::default()
            },
            "target_sparsity",
        ),
        (
            Bio2artConfig {
                target_sparsity: f64::NAN,
                ..Default::default()
            },
            "target_sparsity",
        ),
        (
            Bio2artConfig {
                target_sparsity_intrinsic: 2.0,
                ..Default::default()
            },
            "target_sparsity_intrinsic",
        ),
        (
            Bio2artConfig {
                intrinsic_wei: 1.0,
                ..Default::default()
            },
            "intrinsic_wei",
        ),
        (
            Bio2artConfig {
                intrinsic_wei: -0.5,
                ..Default::default()
            },
            "intrinsic_wei",
        ),
    ];
    for (cfg, param) in cases {
        match run("Macaque_Normalized", cfg) {
            Err(Error::InvalidParameter { param: p, .. }) => assert_eq!(p, param),
            other => panic!("{param}: {other:?}"),
        }
    }
    // Unused parameters are not checked: intrinsic_wei without intrinsic blocks.
    assert!(run(
        "Macaque_Normalized",
        Bio2artConfig {
            intrinsic_conn: false,
            intrinsic_wei: 1.0,
            ..Default::default()
        }
    )
    .is_ok());
}

#[test]
fn neuron_density_data_problems() {
    let mac = Connectome::load("Macaque_Normalized").unwrap();
    let nd = mac.neuron_density().unwrap();
    assert_eq!(nd.iter().filter(|v| v.is_nan()).count(), 5);
    let e = scale_neuron_density(nd, 1, ScaleType::Rank).unwrap_err();
    assert!(matches!(e, Error::InvalidDensity { index: 12, .. }), "{e}");
    let e = run(
        "Drosophila",
        Bio2artConfig {
            neuron_density: NeuronDensity::Scaled {
                scale: ScaleType::Rank,
                seed_neuron: 1,
            },
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::NoNeuronDensity { .. }), "{e}");
    assert!(e.to_string().contains("Marmoset_Normalized"));
    assert!(matches!(
        scale_neuron_density(&[1.0, 2.0], 0, ScaleType::Ratio),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        scale_neuron_density(&[1.0, -2.0], 1, ScaleType::Ratio),
        Err(Error::InvalidDensity { index: 1, .. })
    ));
    // A count beyond the limit is the seed's fault, and named as such.
    for scale in [ScaleType::Rank, ScaleType::Ratio] {
        let e = scale_neuron_density(&[1.0, 2.0], 1 << 20, scale).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidParameter {
                    param: "seed_neuron",
                    ..
                }
            ) && e.to_string().contains("1048576"),
            "{e}"
        );
    }
    // Ties: upstream crashes; here ranks follow region order and ratios are plain.
    assert_eq!(
        scale_neuron_density(&[3.0, 1.0, 3.0, 2.0], 2, ScaleType::Rank).unwrap(),
        vec![6, 2, 8, 4]
    );
    assert_eq!(
        scale_neuron_density(&[3.0, 1.0, 3.0, 2.5], 1, ScaleType::Ratio).unwrap(),
        vec![3, 1, 3, 2]
    );
}

#[test]
fn too_many_neurons() {
    let e = run(
        "Marmoset_Normalized",
        Bio2artConfig {
            neuron_density: NeuronDensity::Uniform(1000),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::TooLarge { neurons: 55_000, .. }), "{e}");
}

#[test]
fn caller_matrices_are_validated() {
    assert!(matches!(
        Connectome::from_matrix("x", 2, vec![0.0, 1.0, 1.0]),
        Err(Error::InvalidMatrix { .. })
    ));
    assert!(matches!(
        Connectome::from_matrix("x", 2, vec![0.0, -1.0, 1.0, 0.0]),
        Err(Error::InvalidMatrix { .. })
    ));
    assert!(matches!(
        Connectome::from_matrix("x", 2, vec![0.0, f64::NAN, 1.0, 0.0]),
        Err(Error::InvalidMatrix { .. })
    ));
    assert!(matches!(
        Connectome::from_matrix("x", 0, vec![]),
        Err(Error::InvalidMatrix { .. })
    ));
    let c = Connectome::from_matrix("x", 2, vec![0.0, 1.0, 0.5, 0.0]).unwrap();
    assert!(matches!(
        c.clone().with_region_names(vec!["a".into()]),
        Err(Error::LengthMismatch { .. })
    ));
    let c = c.with_region_names(vec!["a".into(), "b".into()]).unwrap();
    let net = convert(
        &c,
        &Bio2artConfig {
            neuron_density: NeuronDensity::Uniform(3),
            ..Default::default()
        },
        &mut Stream::seeded(1),
    )
    .unwrap();
    assert_eq!(net.n_neurons, 6);
    assert!((net.block_sum(0, 1).unwrap() - 1.0).abs() < 1e-15);
}

#[test]
fn self_connection_warning() {
    let c = Connectome::from_matrix("loop", 2, vec![0.3, 1.0, 0.5, 0.0]).unwrap();
    let net = convert(
        &c,
        &Bio2artConfig {
            neuron_density: NeuronDensity::Uniform(2),
            ..Default::default()
        },
        &mut Stream::python(0),
    )
    .unwrap();
    assert!(matches!(
        net.warnings.as_slice(),
        [bio2art::Warning::SelfConnection { region: 0, .. }]
    ));
}

#[test]
fn spec_and_config_serde() {
    let spec: Bio2artSpec = toml::from_str(
        r#"
        connectome = "Marmoset_Normalized"
        rng = "python"
        seed = 42
        [config]
        neuron_density = 4
        target_sparsity = 0.8
        keep_diag = false
        "#,
    )
    .unwrap();
    assert_eq!(spec.rng, RngKind::Python);
    assert_eq!(spec.config.neuron_density, NeuronDensity::Uniform(4));
    assert_eq!(spec.config.intrinsic_wei, 0.8);
    assert!(spec.config.intrinsic_conn);
    assert_eq!(spec.build().unwrap().connection_count(), 23004);

    let d = Bio2artConfig::default();
    assert_eq!(
        (
            d.target_sparsity,
            d.intrinsic_conn,
            d.target_sparsity_intrinsic,
            d.intrinsic_wei,
            d.rand_partition,
            d.keep_diag
        ),
        (0.2, true, 1.0, 0.8, false, true)
    );
    let c: Bio2artConfig = toml::from_str("neuron_density = [1, 2]").unwrap();
    assert_eq!(c.neuron_density, NeuronDensity::PerRegion(vec![1, 2]));
    let c: Bio2artConfig = toml::from_str("neuron_density = { scale = \"rank\", seed_neuron = 2 }").unwrap();
    assert_eq!(
        c.neuron_density,
        NeuronDensity::Scaled {
            scale: ScaleType::Rank,
            seed_neuron: 2
        }
    );
    assert!(toml::from_str::<Bio2artConfig>("target_sparsty = 0.5").is_err());
    let back: Bio2artSpec = toml::from_str(&toml::to_string(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn bundled_list() {
    let l = bio2art::list().unwrap();
    let sizes: Vec<(&str, usize)> = l.iter().map(|i| (i.name, i.regions)).collect();
    assert_eq!(
        sizes,
        vec![
            ("Drosophila", 49),
            ("Human_Betzel_Normalized", 57),
            ("Macaque_Normalized", 29),
            ("Marmoset_Normalized", 55),
            ("Mouse_Gamanut_Normalized", 19),
            ("Mouse_Ypma_Oh", 56)
        ]
    );
    // Connection counts and symmetry as documented in the data README.
    let conns: Vec<usize> = l.iter().map(|i| i.connections).collect();
    assert_eq!(conns, vec![1950, 632, 536, 1862, 329, 1975]);
    assert_eq!(
        l.iter().filter(|i| i.symmetric).map(|i| i.name).collect::<Vec<_>>(),
        vec!["Human_Betzel_Normalized"]
    );
    let marm = Connectome::load("Marmoset_Normalized").unwrap();
    assert_eq!(marm.region_names()[0], "A6M");
    assert_eq!(marm.region_names().len(), 55);
    assert!(bio2art::DATA_LICENSE.contains("MIT License"));
    assert!(bio2art::DATA_ATTRIBUTION.contains("Goulas"));
}
