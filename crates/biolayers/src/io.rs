//! Named parameters as `.npz` files (a zip of `.npy` arrays, stored uncompressed), readable with
//! `numpy.load(path)` and therefore from PyTorch (`torch.from_numpy`). Written atomically.
//!
//! # Shapes
//! Each entry keeps its own shape; data is f32, C order.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// One named array.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedArray {
    /// Entry name (becomes `<name>.npy` inside the archive).
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values in C order.
    pub data: Vec<f32>,
}

fn file_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::ParamFile {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Writes `arrays` to `path` as an `.npz`. Names must be unique and non-empty; a `/` separates
/// segments (Keras variable paths such as `dense/kernel`, which `numpy.load` keeps as keys),
/// none of which may be empty, `.` or `..` (so no entry names a path outside the archive).
pub fn save_npz(path: &Path, arrays: &[NamedArray]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let mut encoded = Vec::with_capacity(arrays.len());
    for a in arrays {
        let bad_segment = a.name.split('/').any(|s| s.is_empty() || s == "." || s == "..");
        if bad_segment || a.name.contains('\\') || !seen.insert(a.name.as_str()) {
            return Err(file_err(path, format!("invalid or duplicate entry name `{}`", a.name)));
        }
        let bytes = bionpy::npy_bytes(&a.shape, &a.data).map_err(|e| file_err(path, format!("{}: {e}", a.name)))?;
        encoded.push((format!("{}.npy", a.name), bytes));
    }
    bionpy::write_atomic_with(path, |w| {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in &encoded {
            zip.start_file(name.as_str(), opts).map_err(std::io::Error::other)?;
            zip.write_all(bytes)?;
        }
        let cursor = zip.finish().map_err(std::io::Error::other)?;
        w.write_all(&cursor.into_inner())
    })?;
    Ok(())
}

/// Reads every array of an `.npz` (f32 entries; `fortran_order` honoured), in archive order.
pub fn load_npz(path: &Path) -> Result<Vec<NamedArray>> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e.to_string()))?;
    parse_npz(&bytes, path)
}

/// Parses the bytes of an `.npz` archive as [`load_npz`] reads a file; `origin` names the source
/// in errors.
///
/// # Errors
/// [`Error::ParamFile`] for a malformed archive or entry, `bionpy` errors for a malformed array.
pub fn parse_npz(bytes: &[u8], origin: &Path) -> Result<Vec<NamedArray>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| file_err(origin, format!("not an npz archive: {e}")))?;
    let mut out = Vec::with_capacity(zip.len().min(bytes.len()));
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| file_err(origin, e.to_string()))?;
        let name = entry.name().trim_end_matches(".npy").to_string();
        // The entry's declared size comes from the archive and may lie: entries are stored
        // uncompressed, so no honest one is larger than the archive itself.
        let declared = usize::try_from(entry.size()).unwrap_or(usize::MAX);
        let mut data = Vec::with_capacity(declared.min(bytes.len()));
        entry
            .read_to_end(&mut data)
            .map_err(|e| file_err(origin, format!("{name}: {e}")))?;
        let arr = bionpy::parse_npy::<f32>(&data, &origin.join(&name))?;
        out.push(NamedArray {
            name,
            shape: arr.shape,
            data: arr.data,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("params.npz");
        let arrays = vec![
            NamedArray {
                name: "dense.kernel".into(),
                shape: vec![3, 2],
                data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            },
            NamedArray {
                name: "dense.bias".into(),
                shape: vec![2],
                data: vec![-1.0, 0.5],
            },
        ];
        save_npz(&p, &arrays).unwrap();
        assert_eq!(load_npz(&p).unwrap(), arrays);
        for bad in ["", "/abs", "a//b", "../up", "a/./b", "back\\slash"] {
            let named = vec![NamedArray {
                name: bad.into(),
                ..arrays[1].clone()
            }];
            assert!(save_npz(&dir.path().join("bad_name.npz"), &named).is_err(), "{bad}");
        }
        let keras = vec![NamedArray {
            name: "dense/kernel".into(),
            ..arrays[0].clone()
        }];
        save_npz(&dir.path().join("keras.npz"), &keras).unwrap();
        assert_eq!(load_npz(&dir.path().join("keras.npz")).unwrap(), keras);
        let dup = vec![arrays[0].clone(), arrays[0].clone()];
        assert!(save_npz(&dir.path().join("dup.npz"), &dup).is_err());
        assert!(!dir.path().join("dup.npz").exists());
        std::fs::write(dir.path().join("bad.npz"), b"garbage").unwrap();
        assert!(matches!(
            load_npz(&dir.path().join("bad.npz")),
            Err(Error::ParamFile { .. })
        ));
        assert!(load_npz(&dir.path().join("missing.npz")).is_err());
    }
}
