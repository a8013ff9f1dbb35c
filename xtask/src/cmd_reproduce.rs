//! `cargo xtask reproduce <name>`: the paper experiments, written to `results/<name>/`.

use std::path::PathBuf;

use bioexperiments::bionet::{reproduce_bionet, BioNetArgs, Convolution, RecurrentOption};
use bioexperiments::cifar::cifar;
use bioexperiments::mouse_gan::{self, ChannelStatsFrechet, MouseGanConfig};
use bioexperiments::rnn_memory::{rnn_memory, rnn_memory_converge, ConvergeOverrides, RnnMemoryPreset};
use bioexperiments::rnn_runs::{bio_vs_rand, RunOptions, RunsConfig, Shard};
use bioexperiments::schizo_mnist::schizo_mnist;
use bioexperiments::scoring::{InceptionFidScorer, PixelMomentDistance, SampleScorer};
use bioexperiments::synaptic_diversity::synaptic_diversity;
use bioexperiments::vgg16_schizo::{trainable_params, vgg16_schizo};
use bioexperiments::{Overrides, Preset, ReproduceOptions, SettingResult};
use biotasks::perturb::Perturbation;

use crate::CliResult;

/// Arguments of `cargo xtask reproduce`.
#[derive(clap::Args, Debug)]
pub struct ReproduceArgs {
    /// Experiment: bionet, rnn-memory, schizo-mnist, schizo-cifar, mouse-cifar, mouse-ddim,
    /// mouse-gan, synaptic-diversity, vgg16-schizo.
    pub name: String,
    /// The sizes: quick (minutes), medium (about an hour on 2 cores, sized for the claim to
    /// show) or paper (the papers' settings) [default: paper]; rnn-memory also converge (seq_mem
    /// and nback_mem trained to a validation plateau, default --out results/rnn-memory-converge).
    /// See docs/reproductions.md.
    #[arg(long)]
    pub preset: Option<String>,
    /// The early-stopping flags of `reproduce rnn-memory --preset converge`.
    #[command(flatten)]
    pub converge: ConvergeFlags,
    /// Alias of --preset quick.
    #[arg(long)]
    pub quick: bool,
    /// Repeats (seeds) per setting, overriding the preset (bionet: --trials).
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Run only the (setting, repeat) jobs of shard i of n (0-based, e.g. 0/4 or
    /// $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT); join the shard folders with merge-results.
    #[arg(long)]
    pub shard: Option<String>,
    /// Data folder (default ../shared/data when it exists).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder (default results/<name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the runs from their checkpoints.
    #[arg(long)]
    pub resume: bool,
    /// Base seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// rnn-memory: upstream's whole seq_mem grid (xtask/configs/seq_mem.ini: 24 combinations ×
    /// 5 iterations × 500 epochs) for the bio and the randomised topology through `rnn-run`,
    /// into <out>/bio, <out>/rand and the loss plots into <out>/figs (resumable; hours on 2 cores).
    #[arg(long)]
    pub full: bool,
    /// No progress bars.
    #[arg(long)]
    pub no_progress: bool,
    /// bionet: first layer(s) to compare, comma-separated: Standard, Gabor, DoG, Low-pass,
    /// Combined (default: Standard,Gabor).
    #[arg(long, value_delimiter = ',')]
    pub convolution: Vec<String>,
    /// bionet: base network, all-cnn, vgg16 or resnet50 [default: all-cnn]
    // An Option (default applied in `bionet_args`) so that giving it to another experiment is
    // seen and refused.
    #[arg(long)]
    pub base: Option<String>,
    /// bionet: retinal bottleneck of N channels in front of the first layer.
    #[arg(long)]
    pub bottleneck: Option<usize>,
    /// bionet: a ConvLSTM unrolled over --steps on the first layer's output.
    #[arg(long)]
    pub recurrent: bool,
    /// bionet: upstream's recurrent model instead (a learned one-step ConvLSTM replacing the
    /// first layer, no filter bank).
    #[arg(long, conflicts_with = "recurrent")]
    pub recurrent_upstream: bool,
    /// bionet: ConvLSTM steps T [default: 3]
    #[arg(long)]
    pub steps: Option<usize>,
    /// bionet: upscaling, nearest, bilinear or bicubic [default: nearest]
    #[arg(long)]
    pub interpolation: Option<String>,
    /// bionet: trials per model (default 5, 1 with --quick).
    #[arg(long)]
    pub trials: Option<usize>,
    /// bionet: a seconds-long end-to-end check on tiny data.
    #[arg(long, hide = true)]
    pub smoke: bool,
    /// schizo-mnist / schizo-cifar: window shapes of the SzDense layer, comma-separated
    /// (diagonal, random, gaussian), each at the diagonal band's density [default: the preset's;
    /// schizo-mnist medium: all three].
    #[arg(long, value_delimiter = ',')]
    pub forms: Vec<String>,
    /// schizo-cifar / mouse-cifar / vgg16-schizo: CIFAR-10 copy, binary (the official batches in
    /// <data>/cifar-10-batches-bin) or jpeg (<data>/cifar10-jpeg) [default: binary when present].
    #[arg(long)]
    pub cifar_format: Option<String>,
    /// Where to train: cpu, cuda (device 0), cuda:N, or emulator (the device code path with
    /// the host emulator's CPU kernels, to check it without a GPU; slow). Every target
    /// (docs/gpu-training.md lists the steps that still run on the host).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Arithmetic of the device's matrix products and convolutions (with --device only): f32
    /// (exact), tf32 (tensor cores, f32 accumulation and master weights) or bf16 (each
    /// product's operands rounded to bf16 copies, f32 sums and master weights; the emulator
    /// rounds the operands the same way).
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Training images, overriding the preset (image targets).
    #[arg(long)]
    pub train_images: Option<usize>,
    /// bionet / vgg16-schizo: override the preset's number of test (validation) images.
    #[arg(long)]
    pub test_images: Option<usize>,
    /// Epochs per run, overriding the preset.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// bionet: override the preset's input side (banks scaled by size/224).
    #[arg(long)]
    pub input_size: Option<usize>,
    /// bionet: perturbations to evaluate, comma-separated (default: all ten).
    #[arg(long, value_delimiter = ',')]
    pub perturbations: Vec<String>,
    /// The flags of `reproduce mouse-gan` (boxed: they would make every command's arguments larger).
    #[command(flatten)]
    pub gan: Box<MouseGanFlags>,
}

/// The flags only `reproduce rnn-memory --preset converge` takes.
#[derive(clap::Args, Debug)]
pub struct ConvergeFlags {
    /// rnn-memory --preset converge: epochs without a relative improvement of --min-delta of
    /// the validation loss after which a job stops [default: 50].
    #[arg(long)]
    pub patience: Option<usize>,
    /// rnn-memory --preset converge: the relative improvement of the validation loss that
    /// counts, in [0, 1) [default: 0.001].
    #[arg(long)]
    pub min_delta: Option<f64>,
    /// rnn-memory --preset converge: no plateau stop before this epoch [default: 500].
    #[arg(long)]
    pub min_epochs: Option<usize>,
}

/// The flags only `reproduce mouse-gan` takes.
#[derive(clap::Args, Debug)]
pub struct MouseGanFlags {
    /// mouse-gan: image classes, comma-separated (CIFAR-10 names, or the sub-folders of
    /// --image-folder) [default: cat,bird].
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// mouse-gan: window2d_width of the mouse runs, comma-separated, each in (0, 1.4) [default:
    /// 0.4]; the standard control (w = 1.4) is always run.
    #[arg(long, value_delimiter = ',')]
    pub window2d_width: Vec<f64>,
    /// mouse-gan / mouse-ddim: no FID (no Inception weights needed). mouse-gan trains without a
    /// score; mouse-ddim scores with the pixel-moment distance (not an FID). The summaries say so.
    #[arg(long)]
    pub no_fid: bool,
    /// mouse-gan / mouse-ddim: the scorer instead of the FID: `channel-stats` (a Fréchet distance
    /// of per-image channel means and spreads) or `pixel-moments`; both cheap, NOT an FID.
    #[arg(long, conflicts_with = "no_fid")]
    pub score: Option<String>,
    /// mouse-gan / mouse-ddim: the InceptionV3 weights of the FID [default: where
    /// `cargo xtask fid-weights` writes them, $BIOMIMETIC_CACHE or ~/.cache/biomimetic/fid/].
    #[arg(long, conflicts_with_all = ["no_fid", "score"])]
    pub fid_weights: Option<PathBuf>,
    /// mouse-gan: train on this folder of class sub-folders (e.g. your AFHQ copy's train/, with
    /// --classes cat) at 64×64 instead of CIFAR-10 at 32×32.
    #[arg(long)]
    pub image_folder: Option<PathBuf>,
    /// mouse-gan: the conditional DCGAN: one network per window and repeat trained on all
    /// --classes together (at least 2) [default classes: cat,bird,automobile,deer], scored per
    /// class.
    #[arg(long)]
    pub conditional: bool,
}

fn bionet_args(a: &ReproduceArgs) -> CliResult<BioNetArgs> {
    let convolutions = a
        .convolution
        .iter()
        .map(|c| c.parse::<Convolution>())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(BioNetArgs {
        convolutions,
        base: a.base.as_deref().unwrap_or("all-cnn").parse()?,
        bottleneck: a.bottleneck,
        recurrent: if a.recurrent {
            RecurrentOption::ConvLstm
        } else if a.recurrent_upstream {
            RecurrentOption::Upstream
        } else {
            RecurrentOption::None
        },
        steps: a.steps.unwrap_or(3),
        interpolation: a.interpolation.as_deref().unwrap_or("nearest").parse()?,
        trials: a.trials,
        smoke: a.smoke,
        overrides: (a.train_images, a.test_images, a.epochs),
        input_size: a.input_size,
        perturbations: a
            .perturbations
            .iter()
            .map(|p| Perturbation::from_name(p))
            .collect::<Result<Vec<_>, _>>()?,
    })
}

fn run_bionet(a: &ReproduceArgs, opts: &ReproduceOptions) -> CliResult {
    let results = reproduce_bionet(opts, &bionet_args(a)?)?;
    for r in &results {
        let test = r.history.last().map_or(f64::NAN, |e| e.val_acc);
        let gen = r.generalisation.iter().map(|(_, s)| s.accuracy).sum::<f64>() / r.generalisation.len().max(1) as f64;
        println!(
            "{:<28} trial {}  CIFAR-10 test acc {test:.4}  CIFAR-10G mean acc {gen:.4}",
            r.model, r.trial
        );
    }
    println!(
        "wrote metrics/, robustness/, auc.csv and summary.md to {}",
        opts.out.display()
    );
    Ok(())
}

const EXPERIMENTS: [&str; 9] = [
    "bionet",
    "rnn-memory",
    "schizo-mnist",
    "schizo-cifar",
    "mouse-cifar",
    "mouse-ddim",
    "synaptic-diversity",
    "mouse-gan",
    "vgg16-schizo",
];

/// Refuses an unknown experiment and the flags that belong to another one (they would be
/// ignored while a long run starts).
fn check_flags(a: &ReproduceArgs) -> CliResult {
    if !EXPERIMENTS.contains(&a.name.as_str()) {
        return Err(crate::cli::cli_err(format!(
            "unknown experiment `{}` (available: {})",
            a.name,
            EXPERIMENTS.join(", ")
        )));
    }
    let bionet_only = [
        ("--convolution", !a.convolution.is_empty()),
        ("--base", a.base.is_some()),
        ("--bottleneck", a.bottleneck.is_some()),
        ("--recurrent", a.recurrent),
        ("--recurrent-upstream", a.recurrent_upstream),
        ("--steps", a.steps.is_some()),
        ("--interpolation", a.interpolation.is_some()),
        ("--trials", a.trials.is_some()),
        ("--smoke", a.smoke),
        ("--input-size", a.input_size.is_some()),
        ("--perturbations", !a.perturbations.is_empty()),
    ];
    let only = |owner: &str, flags: &[(&str, bool)]| -> CliResult {
        match flags.iter().find(|(_, given)| *given) {
            Some((flag, _)) if a.name != owner => Err(crate::cli::cli_err(format!(
                "{flag}: only `reproduce {owner}` takes it, not `{}`",
                a.name
            ))),
            _ => Ok(()),
        }
    };
    only("bionet", &bionet_only)?;
    if a.test_images.is_some() && !matches!(a.name.as_str(), "bionet" | "vgg16-schizo") {
        return Err(crate::cli::cli_err(format!(
            "--test-images: only `reproduce bionet` and `reproduce vgg16-schizo` take it, not `{}`",
            a.name
        )));
    }
    only("rnn-memory", &[("--full", a.full)])?;
    if a.cifar_format.is_some() && !matches!(a.name.as_str(), "schizo-cifar" | "mouse-cifar" | "vgg16-schizo") {
        return Err(crate::cli::cli_err(format!(
            "--cifar-format: only `reproduce schizo-cifar`, `mouse-cifar` and `vgg16-schizo` take it, not `{}`",
            a.name
        )));
    }
    if !a.forms.is_empty() && !matches!(a.name.as_str(), "schizo-mnist" | "schizo-cifar") {
        return Err(crate::cli::cli_err(format!(
            "--forms: only `reproduce schizo-mnist` and `reproduce schizo-cifar` take it, not `{}`",
            a.name
        )));
    }
    let converge = a.name == "rnn-memory" && a.preset.as_deref() == Some("converge");
    for (flag, given) in [
        ("--patience", a.converge.patience.is_some()),
        ("--min-delta", a.converge.min_delta.is_some()),
        ("--min-epochs", a.converge.min_epochs.is_some()),
    ] {
        if given && !converge {
            return Err(crate::cli::cli_err(format!(
                "{flag}: only `reproduce rnn-memory --preset converge` takes it, not `{}{}`",
                a.name,
                a.preset
                    .as_deref()
                    .map_or_else(String::new, |p| format!(" --preset {p}"))
            )));
        }
    }
    let max = biotasks::early_stopping::EarlyStopping::MAX_EPOCHS;
    if let Some(p) = a.converge.patience {
        crate::cli::check_range("--patience", p, 1, max)?;
    }
    if let Some(m) = a.converge.min_epochs {
        crate::cli::check_range("--min-epochs", m, 0, max)?;
    }
    if let Some(d) = a.converge.min_delta {
        if !(d.is_finite() && (0.0..1.0).contains(&d)) {
            return Err(crate::cli::cli_err(format!(
                "--min-delta: {d} is not a relative improvement in [0, 1) (e.g. 0.001 for 0.1 %)"
            )));
        }
    }
    only(
        "mouse-gan",
        &[
            ("--classes", !a.gan.classes.is_empty()),
            ("--window2d-width", !a.gan.window2d_width.is_empty()),
            ("--image-folder", a.gan.image_folder.is_some()),
            ("--conditional", a.gan.conditional),
        ],
    )?;
    if !matches!(a.name.as_str(), "mouse-gan" | "mouse-ddim") {
        only(
            "mouse-gan",
            &[
                ("--no-fid", a.gan.no_fid),
                ("--score", a.gan.score.is_some()),
                ("--fid-weights", a.gan.fid_weights.is_some()),
            ],
        )?;
    }
    if a.name == "bionet" {
        for (flag, given) in [("--repeats", a.repeats.is_some()), ("--shard", a.shard.is_some())] {
            if given {
                return Err(crate::cli::cli_err(format!(
                    "{flag}: `reproduce bionet` does not take it (its repeats are --trials; it is not sharded)"
                )));
            }
        }
    }
    if a.full {
        for (flag, given) in [
            ("--preset", a.preset.is_some()),
            ("--quick", a.quick),
            ("--epochs", a.epochs.is_some()),
            ("--repeats", a.repeats.is_some()),
            ("--train-images", a.train_images.is_some()),
        ] {
            if given {
                return Err(crate::cli::cli_err(format!(
                    "{flag}: `reproduce rnn-memory --full` runs upstream's config grid as it is (xtask/configs/seq_mem.ini)"
                )));
            }
        }
    }
    // Upper ends: documented limits that keep a typo from starting a run of years.
    for (flag, value, max) in [
        ("--epochs", a.epochs, 100_000),
        ("--repeats", a.repeats, 10_000),
        ("--train-images", a.train_images, 1_000_000),
        ("--test-images", a.test_images, 1_000_000),
    ] {
        if let Some(v) = value {
            crate::cli::check_range(flag, v, 1, max)?;
        }
    }
    Ok(())
}

/// The preset of `--preset` / `--quick`: a shared one, or a target's own: `converge` (only
/// `rnn-memory` has it) and `readme-figure` (only `schizo-cifar`: its paper preset); another
/// target refuses them, naming the value.
fn preset(a: &ReproduceArgs) -> CliResult<RnnMemoryPreset> {
    let p = match a.preset.as_deref() {
        // The seed README's figure (`CIFAR_CNN_ConcurrTraj200913.png`) is schizo-cifar's paper
        // preset; the name is the one the issue and the README use.
        Some("readme-figure") if a.name == "schizo-cifar" => RnnMemoryPreset::Fixed(Preset::Paper),
        Some("readme-figure") => {
            return Err(crate::cli::cli_err(format!(
                "--preset readme-figure: only `reproduce schizo-cifar` has it (the seed README's figure), not `{}`",
                a.name
            )))
        }
        Some(name) if a.name == "rnn-memory" => name
            .parse::<RnnMemoryPreset>()
            .map_err(|e| crate::cli::cli_err(format!("--preset: {e}")))?,
        Some(name) => RnnMemoryPreset::Fixed(
            name.parse::<Preset>()
                .map_err(|e| crate::cli::cli_err(format!("--preset: {e}")))?,
        ),
        None if a.quick => RnnMemoryPreset::Fixed(Preset::Quick),
        None => RnnMemoryPreset::Fixed(Preset::Paper),
    };
    if a.quick && p != RnnMemoryPreset::Fixed(Preset::Quick) {
        return Err(crate::cli::cli_err(format!(
            "--quick is --preset quick; it contradicts --preset {}",
            a.preset.as_deref().unwrap_or("")
        )));
    }
    if a.name == "bionet" && p == RnnMemoryPreset::Fixed(Preset::Medium) {
        return Err(crate::cli::cli_err(
            "--preset medium: `reproduce bionet` has the presets quick and paper (and --smoke); size it with --epochs, --train-images, --trials",
        ));
    }
    Ok(p)
}

/// Runs `cargo xtask reproduce`.
pub fn run(a: &ReproduceArgs) -> CliResult {
    check_flags(a)?;
    let shard = match &a.shard {
        Some(s) => s
            .parse::<Shard>()
            .map_err(|e| crate::cli::cli_err(format!("--shard: {e}")))?,
        None => Shard::ALL,
    };
    let choice = preset(a)?;
    let device = crate::cli::parse_device("--device", &a.device)?;
    let precision = match a.precision.as_str() {
        "f32" => bioautograd::Precision::F32,
        "tf32" => bioautograd::Precision::Tf32,
        "bf16" => bioautograd::Precision::Bf16,
        other => {
            return Err(crate::cli::cli_err(format!(
                "--precision {other}: expected f32, tf32 or bf16"
            )))
        }
    };
    if device == bioautograd::Device::Cpu && precision != bioautograd::Precision::F32 {
        return Err(crate::cli::cli_err(format!(
            "--precision {}: applies to a device (--device cuda|emulator), not the CPU",
            a.precision
        )));
    }
    bioautograd::cuda::set_default_precision(precision)
        .map_err(|e| crate::cli::cli_err(format!("--precision {}: {e}", a.precision)))?;
    let default_out = match choice {
        RnnMemoryPreset::Converge => "rnn-memory-converge".to_string(),
        RnnMemoryPreset::Fixed(_) => a.name.clone(),
    };
    let opts = ReproduceOptions {
        // `converge` is rnn-memory's own preset, run by `rnn_memory_converge` (which does not
        // read this field).
        preset: match choice {
            RnnMemoryPreset::Fixed(p) => p,
            RnnMemoryPreset::Converge => Preset::Paper,
        },
        overrides: Overrides {
            epochs: a.epochs,
            train_images: a.train_images,
            repeats: a.repeats,
        },
        shard,
        data: a.data.clone(),
        out: a
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("results").join(default_out)),
        resume: a.resume,
        progress: !a.no_progress,
        seed: a.seed,
        forms: a.forms.clone(),
        cifar_format: a
            .cifar_format
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| crate::cli::cli_err(format!("--cifar-format: {e}")))?,
        device,
    };
    if a.name == "rnn-memory" && a.full {
        return rnn_memory_full(a, &opts);
    }
    if a.name == "bionet" {
        return run_bionet(a, &opts);
    }
    if a.name == "mouse-gan" {
        return run_mouse_gan(a, &opts);
    }
    if a.name == "mouse-ddim" {
        return run_mouse_ddim(a, &opts);
    }
    let results = match a.name.as_str() {
        "schizo-mnist" => schizo_mnist(&opts)?,
        "schizo-cifar" => cifar(&opts, false)?,
        "mouse-cifar" => cifar(&opts, true)?,
        "synaptic-diversity" => synaptic_diversity(&opts)?,
        "rnn-memory" if choice == RnnMemoryPreset::Converge => rnn_memory_converge(
            &opts,
            &ConvergeOverrides {
                patience: a.converge.patience,
                min_delta: a.converge.min_delta,
                min_epochs: a.converge.min_epochs,
            },
        )?,
        "rnn-memory" => rnn_memory(&opts)?,
        "vgg16-schizo" => {
            println!(
                "vgg16-schizo: VGG16 with {} trainable parameters (Keras' count), dense vs SzConv2D(individual, id = 0.6) last convolution",
                trainable_params(1)
            );
            vgg16_schizo(&opts, a.test_images)?
        }
        other => return Err(format!("unknown experiment `{other}` (available: {})", EXPERIMENTS.join(", ")).into()),
    };
    print_results(&results);
    if opts.out.join("summary.md").is_file() {
        println!(
            "wrote summary.md (statistics and verdicts), stats.csv, comparisons.csv, history.csv and the plots to {}",
            opts.out.display()
        );
    } else {
        println!(
            "shard {shard}: its jobs are in {}/runs; join the shard folders with `cargo xtask merge-results --inputs ... --out ...`",
            opts.out.display()
        );
    }
    Ok(())
}

