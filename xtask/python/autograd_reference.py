"""Independent NumPy float64 references for every bioautograd op, forward and backward.

Run through `cargo xtask validate` (or directly:
`python3 xtask/python/autograd_reference.py crates/bioautograd/tests/fixtures`).

Each op's forward and its input gradients are written here from their closed forms (explicit
vectorised NumPy formulas, e.g. batch-norm's dx from its textbook expression, broadcasting
gradients by summing over broadcast axes), not by transcribing the Rust loops. For every case
the script draws the inputs and an upstream gradient `g` and stores the output `y` and the
vector-Jacobian products `d(sum(y * g))/d input`.

Writes OUT_DIR/manifest.json and OUT_DIR/<case>__<name>.npy (float64, C order). A manifest
case is
  {"name", "op", "params": {...}, "inputs": [file, ...], "upstream": file, "output": file,
   "grads": [file, ...], "aux": {name: file}, "expect": {name: file}}
`inputs` are differentiable (their gradients are in `grads`, same order); `aux` are
non-differentiable arrays (masks, initial running statistics); `expect` are further expected
arrays (updated running statistics).
"""
import json
import os
import sys

import numpy as np

RNG = np.random.RandomState(20261123)
CASES = []
OUT = None


def save(case, name, arr):
    fname = f"{case}__{name}.npy"
    np.save(os.path.join(OUT, fname), np.array(arr, dtype=np.float64, order="C"))
    return fname


def emit(name, op, params, inputs, out, grads, aux=None, expect=None, upstream=None):
    """inputs: list of (name, array); grads: list of arrays (same order)."""
    assert len(inputs) == len(grads)
    case = {
        "name": name,
        "op": op,
        "params": params,
        "inputs": [save(name, n, a) for n, a in inputs],
        "upstream": save(name, "upstream", upstream),
        "output": save(name, "output", out),
        "grads": [save(name, "grad_" + n, gr) for (n, _), gr in zip(inputs, grads)],
        "aux": {k: save(name, k, v) for k, v in (aux or {}).items()},
        "expect": {k: save(name, k, v) for k, v in (expect or {}).items()},
    }
    CASES.append(case)


def randn(*shape):
    return RNG.standard_normal(shape)


def away_from_zero(*shape, lo=0.5, hi=2.0):
    return RNG.uniform(lo, hi, shape) * np.where(RNG.random_sample(shape) < 0.5, -1.0, 1.0)


