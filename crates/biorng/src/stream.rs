//! `Stream`: one seeded random stream type for every crate, in three flavours.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{NumpyRandomState, PyRandom};

/// A seeded source of uniform doubles, bounded integers and shuffles:
///
/// * [`Stream::seeded`]: the project's default, ChaCha8 (`rand_chacha`), value-stable across
///   platforms and versions. Doubles use the top 53 bits of one `u64`; bounded integers use
///   Lemire's widening multiply with rejection.
/// * [`Stream::numpy`]: NumPy's legacy `RandomState` (`numpy.random.seed(seed)`).
/// * [`Stream::python`]: CPython's `random` (`random.seed(seed)`).
///
/// With the NumPy and CPython flavours each method consumes the stream exactly as the named
/// NumPy/CPython function does, so upstream call orders reproduce upstream values.
#[derive(Debug, Clone)]
pub enum Stream {
    /// The project's default generator.
    Seeded(Box<ChaCha8Rng>),
    /// NumPy legacy `RandomState`.
    Numpy(Box<NumpyRandomState>),
    /// CPython `random`.
    Python(Box<PyRandom>),
}

impl Stream {
    /// The default modern generator, `ChaCha8Rng::seed_from_u64(seed)`.
    pub fn seeded(seed: u64) -> Self {
        Stream::Seeded(Box::new(ChaCha8Rng::seed_from_u64(seed)))
    }

    /// `numpy.random.seed(seed)`.
    pub fn numpy(seed: u32) -> Self {
        Stream::Numpy(Box::new(NumpyRandomState::new(seed)))
    }

    /// `random.seed(seed)` (negative seeds act like their absolute value, as in CPython).
    pub fn python(seed: i128) -> Self {
        Stream::Python(Box::new(PyRandom::new(seed)))
    }

    /// One uniform double in [0, 1): `random_sample()` / `random.random()`.
    pub fn uniform01(&mut self) -> f64 {
        match self {
            Stream::Seeded(r) => (r.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64),
            Stream::Numpy(r) => r.random_f64(),
            Stream::Python(r) => r.random(),
        }
    }

    /// `out.len()` successive [`Stream::uniform01`] draws (the same values in the same order),
    /// with the flavour resolved once instead of per draw.
    pub fn fill_uniform01(&mut self, out: &mut [f64]) {
        match self {
            Stream::Seeded(r) => {
                let r = &mut **r;
                for v in out {
                    *v = (r.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                }
            }
            Stream::Numpy(r) => out.iter_mut().for_each(|v| *v = r.random_f64()),
            Stream::Python(r) => out.iter_mut().for_each(|v| *v = r.random()),
        }
    }

    /// `a + (b - a) * u`: `numpy.random.uniform(a, b)` / `random.uniform(a, b)`.
    pub fn uniform(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.uniform01()
    }

    /// A standard normal draw: NumPy's legacy polar method (`standard_normal`) for the NumPy
    /// flavour, CPython's `random.gauss(0, 1)` for the Python flavour, and the same polar method
    /// as NumPy on the ChaCha8 stream for the default flavour.
    pub fn standard_normal(&mut self) -> f64 {
        match self {
            Stream::Numpy(r) => r.standard_normal(),
            Stream::Python(r) => r.gauss(0.0, 1.0),
            Stream::Seeded(_) => loop {
                let x1 = 2.0 * self.uniform01() - 1.0;
                let x2 = 2.0 * self.uniform01() - 1.0;
                let r2 = x1 * x1 + x2 * x2;
                if r2 < 1.0 && r2 != 0.0 {
                    // One value per pair keeps the stream state-free; the default flavour only
                    // promises determinism, not NumPy's cached pair.
                    return x2 * (-2.0 * r2.ln() / r2).sqrt();
                }
            },
        }
    }

    /// An integer in `[0, n)` (`n >= 1`; 0 gives 0): NumPy's masked rejection
    /// (`randint(0, n)`), CPython's `_randbelow(n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        match self {
            Stream::Seeded(r) => lemire_below(r, n),
            Stream::Numpy(r) => r.interval(n - 1),
            Stream::Python(r) => r.randbelow(n),
        }
    }

    /// In-place Fisher-Yates shuffle from the end: `numpy.random.shuffle` / `random.shuffle`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        match self {
            Stream::Numpy(r) => r.shuffle(items),
            Stream::Python(r) => r.shuffle(items),
            Stream::Seeded(_) => {
                for i in (1..items.len()).rev() {
                    let j = self.below(i as u64 + 1) as usize;
                    items.swap(i, j);
                }
            }
        }
    }
}

