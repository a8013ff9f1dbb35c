//! `cargo xtask ptx`: compiles every `kernels/**/*.cu` to PTX for `compute_80` and
//! `compute_90` with the pinned pip CUDA toolkit, into the `biokernels` crate
//! (`kernels/masked_gemm/masked_gemm.cu` -> `crates/biokernels/ptx/masked_gemm.compute_80.ptx`,
//! `.compute_90.ptx`). The PTX is committed and embedded by `biokernels::cuda::ptx`, so building
//! never needs nvcc, and it lives inside the crate so that `biokernels` packages on its own.
//! Each PTX is also assembled by the same toolkit's `ptxas` into a cubin for `sm_80` / `sm_90`
//! (`masked_gemm.sm_90.cubin`), which devices of those families load without the driver's JIT.
//!
//! The toolkit is `cuda-toolkit[nvcc,cudart,cccl,crt,nvvm]==13.0.2` from PyPI, installed into
//! `.venv-cuda/` at the workspace root when missing. It is pinned because nvcc 13.0 writes PTX
//! ISA 9.0, the newest a CUDA 13.0 driver (the GPU machines' 580 driver) accepts. nvcc output
//! is deterministic, so `--check` can regenerate into a temporary directory and compare bytes.
//!
//! `--check` (CI): regenerates into a temporary directory, fails if any committed `.ptx`
//! differs or is missing, then assembles each file with `ptxas -v` for its architecture
//! (`sm_80`, `sm_90`), fails if the result differs from the committed cubin (ptxas output is
//! deterministic too), and prints registers, spills and shared memory per kernel.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::workspace_root;
use crate::CliResult;

/// The pinned toolkit.
const TOOLKIT: &str = "cuda-toolkit[nvcc,cudart,cccl,crt,nvvm]==13.0.2";
/// Virtual architectures the PTX is generated for, and the real one `ptxas` checks each with.
const ARCHS: [(&str, &str); 2] = [("compute_80", "sm_80"), ("compute_90", "sm_90")];
/// Where the PTX goes, relative to the workspace root: inside the crate that embeds it.
const PTX_DIR: &str = "crates/biokernels/ptx";
/// nvcc flags (besides `-ptx -arch`); changing them changes the committed PTX. `-fmad=false`:
/// nvcc would otherwise contract `a * b + c` into one FMA (one rounding), so kernels written in
/// the CPU's operation order (optimiser steps, `axpby`, pooling and plane-map sums, the norms)
/// would differ from the CPU and the host emulator in the last bit; the GEMM and convolution
/// inner loops call `fmaf` explicitly and keep it.
const NVCC_FLAGS: [&str; 3] = ["-O3", "-std=c++17", "-fmad=false"];

/// Arguments of `cargo xtask ptx`.
#[derive(clap::Args, Debug)]
pub struct PtxArgs {
    /// Do not write: regenerate into a temporary directory, compare with the committed PTX,
    /// and run `ptxas -v` on it (registers and spills are printed).
    #[arg(long)]
    pub check: bool,
    /// The virtual environment holding the pinned toolkit (created when missing).
    #[arg(long, default_value = ".venv-cuda")]
    pub venv: PathBuf,
}

fn run_ok(cmd: &mut Command, what: &str) -> CliResult<std::process::Output> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot start {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(out)
}

/// The toolkit's `bin/` directory, installing the pinned wheels into `venv` first if needed.
fn toolkit_bin(venv: &Path) -> CliResult<PathBuf> {
    let python = venv.join("bin").join("python");
    let find = |python: &Path| -> Option<PathBuf> {
        let out = Command::new(python)
            .args([
                "-c",
                "import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], 'cu13'))",
            ])
            .output()
            .ok()?;
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("bin");
        (out.status.success() && dir.join("nvcc").is_file()).then_some(dir)
    };
    if let Some(bin) = python.is_file().then(|| find(&python)).flatten() {
        return Ok(bin);
    }
    eprintln!("installing {TOOLKIT} into {} ...", venv.display());
    if !python.is_file() {
        run_ok(
            Command::new("python3").arg("-m").arg("venv").arg(venv),
            "python3 -m venv",
        )?;
    }
    run_ok(
        Command::new(&python).args(["-m", "pip", "install", "--quiet", TOOLKIT]),
        "pip install",
    )?;
    find(&python).ok_or_else(|| format!("{TOOLKIT} installed into {} but nvcc was not found", venv.display()).into())
}

/// Every `.cu` under `kernels/`, sorted.
fn sources(dir: &Path) -> CliResult<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "cu") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn ptx_name(src: &Path, arch: &str) -> String {
    let stem = src
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{stem}.{arch}.ptx")
}

