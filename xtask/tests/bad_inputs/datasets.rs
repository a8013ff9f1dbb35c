//! Broken datasets behind `--data`: MNIST IDX (for `reproduce schizo-mnist` and `mnist-latents`),
//! CIFAR-10 JPEG folders (`reproduce schizo-cifar`/`mouse-cifar`/`bionet`) and CIFAR-10G PNGs.

use std::path::Path;

use crate::fixtures::{cifar_jpeg, idx_images, idx_labels, image, mnist, write, GARBAGE};
use crate::harness::{case, Case, Group};

/// Each broken MNIST variant: its folder name under the scratch folder, and what the message
/// must name.
const MNIST_VARIANTS: [(&str, &str); 13] = [
    ("no_mnist", "mnist"),
    ("garbage_images", "train-images-idx3-ubyte"),
    ("garbage_labels", "train-labels-idx1-ubyte"),
    ("wrong_magic", "magic"),
    ("truncated_images", "truncated"),
    ("truncated_labels", "truncated"),
    ("count_mismatch", "labels for"),
    ("label_out_of_range", "label 200"),
    ("zero_rows", "0"),
    ("wrong_size", "32"),
    ("bad_gzip", "gzip"),
    ("empty_images", "train-images-idx3-ubyte"),
    ("huge_header", "4294967295"),
];

fn make_mnist_variant(root: &Path, variant: &str) {
    let d = root.join(variant).join("mnist");
    if variant == "no_mnist" {
        std::fs::create_dir_all(root.join(variant)).unwrap();
        return;
    }
    mnist(&d, 40, 20);
    let images = d.join("train-images-idx3-ubyte");
    let labels = d.join("train-labels-idx1-ubyte");
    match variant {
        "garbage_images" => write(&images, GARBAGE),
        "garbage_labels" => write(&labels, GARBAGE),
        "wrong_magic" => {
            let mut b = std::fs::read(&images).unwrap();
            b[3] = 0x01;
            write(&images, &b);
        }
        "truncated_images" => write(&images, &idx_images(40, 28, 28, 40 * 784 - 1)),
        "truncated_labels" => {
            let b = idx_labels(&[1; 40]);
            write(&labels, &b[..b.len() - 5]);
        }
        "count_mismatch" => write(&labels, &idx_labels(&[1; 39])),
        "label_out_of_range" => {
            let mut l = vec![1u8; 40];
            l[7] = 200;
            write(&labels, &idx_labels(&l));
        }
        "zero_rows" => write(&images, &idx_images(40, 0, 28, 0)),
        "wrong_size" => write(&images, &idx_images(40, 32, 32, 40 * 1024)),
        "bad_gzip" => {
            std::fs::remove_file(&images).unwrap();
            write(&d.join("train-images-idx3-ubyte.gz"), &[0x1f, 0x8b, 8, 0, 1, 2, 3]);
        }
        "empty_images" => write(&images, b""),
        "huge_header" => write(&images, &idx_images(u32::MAX, u32::MAX, u32::MAX, 100)),
        other => panic!("unknown variant {other}"),
    }
}

pub fn mnist_data() -> Group {
    let mut cases: Vec<Case> = Vec::new();
    for (variant, name) in MNIST_VARIANTS {
        cases.push(case(
            &[
                "reproduce",
                "schizo-mnist",
                "--quick",
                "--no-progress",
                "--data",
                variant,
                "--out",
                "r",
            ],
            &[name],
        ));
        cases.push(case(
            &["mnist-latents", "--quiet", "--data", variant, "--out", "l.npy"],
            &[name],
        ));
    }
    cases.extend([
        case(
            &[
                "reproduce",
                "schizo-mnist",
                "--quick",
                "--data",
                "missing_dir",
                "--out",
                "r",
            ],
            &["missing_dir"],
        ),
        case(
            &["mnist-latents", "--data", "missing_dir", "--out", "l.npy"],
            &["missing_dir"],
        ),
        case(&["mnist-latents", "--data", "ok", "--out", "l.txt"], &["l.txt", ".npy"]),
        case(
            &[
                "mnist-latents",
                "--data",
                "ok",
                "--out",
                "l.npy",
                "--labels-out",
                "y.csv",
            ],
            &["y.csv", ".npy"],
        ),
        case(&["mnist-latents", "--data", "ok", "--out", "dir/l.npy"], &["dir/l.npy"]),
        case(
            &[
                "mnist-latents",
                "--data",
                "ok",
                "--out",
                "l.npy",
                "--labels-out",
                "l.npy",
            ],
            &["l.npy"],
        ),
        case(
            &["mnist-latents", "--data", "ok", "--out", "l.npy", "--train-images", "0"],
            &["train", "0"],
        ),
        case(
            &["mnist-latents", "--data", "ok", "--out", "l.npy", "--batch-size", "0"],
            &["batch_size", "0"],
        ),
        case(
            &["mnist-latents", "--data", "ok", "--out", "l.npy", "--epochs", "0"],
            &["epochs", "0"],
        ),
    ]);
    Group {
        name: "mnist-data",
        setup: |dir: &Path| {
            for (variant, _) in MNIST_VARIANTS {
                make_mnist_variant(dir, variant);
            }
            mnist(&dir.join("ok/mnist"), 40, 20);
            // A folder where the output file should go.
            std::fs::create_dir_all(dir.join("dir/l.npy")).unwrap();
        },
        cases,
    }
}

