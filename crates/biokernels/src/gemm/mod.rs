//! Dense and masked GEMM, f32, row-major, with tile skipping.
//!
//! The three products a masked dense layer needs, with `W` stored `(k, n)` = `(in, out)` and the
//! mask `M` compiled into a [`TileMap`] of the same shape:
//!
//! - forward, [`masked_matmul`]: `Y = X · (W ⊙ M)`;
//! - input gradient, [`masked_matmul_dx`]: `dX = dY · (W ⊙ M)ᵀ`;
//! - weight gradient, [`masked_matmul_dw`]: `dW = (Xᵀ · dY) ⊙ M`, computed only on the mask's
//!   support; entries off the support are written as exactly 0.
//!
//! and their dense counterparts [`matmul`] (`C = A·B`), [`matmul_nt`] (`C = A·Bᵀ`) and
//! [`matmul_tn`] (`C = Aᵀ·B`), which run the very same kernels with a mask that keeps
//! everything.
//!
//! Empty tiles are skipped (no packing, no arithmetic), full tiles run a dense register-blocked
//! micro-kernel, partial tiles are applied by their bit pattern while packing (forward, dX) or
//! when storing (dW). Work is spread over the current rayon pool by blocks of output; the
//! reduction over `k` is never split, so results are identical for any number of threads.
//!
//! Masked-off weights are structural zeros: their products are never formed, so a NaN or an
//! infinity in `W` (or in the skipped part of `X`) off the mask does not reach the result, as
//! it would in a dense `X·(W*M)`.
//!
//! Every function takes [`Options`] (or just a [`Beta`]): `Beta::Zero` overwrites the output,
//! `Beta::One` adds to it (`C = A·B + C`, for accumulating over conv taps or batches; with a
//! mask, `dW` entries off the support are then left unchanged).
//!
//! # Shapes
//! | function | inputs | output |
//! |---|---|---|
//! | [`matmul`] | `a (m, k)`, `b (k, n)` | `c (m, n)` |
//! | [`matmul_nt`] | `a (m, n)`, `b (k, n)` | `c (m, k)` |
//! | [`matmul_tn`] | `a (m, k)`, `b (m, n)` | `c (k, n)` |
//! | [`masked_matmul`] | `x (m, k)`, `w (k, n)`, mask `(k, n)` | `y (m, n)` |
//! | [`masked_matmul_dx`] | `dy (m, n)`, `w (k, n)`, mask `(k, n)` | `dx (m, k)` |
//! | [`masked_matmul_dw`] | `x (m, k)`, `dy (m, n)`, mask `(k, n)` | `dw (k, n)` |
//!
//! # Example
//! ```
//! use biokernels::gemm::{masked_matmul, Beta, MatMut, MatRef};
//! use biokernels::{TileMap, TileSize};
//! # fn main() -> biokernels::Result<()> {
//! let (m, k, n) = (2, 3, 2);
//! let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let w = [1.0; 6];
//! let mask = TileMap::from_values(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], k, n, TileSize::square(2))?;
//! let mut y = [0.0; 4];
//! masked_matmul(MatRef::new(&x, m, k)?, MatRef::new(&w, k, n)?, &mask, MatMut::new(&mut y, m, n)?, Beta::Zero)?;
//! assert_eq!(y, [4.0, 5.0, 10.0, 11.0]);
//! # Ok(())
//! # }
//! ```
//!
//! # Backends
//! `cpu.rs` holds the CPU path (packing, planning, tasks) and `microkernel.rs` its AVX-512, AVX2
//! and portable micro-kernels, chosen at run time. The CUDA kernels ([`crate::cuda`], feature
//! `cuda`) compute the same three products from the same [`TileMap`], rebuilt with 64 × 64
//! tiles into per-block tile lists; the tape reaches both through
//! [`crate::device::DeviceBackend`] (the host emulator runs these CPU kernels).

mod cpu;
mod microkernel;

use crate::error::{Error, Result};
use crate::tile_map::TileMap;
pub(crate) use cpu::packed_a_len;
use cpu::{ASrc, BSrc, Problem};

/// Length of the reduction chunks of the CPU kernels. Fixed, so results do not depend on the
/// shape blocking or the number of threads.
pub const KC: usize = cpu::KC;

/// `C = A·B` (`Zero`) or `C = A·B + C` (`One`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Beta {
    /// Overwrite the output.
    #[default]
    Zero,
    /// Add to the output.
    One,
}

