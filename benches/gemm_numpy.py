"""Dense f32 GEMM timings of NumPy (its BLAS, OpenBLAS in the pip wheels) on given shapes.

Usage: python benches/gemm_numpy.py --shapes 2048x2048x2048,256x2304x512 --json out.json
[--warmup 2 --reps 7]. The thread count is the BLAS's (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS);
benches/gemm_vs_openblas.sh sets it and unsets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE.
"""
import argparse
import json
import time

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=7)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    out = []
    for text in a.shapes.split(","):
        m, k, n = (int(v) for v in text.split("x"))
        x = rng.uniform(-1, 1, (m, k)).astype(np.float32)
        w = rng.uniform(-1, 1, (k, n)).astype(np.float32)
        y = np.empty((m, n), np.float32)
        for _ in range(a.warmup):
            np.matmul(x, w, out=y)
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            np.matmul(x, w, out=y)
            times.append(time.perf_counter() - t0)
        med = sorted(times)[len(times) // 2]
        rec = {"m": m, "k": k, "n": n, "median_s": med, "gflops": 2 * m * k * n / med / 1e9}
        print(f"  numpy {text:<18} {med * 1e3:9.3f} ms {rec['gflops']:7.1f} GFLOP/s", flush=True)
        out.append(rec)
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
