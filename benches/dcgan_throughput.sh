#!/usr/bin/env bash
# DCGAN training throughput (issue 14): ours vs PyTorch CPU on the same machine, one run.
# Upstream's generator/discriminator, standard vs mouse 2d w = 0.4 (PyTorch: weight * mask,
# dense op, as upstream's mConvTranspose2d). Images/s = real images per second (batch per step).
#   bash benches/dcgan_throughput.sh --setup        # first time: makes .venv-torch (~5 GB)
#   bash benches/dcgan_throughput.sh [64|32] [steps] [reps]
# Not part of CI. Unset OPENBLAS_* so that no variable of this machine slows either side.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv-torch}
if [[ "${1:-}" == "--setup" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch numpy
  shift
fi
if [[ ! -x "$venv/bin/python" ]]; then
  echo "no PyTorch venv: run with --setup first (or set VENV)" >&2
  exit 1
fi
size=${1:-64}
steps=${2:-5}
reps=${3:-3}
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
cargo build --quiet --release -p xtask
out=$(mktemp -d)
lscpu | grep "Model name" || true
./target/release/xtask bench-train --net "dcgan$size" --steps "$steps" --reps "$reps" --json "$out/rust.json"
"$venv/bin/python" benches/pytorch_dcgan.py --size "$size" --steps "$steps" --reps "$reps" > "$out/torch.jsonl"
cat "$out/torch.jsonl"
python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
rust = {r["setting"]: r["images_per_s"] for r in json.load(open(f"{d}/rust.json"))}
torch = {json.loads(l)["setting"]: json.loads(l)["images_per_s"] for l in open(f"{d}/torch.jsonl")}
for s in rust:
    print(f"{s}: rust {rust[s]:.2f} img/s, pytorch {torch[s]:.2f} img/s, ratio {rust[s] / torch[s]:.2f}x")
print(f"rust w=0.4 vs rust standard: {rust['w=0.4'] / rust['standard']:.2f}x")
PY
