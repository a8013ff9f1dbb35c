//! `reproduce bionet` end to end on a tiny synthetic data folder: every CSV of upstream's
//! layout, the robustness curves, the AUC table and the summary are written; a resumed run
//! reuses the checkpoints; bad settings are typed errors.

use std::path::Path;

use bioexperiments::bionet::{reproduce_bionet, BioNetArgs, Convolution};
use bioexperiments::ReproduceOptions;
use biotasks::data::CIFAR10_CLASSES;
use biotasks::perturb::Perturbation;

/// `n` PNGs of `side²` pixels per class, class `c` brighter on the left for even `c`.
fn write_images(dir: &Path, n: usize, side: u32, rgb: bool) {
    for (c, class) in CIFAR10_CLASSES.iter().enumerate() {
        let d = dir.join(class);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            let v = |x: u32| -> u8 {
                let left = x < side / 2;
                let base = if left == (c % 2 == 0) { 200 } else { 40 };
                (base + (c as u32 * 7 + i as u32 * 3) % 30) as u8
            };
            let path = d.join(format!("{class}{:03}.png", i + 1));
            if rgb {
                image::RgbImage::from_fn(side, side, |x, _| image::Rgb([v(x), v(x) / 2, 255 - v(x)]))
                    .save(&path)
                    .unwrap();
            } else {
                image::GrayImage::from_fn(side, side, |x, _| image::Luma([v(x)]))
                    .save(&path)
                    .unwrap();
            }
        }
    }
}

fn fake_data(root: &Path) {
    write_images(&root.join("cifar10-jpeg/train"), 3, 16, true);
    write_images(&root.join("cifar10-jpeg/test"), 1, 16, true);
    for set in biotasks::data::CIFAR10G_SETS {
        write_images(&root.join("cifar10g/224x224").join(set), 1, 20, false);
    }
}

#[test]
fn smoke_run_writes_upstream_layout_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fake_data(&data);
    let out = tmp.path().join("out");
    let opts = ReproduceOptions {
        preset: bioexperiments::Preset::Paper,
        overrides: bioexperiments::Overrides::default(),
        shard: bioexperiments::rnn_runs::Shard::ALL,
        data: Some(data.clone()),
        out: out.clone(),
        resume: false,
        progress: false,
        seed: 3,
        forms: Vec::new(),
        cifar_format: None,
        device: bioautograd::Device::Cpu,
    };
    let args = BioNetArgs {
        smoke: true,
        overrides: (Some(30), Some(10), Some(1)),
        input_size: Some(16),
        ..Default::default()
    };
    let results = reproduce_bionet(&opts, &args).unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].convolution, Convolution::Standard);
    assert_eq!(results[1].model, "Gabor_ALL-CNN");
    let m = out.join("metrics");
    let read = |p: std::path::PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let hist = read(m.join("cifar10/Gabor_ALL-CNN_1.csv"));
    assert!(hist.starts_with("epoch,acc,loss,val_acc,val_loss\n0,"));
    let gen = read(m.join("generalisation/Gabor_ALL-CNN_1_generalise_s3.csv"));
    assert_eq!(gen.lines().count(), 7);
    assert!(gen.contains("Gabor_ALL-CNN,Gabor,ALL-CNN,None,1,3,contours_inverted,contours,True,"));
    let per = read(m.join("perturbed_cifar/Standard_ALL-CNN_1_perturb_cifar10_s3.csv"));
    let levels: usize = Perturbation::ALL.iter().map(|p| p.levels().len()).sum();
    assert_eq!(per.lines().count(), 1 + levels);
    assert!(per.contains(",Salt and Pepper,1,0.1,"));
    let pg = read(m.join("perturbed_generalisation/Standard_ALL-CNN_1_perturb_silhouettes_s3.csv"));
    assert!(pg.starts_with("Model,Convolution,Base,Weights,Trial,Seed,Set,Noise,LI,Level,Loss,Accuracy\n"));
    assert_eq!(pg.lines().count(), 1 + levels);
    let auc = read(out.join("auc.csv"));
    assert_eq!(auc.lines().count(), 1 + 2 * 10);
    for p in Perturbation::ALL {
        assert!(out.join("robustness").join(format!("{}.png", p.slug())).is_file());
        // CIFAR-10G robustness: one curve per model, the mean of the six sets at every level.
        let svg = read(out.join("robustness/cifar10g").join(format!("{}.svg", p.slug())));
        assert!(
            svg.contains("Standard_ALL-CNN") && svg.contains("Gabor_ALL-CNN"),
            "{}",
            p.name()
        );
        assert!(out
            .join("robustness/cifar10g")
            .join(format!("{}.png", p.slug()))
            .is_file());
    }
    let r = &results[0];
    assert_eq!(r.perturbed_generalisation.len(), 6 * levels);
    let mean_at = |li: usize| -> f64 {
        r.perturbed_generalisation
            .iter()
            .filter(|(_, p, l, _)| *p == Perturbation::Contrast && *l == li)
            .map(|(_, _, _, s)| s.accuracy)
            .sum::<f64>()
            / 6.0
    };
    // The per-set CSV rows are the numbers averaged into the plot.
    let rows: Vec<f64> = biotasks::data::CIFAR10G_SETS
        .iter()
        .map(|set| {
            let csv = read(m.join(format!(
                "perturbed_generalisation/Standard_ALL-CNN_1_perturb_{set}_s3.csv"
            )));
            let line = csv.lines().find(|l| l.contains(",Contrast,0,")).unwrap().to_string();
            line.rsplit(',').next().unwrap().parse::<f64>().unwrap()
        })
        .collect();
    assert!((rows.iter().sum::<f64>() / 6.0 - mean_at(0)).abs() < 1e-12);
    let summary = read(out.join("summary.md"));
    assert!(summary.contains("| Gabor_ALL-CNN |"));
    assert!(summary.contains("robustness/cifar10g/<perturbation>.png"));
    assert!(read(out.join("config.toml")).contains("convolutions = [\"Standard\", \"Gabor\"]"));

    // Resume: the checkpoints hold the finished epoch, so training is skipped and the same
    // model comes back (same history, same scores on the perturbations asked for).
    let two = BioNetArgs {
        convolutions: vec![Convolution::Gabor],
        perturbations: vec![Perturbation::SaltAndPepper, Perturbation::Invert],
        ..args.clone()
    };
    let again = reproduce_bionet(
        &ReproduceOptions {
            resume: true,
            ..opts.clone()
        },
        &two,
    )
    .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].history, results[1].history);
    let pick = |r: &bioexperiments::bionet::TrialResult| -> Vec<_> {
        r.perturbed
            .iter()
            .filter(|(p, _, _)| matches!(p, Perturbation::SaltAndPepper | Perturbation::Invert))
            .cloned()
            .collect()
    };
    assert_eq!(pick(&again[0]), pick(&results[1]));
    assert_eq!(again[0].perturbed.len(), 11 + 2);

    // Bad settings fail before any data is read.
    let bad = BioNetArgs {
        bottleneck: Some(0),
        ..args.clone()
    };
    assert!(reproduce_bionet(&opts, &bad).is_err());
    let missing = ReproduceOptions {
        data: Some(tmp.path().join("nowhere")),
        ..opts
    };
    assert!(reproduce_bionet(&missing, &args).is_err());
}

