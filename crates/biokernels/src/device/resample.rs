//! Sparse linear maps applied plane by plane on a device ([`super::ResampleOps`]): the
//! upsampling of a U-Net and every transpose of the tape run as one.
//!
//! ```text
//! y[p·out_len + i] = Σ_{t = offsets[i]}^{offsets[i+1] − 1} weights[t] · x[p·in_len + sources[t]]
//! ```
//! for every plane `p` (a channel of an image, or the whole tensor). The sum starts at `−0`
//! (the additive identity, so a one-tap map with weight 1 copies every value exactly, the sign
//! of a zero included) and adds the taps in their stored order, without fused multiply-adds in
//! the host emulator. A map of several taps per output (bilinear upsampling) is a gather; its
//! [`PlaneMap::adjoint`] is the backward, again a gather, whose taps per input come in
//! increasing output order and then tap order: the order in which a CPU scatter over the
//! outputs accumulates them.
//!
//! # Shapes
//! `x`: `planes · in_len` values, `y`: `planes · out_len` values (`planes` from `x`'s length).

use crate::error::{Error, Result};

/// A sparse `out_len × in_len` linear map in compressed rows (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct PlaneMap {
    in_len: usize,
    out_len: usize,
    offsets: Vec<i32>,
    sources: Vec<i32>,
    weights: Vec<f32>,
}

fn operand(reason: String) -> Error {
    Error::CudaOperand {
        op: "plane_map",
        reason,
    }
}

fn index(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| operand(format!("{what} {v} is beyond the kernels' i32 indices")))
}

