//! `reproduce schizo-mnist` end to end on a tiny fake MNIST written here, and its missing-data error.

use crate::common;

use bioexperiments::{schizo_mnist::schizo_mnist, ReproduceOptions};

#[test]
fn schizo_mnist_quick_writes_every_output() {
    let data = tempfile::tempdir().unwrap();
    common::write_fake_mnist(data.path());
    let out = tempfile::tempdir().unwrap();
    let opts = common::quick_options(out.path().join("schizo-mnist"), Some(data.path()), 1);
    let results = schizo_mnist(&opts).unwrap();
    assert_eq!(results.len(), 3);
    assert!((results[1].density - 0.5).abs() < 0.01);
    let dir = out.path().join("schizo-mnist");
    for f in [
        "history.csv",
        "summary.md",
        "config.toml",
        "env.txt",
        "loss.png",
        "loss.svg",
        "accuracy.png",
        "accuracy.svg",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 * 3);
    assert!(std::fs::read_to_string(dir.join("summary.md"))
        .unwrap()
        .contains("| r=0.5 | 0.5"));
    // A resumed run reuses the finished checkpoints and gives the same history.
    let again = schizo_mnist(&ReproduceOptions { resume: true, ..opts }).unwrap();
    assert_eq!(again[2].runs, results[2].runs);
}

#[test]
fn window_shapes_train_at_the_band_density() {
    let data = tempfile::tempdir().unwrap();
    common::write_fake_mnist(data.path());
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("forms");
    let opts = ReproduceOptions {
        forms: vec!["diagonal".into(), "random".into(), "gaussian".into()],
        overrides: bioexperiments::Overrides {
            epochs: Some(1),
            ..Default::default()
        },
        ..common::quick_options(dir.clone(), Some(data.path()), 1)
    };
    let results = schizo_mnist(&opts).unwrap();
    let labels: Vec<&str> = results.iter().map(|r| r.label.as_str()).collect();
    // r = 0 is the dense network once; every other r has the three forms.
    assert_eq!(
        labels,
        [
            "r=0",
            "r=0.5",
            "random r=0.5",
            "gaussian r=0.5",
            "r=0.9",
            "random r=0.9",
            "gaussian r=0.9"
        ]
    );
    for (band, others) in [(1, [2, 3]), (4, [5, 6])] {
        for o in others {
            let (a, b) = (results[band].density, results[o].density);
            assert!((a - b).abs() < 0.02, "{}: {b} vs the band's {a}", results[o].label);
        }
    }
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("not with random or other shapes"), "{summary}");
    assert!(std::fs::read_to_string(dir.join("comparisons.csv"))
        .unwrap()
        .contains("r=0.5,gaussian r=0.5"));
}

#[test]
fn missing_data_is_an_error_naming_the_path() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let opts = common::quick_options(out.path().join("x"), Some(data.path()), 1);
    let e = schizo_mnist(&opts).unwrap_err().to_string();
    assert!(e.contains("mnist"), "{e}");
    assert!(!out.path().join("x").exists(), "nothing should be written without data");
}

#[test]
fn a_results_folder_never_lies_about_its_settings() {
    let data = tempfile::tempdir().unwrap();
    common::write_fake_mnist(data.path());
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("schizo-mnist");
    let opts = common::quick_options(dir.clone(), Some(data.path()), 1);

    // --resume where nothing ran is an error, not a silent fresh start.
    let e = schizo_mnist(&ReproduceOptions {
        resume: true,
        ..opts.clone()
    })
    .unwrap_err();
    assert!(e.to_string().contains("no earlier run"), "{e}");
    assert!(!dir.exists());

    schizo_mnist(&opts).unwrap();
    let finished = common::snapshot(&dir);
    // Running again without --resume does not overwrite the finished run.
    let e = schizo_mnist(&opts).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    // Resuming with another seed would mix two experiments: refused, naming the key.
    let e = schizo_mnist(&ReproduceOptions {
        resume: true,
        seed: 2,
        ..opts.clone()
    })
    .unwrap_err();
    assert!(e.to_string().contains("seed"), "{e}");
    assert_eq!(
        common::snapshot(&dir),
        finished,
        "a refused command must leave the folder as it was"
    );
}