fn cubin_name(src: &Path, sm: &str) -> String {
    ptx_name(src, sm).replace(".ptx", ".cubin")
}

/// `ptxas -arch=<sm> -v ptx -o cubin`; returns ptxas' report (it writes `-v` to stderr).
fn assemble(ptxas: &Path, sm: &str, ptx: &Path, cubin: &Path, rel: &str) -> CliResult<String> {
    let out = run_ok(
        Command::new(ptxas)
            .arg(format!("-arch={sm}"))
            .arg("-v")
            .arg(ptx)
            .arg("-o")
            .arg(cubin),
        &format!("ptxas -arch={sm} {rel}"),
    )?;
    Ok(String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout))
}

fn compile(nvcc: &Path, src: &Path, arch: &str, out: &Path) -> CliResult {
    let mut cmd = Command::new(nvcc);
    cmd.arg("-ptx")
        .arg(format!("-arch={arch}"))
        .args(NVCC_FLAGS)
        .arg(src)
        .arg("-o")
        .arg(out);
    run_ok(&mut cmd, &format!("nvcc {}", src.display()))?;
    Ok(())
}

/// One kernel's line of the `ptxas -v` report.
#[derive(Debug, Default)]
struct PtxasInfo {
    kernel: String,
    registers: u32,
    spill_stores: u32,
    spill_loads: u32,
    smem: u32,
}

/// Parses `ptxas -v` output (`Compiling entry function 'x'`, `N bytes spill stores, M bytes
/// spill loads`, `Used R registers, ... S bytes smem`).
fn parse_ptxas(text: &str) -> Vec<PtxasInfo> {
    let num_before = |line: &str, key: &str| -> u32 {
        line.find(key)
            .and_then(|i| line[..i].split_whitespace().last())
            .and_then(|w| w.parse().ok())
            .unwrap_or(0)
    };
    let mut out: Vec<PtxasInfo> = Vec::new();
    for line in text.lines() {
        if let Some(i) = line.find("entry function '") {
            let rest = &line[i + "entry function '".len()..];
            out.push(PtxasInfo {
                kernel: rest.split('\'').next().unwrap_or("").to_string(),
                ..Default::default()
            });
        } else if let Some(k) = out.last_mut() {
            if line.contains("spill stores") {
                k.spill_stores = num_before(line, "bytes spill stores");
                k.spill_loads = num_before(line, "bytes spill loads");
            }
            if line.contains("Used") && line.contains("registers") {
                k.registers = num_before(line, "registers");
                k.smem = num_before(line, "bytes smem");
            }
        }
    }
    out
}

