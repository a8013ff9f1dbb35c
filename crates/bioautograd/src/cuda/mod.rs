//! The CUDA side of the tape: opening devices once per process, the device buffer of a
//! [`Storage::Cuda`](crate::Storage::Cuda) tensor, and the device operations the ops use.
//!
//! A CUDA tensor is an `f32` buffer on one device ([`CudaBuffer`]: the device's
//! [`DeviceBackend`], its ordinal and an `Arc` of the device matrix), shared copy-on-write like
//! the CPU `Arc<Vec<T>>`: cloning a tensor into the tape is cheap, and an optimiser gets the
//! buffer mutably once the tape is gone (a device copy is made first if another tensor still
//! shares it). Every operation goes through the [`DeviceBackend`] trait of `biokernels`: this
//! crate never asks which kind of device it talks to.
//!
//! The kernels check the `rows × cols` of some operands (GEMMs, softmax cross-entropy, bias
//! gradients), so every buffer is allocated as the matrix `(shape[0], Π shape[1..])` (a rank-1
//! `(n)` is `(1, n)`, a scalar `(1, 1)`); `CudaBuffer::view` gives another `rows × cols` (a
//! device copy when it differs), which is what a metadata-only `reshape` costs when a kernel
//! later needs the new dims.
//!
//! Without the `cuda` feature [`device`] returns [`Error::CudaUnavailable`]; with the feature
//! and no driver it returns [`Error::NoCudaDevice`] (never a panic).
//!
//! ## The host emulator
//! [`Device::Cuda`]`(`[`EMULATOR`]`)` is [`biokernels::device::host::HostDevice`], present in
//! every build: the same operations, each computed on the CPU with the semantics the kernel is
//! documented to have. Every device path of the tape (dispatch, device backward closures,
//! gradient accumulation, views, the column-block copies, the RNN's BPTT loop, the optimiser
//! step) therefore runs and is tested on a machine without a GPU; only the kernels themselves
//! are replaced. It is slow and exists for tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use biokernels::cuda::{CudaDevice, Precision};
use biokernels::device::host::HostDevice;
use biokernels::device::DeviceBackend;

use crate::error::{Error, Result};
use crate::tensor::Device;

mod buffer;
mod masks;

pub(crate) use buffer::select_columns;
pub use buffer::CudaBuffer;
pub(crate) use masks::PlaneKey;

/// The ordinal of the host emulator of the device backend (see the [module docs](self)).
pub const EMULATOR: usize = usize::MAX;

/// The devices a device test runs its body on: the [`EMULATOR`] and CUDA device 0 when it is
/// usable. Without a usable GPU the skip is written to the terminal's stderr (`SKIPPED cuda:0
/// in <test>: <reason>`), or, under `BIOKERNELS_REQUIRE_CUDA=1`, returned as an error so that a
/// GPU run cannot pass by skipping. A failure other than "no CUDA device" is an error too.
///
/// # Errors
/// The message the test should fail with.
pub fn devices_under_test(test: &str) -> std::result::Result<Vec<Device>, String> {
    let mut out = vec![Device::Cuda(EMULATOR)];
    match Device::Cuda(0).check_available() {
        Ok(()) => out.push(Device::Cuda(0)),
        Err(e) if !e.is_no_cuda() => {
            return Err(format!(
                "{test}: a missing GPU must be a typed 'no CUDA' error, got {e:?}"
            ))
        }
        Err(e) if std::env::var("BIOKERNELS_REQUIRE_CUDA").is_ok_and(|v| v == "1") => {
            return Err(format!("{test}: BIOKERNELS_REQUIRE_CUDA=1 but {e}"))
        }
        Err(e) => {
            use std::io::Write;
            // Straight to stderr: the test harness captures `eprintln!` of passing tests.
            let _ = writeln!(std::io::stderr(), "SKIPPED cuda:0 in {test}: {e} (ran on cpu only)");
        }
    }
    Ok(out)
}

type DeviceSlot = std::result::Result<Arc<CudaDevice>, Error>;

fn registry() -> &'static Mutex<HashMap<usize, DeviceSlot>> {
    static DEVICES: OnceLock<Mutex<HashMap<usize, DeviceSlot>>> = OnceLock::new();
    DEVICES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// CUDA device `ordinal`, opened on first use and shared by every tensor of the process (the
