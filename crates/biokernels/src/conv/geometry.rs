//! Convolution geometry: padding, output sizes, the GEMM plan of a layer, and the checks that
//! turn a bad layer description into a typed [`Error::ConvGeometry`] before anything is
//! allocated (see the [module docs](super) for the formulas).

use super::cpu::Plan;
use crate::error::{Error, Result};

/// Spatial padding of a convolution (see the [module docs](super#padding)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Padding {
    /// No padding.
    #[default]
    Valid,
    /// Keras/TensorFlow `"same"`: output `ceil(H / stride)`, the odd padding pixel at the
    /// bottom/right; honours stride and dilation.
    Same,
    /// Explicit zero padding on each side.
    Explicit {
        top: usize,
        bottom: usize,
        left: usize,
        right: usize,
    },
}

impl Padding {
    /// The same padding `p` on every side (PyTorch `padding = p`).
    pub fn symmetric(p: usize) -> Self {
        Padding::Explicit {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }
}

/// The geometry of a 2-D convolution, NCHW. See the [module docs](super).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_channels: usize,
    /// `(kh, kw)`.
    pub kernel: (usize, usize),
    /// `(sh, sw)`.
    pub stride: (usize, usize),
    pub padding: Padding,
    /// `(dh, dw)`.
    pub dilation: (usize, usize),
    pub groups: usize,
}

/// The geometry of a 2-D transposed convolution, NCHW (PyTorch `ConvTranspose2d`). See the
/// [module docs](super#transposed-convolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvTranspose2dGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_channels: usize,
    /// `(kh, kw)`.
    pub kernel: (usize, usize),
    /// `(sh, sw)`.
    pub stride: (usize, usize),
    pub padding: Padding,
    /// Extra rows/columns at the bottom/right of the output, each smaller than the stride or
    /// the dilation along its axis.
    pub output_padding: (usize, usize),
    /// `(dh, dw)`.
    pub dilation: (usize, usize),
    pub groups: usize,
}

fn geometry_err(op: &'static str, reason: String) -> Error {
    Error::ConvGeometry { op, reason }
}

pub(super) fn mul_all(op: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter().try_fold(1usize, |acc, &d| {
        acc.checked_mul(d)
            .ok_or_else(|| geometry_err(op, format!("the shape {dims:?} is too large to address")))
    })
}

/// `d·(k − 1) + 1`.
fn effective_kernel(op: &'static str, axis: &str, k: usize, d: usize) -> Result<usize> {
    (k - 1)
        .checked_mul(d)
        .and_then(|v| v.checked_add(1))
        .ok_or_else(|| geometry_err(op, format!("{axis}: kernel {k} with dilation {d} is too large")))
}

/// Shared checks of both geometries: every size positive, groups dividing the channels.
#[allow(clippy::too_many_arguments)]
fn check_common(
    op: &'static str,
    in_channels: usize,
    in_h: usize,
    in_w: usize,
    out_channels: usize,
    kernel: (usize, usize),
    stride: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
) -> Result<()> {
    let named = [
        ("in_channels", in_channels),
        ("in_h", in_h),
        ("in_w", in_w),
        ("out_channels", out_channels),
        ("kernel.0", kernel.0),
        ("kernel.1", kernel.1),
        ("stride.0", stride.0),
        ("stride.1", stride.1),
        ("dilation.0", dilation.0),
        ("dilation.1", dilation.1),
        ("groups", groups),
    ];
    if let Some((name, _)) = named.iter().find(|(_, v)| *v == 0) {
        return Err(geometry_err(op, format!("{name} is 0; it must be >= 1")));
    }
    if !in_channels.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
        return Err(geometry_err(
            op,
            format!("in_channels = {in_channels} and out_channels = {out_channels} must both be divisible by groups = {groups}"),
        ));
    }
    Ok(())
}

