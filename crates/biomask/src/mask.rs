//! `Mask`: a generated mask with its counts and layout conversions.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::spec::{LayerKind, MaskForm, MaskSpec};

/// The array layout a mask is exported in, and the order the random forms draw in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Layout {
    /// Keras: dense `(nx, ny)` = `(in, out)`, conv kernel `(kh, kw, nx, ny)`.
    #[default]
    Keras,
    /// PyTorch: linear `(ny, nx)` = `(out, in)`, conv weight `(ny, nx, kh, kw)`; for a transposed
    /// convolution this is PyTorch's `(in, out/groups, kh, kw)` weight shape.
    Torch,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MaskValues {
    /// One `(nx, ny)` channel mask used at every spatial tap.
    Shared(Vec<f32>),
    /// An independent `(kh, kw, nx, ny)` mask per tap (`individual` on a conv layer).
    PerTap(Vec<f32>),
}

/// A generated connection mask in canonical coordinates (`x` = layer input unit, `y` = layer
/// output unit; see the crate docs for transposed convolutions).
///
/// # Shapes
/// `nx × ny` per spatial tap, `kh × kw` taps (`1 × 1` for dense layers). Counts cover the whole
/// kernel: `num_weights = kh·kw·nx·ny`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    spec: MaskSpec,
    kind: LayerKind,
    nx: usize,
    ny: usize,
    values: MaskValues,
    num_ones: usize,
    density: f64,
    halfbandwidth: f64,
    binary: bool,
}

impl Mask {
    pub(crate) fn new(
        spec: MaskSpec,
        kind: LayerKind,
        nx: usize,
        ny: usize,
        values: MaskValues,
        halfbandwidth: f64,
        gaussian_sum: Option<f64>,
    ) -> Self {
        let (kh, kw) = kind.kernel_size();
        let num_weights = kh * kw * nx * ny;
        let num_ones = match &values {
            MaskValues::Shared(v) => kh * kw * v.iter().filter(|&&x| x != 0.0).count(),
            MaskValues::PerTap(v) => v.iter().filter(|&&x| x != 0.0).count(),
        };
        let binary = spec.form() != MaskForm::Gaussian
            && match &values {
                MaskValues::Shared(v) | MaskValues::PerTap(v) => crate::matrix::is_binary(v),
            };
        let density = match gaussian_sum {
            Some(gsum) => gsum / (nx * ny) as f64,
            None => num_ones as f64 / num_weights as f64,
        };
        Mask {
            spec,
            kind,
            nx,
            ny,
            values,
            num_ones,
            density,
            halfbandwidth,
            binary,
        }
    }