fn print_results(results: &[SettingResult]) {
    for r in results {
        let last: Vec<String> = r
            .runs
            .iter()
            .filter_map(|h| h.last())
            .map(|e| {
                if e.val_acc.is_finite() {
                    format!("val_acc {:.4} val_loss {:.4}", e.val_acc, e.val_loss)
                } else {
                    format!("val_loss {:.4}", e.val_loss)
                }
            })
            .collect();
        println!("{:<10} density {:.4}  {}", r.label, r.density, last.join(" | "));
    }
}

/// `reproduce rnn-memory --full`: upstream's seq_mem config grid, bio vs rand, via `rnn-run`.
fn rnn_memory_full(a: &ReproduceArgs, opts: &ReproduceOptions) -> CliResult {
    let mut cfg = RunsConfig::from_ini(
        include_str!("../configs/seq_mem.ini"),
        std::path::Path::new("xtask/configs/seq_mem.ini"),
    )?;
    cfg.run.seed = a.seed;
    let (bio, rand, summary) = bio_vs_rand(
        &cfg,
        &opts.out,
        &RunOptions {
            out: None,
            shard: opts.shard,
            data: a.data.clone(),
            progress: opts.progress,
            max_epochs: None,
        },
    )?;
    for (label, r) in [("bio", &bio), ("rand", &rand)] {
        println!(
            "{label}: {} neurons, {} of {} jobs finished now, {} already done, {} complete combination(s) in {}",
            r.hidden,
            r.ran.len(),
            r.total_jobs,
            r.skipped.len(),
            r.complete_combinations,
            r.out.display()
        );
    }
    crate::cmd_rnn_runs::print_summary(
        &["bio".to_string(), "rand".to_string()],
        &summary,
        &opts.out.join("figs"),
    );
    Ok(())
}

