//! Helpers shared by the integration tests.

use std::path::Path;

/// Writes a tiny MNIST in IDX format into `dir/mnist`: 60 training and 30 test images of
/// 28 × 28 where each class lights a different band of rows.
pub fn write_fake_mnist(dir: &Path) {
    let mnist = dir.join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    write_idx(&mnist, "train", 60);
    write_idx(&mnist, "t10k", 30);
}

fn write_idx(dir: &Path, stem: &str, n: u32) {
    let mut img = Vec::new();
    for x in [0x0803u32, n, 28, 28] {
        img.extend_from_slice(&x.to_be_bytes());
    }
    let mut lab = Vec::new();
    for x in [0x0801u32, n] {
        lab.extend_from_slice(&x.to_be_bytes());
    }
    for i in 0..n {
        let label = (i % 10) as u8;
        lab.push(label);
        // Each class lights a different band of rows.
        img.extend((0..784u32).map(|p| {
            if (p / 28) / 3 == u32::from(label) {
                200
            } else {
                (p * 7 + i) as u8 % 40
            }
        }));
    }
    std::fs::write(dir.join(format!("{stem}-images-idx3-ubyte")), img).unwrap();
    std::fs::write(dir.join(format!("{stem}-labels-idx1-ubyte")), lab).unwrap();
}
