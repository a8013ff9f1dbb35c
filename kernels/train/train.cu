// Training kernels beside the masked GEMM/conv: activations, bias add and bias gradients, the
// fused softmax cross-entropy (loss and gradient), and the Adam / RMSprop steps in the Keras and
// PyTorch conventions of biolayers::optim (same formulas, same f32 operation order).
//
// All are f32, 1-D launches of 256 threads unless stated; sizes are ints (the wrappers check),
// thread indices 64-bit (blockIdx.x * 256 overflows an int for sizes within 256 of 2^31).
// The kernels below the optimizers (elementwise ops, reductions, MSE, max pooling, dropout)
// use grid-stride loops, so any grid size covers any n; the wrappers never launch for n = 0.
// Reductions run in a fixed order (no atomics), so results are the same on every run.

#ifdef KERNELS_HOST_EMULATION
#include "../emulate/host_emulation.h"
#else
#include <cuda_bf16.h>
#include <stdint.h>
#endif

#define NT 256

// i runs over [0, n) in steps of the whole grid.
#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * NT + threadIdx.x; i < (long long)(n); i += (long long)gridDim.x * NT)

extern "C" {

// y = max(x, 0)
__global__ void relu_fwd(const float* __restrict__ x, float* __restrict__ y, int n) {
    long long i = (long long)blockIdx.x * NT + threadIdx.x;
    if (i < n) y[i] = x[i] > 0.f ? x[i] : 0.f;
}

// dx = dy where x > 0, else 0
__global__ void relu_bwd(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dx, int n) {
    long long i = (long long)blockIdx.x * NT + threadIdx.x;
    if (i < n) dx[i] = x[i] > 0.f ? dy[i] : 0.f;
}

// y (rows, cols) += b (cols): the dense layer's bias. One thread per element.
__global__ void bias_add_rows(float* __restrict__ y, const float* __restrict__ b, int rows, int cols) {
    long long i = (long long)blockIdx.x * NT + threadIdx.x;
    if (i < (long long)rows * cols) y[i] += b[i % cols];
}

// y (N, C, HW) += b (C): the conv / transposed-conv bias in NCHW. One thread per element.
__global__ void bias_add_nchw(float* __restrict__ y, const float* __restrict__ b, int n, int c, int hw) {
    long long i = (long long)blockIdx.x * NT + threadIdx.x;
    if (i < (long long)n * c * hw) y[i] += b[(i / hw) % c];
}

// db (cols) = sum over rows of dy (rows, cols): the dense bias gradient. One thread per column,
// rows summed in order (coalesced across the threads of a warp).
__global__ void bias_grad_rows(const float* __restrict__ dy, float* __restrict__ db, int rows, int cols) {
    long long c = (long long)blockIdx.x * NT + threadIdx.x;
    if (c >= cols) return;
    float s = 0.f;
    for (int r = 0; r < rows; ++r) s += dy[(size_t)r * cols + c];
    db[c] = s;
}

// db (C) = sum over n, h, w of dy (N, C, HW): the conv bias gradient. One CTA per channel, a
// shared-memory tree reduction (the order is fixed, so the result is deterministic).
__global__ void bias_grad_nchw(const float* __restrict__ dy, float* __restrict__ db, int n, int c, int hw) {
    __shared__ float part[NT];
    const int ch = blockIdx.x;
    float s = 0.f;
    for (int b = 0; b < n; ++b)
        for (int p = threadIdx.x; p < hw; p += NT) s += dy[((size_t)b * c + ch) * hw + p];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int half = NT / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) db[ch] = part[0];
}

