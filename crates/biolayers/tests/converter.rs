//! BioConverter on Sequential models and the synaptic-diversity training step; the public
//! state (factors, signs and counters read and set through `BioModel::synapses(_mut)`, each
//! refused value a typed error naming the value and the limit) and the mechanisms' random
//! stream saved and continued.

use bioautograd::Tensor;
use biolayers::bio::{
    split_group_sum, BioConfig, BioConverter, BioModel, BioSchedule, Distribution, LastLayer, SynapsesCounters,
};
use biolayers::layers::{Activation, BatchNorm2d, DenseConfig, Module, Sequential};
use biolayers::optim::{Convention, Optimizer, OptimizerConfig};
use biolayers::train::{predict, train_step};
use biolayers::Error;
use biomask::MaskSpec;
use biorng::Stream;

fn mlp(seed: u64) -> Sequential {
    let mut rng = Stream::seeded(seed);
    Sequential::new()
        .push(DenseConfig::new(8, 6).init(&mut rng).unwrap())
        .push(Activation::Relu)
        .push(DenseConfig::sz(6, 4, MaskSpec::diagonal(0.5)).init(&mut rng).unwrap())
        .push(Activation::Tanh)
        .push(DenseConfig::new(4, 2).init(&mut rng).unwrap())
}

/// Which weights of `mlp`'s masked layer (layer 2, parameter 2) exist.
fn masked_support(model: &Sequential) -> Vec<bool> {
    let w = model.params()[2].value.to_vec().unwrap();
    w.iter().map(|&w| w != 0.0).collect()
}

fn sgd() -> OptimizerConfig {
    OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.0,
        decay: 0.0,
        convention: Convention::Torch,
    }
}

#[test]
fn converts_dense_layers_marks_the_last_and_reports_what_it_cannot_convert() {
    let mut model = mlp(0);
    let bio = BioConverter::new(BioConfig::default())
        .convert(&mut model, &mut Stream::seeded(1))
        .unwrap();
    assert_eq!(
        bio.layers.iter().map(|l| (l.layer, l.param)).collect::<Vec<_>>(),
        vec![(0, 0), (2, 2), (4, 4)]
    );
    assert_eq!(
        bio.layers
            .iter()
            .map(|l| l.synapses.is_last_layer())
            .collect::<Vec<_>>(),
        vec![false, false, true]
    );
    // The masked layer's factors are 1 off its support.
    let support = masked_support(&model);
    for (p, s) in bio.layers[1].synapses.factors().iter().zip(&support) {
        assert!(*s || *p == 1.0);
    }
    assert!(bio.skipped.is_empty());
    let mut with_bn = Sequential::new().push(BatchNorm2d::new(3).unwrap());
    let bio = BioConverter::new(BioConfig::default())
        .convert(&mut with_bn, &mut Stream::seeded(1))
        .unwrap();
    assert_eq!(bio.skipped.len(), 1, "{:?}", bio.skipped);
    // Explicit override of the last layer, and a check that it exists.
    let conv = BioConverter {
        config: BioConfig::default(),
        last_layer: LastLayer::Index(1),
    };
    assert!(conv.convert(&mut mlp(0), &mut Stream::seeded(1)).is_err());
}

#[test]
fn layer_adaptive_factors_depend_on_depth_through_the_converter() {
    let mut rng = Stream::seeded(0);
    let mut model = Sequential::new();
    for _ in 0..4 {
        model = model.push(DenseConfig::new(60, 60).init(&mut rng).unwrap());
    }
    let cfg = BioConfig {
        fuzzy_lr_distribution: Distribution::LayerAdaptive,
        ..BioConfig::default()
    };
    let bio = BioConverter::new(cfg)
        .convert(&mut model, &mut Stream::seeded(1))
        .unwrap();
    let spread = |k: usize| {
        let f = bio.layers[k].synapses.factors();
        f.iter().fold(0f32, |m, &v| m.max((v - 1.0).abs()))
    };
    assert!(
        spread(0) > 0.15 && spread(3) < 0.16 * (1.0 - 0.5 * 3.0 / 4.0) + 1e-6,
        "{} {}",
        spread(0),
        spread(3)
    );
}

