//! Training-batch augmentation, one [`Augmentation`] per run: the project's [`Augment`] (a
//! horizontal flip and integer shifts with zero fill) or [`KerasAugment`], Keras 2's
//! `ImageDataGenerator` (rotation, shifts, zoom, channel shift, flips), as
//! `CIFAR10_VGG16Schizo200921act.py` trains with it.
//!
//! # Keras' transform (keras-preprocessing 1.1.x, which TF 2.3's `tf.keras` uses)
//! On an image of `h` rows and `w` columns with values in upstream's scale (`x / 255`), for the
//! parameters θ (degrees), `tx` (rows), `ty` (columns), `zx` (rows), `zy` (columns):
//!
//! ```text
//! M = R(θ) · S(tx, ty) · Z(zx, zy)      R = [[cos θ, −sin θ, 0], [sin θ, cos θ, 0], [0, 0, 1]]
//!                                       S = [[1, 0, tx], [0, 1, ty], [0, 0, 1]],  Z = diag(zx, zy, 1)
//! T = O · M · O⁻¹                       O = translation by o = (h/2 + 0.5, w/2 + 0.5)
//! out[c, i, j] = bilinear(in[c], clamp(T₀₀ i + T₀₁ j + T₀₂, 0, h − 1), clamp(T₁₀ i + T₁₁ j + T₁₂, 0, w − 1))
//! out ← min(max(out + s, min(out)), max(out))     (s: channel-shift intensity)
//! out ← out[:, :, ::−1] (horizontal flip), out ← out[:, ::−1, :] (vertical flip)
//! ```
//!
//! That is `scipy.ndimage.affine_transform(channel, T[:2, :2], T[:2, 2], order=1,
//! mode='nearest')` per channel (for linear interpolation, 'nearest' is clamping the sampled
//! coordinate into the image), `apply_channel_shift` (one intensity for every channel, clipped
//! to the min and max of the **whole** image, not of each channel) and `flip_axis`, in
//! upstream's order. A factor that is the identity (θ = 0, `tx = ty = 0`, `zx = zy = 1`) is left
//! out of `M` as Keras does; with all three left out the image is not resampled at
//! all. Upstream's centre `o` is half a pixel past the geometric centre `(h − 1)/2` (a Keras quirk,
//! kept). Checked against that code on SciPy (`xtask/python/augment_reference.py`, fixture
//! `tests/fixtures/augment/`).
//!
//! The parameters are drawn per image in the order of Keras' `get_random_transform`:
//! θ ~ U(−rotation, rotation); `tx` ~ U(−height_shift, height_shift)·h; `ty` ~
//! U(−width_shift, width_shift)·w; `zx`, `zy` ~ U(1 − zoom, 1 + zoom); one uniform each for the
//! horizontal and the vertical flip (flipped when < 0.5 and the flip is on; both are drawn
//! even when off); `s` ~ U(−channel_shift, channel_shift). A range of 0 draws nothing. The draws
//! come from the run's seeded stream, not NumPy's global one, so the values differ from an
//! upstream run (docs/upstream-differences.md); for given parameters the image is Keras'.
//!
//! # Shapes
//! An image is `(channels, height, width)`: `u8` in a dataset, `f32` in `[0, 1]` (`x / 255`)
//! through the transform; normalisation comes after augmentation, as Keras' `standardize`
//! after `apply_transform`.

use biorng::Stream;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Error, Result};

/// Random augmentation: horizontal flip with probability 1/2 and integer shifts of up to
/// `max_shift` pixels in each direction (zero fill).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// Flip left-right with probability 1/2.
    pub hflip: bool,
    /// Maximum shift in pixels along each axis.
    pub max_shift: usize,
}

impl Augment {
    fn draw(&self, rng: &mut Stream) -> (bool, isize, isize) {
        let flip = self.hflip && rng.below(2) == 1;
        let span = 2 * self.max_shift as u64 + 1;
        let dy = rng.below(span) as isize - self.max_shift as isize;
        let dx = rng.below(span) as isize - self.max_shift as isize;
        (flip, dy, dx)
    }

