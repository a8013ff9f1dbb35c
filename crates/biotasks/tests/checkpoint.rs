//! The one checkpoint format: a round trip restores an RNN, its optimiser and an exact history
//! (NaN accuracies included); files of the older `rnn-run` resume format and checkpoints of
//! another seed are refused with errors naming the file.

use bioautograd::Tensor;
use biolayers::layers::{ElmanRnn, ElmanRnnConfig, Module};
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
    };
    checkpoint::save(files, &model, &opt, &state).unwrap();
    (model, opt, state)
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