#[test]
fn weight_splitting_sums_output_groups_except_on_the_last_layer() {
    let mut rng = Stream::seeded(3);
    let first = DenseConfig {
        use_bias: false,
        ..DenseConfig::new(6, 4)
    }
    .init(&mut rng)
    .unwrap();
    let mut plain = first.clone();
    let mut model = Sequential::new()
        .push(first)
        .push(DenseConfig::new(4, 2).init(&mut rng).unwrap());
    let cfg = BioConfig {
        weight_splitting_gamma: 2,
        ..BioConfig::default()
    };
    let mut bio = BioConverter::new(cfg.clone())
        .convert(&mut model, &mut Stream::seeded(0))
        .unwrap();
    let x = Tensor::from_vec(vec![1.0; 12], &[2, 6]).unwrap();
    let mut want = predict(&mut plain, x.clone()).unwrap().to_vec().unwrap();
    split_group_sum(&mut want, 2, 4, 1, 2).unwrap();
    let g = bioautograd::Graph::new();
    let xv = g.input(x);
    let y = model.layers_mut()[0].forward(&g, &xv).unwrap();
    assert_eq!(g.value(&y).unwrap().to_vec().unwrap(), want);
    // Training through the split layer works.
    let mut opt = sgd().build().unwrap();
    let xt = Tensor::from_vec(vec![0.5; 12], &[2, 6]).unwrap();
    bio.train_step(
        &mut model,
        &mut opt,
        xt,
        |g, out| g.cross_entropy(out, &[0, 1]),
        &BioSchedule::default(),
    )
    .unwrap();
    // Γ must divide the split (output) dimension.
    let mut odd = Sequential::new()
        .push(DenseConfig::new(6, 3).init(&mut rng).unwrap())
        .push(DenseConfig::new(3, 2).init(&mut rng).unwrap());
    assert!(BioConverter::new(cfg)
        .convert(&mut odd, &mut Stream::seeded(0))
        .is_err());
}

#[test]
fn fuzzy_factors_scale_the_sgd_update_and_masked_weights_stay_zero() {
    let x = Tensor::from_vec((0..24).map(|i| (i as f32 * 0.3).sin()).collect(), &[3, 8]).unwrap();
    let labels = [0usize, 1, 1];
    // Baseline: a plain SGD step.
    let mut base = mlp(5);
    let w0: Vec<Vec<f32>> = base.params().iter().map(|p| p.value.to_vec().unwrap()).collect();
    train_step(&mut base, &mut sgd().build().unwrap(), x.clone(), |g, out| {
        g.cross_entropy(out, &labels)
    })
    .unwrap();
    // Converted with uniform factors: each weight moves by p times the baseline step.
    let mut model = mlp(5);
    let mut bio = BioConverter::new(BioConfig::default())
        .convert(&mut model, &mut Stream::seeded(9))
        .unwrap();
    bio.train_step(
        &mut model,
        &mut sgd().build().unwrap(),
        x.clone(),
        |g, out| g.cross_entropy(out, &labels),
        &BioSchedule::default(),
    )
    .unwrap();
    for cl in &bio.layers {
        let before = &w0[cl.param];
        let after_base = base.params()[cl.param].value.to_vec().unwrap();
        let after_bio = model.params()[cl.param].value.to_vec().unwrap();
        for i in 0..before.len() {
            let want = (after_base[i] - before[i]) * cl.synapses.factors()[i];
            assert!(
                ((after_bio[i] - before[i]) - want).abs() < 1e-6,
                "layer {} weight {i}",
                cl.layer
            );
        }
    }
    // Crystallisation and rejuvenation over many steps never revive a masked-out weight.
    let schedule = BioSchedule {
        crystallize: true,
        rejuvenate_every: Some(3),
        ..BioSchedule::default()
    };
    let mut opt = OptimizerConfig::torch_adam(0.01).build().unwrap();
    for _ in 0..10 {
        bio.train_step(
            &mut model,
            &mut opt,
            x.clone(),
            |g, out| g.cross_entropy(out, &labels),
            &schedule,
        )
        .unwrap();
    }
    assert_eq!(bio.steps(), 11);
    let masked = model.params()[2].value.to_vec().unwrap();
    for (w, w_init) in masked.iter().zip(&w0[2]) {
        assert!(*w_init != 0.0 || *w == 0.0);
    }
}

