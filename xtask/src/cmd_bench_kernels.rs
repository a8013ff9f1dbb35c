//! `cargo xtask bench-kernels`: masked GEMM against our dense GEMM and `ndarray`, on the
//! shapes of the issue (`biokernels::bench` holds the cases; this only parses, prints, writes).

use std::path::PathBuf;

use biokernels::bench::{
    format_table, kernel_info, paper_cnn_layers, run_cases, run_conv_cases, BenchOptions, BenchShape, ConvBenchLayer,
};
use biokernels::conv::{Conv2dGeometry, Padding};

/// Arguments of `cargo xtask bench-kernels`.
#[derive(clap::Args, Debug)]
pub struct BenchKernelsArgs {
    /// Run the CPU kernels (the default when neither --cpu nor --cuda is given).
    #[arg(long)]
    pub cpu: bool,
    /// Run the CUDA kernels against cuBLAS on GPU 0 (needs `--features cuda` and a GPU;
    /// otherwise a typed "no CUDA" error).
    #[arg(long)]
    pub cuda: bool,
    /// Write the records as a JSON array to this file (atomically).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Fewer repetitions (1 warm-up, median of 3 instead of 2 and 7).
    #[arg(long)]
    pub quick: bool,
    /// Time the masked convolutions (paper CNN layers at batch 32 and a wide 256→256 layer)
    /// instead of the GEMM cases.
    #[arg(long)]
    pub conv: bool,
    /// GEMM shapes `MxKxN[,MxKxN..]` instead of the two (the 2d mask's grid widths: the
    /// divisors of K and N closest to their square roots).
    #[arg(long, value_delimiter = ',')]
    pub shapes: Vec<String>,
    /// Only the forward product `Y = X (W ⊙ M)`, without the one-thread and ndarray baselines
    /// (what `benches/gemm_vs_openblas.sh` compares with NumPy/OpenBLAS).
    #[arg(long)]
    pub forward_only: bool,
}

/// `MxKxN` as a benchmark shape.
fn parse_shape(text: &str) -> Result<BenchShape, String> {
    let dims: Vec<usize> = text
        .split('x')
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--shapes {text}: {e} (expected MxKxN, e.g. 2048x2048x2048)"))?;
    match dims[..] {
        [m, k, n] if m > 0 && k > 0 && n > 0 && m.saturating_mul(k).saturating_mul(n) <= 1 << 36 => Ok(BenchShape {
            m,
            k,
            n,
            a: biomask::square_grid_width(k),
            b: biomask::square_grid_width(n),
        }),
        _ => Err(format!(
            "--shapes {text}: expected three positive sizes MxKxN with M·K·N at most 2^36"
        )),
    }
}

/// The CPU model name from `/proc/cpuinfo`, if there is one.
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// `--cuda`: the masked kernels against cuBLAS on GPU 0 (`biokernels::cuda::bench`).
fn run_cuda(args: &BenchKernelsArgs) -> Result<(), Box<dyn std::error::Error>> {
    use biokernels::cuda::bench::{run_cuda_cases, CudaBenchOptions};
    if args.conv {
        return Err("bench-kernels --cuda --conv is not implemented (the GPU benchmark times the masked GEMMs; the CUDA convolutions have no timing harness yet)".into());
    }
    let dev = biokernels::cuda::CudaDevice::new(0)?;
    let opts = if args.quick {
        CudaBenchOptions::quick()
    } else {
        CudaBenchOptions::standard()
    };
    let (major, minor) = dev.compute_capability();
    println!("device: {} (sm_{major}{minor})", dev.name());
    println!(
        "masked kernels vs cuBLAS dense, CUDA events, warm-up {}, median of {}",
        opts.warmup, opts.reps
    );
    let records = run_cuda_cases(&dev, &opts, |r| {
        eprintln!(
            "  {:<62} {:>9.3} ms {:>8.1} GFLOP/s {:>6.2}x cuBLAS",
            r.name,
            r.median_s * 1e3,
            r.gflops_useful,
            r.speedup_vs_dense
        )
    })?;
    print!("{}", format_table(&records));
    if let Some(path) = &args.json {
        let bytes = serde_json::to_vec_pretty(&records)?;
        bionpy::write_atomic(path, &bytes)?;
        println!("wrote {} records to {}", records.len(), path.display());
    }
    Ok(())
}

/// Runs the benchmark, prints the table, and writes the JSON if asked.
pub fn run(args: &BenchKernelsArgs) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(p) = &args.json {
        crate::cli::check_output_file("--json", p)?;
    }
    if args.cuda {
        return run_cuda(args);
    }
    let mut opts = if args.quick {
        BenchOptions::quick()
    } else {
        BenchOptions::standard()
    };
    if !args.shapes.is_empty() {
        if args.conv {
            return Err("--shapes: the GEMM cases only (not with --conv)".into());
        }
        opts.shapes = args.shapes.iter().map(|t| parse_shape(t)).collect::<Result<_, _>>()?;
    }
    if args.forward_only {
        opts.ops = vec![biokernels::bench::Op::Forward];
        opts.baselines = false;
    }
    println!("machine: {}", cpu_model().unwrap_or_else(|| "unknown CPU".to_string()));
    println!("{} (warm-up {}, median of {})", kernel_info(), opts.warmup, opts.reps);
    let progress = |r: &biokernels::bench::BenchRecord| {
        eprintln!(
            "  {:<58} {:>9.3} ms {:>7.1} GFLOP/s {:>6.2}x",
            r.name,
            r.median_s * 1e3,
            r.gflops_useful,
            r.speedup_vs_dense
        )
    };
    let records = if args.conv {
        // The paper CNN's convolutions at batch 32, and one wide layer where the tiles can skip.
        let mut layers = paper_cnn_layers(32);
        layers.push(ConvBenchLayer {
            name: "wide_256to256",
            geom: Conv2dGeometry::new(16, 256, (8, 8), 256, (3, 3)).with_padding(Padding::Same),
        });
        run_conv_cases(&opts, &layers, progress)?
    } else {
        run_cases(&opts, progress)?
    };
    print!("{}", format_table(&records));
    if let Some(path) = &args.json {
        let bytes = serde_json::to_vec_pretty(&records)?;
        bionpy::write_atomic(path, &bytes)?;
        println!("wrote {} records to {}", records.len(), path.display());
    }
    Ok(())
}
