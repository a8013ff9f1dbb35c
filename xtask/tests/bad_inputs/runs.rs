//! `reproduce` (flags, provenance of a results folder, resume), `rnn-run` (configs in INI and
//! TOML, shards, checkpoints), `merge-results` and `plot-loss`.

use std::path::Path;
use std::process::Command;

use crate::fixtures::{mnist, write, GARBAGE};
use crate::harness::{case, with, Case, Group};

fn xtask(dir: &Path, args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "setup {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// The tiny schizo-mnist run every provenance case starts from.
const MNIST_RUN: &[&str] = &[
    "reproduce",
    "schizo-mnist",
    "--quick",
    "--no-progress",
    "--data",
    "d",
    "--out",
    "done",
];

pub fn reproduce() -> Group {
    let r = |extra: &[&str], names: &[&str]| with(&["reproduce"], extra, names);
    let gen = |extra: &[&str], names: &[&str]| with(&["generate"], extra, names);
    let mut cases: Vec<Case> = vec![
        // mouse-gan: no FID weights, bad radii / classes / scorer, flags of another target.
        r(
            &[
                "mouse-gan",
                "--quick",
                "--fid-weights",
                "none.safetensors",
                "--out",
                "r",
            ],
            &["none.safetensors", "cargo xtask fid-weights", "--no-fid"],
        ),
        r(
            &[
                "mouse-ddim",
                "--quick",
                "--fid-weights",
                "none.safetensors",
                "--out",
                "r",
            ],
            &["none.safetensors", "cargo xtask fid-weights", "--no-fid"],
        ),
        r(&["mouse-ddim", "--score", "fid2", "--out", "r"], &["--score", "fid2"]),
        r(&["schizo-mnist", "--no-fid", "--out", "r"], &["--no-fid", "mouse-gan"]),
        r(
            &["mouse-gan", "--no-fid", "--window2d-width", "1.5", "--out", "r"],
            &["window2d_width", "1.5"],
        ),
        r(
            &["mouse-gan", "--no-fid", "--classes", "cat,cat", "--out", "r"],
            &["classes", "cat"],
        ),
        r(&["mouse-gan", "--score", "fid2", "--out", "r"], &["--score", "fid2"]),
        r(
            &["schizo-mnist", "--classes", "cat", "--out", "r"],
            &["--classes", "mouse-gan"],
        ),
        // The conditional DCGAN: one class, or another target.
        r(
            &[
                "mouse-gan",
                "--no-fid",
                "--conditional",
                "--classes",
                "cat",
                "--out",
                "r",
            ],
            &["classes", "cat", "at least 2 classes"],
        ),
        r(
            &["mouse-ddim", "--conditional", "--out", "r"],
            &["--conditional", "mouse-gan"],
        ),
        // generate: a conditional model.toml with a bad class count, or without its classes.
        gen(
            &["--checkpoint", "gan_one_class", "--out", "g.png"],
            &["num_classes", "1"],
        ),
        gen(&["--checkpoint", "gan_no_classes", "--out", "g.png"], &["classes.toml"]),
        gen(&["--checkpoint", "nope", "--out", "g.png"], &["--checkpoint", "nope"]),
        gen(
            &["--checkpoint", ".", "--device", "gpu", "--out", "g.png"],
            &["--device gpu", "emulator"],
        ),
        gen(&["--checkpoint", ".", "--n", "0", "--out", "g.png"], &["--n", "0"]),
        gen(&["--checkpoint", ".", "--out", "g.jpg"], &["--out", "g.jpg"]),
        gen(&["--checkpoint", ".", "--out", "g.png"], &["model.toml"]),
        gen(
            &["--checkpoint", ".", "--steps", "0", "--out", "g.png"],
            &["--steps", "0"],
        ),
        gen(
            &["--checkpoint", ".", "--steps", "5", "--out", "g.png"],
            &["--steps", "denoiser.npz"],
        ),
        r(&["nope", "--out", "r"], &["nope"]),
        r(&[], &["NAME"]),
        r(
            &["schizo-mnist", "--base", "vgg16", "--out", "r"],
            &["--base", "bionet"],
        ),
        r(&["schizo-cifar", "--steps", "4", "--out", "r"], &["--steps"]),
        r(
            &["rnn-memory", "--convolution", "gabor", "--out", "r"],
            &["--convolution"],
        ),
        // Presets, overrides and shards.
        r(
            &["schizo-mnist", "--preset", "huge", "--out", "r"],
            &["--preset", "huge"],
        ),
        r(
            &["schizo-mnist", "--quick", "--preset", "paper", "--out", "r"],
            &["--quick", "paper"],
        ),
        r(&["schizo-mnist", "--repeats", "0", "--out", "r"], &["--repeats", "0"]),
        // Window shapes: unknown, repeated, or for a target without a SzDense layer.
        r(
            &["schizo-mnist", "--forms", "diagonal,stripe", "--out", "r"],
            &["forms", "stripe"],
        ),
        r(
            &["schizo-cifar", "--forms", "random,random", "--out", "r"],
            &["forms", "random"],
        ),
        r(
            &["mouse-cifar", "--forms", "random", "--out", "r"],
            &["--forms", "mouse-cifar"],
        ),
        r(
            &["schizo-cifar", "--cifar-format", "png", "--out", "r"],
            &["--cifar-format", "png"],
        ),
        r(
            &["schizo-mnist", "--precision", "tf32", "--out", "r"],
            &["--precision tf32", "device"],
        ),
        r(
            &[
                "schizo-mnist",
                "--device",
                "emulator",
                "--precision",
                "fp16",
                "--out",
                "r",
            ],
            &["--precision fp16"],
        ),
        r(
            &["schizo-mnist", "--device", "gpu", "--out", "r"],
            &["--device gpu", "emulator"],
        ),
        r(
            &["schizo-mnist", "--cifar-format", "binary", "--out", "r"],
            &["--cifar-format", "schizo-mnist"],
        ),
        r(
            &["schizo-mnist", "--preset", "readme-figure", "--out", "r"],
            &["readme-figure", "schizo-cifar"],
        ),
        r(
            &["synaptic-diversity", "--epochs", "0", "--out", "r"],
            &["--epochs", "0"],
        ),
        r(
            &["mouse-cifar", "--train-images", "99999999", "--out", "r"],
            &["--train-images", "99999999"],
        ),
        r(&["mouse-ddim", "--epochs", "0", "--out", "r"], &["--epochs", "0"]),
        r(
            &["mouse-ddim", "--no-fid", "--train-images", "99999999", "--out", "r"],
            &["--train-images", "99999999"],
        ),
        r(&["rnn-memory", "--shard", "2/2", "--out", "r"], &["--shard", "2/2"]),
        r(&["rnn-memory", "--shard", "1of2", "--out", "r"], &["--shard", "1of2"]),
        r(
            &["rnn-memory", "--train-images", "100", "--out", "r"],
            &["train_images", "100"],
        ),
        r(&["rnn-memory", "--full", "--epochs", "3", "--out", "r"], &["--epochs"]),
        // rnn-memory's own preset `converge` and its early-stopping flags.
        r(
            &["schizo-mnist", "--preset", "converge", "--out", "r"],
            &["preset", "converge", "rnn-memory"],
        ),
        r(
            &["rnn-memory", "--preset", "convergent", "--out", "r"],
            &["--preset", "convergent", "converge"],
        ),
        r(
            &["rnn-memory", "--quick", "--preset", "converge", "--out", "r"],
            &["--quick", "converge"],
        ),
        r(
            &["rnn-memory", "--preset", "converge", "--patience", "0", "--out", "r"],
            &["--patience", "0"],
        ),
        r(
            &[
                "rnn-memory",
                "--preset",
                "converge",
                "--patience",
                "9999999",
                "--out",
                "r",
            ],
            &["--patience", "9999999"],
        ),
        r(
            &["rnn-memory", "--preset", "converge", "--min-delta", "1.5", "--out", "r"],
            &["--min-delta", "1.5"],
        ),
        r(
            &["rnn-memory", "--preset", "converge", "--min-delta", "NaN", "--out", "r"],
            &["--min-delta", "NaN"],
        ),
        r(
            &["rnn-memory", "--preset", "converge", "--epochs", "0", "--out", "r"],
            &["--epochs", "0"],
        ),
        r(
            &[
                "rnn-memory",
                "--preset",
                "converge",
                "--min-epochs",
                "9999999",
                "--out",
                "r",
            ],
            &["--min-epochs", "9999999"],
        ),
        r(
            &["rnn-memory", "--patience", "10", "--out", "r"],
            &["--patience", "converge"],
        ),
        r(
            &["mouse-cifar", "--min-epochs", "10", "--out", "r"],
            &["--min-epochs", "converge"],
        ),
        r(
            &["schizo-mnist", "--min-delta", "0.01", "--out", "r"],
            &["--min-delta", "converge"],
        ),
        r(
            &["bionet", "--preset", "medium", "--smoke", "--out", "r"],
            &["--preset medium"],
        ),
        r(&["bionet", "--repeats", "2", "--smoke", "--out", "r"], &["--repeats"]),
        r(&["bionet", "--shard", "0/2", "--smoke", "--out", "r"], &["--shard"]),
        // vgg16-schizo: its sizes, --test-images (its and bionet's only), another target's flags,
        // no data.
        r(
            &["vgg16-schizo", "--preset", "huge", "--out", "r"],
            &["--preset", "huge"],
        ),
        r(
            &["vgg16-schizo", "--test-images", "0", "--out", "r"],
            &["--test-images", "0"],
        ),
        r(
            &["vgg16-schizo", "--test-images", "99999999", "--out", "r"],
            &["--test-images", "99999999"],
        ),
        r(&["vgg16-schizo", "--repeats", "0", "--out", "r"], &["--repeats", "0"]),
        r(
            &["schizo-cifar", "--test-images", "100", "--out", "r"],
            &["--test-images", "vgg16-schizo"],
        ),
        r(
            &["vgg16-schizo", "--cifar-format", "png", "--out", "r"],
            &["--cifar-format", "png"],
        ),
        r(
            &["vgg16-schizo", "--window2d-width", "0.5", "--out", "r"],
            &["--window2d-width", "mouse-gan"],
        ),
        r(
            &["vgg16-schizo", "--quick", "--data", "d", "--out", "r"],
            &["cifar10-jpeg"],
        ),
        // Merging reproduce folders: a job in two inputs; no partial merge.
        with(
            &["merge-results", "--inputs", "done", "done", "--out", "merged"],
            &[],
            &["done"],
        ),
        with(
            &[
                "merge-results",
                "--inputs",
                "done",
                "--out",
                "merged",
                "--allow-partial",
            ],
            &[],
            &["--allow-partial"],
        ),
        r(
            &["schizo-mnist", "--perturbations", "Uniform", "--out", "r"],
            &["--perturbations"],
        ),
        r(&["bionet", "--full", "--out", "r"], &["--full", "rnn-memory"]),
        r(&["rnn-memory", "--seed", "-1", "--out", "r"], &["-1"]),
        r(
            &["bionet", "--recurrent", "--recurrent-upstream", "--out", "r"],
            &["--recurrent"],
        ),
        r(&["bionet", "--convolution", "nope", "--smoke", "--out", "r"], &["nope"]),
        r(&["bionet", "--base", "alexnet", "--smoke", "--out", "r"], &["alexnet"]),
        r(
            &["bionet", "--bottleneck", "0", "--smoke", "--out", "r"],
            &["bottleneck", "0"],
        ),
        r(
            &["bionet", "--steps", "0", "--recurrent", "--smoke", "--out", "r"],
            &["steps", "0"],
        ),
        r(
            &["bionet", "--interpolation", "cubic-ish", "--smoke", "--out", "r"],
            &["cubic-ish"],
        ),
        r(&["bionet", "--trials", "0", "--smoke", "--out", "r"], &["trials", "0"]),
        r(&["bionet", "--epochs", "0", "--smoke", "--out", "r"], &["epochs", "0"]),
        r(
            &["bionet", "--train-images", "0", "--smoke", "--out", "r"],
            &["train", "0"],
        ),
        r(&["bionet", "--input-size", "0", "--smoke", "--out", "r"], &["size 0"]),
        r(
            &["bionet", "--perturbations", "Sparkle", "--smoke", "--out", "r"],
            &["Sparkle"],
        ),
        r(
            &["schizo-mnist", "--quick", "--data", "d", "--out", "file.txt"],
            &["file.txt"],
        ),
        // Provenance of a finished results folder.
        with(MNIST_RUN, &[], &["done", "--resume"]),
        with(MNIST_RUN, &["--resume", "--seed", "2"], &["seed"]),
        r(
            &[
                "schizo-mnist",
                "--quick",
                "--no-progress",
                "--data",
                "d",
                "--out",
                "done",
                "--resume",
            ],
            &[],
        ),
        r(
            &[
                "schizo-mnist",
                "--no-progress",
                "--data",
                "d",
                "--out",
                "done",
                "--resume",
            ],
            &["epochs", "train_images"],
        ),
        r(
            &[
                "schizo-mnist",
                "--quick",
                "--data",
                "d",
                "--out",
                "never_ran",
                "--resume",
            ],
            &["never_ran"],
        ),
        r(
            &[
                "schizo-mnist",
                "--quick",
                "--data",
                "d",
                "--out",
                "bad_config",
                "--resume",
            ],
            &["config.toml"],
        ),
        r(
            &[
                "schizo-mnist",
                "--quick",
                "--data",
                "d",
                "--out",
                "other_experiment",
                "--resume",
            ],
            &["schizo-mnist"],
        ),
        r(
            &["schizo-mnist", "--quick", "--data", "d", "--out", "foreign", "--resume"],
            &["config.toml"],
        ),
        r(
            &["schizo-mnist", "--quick", "--data", "d", "--out", "foreign"],
            &["foreign", "--resume"],
        ),
    ];
    // The valid resume of a finished run does nothing and succeeds: that case belongs to the
    // tests of resume, not here.
    cases.retain(|c| !c.names.is_empty());
    for (folder, name) in [
        ("ckpt_garbage_json", "checkpoint.json"),
        ("ckpt_garbage_npz", "checkpoint.npz"),
        ("ckpt_truncated_npz", "checkpoint.npz"),
        ("ckpt_torn", "epoch"),
    ] {
        cases.push(r(
            &[
                "schizo-mnist",
                "--quick",
                "--no-progress",
                "--data",
                "d",
                "--out",
                folder,
                "--resume",
            ],
            &[name],
        ));
    }
    Group {
        name: "reproduce",
        setup: |dir: &Path| {
            write(&dir.join("file.txt"), b"a file");
            mnist(&dir.join("d/mnist"), 64, 32);
            xtask(dir, MNIST_RUN);
            write(&dir.join("bad_config/config.toml"), b"experiment = [unclosed");
            write(&dir.join("bad_config/history.csv"), b"setting,repeat\n");
            copy_dir(&dir.join("done"), &dir.join("other_experiment"));
            let cfg = std::fs::read_to_string(dir.join("done/config.toml")).unwrap();
            write(
                &dir.join("other_experiment/config.toml"),
                cfg.replace("schizo-mnist", "schizo-cifar").as_bytes(),
            );
            write(&dir.join("foreign/notes.md"), b"someone else's folder");
            let spec = |k: usize| {
                format!("image_size = 32\nlatent_dim = 100\nbase_channels = 256\nnum_classes = {k}\n").into_bytes()
            };
            write(&dir.join("gan_one_class/model.toml"), &spec(1));
            write(&dir.join("gan_no_classes/model.toml"), &spec(2));
            // Interrupted runs with damaged checkpoints: the checkpoint of the first setting.
            let ckpt = |folder: &str| {
                copy_dir(&dir.join("done"), &dir.join(folder));
                // Forget that the runs finished, so that resume reads the checkpoints.
                let _ = std::fs::remove_file(dir.join(folder).join("history.csv"));
                let _ = std::fs::remove_dir_all(dir.join(folder).join("runs"));
                let mut found = Vec::new();
                let mut stack = vec![dir.join(folder).join("checkpoints")];
                while let Some(d) = stack.pop() {
                    for e in std::fs::read_dir(&d).unwrap() {
                        let p = e.unwrap().path();
                        if p.is_dir() {
                            stack.push(p);
                        } else {
                            found.push(p);
                        }
                    }
                }
                found.sort();
                found
            };
            for p in ckpt("ckpt_garbage_json")
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
            {
                write(p, GARBAGE);
            }
            for p in ckpt("ckpt_garbage_npz")
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "npz"))
            {
                write(p, GARBAGE);
            }
            for p in ckpt("ckpt_truncated_npz")
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "npz"))
            {
                let b = std::fs::read(p).unwrap();
                write(p, &b[..b.len() / 2]);
            }
            for p in ckpt("ckpt_torn")
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
            {
                let text = std::fs::read_to_string(p).unwrap();
                write(p, text.replacen("\"epoch\": ", "\"epoch\": 9", 1).as_bytes());
            }
        },
        cases,
    }
}