    /// Appends the augmented `x / 255` values of `img` (`(c, h, w)` bytes) to `out`.
    fn apply(&self, img: &[u8], (c, h, w): (usize, usize, usize), rng: &mut Stream, out: &mut Vec<f32>) {
        let (flip, dy, dx) = self.draw(rng);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let sy = y as isize - dy;
                    let sx0 = x as isize - dx;
                    let sx = if flip { w as isize - 1 - sx0 } else { sx0 };
                    out.push(if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                        f32::from(img[(ch * h + sy as usize) * w + sx as usize]) / 255.0
                    } else {
                        0.0
                    });
                }
            }
        }
    }
}

/// Keras' `ImageDataGenerator(rotation_range, width_shift_range, height_shift_range,
/// zoom_range, channel_shift_range, horizontal_flip, vertical_flip)` with its defaults
/// `fill_mode = 'nearest'` and `interpolation_order = 1` (the only ones supported), on images
/// scaled to `[0, 1]`. The shift ranges are fractions of the size (Keras' float form below 1;
/// its pixel and list forms are not supported) and `zoom_range = z` is Keras' float form
/// `[1 − z, 1 + z]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KerasAugment {
    /// Rotation range in degrees: θ ~ U(−r, r).
    pub rotation_range: f64,
    /// Column shift as a fraction of the width, in `[0, 1)`.
    pub width_shift_range: f64,
    /// Row shift as a fraction of the height, in `[0, 1)`.
    pub height_shift_range: f64,
    /// Zoom `z` in `[0, 1)`: `zx`, `zy` ~ U(1 − z, 1 + z), independently.
    pub zoom_range: f64,
    /// Channel-shift range in the `[0, 1]` pixel scale: one intensity ~ U(−r, r) per image.
    pub channel_shift_range: f64,
    /// Flip left-right with probability 1/2.
    pub horizontal_flip: bool,
    /// Flip upside down with probability 1/2.
    pub vertical_flip: bool,
}

impl KerasAugment {
    /// `ImageDataGenerator(rotation_range = 20, horizontal_flip = True, height_shift_range = 0.2,
    /// width_shift_range = 0.2, zoom_range = 0.2, channel_shift_range = 0.2)` of
    /// `CIFAR10_VGG16Schizo200921act.py` (its images are `x / 255`, so the channel shift is
    /// ±0.2 of the full range).
    pub fn vgg16_schizo() -> Self {
        KerasAugment {
            rotation_range: 20.0,
            width_shift_range: 0.2,
            height_shift_range: 0.2,
            zoom_range: 0.2,
            channel_shift_range: 0.2,
            horizontal_flip: true,
            vertical_flip: false,
        }
    }

    /// Refuses ranges the transform does not support (each names its value).
    ///
    /// # Errors
    /// A non-finite or negative range, a shift range of 1 or more (Keras reads those as pixels)
    /// or a zoom range of 1 or more (it would allow a zoom of 0).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("rotation_range", self.rotation_range),
            ("channel_shift_range", self.channel_shift_range),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(name, v, "must be finite and >= 0"));
            }
        }
        for (name, v) in [
            ("width_shift_range", self.width_shift_range),
            ("height_shift_range", self.height_shift_range),
            ("zoom_range", self.zoom_range),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(invalid(name, v, "must be in [0, 1) (a fraction)"));
            }
        }
        Ok(())
    }

    /// Draws the parameters of one image of `height × width` from `rng`, in the order of Keras'
    /// `get_random_transform` (module docs).
    pub fn draw(&self, height: usize, width: usize, rng: &mut Stream) -> KerasTransform {
        let theta = if self.rotation_range != 0.0 {
            rng.uniform(-self.rotation_range, self.rotation_range)
        } else {
            0.0
        };
        let tx = if self.height_shift_range != 0.0 {
            rng.uniform(-self.height_shift_range, self.height_shift_range) * height as f64
        } else {
            0.0
        };
        let ty = if self.width_shift_range != 0.0 {
            rng.uniform(-self.width_shift_range, self.width_shift_range) * width as f64
        } else {
            0.0
        };
        let (zx, zy) = if self.zoom_range != 0.0 {
            let (lo, hi) = (1.0 - self.zoom_range, 1.0 + self.zoom_range);
            let zx = rng.uniform(lo, hi);
            (zx, rng.uniform(lo, hi))
        } else {
            (1.0, 1.0)
        };
        // Keras draws both flips whether they are on or not.
        let flip_horizontal = rng.uniform01() < 0.5 && self.horizontal_flip;
        let flip_vertical = rng.uniform01() < 0.5 && self.vertical_flip;
        let channel_shift =
            (self.channel_shift_range != 0.0).then(|| rng.uniform(-self.channel_shift_range, self.channel_shift_range));
        KerasTransform {
            theta,
            tx,
            ty,
            zx,
            zy,
            channel_shift,
            flip_horizontal,
            flip_vertical,
        }
    }
}

