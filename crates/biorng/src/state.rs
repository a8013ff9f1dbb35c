//! `StreamState`: the exact position of a [`Stream`], so that a checkpoint can carry a stream
//! that is drawn from across epochs and the resumed run draws what the uninterrupted one drew.
//!
//! Serialised (serde, e.g. JSON) with a `kind` tag and every value exact: the ChaCha8 key as 64
//! hex digits, its word position as decimal text (a `u128`, which tagged serde enums cannot
//! carry as a number), the MT19937 words as integers and a cached normal as Rust's shortest
//! round-trip text.

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Mt19937, NumpyRandomState, PyRandom, Result, Stream};

/// Where a [`Stream`] is: [`Stream::state`] reads it, [`Stream::from_state`] continues from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StreamState {
    /// The default ChaCha8 stream.
    Seeded {
        /// The 256-bit key (`get_seed`) as 64 hex digits.
        #[serde(with = "hex_key")]
        key: [u8; 32],
        /// The stream number (`get_stream`).
        stream: u64,
        /// 32-bit words consumed so far (`get_word_pos`).
        #[serde(with = "text_u128")]
        word_pos: u128,
    },
    /// NumPy's legacy `RandomState`.
    Numpy {
        /// The 624 MT19937 words.
        words: Vec<u32>,
        /// The index of the next word (624: a twist comes next).
        index: usize,
        /// The second normal of the last polar pair, not yet returned.
        #[serde(with = "text_f64")]
        cached_normal: Option<f64>,
    },
    /// CPython's `random`.
    Python {
        /// The 624 MT19937 words.
        words: Vec<u32>,
        /// The index of the next word (624: a twist comes next).
        index: usize,
        /// `gauss_next`: the second Box-Muller value, not yet returned.
        #[serde(with = "text_f64")]
        cached_normal: Option<f64>,
    },
}

fn finite_cache(kind: &'static str, cached: Option<f64>) -> Result<Option<f64>> {
    match cached {
        Some(v) if !v.is_finite() => Err(Error::InvalidState {
            kind,
            detail: format!("cached normal = {v}, must be finite"),
        }),
        other => Ok(other),
    }
}

impl Stream {
    /// The stream's exact position (see [`StreamState`]).
    pub fn state(&self) -> StreamState {
        match self {
            Stream::Seeded(r) => StreamState::Seeded {
                key: r.get_seed(),
                stream: r.get_stream(),
                word_pos: r.get_word_pos(),
            },
            Stream::Numpy(r) => {
                let (mt, cached_normal) = r.parts();
                let (words, index) = mt.state();
                StreamState::Numpy {
                    words: words.to_vec(),
                    index,
                    cached_normal,
                }
            }
            Stream::Python(r) => {
                let (mt, cached_normal) = r.parts();
                let (words, index) = mt.state();
                StreamState::Python {
                    words: words.to_vec(),
                    index,
                    cached_normal,
                }
            }
        }
    }

    /// The stream at `state`: every later draw equals the draw the stream `state` was read from
    /// would have made.
    ///
    /// # Errors
    /// [`Error::InvalidState`] for MT19937 words that are not 624 or all zero, an index above
    /// 624, or a non-finite cached normal.
    pub fn from_state(state: &StreamState) -> Result<Stream> {
        Ok(match state {
            StreamState::Seeded { key, stream, word_pos } => {
                let mut r = ChaCha8Rng::from_seed(*key);
                r.set_stream(*stream);
                r.set_word_pos(*word_pos);
                Stream::Seeded(Box::new(r))
            }
            StreamState::Numpy {
                words,
                index,
                cached_normal,
            } => Stream::Numpy(Box::new(NumpyRandomState::from_parts(
                Mt19937::from_state(words, *index)?,
                finite_cache("numpy", *cached_normal)?,
            ))),
            StreamState::Python {
                words,
                index,
                cached_normal,
            } => Stream::Python(Box::new(PyRandom::from_parts(
                Mt19937::from_state(words, *index)?,
                finite_cache("python", *cached_normal)?,
            ))),
        })
    }
}

