//! The bio-instantiated RNN: absent connections get no gradient, training keeps the topology.

use bioautograd::{Graph, Tensor};
use biolayers::layers::{ElmanRnn, ElmanRnnConfig, Module, RecurrentInit, RnnNonlinearity};
use biolayers::optim::OptimizerConfig;
use biolayers::train::train_step;
use biorng::Stream;

#[test]
fn topology_survives_training_and_the_loss_falls() {
    let h = 12;
    let mut rng = Stream::seeded(0);
    let topo: Vec<bool> = (0..h * h).map(|k| (k * 7 + k / h) % 3 != 0 && k / h != k % h).collect();
    let mut rnn = ElmanRnn::new(2, h, 1, &topo, RnnNonlinearity::Tanh, &mut rng).unwrap();
    // Absent connections start at 0.
    assert!(rnn
        .recurrent()
        .as_slice()
        .unwrap()
        .iter()
        .zip(&topo)
        .all(|(w, c)| *c || *w == 0.0));
    // Task: output at step t the input of step t-1 (needs the recurrence).
    let (b, t) = (8, 6);
    let x: Vec<f32> = (0..b * t * 2)
        .map(|i| ((i * 37 % 11) as f32 / 11.0) * f32::from(u8::from(i % 2 == 1)))
        .collect();
    let mut y = vec![0f32; b * t];
    for s in 0..b {
        for k in 1..t {
            y[s * t + k] = x[(s * t + k - 1) * 2 + 1];
        }
    }
    let g = Graph::new();
    let xv = g.input(Tensor::from_vec(x.clone(), &[b, t, 2]).unwrap());
    let out = rnn.forward(&g, &xv).unwrap();
    assert_eq!(g.shape(&out).unwrap(), vec![b * t, 1]);
    let target = g.input(Tensor::from_vec(y.clone(), &[b * t, 1]).unwrap());
    let loss = g.mse(&out, &target).unwrap();
    let grads = g.backward(&loss).unwrap();
    let dw = grads.slice(&rnn.params()[2].var().unwrap()).unwrap();
    assert!(
        dw.iter().zip(&topo).all(|(d, c)| *c || *d == 0.0),
        "gradient at an absent connection"
    );
    assert!(dw.iter().any(|d| *d != 0.0));
    let mut opt = OptimizerConfig::torch_adam(0.01).build().unwrap();
    let mut losses = Vec::new();
    for _ in 0..150 {
        let xt = Tensor::from_vec(x.clone(), &[b, t, 2]).unwrap();
        losses.push(
            train_step(&mut rnn, &mut opt, xt, |g, out| {
                let target = g.input(Tensor::from_vec(y.clone(), &[b * t, 1])?);
                g.mse(out, &target)
            })
            .unwrap(),
        );
    }
    assert!(losses[149] < 0.3 * losses[0], "{} -> {}", losses[0], losses[149]);
    assert!(rnn
        .recurrent()
        .as_slice()
        .unwrap()
        .iter()
        .zip(&topo)
        .all(|(w, c)| *c || *w == 0.0));
    assert!(ElmanRnn::new(2, h, 1, &topo[1..], RnnNonlinearity::Relu, &mut rng).is_err());
}

fn toy_data(b: usize, t: usize) -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..b * t * 2).map(|i| ((i * 37 % 11) as f32 / 11.0) - 0.3).collect();
    let y: Vec<f32> = (0..b * t).map(|i| ((i * 5 % 7) as f32 / 7.0) - 0.5).collect();
    (x, y)
}

fn max_abs(t: &Tensor) -> f64 {
    t.as_slice()
        .unwrap()
        .iter()
        .fold(0f64, |m, &v| m.max(f64::from(v).abs()))
}

#[test]
fn frozen_recurrent_matrix_stays_bit_identical_while_the_rest_trains() {
    let h = 10;
    let topo: Vec<bool> = (0..h * h).map(|k| k % 3 != 0).collect();
    let cfg = ElmanRnnConfig::new(2, h, 1)
        .with_topology(topo.clone())
        .with_nonlinearity(RnnNonlinearity::Tanh)
        .with_freeze_recurrent(true);
    let mut rnn = cfg.init(&mut Stream::seeded(4)).unwrap();
    assert!(rnn.recurrent_frozen());
    // Freezing does not change the draws.
    let trainable = cfg
        .clone()
        .with_freeze_recurrent(false)
        .init(&mut Stream::seeded(4))
        .unwrap();
    assert_eq!(
        rnn.recurrent().to_vec().unwrap(),
        trainable.recurrent().to_vec().unwrap()
    );
    let before: Vec<Vec<f32>> = rnn.params().iter().map(|p| p.value.to_vec().unwrap()).collect();
    let (b, t) = (4, 5);
    let (x, y) = toy_data(b, t);
    let mut opt = OptimizerConfig::torch_adam(0.01).build().unwrap();
    for _ in 0..5 {
        let xt = Tensor::from_vec(x.clone(), &[b, t, 2]).unwrap();
        train_step(&mut rnn, &mut opt, xt, |g, out| {
            let target = g.input(Tensor::from_vec(y.clone(), &[b * t, 1])?);
            g.mse(out, &target)
        })
        .unwrap();
    }
    let after: Vec<Vec<f32>> = rnn.params().iter().map(|p| p.value.to_vec().unwrap()).collect();
    let names: Vec<String> = rnn.params().iter().map(|p| p.name.clone()).collect();
    for ((name, a), b) in names.iter().zip(&after).zip(&before) {
        if name == "w_hh" {
            let same = a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "frozen w_hh changed");
        } else {
            assert_ne!(a, b, "{name} did not train");
        }
    }
    // No gradient is even computed for the frozen matrix.
    let g = Graph::new();
    let xv = g.input(Tensor::from_vec(x, &[b, t, 2]).unwrap());
    let out = rnn.forward(&g, &xv).unwrap();
    let loss = g.sum(&out).unwrap();
    let grads = g.backward(&loss).unwrap();
    assert!(grads.slice(&rnn.params()[2].var().unwrap()).is_none());
    assert!(grads.slice(&rnn.params()[0].var().unwrap()).is_some());
    // Unfreezing makes it train again.
    rnn.set_freeze_recurrent(false);
    let xt = Tensor::from_vec(toy_data(b, t).0, &[b, t, 2]).unwrap();
    train_step(&mut rnn, &mut opt, xt, |g, out| {
        let target = g.input(Tensor::from_vec(y.clone(), &[b * t, 1])?);
        g.mse(out, &target)
    })
    .unwrap();
    assert_ne!(rnn.recurrent().to_vec().unwrap(), before[2]);
}

