//! The fused Elman op (`Graph::elman_sequence`) against the unfused per-step composition it
//! replaces (`slice`, `matmul`, `masked_matmul`, `add`, `relu`/`tanh`, `concat`), in f32 on the
//! biokernels path: outputs and every gradient within 1e-5 relative, the recurrent weight
//! gradient exactly 0 off the topology, and no gradient work for a frozen `W_hh`.

use std::sync::Arc;

use bioautograd::{Graph, RnnActivation, Tensor, TileMap, TileSize, Var};
use biorng::Stream;

const B: usize = 6;
/// A batch that exercises every vector width of the AVX-512 path (208 = 128 + 64 + 16 after padding).
const WIDE_B: usize = 200;
const T: usize = 5;
const I: usize = 3;
const H: usize = 37;

struct Case {
    b: usize,
    t: usize,
    i: usize,
    h: usize,
    x: Tensor,
    w_ih: Tensor,
    b_ih: Tensor,
    w_hh: Tensor,
    b_hh: Tensor,
    upstream: Tensor,
    keep: Vec<bool>,
    mask: Arc<TileMap>,
}

fn case(seed: u64) -> Case {
    case_with_batch(seed, B)
}

fn case_with_batch(seed: u64, b: usize) -> Case {
    case_with_sizes(seed, b, T, I, H, 0.48)
}

/// A case of any size; the topology keeps each off-diagonal connection with probability `p`.
fn case_with_sizes(seed: u64, b: usize, steps: usize, i: usize, h: usize, p: f64) -> Case {
    let mut r = Stream::seeded(seed);
    let mut v = |n: usize, s: f64| -> Vec<f32> { (0..n).map(|_| (r.standard_normal() * s) as f32).collect() };
    let t = |d: Vec<f32>, s: &[usize]| Tensor::from_vec(d, s).unwrap();
    let x = t(v(b * steps * i, 1.0), &[b, steps, i]);
    let w_ih = t(v(i * h, 0.5), &[i, h]);
    let b_ih = t(v(h, 0.2), &[h]);
    let w_hh_dense = v(h * h, 0.3);
    let b_hh = t(v(h, 0.2), &[h]);
    let upstream = t(v(b * steps * h, 1.0), &[b, steps, h]);
    let mut r2 = Stream::seeded(seed ^ 0xabc);
    let keep: Vec<bool> = (0..h * h).map(|k| k / h != k % h && r2.uniform01() < p).collect();
    // Weights are 0 off the topology, as in the layer.
    let w_hh: Vec<f32> = w_hh_dense
        .iter()
        .zip(&keep)
        .map(|(&w, &c)| if c { w } else { 0.0 })
        .collect();
    let mask = Arc::new(TileMap::from_bools(&keep, h, h, TileSize::CPU_DEFAULT).unwrap());
    Case {
        b,
        t: steps,
        i,
        h,
        x,
        w_ih,
        b_ih,
        w_hh: t(w_hh, &[h, h]),
        b_hh,
        upstream,
        keep,
        mask,
    }
}

/// The layer's former per-step forward.
fn unfused(g: &Graph, p: &[Var], c: &Case, act: RnnActivation) -> Var {
    let (b, mask) = (c.b, &c.mask);
    let (steps, i, h) = (c.t, c.i, c.h);
    let (x, w_ih, b_ih, w_hh, b_hh) = (p[0], p[1], p[2], p[3], p[4]);
    let mut state: Option<Var> = None;
    let mut states = Vec::new();
    for step in 0..steps {
        let xt = g.reshape(&g.slice(&x, 1, step, step + 1).unwrap(), &[b, i]).unwrap();
        let mut pre = g.add(&g.matmul(&xt, &w_ih).unwrap(), &b_ih).unwrap();
        if let Some(prev) = &state {
            pre = g.add(&pre, &g.masked_matmul(prev, &w_hh, mask).unwrap()).unwrap();
        }
        pre = g.add(&pre, &b_hh).unwrap();
        let next = match act {
            RnnActivation::Relu => g.relu(&pre).unwrap(),
            RnnActivation::Tanh => g.tanh(&pre).unwrap(),
        };
        states.push(g.reshape(&next, &[b, 1, h]).unwrap());
        state = Some(next);
    }
    g.concat(&states, 1).unwrap()
}

