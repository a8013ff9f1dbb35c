#!/usr/bin/env bash
# The CUDA tests and benchmark on a GPU machine that has no Rust toolchain.
#
#   benches/gpu_run.sh build          # here (CPU machine): release test + xtask binaries with
#                                     # --features cuda, stripped, into target/gpu-bundle/
#   benches/gpu_run.sh run [--quick]  # on the GPU machine (carry target/gpu-bundle): device
#                                     # tests with BIOKERNELS_REQUIRE_CUDA=1 (a missing GPU
#                                     # fails): the kernels, the tape's device ops and the
#                                     # CNN/RNN training steps, each test its own process with
#                                     # a timeout (a table in tests.txt); targeted
#                                     # compute-sanitizer passes when present; then bench-kernels
#                                     # --cuda --json and bench-train --device cuda (f32, tf32, bf16;
#                                     # PyTorch on the GPU beside it when present),
#                                     # then short reproductions on cuda and cpu (timed;
#                                     # DATA=folder adds the image sweeps).
#
# Results (logs and bench_cuda.json) go to $OUT when it is set (the device tool's output
# folder), else to ./gpu-results. See docs/cuda.md for the whole procedure.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=target/gpu-bundle

build() {
    mkdir -p "$BUNDLE"
    cargo test -p biokernels -p bioautograd -p biolayers --features cuda --release --no-run \
        --message-format=json >"$BUNDLE/build.json"
    # The test executables cargo just built: the device tests and the library's unit tests.
    python3 - "$BUNDLE" <<'PY'
import json, shutil, sys
bundle = sys.argv[1]
for line in open(f"{bundle}/build.json"):
    msg = json.loads(line)
    if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
        continue
    name, kinds = msg["target"]["name"], msg["target"]["kind"]
    crate = msg["manifest_path"].replace("\\", "/").split("/")[-2]
    if name == "cuda_device":
        shutil.copy(msg["executable"], f"{bundle}/cuda_device")
    elif name == "biokernels" and "lib" in kinds:
        shutil.copy(msg["executable"], f"{bundle}/biokernels_unit")
    # Each crate's integration tests are one binary; the device suites are its modules
    # device_ops:: (bioautograd) and gpu_training:: (biolayers), selected by a filter at run.
    elif name == "integration" and crate == "bioautograd":
        shutil.copy(msg["executable"], f"{bundle}/device_ops")
    elif name == "integration" and crate == "biolayers":
        shutil.copy(msg["executable"], f"{bundle}/gpu_training")
PY
    rm -f "$BUNDLE/build.json"
    cargo build -p xtask --features cuda --release
    cp target/release/xtask "$BUNDLE/xtask"
    strip "$BUNDLE"/cuda_device "$BUNDLE"/biokernels_unit "$BUNDLE"/device_ops "$BUNDLE"/gpu_training "$BUNDLE"/xtask
    ls -la "$BUNDLE"
    du -sh "$BUNDLE"
}