/// Unbiased integer in `[0, n)` for `n >= 1` (Lemire 2019, widening multiply with rejection).
fn lemire_below(r: &mut ChaCha8Rng, n: u64) -> u64 {
    let mut m = u128::from(r.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(r.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// The flavour's raw generator words, for distributions that need no NumPy or CPython parity
/// (the gamma and beta draws through `rand_distr`): ChaCha8's own words, or the MT19937 words of
/// the NumPy / CPython flavours (a `u64` is two words, high first). No NumPy or CPython function
/// consumes its stream this way, so draws made through this trait reproduce nothing upstream.
impl RngCore for Stream {
    fn next_u32(&mut self) -> u32 {
        match self {
            Stream::Seeded(r) => r.next_u32(),
            Stream::Numpy(r) => r.next_u32(),
            Stream::Python(r) => r.next_u32(),
        }
    }

    fn next_u64(&mut self) -> u64 {
        match self {
            Stream::Seeded(r) => r.next_u64(),
            _ => {
                let high = u64::from(self.next_u32());
                (high << 32) | u64::from(self.next_u32())
            }
        }
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        rand_chacha::rand_core::impls::fill_bytes_via_next(self, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_words_are_the_generators_own() {
        let mut chacha = ChaCha8Rng::seed_from_u64(5);
        let mut s = Stream::seeded(5);
        assert_eq!((s.next_u64(), s.next_u32()), (chacha.next_u64(), chacha.next_u32()));
        // The MT19937 flavours: a u64 is two words, high first; then the stream goes on.
        let (mut words, mut s) = (NumpyRandomState::new(5), Stream::numpy(5));
        let (hi, lo) = (u64::from(words.next_u32()), u64::from(words.next_u32()));
        assert_eq!(s.next_u64(), (hi << 32) | lo);
        assert_eq!(s.uniform01(), words.random_f64());
        let mut bytes = [0u8; 6];
        Stream::python(5).fill_bytes(&mut bytes);
        assert_eq!(bytes[..], Stream::python(5).next_u64().to_le_bytes()[..6]);
    }

    #[test]
    fn bulk_uniform_draws_equal_single_draws_for_every_flavour() {
        for make in [|| Stream::seeded(11), || Stream::numpy(11), || Stream::python(11)] {
            let (mut one, mut bulk) = (make(), make());
            let want: Vec<f64> = (0..1000).map(|_| one.uniform01()).collect();
            let mut got = vec![0.0; 1000];
            bulk.fill_uniform01(&mut got[..600]);
            bulk.fill_uniform01(&mut got[600..]);
            assert_eq!(got, want);
            // Both streams are at the same place afterwards.
            assert_eq!(one.uniform01(), bulk.uniform01());
        }
    }

    #[test]
    fn seeded_is_reproducible_and_uniform() {
        let mut a = Stream::seeded(3);
        let mut b = Stream::seeded(3);
        let mut x: Vec<u32> = (0..50).collect();
        let mut y = x.clone();
        a.shuffle(&mut x);
        b.shuffle(&mut y);
        assert_eq!(x, y);
        let mut sorted = x.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(x, sorted);
        let mut counts = [0usize; 3];
        for _ in 0..30_000 {
            counts[a.below(3) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (9_500..10_500).contains(&c)), "{counts:?}");
        let mean = (0..10_000).map(|_| a.uniform01()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
    }

    #[test]
    fn numpy_and_python_flavours_follow_their_front_ends() {
        let mut s = Stream::numpy(0);
        assert_eq!(s.uniform01(), 0.5488135039273248);
        let mut s = Stream::python(42);
        assert_eq!(s.uniform01(), 0.6394267984578837);
        let mut s = Stream::python(42);
        let mut p = PyRandom::new(42);
        let (mut a, mut b): (Vec<u8>, Vec<u8>) = ((0..20).collect(), (0..20).collect());
        s.shuffle(&mut a);
        p.shuffle(&mut b);
        assert_eq!(a, b);
    }
}