/// outcome, a device or the error, is cached: a machine without a GPU is probed once).
///
/// # Errors
/// [`Error::CudaUnavailable`] without the `cuda` feature, [`Error::NoCudaDevice`] when the
/// build has it but the device cannot be used, and for [`EMULATOR`] (which is no CUDA device).
pub fn device(ordinal: usize) -> Result<Arc<CudaDevice>> {
    if ordinal == EMULATOR {
        return Err(Error::NoCudaDevice {
            ordinal,
            reason: "the host emulator is not a CUDA device".into(),
        });
    }
    let mut map = registry().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    map.entry(ordinal)
        .or_insert_with(|| {
            CudaDevice::new(ordinal)
                .map(Arc::new)
                .map_err(|e| match Error::from(e) {
                    Error::NoCudaDevice { reason, .. } => Error::NoCudaDevice { ordinal, reason },
                    other => other,
                })
        })
        .clone()
}

/// The backend of `Device::Cuda(ordinal)`: the process's emulator or an opened device.
///
/// # Errors
/// As [`device`] for a CUDA ordinal.
pub fn backend(ordinal: usize) -> Result<Arc<dyn DeviceBackend>> {
    if ordinal == EMULATOR {
        static HOST: OnceLock<Arc<HostDevice>> = OnceLock::new();
        let host: Arc<dyn DeviceBackend> = HOST.get_or_init(|| Arc::new(HostDevice::new())).clone();
        Ok(host)
    } else {
        let dev: Arc<dyn DeviceBackend> = device(ordinal)?;
        Ok(dev)
    }
}

static DEFAULT_PRECISION: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets the GPU precision new graphs start with ([`crate::Graph::gpu_precision`]; `F32` until
/// set), for code that builds its graphs itself (e.g. `biolayers::train::train_step`).
///
/// # Errors
/// None today; `Result` for precisions a device may refuse.
pub fn set_default_precision(precision: Precision) -> Result<()> {
    let code = match precision {
        Precision::F32 => 0,
        Precision::Tf32 => 1,
        Precision::Bf16 => 2,
    };
    DEFAULT_PRECISION.store(code, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The precision new graphs start with (see [`set_default_precision`]).
pub fn default_precision() -> Precision {
    match DEFAULT_PRECISION.load(std::sync::atomic::Ordering::Relaxed) {
        1 => Precision::Tf32,
        2 => Precision::Bf16,
        _ => Precision::F32,
    }
}

/// `true` when CUDA device `ordinal` (or the emulator) can be used by this build on this
/// machine.
pub fn is_available(ordinal: usize) -> bool {
    backend(ordinal).is_ok()
}

/// The `rows × cols` a tensor of `shape` is stored as: `(shape[0], Π shape[1..])`, `(1, n)`
/// for a rank-1 tensor, `(1, 1)` for a scalar.
pub(crate) fn mat_dims(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (1, *n),
        [r, rest @ ..] => (*r, rest.iter().product()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_dims_follow_the_leading_axis() {
        assert_eq!(mat_dims(&[]), (1, 1));
        assert_eq!(mat_dims(&[7]), (1, 7));
        assert_eq!(mat_dims(&[2, 3]), (2, 3));
        assert_eq!(mat_dims(&[2, 3, 4, 5]), (2, 60));
    }

    #[test]
    fn a_missing_device_is_a_typed_error_and_cached() {
        match device(0) {
            Ok(_) => {} // a GPU machine
            Err(e) => {
                #[cfg(not(feature = "cuda"))]
                assert_eq!(e, Error::CudaUnavailable);
                #[cfg(feature = "cuda")]
                assert!(matches!(e, Error::NoCudaDevice { ordinal: 0, .. }), "{e:?}");
                assert!(e.is_no_cuda());
                // The second request answers from the cache with the same error.
                assert_eq!(device(0).unwrap_err(), e);
                assert!(!is_available(0));
            }
        }
        // An ordinal that no machine here has names itself in the error.
        if let Err(Error::NoCudaDevice { ordinal, .. }) = device(7) {
            assert_eq!(ordinal, 7);
        }
    }
}