/// A CPU micro-kernel instruction set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512F, 8 × 32 micro-kernel.
    Avx512,
    /// AVX2 + FMA, 6 × 16 micro-kernel.
    Avx2,
    /// Plain Rust that LLVM vectorises with the baseline target, 4 × 16 micro-kernel.
    Portable,
}

impl Isa {
    /// The best instruction set this CPU supports (detected at run time, so builds without
    /// `-C target-cpu` still use AVX-512 or AVX2 where present).
    pub fn detect() -> Isa {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .find(|i| i.is_available())
            .unwrap_or(Isa::Portable)
    }

    /// Whether this CPU and build can run it.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            Isa::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every instruction set this CPU can run, best first.
    pub fn available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Portable]
            .into_iter()
            .filter(|i| i.is_available())
            .collect()
    }

    /// `"avx512"`, `"avx2"` or `"portable"`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }

    /// `(MR, NR)`: the micro-kernel's block of C.
    pub fn micro_tile(self) -> (usize, usize) {
        match self {
            Isa::Avx512 => (8, 32),
            Isa::Avx2 => (6, 16),
            Isa::Portable => (4, 16),
        }
    }
}

/// Options of every GEMM call. A [`Beta`] converts into options with the detected [`Isa`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Options {
    /// Overwrite or accumulate.
    pub beta: Beta,
    /// Force a micro-kernel (tests, benchmarks); `None` picks [`Isa::detect`].
    pub isa: Option<Isa>,
}

impl From<Beta> for Options {
    fn from(beta: Beta) -> Self {
        Options { beta, isa: None }
    }
}

impl Options {
    fn resolve_isa(&self) -> Result<Isa> {
        match self.isa {
            None => Ok(Isa::detect()),
            Some(isa) if isa.is_available() => Ok(isa),
            Some(isa) => Err(Error::IsaUnavailable { isa: isa.name() }),
        }
    }
}

fn check_len(len: usize, rows: usize, cols: usize) -> Result<()> {
    let need = rows.checked_mul(cols).ok_or(Error::SizeOverflow { rows, cols })?;
    if need != len {
        return Err(Error::BufferSize { rows, cols, len });
    }
    Ok(())
}

/// A row-major `rows × cols` matrix view.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
}

impl<'a> MatRef<'a> {
    /// Views `data` as a row-major `rows × cols` matrix.
    ///
    /// # Errors
    /// [`Error::BufferSize`] if `data.len() != rows * cols`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        check_len(data.len(), rows, cols)?;
        Ok(MatRef { data, rows, cols })
    }
    /// The values, row-major.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }
}

/// A mutable row-major `rows × cols` matrix view.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
}

impl<'a> MatMut<'a> {
    /// Views `data` as a mutable row-major `rows × cols` matrix.
    ///
    /// # Errors
    /// [`Error::BufferSize`] if `data.len() != rows * cols`.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Result<Self> {
        check_len(data.len(), rows, cols)?;
        Ok(MatMut { data, rows, cols })
    }
    /// The values, row-major.
    pub fn data(&mut self) -> &mut [f32] {
        self.data
    }
    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }
}

fn mismatch(op: &'static str, lhs: &'static str, l: [usize; 2], rhs: &'static str, r: [usize; 2]) -> Error {
    Error::ShapeMismatch {
        op,
        lhs,
        lhs_shape: l,
        rhs,
        rhs_shape: r,
    }
}

fn check_out(op: &'static str, name: &'static str, out: &MatMut<'_>, expected: [usize; 2]) -> Result<()> {
    if out.shape() != expected {
        return Err(Error::OutputShape {
            op,
            name,
            expected,
            got: out.shape(),
        });
    }
    Ok(())
}

fn check_mask(op: &'static str, w: [usize; 2], mask: &TileMap) -> Result<()> {
    if mask.shape() != w {
        return Err(mismatch(op, "w", w, "mask", mask.shape()));
    }
    Ok(())
}

fn launch(problem: Problem<'_>, c: MatMut<'_>, opts: Options) -> Result<()> {
    let isa = opts.resolve_isa()?;
    cpu::gemm(isa, &problem, c.data);
    Ok(())
}

