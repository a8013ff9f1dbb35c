//! CPU backend of the (masked) GEMM: planning, packing and the parallel tile loop.
//!
//! `C (m×n) = [C +] A (m×k) · B (k×n)`, BLIS style:
//!
//! 1. **Plan.** For every `NR`-wide column panel of B, the kept reduction indices: the union of
//!    the non-empty mask tiles that the panel overlaps, merged into runs, then clipped to the
//!    `KC`-long reduction chunks. Without a mask a panel keeps `0..k`.
//! 2. **Pack** (in parallel). A into `MR`-row micro-panels (`k × MR`, zero padded), B into
//!    `NR`-column micro-panels holding only the kept rows, with `W ⊙ M` applied (entries of
//!    partial tiles by their bit pattern). B is 64-byte aligned.
//! 3. **Compute** (in parallel over output blocks of `MC` rows × a group of panels). For each
//!    chunk, each panel, each `MR` row block: one micro-kernel call over the chunk's runs. The B
//!    micro-panel (`KC × NR`) stays in L1 across the row blocks, the A block (`MC × KC`) in L2.
//!
//! For the weight gradient the mask sits on C instead (`c_mask`): micro-tiles that lie in empty
//! tiles are never computed (and written as 0 unless accumulating), micro-tiles that touch
//! partial or empty tiles are computed into a scratch block and merged through their bits.
//!
//! **Determinism.** Every C entry is computed by one micro-kernel call per chunk, with one
//! accumulator summing `k` in increasing order, and chunks are added to C in order. `KC`, the
//! runs and the edge handling do not depend on the number of threads, so neither does the
//! result.

use std::cell::RefCell;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::microkernel::{Avx2Fma, Avx512};
use super::microkernel::{MicroKernel, Portable, Run};
use super::Isa;
use crate::tile_map::{low_ones, TileKind, TileMap};

/// Reduction chunk length. Fixed (not tuned per shape or thread count) so that results do not
/// depend on either.
pub(crate) const KC: usize = 256;
/// Rows of C per task (rounded down to a multiple of `MR`).
const MC: usize = 256;
/// Columns of C per task at most.
const MAX_TASK_COLS: usize = 512;
/// Largest `MR × NR` of any kernel (scratch block size).
const MAX_TILE: usize = 8 * 32;
/// Scratch buffers larger than this (in `f32`) are not kept between calls.
const KEEP_SCRATCH: usize = 1 << 25;

