//! Phase scrambling (upstream's `scramble_phases`, from Geirhos et al. 2018), in float64.
//!
//! ```text
//! F      = fftshift(fft2(img))
//! amp    = |F|, phase = arg F
//! q      = phase[1:, 1:] flattened (n = (H-1)(W-1) values, n odd)
//! q[k]            += s[k]   for k in 0..n/2
//! q[n/2 + 1 + k]  -= s[k]   for k in 0..n/2      (the centre q[n/2] is untouched)
//! out    = clip(real(ifft2(ifftshift(amp * exp(i * phase)))), 0, 1)
//! ```
//! with `s[k] = (u_k - 0.5) * 2 * width / 180 * pi`, `u_k` uniform in [0, 1). The shifts are
//! subtracted in the same order, not mirrored, so conjugate symmetry only holds approximately
//! and the imaginary part is dropped, as upstream does.
//!
//! # Shapes
//! `image`: `(height, width)` row-major with both sides even (for an odd side `n` is even and
//! upstream's code fails with a broadcast error); the output has the same shape.

use rustfft::num_complex::Complex64;
use rustfft::FftPlanner;

use crate::error::{Error, Result};

/// The number of random phase shifts drawn for a `(height, width)` image:
/// `((height - 1) * (width - 1)) / 2`.
pub fn phase_shift_count(height: usize, width: usize) -> usize {
    (height.saturating_sub(1) * width.saturating_sub(1)) / 2
}

/// Checks that upstream's phase scrambling is defined for this size.
pub(crate) fn check_size(height: usize, width: usize) -> Result<()> {
    if height < 2 || width < 2 || height % 2 != 0 || width % 2 != 0 {
        return Err(Error::Shape {
            what: "phase scrambling image",
            expected: "even height and width >= 2 (upstream's shift arrays do not broadcast otherwise)".into(),
            got: format!("{height}x{width}"),
        });
    }
    Ok(())
}

/// In-place 2-D FFT (rows, then columns), unnormalised; `inverse` flips the sign.
fn fft2(data: &mut [Complex64], height: usize, width: usize, inverse: bool) {
    let mut planner = FftPlanner::<f64>::new();
    let (row_fft, col_fft) = if inverse {
        (planner.plan_fft_inverse(width), planner.plan_fft_inverse(height))
    } else {
        (planner.plan_fft_forward(width), planner.plan_fft_forward(height))
    };
    row_fft.process(data);
    let mut column = vec![Complex64::new(0.0, 0.0); height];
    for x in 0..width {
        for y in 0..height {
            column[y] = data[y * width + x];
        }
        col_fft.process(&mut column);
        for y in 0..height {
            data[y * width + x] = column[y];
        }
    }
}

/// `fftshift` for even sides (equal to `ifftshift` then).
fn shift_even(data: &[Complex64], height: usize, width: usize) -> Vec<Complex64> {
    let (hh, hw) = (height / 2, width / 2);
    let mut out = vec![Complex64::new(0.0, 0.0); data.len()];
    for y in 0..height {
        for x in 0..width {
            out[((y + hh) % height) * width + (x + hw) % width] = data[y * width + x];
        }
    }
    out
}

/// Scrambles the phases of a `(height, width)` image with the given shifts (radians; length
/// [`phase_shift_count`]). Returns the clipped real part.
pub fn scramble_phases(image: &[f64], height: usize, width: usize, shifts: &[f64]) -> Result<Vec<f64>> {
    check_size(height, width)?;
    let n = (height - 1) * (width - 1);
    if shifts.len() != n / 2 || image.len() != height * width {
        return Err(Error::Shape {
            what: "phase scrambling input",
            expected: format!("{} pixels and {} shifts", height * width, n / 2),
            got: format!("{} pixels and {} shifts", image.len(), shifts.len()),
        });
    }
    let mut spectrum: Vec<Complex64> = image.iter().map(|&v| Complex64::new(v, 0.0)).collect();
    fft2(&mut spectrum, height, width, false);
    let centred = shift_even(&spectrum, height, width);
    let amp: Vec<f64> = centred.iter().map(|c| c.re.hypot(c.im)).collect();
    let mut phase: Vec<f64> = centred.iter().map(|c| c.im.atan2(c.re)).collect();
    let sub = width - 1;
    let flat_to_full = |k: usize| (1 + k / sub) * width + 1 + k % sub;
    let half = n / 2;
    for (k, s) in shifts.iter().enumerate() {
        phase[flat_to_full(k)] += s;
        phase[flat_to_full(half + 1 + k)] -= s;
    }
    let rebuilt: Vec<Complex64> = amp
        .iter()
        .zip(&phase)
        .map(|(&a, &p)| Complex64::new(a * p.cos(), a * p.sin()))
        .collect();
    let mut back = shift_even(&rebuilt, height, width);
    fft2(&mut back, height, width, true);
    let scale = 1.0 / (height * width) as f64;
    Ok(back.iter().map(|c| (c.re * scale).clamp(0.0, 1.0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_shifts_give_back_the_image() {
        let (h, w) = (6, 4);
        let img: Vec<f64> = (0..h * w).map(|i| ((i * 7) % 11) as f64 / 11.0).collect();
        let out = scramble_phases(&img, h, w, &vec![0.0; phase_shift_count(h, w)]).unwrap();
        for (a, b) in img.iter().zip(&out) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn odd_sides_and_wrong_lengths_are_errors() {
        assert!(scramble_phases(&[0.0; 15], 5, 3, &[0.0; 4]).is_err());
        assert!(scramble_phases(&[0.0; 16], 4, 4, &[0.0; 3]).is_err());
        assert_eq!(phase_shift_count(224, 224), 24_864);
    }
}
