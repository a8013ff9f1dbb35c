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
        bio.layers
            .iter()
            .map(|l| (l.layer_index().unwrap(), l.param))
            .collect::<Vec<_>>(),
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
                cl.path
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
        assert!(
            msg.contains(r#"the converted weights are ["0.kernel", "2.kernel", "4.kernel"]"#),
            "{msg}"
        );
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

// ---- Nested models: recursion, recurrent layers, skips, the activity path ----

use biolayers::bio::SkippedWeight;
use biolayers::layers::{
    visit_layers, BottleneckConfig, Conv2dConfig, ConvLstmConfig, ElmanRnnConfig, Flatten, PaddingConfig, Residual,
};

/// A 4-neuron topology with some connections absent (`[from·4 + to]`).
fn partial_topology() -> Vec<bool> {
    (0..16).map(|k| k % 3 != 1).collect()
}

/// `Sequential[Sequential[ElmanRnn 3→4→4], Dense 4→6, Residual(Dense 6→6, ReLU, Dense 6→6),
/// Sequential[Sequential[Dense 6→2]]]`: an RNN nested in a container, a residual block and a
/// doubly nested head. Input `(batch, T, 3)`, output `(batch·T, 2)`.
fn nested_rnn_model(seed: u64, freeze_recurrent: bool) -> Sequential {
    let mut rng = Stream::seeded(seed);
    let rnn = ElmanRnnConfig::new(3, 4, 4)
        .with_topology(partial_topology())
        .with_freeze_recurrent(freeze_recurrent)
        .init(&mut rng)
        .unwrap();
    let main = Sequential::new()
        .push(DenseConfig::new(6, 6).init(&mut rng).unwrap())
        .push(Activation::Relu)
        .push(DenseConfig::new(6, 6).init(&mut rng).unwrap());
    Sequential::new()
        .push(Sequential::new().push(rnn))
        .push(DenseConfig::new(4, 6).init(&mut rng).unwrap())
        .push(Residual::new(main, Sequential::new(), Some(Activation::Relu)))
        .push(Sequential::new().push(Sequential::new().push(DenseConfig::new(6, 2).init(&mut rng).unwrap())))
}

fn sequence_batch(batch: usize, steps: usize, features: usize) -> Tensor {
    let v: Vec<f32> = (0..batch * steps * features)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0)
        .collect();
    Tensor::from_vec(v, &[batch, steps, features]).unwrap()
}

fn mse_to_half(
    rows: usize,
    cols: usize,
) -> impl FnOnce(&bioautograd::Graph, &bioautograd::Var) -> bioautograd::Result<bioautograd::Var> {
    move |g, y| {
        let t = g.input(Tensor::from_vec(vec![0.5; rows * cols], &[rows, cols])?);
        g.mse(y, &t)
    }
}

