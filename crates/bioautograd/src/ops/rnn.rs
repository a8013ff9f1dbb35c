//! A fused Elman recurrence over a whole sequence: one tape node instead of ~6 per time step.
//!
//! Forward, with `h_{-1} = 0` and `act` ∈ {relu, tanh}:
//!
//! ```text
//! z_t = x_t·W_ih + b_ih + h_{t-1}·(W_hh ⊙ M) + b_hh        h_t = act(z_t)        t = 0 .. T-1
//! ```
//!
//! Backward through time (BPTT), from the upstream gradient `G_t = ∂L/∂h_t` of the output:
//!
//! ```text
//! δ_{T} = 0
//! dz_t  = (G_t + δ_{t+1}) ⊙ act'(h_t)           relu: [h_t > 0]     tanh: 1 − h_t²
//! δ_t   = dz_t · (W_hh ⊙ M)ᵀ                     (the gradient reaching h_{t-1})
//! dW_ih = Σ_t x_tᵀ · dz_t        dX_t = dz_t · W_ihᵀ
//! dW_hh = (Σ_{t≥1} h_{t-1}ᵀ · dz_t) ⊙ M           (exactly 0 off the mask)
//! db_ih = db_hh = Σ_t Σ_batch dz_t
//! ```
//!
//! How it runs: the input projection of all steps is one GEMM accumulated onto a time-major
//! `(T, B, H)` buffer that starts as the bias rows, and that then becomes the hidden states in
//! place (recurrent product accumulated, nonlinearity applied, step by step). The recurrent
//! products use the masked weights `W_hh ⊙ M` built once per call with a *dense* GEMM: at the
//! bio topologies' densities (~0.5, scattered at the 4-neuron region scale) the tile-skipping
//! kernel finds few empty tiles and its bit-pattern handling costs more than the skipped work.
//! `W_hh ⊙ M` is packed into the GEMM's panels once per call ([`Float::pack_rhs`]:
//! `biokernels::PackedB`), and `(W_hh ⊙ M)ᵀ` once per backward, instead of at every step: the
//! same values in the same order, so the same bits as packing per product. Backward keeps one
//! time-major `dz` buffer; `dW_hh` is one masked GEMM (`masked_matmul_dw`, only the support is
//! computed) over all steps, `dW_ih` and `dX` one GEMM each. Nothing is allocated per step and
//! no per-step nodes are recorded. With more than one rayon thread (and `B >= 32`) the batch
//! is split in two halves whose recurrences (forward loop and BPTT loop) run in parallel: batch
//! rows never interact, and every sum over the batch (`dW`, `db`) is taken afterwards on the
//! full buffers, so results are bit-identical for any thread count (tested).
//! The results equal the unfused composition (`matmul`, `masked_matmul`, `add`, `relu`/`tanh`,
//! `concat`) up to f32 summation order.
//!
//! A parent that needs no gradient (a frozen `W_hh` registered with [`Graph::input`], or the
//! data `x`) costs nothing in backward: its product is skipped.
//!
//! # Shapes
//! `x (B, T, I)`, `w_ih (I, H)`, `b_ih (H)`, `w_hh (H, H)` (row = source neuron), `b_hh (H)`,
//! mask `(H, H)` → `h (B, T, H)`, all hidden states, batch-first.

use std::sync::Arc;

use biokernels::TileMap;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::shape::check_rank;
use crate::tensor::Tensor;

/// The nonlinearity of [`Graph::elman_sequence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RnnActivation {
    /// `max(z, 0)` (derivative 0 at 0, as PyTorch).
    Relu,
    /// `tanh(z)`.
    Tanh,
}

impl RnnActivation {
    fn apply<T: Float>(self, z: T) -> T {
        match self {
            RnnActivation::Relu => {
                if z > T::ZERO {
                    z
                } else {
                    T::ZERO
                }
            }
            RnnActivation::Tanh => z.tanh(),
        }
    }

