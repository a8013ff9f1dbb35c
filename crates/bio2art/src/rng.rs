//! Which random stream a conversion draws from.
//!
//! bio2art draws all its randomness from CPython's global `random` module: `random.shuffle` to
//! pick target neurons and `random.uniform` for the stick-breaking weight partitions. A
//! conversion here needs exactly those two operations, from a [`biorng::Stream`] (re-exported as
//! [`crate::Stream`]) named by [`biorng::RngKind`] (re-exported as [`crate::RngKind`]), one of
//! the two in [`KINDS`]:
//!
//! * [`RngKind::Seeded`] → [`Stream::seeded`](biorng::Stream::seeded) (the project's default):
//!   ChaCha8 seeded with `seed_from_u64`; shuffles are Fisher–Yates from the end with Lemire's
//!   unbiased bounded integers, uniforms use the top 53 bits of a `u64`; value-stable across
//!   platforms and `rand` versions.
//! * [`RngKind::Python`] → [`Stream::python`](biorng::Stream::python): CPython's
//!   `random.seed(seed)` followed by `random.shuffle` and `random.uniform` exactly as CPython
//!   implements them. With the same call order as upstream this reproduces the original package
//!   bit for bit.
//!
//! NumPy's stream is refused: upstream never drew a conversion from it, so it would reproduce
//! nothing.

pub use biorng::RngKind;

/// The streams a conversion may draw from.
pub const KINDS: [RngKind; 2] = [RngKind::Seeded, RngKind::Python];

/// Parses a stream name, accepting only [`KINDS`].
///
/// # Errors
/// `unknown rng "numpy" (expected seeded or python)` and the like.
pub fn parse_kind(s: &str) -> std::result::Result<RngKind, String> {
    RngKind::parse_among(s, &KINDS)
}

/// `serde(deserialize_with)` for a spec's `rng` field: only [`KINDS`].
pub(crate) fn deserialize_kind<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<RngKind, D::Error> {
    let name = <String as serde::Deserialize>::deserialize(d)?;
    parse_kind(&name).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_conversion_streams_parse() {
        for k in KINDS {
            assert_eq!(parse_kind(&k.to_string()), Ok(k));
        }
        assert_eq!(
            parse_kind("numpy").unwrap_err(),
            "unknown rng \"numpy\" (expected seeded or python)"
        );
    }
}
