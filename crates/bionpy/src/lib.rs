//! # bionpy
//!
//! Two small things every biomimetic crate that touches files needs:
//!
//! * [`write_atomic`]: write a file through a temporary file in the same folder and rename it into
//!   place, so a crash or an error never leaves a half-written output behind; the temporary files
//!   that a killed writer leaves are removed by the rule of [`stale`] ([`remove_stale_temps`]).
//! * `.npy` I/O on top of `npyz`: [`write_npy`] writes C-order arrays of `u8`, `i64`, `f32` or
//!   `f64`; [`read_npy`] reads them back and **honours `fortran_order`**, always returning the data
//!   in C (row-major) order together with the shape.

use std::io::Write;
use std::path::{Path, PathBuf};

pub mod stale;
pub use stale::{find_stale_temps, remove_stale_temps};

/// Errors of file and `.npy` handling. Every variant names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system level I/O failure.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The file is not a valid `.npy` file, or not of the requested element type.
    #[error("{path}: not a valid .npy file of the expected type: {detail}")]
    BadNpy { path: PathBuf, detail: String },
    /// The data length does not match the product of the shape.
    #[error("{path}: shape {shape:?} needs {expected} elements, got {got}")]
    ShapeMismatch {
        path: PathBuf,
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically: a temporary sibling file is written, flushed and
/// renamed over `path`. On error the temporary file is removed and `path` is untouched. After the
/// rename, the temporary files of `path` that killed writers left are removed ([`stale`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Like [`write_atomic`], but the content is produced by `fill` writing into the temporary file.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = write_temp(path, fill)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io {
            path: path.to_path_buf(),
            source: e,
        }
    })?;
    stale::remove_stale_temps_of(path);
    Ok(())
}

/// Writes several files all-or-nothing: every content goes to a temporary sibling first, and
/// only when all of them are written and flushed are they renamed into place. A failure while
/// writing, or an output path that is a folder, removes the temporary files and leaves every
/// `path` as it was (renames within one folder do not fail for want of space, so the second
/// phase is where nothing is left to fail but the file system itself). Stale temporary files of
/// the targets are removed afterwards, as by [`write_atomic`].
///
/// # Errors
/// The first I/O failure, naming its path.
pub fn write_all_atomic(files: &[(&Path, &[u8])]) -> Result<()> {
    // A folder in an output's place is the one rename failure that can be foreseen: refuse it
    // before anything is written, so that no earlier file of the set gets replaced.
    if let Some((path, _)) = files.iter().find(|(p, _)| p.is_dir()) {
        return Err(Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a folder, not a file"),
        });
    }
    let mut temps: Vec<PathBuf> = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        match write_temp(path, |w| w.write_all(bytes)) {
            Ok(tmp) => temps.push(tmp),
            Err(e) => {
                for t in &temps {
                    let _ = std::fs::remove_file(t);
                }
                return Err(e);
            }
        }
    }
    for (i, ((path, _), tmp)) in files.iter().zip(&temps).enumerate() {
        if let Err(e) = std::fs::rename(tmp, path) {
            for t in &temps[i..] {
                let _ = std::fs::remove_file(t);
            }
            return Err(Error::Io {
                path: path.to_path_buf(),
                source: e,
            });
        }
    }
    for (path, _) in files {
        stale::remove_stale_temps_of(path);
    }
    Ok(())
}

/// The temporary sibling of `path` this process writes to: `.<name>.tmp-<pid>-<domain>`
/// ([`stale::temp_file_name`]).
fn temp_path(path: &Path) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "output path has no file name"),
        })?
        .to_string_lossy()
        .into_owned();
    Ok(dir.join(stale::temp_file_name(&name, std::process::id())))
}

/// Writes and flushes the temporary sibling of `path`; on error it is removed.
fn write_temp(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<PathBuf> {
    let tmp = temp_path(path)?;
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(Error::Io {
                path: path.to_path_buf(),
                source: e,
            })
        }
    }
}

/// Element types that can be written to and read from `.npy` files.
pub trait NpyElement: npyz::Deserialize + npyz::AutoSerialize + Copy + 'static {}
impl NpyElement for u8 {}
impl NpyElement for i64 {}
impl NpyElement for f32 {}
impl NpyElement for f64 {}