/// One axis of a convolution: `(pad_begin, out)`.
fn conv_axis(
    op: &'static str,
    axis: &str,
    size: usize,
    k: usize,
    s: usize,
    d: usize,
    pad: (usize, usize, bool),
) -> Result<(usize, usize)> {
    let keff = effective_kernel(op, axis, k, d)?;
    let (begin, end, same) = pad;
    if same {
        let out = size.div_ceil(s);
        let total = (out - 1)
            .checked_mul(s)
            .and_then(|v| v.checked_add(keff))
            .ok_or_else(|| geometry_err(op, format!("{axis}: size overflow")))?
            .saturating_sub(size);
        return Ok((total / 2, out));
    }
    let padded = size
        .checked_add(begin)
        .and_then(|v| v.checked_add(end))
        .ok_or_else(|| geometry_err(op, format!("{axis}: padding overflows")))?;
    if padded < keff {
        return Err(geometry_err(
            op,
            format!(
                "{axis}: the dilated kernel ({keff} = dilation {d} x ({k} - 1) + 1) is larger than the padded input ({size} + {begin} + {end} = {padded})"
            ),
        ));
    }
    Ok((begin, (padded - keff) / s + 1))
}

fn split_padding(p: Padding) -> ((usize, usize, bool), (usize, usize, bool)) {
    match p {
        Padding::Valid => ((0, 0, false), (0, 0, false)),
        Padding::Same => ((0, 0, true), (0, 0, true)),
        Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } => ((top, bottom, false), (left, right, false)),
    }
}

impl Conv2dGeometry {
    /// A convolution with stride 1, no padding, dilation 1 and one group; set the rest with the
    /// `with_*` methods.
    pub fn new(
        batch: usize,
        in_channels: usize,
        in_hw: (usize, usize),
        out_channels: usize,
        kernel: (usize, usize),
    ) -> Self {
        Conv2dGeometry {
            batch,
            in_channels,
            in_h: in_hw.0,
            in_w: in_hw.1,
            out_channels,
            kernel,
            stride: (1, 1),
            padding: Padding::Valid,
            dilation: (1, 1),
            groups: 1,
        }
    }
    /// Sets the stride.
    pub fn with_stride(mut self, stride: (usize, usize)) -> Self {
        self.stride = stride;
        self
    }
    /// Sets the padding.
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }
    /// Sets the dilation.
    pub fn with_dilation(mut self, dilation: (usize, usize)) -> Self {
        self.dilation = dilation;
        self
    }
    /// Sets the number of groups.
    pub fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// Checks the geometry.
    ///
    /// # Errors
    /// [`Error::ConvGeometry`]: a zero size, channels not divisible by `groups`, a dilated
    /// kernel larger than the padded input, or sizes too large to address.
    pub fn validate(&self) -> Result<()> {
        self.plan("conv2d").map(|_| ())
    }

    /// `(out_h, out_w)`.
    ///
    /// # Errors
    /// As [`Conv2dGeometry::validate`].
    pub fn output_hw(&self) -> Result<(usize, usize)> {
        let p = self.plan("conv2d")?;
        Ok((p.oh, p.ow))
    }

    /// The padding actually applied, `(top, bottom, left, right)` (for `Same`, the bottom and
    /// right include the odd pixel; only the part that output positions reach matters).
    ///
    /// # Errors
    /// As [`Conv2dGeometry::validate`].
    pub fn padding_amounts(&self) -> Result<(usize, usize, usize, usize)> {
        let p = self.plan("conv2d")?;
        let end = |size: usize, out: usize, s: usize, k: usize, d: usize, begin: usize| {
            ((out - 1) * s + d * (k - 1) + 1).saturating_sub(size + begin)
        };
        Ok(match self.padding {
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            } => (top, bottom, left, right),
            Padding::Valid => (0, 0, 0, 0),
            Padding::Same => (
                p.pt,
                end(p.h, p.oh, p.sh, p.kh, p.dh, p.pt),
                p.pl,
                end(p.w, p.ow, p.sw, p.kw, p.dw, p.pl),
            ),
        })
    }

    /// `[batch, in_channels, in_h, in_w]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.in_h, self.in_w]
    }
    /// `batch·in_channels·in_h·in_w` (saturating).
    pub fn input_len(&self) -> usize {
        saturating_len(&self.input_shape())
    }
    /// `[batch, out_channels, out_h, out_w]`.
    ///
    /// # Errors
    /// As [`Conv2dGeometry::validate`].
    pub fn output_shape(&self) -> Result<[usize; 4]> {
        let (oh, ow) = self.output_hw()?;
        Ok([self.batch, self.out_channels, oh, ow])
    }
    /// `batch·out_channels·out_h·out_w`.
    ///
    /// # Errors
    /// As [`Conv2dGeometry::validate`].
    pub fn output_len(&self) -> Result<usize> {
        mul_all("conv2d", &self.output_shape()?)
    }
    /// The Keras kernel shape `[kh, kw, in_channels / groups, out_channels]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.kernel.0,
            self.kernel.1,
            self.in_channels / self.groups.max(1),
            self.out_channels,
        ]
    }
    /// The number of weights, `kh·kw·(in_channels / groups)·out_channels` (saturating;
    /// meaningful for a valid geometry).
    pub fn weight_len(&self) -> usize {
        saturating_len(&self.weight_shape())
    }
    /// The `[kh, kw, nx, ny, groups]` a [`ConvMask`](super::ConvMask) for this layer has:
    /// `nx = in_channels / groups`, `ny = out_channels`.
    pub fn mask_dims(&self) -> [usize; 5] {
        let [kh, kw, nx, ny] = self.weight_shape();
        [kh, kw, nx, ny, self.groups]
    }

    pub(crate) fn plan(&self, op: &'static str) -> Result<Plan> {
        check_common(
            op,
            self.in_channels,
            self.in_h,
            self.in_w,
            self.out_channels,
            self.kernel,
            self.stride,
            self.dilation,
            self.groups,
        )?;
        let (ph, pw) = split_padding(self.padding);
        let (pt, oh) = conv_axis(
            op,
            "height",
            self.in_h,
            self.kernel.0,
            self.stride.0,
            self.dilation.0,
            ph,
        )?;
        let (pl, ow) = conv_axis(
            op,
            "width",
            self.in_w,
            self.kernel.1,
            self.stride.1,
            self.dilation.1,
            pw,
        )?;
        let plan = Plan {
            batch: self.batch,
            cin: self.in_channels,
            h: self.in_h,
            w: self.in_w,
            cout: self.out_channels,
            oh,
            ow,
            kh: self.kernel.0,
            kw: self.kernel.1,
            sh: self.stride.0,
            sw: self.stride.1,
            dh: self.dilation.0,
            dw: self.dilation.1,
            pt,
            pl,
            groups: self.groups,
        };
        plan.check_sizes(op)?;
        Ok(plan)
    }
}

