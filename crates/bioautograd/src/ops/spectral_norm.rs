//! The power iteration of spectral normalisation (Keras `SpectralNormalization`), on a kernel
//! seen as a matrix `W (rows, cols)` with `cols` = its last axis (the output units / filters)
//! and the running right singular-vector estimate `u (cols)`:
//!
//! ```text
//! repeat k times:   v = normalize(W u)      u = normalize(Wᵀ v)
//! σ = vᵀ W u        normalize(x) = x / √max(Σ x², ε)   (ε = 1e-7, Keras' ops.normalize)
//! ```
//! Keras (`layers.SpectralNormalization.normalize_weights`, one iteration by default) then
//! *assigns* `u ← u` and `W ← W / σ` to the variables before the wrapped layer runs, under
//! `stop_gradient` for `u` and `v`: no gradient flows through `σ`, the optimiser updates the
//! assigned `W / σ`. This is a host computation on plain slices, no tape node;
//! `biolayers::layers::SpectralNormConv2d` uses it in exactly that way.
//!
//! # Shapes
//! `w [rows·cols]` (row-major `(rows, cols)`, e.g. a Keras conv kernel `(kh, kw, cin, cout)` as
//! `(kh·kw·cin, cout)`), `u [cols]` → `u [cols]`, `v [rows]`, `σ` scalar.

use crate::error::{Error, Result};
use crate::float::Float;

/// Keras' `epsilon()` under the square root of `ops.normalize`.
const NORMALIZE_EPSILON: f64 = 1e-7;

/// The outcome of [`power_iteration`].
#[derive(Debug, Clone, PartialEq)]
pub struct PowerIteration<T: Float = f32> {
    /// The new right singular-vector estimate (unit length), `[cols]`.
    pub u: Vec<T>,
    /// The left singular-vector estimate (unit length), `[rows]`.
    pub v: Vec<T>,
    /// The spectral-norm estimate `vᵀ W u`.
    pub sigma: T,
}

fn normalize<T: Float>(x: &mut [T]) {
    let ss: T = x.iter().map(|&a| a * a).sum();
    let floor = T::from_f64(NORMALIZE_EPSILON);
    let inv = T::ONE / (if ss > floor { ss } else { floor }).sqrt();
    for a in x {
        *a *= inv;
    }
}

/// `iterations` steps of the power iteration of `w (rows, cols)` from `u`, and `σ = vᵀ W u`.
///
/// # Errors
/// [`Error::InvalidArgument`] when `w` is not `rows·cols` long, `u` not `cols` long, or
/// `iterations` is 0 (Keras refuses `power_iterations < 1`).
pub fn power_iteration<T: Float>(
    w: &[T],
    rows: usize,
    cols: usize,
    u: &[T],
    iterations: usize,
) -> Result<PowerIteration<T>> {
    const OP: &str = "spectral_norm_power_iteration";
    let bad = |what: String| Error::InvalidArgument { op: OP, what };
    if rows.checked_mul(cols) != Some(w.len()) || rows == 0 || cols == 0 {
        return Err(bad(format!(
            "kernel of {} values is not a ({rows}, {cols}) matrix",
            w.len()
        )));
    }
    if u.len() != cols {
        return Err(bad(format!("u has {} values, the kernel {cols} columns", u.len())));
    }
    if iterations == 0 {
        return Err(bad("power_iterations = 0: must be at least 1".into()));
    }
    let mut u = u.to_vec();
    let mut v = vec![T::ZERO; rows];
    for _ in 0..iterations {
        for (r, vr) in v.iter_mut().enumerate() {
            *vr = w[r * cols..(r + 1) * cols].iter().zip(&u).map(|(&a, &b)| a * b).sum();
        }
        normalize(&mut v);
        u.iter_mut().for_each(|x| *x = T::ZERO);
        for (r, &vr) in v.iter().enumerate() {
            for (uc, &a) in u.iter_mut().zip(&w[r * cols..(r + 1) * cols]) {
                *uc += vr * a;
            }
        }
        normalize(&mut u);
    }
    let sigma = v
        .iter()
        .enumerate()
        .map(|(r, &vr)| {
            vr * w[r * cols..(r + 1) * cols]
                .iter()
                .zip(&u)
                .map(|(&a, &b)| a * b)
                .sum::<T>()
        })
        .sum();
    Ok(PowerIteration { u, v, sigma })
}
