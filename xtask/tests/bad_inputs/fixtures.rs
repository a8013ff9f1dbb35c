//! Fixture files for the bad-input matrix, made here (no data is shipped): valid ones to break
//! one thing at a time, and broken ones of every format (npy, IDX, JPEG/PNG, configs).

use std::path::Path;

pub fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

pub fn npy_f32(path: &Path, shape: &[usize], data: &[f32]) {
    write(path, &bionpy::npy_bytes(shape, data).unwrap());
}

pub fn npy_f64(path: &Path, shape: &[usize], data: &[f64]) {
    write(path, &bionpy::npy_bytes(shape, data).unwrap());
}

pub fn npy_i64(path: &Path, shape: &[usize], data: &[i64]) {
    write(path, &bionpy::npy_bytes(shape, data).unwrap());
}

/// The first half of a valid file's bytes.
pub fn half_of(path: &Path) -> Vec<u8> {
    let b = std::fs::read(path).unwrap();
    b[..b.len() / 2].to_vec()
}

/// Bytes that are no format at all.
pub const GARBAGE: &[u8] = b"this is not the file you are looking for\n\x00\xff\xfe";

/// An IDX image file: magic, count, rows, cols, then the pixels.
pub fn idx_images(n: u32, rows: u32, cols: u32, pixels: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x0803, n, rows, cols] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend((0..pixels).map(|i| (i * 37 % 256) as u8));
    b
}

/// An IDX label file.
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x0801, labels.len() as u32] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(labels);
    b
}

/// A tiny valid MNIST folder (`n_train` and `n_test` 28×28 images).
pub fn mnist(dir: &Path, n_train: usize, n_test: usize) {
    for (stem, n) in [("train", n_train), ("t10k", n_test)] {
        write(
            &dir.join(format!("{stem}-images-idx3-ubyte")),
            &idx_images(n as u32, 28, 28, n * 784),
        );
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        write(&dir.join(format!("{stem}-labels-idx1-ubyte")), &idx_labels(&labels));
    }
}

/// A 32×32 RGB image, as PNG or JPEG by the extension.
pub fn image(path: &Path, seed: u8) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    image::RgbImage::from_fn(32, 32, |x, y| {
        image::Rgb([
            (x as u8).wrapping_mul(7).wrapping_add(seed),
            (y as u8).wrapping_mul(5),
            seed.wrapping_mul(3),
        ])
    })
    .save(path)
    .unwrap();
}

/// A CIFAR-10 JPEG folder `root/{train,test}/<class>/NNNN.jpg` with `per_class` images each.
pub fn cifar_jpeg(root: &Path, per_class: usize) {
    for split in ["train", "test"] {
        for (c, class) in biotasks::data::CIFAR10_CLASSES.iter().enumerate() {
            for i in 0..per_class {
                image(
                    &root.join(split).join(class).join(format!("{i:04}.jpg")),
                    (c * 10 + i) as u8,
                );
            }
        }
    }
}
