//! Optimiser checks: per-element formulas on recorded sequences, cross-convention equivalences,
//! behaviour on a quadratic, masked zeros, and configuration errors.

use biolayers::optim::{Convention, OptimizerConfig};

fn sgd(lr: f64, momentum: f64, nesterov: bool, convention: Convention) -> OptimizerConfig {
    OptimizerConfig::Sgd {
        lr,
        momentum,
        nesterov,
        weight_decay: 0.0,
        decay: 0.0,
        convention,
    }
}

fn adam(lr: f64, convention: Convention) -> OptimizerConfig {
    OptimizerConfig::Adam {
        lr,
        beta1: None,
        beta2: None,
        eps: None,
        weight_decay: 0.0,
        decay: 0.0,
        convention,
    }
}

fn rms(lr: f64, momentum: f64, convention: Convention) -> OptimizerConfig {
    OptimizerConfig::RmsProp {
        lr,
        rho: None,
        eps: None,
        momentum,
        weight_decay: 0.0,
        decay: 0.0,
        convention,
    }
}

const GRADS: [[f32; 3]; 4] = [
    [0.5, -1.0, 2.0],
    [0.25, 0.5, -1.5],
    [-0.75, 1.25, 0.1],
    [1.0, -0.2, 0.3],
];

fn run(cfg: &OptimizerConfig) -> Vec<f32> {
    let mut opt = cfg.build().unwrap();
    let mut w = vec![1.0f32, -2.0, 0.5];
    for g in GRADS {
        opt.step(&mut [(&mut w[..], &g[..])]).unwrap();
    }
    w
}

fn assert_close(a: &[f32], b: &[f64], tol: f64) {
    for (x, y) in a.iter().zip(b) {
        assert!((f64::from(*x) - y).abs() <= tol * y.abs().max(1.0), "{a:?} vs {b:?}");
    }
}

/// With a constant learning rate the Keras (velocity) and PyTorch (buffer) momentum forms give the
/// same trajectory: two different code paths checked against each other.
#[test]
fn sgd_momentum_conventions_agree_at_constant_lr() {
    for nesterov in [false, true] {
        let k = run(&sgd(0.1, 0.9, nesterov, Convention::Keras));
        let t = run(&sgd(0.1, 0.9, nesterov, Convention::Torch));
        assert_close(&k, &t.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(), 1e-6);
    }
}

/// PyTorch Adam, formula applied in f64 to the recorded gradients.
#[test]
fn adam_torch_matches_its_formula() {
    let (lr, b1, b2, eps) = (0.01f64, 0.9f64, 0.999f64, 1e-8f64);
    let mut w = [1.0f64, -2.0, 0.5];
    let (mut m, mut v) = ([0f64; 3], [0f64; 3]);
    for (t, g) in GRADS.iter().enumerate() {
        let t = (t + 1) as i32;
        for i in 0..3 {
            let g = f64::from(g[i]);
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            let mh = m[i] / (1.0 - b1.powi(t));
            let vh = v[i] / (1.0 - b2.powi(t));
            w[i] -= lr * mh / (vh.sqrt() + eps);
        }
    }
    assert_close(&run(&adam(0.01, Convention::Torch)), &w, 1e-5);
}

/// Keras Adam: lr_t = lr·sqrt(1-β2^t)/(1-β1^t), ε outside the root of the *uncorrected* v.
#[test]
fn adam_keras_matches_its_formula_and_differs_from_torch_for_tiny_gradients() {
    let (lr, b1, b2, eps) = (0.01f64, 0.9f64, 0.999f64, 1e-7f64);
    let mut w = [1.0f64, -2.0, 0.5];
    let (mut m, mut v) = ([0f64; 3], [0f64; 3]);
    for (t, g) in GRADS.iter().enumerate() {
        let t = (t + 1) as i32;
        let lr_t = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
        for i in 0..3 {
            let g = f64::from(g[i]);
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            w[i] -= lr_t * m[i] / (v[i].sqrt() + eps);
        }
    }
    assert_close(&run(&adam(0.01, Convention::Keras)), &w, 1e-5);
    // First step with |g| = 1e-6: PyTorch moves by ≈ lr, Keras by lr·g/(sqrt(1-β2)|g| + ε) ≈ 0.24·lr.
    let step = |c| {
        let mut o = adam(1.0, c).build().unwrap();
        let mut p = [0f32];
        o.step(&mut [(&mut p[..], &[1e-6f32][..])]).unwrap();
        -p[0]
    };
    let (k, t) = (step(Convention::Keras), step(Convention::Torch));
    assert!((t - 0.99).abs() < 0.01, "torch first step {t}");
    assert!((k - 0.24).abs() < 0.02, "keras first step {k}");
}

