//! `cargo xtask generate --checkpoint DIR --n 64 [--seed S] [--steps N] [--device D] --out grid.png`: a grid
//! of samples of the network a finished run folder holds: the generator of `reproduce
//! mouse-gan` (`model.toml` + `generator.npz`, e.g. `results/mouse-gan/runs/cat_w0.4_r000`;
//! a conditional run's, e.g. `runs/conditional_w0.4_r000`, draws one row per class of
//! `⌈n / classes⌉` images) or the EMA denoiser of `reproduce mouse-ddim` (`model.toml` +
//! `denoiser.npz`, e.g. `results/mouse-ddim/runs/mouse_w_0.4`), sampled with deterministic DDIM
//! steps.

use std::path::PathBuf;

use bioexperiments::mouse_ddim::{self, MAX_DIFFUSION_STEPS};
use bioexperiments::mouse_gan::{generate_grid, grid_rows, MAX_GENERATE};

use crate::CliResult;

/// Arguments of `cargo xtask generate`.
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// A finished run folder (holding model.toml and generator.npz or denoiser.npz).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Images in the grid (1 to 1024).
    #[arg(long, default_value_t = 64)]
    pub n: usize,
    /// Seed of the latent vectors.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// mouse-ddim: DDIM sampling steps (1 to 10000) [default: the run's].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
    /// Where the generator or denoiser runs: cpu, cuda (device 0), cuda:N, or emulator
    /// (a denoiser's DDIM step updates run on the host).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs `cargo xtask generate`.
pub fn run(a: &GenerateArgs) -> CliResult {
    crate::cli::check_range("--n", a.n, 1, MAX_GENERATE)?;
    if let Some(steps) = a.steps {
        crate::cli::check_range("--steps", steps, 1, MAX_DIFFUSION_STEPS)?;
    }
    let device = crate::cli::parse_device("--device", &a.device)?;
    crate::cli::require_extension("--out", &a.out, "png")?;
    crate::cli::check_output_file("--out", &a.out)?;
    if !a.checkpoint.is_dir() {
        return Err(crate::cli::cli_err(format!(
            "--checkpoint: {} is not a folder (a finished `reproduce mouse-gan` or `mouse-ddim` run folder, e.g. results/mouse-gan/runs/cat_w0.4_r000)",
            a.checkpoint.display()
        )));
    }
    let png = if a.checkpoint.join("denoiser.npz").is_file() {
        mouse_ddim::generate_grid(&a.checkpoint, a.n, a.seed, a.steps, device)?
    } else if a.steps.is_some() {
        return Err(crate::cli::cli_err(format!(
            "--steps: {} holds no denoiser.npz (a finished mouse-ddim run folder); a GAN generator samples in one step",
            a.checkpoint.display()
        )));
    } else {
        // Read before sampling: a conditional folder without its classes.toml is refused.
        let rows = grid_rows(&a.checkpoint)?;
        let png = generate_grid(&a.checkpoint, a.n, a.seed, device)?;
        if !rows.is_empty() {
            let per = a.n.div_ceil(rows.len());
            bionpy::write_atomic(&a.out, &png)?;
            println!(
                "wrote {} samples ({per} per class; rows: {}) to {}",
                per * rows.len(),
                rows.join(", "),
                a.out.display()
            );
            return Ok(());
        }
        png
    };
    bionpy::write_atomic(&a.out, &png)?;
    println!("wrote {} samples to {}", a.n, a.out.display());
    Ok(())
}
