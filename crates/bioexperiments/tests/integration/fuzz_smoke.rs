//! The fuzz targets on the stable toolchain (issue 16; docs/fuzzing.md): CI cannot run
//! `cargo fuzz`, so this replays every committed seed-corpus file (`fuzz/corpus/<target>/`) and
//! crash reproducer (`fuzz/regressions/<target>/`) through the very calls the fuzz targets make
//! (`fuzz/src/lib.rs`, included below), then a deterministic, seeded mutation loop of a few
//! thousand inputs per target (bit flips, interesting bytes, truncations, insertions, deletions,
//! copied chunks, length-field edits, format tokens). Every input must give `Ok` or `Err`, never
//! a panic.
//!
//! The seed corpora are written by the ignored test [`write_seed_corpora`]:
//! `cargo test -p bioexperiments --test integration fuzz_smoke:: -- --ignored write_seed_corpora`.

#[path = "../../../../fuzz/src/lib.rs"]
mod fuzz_calls;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use fuzz_calls::{join_two, run_target, TARGETS};

/// Mutated inputs per target (the whole test takes 1 to 2 s in a debug build).
const MUTATIONS_PER_TARGET: usize = 2500;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `dir` (sorted by name; none when it does not exist).
fn files_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

/// Runs `target` on `data`; the panic message when it panics.
fn panics(target: &str, data: &[u8]) -> Option<String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        assert!(run_target(target, data), "unknown target {target}")
    }));
    outcome.err().map(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

/// `cargo xtask fuzz` runs the files of `fuzz/fuzz_targets/`; this test replays `TARGETS`: they
/// must be the same list.
#[test]
fn the_fuzz_target_files_are_the_replayed_targets() {
    let mut files: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    files.sort();
    let mut listed: Vec<String> = TARGETS.iter().map(|t| t.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed);
}

#[test]
fn committed_corpora_and_crash_reproducers_do_not_panic() {
    let mut failures = Vec::new();
    for target in TARGETS {
        let corpus = files_in(&fuzz_dir().join("corpus").join(target));
        assert!(
            !corpus.is_empty(),
            "no seed corpus for {target} (see write_seed_corpora)"
        );
        let regressions = files_in(&fuzz_dir().join("regressions").join(target));
        for (name, data) in corpus.iter().chain(&regressions) {
            if let Some(msg) = panics(target, data) {
                failures.push(format!("{target}/{name}: {msg}"));
            }
        }
    }
    assert!(failures.is_empty(), "inputs that panic:\n{}", failures.join("\n"));
}

/// SplitMix64: a few lines, deterministic on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Tokens of the formats (headers, dict syntax, TOML and INI punctuation, numbers that break
/// ranges) that a random byte flip would rarely produce.
const TOKENS: [&[u8]; 22] = [
    b"\x93NUMPY",
    b"'descr': '<f8'",
    b"'fortran_order': True",
    b"'shape': (",
    b"4294967295",
    b"-1",
    b"1e308",
    b"nan",
    b"inf",
    b"[",
    b"]",
    b"{",
    b"}",
    b"=",
    b":",
    b"\"",
    b"'",
    b"\n",
    b"\n[x]\n",
    b"PK\x03\x04",
    b"IDAT",
    b"\xff\xd8\xff",
];

/// Integers worth writing over a length field.
fn interesting_values(len: usize) -> [u64; 9] {
    [0, 1, 0x7f, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff, len as u64, u64::MAX]
}

/// Applies one to four random edits to `data`.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = [0x00, 0x01, 0x7f, 0x80, 0xff][rng.below(5)];
            }
            2 => data.truncate(rng.below(len + 1)),
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                data.splice(at..at, bytes);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(16)).min(len);
                data.drain(at..end);
            }
            5 if len > 0 => {
                let from = rng.below(len);
                let end = (from + 1 + rng.below(64)).min(len);
                let chunk = data[from..end].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            6 if len >= 2 => {
                // A length field: 2, 4 or 8 bytes, either byte order.
                let width = [2usize, 4, 8][rng.below(3)].min(len);
                let at = rng.below(len - width + 1);
                let values = interesting_values(len);
                let v = values[rng.below(values.len())];
                let bytes = if rng.below(2) == 0 {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                let slice = if rng.below(2) == 0 {
                    &bytes[..width]
                } else {
                    &bytes[8 - width..]
                };
                data[at..at + width].copy_from_slice(slice);
            }
            _ => {
                let at = rng.below(len + 1);
                data.splice(at..at, TOKENS[rng.below(TOKENS.len())].iter().copied());
            }
        }
    }
}

