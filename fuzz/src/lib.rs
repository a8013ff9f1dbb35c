//! The calls every fuzz target makes, one function per target, shared by the libFuzzer targets
//! (`fuzz/fuzz_targets/<target>.rs`) and by the stable-toolchain smoke test
//! (`crates/bioexperiments/tests/integration/fuzz_smoke.rs`, which includes this file as a module), so that
//! the committed corpora and crash reproducers are replayed through exactly what was fuzzed.
//!
//! Each function feeds arbitrary bytes to a parser of the workspace. An `Err` is the expected
//! answer to bad input; a panic (or an abort) is the bug the fuzzer looks for. Where a check is
//! cheap, a successful parse must also round-trip: the `assert!`s below are the harness's, not
//! the library's.
//!
//! Inputs that stand for two files (IDX images + labels, checkpoint `.json` + `.npz`) are split
//! by [`split_two`]; the image target reads its options from the first byte ([`image_decode`]).

use std::path::Path;

/// The fuzz targets. Each has a function of the same name here, a `fuzz/fuzz_targets/<name>.rs`
/// (what `cargo xtask fuzz` runs, in name order) and a seed corpus `fuzz/corpus/<name>/`.
pub const TARGETS: [&str; 7] = [
    "npy",
    "idx",
    "cifar_binary",
    "image_decode",
    "config_ini",
    "config_toml",
    "checkpoint",
];

/// Runs target `name` on `data`; `false` for an unknown name.
pub fn run_target(name: &str, data: &[u8]) -> bool {
    match name {
        "npy" => npy(data),
        "idx" => idx(data),
        "cifar_binary" => cifar_binary(data),
        "image_decode" => image_decode(data),
        "config_ini" => config_ini(data),
        "config_toml" => config_toml(data),
        "checkpoint" => checkpoint(data),
        _ => return false,
    }
    true
}

/// Splits one input into two files: a little-endian `u16` length `n`, then the first file (`n`
/// bytes, or what is left), then the second (the rest). Shorter inputs give two empty files.
pub fn split_two(data: &[u8]) -> (&[u8], &[u8]) {
    match data {
        [lo, hi, rest @ ..] => rest.split_at(usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len())),
        _ => (&[], &[]),
    }
}

/// Joins two files into one input for [`split_two`] (for writing seeds); `None` when the first
/// is longer than a `u16` can say.
pub fn join_two(first: &[u8], second: &[u8]) -> Option<Vec<u8>> {
    let n = u16::try_from(first.len()).ok()?;
    let mut out = n.to_le_bytes().to_vec();
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    Some(out)
}

/// `bionpy::parse_npy` for every element type; a successful `f64` or `u8` parse is written back
/// with `bionpy::npy_bytes` and must read back to the same shape and bits.
pub fn npy(data: &[u8]) {
    let origin = Path::new("fuzz.npy");
    if let Ok(a) = bionpy::parse_npy::<f64>(data, origin) {
        let bytes = bionpy::npy_bytes(&a.shape, &a.data).expect("a parsed array re-encodes");
        let back = bionpy::parse_npy::<f64>(&bytes, origin).expect("a re-encoded array parses");
        assert_eq!(back.shape, a.shape);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.data), bits(&a.data));
    }
    if let Ok(a) = bionpy::parse_npy::<u8>(data, origin) {
        let bytes = bionpy::npy_bytes(&a.shape, &a.data).expect("a parsed array re-encodes");
        assert_eq!(bionpy::parse_npy::<u8>(&bytes, origin).ok(), Some(a));
    }
    let _ = bionpy::parse_npy::<f32>(data, origin);
    let _ = bionpy::parse_npy::<i64>(data, origin);
}

/// `biotasks::data::parse_idx` on the two files of [`split_two`] (images first); a dataset must
/// hold `n × rows × cols` bytes and `n` labels below its class count.
pub fn idx(data: &[u8]) {
    let (images, labels) = split_two(data);
    let ds = biotasks::data::parse_idx(images, labels, Path::new("images-idx3"), Path::new("labels-idx1"));
    if let Ok(ds) = ds {
        assert_eq!(ds.images.len(), ds.len() * ds.image_len());
        assert!(ds.labels.iter().all(|&l| l < ds.classes.len()));
    }
}

/// `biotasks::data::parse_cifar10_binary`; a parsed batch is written back as records and must
/// give the input again.
pub fn cifar_binary(data: &[u8]) {
    if let Ok(ds) = biotasks::data::parse_cifar10_binary(data, Path::new("data_batch_1.bin")) {
        let mut back = Vec::with_capacity(data.len());
        for (i, &label) in ds.labels.iter().enumerate() {
            back.push(u8::try_from(label).expect("labels are below 10"));
            back.extend_from_slice(ds.image(i).expect("one image per label"));
        }
        assert_eq!(back, data);
    }
}

