//! `rnn_runs`: config parsing (INI and TOML), grid order, shards, the runner end to end on a
//! tiny grid, resume, merge and plot-loss.

use std::path::{Path, PathBuf};

use bioexperiments::rnn_runs::layout::{finished_jobs, run_file};
use bioexperiments::rnn_runs::{
    combinations, jobs, merge_results, plot_loss, run, Job, Nonlinearity, OptimizerName, PlotLossOptions, RunOptions,
    RunsConfig, Shard, TaskName,
};
use bioexperiments::Error;

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/configs")
}

fn ini(text: &str) -> bioexperiments::Result<RunsConfig> {
    RunsConfig::from_ini(text, Path::new("test.ini"))
}

fn toml_cfg(text: &str) -> bioexperiments::Result<RunsConfig> {
    RunsConfig::from_toml(text, Path::new("test.toml"))
}

/// The `Error::Config` key of a failed parse.
fn err_key(r: bioexperiments::Result<RunsConfig>) -> String {
    match r {
        Err(Error::Config { key, .. }) => key,
        Err(other) => panic!("expected a config error, got {other}"),
        Ok(_) => panic!("expected a config error, got a config"),
    }
}

/// The two sections every config needs besides the task and the grid, as upstream's README has them.
const REQUIRED_INI: &str =
    "[net]\nnet_name = Marmoset_Normalized\nrnn_size = 55\nnr_neurons = 4\nrand_partition = True\nrandom_w = False\n\
[trainvalidate]\nepochs = 500\niterations = 5\ninit = default\nfreeze_layer = False\nremap_w = True\n";

/// Upstream's README config, verbatim (paths included).
const README_INI: &str = "[paths]
path_to_network = /Users/alexandrosgoulas/bio2art/connectomes/
path_to_results = /Users/alexandrosgoulas/rnn-bio2art-sequence-mem/test
pretrained = 

[net]
net_name = Marmoset_Normalized
rnn_size = 55
nr_neurons = 4
rand_partition = True
random_w = False

[trainvalidate]
epochs = 500
iterations = 5
init = default
freeze_layer = False
remap_w = True