/// `export` of a real schizo-mnist checkpoint: the file holds the trained weights (not the
/// initial ones), in PyTorch names, and loads into a freshly initialised model that then
/// predicts exactly what the checkpoint's model predicts.
#[test]
fn a_trained_checkpoint_exports_to_safetensors_that_load_back() {
    use bioautograd::Tensor;
    use bioexperiments::export::{export_checkpoint, rebuild};
    use biolayers::interop::{load_weights, WeightFormat, WeightLayout};
    use biolayers::layers::Module;
    use biolayers::train::predict;
    use biorng::Stream;

    let data = tempfile::tempdir().unwrap();
    common::write_fake_mnist(data.path());
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("schizo-mnist");
    schizo_mnist(&common::quick_options(dir.clone(), Some(data.path()), 1)).unwrap();
    let ckpt = dir.join("checkpoints").join("r=0.5_r0");
    assert!(ckpt.is_dir(), "no checkpoint folder {}", ckpt.display());
    let file = out.path().join("model.safetensors");
    let summary = export_checkpoint(&ckpt, WeightFormat::Safetensors, WeightLayout::Torch, &file).unwrap();
    assert_eq!((summary.setting.as_str(), summary.repeat), ("r=0.5", 0));
    assert!(summary.epoch >= 1 && summary.tensors >= 4, "{summary:?}");

    let (mut trained, _) = rebuild(&ckpt).unwrap();
    let hidden = trained.params()[0].value.shape()[1];
    let (initial, _) = bioexperiments::schizo_mnist::model(hidden, 0.5, &mut Stream::seeded(2)).unwrap();
    assert_ne!(
        trained.params()[0].value.as_slice().unwrap(),
        initial.params()[0].value.as_slice().unwrap(),
        "the checkpoint should hold trained weights"
    );
    let (mut fresh, _) = bioexperiments::schizo_mnist::model(hidden, 0.5, &mut Stream::seeded(2)).unwrap();
    load_weights(&mut fresh, WeightFormat::Safetensors, WeightLayout::Torch, &file).unwrap();
    let x: Vec<f32> = (0..3 * 784).map(|i| ((i * 37) % 101) as f32 / 101.0).collect();
    let x = Tensor::from_vec(x, &[3, 784]).unwrap();
    let want = predict(&mut trained, x.clone()).unwrap();
    let got = predict(&mut fresh, x).unwrap();
    assert_eq!(got.as_slice().unwrap(), want.as_slice().unwrap());
}

/// Keras' "Trainable params" of upstream's DCGAN, by hand (kernels + biases; batch-norm γ and β;
/// the moving statistics and the spectral-norm `u` are not trainable):
///
/// ```text
/// generator 64×64: Dense 100·16384 + 16384 = 1 654 784;  BN 2·16384 = 32 768
///   ConvT 5·5·1024·512 + 512 = 13 107 712;  BN 1 024
///   ConvT 5·5·512·256 + 256  =  3 277 056;  BN   512
///   ConvT 5·5·256·128 + 128  =    819 328;  BN   256
///   ConvT 5·5·128·3 + 3      =      9 603                      total 18 903 043
/// generator 32×32: the same without the 128 stage, last ConvT 5·5·256·3 + 3 = 19 203
///                                                               total 18 093 059
/// discriminator 64×64: Conv 4·4·3·64 + 64 = 3 136;  4·4·64·128 + 128 = 131 200;
///   4·4·128·256 + 256 = 524 544;  4·4·256·512 + 512 = 2 097 664;  Dense 4·4·512 + 1 = 8 193
///                                                               total 2 764 737
/// discriminator 32×32: Dense 2·2·512 + 1 = 2 049               total 2 758 593
/// ```
#[test]
fn dcgan_parameter_counts_match_keras() {
    use bioexperiments::mouse_gan::{discriminator, generator, trainable_params, DcganSpec};
    use biorng::Stream;
    for (size, g_count, d_count) in [(64, 18_903_043, 2_764_737), (32, 18_093_059, 2_758_593)] {
        for window in [Some(0.4), None] {
            let spec = DcganSpec::upstream(size, window);
            let mut rng = Stream::seeded(1);
            let (g, usage) = generator(&spec, &mut rng).unwrap();
            let d = discriminator(&spec, &mut rng, 2).unwrap();
            assert_eq!(trainable_params(&g), g_count, "generator {size} {window:?}");
            assert_eq!(trainable_params(&d), d_count, "discriminator {size} {window:?}");
            if window.is_none() {
                assert_eq!(usage, 1.0);
            } else {
                // The 2d masks at w 0.4 keep about a third of the weights (paper: ≈ 35 %).
                assert!((0.3..0.4).contains(&usage), "usage {usage}");
            }
        }
    }
}

