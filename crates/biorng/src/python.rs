//! CPython's `random` module (the `random.Random` class, CPython 3.x).

use crate::{Error, Mt19937, Result};

/// Reproduces `random.seed(seed)` followed by calls to the module-level functions of CPython's
/// `random` (3.2+ integer seeding; `_randbelow` through `getrandbits`).
#[derive(Debug, Clone)]
pub struct PyRandom {
    mt: Mt19937,
    gauss_next: Option<f64>,
}

impl PyRandom {
    /// `random.seed(seed)` for an integer seed: `init_by_array` over the little-endian 32-bit
    /// words of `abs(seed)` (one zero word for 0).
    pub fn new(seed: i128) -> Self {
        let mut n = seed.unsigned_abs();
        let mut key = Vec::new();
        while n > 0 {
            key.push((n & 0xffff_ffff) as u32);
            n >>= 32;
        }
        if key.is_empty() {
            key.push(0);
        }
        Self {
            mt: Mt19937::from_key(&key),
            gauss_next: None,
        }
    }

    /// The generator and the cached second Box-Muller value (`getstate()`'s `gauss_next`).
    pub(crate) fn parts(&self) -> (&Mt19937, Option<f64>) {
        (&self.mt, self.gauss_next)
    }

    /// The stream at the position [`PyRandom::parts`] reported.
    pub(crate) fn from_parts(mt: Mt19937, gauss_next: Option<f64>) -> Self {
        Self { mt, gauss_next }
    }

    /// The next raw 32-bit word of the underlying MT19937 (what `getrandbits(32)` returns).
    pub(crate) fn next_u32(&mut self) -> u32 {
        self.mt.next_u32()
    }

    /// `random.random()`.
    pub fn random(&mut self) -> f64 {
        self.mt.next_f64()
    }

    /// `random.gauss(mu, sigma)`: Box-Muller on two `random()` draws, caching the second value
    /// (`gauss_next`) exactly as CPython does.
    pub fn gauss(&mut self, mu: f64, sigma: f64) -> f64 {
        let z = match self.gauss_next.take() {
            Some(z) => z,
            None => {
                let x2pi = self.random() * std::f64::consts::TAU;
                let g2rad = (-2.0 * (1.0 - self.random()).ln()).sqrt();
                self.gauss_next = Some(x2pi.sin() * g2rad);
                x2pi.cos() * g2rad
            }
        };
        mu + z * sigma
    }

    /// `random.uniform(a, b)` = `a + (b - a) * random()`.
    pub fn uniform(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.random()
    }

    /// `random.getrandbits(k)` for `k <= 64` (words are filled from the least significant end;
    /// the last, partial word keeps its top bits). Larger `k` is an error here.
    pub fn getrandbits(&mut self, k: u32) -> Result<u64> {
        if k > 64 {
            return Err(Error::EmptyRange {
                op: "getrandbits",
                detail: format!("k = {k} > 64 is not supported"),
            });
        }
        Ok(self.bits(k))
    }

    fn bits(&mut self, k: u32) -> u64 {
        if k == 0 {
            return 0;
        }
        if k <= 32 {
            return u64::from(self.mt.next_u32() >> (32 - k));
        }
        let low = u64::from(self.mt.next_u32());
        let high = u64::from(self.mt.next_u32() >> (64 - k));
        (high << 32) | low
    }

    /// `_randbelow(n)`: rejection sampling over `getrandbits(n.bit_length())`.
    pub(crate) fn randbelow(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.bits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `random.randrange(n)`: uniform in `[0, n)`.
    pub fn randrange(&mut self, n: u64) -> Result<u64> {
        if n == 0 {
            return Err(Error::EmptyRange {
                op: "randrange",
                detail: "empty range for randrange(0)".into(),
            });
        }
        Ok(self.randbelow(n))
    }

    /// `random.randint(a, b)`: uniform in `[a, b]` (`a + randbelow(b - a + 1)`).
    pub fn randint(&mut self, a: i64, b: i64) -> Result<i64> {
        if b < a {
            return Err(Error::EmptyRange {
                op: "randint",
                detail: format!("a={a} > b={b}"),
            });
        }
        let width = (b as i128 - a as i128 + 1) as u64;
        Ok((a as i128 + self.randbelow(width) as i128) as i64)
    }

    /// `random.shuffle(x)` in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.randbelow(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// `random.choice(seq)`: the index of the chosen element.
    pub fn choice_index(&mut self, len: usize) -> Result<usize> {
        if len == 0 {
            return Err(Error::EmptyRange {
                op: "choice",
                detail: "cannot choose from an empty sequence".into(),
            });
        }
        Ok(self.randbelow(len as u64) as usize)
    }

    /// `random.sample(population, k)`, CPython 3.11 algorithm (pool swap for small populations,
    /// set-based rejection for large ones), returning the chosen elements in selection order.
    pub fn sample<T: Clone>(&mut self, population: &[T], k: usize) -> Result<Vec<T>> {
        let n = population.len();
        if k > n {
            return Err(Error::SampleTooLarge { op: "sample", k, n });
        }
        let mut setsize = 21usize;
        if k > 5 {
            let exponent = ((k as f64 * 3.0).ln() / 4f64.ln()).ceil() as u32;
            setsize += 4usize.pow(exponent);
        }
        let mut result = Vec::with_capacity(k);
        if n <= setsize {
            let mut pool: Vec<T> = population.to_vec();
            for i in 0..k {
                let j = self.randbelow((n - i) as u64) as usize;
                result.push(pool[j].clone());
                pool[j] = pool[n - i - 1].clone();
            }
        } else {
            let mut selected = std::collections::HashSet::with_capacity(k);
            for _ in 0..k {
                let mut j = self.randbelow(n as u64) as usize;
                while selected.contains(&j) {
                    j = self.randbelow(n as u64) as usize;
                }
                selected.insert(j);
                result.push(population[j].clone());
            }
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Printed by CPython 3.11: `random.seed(42); [random.random() for _ in range(3)]`.
    #[test]
    fn seed42_random_matches_cpython() {
        let mut r = PyRandom::new(42);
        let v: Vec<f64> = (0..3).map(|_| r.random()).collect();
        assert_eq!(v, vec![0.6394267984578837, 0.025010755222666936, 0.27502931836911926]);
    }

    /// Printed by CPython 3.11: `random.seed(3); [random.gauss(0, 1) for _ in range(3)]`, and
    /// `random.seed(3); random.random(); random.gauss(1.0, 2.0)`. cos/sin/log may differ from
    /// CPython's libm in the last ulp, hence the tolerance.
    #[test]
    fn gauss_matches_cpython() {
        let close = |a: f64, b: f64| (a - b).abs() <= 4.0 * f64::EPSILON * b.abs().max(1.0);
        let mut r = PyRandom::new(3);
        let got: Vec<f64> = (0..3).map(|_| r.gauss(0.0, 1.0)).collect();
        for (a, b) in got
            .iter()
            .zip([0.09470803828730423, 1.2500243810835503, -0.931378367720707])
        {
            assert!(close(*a, b), "{a} vs {b}");
        }
        let mut r = PyRandom::new(3);
        r.random();
        assert!(close(r.gauss(1.0, 2.0), -0.8486675041998231));
    }
}
