//! The CUDA backend: masked GEMM, convolutions and the training kernels on NVIDIA GPUs (sm_80
//! and newer) from the PTX of `kernels/*.cu` committed in `crates/biokernels/ptx/` (see
//! `docs/cuda.md`). The tape reaches it through [`crate::device::DeviceBackend`].
//!
//! The kernels consume the same [`TileMap`] as the CPU path, rebuilt with 64 × 64 tiles and
//! turned into per-block lists of non-empty tiles ([`tile_list`]): empty tiles are never
//! loaded, full tiles run the dense inner loop, partial tiles apply their bit pattern.
//! [`Precision`] picks exact f32 (FFMA), TF32 tensor cores or bf16 tensor cores (f32
//! accumulation and f32 output in every case).
//!
//! Three builds, no `#[cfg]` at the call sites:
//! - without the `cuda` feature, [`CudaDevice::new`] returns [`Error::CudaUnavailable`] (a dummy
//!   backend whose types cannot be constructed: the same `DeviceBackend` families and typed
//!   GEMM/convolution/benchmark API);
//! - with the feature on a machine without a driver or GPU, it returns
//!   [`Error::NoCudaDevice`] (the driver library is probed before cudarc is called, because
//!   cudarc panics when it is missing);
//! - with a GPU, a working device.
//!
//! Callers fall back to the CPU on either error ([`open_device`] returns `None` then).
//!
//! # Shapes
//! As [`crate::gemm`]: `x (m, k)`, `w (k, n)`, `dy (m, n)`, mask `(k, n)`; outputs `y (m, n)`,
//! `dx (m, k)`, `dw (k, n)`, all row-major.

pub mod bench;
pub mod ptx;
pub mod tile_list;

#[cfg(feature = "cuda")]
mod backend;
#[cfg(feature = "cuda")]
pub use backend::{
    CublasHandle, CudaDevice, DeviceConvMask, DeviceTileMap, GpuIndex, GpuMatrix, GpuPlaneMap, KernelSource,
};

#[cfg(not(feature = "cuda"))]
mod dummy;
#[cfg(not(feature = "cuda"))]
pub use dummy::{CublasHandle, CudaDevice, DeviceConvMask, DeviceTileMap, GpuMatrix};

pub use tile_list::{GpuTileLists, GPU_TILE};

use crate::conv::{Conv2dGeometry, ConvMask, ConvTranspose2dGeometry, Plan};
use crate::error::{Error, Result};
use crate::gemm::{Beta, MatMut, MatRef};
use crate::tile_map::TileMap;

/// An elementwise activation on the GPU (`CudaDevice::unary`, `CudaDevice::unary_backward`),
/// with the formulas of `bioautograd::ops::activation`:
///
/// ```text
/// Relu:     y = max(x, 0)                         dx = dy·[x > 0]
/// Tanh:     y = tanh(x)                           dx = dy·(1 − y²)
/// Sigmoid:  y = 1/(1 + e^(−x)) (e^x/(1 + e^x) for x < 0)   dx = dy·y·(1 − y)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `max(x, 0)`; the derivative at 0 is 0 (PyTorch's convention). Its backward reads `x`.
    Relu,
    /// `tanh(x)`. Its backward reads `y`.
    Tanh,
    /// The logistic sigmoid, in the form that never overflows. Its backward reads `y`.
    Sigmoid,
    /// `x·σ(x)` (SiLU), `dx = dy·(σ + x·σ·(1 − σ))`. Its backward reads `x`.
    Swish,
}

impl UnaryOp {
    /// `relu`, `tanh`, `sigmoid`, `swish`.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Relu => "relu",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Swish => "swish",
        }
    }

    /// Whether the backward reads the input `x` (else the output `y`).
    pub fn backward_reads_input(self) -> bool {
        matches!(self, UnaryOp::Relu | UnaryOp::Swish)
    }

    /// The `op` argument of the `unary_fwd` / `unary_bwd` kernels.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fn code(self) -> i32 {
        match self {
            UnaryOp::Relu => 0,
            UnaryOp::Tanh => 1,
            UnaryOp::Sigmoid => 2,
            UnaryOp::Swish => 3,
        }
    }
}

/// A same-length elementwise binary op on the GPU (`CudaDevice::binary`):
/// `out = a + b`, `a − b` or `a · b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a · b`.
    Mul,
}