// Softmax cross-entropy with integer labels (stored as floats, exact below 2^24), fused:
// loss[r] = logsumexp(z_r) - z_r[label_r]; dz = (softmax(z_r) - onehot(label_r)) * grad_scale
// (grad_scale = 1 / rows for a mean loss). One thread per row (classes are few: 10 for CIFAR).
__global__ void softmax_xent(const float* __restrict__ z, const float* __restrict__ labels, float* __restrict__ loss,
                             float* __restrict__ dz, int rows, int classes, float grad_scale) {
    long long r = (long long)blockIdx.x * NT + threadIdx.x;
    if (r >= rows) return;
    const float* zr = z + (size_t)r * classes;
    float* dr = dz + (size_t)r * classes;
    // A label that is not a class index (negative, >= classes, fractional, NaN) would read and
    // write outside the row: the row gets NaN loss and gradient instead, which the caller's
    // finite check reports (bioautograd checks labels on the host before uploading them).
    const float lf = labels[r];
    if (classes <= 0 || !(lf >= 0.f) || lf >= (float)classes || (float)(int)lf != lf) {
        loss[r] = nanf("");
        for (int j = 0; j < classes; ++j) dr[j] = nanf("");
        return;
    }
    const int label = (int)lf;
    float mx = zr[0];
    for (int j = 1; j < classes; ++j) mx = fmaxf(mx, zr[j]);
    float sum = 0.f;
    for (int j = 0; j < classes; ++j) sum += expf(zr[j] - mx);
    const float lse = logf(sum) + mx;
    loss[r] = lse - zr[label];
    for (int j = 0; j < classes; ++j) dr[j] = (expf(zr[j] - mx) / sum - (j == label ? 1.f : 0.f)) * grad_scale;
}

// Adam, one step. Keras (torch = 0): w -= step * m / (sqrt(v) + eps), step = lr*sqrt(1-b2^t)/(1-b1^t).
// PyTorch (torch = 1): w -= step * m / (sqrt(v) / bc2_sqrt + eps), step = lr/(1-b1^t);
// wd > 0 adds PyTorch's coupled L2 term to the gradient first.
__global__ void adam_step(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m,
                          float* __restrict__ v, int n, float b1, float b2, float eps, float step, float bc2_sqrt,
                          int torch, float wd) {
    long long i = (long long)blockIdx.x * NT + threadIdx.x;
    if (i >= n) return;
    float gi = wd != 0.f ? g[i] + wd * w[i] : g[i];
    float mi = b1 * m[i] + (1.f - b1) * gi;
    float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] -= torch ? step * mi / (sqrtf(vi) / bc2_sqrt + eps) : step * mi / (sqrtf(vi) + eps);
}

// RMSprop, one step. s = rho*s + (1-rho)*g^2. Keras: inc = lr*g/sqrt(s + eps) (eps inside the
// root); with momentum b = mu*b + inc, w -= b, else w -= inc. PyTorch: scaled = g/(sqrt(s)+eps);
// with momentum b = mu*b + scaled, w -= lr*b, else w -= lr*scaled. `mom` may be null without
// momentum.
__global__ void rmsprop_step(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ s,
                             float* __restrict__ mom, int n, float rho, float eps, float lr, float momentum, int torch,
                             float wd) {
    long long i = (long long)blockIdx.x * NT + threadIdx.x;
    if (i >= n) return;
    float gi = wd != 0.f ? g[i] + wd * w[i] : g[i];
    float si = rho * s[i] + (1.f - rho) * gi * gi;
    s[i] = si;
    if (!torch) {
        float inc = lr * gi / sqrtf(si + eps);
        if (momentum == 0.f) {
            w[i] -= inc;
        } else {
            float b = momentum * mom[i] + inc;
            mom[i] = b;
            w[i] -= b;
        }
    } else {
        float scaled = gi / (sqrtf(si) + eps);
        if (momentum == 0.f) {
            w[i] -= lr * scaled;
        } else {
            float b = momentum * mom[i] + scaled;
            mom[i] = b;
            w[i] -= lr * b;
        }
    }
}
// ---- elementwise ops (grid-stride) --------------------------------------------------------------

// The logistic sigmoid in the form that never overflows (as the CPU).
__device__ __forceinline__ float sigmoid_f(float v) {
    if (v >= 0.f) return 1.f / (1.f + expf(-v));
    const float e = expf(v);
    return e / (1.f + e);
}

// The activations of bioautograd::ops::activation and swish; op: 0 relu, 1 tanh, 2 sigmoid,
// 3 swish (x sigmoid(x)).
__device__ __forceinline__ float act_fwd(float v, int op) {
    if (op == 0) return v > 0.f ? v : 0.f;
    if (op == 1) return tanhf(v);
    if (op == 3) return v * sigmoid_f(v);
    return sigmoid_f(v);
}

// y = act(x)
__global__ void unary_fwd(const float* __restrict__ x, float* __restrict__ y, int n, int op) {
    GRID_STRIDE(i, n) y[i] = act_fwd(x[i], op);
}