#[test]
fn seeded_mutations_of_the_corpora_do_not_panic() {
    let mut failures = Vec::new();
    for (t, target) in TARGETS.iter().enumerate() {
        let corpus = files_in(&fuzz_dir().join("corpus").join(target));
        assert!(!corpus.is_empty(), "no seed corpus for {target}");
        let mut rng = Rng(0x5EED_0000 + t as u64);
        for k in 0..MUTATIONS_PER_TARGET {
            let (name, base) = &corpus[rng.below(corpus.len())];
            let mut data = base.clone();
            mutate(&mut rng, &mut data);
            if let Some(msg) = panics(target, &data) {
                let keep = std::env::temp_dir().join(format!("fuzz-smoke-{target}-{k}.bin"));
                let _ = std::fs::write(&keep, &data);
                failures.push(format!(
                    "{target}: mutation {k} of {name} (input kept at {}): {msg}",
                    keep.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "inputs that panic:\n{}", failures.join("\n"));
}

/// The seed corpora: small valid files of every format (and a few variants), written to
/// `fuzz/corpus/<target>/seed-*`. Ignored: run it to regenerate the seeds.
#[test]
#[ignore = "writes the committed seed corpora"]
fn write_seed_corpora() {
    for (target, files) in seeds::all() {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
    }
}

/// Every seed must parse (`Ok`): a seed that is refused would only teach the fuzzer the error
/// path.
#[test]
fn every_seed_is_a_valid_file() {
    for (target, files) in seeds::all() {
        for (name, bytes) in files {
            assert!(seeds::accepted(target, &bytes), "seed {target}/{name} is refused");
        }
    }
}

mod seeds {
    use std::io::Write;
    use std::path::Path;

    use biolayers::layers::ElmanRnnConfig;
    use biolayers::optim::OptimizerConfig;
    use biotasks::checkpoint::{self, CheckpointFiles, RunState};
    use biotasks::data::FolderOptions;
    use biotasks::fit::EpochRecord;

    use super::join_two;

    type Files = Vec<(String, Vec<u8>)>;

    /// The seeds of every target.
    pub fn all() -> Vec<(&'static str, Files)> {
        vec![
            ("npy", npy()),
            ("idx", idx()),
            ("cifar_binary", cifar()),
            ("image_decode", images()),
            ("config_ini", configs("ini")),
            ("config_toml", config_toml()),
            ("checkpoint", checkpoints()),
        ]
    }

    /// Whether the parser of `target` accepts the seed.
    pub fn accepted(target: &str, data: &[u8]) -> bool {
        let p = Path::new("seed");
        match target {
            "npy" => {
                bionpy::parse_npy::<f64>(data, p).is_ok()
                    || bionpy::parse_npy::<f32>(data, p).is_ok()
                    || bionpy::parse_npy::<u8>(data, p).is_ok()
                    || bionpy::parse_npy::<i64>(data, p).is_ok()
            }
            "idx" => {
                let (i, l) = super::fuzz_calls::split_two(data);
                biotasks::data::parse_idx(i, l, p, p).is_ok()
            }
            "cifar_binary" => biotasks::data::parse_cifar10_binary(data, p).is_ok(),
            "image_decode" => {
                let origin = Path::new(if data[0] & 1 == 0 { "a.png" } else { "a.jpg" });
                biotasks::data::decode_image(&data[1..], origin, &FolderOptions::default()).is_ok()
            }
            "config_ini" => bioexperiments::rnn_runs::RunsConfig::from_ini(&text(data), p).is_ok(),
            "config_toml" => {
                bioexperiments::rnn_runs::RunsConfig::from_toml(&text(data), p).is_ok()
                    || bioexperiments::common::differing_keys(&text(data), "").is_ok()
            }
            "checkpoint" => {
                let (json, npz) = super::fuzz_calls::split_two(data);
                let (mut model, mut opt) = rnn_and_adam();
                let files = CheckpointFiles::new(p, "checkpoint");
                checkpoint::load_from_bytes(json, npz, &files, &mut model, &mut opt, Some(7)).is_ok()
            }
            _ => false,
        }
    }

    fn text(data: &[u8]) -> String {
        String::from_utf8(data.to_vec()).unwrap()
    }

    /// An `.npy` file with a hand-written header (`version` 1 or 2).
    fn npy_raw(version: u8, header: &str, payload: &[u8]) -> Vec<u8> {
        let prefix = if version == 1 { 10 } else { 12 };
        let mut h = header.to_string();
        h.push_str(&" ".repeat((64 - (prefix + h.len() + 1) % 64) % 64));
        h.push('\n');
        let mut out = b"\x93NUMPY".to_vec();
        out.extend_from_slice(&[version, 0]);
        if version == 1 {
            out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(h.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn npy() -> Files {
        let f64s: Vec<f64> = vec![0.0, -1.5, f64::NAN, f64::INFINITY, 1e-300, 6.0];
        let f64_bytes: Vec<u8> = f64s.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f32_be: Vec<u8> = [1.0f32, -2.0, 3.5, 0.25].iter().flat_map(|v| v.to_be_bytes()).collect();
        vec![
            (
                "u8-2x3".into(),
                bionpy::npy_bytes(&[2, 3], &[1u8, 2, 3, 4, 5, 255]).unwrap(),
            ),
            (
                "i64-4".into(),
                bionpy::npy_bytes(&[4], &[-1i64, 0, 1, i64::MAX]).unwrap(),
            ),
            (
                "f32-2x2x2".into(),
                bionpy::npy_bytes(&[2, 2, 2], &[0.5f32, 1.0, -1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap(),
            ),
            ("f64-3x2".into(), bionpy::npy_bytes(&[3, 2], &f64s).unwrap()),
            ("f64-scalar".into(), bionpy::npy_bytes(&[], &[2.5f64]).unwrap()),
            ("f64-0x3".into(), bionpy::npy_bytes::<f64>(&[0, 3], &[]).unwrap()),
            (
                "f64-fortran-2x3".into(),
                npy_raw(
                    1,
                    "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
                    &f64_bytes,
                ),
            ),
            (
                "f32-big-endian-v2".into(),
                npy_raw(
                    2,
                    "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }",
                    &f32_be,
                ),
            ),
        ]
    }

    fn idx_pair(n: u32, rows: u32, cols: u32) -> (Vec<u8>, Vec<u8>) {
        let mut images = [0x0803u32, n, rows, cols]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<u8>>();
        images.extend((0..n * rows * cols).map(|i| (i * 37 % 256) as u8));
        let mut labels = [0x0801u32, n].iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
        labels.extend((0..n).map(|i| (i % 10) as u8));
        (images, labels)
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    fn idx() -> Files {
        let (images, labels) = idx_pair(3, 4, 5);
        let (big_images, big_labels) = idx_pair(12, 8, 8);
        vec![
            ("3x4x5".into(), join_two(&images, &labels).unwrap()),
            (
                "12x8x8-gzip".into(),
                join_two(&gzip(&big_images), &gzip(&big_labels)).unwrap(),
            ),
        ]
    }

    fn cifar() -> Files {
        let record = |label: u8| {
            let mut r = vec![label];
            r.extend((0..3072u32).map(|i| (i * 7 % 251) as u8));
            r
        };
        let mut two = record(3);
        two.extend(record(9));
        vec![("one-record".into(), record(0)), ("two-records".into(), two)]
    }

    /// A test picture: smooth gradients with an edge, so that JPEG has something to code.
    fn picture(w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, if x > y { 200 } else { 30 }])
        })
    }

    fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn images() -> Files {
        use image::{DynamicImage, ImageFormat};
        let rgb = DynamicImage::ImageRgb8(picture(6, 5));
        let gray = DynamicImage::ImageLuma8(rgb.to_luma8());
        let rgba16 = DynamicImage::ImageRgba16(rgb.to_rgba16());
        let la = DynamicImage::ImageLumaA8(rgb.to_luma_alpha8());
        let jpeg_rgb = DynamicImage::ImageRgb8(picture(16, 9));
        let jpeg_gray = DynamicImage::ImageLuma8(jpeg_rgb.to_luma8());
        let with_mode = |mode: u8, bytes: Vec<u8>| {
            let mut v = vec![mode];
            v.extend(bytes);
            v
        };
        vec![
            ("png-rgb".into(), with_mode(0, encode(&rgb, ImageFormat::Png))),
            ("png-gray-as-gray".into(), with_mode(2, encode(&gray, ImageFormat::Png))),
            (
                "png-rgba16-resized".into(),
                with_mode(4, encode(&rgba16, ImageFormat::Png)),
            ),
            ("png-luma-alpha".into(), with_mode(0, encode(&la, ImageFormat::Png))),
            ("jpeg-rgb".into(), with_mode(1, encode(&jpeg_rgb, ImageFormat::Jpeg))),
            (
                "jpeg-gray-resized".into(),
                with_mode(7, encode(&jpeg_gray, ImageFormat::Jpeg)),
            ),
        ]
    }

    /// The committed example configs of `rnn-run` with extension `ext`.
    fn configs(ext: &str) -> Files {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/configs");
        let mut files: Files = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        files.sort();
        files
    }

    fn config_toml() -> Files {
        let mut files = configs("toml");
        let cfg = bioexperiments::rnn_memory::RnnMemoryConfig::for_preset(bioexperiments::Preset::Quick, 3);
        let saved = format!(
            "# cargo xtask reproduce rnn-memory\n{}",
            bioexperiments::common::toml_of(&cfg).unwrap()
        );
        files.push(("reproduce-rnn-memory-config.toml".into(), saved.into_bytes()));
        files
    }

    fn rnn_and_adam() -> (biolayers::layers::ElmanRnn, biolayers::optim::Optimizer) {
        let model = ElmanRnnConfig::new(2, 4, 1)
            .init(&mut biorng::Stream::seeded(1))
            .unwrap();
        (model, OptimizerConfig::torch_adam(1e-3).build().unwrap())
    }

    /// A checkpoint of the fuzz target's model after one training step, two epochs (NaN
    /// accuracies, as the RNN runs write them) and seed 7; and one without a seed, before any step.
    fn checkpoints() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let files = CheckpointFiles::new(dir.path(), "checkpoint");
        let pair = || {
            join_two(
                &std::fs::read(files.json()).unwrap(),
                &std::fs::read(files.npz()).unwrap(),
            )
            .unwrap()
        };
        let history: Vec<EpochRecord> = (1..=2)
            .map(|epoch| EpochRecord {
                epoch,
                train_loss: 1.0 / epoch as f64,
                train_acc: f64::NAN,
                val_loss: 0.5 / epoch as f64,
                val_acc: f64::NAN,
            })
            .collect();
        let (mut model, mut opt) = rnn_and_adam();
        let state = RunState {
            history: history.clone(),
            seed: None,
            early_stopping: None,
        };
        checkpoint::save(&files, &model, &opt, &state).unwrap();
        let fresh = pair();
        let x = bioautograd::Tensor::from_vec(vec![0.5f32; 12], &[2, 3, 2]).unwrap();
        biolayers::train::train_step(&mut model, &mut opt, x, |g, out| g.sum(out)).unwrap();
        let state = RunState {
            history,
            seed: Some(7),
            early_stopping: None,
        };
        checkpoint::save(&files, &model, &opt, &state).unwrap();
        vec![("after-one-step".into(), pair()), ("no-seed-no-step".into(), fresh)]
    }
}