fn saturating_len(dims: &[usize]) -> usize {
    dims.iter().fold(1usize, |a, &d| a.saturating_mul(d))
}

/// One axis of a transposed convolution: `(pad_begin, pad_end_effective, out)` where the
/// effective end padding makes `out = (size − 1)·s + keff − begin − end + extra` with
/// `extra` the effective output padding.
#[allow(clippy::too_many_arguments)]
fn transpose_axis(
    op: &'static str,
    axis: &str,
    size: usize,
    k: usize,
    s: usize,
    d: usize,
    op_pad: usize,
    pad: (usize, usize, bool),
) -> Result<(usize, usize, usize, usize)> {
    let keff = effective_kernel(op, axis, k, d)?;
    if op_pad >= s && op_pad >= d {
        return Err(geometry_err(
            op,
            format!("{axis}: output_padding {op_pad} must be smaller than the stride ({s}) or the dilation ({d})"),
        ));
    }
    let overflow = || geometry_err(op, format!("{axis}: size overflow"));
    // The full (unpadded) output: (size − 1)·s + keff.
    let full = (size - 1)
        .checked_mul(s)
        .and_then(|v| v.checked_add(keff))
        .ok_or_else(overflow)?;
    let (begin, end, same) = pad;
    if same {
        let out = size
            .checked_mul(s)
            .and_then(|v| v.checked_add(op_pad))
            .ok_or_else(overflow)?;
        let total = full.saturating_sub(out);
        let extra = out - (full - total);
        return Ok((total / 2, total - total / 2, extra, out));
    }
    let cropped = begin.checked_add(end).ok_or_else(overflow)?;
    let grown = full.checked_add(op_pad).ok_or_else(overflow)?;
    if grown <= cropped {
        return Err(geometry_err(
            op,
            format!(
                "{axis}: the padding ({begin} + {end}) removes the whole output ((in {size} - 1) x stride {s} + {keff} + output_padding {op_pad} = {grown})"
            ),
        ));
    }
    Ok((begin, end, op_pad, grown - cropped))
}

