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

/// Where a CIFAR-10 copy comes from: the official binary batches (`cifar-10-batches-bin/`, as
/// the tarball unpacks) or the JPEG folders (`cifar10-jpeg/{train,test}/<class>/`, quality 75).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarFormat {
    /// The official binary batches: the original pixels.
    Binary,
    /// The JPEG copy: every image re-encoded at quality 75.
    Jpeg,
}

impl CifarFormat {
    /// The folder of this format under a data folder.
    pub fn folder(self) -> &'static str {
        match self {
            CifarFormat::Binary => "cifar-10-batches-bin",
            CifarFormat::Jpeg => "cifar10-jpeg",
        }
    }

    /// The format a run on `data` uses: `given`, or the binary batches when
    /// `data/cifar-10-batches-bin/test_batch.bin` exists and the JPEG copy otherwise.
    pub fn resolve(given: Option<CifarFormat>, data: &Path) -> CifarFormat {
        given.unwrap_or_else(|| {
            if data.join(CifarFormat::Binary.folder()).join("test_batch.bin").is_file() {
                CifarFormat::Binary
            } else {
                CifarFormat::Jpeg
            }
        })
    }

    /// One sentence for a summary: which copy the run read.
    pub fn describe(self) -> &'static str {
        match self {
            CifarFormat::Binary => "CIFAR-10 from the official binary batches (`cifar-10-batches-bin`).",
            CifarFormat::Jpeg => "CIFAR-10 here is the JPEG (quality 75) copy of the data set (`cifar10-jpeg`), not the original binary batches: results differ slightly from the original set.",
        }
    }
}

impl std::str::FromStr for CifarFormat {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "binary" => Ok(CifarFormat::Binary),
            "jpeg" => Ok(CifarFormat::Jpeg),
            other => Err(crate::Error::InvalidParameter {
                param: "cifar-format",
                value: other.to_string(),
                reason: "expected binary or jpeg".into(),
            }),
        }
    }
}

/// CIFAR-10's training images (the first `max_per_class` of every class, in file order, when
/// given) and its 10 000 test images, from `data` in `format`.
///
/// # Errors
/// [`crate::Error::Data`] naming the missing or corrupt file or folder.
pub fn load_cifar10(
    data: &Path,
    format: CifarFormat,
    max_per_class: Option<usize>,
) -> Result<(ImageDataset, ImageDataset)> {
    let root = data.join(format.folder());
    match format {
        CifarFormat::Jpeg => {
            let train = super::load_cifar10_folder(
                &root.join("train"),
                &super::FolderOptions {
                    max_per_class,
                    ..Default::default()
                },
            )?;
            let test = super::load_cifar10_folder(&root.join("test"), &super::FolderOptions::default())?;
            Ok((train, test))
        }
        CifarFormat::Binary => {
            // The test set first: it is one file, so a missing copy is reported quickly.
            let test = load_cifar10_binary(&root, Split::Test)?;
            let train = load_cifar10_binary(&root, Split::Train)?;
            let train = match max_per_class {
                Some(n) => {
                    let mut seen = [0usize; 10];
                    let keep: Vec<usize> = (0..train.len())
                        .filter(|&i| {
                            let c = train.labels[i];
                            seen[c] += 1;
                            seen[c] <= n
                        })
                        .collect();
                    train.subset(&keep)?
                }
                None => train,
            };
            Ok((train, test))
        }
    }
}
