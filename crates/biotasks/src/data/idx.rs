//! MNIST in the official IDX format (gzipped or not).
//!
//! Images: big-endian magic `0x00000803`, count, rows, cols, then the bytes. Labels: magic
//! `0x00000801`, count, then one byte per label.

use std::io::Read;
use std::path::Path;

use super::{data_err, ImageDataset, Split};
use crate::error::Result;

/// The file's bytes, gunzipped when they start with the gzip magic.
fn maybe_gunzip(raw: &[u8], origin: &Path) -> Result<Vec<u8>> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw)
            .read_to_end(&mut out)
            .map_err(|e| data_err(origin, format!("gzip: {e}")))?;
        Ok(out)
    } else {
        Ok(raw.to_vec())
    }
}

fn be_u32(bytes: &[u8], at: usize, path: &Path) -> Result<usize> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| data_err(path, "truncated IDX header"))
}

/// Reads an IDX image file and its label file.
pub fn load_idx(images: &Path, labels: &Path) -> Result<ImageDataset> {
    let img = std::fs::read(images).map_err(|e| data_err(images, e.to_string()))?;
    let lab = std::fs::read(labels).map_err(|e| data_err(labels, e.to_string()))?;
    parse_idx(&img, &lab, images, labels)
}

/// Parses the bytes of an IDX image file and its label file (each gzipped or not), as
/// [`load_idx`] reads them; `images_origin` and `labels_origin` name them in errors.
///
/// # Errors
/// [`crate::Error::Data`] naming the file: a wrong magic number, a truncated header or body, a
/// label count that differs from the image count, sizes that overflow.
pub fn parse_idx(images: &[u8], labels: &[u8], images_origin: &Path, labels_origin: &Path) -> Result<ImageDataset> {
    let img = maybe_gunzip(images, images_origin)?;
    let lab = maybe_gunzip(labels, labels_origin)?;
    let (images, labels) = (images_origin, labels_origin);
    if be_u32(&img, 0, images)? != 0x0803 {
        return Err(data_err(images, "not an IDX image file (magic 0x00000803 expected)"));
    }
    if be_u32(&lab, 0, labels)? != 0x0801 {
        return Err(data_err(labels, "not an IDX label file (magic 0x00000801 expected)"));
    }
    let (n, rows, cols) = (
        be_u32(&img, 4, images)?,
        be_u32(&img, 8, images)?,
        be_u32(&img, 12, images)?,
    );
    if rows == 0 || cols == 0 {
        return Err(data_err(
            images,
            format!("images of {rows}x{cols} pixels: both sides must be >= 1"),
        ));
    }
    let n_labels = be_u32(&lab, 4, labels)?;
    if n != n_labels {
        return Err(data_err(labels, format!("{n_labels} labels for {n} images")));
    }
    let need = rows
        .checked_mul(cols)
        .and_then(|px| px.checked_mul(n))
        .ok_or_else(|| data_err(images, format!("IDX sizes overflow: {n} images of {rows}x{cols}")))?;
    let pixels = need
        .checked_add(16)
        .and_then(|end| img.get(16..end))
        .ok_or_else(|| data_err(images, format!("truncated: {need} pixel bytes expected")))?;
    let label_bytes = lab
        .get(8..)
        .and_then(|rest| rest.get(..n))
        .ok_or_else(|| data_err(labels, format!("truncated: {n} labels expected")))?;
    let labels_vec: Vec<usize> = label_bytes.iter().map(|&b| usize::from(b)).collect();
    let classes = labels_vec.iter().max().map_or(0, |&m| m + 1).max(10);
    Ok(ImageDataset {
        images: pixels.to_vec(),
        labels: labels_vec,
        channels: 1,
        height: rows,
        width: cols,
        classes: (0..classes).map(|c| c.to_string()).collect(),
    })
}

/// MNIST from `dir` (`train-images-idx3-ubyte[.gz]` etc., as distributed).
pub fn load_mnist(dir: &Path, split: Split) -> Result<ImageDataset> {
    let stem = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let find = |kind: &str| {
        let base = dir.join(format!("{stem}-{kind}"));
        let gz = dir.join(format!("{stem}-{kind}.gz"));
        if gz.is_file() {
            gz
        } else {
            base
        }
    };
    let images = find("images-idx3-ubyte");
    let labels = find("labels-idx1-ubyte");
    if !images.is_file() {
        return Err(data_err(
            &images,
            "MNIST image file not found (expected the official IDX files, gzipped or not)",
        ));
    }
    let set = load_idx(&images, &labels)?;
    // MNIST's labels are 0..9: a label beyond would train a 10-output net on a class it does
    // not have (the image size is left to the caller, so that tests can use small images).
    if let Some((i, &l)) = set.labels.iter().enumerate().find(|(_, &l)| l >= 10) {
        return Err(data_err(
            &labels,
            format!("label {l} at index {i}: MNIST's labels are 0..9"),
        ));
    }
    Ok(ImageDataset {
        classes: (0..10).map(|c| c.to_string()).collect(),
        ..set
    })
}
