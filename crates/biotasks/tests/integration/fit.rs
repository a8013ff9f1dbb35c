//! The training loop: learning happens, resume reproduces the uninterrupted run exactly (plain
//! and converted models), and a non-finite loss stops the run keeping the last good checkpoint.

use bioautograd::cuda::EMULATOR;
use bioautograd::Device;
use biolayers::bio::{BioConfig, BioConverter, BioModel, BioSchedule, Distribution};
use biolayers::layers::{Activation, DenseConfig, Dropout, Module, Sequential};
use biolayers::optim::{Convention, OptimizerConfig};
use biotasks::data::{ImageDataset, KerasAugment, Normalization};
use biotasks::fit::{fit, fit_bio, history_csv, lr_factor, EpochRecord, FitConfig, LrStep};
use biotasks::Stream;

/// Two classes of 4x4 greyscale images: bright top half vs bright bottom half, with noise.
fn toy(n: usize, seed: u64) -> ImageDataset {
    let mut rng = Stream::seeded(seed);
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let label = i % 2;
        for p in 0..16 {
            let top = p < 8;
            let base = if top == (label == 0) { 180.0 } else { 60.0 };
            images.push((base + 60.0 * (rng.uniform01() - 0.5)) as u8);
        }
        labels.push(label);
    }
    ImageDataset {
        images,
        labels,
        channels: 1,
        height: 4,
        width: 4,
        classes: vec!["top".into(), "bottom".into()],
    }
}

fn model(seed: u64) -> Sequential {
    let mut rng = Stream::seeded(seed);
    Sequential::new()
        .push(DenseConfig::new(16, 12).init(&mut rng).unwrap())
        .push(Activation::Relu)
        .push(Dropout::new(0.2, 0).unwrap())
        .push(DenseConfig::new(12, 2).init(&mut rng).unwrap())
}

fn cfg(epochs: usize, dir: Option<std::path::PathBuf>, resume: bool) -> FitConfig {
    FitConfig {
        epochs,
        batch_size: 8,
        seed: 3,
        shuffle: true,
        augment: None,
        lr_steps: Vec::new(),
        flatten_input: true,
        checkpoint_dir: dir,
        resume,
        progress: false,
        device: Device::Cpu,
    }
}

#[test]
fn fit_learns_and_resume_reproduces_the_uninterrupted_run() {
    let (train, val) = (toy(64, 1), toy(32, 2));
    let norm = Normalization::unit(1);
    let adam = OptimizerConfig::torch_adam(0.01);
    let mut m1 = model(7);
    let mut o1 = adam.build().unwrap();
    let full = fit(&mut m1, &mut o1, &train, &val, &norm, &cfg(4, None, false)).unwrap();
    assert_eq!(full.len(), 4);
    assert!(full[3].train_loss < full[0].train_loss, "{full:?}");
    assert!(full[3].val_acc >= 0.9, "{full:?}");

    let dir = tempfile::tempdir().unwrap();
    let ck = Some(dir.path().to_path_buf());
    let mut m2 = model(7);
    let mut o2 = adam.build().unwrap();
    let first = fit(&mut m2, &mut o2, &train, &val, &norm, &cfg(2, ck.clone(), false)).unwrap();
    assert_eq!(first[..], full[..2]);
    // A fresh process: new model and optimiser objects, state only from the checkpoint.
    let mut m3 = model(99);
    let mut o3 = adam.build().unwrap();
    let resumed = fit(&mut m3, &mut o3, &train, &val, &norm, &cfg(4, ck, true)).unwrap();
    assert_eq!(resumed, full, "resumed trajectory differs");
    let p1: Vec<Vec<f32>> = m1.params().iter().map(|p| p.value.to_vec().unwrap()).collect();
    let p3: Vec<Vec<f32>> = m3.params().iter().map(|p| p.value.to_vec().unwrap()).collect();
    assert_eq!(p1, p3);
    let csv = history_csv(&full.iter().map(|r| ("dense".to_string(), 0, *r)).collect::<Vec<_>>());
    assert!(csv.starts_with("setting,repeat,epoch,train_loss,train_acc,val_loss,val_acc\ndense,0,1,"));
    assert_eq!(csv.lines().count(), 5);
}

