//! The element types of the tape: `f32` (training) and `f64` (reference and gradient checks).
//!
//! Every op is written once, generic over [`Float`]. The three matrix products an op needs
//! (`Y = A·B`, `dA = dY·Bᵀ`, `dB = Aᵀ·dY`, each optionally restricted to a mask) are methods of
//! the trait: `f32` runs them through `biokernels` (tile-skipping masked GEMM), `f64` through
//! plain triple loops. Finite-difference gradient checks therefore run the *same* op code in
//! `f64`, never `f32` against itself, and the `f32` kernel path is checked against NumPy
//! float64 fixtures.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

use biokernels::gemm::{Beta, MatMut, MatRef};
use biokernels::TileMap;

use crate::error::Result;
use crate::ops::conv::{reference, ConvGeometry, ConvMask};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point element type of the tape: `f32` or `f64` (sealed).
///
/// The matrix products take the *forward* problem size `(m, k, n)` of `Y (m,n) = A (m,k) · B (k,n)`
/// and an optional 0/1 mask `M (k, n)` applied to `B`.
pub trait Float:
    sealed::Sealed
    + Copy
    + Debug
    + Default
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + Sum
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// −∞.
    const NEG_INFINITY: Self;
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;
    /// Converts (rounding to nearest for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Widens to `f64`.
    fn to_f64(self) -> f64;
    /// `eˣ`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Converts a count.
    fn from_usize(n: usize) -> Self {
        Self::from_f64(n as f64)
    }
    /// The values as `f32` without a copy: `Some` for `f32`, `None` for `f64` (only `f32`
    /// tensors can live on a CUDA device).
    fn as_f32_slice(values: &[Self]) -> Option<&[f32]>;
    /// `f32` values as `Self` without a copy: `Some` for `f32`, `None` for `f64`.
    fn from_f32_vec(values: Vec<f32>) -> Option<Vec<Self>>;
    /// `Y = A · (B ⊙ M)`: `a (m, k)`, `b (k, n)` → `(m, n)`.
    fn mm(a: &[Self], b: &[Self], mask: Option<&TileMap>, m: usize, k: usize, n: usize) -> Result<Vec<Self>>;
    /// `dA = dY · (B ⊙ M)ᵀ`: `dy (m, n)`, `b (k, n)` → `(m, k)`.
    fn mm_da(dy: &[Self], b: &[Self], mask: Option<&TileMap>, m: usize, k: usize, n: usize) -> Result<Vec<Self>>;
    /// `dB = (Aᵀ · dY) ⊙ M`: `a (m, k)`, `dy (m, n)` → `(k, n)`.
    fn mm_db(a: &[Self], dy: &[Self], mask: Option<&TileMap>, m: usize, k: usize, n: usize) -> Result<Vec<Self>>;
    /// [`Float::mm`] into a caller's buffer `c (m, n)`: overwrites it, or adds to it when
    /// `accumulate` (no allocation; the fused ops reuse their buffers across steps).
    #[allow(clippy::too_many_arguments)]
    fn mm_into(
        a: &[Self],
        b: &[Self],
        mask: Option<&TileMap>,
        c: &mut [Self],
        accumulate: bool,
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<()>;
    /// [`Float::mm_da`] into `c (m, k)` (overwritten).
    fn mm_da_into(
        dy: &[Self],
        b: &[Self],
        mask: Option<&TileMap>,
        c: &mut [Self],
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<()>;
    /// [`Float::mm_db`] into `c (k, n)` (overwritten; exactly 0 off the mask).
    fn mm_db_into(
        a: &[Self],
        dy: &[Self],
        mask: Option<&TileMap>,
        c: &mut [Self],
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<()>;
    /// Convolution or transposed-convolution forward, without bias (layer input `x`, weight
    /// `w`, see [`crate::ops::conv`]).
    fn conv_forward(geom: &ConvGeometry, x: &[Self], w: &[Self], mask: Option<&ConvMask>) -> Result<Vec<Self>>;
    /// Its input gradient from the output gradient `dy`.
    fn conv_backward_input(geom: &ConvGeometry, dy: &[Self], w: &[Self], mask: Option<&ConvMask>) -> Result<Vec<Self>>;
    /// Its weight gradient (exactly 0 off the mask).
    fn conv_backward_weight(geom: &ConvGeometry, x: &[Self], dy: &[Self], mask: Option<&ConvMask>)
        -> Result<Vec<Self>>;
    /// A right-hand operand packed once for many products ([`Float::mm_packed_into`]).
    type PackedRhs: Send + Sync;
    /// Packs `B ⊙ M` (`b (k, n)`, mask `(k, n)`) for `A·(B ⊙ M)`, or with `transposed`
    /// `(S ⊙ M)ᵀ` (`b` = `S (k, n)`, mask `(k, n)`) for `dY·(S ⊙ M)ᵀ` as in [`Float::mm_da`].
    fn pack_rhs(b: &[Self], mask: Option<&TileMap>, k: usize, n: usize, transposed: bool) -> Result<Self::PackedRhs>;
    /// `c (m, ·) = a · packed` (+ `c` when `accumulate`): the same values as [`Float::mm_into`]
    /// (or [`Float::mm_da_into`] for a transposed pack) on the unpacked operand.
    fn mm_packed_into(a: &[Self], b: &Self::PackedRhs, c: &mut [Self], accumulate: bool, m: usize) -> Result<()>;
}

/// [`Float::PackedRhs`] of `f64`: the operand kept as is (the plain loops need no packing).
#[derive(Debug)]
pub struct F64Rhs {
    b: Vec<f64>,
    mask: Option<TileMap>,
    k: usize,
    n: usize,
    transposed: bool,
}

macro_rules! float_common {
    ($t:ty) => {
        const ZERO: Self = 0.0;
        const ONE: Self = 1.0;
        const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
        const NAME: &'static str = stringify!($t);
        fn from_f64(v: f64) -> Self {
            v as $t
        }
        fn to_f64(self) -> f64 {
            self as f64
        }
        fn exp(self) -> Self {
            <$t>::exp(self)
        }
        fn ln(self) -> Self {
            <$t>::ln(self)
        }
        fn tanh(self) -> Self {
            <$t>::tanh(self)
        }
        fn sqrt(self) -> Self {
            <$t>::sqrt(self)
        }
    };
}

impl Float for f32 {
    float_common!(f32);

    fn as_f32_slice(values: &[f32]) -> Option<&[f32]> {
        Some(values)
    }

    fn from_f32_vec(values: Vec<f32>) -> Option<Vec<f32>> {
        Some(values)
    }

    fn mm(a: &[f32], b: &[f32], mask: Option<&TileMap>, m: usize, k: usize, n: usize) -> Result<Vec<f32>> {
        let mut c = vec![0.0; m * n];
        Self::mm_into(a, b, mask, &mut c, false, m, k, n)?;
        Ok(c)
    }

    fn mm_da(dy: &[f32], b: &[f32], mask: Option<&TileMap>, m: usize, k: usize, n: usize) -> Result<Vec<f32>> {
        let mut c = vec![0.0; m * k];
        Self::mm_da_into(dy, b, mask, &mut c, m, k, n)?;
        Ok(c)
    }

    fn mm_db(a: &[f32], dy: &[f32], mask: Option<&TileMap>, m: usize, k: usize, n: usize) -> Result<Vec<f32>> {
        let mut c = vec![0.0; k * n];
        Self::mm_db_into(a, dy, mask, &mut c, m, k, n)?;
        Ok(c)
    }

    fn mm_into(
        a: &[f32],
        b: &[f32],
        mask: Option<&TileMap>,
        c: &mut [f32],
        accumulate: bool,
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<()> {
        let beta = if accumulate { Beta::One } else { Beta::Zero };
        let (a, b, cm) = (MatRef::new(a, m, k)?, MatRef::new(b, k, n)?, MatMut::new(c, m, n)?);
        match mask {
            None => biokernels::matmul(a, b, cm, beta)?,
            Some(t) => biokernels::masked_matmul(a, b, t, cm, beta)?,
        }
        Ok(())
    }

    fn mm_da_into(
        dy: &[f32],
        b: &[f32],
        mask: Option<&TileMap>,
        c: &mut [f32],
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<()> {
        let (dy, b, cm) = (MatRef::new(dy, m, n)?, MatRef::new(b, k, n)?, MatMut::new(c, m, k)?);
        match mask {
            None => biokernels::matmul_nt(dy, b, cm, Beta::Zero)?,
            Some(t) => biokernels::masked_matmul_dx(dy, b, t, cm, Beta::Zero)?,
        }
        Ok(())
    }

    fn mm_db_into(
        a: &[f32],
        dy: &[f32],
        mask: Option<&TileMap>,
        c: &mut [f32],
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<()> {
        let (a, dy, cm) = (MatRef::new(a, m, k)?, MatRef::new(dy, m, n)?, MatMut::new(c, k, n)?);
        match mask {
            None => biokernels::matmul_tn(a, dy, cm, Beta::Zero)?,
            Some(t) => biokernels::masked_matmul_dw(a, dy, t, cm, Beta::Zero)?,
        }
        Ok(())
    }

    fn conv_forward(geom: &ConvGeometry, x: &[f32], w: &[f32], mask: Option<&ConvMask>) -> Result<Vec<f32>> {
        use biokernels::conv;
        Ok(match geom {
            ConvGeometry::Conv(g) => {
                let mut y = vec![0.0; g.output_len()?];
                conv::conv2d(g, x, w, mask, None, &mut y)?;
                y
            }
            ConvGeometry::Transpose(g) => {
                let mut y = vec![0.0; g.output_len()?];
                conv::conv_transpose2d(g, x, w, mask, None, &mut y)?;
                y
            }
        })
    }

    fn conv_backward_input(geom: &ConvGeometry, dy: &[f32], w: &[f32], mask: Option<&ConvMask>) -> Result<Vec<f32>> {
        use biokernels::conv;
        Ok(match geom {
            ConvGeometry::Conv(g) => {
                let mut dx = vec![0.0; g.input_len()];
                conv::conv2d_backward_input(g, dy, w, mask, &mut dx)?;
                dx
            }
            ConvGeometry::Transpose(g) => {
                let mut dx = vec![0.0; g.input_len()];
                conv::conv_transpose2d_backward_input(g, dy, w, mask, &mut dx)?;
                dx
            }
        })
    }

    fn conv_backward_weight(geom: &ConvGeometry, x: &[f32], dy: &[f32], mask: Option<&ConvMask>) -> Result<Vec<f32>> {
        use biokernels::conv;
        Ok(match geom {
            ConvGeometry::Conv(g) => {
                let mut dw = vec![0.0; g.weight_len()];
                conv::conv2d_backward_weight(g, x, dy, mask, &mut dw)?;
                dw
            }
            ConvGeometry::Transpose(g) => {
                let mut dw = vec![0.0; g.weight_len()];
                conv::conv_transpose2d_backward_weight(g, x, dy, mask, &mut dw)?;
                dw
            }
        })
    }

    type PackedRhs = biokernels::PackedB;

    fn pack_rhs(
        b: &[f32],
        mask: Option<&TileMap>,
        k: usize,
        n: usize,
        transposed: bool,
    ) -> Result<biokernels::PackedB> {
        let b = MatRef::new(b, k, n)?;
        Ok(if transposed {
            biokernels::PackedB::transposed(b, mask, Beta::Zero)?
        } else {
            biokernels::PackedB::new(b, mask, Beta::Zero)?
        })
    }

    fn mm_packed_into(a: &[f32], b: &biokernels::PackedB, c: &mut [f32], accumulate: bool, m: usize) -> Result<()> {
        let [k, n] = b.shape();
        let beta = if accumulate { Beta::One } else { Beta::Zero };
        biokernels::matmul_prepacked(MatRef::new(a, m, k)?, b, MatMut::new(c, m, n)?, beta)?;
        Ok(())
    }
}

/// The f64 products' output-buffer check (the f32 ones go through `MatMut::new`).
fn check_out(len: usize, rows: usize, cols: usize) -> Result<()> {
    if len != rows * cols {
        return Err(biokernels::Error::BufferSize { rows, cols, len }.into());
    }
    Ok(())
}

/// `true` when entry `(r, c)` of the optional mask is kept.
fn keep(mask: Option<&TileMap>, r: usize, c: usize) -> bool {
    mask.is_none_or(|t| t.get(r, c))
}

impl Float for f64 {
    float_common!(f64);

    fn as_f32_slice(_: &[f64]) -> Option<&[f32]> {
        None
    }

    fn from_f32_vec(_: Vec<f32>) -> Option<Vec<f64>> {
        None
    }

    fn mm(a: &[f64], b: &[f64], mask: Option<&TileMap>, m: usize, k: usize, n: usize) -> Result<Vec<f64>> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for p in 0..k {
                let av = a[i * k + p];
                for j in 0..n {
                    if keep(mask, p, j) {
                        c[i * n + j] += av * b[p * n + j];
                    }
                }
            }
        }
        Ok(c)
    }

    fn mm_da(dy: &[f64], b: &[f64], mask: Option<&TileMap>, m: usize, k: usize, n: usize) -> Result<Vec<f64>> {
        let mut c = vec![0.0; m * k];
        for i in 0..m {
            for p in 0..k {
                let mut s = 0.0;
                for j in 0..n {
                    if keep(mask, p, j) {
                        s += dy[i * n + j] * b[p * n + j];
                    }
                }
                c[i * k + p] = s;
            }
        }
        Ok(c)
    }

    fn mm_db(a: &[f64], dy: &[f64], mask: Option<&TileMap>, m: usize, k: usize, n: usize) -> Result<Vec<f64>> {
        let mut c = vec![0.0; k * n];
        for i in 0..m {
            for p in 0..k {
                let av = a[i * k + p];
                for j in 0..n {
                    c[p * n + j] += av * dy[i * n + j];
                }
            }
        }
        if let Some(t) = mask {
            for p in 0..k {
                for j in 0..n {
                    if !t.get(p, j) {
                        c[p * n + j] = 0.0;
                    }
                }
            }
        }
        Ok(c)
    }

    fn mm_into(
        a: &[f64],
        b: &[f64],
        mask: Option<&TileMap>,
        c: &mut [f64],
        accumulate: bool,
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<()> {
        let y = Self::mm(a, b, mask, m, k, n)?;
        check_out(c.len(), m, n)?;
        for (c, y) in c.iter_mut().zip(y) {
            *c = if accumulate { *c + y } else { y };
        }
        Ok(())
    }

    fn mm_da_into(
        dy: &[f64],
        b: &[f64],
        mask: Option<&TileMap>,
        c: &mut [f64],
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<()> {
        check_out(c.len(), m, k)?;
        c.copy_from_slice(&Self::mm_da(dy, b, mask, m, k, n)?);
        Ok(())
    }

    fn mm_db_into(
        a: &[f64],
        dy: &[f64],
        mask: Option<&TileMap>,
        c: &mut [f64],
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<()> {
        check_out(c.len(), k, n)?;
        c.copy_from_slice(&Self::mm_db(a, dy, mask, m, k, n)?);
        Ok(())
    }

    fn conv_forward(geom: &ConvGeometry, x: &[f64], w: &[f64], mask: Option<&ConvMask>) -> Result<Vec<f64>> {
        reference::forward(geom, x, w, mask)
    }

    fn conv_backward_input(geom: &ConvGeometry, dy: &[f64], w: &[f64], mask: Option<&ConvMask>) -> Result<Vec<f64>> {
        reference::backward_input(geom, dy, w, mask)
    }

    fn conv_backward_weight(geom: &ConvGeometry, x: &[f64], dy: &[f64], mask: Option<&ConvMask>) -> Result<Vec<f64>> {
        reference::backward_weight(geom, x, dy, mask)
    }

    type PackedRhs = F64Rhs;

    fn pack_rhs(b: &[f64], mask: Option<&TileMap>, k: usize, n: usize, transposed: bool) -> Result<F64Rhs> {
        check_out(b.len(), k, n)?;
        Ok(F64Rhs {
            b: b.to_vec(),
            mask: mask.cloned(),
            k,
            n,
            transposed,
        })
    }

    fn mm_packed_into(a: &[f64], b: &F64Rhs, c: &mut [f64], accumulate: bool, m: usize) -> Result<()> {
        if !b.transposed {
            return Self::mm_into(a, &b.b, b.mask.as_ref(), c, accumulate, m, b.k, b.n);
        }
        let y = Self::mm_da(a, &b.b, b.mask.as_ref(), m, b.k, b.n)?;
        check_out(c.len(), m, b.k)?;
        for (c, y) in c.iter_mut().zip(y) {
            *c = if accumulate { *c + y } else { y };
        }
        Ok(())
    }
}
