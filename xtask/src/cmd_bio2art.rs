//! `cargo xtask bio2art`: build a neuron-level network from a bundled connectome and write it as
//! `.npy`.
//!
//! ```text
//! cargo xtask bio2art --connectome Marmoset_Normalized --neuron-density 4 --target-sparsity 0.8 \
//!     --intrinsic-conn true --target-sparsity-intrinsic 1.0 --intrinsic-wei 0.8 \
//!     --rand-partition false --keep-diag false --rng python --seed 42 --out W.npy [--ids ids.npy]
//! cargo xtask bio2art --list
//! ```
//!
//! Omitted flags take bio2art's defaults (`from_conn_mat`: neuron_density 1 per region,
//! target_sparsity 0.2, intrinsic_conn true, target_sparsity_intrinsic 1.0, intrinsic_wei 0.8,
//! rand_partition false, keep_diag true); the RNG defaults to the project's `seeded` stream with
//! seed 0. Outputs (written atomically, C order):
//! * `--out`: float64 `(M, M)`, `W[m, n]` = weight from neuron m to neuron n (row = source);
//!   with `--transpose`, row = target instead (PyTorch `W_hh` layout).
//! * `--ids`: int64 `(M,)`, the region index (row of the connectome, 0-based) of every neuron;
//!   regions own contiguous, ascending neuron ranges.
//!
//! Every bad argument is reported with the flag's name before anything is written.
//!
//! Dependencies (xtask/Cargo.toml): `bio2art`, `bionpy`, `clap` (derive).

use std::path::PathBuf;

use bio2art::{Bio2artConfig, Connectome, Error as B2aError, NeuronDensity, RngKind, ScaleType};

use crate::cli::{cli_err, parse_bool};

/// Arguments of `cargo xtask bio2art`.
#[derive(clap::Args, Debug)]
pub struct Bio2artArgs {
    /// Print the bundled connectomes with their sizes, then exit.
    #[arg(long)]
    pub list: bool,

    /// Bundled connectome (bio2art data_name), e.g. Marmoset_Normalized; see --list.
    #[arg(long, value_name = "NAME", required_unless_present = "list")]
    pub connectome: Option<String>,

    /// Neurons per region: one number for every region, or a comma-separated list with one
    /// number per region [default: 1].
    #[arg(long, value_name = "N|N1,N2,...", conflicts_with = "density_scale")]
    pub neuron_density: Option<String>,

    /// Neurons per region from the connectome's measured neuron densities (bio2art
    /// utils.scale_neuron_density): rank or ratio, times --seed-neuron. Macaque and marmoset only.
    #[arg(long, value_name = "rank|ratio")]
    pub density_scale: Option<ScaleType>,

    /// Multiplier for --density-scale [default: 1].
    #[arg(long, value_name = "N", requires = "density_scale")]
    pub seed_neuron: Option<usize>,

    /// Fraction of each target region's neurons a source neuron connects to, in [0, 1]
    /// [default: 0.2].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub target_sparsity: Option<f64>,

    /// Build within-region (intrinsic) connections [default: true].
    #[arg(long, value_name = "BOOL", value_parser = parse_bool)]
    pub intrinsic_conn: Option<bool>,

    /// target_sparsity for intrinsic connections, in [0, 1] [default: 1.0].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub target_sparsity_intrinsic: Option<f64>,

    /// Intrinsic share w: an intrinsic block weighs w/(1-w) times the region's input, in [0, 1)
    /// [default: 0.8].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub intrinsic_wei: Option<f64>,

    /// Random stick-breaking weights instead of equal weights per block [default: false].
    #[arg(long, value_name = "BOOL", value_parser = parse_bool)]
    pub rand_partition: Option<bool>,

    /// Allow intrinsic self-connections [default: true].
    #[arg(long, value_name = "BOOL", value_parser = parse_bool)]
    pub keep_diag: Option<bool>,