// dx = dy * act'(.) (beta = 0: dx is not read) or dx += dy * act'(.) (beta = 1). `s` is what
// the derivative needs: x for relu (dy where x > 0), y for tanh (1 - y^2) and sigmoid (y(1 - y)),
// x for swish (s + x s (1 - s) with s = sigmoid(x), the CPU's form).
__global__ void unary_bwd(const float* __restrict__ s, const float* __restrict__ dy, float* __restrict__ dx, int n,
                          int op, float beta) {
    GRID_STRIDE(i, n) {
        const float v = s[i];
        float g;
        if (op == 0)
            g = v > 0.f ? dy[i] : 0.f;
        else if (op == 1)
            g = dy[i] * (1.f - v * v);
        else if (op == 3) {
            const float sg = sigmoid_f(v);
            g = dy[i] * (sg + v * sg * (1.f - sg));
        } else
            g = dy[i] * (v * (1.f - v));
        dx[i] = beta == 0.f ? g : dx[i] + g;
    }
}

// y = x for x > 0, slope * x otherwise (bioautograd's leaky_relu).
__global__ void leaky_relu_fwd(const float* __restrict__ x, float* __restrict__ y, int n, float slope) {
    GRID_STRIDE(i, n) {
        const float v = x[i];
        y[i] = v > 0.f ? v : slope * v;
    }
}

// dx = dy * (x > 0 ? 1 : slope) (beta = 0: dx is not read) or dx += that (beta = 1).
__global__ void leaky_relu_bwd(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dx,
                               int n, float slope, float beta) {
    GRID_STRIDE(i, n) {
        const float g = x[i] > 0.f ? dy[i] : slope * dy[i];
        dx[i] = beta == 0.f ? g : dx[i] + g;
    }
}

// out = a op b; op: 0 add, 1 sub, 2 mul.
__global__ void binary_ew(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out, int n,
                          int op) {
    GRID_STRIDE(i, n) {
        const float u = a[i], v = b[i];
        out[i] = op == 0 ? u + v : (op == 1 ? u - v : u * v);
    }
}

// s = sign(a - b) (0 where a == b or either is NaN): the mean absolute error's gradient
// direction, and |a - b| = (a - b) s.
__global__ void sign_diff(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ s, int n) {
    GRID_STRIDE(i, n) {
        const float u = a[i], v = b[i];
        s[i] = u > v ? 1.f : (u < v ? -1.f : 0.f);
    }
}

// y = alpha x + beta y; beta = 0 does not read y.
__global__ void axpby(const float* __restrict__ x, float* __restrict__ y, int n, float alpha, float beta) {
    GRID_STRIDE(i, n) y[i] = beta == 0.f ? alpha * x[i] : alpha * x[i] + beta * y[i];
}

// y = value
__global__ void fill_f32(float* __restrict__ y, int n, float value) {
    GRID_STRIDE(i, n) y[i] = value;
}

// Inverted dropout with a host-made 0/1 mask: y = x * (mask * scale), which is the CPU's
// x * (keep ? scale : 0) bit for bit.
__global__ void dropout_apply(const float* __restrict__ x, const float* __restrict__ mask, float* __restrict__ y,
                              int n, float scale) {
    GRID_STRIDE(i, n) y[i] = x[i] * (mask[i] * scale);
}

// dpred = (pred - target) * (2 * scale): the CPU mse gradient d * (2 g / N) with scale = g / N.
__global__ void mse_grad(const float* __restrict__ p, const float* __restrict__ t, float* __restrict__ d, int n,
                         float scale) {
    GRID_STRIDE(i, n) d[i] = (p[i] - t[i]) * (2.f * scale);
}

// dst[r, dst_col + j] = src[r, src_col + j] (beta = 0, dst not read) or += (beta = 1) for
// r < rows, j < cols: a column block of one row-major matrix into another (slicing a time step
// out of a sequence, or placing its gradient back). Other columns of dst are untouched.
__global__ void copy_cols(const float* __restrict__ src, float* __restrict__ dst, int rows, int src_ld, int src_col,
                          int dst_ld, int dst_col, int cols, float beta) {
    GRID_STRIDE(i, (long long)rows * cols) {
        const long long r = i / cols, j = i - r * cols;
        const float v = src[r * src_ld + src_col + j];
        float* d = dst + r * dst_ld + dst_col + j;
        *d = beta == 0.f ? v : *d + v;
    }
}