/// Serialises a C-order array into `.npy` bytes.
pub fn npy_bytes<T: NpyElement>(shape: &[usize], data: &[T]) -> std::io::Result<Vec<u8>> {
    let expected: usize = shape.iter().product();
    if expected != data.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("shape {shape:?} needs {expected} elements, got {}", data.len()),
        ));
    }
    use npyz::WriterBuilder;
    let mut buf = Vec::with_capacity(128 + std::mem::size_of_val(data));
    {
        let shape64: Vec<u64> = shape.iter().map(|&s| s as u64).collect();
        let mut w = npyz::WriteOptions::<T>::new()
            .default_dtype()
            .shape(&shape64)
            .writer(&mut buf)
            .begin_nd()?;
        w.extend(data.iter().copied())?;
        w.finish()?;
    }
    Ok(buf)
}

/// Writes a C-order `.npy` file atomically.
pub fn write_npy<T: NpyElement>(path: &Path, shape: &[usize], data: &[T]) -> Result<()> {
    let expected: usize = shape.iter().product();
    if expected != data.len() {
        return Err(Error::ShapeMismatch {
            path: path.to_path_buf(),
            shape: shape.to_vec(),
            expected,
            got: data.len(),
        });
    }
    let bytes = npy_bytes(shape, data).map_err(io_err(path))?;
    write_atomic(path, &bytes)
}

/// An array read from `.npy`: the shape and the data in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray<T> {
    /// The array's shape.
    pub shape: Vec<usize>,
    /// The elements in C (row-major) order, whatever order the file used.
    pub data: Vec<T>,
}

/// The deepest bracket nesting an `.npy` header may have. The header of a plain array is a dict
/// holding a shape tuple (depth 2); structured dtypes, which this crate does not read, nest
/// deeper. The limit is checked before `npyz` sees the header: its header parser backtracks
/// exponentially in the nesting depth (15 nested `[` took 17 s, 90 nested `{` over 30 s; found
/// by the `npy` fuzz target, fuzz/regressions/npy/).
pub const MAX_NPY_HEADER_NESTING: usize = 4;

/// The header text of `.npy` bytes (after the magic, the version and the header length), as far
/// as the bytes hold it; `None` when they are too short to say (`npyz` then names the problem).
fn npy_header(bytes: &[u8]) -> Option<&[u8]> {
    let rest = bytes.strip_prefix(b"\x93NUMPY")?;
    let (&major, rest) = rest.split_first()?;
    let rest = rest.get(1..)?;
    let (len, rest) = if major == 1 {
        (
            usize::from(u16::from_le_bytes([*rest.first()?, *rest.get(1)?])),
            rest.get(2..)?,
        )
    } else {
        let len = u32::from_le_bytes([*rest.first()?, *rest.get(1)?, *rest.get(2)?, *rest.get(3)?]);
        (usize::try_from(len).ok()?, rest.get(4..)?)
    };
    rest.get(..len.min(rest.len()))
}

/// The deepest nesting of `(`, `[` and `{` in `text`.
fn bracket_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for &b in text {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Parses `.npy` bytes; `fortran_order = True` data is transposed into C order. `origin` names
/// the source in errors.
///
/// # Errors
/// [`Error::BadNpy`]: not an `.npy` file, a header nested deeper than
/// [`MAX_NPY_HEADER_NESTING`], another element type, a data length that does not match the shape.
pub fn parse_npy<T: NpyElement>(bytes: &[u8], origin: &Path) -> Result<NpyArray<T>> {
    let bad = |detail: String| Error::BadNpy {
        path: origin.to_path_buf(),
        detail,
    };
    let depth = npy_header(bytes).map_or(0, bracket_depth);
    if depth > MAX_NPY_HEADER_NESTING {
        return Err(bad(format!(
            "the header nests brackets {depth} deep, at most {MAX_NPY_HEADER_NESTING} are read \
             (a plain array's header needs 2)"
        )));
    }
    let file = npyz::NpyFile::new(bytes).map_err(|e| bad(e.to_string()))?;
    let shape: Vec<usize> = file.shape().iter().map(|&s| s as usize).collect();
    let order = file.order();
    let raw: Vec<T> = file.into_vec::<T>().map_err(|e| bad(e.to_string()))?;
    let expected: usize = shape.iter().product();
    if raw.len() != expected {
        return Err(bad(format!(
            "shape {shape:?} needs {expected} elements, file holds {}",
            raw.len()
        )));
    }
    let data = match order {
        npyz::Order::C => raw,
        npyz::Order::Fortran => fortran_to_c(&shape, &raw),
    };
    Ok(NpyArray { shape, data })
}

/// Reads a `.npy` file, honouring `fortran_order`.
pub fn read_npy<T: NpyElement>(path: &Path) -> Result<NpyArray<T>> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    parse_npy(&bytes, path)
}

