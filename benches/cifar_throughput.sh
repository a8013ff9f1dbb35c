#!/usr/bin/env bash
# Training throughput of the schizo-cifar or mouse-cifar network: ours vs PyTorch on the same
# machine, one run.
#   bash benches/cifar_throughput.sh --setup   # first time: makes .venv-torch with torch (~5 GB)
#   bash benches/cifar_throughput.sh [schizo-cifar|mouse-cifar]
# Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-torch
if [[ "${1:-}" == "--setup" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch numpy
  shift
fi
net=${1:-schizo-cifar}
if [[ ! -x "$venv/bin/python" ]]; then
  echo "no PyTorch venv: run with --setup first" >&2
  exit 1
fi
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
cargo build --quiet --release -p xtask
out=$(mktemp -d)
lscpu | grep "Model name" || true
./target/release/xtask bench-train --net "$net" --json "$out/rust.json"
"$venv/bin/python" benches/pytorch_cifar.py --net "$net" > "$out/torch.jsonl"
cat "$out/torch.jsonl"
python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
rust = {r["setting"]: r["images_per_s"] for r in json.load(open(f"{d}/rust.json"))}
torch = {}
for line in open(f"{d}/torch.jsonl"):
    r = json.loads(line)
    torch[r["setting"]] = r["images_per_s"]
for s in rust:
    print(f"{s}: rust {rust[s]:.1f} img/s, pytorch {torch[s]:.1f} img/s, ratio {rust[s] / torch[s]:.2f}x")
masked = [s for s in rust if s != "dense"][0]
print(f"rust {masked} vs rust dense: {rust[masked] / rust['dense']:.2f}x")
PY