/// A valid TOML config of the tiny grid, for the cases that break one key.
pub const TINY: &str = "[net]\nnet_name = \"Mouse_Gamanut_Normalized\"\nrnn_size = 19\nnr_neurons = 1\nrand_partition = true\nrandom_w = false\n\
[trainvalidate]\nepochs = 2\niterations = 1\ninit = \"default\"\nfreeze_layer = false\nremap_w = true\n\
[trialparams]\ntrial_params = { task_name = \"nback_mem\", nr_of_trials = 24, trial_length = 5, train_size = 0.8 }\n\
[combosparams]\ncombos_params = { lr = [0.001], nonlinearity = [\"relu\"], optimizer = [\"Adam\"], n_back = [2, 3] }\n\
[run]\nseed = 1\nbatch_size = 16\ncheckpoint_every = 1\n";

/// `(file, replace, with, what the message must name)`: one broken key per config.
const BROKEN_KEYS: [(&str, &str, &str, &str); 26] = [
    ("no_net.toml", "[net]\nnet_name = \"Mouse_Gamanut_Normalized\"\nrnn_size = 19\nnr_neurons = 1\nrand_partition = true\nrandom_w = false\n", "", "net"),
    ("no_tv.toml", "[trainvalidate]\nepochs = 2\niterations = 1\ninit = \"default\"\nfreeze_layer = false\nremap_w = true\n", "", "trainvalidate"),
    ("no_epochs.toml", "epochs = 2\n", "", "epochs"),
    ("no_net_name.toml", "net_name = \"Mouse_Gamanut_Normalized\"\n", "", "net_name"),
    ("net_unknown.toml", "Mouse_Gamanut_Normalized", "Mouse_Gamanut", "Mouse_Gamanut"),
    ("rnn_size.toml", "rnn_size = 19", "rnn_size = 20", "rnn_size"),
    ("nr_neurons0.toml", "nr_neurons = 1", "nr_neurons = 0", "nr_neurons"),
    ("nr_neurons_huge.toml", "nr_neurons = 1", "nr_neurons = 100000000", "nr_neurons"),
    ("epochs0.toml", "epochs = 2", "epochs = 0", "epochs"),
    ("epochs_neg.toml", "epochs = 2", "epochs = -2", "epochs"),
    ("iterations0.toml", "iterations = 1", "iterations = 0", "iterations"),
    ("init.toml", "init = \"default\"", "init = \"glorot\"", "init"),
    ("task.toml", "nback_mem", "nback", "nback"),
    ("trials0.toml", "nr_of_trials = 24", "nr_of_trials = 0", "nr_of_trials"),
    ("trials_huge.toml", "nr_of_trials = 24", "nr_of_trials = 1000000000000", "nr_of_trials"),
    ("train_size.toml", "train_size = 0.8", "train_size = 1.5", "train_size"),
    ("train_size_nan.toml", "train_size = 0.8", "train_size = nan", "train_size"),
    ("trial_length.toml", "trial_length = 5", "trial_length = 0", "trial_length"),
    ("lr.toml", "lr = [0.001]", "lr = [-0.001]", "lr"),
    ("lr_nan.toml", "lr = [0.001]", "lr = [nan]", "lr"),
    ("nonlinearity.toml", "[\"relu\"]", "[\"gelu\"]", "nonlinearity"),
    ("optimizer.toml", "[\"Adam\"]", "[\"adam\"]", "optimizer"),
    ("n_back.toml", "n_back = [2, 3]", "n_back = [5]", "n_back"),
    ("batch0.toml", "batch_size = 16", "batch_size = 0", "batch_size"),
    ("unknown_key.toml", "seed = 1", "seed = 1\nthreads = 4", "threads"),
    ("unknown_section.toml", "[run]", "[runn]", "runn"),
];