    /// Random stream: seeded (the project's ChaCha8) or python (CPython's random, bit-identical
    /// to the original bio2art after random.seed(SEED)).
    #[arg(long, value_name = "seeded|python", default_value = "seeded", value_parser = bio2art::rng::parse_kind)]
    pub rng: RngKind,

    /// Seed of the random stream.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    /// Output .npy: float64 (M, M), row = source neuron, column = target neuron.
    #[arg(long, value_name = "PATH", required_unless_present = "list")]
    pub out: Option<PathBuf>,

    /// Also write int64 (M,) .npy with the region index of each neuron.
    #[arg(long, value_name = "PATH")]
    pub ids: Option<PathBuf>,

    /// Write W transposed (row = target, the PyTorch W_hh layout).
    #[arg(long)]
    pub transpose: bool,
}

/// Names the command-line flag behind a library error.
fn flag_error(e: B2aError) -> Box<dyn std::error::Error> {
    let flag = match &e {
        B2aError::UnknownConnectome { .. } => "--connectome".to_string(),
        B2aError::InvalidParameter { param, .. } => format!("--{}", param.replace('_', "-")),
        B2aError::LengthMismatch {
            what: "neuron_density", ..
        }
        | B2aError::InvalidDensity {
            what: "neuron_density", ..
        }
        | B2aError::TooLarge { .. } => "--neuron-density".to_string(),
        B2aError::InvalidDensity { .. } | B2aError::NoNeuronDensity { .. } => "--density-scale".to_string(),
        _ => return Box::new(e),
    };
    cli_err(format!("{flag}: {e}"))
}

fn parse_density(text: &str) -> Result<NeuronDensity, Box<dyn std::error::Error>> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let mut counts = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let v: usize = p.parse().map_err(|_| {
            let at = if parts.len() > 1 {
                format!(" (entry {i})")
            } else {
                String::new()
            };
            cli_err(format!("--neuron-density: {p:?}{at} is not a non-negative integer"))
        })?;
        counts.push(v);
    }
    Ok(match counts.as_slice() {
        [one] => NeuronDensity::Uniform(*one),
        _ => NeuronDensity::PerRegion(counts),
    })
}

fn print_list() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "{:<26} {:>7} {:>11} {:>9} {:>11}  densities",
        "connectome", "regions", "connections", "density", "directed"
    );
    for info in bio2art::list()? {
        let n = info.regions;
        let density = info.connections as f64 / (n * (n - 1)).max(1) as f64;
        println!(
            "{:<26} {:>7} {:>11} {:>9.3} {:>11}  {}",
            info.name,
            n,
            info.connections,
            density,
            if info.symmetric { "no" } else { "yes" },
            if info.has_neuron_density { "yes" } else { "-" }
        );
    }
    println!("(M = sum of --neuron-density; data: bio2art by Alexandros Goulas, MIT licence)");
    Ok(())
}