/// The parameters of one Keras transform (`get_random_transform`'s dictionary without shear
/// and brightness).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KerasTransform {
    /// Rotation in degrees.
    pub theta: f64,
    /// Shift along the rows, in pixels.
    pub tx: f64,
    /// Shift along the columns, in pixels.
    pub ty: f64,
    /// Zoom along the rows.
    pub zx: f64,
    /// Zoom along the columns.
    pub zy: f64,
    /// Channel-shift intensity (`None`: no shift, not even the clip).
    pub channel_shift: Option<f64>,
    /// Reverse the columns.
    pub flip_horizontal: bool,
    /// Reverse the rows.
    pub flip_vertical: bool,
}

type Mat3 = [[f64; 3]; 3];

fn matmul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut c = [[0.0; 3]; 3];
    for (i, row) in c.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
        }
    }
    c
}

impl KerasTransform {
    /// No change.
    pub const IDENTITY: KerasTransform = KerasTransform {
        theta: 0.0,
        tx: 0.0,
        ty: 0.0,
        zx: 1.0,
        zy: 1.0,
        channel_shift: None,
        flip_horizontal: false,
        flip_vertical: false,
    };

    /// `T = O·M·O⁻¹` of an `h × w` image (output row, column → input row, column), or `None`
    /// when every geometric factor is the identity (Keras then does not resample).
    fn matrix(&self, h: usize, w: usize) -> Option<Mat3> {
        let mut m: Option<Mat3> = None;
        let mut then = |f: Mat3| m = Some(m.map_or(f, |m| matmul(&m, &f)));
        if self.theta != 0.0 {
            let t = self.theta.to_radians();
            let (s, c) = t.sin_cos();
            then([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]);
        }
        if self.tx != 0.0 || self.ty != 0.0 {
            then([[1.0, 0.0, self.tx], [0.0, 1.0, self.ty], [0.0, 0.0, 1.0]]);
        }
        if self.zx != 1.0 || self.zy != 1.0 {
            then([[self.zx, 0.0, 0.0], [0.0, self.zy, 0.0], [0.0, 0.0, 1.0]]);
        }
        let (ox, oy) = (h as f64 / 2.0 + 0.5, w as f64 / 2.0 + 0.5);
        let offset = [[1.0, 0.0, ox], [0.0, 1.0, oy], [0.0, 0.0, 1.0]];
        let reset = [[1.0, 0.0, -ox], [0.0, 1.0, -oy], [0.0, 0.0, 1.0]];
        m.map(|m| matmul(&matmul(&offset, &m), &reset))
    }