/// Reorders column-major data of `shape` into row-major order.
fn fortran_to_c<T: Copy>(shape: &[usize], data: &[T]) -> Vec<T> {
    let n = data.len();
    if shape.len() < 2 || n == 0 {
        return data.to_vec();
    }
    let nd = shape.len();
    // Fortran strides: the first axis varies fastest.
    let mut f_strides = vec![1usize; nd];
    for d in 1..nd {
        f_strides[d] = f_strides[d - 1] * shape[d - 1];
    }
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; nd];
    for _ in 0..n {
        let off: usize = idx.iter().zip(&f_strides).map(|(i, s)| i * s).sum();
        out.push(data[off]);
        // Advance the C-order multi-index (last axis fastest).
        for d in (0..nd).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_c_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let data: Vec<f64> = (0..6).map(f64::from).collect();
        write_npy(&p, &[2, 3], &data).unwrap();
        let back: NpyArray<f64> = read_npy(&p).unwrap();
        assert_eq!(back.shape, vec![2, 3]);
        assert_eq!(back.data, data);
    }

    /// A hand-made fortran_order file: the 2x3 array [[0,1,2],[3,4,5]] stored column-major as
    /// 0,3,1,4,2,5. Ignoring the flag would return the wrong element order.
    #[test]
    fn fortran_order_is_honoured() {
        let header = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }";
        let mut h = header.to_string();
        let total = 10 + h.len() + 1;
        let pad = (64 - total % 64) % 64;
        h.push_str(&" ".repeat(pad));
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
        bytes.extend_from_slice(h.as_bytes());
        for v in [0.0f64, 3.0, 1.0, 4.0, 2.0, 5.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let arr: NpyArray<f64> = parse_npy(&bytes, Path::new("mem")).unwrap();
        assert_eq!(arr.shape, vec![2, 3]);
        assert_eq!(arr.data, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    /// Found by the `npy` fuzz target: npyz's header parser takes seconds to minutes on nested
    /// brackets; such a header is refused at once.
    #[test]
    fn a_deeply_nested_header_is_refused_at_once() {
        let header = format!("{{'descr': '<f8', 'fortran_order': {}", "{".repeat(90));
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        let start = std::time::Instant::now();
        let err = parse_npy::<f64>(&bytes, Path::new("deep.npy")).unwrap_err();
        assert!(err.to_string().contains("91 deep"), "{err}");
        assert!(start.elapsed().as_secs() < 1);
        let v2 = [
            b"\x93NUMPY\x02\x00".as_slice(),
            &(header.len() as u32).to_le_bytes(),
            header.as_bytes(),
        ]
        .concat();
        assert!(parse_npy::<f64>(&v2, Path::new("deep.npy"))
            .unwrap_err()
            .to_string()
            .contains("91 deep"));
    }

    #[test]
    fn corrupt_file_is_a_typed_error() {
        let err = parse_npy::<f64>(b"not an npy file", Path::new("x.npy")).unwrap_err();
        assert!(matches!(err, Error::BadNpy { .. }), "{err}");
    }

    #[test]
    fn all_or_nothing_writes_leave_old_files_on_failure() {
        let dir = std::env::temp_dir().join(format!("bionpy-all-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.bin"), dir.join("b.bin"));
        std::fs::write(&a, b"old a").unwrap();
        let missing = dir.join("no-such-folder").join("c.bin");
        let e = write_all_atomic(&[(&a, b"new a"), (&missing, b"c")]).unwrap_err();
        assert!(e.to_string().contains("no-such-folder"), "{e}");
        assert_eq!(std::fs::read(&a).unwrap(), b"old a");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
        write_all_atomic(&[(&a, b"new a"), (&b, b"new b")]).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"new a");
        assert_eq!(std::fs::read(&b).unwrap(), b"new b");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_write_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.bin");
        let r = write_atomic_with(&p, |_| Err(std::io::Error::other("boom")));
        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn wrong_length_is_rejected_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npy");
        let err = write_npy(&p, &[2, 2], &[1u8, 2, 3]).unwrap_err();
        assert!(matches!(
            err,
            Error::ShapeMismatch {
                expected: 4,
                got: 3,
                ..
            }
        ));
        assert!(!p.exists());
    }
}
