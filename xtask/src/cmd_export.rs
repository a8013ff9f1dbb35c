//! `cargo xtask export`: the weights of a trained model (a checkpoint folder of a `reproduce`
//! run) as `safetensors` or `.npz`, in PyTorch or Keras names and layouts (docs/interop.md).

use std::path::PathBuf;

use biolayers::interop::{WeightFormat, WeightLayout};

use crate::CliResult;

/// Arguments of `cargo xtask export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The checkpoint folder: `<results>/checkpoints/<setting>_r<repeat>/` of a `reproduce` run.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// `safetensors` (PyTorch / Hugging Face) or `npz` (NumPy).
    #[arg(long, default_value = "safetensors")]
    pub format: String,
    /// `torch` (`0.weight [out, in]`) or `keras` (`dense/kernel (in, out)`).
    #[arg(long, default_value = "torch")]
    pub layout: String,
    /// The output file (`.safetensors` or `.npz`, as `--format`).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `cargo xtask export`.
pub fn run(a: &ExportArgs) -> CliResult {
    let format: WeightFormat = a.format.parse().map_err(|e| format!("--format: {e}"))?;
    let layout: WeightLayout = a.layout.parse().map_err(|e| format!("--layout: {e}"))?;
    crate::cli::check_output_file("--out", &a.out)?;
    let ext = match format {
        WeightFormat::Safetensors => "safetensors",
        WeightFormat::Npz => "npz",
    };
    crate::cli::require_extension("--out", &a.out, ext)?;
    let s = bioexperiments::export::export_checkpoint(&a.checkpoint, format, layout, &a.out)?;
    println!(
        "{} {} repeat {} (epoch {}): {} tensors, {} layout, written to {}",
        s.experiment,
        s.setting,
        s.repeat,
        s.epoch,
        s.tensors,
        layout.as_str(),
        a.out.display()
    );
    Ok(())
}