pub fn rnn_run() -> Group {
    let run =
        |config: &str, names: &[&str]| case(&["rnn-run", "--config", config, "--out", "r", "--no-progress"], names);
    let mut cases: Vec<Case> = BROKEN_KEYS
        .iter()
        .map(|(file, _, _, name)| run(file, &[file, name]))
        .collect();
    cases.extend([
        run("missing.toml", &["missing.toml"]),
        run("garbage.toml", &["garbage.toml"]),
        run("garbage.ini", &["garbage.ini"]),
        run("empty.toml", &["empty.toml"]),
        run("config.json", &["config.json"]),
        run("binary.ini", &["binary.ini"]),
        run("dup_section.ini", &["net"]),
        run("unclosed_dict.ini", &["combos_params"]),
        run("latents_missing.toml", &["nope.npy"]),
        run("network_missing.toml", &["no_such_folder"]),
        run("network_garbage.toml", &["C_Mouse_Gamanut_Normalized.npy"]),
        case(
            &["rnn-run", "--config", "tiny.toml", "--out", "r", "--shard", "3/2"],
            &["3/2"],
        ),
        case(
            &["rnn-run", "--config", "tiny.toml", "--out", "r", "--shard", "0/0"],
            &["0/0"],
        ),
        case(
            &["rnn-run", "--config", "tiny.toml", "--out", "r", "--shard", "a"],
            &["a"],
        ),
        case(
            &["rnn-run", "--config", "tiny.toml", "--out", "r", "--max-epochs", "0"],
            &["max", "0"],
        ),
        case(
            &["rnn-run", "--config", "tiny.toml", "--out", "file.txt"],
            &["file.txt"],
        ),
        case(
            &["rnn-run", "--config", "tiny.toml", "--out", "other_config"],
            &["config"],
        ),
        case(
            &[
                "rnn-run",
                "--config",
                "tiny.toml",
                "--out",
                "resume_garbage_json",
                "--no-progress",
            ],
            &["resume_iter_0.json"],
        ),
        case(
            &[
                "rnn-run",
                "--config",
                "tiny.toml",
                "--out",
                "resume_garbage_npz",
                "--no-progress",
            ],
            &["resume_iter_0.npz"],
        ),
        case(
            &[
                "rnn-run",
                "--config",
                "tiny.toml",
                "--out",
                "resume_torn",
                "--no-progress",
            ],
            &["epoch"],
        ),
    ]);
    Group {
        name: "rnn-run",
        setup: |dir: &Path| {
            write(&dir.join("tiny.toml"), TINY.as_bytes());
            for (file, from, to, _) in BROKEN_KEYS {
                assert!(TINY.contains(from), "{file}: {from:?} is not in the tiny config");
                write(&dir.join(file), TINY.replacen(from, to, 1).as_bytes());
            }
            write(&dir.join("garbage.toml"), GARBAGE);
            write(&dir.join("garbage.ini"), b"[net\nthis = is = not ini");
            write(&dir.join("empty.toml"), b"");
            write(&dir.join("config.json"), b"{}");
            write(&dir.join("binary.ini"), &[0xff, 0xfe, 0, 1, 2, 3, 0x80]);
            write(
                &dir.join("dup_section.ini"),
                b"[net]\nrnn_size = 19\n[net]\nrnn_size = 19\n",
            );
            write(
                &dir.join("unclosed_dict.ini"),
                b"[net]\nnet_name = Mouse_Gamanut_Normalized\nrnn_size = 19\nnr_neurons = 1\nrand_partition = True\nrandom_w = False\n[trainvalidate]\nepochs = 2\niterations = 1\ninit = default\nfreeze_layer = False\nremap_w = True\n[trialparams]\ntrial_params = {'task_name': 'seq_mem'}\n[combosparams]\ncombos_params = {'pattern_length': [3]\n",
            );
            let pic = TINY
                .replace("task_name = \"nback_mem\"", "task_name = \"pic_latent_mem\"")
                .replace("[trialparams]", "[paths]\npath_to_latents = \"nope.npy\"\npath_to_latent_labels = \"nope_labels.npy\"\n[trialparams]");
            write(&dir.join("latents_missing.toml"), pic.as_bytes());
            let net = TINY.replace(
                "[trialparams]",
                "[paths]\npath_to_network = \"no_such_folder\"\n[trialparams]",
            );
            write(&dir.join("network_missing.toml"), net.as_bytes());
            let net = TINY.replace("[trialparams]", "[paths]\npath_to_network = \"nets\"\n[trialparams]");
            write(&dir.join("network_garbage.toml"), net.as_bytes());
            write(&dir.join("nets/C_Mouse_Gamanut_Normalized.npy"), GARBAGE);
            write(&dir.join("file.txt"), b"a file");
            // A folder of another grid, and interrupted runs with damaged resume state.
            xtask(
                dir,
                &[
                    "rnn-run",
                    "--config",
                    "tiny.toml",
                    "--out",
                    "partial",
                    "--no-progress",
                    "--max-epochs",
                    "1",
                ],
            );
            let other = TINY.replace("seed = 1", "seed = 2");
            write(&dir.join("other.toml"), other.as_bytes());
            xtask(
                dir,
                &[
                    "rnn-run",
                    "--config",
                    "other.toml",
                    "--out",
                    "other_config",
                    "--no-progress",
                    "--max-epochs",
                    "1",
                ],
            );
            for (folder, file, edit) in [
                ("resume_garbage_json", "resume_iter_0.json", 0),
                ("resume_garbage_npz", "resume_iter_0.npz", 0),
                ("resume_torn", "resume_iter_0.json", 1),
            ] {
                copy_dir(&dir.join("partial"), &dir.join(folder));
                let p = dir.join(folder).join("0/checkpoints").join(file);
                if edit == 0 {
                    write(&p, GARBAGE);
                } else {
                    let text = std::fs::read_to_string(&p).unwrap();
                    write(&p, text.replacen("\"epoch\": ", "\"epoch\": 9", 1).as_bytes());
                }
            }
        },
        cases,
    }
}

