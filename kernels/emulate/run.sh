#!/usr/bin/env bash
# Runs the CUDA kernels of kernels/ on the CPU (host emulation, no GPU needed) and checks them
# against float64 references. Usage: kernels/emulate/run.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")"
out="${TMPDIR:-/tmp}/emulate_kernels.$$"
trap 'rm -f "$out.gemm" "$out.train"' EXIT
g++ -std=c++17 -O2 -Wall -Wno-unknown-pragmas -Wno-unused-function -o "$out.train" emulate_train.cpp
g++ -std=c++17 -O2 -Wall -Wno-unknown-pragmas -Wno-unused-function -o "$out.gemm" emulate_masked_gemm.cpp
"$out.train"
"$out.gemm" "$@"