impl PlaneMap {
    /// The map whose output `i` sums the `(source, weight)` taps of `taps[i]` in order.
    ///
    /// # Errors
    /// [`Error::CudaOperand`] for an empty side, a source outside `in_len`, or sizes beyond
    /// i32.
    pub fn new<'a>(in_len: usize, taps: impl ExactSizeIterator<Item = &'a [(usize, f32)]>) -> Result<Self> {
        let out_len = taps.len();
        if in_len == 0 || out_len == 0 {
            return Err(operand(format!("a {out_len}x{in_len} map has no values")));
        }
        index(in_len, "the input length")?;
        index(out_len, "the output length")?;
        let mut offsets = Vec::with_capacity(out_len + 1);
        let (mut sources, mut weights) = (Vec::new(), Vec::new());
        offsets.push(0);
        for row in taps {
            for &(s, w) in row {
                if s >= in_len {
                    return Err(operand(format!("source {s} of an input of {in_len} values")));
                }
                sources.push(s as i32);
                weights.push(w);
            }
            offsets.push(index(sources.len(), "the tap count")?);
        }
        Ok(PlaneMap {
            in_len,
            out_len,
            offsets,
            sources,
            weights,
        })
    }

    /// The permutation `y[i] = x[sources[i]]` (weights 1), e.g. a transpose.
    ///
    /// # Errors
    /// As [`PlaneMap::new`].
    pub fn gather(in_len: usize, sources: &[usize]) -> Result<Self> {
        let taps: Vec<[(usize, f32); 1]> = sources.iter().map(|&s| [(s, 1.0)]).collect();
        Self::new(in_len, taps.iter().map(|t| &t[..]))
    }

    /// The transposed map (the backward of this one): output `j` of the adjoint sums, for
    /// every tap `(j, w)` of output `i` here, `w · dy[i]`, in increasing `i` and then tap order.
    pub fn adjoint(&self) -> Self {
        let mut counts = vec![0i32; self.in_len + 1];
        for &s in &self.sources {
            counts[s as usize + 1] += 1;
        }
        for j in 0..self.in_len {
            counts[j + 1] += counts[j];
        }
        let offsets = counts.clone();
        let mut next: Vec<usize> = counts[..self.in_len].iter().map(|&c| c as usize).collect();
        let mut sources = vec![0i32; self.sources.len()];
        let mut weights = vec![0f32; self.weights.len()];
        for i in 0..self.out_len {
            for t in self.offsets[i] as usize..self.offsets[i + 1] as usize {
                let j = self.sources[t] as usize;
                sources[next[j]] = i as i32;
                weights[next[j]] = self.weights[t];
                next[j] += 1;
            }
        }
        PlaneMap {
            in_len: self.out_len,
            out_len: self.in_len,
            offsets,
            sources,
            weights,
        }
    }

    /// Values read per plane.
    pub fn in_len(&self) -> usize {
        self.in_len
    }
    /// Values written per plane.
    pub fn out_len(&self) -> usize {
        self.out_len
    }
    /// `out_len + 1` row offsets into the taps.
    pub fn offsets(&self) -> &[i32] {
        &self.offsets
    }
    /// The source of each tap.
    pub fn sources(&self) -> &[i32] {
        &self.sources
    }
    /// The weight of each tap.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// The planes of an `x` of `x_len` values and the checked output length.
    ///
    /// # Errors
    /// [`Error::CudaOperand`] unless `x_len` is a positive multiple of `in_len` and `y_len`
    /// the matching multiple of `out_len`, within i64 indices.
    pub fn planes(&self, x_len: usize, y_len: usize) -> Result<usize> {
        if x_len == 0 || !x_len.is_multiple_of(self.in_len) {
            return Err(operand(format!(
                "`x` has {x_len} values, not whole planes of {}",
                self.in_len
            )));
        }
        let planes = x_len / self.in_len;
        if planes.checked_mul(self.out_len) != Some(y_len) {
            return Err(operand(format!(
                "`y` has {y_len} values, expected {planes} planes of {}",
                self.out_len
            )));
        }
        index(planes, "the plane count")?;
        Ok(planes)
    }

    /// The map on the host, as every backend computes it (see the [module docs](self)).
    ///
    /// # Errors
    /// As [`PlaneMap::planes`].
    pub fn apply(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        self.planes(x.len(), y.len())?;
        for (xp, yp) in x.chunks(self.in_len).zip(y.chunks_mut(self.out_len)) {
            for (i, out) in yp.iter_mut().enumerate() {
                let mut acc = -0.0f32;
                for t in self.offsets[i] as usize..self.offsets[i + 1] as usize {
                    acc += self.weights[t] * xp[self.sources[t] as usize];
                }
                *out = acc;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bilinear_like() -> PlaneMap {
        // 3 inputs → 4 outputs with two taps each (one repeated source, one zero weight).
        let taps = [
            vec![(0, 1.0), (0, 0.0)],
            vec![(0, 0.75), (1, 0.25)],
            vec![(1, 0.25), (2, 0.75)],
            vec![(2, 1.0), (2, 0.0)],
        ];
        PlaneMap::new(3, taps.iter().map(|t| &t[..])).unwrap()
    }

    #[test]
    fn apply_sums_taps_per_plane() {
        let m = bilinear_like();
        let x = [1.0, 2.0, 4.0, 10.0, 20.0, 40.0];
        let mut y = [0.0; 8];
        m.apply(&x, &mut y).unwrap();
        assert_eq!(y, [1.0, 1.25, 3.5, 4.0, 10.0, 12.5, 35.0, 40.0]);
        assert!(m.apply(&x, &mut [0.0; 7]).is_err());
        assert!(m.apply(&x[..5], &mut [0.0; 8]).is_err());
    }

    /// The adjoint is the transpose: ⟨M x, g⟩ = ⟨x, Mᵀ g⟩, and its taps per input follow the
    /// outputs in order (a CPU scatter's accumulation order).
    #[test]
    fn adjoint_is_the_scatter_of_the_forward() {
        let m = bilinear_like();
        let a = m.adjoint();
        assert_eq!((a.in_len(), a.out_len()), (4, 3));
        let g = [1.0f32, -2.0, 3.0, 0.5];
        let mut dx = [0.0; 3];
        a.apply(&g, &mut dx).unwrap();
        let mut scatter = [0.0f32; 3];
        for (i, &gv) in g.iter().enumerate() {
            for t in m.offsets()[i] as usize..m.offsets()[i + 1] as usize {
                scatter[m.sources()[t] as usize] += gv * m.weights()[t];
            }
        }
        assert_eq!(dx, scatter);
        assert_eq!(a.sources(), &[0, 0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(a.adjoint(), m);
    }

    #[test]
    fn a_gather_copies_exactly_and_bad_maps_are_refused() {
        let m = PlaneMap::gather(3, &[2, 0, 1]).unwrap();
        let mut y = [1.0; 3];
        m.apply(&[-0.0, f32::NAN, 7.0], &mut y).unwrap();
        assert_eq!(y[0], 7.0);
        assert!(y[1].is_sign_negative() && y[1] == 0.0);
        assert!(y[2].is_nan());
        assert!(PlaneMap::gather(2, &[2]).is_err());
        assert!(PlaneMap::gather(0, &[]).is_err());
    }
}
