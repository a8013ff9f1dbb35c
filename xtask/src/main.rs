//! `cargo xtask`: the biomimetic command line.
//!
//! Every subcommand parses its arguments, calls library code, prints, and turns errors into a
//! one-line message with a non-zero exit status. Output files are written atomically.

mod cmd_bench_kernels;
mod cmd_bench_train;
mod cmd_bio2art;
mod cmd_gallery;
mod cmd_mask;
mod cmd_ptx;
mod cmd_reproduce;
mod cmd_task;
mod cmd_validate;
mod png;

use clap::{Parser, Subcommand};

/// The biomimetic command line.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate one connection mask and write it as .npy (and optionally .png).
    Mask(cmd_mask::MaskArgs),
    /// Render every mask form and the density-vs-parameter curves as PNG/SVG.
    MasksGallery(cmd_gallery::GalleryArgs),
    /// Regenerate the NumPy/CPython reference fixtures used by the tests.
    Validate(cmd_validate::ValidateArgs),
    /// Benchmark the masked GEMM kernels against our dense GEMM and ndarray::dot.
    BenchKernels(cmd_bench_kernels::BenchKernelsArgs),
    /// Generate one working-memory trial set (seq_mem, nback_mem, pic_latent_mem) as .npy.
    Task(cmd_task::TaskArgs),
    /// Reproduce a paper experiment into results/<name>/ (rnn-memory, schizo-mnist, schizo-cifar, mouse-cifar, synaptic-diversity).
    Reproduce(cmd_reproduce::ReproduceArgs),
    /// Training throughput of the schizo-cifar network (images/s) at r = 0 and 0.5.
    BenchTrain(cmd_bench_train::BenchTrainArgs),
    /// Convert a bundled connectome into a neuron-level recurrent topology (bio2art).
    Bio2art(cmd_bio2art::Bio2artArgs),
    /// Compile kernels/**/*.cu to the committed PTX (pinned pip nvcc 13.0); --check for CI.
    Ptx(cmd_ptx::PtxArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Mask(a) => cmd_mask::run(a),
        Command::MasksGallery(a) => cmd_gallery::run(a),
        Command::Validate(a) => cmd_validate::run(a),
        Command::Bio2art(a) => cmd_bio2art::run(a),
        Command::Task(a) => cmd_task::run(a),
        Command::Reproduce(a) => cmd_reproduce::run(a),
        Command::BenchKernels(a) => cmd_bench_kernels::run(a),
        Command::BenchTrain(a) => cmd_bench_train::run(a),
        Command::Ptx(a) => cmd_ptx::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// The error type of the command line: every library error, shown as one line.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;
