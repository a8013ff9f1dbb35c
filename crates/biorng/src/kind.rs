//! Which random stream a generator draws from, named the way configs and command lines name it.
//!
//! Every crate that lets a user choose between the project's stream and an upstream one
//! (`biomask` masks, `bio2art` conversions, `biotasks` trials and perturbations) takes this one
//! enum, so that `"seeded"`, `"numpy"` and `"python"` mean the same stream everywhere:
//!
//! * [`RngKind::Seeded`] → [`Stream::seeded`]: ChaCha8 seeded with `seed_from_u64`,
//!   value-stable across platforms and `rand` versions (the project's default).
//! * [`RngKind::Numpy`] → [`Stream::numpy`]: NumPy's legacy global stream after
//!   `np.random.seed(seed)`; NumPy rejects seeds of 2^32 and above, and so does [`RngKind::stream`].
//! * [`RngKind::Python`] → [`Stream::python`]: CPython's `random` after `random.seed(seed)`.
//!
//! A consumer that only reproduces one of the upstream streams (bio2art draws from CPython's
//! `random` only) narrows the choice with [`RngKind::parse_among`].

use crate::{Error, Result, Stream};

/// One of the project's random streams (serialised as `"seeded"`, `"numpy"`, `"python"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RngKind {
    /// The project's own value-stable ChaCha8 stream.
    #[default]
    Seeded,
    /// NumPy's legacy `RandomState` stream (upstream's for masks, `seq_mem`, `nback_mem`).
    Numpy,
    /// CPython's `random` (upstream's for bio2art and `pic_latent_mem`).
    Python,
}

impl RngKind {
    /// Every kind, in the order the command lines list them.
    pub const ALL: [RngKind; 3] = [RngKind::Seeded, RngKind::Numpy, RngKind::Python];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RngKind::Seeded => "seeded",
            RngKind::Numpy => "numpy",
            RngKind::Python => "python",
        }
    }

    /// The stream of this kind seeded with `seed`.
    ///
    /// # Errors
    /// [`Error::SeedOutOfRange`] for a NumPy seed of 2^32 or more (`np.random.seed` rejects it).
    pub fn stream(self, seed: u64) -> Result<Stream> {
        Ok(match self {
            RngKind::Seeded => Stream::seeded(seed),
            RngKind::Python => Stream::python(i128::from(seed)),
            RngKind::Numpy => Stream::numpy(u32::try_from(seed).map_err(|_| Error::SeedOutOfRange {
                kind: "numpy",
                seed,
                limit: "NumPy seeds must be below 2^32",
            })?),
        })
    }

    /// Parses `s` as one of `allowed` only; the message lists exactly those (for a consumer that
    /// reproduces a subset of the streams).
    ///
    /// # Errors
    /// A message naming `s` and the allowed names.
    pub fn parse_among(s: &str, allowed: &[RngKind]) -> std::result::Result<RngKind, String> {
        match allowed.iter().find(|k| k.name() == s) {
            Some(&k) => Ok(k),
            None => {
                let names: Vec<&str> = allowed.iter().map(|k| k.name()).collect();
                let list = match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                    _ => names.join(""),
                };
                Err(format!("unknown rng {s:?} (expected {list})"))
            }
        }
    }
}

impl std::str::FromStr for RngKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        RngKind::parse_among(s, &RngKind::ALL)
    }
}

impl std::fmt::Display for RngKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_print_and_round_trip() {
        for k in RngKind::ALL {
            assert_eq!(k.to_string().parse::<RngKind>(), Ok(k));
        }
        assert_eq!(
            "mt".parse::<RngKind>().unwrap_err(),
            "unknown rng \"mt\" (expected seeded, numpy or python)"
        );
        let two = [RngKind::Seeded, RngKind::Python];
        assert_eq!(
            RngKind::parse_among("numpy", &two).unwrap_err(),
            "unknown rng \"numpy\" (expected seeded or python)"
        );
        assert_eq!(RngKind::parse_among("python", &two), Ok(RngKind::Python));
    }

    #[test]
    fn streams_are_the_named_ones() {
        let draw = |mut s: Stream| s.uniform(0.0, 1.0);
        assert_eq!(draw(RngKind::Seeded.stream(5).unwrap()), draw(Stream::seeded(5)));
        assert_eq!(draw(RngKind::Numpy.stream(5).unwrap()), draw(Stream::numpy(5)));
        assert_eq!(draw(RngKind::Python.stream(5).unwrap()), draw(Stream::python(5)));
        assert!(RngKind::Numpy.stream(1 << 32).is_err());
        assert!(RngKind::Python.stream(1 << 40).is_ok());
    }

    /// CPython 3.11: `random.seed(42); x = list(range(10)); random.shuffle(x); x`
    /// and `random.uniform(0, 2.5)` right after.
    #[test]
    fn python_kind_matches_cpython() {
        let mut r = RngKind::Python.stream(42).unwrap();
        let mut x: Vec<u32> = (0..10).collect();
        r.shuffle(&mut x);
        assert_eq!(x, [7, 3, 2, 8, 5, 6, 9, 4, 0, 1]);
        assert_eq!(r.uniform(0.0, 2.5), 1.4762312811225993);
    }
}