/// The scorer of `reproduce mouse-gan` / `mouse-ddim`: `--no-fid` none, `--score` a cheap
/// non-FID distance, otherwise the FID, whose InceptionV3 weights are loaded here, before any
/// training starts (a missing file names `cargo xtask fid-weights` and `--no-fid`).
fn sample_scorer(a: &ReproduceArgs) -> CliResult<Option<Box<dyn SampleScorer>>> {
    if a.gan.no_fid {
        return Ok(None);
    }
    match a.gan.score.as_deref() {
        Some("channel-stats") => Ok(Some(Box::new(ChannelStatsFrechet))),
        Some("pixel-moments") => Ok(Some(Box::new(PixelMomentDistance))),
        Some("fid") | None => {
            let weights = match &a.gan.fid_weights {
                Some(p) => p.clone(),
                None => biotasks::fid::default_weights_path()?,
            };
            match InceptionFidScorer::load(&weights) {
                Ok(s) => Ok(Some(Box::new(s))),
                Err(bioexperiments::Error::Tasks(e @ biotasks::Error::MissingFidWeights { .. })) => {
                    Err(crate::cli::cli_err(format!(
                        "{}: {e}; or pass --no-fid to go without the FID (--score channel-stats or pixel-moments: cheap distances that are not an FID)",
                        a.name
                    )))
                }
                Err(e) => Err(e.into()),
            }
        }
        Some(other) => Err(crate::cli::cli_err(format!(
            "--score: unknown scorer `{other}` (available: fid, channel-stats, pixel-moments; the default is the FID)"
        ))),
    }
}