run() {
    local out="${OUT:-gpu-results}"
    mkdir -p "$out"
    for f in cuda_device biokernels_unit device_ops gpu_training xtask; do
        [ -x "$BUNDLE/$f" ] || { echo "missing $BUNDLE/$f: run 'benches/gpu_run.sh build' on the CPU machine and carry $BUNDLE" >&2; exit 2; }
    done
    nvidia-smi 2>&1 | tee "$out/nvidia-smi.txt" || true
    # cuBLAS (the benchmark's dense baseline) comes from the image's Python wheels.
    local libdirs
    libdirs=$(python3 - <<'PY' 2>/dev/null || true
import glob, os, site
dirs = set()
for s in site.getsitepackages():
    for p in glob.glob(os.path.join(s, "nvidia", "**", "libcublas.so*"), recursive=True):
        dirs.add(os.path.dirname(p))
print(":".join(sorted(dirs)))
PY
)
    if [ -n "$libdirs" ]; then export LD_LIBRARY_PATH="$libdirs:${LD_LIBRARY_PATH:-}"; fi
    echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
    export BIOKERNELS_REQUIRE_CUDA=1
    # The PTX fallback's JIT results survive between processes (the cubins need no JIT).
    export CUDA_CACHE_PATH="$PWD/target/cuda-cache"
    nvidia-smi --query-gpu=driver_version,name,compute_cap --format=csv 2>&1 | tee "$out/driver.txt" || true
    local status=0
    # Every device test in a process of its own, with a time limit: one illegal access poisons
    # the CUDA context for every later test of a process, and an asynchronous error surfaces
    # only at the next copy. The first pass launches synchronously (CUDA_LAUNCH_BLOCKING=1) so
    # that an error is reported by the launch that made it.
    printf '%-16s %-72s %4s %7s\n' binary test rc seconds | tee "$out/tests.txt"
    for bin in cuda_device biokernels_unit device_ops gpu_training; do
        local filter=()
        case $bin in
        biokernels_unit) filter=(cuda) ;;
        device_ops) filter=(device_ops::) ;;
        gpu_training) filter=(gpu_training::) ;;
        esac
        while IFS= read -r t; do
            [ -n "$t" ] || continue
            local start rc=0
            start=$(date +%s%N)
            CUDA_LAUNCH_BLOCKING=1 timeout 600 "$BUNDLE/$bin" --exact "$t" --test-threads=1 \
                >>"$out/$bin.log" 2>&1 || rc=$?
            [ "$rc" -eq 0 ] || status=1
            local ms=$((($(date +%s%N) - start) / 1000000))
            printf '%-16s %-72s %4s %7s\n' "$bin" "$t" "$rc" "$((ms / 1000)).$((ms % 1000 / 100))" \
                | tee -a "$out/tests.txt"
        done < <("$BUNDLE/$bin" --list --format terse "${filter[@]}" 2>/dev/null | sed -n 's/: test$//p')
    done
    # Then the suites as one process each, asynchronous as in real use.
    for bin in cuda_device device_ops gpu_training; do
        local filter=()
        [ "$bin" = cuda_device ] || filter=("$bin::")
        "$BUNDLE/$bin" "${filter[@]}" --test-threads=1 >"$out/$bin.async.log" 2>&1 || status=1
        echo "$bin (asynchronous, one process): $(grep -E '^test result' "$out/$bin.async.log" | tail -1)"
    done
    if command -v compute-sanitizer >/dev/null; then
        # Targeted passes instead of memcheck over everything: memcheck on the GEMM and conv
        # tests; racecheck and synccheck on the tensor-core GEMM kernels, a few launches each.
        compute-sanitizer --tool memcheck --error-exitcode 3 "$BUNDLE/cuda_device" gemm:: conv:: \
            --test-threads=1 >"$out/memcheck.log" 2>&1 || status=1
        tail -2 "$out/memcheck.log"
        for tool in racecheck synccheck; do
            compute-sanitizer --tool "$tool" --error-exitcode 3 --launch-count 12 \
                --kernel-name regex:'masked_gemm_.*_(tf32|bf16)' \
                "$BUNDLE/cuda_device" gemm::masked_gemm_matches --test-threads=1 >"$out/$tool.log" 2>&1 || status=1
            tail -2 "$out/$tool.log"
        done
    fi
    if [ "$status" -ne 0 ]; then
        echo "device tests failed: not benchmarking (logs in $out)" >&2
        exit 1
    fi
    "$BUNDLE/xtask" bench-kernels --cuda "$@" --json "$out/bench_cuda.json" 2>&1 | tee "$out/bench_cuda.log"
    for precision in f32 tf32 bf16; do
        for net in schizo-cifar mouse-cifar; do
            "$BUNDLE/xtask" bench-train --device cuda --net "$net" --precision "$precision" \
                --json "$out/bench_train_cuda_${net}_$precision.json" 2>&1 |
                tee "$out/bench_train_cuda_${net}_$precision.log"
        done
    done
    # PyTorch on the same GPU, the same networks (upstream's weight × mask, dense ops), when the
    # machine's Python has a CUDA torch (TORCH_PYTHON to choose another interpreter; nothing is
    # installed here: the GPU machine has no network).
    local py=${TORCH_PYTHON:-python3}
    if "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        for net in schizo-cifar mouse-cifar; do
            "$py" benches/pytorch_cifar.py --net "$net" --device cuda | tee "$out/torch_cuda_$net.jsonl"
        done
    else
        echo "no CUDA PyTorch in $py: the PyTorch side of the GPU comparison is skipped" | tee "$out/torch_cuda.txt"
    fi
    # A short run of every reproduction (all train on a device, issue 18), on the GPU and on
    # the CPU, timed: rnn-memory needs no data; the image sweeps run when DATA names a folder
    # with mnist/ and cifar10-jpeg/ (or cifar-10-batches-bin/). The generative models score
    # with channel statistics (no FID weights on the GPU machine).
    reproduce() {
        local name=$1 device=$2
        shift 2
        local start=$SECONDS
        "$BUNDLE/xtask" reproduce "$name" --quick --device "$device" --no-progress \
            --out "$out/reproduce-$name-$device" "$@" >"$out/reproduce-$name-$device.log" 2>&1 &&
            echo "reproduce $name --device $device: $((SECONDS - start)) s" ||
            echo "reproduce $name --device $device: FAILED (see $out/reproduce-$name-$device.log)"
    }
    for device in cuda cpu; do
        reproduce rnn-memory "$device" --epochs 20
        if [ -n "${DATA:-}" ]; then
            for name in schizo-mnist schizo-cifar mouse-cifar vgg16-schizo synaptic-diversity; do
                reproduce "$name" "$device" --epochs 1 --repeats 1 --train-images 2000 --data "$DATA"
            done
            reproduce mouse-gan "$device" --epochs 1 --repeats 1 --train-images 512 \
                --score channel-stats --data "$DATA"
            reproduce mouse-ddim "$device" --epochs 1 --train-images 256 --score channel-stats --data "$DATA"
            reproduce bionet "$device" --epochs 1 --trials 1 --train-images 2000 --data "$DATA"
        fi
    done | tee "$out/reproduce.txt"
}

case "${1:-}" in
build) build ;;
run)
    shift
    run "$@"
    ;;
*)
    echo "usage: $0 build | run [--quick]" >&2
    exit 2
    ;;
esac
