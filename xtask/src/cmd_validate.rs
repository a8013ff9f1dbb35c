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
}

fn has_numpy(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import numpy, scipy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn ensure_python(root: &Path, requested: Option<&Path>) -> CliResult<PathBuf> {
    if let Some(p) = requested {
        if has_numpy(p) {
            return Ok(p.to_path_buf());
        }
        return Err(format!(
            "--python {}: cannot import numpy and scipy with this interpreter",
            p.display()
        )
        .into());
    }
    let system = PathBuf::from("python3");
    if has_numpy(&system) {
        return Ok(system);
    }
    let venv = root.join(".venv-validate");
    let py = venv.join("bin/python");
    if !has_numpy(&py) {
        eprintln!("creating {} with numpy and scipy ...", venv.display());
        run_checked(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        )?;
        run_checked(
            Command::new(&py).args(["-m", "pip", "install", "--quiet", "numpy", "scipy"]),
            "pip install numpy scipy",
        )?;
    }
    Ok(py)
}

fn run_checked(cmd: &mut Command, what: &str) -> CliResult {
    let status = cmd.status().map_err(|e| format!("{what}: {e}"))?;
    if !status.success() {
        return Err(format!("{what} failed with {status}").into());
    }
    Ok(())
}

/// Runs `cargo xtask validate`.
pub fn run(a: &ValidateArgs) -> CliResult {
    let root = workspace_root();
    let python = ensure_python(&root, a.python.as_deref())?;
    let scripts: [(&str, Vec<&str>); 5] = [
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
            "xtask/python/stats_reference.py",
            vec!["crates/bioexperiments/tests/fixtures/stats"],
        ),
    ];
    for (script, args) in scripts {
        println!("running {script}");
        run_checked(Command::new(&python).current_dir(&root).arg(script).args(&args), script)?;
    }
    println!("fixtures regenerated; run the test command and commit the changed files");
    Ok(())
}
