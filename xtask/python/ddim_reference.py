"""Independent NumPy float64 references for the DDIM's ops and its diffusion arithmetic.

Run directly (NumPy only):
    python3 xtask/python/ddim_reference.py .
from the repository root. Writes two small JSON files:

* crates/bioautograd/tests/fixtures/ddim_ops.json: group norm, nearest / bilinear upsampling,
  swish and mean absolute error, forward and the vector-Jacobian products d(sum(y*g))/d input,
  from their closed forms (bilinear as TensorFlow computes its interpolation weights:
  lower = max(floor(s), 0), upper = min(ceil(s), size-1), lerp = s - floor(s), with
  s = (i + 0.5)/factor - 0.5; the resize is the matrix product A_h x A_w^T).
* crates/biolayers/tests/fixtures/ddim_attention.json: upstream's self-attention block (the
  Keras DDPM example's `AttentionBlock`, channels last, written here with einsum as upstream):
  x_hat = GroupNorm(x); q, k, v = Dense(x_hat); A = softmax(einsum(q, k) / sqrt(units)) over
  the h*w positions; y = x_hat + Dense(einsum(A, v)); inputs, weights (Dense kernels (in, out))
  and output in float64, the output NCHW as our layer computes it.
* crates/bioexperiments/tests/fixtures/ddim_schedule.json: the Keras DDIM example's cosine
  `diffusion_schedule` at a few times, one `reverse_diffusion` step (the DDIM update, eta = 0)
  for given noisy images and predicted noises, and the sinusoidal noise embedding.

Each array is {"shape": [...], "data": [...]} (C order).
"""
import json
import math
import os
import sys

import numpy as np

RNG = np.random.RandomState(20261203)


def arr(a):
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": a.reshape(-1).tolist()}