/// `reproduce mouse-gan`: the mouse-mimetic DCGAN per (class, window), or with
/// `--conditional` one conditional DCGAN per window over all the classes; scored per class.
fn run_mouse_gan(a: &ReproduceArgs, opts: &ReproduceOptions) -> CliResult {
    opts.overrides.validate()?;
    let mut cfg = if a.gan.conditional {
        MouseGanConfig::conditional_from_options(opts)
    } else {
        MouseGanConfig::from_options(opts)
    };
    if !a.gan.classes.is_empty() {
        cfg.classes = a.gan.classes.clone();
    }
    if !a.gan.window2d_width.is_empty() {
        cfg.windows = a.gan.window2d_width.clone();
    }
    if let Some(dir) = &a.gan.image_folder {
        cfg.image_folder = Some(dir.clone());
        cfg.image_size = 64;
    }
    cfg.validate()?;
    // After the settings (cheap to check), before the data and the training.
    let mut scorer = sample_scorer(a)?;
    let report = mouse_gan::run(opts, &cfg, scorer.as_deref_mut())?;
    for r in &report.results {
        println!(
            "{:<12} {:<9} r{:<3} usage {:5.1} %  {} {:.3}{}",
            r.class,
            r.window,
            r.repeat,
            100.0 * r.weight_usage,
            r.scorer,
            r.score,
            if r.converged { "" } else { "  (not converged)" }
        );
    }
    if report.missing == 0 {
        // The plot shows converged runs only: without one there is none.
        let plot = if opts.out.join("score_vs_usage.png").is_file() {
            " and the plot"
        } else {
            " (no plot: no run converged)"
        };
        println!(
            "{} run(s) trained now, {} already done; wrote summary.md, scores.csv{plot} to {}",
            report.ran,
            report.skipped,
            opts.out.display()
        );
    } else {
        println!(
            "{} run(s) trained now; {} of other shards still missing in {}",
            report.ran,
            report.missing,
            opts.out.display()
        );
    }
    Ok(())
}