/// A learning-rate step and Keras augmentation: the step changes the run from the epoch after it
/// on (not before), the optimiser ends at the stepped rate, and a run resumed across the step
/// (checkpoint before it) reproduces the uninterrupted one bit for bit.
#[test]
fn lr_steps_and_keras_augmentation_resume_bit_for_bit() {
    let steps = vec![LrStep {
        after_epochs: 2,
        factor: 0.2,
    }];
    assert_eq!(lr_factor(&steps, 2), 1.0);
    assert_eq!(lr_factor(&steps, 3), 0.2);
    assert_eq!(
        lr_factor(
            &[
                steps[0],
                LrStep {
                    after_epochs: 3,
                    factor: 0.5
                }
            ],
            4
        ),
        0.2 * 0.5
    );
    let (train, val) = (toy(48, 1), toy(16, 2));
    let norm = Normalization::unit(1);
    let adam = OptimizerConfig::Adam {
        lr: 0.01,
        beta1: None,
        beta2: None,
        eps: None,
        weight_decay: 0.0,
        decay: 0.0,
        convention: Convention::Keras,
    };
    let with = |epochs, dir: Option<std::path::PathBuf>, resume, stepped: bool| FitConfig {
        augment: Some(KerasAugment::vgg16_schizo().into()),
        lr_steps: if stepped { steps.clone() } else { Vec::new() },
        ..cfg(epochs, dir, resume)
    };
    let mut o_plain = adam.build().unwrap();
    let plain = fit(
        &mut model(7),
        &mut o_plain,
        &train,
        &val,
        &norm,
        &with(4, None, false, false),
    )
    .unwrap();
    let mut o_full = adam.build().unwrap();
    let full = fit(
        &mut model(7),
        &mut o_full,
        &train,
        &val,
        &norm,
        &with(4, None, false, true),
    )
    .unwrap();
    assert_eq!(full[..2], plain[..2], "the step must not act before its epoch");
    assert_ne!(full[2], plain[2], "the step must act from epoch 3");
    assert_eq!(o_full.lr_scale(), 0.2);

    let dir = tempfile::tempdir().unwrap();
    let ck = Some(dir.path().to_path_buf());
    let first = fit(
        &mut model(7),
        &mut adam.build().unwrap(),
        &train,
        &val,
        &norm,
        &with(2, ck.clone(), false, true),
    )
    .unwrap();
    assert_eq!(first[..], full[..2]);
    let resumed = fit(
        &mut model(99),
        &mut adam.build().unwrap(),
        &train,
        &val,
        &norm,
        &with(4, ck, true, true),
    )
    .unwrap();
    assert_eq!(resumed, full, "resumed across the step");
    let bad = FitConfig {
        lr_steps: vec![LrStep {
            after_epochs: 1,
            factor: f64::NAN,
        }],
        ..cfg(1, None, false)
    };
    assert!(fit(&mut model(7), &mut adam.build().unwrap(), &train, &val, &norm, &bad).is_err());
}

