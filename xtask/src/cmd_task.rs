//! `cargo xtask task`: generate one working-memory trial set (before any split) and write it as
//! `.npy`.
//!
//! ```text
//! cargo xtask task --name seq_mem --pattern-length 3 --trials 4 --rng numpy --seed 0 --out DIR
//! cargo xtask task --name nback_mem --trial-length 5 --n-back 2 --trials 4 --rng numpy --seed 0 --out DIR
//! cargo xtask task --name pic_latent_mem --trial-length 5 --n-back 2 --trials 4 --rng python \
//!     --seed 0 --latents latents.npy --labels labels.npy --out DIR
//! ```
//!
//! Writes into `DIR` (created if missing), exactly as upstream's generators return them:
//! * `X.npy`: float32 `(rows, in_dim)`, column 0 the cue channel;
//! * `Y.npy`: float32 `(rows, 1)`;
//! * `trial_index.npy`: **int64** `(rows,)`, the trial id of every row (upstream holds the same
//!   whole numbers in float64).
//!
//! `--trials N`: N trials for seq_mem; N match trials followed by N non-match trials for
//! nback_mem and pic_latent_mem. `--rng numpy` with `--seed S` reproduces upstream's
//! `np.random.seed(S)` stream (seq_mem, nback_mem), `--rng python` its `random.seed(S)` stream
//! (pic_latent_mem); the default `seeded` is the project's ChaCha8 stream.
//!
//! Omitted flags take upstream's generator defaults: pattern length 3, low 0, high 1, trial length
//! 5, 100 trials; `--n-back` defaults to 2 (the shipped config's first value). Flags that do not
//! apply to the chosen task are rejected. Every argument is checked and the trial set generated
//! before anything is written; the three files are written to temporary names and renamed into
//! place together.
//!
//! Dependencies (xtask/Cargo.toml): `biotasks`, `bionpy`, `clap` (derive).

use std::path::{Path, PathBuf};

use biotasks::{Error as TaskError, LatentTable, NbackMem, PicLatentMem, RngKind, SeqMem, Trials};

use crate::cli::{cli_err, parse_bool};

/// Arguments of `cargo xtask task`.
#[derive(clap::Args, Debug)]
pub struct TaskArgs {
    /// Task: seq_mem, nback_mem or pic_latent_mem.
    #[arg(long, value_name = "TASK")]
    pub name: String,

    /// seq_mem: values to memorise per trial [default: 3].
    #[arg(long, value_name = "L")]
    pub pattern_length: Option<usize>,

    /// seq_mem: lower bound of the uniform values [default: 0].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub low: Option<f64>,

    /// seq_mem: upper bound of the uniform values [default: 1].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub high: Option<f64>,

    /// nback_mem, pic_latent_mem: values/images per trial [default: 5].
    #[arg(long, value_name = "TL")]
    pub trial_length: Option<usize>,

    /// nback_mem, pic_latent_mem: compare the last item with the one N steps back, 1 <= N < TL
    /// [default: 2].
    #[arg(long, value_name = "N")]
    pub n_back: Option<usize>,

    /// Trials (seq_mem), or match trials and as many non-match trials (n-back tasks)
    /// [default: 100].
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub trials: usize,

    /// pic_latent_mem: float32 (N, D) latent table (.npy).
    #[arg(long, value_name = "FILE")]
    pub latents: Option<PathBuf>,

    /// pic_latent_mem: int64 or uint8 (N,) labels (.npy).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,

    /// pic_latent_mem: per-row min-max scaling of the table first (upstream: always true).
    #[arg(long, value_name = "BOOL", value_parser = parse_bool)]
    pub rescale: Option<bool>,

    /// Random stream: seeded (the project's ChaCha8), numpy (NumPy legacy global stream) or
    /// python (CPython random).
    #[arg(long, value_name = "seeded|numpy|python", default_value = "seeded")]
    pub rng: RngKind,

    /// Seed of the stream (numpy: below 2^32).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,