/// Output and gradients of (x, w_ih, b_ih, w_hh, b_hh), all as params.
fn run(c: &Case, act: RnnActivation, fused: bool) -> (Vec<f32>, Vec<Vec<f32>>) {
    let g = Graph::new();
    let p: Vec<Var> = [&c.x, &c.w_ih, &c.b_ih, &c.w_hh, &c.b_hh]
        .iter()
        .map(|t| g.param((*t).clone()))
        .collect();
    let y = if fused {
        g.elman_sequence(&p[0], &p[1], &p[2], &p[3], &p[4], Some(&c.mask), act)
            .unwrap()
    } else {
        unfused(&g, &p, c, act)
    };
    let grads = g.backward_with(&y, c.upstream.clone()).unwrap();
    // A parameter the graph does not reach (`W_hh` of a one-step unfused sequence) has no
    // gradient: zeros, as the fused op gives it.
    let gs = p
        .iter()
        .zip([&c.x, &c.w_ih, &c.b_ih, &c.w_hh, &c.b_hh])
        .map(|(v, t)| grads.slice(v).map_or_else(|| vec![0.0; t.numel()], |s| s.to_vec()))
        .collect();
    (g.value(&y).unwrap().to_vec().unwrap(), gs)
}

fn assert_close(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "{name}: all zero");
    for (k, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * scale,
            "{name}[{k}]: fused {a} vs unfused {b} (scale {scale})"
        );
    }
}

#[test]
fn fused_equals_the_unfused_composition_for_relu_and_tanh() {
    let names = ["dx", "dw_ih", "db_ih", "dw_hh", "db_hh"];
    for (act, b) in [
        (RnnActivation::Relu, B),
        (RnnActivation::Tanh, B),
        (RnnActivation::Relu, WIDE_B),
        (RnnActivation::Tanh, WIDE_B),
    ] {
        let c = case_with_batch(7, b);
        let (y_f, g_f) = run(&c, act, true);
        let (y_u, g_u) = run(&c, act, false);
        assert_close(&format!("{act:?} h"), &y_f, &y_u);
        for (n, (a, b)) in names.iter().zip(g_f.iter().zip(&g_u)) {
            assert_close(&format!("{act:?} {n}"), a, b);
        }
        // dW_hh: exactly 0 off the topology, and not everywhere 0 on it.
        let dw = &g_f[3];
        for (k, (&d, &kp)) in dw.iter().zip(&c.keep).enumerate() {
            assert!(kp || d == 0.0, "{act:?}: dW_hh[{k}] = {d} off the topology");
        }
        assert!(dw.iter().zip(&c.keep).filter(|(d, &kp)| kp && **d != 0.0).count() > H);
    }
}

/// Random odd sizes and topology densities (empty to full), both activations, one and two
/// threads: the fused op (recurrent weights packed once per call, bias folded into the input
/// projection) against the unfused composition, forward and every gradient; `dW_hh` exactly 0
/// off the topology; one and two threads bit-identical.
#[test]
fn fused_equals_the_unfused_composition_on_random_sizes_and_masks() {
    let mut r = Stream::seeded(41);
    let mut pick = |lo: usize, hi: usize| lo + (r.uniform01() * (hi - lo) as f64) as usize;
    for seed in 0..12u64 {
        let (b, t, i, h) = (pick(1, 70), pick(1, 8), pick(1, 9), pick(1, 75));
        let p = [0.0, 1.0, 0.1, 0.5, 0.9][seed as usize % 5];
        let act = if seed % 2 == 0 {
            RnnActivation::Relu
        } else {
            RnnActivation::Tanh
        };
        let c = case_with_sizes(100 + seed, b, t, i, h, p);
        let tag = format!("b={b} t={t} i={i} h={h} p={p} {act:?}");
        let on = |threads: usize, fused: bool| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| run(&c, act, fused))
        };
        let (y_f, g_f) = on(1, true);
        let (y_u, g_u) = on(1, false);
        let close = |name: &str, got: &[f32], want: &[f32]| {
            let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (k, (a, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (a - w).abs() <= 2e-5 * scale,
                    "{tag} {name}[{k}]: fused {a} vs unfused {w}"
                );
            }
        };
        close("h", &y_f, &y_u);
        for (n, (a, w)) in ["dx", "dw_ih", "db_ih", "dw_hh", "db_hh"]
            .iter()
            .zip(g_f.iter().zip(&g_u))
        {
            close(n, a, w);
        }
        for (k, (&d, &kp)) in g_f[3].iter().zip(&c.keep).enumerate() {
            assert!(kp || d == 0.0, "{tag}: dW_hh[{k}] = {d} off the topology");
        }
        assert_eq!(on(2, true), (y_f, g_f), "{tag}: two threads differ from one");
    }
}

