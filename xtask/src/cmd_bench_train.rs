//! `cargo xtask bench-train`: training throughput (images/s) of a reproduction's network, masked
//! beside unmasked (`--net schizo-cifar|mouse-cifar|dcgan64|dcgan32`), the Rust half of
//! `benches/cifar_throughput.sh` and `benches/dcgan_throughput.sh`
//! ([`bioexperiments::bench_train`] does the work).
//!
//! `--device cuda` trains on CUDA device 0 through bioautograd's CUDA tensors (build with
//! `--features cuda`): parameters, activations, gradients and the optimiser state stay on the
//! device; each step uploads the batch and reads back the loss. Without a usable GPU it exits
//! non-zero with the typed error (`CudaUnavailable` / `NoCudaDevice`).

use std::path::PathBuf;

use bioautograd::{Device, Precision};
use bioexperiments::bench_train::{run as bench_train, BenchNet, BenchTrainConfig};

use crate::CliResult;

/// Arguments of `cargo xtask bench-train`.
#[derive(clap::Args, Debug)]
pub struct BenchTrainArgs {
    /// The network: the schizo-cifar or mouse-cifar classifier, or upstream's DCGAN at 64×64
    /// (dcgan64) or 32×32 (dcgan32).
    #[arg(long, value_enum, default_value_t = Net::SchizoCifar)]
    pub net: Net,
    /// Batch size (at most 1024).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Timed training steps per repetition.
    #[arg(long, default_value_t = 30)]
    pub steps: usize,
    /// Repetitions (the median is reported); the settings are interleaved per repetition.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where to train: `cpu`, or `cuda` (CUDA device 0; needs `--features cuda` and a GPU).
    #[arg(long, value_enum, default_value_t = TrainDevice::Cpu)]
    pub device: TrainDevice,
    /// Arithmetic of the GPU matrix products (`--device cuda` only): exact `f32` or `tf32`
    /// tensor cores.
    #[arg(long, value_enum, default_value_t = GpuPrecision::F32)]
    pub precision: GpuPrecision,
}

/// `--net` of `bench-train`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    /// The schizo-cifar CNN: dense vs SzDense diagonal r = 0.5.
    SchizoCifar,
    /// The mouse-cifar CNN: dense vs 2d w = 0.5 convolutions.
    MouseCifar,
    /// Upstream's DCGAN, 64×64: standard vs mouse 2d w = 0.4 (CPU only).
    Dcgan64,
    /// The 32×32 DCGAN variant: standard vs mouse 2d w = 0.4 (CPU only).
    Dcgan32,
}

/// `--device` of `bench-train`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainDevice {
    /// The host.
    Cpu,
    /// CUDA device 0.
    Cuda,
    /// The host emulator of the device backend (`bioautograd::cuda::EMULATOR`): the device
    /// code path with CPU kernels, to check it without a GPU (slow; its speed means nothing).
    Emulator,
}

/// `--precision` of `bench-train`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuPrecision {
    /// Exact f32 products.
    F32,
    /// TF32 tensor cores (f32 accumulation).
    Tf32,
    /// bf16 operand copies on bf16 tensor cores (f32 accumulation and master weights).
    Bf16,
}

/// Runs `cargo xtask bench-train`.
pub fn run(a: &BenchTrainArgs) -> CliResult {
    // Limits: a batch of 1024 CIFAR images needs about 1 GB of activations and gradients.
    crate::cli::check_range("--batch", a.batch, 1, 1024)?;
    crate::cli::check_range("--steps", a.steps, 1, 100_000)?;
    crate::cli::check_range("--reps", a.reps, 1, 1000)?;
    if let Some(p) = &a.json {
        crate::cli::check_output_file("--json", p)?;
    }
    let device = match a.device {
        TrainDevice::Cpu => Device::Cpu,
        TrainDevice::Cuda => Device::Cuda(0),
        TrainDevice::Emulator => Device::Cuda(bioautograd::cuda::EMULATOR),
    };
    if device != Device::Cpu {
        // Fails here, before any work, without a usable GPU (non-zero exit).
        device
            .check_available()
            .map_err(|e| format!("bench-train --device {}: {e}", format!("{:?}", a.device).to_lowercase()))?;
        bioautograd::cuda::set_default_precision(match a.precision {
            GpuPrecision::F32 => Precision::F32,
            GpuPrecision::Tf32 => Precision::Tf32,
            GpuPrecision::Bf16 => Precision::Bf16,
        })?;
    } else if a.precision != GpuPrecision::F32 {
        return Err("--precision applies to a device (--device cuda) only".into());
    }
    let label = match (a.device, a.precision) {
        (TrainDevice::Cpu, _) => "rust".to_string(),
        (TrainDevice::Cuda, GpuPrecision::F32) => "rust-cuda".to_string(),
        (TrainDevice::Cuda, GpuPrecision::Tf32) => "rust-cuda-tf32".to_string(),
        (TrainDevice::Cuda, GpuPrecision::Bf16) => "rust-cuda-bf16".to_string(),
        (TrainDevice::Emulator, _) => "rust-emulator".to_string(),
    };
    let net = match a.net {
        Net::SchizoCifar => BenchNet::SchizoCifar,
        Net::MouseCifar => BenchNet::MouseCifar,
        Net::Dcgan64 => BenchNet::Dcgan { image_size: 64 },
        Net::Dcgan32 => BenchNet::Dcgan { image_size: 32 },
    };
    let results = bench_train(&BenchTrainConfig {
        net,
        batch: a.batch,
        steps: a.steps,
        reps: a.reps,
        device,
    })?;
    let mut records = Vec::new();
    let name = net.name();
    for res in &results {
        let (setting, ips, loss) = (&res.setting, res.images_per_s, res.last_loss);
        println!(
            "{label} {name} {setting} (density {:.3}): {ips:.1} images/s (batch {}, median of {} x {} steps; last loss {loss:.6})",
            res.density, a.batch, a.reps, a.steps
        );
        records.push(serde_json::json!({
            "impl": label, "net": name, "setting": setting, "value": res.value, "density": res.density,
            "batch": a.batch, "images_per_s": ips, "last_loss": loss,
        }));
    }
    if let Some(p) = &a.json {
        bionpy::write_atomic(p, serde_json::to_string_pretty(&records)?.as_bytes())?;
    }
    Ok(())
}
