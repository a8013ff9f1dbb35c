//! The trimmed losses of the RNN experiments: only the rows whose target is nonzero enter the
//! loss (upstream's `trim_zeros_from_trials`), i.e. the `L` recall steps of `seq_mem` and the
//! one decision step of the n-back tasks.
//!
//! * regression (`seq_mem`): `MSE = Σ_r m_r (ŷ_r − y_r)² / max(Σ_r m_r, 1)`, `m_r = [y_r ≠ 0]`;
//! * classification (3 classes): `NLL = −Σ_r Σ_c t_rc · log_softmax(z_r)_c / max(n, 1)` with the
//!   one-hot targets `t` of the `n` rows whose class is nonzero;
//! * accuracy (%): argmax (first maximum) = class, over the same rows.
//!
//! # Shapes
//! Predictions `(rows, 1)` (regression) or logits `(rows, 3)`; targets `(rows,)`.

use bioautograd::{Graph, Tensor, Var};

/// Classes of the n-back tasks: 0 fixation (never a target), 1 non-match, 2 match.
pub const CLASSES: usize = 3;

/// Mean squared error over the rows whose target is not zero.
pub fn trimmed_mse(g: &Graph, pred: &Var, y: &[f32]) -> bioautograd::Result<Var> {
    let n = y.len();
    let mask: Vec<f32> = y.iter().map(|&v| f32::from(u8::from(v != 0.0))).collect();
    let count = mask.iter().sum::<f32>().max(1.0);
    // The constants live where the prediction does (a CUDA device or the host).
    let device = g.value(pred)?.device();
    let target = g.input(Tensor::new(y.to_vec(), &[n, 1], device)?);
    let m = g.input(Tensor::new(mask, &[n, 1], device)?);
    let diff = g.sub(pred, &target)?;
    let sq = g.mul(&g.mul(&diff, &diff)?, &m)?;
    g.mul(&g.sum(&sq)?, &g.input(Tensor::new(vec![1.0 / count], &[], device)?))
}

/// Where the trimmed NLL applies its `−1/n`: the same loss and gradient up to f32 rounding of
/// the loss value, kept apart so that every experiment keeps its exact numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NllScaling {
    /// `(Σ t·log p)·(−1/n)` (rnn-run).
    AfterSum,
    /// `Σ (t·(−1/n))·log p` (bench-rnn).
    InTargets,
}

/// NLL of the log-softmax over the rows whose target (class) is nonzero; `onehot (rows, 3)` holds
/// their one-hot classes (zero rows elsewhere) and `count` their number.
pub fn trimmed_nll(
    g: &Graph,
    logits: &Var,
    onehot: &[f32],
    count: usize,
    scaling: NllScaling,
) -> bioautograd::Result<Var> {
    let shape = [onehot.len() / CLASSES, CLASSES];
    let scale = -1.0 / count.max(1) as f32;
    // The constants live where the logits do (a CUDA device or the host).
    let device = g.value(logits)?.device();
    match scaling {
        NllScaling::AfterSum => {
            let t = g.input(Tensor::new(onehot.to_vec(), &shape, device)?);
            let ls = g.log_softmax(logits)?;
            let picked = g.sum(&g.mul(&ls, &t)?)?;
            g.mul(&picked, &g.input(Tensor::new(vec![scale], &[], device)?))
        }
        NllScaling::InTargets => {
            let pick: Vec<f32> = onehot.iter().map(|&t| if t != 0.0 { scale } else { 0.0 }).collect();
            let ls = g.log_softmax(logits)?;
            g.sum(&g.mul(&ls, &g.input(Tensor::new(pick, &shape, device)?))?)
        }
    }
}

/// Accuracy (%) of `logits (rows, 3)` on the rows whose target is nonzero.
pub fn trimmed_accuracy(logits: &[f32], y: &[f32]) -> f64 {
    let (mut correct, mut count) = (0usize, 0usize);
    for (row, &label) in logits.chunks_exact(CLASSES).zip(y) {
        if label == 0.0 {
            continue;
        }
        let arg = row
            .iter()
            .enumerate()
            .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
        correct += usize::from(arg == label as usize);
        count += 1;
    }
    100.0 * correct as f64 / count.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimmed_losses_and_accuracy_use_only_nonzero_targets() {
        let g = Graph::new();
        // Three rows, three classes; rows 0 and 2 are decision steps (labels 2 and 1).
        let logits = [0.5f32, -1.0, 2.0, 9.0, 9.0, 9.0, 0.1, 0.3, -0.2];
        let y = [2.0f32, 0.0, 1.0];
        let onehot = [0.0f32, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let z = g.input(Tensor::from_vec(logits.to_vec(), &[3, 3]).unwrap());
        let nll = trimmed_nll(&g, &z, &onehot, 2, NllScaling::AfterSum).unwrap();
        let got = f64::from(g.value(&nll).unwrap().as_slice().unwrap()[0]);
        let nll_in = trimmed_nll(&g, &z, &onehot, 2, NllScaling::InTargets).unwrap();
        let got_in = f64::from(g.value(&nll_in).unwrap().as_slice().unwrap()[0]);
        assert!((got_in - got).abs() < 1e-6, "{got_in} vs {got}");
        let lsm = |r: &[f32], k: usize| {
            let m = r.iter().map(|&v| f64::from(v)).fold(f64::NEG_INFINITY, f64::max);
            let lse = m + r.iter().map(|&v| (f64::from(v) - m).exp()).sum::<f64>().ln();
            f64::from(r[k]) - lse
        };
        let want = -(lsm(&logits[0..3], 2) + lsm(&logits[6..9], 1)) / 2.0;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        // Row 0 predicts 2 (right), row 2 predicts 1 (right); row 1 is ignored.
        assert_eq!(trimmed_accuracy(&logits, &y), 100.0);
        assert_eq!(trimmed_accuracy(&logits, &[1.0, 0.0, 2.0]), 0.0);
        let pred = g.input(Tensor::from_vec(vec![0.5f32, 7.0, 0.0], &[3, 1]).unwrap());
        let mse = trimmed_mse(&g, &pred, &[0.25, 0.0, 1.0]).unwrap();
        let got = g.value(&mse).unwrap().as_slice().unwrap()[0];
        assert!((got - (0.0625 + 1.0) / 2.0).abs() < 1e-7, "{got}");
    }
}
