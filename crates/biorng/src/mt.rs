//! The MT19937 core (Matsumoto & Nishimura 1998) with both reference seeding procedures.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// The 32-bit Mersenne Twister generator.
#[derive(Clone)]
pub struct Mt19937 {
    state: [u32; N],
    index: usize,
}

impl std::fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mt19937")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Mt19937 {
    /// `init_genrand(seed)`: the reference single-word seeding. NumPy's legacy
    /// `RandomState.seed(int)` uses exactly this.
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Self { state, index: N }
    }

    /// `init_by_array(key)`: the reference array seeding. CPython's `random.seed(int)` feeds the
    /// little-endian 32-bit words of `abs(seed)` (at least one word) through this.
    pub fn from_key(key: &[u32]) -> Self {
        let mut mt = Self::new(19_650_218);
        let s = &mut mt.state;
        let key_len = key.len().max(1);
        let key_at = |j: usize| key.get(j).copied().unwrap_or(0);
        let mut i = 1usize;
        let mut j = 0usize;
        for _ in 0..N.max(key_len) {
            let prev = s[i - 1];
            s[i] = (s[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key_at(j))
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                s[0] = s[N - 1];
                i = 1;
            }
            if j >= key_len {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = s[i - 1];
            s[i] = (s[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                s[0] = s[N - 1];
                i = 1;
            }
        }
        s[0] = 0x8000_0000;
        mt.index = N;
        mt
    }

    /// The 624 state words and the index of the next word to temper (624: a twist comes
    /// next), as NumPy's `get_state()` and CPython's `getstate()` hold them.
    pub fn state(&self) -> (&[u32], usize) {
        (&self.state, self.index)
    }

    /// The generator at the position [`Mt19937::state`] reported: `words` must be 624 words,
    /// not all zero (that state only ever returns 0), and `index <= 624`.
    pub fn from_state(words: &[u32], index: usize) -> crate::Result<Self> {
        let bad = |detail: String| crate::Error::InvalidState {
            kind: "mt19937",
            detail,
        };
        let state: [u32; N] = words
            .try_into()
            .map_err(|_| bad(format!("{} state words, must be {N}", words.len())))?;
        if index > N {
            return Err(bad(format!("index = {index}, must be <= {N}")));
        }
        if state.iter().all(|&w| w == 0) {
            return Err(bad("all state words are 0 (such a generator only returns 0)".into()));
        }
        Ok(Self { state, index })
    }

    fn twist(&mut self) {
        let s = &mut self.state;
        for k in 0..N {
            let y = (s[k] & UPPER_MASK) | (s[(k + 1) % N] & LOWER_MASK);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            s[k] = s[(k + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    /// The next tempered 32-bit output (`genrand_int32`).
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// A double in [0, 1) with 53 random bits (`genrand_res53`).
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        let a = self.next_u32();
        let b = self.next_u32();
        crate::words_to_f64(a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference implementation's published check: `init_by_array({0x123, 0x234, 0x345,
    /// 0x456})` gives 1067595299 955945823 477289528 ... as its first outputs.
    #[test]
    fn matches_reference_init_by_array_outputs() {
        let mut mt = Mt19937::from_key(&[0x123, 0x234, 0x345, 0x456]);
        let first: Vec<u32> = (0..5).map(|_| mt.next_u32()).collect();
        assert_eq!(first, vec![1067595299, 955945823, 477289528, 4107218783, 4228976476]);
    }

    /// `std::mt19937` default seed 5489: the 10000th output is 4123659995 (C++ standard).
    #[test]
    fn matches_cpp_standard_10000th_output() {
        let mut mt = Mt19937::new(5489);
        let mut last = 0;
        for _ in 0..10_000 {
            last = mt.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }
}