/// Where A comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ASrc<'a> {
    /// A is `(m × k)` row-major.
    RowMajor(&'a [f32]),
    /// A = Sᵀ with S `(k × m)` row-major.
    Transposed(&'a [f32]),
    /// A already packed by the caller in the kernel's layout: row block `rb` (`MR` rows) at
    /// `rb · k · MR`, `MR` values per `k`, zero padded past `m` (see [`packed_a_len`]).
    Packed(&'a [f32]),
}

/// Length of A packed for kernel `isa` (`ASrc::Packed`): `ceil(m / MR) · k · MR`.
pub(crate) fn packed_a_len(isa: Isa, m: usize, k: usize) -> usize {
    let mr = isa.micro_tile().0;
    m.div_ceil(mr) * k * mr
}

/// Where B comes from, and how a mask on B is oriented.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BSrc<'a> {
    /// B is `(k × n)` row-major; a mask on B has rows = k, cols = n.
    RowMajor(&'a [f32]),
    /// B = Sᵀ with S `(n × k)` row-major; a mask on B is a mask on S (rows = n, cols = k).
    Transposed(&'a [f32]),
}

/// One GEMM call, shapes already validated by the caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Problem<'a> {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a: ASrc<'a>,
    pub b: BSrc<'a>,
    /// Mask on B (forward, dX): kernels skip the reduction indices it removes.
    pub b_mask: Option<&'a TileMap>,
    /// Mask on C (dW, `m × n`): only its support is computed.
    pub c_mask: Option<&'a TileMap>,
    /// `C += A·B` instead of `C = A·B`.
    pub accumulate: bool,
}

/// Runs the problem with the given instruction set (which the caller checked is available).
pub(crate) fn gemm(isa: Isa, p: &Problem<'_>, c: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => run::<Avx512>(p, c),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => run::<Avx2Fma>(p, c),
        _ => run::<Portable>(p, c),
    }
}

#[derive(Debug, Clone, Copy)]
struct ChunkRuns {
    start: usize,
    end: usize,
    b_off: usize,
}

/// Kept reduction runs per panel and per (panel, chunk).
struct Plan {
    /// Merged runs of each panel (absolute k), concatenated; panel `p` owns
    /// `merged[merged_start[p]..merged_start[p + 1]]`.
    merged: Vec<Run>,
    merged_start: Vec<usize>,
    /// Offset of each panel in packed B (in `f32`), plus the total at the end.
    panel_off: Vec<usize>,
    /// `(panel, chunk)` → its clipped runs in `runs` and the packed-B offset of the first.
    chunks: Vec<ChunkRuns>,
    runs: Vec<Run>,
    nchunks: usize,
}

/// Appends `k0..k1` to the runs of the current panel (`out[first..]`), merging it into the
/// panel's last run when they touch (never into the previous panel's runs).
fn push_merged(out: &mut Vec<Run>, first: usize, k0: usize, k1: usize) {
    if out.len() > first {
        if let Some(last) = out.last_mut() {
            if last.k0 + last.len == k0 {
                last.len += k1 - k0;
                return;
            }
        }
    }
    out.push(Run { k0, len: k1 - k0 });
}

impl Plan {
    fn new(p: &Problem<'_>, nr: usize) -> Plan {
        let (k, n) = (p.k, p.n);
        let np = n.div_ceil(nr);
        let nchunks = k.div_ceil(KC);
        let mut merged = Vec::new();
        let mut merged_start = Vec::with_capacity(np + 1);
        let mut panel_off = Vec::with_capacity(np + 1);
        let mut chunks = Vec::with_capacity(np * nchunks);
        let mut runs = Vec::new();
        let mut off = 0usize;
        for panel in 0..np {
            let c0 = panel * nr;
            let c1 = (c0 + nr).min(n);
            let start = merged.len();
            merged_start.push(start);
            panel_off.push(off);
            match p.b_mask {
                None => merged.push(Run { k0: 0, len: k }),
                Some(tm) => {
                    let ts = tm.tile_size();
                    let (_, gc) = tm.grid();
                    let kinds = tm.kinds();
                    match p.b {
                        BSrc::RowMajor(_) => {
                            // Tile rows run along k, tile columns along n.
                            let (tc0, tc1) = (c0 / ts.cols, (c1 - 1) / ts.cols);
                            for tr in 0..k.div_ceil(ts.rows) {
                                if (tc0..=tc1).any(|tc| kinds[tr * gc + tc] != TileKind::Empty) {
                                    push_merged(&mut merged, start, tr * ts.rows, ((tr + 1) * ts.rows).min(k));
                                }
                            }
                        }
                        BSrc::Transposed(_) => {
                            // Tile rows run along n, tile columns along k.
                            let (tr0, tr1) = (c0 / ts.rows, (c1 - 1) / ts.rows);
                            for tc in 0..gc {
                                if (tr0..=tr1).any(|tr| kinds[tr * gc + tc] != TileKind::Empty) {
                                    push_merged(&mut merged, start, tc * ts.cols, ((tc + 1) * ts.cols).min(k));
                                }
                            }
                        }
                    }
                }
            }
            // Clip the panel's runs to the chunks.
            let panel_runs = &merged[start..];
            let mut run_off = Vec::with_capacity(panel_runs.len());
            let mut o = off;
            for r in panel_runs {
                run_off.push(o);
                o += r.len * nr;
            }
            for ch in 0..nchunks {
                let (cs, ce) = (ch * KC, ((ch + 1) * KC).min(k));
                let first = runs.len();
                let mut b_off = 0;
                for (r, &ro) in panel_runs.iter().zip(&run_off) {
                    let (s, e) = (r.k0.max(cs), (r.k0 + r.len).min(ce));
                    if s < e {
                        if runs.len() == first {
                            b_off = ro + (s - r.k0) * nr;
                        }
                        runs.push(Run { k0: s, len: e - s });
                    }
                }
                chunks.push(ChunkRuns {
                    start: first,
                    end: runs.len(),
                    b_off,
                });
            }
            off = o;
        }
        merged_start.push(merged.len());
        panel_off.push(off);
        Plan {
            merged,
            merged_start,
            panel_off,
            chunks,
            runs,
            nchunks,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scratch buffers (64-byte aligned, kept per calling thread).

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

#[derive(Default)]
struct AlignedBuf(Vec<Line>);

impl AlignedBuf {
    fn slice(&mut self, len: usize) -> &mut [f32] {
        let lines = len.div_ceil(16);
        if self.0.len() < lines {
            if self.0.capacity() < lines {
                // Scratch: the old values are not needed. A fresh allocation is advised to use
                // huge pages before its first touch (see `advise_huge_pages`).
                let fresh: Vec<Line> = Vec::with_capacity(lines);
                advise_huge_pages(fresh.as_ptr().cast(), lines * std::mem::size_of::<Line>());
                self.0 = fresh;
            }
            self.0.resize(lines, Line([0.0; 16]));
        }
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]`, so `lines` lines hold `16 * lines >= len`
        // initialised `f32`s at the same (64-byte aligned) address.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<f32>(), len) }
    }
    /// The first `len` values, read only (`len` no more than what [`AlignedBuf::slice`] made).
    fn view(&self, len: usize) -> &[f32] {
        debug_assert!(len <= self.0.len() * 16);
        // SAFETY: as in `slice`: `Line` is `repr(C)` around `[f32; 16]`, and the buffer holds
        // at least `len` initialised values (`PackedB` keeps the length it packed).
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<f32>(), len.min(self.0.len() * 16)) }
    }
    fn trim(&mut self) {
        if self.0.len() * 16 > KEEP_SCRATCH {
            self.0 = Vec::new();
        }
    }
}

/// Buffers at least this large are advised to use transparent huge pages.
const HUGE_PAGE_MIN: usize = 4 << 20;

/// Asks Linux to back `len` bytes at `ptr` with transparent huge pages (on machines where THP
/// is `madvise`, the common default, plain allocations get 4 KiB pages). The packed operands
/// of a large product span more memory than the TLB covers with small pages; huge pages made
/// 2048³ and 256×2304×512 2-5 % faster in alternated runs on an AMD EPYC (Zen 5). Only a
/// hint: failure (or another OS) changes nothing.
fn advise_huge_pages(ptr: *const u8, len: usize) {
    #[cfg(target_os = "linux")]
    if len >= HUGE_PAGE_MIN {
        const PAGE: usize = 4096;
        let start = (ptr as usize).next_multiple_of(PAGE);
        let end = (ptr as usize + len) / PAGE * PAGE;
        if end > start {
            // SAFETY: the page-aligned range lies inside an allocation this buffer owns, and
            // MADV_HUGEPAGE only changes how the kernel backs it, never its contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

thread_local! {
    static SCRATCH: RefCell<(AlignedBuf, AlignedBuf)> = RefCell::new(Default::default());
}

/// Calls `f` with packed-A and packed-B buffers of the given lengths, reusing this thread's
/// buffers unless they are in use (a GEMM started from inside a GEMM's rayon task).
fn with_scratch<R>(na: usize, nb: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let (a, b) = &mut *bufs;
            let r = f(a.slice(na), b.slice(nb));
            a.trim();
            b.trim();
            r
        }
        Err(_) => {
            let (mut a, mut b) = (AlignedBuf::default(), AlignedBuf::default());
            f(a.slice(na), b.slice(nb))
        }
    })
}

/// A raw pointer to C that tasks share; each task writes a disjoint block.
#[derive(Clone, Copy)]
struct CPtr(*mut f32);
// SAFETY: tasks write disjoint rectangles of C (see `compute`), so sharing the pointer between
// threads cannot race.
unsafe impl Send for CPtr {}
// SAFETY: as above.
unsafe impl Sync for CPtr {}

// ---------------------------------------------------------------------------------------------

fn run<K: MicroKernel>(p: &Problem<'_>, c: &mut [f32]) {
    let (m, k, n) = (p.m, p.k, p.n);
    debug_assert_eq!(c.len(), m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !p.accumulate {
            c.fill(0.0);
        }
        return;
    }
    let plan = Plan::new(p, K::NR);
    let mr = K::MR;
    let mb = m.div_ceil(mr);
    let nb = plan.panel_off[plan.panel_off.len() - 1];
    match p.a {
        ASrc::Packed(abuf) => with_scratch(0, nb, |_, bbuf| {
            pack_b::<K>(p, &plan, bbuf);
            compute::<K>(p, &plan, APanels::Packed(abuf), bbuf, c);
        }),
        ASrc::Transposed(src) | ASrc::RowMajor(src) if n <= DIRECT_A_MAX_N * K::NR => {
            // A is used by at most DIRECT_A_MAX_N column panels (a thin product: an im2col
            // convolution with 32 output channels, a weight gradient): the kernel reads it in
            // place, MR contiguous values per k from S (stride m) for A = Sᵀ, or one value
            // per row from row-major A (`run_rows`, row stride k). Only a partial last row
            // block is packed (zero padded).
            let in_rows = matches!(p.a, ASrc::RowMajor(_));
            let full = m / mr;
            let tail = m - full * mr;
            let na = if tail > 0 { k * mr } else { 0 };
            with_scratch(na, nb, |abuf, bbuf| {
                if tail > 0 {
                    for (kk, d) in abuf.chunks_exact_mut(mr).enumerate() {
                        for (ii, v) in d.iter_mut().enumerate() {
                            let r = full * mr + ii;
                            *v = match (ii < tail, in_rows) {
                                (false, _) => 0.0,
                                (true, true) => src[r * k + kk],
                                (true, false) => src[kk * m + r],
                            };
                        }
                    }
                }
                pack_b::<K>(p, &plan, bbuf);
                let a = APanels::Direct {
                    src,
                    full,
                    tail: abuf,
                    in_rows,
                };
                compute::<K>(p, &plan, a, bbuf, c);
            });
        }
        _ => {
            let na = mb * k * mr;
            with_scratch(na, nb, |abuf, bbuf| {
                pack_a::<K>(p, abuf);
                pack_b::<K>(p, &plan, bbuf);
                compute::<K>(p, &plan, APanels::Packed(abuf), bbuf, c);
            });
        }
    }
}

/// B packed once in the layout of one micro-kernel (`isa`), for many products with different
/// A ([`gemm_prepacked`]): the plan of kept reduction runs and the packed panels, exactly what
/// [`gemm`] builds at every call.
pub(crate) struct PrepackedB {
    isa: Isa,
    plan: Plan,
    buf: AlignedBuf,
    len: usize,
}

impl PrepackedB {
    /// The micro-kernel the panels were packed for.
    pub(crate) fn isa(&self) -> Isa {
        self.isa
    }
}

/// Packs the B of `p` (with its `b_mask`) for `isa`, which the caller checked is available.
pub(crate) fn prepack_b(isa: Isa, p: &Problem<'_>) -> PrepackedB {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => prepack::<Avx512>(isa, p),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => prepack::<Avx2Fma>(isa, p),
        _ => prepack::<Portable>(isa, p),
    }
}

fn prepack<K: MicroKernel>(isa: Isa, p: &Problem<'_>) -> PrepackedB {
    let plan = Plan::new(p, K::NR);
    let len = plan.panel_off[plan.panel_off.len() - 1];
    let mut buf = AlignedBuf::default();
    pack_b::<K>(p, &plan, buf.slice(len));
    PrepackedB { isa, plan, buf, len }
}

/// `C (+)= A·B` with B from [`prepack_b`] (same `k`, `n`; `p.b` and `p.b_mask` are not read):
/// the same kernels on the same packed values in the same order as [`gemm`], so the same bits.
pub(crate) fn gemm_prepacked(p: &Problem<'_>, b: &PrepackedB, c: &mut [f32]) {
    match b.isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => run_prepacked::<Avx512>(p, b, c),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => run_prepacked::<Avx2Fma>(p, b, c),
        _ => run_prepacked::<Portable>(p, b, c),
    }
}

fn run_prepacked<K: MicroKernel>(p: &Problem<'_>, b: &PrepackedB, c: &mut [f32]) {
    let (m, k, n) = (p.m, p.k, p.n);
    debug_assert_eq!(c.len(), m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !p.accumulate {
            c.fill(0.0);
        }
        return;
    }
    let bbuf = b.buf.view(b.len);
    match p.a {
        ASrc::Packed(abuf) => compute::<K>(p, &b.plan, APanels::Packed(abuf), bbuf, c),
        _ => {
            let na = m.div_ceil(K::MR) * k * K::MR;
            with_scratch(na, 0, |abuf, _| {
                pack_a::<K>(p, abuf);
                compute::<K>(p, &b.plan, APanels::Packed(abuf), bbuf, c);
            });
        }
    }
}

/// A transposed A is read in place (not packed) when C has at most this many `NR`-wide
/// column panels: each A value is then used at most this many times, and packing it (a full
/// copy of, e.g., a convolution's unrolled input in its weight gradient) costs as much as the
/// arithmetic. The results are bit-identical (same values, same order of the sums).
const DIRECT_A_MAX_N: usize = 2;

/// Where the micro-kernels read A.
#[derive(Clone, Copy)]
enum APanels<'a> {
    /// All row blocks packed: block `rb` at `rb · k · MR`, stride `MR`.
    Packed(&'a [f32]),
    /// A read in place: the `full` complete row blocks from `src`, the partial last one
    /// packed in `tail` (stride `MR`). `src` is S `(k × m)` for A = Sᵀ (MR contiguous values
    /// per k, stride `m`), or row-major A when `in_rows` (the kernel's `run_rows`, row stride
    /// `k`).
    Direct {
        src: &'a [f32],
        full: usize,
        tail: &'a [f32],
        in_rows: bool,
    },
}

impl APanels<'_> {
    /// `(pointer, lda, rows)` of row block `rb`; `rows` says the block is read from row-major
    /// rows in place (the kernel's `run_rows`) instead of `MR` values per `k`.
    #[inline]
    fn panel(&self, rb: usize, m: usize, k: usize, mr: usize) -> (*const f32, usize, bool) {
        match *self {
            APanels::Packed(buf) => (buf[rb * k * mr..].as_ptr(), mr, false),
            APanels::Direct {
                src,
                full,
                tail,
                in_rows,
            } => match (rb < full, in_rows) {
                (false, _) => (tail.as_ptr(), mr, false),
                (true, false) => (src[rb * mr..].as_ptr(), m, false),
                (true, true) => (src[rb * mr * k..].as_ptr(), k, true),
            },
        }
    }
}

/// Packs A into `MR`-row micro-panels: `buf[rb][kk][ii] = A[rb·MR + ii][kk]` (0 past `m`).
///
/// Row-major A is transposed in blocks of [`PACK_KB`] reduction indices: each of the `MR`
/// rows is read contiguously and written into an L1-resident block, instead of gathering one
/// value per row for every `kk` (a strided scalar gather was ~12 % of the CNN's training
/// time). Transposed A: see [`pack_a_transposed`]. Pure data movement: the packed values are
/// bit-identical to a plain element-by-element copy.
fn pack_a<K: MicroKernel>(p: &Problem<'_>, buf: &mut [f32]) {
    let (m, k, mr) = (p.m, p.k, K::MR);
    let src = match p.a {
        ASrc::Transposed(src) => return pack_a_transposed::<K>(m, k, src, buf),
        ASrc::RowMajor(src) => src,
        // Already packed: `run` never calls this for it.
        ASrc::Packed(_) => return,
    };
    let transpose8 = mr == 8 && crate::transpose::available();
    let pack = |(rb, dst): (usize, &mut [f32])| {
        let r0 = rb * mr;
        let rows = mr.min(m - r0);
        let mut k0 = 0;
        while k0 < k {
            let kb = PACK_KB.min(k - k0);
            let block = &mut dst[k0 * mr..(k0 + kb) * mr];
            // Eight full rows: 8 × 8 blocks transposed in registers (24 shuffles and 8 stores
            // per 64 values instead of 64 scalar stores); the last `kb mod 8` columns below.
            let done = if transpose8 && rows == 8 { kb - kb % 8 } else { 0 };
            if done > 0 {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX was detected; rows r0..r0+8 of A hold columns k0..k0+done
                // (`done <= kb <= k - k0`), and `block` holds `kb · 8 >= done · 8` values
                // (column c at 8 · c).
                unsafe {
                    crate::transpose::transpose8_avx(src[r0 * k + k0..].as_ptr(), k, block.as_mut_ptr(), 8, done / 8);
                }
            }
            for ii in 0..rows {
                let s = &src[(r0 + ii) * k + k0..][..kb];
                for (t, &v) in s.iter().enumerate().skip(done) {
                    block[t * mr + ii] = v;
                }
            }
            if rows < mr {
                for d in block.chunks_exact_mut(mr) {
                    d[rows..].fill(0.0);
                }
            }
            k0 += kb;
        }
    };
    if m * k >= 1 << 15 {
        buf.par_chunks_mut(k * mr).enumerate().for_each(pack);
    } else {
        buf.chunks_mut(k * mr).enumerate().for_each(pack);
    }
}

/// Packs A = Sᵀ, S `(k × m)` row-major, into `MR`-row micro-panels. Each task owns a group of
/// consecutive micro-panels and walks S row by row, so every row of S is read as one
/// contiguous stripe (`group · MR` values) and S is streamed once in all, instead of once per
/// micro-panel with `MR` values read per row (the weight gradient of a convolution has
/// `k` = tens of thousands of pixels and S tens of MiB).
fn pack_a_transposed<K: MicroKernel>(m: usize, k: usize, src: &[f32], buf: &mut [f32]) {
    let mr = K::MR;
    let mb = m.div_ceil(mr);
    let big = m * k >= 1 << 15;
    let tasks = if big { 2 * rayon::current_num_threads() } else { 1 };
    let group = mb.div_ceil(tasks).max(1);
    let pack_group = |(gi, dst): (usize, &mut [f32])| {
        let rb0 = gi * group;
        let nrb = dst.len() / (k * mr);
        for kk in 0..k {
            let row = &src[kk * m..(kk + 1) * m];
            for q in 0..nrb {
                let r0 = (rb0 + q) * mr;
                let rows = mr.min(m - r0);
                let d = &mut dst[(q * k + kk) * mr..][..mr];
                if rows == mr {
                    // `mr` is a constant here: an unrolled vector copy (a `copy_from_slice`
                    // compiled to a `memmove` call per 32 bytes).
                    for (dv, &sv) in d.iter_mut().zip(&row[r0..r0 + mr]) {
                        *dv = sv;
                    }
                } else {
                    d[..rows].copy_from_slice(&row[r0..r0 + rows]);
                    d[rows..].fill(0.0);
                }
            }
        }
    };
    if big {
        buf.par_chunks_mut(group * k * mr).enumerate().for_each(pack_group);
    } else {
        buf.chunks_mut(group * k * mr).enumerate().for_each(pack_group);
    }
}

/// Reduction indices per block when packing row-major A (`PACK_KB × MR` floats stay in L1).
const PACK_KB: usize = 64;

/// `LANE_MASKS[b][j]` is all ones when bit `j` of `b` is set: turns 8 mask bits into lane
/// masks that LLVM can apply with vector ANDs.
static LANE_MASKS: [[u32; 8]; 256] = lane_masks();

const fn lane_masks() -> [[u32; 8]; 256] {
    let mut t = [[0u32; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let mut j = 0;
        while j < 8 {
            if (b >> j) & 1 == 1 {
                t[b][j] = u32::MAX;
            }
            j += 1;
        }
        b += 1;
    }
    t
}

/// The lane masks of bits `8g .. 8g + 8`.
#[inline]
fn lanes(bits: u64, g: usize) -> &'static [u32; 8] {
    &LANE_MASKS[((bits >> (8 * g)) & 0xff) as usize]
}

/// `dst[j] = bit j of bits ? src[j] : +0.0` (at most 64 entries).
#[inline]
fn masked_copy(dst: &mut [f32], src: &[f32], bits: u64) {
    if bits == low_ones(src.len()) {
        dst.copy_from_slice(src);
        return;
    }
    for (g, (d8, s8)) in dst.chunks_mut(8).zip(src.chunks(8)).enumerate() {
        for ((d, s), m) in d8.iter_mut().zip(s8).zip(lanes(bits, g)) {
            *d = f32::from_bits(s.to_bits() & m);
        }
    }
}

/// Merges a computed block row into C under a row mask: kept entries become
/// `(load_c ? c : 0) + t`; the others stay (`load_c`) or become +0.0.
#[inline]
fn masked_merge(c: &mut [f32], t: &[f32], bits: u64, load_c: bool) {
    for (g, (c8, t8)) in c.chunks_mut(8).zip(t.chunks(8)).enumerate() {
        let m8 = lanes(bits, g);
        if load_c {
            for ((cv, &tv), &m) in c8.iter_mut().zip(t8).zip(m8) {
                let sum = (*cv + tv).to_bits();
                *cv = f32::from_bits((sum & m) | (cv.to_bits() & !m));
            }
        } else {
            for ((cv, &tv), &m) in c8.iter_mut().zip(t8).zip(m8) {
                *cv = f32::from_bits(tv.to_bits() & m);
            }
        }
    }
}

/// Packs the kept rows of each B panel: `NR` values per kept k, runs back to back.
fn pack_b<K: MicroKernel>(p: &Problem<'_>, plan: &Plan, buf: &mut [f32]) {
    let (k, n, nr) = (p.k, p.n, K::NR);
    let np = n.div_ceil(nr);
    let mut slices: Vec<&mut [f32]> = Vec::with_capacity(np);
    let mut rest = buf;
    for panel in 0..np {
        let (head, tail) = rest.split_at_mut(plan.panel_off[panel + 1] - plan.panel_off[panel]);
        slices.push(head);
        rest = tail;
    }
    let big = plan.panel_off[np] >= 1 << 15;
    match p.b {
        BSrc::RowMajor(src) => {
            // Walk B row by row over a group of panels so that reads stream: a panel-by-panel
            // walk reads NR values per row at a stride of n and waits on memory.
            let g = (np / (2 * rayon::current_num_threads())).clamp(1, 8);
            let pack_group = |(gi, group): (usize, &mut [&mut [f32]])| {
                let c0 = gi * g * nr;
                pack_b_group::<K>(
                    RowPanels {
                        src,
                        k,
                        n,
                        c0,
                        mask: p.b_mask,
                    },
                    group,
                )
            };
            if big {
                slices.par_chunks_mut(g).enumerate().for_each(pack_group);
            } else {
                slices.chunks_mut(g).enumerate().for_each(pack_group);
            }
        }
        BSrc::Transposed(src) => {
            // B[kk][jj] = S[c0 + jj][kk], S is (n × k): rows of S are read contiguously.
            let pack = |(panel, dst): (usize, &mut [f32])| {
                let c0 = panel * nr;
                let cols = nr.min(n - c0);
                let runs = &plan.merged[plan.merged_start[panel]..plan.merged_start[panel + 1]];
                let mut o = 0usize;
                for r in runs {
                    let d = &mut dst[o..o + r.len * nr];
                    for jj in 0..cols {
                        let srow = &src[(c0 + jj) * k..(c0 + jj + 1) * k];
                        let mut kb = r.k0;
                        while kb < r.k0 + r.len {
                            let blen = 64.min(r.k0 + r.len - kb);
                            let bits = match p.b_mask {
                                Some(tm) => tm.row_bits(c0 + jj, kb, blen),
                                None => low_ones(blen),
                            };
                            for t in 0..blen {
                                let keep = 0u32.wrapping_sub(((bits >> t) & 1) as u32);
                                d[(kb - r.k0 + t) * nr + jj] = f32::from_bits(srow[kb + t].to_bits() & keep);
                            }
                            kb += blen;
                        }
                    }
                    if cols < nr {
                        for row in d.chunks_mut(nr) {
                            row[cols..].fill(0.0);
                        }
                    }
                    o += r.len * nr;
                }
            };
            if big {
                slices.into_par_iter().enumerate().for_each(pack);
            } else {
                slices.into_iter().enumerate().for_each(pack);
            }
        }
    }
}

/// A group of row-major B panels to pack: B `(k × n)`, the group's first column `c0`, the mask.
#[derive(Clone, Copy)]
struct RowPanels<'a> {
    src: &'a [f32],
    k: usize,
    n: usize,
    c0: usize,
    mask: Option<&'a TileMap>,
}

/// Packs a group of row-major B panels (one destination per panel), with or without a mask,
/// walking B row by row across the group so that its reads stream. With AVX-512 the copies
/// move whole lines (one 64-byte load and store instead of four 16-byte ones).
fn pack_b_group<K: MicroKernel>(b: RowPanels<'_>, group: &mut [&mut [f32]]) {
    #[inline(always)]
    fn walk<K: MicroKernel>(b: RowPanels<'_>, group: &mut [&mut [f32]]) {
        match b.mask {
            None => pack_dense_rows::<K>(b, group),
            Some(tm) => pack_masked_rows::<K>(b, tm, group),
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn walk_avx512<K: MicroKernel>(b: RowPanels<'_>, group: &mut [&mut [f32]]) {
            walk::<K>(b, group)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected; the body is safe code.
            return unsafe { walk_avx512::<K>(b, group) };
        }
    }
    walk::<K>(b, group)
}

/// Dense panels (every panel keeps `0..k`, row `kk` at `kk · NR`). The general walk this
/// replaced (per-row cursors over the kept runs) took twice as long.
#[inline(always)]
fn pack_dense_rows<K: MicroKernel>(b: RowPanels<'_>, group: &mut [&mut [f32]]) {
    let (src, k, n, c0, nr) = (b.src, b.k, b.n, b.c0, K::NR);
    for kk in 0..k {
        let row = &src[kk * n..(kk + 1) * n];
        for (q, dst) in group.iter_mut().enumerate() {
            let c = c0 + q * nr;
            let d = &mut dst[kk * nr..(kk + 1) * nr];
            if c + nr <= n {
                d.copy_from_slice(&row[c..c + nr]);
            } else {
                d[..n - c].copy_from_slice(&row[c..]);
                d[n - c..].fill(0.0);
            }
        }
    }
}

/// Masked panels (mask rows along k, columns along n) in the layout of [`Plan`]: a panel
/// keeps the mask's tile rows in which any of its tiles is non-empty, back to back. The kind
/// of each panel's tiles is looked up once per tile row: rows under only full tiles are plain
/// copies, the others go through their mask bits. (A per-row cursor over the kept runs and a
/// `row_bits` call for every kept row cost a fifth of a masked product's time.)
#[inline(always)]
fn pack_masked_rows<K: MicroKernel>(b: RowPanels<'_>, tm: &TileMap, group: &mut [&mut [f32]]) {
    let (src, k, n, c0) = (b.src, b.k, b.n, b.c0);
    const SKIP: u8 = 0;
    const COPY: u8 = 1;
    const BITS: u8 = 2;
    let nr = K::NR;
    let ts = tm.tile_size();
    let (_, gc) = tm.grid();
    let kinds = tm.kinds();
    let mut off = vec![0usize; group.len()];
    let mut how = vec![SKIP; group.len()];
    for tr in 0..k.div_ceil(ts.rows) {
        for (q, h) in how.iter_mut().enumerate() {
            let c = c0 + q * nr;
            let cols = nr.min(n - c);
            let tiles = &kinds[tr * gc + c / ts.cols..=tr * gc + (c + cols - 1) / ts.cols];
            *h = if tiles.iter().all(|&t| t == TileKind::Empty) {
                SKIP
            } else if cols == nr && tiles.iter().all(|&t| t == TileKind::Full) {
                COPY
            } else {
                BITS
            };
        }
        for kk in tr * ts.rows..((tr + 1) * ts.rows).min(k) {
            for (q, dst) in group.iter_mut().enumerate() {
                if how[q] == SKIP {
                    continue;
                }
                let c = c0 + q * nr;
                let d = &mut dst[off[q]..off[q] + nr];
                if how[q] == COPY {
                    // `K::NR` long (a constant): an inlined copy, not a `memmove` call.
                    d.copy_from_slice(&src[kk * n + c..kk * n + c + K::NR]);
                } else {
                    let cols = nr.min(n - c);
                    masked_copy(
                        &mut d[..cols],
                        &src[kk * n + c..kk * n + c + cols],
                        tm.row_bits(kk, c, cols),
                    );
                    d[cols..].fill(0.0);
                }
                off[q] += nr;
            }
        }
    }
}

/// Classes of an `MR × NR` micro-tile of C under a C mask.
const CLS_FULL: u8 = 0;
const CLS_EMPTY: u8 = 1;
const CLS_MIXED: u8 = 2;

/// Classifies the micro-tile at rows `r0..r0+rows`, cols `c0..c0+cols` of C under `tm`, and
/// writes the row bits of a mixed one into `bits[..rows]`.
fn classify(tm: &TileMap, r0: usize, rows: usize, c0: usize, cols: usize, bits: &mut [u64]) -> u8 {
    let ts = tm.tile_size();
    let (_, gc) = tm.grid();
    let kinds = tm.kinds();
    let (mut any_kept, mut all_full) = (false, true);
    for tr in r0 / ts.rows..=(r0 + rows - 1) / ts.rows {
        for tc in c0 / ts.cols..=(c0 + cols - 1) / ts.cols {
            match kinds[tr * gc + tc] {
                TileKind::Empty => all_full = false,
                TileKind::Full => any_kept = true,
                TileKind::Partial => {
                    any_kept = true;
                    all_full = false;
                }
            }
        }
    }
    if all_full {
        CLS_FULL
    } else if !any_kept {
        CLS_EMPTY
    } else {
        for (i, b) in bits[..rows].iter_mut().enumerate() {
            *b = tm.row_bits(r0 + i, c0, cols);
        }
        CLS_MIXED
    }
}

fn compute<K: MicroKernel>(p: &Problem<'_>, plan: &Plan, apanels: APanels<'_>, bbuf: &[f32], c: &mut [f32]) {
    let (m, k, n, mr, nr) = (p.m, p.k, p.n, K::MR, K::NR);
    let mb = m.div_ceil(mr);
    let np = n.div_ceil(nr);
    let nchunks = plan.nchunks;
    // Task grid: blocks of `mcb` row micro-panels × groups of `g` column panels. Only the
    // partition of C depends on the thread count, never the arithmetic.
    let want = 4 * rayon::current_num_threads();
    // Few row blocks and few panels (a weight gradient: C is `kh·kw·C_in × C_out`, the long
    // side is the reduction): shorter row blocks, so that every thread gets a share.
    let mcb = match (MC / mr).max(1) {
        full if mb.div_ceil(full) * np < want => full.min(mb.div_ceil(want.div_ceil(np))).max(1),
        full => full,
    };
    let row_tasks = mb.div_ceil(mcb);
    let g = np
        .div_ceil(want.div_ceil(row_tasks))
        .clamp(1, (MAX_TASK_COLS / nr).max(1));
    let col_tasks = np.div_ceil(g);
    let ntasks = row_tasks * col_tasks;
    let cptr = CPtr(c.as_mut_ptr());

    let task = |t: usize| {
        let cp = cptr;
        let (rt, ct) = (t / col_tasks, t % col_tasks);
        let (rb0, rb1) = (rt * mcb, ((rt + 1) * mcb).min(mb));
        let (p0, p1) = (ct * g, ((ct + 1) * g).min(np));
        let nrb = rb1 - rb0;
        // Micro-tile classes under the C mask, computed once per task.
        let mut classes = Vec::new();
        let mut class_bits = Vec::new();
        if let Some(tm) = p.c_mask {
            classes.resize(nrb * (p1 - p0), CLS_FULL);
            class_bits.resize(nrb * (p1 - p0) * mr, 0u64);
            for panel in p0..p1 {
                let (c0, cols) = (panel * nr, nr.min(n - panel * nr));
                for rb in rb0..rb1 {
                    let (r0, rows) = (rb * mr, mr.min(m - rb * mr));
                    let idx = (panel - p0) * nrb + (rb - rb0);
                    classes[idx] = classify(tm, r0, rows, c0, cols, &mut class_bits[idx * mr..(idx + 1) * mr]);
                }
            }
        }
        let mut started = vec![false; p1 - p0];
        let mut tmp = [0f32; MAX_TILE];
        for ch in 0..nchunks {
            for panel in p0..p1 {
                let cr = plan.chunks[panel * nchunks + ch];
                if cr.start == cr.end {
                    continue;
                }
                let runs = &plan.runs[cr.start..cr.end];
                let load_c = p.accumulate || started[panel - p0];
                started[panel - p0] = true;
                let (c0, cols) = (panel * nr, nr.min(n - panel * nr));
                let bptr = bbuf[cr.b_off..].as_ptr();
                for rb in rb0..rb1 {
                    let (r0, rows) = (rb * mr, mr.min(m - rb * mr));
                    let (aptr, lda, in_rows) = apanels.panel(rb, m, k, mr);
                    let kernel = if in_rows { K::run_rows } else { K::run };
                    let idx = (panel - p0) * nrb + (rb - rb0);
                    let class = classes.get(idx).copied().unwrap_or(CLS_FULL);
                    // SAFETY: A (packed, or S read in place: MR values at every k · lda, k < k) and packed B
                    // cover the runs (built from the same plan); the C block
                    // rows r0..r0+rows, cols c0..c0+cols lies inside C and belongs to this task
                    // only; `tmp` holds MR × NR values.
                    unsafe {
                        let cblk = cp.0.add(r0 * n + c0);
                        if class == CLS_EMPTY {
                            if !load_c {
                                for i in 0..rows {
                                    std::slice::from_raw_parts_mut(cblk.add(i * n), cols).fill(0.0);
                                }
                            }
                        } else if class == CLS_FULL && rows == mr && cols == nr {
                            kernel(runs, aptr, lda, bptr, cblk, n, load_c);
                        } else {
                            kernel(runs, aptr, lda, bptr, tmp.as_mut_ptr(), nr, false);
                            let bits = if class == CLS_MIXED {
                                Some(&class_bits[idx * mr..idx * mr + rows])
                            } else {
                                None
                            };
                            for i in 0..rows {
                                let crow = std::slice::from_raw_parts_mut(cblk.add(i * n), cols);
                                let trow = &tmp[i * nr..i * nr + cols];
                                masked_merge(crow, trow, bits.map_or(u64::MAX, |b| b[i]), load_c);
                            }
                        }
                    }
                }
            }
        }
        if !p.accumulate {
            // Panels without any kept k in this task: C = 0.
            for panel in p0..p1 {
                if !started[panel - p0] {
                    let (c0, cols) = (panel * nr, nr.min(n - panel * nr));
                    for r in rb0 * mr..(rb1 * mr).min(m) {
                        // SAFETY: row r, cols c0..c0+cols of C belong to this task.
                        unsafe { std::slice::from_raw_parts_mut(cp.0.add(r * n + c0), cols).fill(0.0) };
                    }
                }
            }
        }
    };
    if ntasks == 1 {
        task(0);
    } else {
        (0..ntasks).into_par_iter().for_each(task);
    }
}

#[cfg(test)]
mod pack_tests {
    use super::*;

    /// The register transpose of [`pack_a`] (8-row panels) against an element-by-element copy,
    /// on sizes with and without full 8 × 8 blocks, partial row blocks and k past PACK_KB.
    #[test]
    fn pack_a_equals_the_plain_copy() {
        struct Eight;
        impl MicroKernel for Eight {
            const MR: usize = 8;
            const NR: usize = 16;
            unsafe fn run(_: &[Run], _: *const f32, _: usize, _: *const f32, _: *mut f32, _: usize, _: bool) {}
            unsafe fn run_rows(_: &[Run], _: *const f32, _: usize, _: *const f32, _: *mut f32, _: usize, _: bool) {}
        }
        for (m, k) in [(8, 8), (16, 64), (13, 70), (8, 3), (40, 131), (1, 9), (24, 200)] {
            let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 7.0).collect();
            let p = Problem {
                m,
                k,
                n: 1,
                a: ASrc::RowMajor(&a),
                b: BSrc::RowMajor(&[]),
                b_mask: None,
                c_mask: None,
                accumulate: false,
            };
            let mut buf = vec![f32::NAN; m.div_ceil(8) * k * 8];
            pack_a::<Eight>(&p, &mut buf);
            for rb in 0..m.div_ceil(8) {
                for kk in 0..k {
                    for ii in 0..8 {
                        let r = rb * 8 + ii;
                        let want = if r < m { a[r * k + kk] } else { 0.0 };
                        assert_eq!(
                            buf[(rb * k + kk) * 8 + ii].to_bits(),
                            want.to_bits(),
                            "m {m} k {k} row {r} k {kk}"
                        );
                    }
                }
            }
        }
    }
}