impl BinaryOp {
    /// `add`, `sub`, `mul`.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
        }
    }

    /// The `op` argument of the `binary_ew` kernel.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fn code(self) -> i32 {
        match self {
            BinaryOp::Add => 0,
            BinaryOp::Sub => 1,
            BinaryOp::Mul => 2,
        }
    }
}

/// One optimizer step (`DeviceBackend::optimizer_step`); the formulas are [`crate::optim`]'s.
pub use crate::optim::OptimizerStep;

/// Arithmetic of a GPU GEMM. Accumulation and outputs are f32 in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Exact f32 products (FFMA): the reference path.
    F32,
    /// Inputs rounded to TF32 (10-bit mantissa) on tensor cores (`mma.m16n8k8`).
    Tf32,
    /// Inputs stored as bf16 (8-bit mantissa) on tensor cores (`mma.m16n8k16`).
    Bf16,
}

impl Precision {
    /// Every precision.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Tf32, Precision::Bf16];

    /// `f32`, `tf32`, `bf16` (also the kernel name suffix).
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
        }
    }

    /// The relative error the tests accept against a float64 reference
    /// (`‖out − ref‖₂ / ‖ref‖₂`): 1e-5, 1e-3, 1e-2.
    pub fn tolerance(self) -> f64 {
        match self {
            Precision::F32 => 1e-5,
            Precision::Tf32 => 1e-3,
            Precision::Bf16 => 1e-2,
        }
    }
}

/// Which product of a masked dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GemmOp {
    /// `Y = X·(W⊙M)`: inputs `x (m, k)`, `w (k, n)`.
    Forward,
    /// `dX = dY·(W⊙M)ᵀ`: inputs `dy (m, n)`, `w (k, n)`.
    Dx,
    /// `dW = (Xᵀ·dY)⊙M`: inputs `x (m, k)`, `dy (m, n)`; entries off the mask are 0.
    Dw,
}

impl GemmOp {
    /// Every op.
    pub const ALL: [GemmOp; 3] = [GemmOp::Forward, GemmOp::Dx, GemmOp::Dw];

    /// `forward`, `dx`, `dw` (the CPU benchmark's names).
    pub fn name(self) -> &'static str {
        match self {
            GemmOp::Forward => "forward",
            GemmOp::Dx => "dx",
            GemmOp::Dw => "dw",
        }
    }

    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fn kernel_suffix(self) -> &'static str {
        match self {
            GemmOp::Forward => "fwd",
            GemmOp::Dx => "dx",
            GemmOp::Dw => "dw",
        }
    }
}

/// Checks the two input shapes of `op` against the mask `(k, n)`; returns `m` and the output
/// shape.
fn check_gemm_shapes(op: GemmOp, a: [usize; 2], b: [usize; 2], mask: [usize; 2]) -> Result<(usize, [usize; 2])> {
    let [k, n] = mask;
    let mismatch = |lhs: &'static str, lhs_shape, rhs: &'static str, rhs_shape| Error::ShapeMismatch {
        op: op.name(),
        lhs,
        lhs_shape,
        rhs,
        rhs_shape,
    };
    match op {
        GemmOp::Forward => {
            if a[1] != k {
                return Err(mismatch("x", a, "mask", mask));
            }
            if b != mask {
                return Err(mismatch("w", b, "mask", mask));
            }
            Ok((a[0], [a[0], n]))
        }
        GemmOp::Dx => {
            if a[1] != n {
                return Err(mismatch("dy", a, "mask", mask));
            }
            if b != mask {
                return Err(mismatch("w", b, "mask", mask));
            }
            Ok((a[0], [a[0], k]))
        }
        GemmOp::Dw => {
            if a[1] != k {
                return Err(mismatch("x", a, "mask", mask));
            }
            if b[1] != n || b[0] != a[0] {
                return Err(mismatch("x", a, "dy", b));
            }
            Ok((a[0], [k, n]))
        }
    }
}

