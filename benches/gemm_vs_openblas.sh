#!/usr/bin/env bash
# Dense f32 GEMM, ours (`xtask bench-kernels --cpu --forward-only`) against NumPy's OpenBLAS, side by
# side in one run at 1 and 2 threads, on 2048³, the paper's SzDense (256×2304×512) and the paper
# CNN's im2col products (batch 32: 32768×288×32, 8192×288×64, 8192×576×64); also our diagonal
# r = 0.5 masked forward against OpenBLAS's dense time (issue 17: dense ≥ OpenBLAS, masked
# r = 0.5 ≥ 1.9× OpenBLAS on 2048³). OpenBLAS runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
# unset (this machine sets them, which halves OpenBLAS on AVX-512).
# Usage: VENV=/path/to/venv-with-numpy bash benches/gemm_vs_openblas.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv-torch}
out=${OUT:-target/bench-gemm}
shapes=${SHAPES:-2048x2048x2048,256x2304x512,32768x288x32,8192x288x64,8192x576x64}
quick=()
reps=(--warmup 2 --reps 7)
if [ "${1:-}" = "--quick" ]; then
    quick=(--quick)
    reps=(--warmup 1 --reps 3)
fi
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet numpy
fi
mkdir -p "$out"
cargo build --release -q -p xtask
grep -m1 "model name" /proc/cpuinfo
for t in 1 2; do
    echo "== $t thread(s)"
    RAYON_NUM_THREADS=$t ./target/release/xtask bench-kernels --cpu --forward-only "${quick[@]}" \
        --shapes "$shapes" --json "$out/ours_$t.json" >/dev/null
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t \
        "$venv/bin/python" benches/gemm_numpy.py --shapes "$shapes" --json "$out/numpy_$t.json" "${reps[@]}"
done
"$venv/bin/python" - "$out" <<'PY'
import json, sys
out = sys.argv[1]
print("threads | m x k x n | ours dense ms (GFLOP/s) | OpenBLAS ms (GFLOP/s) | OpenBLAS / ours | ours diagonal r=0.5 ms | OpenBLAS dense / ours r=0.5")
print("---|---|---|---|---|---|---")
for t in (1, 2):
    ours = json.load(open(f"{out}/ours_{t}.json"))
    blas = json.load(open(f"{out}/numpy_{t}.json"))
    for b in blas:
        key = (b["m"], b["k"], b["n"])
        dense = next(r for r in ours if (r["m"], r["k"], r["n"]) == key and r["form"] == "full")
        diag = next(r for r in ours if (r["m"], r["k"], r["n"]) == key and r["form"] == "diagonal" and r["param"] == "r=0.5")
        print(f"{t} | {key[0]}x{key[1]}x{key[2]} | {dense['median_s'] * 1e3:.3f} ({2 * key[0] * key[1] * key[2] / dense['median_s'] / 1e9:.0f}) | "
              f"{b['median_s'] * 1e3:.3f} ({b['gflops']:.0f}) | {b['median_s'] / dense['median_s']:.2f}x | "
              f"{diag['median_s'] * 1e3:.3f} | {b['median_s'] / diag['median_s']:.2f}x")
PY