/// Runs `cargo xtask bio2art`.
pub fn run(args: &Bio2artArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.list {
        return print_list();
    }
    let name = args
        .connectome
        .as_deref()
        .ok_or_else(|| cli_err("--connectome is required (see --list)"))?;
    let out = args.out.as_deref().ok_or_else(|| cli_err("--out is required"))?;
    crate::cli::check_output_file("--out", out)?;
    crate::cli::require_extension("--out", out, "npy")?;
    if let Some(ids) = args.ids.as_deref() {
        crate::cli::check_output_file("--ids", ids)?;
        crate::cli::require_extension("--ids", ids, "npy")?;
        if ids == out {
            return Err(cli_err("--ids: must differ from --out"));
        }
    }
    let connectome = Connectome::load(name).map_err(flag_error)?;

    let defaults = Bio2artConfig::default();
    let neuron_density = match (&args.neuron_density, args.density_scale) {
        (Some(text), _) => parse_density(text)?,
        (None, Some(scale)) => NeuronDensity::Scaled {
            scale,
            seed_neuron: args.seed_neuron.unwrap_or(1),
        },
        (None, None) => defaults.neuron_density.clone(),
    };
    let config = Bio2artConfig {
        neuron_density,
        target_sparsity: args.target_sparsity.unwrap_or(defaults.target_sparsity),
        intrinsic_conn: args.intrinsic_conn.unwrap_or(defaults.intrinsic_conn),
        target_sparsity_intrinsic: args
            .target_sparsity_intrinsic
            .unwrap_or(defaults.target_sparsity_intrinsic),
        intrinsic_wei: args.intrinsic_wei.unwrap_or(defaults.intrinsic_wei),
        rand_partition: args.rand_partition.unwrap_or(defaults.rand_partition),
        keep_diag: args.keep_diag.unwrap_or(defaults.keep_diag),
    };
    let mut rng = args
        .rng
        .stream(args.seed)
        .map_err(|e| cli_err(format!("--seed: {e}")))?;
    let net = bio2art::convert(&connectome, &config, &mut rng).map_err(flag_error)?;

    let m = net.n_neurons;
    let weights = if args.transpose {
        net.transposed()
    } else {
        net.weights.clone()
    };
    // The matrix and its neuron → region ids together or neither: a failure on --ids must not
    // leave a new matrix beside ids of another network.
    let matrix = bionpy::npy_bytes(&[m, m], &weights).map_err(|e| cli_err(format!("--out: {e}")))?;
    match args.ids.as_deref() {
        Some(ids) => {
            let regions: Vec<i64> = net.neuron_regions().into_iter().map(|r| r as i64).collect();
            let id_bytes = bionpy::npy_bytes(&[m], &regions).map_err(|e| cli_err(format!("--ids: {e}")))?;
            bionpy::write_all_atomic(&[(out, &matrix), (ids, &id_bytes)])?;
        }
        None => bionpy::write_atomic(out, &matrix)?,
    }

    const SHOWN: usize = 5;
    for w in net.warnings.iter().take(SHOWN) {
        eprintln!("warning: {w}");
    }
    if net.warnings.len() > SHOWN {
        eprintln!("warning: ... and {} more like these", net.warnings.len() - SHOWN);
    }
    let conns = net.connection_count();
    println!(
        "{name}: {} regions -> {m} neurons, {conns} connections (density {:.4}), total weight {:.6}, rng {} seed {}",
        connectome.n_regions(),
        conns as f64 / (m * m).max(1) as f64,
        net.total_weight(),
        args.rng,
        args.seed
    );
    let orientation = if args.transpose { "row = target" } else { "row = source" };
    print!("wrote {} (float64 {m}x{m}, {orientation})", out.display());
    match args.ids.as_deref() {
        Some(ids) => println!(" and {} (int64 region index per neuron)", ids.display()),
        None => println!(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Bio2artArgs,
    }

    fn parse(line: &[&str]) -> Result<Bio2artArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bio2art").chain(line.iter().copied())).map(|c| c.args)
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-bio2art-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn issue_example_matches_the_library() {
        let dir = scratch("example");
        let (w, ids) = (dir.join("W.npy"), dir.join("ids.npy"));
        let args = parse(&[
            "--connectome",
            "Marmoset_Normalized",
            "--neuron-density",
            "4",
            "--target-sparsity",
            "0.8",
            "--intrinsic-conn",
            "true",
            "--target-sparsity-intrinsic",
            "1.0",
            "--intrinsic-wei",
            "0.8",
            "--rand-partition",
            "false",
            "--keep-diag",
            "false",
            "--rng",
            "python",
            "--seed",
            "42",
            "--out",
            w.to_str().unwrap(),
            "--ids",
            ids.to_str().unwrap(),
        ])
        .unwrap();
        run(&args).unwrap();
        let got = bionpy::read_npy::<f64>(&w).unwrap();
        assert_eq!(got.shape, vec![220, 220]);
        let spec = bio2art::Bio2artSpec {
            connectome: "Marmoset_Normalized".into(),
            rng: RngKind::Python,
            seed: 42,
            config: Bio2artConfig {
                neuron_density: NeuronDensity::Uniform(4),
                target_sparsity: 0.8,
                keep_diag: false,
                ..Bio2artConfig::default()
            },
        };
        assert_eq!(got.data, spec.build().unwrap().weights);
        let regions = bionpy::read_npy::<i64>(&ids).unwrap();
        assert_eq!(regions.shape, vec![220]);
        assert_eq!(&regions.data[..5], &[0, 0, 0, 0, 1]);
        assert_eq!(regions.data[219], 54);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_arguments_name_the_flag_and_write_nothing() {
        let dir = scratch("bad");
        let w = dir.join("W.npy");
        let w_s = w.to_str().unwrap();
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["--connectome", "Marmoset", "--out", w_s], "--connectome"),
            (
                vec![
                    "--connectome",
                    "Marmoset_Normalized",
                    "--neuron-density",
                    "4,4",
                    "--out",
                    w_s,
                ],
                "--neuron-density",
            ),
            (
                vec![
                    "--connectome",
                    "Marmoset_Normalized",
                    "--neuron-density",
                    "0",
                    "--out",
                    w_s,
                ],
                "--neuron-density",
            ),
            (
                vec![
                    "--connectome",
                    "Marmoset_Normalized",
                    "--neuron-density",
                    "2.5",
                    "--out",
                    w_s,
                ],
                "--neuron-density",
            ),
            (
                vec![
                    "--connectome",
                    "Marmoset_Normalized",
                    "--target-sparsity",
                    "1.2",
                    "--out",
                    w_s,
                ],
                "--target-sparsity",
            ),
            (
                vec![
                    "--connectome",
                    "Marmoset_Normalized",
                    "--intrinsic-wei",
                    "1",
                    "--out",
                    w_s,
                ],
                "--intrinsic-wei",
            ),
            (
                vec![
                    "--connectome",
                    "Marmoset_Normalized",
                    "--target-sparsity-intrinsic",
                    "-1",
                    "--out",
                    w_s,
                ],
                "--target-sparsity-intrinsic",
            ),
            (
                vec![
                    "--connectome",
                    "Macaque_Normalized",
                    "--density-scale",
                    "rank",
                    "--out",
                    w_s,
                ],
                "--density-scale",
            ),
            (
                vec!["--connectome", "Drosophila", "--density-scale", "ratio", "--out", w_s],
                "--density-scale",
            ),
            (
                vec!["--connectome", "Drosophila", "--out", "/nonexistent-dir/W.npy"],
                "--out",
            ),
        ];
        for (line, flag) in cases {
            let args = parse(&line).unwrap();
            let e = run(&args).unwrap_err().to_string();
            assert!(e.starts_with(flag), "{line:?}: {e}");
            assert!(!w.exists(), "{line:?} wrote a file");
        }
        for (line, flag) in [
            (
                vec!["--connectome", "Drosophila", "--keep-diag", "maybe", "--out", w_s],
                "--keep-diag",
            ),
            (
                vec!["--connectome", "Drosophila", "--rng", "numpy", "--out", w_s],
                "--rng",
            ),
            (
                vec!["--connectome", "Drosophila", "--target-sparsity", "x", "--out", w_s],
                "--target-sparsity",
            ),
            (vec!["--connectome", "Drosophila"], "--out"),
        ] {
            let e = parse(&line).unwrap_err().to_string();
            assert!(e.contains(flag), "{line:?}: {e}");
        }
        assert!(!w.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn defaults_per_region_list_and_list_flag() {
        let dir = scratch("defaults");
        let w = dir.join("W.npy");
        let counts = vec!["2"; 19].join(",");
        let args = parse(&[
            "--connectome",
            "Mouse_Gamanut_Normalized",
            "--neuron-density",
            &counts,
            "--out",
            w.to_str().unwrap(),
        ])
        .unwrap();
        assert!(args.target_sparsity.is_none() && args.keep_diag.is_none());
        run(&args).unwrap();
        assert_eq!(bionpy::read_npy::<f64>(&w).unwrap().shape, vec![38, 38]);
        run(&parse(&["--list"]).unwrap()).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
