//! The one checkpoint format: a round trip restores an RNN, its optimiser and an exact history
//! (NaN accuracies included), and a converted model's synaptic-diversity state; files of the
//! older `rnn-run` resume format, checkpoints of another seed, and synaptic-diversity state that
//! is missing, unexpected or bad are refused with errors naming the file (and the array).

use bioautograd::Tensor;
use biolayers::bio::{BioConfig, BioConverter, BioModel, BioSchedule, Distribution};
use biolayers::io::{load_npz, save_npz, NamedArray};
use biolayers::layers::{Activation, DenseConfig, ElmanRnn, ElmanRnnConfig, Module, Sequential};
use biolayers::optim::{Optimizer, OptimizerConfig};
use biolayers::train::train_step;
use biorng::Stream;
use biotasks::checkpoint::{self, CheckpointFiles, RunState};
use biotasks::fit::EpochRecord;
use biotasks::Error;

fn rnn(seed: u64) -> ElmanRnn {
    ElmanRnnConfig::new(2, 4, 1).init(&mut Stream::seeded(seed)).unwrap()
}

fn history() -> Vec<EpochRecord> {
    (1..=2)
        .map(|epoch| EpochRecord {
            epoch,
            train_loss: 0.1 + 1.0 / (3.0 * epoch as f64),
            train_acc: f64::NAN,
            val_loss: std::f64::consts::PI / epoch as f64,
            val_acc: f64::NAN,
        })
        .collect()
}

/// Saves `files`: `rnn(1)` after one Adam step, [`history`] and `seed`.
fn save_trained(files: &CheckpointFiles, seed: Option<u64>) -> (ElmanRnn, Optimizer, RunState) {
    let mut model = rnn(1);
    let mut opt = OptimizerConfig::torch_adam(1e-3).build().unwrap();
    let x = Tensor::from_vec(vec![0.5f32; 2 * 3 * 2], &[2, 3, 2]).unwrap();
    train_step(&mut model, &mut opt, x, |g, out| g.sum(out)).unwrap();
    let state = RunState {
        history: history(),
        seed,
        early_stopping: None,
    };
    checkpoint::save(files, &model, &opt, &state).unwrap();
    (model, opt, state)
}

/// A save killed at any point leaves a checkpoint that loads: before its commit (the `.json`) the
/// previous epoch, after it the new one (from the pending `.npz`, which the load then renames).
#[test]
fn a_save_killed_before_or_after_its_commit_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let files = CheckpointFiles::new(dir.path(), "checkpoint");
    let (model, opt, state) = save_trained(&files, Some(7));
    let one = RunState {
        history: state.history[..1].to_vec(),
        seed: Some(7),
        early_stopping: None,
    };
    let load = |files: &CheckpointFiles| {
        let mut opt2 = OptimizerConfig::torch_adam(1e-3).build().unwrap();
        checkpoint::load(files, &mut rnn(2), &mut opt2, Some(7))
            .unwrap()
            .unwrap()
    };
    // Killed before the commit: epoch 1 is on disk, epoch 2's arrays are pending.
    checkpoint::save(&files, &model, &opt, &one).unwrap();
    let epoch1_npz = std::fs::read(files.npz()).unwrap();
    let other = tempfile::tempdir().unwrap();
    let files2 = CheckpointFiles::new(other.path(), "checkpoint");
    checkpoint::save(&files2, &model, &opt, &state).unwrap();
    std::fs::copy(files2.npz(), files.pending_npz()).unwrap();
    assert_eq!(load(&files).history.len(), 1);
    // Killed after the commit: the .json says epoch 2, the .npz is still epoch 1.
    std::fs::copy(files2.json(), files.json()).unwrap();
    std::fs::write(files.npz(), &epoch1_npz).unwrap();
    // (The history holds NaN accuracies, so it is compared by length and loss bits.)
    let got = load(&files).history;
    assert_eq!(got.len(), 2);
    assert!(got
        .iter()
        .zip(&state.history)
        .all(|(a, b)| a.train_loss.to_bits() == b.train_loss.to_bits()));
    assert!(
        !files.pending_npz().exists(),
        "the load completes the interrupted rename"
    );
    assert_eq!(
        std::fs::read(files.npz()).unwrap(),
        std::fs::read(files2.npz()).unwrap()
    );
}