/// Each broken CIFAR-10 JPEG folder variant and what the message must name.
const CIFAR_VARIANTS: [(&str, &str); 10] = [
    ("no_cifar", "cifar10-jpeg"),
    ("missing_class", "bird"),
    ("extra_class", "unicorn"),
    ("empty_class", "cat"),
    ("corrupt_jpeg", "0001.jpg"),
    ("text_file", "notes.txt"),
    ("wrong_size", "64"),
    ("no_test", "test"),
    ("misspelled_class", "aeroplane"),
    ("truncated_jpeg", "0000.jpg"),
];

fn make_cifar_variant(root: &Path, variant: &str) {
    let c = root.join(variant).join("cifar10-jpeg");
    if variant == "no_cifar" {
        std::fs::create_dir_all(root.join(variant)).unwrap();
        return;
    }
    cifar_jpeg(&c, 2);
    let train = c.join("train");
    match variant {
        "missing_class" => std::fs::remove_dir_all(train.join("bird")).unwrap(),
        "extra_class" => image(&train.join("unicorn/0000.jpg"), 9),
        "empty_class" => {
            std::fs::remove_dir_all(train.join("cat")).unwrap();
            std::fs::create_dir_all(train.join("cat")).unwrap();
        }
        "corrupt_jpeg" => write(&train.join("dog/0001.jpg"), GARBAGE),
        "text_file" => write(&train.join("frog/notes.txt"), b"taken on a sunny day"),
        "wrong_size" => {
            let p = train.join("ship/0000.jpg");
            image::RgbImage::new(64, 64).save(&p).unwrap();
        }
        "no_test" => std::fs::remove_dir_all(c.join("test")).unwrap(),
        "misspelled_class" => std::fs::rename(train.join("airplane"), train.join("aeroplane")).unwrap(),
        "truncated_jpeg" => {
            let p = train.join("horse/0000.jpg");
            let b = std::fs::read(&p).unwrap();
            write(&p, &b[..b.len() / 2]);
        }
        other => panic!("unknown variant {other}"),
    }
}

pub fn cifar_data() -> Group {
    let mut cases: Vec<Case> = Vec::new();
    for (variant, name) in CIFAR_VARIANTS {
        cases.push(case(
            &[
                "reproduce",
                "schizo-cifar",
                "--quick",
                "--no-progress",
                "--data",
                variant,
                "--out",
                "r",
            ],
            &[name],
        ));
        cases.push(case(
            &[
                "reproduce",
                "bionet",
                "--smoke",
                "--no-progress",
                "--data",
                variant,
                "--out",
                "r",
            ],
            &[name],
        ));
    }
    cases.push(case(
        &[
            "reproduce",
            "mouse-cifar",
            "--quick",
            "--no-progress",
            "--data",
            "missing_class",
            "--out",
            "r",
        ],
        &["bird"],
    ));
    cases.push(case(
        &[
            "reproduce",
            "mouse-ddim",
            "--quick",
            "--no-fid",
            "--no-progress",
            "--data",
            "missing_class",
            "--out",
            "r",
        ],
        &["bird"],
    ));
    Group {
        name: "cifar-data",
        setup: |dir: &Path| {
            for (variant, _) in CIFAR_VARIANTS {
                make_cifar_variant(dir, variant);
            }
        },
        cases,
    }
}
