//! `cargo xtask mask`: one mask as `.npy` (and `.png`).

use std::path::PathBuf;

use biomask::{LayerKind, Layout, Mask, MaskForm, MaskSpec};
use biorng::RngKind;

use crate::CliResult;

/// Arguments of `cargo xtask mask`. Parameter names follow the originals.
#[derive(clap::Args, Debug)]
pub struct MaskArgs {
    /// Mask form: full, diagonal, gaussian, random, individual, kernel, 2d.
    #[arg(long)]
    pub form: String,
    /// Input units (in_features, or in_channels / groups for conv).
    #[arg(long)]
    pub nx: usize,
    /// Output units (out_features / out_channels).
    #[arg(long)]
    pub ny: usize,
    /// Fraction of weights removed (diagonal, gaussian, random, individual, kernel).
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    pub param_reduction: f64,
    /// Band half-width override for diagonal/gaussian (0 = computed from --param-reduction).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub halfbandwidth: f64,
    /// 2d: grid width of the input side.
    #[arg(long, default_value_t = 10)]
    pub input2d_width: usize,
    /// 2d: grid width of the output side.
    #[arg(long, default_value_t = 10)]
    pub output2d_width: usize,
    /// 2d: window radius as a fraction of the unit square.
    #[arg(long, default_value_t = 1.41, allow_negative_numbers = true)]
    pub window2d_width: f64,
    /// Convolution kernel size `kh,kw`: writes a conv kernel mask.
    #[arg(long, value_parser = parse_kernel_size)]
    pub kernel_size: Option<(usize, usize)>,
    /// Array layout: keras `(nx, ny)` / `(kh, kw, nx, ny)`, torch `(ny, nx)` / `(ny, nx, kh, kw)`.
    /// Also the order in which random forms draw.
    #[arg(long, value_enum, default_value_t = LayoutArg::Keras)]
    pub layout: LayoutArg,
    /// Random stream: seeded (project default), numpy (legacy RandomState), python (random).
    #[arg(long, default_value = "seeded", value_parser = crate::cli::rng_kind_parser())]
    pub rng: RngKind,
    /// Seed of the random stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// Output `.npy` file (uint8 0/1, float32 for gaussian; C order).
    #[arg(long)]
    pub out: PathBuf,
    /// Also render the mask as a PNG, one pixel per weight (scaled up for small masks).
    #[arg(long)]
    pub png: Option<PathBuf>,
}

/// `--layout`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutArg {
    Keras,
    Torch,
}

impl From<LayoutArg> for Layout {
    fn from(l: LayoutArg) -> Self {
        match l {
            LayoutArg::Keras => Layout::Keras,
            LayoutArg::Torch => Layout::Torch,
        }
    }
}

fn parse_kernel_size(s: &str) -> Result<(usize, usize), String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let parse = |p: &str| p.parse::<usize>().ok().filter(|&v| v > 0);
    match parts.as_slice() {
        [h, w] => match (parse(h), parse(w)) {
            (Some(h), Some(w)) => Ok((h, w)),
            _ => Err(format!("expected two positive integers `kh,kw`, got `{s}`")),
        },
        [k] => parse(k)
            .map(|k| (k, k))
            .ok_or_else(|| format!("expected a positive integer, got `{s}`")),
        _ => Err(format!("expected `kh,kw`, got `{s}`")),
    }
}

/// Builds the `MaskSpec` named by `--form` and the parameter flags.
pub fn spec_from_args(form: &str, a: &MaskArgs) -> Result<MaskSpec, biomask::Error> {
    let r = a.param_reduction;
    Ok(match form.parse::<MaskForm>()? {
        MaskForm::Full => MaskSpec::Full,
        MaskForm::Diagonal => MaskSpec::Diagonal {
            param_reduction: r,
            halfbandwidth: a.halfbandwidth,
        },
        MaskForm::Gaussian => MaskSpec::Gaussian {
            param_reduction: r,
            halfbandwidth: a.halfbandwidth,
        },
        MaskForm::Random => MaskSpec::Random { param_reduction: r },
        MaskForm::Individual => MaskSpec::Individual { param_reduction: r },
        MaskForm::Kernel => MaskSpec::Kernel { param_reduction: r },
        MaskForm::TwoD => MaskSpec::two_d(a.input2d_width, a.output2d_width, a.window2d_width),
        MaskForm::Matrix => {
            return Err(biomask::Error::InvalidParameter {
                name: "form",
                value: "matrix".into(),
                reason: "a matrix mask is given as data (`{form = \"matrix\", path = \"m.npy\"}` in a layer \
                         config, or MaskSpec::matrix in Rust), not built from flags"
                    .into(),
            })
        }
    })
}

/// Prefixes a mask error with the command-line flag it concerns.
fn with_flag(e: biomask::Error) -> String {
    match &e {
        biomask::Error::InvalidParameter { name, .. } => format!("--{}: {e}", name.replace('_', "-")),
        biomask::Error::UnknownForm(_) | biomask::Error::UnsupportedForm { .. } => format!("--form: {e}"),
        biomask::Error::InvalidShape(_) => format!("--nx/--ny/--kernel-size: {e}"),
        biomask::Error::Npy { .. } => e.to_string(),
    }
}

/// Generates the mask described by the arguments (no file is touched).
pub fn build(a: &MaskArgs) -> Result<Mask, String> {
    let spec = spec_from_args(&a.form, a).map_err(with_flag)?;
    let kind = match a.kernel_size {
        Some(kernel) => LayerKind::Conv { kernel },
        None => LayerKind::Dense,
    };
    let mut rng = a.rng.stream(u64::from(a.seed)).map_err(|e| format!("--seed: {e}"))?;
    spec.build(kind, a.nx, a.ny, a.layout.into(), &mut rng)
        .map_err(with_flag)
}

/// Runs `cargo xtask mask`.
pub fn run(a: &MaskArgs) -> CliResult {
    crate::cli::require_extension("--out", &a.out, "npy")?;
    if let Some(png) = &a.png {
        crate::cli::require_extension("--png", png, "png")?;
    }
    let mask = build(a)?;
    // Encode everything before writing anything, so a failure writes no file.
    let png = a
        .png
        .as_ref()
        .map(|p| crate::png::encode_mask(&mask).map(|bytes| (p, bytes)))
        .transpose()?;
    let npy = mask.npy_bytes(a.layout.into()).map_err(|e| format!("--out: {e}"))?;
    let mut files: Vec<(&std::path::Path, &[u8])> = vec![(&a.out, &npy)];
    if let Some((path, bytes)) = &png {
        files.push((path, bytes));
    }
    // Both files or neither: a bad --png must not replace a good --out.
    bionpy::write_all_atomic(&files)?;
    for note in mask.notes() {
        eprintln!("warning: {note}");
    }
    let dead = mask.dead_outputs();
    if !dead.is_empty() {
        eprintln!(
            "warning: {} output unit(s) have no connection at all (dead apart from their bias): {}",
            dead.len(),
            summarize(&dead)
        );
    }
    println!(
        "ones={} weights={} density={}",
        mask.num_ones(),
        mask.num_weights(),
        mask.density()
    );
    Ok(())
}

fn summarize(v: &[usize]) -> String {
    let shown: Vec<String> = v.iter().take(10).map(usize::to_string).collect();
    if v.len() > 10 {
        format!("{} ...", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