#[test]
fn round_trip_restores_model_optimiser_and_exact_history() {
    let dir = tempfile::tempdir().unwrap();
    let files = CheckpointFiles::new(dir.path(), "resume_iter_0");
    let (model, opt, state) = save_trained(&files, Some(7));
    assert!(files.exists());

    let mut restored = rnn(2);
    let mut opt2 = OptimizerConfig::torch_adam(1e-3).build().unwrap();
    let got = checkpoint::load(&files, &mut restored, &mut opt2, Some(7))
        .unwrap()
        .unwrap();
    assert_eq!(got.seed, Some(7));
    assert_eq!(got.history.len(), 2);
    for (a, b) in got.history.iter().zip(&state.history) {
        assert_eq!(a.train_loss.to_bits(), b.train_loss.to_bits());
        assert_eq!(a.val_loss.to_bits(), b.val_loss.to_bits());
        assert!(a.train_acc.is_nan() && a.val_acc.is_nan());
    }
    for (p, q) in restored.params().iter().zip(model.params()) {
        assert_eq!(p.value.to_vec().unwrap(), q.value.to_vec().unwrap(), "{}", p.name);
    }
    assert_eq!(opt2.export_state().t, opt.export_state().t);
    assert_eq!(opt2.export_state().slots, opt.export_state().slots);

    match checkpoint::load(&files, &mut rnn(2), &mut opt2, Some(8)) {
        Err(Error::Data { path, detail }) => {
            assert_eq!(path, files.json());
            assert!(detail.contains("seed 7"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    files.remove().unwrap();
    assert!(!files.exists());
    assert!(checkpoint::load(&files, &mut rnn(2), &mut opt2, None)
        .unwrap()
        .is_none());
}

/// The early-stopping state rides in the `.json`: exact losses (the `+∞` reference before the
/// first improvement included), counters as integers; a state of another epoch is refused, and
/// a checkpoint without it reads back as `None` (a run without early stopping).
#[test]
fn the_early_stopping_state_round_trips_and_a_torn_one_is_refused() {
    use biotasks::early_stopping::{EarlyStopping, EarlyStoppingState};
    let dir = tempfile::tempdir().unwrap();
    let files = CheckpointFiles::new(dir.path(), "checkpoint");
    let (model, opt, mut state) = save_trained(&files, Some(7));
    let load = |files: &CheckpointFiles| {
        let mut opt2 = OptimizerConfig::torch_adam(1e-3).build().unwrap();
        checkpoint::load(files, &mut rnn(2), &mut opt2, Some(7))
    };
    assert_eq!(load(&files).unwrap().unwrap().early_stopping, None);
    let rule = EarlyStopping {
        patience: 5,
        min_delta: 0.01,
        min_epochs: 0,
        max_epochs: 100,
    };
    for es in [
        rule.replay(state.history.iter().map(|e| e.val_loss)),
        rule.replay([f64::NAN, f64::NAN]),
    ] {
        state.early_stopping = Some(es);
        checkpoint::save(&files, &model, &opt, &state).unwrap();
        let got = load(&files).unwrap().unwrap().early_stopping.unwrap();
        assert!(got.same_bits(&es), "{got:?} vs {es:?}");
    }
    assert_eq!(state.early_stopping.unwrap().reference, f64::INFINITY);
    state.early_stopping = Some(EarlyStoppingState {
        epochs: 1,
        ..EarlyStoppingState::default()
    });
    checkpoint::save(&files, &model, &opt, &state).unwrap();
    match load(&files) {
        Err(Error::Data { path, detail }) => {
            assert_eq!(path, files.json());
            assert!(
                detail.contains("early_stopping") && detail.contains("after 1 epochs"),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_old_rnn_run_resume_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = CheckpointFiles::new(dir.path(), "resume_iter_1");
    // The pre-refactor rnn-run format: unprefixed parameter names in the .npz, and the history as
    // CSV text in the .json.
    std::fs::write(
        files.json(),
        r#"{"epoch":1,"t":3,"history_csv":"epoch,train_loss,train_acc,val_loss,val_acc\n1,1,NaN,1,NaN\n"}"#,
    )
    .unwrap();
    std::fs::write(files.npz(), b"not read").unwrap();
    let mut opt = OptimizerConfig::torch_adam(1e-3).build().unwrap();
    match checkpoint::load(&files, &mut rnn(1), &mut opt, Some(1)) {
        Err(Error::Data { path, detail }) => {
            assert_eq!(path, files.json());
            assert!(detail.contains("older rnn-run format"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_checkpoint_json_with_plain_numbers_as_older_fit_wrote_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let files = CheckpointFiles::new(dir.path(), "checkpoint");
    let model = rnn(1);
    let opt = OptimizerConfig::torch_adam(1e-3).build().unwrap();
    let state = RunState {
        history: vec![EpochRecord {
            epoch: 1,
            train_loss: 0.5,
            train_acc: 0.25,
            val_loss: 0.75,
            val_acc: 0.125,
        }],
        seed: None,
        early_stopping: None,
    };
    checkpoint::save(&files, &model, &opt, &state).unwrap();
    // The JSON of the pre-refactor fit loop: numbers, no seed.
    let old = r#"{
  "epoch": 1,
  "history": [
    {
      "epoch": 1,
      "train_loss": 0.5,
      "train_acc": 0.25,
      "val_loss": 0.75,
      "val_acc": 0.125
    }
  ]
}"#;
    std::fs::write(files.json(), old).unwrap();
    let mut opt2 = OptimizerConfig::torch_adam(1e-3).build().unwrap();
    let got = checkpoint::load(&files, &mut rnn(2), &mut opt2, Some(5))
        .unwrap()
        .unwrap();
    assert_eq!(got.history, state.history);
    assert_eq!(got.seed, None);
}

/// A converted 4 → 3 → 2 MLP (Dale's principle, activity factors) after two training steps, so
/// that every piece of its synaptic-diversity state is set.
fn converted(seed: u64, dale: bool) -> (Sequential, BioModel) {
    let mut rng = Stream::seeded(seed);
    let mut model = Sequential::new()
        .push(DenseConfig::new(4, 3).init(&mut rng).unwrap())
        .push(Activation::Relu)
        .push(DenseConfig::new(3, 2).init(&mut rng).unwrap());
    let cfg = BioConfig {
        apply_dales_principle: dale,
        fuzzy_lr_distribution: Distribution::Activity,
        fuzzy_lr_dynamic: true,
        ..BioConfig::default()
    };
    let mut bio = BioConverter::new(cfg).convert(&mut model, &mut rng).unwrap();
    let mut opt = OptimizerConfig::torch_adam(1e-2).build().unwrap();
    let schedule = BioSchedule {
        volume_dependent_lr: true,
        crystallize: true,
        ..BioSchedule::default()
    };
    for _ in 0..2 {
        let x = Tensor::from_vec((0..8).map(|i| i as f32 * 0.3 - 1.0).collect(), &[2, 4]).unwrap();
        bio.train_step(
            &mut model,
            &mut opt,
            x,
            |g, out| g.cross_entropy(out, &[0, 1]),
            &schedule,
        )
        .unwrap();
    }
    (model, bio)
}

fn one_epoch() -> RunState {
    RunState {
        history: history()[..1].to_vec(),
        seed: Some(3),
        early_stopping: None,
    }
}

/// Saves the converted model (`Some`) or the plain model (`None`) of `converted(1, true)`.
fn save_bio_checkpoint(dir: &std::path::Path, with_bio: bool) -> CheckpointFiles {
    let files = CheckpointFiles::new(dir, "checkpoint");
    let (model, bio) = converted(1, true);
    let opt = OptimizerConfig::torch_adam(1e-2).build().unwrap();
    let bio = with_bio.then_some(&bio);
    checkpoint::save_with_synapses(&files, &model, bio, &opt, &one_epoch()).unwrap();
    files
}

fn edit_npz(files: &CheckpointFiles, edit: impl FnOnce(&mut Vec<NamedArray>)) {
    let mut arrays = load_npz(&files.npz()).unwrap();
    edit(&mut arrays);
    save_npz(&files.npz(), &arrays).unwrap();
}

fn edit_json(files: &CheckpointFiles, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(files.json()).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(files.json(), serde_json::to_vec(&v).unwrap()).unwrap();
}

/// Loads `files` into a fresh converted model (`dale` as given) and returns the error's file
/// and text; checks that the refused load changed neither the model nor its state.
fn refused(files: &CheckpointFiles, dale: bool) -> (std::path::PathBuf, String) {
    let (mut model, mut bio) = converted(2, dale);
    let (params, factors) = (
        model
            .params()
            .iter()
            .map(|p| p.value.to_vec().unwrap())
            .collect::<Vec<_>>(),
        bio.layers
            .iter()
            .map(|l| l.synapses.factors().to_vec())
            .collect::<Vec<_>>(),
    );
    let (rng, steps) = (bio.rng_state(), bio.steps());
    let mut opt = OptimizerConfig::torch_adam(1e-2).build().unwrap();
    let e = checkpoint::load_with_synapses(files, &mut model, Some(&mut bio), &mut opt, Some(3)).unwrap_err();
    assert_eq!(
        model
            .params()
            .iter()
            .map(|p| p.value.to_vec().unwrap())
            .collect::<Vec<_>>(),
        params
    );
    assert_eq!(
        bio.layers
            .iter()
            .map(|l| l.synapses.factors().to_vec())
            .collect::<Vec<_>>(),
        factors
    );
    assert_eq!((bio.rng_state(), bio.steps()), (rng, steps));
    match e {
        Error::Data { path, detail } => (path, detail),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_converted_checkpoint_round_trips_every_piece_of_synaptic_state() {
    let dir = tempfile::tempdir().unwrap();
    let files = save_bio_checkpoint(dir.path(), true);
    let (model, bio) = converted(1, true);
    let (mut m2, mut b2) = converted(2, true);
    let mut opt = OptimizerConfig::torch_adam(1e-2).build().unwrap();
    let got = checkpoint::load_with_synapses(&files, &mut m2, Some(&mut b2), &mut opt, Some(3))
        .unwrap()
        .unwrap();
    assert_eq!((got.seed, got.history.len()), (Some(3), 1));
    for (a, b) in b2.layers.iter().zip(&bio.layers) {
        assert_eq!(a.synapses.factors(), b.synapses.factors());
        assert_eq!(a.synapses.signs(), b.synapses.signs());
        assert_eq!(a.synapses.counters(), b.synapses.counters());
    }
    assert!(bio.layers[0].synapses.counters().activity_initialized);
    assert!(bio.layers[0]
        .synapses
        .counters()
        .activation_count
        .iter()
        .any(|&c| c > 0.0));
    assert_eq!((b2.steps(), b2.rng_state()), (bio.steps(), bio.rng_state()));
    for (p, q) in m2.params().iter().zip(model.params()) {
        assert_eq!(p.value.to_vec().unwrap(), q.value.to_vec().unwrap());
    }
}

#[test]
fn a_plain_model_and_a_converted_checkpoint_refuse_each_other() {
    let dir = tempfile::tempdir().unwrap();
    // A converted run's checkpoint given to a plain model.
    let files = save_bio_checkpoint(dir.path(), true);
    let (mut plain, _) = converted(2, true);
    let mut opt = OptimizerConfig::torch_adam(1e-2).build().unwrap();
    match checkpoint::load(&files, &mut plain, &mut opt, Some(3)) {
        Err(Error::Data { path, detail }) => {
            assert_eq!(path, files.json());
            assert!(detail.contains("synaptic-diversity state (`bio`)"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    // Even with the .json's `bio` object gone, the arrays give it away.
    edit_json(&files, |v| {
        v.as_object_mut().unwrap().remove("bio");
    });
    match checkpoint::load(&files, &mut plain, &mut opt, Some(3)) {
        Err(Error::Data { path, detail }) => {
            assert_eq!(path, files.npz());
            assert!(detail.contains("array bio.0.dense.kernel.factors"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    // A plain run's checkpoint given to a converted model.
    let plain_files = save_bio_checkpoint(&dir.path().join("plain"), false);
    let (path, detail) = refused(&plain_files, true);
    assert_eq!(path, plain_files.json());
    assert!(detail.contains("no synaptic-diversity state"), "{detail}");
}

#[test]
fn bad_synaptic_arrays_are_refused_naming_the_file_and_the_array() {
    type Edit = Box<dyn FnOnce(&mut Vec<NamedArray>)>;
    let set = |name: &'static str, f: fn(&mut NamedArray)| -> Edit {
        Box::new(move |arrays: &mut Vec<NamedArray>| {
            f(arrays.iter_mut().find(|a| a.name == name).unwrap());
        })
    };
    let cases: Vec<(Edit, bool, &str)> = vec![
        (
            set("bio.0.dense.kernel.factors", |a| {
                a.data.pop();
                a.shape = vec![11];
            }),
            true,
            "array bio.0.dense.kernel.factors has shape [11], the layer's weight [4, 3]",
        ),
        (
            set("bio.2.dense.kernel.factors", |a| a.shape = vec![2, 3]),
            true,
            "array bio.2.dense.kernel.factors has shape [2, 3], the layer's weight [3, 2]",
        ),
        (
            set("bio.0.dense.kernel.factors", |a| a.data[5] = f32::NAN),
            true,
            "array bio.0.dense.kernel.factors: invalid `factors` = [5] = NaN: must be finite and in [0, fuzzy_lr_max = 2]",
        ),
        (
            set("bio.2.dense.kernel.factors", |a| a.data[1] = 2.5),
            true,
            "array bio.2.dense.kernel.factors: invalid `factors` = [1] = 2.5",
        ),
        (
            set("bio.0.dense.kernel.signs", |a| a.data[2] = 0.5),
            true,
            "array bio.0.dense.kernel.signs: invalid `signs` = [2] = 0.5: must be exactly 1 or -1",
        ),
        (
            set("bio.0.dense.kernel.signs", |a| {
                a.data.push(1.0);
                a.shape = vec![4];
            }),
            true,
            "array bio.0.dense.kernel.signs: set_signs: shape mismatch: signs [4] vs sign groups [3]",
        ),
        (
            Box::new(|arrays: &mut Vec<NamedArray>| arrays.retain(|a| a.name != "bio.2.dense.kernel.signs")),
            true,
            "array bio.2.dense.kernel.signs missing (the layer applies Dale's principle)",
        ),
        (
            Box::new(|arrays: &mut Vec<NamedArray>| arrays.retain(|a| a.name != "bio.0.dense.kernel.factors")),
            true,
            "array bio.0.dense.kernel.factors missing",
        ),
        // Signs for a model converted without Dale's principle.
        (Box::new(|_: &mut Vec<NamedArray>| {}), false, "array bio.0.dense.kernel.signs: invalid `apply_dales_principle` = false"),
        (
            Box::new(|arrays: &mut Vec<NamedArray>| {
                arrays.push(NamedArray {
                    name: "bio.1.relu.factors".into(),
                    shape: vec![1],
                    data: vec![1.0],
                })
            }),
            true,
            "array bio.1.relu.factors belongs to no converted layer of this model",
        ),
    ];
    for (k, (edit, dale, want)) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let files = save_bio_checkpoint(dir.path(), true);
        edit_npz(&files, edit);
        let (path, detail) = refused(&files, dale);
        assert_eq!(path, files.npz(), "case {k}: {detail}");
        assert!(detail.contains(want), "case {k}: {detail}");
    }
}

#[test]
fn bad_synaptic_fields_are_refused_naming_the_file_and_the_field() {
    type Edit = fn(&mut serde_json::Value);
    let cases: Vec<(Edit, &str)> = vec![
        (
            |v| v["bio"]["layers"][1]["activation_count"] = serde_json::json!(["1", "2", "3"]),
            "bio.layers[1] (2.dense.kernel): set_counters: shape mismatch: activation_count [3] vs output units [2]",
        ),
        (
            |v| v["bio"]["layers"][0]["activation_count"][2] = serde_json::json!("NaN"),
            "bio.layers[0] (0.dense.kernel): invalid `activation_count` = [2] = NaN: must be finite and >= 0",
        ),
        (
            |v| v["bio"]["layers"][0]["activation_count"][0] = serde_json::json!(-4.0),
            "invalid `activation_count` = [0] = -4",
        ),
        (
            |v| v["bio"]["layers"][1]["param"] = serde_json::json!("2.dense.bias"),
            "bio.layers[1].param = \"2.dense.bias\", the model's converted layer 1 is \"2.dense.kernel\"",
        ),
        (
            |v| {
                v["bio"]["layers"].as_array_mut().unwrap().pop();
            },
            "bio.layers holds 1 converted layers, the model has 2",
        ),
        (
            |v| {
                v["bio"]["rng"] =
                    serde_json::json!({"kind": "numpy", "words": [1, 2], "index": 0, "cached_normal": null})
            },
            "bio.rng: mt19937 state: 2 state words, must be 624",
        ),
        (
            |v| v["bio"]["rng"]["kind"] = serde_json::json!("mt"),
            "unknown variant `mt`",
        ),
        (|v| v["bio"]["steps"] = serde_json::json!(-1), "expected u64"),
        (
            |v| v["bio"]["layers"][0]["update_step"] = serde_json::json!(1.5),
            "expected u64",
        ),
        (
            |v| v["bio"]["layers"][0]["extra"] = serde_json::json!(1),
            "unknown field `extra`",
        ),
    ];
    for (k, (edit, want)) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let files = save_bio_checkpoint(dir.path(), true);
        edit_json(&files, edit);
        let (path, detail) = refused(&files, true);
        assert_eq!(path, files.json(), "case {k}: {detail}");
        assert!(detail.contains(want), "case {k}: {detail}");
    }
}

/// An optimiser slot whose moments do not match its parameter (a damaged or foreign `.npz`) is
/// refused when loading, naming the file, and leaves the model as it was: restored, it would
/// index past the shorter moment at the first step after the resume.
#[test]
fn a_misshapen_optimiser_slot_is_refused_before_the_model_is_touched() {
    use biolayers::io::{load_npz, save_npz};
    let dir = tempfile::tempdir().unwrap();
    let files = CheckpointFiles::new(dir.path(), "checkpoint");
    save_trained(&files, None);
    let mut arrays = load_npz(&files.npz()).unwrap();
    let second = arrays.iter_mut().find(|a| a.name == "opt.0.second").unwrap();
    second.data.pop();
    second.shape = vec![second.data.len()];
    save_npz(&files.npz(), &arrays).unwrap();

    let mut restored = rnn(2);
    let before: Vec<Vec<f32>> = restored.params().iter().map(|p| p.value.to_vec().unwrap()).collect();
    let mut opt2 = OptimizerConfig::torch_adam(1e-3).build().unwrap();
    match checkpoint::load(&files, &mut restored, &mut opt2, None) {
        Err(Error::Data { path, detail }) => {
            assert_eq!(path, files.npz());
            assert!(detail.contains("optimiser slot 0"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    let after: Vec<Vec<f32>> = restored.params().iter().map(|p| p.value.to_vec().unwrap()).collect();
    assert_eq!(before, after);
}

/// `Sequential[Sequential[ElmanRnn 2→4→3 on a partial topology], Sequential[Sequential[Dense 3→2]]]`
/// converted with activity factors and trained two steps: the RNN's three weights and a doubly
/// nested dense layer carry state.
fn converted_nested(seed: u64) -> (Sequential, BioModel) {
    let mut rng = Stream::seeded(seed);
    let topology: Vec<bool> = (0..16).map(|k| k % 3 != 1).collect();
    let rnn = ElmanRnnConfig::new(2, 4, 3)
        .with_topology(topology)
        .init(&mut rng)
        .unwrap();
    let mut model = Sequential::new()
        .push(Sequential::new().push(rnn))
        .push(Sequential::new().push(Sequential::new().push(DenseConfig::new(3, 2).init(&mut rng).unwrap())));
    let cfg = BioConfig {
        fuzzy_lr_distribution: Distribution::Activity,
        fuzzy_lr_dynamic: true,
        ..BioConfig::default()
    };
    let mut bio = BioConverter::new(cfg).convert(&mut model, &mut rng).unwrap();
    let mut opt = OptimizerConfig::torch_adam(1e-2).build().unwrap();
    for _ in 0..2 {
        let x = Tensor::from_vec((0..12).map(|i| i as f32 * 0.2 - 1.0).collect(), &[2, 3, 2]).unwrap();
        bio.train_step(
            &mut model,
            &mut opt,
            x,
            |g, out| g.cross_entropy(out, &[0, 1, 1, 0, 1, 0]),
            &BioSchedule::default(),
        )
        .unwrap();
    }
    (model, bio)
}

#[test]
fn a_nested_converted_model_with_an_rnn_round_trips_its_synaptic_state() {
    let dir = tempfile::tempdir().unwrap();
    let files = CheckpointFiles::new(dir.path(), "checkpoint");
    let (model, bio) = converted_nested(1);
    let opt = OptimizerConfig::torch_adam(1e-2).build().unwrap();
    checkpoint::save_with_synapses(&files, &model, Some(&bio), &opt, &one_epoch()).unwrap();
    // Every converted weight has its own arrays, named by the qualified parameter name.
    let names: Vec<String> = load_npz(&files.npz())
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .filter(|n| n.starts_with("bio."))
        .collect();
    assert_eq!(
        names,
        [
            "bio.0.sequential.0.elman_rnn.w_ih.factors",
            "bio.0.sequential.0.elman_rnn.w_hh.factors",
            "bio.0.sequential.0.elman_rnn.w_out.factors",
            "bio.1.sequential.0.sequential.0.dense.kernel.factors"
        ]
    );
    let (mut m2, mut b2) = converted_nested(2);
    let mut opt = OptimizerConfig::torch_adam(1e-2).build().unwrap();
    checkpoint::load_with_synapses(&files, &mut m2, Some(&mut b2), &mut opt, Some(3))
        .unwrap()
        .unwrap();
    assert_eq!(b2.layers.len(), 4);
    for (a, b) in b2.layers.iter().zip(&bio.layers) {
        assert_eq!(a.key(), b.key());
        assert_eq!(a.synapses.factors(), b.synapses.factors());
        assert_eq!(a.synapses.counters(), b.synapses.counters());
        assert!(
            b.synapses.counters().activation_count.iter().any(|&c| c > 0.0),
            "{}",
            b.key()
        );
    }
    assert_eq!((b2.steps(), b2.rng_state()), (bio.steps(), bio.rng_state()));
    for (p, q) in m2.params().iter().zip(model.params()) {
        assert_eq!(p.value.to_vec().unwrap(), q.value.to_vec().unwrap());
    }
}