    /// Output folder for X.npy, Y.npy and trial_index.npy (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Names the command-line flag behind a library error.
fn flag_error(e: TaskError) -> Box<dyn std::error::Error> {
    let flag = match &e {
        TaskError::InvalidParameter { param, .. } => format!("--{}", param.replace('_', "-")),
        TaskError::NotEnoughImages { .. } => "--latents/--labels".to_string(),
        TaskError::Shape { what: "labels", .. } => "--labels".to_string(),
        TaskError::Shape { what: "latents", .. } | TaskError::NonFinite { what: "latents", .. } => {
            "--latents".to_string()
        }
        TaskError::Npy(_) | TaskError::Data { .. } => "--latents/--labels".to_string(),
        _ => return Box::new(e),
    };
    cli_err(format!("{flag}: {e}"))
}

/// Rejects the flags that the chosen task does not take.
fn reject(task: &str, flags: &[(&str, bool)]) -> Result<(), Box<dyn std::error::Error>> {
    for (flag, given) in flags {
        if *given {
            return Err(cli_err(format!("{flag}: does not apply to --name {task}")));
        }
    }
    Ok(())
}

fn generate(a: &TaskArgs) -> Result<Trials, Box<dyn std::error::Error>> {
    let mut rng = a.rng.stream(a.seed).map_err(|e| flag_error(e.into()))?;
    match a.name.as_str() {
        "seq_mem" => {
            reject(
                "seq_mem",
                &[
                    ("--trial-length", a.trial_length.is_some()),
                    ("--n-back", a.n_back.is_some()),
                    ("--latents", a.latents.is_some()),
                    ("--labels", a.labels.is_some()),
                    ("--rescale", a.rescale.is_some()),
                ],
            )?;
            let d = SeqMem::default();
            let p = SeqMem {
                pattern_length: a.pattern_length.unwrap_or(d.pattern_length),
                low: a.low.unwrap_or(d.low),
                high: a.high.unwrap_or(d.high),
                trials: a.trials,
            };
            p.generate(&mut rng).map_err(flag_error)
        }
        "nback_mem" => {
            reject(
                "nback_mem",
                &[
                    ("--pattern-length", a.pattern_length.is_some()),
                    ("--low", a.low.is_some()),
                    ("--high", a.high.is_some()),
                    ("--latents", a.latents.is_some()),
                    ("--labels", a.labels.is_some()),
                    ("--rescale", a.rescale.is_some()),
                ],
            )?;
            let d = NbackMem::default();
            let p = NbackMem {
                trial_length: a.trial_length.unwrap_or(d.trial_length),
                n_back: a.n_back.unwrap_or(d.n_back),
                trials: a.trials,
            };
            p.generate(&mut rng).map_err(flag_error)
        }
        "pic_latent_mem" => {
            reject(
                "pic_latent_mem",
                &[
                    ("--pattern-length", a.pattern_length.is_some()),
                    ("--low", a.low.is_some()),
                    ("--high", a.high.is_some()),
                ],
            )?;
            let d = PicLatentMem::default();
            let p = PicLatentMem {
                trial_length: a.trial_length.unwrap_or(d.trial_length),
                n_back: a.n_back.unwrap_or(d.n_back),
                trials: a.trials,
                rescale: a.rescale.unwrap_or(d.rescale),
            };
            // Parameters first, so that a bad --n-back is reported before any file is read.
            p.validate_params().map_err(flag_error)?;
            let latents = a
                .latents
                .as_deref()
                .ok_or_else(|| cli_err("--latents: required for --name pic_latent_mem"))?;
            let labels = a
                .labels
                .as_deref()
                .ok_or_else(|| cli_err("--labels: required for --name pic_latent_mem"))?;
            let table = LatentTable::from_npy(latents, labels).map_err(flag_error)?;
            p.generate(&table, &mut rng).map_err(|e| match e {
                // The table is fine as an array but its labels cannot fill a trial: name both files.
                TaskError::NotEnoughImages { .. } => cli_err(format!(
                    "--latents/--labels: {} with {}: {e}",
                    latents.display(),
                    labels.display()
                )),
                other => flag_error(other),
            })
        }
        other => Err(cli_err(format!(
            "--name: unknown task {other:?} (expected seq_mem, nback_mem or pic_latent_mem)"
        ))),
    }
}

fn check_out(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    if dir.exists() && !dir.is_dir() {
        return Err(cli_err(format!("--out: {} exists and is not a folder", dir.display())));
    }
    Ok(())
}

/// Writes the three arrays all-or-nothing ([`bionpy::write_all_atomic`]): a failure leaves every
/// earlier X.npy / Y.npy / trial_index.npy in `dir` as it was.
fn write_all(dir: &Path, t: &Trials) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir).map_err(|e| cli_err(format!("--out: {}: {e}", dir.display())))?;
    let out_err = |e: std::io::Error| cli_err(format!("--out: {e}"));
    let x = bionpy::npy_bytes(&[t.rows(), t.in_dim], &t.x).map_err(out_err)?;
    let y = bionpy::npy_bytes(&[t.rows(), 1], &t.y).map_err(out_err)?;
    let index = bionpy::npy_bytes(&[t.rows()], &t.trial_index).map_err(out_err)?;
    let (px, py, pi) = (dir.join("X.npy"), dir.join("Y.npy"), dir.join("trial_index.npy"));
    bionpy::write_all_atomic(&[(&px, &x), (&py, &y), (&pi, &index)]).map_err(|e| cli_err(format!("--out: {e}")))
}

/// Runs `cargo xtask task`.
pub fn run(args: &TaskArgs) -> Result<(), Box<dyn std::error::Error>> {
    check_out(&args.out)?;
    let trials = generate(args)?;
    write_all(&args.out, &trials)?;
    println!(
        "{}: {} trials of {} steps -> {} (X {:?} float32, Y {:?} float32, trial_index {:?} int64), rng {} seed {}",
        args.name,
        trials.n_trials(),
        trials.steps,
        args.out.display(),
        [trials.rows(), trials.in_dim],
        [trials.rows(), 1],
        [trials.rows()],
        args.rng,
        args.seed
    );
    Ok(())
}