#[test]
fn non_finite_loss_stops_and_keeps_the_last_good_checkpoint() {
    let (train, val) = (toy(16, 1), toy(8, 2));
    let dir = tempfile::tempdir().unwrap();
    let ck = Some(dir.path().to_path_buf());
    let adam = OptimizerConfig::torch_adam(0.01);
    let mut m = model(1);
    let mut o = adam.build().unwrap();
    fit(
        &mut m,
        &mut o,
        &train,
        &val,
        &Normalization::unit(1),
        &cfg(1, ck.clone(), false),
    )
    .unwrap();
    let saved = std::fs::read(dir.path().join("checkpoint.npz")).unwrap();
    // std = 0 turns every input into ±inf/NaN.
    let broken = Normalization {
        mean: vec![0.5],
        std: vec![0.0],
    };
    let e = fit(&mut m, &mut o, &train, &val, &broken, &cfg(3, ck, true)).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("epoch 2") && msg.contains("checkpoint of epoch 1"),
        "{msg}"
    );
    assert_eq!(std::fs::read(dir.path().join("checkpoint.npz")).unwrap(), saved);
    let meta = std::fs::read_to_string(dir.path().join("checkpoint.json")).unwrap();
    assert!(meta.contains("\"epoch\": 1"), "{meta}");
}

#[test]
fn resume_refuses_a_checkpoint_of_another_architecture() {
    let (train, val) = (toy(16, 1), toy(8, 2));
    let dir = tempfile::tempdir().unwrap();
    let ck = Some(dir.path().to_path_buf());
    let adam = OptimizerConfig::torch_adam(0.01);
    fit(
        &mut model(1),
        &mut adam.build().unwrap(),
        &train,
        &val,
        &Normalization::unit(1),
        &cfg(1, ck.clone(), false),
    )
    .unwrap();
    let mut other = Sequential::new().push(DenseConfig::new(16, 2).init(&mut Stream::seeded(0)).unwrap());
    let e = fit(
        &mut other,
        &mut adam.build().unwrap(),
        &train,
        &val,
        &Normalization::unit(1),
        &cfg(2, ck, true),
    );
    assert!(e.is_err());
}

/// One synaptic-diversity setting: the converter's configuration, the schedule and the flavour
/// of the mechanisms' stream.
struct BioSetting {
    config: BioConfig,
    schedule: BioSchedule,
    stream: fn(u64) -> Stream,
}

/// Three settings that together use every piece of per-layer state: random factor
/// distributions with their dynamic updates (temporal: `update_step`; activity: the counts and
/// the initialised flag; weight-adaptive: its flag), volume-dependent rates, crystallisation,
/// rejuvenation off the epoch boundaries (the step count), Dale's principle (the signs) and the
/// three stream flavours (ChaCha8, and the MT19937 ones with a cached normal).
fn bio_settings() -> Vec<BioSetting> {
    let schedule = BioSchedule {
        update_fuzzy: true,
        volume_dependent_lr: true,
        fuzzy_learning_rates: true,
        crystallize: true,
        rejuvenate_every: Some(5),
        enforce_dales_principle: false,
    };
    vec![
        BioSetting {
            config: BioConfig {
                fuzzy_lr_distribution: Distribution::Temporal,
                fuzzy_lr_dynamic: true,
                fuzzy_lr_update_freq: 3,
                apply_dales_principle: true,
                ..BioConfig::default()
            },
            schedule: BioSchedule {
                enforce_dales_principle: true,
                ..schedule
            },
            stream: Stream::seeded,
        },
        BioSetting {
            config: BioConfig {
                fuzzy_lr_distribution: Distribution::Activity,
                fuzzy_lr_dynamic: true,
                ..BioConfig::default()
            },
            schedule: BioSchedule {
                rejuvenate_every: Some(3),
                ..schedule
            },
            stream: |seed| Stream::numpy(seed as u32),
        },
        BioSetting {
            config: BioConfig {
                fuzzy_lr_distribution: Distribution::WeightAdaptive,
                apply_dales_principle: true,
                ..BioConfig::default()
            },
            schedule: BioSchedule {
                rejuvenate_every: Some(7),
                enforce_dales_principle: true,
                ..schedule
            },
            stream: |seed| Stream::python(i128::from(seed)),
        },
    ]
}