def group_norm(x, gamma, beta, groups, eps, g):
    n, c, h, w = x.shape
    xg = x.reshape(n, groups, -1)
    mu = xg.mean(axis=2, keepdims=True)
    var = xg.var(axis=2, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = ((xg - mu) * inv).reshape(x.shape)
    y = gamma[None, :, None, None] * xhat + beta[None, :, None, None]
    dxhat = (g * gamma[None, :, None, None]).reshape(n, groups, -1)
    xh = xhat.reshape(n, groups, -1)
    m = xg.shape[2]
    dx = inv / m * (m * dxhat - dxhat.sum(axis=2, keepdims=True) - xh * (dxhat * xh).sum(axis=2, keepdims=True))
    dgamma = (g * xhat).sum(axis=(0, 2, 3))
    dbeta = g.sum(axis=(0, 2, 3))
    return y, [dx.reshape(x.shape), dgamma, dbeta]


def resize_matrix(size, factor, bilinear):
    out = size * factor
    a = np.zeros((out, size))
    for i in range(out):
        if not bilinear:
            a[i, i // factor] = 1.0
            continue
        s = (i + 0.5) / factor - 0.5
        lo = max(math.floor(s), 0)
        hi = min(math.ceil(s), size - 1)
        lerp = s - math.floor(s)
        a[i, lo] += 1.0 - lerp
        a[i, hi] += lerp
    return a


def op_cases():
    cases = []

    def emit(name, op, params, inputs, out, grads, g):
        cases.append({
            "name": name, "op": op, "params": params,
            "inputs": [arr(v) for v in inputs], "upstream": arr(g),
            "output": arr(out), "grads": [arr(v) for v in grads],
        })

    for groups in (2, 4):
        x = RNG.standard_normal((2, 4, 3, 3)) * 2.0 + 0.5
        gamma = RNG.standard_normal(4)
        beta = RNG.standard_normal(4)
        g = RNG.standard_normal(x.shape)
        y, grads = group_norm(x, gamma, beta, groups, 1e-3, g)
        emit(f"group_norm_{groups}", "group_norm", {"groups": groups, "eps": 1e-3}, [x, gamma, beta], y, grads, g)

    for interp, (fh, fw) in (("nearest", (2, 2)), ("bilinear", (2, 2)), ("bilinear", (3, 2))):
        x = RNG.standard_normal((2, 2, 3, 4))
        ah = resize_matrix(3, fh, interp == "bilinear")
        aw = resize_matrix(4, fw, interp == "bilinear")
        y = np.einsum("ih,nchw,jw->ncij", ah, x, aw)
        g = RNG.standard_normal(y.shape)
        dx = np.einsum("ih,ncij,jw->nchw", ah, g, aw)
        emit(f"upsample_{interp}_{fh}{fw}", "upsample2d", {"interp": interp, "factor": [fh, fw]}, [x], y, [dx], g)

    x = RNG.standard_normal((3, 4)) * 3.0
    s = 1.0 / (1.0 + np.exp(-x))
    g = RNG.standard_normal(x.shape)
    emit("swish", "swish", {}, [x], x * s, [g * (s + x * s * (1 - s))], g)

    a = RNG.standard_normal((2, 3, 2))
    b = RNG.standard_normal((2, 3, 2))
    g = np.array(RNG.standard_normal())
    da = g * np.sign(a - b) / a.size
    emit("mae", "mae", {}, [a, b], np.abs(a - b).mean(), [da, -da], g)
    return cases


MIN_SIGNAL_RATE = 0.02
MAX_SIGNAL_RATE = 0.95


def diffusion_schedule(t):
    start = math.acos(MAX_SIGNAL_RATE)
    end = math.acos(MIN_SIGNAL_RATE)
    angles = start + t * (end - start)
    return np.sin(angles), np.cos(angles)


def sinusoidal_embedding(v, dims=32, min_freq=1.0, max_freq=1000.0):
    freqs = np.exp(np.linspace(math.log(min_freq), math.log(max_freq), dims // 2))
    speeds = 2.0 * math.pi * freqs
    return np.concatenate([np.sin(speeds * v), np.cos(speeds * v)])


def schedule_cases():
    times = np.array([0.0, 0.05, 0.3, 0.5, 0.95, 1.0])
    noise_rates, signal_rates = diffusion_schedule(times)
    steps = 5
    step = 2  # the third step of five: diffusion time 1 - 2/5
    t = 1.0 - step / steps
    noisy = RNG.standard_normal((2, 3, 2, 2))
    pred_noises = RNG.standard_normal(noisy.shape)
    nr, sr = diffusion_schedule(t)
    pred_images = (noisy - nr * pred_noises) / sr
    nnr, nsr = diffusion_schedule(t - 1.0 / steps)
    next_noisy = nsr * pred_images + nnr * pred_noises
    variances = np.array([0.0025, 0.3, 0.9])
    return {
        "times": arr(times),
        "noise_rates": arr(noise_rates),
        "signal_rates": arr(signal_rates),
        "ddim_step": {
            "steps": steps, "step": step, "noisy": arr(noisy), "pred_noises": arr(pred_noises),
            "pred_images": arr(pred_images), "next_noisy": arr(next_noisy),
        },
        "embedding": {
            "variances": arr(variances),
            "embeddings": arr(np.stack([sinusoidal_embedding(v) for v in variances])),
        },
    }


def attention_case():
    n, c, h, w, groups, eps = 2, 8, 3, 4, 4, 1e-3
    x = RNG.standard_normal((n, h, w, c))  # channels last, as upstream
    gamma = 1.0 + 0.1 * RNG.standard_normal(c)
    beta = 0.1 * RNG.standard_normal(c)
    dense = {name: (RNG.standard_normal((c, c)) / math.sqrt(c), 0.1 * RNG.standard_normal(c))
             for name in ("query", "key", "value", "proj")}
    # GroupNorm over (h, w, channels of the group), as Keras GroupNormalization.
    xg = x.reshape(n, h, w, groups, c // groups)
    mu = xg.mean(axis=(1, 2, 4), keepdims=True)
    var = xg.var(axis=(1, 2, 4), keepdims=True)
    xn = ((xg - mu) / np.sqrt(var + eps)).reshape(n, h, w, c) * gamma + beta
    q, k, v = (xn @ dense[m][0] + dense[m][1] for m in ("query", "key", "value"))
    scores = np.einsum("bhwc,bHWc->bhwHW", q, k) * c ** -0.5
    scores = scores.reshape(n, h, w, h * w)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    attn = (scores / scores.sum(axis=-1, keepdims=True)).reshape(n, h, w, h, w)
    proj = np.einsum("bhwHW,bHWc->bhwc", attn, v)
    y = xn + (proj @ dense["proj"][0] + dense["proj"][1])
    case = {
        "groups": groups,
        "eps": eps,
        "x": arr(x.transpose(0, 3, 1, 2)),
        "gamma": arr(gamma),
        "beta": arr(beta),
        "y": arr(y.transpose(0, 3, 1, 2)),
    }
    for name, (kernel, bias) in dense.items():
        case[name + "_kernel"] = arr(kernel)
        case[name + "_bias"] = arr(bias)
    return case


def write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    write(os.path.join(root, "crates/bioautograd/tests/fixtures/ddim_ops.json"), {"cases": op_cases()})
    write(os.path.join(root, "crates/bioexperiments/tests/fixtures/ddim_schedule.json"), schedule_cases())
    write(os.path.join(root, "crates/biolayers/tests/fixtures/ddim_attention.json"), attention_case())


if __name__ == "__main__":
    main()