/// `biotasks::data::decode_image` on `data[1..]`; bits of `data[0]` choose the file name's
/// extension (bit 0: `.png` or `.jpg`), the colour mode (bit 1: RGB or grey) and a resize to
/// 7×5 (bit 2), with a centre crop first (bit 3). A decoded image must hold
/// `channels × height × width` bytes, of the requested size.
pub fn image_decode(data: &[u8]) {
    use biotasks::data::{ColorMode, FolderOptions};
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let origin = Path::new(if mode & 1 == 0 { "fuzz.png" } else { "fuzz.jpg" });
    let (color, channels) = if mode & 2 == 0 {
        (ColorMode::Rgb, 3)
    } else {
        (ColorMode::Gray, 1)
    };
    let resize = (mode & 4 != 0).then_some((7, 5));
    let opts = FolderOptions {
        color,
        resize,
        max_per_class: None,
        center_crop: mode & 8 != 0,
    };
    if let Ok(img) = biotasks::data::decode_image(bytes, origin, &opts) {
        let (h, w) = (img.height as usize, img.width as usize);
        assert_eq!(img.pixels.len(), channels * h * w);
        if let Some(size) = resize {
            assert_eq!((img.height, img.width), size);
        }
    }
}

/// `RunsConfig::from_ini` on UTF-8 text (the loader reads text); an accepted config's canonical
/// TOML must parse back to the same TOML.
pub fn config_ini(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = bioexperiments::rnn_runs::RunsConfig::from_ini(text, Path::new("config.ini")) {
        toml_round_trip(&cfg);
    }
}

/// `RunsConfig::from_toml` (the `rnn-run --config x.toml` path, round trip as in [`config_ini`])
/// and `common::differing_keys` of the text against a reproduce `config.toml` (the `--resume`
/// path), which must find no difference between the text and itself unless it holds a NaN.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = bioexperiments::rnn_runs::RunsConfig::from_toml(text, Path::new("config.toml")) {
        toml_round_trip(&cfg);
    }
    let ours = bioexperiments::common::toml_of(&bioexperiments::rnn_memory::RnnMemoryConfig::for_preset(
        bioexperiments::Preset::Quick,
        0,
    ))
    .expect("the rnn-memory settings serialise");
    let _ = bioexperiments::common::differing_keys(text, &ours);
    if let Ok(same) = bioexperiments::common::differing_keys(text, text) {
        assert!(same.is_empty() || text.to_ascii_lowercase().contains("nan"), "{same:?}");
    }
}

fn toml_round_trip(cfg: &bioexperiments::rnn_runs::RunsConfig) {
    let text = cfg.to_toml().expect("an accepted config serialises");
    let back = bioexperiments::rnn_runs::RunsConfig::from_toml(&text, Path::new("canonical.toml"))
        .unwrap_or_else(|e| panic!("the canonical TOML of an accepted config is refused: {e}\n{text}"));
    assert_eq!(back.to_toml().ok().as_deref(), Some(text.as_str()));
}

/// `biotasks::checkpoint::load_from_bytes` of the `.json` and `.npz` of [`split_two`] into a
/// small Elman RNN (2 inputs, 4 hidden, 1 output) and a PyTorch-convention Adam; a restored
/// model and optimiser must take a training step without panicking (an `Err`, e.g. a
/// non-finite loss from restored NaN weights, is fine).
pub fn checkpoint(data: &[u8]) {
    use biolayers::layers::ElmanRnnConfig;
    use biolayers::optim::OptimizerConfig;
    let (json, npz) = split_two(data);
    let files = biotasks::checkpoint::CheckpointFiles::new(Path::new("fuzz"), "checkpoint");
    let mut model = ElmanRnnConfig::new(2, 4, 1)
        .init(&mut biorng::Stream::seeded(1))
        .expect("a 2-4-1 RNN builds");
    let mut opt = OptimizerConfig::torch_adam(1e-3).build().expect("Adam builds");
    if biotasks::checkpoint::load_from_bytes(json, npz, &files, &mut model, &mut opt, Some(7)).is_ok() {
        let x = bioautograd::Tensor::from_vec(vec![0.5f32; 2 * 3 * 2], &[2, 3, 2]).expect("a 2x3x2 input");
        let _ = biolayers::train::train_step(&mut model, &mut opt, x, |g, out| g.sum(out));
    }
}