def unbroadcast(grad, shape):
    """Sum a gradient of the broadcast shape back to `shape`."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for ax, d in enumerate(shape):
        if d == 1 and grad.shape[ax] != 1:
            grad = grad.sum(axis=ax, keepdims=True)
    return grad


# ------------------------------------------------------------------------------- products

def matmul_cases():
    x, w = randn(3, 4), randn(4, 5)
    g = randn(3, 5)
    emit("matmul", "matmul", {}, [("x", x), ("w", w)], x @ w, [g @ w.T, x.T @ g], upstream=g)

    # A mask with a full 16x16 tile, an empty one and partial ones (CPU tile = 16).
    k, n = 40, 36
    mask = (RNG.random_sample((k, n)) < 0.5).astype(np.float64)
    mask[:16, :16] = 1.0
    mask[16:32, 16:32] = 0.0
    x, w = randn(3, k), randn(k, n)
    g = randn(3, n)
    wm = w * mask
    emit("masked_matmul", "masked_matmul", {}, [("x", x), ("w", w)], x @ wm,
         [g @ wm.T, (x.T @ g) * mask], aux={"mask": mask}, upstream=g)


# ------------------------------------------------------------------------------ broadcast

def binary_cases():
    shapes = [((2, 3, 4), (3, 1)), ((4, 1), (1, 5)), ((2, 3), (2, 3))]
    for op in ["add", "sub", "mul", "div"]:
        for i, (sa, sb) in enumerate(shapes):
            a = randn(*sa)
            b = away_from_zero(*sb) if op == "div" else randn(*sb)
            if op == "add":
                y, da, db = a + b, 1.0, 1.0
            elif op == "sub":
                y, da, db = a - b, 1.0, -1.0
            elif op == "mul":
                y, da, db = a * b, b, a
            else:
                y, da, db = a / b, 1.0 / b, -a / b ** 2
            g = randn(*y.shape)
            emit(f"{op}_{i}", op, {}, [("a", a), ("b", b)], y,
                 [unbroadcast(g * da, sa), unbroadcast(g * db, sb)], upstream=g)


# ---------------------------------------------------------------------------- reductions

def reduce_cases():
    x = randn(2, 3, 4)
    g = randn()
    emit("sum", "sum", {}, [("x", x)], x.sum(), [np.full(x.shape, g)], upstream=g)
    emit("mean", "mean", {}, [("x", x)], x.mean(), [np.full(x.shape, g / x.size)], upstream=g)
    for axis in range(3):
        for keep in [True, False]:
            for op in ["sum_axis", "mean_axis"]:
                y = x.sum(axis=axis, keepdims=keep)
                if op == "mean_axis":
                    y = y / x.shape[axis]
                g = randn(*y.shape)
                gk = g if keep else np.expand_dims(g, axis)
                dx = np.broadcast_to(gk, x.shape) / (x.shape[axis] if op == "mean_axis" else 1)
                emit(f"{op}_{axis}_{int(keep)}", op, {"axis": axis, "keepdim": keep}, [("x", x)], y,
                     [dx], upstream=g)


# ---------------------------------------------------------------------------- shape ops

def shape_cases():
    x = randn(2, 3, 4)
    g = randn(4, 6)
    emit("reshape", "reshape", {"shape": [4, 6]}, [("x", x)], x.reshape(4, 6), [g.reshape(x.shape)], upstream=g)
    x = randn(2, 3, 2, 2)
    g = randn(2, 12)
    emit("flatten", "flatten", {}, [("x", x)], x.reshape(2, 12), [g.reshape(x.shape)], upstream=g)
    for axis in range(3):
        parts = []
        for length in [1, 3, 2]:
            s = [2, 3, 4]
            s[axis] = length
            parts.append(randn(*s))
        y = np.concatenate(parts, axis=axis)
        g = randn(*y.shape)
        cuts = np.cumsum([p.shape[axis] for p in parts])[:-1]
        emit(f"concat_{axis}", "concat", {"axis": axis}, [(f"x{i}", p) for i, p in enumerate(parts)], y,
             np.split(g, cuts, axis=axis), upstream=g)
    x = randn(3, 5, 4)
    for axis, (s, e) in [(0, (1, 3)), (1, (2, 5)), (2, (0, 1))]:
        idx = [slice(None)] * 3
        idx[axis] = slice(s, e)
        y = x[tuple(idx)]
        g = randn(*y.shape)
        dx = np.zeros_like(x)
        dx[tuple(idx)] = g
        emit(f"slice_{axis}", "slice", {"axis": axis, "start": s, "end": e}, [("x", x)], y, [dx], upstream=g)
    x = randn(2, 3, 4)
    for a, b in [(0, 1), (0, 2), (1, 2), (2, 2)]:
        y = np.swapaxes(x, a, b)
        g = randn(*y.shape)
        emit(f"transpose_{a}{b}", "transpose", {"a": a, "b": b}, [("x", x)], y, [np.swapaxes(g, a, b)], upstream=g)


# --------------------------------------------------------------------------- activations

def activation_cases():
    x = randn(3, 7) * 2.0
    x[0, :3] = [30.0, -30.0, -50.0]
    g = randn(*x.shape)
    emit("relu", "relu", {}, [("x", x)], np.maximum(x, 0), [g * (x > 0)], upstream=g)
    a = 0.1
    emit("leaky_relu", "leaky_relu", {"alpha": a}, [("x", x)], np.where(x > 0, x, a * x),
         [g * np.where(x > 0, 1.0, a)], upstream=g)
    t = np.tanh(x)
    emit("tanh", "tanh", {}, [("x", x)], t, [g / np.cosh(x) ** 2], upstream=g)
    s = 0.5 * (1.0 + np.tanh(x / 2.0))   # an independent closed form of the logistic function
    emit("sigmoid", "sigmoid", {}, [("x", x)], s, [g * np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))) ** 2],
         upstream=g)


def softmax_np(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_cases():
    for i, shape in enumerate([(3, 5), (2, 2, 4)]):
        x = randn(*shape) * 3.0
        x.reshape(-1)[0] = 100.0   # stability: would overflow exp without the max shift
        g = randn(*shape)
        p = softmax_np(x)
        # Jacobian-vector products from the full Jacobian diag(p) - p pᵀ, row by row.
        pr, gr = p.reshape(-1, shape[-1]), g.reshape(-1, shape[-1])
        dsm = np.stack([(np.diag(pi) - np.outer(pi, pi)) @ gi for pi, gi in zip(pr, gr)]).reshape(shape)
        emit(f"softmax_{i}", "softmax", {}, [("x", x)], p, [dsm], upstream=g)
        # log_softmax Jacobian: I - 1 pᵀ  (row i: e_i - p), so dx = g - p Σ g.
        dls = np.stack([(np.eye(len(pi)) - np.outer(np.ones_like(pi), pi)).T @ gi for pi, gi in zip(pr, gr)])
        emit(f"log_softmax_{i}", "log_softmax", {}, [("x", x)], np.log(p), [dls.reshape(shape)], upstream=g)


# -------------------------------------------------------------------------------- losses

def loss_cases():
    n, c = 4, 5
    z = randn(n, c) * 2.0
    labels = RNG.randint(0, c, n)
    onehot = np.eye(c)[labels]
    p = softmax_np(z)
    g = randn()
    loss = -np.mean(np.log(p[np.arange(n), labels]))
    emit("cross_entropy", "cross_entropy", {"labels": labels.tolist()}, [("z", z)], loss,
         [(p - onehot) * g / n], upstream=g)
    t = onehot.copy()
    emit("cross_entropy_one_hot", "cross_entropy_one_hot", {}, [("z", z), ("t", t)],
         -np.sum(t * np.log(p)) / n, [(p * t.sum(axis=1, keepdims=True) - t) * g / n, -np.log(p) * g / n],
         upstream=g)
    q = np.log(softmax_np(randn(n, c)))
    dq = np.zeros_like(q)
    dq[np.arange(n), labels] = -g / n
    emit("nll", "nll", {"labels": labels.tolist()}, [("q", q)], -np.mean(q[np.arange(n), labels]), [dq], upstream=g)
    a, b = randn(3, 4), randn(3, 4)
    emit("mse", "mse", {}, [("a", a), ("b", b)], np.mean((a - b) ** 2),
         [2 * (a - b) * g / a.size, -2 * (a - b) * g / a.size], upstream=g)


# ---------------------------------------------------------------------- GAN losses (BCE)

KERAS_EPSILON = 1e-7


def gan_cases():
    # Targets with GAN label noise (leave {0, 1}), logits on both sides of 0.
    z = randn(6, 1) * 2.0
    t = np.concatenate([np.ones((3, 1)), np.zeros((3, 1))]) + 0.05 * RNG.random_sample((6, 1))
    g = randn()
    n = z.size
    sig = 1.0 / (1.0 + np.exp(-z))
    loss = np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))
    emit("binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits", {}, [("z", z), ("t", t)], loss,
         [(sig - t) * g / n, -z * g / n], upstream=g)
    # Probabilities inside (eps, 1 - eps), plus one clipped at the low end (zero gradient there;
    # the high end 1 - 1e-7 is not representable in float32, where the test runs).
    p = 1.0 / (1.0 + np.exp(-randn(2, 4)))
    p[0, 0] = 1e-9
    t = RNG.random_sample((2, 4))
    q = np.clip(p, KERAS_EPSILON, 1 - KERAS_EPSILON)
    inside = (p > KERAS_EPSILON) & (p < 1 - KERAS_EPSILON)
    loss = -np.mean(t * np.log(q) + (1 - t) * np.log(1 - q))
    dp = np.where(inside, -(t / p - (1 - t) / (1 - p)), 0.0) * g / p.size
    dt = -(np.log(q) - np.log(1 - q)) * g / p.size
    emit("binary_cross_entropy", "binary_cross_entropy", {"eps": KERAS_EPSILON}, [("p", p), ("t", t)], loss,
         [dp, dt], upstream=g)


def spectral_norm_cases():
    """Keras SpectralNormalization.normalize_weights, one power iteration: a conv kernel
    (kh, kw, cin, cout) as a (kh*kw*cin, cout) matrix, u (1, cout)."""
    out = []
    for name, shape, iters in [("sn_conv_1", (4, 4, 3, 8), 1), ("sn_conv_50", (3, 3, 4, 6), 50)]:
        w = randn(*shape).reshape(-1, shape[-1])
        u = randn(1, shape[-1]) * 0.02

        def normalize(x):
            return x / np.sqrt(max(np.sum(x * x), KERAS_EPSILON))

        uu = u
        for _ in range(iters):
            v = normalize(uu @ w.T)
            uu = normalize(v @ w)
        sigma = (v @ w @ uu.T).item()
        out.append({"name": name, "rows": w.shape[0], "cols": w.shape[1], "iterations": iters,
                    "w": save(name, "w", w), "u": save(name, "u", u), "u_new": save(name, "u_new", uu),
                    "v": save(name, "v", v), "sigma": sigma,
                    "largest_singular_value": float(np.linalg.svd(w, compute_uv=False)[0])})
    return out


# ------------------------------------------------------------------------------- pooling

def windows(xp, kh, kw, sh, sw):
    """(n, c, oh, ow, kh, kw) view of the padded input."""
    n, c, h, w = xp.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    s = xp.strides
    return np.lib.stride_tricks.as_strided(xp, (n, c, oh, ow, kh, kw),
                                           (s[0], s[1], s[2] * sh, s[3] * sw, s[2], s[3]))


def pool_cases():
    configs = [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (1, 0))]
    for i, (k, st, pd) in enumerate(configs):
        x = randn(2, 3, 6, 7)
        (kh, kw), (sh, sw), (ph, pw) = k, st, pd
        params = {"kernel": list(k), "stride": list(st), "padding": list(pd)}
        # max: pad with -inf; gradient through a one-hot of the window argmax.
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
        win = windows(xp, kh, kw, sh, sw)
        y = win.max(axis=(4, 5))
        g = randn(*y.shape)
        flat = win.reshape(*win.shape[:4], -1)
        am = flat.argmax(axis=-1)
        dxp = np.zeros_like(xp)
        n, c, oh, ow = y.shape
        for b in range(n):
            for ch in range(c):
                for r in range(oh):
                    for q in range(ow):
                        a = am[b, ch, r, q]
                        dxp[b, ch, r * sh + a // kw, q * sw + a % kw] += g[b, ch, r, q]
        dx = dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]
        emit(f"max_pool2d_{i}", "max_pool2d", params, [("x", x)], y, [dx], upstream=g)
        # avg: zero padding counted in the divisor; gradient = transposed (adjoint) window sum.
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        win = windows(xp, kh, kw, sh, sw)
        y = win.mean(axis=(4, 5))
        g = randn(*y.shape)
        dxp = np.zeros_like(xp)
        for di in range(kh):
            for dj in range(kw):
                dxp[:, :, di:di + sh * (oh - 1) + 1:sh, dj:dj + sw * (ow - 1) + 1:sw] += g / (kh * kw)
        dx = dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]
        emit(f"avg_pool2d_{i}", "avg_pool2d", params, [("x", x)], y, [dx], upstream=g)


# ------------------------------------------------------------------------------- dropout

def dropout_cases():
    x = randn(4, 6)
    for name, p, seed, train in [("dropout_train", 0.3, 7, True), ("dropout_train_p05", 0.5, 11, True),
                                 ("dropout_eval", 0.3, 7, False)]:
        if train:
            u = np.random.RandomState(seed).random_sample(x.shape)
            factor = (u < 1.0 - p) / (1.0 - p)
        else:
            factor = np.ones_like(x)
        g = randn(*x.shape)
        emit(name, "dropout", {"p": p, "seed": seed, "train": train}, [("x", x)], x * factor, [g * factor],
             upstream=g)


# ---------------------------------------------------------------------------- batch-norm

def batch_norm_cases():
    n, c, h, w = 3, 2, 4, 3
    x = randn(n, c, h, w) * 2.0 + 1.5
    gamma, beta = randn(c), randn(c)
    rm, rv = randn(c) * 0.1, RNG.uniform(0.5, 1.5, c)
    momentum, eps = 0.1, 1e-5
    params = {"momentum": momentum, "eps": eps}
    sh = (1, c, 1, 1)
    # train
    mu = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    m = n * h * w
    xhat = (x - mu.reshape(sh)) / np.sqrt(var.reshape(sh) + eps)
    y = gamma.reshape(sh) * xhat + beta.reshape(sh)
    g = randn(*x.shape)
    # dx via the chain rule through μ and σ² written out term by term.
    dxhat = g * gamma.reshape(sh)
    inv = 1.0 / np.sqrt(var + eps)
    dvar = np.sum(dxhat * (x - mu.reshape(sh)), axis=(0, 2, 3)) * -0.5 * inv ** 3
    dmu = np.sum(-dxhat * inv.reshape(sh), axis=(0, 2, 3)) + dvar * np.mean(-2.0 * (x - mu.reshape(sh)), axis=(0, 2, 3))
    dx = dxhat * inv.reshape(sh) + (dvar.reshape(sh) * 2.0 * (x - mu.reshape(sh)) + dmu.reshape(sh)) / m
    emit("batch_norm2d_train", "batch_norm2d", dict(params, train=True),
         [("x", x), ("gamma", gamma), ("beta", beta)], y,
         [dx, np.sum(g * xhat, axis=(0, 2, 3)), np.sum(g, axis=(0, 2, 3))],
         aux={"running_mean": rm, "running_var": rv},
         expect={"new_running_mean": (1 - momentum) * rm + momentum * mu,
                 "new_running_var": (1 - momentum) * rv + momentum * x.var(axis=(0, 2, 3), ddof=1)},
         upstream=g)
    # eval
    xhat = (x - rm.reshape(sh)) / np.sqrt(rv.reshape(sh) + eps)
    y = gamma.reshape(sh) * xhat + beta.reshape(sh)
    g = randn(*x.shape)
    emit("batch_norm2d_eval", "batch_norm2d", dict(params, train=False),
         [("x", x), ("gamma", gamma), ("beta", beta)], y,
         [g * (gamma / np.sqrt(rv + eps)).reshape(sh), np.sum(g * xhat, axis=(0, 2, 3)), np.sum(g, axis=(0, 2, 3))],
         aux={"running_mean": rm, "running_var": rv},
         expect={"new_running_mean": rm, "new_running_var": rv},
         upstream=g)


# ------------------------------------------------------------------------------ conv

def conv_pads(pad, size, k, s, d):
    """(begin, end, out) of one axis of a convolution (Keras "same" puts the odd pixel last)."""
    keff = d * (k - 1) + 1
    if pad == "valid":
        return 0, 0, (size - keff) // s + 1
    if pad == "same":
        out = -(-size // s)
        total = max((out - 1) * s + keff - size, 0)
        return total // 2, total - total // 2, out
    b, e = pad
    return b, e, (size + b + e - keff) // s + 1


def conv_np(x, w, m, stride, pad_hw, dil, groups):
    """Forward, and a closure giving (dx, dw) for an upstream dy; w (kh, kw, Cin/G, Cout)."""
    n, cin, h, wd = x.shape
    kh, kw, cg, cout = w.shape
    og = cout // groups
    (sh, sw), (dh, dw_) = stride, dil
    pt, pb, oh = conv_pads(pad_hw[0], h, kh, sh, dh)
    pl, pr, ow = conv_pads(pad_hw[1], wd, kw, sw, dw_)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb + sh), (pl, pr + sw)))
    wm = w * m
    y = np.zeros((n, cout, oh, ow))
    taps = []
    for i in range(kh):
        for j in range(kw):
            rs = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            cs = slice(j * dw_, j * dw_ + sw * (ow - 1) + 1, sw)
            taps.append((i, j, rs, cs))
            for g in range(groups):
                xs = xp[:, g * cg:(g + 1) * cg, rs, cs]
                y[:, g * og:(g + 1) * og] += np.einsum("nchw,co->nohw", xs, wm[i, j, :, g * og:(g + 1) * og])

    def grads(dy):
        dxp = np.zeros_like(xp)
        dw = np.zeros_like(w)
        for i, j, rs, cs in taps:
            for g in range(groups):
                dyg = dy[:, g * og:(g + 1) * og]
                dxp[:, g * cg:(g + 1) * cg, rs, cs] += np.einsum("nohw,co->nchw", dyg, wm[i, j, :, g * og:(g + 1) * og])
                dw[i, j, :, g * og:(g + 1) * og] = np.einsum("nchw,nohw->co", xp[:, g * cg:(g + 1) * cg, rs, cs], dyg)
        return dxp[:, :, pt:pt + h, pl:pl + wd], dw * m

    return y, grads


def conv_transpose_np(x, w, m, stride, pad, out_pad, dil, groups):
    """PyTorch ConvTranspose2d with symmetric explicit padding; w (kh, kw, Cout/G, Cin)."""
    n, cin, h, wd = x.shape
    kh, kw, og, _ = w.shape
    cout, cg = og * groups, cin // groups
    (sh, sw), (dh, dw_), (ph, pw), (oph, opw) = stride, dil, pad, out_pad
    full_h, full_w = (h - 1) * sh + dh * (kh - 1) + 1 + oph, (wd - 1) * sw + dw_ * (kw - 1) + 1 + opw
    oh, ow = full_h - 2 * ph, full_w - 2 * pw
    wm = w * m
    yf = np.zeros((n, cout, full_h + sh, full_w + sw))
    taps = []
    for i in range(kh):
        for j in range(kw):
            rs = slice(i * dh, i * dh + sh * (h - 1) + 1, sh)
            cs = slice(j * dw_, j * dw_ + sw * (wd - 1) + 1, sw)
            taps.append((i, j, rs, cs))
            for g in range(groups):
                yf[:, g * og:(g + 1) * og, rs, cs] += np.einsum("nqhw,cq->nchw", x[:, g * cg:(g + 1) * cg],
                                                               wm[i, j, :, g * cg:(g + 1) * cg])
    y = yf[:, :, ph:ph + oh, pw:pw + ow]

    def grads(dy):
        dyf = np.zeros_like(yf)
        dyf[:, :, ph:ph + oh, pw:pw + ow] = dy
        dx = np.zeros_like(x)
        dw = np.zeros_like(w)
        for i, j, rs, cs in taps:
            for g in range(groups):
                d = dyf[:, g * og:(g + 1) * og, rs, cs]
                dx[:, g * cg:(g + 1) * cg] += np.einsum("nchw,cq->nqhw", d, wm[i, j, :, g * cg:(g + 1) * cg])
                dw[i, j, :, g * cg:(g + 1) * cg] = np.einsum("nchw,nqhw->cq", d, x[:, g * cg:(g + 1) * cg])
        return dx, dw * m

    return y, grads


def conv_cases():
    conv = [
        # name, x shape, w shape, stride, padding (per axis), dilation, groups, masked, bias
        ("conv2d_valid", (2, 3, 6, 5), (3, 3, 3, 4), (1, 1), ("valid", "valid"), (1, 1), 1, False, True),
        ("conv2d_same_stride2", (2, 3, 7, 6), (3, 3, 3, 4), (2, 2), ("same", "same"), (1, 1), 1, False, True),
        ("conv2d_groups_dilation", (1, 4, 7, 7), (3, 2, 2, 6), (1, 2), ((1, 2), (0, 1)), (2, 1), 2, False, False),
        ("conv2d_masked", (2, 4, 5, 5), (3, 3, 4, 6), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, True, True),
    ]
    for name, xs, ws, st, pad, dil, groups, masked, bias in conv:
        x, w = randn(*xs), randn(*ws)
        m = (RNG.random_sample(ws) < 0.5).astype(np.float64) if masked else np.ones(ws)
        y, grads = conv_np(x, w, m, st, pad, dil, groups)
        inputs = [("x", x), ("w", w)]
        if bias:
            b = randn(ws[3])
            y = y + b[None, :, None, None]
            inputs.append(("b", b))
        g = randn(*y.shape)
        dx, dw = grads(g)
        gr = [dx, dw] + ([g.sum(axis=(0, 2, 3))] if bias else [])
        params = {"stride": list(st), "padding": [p if isinstance(p, str) else list(p) for p in pad],
                  "dilation": list(dil), "groups": groups, "output_padding": [0, 0], "bias": bias}
        emit(name, "conv2d", params, inputs, y, gr, aux={"mask": m} if masked else {}, upstream=g)
    tconv = [
        ("conv_transpose2d", (2, 4, 4, 3), (3, 3, 3, 4), (2, 2), (1, 1), (1, 1), (1, 1), 1, False, True),
        ("conv_transpose2d_masked_groups", (1, 4, 3, 3), (2, 2, 3, 4), (2, 1), (0, 0), (0, 0), (1, 1), 2, True, True),
        ("conv_transpose2d_dilation", (1, 2, 3, 4), (2, 3, 2, 2), (1, 2), (1, 0), (0, 1), (2, 1), 1, False, False),
    ]
    for name, xs, ws, st, pad, opad, dil, groups, masked, bias in tconv:
        x, w = randn(*xs), randn(*ws)
        m = (RNG.random_sample(ws) < 0.5).astype(np.float64) if masked else np.ones(ws)
        y, grads = conv_transpose_np(x, w, m, st, pad, opad, dil, groups)
        inputs = [("x", x), ("w", w)]
        if bias:
            b = randn(ws[2] * groups)
            y = y + b[None, :, None, None]
            inputs.append(("b", b))
        g = randn(*y.shape)
        dx, dw = grads(g)
        gr = [dx, dw] + ([g.sum(axis=(0, 2, 3))] if bias else [])
        params = {"stride": list(st), "padding": [[pad[0], pad[0]], [pad[1], pad[1]]], "dilation": list(dil),
                  "groups": groups, "output_padding": list(opad), "bias": bias}
        emit(name, "conv_transpose2d", params, inputs, y, gr, aux={"mask": m} if masked else {}, upstream=g)


def main():
    global OUT
    if len(sys.argv) != 2:
        sys.exit("usage: autograd_reference.py OUT_DIR")
    OUT = sys.argv[1]
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".npy") or f == "manifest.json":
            os.remove(os.path.join(OUT, f))
    for gen in [matmul_cases, binary_cases, reduce_cases, shape_cases, activation_cases, softmax_cases,
                loss_cases, pool_cases, dropout_cases, batch_norm_cases, conv_cases, gan_cases]:
        gen()
    spectral_norm = spectral_norm_cases()
    tmp = os.path.join(OUT, ".manifest.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"generator": "xtask/python/autograd_reference.py", "numpy": np.__version__,
                   "cases": CASES, "spectral_norm": spectral_norm}, f, indent=1)
        f.write("\n")
    os.replace(tmp, os.path.join(OUT, "manifest.json"))
    print(f"wrote {len(CASES)} cases to {OUT}")


if __name__ == "__main__":
    main()
