//! `cargo xtask generate --checkpoint DIR --n 64 [--seed S] --out grid.png`: a grid of samples
//! of the generator a finished `reproduce mouse-gan` run folder holds (`model.toml` +
//! `generator.npz`, e.g. `results/mouse-gan/runs/cat_w0.4_r000`).

use std::path::PathBuf;

use bioexperiments::mouse_gan::{generate_grid, MAX_GENERATE};

use crate::CliResult;

/// Arguments of `cargo xtask generate`.
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// A finished run folder (holding model.toml and generator.npz).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Images in the grid (1 to 1024).
    #[arg(long, default_value_t = 64)]
    pub n: usize,
    /// Seed of the latent vectors.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `cargo xtask generate`.
pub fn run(a: &GenerateArgs) -> CliResult {
    crate::cli::check_range("--n", a.n, 1, MAX_GENERATE)?;
    crate::cli::require_extension("--out", &a.out, "png")?;
    crate::cli::check_output_file("--out", &a.out)?;
    if !a.checkpoint.is_dir() {
        return Err(crate::cli::cli_err(format!(
            "--checkpoint: {} is not a folder (a finished `reproduce mouse-gan` run folder, e.g. results/mouse-gan/runs/cat_w0.4_r000)",
            a.checkpoint.display()
        )));
    }
    let png = generate_grid(&a.checkpoint, a.n, a.seed)?;
    bionpy::write_atomic(&a.out, &png)?;
    println!("wrote {} samples to {}", a.n, a.out.display());
    Ok(())
}