// ---- deterministic reductions ------------------------------------------------------------------

// The sum of each thread's `s` over the CTA (NT threads), in a fixed tree order, returned to
// every thread. Every thread of the CTA must call it.
__device__ __forceinline__ float cta_sum(float s) {
    __shared__ float part[NT];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int half = NT / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
        __syncthreads();
    }
    const float total = part[0];
    __syncthreads();  // part may be reused by a later call
    return total;
}

// out[0] = sum of x. One CTA: thread t sums x[t], x[t + NT], ... in order, then cta_sum.
__global__ void sum_all(const float* __restrict__ x, float* __restrict__ out, int n) {
    float s = 0.f;
    for (long long i = threadIdx.x; i < n; i += NT) s += x[i];
    s = cta_sum(s);
    if (threadIdx.x == 0) out[0] = s;
}

// loss[0] = (1/n) sum (p - t)^2, one CTA, fixed order (as sum_all).
__global__ void mse_loss(const float* __restrict__ p, const float* __restrict__ t, float* __restrict__ loss, int n) {
    float s = 0.f;
    for (long long i = threadIdx.x; i < n; i += NT) {
        const float d = p[i] - t[i];
        s += d * d;
    }
    s = cta_sum(s);
    if (threadIdx.x == 0) loss[0] = s * (1.f / (float)n);
}

