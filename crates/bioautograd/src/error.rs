//! The one error type of `bioautograd`.

use crate::Device;

/// Errors of the tape and its ops. Shape errors name the op and the shapes involved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- shapes -------------------------------------------------------------------------------
    /// Two operands whose shapes do not fit together (broadcasting, matmul, concat, losses).
    #[error("{op}: incompatible shapes {lhs:?} and {rhs:?}")]
    ShapeMismatch {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
    },
    /// An operand of the wrong rank.
    #[error("{op}: expected a tensor of rank {expected}, got shape {got:?}")]
    Rank {
        op: &'static str,
        expected: usize,
        got: Vec<usize>,
    },
    /// An axis that the tensor does not have.
    #[error("{op}: axis {axis} is out of range for shape {shape:?}")]
    AxisOutOfRange {
        op: &'static str,
        axis: usize,
        shape: Vec<usize>,
    },
    /// A reshape to a different number of elements.
    #[error("{op}: cannot reshape {from:?} into {to:?}")]
    Reshape {
        op: &'static str,
        from: Vec<usize>,
        to: Vec<usize>,
    },
    /// A data buffer whose length does not match the shape.
    #[error("shape {shape:?} needs {} elements, the buffer has {len}", shape.iter().product::<usize>())]
    DataLength { shape: Vec<usize>, len: usize },
    /// A slice range outside the axis.
    #[error("{op}: range {start}..{end} is out of bounds for axis {axis} of shape {shape:?}")]
    SliceOutOfRange {
        op: &'static str,
        axis: usize,
        start: usize,
        end: usize,
        shape: Vec<usize>,
    },
    /// A class label `>= classes`.
    #[error("{op}: label {label} at row {row} is out of range for {classes} classes")]
    LabelOutOfRange {
        op: &'static str,
        row: usize,
        label: usize,
        classes: usize,
    },
    /// A number of labels different from the batch size.
    #[error("{op}: {labels} labels for a batch of {batch}")]
    LabelCount {
        op: &'static str,
        labels: usize,
        batch: usize,
    },
    /// An argument outside its valid range (a probability, a kernel size, a stride ...).
    #[error("{op}: invalid argument: {what}")]
    InvalidArgument { op: &'static str, what: String },

    // --- tape ---------------------------------------------------------------------------------
    /// A [`Var`](crate::Var) used with a graph that did not create it.
    #[error("{op}: variable belongs to another graph")]
    ForeignVar { op: &'static str },
    /// A [`ParamId`](crate::ParamId) registered twice in one graph.
    #[error("param_with_id: parameter id {id} is already registered in this graph")]
    DuplicateParam { id: u64 },
    /// `backward` on a loss with more than one element.
    #[error("backward: the loss must have exactly one element, got shape {shape:?} (use backward_with)")]
    NonScalarLoss { shape: Vec<usize> },

    // --- devices ------------------------------------------------------------------------------
    /// Operands on different devices.
    #[error("{op}: operands on different devices ({lhs:?} and {rhs:?})")]
    DeviceMismatch { op: &'static str, lhs: Device, rhs: Device },
    /// The CUDA backend was requested but is not part of this build (build with the `cuda`
    /// feature).
    #[error("CUDA backend not built (enable the `cuda` feature of bioautograd)")]
    CudaUnavailable,
    /// The build has the CUDA backend, but device `ordinal` cannot be used (no driver, no such
    /// device, a device older than sm_80).
    #[error("no usable CUDA device {ordinal}: {reason}")]
    NoCudaDevice { ordinal: usize, reason: String },
    /// An op (or tensor access) that has no implementation on the operand's device, e.g.
    /// `as_slice` of a CUDA tensor or an op without a GPU kernel.
    #[error("{op}: not supported on {device:?} (move the tensor with `to_device(Device::Cpu)`)")]
    UnsupportedOnDevice { op: &'static str, device: Device },
    /// A tensor of an element type the device cannot hold (only `f32` lives on CUDA).
    #[error("{op}: {dtype} tensors cannot live on {device:?} (only f32)")]
    UnsupportedDtype {
        op: &'static str,
        dtype: &'static str,
        device: Device,
    },
    /// An error of the kernels.
    #[error(transparent)]
    Kernel(biokernels::Error),
}

impl From<biokernels::Error> for Error {
    /// The kernels' "no CUDA" errors become this crate's device errors (ordinal 0: the kernels'
    /// error does not carry it; [`crate::Device`] requests name their own ordinal); every other
    /// kernel error is wrapped as [`Error::Kernel`].
    fn from(e: biokernels::Error) -> Self {
        match e {
            biokernels::Error::CudaUnavailable => Error::CudaUnavailable,
            biokernels::Error::NoCudaDevice { reason } => Error::NoCudaDevice { ordinal: 0, reason },
            other => Error::Kernel(other),
        }
    }
}

impl Error {
    /// `true` for the errors that mean "this build or machine has no usable CUDA device"
    /// ([`Error::CudaUnavailable`], [`Error::NoCudaDevice`]): a caller may fall back to the CPU.
    pub fn is_no_cuda(&self) -> bool {
        matches!(self, Error::CudaUnavailable | Error::NoCudaDevice { .. })
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