/// `C = A·(B ⊙ M)` (or `A·B` without a mask) with A already packed in the layout of `isa`'s
/// micro-kernel ([`packed_a_len`] floats; the convolutions unroll their input straight into
/// it). Same arithmetic, same order, as [`matmul`] / [`masked_matmul`] on the unpacked A.
pub(crate) fn matmul_packed_a(
    isa: Isa,
    a_packed: &[f32],
    m: usize,
    b: MatRef<'_>,
    mask: Option<&TileMap>,
    c: MatMut<'_>,
    beta: Beta,
) -> Result<()> {
    const OP: &str = "matmul_packed_a";
    let k = b.rows;
    let expected = packed_a_len(isa, m, k);
    if a_packed.len() != expected {
        return Err(Error::BufferSize {
            rows: expected,
            cols: 1,
            len: a_packed.len(),
        });
    }
    if let Some(tm) = mask {
        check_mask(OP, b.shape(), tm)?;
    }
    check_out(OP, "c", &c, [m, b.cols])?;
    if !isa.is_available() {
        return Err(Error::IsaUnavailable { isa: isa.name() });
    }
    let problem = Problem {
        m,
        k,
        n: b.cols,
        a: ASrc::Packed(a_packed),
        b: BSrc::RowMajor(b.data),
        b_mask: mask,
        c_mask: None,
        accumulate: beta == Beta::One,
    };
    cpu::gemm(isa, &problem, c.data);
    Ok(())
}

/// `C = A·B` (+ `C` with [`Beta::One`]), dense.
///
/// # Shapes
/// `a (m, k)`, `b (k, n)`, `c (m, n)`.
///
/// # Errors
/// [`Error::ShapeMismatch`], [`Error::OutputShape`], [`Error::IsaUnavailable`].
pub fn matmul(a: MatRef<'_>, b: MatRef<'_>, c: MatMut<'_>, opts: impl Into<Options>) -> Result<()> {
    const OP: &str = "matmul";
    if a.cols != b.rows {
        return Err(mismatch(OP, "a", a.shape(), "b", b.shape()));
    }
    check_out(OP, "c", &c, [a.rows, b.cols])?;
    let opts = opts.into();
    let problem = Problem {
        m: a.rows,
        k: a.cols,
        n: b.cols,
        a: ASrc::RowMajor(a.data),
        b: BSrc::RowMajor(b.data),
        b_mask: None,
        c_mask: None,
        accumulate: opts.beta == Beta::One,
    };
    launch(problem, c, opts)
}

/// `C = A·Bᵀ` (+ `C`), dense: the input gradient of a dense layer, `dX = dY·Wᵀ`.
///
/// # Shapes
/// `a (m, n)`, `b (k, n)`, `c (m, k)`.
///
/// # Errors
/// [`Error::ShapeMismatch`], [`Error::OutputShape`], [`Error::IsaUnavailable`].
pub fn matmul_nt(a: MatRef<'_>, b: MatRef<'_>, c: MatMut<'_>, opts: impl Into<Options>) -> Result<()> {
    const OP: &str = "matmul_nt";
    if a.cols != b.cols {
        return Err(mismatch(OP, "a", a.shape(), "b", b.shape()));
    }
    check_out(OP, "c", &c, [a.rows, b.rows])?;
    let opts = opts.into();
    let problem = Problem {
        m: a.rows,
        k: a.cols,
        n: b.rows,
        a: ASrc::RowMajor(a.data),
        b: BSrc::Transposed(b.data),
        b_mask: None,
        c_mask: None,
        accumulate: opts.beta == Beta::One,
    };
    launch(problem, c, opts)
}

/// `C = Aᵀ·B` (+ `C`), dense: the weight gradient of a dense layer, `dW = Xᵀ·dY`.
///
/// # Shapes
/// `a (m, k)`, `b (m, n)`, `c (k, n)`.
///
/// # Errors
/// [`Error::ShapeMismatch`], [`Error::OutputShape`], [`Error::IsaUnavailable`].
pub fn matmul_tn(a: MatRef<'_>, b: MatRef<'_>, c: MatMut<'_>, opts: impl Into<Options>) -> Result<()> {
    const OP: &str = "matmul_tn";
    if a.rows != b.rows {
        return Err(mismatch(OP, "a", a.shape(), "b", b.shape()));
    }
    check_out(OP, "c", &c, [a.cols, b.cols])?;
    let opts = opts.into();
    let problem = Problem {
        m: a.cols,
        k: a.rows,
        n: b.cols,
        a: ASrc::Transposed(a.data),
        b: BSrc::RowMajor(b.data),
        b_mask: None,
        c_mask: None,
        accumulate: opts.beta == Beta::One,
    };
    launch(problem, c, opts)
}