    /// The spec this mask was built from.
    pub fn spec(&self) -> &MaskSpec {
        &self.spec
    }
    /// The form of the spec.
    pub fn form(&self) -> MaskForm {
        self.spec.form()
    }
    /// The layer kind this mask was built for.
    pub fn layer_kind(&self) -> LayerKind {
        self.kind
    }
    /// Number of input units (x), `in_features` or `in_channels / groups`.
    pub fn nx(&self) -> usize {
        self.nx
    }
    /// Number of output units (y).
    pub fn ny(&self) -> usize {
        self.ny
    }
    /// `(kh, kw)`, `(1, 1)` for dense layers.
    pub fn kernel_size(&self) -> (usize, usize) {
        self.kind.kernel_size()
    }
    /// Whether every value is 0 or 1 (all forms but `gaussian` and a weighted `matrix`).
    pub fn is_binary(&self) -> bool {
        self.binary
    }
    /// Number of weights the mask keeps (non-zero entries over the whole kernel). Unlike
    /// `SzDense` at `param_reduction = 1` (which reports -1) this is always the true count; for
    /// `gaussian` it is the support (upstream reports 0).
    pub fn num_ones(&self) -> usize {
        self.num_ones
    }
    /// Number of weights of the unmasked kernel, `kh·kw·nx·ny`.
    pub fn num_weights(&self) -> usize {
        let (kh, kw) = self.kernel_size();
        kh * kw * self.nx * self.ny
    }
    /// `num_weights - num_ones`.
    pub fn num_zeros(&self) -> usize {
        self.num_weights() - self.num_ones
    }
    /// Fraction of weights kept; for `gaussian` the mean of the un-normalised window
    /// `ΣG / (nx·ny)`, which is upstream's `1 - reduced_ratio`; for a weighted `matrix` the
    /// fraction of non-zero entries.
    pub fn density(&self) -> f64 {
        self.density
    }
    /// `1 - density`, upstream's `get_reduced_ratio()`.
    pub fn reduced_ratio(&self) -> f64 {
        1.0 - self.density
    }
    /// The rescale applied once to the initial kernel: `num_weights / num_ones` (1 when the mask
    /// is empty). For `gaussian` it is 1: the window already has mean 1 and upstream `SzDense`
    /// does not rescale; so is it for a weighted `matrix`, whose values carry their own scale.
    pub fn w_corr(&self) -> f64 {
        if !self.binary || self.num_ones == 0 {
            1.0
        } else {
            self.num_weights() as f64 / self.num_ones as f64
        }
    }
    /// The half-bandwidth used by `diagonal`/`gaussian` (computed or given), 0 for other forms.
    pub fn halfbandwidth(&self) -> f64 {
        self.halfbandwidth
    }
    /// Whether one `(nx, ny)` channel mask is used at every tap (all forms except `individual`
    /// on a conv layer with more than one tap).
    pub fn is_shared_across_taps(&self) -> bool {
        matches!(self.values, MaskValues::Shared(_))
    }
    /// The `(nx, ny)` channel mask in row-major order, when it is shared by all taps.
    pub fn channel_values(&self) -> Option<&[f32]> {
        match &self.values {
            MaskValues::Shared(v) => Some(v),
            MaskValues::PerTap(_) => None,
        }
    }
    /// The value at tap `(i, j)`, input `x`, output `y`. Out-of-range indices give `None`.
    pub fn get(&self, i: usize, j: usize, x: usize, y: usize) -> Option<f32> {
        let (kh, kw) = self.kernel_size();
        if i >= kh || j >= kw || x >= self.nx || y >= self.ny {
            return None;
        }
        Some(match &self.values {
            MaskValues::Shared(v) => v[x * self.ny + y],
            MaskValues::PerTap(v) => v[((i * kw + j) * self.nx + x) * self.ny + y],
        })
    }
    /// The values in canonical Keras order: `(nx, ny)` for dense, `(kh, kw, nx, ny)` for conv
    /// (a shared channel mask is repeated at every tap).
    pub fn keras_values(&self) -> Vec<f32> {
        match &self.values {
            MaskValues::PerTap(v) => v.clone(),
            MaskValues::Shared(v) => {
                let (kh, kw) = self.kernel_size();
                let mut out = Vec::with_capacity(kh * kw * v.len());
                for _ in 0..kh * kw {
                    out.extend_from_slice(v);
                }
                out
            }
        }
    }
    /// The shape of [`Mask::to_layout`]: `(nx, ny)` / `(kh, kw, nx, ny)` for Keras, `(ny, nx)` /
    /// `(ny, nx, kh, kw)` for PyTorch.
    pub fn shape(&self, layout: Layout) -> Vec<usize> {
        let (kh, kw) = self.kernel_size();
        match (self.kind, layout) {
            (LayerKind::Dense, Layout::Keras) => vec![self.nx, self.ny],
            (LayerKind::Dense, Layout::Torch) => vec![self.ny, self.nx],
            (_, Layout::Keras) => vec![kh, kw, self.nx, self.ny],
            (_, Layout::Torch) => vec![self.ny, self.nx, kh, kw],
        }
    }
    /// The mask in the given layout, C order (see [`Mask::shape`]).
    pub fn to_layout(&self, layout: Layout) -> Vec<f32> {
        match layout {
            Layout::Keras => self.keras_values(),
            Layout::Torch => {
                let (kh, kw) = self.kernel_size();
                let mut out = Vec::with_capacity(self.num_weights());
                for y in 0..self.ny {
                    for x in 0..self.nx {
                        for i in 0..kh {
                            for j in 0..kw {
                                out.push(self.value_unchecked(i, j, x, y));
                            }
                        }
                    }
                }
                out
            }
        }
    }
    fn value_unchecked(&self, i: usize, j: usize, x: usize, y: usize) -> f32 {
        match &self.values {
            MaskValues::Shared(v) => v[x * self.ny + y],
            MaskValues::PerTap(v) => {
                let (_, kw) = self.kernel_size();
                v[((i * kw + j) * self.nx + x) * self.ny + y]
            }
        }
    }
    /// Output units with no connection at all (every input, every tap is 0). For `2d` these
    /// include the outputs `y >= (ny / output2d_width) * output2d_width`, which upstream leaves
    /// silently dead apart from their bias.
    pub fn dead_outputs(&self) -> Vec<usize> {
        let (kh, kw) = self.kernel_size();
        (0..self.ny)
            .filter(|&y| {
                (0..kh).all(|i| (0..kw).all(|j| (0..self.nx).all(|x| self.value_unchecked(i, j, x, y) == 0.0)))
            })
            .collect()
    }
    /// Outcomes that follow upstream exactly but that a user would not expect, one sentence each
    /// (the command line prints them as warnings; `docs/upstream-differences.md` lists them):
    /// * `gaussian` whose half-bandwidth is 0 (`param_reduction = 1` with no `halfbandwidth`):
    ///   upstream switches the window off, so the mask is all ones, not empty;
    /// * `2d` with `nx` not a multiple of `input2d_width` (or `ny` of `output2d_width`): upstream's
    ///   integer division puts the extra input units below the unit square (and leaves the extra
    ///   output units unconnected, see [`Mask::dead_outputs`]).
    ///
    /// Dead outputs are reported by [`Mask::dead_outputs`], not here.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        match self.spec {
            MaskSpec::Gaussian { param_reduction, .. } if self.ny > 1 && self.halfbandwidth <= 0.0 => {
                notes.push(format!(
                    "gaussian with param_reduction = {param_reduction} has half-bandwidth 0, where upstream's \
                     window switches off: the mask is all ones (density 1), not empty"
                ));
            }
            MaskSpec::TwoD {
                input2d_width,
                output2d_width,
                ..
            } if self.ny > 1 => {
                if self.nx % input2d_width != 0 {
                    notes.push(format!(
                        "2d: nx = {} is not a multiple of input2d_width = {input2d_width}: upstream's grid \
                         places the last {} input unit(s) below the unit square (kept as upstream)",
                        self.nx,
                        self.nx % input2d_width
                    ));
                }
                if self.ny % output2d_width != 0 {
                    notes.push(format!(
                        "2d: ny = {} is not a multiple of output2d_width = {output2d_width}: upstream leaves \
                         the last {} output unit(s) without connections (kept as upstream)",
                        self.ny,
                        self.ny % output2d_width
                    ));
                }
            }
            _ => {}
        }
        notes
    }

    /// Writes the mask as a C-order `.npy` in `layout`: `uint8` 0/1 for binary masks, `float32`
    /// for `gaussian` and a weighted `matrix`. The file is written atomically.
    pub fn write_npy(&self, path: &Path, layout: Layout) -> bionpy::Result<()> {
        let bytes = self.npy_bytes(layout).map_err(|source| bionpy::Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        bionpy::write_atomic(path, &bytes)
    }

    /// The `.npy` bytes [`Mask::write_npy`] writes (for writing several files all-or-nothing
    /// with [`bionpy::write_all_atomic`]).
    ///
    /// # Errors
    /// Only an internal shape mismatch, which the mask's own shape rules out.
    pub fn npy_bytes(&self, layout: Layout) -> std::io::Result<Vec<u8>> {
        let shape = self.shape(layout);
        let values = self.to_layout(layout);
        if self.is_binary() {
            let bytes: Vec<u8> = values.iter().map(|&v| u8::from(v != 0.0)).collect();
            bionpy::npy_bytes(&shape, &bytes)
        } else {
            bionpy::npy_bytes(&shape, &values)
        }
    }
}
