// Training kernels beside the masked GEMM/conv: activations, bias add and bias gradients, the
// fused softmax cross-entropy (loss and gradient), and the Adam / RMSprop steps in the Keras and
// PyTorch conventions of biolayers::optim (same formulas, same f32 operation order).
//
// All are f32, 1-D launches of 256 threads unless stated; sizes are ints (the wrappers check).

#ifdef KERNELS_HOST_EMULATION
#include "../emulate/host_emulation.h"
#else
#include <stdint.h>
#endif

#define NT 256

extern "C" {

// y = max(x, 0)
__global__ void relu_fwd(const float* __restrict__ x, float* __restrict__ y, int n) {
    int i = blockIdx.x * NT + threadIdx.x;
    if (i < n) y[i] = x[i] > 0.f ? x[i] : 0.f;
}

// dx = dy where x > 0, else 0
__global__ void relu_bwd(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dx, int n) {
    int i = blockIdx.x * NT + threadIdx.x;
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
    int c = blockIdx.x * NT + threadIdx.x;
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
    int r = blockIdx.x * NT + threadIdx.x;
    if (r >= rows) return;
    const float* zr = z + (size_t)r * classes;
    float mx = zr[0];
    for (int j = 1; j < classes; ++j) mx = fmaxf(mx, zr[j]);
    float sum = 0.f;
    for (int j = 0; j < classes; ++j) sum += expf(zr[j] - mx);
    const int label = (int)labels[r];
    const float lse = logf(sum) + mx;
    loss[r] = lse - zr[label];
    float* dr = dz + (size_t)r * classes;
    for (int j = 0; j < classes; ++j) dr[j] = (expf(zr[j] - mx) / sum - (j == label ? 1.f : 0.f)) * grad_scale;
}

// Adam, one step. Keras (torch = 0): w -= step * m / (sqrt(v) + eps), step = lr*sqrt(1-b2^t)/(1-b1^t).
// PyTorch (torch = 1): w -= step * m / (sqrt(v) / bc2_sqrt + eps), step = lr/(1-b1^t);
// wd > 0 adds PyTorch's coupled L2 term to the gradient first.
__global__ void adam_step(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m,
                          float* __restrict__ v, int n, float b1, float b2, float eps, float step, float bc2_sqrt,
                          int torch, float wd) {
    int i = blockIdx.x * NT + threadIdx.x;
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
    int i = blockIdx.x * NT + threadIdx.x;
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
}