    /// The derivative from the output `h = act(z)`.
    fn derivative_from_output<T: Float>(self, h: T) -> T {
        match self {
            RnnActivation::Relu => {
                if h > T::ZERO {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
            RnnActivation::Tanh => T::ONE - h * h,
        }
    }
}

/// `W ⊙ M` for a `(h, h)` weight (the mask read 64 columns at a time).
fn masked_weights<T: Float>(w: &[T], mask: &TileMap, h: usize) -> Vec<T> {
    let mut out = w.to_vec();
    for (r, row) in out.chunks_exact_mut(h).enumerate() {
        for c0 in (0..h).step_by(64) {
            let len = (h - c0).min(64);
            let bits = mask.row_bits(r, c0, len);
            // A select by index, not a branch: the bio masks are scattered at density ~0.5,
            // where a branch per weight mispredicts about every second time (~3 % of an epoch).
            for (j, v) in row[c0..c0 + len].iter_mut().enumerate() {
                *v = [T::ZERO, *v][((bits >> j) & 1) as usize];
            }
        }
    }
    out
}

/// Runs `f` on a thread of the current rayon pool. The GEMMs are rayon-parallel; started from
/// a thread outside the pool, each of the ~3·T small per-step products would be handed to the
/// pool and the caller put to sleep and woken again (a futex round trip per product, ~15% of an
/// epoch at one thread). From inside the pool they start in place.
fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// The batch rows of each part: two halves when the pool has more than one thread and the
/// batch is large enough, else one part. Each part runs its whole recurrence independently
/// (batch rows never interact), and every sum over the batch is taken afterwards on the full
/// buffers, so the results do not depend on the split.
fn batch_parts(b: usize) -> Vec<std::ops::Range<usize>> {
    if rayon::current_num_threads() > 1 && b >= 32 {
        vec![0..b / 2, b / 2..b]
    } else {
        std::iter::once(0..b).collect()
    }
}

/// Rows `rows` of every step of a time-major `(T, B, H)` buffer, as a `(T, rows, H)` copy.
fn gather_rows<T: Float>(full: &[T], steps: usize, b: usize, h: usize, rows: &std::ops::Range<usize>) -> Vec<T> {
    let bk = rows.len();
    let mut out = Vec::with_capacity(steps * bk * h);
    for t in 0..steps {
        out.extend_from_slice(&full[(t * b + rows.start) * h..(t * b + rows.end) * h]);
    }
    debug_assert_eq!(out.len(), steps * bk * h);
    out
}

/// The inverse of [`gather_rows`].
fn scatter_rows<T: Float>(part: &[T], full: &mut [T], steps: usize, b: usize, h: usize, rows: &std::ops::Range<usize>) {
    let bk = rows.len();
    for t in 0..steps {
        full[(t * b + rows.start) * h..(t * b + rows.end) * h].copy_from_slice(&part[t * bk * h..(t + 1) * bk * h]);
    }
}

/// Runs `f` on every part (in parallel with two parts) and returns the results in order.
fn for_parts<R: Send>(
    parts: &[std::ops::Range<usize>],
    f: impl Fn(&std::ops::Range<usize>) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    match parts {
        [a, b] => {
            let (ra, rb) = rayon::join(|| f(a), || f(b));
            Ok(vec![ra?, rb?])
        }
        _ => parts.iter().map(f).collect(),
    }
}

/// The forward recurrence on a time-major `(T, bk, H)` buffer that holds the input
/// projections plus the bias: adds the recurrent product (`w_rec` = `W_hh ⊙ M`, packed once
/// per call) and applies the nonlinearity in place.
fn recur_forward<T: Float>(
    hs: &mut [T],
    steps: usize,
    bk: usize,
    w_rec: &T::PackedRhs,
    activation: RnnActivation,
) -> Result<()> {
    let bh = hs.len() / steps.max(1);
    for t in 0..steps {
        let (done, rest) = hs.split_at_mut(t * bh);
        let z = &mut rest[..bh];
        if t > 0 {
            T::mm_packed_into(&done[(t - 1) * bh..t * bh], w_rec, z, true, bk)?;
        }
        z.iter_mut().for_each(|v| *v = activation.apply(*v));
    }
    Ok(())
}

/// BPTT over the batch rows `rows`: `upstream` is the op's whole `(B, T, H)` output gradient,
/// `hs` the part's time-major `(T, bk, H)` states; returns the part's `dz_t` (block `t`).
#[allow(clippy::too_many_arguments)]
fn recur_backward<T: Float>(
    upstream: &[T],
    rows: &std::ops::Range<usize>,
    hs: &[T],
    steps: usize,
    h: usize,
    w_rec_t: &T::PackedRhs,
    activation: RnnActivation,
) -> Result<Vec<T>> {
    let bk = rows.len();
    let bh = bk * h;
    // Block t first receives δ_{t+1} (written by step t+1), then becomes dz_t.
    let mut dz = vec![T::ZERO; steps * bh];
    for t in (0..steps).rev() {
        let (before, rest) = dz.split_at_mut(t * bh);
        let dzt = &mut rest[..bh];
        for (k, s) in rows.clone().enumerate() {
            let g = &upstream[(s * steps + t) * h..(s * steps + t + 1) * h];
            let ht = &hs[t * bh + k * h..t * bh + (k + 1) * h];
            for ((d, &gv), &hv) in dzt[k * h..(k + 1) * h].iter_mut().zip(g).zip(ht) {
                *d = (*d + gv) * activation.derivative_from_output(hv);
            }
        }
        if t > 0 {
            T::mm_packed_into(dzt, w_rec_t, &mut before[(t - 1) * bh..], false, bk)?;
        }
    }
    Ok(dz)
}

/// `(a, b, c)` row-major → `(b, a, c)` row-major.
fn swap_leading<T: Float>(src: &[T], a: usize, b: usize, c: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; src.len()];
    for i in 0..a {
        for j in 0..b {
            out[(j * a + i) * c..(j * a + i + 1) * c].copy_from_slice(&src[(i * b + j) * c..(i * b + j + 1) * c]);
        }
    }
    out
}

impl<T: Float> Graph<T> {
    /// All hidden states of an Elman RNN over a whole sequence, as one op. See the
    /// [module docs](self) for the formulas, the BPTT and `# Shapes`.
    ///
    /// `mask` (`(H, H)`, e.g. `TileMap::from_bools(&topology, h, h, TileSize::CPU_DEFAULT)`)
    /// restricts the recurrent weights; `None` = fully connected.
    ///
    /// # Errors
    /// [`Error::Rank`] for an `x` that is not 3-D or weights that are not 2-D,
    /// [`Error::ShapeMismatch`] for sizes that do not fit together (the mask included),
    /// [`Error::ForeignVar`], [`Error::DeviceMismatch`].
    #[allow(clippy::too_many_arguments)]
    pub fn elman_sequence(
        &self,
        x: &Var,
        w_ih: &Var,
        b_ih: &Var,
        w_hh: &Var,
        b_hh: &Var,
        mask: Option<&Arc<TileMap>>,
        activation: RnnActivation,
    ) -> Result<Var> {
        const OP: &str = "elman_sequence";
        let (xt, wih) = self.get2_any(OP, x, w_ih)?;
        let (bih, whh) = self.get2_any(OP, b_ih, w_hh)?;
        let bhh = self.get_any(OP, b_hh)?;
        crate::graph::same_device(OP, &[&xt, &wih, &bih, &whh, &bhh])?;
        check_rank(OP, xt.shape(), 3)?;
        check_rank(OP, wih.shape(), 2)?;
        check_rank(OP, whh.shape(), 2)?;
        let (b, steps, i) = (xt.shape()[0], xt.shape()[1], xt.shape()[2]);
        let h = wih.shape()[1];
        let mismatch = |lhs: &[usize], rhs: &[usize]| Error::ShapeMismatch {
            op: OP,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
        };
        if wih.shape()[0] != i {
            return Err(mismatch(xt.shape(), wih.shape()));
        }
        if whh.shape() != [h, h] {
            return Err(mismatch(wih.shape(), whh.shape()));
        }
        for bias in [&bih, &bhh] {
            if bias.shape() != [h] {
                return Err(mismatch(wih.shape(), bias.shape()));
            }
        }
        if let Some(m) = mask {
            if m.shape() != [h, h] {
                return Err(mismatch(whh.shape(), &m.shape()));
            }
        }
        if xt.is_cuda() {
            return self.gpu_elman(
                OP,
                [*x, *w_ih, *b_ih, *w_hh, *b_hh],
                [xt, wih, bih, whh, bhh],
                mask,
                activation,
                (b, steps, i, h),
            );
        }
        let bh = b * h;
        // Recurrent weights with the mask applied once: every recurrent product is dense, on
        // `W_hh ⊙ M` packed once per call (not once per step) into the GEMM's panels.
        let w_rec: Vec<T> = match mask {
            Some(m) => masked_weights(whh.as_slice()?, m, h),
            None => whh.as_slice()?.to_vec(),
        };
        let w_rec_packed = T::pack_rhs(&w_rec, None, h, h, false)?;
        // Time-major input and hidden states: step t is the contiguous block t·B·H.
        let x_tm = swap_leading(xt.as_slice()?, b, steps, i);
        let bias: Vec<T> = bih
            .as_slice()?
            .iter()
            .zip(bhh.as_slice()?)
            .map(|(&p, &q)| p + q)
            .collect();
        // The bias is the starting value of every row, and the input projection is
        // accumulated onto it (no separate bias pass): `bias + x·W_ih` is the same sum as the
        // former `x·W_ih + bias` (one reduction chunk when I ≤ `biokernels::gemm::KC`).
        // Row copies, not an element-wise `cycle().take()` (which cost ~5 % of an epoch).
        let mut hs: Vec<T> = Vec::with_capacity(steps * bh);
        for _ in 0..steps * b {
            hs.extend_from_slice(&bias);
        }
        let wih_s = wih.as_slice()?;
        on_pool(|| -> Result<()> {
            T::mm_into(&x_tm, wih_s, None, &mut hs, true, steps * b, i, h)?;
            let parts = batch_parts(b);
            if parts.len() == 1 {
                return recur_forward(&mut hs, steps, b, &w_rec_packed, activation);
            }
            let done = for_parts(&parts, |rows| {
                let mut part = gather_rows(&hs, steps, b, h, rows);
                recur_forward(&mut part, steps, rows.len(), &w_rec_packed, activation)?;
                Ok(part)
            })?;
            for (rows, part) in parts.iter().zip(&done) {
                scatter_rows(part, &mut hs, steps, b, h, rows);
            }
            Ok(())
        })?;
        let y = swap_leading(&hs, steps, b, h);
        let wih_keep = wih.clone();
        let mask = mask.cloned();
        Ok(self.push(
            Tensor::from_parts(y, vec![b, steps, h]),
            &[*x, *w_ih, *b_ih, *w_hh, *b_hh],
            move |g, needs| {
                on_pool(|| {
                    // `(W_hh ⊙ M)ᵀ`, packed once for the T − 1 products δ_t = dz_t·(W_hh ⊙ M)ᵀ.
                    let w_rec_t = T::pack_rhs(&w_rec, None, h, h, true)?;
                    // dz, time-major (T, B, H), by BPTT per part.
                    let parts = batch_parts(b);
                    let dz = if parts.len() == 1 {
                        recur_backward(g, &(0..b), &hs, steps, h, &w_rec_t, activation)?
                    } else {
                        let done = for_parts(&parts, |rows| {
                            let hs_part = gather_rows(&hs, steps, b, h, rows);
                            recur_backward(g, rows, &hs_part, steps, h, &w_rec_t, activation)
                        })?;
                        let mut dz = vec![T::ZERO; steps * b * h];
                        for (rows, part) in parts.iter().zip(&done) {
                            scatter_rows(part, &mut dz, steps, b, h, rows);
                        }
                        dz
                    };
                    let dx = if needs[0] {
                        let mut dx_tm = vec![T::ZERO; steps * b * i];
                        T::mm_da_into(&dz, wih_keep.as_slice()?, None, &mut dx_tm, steps * b, i, h)?;
                        Some(swap_leading(&dx_tm, steps, b, i))
                    } else {
                        None
                    };
                    let dwih = if needs[1] {
                        let mut d = vec![T::ZERO; i * h];
                        if i < h {
                            // Few inputs: dW_ihᵀ = dzᵀ·x, a thin product that reads dz in place,
                            // instead of packing all of dz for the few rows of x_tmᵀ·dz. The
                            // same products summed in the same order: the same values.
                            let mut dt = vec![T::ZERO; h * i];
                            T::mm_db_into(&dz, &x_tm, None, &mut dt, steps * b, h, i)?;
                            for (j, row) in dt.chunks_exact(i).enumerate() {
                                for (q, &v) in row.iter().enumerate() {
                                    d[q * h + j] = v;
                                }
                            }
                        } else {
                            T::mm_db_into(&x_tm, &dz, None, &mut d, steps * b, i, h)?;
                        }
                        Some(d)
                    } else {
                        None
                    };
                    let dbias = if needs[2] || needs[4] {
                        let mut d = vec![T::ZERO; h];
                        for row in dz.chunks_exact(h) {
                            d.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
                        }
                        Some(d)
                    } else {
                        None
                    };
                    let dwhh = if needs[3] {
                        let mut d = vec![T::ZERO; h * h];
                        if steps > 1 {
                            let m = (steps - 1) * b;
                            T::mm_db_into(&hs[..m * h], &dz[bh..], mask.as_deref(), &mut d, m, h, h)?;
                        }
                        Some(d)
                    } else {
                        None
                    };
                    let dbih = if needs[2] { dbias.clone() } else { None };
                    let dbhh = if needs[4] { dbias } else { None };
                    Ok(vec![dx, dwih, dbih, dwhh, dbhh])
                })
            },
        ))
    }
}
