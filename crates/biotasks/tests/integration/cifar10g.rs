//! CIFAR-10G loading on a tiny folder tree written here (8-bit and hand-built 1-bit PNGs), plus
//! a check of the real copy under ../shared/data/cifar10g when it is present.

use std::path::{Path, PathBuf};

use biotasks::data::{
    cifar10g_sets, cifar10g_sets_dir, load_cifar10g, ColorMode, FolderOptions, CIFAR10G_SETS, CIFAR10_CLASSES,
};
use biotasks::perturb::{perturb_dataset, PerturbOptions, Perturbation, Perturber};
use biotasks::{Error, RngKind};

fn gray() -> FolderOptions {
    FolderOptions {
        color: ColorMode::Gray,
        ..FolderOptions::default()
    }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A 1-bit greyscale PNG (the format of the contour sets), pixel on where `on(y, x)`.
fn one_bit_png(path: &Path, w: u32, h: u32, on: impl Fn(u32, u32) -> bool) {
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0u8); // filter: none
        let mut byte = 0u8;
        for x in 0..w {
            if on(y, x) {
                byte |= 0x80 >> (x % 8);
            }
            if x % 8 == 7 || x == w - 1 {
                raw.push(byte);
                byte = 0;
            }
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut z, &raw).unwrap();
    let idat = z.finish().unwrap();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]); // bit depth 1, greyscale
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &idat);
    chunk(&mut png, b"IEND", &[]);
    std::fs::write(path, png).unwrap();
}

fn gray_png(path: &Path, w: u32, h: u32, value: impl Fn(u32, u32) -> u8) {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([value(y, x)]))
        .save(path)
        .unwrap();
}

/// `root/cifar10g/224x224/{line_drawings,contours,zz_extra}/{airplane,cat}/...` with 4x4 images.
fn tree(root: &Path) -> PathBuf {
    let sets = root.join("cifar10g").join("224x224");
    for class in ["cat", "airplane"] {
        let d = sets.join("line_drawings").join(class);
        std::fs::create_dir_all(&d).unwrap();
        let base = if class == "cat" { 100 } else { 10 };
        for i in 1..=2u8 {
            gray_png(&d.join(format!("{class}00{i}.png")), 4, 4, |y, x| {
                base + i + (y * 4 + x) as u8
            });
        }
        let d = sets.join("contours").join(class);
        std::fs::create_dir_all(&d).unwrap();
        one_bit_png(&d.join(format!("{class}001.png")), 4, 4, |y, x| x == y);
        std::fs::create_dir_all(sets.join("zz_extra").join(class)).unwrap();
    }
    root.join("cifar10g")
}

#[test]
fn sets_are_found_from_any_of_three_folders_in_upstream_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tree(tmp.path());
    let want = vec!["line_drawings", "contours", "zz_extra"];
    assert_eq!(cifar10g_sets(&dir).unwrap(), want);
    assert_eq!(cifar10g_sets(tmp.path()).unwrap(), want);
    assert_eq!(cifar10g_sets(&dir.join("224x224")).unwrap(), want);
    assert_eq!(cifar10g_sets_dir(tmp.path()).unwrap(), dir.join("224x224"));
    assert!(matches!(cifar10g_sets(&dir.join("nope")), Err(Error::Data { .. })));
}

#[test]
fn labels_are_cifar10_indices_and_pixels_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tree(tmp.path());
    let ds = load_cifar10g(&dir, "line_drawings", &gray()).unwrap();
    assert_eq!(ds.classes, CIFAR10_CLASSES.map(String::from).to_vec());
    assert_eq!(ds.labels, vec![0, 0, 3, 3]); // airplane x2, then cat x2 (sorted folders)
    assert_eq!((ds.channels, ds.height, ds.width), (1, 4, 4));
    assert_eq!(ds.image(0).unwrap()[..3], [11, 12, 13]);
    assert_eq!(ds.image(3).unwrap()[0], 102);

    // 1-bit PNGs decode to 0 / 255, as PIL's convert('L') gives them.
    let contours = load_cifar10g(&dir, "contours", &gray()).unwrap();
    assert_eq!(contours.labels, vec![0, 3]);
    let img = contours.image(0).unwrap();
    for y in 0..4 {
        for x in 0..4 {
            assert_eq!(img[y * 4 + x], if x == y { 255 } else { 0 });
        }
    }
}

#[test]
fn unknown_sets_and_classes_are_errors_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tree(tmp.path());
    let err = load_cifar10g(&dir, "sketches", &gray()).unwrap_err();
    assert!(err.to_string().contains("line_drawings, contours, zz_extra"), "{err}");
    assert!(load_cifar10g(&dir, "../224x224", &gray()).is_err());
    let unicorn = dir.join("224x224/line_drawings/unicorn");
    std::fs::create_dir_all(&unicorn).unwrap();
    gray_png(&unicorn.join("u.png"), 4, 4, |_, _| 0);
    match load_cifar10g(&dir, "line_drawings", &gray()) {
        Err(Error::Data { path, detail }) => {
            assert_eq!(path, unicorn);
            assert!(detail.contains("not a CIFAR-10 class"), "{detail}");
        }
        other => panic!("expected a data error, got {other:?}"),
    }
}

#[test]
fn perturbations_apply_to_a_loaded_set() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tree(tmp.path());
    let ds = load_cifar10g(&dir, "contours", &gray()).unwrap();
    let mut inv = Perturber::new(Perturbation::Invert, 1, PerturbOptions::default(), RngKind::Seeded, 0).unwrap();
    let out = perturb_dataset(&ds, &mut inv).unwrap();
    assert_eq!(out.len(), 2 * 16);
    assert_eq!((out[0], out[1]), (0.0, 1.0));
    let rgb = load_cifar10g(&dir, "contours", &FolderOptions::default()).unwrap();
    assert!(perturb_dataset(&rgb, &mut inv).is_err());
}

/// The real copy, when the shared data folder is there: six sets, 10 images per class at
/// 224x224, one channel; 1-bit contours decode to 0/255.
#[test]
fn real_cifar10g_copy_if_present() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cifar10g");
    if !dir.is_dir() {
        eprintln!("skipped: {} not found", dir.display());
        return;
    }
    assert_eq!(cifar10g_sets(&dir).unwrap(), CIFAR10G_SETS.map(String::from).to_vec());
    let opts = FolderOptions {
        max_per_class: Some(1),
        ..gray()
    };
    for set in CIFAR10G_SETS {
        let ds = load_cifar10g(&dir, set, &opts).unwrap();
        assert_eq!((ds.len(), ds.channels, ds.height, ds.width), (10, 1, 224, 224), "{set}");
        assert_eq!(ds.labels, (0..10).collect::<Vec<_>>(), "{set}");
        if set.starts_with("contours") {
            assert!(ds.images.iter().all(|&v| v == 0 || v == 255), "{set}");
        }
    }
}
