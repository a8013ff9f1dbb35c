//! `cargo xtask filters`: export BioNet's first-layer filter banks as `.npy` and a PNG grid.

use std::path::{Path, PathBuf};

use biolayers::filters::{DogParams, FilterBank, FilterBankSpec, GaborParams, LowPassParams};

use crate::CliResult;

/// Arguments of `cargo xtask filters`.
#[derive(clap::Args, Debug)]
pub struct FiltersArgs {
    /// Bank: gabor, dog, low-pass, or combined (the DoG 31x31 and Gabor 31x31 of Combined-trim).
    #[arg(long)]
    pub bank: String,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Multiply every length (sigma, kernel size) by this factor; 1/7 = the banks used on 32x32
    /// input by `reproduce bionet --quick`.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
}

/// The banks of a `--bank` name, each with its file stem and grid columns.
pub fn banks_of(name: &str, scale: f64) -> CliResult<Vec<(String, FilterBankSpec, usize)>> {
    let banks = match name {
        "gabor" => vec![("filters".to_string(), FilterBankSpec::Gabor(GaborParams::paper()), 6)],
        "dog" => vec![("filters".to_string(), FilterBankSpec::Dog(DogParams::paper()), 8)],
        "low-pass" => vec![(
            "filters".to_string(),
            FilterBankSpec::LowPass(LowPassParams::paper()),
            4,
        )],
        "combined" => vec![
            ("filters_dog".to_string(), FilterBankSpec::Dog(DogParams::trim()), 8),
            (
                "filters_gabor".to_string(),
                FilterBankSpec::Gabor(GaborParams::trim()),
                6,
            ),
        ],
        other => return Err(format!("unknown bank `{other}` (expected gabor, dog, low-pass or combined)").into()),
    };
    banks
        .into_iter()
        .map(|(stem, spec, cols)| Ok((stem, spec.scaled(scale)?, cols)))
        .collect()
}

/// Renders a bank as a grid of kernels, `cols` per row: each kernel scaled by its own largest
/// magnitude, mid-grey = 0, white = positive, black = negative; a 2-pixel gap between kernels.
pub fn encode_grid(bank: &FilterBank, cols: usize) -> Result<Vec<u8>, image::ImageError> {
    let k = bank.ksize;
    let cols = cols.clamp(1, bank.channels);
    let rows = bank.channels.div_ceil(cols);
    let scale = (64 / k).max(1);
    let cell = k * scale;
    let gap = 2;
    let width = cols * cell + (cols + 1) * gap;
    let height = rows * cell + (rows + 1) * gap;
    let mut img = image::GrayImage::from_pixel(width as u32, height as u32, image::Luma([40]));
    for c in 0..bank.channels {
        let kernel = bank.kernel(c).unwrap_or(&[]);
        let max = kernel.iter().fold(0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
        let (r0, c0) = (gap + (c / cols) * (cell + gap), gap + (c % cols) * (cell + gap));
        for (i, v) in kernel.iter().enumerate() {
            let shade = (127.5 + 127.5 * (v / max)).round().clamp(0.0, 255.0) as u8;
            let (r, col) = (i / k, i % k);
            for dy in 0..scale {
                for dx in 0..scale {
                    img.put_pixel(
                        (c0 + col * scale + dx) as u32,
                        (r0 + r * scale + dy) as u32,
                        image::Luma([shade]),
                    );
                }
            }
        }
    }
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
    Ok(bytes)
}

fn write_bank(out: &Path, stem: &str, bank: &FilterBank, cols: usize) -> CliResult<()> {
    let npy = out.join(format!("{stem}.npy"));
    bionpy::write_npy(&npy, &[bank.channels, bank.ksize, bank.ksize], &bank.to_f32())?;
    let png = out.join(format!("{stem}.png"));
    bionpy::write_atomic(&png, &encode_grid(bank, cols)?)?;
    println!(
        "{}: {} kernels of {}x{} -> {} and {}",
        bank.name,
        bank.channels,
        bank.ksize,
        bank.ksize,
        npy.display(),
        png.display()
    );
    Ok(())
}

/// Runs `cargo xtask filters`.
pub fn run(a: &FiltersArgs) -> CliResult {
    // Every bank is built before the folder is created: a bank that cannot be built leaves no
    // folder and no partial set of files behind.
    let banks = banks_of(&a.bank, a.scale)?
        .into_iter()
        .map(|(stem, spec, cols)| Ok((stem, spec.build()?, cols)))
        .collect::<CliResult<Vec<_>>>()?;
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    for (stem, bank, cols) in &banks {
        write_bank(&a.out, stem, bank, *cols)?;
    }
    Ok(())
}