/// 16 → 5 → 3 → 2 with dropout: 101 weights, so the per-weight normal draws of a step are odd
/// in number and the MT19937 flavours end epochs with a cached normal.
fn bio_model(setting: &BioSetting, seed: u64) -> (Sequential, BioModel) {
    let mut rng = Stream::seeded(seed);
    let mut model = Sequential::new()
        .push(DenseConfig::new(16, 5).init(&mut rng).unwrap())
        .push(Activation::Relu)
        .push(Dropout::new(0.2, 0).unwrap())
        .push(DenseConfig::new(5, 3).init(&mut rng).unwrap())
        .push(Activation::Tanh)
        .push(DenseConfig::new(3, 2).init(&mut rng).unwrap());
    let bio = BioConverter::new(setting.config.clone())
        .convert(&mut model, &mut (setting.stream)(seed))
        .unwrap();
    (model, bio)
}

/// Every bit a converted run carries: parameters, factors, signs, counters, step count and
/// the position of the mechanisms' stream.
fn bio_snapshot(model: &Sequential, bio: &BioModel) -> String {
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut out = String::new();
    for p in model.params() {
        out += &format!("{} {:?}\n", p.name, bits(&p.value.to_vec().unwrap()));
    }
    for cl in &bio.layers {
        let s = &cl.synapses;
        let c = s.counters();
        let counts: Vec<u64> = c.activation_count.iter().map(|v| v.to_bits()).collect();
        out += &format!(
            "layer {} factors {:?} signs {:?} counts {counts:?} {} {} {}\n",
            cl.path,
            bits(s.factors()),
            s.signs().map(bits),
            c.activity_initialized,
            c.weight_adaptive_initialized,
            c.update_step
        );
    }
    out + &format!("steps {} rng {:?}", bio.steps(), bio.rng_state())
}

fn history_bits(h: &[EpochRecord]) -> Vec<[u64; 4]> {
    h.iter()
        .map(|r| {
            [
                r.train_loss.to_bits(),
                r.train_acc.to_bits(),
                r.val_loss.to_bits(),
                r.val_acc.to_bits(),
            ]
        })
        .collect()
}

#[test]
fn a_resumed_converted_run_continues_the_uninterrupted_one_bit_for_bit() {
    let (train, val) = (toy(64, 1), toy(32, 2));
    let norm = Normalization::unit(1);
    let sgd = OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
        decay: 0.0,
        convention: Convention::Torch,
    };
    for (k, setting) in bio_settings().iter().enumerate() {
        // Builds and converts the model from `seed`, then trains it: (history, final state).
        let run = |seed: u64, c: FitConfig| {
            let (mut m, mut b) = bio_model(setting, seed);
            let mut opt = sgd.build().unwrap();
            let h = fit_bio(&mut m, &mut b, &setting.schedule, &mut opt, (&train, &val, &norm), &c).unwrap();
            (h, bio_snapshot(&m, &b))
        };
        let (full, full_state) = run(7, cfg(4, None, false));
        assert_eq!(full.len(), 4);
        assert!(full.iter().all(|r| r.train_loss.is_finite()), "setting {k}: {full:?}");

        let dir = tempfile::tempdir().unwrap();
        let ck = Some(dir.path().to_path_buf());
        let (first, _) = run(7, cfg(2, ck.clone(), false));
        assert_eq!(history_bits(&first), history_bits(&full[..2]), "setting {k}");
        // A fresh process: another model, another conversion (other factors, signs and stream),
        // every piece of state only from the checkpoint.
        let (resumed, resumed_state) = run(99, cfg(4, ck, true));
        assert_eq!(
            history_bits(&resumed),
            history_bits(&full),
            "setting {k}: resumed history differs"
        );
        assert_eq!(resumed_state, full_state, "setting {k}: resumed state differs");
    }
}

