//! Image datasets: MNIST (IDX, gzipped or not), CIFAR-10 (binary batches), CIFAR-10G and image folders
//! (one sub-folder per class, JPEG/PNG, RGB or greyscale), held in memory as `u8`; seeded
//! shuffling, batching, normalisation and augmentation (horizontal flip and shifts, or Keras'
//! `ImageDataGenerator`: [`Augmentation`]).
//!
//! # Shapes
//! Images are stored NCHW, `u8`, `(n, channels, height, width)`; labels `(n,)`. A batch is
//! `f32 (batch, channels, height, width)` after `(aug(x / 255) - mean[c]) / std[c]`.

mod augment;
mod cifar;
mod cifar10g;
mod folder;
mod idx;

pub use augment::{Augment, Augmentation, KerasAugment, KerasTransform};
pub use cifar::{load_cifar10, load_cifar10_binary, parse_cifar10_binary, CifarFormat, CIFAR10_CLASSES};
pub use cifar10g::{cifar10g_sets, cifar10g_sets_dir, load_cifar10g, CIFAR10G_RESOLUTION, CIFAR10G_SETS};
pub use folder::{
    decode_image, load_cifar10_folder, load_image_folder, load_image_folder_with_classes, ColorMode, DecodedImage,
    FolderOptions,
};
pub use idx::{load_idx, load_mnist, parse_idx};

use std::path::{Path, PathBuf};

use biorng::Stream;

use crate::error::{Error, Result};

/// Which part of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training part.
    Train,
    /// The test part.
    Test,
}

/// An in-memory labelled image set.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDataset {
    /// `(n, channels, height, width)` bytes.
    pub images: Vec<u8>,
    /// One label per image, `< classes.len()`.
    pub labels: Vec<usize>,
    /// Channels per image (1 or 3).
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Class names (folder names, or the dataset's names).
    pub classes: Vec<String>,
}

pub(crate) fn data_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

impl ImageDataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// The bytes of image `i`.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let n = self.image_len();
        self.images.get(i * n..(i + 1) * n)
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        let n = self.image_len();
        let mut images = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            let img = self
                .image(i)
                .ok_or_else(|| crate::error::invalid("index", i, format!("dataset has {} images", self.len())))?;
            images.extend_from_slice(img);
            labels.push(self.labels[i]);
        }
        Ok(ImageDataset {
            images,
            labels,
            ..self.clone_meta()
        })
    }

    /// The first `n` images (all if fewer).
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len());
        ImageDataset {
            images: self.images[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            ..self.clone_meta()
        }
    }

    fn clone_meta(&self) -> Self {
        ImageDataset {
            images: Vec::new(),
            labels: Vec::new(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            classes: self.classes.clone(),
        }
    }

    /// Per-channel mean and standard deviation of `x / 255` over the whole set (for
    /// normalisation statistics computed on the training set).
    pub fn channel_stats(&self) -> Normalization {
        let (c, hw) = (self.channels, self.height * self.width);
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for img in self.images.chunks_exact(self.image_len().max(1)) {
            for ch in 0..c {
                for &v in &img[ch * hw..(ch + 1) * hw] {
                    let x = f64::from(v) / 255.0;
                    sum[ch] += x;
                    sq[ch] += x * x;
                }
            }
        }
        let count = (self.len() * hw).max(1) as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / count) as f32).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, &m)| ((q / count - f64::from(m).powi(2)).max(0.0).sqrt().max(1e-8)) as f32)
            .collect();
        Normalization { mean, std }
    }

    /// Converts the images at `indices` to an f32 batch (NCHW), augmented, when `augment` is
    /// given, with draws from `rng` (on `x / 255`, as the originals augment), then normalised.
    /// Returns the data and the labels.
    ///
    /// # Errors
    /// A normalisation of another channel count, an index outside the set, an augmentation
    /// setting [`Augmentation::validate`] refuses.
    pub fn batch(
        &self,
        indices: &[usize],
        norm: &Normalization,
        augment: Option<&Augmentation>,
        rng: &mut Stream,
    ) -> Result<(Vec<f32>, Vec<usize>)> {
        if norm.mean.len() != self.channels || norm.std.len() != self.channels {
            return Err(Error::Shape {
                what: "normalisation",
                expected: format!("{} channels", self.channels),
                got: format!("{} means, {} stds", norm.mean.len(), norm.std.len()),
            });
        }
        if let Some(a) = augment {
            a.validate()?;
        }
        let chw = (self.channels, self.height, self.width);
        let hw = self.height * self.width;
        let mut out = Vec::with_capacity(indices.len() * self.image_len());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            let img = self
                .image(i)
                .ok_or_else(|| crate::error::invalid("index", i, format!("dataset has {} images", self.len())))?;
            labels.push(self.labels[i]);
            let start = out.len();
            match augment {
                Some(a) => a.apply(img, chw, rng, &mut out)?,
                None => out.extend(img.iter().map(|&v| f32::from(v) / 255.0)),
            }
            for (ch, plane) in out[start..].chunks_exact_mut(hw.max(1)).enumerate() {
                let (m, s) = (norm.mean[ch], norm.std[ch]);
                for v in plane {
                    *v = (*v - m) / s;
                }
            }
        }
        Ok((out, labels))
    }
}

/// Per-channel normalisation `(x / 255 - mean) / std`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    /// Mean per channel (of `x / 255`).
    pub mean: Vec<f32>,
    /// Standard deviation per channel.
    pub std: Vec<f32>,
}

impl Normalization {
    /// Plain scaling to [0, 1] (mean 0, std 1), as the schizophrenia-layer scripts do.
    pub fn unit(channels: usize) -> Self {
        Normalization {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }
}

/// The sample order of one epoch: `0..n`, shuffled with `rng` when `shuffle`.
pub fn epoch_order(n: usize, shuffle: bool, rng: &mut Stream) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        rng.shuffle(&mut order);
    }
    order
}

/// The default data folder: `../shared/data` (relative to the working directory) when it
/// exists.
pub fn default_data_dir() -> Option<PathBuf> {
    let p = PathBuf::from("../shared/data");
    p.is_dir().then_some(p)
}

/// Resolves `--data`: the given folder, else the default, else an error that says where to put
/// the data.
pub fn resolve_data_dir(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(p) if p.is_dir() => Ok(p.to_path_buf()),
        Some(p) => Err(data_err(p, "data folder not found")),
        None => default_data_dir().ok_or_else(|| {
            data_err(
                Path::new("../shared/data"),
                "no data folder: pass --data DIR (holding mnist/, cifar10-jpeg/, cifar10g/) or put the data at ../shared/data",
            )
        }),
    }
}
