//! The reference side of `conv_reference.rs`: a convolution with every index spelled out in f64
//! (`Direct`), the padding rules of Keras/TensorFlow and PyTorch written independently of the
//! library, and the mask forms the tests sweep.

use biokernels::conv::{Conv2dGeometry, ConvMask, ConvTranspose2dGeometry, Padding};
use biokernels::TileSize;
use biomask::{Layout, MaskSpec, Rng};

/// Deterministic non-zero values: random sign, magnitude in [0.25, 1.25).
pub fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let mag = 0.25 + (s >> 40) as f32 / (1u64 << 24) as f32;
            if s & 1 == 0 {
                mag
            } else {
                -mag
            }
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Reference: a convolution with every index spelled out, f64, returning (value, Σ|terms|).
// ------------------------------------------------------------------------------------------------

/// A direct convolution on its own side, padding resolved by the test (not by the library).
#[derive(Debug, Clone, Copy)]
pub struct Direct {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pt: usize,
    pub pl: usize,
    pub groups: usize,
}

impl Direct {
    /// Calls `f(x_index, w_index, y_index)` for every product of the convolution.
    pub fn for_each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (cg, og) = (self.cin / self.groups, self.cout / self.groups);
        for n in 0..self.n {
            for o in 0..self.cout {
                let g = o / og;
                for oy in 0..self.oh {
                    for ox in 0..self.ow {
                        let yi = ((n * self.cout + o) * self.oh + oy) * self.ow + ox;
                        for i in 0..self.kh {
                            let yy = (oy * self.sh + i * self.dh) as isize - self.pt as isize;
                            if yy < 0 || yy >= self.h as isize {
                                continue;
                            }
                            for j in 0..self.kw {
                                let xx = (ox * self.sw + j * self.dw) as isize - self.pl as isize;
                                if xx < 0 || xx >= self.w as isize {
                                    continue;
                                }
                                for c in 0..cg {
                                    let xi =
                                        ((n * self.cin + g * cg + c) * self.h + yy as usize) * self.w + xx as usize;
                                    let wi = ((i * self.kw + j) * cg + c) * self.cout + o;
                                    f(xi, wi, yi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    pub fn forward(&self, x: &[f32], wm: &[f64], bias: Option<&[f32]>) -> (Vec<f64>, Vec<f64>) {
        let len = self.n * self.cout * self.oh * self.ow;
        let mut y = vec![0f64; len];
        let mut s = vec![0f64; len];
        if let Some(b) = bias {
            for (idx, v) in y.iter_mut().enumerate() {
                let o = (idx / (self.oh * self.ow)) % self.cout;
                *v = f64::from(b[o]);
                s[idx] = v.abs();
            }
        }
        self.for_each(|xi, wi, yi| {
            let t = f64::from(x[xi]) * wm[wi];
            y[yi] += t;
            s[yi] += t.abs();
        });
        (y, s)
    }

    pub fn backward_input(&self, dy: &[f32], wm: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let len = self.n * self.cin * self.h * self.w;
        let mut dx = vec![0f64; len];
        let mut s = vec![0f64; len];
        self.for_each(|xi, wi, yi| {
            let t = f64::from(dy[yi]) * wm[wi];
            dx[xi] += t;
            s[xi] += t.abs();
        });
        (dx, s)
    }

    pub fn backward_weight(&self, x: &[f32], dy: &[f32], mask: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let len = self.kh * self.kw * (self.cin / self.groups) * self.cout;
        let mut dw = vec![0f64; len];
        let mut s = vec![0f64; len];
        self.for_each(|xi, wi, yi| {
            let t = f64::from(x[xi]) * f64::from(dy[yi]) * mask[wi];
            dw[wi] += t;
            s[wi] += t.abs();
        });
        (dw, s)
    }
}

/// Per-axis padding of a convolution, from the TensorFlow / PyTorch documentation formulas:
/// `(pad_begin, out)`.
pub fn tf_axis(
    size: usize,
    k: usize,
    s: usize,
    d: usize,
    pad: Option<(usize, usize)>,
    same: bool,
) -> Option<(usize, usize)> {
    let keff = d * (k - 1) + 1;
    if same {
        // TF: out = ceil(in / s), pad_total = max((out - 1)·s + keff - in, 0), pad_top = total / 2.
        let out = size.div_ceil(s);
        let total = ((out - 1) * s + keff).saturating_sub(size);
        return Some((total / 2, out));
    }
    let (b, e) = pad.unwrap_or((0, 0));
    if size + b + e < keff {
        return None;
    }
    if pad.is_none() {
        // TF "valid": out = ceil((in - keff + 1) / s).
        return Some((0, (size - keff + 1).div_ceil(s)));
    }
    // PyTorch: floor((in + 2p - d(k-1) - 1) / s) + 1, with the two sides separate.
    Some((b, (size + b + e - keff) / s + 1))
}

/// Explicit `(begin, end)` padding of one axis, `None` for `Valid`/`Same`.
type AxisPad = Option<(usize, usize)>;

pub fn axes(p: Padding) -> (AxisPad, AxisPad, bool) {
    match p {
        Padding::Valid => (None, None, false),
        Padding::Same => (None, None, true),
        Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } => (Some((top, bottom)), Some((left, right)), false),
    }
}

pub fn direct_conv(g: &Conv2dGeometry) -> Direct {
    let (ph, pw, same) = axes(g.padding);
    let (pt, oh) = tf_axis(g.in_h, g.kernel.0, g.stride.0, g.dilation.0, ph, same).unwrap();
    let (pl, ow) = tf_axis(g.in_w, g.kernel.1, g.stride.1, g.dilation.1, pw, same).unwrap();
    Direct {
        n: g.batch,
        cin: g.in_channels,
        h: g.in_h,
        w: g.in_w,
        cout: g.out_channels,
        oh,
        ow,
        kh: g.kernel.0,
        kw: g.kernel.1,
        sh: g.stride.0,
        sw: g.stride.1,
        dh: g.dilation.0,
        dw: g.dilation.1,
        pt,
        pl,
        groups: g.groups,
    }
}

/// PyTorch `ConvTranspose2d` output size and (top, left) padding; `Same` as TensorFlow's
/// `conv2d_transpose` with output `in·s + output_padding`.
pub fn torch_transpose_axis(
    size: usize,
    k: usize,
    s: usize,
    d: usize,
    op: usize,
    pad: Option<(usize, usize)>,
    same: bool,
) -> (usize, usize) {
    let keff = d * (k - 1) + 1;
    if same {
        let out = size * s + op;
        let total = ((size - 1) * s + keff).saturating_sub(out);
        return (total / 2, out);
    }
    let (b, e) = pad.unwrap_or((0, 0));
    (b, (size - 1) * s + keff + op - b - e)
}

/// The transposed convolution `y[n, g·og + oc, iy·s − pt + i·d, ix·s − pl + j·d] +=
/// x[n, q, iy, ix] · w[i, j, oc, q]` written as PyTorch documents it; returns the convolution
/// whose scatter this is (input = the transposed output).
pub fn direct_transpose(g: &ConvTranspose2dGeometry) -> Direct {
    let (ph, pw, same) = axes(g.padding);
    let (pt, oh) = torch_transpose_axis(
        g.in_h,
        g.kernel.0,
        g.stride.0,
        g.dilation.0,
        g.output_padding.0,
        ph,
        same,
    );
    let (pl, ow) = torch_transpose_axis(
        g.in_w,
        g.kernel.1,
        g.stride.1,
        g.dilation.1,
        g.output_padding.1,
        pw,
        same,
    );
    Direct {
        n: g.batch,
        cin: g.out_channels,
        h: oh,
        w: ow,
        cout: g.in_channels,
        oh: g.in_h,
        ow: g.in_w,
        kh: g.kernel.0,
        kw: g.kernel.1,
        sh: g.stride.0,
        sw: g.stride.1,
        dh: g.dilation.0,
        dw: g.dilation.1,
        pt,
        pl,
        groups: g.groups,
    }
}

#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &(Vec<f64>, Vec<f64>)) {
    assert_eq!(got.len(), want.0.len(), "{what}: length");
    for (idx, (&g, (&w, &s))) in got.iter().zip(want.0.iter().zip(&want.1)).enumerate() {
        let tol = 2e-5 * s + 1e-6;
        assert!(
            (f64::from(g) - w).abs() <= tol,
            "{what}[{idx}]: got {g}, want {w} (tolerance {tol})"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Masks.
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Form {
    None,
    Diagonal,
    TwoD,
    Individual,
}

pub const FORMS: [Form; 4] = [Form::None, Form::Diagonal, Form::TwoD, Form::Individual];

pub fn spec(form: Form, nx: usize, ny: usize) -> Option<MaskSpec> {
    let isqrt = |v: usize| ((v as f64).sqrt() as usize).max(1);
    match form {
        Form::None => None,
        Form::Diagonal => Some(MaskSpec::diagonal(0.5)),
        Form::TwoD => Some(MaskSpec::two_d(isqrt(nx), isqrt(ny), 0.6)),
        Form::Individual => Some(MaskSpec::Individual { param_reduction: 0.5 }),
    }
}

/// The mask (biomask, Keras layout, seeded 0) and its 0/1 values (all ones without a mask).
pub fn conv_mask(g: &Conv2dGeometry, form: Form, tile: TileSize) -> (Option<ConvMask>, Vec<f64>) {
    let nx = g.in_channels / g.groups;
    match spec(form, nx, g.out_channels) {
        None => (None, vec![1.0; g.weight_len()]),
        Some(s) => {
            let m = s
                .conv(
                    g.in_channels,
                    g.out_channels,
                    g.groups,
                    g.kernel,
                    Layout::Keras,
                    &mut Rng::seeded(0),
                )
                .unwrap();
            let cm = ConvMask::from_mask(&m, g.groups, tile).unwrap();
            (Some(cm), m.keras_values().iter().map(|&v| f64::from(v)).collect())
        }
    }
}

pub fn transpose_mask(g: &ConvTranspose2dGeometry, form: Form, tile: TileSize) -> (Option<ConvMask>, Vec<f64>) {
    let nx = g.out_channels / g.groups;
    match spec(form, nx, g.in_channels) {
        None => (None, vec![1.0; g.weight_len()]),
        Some(s) => {
            let m = s
                .conv_transpose(
                    g.in_channels,
                    g.out_channels,
                    g.groups,
                    g.kernel,
                    Layout::Keras,
                    &mut Rng::seeded(0),
                )
                .unwrap();
            let cm = ConvMask::from_mask(&m, g.groups, tile).unwrap();
            (Some(cm), m.keras_values().iter().map(|&v| f64::from(v)).collect())
        }
    }
}

pub fn masked(w: &[f32], mask: &[f64]) -> Vec<f64> {
    w.iter().zip(mask).map(|(&a, &m)| f64::from(a) * m).collect()
}

pub fn dot(a: &[f32], b: &[f32]) -> (f64, f64) {
    a.iter().zip(b).fold((0.0, 0.0), |(s, t), (&x, &y)| {
        let p = f64::from(x) * f64::from(y);
        (s + p, t + p.abs())
    })
}

// ------------------------------------------------------------------------------------------------
// The checks, one geometry at a time.
// ------------------------------------------------------------------------------------------------