/// `[u8; 32]` as 64 lower-case hex digits.
mod hex_key {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&key.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bad = || D::Error::custom(format!("key {text:?}: must be 64 hex digits"));
        if text.len() != 64 || !text.is_ascii() {
            return Err(bad());
        }
        let mut key = [0u8; 32];
        for (k, pair) in key.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let digits = std::str::from_utf8(pair).map_err(|_| bad())?;
            *k = u8::from_str_radix(digits, 16).map_err(|_| bad())?;
        }
        Ok(key)
    }
}

/// `u128` as decimal text.
mod text_u128 {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| D::Error::custom(format!("word_pos {text:?}: must be a non-negative integer")))
    }
}

/// `Option<f64>` as Rust's shortest round-trip text (exact; `null` for none).
mod text_f64 {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                text.parse()
                    .map_err(|_| D::Error::custom(format!("cached_normal {text:?}: not a number")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(s: &mut Stream) -> Vec<u64> {
        let mut out: Vec<u64> = (0..5).map(|_| s.uniform01().to_bits()).collect();
        out.extend((0..5).map(|_| s.standard_normal().to_bits()));
        out.push(s.below(1000));
        out
    }

    /// After an odd number of normals (a cached second value in the NumPy and CPython flavours)
    /// and across a MT19937 twist and a ChaCha8 buffer refill, the restored stream draws what
    /// the original draws; the state also survives JSON.
    #[test]
    fn a_restored_stream_continues_bit_for_bit_for_every_flavour() {
        for make in [|| Stream::seeded(5), || Stream::numpy(5), || Stream::python(5)] {
            for warm in [0usize, 1, 7, 333] {
                let mut a = make();
                for _ in 0..warm {
                    a.uniform01();
                }
                a.standard_normal();
                let state = a.state();
                let json = serde_json::to_string(&state).unwrap();
                let back: StreamState = serde_json::from_str(&json).unwrap();
                assert_eq!(back, state);
                let mut b = Stream::from_state(&back).unwrap();
                assert_eq!(draws(&mut b), draws(&mut a), "{json:.80}");
                assert_eq!(b.state(), a.state());
            }
        }
    }

    #[test]
    fn impossible_states_are_refused_naming_the_value() {
        let StreamState::Numpy { words, .. } = Stream::numpy(1).state() else {
            panic!("numpy flavour")
        };
        let cases = [
            (
                StreamState::Numpy {
                    words: words[..623].to_vec(),
                    index: 0,
                    cached_normal: None,
                },
                "623 state words, must be 624",
            ),
            (
                StreamState::Python {
                    words: words.clone(),
                    index: 625,
                    cached_normal: None,
                },
                "index = 625, must be <= 624",
            ),
            (
                StreamState::Numpy {
                    words: vec![0; 624],
                    index: 3,
                    cached_normal: None,
                },
                "all state words are 0",
            ),
            (
                StreamState::Python {
                    words,
                    index: 3,
                    cached_normal: Some(f64::NAN),
                },
                "cached normal = NaN, must be finite",
            ),
        ];
        for (state, want) in cases {
            let e = Stream::from_state(&state).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        for bad in [
            r#"{"kind":"seeded","key":"00","stream":0,"word_pos":"0"}"#,
            r#"{"kind":"seeded","key":"zz00000000000000000000000000000000000000000000000000000000000000","stream":0,"word_pos":"0"}"#,
            r#"{"kind":"seeded","key":"0000000000000000000000000000000000000000000000000000000000000000","stream":0,"word_pos":"-1"}"#,
            r#"{"kind":"chacha","key":"","stream":0,"word_pos":"0"}"#,
        ] {
            assert!(serde_json::from_str::<StreamState>(bad).is_err(), "{bad}");
        }
    }
}