pub fn merge_plot() -> Group {
    let merge = |inputs: &[&str], names: &[&str]| {
        let mut args = vec!["merge-results", "--out", "merged", "--inputs"];
        args.extend_from_slice(inputs);
        case(&args, names)
    };
    let plot = |extra: &[&str], names: &[&str]| with(&["plot-loss"], extra, names);
    let cases: Vec<Case> = vec![
        merge(&["missing"], &["missing"]),
        merge(&["file.txt"], &["file.txt"]),
        merge(&["empty_dir"], &["empty_dir"]),
        merge(&["a", "other_grid"], &["config"]),
        // merge-results rebuilds history.csv and the arrays from the run files: those are read.
        merge(&["bad_run_csv"], &["iter_0.csv"]),
        merge(&["a2", "bad_run_csv_shard"], &["iter_1.csv"]),
        merge(&["a", "no_config"], &["config.toml"]),
        case(&["merge-results", "--out", "merged", "--inputs", "a", "a"], &["a"]),
        case(&["merge-results", "--out", "a", "--inputs", "a"], &["a"]),
        case(&["merge-results", "--out", "existing", "--inputs", "a"], &["existing"]),
        case(&["merge-results", "--out", "merged"], &["--inputs"]),
        plot(&["--results", "a", "--labels", "x", "y", "--out", "p"], &["2 labels"]),
        plot(&["--results", "missing", "--labels", "x", "--out", "p"], &["missing"]),
        plot(
            &["--results", "a", "--labels", "x", "--out", "p", "--start", "99"],
            &["start = 99"],
        ),
        plot(
            &["--results", "bad_npy", "--labels", "x", "--out", "p"],
            &["train_loss_all.npy"],
        ),
        plot(
            &["--results", "empty_dir", "--labels", "x", "--out", "p"],
            &["empty_dir"],
        ),
        plot(
            &["--results", "a", "other_task", "--labels", "x", "y", "--out", "p"],
            &["task"],
        ),
        plot(&["--results", "a", "--labels", "x", "--out", "file.txt"], &["file.txt"]),
    ];
    Group {
        name: "merge-plot",
        setup: |dir: &Path| {
            write(&dir.join("tiny.toml"), TINY.as_bytes());
            xtask(
                dir,
                &["rnn-run", "--config", "tiny.toml", "--out", "a", "--no-progress"],
            );
            write(
                &dir.join("other.toml"),
                TINY.replace("lr = [0.001]", "lr = [0.01]").as_bytes(),
            );
            xtask(
                dir,
                &[
                    "rnn-run",
                    "--config",
                    "other.toml",
                    "--out",
                    "other_grid",
                    "--no-progress",
                ],
            );
            let seq = TINY
                .replace("nback_mem", "seq_mem")
                .replace("n_back = [2, 3]", "pattern_length = [2]");
            write(&dir.join("seq.toml"), seq.as_bytes());
            xtask(
                dir,
                &[
                    "rnn-run",
                    "--config",
                    "seq.toml",
                    "--out",
                    "other_task",
                    "--no-progress",
                ],
            );
            copy_dir(&dir.join("a"), &dir.join("bad_csv"));
            write(
                &dir.join("bad_csv/0/history.csv"),
                b"epoch,train_loss\n1,not-a-number,\n",
            );
            copy_dir(&dir.join("a"), &dir.join("bad_run_csv"));
            write(
                &dir.join("bad_run_csv/0/runs/iter_0.csv"),
                b"epoch,train_loss\n1,not-a-number,\n",
            );
            // A second shard of a two-iteration grid whose run file is damaged.
            let two = TINY.replace("iterations = 1", "iterations = 2");
            write(&dir.join("two.toml"), two.as_bytes());
            xtask(
                dir,
                &[
                    "rnn-run",
                    "--config",
                    "two.toml",
                    "--out",
                    "bad_run_csv_shard",
                    "--shard",
                    "1/2",
                    "--no-progress",
                ],
            );
            xtask(
                dir,
                &[
                    "rnn-run",
                    "--config",
                    "two.toml",
                    "--out",
                    "a2",
                    "--shard",
                    "0/2",
                    "--no-progress",
                ],
            );
            write(&dir.join("bad_run_csv_shard/0/runs/iter_1.csv"), GARBAGE);
            copy_dir(&dir.join("a"), &dir.join("bad_npy"));
            write(&dir.join("bad_npy/0/train_loss_all.npy"), GARBAGE);
            copy_dir(&dir.join("a"), &dir.join("nan_loss"));
            let h = std::fs::read_to_string(dir.join("a/0/history.csv")).unwrap();
            let mut lines: Vec<String> = h.lines().map(str::to_string).collect();
            if let Some(last) = lines.last_mut() {
                // iteration,epoch,train_loss,...: the train loss of the last epoch.
                let mut cells: Vec<&str> = last.split(',').collect();
                cells[2] = "NaN";
                *last = cells.join(",");
            }
            write(
                &dir.join("nan_loss/0/history.csv"),
                (lines.join("\n") + "\n").as_bytes(),
            );
            copy_dir(&dir.join("a"), &dir.join("no_config"));
            std::fs::remove_file(dir.join("no_config/config.toml")).unwrap();
            std::fs::create_dir_all(dir.join("empty_dir")).unwrap();
            write(&dir.join("existing/keep.txt"), b"keep me");
            write(&dir.join("file.txt"), b"a file");
        },
        cases,
    }
}