#[test]
fn converts_a_nested_model_with_an_rnn_at_every_depth() {
    let mut model = nested_rnn_model(0, false);
    let first_params: Vec<(String, usize)> = visit_layers(&model)
        .into_iter()
        .map(|v| (v.path, v.first_param))
        .collect();
    let first = |path: &str| first_params.iter().find(|(p, _)| p == path).unwrap().1;
    let cfg = BioConfig {
        fuzzy_lr_distribution: Distribution::LayerAdaptive,
        ..BioConfig::default()
    };
    let bio = BioConverter::new(cfg)
        .convert(&mut model, &mut Stream::seeded(1))
        .unwrap();
    let keys: Vec<String> = bio.layers.iter().map(|cl| cl.key()).collect();
    assert_eq!(
        keys,
        [
            "0.0.w_ih",
            "0.0.w_hh",
            "0.0.w_out",
            "1.kernel",
            "2.main.0.kernel",
            "2.main.2.kernel",
            "3.0.0.kernel"
        ]
    );
    // Each weight's index in the whole model's parameters, and its shape.
    let params = model.params();
    for cl in &bio.layers {
        assert_eq!(cl.param, first(&cl.path) + cl.layer_param, "{}", cl.key());
        assert_eq!(
            params[cl.param].value.shape().iter().product::<usize>(),
            cl.synapses.factors().len(),
            "{}",
            cl.key()
        );
        assert!(params[cl.param].name.ends_with(&cl.weight));
    }
    // The recurrent weight's factors are 1 off the topology, and vary on it.
    let hh = bio.synapses_at("0.0.w_hh").unwrap();
    for (p, c) in hh.factors().iter().zip(partial_topology()) {
        assert!(c || *p == 1.0);
    }
    assert!(hh.factors().iter().zip(partial_topology()).any(|(p, c)| c && *p != 1.0));
    // layer_adaptive numbers the converted layers (not weights) in model order.
    let index: Vec<i64> = bio
        .layers
        .iter()
        .map(|cl| cl.synapses.config().fuzzy_lr_layer_index)
        .collect();
    assert_eq!(index, [0, 0, 0, 1, 2, 3, 4]);
    assert!(bio
        .layers
        .iter()
        .all(|cl| cl.synapses.config().fuzzy_lr_total_layers == 5));
    // Upstream's last-layer rule looks at direct children only: "1" is the only converted one,
    // so nothing is marked; a path marks a nested layer.
    assert!(bio.layers.iter().all(|cl| !cl.synapses.is_last_layer()));
    assert!(bio.skipped.is_empty(), "{:?}", bio.skipped);
    let marked = BioConverter {
        config: BioConfig::default(),
        last_layer: LastLayer::Path("3.0.0".into()),
    }
    .convert(&mut nested_rnn_model(0, false), &mut Stream::seeded(1))
    .unwrap();
    let last: Vec<String> = marked
        .layers
        .iter()
        .filter(|cl| cl.synapses.is_last_layer())
        .map(|cl| cl.key())
        .collect();
    assert_eq!(last, ["3.0.0.kernel"]);
    let e = invalid_config(
        BioConverter {
            config: BioConfig::default(),
            last_layer: LastLayer::Path("3.0".into()),
        }
        .convert(&mut nested_rnn_model(0, false), &mut Stream::seeded(1))
        .unwrap_err(),
    );
    assert!(e.contains("3.0") && e.contains("3.0.0"), "{e}");
    // Reaching the state: a path with one weight, a key, the flat index; a path with several
    // weights names them.
    assert_eq!(bio.synapses_at("2.main.2").unwrap().factors().len(), 36);
    assert_eq!(bio.synapses(1).unwrap().factors().len(), 24);
    assert_eq!(bio.synapses_at("0.0.w_out").unwrap().factors().len(), 16);
    let e = invalid_config(bio.synapses_at("0.0").unwrap_err());
    assert!(
        e.contains("0.0.w_ih") && e.contains("0.0.w_hh") && e.contains("0.0.w_out"),
        "{e}"
    );
    let e = invalid_config(bio.synapses(2).unwrap_err());
    assert!(e.contains("2.main.0.kernel"), "{e}");
}

