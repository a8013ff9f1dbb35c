//! `MatrixMask`: a mask given as a matrix, from memory or from an `.npy` file (the `matrix`
//! form). Upstream has no such form; it lets any topology (a bio2art connectome, a mask made in
//! NumPy or PyTorch) mask a dense or conv layer with the same tile skipping as the built-in forms.
//!
//! # Values
//! * **0/1 values** (a topology): a binary mask like `diagonal` or `2d`. The layer rescales its
//!   initial kernel once by `w_corr = num_weights / num_ones`, the rule upstream applies to every
//!   binary form, so a `matrix` mask holding the values of a `diagonal` mask builds the very same
//!   layer (tested).
//! * **any other finite values** (a weighted matrix, e.g. connection strengths): a float window
//!   `M` like `gaussian`, used as given in every forward pass, `y = x·(W ⊙ M)` (no rescale:
//!   `w_corr = 1`, the values carry their own scale; normalise them to mean 1 to follow the
//!   `gaussian` convention). Dense layers only; tiles where `M` is exactly 0 are skipped.
//!
//! # Shapes
//! Canonical (Keras) orientation, row-major, `x` = layer input unit (row), `y` = layer output
//! unit (column):
//! * dense: `(nx, ny)` = `(in_features, out_features)`. bio2art's `W[source, target]` is already
//!   in this orientation: a connectome masks a feed-forward layer from its sources to its targets.
//! * conv: `(nx, ny)` = `(in_channels / groups, filters)`, shared by all `kh × kw` taps, or the
//!   full `(kh, kw, nx, ny)` with one channel mask per tap. For a transposed convolution `nx` is
//!   the layer's *output* channels / groups, as for every form (see [`crate::LayerKind`]).
//!
//! A PyTorch-ordered `(out, in)` matrix must be transposed first.
//!
//! # Serde
//! `{"form": "matrix", "path": "topology.npy"}` (configs; `float32`, `float64`, `uint8` or
//! `int64` arrays in C or Fortran order; the path is relative to the working directory), or
//! `{"form": "matrix", "values": [...], "shape": [nx, ny]}` for a small inline matrix.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{invalid, Error, Result};
use crate::spec::MAX_MASK_ELEMENTS;

/// A mask matrix: in memory (values + shape, validated when made) or an `.npy` path (read and
/// validated when a layer's mask is built). See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MatrixFields", into = "MatrixFields")]
pub struct MatrixMask {
    source: Source,
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    Npy(PathBuf),
    Values { values: Vec<f32>, shape: Vec<usize> },
}

/// The serialised fields: exactly one of `path` or `values` (with `shape`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shape: Option<Vec<usize>>,
}

impl TryFrom<MatrixFields> for MatrixMask {
    type Error = Error;
    fn try_from(f: MatrixFields) -> Result<Self> {
        match (f.path, f.values, f.shape) {
            (Some(path), None, None) => Ok(MatrixMask::npy(path)),
            (None, Some(values), Some(shape)) => MatrixMask::from_values(values, &shape),
            (None, Some(values), None) => Err(invalid(
                "shape",
                "missing",
                format!(
                    "a matrix mask with {} inline values needs `shape = [nx, ny]`",
                    values.len()
                ),
            )),
            (Some(path), _, _) => Err(invalid(
                "path",
                path.display(),
                "a matrix mask takes either `path` or `values` + `shape`, not both",
            )),
            (None, None, _) => Err(invalid(
                "path",
                "missing",
                "a matrix mask needs `path` (an .npy file) or `values` + `shape`",
            )),
        }
    }
}

impl From<MatrixMask> for MatrixFields {
    fn from(m: MatrixMask) -> Self {
        match m.source {
            Source::Npy(path) => MatrixFields {
                path: Some(path),
                values: None,
                shape: None,
            },
            Source::Values { values, shape } => MatrixFields {
                path: None,
                values: Some(values),
                shape: Some(shape),
            },
        }
    }
}

impl MatrixMask {
    /// A matrix of `shape` (`[nx, ny]`, or `[kh, kw, nx, ny]` for a per-tap conv mask) in C order.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `shape` (rank not 2 or 4, a zero size, more than
    /// [`MAX_MASK_ELEMENTS`], `values.len()` not the product) or `values` (a non-finite entry, by
    /// index; no non-zero entry at all: a mask that removes every weight is a dead layer).
    pub fn from_values(values: Vec<f32>, shape: &[usize]) -> Result<Self> {
        check_values(&values, shape)?;
        Ok(MatrixMask {
            source: Source::Values {
                values,
                shape: shape.to_vec(),
            },
        })
    }

    /// A matrix read from an `.npy` file when the mask is built (the file is checked then, with
    /// the errors of [`MatrixMask::from_values`] and [`Error::Npy`]).
    pub fn npy(path: impl Into<PathBuf>) -> Self {
        MatrixMask {
            source: Source::Npy(path.into()),
        }
    }

    /// The `.npy` path, when the matrix is read from a file.
    pub fn path(&self) -> Option<&Path> {
        match &self.source {
            Source::Npy(p) => Some(p),
            Source::Values { .. } => None,
        }
    }