/// The training loop on a device (the host emulator of the device backend, which runs the whole
/// device code path with CPU kernels): the same history as on the host within 1e-4 (training
/// accuracy included: it used to stay 0 on a device), a run resumed from a device checkpoint
/// (parameters and the optimiser's device moments) continues the uninterrupted device run bit
/// for bit, and the same checkpoint resumes on the host.
#[test]
fn fit_on_the_emulator_matches_the_host_and_its_checkpoints_resume_anywhere() {
    let (train, val) = (toy(64, 1), toy(32, 2));
    let norm = Normalization::unit(1);
    let adam = OptimizerConfig::torch_adam(0.01);
    let on = |device: Device, epochs, dir: Option<std::path::PathBuf>, resume| FitConfig {
        device,
        ..cfg(epochs, dir, resume)
    };
    let emu = Device::Cuda(EMULATOR);
    let host = fit(
        &mut model(7),
        &mut adam.build().unwrap(),
        &train,
        &val,
        &norm,
        &cfg(4, None, false),
    )
    .unwrap();
    let mut m_dev = model(7);
    let dev = fit(
        &mut m_dev,
        &mut adam.build().unwrap(),
        &train,
        &val,
        &norm,
        &on(emu, 4, None, false),
    )
    .unwrap();
    assert_eq!(m_dev.params()[0].value.device(), emu, "the model trained on the device");
    for (h, d) in host.iter().zip(&dev) {
        for (a, b, what) in [
            (h.train_loss, d.train_loss, "train loss"),
            (h.val_loss, d.val_loss, "val loss"),
            (h.train_acc, d.train_acc, "train acc"),
            (h.val_acc, d.val_acc, "val acc"),
        ] {
            assert!(
                (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                "epoch {}: {what} host {a} device {b}",
                h.epoch
            );
        }
    }
    assert!(dev[3].train_acc > 0.5, "training accuracy on the device: {dev:?}");

    let dir = tempfile::tempdir().unwrap();
    let ck = Some(dir.path().to_path_buf());
    fit(
        &mut model(7),
        &mut adam.build().unwrap(),
        &train,
        &val,
        &norm,
        &on(emu, 2, ck.clone(), false),
    )
    .unwrap();
    // A copy of the epoch-2 checkpoint for the host resume below.
    let copy = tempfile::tempdir().unwrap();
    for f in ["checkpoint.npz", "checkpoint.json"] {
        std::fs::copy(dir.path().join(f), copy.path().join(f)).unwrap();
    }
    // A copy of the epoch-2 checkpoint for the host resume below.
    let copy = tempfile::tempdir().unwrap();
    for f in ["checkpoint.npz", "checkpoint.json"] {
        std::fs::copy(dir.path().join(f), copy.path().join(f)).unwrap();
    }
    let mut m_res = model(99);
    let resumed = fit(
        &mut m_res,
        &mut adam.build().unwrap(),
        &train,
        &val,
        &norm,
        &on(emu, 4, ck.clone(), true),
    )
    .unwrap();
    assert_eq!(resumed, dev, "device run resumed from its checkpoint");
    let p_dev: Vec<Vec<f32>> = m_dev.params().iter().map(|p| p.value.to_vec().unwrap()).collect();
    let p_res: Vec<Vec<f32>> = m_res.params().iter().map(|p| p.value.to_vec().unwrap()).collect();
    assert_eq!(p_dev, p_res);

    // The device checkpoint of epoch 2, resumed on the host: the host run's last epochs within
    // the same tolerance (without the device moments, Adam would restart and drift).
    let ck_copy = Some(copy.path().to_path_buf());
    let on_host = fit(
        &mut model(99),
        &mut adam.build().unwrap(),
        &train,
        &val,
        &norm,
        &cfg(4, ck_copy, true),
    )
    .unwrap();
    assert_eq!(on_host.len(), 4);
    for (h, d) in host.iter().zip(&on_host).skip(2) {
        assert!(
            (h.train_loss - d.train_loss).abs() <= 1e-4 * h.train_loss.max(1.0),
            "{h:?} vs {d:?}"
        );
    }
}