    /// Applies the transform to `image` (`(channels, height, width)` f32) as Keras'
    /// `apply_transform` does (module docs); returns the new image.
    ///
    /// # Errors
    /// `image` not of `channels · height · width` values, or an empty image; a non-finite
    /// parameter.
    pub fn apply(&self, image: &[f32], channels: usize, height: usize, width: usize) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(image.len());
        self.apply_into(image, (channels, height, width), &mut out)?;
        Ok(out)
    }

    /// [`KerasTransform::apply`], appending to `out`.
    fn apply_into(&self, image: &[f32], (c, h, w): (usize, usize, usize), out: &mut Vec<f32>) -> Result<()> {
        let n = c * h * w;
        if image.len() != n || n == 0 {
            return Err(Error::Shape {
                what: "augmented image",
                expected: format!("{c}·{h}·{w} > 0 values"),
                got: format!("{}", image.len()),
            });
        }
        for (name, v) in [
            ("theta", self.theta),
            ("tx", self.tx),
            ("ty", self.ty),
            ("zx", self.zx),
            ("zy", self.zy),
            ("channel_shift", self.channel_shift.unwrap_or(0.0)),
        ] {
            if !v.is_finite() {
                return Err(invalid(name, v, "must be finite"));
            }
        }
        let start = out.len();
        match self.matrix(h, w) {
            None => out.extend_from_slice(image),
            Some(t) => {
                // The sampled position of every output pixel, shared by the channels:
                // (row, column) of the upper-left neighbour, the next row/column (clamped) and
                // the fractions.
                let (hmax, wmax) = ((h - 1) as f64, (w - 1) as f64);
                let taps: Vec<(usize, usize, usize, usize, f64, f64)> = (0..h)
                    .flat_map(|i| (0..w).map(move |j| (i as f64, j as f64)))
                    .map(|(i, j)| {
                        let r = (t[0][0] * i + t[0][1] * j + t[0][2]).clamp(0.0, hmax);
                        let q = (t[1][0] * i + t[1][1] * j + t[1][2]).clamp(0.0, wmax);
                        let (r0, q0) = (r.floor(), q.floor());
                        let (r0i, q0i) = (r0 as usize, q0 as usize);
                        (r0i, (r0i + 1).min(h - 1), q0i, (q0i + 1).min(w - 1), r - r0, q - q0)
                    })
                    .collect();
                for plane in image.chunks_exact(h * w) {
                    let v = |r: usize, q: usize| f64::from(plane[r * w + q]);
                    out.extend(taps.iter().map(|&(r0, r1, q0, q1, fr, fq)| {
                        let top = (1.0 - fq) * v(r0, q0) + fq * v(r0, q1);
                        let bottom = (1.0 - fq) * v(r1, q0) + fq * v(r1, q1);
                        ((1.0 - fr) * top + fr * bottom) as f32
                    }));
                }
            }
        }
        let img = &mut out[start..];
        if let Some(s) = self.channel_shift {
            // Keras clips to the range of the whole image; float32 arithmetic as NumPy's
            // float32 array + Python float.
            let (lo, hi) = img.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
            let s = s as f32;
            for x in img.iter_mut() {
                *x = (*x + s).max(lo).min(hi);
            }
        }
        for plane in img.chunks_exact_mut(h * w) {
            if self.flip_horizontal {
                plane.chunks_exact_mut(w).for_each(<[f32]>::reverse);
            }
            if self.flip_vertical {
                for r in 0..h / 2 {
                    let (upper, lower) = plane.split_at_mut((h - 1 - r) * w);
                    upper[r * w..(r + 1) * w].swap_with_slice(&mut lower[..w]);
                }
            }
        }
        Ok(())
    }
}

/// How the training batches of a run are augmented.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Augmentation {
    /// Flip and integer shifts with zero fill ([`Augment`]).
    Shift(Augment),
    /// Keras' `ImageDataGenerator` ([`KerasAugment`]).
    Keras(KerasAugment),
}

impl From<Augment> for Augmentation {
    fn from(a: Augment) -> Self {
        Augmentation::Shift(a)
    }
}

impl From<KerasAugment> for Augmentation {
    fn from(a: KerasAugment) -> Self {
        Augmentation::Keras(a)
    }
}

impl Augmentation {
    /// Refuses settings the augmentation cannot apply ([`KerasAugment::validate`]).
    ///
    /// # Errors
    /// Those of [`KerasAugment::validate`].
    pub fn validate(&self) -> Result<()> {
        match self {
            Augmentation::Shift(_) => Ok(()),
            Augmentation::Keras(k) => k.validate(),
        }
    }