#[test]
fn off_topology_weights_do_not_leak_into_the_fused_forward() {
    // Garbage at absent connections must be ignored (the mask is applied, not assumed).
    let c = case(3);
    let (y_clean, _) = run(&c, RnnActivation::Tanh, true);
    let dirty: Vec<f32> = c
        .w_hh
        .as_slice()
        .unwrap()
        .iter()
        .zip(&c.keep)
        .map(|(&w, &kp)| if kp { w } else { 5.0 })
        .collect();
    let c2 = Case {
        w_hh: Tensor::from_vec(dirty, &[H, H]).unwrap(),
        ..c
    };
    let (y_dirty, g_dirty) = run(&c2, RnnActivation::Tanh, true);
    assert_eq!(y_clean, y_dirty);
    assert!(g_dirty[3].iter().zip(&c2.keep).all(|(d, &kp)| kp || *d == 0.0));
}

#[test]
fn frozen_recurrent_weights_get_no_gradient_and_the_rest_is_unchanged() {
    let c = case(11);
    let (_, trained) = run(&c, RnnActivation::Relu, true);
    let g = Graph::new();
    let x = g.input(c.x.clone());
    let w_ih = g.param(c.w_ih.clone());
    let b_ih = g.param(c.b_ih.clone());
    let w_hh = g.input(c.w_hh.clone());
    let b_hh = g.param(c.b_hh.clone());
    let y = g
        .elman_sequence(&x, &w_ih, &b_ih, &w_hh, &b_hh, Some(&c.mask), RnnActivation::Relu)
        .unwrap();
    let grads = g.backward_with(&y, c.upstream.clone()).unwrap();
    assert!(grads.get(&w_hh).is_none() && grads.get(&x).is_none());
    assert_eq!(grads.slice(&w_ih).unwrap(), &trained[1][..]);
    assert_eq!(grads.slice(&b_hh).unwrap(), &trained[4][..]);
}

#[test]
fn wrong_shapes_are_typed_errors() {
    let c = case(1);
    let g = Graph::new();
    let x = g.input(c.x.clone());
    let w_ih = g.param(c.w_ih.clone());
    let b = g.param(c.b_ih.clone());
    let w_hh = g.param(c.w_hh.clone());
    let flat = g.input(Tensor::from_vec(vec![0.0; B * I], &[B, I]).unwrap());
    let act = RnnActivation::Tanh;
    assert!(matches!(
        g.elman_sequence(&flat, &w_ih, &b, &w_hh, &b, None, act),
        Err(bioautograd::Error::Rank { .. })
    ));
    // W_ih used as the recurrent matrix: (I, H) is not (H, H).
    assert!(matches!(
        g.elman_sequence(&x, &w_ih, &b, &w_ih, &b, None, act),
        Err(bioautograd::Error::ShapeMismatch { .. })
    ));
    let small = Arc::new(TileMap::from_bools(&[true; 4], 2, 2, TileSize::CPU_DEFAULT).unwrap());
    assert!(matches!(
        g.elman_sequence(&x, &w_ih, &b, &w_hh, &b, Some(&small), act),
        Err(bioautograd::Error::ShapeMismatch { .. })
    ));
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    // Two threads split the batch into two independent recurrences; every sum over the batch
    // is taken afterwards, so the results are bit-identical to one thread.
    let c = case_with_batch(5, WIDE_B);
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| run(&c, RnnActivation::Relu, true))
    };
    assert_eq!(on(1), on(2));
}
