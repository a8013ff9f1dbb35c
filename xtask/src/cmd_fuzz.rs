//! `cargo xtask fuzz --minutes N [--target T]`: runs the cargo-fuzz targets of `fuzz/` (every
//! `fuzz/fuzz_targets/<T>.rs`, in name order) one after the other, each for `N` minutes
//! (docs/fuzzing.md).
//!
//! Each target `T` runs as
//! `cargo +nightly fuzz run -s none T fuzz/work/T fuzz/corpus/T [fuzz/regressions/T] -- -max_total_time=…`:
//! libFuzzer writes the inputs it finds to the first folder, so the growing working corpus stays
//! in the git-ignored `fuzz/work/T` and the committed seeds are only read. libFuzzer's output goes
//! to `fuzz/work/T.log`; its progress lines and final statistics are echoed. A crash stops the
//! command with a non-zero status naming the artifact cargo-fuzz saved (`fuzz/artifacts/T/…`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cli::{cli_err, workspace_root};
use crate::CliResult;

/// Arguments of `cargo xtask fuzz`.
#[derive(clap::Args, Debug)]
pub struct FuzzArgs {
    /// Minutes per target (all seven targets: seven times as long).
    #[arg(long, value_parser = parse_minutes)]
    pub minutes: f64,
    /// Run only this target (one of `fuzz/fuzz_targets/<T>.rs`).
    #[arg(long)]
    pub target: Option<String>,
    /// The sanitizer cargo-fuzz builds with (`none`: the parsers are safe Rust and a panic is
    /// what is looked for; `address` also checks the unsafe code of dependencies, ~2x slower).
    #[arg(long, default_value = "none", value_parser = clap::builder::PossibleValuesParser::new(["none", "address"]))]
    pub sanitizer: String,
}

fn parse_minutes(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(m) if m.is_finite() && m > 0.0 && m <= 24.0 * 60.0 => Ok(m),
        _ => Err(format!("expected minutes in (0, 1440], got {s:?}")),
    }
}

/// `cargo +nightly …` with the variables of the calling (stable) cargo removed, so that the
/// nightly toolchain is the one that builds.
fn nightly_cargo(root: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly").current_dir(root);
    for var in ["RUSTUP_TOOLCHAIN", "RUSTC", "RUSTDOC", "CARGO", "CARGO_TARGET_DIR"] {
        cmd.env_remove(var);
    }
    cmd
}

/// Fails with one line saying how to install what is missing: the nightly toolchain or
/// cargo-fuzz.
fn check_tools(root: &Path) -> CliResult {
    let ok = |cmd: &mut Command| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(nightly_cargo(root).arg("--version")) {
        return Err(cli_err(
            "fuzz: no nightly toolchain: install it with `rustup toolchain install nightly`",
        ));
    }
    if !ok(nightly_cargo(root).args(["fuzz", "--version"])) {
        return Err(cli_err(
            "fuzz: cargo-fuzz is missing: install it with `cargo install cargo-fuzz`",
        ));
    }
    Ok(())
}

/// The fuzz targets: the files `fuzz/fuzz_targets/<T>.rs`, sorted by name.
fn targets(fuzz: &Path) -> CliResult<Vec<String>> {
    let dir = fuzz.join("fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("fuzz: {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names)
}

/// The newest file of `dir` (the artifact of the crash that just happened).
fn newest_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
}

/// Whether a libFuzzer line is worth echoing: periodic progress, the end, final statistics and
/// anything about a crash (new-coverage lines, thousands of them, only go to the log).
fn worth_echoing(line: &str) -> bool {
    // Status lines read `#<runs>\t<event>  cov: …`.
    matches!(line.split_whitespace().nth(1), Some("pulse" | "DONE"))
        || line.starts_with("stat::")
        || line.starts_with("Done ")
        || line.starts_with("==")
        || line.contains("panicked")
        || line.contains("ERROR")
        || line.contains("artifact")
}

/// Runs one target for `seconds`; on a crash, the error names the artifact.
fn run_target(root: &Path, target: &str, seconds: u64, sanitizer: &str) -> CliResult {
    let fuzz = root.join("fuzz");
    let work = fuzz.join("work").join(target);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let log_path = fuzz.join("work").join(format!("{target}.log"));
    let mut log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut cmd = nightly_cargo(root);
    cmd.args(["fuzz", "run", "-s", sanitizer, target]).arg(&work);
    cmd.arg(fuzz.join("corpus").join(target));
    let regressions = fuzz.join("regressions").join(target);
    if regressions.is_dir() {
        cmd.arg(&regressions);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-timeout=30")
        .arg("-print_final_stats=1");
    eprintln!("fuzz {target}: {seconds} s, log {}", log_path.display());
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("fuzz {target}: cannot start cargo: {e}"))?;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.map_err(|e| format!("fuzz {target}: reading libFuzzer's output: {e}"))?;
            writeln!(log, "{line}").map_err(|e| format!("{}: {e}", log_path.display()))?;
            if worth_echoing(&line) {
                eprintln!("  {line}");
            }
        }
    }
    let status = child.wait().map_err(|e| format!("fuzz {target}: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let artifact = newest_file(&fuzz.join("artifacts").join(target))
        .map_or_else(|| "no artifact was saved".to_string(), |p| p.display().to_string());
    Err(cli_err(format!(
        "fuzz {target} failed ({status}): crash input {artifact}; libFuzzer's output in {}; \
         reproduce with `cargo +nightly fuzz run -s {sanitizer} {target} {artifact}`",
        log_path.display()
    )))
}

/// Runs the chosen targets one after the other; stops at the first crash.
pub fn run(args: &FuzzArgs) -> CliResult {
    let root = workspace_root();
    check_tools(&root)?;
    let seconds = (args.minutes * 60.0).round().max(1.0) as u64;
    let all = targets(&root.join("fuzz"))?;
    let chosen: Vec<String> = match &args.target {
        Some(t) if all.contains(t) => vec![t.clone()],
        Some(t) => {
            return Err(cli_err(format!(
                "--target {t}: no such fuzz target (one of {})",
                all.join(", ")
            )))
        }
        None => all,
    };
    for target in &chosen {
        run_target(&root, target, seconds, &args.sanitizer)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_must_be_positive_and_finite() {
        assert_eq!(parse_minutes("10"), Ok(10.0));
        assert_eq!(parse_minutes("0.5"), Ok(0.5));
        for bad in ["0", "-1", "NaN", "inf", "2000", "ten"] {
            assert!(parse_minutes(bad).unwrap_err().contains(bad), "{bad}");
        }
    }

    #[test]
    fn the_targets_are_the_files_of_fuzz_targets() {
        let all = targets(&workspace_root().join("fuzz")).unwrap();
        assert!(all.len() >= 7, "{all:?}");
        assert!(all.contains(&"checkpoint".to_string()) && all.contains(&"npy".to_string()));
        assert!(all.windows(2).all(|w| w[0] < w[1]), "sorted: {all:?}");
    }

    #[test]
    fn only_progress_totals_and_crashes_are_echoed() {
        assert!(worth_echoing("#262144\tpulse  cov: 2798 ft: 10010 corp: 943/420Kb"));
        assert!(worth_echoing("stat::number_of_executed_units: 27340644"));
        assert!(worth_echoing("==27519== ERROR: libFuzzer: deadly signal"));
        assert!(!worth_echoing("#236583\tREDUCE cov: 2790 ft: 9967 corp: 921/416Kb"));
        assert!(!worth_echoing("#236777\tNEW    cov: 2790 ft: 9969 corp: 922/416Kb"));
    }
}
