//! CIFAR-10G (Evans et al. 2022, CC BY-NC-SA 4.0): six out-of-distribution test sets in the
//! CIFAR-10 classes, 10 images per class, 224x224 single-channel PNG, laid out as
//! `224x224/<set>/<class>/<class>NNN.png`. BioNet loads them in greyscale at 224x224 (no
//! resizing) with Keras' `flow_from_directory` (classes and files in sorted order) and the
//! CIFAR-10 label order; the `_inverted` sets are pre-made folders.
//!
//! Labels are the CIFAR-10 indices of the class folder names ([`CIFAR10_CLASSES`]), so a set
//! that lacks a class keeps the other labels right; an unknown folder name is an error.
//!
//! # Shapes
//! `(100, 1, 224, 224)` `u8` per set with [`ColorMode::Gray`]; the 1-bit contour PNGs decode to
//! 0 and 255, as PIL's `convert('L')` gives them.

use std::path::{Path, PathBuf};

use super::{data_err, load_image_folder, FolderOptions, ImageDataset, CIFAR10_CLASSES};
use crate::error::Result;

/// The six sets, in upstream's order (`bionet/config.py: generalisation_sets`).
pub const CIFAR10G_SETS: [&str; 6] = [
    "line_drawings",
    "line_drawings_inverted",
    "contours",
    "contours_inverted",
    "silhouettes",
    "silhouettes_inverted",
];

/// The resolution folder upstream uses.
pub const CIFAR10G_RESOLUTION: &str = "224x224";

/// The folder that holds the set folders: `dir/224x224` when `dir` is the CIFAR-10G folder,
/// `dir/cifar10g/224x224` when it is the data folder, or `dir` itself when it already holds a
/// known set.
pub fn cifar10g_sets_dir(dir: &Path) -> Result<PathBuf> {
    let candidates = [
        dir.join(CIFAR10G_RESOLUTION),
        dir.join("cifar10g").join(CIFAR10G_RESOLUTION),
        dir.to_path_buf(),
    ];
    candidates
        .into_iter()
        .find(|c| CIFAR10G_SETS.iter().any(|s| c.join(s).is_dir()))
        .ok_or_else(|| {
            data_err(
                dir,
                format!(
                    "no CIFAR-10G sets here (expected {CIFAR10G_RESOLUTION}/<set>/<class>/*.png with sets {})",
                    CIFAR10G_SETS.join(", ")
                ),
            )
        })
}

/// The sets present under `dir` (see [`cifar10g_sets_dir`]): the known ones in upstream's
/// order, then any other sub-folders in sorted order.
pub fn cifar10g_sets(dir: &Path) -> Result<Vec<String>> {
    let root = cifar10g_sets_dir(dir)?;
    let mut others: Vec<String> = std::fs::read_dir(&root)
        .map_err(|e| data_err(&root, e.to_string()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !CIFAR10G_SETS.contains(&n.as_str()))
        .collect();
    others.sort();
    let mut sets: Vec<String> = CIFAR10G_SETS
        .iter()
        .filter(|s| root.join(s).is_dir())
        .map(|s| s.to_string())
        .collect();
    sets.extend(others);
    Ok(sets)
}

/// Loads one CIFAR-10G set (`set` as listed by [`cifar10g_sets`]) with `opts` (upstream:
/// `ColorMode::Gray`, no resize). Labels are CIFAR-10 indices and `classes` the ten CIFAR-10
/// names.
pub fn load_cifar10g(dir: &Path, set: &str, opts: &FolderOptions) -> Result<ImageDataset> {
    let root = cifar10g_sets_dir(dir)?;
    let set_dir = root.join(set);
    if set.is_empty() || set.contains(['/', '\\']) || !set_dir.is_dir() {
        let known = cifar10g_sets(dir)?.join(", ");
        return Err(data_err(
            &set_dir,
            format!("unknown CIFAR-10G set {set:?}; available: {known}"),
        ));
    }
    let mut ds = load_image_folder(&set_dir, opts)?;
    let mapping: Vec<usize> = ds
        .classes
        .iter()
        .map(|name| {
            CIFAR10_CLASSES.iter().position(|c| c == name).ok_or_else(|| {
                data_err(
                    &set_dir.join(name),
                    format!(
                        "class folder {name:?} is not a CIFAR-10 class ({})",
                        CIFAR10_CLASSES.join(", ")
                    ),
                )
            })
        })
        .collect::<Result<_>>()?;
    for label in &mut ds.labels {
        *label = mapping[*label];
    }
    ds.classes = CIFAR10_CLASSES.iter().map(|c| c.to_string()).collect();
    Ok(ds)
}
