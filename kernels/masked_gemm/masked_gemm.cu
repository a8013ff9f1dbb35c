// Masked GEMM on the tile map: forward, dX and masked dW, in three precisions; and the masked
// conv2d forward as an implicit GEMM on the same tiles (masked_conv2d_fwd_*).
//
//   forward  Y  = X · (W ⊙ M)      X (m,k), W (k,n) -> Y (m,n)
//   dX       dX = dY · (W ⊙ M)ᵀ    dY (m,n), W (k,n) -> dX (m,k)
//   dW       dW = (Xᵀ · dY) ⊙ M    X (m,k), dY (m,n) -> dW (k,n)
//
// Everything is row-major. The mask M (k,n) is compiled on the host into a TileMap with 64 x 64
// tiles (crates/biokernels/src/cuda/tile_list.rs turns it into the lists below):
//
//   forward: per column tile tc (64 outputs n), the list of non-empty row tiles tr (64 inputs k),
//            each entry int2 {tr, slot}; slot = -1 for a full tile, else the index of its bit
//            block (64 u64 words, bit c of word r = mask(tr*64 + r, tc*64 + c)).
//   dX:      per row tile tr, the list of non-empty column tiles {tc, slot}.
//   dW:      one int per tile (row-major grid): -2 empty, -1 full, >= 0 the slot.
//
// A CTA computes a BM x 64 block of the output and walks only the listed (non-empty) tiles of
// the reduction: empty tiles are never loaded, full tiles are copied to shared memory as they
// are, and partial tiles have their mask applied while being stored to shared memory (forward,
// dX) or when the result is written (dW). The reduction over one 64-wide tile is split in steps
// of BK; global loads of step s+1 are issued into registers before the math of step s
// (double-buffered shared memory, one __syncthreads per step).
//
// Precisions (the MODE template parameter):
//   0  f32:  plain FFMA, exact f32 products and f32 accumulation (the reference path);
//   1  tf32: inputs rounded to TF32 (cvt.rna), mma.sync.m16n8k8, f32 accumulation;
//   2  bf16: inputs in bf16, mma.sync.m16n8k16, f32 accumulation.
// Outputs are always f32. `beta` = 0 overwrites the output (it is never read, so a poisoned
// buffer is fully replaced), beta = 1 adds to it.

#ifdef KERNELS_HOST_EMULATION
// kernels/emulate: the same source compiled for the CPU (one CTA at a time, threads as
// coroutines, mma.sync emulated per warp), to check the indexing without a GPU.
#include "../emulate/host_emulation.h"
#else
#include <cuda_bf16.h>
#include <stdint.h>
#endif

#define TILE 64       // mask tile side (k and n); must match biokernels::cuda::GPU_TILE
#define NTHREADS 256  // 8 warps per CTA
#define PAD 8         // shared-memory row padding (in 32-bit words): conflict-free fragments
// Two CTAs per SM (16 warps) so one CTA's loads overlap the other's math; caps registers at 128
// (ptxas then spills 8 bytes in masked_gemm_dx_bf16 only). Unmeasured choice: revisit with ncu.
#define MIN_CTAS 2

enum { MODE_F32 = 0, MODE_TF32 = 1, MODE_BF16 = 2 };

template <int MODE> struct Traits;
template <> struct Traits<MODE_F32> {
    typedef float T;
    enum { BK = 16 };
};
template <> struct Traits<MODE_TF32> {
    typedef float T;
    enum { BK = 16 };
};
template <> struct Traits<MODE_BF16> {
    typedef __nv_bfloat16 T;
    enum { BK = 32 };
};

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

#ifndef KERNELS_HOST_EMULATION
__device__ __forceinline__ uint32_t f32_to_tf32(float v) {
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v));
    return r;
}

