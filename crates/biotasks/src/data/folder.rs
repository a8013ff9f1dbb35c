//! Image folders: `root/<class>/<image>.{jpg,jpeg,png}`, images in sorted order within a class,
//! decoded in parallel.
//!
//! Labels come from class *names*, never from which folders happen to exist: a train folder
//! missing `bird` must not shift every later label by one while the test folder keeps them.
//! [`load_image_folder_with_classes`] (and [`load_cifar10_folder`] with the CIFAR-10 list) takes
//! the class list and refuses a folder whose class sub-folders are not exactly that list,
//! naming the missing and the unexpected ones, before any image is decoded.
//! [`load_image_folder`] numbers the visible sub-folders in sorted order, for folders that
//! define their own classes. Hidden entries (`.ipynb_checkpoints`, `.DS_Store`) are ignored by
//! both; any other entry of a class folder that is not a `.jpg`/`.jpeg`/`.png` file, and a
//! class folder without images, is an error naming it.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{data_err, ImageDataset, CIFAR10_CLASSES};
use crate::error::Result;

/// Channels to decode to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorMode {
    /// Three channels (greyscale images are replicated).
    #[default]
    Rgb,
    /// One luminance channel.
    Gray,
}

/// Options of [`load_image_folder`].
#[derive(Debug, Clone, Default)]
pub struct FolderOptions {
    /// Channels to decode to.
    pub color: ColorMode,
    /// Resize every image to `(height, width)` (triangle filter); without it all images must
    /// have the size of the first.
    pub resize: Option<(u32, u32)>,
    /// Keep at most this many images per class (the first ones in sorted order).
    pub max_per_class: Option<usize>,
    /// Before `resize`, cut the largest centred region with the aspect ratio of the `resize`
    /// target (a square for a square target), as the Keras DDIM example's `preprocess_image`
    /// does (offsets `(H − h) / 2` and `(W − w) / 2`, rounded down), so that faces and
    /// objects are not squashed. Without `resize` it does nothing.
    pub center_crop: bool,
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("jpg" | "jpeg" | "png")
    )
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The visible entries of `p`, sorted.
fn read_dir(p: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(p)
        .map_err(|e| data_err(p, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !is_hidden(p))
        .collect();
    v.sort();
    Ok(v)
}

/// The visible class sub-folders of `root`, sorted.
fn class_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let dirs: Vec<PathBuf> = read_dir(root)?.into_iter().filter(|p| p.is_dir()).collect();
    if dirs.is_empty() {
        return Err(data_err(root, "no class sub-folders (expected root/<class>/<image>)"));
    }
    Ok(dirs)
}

/// Loads an image folder whose classes are its visible sub-folders, numbered in sorted order.
/// Errors name the folder or the file at fault.
///
/// # Errors
/// An unreadable or empty folder, a class folder without images or with a visible entry that is
/// not an image file, an undecodable image, images of different sizes (without a resize).
pub fn load_image_folder(root: &Path, opts: &FolderOptions) -> Result<ImageDataset> {
    let dirs = class_dirs(root)?;
    let classes: Vec<String> = dirs.iter().map(|d| file_name(d)).collect();
    load_classes(root, &dirs, classes, opts)
}

/// Loads an image folder whose class sub-folders are exactly `classes`; label `i` is
/// `classes[i]` whatever the folder holds.
///
/// # Errors
/// Those of [`load_image_folder`], and a folder whose visible sub-folders are not exactly
/// `classes` (the error names the missing and the unexpected ones).
pub fn load_image_folder_with_classes(root: &Path, classes: &[&str], opts: &FolderOptions) -> Result<ImageDataset> {
    let dirs = class_dirs(root)?;
    let found: Vec<String> = dirs.iter().map(|d| file_name(d)).collect();
    let missing: Vec<&str> = classes
        .iter()
        .copied()
        .filter(|c| !found.iter().any(|f| f == c))
        .collect();
    let extra: Vec<&str> = found
        .iter()
        .map(String::as_str)
        .filter(|f| !classes.contains(f))
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(format!("missing class folders: {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            why.push(format!("unexpected folders: {}", extra.join(", ")));
        }
        return Err(data_err(
            root,
            format!("{} (expected exactly: {})", why.join("; "), classes.join(", ")),
        ));
    }
    let dirs: Vec<PathBuf> = classes.iter().map(|c| root.join(c)).collect();
    load_classes(root, &dirs, classes.iter().map(|c| c.to_string()).collect(), opts)
}

/// Loads a CIFAR-10 image folder (`root/<class>/…` with the ten CIFAR-10 class names); labels
/// are the CIFAR-10 indices ([`CIFAR10_CLASSES`]).
///
/// # Errors
/// Those of [`load_image_folder_with_classes`].
pub fn load_cifar10_folder(root: &Path, opts: &FolderOptions) -> Result<ImageDataset> {
    load_image_folder_with_classes(root, &CIFAR10_CLASSES, opts)
}

/// One decoded image: `pixels` holds `channels × height × width` bytes, channel planes in turn
/// (CHW), as [`ImageDataset`] stores images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedImage {
    /// Height in pixels.
    pub height: u32,
    /// Width in pixels.
    pub width: u32,
    /// The planar bytes.
    pub pixels: Vec<u8>,
}

