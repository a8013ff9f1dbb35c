//! The per-element optimiser updates, written once: the CPU optimiser of `biolayers::optim`
//! and the host emulator ([`crate::device::host`]) call [`apply`]; the CUDA kernels
//! `adam_step` / `rmsprop_step` (`kernels/train/train.cu`) compute the same formulas in the
//! same order.
//!
//! ```text
//! g = g + wd·w                      (PyTorch's coupled weight decay, only when wd ≠ 0)
//! Adam:     m = β₁m + (1-β₁)g,  v = β₂v + (1-β₂)g·g
//!           Keras   w -= step·m/(√v + ε)            step = lr·√(1-β₂ᵗ)/(1-β₁ᵗ)
//!           PyTorch w -= step·m/(√v/bc2_sqrt + ε)   step = lr/(1-β₁ᵗ), bc2_sqrt = √(1-β₂ᵗ)
//! RMSprop:  s = ρs + (1-ρ)g·g
//!           Keras   inc = lr·g/√(s + ε)   (ε inside the root); momentum: b = μb + inc, w -= b
//!           PyTorch u = g/(√s + ε);                 momentum: b = μb + u, w -= lr·b
//! ```
//!
//! # State layout (the same on every device)
//! `first` = Adam's `m` / RMSprop's momentum buffer `b`; `second` = Adam's `v` / RMSprop's
//! mean square `s`. Every product is a separate multiply and add (no fused multiply-add), so
//! the host results are bit-identical wherever this runs.

use crate::error::{Error, Result};

/// One optimiser step's constants (the caller computes the learning rate and bias
/// corrections of step `t`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerStep {
    /// Adam: `m = β₁m + (1-β₁)g`, `v = β₂v + (1-β₂)g²`; Keras `w -= step·m/(√v + ε)` with
    /// `step = lr·√(1-β₂ᵗ)/(1-β₁ᵗ)`; PyTorch `w -= step·m/(√v/bc2_sqrt + ε)` with
    /// `step = lr/(1-β₁ᵗ)`, `bc2_sqrt = √(1-β₂ᵗ)`.
    Adam {
        beta1: f32,
        beta2: f32,
        eps: f32,
        step: f32,
        bc2_sqrt: f32,
        torch: bool,
        weight_decay: f32,
    },
    /// RMSprop: `s = ρs + (1-ρ)g²`; Keras `inc = lr·g/√(s + ε)` (ε inside the root), PyTorch
    /// `lr·g/(√s + ε)`; with momentum the buffer of each convention.
    RmsProp {
        rho: f32,
        eps: f32,
        lr: f32,
        momentum: f32,
        torch: bool,
        weight_decay: f32,
    },
}

/// One step of `step` on `w` in place, with gradient `g` and the state `first`, `second`
/// (layout in the [module docs](self)).
///
/// # Errors
/// [`Error::CudaOperand`] when the four lengths differ.
pub fn apply(step: OptimizerStep, w: &mut [f32], g: &[f32], first: &mut [f32], second: &mut [f32]) -> Result<()> {
    let n = w.len();
    if g.len() != n || first.len() != n || second.len() != n {
        return Err(Error::CudaOperand {
            op: "optimizer_step",
            reason: format!(
                "lengths w {n}, g {}, first {}, second {} differ",
                g.len(),
                first.len(),
                second.len()
            ),
        });
    }
    match step {
        OptimizerStep::Adam {
            beta1,
            beta2,
            eps,
            step,
            bc2_sqrt,
            torch,
            weight_decay,
        } => {
            for i in 0..n {
                let gi = with_decay(g[i], w[i], weight_decay);
                let m = beta1 * first[i] + (1.0 - beta1) * gi;
                let v = beta2 * second[i] + (1.0 - beta2) * gi * gi;
                first[i] = m;
                second[i] = v;
                w[i] -= if torch {
                    step * m / (v.sqrt() / bc2_sqrt + eps)
                } else {
                    step * m / (v.sqrt() + eps)
                };
            }
        }
        OptimizerStep::RmsProp {
            rho,
            eps,
            lr,
            momentum,
            torch,
            weight_decay,
        } => {
            for i in 0..n {
                let gi = with_decay(g[i], w[i], weight_decay);
                let s = rho * second[i] + (1.0 - rho) * gi * gi;
                second[i] = s;
                // Keras scales by lr before the momentum buffer, PyTorch after it.
                if torch {
                    let u = gi / (s.sqrt() + eps);
                    if momentum == 0.0 {
                        w[i] -= lr * u;
                    } else {
                        let b = momentum * first[i] + u;
                        first[i] = b;
                        w[i] -= lr * b;
                    }
                } else {
                    let inc = lr * gi / (s + eps).sqrt();
                    if momentum == 0.0 {
                        w[i] -= inc;
                    } else {
                        let b = momentum * first[i] + inc;
                        first[i] = b;
                        w[i] -= b;
                    }
                }
            }
        }
    }
    Ok(())
}

/// PyTorch's coupled L2 weight decay `g + wd·w` (the gradient itself when `wd = 0`).
fn with_decay(g: f32, w: f32, weight_decay: f32) -> f32 {
    if weight_decay != 0.0 {
        g + weight_decay * w
    } else {
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmsprop_keeps_the_mean_square_in_second_and_momentum_in_first() {
        let step = OptimizerStep::RmsProp {
            rho: 0.9,
            eps: 1e-7,
            lr: 0.1,
            momentum: 0.5,
            torch: false,
            weight_decay: 0.0,
        };
        let (mut w, g) = ([1.0f32], [2.0f32]);
        let (mut first, mut second) = ([0.0f32], [0.0f32]);
        apply(step, &mut w, &g, &mut first, &mut second).unwrap();
        // s = (1 − ρ)·g²; inc = lr·g/√(s + ε); b = inc (zero state); w = 1 − b.
        let s = (1.0f32 - 0.9) * 2.0 * 2.0;
        let inc = 0.1f32 * 2.0 / (s + 1e-7).sqrt();
        assert_eq!(second, [s]);
        assert_eq!(first, [inc]);
        assert_eq!(w, [1.0 - inc]);
        let e = apply(step, &mut w, &g, &mut first, &mut [0.0; 2]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::CudaOperand {
                    op: "optimizer_step",
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
