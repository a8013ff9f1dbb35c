//! CIFAR-10 in the official binary format: records of 1 label byte + 3072 pixel bytes (the red,
//! green and blue 32×32 planes), files `data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`.

use std::path::Path;

use super::{data_err, ImageDataset, Split};
use crate::error::Result;

/// The CIFAR-10 class names, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const RECORD: usize = 1 + 3 * 32 * 32;

/// Reads the binary CIFAR-10 batches of `split` from `dir`.
pub fn load_cifar10_binary(dir: &Path, split: Split) -> Result<ImageDataset> {
    let files: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".to_string()],
    };
    let mut all: Option<ImageDataset> = None;
    for f in files {
        let path = dir.join(&f);
        let bytes = std::fs::read(&path).map_err(|e| data_err(&path, e.to_string()))?;
        let batch = parse_cifar10_binary(&bytes, &path)?;
        match all.as_mut() {
            None => all = Some(batch),
            Some(a) => {
                a.images.extend_from_slice(&batch.images);
                a.labels.extend_from_slice(&batch.labels);
            }
        }
    }
    all.ok_or_else(|| data_err(dir, "no CIFAR-10 batch files"))
}

/// Parses the bytes of one CIFAR-10 binary batch file (`origin` names it in errors).
///
/// # Errors
/// [`crate::Error::Data`] naming `origin`: an empty file or one that is not a whole number of
/// records, a label outside `0..10`.
pub fn parse_cifar10_binary(bytes: &[u8], origin: &Path) -> Result<ImageDataset> {
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(data_err(
            origin,
            format!("{} bytes is not a whole number of {RECORD}-byte records", bytes.len()),
        ));
    }
    let n = bytes.len() / RECORD;
    let mut images = Vec::with_capacity(n * (RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for rec in bytes.chunks_exact(RECORD) {
        let label = usize::from(rec[0]);
        if label >= 10 {
            return Err(data_err(origin, format!("label {label} out of range 0..10")));
        }
        labels.push(label);
        images.extend_from_slice(&rec[1..]);
    }
    Ok(ImageDataset {
        images,
        labels,
        channels: 3,
        height: 32,
        width: 32,
        classes: CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
    })
}