/// The conditional DCGAN (4 classes) has the unconditional networks' parameters plus the
/// one-hot inputs' weights, printed here and checked by hand:
/// ```text
/// generator:      Dense (100 + 4) → 4·4·1024 gains 4·16 384 = 65 536 weights
///                 64×64: 18 903 043 + 65 536 = 18 968 579;   32×32: 18 093 059 + 65 536 = 18 158 595
/// discriminator:  Conv 4·4·(3 + 4)·64 + 64 gains 4·4·4·64 = 4 096 weights
///                 64×64:  2 764 737 +  4 096 =  2 768 833;   32×32:  2 758 593 +  4 096 =  2 762 689
/// ```
#[test]
fn conditional_dcgan_parameter_counts() {
    use bioexperiments::mouse_gan::{discriminator, generator, trainable_params, DcganSpec};
    use biorng::Stream;
    for (size, window, g_count, d_count) in [
        (64, Some(0.4), 18_968_579, 2_768_833),
        (32, None, 18_158_595, 2_762_689),
    ] {
        let spec = DcganSpec::upstream_conditional(size, window, 4);
        let mut rng = Stream::seeded(1);
        let (g, _) = generator(&spec, &mut rng).unwrap();
        let d = discriminator(&spec, &mut rng, 2).unwrap();
        let (gp, dp) = (trainable_params(&g), trainable_params(&d));
        println!("conditional DCGAN {size}×{size}, 4 classes: generator {gp}, discriminator {dp} trainable parameters");
        assert_eq!(gp, g_count, "generator {size}");
        assert_eq!(dp, d_count, "discriminator {size}");
    }
    // The class count's limits: 0 (unconditional) or 2 to MAX_CLASSES.
    for k in [1, bioexperiments::mouse_gan::MAX_CLASSES + 1] {
        let err = DcganSpec::upstream_conditional(32, None, k).validate().unwrap_err();
        assert!(err.to_string().contains("num_classes"), "{err}");
    }
}

/// An unconditional `model.toml` (written before the conditional DCGAN existed) still loads,
/// and an unconditional spec is written without `num_classes`.
#[test]
fn unconditional_model_toml_is_unchanged() {
    use bioexperiments::mouse_gan::DcganSpec;
    let old = "image_size = 32\nlatent_dim = 100\nbase_channels = 1024\nwindow = 0.4\n";
    let spec: DcganSpec = toml::from_str(old).unwrap();
    assert_eq!(spec, DcganSpec::upstream(32, Some(0.4)));
    assert_eq!(toml::to_string(&spec).unwrap(), old);
    let cond = toml::to_string(&DcganSpec::upstream_conditional(32, Some(0.4), 4)).unwrap();
    assert!(cond.contains("num_classes = 4"), "{cond}");
}

/// One conditional GAN step at toy width: the same seed gives the same losses and weights; the
/// step draws exactly `z₁, c₁, the label noise, z₂, c₂` from the stream (the documented order);
/// bad classes are refused before anything is updated.
#[test]
fn conditional_gan_step_is_deterministic_and_draws_in_order() {
    use bioexperiments::mouse_gan::train::{conditional_gan_step, latent, random_classes};
    use bioexperiments::mouse_gan::{discriminator, generator, DcganSpec, Gan, MouseGanConfig};
    use biolayers::layers::Module;
    use biorng::Stream;
    let spec = DcganSpec {
        base_channels: 256,
        ..DcganSpec::upstream_conditional(32, Some(0.4), 3)
    };
    let n = 2;
    let real = bioautograd::Tensor::from_vec(
        (0..n * 3 * 32 * 32).map(|i| (i % 17) as f32 / 17.0).collect(),
        &[n, 3, 32, 32],
    )
    .unwrap();
    let step = |seed: u64, classes: &[usize]| {
        let mut rng = Stream::seeded(1);
        let (g, _) = generator(&spec, &mut rng).unwrap();
        let d = discriminator(&spec, &mut rng, 2).unwrap();
        let mut gan = Gan {
            generator: g,
            discriminator: d,
        };
        let mut opt = MouseGanConfig::for_preset(bioexperiments::Preset::Quick, 1)
            .optimizer()
            .build()
            .unwrap();
        let mut stream = Stream::seeded(seed);
        let r = conditional_gan_step(&mut gan, &mut opt, &real, classes, 3, spec.latent_dim, &mut stream);
        let params: Vec<f32> = gan.params().iter().flat_map(|p| p.value.to_vec().unwrap()).collect();
        (r, params, stream.uniform01())
    };
    let (a, pa, next_a) = step(7, &[0, 2]);
    let (b, pb, _) = step(7, &[0, 2]);
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    assert!(a.0.is_finite() && a.1.is_finite());
    assert_eq!(pa, pb, "same seed, same weights");
    // The documented draws, replayed on a fresh stream, leave it where the step left it.
    let mut replay = Stream::seeded(7);
    latent(&mut replay, n, spec.latent_dim).unwrap();
    random_classes(&mut replay, n, 3);
    for _ in 0..2 * n {
        replay.uniform01();
    }
    latent(&mut replay, n, spec.latent_dim).unwrap();
    random_classes(&mut replay, n, 3);
    assert_eq!(replay.uniform01(), next_a);
    // The real images' classes matter.
    let (c, _, _) = step(7, &[1, 1]);
    assert_ne!(c.unwrap(), a);
    // A class out of range, or not one per image, is refused.
    let (bad, pbad, _) = step(7, &[0, 3]);
    assert!(bad.unwrap_err().to_string().contains("class"));
    let (short, _, _) = step(7, &[0]);
    assert!(short.is_err());
    let (_, fresh, _) = step(8, &[0, 3]);
    assert_eq!(pbad, fresh, "a refused step updates nothing");
}