/// The `ConvGeom` argument of the conv kernels from a convolution plan (the convolution view:
/// for a transposed convolution, the convolution whose input gradient it is): `[n, cin, h, w,
/// cout, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, groups]` with the top/left padding (the
/// bottom/right padding only bounds the output size, which is given).
///
/// # Errors
/// [`Error::CudaOperand`] when a size does not fit in `i32`.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn conv_params(p: &Plan) -> Result<[i32; 16]> {
    let v = [
        p.batch, p.cin, p.h, p.w, p.cout, p.kh, p.kw, p.sh, p.sw, p.pt, p.pl, p.dh, p.dw, p.oh, p.ow, p.groups,
    ];
    let mut out = [0i32; 16];
    for (o, &x) in out.iter_mut().zip(&v) {
        *o = i32::try_from(x).map_err(|_| Error::CudaOperand {
            op: "conv2d",
            reason: format!("size {x} does not fit in i32"),
        })?;
    }
    // The kernels index the pixels of a batch (`n·oh·ow`, `n·h·w` rows) and `kh·kw·cin` with i32.
    let fits = |dims: &[usize]| {
        dims.iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .is_some_and(|t| i32::try_from(t).is_ok())
    };
    if !fits(&[p.batch, p.oh, p.ow]) || !fits(&[p.batch, p.h, p.w]) || !fits(&[p.kh, p.kw, p.cin.max(p.cout)]) {
        return Err(Error::CudaOperand {
            op: "conv2d",
            reason: "the layer is too large for i32 pixel indices".to_string(),
        });
    }
    Ok(out)
}

/// The masked conv2d forward on `dev` with host operands (`y = conv(x, W⊙M) + bias`, or added
/// to `y` with `Beta::One`); shapes as [`crate::conv::conv2d`]. `mask = None` keeps every weight.
///
/// # Errors
/// [`Error::ConvGeometry`], [`Error::ConvBuffer`], [`Error::ConvMaskMismatch`], [`Error::Cuda`].
#[allow(clippy::too_many_arguments)]
pub fn masked_conv2d_host(
    dev: &CudaDevice,
    precision: Precision,
    geom: &Conv2dGeometry,
    x: &[f32],
    w: &[f32],
    mask: Option<&ConvMask>,
    bias: Option<&[f32]>,
    y: &mut [f32],
    beta: Beta,
) -> Result<()> {
    let gx = dev.upload(x, 1, x.len(), precision)?;
    let gw = dev.upload(w, 1, w.len(), precision)?;
    let gb = bias.map(|b| dev.upload(b, 1, b.len(), Precision::F32)).transpose()?;
    let gm = dev.upload_conv_mask(geom.mask_dims(), mask)?;
    let mut gy = dev.upload(y, 1, y.len(), Precision::F32)?;
    dev.masked_conv2d(precision, geom, &gx, &gw, &gm, gb.as_ref(), &mut gy, beta)?;
    y.copy_from_slice(&dev.download(&gy)?);
    Ok(())
}

/// The input (`GemmOp::Dx`: `a = dy`, `b = w`, `out = dx`) or weight (`GemmOp::Dw`: `a = x`,
/// `b = dy`, `out = dw`, 0 off the mask) gradient of the masked conv2d on `dev` with host
/// operands; shapes as [`crate::conv::conv2d_backward_input`] /
/// [`crate::conv::conv2d_backward_weight`].
///
/// # Errors
/// As [`CudaDevice::masked_conv2d_backward`].
#[allow(clippy::too_many_arguments)]
pub fn masked_conv2d_backward_host(
    dev: &CudaDevice,
    op: GemmOp,
    precision: Precision,
    geom: &Conv2dGeometry,
    a: &[f32],
    b: &[f32],
    mask: Option<&ConvMask>,
    out: &mut [f32],
    beta: Beta,
) -> Result<()> {
    let ga = dev.upload(a, 1, a.len(), precision)?;
    let gb = dev.upload(b, 1, b.len(), precision)?;
    let gm = dev.upload_conv_mask(geom.mask_dims(), mask)?;
    let mut go = dev.upload(out, 1, out.len(), Precision::F32)?;
    dev.masked_conv2d_backward(op, precision, geom, &ga, &gb, &gm, &mut go, beta)?;
    out.copy_from_slice(&dev.download(&go)?);
    Ok(())
}