    /// Appends the augmented `x / 255` values of `img` (`(c, h, w)` bytes) to `out`, drawing
    /// from `rng`.
    pub(crate) fn apply(
        &self,
        img: &[u8],
        chw: (usize, usize, usize),
        rng: &mut Stream,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        match self {
            Augmentation::Shift(a) => {
                a.apply(img, chw, rng, out);
                Ok(())
            }
            Augmentation::Keras(k) => {
                let scaled: Vec<f32> = img.iter().map(|&v| f32::from(v) / 255.0).collect();
                k.draw(chw.1, chw.2, rng).apply_into(&scaled, chw, out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(c: usize, h: usize, w: usize) -> Vec<f32> {
        (0..c * h * w).map(|i| i as f32 / (c * h * w) as f32).collect()
    }

    #[test]
    fn flips_reverse_columns_and_rows() {
        let x = ramp(2, 3, 4);
        let t = KerasTransform {
            flip_horizontal: true,
            ..KerasTransform::IDENTITY
        };
        let y = t.apply(&x, 2, 3, 4).unwrap();
        assert_eq!(&y[0..4], &[x[3], x[2], x[1], x[0]]);
        assert_eq!(&y[12..16], &[x[15], x[14], x[13], x[12]]);
        let t = KerasTransform {
            flip_vertical: true,
            ..KerasTransform::IDENTITY
        };
        let y = t.apply(&x, 2, 3, 4).unwrap();
        assert_eq!(&y[0..4], &x[8..12]);
        assert_eq!(&y[4..8], &x[4..8]);
        assert_eq!(&y[20..24], &x[12..16]);
        assert_eq!(KerasTransform::IDENTITY.apply(&x, 2, 3, 4).unwrap(), x);
    }

    /// A whole-pixel shift moves the image by that many pixels (Keras' `tx` is the source
    /// offset: the output row `i` shows input row `i + tx`), and the edge rows repeat
    /// ('nearest').
    #[test]
    fn integer_shifts_move_the_image_and_repeat_the_edge() {
        let (h, w) = (5, 6);
        let x = ramp(1, h, w);
        let t = KerasTransform {
            tx: 2.0,
            ty: -1.0,
            ..KerasTransform::IDENTITY
        };
        let y = t.apply(&x, 1, h, w).unwrap();
        for i in 0..h {
            for j in 0..w {
                let si = (i + 2).min(h - 1);
                let sj = j.saturating_sub(1);
                assert!((y[i * w + j] - x[si * w + sj]).abs() < 1e-6, "({i}, {j})");
            }
        }
    }

    #[test]
    fn channel_shift_clips_to_the_whole_image_range() {
        // Channel 0 spans [0.1, 0.2], channel 1 [0.5, 0.9]: the clip is to [0.1, 0.9] for both.
        let x = vec![0.1, 0.2, 0.15, 0.2, 0.5, 0.9, 0.7, 0.6];
        let t = KerasTransform {
            channel_shift: Some(0.3),
            ..KerasTransform::IDENTITY
        };
        let y = t.apply(&x, 2, 2, 2).unwrap();
        assert!((y[0] - 0.4).abs() < 1e-6 && (y[1] - 0.5).abs() < 1e-6);
        assert_eq!(&y[4..], &[0.8, 0.9, 0.9, 0.9]);
    }

    #[test]
    fn draws_stay_in_their_ranges_and_bad_settings_are_refused() {
        let k = KerasAugment::vgg16_schizo();
        k.validate().unwrap();
        let mut rng = Stream::seeded(3);
        let mut flips = 0;
        for _ in 0..2000 {
            let t = k.draw(32, 32, &mut rng);
            assert!(t.theta.abs() <= 20.0 && t.tx.abs() <= 6.4 && t.ty.abs() <= 6.4);
            assert!((0.8..=1.2).contains(&t.zx) && (0.8..=1.2).contains(&t.zy));
            assert!(t.channel_shift.is_some_and(|s| s.abs() <= 0.2));
            assert!(!t.flip_vertical);
            flips += usize::from(t.flip_horizontal);
        }
        assert!((900..1100).contains(&flips), "{flips}");
        for bad in [
            KerasAugment { zoom_range: 1.0, ..k },
            KerasAugment {
                width_shift_range: 4.0,
                ..k
            },
            KerasAugment {
                rotation_range: f64::NAN,
                ..k
            },
            KerasAugment {
                channel_shift_range: -0.1,
                ..k
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(KerasTransform::IDENTITY.apply(&[0.0; 5], 1, 2, 2).is_err());
    }
}