/// Runs the command.
pub fn run(args: &PtxArgs) -> CliResult {
    let root = workspace_root();
    let venv = if args.venv.is_absolute() {
        args.venv.clone()
    } else {
        root.join(&args.venv)
    };
    let bin = toolkit_bin(&venv)?;
    let nvcc = bin.join("nvcc");
    let kernels = root.join("kernels");
    let srcs = sources(&kernels)?;
    if srcs.is_empty() {
        return Err(format!("no .cu files under {}", kernels.display()).into());
    }
    let version = run_ok(Command::new(&nvcc).arg("--version"), "nvcc --version")?;
    let version = String::from_utf8_lossy(&version.stdout);
    println!("nvcc: {}", version.lines().last().unwrap_or("?").trim());

    let ptx_dir = root.join(PTX_DIR);
    if !args.check {
        std::fs::create_dir_all(&ptx_dir)?;
        for src in &srcs {
            for (arch, sm) in ARCHS {
                let out = ptx_dir.join(ptx_name(src, arch));
                compile(&nvcc, src, arch, &out)?;
                let rel = out.strip_prefix(&root).unwrap_or(&out).display().to_string();
                println!("wrote {rel}");
                let cubin = ptx_dir.join(cubin_name(src, sm));
                assemble(&bin.join("ptxas"), sm, &out, &cubin, &rel)?;
                println!("wrote {}", cubin.strip_prefix(&root).unwrap_or(&cubin).display());
            }
        }
        return Ok(());
    }

    // --check: regenerate into a temporary directory and compare byte for byte.
    let tmp = std::env::temp_dir().join(format!("biomimetic-ptx-check-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let result = check(&root, &ptx_dir, &nvcc, &bin.join("ptxas"), &srcs, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// What one (source, architecture) pair of `--check` found.
struct Checked {
    rel: String,
    sm: &'static str,
    stale: Vec<String>,
    infos: Vec<PtxasInfo>,
}

/// Regenerates one source's PTX for one architecture into `tmp`, compares it with the committed
/// file, assembles the committed PTX and compares the cubin.
fn check_one(
    root: &Path,
    ptx_dir: &Path,
    (nvcc, ptxas): (&Path, &Path),
    (i, src): (usize, &Path),
    (arch, sm): (&str, &'static str),
    tmp: &Path,
) -> CliResult<Checked> {
    let mut stale = Vec::new();
    let name = ptx_name(src, arch);
    let fresh = tmp.join(format!("{i}-{name}"));
    compile(nvcc, src, arch, &fresh)?;
    let committed = ptx_dir.join(&name);
    let rel = committed.strip_prefix(root).unwrap_or(&committed).display().to_string();
    match std::fs::read(&committed) {
        Ok(bytes) if bytes == std::fs::read(&fresh)? => println!("up to date: {rel}"),
        Ok(_) => stale.push(format!("{rel} differs from what its source compiles to")),
        Err(_) => stale.push(format!("{rel} is missing")),
    }
    let fresh_cubin = tmp.join(format!("{i}-{name}.cubin"));
    let text = assemble(ptxas, sm, &committed, &fresh_cubin, &rel)?;
    let committed_cubin = ptx_dir.join(cubin_name(src, sm));
    let rel_cubin = committed_cubin
        .strip_prefix(root)
        .unwrap_or(&committed_cubin)
        .display()
        .to_string();
    match std::fs::read(&committed_cubin) {
        Ok(bytes) if bytes == std::fs::read(&fresh_cubin)? => println!("up to date: {rel_cubin}"),
        Ok(_) => stale.push(format!("{rel_cubin} differs from what ptxas makes of {rel}")),
        Err(_) => stale.push(format!("{rel_cubin} is missing")),
    }
    Ok(Checked {
        rel,
        sm,
        stale,
        infos: parse_ptxas(&text),
    })
}

fn check(root: &Path, ptx_dir: &Path, nvcc: &Path, ptxas: &Path, srcs: &[PathBuf], tmp: &Path) -> CliResult {
    // Every (source, architecture) pair is an independent nvcc + ptxas run: all at once (CI has
    // 2 cores; the runs took 35 s one after another), reported in the fixed order.
    // (Errors cross the threads as text: the CLI's boxed error is not `Send`.)
    let results: Vec<Result<Checked, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = srcs
            .iter()
            .enumerate()
            .flat_map(|(i, src)| ARCHS.iter().map(move |&arch| (i, src, arch)))
            .map(|(i, src, arch)| {
                scope.spawn(move || {
                    check_one(root, ptx_dir, (nvcc, ptxas), (i, src), arch, tmp).map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a PTX check thread panicked".to_string()))
            })
            .collect()
    });
    let mut stale = Vec::new();
    let mut reports = Vec::new();
    for r in results {
        let c = r?;
        stale.extend(c.stale);
        reports.push((c.rel, c.sm, c.infos));
    }
    println!(
        "\n{:<28} {:<6} {:>5} {:>12} {:>11} {:>10}",
        "kernel", "arch", "regs", "spill st (B)", "spill ld (B)", "smem (B)"
    );
    let mut spills = 0;
    for (_, sm, infos) in &reports {
        for k in infos {
            println!(
                "{:<28} {:<6} {:>5} {:>12} {:>11} {:>10}",
                k.kernel, sm, k.registers, k.spill_stores, k.spill_loads, k.smem
            );
            spills += usize::from(k.spill_stores + k.spill_loads > 0);
        }
    }
    println!("{spills} kernel(s) with register spills");
    if !stale.is_empty() {
        return Err(format!(
            "committed PTX or cubins are stale (run `cargo xtask ptx` and commit):\n  {}",
            stale.join("\n  ")
        )
        .into());
    }
    println!(
        "PTX check passed: {} file(s) regenerated identically, assembled by ptxas into the committed cubins",
        reports.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ptxas_verbose_output() {
        let text = "ptxas info    : 0 bytes gmem\n\
            ptxas info    : Compiling entry function 'masked_gemm_dw_bf16' for 'sm_80'\n\
            ptxas info    : Function properties for masked_gemm_dw_bf16\n    \
            8 bytes stack frame, 12 bytes spill stores, 16 bytes spill loads\n\
            ptxas info    : Used 80 registers, used 1 barriers, 18432 bytes smem, 412 bytes cmem[0]\n\
            ptxas info    : Compiling entry function 'k2' for 'sm_80'\n\
            ptxas info    : Used 8 registers, 380 bytes cmem[0]\n";
        let r = parse_ptxas(text);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].kernel, "masked_gemm_dw_bf16");
        assert_eq!(
            (r[0].registers, r[0].spill_stores, r[0].spill_loads, r[0].smem),
            (80, 12, 16, 18432)
        );
        assert_eq!((r[1].registers, r[1].smem), (8, 0));
    }
}