/// Decodes the bytes of one image file as the folder loaders do: the format is the one its
/// name's extension (`origin`: `.jpg`, `.jpeg`, `.png`) says, the `image` crate's default memory
/// limits apply, then `opts.resize` and `opts.color` (`max_per_class` does not apply).
///
/// # Errors
/// [`crate::Error::Data`] naming `origin`: an unknown extension, undecodable bytes, an image over
/// the decoder's memory limits.
pub fn decode_image(bytes: &[u8], origin: &Path, opts: &FolderOptions) -> Result<DecodedImage> {
    let undecodable = |e: image::ImageError| data_err(origin, format!("cannot decode: {e}"));
    let format = image::ImageFormat::from_path(origin).map_err(undecodable)?;
    let img = image::ImageReader::with_format(std::io::Cursor::new(bytes), format)
        .decode()
        .map_err(undecodable)?;
    let img = match opts.resize {
        Some((h, w)) => {
            let img = if opts.center_crop {
                let (x, y, cw, ch) = center_crop_box(img.width(), img.height(), w, h);
                img.crop_imm(x, y, cw, ch)
            } else {
                img
            };
            img.resize_exact(w, h, image::imageops::FilterType::Triangle)
        }
        None => img,
    };
    let (width, height) = (img.width(), img.height());
    let pixels = match opts.color {
        ColorMode::Gray => img.to_luma8().into_raw(),
        ColorMode::Rgb => {
            let rgb = img.to_rgb8().into_raw();
            let hw = rgb.len() / 3;
            let mut out = vec![0u8; rgb.len()];
            for (i, px) in rgb.chunks_exact(3).enumerate() {
                out[i] = px[0];
                out[hw + i] = px[1];
                out[2 * hw + i] = px[2];
            }
            out
        }
    };
    Ok(DecodedImage { height, width, pixels })
}

/// The largest centred box `(x, y, width, height)` of a `width × height` image with the
/// aspect ratio `target_w : target_h` (compared in integers, so a square target on an odd size
/// stays exact).
pub(crate) fn center_crop_box(width: u32, height: u32, target_w: u32, target_h: u32) -> (u32, u32, u32, u32) {
    let (w, h, tw, th) = (
        u64::from(width),
        u64::from(height),
        u64::from(target_w.max(1)),
        u64::from(target_h.max(1)),
    );
    // Full height if the image is at least as wide as the target ratio, else full width.
    let (cw, ch) = if w * th >= h * tw {
        ((h * tw / th).max(1), h)
    } else {
        (w, (w * th / tw).max(1))
    };
    let x = (w - cw) / 2;
    let y = (h - ch) / 2;
    // Every value is at most the image's own u32 size.
    let to32 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    (to32(x), to32(y), to32(cw), to32(ch))
}

/// Loads `dirs[label]` for every label; `classes[label]` names it.
fn load_classes(root: &Path, dirs: &[PathBuf], classes: Vec<String>, opts: &FolderOptions) -> Result<ImageDataset> {
    let mut files = Vec::new();
    for (label, dir) in dirs.iter().enumerate() {
        let entries = read_dir(dir)?;
        // Anything visible that is not an image is refused rather than skipped: a stray file or
        // a nested folder usually means the dataset was unpacked wrongly.
        if let Some(odd) = entries.iter().find(|p| !(p.is_file() && is_image(p))) {
            return Err(data_err(
                odd,
                "not a .jpg/.jpeg/.png image file inside a class folder (remove or move it; hidden entries are ignored)",
            ));
        }
        if entries.is_empty() {
            return Err(data_err(dir, format!("class `{}` has no images", classes[label])));
        }
        let mut imgs = entries;
        if let Some(k) = opts.max_per_class {
            imgs.truncate(k);
        }
        files.extend(imgs.into_iter().map(|p| (p, label)));
    }
    if files.is_empty() {
        return Err(data_err(root, "no .jpg/.jpeg/.png images in the class folders"));
    }
    let decoded: Vec<Result<DecodedImage>> = files
        .par_iter()
        .map(|(path, _)| {
            let bytes = std::fs::read(path).map_err(|e| data_err(path, format!("cannot read: {e}")))?;
            decode_image(&bytes, path, opts)
        })
        .collect();
    let channels = match opts.color {
        ColorMode::Gray => 1,
        ColorMode::Rgb => 3,
    };
    let mut images = Vec::new();
    let mut size = None;
    for ((path, _), d) in files.iter().zip(decoded) {
        let DecodedImage {
            height: h,
            width: w,
            pixels: px,
        } = d?;
        match size {
            None => size = Some((h, w)),
            Some(s) if s != (h, w) => {
                return Err(data_err(
                    path,
                    format!("image is {h}x{w}, the first image was {}x{} (use a resize)", s.0, s.1),
                ))
            }
            _ => {}
        }
        images.extend_from_slice(&px);
    }
    let (h, w) = size.unwrap_or((0, 0));
    Ok(ImageDataset {
        images,
        labels: files.iter().map(|(_, l)| *l).collect(),
        channels,
        height: h as usize,
        width: w as usize,
        classes,
    })
}

#[cfg(test)]
mod tests {
    use super::center_crop_box;

    #[test]
    fn center_crop_boxes() {
        // Landscape to square: the centred square, offset rounded down.
        assert_eq!(center_crop_box(178, 218, 64, 64), (0, 20, 178, 178));
        assert_eq!(center_crop_box(219, 100, 64, 64), (59, 0, 100, 100));
        assert_eq!(center_crop_box(64, 64, 64, 64), (0, 0, 64, 64));
        // A 2:1 target on a square image keeps the full width.
        assert_eq!(center_crop_box(100, 100, 20, 10), (0, 25, 100, 50));
        assert_eq!(center_crop_box(1, 1, 64, 64), (0, 0, 1, 1));
    }
}
