//! A trained network's weights as one `.npz` file (`param.<name>` for every parameter, in
//! [`Module::params_mut`] order, then `buffer.<name>` for every buffer), as `generate` reads
//! them back: the mouse GAN's `generator.npz` and the mouse DDIM's `denoiser.npz`.
//!
//! Loading checks every entry's name, shape and finiteness against a freshly built network of
//! the same spec before anything is copied, so a file from another spec or a damaged file is an
//! error naming it, never a half-loaded network.

use std::path::Path;

use biolayers::io::{load_npz, save_npz, NamedArray};
use biolayers::layers::{Module, Param};

use crate::error::{io_err, Result};

/// The entries of a network with these named parameters and buffers.
///
/// # Errors
/// A parameter that cannot be read.
pub(crate) fn weight_arrays(named: Vec<(String, &Param)>, buffers: Vec<(String, Vec<f32>)>) -> Result<Vec<NamedArray>> {
    let mut arrays = Vec::with_capacity(named.len() + buffers.len());
    for (name, p) in named {
        arrays.push(NamedArray {
            name: format!("param.{name}"),
            shape: p.value.shape().to_vec(),
            data: p.value.to_vec()?,
        });
    }
    for (name, v) in buffers {
        arrays.push(NamedArray {
            name: format!("buffer.{name}"),
            shape: vec![v.len()],
            data: v,
        });
    }
    Ok(arrays)
}

/// Writes `arrays` to `path` (atomically, as every `.npz` of the project).
///
/// # Errors
/// Write errors naming `path`.
pub(crate) fn save_weights(path: &Path, arrays: &[NamedArray]) -> Result<()> {
    Ok(save_npz(path, arrays)?)
}

/// Reads `path` into `module`, whose current entries are `expected` (from [`weight_arrays`] of
/// the freshly built network): same names, shapes and order, all values finite.
///
/// # Errors
/// [`crate::Error::Data`]-like errors naming `path`: unreadable, an entry missing, extra,
/// misshapen or not finite.
pub(crate) fn load_weights(path: &Path, expected: &[NamedArray], module: &mut dyn Module) -> Result<()> {
    let arrays = load_npz(path).map_err(|e| io_err(path, e))?;
    if arrays.len() != expected.len() {
        return Err(io_err(
            path,
            format!(
                "{} entries, the network of model.toml has {}",
                arrays.len(),
                expected.len()
            ),
        ));
    }
    for (a, e) in arrays.iter().zip(expected) {
        if a.name != e.name || a.shape != e.shape {
            return Err(io_err(
                path,
                format!(
                    "entry `{}` {:?} where `{}` {:?} was expected",
                    a.name, a.shape, e.name, e.shape
                ),
            ));
        }
        if a.data.iter().any(|v| !v.is_finite()) {
            return Err(io_err(path, format!("entry `{}` holds non-finite values", a.name)));
        }
    }
    let mut params = arrays.iter().filter(|a| a.name.starts_with("param."));
    for p in module.params_mut() {
        if let Some(a) = params.next() {
            p.value.data_mut()?.copy_from_slice(&a.data);
        }
    }
    let buffers: Vec<(String, Vec<f32>)> = arrays
        .iter()
        .filter_map(|a| a.name.strip_prefix("buffer.").map(|n| (n.to_string(), a.data.clone())))
        .collect();
    module.set_buffers(&buffers)?;
    Ok(())
}