/// The masked transposed convolution on `dev` with host operands: `GemmOp::Forward` (`a = x`,
/// `b = w`, `bias`, `out = y`), `GemmOp::Dx` (`a = dy`, `b = w`, `out = dx`) or `GemmOp::Dw`
/// (`a = x`, `b = dy`, `out = dw`, 0 off the mask); shapes as [`crate::conv::conv_transpose2d`]
/// and its gradients. `bias` is only used by the forward.
///
/// # Errors
/// As [`CudaDevice::masked_conv_transpose2d`].
#[allow(clippy::too_many_arguments)]
pub fn masked_conv_transpose2d_host(
    dev: &CudaDevice,
    op: GemmOp,
    precision: Precision,
    geom: &ConvTranspose2dGeometry,
    a: &[f32],
    b: &[f32],
    mask: Option<&ConvMask>,
    bias: Option<&[f32]>,
    out: &mut [f32],
    beta: Beta,
) -> Result<()> {
    let ga = dev.upload(a, 1, a.len(), precision)?;
    let gb = dev.upload(b, 1, b.len(), precision)?;
    let gbias = bias.map(|v| dev.upload(v, 1, v.len(), Precision::F32)).transpose()?;
    let gm = dev.upload_conv_mask(geom.mask_dims(), mask)?;
    let mut go = dev.upload(out, 1, out.len(), Precision::F32)?;
    dev.masked_conv_transpose2d(op, precision, geom, &ga, &gb, &gm, gbias.as_ref(), &mut go, beta)?;
    out.copy_from_slice(&dev.download(&go)?);
    Ok(())
}

/// Device 0, or `None` with the reason on stderr when this build or machine has no CUDA: the
/// caller then stays on the CPU.
pub fn open_device() -> Option<CudaDevice> {
    match CudaDevice::new(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("CUDA not used: {e}");
            None
        }
    }
}

/// One masked GEMM on `dev` with host operands: uploads `a`, `b`, the mask and the current
/// `out` (so `Beta::One` accumulates), runs [`CudaDevice::masked_gemm`], copies `out` back.
/// Operands as in [`CudaDevice::masked_gemm`].
///
/// # Errors
/// Shape errors, [`Error::Cuda`].
#[allow(clippy::too_many_arguments)]
pub fn masked_gemm_host(
    dev: &CudaDevice,
    op: GemmOp,
    precision: Precision,
    a: MatRef<'_>,
    b: MatRef<'_>,
    mask: &TileMap,
    mut out: MatMut<'_>,
    beta: Beta,
) -> Result<()> {
    check_gemm_shapes(op, [a.rows(), a.cols()], [b.rows(), b.cols()], mask.shape())?;
    let ga = dev.upload(a.data(), a.rows(), a.cols(), precision)?;
    let gb = dev.upload(b.data(), b.rows(), b.cols(), precision)?;
    let gm = dev.upload_tile_map(mask)?;
    let [rows, cols] = out.shape();
    let mut go = dev.upload(out.data(), rows, cols, Precision::F32)?;
    dev.masked_gemm(op, precision, &ga, &gb, &gm, &mut go, beta)?;
    let host = dev.download(&go)?;
    out.data().copy_from_slice(&host);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_params_follow_the_geometry() {
        use crate::conv::Padding;
        let g = Conv2dGeometry::new(2, 6, (9, 7), 70, (3, 3)).with_padding(Padding::Same);
        assert_eq!(
            conv_params(&g.plan("t").unwrap()).unwrap(),
            [2, 6, 9, 7, 70, 3, 3, 1, 1, 1, 1, 1, 1, 9, 7, 1]
        );
        let g = Conv2dGeometry::new(3, 8, (10, 11), 12, (3, 2))
            .with_stride((2, 1))
            .with_dilation((1, 2))
            .with_groups(2)
            .with_padding(Padding::Explicit {
                top: 1,
                bottom: 1,
                left: 0,
                right: 0,
            });
        assert_eq!(
            conv_params(&g.plan("t").unwrap()).unwrap(),
            [3, 8, 10, 11, 12, 3, 2, 2, 1, 1, 0, 1, 2, 5, 9, 2]
        );
    }

    #[test]
    fn shape_checks_name_the_operands() {
        assert_eq!(
            check_gemm_shapes(GemmOp::Forward, [3, 4], [4, 5], [4, 5]).unwrap(),
            (3, [3, 5])
        );
        assert_eq!(
            check_gemm_shapes(GemmOp::Dx, [3, 5], [4, 5], [4, 5]).unwrap(),
            (3, [3, 4])
        );
        assert_eq!(
            check_gemm_shapes(GemmOp::Dw, [3, 4], [3, 5], [4, 5]).unwrap(),
            (3, [4, 5])
        );
        assert!(matches!(
            check_gemm_shapes(GemmOp::Forward, [3, 5], [4, 5], [4, 5]),
            Err(Error::ShapeMismatch { lhs: "x", .. })
        ));
        assert!(matches!(
            check_gemm_shapes(GemmOp::Dw, [3, 4], [2, 5], [4, 5]),
            Err(Error::ShapeMismatch { rhs: "dy", .. })
        ));
    }
}