__device__ __forceinline__ void mma_tf32(float* c, const uint32_t* a, const uint32_t* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void mma_bf16(float* c, const uint32_t* a, const uint32_t* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

#endif

// Shared memory of one stage. f32/tf32: word (kk, i) = element kk of the reduction, row i.
// bf16: word (kk/2, i) holds the pair (kk even, kk odd) of row i, low half first, which is
// exactly the register layout of the m16n8k16 A and B fragments.
template <int MODE, int BM> struct Stage {
    enum { BK = Traits<MODE>::BK, KW = (MODE == MODE_BF16) ? BK / 2 : BK };
    uint32_t a[KW][BM + PAD];
    uint32_t b[KW][TILE + PAD];
};

// Writes element (kk, i) of a stage operand.
template <int MODE, int W>
__device__ __forceinline__ void smem_put(uint32_t (*s)[W], int kk, int i, float v) {
    if (MODE == MODE_F32) {
        s[kk][i] = __float_as_uint(v);
    } else if (MODE == MODE_TF32) {
        s[kk][i] = f32_to_tf32(v);
    } else {
        __nv_bfloat16* h = reinterpret_cast<__nv_bfloat16*>(&s[kk >> 1][i]);
        h[kk & 1] = __float2bfloat16_rn(v);
    }
}

// The generic CTA body over an operand policy P (see GemmFwd, GemmDx, GemmDw, ConvFwd below),
// which says where element (i, kk) of A (rows x reduction), element (kk, j) of B
// (reduction x cols) and element (i, j) of the output live:
//   p.rows, p.cols, p.red           the GEMM's sizes (loads outside are 0, stores skipped);
//   p.a(gi, gk), p.b(gk, gj)        the input values (called in bounds only);
//   p.c(gi, gj)                     the output's index in p.out; p.bias(gj) is added to it.
// A_IFAST / B_JFAST pick which index consecutive threads walk when loading (the one that is
// contiguous in memory, for coalescing). MASKB: 0 none, 1 forward (bit row = kk in tile, bit col
// = j), 2 dX (bit row = j, bit col = kk). The reduction is a sequence of `nsteps` steps of BK;
// step s belongs to list entry s / (TILE / BK) (forward, dX) or is plain (list == nullptr).
template <int MODE, int BM, int MASKB, bool A_IFAST, bool B_JFAST, class P>
__device__ __forceinline__ void masked_tile_gemm(const P& p, int i0, int j0, const int2* __restrict__ list,
                                                 int nsteps, const unsigned long long* __restrict__ bits,
                                                 int out_slot, float beta) {
    enum { BK = Traits<MODE>::BK, KW = Stage<MODE, BM>::KW, STEPS_PER_TILE = TILE / BK };
    enum { A_PER = BM * BK / NTHREADS, B_PER = BK * TILE / NTHREADS };
    const int rows = p.rows, cols = p.cols, red = p.red;

    __shared__ Stage<MODE, BM> st[2];
    const int tid = threadIdx.x;

    float ra[A_PER], rb[B_PER];

    // Global -> registers for step s (zero outside the matrices; mask applied on B).
    auto load = [&](int s) {
        int kbase, slot = -1, toff = 0;
        if (list) {
            int2 e = list[s / STEPS_PER_TILE];
            kbase = e.x * TILE + (s % STEPS_PER_TILE) * BK;
            slot = e.y;
            toff = (s % STEPS_PER_TILE) * BK;
        } else {
            kbase = s * BK;
        }
#pragma unroll
        for (int r = 0; r < A_PER; ++r) {
            int e = tid + r * NTHREADS;
            int i, kk;
            if (!A_IFAST) { kk = e % BK; i = e / BK; } else { i = e % BM; kk = e / BM; }
            int gi = i0 + i, gk = kbase + kk;
            float v = 0.f;
            if (gi < rows && gk < red) v = p.a(gi, gk);
            ra[r] = v;
        }
#pragma unroll
        for (int r = 0; r < B_PER; ++r) {
            int e = tid + r * NTHREADS;
            int j, kk;
            if (B_JFAST) { j = e % TILE; kk = e / TILE; } else { kk = e % BK; j = e / BK; }
            int gj = j0 + j, gk = kbase + kk;
            float v = 0.f;
            if (gj < cols && gk < red) {
                v = p.b(gk, gj);
                if (MASKB != 0 && slot >= 0) {
                    // forward: bit (k in tile, n = j); dX: bit (k = j, n in tile)
                    unsigned long long w = (MASKB == 1) ? bits[(size_t)slot * TILE + toff + kk]
                                                        : bits[(size_t)slot * TILE + j];
                    int c = (MASKB == 1) ? j : toff + kk;
                    if (!((w >> c) & 1ull)) v = 0.f;
                }
            }
            rb[r] = v;
        }
    };
    auto store = [&](int buf) {
#pragma unroll
        for (int r = 0; r < A_PER; ++r) {
            int e = tid + r * NTHREADS;
            int i, kk;
            if (!A_IFAST) { kk = e % BK; i = e / BK; } else { i = e % BM; kk = e / BM; }
            smem_put<MODE, BM + PAD>(st[buf].a, kk, i, ra[r]);
        }
#pragma unroll
        for (int r = 0; r < B_PER; ++r) {
            int e = tid + r * NTHREADS;
            int j, kk;
            if (B_JFAST) { j = e % TILE; kk = e / TILE; } else { kk = e % BK; j = e / BK; }
            smem_put<MODE, TILE + PAD>(st[buf].b, kk, j, rb[r]);
        }
    };

    // Warp layout: WARPS_M x WARPS_N warps, each 32 rows x WN columns.
    enum { WARPS_M = BM / 32, WARPS_N = (NTHREADS / 32) / WARPS_M, WN = TILE / WARPS_N, NI = WN / 8 };
    // FFMA layout: 16 x 16 threads, each (BM/16) x 4 outputs strided by 16.
    enum { FM = BM / 16, FN = TILE / 16 };
    enum { NACC = (MODE == MODE_F32) ? FM * FN : 2 * NI * 4 };
    float acc[NACC];
#pragma unroll
    for (int q = 0; q < NACC; ++q) acc[q] = 0.f;

    const int lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm0 = (warp % WARPS_M) * 32, wn0 = (warp / WARPS_M) * WN;
    const int ty = tid / 16, tx = tid % 16;

    if (nsteps > 0) {
        load(0);
        store(0);
    }
    __syncthreads();
    for (int s = 0; s < nsteps; ++s) {
        const int buf = s & 1;
        if (s + 1 < nsteps) load(s + 1);
        const Stage<MODE, BM>& S = st[buf];
        if (MODE == MODE_F32) {
#pragma unroll
            for (int kk = 0; kk < BK; ++kk) {
                float av[FM], bv[FN];
#pragma unroll
                for (int x = 0; x < FM; ++x) av[x] = __uint_as_float(S.a[kk][ty + 16 * x]);
#pragma unroll
                for (int y = 0; y < FN; ++y) bv[y] = __uint_as_float(S.b[kk][tx + 16 * y]);
#pragma unroll
                for (int x = 0; x < FM; ++x)
#pragma unroll
                    for (int y = 0; y < FN; ++y) acc[x * FN + y] = fmaf(av[x], bv[y], acc[x * FN + y]);
            }
        } else {
            // One mma k-step covers 8 words of the stage (tf32: k8; bf16: k16 = 8 word pairs).
#pragma unroll
            for (int kq = 0; kq < KW; kq += 8) {
                uint32_t af[2][4], bf[NI][2];
#pragma unroll
                for (int mi = 0; mi < 2; ++mi) {
                    int rb0 = wm0 + mi * 16;
                    af[mi][0] = S.a[kq + t][rb0 + g];
                    af[mi][1] = S.a[kq + t][rb0 + g + 8];
                    af[mi][2] = S.a[kq + t + 4][rb0 + g];
                    af[mi][3] = S.a[kq + t + 4][rb0 + g + 8];
                }
#pragma unroll
                for (int ni = 0; ni < NI; ++ni) {
                    int cb = wn0 + ni * 8;
                    bf[ni][0] = S.b[kq + t][cb + g];
                    bf[ni][1] = S.b[kq + t + 4][cb + g];
                }
#pragma unroll
                for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                    for (int ni = 0; ni < NI; ++ni) {
                        if (MODE == MODE_TF32) mma_tf32(&acc[(mi * NI + ni) * 4], af[mi], bf[ni]);
                        else mma_bf16(&acc[(mi * NI + ni) * 4], af[mi], bf[ni]);
                    }
            }
        }
        if (s + 1 < nsteps) store(buf ^ 1);
        __syncthreads();
    }

    // Epilogue: (row i, col j) of the block; out_slot >= 0 (dW) applies a partial tile's mask.
    auto put = [&](int i, int j, float v) {
        int gi = i0 + i, gj = j0 + j;
        if (gi >= rows || gj >= cols) return;
        size_t o = p.c(gi, gj);
        if (out_slot >= 0) {
            if (!((bits[(size_t)out_slot * TILE + i] >> j) & 1ull)) {
                // Off the support: exactly 0 (beta = 0) or left unchanged (beta = 1).
                if (beta == 0.f) p.out[o] = 0.f;
                return;
            }
        }
        v += p.bias(gj);
        p.out[o] = (beta == 0.f) ? v : v + beta * p.out[o];
    };
    if (MODE == MODE_F32) {
#pragma unroll
        for (int x = 0; x < FM; ++x)
#pragma unroll
            for (int y = 0; y < FN; ++y) put(ty + 16 * x, tx + 16 * y, acc[x * FN + y]);
    } else {
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
            for (int ni = 0; ni < NI; ++ni) {
                const float* c = &acc[(mi * NI + ni) * 4];
                int r = wm0 + mi * 16 + g, cc = wn0 + ni * 8 + 2 * t;
                put(r, cc, c[0]);
                put(r, cc + 1, c[1]);
                put(r + 8, cc, c[2]);
                put(r + 8, cc + 1, c[3]);
            }
    }
}

// Operand policies of the three GEMM products (row-major X (m,k), W (k,n), dY (m,n)).
template <class T> struct GemmFwd {  // Y (m,n) = X (m,k) . W (k,n)
    const T* __restrict__ X; const T* __restrict__ W; float* __restrict__ out; int rows, cols, red;  // m, n, k
    __device__ float a(int i, int kk) const { return to_f32(X[(size_t)i * red + kk]); }
    __device__ float b(int kk, int j) const { return to_f32(W[(size_t)kk * cols + j]); }
    __device__ size_t c(int i, int j) const { return (size_t)i * cols + j; }
    __device__ float bias(int) const { return 0.f; }
};
template <class T> struct GemmDx {  // dX (m,k) = dY (m,n) . W(k,n)^T
    const T* __restrict__ dY; const T* __restrict__ W; float* __restrict__ out; int rows, cols, red;  // m, k, n
    __device__ float a(int i, int kk) const { return to_f32(dY[(size_t)i * red + kk]); }
    __device__ float b(int kk, int j) const { return to_f32(W[(size_t)j * red + kk]); }
    __device__ size_t c(int i, int j) const { return (size_t)i * cols + j; }
    __device__ float bias(int) const { return 0.f; }
};
template <class T> struct GemmDw {  // dW (k,n) = X(m,k)^T . dY (m,n)
    const T* __restrict__ X; const T* __restrict__ dY; float* __restrict__ out; int rows, cols, red;  // k, n, m
    __device__ float a(int i, int kk) const { return to_f32(X[(size_t)kk * rows + i]); }
    __device__ float b(int kk, int j) const { return to_f32(dY[(size_t)kk * cols + j]); }
    __device__ size_t c(int i, int j) const { return (size_t)i * cols + j; }
    __device__ float bias(int) const { return 0.f; }
};

// Forward: grid (ceil(m / 128), column tiles). col_ptr[tc]..col_ptr[tc+1] index `entries`.
template <int MODE>
__device__ void fwd_body(const typename Traits<MODE>::T* X, const typename Traits<MODE>::T* W, float* Y, int m, int k,
                         int n, const int* col_ptr, const int2* entries, const unsigned long long* bits, float beta) {
    const int tc = blockIdx.y;
    const int b = col_ptr[tc], e = col_ptr[tc + 1];
    const int nsteps = (e - b) * (TILE / Traits<MODE>::BK);
    GemmFwd<typename Traits<MODE>::T> p{X, W, Y, m, n, k};
    masked_tile_gemm<MODE, 128, 1, false, true>(p, blockIdx.x * 128, tc * TILE, entries + b, nsteps, bits, -1, beta);
}

// dX: grid (ceil(m / 128), row tiles). row_ptr[tr]..row_ptr[tr+1] index `entries` ({tc, slot}).
template <int MODE>
__device__ void dx_body(const typename Traits<MODE>::T* dY, const typename Traits<MODE>::T* W, float* dX, int m, int k,
                        int n, const int* row_ptr, const int2* entries, const unsigned long long* bits, float beta) {
    const int tr = blockIdx.y;
    const int b = row_ptr[tr], e = row_ptr[tr + 1];
    const int nsteps = (e - b) * (TILE / Traits<MODE>::BK);
    GemmDx<typename Traits<MODE>::T> p{dY, W, dX, m, k, n};
    masked_tile_gemm<MODE, 128, 2, false, false>(p, blockIdx.x * 128, tr * TILE, entries + b, nsteps, bits, -1, beta);
}

// A weight-gradient CTA: grid (column tiles, row tiles) of the mask; one 64 x 64 tile of the
// gradient per CTA, reduced over all of p.red. Empty tiles only write zeros (beta = 0).
template <int MODE, bool A_IFAST, bool B_JFAST, class P>
__device__ void wgrad_tile(const P& p, const int* tile_slots, const unsigned long long* bits, float beta) {
    const int tc = blockIdx.x, tr = blockIdx.y;
    const int slot = tile_slots[tr * gridDim.x + tc];
    if (slot == -2) {
        if (beta == 0.f) {
            for (int e = threadIdx.x; e < TILE * TILE; e += NTHREADS) {
                int r = tr * TILE + e / TILE, c = tc * TILE + e % TILE;
                if (r < p.rows && c < p.cols) p.out[p.c(r, c)] = 0.f;
            }
        }
        return;
    }
    const int nsteps = (p.red + Traits<MODE>::BK - 1) / Traits<MODE>::BK;
    masked_tile_gemm<MODE, 64, 0, A_IFAST, B_JFAST>(p, tr * TILE, tc * TILE, nullptr, nsteps, bits, slot, beta);
}

// dW: one 64 x 64 tile of dW per CTA, reduced over all of m.
template <int MODE>
__device__ void dw_body(const typename Traits<MODE>::T* X, const typename Traits<MODE>::T* dY, float* dW, int m, int k,
                        int n, const int* tile_slots, const unsigned long long* bits, float beta) {
    GemmDw<typename Traits<MODE>::T> p{X, dY, dW, k, n, m};
    wgrad_tile<MODE, true, true>(p, tile_slots, bits, beta);
}

// ---- Masked conv2d forward as an implicit GEMM ------------------------------------------------
// NCHW input x (N, C_in, H, W), Keras weight w (kh, kw, C_in/G, C_out), output y (N, C_out, OH,
// OW). For group g the GEMM is rows = N*OH*OW output pixels (ow fastest), reduction =
// kh*kw*C_in/G in the order (tap row, tap column, channel) — the rows of the group's tile map
// (biokernels::ConvMask) — and cols = C_out/G. im2col is never materialised: A is gathered from
// x (zero in the padding), B is the weight matrix with leading dimension C_out.
struct ConvGeom {
    int n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, groups;
};
template <class T> struct ConvFwd {
    const T* __restrict__ x; const T* __restrict__ wt; float* __restrict__ out; const float* __restrict__ b_;
    ConvGeom g; int group, rows, cols, red;
    __device__ float a(int i, int kk) const {
        const int cin_g = g.cin / g.groups;
        int ow = i % g.ow, t = i / g.ow, oh = t % g.oh, b = t / g.oh;
        int c = kk % cin_g, t2 = kk / cin_g, tj = t2 % g.kw, ti = t2 / g.kw;
        int ih = oh * g.sh - g.ph + ti * g.dh, iw = ow * g.sw - g.pw + tj * g.dw;
        if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return 0.f;
        return to_f32(x[(((size_t)b * g.cin + group * cin_g + c) * g.h + ih) * g.w + iw]);
    }
    __device__ float b(int kk, int j) const { return to_f32(wt[(size_t)kk * g.cout + group * cols + j]); }
    __device__ size_t c(int i, int j) const {
        int ow = i % g.ow, t = i / g.ow, oh = t % g.oh, b = t / g.oh;
        return (((size_t)b * g.cout + group * cols + j) * g.oh + oh) * g.ow + ow;
    }
    __device__ float bias(int j) const { return b_ ? b_[group * cols + j] : 0.f; }
};

// grid (ceil(N*OH*OW / 128), column tiles of C_out/G); one launch per group with its lists.
template <int MODE>
__device__ void conv_fwd_body(const typename Traits<MODE>::T* x, const typename Traits<MODE>::T* w, const float* bias,
                              float* y, ConvGeom g, int group, const int* col_ptr, const int2* entries,
                              const unsigned long long* bits, float beta) {
    const int tc = blockIdx.y;
    const int b = col_ptr[tc], e = col_ptr[tc + 1];
    const int nsteps = (e - b) * (TILE / Traits<MODE>::BK);
    const int rows = g.n * g.oh * g.ow, cols = g.cout / g.groups, red = g.kh * g.kw * (g.cin / g.groups);
    ConvFwd<typename Traits<MODE>::T> p{x, w, y, bias, g, group, rows, cols, red};
    masked_tile_gemm<MODE, 128, 1, true, true>(p, blockIdx.x * 128, tc * TILE, entries + b, nsteps, bits, -1, beta);
}

// Input gradient of the masked conv2d: dx (N, C_in, H, W) = sum over taps and output channels of
// dy (N, C_out, OH, OW) * W. Per group: rows = N*H*W input pixels, reduction = (tap, output
// channel of the group) = kh*kw*C_out/G, cols = C_in/G. A gathers dy at the output pixel a tap
// maps the input pixel to (zero when the stride does not divide or it falls outside); B is the
// weight (tap, c, co) read as (tap, co) x c. The mask of this GEMM is the forward mask with each
// tap's (c, co) block transposed: its own tile lists, built on the host.
template <class T> struct ConvDx {
    const T* __restrict__ dy; const T* __restrict__ wt; float* __restrict__ out;
    ConvGeom g; int group, rows, cols, red;
    __device__ float a(int i, int kk) const {
        const int cout_g = g.cout / g.groups;
        int iw = i % g.w, t = i / g.w, ih = t % g.h, b = t / g.h;
        int co = kk % cout_g, tap = kk / cout_g, tj = tap % g.kw, ti = tap / g.kw;
        int ohn = ih + g.ph - ti * g.dh, own = iw + g.pw - tj * g.dw;
        if (ohn < 0 || own < 0 || ohn % g.sh != 0 || own % g.sw != 0) return 0.f;
        int oh = ohn / g.sh, ow = own / g.sw;
        if (oh >= g.oh || ow >= g.ow) return 0.f;
        return to_f32(dy[(((size_t)b * g.cout + group * cout_g + co) * g.oh + oh) * g.ow + ow]);
    }
    __device__ float b(int kk, int j) const {
        const int cout_g = g.cout / g.groups;
        int co = kk % cout_g, tap = kk / cout_g;
        return to_f32(wt[((size_t)tap * cols + j) * g.cout + group * cout_g + co]);
    }
    __device__ size_t c(int i, int j) const {
        int iw = i % g.w, t = i / g.w, ih = t % g.h, b = t / g.h;
        return (((size_t)b * g.cin + group * cols + j) * g.h + ih) * g.w + iw;
    }
    __device__ float bias(int) const { return 0.f; }
};

// Weight gradient of the masked conv2d: dW (kh, kw, C_in/G, C_out) = im2col(x)^T . dy, only on
// the group's non-empty tiles, masked on partial ones. Per group: rows = kh*kw*C_in/G (the rows
// of the group's tile map), cols = C_out/G, reduction = N*OH*OW output pixels.
template <class T> struct ConvDw {
    const T* __restrict__ x; const T* __restrict__ dy; float* __restrict__ out;
    ConvGeom g; int group, rows, cols, red;
    __device__ float a(int i, int kk) const {
        const int cin_g = g.cin / g.groups;
        int ow = kk % g.ow, t = kk / g.ow, oh = t % g.oh, b = t / g.oh;
        int c = i % cin_g, t2 = i / cin_g, tj = t2 % g.kw, ti = t2 / g.kw;
        int ih = oh * g.sh - g.ph + ti * g.dh, iw = ow * g.sw - g.pw + tj * g.dw;
        if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return 0.f;
        return to_f32(x[(((size_t)b * g.cin + group * cin_g + c) * g.h + ih) * g.w + iw]);
    }
    __device__ float b(int kk, int j) const {
        int ow = kk % g.ow, t = kk / g.ow, oh = t % g.oh, b = t / g.oh;
        return to_f32(dy[(((size_t)b * g.cout + group * cols + j) * g.oh + oh) * g.ow + ow]);
    }
    __device__ size_t c(int i, int j) const { return (size_t)i * g.cout + group * cols + j; }
    __device__ float bias(int) const { return 0.f; }
};

// dgrad: grid (ceil(N*H*W / 128), column tiles of C_in/G) with the transposed lists.
template <int MODE>
__device__ void conv_dx_body(const typename Traits<MODE>::T* dy, const typename Traits<MODE>::T* w, float* dx, ConvGeom g,
                             int group, const int* col_ptr, const int2* entries, const unsigned long long* bits,
                             float beta) {
    const int tc = blockIdx.y;
    const int b = col_ptr[tc], e = col_ptr[tc + 1];
    const int nsteps = (e - b) * (TILE / Traits<MODE>::BK);
    const int rows = g.n * g.h * g.w, cols = g.cin / g.groups, red = g.kh * g.kw * (g.cout / g.groups);
    ConvDx<typename Traits<MODE>::T> p{dy, w, dx, g, group, rows, cols, red};
    masked_tile_gemm<MODE, 128, 1, true, false>(p, blockIdx.x * 128, tc * TILE, entries + b, nsteps, bits, -1, beta);
}

// wgrad: grid (column tiles, row tiles) of the group's forward map.
template <int MODE>
__device__ void conv_dw_body(const typename Traits<MODE>::T* x, const typename Traits<MODE>::T* dy, float* dw, ConvGeom g,
                             int group, const int* tile_slots, const unsigned long long* bits, float beta) {
    const int rows = g.kh * g.kw * (g.cin / g.groups), cols = g.cout / g.groups, red = g.n * g.oh * g.ow;
    ConvDw<typename Traits<MODE>::T> p{x, dy, dw, g, group, rows, cols, red};
    wgrad_tile<MODE, false, false>(p, tile_slots, bits, beta);
}

#define FWD_ARGS(T)                                                                                             \
    const T *__restrict__ X, const T *__restrict__ W, float *__restrict__ Y, int m, int k, int n, const int *col_ptr, \
        const int2 *entries, const unsigned long long *bits, float beta
#define DX_ARGS(T)                                                                                               \
    const T *__restrict__ dY, const T *__restrict__ W, float *__restrict__ dX, int m, int k, int n, const int *row_ptr, \
        const int2 *entries, const unsigned long long *bits, float beta
#define DW_ARGS(T)                                                                                               \
    const T *__restrict__ X, const T *__restrict__ dY, float *__restrict__ dW, int m, int k, int n,                 \
        const int *tile_slots, const unsigned long long *bits, float beta

extern "C" {
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_gemm_fwd_f32(FWD_ARGS(float)) {
    fwd_body<MODE_F32>(X, W, Y, m, k, n, col_ptr, entries, bits, beta);
}
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_gemm_fwd_tf32(FWD_ARGS(float)) {
    fwd_body<MODE_TF32>(X, W, Y, m, k, n, col_ptr, entries, bits, beta);
}
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_gemm_fwd_bf16(FWD_ARGS(__nv_bfloat16)) {
    fwd_body<MODE_BF16>(X, W, Y, m, k, n, col_ptr, entries, bits, beta);
}
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_gemm_dx_f32(DX_ARGS(float)) {
    dx_body<MODE_F32>(dY, W, dX, m, k, n, row_ptr, entries, bits, beta);
}
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_gemm_dx_tf32(DX_ARGS(float)) {
    dx_body<MODE_TF32>(dY, W, dX, m, k, n, row_ptr, entries, bits, beta);
}
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_gemm_dx_bf16(DX_ARGS(__nv_bfloat16)) {
    dx_body<MODE_BF16>(dY, W, dX, m, k, n, row_ptr, entries, bits, beta);
}
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_gemm_dw_f32(DW_ARGS(float)) {
    dw_body<MODE_F32>(X, dY, dW, m, k, n, tile_slots, bits, beta);
}
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_gemm_dw_tf32(DW_ARGS(float)) {
    dw_body<MODE_TF32>(X, dY, dW, m, k, n, tile_slots, bits, beta);
}
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_gemm_dw_bf16(DW_ARGS(__nv_bfloat16)) {
    dw_body<MODE_BF16>(X, dY, dW, m, k, n, tile_slots, bits, beta);
}
#define CONV_ARGS(T)                                                                                      \
    const T *__restrict__ x, const T *__restrict__ w, const float *__restrict__ bias, float *__restrict__ y, \
        ConvGeom g, int group, const int *col_ptr, const int2 *entries, const unsigned long long *bits, float beta
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_conv2d_fwd_f32(CONV_ARGS(float)) {
    conv_fwd_body<MODE_F32>(x, w, bias, y, g, group, col_ptr, entries, bits, beta);
}
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_conv2d_fwd_tf32(CONV_ARGS(float)) {
    conv_fwd_body<MODE_TF32>(x, w, bias, y, g, group, col_ptr, entries, bits, beta);
}
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_conv2d_fwd_bf16(CONV_ARGS(__nv_bfloat16)) {
    conv_fwd_body<MODE_BF16>(x, w, bias, y, g, group, col_ptr, entries, bits, beta);
}
#define CONV_DX_ARGS(T)                                                                                     \
    const T *__restrict__ dy, const T *__restrict__ w, float *__restrict__ dx, ConvGeom g, int group,        \
        const int *col_ptr, const int2 *entries, const unsigned long long *bits, float beta
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_conv2d_dx_f32(CONV_DX_ARGS(float)) {
    conv_dx_body<MODE_F32>(dy, w, dx, g, group, col_ptr, entries, bits, beta);
}
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_conv2d_dx_tf32(CONV_DX_ARGS(float)) {
    conv_dx_body<MODE_TF32>(dy, w, dx, g, group, col_ptr, entries, bits, beta);
}
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_conv2d_dx_bf16(CONV_DX_ARGS(__nv_bfloat16)) {
    conv_dx_body<MODE_BF16>(dy, w, dx, g, group, col_ptr, entries, bits, beta);
}
#define CONV_DW_ARGS(T)                                                                                     \
    const T *__restrict__ x, const T *__restrict__ dy, float *__restrict__ dw, ConvGeom g, int group,        \
        const int *tile_slots, const unsigned long long *bits, float beta
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_conv2d_dw_f32(CONV_DW_ARGS(float)) {
    conv_dw_body<MODE_F32>(x, dy, dw, g, group, tile_slots, bits, beta);
}
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_conv2d_dw_tf32(CONV_DW_ARGS(float)) {
    conv_dw_body<MODE_TF32>(x, dy, dw, g, group, tile_slots, bits, beta);
}
__global__ void __launch_bounds__(NTHREADS, MIN_CTAS) masked_conv2d_dw_bf16(CONV_DW_ARGS(__nv_bfloat16)) {
    conv_dw_body<MODE_BF16>(x, dy, dw, g, group, tile_slots, bits, beta);
}
}