/// The authors' notebook prints `mConvTranspose2d 512→256 (16,16,0.4): 34.515380859375 %`; the
/// same layer as Keras' `mConv2DTranspose(256, input2d_width=16, output2d_width=16)` on 512
/// channels keeps exactly that fraction.
#[test]
fn mouse_transposed_conv_usage_matches_the_authors_print() {
    use biolayers::layers::Conv2dConfig;
    use biomask::MaskSpec;
    let conv = Conv2dConfig::transpose(512, 256, (5, 5), MaskSpec::two_d(16, 16, 0.4))
        .init(&mut biorng::Stream::seeded(1))
        .unwrap();
    assert_eq!(100.0 * conv.mask().density(), 34.515380859375);
}

/// Two classes of eight 32×32 PNGs (smooth colour ramps, distinct per class).
fn write_tiny_image_folder(dir: &std::path::Path) {
    for (k, class) in ["bird", "cat"].iter().enumerate() {
        let d = dir.join(class);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..8u32 {
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                image::Rgb([(x * 8) as u8, (y * 8) as u8, (i * 30 + k as u32 * 100) as u8])
            });
            img.save(d.join(format!("{i:04}.png"))).unwrap();
        }
    }
}

/// `reproduce mouse-gan --device emulator`, unconditional and conditional (class planes
/// concatenated on the device, one-hot latents), 2 epochs at toy width: each run's last
/// discriminator and generator losses and the score of its samples (drawn on the device)
/// within 1e-4 of the `--device cpu` run.
#[test]
fn mouse_gan_on_the_emulator_matches_the_host() {
    use bioexperiments::mouse_gan::{run, ChannelStatsFrechet, MouseGanConfig};
    let data = tempfile::tempdir().unwrap();
    write_tiny_image_folder(data.path());
    for conditional in [false, true] {
        let mut cfg = if conditional {
            MouseGanConfig::for_preset_conditional(bioexperiments::Preset::Quick, 3)
        } else {
            MouseGanConfig::for_preset(bioexperiments::Preset::Quick, 3)
        };
        cfg.classes = if conditional {
            vec!["cat".into(), "bird".into()]
        } else {
            vec!["cat".into()]
        };
        cfg.windows = vec![0.4];
        cfg.epochs = 2;
        cfg.train_images = 8;
        cfg.batch_size = 4;
        cfg.base_channels = 256;
        cfg.score_samples = 4;
        cfg.image_folder = Some(data.path().to_path_buf());
        cfg.image_size = 32;
        let out = tempfile::tempdir().unwrap();
        let opts = |name: &str, device| ReproduceOptions {
            device,
            ..common::quick_options(out.path().join(name), None, 3)
        };
        let host = run(
            &opts("cpu", bioautograd::Device::Cpu),
            &cfg,
            Some(&mut ChannelStatsFrechet),
        )
        .unwrap();
        let emulated = run(&opts("emu", common::EMULATOR), &cfg, Some(&mut ChannelStatsFrechet)).unwrap();
        assert_eq!(host.results.len(), emulated.results.len());
        for (h, e) in host.results.iter().zip(&emulated.results) {
            assert_eq!((&h.class, &h.window, h.epochs), (&e.class, &e.window, 2));
            for (a, b) in [(h.d_loss, e.d_loss), (h.g_loss, e.g_loss), (h.score, e.score)] {
                assert!(
                    (a - b).abs() <= 1e-4 * a.abs(),
                    "conditional {conditional}: host {h:?} emulator {e:?}"
                );
            }
        }
    }
}