/// One converted training step of an 8-input model on a fixed batch of two ramps.
fn ramp_step(model: &mut Sequential, bio: &mut BioModel, opt: &mut Optimizer, schedule: &BioSchedule) {
    let x = Tensor::from_vec((0..16).map(|i| i as f32 * 0.1 - 0.8).collect(), &[2, 8]).unwrap();
    bio.train_step(model, opt, x, |g, out| g.cross_entropy(out, &[0, 1]), schedule)
        .unwrap();
}

#[test]
fn dale_enforcement_keeps_every_output_sign() {
    let mut model = mlp(2);
    let cfg = BioConfig {
        apply_dales_principle: true,
        ..BioConfig::default()
    };
    let mut bio = BioConverter::new(cfg)
        .convert(&mut model, &mut Stream::seeded(4))
        .unwrap();
    let schedule = BioSchedule {
        enforce_dales_principle: true,
        ..BioSchedule::default()
    };
    let mut opt = OptimizerConfig::torch_adam(0.05).build().unwrap();
    for _ in 0..20 {
        ramp_step(&mut model, &mut bio, &mut opt, &schedule);
    }
    let cl = &bio.layers[0];
    let signs = cl.synapses.signs().unwrap();
    for (i, w) in model.params()[cl.param].value.as_slice().unwrap().iter().enumerate() {
        assert!(*w == 0.0 || w.signum() == signs[i % 6], "weight {i} = {w}");
    }
}

fn converted(dale: bool) -> (Sequential, BioModel) {
    let mut model = mlp(0);
    let cfg = BioConfig {
        apply_dales_principle: dale,
        ..BioConfig::default()
    };
    let bio = BioConverter::new(cfg)
        .convert(&mut model, &mut Stream::seeded(1))
        .unwrap();
    (model, bio)
}

/// The error's text, checked to be the expected variant.
fn invalid_config(e: Error) -> String {
    assert!(matches!(e, Error::InvalidConfig { .. }), "{e:?}");
    e.to_string()
}

fn shape_mismatch(e: Error) -> String {
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e:?}");
    e.to_string()
}

#[test]
fn layers_are_reached_by_their_index_in_the_sequential() {
    let (_, mut bio) = converted(false);
    assert_eq!(bio.synapses(2).unwrap().factors().len(), 24);
    assert_eq!(bio.synapses_mut(4).unwrap().factors().len(), 8);
    for e in [bio.synapses(1).unwrap_err(), bio.synapses_mut(7).unwrap_err()] {
        let msg = invalid_config(e);
        assert!(msg.contains("the converted layers are [0, 2, 4]"), "{msg}");
    }
}