    /// The values and shape: those in memory, or the file's (read and checked now).
    ///
    /// # Errors
    /// [`Error::Npy`] when the file cannot be read as a numeric array, and the errors of
    /// [`MatrixMask::from_values`].
    pub fn load(&self) -> Result<(Cow<'_, [f32]>, Vec<usize>)> {
        match &self.source {
            Source::Values { values, shape } => Ok((Cow::Borrowed(values), shape.clone())),
            Source::Npy(path) => {
                let (values, shape) = read_matrix_npy(path)?;
                check_values(&values, &shape)?;
                Ok((Cow::Owned(values), shape))
            }
        }
    }
}

/// Reads a numeric `.npy` as `f32`, refusing values that `f32` would change into 0 or infinity
/// (a connection that silently vanished or a non-finite gain).
fn read_matrix_npy(path: &Path) -> Result<(Vec<f32>, Vec<usize>)> {
    let npy_error = |reason: String| Error::Npy {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| npy_error(e.to_string()))?;
    if let Ok(a) = bionpy::parse_npy::<f32>(&bytes, path) {
        return Ok((a.data, a.shape));
    }
    if let Ok(a) = bionpy::parse_npy::<u8>(&bytes, path) {
        return Ok((a.data.into_iter().map(f32::from).collect(), a.shape));
    }
    if let Ok(a) = bionpy::parse_npy::<i64>(&bytes, path) {
        let values = a.data.iter().map(|&v| v as f32).collect();
        return Ok((values, a.shape));
    }
    match bionpy::parse_npy::<f64>(&bytes, path) {
        Ok(a) => Ok((f64_to_f32(&a.data, &a.shape)?, a.shape)),
        Err(e) => Err(npy_error(format!(
            "{e} (a matrix mask is a float32, float64, uint8 or int64 array)"
        ))),
    }
}

/// Converts `f64` values, refusing a non-zero value that `f32` rounds to 0 (the connection would
/// be lost) or to infinity.
pub(crate) fn f64_to_f32(values: &[f64], shape: &[usize]) -> Result<Vec<f32>> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let f = v as f32;
            if (f == 0.0 && v != 0.0) || (f.is_infinite() && v.is_finite()) {
                Err(invalid(
                    "values",
                    format!("{v:?} at {:?}", unravel(i, shape)),
                    "is outside the float32 range (it would become 0 or infinite); rescale the matrix",
                ))
            } else {
                Ok(f)
            }
        })
        .collect()
}

/// The multi-index of flat position `i` in a C-order array of `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (slot, &d) in index.iter_mut().zip(shape).rev() {
        if d > 0 {
            *slot = i % d;
            i /= d;
        }
    }
    index
}

fn check_values(values: &[f32], shape: &[usize]) -> Result<()> {
    if shape.len() != 2 && shape.len() != 4 {
        return Err(invalid(
            "shape",
            format!("{shape:?}"),
            "a matrix mask is [nx, ny] (dense, or conv shared by every tap) or [kh, kw, nx, ny]",
        ));
    }
    if shape.contains(&0) {
        return Err(invalid("shape", format!("{shape:?}"), "every size must be >= 1"));
    }
    let len = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_MASK_ELEMENTS)
        .ok_or_else(|| {
            invalid(
                "shape",
                format!("{shape:?}"),
                format!("holds more than {MAX_MASK_ELEMENTS} values (biomask::MAX_MASK_ELEMENTS)"),
            )
        })?;
    if values.len() != len {
        return Err(invalid(
            "shape",
            format!("{shape:?}"),
            format!("needs {len} values, got {}", values.len()),
        ));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(invalid(
            "values",
            format!("{} at {:?}", values[i], unravel(i, shape)),
            "every entry of a matrix mask must be finite",
        ));
    }
    if values.iter().all(|&v| v == 0.0) {
        return Err(invalid(
            "values",
            format!("all {len} zero"),
            "a matrix mask needs at least one non-zero entry (an empty mask is a dead layer)",
        ));
    }
    Ok(())
}

/// Whether every value is 0 or 1.
pub(crate) fn is_binary(values: &[f32]) -> bool {
    values.iter().all(|&v| v == 0.0 || v == 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unravel_is_c_order() {
        assert_eq!(unravel(5, &[2, 3]), vec![1, 2]);
        assert_eq!(unravel(0, &[2, 3]), vec![0, 0]);
        assert_eq!(unravel(23, &[2, 3, 2, 2]), vec![1, 2, 1, 1]);
    }

    #[test]
    fn f64_values_that_vanish_in_f32_are_refused() {
        assert_eq!(f64_to_f32(&[0.0, 0.5, 1.0], &[1, 3]).unwrap(), vec![0.0, 0.5, 1.0]);
        let e = f64_to_f32(&[1.0, 1e-60], &[1, 2]).unwrap_err().to_string();
        assert!(e.contains("1e-60 at [0, 1]"), "{e}");
        assert!(f64_to_f32(&[1e300], &[1, 1]).is_err());
    }
}