/// `reproduce mouse-gan` end to end at toy width (2 steps of 4 images per run): every output,
/// sharded halves joined by `--resume` into the same bytes as one deterministic run, and
/// `generate` from a finished run folder (a corrupt one is a typed error).
#[test]
fn mouse_gan_tiny_run_resumes_and_generates() {
    use bioexperiments::mouse_gan::{generate_grid, run, ChannelStatsFrechet, MouseGanConfig};
    use bioexperiments::rnn_runs::Shard;
    let data = tempfile::tempdir().unwrap();
    write_tiny_image_folder(data.path());
    let mut cfg = MouseGanConfig::for_preset(bioexperiments::Preset::Quick, 3);
    cfg.classes = vec!["cat".into()];
    cfg.windows = vec![0.4];
    cfg.train_images = 8;
    cfg.batch_size = 4;
    cfg.base_channels = 256;
    cfg.score_samples = 4;
    cfg.image_folder = Some(data.path().to_path_buf());
    cfg.image_size = 32;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("gan");
    let mut opts = common::quick_options(dir.clone(), None, 3);
    // Shard 0 of 2 runs the mouse job only: no summary yet.
    opts.shard = Shard::new(0, 2).unwrap();
    let first = run(&opts, &cfg, Some(&mut ChannelStatsFrechet)).unwrap();
    assert_eq!((first.ran, first.missing), (1, 1));
    assert!(!dir.join("summary.md").exists());
    // The other shard, resumed into the same folder, completes it.
    opts.shard = Shard::ALL;
    opts.resume = true;
    let second = run(&opts, &cfg, Some(&mut ChannelStatsFrechet)).unwrap();
    assert_eq!((second.ran, second.skipped, second.missing), (1, 1, 0));
    assert_eq!(second.results.len(), 2);
    for r in &second.results {
        assert!(r.score.is_finite() && r.score >= 0.0, "{r:?}");
        assert!(r.converged, "the channel-stats scorer has no divergence rule");
        assert_eq!(r.epochs, 1);
    }
    assert!(second.results[0].weight_usage < 0.5 && second.results[1].weight_usage == 1.0);
    for f in ["summary.md", "scores.csv", "config.toml", "score_vs_usage.png"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let run_dir = dir.join("runs").join("cat_w0.4_r000");
    for f in ["result.toml", "generator.npz", "model.toml", "samples.png"] {
        assert!(run_dir.join(f).is_file(), "{f} missing");
    }
    assert!(
        !run_dir.join("checkpoint.json").exists(),
        "the checkpoint is removed when the run ends"
    );
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("not an FID"), "{summary}");
    assert!(summary.contains("cat, w 0.4"), "{summary}");
    // A resume with everything finished trains nothing.
    let third = run(&opts, &cfg, Some(&mut ChannelStatsFrechet)).unwrap();
    assert_eq!((third.ran, third.skipped), (0, 2));

    // The same seed in a fresh folder gives the same numbers (deterministic for a seed).
    let again = out.path().join("again");
    let opts2 = common::quick_options(again.clone(), None, 3);
    run(&opts2, &cfg, Some(&mut ChannelStatsFrechet)).unwrap();
    assert_eq!(
        std::fs::read_to_string(again.join("scores.csv")).unwrap(),
        std::fs::read_to_string(dir.join("scores.csv")).unwrap()
    );

    // generate: a grid from the finished run, the same bytes for the same seed.
    let png = generate_grid(&run_dir, 9, 5, bioautograd::Device::Cpu).unwrap();
    assert_eq!(png, generate_grid(&run_dir, 9, 5, bioautograd::Device::Cpu).unwrap());
    // Drawn on the emulator: the same image up to the 8-bit rounding of a few pixels.
    let emulated = generate_grid(&run_dir, 9, 5, common::EMULATOR).unwrap();
    let (a, b) = (
        image::load_from_memory(&png).unwrap(),
        image::load_from_memory(&emulated).unwrap(),
    );
    let (a, b) = (a.to_rgb8(), b.to_rgb8());
    assert_eq!(a.dimensions(), b.dimensions());
    let off = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .filter(|(x, y)| x.abs_diff(**y) > 1)
        .count();
    assert_eq!(off, 0, "pixels differing by more than one level");
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (3 * 34 + 2, 3 * 34 + 2));
    assert!(generate_grid(out.path(), 4, 1, bioautograd::Device::Cpu)
        .unwrap_err()
        .to_string()
        .contains("model.toml"));
    std::fs::write(run_dir.join("generator.npz"), b"not a zip").unwrap();
    assert!(generate_grid(&run_dir, 4, 1, bioautograd::Device::Cpu)
        .unwrap_err()
        .to_string()
        .contains("generator.npz"));
}