[trialparams]
trial_params = {\"task_name\":\"seq_mem\", \"nr_of_trials\":500, \"train_size\":0.8}

[combosparams]
combos_params = {\"lr\":[0.0001,0.000001], \"nonlinearity\":[\"relu\",\"tanh\"], \"optimizer\":[\"Adam\",\"RMSprop\"], \"pattern_length\": [3, 5, 10]}

[pretrainedparams]
pretrained_epoch = 0
pretrained_iteration = 0
";

#[test]
fn shipped_ini_and_toml_give_equal_configs() {
    let a = RunsConfig::load(&configs_dir().join("seq_mem.ini")).unwrap();
    let b = RunsConfig::load(&configs_dir().join("seq_mem.toml")).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.trainvalidate.epochs, 500);
    assert_eq!(a.task_params(), &[3, 5, 10]);
    // The canonical TOML round-trips.
    let again = toml_cfg(&a.to_toml().unwrap()).unwrap();
    assert_eq!(again, a);
    for name in ["nback_mem.ini", "pic_latent_mem.ini", "tiny.toml", "tiny_rand.toml"] {
        RunsConfig::load(&configs_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn upstream_readme_config_parses_with_its_values() {
    let c = ini(README_INI).unwrap();
    assert_eq!(
        c.paths.path_to_results,
        "/Users/alexandrosgoulas/rnn-bio2art-sequence-mem/test"
    );
    assert_eq!(c.paths.pretrained, "");
    assert_eq!(c.net.net_name, "Marmoset_Normalized");
    assert_eq!((c.net.rnn_size, c.net.nr_neurons), (55, 4));
    assert!(c.net.rand_partition && !c.net.random_w);
    assert!(c.trainvalidate.remap_w && !c.trainvalidate.freeze_layer);
    assert_eq!(c.trialparams.trial_params.task_name, TaskName::SeqMem);
    assert_eq!(c.trialparams.trial_params.nr_of_trials, 500);
    assert_eq!(c.combosparams.combos_params.lr, vec![1e-4, 1e-6]);
    // [net] and [trainvalidate] are required with every key (upstream's KeyError), so a config
    // without them cannot start 500 epochs of a network nobody named.
    let tail = &README_INI[README_INI.find("[trialparams]").unwrap()..];
    assert_eq!(err_key(ini(tail)), "[net]");
    let no_tv = README_INI.replace(
        "[trainvalidate]\nepochs = 500\niterations = 5\ninit = default\nfreeze_layer = False\nremap_w = True\n",
        "",
    );
    assert_ne!(no_tv, README_INI);
    assert_eq!(err_key(ini(&no_tv)), "[trainvalidate]");
    assert_eq!(
        err_key(ini(&README_INI.replace("epochs = 500\n", ""))),
        "[trainvalidate] epochs"
    );
    assert_eq!(
        err_key(ini(&README_INI.replace("net_name = Marmoset_Normalized\n", ""))),
        "[net] net_name"
    );
}

#[test]
fn python_literals_and_getboolean_forms_are_accepted() {
    let text = "[net]\nnet_name = Marmoset_Normalized\nrnn_size = 55\nnr_neurons = 4\nrandom_w = yes\nrand_partition = 0\n\
        [trainvalidate]\nepochs = 5\niterations = 1\ninit = default\nfreeze_layer = no\nremap_w = on\n[trialparams]\ntrial_params = {'task_name': 'pic_latent_mem', 'rescale': True,\n    'trial_length': 5}\n[combosparams]\ncombos_params = {'lr': [1e-3], 'nonlinearity': ['tanh'], 'optimizer': ['SGD'], 'n_back': (2, 4)}\n";
    let c = ini(text).unwrap();
    assert!(c.net.random_w && !c.net.rand_partition);
    assert_eq!(c.combosparams.combos_params.nonlinearity, vec![Nonlinearity::Tanh]);
    assert_eq!(c.combosparams.combos_params.optimizer, vec![OptimizerName::Sgd]);
    assert_eq!(c.task_params(), &[2, 4]);
}

#[test]
fn bad_configs_name_the_offending_key() {
    let base = |extra: &str, combos: &str| {
        format!("{REQUIRED_INI}{extra}\n[trialparams]\ntrial_params = {{\"task_name\":\"nback_mem\"}}\n[combosparams]\ncombos_params = {combos}\n")
    };
    let ok_combos = "{\"n_back\": [2]}";
    // The valid base with its first `from` replaced by `to`.
    let edited = |from: &str, to: &str| {
        let ok = base("", ok_combos);
        assert!(ok.contains(from), "{from:?} is not in the base config");
        ok.replacen(from, to, 1)
    };
    assert!(ini(&base("", ok_combos)).is_ok());
    assert_eq!(
        err_key(ini(&edited("rnn_size = 55", "rnn_sise = 55"))),
        "[net] rnn_sise"
    );
    assert_eq!(
        err_key(ini(&edited("rnn_size = 55", "rnn_size = many"))),
        "[net] rnn_size"
    );
    assert_eq!(
        err_key(ini(&edited("random_w = False", "random_w = maybe"))),
        "[net] random_w"
    );
    assert_eq!(err_key(ini(&base("[nett]\nx = 1", ok_combos))), "[nett]");
    assert_eq!(
        err_key(ini(&edited("epochs = 500", "epochs = 0"))),
        "[trainvalidate] epochs"
    );
    assert_eq!(
        err_key(ini(&edited("init = default", "init = glorot"))),
        "[trainvalidate] init"
    );
    assert_eq!(
        err_key(ini(&edited("iterations = 5\n", ""))),
        "[trainvalidate] iterations"
    );
    assert_eq!(
        err_key(ini(&base("[paths]\npretrained = old/", ok_combos))),
        "[paths] pretrained"
    );
    assert_eq!(
        err_key(ini(&edited("rnn_size = 55", "rnn_size = 1\nrnn_size = 2"))),
        "[net] rnn_size"
    );
    assert!(err_key(ini(&base("", "{\"n_back\": [2], \"lrr\": [1]}"))).starts_with("[combosparams] combos_params"));
    assert!(err_key(ini(&base("", "{\"n_back\": [2], \"optimizer\": [\"adam\"]}")))
        .starts_with("[combosparams] combos_params"));
    assert_eq!(
        err_key(ini(&base("", "{\"pattern_length\": [2]}"))),
        "[combosparams] combos_params.pattern_length"
    );
    assert_eq!(
        err_key(ini(&base("", "{\"n_back\": [5]}"))),
        "[combosparams] combos_params.n_back"
    );
    assert_eq!(
        err_key(ini(&base("", "{\"n_back\": [2], \"lr\": [-1]}"))),
        "[combosparams] combos_params.lr"
    );
    assert_eq!(
        err_key(ini(&base("", "{\"n_back\": [2]"))),
        "[combosparams] combos_params"
    );
    assert_eq!(
        err_key(ini(&format!(
            "{REQUIRED_INI}[combosparams]\ncombos_params = {{\"n_back\": [2]}}\n"
        ))),
        "[trialparams]"
    );
    assert_eq!(
        err_key(ini(
            &format!("{REQUIRED_INI}[trialparams]\ntrial_params = {{\"nr_of_trials\": 5}}\n[combosparams]\ncombos_params = {{\"n_back\": [2]}}\n")
        )),
        "[trialparams] trial_params.task_name"
    );
    // TOML: the same rules, the key path from the parser's span.
    let t = "[net]\nnet_name = \"Marmoset_Normalized\"\nrnn_size = 55\nnr_neurons = 4\nrand_partition = true\nrandom_w = false\n\
             [trainvalidate]\nepochs = 500\niterations = 5\ninit = \"default\"\nfreeze_layer = false\nremap_w = true\n\
             [trialparams]\ntrial_params = { task_name = \"seq_mem\" }\n[combosparams]\ncombos_params = { pattern_length = [3] }\n";
    assert!(toml_cfg(t).is_ok());
    assert_eq!(
        err_key(toml_cfg(&t.replace("rnn_size = 55", "rnn_size = \"55\""))),
        "net.rnn_size"
    );
    assert_eq!(
        err_key(toml_cfg(&format!("{t}[run]\nseed = 1\nthreads = 4\n"))),
        "run.threads"
    );
    assert_eq!(
        err_key(toml_cfg(
            &t.replace("train_size", "x")
                .replace("\"seq_mem\"", "\"seq_mem\", train_size = 1.5")
        )),
        "[trialparams] trial_params.train_size"
    );
    // Unknown extension.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.json");
    std::fs::write(&p, "{}").unwrap();
    assert_eq!(err_key(RunsConfig::load(&p)), "file");
}

/// The `toml` 0.8 writer panics (in overflow-checked builds) on a run of 256 quotes in a key or
/// text (toml-rs/toml#1188; found by the `config_ini` fuzz target): such configs are refused
/// with the key, in both formats, and `toml_of` refuses to write one.
#[test]
fn a_run_of_256_quotes_is_refused_naming_the_key() {
    let combos = "[trialparams]\ntrial_params = {\"task_name\":\"nback_mem\"}\n[combosparams]\ncombos_params = {\"n_back\": [2]}\n";
    let quotes = "\"".repeat(256);
    assert_eq!(
        err_key(ini(&format!("[net]\nnet_name = x{quotes}\n{combos}"))),
        "[net] net_name"
    );
    assert_eq!(
        err_key(ini(&format!("[net]\nk{quotes} = 1\n{combos}"))).len(),
        "[net] k".len() + 256
    );
    let full = REQUIRED_INI.replace(
        "net_name = Marmoset_Normalized",
        &format!("net_name = x{}", "\"".repeat(255)),
    );
    assert!(ini(&format!("{full}{combos}")).is_ok());
    let t = "[trialparams]\ntrial_params = { task_name = \"seq_mem\" }\n[combosparams]\ncombos_params = { pattern_length = [3] }\n";
    let singles = "'".repeat(256);
    assert_eq!(
        err_key(toml_cfg(&format!(
            "[net]\nnet_name = \"{singles}\"\nrnn_size = 55\nnr_neurons = 4\nrand_partition = true\nrandom_w = false\n\
             [trainvalidate]\nepochs = 5\niterations = 1\ninit = \"default\"\nfreeze_layer = false\nremap_w = true\n{t}"
        ))),
        "[net] net_name"
    );
    #[derive(serde::Serialize)]
    struct Settings {
        name: String,
    }
    let e = bioexperiments::common::toml_of(&Settings { name: quotes }).unwrap_err();
    assert!(e.to_string().contains("name"), "{e}");
}

#[test]
fn grid_order_is_upstreams_product_order() {
    let c = ini(README_INI).unwrap();
    let g = combinations(&c);
    assert_eq!(g.len(), 24);
    let tuples: Vec<String> = g.iter().map(|c| c.upstream_tuple()).collect();
    assert_eq!(tuples[0], "(0.0001, 'relu', 'Adam', 3)");
    assert_eq!(tuples[1], "(0.0001, 'relu', 'Adam', 5)");
    assert_eq!(tuples[3], "(0.0001, 'relu', 'RMSprop', 3)");
    assert_eq!(tuples[6], "(0.0001, 'tanh', 'Adam', 3)");
    assert_eq!(tuples[12], "(1e-06, 'relu', 'Adam', 3)");
    assert_eq!(tuples[23], "(1e-06, 'tanh', 'RMSprop', 10)");
    assert!(g.iter().enumerate().all(|(i, c)| c.index == i));
    let j = jobs(24, 5);
    assert_eq!(j.len(), 120);
    assert_eq!(
        j[7],
        Job {
            combination: 1,
            iteration: 2
        }
    );
}

#[test]
fn shards_partition_the_jobs() {
    let all = jobs(5, 3);
    for n in 1..=8 {
        let mut seen = Vec::new();
        for i in 0..n {
            let part = Shard::new(i, n).unwrap().select(&all);
            // Balanced within one job.
            assert!(part.len() == all.len() / n || part.len() == all.len().div_ceil(n));
            seen.extend(part);
        }
        seen.sort();
        assert_eq!(seen, all, "n = {n}");
    }
    assert_eq!(
        "1/3".parse::<Shard>().unwrap().select(&all)[..2],
        [
            Job {
                combination: 0,
                iteration: 1
            },
            Job {
                combination: 1,
                iteration: 1
            }
        ]
    );
    assert!(Shard::new(3, 3).is_err());
}

/// 2 combinations × 2 iterations × 2 epochs on Mouse_Gamanut × 1 neuron (H = 19).
fn tiny(task: &str, random_w: bool) -> RunsConfig {
    let combos = if task == "seq_mem" {
        "pattern_length = [2, 3]"
    } else {
        "n_back = [2, 3]"
    };
    toml_cfg(&format!(
        "[net]\nnet_name = \"Mouse_Gamanut_Normalized\"\nrnn_size = 19\nnr_neurons = 1\nrand_partition = true\nrandom_w = {random_w}\n\
         [trainvalidate]\nepochs = 2\niterations = 2\ninit = \"default\"\nfreeze_layer = false\nremap_w = true\n\
         [trialparams]\ntrial_params = {{ task_name = \"{task}\", nr_of_trials = 24 }}\n\
         [combosparams]\ncombos_params = {{ lr = [0.001], nonlinearity = [\"relu\"], optimizer = [\"Adam\"], {combos} }}\n\
         [run]\nbatch_size = 16\ncheckpoint_every = 1\n"
    ))
    .unwrap()
}

fn opts(out: &Path) -> RunOptions {
    RunOptions {
        out: Some(out.to_path_buf()),
        progress: false,
        ..RunOptions::default()
    }
}

fn npy(path: &Path) -> bionpy::NpyArray<f64> {
    bionpy::read_npy::<f64>(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn tiny_run_shards_merge_resume_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cfg = tiny("nback_mem", false);
    let full = root.join("full");
    let report = run(&cfg, &opts(&full)).unwrap();
    assert_eq!(
        (report.total_jobs, report.ran.len(), report.complete_combinations),
        (4, 4, 2)
    );
    assert_eq!(report.hidden, 19);
    for c in 0..2 {
        let d = full.join(c.to_string());
        for name in [
            "train_loss_all",
            "validate_loss_all",
            "train_metrics_all",
            "validate_metrics_all",
        ] {
            let a = npy(&d.join(format!("{name}.npy")));
            assert_eq!(a.shape, vec![2, 2], "{name}");
            assert!(a.data.iter().all(|v| v.is_finite()));
        }
        let acc = npy(&d.join("validate_metrics_all.npy"));
        assert!(acc.data.iter().all(|&v| (0.0..=100.0).contains(&v)));
        for it in 0..2 {
            for e in 1..=2 {
                assert!(d.join(format!("checkpoints/model_epoch_{e}_iter_{it}.npz")).is_file());
            }
            assert!(!d.join(format!("checkpoints/resume_iter_{it}.npz")).exists());
        }
        let history = std::fs::read_to_string(d.join("history.csv")).unwrap();
        assert_eq!(history.lines().count(), 1 + 2 * 2);
    }
    let index = std::fs::read_to_string(full.join("folder_index.txt")).unwrap();
    assert_eq!(index, "0 (0.001, 'relu', 'Adam', 2)\n1 (0.001, 'relu', 'Adam', 3)\n");
    // A second call finds everything done.
    let again = run(&cfg, &opts(&full)).unwrap();
    assert_eq!((again.ran.len(), again.skipped.len()), (0, 4));
    // Another configuration is refused in the same folder.
    assert!(matches!(
        run(&tiny("nback_mem", true), &opts(&full)),
        Err(Error::Config { .. })
    ));

    // Shards, then merge: the same numbers as the single run.
    let shards: Vec<PathBuf> = (0..3).map(|i| root.join(format!("s{i}"))).collect();
    for (i, s) in shards.iter().enumerate() {
        let r = run(
            &cfg,
            &RunOptions {
                shard: Shard::new(i, 3).unwrap(),
                ..opts(s)
            },
        )
        .unwrap();
        assert_eq!(r.shard_jobs, if i == 0 { 2 } else { 1 });
    }
    let merged = root.join("merged");
    let m = merge_results(&shards, &merged, false).unwrap();
    assert_eq!((m.jobs, m.complete_combinations), (4, 2));
    for c in ["0", "1"] {
        for name in ["train_loss_all.npy", "validate_metrics_all.npy", "history.csv"] {
            assert_eq!(
                std::fs::read(full.join(c).join(name)).unwrap(),
                std::fs::read(merged.join(c).join(name)).unwrap(),
                "{c}/{name}"
            );
        }
        assert!(merged.join(c).join("checkpoints/model_epoch_2_iter_1.npz").is_file());
    }
    assert_eq!(finished_jobs(&merged, 2, 2).unwrap(), jobs(2, 2));
    // Missing and duplicate jobs are errors; --allow-partial merges what exists.
    assert!(matches!(
        merge_results(&shards[..2], &root.join("m2"), false),
        Err(Error::Merge { .. })
    ));
    let partial = merge_results(&shards[..2], &root.join("m3"), true).unwrap();
    assert_eq!(
        partial.missing,
        vec![Job {
            combination: 1,
            iteration: 0
        }]
    );
    assert_eq!(partial.complete_combinations, 1);
    let dup = vec![shards[0].clone(), shards[1].clone(), shards[2].clone(), full.clone()];
    assert!(matches!(
        merge_results(&dup, &root.join("m4"), false),
        Err(Error::Merge { .. })
    ));
    assert!(merge_results(&shards, &merged, false).is_err(), "non-empty output");

    // Resume: stop after 3 epochs (job (0,0) done, job (0,1) at epoch 1), then continue.
    let resumed = root.join("resumed");
    let first = run(
        &cfg,
        &RunOptions {
            max_epochs: Some(3),
            ..opts(&resumed)
        },
    )
    .unwrap();
    assert_eq!(
        first.ran,
        vec![Job {
            combination: 0,
            iteration: 0
        }]
    );
    assert_eq!(
        first.unfinished,
        vec![Job {
            combination: 0,
            iteration: 1
        }]
    );
    assert!(!run_file(
        &resumed,
        Job {
            combination: 0,
            iteration: 1
        }
    )
    .exists());
    assert!(resumed.join("0/checkpoints/resume_iter_1.npz").is_file());
    let second = run(&cfg, &opts(&resumed)).unwrap();
    assert_eq!(
        second.resumed,
        vec![Job {
            combination: 0,
            iteration: 1
        }]
    );
    assert_eq!(second.complete_combinations, 2);
    for c in ["0", "1"] {
        assert_eq!(
            std::fs::read(full.join(c).join("history.csv")).unwrap(),
            std::fs::read(resumed.join(c).join("history.csv")).unwrap(),
            "resumed run {c} differs from the uninterrupted one"
        );
    }

    // plot-loss: bio vs rand.
    let rand = root.join("rand");
    run(&tiny("nback_mem", true), &opts(&rand)).unwrap();
    let figs = root.join("figs");
    let labels = vec!["bio".to_string(), "rand".to_string()];
    let summary = plot_loss(&[full.clone(), rand], &labels, &figs, &PlotLossOptions::default()).unwrap();
    assert_eq!(summary.len(), 2 * 2 * 2);
    assert!(summary.iter().all(|r| r.min_epoch == 2 && r.epoch_99 == 2));
    for f in [
        "combination_0_loss.png",
        "combination_1_loss.svg",
        "combination_0_accuracy.png",
        "min_val_loss.png",
        "min_epoch.svg",
        "epoch_99.png",
        "summary.csv",
        "summary_by_label.csv",
    ] {
        assert!(figs.join(f).is_file(), "{f}");
    }
    let csv = std::fs::read_to_string(figs.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 8);
    // A folder with unfinished combinations (one shard) is refused with a clear error.
    match plot_loss(
        &[shards[0].clone()],
        &labels[..1],
        &root.join("f3"),
        &PlotLossOptions::default(),
    ) {
        Err(Error::Data { detail, .. }) => assert!(detail.contains("not all its runs are finished"), "{detail}"),
        other => panic!("expected a data error, got {other:?}"),
    }
    // Folders of different grids are refused.
    let seq = root.join("seq");
    run(&tiny("seq_mem", false), &opts(&seq)).unwrap();
    assert!(plot_loss(&[full, seq], &labels, &root.join("f2"), &PlotLossOptions::default()).is_err());
}

#[test]
fn seq_mem_runs_without_accuracy_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seq");
    let mut cfg = tiny("seq_mem", true);
    cfg.trainvalidate.iterations = 1;
    cfg.trainvalidate.remap_w = false;
    cfg.trainvalidate.freeze_layer = true;
    let r = run(&cfg, &opts(&out)).unwrap();
    assert_eq!(r.complete_combinations, 2);
    // Interrupted after 3 epochs (job (1, 0) at epoch 1), then resumed: the same numbers.
    let out2 = dir.path().join("seq2");
    let part = run(
        &cfg,
        &RunOptions {
            max_epochs: Some(3),
            ..opts(&out2)
        },
    )
    .unwrap();
    assert_eq!(
        part.unfinished,
        vec![Job {
            combination: 1,
            iteration: 0
        }]
    );
    let rest = run(&cfg, &opts(&out2)).unwrap();
    assert_eq!(
        rest.resumed,
        vec![Job {
            combination: 1,
            iteration: 0
        }]
    );
    assert_eq!(
        std::fs::read(out.join("1/history.csv")).unwrap(),
        std::fs::read(out2.join("1/history.csv")).unwrap()
    );
    // freeze_layer: W_hh identical at epochs 1 and 2 while W_ih trains; absent connections stay 0.
    let load =
        |e: usize| biolayers::io::load_npz(&out.join(format!("0/checkpoints/model_epoch_{e}_iter_0.npz"))).unwrap();
    let (e1, e2) = (load(1), load(2));
    let get = |a: &[biolayers::io::NamedArray], n: &str| a.iter().find(|x| x.name == n).unwrap().data.clone();
    assert_eq!(get(&e1, "w_hh"), get(&e2, "w_hh"));
    assert_ne!(get(&e1, "w_ih"), get(&e2, "w_ih"));
    assert_eq!(e1.iter().find(|x| x.name == "w_hh").unwrap().shape, vec![19, 19]);
    let zeros = get(&e2, "w_hh").iter().filter(|&&v| v == 0.0).count();
    assert!(zeros >= 19, "the diagonal (no self-connections) at least: {zeros}");
    let loss = npy(&out.join("0/validate_loss_all.npy"));
    assert_eq!(loss.shape, vec![1, 2]);
    assert!(loss.data.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert!(!out.join("0/train_metrics_all.npy").exists());
}

#[test]
fn pic_latent_mem_without_the_table_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny("pic_latent_mem", false);
    cfg.paths.path_to_latents = dir.path().join("nope.npy").display().to_string();
    match run(&cfg, &opts(&dir.path().join("pic"))) {
        Err(Error::Config { key, detail, .. }) => {
            assert_eq!(key, "[paths] path_to_latents");
            assert!(detail.contains("mnist-latents"), "{detail}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn pic_latent_mem_runs_on_a_small_table() {
    let dir = tempfile::tempdir().unwrap();
    // 60 images of 4 features, labels 0..9 (6 each).
    let n = 60;
    let data: Vec<f32> = (0..n * 4).map(|i| ((i * 37) % 11) as f32).collect();
    let labels: Vec<i64> = (0..n as i64).map(|i| i % 10).collect();
    let (lat, lab) = (dir.path().join("lat.npy"), dir.path().join("lab.npy"));
    bionpy::write_npy(&lat, &[n, 4], &data).unwrap();
    bionpy::write_npy(&lab, &[n], &labels).unwrap();
    let mut cfg = tiny("pic_latent_mem", false);
    cfg.paths.path_to_latents = lat.display().to_string();
    cfg.paths.path_to_latent_labels = lab.display().to_string();
    cfg.trainvalidate.iterations = 1;
    let out = dir.path().join("pic");
    let r = run(&cfg, &opts(&out)).unwrap();
    assert_eq!(r.complete_combinations, 2);
    assert_eq!(npy(&out.join("1/validate_metrics_all.npy")).shape, vec![1, 2]);
}

/// A malformed run file found while merging leaves no output folder (so a retry is not refused
/// as "not empty") and no work folder; after the file is repaired the same merge succeeds.
#[test]
fn a_failed_merge_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cfg = tiny("nback_mem", false);
    let full = root.join("full");
    run(&cfg, &opts(&full)).unwrap();
    let victim = run_file(
        &full,
        Job {
            combination: 1,
            iteration: 1,
        },
    );
    let good = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, b"epoch,train_loss\n1,not-a-number\n").unwrap();
    let merged = root.join("merged");
    assert!(merge_results(std::slice::from_ref(&full), &merged, false).is_err());
    let left: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["full".to_string()], "nothing but the input may remain");
    std::fs::write(&victim, good).unwrap();
    let m = merge_results(&[full], &merged, false).unwrap();
    assert_eq!((m.jobs, m.complete_combinations), (4, 2));
}