impl ConvTranspose2dGeometry {
    /// A transposed convolution with stride 1, no padding, no output padding, dilation 1 and
    /// one group; set the rest with the `with_*` methods.
    pub fn new(
        batch: usize,
        in_channels: usize,
        in_hw: (usize, usize),
        out_channels: usize,
        kernel: (usize, usize),
    ) -> Self {
        ConvTranspose2dGeometry {
            batch,
            in_channels,
            in_h: in_hw.0,
            in_w: in_hw.1,
            out_channels,
            kernel,
            stride: (1, 1),
            padding: Padding::Valid,
            output_padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
    /// Sets the stride.
    pub fn with_stride(mut self, stride: (usize, usize)) -> Self {
        self.stride = stride;
        self
    }
    /// Sets the padding.
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }
    /// Sets the output padding.
    pub fn with_output_padding(mut self, output_padding: (usize, usize)) -> Self {
        self.output_padding = output_padding;
        self
    }
    /// Sets the dilation.
    pub fn with_dilation(mut self, dilation: (usize, usize)) -> Self {
        self.dilation = dilation;
        self
    }
    /// Sets the number of groups.
    pub fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// Checks the geometry.
    ///
    /// # Errors
    /// [`Error::ConvGeometry`]: a zero size, channels not divisible by `groups`, an output
    /// padding not smaller than the stride or the dilation, padding that removes the whole
    /// output, or sizes too large to address.
    pub fn validate(&self) -> Result<()> {
        self.resolve("conv_transpose2d").map(|_| ())
    }

    /// `(out_h, out_w)`.
    ///
    /// # Errors
    /// As [`ConvTranspose2dGeometry::validate`].
    pub fn output_hw(&self) -> Result<(usize, usize)> {
        let (p, _) = self.resolve("conv_transpose2d")?;
        Ok((p.h, p.w))
    }

    /// The padding actually applied, `(top, bottom, left, right)`, with `Same` resolved.
    ///
    /// # Errors
    /// As [`ConvTranspose2dGeometry::validate`].
    pub fn padding_amounts(&self) -> Result<(usize, usize, usize, usize)> {
        let (p, ends) = self.resolve("conv_transpose2d")?;
        Ok((p.pt, ends.0, p.pl, ends.1))
    }

    /// `[batch, in_channels, in_h, in_w]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.in_h, self.in_w]
    }
    /// `batch·in_channels·in_h·in_w` (saturating).
    pub fn input_len(&self) -> usize {
        saturating_len(&self.input_shape())
    }
    /// `[batch, out_channels, out_h, out_w]`.
    ///
    /// # Errors
    /// As [`ConvTranspose2dGeometry::validate`].
    pub fn output_shape(&self) -> Result<[usize; 4]> {
        let (oh, ow) = self.output_hw()?;
        Ok([self.batch, self.out_channels, oh, ow])
    }
    /// `batch·out_channels·out_h·out_w`.
    ///
    /// # Errors
    /// As [`ConvTranspose2dGeometry::validate`].
    pub fn output_len(&self) -> Result<usize> {
        mul_all("conv_transpose2d", &self.output_shape()?)
    }
    /// The Keras `Conv2DTranspose` kernel shape `[kh, kw, out_channels / groups, in_channels]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.kernel.0,
            self.kernel.1,
            self.out_channels / self.groups.max(1),
            self.in_channels,
        ]
    }
    /// The number of weights (saturating; meaningful for a valid geometry).
    pub fn weight_len(&self) -> usize {
        saturating_len(&self.weight_shape())
    }
    /// The `[kh, kw, nx, ny, groups]` a [`ConvMask`](super::ConvMask) for this layer has:
    /// `nx = out_channels / groups`, `ny = in_channels` (what
    /// `biomask::MaskSpec::conv_transpose` builds).
    pub fn mask_dims(&self) -> [usize; 5] {
        let [kh, kw, nx, ny] = self.weight_shape();
        [kh, kw, nx, ny, self.groups]
    }

    /// The convolution whose input gradient this transposed convolution is: input
    /// `(batch, out_channels, out_h, out_w)`, output `(batch, in_channels, in_h, in_w)`, the
    /// same kernel, stride, dilation and groups, and explicit padding. Its weight and mask are
    /// this layer's, unchanged.
    ///
    /// # Errors
    /// As [`ConvTranspose2dGeometry::validate`], and [`Error::ConvGeometry`] when the rows
    /// past the full output (the output padding, or what `Same` adds when the dilated kernel is
    /// shorter than the stride) exceed the end padding + stride − 1: then no convolution maps
    /// the output back to exactly `(in_h, in_w)` (the transposed convolution itself still runs).
    pub fn adjoint_conv(&self) -> Result<Conv2dGeometry> {
        const OP: &str = "conv_transpose2d";
        let (p, (end_h, end_w)) = self.resolve(OP)?;
        let (ph, pw) = split_padding(self.padding);
        let (_, _, extra_h, _) = transpose_axis(OP, "height", self.in_h, p.kh, p.sh, p.dh, self.output_padding.0, ph)?;
        let (_, _, extra_w, _) = transpose_axis(OP, "width", self.in_w, p.kw, p.sw, p.dw, self.output_padding.1, pw)?;
        let geom = Conv2dGeometry {
            batch: self.batch,
            in_channels: self.out_channels,
            in_h: p.h,
            in_w: p.w,
            out_channels: self.in_channels,
            kernel: self.kernel,
            stride: self.stride,
            padding: Padding::Explicit {
                top: p.pt,
                bottom: end_h.saturating_sub(extra_h),
                left: p.pl,
                right: end_w.saturating_sub(extra_w),
            },
            dilation: self.dilation,
            groups: self.groups,
        };
        if geom.output_hw()? != (self.in_h, self.in_w) {
            return Err(geometry_err(
                OP,
                format!(
                    "with output_padding {:?} and stride {:?} no convolution maps the output {:?} back to the input {:?}",
                    self.output_padding,
                    self.stride,
                    (p.h, p.w),
                    (self.in_h, self.in_w)
                ),
            ));
        }
        Ok(geom)
    }

    /// The convolution-side plan (conv input = this layer's output) and the effective end
    /// paddings `(bottom, right)`.
    pub(crate) fn resolve(&self, op: &'static str) -> Result<(Plan, (usize, usize))> {
        check_common(
            op,
            self.in_channels,
            self.in_h,
            self.in_w,
            self.out_channels,
            self.kernel,
            self.stride,
            self.dilation,
            self.groups,
        )?;
        let (ph, pw) = split_padding(self.padding);
        let (pt, pb, _, oh) = transpose_axis(
            op,
            "height",
            self.in_h,
            self.kernel.0,
            self.stride.0,
            self.dilation.0,
            self.output_padding.0,
            ph,
        )?;
        let (pl, pr, _, ow) = transpose_axis(
            op,
            "width",
            self.in_w,
            self.kernel.1,
            self.stride.1,
            self.dilation.1,
            self.output_padding.1,
            pw,
        )?;
        let plan = Plan {
            batch: self.batch,
            cin: self.out_channels,
            h: oh,
            w: ow,
            cout: self.in_channels,
            oh: self.in_h,
            ow: self.in_w,
            kh: self.kernel.0,
            kw: self.kernel.1,
            sh: self.stride.0,
            sw: self.stride.1,
            dh: self.dilation.0,
            dw: self.dilation.1,
            pt,
            pl,
            groups: self.groups,
        };
        plan.check_sizes(op)?;
        Ok((plan, (pb, pr)))
    }
}