#[test]
fn factors_are_set_and_every_bad_value_is_refused_naming_it() {
    let (_, mut bio) = converted(false);
    let s = bio.synapses_mut(0).unwrap();
    let mut want: Vec<f32> = (0..48).map(|i| i as f32 / 24.0).collect();
    // 0 (crystallised far down) and the max itself are legal.
    want[0] = 0.0;
    want[47] = 2.0;
    s.set_factors(&want).unwrap();
    assert_eq!(s.factors(), &want[..]);

    let msg = shape_mismatch(s.set_factors(&want[..47]).unwrap_err());
    assert!(msg.contains("factors [47] vs weight [48]"), "{msg}");
    for (i, v, limit) in [
        (3, f32::NAN, "[0, fuzzy_lr_max = 2]"),
        (5, f32::INFINITY, "[0, fuzzy_lr_max = 2]"),
        (7, -0.25, "[0, fuzzy_lr_max = 2]"),
        (9, 2.001, "[0, fuzzy_lr_max = 2]"),
    ] {
        let mut bad = want.clone();
        bad[i] = v;
        let msg = invalid_config(s.set_factors(&bad).unwrap_err());
        assert!(msg.contains(&format!("[{i}] = {v}")) && msg.contains(limit), "{msg}");
        assert_eq!(s.factors(), &want[..], "a refused value changes nothing");
    }

    // A fuzzy_lr_max that f32 cannot hold: factors sampled at the max are accepted back.
    let mut model = mlp(0);
    let cfg = BioConfig {
        fuzzy_lr_min: 1.1,
        fuzzy_lr_max: 1.1,
        ..BioConfig::default()
    };
    let mut bio = BioConverter::new(cfg)
        .convert(&mut model, &mut Stream::seeded(1))
        .unwrap();
    let s = bio.synapses_mut(0).unwrap();
    let sampled = s.factors().to_vec();
    assert!(sampled.iter().all(|&p| p == 1.1f32));
    s.set_factors(&sampled).unwrap();
}

#[test]
fn factors_outside_the_connection_mask_stay_one() {
    let (model, mut bio) = converted(false);
    let support = masked_support(&model);
    let off = support.iter().position(|s| !s).unwrap();
    let on = support.iter().position(|s| *s).unwrap();
    let s = bio.synapses_mut(2).unwrap();
    let mut f = vec![1.0f32; 24];
    f[on] = 0.5;
    s.set_factors(&f).unwrap();
    f[off] = 0.5;
    let msg = invalid_config(s.set_factors(&f).unwrap_err());
    assert!(
        msg.contains(&format!("[{off}] = 0.5")) && msg.contains("fixed at 1"),
        "{msg}"
    );
}

#[test]
fn signs_are_set_only_with_dales_principle_and_only_to_plus_or_minus_one() {
    let (_, mut plain) = converted(false);
    let msg = invalid_config(plain.synapses_mut(0).unwrap().set_signs(&[1.0; 6]).unwrap_err());
    assert!(
        msg.contains("apply_dales_principle") && msg.contains("must be true"),
        "{msg}"
    );
    assert!(plain.synapses(0).unwrap().signs().is_none());

    let (_, mut bio) = converted(true);
    let s = bio.synapses_mut(0).unwrap();
    let want = [1.0, -1.0, -1.0, 1.0, 1.0, -1.0];
    s.set_signs(&want).unwrap();
    assert_eq!(s.signs(), Some(&want[..]));
    let msg = shape_mismatch(s.set_signs(&want[..5]).unwrap_err());
    assert!(msg.contains("signs [5] vs sign groups [6]"), "{msg}");
    for (i, v) in [(2, 0.5f32), (4, 0.0), (5, f32::NAN), (0, -2.0)] {
        let mut bad = want;
        bad[i] = v;
        let msg = invalid_config(s.set_signs(&bad).unwrap_err());
        assert!(
            msg.contains(&format!("[{i}] = {v}")) && msg.contains("exactly 1 or -1"),
            "{msg}"
        );
        assert_eq!(s.signs(), Some(&want[..]));
    }
}

#[test]
fn set_signs_decide_what_dale_enforcement_keeps() {
    let (mut model, mut bio) = converted(true);
    let flipped: Vec<f32> = bio.synapses(0).unwrap().signs().unwrap().iter().map(|s| -s).collect();
    bio.synapses_mut(0).unwrap().set_signs(&flipped).unwrap();
    let mut params = model.params_mut();
    let w = params[0].value.data_mut().unwrap();
    bio.synapses(0).unwrap().enforce_dales_principle(w).unwrap();
    // The converter gave every weight its old sign: all of them are now of the wrong sign.
    assert!(w.iter().all(|&v| v == 0.0), "{w:?}");
}