/// RMSprop defaults and ε placement: Keras ρ = 0.9, ε = 1e-7 inside the root; PyTorch α = 0.99,
/// ε = 1e-8 outside.
#[test]
fn rmsprop_conventions_match_their_formulas() {
    for (conv, rho, eps, inside) in [
        (Convention::Keras, 0.9f64, 1e-7f64, true),
        (Convention::Torch, 0.99, 1e-8, false),
    ] {
        let lr = 0.01f64;
        let mut w = [1.0f64, -2.0, 0.5];
        let mut s = [0f64; 3];
        for g in GRADS {
            for i in 0..3 {
                let g = f64::from(g[i]);
                s[i] = rho * s[i] + (1.0 - rho) * g * g;
                let denom = if inside { (s[i] + eps).sqrt() } else { s[i].sqrt() + eps };
                w[i] -= lr * g / denom;
            }
        }
        assert_close(&run(&rms(lr, 0.0, conv)), &w, 1e-5);
    }
}

/// Keras legacy decay: the step t uses lr / (1 + decay·(t-1)).
#[test]
fn keras_decay_schedule() {
    let mut o = OptimizerConfig::keras_rmsprop(1e-4, 1e-6).build().unwrap();
    o.begin_step();
    assert_eq!(o.current_lr(), 1e-4);
    for _ in 0..1000 {
        o.begin_step();
    }
    assert!((o.current_lr() - 1e-4 / (1.0 + 1e-6 * 1000.0)).abs() < 1e-18);
}

/// Every optimiser minimises f(w) = Σ (w - c)², and masked weights (gradient 0, value 0) stay 0.
#[test]
fn minimises_a_quadratic_and_keeps_masked_weights_at_zero() {
    let target = [1.0f32, -3.0, 0.0, 2.0];
    let mask = [1.0f32, 1.0, 0.0, 1.0];
    let configs = [
        sgd(0.05, 0.0, false, Convention::Keras),
        sgd(0.05, 0.9, true, Convention::Torch),
        adam(0.05, Convention::Keras),
        adam(0.05, Convention::Torch),
        rms(0.01, 0.0, Convention::Keras),
        rms(0.01, 0.5, Convention::Torch),
    ];
    for cfg in configs {
        let mut o = cfg.build().unwrap();
        let mut w = [0.0f32; 4];
        for _ in 0..3000 {
            let g: Vec<f32> = (0..4).map(|i| 2.0 * (w[i] - target[i]) * mask[i]).collect();
            o.step(&mut [(&mut w[..], &g[..])]).unwrap();
        }
        for i in [0, 1, 3] {
            assert!((w[i] - target[i]).abs() < 0.05, "{cfg:?}: {w:?}");
        }
        assert_eq!(w[2], 0.0, "{cfg:?}: masked weight moved");
    }
}

#[test]
fn bad_configuration_and_gradients_are_typed_errors() {
    let name = |cfg: OptimizerConfig| match cfg.build().unwrap_err() {
        biolayers::Error::InvalidConfig { name, .. } => name,
        e => panic!("{e:?}"),
    };
    assert_eq!(name(sgd(-1.0, 0.0, false, Convention::Keras)), "lr");
    assert_eq!(name(sgd(0.1, 1.5, false, Convention::Keras)), "momentum");
    assert_eq!(name(sgd(0.1, 0.0, true, Convention::Torch)), "nesterov");
    assert_eq!(
        name(OptimizerConfig::Adam {
            lr: 0.1,
            beta1: Some(1.0),
            beta2: None,
            eps: None,
            weight_decay: 0.0,
            decay: 0.0,
            convention: Convention::Torch
        }),
        "beta1"
    );
    assert_eq!(
        name(OptimizerConfig::RmsProp {
            lr: 0.1,
            rho: None,
            eps: None,
            momentum: 0.0,
            weight_decay: 0.0,
            decay: 1e-6,
            convention: Convention::Torch
        }),
        "decay"
    );
    let mut o = adam(0.1, Convention::Torch).build().unwrap();
    let mut p = [1.0f32, 2.0];
    let e = o.step(&mut [(&mut p[..], &[0.1f32, f32::NAN][..])]).unwrap_err();
    assert!(matches!(e, biolayers::Error::NonFinite { .. }), "{e}");
    assert_eq!(p, [1.0, 2.0]);
    let e = o.step(&mut [(&mut p[..], &[0.1f32][..])]).unwrap_err();
    assert!(matches!(e, biolayers::Error::ShapeMismatch { .. }));
}

#[test]
fn configs_round_trip_through_serde() {
    let cfg = OptimizerConfig::keras_rmsprop(1e-4, 1e-6);
    let s = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<OptimizerConfig>(&s).unwrap(), cfg);
    let t: OptimizerConfig = serde_json::from_str(r#"{"kind":"adam","lr":0.001,"convention":"torch"}"#).unwrap();
    assert_eq!(t, OptimizerConfig::torch_adam(0.001));
    assert!(serde_json::from_str::<OptimizerConfig>(r#"{"kind":"adam","lr":0.001,"betas":[0.9,0.99]}"#).is_err());
}
