//! Inverted dropout.
//!
//! In [`Mode::Train`](crate::Mode::Train), element `i` is kept iff `uᵢ < 1 − p`, where `uᵢ` is
//! the `i`-th `uniform01()` draw of the given [`biorng::Stream`] (one draw per element,
//! row-major, compared in f64), and kept elements are scaled by `1/(1 − p)`:
//!
//! ```text
//! y = x · keep / (1 − p)        dx = g · keep / (1 − p)
//! ```
//! so the expectation of `y` is `x`. In [`Mode::Eval`](crate::Mode::Eval), or with `p = 0`, the
//! op is the identity and draws nothing. With `Stream::numpy(seed)` the mask is the one NumPy
//! builds from `RandomState(seed).random_sample(x.shape) < 1 - p`.
//!
//! # Shapes
//! `x (..)` → `y` of the same shape.

use biorng::Stream;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::ops::par;
use crate::tensor::Tensor;

impl<T: Float> Graph<T> {
    /// Dropout with drop probability `p` in `[0, 1)`. See the [module docs](self).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `p` outside `[0, 1)`.
    pub fn dropout(&self, x: &Var, p: f64, rng: &mut Stream) -> Result<Var> {
        const OP: &str = "dropout";
        let xt = self.get_any(OP, x)?;
        if !(0.0..1.0).contains(&p) {
            return Err(Error::InvalidArgument {
                op: OP,
                what: format!("drop probability {p} is not in [0, 1)"),
            });
        }
        if !self.is_training() || p == 0.0 {
            if xt.is_cuda() {
                return Ok(self.gpu_identity(x, xt));
            }
            return Ok(self.push(xt, &[*x], |g, _| Ok(vec![Some(g.to_vec())])));
        }
        if xt.is_cuda() {
            // The CPU's draws, so the device mask is the CPU's mask.
            let keep: Vec<f32> = (0..xt.numel())
                .map(|_| if rng.uniform01() < 1.0 - p { 1.0 } else { 0.0 })
                .collect();
            return self.gpu_dropout(OP, x, xt, &keep, (1.0 / (1.0 - p)) as f32);
        }
        let scale = T::from_f64(1.0 / (1.0 - p));
        // One uniform draw per element, in order (the same stream as drawing one by one).
        let mut u = vec![0f64; xt.numel()];
        rng.fill_uniform01(&mut u);
        let factor: Vec<T> = par::map(&u, |u| if u < 1.0 - p { scale } else { T::ZERO });
        let y = par::zip_map(xt.as_slice()?, &factor, |v, f| v * f);
        Ok(
            self.push(Tensor::from_parts(y, xt.shape().to_vec()), &[*x], move |g, _| {
                Ok(vec![Some(par::zip_map(g, &factor, |gv, f| gv * f))])
            }),
        )
    }
}
