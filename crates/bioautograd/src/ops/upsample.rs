//! Spatial upsampling by integer factors (Keras `UpSampling2D`, PyTorch `Upsample`).
//!
//! ```text
//! nearest:   y[n, c, i, j] = x[n, c, ⌊i/sh⌋, ⌊j/sw⌋]
//! bilinear:  y[n, c, i, j] = Σ_{a ∈ {lo, hi}} Σ_{b ∈ {lo, hi}} wᵢ(a)·wⱼ(b)·x[n, c, a, b]
//!            with half-pixel centres (TensorFlow `half_pixel_centers=True`, PyTorch
//!            `align_corners=False`): s = (i + ½)/sh − ½, lo = max(⌊s⌋, 0),
//!            hi = min(⌊s⌋ + 1, h − 1), λ = s − ⌊s⌋ (for s < 0: both taps on row 0),
//!            wᵢ(lo) = 1 − λ, wᵢ(hi) = λ
//! backward:  dx = Σ of g over the outputs each input feeds, with the same weights
//! ```
//! Both are linear maps, so the backward scatters the upstream gradient through the forward's
//! taps. The tap weights are computed in f64 from integer positions (exact for factor 2:
//! 0.25 / 0.75).
//!
//! # Shapes
//! `x (n, c, h, w)` → `y (n, c, h·sh, w·sw)`.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::shape::check_rank;
use crate::tensor::Tensor;

/// The upsampling interpolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// Repeat each pixel.
    Nearest,
    /// Bilinear with half-pixel centres (TensorFlow / Keras, PyTorch `align_corners=False`).
    Bilinear,
}

/// The one-axis taps of output position `i`: `[(input index, weight); 2]`.
fn taps(interp: Interpolation, i: usize, factor: usize, size: usize) -> [(usize, f64); 2] {
    match interp {
        Interpolation::Nearest => [(i / factor, 1.0), (i / factor, 0.0)],
        Interpolation::Bilinear => {
            let s = (i as f64 + 0.5) / factor as f64 - 0.5;
            let fl = s.floor();
            let lambda = s - fl;
            let clamp = |v: f64| (v.max(0.0) as usize).min(size - 1);
            [(clamp(fl), 1.0 - lambda), (clamp(fl + 1.0), lambda)]
        }
    }
}

/// Each output pixel of an `(h, w)` plane's upsampling reads four inputs of its plane:
/// `(offset in the plane, weight)`, row-major over the output (the CPU op's and the device
/// map's taps).
pub(crate) fn plane_taps(
    interp: Interpolation,
    (h, w): (usize, usize),
    (sh, sw): (usize, usize),
) -> Vec<[(usize, f64); 4]> {
    let rows: Vec<[(usize, f64); 2]> = (0..h * sh).map(|i| taps(interp, i, sh, h)).collect();
    let cols: Vec<[(usize, f64); 2]> = (0..w * sw).map(|j| taps(interp, j, sw, w)).collect();
    let mut plan = Vec::with_capacity(rows.len() * cols.len());
    for r in &rows {
        for cc in &cols {
            let mut p = [(0usize, 0.0); 4];
            for (k, slot) in p.iter_mut().enumerate() {
                let (a, wa) = r[k / 2];
                let (b, wb) = cc[k % 2];
                *slot = (a * w + b, wa * wb);
            }
            plan.push(p);
        }
    }
    plan
}

impl<T: Float> Graph<T> {
    /// Upsamples the two spatial axes by `(sh, sw)`. See the [module docs](self).
    ///
    /// # Errors
    /// [`Error::Rank`] unless `x` is 4-D, [`Error::InvalidArgument`] for a zero factor or an empty
    /// spatial axis.
    pub fn upsample2d(&self, x: &Var, factor: (usize, usize), interp: Interpolation) -> Result<Var> {
        const OP: &str = "upsample2d";
        let xt = self.get_any(OP, x)?;
        check_rank(OP, xt.shape(), 4)?;
        let (n, c, h, w) = (xt.shape()[0], xt.shape()[1], xt.shape()[2], xt.shape()[3]);
        let (sh, sw) = factor;
        if sh == 0 || sw == 0 || h == 0 || w == 0 {
            return Err(Error::InvalidArgument {
                op: OP,
                what: format!("factor {factor:?} and spatial size ({h}, {w}) must be positive"),
            });
        }
        let (oh, ow) = (h * sh, w * sw);
        if xt.is_cuda() {
            return self.gpu_upsample(x, xt, (h, w), factor, interp);
        }
        let plan: Vec<[(usize, T); 4]> = plane_taps(interp, (h, w), factor)
            .into_iter()
            .map(|p| p.map(|(k, wt)| (k, T::from_f64(wt))))
            .collect();
        let xs = xt.as_slice()?;
        let mut y = vec![T::ZERO; n * c * oh * ow];
        for (plane, out) in xs.chunks(h * w).zip(y.chunks_mut(oh * ow)) {
            for (o, p) in out.iter_mut().zip(&plan) {
                *o = p.iter().map(|&(k, wt)| plane[k] * wt).sum();
            }
        }
        let n_in = xs.len();
        Ok(
            self.push(Tensor::from_parts(y, vec![n, c, oh, ow]), &[*x], move |g, _| {
                let mut dx = vec![T::ZERO; n_in];
                for (gp, dp) in g.chunks(oh * ow).zip(dx.chunks_mut(h * w)) {
                    for (&gv, p) in gp.iter().zip(&plan) {
                        for &(k, wt) in p {
                            dp[k] += gv * wt;
                        }
                    }
                }
                Ok(vec![Some(dx)])
            }),
        )
    }
}
