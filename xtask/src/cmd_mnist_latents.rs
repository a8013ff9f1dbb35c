//! `cargo xtask mnist-latents`: trains the classic small MNIST CNN with our engine and caches the
//! `(10000, 50)` ReLU latent table of the test images that `pic_latent_mem` reads (a stand-in
//! for upstream's unlicensed `mnist_latent_output_labels.pt`; see `docs/tasks.md`).

use std::path::PathBuf;

use bioexperiments::mnist_latents::{run_mnist_latents, MnistLatentsConfig};

use crate::CliResult;

/// Arguments of `cargo xtask mnist-latents`.
#[derive(clap::Args, Debug)]
pub struct MnistLatentsArgs {
    /// Data folder holding `mnist/` (or the MNIST IDX files themselves). Default: ../shared/data.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Latent table, float32 (10000, 50).
    #[arg(long, default_value = "results/mnist_latents/latents.npy")]
    pub out: PathBuf,
    /// Labels, int64 (10000,). Default: `labels.npy` next to `--out`.
    #[arg(long)]
    pub labels_out: Option<PathBuf>,
    /// Training epochs.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Seed of the weights, dropout and batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    pub train_images: Option<usize>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Where to train: cpu, cuda, cuda:N, or emulator (the device code path on the host
    /// emulator's CPU kernels).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs `cargo xtask mnist-latents`.
pub fn run(a: &MnistLatentsArgs) -> CliResult {
    let labels = a
        .labels_out
        .clone()
        .unwrap_or_else(|| a.out.with_file_name("labels.npy"));
    crate::cli::require_extension("--out", &a.out, "npy")?;
    crate::cli::require_extension("--labels-out", &labels, "npy")?;
    if labels == a.out {
        return Err(format!("--labels-out {} would overwrite --out", labels.display()).into());
    }
    let cfg = MnistLatentsConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        train_images: a.train_images,
        seed: a.seed,
        device: crate::cli::parse_device("--device", &a.device)?,
        ..MnistLatentsConfig::default()
    };
    let out = run_mnist_latents(a.data.as_deref(), &a.out, &labels, &cfg, !a.quiet)?;
    for h in &out.history {
        println!(
            "epoch {:>2}: train loss {:.4} acc {:.4} | test loss {:.4} acc {:.4}",
            h.epoch, h.train_loss, h.train_acc, h.val_loss, h.val_acc
        );
    }
    let zeros = out.table.data().iter().filter(|&&v| v == 0.0).count() as f64 / out.table.data().len() as f64;
    let max = out.table.data().iter().fold(0f32, |m, &v| m.max(v));
    println!(
        "test accuracy {:.4}; latents ({}, {}) float32, {:.1}% exact zeros, max {max:.2}; {:.1} s",
        out.test_accuracy,
        out.table.len(),
        out.table.dim(),
        100.0 * zeros,
        out.seconds
    );
    println!("wrote {} and {}", a.out.display(), labels.display());
    Ok(())
}
