//! The mouse-mimetic two-dimensional window (`2d`).

/// Builds the `2d` mask: inputs on an `a`-column grid, outputs on a `b`-column grid, each
/// normalised to the unit square, connected within radius `w`. For `ny == 1` the mask is full.
///
/// Input `ix` sits at `((ix % a)/a, (ix / a)/nx2)` with `nx2 = nx / a`; output `ky·b + kx` at
/// `(kx/b, ky/ny2)` with `ny2 = ny / b`. Rows `ky` in `[ceil((oy-w)·ny2), ceil((oy+w)·ny2))`,
/// and for each, with `dxw = sqrt(w² - (ky/ny2 - oy)²)` when positive, columns
/// `kx` in `[ceil((ox-dxw)·b), ceil((ox+dxw)·b))`, both clamped to the grid.
/// Outputs `iy >= ny2·b` are never connected. The caller validates `a <= nx`, `b <= ny`.
pub(crate) fn window(nx: usize, ny: usize, a: usize, b: usize, w: f64) -> Vec<f32> {
    let mut m = vec![0f32; nx * ny];
    if ny == 1 {
        m.fill(1.0);
        return m;
    }
    let nx2 = nx / a;
    let ny2 = ny / b;
    let (af, bf, nx2f, ny2f) = (a as f64, b as f64, nx2 as f64, ny2 as f64);
    let w2 = w * w;
    for ix in 0..nx {
        let ox = (ix % a) as f64 / af;
        let oy = (ix / a) as f64 / nx2f;
        let ky_lo = ceil_clamped((oy - w) * ny2f, ny2);
        let ky_hi = ceil_clamped((oy + w) * ny2f, ny2);
        for ky in ky_lo..ky_hi {
            let dy = ky as f64 / ny2f - oy;
            let rem = w2 - dy * dy;
            if rem > 0.0 {
                let dxw = rem.sqrt();
                let kx_lo = ceil_clamped((ox - dxw) * bf, b);
                let kx_hi = ceil_clamped((ox + dxw) * bf, b);
                for kx in kx_lo..kx_hi {
                    m[ix * ny + ky * b + kx] = 1.0;
                }
            }
        }
    }
    m
}

/// `min(max(ceil(v), 0), upper)` as an index.
fn ceil_clamped(v: f64, upper: usize) -> usize {
    let c = v.ceil();
    if c <= 0.0 {
        0
    } else if c >= upper as f64 {
        upper
    } else {
        c as usize
    }
}

/// The divisor of `n` closest to `√n` (the first of two equally close): the grid width the
/// reproductions give a mouse-mimetic (2d) layer of `n` channels or units (32 → 4, 64 → 8).
pub fn square_grid_width(n: usize) -> usize {
    let root = (n as f64).sqrt();
    (1..=n)
        .filter(|d| n % d == 0)
        .min_by(|a, b| (*a as f64 - root).abs().total_cmp(&(*b as f64 - root).abs()))
        .unwrap_or(1)
}

/// The fine-grid limit of the `2d` density: the probability that two uniform points of the unit
/// square lie within distance `w`, `πw² - (8/3)w³ + w⁴/2`, defined here for `0 <= w <= 1`
/// (`None` outside; the mask is full for `w >= √2`).
pub fn two_d_density_limit(w: f64) -> Option<f64> {
    if !(0.0..=1.0).contains(&w) {
        return None;
    }
    Some(std::f64::consts::PI * w * w - 8.0 / 3.0 * w.powi(3) + w.powi(4) / 2.0)
}