#[test]
fn counters_are_read_set_and_bad_counts_refused() {
    let (_, mut bio) = converted(false);
    let s = bio.synapses_mut(2).unwrap();
    let want = SynapsesCounters {
        activation_count: vec![0.0, 3.0, 1e9, 7.5],
        activity_initialized: true,
        weight_adaptive_initialized: true,
        update_step: u64::MAX,
    };
    s.set_counters(want.clone()).unwrap();
    assert_eq!(s.counters(), want);
    let msg = shape_mismatch(
        s.set_counters(SynapsesCounters {
            activation_count: vec![0.0; 3],
            ..want.clone()
        })
        .unwrap_err(),
    );
    assert!(msg.contains("activation_count [3] vs output units [4]"), "{msg}");
    for (i, v) in [(1, -1.0), (3, f64::NAN), (0, f64::INFINITY)] {
        let mut bad = want.clone();
        bad.activation_count[i] = v;
        bad.update_step = 1;
        let msg = invalid_config(s.set_counters(bad).unwrap_err());
        assert!(msg.contains(&format!("[{i}] = {v}")) && msg.contains(">= 0"), "{msg}");
        assert_eq!(s.counters(), want);
    }
}

/// Factors set to 0 freeze a layer under fuzzy learning rates: the setter reaches training.
#[test]
fn zero_factors_freeze_a_layer_in_training() {
    let (mut model, mut bio) = converted(false);
    bio.synapses_mut(4).unwrap().set_factors(&[0.0; 8]).unwrap();
    let before = model.params()[4].value.to_vec().unwrap();
    let first = model.params()[0].value.to_vec().unwrap();
    let mut opt = sgd().build().unwrap();
    let x = Tensor::from_vec((0..24).map(|i| (i as f32 * 0.3).sin()).collect(), &[3, 8]).unwrap();
    bio.train_step(
        &mut model,
        &mut opt,
        x,
        |g, out| g.cross_entropy(out, &[0, 1, 1]),
        &BioSchedule::default(),
    )
    .unwrap();
    assert_eq!(model.params()[4].value.to_vec().unwrap(), before);
    assert_ne!(model.params()[0].value.to_vec().unwrap(), first);
}

/// Two steps drawing from the mechanisms' stream (volume-dependent rates, rejuvenation); between
/// them `between` may move the stream. Returns the parameters and the stream's final position.
fn two_steps(between: impl FnOnce(&mut BioModel)) -> (Vec<Vec<f32>>, biorng::StreamState) {
    let (mut model, mut bio) = converted(false);
    let schedule = BioSchedule {
        volume_dependent_lr: true,
        rejuvenate_every: Some(2),
        ..BioSchedule::default()
    };
    let mut opt = OptimizerConfig::torch_adam(0.01).build().unwrap();
    ramp_step(&mut model, &mut bio, &mut opt, &schedule);
    between(&mut bio);
    ramp_step(&mut model, &mut bio, &mut opt, &schedule);
    let params = model.params().iter().map(|p| p.value.to_vec().unwrap()).collect();
    (params, bio.rng_state())
}

#[test]
fn the_mechanisms_stream_is_saved_and_continued() {
    let want = two_steps(|_| {});
    // Another stream position changes what the second step draws...
    let moved = two_steps(|bio| bio.set_rng_state(&Stream::seeded(77).state()).unwrap());
    assert_ne!(moved.0, want.0);
    // ...and restoring the saved position gives the same step again.
    let restored = two_steps(|bio| {
        let saved = bio.rng_state();
        bio.set_rng_state(&Stream::numpy(77).state()).unwrap();
        bio.set_rng_state(&saved).unwrap();
    });
    assert_eq!(restored, want);
    // The rejuvenation schedule follows the step counter.
    let shifted = two_steps(|bio| bio.set_steps(2));
    assert_ne!(shifted.0, want.0);

    let (_, mut bio) = converted(false);
    let before = bio.rng_state();
    let bad = biorng::StreamState::Numpy {
        words: vec![1; 10],
        index: 0,
        cached_normal: None,
    };
    let e = bio.set_rng_state(&bad).unwrap_err();
    assert!(
        matches!(e, Error::Rng(_)) && e.to_string().contains("10 state words"),
        "{e}"
    );
    assert_eq!(bio.rng_state(), before, "a refused state changes nothing");
}