#[test]
fn init_schemes_use_pytorchs_bounds() {
    let (i, h, o) = (3, 200, 2);
    for (init, l_ih, l_hh, l_out) in [
        (
            RecurrentInit::Default,
            1.0 / 200f64.sqrt(),
            1.0 / 200f64.sqrt(),
            1.0 / 200f64.sqrt(),
        ),
        (
            RecurrentInit::Xavier,
            (6.0 / 203f64).sqrt(),
            (6.0 / 400f64).sqrt(),
            (6.0 / 202f64).sqrt(),
        ),
        (
            RecurrentInit::He,
            (6.0 / 200f64).sqrt(),
            (6.0 / 200f64).sqrt(),
            (6.0 / 2f64).sqrt(),
        ),
    ] {
        assert_eq!(init.bounds(i, h, o), (l_ih, l_hh, l_out));
        let rnn = ElmanRnnConfig::new(i, h, o)
            .with_init(init)
            .init(&mut Stream::seeded(1))
            .unwrap();
        let p = rnn.params();
        // Every draw inside its bound, and the largest close to it (hundreds of draws).
        for (k, bound) in [(0, l_ih), (2, l_hh), (4, l_out)] {
            let m = max_abs(&p[k].value);
            assert!(m <= bound && m > 0.9 * bound, "{init:?} {}: {m} vs {bound}", p[k].name);
        }
        // Biases keep PyTorch's default in every scheme.
        for k in [1, 3, 5] {
            let m = max_abs(&p[k].value);
            assert!(m <= 1.0 / 200f64.sqrt(), "{init:?} {}", p[k].name);
        }
    }
    assert_eq!(
        RecurrentInit::upstream_for(RecurrentInit::Xavier, RnnNonlinearity::Relu),
        RecurrentInit::He
    );
    assert_eq!(
        RecurrentInit::upstream_for(RecurrentInit::He, RnnNonlinearity::Tanh),
        RecurrentInit::Xavier
    );
    assert_eq!(
        RecurrentInit::upstream_for(RecurrentInit::Default, RnnNonlinearity::Tanh),
        RecurrentInit::Default
    );
    assert_eq!("he".parse::<RecurrentInit>().unwrap(), RecurrentInit::He);
    assert_eq!("tanh".parse::<RnnNonlinearity>().unwrap(), RnnNonlinearity::Tanh);
    assert!("kaiming".parse::<RecurrentInit>().is_err());
    assert!("sigmoid".parse::<RnnNonlinearity>().is_err());
}

#[test]
fn explicit_recurrent_weights_replace_the_draw_and_must_respect_the_topology() {
    let h = 6;
    let topo: Vec<bool> = (0..h * h).map(|k| k / h != k % h).collect();
    let w: Vec<f32> = (0..h * h)
        .map(|k| if topo[k] { k as f32 / 100.0 } else { 0.0 })
        .collect();
    let base = ElmanRnnConfig::new(2, h, 1).with_topology(topo.clone());
    let plain = base.init(&mut Stream::seeded(9)).unwrap();
    let explicit = base
        .clone()
        .with_recurrent_weights(w.clone())
        .init(&mut Stream::seeded(9))
        .unwrap();
    assert_eq!(explicit.recurrent().to_vec().unwrap(), w);
    // The other parameters are drawn exactly as without explicit weights.
    assert_eq!(
        plain.params()[4].value.to_vec().unwrap(),
        explicit.params()[4].value.to_vec().unwrap()
    );
    let mut bad = w.clone();
    bad[0] = 1.0; // the diagonal is absent
    assert!(base
        .clone()
        .with_recurrent_weights(bad.clone())
        .init(&mut Stream::seeded(9))
        .is_err());
    assert!(base
        .clone()
        .with_recurrent_weights(w[1..].to_vec())
        .init(&mut Stream::seeded(9))
        .is_err());
    let mut rnn = plain;
    assert!(rnn.set_recurrent(&bad).is_err());
    rnn.set_recurrent(&w).unwrap();
    assert_eq!(rnn.recurrent().to_vec().unwrap(), w);
    assert!(ElmanRnnConfig::new(0, h, 1).init(&mut Stream::seeded(0)).is_err());
    // No topology = fully connected.
    let full = ElmanRnnConfig::new(2, h, 1).init(&mut Stream::seeded(0)).unwrap();
    assert!(full.topology().iter().all(|&c| c));
}