/// `reproduce mouse-gan --conditional` end to end at toy width (one network per window over
/// cat and bird, 2 steps of 4 images): sharded halves joined by `--resume`, one `result.toml`
/// row per class, the class × window summary, a job rerun alone in a fresh folder giving the
/// same result, and `generate` drawing one row per class.
#[test]
fn conditional_mouse_gan_tiny_run_resumes_and_generates() {
    use bioexperiments::mouse_gan::{generate_grid, grid_rows, run, ChannelStatsFrechet, MouseGanConfig};
    use bioexperiments::rnn_runs::Shard;
    let data = tempfile::tempdir().unwrap();
    write_tiny_image_folder(data.path());
    let mut cfg = MouseGanConfig::for_preset_conditional(bioexperiments::Preset::Quick, 3);
    cfg.classes = vec!["cat".into(), "bird".into()];
    cfg.windows = vec![0.4];
    cfg.train_images = 4;
    cfg.batch_size = 4;
    cfg.base_channels = 256;
    cfg.score_samples = 3;
    cfg.image_folder = Some(data.path().to_path_buf());
    cfg.image_size = 32;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("cgan");
    let mut opts = common::quick_options(dir.clone(), None, 3);
    opts.shard = Shard::new(0, 2).unwrap();
    let first = run(&opts, &cfg, Some(&mut ChannelStatsFrechet)).unwrap();
    assert_eq!((first.ran, first.missing), (1, 1));
    assert!(!dir.join("summary.md").exists());
    opts.shard = Shard::ALL;
    opts.resume = true;
    let second = run(&opts, &cfg, Some(&mut ChannelStatsFrechet)).unwrap();
    assert_eq!((second.ran, second.skipped, second.missing), (1, 1, 0));
    // Two jobs (w 0.4, standard) × two classes.
    let rows: Vec<(String, String)> = second
        .results
        .iter()
        .map(|r| (r.class.clone(), r.window.clone()))
        .collect();
    let want: Vec<(String, String)> = [
        ("cat", "w0.4"),
        ("bird", "w0.4"),
        ("cat", "standard"),
        ("bird", "standard"),
    ]
    .iter()
    .map(|(c, w)| (c.to_string(), w.to_string()))
    .collect();
    assert_eq!(rows, want);
    for r in &second.results {
        assert!(r.score.is_finite() && r.score >= 0.0, "{r:?}");
        assert_eq!(r.epochs, 1);
    }
    // The classes of one job share its losses but are scored apart.
    assert_eq!(second.results[0].d_loss, second.results[1].d_loss);
    assert_ne!(second.results[0].score, second.results[1].score);
    let run_dir = dir.join("runs").join("conditional_w0.4_r000");
    for f in [
        "result.toml",
        "generator.npz",
        "model.toml",
        "classes.toml",
        "samples.png",
    ] {
        assert!(run_dir.join(f).is_file(), "{f} missing");
    }
    assert!(!run_dir.join("checkpoint.json").exists());
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("Conditional DCGAN over 2 classes"), "{summary}");
    for s in ["cat, w 0.4", "bird, w 0.4", "| bird | standard |"] {
        assert!(summary.contains(s), "{s}: {summary}");
    }
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("conditional = true"), "{config}");
    // samples.png: one row of 3 samples per class.
    let img = image::open(run_dir.join("samples.png")).unwrap();
    assert_eq!((img.width(), img.height()), (3 * 34 + 2, 2 * 34 + 2));

    // The standard job alone (shard 1 of 2) in a fresh folder: the same result.toml.
    let again = out.path().join("again");
    let mut opts2 = common::quick_options(again.clone(), None, 3);
    opts2.shard = Shard::new(1, 2).unwrap();
    run(&opts2, &cfg, Some(&mut ChannelStatsFrechet)).unwrap();
    let result = |d: &std::path::Path| {
        std::fs::read_to_string(d.join("runs/conditional_standard_r000/result.toml"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("steps_per_second"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(result(&again), result(&dir));

    // generate: one row per class of ⌈5 / 2⌉ = 3 images, deterministic for a seed.
    assert_eq!(grid_rows(&run_dir).unwrap(), ["cat", "bird"]);
    let png = generate_grid(&run_dir, 5, 9, bioautograd::Device::Cpu).unwrap();
    assert_eq!(png, generate_grid(&run_dir, 5, 9, bioautograd::Device::Cpu).unwrap());
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (3 * 34 + 2, 2 * 34 + 2));
    std::fs::write(run_dir.join("classes.toml"), "classes = [\"cat\"]\n").unwrap();
    assert!(grid_rows(&run_dir).unwrap_err().to_string().contains("classes.toml"));
    // One class is no conditional run.
    cfg.classes = vec!["cat".into()];
    assert!(cfg.validate().unwrap_err().to_string().contains("at least 2 classes"));
}

// ---- mouse-ddim ----

fn json_f64s(v: &serde_json::Value) -> Vec<f64> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The cosine schedule, one DDIM step and the sinusoidal embedding against
/// `xtask/python/ddim_reference.py` (fixture `tests/fixtures/ddim_schedule.json`).
#[test]
fn ddim_schedule_step_and_embedding_match_numpy() {
    use bioexperiments::mouse_ddim::diffusion::CosineSchedule;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ddim_schedule.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let s = CosineSchedule::default();
    let times = json_f64s(&doc["times"]);
    for ((t, nr), sr) in times
        .iter()
        .zip(json_f64s(&doc["noise_rates"]))
        .zip(json_f64s(&doc["signal_rates"]))
    {
        let (n, g) = s.rates(*t);
        assert!(
            (n - nr).abs() < 1e-12 && (g - sr).abs() < 1e-12,
            "t {t}: {n} {g} vs {nr} {sr}"
        );
    }
    let step = &doc["ddim_step"];
    let steps = step["steps"].as_u64().unwrap() as f64;
    let k = step["step"].as_u64().unwrap() as f64;
    let f32s = |v: &serde_json::Value| json_f64s(v).into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let (img, next) = s
        .ddim_step(
            &f32s(&step["noisy"]),
            &f32s(&step["pred_noises"]),
            1.0 - k / steps,
            1.0 / steps,
        )
        .unwrap();
    for (got, want) in [
        (img, json_f64s(&step["pred_images"])),
        (next, json_f64s(&step["next_noisy"])),
    ] {
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            assert!((f64::from(*a) - b).abs() < 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
    let emb = &doc["embedding"];
    let vars: Vec<f32> = f32s(&emb["variances"]);
    let got = biolayers::layers::sinusoidal_embedding(&vars, 32, 1.0, 1000.0);
    let want = json_f64s(&emb["embeddings"]);
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(&want) {
        // Upstream multiplies in float32 too: angles up to 2π·1000·0.9 lose ~1e-4 absolute.
        assert!((f64::from(*a) - b).abs() < 2e-3, "{a} vs {b}");
    }
}

fn tiny_ddim_config() -> bioexperiments::mouse_ddim::MouseDdimConfig {
    let mut cfg = bioexperiments::mouse_ddim::MouseDdimConfig::for_preset(bioexperiments::Preset::Quick, 3);
    cfg.widths = vec![8, 16];
    cfg.block_depth = 1;
    cfg.norm_groups = 4;
    cfg.attention_resolution = Some(4);
    cfg.train_images = 8;
    cfg.batch_size = 4;
    cfg.epochs = 2;
    cfg.diffusion_steps = 2;
    cfg.samples = 3;
    cfg.window = 0.5;
    cfg
}

const CPU: bioautograd::Device = bioautograd::Device::Cpu;

/// `reproduce mouse-ddim --device emulator` at toy width with attention at the 8×8 stages
/// (upsampling, the attention's transposes and scale, GroupNorm, swish, dropout and the EMA on
/// the device): every epoch's loss, the samples (drawn with the device EMA weights) and their
/// score within 1e-4 of the `--device cpu` run; `generate --device emulator` from the device
/// run's folder draws the same grid (PNG bytes) as `generate --device cpu` from the host run's.
#[test]
fn mouse_ddim_on_the_emulator_matches_the_host() {
    use bioexperiments::mouse_ddim::run_on;
    use bioexperiments::scoring::PixelMomentDistance;
    let mut rng = biorng::Stream::seeded(6);
    let images: Vec<f32> = (0..8 * 3 * 64).map(|_| rng.uniform01() as f32).collect();
    let mut cfg = tiny_ddim_config();
    cfg.attention_resolution = Some(8);
    let out = tempfile::tempdir().unwrap();
    let opts = |name: &str, device| ReproduceOptions {
        device,
        ..ReproduceOptions::quick(out.path().join(name))
    };
    let host = run_on(&opts("cpu", CPU), &cfg, &images, 8, 3, &mut PixelMomentDistance).unwrap();
    let emulated = run_on(
        &opts("emu", common::EMULATOR),
        &cfg,
        &images,
        8,
        3,
        &mut PixelMomentDistance,
    )
    .unwrap();
    for (h, e) in host.settings.iter().zip(&emulated.settings) {
        assert_eq!((h.losses.len(), &h.label), (2, &e.label));
        for (a, b) in h.losses.iter().zip(&e.losses).chain([(&h.score, &e.score)]) {
            assert!((a - b).abs() <= 1e-4 * a.abs(), "{}: host {a} emulator {b}", h.label);
        }
        let worst = h
            .samples
            .iter()
            .zip(&e.samples)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-4, "{}: samples differ by {worst}", h.label);
    }
    let mouse = |name: &str| out.path().join(name).join("runs").join("mouse_w_0.5");
    let from_device = bioexperiments::mouse_ddim::generate_grid(&mouse("emu"), 3, 7, Some(2), common::EMULATOR);
    let from_host = bioexperiments::mouse_ddim::generate_grid(&mouse("cpu"), 3, 7, Some(2), CPU);
    assert_eq!(from_device.unwrap(), from_host.unwrap());
}

#[test]
fn mouse_ddim_tiny_end_to_end_resumes_to_the_same_result() {
    use bioexperiments::mouse_ddim::run_on;
    use bioexperiments::scoring::PixelMomentDistance;
    let mut rng = biorng::Stream::seeded(5);
    let images: Vec<f32> = (0..8 * 3 * 64).map(|_| rng.uniform01() as f32).collect();
    let cfg = tiny_ddim_config();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("full");
    let full = run_on(
        &ReproduceOptions::quick(dir.clone()),
        &cfg,
        &images,
        8,
        3,
        &mut PixelMomentDistance,
    )
    .unwrap();
    assert_eq!(full.settings.len(), 2);
    let (std_run, mouse_run) = (&full.settings[0], &full.settings[1]);
    assert_eq!(std_run.weight_usage, 1.0);
    assert!(mouse_run.weight_usage < 1.0, "{}", mouse_run.weight_usage);
    for s in &full.settings {
        assert_eq!(s.losses.len(), 2);
        assert!(s.losses.iter().all(|l| l.is_finite()));
        assert_eq!(s.samples.len(), 3 * 3 * 64);
        assert!(s.samples.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(s.score.is_finite() && s.score > 0.0);
    }
    assert!(std::fs::read_to_string(dir.join("summary.md"))
        .unwrap()
        .contains("pixel-moment distance (not FID)"));
    // Resuming the finished run trains nothing and samples again from the checkpoint: the
    // weights, the EMA (the sampler's weights, saved as buffers) and the history come back
    // exactly. A fresh EMA would sample from other weights.
    let mut opts = ReproduceOptions::quick(dir.clone());
    opts.resume = true;
    let resumed = run_on(&opts, &cfg, &images, 8, 3, &mut PixelMomentDistance).unwrap();
    for (a, b) in resumed.settings.iter().zip(&full.settings) {
        assert_eq!(a.losses, b.losses);
        assert_eq!(a.samples, b.samples);
    }
    // generate: the saved EMA denoiser with the run's seed and steps draws the run's samples.
    let mouse_dir = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("mouse"))
        .unwrap();
    let grid = bioexperiments::mouse_ddim::generate_grid(&mouse_dir, 3, cfg.seed ^ 0x5A5A, None, CPU).unwrap();
    assert_eq!(
        grid,
        bioexperiments::mouse_gan::grid_png(&mouse_run.samples, 3, 8, 2).unwrap()
    );
    let other = bioexperiments::mouse_ddim::generate_grid(&mouse_dir, 3, 1, Some(1), CPU).unwrap();
    assert_ne!(other, grid);
    assert!(bioexperiments::mouse_ddim::generate_grid(&mouse_dir, 3, 1, Some(0), CPU).is_err());
    let npz = mouse_dir.join("denoiser.npz");
    let bytes = std::fs::read(&npz).unwrap();
    std::fs::write(&npz, &bytes[..bytes.len() / 2]).unwrap();
    let e = bioexperiments::mouse_ddim::generate_grid(&mouse_dir, 3, 1, None, CPU)
        .unwrap_err()
        .to_string();
    assert!(e.contains("denoiser.npz"), "{e}");
    let mut bad = cfg.clone();
    bad.batch_size = 9;
    let e = run_on(
        &ReproduceOptions::quick(out.path().join("bad")),
        &bad,
        &images,
        8,
        3,
        &mut PixelMomentDistance,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("batch_size") && e.contains('9'), "{e}");
    assert!(!out.path().join("bad").exists(), "a refused config writes nothing");
}

/// `reproduce schizo-mnist --device emulator` (the device code path on the host emulator):
/// every epoch's losses and accuracies of every run within 1e-4 of the `--device cpu` run.
#[test]
fn schizo_mnist_on_the_emulator_matches_the_host() {
    let data = tempfile::tempdir().unwrap();
    common::write_fake_mnist(data.path());
    let out = tempfile::tempdir().unwrap();
    let opts = |name: &str, device| ReproduceOptions {
        overrides: bioexperiments::Overrides {
            epochs: Some(2),
            repeats: Some(1),
            train_images: Some(40),
        },
        device,
        ..common::quick_options(out.path().join(name), Some(data.path()), 1)
    };
    let host = schizo_mnist(&opts("cpu", bioautograd::Device::Cpu)).unwrap();
    let emulated = schizo_mnist(&opts("emu", common::EMULATOR)).unwrap();
    assert!(host.iter().all(|h| h.runs.iter().all(|r| r.len() == 2)));
    common::assert_same_histories(&host, &emulated);
}

/// `reproduce rnn-memory --device emulator` (a tiny fixed preset: seq_mem, bio and random
/// topologies): every epoch's training and validation loss within 1e-4 (relative) of the host
/// run. (Control: a relu/tanh derivative made leaky by 0.1 in the emulator fails it.)
#[test]
fn rnn_memory_on_the_emulator_matches_the_host() {
    let out = tempfile::tempdir().unwrap();
    // A learning rate at which 3 epochs move the loss well beyond the tolerance (the tiny
    // preset's barely moves it: a wrong derivative would go unseen).
    let cfg = bioexperiments::rnn_memory::RnnMemoryConfig {
        lr: 0.02,
        ..common::tiny_rnn_memory(2)
    };
    let opts = |name: &str, device| ReproduceOptions {
        device,
        ..common::quick_options(out.path().join(name), None, 3)
    };
    let host = bioexperiments::rnn_memory::run(&opts("cpu", bioautograd::Device::Cpu), &cfg).unwrap();
    let emulated = bioexperiments::rnn_memory::run(&opts("emu", common::EMULATOR), &cfg).unwrap();
    assert_eq!(host.len(), 2);
    assert!(host.iter().all(|h| h.runs.iter().all(|r| r.len() == 3)));
    common::assert_same_histories(&host, &emulated);
}
