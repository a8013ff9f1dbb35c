//! `reproduce synaptic-diversity` on a tiny fake MNIST: every converted run keeps a checkpoint
//! with its synaptic-diversity state, and a sweep interrupted after epoch 1 and resumed gives
//! the uninterrupted sweep's numbers bit for bit.

use crate::common;

use bioexperiments::synaptic_diversity::{run, SynapticConfig};
use bioexperiments::ReproduceOptions;

fn tiny(epochs: usize) -> SynapticConfig {
    SynapticConfig {
        hidden: 8,
        epochs,
        repeats: 1,
        batch_size: 16,
        rejuvenate_every: 3,
        train_images: 60,
        ..SynapticConfig::for_preset(bioexperiments::Preset::Quick, 1)
    }
}

#[test]
fn an_interrupted_synaptic_diversity_sweep_resumes_to_the_same_numbers() {
    let data = tempfile::tempdir().unwrap();
    common::write_fake_mnist(data.path());
    let out = tempfile::tempdir().unwrap();
    let opts = |name: &str| common::quick_options(out.path().join(name), Some(data.path()), 1);

    let full = run(&opts("full"), &tiny(2)).unwrap();
    assert_eq!(full.len(), 5);
    let ck = out
        .path()
        .join("full/checkpoints/uniform+crystallize_r0/checkpoint.json");
    let meta = std::fs::read_to_string(&ck).unwrap();
    assert!(meta.contains("\"bio\"") && meta.contains("\"rng\""), "{meta}");

    // The interrupted sweep: the folder of a finished run whose checkpoints are those of
    // epoch 1 (as a run stopped after its first epoch leaves them).
    run(&opts("one"), &tiny(1)).unwrap();
    let resumed_dir = out.path().join("resumed");
    common::copy_dir(&out.path().join("full"), &resumed_dir);
    std::fs::remove_dir_all(resumed_dir.join("checkpoints")).unwrap();
    common::copy_dir(&out.path().join("one/checkpoints"), &resumed_dir.join("checkpoints"));
    std::fs::remove_file(resumed_dir.join("history.csv")).unwrap();
    // Without the finished jobs' files, every job resumes from its epoch-1 checkpoint.
    std::fs::remove_dir_all(resumed_dir.join("runs")).unwrap();
    std::fs::remove_file(resumed_dir.join("summary.md")).unwrap();

    let resumed = run(
        &ReproduceOptions {
            resume: true,
            ..opts("resumed")
        },
        &tiny(2),
    )
    .unwrap();
    for (a, b) in resumed.iter().zip(&full) {
        assert_eq!(a.label, b.label);
        // Debug prints every f64 in its shortest round-trip form: equal text, equal bits.
        assert_eq!(
            format!("{:?}", a.runs),
            format!("{:?}", b.runs),
            "{}: resumed run differs",
            a.label
        );
    }
    assert_eq!(
        std::fs::read(resumed_dir.join("history.csv")).unwrap(),
        std::fs::read(out.path().join("full/history.csv")).unwrap()
    );
}

/// `reproduce synaptic-diversity --device emulator`: the mechanisms run on the host between
/// device steps (gradients and weights read back and uploaded again); every epoch of every
/// setting within 1e-4 of the `--device cpu` run.
#[test]
fn synaptic_diversity_on_the_emulator_matches_the_host() {
    let data = tempfile::tempdir().unwrap();
    common::write_fake_mnist(data.path());
    let out = tempfile::tempdir().unwrap();
    let opts = |name: &str, device| ReproduceOptions {
        device,
        ..common::quick_options(out.path().join(name), Some(data.path()), 1)
    };
    let host = run(&opts("cpu", bioautograd::Device::Cpu), &tiny(2)).unwrap();
    let emulated = run(&opts("emu", common::EMULATOR), &tiny(2)).unwrap();
    assert_eq!(host.len(), 5);
    common::assert_same_histories(&host, &emulated);
}
