//! `cargo xtask perturb`: applies BioNet's perturbations to one image and writes a PNG, for
//! inspection and for the docs.
//!
//! ```text
//! cargo xtask perturb --image IN.png --perturbation "Salt and Pepper" --level 3 --out OUT.png
//! cargo xtask perturb --image IN.png --perturbation low_pass --out GRID.png      # all levels
//! cargo xtask perturb --image IN.png --perturbation all --display-scale 0.35 --out GALLERY.png
//! ```
//!
//! The image is read as greyscale (RGB with PIL's `convert('L')` weights 0.299/0.587/0.114),
//! scaled to [0, 1] as upstream does, perturbed, and written back as 8-bit greyscale
//! (`round(255 x)`). `--level` is a level index (0 = clean); without it every level is drawn
//! left to right with a 4-pixel gap.

use std::path::PathBuf;

use biotasks::perturb::{to_unit_range, PerturbOptions, Perturbation, Perturber, LANCZOS_MEAN};
use biotasks::RngKind;

use crate::CliResult;

/// Arguments of `cargo xtask perturb`.
#[derive(clap::Args, Debug)]
pub struct PerturbArgs {
    /// Input image (PNG or JPEG).
    #[arg(long)]
    pub image: PathBuf,
    /// Upstream name or slug (e.g. "High Pass", high_pass), or `all` for every perturbation.
    #[arg(long)]
    pub perturbation: String,
    /// Level index (0 = clean); omitted: all levels side by side.
    #[arg(long)]
    pub level: Option<usize>,
    /// Random stream: `seeded` (default, per-image ChaCha8) or `numpy` (upstream's
    /// `RandomState(seed + level_index)`).
    #[arg(long, default_value = "seeded")]
    pub rng: RngKind,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Training mean on the [0, 255] scale; the background grey is mean / 255.
    #[arg(long, default_value_t = LANCZOS_MEAN)]
    pub mean: f64,
    /// Scale the finished grid by this factor (Lanczos-3) to keep gallery PNGs small; the
    /// perturbations always run at the input's own size.
    #[arg(long, default_value_t = 1.0)]
    pub display_scale: f64,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
}

const GAP: usize = 4;

fn load_grey(path: &std::path::Path) -> CliResult<(usize, usize, Vec<f32>)> {
    let img = image::open(path).map_err(|e| format!("{}: cannot decode: {e}", path.display()))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let grey: Vec<f32> = match img {
        image::DynamicImage::ImageLuma8(g) => g.into_raw().into_iter().map(f32::from).collect(),
        other => other
            .to_rgb8()
            .pixels()
            .map(|p| {
                // PIL's convert('L'): (R*19595 + G*38470 + B*7471 + 0x8000) >> 16
                let [r, g, b] = p.0.map(u32::from);
                ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as f32
            })
            .collect(),
    };
    Ok((h, w, to_unit_range(&grey)))
}

/// Runs `cargo xtask perturb`.
pub fn run(a: &PerturbArgs) -> CliResult {
    let perturbations: Vec<Perturbation> = if a.perturbation.eq_ignore_ascii_case("all") {
        Perturbation::ALL.to_vec()
    } else {
        vec![Perturbation::from_name(&a.perturbation).map_err(|e| format!("--perturbation: {e}"))?]
    };
    if !(a.mean.is_finite() && (0.0..=255.0).contains(&a.mean)) {
        return Err(crate::cli::cli_err(format!("--mean: {} is not in [0, 255]", a.mean)));
    }
    crate::cli::require_extension("--out", &a.out, "png")?;
    crate::cli::check_output_file("--out", &a.out)?;
    if !(a.display_scale > 0.0 && a.display_scale <= 1.0) {
        return Err(format!("--display-scale: {} must be in (0, 1]", a.display_scale).into());
    }
    let (h, w, image) = load_grey(&a.image)?;
    let opts = PerturbOptions::with_mean(a.mean);
    let mut rows: Vec<Vec<Vec<f32>>> = Vec::new();
    for &p in &perturbations {
        let indices: Vec<usize> = match a.level {
            Some(i) => {
                p.level(i).map_err(|e| format!("--level: {e}"))?;
                vec![i]
            }
            None => (0..p.levels().len()).collect(),
        };
        let mut row = Vec::new();
        for li in indices {
            let mut perturber = Perturber::new(p, li, opts, a.rng, a.seed)?;
            row.push(perturber.apply_batch(&image, 0, h, w)?);
            println!("{p} level {li} = {}", p.levels()[li]);
        }
        rows.push(row);
    }
    let cols = rows.iter().map(Vec::len).max().unwrap_or(1);
    let (gw, gh) = (cols * w + (cols - 1) * GAP, rows.len() * h + (rows.len() - 1) * GAP);
    let mut canvas = image::GrayImage::from_pixel(gw as u32, gh as u32, image::Luma([255]));
    for (r, row) in rows.iter().enumerate() {
        for (c, tile) in row.iter().enumerate() {
            for y in 0..h {
                for x in 0..w {
                    let v = (tile[y * w + x] * 255.0).round().clamp(0.0, 255.0) as u8;
                    canvas.put_pixel((c * (w + GAP) + x) as u32, (r * (h + GAP) + y) as u32, image::Luma([v]));
                }
            }
        }
    }
    if a.display_scale < 1.0 {
        let (sw, sh) = (
            ((gw as f64 * a.display_scale).round() as u32).max(1),
            ((gh as f64 * a.display_scale).round() as u32).max(1),
        );
        canvas = image::imageops::resize(&canvas, sw, sh, image::imageops::FilterType::Lanczos3);
    }
    let mut bytes = Vec::new();
    canvas.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
    bionpy::write_atomic(&a.out, &bytes)?;
    println!("wrote {} ({}x{})", a.out.display(), canvas.width(), canvas.height());
    Ok(())
}