/// Forward of a masked dense layer: `Y = X·(W ⊙ M)` (+ `Y`). Reduction indices in empty tiles
/// are skipped.
///
/// # Shapes
/// `x (m, k)`, `w (k, n)`, `mask (k, n)`, `y (m, n)`.
///
/// # Errors
/// [`Error::ShapeMismatch`], [`Error::OutputShape`], [`Error::IsaUnavailable`].
pub fn masked_matmul(
    x: MatRef<'_>,
    w: MatRef<'_>,
    mask: &TileMap,
    y: MatMut<'_>,
    opts: impl Into<Options>,
) -> Result<()> {
    const OP: &str = "masked_matmul";
    if x.cols != w.rows {
        return Err(mismatch(OP, "x", x.shape(), "w", w.shape()));
    }
    check_mask(OP, w.shape(), mask)?;
    check_out(OP, "y", &y, [x.rows, w.cols])?;
    let opts = opts.into();
    let problem = Problem {
        m: x.rows,
        k: x.cols,
        n: w.cols,
        a: ASrc::RowMajor(x.data),
        b: BSrc::RowMajor(w.data),
        b_mask: Some(mask),
        c_mask: None,
        accumulate: opts.beta == Beta::One,
    };
    launch(problem, y, opts)
}

/// Input gradient of a masked dense layer: `dX = dY·(W ⊙ M)ᵀ` (+ `dX`). Output units in empty
/// tiles are skipped.
///
/// # Shapes
/// `dy (m, n)`, `w (k, n)`, `mask (k, n)`, `dx (m, k)`.
///
/// # Errors
/// [`Error::ShapeMismatch`], [`Error::OutputShape`], [`Error::IsaUnavailable`].
pub fn masked_matmul_dx(
    dy: MatRef<'_>,
    w: MatRef<'_>,
    mask: &TileMap,
    dx: MatMut<'_>,
    opts: impl Into<Options>,
) -> Result<()> {
    const OP: &str = "masked_matmul_dx";
    if dy.cols != w.cols {
        return Err(mismatch(OP, "dy", dy.shape(), "w", w.shape()));
    }
    check_mask(OP, w.shape(), mask)?;
    check_out(OP, "dx", &dx, [dy.rows, w.rows])?;
    let opts = opts.into();
    let problem = Problem {
        m: dy.rows,
        k: dy.cols,
        n: w.rows,
        a: ASrc::RowMajor(dy.data),
        b: BSrc::Transposed(w.data),
        b_mask: Some(mask),
        c_mask: None,
        accumulate: opts.beta == Beta::One,
    };
    launch(problem, dx, opts)
}

/// Weight gradient of a masked dense layer: `dW = (Xᵀ·dY) ⊙ M`, computed only on the mask's
/// support. With [`Beta::Zero`] entries off the support are written as exactly 0; with
/// [`Beta::One`] they are left unchanged (`dW += (Xᵀ·dY) ⊙ M`).
///
/// # Shapes
/// `x (m, k)`, `dy (m, n)`, `mask (k, n)`, `dw (k, n)`.
///
/// # Errors
/// [`Error::ShapeMismatch`], [`Error::OutputShape`], [`Error::IsaUnavailable`].
pub fn masked_matmul_dw(
    x: MatRef<'_>,
    dy: MatRef<'_>,
    mask: &TileMap,
    dw: MatMut<'_>,
    opts: impl Into<Options>,
) -> Result<()> {
    const OP: &str = "masked_matmul_dw";
    if x.rows != dy.rows {
        return Err(mismatch(OP, "x", x.shape(), "dy", dy.shape()));
    }
    let expected = [x.cols, dy.cols];
    check_out(OP, "dw", &dw, expected)?;
    if mask.shape() != expected {
        return Err(mismatch(OP, "mask", mask.shape(), "dw", expected));
    }
    let opts = opts.into();
    let problem = Problem {
        m: x.cols,
        k: x.rows,
        n: dy.cols,
        a: ASrc::Transposed(x.data),
        b: BSrc::RowMajor(dy.data),
        b_mask: None,
        c_mask: Some(mask),
        accumulate: opts.beta == Beta::One,
    };
    launch(problem, dw, opts)
}