/// `reproduce bionet --device emulator` against `--device cpu` on the smoke setting: ALL-CNN
/// with the standard and the Gabor first layer, and ResNet-50 (padded stem max-pool, batch norm,
/// global average pooling) with a retinal bottleneck and a ConvLSTM first layer; every epoch
/// of every trial within 1e-4, and the CIFAR-10G and perturbed scores (evaluated on the
/// device) within 1e-4 too.
#[test]
fn bionet_on_the_emulator_matches_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fake_data(&data);
    let opts = |name: &str, device| ReproduceOptions {
        preset: bioexperiments::Preset::Paper,
        overrides: bioexperiments::Overrides::default(),
        shard: bioexperiments::rnn_runs::Shard::ALL,
        data: Some(data.clone()),
        out: tmp.path().join(name),
        resume: false,
        progress: false,
        seed: 3,
        forms: Vec::new(),
        cifar_format: None,
        device,
    };
    let all_cnn = BioNetArgs {
        smoke: true,
        overrides: (Some(30), Some(10), Some(1)),
        input_size: Some(16),
        ..Default::default()
    };
    let resnet = BioNetArgs {
        base: biolayers::bionet::Base::Resnet50,
        bottleneck: Some(2),
        recurrent: bioexperiments::bionet::RecurrentOption::ConvLstm,
        steps: 2,
        convolutions: vec![Convolution::Standard],
        ..all_cnn.clone()
    };
    for (k, args) in [all_cnn, resnet].iter().enumerate() {
        let host = reproduce_bionet(&opts(&format!("cpu{k}"), bioautograd::Device::Cpu), args).unwrap();
        let emulated = reproduce_bionet(&opts(&format!("emu{k}"), crate::common::EMULATOR), args).unwrap();
        assert_eq!(host.len(), emulated.len());
        let close = |a: f64, b: f64, what: &str| {
            let same = (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-4 * a.abs().max(1.0);
            assert!(same, "{what}: host {a} emulator {b}");
        };
        for (h, e) in host.iter().zip(&emulated) {
            assert_eq!(h.history.len(), e.history.len());
            for (a, b) in h.history.iter().zip(&e.history) {
                close(a.train_loss, b.train_loss, &format!("{} train loss", h.model));
                close(a.val_loss, b.val_loss, &format!("{} val loss", h.model));
            }
            for ((set, a), (_, b)) in h.generalisation.iter().zip(&e.generalisation) {
                close(a.loss, b.loss, &format!("{} {set}", h.model));
            }
            for ((p, l, a), (_, _, b)) in h.perturbed.iter().zip(&e.perturbed) {
                close(a.loss, b.loss, &format!("{} {p:?} level {l}", h.model));
            }
        }
    }
}