// out (cols) = sum over rows of x (rows, cols), written (beta = 0, out not read) or added
// (beta = 1). A CTA takes 32 columns: lane = column, warp w sums rows w, w + 8, ... in order
// (a warp reads 32 consecutive floats of a row), then warp 0 adds the 8 partial sums in order.
// Grid-stride over blocks of 32 columns.
__global__ void sum_rows(const float* __restrict__ x, float* __restrict__ out, int rows, int cols, float beta) {
    __shared__ float part[NT / 32][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (long long c0 = (long long)blockIdx.x * 32; c0 < cols; c0 += (long long)gridDim.x * 32) {
        const long long c = c0 + lane;
        float s = 0.f;
        if (c < cols)
            for (long long r = warp; r < rows; r += NT / 32) s += x[r * cols + c];
        part[warp][lane] = s;
        __syncthreads();
        if (warp == 0 && c < cols) {
            float t = part[0][lane];
            for (int w = 1; w < NT / 32; ++w) t += part[w][lane];
            out[c] = beta == 0.f ? t : out[c] + t;
        }
        __syncthreads();
    }
}

// ---- max and average pooling (zero padding ph, pw on each side) --------------------------------

// y (planes, oh, ow) = max over each kh x kw window of x (planes, h, w) with stride (sh, sw),
// window (i, j) starting at row i * sh - ph, column j * sw - pw; positions in the padding are
// skipped. arg = flat index into x of the first maximum in row-major window order (a later value
// wins only if strictly greater, so a NaN wins only in the first position), as the CPU
// max_pool2d; a window wholly in the padding gives -inf and arg -1 (no gradient).
__global__ void max_pool2d_fwd(const float* __restrict__ x, float* __restrict__ y, int* __restrict__ arg, int planes,
                               int h, int w, int kh, int kw, int sh, int sw, int oh, int ow, int ph, int pw) {
    GRID_STRIDE(o, (long long)planes * oh * ow) {
        const long long p = o / ((long long)oh * ow);
        const int rem = (int)(o - p * oh * ow), i = rem / ow, j = rem % ow;
        const long long base = p * h * w;
        float best = -HUGE_VALF;
        long long best_at = -1;
        for (int di = 0; di < kh; ++di) {
            const int r = i * sh + di - ph;
            if (r < 0 || r >= h) continue;
            for (int dj = 0; dj < kw; ++dj) {
                const int c = j * sw + dj - pw;
                if (c < 0 || c >= w) continue;
                const float v = x[base + (long long)r * w + c];
                if (best_at < 0 || v > best) {
                    best = v;
                    best_at = base + (long long)r * w + c;
                }
            }
        }
        y[o] = best;
        arg[o] = (int)best_at;
    }
}

// The windows (i in [i0, i1], j in [j0, j1]) that contain input element (r, c).
#define POOL_WINDOWS_OF(r, c)                                                        \
    const int rp = (r) + ph, cp = (c) + pw;                                         \
    const int i0 = rp >= kh ? (rp - kh) / sh + 1 : 0, i1 = min(rp / sh, oh - 1);   \
    const int j0 = cp >= kw ? (cp - kw) / sw + 1 : 0, j1 = min(cp / sw, ow - 1);

// dx (planes, h, w): each input element sums, in increasing output order, dy of the windows
// whose argmax it is (0 if none). A gather, so overlapping windows need no atomics and the sum
// order equals the CPU's scatter dx[arg[o]] += dy[o] over increasing o.
__global__ void max_pool2d_bwd(const float* __restrict__ dy, const int* __restrict__ arg, float* __restrict__ dx,
                               int planes, int h, int w, int kh, int kw, int sh, int sw, int oh, int ow, int ph,
                               int pw) {
    GRID_STRIDE(idx, (long long)planes * h * w) {
        const long long p = idx / ((long long)h * w);
        const int rem = (int)(idx - p * h * w), r = rem / w, c = rem % w;
        POOL_WINDOWS_OF(r, c)
        float acc = 0.f;
        for (int i = i0; i <= i1; ++i)
            for (int j = j0; j <= j1; ++j) {
                const long long o = (p * oh + i) * ow + j;
                if (arg[o] == (int)idx) acc += dy[o];
            }
        dx[idx] = acc;
    }
}

// y = inv * (sum of the window's values inside the input, row-major order): average pooling
// with the padding counted in the divisor (inv = 1 / (kh kw)), as the CPU avg_pool2d.
__global__ void avg_pool2d_fwd(const float* __restrict__ x, float* __restrict__ y, int planes, int h, int w, int kh,
                               int kw, int sh, int sw, int oh, int ow, int ph, int pw, float inv) {
    GRID_STRIDE(o, (long long)planes * oh * ow) {
        const long long p = o / ((long long)oh * ow);
        const int rem = (int)(o - p * oh * ow), i = rem / ow, j = rem % ow;
        const long long base = p * h * w;
        float sum = 0.f;
        for (int di = 0; di < kh; ++di) {
            const int r = i * sh + di - ph;
            if (r < 0 || r >= h) continue;
            for (int dj = 0; dj < kw; ++dj) {
                const int c = j * sw + dj - pw;
                if (c >= 0 && c < w) sum += x[base + (long long)r * w + c];
            }
        }
        y[o] = sum * inv;
    }
}

// dx = sum over the windows containing the element, in increasing output order, of dy * inv
// (the CPU's scatter of g * inv, same products and order).
__global__ void avg_pool2d_bwd(const float* __restrict__ dy, float* __restrict__ dx, int planes, int h, int w, int kh,
                               int kw, int sh, int sw, int oh, int ow, int ph, int pw, float inv) {
    GRID_STRIDE(idx, (long long)planes * h * w) {
        const long long p = idx / ((long long)h * w);
        const int rem = (int)(idx - p * h * w), r = rem / w, c = rem % w;
        POOL_WINDOWS_OF(r, c)
        float acc = 0.f;
        for (int i = i0; i <= i1; ++i)
            for (int j = j0; j <= j1; ++j) acc += dy[(p * oh + i) * ow + j] * inv;
        dx[idx] = acc;
    }
}

// ---- batch and group normalisation over NCHW ----------------------------------------------------
//
// A segment layout names the values one reduction runs over: segment s holds the `count` values
// x[s * base + (m / inner) * stride + m % inner], m in [0, count). Batch norm per channel c:
// base = inner = hw, stride = channels * hw, count = n * hw. Group norm per (sample, group):
// base = inner = count = (channels / groups) * hw (one contiguous run). An element i belongs to
// statistic (i / sdiv) % smod and to channel (i / hw) % channels. The statistics live in one
// buffer of 3 rows of `stats` values: mean, biased variance, 1 / sqrt(variance + eps).

__device__ __forceinline__ long long seg_at(long long s, long long m, int base, int inner, int stride) {
    return s * base + (m / inner) * (long long)stride + m % inner;
}

// stats = [mean; var; invstd] of each of the `segs` segments, two passes (mean, then the squared
// deviations from it, as the CPU), one CTA per segment (grid-stride), fixed order.
__global__ void norm_stats(const float* __restrict__ x, float* __restrict__ stats, int segs, int base, int inner,
                           int stride, int count, float eps) {
    for (long long s = blockIdx.x; s < segs; s += gridDim.x) {
        float acc = 0.f;
        for (long long m = threadIdx.x; m < count; m += NT) acc += x[seg_at(s, m, base, inner, stride)];
        const float mu = cta_sum(acc) / (float)count;
        float acc2 = 0.f;
        for (long long m = threadIdx.x; m < count; m += NT) {
            const float d = x[seg_at(s, m, base, inner, stride)] - mu;
            acc2 += d * d;
        }
        const float var = cta_sum(acc2) / (float)count;
        if (threadIdx.x == 0) {
            stats[s] = mu;
            stats[segs + s] = var;
            stats[2LL * segs + s] = 1.f / sqrtf(var + eps);
        }
    }
}

// y = gamma[c] * xhat + beta[c] (affine = 1) or xhat, xhat = (x - mean[st]) * invstd[st].
__global__ void norm_apply(const float* __restrict__ x, const float* __restrict__ stats, const float* __restrict__ gamma,
                           const float* __restrict__ beta, float* __restrict__ y, int n, int nstats, int sdiv,
                           int smod, int hw, int channels, int affine) {
    GRID_STRIDE(i, n) {
        const long long st = (i / sdiv) % smod;
        const float xh = (x[i] - stats[st]) * stats[2LL * nstats + st];
        if (affine) {
            const long long c = (i / hw) % channels;
            y[i] = gamma[c] * xh + beta[c];
        } else {
            y[i] = xh;
        }
    }
}

// Per segment r of the reduction layout: sums[r] = sum of d, sums[segs + r] = sum of d * xhat,
// d = dy * gamma[c] (use_gamma = 1) or dy, xhat from the element's own statistic. One CTA per
// segment (grid-stride), fixed order.
__global__ void norm_grad_sums(const float* __restrict__ x, const float* __restrict__ dy,
                               const float* __restrict__ stats, const float* __restrict__ gamma,
                               float* __restrict__ sums, int segs, int base, int inner, int stride, int count,
                               int nstats, int sdiv, int smod, int hw, int channels, int use_gamma) {
    for (long long r = blockIdx.x; r < segs; r += gridDim.x) {
        float a1 = 0.f, a2 = 0.f;
        for (long long m = threadIdx.x; m < count; m += NT) {
            const long long i = seg_at(r, m, base, inner, stride);
            const long long st = (i / sdiv) % smod;
            const float xh = (x[i] - stats[st]) * stats[2LL * nstats + st];
            const float d = use_gamma ? dy[i] * gamma[(i / hw) % channels] : dy[i];
            a1 += d;
            a2 += d * xh;
        }
        const float s1 = cta_sum(a1);
        const float s2 = cta_sum(a2);
        if (threadIdx.x == 0) {
            sums[r] = s1;
            sums[segs + r] = s2;
        }
    }
}

// train = 1: dx = invstd / M * (M * d - s1 - xhat * s2) with the statistic's sums (rows of
// `sums`, one entry per statistic); train = 0 (running statistics): dx = d * invstd.
// d = dy * gamma[c] (use_gamma = 1) or dy. Written (beta = 0, dx not read) or added (beta = 1).
__global__ void norm_grad_input(const float* __restrict__ x, const float* __restrict__ dy,
                                const float* __restrict__ stats, const float* __restrict__ gamma,
                                const float* __restrict__ sums, float* __restrict__ dx, int n, int nstats, int sdiv,
                                int smod, int hw, int channels, int use_gamma, int train, float m, float beta) {
    GRID_STRIDE(i, n) {
        const long long st = (i / sdiv) % smod;
        const float inv = stats[2LL * nstats + st];
        const float d = use_gamma ? dy[i] * gamma[(i / hw) % channels] : dy[i];
        float g;
        if (train) {
            const float xh = (x[i] - stats[st]) * inv;
            g = inv / m * (m * d - sums[st] - xh * sums[nstats + st]);
        } else {
            g = d * inv;
        }
        dx[i] = beta == 0.f ? g : dx[i] + g;
    }
}

// ---- row softmax and binary cross-entropy -------------------------------------------------------

// Per row of x (rows, cols): log = 1: y = x - m - log(sum exp(x - m)); log = 0: y = exp of that
// (the CPU's softmax: exp(log_softmax)); m the row maximum. One thread per row (grid-stride).
__global__ void softmax_rows_fwd(const float* __restrict__ x, float* __restrict__ y, int rows, int cols, int log) {
    GRID_STRIDE(r, rows) {
        const float* xr = x + r * cols;
        float* yr = y + r * cols;
        float mx = xr[0];  // cols > 0 (the wrapper checks)
        for (int j = 1; j < cols; ++j) mx = xr[j] > mx ? xr[j] : mx;
        float sum = 0.f;
        for (int j = 0; j < cols; ++j) sum += expf(xr[j] - mx);
        const float lse = logf(sum) + mx;
        for (int j = 0; j < cols; ++j) yr[j] = log ? xr[j] - lse : expf(xr[j] - lse);
    }
}

// From the forward's y: log = 1: dx = dy - exp(y) * sum(dy); log = 0: dx = y * (dy - sum(dy * y)).
// Written (beta = 0) or added (beta = 1). One thread per row.
__global__ void softmax_rows_bwd(const float* __restrict__ y, const float* __restrict__ dy, float* __restrict__ dx,
                                 int rows, int cols, int log, float beta) {
    GRID_STRIDE(r, rows) {
        const float* yr = y + r * cols;
        const float* gr = dy + r * cols;
        float* dr = dx + r * cols;
        float s = 0.f;
        for (int j = 0; j < cols; ++j) s += log ? gr[j] : gr[j] * yr[j];
        for (int j = 0; j < cols; ++j) {
            const float g = log ? gr[j] - expf(yr[j]) * s : yr[j] * (gr[j] - s);
            dr[j] = beta == 0.f ? g : dr[j] + g;
        }
    }
}

// Binary cross-entropy on logits, per element: loss = max(z, 0) - z t + log(1 + exp(-|z|)),
// dz = (sigmoid(z) - t) * scale (the sigmoid that never overflows, as act_fwd).
__global__ void bce_logits(const float* __restrict__ z, const float* __restrict__ t, float* __restrict__ loss,
                           float* __restrict__ dz, int n, float scale) {
    GRID_STRIDE(i, n) {
        const float v = z[i], tv = t[i];
        const float relu = v > 0.f ? v : 0.f, a = v > 0.f ? v : -v;
        loss[i] = relu - v * tv + logf(1.f + expf(-a));
        dz[i] = (sigmoid_f(v) - tv) * scale;
    }
}

// ---- sparse linear maps per plane (upsampling, transposes) --------------------------------------
//
// y[p * out_len + i] = sum over t in [off[i], off[i + 1]) of w[t] * x[p * in_len + src[t]], summed
// from -0 (the additive identity: a one-tap map of weight 1 copies exactly) in tap order. The
// backward of a map is its adjoint, a map of the same kind built on the host, so no atomics.
__global__ void plane_map(const float* __restrict__ x, float* __restrict__ y, const int* __restrict__ off,
                          const int* __restrict__ src, const float* __restrict__ w, int planes, int in_len,
                          int out_len) {
    GRID_STRIDE(o, (long long)planes * out_len) {
        const long long p = o / out_len;
        const int i = (int)(o - p * out_len);
        const float* xp = x + p * in_len;
        float acc = -0.f;
        // Rounded product, then sum: nvcc would contract `acc += w * x` into an FMA, which
        // rounds once and so differs from the CPU op in the last bit.
        for (int t = off[i]; t < off[i + 1]; ++t) acc = __fadd_rn(acc, __fmul_rn(w[t], xp[src[t]]));
        y[o] = acc;
    }
}

// ---- bf16 operands of the mixed-precision products ----------------------------------------------
//
// y = bf16(x), round to nearest even (NaN stays NaN): the operands of the bf16 GEMM and
// convolution kernels, made from the f32 tensors (master weights and activations stay f32).
__global__ void f32_to_bf16(const float* __restrict__ x, __nv_bfloat16* __restrict__ y, long long n) {
    GRID_STRIDE(i, n) y[i] = __float2bfloat16_rn(x[i]);
}
}
