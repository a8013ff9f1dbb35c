//! What every subcommand shares: the one error type for messages already phrased for the command
//! line, and the value parsers of flags that several commands take.

use std::fmt;
use std::path::{Path, PathBuf};

use biorng::RngKind;
use clap::builder::{PossibleValuesParser, TypedValueParser};

/// An error already phrased for the command line (it names the flag), printed as it is.
#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// Boxes a command-line message as a [`CliError`].
pub fn cli_err(msg: impl Into<String>) -> Box<dyn std::error::Error> {
    Box::new(CliError(msg.into()))
}

/// Refuses an output path whose extension says another format than the bytes written there
/// (`--out x.jpg` for PNG bytes, `--out m.txt` for a `.npy`): a mislabelled file is a silent
/// error that surfaces much later.
pub fn require_extension(flag: &str, path: &std::path::Path, ext: &str) -> Result<(), Box<dyn std::error::Error>> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext)) {
        Ok(())
    } else {
        Err(cli_err(format!(
            "{flag}: {} must end in .{ext} (the file is written as {})",
            path.display(),
            ext.to_uppercase()
        )))
    }
}

/// Checks a count flag against its range `[min, max]`; the upper ends are documented limits that
/// keep a run inside this machine's memory (a typo of a few zeros must not abort the process).
pub fn check_range(flag: &str, value: usize, min: usize, max: usize) -> Result<(), Box<dyn std::error::Error>> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(cli_err(format!("{flag}: {value} is outside the limit [{min}, {max}]")))
    }
}

/// Checks, before any work, that `path` can be an output file: it has a file name, its folder
/// exists and it is not itself a folder.
pub fn check_output_file(flag: &str, path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    if path.file_name().is_none() {
        return Err(cli_err(format!("{flag}: {} has no file name", path.display())));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(cli_err(format!(
            "{flag}: {}: folder {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    if path.is_dir() {
        return Err(cli_err(format!("{flag}: {} is a folder", path.display())));
    }
    Ok(())
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A boolean flag value in any of the spellings upstream's configs use.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "True" | "1" => Ok(true),
        "false" | "False" | "0" => Ok(false),
        _ => Err(format!("expected true or false, got {s:?}")),
    }
}

/// `--rng` taking any of the project's streams; `--help` lists them as possible values.
pub fn rng_kind_parser() -> impl TypedValueParser<Value = RngKind> {
    PossibleValuesParser::new(RngKind::ALL.map(RngKind::name)).try_map(|s| s.parse::<RngKind>())
}

/// A `--device` value: `cpu`, `cuda` (device 0), `cuda:N`, or `emulator` (the host emulator of
/// the device backend). A device other than the host must be usable here (checked before any
/// work: `cuda` without the feature or without a GPU is the typed error that says which).
pub fn parse_device(flag: &str, value: &str) -> Result<bioautograd::Device, Box<dyn std::error::Error>> {
    use bioautograd::Device;
    let device = match value {
        "cpu" => Device::Cpu,
        "emulator" => Device::Cuda(bioautograd::cuda::EMULATOR),
        "cuda" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) if n < 64 => Device::Cuda(n),
            _ => {
                return Err(cli_err(format!(
                    "{flag} {other}: expected cpu, cuda, cuda:N (N < 64) or emulator"
                )))
            }
        },
    };
    if device != Device::Cpu {
        device
            .check_available()
            .map_err(|e| cli_err(format!("{flag} {value}: {e}")))?;
    }
    Ok(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_and_rng_kinds_parse() {
        assert_eq!(parse_bool("True"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert!(parse_bool("maybe").unwrap_err().contains("maybe"));
        let cmd = clap::Command::new("t").arg(clap::Arg::new("rng").long("rng").value_parser(rng_kind_parser()));
        let m = cmd.clone().try_get_matches_from(["t", "--rng", "numpy"]).unwrap();
        assert_eq!(m.get_one::<RngKind>("rng"), Some(&RngKind::Numpy));
        assert!(cmd.try_get_matches_from(["t", "--rng", "mt"]).is_err());
    }

    #[test]
    fn device_values_parse_or_name_the_flag() {
        use bioautograd::Device;
        assert_eq!(super::parse_device("--device", "cpu").unwrap(), Device::Cpu);
        assert_eq!(
            super::parse_device("--device", "emulator").unwrap(),
            Device::Cuda(bioautograd::cuda::EMULATOR)
        );
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:64", "CPU"] {
            let e = super::parse_device("--device", bad).unwrap_err().to_string();
            assert!(e.contains("--device") && e.contains(bad), "{e}");
        }
    }
}