#[test]
fn a_nested_rnn_model_trains_and_its_absent_connections_stay_zero() {
    let mut model = nested_rnn_model(2, false);
    let mut bio = BioConverter::new(BioConfig::default())
        .convert(&mut model, &mut Stream::seeded(3))
        .unwrap();
    let hh = bio.layers[1].param;
    let before = model.params()[hh].value.to_vec().unwrap();
    let mut opt = sgd().build().unwrap();
    let schedule = BioSchedule {
        crystallize: true,
        rejuvenate_every: Some(2),
        ..BioSchedule::default()
    };
    let mut losses = Vec::new();
    for _ in 0..4 {
        losses.push(
            bio.train_step(
                &mut model,
                &mut opt,
                sequence_batch(2, 3, 3),
                mse_to_half(6, 2),
                &schedule,
            )
            .unwrap(),
        );
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let after = model.params()[hh].value.to_vec().unwrap();
    for (k, c) in partial_topology().into_iter().enumerate() {
        if !c {
            assert_eq!(after[k], 0.0, "absent connection {k}");
        }
    }
    assert_ne!(before, after, "the recurrent weights train");
}

#[test]
fn frozen_weights_and_layers_without_a_conversion_are_reported_by_path() {
    // A frozen recurrent matrix is left alone; the RNN's other weights are converted.
    let mut model = nested_rnn_model(0, true);
    let bio = BioConverter::new(BioConfig::default())
        .convert(&mut model, &mut Stream::seeded(1))
        .unwrap();
    assert!(bio.layers.iter().all(|cl| cl.key() != "0.0.w_hh"));
    assert_eq!(bio.layers.len(), 6);
    assert_eq!(bio.skipped.len(), 1);
    assert_eq!(bio.skipped[0].path, "0.0");
    assert_eq!(bio.skipped[0].weight.as_deref(), Some("w_hh"));
    assert!(
        bio.skipped[0].to_string().starts_with("0.0.w_hh (elman_rnn): frozen"),
        "{}",
        bio.skipped[0]
    );

    // Conv, a ResNet bottleneck (batch norms inside), a ConvLSTM and a dense head.
    let mut model = conv_model(5);
    let bio = BioConverter::new(BioConfig::default())
        .convert(&mut model, &mut Stream::seeded(1))
        .unwrap();
    let keys: Vec<String> = bio.layers.iter().map(|cl| cl.key()).collect();
    assert_eq!(
        keys,
        [
            "0.kernel",
            "1.main.0.kernel",
            "1.main.3.kernel",
            "1.main.6.kernel",
            "2.kernel",
            "2.recurrent_kernel",
            "4.kernel"
        ]
    );
    let skipped: Vec<(&str, &str, Option<&str>)> = bio
        .skipped
        .iter()
        .map(|s: &SkippedWeight| (s.path.as_str(), s.layer.as_str(), s.weight.as_deref()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("1.main.1", "batchnorm2d", None),
            ("1.main.4", "batchnorm2d", None),
            ("1.main.7", "batchnorm2d", None)
        ]
    );
    // Direct children "0", "2" and "4" are converted: upstream's rule marks "4".
    let last: Vec<String> = bio
        .layers
        .iter()
        .filter(|cl| cl.synapses.is_last_layer())
        .map(|cl| cl.key())
        .collect();
    assert_eq!(last, ["4.kernel"]);
}

/// `Sequential[Conv 2→4 3×3, Bottleneck(4, f = 1), ConvLstm 4→2 3×3 T = 2, Flatten, Dense 2·4·4→3]`
/// on `(n, 2, 4, 4)` images.
fn conv_model(seed: u64) -> Sequential {
    let mut rng = Stream::seeded(seed);
    Sequential::new()
        .push(
            Conv2dConfig::new(2, 4, (3, 3))
                .with_padding(PaddingConfig::Same)
                .init(&mut rng)
                .unwrap(),
        )
        .push(BottleneckConfig::new(4, 1, 1, false).init(&mut rng).unwrap())
        .push(ConvLstmConfig::new(4, 2, (3, 3), 2).init(&mut rng).unwrap())
        .push(Flatten)
        .push(DenseConfig::new(32, 3).init(&mut rng).unwrap())
}

fn images(n: usize) -> Tensor {
    let v: Vec<f32> = (0..n * 32).map(|i| ((i * 5 % 13) as f32 - 6.0) / 6.0).collect();
    Tensor::from_vec(v, &[n, 2, 4, 4]).unwrap()
}

#[test]
fn splitting_and_dale_on_a_recurrent_layer_are_refused_before_the_model_changes() {
    let x = images(2);
    let mut model = conv_model(5);
    let before = predict(&mut model, x.clone()).unwrap().to_vec().unwrap();
    for (cfg, field) in [
        (
            BioConfig {
                weight_splitting_gamma: 2,
                ..BioConfig::default()
            },
            "weight_splitting_Gamma",
        ),
        (
            BioConfig {
                apply_dales_principle: true,
                ..BioConfig::default()
            },
            "apply_dales_principle",
        ),
    ] {
        let e = invalid_config(
            BioConverter::new(cfg)
                .convert(&mut model, &mut Stream::seeded(1))
                .unwrap_err(),
        );
        assert!(e.contains(field) && e.contains("2 (conv_lstm)"), "{e}");
        assert_eq!(predict(&mut model, x.clone()).unwrap().to_vec().unwrap(), before);
    }
    // A Γ that the second dense layer refuses resets the first one's splitting.
    let mut rng = Stream::seeded(4);
    let mut dense = Sequential::new()
        .push(DenseConfig::new(4, 4).init(&mut rng).unwrap())
        .push(DenseConfig::new(4, 3).init(&mut rng).unwrap())
        .push(DenseConfig::new(3, 2).init(&mut rng).unwrap());
    let x = Tensor::from_vec((0..8).map(|i| i as f32 / 8.0).collect(), &[2, 4]).unwrap();
    let before = predict(&mut dense, x.clone()).unwrap().to_vec().unwrap();
    let cfg = BioConfig {
        weight_splitting_gamma: 2,
        ..BioConfig::default()
    };
    let e = invalid_config(
        BioConverter::new(cfg)
            .convert(&mut dense, &mut Stream::seeded(1))
            .unwrap_err(),
    );
    assert!(e.contains("layer 1"), "{e}");
    assert_eq!(predict(&mut dense, x).unwrap().to_vec().unwrap(), before);
}

#[test]
fn a_conv_lstm_in_a_converted_model_trains_with_activity_counts() {
    let mut model = conv_model(6);
    let cfg = BioConfig {
        fuzzy_lr_distribution: Distribution::Activity,
        fuzzy_lr_dynamic: true,
        ..BioConfig::default()
    };
    let mut bio = BioConverter::new(cfg)
        .convert(&mut model, &mut Stream::seeded(1))
        .unwrap();
    let mut opt = sgd().build().unwrap();
    let loss = bio
        .train_step(
            &mut model,
            &mut opt,
            images(2),
            |g, y| g.cross_entropy(y, &[0, 2]),
            &BioSchedule::default(),
        )
        .unwrap();
    assert!(loss.is_finite());
    // Every weight counted its outputs: at most batch · spatial per unit, and something.
    for (key, bound) in [
        ("0", 2 * 16),
        ("2.kernel", 2 * 16),
        ("2.recurrent_kernel", 2 * 16),
        ("4", 2),
    ] {
        let counts = bio.synapses_at(key).unwrap().activation_count();
        assert!(counts.iter().all(|&c| c <= bound as f64), "{key} {counts:?}");
        assert!(counts.iter().sum::<f64>() > 0.0, "{key} {counts:?}");
        assert!(bio.synapses_at(key).unwrap().counters().activity_initialized, "{key}");
    }
}

/// The layer outputs of `Sequential[Sequential[ElmanRnn relu], Sequential[Dense]]` computed by
/// hand from its parameters: `(hidden states (batch·T, H), readout (batch·T, O), dense (batch·T, D))`.
fn hand_forward(params: &[Vec<f32>], x: &[f32], (batch, steps, input): (usize, usize, usize)) -> [Vec<f64>; 3] {
    let (w_ih, b_ih, w_hh, b_hh, w_out, b_out, k, b) = (
        &params[0], &params[1], &params[2], &params[3], &params[4], &params[5], &params[6], &params[7],
    );
    let h_n = b_ih.len();
    let o_n = b_out.len();
    let d_n = b.len();
    let f = |v: f32| f64::from(v);
    let (mut states, mut readout, mut dense) = (Vec::new(), Vec::new(), Vec::new());
    for s in 0..batch {
        let mut h = vec![0f64; h_n];
        for t in 0..steps {
            let xt = &x[(s * steps + t) * input..(s * steps + t + 1) * input];
            let next: Vec<f64> = (0..h_n)
                .map(|j| {
                    let a: f64 = (0..input).map(|i| f(xt[i]) * f(w_ih[i * h_n + j])).sum::<f64>()
                        + (0..h_n).map(|i| h[i] * f(w_hh[i * h_n + j])).sum::<f64>()
                        + f(b_ih[j])
                        + f(b_hh[j]);
                    a.max(0.0)
                })
                .collect();
            h = next;
            let y: Vec<f64> = (0..o_n)
                .map(|o| (0..h_n).map(|i| h[i] * f(w_out[i * o_n + o])).sum::<f64>() + f(b_out[o]))
                .collect();
            let z: Vec<f64> = (0..d_n)
                .map(|d| (0..o_n).map(|i| y[i] * f(k[i * d_n + d])).sum::<f64>() + f(b[d]))
                .collect();
            states.extend(&h);
            readout.extend(&y);
            dense.extend(&z);
        }
    }
    [states, readout, dense]
}

/// Upstream's activity count of one batch: per unit, the entries with `|out| > 0.01`.
fn active(out: &[f64], units: usize) -> Vec<f64> {
    let mut c = vec![0.0; units];
    for (i, v) in out.iter().enumerate() {
        // Values this close to the threshold could fall on either side in f32.
        assert!((v.abs() - 0.01).abs() > 1e-4, "output {v} too close to the threshold");
        if v.abs() > 0.01 {
            c[i % units] += 1.0;
        }
    }
    c
}

#[test]
fn activity_counts_read_from_the_tape_follow_the_reference_rule_in_a_nested_model() {
    let mut rng = Stream::seeded(11);
    let rnn = ElmanRnnConfig::new(2, 4, 3)
        .with_topology(partial_topology())
        .init(&mut rng)
        .unwrap();
    let mut model = Sequential::new()
        .push(Sequential::new().push(rnn))
        .push(Sequential::new().push(DenseConfig::new(3, 2).init(&mut rng).unwrap()));
    let nu = 0.16;
    let cfg = BioConfig {
        fuzzy_lr_distribution: Distribution::Activity,
        fuzzy_lr_dynamic: true,
        fuzzy_learning_rate_factor_nu: nu,
        ..BioConfig::default()
    };
    let mut convert_rng = Stream::seeded(12);
    let mut bio = BioConverter::new(cfg.clone())
        .convert(&mut model, &mut convert_rng)
        .unwrap();
    // The mechanisms' stream continues the converter's: replay its draws by hand.
    let mut replay = convert_rng.clone();
    let dims = (3, 4, 2);
    let x: Vec<f32> = (0..24).map(|i| ((i * 5 % 9) as f32 - 3.5) / 2.5).collect();
    let keys = ["0.0.w_ih", "0.0.w_hh", "0.0.w_out", "1.0.kernel"];
    let mut expected_counts: Vec<Vec<f64>> = vec![vec![0.0; 4], vec![0.0; 4], vec![0.0; 3], vec![0.0; 2]];
    let mut opt = sgd().build().unwrap();
    for step in 0..2 {
        let params: Vec<Vec<f32>> = model.params().iter().map(|p| p.value.to_vec().unwrap()).collect();
        let [states, readout, dense] = hand_forward(&params, &x, dims);
        let batch_counts = [
            active(&states, 4),
            active(&states, 4),
            active(&readout, 3),
            active(&dense, 2),
        ];
        for (e, c) in expected_counts.iter_mut().zip(&batch_counts) {
            e.iter_mut().zip(c).for_each(|(e, c)| *e += c);
        }
        // Some units are silent (relu), so the counts differ between units.
        assert!(batch_counts[0].iter().any(|&c| c < 12.0) && batch_counts[0].iter().any(|&c| c > 0.0));
        let before: Vec<Vec<f32>> = keys
            .iter()
            .map(|k| bio.synapses_at(k).unwrap().factors().to_vec())
            .collect();
        bio.train_step(
            &mut model,
            &mut opt,
            Tensor::from_vec(x.clone(), &[3, 4, 2]).unwrap(),
            mse_to_half(12, 2),
            &BioSchedule::default(),
        )
        .unwrap();
        for (k, key) in keys.iter().enumerate() {
            let s = bio.synapses_at(key).unwrap();
            assert_eq!(s.activation_count(), expected_counts[k].as_slice(), "step {step} {key}");
            // The factors: re-sampled on the first update (and then with a 10 % coin), each
            // unit's spread from its share of the activity.
            let resample = step == 0 || replay.uniform01() < 0.1;
            let units = expected_counts[k].len();
            let mean = expected_counts[k].iter().sum::<f64>() / units as f64;
            let support = (*key == "0.0.w_hh").then(partial_topology);
            let want: Vec<f32> = (0..s.factors().len())
                .map(|i| {
                    if !resample {
                        return before[k][i];
                    }
                    if support.as_ref().is_some_and(|t| !t[i]) {
                        return 1.0;
                    }
                    let n = expected_counts[k][i % units] / (mean + 1e-8);
                    let f = (1.0 + (n - 1.0) * 0.1).clamp(0.8, 1.2);
                    let nu_i = nu * (2.0 - f);
                    (1.0 + (2.0 * replay.uniform01() - 1.0) * nu_i).clamp(cfg.fuzzy_lr_min, cfg.fuzzy_lr_max) as f32
                })
                .collect();
            assert_eq!(s.factors(), want.as_slice(), "step {step} {key}");
        }
    }
}
