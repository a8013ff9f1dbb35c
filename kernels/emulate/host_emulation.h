// Host emulation of the small part of CUDA the kernels in kernels/ use, so that the very same
// kernel source runs on a CPU (g++) for correctness checks on machines without a GPU.
//
// One CTA runs at a time. Its threads are coroutines (ucontext) scheduled round-robin on one
// OS thread; they switch only at barriers: __syncthreads() waits for every thread of the CTA,
// and the warp-level mma emulation waits for the 32 lanes of the warp (all lanes deposit their
// fragments, then each computes its part of D from everyone's A and B, as the hardware does).
// __shared__ becomes `static`, which is shared by the CTA's threads because CTAs run one after
// the other.
//
// What this checks: indexing, shared-memory layout, tile lists, masks, bounds, pipelining
// order and the epilogue. What it cannot check: timing, memory-model races that the
// round-robin order hides, and the exact hardware fragment layout of mma (the emulation
// encodes the PTX ISA's documented layout, the same one the kernel was written against).
#pragma once

#include <stdint.h>
#include <string.h>
#include <ucontext.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct int2 {
    int x, y;
};
struct EmuDim3 {
    unsigned x, y, z;
};

struct __nv_bfloat16 {
    uint16_t bits;
};
inline float __uint_as_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
inline uint32_t __float_as_uint(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
// CUDA's integer min for device code.
inline int min(int a, int b) { return a < b ? a : b; }
// Round-to-nearest product and sum that nvcc never contracts into an FMA (g++ does not contract
// with -std=c++17 either).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }

inline float __bfloat162float(__nv_bfloat16 h) { return __uint_as_float(uint32_t(h.bits) << 16); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u = __float_as_uint(f);
    __nv_bfloat16 h;
    if (std::isnan(f)) {
        h.bits = 0x7fc0;
        return h;
    }
    u += 0x7fff + ((u >> 16) & 1);  // round to nearest even
    h.bits = uint16_t(u >> 16);
    return h;
}

// ---- the scheduler -------------------------------------------------------------------------
namespace emu {
struct Thread {
    ucontext_t ctx;
    int tid;
    bool done;
};
inline ucontext_t g_sched;
inline std::vector<Thread> g_threads;
inline std::vector<char> g_stacks;
inline Thread* g_cur = nullptr;
inline int g_nthreads = 0;
inline EmuDim3 g_block{0, 0, 0}, g_grid{1, 1, 1};
inline const std::function<void()>* g_body = nullptr;
inline int g_bar_count = 0;
inline long g_bar_gen = 0;
struct WarpScratch {
    uint32_t a[32][4], b[32][2];
    int count;
    long gen;
};
inline std::vector<WarpScratch> g_warps;
constexpr size_t STACK = 256 * 1024;

inline void yield() { swapcontext(&g_cur->ctx, &g_sched); }

inline void trampoline() {
    (*g_body)();
    g_cur->done = true;
    swapcontext(&g_cur->ctx, &g_sched);
}

// Runs `body` (the kernel call) on every CTA of `grid` with `nthreads` threads each.
inline void launch(EmuDim3 grid, int nthreads, const std::function<void()>& body) {
    g_nthreads = nthreads;
    g_grid = grid;
    g_body = &body;
    g_threads.assign(nthreads, Thread{});
    g_stacks.resize(STACK * nthreads);
    g_warps.assign((nthreads + 31) / 32, WarpScratch{});
    for (unsigned by = 0; by < grid.y; ++by)
        for (unsigned bx = 0; bx < grid.x; ++bx) {
            g_block = EmuDim3{bx, by, 0};
            g_bar_count = 0;
            for (auto& w : g_warps) w.count = 0;
            for (int t = 0; t < nthreads; ++t) {
                Thread& th = g_threads[t];
                th.tid = t;
                th.done = false;
                getcontext(&th.ctx);
                th.ctx.uc_stack.ss_sp = &g_stacks[STACK * t];
                th.ctx.uc_stack.ss_size = STACK;
                th.ctx.uc_link = nullptr;
                makecontext(&th.ctx, trampoline, 0);
            }
            for (bool running = true; running;) {
                running = false;
                for (int t = 0; t < nthreads; ++t) {
                    Thread& th = g_threads[t];
                    if (th.done) continue;
                    g_cur = &th;
                    swapcontext(&g_sched, &th.ctx);
                    running |= !th.done;
                }
            }
        }
}

inline void warp_barrier(WarpScratch& w) {
    long gen = w.gen;
    if (++w.count == 32) {
        w.count = 0;
        ++w.gen;
    } else {
        while (w.gen == gen) yield();
    }
}
}  // namespace emu

#define threadIdx (EmuDim3{unsigned(emu::g_cur->tid), 0u, 0u})
#define blockIdx (emu::g_block)
#define gridDim (emu::g_grid)

inline void __syncthreads() {
    long gen = emu::g_bar_gen;
    if (++emu::g_bar_count == emu::g_nthreads) {
        emu::g_bar_count = 0;
        ++emu::g_bar_gen;
    } else {
        while (emu::g_bar_gen == gen) emu::yield();
    }
}

// cvt.rna.tf32.f32: keep 10 mantissa bits, round to nearest, ties away from zero.
inline uint32_t f32_to_tf32(float v) {
    uint32_t u = __float_as_uint(v);
    if (std::isfinite(v)) u = (u + 0x1000u) & 0xffffe000u;
    return u;
}

// mma.sync.m16n8k8.row.col.f32.tf32.tf32.f32 with the PTX ISA fragment layout:
// g = lane / 4, t = lane % 4; A: a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4);
// B: b0 (t, g), b1 (t+4, g); C/D: c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1).
inline void mma_tf32(float* c, const uint32_t* a, const uint32_t* b) {
    int tid = emu::g_cur->tid, lane = tid & 31;
    emu::WarpScratch& w = emu::g_warps[tid >> 5];
    memcpy(w.a[lane], a, 16);
    memcpy(w.b[lane], b, 8);
    emu::warp_barrier(w);
    float A[16][8], B[8][8];
    for (int l = 0; l < 32; ++l) {
        int g = l >> 2, t = l & 3;
        A[g][t] = __uint_as_float(w.a[l][0]);
        A[g + 8][t] = __uint_as_float(w.a[l][1]);
        A[g][t + 4] = __uint_as_float(w.a[l][2]);
        A[g + 8][t + 4] = __uint_as_float(w.a[l][3]);
        B[t][g] = __uint_as_float(w.b[l][0]);
        B[t + 4][g] = __uint_as_float(w.b[l][1]);
    }
    emu::warp_barrier(w);  // nobody overwrites the scratch before everyone has read it
    int g = lane >> 2, t = lane & 3;
    for (int q = 0; q < 4; ++q) {
        int row = g + (q >= 2 ? 8 : 0), col = 2 * t + (q & 1);
        float s = c[q];
        for (int k = 0; k < 8; ++k) s = fmaf(A[row][k], B[k][col], s);
        c[q] = s;
    }
}

// mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32: each 32-bit register holds two bf16, the lower
// column (A) or row (B) in the low half. A: r0 (g, 2t..2t+1), r1 (g+8, 2t..), r2 (g, 2t+8..),
// r3 (g+8, 2t+8..); B: r0 (2t..2t+1, g), r1 (2t+8..2t+9, g); C/D as for tf32.
inline void mma_bf16(float* c, const uint32_t* a, const uint32_t* b) {
    int tid = emu::g_cur->tid, lane = tid & 31;
    emu::WarpScratch& w = emu::g_warps[tid >> 5];
    memcpy(w.a[lane], a, 16);
    memcpy(w.b[lane], b, 8);
    emu::warp_barrier(w);
    auto lo = [](uint32_t r) { return __uint_as_float(r << 16); };
    auto hi = [](uint32_t r) { return __uint_as_float(r & 0xffff0000u); };
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; ++l) {
        int g = l >> 2, t = l & 3;
        for (int q = 0; q < 4; ++q) {
            int row = g + ((q & 1) ? 8 : 0), col = 2 * t + ((q & 2) ? 8 : 0);
            A[row][col] = lo(w.a[l][q]);
            A[row][col + 1] = hi(w.a[l][q]);
        }
        for (int q = 0; q < 2; ++q) {
            int row = 2 * t + (q ? 8 : 0);
            B[row][g] = lo(w.b[l][q]);
            B[row + 1][g] = hi(w.b[l][q]);
        }
    }
    emu::warp_barrier(w);
    int g = lane >> 2, t = lane & 3;
    for (int q = 0; q < 4; ++q) {
        int row = g + (q >= 2 ? 8 : 0), col = 2 * t + (q & 1);
        float s = c[q];
        for (int k = 0; k < 16; ++k) s = fmaf(A[row][k], B[k][col], s);
        c[q] = s;
    }
}