/// A right-hand operand `B` (or `B ⊙ M`) packed once into the micro-kernel's panels, for many
/// products [`matmul_prepacked`] with different left-hand sides: the fused RNN multiplies the
/// states of every time step by the same `W_hh ⊙ M` (forward) and `(W_hh ⊙ M)ᵀ` (BPTT), and
/// packing it at every step was ~17–20 % of an epoch.
///
/// # Shapes
/// [`PackedB::new`]: `b (k, n)`, mask `(k, n)`; [`PackedB::transposed`]: `s (n, k)`, mask
/// `(n, k)`, holding `B = (S ⊙ M)ᵀ`. Either way the products are `a (m, k)` → `c (m, n)`.
pub struct PackedB {
    packed: cpu::PrepackedB,
    k: usize,
    n: usize,
}

impl std::fmt::Debug for PackedB {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedB")
            .field("k", &self.k)
            .field("n", &self.n)
            .field("isa", &self.packed.isa())
            .finish()
    }
}

impl PackedB {
    /// Packs `B ⊙ M` (`B` without a mask) for the products `A·(B ⊙ M)` of [`matmul`] /
    /// [`masked_matmul`]; the options' `beta` is ignored (each product takes its own).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a mask of another shape, [`Error::IsaUnavailable`].
    pub fn new(b: MatRef<'_>, mask: Option<&TileMap>, opts: impl Into<Options>) -> Result<Self> {
        if let Some(tm) = mask {
            check_mask("PackedB::new", b.shape(), tm)?;
        }
        Self::pack(b.rows, b.cols, BSrc::RowMajor(b.data), mask, opts.into())
    }

    /// Packs `(S ⊙ M)ᵀ` for the products `dY·(S ⊙ M)ᵀ` of [`matmul_nt`] /
    /// [`masked_matmul_dx`] (`S` = the layer's weight `(k_in, n_out)`, so here `k = n_out`).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a mask of another shape, [`Error::IsaUnavailable`].
    pub fn transposed(s: MatRef<'_>, mask: Option<&TileMap>, opts: impl Into<Options>) -> Result<Self> {
        if let Some(tm) = mask {
            check_mask("PackedB::transposed", s.shape(), tm)?;
        }
        Self::pack(s.cols, s.rows, BSrc::Transposed(s.data), mask, opts.into())
    }

    fn pack(k: usize, n: usize, b: BSrc<'_>, mask: Option<&TileMap>, opts: Options) -> Result<Self> {
        let isa = opts.resolve_isa()?;
        let problem = Problem {
            m: 0,
            k,
            n,
            a: ASrc::RowMajor(&[]),
            b,
            b_mask: mask,
            c_mask: None,
            accumulate: false,
        };
        Ok(PackedB {
            packed: cpu::prepack_b(isa, &problem),
            k,
            n,
        })
    }

    /// `[k, n]`: the shape of the packed `B`.
    pub fn shape(&self) -> [usize; 2] {
        [self.k, self.n]
    }
}

/// `C = A·B` (+ `C` with [`Beta::One`]) with `B` packed by [`PackedB`]: bit-identical to
/// [`matmul`] / [`masked_matmul`] (or [`matmul_nt`] / [`masked_matmul_dx`] for
/// [`PackedB::transposed`]) on the unpacked operand with the same [`Isa`], without packing `B`.
///
/// # Shapes
/// `a (m, k)`, `b [k, n]`, `c (m, n)`.
///
/// # Errors
/// [`Error::ShapeMismatch`], [`Error::OutputShape`].
pub fn matmul_prepacked(a: MatRef<'_>, b: &PackedB, c: MatMut<'_>, beta: Beta) -> Result<()> {
    const OP: &str = "matmul_prepacked";
    if a.cols != b.k {
        return Err(mismatch(OP, "a", a.shape(), "b", b.shape()));
    }
    check_out(OP, "c", &c, [a.rows, b.n])?;
    let problem = Problem {
        m: a.rows,
        k: b.k,
        n: b.n,
        a: ASrc::RowMajor(a.data),
        b: BSrc::RowMajor(&[]),
        b_mask: None,
        c_mask: None,
        accumulate: beta == Beta::One,
    };
    cpu::gemm_prepacked(&problem, &b.packed, c.data);
    Ok(())
}
