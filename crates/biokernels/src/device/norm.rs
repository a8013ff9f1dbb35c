//! The layouts of batch and group normalisation on a device ([`super::NormOps`]).
//!
//! Both normalise NCHW values `x (n, channels, hw)` with one mean and variance per
//! *statistic* and apply a per-channel affine transform:
//!
//! ```text
//! batch norm:  one statistic per channel c, over its n·hw values
//! group norm:  one per (sample b, group k), over the (channels/G)·hw values of channels
//!              k·channels/G .. (k+1)·channels/G of sample b (one contiguous run in NCHW)
//! x̂ = (x − μ_s)/√(σ²_s + ε),  y = γ_c x̂ + β_c
//! ```
//! A reduction runs over the values of a [`Segments`] layout: segment `s` holds the `count`
//! values at `s·base + (m / inner)·stride + m % inner`, `m < count`. Element `i` belongs to
//! statistic `(i / stat_div) % stat_mod` and to channel `(i / hw) % channels`. These are the
//! arguments of the `norm_*` kernels of `kernels/train/train.cu`; the host emulator walks the
//! same layouts.
//!
//! # Shapes
//! `x`, `dy`, `y`, `dx`: `n·channels·hw` values; statistics `(3, S)` = rows mean, biased
//! variance, `1/√(σ² + ε)` for `S` = [`NormLayout::statistics`]; `γ`, `β`: `channels` values;
//! gradient sums `(2, R)` = rows `Σ d`, `Σ d·x̂` for `R` segments of the reduction.

use crate::error::{Error, Result};

/// The NCHW layout of one normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormLayout {
    /// Samples.
    pub n: usize,
    /// Channels.
    pub channels: usize,
    /// Values per channel of a sample (`h·w`).
    pub hw: usize,
    /// `None`: batch norm; `Some(g)`: group norm with `g` groups of `channels / g` channels.
    pub groups: Option<usize>,
}

/// The values one reduction runs over (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    /// Number of segments.
    pub segments: usize,
    /// Offset between the first values of consecutive segments.
    pub base: usize,
    /// Length of a contiguous run inside a segment.
    pub inner: usize,
    /// Offset between consecutive runs of a segment.
    pub stride: usize,
    /// Values per segment.
    pub count: usize,
}

impl Segments {
    /// Flat index of value `m` of segment `s`.
    pub fn index(&self, s: usize, m: usize) -> usize {
        s * self.base + (m / self.inner) * self.stride + m % self.inner
    }
}

/// What [`super::NormOps::norm_grad_sums`] reduces over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormReduce {
    /// The values of each statistic (the sums of the input gradient).
    Statistic,
    /// The values of each channel (`dβ`, `dγ`).
    Channel,
}

impl NormLayout {
    /// Checks that every extent is positive and the groups divide the channels.
    ///
    /// # Errors
    /// [`Error::CudaOperand`] naming the layout.
    pub fn validate(&self, op: &'static str) -> Result<()> {
        let bad = self.n == 0
            || self.channels == 0
            || self.hw == 0
            || self.groups.is_some_and(|g| g == 0 || !self.channels.is_multiple_of(g));
        if bad {
            return Err(Error::CudaOperand {
                op,
                reason: format!("{self:?}: every extent must be positive and the groups must divide the channels"),
            });
        }
        Ok(())
    }

    /// Number of values (`n·channels·hw`).
    pub fn len(&self) -> usize {
        self.n * self.channels * self.hw
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of statistics: `channels` (batch norm) or `n·groups`.
    pub fn statistics(&self) -> usize {
        match self.groups {
            None => self.channels,
            Some(g) => self.n * g,
        }
    }

    /// Values per statistic (the `M` of the formulas).
    pub fn count(&self) -> usize {
        self.len() / self.statistics().max(1)
    }

    /// The segments of a reduction over each statistic or each channel.
    pub fn segments(&self, over: NormReduce) -> Segments {
        let per_channel = Segments {
            segments: self.channels,
            base: self.hw,
            inner: self.hw,
            stride: self.channels * self.hw,
            count: self.n * self.hw,
        };
        match (over, self.groups) {
            (NormReduce::Channel, _) | (NormReduce::Statistic, None) => per_channel,
            (NormReduce::Statistic, Some(g)) => {
                let run = self.channels / g * self.hw;
                Segments {
                    segments: self.n * g,
                    base: run,
                    inner: run,
                    stride: 0,
                    count: run,
                }
            }
        }
    }

    /// `(stat_div, stat_mod)`: element `i` belongs to statistic `(i / stat_div) % stat_mod`.
    pub fn statistic_map(&self) -> (usize, usize) {
        match self.groups {
            None => (self.hw, self.channels),
            Some(g) => (self.channels / g * self.hw, self.n * g),
        }
    }

    /// The statistic of element `i`.
    pub fn statistic_of(&self, i: usize) -> usize {
        let (div, modulo) = self.statistic_map();
        (i / div) % modulo
    }

    /// The channel of element `i`.
    pub fn channel_of(&self, i: usize) -> usize {
        (i / self.hw) % self.channels
    }
}

/// Checks a normalisation's operand lengths against its layout: every `(name, len, want)`.
///
/// # Errors
/// [`Error::CudaOperand`] naming the first operand of the wrong length (and a bad layout).
pub(crate) fn check_lengths(op: &'static str, layout: &NormLayout, operands: &[(&str, usize, usize)]) -> Result<()> {
    layout.validate(op)?;
    for &(name, len, want) in operands {
        if len != want {
            return Err(Error::CudaOperand {
                op,
                reason: format!("{name} has {len} values, the layout {layout:?} needs {want}"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element is in exactly one segment of each reduction, and the segments of the
    /// statistic reduction are the statistics of their elements.
    #[test]
    fn segments_partition_the_values_and_match_the_statistic_map() {
        for groups in [None, Some(1), Some(2), Some(6)] {
            let l = NormLayout {
                n: 3,
                channels: 6,
                hw: 5,
                groups,
            };
            l.validate("test").unwrap();
            for over in [NormReduce::Statistic, NormReduce::Channel] {
                let seg = l.segments(over);
                let mut seen = vec![0u8; l.len()];
                for s in 0..seg.segments {
                    for m in 0..seg.count {
                        let i = seg.index(s, m);
                        seen[i] += 1;
                        match over {
                            NormReduce::Statistic => assert_eq!(l.statistic_of(i), s, "{groups:?}"),
                            NormReduce::Channel => assert_eq!(l.channel_of(i), s, "{groups:?}"),
                        }
                    }
                }
                assert!(seen.iter().all(|&k| k == 1), "{groups:?} {over:?}");
            }
            assert_eq!(l.statistics() * l.count(), l.len());
        }
        for bad in [Some(0), Some(4)] {
            let l = NormLayout {
                n: 1,
                channels: 6,
                hw: 1,
                groups: bad,
            };
            assert!(l.validate("group_norm").unwrap_err().to_string().contains("groups"));
        }
    }
}
