//! The one error type of `biokernels`.

/// Errors of the kernels. Shape errors name the operation and both shapes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- shapes -------------------------------------------------------------------------------
    /// Two operands whose shapes do not fit together.
    #[error("{op}: incompatible shapes: {lhs} is {lhs_shape:?} but {rhs} is {rhs_shape:?}")]
    ShapeMismatch {
        op: &'static str,
        lhs: &'static str,
        lhs_shape: [usize; 2],
        rhs: &'static str,
        rhs_shape: [usize; 2],
    },
    /// An output buffer with the wrong shape.
    #[error("{op}: output `{name}` is {got:?} but the product is {expected:?}")]
    OutputShape {
        op: &'static str,
        name: &'static str,
        expected: [usize; 2],
        got: [usize; 2],
    },
    /// A slice whose length is not `rows * cols`.
    #[error("a {rows}x{cols} matrix needs {} elements, the buffer has {len}", rows.saturating_mul(*cols))]
    BufferSize { rows: usize, cols: usize, len: usize },
    /// `rows * cols` does not fit in `usize`.
    #[error("a {rows}x{cols} matrix is too large to address")]
    SizeOverflow { rows: usize, cols: usize },

    // --- convolutions ---------------------------------------------------------------------------
    /// A convolution geometry that cannot be run (a zero size, groups that do not divide the
    /// channels, a kernel larger than the padded input, an output padding that is too large...).
    #[error("{op}: invalid geometry: {reason}")]
    ConvGeometry { op: &'static str, reason: String },
    /// A convolution buffer (input, weight, bias, output or gradient) with the wrong length.
    #[error("{op}: `{name}` must have shape {shape:?} ({expected} elements) but the buffer has {got}")]
    ConvBuffer {
        op: &'static str,
        name: &'static str,
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
    /// A [`crate::conv::ConvMask`] built for another layer: shapes are
    /// `[kh, kw, nx, ny, groups]` (`nx` = input channels per group, `ny` = output channels, both
    /// on the convolution side; for a transposed convolution `nx` is the layer's output channels
    /// per group).
    #[error("{op}: the mask is [kh, kw, nx, ny, groups] = {got:?} but the layer needs {expected:?}")]
    ConvMaskMismatch {
        op: &'static str,
        expected: [usize; 5],
        got: [usize; 5],
    },

    // --- masks and tile maps ------------------------------------------------------------------
    /// A tile size with a zero side.
    #[error("invalid tile size {rows}x{cols}: both sides must be positive")]
    InvalidTileSize { rows: usize, cols: usize },
    /// A mask value other than exactly 0 or 1.
    #[error("mask is not binary: value {value} at ({row}, {col}); a tile map needs a 0/1 mask")]
    NonBinaryMask { row: usize, col: usize, value: f32 },
    /// A non-binary mask form (e.g. `gaussian`), known without looking at the values.
    #[error("mask form `{form}` is not binary; a tile map needs a 0/1 mask")]
    NonBinaryForm { form: &'static str },
    /// A conv mask with an independent channel mask per spatial tap (`individual`).
    #[error(
        "mask form `{form}` has a different channel mask at each of the {taps} spatial taps; \
         a tile map needs one (in, out) channel mask shared by all taps \
         (conv::ConvMask compiles per-tap masks)"
    )]
    PerTapMask { form: &'static str, taps: usize },
    /// An error of `biomask` (mask generation in the benchmarks).
    #[error(transparent)]
    Mask(#[from] biomask::Error),

    // --- backends -----------------------------------------------------------------------------
    /// A CPU micro-kernel was requested that this machine (or this build) cannot run.
    #[error("CPU kernel `{isa}` is not available on this machine")]
    IsaUnavailable { isa: &'static str },
    /// The CUDA path was requested but this build has no CUDA backend (feature `cuda` off).
    #[error("CUDA backend not in this build (rebuild with `--features cuda`)")]
    CudaUnavailable,
    /// The build has the CUDA backend but this machine cannot run it: no driver library
    /// (`libcuda.so`), no device, or a device older than sm_80. Callers fall back to the CPU.
    #[error("no CUDA device: {reason}")]
    NoCudaDevice { reason: String },
    /// A CUDA driver or cuBLAS call failed.
    #[error("CUDA {op} failed: {message}")]
    Cuda { op: &'static str, message: String },
    /// A GPU operand that does not fit the call (wrong shape, wrong precision, wrong tile size).
    #[error("{op}: {reason}")]
    CudaOperand { op: &'static str, reason: String },
    /// A rayon thread pool could not be built (benchmarks).
    /// A device buffer handed to a backend that did not make it (e.g. an emulator buffer given
    /// to a CUDA device).
    #[error("{op}: the operand is not a buffer of this device backend (expected {expected})")]
    ForeignDeviceBuffer { op: &'static str, expected: &'static str },
    #[error("could not build a thread pool: {0}")]
    ThreadPool(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