/// `reproduce mouse-ddim`: standard vs mouse DDIM, sample grids as PNG beside the summary.
/// Scored by the FID unless `--no-fid` (then the pixel-moment distance, not an FID) or `--score`.
fn run_mouse_ddim(a: &ReproduceArgs, opts: &ReproduceOptions) -> CliResult {
    use bioexperiments::mouse_ddim::{grid_path, mouse_ddim, sample_grid, MouseDdimConfig};
    opts.overrides.validate()?;
    MouseDdimConfig::from_options(opts).validate()?;
    let mut scorer: Box<dyn SampleScorer> = sample_scorer(a)?.unwrap_or_else(|| Box::new(PixelMomentDistance));
    let result = mouse_ddim(opts, scorer.as_mut())?;
    for s in &result.settings {
        let (w, h, rgb) = sample_grid(&s.samples, 3, result.side, 8);
        let mut png = Vec::new();
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut png),
            &rgb,
            w as u32,
            h as u32,
            image::ExtendedColorType::Rgb8,
        )?;
        bionpy::write_atomic(&grid_path(&opts.out, &s.label), &png)?;
        println!(
            "{:<14} weight usage {:.4}  final loss {:.5}  {} {:.5}",
            s.label,
            s.weight_usage,
            s.losses.last().copied().unwrap_or(f64::NAN),
            result.scorer,
            s.score
        );
    }
    println!("wrote summary.md and the sample grids to {}", opts.out.display());
    Ok(())
}
