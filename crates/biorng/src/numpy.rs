//! NumPy's legacy `RandomState` stream (the global `numpy.random.*` functions).

use crate::{Error, Mt19937, Result};

/// Reproduces `numpy.random.RandomState(seed)` (equivalently `numpy.random.seed(seed)` followed
/// by the module-level functions) for the methods the original projects call.
///
/// Arrays are drawn in C order, so `random_sample(&[a, b, c])` equals NumPy's
/// `random_sample((a, b, c)).ravel()`.
#[derive(Debug, Clone)]
pub struct NumpyRandomState {
    mt: Mt19937,
    cached_gauss: Option<f64>,
}

impl NumpyRandomState {
    /// `numpy.random.seed(seed)` with an integer seed (`init_genrand(seed)`).
    pub fn new(seed: u32) -> Self {
        Self {
            mt: Mt19937::new(seed),
            cached_gauss: None,
        }
    }

    /// The generator and the cached second normal of the polar pair (`get_state()`'s
    /// `has_gauss`/`cached_gaussian`).
    pub(crate) fn parts(&self) -> (&Mt19937, Option<f64>) {
        (&self.mt, self.cached_gauss)
    }

    /// The stream at the position [`NumpyRandomState::parts`] reported.
    pub(crate) fn from_parts(mt: Mt19937, cached_gauss: Option<f64>) -> Self {
        Self { mt, cached_gauss }
    }

    /// The next raw 32-bit word of the underlying generator.
    pub fn next_u32(&mut self) -> u32 {
        self.mt.next_u32()
    }

    /// One `random_sample()` value in [0, 1).
    pub fn random_f64(&mut self) -> f64 {
        self.mt.next_f64()
    }

    /// `random_sample(shape)` / `rand(*shape)`, flattened in C order.
    pub fn random_sample(&mut self, shape: &[usize]) -> Vec<f64> {
        let n: usize = shape.iter().product();
        (0..n).map(|_| self.random_f64()).collect()
    }

    /// `uniform(low, high, n)`: `low + (high - low) * random_sample()` per element.
    pub fn uniform(&mut self, low: f64, high: f64, n: usize) -> Vec<f64> {
        (0..n).map(|_| low + (high - low) * self.random_f64()).collect()
    }

    /// Legacy bounded integer in `[0, max]` (inclusive) by masked rejection. NumPy's
    /// `random_interval` (shuffle, permutation) and the masked `randint` path agree: one 32-bit
    /// word per try below 2^32, else one 64-bit word built high word first.
    pub(crate) fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mask = fill_bits(max);
        if max <= u64::from(u32::MAX) {
            loop {
                let v = u64::from(self.mt.next_u32()) & mask;
                if v <= max {
                    return v;
                }
            }
        }
        loop {
            let hi = u64::from(self.mt.next_u32());
            let lo = u64::from(self.mt.next_u32());
            let v = ((hi << 32) | lo) & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `randint(low, high, n)` with the default int64 dtype: masked rejection sampling of
    /// `[low, high)`.
    pub fn randint(&mut self, low: i64, high: i64, n: usize) -> Result<Vec<i64>> {
        if high <= low {
            return Err(Error::EmptyRange {
                op: "randint",
                detail: format!("low={low} >= high={high}"),
            });
        }
        let range = (high - low - 1) as u64;
        Ok((0..n).map(|_| low + self.interval(range) as i64).collect())
    }

    /// In-place `shuffle(x)` of a 1-D sequence (Fisher-Yates from the end, legacy intervals).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.interval(i as u64) as usize;
            items.swap(i, j);
        }
    }

    /// `permutation(n)`: a shuffled `arange(n)`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        self.shuffle(&mut v);
        v
    }

    /// `standard_normal()` with the legacy polar Box-Muller method and its cached second value.
    pub fn standard_normal(&mut self) -> f64 {
        if let Some(g) = self.cached_gauss.take() {
            return g;
        }
        loop {
            let x1 = 2.0 * self.random_f64() - 1.0;
            let x2 = 2.0 * self.random_f64() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.cached_gauss = Some(f * x1);
                return f * x2;
            }
        }
    }

    /// `normal(loc, scale, n)`.
    pub fn normal(&mut self, loc: f64, scale: f64, n: usize) -> Vec<f64> {
        (0..n).map(|_| loc + scale * self.standard_normal()).collect()
    }

    /// `choice(n, size, replace, p)` over `arange(n)`, following the legacy algorithm: with
    /// replacement and no `p`, `randint(0, n, size)`; with `p`, an inverse-CDF search of
    /// `random_sample(size)`; without replacement and no `p`, `permutation(n)[:size]`.
    /// (Without replacement *and* `p` is not supported and returns an error.)
    pub fn choice(&mut self, n: usize, size: usize, replace: bool, p: Option<&[f64]>) -> Result<Vec<usize>> {
        if n == 0 {
            return Err(Error::EmptyRange {
                op: "choice",
                detail: "a must be non-empty".into(),
            });
        }
        match (replace, p) {
            (true, None) => Ok(self
                .randint(0, n as i64, size)?
                .into_iter()
                .map(|v| v as usize)
                .collect()),
            (true, Some(p)) => {
                if p.len() != n || p.iter().any(|&v| !v.is_finite() || v < 0.0) {
                    return Err(Error::InvalidProbabilities {
                        op: "choice",
                        detail: format!("need {n} finite non-negative values, got {}", p.len()),
                    });
                }
                let mut cdf = Vec::with_capacity(n);
                let mut acc = 0.0;
                for &v in p {
                    acc += v;
                    cdf.push(acc);
                }
                if (acc - 1.0).abs() > f64::EPSILON.sqrt() {
                    return Err(Error::InvalidProbabilities {
                        op: "choice",
                        detail: format!("sum is {acc}, not 1"),
                    });
                }
                for c in &mut cdf {
                    *c /= acc;
                }
                let u = self.random_sample(&[size]);
                // searchsorted(cdf, u, side='right')
                Ok(u.into_iter()
                    .map(|x| cdf.partition_point(|&c| c <= x).min(n - 1))
                    .collect())
            }
            (false, None) => {
                if size > n {
                    return Err(Error::SampleTooLarge {
                        op: "choice",
                        k: size,
                        n,
                    });
                }
                let mut perm = self.permutation(n);
                perm.truncate(size);
                Ok(perm)
            }
            (false, Some(_)) => Err(Error::InvalidProbabilities {
                op: "choice",
                detail: "replace=False with p is not supported".into(),
            }),
        }
    }
}

/// The smallest all-ones bit pattern that covers `max`.
fn fill_bits(max: u64) -> u64 {
    let mut mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    mask |= mask >> 32;
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by NumPy: `np.random.seed(0); np.random.random_sample(3)`.
    #[test]
    fn seed0_random_sample_matches_numpy() {
        let mut rs = NumpyRandomState::new(0);
        let v = rs.random_sample(&[3]);
        assert_eq!(v, vec![0.5488135039273248, 0.7151893663724195, 0.6027633760716439]);
    }
}
